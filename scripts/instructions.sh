#!/usr/bin/env bash
# Counts the instructions Tollgate and the bare forwarder execute per request, with callgrind:
# the same N sequential keep-alive requests through each (after 200 to warm up), against the
# benchmark's mock upstream. Unlike timings, the counts do not move with the host's load, so they
# show what a change to the hot path saves. Needs valgrind, curl and python3; see
# docs/BENCHMARKS.md. Usage: scripts/instructions.sh [N]   (default 6000)
set -euo pipefail
N=${1:-6000}
cd "$(dirname "$0")/.."
cargo build --release --quiet -p tollgate -p tollgate-bench
BIN=$PWD/target/release
source scripts/bench-env.sh

# Counts under callgrind from after the warm-up to the end of the N requests.
measure() { # pid port key model
    drive "$2" "$3" "$4" chat 200
    callgrind_control -z "$1" > /dev/null 2>&1
    drive "$2" "$3" "$4" chat "$N"
    callgrind_control -d "$1" > /dev/null 2>&1
    sleep 1
    kill -TERM "$1"
}

per_request() { awk -v n="$N" '/^summary:/ { printf "%.0f", $2 / n }' "$1".1; }

start_mock
start_tollgate "$BIN/tollgate" valgrind --tool=callgrind --callgrind-out-file="$WORK/tollgate.cg"
setup_governance

measure "$TOLLGATE" "$PORT" "$KEY" openai/bench-model
wait "$TOLLGATE" || true

PORT=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$WORK/forwarder.cg" \
    "$BIN/tollgate-bench" forward --listen "127.0.0.1:$PORT" --upstream "http://$MOCK" > "$WORK/forwarder.log" 2>&1 & FORWARDER=$!
PIDS+=($FORWARDER)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
measure "$FORWARDER" "$PORT" unused bench-model
wait "$FORWARDER" || true

T=$(per_request "$WORK/tollgate.cg")
F=$(per_request "$WORK/forwarder.cg")
echo "instructions per request over $N requests (callgrind): tollgate $T, forwarder $F, ratio $(python3 -c "print(f'{$T / $F:.2f}')")"
echo "profiles: $WORK/tollgate.cg.1 $WORK/forwarder.cg.1 (callgrind_annotate --inclusive=yes …)"
