#!/usr/bin/env bash
# What a funded budget and a signed intent cost per approval (issue 11, items 3
# and 9; docs/benchmarks.md, "Server" > "Holds, budgets and signed intents"):
# starts `covenant serve` on a fresh data directory (or PostgreSQL schema) and
# runs build/src/server/bench_approvals against it, which measures in one run
# plain approvals (a hold on the seed mapping's unbounded account), approvals of
# funded agents (the hold debits the budget account), approvals with signed
# intents (pre-signed, a fresh nonce each), both together, and signed intents
# under a user-signed mandate, each with its ratio to plain, beside the
# in-process Ed25519 verify/s and JCS/s.
#
#   bash scripts/bench_approvals.sh [--backend sqlite|postgres] [--duration S] [--connections N]
#                                   [--rounds R] [--agents A]
#
# Builds only what it needs (after `bash scripts/setup.sh` has run once). Not a
# test: it prints figures, it does not pass or fail on them.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=sqlite DURATION=5 CONNS=64 ROUNDS=2 AGENTS=8
while [ $# -gt 0 ]; do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --agents) AGENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--backend sqlite|postgres] [--duration S] [--connections N] [--rounds R] [--agents A]"; exit 1 ;;
  esac
done
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target covenant bench_approvals contract_policy_example_c >/dev/null
C=$PWD/build/covenant
W=$(mktemp -d)
cleanup() { [ -n "${SERVER:-}" ] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

LEDGER_ARGS=()
if [ "$BACKEND" = postgres ]; then
  eval "$(bash scripts/pg.sh start)"
  LEDGER_ARGS=(--ledger "$COVENANT_PG_URL" --pg-schema "bench_appr_$$")
fi

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), backend $BACKEND, $(date -u +%FT%TZ)"
"$C" serve --listen 127.0.0.1:0 --data "$W/data" --workers "$CONNS" "${LEDGER_ARGS[@]}" \
  >"$W/stdout" 2>"$W/server.log" &
SERVER=$!
for _ in $(seq 200); do [ -s "$W/stdout" ] && break; sleep 0.05; done
URL=$(sed -n '1s/^listening on //p' "$W/stdout")
[ -n "$URL" ] || { echo "the server did not start:"; tail -20 "$W/server.log"; exit 1; }

build/src/server/bench_approvals --url "$URL" --admin-key "$W/data/admin.key" \
  --policy build/contracts/examples/policy_c.wasm --duration "$DURATION" --rounds "$ROUNDS" \
  --connections "$CONNS" --agents "$AGENTS" --server-pid "$SERVER"

echo "== machine load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   server RSS at the end: $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) kB"
kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
echo "== ledger verify"
if [ "$BACKEND" = postgres ]; then "$C" ledger verify --ledger "$COVENANT_PG_URL" --pg-schema "bench_appr_$$" | tail -2
else "$C" ledger verify --ledger "$W/data/ledger.db" | tail -2; fi
