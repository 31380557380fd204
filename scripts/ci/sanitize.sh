#!/usr/bin/env bash
# ci-sanitize.sh - the host library and the tests built with AddressSanitizer, UndefinedBehavior-
# Sanitizer and LeakSanitizer (build-asan/, Debug, -DADASPLASH_SANITIZE=address,undefined), then
# the CTest suite in it: every test but the oclgrind label (it checks kernels, not host code, and
# runs in the normal build) and `install` (its consumers are built without the sanitizer runtime,
# which must come first in the link). Any report fails the run. Leak reports from PoCL and LLVM
# are suppressed by tests/sanitizers/lsan.supp (reasons there); everything else is reported.
# Usage: scripts/ci/sanitize.sh [extra ctest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BUILD="${ADASPLASH_ASAN_BUILD_DIR:-build-asan}"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DADASPLASH_SANITIZE=address,undefined \
  -DADASPLASH_BUILD_BENCH=OFF -DADASPLASH_BUILD_EXAMPLES=OFF -DADASPLASH_BUILD_TOOLS=OFF
cmake --build "$BUILD" -j2

# detect_leaks: LeakSanitizer at exit. fast_unwind_on_malloc=0: full allocation stacks through
# libraries built without frame pointers (libstdc++, LLVM), so that the suppressions see the
# library that allocated instead of a two-frame stack. halt_on_error / abort_on_error=0: the first
# report ends the test with a non-zero exit. UBSan: stack traces, and fatal (the build also has
# -fno-sanitize-recover=all). intercept_tls_get_addr=0: up to LLVM 16 the runtime's __tls_get_addr
# interceptor takes a dynamic TLS block that happens to start sizeof(a glibc 2.19 header) into a
# page for such a header and reads garbage bounds from it; LeakSanitizer's tracer then dies at exit
# ("Tracer caught signal 11", no leak reported). PoCL's dlopen'ed kernels hit that by layout:
# robustness_cache did so every run after an unrelated kernel change (see Mudlet PR 9930 for the
# mechanism).
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:intercept_tls_get_addr=0"
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

start=$(date +%s)
ctest --test-dir "$BUILD" --output-on-failure -j2 -LE oclgrind -E '^install$' "$@"
echo "ci-sanitize: sanitizer test run took $(($(date +%s) - start)) s"
