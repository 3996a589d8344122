// covenant run / covenant compile / covenant validate: the engine's
// command-line contract (docs/cli.md). Keep the JSON shape stable: outside
// checks parse it. run exits 3 (not 1) when the module loaded but has no such
// export or the arguments do not fit its signature, so a caller can tell "the
// engine refused the module" (1) from "no such function" (3).
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "covenant/component.h"
#include "covenant/engine.h"

namespace covenant::cli {
namespace {

using json = nlohmann::json;

uint64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool read_file(const std::string& path, std::vector<uint8_t>& out, std::string& err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    err = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(f), {});
  return true;
}

std::optional<Value> parse_arg(const std::string& s, ValType t, std::string& err) {
  char* end = nullptr;
  errno = 0;
  switch (t) {
    case ValType::kI32:
    case ValType::kI64: {
      bool neg = !s.empty() && s[0] == '-';
      if (neg) {
        long long v = std::strtoll(s.c_str(), &end, 0);
        if (errno || *end || s.size() < 2) break;
        if (t == ValType::kI32 && v < INT32_MIN) break;
        return t == ValType::kI32 ? Value::i32(static_cast<int32_t>(v)) : Value::i64(v);
      }
      unsigned long long v = std::strtoull(s.c_str(), &end, 0);
      if (errno || *end || s.empty()) break;
      if (t == ValType::kI32 && v > UINT32_MAX) break;
      return t == ValType::kI32 ? Value{ValType::kI32, v} : Value{ValType::kI64, v};
    }
    case ValType::kF32:
    case ValType::kF64: {
      // nan:0xPAYLOAD (Wasm text format) keeps exact NaN bits.
      std::string body = s;
      bool neg = !body.empty() && body[0] == '-';
      if (neg || (!body.empty() && body[0] == '+')) body = body.substr(1);
      if (body.rfind("nan:0x", 0) == 0) {
        uint64_t payload = std::strtoull(body.c_str() + 6, &end, 16);
        if (*end || payload == 0) break;
        if (t == ValType::kF32) {
          if (payload > 0x7fffff) break;
          return Value::f32_bits((neg ? 0x80000000u : 0) | 0x7f800000u | static_cast<uint32_t>(payload));
        }
        if (payload > 0xfffffffffffffull) break;
        return Value::f64_bits((neg ? 0x8000000000000000ull : 0) | 0x7ff0000000000000ull | payload);
      }
      if (t == ValType::kF32) {
        float f = std::strtof(s.c_str(), &end);
        if (*end || s.empty()) break;
        uint32_t b;
        std::memcpy(&b, &f, 4);
        return Value::f32_bits(b);
      }
      double d = std::strtod(s.c_str(), &end);
      if (*end || s.empty()) break;
      uint64_t b;
      std::memcpy(&b, &d, 8);
      return Value::f64_bits(b);
    }
  }
  err = "argument \"" + s + "\" is not a valid " + valtype_name(t);
  return std::nullopt;
}

std::string format_value(const Value& v) {
  char buf[64];
  switch (v.type) {
    case ValType::kI32: std::snprintf(buf, sizeof buf, "%" PRId32, v.as_i32()); return buf;
    case ValType::kI64: std::snprintf(buf, sizeof buf, "%" PRId64, v.as_i64()); return buf;
    case ValType::kF32: {
      uint32_t b = static_cast<uint32_t>(v.bits);
      float f;
      std::memcpy(&f, &b, 4);
      if (std::isnan(f)) {
        std::snprintf(buf, sizeof buf, "%snan:0x%" PRIx32, (b >> 31) ? "-" : "", b & 0x7fffffu);
        return buf;
      }
      if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
      std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(f));
      return buf;
    }
    case ValType::kF64: {
      double d;
      std::memcpy(&d, &v.bits, 8);
      if (std::isnan(d)) {
        std::snprintf(buf, sizeof buf, "%snan:0x%" PRIx64, (v.bits >> 63) ? "-" : "", static_cast<uint64_t>(v.bits & 0xfffffffffffffull));
        return buf;
      }
      if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
      std::snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
  }
  return "";
}

constexpr const char* kRunUsage =
    "run FILE.wasm EXPORT [ARG...] [--tier interp|baseline|optimized|auto] [--fuel N] [--max-memory BYTES] "
    "[--deadline-ms N] [--json]";

// A negative ARG ("-5", "-inf", "-nan:0x1") is a value, not a flag: hidden from
// the parser behind this prefix and restored after.
constexpr char kNegArg = '\x01';

int run_command(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  for (size_t i = 1; i < argv_v.size(); ++i) {
    const std::string& s = argv_v[i];
    if (s == "--") break;
    if (s.size() > 1 && s[0] == '-' && s[1] != '-' && s != "-h") argv_v[i] = kNegArg + s;
  }
  Reporter rep{"run", has_json_flag(argv_v)};
  std::string file, export_name;
  std::vector<std::string> rest;
  Tier tier = Tier::kOptimized;
  uint64_t fuel = 1'000'000'000;  // CLI default: generous, still bounded
  uint64_t max_memory = InstanceLimits{}.memory_bytes_max;
  uint64_t deadline_ms = 0;
  bool as_json = false;
  CLI::App app("Runs an exported function of a core Wasm module (docs/cli.md). Exit 0 ok, 1 usage/load/validation "
               "error, 2 guest trap, 3 no such export or arguments that do not fit its signature.",
               "covenant run");
  configure(app);
  add_pos(app, "FILE.wasm", file, "the module");
  add_pos(app, "EXPORT", export_name, "the exported function");
  add_pos(app, "ARG", rest, "arguments typed by the export's signature (integers decimal or 0x hex; floats, inf, "
                              "nan, nan:0xPAYLOAD)");
  add_tier(app, tier);
  add_u64(app, "--fuel", fuel, "fuel budget", kCallFuelMax, true);
  add_u64(app, "--max-memory", max_memory, "linear memory cap in bytes", UINT64_MAX, true)->type_name("BYTES");
  add_u64(app, "--deadline-ms", deadline_ms, "wall-clock deadline in ms (0 = none)", UINT32_MAX);
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kRunUsage)) return *code;
  std::vector<std::string> pos;
  for (std::string* s : {&file, &export_name})
    if (!s->empty()) pos.push_back(*s);
  for (std::string& s : rest) pos.push_back(!s.empty() && s[0] == kNegArg ? s.substr(1) : s);
  if (!file.empty() && file[0] == kNegArg) return rep.usage("unknown option " + file.substr(1), kRunUsage);
  if (pos.size() < 2) return rep.usage("need a module file and an export name", kRunUsage);
  if (std::string e = check_input_file("FILE.wasm", pos[0]); !e.empty()) return rep.fail(kExitError, "bad_file", e);

  std::vector<uint8_t> bytes;
  std::string err;
  if (!read_file(pos[0], bytes, err)) return rep.fail(kExitError, "io", err);
  auto engine = Engine::create({});
  if (!engine) return rep.fail(kExitError, "engine", engine.status().to_string());
  LoadOptions lo;
  lo.tier = tier;
  lo.name = pos[0];
  if (!as_json)
    lo.progress = [](std::string_view line) { std::fprintf(stderr, "covenant: %.*s\n", (int)line.size(), line.data()); };
  auto module = (*engine)->load(bytes, lo);
  if (!module) return rep.fail(kExitError, "load", pos[0] + ": " + module.status().to_string());
  auto idx = (*module)->export_index(pos[1]);
  if (!idx) {
    std::string known;
    for (const auto& e : (*module)->exports()) known += (known.empty() ? "" : ", ") + e.name + " " + e.type.to_string();
    return rep.fail(kExitNoSuchCall, "no_such_export",
                    pos[0] + " has no exported function \"" + pos[1] + "\" (exports: " + (known.empty() ? "none" : known) + ")");
  }
  const FuncType& ft = (*module)->exports()[*idx].type;
  if (pos.size() - 2 != ft.params.size())
    return rep.fail(kExitNoSuchCall, "bad_arguments",
                    "export \"" + pos[1] + "\" has type " + ft.to_string() + " and takes " +
                        std::to_string(ft.params.size()) + " arguments; got " + std::to_string(pos.size() - 2));
  std::vector<Value> args;
  for (size_t i = 0; i < ft.params.size(); ++i) {
    auto v = parse_arg(pos[i + 2], ft.params[i], err);
    if (!v)
      return rep.fail(kExitNoSuchCall, "bad_arguments",
                      err + " (parameter " + std::to_string(i) + " of " + ft.to_string() + ")");
    args.push_back(*v);
  }
  InstanceLimits limits;
  limits.memory_bytes_max = max_memory;
  uint64_t t_inst = now_us();
  auto inst = (*module)->instantiate(Linker{}, limits);
  t_inst = now_us() - t_inst;
  if (!inst) return rep.fail(kExitError, "instantiate", pos[0] + ": " + inst.status().to_string());
  Tier ran_on = (*module)->tier();
  CallOptions co;
  co.fuel = fuel;
  co.deadline_ms = static_cast<uint32_t>(deadline_ms);
  uint64_t t_exec = now_us();
  auto out = (*inst)->call(*idx, args, co);
  t_exec = now_us() - t_exec;
  if (!out) return rep.fail(kExitError, "call", out.status().to_string());
  auto timings = (*module)->load_timings();
  if (as_json) {
    json j;
    j["results"] = json::array();
    for (const Value& v : out->results) j["results"].push_back({{"type", valtype_name(v.type)}, {"value", format_value(v)}});
    j["fuel_used"] = out->fuel_used;
    if (out->ok())
      j["trap"] = nullptr;
    else
      j["trap"] = {{"kind", trap_kind_name(out->trap.kind)}, {"message", out->trap.message}};
    j["tier"] = tier_name(ran_on);
    j["timings_us"] = {{"load", timings.load_us},
                       {"compile", timings.compile_us},
                       {"instantiate", t_inst},
                       {"execute", t_exec}};
    j["cache_hit"] = timings.cache_hit;
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (out->ok()) {
      for (const Value& v : out->results) std::printf("result: %s %s\n", valtype_name(v.type), format_value(v).c_str());
      if (out->results.empty()) std::printf("result: (none)\n");
    } else {
      std::printf("trap: %s: %s\n", trap_kind_name(out->trap.kind), out->trap.message.c_str());
    }
    std::printf("fuel used: %llu\ntier: %s%s\ntimings (us): load %llu, compile %llu, instantiate %llu, execute %llu\n",
                (unsigned long long)out->fuel_used, tier_name(ran_on), timings.cache_hit ? " (cached artifact)" : "",
                (unsigned long long)timings.load_us, (unsigned long long)timings.compile_us,
                (unsigned long long)t_inst, (unsigned long long)t_exec);
  }
  return out->ok() ? kExitOk : kExitTrap;
}

constexpr const char* kCompileUsage = "compile FILE.wasm [--tier optimized|baseline|interp] [--json]";

int compile_command(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"compile", has_json_flag(argv_v)};
  std::string file;
  Tier tier = Tier::kOptimized;
  bool as_json = false;
  CLI::App app("Validates, meters and compiles a module into the artifact cache ($COVENANT_CACHE_DIR, else "
               "$XDG_CACHE_HOME/covenant, else ~/.cache/covenant).",
               "covenant compile");
  configure(app);
  add_pos(app, "FILE.wasm", file, "the module");
  add_tier(app, tier, false);
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kCompileUsage)) return *code;
  if (file.empty()) return rep.usage("need a module file", kCompileUsage);
  if (std::string e = check_input_file("FILE.wasm", file); !e.empty()) return rep.fail(kExitError, "bad_file", e);
  std::vector<uint8_t> bytes;
  std::string err;
  if (!read_file(file, bytes, err)) return rep.fail(kExitError, "io", err);
  auto engine = Engine::create({});
  if (!engine) return rep.fail(kExitError, "engine", engine.status().to_string());
  LoadOptions lo;
  lo.tier = tier;
  lo.progress = [](std::string_view line) { std::fprintf(stderr, "covenant: %.*s\n", (int)line.size(), line.data()); };
  std::fprintf(stderr, "covenant: validating and metering %s (%zu bytes)\n", file.c_str(), bytes.size());
  auto module = (*engine)->load(bytes, lo);
  if (!module) return rep.fail(kExitError, "load", file + ": " + module.status().to_string());
  auto t = (*module)->load_timings();
  if (as_json) {
    json j = {{"module", file},
              {"hash", (*module)->hash_hex()},
              {"tier", tier_name(tier)},
              {"cache_hit", t.cache_hit},
              {"timings_us", {{"load", t.load_us}, {"compile", t.compile_us}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: %s tier ready (%s); load %llu us, compile %llu us\n", file.c_str(), tier_name(tier),
                t.cache_hit ? "cached artifact" : "compiled", (unsigned long long)t.load_us,
                (unsigned long long)t.compile_us);
  }
  return kExitOk;
}

constexpr const char* kValidateUsage = "validate FILE.wasm [--json]";

// The engine's verdict on a module: what load accepts (parse, validate, the
// deterministic profile and limits, metering) is valid. It loads on the
// interpreter, the tier that compiles nothing, so the answer costs no compile;
// every tier starts from the same prepared module. A component is valid when
// its one core module is and its wiring reads (docs/components.md).
int validate_command(int argc, char** argv) {
  std::vector<std::string> argv_v = to_vector(argc, argv);
  Reporter rep{"validate", has_json_flag(argv_v)};
  std::string file;
  bool as_json = false;
  CLI::App app("Checks a module (or a component) the way the engine loads it: parse, validate, the deterministic "
               "profile and limits, metering. Exit 0 valid, 1 invalid or malformed (the reason on stderr).",
               "covenant validate");
  configure(app);
  add_pos(app, "FILE.wasm", file, "the module or component");
  add_json(app, as_json);
  if (auto code = parse(app, argv_v, rep, kValidateUsage)) return *code;
  if (file.empty()) return rep.usage("need a module file", kValidateUsage);
  if (std::string e = check_input_file("FILE.wasm", file); !e.empty()) return rep.fail(kExitError, "bad_file", e);
  std::vector<uint8_t> bytes;
  std::string err;
  if (!read_file(file, bytes, err)) return rep.fail(kExitError, "io", err);
  auto invalid = [&](const std::string& reason) {
    if (as_json)
      std::printf("%s\n", json{{"ok", false}, {"valid", false}, {"file", file},
                               {"error", {{"code", "invalid"}, {"message", file + ": " + reason}}}}
                              .dump()
                              .c_str());
    std::fprintf(stderr, "covenant validate: %s: invalid: %s\n", file.c_str(), reason.c_str());
    return kExitError;
  };
  std::vector<uint8_t> core;
  std::span<const uint8_t> module_bytes = bytes;
  const bool is_component = component::is_component(bytes);
  if (is_component) {
    auto c = component::read_component(bytes, file);
    if (!c) return invalid(c.status().message());
    core = std::move(c->core_module);
    module_bytes = core;
  }
  auto engine = Engine::create({});
  if (!engine) return rep.fail(kExitError, "engine", engine.status().to_string());
  LoadOptions lo;
  lo.tier = Tier::kInterp;
  lo.name = file;
  auto module = (*engine)->load(module_bytes, lo);
  if (!module) return invalid(module.status().to_string());
  const Module& m = **module;
  if (as_json) {
    json exports = json::array(), imports = json::array();
    for (const auto& e : m.exports()) exports.push_back({{"name", e.name}, {"type", e.type.to_string()}});
    for (const auto& i : m.imports())
      imports.push_back({{"module", i.module}, {"field", i.field}, {"type", i.type.to_string()}});
    std::printf("%s\n", json{{"ok", true}, {"valid", true}, {"file", file}, {"component", is_component},
                             {"hash", m.hash_hex()}, {"imports", imports}, {"exports", exports}}
                            .dump()
                            .c_str());
  } else {
    std::printf("%s: valid%s (%zu imports, %zu exported functions)\n", file.c_str(),
                is_component ? " component" : "", m.imports().size(), m.exports().size());
  }
  return kExitOk;
}

}  // namespace

COVENANT_COMMAND("validate", kValidateUsage, validate_command);
COVENANT_COMMAND("run", kRunUsage, run_command);
COVENANT_COMMAND("compile", kCompileUsage, compile_command);

}  // namespace covenant::cli
