#!/usr/bin/env bash
# ci-fuzz.sh - a bounded libFuzzer run of tests/fuzz/fuzz_api (the public API's argument
# validation) in a clang build with AddressSanitizer and UndefinedBehaviorSanitizer (build-fuzz/,
# -DADASPLASH_BUILD_FUZZ=ON). It starts from tests/fuzz/corpus (not modified: new inputs go to a
# temporary directory) and fails on any crash, sanitizer report or broken property; the input is
# then in build-fuzz/fuzz-artifacts/ (add it to tests/fuzz/corpus as regression-<name> once fixed).
# Needs clang and libclang-rt-14-dev (scripts/setup/install-deps.sh).
# Usage: scripts/ci/fuzz.sh [seconds (default 60)] [extra libFuzzer flags]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BUILD="${ADASPLASH_FUZZ_BUILD_DIR:-build-fuzz}"
SECONDS_BUDGET="${1:-60}"
shift || true
command -v clang > /dev/null || { echo "ci-fuzz.sh: clang is not installed" >&2; exit 1; }

cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBUILD_SHARED_LIBS=OFF -DADASPLASH_BUILD_FUZZ=ON -DADASPLASH_SANITIZE=address,undefined \
  -DADASPLASH_BUILD_BENCH=OFF -DADASPLASH_BUILD_EXAMPLES=OFF -DADASPLASH_BUILD_TOOLS=OFF
cmake --build "$BUILD" -j2 --target fuzz_api

# Options as in scripts/ci/sanitize.sh (reasons there); the disk cache stays off (the target sets
# it).
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ADASPLASH_CACHE_DIR=off

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$BUILD/fuzz-artifacts"
# -max_total_time bounds the run; -rss_limit_mb leaves room for ASan's quarantine and PoCL;
# -timeout: one input taking 30 s is a hang. New inputs go to $work, the seeds stay read-only.
"$BUILD/tests/fuzz_api" -max_total_time="$SECONDS_BUDGET" -timeout=30 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-artifacts/" "$@" \
  "$work" tests/fuzz/corpus 2>&1 | tee "$BUILD/fuzz.log" | grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|NEW_FUNC'
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo "ci-fuzz: FAILED (libFuzzer exit $rc); inputs: $(ls "$BUILD/fuzz-artifacts")" >&2
  exit "$rc"
fi
echo "ci-fuzz: no crash in ${SECONDS_BUDGET} s"
