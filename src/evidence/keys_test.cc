#include "covenant/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "covenant/receipt.h"
#include "evidence/test_util.h"

namespace covenant {
namespace {

mode_t mode_of(const std::string& path) {
  struct stat sb;
  EXPECT_EQ(::stat(path.c_str(), &sb), 0) << path;
  return sb.st_mode & 0777;
}

TEST(KeyStore, GeneratesOnFirstUseWithPrivateModes) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/keys";
  ::umask(0);  // the store must not depend on the caller's umask
  auto ks = KeyStore::open(dir);
  ASSERT_TRUE(ks.is_ok()) << ks.status().to_string();
  const std::string kid = to_hex((*ks)->active().kid());
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_EQ(mode_of(dir + "/" + kid + ".key"), 0600u);
  EXPECT_EQ(mode_of(dir + "/" + kid + ".pub"), 0644u);
  ::umask(022);
  // Reopening loads the same key.
  auto again = KeyStore::open(dir);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)->active().public_key(), (*ks)->active().public_key());
  EXPECT_EQ(kid_for((*ks)->active().public_key()), (*ks)->active().kid());
}

TEST(KeyStore, OpenWithoutCreateIsNotFound) {
  testing::TempDir tmp;
  EXPECT_EQ(KeyStore::open(tmp.path() + "/none", false).status().code(), Code::kNotFound);
}

TEST(KeyStore, RefusesAGroupReadableKey) {
  testing::TempDir tmp;
  auto ks = KeyStore::open(tmp.path());
  ASSERT_TRUE(ks.is_ok());
  const std::string key = tmp.path() + "/" + to_hex((*ks)->active().kid()) + ".key";
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  auto again = KeyStore::open(tmp.path());
  EXPECT_EQ(again.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("mode 640"), std::string::npos) << again.status().message();
}

TEST(KeyStore, RotationKeepsOldReceiptsVerifiable) {
  testing::TempDir tmp;
  auto ks = KeyStore::open(tmp.path());
  ASSERT_TRUE(ks.is_ok());
  std::vector<uint8_t> old_receipt;
  ASSERT_TRUE(sign_receipt(testing::typical_receipt(), (*ks)->active(), &old_receipt).is_ok());
  const KeyId old_kid = (*ks)->active().kid();
  ASSERT_TRUE((*ks)->rotate().is_ok());
  EXPECT_NE((*ks)->active().kid(), old_kid);
  EXPECT_EQ((*ks)->public_keys().size(), 2u);
  // A fresh open sees the rotated key as active and still resolves the old kid.
  auto reopened = KeyStore::open(tmp.path());
  ASSERT_TRUE(reopened.is_ok());
  EXPECT_EQ((*reopened)->active().kid(), (*ks)->active().kid());
  auto v = verify_receipt(old_receipt, **reopened);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->executor_kid, old_kid);
  KeyId unknown{};
  EXPECT_EQ((*reopened)->resolve(unknown).status().code(), Code::kNotFound);
}

// A key revoked at T: receipts it signed before T still verify, those at or
// after T are refused (also through a fresh open and a pinned key); the active
// key cannot be revoked; revoking again keeps the earlier time.
TEST(KeyStore, RevocationAtAPointInTime) {
  testing::TempDir tmp;
  auto ks = KeyStore::open(tmp.path());
  ASSERT_TRUE(ks.is_ok());
  const uint64_t t = 1'767'225'600'000ull;  // typical_receipt(seq) is signed at t + seq
  std::vector<uint8_t> before, at, after;
  ASSERT_TRUE(sign_receipt(testing::typical_receipt(0), (*ks)->active(), &before).is_ok());
  ASSERT_TRUE(sign_receipt(testing::typical_receipt(5), (*ks)->active(), &at).is_ok());
  ASSERT_TRUE(sign_receipt(testing::typical_receipt(9), (*ks)->active(), &after).is_ok());
  const KeyId old_kid = (*ks)->active().kid();
  const PublicKey old_pub = (*ks)->active().public_key();
  EXPECT_EQ((*ks)->revoke(old_kid, t + 5).code(), Code::kFailedPrecondition) << "the active key";
  ASSERT_TRUE((*ks)->rotate().is_ok());
  KeyId unknown{};
  EXPECT_EQ((*ks)->revoke(unknown, t).code(), Code::kNotFound);
  ASSERT_TRUE((*ks)->revoke(old_kid, t + 5).is_ok());
  ASSERT_TRUE((*ks)->revoke(old_kid, t + 7).is_ok());  // later: the earlier time stays
  EXPECT_EQ((*ks)->revoked_at_ms(old_kid), t + 5);
  auto reopened = KeyStore::open(tmp.path());
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  EXPECT_EQ((*reopened)->revoked_at_ms(old_kid), t + 5);
  EXPECT_EQ((*reopened)->revoked_at_ms((*reopened)->active().kid()), std::nullopt);
  for (const KeyResolver* keys : std::initializer_list<const KeyResolver*>{reopened->get()}) {
    EXPECT_TRUE(verify_receipt(before, *keys).is_ok());
    auto v = verify_receipt(at, *keys);
    EXPECT_EQ(v.status().code(), Code::kFailedPrecondition);
    EXPECT_NE(v.status().message().find("at or after the key's revocation at " + std::to_string(t + 5) + " ms"),
              std::string::npos)
        << v.status().message();
    EXPECT_EQ(verify_receipt(after, *keys).status().code(), Code::kFailedPrecondition);
  }
  const PinnedKey pinned(old_pub, t + 5);
  EXPECT_TRUE(verify_receipt(before, pinned).is_ok());
  EXPECT_EQ(verify_receipt(after, pinned).status().code(), Code::kFailedPrecondition);
  // Moving the revocation earlier takes effect.
  ASSERT_TRUE((*reopened)->revoke(old_kid, t).is_ok());
  EXPECT_EQ(verify_receipt(before, **reopened).status().code(), Code::kFailedPrecondition);
  // A damaged revocation file is refused, not ignored.
  std::ofstream(tmp.path() + "/" + to_hex(old_kid) + ".revoked") << "soon\n";
  EXPECT_EQ(KeyStore::open(tmp.path()).status().code(), Code::kCorruption);
}

TEST(KeyStore, CorruptKeyFileIsCorruption) {
  testing::TempDir tmp;
  auto ks = KeyStore::open(tmp.path());
  ASSERT_TRUE(ks.is_ok());
  const std::string key = tmp.path() + "/" + to_hex((*ks)->active().kid()) + ".key";
  { std::ofstream(key, std::ios::trunc) << "zz\n"; }
  EXPECT_EQ(KeyStore::open(tmp.path()).status().code(), Code::kCorruption);
}

TEST(Hex, RoundTripAndRejects) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(from_hex("00ffA0", &out));
  EXPECT_EQ(to_hex(out), "00ffa0");
  EXPECT_FALSE(from_hex("0", &out));
  EXPECT_FALSE(from_hex("0g", &out));
}

TEST(Ed25519, Rfc8032TestVector1) {
  // RFC 8032 §7.1 TEST 1: empty message.
  std::array<uint8_t, 32> seed;
  ASSERT_TRUE(from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed));
  const SigningKey k = SigningKey::from_seed(seed);
  EXPECT_EQ(to_hex(k.public_key()), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  uint8_t sig[64];
  k.sign({}, sig);
  EXPECT_EQ(to_hex(std::span<const uint8_t>(sig, 64)),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
}

}  // namespace
}  // namespace covenant
