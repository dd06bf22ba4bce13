#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis that the test suite needs are up (safe to run repeatedly).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    echo "services.sh: $*" >&2
    exit 1
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

# wait_for NAME CHECK_FUNCTION: poll for up to 30 seconds.
wait_for() {
    local i
    for ((i = 0; i < 60; i++)); do
        "$2" && return 0
        sleep 0.5
    done
    die "$1 did not come up on 127.0.0.1 within 30 s"
}

command -v pg_isready >/dev/null || die "pg_isready not found; install the PostgreSQL client tools"
command -v redis-cli >/dev/null || die "redis-cli not found; install redis-tools"

if ! postgres_up; then
    echo "services.sh: starting PostgreSQL" >&2
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$version" ] || die "PostgreSQL is down and no cluster exists under /etc/postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 ||
        die "could not start PostgreSQL cluster $version/main (see pg_ctlcluster output above)"
    wait_for PostgreSQL postgres_up
fi

if ! redis_up; then
    echo "services.sh: starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2 ||
        die "could not start redis-server (see /var/log/redis/ci.log)"
    wait_for Redis redis_up
fi
