#!/usr/bin/env bash
# Makes the builder image of a Go version (default: worker.go_version) on the
# Docker daemon, as workers do on demand: from the Go toolchain module the
# configured proxy serves, checked against the checksum database, with Debian's
# static busybox and the host's CA bundle, loaded with `docker import` (see
# src/toolchain/). No Go is needed on this machine. Skips the work when the
# daemon has the image already. Prints the image's name.
# Usage: scripts/builder-image.sh [GO_VERSION]   (honours CONFIG_PATH and DOCKER_HOST)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet --bin caddy-build-server
exec target/debug/caddy-build-server builder-image ${1:+--go "$1"}
