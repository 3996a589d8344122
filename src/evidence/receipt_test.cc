#include "covenant/receipt.h"

#include <gtest/gtest.h>

#include <random>

#include "evidence/cbor.h"
#include "evidence/test_util.h"

namespace covenant {
namespace {

using testing::typical_receipt;

SigningKey test_key(uint8_t b = 7) {
  std::array<uint8_t, 32> seed;
  seed.fill(b);
  return SigningKey::from_seed(seed);
}

// The budget is for a typical seed approval (issue 11): a call that changed no
// state, so key 7 is omitted. docs/receipts.md states both exact sizes.
TEST(Receipt, TypicalApprovalFitsTheBudget) {
  const SigningKey key = test_key();
  std::vector<uint8_t> cose;
  Receipt seed = typical_receipt();
  seed.state_root_after = seed.state_root_before;
  ASSERT_TRUE(sign_receipt(seed, key, &cose).is_ok());
  EXPECT_LE(cose.size(), kReceiptTypicalSizeBytesMax);
  EXPECT_EQ(cose.size(), 298u);
  // The largest fuel and time values still fit: +6 bytes for fuel near 2^64.
  seed.fuel_used = 4'000'000'000ull;
  ASSERT_TRUE(sign_receipt(seed, key, &cose).is_ok());
  EXPECT_LE(cose.size(), kReceiptTypicalSizeBytesMax);
  // A call that wrote kv carries both state roots: 35 bytes more, over the
  // seed budget (documented, not hidden).
  ASSERT_TRUE(sign_receipt(typical_receipt(), key, &cose).is_ok());
  EXPECT_EQ(cose.size(), 333u);
}

// A call that changed no state: after = before, and key 7 is omitted (35 bytes).
TEST(Receipt, UnchangedStateOmitsTheAfterRoot) {
  const SigningKey key = test_key();
  Receipt r = typical_receipt(2);
  r.state_root_after = r.state_root_before;
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(r, key, &cose).is_ok());
  EXPECT_EQ(cose.size(), 298u);
  std::vector<uint8_t> payload;
  ASSERT_TRUE(encode_receipt_payload(r, &payload).is_ok());
  EXPECT_EQ(payload[0], 0xaa);  // map of 10: keys 1-6, 8-10, 12
  auto d = cbor::diagnostic(payload);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->find(", 7: "), std::string::npos) << *d;
  auto v = verify_receipt(cose, PinnedKey(key.public_key()));
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  r.executor_kid = key.kid();
  EXPECT_EQ(*v, r);
  EXPECT_EQ(v->state_root_after, v->state_root_before);
  // Roots that differ in one byte are both written.
  r.state_root_after[31] ^= 1;
  ASSERT_TRUE(sign_receipt(r, key, &cose).is_ok());
  EXPECT_EQ(cose.size(), 333u);
  EXPECT_EQ(verify_receipt(cose, PinnedKey(key.public_key())).value().state_root_after, r.state_root_after);
}

// Receipts from before key 12 still decode and verify, without an interface hash.
TEST(Receipt, WithoutInterfaceHashStillVerifies) {
  const SigningKey key = test_key();
  Receipt r = typical_receipt(4);
  r.interface_hash.reset();
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(r, key, &cose).is_ok());
  EXPECT_EQ(cose.size(), 315u);
  auto v = verify_receipt(cose, PinnedKey(key.public_key()));
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_FALSE(v->interface_hash.has_value());
  r.executor_kid = key.kid();
  EXPECT_EQ(*v, r);
}

TEST(Receipt, SignVerifyRoundTrip) {
  const SigningKey key = test_key();
  Receipt r = typical_receipt(3);
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(r, key, &cose).is_ok());
  auto v = verify_receipt(cose, PinnedKey(key.public_key()));
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  r.executor_kid = key.kid();
  EXPECT_EQ(*v, r);
  auto d = decode_decision(v->decision);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(*d, (Decision{true, 0, 25'000}));
  // Deterministic: same receipt, same key, same bytes (Ed25519 is deterministic).
  std::vector<uint8_t> again;
  ASSERT_TRUE(sign_receipt(r, key, &again).is_ok());
  EXPECT_EQ(cose, again);
  EXPECT_EQ(receipt_id_hex(cose).size(), 64u);
}

// A signed intent's receipt names the agent key and the nonce (key 13).
TEST(Receipt, IntentSignerRoundTrips) {
  const SigningKey key = test_key();
  Receipt r = typical_receipt();
  r.state_root_after = r.state_root_before;
  r.intent_signer = Receipt::IntentSigner{"agent-7-k1", "n-3f9a2c4e5b6d7081"};
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(r, key, &cose).is_ok());
  // kid (10) + nonce (18) + their heads, the array head and the key: 32 bytes.
  EXPECT_EQ(cose.size(), 298u + 32u);
  auto v = verify_receipt(cose, PinnedKey(key.public_key()));
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  r.executor_kid = key.kid();
  EXPECT_EQ(*v, r);
  r.intent_signer->nonce = std::string(65, 'n');
  EXPECT_FALSE(sign_receipt(r, key, &cose).is_ok());
}

TEST(Receipt, OptInIntentRoundTrips) {
  const SigningKey key = test_key();
  Receipt r = typical_receipt();
  r.intent = std::vector<uint8_t>{'{', '}'};
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(r, key, &cose).is_ok());
  auto v = verify_receipt(cose, PinnedKey(key.public_key()));
  ASSERT_TRUE(v.is_ok());
  ASSERT_TRUE(v->intent.has_value());
  EXPECT_EQ(*v->intent, *r.intent);
}

TEST(Receipt, WrongKeyAndUnknownKid) {
  const SigningKey key = test_key(1), other = test_key(2);
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(typical_receipt(), key, &cose).is_ok());
  auto v = verify_receipt(cose, PinnedKey(other.public_key()));
  EXPECT_EQ(v.status().code(), Code::kNotFound);
}

// Changing any single byte makes verification fail (or the bytes not parse).
TEST(Receipt, EverySingleByteFlipIsRejected) {
  const SigningKey key = test_key();
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(typical_receipt(), key, &cose).is_ok());
  const PinnedKey pinned(key.public_key());
  for (size_t i = 0; i < cose.size(); ++i) {
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> bad = cose;
      bad[i] ^= x;
      auto v = verify_receipt(bad, pinned);
      EXPECT_FALSE(v.is_ok()) << "byte " << i << " ^ " << int(x) << " still verifies";
    }
  }
}

struct BadField {
  const char* name;
  void (*mutate)(Receipt&);
  const char* message_part;
};

TEST(Receipt, EncodeRejectsBadFields) {
  const BadField cases[] = {
      {"empty decision", [](Receipt& r) { r.decision.clear(); }, "decision"},
      {"decision not CBOR", [](Receipt& r) { r.decision = {0x1f}; }, "decision"},
      {"decision two items", [](Receipt& r) { r.decision = {0x01, 0x02}; }, "trailing"},
      {"entry too long", [](Receipt& r) { r.entry.assign(300, 'x'); }, "entry"},
  };
  const SigningKey key = test_key();
  for (const auto& c : cases) {
    Receipt r = typical_receipt();
    c.mutate(r);
    std::vector<uint8_t> cose;
    Status st = sign_receipt(r, key, &cose);
    EXPECT_FALSE(st.is_ok()) << c.name;
    EXPECT_NE(st.message().find(c.message_part), std::string::npos) << c.name << ": " << st.message();
  }
}

// Hand-built payloads: decode errors name the key and the byte offset.
TEST(Receipt, DecodeRejectsMalformedPayloads) {
  const SigningKey key = test_key();
  auto build = [&](auto&& payload_writer) {
    std::vector<uint8_t> payload;
    cbor::Writer p(&payload);
    payload_writer(p);
    std::vector<uint8_t> cose;
    cbor::Writer w(&cose);
    w.tag(18), w.array(4);
    std::vector<uint8_t> prot = {0xa2, 0x01, 0x27, 0x04, 0x48};
    prot.insert(prot.end(), key.kid().begin(), key.kid().end());
    w.bytes(prot), w.map(0), w.bytes(payload), w.bytes(std::vector<uint8_t>(64, 0));
    return cose;
  };
  auto missing = build([](cbor::Writer& p) { p.map(1), p.uint(1), p.bytes(std::vector<uint8_t>(32)); });
  EXPECT_NE(decode_receipt(missing).status().message().find("required key 2 is missing"), std::string::npos)
      << decode_receipt(missing).status().message();
  auto short_hash = build([](cbor::Writer& p) { p.map(1), p.uint(1), p.bytes(std::vector<uint8_t>(31)); });
  EXPECT_NE(decode_receipt(short_hash).status().message().find("key 1 (contract hash) at byte 2: expected 32 bytes, found 31"),
            std::string::npos)
      << decode_receipt(short_hash).status().message();
  auto unknown = build([](cbor::Writer& p) { p.map(1), p.uint(14), p.uint(0); });
  EXPECT_NE(decode_receipt(unknown).status().message().find("unknown key 14"), std::string::npos);
  auto bad_signer = build([](cbor::Writer& p) { p.map(1), p.uint(13), p.array(1), p.text("k"); });
  EXPECT_NE(decode_receipt(bad_signer).status().message().find("expected [kid, nonce]"), std::string::npos)
      << decode_receipt(bad_signer).status().message();
  auto short_iface = build([](cbor::Writer& p) { p.map(1), p.uint(12), p.bytes(std::vector<uint8_t>(32)); });
  EXPECT_NE(decode_receipt(short_iface).status().message().find("key 12 (interface hash) at byte 2: expected 16 bytes, found 32"),
            std::string::npos)
      << decode_receipt(short_iface).status().message();
  auto version = build([](cbor::Writer& p) { p.map(1), p.uint(0), p.uint(2); });
  EXPECT_EQ(decode_receipt(version).status().code(), Code::kUnsupported);

  // Every field of the typical receipt but `skip`; `after` as key 7's value.
  const Receipt t = typical_receipt();
  auto fields = [&](int skip, const Hash32& after) {
    return build([&](cbor::Writer& p) {
      p.map(skip ? 9 : 10);
      auto k = [&](int key) {
        if (key == skip) return false;
        p.uint(static_cast<uint64_t>(key));
        return true;
      };
      if (k(1)) p.bytes(t.contract_hash);
      if (k(2)) p.text(t.entry);
      if (k(3)) p.bytes(t.intent_hash);
      if (k(4)) p.raw(t.decision);
      if (k(5)) p.uint(t.fuel_used);
      if (k(6)) p.bytes(t.state_root_before);
      if (k(7)) p.bytes(after);
      if (k(8)) p.uint(t.time_unix_ms);
      if (k(9)) p.bytes(t.trace_id);
      if (k(10)) p.bytes(t.prev_receipt_hash);
    });
  };
  EXPECT_TRUE(decode_receipt(fields(0, t.state_root_after)).is_ok());
  EXPECT_TRUE(decode_receipt(fields(7, t.state_root_after)).is_ok());
  // Key 7 equal to key 6 is the non-canonical spelling of an omitted key 7.
  // Payload offset: map head 1 + key 1 35 + key 2 15 + key 3 35 + key 4 7
  // + key 5 4 + key 6 35 = 132 bytes, then key 7's key at 132, its value at 133.
  auto equal = decode_receipt(fields(0, t.state_root_before));
  EXPECT_EQ(equal.status().code(), Code::kInvalidArgument);
  EXPECT_NE(equal.status().message().find("key 7 (state root after) at byte 133: equal to key 6"), std::string::npos)
      << equal.status().message();
  // Only key 7 is optional: the others are still required, key 6 included.
  for (int k : {1, 2, 3, 4, 5, 6, 8, 9, 10}) {
    auto missing_k = decode_receipt(fields(k, t.state_root_after));
    EXPECT_NE(missing_k.status().message().find("required key " + std::to_string(k) + " is missing"), std::string::npos)
        << k << ": " << missing_k.status().message();
  }
}

TEST(Receipt, RandomBytesNeverCrashTheDecoder) {
  std::mt19937_64 rng(7);
  const SigningKey key = test_key();
  std::vector<uint8_t> cose;
  ASSERT_TRUE(sign_receipt(typical_receipt(), key, &cose).is_ok());
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> in(cose.begin(), cose.begin() + static_cast<long>(rng() % (cose.size() + 1)));
    if (i % 2) {
      for (auto& b : in) {
        if (rng() % 64 == 0) b = static_cast<uint8_t>(rng());
      }
    }
    auto v = decode_receipt(in);
    if (in == cose) {
      EXPECT_TRUE(v.is_ok());
    }
  }
}

TEST(Decision, Shapes) {
  EXPECT_EQ(to_hex(encode_decision({true, 0, std::nullopt})), "82f500");
  EXPECT_EQ(to_hex(encode_decision({false, 7, 25000})), "83f4071961a8");
  EXPECT_FALSE(decode_decision(std::vector<uint8_t>{0xa0}).is_ok());
}

}  // namespace
}  // namespace covenant
