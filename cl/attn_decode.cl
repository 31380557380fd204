/*
 * attn_decode.cl - the split-KV decode path of alpha-entmax attention (few query rows against a
 * long, possibly paged, key range). Three kernels around the row operator (entmax_rows.cl, which
 * solves tau with entmax_solver.clh on the stored scores):
 *   decode_scores   z = scale * q.k for every query row of a kv head's group (the q heads that
 *                   share it: GQA) against one key per work-item, into a [rows, kv_len] fp32
 *                   workspace; also each row's visible key count and alpha;
 *   (row operator)  p = entmax(z) in place, normalised by its measured sum;
 *   decode_pv       per split of split_keys keys, the partial sum p v of every row of the group;
 *   decode_combine  out = the sum of the splits' partials (with tau fixed the splits are
 *                   independent: no rescaling), in a fixed order, stored in the output's dtype.
 * K and V are read either from [batch, kv_heads, kv_len, head_dim] layouts or through a block
 * table (page_size > 0): key j of sequence b is row j % page_size of page table[b][j / page_size],
 * and the layout's batch stride is the page stride. Defines: ASP_DTYPE, ASP_WG, ASP_DPL (head-dim
 * columns per work-item in decode_pv: ceil(padded head dim / ASP_WG)).
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
  for (int r0 = 0; r0 < R; r0 += ASP_DEC_ROWS) {
    float acc[ASP_DEC_ROWS];
    ulong qb[ASP_DEC_ROWS];
    for (int t = 0; t < ASP_DEC_ROWS; ++t) {
      const int r = asp_min_int(r0 + t, R - 1);
      qb[t] = asp_row0(a.q, b, kvh * group + r / g.q_len, r % g.q_len);
      acc[t] = 0.0f;
    }
    for (int d = 0; d < D; ++d) {
      const float kd = ASP_LOAD(k, kb + (ulong)d);
      for (int t = 0; t < ASP_DEC_ROWS; ++t) acc[t] += ASP_LOAD(q, qb[t] + (ulong)d) * kd;
    }
    for (int t = 0; t < ASP_DEC_ROWS && r0 + t < R; ++t) {
      const int r = r0 + t;
      if (j < asp_visible(&g, r % g.q_len, lq, lk))
        scores[asp_dec_row(&g, b, kvh, r) * (size_t)g.kv_len + (size_t)j] = a.scale * acc[t];
    }
  }
}

/* global (nsplit * ASP_WG, kv_heads, batch): work-group s sums p v over keys
 * [s * split_keys, (s + 1) * split_keys) for every row of its group; work-items own head-dim
 * columns. Zero probabilities (most of them) skip the value row. part: [nsplit, rows, head_dim]. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void decode_pv(
    asp_attn_args a, __global const store_t *v, __global const int *table, int page_size,
    int max_blocks, int num_pages, __global const float *p, __global const int *visible,
    int split_keys, __global float *part) {
  const int s = (int)get_group_id(0), lid = (int)get_local_id(0);
  const int kvh = (int)get_global_id(1), b = (int)get_global_id(2);
  const asp_geom g = a.g;
  const int group = g.q_heads / g.kv_heads, R = group * g.q_len, D = g.head_dim;
  const size_t rows = (size_t)g.batch * (size_t)g.q_heads * (size_t)g.q_len;
  const int j0 = s * split_keys;
  for (int r = 0; r < R; ++r) {
    const size_t row = asp_dec_row(&g, b, kvh, r);
    const int j1 = asp_min_int(j0 + split_keys, visible[row]);
    float acc[ASP_DPL];
    for (int c = 0; c < ASP_DPL; ++c) acc[c] = 0.0f;
    __global const float *pr = p + row * (size_t)g.kv_len;
    for (int j = j0; j < j1; ++j) {
      const float pj = pr[j];
      if (pj == 0.0f) continue;
      const ulong vb = asp_kv_row(a.v, b, kvh, j, table, page_size, max_blocks, num_pages);
      for (int c = 0; c < ASP_DPL; ++c) {
        const int d = lid + c * ASP_WG;
        if (d < D) acc[c] += pj * ASP_LOAD(v, vb + (ulong)d);
      }
    }
    __global float *dst = part + ((size_t)s * rows + row) * (size_t)D;
    for (int c = 0; c < ASP_DPL; ++c) {
      const int d = lid + c * ASP_WG;
      if (d < D) dst[d] = acc[c];
    }
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
