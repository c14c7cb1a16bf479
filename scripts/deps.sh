#!/usr/bin/env bash
# Installs what recgate needs to build, test and run the demo on Debian 12,
# skipping what is already there. Used by test.sh, demo.sh and the
# Dockerfile's build stage.
set -euo pipefail

BUILD_PACKAGES=(build-essential cmake pkg-config libevent-dev libssl-dev
                libjansson-dev libhiredis-dev libinih-dev)
TEST_PACKAGES=(libcmocka-dev redis-server redis-tools python3 openssl
               clang libclang-rt-14-dev curl docker-compose)

want=("${BUILD_PACKAGES[@]}")
if [ "${1:-}" != "--build-only" ]; then
    want+=("${TEST_PACKAGES[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# Node.js may come from Debian (nodejs + npm) or from a vendor package
# that bundles npm; only the commands matter.
if [ "${1:-}" != "--build-only" ]; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages and not root: run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
