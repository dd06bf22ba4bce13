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
WORK=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/$2" && return 0; sleep 0.2; done; echo "port $1 did not answer" >&2; exit 1; }

# N requests on one keep-alive connection; prints how many got 200.
drive() {
    python3 - "$@" <<'PY'
import http.client, json, sys
port, key, model, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
body = json.dumps({"model": model, "max_tokens": 16,
                   "messages": [{"role": "user", "content": "Say hello to the benchmark in five words."}]})
conn, ok = http.client.HTTPConnection("127.0.0.1", port), 0
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "authorization": "Bearer " + key})
    answer = conn.getresponse()
    answer.read()
    ok += answer.status == 200
if ok != n:
    sys.exit(f"only {ok} of {n} requests answered 200")
PY
}

# Counts under callgrind from after the warm-up to the end of the N requests.
measure() { # pid port key model
    drive "$2" "$3" "$4" 200
    callgrind_control -z "$1" > /dev/null 2>&1
    drive "$2" "$3" "$4" "$N"
    callgrind_control -d "$1" > /dev/null 2>&1
    sleep 1
    kill -TERM "$1"
}

per_request() { awk -v n="$N" '/^summary:/ { printf "%.0f", $2 / n }' "$1".1; }

"$BIN/tollgate-bench" mock --port 0 > "$WORK/mock.txt" & PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$WORK/mock.txt" && break; sleep 0.1; done
MOCK=$(sed -n 's/listening on //p' "$WORK/mock.txt")

cat > "$WORK/tollgate.toml" <<TOML
[[providers]]
name = "openai"
base_url = "http://$MOCK/v1"
api_key = "bench"
models = ["bench-model"]

[pricing.models."openai/bench-model"]
input = 0.1
output = 0.4
TOML
PORT=$(free_port)
TOLLGATE_ADMIN_PASSWORD=instructions-admin valgrind --tool=callgrind --callgrind-out-file="$WORK/tollgate.cg" \
    "$BIN/tollgate" --listen "127.0.0.1:$PORT" --database-url "sqlite://$WORK/t.db" --config "$WORK/tollgate.toml" \
    --encryption-key-file "$WORK/t.key" > "$WORK/tollgate.log" 2>&1 & TOLLGATE=$!
PIDS+=($TOLLGATE)
wait_for "$PORT" health

# The benchmark's governance: a budget and both rate limits on the profile and on its provider config.
api() { curl -sf -u admin:instructions-admin -H content-type:application/json "$@"; }
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
BASE="http://127.0.0.1:$PORT/api/governance"
BUDGETS='[{"max_limit": 1000000, "reset_duration": "1d"}]'
LIMIT='{"request_max_limit": 100000000, "request_reset_duration": "1d", "token_max_limit": 100000000000, "token_reset_duration": "1d"}'
PROFILE=$(api -X POST "$BASE/access-profiles" -d "{\"name\": \"Bench\", \"budgets\": $BUDGETS, \"rate_limit\": $LIMIT,
    \"provider_configs\": [{\"provider_name\": \"openai\", \"allowed_models\": [\"bench-model\"], \"budgets\": $BUDGETS, \"rate_limit\": $LIMIT}]}" \
    | field '["access_profile"]["id"]')
api -X PUT "$BASE/access-profiles/$PROFILE/activate" > /dev/null
ROLE=$(api -X POST "$BASE/rbac/roles" -d '{"name": "bench"}' | field '["role"]["id"]')
USER_ID=$(api -X POST "$BASE/users" -d "{\"name\": \"bench\", \"email\": \"bench@example.com\", \"role_id\": $ROLE}" | field '["user"]["id"]')
api -X POST "$BASE/access-profiles/$PROFILE/roles" -d "{\"role_ids\": [$ROLE], \"is_default\": true, \"apply_to_existing\": true}" > /dev/null
KEY_ID=$(api "$BASE/users/$USER_ID/access-profiles" | field '["access_profiles"][0]["virtual_key_ids"][0]')
KEY=$(api -X POST "$BASE/users/$USER_ID/virtual-keys/$KEY_ID/reveal" -d '{}' | field '["virtual_key"]["value"]')

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
