// bench_component: the seed policy as a component (contracts/components,
// made by wasm-tools from the C example), warm, on Covenant's optimized tier
// and — in the same run — through `jco transpile` in Node
// (tools/component.mjs bench), over the 320-intent corpus round-robin.
// Prints per-call medians and the Node/Covenant ratio (docs/benchmarks.md).
//
//   cmake --build build -j2 --target bench_component
//   build/bench/bench_component [--iterations N] [--component NAME]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "covenant/contract.h"
#include "covenant/wit_json.h"

namespace covenant {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Stats {
  double median_ns = 0, p99_ns = 0, mean_ns = 0;
};

Stats stats(std::vector<uint64_t> v) {
  Stats s;
  if (v.empty()) return s;
  double sum = 0;
  for (uint64_t x : v) sum += static_cast<double>(x);
  std::sort(v.begin(), v.end());
  s.median_ns = static_cast<double>(v[v.size() / 2]);
  s.p99_ns = static_cast<double>(v[std::min(v.size() - 1, v.size() * 99 / 100)]);
  s.mean_ns = sum / static_cast<double>(v.size());
  return s;
}

int run(int argc, char** argv) {
  size_t iterations = 200000;
  std::string name = "policy_c";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) iterations = std::stoull(argv[++i]);
    else if (a == "--component" && i + 1 < argc) name = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_component [--iterations N] [--component NAME]\n");
      return 2;
    }
  }
  const fs::path comp_path = fs::path(COVENANT_BINARY_DIR) / "contracts/components" / (name + ".component.wasm");
  std::ifstream cf(comp_path, std::ios::binary);
  if (!cf) {
    std::fprintf(stderr, "bench_component: %s not built (cmake --build ... --target components)\n", comp_path.c_str());
    return 1;
  }
  std::vector<uint8_t> wasm((std::istreambuf_iterator<char>(cf)), {});

  // The corpus, as Covenant values and as jco calls (tagged JSON).
  std::vector<json> rows;
  {
    std::ifstream f(fs::path(COVENANT_SOURCE_DIR) / "tests/contracts/intents.jsonl");
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) rows.push_back(json::parse(line));
  }

  auto engine = Engine::create({}).value();
  DeployOptions o;
  o.tier = Tier::kOptimized;
  o.name = comp_path.filename().string();
  auto c = Contract::deploy(*engine, wasm, o);
  if (!c) {
    std::fprintf(stderr, "bench_component: %s\n", c.status().message().c_str());
    return 1;
  }
  Contract& contract = **c;
  const wit::Function* fn = contract.find_export("approve");
  std::vector<std::vector<abi::WitValue>> args;
  std::vector<json> json_args;
  json calls = json::array();
  for (const json& r : rows) {
    json a = json::array({r});
    args.push_back(abi::args_from_json(contract.package(), *fn, a).value());
    json_args.push_back(a);
    calls.push_back({{"export", "agent:settlement/policy@0.1.0#approve"},
                     {"args", json::array({{{"agentId", r["agent_id"]},
                                            {"taskType", r["task_type"]},
                                            {"maxUnits", {{"$bigint", r["max_units"]}}},
                                            {"expiresAtMs", {{"$bigint", r["expires_at_ms"]}}}}})}});
  }

  // Covenant: warm up, then time each call.
  std::vector<uint64_t> total, lower_lift, json_total;
  total.reserve(iterations);
  lower_lift.reserve(iterations);
  for (size_t i = 0; i < 20000; ++i) (void)contract.call("approve", args[i % args.size()]);
  for (size_t i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    auto r = contract.call("approve", args[i % args.size()]);
    const auto t1 = Clock::now();
    if (!r || r->trap.kind != TrapKind::kNone) {
      std::fprintf(stderr, "bench_component: approve failed on row %zu\n", i % args.size());
      return 1;
    }
    total.push_back(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    lower_lift.push_back(r->timings.lower_ns + r->timings.lift_ns);
  }
  const size_t json_iterations = std::max<size_t>(iterations / 4, 1000);
  for (size_t i = 0; i < json_iterations; ++i) {
    const auto t0 = Clock::now();
    auto r = contract.call_json("approve", json_args[i % json_args.size()]);
    const auto t1 = Clock::now();
    if (!r || r->trap.kind != TrapKind::kNone) return 1;
    json_total.push_back(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
  }
  const Stats cv = stats(total), ll = stats(lower_lift), js = stats(json_total);

  // Node: the same component through jco transpile, same corpus, same count.
  const fs::path calls_path = fs::temp_directory_path() / ("covenant-bench-calls-" + std::to_string(getpid()) + ".json");
  std::ofstream(calls_path) << calls.dump();
  const fs::path out_path = calls_path.string() + ".out";
  const std::string cmd = "node '" + (fs::path(COVENANT_SOURCE_DIR) / "tools/component.mjs").string() + "' bench '" +
                          comp_path.string() + "' '" + calls_path.string() + "' --iterations " +
                          std::to_string(iterations) + " --method per-call > '" + out_path.string() + "'";
  const int rc = std::system(cmd.c_str());
  std::ifstream of(out_path);
  std::string out((std::istreambuf_iterator<char>(of)), {});
  fs::remove(calls_path);
  fs::remove(out_path);
  json node = json::parse(out, nullptr, false);
  if (rc != 0 || !node.is_object() || !node.contains("median_ns")) {
    std::fprintf(stderr, "bench_component: node bench failed (exit %d): %s\n", rc, out.c_str());
    return 1;
  }
  const double node_median = node["median_ns"].get<double>();

  std::printf("component %s, %zu intents round-robin, %zu timed calls each, per-call medians (p99)\n",
              comp_path.filename().c_str(), rows.size(), iterations);
  std::printf("  %-46s %9.0f ns (p99 %7.0f)\n", "Covenant optimized, values in/out", cv.median_ns, cv.p99_ns);
  std::printf("  %-46s %9.0f ns (p99 %7.0f)\n", "  of which lower + lift (canonical ABI)", ll.median_ns, ll.p99_ns);
  std::printf("  %-46s %9.0f ns (p99 %7.0f)\n", "Covenant optimized, JSON in/out", js.median_ns, js.p99_ns);
  std::printf("  %-46s %9.0f ns (p99 %7.0f)  [%s]\n", "Node + jco transpile (JS values in/out)", node_median,
              node.value("p99_ns", 0.0), node.value("method", std::string("?")).c_str());
  std::printf("  ratio Node/Covenant (values): %.2fx\n", node_median / cv.median_ns);
  std::printf("  ratio Node/Covenant (Covenant with JSON): %.2fx\n", node_median / js.median_ns);
  std::printf("  targets: lower+lift <= 1000 ns: %s; warm approve <= 5000 ns: %s\n",
              ll.median_ns <= 1000 ? "met" : "MISSED", cv.median_ns <= 5000 ? "met" : "MISSED");
  return 0;
}

}  // namespace
}  // namespace covenant

// Calls run on a big-stack thread, as embedders should (docs/engine.md).
int main(int argc, char** argv) {
  return covenant::run_with_big_stack([&] { return covenant::run(argc, argv); });
}
