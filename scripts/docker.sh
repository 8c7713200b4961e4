#!/usr/bin/env bash
# Makes sure a Docker engine answers (the worker's builds and its tests need one):
# installs Debian's docker.io when dockerd is missing and starts dockerd when
# `docker info` fails. An engine that already runs is left alone, since other
# processes on the machine share it.
set -euo pipefail

# `ip` manages the bridge of the private daemon some tests start (scripts/private-dockerd.sh).
if ! command -v ip >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq iproute2 >&2
fi
if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    echo "docker.sh: installing docker.io from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq docker.io >&2
fi
if ! docker info >/dev/null 2>&1; then
    # A dockerd that was killed leaves its pid file behind, and a new one refuses to
    # start ("pid file found"); remove it when no process of that pid is a dockerd.
    pidfile=/var/run/docker.pid
    if [ -f "$pidfile" ]; then
        old=$(cat "$pidfile" 2>/dev/null || true)
        if [ -z "$old" ] || ! grep -qs dockerd "/proc/$old/comm"; then
            echo "docker.sh: removing the stale $pidfile of a dockerd that is gone" >&2
            rm -f "$pidfile" /var/run/docker/containerd/containerd.pid
        fi
    fi
    echo "docker.sh: starting dockerd (log: /var/log/cbs-dockerd.log)" >&2
    nohup dockerd >/var/log/cbs-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && exit 0
        sleep 1
    done
    echo "docker.sh: dockerd did not come up; see /var/log/cbs-dockerd.log" >&2
    tail -n 20 /var/log/cbs-dockerd.log >&2 || true
    exit 1
fi
