#!/usr/bin/env bash
# Builds Tollgate and tollgate-bench with profile-guided optimisation (PGO): an instrumented build
# serves a short benchmark run (chat completions, plain and streamed, at fixed rates and at full
# speed, through Tollgate with governance on and through the bare forwarder), the profiles of every
# process are merged, and a second release build lays out and inlines its code by them. Both
# binaries are built from the same profile run, so the benchmark's floor (the forwarder, which
# lives in tollgate-bench) gets the same treatment as Tollgate. See docs/BENCHMARKS.md and
# decision 95 for what it gains and what it does not cover.
#
# Output: target/pgo/release/tollgate and target/pgo/release/tollgate-bench (the latter runs the
# former by default). Needs llvm-profdata of the LLVM major version rustc was built with
# (`rustc -vV`; on Debian `apt-get install llvm-NN`), or its path in LLVM_PROFDATA.
# Takes two release builds (about 13 minutes on 2 cores) and one minute of profiling.
set -euo pipefail
cd "$(dirname "$0")/.."

major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=${LLVM_PROFDATA:-$(command -v "llvm-profdata-$major" || command -v llvm-profdata || true)}
if [[ -z "$profdata" ]]; then
    echo "pgo: llvm-profdata not found; rustc uses LLVM $major (Debian: apt-get install llvm-$major)" >&2
    exit 1
fi
found=$("$profdata" --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -1)
if [[ "$found" != "$major" ]]; then
    echo "pgo: $profdata is LLVM $found, rustc needs $major (set LLVM_PROFDATA)" >&2
    exit 1
fi

data=$PWD/target/pgo-profiles
rm -rf "$data"
mkdir -p "$data"

echo "==> instrumented build (target/pgo-gen)"
RUSTFLAGS="-Cprofile-generate=$data" cargo build --release --locked -p tollgate -p tollgate-bench --target-dir target/pgo-gen

echo "==> profile run"
target/pgo-gen/release/tollgate-bench --rates 300,1000 --duration 4 --target-duration 6 \
    --full-duration 6 --rounds 1 --stream-duration 3 > "$data/profile-run.txt"
tail -3 "$data/profile-run.txt"
shopt -s nullglob
raw=("$data"/*.profraw)
if (( ${#raw[@]} < 2 )); then
    echo "pgo: expected profiles from Tollgate and tollgate-bench, found ${#raw[@]}" >&2
    exit 1
fi
"$profdata" merge -o "$data/merged.profdata" "${raw[@]}"

echo "==> optimised build (target/pgo)"
RUSTFLAGS="-Cprofile-use=$data/merged.profdata" cargo build --release --locked -p tollgate -p tollgate-bench --target-dir target/pgo
echo "==> built target/pgo/release/tollgate and target/pgo/release/tollgate-bench"
