#!/usr/bin/env bash
# Fuzzes one libFuzzer target for a while on a throwaway copy of its seed
# corpus, so the committed corpus is never changed; first replays the
# target's saved reproducers, if any.
#   tests/fuzz/run_fuzz.sh TARGET CORPUS SECONDS [libFuzzer options...]
# A crash is saved in the working directory as <target>-crash-<sha1>.
set -euo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 TARGET CORPUS SECONDS [libFuzzer options...]" >&2
    exit 2
fi
target=$1
corpus=$2
seconds=$3
shift 3

name=$(basename "$target")
regressions="$(dirname "$0")/regressions/${name#fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

work=$(mktemp -d "${TMPDIR:-/tmp}/recgate-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$corpus" "$work/corpus"

if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    echo "== $name: replaying $regressions"
    "$target" "$regressions"/*
fi

echo "== $name: fuzzing a copy of $corpus for ${seconds}s"
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$PWD/$name-" "$@" \
    "$work/corpus"
