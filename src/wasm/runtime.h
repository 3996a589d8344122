// Covenant's own wasm2c runtime (the functions wasm-rt.h declares), shared by
// the baseline (tcc) and optimized (cc) tiers.
//
// Why not Debian's libwasm-rt-impl.a: it keeps the trap jump buffer and the
// signal state in globals, so two threads running guests at once corrupt each
// other. Here the trap state is thread-local, linear memories are 8 GiB
// reservations with guard pages (no bounds checks in generated code), and
// reservations are pooled so instantiation does not mmap on the hot path.
//
// Thread-safety: everything here may be called from any thread; a GuestScope
// is per thread. Ownership: LinearMemory reservations return to the pool when
// freed.
#pragma once

#include <csetjmp>
#include <cstdint>
#include <string>

#include "covenant/engine.h"

extern "C" {
#include "wasm-rt.h"
}

namespace covenant::wasm {

// Trap codes raised by generated code: wasm_rt_trap_t values plus ours.
enum RtTrap : int {
  kRtTableOutOfBounds = 100,
  kRtUninitializedElement = 101,
  kRtHost = 102,
  kRtStackGuard = 103,  // SIGSEGV on the native stack guard (backstop)
};

// The function table a compiled module calls into for everything it needs from
// the host. Its layout is mirrored in the C glue (c_tier.cc): keep in sync.
struct RtTable {
  void (*trap)(int code);
  void (*allocate_memory)(wasm_rt_memory_t*, uint32_t initial, uint32_t max);
  uint32_t (*grow_memory)(wasm_rt_memory_t*, uint32_t delta);
  void (*free_memory)(wasm_rt_memory_t*);
  void (*allocate_funcref_table)(wasm_rt_funcref_table_t*, uint32_t elements, uint32_t max);
  void (*free_funcref_table)(wasm_rt_funcref_table_t*);
  uint32_t (*grow_funcref_table)(wasm_rt_funcref_table_t*, uint32_t delta, wasm_rt_funcref_t init);
  void (*host_call)(void* ctx, uint32_t import_index, uint64_t* slots);
  void (*allocate_externref_table)(wasm_rt_externref_table_t*, uint32_t elements, uint32_t max);
  void (*free_externref_table)(wasm_rt_externref_table_t*);
  uint32_t (*grow_externref_table)(wasm_rt_externref_table_t*, uint32_t delta, wasm_rt_externref_t init);
};
const RtTable& rt_table();

// Per-thread instantiation limits, set by an instance before it instantiates.
struct ThreadState {
  // Limits applied by allocate_memory during instantiation. (The trap and
  // fault state lives in GuestTls below, which a signal handler may read.)
  uint32_t memory_pages_cap = 65536;
  uint32_t table_elements_cap = 1u << 20;
};
ThreadState& thread_state();

// Installs the SIGSEGV/SIGBUS handler and this thread's alternate signal stack
// (idempotent, cheap after the first call on a thread).
void ensure_signal_handling();

// Bytes of native stack left below the current frame on this thread.
size_t stack_remaining_bytes();

// Maps a wasm_rt trap code (or an RtTrap) to a Covenant trap kind. `reason` is
// the metered module's cvtrap global, consulted for `unreachable`.
TrapKind classify_rt_trap(int code, uint32_t reason);

// Reservation size of one linear memory: 4 GiB of address space plus a 32-bit
// static offset, plus a guard for the widest access.
inline constexpr uint64_t kReservationBytes = (8ull << 30) + (64u << 10);

// What the fault handler reads: a POD thread-local (no lazy initialisation, so
// reading it in a signal handler is async-signal-safe and the hot path can
// touch it without a TLS wrapper call).
struct GuestTls {
  sigjmp_buf* jmp;
  int in_guest;
  uintptr_t mem_lo, mem_hi;
  uintptr_t stack_lo, stack_hi;
  int altstack_ready;
};
extern thread_local GuestTls t_guest;


}  // namespace covenant::wasm
