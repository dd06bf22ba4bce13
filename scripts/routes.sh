#!/usr/bin/env bash
# CPU time one Tollgate build spends per request on each route it serves: N sequential keep-alive
# requests per route (after 200 to warm up) with the benchmark's governance, against the
# benchmark's mock upstream; Tollgate's user + system CPU is read from /proc before and after.
# Made to compare builds on routes the benchmark does not drive (the PGO profile run trains only
# chat completions; decision 95), e.g. run it for target/release/tollgate and for
# target/pgo/release/tollgate, alternately. Needs curl and python3; Linux (reads /proc).
# Usage: scripts/routes.sh [TOLLGATE_BINARY] [N]   (defaults: target/release/tollgate, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
TOLLGATE_BIN=$(realpath "${1:-target/release/tollgate}")
N=${2:-20000}
cargo build --release --quiet --locked -p tollgate -p tollgate-bench
source scripts/bench-env.sh

start_mock --chunk-delay-ms 0 # streamed chunks back to back: the same work, no idle wait
start_tollgate "$TOLLGATE_BIN"
setup_governance

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "CPU per request of $TOLLGATE_BIN over $N requests per route (user + system, µs):"
for kind in chat chat-stream anthropic anthropic-stream embeddings models; do
    drive "$PORT" "$KEY" openai/bench-model "$kind" 200
    sleep 1.5 # the usage writer's flush of the warm-up falls before the first reading
    before=$(cpu_ticks "$TOLLGATE")
    drive "$PORT" "$KEY" openai/bench-model "$kind" "$N"
    sleep 1.5 # and the flush of the measured requests before the second
    after=$(cpu_ticks "$TOLLGATE")
    python3 -c "print(f'  {\"$kind\":<17} {($after - $before) * 1e6 / $TICKS / $N:7.1f}')"
done
