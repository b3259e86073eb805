#!/bin/bash
# PostgreSQL on the volume at $PGDATA: made on first start (user $POSTGRES_USER with $POSTGRES_PASSWORD,
# database $POSTGRES_DB), then served on every address with password authentication. The root file system may be
# read-only: the socket and the password file go to /tmp.
set -euo pipefail
: "${POSTGRES_USER:=conveyor}" "${POSTGRES_DB:=conveyor}"
[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "conveyor-postgres: POSTGRES_PASSWORD is not set" >&2; exit 2; }
bin=/usr/lib/postgresql/15/bin
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # A volume's root is not empty (lost+found) on some provisioners: the cluster goes one level down.
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  umask 077
  printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
  "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pwfile
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/tmp'"
    echo "max_connections = 200"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\";" | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
  echo "conveyor-postgres: made the cluster in $PGDATA (database $POSTGRES_DB)"
fi
exec "$bin/postgres" -D "$PGDATA"
