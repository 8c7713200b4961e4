#!/usr/bin/env bash
# Runs a private PostgreSQL cluster in a directory of its own, so that `make run`
# and `make test` need nothing set up by hand: installs the server from Debian's
# packages when it is missing, creates the cluster on first use, starts it on
# loopback. Usage:
#   scripts/postgres.sh start DIR PORT [--fast]   # --fast: no fsync (throwaway test clusters)
#   scripts/postgres.sh stop DIR
set -euo pipefail

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$d" ]; then
        echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$d"
}

# The server refuses to run as root; run it as the postgres user when we are root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd=${1:?usage: postgres.sh start DIR PORT [--fast] | stop DIR}
dir=${2:?data directory}
bin=$(pg_bindir)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && chown postgres: "$dir"

case "$cmd" in
start)
    port=${3:?port}
    opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400"
    if [ "${4:-}" = "--fast" ]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        echo "postgres.sh: already running in $dir" >&2
    else
        as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null
    fi
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if [ -f "$dir/PG_VERSION" ]; then
        as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: postgres.sh start DIR PORT [--fast] | stop DIR" >&2
    exit 2
    ;;
esac
