#!/usr/bin/env bash
# Starts what the tests and benchmarks need on a fresh machine, then runs the
# given command with it: a throwaway PostgreSQL cluster (its own directory and
# port, removed afterwards), exported as CBS_TEST_DATABASE_URL.
# Usage: scripts/test-env.sh COMMAND [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pgdir=$(mktemp -d /tmp/cbs-pg.XXXXXX)
cleanup() {
    "$here/postgres.sh" stop "$pgdir" || true
    rm -rf "$pgdir"
}
trap cleanup EXIT
CBS_TEST_DATABASE_URL=$("$here/postgres.sh" start "$pgdir" "$(free_port)" --fast)
export CBS_TEST_DATABASE_URL
echo "test-env: throwaway Postgres at $CBS_TEST_DATABASE_URL" >&2
"$@"
