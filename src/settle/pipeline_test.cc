// The approval pipeline (pipeline.h): kv writes, receipt and hold in one
// transaction; per-executor chains; no lost kv update when many threads and
// several pipelines (as several processes would) share one ledger, on SQLite
// and PostgreSQL; traps and dry runs store nothing.
#include "settle/pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "covenant/receipt.h"

namespace covenant::settle {
namespace {

using json = nlohmann::json;

const std::string kTestdata = HOST_TESTDATA_DIR;

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

const char* kBudgetGrants =
    R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {"level": "info"}, "clock": {}}})";

struct Backend {
  std::string name;
};

class PipelineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/pipeline_test_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : dir_)
      if (c == '/' && &c > dir_.data() + ::testing::TempDir().size()) c = '_';
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (GetParam() == "postgres") {
      const char* url = std::getenv("COVENANT_PG_URL");
      if (!url || !*url) {
        if (std::getenv("COVENANT_REQUIRE_PG")) FAIL() << "COVENANT_REQUIRE_PG is set but COVENANT_PG_URL is not";
        GTEST_SKIP() << "COVENANT_PG_URL not set";
      }
      ledger_ = url;
      static std::atomic<int> n{0};
      schema_ = "pipe_" + std::to_string(getpid()) + "_" + std::to_string(n++) + "_" +
                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
    } else {
      ledger_ = dir_ + "/ledger.db";
    }
    engine_ = Engine::create({}).value();
  }

  std::unique_ptr<Pipeline> open(const std::string& keys = "keys") {
    PipelineOptions o;
    o.ledger = ledger_;
    o.pg_schema = schema_;
    o.keys_dir = dir_ + "/" + keys;
    o.checkpoint_dir = dir_ + "/cp-" + keys;
    auto p = Pipeline::open(o);
    EXPECT_TRUE(p.is_ok()) << p.status().to_string();
    return p.is_ok() ? std::move(*p) : nullptr;
  }

  std::unique_ptr<Contract> budget(Pipeline& p, Tier tier = Tier::kBaseline) {
    DeployOptions o;
    o.tier = tier;
    o.wit = read_text(std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit");
    o.grants = parse_grants(kBudgetGrants).value();
    o.deployment = "budget";
    o.kv_store = p.kv_store();
    auto c = Contract::deploy(*engine_, read_file(kTestdata + "/budget.wasm"), o);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return std::move(*c);
  }

  std::unique_ptr<Contract> seed(Pipeline& p) {
    DeployOptions o;
    o.tier = Tier::kBaseline;
    o.kv_store = p.kv_store();
    auto c = Contract::deploy(*engine_, read_file(kTestdata + "/seed_c.wasm"), o);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return std::move(*c);
  }

  // The seed policy's approve on agent-7's intent for 250 units expiring at expires_at_ms.
  PipelineCall seed_call(uint64_t expires_at_ms) {
    PipelineCall call;
    call.export_name = "policy.approve";
    json intent = {{"agent_id", "agent-7"}, {"task_type", "compute"}, {"max_units", 250}, {"expires_at_ms", expires_at_ms}};
    call.args = json::array({intent});
    call.inputs.module = read_file(kTestdata + "/seed_c.wasm");
    call.inputs.export_name = "policy.approve";
    call.inputs.intent = intent.dump();
    return call;
  }

  PipelineCall budget_call(const std::string& agent, uint64_t amount) {
    PipelineCall c;
    c.export_name = "approve";
    json intent = {{"agent-id", agent}, {"amount", std::to_string(amount)}};
    c.args = json::array({intent});
    c.inputs.module = read_file(kTestdata + "/budget.wasm");
    c.inputs.wit = read_text(std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit");
    c.inputs.grants = kBudgetGrants;
    c.inputs.export_name = "approve";
    c.inputs.intent = intent.dump();
    c.plan_escrow = false;
    return c;
  }

  std::string dir_, ledger_, schema_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(PipelineTest, ReceiptKvAndHoldCommitTogether) {
  auto p = open();
  ASSERT_TRUE(p);
  auto c = seed(*p);
  auto o = p->approve(*c, seed_call(4102444800000));
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  ASSERT_FALSE(o->trapped());
  ASSERT_TRUE(o->hold_id);
  // Durable when approve returns: the journal holds the receipt, the hold exists.
  Hash32 id;
  ASSERT_TRUE(from_hex(o->receipt_id, id));
  auto row = p->ledger().journal_by_key(id).value();
  ASSERT_TRUE(row);
  EXPECT_EQ(row->entry, std::string(o->cose.begin(), o->cose.end()));
  EXPECT_EQ(row->seq - 1, o->log_index);
  auto hold = p->ledger().lookup_transfer(*Id128::parse(*o->hold_id)).value();
  ASSERT_TRUE(hold);
  EXPECT_EQ(hold->amount, 250u);
  EXPECT_EQ(hold->hold_state, HoldState::kPending);
  auto v = verify_receipt(o->cose, PinnedKey(p->key().public_key()));
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->prev_receipt_hash, Hash32{});
}

// An intent that already expired is refused before anything runs or is held.
TEST_P(PipelineTest, ExpiredIntentIsRefusedBeforeAnyHold) {
  auto p = open();
  ASSERT_TRUE(p);
  auto c = seed(*p);
  auto o = p->approve(*c, seed_call(1767225600001));
  ASSERT_FALSE(o.is_ok());
  EXPECT_NE(o.status().message().find("intent expired"), std::string::npos) << o.status().message();
  EXPECT_EQ(p->ledger().journal_count().value(), 0u);
  EXPECT_TRUE(p->ledger().all_transfers().value().empty());
}

TEST_P(PipelineTest, TrapAndDryRunStoreNothing) {
  auto p = open();
  ASSERT_TRUE(p);
  auto c = budget(*p);
  // An agent id with a control character makes an invalid kv key: the contract traps.
  auto bad = p->approve(*c, budget_call(std::string("a\x01" "b"), 10));
  ASSERT_TRUE(bad.is_ok()) << bad.status().to_string();
  EXPECT_TRUE(bad->trapped());
  auto dry = budget_call("agent-d", 10);
  dry.dry_run = true;
  auto d = p->approve(*c, dry);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_FALSE(d->trapped());
  EXPECT_TRUE(d->cose.empty());
  EXPECT_FALSE(d->call.record.kv_writes.empty());
  EXPECT_EQ(p->ledger().journal_count().value(), 0u);
  auto rows = p->ledger().kv_scan("budget", "", 10).value();
  EXPECT_TRUE(rows.empty());
  // And the next real call does not see the dry run's write.
  auto real = p->approve(*c, budget_call("agent-d", 10));
  ASSERT_TRUE(real.is_ok());
  EXPECT_EQ(real->call.result["spent"], "10");
}

// Many threads, one pipeline, one hot kv key: every approval is counted once.
TEST_P(PipelineTest, ConcurrentCallsLoseNoKvUpdate) {
  auto p = open();
  ASSERT_TRUE(p);
  auto c = budget(*p);
  constexpr int kThreads = 8, kCalls = 20;
  std::atomic<int> approved{0}, errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        auto o = p->approve(*c, budget_call("hot", 5));
        if (!o.is_ok()) {
          errors++;
          ADD_FAILURE() << o.status().to_string();
          continue;
        }
        if (o->call.result["approved"] == true) approved++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(approved, kThreads * kCalls);  // 160 * 5 = 800 <= the default limit of 1000
  auto last = p->approve(*c, budget_call("hot", 5));
  ASSERT_TRUE(last.is_ok());
  EXPECT_EQ(last->call.result["spent"], std::to_string(5 * (kThreads * kCalls + 1)));
  auto chains = verify_chains(p->ledger()).value();
  EXPECT_TRUE(chains.problems.empty()) << chains.problems.front();
  EXPECT_EQ(chains.receipts, static_cast<uint64_t>(kThreads * kCalls + 1));
}

// Two pipelines with their own executor keys on one ledger, as two server processes
// would be: no lost update, no forked chain, one chain per executor.
TEST_P(PipelineTest, TwoExecutorsShareOneLedger) {
  auto a = open("keys-a");
  auto b = open("keys-b");
  ASSERT_TRUE(a && b);
  auto ca = budget(*a), cb = budget(*b);
  constexpr int kPerThread = 15;
  std::atomic<int> approved{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&, t] {
      Pipeline& p = t % 2 ? *a : *b;
      Contract& c = t % 2 ? *ca : *cb;
      for (int i = 0; i < kPerThread; ++i) {
        auto o = p.approve(c, budget_call("shared", 10));
        ASSERT_TRUE(o.is_ok()) << o.status().to_string();
        if (o->call.result["approved"] == true) approved++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(approved, 90);
  auto last = a->approve(*ca, budget_call("shared", 10));
  ASSERT_TRUE(last.is_ok());
  EXPECT_EQ(last->call.result["spent"], "910");
  auto chains = verify_chains(a->ledger()).value();
  EXPECT_TRUE(chains.problems.empty()) << chains.problems.front();
  EXPECT_EQ(chains.chains.size(), 2u);
  auto report = a->ledger().verify().value();
  EXPECT_TRUE(report.ok());
}

// Two pipelines with the SAME key (two CLI processes sharing a keys directory): the
// chain head is compare-and-set, so a receipt signed on a stale head is signed again.
TEST_P(PipelineTest, SameKeyTwoPipelinesNeverFork) {
  auto a = open("keys");
  auto b = open("keys");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->key().kid(), b->key().kid());
  auto ca = budget(*a), cb = budget(*b);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto o = (t % 2 ? *a : *b).approve(t % 2 ? *ca : *cb, budget_call("agent-" + std::to_string(t), 1));
        ASSERT_TRUE(o.is_ok()) << o.status().to_string();
      }
    });
  for (auto& t : ts) t.join();
  auto chains = verify_chains(a->ledger()).value();
  EXPECT_TRUE(chains.problems.empty()) << chains.problems.front();
  EXPECT_EQ(chains.receipts, 40u);
  EXPECT_EQ(chains.chains.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, PipelineTest, ::testing::Values("sqlite", "postgres"));

}  // namespace
}  // namespace covenant::settle
