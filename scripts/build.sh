#!/usr/bin/env bash
# Configures and builds recgate into a build directory.
#   scripts/build.sh [DIR] [extra cmake args...]
# The Dockerfile's build stage runs this same script.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
