#!/usr/bin/env bash
# Differential soak outside CI: many more fuzz modules, a fresh seed each run.
#   bash scripts/soak.sh [COUNT] [SEED]      (defaults: 20000, random)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-20000}
SEED=${2:-$RANDOM}
bash scripts/setup.sh
cmake -S . -B build-soak -DCMAKE_BUILD_TYPE=Release -DCOVENANT_FUZZ_COUNT="$COUNT" -DCOVENANT_FUZZ_SEED="$SEED" >/dev/null
cmake --build build-soak -j"${JOBS:-2}" --target wasm_differential_test fuzz_corpus
echo "soak: $COUNT modules, seed $SEED"
COVENANT_CACHE_DIR=$(mktemp -d) ctest --test-dir build-soak -R Differential -j"${JOBS:-2}" --output-on-failure --timeout 86400
