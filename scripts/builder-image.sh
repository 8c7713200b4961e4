#!/usr/bin/env bash
# Makes the builder image without any registry: a minimal root filesystem with
# the host's Go toolchain, the host's CA bundle and Debian's static busybox (for
# /bin/sh), loaded with `docker import`. The image runs as uid 1000; its cache
# and work directories belong to that uid, so fresh named volumes mounted there
# inherit the ownership. Skips the work when the image already matches.
# Usage: scripts/builder-image.sh [IMAGE]   (default caddy-builder:local; honours DOCKER_HOST)
set -euo pipefail

image=${1:-caddy-builder:local}
goroot=${CBS_GOROOT:-/usr/local/go}

[ -x "$goroot/bin/go" ] || { echo "builder-image.sh: no Go toolchain in $goroot" >&2; exit 1; }
go_version=$("$goroot/bin/go" env GOVERSION)
recipe="$go_version-$(sha256sum "$0" | cut -c1-16)"

current=$(docker image inspect -f '{{index .Config.Labels "cbs.recipe"}}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe" ]; then
    echo "builder-image.sh: $image is up to date ($recipe)" >&2
    exit 0
fi

tmp=$(mktemp -d /tmp/cbs-builder.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Debian's static busybox, unpacked from its package (the host's own busybox is left alone).
(cd "$tmp" && apt-get download -qq busybox-static >/dev/null 2>&1) || {
    echo "builder-image.sh: apt-get download busybox-static failed; running apt-get update" >&2
    apt-get update -qq >&2 && (cd "$tmp" && apt-get download -qq busybox-static)
}
dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/bb"

root="$tmp/rootfs"
mkdir -p "$root"/{bin,etc/ssl/certs,tmp,cache/gomod,cache/gobuild,work,home/builder,usr/local}
cp "$tmp/bb/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
builder:x:1000:1000:builder:/home/builder:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
builder:x:1000:
nogroup:x:65534:
GROUP
echo "hosts: files dns" >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"

tarball="$tmp/rootfs.tar"
tar -C "$root" --owner=0 --group=0 --numeric-owner -cf "$tarball" \
    --exclude=./cache --exclude=./work --exclude=./home/builder .
tar -C "$(dirname "$goroot")" --owner=0 --group=0 --numeric-owner -rf "$tarball" \
    --exclude="$(basename "$goroot")/test" --transform "s,^$(basename "$goroot"),usr/local/go," "$(basename "$goroot")"
tar -C "$root" --owner=1000 --group=1000 --numeric-owner -rf "$tarball" ./cache ./work ./home/builder

docker import \
    --change 'ENV PATH=/usr/local/go/bin:/bin' \
    --change 'ENV HOME=/home/builder' \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /work' \
    --change "LABEL cbs.recipe=$recipe" \
    --change "LABEL cbs.go_version=$go_version" \
    "$tarball" "$image" >/dev/null
echo "builder-image.sh: made $image ($go_version)" >&2
