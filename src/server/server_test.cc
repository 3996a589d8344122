// End-to-end tests of `covenant serve` as users meet it: the real binary runs as
// a child process (`--listen 127.0.0.1:0 --data <fresh dir>`, stdout piped for
// the `listening on http://HOST:PORT` line, stderr to DIR/server.log) and the
// tests talk HTTP/1.1 to it over plain POSIX sockets with a small blocking
// client (Content-Length and chunked bodies, keep-alive reuse or a fresh
// connection per request).
//
// Each TEST_P runs on two backends: "sqlite" (the data directory's ledger.db)
// and "postgres" (`--ledger $COVENANT_PG_URL --pg-schema <unique>`; skipped when
// COVENANT_PG_URL is unset, failed instead when COVENANT_REQUIRE_PG=1).
//
// What is checked: API v1 end to end (keys, deploy, approve, receipts verified
// with the executor key, inclusion and consistency proofs, holds, replay), the
// simulate route stores nothing, the role x route authorization matrix and
// tenant isolation, bad input (JSON errors, 413, 431, slow clients),
// idempotency keys, kill -9 under load (every acknowledged receipt survives and
// `covenant ledger verify` is clean), two servers on one PostgreSQL schema (no
// lost update of a kv budget), contract upgrade under load, and SIGTERM drain.
//
// The HTTP client, the child-process helpers and the API helpers (ServerHarness)
// are in server_test_util.h, shared with server_fault_test.cc.
//
// Compile definitions: COVENANT_CLI (build/covenant), COVENANT_SOURCE_DIR,
// COVENANT_BINARY_DIR, HOST_TESTDATA_DIR.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "covenant/keys.h"
#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "server/server_test_util.h"
#include "settle/jcs.h"
#include "settle/settle.h"

namespace {

using namespace covenant::server_test;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// The fixture

std::atomic<int> g_schema_counter{0};

class ServerTest : public ::testing::TestWithParam<std::string>, public ServerHarness {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->name());
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    dir_ = ::testing::TempDir() + "/covenant_server_test_" + std::to_string(::getpid()) + "_" + name;
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (postgres()) {
      const char* url = std::getenv("COVENANT_PG_URL");
      if (!url || !*url) {
        const char* require = std::getenv("COVENANT_REQUIRE_PG");
        if (require && std::string(require) == "1") FAIL() << "COVENANT_REQUIRE_PG=1 but COVENANT_PG_URL is not set";
        GTEST_SKIP() << "COVENANT_PG_URL not set";
      }
      pg_url_ = url;
      // [a-z0-9_], at most 48 characters, unique per test and process.
      std::string tn = lower(std::string(info->name()));
      std::string clean;
      for (char c : tn) clean += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
      schema_ = "srvt_" + std::to_string(::getpid()) + "_" + std::to_string(g_schema_counter++) + "_" + clean;
      if (schema_.size() > 48) schema_.resize(48);
    }
    for (const std::string& f : {kPolicyC, kPolicyRust, kBudgetRust, kBudgetWit})
      ASSERT_TRUE(std::filesystem::exists(f)) << f << " is missing: build the example contracts first";
    ASSERT_TRUE(std::filesystem::exists(COVENANT_CLI)) << COVENANT_CLI << " is missing";
  }

  void TearDown() override {
    kill_servers();
    if (!HasFailure())
      std::filesystem::remove_all(dir_);
    else if (!dir_.empty())
      std::fprintf(stderr, "[server_test] kept %s for inspection\n", dir_.c_str());
  }

  bool postgres() const { return GetParam() == "postgres"; }

  // The ledger flags of `covenant serve` and `covenant ledger` for this backend.
  std::vector<std::string> ledger_flags(const std::string& data) const override {
    if (postgres()) return {"--ledger", pg_url_, "--pg-schema", schema_};
    return {"--ledger", data + "/ledger.db"};
  }

  Server& new_server(const std::string& data_name) {
    if (postgres()) return add_server(data_name, {"--ledger", pg_url_, "--pg-schema", schema_});
    return add_server(data_name);
  }

  std::string pg_url_, schema_;
};

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// ---------------------------------------------------------------------------
// 1. The whole cycle a user goes through.

TEST_P(ServerTest, EndToEnd) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  ASSERT_TRUE(std::filesystem::exists(s.data + "/admin.key"));
  EXPECT_EQ(std::filesystem::status(s.data + "/admin.key").permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  EXPECT_EQ(fresh_request(s.port, "GET", "/readyz").status, 200);
  TenantKeys k = tenant_keys(s, "acme");
  ASSERT_FALSE(k.caller.empty());

  const std::string version = deploy(s, k.deployer, "policy", kPolicyC);
  ASSERT_TRUE(is_hex(version, 64)) << version;
  {
    Response r = fresh_request(s.port, "GET", "/v1/contracts/policy", "", auth(k.deployer));
    ASSERT_EQ(r.status, 200) << r.describe();
    json j = r.j();
    EXPECT_EQ(j.value("active_version", ""), version) << r.body;
    ASSERT_TRUE(j["versions"].is_array());
    EXPECT_EQ(j["versions"].size(), 1u);
    Response l = fresh_request(s.port, "GET", "/v1/contracts", "", auth(k.caller));
    ASSERT_EQ(l.status, 200) << l.describe();
    ASSERT_EQ(l.j()["contracts"].size(), 1u) << l.body;
    EXPECT_EQ(l.j()["contracts"][0].value("name", ""), "policy");
  }

  // Approvals: five intents, each with a receipt, a hold and a log index.
  Conn conn(s.port);
  struct Approved {
    std::string receipt_id, hold_id;
    std::vector<uint8_t> cose;
    uint64_t log_index;
  };
  std::vector<Approved> got;
  for (int i = 0; i < 5; ++i) {
    Response r =
        conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-" + std::to_string(i)), auth(k.caller));
    ASSERT_EQ(r.status, 200) << r.describe() << log_of(s);
    json j = r.j();
    ASSERT_TRUE(j.contains("decision")) << r.body;
    EXPECT_EQ(j["decision"].value("approved", false), true) << r.body;
    const std::string id = j.value("receipt_id", "");
    EXPECT_TRUE(is_hex(id, 64)) << r.body;
    std::vector<uint8_t> cose;
    ASSERT_TRUE(covenant::base64_decode(j.value("receipt", ""), &cose)) << r.body;
    EXPECT_EQ(covenant::receipt_id_hex(cose), id) << "the receipt id is SHA-256 of the COSE bytes";
    ASSERT_TRUE(j["hold_id"].is_string()) << r.body;
    EXPECT_EQ(j["hold_id"].get<std::string>(), id.substr(0, 32)) << "hold id = first 16 bytes of the receipt id";
    ASSERT_TRUE(j["log_index"].is_number_unsigned()) << r.body;
    EXPECT_EQ(j.value("version", ""), version);
    if (!got.empty()) {
      EXPECT_GT(j["log_index"].get<uint64_t>(), got.back().log_index);
    }
    got.push_back({id, j["hold_id"], cose, j["log_index"].get<uint64_t>()});
  }

  // The executor key, and each receipt's signature.
  Response keys = fresh_request(s.port, "GET", "/v1/executor/keys", "", auth(k.auditor));
  ASSERT_EQ(keys.status, 200) << keys.describe();
  std::optional<covenant::PublicKey> pub;
  const json keys_j = keys.j();
  for (auto& e : keys_j["keys"]) {
    if (e.value("this_executor", false)) {
      covenant::PublicKey pk;
      ASSERT_TRUE(covenant::from_hex(e.value("public_key_hex", ""), pk)) << keys.body;
      pub = pk;
      EXPECT_EQ(e.value("kid", ""), covenant::to_hex(covenant::kid_for(pk)));
    }
  }
  ASSERT_TRUE(pub.has_value()) << keys.body;
  covenant::PinnedKey pinned(*pub);
  for (const Approved& a : got) {
    Response r = conn.request("GET", "/v1/receipts/" + a.receipt_id, "", auth(k.auditor));
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_EQ(r.header("content-type"), "application/cose");
    EXPECT_EQ(std::vector<uint8_t>(r.body.begin(), r.body.end()), a.cose) << "GET returns the exact receipt bytes";
    auto v = covenant::verify_receipt(as_bytes(r.body), pinned);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    if (v.is_ok()) {
      EXPECT_EQ(v->executor_kid, covenant::kid_for(*pub));
    }
  }
  // A changed byte does not verify.
  {
    std::vector<uint8_t> bad = got[0].cose;
    bad[bad.size() - 5] ^= 0x01;
    EXPECT_FALSE(covenant::verify_receipt(bad, pinned).is_ok());
  }

  // Inclusion proof of the third receipt, against the root it names.
  Response pr = conn.request("GET", "/v1/receipts/" + got[2].receipt_id + "/proof", "", auth(k.auditor));
  ASSERT_EQ(pr.status, 200) << pr.describe() << log_of(s);
  json proof = pr.j();
  std::vector<covenant::Hash32> path;
  for (auto& h : proof["path"]) {
    covenant::Hash32 x;
    ASSERT_TRUE(covenant::from_hex(h.get<std::string>(), x));
    path.push_back(x);
  }
  covenant::Hash32 root;
  ASSERT_TRUE(covenant::from_hex(proof.value("root", ""), root)) << pr.body;
  const uint64_t index = proof["leaf_index"].get<uint64_t>(), tsize = proof["tree_size"].get<uint64_t>();
  EXPECT_EQ(index, got[2].log_index);
  const covenant::Hash32 leaf = covenant::merkle_leaf_hash(got[2].cose);
  EXPECT_EQ(proof.value("leaf_hash", ""), covenant::to_hex(leaf));
  covenant::Status inc = covenant::verify_inclusion(leaf, index, tsize, path, root);
  EXPECT_TRUE(inc.is_ok()) << inc.to_string() << "\n" << pr.body;
  // ... and not for another receipt at that index.
  EXPECT_FALSE(covenant::verify_inclusion(covenant::merkle_leaf_hash(got[1].cose), index, tsize, path, root).is_ok());

  Response cp1 = conn.request("GET", "/v1/checkpoints/latest", "", auth(k.auditor));
  ASSERT_EQ(cp1.status, 200) << cp1.describe();
  json c1 = cp1.j();
  if (c1["tree_size"].get<uint64_t>() == tsize) {
    EXPECT_EQ(c1.value("root", ""), proof.value("root", ""));
  }
  EXPECT_GE(c1["tree_size"].get<uint64_t>(), tsize);
  {
    // The checkpoint note verifies with the key the server names.
    covenant::PublicKey cpk;
    ASSERT_TRUE(covenant::from_hex(c1.value("public_key_hex", ""), cpk)) << cp1.body;
    std::vector<covenant::PublicKey> ks{cpk};
    auto vc = covenant::verify_checkpoint(c1.value("note", ""), ks);
    EXPECT_TRUE(vc.is_ok()) << vc.status().to_string() << "\n" << c1.value("note", "");
    if (vc.is_ok()) {
      EXPECT_EQ(vc->tree_size, c1["tree_size"].get<uint64_t>());
    }
  }

  // More entries, then a consistency proof between the old size and the new.
  for (int i = 0; i < 3; ++i) {
    Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-x" + std::to_string(i)),
                              auth(k.caller));
    ASSERT_EQ(r.status, 200) << r.describe();
  }
  Response pr2 = conn.request("GET", "/v1/receipts/" + got[4].receipt_id + "/proof", "", auth(k.auditor));
  ASSERT_EQ(pr2.status, 200) << pr2.describe();
  Response cp2 = conn.request("GET", "/v1/checkpoints/latest", "", auth(k.auditor));
  ASSERT_EQ(cp2.status, 200) << cp2.describe();
  const uint64_t size2 = cp2.j()["tree_size"].get<uint64_t>();
  ASSERT_GE(size2, tsize);
  Response cons =
      conn.request("GET", "/v1/checkpoints/consistency?from=" + std::to_string(tsize) + "&to=" + std::to_string(size2),
                   "", auth(k.auditor));
  ASSERT_EQ(cons.status, 200) << cons.describe();
  {
    json cj = cons.j();
    covenant::Hash32 from_root, to_root;
    ASSERT_TRUE(covenant::from_hex(cj.value("from_root", ""), from_root)) << cons.body;
    ASSERT_TRUE(covenant::from_hex(cj.value("to_root", ""), to_root)) << cons.body;
    EXPECT_EQ(from_root, root) << "the old root is the one the inclusion proof named";
    EXPECT_EQ(cj.value("to_root", ""), cp2.j().value("root", "")) << "the new root is the checkpoint's";
    std::vector<covenant::Hash32> cpath;
    for (auto& h : cj["path"]) {
      covenant::Hash32 x;
      ASSERT_TRUE(covenant::from_hex(h.get<std::string>(), x));
      cpath.push_back(x);
    }
    covenant::Status cs = covenant::verify_consistency(tsize, size2, from_root, to_root, cpath);
    EXPECT_TRUE(cs.is_ok()) << cs.to_string() << "\n" << cons.body;
  }
  EXPECT_EQ(conn.request("GET", "/v1/checkpoints/consistency?from=5&to=999999", "", auth(k.auditor)).status, 400);

  // Holds: release one (posted), refund another (voided), refund the released one (409).
  {
    Response h = conn.request("GET", "/v1/holds/" + got[0].hold_id, "", auth(k.auditor));
    ASSERT_EQ(h.status, 200) << h.describe();
    EXPECT_EQ(h.j().value("state", ""), "pending") << h.body;
    EXPECT_EQ(h.j().value("receipt_id", ""), got[0].receipt_id);
    EXPECT_EQ(h.j().value("amount", ""), "500") << h.body;
  }
  Response rel = conn.request("POST", "/v1/holds/" + got[0].hold_id + "/release", "", auth(k.caller));
  ASSERT_EQ(rel.status, 200) << rel.describe() << log_of(s);
  EXPECT_EQ(rel.j().value("state", ""), "posted") << rel.body;
  Response ref = conn.request("POST", "/v1/holds/" + got[1].hold_id + "/refund", "", auth(k.caller));
  ASSERT_EQ(ref.status, 200) << ref.describe();
  EXPECT_EQ(ref.j().value("state", ""), "voided") << ref.body;
  Response again = conn.request("POST", "/v1/holds/" + got[0].hold_id + "/refund", "", auth(k.caller));
  EXPECT_EQ(again.status, 409) << again.describe();
  Response rel2 = conn.request("POST", "/v1/holds/" + got[1].hold_id + "/release", "", auth(k.caller));
  EXPECT_EQ(rel2.status, 409) << rel2.describe();
  EXPECT_EQ(conn.request("GET", "/v1/holds/" + got[0].hold_id, "", auth(k.auditor)).j().value("state", ""), "posted");
  EXPECT_EQ(conn.request("GET", "/v1/holds/" + got[1].hold_id, "", auth(k.auditor)).j().value("state", ""), "voided");

  // Replay package: decodes and is confirmed on the interpreter.
  Response rp = conn.request("GET", "/v1/receipts/" + got[3].receipt_id + "/replay", "", auth(k.auditor));
  ASSERT_EQ(rp.status, 200) << rp.describe() << log_of(s);
  auto pkg = covenant::settle::decode_replay_package(as_bytes(rp.body));
  ASSERT_TRUE(pkg.is_ok()) << pkg.status().to_string();
  EXPECT_EQ(pkg->receipt, got[3].cose);
  EXPECT_EQ(pkg->executor_key, *pub);
  auto verdict = covenant::settle::replay(*pkg, covenant::Tier::kInterp);
  ASSERT_TRUE(verdict.is_ok()) << verdict.status().to_string();
  EXPECT_TRUE(verdict->confirmed) << verdict->field << ": " << verdict->detail;

  // The executor keeps serving after all of it; then a clean drain.
  EXPECT_EQ(conn.request("GET", "/healthz").status, 200);
  conn.close();
  auto st = stop(s);
  ASSERT_TRUE(st.has_value()) << "no exit after SIGTERM" << log_of(s);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st << log_of(s);
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// 2. simulate decides, signs nothing, stores nothing.

TEST_P(ServerTest, Simulate) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);
  Conn conn(s.port);
  Response a1 = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  ASSERT_EQ(a1.status, 200) << a1.describe();
  const uint64_t idx1 = a1.j()["log_index"].get<uint64_t>();

  std::set<std::string> before;
  for (int i = 0; i < 3; ++i) {
    Response sim = conn.request("POST", "/v1/contracts/policy/simulate", seed_intent(), auth(k.caller));
    ASSERT_EQ(sim.status, 200) << sim.describe() << log_of(s);
    json j = sim.j();
    ASSERT_TRUE(j.contains("decision")) << sim.body;
    EXPECT_EQ(j["decision"].value("approved", false), true) << sim.body;
    EXPECT_EQ(j.value("signed", true), false) << sim.body;
    EXPECT_FALSE(j.contains("receipt_id") && j["receipt_id"].is_string()) << sim.body;
    EXPECT_FALSE(j.contains("receipt") && j["receipt"].is_string()) << sim.body;
  }
  // A denied intent simulates as denied.
  {
    json bad = json::parse(seed_intent());
    bad["task_type"] = "teleport";
    Response sim = conn.request("POST", "/v1/contracts/policy/simulate", bad.dump(), auth(k.caller));
    ASSERT_EQ(sim.status, 200) << sim.describe();
    EXPECT_EQ(sim.j()["decision"].value("approved", true), false) << sim.body;
  }
  // Nothing was appended: the next approval's log index follows the first one's.
  Response a2 = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  ASSERT_EQ(a2.status, 200) << a2.describe();
  EXPECT_EQ(a2.j()["log_index"].get<uint64_t>(), idx1 + 1) << "simulate appended to the journal";
  Response cp =
      conn.request("GET", "/v1/checkpoints/consistency?from=0&to=" + std::to_string(idx1 + 3), "", auth(k.auditor));
  EXPECT_EQ(cp.status, 400) << "the journal has only " << idx1 + 2 << " entries: " << cp.describe();
}

// ---------------------------------------------------------------------------
// 3. Who may do what; tenants see only their own things.

TEST_P(ServerTest, AuthMatrix) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  const std::string sys = admin_key(s);
  TenantKeys a = tenant_keys(s, "acme");
  TenantKeys b = tenant_keys(s, "beta");
  const std::string version = deploy(s, a.deployer, "policy", kPolicyC);
  // Receipts and holds to address.
  std::vector<std::string> rids, hids;
  for (int i = 0; i < 4; ++i) {
    Response r = fresh_request(s.port, "POST", "/v1/contracts/policy/approve", seed_intent(), auth(a.caller));
    ASSERT_EQ(r.status, 200) << r.describe();
    rids.push_back(r.j()["receipt_id"]);
    hids.push_back(r.j()["hold_id"]);
  }
  const std::string rid = rids[0], hid = hids[0];

  struct Route {
    std::string method, path, body;
    std::set<std::string> allowed;  // roles that get past authorization
  };
  const std::set<std::string> all = {"admin", "deployer", "caller", "auditor"};
  const std::string intent = seed_intent();
  std::vector<Route> routes = {
      {"POST", "/v1/keys", json{{"tenant", "acme"}, {"role", "auditor"}}.dump(), {"admin"}},
      {"DELETE", "/v1/keys/00000000deadbeef", "", {"admin"}},
      {"GET", "/v1/contracts", "", all},
      {"GET", "/v1/contracts/policy", "", all},
      {"PUT", "/v1/contracts/policy", "{}", {"admin", "deployer"}},
      {"POST", "/v1/contracts/policy/activate", json{{"version", version}}.dump(), {"admin", "deployer"}},
      {"POST", "/v1/contracts/policy/approve", intent, {"admin", "caller"}},
      {"POST", "/v1/contracts/policy/simulate", intent, {"admin", "caller"}},
      {"POST",
       "/v1/contracts/policy/call/policy.approve",
       json{{"args", json::array({json::parse(intent)})}}.dump(),
       {"admin", "caller"}},
      {"GET", "/v1/receipts/" + rid, "", {"admin", "caller", "auditor"}},
      {"GET", "/v1/receipts/" + rid + "/proof", "", {"admin", "caller", "auditor"}},
      {"GET", "/v1/receipts/" + rid + "/replay", "", {"admin", "caller", "auditor"}},
      {"GET", "/v1/checkpoints/latest", "", all},
      {"GET", "/v1/checkpoints/consistency?from=0&to=1", "", all},
      {"GET", "/v1/holds/" + hid, "", {"admin", "caller", "auditor"}},
      {"POST", "/v1/holds/" + hids[1] + "/release", "", {"admin", "caller"}},
      {"POST", "/v1/holds/" + hids[2] + "/refund", "", {"admin", "caller"}},
      {"GET", "/v1/executor/keys", "", all},
  };
  std::map<std::string, std::string> who = {
      {"admin", a.admin},   {"deployer", a.deployer},
      {"caller", a.caller}, {"auditor", a.auditor},
      {"none", ""},         {"bad", "cvk_0000000000000000_" + std::string(48, 'a')}};
  Conn conn(s.port);
  for (const Route& rt : routes) {
    for (auto& [role, key] : who) {
      Headers h;
      if (role == "bad")
        h = auth(key);
      else if (role != "none")
        h = auth(key);
      Response r = conn.request(rt.method, rt.path, rt.body, h);
      const std::string what = role + " " + rt.method + " " + rt.path + " -> " + r.describe();
      ASSERT_NE(r.status, 0) << what;
      if (role == "none" || role == "bad") {
        EXPECT_EQ(r.status, 401) << what;
        EXPECT_EQ(r.code(), "unauthenticated") << what;
      } else if (rt.allowed.count(role)) {
        EXPECT_NE(r.status, 401) << what;
        EXPECT_NE(r.status, 403) << what;
        EXPECT_LT(r.status, 500) << what << log_of(s);
      } else {
        EXPECT_EQ(r.status, 403) << what;
        EXPECT_EQ(r.code(), "forbidden") << what;
      }
    }
  }
  // Malformed Authorization headers.
  for (const std::string& h : {std::string("Basic abc"), std::string("Bearer"), std::string("bearer ") + a.caller,
                               std::string("Bearer ") + a.caller + "x"}) {
    Response r = conn.request("GET", "/v1/contracts", "", {{"Authorization", h}});
    EXPECT_EQ(r.status, 401) << h << " -> " << r.describe();
  }
  // The system admin is an admin too.
  EXPECT_EQ(conn.request("GET", "/v1/executor/keys", "", auth(sys)).status, 200);
  // Open routes.
  EXPECT_EQ(conn.request("GET", "/healthz").status, 200);
  EXPECT_EQ(conn.request("GET", "/readyz").status, 200);
  EXPECT_EQ(conn.request("GET", "/metrics").status, 200);

  // Tenant isolation: beta's keys see nothing of acme's.
  for (const std::string& key : {b.admin, b.caller, b.auditor, b.deployer}) {
    EXPECT_EQ(conn.request("GET", "/v1/contracts/policy", "", auth(key)).status, 404);
    Response l = conn.request("GET", "/v1/contracts", "", auth(key));
    EXPECT_EQ(l.status, 200);
    EXPECT_TRUE(l.j()["contracts"].empty()) << l.body;
  }
  EXPECT_EQ(conn.request("POST", "/v1/contracts/policy/approve", intent, auth(b.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/receipts/" + rid, "", auth(b.auditor)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/receipts/" + rid + "/proof", "", auth(b.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/receipts/" + rid + "/replay", "", auth(b.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/holds/" + hid, "", auth(b.caller)).status, 404);
  EXPECT_EQ(conn.request("POST", "/v1/holds/" + hids[3] + "/release", "", auth(b.caller)).status, 404);
  EXPECT_EQ(conn.request("POST", "/v1/holds/" + hids[3] + "/refund", "", auth(b.admin)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/holds/" + hids[3], "", auth(a.auditor)).j().value("state", ""), "pending")
      << "beta's refused attempts left acme's hold alone";
  EXPECT_EQ(
      conn.request("POST", "/v1/contracts/policy/activate", json{{"version", version}}.dump(), auth(b.deployer)).status,
      404);
  // A tenant admin may not make keys for another tenant, nor revoke them.
  EXPECT_EQ(conn.request("POST", "/v1/keys", json{{"tenant", "acme"}, {"role", "admin"}}.dump(), auth(b.admin)).status,
            403);
  EXPECT_EQ(conn.request("DELETE", "/v1/keys/" + a.ids["caller"], "", auth(b.admin)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/contracts", "", auth(a.caller)).status, 200);
  // beta deploys its own "policy": a separate namespace.
  deploy(s, b.deployer, "policy", kPolicyRust);
  Response gb = conn.request("GET", "/v1/contracts/policy", "", auth(b.caller));
  EXPECT_EQ(gb.j().value("active_version", ""), covenant::to_hex(covenant::sha256(read_bytes(kPolicyRust))));
  Response ga = conn.request("GET", "/v1/contracts/policy", "", auth(a.caller));
  EXPECT_EQ(ga.j().value("active_version", ""), version);

  // A revoked key stops working at once.
  Response del = conn.request("DELETE", "/v1/keys/" + a.ids["auditor"], "", auth(a.admin));
  EXPECT_EQ(del.status, 200) << del.describe();
  EXPECT_EQ(conn.request("GET", "/v1/contracts", "", auth(a.auditor)).status, 401);
}

// ---------------------------------------------------------------------------
// 4. Bad input is refused with the right status, and the server stays up.

TEST_P(ServerTest, BadInput) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);
  Conn conn(s.port);
  const std::string approve = "/v1/contracts/policy/approve";

  {
    Response r = conn.request("POST", approve, "{\"agent_id\": ", auth(k.caller));
    EXPECT_EQ(r.status, 400) << r.describe();
    EXPECT_EQ(r.code(), "invalid_json") << r.body;
    ASSERT_TRUE(r.j()["error"].contains("message")) << r.body;
  }
  {
    json base = json::parse(seed_intent());
    std::string dup = base.dump();
    dup.insert(dup.size() - 1, ",\"agent_id\":\"agent-8\"");
    Response r = conn.request("POST", approve, dup, auth(k.caller));
    EXPECT_EQ(r.status, 400) << r.describe();
    EXPECT_NE(r.body.find("agent_id"), std::string::npos) << "the message names the key: " << r.body;
  }
  {
    Response r = conn.request("POST", approve, "[1,2,3]", auth(k.caller));
    EXPECT_EQ(r.status, 400) << r.describe();
    Response e = conn.request("POST", approve, "", auth(k.caller));
    EXPECT_EQ(e.status, 400) << e.describe();
    json wrong = json::parse(seed_intent());
    wrong["max_units"] = json::array();
    Response w = conn.request("POST", approve, wrong.dump(), auth(k.caller));
    EXPECT_EQ(w.status, 400) << w.describe();
  }
  // PUT with wrong types.
  for (const std::string& body :
       {std::string(R"({"wasm_base64": 5})"), std::string(R"({"wasm_base64": "!!!not base64!!!"})"),
        std::string(R"({"wasm_base64": "AGFzbQEAAAA=", "grants": "all"})"),
        std::string(R"({"wasm_base64": "AGFzbQEAAAA=", "wit": 7})"), std::string(R"({"module": "AGFzbQEAAAA="})"),
        std::string(R"(["AGFzbQEAAAA="])"), std::string(R"({})")}) {
    Response r = conn.request("PUT", "/v1/contracts/other", body, auth(k.deployer));
    EXPECT_EQ(r.status, 400) << body << " -> " << r.describe();
    EXPECT_FALSE(r.code().empty()) << r.body;
  }
  {
    // Well-formed but not a contract: 422, nothing stored.
    Response r = conn.request("PUT", "/v1/contracts/other", R"({"wasm_base64": "AGFzbQEAAAA="})", auth(k.deployer));
    EXPECT_EQ(r.status, 422) << r.describe();
    EXPECT_EQ(conn.request("GET", "/v1/contracts/other", "", auth(k.deployer)).status, 404);
    Response bad_name = conn.request("PUT", "/v1/contracts/Bad%20Name", contract_body(kPolicyC), auth(k.deployer));
    EXPECT_EQ(bad_name.status, 400) << bad_name.describe();
  }
  // Unknown things.
  EXPECT_EQ(conn.request("POST", "/v1/contracts/nope/approve", seed_intent(), auth(k.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/contracts/nope", "", auth(k.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/receipts/" + std::string(64, 'a'), "", auth(k.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/receipts/xyz", "", auth(k.caller)).status, 400);
  EXPECT_EQ(conn.request("GET", "/v1/holds/" + std::string(32, 'b'), "", auth(k.caller)).status, 404);
  EXPECT_EQ(conn.request("GET", "/v1/nothing", "", auth(k.caller)).status, 404);
  EXPECT_EQ(conn.request("DELETE", "/v1/contracts", "", auth(k.caller)).status, 405);
  EXPECT_EQ(conn.request("POST", "/v1/contracts/policy/call/no-such-export", R"({"args": []})", auth(k.caller)).status,
            404);
  EXPECT_EQ(conn.request("POST", "/v1/contracts/policy/activate", R"({"version": "00"})", auth(k.deployer)).status,
            404);
  EXPECT_EQ(conn.request("GET", "/healthz").status, 200);
  conn.close();

  // A 5 MiB body: 413 (the server may close the connection).
  {
    std::string big(5u << 20, 'a');
    std::string req = build_request(s.port, "POST", approve, big, auth(k.caller), false);
    Response r = streaming_exchange(s.port, req);
    EXPECT_EQ(r.status, 413) << r.describe() << log_of(s);
  }
  // 64 KiB of headers: 431.
  {
    Headers h = auth(k.caller);
    for (int i = 0; i < 8; ++i) h.push_back({"X-Filler-" + std::to_string(i), std::string(8192, 'h')});
    std::string req = build_request(s.port, "POST", approve, seed_intent(), h, false);
    Response r = streaming_exchange(s.port, req);
    EXPECT_EQ(r.status, 431) << r.describe() << log_of(s);
  }
  // A slow client, one byte per 200 ms: the server closes the connection.
  {
    std::string err;
    int fd = connect_to(s.port, &err);
    ASSERT_GE(fd, 0) << err;
    const std::string req = build_request(s.port, "POST", approve, seed_intent(), auth(k.caller), false);
    const auto t0 = Clock::now();
    bool closed = false;
    std::string got;
    for (size_t i = 0; i < req.size() && Clock::now() - t0 < 25s && !closed; ++i) {
      if (::send(fd, &req[i], 1, MSG_NOSIGNAL) < 0) {
        closed = true;
        break;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) > 0) {
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
          closed = true;
        else
          got.append(buf, static_cast<size_t>(n));
      }
    }
    // After a timeout response (408) the close follows.
    while (!closed && Clock::now() - t0 < 25s) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) > 0) {
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
          closed = true;
        else
          got.append(buf, static_cast<size_t>(n));
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(fd);
    EXPECT_TRUE(closed) << "a client sending one byte per 200 ms was still connected after " << secs << " s";
    EXPECT_LT(secs, 20.0) << "closed only after " << secs << " s";
    if (!got.empty()) {
      EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got.substr(0, 200);
    }
  }
  // Still healthy, still approving.
  EXPECT_EQ(fresh_request(s.port, "GET", "/healthz").status, 200);
  Response ok = fresh_request(s.port, "POST", approve, seed_intent(), auth(k.caller));
  EXPECT_EQ(ok.status, 200) << ok.describe() << log_of(s);
  EXPECT_EQ(s.pid > 0 && ::kill(s.pid, 0) == 0, true);
}

// ---------------------------------------------------------------------------
// 5. Idempotency-Key.

TEST_P(ServerTest, Idempotency) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);
  Conn conn(s.port);
  const std::string body = seed_intent("agent-idem");
  Response a = conn.request("POST", "/v1/contracts/policy/approve", body, auth(k.caller, {{"Idempotency-Key", "k-1"}}));
  ASSERT_EQ(a.status, 200) << a.describe() << log_of(s);
  EXPECT_TRUE(a.header("idempotent-replayed").empty()) << "the first response is not a replay";
  Response b = conn.request("POST", "/v1/contracts/policy/approve", body, auth(k.caller, {{"Idempotency-Key", "k-1"}}));
  ASSERT_EQ(b.status, 200) << b.describe();
  EXPECT_EQ(b.header("idempotent-replayed"), "true");
  EXPECT_EQ(b.j().value("receipt_id", "x"), a.j().value("receipt_id", "y"));
  EXPECT_EQ(b.j().value("hold_id", "x"), a.j().value("hold_id", "y"));
  EXPECT_EQ(b.j().value("receipt", "x"), a.j().value("receipt", "y"));
  EXPECT_EQ(b.j()["log_index"], a.j()["log_index"]) << b.body;
  // Also on a fresh connection.
  Response b2 =
      fresh_request(s.port, "POST", "/v1/contracts/policy/approve", body, auth(k.caller, {{"Idempotency-Key", "k-1"}}));
  EXPECT_EQ(b2.j().value("receipt_id", "x"), a.j().value("receipt_id", "y"));
  // Same key, another body: 422.
  Response c = conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-other"),
                            auth(k.caller, {{"Idempotency-Key", "k-1"}}));
  EXPECT_EQ(c.status, 422) << c.describe();
  EXPECT_EQ(c.code(), "idempotency_conflict") << c.body;
  // Nothing new was appended by the replays: the next approval follows directly.
  Response d = conn.request("POST", "/v1/contracts/policy/approve", body, auth(k.caller));
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.j()["log_index"].get<uint64_t>(), a.j()["log_index"].get<uint64_t>() + 1);
  EXPECT_NE(d.j().value("receipt_id", ""), a.j().value("receipt_id", ""));
  // Keys are per tenant: another tenant may use "k-1" for itself.
  TenantKeys other = tenant_keys(s, "beta");
  deploy(s, other.deployer, "policy", kPolicyC);
  Response e =
      conn.request("POST", "/v1/contracts/policy/approve", body, auth(other.caller, {{"Idempotency-Key", "k-1"}}));
  EXPECT_EQ(e.status, 200) << e.describe();
  EXPECT_TRUE(e.header("idempotent-replayed").empty());
  EXPECT_NE(e.j().value("receipt_id", ""), a.j().value("receipt_id", ""));

  // POST /v1/keys: the same key twice is one key.
  const std::string sys = admin_key(s);
  const std::string kb = json{{"tenant", "acme"}, {"role", "auditor"}}.dump();
  Response k1 = conn.request("POST", "/v1/keys", kb, auth(sys, {{"Idempotency-Key", "mk-1"}}));
  ASSERT_EQ(k1.status, 201) << k1.describe();
  Response k2 = conn.request("POST", "/v1/keys", kb, auth(sys, {{"Idempotency-Key", "mk-1"}}));
  EXPECT_EQ(k2.status, 201) << k2.describe();
  EXPECT_EQ(k2.header("idempotent-replayed"), "true");
  EXPECT_EQ(k2.j().value("id", "x"), k1.j().value("id", "y"));
  EXPECT_EQ(k2.j().value("key", "x"), k1.j().value("key", "y"));
  Response k3 = conn.request("POST", "/v1/keys", json{{"tenant", "acme"}, {"role", "caller"}}.dump(),
                             auth(sys, {{"Idempotency-Key", "mk-1"}}));
  EXPECT_EQ(k3.status, 422) << k3.describe();
  EXPECT_EQ(k3.code(), "idempotency_conflict");
  // The key created works.
  EXPECT_EQ(conn.request("GET", "/v1/contracts", "", auth(k1.j().value("key", ""))).status, 200);
  // Bad keys.
  EXPECT_EQ(conn.request("POST", "/v1/contracts/policy/approve", body,
                         auth(k.caller, {{"Idempotency-Key", std::string(300, 'z')}}))
                .status,
            400);
}

// ---------------------------------------------------------------------------
// 6. kill -9 under load: every acknowledged receipt survives.

TEST_P(ServerTest, KillNine) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);

  std::mutex mu;
  std::vector<std::string> acked;
  std::map<int, int> statuses;  // status -> count (0 = transport error)
  std::atomic<bool> stop_flag{false};
  std::atomic<int> acks{0};
  const uint16_t port = s.port;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(port);
      for (int i = 0; i < 5000 && !stop_flag; ++i) {
        const std::string body = seed_intent("agent-k" + std::to_string(t));
        Response r = (t % 2) ? conn.request("POST", "/v1/contracts/policy/approve", body, auth(k.caller))
                             : fresh_request(port, "POST", "/v1/contracts/policy/approve", body, auth(k.caller));
        std::lock_guard<std::mutex> lock(mu);
        statuses[r.status]++;
        if (r.status == 200) {
          acked.push_back(r.j().value("receipt_id", ""));
          acks++;
        }
        if (r.status == 0) break;  // the server is gone
      }
    });
  }
  const auto until = Clock::now() + 60s;
  while (acks < 150 && Clock::now() < until) std::this_thread::sleep_for(5ms);
  const int at_kill = acks.load();
  kill9(s);
  stop_flag = true;
  for (auto& th : threads) th.join();
  ASSERT_GE(at_kill, 150) << "too few approvals before the kill" << log_of(s);
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [st, n] : statuses) EXPECT_TRUE(st == 200 || st == 0) << n << " responses with status " << st;
    std::fprintf(stderr, "[server_test] KillNine: %zu acknowledged (%d when the kill was sent), %d cut off\n",
                 acked.size(), at_kill, statuses[0]);
  }

  ASSERT_TRUE(start(s)) << "restart on the same data directory failed";
  Conn conn(s.port);
  size_t missing = 0;
  for (const std::string& id : acked) {
    Response r = conn.request("GET", "/v1/receipts/" + id, "", auth(k.auditor));
    if (r.status != 200) {
      if (++missing <= 5) ADD_FAILURE() << "acknowledged receipt " << id << " -> " << r.describe();
      continue;
    }
    EXPECT_EQ(covenant::receipt_id_hex(as_bytes(r.body)), id);
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged receipts" << log_of(s);
  // The restarted server keeps approving, on the same chain.
  Response more = conn.request("POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  EXPECT_EQ(more.status, 200) << more.describe() << log_of(s);
  conn.close();
  auto st = stop(s);
  ASSERT_TRUE(st.has_value()) << log_of(s);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << log_of(s);
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// 7. Two servers on one PostgreSQL schema: shared keys and deployments, and a
//    kv budget that loses no update.

TEST_P(ServerTest, TwoServers) {
  if (!postgres()) GTEST_SKIP() << "two servers share a ledger only on PostgreSQL";
  Server& a = new_server("data-a");
  ASSERT_TRUE(start(a));
  Server& b = new_server("data-b");
  ASSERT_TRUE(start(b));
  const std::string sys = admin_key(a);
  // A's admin key works on B (key rows are shared).
  EXPECT_EQ(fresh_request(b.port, "GET", "/v1/executor/keys", "", auth(sys)).status, 200);
  TenantKeys k = tenant_keys(a, "acme");
  // And keys made on A work on B.
  EXPECT_EQ(fresh_request(b.port, "GET", "/v1/contracts", "", auth(k.caller)).status, 200);
  deploy(a, k.deployer, "budget", kBudgetRust, read_file(kBudgetWit), kBudgetGrants);
  // B serves the deployment A made.
  {
    Response r = fresh_request(b.port, "GET", "/v1/contracts/budget", "", auth(k.caller));
    ASSERT_EQ(r.status, 200) << r.describe() << log_of(b);
  }

  const std::string agent = "agent-shared";
  struct Result1 {
    int status;
    bool approved;
    std::string receipt_id;
    uint64_t remaining;
    int server;
    std::string body;
  };
  std::mutex mu;
  std::vector<Result1> results;
  std::atomic<int> acks_a{0}, acks_b{0};
  std::vector<std::thread> threads;
  const auto t_load = Clock::now();
  for (int srv = 0; srv < 2; ++srv) {
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, srv] {
        const uint16_t port = srv == 0 ? a.port : b.port;
        std::atomic<int>& acks = srv == 0 ? acks_a : acks_b;
        Conn conn(port);
        for (int i = 0; i < 200 && acks < 30; ++i) {
          Response r = conn.request("POST", "/v1/contracts/budget/approve", budget_intent(agent, 10), auth(k.caller));
          Result1 x{r.status, false, "", 0, srv, r.body.substr(0, 400)};
          if (r.status == 200) {
            json j = r.j();
            x.approved = j["decision"].value("approved", false);
            x.receipt_id = j.value("receipt_id", "");
            x.remaining = as_u64(j["decision"]["remaining"]);
            acks++;
          }
          std::lock_guard<std::mutex> lock(mu);
          results.push_back(x);
          if (r.status == 0) break;
        }
      });
    }
  }
  for (auto& th : threads) th.join();
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
  EXPECT_GE(acks_a.load(), 30) << log_of(a);
  EXPECT_GE(acks_b.load(), 30) << log_of(b);

  // Then use up the budget, alternating servers, until it says no.
  bool denied = false;
  uint64_t final_remaining = UINT64_MAX;
  for (int i = 0; i < 300 && !denied; ++i) {
    const uint16_t port = (i % 2) ? b.port : a.port;
    Response r = fresh_request(port, "POST", "/v1/contracts/budget/approve", budget_intent(agent, 10), auth(k.caller));
    Result1 x{r.status, false, "", 0, i % 2, r.body.substr(0, 400)};
    if (r.status == 200) {
      json j = r.j();
      x.approved = j["decision"].value("approved", false);
      x.receipt_id = j.value("receipt_id", "");
      x.remaining = as_u64(j["decision"]["remaining"]);
      if (!x.approved) {
        denied = true;
        final_remaining = x.remaining;
      }
    }
    results.push_back(x);
  }
  ASSERT_TRUE(denied) << "the budget never ran out";

  size_t approved = 0;
  std::set<std::string> approved_ids;
  std::map<int, size_t> by_status;
  for (const Result1& x : results) {
    by_status[x.status]++;
    if (x.status == 200 && x.approved) {
      approved++;
      approved_ids.insert(x.receipt_id);
    }
    EXPECT_LT(x.status, 500) << "server " << x.server << ": " << x.body;
  }
  for (auto& [st, n] : by_status) {
    if (st == 200) continue;
    std::string example;
    for (const Result1& x : results)
      if (x.status == st) {
        example = x.body;
        break;
      }
    std::fprintf(stderr, "[server_test] TwoServers: %zu responses with status %d, e.g. %s\n", n, st, example.c_str());
  }
  std::fprintf(stderr,
               "[server_test] TwoServers: %zu requests, %zu approved, %d + %d acks in the concurrent phase (%.2f s)\n",
               results.size(), approved, acks_a.load(), acks_b.load(), load_s);
  EXPECT_EQ(approved, approved_ids.size()) << "a receipt id was reported twice";
  EXPECT_LE(approved, 100u);
  EXPECT_EQ(approved, 100u) << "a budget of 1000 in steps of 10 allows exactly 100 approvals";
  EXPECT_EQ(final_remaining, 1000 - 10 * std::min<uint64_t>(approved, 100)) << "lost update";
  {
    Response sp = fresh_request(b.port, "POST", "/v1/contracts/budget/call/spent", json{{"args", {agent}}}.dump(),
                                auth(k.caller));
    ASSERT_EQ(sp.status, 200) << sp.describe();
    EXPECT_EQ(as_u64(sp.j()["result"]), 10 * approved) << sp.body;
  }

  // Both executors' keys are listed, on both servers.
  std::set<std::string> kids_a, kids_b;
  std::string mine_a, mine_b;
  const json ka = fresh_request(a.port, "GET", "/v1/executor/keys", "", auth(k.auditor)).j();
  const json kb = fresh_request(b.port, "GET", "/v1/executor/keys", "", auth(k.auditor)).j();
  for (auto& e : ka["keys"]) {
    kids_a.insert(e.value("kid", ""));
    if (e.value("this_executor", false)) mine_a = e.value("kid", "");
  }
  for (auto& e : kb["keys"]) {
    kids_b.insert(e.value("kid", ""));
    if (e.value("this_executor", false)) mine_b = e.value("kid", "");
  }
  EXPECT_FALSE(mine_a.empty());
  EXPECT_FALSE(mine_b.empty());
  EXPECT_NE(mine_a, mine_b) << "two data directories, two executor keys";
  EXPECT_TRUE(kids_a.count(mine_b) && kids_b.count(mine_a)) << "each server lists the other's key";
  // Receipts signed by B are readable on A.
  for (const Result1& x : results) {
    if (x.server == 1 && !x.receipt_id.empty()) {
      EXPECT_EQ(fresh_request(a.port, "GET", "/v1/receipts/" + x.receipt_id, "", auth(k.auditor)).status, 200);
      break;
    }
  }

  auto sa = stop(a), sb = stop(b);
  EXPECT_TRUE(sa && WIFEXITED(*sa) && WEXITSTATUS(*sa) == 0) << log_of(a);
  EXPECT_TRUE(sb && WIFEXITED(*sb) && WEXITSTATUS(*sb) == 0) << log_of(b);
  expect_ledger_clean(a);
}

// 7b. A second server on a shared PostgreSQL schema gets its keys from an admin:
//     its fresh data directory gets no bootstrap admin key of its own (service.cc,
//     bootstrap(): "a second server on a shared PostgreSQL gets its keys from an admin").

TEST_P(ServerTest, SecondServerGetsNoBootstrapKey) {
  if (!postgres()) GTEST_SKIP() << "two servers share a ledger only on PostgreSQL";
  Server& a = new_server("data-a");
  ASSERT_TRUE(start(a));
  EXPECT_TRUE(std::filesystem::exists(a.data + "/admin.key"));
  Server& b = new_server("data-b");
  ASSERT_TRUE(start(b));
  EXPECT_EQ(fresh_request(b.port, "GET", "/v1/executor/keys", "", auth(admin_key(a))).status, 200);
  EXPECT_FALSE(std::filesystem::exists(b.data + "/admin.key"))
      << "the second server minted another system admin key on the shared schema:" << log_of(b);
  auto sa = stop(a), sb = stop(b);
  EXPECT_TRUE(sa && WIFEXITED(*sa) && WEXITSTATUS(*sa) == 0);
  EXPECT_TRUE(sb && WIFEXITED(*sb) && WEXITSTATUS(*sb) == 0);
}

// ---------------------------------------------------------------------------
// 8. A new version activated while approvals run: no request fails.

TEST_P(ServerTest, UpgradeUnderLoad) {
  if (postgres()) GTEST_SKIP() << "runs on SQLite only";
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  const std::string v1 = deploy(s, k.deployer, "policy", kPolicyC);

  struct Seen {
    int status;
    std::string version;
    Clock::time_point sent;
    std::string body;
  };
  std::mutex mu;
  std::vector<Seen> seen;
  std::atomic<bool> stop_flag{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(s.port);
      for (int i = 0; i < 100000 && !stop_flag; ++i) {
        const auto sent = Clock::now();
        Response r = conn.request("POST", "/v1/contracts/policy/approve", seed_intent("agent-u" + std::to_string(t)),
                                  auth(k.caller));
        std::lock_guard<std::mutex> lock(mu);
        seen.push_back({r.status, r.status == 200 ? r.j().value("version", "") : "", sent, r.describe()});
        if (r.status == 0) break;
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  Response put = fresh_request(s.port, "PUT", "/v1/contracts/policy", contract_body(kPolicyRust), auth(k.deployer));
  ASSERT_EQ(put.status, 201) << put.describe();
  const std::string v2 = put.j().value("version", "");
  EXPECT_EQ(put.j().value("active", true), false) << "a second version is staged, not active";
  EXPECT_NE(v2, v1);
  std::this_thread::sleep_for(200ms);
  Response act =
      fresh_request(s.port, "POST", "/v1/contracts/policy/activate", json{{"version", v2}}.dump(), auth(k.deployer));
  const auto activated = Clock::now();
  EXPECT_EQ(act.status, 200) << act.describe() << log_of(s);
  EXPECT_EQ(act.j().value("previous", ""), v1);
  std::this_thread::sleep_for(1s);
  stop_flag = true;
  for (auto& th : threads) th.join();

  size_t bad = 0, after = 0, after_v2 = 0, before_v1 = 0;
  for (const Seen& x : seen) {
    if (x.status != 200) {
      if (++bad <= 5) ADD_FAILURE() << x.body;
      continue;
    }
    EXPECT_TRUE(x.version == v1 || x.version == v2) << x.version;
    if (x.sent > activated) {
      after++;
      if (x.version == v2) after_v2++;
    } else if (x.version == v1) {
      before_v1++;
    }
  }
  std::fprintf(stderr, "[server_test] UpgradeUnderLoad: %zu requests, %zu sent after the activation\n", seen.size(),
               after);
  EXPECT_EQ(bad, 0u) << "of " << seen.size() << " requests" << log_of(s);
  EXPECT_GT(before_v1, 0u);
  EXPECT_GT(after, 0u);
  EXPECT_EQ(after_v2, after) << "requests sent after the activation ran the old version";

  Response g = fresh_request(s.port, "GET", "/v1/contracts/policy", "", auth(k.auditor));
  ASSERT_EQ(g.status, 200);
  json gj = g.j();
  EXPECT_EQ(gj.value("active_version", ""), v2);
  bool has_activation = false;
  for (auto& h : gj["history"])
    if (h.value("action", "") == "activate" && h.value("version", "") == v2) has_activation = true;
  EXPECT_TRUE(has_activation) << g.body;
  // Rollback works the same way.
  Response back =
      fresh_request(s.port, "POST", "/v1/contracts/policy/activate", json{{"version", v1}}.dump(), auth(k.deployer));
  EXPECT_EQ(back.status, 200) << back.describe();
  Response r = fresh_request(s.port, "POST", "/v1/contracts/policy/approve", seed_intent(), auth(k.caller));
  EXPECT_EQ(r.j().value("version", ""), v1);
  auto st = stop(s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// 9. SIGTERM with requests in flight: they finish, the process exits 0.

TEST_P(ServerTest, SigtermDrain) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);

  std::mutex mu;
  std::vector<Response> responses;
  std::vector<std::string> acked;
  std::atomic<int> acks{0};
  std::vector<std::thread> threads;
  const uint16_t port = s.port;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Conn conn(port);
      for (int i = 0; i < 100000; ++i) {
        const std::string body = seed_intent("agent-d" + std::to_string(t));
        Response r = (t % 2) ? conn.request("POST", "/v1/contracts/policy/approve", body, auth(k.caller))
                             : fresh_request(port, "POST", "/v1/contracts/policy/approve", body, auth(k.caller));
        std::lock_guard<std::mutex> lock(mu);
        if (r.status == 200) {
          acked.push_back(r.j().value("receipt_id", ""));
          acks++;
        }
        const bool gone = r.status == 0 && r.error.find("connect:") == 0;
        responses.push_back(std::move(r));
        if (gone) break;  // refused: the listener is closed
        if (responses.size() > 20000) break;
      }
    });
  }
  const auto until = Clock::now() + 30s;
  while (acks < 40 && Clock::now() < until) std::this_thread::sleep_for(5ms);
  ASSERT_GE(acks.load(), 1) << log_of(s);
  const auto t0 = Clock::now();
  s.terms_sent++;
  ::kill(s.pid, SIGTERM);
  auto st = wait_exit(s.pid, 30s);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& th : threads) th.join();
  ASSERT_TRUE(st.has_value()) << "still running 30 s after SIGTERM" << log_of(s);
  s.pid = -1;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "wait status " << *st << log_of(s);
  EXPECT_LT(secs, 15.0) << "drain took " << secs << " s" << log_of(s);
  size_t bad = 0;
  for (const Response& r : responses) {
    if (r.status == 0 || r.status == 200) continue;
    if (++bad <= 5) ADD_FAILURE() << "during drain: " << r.describe();
  }
  EXPECT_EQ(bad, 0u) << log_of(s);
  std::fprintf(stderr, "[server_test] SigtermDrain: %zu responses, %zu acknowledged, exit after %.2f s\n",
               responses.size(), acked.size(), secs);
  const std::string log = read_file(s.log);
  EXPECT_NE(log.find("\"event\":\"draining\""), std::string::npos) << log_of(s);
  EXPECT_NE(log.find("\"event\":\"stopped\""), std::string::npos) << log_of(s);

  // Everything acknowledged was committed.
  expect_ledger_clean(s);
  ASSERT_TRUE(start(s));
  Conn conn(s.port);
  size_t missing = 0;
  for (const std::string& id : acked)
    if (conn.request("GET", "/v1/receipts/" + id, "", auth(k.auditor)).status != 200) missing++;
  EXPECT_EQ(missing, 0u) << "of " << acked.size();
}

// ---------------------------------------------------------------------------
// Signed intents (docs/api.md): agent keys per tenant, verification before the
// contract runs, one use per nonce, rotation and revocation, the receipt naming
// the signer.

struct AgentSigner {
  covenant::SigningKey key = covenant::SigningKey::generate();
  std::string kid;
  Headers sign(const std::string& contract, const json& intent, const std::string& nonce, uint64_t not_before,
               uint64_t expires) const {
    auto canon = covenant::settle::jcs_canonicalize(json{{"contract", contract}, {"intent", intent}, {"nonce", nonce},
                                                         {"not_before_ms", not_before}, {"expires_at_ms", expires}});
    EXPECT_TRUE(canon.is_ok());
    uint8_t sig[covenant::kSignatureBytes];
    key.sign(std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size()), sig);
    return {{"Covenant-Key-Id", kid},
            {"Covenant-Nonce", nonce},
            {"Covenant-Not-Before-Ms", std::to_string(not_before)},
            {"Covenant-Expires-At-Ms", std::to_string(expires)},
            {"Covenant-Signature", covenant::base64_encode(std::span<const uint8_t>(sig, sizeof sig))}};
  }
};

TEST_P(ServerTest, SignedIntents) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  json body = json::parse(contract_body(kPolicyC));
  body["require_signed_intents"] = true;
  Response d = fresh_request(s.port, "PUT", "/v1/contracts/policy", body.dump(), auth(k.deployer));
  ASSERT_EQ(d.status, 201) << d.describe() << log_of(s);

  AgentSigner k1{.kid = "k1"}, k2{.kid = "k2"}, stranger{.kid = "k9"};
  auto put_key = [&](const AgentSigner& a, const std::string& by) {
    return fresh_request(s.port, "PUT", "/v1/agents/agent-7/keys/" + a.kid,
                         json{{"public_key", covenant::to_hex(a.key.public_key())}}.dump(), auth(by));
  };
  EXPECT_EQ(put_key(k1, k.caller).status, 403) << "only an admin registers agent keys";
  ASSERT_EQ(put_key(k1, k.admin).status, 201);
  EXPECT_EQ(put_key(k1, k.admin).status, 200) << "the same key again is a no-op";
  EXPECT_EQ(put_key(AgentSigner{.kid = "k1"}, k.admin).status, 409) << "another key under a used kid";

  const uint64_t now = now_unix_ms();
  const json intent = json::parse(seed_intent("agent-7", 300));
  auto approve = [&](const Headers& sig, const json& in = json()) {
    return fresh_request(s.port, "POST", "/v1/contracts/policy/approve", (in.is_null() ? intent : in).dump(),
                         auth(k.caller, sig));
  };
  auto code_of = [](const Response& r) { return r.j()["error"].value("code", ""); };

  Response unsigned_r = approve({});
  EXPECT_EQ(unsigned_r.status, 401) << unsigned_r.body;
  EXPECT_EQ(code_of(unsigned_r), "intent_signature_required");
  Response via_call = fresh_request(s.port, "POST", "/v1/contracts/policy/call/approve",
                                    json{{"args", json::array({intent})}}.dump(), auth(k.caller));
  EXPECT_EQ(via_call.status, 401) << "the approve export is not reachable around the check: " << via_call.body;

  // A good signature: approved, and the receipt names the key and the nonce.
  Response ok = approve(k1.sign("policy", intent, "nonce-0001", now - 1000, now + 60'000));
  ASSERT_EQ(ok.status, 200) << ok.describe() << log_of(s);
  std::vector<uint8_t> cose;
  ASSERT_TRUE(covenant::base64_decode(ok.j().value("receipt", ""), &cose));
  auto receipt = covenant::decode_receipt(cose);
  ASSERT_TRUE(receipt.is_ok());
  ASSERT_TRUE(receipt->intent_signer.has_value());
  EXPECT_EQ(receipt->intent_signer->kid, "k1");
  EXPECT_EQ(receipt->intent_signer->nonce, "nonce-0001");

  struct Refusal {
    const char* what;
    Response r;
    int status;
    const char* code;
  };
  json tampered = intent;
  tampered["max_units"] = "30000";
  std::vector<Refusal> refusals = {
      {"replayed nonce", approve(k1.sign("policy", intent, "nonce-0001", now - 1000, now + 60'000)), 409, "intent_nonce_replayed"},
      {"signed for another contract", approve(k1.sign("other", intent, "nonce-0002", now - 1000, now + 60'000)), 403, "intent_signature_invalid"},
      {"intent changed after signing", approve(k1.sign("policy", intent, "nonce-0003", now - 1000, now + 60'000), tampered), 403, "intent_signature_invalid"},
      {"expired", approve(k1.sign("policy", intent, "nonce-0004", now - 120'000, now - 60'000)), 422, "intent_expired"},
      {"not yet valid", approve(k1.sign("policy", intent, "nonce-0005", now + 60'000, now + 120'000)), 422, "intent_not_yet_valid"},
      {"window over 24 h", approve(k1.sign("policy", intent, "nonce-0006", now - 1000, now + 25 * 3600'000ull)), 422, "intent_window_invalid"},
      {"unknown key", approve(stranger.sign("policy", intent, "nonce-0007", now - 1000, now + 60'000)), 403, "intent_key_unknown"},
      {"short nonce", approve(k1.sign("policy", intent, "n1", now - 1000, now + 60'000)), 400, "intent_signature_incomplete"},
  };
  Headers partial = k1.sign("policy", intent, "nonce-0008", now - 1000, now + 60'000);
  partial.pop_back();
  refusals.push_back({"a header missing", approve(partial), 400, "intent_signature_incomplete"});
  for (const Refusal& f : refusals) {
    EXPECT_EQ(f.r.status, f.status) << f.what << ": " << f.r.body;
    EXPECT_EQ(code_of(f.r), f.code) << f.what << ": " << f.r.body;
  }

  // Rotation: a second key works; revoking the first refuses it from then on.
  ASSERT_EQ(put_key(k2, k.admin).status, 201);
  EXPECT_EQ(approve(k2.sign("policy", intent, "nonce-0010", now - 1000, now + 60'000)).status, 200);
  Response revoked = fresh_request(s.port, "DELETE", "/v1/agents/agent-7/keys/k1", "", auth(k.admin));
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(revoked.j().value("status", ""), "revoked");
  Response after = approve(k1.sign("policy", intent, "nonce-0011", now - 1000, now + 60'000));
  EXPECT_EQ(after.status, 403) << after.body;
  EXPECT_EQ(code_of(after), "intent_key_revoked");
  Response listed = fresh_request(s.port, "GET", "/v1/agents/agent-7/keys", "", auth(k.auditor));
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(listed.j()["keys"].size(), 2u) << listed.body;

  // An Idempotency-Key retry of a signed approval answers from the record, not as a replay.
  const Headers sig12 = k2.sign("policy", intent, "nonce-0012", now - 1000, now + 60'000);
  Headers with_idem = sig12;
  with_idem.push_back({"Idempotency-Key", "signed-1"});
  Response first = approve(with_idem), again = approve(with_idem);
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.headers["idempotent-replayed"], "true");
  EXPECT_EQ(first.j().value("receipt_id", "a"), again.j().value("receipt_id", "b"));

  // Eight concurrent uses of one fresh nonce: exactly one approval.
  const Headers race = k2.sign("policy", intent, "nonce-race", now - 1000, now + 60'000);
  std::atomic<int> approved{0}, replayed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      Response r = fresh_request(s.port, "POST", "/v1/contracts/policy/approve", intent.dump(), auth(k.caller, race));
      if (r.status == 200) approved++;
      else if (r.status == 409 && r.j()["error"].value("code", "") == "intent_nonce_replayed") replayed++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(approved.load(), 1);
  EXPECT_EQ(replayed.load(), 7);

  // What verification costs: 200 sequential approvals signed and unsigned (an
  // unsigned-intents contract), printed, not asserted.
  deploy(s, k.deployer, "open", kPolicyC);
  Conn conn(s.port);
  auto timed = [&](bool sign) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) {
      const uint64_t t = now_unix_ms();
      Headers h = sign ? k2.sign("policy", intent, "bench-nonce-" + std::to_string(i), t - 1000, t + 60'000) : Headers{};
      h.push_back({"Authorization", "Bearer " + k.caller});
      Response r = conn.request("POST", sign ? "/v1/contracts/policy/approve" : "/v1/contracts/open/approve", intent.dump(), h);
      EXPECT_EQ(r.status, 200) << r.body;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const double plain = timed(false), signed_s = timed(true);
  std::printf("[ signed   ] %s: 200 sequential approvals: unsigned %.1f/s, signed %.1f/s (%.2fx time; client signing included)\n",
              GetParam().c_str(), 200 / plain, 200 / signed_s, signed_s / plain);
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// Budgets (docs/api.md): a funded agent's holds, from every contract (and on
// PostgreSQL every server) of the tenant, draw on one balance that never goes
// below zero; exactly the affordable number of approvals succeed.

TEST_P(ServerTest, BudgetsHoldAcrossContractsAndServers) {
  Server& a = new_server("data-a");
  ASSERT_TRUE(start(a));
  Server* b = &a;
  if (postgres()) {
    b = &new_server("data-b");
    ASSERT_TRUE(start(*b));
  }
  TenantKeys k = tenant_keys(a, "acme");
  deploy(a, k.deployer, "policy-c", kPolicyC);
  deploy(a, k.deployer, "policy-rust", kPolicyRust);

  auto fund = [&](const std::string& agent, const json& amount, const std::string& key) {
    return fresh_request(a.port, "POST", "/v1/agents/" + agent + "/fund", json{{"amount", amount}}.dump(), auth(key));
  };
  EXPECT_EQ(fund("agent-7", "1000", k.caller).status, 403) << "only an admin funds agents";
  EXPECT_EQ(fund("agent-7", "0", k.admin).status, 400);
  EXPECT_EQ(fund("agent-7", "99999999999999999999", k.admin).status, 400) << "beyond u64";
  Response unfunded = fresh_request(a.port, "GET", "/v1/agents/agent-7/balance", "", auth(k.auditor));
  ASSERT_EQ(unfunded.status, 200) << unfunded.body;
  EXPECT_EQ(unfunded.j().value("funded", true), false);
  Response funded = fund("agent-7", "600", k.admin);
  ASSERT_EQ(funded.status, 201) << funded.describe() << log_of(a);
  EXPECT_EQ(funded.j().value("available", ""), "600");
  ASSERT_EQ(fund("agent-7", 400, k.admin).status, 201);  // top-ups add up

  // 8 threads, two contracts, (PostgreSQL) two servers: 100 approvals of 25
  // against 1000 -> exactly 40 holds, the rest 402 insufficient_funds.
  std::mutex mu;
  std::vector<std::string> holds;
  std::map<int, int> statuses;
  std::vector<std::thread> threads;
  std::atomic<int> next{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const uint16_t port = (t % 2 == 0 ? a : *b).port;
      const std::string contract = t % 4 < 2 ? "policy-c" : "policy-rust";
      Conn conn(port);
      while (next.fetch_add(1) < 100) {
        Response r = conn.request("POST", "/v1/contracts/" + contract + "/approve", seed_intent("agent-7", 25), auth(k.caller));
        std::lock_guard<std::mutex> lock(mu);
        statuses[r.status]++;
        if (r.status == 200) holds.push_back(r.j().value("hold_id", ""));
        else if (r.status != 402) ADD_FAILURE() << r.describe();
        else EXPECT_EQ(r.j()["error"].value("code", ""), "insufficient_funds") << r.body;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(statuses[200], 40) << "exactly the affordable number";
  EXPECT_EQ(statuses[402], 60);
  std::set<std::string> distinct(holds.begin(), holds.end());
  EXPECT_EQ(distinct.size(), holds.size()) << "no duplicate holds";
  Response bal = fresh_request(b->port, "GET", "/v1/agents/agent-7/balance", "", auth(k.caller));
  ASSERT_EQ(bal.status, 200) << bal.body;
  EXPECT_EQ(bal.j().value("debits_pending", ""), "1000") << bal.body;
  EXPECT_EQ(bal.j().value("available", ""), "0") << bal.body;

  // Releasing 10 of one hold returns its other 15 to the budget.
  ASSERT_FALSE(holds.empty());
  Response rel = fresh_request(a.port, "POST", "/v1/holds/" + holds[0] + "/release", json{{"amount", "10"}}.dump(), auth(k.caller));
  ASSERT_EQ(rel.status, 200) << rel.describe();
  bal = fresh_request(a.port, "GET", "/v1/agents/agent-7/balance", "", auth(k.caller));
  EXPECT_EQ(bal.j().value("available", ""), "15") << bal.body;
  EXPECT_EQ(fresh_request(a.port, "POST", "/v1/contracts/policy-c/approve", seed_intent("agent-7", 25), auth(k.caller)).status, 402);
  EXPECT_EQ(fresh_request(a.port, "POST", "/v1/contracts/policy-c/approve", seed_intent("agent-7", 15), auth(k.caller)).status, 200);
  // An agent never funded keeps the seed mapping's unbounded account.
  EXPECT_EQ(fresh_request(a.port, "POST", "/v1/contracts/policy-c/approve", seed_intent("agent-9", 25), auth(k.caller)).status, 200);
  // The CLI funds and reads the same budget, beside the running server.
  std::vector<std::string> fund_args = {"agent", "fund", "agent-7", "--tenant", "acme", "--amount", "50", "--json"};
  for (const std::string& f : ledger_flags(a.data)) fund_args.push_back(f);
  RunResult cli = run_cli(fund_args, dir_ + "/agent.stderr");
  ASSERT_EQ(cli.code, 0) << cli.out << cli.err;
  EXPECT_EQ(json::parse(cli.out).value("available", ""), "50") << cli.out;
  EXPECT_EQ(fresh_request(a.port, "POST", "/v1/contracts/policy-rust/approve", seed_intent("agent-7", 25), auth(k.caller)).status, 200);
  expect_ledger_clean(a);
}

// ---------------------------------------------------------------------------
// Governed activation (docs/api.md): the interface diff, owners and a
// threshold of their signatures over (tenant, name, current, new, diff hash),
// and freezing.

struct Owner {
  covenant::SigningKey key = covenant::SigningKey::generate();
  std::string pub() const { return covenant::to_hex(key.public_key()); }
  json sign(const json& what) const {
    auto canon = covenant::settle::jcs_canonicalize(what);
    EXPECT_TRUE(canon.is_ok());
    uint8_t sig[covenant::kSignatureBytes];
    key.sign(std::span(reinterpret_cast<const uint8_t*>(canon->data()), canon->size()), sig);
    return {{"public_key", pub()}, {"signature", covenant::base64_encode(std::span<const uint8_t>(sig, sizeof sig))}};
  }
};

TEST_P(ServerTest, GovernedActivation) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  const std::string v1 = deploy(s, k.deployer, "gov", kPolicyC);
  const std::string v2 = deploy(s, k.deployer, "gov", kBudgetRust, read_file(kBudgetWit), kBudgetGrants, false);
  const std::string v3 = deploy(s, k.deployer, "gov", kPolicyRust, "", json(), false);

  EXPECT_EQ(fresh_request(s.port, "GET", "/v1/contracts/gov/diff?to=" + v2, "", auth(k.caller)).status, 403);
  Response dr = fresh_request(s.port, "GET", "/v1/contracts/gov/diff?from=" + v1 + "&to=" + v2, "", auth(k.deployer));
  ASSERT_EQ(dr.status, 200) << dr.describe() << log_of(s);
  json diff = dr.j();
  EXPECT_EQ(diff["diff"].value("compatible", true), false) << dr.body;
  EXPECT_FALSE(diff["diff"]["exports"]["removed"].empty()) << dr.body;
  EXPECT_TRUE(is_hex(diff.value("diff_hash", ""), 64));
  Response compat = fresh_request(s.port, "GET", "/v1/contracts/gov/diff?to=" + v3, "", auth(k.auditor));
  ASSERT_EQ(compat.status, 200) << compat.body;
  EXPECT_EQ(compat.j()["diff"].value("compatible", false), true) << "same seed world: " << compat.body;

  Owner o1, o2, o3, outsider;
  auto put_owners = [&](const json& body) {
    return fresh_request(s.port, "PUT", "/v1/contracts/gov/owners", body.dump(), auth(k.admin));
  };
  const json owners = json::array({o1.pub(), o2.pub(), o3.pub()});
  EXPECT_EQ(put_owners({{"owners", owners}, {"threshold", 4}}).status, 400) << "threshold above the owners";
  ASSERT_EQ(put_owners({{"owners", owners}, {"threshold", 2}}).status, 200);

  const std::string hash = diff.value("diff_hash", "");
  const json what = {{"action", "activate"}, {"tenant", "acme"}, {"name", "gov"}, {"current", v1}, {"new", v2},
                     {"interface_diff", hash}};
  auto activate = [&](const std::string& ver, const json& sigs) {
    return fresh_request(s.port, "POST", "/v1/contracts/gov/activate", json{{"version", ver}, {"signatures", sigs}}.dump(),
                         auth(k.deployer));
  };
  auto code_of = [](const Response& r) { return r.j()["error"].value("code", ""); };
  json forged = o2.sign(what);  // o2's key, someone else's signature
  forged["signature"] = outsider.sign(what)["signature"];
  json wrong_diff = what;
  wrong_diff["interface_diff"] = std::string(64, '0');
  struct Case {
    const char* what;
    json sigs;
    int status;
    const char* code;
  } cases[] = {
      {"no signatures", json::array(), 403, "owner_signatures_required"},
      {"one of two", json::array({o1.sign(what)}), 403, "owner_signatures_required"},
      {"a forged signature", json::array({o1.sign(what), forged}), 403, "owner_signature_invalid"},
      {"an outsider", json::array({o1.sign(what), outsider.sign(what)}), 403, "not_an_owner"},
      {"one owner twice", json::array({o1.sign(what), o1.sign(what)}), 400, "duplicate_owner_signature"},
      {"signed over another diff", json::array({o1.sign(wrong_diff), o2.sign(wrong_diff)}), 403, "owner_signature_invalid"},
  };
  for (const Case& c : cases) {
    Response r = activate(v2, c.sigs);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body;
    EXPECT_EQ(code_of(r), c.code) << c.what << ": " << r.body;
  }
  Response ok = activate(v2, json::array({o3.sign(what), o1.sign(what)}));
  ASSERT_EQ(ok.status, 200) << ok.describe();
  Response got = fresh_request(s.port, "GET", "/v1/contracts/gov", "", auth(k.auditor));
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.j().value("active_version", ""), v2);
  EXPECT_EQ(got.j()["history"].back()["signatures"].size(), 2u) << got.body;
  EXPECT_EQ(got.j()["history"].back().value("interface_diff", ""), hash);

  // Changing the owners takes the current owners' signatures.
  const json new_owners = json::array({o1.pub()});
  EXPECT_EQ(put_owners({{"owners", new_owners}, {"threshold", 1}}).status, 403);
  const json set_what = {{"action", "set-owners"}, {"tenant", "acme"}, {"name", "gov"}, {"owners", new_owners}, {"threshold", 1}};
  ASSERT_EQ(put_owners({{"owners", new_owners}, {"threshold", 1}, {"signatures", json::array({o1.sign(set_what), o2.sign(set_what)})}}).status, 200);

  // Frozen: no further activations, whatever is signed.
  const json freeze_what = {{"action", "freeze"}, {"tenant", "acme"}, {"name", "gov"}};
  EXPECT_EQ(fresh_request(s.port, "POST", "/v1/contracts/gov/freeze", "{}", auth(k.deployer)).status, 403);
  Response fr = fresh_request(s.port, "POST", "/v1/contracts/gov/freeze", json{{"signatures", json::array({o1.sign(freeze_what)})}}.dump(), auth(k.deployer));
  ASSERT_EQ(fr.status, 200) << fr.body;
  Response back = activate(v1, json::array());
  EXPECT_EQ(back.status, 409) << back.body;
  EXPECT_EQ(code_of(back), "contract_frozen");
  // Calls go on against the active version.
  EXPECT_EQ(fresh_request(s.port, "POST", "/v1/contracts/gov/approve", budget_intent("agent-1", 10), auth(k.caller)).status, 200);
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// Mandates (docs/api.md): a user-signed open mandate bound to one agent key;
// every constraint checked, the cumulative counter moved atomically with the
// hold, revocation and status.

TEST_P(ServerTest, Mandates) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  Server* s2 = &s;  // on PostgreSQL the race below runs across two executors
  if (postgres()) {
    s2 = &new_server("data-b");
    ASSERT_TRUE(start(*s2));
  }
  TenantKeys k = tenant_keys(s, "acme");
  deploy(s, k.deployer, "policy", kPolicyC);
  AgentSigner agent{.kid = "k1"}, other{.kid = "k2"};
  Owner user;  // the user's key: signs the mandate
  for (auto [path, pub] : {std::pair{"/v1/agents/agent-7/keys/k1", agent.key.public_key()},
                           std::pair{"/v1/agents/agent-7/keys/k2", other.key.public_key()}})
    ASSERT_EQ(fresh_request(s.port, "PUT", path, json{{"public_key", covenant::to_hex(pub)}}.dump(), auth(k.admin)).status, 201);
  ASSERT_EQ(fresh_request(s.port, "PUT", "/v1/users/alice/keys/u1", json{{"public_key", user.pub()}}.dump(), auth(k.admin)).status, 201);

  const uint64_t now = now_unix_ms();
  auto mandate = [&](const std::string& id, uint64_t budget, uint64_t nb, uint64_t exp) {
    return json{{"id", id}, {"user", "alice"}, {"user_kid", "u1"}, {"agent", "agent-7"}, {"agent_kid", "k1"},
                {"max_amount_per_intent", "30"}, {"budget", std::to_string(budget)}, {"not_before_ms", nb},
                {"expires_at_ms", exp}, {"allowed_task_types", json::array({"inference"})}};
  };
  auto register_m = [&](const json& md, const Owner& by) {
    return fresh_request(s.port, "POST", "/v1/mandates", json{{"mandate", md}, {"signature", by.sign(md)["signature"]}}.dump(),
                         auth(k.caller));
  };
  auto code_of = [](const Response& r) { return r.j()["error"].value("code", ""); };
  Response forged = register_m(mandate("m0", 100, now - 1000, now + 3600'000), Owner{});
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_EQ(code_of(forged), "mandate_signature_invalid");
  Response reg = register_m(mandate("m1", 100, now - 1000, now + 3600'000), user);
  ASSERT_EQ(reg.status, 201) << reg.describe() << log_of(s);
  EXPECT_EQ(reg.j().value("status", ""), "active");
  EXPECT_EQ(reg.j().value("remaining", ""), "100");
  EXPECT_EQ(register_m(mandate("m1", 100, now - 1000, now + 3600'000), user).status, 409) << "ids are unique";

  int nonce = 0;
  auto approve = [&](const std::string& mid, const json& intent, const AgentSigner& by) {
    const uint64_t t = now_unix_ms();
    Headers h = by.sign("policy", intent, "mandate-nonce-" + std::to_string(nonce++), t - 1000, t + 60'000);
    h.push_back({"Covenant-Mandate", mid});
    return fresh_request(s.port, "POST", "/v1/contracts/policy/approve", intent.dump(), auth(k.caller, h));
  };
  const json i25 = json::parse(seed_intent("agent-7", 25));
  json teleport = i25;
  teleport["task_type"] = "teleport";
  struct Refusal {
    const char* what;
    Response r;
    int status;
    const char* code;
  };
  std::vector<Refusal> refusals = {
      {"unsigned", fresh_request(s.port, "POST", "/v1/contracts/policy/approve", i25.dump(), auth(k.caller, {{"Covenant-Mandate", "m1"}})), 401, "mandate_requires_signed_intent"},
      {"unknown mandate", approve("m-none", i25, agent), 404, "mandate_unknown"},
      {"another agent key", approve("m1", i25, other), 403, "mandate_agent_mismatch"},
      {"over the per-intent ceiling", approve("m1", json::parse(seed_intent("agent-7", 40)), agent), 403, "mandate_amount_exceeded"},
      {"task type not allowed", approve("m1", teleport, agent), 403, "mandate_task_not_allowed"},
  };
  for (const Refusal& f : refusals) {
    EXPECT_EQ(f.r.status, f.status) << f.what << ": " << f.r.body;
    EXPECT_EQ(code_of(f.r), f.code) << f.what << ": " << f.r.body;
  }

  // 10 concurrent approvals of 25 against a budget of 100 (PostgreSQL: on two servers): exactly 4.
  std::atomic<int> ok{0}, exhausted{0};
  std::vector<std::thread> threads;
  std::vector<Headers> pre;
  for (int i = 0; i < 10; ++i) {
    const uint64_t t = now_unix_ms();
    Headers h = agent.sign("policy", i25, "race-nonce-" + std::to_string(i), t - 1000, t + 60'000);
    h.push_back({"Covenant-Mandate", "m1"});
    pre.push_back(h);
  }
  for (int i = 0; i < 10; ++i)
    threads.emplace_back([&, i] {
      Response r = fresh_request((i % 2 ? *s2 : s).port, "POST", "/v1/contracts/policy/approve", i25.dump(),
                                 auth(k.caller, pre[i]));
      if (r.status == 200) ok++;
      else if (r.status == 402 && r.j()["error"].value("code", "") == "mandate_budget_exhausted") exhausted++;
      else ADD_FAILURE() << r.describe();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(exhausted.load(), 6);
  Response st = fresh_request(s.port, "GET", "/v1/mandates/m1", "", auth(k.auditor));
  ASSERT_EQ(st.status, 200) << st.body;
  EXPECT_EQ(st.j().value("status", ""), "exhausted") << st.body;
  EXPECT_EQ(st.j().value("used", ""), "100");

  // Revocation and expiry.
  ASSERT_EQ(register_m(mandate("m2", 100, now - 1000, now + 3600'000), user).status, 201);
  EXPECT_EQ(approve("m2", i25, agent).status, 200);
  Response rv = fresh_request(s.port, "POST", "/v1/mandates/m2/revoke", "", auth(k.admin));
  ASSERT_EQ(rv.status, 200) << rv.body;
  EXPECT_EQ(rv.j().value("status", ""), "revoked");
  Response after = approve("m2", i25, agent);
  EXPECT_EQ(after.status, 403) << after.body;
  EXPECT_EQ(code_of(after), "mandate_revoked");
  ASSERT_EQ(register_m(mandate("m3", 100, now - 7200'000, now - 3600'000), user).status, 201);
  EXPECT_EQ(fresh_request(s.port, "GET", "/v1/mandates/m3", "", auth(k.caller)).j().value("status", ""), "expired");
  Response expired = approve("m3", i25, agent);
  EXPECT_EQ(expired.status, 422) << expired.body;
  EXPECT_EQ(code_of(expired), "mandate_expired");
  expect_ledger_clean(s);
}

// ---------------------------------------------------------------------------
// Masking (docs/api.md): stored copies and replay packages carry the masked
// intent and the list; the receipt still binds the original; a replay confirms
// what it can and names what it could not re-check.

TEST_P(ServerTest, Masking) {
  Server& s = new_server("data");
  ASSERT_TRUE(start(s));
  TenantKeys k = tenant_keys(s, "acme");
  auto deploy_masked = [&](const std::string& name, const std::string& wasm, const json& mask) {
    json body = json::parse(contract_body(wasm));
    body["mask"] = mask;
    return fresh_request(s.port, "PUT", "/v1/contracts/" + name, body.dump(), auth(k.deployer));
  };
  EXPECT_EQ(deploy_masked("bad", kPolicyC, json::array({"/card"})).status, 400) << "paths start with /intent/ or /decision/";
  // One contract replaces the agent id with another of the same length (the policy's decision and fuel do not
  // depend on which agent it is); the other erases max_units, which its decision needs.
  ASSERT_EQ(deploy_masked("replaced", kPolicyC,
                          json::array({json{{"path", "/intent/agent_id"}, {"replace", "agent-0"}}})).status, 201);
  ASSERT_EQ(deploy_masked("erased", kPolicyRust, json::array({"/intent/max_units", "/decision/reason"})).status, 201);

  auto replay_of = [&](const std::string& receipt_id) {
    Response r = fresh_request(s.port, "GET", "/v1/receipts/" + receipt_id + "/replay", "", auth(k.auditor));
    EXPECT_EQ(r.status, 200) << r.body;
    auto pkg = covenant::settle::decode_replay_package(std::span(reinterpret_cast<const uint8_t*>(r.body.data()), r.body.size()));
    EXPECT_TRUE(pkg.is_ok()) << pkg.status().to_string();
    return pkg.is_ok() ? *pkg : covenant::settle::ReplayPackage{};
  };
  const std::string intent = seed_intent("agent-7", 300);
  Response a = fresh_request(s.port, "POST", "/v1/contracts/replaced/approve", intent, auth(k.caller));
  ASSERT_EQ(a.status, 200) << a.body;
  covenant::settle::ReplayPackage pa = replay_of(a.j().value("receipt_id", ""));
  EXPECT_EQ(pa.masked, std::vector<std::string>{"/intent/agent_id"});
  EXPECT_EQ(json::parse(pa.call.intent).value("agent_id", ""), "agent-0") << pa.call.intent;
  EXPECT_EQ(pa.call.intent.find("agent-7"), std::string::npos) << "the stored copy holds no original value";
  auto va = covenant::settle::replay(pa, covenant::Tier::kInterp);
  ASSERT_TRUE(va.is_ok()) << va.status().to_string();
  EXPECT_TRUE(va->confirmed) << va->field << ": " << va->detail;
  EXPECT_EQ(va->unchecked, std::vector<std::string>{"intent_hash"}) << va->detail;
  // The receipt still binds the original intent.
  auto ra = covenant::decode_receipt(pa.receipt);
  ASSERT_TRUE(ra.is_ok());
  EXPECT_EQ(ra->intent_hash, covenant::sha256(std::span(reinterpret_cast<const uint8_t*>(intent.data()), intent.size())));
  // A tampered masked package is still refuted where it can be checked.
  covenant::settle::ReplayPackage bad = pa;
  bad.call.module.push_back(0);
  auto vb = covenant::settle::replay(bad, covenant::Tier::kInterp);
  ASSERT_TRUE(vb.is_ok());
  EXPECT_FALSE(vb->confirmed);
  EXPECT_EQ(vb->field, "contract_hash");

  // Erasing a field the contract needs: the decision cannot be re-checked, and says so.
  Response b = fresh_request(s.port, "POST", "/v1/contracts/erased/approve", intent, auth(k.caller, {{"Idempotency-Key", "mask-1"}}));
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_TRUE(b.j()["decision"].contains("reason")) << "the caller gets the whole decision: " << b.body;
  Response b2 = fresh_request(s.port, "POST", "/v1/contracts/erased/approve", intent, auth(k.caller, {{"Idempotency-Key", "mask-1"}}));
  ASSERT_EQ(b2.status, 200) << b2.body;
  EXPECT_FALSE(b2.j()["decision"].contains("reason")) << "the stored copy is masked: " << b2.body;
  covenant::settle::ReplayPackage pb = replay_of(b.j().value("receipt_id", ""));
  EXPECT_EQ(pb.masked, std::vector<std::string>{"/intent/max_units"});
  auto vb2 = covenant::settle::replay(pb, covenant::Tier::kInterp);
  ASSERT_TRUE(vb2.is_ok()) << vb2.status().to_string();
  EXPECT_TRUE(vb2->confirmed) << vb2->field << ": " << vb2->detail;
  EXPECT_NE(std::find(vb2->unchecked.begin(), vb2->unchecked.end(), "decision"), vb2->unchecked.end()) << vb2->detail;
  EXPECT_NE(vb2->detail.find("/intent/max_units"), std::string::npos) << vb2->detail;
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerTest, ::testing::Values(std::string("sqlite"), std::string("postgres")),
                         backend_name);

}  // namespace
