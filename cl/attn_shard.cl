/*
 * attn_shard.cl - sequence parallelism: one shard's part of alpha-entmax attention when the keys
 * of a sequence are split over devices (include/adasplash.h, "Sequence parallelism"). A shard
 * holds every query row and the keys [kv_offset, kv_offset + shard_len) of the global sequence;
 * its scores are kept in the shard's work buffer ([rows, shard_len] floats, rows = batch x q_heads
 * x q_len). The kernels produce the partial states the caller reduces across shards (MAX for the
 * row maxima, SUM for everything else) and consume the merged ones:
 *   shard_dots      z = scale * left.right for every row against every key of the shard (global
 *                   positions decide causal visibility); the forward's scores (q, k) and the
 *                   backward's dp = dO.v (scale 1);
 *   shard_max       each row's max over its visible keys in the shard;
 *   shard_hist      each row's histogram window anchored at the merged (global) row max, so that
 *                   every shard's window has the same bins and the windows merge by a plain sum;
 *                   with the count of valid scores and of non-finite ones;
 *   shard_refine    the solver step on the merged state (round 0: the bracket from the merged
 *                   histogram; later: one update from the merged sums), then this shard's sums
 *                   at the new tau (f and its derivative terms, f at the bracket's lower end);
 *   shard_probs     p = entmax(z) in place with the final tau, normalised by the merged sum, and
 *                   the shard's partial sum of p;
 *   shard_combine   the shard's partial P V (or dQ) from decode_pv's per-split partials;
 *   shard_dkdv      dK and dV of the shard's keys (local: every query row is in the shard).
 * The solver is entmax_solver.clh, run exactly as the row operator runs it; P V per split of
 * keys is attn_decode.cl's decode_pv. Defines: ASP_DTYPE, ASP_WG (work-items per row in the
 * per-row kernels), ASP_BINS (histogram bins per unit of scaled score).
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "geometry.clh"

#define ASP_W (ASP_BINS + 1)

/* Floats per row of the merged histogram: count, sum and sum of squares of the in-bin offsets per
 * bin (ASP_W bins each), then the count of valid scores and the count of non-finite ones. */
#define ASP_SHARD_HIST_ROW (3 * ASP_W + 2)
/* Floats per row of the refinement sums: a0, a1, a2 (asp_terms at tau), sum g(x - lo), active. */
#define ASP_SHARD_SUMS_ROW 5

/* Keys of this shard visible to query row i: the global causal rule, shifted to the shard. */
inline int asp_shard_visible(const asp_geom *g, int i, int kv_offset, int global_kv_len) {
  const int all = asp_visible(g, i, g->q_len, global_kv_len);
  return asp_clamp_int(all - kv_offset, 0, g->kv_len);
}

/* Row (b, h, i) of [batch, q_heads, q_len]. */
inline void asp_shard_row(const asp_geom *g, int row, int *b, int *h, int *i) {
  *i = row % g->q_len;
  const int bh = row / g->q_len;
  *h = bh % g->q_heads;
  *b = bh / g->q_heads;
}

/* Fixed-order tree sum over the work-group of n values per work-item, result in red[q*WG]. */
inline void asp_shard_reduce(__local float *red, const float *v, int n, int lid) {
  for (int q = 0; q < n; ++q) red[q * ASP_WG + lid] = v[q];
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride)
      for (int q = 0; q < n; ++q) red[q * ASP_WG + lid] += red[q * ASP_WG + lid + stride];
  }
  barrier(CLK_LOCAL_MEM_FENCE);
}

/* global (>= shard_len, rows): dst[row, j] = scale * left_row . right_j for visible keys, 0 for
 * the others; visible[row] (when non-NULL) = the shard's visible keys of the row. a.q is the
 * left tensor's layout ([batch, q_heads, q_len]), a.k the right one's ([batch, kv_heads,
 * shard_len]). */
__kernel void shard_dots(asp_attn_args a, int kv_offset, int global_kv_len,
                         __global const store_t *left, __global const store_t *right,
                         __global float *dst, __global int *visible, int has_visible) {
  const asp_geom g = a.g;
  const int j = (int)get_global_id(0), row = (int)get_global_id(1);
  if (j >= g.kv_len) return;
  int b, h, i;
  asp_shard_row(&g, row, &b, &h, &i);
  const int vis = asp_shard_visible(&g, i, kv_offset, global_kv_len);
  if (has_visible && j == 0) visible[row] = vis;
  float z = 0.0f;
  if (j < vis) {
    const ulong lb = asp_row0(a.q, b, h, i);
    const ulong rb = asp_row0(a.k, b, h / (g.q_heads / g.kv_heads), j);
    float4 acc4 = (float4)(0.0f);
    int d = 0;
    for (; d + 4 <= g.head_dim; d += 4)
      acc4 += asp_load4(left + (lb + (ulong)d)) * asp_load4(right + (rb + (ulong)d));
    float acc = (acc4.x + acc4.y) + (acc4.z + acc4.w);
    for (; d < g.head_dim; ++d)
      acc += ASP_LOAD(left, lb + (ulong)d) * ASP_LOAD(right, rb + (ulong)d);
    z = a.scale * acc;
  }
  dst[(size_t)row * (size_t)g.kv_len + (size_t)j] = z;
}

/* One work-group per row: the largest finite score among the row's visible keys (-inf if none). */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void shard_max(
    asp_attn_args a, __global const float *scores, __global const int *visible,
    __global float *row_max) {
  __local int key;
  const int row = (int)get_group_id(0), lid = (int)get_local_id(0);
  const int n = visible[row];
  __global const float *z = scores + (size_t)row * (size_t)a.g.kv_len;
  if (lid == 0) key = asp_order_key(-INFINITY);
  barrier(CLK_LOCAL_MEM_FENCE);
  float m = -INFINITY;
  for (int e = lid; e < n; e += ASP_WG)
    if (isfinite(z[e])) m = fmax(m, z[e]);
  if (m > -INFINITY) atomic_max(&key, asp_order_key(m));
  barrier(CLK_LOCAL_MEM_FENCE);
  if (lid == 0) row_max[row] = asp_order_value(key);
}

/* One work-group per row: the histogram window of the row's visible scores anchored at the merged
 * row max M (top bin 0: the window is the bins [-ASP_BINS, 0] of x - M scaled by alpha - 1), as
 * floats, then the counts of valid and of non-finite scores. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void shard_hist(
    asp_attn_args a, __global const float *scores, __global const int *visible,
    __global const float *merged_max, __global float *hist) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local int nvalid, nbad;
  const int row = (int)get_group_id(0), lid = (int)get_local_id(0);
  const int n = visible[row];
  const float m = merged_max[row], am1 = a.alpha - 1.0f;
  __global const float *z = scores + (size_t)row * (size_t)a.g.kv_len;
  if (lid == 0) {
    asp_hist_clear(hc, h1, h2, ASP_W);
    nvalid = 0;
    nbad = 0;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  int cnt = 0, bad = 0;
  for (int e = lid; e < n; e += ASP_WG) {
    const float ze = z[e];
    if (!isfinite(ze)) {
      ++bad;
      continue;
    }
    ++cnt;
    asp_hist_add(hc, h1, h2, ASP_W, 0, am1 * (ze - m), (float)ASP_BINS, a.qscale);
  }
  if (cnt) atomic_add(&nvalid, cnt);
  if (bad) atomic_add(&nbad, bad);
  barrier(CLK_LOCAL_MEM_FENCE);
  __global float *out = hist + (size_t)row * ASP_SHARD_HIST_ROW;
  for (int s = lid; s < ASP_W; s += ASP_WG) {
    out[s] = (float)hc[s];
    out[ASP_W + s] = (float)h1[s];
    out[2 * ASP_W + s] = (float)h2[s];
  }
  if (lid == 0) {
    out[3 * ASP_W] = (float)nvalid;
    out[3 * ASP_W + 1] = (float)nbad;
  }
}

/* One work-group per row. round 0: starts the row's solver from the merged max and histogram;
 * round > 0: one solver step from the merged sums of the previous round (the sums stay sums: no
 * candidate list, so the exact finish is not taken and the hybrid update iterates). Then, while
 * the row is still active, this shard's sums at the new tau into sums (active = 1), zeros
 * otherwise. states: [rows] solver states, identical on every shard. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void shard_refine(
    asp_attn_args a, int round, __global const float *merged_max, __global const float *merged_hist,
    __global const float *merged_sums, __global const float *scores, __global const int *visible,
    __global asp_row_solver *states, __global float *sums) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local float red[4 * ASP_WG];
  __local float no_cand[1];
  __local asp_row_solver st;
  const int row = (int)get_group_id(0), lid = (int)get_local_id(0);
  const float alpha = a.alpha, am1 = alpha - 1.0f, c0 = 1.0f / am1;
  const int mode = asp_alpha_mode(alpha);
  if (lid == 0) {
    asp_row_solver s;
    if (round == 0) {
      __global const float *mh = merged_hist + (size_t)row * ASP_SHARD_HIST_ROW;
      for (int b = 0; b < ASP_W; ++b) {
        hc[b] = (uint)mh[b];
        h1[b] = (uint)mh[ASP_W + b];
        h2[b] = (uint)mh[2 * ASP_W + b];
      }
      const int n = (int)mh[3 * ASP_W];
      const int bad = mh[3 * ASP_W + 1] > 0.0f;
      asp_row_start(&s, merged_max[row], 0.0f, n, bad, hc, h1, h2, ASP_W, n > 0 ? 0 : ASP_HIST_NONE,
                    (float)ASP_BINS, a.qscale, alpha, a.use_hist);
    } else {
      s = states[row];
      __global const float *ms = merged_sums + (size_t)row * ASP_SHARD_SUMS_ROW;
      asp_sweep_sums tot;
      asp_sums_zero(&tot);
      tot.a0 = ms[0];
      tot.a1 = ms[1];
      tot.a2 = ms[2];
      tot.f_lo = ms[3];
      asp_row_step(&s, &tot, no_cand, 1, 0, alpha, a.tol, a.max_iter, 1);
    }
    states[row] = s;
    st = s;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  const asp_row_solver cur = st;
  __global float *out = sums + (size_t)row * ASP_SHARD_SUMS_ROW;
  if (cur.status != ASP_ROW_ACTIVE) {
    if (lid < ASP_SHARD_SUMS_ROW) out[lid] = 0.0f;
    return;
  }
  const int n = visible[row];
  __global const float *z = scores + (size_t)row * (size_t)a.g.kv_len;
  asp_sweep_sums s;
  asp_sums_zero(&s);
  for (int e = lid; e < n; e += ASP_WG)
    asp_sums_add(&s, am1 * (z[e] - cur.m), cur.tau, cur.lo, cur.hi, c0, mode, cur.sweeps == 0);
  const float v[4] = {s.a0, s.a1, s.a2, s.f_lo};
  asp_shard_reduce(red, v, 4, lid);
  if (lid < 4) out[lid] = red[lid * ASP_WG];
  if (lid == 0) out[4] = 1.0f;
}

/* One work-group per row: p = g(x - tau) / (merged sum of p at tau) in place of the scores (0
 * past the visible keys; NaN for rows with non-finite scores) and psum[row] = the shard's sum. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void shard_probs(
    asp_attn_args a, __global const asp_row_solver *states, __global const int *visible,
    __global float *scores, __global float *psum) {
  __local float red[ASP_WG];
  const int row = (int)get_group_id(0), lid = (int)get_local_id(0);
  const asp_row_solver st = states[row];
  const float alpha = a.alpha, am1 = alpha - 1.0f, c0 = 1.0f / am1;
  const int mode = asp_alpha_mode(alpha), n = visible[row];
  const float inv = 1.0f / st.fsum;
  __global float *z = scores + (size_t)row * (size_t)a.g.kv_len;
  float sum = 0.0f;
  for (int e = lid; e < a.g.kv_len; e += ASP_WG) {
    float p = 0.0f;
    if (e < n) {
      if (st.status == ASP_ROW_BAD)
        p = NAN;
      else if (st.status != ASP_ROW_EMPTY)
        p = asp_g(am1 * (z[e] - st.m) - st.result, c0, mode) * inv;
    }
    z[e] = p;
    sum += p;
  }
  asp_shard_reduce(red, &sum, 1, lid);
  if (lid == 0) psum[row] = red[0];
}

/* global >= rows * head_dim: dst[row, d] = factor * the sum over splits of decode_pv's partials
 * ([nsplit, rows, head_dim]), fp32 [batch, q_heads, q_len, head_dim]. */
__kernel void shard_combine(asp_attn_args a, __global const float *part, int nsplit, float factor,
                            __global float *dst) {
  const size_t rows = (size_t)a.g.batch * (size_t)a.g.q_heads * (size_t)a.g.q_len;
  const size_t D = (size_t)a.g.head_dim, gid = get_global_id(0);
  if (gid >= rows * D) return;
  float sum = 0.0f;
  for (int s = 0; s < nsplit; ++s) sum += part[(size_t)s * rows * D + gid];
  dst[gid] = factor * sum;
}

/* global (>= shard_len * head_dim, kv_heads, batch): for key j and column d of kv head kvh,
 * dk = scale * sum over the rows of the kv head's group of dz q, dv = the same sum of p dO.
 * p and dz: [rows, shard_len] (0 past a row's visible keys). dk and dv in a.k's and a.v's
 * layouts; dO in a.o's. */
__kernel void shard_dkdv(asp_attn_args a, __global const store_t *q, __global const store_t *dout,
                         __global const float *p, __global const float *dz, __global store_t *dk,
                         __global store_t *dv) {
  const asp_geom g = a.g;
  const size_t gid = get_global_id(0);
  const int kvh = (int)get_global_id(1), b = (int)get_global_id(2);
  if (gid >= (size_t)g.kv_len * (size_t)g.head_dim) return;
  const int j = (int)(gid / (size_t)g.head_dim), d = (int)(gid % (size_t)g.head_dim);
  const int group = g.q_heads / g.kv_heads;
  float acc_k = 0.0f, acc_v = 0.0f;
  for (int hg = 0; hg < group; ++hg) {
    const int h = kvh * group + hg;
    for (int i = 0; i < g.q_len; ++i) {
      const size_t row = ((size_t)b * (size_t)g.q_heads + (size_t)h) * (size_t)g.q_len + (size_t)i;
      const size_t at = row * (size_t)g.kv_len + (size_t)j;
      const float pj = p[at], dzj = dz[at];
      if (dzj != 0.0f) acc_k += dzj * ASP_LOAD(q, asp_row0(a.q, b, h, i) + (ulong)d);
      if (pj != 0.0f) acc_v += pj * ASP_LOAD(dout, asp_row0(a.o, b, h, i) + (ulong)d);
    }
  }
  ASP_STORE(dk, asp_row0(a.k, b, kvh, j) + (ulong)d, a.scale * acc_k);
  ASP_STORE(dv, asp_row0(a.v, b, kvh, j) + (ulong)d, acc_v);
}
