#!/usr/bin/env bash
# plot_bench.sh - plots adasplash-bench attention results (JSON lines from --json) as grouped bars
# of time relative to the library's softmax flash baseline at the same N (entmax / softmax = 1 /
# dense / GPU peers from ../shared/gpu/peer_bench.py when a peers file is given), with the block
# sparsity in the x labels ("4096 (0.59)"), and writes PREFIX.svg and PREFIX.png.
# Needs bash, jq and gnuplot (pngcairo or png terminal); no python.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/plot/plot_bench.sh [options] BENCH.jsonl [PEERS.jsonl]

BENCH.jsonl  lines written by adasplash-bench --json (attention-fwd or attention-fwd-bwd records)
PEERS.jsonl  lines printed by peer_bench.py ("peer", "fwd_ms", "fwd_bwd_ms", "shape" [B,H,N,D],
             "dtype", "causal", "block_sparsity"; an optional "beta" is matched when present)

Options (defaults: taken from the first matching attention record):
  -o PREFIX        output prefix (default: BENCH without .jsonl) -> PREFIX.svg, PREFIX.png
  --metric M       fwd_bwd or fwd (default fwd_bwd when the file has fwd+bwd records)
  --dtype T        f32, f16 or bf16 (peers: fp32, fp16, bf16)
  --beta X         --alpha X  --b N  --h N  --d N   filter the records
  --title TEXT     plot title
Bars are median times divided by the median of the library's softmax flash at the same N (the
last record wins when a configuration appears several times). The x label carries the block
sparsity measured by the library (fused entmax statistics), else the peers' value.
EOF
}

prefix="" metric="" dtype="" beta="" alpha="" fb="" fh="" fd="" title=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -o) prefix=$2; shift 2 ;;
    --metric) metric=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --beta) beta=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    --b) fb=$2; shift 2 ;;
    --h) fh=$2; shift 2 ;;
    --d) fd=$2; shift 2 ;;
    --title) title=$2; shift 2 ;;
    -*) echo "plot_bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ${#args[@]} -lt 1 ] || [ ${#args[@]} -gt 2 ]; then usage >&2; exit 2; fi
bench=${args[0]}
peers=${args[1]:-}
for tool in jq gnuplot; do
  command -v "$tool" >/dev/null || { echo "plot_bench.sh: $tool not found" >&2; exit 3; }
done
[ -r "$bench" ] || { echo "plot_bench.sh: cannot read $bench" >&2; exit 2; }
[ -z "$peers" ] || [ -r "$peers" ] || { echo "plot_bench.sh: cannot read $peers" >&2; exit 2; }
[ -n "$prefix" ] || prefix=${bench%.jsonl}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Keep only valid JSON objects (a peers file may hold log lines).
jq -c -R 'fromjson? | select(type == "object")' "$bench" > "$work/ours.jsonl"
if [ -n "$peers" ]; then
  jq -c -R 'fromjson? | select(type == "object" and has("peer"))' "$peers" > "$work/peers.jsonl"
else
  : > "$work/peers.jsonl"
fi

attn='select((.mode // "") | startswith("attention")) | select(.status == "ok")'
first=$(jq -c -n "first(inputs | $attn)" "$work/ours.jsonl")
[ -n "$first" ] || { echo "plot_bench.sh: no attention records in $bench" >&2; exit 1; }
pick() { if [ -n "$1" ]; then echo "$1"; else jq -r "$2" <<<"$first"; fi; }
dtype=$(pick "$dtype" .dtype)
beta=$(pick "$beta" .beta)
alpha=$(pick "$alpha" .alpha)
fb=$(pick "$fb" .b)
fh=$(pick "$fh" .h)
fd=$(pick "$fd" .d)
causal=$(jq -r .causal <<<"$first")
device=$(jq -r .device <<<"$first")
if [ -z "$metric" ]; then
  if [ "$(jq -n "[inputs | $attn | select(.fwd_bwd_ms != null)] | length" "$work/ours.jsonl")" -gt 0 ]; then
    metric=fwd_bwd
  else
    metric=fwd
  fi
fi
case "$metric" in fwd|fwd_bwd) ;; *) echo "plot_bench.sh: --metric fwd or fwd_bwd" >&2; exit 2 ;; esac
case "$dtype" in f32) pdtype=fp32 ;; f16) pdtype=fp16 ;; *) pdtype=$dtype ;; esac

# One TSV row per N: label, entmax, softmax (=1), dense, then one column per peer (ratios; "?"
# where missing). The header row names the columns.
jq -n -r \
  --slurpfile ours "$work/ours.jsonl" --slurpfile peers "$work/peers.jsonl" \
  --arg dtype "$dtype" --arg pdtype "$pdtype" --arg metric "$metric" \
  --argjson beta "$beta" --argjson alpha "$alpha" --argjson b "$fb" --argjson h "$fh" \
  --argjson d "$fd" --argjson causal "$causal" '
  def fmt: if . == null then "?" else (. * 1000 | round / 1000 | tostring) end;
  def key: "\($metric)_ms";
  def f2: (. * 100 | round) as $r
          | "\($r / 100 | floor).\($r % 100 | tostring | if length < 2 then "0" + . else . end)";
  ($ours | map(select((.mode // "" | startswith("attention")) and .status == "ok"
                      and .dtype == $dtype and .beta == $beta and .alpha == $alpha
                      and .b == $b and .h == $h and .d == $d and .causal == $causal
                      and .[key] != null))) as $o
  | ($peers | map(select(.dtype == $pdtype and .shape[0] == $b and .shape[1] == $h
                         and .shape[3] == $d and (.causal // true) == $causal
                         and (.beta == null or .beta == $beta)
                         and .[key] != null))) as $p
  | ($o | map(.n) + ($p | map(.shape[2])) | unique) as $ns
  | ($o | map(.algo) | unique) as $algos
  | (["entmax", "softmax", "dense"] | map(select(. as $a | $algos | index($a)))) as $cols
  | ($p | map(.peer) | unique) as $pcols
  | (["N"] + $cols + ($pcols | map("peer: " + .)) | join("\t")),
    ($ns[] as $n
     | ($o | map(select(.n == $n))) as $on
     | ($p | map(select(.shape[2] == $n))) as $pn
     | ([$on[] | select(.algo == "softmax")] | last | .[key].median) as $soft
     | ([$on[] | select(.algo == "entmax" and .block_sparsity != null)] | last
        | .block_sparsity) as $sp_ours
     | ([$pn[] | select(.block_sparsity != null)] | last | .block_sparsity) as $sp_peer
     | (if $sp_ours != null then " (\($sp_ours | f2))"
        elif $sp_peer != null then " (\($sp_peer | f2)*)" else "" end) as $sp
     | select($soft != null)
     | (["\($n)\($sp)"]
        + ($cols | map(. as $a | [$on[] | select(.algo == $a)] | last
                       | if . == null then null else .[key].median / $soft end | fmt))
        + ($pcols | map(. as $q | [$pn[] | select(.peer == $q)] | last
                        | if . == null then null else .[key] / $soft end | fmt)))
       | join("\t"))' > "$work/data.tsv"

rows=$(($(wc -l < "$work/data.tsv") - 1))
[ "$rows" -ge 1 ] || { echo "plot_bench.sh: no N with a softmax baseline for dtype=$dtype beta=$beta alpha=$alpha B=$fb H=$fh D=$fd" >&2; exit 1; }
ncols=$(head -n 1 "$work/data.tsv" | awk -F'\t' '{print NF}')

what=forward
[ "$metric" = fwd ] || what=forward+backward
cau=""
[ "$causal" != true ] || cau=", causal"
[ -n "$title" ] || title="adasplash-cl $what time / softmax flash, $device, $dtype, B=$fb H=$fh D=$fd, alpha=$alpha beta=$beta$cau"
star=""
[ -z "$peers" ] || star="; * = the peers' value"
footnote="bars: median time / median of the library's softmax flash at the same N; label: N (block sparsity$star)"

# Bars: clustered histogram; value labels sit over each bar (gap 1: bar j of k in row i is at
# x = i + (j - (k-1)/2) / (k+1)).
plot_cmd="plot '$work/data.tsv' using 2:xtic(1)"
for ((c = 3; c <= ncols; c++)); do plot_cmd+=", '' using $c"; done
k=$((ncols - 1))
for ((c = 2; c <= ncols; c++)); do
  j=$((c - 2))
  plot_cmd+=", '' using (\$0 + ($j - ($k - 1) / 2.0) / ($k + 1.0)):$c:(sprintf('%.2f', \$$c)) with labels offset 0,0.6 font ',8' notitle"
done

esc() { local q="'"; echo "${1//$q/$q$q}"; }
common="
set datafile separator '\t'
set datafile missing '?'
set key autotitle columnheader
set bmargin 5
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key inside top center horizontal
set grid ytics
set yrange [0:*]
set xrange [-0.6:$rows - 0.4]
set offsets 0, 0, graph 0.16, 0
set xtics nomirror
set ytics nomirror
set xlabel 'N (block sparsity)'
set ylabel 'time relative to softmax flash (lower is better)'
set title '$(esc "$title")' noenhanced
set label 1 '$(esc "$footnote")' at screen 0.01, screen 0.015 font ',8' noenhanced
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linecolor rgb '#555555'
"
png_term="pngcairo size 1100,600 font 'Sans,11'"
gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || png_term="png size 1100,600"
gnuplot <<EOF
$common
set terminal svg size 1100,600 dynamic font 'Sans,11' background rgb 'white'
set output '$(esc "$prefix").svg'
$plot_cmd
set terminal $png_term background rgb 'white'
set output '$(esc "$prefix").png'
replot
EOF
echo "plot_bench.sh: wrote $prefix.svg and $prefix.png ($rows N values, $metric, dtype $dtype)"
