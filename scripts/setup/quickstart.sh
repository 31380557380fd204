#!/usr/bin/env bash
# quickstart.sh - from a fresh Debian machine to a result: installs the packages
# (scripts/setup/install-deps.sh), builds build/ (Release), shows the device the library picks
# (adasplash-info) and runs the example on it: entmax attention forward and backward with its
# statistics, and the softmax baseline on the same problem. Then: ctest --test-dir build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
build/tools/adasplash-info
build/examples/attention_example "${1:-1024}"
