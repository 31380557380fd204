#!/usr/bin/env bash
# gpu_session.sh - one device-machine call: scripts/gpu/run_gpu.sh (build, tests, our benchmark and
# the peers) followed by a sweep of launch parameters (ADASPLASH_TUNE) for the fused kernels, with
# every result packed into $OUT/results.tgz plus the summary tables as separate files (the device
# tool returns at most 8 files). Environment as for run_gpu.sh, plus SWEEP (1: run the parameter
# sweep), SWEEP_N (16384), SWEEP_DTYPES (bf16,f32), SWEEP_TUNES (list of ADASPLASH_TUNE values
# separated by ';'; each also gets a per-kernel profile in sweep.txt).
set -u
cd "$(dirname "$0")/../.." || exit 1
FINAL=${OUT:-$PWD/gpu-out}
mkdir -p "$FINAL"
export OUT=/tmp/adasplash-gpu-out
rm -rf "$OUT"
mkdir -p "$OUT"
start=$SECONDS
bash scripts/gpu/run_gpu.sh "$@"
BENCH=build-gpu/bench/adasplash-bench
if [ "${SWEEP:-1}" = 1 ] && [ -x "$BENCH" ]; then
  # shellcheck disable=SC1091
  [ -r .gpu/setup-nvidia-opencl.sh ] && source .gpu/setup-nvidia-opencl.sh > /dev/null 2>&1
  default_tunes="attn_tile=32,attn_wg=64;attn_tile=32,attn_wg=128;attn_tile=32,attn_wg=64,attn_dk=32;attn_tile=32,attn_wg=64,attn_bins=32;attn_tile=32,attn_wg=64,attn_bins=8;attn_tile=32,attn_wg=32;attn_tile=64,attn_wg=128,attn_dk=32"
  IFS=';' read -r -a tunes <<< "${SWEEP_TUNES:-$default_tunes}"
  for t in "${tunes[@]}"; do
    [ $((SECONDS - start)) -lt "${SWEEP_DEADLINE_S:-560}" ] || { echo "sweep: out of time at $t"; break; }
    echo "== sweep ADASPLASH_TUNE=$t" | tee -a "$OUT/sweep.txt"
    ADASPLASH_TUNE=$t timeout 60 "$BENCH" --mode attention-fwd-bwd --n "${SWEEP_N:-16384}" --b 1 \
      --h 16 --d 64 --beta 2 --dtype "${SWEEP_DTYPES:-bf16,f32}" --algos entmax --warmup 2 \
      --repeats 5 --json "$OUT/sweep.jsonl" >> "$OUT/sweep.txt" 2>&1 ||
      echo "sweep $t: failed" >> "$OUT/sweep.txt"
    tail -n 4 "$OUT/sweep.txt"
    # Where the time goes with these parameters: one profiled forward+backward (kernels
    # serialised), summed per kernel into sweep.txt.
    rm -f "$OUT/prof-one.csv"
    ADASPLASH_TUNE=$t ADASPLASH_PROFILE="$OUT/prof-one.csv" timeout 60 "$BENCH" \
      --mode attention-fwd-bwd --n "${SWEEP_N:-16384}" --h 16 --d 64 --beta 2 --dtype bf16 \
      --algos entmax --warmup 0 --repeats 1 > /dev/null 2>&1
    if [ -r "$OUT/prof-one.csv" ]; then
      awk -F, '{ ms[$1] += $NF; n[$1]++ } END { for (k in ms) printf "  profile %-22s %9.3f ms (%d launches)\n", k, ms[k], n[k] }' \
        "$OUT/prof-one.csv" | sort >> "$OUT/sweep.txt"
      { echo "#tune $t"; cat "$OUT/prof-one.csv"; } >> "$OUT/profile-sweep.csv"
    fi
  done
  # Where the time goes: one profiled forward+backward per algorithm (kernels serialised).
  ADASPLASH_PROFILE="$OUT/profile.csv" timeout 120 "$BENCH" --mode attention-fwd-bwd \
    --n "${SWEEP_N:-16384}" --h 16 --d 64 --beta 2 --dtype bf16 --algos entmax,softmax --warmup 1 \
    --repeats 1 > /dev/null 2>&1
  # Register and spill report of the default kernels (NVIDIA: -cl-nv-verbose).
  mkdir -p "$OUT/buildlogs"
  ADASPLASH_BUILD_OPTIONS=-cl-nv-verbose ADASPLASH_BUILD_LOG_DIR="$OUT/buildlogs" timeout 60 \
    "$BENCH" --mode attention-fwd-bwd --n 1024 --h 1 --dtype bf16 --algos entmax,softmax \
    --warmup 0 --repeats 1 > /dev/null 2>&1
fi
tar czf "$FINAL/results.tgz" -C "$OUT" . 2> /dev/null
for f in summary.txt bench.txt sweep.txt ctest.log run.log profile.csv; do
  [ -r "$OUT/$f" ] && cp "$OUT/$f" "$FINAL/$f"
done
echo "gpu_session: done in $((SECONDS - start)) s"
