#include <pthread.h>
#include <sodium.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <thread>

#include "wasm/prepare.h"
#include "wasm/runtime.h"
#include "wasm/tiers.h"

namespace covenant {

const char* valtype_name(ValType t) {
  switch (t) {
    case ValType::kI32: return "i32";
    case ValType::kI64: return "i64";
    case ValType::kF32: return "f32";
    case ValType::kF64: return "f64";
  }
  return "?";
}

std::string FuncType::to_string() const {
  std::string s = "(";
  for (size_t i = 0; i < params.size(); ++i) s += (i ? ", " : "") + std::string(valtype_name(params[i]));
  s += ") -> (";
  for (size_t i = 0; i < results.size(); ++i) s += (i ? ", " : "") + std::string(valtype_name(results[i]));
  return s + ")";
}

const char* trap_kind_name(TrapKind kind) {
  switch (kind) {
    case TrapKind::kNone: return "none";
    case TrapKind::kOutOfFuel: return "out_of_fuel";
    case TrapKind::kDeadline: return "deadline";
    case TrapKind::kUnreachable: return "unreachable";
    case TrapKind::kMemoryOutOfBounds: return "memory_out_of_bounds";
    case TrapKind::kTableOutOfBounds: return "table_out_of_bounds";
    case TrapKind::kStackExhausted: return "stack_exhausted";
    case TrapKind::kIntegerDivideByZero: return "integer_divide_by_zero";
    case TrapKind::kIntegerOverflow: return "integer_overflow";
    case TrapKind::kInvalidConversion: return "invalid_conversion";
    case TrapKind::kIndirectCallTypeMismatch: return "indirect_call_type_mismatch";
    case TrapKind::kUninitializedElement: return "uninitialized_element";
    case TrapKind::kHost: return "host";
  }
  return "unknown";
}

const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::kInterp: return "interp";
    case Tier::kBaseline: return "baseline";
    case Tier::kOptimized: return "optimized";
    case Tier::kAuto: return "auto";
  }
  return "?";
}

std::optional<Tier> parse_tier(std::string_view name) {
  for (Tier t : {Tier::kInterp, Tier::kBaseline, Tier::kOptimized, Tier::kAuto})
    if (name == tier_name(t)) return t;
  return std::nullopt;
}

void Linker::define(std::string module, std::string field, FuncType type, HostFn fn) {
  for (auto& e : entries_) {
    if (e.module == module && e.field == field) {
      e.type = std::move(type);
      e.fn = std::move(fn);
      return;
    }
  }
  entries_.push_back({std::move(module), std::move(field), std::move(type), std::move(fn)});
}

const Linker::Entry* Linker::find(std::string_view module, std::string_view field) const {
  for (const auto& e : entries_)
    if (e.module == module && e.field == field) return &e;
  return nullptr;
}

std::optional<uint32_t> Module::export_index(std::string_view name) const {
  const auto& ex = exports();
  for (size_t i = 0; i < ex.size(); ++i)
    if (ex[i].name == name) return static_cast<uint32_t>(i);
  return std::nullopt;
}

Result<CallOutcome> Instance::call(std::string_view export_name, std::span<const Value> args,
                                   const CallOptions& options) {
  auto idx = module().export_index(export_name);
  if (!idx) {
    std::string known;
    for (const auto& e : module().exports()) known += (known.empty() ? "" : ", ") + e.name;
    return Status::not_found("no exported function \"" + std::string(export_name) + "\" (exports: " +
                             (known.empty() ? "none" : known) + ")");
  }
  return call(*idx, args, options);
}

// Part of every artifact's cache key: bump it whenever the glue or the runtime
// table (RtTable) a compiled artifact links against changes, so no process
// loads an artifact built against another layout. 0.2.0: externref tables and
// multi-value glue (issue 9).
const char* Engine::version() { return "covenant-engine/0.2.0 wabt/1.0.32"; }

int run_with_big_stack(const std::function<int()>& fn, size_t stack_bytes) {
  int rc = 0;
  wasm::run_on_big_stack([&] { rc = fn(); }, stack_bytes);
  return rc;
}

namespace wasm {

Result<std::vector<Linker::Entry>> resolve_imports(const PreparedModule& prep, const Linker& linker) {
  std::vector<Linker::Entry> out;
  for (const ImportDesc& imp : prep.imports) {
    const Linker::Entry* e = linker.find(imp.module, imp.field);
    if (!e)
      return Status::not_found("unresolved import \"" + imp.module + "\" \"" + imp.field + "\" of type " +
                               imp.type.to_string() + ": nothing is granted under that name");
    if (e->type != imp.type)
      return Status::invalid("import \"" + imp.module + "\" \"" + imp.field + "\" expects type " +
                             imp.type.to_string() + " but the host provides " + e->type.to_string());
    out.push_back(*e);
  }
  return out;
}

size_t required_stack_bytes(uint32_t call_depth_max) {
  // call_depth_max counts depth units, not frames: a frame counts one unit per
  // 64 params and locals (kFrameSlotsPerDepthUnit, 512 bytes) and one more
  // (prepare.cc), so 1 KiB a unit covers the frame's slots (tcc keeps every
  // local in the frame) and its overhead; 1 MiB covers host frames.
  return size_t(call_depth_max) * 1024 + (1u << 20);
}

void run_on_big_stack(const std::function<void()>& fn, size_t stack_bytes) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  struct Ctx {
    const std::function<void()>* fn;
  } ctx{&fn};
  pthread_t th;
  auto body = [](void* p) -> void* {
    (*static_cast<Ctx*>(p)->fn)();
    return nullptr;
  };
  if (pthread_create(&th, &attr, body, &ctx) != 0) {
    pthread_attr_destroy(&attr);
    fn();  // best effort: the native guard still turns overflow into a trap
    return;
  }
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
}

namespace {

// One watchdog thread for all deadlines.
class Watchdog {
 public:
  static Watchdog& get() {
    static Watchdog* w = new Watchdog();  // never destroyed: may outlive main
    return *w;
  }
  uint64_t add(std::chrono::steady_clock::time_point when, std::function<void()> fire) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t id = ++next_;
    // Wake the watchdog only when this deadline is the earliest: a server adds one per
    // call, almost always later than one already pending, and a wake-up per call would
    // cost a context switch each.
    bool earliest = true;
    for (const auto& [other, e] : entries_) {
      if (e.when <= when) {
        earliest = false;
        break;
      }
    }
    entries_[id] = {when, std::move(fire)};
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    if (earliest) cv_.notify_one();
    return id;
  }
  void cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.erase(id);
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      auto now = std::chrono::steady_clock::now();
      auto next = now + std::chrono::hours(1);
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second.when <= now) {
          it->second.fire();
          it = entries_.erase(it);
        } else {
          next = std::min(next, it->second.when);
          ++it;
        }
      }
      cv_.wait_until(lock, next);
    }
  }
  struct Entry {
    std::chrono::steady_clock::time_point when;
    std::function<void()> fire;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_ = 0;
  std::thread thread_;
};

uint64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(EngineConfig config) : config_(std::move(config)) {}
  const EngineConfig& config() const override { return config_; }

  Result<std::shared_ptr<Module>> load(std::span<const uint8_t> bytes, const LoadOptions& options) override {
    // Loading recurses on block nesting (libwabt's IR, metering, the C
    // writers): bounded by block_nesting_max, and run on a big stack when the
    // caller's is small, so hostile nesting cannot overflow the host.
    constexpr size_t kLoadStackBytes = size_t(256) << 20;
    if (stack_remaining_bytes() < kLoadStackBytes / 4) {
      std::optional<Result<std::shared_ptr<Module>>> r;
      run_on_big_stack([&] { r.emplace(load_here(bytes, options)); }, kLoadStackBytes);
      return std::move(*r);
    }
    return load_here(bytes, options);
  }

  Result<std::shared_ptr<Module>> load_here(std::span<const uint8_t> bytes, const LoadOptions& options) {
    uint64_t t0 = now_us();
    auto prep = prepare_module(bytes, config_.load_limits, config_.features, config_.metering);
    if (!prep) return prep.status();
    auto m = std::make_shared<ModuleImpl>();
    m->requested = options.tier;
    m->config = config_;
    m->prep = std::make_shared<const PreparedModule>(std::move(*prep));
    m->timings.load_us = now_us() - t0;
    switch (options.tier) {
      case Tier::kInterp: {
        uint64_t t1 = now_us();
        auto code = load_interp(*m->prep, config_.features);
        if (!code) return code.status();
        m->interp = std::move(*code);
        m->timings.compile_us = now_us() - t1;
        break;
      }
      case Tier::kBaseline: {
        auto code = compile_baseline(*m->prep, config_, &m->timings.compile_us);
        if (!code) return code.status();
        m->slot->set(std::move(*code));
        break;
      }
      case Tier::kOptimized: {
        auto code = compile_optimized(*m->prep, config_, options.progress, &m->timings.compile_us,
                                      &m->timings.cache_hit);
        if (!code) return code.status();
        m->slot->set(std::move(*code));
        break;
      }
      case Tier::kAuto: {
        // Serve from baseline now; swap in optimized when it is ready. A
        // cached optimized artifact is used at once.
        auto code = compile_baseline(*m->prep, config_, &m->timings.compile_us);
        if (!code) return code.status();
        m->slot->set(std::move(*code));
        std::thread([slot = m->slot, prep = m->prep, config = config_] {
          uint64_t us = 0;
          bool hit = false;
          auto opt = compile_optimized(*prep, config, nullptr, &us, &hit);
          if (opt) slot->set(std::move(*opt));
          // On failure the module stays on baseline: correct, just slower.
        }).detach();
        break;
      }
    }
    return std::shared_ptr<Module>(std::move(m));
  }

 private:
  EngineConfig config_;
};

}  // namespace

DeadlineToken::DeadlineToken(uint32_t deadline_ms, std::function<void()> fire)
    : id_(Watchdog::get().add(std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms),
                              std::move(fire))) {}

DeadlineToken::~DeadlineToken() {
  if (id_) Watchdog::get().cancel(id_);
}

Tier ModuleImpl::tier() const {
  if (requested == Tier::kInterp) return Tier::kInterp;
  auto code = slot->get();
  return code ? code_tier(*code) : requested;
}

Result<std::unique_ptr<Instance>> ModuleImpl::instantiate(const Linker& linker, const InstanceLimits& limits) {
  if (requested == Tier::kInterp) return instantiate_interp(shared_from_this(), linker, limits);
  return instantiate_c(shared_from_this(), linker, limits);
}

}  // namespace wasm

Result<std::unique_ptr<Engine>> Engine::create(EngineConfig config) {
  if (sodium_init() < 0) return Status::internal("libsodium failed to initialise");
  if (config.load_limits.call_depth_max < 1) return Status::invalid("call_depth_max must be at least 1");
  return std::unique_ptr<Engine>(new wasm::EngineImpl(std::move(config)));
}

}  // namespace covenant
