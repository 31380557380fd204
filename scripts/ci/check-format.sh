#!/usr/bin/env bash
# check-format.sh - fails when a C or OpenCL C file of the repository is not clang-format clean
# (.clang-format at the root). `scripts/ci/check-format.sh --fix` rewrites the files instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v clang-format > /dev/null || { echo "clang-format is not installed"; exit 1; }
mode=(--dry-run -Werror)
[ "${1:-}" = "--fix" ] && mode=(-i)
status=0
while IFS= read -r f; do
  case "$f" in
    *.cl | *.clh) if [ "${mode[0]}" = "-i" ]; then
                    clang-format --assume-filename=kernel.cl "$f" > "$f.fmt" && mv "$f.fmt" "$f"
                  elif ! diff -q <(clang-format --assume-filename=kernel.cl "$f") "$f" > /dev/null; then
                    echo "not formatted: $f"; status=1
                  fi ;;
    *) clang-format "${mode[@]}" "$f" || { echo "not formatted: $f"; status=1; } ;;
  esac
done < <(git ls-files --cached --others --exclude-standard '*.c' '*.h' '*.cl' '*.clh' 2> /dev/null || find . -name '*.[ch]' -o -name '*.cl' -o -name '*.clh')
[ "$status" -eq 0 ] && echo "format: clean"
exit "$status"
