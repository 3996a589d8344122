// Internal: bridges between Covenant's feature profile and libwabt's.
#pragma once

#include "covenant/engine.h"
#include "wabt/feature.h"

namespace covenant::wasm {

// The user-facing deterministic profile (what a contract may use).
wabt::Features wabt_features(const Features& f);
// The profile of the metered module (adds mutable-global exports).
wabt::Features metered_features(const Features& f);

}  // namespace covenant::wasm
