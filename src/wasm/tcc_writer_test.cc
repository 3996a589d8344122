// The baseline tier's own Wasm -> C translator (tcc_writer.cc): every numeric
// operator on its edge values must give the same bits and the same trap kind
// and fuel as wabt's interpreter (the reference) and the optimized tier; the
// unit includes no system header; what the writer refuses falls back to wasm2c.
#include "wasm/tcc_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <sstream>

#include "covenant/engine.h"
#include "wasm/wat_test_util.h"
#include "wabt/ir.h"
#include "wasm/prepare.h"
#include "wasm/tiers.h"

namespace covenant::wasm {
namespace {

std::vector<uint8_t> wat(const std::string& text) { return wasm_test::wat(text, /*multi_value=*/true); }

struct Op {
  const char* name;
  const char* params;  // e.g. "i32 i32"
  const char* result;
};

const Op kOps[] = {
    {"i32.add", "i32 i32", "i32"}, {"i32.sub", "i32 i32", "i32"}, {"i32.mul", "i32 i32", "i32"},
    {"i32.div_s", "i32 i32", "i32"}, {"i32.div_u", "i32 i32", "i32"}, {"i32.rem_s", "i32 i32", "i32"},
    {"i32.rem_u", "i32 i32", "i32"}, {"i32.and", "i32 i32", "i32"}, {"i32.or", "i32 i32", "i32"},
    {"i32.xor", "i32 i32", "i32"}, {"i32.shl", "i32 i32", "i32"}, {"i32.shr_s", "i32 i32", "i32"},
    {"i32.shr_u", "i32 i32", "i32"}, {"i32.rotl", "i32 i32", "i32"}, {"i32.rotr", "i32 i32", "i32"},
    {"i32.eq", "i32 i32", "i32"}, {"i32.ne", "i32 i32", "i32"}, {"i32.lt_s", "i32 i32", "i32"},
    {"i32.lt_u", "i32 i32", "i32"}, {"i32.gt_s", "i32 i32", "i32"}, {"i32.gt_u", "i32 i32", "i32"},
    {"i32.le_s", "i32 i32", "i32"}, {"i32.le_u", "i32 i32", "i32"}, {"i32.ge_s", "i32 i32", "i32"},
    {"i32.ge_u", "i32 i32", "i32"}, {"i32.clz", "i32", "i32"}, {"i32.ctz", "i32", "i32"},
    {"i32.popcnt", "i32", "i32"}, {"i32.eqz", "i32", "i32"}, {"i32.extend8_s", "i32", "i32"},
    {"i32.extend16_s", "i32", "i32"},
    {"i64.add", "i64 i64", "i64"}, {"i64.sub", "i64 i64", "i64"}, {"i64.mul", "i64 i64", "i64"},
    {"i64.div_s", "i64 i64", "i64"}, {"i64.div_u", "i64 i64", "i64"}, {"i64.rem_s", "i64 i64", "i64"},
    {"i64.rem_u", "i64 i64", "i64"}, {"i64.shl", "i64 i64", "i64"}, {"i64.shr_s", "i64 i64", "i64"},
    {"i64.shr_u", "i64 i64", "i64"}, {"i64.rotl", "i64 i64", "i64"}, {"i64.rotr", "i64 i64", "i64"},
    {"i64.lt_s", "i64 i64", "i32"}, {"i64.ge_u", "i64 i64", "i32"}, {"i64.clz", "i64", "i64"},
    {"i64.ctz", "i64", "i64"}, {"i64.popcnt", "i64", "i64"}, {"i64.eqz", "i64", "i32"},
    {"i64.extend8_s", "i64", "i64"}, {"i64.extend16_s", "i64", "i64"}, {"i64.extend32_s", "i64", "i64"},
    {"i64.extend_i32_s", "i32", "i64"}, {"i64.extend_i32_u", "i32", "i64"}, {"i32.wrap_i64", "i64", "i32"},
    {"f32.add", "f32 f32", "f32"}, {"f32.div", "f32 f32", "f32"}, {"f32.min", "f32 f32", "f32"},
    {"f32.max", "f32 f32", "f32"}, {"f32.copysign", "f32 f32", "f32"}, {"f32.eq", "f32 f32", "i32"},
    {"f32.lt", "f32 f32", "i32"}, {"f32.ge", "f32 f32", "i32"}, {"f32.ne", "f32 f32", "i32"},
    {"f32.neg", "f32", "f32"}, {"f32.abs", "f32", "f32"}, {"f32.sqrt", "f32", "f32"},
    {"f32.ceil", "f32", "f32"}, {"f32.floor", "f32", "f32"}, {"f32.trunc", "f32", "f32"},
    {"f32.nearest", "f32", "f32"},
    {"f64.sub", "f64 f64", "f64"}, {"f64.mul", "f64 f64", "f64"}, {"f64.min", "f64 f64", "f64"},
    {"f64.max", "f64 f64", "f64"}, {"f64.copysign", "f64 f64", "f64"}, {"f64.le", "f64 f64", "i32"},
    {"f64.gt", "f64 f64", "i32"}, {"f64.neg", "f64", "f64"}, {"f64.nearest", "f64", "f64"},
    {"f64.sqrt", "f64", "f64"},
    {"i32.trunc_f32_s", "f32", "i32"}, {"i32.trunc_f32_u", "f32", "i32"}, {"i32.trunc_f64_s", "f64", "i32"},
    {"i32.trunc_f64_u", "f64", "i32"}, {"i64.trunc_f32_s", "f32", "i64"}, {"i64.trunc_f32_u", "f32", "i64"},
    {"i64.trunc_f64_s", "f64", "i64"}, {"i64.trunc_f64_u", "f64", "i64"},
    {"i32.trunc_sat_f32_s", "f32", "i32"}, {"i32.trunc_sat_f32_u", "f32", "i32"},
    {"i32.trunc_sat_f64_s", "f64", "i32"}, {"i32.trunc_sat_f64_u", "f64", "i32"},
    {"i64.trunc_sat_f32_s", "f32", "i64"}, {"i64.trunc_sat_f32_u", "f32", "i64"},
    {"i64.trunc_sat_f64_s", "f64", "i64"}, {"i64.trunc_sat_f64_u", "f64", "i64"},
    {"f32.convert_i32_s", "i32", "f32"}, {"f32.convert_i32_u", "i32", "f32"},
    {"f32.convert_i64_s", "i64", "f32"}, {"f32.convert_i64_u", "i64", "f32"},
    {"f64.convert_i32_u", "i32", "f64"}, {"f64.convert_i64_s", "i64", "f64"},
    {"f64.convert_i64_u", "i64", "f64"}, {"f32.demote_f64", "f64", "f32"}, {"f64.promote_f32", "f32", "f64"},
    {"i32.reinterpret_f32", "f32", "i32"}, {"f32.reinterpret_i32", "i32", "f32"},
    {"i64.reinterpret_f64", "f64", "i64"}, {"f64.reinterpret_i64", "i64", "f64"},
};

std::vector<Value> edge_values(const std::string& t) {
  std::vector<Value> v;
  if (t == "i32") {
    for (uint32_t x : {0u, 1u, 2u, 3u, 31u, 32u, 33u, 0x7fffffffu, 0x80000000u, 0xffffffffu, 0xfffffffeu, 0x12345678u})
      v.push_back({ValType::kI32, x});
  } else if (t == "i64") {
    for (uint64_t x : {0ull, 1ull, 2ull, 63ull, 64ull, 65ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
                       0xffffffffffffffffull, 0x80000000ull, 0xffffffffull, 0x123456789abcdef0ull,
                       0x0020000000000001ull, 0x8000000000000401ull})
      v.push_back({ValType::kI64, x});
  } else if (t == "f32") {
    for (uint32_t x : {0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x3fc00000u, 0x40200000u, 0xbfc00000u,
                       0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x4f000000u, 0xcf000000u, 0x4f800000u,
                       0x5f000000u, 0xdf000000u, 0x5f800000u, 0xbf7fffffu, 0x00000001u, 0x4effffffu})
      v.push_back({ValType::kF32, x});
  } else {
    for (uint64_t x : {0x0ull, 0x8000000000000000ull, 0x3ff0000000000000ull, 0xbff0000000000000ull,
                       0x3ff8000000000000ull, 0x4004000000000000ull, 0x7ff0000000000000ull, 0xfff0000000000000ull,
                       0x7ff8000000000000ull, 0xfff8000000000001ull, 0x41e0000000000000ull, 0xc1e0000000200000ull,
                       0xc1e0000000000000ull, 0x41f0000000000000ull, 0x43e0000000000000ull, 0xc3e0000000000000ull,
                       0x43f0000000000000ull, 0xbfefffffffffffffull, 0x41efffffffe00000ull, 0x0000000000000001ull})
      v.push_back({ValType::kF64, x});
  }
  return v;
}

std::vector<std::string> split(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string describe(const Result<CallOutcome>& r) {
  if (!r) return "error: " + r.status().to_string();
  std::ostringstream o;
  if (!r->ok()) o << "trap " << trap_kind_name(r->trap.kind);
  for (const Value& v : r->results) o << " " << v.bits;
  o << " fuel " << r->fuel_used;
  return o.str();
}

std::string ops_module() {
  std::ostringstream m;
  m << "(module\n";
  for (const Op& op : kOps) {
    auto ps = split(op.params);
    m << "  (func (export \"" << op.name << "\") (param";
    for (auto& p : ps) m << " " << p;
    m << ") (result " << op.result << ")";
    for (size_t i = 0; i < ps.size(); ++i) m << " local.get " << i;
    m << " " << op.name << ")\n";
  }
  m << ")\n";
  return m.str();
}

std::unique_ptr<Engine> make_engine(const Features& f = {}) {
  EngineConfig cfg;
  cfg.features = f;
  cfg.cache_dir = ::testing::TempDir() + "/covenant-tcc-writer-" + std::to_string(getpid());
  auto e = Engine::create(cfg);
  EXPECT_TRUE(e.is_ok());
  return std::move(*e);
}

std::vector<std::string> run_all(Engine& engine, const std::vector<uint8_t>& bytes, Tier tier) {
  std::vector<std::string> log;
  auto m = engine.load(bytes, {.tier = tier});
  if (!m) return {"load: " + m.status().to_string()};
  auto inst = (*m)->instantiate(Linker{});
  if (!inst) return {"instantiate: " + inst.status().to_string()};
  const auto& exports = (*m)->exports();
  for (uint32_t i = 0; i < exports.size(); ++i) {
    const auto& params = exports[i].type.params;
    std::vector<std::vector<Value>> arg_sets;
    auto type_name = [](ValType t) { return std::string(valtype_name(t)); };
    if (params.size() == 1) {
      for (const Value& a : edge_values(type_name(params[0]))) arg_sets.push_back({a});
    } else if (params.size() == 2) {
      for (const Value& a : edge_values(type_name(params[0])))
        for (const Value& b : edge_values(type_name(params[1]))) arg_sets.push_back({a, b});
    } else {
      arg_sets.push_back({});
    }
    for (const auto& args : arg_sets) {
      std::ostringstream l;
      l << exports[i].name << "(";
      for (const Value& a : args) l << a.bits << ",";
      l << ") = " << describe((*inst)->call(i, args, CallOptions{}));
      log.push_back(l.str());
    }
  }
  return log;
}

TEST(TccWriter, EveryOperatorOnEdgeValuesAgreesWithInterpAndOptimized) {
  auto bytes = wat(ops_module());
  ASSERT_FALSE(bytes.empty());
  auto engine = make_engine();
  auto ref = run_all(*engine, bytes, Tier::kInterp);
  auto base = run_all(*engine, bytes, Tier::kBaseline);
  auto opt = run_all(*engine, bytes, Tier::kOptimized);
  ASSERT_GT(ref.size(), 2000u) << ref[0];
  ASSERT_EQ(ref.size(), base.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(ref[i], base[i]) << "baseline";
  ASSERT_EQ(ref.size(), opt.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(ref[i], opt[i]) << "optimized";
}

// Wasm evaluates operands in order: a load that traps out of bounds must trap
// before a later division by zero, a store must not happen before an earlier
// operand's trap, and select evaluates both arms.
TEST(TccWriter, TrapOrderFollowsWasmEvaluationOrder) {
  auto bytes = wat(R"((module
    (memory 1)
    (global $g (mut i32) (i32.const 0))
    (func (export "load_then_div") (param i32 i32) (result i32)
      (i32.add (i32.load (local.get 0)) (i32.div_s (i32.const 1) (local.get 1))))
    (func (export "div_then_load") (param i32 i32) (result i32)
      (i32.add (i32.div_s (i32.const 1) (local.get 1)) (i32.load (local.get 0))))
    (func (export "select_both_arms") (param i32 i32) (result i32)
      (select (i32.const 7) (i32.load (local.get 0)) (local.get 1)))
    (func (export "global_after_load") (param i32 i32) (result i32)
      (global.set $g (local.get 1))
      (drop (i32.load (local.get 0)))
      (global.get $g))
    (func (export "tee_order") (param i32 i32) (result i32) (local i32)
      (local.set 2 (local.get 0))
      (i32.sub (local.get 2) (local.tee 2 (local.get 1))))
    (func (export "g") (param i32 i32) (result i32) (global.get $g))
  ))");
  ASSERT_FALSE(bytes.empty());
  auto engine = make_engine();
  auto ref = run_all(*engine, bytes, Tier::kInterp);
  auto base = run_all(*engine, bytes, Tier::kBaseline);
  ASSERT_GT(ref.size(), 100u) << ref[0];
  EXPECT_EQ(ref, base);
}

TEST(TccWriter, UnitIsSelfContainedAndRefusesMultiValue) {
  Features f;
  auto prep = prepare_module(wat(ops_module()), LoadLimits{}, f);
  ASSERT_TRUE(prep.is_ok()) << prep.status().to_string();
  auto c = generate_tcc_c(*prep, f);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->find("#include"), std::string::npos);

  f.multi_value = true;
  auto mv = wat(R"((module
    (func $two (result i32 i32) (i32.const 1) (i32.const 2))
    (func (export "sum") (result i32) (call $two) (i32.add))))");
  auto prep2 = prepare_module(mv, LoadLimits{}, f);
  ASSERT_TRUE(prep2.is_ok()) << prep2.status().to_string();
  auto c2 = generate_tcc_c(*prep2, f);
  ASSERT_FALSE(c2.is_ok());
  EXPECT_EQ(c2.status().code(), Code::kUnsupported);
  // The baseline tier still runs it, through wasm2c.
  auto engine = make_engine(f);
  auto m = engine->load(mv, {.tier = Tier::kBaseline});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  auto inst = (*m)->instantiate(Linker{});
  ASSERT_TRUE(inst.is_ok());
  auto r = (*inst)->call(0, {}, CallOptions{});
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r->ok());
  EXPECT_EQ(r->results[0].bits, 3u);
}

// memory.copy and memory.fill (what clang emits for memcpy/memset with bulk
// memory) are translated natively, not through the wasm2c fallback: edge
// addresses and lengths, out-of-bounds traps before any byte moves, fuel per
// byte, bit for bit with interp and optimized.
TEST(TccWriter, MemoryCopyAndFillAreNativeAndAgree) {
  auto bytes = wat(R"((module
    (memory 1 3)
    (func (export "fill") (param i32 i32) (memory.fill (local.get 0) (i32.const 0xab) (local.get 1)))
    (func (export "copy_from_100") (param i32 i32) (memory.copy (local.get 0) (i32.const 100) (local.get 1)))
    (func (export "copy_to_100") (param i32 i32) (memory.copy (i32.const 100) (local.get 0) (local.get 1)))
    (func (export "grow_fill") (param i32 i32)
      (drop (memory.grow (i32.const 1)))
      (memory.fill (local.get 0) (i32.load8_u (i32.const 100)) (local.get 1)))
    (func (export "sum") (param i32 i32) (result i64)
      (i64.add (i64.load (local.get 0)) (i64.load (i32.const 96))))
  ))");
  Features f;
  auto prep = prepare_module(bytes, LoadLimits{}, f);
  ASSERT_TRUE(prep.is_ok()) << prep.status().to_string();
  auto c = generate_tcc_c(*prep, f);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_NE(c->find("memmove(M + cd"), std::string::npos);
  auto engine = make_engine();
  auto ref = run_all(*engine, bytes, Tier::kInterp);
  auto base = run_all(*engine, bytes, Tier::kBaseline);
  auto opt = run_all(*engine, bytes, Tier::kOptimized);
  ASSERT_GT(ref.size(), 100u) << ref[0];
  EXPECT_EQ(ref, base);
  EXPECT_EQ(ref, opt);
}

// Not a timed test: reports the baseline's compile time (generate C + tcc +
// resolve symbols) for the modules named in COVENANT_COMPILE_TIME_FILES
// (space-separated), as CPU time of this thread, best of 5. docs/benchmarks.md
// quotes it.
TEST(TccWriter, CompileTimeReport) {
  const char* files = std::getenv("COVENANT_COMPILE_TIME_FILES");
  if (!files) GTEST_SKIP() << "set COVENANT_COMPILE_TIME_FILES to report compile times";
  auto cpu_us = [] {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
  };
  std::istringstream in(files);
  for (std::string path; in >> path;) {
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    ASSERT_FALSE(bytes.empty()) << path;
    Features features;
    auto prep = prepare_module(bytes, LoadLimits{}, features);
    ASSERT_TRUE(prep.is_ok()) << path << ": " << prep.status().to_string();
    EngineConfig cfg;
    double best = 1e18;
    for (int i = 0; i < 5; ++i) {
      double t0 = cpu_us();
      auto code = compile_baseline(*prep, cfg, nullptr);
      double t = cpu_us() - t0;
      ASSERT_TRUE(code.is_ok()) << path << ": " << code.status().to_string();
      best = std::min(best, t);
    }
    std::printf("%s: %zu bytes, baseline compile %.2f ms (%.1f ms per 100 KiB)\n", path.c_str(), bytes.size(),
                best / 1000, best / 1000 * 102400 / bytes.size());
  }
}

}  // namespace
}  // namespace covenant::wasm
