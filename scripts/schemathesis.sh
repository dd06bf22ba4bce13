#!/usr/bin/env bash
# Fuzz a running Tollgate against its own OpenAPI document with Schemathesis; non-zero exit on any finding.
#
# Usage: scripts/schemathesis.sh BASE_URL USERNAME PASSWORD [extra `st run` options...]
#   e.g. scripts/schemathesis.sh http://127.0.0.1:8080 admin hunter2
# Extra options are appended last, so they override the defaults below (e.g. `--seed 7`,
# `--max-examples 200`, `--phases examples,coverage,fuzzing,stateful`, `--report junit`).
# SCHEMATHESIS_TIMEOUT (seconds, default 900) bounds the whole run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCHEMATHESIS_VERSION=4.32.5

if [ "$#" -lt 3 ]; then
    echo "usage: $0 BASE_URL USERNAME PASSWORD [extra st run options...]" >&2
    exit 2
fi
base_url="${1%/}"
export TOLLGATE_ST_USERNAME="$2" TOLLGATE_ST_PASSWORD="$3"
shift 3

venv="$ROOT/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c 'import sys, importlib.metadata as md; sys.exit(md.version("schemathesis") != sys.argv[1])' \
    "$SCHEMATHESIS_VERSION" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Settings that have no command-line flag. Credentials stay in the environment (no ':' limit as with
# `--auth user:pass`); the cross-run cache is off so a run depends only on the seed and the server;
# a run where every request is refused as unauthenticated fails instead of passing vacuously.
config="$venv/schemathesis.toml"
cat >"$config" <<'EOF'
[auth.basic]
username = "${TOLLGATE_ST_USERNAME}"
password = "${TOLLGATE_ST_PASSWORD}"

[cache]
enabled = false

[warnings]
fail-on = ["missing_auth"]
EOF
# Keep Hypothesis' scratch files out of the working directory.
export HYPOTHESIS_STORAGE_DIRECTORY="$venv/hypothesis"

status=0
timeout --signal=INT --kill-after=30 "${SCHEMATHESIS_TIMEOUT:-900}" \
    "$venv/bin/st" --config-file "$config" run "$base_url/openapi.json" \
    --url "$base_url" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --mode all \
    --generation-with-security-parameters false \
    --max-examples 50 \
    --seed 20240601 \
    --generation-database none \
    --wait-for-schema 30 \
    "$@" || status=$?

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "schemathesis.sh: run exceeded ${SCHEMATHESIS_TIMEOUT:-900} s and was stopped" >&2
fi
exit "$status"
