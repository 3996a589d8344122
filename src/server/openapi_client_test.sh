#!/usr/bin/env bash
# ctest openapi_client: starts `covenant serve` on a fresh data directory and
# drives it with a client generated from src/server/openapi.json by standard npm
# tools (tools/openapi/client_test.mjs: openapi-typescript + openapi-fetch), then
# stops it with SIGTERM and expects a clean exit. Args: COVENANT_CLI SEED_WASM SOURCE_DIR
set -euo pipefail
CLI=$1 SEED=$2 SRC=$3
if [ ! -d "$SRC/tools/openapi/node_modules" ]; then
  echo "tools/openapi/node_modules is missing: run scripts/setup.sh"; exit 1
fi
D=$(mktemp -d)
"$CLI" serve --listen 127.0.0.1:0 --data "$D/data" >"$D/stdout" 2>"$D/server.log" &
PID=$!
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$D"' EXIT
for _ in $(seq 200); do [ -s "$D/stdout" ] && break; sleep 0.05; done
URL=$(sed -n '1s/^listening on //p' "$D/stdout")
[ -n "$URL" ] || { echo "server did not start"; cat "$D/server.log"; exit 1; }
COVENANT_URL=$URL COVENANT_ADMIN_KEY=$(cat "$D/data/admin.key") COVENANT_SEED_WASM=$SEED \
  node --test "$SRC/tools/openapi/client_test.mjs"
kill -TERM $PID
rc=0; wait $PID || rc=$?
[ "$rc" = 0 ] || { echo "server exited $rc after SIGTERM"; tail -5 "$D/server.log"; exit 1; }
echo "openapi_client: ok"
