#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds the
# CLI and the example contract (C -> wasm32 with clang), then runs the contract
# on every tier and prints results, fuel and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"${JOBS:-2}" --target covenant contract_policy contract_seed_c
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

# Settlement, a full cycle on SQLite (docs/settlement.md, docs/replay.md): approve
# a batch of intents with --ledger (each receipt signed, appended to the ledger's
# journal, escrow held in the same transaction), release and refund holds, cut a
# checkpoint, verify a receipt and its inclusion proof offline, replay one call
# on another tier than the one that produced it.
echo "== settlement: a full cycle on SQLite"
S=$(mktemp -d)
L=$S/ledger.db
K="--keys-dir $S/keys"
SEED=build/contracts/seed_c.wasm
ids=() holds=()
for i in 1 2 3 4 5 6; do
  units=$((i * 100)); task=compute; [ "$i" = 6 ] && task=teleport   # the last: unknown task type, denied, no hold
  echo "{\"agent_id\": \"agent-$i\", \"task_type\": \"$task\", \"max_units\": $units, \"expires_at_ms\": 4102444800000}" >"$S/intent$i.json"
  out=$($C approve $SEED --intent "$S/intent$i.json" --tier baseline --ledger "$L" $K --checkpoint-every 4 --replay-out "$S/call$i.replay")
  ids+=("$(sed -n 's/^receipt_id: //p' <<<"$out")")
  holds+=("$(sed -n 's/^hold_id: //p' <<<"$out")")
  printf '   intent %s (%s, %s units): %s\n' "$i" "$task" "$units" "$(head -1 <<<"$out")"
  sed -n 's/^\(receipt_id\|hold_id\|log_index\|checkpoint\): /     \1: /p' <<<"$out"
done
echo "-- escrow: release hold 1 in full, 150 of hold 2, refund hold 3"
$C settle release "${holds[0]}" --ledger "$L"
$C settle release "${holds[1]}" --amount 150 --ledger "$L"
$C settle refund "${holds[2]}" --ledger "$L"
$C ledger verify --ledger "$L"
echo "-- checkpoint (signed tree head over the journal)"
$C settle checkpoint --ledger "$L" $K --dir "$S/cp"
cat "$S/cp/latest.txt"
echo "-- receipt ${ids[1]}: verify, then its inclusion proof against the checkpoint"
$C settle receipt "${ids[1]}" --ledger "$L" --out "$S/receipt.cose"
$C receipt verify "$S/receipt.cose" $K | sed 's/^/   /'
$C settle prove "${ids[1]}" --ledger "$L" --out "$S/proof.json" >/dev/null
$C log verify --proof "$S/proof.json" --checkpoint "$S/cp/latest.txt" --receipt "$S/receipt.cose" $K
echo "-- replay call 2 (receipt signed on baseline) on the interpreter, and a copy whose intent names another agent"
$C replay "$S/call2.replay" --tier interp $K
perl -0777 -pe 's/agent-2/agent-9/' "$S/call2.replay" >"$S/tampered.replay"
rc=0; $C replay "$S/tampered.replay" --tier interp $K || rc=$?
[ "$rc" = 2 ] || { echo "main.sh: a tampered replay package was not refuted (exit $rc)"; exit 1; }
echo "== settlement cycle: ok"

# The same seed contract as a Component Model binary made by the standard
# toolchain (wasm-tools' component new, npm @bytecodealliance/jco-transpile):
# Covenant reads its WIT from the component and runs its core module (docs/components.md).
echo "== the seed policy as a component"
node tools/component.mjs new $SEED contracts/examples/seed_c/seed.wit escrow "$S/seed.component.wasm"
echo "-- covenant wit: the world read from the component"
$C wit "$S/seed.component.wasm" | sed 's/^/     /'
echo "-- covenant approve on the component:"
$C approve "$S/seed.component.wasm" --intent "$S/intent1.json" --json | sed 's/^/     /'
rm -rf "$S"

# The main way Covenant is used: `covenant serve` on the embedded default (a data
# directory with a SQLite ledger), called over HTTP like OPA or Cerbos (docs/api.md).
echo "== covenant serve: the approval pipeline over HTTP"
D=$(mktemp -d)
$C serve --listen 127.0.0.1:0 --data "$D/data" >"$D/stdout" 2>"$D/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$D"' EXIT
for _ in $(seq 100); do [ -s "$D/stdout" ] && break; sleep 0.1; done
URL=$(sed -n '1s/^listening on //p' "$D/stdout")
[ -n "$URL" ] || { echo "main.sh: the server did not start"; cat "$D/server.log"; exit 1; }
echo "   $(head -1 "$D/stdout")"
ADMIN=$(cat "$D/data/admin.key")
api() {  # METHOD PATH KEY [curl args...]: prints the body, fails on a non-2xx status
  local m=$1 p=$2 k=$3; shift 3
  curl -sS --fail-with-body -X "$m" "$URL$p" -H "Authorization: Bearer $k" -H 'Content-Type: application/json' "$@"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
echo "-- keys for tenant acme (bootstrap admin key: $D/data/admin.key)"
DEPLOYER=$(api POST /v1/keys "$ADMIN" -d '{"tenant":"acme","role":"deployer"}' | field "['key']")
CALLER=$(api POST /v1/keys "$ADMIN" -d '{"tenant":"acme","role":"caller"}' | field "['key']")
echo "-- deploy the seed policy (compiled to the optimized tier at deploy time)"
python3 -c "import base64,json,sys; print(json.dumps({'wasm_base64': base64.b64encode(open(sys.argv[1],'rb').read()).decode()}))" \
  "$SEED" >"$D/deploy.json"
api PUT /v1/contracts/seed "$DEPLOYER" --data-binary @"$D/deploy.json" | sed 's/^/     /'; echo
echo "-- approvals (each signed, journaled and its hold committed before the reply)"
EXP=$(( ($(date +%s) + 3600) * 1000 ))
hold=""; rid=""
for i in 1 2 3; do
  body="{\"agent_id\":\"agent-$i\",\"task_type\":\"inference\",\"max_units\":\"$((i * 100))\",\"expires_at_ms\":\"$EXP\"}"
  out=$(api POST /v1/contracts/seed/approve "$CALLER" -H "Idempotency-Key: main-$i" -d "$body")
  echo "   $(echo "$out" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("decision", json.dumps(j["decision"]), "log_index", j["log_index"], "hold", j["hold_id"])')"
  [ -z "$rid" ] && rid=$(echo "$out" | field "['receipt_id']") && hold=$(echo "$out" | field "['hold_id']")
done
echo "-- the same Idempotency-Key again: the original response, not a second hold"
curl -sS -D - -o /dev/null -X POST "$URL/v1/contracts/seed/approve" -H "Authorization: Bearer $CALLER" -H "Idempotency-Key: main-3" \
  -d "{\"agent_id\":\"agent-3\",\"task_type\":\"inference\",\"max_units\":\"300\",\"expires_at_ms\":\"$EXP\"}" | grep -i '^idempotent-replayed' | sed 's/^/     /'
echo "-- receipt $rid: fetch, verify with the executor key the server publishes, then its inclusion proof"
PUB=$(curl -sS "$URL/v1/executor/keys" -H "Authorization: Bearer $CALLER" | field "['keys'][0]['public_key_hex']")
curl -sS --fail "$URL/v1/receipts/$rid" -H "Authorization: Bearer $CALLER" -o "$D/receipt.cose"
$C receipt verify "$D/receipt.cose" --key "$PUB" | sed 's/^/   /'
api GET "/v1/receipts/$rid/proof" "$CALLER" >"$D/proof.json"
python3 -c "import json,sys; sys.stdout.write(json.load(sys.stdin)['checkpoint'])" <"$D/proof.json" >"$D/checkpoint.txt"
$C log verify --proof "$D/proof.json" --checkpoint "$D/checkpoint.txt" --receipt "$D/receipt.cose" --key "$PUB" | sed 's/^/   /'
echo "-- release hold $hold"
api POST "/v1/holds/$hold/release" "$CALLER" -d '{}' | sed 's/^/     /'; echo
api GET "/v1/holds/$hold" "$CALLER" | sed 's/^/     /'; echo
echo "-- stop (SIGTERM drains), then the ledger verifies: books, journal, executor chains, holds with receipts"
kill -TERM $SERVER
wait $SERVER
$C ledger verify --ledger "$D/data/ledger.db"
trap - EXIT
rm -rf "$D"
echo "== covenant serve: ok"
