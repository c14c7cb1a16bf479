#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts Redis, the Workspace
# simulator and recgate on loopback, asks for one finished record twice
# (X-Cache: MISS, then HIT), and leaves everything running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PORT=${RECGATE_DEMO_PORT:-8080}
REDIS_PORT=${RECGATE_DEMO_REDIS_PORT:-6390}
SIM_PORT=${RECGATE_DEMO_SIM_PORT:-8443}
PROJECT=0123456789abcdef0123456789abcdef
RECORD=rec-success-1
AK=DEMOACCESSKEY0000001
SK=demo-secret-key-not-a-real-one

scripts/deps.sh
scripts/build.sh build

work=$(mktemp -d /tmp/recgate-demo.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "stopping the demo"
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Refuses to start on a port something else already answers on: the
# demo would otherwise talk to that other program and look fine.
need_free_port() {
    if answers "$1"; then
        echo "port $1 is in use: set $2 to a free port" >&2
        exit 1
    fi
}

# Waits until PID (named NAME, logging to LOG) answers on PORT; stops the
# demo if it exits first.
wait_port() {
    local port=$1 pid=$2 name=$3 log=$4
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited at start; the end of $log:" >&2
            tail -n 5 "$log" >&2
            exit 1
        fi
        if answers "$port"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name did not answer on port $port; logs are in $work" >&2
    exit 1
}

need_free_port "$PORT" RECGATE_DEMO_PORT
need_free_port "$REDIS_PORT" RECGATE_DEMO_REDIS_PORT
need_free_port "$SIM_PORT" RECGATE_DEMO_SIM_PORT

echo "== test certificates in $work/pki"
python3 -c "import sys; sys.path.insert(0, 'tests/integration'); \
import harness; harness.make_pki('$work/pki')"

echo "== redis-server on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port "$REDIS_PORT" $! redis-server "$work/redis.log"

echo "== Workspace simulator on https://localhost:$SIM_PORT"
python3 tests/sim/sim.py --cert "$work/pki/server.pem" \
    --key "$work/pki/server.key" --fixtures tests/sim/fixtures.json \
    --ak "$AK" --sk "$SK" --host 127.0.0.1 --port "$SIM_PORT" \
    2>"$work/sim.log" &
pids+=($!)
wait_port "$SIM_PORT" $! "the simulator" "$work/sim.log"

echo "== recgate on http://127.0.0.1:$PORT"
cat >"$work/recgate.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
[upstream]
endpoint = https://localhost:$SIM_PORT
ca_file = $work/pki/ca.pem
[redis]
url = redis://127.0.0.1:$REDIS_PORT/0
CONF
HUAWEICLOUD_SDK_AK=$AK HUAWEICLOUD_SDK_SK=$SK \
    build/recgate -c "$work/recgate.conf" 2>"$work/recgate.log" &
pids+=($!)
wait_port "$PORT" $! recgate "$work/recgate.log"

url="http://127.0.0.1:$PORT/v2/$PROJECT/script-execution-records/$RECORD"
for n in first second; do
    echo
    echo "== $n request: curl -i $url"
    curl -sS -i "$url"
    echo
done

echo
echo "Running. Try:  curl -i $url"
echo "               curl http://127.0.0.1:$PORT/metrics"
echo "Logs: $work/recgate.log   Press Ctrl-C to stop."
wait
