#!/usr/bin/env bash
# Side-by-side benchmark of recgate's hit path: recgate (workers=1 and 2),
# nginx as a caching reverse proxy in front of the same simulator, and a
# bare libevent evhttp server (the ceiling of the library). One table on
# stdout and in tests/bench/results.md. See tests/bench/README.md.
#
#   tests/bench/run.sh            the benchmark (DURATION s per wrk cell,
#                                 default 10)
#   tests/bench/run.sh profile    perf record -g of recgate's hit path,
#                                 summary in tests/bench/profile.txt
#
# Environment: DURATION, BENCH_SMOKE=1 (2 s cells, small counts, results
# in the work directory: what ctest's bench_smoke runs), RECGATE_BIN (use
# this binary instead of building build/), BENCH_RESULTS (results file),
# BENCH_KEEP=1 (keep the work directory with every log).
#
# Everything listens on 127.0.0.1; every load is bounded in time and
# count; every process started here is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:-bench}
case $mode in
bench | profile) ;;
*)
    echo "usage: $0 [profile]" >&2
    exit 2
    ;;
esac

say() { echo "run.sh: $*" >&2; }

# --- what it needs, from Debian ----------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v redis-server >/dev/null || need+=(redis-server)
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
command -v cc >/dev/null || need+=(gcc)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists libevent 2>/dev/null || need+=(libevent-dev)
if [ "$mode" = profile ] && ! command -v perf >/dev/null; then
    need+=(linux-perf)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "missing ${need[*]}: install them (apt-get, as root) first"
        exit 1
    fi
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/dev/null; then
        # nginx-light is not in every release; plain nginx will do.
        need=("${need[@]/nginx-light/nginx}")
        apt-get install -y -qq --no-install-recommends "${need[@]}" \
            >/dev/null
    fi
fi
export PATH=$PATH:/usr/sbin:/sbin

# --- binaries -------------------------------------------------------------------
if [ -z "${RECGATE_BIN:-}" ]; then
    say "building recgate (scripts/build.sh build)"
    "$root/scripts/build.sh" build >&2
    RECGATE_BIN=$root/build/recgate
fi
export RECGATE_BIN

bindir=$(mktemp -d "${TMPDIR:-/tmp}/recgate-hitbench-bin.XXXXXX")
say "building the bare evhttp server"
# shellcheck disable=SC2046
cc -std=c11 -O2 -Wall -Wextra -o "$bindir/bare_evhttp" \
    "$here/bare_evhttp.c" $(pkg-config --cflags --libs libevent)
export BARE_BIN=$bindir/bare_evhttp

# 10,000 idle connections need that many descriptors in the client and in
# each server process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say "open files limit $(ulimit -n)"

# --- run --------------------------------------------------------------------------
if [ "$mode" = bench ]; then
    cmd="$0"
else
    cmd="$0 $mode"
fi
[ -n "${BENCH_SMOKE:-}" ] && [ "${BENCH_SMOKE}" != 0 ] &&
    cmd="BENCH_SMOKE=$BENCH_SMOKE $cmd"
[ -n "${DURATION:-}" ] && cmd="DURATION=$DURATION $cmd"
export BENCH_COMMAND=$cmd
export PYTHONDONTWRITEBYTECODE=1

bench_pid=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        # bench.py leads its own process group: it, Redis, the simulators,
        # recgate and its workers, nginx and its workers, wrk.
        kill -TERM -- "-$bench_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$bench_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$bench_pid" 2>/dev/null || true
    fi
    rm -rf "$bindir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setsid python3 "$here/bench.py" "$mode" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=
exit "$status"
