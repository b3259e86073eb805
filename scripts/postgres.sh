#!/usr/bin/env bash
# A throwaway PostgreSQL for development and tests, from Debian's packages, on 127.0.0.1 only.
#   scripts/postgres.sh start|stop|status|env
# Data lives under ${CONVEYOR_CACHE:-~/.cache/conveyor}/postgres, or $CONVEYOR_PG_DIR for a cluster of its own
# (the chaos tests crash one); `start` prints CONVEYOR_PG_DSN=...
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR="${CONVEYOR_PG_DIR:-$CACHE/postgres}"
DATA="$DIR/data"
PORT_FILE="$DIR/port"
LOG="$DIR/postgres.log"

bin_dir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
    apt_install postgresql postgresql-contrib
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$found"
}

# Postgres refuses to run as root: as root, run it as the package's `postgres` user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

dsn() {
  local user
  user=$([ "$(id -u)" = 0 ] && echo postgres || id -un)
  echo "postgresql://$user@127.0.0.1:$(cat "$PORT_FILE")/conveyor"
}

running() {
  [ -f "$PORT_FILE" ] && [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  if running; then
    echo "CONVEYOR_PG_DSN=$(dsn)"
    return 0
  fi
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then
    # The cluster runs as `postgres`, which must be able to reach its directory under root's cache: grant
    # traverse (x) only, on each parent, never read.
    local d="$DIR"
    while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    chown postgres: "$DIR"
  fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_owner "$BIN/initdb" -D "$DATA" -A trust -U "$([ "$(id -u)" = 0 ] && echo postgres || id -un)" -E UTF8 >/dev/null
  fi
  local port
  port=$(cat "$PORT_FILE" 2>/dev/null || true)
  if [ -z "$port" ] || port_open "$port"; then port=$(free_port); fi
  echo "$port" >"$PORT_FILE"
  # Tuned for tests: durable enough to mean something, fast enough for CI.
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $DIR -c max_connections=200 -c shared_buffers=512MB -c max_wal_size=4GB -c wal_compression=lz4 -c fsync=on -c synchronous_commit=on" >/dev/null
  as_owner "$BIN/psql" -h 127.0.0.1 -p "$port" -d postgres -qtAc "SELECT 1 FROM pg_database WHERE datname = 'conveyor'" | grep -q 1 ||
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" conveyor
  echo "CONVEYOR_PG_DSN=$(dsn)"
}

stop() {
  if running; then as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
  echo "postgres stopped"
}

BIN=$(bin_dir)
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "postgres running: $(dsn)"; else echo "postgres not running"; exit 1; fi ;;
  env) running && echo "CONVEYOR_PG_DSN=$(dsn)" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
