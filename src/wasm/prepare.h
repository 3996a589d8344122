// Load-time preparation shared by every tier: parse and validate with libwabt,
// enforce the deterministic profile and static limits, then rewrite the module
// so that metering, call depth and NaN canonicalisation are part of the Wasm
// itself. Every tier runs the same rewritten ("metered") bytes, which is why
// they agree on fuel, call depth and float bits.
//
// Thread-safety: pure functions. Ownership: PreparedModule owns its buffers.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "covenant/engine.h"

namespace covenant::wasm {

// Reserved names in the metered module. User exports are renamed e0..eN and
// user function imports h.i0..h.iN so that no user name can collide with these
// or reach the generated C as an identifier.
inline constexpr const char* kFuelGlobal = "cvfuel";    // i64: fuel left in this slice
inline constexpr const char* kBankGlobal = "cvbank";    // i64: fuel not yet sliced
inline constexpr const char* kInterruptGlobal = "cvint";  // i32: set by the deadline watchdog
inline constexpr const char* kTrapGlobal = "cvtrap";    // i32: why `unreachable` ran (TrapReason)
inline constexpr const char* kDepthGlobal = "cvdepth";  // i32: current call depth
inline constexpr const char* kMemoryExport = "cvmem";
inline constexpr const char* kStartExport = "cvstart";
inline constexpr const char* kImportModule = "h";

// Fuel of memory.copy, memory.fill and memory.init beyond their own unit: one
// unit per this many bytes moved, or part of it. Table operations pay one unit
// per element. Charged in the metered Wasm before the operation runs.
inline constexpr uint64_t kBulkBytesPerFuelUnit = 8;

// A frame counts one unit against call_depth_max, plus one per this many of
// its params and locals (8 bytes each natively: 512 bytes a unit).
inline constexpr uint32_t kFrameSlotsPerDepthUnit = 64;

// Value of cvtrap when the metering code executes `unreachable`.
enum TrapReason : uint32_t {
  kReasonNone = 0,  // the guest's own `unreachable`
  kReasonFuel = 1,
  kReasonDepth = 2,
  kReasonDeadline = 3,
};

struct MemoryInfo {
  bool present = false;
  uint32_t initial_pages = 0;
  uint32_t max_pages = 65536;  // declared maximum (or the Wasm32 ceiling)
};

struct PreparedModule {
  std::vector<uint8_t> metered;       // the rewritten module, valid Wasm
  std::vector<ImportDesc> imports;    // user function imports, in index order
  std::vector<ExportDesc> exports;    // user function exports, in export order
  MemoryInfo memory;
  // Memory contents at instantiation (active data segments applied), trimmed to
  // the last non-zero byte. Installed by the runtime, not by the tiers.
  std::vector<uint8_t> memory_image;
  bool has_start = false;
  std::string hash_hex;               // SHA-256 of the original bytes
  uint32_t call_depth_max = 0;
};

// Parses, validates, checks limits and profile, and meters. Errors name the
// section, function index and byte offset where they can.
Result<PreparedModule> prepare_module(std::span<const uint8_t> bytes, const LoadLimits& limits,
                                      const Features& features, bool metering = true);

// One unsigned LEB128 u32 at b[pos] (at most 5 bytes, no overflow); advances pos.
bool read_leb_u32(std::span<const uint8_t> b, size_t& pos, uint32_t& out);

// Describes a byte offset of a module as "section 'code', function 3, offset 0x1f".
std::string describe_offset(std::span<const uint8_t> bytes, uint64_t offset);

}  // namespace covenant::wasm
