#!/usr/bin/env bash
# Installs the system packages that are missing (fresh machines). Always: a C
# toolchain and OpenSSL headers for the TLS client, Python for the helper
# scripts, curl and flock for scripts/minio.sh. With --test (make test, make
# bench), also what only the tests use: Chromium and its WebDriver for the
# browser tests, minisign to verify signatures, schemathesis for the api tests,
# nginx as the yardstick of the download benchmark (benches/api.rs runs its own
# instance on loopback), and the official validators the SBOM tests run:
# cyclonedx-python-lib's JSON schema validator and spdx-tools' pyspdxtools.
# Usage: scripts/ensure-deps.sh [--test]
set -euo pipefail
tests=false
[ "${1:-}" = "--test" ] && tests=true
missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v flock >/dev/null || missing+=(util-linux)
if $tests; then
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    command -v minisign >/dev/null || missing+=(minisign)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
# From PyPI, for `make test`: schemathesis checks the HTTP API against its
# OpenAPI document; cyclonedx-python-lib (with its JSON validator) and
# spdx-tools validate the SBOMs against the official schemas.
pip_install() {
    echo "ensure-deps: installing $* from PyPI" >&2
    python3 -m pip --version >/dev/null 2>&1 || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq python3-pip
    }
    python3 -m pip install -q "$@" || python3 -m pip install -q --break-system-packages "$@"
}
if $tests; then
    command -v schemathesis >/dev/null || pip_install schemathesis
    python3 -c 'import cyclonedx.validation.json, jsonschema' 2>/dev/null || pip_install 'cyclonedx-python-lib[json-validation]'
    command -v pyspdxtools >/dev/null || pip_install spdx-tools
fi
