// The four example contracts (contracts/examples/{c,cpp,assemblyscript,rust})
// decide every intent of tests/contracts/intents.jsonl identically, and as the
// reference below does. Each runs through the engine (interp tier) and the
// canonical ABI directly: lower the intent with cabi_realloc, call
// `agent:settlement/policy@0.1.0#approve`, lift the decision from the return
// area, call `cabi_post_…`. One instance per contract serves the whole corpus
// (no reset), so the guests' allocators and post-return frees are exercised.
// ContractApiAgrees then runs the same corpus through the public embedding
// API (Contract::deploy + call_json, include/covenant/contract.h), JSON in and out.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "covenant/abi.h"
#ifdef COVENANT_HAVE_CONTRACT
#include "covenant/contract.h"
#endif
#include "covenant/engine.h"
#include "covenant/wit.h"
#include "covenant/wit_json.h"
#include "guest_memory.h"
#include "corpus.h"

namespace covenant {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- the reference policy (contracts/examples/README.md, "Guest SDK examples")
constexpr uint64_t kPolicyNowMs = 1767225600000ull;  // 2026-01-01T00:00:00Z
constexpr size_t kAgentIdBytesMax = 64;

struct Decision {
  bool approved = false;
  uint64_t ceiling = 0;
  std::string reason;
  bool operator==(const Decision&) const = default;
};

uint64_t reference_ceiling(const std::string& task) {
  static const std::map<std::string, uint64_t> kCeilings = {
      {"inference", 10000}, {"search", 1000}, {"storage", 50000}, {"transfer", 1000000}, {"compute", 250000}};
  auto it = kCeilings.find(task);
  return it == kCeilings.end() ? 0 : it->second;
}

Decision reference_approve(const std::string& agent, const std::string& task, uint64_t units, uint64_t expires_ms) {
  Decision d;
  d.ceiling = reference_ceiling(task);
  d.reason = [&]() -> std::string {
    if (agent.empty()) return "empty-agent-id";
    if (agent.size() > kAgentIdBytesMax) return "agent-id-too-long";
    for (unsigned char c : agent)
      if (c < 0x21 || c > 0x7e) return "agent-id-not-printable-ascii";
    if (d.ceiling == 0) return "unknown-task-type";
    if (expires_ms <= kPolicyNowMs) return "expired";
    if (units == 0) return "zero-units";
    if (units > d.ceiling) return "over-ceiling";
    return "approved";
  }();
  d.approved = d.reason == "approved";
  return d;
}

using testing_guest::InstanceMemory;

struct Guest {
  std::string lang;
  std::shared_ptr<Module> module;
  std::unique_ptr<Instance> instance;
  uint32_t approve = 0, post = 0, realloc = 0;
};

class PolicyCorpus : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pkg = wit::parse_wit(wit::seed_policy_wit());
    ASSERT_TRUE(pkg.is_ok()) << pkg.status().message();
    pkg_ = std::make_unique<wit::Package>(std::move(pkg).value());
    abi_ = std::make_unique<abi::Abi>(*pkg_);
    fn_ = pkg_->find_function("policy", "approve");
    ASSERT_NE(fn_, nullptr);
    const wit::World* world = pkg_->find_world("escrow");
    ASSERT_NE(world, nullptr);
    std::string iface = abi::interface_core_name(*pkg_, world->exports.at(0));
    export_name_ = abi::export_name(iface, *fn_);
    post_name_ = abi::post_return_name(iface, *fn_);
    ASSERT_EQ(export_name_, "agent:settlement/policy@0.1.0#approve");
  }

  // Returns false (and records why) if the contract was not built.
  bool load(const std::string& lang, Engine& engine, Guest* g) {
    fs::path path = fs::path(COVENANT_BINARY_DIR) / "contracts/examples" / ("policy_" + lang + ".wasm");
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    auto m = engine.load(bytes, {.tier = Tier::kInterp, .name = "policy_" + lang});
    EXPECT_TRUE(m.is_ok()) << lang << ": " << m.status().message();
    if (!m) return false;
    g->lang = lang;
    g->module = *m;
    EXPECT_TRUE(g->module->imports().empty()) << lang << " imports something; the policy needs no grant";
    auto inst = g->module->instantiate(Linker{});
    EXPECT_TRUE(inst.is_ok()) << lang << ": " << inst.status().message();
    if (!inst) return false;
    g->instance = std::move(inst).value();
    auto a = g->module->export_index(export_name_);
    auto p = g->module->export_index(post_name_);
    auto r = g->module->export_index(abi::kReallocExport);
    EXPECT_TRUE(a && p && r) << lang << " lacks an export";
    if (!a || !p || !r) return false;
    g->approve = *a;
    g->post = *p;
    g->realloc = *r;
    return true;
  }

  // One approve through the canonical ABI; the decision, or an error string.
  Result<Decision> approve(Guest& g, const abi::WitValue& intent) {
    InstanceMemory mem(*g.instance, g.realloc);
    abi::CallContext cx(*abi_, mem);
    std::vector<abi::CoreValue> flat;
    abi::WitValue args[] = {intent};
    if (Status s = cx.lower_params(*fn_, args, &flat); !s.is_ok()) return s;
    std::vector<Value> core;
    for (const auto& c : flat) core.push_back(Value{static_cast<ValType>(c.type), c.bits});
    auto out = g.instance->call(g.approve, core);
    if (!out) return out.status();
    if (!out->ok()) return Status::invalid(g.lang + " trapped: " + out->trap.message);
    std::vector<abi::CoreValue> results;
    for (const auto& v : out->results) results.push_back(abi::CoreValue{static_cast<abi::CoreType>(v.type), v.bits});
    auto lifted = cx.lift_results(*fn_, results);
    if (!lifted) return lifted.status();
    auto post = g.instance->call(g.post, out->results);
    if (!post) return post.status();
    if (!post->ok()) return Status::invalid(g.lang + " post-return trapped: " + post->trap.message);
    const auto& rec = lifted->at(0).items();
    return Decision{rec.at(0).as_bool(), rec.at(1).as_unsigned(), rec.at(2).as_string()};
  }

  std::unique_ptr<wit::Package> pkg_;
  std::unique_ptr<abi::Abi> abi_;
  const wit::Function* fn_ = nullptr;
  std::string export_name_, post_name_;
};

using testing_corpus::read_corpus;

TEST(PolicyReference, Table) {
  struct Row {
    const char* agent;
    const char* task;
    uint64_t units, expires_ms;
    const char* reason;
    uint64_t ceiling;
  };
  const Row rows[] = {
      {"agent-7", "inference", 500, kPolicyNowMs + 1, "approved", 10000},
      {"", "inference", 500, kPolicyNowMs + 1, "empty-agent-id", 10000},
      {"agent 7", "mining", 0, 0, "agent-id-not-printable-ascii", 0},
      {"agent-7", "mining", 500, kPolicyNowMs + 1, "unknown-task-type", 0},
      {"agent-7", "search", 500, kPolicyNowMs, "expired", 1000},
      {"agent-7", "search", 0, kPolicyNowMs + 1, "zero-units", 1000},
      {"agent-7", "search", 1001, kPolicyNowMs + 1, "over-ceiling", 1000},
      {"agent-7", "transfer", UINT64_MAX, UINT64_MAX, "over-ceiling", 1000000},
      {"agent-7", "compute", 250000, UINT64_MAX, "approved", 250000},
  };
  for (const auto& r : rows) {
    Decision d = reference_approve(r.agent, r.task, r.units, r.expires_ms);
    EXPECT_EQ(d.reason, r.reason) << r.agent << " " << r.task;
    EXPECT_EQ(d.ceiling, r.ceiling);
    EXPECT_EQ(d.approved, std::string(r.reason) == "approved");
  }
  EXPECT_EQ(reference_approve(std::string(64, 'x'), "search", 1, UINT64_MAX).reason, "approved");
  EXPECT_EQ(reference_approve(std::string(65, 'x'), "search", 1, UINT64_MAX).reason, "agent-id-too-long");
}

TEST(PolicyCorpusFile, CoversTheEdges) {
  auto rows = read_corpus();
  ASSERT_GE(rows.size(), 200u);
  std::map<std::string, int> reasons;
  bool u64_max = false, long_string = false, unicode = false;
  for (const auto& r : rows) {
    std::string agent = r["agent_id"], task = r["task_type"];
    uint64_t units = std::stoull(r["max_units"].get<std::string>());
    uint64_t expires = std::stoull(r["expires_at_ms"].get<std::string>());
    reasons[reference_approve(agent, task, units, expires).reason]++;
    u64_max |= units == UINT64_MAX || expires == UINT64_MAX;
    long_string |= agent.size() >= 4096 || task.size() >= 4096;
    for (unsigned char c : agent + task) unicode |= c >= 0x80;
  }
  for (const char* reason : {"approved", "empty-agent-id", "agent-id-too-long", "agent-id-not-printable-ascii",
                             "unknown-task-type", "expired", "zero-units", "over-ceiling"})
    EXPECT_GE(reasons[reason], 3) << reason;
  EXPECT_TRUE(u64_max);
  EXPECT_TRUE(long_string);
  EXPECT_TRUE(unicode);
}

TEST_F(PolicyCorpus, FourLanguagesAgreeWithTheReference) {
  auto engine = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "policy_corpus_cache").string()});
  ASSERT_TRUE(engine.is_ok()) << engine.status().message();
  std::vector<Guest> guests;
  std::vector<std::string> missing;
  for (const char* lang : {"c", "cpp", "assemblyscript", "rust"}) {
    Guest g;
    if (load(lang, **engine, &g)) guests.push_back(std::move(g));
    else missing.push_back(lang);
  }
  if (HasFailure()) return;
  // A contract whose toolchain is absent is not built (contracts/examples/CMakeLists.txt says so).
  if (guests.size() < 4) {
    std::string m;
    for (auto& s : missing) m += " " + s;
    if (guests.empty()) GTEST_SKIP() << "no example contract built:" << m;
    std::cerr << "not built (toolchain missing):" << m << "\n";
  }
  const wit::Type& intent_type_ref = pkg_->type(fn_->params.at(0).type);
  ASSERT_EQ(intent_type_ref.kind, wit::TypeKind::kRecord);
  auto rows = read_corpus();
  ASSERT_GE(rows.size(), 200u);
  size_t checked = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    auto intent = abi::value_from_json(*pkg_, fn_->params.at(0).type, row);
    ASSERT_TRUE(intent.is_ok()) << "row " << i << ": " << intent.status().message();
    Decision want = reference_approve(row["agent_id"], row["task_type"], std::stoull(row["max_units"].get<std::string>()),
                                      std::stoull(row["expires_at_ms"].get<std::string>()));
    for (auto& g : guests) {
      auto got = approve(g, *intent);
      ASSERT_TRUE(got.is_ok()) << g.lang << " row " << i << ": " << got.status().message();
      EXPECT_EQ(got->reason, want.reason) << g.lang << " row " << i << ": " << row.dump().substr(0, 200);
      EXPECT_EQ(got->ceiling, want.ceiling) << g.lang << " row " << i;
      EXPECT_EQ(got->approved, want.approved) << g.lang << " row " << i;
      ++checked;
    }
  }
  EXPECT_EQ(checked, rows.size() * guests.size());
}

#ifdef COVENANT_HAVE_CONTRACT
TEST(PolicyCorpusContract, ContractApiAgrees) {
  auto engine = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "policy_corpus_cache").string()});
  ASSERT_TRUE(engine.is_ok()) << engine.status().message();
  auto rows = read_corpus();
  ASSERT_GE(rows.size(), 200u);
  int deployed = 0;
  for (const char* lang : {"c", "cpp", "assemblyscript", "rust"}) {
    fs::path path = fs::path(COVENANT_BINARY_DIR) / "contracts/examples" / (std::string("policy_") + lang + ".wasm");
    std::ifstream f(path, std::ios::binary);
    if (!f) continue;  // toolchain missing: not built
    std::vector<uint8_t> wasm((std::istreambuf_iterator<char>(f)), {});
    DeployOptions opts;
    opts.tier = Tier::kInterp;
    opts.name = std::string("policy_") + lang;  // seed world, no grants
    auto contract = Contract::deploy(**engine, wasm, opts);
    ASSERT_TRUE(contract.is_ok()) << lang << ": " << contract.status().message();
    ++deployed;
    for (size_t i = 0; i < rows.size(); ++i) {
      const json& row = rows[i];
      Decision want = reference_approve(row["agent_id"], row["task_type"], std::stoull(row["max_units"].get<std::string>()),
                                        std::stoull(row["expires_at_ms"].get<std::string>()));
      auto r = (*contract)->call_json("approve", json::array({row}));
      ASSERT_TRUE(r.is_ok()) << lang << " row " << i << ": " << r.status().message();
      ASSERT_EQ(r->trap.kind, TrapKind::kNone) << lang << " row " << i << ": " << r->trap.message;
      json expected = {{"approved", want.approved}, {"ceiling", std::to_string(want.ceiling)}, {"reason", want.reason}};
      EXPECT_EQ(r->result, expected) << lang << " row " << i;
    }
  }
  if (deployed == 0) GTEST_SKIP() << "no example contract built";
}

// The stateful budget policy: contracts/examples/budget/budget.c (hand-written
// glue) and contracts/examples/rust/budget (bindgen imports of covenant:host
// kv, log, clock) deployed with the same grants give the same verdicts, kv
// writes, number of log lines and traps over one sequence of calls (a trap rolls back).
TEST(PolicyCorpusContract, BudgetRustMatchesC) {
  fs::path c_wasm = fs::path(COVENANT_BINARY_DIR) / "contracts/budget.wasm";
  fs::path rust_wasm = fs::path(COVENANT_BINARY_DIR) / "contracts/examples/budget_rust.wasm";
  if (!fs::exists(c_wasm) || !fs::exists(rust_wasm)) GTEST_SKIP() << "budget contracts not built";
  std::ifstream wf(fs::path(COVENANT_SOURCE_DIR) / "contracts/examples/budget/budget.wit");
  std::string wit_text((std::istreambuf_iterator<char>(wf)), {});
  auto grants = parse_grants(R"({"capabilities": {"kv": {"namespace": "budget", "max_keys": 1000, "max_bytes": 65536},
                                                   "log": {"level": "info"}, "clock": {}}})");
  ASSERT_TRUE(grants.is_ok()) << grants.status().message();
  auto engine = Engine::create({.cache_dir = (fs::path(COVENANT_BINARY_DIR) / "policy_corpus_cache").string()});
  ASSERT_TRUE(engine.is_ok());
  auto deploy = [&](const fs::path& path, const std::string& name) {
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> wasm((std::istreambuf_iterator<char>(f)), {});
    DeployOptions opts;
    opts.tier = Tier::kInterp;
    opts.wit = wit_text;
    opts.grants = *grants;
    opts.deployment = name;
    opts.name = name;
    // Instances are kept between calls: kv results are the guest's own
    // allocations (placed with its cabi_realloc), freed by its allocator.
    return Contract::deploy(**engine, wasm, opts);
  };
  auto c = deploy(c_wasm, "budget_c");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  auto r = deploy(rust_wasm, "budget_rust");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const std::string long_agent(250, 'q');
  const std::vector<std::pair<std::string, json>> calls = {
      {"set-limit", json::array({"a", "500"})},
      {"approve", json::array({{{"agent-id", "a"}, {"amount", "100"}}})},
      {"approve", json::array({{{"agent-id", "a"}, {"amount", "450"}}})},
      {"approve", json::array({{{"agent-id", "a"}, {"amount", "400"}}})},
      {"spent", json::array({"a"})},
      {"approve", json::array({{{"agent-id", ""}, {"amount", "5"}}})},
      {"approve", json::array({{{"agent-id", "b"}, {"amount", "0"}}})},
      {"approve", json::array({{{"agent-id", "b"}, {"amount", "1000"}}})},
      {"approve", json::array({{{"agent-id", "b"}, {"amount", "1"}}})},
      {"spend-then-trap", json::array({{{"agent-id", "b"}, {"amount", "5"}}})},
      {"spent", json::array({"b"})},
      {"approve", json::array({{{"agent-id", "\u00fcn\u00ef"}, {"amount", "3"}}})},
      {"approve", json::array({{{"agent-id", long_agent}, {"amount", "7"}}})},
      {"approve", json::array({{{"agent-id", "c"}, {"amount", "18446744073709551615"}}})},
      {"set-limit", json::array({"c", "18446744073709551615"})},
      {"approve", json::array({{{"agent-id", "c"}, {"amount", "18446744073709551615"}}})},
      {"approve", json::array({{{"agent-id", "c"}, {"amount", "1"}}})},
      {"spent", json::array({"c"})},
  };
  auto normalized_logs = [](const CallRecord& rec) {
    std::vector<std::string> out;
    std::string at = " at " + std::to_string(rec.wall_ms);
    for (const auto& l : rec.logs) {
      std::string m = l.message;
      if (auto p = m.rfind(at); p != std::string::npos && p + at.size() == m.size()) m = m.substr(0, p) + " at <now>";
      out.push_back(m);
    }
    return out;
  };
  int traps = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    auto a = (*c)->call_json(calls[i].first, calls[i].second);
    auto b = (*r)->call_json(calls[i].first, calls[i].second);
    ASSERT_TRUE(a.is_ok()) << "C call " << i << ": " << a.status().message();
    ASSERT_TRUE(b.is_ok()) << "Rust call " << i << ": " << b.status().message();
    EXPECT_EQ(a->trap.kind, b->trap.kind) << "call " << i << ": " << a->trap.message << " / " << b->trap.message;
    traps += a->trap.kind != TrapKind::kNone;
    EXPECT_EQ(a->result, b->result) << "call " << i << " " << calls[i].first;
    EXPECT_EQ(a->record.kv_writes, b->record.kv_writes) << "call " << i;
    // Log lines: the same count (their wording belongs to each example).
    EXPECT_EQ(normalized_logs(a->record).size(), normalized_logs(b->record).size()) << "call " << i;
  }
  EXPECT_EQ(traps, 1);  // spend-then-trap, rolled back: the next spent(b) is still 1000

  // Thousands of kv reads on one long-lived instance: the results the host
  // places with cabi_realloc are freed by the guest, so its heap stays bounded
  // (a leak of even 64 KiB per call would exhaust the 256 MiB limit here).
  for (int i = 0; i < 4000; ++i) {
    auto b = (*r)->call_json("approve", json::array({{{"agent-id", "loop-" + std::to_string(i % 50)}, {"amount", "1"}}}));
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    ASSERT_EQ(b->trap.kind, TrapKind::kNone) << "call " << i << ": " << b->trap.message;
  }
}
#endif

}  // namespace
}  // namespace covenant
