// bench_abi: the seed's approve boundary — lower the intent record into guest
// memory (the flat params + two cabi_realloc'd strings) and lift the decision
// record from a return area — over a BufferMemory guest. Issue 3 target: <= 1 us.
#include <benchmark/benchmark.h>

#include <cstring>

#include "covenant/abi.h"
#include "covenant/wit.h"
#include "covenant/wit_json.h"

namespace {

using namespace covenant;

constexpr const char* kSeedWit = R"(package agent:settlement@0.1.0;
interface policy {
  record intent { agent-id: string, task-type: string, max-units: u64, expires-at-ms: u64 }
  record decision { approved: bool, ceiling: u64, reason: string }
  approve: func(i: intent) -> decision;
}
world escrow { export policy; }
)";

struct Fixture {
  wit::Package pkg = std::move(wit::parse_wit(kSeedWit).value());
  abi::Abi abi{pkg};
  const wit::Function* approve = pkg.find_function("policy", "approve");
  abi::BufferMemory mem{1 << 16};
  abi::WitValue intent = abi::WitValue::record({abi::WitValue::string("agent-42"), abi::WitValue::string("translate"),
                                                abi::WitValue::u64(1000), abi::WitValue::u64(1767225600000ull)});
  Fixture() {
    // A decision {approved: true, ceiling: 1000, reason: "within budget"} at 0x100.
    uint8_t* m = mem.data();
    m[0x100] = 1;
    uint64_t ceiling = 1000;
    std::memcpy(m + 0x108, &ceiling, 8);
    const char reason[] = "within budget";
    std::memcpy(m + 0x200, reason, sizeof reason - 1);
    uint32_t p = 0x200, n = sizeof reason - 1;
    std::memcpy(m + 0x110, &p, 4);
    std::memcpy(m + 0x114, &n, 4);
  }
};

void BM_LowerIntent(benchmark::State& state) {
  Fixture f;
  std::vector<abi::CoreValue> flat;
  flat.reserve(8);
  for (auto _ : state) {
    f.mem.reset();
    abi::CallContext cx(f.abi, f.mem);
    Status s = cx.lower_params(*f.approve, std::span(&f.intent, 1), &flat);
    if (!s.is_ok()) state.SkipWithError(s.message().c_str());
    benchmark::DoNotOptimize(flat.data());
  }
}
BENCHMARK(BM_LowerIntent);

void BM_LiftDecision(benchmark::State& state) {
  Fixture f;
  abi::CoreValue ret = abi::CoreValue::i32(0x100);
  for (auto _ : state) {
    abi::CallContext cx(f.abi, f.mem);
    auto r = cx.lift_results(*f.approve, std::span(&ret, 1));
    if (!r) state.SkipWithError(r.status().message().c_str());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LiftDecision);

void BM_LowerIntentAndLiftDecision(benchmark::State& state) {
  Fixture f;
  std::vector<abi::CoreValue> flat;
  flat.reserve(8);
  abi::CoreValue ret = abi::CoreValue::i32(0x100);
  for (auto _ : state) {
    f.mem.reset();
    abi::CallContext cx(f.abi, f.mem);
    Status s = cx.lower_params(*f.approve, std::span(&f.intent, 1), &flat);
    auto r = cx.lift_results(*f.approve, std::span(&ret, 1));
    if (!s.is_ok() || !r) state.SkipWithError("lift/lower failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LowerIntentAndLiftDecision);

void BM_IntentFromJson(benchmark::State& state) {
  Fixture f;
  auto j = nlohmann::json::parse(R"({"agent_id":"agent-42","task_type":"translate","max_units":1000,"expires_at_ms":"1767225600000"})");
  wit::TypeId t = f.pkg.find_interface("policy")->find_type("intent");
  for (auto _ : state) {
    auto v = abi::value_from_json(f.pkg, t, j);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_IntentFromJson);

}  // namespace

BENCHMARK_MAIN();
