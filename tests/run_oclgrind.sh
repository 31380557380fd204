#!/usr/bin/env bash
# run_oclgrind.sh - runs a test program on the oclgrind simulator with data-race, API and bounds
# checking (bounds checks are always on) and fails on any report, or when the program fails.
# oclgrind 21.10's --uninitialized plugin is not used: it aborts on LLVM's `freeze` instruction
# and reports false positives across programs; the tests poison outputs instead.
# Usage: run_oclgrind.sh <program> [args...]
set -u
command -v oclgrind > /dev/null || { echo "oclgrind not installed"; exit 77; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ADASPLASH_CACHE_DIR=off oclgrind --data-races --check-api --max-errors 50 "$@" 2> "$log"
rc=$?
# oclgrind reports go to stderr; the test's own output stays on stdout.
if [ -s "$log" ] && grep -qvE "^\s*$" "$log"; then
  echo "oclgrind reported problems (or the program wrote to stderr):"
  head -c 20000 "$log"
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"
echo "oclgrind: no reports"
