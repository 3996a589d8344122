// Many threads run instances of one module at once, on every tier. Run under
// ThreadSanitizer in CI (scripts/test.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "covenant/engine.h"

namespace covenant {
namespace {

// (module (memory 1)
//   (func (export "work") (param i32) (result i32) (local i32)
//     loop  local.get 1 local.get 0 i32.add local.set 1
//           i32.const 0 local.get 1 i32.store
//           local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0 end
//     i32.const 0 i32.load)
//   (func (export "spin") loop br 0 end))
const std::vector<uint8_t> kWork = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x09, 0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00, 0x03, 0x03, 0x02, 0x00, 0x01, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07, 0x0f, 0x02, 0x04, 0x77, 0x6f, 0x72, 0x6b, 0x00, 0x00, 0x04, 0x73, 0x70, 0x69, 0x6e, 0x00, 0x01, 0x0a, 0x2d, 0x02, 0x23, 0x01, 0x01, 0x7f, 0x03, 0x40, 0x20, 0x01, 0x20, 0x00, 0x6a, 0x21, 0x01, 0x41, 0x00, 0x20, 0x01, 0x36, 0x02, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b, 0x41, 0x00, 0x28, 0x02, 0x00, 0x0b, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b};

class Concurrency : public ::testing::TestWithParam<Tier> {};

TEST_P(Concurrency, ThreadsShareOneModule) {
  EngineConfig cfg;
  cfg.cache_dir = ::testing::TempDir() + "/covenant-concurrency-cache";
  auto engine = Engine::create(cfg);
  ASSERT_TRUE(engine.is_ok());
  auto module = (*engine)->load(kWork, {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok()) << module.status().to_string();
  constexpr int kThreads = 4, kCalls = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto inst = (*module)->instantiate(Linker{});
      if (!inst) {
        ++failures;
        return;
      }
      for (int i = 0; i < kCalls; ++i) {
        int n = 10 + (t * kCalls + i) % 50;
        Value arg[] = {Value::i32(n)};
        auto out = (*inst)->call("work", arg);
        if (!out || !out->ok() || out->results[0].as_i32() != n * (n + 1) / 2) ++failures;
        if (i % 50 == 0) {  // traps on other threads must not disturb this one
          auto spin = (*inst)->call("spin", {}, {.fuel = 1000});
          if (!spin || spin->trap.kind != TrapKind::kOutOfFuel || spin->fuel_used != 1000) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(All, Concurrency, ::testing::Values(Tier::kInterp, Tier::kBaseline, Tier::kOptimized),
                         [](const auto& info) { return std::string(tier_name(info.param)); });

}  // namespace
}  // namespace covenant
