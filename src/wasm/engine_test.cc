// Engine API tests: tiers, host functions, the linker's errors, limits, the
// typed API, the auto tier and the artifact cache. The adversarial corpus and
// the differential tests live in tests/engine/ and differential_test.cc.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "covenant/engine.h"
#include "wasm/wat_test_util.h"
#include "wabt/ir.h"
#include "wabt/validator.h"
#include "wasm/cache.h"

namespace covenant {
namespace {

namespace fs = std::filesystem;

using wasm_test::wat;

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/covenant-" + name + "-" + std::to_string(getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::unique_ptr<Engine> engine_in(const std::string& dir) {
  EngineConfig cfg;
  cfg.cache_dir = dir;
  auto e = Engine::create(cfg);
  EXPECT_TRUE(e.is_ok());
  return std::move(*e);
}

const char* kAddWat = R"((module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)))";

class EngineTiers : public ::testing::TestWithParam<Tier> {};

TEST_P(EngineTiers, AddsAndCountsFuel) {
  auto engine = engine_in(fresh_dir("tiers"));
  auto module = engine->load(wat(kAddWat), {.tier = GetParam()});
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

TEST_P(EngineTiers, HostFunctionsReadMemoryAndTrap) {
  auto engine = engine_in(fresh_dir("host"));
  auto module = engine->load(wat(R"((module
      (import "env" "sum_bytes" (func $sum (param i32 i32) (result i32)))
      (import "env" "fail" (func $fail (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 8) "\01\02\03\04")
      (func (export "sum") (result i32) i32.const 8 i32.const 4 call $sum)
      (func (export "boom") i32.const 7 call $fail))
  )"),
                             {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok()) << module.status().to_string();
  Linker linker;
  linker.define("env", "sum_bytes", {{ValType::kI32, ValType::kI32}, {ValType::kI32}},
                [](HostCall& call, std::span<const Value> args, std::span<Value> results) {
                  auto mem = call.memory();
                  uint32_t p = static_cast<uint32_t>(args[0].bits), n = static_cast<uint32_t>(args[1].bits);
                  if (uint64_t(p) + n > mem.size()) return HostResult::trap("range outside memory");
                  int32_t s = 0;
                  for (uint32_t i = 0; i < n; ++i) s += mem[p + i];
                  results[0] = Value::i32(s);
                  return HostResult::ok();
                });
  linker.define("env", "fail", {{ValType::kI32}, {}},
                [](HostCall&, std::span<const Value> args, std::span<Value>) {
                  return HostResult::trap("refused with code " + std::to_string(args[0].as_i32()));
                });
  auto inst = (*module)->instantiate(linker);
  ASSERT_TRUE(inst.is_ok()) << inst.status().to_string();
  auto out = (*inst)->call("sum", {});
  ASSERT_TRUE(out.is_ok() && out->ok()) << out->trap.message;
  EXPECT_EQ(out->results[0].as_i32(), 10);
  auto boom = (*inst)->call("boom", {});
  ASSERT_TRUE(boom.is_ok());
  EXPECT_EQ(boom->trap.kind, TrapKind::kHost);
  EXPECT_NE(boom->trap.message.find("refused with code 7"), std::string::npos) << boom->trap.message;
  // The instance still works after a host trap.
  out = (*inst)->call("sum", {});
  ASSERT_TRUE(out.is_ok() && out->ok());
}

// A host function calls back into its instance (as a canonical ABI lowering
// calls cabi_realloc): the nested call shares the calling call's fuel, depth
// and deadline; a trap inside it traps the whole call with its own kind,
// whatever the host function returns. Figures are compared across tiers.
struct NestedRun {
  std::vector<int64_t> results;
  std::vector<uint64_t> fuel;
  std::vector<TrapKind> kinds;
};

NestedRun run_nested(Tier tier) {
  auto engine = engine_in(fresh_dir("nested"));
  auto module = engine->load(wat(R"((module
      (import "env" "back" (func $back (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (global $calls (mut i32) (i32.const 0))
      ;; burns n loop iterations, counts its calls, returns x*2
      (func $twice (export "twice") (param $x i32) (param $n i32) (result i32)
        global.get $calls i32.const 1 i32.add global.set $calls
        (block (loop (br_if 1 (i32.eqz (local.get $n)))
                     (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
        local.get $x i32.const 2 i32.mul)
      (func (export "boom") (param i32 i32) (result i32) unreachable)
      (func $deep (export "deep") (param $x i32) (param $n i32) (result i32)
        (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 0))
          (else (call $deep (local.get $x) (i32.sub (local.get $n) (i32.const 1))))))
      (func (export "writes") (param i32 i32) (result i32)
        (i32.store (i32.const 64) (i32.const 77)) (i32.const 64))
      ;; outer(which, x, n): back(which, x) + 1; the host calls export `which` with (x, n)
      (func (export "outer") (param $which i32) (param $x i32) (result i32)
        local.get $which local.get $x call $back i32.const 1 i32.add)
      (func (export "calls") (result i32) global.get $calls))
  )"),
                             {.tier = tier});
  EXPECT_TRUE(module.is_ok()) << module.status().to_string();
  NestedRun out;
  if (!module.is_ok()) return out;
  Linker linker;
  // which: 0 twice(x, 10), 1 boom, 2 twice(x, 100000) (fuel), 3 deep(x, 100000) (depth),
  // 4 boom but the host ignores the trap, 5 writes -> host reads the memory it wrote.
  linker.define("env", "back", {{ValType::kI32, ValType::kI32}, {ValType::kI32}},
                [](HostCall& call, std::span<const Value> args, std::span<Value> results) {
                  const uint32_t which = static_cast<uint32_t>(args[0].bits);
                  static const uint32_t kExport[] = {0, 1, 0, 2, 1, 3};
                  static const uint64_t kIterations[] = {10, 0, 100000, 100000, 0, 0};
                  uint64_t slots[2] = {args[1].bits & 0xffffffffu, kIterations[which]};
                  const TrapKind k = call.call_export(kExport[which], slots);
                  if (which == 4) {  // pretends all is well
                    results[0] = Value::i32(0);
                    return HostResult::ok();
                  }
                  if (k != TrapKind::kNone) return HostResult::trap(std::string("nested: ") + trap_kind_name(k));
                  if (which == 5) {
                    auto mem = call.memory();
                    uint32_t v = 0;
                    std::memcpy(&v, mem.data() + static_cast<uint32_t>(slots[0]), 4);
                    results[0] = Value::i32(static_cast<int32_t>(v));
                    return HostResult::ok();
                  }
                  results[0] = Value::i32(static_cast<int32_t>(slots[0]));
                  return HostResult::ok();
                });
  auto inst = (*module)->instantiate(linker);
  EXPECT_TRUE(inst.is_ok()) << inst.status().to_string();
  if (!inst.is_ok()) return out;
  for (int which : {0, 1, 0, 2, 3, 4, 5, 0}) {
    Value a[] = {Value::i32(which), Value::i32(21)};
    auto r = (*inst)->call("outer", a, {.fuel = uint64_t(which == 2 ? 50'000 : 10'000'000)});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok()) return out;
    out.results.push_back(r->ok() ? r->results[0].as_i32() : -1);
    out.fuel.push_back(r->fuel_used);
    out.kinds.push_back(r->trap.kind);
  }
  auto c = (*inst)->call("calls", {});
  out.results.push_back(c.is_ok() && c->ok() ? c->results[0].as_i32() : -1);
  return out;
}

TEST(EngineNested, HostFunctionsCallBackIntoTheirInstanceIdenticallyOnEveryTier) {
  const NestedRun interp = run_nested(Tier::kInterp);
  ASSERT_EQ(interp.kinds.size(), 8u);
  EXPECT_EQ(interp.results[0], 43);  // twice(21) + 1
  EXPECT_EQ(interp.kinds[1], TrapKind::kUnreachable);
  EXPECT_EQ(interp.results[2], 43) << "the instance works after a nested trap";
  EXPECT_EQ(interp.kinds[3], TrapKind::kOutOfFuel);
  EXPECT_EQ(interp.fuel[3], 50'000u) << "the nested call spends the calling call's budget";
  EXPECT_EQ(interp.kinds[4], TrapKind::kStackExhausted);
  EXPECT_EQ(interp.kinds[5], TrapKind::kUnreachable) << "a nested trap the host ignores still traps the call";
  EXPECT_EQ(interp.results[6], 78);  // 77 written by the nested call, read by the host, + 1
  EXPECT_GT(interp.fuel[0], 30u) << "nested fuel is counted in the calling call";
  for (Tier t : {Tier::kBaseline, Tier::kOptimized}) {
    const NestedRun other = run_nested(t);
    EXPECT_EQ(other.results, interp.results) << tier_name(t);
    EXPECT_EQ(other.fuel, interp.fuel) << tier_name(t);
    EXPECT_EQ(other.kinds, interp.kinds) << tier_name(t);
  }
}

// Depth across a host function reached through a table: the outer frames,
// the import called by call_indirect and the host's nested call count as one
// chain against call_depth_max, identically on every tier. rec(n) recurses n
// deep, then calls the import through the table; the host calls rec(m) back.
std::vector<std::string> run_depth_chain(Tier tier, uint32_t depth_max) {
  EngineConfig cfg;
  cfg.cache_dir = fresh_dir("chain");
  cfg.load_limits.call_depth_max = depth_max;
  auto engine = Engine::create(cfg).value();
  LoadOptions lo;
  lo.tier = tier;
  auto module = engine->load(wat(R"((module
      (import "env" "h" (func $h (param i32) (result i32)))
      (type $i_i (func (param i32) (result i32)))
      (table 2 funcref)
      (elem (i32.const 0) $h $rec)
      (func $rec (export "rec") (param $n i32) (result i32)
        (if (result i32) (i32.eqz (local.get $n))
          (then (call_indirect (type $i_i) (i32.const 0) (i32.const 0)))
          (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get $n) (i32.const 1)))))))
      (func (export "via_table") (param i32) (result i32)
        (call_indirect (type $i_i) (local.get 0) (i32.const 1))))
  )"),
                             lo);
  EXPECT_TRUE(module.is_ok()) << module.status().to_string();
  if (!module.is_ok()) return {};
  static thread_local uint32_t back_depth = 0;  // the host's nested rec(m), once
  Linker linker;
  linker.define("env", "h", {{ValType::kI32}, {ValType::kI32}},
                [](HostCall& call, std::span<const Value>, std::span<Value> results) {
                  if (back_depth == 0) {
                    results[0] = Value::i32(1000);
                    return HostResult::ok();
                  }
                  uint64_t slots[1] = {back_depth};
                  back_depth = 0;
                  const TrapKind k = call.call_export(0, slots);  // export 0: rec
                  if (k != TrapKind::kNone) return HostResult::trap(trap_kind_name(k));
                  results[0] = Value::i32(static_cast<int32_t>(slots[0]));
                  return HostResult::ok();
                });
  auto inst = (*module)->instantiate(linker);
  EXPECT_TRUE(inst.is_ok()) << inst.status().to_string();
  if (!inst.is_ok()) return {};
  std::vector<std::string> out;
  auto observe = [&](const Result<CallOutcome>& r) {
    if (!r.is_ok()) out.push_back("error");
    else if (!r->ok()) out.push_back(std::string(trap_kind_name(r->trap.kind)) + " fuel " + std::to_string(r->fuel_used));
    else out.push_back(std::to_string(r->results[0].as_i32()) + " fuel " + std::to_string(r->fuel_used));
  };
  const uint32_t n = 10;
  for (uint32_t m : {depth_max - n - 3, depth_max - n - 2, depth_max - n - 1}) {
    back_depth = m;
    Value a[] = {Value::i32(static_cast<int32_t>(n))};
    observe((*inst)->call("rec", a));
  }
  back_depth = 0;
  Value one[] = {Value::i32(5)};
  observe((*inst)->call("via_table", one));  // rec(5) through the table, then h
  return out;
}

TEST(EngineNested, DepthCountsTheWholeChainThroughTablesAndHostCalls) {
  const uint32_t depth_max = 300;
  const auto interp = run_depth_chain(Tier::kInterp, depth_max);
  ASSERT_EQ(interp.size(), 4u);
  // rec(10): 11 calling frames; rec(0) calls h through the table (cvdepth 11);
  // the host's rec(m) goes on from there: m + 12 frames in all.
  EXPECT_EQ(interp[0].substr(0, 4), "1297") << interp[0];  // 10 + (287 + 1000)
  EXPECT_EQ(interp[1].substr(0, 4), "1298") << interp[1];  // m = 288: 300 frames exactly
  EXPECT_EQ(interp[2].rfind("stack_exhausted", 0), 0u) << interp[2];
  EXPECT_EQ(interp[3].substr(0, 4), "1005") << interp[3];
  for (Tier t : {Tier::kBaseline, Tier::kOptimized})
    EXPECT_EQ(run_depth_chain(t, depth_max), interp) << tier_name(t);
}

TEST_P(EngineTiers, InstancesOutliveTheirLinker) {
  auto engine = engine_in(fresh_dir("linker-life"));
  auto module = engine->load(wat(R"((module (import "env" "seven" (func $s (result i32)))
      (func (export "f") (result i32) call $s)))"),
                             {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok());
  std::unique_ptr<Instance> inst;
  {
    Linker linker;
    linker.define("env", "seven", {{}, {ValType::kI32}}, [](HostCall&, std::span<const Value>, std::span<Value> r) {
      r[0] = Value::i32(7);
      return HostResult::ok();
    });
    auto i = (*module)->instantiate(linker);
    ASSERT_TRUE(i.is_ok());
    inst = std::move(*i);
  }  // the Linker is gone
  auto out = inst->call("f", {});
  ASSERT_TRUE(out.is_ok() && out->ok());
  EXPECT_EQ(out->results[0].as_i32(), 7);
}

TEST_P(EngineTiers, UnresolvedAndMistypedImportsNameModuleFieldAndType) {
  auto engine = engine_in(fresh_dir("imports"));
  auto module = engine->load(wat(R"((module (import "env" "clock" (func (result i64)))))"), {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok());
  auto none = (*module)->instantiate(Linker{});
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("\"env\" \"clock\""), std::string::npos) << none.status().message();
  EXPECT_NE(none.status().message().find("() -> (i64)"), std::string::npos) << none.status().message();
  Linker wrong;
  wrong.define("env", "clock", {{}, {ValType::kI32}},
               [](HostCall&, std::span<const Value>, std::span<Value>) { return HostResult::ok(); });
  auto mistyped = (*module)->instantiate(wrong);
  ASSERT_FALSE(mistyped.is_ok());
  EXPECT_NE(mistyped.status().message().find("expects type () -> (i64)"), std::string::npos)
      << mistyped.status().message();
  EXPECT_NE(mistyped.status().message().find("() -> (i32)"), std::string::npos);
}

TEST_P(EngineTiers, TypedFuncChecksSignatureAndCalls) {
  auto engine = engine_in(fresh_dir("typed"));
  auto module = engine->load(wat(kAddWat), {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok());
  auto inst = (*module)->instantiate(Linker{});
  ASSERT_TRUE(inst.is_ok());
  auto bad = TypedFunc<int64_t(int32_t, int32_t)>::bind(**inst, "add");
  EXPECT_FALSE(bad.is_ok());
  auto add = TypedFunc<int32_t(int32_t, int32_t)>::bind(**inst, "add");
  ASSERT_TRUE(add.is_ok()) << add.status().to_string();
  int32_t r = 0;
  uint64_t used = 0;
  EXPECT_EQ(add->call(&r, 100, &used, -5, 12), TrapKind::kNone);
  EXPECT_EQ(r, 7);
  EXPECT_EQ(used, 3u);
  EXPECT_EQ(add->call(&r, 2, &used, 1, 1), TrapKind::kOutOfFuel);
  EXPECT_EQ(used, 2u);
}

TEST_P(EngineTiers, MemoryCapStopsGrowth) {
  auto engine = engine_in(fresh_dir("memcap"));
  auto module = engine->load(wat(R"((module (memory 1)
      (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)))"),
                             {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok());
  auto inst = (*module)->instantiate(Linker{}, {.memory_bytes_max = 4 * kWasmPageBytes});
  ASSERT_TRUE(inst.is_ok());
  Value three[] = {Value::i32(3)}, one[] = {Value::i32(1)};
  auto out = (*inst)->call("grow", three);
  ASSERT_TRUE(out.is_ok() && out->ok());
  EXPECT_EQ(out->results[0].as_i32(), 1);  // 1 -> 4 pages
  out = (*inst)->call("grow", one);
  ASSERT_TRUE(out.is_ok() && out->ok());
  EXPECT_EQ(out->results[0].as_i32(), -1);  // past the cap
}

TEST_P(EngineTiers, DeadlineStopsARunawayCall) {
  auto engine = engine_in(fresh_dir("deadline"));
  auto module = engine->load(wat(R"((module (func (export "spin") (loop br 0))))"), {.tier = GetParam()});
  ASSERT_TRUE(module.is_ok());
  auto inst = (*module)->instantiate(Linker{});
  ASSERT_TRUE(inst.is_ok());
  auto t0 = std::chrono::steady_clock::now();
  auto out = (*inst)->call("spin", {}, {.fuel = UINT64_MAX / 2, .deadline_ms = 50});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->trap.kind, TrapKind::kDeadline);
  EXPECT_LT(ms, 5000);
}

INSTANTIATE_TEST_SUITE_P(All, EngineTiers, ::testing::Values(Tier::kInterp, Tier::kBaseline, Tier::kOptimized),
                         [](const auto& info) { return std::string(tier_name(info.param)); });

TEST(EngineLimits, EachStaticLimitIsNamed) {
  struct Case {
    const char* wat;
    void (*set)(LoadLimits&);
    const char* name;
  };
  const Case cases[] = {
      {"(module (func) (func) (func))", [](LoadLimits& l) { l.functions_max = 2; }, "functions_max"},
      {"(module (import \"a\" \"b\" (func)) (import \"a\" \"c\" (func)))", [](LoadLimits& l) { l.imports_max = 1; },
       "imports_max"},
      {"(module (func (export \"a\")) (func (export \"b\")))", [](LoadLimits& l) { l.exports_max = 1; }, "exports_max"},
      {"(module (func (local i32 i32 i32)))", [](LoadLimits& l) { l.locals_per_function_max = 2; },
       "locals_per_function_max"},
      {"(module (func nop nop nop nop nop nop nop nop))", [](LoadLimits& l) { l.function_body_size_bytes_max = 4; },
       "function_body_size_bytes_max"},
      {"(module (memory 3))", [](LoadLimits& l) { l.memory_initial_pages_max = 2; }, "memory_initial_pages_max"},
      {"(module (memory 1 9))", [](LoadLimits& l) { l.memory_max_pages_max = 8; }, "memory_max_pages_max"},
      {"(module (table 5 funcref))", [](LoadLimits& l) { l.table_initial_elements_max = 4; },
       "table_initial_elements_max"},
      {"(module (table 1 10 funcref))", [](LoadLimits& l) { l.table_max_elements_max = 9; }, "table_max_elements_max"},
      {"(module (memory 1) (data (i32.const 0) \"abcdef\"))", [](LoadLimits& l) { l.data_segment_size_bytes_max = 5; },
       "data_segment_size_bytes_max"},
      {"(module (func (block (loop (if (i32.const 1) (then (block)))))))", [](LoadLimits& l) { l.block_nesting_max = 3; },
       "block_nesting_max"},
  };
  for (const Case& c : cases) {
    EngineConfig cfg;
    c.set(cfg.load_limits);
    auto engine = Engine::create(cfg);
    ASSERT_TRUE(engine.is_ok());
    auto m = (*engine)->load(wat(c.wat), {.tier = Tier::kInterp});
    ASSERT_FALSE(m.is_ok()) << c.name;
    EXPECT_EQ(m.status().code(), Code::kLimitExceeded) << c.name;
    EXPECT_NE(m.status().message().find(c.name), std::string::npos) << m.status().message();
  }
}

TEST(EngineLimits, HostileNestingIsRefusedNotACrash) {
  // 200,000 nested blocks: recursion in any stage would overflow the host.
  std::vector<uint8_t> b = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0};
  std::vector<uint8_t> body = {0};  // no locals
  for (int i = 0; i < 200000; ++i) body.insert(body.end(), {0x02, 0x40});
  for (int i = 0; i < 200000; ++i) body.push_back(0x0b);
  body.push_back(0x0b);
  auto leb = [](std::vector<uint8_t>& out, uint32_t v) {
    do {
      uint8_t c = v & 0x7f;
      v >>= 7;
      out.push_back(c | (v ? 0x80 : 0));
    } while (v);
  };
  std::vector<uint8_t> code = {1};
  leb(code, static_cast<uint32_t>(body.size()));
  code.insert(code.end(), body.begin(), body.end());
  b.push_back(10);
  leb(b, static_cast<uint32_t>(code.size()));
  b.insert(b.end(), code.begin(), code.end());
  auto engine = engine_in(fresh_dir("nesting"));
  auto m = engine->load(b, {.tier = Tier::kInterp});
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("block_nesting_max"), std::string::npos) << m.status().message();
}

TEST(EngineProfile, RefusesNonDeterministicFeaturesAndNamesThem) {
  auto engine = engine_in(fresh_dir("profile"));
  auto shared = engine->load(wat("(module (memory 1 1 shared))"), {.tier = Tier::kInterp});
  ASSERT_FALSE(shared.is_ok());
  auto fill = engine->load(wat("(module (memory 1) (func i32.const 0 i32.const 0 i32.const 1 memory.fill))"),
                           {.tier = Tier::kInterp});
  ASSERT_FALSE(fill.is_ok());
  EXPECT_NE(fill.status().message().find("offset"), std::string::npos) << fill.status().message();
  EngineConfig no_floats;
  no_floats.features.floats = false;
  auto e2 = Engine::create(no_floats);
  auto f = (*e2)->load(wat("(module (func (result f32) f32.const 1))"), {.tier = Tier::kInterp});
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().code(), Code::kUnsupported);
}

TEST(EngineFloats, NaNsAreCanonicalOnEveryTier) {
  auto engine = engine_in(fresh_dir("nan"));
  // A signalling NaN payload through add must come out as the canonical NaN.
  auto bytes = wat(R"((module (func (export "f") (param f32) (result i32)
      local.get 0 f32.const 0 f32.add i32.reinterpret_f32)
      (func (export "neg") (param f64) (result i64) local.get 0 f64.neg i64.reinterpret_f64)))");
  for (Tier t : {Tier::kInterp, Tier::kBaseline, Tier::kOptimized}) {
    auto m = engine->load(bytes, {.tier = t});
    ASSERT_TRUE(m.is_ok());
    auto inst = (*m)->instantiate(Linker{});
    ASSERT_TRUE(inst.is_ok());
    Value arg[] = {Value::f32_bits(0xffa00001u)};
    auto out = (*inst)->call("f", arg);
    ASSERT_TRUE(out.is_ok() && out->ok());
    EXPECT_EQ(uint32_t(out->results[0].bits), 0x7fc00000u) << tier_name(t);
    Value nan[] = {Value::f64_bits(0x7ff8000000000001ull)};
    out = (*inst)->call("neg", nan);
    ASSERT_TRUE(out.is_ok() && out->ok());
    EXPECT_EQ(out->results[0].bits, 0xfff8000000000001ull) << tier_name(t);  // neg flips only the sign
  }
}

TEST(EngineAuto, StartsOnBaselineAndSwitchesToOptimized) {
  auto engine = engine_in(fresh_dir("auto"));
  auto module = engine->load(wat(kAddWat), {.tier = Tier::kAuto});
  ASSERT_TRUE(module.is_ok());
  auto inst = (*module)->instantiate(Linker{});
  ASSERT_TRUE(inst.is_ok());
  Value args[] = {Value::i32(1), Value::i32(2)};
  // Calls never wait for the optimized compile and never fail meanwhile.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int calls = 0;
  while ((*module)->tier() != Tier::kOptimized && std::chrono::steady_clock::now() < deadline) {
    auto out = (*inst)->call("add", args);
    ASSERT_TRUE(out.is_ok() && out->ok());
    EXPECT_EQ(out->results[0].as_i32(), 3);
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ((*module)->tier(), Tier::kOptimized);
  EXPECT_GT(calls, 0);
  auto out = (*inst)->call("add", args);  // the live instance now runs optimized code
  ASSERT_TRUE(out.is_ok() && out->ok());
  EXPECT_EQ(out->results[0].as_i32(), 3);
  EXPECT_EQ(out->fuel_used, 3u);
}

// --- Artifact cache ---------------------------------------------------------

std::vector<fs::path> artifacts(const std::string& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".so" && e.path().parent_path().filename() != "tmp") out.push_back(e.path());
  return out;
}

TEST(ArtifactCache, WarmLoadHitsAndTamperedArtifactIsRebuiltNotLoaded) {
  std::string dir = fresh_dir("cache");
  auto bytes = wat(kAddWat);
  {
    auto m = engine_in(dir)->load(bytes, {.tier = Tier::kOptimized});
    ASSERT_TRUE(m.is_ok());
    EXPECT_FALSE((*m)->load_timings().cache_hit);
  }
  {
    auto m = engine_in(dir)->load(bytes, {.tier = Tier::kOptimized});
    ASSERT_TRUE(m.is_ok());
    EXPECT_TRUE((*m)->load_timings().cache_hit);
  }
  auto files = artifacts(dir);
  ASSERT_EQ(files.size(), 1u);
  const struct {
    const char* what;
    void (*damage)(const fs::path&);
  } damages[] = {
      {"flipped byte", [](const fs::path& p) {
         std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
         f.seekg(200);
         char c;
         f.get(c);
         f.seekp(200);
         f.put(static_cast<char>(c ^ 0x40));
       }},
      {"truncated", [](const fs::path& p) { fs::resize_file(p, fs::file_size(p) / 2); }},
  };
  for (const auto& d : damages) {
    d.damage(files[0]);
    std::vector<std::string> progress;
    auto m = engine_in(dir)->load(bytes, {.tier = Tier::kOptimized,
                                          .progress = [&](std::string_view l) { progress.emplace_back(l); }});
    ASSERT_TRUE(m.is_ok()) << d.what;
    EXPECT_FALSE((*m)->load_timings().cache_hit) << d.what;
    bool reported = false;
    for (auto& l : progress) reported |= l.find("rebuilding") != std::string::npos;
    EXPECT_TRUE(reported) << d.what;
    auto inst = (*m)->instantiate(Linker{});
    ASSERT_TRUE(inst.is_ok());
    Value args[] = {Value::i32(2), Value::i32(3)};
    auto out = (*inst)->call("add", args);
    ASSERT_TRUE(out.is_ok() && out->ok());
    EXPECT_EQ(out->results[0].as_i32(), 5);
  }
}

TEST(ArtifactCache, ProcessesShareOneDirectory) {
  std::string dir = fresh_dir("shared");
  auto bytes = wat(kAddWat);
  std::vector<pid_t> kids;
  for (int i = 0; i < 4; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      EngineConfig cfg;
      cfg.cache_dir = dir;
      auto e = Engine::create(cfg);
      auto m = (*e)->load(bytes, {.tier = Tier::kOptimized});
      if (!m) _exit(1);
      auto inst = (*m)->instantiate(Linker{});
      Value args[] = {Value::i32(20), Value::i32(22)};
      auto out = (*inst)->call("add", args);
      _exit(out.is_ok() && out->ok() && out->results[0].as_i32() == 42 ? 0 : 2);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(artifacts(dir).size(), 1u);
}

TEST(ArtifactCache, EvictsLeastRecentlyUsedPastTheBound) {
  std::string dir = fresh_dir("evict");
  EngineConfig cfg;
  cfg.cache_dir = dir;
  cfg.cache_size_bytes_max = 1;  // every new artifact evicts the older ones
  auto engine = Engine::create(cfg);
  ASSERT_TRUE(engine.is_ok());
  for (int i = 0; i < 3; ++i) {
    std::string w = "(module (func (export \"k\") (result i32) i32.const " + std::to_string(i) + "))";
    auto m = (*engine)->load(wat(w), {.tier = Tier::kOptimized});
    ASSERT_TRUE(m.is_ok());
  }
  EXPECT_LE(artifacts(dir).size(), 1u);
}

TEST(ArtifactCache, KeyCoversCompilerFlags) {
  EngineConfig a, b;
  b.cc_flags = {"-O1"};
  auto bytes = wat(kAddWat);
  EXPECT_NE(wasm::ArtifactCache(a).key(bytes, "optimized"), wasm::ArtifactCache(b).key(bytes, "optimized"));
  EXPECT_NE(wasm::ArtifactCache(a).key(bytes, "optimized"), wasm::ArtifactCache(a).key(bytes, "baseline"));
}

}  // namespace
}  // namespace covenant
