#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests and benchmarks: `initdb` as the `postgres` user into a
# temporary directory, started on a loopback port and a socket directory of its own.
#
#   scripts/postgres.sh start [--durable]   prints `export PYAT_TEST_POSTGRES_URL=…` and the data directory
#   scripts/postgres.sh stop  DIRECTORY     stops the cluster started in DIRECTORY and removes it
#   scripts/postgres.sh restart DIRECTORY   stops and starts it again (same port, same data)
#   scripts/postgres.sh down DIRECTORY      stops it at once (as a crash would), keeping its data
#   scripts/postgres.sh up DIRECTORY        starts it again after `down`
#
# The functional tests run with fsync off (`start`); `--durable` keeps fsync on, as a benchmark of
# durable writes needs (initdb never syncs: a cluster lives as long as one run, not across a crash
# of the machine). The port is PYAT_POSTGRES_PORT (default 55432). The role `pyat` (password
# `pyat`, over TCP on loopback only) may create databases: each test makes one of its own.
# PYAT_POSTGRES_CONF, when set, is appended to postgresql.conf (for an experiment: say
# "shared_preload_libraries = 'pg_stat_statements'" to see where a benchmark's statements go).
set -euo pipefail

bin_dir=""
for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bin_dir="$candidate"
done
if [ -z "$bin_dir" ]; then
    echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
fi

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port="${PYAT_POSTGRES_PORT:-55432}"

case "${1:-}" in
start)
    durable=off
    [ "${2:-}" = "--durable" ] && durable=on
    directory="$(mktemp -d /tmp/pyat-postgres.XXXXXX)"
    # A start that fails half-way leaves nothing behind.
    trap 'status=$?; if [ $status -ne 0 ]; then
        as_postgres "$bin_dir/pg_ctl" -D "$directory/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        cat "$directory"/*.log >&2 2>/dev/null || true
        rm -rf "$directory"
    fi' EXIT
    chmod 0700 "$directory"
    [ "$(id -u)" = 0 ] && chown postgres: "$directory"
    as_postgres "$bin_dir/initdb" -D "$directory/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 --no-sync >"$directory/initdb.log" 2>&1 || {
        cat "$directory/initdb.log" >&2
        exit 1
    }
    cat >>"$directory/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$directory'
max_connections = 300
shared_buffers = 256MB
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
EOF
    # Extra settings for an experiment (profiling, say): PYAT_POSTGRES_CONF's lines, appended.
    if [ -n "${PYAT_POSTGRES_CONF:-}" ]; then printf '%s\n' "$PYAT_POSTGRES_CONF" >>"$directory/data/postgresql.conf"; fi
    # Generous: on a machine busy with a test run, starting takes long.
    as_postgres "$bin_dir/pg_ctl" -D "$directory/data" -l "$directory/server.log" -w -t 120 start >/dev/null
    as_postgres "$bin_dir/psql" -h "$directory" -p "$port" -U postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE pyat LOGIN CREATEDB PASSWORD 'pyat'" \
        -c "CREATE DATABASE pyat OWNER pyat" >/dev/null
    echo "export PYAT_TEST_POSTGRES_URL=postgres://pyat:pyat@127.0.0.1:$port/pyat"
    echo "export PYAT_POSTGRES_DIRECTORY=$directory"
    ;;
stop)
    directory="${2:?usage: postgres.sh stop DIRECTORY}"
    if [ -d "$directory/data" ]; then
        as_postgres "$bin_dir/pg_ctl" -D "$directory/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    case "$directory" in
    /tmp/pyat-postgres.*) rm -rf "$directory" ;;
    esac
    ;;
restart)
    directory="${2:?usage: postgres.sh restart DIRECTORY}"
    as_postgres "$bin_dir/pg_ctl" -D "$directory/data" -l "$directory/server.log" -m immediate -w -t 60 restart >/dev/null
    ;;
down)
    directory="${2:?usage: postgres.sh down DIRECTORY}"
    as_postgres "$bin_dir/pg_ctl" -D "$directory/data" -m immediate -w -t 30 stop >/dev/null
    ;;
up)
    directory="${2:?usage: postgres.sh up DIRECTORY}"
    as_postgres "$bin_dir/pg_ctl" -D "$directory/data" -l "$directory/server.log" -w -t 60 start >/dev/null
    ;;
*)
    echo "usage: postgres.sh start [--durable] | stop DIRECTORY | restart DIRECTORY | down DIRECTORY | up DIRECTORY" >&2
    exit 2
    ;;
esac
