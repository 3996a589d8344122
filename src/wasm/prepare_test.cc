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

TEST(Prepare, EmptyModuleIsMetered) {
  std::vector<uint8_t> bytes = {0, 'a', 's', 'm', 1, 0, 0, 0};
  auto r = prepare_module(bytes, {}, {});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GT(r->metered.size(), bytes.size());
  EXPECT_EQ(r->hash_hex.size(), 64u);
}

}  // namespace
}  // namespace covenant::wasm
