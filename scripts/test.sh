#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the Release suite
# (SQLite and a throwaway PostgreSQL server), then the ASan+UBSan job and the
# ThreadSanitizer job. Exit code is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

bash scripts/setup.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"

# A real PostgreSQL server for the ledger conformance suite (local socket only).
if [ -f scripts/pg.sh ]; then
  eval "$(bash scripts/pg.sh start)"
  export COVENANT_REQUIRE_PG=1  # PostgreSQL cases fail, never skip, if the server is missing
  echo "PostgreSQL: $COVENANT_PG_URL"
  trap 'bash scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT
fi

export COVENANT_CACHE_DIR
COVENANT_CACHE_DIR=$(mktemp -d /tmp/covenant-ci-cache.XXXXXX)

echo "== Release suite"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900

if [ "${COVENANT_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== ASan+UBSan suite"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCOVENANT_SANITIZE=address >/dev/null
  cmake --build build-asan -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1:allow_user_segv_handler=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" --timeout 900 -LE no_sanitizer

  echo "== ThreadSanitizer: concurrency"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOVENANT_SANITIZE=thread >/dev/null
  cmake --build build-tsan -j"$JOBS" --target wasm_concurrency_test pipeline_test http_test
  TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -R 'Concurrency|PipelineTest|Http' --timeout 900
fi
