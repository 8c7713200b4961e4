#!/usr/bin/env bash
# A private Docker daemon in a directory of its own (socket, data, exec root,
# pid file, a bridge of its own, no iptables rules), for tests that must stop a
# daemon mid-build without touching the shared one. Never `--bridge none`: that
# makes dockerd delete the host's docker0, which the shared daemon uses. Usage:
#   scripts/private-dockerd.sh start DIR   # prints the DOCKER_HOST URL once it answers
#   scripts/private-dockerd.sh kill DIR    # SIGKILL: the daemon dies mid-whatever
#   scripts/private-dockerd.sh stop DIR    # stops it (and its containerd) and removes DIR
set -euo pipefail

cmd=${1:?usage: private-dockerd.sh start|kill|stop DIR}
dir=${2:?directory}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock="unix://$dir/docker.sock"

pid_of() { [ -f "$dir/$1" ] && cat "$dir/$1" 2>/dev/null || true; }

# A bridge named after the directory (interface names have at most 15 characters).
bridge="cbsd$(printf '%s' "$dir" | cksum | cut -d' ' -f1 | cut -c1-8)"

case "$cmd" in
start)
    command -v dockerd >/dev/null || "$(dirname "$0")/docker.sh"
    [ -f "$dir/daemon.json" ] || echo '{}' >"$dir/daemon.json"
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add name "$bridge" type bridge
        ip addr add "10.231.$(( $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 250 + 1 )).1/24" dev "$bridge"
        ip link set "$bridge" up
    fi
    nohup dockerd \
        --config-file "$dir/daemon.json" \
        --host "$sock" \
        --data-root "$dir/data" \
        --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" \
        --bridge "$bridge" --iptables=false --ip-masq=false \
        >>"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        if docker -H "$sock" info >/dev/null 2>&1; then
            echo "$sock"
            exit 0
        fi
        sleep 0.5
    done
    echo "private-dockerd.sh: daemon in $dir did not come up:" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
    ;;
kill)
    pid=$(pid_of docker.pid)
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
    done
    ;;
stop)
    pid=$(pid_of docker.pid)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # The daemon's own containerd (started under its exec root), if it outlived it.
    cpid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)
    [ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null || true
    sleep 0.5
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: private-dockerd.sh start|kill|stop DIR" >&2
    exit 2
    ;;
esac
