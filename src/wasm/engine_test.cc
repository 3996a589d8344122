// Engine tests that need no external tools; the adversarial corpus and the
// differential tests live in tests/engine/.
#include <gtest/gtest.h>

#include "covenant/engine.h"

namespace covenant {
namespace {

// (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
const std::vector<uint8_t> kAdd = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60,
                                   0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01,
                                   0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x20,
                                   0x00, 0x20, 0x01, 0x6a, 0x0b};

class EngineTiers : public ::testing::TestWithParam<Tier> {};

TEST_P(EngineTiers, AddsAndCountsFuel) {
  EngineConfig cfg;
  cfg.cache_dir = ::testing::TempDir() + "/covenant-engine-test-cache";
  auto engine = Engine::create(cfg);
  ASSERT_TRUE(engine.is_ok());
  auto module = (*engine)->load(kAdd, {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok()) << module.status().to_string();
  auto inst = (*module)->instantiate(Linker{});
  ASSERT_TRUE(inst.is_ok()) << inst.status().to_string();
  Value args[] = {Value::i32(40), Value::i32(2)};
  auto out = (*inst)->call("add", args);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_TRUE(out->ok()) << out->trap.message;
  ASSERT_EQ(out->results.size(), 1u);
  EXPECT_EQ(out->results[0].as_i32(), 42);
  EXPECT_EQ(out->fuel_used, 3u);  // local.get, local.get, i32.add: one unit each
}

INSTANTIATE_TEST_SUITE_P(All, EngineTiers, ::testing::Values(Tier::kInterp, Tier::kBaseline, Tier::kOptimized),
                         [](const auto& info) { return std::string(tier_name(info.param)); });

}  // namespace
}  // namespace covenant
