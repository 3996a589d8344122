#!/usr/bin/env bash
# pg.sh start|stop|url|status: a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   eval "$(scripts/pg.sh start)"   # exports COVENANT_PG_URL=postgresql://...
#   ctest ...                       # the ledger conformance suite now runs on PostgreSQL too
#   scripts/pg.sh stop              # shuts the server down and deletes the cluster
#
# The cluster lives in $COVENANT_PG_DIR (default ${TMPDIR:-/tmp}/covenant-pg-$UID) and listens on
# a unix socket in that directory only (listen_addresses=''): no TCP port, nothing to collide with.
# initdb refuses to run as root, so as root the server runs as the `postgres` user (runuser).
# `start` prints `export COVENANT_PG_URL=...`; `url` prints the bare URL. Both are idempotent.
set -euo pipefail

dir="${COVENANT_PG_DIR:-${TMPDIR:-/tmp}/covenant-pg-$(id -u)}"
db="${COVENANT_PG_DB:-covenant}"
bin="${COVENANT_PG_BIN:-}"
if [ -z "$bin" ]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
fi
[ -x "$bin/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
  owner=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  owner="$(id -un)"
  as_owner() { "$@"; }
fi

url() { echo "postgresql:///$db?host=$dir&user=$owner"; }

running() { [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

start() {
  if running; then echo "export COVENANT_PG_URL='$(url)'"; return; fi
  mkdir -p "$dir"
  chmod 0700 "$dir"
  [ "$owner" = postgres ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    # --no-sync: the cluster is throwaway; the server itself still runs with fsync=on so
    # durability (and the benchmark figures) are real.
    as_owner "$bin/initdb" -D "$dir/data" -U "$owner" -A trust -E UTF8 --no-sync --no-instructions \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses='' -k '$dir' -c fsync=on -c synchronous_commit=on -c max_connections=200" \
    start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
  if ! as_owner "$bin/psql" -h "$dir" -U "$owner" -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_owner "$bin/createdb" -h "$dir" -U "$owner" "$db"
  fi
  echo "export COVENANT_PG_URL='$(url)'"
}

stop() {
  if running; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null; fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) running || { echo "pg.sh: not running (scripts/pg.sh start)" >&2; exit 1; }; url ;;
  status) if running; then echo "running: $(url)"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac
