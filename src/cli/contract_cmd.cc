// covenant call / covenant approve: run a contract's WIT export with JSON
// values (docs/host.md, docs/cli.md). Keep the JSON shape stable: outside
// checks parse it. Exit codes: 0 ok, 1 load/validation/usage error, 2 trap.
// One-shot commands: without --tier they run on the optimized tier only when
// its artifact is already cached (else baseline, and say so), and every call
// has a wall-clock deadline (--deadline-ms, default kCallDeadlineMsDefault).
// Guest log lines are printed escaped and prefixed (src/cli/guest_output.h).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/guest_output.h"
#include "covenant/component.h"
#include "covenant/contract.h"
#include "covenant/engine.h"
#include "covenant/strict_json.h"
#include "covenant/wit.h"
#include "settle/pipeline.h"
#include "settle/settle.h"
#include "wasm/cache.h"
#include "wasm/prepare.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kCallUsage =
    "call CONTRACT.wasm --wit FILE.wit [--world W] --export NAME --args JSON [--grants FILE] "
    "[--tier interp|baseline|optimized|auto] [--fuel N] [--deadline-ms N] [--deployment NAME] "
    "[--kv FILE.sqlite|memory] [--json]";
constexpr const char* kApproveUsage =
    "approve CONTRACT.wasm --intent FILE.json|- [--wit FILE.wit] [--world W] [--grants FILE] "
    "[--tier interp|baseline|optimized|auto] [--fuel N] [--deadline-ms N] [--deployment NAME] "
    "[--kv FILE.sqlite|memory] [--json] [--ledger PATH|URL] [--pg-schema S] [--keys-dir DIR] [--replay-out PKG] [--checkpoint-every N] "
    "[--checkpoint-dir DIR] [--origin NAME] (docs/settlement.md)";

// A one-shot call's wall-clock limit unless --deadline-ms says otherwise: far
// above what a policy decision takes (milliseconds), low enough that a runaway
// guest on the default fuel (1e9, minutes on the interpreter) does not hang a
// script. 0 = none.
constexpr uint64_t kCallDeadlineMsDefault = 10'000;

// Set from the command line before anything can fail: with --json every failure is
// also one JSON object on stdout (and the message on stderr).
bool g_json = false;

int fail(const std::string& msg, const char* usage = nullptr) {
  if (g_json) {
    std::printf("%s\n", nlohmann::json{{"ok", false}, {"error", {{"code", "failed"}, {"message", msg}}}}.dump().c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr, "covenant: %s\n", msg.c_str());
  if (usage) std::fprintf(stderr, "usage: covenant %s\n", usage);
  return kExitError;
}

bool read_text(const std::string& path, std::string& out, std::string& err) {
  if (path == "-") {
    out.assign(std::istreambuf_iterator<char>(std::cin), {});
    return true;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    err = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(f), {});
  return true;
}

struct Args {
  std::string contract, wit, world, export_name, args, grants, intent, deployment = "default", kv;
  Tier tier = Tier::kOptimized;
  bool tier_given = false;  // false: optimized if its artifact is cached, else baseline
  uint64_t fuel = 1'000'000'000;  // CLI default: generous, still bounded (as covenant run)
  uint64_t deadline_ms = kCallDeadlineMsDefault;
  bool as_json = false;
  settle::ApproveFlags settle;  // --ledger, --keys-dir, --replay-out, ... (docs/settlement.md)
};

// Returns nullopt to go on, or the exit code (help, usage or file error printed).
std::optional<int> parse_args(int argc, char** argv, bool approve, Args& a) {
  const char* usage = approve ? kApproveUsage : kCallUsage;
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{approve ? "approve" : "call", has_json_flag(argv_v)};
  g_json = rep.json;
  CLI::App app(approve ? "Runs a contract's policy.approve export on an intent (docs/host.md); with --ledger, through "
                         "the settlement pipeline (docs/settlement.md). Exit 0 ok, 1 usage/load/validation error, 2 trap."
                       : "Runs a contract's WIT export with JSON values (docs/host.md, docs/abi.md). Exit 0 ok, 1 "
                         "usage/load/validation error, 2 trap.",
               approve ? "covenant approve" : "covenant call");
  configure(app);
  add_pos(app, "CONTRACT", a.contract, "a core module (with --wit) or a component");
  if (approve) {
    app.add_option("--intent", a.intent, "the intent, a JSON file (- for stdin)")->type_name("FILE.json|-");
    app.add_option("--wit", a.wit, "the WIT of a core module (default: the contract's own)")->type_name("FILE.wit");
  } else {
    app.add_option("--wit", a.wit, "the WIT of a core module")->type_name("FILE.wit");
    app.add_option("--export", a.export_name, "the export to call (interface.function)")->type_name("NAME");
    app.add_option("--args", a.args, "a JSON array of the export's parameters")->type_name("JSON");
  }
  app.add_option("--world", a.world, "the world in the WIT (default: the only one)")->type_name("W");
  app.add_option("--grants", a.grants, "capability grants, a JSON file (default: none)")->type_name("FILE");
  add_tier(app, a.tier)->default_str("optimized if its artifact is cached, else baseline");
  add_u64(app, "--fuel", a.fuel, "fuel budget", kCallFuelMax);
  add_u64(app, "--deadline-ms", a.deadline_ms, "wall-clock deadline of the call in ms (0 = none)", UINT32_MAX);
  app.add_option("--deployment", a.deployment, "deployment name that scopes kv state")->type_name("NAME");
  app.add_option("--kv", a.kv,
                 "kv state: a SQLite file, or 'memory' (kept in memory, dropped at exit); required to be given "
                 "when the grants include kv" + std::string(approve ? " (unless --ledger)" : ""))
      ->type_name("FILE.sqlite|memory");
  add_json(app, a.as_json);
  if (approve) {
    for (const char* f : {"--ledger", "--pg-schema", "--keys-dir", "--replay-out", "--checkpoint-dir", "--origin"}) {
      const std::string flag = f;
      const char* desc = flag == "--ledger"           ? "settle on this ledger: a SQLite path or a postgresql:// URL"
                         : flag == "--pg-schema"      ? "PostgreSQL schema (default covenant)"
                         : flag == "--keys-dir"       ? "executor signing keys (default $COVENANT_HOME/keys)"
                         : flag == "--replay-out"     ? "write the call's replay package here (docs/replay.md)"
                         : flag == "--checkpoint-dir" ? "where checkpoints go (default <ledger>.checkpoints)"
                                                      : "checkpoint origin line";
      const char* type = flag == "--ledger" ? "PATH|URL" : flag == "--replay-out" ? "PKG" : flag == "--origin" ? "NAME"
                         : flag == "--pg-schema" ? "S" : "DIR";
      auto* o = app.add_option_function<std::string>(
          flag,
          [&a, flag](const std::string& v) {
            if (std::string e = a.settle.set(flag, v); !e.empty()) throw CLI::ValidationError(e);
          },
          desc);
      o->type_name(type);
      if (flag == "--origin") o->default_str(a.settle.opts.origin);
    }
    add_u64(app, "--checkpoint-every", a.settle.opts.checkpoint_every,
            "with --ledger: sign a checkpoint every N receipts (0 = never)");
  }
  if (auto code = parse(app, argv_v, rep, usage)) return code;
  a.tier_given = app.get_option("--tier")->count() > 0;
  if (a.contract.empty()) return rep.usage("need a contract file", usage);
  if (approve && a.intent.empty()) return rep.usage("need --intent FILE.json", usage);
  if (!approve && a.export_name.empty()) return rep.usage("need --export NAME", usage);
  if (!approve && a.args.empty()) return rep.usage("need --args JSON (an array of the export's parameters)", usage);
  // Every file argument, before anything runs or commits.
  std::string e = first_error({
      [&] { return check_input_file("CONTRACT", a.contract); },
      [&] { return a.wit.empty() ? "" : check_input_file("--wit", a.wit); },
      [&] { return a.grants.empty() ? "" : check_input_file("--grants", a.grants, true); },
      [&] { return approve ? check_input_file("--intent", a.intent, true) : ""; },
      [&] { return a.kv.empty() || a.kv == "memory" ? "" : check_output_file("--kv", a.kv); },
      [&] { return a.settle.opts.ledger.empty() ? "" : check_ledger("--ledger", a.settle.opts.ledger); },
      [&] { return a.settle.opts.keys_dir.empty() ? "" : check_dir("--keys-dir", a.settle.opts.keys_dir, true); },
      [&] { return a.settle.opts.replay_out.empty() ? "" : check_output_file("--replay-out", a.settle.opts.replay_out); },
      [&] {
        return a.settle.opts.checkpoint_dir.empty() ? "" : check_dir("--checkpoint-dir", a.settle.opts.checkpoint_dir, true);
      },
  });
  if (!e.empty()) return rep.fail(kExitError, "bad_file", e);
  if (a.grants == "-" && a.intent == "-") return rep.usage("--grants and --intent cannot both read stdin", usage);
  return std::nullopt;
}

uint64_t us(uint64_t ns) { return (ns + 500) / 1000; }

// Whether the optimized tier's artifact for this contract (its core module, for a
// component) is in the artifact cache: the key the engine computes on load
// (src/wasm/cache.h), so the answer is the engine's own cache hit. Anything that
// fails here fails again, with its message, when the contract is deployed.
bool optimized_artifact_cached(std::span<const uint8_t> wasm, const EngineConfig& config) {
  std::vector<uint8_t> core;
  if (component::is_component(wasm)) {
    auto c = component::read_component(wasm);
    if (!c) return false;
    core = std::move(c->core_module);
    wasm = core;
  }
  auto prep = wasm::prepare_module(wasm, config.load_limits, config.features, config.metering);
  if (!prep) return false;
  wasm::ArtifactCache cache(config);
  std::error_code ec;
  return std::filesystem::is_regular_file(cache.path_for(cache.key(prep->metered, "optimized")), ec);
}

int run_contract(const Args& a, const char* usage, bool approve) {
  std::string text, err;
  std::vector<uint8_t> wasm;
  {
    std::ifstream f(a.contract, std::ios::binary);
    if (!f) return fail("cannot open " + a.contract + ": " + std::strerror(errno), usage);
    wasm.assign(std::istreambuf_iterator<char>(f), {});
  }
  const EngineConfig engine_config;
  Tier tier = a.tier;
  if (!a.tier_given) {
    // A one-shot process would compile the optimized tier (seconds) for one call:
    // use it only when it is already built.
    const bool cached = optimized_artifact_cached(wasm, engine_config);
    tier = cached ? Tier::kOptimized : Tier::kBaseline;
    if (!a.as_json)
      std::fprintf(stderr, "covenant: tier %s (%s; --tier picks one)\n", tier_name(tier),
                   cached ? "its optimized artifact is cached"
                          : ("no optimized artifact cached: `covenant compile " + a.contract + "` builds it").c_str());
  }
  DeployOptions opts;
  opts.tier = tier;
  opts.world = a.world;
  opts.deployment = a.deployment;
  opts.kv_path = a.kv == "memory" ? "" : a.kv;  // --kv memory: the explicit choice of no persistence
  opts.name = a.contract;
  if (!a.wit.empty() && !read_text(a.wit, opts.wit, err)) return fail(err, usage);
  if (!a.wit.empty()) {
    // Parse errors name the file given (the contract would call it contract.wit).
    auto pkg = wit::parse_wit(opts.wit, {.file_name = a.wit});
    if (!pkg) return fail(pkg.status().message());
  }
  if (!a.grants.empty()) {
    if (!read_text(a.grants, text, err)) return fail(err, usage);
    auto g = parse_grants(text);
    if (!g) return fail(a.grants + ": " + g.status().message());
    opts.grants = *g;
  }
  const bool to_ledger = approve && !a.settle.opts.ledger.empty();
  if (opts.grants.kv && a.kv.empty() && !to_ledger)
    std::fprintf(stderr,
                 "warning: %s is granted kv but --kv was not given: its state is kept in memory and dropped at exit "
                 "(use --kv FILE, --kv memory, or --ledger)\n",
                 a.contract.c_str());
  json args;
  if (approve) {
    if (!read_text(a.intent, text, err)) return fail(err, usage);
    auto intent = parse_json_strict(text, a.intent == "-" ? "--intent (stdin)" : a.intent);
    if (!intent) return fail(intent.status().message());
    args = json::array({std::move(intent).value()});
  } else {
    auto parsed = parse_json_strict(a.args, "--args");
    if (!parsed) return fail(parsed.status().message());
    args = std::move(parsed).value();
  }

  // approve --ledger: the settlement pipeline owns the ledger, the executor key and kv
  // (kv rows live in the ledger's database and commit with the receipt).
  const bool pipelined = to_ledger;
  std::unique_ptr<settle::Pipeline> pipeline;
  if (pipelined) {
    if (!a.kv.empty()) return fail("--kv cannot be used with --ledger: kv state lives in the ledger's database", usage);
    settle::PipelineOptions po;
    po.ledger = a.settle.opts.ledger;
    po.pg_schema = a.settle.opts.pg_schema;
    po.keys_dir = a.settle.opts.keys_dir;
    po.checkpoint_dir = a.settle.opts.checkpoint_dir;
    po.origin = a.settle.opts.origin;
    auto p = settle::Pipeline::open(po);
    if (!p) return fail(p.status().message());
    pipeline = std::move(*p);
    opts.kv_store = pipeline->kv_store();
  }

  auto engine = Engine::create(engine_config);
  if (!engine) return fail(engine.status().to_string());
  auto t0 = std::chrono::steady_clock::now();
  auto contract = Contract::deploy(**engine, wasm, opts);
  uint64_t deploy_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  if (!contract) return fail(a.contract + ": " + contract.status().message());
  Contract& c = **contract;

  std::string export_name = a.export_name;
  if (approve) {
    export_name = c.find_export("policy.approve") ? "policy.approve" : "approve";
    if (!c.find_export(export_name)) return fail(a.contract + ": the world exports no policy.approve");
  }
  std::string grants_text;
  if (approve && a.settle.enabled() && !a.grants.empty() && !read_text(a.grants, grants_text, err)) return fail(err);
  settle::CallInputs inputs{wasm, opts.wit, a.world, grants_text, export_name, text, a.fuel, tier};
  json settled;  // approve --ledger / --replay-out: receipt (and hold) ids, src/settle
  std::optional<Contract::CallResult> result;
  if (pipelined) {
    settle::PipelineCall pc;
    pc.export_name = export_name;
    pc.args = args;
    pc.inputs = inputs;
    pc.deadline_ms = a.deadline_ms;
    auto o = pipeline->approve(c, pc);
    // Nothing is printed before the commit; an error here means nothing was stored.
    if (!o) return fail(o.status().message());
    result = std::move(o->call);
    if (!o->trapped()) {
      settled["receipt_id"] = o->receipt_id;
      settled["hold_id"] = o->hold_id ? json(*o->hold_id) : json(nullptr);
      settled["log_index"] = o->log_index;
      // After the commit: a checkpoint or replay package that cannot be written is
      // reported on stderr and never turns the committed call into a failure.
      const uint64_t every = a.settle.opts.checkpoint_every;
      if (every && (o->log_index + 1) % every == 0) {
        auto cp = pipeline->maybe_checkpoint(every, true);
        if (!cp) std::fprintf(stderr, "warning: checkpoint not written: %s\n", cp.status().message().c_str());
        else if (!cp->empty()) settled["checkpoint"] = *cp;
      }
      if (!a.settle.opts.replay_out.empty()) {
        Status ws = settle::write_replay_package(a.settle.opts.replay_out,
                                                 settle::make_replay_package(inputs, result->record, o->cose,
                                                                             pipeline->key().public_key()));
        if (!ws) std::fprintf(stderr, "warning: replay package not written: %s\n", ws.message().c_str());
      }
    }
    pipeline->close();
  } else {
    CallOptions co;
    co.fuel = a.fuel;
    co.deadline_ms = static_cast<uint32_t>(a.deadline_ms);
    auto r = c.call_json(export_name, args, co);
    if (!r) return fail(r.status().message());
    result = std::move(*r);
    if (approve && a.settle.enabled() && result->trap.kind == TrapKind::kNone) {
      auto s = a.settle.apply(c, inputs, *result, a.grants);
      if (!s) return fail(s.status().message());
      settled = std::move(*s);
    }
  }
  const Contract::CallResult* r = &*result;

  // Guest output is inert: one escaped line each, prefixed with the contract and the level.
  const std::string who = guest_name(a.contract);
  json logs = json::array();
  for (const LogLine& l : r->record.logs) {
    const std::string msg = escape_guest_text(l.message);
    std::fprintf(stderr, "guest %s: log %s: %s\n", who.c_str(), log_level_name(l.level), msg.c_str());
    logs.push_back({{"contract", who}, {"level", log_level_name(l.level)}, {"message", msg}});
  }
  if (r->record.logs_dropped)
    std::fprintf(stderr, "guest %s: log: %u lines dropped\n", who.c_str(), r->record.logs_dropped);

  bool trapped = r->trap.kind != TrapKind::kNone;
  auto lt = c.module().load_timings();
  if (a.as_json) {
    json j;
    j["result"] = trapped ? json(nullptr) : r->result;
    j["fuel_used"] = r->fuel_used;
    j["trap"] = trapped ? json{{"kind", trap_kind_name(r->trap.kind)}, {"message", r->trap.message}} : json(nullptr);
    j["timings_us"] = {{"load", lt.load_us},
                       {"compile", lt.compile_us},
                       {"deploy", us(deploy_ns)},
                       {"lower", us(r->timings.lower_ns)},
                       {"execute", us(r->timings.execute_ns)},
                       {"lift", us(r->timings.lift_ns)},
                       {"call", us(r->timings.total_ns)}};
    j["tier"] = tier_name(c.module().tier());
    j["cache_hit"] = lt.cache_hit;
    j["logs"] = logs;
    j["logs_dropped"] = r->record.logs_dropped;
    for (auto& [k, v] : settled.items()) j[k] = v;
    // A trap message can quote the guest: never let bytes that are not UTF-8 abort the dump.
    std::printf("%s\n", j.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  } else if (trapped) {
    std::printf("trap: %s: %s\nfuel used: %llu\n", trap_kind_name(r->trap.kind), escape_guest_text(r->trap.message).c_str(),
                (unsigned long long)r->fuel_used);
  } else {
    std::printf("%s: %s\nfuel used: %llu\n", approve ? "decision" : "result", r->result.dump().c_str(),
                (unsigned long long)r->fuel_used);
    for (auto& [k, v] : settled.items()) std::printf("%s: %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
  }
  return trapped ? kExitTrap : kExitOk;
}

int call_command(int argc, char** argv) {
  Args a;
  if (auto code = parse_args(argc, argv, false, a)) return *code;
  return run_contract(a, kCallUsage, false);
}

int approve_command(int argc, char** argv) {
  Args a;
  if (auto code = parse_args(argc, argv, true, a)) return *code;
  return run_contract(a, kApproveUsage, true);
}

}  // namespace

COVENANT_COMMAND("call", kCallUsage, call_command);
COVENANT_COMMAND("approve", kApproveUsage, approve_command);

}  // namespace covenant::cli
