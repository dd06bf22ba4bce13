# Sourced by scripts/instructions.sh and scripts/routes.sh: the benchmark's mock upstream, one
# Tollgate on a temporary SQLite file, and the benchmark's governance (a budget and both rate limits
# on the profile and on its provider config, the request log on). Sets MOCK, PORT, TOLLGATE, KEY
# and WORK, and gives `drive` to send requests; everything it starts is stopped when the calling
# script exits. Needs curl and python3.
WORK=$(mktemp -d)
PIDS=()
ADMIN_PASSWORD=bench-env-admin
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/$2" && return 0; sleep 0.2; done; echo "port $1 did not answer" >&2; exit 1; }

# start_mock [OPTION…]: the mock upstream of target/release/tollgate-bench, given OPTIONs (such as
# --chunk-delay-ms 0); sets MOCK to its host:port.
start_mock() {
    target/release/tollgate-bench mock --port 0 "$@" > "$WORK/mock.txt" & PIDS+=($!)
    for _ in $(seq 50); do grep -q listening "$WORK/mock.txt" && break; sleep 0.1; done
    MOCK=$(sed -n 's/listening on //p' "$WORK/mock.txt")
    [[ -n "$MOCK" ]] || { echo "the mock upstream did not start" >&2; exit 1; }
}

# start_tollgate BINARY [WRAPPER…]: Tollgate (run under WRAPPER if given) with the mock as its one
# provider; sets PORT and TOLLGATE (the pid) once it answers.
start_tollgate() {
    local bin=$1
    shift
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
    TOLLGATE_ADMIN_PASSWORD=$ADMIN_PASSWORD "$@" "$bin" --listen "127.0.0.1:$PORT" \
        --database-url "sqlite://$WORK/t.db" --config "$WORK/tollgate.toml" \
        --encryption-key-file "$WORK/t.key" > "$WORK/tollgate.log" 2>&1 & TOLLGATE=$!
    PIDS+=($TOLLGATE)
    wait_for "$PORT" health
}

# The benchmark's access profile, attached to a role with one user; sets KEY to the user's key.
setup_governance() {
    api() { curl -sf -u "admin:$ADMIN_PASSWORD" -H content-type:application/json "$@"; }
    field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
    local base="http://127.0.0.1:$PORT/api/governance"
    local budgets='[{"max_limit": 1000000, "reset_duration": "1d"}]'
    local limit='{"request_max_limit": 100000000, "request_reset_duration": "1d", "token_max_limit": 100000000000, "token_reset_duration": "1d"}'
    local profile role user key_id
    profile=$(api -X POST "$base/access-profiles" -d "{\"name\": \"Bench\", \"budgets\": $budgets, \"rate_limit\": $limit,
        \"provider_configs\": [{\"provider_name\": \"openai\", \"allowed_models\": [\"bench-model\"], \"budgets\": $budgets, \"rate_limit\": $limit}]}" \
        | field '["access_profile"]["id"]')
    api -X PUT "$base/access-profiles/$profile/activate" > /dev/null
    role=$(api -X POST "$base/rbac/roles" -d '{"name": "bench"}' | field '["role"]["id"]')
    user=$(api -X POST "$base/users" -d "{\"name\": \"bench\", \"email\": \"bench@example.com\", \"role_id\": $role}" | field '["user"]["id"]')
    api -X POST "$base/access-profiles/$profile/roles" -d "{\"role_ids\": [$role], \"is_default\": true, \"apply_to_existing\": true}" > /dev/null
    key_id=$(api "$base/users/$user/access-profiles" | field '["access_profiles"][0]["virtual_key_ids"][0]')
    KEY=$(api -X POST "$base/users/$user/virtual-keys/$key_id/reveal" -d '{}' | field '["virtual_key"]["value"]')
}

# drive PORT KEY MODEL KIND N: N requests of one KIND on one keep-alive connection; fails unless
# every one answers 200. KIND: chat, chat-stream, anthropic, anthropic-stream (the Anthropic
# Messages route), embeddings or models (`GET /v1/models`).
drive() {
    python3 - "$@" <<'PY'
import http.client, json, sys
port, key, model, kind, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
text = "Say hello to the benchmark in five words."
messages = [{"role": "user", "content": text}]
if kind.startswith("chat"):
    path, body = "/v1/chat/completions", {"model": model, "max_tokens": 16, "messages": messages}
elif kind.startswith("anthropic"):
    path, body = "/anthropic/v1/messages", {"model": model, "max_tokens": 16, "messages": messages}
elif kind == "embeddings":
    path, body = "/v1/embeddings", {"model": model, "input": text}
else:
    path, body = "/v1/models", None
if kind.endswith("-stream"):
    body["stream"] = True
headers = {"content-type": "application/json", "authorization": "Bearer " + key}
conn, ok = http.client.HTTPConnection("127.0.0.1", port), 0
payload = None if body is None else json.dumps(body)
for _ in range(n):
    conn.request("GET" if body is None else "POST", path, payload, headers)
    answer = conn.getresponse()
    answer.read()
    ok += answer.status == 200
if ok != n:
    sys.exit(f"{kind}: only {ok} of {n} requests answered 200")
PY
}
