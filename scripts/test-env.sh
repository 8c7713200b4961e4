#!/usr/bin/env bash
# Starts what the tests and benchmarks need on a fresh machine, then runs the
# given command with it: a throwaway PostgreSQL cluster (its own directory and
# port, removed afterwards), exported as CBS_TEST_DATABASE_URL, and a throwaway
# MinIO S3 server (built once by scripts/minio.sh), exported as
# CBS_TEST_S3_ENDPOINT, CBS_TEST_S3_REGION, CBS_TEST_S3_ACCESS_KEY,
# CBS_TEST_S3_SECRET_KEY, with MinIO's client binary as CBS_TEST_MC.
# Usage: scripts/test-env.sh COMMAND [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pgdir=$(mktemp -d /tmp/cbs-pg.XXXXXX)
s3dir=$(mktemp -d /tmp/cbs-s3.XXXXXX)
cleanup() {
    "$here/postgres.sh" stop "$pgdir" || true
    rm -rf "$pgdir"
    "$here/minio.sh" stop "$s3dir" || true
    rm -rf "$s3dir"
}
trap cleanup EXIT
CBS_TEST_DATABASE_URL=$("$here/postgres.sh" start "$pgdir" "$(free_port)" --fast)
export CBS_TEST_DATABASE_URL
echo "test-env: throwaway Postgres at $CBS_TEST_DATABASE_URL" >&2

export CBS_TEST_S3_ACCESS_KEY=cbs-test-admin CBS_TEST_S3_SECRET_KEY="cbs-test-secret-$RANDOM$RANDOM"
CBS_TEST_S3_ENDPOINT=$(MINIO_ROOT_USER=$CBS_TEST_S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$CBS_TEST_S3_SECRET_KEY \
    "$here/minio.sh" start "$s3dir" "$(free_port)")
CBS_TEST_MC="$("$here/minio.sh" install)/mc"
export CBS_TEST_S3_ENDPOINT CBS_TEST_MC CBS_TEST_S3_REGION=us-east-1
echo "test-env: throwaway MinIO at $CBS_TEST_S3_ENDPOINT" >&2
"$@"
