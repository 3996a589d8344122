// Limits: every static bound the engine enforces, with its default and why.
// Thread-safety: plain values. Each is configurable per Engine (EngineConfig).
#pragma once

#include <cstdint>

namespace covenant {

// Fuel is polled for the wall-clock deadline once per slice; see docs/engine.md.
inline constexpr uint64_t kFuelSliceUnits = 1u << 16;

// Wasm pages are 64 KiB.
inline constexpr uint64_t kWasmPageBytes = 65536;

struct LoadLimits {
  uint64_t module_size_bytes_max = 16u << 20;    // contracts are small; 16 MiB is generous
  uint32_t functions_max = 20'000;                // bounds compile time and artifact size
  uint32_t imports_max = 1'000;
  uint32_t exports_max = 1'000;
  uint32_t locals_per_function_max = 10'000;      // bounds native frame size on every tier
  uint32_t function_body_size_bytes_max = 1u << 20;  // compile bomb guard for tcc and cc
  uint32_t memory_initial_pages_max = 1'024;      // 64 MiB at instantiation
  uint32_t memory_max_pages_max = 65'536;         // 4 GiB: the Wasm32 ceiling
  uint32_t table_initial_elements_max = 100'000;
  uint32_t table_max_elements_max = 1'000'000;
  uint64_t data_segment_size_bytes_max = 16u << 20;  // total bytes across data segments, active and passive
  // Nesting of block/loop/if in one function. Every stage of the pipeline
  // (libwabt's IR, metering, the C writers) recurses on it, so it bounds the
  // host's own stack use while loading.
  uint32_t block_nesting_max = 1024;
  // Deterministic call depth, in units: a frame costs 1 + (params + locals) / 64
  // units (docs/engine.md), and a call past this many traps stack_exhausted at the
  // same frame on every tier. Frames of up to 63 params and locals get 16,384 deep.
  uint32_t call_depth_max = 16'384;
};

static_assert(kFuelSliceUnits >= 1024, "a slice must amortise the deadline poll");

}  // namespace covenant
