// Differential test: random modules from binaryen's --translate-to-fuzz
// (tests/engine/fuzz/gen.sh, built into ${build}/fuzz), every export run on
// interp, baseline and optimized. Results (as bits), trap kinds, fuel used and
// the memory hash must be identical on all three.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include "covenant/engine.h"

namespace covenant {
namespace {

constexpr int kShards = 4;

std::vector<std::string> corpus() {
  std::vector<std::string> files;
  // COVENANT_FUZZ_DIR: another corpus made by gen.sh (e.g. with more
  // features: docs/engine.md, Tests).
  const char* other = std::getenv("COVENANT_FUZZ_DIR");
  std::string dir = other ? std::string(other) : std::string(COVENANT_BINARY_DIR) + "/fuzz";
  std::ifstream m(dir + "/manifest.tsv");
  std::string line;
  while (std::getline(m, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string file;
    ls >> file;
    if (file.size() > 5 && file.substr(file.size() - 5) == ".wasm") {
      if (line.find("skipped") != std::string::npos) continue;
      files.push_back(file[0] == '/' ? file : dir + "/" + file);
    }
  }
  return files;
}

struct Observation {
  std::string what;
  bool operator==(const Observation&) const = default;
};

std::string describe(const Result<CallOutcome>& r) {
  if (!r) return "error " + r.status().to_string();
  std::ostringstream s;
  s << "fuel=" << r->fuel_used << " trap=" << trap_kind_name(r->trap.kind);
  for (const Value& v : r->results) s << " " << valtype_name(v.type) << ":" << std::hex << v.bits << std::dec;
  return s.str();
}

Value arg_for(ValType t, std::mt19937_64& rng) {
  static const uint64_t specials[] = {0, 1, 0xffffffffffffffffull, 0x80000000ull, 0x7fffffffull, 0x8000000000000000ull};
  uint64_t r = rng();
  uint64_t bits = (r & 3) == 0 ? specials[(r >> 2) % 6] : rng();
  switch (t) {
    case ValType::kI32: return {t, bits & 0xffffffffu};
    case ValType::kI64: return {t, bits};
    case ValType::kF32: return (r & 7) == 1 ? Value::f32_bits(0x7fa00001u) : Value::f32_bits(static_cast<uint32_t>(bits));
    case ValType::kF64: return (r & 7) == 1 ? Value::f64_bits(0xfff4000000000001ull) : Value::f64_bits(bits);
  }
  return {};
}

// Runs every export of one module on one tier; returns one line per call.
std::vector<std::string> run_module(Engine& engine, const std::vector<uint8_t>& bytes, Tier tier, uint64_t seed) {
  std::vector<std::string> log;
  auto m = engine.load(bytes, {.tier = tier});
  if (!m) {
    log.push_back("load: " + m.status().to_string());
    return log;
  }
  auto inst = (*m)->instantiate(Linker{});
  if (!inst) {
    log.push_back("instantiate: " + inst.status().to_string());
    return log;
  }
  std::mt19937_64 rng(seed);
  auto hang = (*m)->export_index("hangLimitInitializer");
  auto hash = (*m)->export_index("hashMemory");
  const CallOptions opts{.fuel = 2'000'000};
  const auto& exports = (*m)->exports();
  for (uint32_t i = 0; i < exports.size(); ++i) {
    if (hang && i == *hang) continue;
    std::vector<Value> args;
    for (ValType t : exports[i].type.params) args.push_back(arg_for(t, rng));
    if (hang) (void)(*inst)->call(*hang, {}, opts);
    log.push_back(exports[i].name + ": " + describe((*inst)->call(i, args, opts)));
    if (hash) log.push_back("  hashMemory: " + describe((*inst)->call(*hash, {}, opts)));
  }
  return log;
}

class Differential : public ::testing::TestWithParam<int> {};

TEST_P(Differential, AllTiersAgree) {
  auto files = corpus();
  ASSERT_GE(files.size(), std::getenv("COVENANT_FUZZ_DIR") ? 1u : 100u)
      << "the fuzz corpus is missing: build the fuzz_corpus target";
  EngineConfig cfg;
  if (const char* d = std::getenv("COVENANT_CACHE_DIR")) cfg.cache_dir = d;
  else cfg.cache_dir = ::testing::TempDir() + "/covenant-differential-cache";
  auto engine = Engine::create(cfg);
  ASSERT_TRUE(engine.is_ok());
  size_t checked = 0, calls = 0;
  const char* only = std::getenv("COVENANT_FUZZ_ONLY");  // debug one module: its index
  for (size_t i = GetParam(); i < files.size(); i += kShards) {
    if (only && std::to_string(i) != only) continue;
    std::ifstream f(files[i], std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    ASSERT_FALSE(bytes.empty()) << files[i];
    auto ref = run_module(**engine, bytes, Tier::kInterp, i);
    auto base = run_module(**engine, bytes, Tier::kBaseline, i);
    auto opt = run_module(**engine, bytes, Tier::kOptimized, i);
    ASSERT_EQ(ref, base) << "interp and baseline disagree on " << files[i];
    ASSERT_EQ(ref, opt) << "interp and optimized disagree on " << files[i];
    ++checked;
    calls += ref.size();
  }
  std::printf("shard %d: %zu modules, %zu observations agree on all three tiers\n", GetParam(), checked, calls);
}

INSTANTIATE_TEST_SUITE_P(Fuzz, Differential, ::testing::Range(0, kShards));

}  // namespace
}  // namespace covenant
