// bench_contract: a whole warm seed approve through Contract (optimized tier),
// with and without a reset per call, JSON or values at the edges; and the
// budget policy (kv read + write + log + clock per call). Counters report the
// lower and lift parts of the approve as measured inside the call.
//
//   cmake --build build-host -j2 --target bench_contract
//   build-host/src/host/bench_contract --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "covenant/contract.h"
#include "covenant/wit_json.h"

namespace covenant {
namespace {

using json = nlohmann::json;

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

Engine& engine() {
  static Engine* e = Engine::create({}).value().release();
  return *e;
}

const json kIntent = {{"agent-id", "agent-7"},
                      {"task-type", "compute"},
                      {"max-units", 5u},
                      {"expires-at-ms", "1767225600001"}};

std::unique_ptr<Contract> seed(bool reset_every_call) {
  DeployOptions o;
  o.tier = Tier::kOptimized;
  o.reset_every_call = reset_every_call;
  auto c = Contract::deploy(engine(), read_file(std::string(HOST_TESTDATA_DIR) + "/seed_c.wasm"), o);
  if (!c) {
    std::fprintf(stderr, "deploy: %s\n", c.status().message().c_str());
    std::abort();
  }
  return std::move(*c);
}

void report(benchmark::State& state, uint64_t lower_ns, uint64_t lift_ns, uint64_t exec_ns) {
  double n = static_cast<double>(state.iterations());
  state.counters["lower_ns"] = static_cast<double>(lower_ns) / n;
  state.counters["lift_ns"] = static_cast<double>(lift_ns) / n;
  state.counters["execute_ns"] = static_cast<double>(exec_ns) / n;
}

// JSON intent in, JSON decision out: what `covenant approve` does per call.
void BM_ApproveJson(benchmark::State& state) {
  auto c = seed(state.range(0) != 0);
  json args = json::array({kIntent});
  uint64_t lower = 0, lift = 0, exec = 0;
  for (auto _ : state) {
    auto r = c->call_json("approve", args);
    if (!r || r->trap.kind != TrapKind::kNone) state.SkipWithError("approve failed");
    lower += r->timings.lower_ns;
    lift += r->timings.lift_ns;
    exec += r->timings.execute_ns;
    benchmark::DoNotOptimize(r->result);
  }
  report(state, lower, lift, exec);
}
BENCHMARK(BM_ApproveJson)->ArgName("reset_every_call")->Arg(1)->Arg(0);

// Values in and out (an embedder that keeps intents as WitValues).
void BM_ApproveValues(benchmark::State& state) {
  auto c = seed(state.range(0) != 0);
  const wit::Function* fn = c->find_export("approve");
  auto args = abi::args_from_json(c->package(), *fn, json::array({kIntent})).value();
  uint64_t lower = 0, lift = 0, exec = 0;
  for (auto _ : state) {
    auto r = c->call("approve", args);
    if (!r || r->trap.kind != TrapKind::kNone) state.SkipWithError("approve failed");
    lower += r->timings.lower_ns;
    lift += r->timings.lift_ns;
    exec += r->timings.execute_ns;
    benchmark::DoNotOptimize(r->values);
  }
  report(state, lower, lift, exec);
}
BENCHMARK(BM_ApproveValues)->ArgName("reset_every_call")->Arg(1)->Arg(0);

// The budget policy: 2 kv reads, 1 kv write (in-memory store), a log line, the clock.
void BM_BudgetApprove(benchmark::State& state) {
  DeployOptions o;
  o.tier = Tier::kOptimized;
  o.wit = read_text(std::string(COVENANT_SOURCE_DIR) + "/contracts/examples/budget/budget.wit");
  o.grants = parse_grants(R"({"capabilities": {"kv": {"namespace": "budget", "max_keys": 1000000,
      "max_bytes": 100000000}, "log": {"level": "info", "max_lines": 100}, "clock": {}}})")
                 .value();
  auto c = Contract::deploy(engine(), read_file(std::string(HOST_TESTDATA_DIR) + "/budget.wasm"), o).value();
  const wit::Function* fn = c->find_export("approve");
  std::vector<std::vector<abi::WitValue>> args;
  for (int i = 0; i < 1000; ++i)
    args.push_back(abi::args_from_json(c->package(), *fn,
                                       json::array({{{"agent-id", "agent-" + std::to_string(i)}, {"amount", 1u}}}))
                       .value());
  size_t i = 0;
  for (auto _ : state) {
    auto r = c->call("approve", args[i++ % args.size()]);
    if (!r || r->trap.kind != TrapKind::kNone) state.SkipWithError("budget approve failed");
    benchmark::DoNotOptimize(r->values);
  }
}
BENCHMARK(BM_BudgetApprove);

}  // namespace
}  // namespace covenant

// Calls run on a big-stack thread, as embedders should (docs/engine.md).
int main(int argc, char** argv) {
  return covenant::run_with_big_stack([&] {
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  });
}
