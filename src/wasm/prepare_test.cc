#include "wasm/prepare.h"

#include <gtest/gtest.h>

namespace covenant::wasm {
namespace {

TEST(Prepare, RejectsGarbageWithOffset) {
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0x05, 0x01};
  auto r = prepare_module(bytes, {}, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status().message();
}

TEST(Prepare, RejectsMissingMagic) {
  std::vector<uint8_t> bytes = {'n', 'o', 'p', 'e'};
  auto r = prepare_module(bytes, {}, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("magic"), std::string::npos);
}

TEST(Prepare, RejectsOversizedModule) {
  LoadLimits limits;
  limits.module_size_bytes_max = 4;
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0};
  auto r = prepare_module(bytes, limits, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kLimitExceeded);
  EXPECT_NE(r.status().message().find("module_size_bytes_max"), std::string::npos);
}

// A code section whose function body claims more bytes than the module holds:
// the nesting pre-scan once read past the buffer here (found by the fuzzer;
// ASan turns a regression into a failure).
TEST(Prepare, TruncatedFunctionBodyIsAnErrorNotAnOverread) {
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0,
                                1, 4, 1, 0x60, 0, 0,        // type: () -> ()
                                3, 2, 1, 0,                 // one function
                                10, 6, 1, 0x7e, 0,          // code: 6 bytes, but the body claims 126
                                0x02, 0x40, 0x43};          // block; f32.const with its immediate cut off
  auto r = prepare_module(bytes, {}, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status().message();
}

// The profile decoder runs on raw bytes before wabt: no truncation of a
// module that uses SIMD (v128.const i32x4 0 0 0 0 in function 0) reads past
// the buffer (ASan), and the whole module names SIMD with its function and
// offset.
TEST(Prepare, ProfileDecoderNamesSimdAndSurvivesEveryTruncation) {
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0,
                                1, 4, 1, 0x60, 0, 0,  // type: () -> ()
                                3, 2, 1, 0,           // one function
                                10, 22, 1, 20, 0,     // code: one body of 20 bytes, no locals
                                0xfd, 0x0c};          // v128.const
  bytes.insert(bytes.end(), 16, 0);
  bytes.push_back(0x1a);  // drop
  bytes.push_back(0x0b);  // end
  auto r = prepare_module(bytes, {}, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_NE(r.status().message().find("SIMD (v128) (opcode 0xfd 0x0c) at function 0 (defined function 0, "
                                      "section 'code', offset 0x17)"),
            std::string::npos)
      << r.status().message();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    auto t = prepare_module(cut, {}, {});
    // Cut at a section boundary before the code, the module is valid (and empty).
    if (n != 8 && n != 14) {
      EXPECT_FALSE(t.is_ok()) << n;
    }
  }
}

// With the opcode known, no prefix of the profile reads as corruption: a
// memory.copy module is accepted whole and metered.
TEST(Prepare, BulkMemoryIsInTheDefaultProfile) {
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0,
                                1, 4, 1, 0x60, 0, 0,  // type: () -> ()
                                3, 2, 1, 0,           // one function
                                5, 3, 1, 0, 1,        // memory 1
                                10, 15, 1, 13, 0,     // code
                                0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 0x0a, 0, 0,  // memory.copy 0 0 0
                                0x0b};
  bytes.insert(bytes.end() - 1, {0x01});  // nop before end (body is 13 bytes)
  auto r = prepare_module(bytes, {}, {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
}

TEST(Prepare, EmptyModuleIsMetered) {
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0};
  auto r = prepare_module(bytes, {}, {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GT(r->metered.size(), bytes.size());
  EXPECT_EQ(r->hash_hex.size(), 64u);
}

}  // namespace
}  // namespace covenant::wasm
