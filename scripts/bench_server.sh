#!/usr/bin/env bash
# The server benchmark (docs/benchmarks.md "Server"): durable signed approvals
# per second at saturation with wrk (keep-alive, the seed policy), p50/p99 at
# about half that rate, an upgrade under load (failed requests, p99, time to the
# first decision on the new version), and optionally a memory soak; beside them,
# measured in the same run, the physical references: Ed25519 signatures/s on
# one core and fsyncs/s on the ledger's disk.
#
#   bash scripts/bench_server.sh [--backend sqlite|postgres] [--duration S] [--connections N] [--soak S]
#   bash scripts/bench_server.sh --approvals [...]   # holds, budgets and signed intents: scripts/bench_approvals.sh
#
# Not a test: it prints figures, it does not pass or fail on them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --approvals ]; then shift; exec bash scripts/bench_approvals.sh "$@"; fi
BACKEND=sqlite DURATION=10 CONNS=256 SOAK=0
while [ $# -gt 0 ]; do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --soak) SOAK=$2; shift 2 ;;
    *) echo "usage: $0 [--backend sqlite|postgres] [--duration S] [--connections N] [--soak S]"; exit 1 ;;
  esac
done
bash scripts/setup.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 >/dev/null
C=$PWD/build/covenant
W=$(mktemp -d)
cleanup() { [ -n "${SERVER:-}" ] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

LEDGER_ARGS=()
if [ "$BACKEND" = postgres ]; then
  eval "$(bash scripts/pg.sh start)"
  LEDGER_ARGS=(--ledger "$COVENANT_PG_URL" --pg-schema "bench_$$")
fi

echo "== references (same machine, same run)"
REFS=$(build/src/server/bench_server_refs "$W")
echo "   $REFS"

"$C" serve --listen 127.0.0.1:0 --data "$W/data" --workers "$CONNS" "${LEDGER_ARGS[@]}" \
  >"$W/stdout" 2>"$W/server.log" &
SERVER=$!
for _ in $(seq 200); do [ -s "$W/stdout" ] && break; sleep 0.05; done
URL=$(sed -n '1s/^listening on //p' "$W/stdout")
ADMIN=$(cat "$W/data/admin.key")
key() { curl -sS -X POST "$URL/v1/keys" -H "Authorization: Bearer $ADMIN" -d "{\"tenant\":\"bench\",\"role\":\"$1\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
DEPLOYER=$(key deployer) CALLER=$(key caller)
deploy_body() { python3 -c "import base64,json,sys; print(json.dumps({'wasm_base64': base64.b64encode(open(sys.argv[1],'rb').read()).decode()}))" "$1"; }
deploy_body build/contracts/seed_c.wasm >"$W/v1.json"
V1=$(curl -sS -X PUT "$URL/v1/contracts/seed" -H "Authorization: Bearer $DEPLOYER" --data-binary @"$W/v1.json" |
     python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
EXP=$(( ($(date +%s) + 86400) * 1000 ))
cat >"$W/approve.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $CALLER"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"agent_id":"agent-7","task_type":"inference","max_units":"500","expires_at_ms":"$EXP"}'
local d = tonumber(os.getenv("WRK_DELAY_MS") or "0")
function delay() return d end
EOF
rate() { sed -n 's/^Requests\/sec: *//p' "$1"; }
pct() { awk -v p="$2" '$1 == p"%" {print $2}' "$1"; }
non2xx() { sed -n 's/.*Non-2xx or 3xx responses: *//p' "$1" | grep . || echo 0; }
errors() { sed -n 's/.*Socket errors: *//p' "$1" | grep . || echo none; }

echo "== saturation: wrk -t2 -c$CONNS -d${DURATION}s, keep-alive, seed policy, $BACKEND"
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$W/approve.lua" "$URL/v1/contracts/seed/approve" >"$W/sat.txt"
SAT=$(rate "$W/sat.txt")
echo "   durable signed approvals/s: $SAT   p50 $(pct "$W/sat.txt" 50)  p99 $(pct "$W/sat.txt" 99)   non-2xx: $(non2xx "$W/sat.txt")  socket errors: $(errors "$W/sat.txt")"

# About half the saturated rate: 64 connections, each pausing between requests.
HALF=$(python3 -c "print(max(1, int(float('$SAT') / 2)))")
DELAY=$(python3 -c "print(max(0, int(64 * 1000 / $HALF)))")
echo "== half load: target ~$HALF/s (64 connections, ${DELAY} ms pause each)"
WRK_DELAY_MS=$DELAY wrk -t2 -c64 -d"${DURATION}s" --latency -s "$W/approve.lua" "$URL/v1/contracts/seed/approve" >"$W/half.txt"
echo "   achieved $(rate "$W/half.txt")/s   p50 $(pct "$W/half.txt" 50)  p99 $(pct "$W/half.txt" 99)  non-2xx: $(non2xx "$W/half.txt")"

echo "== upgrade under load: activate a new version while 64 connections send approvals"
# A different module of the same world (the seed policy in Rust) is the new version.
deploy_body build/contracts/examples/policy_rust.wasm >"$W/v2.json"
V2=$(curl -sS -X PUT "$URL/v1/contracts/seed" -H "Authorization: Bearer $DEPLOYER" --data-binary @"$W/v2.json" |
     python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["version"])')
[ "$V2" != "$V1" ] || { echo "   the two builds are identical; skipping the upgrade"; V2=""; }
if [ -n "$V2" ]; then
  wrk -t2 -c64 -d"${DURATION}s" --latency -s "$W/approve.lua" "$URL/v1/contracts/seed/approve" >"$W/upgrade.txt" &
  WRK=$!
  sleep "$(python3 -c "print($DURATION / 2)")"
  T0=$(date +%s%N)
  curl -sS -X POST "$URL/v1/contracts/seed/activate" -H "Authorization: Bearer $DEPLOYER" -d "{\"version\":\"$V2\"}" >/dev/null
  T1=$(date +%s%N)
  for _ in $(seq 1000); do
    v=$(curl -sS -X POST "$URL/v1/contracts/seed/approve" -H "Authorization: Bearer $CALLER" \
          -d "{\"agent_id\":\"agent-8\",\"task_type\":\"inference\",\"max_units\":\"5\",\"expires_at_ms\":\"$EXP\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("version",""))')
    [ "$v" = "$V2" ] && break
  done
  T2=$(date +%s%N)
  wait $WRK
  echo "   activate call: $(( (T1 - T0) / 1000000 )) ms; activation -> first decision on the new version (one request later): $(( (T2 - T1) / 1000000 )) ms"
  echo "   during the swap: $(rate "$W/upgrade.txt")/s  p99 $(pct "$W/upgrade.txt" 99)  non-2xx: $(non2xx "$W/upgrade.txt")  socket errors: $(errors "$W/upgrade.txt")"
fi

if [ "$SOAK" != 0 ]; then
  echo "== soak: ${SOAK}s at saturation, server RSS every 30 s"
  wrk -t2 -c"$CONNS" -d"${SOAK}s" -s "$W/approve.lua" "$URL/v1/contracts/seed/approve" >"$W/soak.txt" &
  WRK=$!
  for _ in $(seq $((SOAK / 30))); do
    sleep 30
    echo "   rss_kb $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)"
  done
  wait $WRK
  echo "   soak: $(rate "$W/soak.txt")/s  non-2xx: $(non2xx "$W/soak.txt")"
fi
echo "   server RSS at the end: $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) kB"
kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
echo "== ledger verify"
if [ "$BACKEND" = postgres ]; then "$C" ledger verify --ledger "$COVENANT_PG_URL" --pg-schema "bench_$$" | tail -2
else "$C" ledger verify --ledger "$W/data/ledger.db" | tail -2; fi
