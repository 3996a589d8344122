// Internal: the pieces engine.cc assembles into Module and Instance.
// Thread-safety: CCode and InterpCode are immutable after creation and shared.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "covenant/engine.h"
#include "wasm/prepare.h"

namespace covenant::wasm {

struct CCode;       // a loaded baseline or optimized compilation (c_tier.cc)
struct InterpCode;  // a module read for wabt's interpreter (interp_tier.cc)

// The code that new calls use; the auto tier swaps it when optimized is ready.
struct CodeSlot {
  std::mutex mu;
  std::shared_ptr<CCode> code;
  std::atomic<uint32_t> generation{0};
  std::shared_ptr<CCode> get() {
    std::lock_guard<std::mutex> lock(mu);
    return code;
  }
  void set(std::shared_ptr<CCode> c) {
    std::lock_guard<std::mutex> lock(mu);
    code = std::move(c);
    generation.fetch_add(1, std::memory_order_release);
  }
};

class ModuleImpl : public Module, public std::enable_shared_from_this<ModuleImpl> {
 public:
  Tier tier() const override;
  const std::vector<ImportDesc>& imports() const override { return prep->imports; }
  const std::vector<ExportDesc>& exports() const override { return prep->exports; }
  const std::string& hash_hex() const override { return prep->hash_hex; }
  Result<std::unique_ptr<Instance>> instantiate(const Linker& linker, const InstanceLimits& limits) override;
  LoadTimings load_timings() const override { return timings; }

  Tier requested = Tier::kOptimized;
  std::shared_ptr<const PreparedModule> prep;
  EngineConfig config;
  LoadTimings timings;
  std::shared_ptr<InterpCode> interp;
  std::shared_ptr<CodeSlot> slot = std::make_shared<CodeSlot>();
};

Tier code_tier(const CCode& code);

// Resolves every import against the linker, checking types. Returns copies, so
// instances do not depend on the Linker staying alive.
Result<std::vector<Linker::Entry>> resolve_imports(const PreparedModule& prep, const Linker& linker);

// Wasm -> C with libwabt's C writer, plus Covenant's glue.
Result<std::string> generate_c(const PreparedModule& prep, const Features& features);
Result<std::shared_ptr<CCode>> compile_baseline(const PreparedModule& prep, const EngineConfig& config,
                                                uint64_t* compile_us);
Result<std::shared_ptr<CCode>> compile_optimized(const PreparedModule& prep, const EngineConfig& config,
                                                 const std::function<void(std::string_view)>& progress,
                                                 uint64_t* compile_us, bool* cache_hit);
Result<std::unique_ptr<Instance>> instantiate_c(std::shared_ptr<ModuleImpl> module, const Linker& linker,
                                                const InstanceLimits& limits);

Result<std::shared_ptr<InterpCode>> load_interp(const PreparedModule& prep, const Features& features);
Result<std::unique_ptr<Instance>> instantiate_interp(std::shared_ptr<ModuleImpl> module, const Linker& linker,
                                                     const InstanceLimits& limits);

// Runs fn on a thread with at least `stack_bytes` of stack, waiting for it.
void run_on_big_stack(const std::function<void()>& fn, size_t stack_bytes);

// Native stack an Instance::call needs on the calling thread; calls from a
// thread with less run on a helper thread (slower, same result).
size_t required_stack_bytes(uint32_t call_depth_max);

// Deadline watchdog: fire() runs on the watchdog thread once the deadline passes
// unless the returned token is cancelled first.
class DeadlineToken {
 public:
  DeadlineToken() = default;
  DeadlineToken(uint32_t deadline_ms, std::function<void()> fire);
  ~DeadlineToken();
  DeadlineToken(const DeadlineToken&) = delete;
  DeadlineToken& operator=(const DeadlineToken&) = delete;

 private:
  uint64_t id_ = 0;
};

// Instance::call's check of the budget (engine.h, kCallFuelMax).
inline Status check_call_fuel(uint64_t fuel) {
  if (fuel <= kCallFuelMax) return Status::ok();
  return Status::invalid("fuel budget " + std::to_string(fuel) + " is out of range (at most 2^63 - 1 = " +
                         std::to_string(kCallFuelMax) + ")");
}

// Computes fuel used from what the metered globals hold after a call.
inline uint64_t fuel_used_after(uint64_t fuel, int64_t remaining, TrapKind kind) {
  if (kind == TrapKind::kOutOfFuel || remaining < 0) return fuel;
  return fuel - static_cast<uint64_t>(remaining);
}

}  // namespace covenant::wasm
