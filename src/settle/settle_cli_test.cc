// `covenant approve --ledger` end to end, run as subprocesses: approve a few
// intents (receipt and hold ids added to the JSON), release and refund holds,
// cut a checkpoint, verify a receipt and an inclusion proof with the evidence
// commands, replay a call on another tier (confirmed) and a damaged package
// (exit 1 / 2). On SQLite, and on PostgreSQL when COVENANT_PG_URL is set.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

struct Outcome {
  int code = -1;
  std::string out, err;
};

std::string g_dir;

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

Outcome run(const std::string& args) {
  std::string err_path = g_dir + "/stderr.txt";
  std::string cmd = std::string(COVENANT_CLI) + " " + args + " 2>" + err_path;
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_path);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

const std::string kSeed = std::string(HOST_TESTDATA_DIR) + "/seed_c.wasm";

void cycle(const std::string& ledger_flags) {
  const std::string keys = g_dir + "/keys";
  const std::string cps = g_dir + "/cp";
  const std::string common = ledger_flags + " --keys-dir " + keys;
  std::vector<json> approvals;
  for (int i = 0; i < 4; ++i) {
    std::string intent = g_dir + "/intent" + std::to_string(i) + ".json";
    // intent 3 names an unknown task type: denied, a receipt but no hold.
    write(intent, R"({"agent_id": "agent-)" + std::to_string(i) + R"(", "task_type": ")" + (i == 3 ? "teleport" : "compute") +
                      R"(", "max_units": )" + std::to_string(100 * (i + 1)) + R"(, "expires_at_ms": 4102444800000})");
    Outcome r = run("approve " + kSeed + " --intent " + intent + " --tier baseline --json --checkpoint-every 2 --checkpoint-dir " +
                    cps + " --replay-out " + g_dir + "/call" + std::to_string(i) + ".replay " + common);
    ASSERT_EQ(r.code, 0) << r.err;
    json j = json::parse(r.out);
    std::set<std::string> ks;
    for (auto it = j.begin(); it != j.end(); ++it) ks.insert(it.key());
    std::set<std::string> want = {"result", "fuel_used", "trap", "timings_us", "receipt_id", "hold_id", "log_index",
                                  "tier", "cache_hit", "logs", "logs_dropped"};
    if (i % 2 == 1) want.insert("checkpoint");
    EXPECT_EQ(ks, want) << r.out;
    EXPECT_EQ(j["log_index"], i);
    EXPECT_EQ(j["tier"], "baseline") << r.out;
    EXPECT_EQ(j["receipt_id"].get<std::string>().size(), 64u);
    EXPECT_EQ(j["hold_id"].is_null(), i == 3) << r.out;
    approvals.push_back(j);
  }
  // Plain output names the receipt.
  {
    Outcome r = run("approve " + kSeed + " --intent " + g_dir + "/intent0.json --tier interp --checkpoint-every 0 " + common);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("\nreceipt_id: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nhold_id: "), std::string::npos) << r.out;
  }
  // Second phase: release one hold, refund another; both idempotent.
  const std::string h0 = approvals[0]["hold_id"], h1 = approvals[1]["hold_id"];
  Outcome r = run("settle release " + h0 + " " + ledger_flags + " --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["hold_state"], "posted");
  r = run("settle release " + h0 + " " + ledger_flags + " --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["result"], "exists");
  r = run("settle refund " + h1 + " " + ledger_flags + " --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["hold_state"], "voided");
  r = run("settle release " + h1 + " " + ledger_flags + " --json");
  EXPECT_EQ(r.code, 1) << r.out;
  // Checkpoint, receipt, inclusion proof, offline verification.
  r = run("settle checkpoint " + common + " --dir " + cps + " --json");
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  json cp = json::parse(r.out);
  EXPECT_EQ(cp["tree_size"], 5);
  const std::string id = approvals[2]["receipt_id"];
  r = run("settle receipt " + id + " --out " + g_dir + "/r.cose " + ledger_flags);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("receipt verify " + g_dir + "/r.cose --keys-dir " + keys + " --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = run("settle prove " + id + " --out " + g_dir + "/p.json " + ledger_flags);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("log verify --proof " + g_dir + "/p.json --checkpoint " + cp["path"].get<std::string>() + " --receipt " + g_dir +
          "/r.cose --keys-dir " + keys + " --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["verdict"], "valid");
  // The proof does not hold for another receipt.
  r = run("settle receipt " + approvals[1]["receipt_id"].get<std::string>() + " --out " + g_dir + "/r1.cose " + ledger_flags);
  ASSERT_EQ(r.code, 0);
  r = run("log verify --proof " + g_dir + "/p.json --checkpoint " + cp["path"].get<std::string>() + " --receipt " + g_dir +
          "/r1.cose --keys-dir " + keys);
  EXPECT_EQ(r.code, 2);
  // Replay: produced on baseline, confirmed on the interpreter.
  r = run("replay " + g_dir + "/call2.replay --tier interp");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "confirmed\n");
  r = run("replay " + g_dir + "/call3.replay --tier interp --keys-dir " + keys + " --json");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["verdict"], "confirmed");
  // The ledger's own verification passes.
  r = run("ledger verify " + ledger_flags);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

class SettleCli : public ::testing::Test {
 protected:
  void SetUp() override {
    g_dir = ::testing::TempDir() + "/settle_cli_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(g_dir);
    std::filesystem::create_directories(g_dir);
  }
};

TEST_F(SettleCli, ApproveLedgerCycleOnSqlite) { cycle("--ledger " + g_dir + "/ledger.db"); }

TEST_F(SettleCli, ApproveLedgerCycleOnPostgres) {
  const char* url = std::getenv("COVENANT_PG_URL");
  if (!url || !*url) {
    const char* require = std::getenv("COVENANT_REQUIRE_PG");
    if (require && std::string(require) == "1") FAIL() << "COVENANT_REQUIRE_PG=1 but COVENANT_PG_URL is not set";
    GTEST_SKIP() << "COVENANT_PG_URL not set";
  }
  cycle(std::string("--ledger '") + url + "' --pg-schema settle_cli_" + std::to_string(getpid()));
}

TEST_F(SettleCli, ReplayExitCodes) {
  write(g_dir + "/intent.json", R"({"agent_id": "a", "task_type": "compute", "max_units": 5, "expires_at_ms": 1})");
  Outcome r = run("approve " + kSeed + " --intent " + g_dir + "/intent.json --tier interp --keys-dir " + g_dir +
                  "/keys --replay-out " + g_dir + "/x.replay --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(json::parse(r.out).contains("hold_id")) << "no ledger, no hold";
  r = run("replay " + g_dir + "/x.replay --tier baseline");
  EXPECT_EQ(r.code, 0) << r.err;
  // A byte of the receipt changed: refuted (signature), exit 2.
  std::string bytes;
  {
    std::ifstream f(g_dir + "/x.replay", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  size_t at = bytes.find("receipt");
  ASSERT_NE(at, std::string::npos);
  std::string tampered = bytes;
  tampered[at + 7 + 3 + 40] ^= 0x01;  // inside the COSE bytes, after the key and the bstr head
  write(g_dir + "/t.replay", tampered);
  r = run("replay " + g_dir + "/t.replay");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.out, "refuted: signature\n");
  // Unreadable or malformed: exit 1.
  r = run("replay " + g_dir + "/missing.replay");
  EXPECT_EQ(r.code, 1);
  write(g_dir + "/bad.replay", bytes.substr(0, bytes.size() / 2));
  r = run("replay " + g_dir + "/bad.replay --json");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["ok"], false);
  r = run("replay");
  EXPECT_EQ(r.code, 1);
}

// Several `approve --ledger` processes at once on one SQLite file with one fresh
// keys directory (the issue: chains forked, kv updates lost, several keys were
// created and approvals failed on active.tmp races). Now: one key, one chain
// without a fork, every budget update counted, every process exits 0.
TEST_F(SettleCli, ConcurrentProcessesShareOneLedger) {
  const std::string wit = std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit";
  const std::string wasm = std::string(HOST_TESTDATA_DIR) + "/budget.wasm";
  write(g_dir + "/grants.json", R"({"capabilities": {"kv": {"namespace": "budget"}, "log": {"level": "info"}, "clock": {}}})");
  write(g_dir + "/intent.json", R"({"agent-id": "shared", "amount": "10"})");
  const std::string approve = std::string(COVENANT_CLI) + " approve " + wasm + " --wit " + wit + " --grants " + g_dir +
                              "/grants.json --intent " + g_dir + "/intent.json --tier interp --ledger " + g_dir +
                              "/ledger.db --keys-dir " + g_dir + "/keys --checkpoint-every 4 --json";
  constexpr int kProcs = 6, kEach = 5;
  std::string script;
  for (int p = 0; p < kProcs; ++p) {
    script += "( for i in $(seq " + std::to_string(kEach) + "); do " + approve + " >>" + g_dir + "/out" +
              std::to_string(p) + ".jsonl 2>>" + g_dir + "/err" + std::to_string(p) + ".txt; echo $? >>" + g_dir +
              "/rc" + std::to_string(p) + ".txt; done ) & ";
  }
  script += "wait";
  ASSERT_EQ(std::system(("bash -c '" + script + "'").c_str()), 0);
  std::set<std::string> receipts;
  for (int p = 0; p < kProcs; ++p) {
    std::ifstream rc(g_dir + "/rc" + std::to_string(p) + ".txt"), out(g_dir + "/out" + std::to_string(p) + ".jsonl");
    std::ifstream err(g_dir + "/err" + std::to_string(p) + ".txt");
    std::string errors((std::istreambuf_iterator<char>(err)), {});
    std::string line;
    int n = 0;
    while (std::getline(rc, line)) {
      EXPECT_EQ(line, "0") << "process " << p << ": " << errors;
      ++n;
    }
    EXPECT_EQ(n, kEach);
    while (std::getline(out, line)) {
      json j = json::parse(line);
      EXPECT_EQ(j["result"]["approved"], true);
      receipts.insert(j["receipt_id"].get<std::string>());
    }
  }
  EXPECT_EQ(receipts.size(), static_cast<size_t>(kProcs * kEach));
  // One executor key, made once.
  int keys = 0;
  for (const auto& e : std::filesystem::directory_iterator(g_dir + "/keys"))
    if (e.path().extension() == ".key") ++keys;
  EXPECT_EQ(keys, 1);
  // No lost kv update: the next call sees every one of them.
  Outcome r = run("approve " + wasm + " --wit " + wit + " --grants " + g_dir + "/grants.json --intent " + g_dir +
                  "/intent.json --tier interp --ledger " + g_dir + "/ledger.db --keys-dir " + g_dir + "/keys --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["result"]["spent"], std::to_string(10 * (kProcs * kEach + 1)));
  // One chain, no fork; every hold has its receipt.
  r = run("ledger verify --ledger " + g_dir + "/ledger.db --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json v = json::parse(r.out);
  EXPECT_EQ(v["ok"], true) << r.out;
  EXPECT_EQ(v["receipts"], kProcs * kEach + 1);
  EXPECT_EQ(v["executor_chains"].size(), 1u);
}

}  // namespace
