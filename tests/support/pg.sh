#!/usr/bin/env bash
# pg.sh - a private PostgreSQL 15 cluster for tests (the C kit's tests/support/pg.c runs it
# too). The cluster lives in DIR (a fresh test folder), listens on 127.0.0.1:PORT only (no
# Unix socket), trusts every connection there, has superuser "margo", and is stopped and
# removed by `stop`. PostgreSQL refuses to run as root: as root, the cluster runs as the
# system user margo-test (created when absent) and DIR is handed to it.
#
#   pg.sh start DIR PORT   initdb + start; prints the server URL postgresql://margo@127.0.0.1:PORT
#   pg.sh stop DIR         stops the cluster (fast) and removes DIR
#   pg.sh watch DIR        waits for end of input (its parent's pipe closing, however the
#                          parent ended), then stops and removes like stop
# Scripts: url=$(pg.sh start "$dir" "$port"); trap 'pg.sh stop "$dir"' EXIT
set -euo pipefail
BIN=${MGO_PG_BIN:-/usr/lib/postgresql/15/bin}
USER_NAME=margo-test

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$USER_NAME" -- "$@"
  else
    "$@"
  fi
}

ensure_user() {
  [ "$(id -u)" = 0 ] || return 0
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    id -u "$USER_NAME" >/dev/null 2>&1 && return 0
    # parallel tests may race on /etc/passwd's lock: try again
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      "$USER_NAME" >/dev/null 2>&1 || sleep 0.$((RANDOM % 5 + 1))
  done
  id -u "$USER_NAME" >/dev/null 2>&1 || { echo "pg.sh: cannot create user $USER_NAME" >&2; exit 1; }
}

stop() {
  local dir=$1
  case "$dir" in /tmp/mgo-test-*) ;; *) echo "pg.sh: $dir is not a test folder" >&2; exit 2 ;; esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start)
    dir=$2 port=$3
    [ -x "$BIN/initdb" ] || { echo "pg.sh: no $BIN/initdb (install postgresql-15: scripts/setup.sh)" >&2; exit 1; }
    ensure_user
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$USER_NAME" "$dir"
    if ! as_owner "$BIN/initdb" -D "$dir/data" -U margo --auth=trust --no-sync -E UTF8 \
      --locale=C >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2
      exit 1
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 40
EOF
    printf 'host all all 127.0.0.1/32 trust\n' >"$dir/data/pg_hba.conf"
    if ! as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
      cat "$dir/server.log" >&2 || true
      exit 1
    fi
    echo "postgresql://margo@127.0.0.1:$port"
    ;;
  stop) stop "$2" ;;
  watch)
    cat >/dev/null || true
    stop "$2"
    ;;
  *)
    echo "usage: pg.sh start DIR PORT | stop DIR | watch DIR" >&2
    exit 2
    ;;
esac
