// Cross-checks against independent npm implementations (tools/):
//  - receipts verified by cbor-x + @noble/ed25519 (tools/cose_verify.mjs), and
//    every single-byte change rejected on both sides, as are signed payloads
//    that break the payload rules (key 7 equal to key 6, a required key missing);
//  - Merkle roots and proofs compared with @transmute/rfc9162 (tools/merkle_check.mjs).
// Needs tools/node_modules: run scripts/setup.sh. The test fails (not skips)
// when it is missing, so CI cannot pass without the cross-check.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "covenant/merkle.h"
#include "covenant/receipt.h"
#include "evidence/cbor.h"
#include "evidence/test_util.h"

namespace covenant {
namespace {

const std::string kTools = COVENANT_TOOLS_DIR;

// Runs `node script input`; returns exit code and stdout.
int run_node(const std::string& script, const std::string& input, std::string* out) {
  const std::string stdout_path = input + ".out";
  const std::string cmd = "cd '" + kTools + "' && node '" + script + "' '" + input + "' > '" + stdout_path + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream f(stdout_path);
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class XCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kTools + "/node_modules/@noble/ed25519") &&
                std::filesystem::exists(kTools + "/node_modules/cbor-x") &&
                std::filesystem::exists(kTools + "/node_modules/@transmute/rfc9162"))
        << "tools/node_modules is missing: run scripts/setup.sh (npm ci in tools/)";
    ASSERT_EQ(std::system("node --version > /dev/null 2>&1"), 0) << "node is not on PATH: run scripts/setup.sh";
  }
  testing::TempDir tmp_;
};

TEST_F(XCheck, NodeVerifiesReceiptsAndRejectsEveryByteFlip) {
  std::vector<SigningKey> keys;
  for (uint8_t s = 1; s <= 3; ++s) {
    std::array<uint8_t, 32> seed;
    seed.fill(s);
    keys.push_back(SigningKey::from_seed(seed));
  }
  std::ostringstream lines;
  struct Expect {
    std::string entry;
    uint64_t fuel, time;
    Hash32 after;
    bool after_omitted;
  };
  std::vector<Expect> valid;
  std::vector<uint8_t> cose;
  // Valid receipts of several shapes and keys.
  for (int i = 0; i < 12; ++i) {
    Receipt r = testing::typical_receipt(static_cast<uint64_t>(i));
    r.fuel_used = uint64_t{1} << (i * 5);
    r.entry = "policy-" + std::to_string(i) + "#approve";
    if (i % 3 == 1) r.intent = std::vector<uint8_t>(static_cast<size_t>(i * 20), 'x');
    if (i % 4 == 2) r.decision = encode_decision({.approved = false, .reason_code = 9, .amount = std::nullopt});
    // Half of them for calls that changed no state: key 7 omitted.
    if (i % 2 == 0) r.state_root_after = r.state_root_before;
    const SigningKey& k = keys[static_cast<size_t>(i) % keys.size()];
    ASSERT_TRUE(sign_receipt(r, k, &cose).is_ok());
    lines << to_hex(k.public_key()) << ' ' << to_hex(cose) << " valid\n";
    valid.push_back({r.entry, r.fuel_used, r.time_unix_ms, r.state_root_after, i % 2 == 0});
    // The right receipt under the wrong key is invalid.
    lines << to_hex(keys[(static_cast<size_t>(i) + 1) % keys.size()].public_key()) << ' ' << to_hex(cose) << " invalid\n";
  }
  // Every single-byte change of a typical receipt, three ways.
  ASSERT_TRUE(sign_receipt(testing::typical_receipt(), keys[0], &cose).is_ok());
  size_t flips = 0;
  for (size_t i = 0; i < cose.size(); ++i) {
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> bad = cose;
      bad[i] ^= x;
      EXPECT_FALSE(verify_receipt(bad, PinnedKey(keys[0].public_key())).is_ok()) << "C++ accepts flip at " << i;
      lines << to_hex(keys[0].public_key()) << ' ' << to_hex(bad) << " invalid\n";
      ++flips;
    }
  }
  // Correctly signed payloads that break the payload rules: key 7 equal to
  // key 6 (the non-canonical spelling of an omitted key 7), and key 6 missing.
  // Both sides must refuse them.
  size_t bad_payloads = 0;
  for (bool drop_before : {false, true}) {
    const Receipt t = testing::typical_receipt(7);
    std::vector<uint8_t> payload;
    cbor::Writer p(&payload);
    p.map(drop_before ? 9 : 10);
    p.uint(1), p.bytes(t.contract_hash);
    p.uint(2), p.text(t.entry);
    p.uint(3), p.bytes(t.intent_hash);
    p.uint(4), p.raw(t.decision);
    p.uint(5), p.uint(t.fuel_used);
    if (!drop_before) p.uint(6), p.bytes(t.state_root_before);
    p.uint(7), p.bytes(t.state_root_before);
    p.uint(8), p.uint(t.time_unix_ms);
    p.uint(9), p.bytes(t.trace_id);
    p.uint(10), p.bytes(t.prev_receipt_hash);
    std::vector<uint8_t> prot = {0xa2, 0x01, 0x27, 0x04, 0x48};
    prot.insert(prot.end(), keys[0].kid().begin(), keys[0].kid().end());
    std::vector<uint8_t> tbs;
    cbor::Writer s(&tbs);
    s.array(4), s.text("Signature1"), s.bytes(prot), s.bytes({}), s.bytes(payload);
    uint8_t sig[kSignatureBytes];
    keys[0].sign(tbs, sig);
    std::vector<uint8_t> bad;
    cbor::Writer w(&bad);
    w.tag(18), w.array(4), w.bytes(prot), w.map(0), w.bytes(payload), w.bytes(std::span<const uint8_t>(sig, kSignatureBytes));
    auto v = verify_receipt(bad, PinnedKey(keys[0].public_key()));
    EXPECT_EQ(v.status().code(), Code::kInvalidArgument) << drop_before;
    lines << to_hex(keys[0].public_key()) << ' ' << to_hex(bad) << " invalid\n";
    ++bad_payloads;
  }
  const std::string input = tmp_.path() + "/receipts.txt";
  std::ofstream(input) << lines.str();
  std::string out;
  const int rc = run_node("cose_verify.mjs", input, &out);
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["checked"].get<size_t>(), valid.size() * 2 + flips + bad_payloads);
  ASSERT_EQ(j["decoded"].size(), valid.size());
  for (size_t i = 0; i < valid.size(); ++i) {
    EXPECT_EQ(j["decoded"][i]["entry"], valid[i].entry);
    // Node reads numbers as doubles; compare those that are exact.
    if (valid[i].fuel < (uint64_t{1} << 53)) {
      EXPECT_EQ(j["decoded"][i]["fuel_used"].get<uint64_t>(), valid[i].fuel);
    }
    EXPECT_EQ(j["decoded"][i]["time_unix_ms"].get<uint64_t>(), valid[i].time);
    EXPECT_EQ(j["decoded"][i]["state_root_after"], to_hex(valid[i].after)) << i;
    EXPECT_EQ(j["decoded"][i]["after_omitted"], valid[i].after_omitted) << i;
  }
}

TEST_F(XCheck, MerkleRootsAndProofsMatchTransmuteRfc9162) {
  std::mt19937_64 rng(9162);
  nlohmann::json trees = nlohmann::json::array();
  std::vector<uint64_t> sizes;
  for (uint64_t n = 1; n <= 33; ++n) sizes.push_back(n);
  for (int i = 0; i < 6; ++i) sizes.push_back(34 + rng() % 160);
  for (uint64_t n : sizes) {
    MerkleTree t;
    nlohmann::json entries = nlohmann::json::array();
    for (uint64_t i = 0; i < n; ++i) {
      // Distinct random entries of random length (the npm package finds leaves by value).
      std::vector<uint8_t> e(1 + rng() % 40);
      for (auto& b : e) b = static_cast<uint8_t>(rng());
      e[0] = static_cast<uint8_t>(i), e.push_back(static_cast<uint8_t>(i >> 8));
      t.append_entry(e);
      entries.push_back(to_hex(e));
    }
    nlohmann::json inc = nlohmann::json::array(), cons = nlohmann::json::array();
    const uint64_t samples = n <= 33 ? n : 12;
    for (uint64_t s = 0; s < samples; ++s) {
      const uint64_t size = n <= 33 ? n : 1 + rng() % n;
      const uint64_t index = n <= 33 ? s : rng() % size;
      nlohmann::json path = nlohmann::json::array();
      const std::vector<Hash32> proof = t.inclusion_proof(index, size).value();
      for (const auto& h : proof) path.push_back(to_hex(h));
      inc.push_back({{"index", index}, {"size", size}, {"root", to_hex(t.root_at(size).value())}, {"path", path}});
      const uint64_t old_size = n <= 33 ? s + 1 : 1 + rng() % n;
      if (old_size >= n) continue;
      nlohmann::json cpath = nlohmann::json::array();
      const std::vector<Hash32> cproof = t.consistency_proof(old_size, n).value();
      for (const auto& h : cproof) cpath.push_back(to_hex(h));
      cons.push_back({{"old", old_size}, {"new", n}, {"old_root", to_hex(t.root_at(old_size).value())},
                      {"new_root", to_hex(t.root())}, {"path", cpath}});
    }
    trees.push_back({{"entries", entries}, {"root", to_hex(t.root())}, {"inclusion", inc}, {"consistency", cons}});
  }
  const std::string input = tmp_.path() + "/trees.json";
  std::ofstream(input) << nlohmann::json{{"trees", trees}}.dump();
  std::string out;
  const int rc = run_node("merkle_check.mjs", input, &out);
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_GT(j["checks"].get<int>(), 1000);
  EXPECT_EQ(j["error_count"].get<int>(), 0) << out;
}

}  // namespace
}  // namespace covenant
