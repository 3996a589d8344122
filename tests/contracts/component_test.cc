// Components made by the standard toolchain (contracts/components: wasm-tools'
// componentEmbed + componentNew, from npm @bytecodealliance/jco-transpile):
//  - Covenant reads them (src/abi/component.cc) and gives the same decisions as
//    the core modules they wrap, on the 320-intent corpus, in all four languages;
//  - the same components transpiled by `jco transpile` and run in Node give the
//    same decisions (tools/component.mjs run);
//  - the stateful budget component (kv, log, clock imports through wit-component's
//    shim and fix-up modules) agrees with its core module and with Node;
//  - hand-written components (tests/contracts/components/*.wat) outside what
//    Covenant runs are refused with errors that say why;
//  - every truncation and many single-byte changes of a real component fail cleanly.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "covenant/component.h"
#include "covenant/contract.h"
#include "covenant/wit_json.h"
#include "corpus.h"

namespace covenant {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using abi::WitValue;

const fs::path kComponents = fs::path(COVENANT_BINARY_DIR) / "contracts/components";
const fs::path kTool = fs::path(COVENANT_SOURCE_DIR) / "tools/component.mjs";

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

fs::path temp_dir() {
  static const fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("covenant-component-test-" + std::to_string(getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// Runs a shell command; stdout into *out, stderr into *err; returns the exit status.
int run(const std::string& cmd, std::string* out, std::string* err = nullptr) {
  const fs::path o = temp_dir() / "cmd.out";
  const int rc = std::system((cmd + " > '" + o.string() + "' 2> '" + o.string() + ".err'").c_str());
  *out = read_text(o);
  const std::string e = read_text(o.string() + ".err");
  if (err) *err = e;
  else *out += e;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::vector<json> corpus() { return testing_corpus::read_corpus(); }

Engine& engine() {
  static auto e = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "policy_corpus_cache").string()});
  return **e;
}

std::unique_ptr<Contract> deploy(const std::vector<uint8_t>& wasm, const std::string& name, const std::string& wit = "",
                                 const Grants& grants = {}) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.name = name;
  o.wit = wit;
  o.grants = grants;
  o.deployment = name;
  auto c = Contract::deploy(engine(), wasm, o);
  EXPECT_TRUE(c.is_ok()) << name << ": " << c.status().message();
  return c.is_ok() ? std::move(*c) : nullptr;
}

// ---------------------------------------------------------------------------
// jco's JS values as tagged JSON (docs/components-node.md): records are objects
// with camelCase keys, 64-bit integers {"$bigint": "..."}, list<u8>
// {"$bytes": "hex"}, enums strings, variants {tag, val}, options T | {"$undefined": true}.

std::string camel(const std::string& kebab) {
  std::string s;
  bool up = false;
  for (char c : kebab) {
    if (c == '-') up = true;
    else {
      s += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      up = false;
    }
  }
  return s;
}

json to_jco(const wit::Package& pkg, wit::TypeId id, const WitValue& v) {
  const wit::Type& t = pkg.type(id);
  switch (t.kind) {
    case wit::TypeKind::kBool: return v.as_bool();
    case wit::TypeKind::kU8: case wit::TypeKind::kU16: case wit::TypeKind::kU32: return v.as_unsigned();
    case wit::TypeKind::kS8: case wit::TypeKind::kS16: case wit::TypeKind::kS32: return v.as_signed();
    case wit::TypeKind::kU64: return json{{"$bigint", std::to_string(v.as_unsigned())}};
    case wit::TypeKind::kS64: return json{{"$bigint", std::to_string(v.as_signed())}};
    case wit::TypeKind::kString: return v.as_string();
    case wit::TypeKind::kRecord: {
      json o = json::object();
      for (size_t i = 0; i < t.fields.size(); ++i) o[camel(t.fields[i].name.kebab)] = to_jco(pkg, t.fields[i].type, v.items()[i]);
      return o;
    }
    case wit::TypeKind::kEnum: return t.fields[v.case_index()].name.kebab;
    case wit::TypeKind::kOption: return v.payload() ? to_jco(pkg, t.elem, *v.payload()) : json{{"$undefined", true}};
    default: ADD_FAILURE() << "to_jco: " << wit::type_kind_name(t.kind) << " not needed by these tests"; return nullptr;
  }
}

// jco's result (tagged) -> Covenant's JSON for the same WIT value.
json from_jco(const wit::Package& pkg, wit::TypeId id, const json& j) {
  const wit::Type& t = pkg.type(id);
  switch (t.kind) {
    case wit::TypeKind::kU64: case wit::TypeKind::kS64: return j.at("$bigint").get<std::string>();
    case wit::TypeKind::kRecord: {
      json o = json::object();
      for (auto& f : t.fields) o[f.name.written] = from_jco(pkg, f.type, j.at(camel(f.name.kebab)));
      return o;
    }
    default: return j;
  }
}

struct NodeRun {
  std::vector<json> results;  // Covenant JSON, or {"trap": msg}
};

// Runs `calls` (export + Covenant-JSON args of function fn) through jco in Node.
NodeRun run_in_node(const fs::path& component, const wit::Package& pkg, const wit::Function& fn,
                    const std::string& export_name, const std::vector<json>& args, const std::string& flags = "") {
  json calls = json::array();
  for (const json& a : args) {
    auto vals = abi::args_from_json(pkg, fn, a);
    EXPECT_TRUE(vals.is_ok()) << vals.status().message();
    if (!vals.is_ok()) return {};
    json tagged = json::array();
    for (size_t i = 0; i < vals->size(); ++i) tagged.push_back(to_jco(pkg, fn.params[i].type, (*vals)[i]));
    calls.push_back({{"export", export_name}, {"args", tagged}});
  }
  const fs::path in = temp_dir() / (component.stem().string() + ".calls.json");
  std::ofstream(in) << calls.dump();
  std::string out, err;
  const int rc = run("node '" + kTool.string() + "' run '" + component.string() + "' '" + in.string() + "' " + flags, &out, &err);
  EXPECT_EQ(rc, 0) << err.substr(0, 2000);
  NodeRun r;
  json j = json::parse(out, nullptr, false);
  EXPECT_TRUE(j.is_array()) << out.substr(0, 2000);
  if (!j.is_array()) return r;
  for (const json& x : j) {
    if (x.contains("trap")) r.results.push_back({{"trap", x["trap"]}});
    else if (fn.results.empty()) r.results.push_back(nullptr);
    else r.results.push_back(from_jco(pkg, fn.results[0].type, x.at("result")));
  }
  return r;
}

const wit::Package& seed_package() {
  static const wit::Package p = wit::parse_wit(wit::seed_policy_wit()).value();
  return p;
}

// ---------------------------------------------------------------------------

class PolicyComponents : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyComponents, AgreeWithTheirCoreModuleAndWithJcoInNode) {
  const std::string lang = GetParam();
  const fs::path comp_path = kComponents / ("policy_" + lang + ".component.wasm");
  const fs::path core_path = fs::path(COVENANT_BINARY_DIR) / "contracts/examples" / ("policy_" + lang + ".wasm");
  ASSERT_TRUE(fs::exists(comp_path)) << comp_path << " not built (contracts/components)";
  const std::vector<uint8_t> comp_bytes = read_bytes(comp_path);
  ASSERT_TRUE(component::is_component(comp_bytes));

  // The WIT Covenant reads from the component is the seed's interface.
  auto c = component::read_component(comp_bytes, comp_path.filename().string());
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_NE(c->wit.find("package agent:settlement@0.1.0;"), std::string::npos) << c->wit;
  EXPECT_NE(c->wit.find("approve: func(i: intent) -> decision;"), std::string::npos) << c->wit;
  ASSERT_EQ(c->exports.size(), 1u);
  EXPECT_EQ(c->exports[0].core_export, "agent:settlement/policy@0.1.0#approve");
  EXPECT_TRUE(c->lowered.empty());

  auto comp = deploy(comp_bytes, "policy_" + lang + ".component");
  auto core = deploy(read_bytes(core_path), "policy_" + lang);
  ASSERT_TRUE(comp && core);
  const auto rows = corpus();
  ASSERT_GE(rows.size(), 200u);
  std::vector<json> args;
  std::vector<json> covenant;
  for (size_t i = 0; i < rows.size(); ++i) {
    args.push_back(json::array({rows[i]}));
    auto a = comp->call_json("approve", args.back());
    auto b = core->call_json("approve", args.back());
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << "row " << i;
    ASSERT_EQ(a->trap.kind, TrapKind::kNone) << "row " << i << ": " << a->trap.message;
    EXPECT_EQ(a->result, b->result) << "row " << i;
    EXPECT_EQ(a->fuel_used, b->fuel_used) << "row " << i;
    covenant.push_back(a->result);
  }

  // The same component in Node through jco transpile.
  const wit::Function& fn = *seed_package().find_function("policy", "approve");
  NodeRun node = run_in_node(comp_path, seed_package(), fn, "agent:settlement/policy@0.1.0#approve", args);
  ASSERT_EQ(node.results.size(), rows.size());
  size_t same = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(node.results[i], covenant[i]) << lang << " row " << i << ": " << rows[i].dump().substr(0, 200);
    same += node.results[i] == covenant[i];
  }
  EXPECT_EQ(same, rows.size());
  std::printf("%s: %zu intents, Covenant (component) == core module == jco transpile in Node\n", lang.c_str(), same);
}

INSTANTIATE_TEST_SUITE_P(Languages, PolicyComponents, ::testing::Values("c", "cpp", "rust", "assemblyscript"),
                         [](const auto& info) { return info.param; });

// The budget policy: imports kv (with realloc: through wit-component's shim and
// fix-up modules), log and clock. One sequence of calls, three runners.
TEST(BudgetComponent, AgreesWithItsCoreModuleAndWithJcoInNode) {
  const fs::path comp_path = kComponents / "budget.component.wasm";
  ASSERT_TRUE(fs::exists(comp_path)) << comp_path << " not built (contracts/components)";
  const std::vector<uint8_t> comp_bytes = read_bytes(comp_path);
  auto c = component::read_component(comp_bytes, "budget.component.wasm");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->shims.size(), 2u) << "wit-component's shim and fix-up modules";
  bool kv_get = false;
  for (auto& l : c->lowered)
    if (l.interface == "covenant:host/kv@0.1.0" && l.function == "get") {
      kv_get = true;
      EXPECT_EQ(l.realloc, "cabi_realloc");
      EXPECT_EQ(l.signature, "func(key: string) -> option<list<u8>>");
    }
  EXPECT_TRUE(kv_get);

  auto grants = parse_grants(R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {}, "clock": {}}})");
  ASSERT_TRUE(grants.is_ok());
  const std::string wit_text = read_text(fs::path(COVENANT_SOURCE_DIR) / "contracts/examples/budget/budget.wit");
  auto comp = deploy(comp_bytes, "budget-component", "", *grants);
  auto core = deploy(read_bytes(fs::path(COVENANT_BINARY_DIR) / "contracts/budget.wasm"), "budget-core", wit_text, *grants);
  ASSERT_TRUE(comp && core);
  // Without the grants, the component is refused naming what it lacks.
  DeployOptions bare;
  bare.tier = Tier::kBaseline;
  auto refused = Contract::deploy(engine(), comp_bytes, bare);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("import \"covenant:host/kv@0.1.0\" \"get\" is refused: it needs the grant \"kv\""),
            std::string::npos)
      << refused.status().message();

  std::vector<json> args;
  for (int i = 0; i < 40; ++i) {
    const std::string agent = "agent-" + std::to_string(i % 3);
    args.push_back(json::array({{{"agent-id", agent}, {"amount", std::to_string(37 * i % 400)}}}));
  }
  std::vector<json> covenant;
  for (size_t i = 0; i < args.size(); ++i) {
    auto a = comp->call_json("approve", args[i]);
    auto b = core->call_json("approve", args[i]);
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << i;
    ASSERT_EQ(a->trap.kind, TrapKind::kNone) << a->trap.message;
    EXPECT_EQ(a->result, b->result) << "call " << i;
    EXPECT_EQ(a->record.kv_writes, b->record.kv_writes) << "call " << i;
    covenant.push_back(a->result);
  }
  EXPECT_EQ(covenant.back()["approved"], false) << "the sequence runs agents out of budget";

  auto pkg = wit::parse_wit(c->wit);
  ASSERT_TRUE(pkg.is_ok()) << pkg.status().message();
  const wit::Function& fn = *pkg->find_function("budget", "approve");
  NodeRun node = run_in_node(comp_path, *pkg, fn, "covenant:budget/budget@0.1.0#approve", args, "--host covenant");
  ASSERT_EQ(node.results.size(), args.size());
  for (size_t i = 0; i < args.size(); ++i) EXPECT_EQ(node.results[i], covenant[i]) << "call " << i;
}

// ---------------------------------------------------------------------------
// Hand-written components (tests/contracts/components/*.wat, assembled by
// wasm-tools through tools/component.mjs parse).

std::vector<uint8_t> assemble(const std::string& name) {
  const fs::path wat = fs::path(COVENANT_SOURCE_DIR) / "tests/contracts/components" / (name + ".wat");
  const fs::path out = temp_dir() / (name + ".wasm");
  std::string log;
  const int rc = run("node '" + kTool.string() + "' parse '" + wat.string() + "' '" + out.string() + "'", &log);
  EXPECT_EQ(rc, 0) << log;
  return read_bytes(out);
}

Result<std::unique_ptr<Contract>> deploy_wat(const std::string& name, const std::string& grants_json = "{}") {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.name = name;
  o.grants = parse_grants(grants_json).value();
  return Contract::deploy(engine(), assemble(name), o);
}

TEST(HandWrittenComponents, AWorldLevelFunctionRuns) {
  auto c = deploy_wat("world_func");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  auto r = (*c)->call_json("run", json::array({41}));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->result, 42);
}

TEST(HandWrittenComponents, AGrantedHostImportRuns) {
  auto c = deploy_wat("host_clock", R"({"capabilities": {"clock": {}}})");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  auto r = (*c)->call_json("run", json::array());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->result, std::to_string(r->record.wall_ms)) << "the recorded clock.now-ms";
  auto refused = deploy_wat("host_clock");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("needs the grant \"clock\""), std::string::npos) << refused.status().message();
}

// Types defined in their own interface and `use`d by the exported one:
// wit-component imports the types interface (types only) and the shim names
// the records in the exported interface; Covenant reads and runs it.
TEST(HandWrittenComponents, TypesFromAnotherInterfaceRun) {
  const fs::path wit_path = fs::path(COVENANT_SOURCE_DIR) / "tests/contracts/components/types_interface.wit";
  const fs::path out = temp_dir() / "types_interface.component.wasm";
  std::string log;
  ASSERT_EQ(run("node '" + kTool.string() + "' new '" +
                    (fs::path(COVENANT_BINARY_DIR) / "contracts/examples/policy_c.wasm").string() + "' '" +
                    wit_path.string() + "' escrow '" + out.string() + "'",
                &log),
            0)
      << log;
  auto c = component::read_component(read_bytes(out), "types_interface");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_NE(c->wit.find("import agent:settlement/types@0.1.0;"), std::string::npos) << c->wit;
  auto contract = deploy(read_bytes(out), "types_interface");
  ASSERT_TRUE(contract);
  auto core = deploy(read_bytes(fs::path(COVENANT_BINARY_DIR) / "contracts/examples/policy_c.wasm"), "policy_c");
  const auto rows = corpus();
  for (size_t i = 0; i < rows.size(); i += 7) {
    auto a = contract->call_json("approve", json::array({rows[i]}));
    auto b = core->call_json("approve", json::array({rows[i]}));
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << i;
    EXPECT_EQ(a->result, b->result) << "row " << i;
  }
}

struct Refusal {
  const char* fixture;
  const char* grants;
  const char* message;
};

class RefusedComponents : public ::testing::TestWithParam<Refusal> {};

TEST_P(RefusedComponents, AreRefusedSayingWhy) {
  const Refusal& r = GetParam();
  auto c = deploy_wat(r.fixture, r.grants);
  ASSERT_FALSE(c.is_ok()) << r.fixture;
  EXPECT_NE(c.status().message().find(r.message), std::string::npos) << c.status().message();
  EXPECT_EQ(c.status().message().rfind(r.fixture, 0), 0u) << "names the contract: " << c.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, RefusedComponents,
    ::testing::Values(
        Refusal{"utf16", "{}", "string-encoding=utf16 is not supported (only utf8)"},
        Refusal{"two_modules", "{}", "instantiates more than one core module with code of its own"},
        Refusal{"resource", "{}", "resources and handles (own/borrow) are not supported"},
        Refusal{"renamed", "{}", "the component lifts core export \"impl\""},
        Refusal{"wasi_import", R"({"capabilities": {"clock": {}, "random": {}}})",
                "import \"wasi:random/insecure@0.2.0\" \"get-insecure-random-u64\" is refused: WASI is not available"},
        Refusal{"bad_host_signature", R"({"capabilities": {"clock": {}}})",
                "import covenant:host/clock@0.1.0#now-ms has type func() -> s64; the host provides func() -> u64"}),
    [](const auto& info) { return std::string(info.param.fixture); });

// ---------------------------------------------------------------------------
// Damaged binaries: every prefix, and single-byte changes, fail cleanly (or,
// for a change the format does not notice, still read) — never crash.

// Top-level section boundaries after which only custom sections follow: a
// cut there leaves a valid component (its name and producers sections dropped).
std::vector<size_t> cuts_before_trailing_custom_sections(const std::vector<uint8_t>& b) {
  std::vector<size_t> starts;  // top-level section starts
  size_t i = 8;
  while (i < b.size()) {
    starts.push_back(i++);
    uint32_t size = 0;
    for (int shift = 0; i < b.size(); shift += 7) {
      size |= uint32_t(b[i] & 0x7f) << shift;
      if (!(b[i++] & 0x80)) break;
    }
    i += size;
  }
  std::vector<size_t> ok;
  for (size_t k = starts.size(); k-- > 0 && b[starts[k]] == 0;) ok.push_back(starts[k]);
  return ok;
}

TEST(DamagedComponents, EveryTruncationIsAnError) {
  for (const char* name : {"policy_c.component.wasm", "budget.component.wasm"}) {
    const std::vector<uint8_t> b = read_bytes(kComponents / name);
    ASSERT_GT(b.size(), 100u) << name;
    const std::vector<size_t> valid_cuts = cuts_before_trailing_custom_sections(b);
    for (size_t n = 0; n < b.size(); ++n) {
      auto c = component::read_component(std::span(b.data(), n), name);
      const bool boundary = std::find(valid_cuts.begin(), valid_cuts.end(), n) != valid_cuts.end();
      EXPECT_EQ(c.is_ok(), boundary) << name << " cut at " << n << ": " << (c.is_ok() ? "" : c.status().message());
      if (!c.is_ok() && n >= 8) {
        EXPECT_NE(c.status().message().find("component byte 0x"), std::string::npos) << c.status().message();
      }
    }
  }
}

TEST(DamagedComponents, ByteChangesNeverCrashTheReader) {
  const std::vector<uint8_t> orig = read_bytes(kComponents / "budget.component.wasm");
  ASSERT_FALSE(orig.empty());
  size_t errors = 0, reads = 0;
  for (size_t i = 8; i < orig.size(); ++i) {
    for (uint8_t v : {uint8_t(orig[i] ^ 0x01), uint8_t(orig[i] ^ 0x80), uint8_t(0xff), uint8_t(0x00)}) {
      if (v == orig[i]) continue;
      std::vector<uint8_t> b = orig;
      b[i] = v;
      auto c = component::read_component(b, "damaged");
      if (c.is_ok()) {
        ++reads;
        // What reads must still be a coherent world.
        auto w = wit::parse_wit(c->wit, {.strict = true});
        EXPECT_TRUE(w.is_ok()) << "byte " << i << ": " << w.status().message() << "\n" << c->wit;
      } else {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0u);
  std::printf("single-byte changes: %zu refused, %zu still read (inside the core module or names)\n", errors, reads);
}

}  // namespace
}  // namespace covenant
