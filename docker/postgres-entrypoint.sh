#!/bin/sh
# postgres-entrypoint.sh - the PostgreSQL container of docker-compose.scale.yml (Debian's
# postgresql package, docker/Dockerfile stage `postgres`). Runs as user postgres.
#
# First start (empty $PGDATA): a cluster whose only role is MARGO_PG_USER (default margo) with
# the password read from MARGO_PG_PASSWORD_FILE (or MARGO_PG_PASSWORD), owner of database
# MARGO_PG_DB (default margo); clients authenticate with scram-sha-256 over TCP, there is no
# trust rule. Then, and on every later start, the server listens on every interface of the
# container: the compose network only (docker-compose.scale.yml publishes no PostgreSQL port).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user="${MARGO_PG_USER:-margo}"
db="${MARGO_PG_DB:-margo}"
if [ -n "${MARGO_PG_PASSWORD_FILE:-}" ]; then
    pw="$(cat "$MARGO_PG_PASSWORD_FILE")"
else
    pw="${MARGO_PG_PASSWORD:-}"
fi
case "$user$db" in
*[!A-Za-z0-9_]*) echo "postgres-entrypoint: MARGO_PG_USER and MARGO_PG_DB: letters, digits and _ only" >&2; exit 2 ;;
esac
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$pw" ]; then
        echo "postgres-entrypoint: no password: set MARGO_PG_PASSWORD_FILE or MARGO_PG_PASSWORD" >&2
        exit 2
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "$pw" > "$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=scram-sha-256 \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "host all all ::/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # the database, created by a server that listens on a private socket only
    sock="$(mktemp -d)"
    "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k $sock" -w start >/dev/null
    PGPASSWORD="$pw" "$bin/psql" -X -q -h "$sock" -U "$user" -d postgres \
        -c "CREATE DATABASE $db OWNER $user"
    "$bin/pg_ctl" -D "$PGDATA" -w stop >/dev/null
    rm -rf "$sock"
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -k /tmp
