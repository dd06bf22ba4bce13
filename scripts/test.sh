#!/usr/bin/env bash
# Run the whole Tollgate test suite: bring up PostgreSQL and Redis, then hand over to cargo-nextest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/services.sh

export TOLLGATE_TEST_POSTGRES_URL="${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

# The official OpenAI and Anthropic Python SDKs drive the gateway in the SDK tests.
venv=.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/sdk-requirements.txt
export TOLLGATE_TEST_PYTHON="${TOLLGATE_TEST_PYTHON:-$PWD/$venv/bin/python}"

# The metrics tests check the exposition with promtool, from Debian's `prometheus` package.
if ! command -v promtool >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi

exec cargo nextest run --workspace --no-fail-fast "$@"
