// One command family per concept (docs/cli.md, "Command families"): a receipt
// made by `approve --ledger` or by a real `covenant serve` is fetched with
// `covenant receipt get`, verified with `covenant receipt verify`, proved,
// checkpointed and checked with `covenant log prove|checkpoint|verify`, on
// --ledger or on the server's --data directory. The older `settle
// receipt|prove|checkpoint` spellings give the same bytes; no location is ever
// implied (issue 10, "Two doors to one room").
#include <gtest/gtest.h>

#include "server/server_test_util.h"

namespace {

using namespace covenant::server_test;
using json = nlohmann::json;

const std::string kSeed = std::string(HOST_TESTDATA_DIR) + "/seed_c.wasm";

class CliFamilies : public ::testing::Test, public ServerHarness {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cli_families_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ::setenv("COVENANT_HOME", (dir_ + "/home").c_str(), 1);
  }
  void TearDown() override {
    kill_servers();
    std::filesystem::remove_all(dir_);
  }
  RunResult cli(const std::vector<std::string>& args) { return run_cli(args, dir_ + "/stderr.txt"); }
  std::string sha256_of(const std::string& path) { return covenant::to_hex(covenant::sha256(read_bytes(path))); }
};

TEST_F(CliFamilies, ReceiptsOfApproveLedgerOnTheLedger) {
  const std::string L = dir_ + "/l.db", K = dir_ + "/keys";
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    const std::string intent = dir_ + "/intent" + std::to_string(i) + ".json";
    std::ofstream(intent) << seed_intent("agent-" + std::to_string(i), 100);
    RunResult r = cli({"approve", kSeed, "--intent", intent, "--tier", "interp", "--ledger", L, "--keys-dir", K,
                       "--checkpoint-every", "0", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    ids.push_back(json::parse(r.out)["receipt_id"]);
  }
  const std::string& id = ids[1];
  // receipt get: the exact bytes (their SHA-256 is the id).
  RunResult r = cli({"receipt", "get", id, "--ledger", L, "--out", dir_ + "/r.cose"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote " + std::to_string(read_bytes(dir_ + "/r.cose").size()) + " bytes (log index 1) to " + dir_ +
                       "/r.cose\n");
  EXPECT_EQ(sha256_of(dir_ + "/r.cose"), id);
  // receipt verify: by id on the ledger, and the file.
  r = cli({"receipt", "verify", id, "--ledger", L, "--keys-dir", K, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["verdict"], "valid");
  EXPECT_EQ(json::parse(r.out)["receipt"]["id"], id);
  // Every field the receipt carries is shown, key 12 (the interface) included.
  EXPECT_EQ(json::parse(r.out)["receipt"]["interface_hash"].get<std::string>().size(), 32u) << r.out;
  r = cli({"receipt", "verify", dir_ + "/r.cose", "--keys-dir", K});
  EXPECT_EQ(r.code, 0) << r.err;
  // log checkpoint, prove, verify on the ledger.
  r = cli({"log", "checkpoint", "--ledger", L, "--keys-dir", K, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json cp = json::parse(r.out);
  EXPECT_EQ(cp["tree_size"], 3);
  const std::string cp_path = cp["path"];
  EXPECT_EQ(read_file(cp_path), cp["checkpoint"].get<std::string>());
  r = cli({"log", "prove", "--id", id, "--ledger", L, "--out", dir_ + "/p.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  // --out writes the file and prints one line (issue 10: the proof was printed too).
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("written to " + dir_ + "/p.json"), std::string::npos) << r.out;
  json proof = json::parse(read_file(dir_ + "/p.json"));
  EXPECT_EQ(proof["receipt_id"], id);
  EXPECT_EQ(proof["leaf_index"], 1);
  r = cli({"log", "verify", "--ledger", L, "--checkpoint", cp_path, "--keys-dir", K, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["tree_size"], 3);
  EXPECT_EQ(json::parse(r.out)["checkpoint_tree_size"], 3);
  r = cli({"log", "verify", "--proof", dir_ + "/p.json", "--checkpoint", cp_path, "--receipt", dir_ + "/r.cose",
           "--keys-dir", K});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = cli({"log", "prove", "--from", "1", "--ledger", L, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["type"], "consistency");
  EXPECT_EQ(json::parse(r.out)["new_size"], 3);
  // The older spellings run the same code: same bytes, same proof.
  r = cli({"settle", "receipt", id, "--ledger", L, "--out", dir_ + "/r2.cose"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_bytes(dir_ + "/r2.cose"), read_bytes(dir_ + "/r.cose"));
  r = cli({"settle", "prove", id, "--ledger", L, "--out", dir_ + "/p2.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(json::parse(read_file(dir_ + "/p2.json")), proof);
  // A receipt not there, a ledger not there, no location at all.
  r = cli({"receipt", "get", std::string(64, '0'), "--ledger", L, "--out", dir_ + "/x", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["error"]["code"], "not_found") << r.out;
  r = cli({"receipt", "get", id, "--ledger", dir_ + "/typo.db", "--out", dir_ + "/x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no ledger there"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/typo.db"));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"receipt", "get", id, "--out", dir_ + "/x"},
        std::vector<std::string>{"receipt", "verify", id, "--data", dir_ + "/nowhere"},
        std::vector<std::string>{"log", "prove", "--id", id}, std::vector<std::string>{"log", "checkpoint"},
        std::vector<std::string>{"log", "verify"}}) {
    r = cli(args);
    EXPECT_EQ(r.code, 1) << args[0] << " " << args[1] << "\n" << r.out << r.err;
    EXPECT_FALSE(r.err.empty()) << args[0] << " " << args[1];
  }
  r = cli({"log", "verify"});
  EXPECT_NE(r.err.find("say where the receipts are: --ledger"), std::string::npos) << r.err;
  // A receipt-log file and a ledger at once: one location only.
  r = cli({"log", "verify", "--ledger", L, "--log", dir_ + "/r.cose"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("give one"), std::string::npos) << r.err;
}

// A receipt the server signed, read back from its data directory (keys,
// ledger, checkpoints inside it), while it serves and after it stopped.
TEST_F(CliFamilies, ReceiptsOfTheServerByItsDataDirectory) {
  Server& s = add_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "seed", kSeed);
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    Response a = fresh_request(s.port, "POST", "/v1/contracts/seed/approve", seed_intent("agent-" + std::to_string(i), 50),
                               auth(k.caller, {{"Idempotency-Key", "req-" + std::to_string(i)}}));
    ASSERT_EQ(a.status, 200) << a.body;
    ids.push_back(a.j()["receipt_id"]);
  }
  const std::string& id = ids[0];
  // While the server runs.
  RunResult r = cli({"receipt", "get", id, "--data", s.data, "--out", dir_ + "/r.cose"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(sha256_of(dir_ + "/r.cose"), id);
  r = cli({"receipt", "verify", id, "--data", s.data, "--json"});  // the server's keys: DATA/keys
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["verdict"], "valid");
  ASSERT_TRUE(stop(s).has_value());
  // After it stopped: a checkpoint into DATA/checkpoints, a proof against it.
  r = cli({"log", "checkpoint", "--data", s.data, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json cp = json::parse(r.out);
  const std::string cp_path = cp["path"];
  EXPECT_EQ(cp_path.rfind(s.data + "/checkpoints/", 0), 0u) << cp_path;
  r = cli({"log", "prove", "--id", id, "--data", s.data, "--out", dir_ + "/p.json", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["receipt_id"], id);
  EXPECT_EQ(json::parse(r.out)["tree_size"], cp["tree_size"]);
  r = cli({"log", "verify", "--proof", dir_ + "/p.json", "--checkpoint", cp_path, "--receipt", dir_ + "/r.cose", "--data",
           s.data, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["verdict"], "valid");
  r = cli({"log", "verify", "--data", s.data, "--checkpoint", cp_path});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  // The other receipt is not what the proof is about.
  r = cli({"receipt", "get", ids[1], "--data", s.data, "--out", dir_ + "/r1.cose"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli({"log", "verify", "--proof", dir_ + "/p.json", "--checkpoint", cp_path, "--receipt", dir_ + "/r1.cose", "--data",
           s.data});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
}

}  // namespace
