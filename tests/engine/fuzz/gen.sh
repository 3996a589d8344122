#!/bin/sh
# gen.sh N OUTDIR SEED: writes N random Wasm modules OUTDIR/fuzz-SEED-I.wasm
# (I = 0..N-1) for the engine's differential test, plus OUTDIR/manifest.tsv.
#
# Each module is binaryen's `wasm-opt --translate-to-fuzz` of a pseudo-random
# byte string: AES-256-CTR keystream (openssl) keyed by "covenant-fuzz-SEED-I",
# so the same SEED gives byte-identical modules on every machine with the same
# binaryen version (Debian binaryen 108 here; the version is in the manifest).
# Features: MVP + sign-ext, mutable-globals, nontrapping-float-to-int (the
# engine's deterministic default profile). The fuzzer's logging imports are
# removed with --remove-imports (calls become nops), so modules import nothing.
# See README.md for what the modules export and how to call them.
#
# Environment: FUZZ_INPUT_BYTES_MAX (default 16384) bounds the random input;
# larger inputs give larger modules. FUZZ_FEATURES replaces the feature flags,
# e.g. the whole profile (binaryen 108 cannot --remove-imports a module whose
# ref.func names an import, so about 4 inputs in 5 are skipped):
#   FUZZ_FEATURES="--mvp-features --enable-sign-ext --enable-mutable-globals
#     --enable-nontrapping-float-to-int --enable-bulk-memory --enable-multivalue
#     --enable-reference-types" sh gen.sh 800 /tmp/fz 11
#   COVENANT_FUZZ_DIR=/tmp/fz build/src/wasm/wasm_differential_test
set -eu

if [ $# -ne 3 ]; then
  echo "usage: gen.sh N OUTDIR SEED" >&2
  exit 1
fi
n=$1 outdir=$2 seed=$3
input_max=${FUZZ_INPUT_BYTES_MAX:-16384}
command -v wasm-opt >/dev/null || { echo "gen.sh: wasm-opt (binaryen) not found" >&2; exit 1; }
command -v openssl >/dev/null || { echo "gen.sh: openssl not found" >&2; exit 1; }

mkdir -p "$outdir"
tmp=$(mktemp "${TMPDIR:-/tmp}/covenant-fuzz-XXXXXX")
tmp_wasm="$tmp.wasm"
trap 'rm -f "$tmp" "$tmp_wasm"' EXIT
features=${FUZZ_FEATURES:-"--mvp-features --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int"}

manifest="$outdir/manifest.tsv"
printf '# %s\n# file\tseed\tindex\tinput_bytes\tsha256\n' "$(wasm-opt --version)" > "$manifest"

i=0
while [ "$i" -lt "$n" ]; do
  # Input size in [256, input_max], a fixed function of SEED and I.
  size=$(( 256 + ( (i * 7919 + seed * 104729) % (input_max - 255) ) ))
  openssl enc -aes-256-ctr -pbkdf2 -nosalt -pass "pass:covenant-fuzz-$seed-$i" -in /dev/zero 2>/dev/null |
    head -c "$size" > "$tmp"
  out="$outdir/fuzz-$seed-$i.wasm"
  # Two invocations: binaryen 108 fails validation ("error after opts") on
  # some inputs when --remove-imports runs in the same invocation as
  # --translate-to-fuzz; through a binary round trip it is fine. A module that
  # still fails is recorded as skipped (deterministically) and not written.
  # shellcheck disable=SC2086
  if ! wasm-opt "$tmp" --translate-to-fuzz $features -o "$tmp_wasm" 2>/dev/null ||
     ! wasm-opt "$tmp_wasm" $features --remove-imports -o "$out" 2>/dev/null; then
    rm -f "$out"
    printf '%s\t%s\t%s\t%s\t%s\n' "skipped" "$seed" "$i" "$size" "-" >> "$manifest"
    i=$((i + 1))
    continue
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(basename "$out")" "$seed" "$i" "$size" \
    "$(sha256sum "$out" | cut -d' ' -f1)" >> "$manifest"
  i=$((i + 1))
done
