// Internal: Covenant's own Wasm -> C translator for the baseline (libtcc) tier.
//
// libwabt's C writer emits one statement per Wasm instruction through stack
// variables and inline accessor functions; gcc folds all of that away, tcc
// does not (it spills every named variable and never inlines). This writer
// emits C shaped for tcc instead: the operand stack is folded into nested C
// expressions (tcc keeps a statement's temporaries in registers), memory
// accesses are direct pointer dereferences off a base cached in a local (the
// runtime's 8 GiB guard-page reservations make bounds checks unnecessary, and
// a memory never moves), and the unit includes no system header (a small
// self-contained prelude replaces wasm-rt.h, math.h and friends, which is most
// of tcc's fixed compile cost).
//
// Semantics are exactly those of the wasm2c output the other C tier runs:
// same trap codes (wasm_rt_trap_t plus RtTrap), same order of traps and side
// effects, same fuel and call depth (they are in the metered Wasm). The glue
// symbols are the same (covenant_exports, covenant_instance_size, ...); the
// instance struct is this writer's own, so code from this writer and wasm2c
// code cannot be swapped under a live instance (see c_tier.cc maybe_upgrade).
//
// Thread-safety: pure function.
#pragma once

#include <string>

#include "covenant/engine.h"
#include "wasm/prepare.h"

namespace covenant::wasm {

// C source for the metered module plus glue, for libtcc. Returns
// Code::kUnsupported for what the writer does not handle (multi-value, bulk
// memory, passive segments); the caller then falls back to wasm2c.
Result<std::string> generate_tcc_c(const PreparedModule& prep, const Features& features);

}  // namespace covenant::wasm
