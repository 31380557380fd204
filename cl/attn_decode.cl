/*
 * attn_decode.cl - the split-KV decode path of alpha-entmax attention (few query rows against a
 * long, possibly paged, key range). Three kernels around the row operator (entmax_rows.cl, which
 * solves tau with entmax_solver.clh on the stored scores):
 *   decode_scores   z = scale * q.k for every query row of a kv head's group (the q heads that
 *                   share it: GQA) against one key per work-item, into a [rows, kv_len] fp32
 *                   workspace; also each row's visible key count and alpha;
 *   (row operator)  p = entmax(z) in place, normalised by its measured sum;
 *   decode_pv       per split of ASP_SPLIT keys, the partial sum p v of every row of the group;
 *   decode_combine  out = the sum of the splits' partials (with tau fixed the splits are
 *                   independent: no rescaling), in a fixed order, stored in the output's dtype.
 * K and V are read either from [batch, kv_heads, kv_len, head_dim] layouts or through a block
 * table (page_size > 0): key j of sequence b is row j % page_size of page table[b][j / page_size],
 * and the layout's batch stride is the page stride. Defines: ASP_DTYPE, ASP_WG, ASP_DPL (head-dim
 * columns per work-item in decode_pv: ceil(padded head dim / ASP_WG)), ASP_SPLIT (keys per split).
 */
#include "common.clh"
#include "geometry.clh"

#define ASP_DEC_ROWS 8 /* query rows whose dot products one work-item accumulates together */

/* Element offset of key (or value) row j of sequence b, kv head h: contiguous, or paged. Page
 * numbers outside [0, num_pages) cannot come from a table the host validated; they read page 0
 * rather than outside the buffer. */
inline ulong asp_kv_row(asp_layout l, int b, int h, int j, __global const int *table, int page_size,
                        int max_blocks, int num_pages) {
  if (page_size <= 0) return asp_row0(l, b, h, j);
  int page = table[(size_t)b * (size_t)max_blocks + (size_t)(j / page_size)];
  if (page < 0 || page >= num_pages) page = 0;
  return asp_row0(l, page, h, j % page_size);
}

/* Row index [batch, q_heads, q_len] of the r-th row of kv head kvh's group in batch b. */
inline size_t asp_dec_row(const asp_geom *g, int b, int kvh, int r) {
  const int group = g->q_heads / g->kv_heads;
  const int h = kvh * group + r / g->q_len, i = r % g->q_len;
  return ((size_t)b * (size_t)g->q_heads + (size_t)h) * (size_t)g->q_len + (size_t)i;
}

/* Stores row r's score of key j where the key is visible to the row. */
inline void asp_dec_store(const asp_geom *g, float z, int b, int kvh, int r, int j, int lq, int lk,
                          __global float *scores) {
  if (j < asp_visible(g, r % g->q_len, lq, lk))
    scores[asp_dec_row(g, b, kvh, r) * (size_t)g->kv_len + (size_t)j] = z;
}

/* global (>= max(kv_len, rows of a group), kv_heads, batch): work-item j owns key j. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void decode_scores(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const int *q_lens, __global const int *kv_lens, __global const float *alpha_heads,
    __global const int *table, int page_size, int max_blocks, int num_pages, __global float *scores,
    __global int *visible, __global float *alpha_rows) {
  const int j = (int)get_global_id(0), kvh = (int)get_global_id(1), b = (int)get_global_id(2);
  const asp_geom g = a.g;
  const int group = g.q_heads / g.kv_heads, R = group * g.q_len, D = g.head_dim;
  const int lq = asp_batch_len(q_lens, g.has_qlens, b, g.q_len);
  const int lk = asp_batch_len(kv_lens, g.has_kvlens, b, g.kv_len);
  if (j < R) {
    const size_t row = asp_dec_row(&g, b, kvh, j);
    visible[row] = asp_visible(&g, j % g.q_len, lq, lk);
    if (a.has_alpha) alpha_rows[row] = alpha_heads[kvh * group + j / g.q_len];
  }
  if (j >= lk) return;
  const ulong kb = asp_kv_row(a.k, b, kvh, j, table, page_size, max_blocks, num_pages);
  /* Blocks of ASP_DEC_ROWS rows share each load of k; the remaining rows go one at a time. */
  int r0 = 0;
  for (; r0 + ASP_DEC_ROWS <= R; r0 += ASP_DEC_ROWS) {
    float acc[ASP_DEC_ROWS];
    float4 acc4[ASP_DEC_ROWS]; /* lane sums, added once at the end (no horizontal add per step) */
    ulong qb[ASP_DEC_ROWS];
    for (int t = 0; t < ASP_DEC_ROWS; ++t) {
      const int r = r0 + t;
      qb[t] = asp_row0(a.q, b, kvh * group + r / g.q_len, r % g.q_len);
      acc4[t] = (float4)(0.0f);
    }
    int d = 0;
    for (; d + 4 <= D; d += 4) {
      const float4 kd = asp_load4(k + (kb + (ulong)d));
      for (int t = 0; t < ASP_DEC_ROWS; ++t) acc4[t] += asp_load4(q + (qb[t] + (ulong)d)) * kd;
    }
    for (int t = 0; t < ASP_DEC_ROWS; ++t)
      acc[t] = (acc4[t].x + acc4[t].y) + (acc4[t].z + acc4[t].w);
    for (; d < D; ++d) {
      const float kd = ASP_LOAD(k, kb + (ulong)d);
      for (int t = 0; t < ASP_DEC_ROWS; ++t) acc[t] += ASP_LOAD(q, qb[t] + (ulong)d) * kd;
    }
    for (int t = 0; t < ASP_DEC_ROWS; ++t)
      asp_dec_store(&g, a.scale * acc[t], b, kvh, r0 + t, j, lq, lk, scores);
  }
  for (; r0 < R; ++r0) {
    const ulong qb = asp_row0(a.q, b, kvh * group + r0 / g.q_len, r0 % g.q_len);
    float acc = 0.0f;
    int d = 0;
    for (; d + 4 <= D; d += 4) {
      const float4 qd = asp_load4(q + (qb + (ulong)d)), kd = asp_load4(k + (kb + (ulong)d));
      acc += qd.x * kd.x + qd.y * kd.y + qd.z * kd.z + qd.w * kd.w;
    }
    for (; d < D; ++d) acc += ASP_LOAD(q, qb + (ulong)d) * ASP_LOAD(k, kb + (ulong)d);
    asp_dec_store(&g, a.scale * acc, b, kvh, r0, j, lq, lk, scores);
  }
}

/* global (nsplit * ASP_WG, kv_heads, batch): work-group s sums p v over keys
 * [s * ASP_SPLIT, (s + 1) * ASP_SPLIT) for every row of its group. The split's nonzero
 * probabilities (most are zero) are first listed in local memory in key order (each work-item
 * counts a contiguous chunk, one prefix sum places them), so every work-item then visits only the
 * value rows in the support, owning head-dim columns. part: [nsplit, rows, head_dim]. Local: one
 * arena of ASP_DEC_PV_BYTES(ASP_SPLIT, ASP_WG) (cl/abi.h): keys, probabilities, chunk counts. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void decode_pv(
    asp_attn_args a, __global const store_t *v, __global const int *table, int page_size,
    int max_blocks, int num_pages, __global const float *p, __global const int *visible,
    __global float *part) {
  __local int arena[ASP_DEC_PV_BYTES(ASP_SPLIT, ASP_WG) / 4];
  __local int *keys = arena, *probs = arena + ASP_SPLIT, *counts = arena + 2 * ASP_SPLIT;
  const int s = (int)get_group_id(0), lid = (int)get_local_id(0);
  const int kvh = (int)get_global_id(1), b = (int)get_global_id(2);
  const asp_geom g = a.g;
  const int group = g.q_heads / g.kv_heads, R = group * g.q_len, D = g.head_dim;
  const size_t rows = (size_t)g.batch * (size_t)g.q_heads * (size_t)g.q_len;
  const int chunk = (ASP_SPLIT + ASP_WG - 1) / ASP_WG;
  for (int r = 0; r < R; ++r) {
    const size_t row = asp_dec_row(&g, b, kvh, r);
    const int j0 = s * ASP_SPLIT, j1 = asp_min_int(j0 + ASP_SPLIT, visible[row]);
    const int e0 = j0 + lid * chunk, e1 = asp_min_int(e0 + chunk, j1);
    __global const float *pr = p + row * (size_t)g.kv_len;
    int c = 0;
    for (int e = e0; e < e1; ++e) c += pr[e] != 0.0f;
    counts[lid] = c;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
      int sum = 0;
      for (int w = 0; w < ASP_WG; ++w) {
        const int t = counts[w];
        counts[w] = sum;
        sum += t;
      }
      counts[ASP_WG] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int o = counts[lid];
    for (int e = e0; e < e1; ++e) {
      const float pe = pr[e];
      if (pe != 0.0f) {
        keys[o] = e;
        probs[o] = as_int(pe);
        ++o;
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int n = counts[ASP_WG];
    float acc[ASP_DPL];
    for (int cc = 0; cc < ASP_DPL; ++cc) acc[cc] = 0.0f;
    for (int t = 0; t < n; ++t) {
      const float pj = as_float(probs[t]);
      const ulong vb = asp_kv_row(a.v, b, kvh, keys[t], table, page_size, max_blocks, num_pages);
      for (int cc = 0; cc < ASP_DPL; ++cc) {
        const int d = lid + cc * ASP_WG;
        if (d < D) acc[cc] += pj * ASP_LOAD(v, vb + (ulong)d);
      }
    }
    __global float *dst = part + ((size_t)s * rows + row) * (size_t)D;
    for (int cc = 0; cc < ASP_DPL; ++cc) {
      const int d = lid + cc * ASP_WG;
      if (d < D) dst[d] = acc[cc];
    }
    barrier(CLK_LOCAL_MEM_FENCE); /* the next row reuses the arena */
  }
}

/* global >= rows * head_dim: out = sum over splits of part, in split order. */
__kernel void decode_combine(asp_attn_args a, __global const float *part, int nsplit,
                             __global store_t *out) {
  const asp_geom g = a.g;
  const size_t rows = (size_t)g.batch * (size_t)g.q_heads * (size_t)g.q_len;
  const size_t D = (size_t)g.head_dim, gid = get_global_id(0);
  if (gid >= rows * D) return;
  const size_t row = gid / D, d = gid % D;
  float sum = 0.0f;
  for (int s = 0; s < nsplit; ++s) sum += part[((size_t)s * rows + row) * D + d];
  const int i = (int)(row % (size_t)g.q_len);
  const int bh = (int)(row / (size_t)g.q_len);
  ASP_STORE(out, asp_row0(a.o, bh / g.q_heads, bh % g.q_heads, i) + (ulong)d, sum);
}
