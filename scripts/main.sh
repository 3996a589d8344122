#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds the
# CLI and the example contract (C -> wasm32 with clang), then runs the contract
# on every tier and prints results, fuel and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"${JOBS:-2}" --target covenant contract_policy
export COVENANT_CACHE_DIR=${COVENANT_CACHE_DIR:-$PWD/build/cache}
C=build/covenant
W=build/contracts/policy.wasm

echo "== example contract: $W ($(stat -c %s $W) bytes), seed policy in C"
for tier in interp baseline optimized auto; do
  echo "-- tier $tier"
  echo "   approve(max 1000, requested 250, expires 2026-01-01, now 2025-01-01):"
  $C run $W approve 1000 250 1767225600 1735689600 --tier $tier | sed 's/^/     /'
  for i in 0 1 2 3; do
    printf '   sample_intent %s: ' "$i"
    $C run $W sample_intent $i 200000 1735689600 --tier $tier --json
  done
done
echo "-- a runaway contract stops on fuel, identically on every tier (exit code 2 = trap)"
for tier in interp baseline optimized; do
  $C run $W spend_fuel 100000000 --fuel 50000 --tier $tier --json || true
done
echo "-- precompiling into the artifact cache ($COVENANT_CACHE_DIR)"
$C compile $W --tier optimized
