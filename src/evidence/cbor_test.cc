#include "evidence/cbor.h"

#include <gtest/gtest.h>

#include <random>

#include "covenant/keys.h"

namespace covenant::cbor {
namespace {

std::vector<uint8_t> hex(std::string_view h) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(from_hex(h, &out)) << h;
  return out;
}

// RFC 8949 Appendix A examples that are in the profile, with their encodings.
struct EncodeCase {
  const char* name;
  void (*write)(Writer&);
  const char* hex;
};

TEST(Cbor, WriterProducesPreferredEncodings) {
  const EncodeCase cases[] = {
      {"0", [](Writer& w) { w.uint(0); }, "00"},
      {"23", [](Writer& w) { w.uint(23); }, "17"},
      {"24", [](Writer& w) { w.uint(24); }, "1818"},
      {"255", [](Writer& w) { w.uint(255); }, "18ff"},
      {"256", [](Writer& w) { w.uint(256); }, "190100"},
      {"65536", [](Writer& w) { w.uint(65536); }, "1a00010000"},
      {"2^32", [](Writer& w) { w.uint(1ull << 32); }, "1b0000000100000000"},
      {"max", [](Writer& w) { w.uint(UINT64_MAX); }, "1bffffffffffffffff"},
      {"-1", [](Writer& w) { w.int64(-1); }, "20"},
      {"-8", [](Writer& w) { w.int64(-8); }, "27"},
      {"-100", [](Writer& w) { w.int64(-100); }, "3863"},
      {"-1000", [](Writer& w) { w.int64(-1000); }, "3903e7"},
      {"int64 min", [](Writer& w) { w.int64(INT64_MIN); }, "3b7fffffffffffffff"},
      {"h''", [](Writer& w) { w.bytes({}); }, "40"},
      {"h'01020304'", [](Writer& w) { const uint8_t b[] = {1, 2, 3, 4}; w.bytes(b); }, "4401020304"},
      {"\"IETF\"", [](Writer& w) { w.text("IETF"); }, "6449455446"},
      {"[]", [](Writer& w) { w.array(0); }, "80"},
      {"{}", [](Writer& w) { w.map(0); }, "a0"},
      {"true", [](Writer& w) { w.boolean(true); }, "f5"},
      {"false", [](Writer& w) { w.boolean(false); }, "f4"},
      {"null", [](Writer& w) { w.null(); }, "f6"},
      {"tag 18", [](Writer& w) { w.tag(18); w.uint(0); }, "d200"},
  };
  for (const auto& c : cases) {
    std::vector<uint8_t> out;
    Writer w(&out);
    c.write(w);
    EXPECT_EQ(to_hex(out), c.hex) << c.name;
    EXPECT_TRUE(validate(out).is_ok()) << c.name << ": " << validate(out).to_string();
    EXPECT_EQ(out.size() >= 1, true);
  }
}

struct RejectCase {
  const char* name;
  const char* hex;
  const char* message_part;  // must appear in the error
};

TEST(Cbor, ValidateRejectsWithOffsets) {
  const RejectCase cases[] = {
      {"empty", "", "empty input"},
      {"non-canonical 1-byte uint", "1817", "byte 0: non-canonical head"},
      {"non-canonical 2-byte uint", "190017", "non-canonical head"},
      {"non-canonical 4-byte uint", "1a0000ffff", "non-canonical head"},
      {"non-canonical 8-byte uint", "1b00000000ffffffff", "non-canonical head"},
      {"non-canonical length", "580100", "non-canonical head"},
      {"indefinite bytes", "5f4101ff", "indefinite"},
      {"indefinite array", "9f01ff", "indefinite"},
      {"indefinite map", "bf0101ff", "indefinite"},
      {"break alone", "ff", "indefinite"},
      {"reserved ai 28", "1c", "reserved"},
      {"trailing bytes", "0000", "byte 1: 1 trailing bytes"},
      {"truncated head", "19ff", "truncated head"},
      {"truncated string", "4301", "string length 3 exceeds the 1 bytes"},
      {"absurd string length", "5bffffffffffffffff00", "exceeds"},
      {"absurd array count", "9bffffffffffffffff", "cannot fit"},
      {"absurd map count", "ba7fffffff", "cannot fit"},
      {"truncated array", "820102820304", "trailing"},
      {"missing array item", "828101", "byte 3: unexpected end"},
      {"unsorted map keys", "a20201010", "order"},
      {"duplicate map keys", "a201010102", "byte 3: duplicate map key"},
      {"shorter key sorts first", "a2616100186400", "order"},
      {"float16", "f93c00", "floating point"},
      {"float64", "fb3ff0000000000000", "floating point"},
      {"undefined", "f7", "simple value"},
      {"simple(16)", "f0", "simple value"},
      {"simple 1-byte", "f820", "simple value"},
      {"bad utf-8", "62c328", "byte 1: text string is not valid UTF-8"},
      {"overlong utf-8", "62c0af", "UTF-8"},
      {"surrogate utf-8", "63eda080", "UTF-8"},
      {"deep nesting", "818181818181818181818181818181818100", "nesting deeper"},
  };
  for (const auto& c : cases) {
    std::vector<uint8_t> in;
    if (std::string_view(c.hex).size() % 2 == 0) in = hex(c.hex);
    else in = hex(std::string(c.hex) + "0");  // odd test strings get a pad nibble
    Status st = validate(in);
    EXPECT_FALSE(st.is_ok()) << c.name;
    EXPECT_NE(st.message().find(c.message_part), std::string::npos) << c.name << ": " << st.message();
    EXPECT_NE(st.message().find("cbor at byte"), std::string::npos) << c.name << ": " << st.message();
  }
}

TEST(Cbor, ValidateAcceptsSortedMapsAndNesting) {
  // {1: "a", 2: [h'00', -1], "a": true, "bb": null} in bytewise key order.
  std::vector<uint8_t> b;
  Writer w(&b);
  w.map(4);
  w.uint(1), w.text("a");
  w.uint(2), w.array(2), w.bytes(std::vector<uint8_t>{0}), w.int64(-1);
  w.text("a"), w.boolean(true);
  w.text("bb"), w.null();
  ASSERT_TRUE(validate(b).is_ok()) << validate(b).to_string();
  auto d = diagnostic(b);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(*d, R"({1: "a", 2: [h'00', -1], "a": true, "bb": null})");
}

TEST(Cbor, ReaderRoundTripsEveryType) {
  std::vector<uint8_t> b;
  Writer w(&b);
  w.array(7);
  w.uint(300), w.int64(-300), w.bytes(std::vector<uint8_t>{9, 8}), w.text("héllo"), w.boolean(false), w.null(), w.tag(18);
  w.map(0);
  ASSERT_TRUE(validate(b).is_ok());
  Reader r(b);
  uint64_t n, u, t;
  int64_t i;
  std::span<const uint8_t> bytes;
  std::string_view s;
  bool flag = true;
  ASSERT_TRUE(r.read_array(&n).is_ok());
  EXPECT_EQ(n, 7u);
  ASSERT_TRUE(r.read_uint(&u).is_ok());
  EXPECT_EQ(u, 300u);
  ASSERT_TRUE(r.read_int(&i).is_ok());
  EXPECT_EQ(i, -300);
  ASSERT_TRUE(r.read_bytes(&bytes).is_ok());
  EXPECT_EQ(bytes.size(), 2u);
  ASSERT_TRUE(r.read_text(&s).is_ok());
  EXPECT_EQ(s, "héllo");
  ASSERT_TRUE(r.read_bool(&flag).is_ok());
  EXPECT_FALSE(flag);
  ASSERT_TRUE(r.read_null().is_ok());
  ASSERT_TRUE(r.read_tag(&t).is_ok());
  EXPECT_EQ(t, 18u);
  ASSERT_TRUE(r.read_map(&n).is_ok());
  EXPECT_TRUE(r.at_end());
  // Type mismatch names the offset and both types.
  Reader r2(b);
  Status st = r2.read_map(&n);
  EXPECT_EQ(st.message(), "cbor at byte 0: expected map, found array");
}

TEST(Cbor, DiagnosticPrintsNegativeExtremes) {
  auto d = diagnostic(hex("3bffffffffffffffff"));
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(*d, "-18446744073709551616");
  d = diagnostic(hex("3b7fffffffffffffff"));
  EXPECT_EQ(*d, "-9223372036854775808");
}

// Fuzz-ish: random bytes, truncations and bit flips of valid items must never
// crash, hang or read out of bounds (run under ASan in CI), and every verdict
// must be consistent between validate() and diagnostic().
TEST(Cbor, RandomAndMutatedInputsNeverCrash) {
  std::mt19937_64 rng(42);
  std::vector<uint8_t> valid;
  Writer w(&valid);
  w.map(3);
  w.uint(1), w.bytes(std::vector<uint8_t>(32, 7));
  w.uint(2), w.array(3), w.boolean(true), w.uint(70000), w.text("policy#approve");
  w.uint(3), w.tag(18), w.int64(-1234567890123);
  ASSERT_TRUE(validate(valid).is_ok());
  int accepted = 0;
  for (int iter = 0; iter < 200000; ++iter) {
    std::vector<uint8_t> in;
    switch (iter % 3) {
      case 0: {  // random bytes
        in.resize(rng() % 24);
        for (auto& b : in) b = static_cast<uint8_t>(rng());
        break;
      }
      case 1:  // truncation
        in.assign(valid.begin(), valid.begin() + static_cast<long>(rng() % valid.size()));
        break;
      case 2: {  // one flipped byte
        in = valid;
        in[rng() % in.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
        break;
      }
    }
    const bool ok = validate(in).is_ok();
    EXPECT_EQ(ok, diagnostic(in).is_ok());
    if (ok) {
      ++accepted;
      Reader r(in);
      EXPECT_TRUE(r.skip().is_ok());
      EXPECT_TRUE(r.at_end());
    }
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace covenant::cbor
