#!/usr/bin/env bash
# run_gpu.sh - the whole NVIDIA GPU benchmark session, run ON the GPU machine from the repository
# root: NVIDIA OpenCL setup, peer wheels, Release build (build-gpu), the CTest suite, then
# adasplash-bench (attention-fwd-bwd, B=1 H=16 D=64 causal, entmax and softmax) for every N and
# beta with its inputs dumped, the peers (AdaSplash-2, FlashAttention-2, cuDNN; fp32: the SDPA
# memory-efficient backend) on exactly those inputs, one combined table, and the plot when gnuplot
# and jq exist. Bounded by a time budget (default 520 s) so it fits a 10-minute device command;
# every step is time-limited, failures are logged and skipped, nothing aborts the run.
#
# Expects (ignored folders that travel with the working tree): .gpu/ = a copy of shared/gpu/
# (setup-nvidia-opencl.sh, peer_bench.py) and .whl/ = the adasplash and entmax wheels.
# Results go to $OUT (default ./gpu-out): run.log, build.log, ctest.log, info.txt, bench.txt,
# bench.jsonl, peers.jsonl, peers.log, summary.txt, plot-*.svg/png.
#
# usage: scripts/gpu/run_gpu.sh [--no-tests]
# Environment (defaults): NS ("4096 16384 32768"), BETAS ("1 2"), DTYPES ("bf16 f32"),
#   REPEATS (10), WARMUP (3), BUDGET_S (520: whole run), RESERVE_S (25: kept for table and plot),
#   BUILD_TIMEOUT (240), CTEST_TIMEOUT (300), CTEST_JOBS (6), CTEST_EXCLUDE (warmup_all_variants:
#   it compiles all ~50 variants with the cache off, ~10 min on NVIDIA), TEST_CACHE
#   (/tmp/adasplash-test-cache: the tests' program cache), BENCH_TIMEOUT (150), PEER_TIMEOUT (90: fa2/cudnn/
#   efficient per configuration), A2_TIMEOUT (240: AdaSplash-2, which autotunes 60-270 s per new
#   shape), SKIP_PEERS (0), SKIP_A2 (0), FIRST_CALL (1: cold/warm columns for the first N and
#   beta), CMAKE_EXTRA (extra CMake arguments, default none), WORK (/tmp/adasplash-gpu-run:
#   dumped inputs), PHASE (all; "ours" = everything but AdaSplash-2, keeping WORK; "a2" = only
#   AdaSplash-2 on WORK's inputs (regenerated when the machine is fresh) and the table: AdaSplash-2
#   autotunes for minutes per new shape, so the whole session may not fit one 10-minute call).
set -u

run_tests=1
for a in "$@"; do
  case "$a" in
    --no-tests) run_tests=0 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_gpu.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
NS=${NS:-4096 16384 32768}
BETAS=${BETAS:-1 2}
DTYPES=${DTYPES:-bf16 f32}
REPEATS=${REPEATS:-10}
WARMUP=${WARMUP:-3}
BUDGET_S=${BUDGET_S:-520}
RESERVE_S=${RESERVE_S:-25}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-240}
CTEST_TIMEOUT=${CTEST_TIMEOUT:-300}
CTEST_JOBS=${CTEST_JOBS:-6}
CTEST_EXCLUDE=${CTEST_EXCLUDE-warmup_all_variants}
TEST_CACHE=${TEST_CACHE:-/tmp/adasplash-test-cache}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}
PEER_TIMEOUT=${PEER_TIMEOUT:-90}
A2_TIMEOUT=${A2_TIMEOUT:-240}
SKIP_PEERS=${SKIP_PEERS:-0}
SKIP_A2=${SKIP_A2:-0}
PHASE=${PHASE:-all}
case "$PHASE" in
  all) ;;
  ours) SKIP_A2=1 ;;
  a2) run_tests=0 ;;
  *) echo "run_gpu.sh: PHASE must be all, ours or a2" >&2; exit 2 ;;
esac
FIRST_CALL=${FIRST_CALL:-1}
CMAKE_EXTRA=${CMAKE_EXTRA:-}
WORK=${WORK:-/tmp/adasplash-gpu-run}
BUILD=build-gpu
BENCH=$ROOT/$BUILD/bench/adasplash-bench

START=$SECONDS
log() { echo "[run_gpu +$((SECONDS - START))s] $*" | tee -a "$OUT/run.log"; }
# Seconds left before the reserve for the final table and plot.
left() { echo $((START + BUDGET_S - RESERVE_S - SECONDS)); }
# min(limit, time left); prints 0 when less than 10 s would remain.
limit() {
  local l
  l=$(left)
  [ "$l" -ge 10 ] || { echo 0; return; }
  [ "$1" -lt "$l" ] && echo "$1" || echo "$l"
}

log "start: NS='$NS' BETAS='$BETAS' DTYPES='$DTYPES' repeats=$REPEATS budget=${BUDGET_S}s out=$OUT"

# ---- NVIDIA OpenCL ------------------------------------------------------------------------------
if [ -r .gpu/setup-nvidia-opencl.sh ]; then
  # shellcheck disable=SC1091
  source .gpu/setup-nvidia-opencl.sh > "$OUT/setup.txt" 2>&1
  log "setup: $(tr '\n' ' ' < "$OUT/setup.txt")"
else
  export ADASPLASH_DEVICE=${ADASPLASH_DEVICE:-gpu}
  log "note: .gpu/setup-nvidia-opencl.sh missing; ADASPLASH_DEVICE=$ADASPLASH_DEVICE"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1

# ---- peer wheels --------------------------------------------------------------------------------
peers_ok=0
if [ "$SKIP_PEERS" = 1 ]; then
  log "peers: skipped (SKIP_PEERS=1)"
elif [ ! -r .gpu/peer_bench.py ]; then
  log "peers: skipped (.gpu/peer_bench.py missing)"
elif ! ls .whl/*.whl >/dev/null 2>&1; then
  log "peers: skipped (no wheels in .whl/)"
elif ! timeout 120 python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
    >> "$OUT/pip.log" 2>&1; then
  log "peers: skipped (wheel install failed, see pip.log)"
else
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  if timeout 120 python3 -c "import torch, triton, adasplash; assert torch.cuda.is_available()" \
      >> "$OUT/pip.log" 2>&1; then
    peers_ok=1
    log "peers: wheels installed in /tmp/site"
  else
    log "peers: skipped (torch/triton/adasplash import or CUDA failed, see pip.log)"
  fi
fi
# Triton >= 3.4 caches autotuning results on disk: AdaSplash-2 tunes once per shape, not once per
# process (the second beta of the same N reuses the first one's tuning).
export TRITON_CACHE_AUTOTUNING=${TRITON_CACHE_AUTOTUNING:-1}

# ---- build --------------------------------------------------------------------------------------
# Strict first (-Werror as the project sets it); when that fails, once more with a compiler
# launcher that appends -Wno-error (a warning of this machine's compiler must not cost the run;
# the strict errors stay in build.log and are reported).
build_all() {
  # shellcheck disable=SC2086
  # The numeric tests share one program cache: NVIDIA compiles an attention program in ~13 s, and
  # the forward and backward tests build the same ones.
  timeout "$BUILD_TIMEOUT" cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release $CMAKE_EXTRA "$@" \
    "-DADASPLASH_TEST_ENV=ADASPLASH_CACHE_DIR=$TEST_CACHE" \
    >> "$OUT/build.log" 2>&1 || { log "configure failed (see build.log)"; return 1; }
  timeout "$BUILD_TIMEOUT" cmake --build "$BUILD" -j16 >> "$OUT/build.log" 2>&1
}
built=0
: > "$OUT/build.log"
if build_all; then
  built=1
else
  grep -m 5 -E 'error:' "$OUT/build.log" | tee -a "$OUT/run.log"
  log "strict build failed: retrying with -Wno-error appended by a compiler launcher"
  nowerror=$WORK-nowerror.sh
  printf '#!/bin/sh\nexec "$@" -Wno-error\n' > "$nowerror" && chmod +x "$nowerror"
  if build_all -DCMAKE_C_COMPILER_LAUNCHER="$nowerror"; then
    built=1
    log "build: ok only without -Werror (the errors above are real warnings to fix)"
  else
    log "build of every target failed; building adasplash-bench and adasplash-info alone"
    timeout "$BUILD_TIMEOUT" cmake --build "$BUILD" -j16 --target adasplash-bench adasplash-info \
      >> "$OUT/build.log" 2>&1 && built=1
  fi
fi
if [ "$built" = 1 ] && [ -x "$BENCH" ]; then
  log "build: ok ($BUILD)"
  [ -x "$BUILD/tools/adasplash-info" ] && timeout 60 "$BUILD/tools/adasplash-info" \
    > "$OUT/info.txt" 2>&1
else
  built=0
  log "build: FAILED, no benchmark possible (tail of build.log follows)"
  tail -n 30 "$OUT/build.log" | tee -a "$OUT/run.log"
fi

# ---- tests --------------------------------------------------------------------------------------
if [ "$built" = 1 ] && [ "$run_tests" = 1 ]; then
  t=$(limit "$CTEST_TIMEOUT")
  if [ "$t" -gt 0 ]; then
    (cd "$BUILD" && timeout -k 5 "$t" ctest --output-on-failure -j "$CTEST_JOBS" --timeout "$t" \
      ${CTEST_EXCLUDE:+-E "$CTEST_EXCLUDE"}) \
      > "$OUT/ctest.log" 2>&1
    rc=$?
    log "ctest: rc=$rc ($(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -n 1))"
    [ "$rc" = 124 ] && log "ctest: stopped after ${t}s (CTEST_TIMEOUT)"
  else
    log "ctest: skipped (no time left)"
  fi
elif [ "$run_tests" = 0 ]; then
  log "ctest: skipped (--no-tests)"
fi

# ---- our benchmark, every N and beta ------------------------------------------------------------
[ "$PHASE" = a2 ] || rm -rf "$WORK"
mkdir -p "$WORK"
dtype_list=$(echo "$DTYPES" | tr ' ' ',' | sed 's/,,*/,/g; s/^,//; s/,$//')
configs=()
if [ "$PHASE" = a2 ]; then
  # The inputs of the "ours" phase when this machine still has them, else regenerated (same seed,
  # same generator: one untimed softmax run per configuration with --dump).
  for n in $NS; do
    for beta in $BETAS; do
      dir=$WORK/inputs-n$n-beta$beta
      if [ ! -r "$dir/v.npy" ] && [ "$built" = 1 ]; then
        log "a2: regenerating inputs N=$n beta=$beta"
        timeout 120 "$BENCH" --mode attention-fwd --b 1 --h 16 --d 64 --causal --n "$n" \
          --beta "$beta" --dtype bf16 --algos softmax --warmup 0 --repeats 1 --dump "$dir" \
          > /dev/null 2>&1
      fi
      [ -r "$dir/v.npy" ] && configs+=("$n:$beta")
    done
  done
  [ -s "$WORK/bench.jsonl" ] && cp "$WORK/bench.jsonl" "$OUT/bench.jsonl"
elif [ "$built" = 1 ] && [ -x "$BENCH" ]; then
  first=$FIRST_CALL
  for n in $NS; do
    for beta in $BETAS; do
      t=$(limit "$BENCH_TIMEOUT")
      if [ "$t" -le 0 ]; then
        log "bench N=$n beta=$beta: skipped (time budget)"
        continue
      fi
      dir=$WORK/inputs-n$n-beta$beta
      extra=()
      [ "$first" = 1 ] && extra=(--first-call)
      first=0
      log "bench N=$n beta=$beta dtypes=$dtype_list (limit ${t}s)"
      timeout -k 5 "$t" "$BENCH" --mode attention-fwd-bwd --b 1 --h 16 --d 64 --causal \
        --n "$n" --beta "$beta" --dtype "$dtype_list" --algos entmax,softmax \
        --warmup "$WARMUP" --repeats "$REPEATS" --json "$OUT/bench.jsonl" --dump "$dir" \
        "${extra[@]}" >> "$OUT/bench.txt" 2>&1
      rc=$?
      [ "$rc" = 0 ] || log "bench N=$n beta=$beta: rc=$rc (see bench.txt)"
      [ -r "$dir/v.npy" ] && configs+=("$n:$beta")
    done
  done
  tail -n 40 "$OUT/bench.txt"
fi

# ---- peers on the same inputs -------------------------------------------------------------------
# run_peer N BETA DTYPE PEERS LIMIT [--sparsity]: JSON lines annotated with beta and n go to
# peers.jsonl, everything else to peers.log.
run_peer() {
  local n=$1 beta=$2 dt=$3 peers=$4 lim=$5 spars=${6:-}
  local t tmp rc
  t=$(limit "$lim")
  if [ "$t" -le 0 ]; then
    log "peers $peers $dt N=$n beta=$beta: skipped (time budget)"
    return
  fi
  tmp=$WORK/peer.out
  log "peers $peers $dt N=$n beta=$beta (limit ${t}s)"
  echo "== $peers $dt N=$n beta=$beta" >> "$OUT/peers.log"
  # shellcheck disable=SC2086
  timeout -k 5 "$t" python3 .gpu/peer_bench.py --inputs "$WORK/inputs-n$n-beta$beta" \
    --dtype "$dt" --peers "$peers" $spars > "$tmp" 2>> "$OUT/peers.log"
  rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ -n "$spars" ] && ! grep -q '^{' "$tmp"; then
    log "peers $peers $dt N=$n beta=$beta: rc=$rc, retrying without --sparsity"
    t=$(limit "$lim")
    [ "$t" -gt 0 ] && timeout -k 5 "$t" python3 .gpu/peer_bench.py \
      --inputs "$WORK/inputs-n$n-beta$beta" --dtype "$dt" --peers "$peers" \
      > "$tmp" 2>> "$OUT/peers.log"
    rc=$?
  fi
  [ "$rc" = 0 ] || log "peers $peers $dt N=$n beta=$beta: rc=$rc$([ "$rc" = 124 ] && echo ' (timeout)')"
  grep '^{' "$tmp" | sed "s/}[[:space:]]*\$/, \"beta\": $beta, \"n\": $n}/" >> "$OUT/peers.jsonl"
  grep -v '^{' "$tmp" >> "$OUT/peers.log"
}

if [ "$peers_ok" = 1 ] && [ ${#configs[@]} -gt 0 ]; then
  # Order: FA2 + cuDNN (fast) for every configuration, then AdaSplash-2 (the main target; its first
  # call autotunes for minutes) while time lasts, then the fp32 memory-efficient backend.
  for c in "${configs[@]}"; do
    [ "$PHASE" = a2 ] && break
    case " $DTYPES " in *" bf16 "*) run_peer "${c%%:*}" "${c##*:}" bf16 fa2,cudnn "$PEER_TIMEOUT" --sparsity ;; esac
  done
  if [ "$SKIP_A2" != 1 ]; then
    for c in "${configs[@]}"; do
      case " $DTYPES " in *" bf16 "*) run_peer "${c%%:*}" "${c##*:}" bf16 adasplash2 "$A2_TIMEOUT" ;; esac
    done
  fi
  for c in "${configs[@]}"; do
    [ "$PHASE" = a2 ] && break
    case " $DTYPES " in *" f32 "*) run_peer "${c%%:*}" "${c##*:}" fp32 efficient "$PEER_TIMEOUT" ;; esac
  done
fi

# ---- combined table -----------------------------------------------------------------------------
if [ -s "$OUT/bench.jsonl" ]; then
  python3 scripts/gpu/gpu_table.py "$OUT/bench.jsonl" "$WORK/peers.jsonl" "$OUT/peers.jsonl" \
    > "$OUT/summary.txt" 2>&1
  cat "$OUT/summary.txt"
else
  log "no benchmark results: no table"
fi

# ---- plot ---------------------------------------------------------------------------------------
if [ -s "$OUT/bench.jsonl" ]; then
  if command -v gnuplot >/dev/null && command -v jq >/dev/null; then
    for dt in $DTYPES; do
      for beta in $BETAS; do
        pf=()
        [ -s "$OUT/peers.jsonl" ] && pf=("$OUT/peers.jsonl")
        timeout 60 bash scripts/plot/plot_bench.sh -o "$OUT/plot-$dt-beta$beta" --dtype "$dt" \
          --beta "$beta" --b 1 --h 16 --d 64 "$OUT/bench.jsonl" "${pf[@]}" >> "$OUT/run.log" 2>&1 ||
          log "plot $dt beta=$beta failed"
      done
    done
  else
    log "plot: skipped (gnuplot or jq not installed here; run scripts/plot/plot_bench.sh on bench.jsonl" \
      "and peers.jsonl elsewhere)"
  fi
fi
if [ "$PHASE" = ours ]; then
  # Kept for PHASE=a2 on this machine: the inputs, our results and the fast peers' results.
  [ -s "$OUT/bench.jsonl" ] && cp "$OUT/bench.jsonl" "$WORK/bench.jsonl"
  [ -s "$OUT/peers.jsonl" ] && cp "$OUT/peers.jsonl" "$WORK/peers.jsonl"
else
  rm -rf "$WORK"
fi
log "done in $((SECONDS - START))s; results in $OUT"
exit 0
