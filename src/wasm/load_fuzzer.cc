// libFuzzer target: loading arbitrary bytes (parse, validate, profile, limits,
// metering) never crashes, hangs or leaks. Built with clang by CMake
// (target load_fuzzer) and run for a bounded time by ctest (wasm_load_fuzz).
#include <cstddef>
#include <cstdint>
#include <span>

#include "wasm/prepare.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  covenant::LoadLimits limits;
  limits.module_size_bytes_max = 1u << 20;
  auto r = covenant::wasm::prepare_module(std::span<const uint8_t>(data, size), limits, {});
  if (r.is_ok() && r->metered.empty()) __builtin_trap();  // a loaded module always meters to bytes
  return 0;
}
