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
  nlohmann-json3-dev wasi-libc libcli11-dev  # libcli11-dev: the CLI's argument parser (src/cli/args.h)
  python3 openssl nodejs  # contracts/bench data generator; fuzz gen.sh input stream; bench node columns
  rustc libstd-rust-dev-wasm32  # Rust guest contracts: rustc --target wasm32-unknown-unknown, no crates
  libboost1.81-dev prometheus-cpp-dev  # covenant serve: Boost.Beast/Asio HTTP, Prometheus metrics (core)
  curl wrk  # main.sh talks to the server with curl; scripts/bench_server.sh loads it with wrk
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

# npm packages, pinned by each folder's package-lock.json. A folder is
# (re)installed when its node_modules is missing or was installed from another
# package.json / package-lock.json: a stamp in node_modules holds the hash of
# both as of the last install, so a checkout that pulls a dependency change
# gets it on the next setup.
npm_stamp() { (cd "$1" && cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1); }
npm_write_stamp() { npm_stamp "$1" > "$1/node_modules/.covenant-stamp.tmp" && mv "$1/node_modules/.covenant-stamp.tmp" "$1/node_modules/.covenant-setup-stamp"; }
npm_needs_install() {
  [ -f "$1/package.json" ] || return 1
  [ -d "$1/node_modules" ] || return 0
  if [ ! -f "$1/node_modules/.covenant-setup-stamp" ]; then
    # Installed before stamps existed: keep it (and stamp it) if npm finds every
    # dependency of package.json installed at its pinned version.
    if (cd "$1" && npm ls --depth=0 >/dev/null 2>&1); then npm_write_stamp "$1"; return 1; fi
    return 0
  fi
  [ "$(cat "$1/node_modules/.covenant-setup-stamp")" != "$(npm_stamp "$1")" ]
}
npm_install() {  # DIR install|ci
  echo "setup: npm $2 in $1"
  (cd "$1" && npm "$2" --no-audit --no-fund --loglevel=error)
  npm_write_stamp "$1"
}
# tools/: independent implementations for cross-check tests, and jco-transpile
# (wasm-tools + jco) for the component binaries (tools/component.mjs).
# `npm install`, not `npm ci`: npm 11 rejects this lock file under `ci` because
# cbor-x's optional platform packages for other systems are not in it, while
# `install` installs exactly the locked versions.
if npm_needs_install tools; then npm_install tools install; fi
# AssemblyScript compiler for the AssemblyScript guest contracts.
if npm_needs_install sdk/assemblyscript; then npm_install sdk/assemblyscript ci; fi
# tools/openapi: an independent OpenAPI 3.1 validator and a client generated from the
# document (openapi-typescript + openapi-fetch) for the server's API tests.
if npm_needs_install tools/openapi; then npm_install tools/openapi ci; fi
echo "setup: ok"
