#!/usr/bin/env bash
# CLI smoke test for the evidence commands (registered with ctest as
# evidence_cli_test). Usage: cli_test.sh PATH/TO/covenant
set -u
C="$1"
export COVENANT_HOME="$(mktemp -d)"
trap 'rm -rf "$COVENANT_HOME"' EXIT
# A standalone receipt-log file: one of the places receipts live (--ledger and
# --data are the others, src/cli/cli_families_test.cc); none is implied.
LOG="$COVENANT_HOME/receipts.log"
fail() { echo "FAIL: $*"; exit 1; }
expect_rc() { local want=$1; shift; "$@" > "$COVENANT_HOME/out" 2>&1; local rc=$?; [ "$rc" = "$want" ] || { cat "$COVENANT_HOME/out"; fail "exit $rc (want $want): $*"; }; }

expect_rc 0 "$C" key show --json
grep -q '"kid"' "$COVENANT_HOME/out" || fail "key show --json has no kid"
expect_rc 0 "$C" receipt demo --count 7 --log "$LOG"
ID=$(sed -n 4p "$COVENANT_HOME/out")
expect_rc 0 "$C" receipt get "$ID" --out "$COVENANT_HOME/r.cose" --log "$LOG"
[ "$(sha256sum < "$COVENANT_HOME/r.cose" | cut -d' ' -f1)" = "$ID" ] || fail "receipt get bytes do not hash to the id"
expect_rc 0 "$C" receipt verify "$COVENANT_HOME/r.cose" --json
grep -q '"verdict":"valid"' "$COVENANT_HOME/out" || fail "verify --json not valid"
PUB=$("$C" key show --json | sed 's/.*"public_key":"\([0-9a-f]*\)".*/\1/')
expect_rc 0 "$C" receipt verify "$COVENANT_HOME/r.cose" --key "$PUB"
expect_rc 0 "$C" log checkpoint --out "$COVENANT_HOME/cp.txt" --log "$LOG"
expect_rc 0 "$C" log prove --id "$ID" --out "$COVENANT_HOME/p.json" --log "$LOG"
expect_rc 0 "$C" log verify --proof "$COVENANT_HOME/p.json" --checkpoint "$COVENANT_HOME/cp.txt" --receipt "$COVENANT_HOME/r.cose"
expect_rc 0 "$C" key rotate
expect_rc 0 "$C" receipt verify "$COVENANT_HOME/r.cose"         # old key still resolves
# Revocation at a point in time: the active key cannot be revoked; the retired
# one revoked after the receipt's time still verifies it, from before it not.
cp "$COVENANT_HOME/r.cose" "$COVENANT_HOME/r-old.cose"
OLDKID=$("$C" key show --json | sed 's/.*"retired":\[{"kid":"\([0-9a-f]*\)".*/\1/')
NEWKID=$("$C" key show --json | sed 's/.*"kid":"\([0-9a-f]*\)","ok".*/\1/')
expect_rc 1 "$C" key revoke "$NEWKID"
expect_rc 0 "$C" key revoke "$OLDKID" --at 99999999999999
expect_rc 0 "$C" receipt verify "$COVENANT_HOME/r-old.cose"
expect_rc 0 "$C" key revoke "$OLDKID" --at 1000
expect_rc 2 "$C" receipt verify "$COVENANT_HOME/r-old.cose" --json
grep -q 'revocation' "$COVENANT_HOME/out" || { cat "$COVENANT_HOME/out"; fail "revoked key not named"; }
expect_rc 0 "$C" log verify --checkpoint "$COVENANT_HOME/cp.txt" --log "$LOG"  # and so does the old checkpoint
expect_rc 0 "$C" receipt demo --count 3 --log "$LOG"
expect_rc 0 "$C" log prove --from 7 --to 10 --out "$COVENANT_HOME/c.json" --log "$LOG"
expect_rc 0 "$C" log checkpoint --out "$COVENANT_HOME/cp2.txt" --log "$LOG"
expect_rc 0 "$C" log verify --proof "$COVENANT_HOME/c.json" --checkpoint "$COVENANT_HOME/cp2.txt"
# Usage errors exit 1.
expect_rc 1 "$C" receipt get nothex --out /dev/null --log "$LOG"
expect_rc 1 "$C" log prove
expect_rc 1 "$C" receipt get "$ID" --out /dev/null   # no location given
grep -q 'say where the receipts are' "$COVENANT_HOME/out" || fail "a missing location is not explained"
expect_rc 1 "$C" receipt get "$(printf '0%.0s' $(seq 64))" --out /dev/null --log "$LOG"
# Verification failures exit 2.
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[120]^=0x5a; open(p,"wb").write(b)' "$COVENANT_HOME/r.cose"
expect_rc 2 "$C" receipt verify "$COVENANT_HOME/r.cose"
expect_rc 2 "$C" log verify --proof "$COVENANT_HOME/p.json" --checkpoint "$COVENANT_HOME/cp.txt" --receipt "$COVENANT_HOME/r.cose"
sed -i '2s/.*/8/' "$COVENANT_HOME/cp.txt"
expect_rc 2 "$C" log verify --checkpoint "$COVENANT_HOME/cp.txt" --log "$LOG"
# Flip bits of byte 600 (writing a fixed byte would change nothing when the
# random signature already has that byte there: one run in 256).
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[600]^=0x5a; open(p,"wb").write(b)' "$COVENANT_HOME/receipts.log"

expect_rc 2 "$C" log verify --log "$LOG"
grep -q 'record 1 at byte 359' "$COVENANT_HOME/out" || { cat "$COVENANT_HOME/out"; fail "corruption not located"; }
echo "evidence CLI: ok"
