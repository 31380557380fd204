#!/usr/bin/env bash
# decode_check.sh - one device-machine call for the decode path (issue 14), run ON the GPU machine
# from the repository root: build (build-gpu), the decode target benchmark (B=16, 16 q heads on 2
# kv heads, D=128, kv 65536, bf16, contiguous and 256-token pages) against the fused forward and a
# device copy, the same at q_len 1 on the portable path, per-kernel profiles (ADASPLASH_PROFILE),
# `ctest -R "decode|shard"` and the kernels' register report (-cl-nv-verbose).
# Expects .gpu/ = a copy of shared/gpu/ (setup-nvidia-opencl.sh). Results in $OUT: decode.txt,
# decode.jsonl, ctest.log, build.log.
# Environment (defaults): QS (1,4: q_len list; q_len 16's fused forward takes minutes), CTEST_R
#   (decode|shard).
set -u
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
source .gpu/setup-nvidia-opencl.sh > "$OUT/setup.log" 2>&1
export ADASPLASH_DEVICE=gpu ADASPLASH_CACHE_DIR=/tmp/asp-cache
t0=$SECONDS
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1
echo "build rc=$? +$((SECONDS-t0))s" > "$OUT/decode.txt"
B=build-gpu/bench/adasplash-bench
timeout 200 $B --mode decode --b 16 --h 16 --gqa 8 --d 128 --kv 65536 --q ${QS:-1,4} --page 0,256 --dtype bf16 --warmup 2 --repeats 5 --json "$OUT/decode.jsonl" >> "$OUT/decode.txt" 2>&1
echo "bench rc=$? +$((SECONDS-t0))s" >> "$OUT/decode.txt"
echo "== portable" >> "$OUT/decode.txt"
ADASPLASH_PATH=portable timeout 100 $B --mode decode --b 16 --h 16 --gqa 8 --d 128 --kv 65536 --q 1 --page 0 --dtype bf16 --warmup 2 --repeats 5 >> "$OUT/decode.txt" 2>&1
for pq in auto:1 auto:4 portable:1; do
  rm -f /tmp/prof.csv
  ADASPLASH_PATH=${pq%%:*} ADASPLASH_PROFILE=/tmp/prof.csv timeout 60 $B --mode decode --b 16 --h 16 --gqa 8 --d 128 --kv 65536 --q ${pq##*:} --page 0 --dtype bf16 --warmup 0 --repeats 1 > /dev/null 2>&1
  echo "== profile $pq" >> "$OUT/decode.txt"
  [ -r /tmp/prof.csv ] && awk -F, '{ ms[$1] += $NF; n[$1]++ } END { for (k in ms) printf "  %-26s %9.3f ms/launch (%d)\n", k, ms[k] / n[k], n[k] }' /tmp/prof.csv | sort >> "$OUT/decode.txt"
done
echo "== ctest +$((SECONDS-t0))s" >> "$OUT/decode.txt"
ADASPLASH_CACHE_DIR=/tmp/asp-test-cache timeout 240 ctest --test-dir build-gpu -R "${CTEST_R:-decode|shard}" -E "oclgrind|emulated" --output-on-failure -j4 > "$OUT/ctest.log" 2>&1
echo "ctest rc=$? +$((SECONDS-t0))s" >> "$OUT/decode.txt"; tail -5 "$OUT/ctest.log" >> "$OUT/decode.txt"
ADASPLASH_BUILD_OPTIONS=-cl-nv-verbose ADASPLASH_BUILD_LOG_DIR=/tmp/blogs timeout 60 $B --mode decode --b 1 --h 16 --gqa 8 --d 128 --kv 4096 --q 1 --page 0 --dtype bf16 --warmup 0 --repeats 1 > /dev/null 2>&1
grep -h -E "Compiling entry|Used [0-9]+ registers" /tmp/blogs/* 2>/dev/null >> "$OUT/decode.txt"
cat "$OUT/decode.txt"
