#!/usr/bin/env bash
# Run the whole Tollgate test suite: bring up PostgreSQL and Redis, then hand over to cargo-nextest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/services.sh

export TOLLGATE_TEST_POSTGRES_URL="${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi

exec cargo nextest run --workspace --no-fail-fast "$@"
