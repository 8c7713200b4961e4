#!/usr/bin/env bash
# `make run`: everything one machine needs, then the service in the foreground.
# Installs what is missing (PostgreSQL, the Docker engine), starts a private
# Postgres cluster under .data/postgres and dockerd when it is not running,
# makes the builder image when it is missing (from the module proxy's Go
# toolchain: no Go is needed on this machine), then runs `caddy-build-server all`
# on :8234. Ctrl-C stops the service, then the Postgres cluster it started.
# A second `make run` reuses the cluster, the image and the Go caches.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD/scripts

PG_PORT=${CBS_PG_PORT:-54320}
PG_DIR=$PWD/.data/postgres

"$here/ensure-deps.sh"
"$here/docker.sh"

cargo build --release --locked
export CONFIG_PATH=${CONFIG_PATH:-$PWD/config.yml}
target/release/caddy-build-server builder-image >/dev/null
url=$("$here/postgres.sh" start "$PG_DIR" "$PG_PORT")
stop_pg() { "$here/postgres.sh" stop "$PG_DIR"; echo "run: stopped Postgres" >&2; }
trap stop_pg EXIT

export CBS_DATABASE_URL=${CBS_DATABASE_URL:-$url}
cat >&2 <<MSG

  caddy-build-server is starting on :8234 (Postgres: $CBS_DATABASE_URL)
  Try, in another shell:

    curl -fo caddy "http://localhost:8234/api/compat?os=linux&arch=amd64&p=github.com/caddy-dns/cloudflare"
    chmod +x caddy && ./caddy list-modules | grep cloudflare

  Ctrl-C stops everything.

MSG
# Not exec: the trap must run after the server exits. The terminal's Ctrl-C
# reaches the server directly (same process group); it drains and exits.
set +e
target/release/caddy-build-server all
status=$?
exit $status
