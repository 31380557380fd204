#!/usr/bin/env bash
# experiments.sh - one device-machine call for kernel work, run ON the GPU machine from the
# repository root: build (build-gpu), the attention simulator case lists natively on chosen
# paths and dtypes, then timing experiments, each a forward or forward+backward benchmark plus
# one profiled run summed per kernel (ADASPLASH_PROFILE, kernels serialised). An experiment is a
# list of environment assignments, e.g. ADASPLASH_TUNE=nv_tile=64,nv_warps=4 or
# ADASPLASH_BUILD_OPTIONS=-DNAME=1 (a define read by the kernels; part of the program cache key).
# Everything lands in $OUT as at most 8 files (the device tool returns no more): exp.txt (the
# summary), build.log, tests.tgz and, with TABLE=1, table.txt and table.tgz (run_gpu.sh with
# FlashAttention-2 and cuDNN on the same inputs; needs .gpu/ and .whl/ as run_gpu.sh says).
#
# Environment (defaults): EXPS ("ADASPLASH_TUNE=" : the defaults; ';' between experiments, ' '
#   between the assignments of one), MODE (attention-fwd-bwd; decode: the decode target shape),
#   SHAPE (the bench's shape arguments), N (16384), ALGOS (entmax), DTYPE
#   (bf16), TESTS ("nvidia:bf16 nvidia:f16 portable:f32": path:dtype[:tuning] for
#   test_attention_fwd/bwd --oclgrind, the tuning an ADASPLASH_TUNE value; empty = none), TABLE (0), TABLE_NS ("4096 16384 32768"),
#   DEADLINE (400: seconds after which no experiment starts), REGS (space-separated experiments
#   whose kernels' ptxas register counts go to regs.txt), NCU (1: an Nsight Compute profile of the
#   training kernels with the first experiment's settings, ncu.txt; needs ncu on the machine;
#   NCU_KERNELS, a regex, and NCU_COUNT, launches profiled, narrow it).
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
[ -r .gpu/setup-nvidia-opencl.sh ] && source .gpu/setup-nvidia-opencl.sh > /dev/null 2>&1
export ADASPLASH_DEVICE=${ADASPLASH_DEVICE:-gpu}
export ADASPLASH_CACHE_DIR=${ADASPLASH_CACHE_DIR:-/tmp/asp-cache}
S=$OUT/exp.txt
t0=$SECONDS
note() { echo "[+$((SECONDS - t0))s] $*" >> "$S"; }
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release > "$OUT/build.log" 2>&1 &&
  cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1
note "build rc=$?"
B=$PWD/build-gpu/bench/adasplash-bench

TESTS=${TESTS-nvidia:bf16 nvidia:f16 portable:f32}
if [ -n "$TESTS" ]; then
  mkdir -p "$OUT/tests"
  for pdt in $TESTS; do
    IFS=: read -r path dtype tune <<< "$pdt"
    for t in attention_fwd attention_bwd; do
      (
        log=$OUT/tests/$t-$path-$dtype${tune:+-${tune//[,=]/_}}.log
        ADASPLASH_CHECK_LOCAL_MEM=1 ADASPLASH_PATH=$path TEST_DTYPE=$dtype \
          ADASPLASH_TUNE=$tune timeout 150 build-gpu/tests/test_$t --oclgrind > "$log" 2>&1
        note "$t $pdt rc=$? $(tail -n 1 "$log")"
      ) &
    done
  done
  wait
  tar czf "$OUT/tests.tgz" -C "$OUT" tests && rm -rf "$OUT/tests"
fi

# The problem shape: the training shape, or (MODE=decode) the decode target of issue 14.
if [ "${MODE:-}" = decode ]; then
  SHAPE=${SHAPE:-"--b 16 --h 16 --gqa 8 --d 128 --kv 65536 --q 1 --page 0"}
else
  SHAPE=${SHAPE:-"--n ${N:-16384} --b 1 --h 16 --d 64 --beta 2"}
fi
IFS=';' read -r -a exps <<< "${EXPS:-ADASPLASH_TUNE=}"
for e in "${exps[@]}"; do
  [ $((SECONDS - t0)) -lt "${DEADLINE:-400}" ] || { note "out of time before: $e"; break; }
  echo "== $e" >> "$S"
  # shellcheck disable=SC2086
  env $e timeout 120 "$B" --mode "${MODE:-attention-fwd-bwd}" $SHAPE --dtype "${DTYPE:-bf16}" \
    --algos "${ALGOS:-entmax}" --warmup 2 --repeats 5 2>&1 |
    grep -E "^(entmax|softmax|dense|decode|fused|copy)|rror" >> "$S"
  rm -f "$OUT/prof.csv"
  # shellcheck disable=SC2086
  env $e ADASPLASH_PROFILE="$OUT/prof.csv" timeout 90 "$B" --mode "${MODE:-attention-fwd-bwd}" \
    $SHAPE --dtype "${DTYPE:-bf16}" --algos "${ALGOS:-entmax}" --warmup 0 --repeats 1 \
    > /dev/null 2>&1
  [ -r "$OUT/prof.csv" ] && awk -F, '{ ms[$1] += $NF; n[$1]++ }
    END { for (k in ms) printf "  %-26s %9.3f ms/launch (%d)\n", k, ms[k] / n[k], n[k] }' \
    "$OUT/prof.csv" | sort >> "$S"
  rm -f "$OUT/prof.csv"
done

# Registers and spills per kernel (ptxas through -cl-nv-verbose), the training shape at N = 1024.
for e in ${REGS:-}; do
  rm -rf /tmp/asp-blogs && mkdir -p /tmp/asp-blogs
  # shellcheck disable=SC2086
  env $e ADASPLASH_CACHE_DIR=/tmp/asp-regs-cache ADASPLASH_BUILD_OPTIONS=-cl-nv-verbose \
    ADASPLASH_BUILD_LOG_DIR=/tmp/asp-blogs timeout 90 "$B" --mode attention-fwd-bwd --n 1024 \
    --b 1 --h 2 --d 64 --beta 2 --dtype "${DTYPE:-bf16}" --algos entmax --warmup 0 --repeats 1 \
    > /dev/null 2>&1
  echo "== $e" >> "$OUT/regs.txt"
  grep -h -A3 "Function properties for\|Compiling entry" /tmp/asp-blogs/* 2> /dev/null |
    grep -E "entry|registers|spill" | sed 's/^ptxas info *: //' >> "$OUT/regs.txt"
done

# Nsight Compute: speed of light, warp states, occupancy, memory, schedulers per training kernel.
if [ "${NCU:-0}" = 1 ]; then
  ncu_bin=$(command -v ncu)
  for f in /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu; do
    [ -z "$ncu_bin" ] && [ -x "$f" ] && ncu_bin=$f
  done
  first=${exps[0]:-ADASPLASH_TUNE=}
  if [ -n "$ncu_bin" ]; then
    # shellcheck disable=SC2086
    env $first timeout 150 "$ncu_bin" --clock-control none --section SpeedOfLight \
      --section WarpStateStats --section Occupancy --section LaunchStats \
      --section MemoryWorkloadAnalysis --section SchedulerStats --section ComputeWorkloadAnalysis \
      --section InstructionStats \
      -k "regex:${NCU_KERNELS:-attn_tau_dense|attn_tau\$|attn_forward_grad|attn_bwd_(fused|dkdv|dq)\$}" \
      -c "${NCU_COUNT:-5}" -o /tmp/asp-ncu -f \
      "$B" --mode attention-fwd-bwd $SHAPE --dtype "${DTYPE:-bf16}" --algos entmax --warmup 0 \
      --repeats 1 > "$OUT/ncu-run.log" 2>&1
    note "ncu rc=$?"
    "$ncu_bin" --import /tmp/asp-ncu.ncu-rep --page details > "$OUT/ncu.txt" 2>&1
  else
    note "ncu: not found"
  fi
fi

if [ "${TABLE:-0}" = 1 ]; then
  NS=${TABLE_NS:-4096 16384 32768} BETAS=2 DTYPES=bf16 REPEATS=5 WARMUP=2 BUDGET_S=200 \
    PHASE=ours FIRST_CALL=0 OUT=$OUT/table bash scripts/gpu/run_gpu.sh --no-tests \
    > "$OUT/table-run.txt" 2>&1
  cp "$OUT/table/summary.txt" "$OUT/table.txt" 2> /dev/null
  mv "$OUT/table-run.txt" "$OUT/table/" 2> /dev/null
  tar czf "$OUT/table.tgz" -C "$OUT" table && rm -rf "$OUT/table"
fi
note "done"
cat "$S" "$OUT/table.txt" 2> /dev/null
