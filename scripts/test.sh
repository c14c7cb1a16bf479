#!/usr/bin/env bash
# The test command: installs what is missing, builds recgate normally and
# with AddressSanitizer + UndefinedBehaviorSanitizer, and runs every test
# (ctest) on both builds (the benchmark's smoke run only on the normal
# one: it measures nothing under a sanitizer); then builds the libFuzzer
# targets with clang and fuzzes each one briefly on its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

# Huawei's SDK signer, the oracle of the conformance test.
(cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)

status=0

echo "== normal build"
scripts/build.sh build
(cd build && ctest --output-on-failure --timeout 600) || status=1

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DRECGATE_SANITIZE=ON
(cd build-asan \
    && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       ctest --output-on-failure --timeout 600 -LE bench-smoke) || status=1

echo "== libFuzzer build (clang)"
scripts/build.sh build-fuzz -DCMAKE_C_COMPILER=clang -DRECGATE_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=Debug
(cd build-fuzz && ctest -L fuzz --output-on-failure) || status=1

exit $status
