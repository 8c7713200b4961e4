#!/usr/bin/env bash
# A real S3 server for tests, benchmarks and the multi-host example: MinIO's
# server and its `mc` client, built with `go install` from the module proxy at
# pinned versions into a cache directory (once per version), and a server run
# in a directory of its own on loopback. Usage:
#   scripts/minio.sh install                 # prints the directory holding minio and mc
#   scripts/minio.sh start DIR [PORT]        # prints the endpoint URL; PORT: a free one
#   scripts/minio.sh stop DIR
# The server's credentials are MINIO_ROOT_USER / MINIO_ROOT_PASSWORD (defaults below).
# Without a Go of 1.21 or later on the PATH, the Go toolchain itself is fetched
# from the module proxy (the golang.org/toolchain module `go` uses to switch
# versions), so nothing but the proxy is needed.
set -euo pipefail

# Pinned builds (the projects publish no semver tags, so these are the proxy's
# pseudo-versions of a known commit).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
GO_TOOLCHAIN=go1.24.8
GOPROXY_URL=${GOPROXY_URL:-https://proxy.golang.org}

export MINIO_ROOT_USER=${MINIO_ROOT_USER:-cbs-test-admin}
export MINIO_ROOT_PASSWORD=${MINIO_ROOT_PASSWORD:-cbs-test-secret-key}

cache=${CBS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caddy-build-server}
bindir="$cache/minio-${MINIO_VERSION##*-}-mc-${MC_VERSION##*-}"

# Prints the go command to use: the one on the PATH when it is recent enough,
# else a toolchain downloaded from the module proxy into the cache.
go_cmd() {
    if command -v go >/dev/null; then
        local minor
        minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
        if [ "${minor:-0}" -ge 21 ] 2>/dev/null; then
            command -v go
            return
        fi
    fi
    local arch
    case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "minio.sh: no Go toolchain for $(uname -m)" >&2; exit 1 ;;
    esac
    local version="v0.0.1-$GO_TOOLCHAIN.linux-$arch"
    local root="$cache/go-$GO_TOOLCHAIN-$arch"
    if [ ! -x "$root/bin/go" ]; then
        echo "minio.sh: fetching $GO_TOOLCHAIN from the module proxy" >&2
        local tmp
        tmp=$(mktemp -d "$cache/.go-XXXXXX")
        curl -fsSL -o "$tmp/go.zip" "$GOPROXY_URL/golang.org/toolchain/@v/$version.zip"
        python3 -m zipfile -e "$tmp/go.zip" "$tmp/x"
        chmod -R u+x,go+x "$tmp/x/golang.org/toolchain@$version/bin" "$tmp/x/golang.org/toolchain@$version/pkg/tool"
        rm -rf "$root"
        mv "$tmp/x/golang.org/toolchain@$version" "$root"
        rm -rf "$tmp"
    fi
    echo "$root/bin/go"
}

install() {
    if [ -x "$bindir/minio" ] && [ -x "$bindir/mc" ]; then
        echo "$bindir"
        return
    fi
    mkdir -p "$bindir"
    # A lock, so parallel test runs build once.
    exec 9>"$bindir.lock"
    flock 9
    local go
    go=$(go_cmd)
    if [ ! -x "$bindir/minio" ]; then
        echo "minio.sh: building minio@$MINIO_VERSION (first run only, takes minutes)" >&2
        GOBIN="$bindir" GOFLAGS=-buildvcs=false GOTOOLCHAIN=auto CGO_ENABLED=0 \
            "$go" install "github.com/minio/minio@$MINIO_VERSION" >&2
    fi
    if [ ! -x "$bindir/mc" ]; then
        echo "minio.sh: building mc@$MC_VERSION (first run only)" >&2
        GOBIN="$bindir" GOFLAGS=-buildvcs=false GOTOOLCHAIN=auto CGO_ENABLED=0 \
            "$go" install "github.com/minio/mc@$MC_VERSION" >&2
    fi
    flock -u 9
    echo "$bindir"
}

cmd=${1:?usage: minio.sh install | start DIR [PORT] | stop DIR}
case "$cmd" in
install)
    install
    ;;
start)
    dir=${2:?directory}
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    bin=$(install)
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    url="http://127.0.0.1:$port"
    MINIO_BROWSER=off MINIO_UPDATE=off \
        nohup "$bin/minio" server --quiet --address "127.0.0.1:$port" "$dir/data" >"$dir/minio.log" 2>&1 &
    echo $! >"$dir/minio.pid"
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$url/minio/health/ready" 2>/dev/null; then
            echo "$url"
            exit 0
        fi
        kill -0 "$(cat "$dir/minio.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "minio.sh: server did not come up; log:" >&2
    cat "$dir/minio.log" >&2
    exit 1
    ;;
stop)
    dir=${2:?directory}
    if [ -f "$dir/minio.pid" ]; then
        pid=$(cat "$dir/minio.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/minio.pid"
    fi
    ;;
*)
    echo "usage: minio.sh install | start DIR [PORT] | stop DIR" >&2
    exit 2
    ;;
esac
