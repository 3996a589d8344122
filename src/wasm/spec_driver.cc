// The WebAssembly spec testsuite driver: converts each .wast file of the Wasm
// 2.0 snapshot with wast2json and runs every command on every requested tier
// through the public engine API (Engine, Module, Instance, Linker), keeping
// state across the commands of a file (named and registered modules, the
// spectest imports). Results are checked against one expectations file
// (tests/spec/expected_failures.txt) listing every command that cannot pass,
// with its reason; docs/engine.md ("Spec testsuite") says how to run it.
//
// Thread-safety: each (tier, file) pair is one job with its own state; jobs
// share only the Engine (thread-safe) and the result tables (under a mutex).
// Ownership: a FileRun owns the instances of its file; host functions that forward a
// registered module's exports hold shared references to the instances.
//
// Exit code: 0 when every command either passes or is listed and fails; 1 when
// a command fails that is not listed, or a listed command passes (stale entry);
// 2 on a usage or setup error.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "covenant/engine.h"
#include "wabt/binary-reader-ir.h"
#include "wabt/binary-reader.h"
#include "wabt/ir.h"
#include "wabt/validator.h"

namespace covenant::spec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The spec assumes unbounded execution; fuel is Covenant's. The budget is
// large enough that a bulk operation charged for ~2^32 elements before its
// bounds check (prepare.cc charge_bulk) still reaches the out-of-bounds trap
// the spec expects; a loop that does not end is stopped by the deadline.
constexpr uint64_t kCallFuel = 1'000'000'000'000;
constexpr uint32_t kCallDeadlineMs = 60'000;

// ---------------------------------------------------------------- expectations

// One line of the expectations file: FILE:LINE or FILE:* (the whole file),
// an optional tier, and the reason.
struct Expectation {
  std::string file;  // "data.wast"
  int line = 0;      // 0: every command of the file may fail
  std::optional<Tier> tier;
  std::string reason;
};

struct Expectations {
  std::vector<std::string> header;  // leading comment lines, kept by --update
  std::vector<Expectation> entries;

  // The entry covering a command, if any (a line entry before a file entry).
  const Expectation* find(const std::string& file, int line, Tier tier) const {
    const Expectation* whole = nullptr;
    for (const auto& e : entries) {
      if (e.file != file || (e.tier && *e.tier != tier)) continue;
      if (e.line == line) return &e;
      if (e.line == 0) whole = &e;
    }
    return whole;
  }
};

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

bool read_expectations(const std::string& path, Expectations* out, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::string raw;
  int n = 0;
  bool in_header = true;
  while (std::getline(in, raw)) {
    ++n;
    std::string s = trim(raw);
    if (s.empty() || s[0] == '#') {
      if (in_header) out->header.push_back(raw);
      continue;
    }
    in_header = false;
    std::istringstream ls(s);
    std::string where, word;
    ls >> where;
    size_t colon = where.rfind(':');
    if (colon == std::string::npos) {
      *error = path + ":" + std::to_string(n) + ": expected FILE:LINE or FILE:*";
      return false;
    }
    Expectation e;
    e.file = where.substr(0, colon);
    std::string line = where.substr(colon + 1);
    if (line != "*") {
      char* end = nullptr;
      long v = std::strtol(line.c_str(), &end, 10);
      if (line.empty() || *end || v <= 0) {
        *error = path + ":" + std::to_string(n) + ": bad line number \"" + line + "\"";
        return false;
      }
      e.line = static_cast<int>(v);
    }
    std::string rest;
    std::getline(ls, rest);
    rest = trim(rest);
    size_t sp = rest.find(' ');
    if (auto t = parse_tier(rest.substr(0, sp)); t && *t != Tier::kAuto) {
      e.tier = t;
      rest = sp == std::string::npos ? "" : trim(rest.substr(sp));
    }
    if (rest.empty()) {
      *error = path + ":" + std::to_string(n) + ": an entry needs a reason";
      return false;
    }
    e.reason = rest;
    out->entries.push_back(std::move(e));
  }
  return true;
}

// ---------------------------------------------------------------- results

enum class Verdict : uint8_t { kPass, kFail, kSkip };

struct CommandResult {
  std::string file;
  int line = 0;
  std::string type;  // the command's type: assert_return, module, ...
  Tier tier = Tier::kInterp;
  Verdict verdict = Verdict::kPass;
  std::string detail;  // why it failed or was skipped
  std::string reason;  // classified cause of a failure, for --update
};

struct TierCounts {
  uint64_t passed = 0, failed = 0, expected = 0, skipped = 0, stale = 0;
  double seconds = 0;
};

// ---------------------------------------------------------------- classification

// What a module that the engine refused needs, found by validating it with
// libwabt under the default profile plus one more proposal at a time. Only
// used to word the reason of a failure for --update.
std::string needed_features(const std::vector<uint8_t>& bytes) {
  struct Proposal {
    const char* name;
    void (*enable)(wabt::Features&);
  };
  static const Proposal proposals[] = {
      {"multi-value", [](wabt::Features& f) { f.set_multi_value_enabled(true); }},
      {"bulk memory", [](wabt::Features& f) { f.set_bulk_memory_enabled(true); }},
      {"reference types", [](wabt::Features& f) { f.set_reference_types_enabled(true); }},
      {"extended const", [](wabt::Features& f) { f.set_extended_const_enabled(true); }},
      {"SIMD", [](wabt::Features& f) { f.set_simd_enabled(true); }},
  };
  auto valid = [&](const wabt::Features& f) {
    wabt::Module m;
    wabt::Errors errors;
    wabt::ReadBinaryOptions ro(f, nullptr, false, true, false);
    if (wabt::Failed(wabt::ReadBinaryIr("m", bytes.data(), bytes.size(), ro, &errors, &m))) return false;
    wabt::ValidateOptions vo(f);
    return wabt::Succeeded(wabt::ValidateModule(&m, &errors, vo));
  };
  auto base = [] {
    wabt::Features f;
    f.set_multi_value_enabled(false);
    f.set_bulk_memory_enabled(false);
    f.set_reference_types_enabled(false);
    f.set_simd_enabled(false);
    f.set_extended_const_enabled(false);
    return f;
  };
  wabt::Features all = base();
  for (const auto& p : proposals) p.enable(all);
  if (!valid(all)) return "";
  std::string out;
  for (size_t skip = 0; skip < std::size(proposals); ++skip) {
    wabt::Features f = base();
    for (size_t i = 0; i < std::size(proposals); ++i)
      if (i != skip) proposals[i].enable(f);
    if (!valid(f)) out += (out.empty() ? "" : ", ") + std::string(proposals[skip].name);
  }
  if (out.empty()) {  // any one of several proposals would do (e.g. multi-value or reference types)
    for (const auto& p : proposals) {
      wabt::Features f = base();
      p.enable(f);
      if (valid(f)) return p.name;
    }
    return "";
  }
  return out;
}

std::string load_failure_reason(const std::vector<uint8_t>& bytes, const Status& st) {
  const std::string& msg = st.message();
  if (st.code() == Code::kLimitExceeded) return "limit: " + msg.substr(0, 200);
  if (st.code() == Code::kInternal) return "engine bug: " + msg.substr(0, 200);
  if (msg.find("may import functions only") != std::string::npos) {
    size_t a = msg.find("import \""), b = msg.find(';');
    std::string what = a != std::string::npos && b != std::string::npos && b > a ? ": " + msg.substr(a, b - a) : "";
    return "unsupported: the Linker links functions only" + what;
  }
  // "the module uses SIMD (v128) (...) at ..., which is outside this engine's Wasm profile"
  if (size_t u = msg.find("the module uses "); u != std::string::npos && msg.find("outside") != std::string::npos) {
    size_t start = u + std::strlen("the module uses ");
    size_t end = msg.find(" (", start);
    return "feature " + msg.substr(start, end == std::string::npos ? std::string::npos : end - start) +
           " not in the profile";
  }
  std::string f = needed_features(bytes);
  if (!f.empty()) return "feature " + f + " not enabled";
  return "unexplained: the engine refuses a module libwabt validates: " + msg.substr(0, 160);
}

// ---------------------------------------------------------------- values

std::optional<Value> parse_value(const json& v, std::string* why) {
  const std::string type = v.value("type", "");
  if (!v.contains("value") || !v["value"].is_string()) {
    *why = "unsupported: " + type + " values are not in the public Value type";
    return std::nullopt;
  }
  const std::string s = v["value"].get<std::string>();
  uint64_t bits = std::strtoull(s.c_str(), nullptr, 10);
  if (type == "i32") return Value{ValType::kI32, bits & 0xffffffffu};
  if (type == "i64") return Value{ValType::kI64, bits};
  if (type == "f32") return Value{ValType::kF32, bits & 0xffffffffu};
  if (type == "f64") return Value{ValType::kF64, bits};
  *why = "unsupported: " + type + " values are not in the public Value type";
  return std::nullopt;
}

std::string show(const Value& v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s:0x%llx", valtype_name(v.type), (unsigned long long)v.bits);
  return buf;
}

// Matches a result against an expected value (bits, or a NaN pattern).
bool matches(const json& want, const Value& got, std::string* why) {
  const std::string type = want.value("type", "");
  if (type != valtype_name(got.type)) {
    *why = "result type " + std::string(valtype_name(got.type)) + ", expected " + type;
    return false;
  }
  const std::string s = want.value("value", "");
  const bool f32 = type == "f32";
  const uint64_t exp_mask = f32 ? 0x7f800000u : 0x7ff0000000000000ull;
  const uint64_t quiet = f32 ? 0x00400000u : 0x0008000000000000ull;
  const uint64_t payload = f32 ? 0x007fffffu : 0x000fffffffffffffull;
  if (s == "nan:canonical" || s == "nan:arithmetic") {
    const bool nan = (got.bits & exp_mask) == exp_mask && (got.bits & payload) != 0;
    const bool ok = s == "nan:canonical" ? nan && (got.bits & payload) == quiet : nan && (got.bits & quiet);
    if (!ok) *why = "got " + show(got) + ", expected " + s;
    return ok;
  }
  uint64_t bits = std::strtoull(s.c_str(), nullptr, 10);
  if (type == "i32" || type == "f32") bits &= 0xffffffffu;
  if (bits != got.bits) {
    *why = "got " + show(got) + ", expected " + show(Value{got.type, bits});
    return false;
  }
  return true;
}

// The trap kind an assert_trap/assert_exhaustion message names, if Covenant
// has one for it.
std::optional<TrapKind> trap_kind_for(const std::string& text) {
  static const std::pair<const char*, TrapKind> table[] = {
      {"unreachable", TrapKind::kUnreachable},
      {"integer divide by zero", TrapKind::kIntegerDivideByZero},
      {"integer overflow", TrapKind::kIntegerOverflow},
      {"invalid conversion to integer", TrapKind::kInvalidConversion},
      {"out of bounds memory access", TrapKind::kMemoryOutOfBounds},
      {"undefined element", TrapKind::kTableOutOfBounds},
      {"out of bounds table access", TrapKind::kTableOutOfBounds},
      {"uninitialized element", TrapKind::kUninitializedElement},
      {"indirect call type mismatch", TrapKind::kIndirectCallTypeMismatch},
      {"call stack exhausted", TrapKind::kStackExhausted},
  };
  for (const auto& [prefix, kind] : table)
    if (text.rfind(prefix, 0) == 0) return kind;
  return std::nullopt;
}

// ---------------------------------------------------------------- one file on one tier

// A module instance of the file, shared with the host functions that forward
// its exports to modules that import them.
struct Slot {
  std::shared_ptr<Module> module;
  std::unique_ptr<Instance> instance;
  int line = 0;
  std::string broken;  // why it did not load or instantiate ("" if it did)
  std::string reason;  // classified cause, for --update
  // What the module exports besides what Module::exports() lists, by name:
  // why the public API cannot reach it (see export_gaps).
  std::map<std::string, std::string> gaps;
};

// The exports of a module that a spec command may name but the public API
// cannot call, with the reason: globals, tables and memories (the API
// exports functions only), functions with reference or v128 values in their
// type (Value holds numbers only).
std::map<std::string, std::string> export_gaps(const std::vector<uint8_t>& bytes) {
  std::map<std::string, std::string> out;
  wabt::Features f;
  f.EnableAll();
  wabt::Module m;
  wabt::Errors errors;
  wabt::ReadBinaryOptions ro(f, nullptr, false, true, false);
  if (wabt::Failed(wabt::ReadBinaryIr("m", bytes.data(), bytes.size(), ro, &errors, &m))) return out;
  for (const wabt::Export* e : m.exports) {
    if (e->kind != wabt::ExternalKind::Func) {
      out[e->name] = "unsupported: \"" + e->name + "\" is a " + wabt::GetKindName(e->kind) +
                     " export; the public API exports functions only";
      continue;
    }
    wabt::Index i = m.GetFuncIndex(e->var);
    const wabt::FuncSignature& sig = m.funcs[i]->decl.sig;
    bool numbers = true;
    for (const auto* types : {&sig.param_types, &sig.result_types})
      for (wabt::Type t : *types)
        numbers &= t == wabt::Type::I32 || t == wabt::Type::I64 || t == wabt::Type::F32 || t == wabt::Type::F64;
    if (!numbers)
      out[e->name] = "unsupported: \"" + e->name +
                     "\" takes or returns funcref/externref/v128, which the public API does not export";
  }
  return out;
}

class FileRun {
 public:
  FileRun(Engine& engine, Tier tier, fs::path dir, std::string file, bool trace)
      : engine_(engine), tier_(tier), dir_(std::move(dir)), file_(std::move(file)), trace_(trace) {
    define_spectest();
  }

  std::vector<CommandResult> run(const json& commands) {
    for (const json& c : commands) {
      CommandResult r;
      r.file = file_;
      r.line = c.value("line", 0);
      r.type = c.value("type", "");
      r.tier = tier_;
      invoked_line_ = 0;
      if (trace_) std::fprintf(stderr, "spec: %s:%d %s %s\n", file_.c_str(), r.line, tier_name(tier_), r.type.c_str());
      run_command(c, r);
      results_.push_back(std::move(r));
    }
    return std::move(results_);
  }

 private:
  void fail(CommandResult& r, std::string detail, std::string reason = "") {
    r.verdict = Verdict::kFail;
    r.detail = std::move(detail);
    // A wrong result after a command that could not run is most likely its
    // consequence (elem segments never written into a shared table, a
    // table.grow with an externref never made).
    // Only an instance that existed then can miss its effects; the first such
    // command after the instance was made is named.
    if (reason.empty() && invoked_line_) {
      for (const auto& [line, why] : missing_effects_) {
        if (line <= invoked_line_) continue;
        reason = "unsupported: expects the effects of line " + std::to_string(line) + " (" + why + ")";
        break;
      }
    }
    r.reason = reason.empty() ? "unexplained: " + r.detail.substr(0, 200) : std::move(reason);
    if (r.type != "assert_invalid" && r.type != "assert_malformed" && r.type != "assert_unlinkable" &&
        r.type != "assert_uninstantiable")
      note_missing_effects(r.line, r.reason);
  }

  // Remembers a command that could not run for a reason the public API gives
  // (not one derived from another), for the failures that follow from it.
  void note_missing_effects(int line, const std::string& reason) {
    static const std::string kPrefix = "unsupported: ";
    if (reason.rfind(kPrefix, 0) != 0 || reason.rfind(kPrefix + "expects the effects", 0) == 0) return;
    missing_effects_.push_back({line, reason.substr(kPrefix.size(), 100)});
  }

  void run_command(const json& c, CommandResult& r) {
    const std::string& t = r.type;
    if (t == "module") {
      auto slot = instantiate(c, r);
      if (!slot->broken.empty()) fail(r, slot->broken, slot->reason);
      current_ = slot;
      if (c.contains("name")) named_[c["name"].get<std::string>()] = slot;
    } else if (t == "register") {
      auto slot = c.contains("name") ? named_[c["name"].get<std::string>()] : current_;
      if (!slot || !slot->instance) {
        fail(r, "register of a module that did not load", slot ? slot->reason : "");
        if (slot) broken_registrations_[c.value("as", "")] = slot->reason;
        return;
      }
      register_exports(c.value("as", ""), slot);
    } else if (t == "action") {
      CallOutcome out;
      if (invoke(c["action"], r, &out) && !out.ok())
        fail(r, std::string("trapped: ") + trap_kind_name(out.trap.kind) + ": " + out.trap.message);
    } else if (t == "assert_return") {
      CallOutcome out;
      if (!invoke(c["action"], r, &out)) return;
      if (!out.ok()) {
        fail(r, std::string("trapped: ") + trap_kind_name(out.trap.kind) + ": " + out.trap.message);
        return;
      }
      const json& want = c["expected"];
      if (want.size() != out.results.size()) {
        fail(r, std::to_string(out.results.size()) + " results, expected " + std::to_string(want.size()));
        return;
      }
      for (size_t i = 0; i < want.size(); ++i) {
        std::string why;
        if (!want[i].contains("value") || !want[i]["value"].is_string()) {
          fail(r, "expected value of type " + want[i].value("type", "?"),
               "unsupported: " + want[i].value("type", "?") + " values are not in the public Value type");
          return;
        }
        if (!matches(want[i], out.results[i], &why)) {
          fail(r, "result " + std::to_string(i) + ": " + why);
          return;
        }
      }
    } else if (t == "assert_trap" || t == "assert_exhaustion") {
      CallOutcome out;
      if (!invoke(c["action"], r, &out)) return;
      const std::string text = c.value("text", "");
      if (out.ok()) {
        fail(r, "returned, expected a trap \"" + text + "\"");
        return;
      }
      auto want = trap_kind_for(text);
      bool ok = !want || out.trap.kind == *want ||
                (out.trap.kind == TrapKind::kHost &&  // forwarded from a registered module
                 out.trap.message.find(trap_kind_name(*want)) != std::string::npos);
      if (!ok)
        fail(r, std::string("trapped ") + trap_kind_name(out.trap.kind) + " (" + out.trap.message +
                    "), expected \"" + text + "\"");
    } else if (t == "assert_invalid" || t == "assert_malformed") {
      if (c.value("module_type", "binary") != "binary") {
        r.verdict = Verdict::kSkip;
        r.detail = "text module: the engine loads binaries only";
        return;
      }
      auto bytes = read_module(c);
      auto m = engine_.load(bytes, {.tier = tier_, .name = c.value("filename", "")});
      if (m.is_ok()) {
        const bool known = (file_ == "data.wast" && r.line == 400) || (file_ == "elem.wast" && r.line == 372);
        fail(r, "loaded a module the spec says is " + std::string(t == "assert_invalid" ? "invalid" : "malformed") +
                    " (\"" + c.value("text", "") + "\")",
             known ? "accepted: wabt 1.0.32's validator wrongly accepts an empty offset expression; Covenant must "
                     "reject it"
                   : "accepted: the loader does not refuse it (\"" + c.value("text", "") + "\")");
      }
    } else if (t == "assert_unlinkable" || t == "assert_uninstantiable") {
      // Refusing such a module at load (Covenant checks segment bounds and
      // import kinds before instantiation) is a refusal too.
      auto slot = instantiate(c, r);
      // Wasm 2.0 writes segments into imported memories and tables before the
      // start function traps; a module refused for its imports wrote nothing.
      if (t == "assert_uninstantiable") note_missing_effects(r.line, slot->reason);
      if (slot->broken.empty())
        fail(r, "instantiated a module the spec says is " +
                    std::string(t == "assert_unlinkable" ? "unlinkable" : "uninstantiable") + " (\"" +
                    c.value("text", "") + "\")");
    } else {
      fail(r, "unknown command type " + t, "unsupported: command type " + t);
    }
  }

  std::vector<uint8_t> read_module(const json& c) {
    std::ifstream in(dir_ / c.value("filename", ""), std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::shared_ptr<Slot> instantiate(const json& c, CommandResult& r) {
    auto slot = std::make_shared<Slot>();
    slot->line = r.line;
    auto bytes = read_module(c);
    auto m = engine_.load(bytes, {.tier = tier_, .name = c.value("filename", "")});
    if (!m.is_ok()) {
      slot->broken = "load: " + m.status().to_string();
      slot->reason = load_failure_reason(bytes, m.status());
      return slot;
    }
    slot->module = *m;
    slot->gaps = export_gaps(bytes);
    auto inst = slot->module->instantiate(linker_);
    if (!inst.is_ok()) {
      slot->broken = "instantiate: " + inst.status().to_string();
      slot->reason = "unexplained: " + slot->broken.substr(0, 200);
      for (const auto& imp : slot->module->imports()) {
        if (linker_.find(imp.module, imp.field)) continue;
        auto b = broken_registrations_.find(imp.module);
        slot->reason = b != broken_registrations_.end()
                           ? b->second
                           : "unsupported: import " + imp.module + "." + imp.field +
                                 " is not a function export (the public API exports functions only)";
        break;
      }
      return slot;
    }
    slot->instance = std::move(*inst);
    return slot;
  }

  // Runs an invoke action; false (and r failed) if it could not be run. A
  // `get` action reads a global, which the public API does not export.
  bool invoke(const json& a, CommandResult& r, CallOutcome* out) {
    if (a.value("type", "") != "invoke") {
      fail(r, "action " + a.value("type", "?") + " is not supported",
           "unsupported: `get` needs exported globals, which the public API does not expose");
      return false;
    }
    auto slot = a.contains("module") ? named_[a["module"].get<std::string>()] : current_;
    if (!slot) {
      fail(r, "no module to invoke");
      return false;
    }
    if (!slot->instance) {
      fail(r, "module of line " + std::to_string(slot->line) + " is not available (" + slot->broken.substr(0, 160) + ")",
           slot->reason);
      return false;
    }
    invoked_line_ = slot->line;
    std::vector<Value> args;
    for (const json& v : a["args"]) {
      std::string why;
      auto val = parse_value(v, &why);
      if (!val) {
        fail(r, why, why);
        return false;
      }
      args.push_back(*val);
    }
    const std::string field = a.value("field", "");
    if (auto gap = slot->gaps.find(field); gap != slot->gaps.end() && !slot->module->export_index(field)) {
      fail(r, "not called: " + gap->second, gap->second);
      return false;
    }
    auto res = slot->instance->call(field, args, {.fuel = kCallFuel, .deadline_ms = kCallDeadlineMs});
    if (!res.is_ok()) {
      std::string why = res.status().to_string();
      bool missing = res.status().code() == Code::kNotFound;
      fail(r, "call: " + why,
           missing ? "unsupported: \"" + field + "\" is not an exported function (the public API exports functions only)"
                   : "");
      return false;
    }
    *out = std::move(*res);
    return true;
  }

  void define_spectest() {
    auto print = [](HostCall&, std::span<const Value>, std::span<Value>) { return HostResult::ok(); };
    using V = ValType;
    const std::pair<const char*, std::vector<ValType>> prints[] = {
        {"print", {}},
        {"print_i32", {V::kI32}},
        {"print_i64", {V::kI64}},
        {"print_f32", {V::kF32}},
        {"print_f64", {V::kF64}},
        {"print_i32_f32", {V::kI32, V::kF32}},
        {"print_f64_f64", {V::kF64, V::kF64}},
    };
    for (const auto& [name, params] : prints) linker_.define("spectest", name, FuncType{params, {}}, print);
  }

  // Offers every function export of `slot` under module name `as`. The call
  // runs on a thread of its own: on the C tiers, Instance::call into another
  // instance from inside a host function leaves this thread's guest state
  // (trap landing pad, memory bounds) cleared when it returns, and a later
  // trap of the calling guest then kills the process (SIGSEGV).
  void register_exports(const std::string& as, std::shared_ptr<Slot> slot) {
    const auto& exports = slot->module->exports();
    for (uint32_t i = 0; i < exports.size(); ++i) {
      linker_.define(as, exports[i].name, exports[i].type,
                     [slot, i](HostCall&, std::span<const Value> args, std::span<Value> results) {
                       std::optional<Result<CallOutcome>> res;
                       run_with_big_stack([&] {
                         res.emplace(slot->instance->call(i, args, {.fuel = kCallFuel, .deadline_ms = kCallDeadlineMs}));
                         return 0;
                       });
                       if (!res->is_ok()) return HostResult::trap(res->status().to_string());
                       const CallOutcome& out = res->value();
                       if (!out.ok())
                         return HostResult::trap(std::string(trap_kind_name(out.trap.kind)) + ": " + out.trap.message);
                       for (size_t k = 0; k < results.size() && k < out.results.size(); ++k) results[k] = out.results[k];
                       return HostResult::ok();
                     });
    }
  }

  Engine& engine_;
  Tier tier_;
  fs::path dir_;
  std::string file_;
  bool trace_;
  Linker linker_;
  std::shared_ptr<Slot> current_;
  std::map<std::string, std::shared_ptr<Slot>> named_;
  std::map<std::string, std::string> broken_registrations_;  // `register` name -> why its module is missing
  // Commands that could not run for a reason the public API gives, in order.
  std::vector<std::pair<int, std::string>> missing_effects_;
  int invoked_line_ = 0;  // the module line of the instance the current command calls (0: none)
  std::vector<CommandResult> results_;
};

// ---------------------------------------------------------------- driver

struct Options {
  std::string suite_dir;
  std::string expect_path;
  std::string work_dir;
  std::string summary_path;
  std::vector<Tier> tiers;
  std::vector<std::string> only_files;  // basenames; empty: all
  int shard = 0, shards = 1;
  int jobs = 1;
  bool update = false;
  bool verbose = false;
  std::string cc_flags;  // optimized tier's compiler flags; empty: the engine's default (-O2)
  bool trace = false;  // each command on stderr before it runs (to find a crash)
};

int usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: wasm_spec_driver --suite DIR --expect FILE [--tier interp,baseline,optimized]\n"
               "       [--shard I/N] [--jobs N] [--work DIR] [--summary FILE.tsv] [--update] [--verbose] [--trace]\n"
               "       [--cc-flags FLAGS] [FILE.wast...]\n"
               "       wasm_spec_driver --report DIR   (adds up the spec-counts-*.tsv files in DIR)\n"
               "  $COVENANT_SPEC_SUITE overrides --suite; $COVENANT_SPEC_UPDATE=1 is --update.\n",
               msg);
  return 2;
}

bool convert(const fs::path& wast, const fs::path& out_dir, std::string* error) {
  fs::create_directories(out_dir);
  const std::string json_path = (out_dir / (wast.stem().string() + ".json")).string();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) dup2(fd, 1);
    execlp("wast2json", "wast2json", wast.c_str(), "-o", json_path.c_str(), (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *error = "wast2json " + wast.string() + " failed (status " + std::to_string(status) +
             "; is wabt installed? scripts/setup.sh installs it)";
    return false;
  }
  return true;
}

// A reason the driver does not write itself (see FileRun::fail and
// load_failure_reason): kept by --update where the driver has no explanation.
bool hand_written(const std::string& reason) {
  for (const char* p : {"feature ", "unsupported: ", "accepted: ", "engine bug: ", "limit: ", "unexplained"})
    if (reason.rfind(p, 0) == 0) return false;
  return true;
}

// Rewrites the expectations file from this run's failures: an existing entry
// that still covers a failure keeps its hand-written reason; a command failing
// on every tier gets one entry without a tier.
bool write_expectations(const std::string& path, const Expectations& old, const std::vector<CommandResult>& results,
                        size_t tier_count) {
  struct Key {
    std::string file;
    int line;
    bool operator<(const Key& o) const { return std::tie(file, line) < std::tie(o.file, o.line); }
  };
  std::map<Key, std::vector<const CommandResult*>> failed;
  std::map<std::string, std::pair<size_t, size_t>> per_file;  // failed, total
  for (const auto& r : results) {
    auto& pf = per_file[r.file];
    ++pf.second;
    if (r.verdict != Verdict::kFail) continue;
    ++pf.first;
    failed[{r.file, r.line}].push_back(&r);
  }
  std::ostringstream out;
  for (const auto& h : old.header) out << h << "\n";
  // Whole-file entries stay while their file still fails somewhere.
  std::set<std::string> whole;
  for (const auto& e : old.entries) {
    if (e.line == 0 && per_file[e.file].first > 0) {
      whole.insert(e.file);
      out << e.file << ":*" << (e.tier ? std::string(" ") + tier_name(*e.tier) : "") << " " << e.reason << "\n";
    }
  }
  // The SIMD files (SIMD is off in the profile, and the public Value type
  // has no v128) are listed whole rather than command by command.
  {
    std::set<std::string> simd_files;
    for (const auto& [key, rs] : failed)
      if (key.file.rfind("simd_", 0) == 0) simd_files.insert(key.file);
    for (const auto& file : simd_files) {
      if (whole.count(file)) continue;
      whole.insert(file);
      out << file << ":* feature SIMD not enabled (and the public Value type has no v128)\n";
    }
  }
  for (const auto& [key, rs] : failed) {
    if (whole.count(key.file)) continue;
    std::set<Tier> tiers;
    for (const auto* r : rs) tiers.insert(r->tier);
    // The driver's own classification wins; where it has none
    // ("unexplained"), a reason written into the file by hand is kept.
    auto reason_for = [&](std::optional<Tier> t) {
      std::string computed = "unexplained";
      for (const auto* r : rs)
        if (!t || r->tier == *t) {
          computed = r->reason;
          break;
        }
      if (computed.rfind("unexplained", 0) != 0) return computed;
      for (const auto& e : old.entries)
        if (e.file == key.file && e.line == key.line && e.tier == t && hand_written(e.reason)) return e.reason;
      for (const auto& e : old.entries)
        if (e.file == key.file && e.line == key.line && !e.tier && hand_written(e.reason)) return e.reason;
      return computed;
    };
    // A wrong result blamed on an earlier command that could not run, but on
    // some tiers only, is a tier difference: not explained by that command.
    auto reason_of = [&](std::optional<Tier> t) {
      std::string r = reason_for(t);
      if (tiers.size() < tier_count && r.rfind("unsupported: expects the effects", 0) == 0)
        r = "unexplained: fails on some tiers only; " + r;
      return r;
    };
    std::set<std::string> reasons;
    for (Tier t : tiers) reasons.insert(reason_of(t));
    if (tiers.size() == tier_count && reasons.size() == 1) {
      out << key.file << ":" << key.line << " " << reason_of(std::nullopt) << "\n";
    } else {
      for (Tier t : tiers) out << key.file << ":" << key.line << " " << tier_name(t) << " " << reason_of(t) << "\n";
    }
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << out.str();
    if (!f) return false;
  }
  fs::rename(tmp, path);
  return true;
}

// Prints one row per tier and a total; returns the total.
TierCounts print_table(const std::string& title, const std::vector<std::pair<Tier, TierCounts>>& rows) {
  std::printf("%s\n%-10s %8s %8s %9s %8s %6s %9s\n", title.c_str(), "tier", "passed", "failed", "expected",
              "skipped", "stale", "seconds");
  TierCounts total;
  auto row = [](const char* name, const TierCounts& c) {
    std::printf("%-10s %8llu %8llu %9llu %8llu %6llu %9.1f\n", name, (unsigned long long)c.passed,
                (unsigned long long)c.failed, (unsigned long long)c.expected, (unsigned long long)c.skipped,
                (unsigned long long)c.stale, c.seconds);
  };
  for (const auto& [t, c] : rows) {
    row(tier_name(t), c);
    total.passed += c.passed, total.failed += c.failed, total.expected += c.expected;
    total.skipped += c.skipped, total.stale += c.stale, total.seconds += c.seconds;
  }
  row("total", total);
  return total;
}

// --report DIR: the per-tier counts of every spec test of the last ctest run
// (their --summary files, spec-counts-*.tsv), added up. Run by ctest after
// the tests (CTEST_CUSTOM_POST_TEST) so the counts show in CI's log even when
// every test passed.
int report(const std::string& dir) {
  std::map<Tier, TierCounts> sum;
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("spec-counts-", 0) != 0 || e.path().extension() != ".tsv") continue;
    ++n;
    std::ifstream in(e.path());
    std::string tier;
    TierCounts c;
    while (in >> tier >> c.passed >> c.failed >> c.expected >> c.skipped >> c.stale >> c.seconds) {
      auto t = parse_tier(tier);
      if (!t) continue;
      TierCounts& s = sum[*t];
      s.passed += c.passed, s.failed += c.failed, s.expected += c.expected;
      s.skipped += c.skipped, s.stale += c.stale, s.seconds += c.seconds;
    }
  }
  if (n == 0) return 0;  // no spec test ran
  std::vector<std::pair<Tier, TierCounts>> rows(sum.begin(), sum.end());
  print_table("spec testsuite, all tiers (" + std::to_string(n) + " ctest runs; expected = tests/spec/expected_failures.txt):",
              rows);
  return 0;
}

int run(const Options& opt) {
  // The files of this run.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(opt.suite_dir))
    if (e.path().extension() == ".wast") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "spec: no .wast files in %s\n", opt.suite_dir.c_str());
    return 2;
  }
  if (!opt.only_files.empty()) {
    std::erase_if(files, [&](const fs::path& p) {
      return std::find(opt.only_files.begin(), opt.only_files.end(), p.filename().string()) == opt.only_files.end();
    });
  }
  Expectations expect;
  std::string error;
  if (!read_expectations(opt.expect_path, &expect, &error)) {
    std::fprintf(stderr, "spec: %s\n", error.c_str());
    return 2;
  }

  // Convert every file once, shared by the tiers.
  fs::path work = opt.work_dir;
  fs::create_directories(work);
  std::map<std::string, json> commands;
  for (const auto& f : files) {
    fs::path dir = work / f.stem();
    if (!convert(f, dir, &error)) {
      std::fprintf(stderr, "spec: %s\n", error.c_str());
      return 2;
    }
    std::ifstream in(dir / (f.stem().string() + ".json"));
    commands[f.filename().string()] = json::parse(in)["commands"];
  }
  if (opt.shards > 1) {
    // Balanced by distinct modules (what the optimized tier pays for: one
    // compile each, identical bytes hit the artifact cache), greedily,
    // heaviest file first; deterministic for a given suite.
    std::map<std::string, size_t> weights;
    for (const auto& f : files) {
      std::set<std::string> distinct;
      for (const json& c : commands[f.filename().string()]) {
        if (c.value("type", "") != "module") continue;
        std::ifstream in(work / f.stem() / c.value("filename", ""), std::ios::binary);
        distinct.insert(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
      }
      // SIMD is off: those modules are refused at load, before any compile.
      const bool refused = f.filename().string().rfind("simd_", 0) == 0;
      weights[f.filename().string()] = 1 + (refused ? 0 : distinct.size());
    }
    auto weight = [&](const fs::path& f) { return weights[f.filename().string()]; };
    std::vector<fs::path> order = files;
    std::stable_sort(order.begin(), order.end(), [&](const fs::path& a, const fs::path& b) { return weight(a) > weight(b); });
    std::vector<size_t> load(opt.shards, 0);
    std::vector<fs::path> mine;
    for (const auto& f : order) {
      size_t s = std::min_element(load.begin(), load.end()) - load.begin();
      load[s] += weight(f);
      if (int(s) == opt.shard) mine.push_back(f);
    }
    std::sort(mine.begin(), mine.end());
    files = std::move(mine);
  }

  EngineConfig config;  // the default profile: what users get
  if (const char* c = std::getenv("COVENANT_CACHE_DIR")) config.cache_dir = c;
  if (!opt.cc_flags.empty()) {
    config.cc_flags.clear();
    std::stringstream ss(opt.cc_flags);
    for (std::string f; ss >> f;) config.cc_flags.push_back(f);
  }
  auto engine = Engine::create(config);
  if (!engine.is_ok()) {
    std::fprintf(stderr, "spec: %s\n", engine.status().to_string().c_str());
    return 2;
  }

  // Jobs: (tier, file) pairs, biggest files first so the pool drains evenly.
  struct Job {
    Tier tier;
    fs::path file;
  };
  std::vector<Job> jobs;
  for (Tier t : opt.tiers)
    for (const auto& f : files) jobs.push_back({t, f});
  std::stable_sort(jobs.begin(), jobs.end(), [&](const Job& a, const Job& b) {
    return commands[a.file.filename().string()].size() > commands[b.file.filename().string()].size();
  });
  std::mutex mu;
  std::vector<CommandResult> results;
  std::map<Tier, double> tier_seconds;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      const Job& job = jobs[j];
      const std::string name = job.file.filename().string();
      auto t0 = std::chrono::steady_clock::now();
      FileRun fr(**engine, job.tier, work / job.file.stem(), name, opt.trace);
      auto rs = fr.run(commands[name]);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(mu);
      tier_seconds[job.tier] += s;
      if (opt.verbose) std::printf("spec: %-10s %-36s %6zu commands %7.2fs\n", tier_name(job.tier), name.c_str(), rs.size(), s);
      for (auto& r : rs) results.push_back(std::move(r));
    }
  };
  auto wall0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int i = 0; i < std::max(1, opt.jobs); ++i)
    pool.emplace_back([&] { run_with_big_stack([&] { worker(); return 0; }); });
  for (auto& t : pool) t.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::sort(results.begin(), results.end(), [](const CommandResult& a, const CommandResult& b) {
    return std::tie(a.file, a.line, a.tier) < std::tie(b.file, b.line, b.tier);
  });

  if (opt.update) {
    if (!write_expectations(opt.expect_path, expect, results, opt.tiers.size())) {
      std::fprintf(stderr, "spec: cannot write %s\n", opt.expect_path.c_str());
      return 2;
    }
    Expectations fresh;
    if (!read_expectations(opt.expect_path, &fresh, &error)) {
      std::fprintf(stderr, "spec: %s\n", error.c_str());
      return 2;
    }
    std::printf("spec: rewrote %s (%zu entries)\n", opt.expect_path.c_str(), fresh.entries.size());
    expect = std::move(fresh);
  }

  // Check against the expectations.
  std::map<Tier, TierCounts> counts;
  std::vector<std::string> unexpected, stale;
  std::map<std::pair<std::string, Tier>, std::pair<uint64_t, uint64_t>> whole_file;  // file entry: failed, covered
  std::set<std::string> seen_files;
  std::set<const Expectation*> used;
  for (const auto& r : results) {
    TierCounts& c = counts[r.tier];
    seen_files.insert(r.file);
    const Expectation* e = expect.find(r.file, r.line, r.tier);
    if (e) used.insert(e);
    const std::string where = r.file + ":" + std::to_string(r.line) + " " + tier_name(r.tier) + " " + r.type;
    if (e && e->line == 0) {
      auto& w = whole_file[{r.file, r.tier}];
      ++w.second;
      if (r.verdict == Verdict::kFail) ++w.first;
    }
    switch (r.verdict) {
      case Verdict::kSkip: ++c.skipped; break;
      case Verdict::kPass:
        if (e && e->line != 0) {
          ++c.stale;
          stale.push_back(where + ": passes, but the expectations list it (" + e->reason + ")");
        } else {
          ++c.passed;
        }
        break;
      case Verdict::kFail:
        if (e) {
          ++c.expected;
          if (opt.verbose) std::printf("XFAIL %s: %s  [%s]\n", where.c_str(), r.detail.c_str(), e->reason.c_str());
        } else {
          ++c.failed;
          unexpected.push_back(where + ": " + r.detail + "  [" + r.reason + "]");
        }
        break;
    }
  }
  for (const auto& [key, w] : whole_file) {
    if (w.first == 0) {
      ++counts[key.second].stale;
      stale.push_back(key.first + ":* " + tier_name(key.second) + ": every command passes, but the file is listed");
    }
  }
  // An entry that covers no command (a typo, a line that moved) is stale
  // too; checked for the files and tiers this run covers.
  const bool every_file = opt.only_files.empty() && opt.shards == 1;
  for (const auto& e : expect.entries) {
    if (used.count(&e) || (!every_file && !seen_files.count(e.file))) continue;
    if (e.tier && std::find(opt.tiers.begin(), opt.tiers.end(), *e.tier) == opt.tiers.end()) continue;
    ++counts[e.tier ? *e.tier : opt.tiers.front()].stale;
    stale.push_back(e.file + ":" + (e.line ? std::to_string(e.line) : "*") + ": listed, but no command there");
  }
  for (auto& [t, c] : counts) c.seconds = tier_seconds[t];

  constexpr size_t kShowMax = 200;
  for (size_t i = 0; i < unexpected.size() && i < kShowMax; ++i) std::printf("FAIL  %s\n", unexpected[i].c_str());
  if (unexpected.size() > kShowMax) std::printf("FAIL  ... and %zu more\n", unexpected.size() - kShowMax);
  for (size_t i = 0; i < stale.size() && i < kShowMax; ++i) std::printf("STALE %s\n", stale[i].c_str());
  if (stale.size() > kShowMax) std::printf("STALE ... and %zu more\n", stale.size() - kShowMax);

  std::string title = "spec testsuite: " + std::to_string(files.size()) + " files";
  if (opt.shards > 1) title += ", shard " + std::to_string(opt.shard) + "/" + std::to_string(opt.shards);
  char wall_text[64];
  std::snprintf(wall_text, sizeof wall_text, ", %.1f s wall", wall);
  std::vector<std::pair<Tier, TierCounts>> rows;
  for (Tier t : opt.tiers) rows.push_back({t, counts[t]});
  const TierCounts total = print_table(title + wall_text, rows);
  std::printf("expected = listed in %s; skipped = text-format assert_malformed modules\n", opt.expect_path.c_str());
  if (!opt.summary_path.empty()) {
    std::ofstream f(opt.summary_path);
    for (const auto& [t, c] : rows)
      f << tier_name(t) << "\t" << c.passed << "\t" << c.failed << "\t" << c.expected << "\t" << c.skipped << "\t"
        << c.stale << "\t" << c.seconds << "\n";
  }
  if (total.failed || total.stale) {
    std::printf("spec: %llu unexpected failures, %llu stale expectations. If a feature now passes, refresh the list:\n"
                "  cmake --build build --target wasm_spec_update   (wasm_spec_driver --update: every tier, every file)\n",
                (unsigned long long)total.failed, (unsigned long long)total.stale);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace covenant::spec

int main(int argc, char** argv) {
  using covenant::Tier;
  covenant::spec::Options opt;
  opt.tiers = {Tier::kInterp, Tier::kBaseline, Tier::kOptimized};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--suite") opt.suite_dir = value();
    else if (a == "--expect") opt.expect_path = value();
    else if (a == "--work") opt.work_dir = value();
    else if (a == "--summary") opt.summary_path = value();
    else if (a == "--update") opt.update = true;
    else if (a == "--verbose") opt.verbose = true;
    else if (a == "--trace") opt.trace = true;
    else if (a == "--cc-flags") opt.cc_flags = value();
    else if (a == "--report") return covenant::spec::report(value());
    else if (a == "--jobs") opt.jobs = std::atoi(value().c_str());
    else if (a == "--shard") {
      std::string s = value();
      if (std::sscanf(s.c_str(), "%d/%d", &opt.shard, &opt.shards) != 2 || opt.shards < 1 || opt.shard < 0 ||
          opt.shard >= opt.shards)
        return covenant::spec::usage("--shard wants I/N with 0 <= I < N");
    } else if (a == "--tier") {
      opt.tiers.clear();
      std::stringstream ss(value());
      for (std::string t; std::getline(ss, t, ',');) {
        auto tier = covenant::parse_tier(t);
        if (!tier || *tier == Tier::kAuto) return covenant::spec::usage(("unknown tier " + t).c_str());
        opt.tiers.push_back(*tier);
      }
    } else if (a.size() > 5 && a.ends_with(".wast")) {
      opt.only_files.push_back(a);
    } else {
      return covenant::spec::usage(("unknown argument " + a).c_str());
    }
  }
  if (const char* s = std::getenv("COVENANT_SPEC_SUITE"); s && *s) opt.suite_dir = s;
  if (const char* u = std::getenv("COVENANT_SPEC_UPDATE"); u && std::string(u) == "1") opt.update = true;
  if (opt.suite_dir.empty() || opt.expect_path.empty()) return covenant::spec::usage("--suite and --expect are required");
  if (!std::filesystem::is_directory(opt.suite_dir))
    return covenant::spec::usage(("spec testsuite not found at " + opt.suite_dir +
                                  " (set COVENANT_SPEC_SUITE to its directory)").c_str());
  if (opt.update && (opt.tiers.size() != 3 || opt.shards != 1 || !opt.only_files.empty()))
    return covenant::spec::usage("--update needs every tier and every file (no --tier, --shard or FILE)");
  const bool own_work_dir = opt.work_dir.empty();
  if (own_work_dir) {
    char tmpl[] = "/tmp/covenant-spec.XXXXXX";
    if (!mkdtemp(tmpl)) return covenant::spec::usage("cannot create a work directory");
    opt.work_dir = tmpl;
  }
  int rc = covenant::spec::run(opt);
  std::error_code ec;
  if (own_work_dir) std::filesystem::remove_all(opt.work_dir, ec);
  return rc;
}
