#!/usr/bin/env bash
# Installs every Debian and npm package the build and the tests need, when missing.
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake pkg-config clang lld
  libgtest-dev libgmock-dev libbenchmark-dev
  wabt binaryen tcc libtcc-dev
  libsodium-dev libsqlite3-dev sqlite3 libpq-dev postgresql
  nlohmann-json3-dev wasi-libc
  python3 openssl nodejs  # contracts/bench data generator; fuzz gen.sh input stream; bench node columns
  rustc libstd-rust-dev-wasm32  # Rust guest contracts: rustc --target wasm32-unknown-unknown, no crates
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm tools used by cross-check tests (pinned by tools/package-lock.json).
# `npm install`, not `npm ci`: npm 11 rejects this lock file under `ci` because
# cbor-x's optional platform packages for other systems are not in it, while
# `install` installs exactly the locked versions.
if [ -f tools/package.json ] && [ ! -d tools/node_modules ]; then
  (cd tools && npm install --no-audit --no-fund --loglevel=error)
fi
# AssemblyScript compiler for the AssemblyScript guest contracts (pinned by sdk/assemblyscript/package-lock.json).
if [ -f sdk/assemblyscript/package.json ] && [ ! -d sdk/assemblyscript/node_modules ]; then
  (cd sdk/assemblyscript && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok"
