// Contracts and capabilities: deploy-time refusals (deny by default), each
// grant scope enforced, kv journaled (committed on success, discarded on a
// trap), clock/random recorded and replayed, the seed and budget examples.
#include "covenant/contract.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace covenant {
namespace {

using json = nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f) << path;
  return std::string(std::istreambuf_iterator<char>(f), {});
}
std::vector<uint8_t> read_wasm(const std::string& name) {
  std::string s = read_text(std::string(HOST_TESTDATA_DIR) + "/" + name);
  return std::vector<uint8_t>(s.begin(), s.end());
}
std::string src(const std::string& rel) { return read_text(std::string(COVENANT_SOURCE_DIR) + "/" + rel); }

Engine& engine() {
  static Engine* e = Engine::create({}).value().release();
  return *e;
}

Grants all_grants() {
  return parse_grants(R"({"capabilities": {"clock": {}, "crypto": {}, "random": {},
      "kv": {"namespace": "test", "max_keys": 100, "max_bytes": 65536},
      "log": {"level": "info", "max_lines": 10, "max_bytes": 1000}}})")
      .value();
}

std::unique_ptr<Contract> deploy_caps(Grants g = all_grants(), std::string deployment = "default",
                                      std::string kv_path = "") {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("src/host/testdata/caps.wit");
  o.grants = std::move(g);
  o.deployment = std::move(deployment);
  o.kv_path = std::move(kv_path);
  o.name = "caps.wasm";
  auto c = Contract::deploy(engine(), read_wasm("caps.wasm"), o);
  EXPECT_TRUE(c) << c.status().message();
  return c ? std::move(c.value()) : nullptr;
}

Contract::CallResult call(Contract& c, std::string_view fn, json args) {
  auto r = c.call_json(fn, args);
  EXPECT_TRUE(r) << fn << ": " << r.status().message();
  return r ? std::move(r.value()) : Contract::CallResult{};
}

// ---------------------------------------------------------------------------
// Grants manifest

TEST(Grants, ParsesEveryCapability) {
  Grants g = all_grants();
  EXPECT_TRUE(g.clock && g.crypto && g.random);
  ASSERT_TRUE(g.kv && g.log);
  EXPECT_EQ(g.kv->ns, "test");
  EXPECT_EQ(g.kv->max_keys, 100u);
  EXPECT_EQ(g.log->level, LogLevel::kInfo);
  EXPECT_EQ(g.log->max_lines, 10u);
  EXPECT_TRUE(g.allows("kv"));
  EXPECT_FALSE(g.allows("net"));
  Grants none = parse_grants("{}").value();
  for (const char* c : {"clock", "crypto", "kv", "log", "random"}) EXPECT_FALSE(none.allows(c)) << c;
}

TEST(Grants, ErrorsNameThePath) {
  struct Row {
    const char* manifest;
    const char* error;
  } rows[] = {
      {"[", "grants: not valid JSON"},
      {"[]", "grants: expected an object"},
      {R"({"caps": {}})", "caps: unknown field"},
      {R"({"capabilities": []})", "capabilities: expected an object"},
      {R"({"capabilities": {"net": {}}})", "capabilities.net: unknown capability"},
      {R"({"capabilities": {"clock": {"x": 1}}})", "capabilities.clock: unknown field \"x\""},
      {R"({"capabilities": {"kv": {"max_keys": "ten"}}})", "capabilities.kv.max_keys: expected a non-negative integer, got \"ten\""},
      {R"({"capabilities": {"kv": {"max_bytes": -1}}})", "capabilities.kv.max_bytes: expected a non-negative integer"},
      {R"({"capabilities": {"kv": {"max_keys": 2000000}}})", "capabilities.kv.max_keys: 2000000 is above the limit"},
      {R"({"capabilities": {"kv": {"namespace": "../x"}}})", "capabilities.kv.namespace: expected a name"},
      {R"({"capabilities": {"kv": {"quota": 1}}})", "capabilities.kv.quota: unknown field"},
      {R"({"capabilities": {"log": {"level": "loud"}}})", "capabilities.log.level: expected one of"},
      {R"({"capabilities": {"log": {"max_lines": 1e9}}})", "capabilities.log.max_lines: expected a non-negative integer"},
  };
  for (const Row& r : rows) {
    auto g = parse_grants(r.manifest);
    ASSERT_FALSE(g) << r.manifest;
    EXPECT_NE(g.status().message().find(r.error), std::string::npos) << r.manifest << " -> " << g.status().message();
  }
}

// ---------------------------------------------------------------------------
// Deploy: deny by default

TEST(Deploy, UngrantedCapabilityIsRefusedNamingImportAndGrant) {
  Grants g = all_grants();
  g.kv.reset();
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("src/host/testdata/caps.wit");
  o.grants = g;
  auto c = Contract::deploy(engine(), read_wasm("caps.wasm"), o);
  ASSERT_FALSE(c);
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("import \"covenant:host/kv@0.1.0\" \"get\" is refused: it needs the grant \"kv\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"set\""), std::string::npos) << m;
  EXPECT_EQ(m.find("covenant:host/clock"), std::string::npos) << "granted imports are not named: " << m;

  // No grants at all: every capability is named.
  o.grants = Grants{};
  c = Contract::deploy(engine(), read_wasm("caps.wasm"), o);
  ASSERT_FALSE(c);
  for (const char* cap : {"clock", "crypto", "kv", "log", "random"})
    EXPECT_NE(c.status().message().find(std::string("needs the grant \"") + cap + "\""), std::string::npos) << cap;
}

TEST(Deploy, WasiIsRefusedWhateverTheGrants) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("src/host/testdata/run.wit");
  o.grants = all_grants();
  auto c = Contract::deploy(engine(), read_wasm("wasi.wasm"), o);
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("import \"wasi_snapshot_preview1\" \"fd_write\" is refused: WASI is not available"),
            std::string::npos)
      << c.status().message();
}

TEST(Deploy, AnythingElseIsRefused) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("src/host/testdata/run.wit");
  o.grants = all_grants();
  auto c = Contract::deploy(engine(), read_wasm("ungranted.wasm"), o);
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("import \"env\" \"secret\" is refused: it is not a covenant:host capability"),
            std::string::npos)
      << c.status().message();
}

TEST(Deploy, RefusesComponentsAndModulesThatDoNotFitTheWorld) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  std::vector<uint8_t> component = {0, 'a', 's', 'm', 0x0d, 0x00, 0x01, 0x00};
  auto c = Contract::deploy(engine(), component, o);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.status().code(), Code::kUnsupported);
  // An empty component: a component with nothing to run.
  EXPECT_NE(c.status().message().find("the component instantiates no core module"), std::string::npos)
      << c.status().message();

  std::vector<uint8_t> junk = {1, 2, 3};
  EXPECT_FALSE(Contract::deploy(engine(), junk, o));

  // The seed module against the budget world: its exports are missing.
  o.wit = src("contracts/examples/budget/budget.wit");
  c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o);
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("does not export \"covenant:budget/budget@0.1.0#approve\" (i32, i32, i64) -> (i32)"),
            std::string::npos)
      << c.status().message();

  o.wit = src("contracts/examples/seed_c/seed.wit");
  o.world = "nope";
  c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o);
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("no world \"nope\""), std::string::npos);
}

// ---------------------------------------------------------------------------
// The seed policy

struct SeedRow {
  const char* agent;
  const char* task;
  uint64_t max_units;
  uint64_t expires;
  bool approved;
  const char* ceiling;
  const char* reason;
};
constexpr uint64_t kLater = 1767225600001ull;  // just after the reference policy's fixed "now"
const SeedRow kSeedRows[] = {
    {"agent-7", "compute", 5, kLater, true, "250000", "approved"},
    {"agent-7", "search", 1000, kLater, true, "1000", "approved"},
    {"agent-7", "search", 1001, kLater, false, "1000", "over-ceiling"},
    {"agent-7", "transfer", 1000000, kLater, true, "1000000", "approved"},
    {"agent-7", "storage", 18446744073709551615ull, kLater, false, "50000", "over-ceiling"},
    {"agent-7", "inference", 1, kLater - 1, false, "10000", "expired"},
    {"agent-7", "inference", 0, kLater, false, "10000", "zero-units"},
    {"agent-7", "mining", 1, kLater, false, "0", "unknown-task-type"},
    {"", "compute", 1, kLater, false, "250000", "empty-agent-id"},
    {"agent 7", "compute", 1, kLater, false, "250000", "agent-id-not-printable-ascii"},
    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "compute", 1, kLater, false, "250000",
     "agent-id-too-long"},
};

void check_seed(Tier tier) {
  DeployOptions o;
  o.tier = tier;
  auto c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o);
  ASSERT_TRUE(c) << c.status().message();
  for (const SeedRow& r : kSeedRows) {
    json intent = {{"agent_id", r.agent}, {"task-type", r.task}, {"max_units", std::to_string(r.max_units)},
                   {"expires-at-ms", r.expires}};
    auto out = call(**c, "approve", json::array({intent}));
    EXPECT_EQ(out.trap.kind, TrapKind::kNone) << out.trap.message;
    json want = {{"approved", r.approved}, {"ceiling", r.ceiling}, {"reason", r.reason}};
    EXPECT_EQ(out.result, want) << intent.dump();
    EXPECT_GT(out.fuel_used, 0u);
  }
}

// The guest SDK examples' shared corpus (tests/contracts/intents.jsonl) against
// the reference policy, which seed_c implements too.
TEST(Seed, AgreesWithTheSharedCorpus) {
  static const std::map<std::string, uint64_t> kCeilings = {
      {"inference", 10000}, {"search", 1000}, {"storage", 50000}, {"transfer", 1000000}, {"compute", 250000}};
  DeployOptions o;
  o.tier = Tier::kBaseline;
  auto c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o).value();
  std::istringstream lines(src("tests/contracts/intents.jsonl"));
  std::string line;
  size_t rows = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json row = json::parse(line);
    std::string agent = row["agent_id"], task = row["task_type"];
    uint64_t units = std::stoull(row["max_units"].get<std::string>());
    uint64_t expires = std::stoull(row["expires_at_ms"].get<std::string>());
    auto it = kCeilings.find(task);
    uint64_t ceiling = it == kCeilings.end() ? 0 : it->second;
    bool printable = true;
    for (unsigned char ch : agent) printable &= ch >= 0x21 && ch <= 0x7e;
    std::string reason = agent.empty()         ? "empty-agent-id"
                         : agent.size() > 64   ? "agent-id-too-long"
                         : !printable          ? "agent-id-not-printable-ascii"
                         : ceiling == 0        ? "unknown-task-type"
                         : expires <= kLater - 1 ? "expired"
                         : units == 0          ? "zero-units"
                         : units > ceiling     ? "over-ceiling"
                                               : "approved";
    json want = {{"approved", reason == "approved"}, {"ceiling", std::to_string(ceiling)}, {"reason", reason}};
    EXPECT_EQ(call(*c, "approve", json::array({row})).result, want) << line;
    ++rows;
  }
  EXPECT_GE(rows, 200u);
}

TEST(Seed, ApprovesOnBaseline) { check_seed(Tier::kBaseline); }
TEST(Seed, ApprovesOnOptimized) { check_seed(Tier::kOptimized); }
TEST(Seed, ApprovesOnInterp) { check_seed(Tier::kInterp); }

TEST(Seed, ExportNamesAndErrors) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  auto c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o).value();
  json intent = {{"agent-id", "a"}, {"task-type", "compute"}, {"max-units", 1u}, {"expires-at-ms", "1767225600001"}};
  for (const char* name : {"approve", "policy.approve", "agent:settlement/policy@0.1.0#approve"})
    EXPECT_EQ(call(*c, name, json::array({intent})).result["reason"], "approved") << name;
  auto r = c->call_json("refuse", json::array({intent}));
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("no exported function \"refuse\" (exports: policy.approve)"), std::string::npos);
  intent["max-units"] = "ten";
  r = c->call_json("approve", json::array({intent}));
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("max-units: expected u64, got \"ten\""), std::string::npos) << r.status().message();
}

TEST(Seed, InstanceReuseWithoutResetAndAfterATrap) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.reset_every_call = false;
  auto c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o).value();
  json intent = {{"agent-id", "a"}, {"task-type", "compute"}, {"max-units", 1u}, {"expires-at-ms", "1767225600001"}};
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(call(*c, "approve", json::array({intent})).result["reason"], "approved") << i;
  // Out of fuel in the middle, then the instance is reset and works again.
  CallOptions tiny;
  tiny.fuel = 10;
  auto r = c->call_json("approve", json::array({intent}), tiny).value();
  EXPECT_EQ(r.trap.kind, TrapKind::kOutOfFuel);
  EXPECT_EQ(call(*c, "approve", json::array({intent})).result["reason"], "approved");
}

// ---------------------------------------------------------------------------
// kv

TEST(Kv, CommittedOnSuccessDiscardedOnTrap) {
  auto c = deploy_caps();
  auto r = call(*c, "kv-set", {"a", "1"});
  EXPECT_EQ(r.trap.kind, TrapKind::kNone);
  ASSERT_EQ(r.record.kv_writes.size(), 1u);
  EXPECT_EQ(r.record.kv_writes[0], (KvWrite{"a", "1"}));
  EXPECT_EQ(call(*c, "kv-get", {"a"}).result, "1");

  r = call(*c, "kv-set-then-trap", {"a", "2"});
  EXPECT_EQ(r.trap.kind, TrapKind::kUnreachable);
  EXPECT_TRUE(r.record.kv_writes.empty());
  r = call(*c, "kv-set-then-trap", {"b", "2"});
  EXPECT_EQ(r.trap.kind, TrapKind::kUnreachable);
  EXPECT_EQ(call(*c, "kv-get", {"a"}).result, "1");
  EXPECT_EQ(call(*c, "kv-get", {"b"}).result, nullptr);
  EXPECT_EQ(c->kv_dump().value(), (std::map<std::string, std::string>{{"a", "1"}}));

  EXPECT_EQ(call(*c, "kv-delete", {"a"}).result, true);
  EXPECT_EQ(call(*c, "kv-delete", {"a"}).result, false);
  EXPECT_TRUE(c->kv_dump().value().empty());
}

TEST(Kv, ListKeysByPrefixSeesTheCallsOwnWrites) {
  auto c = deploy_caps();
  for (const char* k : {"user/a", "user/b", "users", "other"}) call(*c, "kv-set", {k, "x"});
  EXPECT_EQ(call(*c, "kv-list", {"user/"}).result, json({"user/a", "user/b"}));
  EXPECT_EQ(call(*c, "kv-list", {"user"}).result, json({"user/a", "user/b", "users"}));
  EXPECT_EQ(call(*c, "kv-list", {""}).result.size(), 4u);
  // Within one call: a key set again is listed once, a new key appears, a deleted one vanishes.
  EXPECT_EQ(call(*c, "kv-set-and-list", {"user/a", "y", "user/"}).result, json({"user/a", "user/b"}));
  EXPECT_EQ(call(*c, "kv-set-and-list", {"user/c", "y", "user/"}).result, json({"user/a", "user/b", "user/c"}));
  EXPECT_EQ(call(*c, "kv-delete-and-list", {"user/b", "user/"}).result, json({"user/a", "user/c"}));
  EXPECT_EQ(call(*c, "kv-list", {"user/"}).result, json({"user/a", "user/c"}));
}

TEST(Kv, BadKeysTrapAndWriteNothing) {
  auto c = deploy_caps();
  struct Row {
    std::string key;
    const char* why;
  } rows[] = {
      {"", "kv key is empty"},
      {"../other", "'..' segment"},
      {"a/../../b", "'..' segment"},
      {"a/./b", "'.' segment"},
      {"..", "'..' segment"},
      {"/abs", "starts with '/'"},
      {std::string("a\0b", 3), "control character"},
      {"a\nb", "control character"},
      {std::string("default") + '\x01' + "test", "control character"},
      {std::string(513, 'k'), "longer than 512"},
  };
  for (const Row& r : rows) {
    auto out = call(*c, "kv-set", {r.key, "v"});
    EXPECT_EQ(out.trap.kind, TrapKind::kHost) << r.key;
    EXPECT_NE(out.trap.message.find(r.why), std::string::npos) << r.key << ": " << out.trap.message;
    EXPECT_NE(out.trap.message.find("covenant:host/kv@0.1.0.set: "), std::string::npos) << out.trap.message;
    out = call(*c, "kv-get", {r.key});
    EXPECT_EQ(out.trap.kind, TrapKind::kHost) << r.key;
  }
  EXPECT_EQ(call(*c, "kv-list", {"../"}).trap.kind, TrapKind::kHost);
  EXPECT_TRUE(c->kv_dump().value().empty());
}

TEST(Kv, DeploymentsCannotNameEachOthersKeys) {
  std::string path = ::testing::TempDir() + "/kv_isolation.sqlite";
  std::remove(path.c_str());
  auto a = deploy_caps(all_grants(), "alpha", path);
  auto b = deploy_caps(all_grants(), "beta", path);
  call(*a, "kv-set", {"secret", "alpha's"});
  // Every spelling of alpha's key from beta: its own namespace, or a trap.
  for (const char* k : {"secret", "alpha/test/secret", "alpha/secret", "test/secret", "alpha:test:secret"})
    EXPECT_EQ(call(*b, "kv-get", {k}).result, nullptr) << k;
  for (const char* k : {"../alpha/test/secret", "../../alpha/secret", "/alpha/test/secret"})
    EXPECT_EQ(call(*b, "kv-get", {k}).trap.kind, TrapKind::kHost) << k;
  EXPECT_EQ(call(*b, "kv-get", {std::string("alpha") + '\0' + "test" + '\0' + "secret"}).trap.kind, TrapKind::kHost);
  EXPECT_EQ(call(*b, "kv-list", {""}).result, json::array());
  call(*b, "kv-set", {"secret", "beta's"});
  EXPECT_EQ(call(*a, "kv-get", {"secret"}).result, "alpha's");
  EXPECT_EQ(call(*b, "kv-get", {"secret"}).result, "beta's");

  // Another namespace of the same deployment is another key space too.
  Grants other = all_grants();
  other.kv->ns = "other";
  auto a2 = deploy_caps(other, "alpha", path);
  EXPECT_EQ(call(*a2, "kv-get", {"secret"}).result, nullptr);

  // The store persists: a new Contract on the same file sees alpha's key.
  a.reset();
  auto a3 = deploy_caps(all_grants(), "alpha", path);
  EXPECT_EQ(call(*a3, "kv-get", {"secret"}).result, "alpha's");
}

TEST(Kv, QuotaOverrunTrapsCleanly) {
  Grants g = all_grants();
  g.kv->max_keys = 3;
  g.kv->max_bytes = 1000;
  auto c = deploy_caps(g);
  auto r = call(*c, "kv-fill", {"k", 4u, 1u});
  EXPECT_EQ(r.trap.kind, TrapKind::kHost);
  EXPECT_NE(r.trap.message.find("kv quota exceeded: 4 keys > max_keys 3 in namespace \"test\""), std::string::npos)
      << r.trap.message;
  EXPECT_TRUE(c->kv_dump().value().empty()) << "nothing of the failed call is written";

  EXPECT_EQ(call(*c, "kv-fill", {"k", 3u, 10u}).trap.kind, TrapKind::kNone);
  EXPECT_EQ(c->kv_dump().value().size(), 3u);
  // Overwriting keys does not count them twice; deleting makes room.
  EXPECT_EQ(call(*c, "kv-fill", {"k", 3u, 20u}).trap.kind, TrapKind::kNone);
  EXPECT_EQ(call(*c, "kv-set", {"x", "1"}).trap.kind, TrapKind::kHost);
  EXPECT_EQ(call(*c, "kv-delete", {"k0"}).result, true);
  EXPECT_EQ(call(*c, "kv-set", {"x", "1"}).trap.kind, TrapKind::kNone);

  // Bytes: keys + values. 3 keys of 2 bytes + 1 of 1 byte, values 20+20+1 = ...
  r = call(*c, "kv-set", {"x", std::string(990, 'v')});
  EXPECT_EQ(r.trap.kind, TrapKind::kHost);
  EXPECT_NE(r.trap.message.find("bytes > max_bytes 1000"), std::string::npos) << r.trap.message;
  EXPECT_EQ(c->kv_dump().value().at("x"), "1");

  // A value must be readable back as one host result (kHostResultBytesMax).
  Grants big = all_grants();
  big.kv->max_bytes = 1 << 20;
  c = deploy_caps(big);
  EXPECT_EQ(call(*c, "kv-set", {"v", std::string(kKvValueSizeBytesMax, 'v')}).trap.kind, TrapKind::kNone);
  EXPECT_EQ(call(*c, "kv-get", {"v"}).result.get<std::string>().size(), kKvValueSizeBytesMax);
  r = call(*c, "kv-set", {"w", std::string(kKvValueSizeBytesMax + 1, 'v')});
  EXPECT_NE(r.trap.message.find("is larger than 131072"), std::string::npos) << r.trap.message;
}

TEST(Kv, QuotaCountersPersistInSqlite) {
  std::string path = ::testing::TempDir() + "/kv_quota.sqlite";
  std::remove(path.c_str());
  Grants g = all_grants();
  g.kv->max_keys = 3;
  g.kv->max_bytes = 100;
  {
    auto c = deploy_caps(g, "q", path);
    EXPECT_EQ(call(*c, "kv-fill", {"k", 3u, 10u}).trap.kind, TrapKind::kNone);  // 3 keys, 36 bytes
    EXPECT_EQ(call(*c, "kv-fill", {"k", 2u, 20u}).trap.kind, TrapKind::kNone);  // overwrite: 56 bytes
  }
  auto c = deploy_caps(g, "q", path);  // a new Contract (and store handle) on the same file
  auto r = call(*c, "kv-set", {"x", "1"});
  EXPECT_NE(r.trap.message.find("4 keys > max_keys 3"), std::string::npos) << r.trap.message;
  r = call(*c, "kv-fill", {"k", 1u, 70u});  // k0: 56 - 22 + 72
  EXPECT_NE(r.trap.message.find("106 bytes > max_bytes 100"), std::string::npos) << r.trap.message;
  EXPECT_EQ(call(*c, "kv-delete", {"k2"}).result, true);
  EXPECT_EQ(call(*c, "kv-set", {"x", "1"}).trap.kind, TrapKind::kNone);
  EXPECT_EQ(r.record.kv_usage, (KvUsage{3, 56}));
  // Another deployment on the file has its own counters.
  auto other = deploy_caps(g, "other", path);
  EXPECT_EQ(call(*other, "kv-fill", {"k", 3u, 1u}).trap.kind, TrapKind::kNone);
}

TEST(Kv, ConcurrentCallsOfOneContractAreSerialized) {
  Grants g = parse_grants(R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {}, "clock": {}}})").value();
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("contracts/examples/budget/budget.wit");
  o.grants = g;
  auto c = Contract::deploy(engine(), read_wasm("budget.wasm"), o).value();
  call(*c, "set-limit", {"agent-7", 1000000u});
  std::vector<std::thread> threads;
  std::atomic<int> approved{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto r = c->call_json("approve", {{{"agent-id", "agent-7"}, {"amount", 1u}}});
        if (r && r->result["approved"] == true) approved++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(approved.load(), 400);
  EXPECT_EQ(call(*c, "spent", {"agent-7"}).result, "400") << "no lost update";
}

TEST(Deadline, IsPassedToTheEngine) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  auto c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o).value();
  json intent = {{"agent-id", "a"}, {"task-type", "compute"}, {"max-units", 1u}, {"expires-at-ms", "1767225600001"}};
  CallOptions opts;
  opts.deadline_ms = 1000;
  auto r = c->call_json("approve", json::array({intent}), opts).value();
  EXPECT_EQ(r.result["reason"], "approved");
}

// ---------------------------------------------------------------------------
// log

TEST(Log, FloodIsBoundedAndFiltered) {
  auto c = deploy_caps();  // info, 10 lines, 1000 bytes
  auto r = call(*c, "log-flood", {1000u});
  EXPECT_EQ(r.trap.kind, TrapKind::kNone);
  ASSERT_EQ(r.record.logs.size(), 10u);
  for (const LogLine& l : r.record.logs) EXPECT_EQ(l, (LogLine{LogLevel::kInfo, "info line"}));
  EXPECT_EQ(r.record.logs_dropped, 990u) << "debug lines are filtered, not counted";

  Grants g = all_grants();
  g.log = LogGrant{LogLevel::kDebug, 1000, 30};
  c = deploy_caps(g);
  r = call(*c, "log-flood", {5u});
  // "debug line" 10 + "info line" 9 + "debug line" 10 = 29 bytes, then the byte bound.
  ASSERT_EQ(r.record.logs.size(), 3u);
  EXPECT_EQ(r.record.logs[0].level, LogLevel::kDebug);
  EXPECT_EQ(r.record.logs_dropped, 7u);
}

// ---------------------------------------------------------------------------
// clock, random, crypto

TEST(Clock, FixedPerCallAndRecorded) {
  auto c = deploy_caps();
  uint64_t before = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  auto r = call(*c, "clock", json::array());
  EXPECT_EQ(r.result, json({std::to_string(r.record.wall_ms), std::to_string(r.record.monotonic_ns)}));
  EXPECT_GE(r.record.wall_ms, before);
  EXPECT_LT(r.record.wall_ms, before + 60'000);
}

TEST(Random, DeterministicFromTheRecordedSeed) {
  auto c = deploy_caps();
  auto r = call(*c, "random-bytes", {40u});
  ASSERT_EQ(r.result.size(), 40u);
  unsigned char want[40];
  randombytes_buf_deterministic(want, sizeof want, r.record.random_seed.data());
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(r.result[i], want[i]) << i;
  // next-u64 draws consecutive little-endian words of the same stream.
  r = call(*c, "random", json::array());
  unsigned char w[16];
  randombytes_buf_deterministic(w, sizeof w, r.record.random_seed.data());
  uint64_t a = 0, b = 0;
  for (int i = 7; i >= 0; --i) {
    a = (a << 8) | w[i];
    b = (b << 8) | w[8 + i];
  }
  EXPECT_EQ(r.result, json({std::to_string(a), std::to_string(b)}));
  auto big = call(*c, "random-bytes", {5000u});
  EXPECT_EQ(big.trap.kind, TrapKind::kHost);
  EXPECT_NE(big.trap.message.find("at most 4096 bytes"), std::string::npos);
  EXPECT_NE(call(*c, "random", json::array()).result, r.result) << "a fresh seed per call";
}

TEST(Crypto, Sha256AndEd25519) {
  auto c = deploy_caps();
  auto r = call(*c, "sha256", {json::array({97u, 98u, 99u})});
  unsigned char h[32];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>("abc"), 3);
  ASSERT_EQ(r.result.size(), 32u);
  EXPECT_EQ(r.result[0], 0xba);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(r.result[i], h[i]);

  unsigned char pk[32], sk[64], sig[64];
  crypto_sign_keypair(pk, sk);
  const unsigned char msg[] = "pay 5 to agent-7";
  crypto_sign_detached(sig, nullptr, msg, sizeof msg, sk);
  auto bytes = [](const unsigned char* p, size_t n) { return json(std::vector<unsigned>(p, p + n)); };
  EXPECT_EQ(call(*c, "verify", {bytes(pk, 32), bytes(msg, sizeof msg), bytes(sig, 64)}).result, true);
  sig[0] ^= 1;
  EXPECT_EQ(call(*c, "verify", {bytes(pk, 32), bytes(msg, sizeof msg), bytes(sig, 64)}).result, false);
  EXPECT_EQ(call(*c, "verify", {bytes(pk, 31), bytes(msg, sizeof msg), bytes(sig, 64)}).result, false);
}

// ---------------------------------------------------------------------------
// Replay

TEST(Replay, RecordedInputsGiveTheSameResult) {
  auto c = deploy_caps();
  call(*c, "kv-set", {"x", "12345678"});
  auto first = call(*c, "stamp", {"x"});
  ASSERT_EQ(first.trap.kind, TrapKind::kNone);
  ASSERT_EQ(first.record.kv_reads.size(), 1u);
  EXPECT_EQ(first.record.kv_reads[0], (KvRead{"x", "12345678"}));
  ASSERT_EQ(first.record.kv_writes.size(), 1u);

  // The world moves on: the store changes, time passes, seeds differ.
  call(*c, "kv-set", {"x", "00000000"});
  auto live = call(*c, "stamp", {"x"});
  EXPECT_NE(live.result, first.result);

  // Through JSON, as a replay package would carry it.
  json j = call_record_to_json(first.record);
  CallRecord rec = call_record_from_json(json::parse(j.dump())).value();
  EXPECT_EQ(call_record_to_json(rec), j);
  auto again = c->replay_json("stamp", {"x"}, rec).value();
  EXPECT_EQ(again.result, first.result);
  EXPECT_EQ(again.fuel_used, first.fuel_used);
  EXPECT_EQ(again.record.kv_writes, first.record.kv_writes);
  EXPECT_EQ(again.record.kv_reads, first.record.kv_reads);
  EXPECT_EQ(again.record.wall_ms, first.record.wall_ms);
  EXPECT_EQ(c->kv_dump().value().size(), 1u) << "a replay commits nothing";
  EXPECT_NE(c->kv_dump().value().at("x"), first.record.kv_writes[0].value.value());

  // Replaying other inputs than the record holds is an error, not a guess.
  auto diverged = c->replay_json("stamp", {"y"}, rec);
  ASSERT_FALSE(diverged);
  EXPECT_EQ(diverged.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(diverged.status().message().find("replay diverged"), std::string::npos);
}

TEST(Replay, BudgetDecisionsReplayOnAnotherTier) {
  Grants g = parse_grants(R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {}, "clock": {}}})").value();
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("contracts/examples/budget/budget.wit");
  o.grants = g;
  auto c = Contract::deploy(engine(), read_wasm("budget.wasm"), o).value();
  std::vector<Contract::CallResult> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(call(*c, "approve", {{{"agent_id", "agent-7"}, {"amount", 300u}}}));
  EXPECT_EQ(calls[3].result["approved"], false);
  EXPECT_EQ(calls[3].result["spent"], "900");
  o.tier = Tier::kInterp;
  auto interp = Contract::deploy(engine(), read_wasm("budget.wasm"), o).value();
  for (const auto& r : calls) {
    auto again = interp->replay_json("approve", {{{"agent_id", "agent-7"}, {"amount", 300u}}}, r.record).value();
    EXPECT_EQ(again.result, r.result);
    EXPECT_EQ(again.fuel_used, r.fuel_used);
    EXPECT_EQ(again.record.logs, r.record.logs);
    EXPECT_EQ(again.record.kv_writes, r.record.kv_writes);
  }
}

// ---------------------------------------------------------------------------
// The budget example

TEST(Budget, SpentTotalsLiveInKv) {
  Grants g = parse_grants(R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {"level": "info"}, "clock": {}}})")
                 .value();
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("contracts/examples/budget/budget.wit");
  o.grants = g;
  auto c = Contract::deploy(engine(), read_wasm("budget.wasm"), o).value();
  auto r = call(*c, "approve", {{{"agent-id", "a"}, {"amount", 600u}}});
  EXPECT_EQ(r.result, json({{"approved", true}, {"spent", "600"}, {"remaining", "400"}, {"reason", "ok"}}));
  ASSERT_EQ(r.record.logs.size(), 1u);
  EXPECT_EQ(r.record.logs[0].message, "approved a 600 at " + std::to_string(r.record.wall_ms));
  r = call(*c, "approve", {{{"agent-id", "a"}, {"amount", 600u}}});
  EXPECT_EQ(r.result["reason"], "over budget");
  EXPECT_EQ(call(*c, "budget.spent", {"a"}).result, "600");
  EXPECT_EQ(call(*c, "spent", {"b"}).result, "0");
  call(*c, "set-limit", {"a", 5000u});
  EXPECT_EQ(call(*c, "approve", {{{"agent-id", "a"}, {"amount", 600u}}}).result["remaining"], "3800");
  r = call(*c, "spend-then-trap", {{{"agent-id", "a"}, {"amount", 1u}}});
  EXPECT_EQ(r.trap.kind, TrapKind::kUnreachable);
  EXPECT_EQ(call(*c, "spent", {"a"}).result, "1200");
  r = call(*c, "approve", {{{"agent-id", "../a"}, {"amount", 1u}}});
  EXPECT_EQ(r.trap.kind, TrapKind::kHost);
  EXPECT_EQ(c->kv_dump().value().size(), 2u);  // spent/a, limit/a
}

}  // namespace
}  // namespace covenant

namespace covenant {
namespace {

// A guest fault in the canonical ABI is a trap the call reports, not a host error.
TEST(AbiFaults, AreTraps) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.wit = src("src/host/testdata/bad.wit");
  auto c = Contract::deploy(engine(), read_wasm("bad.wasm"), o).value();
  struct Row {
    const char* fn;
    json args;
    const char* message;
  } rows[] = {
      {"bad-pointer", json::array(), "guest trap (out-of-bounds)"},
      {"bad-utf8", json::array(), "guest trap (invalid-utf8)"},
      {"bad-return-area", json::array(), "guest trap (out-of-bounds)"},
      {"takes-string", json::array({"hello"}), "guest trap (realloc-failed)"},
  };
  for (const Row& r : rows) {
    auto out = c->call_json(r.fn, r.args);
    ASSERT_TRUE(out) << r.fn << ": " << out.status().message();
    EXPECT_EQ(out->trap.kind, TrapKind::kHost) << r.fn;
    EXPECT_NE(out->trap.message.find(r.message), std::string::npos) << r.fn << ": " << out->trap.message;
    EXPECT_EQ(out->result, nullptr);
  }
  // The instance was reset after each trap and still answers.
  EXPECT_EQ(c->call_json("bad-pointer", json::array())->trap.kind, TrapKind::kHost);
}

// Modules in the standard32 naming scheme (cm32p2|..., as current wasm-tools
// emits) deploy too, imports included.
TEST(Names, Standard32Scheme) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  auto c = Contract::deploy(engine(), read_wasm("std32.wasm"), o);
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("import \"cm32p2|covenant:host/clock@0.1\" \"now-ms\" is refused: it needs the grant \"clock\""),
            std::string::npos)
      << c.status().message();
  o.grants.clock = true;
  auto d = Contract::deploy(engine(), read_wasm("std32.wasm"), o).value();
  json intent = {{"agent-id", "a"}, {"task-type", "compute"}, {"max-units", 1u}, {"expires-at-ms", 1u}};
  for (const char* name : {"approve", "policy.approve", "cm32p2|agent:settlement/policy@0.1|approve"}) {
    auto r = call(*d, name, json::array({intent}));
    EXPECT_EQ(r.result, json({{"approved", true}, {"ceiling", std::to_string(r.record.wall_ms)}, {"reason", "standard32"}}))
        << name;
  }
}

TEST(Isolation, ResetEveryCallStartsFresh) {
  DeployOptions o;
  o.tier = Tier::kBaseline;
  o.reset_every_call = true;
  auto c = Contract::deploy(engine(), read_wasm("seed_c.wasm"), o).value();
  json intent = {{"agent-id", "a"}, {"task-type", "compute"}, {"max-units", 1u}, {"expires-at-ms", "1767225600001"}};
  uint64_t fuel = call(*c, "approve", json::array({intent})).fuel_used;
  for (int i = 0; i < 20; ++i) {
    auto r = call(*c, "approve", json::array({intent}));
    EXPECT_EQ(r.result["reason"], "approved");
    EXPECT_EQ(r.fuel_used, fuel);
  }
}


// kAuto: calls start on baseline code; once the optimized compile is ready,
// pooled instances made on baseline (another code layout) are replaced, so
// later calls run optimized code — with the same decisions and fuel.
TEST(AutoTier, PooledInstancesMoveToOptimizedCode) {
  DeployOptions o;
  o.tier = Tier::kAuto;
  o.name = "seed-auto";
  // A cache of its own: the optimized compile has not happened yet.
  const std::string dir = ::testing::TempDir() + "/covenant-auto-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  auto eng = Engine::create({.cache_dir = dir}).value();
  auto c = Contract::deploy(*eng, read_wasm("seed_c.wasm"), o).value();
  json intent = {{"agent-id", "a"}, {"task-type", "compute"}, {"max-units", 1u}, {"expires-at-ms", "1767225600001"}};
  const auto first = call(*c, "approve", json::array({intent}));
  auto r0 = c->call_json("approve", json::array({intent}));
  ASSERT_TRUE(r0.is_ok());
  EXPECT_EQ(r0->tier, Tier::kBaseline) << "the optimized compile takes longer than a deploy";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (c->module().tier() != Tier::kOptimized && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(c->module().tier(), Tier::kOptimized);
  auto r = c->call_json("approve", json::array({intent}));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->tier, Tier::kOptimized);
  EXPECT_EQ(r->result, first.result);
  EXPECT_EQ(r->fuel_used, first.fuel_used);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace covenant
