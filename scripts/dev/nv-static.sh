#!/usr/bin/env bash
# nv-static.sh - registers, spills, local memory and the SASS instruction mix of the NVIDIA
# path's kernels without a GPU: OpenCL C -> LLVM (clang-15, libclc's nvptx64 builtins) -> PTX
# (LLVM's NVPTX back end) -> SASS (ptxas for sm_90, from NVIDIA's PyPI wheels). NVIDIA's own
# OpenCL compiler takes another front end to the same ptxas, so its counts differ somewhat: use
# this to compare variants of a kernel here, and the device call's register report
# (scripts/gpu/experiments.sh REGS=) for the numbers to quote.
#
#   scripts/dev/nv-static.sh --install            Debian packages + ptxas/cuobjdump into .nvtools/
#   scripts/dev/nv-static.sh PROGRAM [-DNAME=V ...] [--sass KERNEL] [--maxrreg N]
#
# PROGRAM: forward | dense | backward (cl/attn_forward.cl, attn_dense.cl, attn_backward.cl with
# the GPU class's NVIDIA defaults: bf16, head dim 64, 32x32 tiles on 2 warps, 128-row dense sweep
# on 8 warps (attn_tau without it), split backward, alpha 1.5: -DASP_ALPHA_CLASS=0 for the
# programs for any alpha), or a path to a .cl file (then give every define). Later -D options
# override the preset's.
# --sass KERNEL prints that kernel's SASS opcode counts, and the whole listing to
# $OUT_DIR/KERNEL.sass (default /tmp/nv-static).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS=$PWD/.nvtools
OUT_DIR=${OUT_DIR:-/tmp/nv-static}
LLVM=/usr/lib/llvm-15/bin
CLC=/usr/lib/clc/nvptx64--nvidiacl.bc

if [ "${1:-}" = --install ]; then
  apt-get install -y clang-15 llvm-15 libclc-15 > /dev/null
  mkdir -p "$TOOLS/wheels"
  python3 -m pip download -q --no-deps -d "$TOOLS/wheels" nvidia-cuda-nvcc-cu12 \
    nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  for w in "$TOOLS"/wheels/*.whl; do python3 -m zipfile -e "$w" "$TOOLS/unpacked"; done
  mkdir -p "$TOOLS/bin"
  for b in ptxas cuobjdump nvdisasm; do
    f=$(find "$TOOLS/unpacked" -type f -name "$b" | head -n 1)
    chmod +x "$f" && ln -sf "$f" "$TOOLS/bin/$b"
  done
  "$TOOLS/bin/ptxas" --version | tail -n 1
  exit 0
fi
for t in "$LLVM/llc" "$CLC" "$TOOLS/bin/ptxas"; do
  [ -e "$t" ] || { echo "nv-static.sh: $t missing; run scripts/dev/nv-static.sh --install" >&2; exit 2; }
done

[ $# -ge 1 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
prog=$1
shift
common="-DASP_PATH=1 -DASP_DTYPE=2 -DASP_HD=64 -DASP_NSTAGE=2 -DASP_TILE_IMPL=1 -DASP_T=32"
case $prog in
  forward) src=cl/attn_forward.cl
    defs="$common -DASP_BINS=16 -DASP_KMAX=32 -DASP_WG=64 -DASP_ALPHA_CLASS=1"
    defs="$defs -DASP_TAU_DENSE_DONE=1" ;; # attn_tau_dense runs the dense sweep
  dense) src=cl/attn_dense.cl
    defs="$common -DASP_BINS=16 -DASP_KMAX=32 -DASP_TQ=128 -DASP_TSUB=32 -DASP_WG=256" ;;
  backward) src=cl/attn_backward.cl defs="$common -DASP_BWD_FUSED=0 -DASP_WG=64 -DASP_ALPHA_CLASS=1" ;;
  *) src=$prog defs="" ;;
esac
sass="" maxrreg=""
while [ $# -gt 0 ]; do
  case $1 in
    --sass) sass=$2; shift 2 ;;
    --maxrreg) maxrreg="-maxrregcount=$2"; shift 2 ;;
    -D*) defs="$defs $1"; shift ;; # clang takes the last definition of a name
    *) echo "nv-static.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$OUT_DIR"
base=$OUT_DIR/$(basename "$src" .cl)
# The kernels' helpers are `inline` (C99: no external definition): force them inline, as
# NVIDIA's compiler does. OpenCL C has no `asm` keyword in clang; the PTX helpers use it.
# shellcheck disable=SC2086
clang-15 -x cl -cl-std=CL1.2 -target nvptx64-nvidia-nvcl -Xclang -finclude-default-header \
  -Dasm=__asm__ "-Dinline=__attribute__((always_inline)) static inline" -I cl -O3 -emit-llvm \
  -Wno-everything -c $defs -DASP_NV_EMULATE=0 "$src" -o "$base.bc"
"$LLVM/llvm-link" "$base.bc" "$CLC" -o "$base.linked.bc" 2> /dev/null
"$LLVM/opt" -O3 "$base.linked.bc" -o "$base.opt.bc"
"$LLVM/llc" -march=nvptx64 "$base.opt.bc" -o "$base.ptx" 2> /dev/null
# LLVM 15 writes an older PTX version and target than the instructions need.
sed -i 's/^\.version .*/.version 7.8/; s/^\.target .*/.target sm_90/' "$base.ptx"
# shellcheck disable=SC2086
"$TOOLS/bin/ptxas" -arch=sm_90 -v $maxrreg "$base.ptx" -o "$base.cubin" 2>&1 |
  awk '/Compiling entry function/ { gsub(/[\047]/, "", $7); k = $7 }
       /spill stores/ { sp = $5 " B spill stores, " $9 " B spill loads" }
       /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); r = substr($0, RSTART + 5, RLENGTH - 15)
         sm = "0"; if (match($0, /[0-9]+ bytes smem/)) sm = substr($0, RSTART, RLENGTH - 11)
         printf "%-28s %4d registers  %6d B local  %s\n", k, r, sm, sp }'
if [ -n "$sass" ]; then
  PATH=$TOOLS/bin:$PATH "$TOOLS/bin/cuobjdump" -sass -fun "$sass" "$base.cubin" > "$OUT_DIR/$sass.sass"
  echo "SASS of $sass: $OUT_DIR/$sass.sass ($(grep -cE '^\s+/\*[0-9a-f]{4,}\*/' "$OUT_DIR/$sass.sass") instructions); most frequent opcodes:"
  grep -E '^\s+/\*[0-9a-f]{4,}\*/' "$OUT_DIR/$sass.sass" | sed -E 's#^\s+/\*[0-9a-f]+\*/\s+(@!?U?P[0-9T] )?##' |
    awk '{ print $1 }' | sed 's/\..*//' | sort | uniq -c | sort -rn | head -n 16
fi
