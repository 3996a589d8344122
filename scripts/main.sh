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
