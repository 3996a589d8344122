// covenant call / covenant approve: run a contract's WIT export with JSON
// values (docs/host.md, docs/cli.md). Keep the JSON shape stable: outside
// checks parse it. Exit codes: 0 ok, 1 load/validation/usage error, 2 trap.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "covenant/contract.h"
#include "covenant/engine.h"
#include "settle/pipeline.h"
#include "settle/settle.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kCallUsage =
    "call CONTRACT.wasm --wit FILE.wit [--world W] --export NAME --args JSON [--grants FILE] "
    "[--tier interp|baseline|optimized|auto] [--fuel N] [--deployment NAME] [--kv FILE.sqlite] [--json]";
constexpr const char* kApproveUsage =
    "approve CONTRACT.wasm --intent FILE.json|- [--wit FILE.wit] [--world W] [--grants FILE] "
    "[--tier interp|baseline|optimized|auto] [--fuel N] [--deployment NAME] [--kv FILE.sqlite] [--json] "
    "[--ledger PATH|URL] [--keys-dir DIR] [--replay-out PKG] [--checkpoint-every N] (docs/settlement.md)";

int fail(const std::string& msg, const char* usage = nullptr) {
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
  uint64_t fuel = 1'000'000'000;  // CLI default: generous, still bounded (as covenant run)
  bool as_json = false;
  settle::ApproveFlags settle;  // --ledger, --keys-dir, --replay-out, ... (docs/settlement.md)
};

// Returns an error message, or empty.
std::string parse_args(int argc, char** argv, bool approve, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](std::string& out) -> bool {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (s == "--json") {
      a.as_json = true;
    } else if (s == "--wit") {
      if (!value(a.wit)) return "--wit needs a file";
    } else if (s == "--world") {
      if (!value(a.world)) return "--world needs a name";
    } else if (s == "--grants") {
      if (!value(a.grants)) return "--grants needs a file";
    } else if (s == "--deployment") {
      if (!value(a.deployment)) return "--deployment needs a name";
    } else if (s == "--kv") {
      if (!value(a.kv)) return "--kv needs a file";
    } else if (!approve && s == "--export") {
      if (!value(a.export_name)) return "--export needs a function name";
    } else if (!approve && s == "--args") {
      if (!value(a.args)) return "--args needs a JSON array";
    } else if (approve && s == "--intent") {
      if (!value(a.intent)) return "--intent needs a file (or - for stdin)";
    } else if (s == "--tier") {
      if (!value(v)) return "--tier needs a value";
      auto t = parse_tier(v);
      if (!t) return "unknown tier \"" + v + "\" (interp, baseline, optimized, auto)";
      a.tier = *t;
    } else if (s == "--fuel") {
      if (!value(v) || v.empty() || v[0] == '-') return "--fuel needs a non-negative integer";
      char* end = nullptr;
      errno = 0;
      a.fuel = std::strtoull(v.c_str(), &end, 10);
      if (errno || *end) return "--fuel needs a non-negative integer";
    } else if (approve && settle::ApproveFlags::takes(s)) {
      if (!value(v)) return s + " needs a value";
      if (std::string e = a.settle.set(s, v); !e.empty()) return e;
    } else if (s.rfind("--", 0) == 0) {
      return "unknown option " + s;
    } else if (a.contract.empty()) {
      a.contract = s;
    } else {
      return "unexpected argument " + s;
    }
  }
  if (a.contract.empty()) return "need a contract file";
  if (approve && a.intent.empty()) return "need --intent FILE.json";
  if (!approve && a.export_name.empty()) return "need --export NAME";
  if (!approve && a.args.empty()) return "need --args JSON (an array of the export's parameters)";
  return "";
}

uint64_t us(uint64_t ns) { return (ns + 500) / 1000; }

int run_contract(const Args& a, const char* usage, bool approve) {
  std::string text, err;
  std::vector<uint8_t> wasm;
  {
    std::ifstream f(a.contract, std::ios::binary);
    if (!f) return fail("cannot open " + a.contract + ": " + std::strerror(errno), usage);
    wasm.assign(std::istreambuf_iterator<char>(f), {});
  }
  DeployOptions opts;
  opts.tier = a.tier;
  opts.world = a.world;
  opts.deployment = a.deployment;
  opts.kv_path = a.kv;
  opts.name = a.contract;
  if (!a.wit.empty() && !read_text(a.wit, opts.wit, err)) return fail(err, usage);
  if (!a.grants.empty()) {
    if (!read_text(a.grants, text, err)) return fail(err, usage);
    auto g = parse_grants(text);
    if (!g) return fail(a.grants + ": " + g.status().message());
    opts.grants = *g;
  }
  json args;
  if (approve) {
    if (!read_text(a.intent, text, err)) return fail(err, usage);
    json intent = json::parse(text, nullptr, false);
    if (intent.is_discarded()) return fail(a.intent + ": not valid JSON");
    args = json::array({intent});
  } else {
    args = json::parse(a.args, nullptr, false);
    if (args.is_discarded()) return fail("--args: not valid JSON");
  }

  // approve --ledger: the settlement pipeline owns the ledger, the executor key and kv
  // (kv rows live in the ledger's database and commit with the receipt).
  const bool pipelined = approve && !a.settle.opts.ledger.empty();
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

  auto engine = Engine::create({});
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
  settle::CallInputs inputs{wasm, opts.wit, a.world, grants_text, export_name, text, a.fuel, a.tier};
  json settled;  // approve --ledger / --replay-out: receipt (and hold) ids, src/settle
  std::optional<Contract::CallResult> result;
  if (pipelined) {
    settle::PipelineCall pc;
    pc.export_name = export_name;
    pc.args = args;
    pc.inputs = inputs;
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

  for (const LogLine& l : r->record.logs)
    std::fprintf(stderr, "log %s: %s\n", log_level_name(l.level), l.message.c_str());
  if (r->record.logs_dropped) std::fprintf(stderr, "log: %u lines dropped\n", r->record.logs_dropped);

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
    for (auto& [k, v] : settled.items()) j[k] = v;
    std::printf("%s\n", j.dump().c_str());
  } else if (trapped) {
    std::printf("trap: %s: %s\nfuel used: %llu\n", trap_kind_name(r->trap.kind), r->trap.message.c_str(),
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
  if (std::string e = parse_args(argc, argv, false, a); !e.empty()) return fail(e, kCallUsage);
  return run_contract(a, kCallUsage, false);
}

int approve_command(int argc, char** argv) {
  Args a;
  if (std::string e = parse_args(argc, argv, true, a); !e.empty()) return fail(e, kApproveUsage);
  return run_contract(a, kApproveUsage, true);
}

}  // namespace

COVENANT_COMMAND("call", kCallUsage, call_command);
COVENANT_COMMAND("approve", kApproveUsage, approve_command);

}  // namespace covenant::cli
