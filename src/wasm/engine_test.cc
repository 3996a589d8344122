// Engine API tests: tiers, host functions, the linker's errors, limits, the
// typed API, the auto tier and the artifact cache. The adversarial corpus and
// the differential tests live in tests/engine/ and differential_test.cc.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "covenant/engine.h"
#include "wasm/wat_test_util.h"
#include "wabt/ir.h"
#include "wabt/validator.h"
#include "wabt/resolve-names.h"
#include "wabt/binary-writer.h"
#include "wabt/stream.h"
#include "wabt/wast-lexer.h"
#include "wabt/wast-parser.h"
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

// Re-entrancy at every nesting level: f(n) calls the host, which calls f(n-1)
// back, ... until f(0) traps (or g(0) returns). A trap two host calls deep
// killed the interp tier with SIGSEGV (issue 9); every tier must give the
// typed trap, the same fuel, and go on working.
std::vector<std::string> run_reentrant(Tier tier) {
  auto engine = engine_in(fresh_dir("reentrant"));
  auto module = engine->load(wat(R"((module
      (import "env" "hf" (func $hf (param i32) (result i32)))
      (import "env" "hg" (func $hg (param i32) (result i32)))
      (func $f (export "f") (param $n i32) (result i32)
        (if (i32.eqz (local.get $n)) (then unreachable))
        (i32.add (i32.const 1) (call $hf (i32.sub (local.get $n) (i32.const 1)))))
      (func $g (export "g") (param $n i32) (result i32)
        (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 100))
          (else (i32.add (i32.const 1) (call $hg (i32.sub (local.get $n) (i32.const 1))))))))
  )"),
                             {.tier = tier});
  EXPECT_TRUE(module.is_ok()) << module.status().to_string();
  if (!module.is_ok()) return {};
  Linker linker;
  for (uint32_t which : {0u, 1u}) {  // hf calls export 0 (f) back, hg export 1 (g)
    linker.define("env", which == 0 ? "hf" : "hg", {{ValType::kI32}, {ValType::kI32}},
                  [which](HostCall& call, std::span<const Value> args, std::span<Value> results) {
                    uint64_t slots[1] = {args[0].bits & 0xffffffffu};
                    const TrapKind k = call.call_export(which, slots);
                    if (k != TrapKind::kNone) return HostResult::trap(std::string("nested: ") + trap_kind_name(k));
                    results[0] = Value::i32(static_cast<int32_t>(slots[0]));
                    return HostResult::ok();
                  });
  }
  auto inst = (*module)->instantiate(linker);
  EXPECT_TRUE(inst.is_ok()) << inst.status().to_string();
  if (!inst.is_ok()) return {};
  std::vector<std::string> out;
  // Two deep first, on a fresh instance: the reported crash.
  for (auto [name, n] : std::vector<std::pair<const char*, int>>{
           {"f", 2}, {"f", 1}, {"f", 6}, {"g", 6}, {"f", 3}, {"g", 40}, {"f", 40}, {"g", 0}}) {
    Value a[] = {Value::i32(n)};
    auto r = (*inst)->call(name, a);
    if (!r.is_ok()) out.push_back("error " + r.status().to_string());
    else if (!r->ok()) out.push_back(std::string(trap_kind_name(r->trap.kind)) + " fuel " + std::to_string(r->fuel_used));
    else out.push_back(std::to_string(r->results[0].as_i32()) + " fuel " + std::to_string(r->fuel_used));
  }
  return out;
}

TEST(EngineNested, ATrapAtAnyNestingLevelIsTypedOnEveryTier) {
  const auto interp = run_reentrant(Tier::kInterp);
  ASSERT_EQ(interp.size(), 8u);
  for (size_t i : {0u, 1u, 2u, 4u, 6u}) EXPECT_EQ(interp[i].rfind("unreachable fuel ", 0), 0u) << interp[i];
  EXPECT_EQ(interp[3].rfind("106 fuel ", 0), 0u) << interp[3];
  EXPECT_EQ(interp[5].rfind("140 fuel ", 0), 0u) << interp[5];
  EXPECT_EQ(interp[7].rfind("100 fuel ", 0), 0u) << interp[7];
  for (Tier t : {Tier::kBaseline, Tier::kOptimized}) EXPECT_EQ(run_reentrant(t), interp) << tier_name(t);
}

// A host function may call another instance (the spec driver's registered
// modules, an embedder composing contracts). That call used to clear the
// calling thread's trap landing pad on the C tiers, so a trap of the calling
// guest afterwards killed the process (SIGSEGV). Every tier: typed trap, and
// the instances go on working.
std::vector<std::string> run_cross_instance(Tier tier) {
  auto engine = engine_in(fresh_dir("cross"));
  auto callee = engine->load(wat(R"((module
      (func (export "inc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
      (func (export "boom") (param i32) (result i32) unreachable))
  )"),
                             {.tier = tier});
  auto caller = engine->load(wat(R"((module
      (import "env" "other" (func $other (param i32) (result i32)))
      (func (export "f") (param $n i32) (result i32) (local $r i32)
        (local.set $r (call $other (local.get $n)))
        (if (i32.eq (local.get $n) (i32.const 7)) (then unreachable))
        (local.get $r))
      (func (export "load") (param $a i32) (result i32)
        (drop (call $other (local.get $a)))
        (i32.load (local.get $a)))
      (memory 1))
  )"),
                             {.tier = tier});
  EXPECT_TRUE(callee.is_ok() && caller.is_ok());
  if (!callee.is_ok() || !caller.is_ok()) return {};
  auto b = (*callee)->instantiate(Linker{});
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  if (!b.is_ok()) return {};
  Instance* other = b->get();
  Linker linker;
  linker.define("env", "other", {{ValType::kI32}, {ValType::kI32}},
                [other](HostCall&, std::span<const Value> args, std::span<Value> results) {
                  const int32_t n = args[0].as_i32();
                  Value a[] = {Value::i32(n)};
                  auto r = other->call(n == 9 ? "boom" : "inc", a, {.fuel = 1'000'000});
                  if (!r.is_ok()) return HostResult::trap(r.status().message());
                  results[0] = Value::i32(r->ok() ? r->results[0].as_i32() : -1);  // a callee trap is an answer here
                  return HostResult::ok();
                });
  auto a = (*caller)->instantiate(linker);
  EXPECT_TRUE(a.is_ok()) << a.status().to_string();
  if (!a.is_ok()) return {};
  std::vector<std::string> out;
  auto run = [&](const char* name, int32_t n) {
    Value args[] = {Value::i32(n)};
    auto r = (*a)->call(name, args, {.fuel = 1'000'000});
    if (!r.is_ok()) out.push_back("error " + r.status().message());
    else if (!r->ok()) out.push_back(std::string(trap_kind_name(r->trap.kind)) + " fuel " + std::to_string(r->fuel_used));
    else out.push_back(std::to_string(r->results[0].as_i32()) + " fuel " + std::to_string(r->fuel_used));
  };
  run("f", 3);        // 4
  run("f", 7);        // the caller traps after the other instance returned
  run("f", 3);        // and works again
  run("f", 9);        // the other instance traps: -1, the caller goes on
  run("load", 70000); // out of bounds in the caller after the other call
  run("f", 5);        // 6
  return out;
}

TEST(EngineNested, HostFunctionsMayCallAnotherInstanceOnEveryTier) {
  const auto interp = run_cross_instance(Tier::kInterp);
  ASSERT_EQ(interp.size(), 6u);
  EXPECT_EQ(interp[0].rfind("4 fuel ", 0), 0u) << interp[0];
  EXPECT_EQ(interp[1].rfind("unreachable fuel ", 0), 0u) << interp[1];
  EXPECT_EQ(interp[2].rfind("4 fuel ", 0), 0u) << interp[2];
  EXPECT_EQ(interp[3].rfind("-1 fuel ", 0), 0u) << interp[3];
  EXPECT_EQ(interp[4].rfind("memory_out_of_bounds fuel ", 0), 0u) << interp[4];
  EXPECT_EQ(interp[5].rfind("6 fuel ", 0), 0u) << interp[5];
  for (Tier t : {Tier::kBaseline, Tier::kOptimized}) EXPECT_EQ(run_cross_instance(t), interp) << tier_name(t);
}

// Fuel budgets: a call's budget is at most kCallFuelMax (2^63 - 1). Above it
// Instance::call refuses with kInvalidArgument (it used to report success with
// fuel_used the whole budget, or trap out_of_fuel at once); call_raw caps it.
// At the limit every tier runs as with any other budget.
std::vector<std::string> run_big_fuel(Tier tier) {
  auto engine = engine_in(fresh_dir("bigfuel"));
  auto module = engine->load(wat(R"((module
      (func (export "loop") (param $n i32) (result i32) (local $s i32)
        (block (loop (br_if 1 (i32.eqz (local.get $n)))
          (local.set $s (i32.add (local.get $s) (local.get $n)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br 0)))
        local.get $s))
  )"),
                             {.tier = tier});
  EXPECT_TRUE(module.is_ok()) << module.status().to_string();
  if (!module.is_ok()) return {};
  auto inst = (*module)->instantiate(Linker{});
  EXPECT_TRUE(inst.is_ok()) << inst.status().to_string();
  if (!inst.is_ok()) return {};
  std::vector<std::string> out;
  Value a[] = {Value::i32(100'000)};
  for (uint64_t fuel : {uint64_t(10'000'000), kCallFuelMax - 1, kCallFuelMax, kCallFuelMax + 1, uint64_t(1) << 63,
                        UINT64_MAX - 1, UINT64_MAX, uint64_t(1000)}) {
    auto r = (*inst)->call("loop", a, {.fuel = fuel});
    if (!r.is_ok()) out.push_back("error " + std::string(code_name(r.status().code())) + ": " + r.status().message());
    else if (!r->ok()) out.push_back(std::string(trap_kind_name(r->trap.kind)) + " fuel " + std::to_string(r->fuel_used));
    else out.push_back(std::to_string(r->results[0].as_i32()) + " fuel " + std::to_string(r->fuel_used));
  }
  for (uint64_t fuel : {kCallFuelMax, kCallFuelMax + 1, UINT64_MAX}) {
    uint64_t slots[1] = {100'000};
    uint64_t used = 0;
    const TrapKind k = (*inst)->call_raw(0, slots, fuel, &used);
    out.push_back("raw " + std::string(trap_kind_name(k)) + " " + std::to_string(static_cast<int32_t>(slots[0])) +
                  " fuel " + std::to_string(used));
  }
  return out;
}

TEST(EngineFuel, BudgetsAbove2To63AreRefusedOrCappedIdenticallyOnEveryTier) {
  const auto interp = run_big_fuel(Tier::kInterp);
  ASSERT_EQ(interp.size(), 11u);
  const std::string ok = interp[0];
  EXPECT_EQ(ok.rfind("705082704 fuel ", 0), 0u) << ok;  // 100000 * 100001 / 2 mod 2^32
  EXPECT_EQ(interp[1], ok);
  EXPECT_EQ(interp[2], ok) << "kCallFuelMax itself is a valid budget";
  for (size_t i : {3u, 4u, 5u, 6u}) {
    EXPECT_EQ(interp[i].rfind("error invalid_argument: fuel budget ", 0), 0u) << interp[i];
    EXPECT_NE(interp[i].find("out of range"), std::string::npos) << interp[i];
  }
  EXPECT_EQ(interp[7], "out_of_fuel fuel 1000");
  for (size_t i : {8u, 9u, 10u}) EXPECT_EQ(interp[i], "raw none " + ok) << "call_raw caps the budget";
  for (Tier t : {Tier::kBaseline, Tier::kOptimized}) EXPECT_EQ(run_big_fuel(t), interp) << tier_name(t);
}

// Frame size and the depth limit: a recursion whose frames hold 10,000 i64
// locals (80 KB each) returned on interp and optimized but trapped
// stack_exhausted at about 3,350 frames on baseline, where native stack ran
// out first (issue 9). A frame now counts 1 + (params + locals) / 64 units
// against call_depth_max (16,384): 157 units here, so 104 frames fit and the
// 105th traps stack_exhausted, with the same fuel on every tier.
std::vector<std::string> run_big_frames(Tier tier) {
  std::string locals;
  for (int i = 0; i < 10'000; ++i) locals += " i64";
  auto engine = engine_in(fresh_dir("bigframes"));
  auto module = engine->load(wat(R"((module
      (func $f (export "f") (param $n i32) (result i32) (local)" + locals + R"()
        (local.set 10000 (i64.extend_i32_u (local.get $n)))
        (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 0))
          (else (i32.add (i32.wrap_i64 (i64.sub (local.get 10000) (i64.extend_i32_u (local.get $n))))
                         (i32.add (i32.const 1) (call $f (i32.sub (local.get $n) (i32.const 1)))))))))
  )"),
                             {.tier = tier});
  EXPECT_TRUE(module.is_ok()) << module.status().to_string();
  if (!module.is_ok()) return {};
  auto inst = (*module)->instantiate(Linker{});
  EXPECT_TRUE(inst.is_ok()) << inst.status().to_string();
  if (!inst.is_ok()) return {};
  std::vector<std::string> out;
  for (int n : {10, 103, 104, 4000, 103}) {
    Value a[] = {Value::i32(n)};
    auto r = (*inst)->call("f", a);
    if (!r.is_ok()) out.push_back("error " + r.status().to_string());
    else if (!r->ok()) out.push_back(std::string(trap_kind_name(r->trap.kind)) + " fuel " + std::to_string(r->fuel_used));
    else out.push_back(std::to_string(r->results[0].as_i32()) + " fuel " + std::to_string(r->fuel_used));
  }
  return out;
}

TEST(EngineNested, BigFramesCountAgainstTheDepthLimitIdenticallyOnEveryTier) {
  const auto interp = run_big_frames(Tier::kInterp);
  ASSERT_EQ(interp.size(), 5u);
  EXPECT_EQ(interp[0].rfind("10 fuel ", 0), 0u) << interp[0];
  EXPECT_EQ(interp[1].rfind("103 fuel ", 0), 0u) << interp[1] << ": 104 frames of 157 units fit in 16,384";
  EXPECT_EQ(interp[2].rfind("stack_exhausted fuel ", 0), 0u) << interp[2];
  EXPECT_EQ(interp[3].rfind("stack_exhausted fuel ", 0), 0u) << interp[3];
  EXPECT_EQ(interp[4], interp[1]) << "the instance works after the trap";
  for (Tier t : {Tier::kBaseline, Tier::kOptimized}) EXPECT_EQ(run_big_frames(t), interp) << tier_name(t);
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

// Loader bombs: limits read from the section headers refuse a module before
// libwabt builds any IR from it (issue 9 item 5: a 10 MB function body was
// parsed, 840 MB and 2 s, before its size was refused). Each case loads in a
// child process, which checks the typed error, the time and its peak RSS.
void append_leb(std::vector<uint8_t>& out, uint64_t v) {
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    out.push_back(byte | (v ? 0x80 : 0));
  } while (v);
}
void append_section(std::vector<uint8_t>& out, uint8_t id, const std::vector<uint8_t>& payload) {
  out.push_back(id);
  append_leb(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

TEST(EngineLimits, SectionHeaderLimitsRefuseBombsBeforeParsing) {
  const std::vector<uint8_t> head = {0, 'a', 's', 'm', 1, 0, 0, 0};
  const std::vector<uint8_t> type_section = {1, 0x60, 0, 0};  // one type: () -> ()
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    LoadLimits limits;
  };
  std::vector<Case> cases;
  {  // one function whose body is 10 MB of nops
    std::vector<uint8_t> m = head, fs = {1, 0}, code, body = {0};
    append_section(m, 1, type_section);
    append_section(m, 3, fs);
    body.insert(body.end(), size_t(10) << 20, 0x01);
    body.push_back(0x0b);
    code.push_back(1);
    append_leb(code, body.size());
    code.insert(code.end(), body.begin(), body.end());
    append_section(m, 10, code);
    cases.push_back({"function_body_size_bytes_max", std::move(m), {}});
  }
  {  // 4 million declared functions (4 MB of type indices)
    std::vector<uint8_t> m = head, fs;
    append_section(m, 1, type_section);
    append_leb(fs, 4'000'000);
    fs.insert(fs.end(), 4'000'000, 0);
    append_section(m, 3, fs);
    cases.push_back({"functions_max", std::move(m), {}});
  }
  {  // a 12 MB data segment against a 1 MiB data limit
    std::vector<uint8_t> m = head, mem = {1, 0, 1}, data = {1, 0, 0x41, 0, 0x0b};
    append_section(m, 5, mem);
    append_leb(data, size_t(12) << 20);
    data.insert(data.end(), size_t(12) << 20, 0x5a);
    append_section(m, 11, data);
    LoadLimits l;
    l.data_segment_size_bytes_max = 1u << 20;
    cases.push_back({"data_segment_size_bytes_max", std::move(m), l});
  }
  for (const Case& c : cases) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      struct rusage before;
      getrusage(RUSAGE_SELF, &before);
      EngineConfig cfg;
      cfg.load_limits = c.limits;
      auto engine = Engine::create(cfg);
      const auto t0 = std::chrono::steady_clock::now();
      auto m = (*engine)->load(c.bytes, {.tier = Tier::kInterp});
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
      struct rusage after;
      getrusage(RUSAGE_SELF, &after);
      if (m.is_ok()) _exit(1);
      if (m.status().code() != Code::kLimitExceeded || m.status().message().find(c.name) == std::string::npos) {
        std::fprintf(stderr, "%s: %s\n", c.name, m.status().to_string().c_str());
        _exit(2);
      }
      if (ms > 1000) _exit(3);
      // The module bytes are already resident; loading adds less than 64 MB.
      if (after.ru_maxrss - before.ru_maxrss > 64 * 1024) {
        std::fprintf(stderr, "%s: peak RSS grew %ld KiB\n", c.name, after.ru_maxrss - before.ru_maxrss);
        _exit(4);
      }
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << c.name;
    EXPECT_EQ(WEXITSTATUS(status), 0) << c.name << ": 1 loaded, 2 wrong error, 3 over a second, 4 RSS";
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

// ---------------------------------------------------------------------------
// The profile: what today's toolchains emit runs identically on every tier.

// WAT with every wabt feature on, so tests can write what the profile refuses.
std::vector<uint8_t> wat_all(const std::string& text) {
  wabt::Errors errors;
  auto lexer = wabt::WastLexer::CreateBufferLexer("test.wat", text.data(), text.size(), &errors);
  wabt::Features features;
  features.EnableAll();
  wabt::WastParseOptions opts(features);
  std::unique_ptr<wabt::Module> m;
  if (wabt::Failed(wabt::ParseWatModule(lexer.get(), &m, &errors, &opts)) ||
      wabt::Failed(wabt::ResolveNamesModule(m.get(), &errors))) {
    ADD_FAILURE() << "bad WAT: " << (errors.empty() ? "" : errors[0].message);
    return {};
  }
  wabt::MemoryStream s;
  wabt::WriteBinaryOptions wo(features, true, false, false);
  EXPECT_TRUE(wabt::Succeeded(wabt::WriteBinaryModule(&s, m.get(), wo)));
  return s.output_buffer().data;
}

struct ProfileCall {
  const char* name;
  std::vector<Value> args;
  uint64_t fuel = 1'000'000;
};

// One instance per tier, the calls in order (state carries over: a dropped
// segment stays dropped). One line per call: result bits, trap kind, fuel and
// a hash of the whole memory.
std::vector<std::string> run_profile_calls(Engine& engine, const std::vector<uint8_t>& bytes, Tier tier,
                                           const std::vector<ProfileCall>& calls, const Linker& linker = {}) {
  std::vector<std::string> log;
  auto m = engine.load(bytes, {.tier = tier});
  if (!m) return {"load: " + m.status().to_string()};
  auto inst = (*m)->instantiate(linker);
  if (!inst) return {"instantiate: " + inst.status().to_string()};
  for (const ProfileCall& c : calls) {
    auto r = (*inst)->call(c.name, c.args, {.fuel = c.fuel});
    std::ostringstream s;
    s << c.name << ": ";
    if (!r) {
      s << "error " << r.status().to_string();
    } else {
      s << "fuel=" << r->fuel_used << " trap=" << trap_kind_name(r->trap.kind);
      for (const Value& v : r->results) s << " " << valtype_name(v.type) << ":" << std::hex << v.bits << std::dec;
    }
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : (*inst)->memory()) h = (h ^ b) * 1099511628211ull;
    s << " mem=" << std::hex << h << std::dec << "/" << (*inst)->memory().size();
    log.push_back(s.str());
  }
  return log;
}

// Runs the calls on the three tiers; they must agree line for line. Returns
// the interp tier's log for checks of its own.
std::vector<std::string> expect_tiers_agree(const std::vector<uint8_t>& bytes, const std::vector<ProfileCall>& calls,
                                            const std::string& dir, const Linker& linker = {}) {
  auto engine = engine_in(fresh_dir(dir));
  auto ref = run_profile_calls(*engine, bytes, Tier::kInterp, calls, linker);
  if (std::getenv("COVENANT_PRINT_PROFILE"))  // debugging aid: the reference log
    for (const auto& l : ref) std::printf("%s\n", l.c_str());
  for (Tier t : {Tier::kBaseline, Tier::kOptimized}) {
    auto got = run_profile_calls(*engine, bytes, t, calls, linker);
    EXPECT_EQ(ref.size(), got.size()) << tier_name(t);
    for (size_t i = 0; i < std::min(ref.size(), got.size()); ++i) EXPECT_EQ(ref[i], got[i]) << tier_name(t);
  }
  return ref;
}

bool has(const std::string& line, const char* what) { return line.find(what) != std::string::npos; }

const char* kBulkMemoryWat = R"((module
  (memory 1 2)
  (data $p "\01\02\03\04\05\06\07\08\09\0a")
  (data $a (i32.const 100) "active")
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32) (memory.init $p (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init_active") (param i32 i32 i32) (memory.init $a (local.get 0) (local.get 1) (local.get 2)))
  (func (export "drop") (data.drop $p))
  (func (export "load") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "fill_loop") (param i32) (local i32)
    (loop $l (memory.fill (i32.const 0) (local.get 1) (local.get 0))
      (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 1) (i32.const 100))))))
)";

TEST(EngineProfile, BulkMemoryAgreesOnResultTrapAndFuel) {
  auto i32 = Value::i32;
  std::vector<ProfileCall> calls = {
      {"load", {i32(100)}},
      {"copy", {i32(0), i32(100), i32(6)}},
      {"load", {i32(0)}},
      {"copy", {i32(1), i32(0), i32(8)}},  // overlapping: memmove
      {"load", {i32(0)}},
      {"fill", {i32(10), i32(0xab), i32(65536 - 10)}},
      {"fill", {i32(65530), i32(1), i32(7)}},  // out of bounds: nothing written
      {"copy", {i32(65535), i32(0), i32(2)}},
      {"copy", {i32(0), i32(65535), i32(2)}},
      {"copy", {i32(65536), i32(0), i32(0)}},  // empty at the end: fine
      {"copy", {i32(65537), i32(0), i32(0)}},  // empty past the end: traps
      {"fill", {i32(-1), i32(0), i32(2)}},
      {"init", {i32(200), i32(0), i32(10)}},
      {"load", {i32(200)}},
      {"init", {i32(200), i32(5), i32(6)}},
      {"init", {i32(65535), i32(0), i32(2)}},
      {"init_active", {i32(0), i32(0), i32(0)}},  // active segments are dropped once applied
      {"init_active", {i32(0), i32(0), i32(1)}},
      {"drop", {}},
      {"drop", {}},
      {"init", {i32(0), i32(0), i32(0)}},
      {"init", {i32(0), i32(0), i32(1)}},
      {"grow", {i32(1)}},
      {"fill", {i32(65000), i32(7), i32(2000)}},  // across the page boundary after growth
      {"copy", {i32(131000), i32(65000), i32(72)}},
      {"copy", {i32(131000), i32(65000), i32(73)}},
      {"load", {i32(131000)}},
      // Fuel proportional to the bytes: 65,536 bytes cost 8,192 units.
      {"fill", {i32(0), i32(1), i32(65536)}, 5'000},
      {"fill", {i32(0), i32(1), i32(65536)}, 8'300},
      {"fill", {i32(0), i32(1), i32(-1)}, 100'000},  // 4 GiB: out of fuel before any byte
      {"fill_loop", {i32(50'000)}, 10'000'000},
      {"fill_loop", {i32(50'000)}, 300'000},
  };
  auto log = expect_tiers_agree(wat(kBulkMemoryWat), calls, "bulk");
  ASSERT_EQ(log.size(), calls.size());
  EXPECT_TRUE(has(log[2], "i64:657669746361 ")) << log[2];  // "active", little-endian
  EXPECT_TRUE(has(log[6], "trap=memory_out_of_bounds")) << log[6];
  EXPECT_TRUE(has(log[9], "trap=none")) << log[9];
  EXPECT_TRUE(has(log[10], "trap=memory_out_of_bounds")) << log[10];
  EXPECT_TRUE(has(log[13], "i64:807060504030201")) << log[13];
  EXPECT_TRUE(has(log[16], "trap=none")) << log[16];
  EXPECT_TRUE(has(log[17], "trap=memory_out_of_bounds")) << log[17];
  EXPECT_TRUE(has(log[21], "trap=memory_out_of_bounds")) << log[21];
  EXPECT_TRUE(has(log[24], "trap=none")) << log[24];
  EXPECT_TRUE(has(log[25], "trap=memory_out_of_bounds")) << log[25];
  EXPECT_TRUE(has(log[26], "i64:707070707070707 ")) << log[26];
  EXPECT_TRUE(has(log[27], "trap=out_of_fuel")) << log[27];
  EXPECT_TRUE(has(log[28], "trap=none")) << log[28];
  EXPECT_TRUE(has(log[29], "trap=out_of_fuel")) << log[29];
  EXPECT_TRUE(has(log[31], "trap=out_of_fuel")) << log[31];
}

// Segments the code names by index, with no memory or table to apply them to
// (bulk.wast): data.drop and elem.drop need no memory or table.
TEST(EngineProfile, DroppingSegmentsNeedsNoMemoryOrTable) {
  std::string many = "(module ";
  for (int i = 0; i < 65; ++i) many += "(data \"\") ";
  many += "(func (export \"f\") (data.drop 64)))";
  std::vector<ProfileCall> calls = {{"f", {}}, {"f", {}}};
  for (const std::string& text : {many, std::string("(module (data \"goodbye\") (func (export \"f\") (data.drop 0)))"),
                                   std::string("(module (elem funcref (ref.null func)) (func (export \"f\") (elem.drop 0)))")}) {
    auto log = expect_tiers_agree(wat(text), calls, "drops");
    ASSERT_EQ(log.size(), calls.size()) << text << ": " << log[0];
    EXPECT_TRUE(has(log[1], "trap=none")) << log[1];
  }
}

// What clang 14 emits for memset/memcpy with -mbulk-memory (a DataCount
// section, memory.fill, memory.copy): until issue 9 it was refused as
// "malformed module at section 'datacount' ... invalid section code: 12".
//   static char buf[4096]; static const char msg[16] = "covenant-bulk!!";
//   int run(int n) { memset(buf, n & 0xff, 4096); memcpy(buf + 100, msg, 16);
//     memcpy(buf + 200, buf + 7, n); int s = 0; for (...) s += buf[i]; return s; }
// clang --target=wasm32 -O2 -nostdlib -mbulk-memory -Wl,--no-entry
TEST(EngineProfile, ClangBulkMemoryOutputRunsOnEveryTier) {
  const std::vector<uint8_t> bytes = {
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f,
      0x03, 0x02, 0x01, 0x00, 0x05, 0x03, 0x01, 0x00, 0x02, 0x07, 0x10, 0x02, 0x06, 0x6d, 0x65, 0x6d,
      0x6f, 0x72, 0x79, 0x02, 0x00, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00, 0x0c, 0x01, 0x01, 0x0a, 0x9c,
      0x01, 0x01, 0x99, 0x01, 0x01, 0x01, 0x7f, 0x41, 0x90, 0x08, 0x20, 0x00, 0x41, 0x80, 0x20, 0xfc,
      0x0b, 0x00, 0x41, 0xfc, 0x08, 0x41, 0x88, 0x08, 0x29, 0x03, 0x00, 0x37, 0x02, 0x00, 0x41, 0xf4,
      0x08, 0x41, 0x80, 0x08, 0x29, 0x03, 0x00, 0x37, 0x02, 0x00, 0x41, 0xd8, 0x09, 0x41, 0x97, 0x08,
      0x20, 0x00, 0xfc, 0x0a, 0x00, 0x00, 0x20, 0x00, 0x41, 0x18, 0x74, 0x41, 0x18, 0x75, 0x21, 0x00,
      0x03, 0x40, 0x20, 0x01, 0x41, 0x97, 0x08, 0x6a, 0x2c, 0x00, 0x00, 0x20, 0x01, 0x41, 0x96, 0x08,
      0x6a, 0x2c, 0x00, 0x00, 0x20, 0x01, 0x41, 0x95, 0x08, 0x6a, 0x2c, 0x00, 0x00, 0x20, 0x01, 0x41,
      0x94, 0x08, 0x6a, 0x2c, 0x00, 0x00, 0x20, 0x01, 0x41, 0x93, 0x08, 0x6a, 0x2c, 0x00, 0x00, 0x20,
      0x01, 0x41, 0x92, 0x08, 0x6a, 0x2c, 0x00, 0x00, 0x20, 0x00, 0x20, 0x01, 0x41, 0x91, 0x08, 0x6a,
      0x2c, 0x00, 0x00, 0x6a, 0x6a, 0x6a, 0x6a, 0x6a, 0x6a, 0x6a, 0x21, 0x00, 0x20, 0x01, 0x41, 0x07,
      0x6a, 0x22, 0x01, 0x41, 0xff, 0x1f, 0x47, 0x0d, 0x00, 0x0b, 0x20, 0x00, 0x0b, 0x0b, 0x16, 0x01,
      0x00, 0x41, 0x80, 0x08, 0x0b, 0x0f, 0x63, 0x6f, 0x76, 0x65, 0x6e, 0x61, 0x6e, 0x74, 0x2d, 0x62,
      0x75, 0x6c, 0x6b, 0x21, 0x21, 0x00, 0x2d, 0x09, 0x70, 0x72, 0x6f, 0x64, 0x75, 0x63, 0x65, 0x72,
      0x73, 0x01, 0x0c, 0x70, 0x72, 0x6f, 0x63, 0x65, 0x73, 0x73, 0x65, 0x64, 0x2d, 0x62, 0x79, 0x01,
      0x0c, 0x44, 0x65, 0x62, 0x69, 0x61, 0x6e, 0x20, 0x63, 0x6c, 0x61, 0x6e, 0x67, 0x06, 0x31, 0x34,
      0x2e, 0x30, 0x2e, 0x36, 0x00, 0x1e, 0x0f, 0x74, 0x61, 0x72, 0x67, 0x65, 0x74, 0x5f, 0x66, 0x65,
      0x61, 0x74, 0x75, 0x72, 0x65, 0x73, 0x01, 0x2b, 0x0b, 0x62, 0x75, 0x6c, 0x6b, 0x2d, 0x6d, 0x65,
      0x6d, 0x6f, 0x72, 0x79,
  };
  auto i32 = Value::i32;
  std::vector<ProfileCall> calls = {
      {"run", {i32(0)}}, {"run", {i32(3)}}, {"run", {i32(1000)}}, {"run", {i32(200'000)}}, {"run", {i32(1000)}, 3'000},
  };
  auto log = expect_tiers_agree(bytes, calls, "clang-bulk");
  ASSERT_EQ(log.size(), calls.size()) << log[0];
  EXPECT_TRUE(has(log[0], "trap=none")) << log[0];
  EXPECT_TRUE(has(log[3], "trap=memory_out_of_bounds")) << log[3];
  EXPECT_TRUE(has(log[4], "trap=out_of_fuel")) << log[4];
}

// An export that is an import with results: interp ran it through wabt's
// HostFunc::Call, which does not size the results, and crashed (linking.wast).
TEST(EngineNested, AnExportThatIsAnImportReturnsItsResultsOnEveryTier) {
  Linker linker;
  linker.define("env", "pair", {{ValType::kI32}, {ValType::kI32, ValType::kI64}},
                [](HostCall&, std::span<const Value> args, std::span<Value> results) {
                  results[0] = Value::i32(args[0].as_i32() + 1);
                  results[1] = Value::i64(-2);
                  return HostResult::ok();
                });
  auto bytes = wat(R"((module (import "env" "pair" (func $p (param i32) (result i32 i64))) (export "p" (func $p))))");
  auto log = expect_tiers_agree(bytes, {{"p", {Value::i32(41)}}}, "reexport", linker);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_TRUE(has(log[0], "i32:2a i64:fffffffffffffffe")) << log[0];
}

TEST(EngineProfile, BulkFuelIsOneUnitPerEightBytesOrElement) {
  auto engine = engine_in(fresh_dir("bulkfuel"));
  for (Tier t : {Tier::kInterp, Tier::kBaseline, Tier::kOptimized}) {
    auto m = engine->load(wat(R"((module (memory 1) (table 100 funcref)
        (func (export "fill") (param i32) (memory.fill (i32.const 0) (i32.const 0) (local.get 0)))
        (func (export "tfill") (param i32) (table.fill 0 (i32.const 0) (ref.null func) (local.get 0)))
        (func (export "tgrow") (param i32) (drop (table.grow 0 (ref.null func) (local.get 0))))))"),
                          {.tier = t});
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    auto inst = (*m)->instantiate(Linker{});
    ASSERT_TRUE(inst.is_ok());
    auto fuel = [&](const char* f, int32_t n) {
      Value a[] = {Value::i32(n)};
      auto r = (*inst)->call(f, a);
      EXPECT_TRUE(r.is_ok() && r->ok()) << f << " " << n;
      return r.is_ok() ? r->fuel_used : 0;
    };
    const uint64_t base = fuel("fill", 0);
    EXPECT_EQ(fuel("fill", 1), base + 1) << tier_name(t);
    EXPECT_EQ(fuel("fill", 8), base + 1) << tier_name(t);
    EXPECT_EQ(fuel("fill", 9), base + 2) << tier_name(t);
    EXPECT_EQ(fuel("fill", 800), base + 100) << tier_name(t);
    const uint64_t tbase = fuel("tfill", 0);
    EXPECT_EQ(fuel("tfill", 100), tbase + 100) << tier_name(t);
    const uint64_t gbase = fuel("tgrow", 0);
    EXPECT_EQ(fuel("tgrow", 10), gbase + 10) << tier_name(t);
    EXPECT_EQ(fuel("tgrow", -1), gbase) << tier_name(t);  // refused: nothing added, nothing charged
  }
}

const char* kTablesWat = R"((module
  (type $i (func (result i32)))
  (table $t 4 8 funcref)
  (table $u 2 externref)
  (func $a (result i32) (i32.const 1))
  (func $b (result i32) (i32.const 2))
  (elem $e func $a $b $a)
  (elem (table $t) (i32.const 0) func $b)
  (elem declare func $a)
  (func (export "init") (param i32 i32 i32) (table.init $t $e (local.get 0) (local.get 1) (local.get 2)))
  (func (export "edrop") (elem.drop $e))
  (func (export "copy") (param i32 i32 i32) (table.copy $t $t (local.get 0) (local.get 1) (local.get 2)))
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $i) (local.get 0)))
  (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "set_a") (param i32) (table.set $t (local.get 0) (ref.func $a)))
  (func (export "set_null") (param i32) (table.set $t (local.get 0) (ref.null func)))
  (func (export "grow") (param i32) (result i32) (table.grow $t (ref.func $b) (local.get 0)))
  (func (export "size") (result i32) (table.size $t))
  (func (export "fill") (param i32 i32) (table.fill $t (local.get 0) (ref.func $b) (local.get 1)))
  (func (export "xgrow") (param i32) (result i32) (table.grow $u (ref.null extern) (local.get 0)))
  (func (export "xfill") (param i32 i32) (table.fill $u (local.get 0) (ref.null extern) (local.get 1)))
  (func (export "xsize") (result i32) (table.size $u))
  (func (export "x_is_null") (param i32) (result i32) (ref.is_null (table.get $u (local.get 0))))
  (func (export "sel") (param i32) (result i32)
    (ref.is_null (select (result funcref) (ref.func $a) (ref.null func) (local.get 0)))))
)";

TEST(EngineProfile, ReferenceTypesAndTableOpsAgreeOnResultTrapAndFuel) {
  auto i32 = Value::i32;
  std::vector<ProfileCall> calls = {
      {"call", {i32(0)}},
      {"call", {i32(1)}},  // null entry
      {"call", {i32(4)}},  // past the end
      {"init", {i32(1), i32(0), i32(3)}},
      {"call", {i32(1)}},
      {"call", {i32(2)}},
      {"init", {i32(3), i32(0), i32(3)}},  // table out of bounds
      {"init", {i32(0), i32(2), i32(2)}},  // segment out of bounds
      {"edrop", {}},
      {"init", {i32(0), i32(0), i32(1)}},
      {"init", {i32(0), i32(0), i32(0)}},
      {"set_null", {i32(0)}},
      {"copy", {i32(0), i32(1), i32(3)}},
      {"call", {i32(0)}},
      {"is_null", {i32(3)}},
      {"copy", {i32(2), i32(0), i32(3)}},
      {"is_null", {i32(9)}},
      {"set_a", {i32(3)}},
      {"call", {i32(3)}},
      {"set_a", {i32(4)}},
      {"grow", {i32(2)}},
      {"size", {}},
      {"call", {i32(5)}},
      {"grow", {i32(3)}},  // past the declared maximum of 8: -1
      {"grow", {i32(0)}},
      {"fill", {i32(0), i32(6)}},
      {"fill", {i32(5), i32(2)}},
      {"call", {i32(4)}},
      {"xsize", {}},
      {"xgrow", {i32(3)}},
      {"xfill", {i32(1), i32(4)}},
      {"xfill", {i32(1), i32(5)}},
      {"x_is_null", {i32(4)}},
      {"x_is_null", {i32(5)}},
      {"sel", {i32(0)}},
      {"sel", {i32(1)}},
      {"xgrow", {i32(200'000)}},  // past InstanceLimits::table_elements_max: -1, one unit
      {"xgrow", {i32(-16)}},  // 2^32 - 16 elements: -1, one unit
      {"xgrow", {i32(50'000)}, 1'000},  // one unit per element added: out of fuel
      {"xsize", {}},
  };
  auto log = expect_tiers_agree(wat(kTablesWat), calls, "tables");
  ASSERT_EQ(log.size(), calls.size());
  EXPECT_TRUE(has(log[0], "i32:2")) << log[0];
  EXPECT_TRUE(has(log[1], "trap=uninitialized_element")) << log[1];
  EXPECT_TRUE(has(log[2], "trap=table_out_of_bounds")) << log[2];
  EXPECT_TRUE(has(log[6], "trap=table_out_of_bounds")) << log[6];
  EXPECT_TRUE(has(log[7], "trap=table_out_of_bounds")) << log[7];
  EXPECT_TRUE(has(log[16], "trap=table_out_of_bounds")) << log[16];
  EXPECT_TRUE(has(log[20], "i32:4")) << log[20];
  EXPECT_TRUE(has(log[23], "i32:ffffffff")) << log[23];
  EXPECT_TRUE(has(log[36], "i32:ffffffff")) << log[36];
  EXPECT_TRUE(has(log[37], "i32:ffffffff")) << log[37];
  EXPECT_TRUE(has(log[38], "trap=out_of_fuel")) << log[38];
  EXPECT_TRUE(has(log[39], "i32:c355")) << log[39];  // 5 + 50,000: the grow happened, then fuel ran out
}

TEST(EngineProfile, MultiValueAgreesOnEveryTier) {
  auto bytes = wat(R"((module
    (type $tt (func (param i32) (result i32 i64)))
    (import "env" "pair" (func $pair (param i32) (result i32 f64)))
    (table 1 funcref)
    (elem (i32.const 0) $two)
    (func $two (type $tt) (local.get 0) (i64.extend_i32_s (local.get 0)))
    (func (export "two") (param i32) (result i32 i64) (call $two (local.get 0)))
    (func (export "swap") (param i32 i32) (result i32 i32) (local.get 1) (local.get 0))
    (func (export "blk") (param i32) (result i32)
      (local.get 0) (i32.const 5) (block (param i32 i32) (result i32) (i32.sub)))
    (func (export "sum") (param i32) (result i32)
      (i32.const 0) (local.get 0)
      (loop $l (param i32 i32) (result i32)
        (local.set 0)
        (i32.add (local.get 0))
        (local.get 0) (i32.sub (i32.const 1))
        (local.tee 0) (br_if 1 (i32.eqz))
        (local.get 0) (br $l)))
    (func (export "iff") (param i32) (result i32 i32)
      (i32.const 7) (local.get 0) (if (param i32) (result i32 i32) (then (i32.const 1)) (else (i32.const 2))))
    (func (export "br") (param i32) (result i32 i32)
      (block (result i32 i32) (i32.const 1) (i32.const 2) (br_if 0 (local.get 0)) (drop) (drop)
        (i32.const 3) (i32.const 4)))
    (func (export "ind") (param i32) (result i32 i64) (call_indirect (type $tt) (local.get 0) (i32.const 0)))
    (func (export "host") (param i32) (result f64 i32) (local f64)
      (call $pair (local.get 0)) (local.set 1) (local.set 0) (local.get 1) (local.get 0))
  ))");
  Linker linker;
  linker.define("env", "pair", {{ValType::kI32}, {ValType::kI32, ValType::kF64}},
                [](HostCall&, std::span<const Value> args, std::span<Value> results) {
                  results[0] = Value::i32(args[0].as_i32() * 2);
                  results[1] = Value::f64_bits(0x4000000000000000ull);  // 2.0
                  return HostResult::ok();
                });
  auto i32 = Value::i32;
  std::vector<ProfileCall> calls = {
      {"two", {i32(-3)}}, {"swap", {i32(1), i32(2)}}, {"blk", {i32(9)}}, {"sum", {i32(10)}},
      {"sum", {i32(100'000)}, 100'000}, {"iff", {i32(0)}}, {"iff", {i32(1)}}, {"br", {i32(0)}},
      {"br", {i32(1)}}, {"ind", {i32(5)}}, {"host", {i32(21)}},
  };
  auto log = expect_tiers_agree(bytes, calls, "multivalue", linker);
  ASSERT_EQ(log.size(), calls.size());
  EXPECT_TRUE(has(log[0], "i32:fffffffd i64:fffffffffffffffd")) << log[0];
  EXPECT_TRUE(has(log[1], "i32:2 i32:1")) << log[1];
  EXPECT_TRUE(has(log[2], "i32:4")) << log[2];
  EXPECT_TRUE(has(log[3], "i32:37")) << log[3];  // 55
  EXPECT_TRUE(has(log[4], "trap=out_of_fuel")) << log[4];
  EXPECT_TRUE(has(log[5], "i32:7 i32:2")) << log[5];
  EXPECT_TRUE(has(log[8], "i32:1 i32:2")) << log[8];
  EXPECT_TRUE(has(log[10], "f64:4000000000000000 i32:2a")) << log[10];
}

TEST(EngineProfile, ExtendedConstantsAndImportsAsReferences) {
  auto bytes = wat_all(R"((module
    (import "env" "seven" (func $seven (result i32)))
    (global $g i32 (i32.add (i32.const 40) (i32.mul (i32.const 1) (i32.const 2))))
    (global $h i64 (i64.sub (i64.const 0) (i64.const 5)))
    (memory 1)
    (data (offset (i32.add (i32.const 16) (i32.const 4))) "x")
    (table $t 2 funcref)
    (elem (table $t) (offset (i32.sub (i32.const 2) (i32.const 1))) func $seven)
    (elem declare func $seven)
    (func (export "g") (result i32) (global.get $g))
    (func (export "h") (result i64) (global.get $h))
    (func (export "ld") (result i32) (i32.load8_u (i32.const 20)))
    (func (export "via_elem") (result i32) (call_indirect $t (result i32) (i32.const 1)))
    (func (export "via_ref") (result i32)
      (table.set $t (i32.const 0) (ref.func $seven))
      (call_indirect $t (result i32) (i32.const 0)))
    (func $declared_by_export (export "eight") (result i32) (i32.const 8))
    (func (export "via_export_ref") (result i32)
      (table.set $t (i32.const 0) (ref.func $declared_by_export))
      (call_indirect $t (result i32) (i32.const 0)))
  ))");
  Linker linker;
  linker.define("env", "seven", {{}, {ValType::kI32}}, [](HostCall&, std::span<const Value>, std::span<Value> r) {
    r[0] = Value::i32(7);
    return HostResult::ok();
  });
  std::vector<ProfileCall> calls = {{"g", {}}, {"h", {}}, {"ld", {}}, {"via_elem", {}}, {"via_ref", {}},
                                    {"via_export_ref", {}}};
  auto log = expect_tiers_agree(bytes, calls, "extconst", linker);
  ASSERT_EQ(log.size(), calls.size());
  EXPECT_TRUE(has(log[0], "i32:2a")) << log[0];
  EXPECT_TRUE(has(log[1], "i64:fffffffffffffffb")) << log[1];
  EXPECT_TRUE(has(log[2], "i32:78")) << log[2];
  EXPECT_TRUE(has(log[3], "i32:7 ")) << log[3];
  EXPECT_TRUE(has(log[4], "i32:7 ")) << log[4];
  EXPECT_TRUE(has(log[5], "i32:8 ")) << log[5];  // ref.func of a function declared by its export
}

TEST(EngineProfile, FeaturesOutsideTheProfileAreNamedWithWhereAndHowToBuildWithout) {
  auto engine = engine_in(fresh_dir("profile"));
  struct Case {
    const char* wat;
    const char* feature;
    const char* where;
  } cases[] = {
      {R"((module (func) (func (export "f") (result i32)
           (i32x4.extract_lane 0 (v128.const i32x4 1 2 3 4)))))",
       "SIMD", "function 1 (defined function 1, section 'code', offset 0x"},
      {R"((module (memory 1 1 shared) (func (export "f") (result i32) (i32.atomic.load (i32.const 0)))))",
       "threads and atomics", "offset 0x"},
      {R"((module (memory 1) (func (export "f") (result i32)
           (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))))",
       "threads and atomics", "function 0 (defined function 0, section 'code'"},
      {R"((module (func $f (result i32) (i32.const 1)) (func (export "f") (result i32) (return_call $f))))",
       "tail calls", "function 1"},
      {R"((module (tag $e) (func (export "f") (throw $e))))", "exception handling", "offset 0x"},
      {R"((module (memory i64 1)))", "memory64", "section 'memory'"},
      {R"((module (memory 1) (memory 1)))", "multi-memory", "section 'memory'"},
  };
  for (const Case& c : cases) {
    auto bytes = wat_all(c.wat);
    ASSERT_FALSE(bytes.empty()) << c.wat;
    for (Tier t : {Tier::kInterp, Tier::kBaseline, Tier::kOptimized}) {
      auto m = engine->load(bytes, {.tier = t});
      ASSERT_FALSE(m.is_ok()) << c.wat;
      const std::string& msg = m.status().message();
      EXPECT_EQ(m.status().code(), Code::kUnsupported) << msg;
      EXPECT_NE(msg.find(c.feature), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.where), std::string::npos) << msg;
      EXPECT_NE(msg.find("build without it"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("malformed"), std::string::npos) << msg;
    }
  }
  auto simd = engine->load(wat_all(cases[0].wat), {.tier = Tier::kInterp});
  ASSERT_FALSE(simd.is_ok());
  EXPECT_NE(simd.status().message().find("clang -mcpu=mvp"), std::string::npos) << simd.status().message();
  EXPECT_NE(simd.status().message().find("rustc -C target-cpu=mvp"), std::string::npos) << simd.status().message();

  // A feature of the profile an embedder turned off is named the same way.
  EngineConfig cfg;
  cfg.cache_dir = fresh_dir("profile-off");
  cfg.features.bulk_memory = false;
  auto e2 = Engine::create(cfg);
  ASSERT_TRUE(e2.is_ok());
  auto fill = (*e2)->load(wat("(module (memory 1) (func i32.const 0 i32.const 0 i32.const 1 memory.fill))"),
                          {.tier = Tier::kInterp});
  ASSERT_FALSE(fill.is_ok());
  EXPECT_NE(fill.status().message().find("bulk memory"), std::string::npos) << fill.status().message();
  EXPECT_NE(fill.status().message().find("-mno-bulk-memory"), std::string::npos) << fill.status().message();
  auto datacount = (*e2)->load(wat("(module (memory 1) (data \"x\") (func (data.drop 0)))"), {.tier = Tier::kInterp});
  ASSERT_FALSE(datacount.is_ok());
  EXPECT_NE(datacount.status().message().find("bulk memory (a DataCount section) at section 'datacount'"),
            std::string::npos)
      << datacount.status().message();
  EngineConfig no_floats;
  no_floats.features.floats = false;
  auto e3 = Engine::create(no_floats);
  auto f = (*e3)->load(wat("(module (func (result f32) f32.const 1))"), {.tier = Tier::kInterp});
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().code(), Code::kUnsupported);
  // Host-facing signatures stay numeric: an export taking a reference is
  // not offered to the host, the module's other exports are.
  for (Tier t : {Tier::kInterp, Tier::kBaseline, Tier::kOptimized}) {
    auto ref_export = engine->load(
        wat("(module (func (export \"f\") (param externref)) (func (export \"g\") (result i32) i32.const 5))"),
        {.tier = t});
    ASSERT_TRUE(ref_export.is_ok()) << ref_export.status().to_string();
    EXPECT_FALSE((*ref_export)->export_index("f").has_value());
    auto inst = (*ref_export)->instantiate(Linker{});
    ASSERT_TRUE(inst.is_ok());
    auto r = (*inst)->call("g", {});
    ASSERT_TRUE(r.is_ok() && r->ok());
    EXPECT_EQ(r->results[0].as_i32(), 5);
  }
  auto ref_import = engine->load(wat("(module (import \"env\" \"f\" (func (param funcref))))"), {.tier = Tier::kInterp});
  ASSERT_FALSE(ref_import.is_ok());
  EXPECT_NE(ref_import.status().message().find("numbers only"), std::string::npos) << ref_import.status().message();
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

std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir + "/tmp", ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    out.push_back(it->path().filename().string());
  return out;
}

// A short-lived process must not leave half-written artifacts (issue 9 item
// 7: 5 orphaned .c/.so pairs after 6 `approve --tier auto` runs). The child
// loads on the auto tier with a compiler that takes 30 s and exits while the
// background compile runs: the exit handler kills the compiler's process
// group and removes the temp files, and nothing is written afterwards.
TEST(ArtifactCache, AnAbandonedBackgroundCompileLeavesNoTempFiles) {
  std::string dir = fresh_dir("abandoned");
  const std::string slow_cc = dir + "/slow-cc";
  {
    std::ofstream f(slow_cc);
    f << "#!/bin/sh\nsleep 30\nexec cc \"$@\"\n";
  }
  fs::permissions(slow_cc, fs::perms::owner_all);
  auto bytes = wat(kAddWat);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    EngineConfig cfg;
    cfg.cache_dir = dir;
    cfg.cc = slow_cc;
    auto e = Engine::create(cfg);
    auto m = (*e)->load(bytes, {.tier = Tier::kAuto});
    if (!m) _exit(1);
    auto inst = (*m)->instantiate(Linker{});
    Value args[] = {Value::i32(20), Value::i32(22)};
    auto out = (*inst)->call("add", args);
    if (!out.is_ok() || !out->ok() || out->results[0].as_i32() != 42) _exit(2);
    // Until the background compile has written its C and started cc.
    for (int i = 0; i < 200 && temp_files(dir).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::exit(temp_files(dir).empty() ? 3 : 0);  // exit as the CLI does: handlers run
  }
  int status = 0;
  const auto t0 = std::chrono::steady_clock::now();
  waitpid(pid, &status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "exit did not wait for the compile";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  ASSERT_EQ(WEXITSTATUS(status), 0) << "1: load failed, 2: call failed, 3: no compile was running at exit";
  EXPECT_TRUE(temp_files(dir).empty()) << temp_files(dir)[0];
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a surviving compiler would write now
  EXPECT_TRUE(temp_files(dir).empty()) << "written after exit: " << temp_files(dir)[0];
  EXPECT_TRUE(artifacts(dir).empty());
}

// A process killed outright runs no exit handler: the next build in the
// directory removes temp files whose creator no longer exists (a minute old
// or more), and leaves those of live processes alone.
TEST(ArtifactCache, TempFilesOfDeadProcessesAreSweptByTheNextBuild) {
  std::string dir = fresh_dir("sweep");
  pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  fs::create_directories(dir + "/tmp");
  const std::string key = std::string(64, 'a');
  const std::string orphan = key + "." + std::to_string(dead) + ".0123456789abcdef.c";
  const std::string orphan_load = "load." + std::to_string(dead) + ".0123456789abcdef.so";
  const std::string fresh = key + "." + std::to_string(dead) + ".fedcba9876543210.so";
  const std::string live = key + "." + std::to_string(getpid()) + ".00000000000000ff.c";
  for (const auto& n : {orphan, orphan_load, fresh, live}) std::ofstream(dir + "/tmp/" + n) << "x";
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(5);
  for (const auto& n : {orphan, orphan_load, live}) fs::last_write_time(dir + "/tmp/" + n, old);
  auto engine = engine_in(dir);
  ASSERT_TRUE(engine->load(wat(kAddWat), {.tier = Tier::kOptimized}).is_ok());
  auto left = temp_files(dir);
  std::sort(left.begin(), left.end());
  std::vector<std::string> want = {fresh, live};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(left, want) << "the dead process's old files go; a young one and a live process's stay";
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
