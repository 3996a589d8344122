// The Covenant engine: load, validate, meter and run untrusted Wasm contracts
// on one of three tiers behind one API (interp, baseline/tcc, optimized/cc).
//
// Thread-safety: an Engine and a Module are immutable after creation and may be
// shared by any number of threads. An Instance belongs to one thread at a time.
// Ownership: Engine::load returns a shared Module; Module::instantiate returns a
// unique Instance that keeps its Module alive.
//
// A call has three outcomes (compare Wasmtime's c-api): a host error (Status,
// API misuse or bad input), a trap (CallOutcome::trap set: the guest failed,
// results are not written), or success (results written).
//
//   auto engine = covenant::Engine::create({}).value();
//   auto module = engine->load(bytes, {.tier = covenant::Tier::kOptimized}).value();
//   auto inst = module->instantiate(covenant::Linker{}).value();
//   covenant::Value args[] = {covenant::Value::i32(7)};
//   auto out = inst->call("fib", args, {.fuel = 1'000'000}).value();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "covenant/limits.h"
#include "covenant/status.h"

namespace covenant {

enum class ValType : uint8_t { kI32 = 0, kI64 = 1, kF32 = 2, kF64 = 3 };
const char* valtype_name(ValType t);

// A Wasm value. Floats are held as their bit patterns so NaN payloads survive.
struct Value {
  ValType type = ValType::kI32;
  uint64_t bits = 0;

  static Value i32(int32_t v) { return {ValType::kI32, static_cast<uint32_t>(v)}; }
  static Value i64(int64_t v) { return {ValType::kI64, static_cast<uint64_t>(v)}; }
  static Value f32_bits(uint32_t b) { return {ValType::kF32, b}; }
  static Value f64_bits(uint64_t b) { return {ValType::kF64, b}; }
  int32_t as_i32() const { return static_cast<int32_t>(static_cast<uint32_t>(bits)); }
  int64_t as_i64() const { return static_cast<int64_t>(bits); }
  bool operator==(const Value&) const = default;
};

struct FuncType {
  std::vector<ValType> params;
  std::vector<ValType> results;
  bool operator==(const FuncType&) const = default;
  std::string to_string() const;  // "(i32, i64) -> (i32)"
};

// Trap kinds are stable names used by the CLI, receipts and tests.
enum class TrapKind : uint8_t {
  kNone = 0,
  kOutOfFuel,
  kDeadline,
  kUnreachable,
  kMemoryOutOfBounds,
  kTableOutOfBounds,
  kStackExhausted,
  kIntegerDivideByZero,
  kIntegerOverflow,
  kInvalidConversion,
  kIndirectCallTypeMismatch,
  kUninitializedElement,
  kHost,
};
const char* trap_kind_name(TrapKind kind);  // "out_of_fuel", ...

struct Trap {
  TrapKind kind = TrapKind::kNone;
  std::string message;
};

enum class Tier : uint8_t { kInterp = 0, kBaseline = 1, kOptimized = 2, kAuto = 3 };
const char* tier_name(Tier tier);

// Guest calls recurse on the native stack (up to call_depth_max frames); a
// call from a thread with less stack than that needs hops to a helper thread
// (correct, but tens of µs slower). Embedders run their calls on a thread
// with a big stack instead: this runs fn on a new thread with stack_bytes of
// stack and returns what fn returns (the CLI and the benchmarks use it).
inline constexpr size_t kEmbedderStackBytes = size_t(256) << 20;
int run_with_big_stack(const std::function<int()>& fn, size_t stack_bytes = kEmbedderStackBytes);
std::optional<Tier> parse_tier(std::string_view name);

// The deterministic profile: what today's toolchains emit (clang's "generic"
// and "lime1" CPUs, rustc's default wasm32 target, wit-component's shims).
// Everything here is on by default and runs identically on every tier; a
// module using a feature that is off, or one outside the profile (threads and
// atomics, SIMD, relaxed SIMD, exceptions, tail calls, GC, typed function
// references, memory64, multi-memory), is refused with an error naming the
// feature, the function and offset where it is used, and the compiler flags
// that build without it (docs/engine.md, "Profile").
struct Features {
  bool sign_extension = true;       // deterministic, emitted by clang
  bool mutable_globals = true;      // deterministic
  bool saturating_float_to_int = true;  // deterministic
  bool multi_value = true;          // blocks and functions with several results
  // memory.copy/fill/init, data.drop, table.copy/init, elem.drop, passive
  // segments; fuel proportional to the bytes and elements moved.
  bool bulk_memory = true;
  // funcref/externref, several tables, table.get/set/grow/size/fill,
  // ref.null/is_null/func, typed select. Exports and imports still take and
  // return numbers only.
  bool reference_types = true;
  bool extended_const = true;       // i32/i64 add/sub/mul in constant initialisers
  bool floats = true;               // on, NaN-canonicalised (docs/engine.md)
};

struct EngineConfig {
  LoadLimits load_limits;             // static limits checked at load
  Features features;
  // Where compiled artifacts live. Empty: $COVENANT_CACHE_DIR, else
  // $XDG_CACHE_HOME/covenant, else ~/.cache/covenant.
  std::string cache_dir;
  uint64_t cache_size_bytes_max = 1ull << 30;  // evict least recently used past this
  std::string cc = "cc";              // optimized tier's C compiler
  std::vector<std::string> cc_flags = {"-O2"};
  uint32_t cc_timeout_ms = 120'000;   // a compile bomb is killed after this
  // Benchmarks only: false skips fuel and call-depth instrumentation so the
  // metering overhead can be measured. Fuel limits, deadlines and the depth
  // limit are then NOT enforced; never run untrusted code this way.
  bool metering = true;
};

// Per-load options.
struct LoadOptions {
  Tier tier = Tier::kOptimized;
  // Fuel metering is always on; the cost model is part of the cache key.
  // Progress of long compiles (optimized tier): called with a short status line.
  std::function<void(std::string_view)> progress;
  std::string name = "module";  // used in error messages
};

struct ImportDesc {
  std::string module;
  std::string field;
  FuncType type;
};
struct ExportDesc {
  std::string name;
  FuncType type;
};

class Instance;

// A host call's view of the calling instance: its memory and user data.
class HostCall {
 public:
  virtual ~HostCall() = default;
  // The instance's linear memory (empty if it has none). Valid until the host
  // function returns; a guest memory.grow may move it.
  virtual std::span<uint8_t> memory() = 0;
  // Calls export `export_index` of the calling instance from inside this host
  // function — e.g. its cabi_realloc, to place a result in guest memory as the
  // canonical ABI's lowering does. The nested call runs on the calling call's
  // fuel, call depth and deadline, identically on every tier. slots: the
  // arguments on entry, the results on return (as Instance::call_raw). A trap
  // inside it is returned, and the whole call then traps with that kind and
  // message whatever the host function returns. memory() may move after it.
  virtual TrapKind call_export(uint32_t export_index, uint64_t* slots) = 0;
  void* user_data = nullptr;
};

// What a host function returns: success, or a trap with a message.
struct HostResult {
  bool trapped = false;
  std::string message;
  static HostResult ok() { return {}; }
  static HostResult trap(std::string m) { return {true, std::move(m)}; }
};
using HostFn = std::function<HostResult(HostCall& call, std::span<const Value> args,
                                        std::span<Value> results)>;

// The imports an embedder offers. Deny by default: a module import with no
// definition here fails instantiation, naming module, field and type. An
// instance copies the entries it uses: the Linker may be destroyed after
// instantiate() (user_data must outlive the instance).
class Linker {
 public:
  void define(std::string module, std::string field, FuncType type, HostFn fn);
  struct Entry {
    std::string module, field;
    FuncType type;
    HostFn fn;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view module, std::string_view field) const;
  void* user_data = nullptr;  // handed to every HostCall

 private:
  std::vector<Entry> entries_;
};

// The largest fuel budget of one call: 2^63 - 1. Every tier holds the fuel
// left as a signed 64-bit count (a call that overdraws it goes negative), so a
// larger budget would wrap. Instance::call refuses a larger CallOptions::fuel
// with kInvalidArgument, naming this limit; call_raw and TypedFunc::call, which
// have no status to return, cap the budget at it (no call can burn 2^63 units:
// at 10^9 per second that is 292 years, so the cap never changes a result).
inline constexpr uint64_t kCallFuelMax = (uint64_t(1) << 63) - 1;

struct CallOptions {
  uint64_t fuel = 10'000'000;  // metering units: one per Wasm instruction; at most kCallFuelMax
  uint32_t deadline_ms = 0;    // 0: none. Polled every kFuelSliceUnits of fuel.
};

struct CallOutcome {
  std::vector<Value> results;  // empty on a trap
  uint64_t fuel_used = 0;      // identical on every tier for the same call
  Trap trap;                   // kind == kNone on success
  bool ok() const { return trap.kind == TrapKind::kNone; }
};

struct InstanceLimits {
  uint64_t memory_bytes_max = 256ull << 20;  // memory.grow past this fails (-1)
  uint32_t table_elements_max = 100'000;     // table.grow past this fails
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Tier tier() const = 0;  // for kAuto: the tier new calls use now
  virtual const std::vector<ImportDesc>& imports() const = 0;
  virtual const std::vector<ExportDesc>& exports() const = 0;
  std::optional<uint32_t> export_index(std::string_view name) const;
  // Module bytes hash (SHA-256 hex) of the original, unmetered module.
  virtual const std::string& hash_hex() const = 0;
  virtual Result<std::unique_ptr<Instance>> instantiate(const Linker& linker,
                                                        const InstanceLimits& limits = {}) = 0;
  // Timings of the load, in microseconds.
  struct LoadTimings {
    uint64_t load_us = 0;     // parse, validate, meter
    uint64_t compile_us = 0;  // translate + compile (0 if served from the cache)
    bool cache_hit = false;
  };
  virtual LoadTimings load_timings() const = 0;
};

class Instance {
 public:
  virtual ~Instance() = default;
  virtual Module& module() = 0;
  // Calls an export by index. args must match the export's params exactly.
  virtual Result<CallOutcome> call(uint32_t export_index, std::span<const Value> args,
                                   const CallOptions& options = {}) = 0;
  Result<CallOutcome> call(std::string_view export_name, std::span<const Value> args,
                           const CallOptions& options = {});
  // Fast path for embedders that know the signature: slots hold the arguments
  // (as bits) on entry and the results on return. No allocation. Returns the
  // trap kind (kNone on success); fuel_used is written in every case. A fuel
  // budget above kCallFuelMax is capped at it.
  virtual TrapKind call_raw(uint32_t export_index, uint64_t* slots, uint64_t fuel,
                            uint64_t* fuel_used) = 0;
  virtual std::span<uint8_t> memory() = 0;
  // Returns the instance to its just-instantiated state (memory, globals, tables).
  virtual Status reset() = 0;
  // The tier of the code this instance runs. Under kAuto a live instance moves
  // to optimized code only when the layouts agree; one still on baseline
  // after Module::tier() says optimized is best replaced (Contract does).
  virtual Tier tier() const = 0;
};

// The typed API: an export bound to a C++ signature, checked once, called
// without allocation (compare Wasmtime's TypedFunc). Parameter and result
// types: int32_t/uint32_t (i32), int64_t/uint64_t (i64), float (f32),
// double (f64); R may be void.
//
//   auto fib = TypedFunc<int32_t(int32_t)>::bind(*inst, "fib").value();
//   int32_t r; uint64_t fuel_used;
//   TrapKind k = fib.call(&r, 1'000'000, &fuel_used, 30);
template <class Sig>
class TypedFunc;

namespace typed_detail {
template <class T> constexpr ValType valtype_of();
template <> constexpr ValType valtype_of<int32_t>() { return ValType::kI32; }
template <> constexpr ValType valtype_of<uint32_t>() { return ValType::kI32; }
template <> constexpr ValType valtype_of<int64_t>() { return ValType::kI64; }
template <> constexpr ValType valtype_of<uint64_t>() { return ValType::kI64; }
template <> constexpr ValType valtype_of<float>() { return ValType::kF32; }
template <> constexpr ValType valtype_of<double>() { return ValType::kF64; }
template <class T> uint64_t to_bits(T v) {
  if constexpr (sizeof(T) == 4) { uint32_t b; __builtin_memcpy(&b, &v, 4); return b; }
  else { uint64_t b; __builtin_memcpy(&b, &v, 8); return b; }
}
template <class T> T from_bits(uint64_t s) {
  T v;
  if constexpr (sizeof(T) == 4) { uint32_t b = static_cast<uint32_t>(s); __builtin_memcpy(&v, &b, 4); }
  else { __builtin_memcpy(&v, &s, 8); }
  return v;
}
}  // namespace typed_detail

template <class R, class... A>
class TypedFunc<R(A...)> {
 public:
  // Binds an export; fails (kInvalidArgument) if the signature differs.
  static Result<TypedFunc> bind(Instance& instance, std::string_view name) {
    auto idx = instance.module().export_index(name);
    if (!idx) return Status::not_found("no exported function \"" + std::string(name) + "\"");
    FuncType want{{typed_detail::valtype_of<A>()...}, {}};
    if constexpr (!std::is_void_v<R>) want.results.push_back(typed_detail::valtype_of<R>());
    const FuncType& have = instance.module().exports()[*idx].type;
    if (have != want)
      return Status::invalid("export \"" + std::string(name) + "\" has type " + have.to_string() + ", not " +
                             want.to_string());
    return TypedFunc(instance, *idx);
  }
  // Runs the export. On success (kNone) *result is written (unless R is void);
  // fuel_used is written in every case.
  template <class Out = R>
  TrapKind call(Out* result, uint64_t fuel, uint64_t* fuel_used, A... args) const {
    uint64_t slots[sizeof...(A) > 0 ? sizeof...(A) : 1] = {typed_detail::to_bits(args)...};
    TrapKind k = instance_->call_raw(index_, slots, fuel, fuel_used);
    if constexpr (!std::is_void_v<R>) {
      if (k == TrapKind::kNone) *result = typed_detail::from_bits<R>(slots[0]);
    }
    return k;
  }

 private:
  TypedFunc(Instance& instance, uint32_t index) : instance_(&instance), index_(index) {}
  Instance* instance_;
  uint32_t index_;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(EngineConfig config);
  virtual ~Engine() = default;
  virtual const EngineConfig& config() const = 0;
  // Validates, applies the deterministic profile and limits, meters, and
  // compiles for options.tier (consulting the artifact cache).
  virtual Result<std::shared_ptr<Module>> load(std::span<const uint8_t> bytes,
                                               const LoadOptions& options = {}) = 0;
  // The engine version string that goes into cache keys and receipts.
  static const char* version();
};

}  // namespace covenant
