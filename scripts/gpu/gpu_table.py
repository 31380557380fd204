#!/usr/bin/env python3
"""gpu_table.py - the combined table of a GPU session: our adasplash-bench JSON lines (bench.jsonl)
beside the peers' (peers.jsonl from peer_bench.py, annotated with n and beta by run_gpu.sh), one
row per (N, beta, dtype), with the ratio of our forward+backward time to each peer's.

usage: scripts/gpu/gpu_table.py BENCH_JSONL [PEERS_JSONL ...]   (several peer files are merged)
"""
import json, os, sys
def lines(path):
    out = []
    if os.path.exists(path):
        for line in open(path):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict):
                out.append(r)
    return out
ours = lines(sys.argv[1])
peers = [r for p in sys.argv[2:] for r in lines(p)]
pdt = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
mine, theirs, keys = {}, {}, []
for r in ours:
    if not str(r.get("mode", "")).startswith("attention") or r.get("status") != "ok":
        continue
    k = (r["n"], r["beta"], r["dtype"])
    if k not in keys:
        keys.append(k)
    mine[k + (r["algo"],)] = r
names = []
for r in peers:
    k = (r["shape"][2], r.get("beta"), r["dtype"], r["peer"])
    theirs[k] = r
    if r["peer"] not in names:
        names.append(r["peer"])
def ms(r, key):
    v = r.get(key) if r else None
    if isinstance(v, dict):
        v = v.get("median")
    return "%8.3f" % v if isinstance(v, (int, float)) else "%8s" % "-"
head = "%6s %4s %5s %-13s | %-17s | %-17s" % ("N", "beta", "dtype", "spars", "entmax fwd / fb", "softmax fwd / fb")
for p in names:
    head += " | %-17s" % (p + " fwd / fb")
head += " | %s" % "entmax_fb/peer_fb"
print("Median times in ms (fwd = forward alone, fb = forward+backward); spars = block sparsity")
print("(ours: library statistics; peers' value in brackets). Ours and peers on the same inputs.")
print(head)
print("-" * len(head))
for k in sorted(keys, key=lambda k: (k[0], k[1], k[2])):
    e, s = mine.get(k + ("entmax",)), mine.get(k + ("softmax",))
    sp = e.get("block_sparsity") if e else None
    row = [theirs.get((k[0], k[1], pdt.get(k[2], k[2]), p)) for p in names]
    psp = next((r.get("block_sparsity") for r in row if r and r.get("block_sparsity") is not None), None)
    spt = ("%.3f" % sp if sp is not None else "-") + (" [%.2f]" % psp if psp is not None else "")
    line = "%6d %4g %5s %-13s | %s %s | %s %s" % (k[0], k[1], k[2], spt, ms(e, "fwd_ms"), ms(e, "fwd_bwd_ms"),
                                              ms(s, "fwd_ms"), ms(s, "fwd_bwd_ms"))
    ratios = []
    for p, r in zip(names, row):
        line += " | %s %s" % (ms(r, "fwd_ms"), ms(r, "fwd_bwd_ms"))
        if r and e and isinstance(r.get("fwd_bwd_ms"), (int, float)) and r["fwd_bwd_ms"] > 0:
            ratios.append("%s %.2f" % (p, e["fwd_bwd_ms"]["median"] / r["fwd_bwd_ms"]))
    print(line + " | " + ", ".join(ratios))
cold = [r for r in ours if r.get("cold_ms") is not None]
if cold:
    print("\nFirst call (prepare + forward on a fresh context): cold = empty cache dir, warm = filled")
    for r in cold:
        print("  %-8s %-5s N=%-6d cold %9.1f ms (builds %s)  warm %8.1f ms (disk hits %s)" % (
            r["algo"], r["dtype"], r["n"], r["cold_ms"], r.get("cold_builds"), r["warm_ms"],
            r.get("warm_disk_hits")))
if ours:
    r = ours[0]
    print("\nours: %s, %s, driver %s, library %s, path %s" % (r.get("device"), r.get("platform"),
          r.get("driver"), r.get("library"), r.get("kernel_path")))
if peers:
    print("peers: %s" % peers[0].get("device"))
