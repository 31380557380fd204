/*
 * attn_decode.cl - the split-KV decode path of alpha-entmax attention (few query rows against a
 * long, possibly paged, key range). A decode call runs decode_scores, then decode_finish; the
 * shard path (attn_shard.c) uses decode_pv and decode_combine:
 *   decode_scores   per split of keys and row block of a kv head's group (the q heads that share
 *                   it: GQA), z = scale * q.k into a [rows, kv_len] fp32 workspace (work-items own
 *                   16-byte slices of the key rows, with the block's queries for their slice in
 *                   registers; the slices' partial dots meet in local memory), and per row the
 *                   split's max, valid count, bad flag and histogram window in entmax_seg_hist's
 *                   format (every split anchors its window at the row's score of key 0, so the
 *                   windows share one grid and merge); also each row's visible key count and alpha;
 *   decode_finish   per row, one work-group: merges the splits' windows, brackets tau from the
 *                   merged histogram, lists the keys whose score reaches the bracket (every key
 *                   that can have p > 0; usually a few dozen of tens of thousands), solves tau on
 *                   that list and writes out = sum p v / sum p from the listed value rows alone
 *                   (rows whose list overflows, or whose solve leaves the bracket, sweep all of
 *                   their stored scores instead);
 *   decode_pv       per split, the partial sum w v of every row of the group and the partial sum
 *                   of w, where w = p = g((alpha-1)(z - m) - tau) of solved rows or the weights
 *                   given (the shard path's P and dZ);
 *   decode_combine  out = the sum of the splits' partials divided by the sum of p (with tau fixed
 *                   the splits are independent: no rescaling), in a fixed order, in out's dtype.
 * K and V are read either from [batch, kv_heads, kv_len, head_dim] layouts or through a block
 * table (page_size > 0): key j of sequence b is row j % page_size of page table[b][j / page_size],
 * and the layout's batch stride is the page stride.
 * Defines: ASP_DTYPE, ASP_WG (work-items of decode_pv, decode_combine and decode_finish; at least
 * the 16-byte slices of a key row), ASP_DPL (head-dim columns per work-item in decode_pv:
 * ceil(padded head dim / ASP_WG)), ASP_DEC_SWG (work-items of decode_scores, at least the slices of
 * a key row), ASP_DEC_D (padded head dim), ASP_BINS, ASP_KMAX, ASP_WG_BRACKET (the row solver's,
 * entmax_row_solve.clh).
 */
#include "decode_common.clh"

/* decode_finish solves its row on the fp32 scores (the solver's rows), not on store_t. */
#define ASP_ROW_T float
#define ASP_ROW_LOAD(ptr, index) ((ptr)[(index)])
#define ASP_ROW_F32 1
#include "entmax_row_solve.clh"

#if ASP_DEC_NV
#include "decode_scores_nv.clh"
#else
#include "decode_scores_portable.clh"
#endif

/* Weight of score z of a solved row (max m, threshold result relative to it, status): p =
 * g((alpha-1)(z - m) - result), unnormalised (NaN for rows with non-finite scores, 0 for empty
 * ones). */
inline float asp_dec_prob(float z, float m, float result, int status, float alpha) {
  if (status == ASP_ROW_BAD) return NAN;
  if (status == ASP_ROW_EMPTY) return 0.0f;
  const float am1 = alpha - 1.0f;
  return asp_g(am1 * (z - m) - result, 1.0f / am1, asp_alpha_mode(alpha));
}

/* global (nsplit * ASP_WG, kv_heads, batch): work-group s sums w v over keys [s * split, (s + 1) *
 * split) for the rows of its group, ASP_DEC_RB rows at a time. Per chunk of ASP_WG keys, work-item
 * t finds the weights of key t for the block's rows; then every work-item, owning head-dim columns,
 * visits the chunk's keys in order and reads the value row of each key some row weighs (most
 * weigh none: entmax is sparse), so a value row is read once for the whole block. w: weights
 * [rows, kv_len] (has_states = 0) or scores turned into p by the rows' solved states (and alpha
 * per row when a.has_alpha). part: [nsplit, rows, head_dim]; psum (has_states): [nsplit, rows],
 * the split's sum of p per row. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void decode_pv(
    asp_attn_args a, __global const store_t *v, __global const int *table, int page_size,
    int max_blocks, int num_pages, int split, __global const float *w, __global const int *visible,
    __global const asp_row_solver *states, __global const float *alpha_rows, int has_states,
    __global float *part, __global float *psum) {
  __local float wts[ASP_WG * ASP_DEC_RB];
  __local float red[ASP_DEC_RB * ASP_WG];
  __local int flag[ASP_WG], any[2];
  const int s = (int)get_group_id(0), lid = (int)get_local_id(0);
  const int kvh = (int)get_global_id(1), b = (int)get_global_id(2);
  const asp_geom g = a.g;
  const int group = g.q_heads / g.kv_heads, R = group * g.q_len, D = g.head_dim;
  const size_t rows = (size_t)g.batch * (size_t)g.q_heads * (size_t)g.q_len;
  const int j0 = s * split, j1 = asp_min_int(j0 + split, g.kv_len);
  for (int rb0 = 0; rb0 < R; rb0 += ASP_DEC_RB) {
    const int nr = asp_min_int(ASP_DEC_RB, R - rb0);
    size_t rowi[ASP_DEC_RB];
    int vis[ASP_DEC_RB];
    float m[ASP_DEC_RB], res[ASP_DEC_RB], alpha[ASP_DEC_RB];
    int status[ASP_DEC_RB];
    float acc[ASP_DEC_RB][ASP_DPL], sum[ASP_DEC_RB];
    for (int r = 0; r < ASP_DEC_RB; ++r) {
      rowi[r] = asp_dec_row(&g, b, kvh, asp_min_int(rb0 + r, R - 1));
      vis[r] = r < nr ? asp_min_int(visible[rowi[r]], j1) : 0;
      m[r] = res[r] = 0.0f;
      status[r] = ASP_ROW_EMPTY;
      alpha[r] = a.alpha;
      if (has_states) {
        const asp_row_solver st = states[rowi[r]];
        m[r] = st.m;
        res[r] = st.result;
        status[r] = st.status;
        if (a.has_alpha) alpha[r] = alpha_rows[rowi[r]];
      }
      sum[r] = 0.0f;
      for (int cc = 0; cc < ASP_DPL; ++cc) acc[r][cc] = 0.0f;
    }
    if (lid == 0) any[0] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    int phase = 0;
    for (int c0 = j0; c0 < j1; c0 += ASP_WG, phase ^= 1) {
      const int j = c0 + lid;
      int nz = 0;
      for (int r = 0; r < ASP_DEC_RB; ++r) {
        float wv = 0.0f;
        if (j < vis[r]) {
          wv = w[rowi[r] * (size_t)g.kv_len + (size_t)j];
          if (has_states) wv = asp_dec_prob(wv, m[r], res[r], status[r], alpha[r]);
        }
        wts[lid * ASP_DEC_RB + r] = wv;
        sum[r] += wv;
        nz |= wv != 0.0f;
      }
      flag[lid] = nz;
      if (nz) atomic_or(&any[phase], 1);
      barrier(CLK_LOCAL_MEM_FENCE);
      /* any[phase ^ 1] was last read before the barrier above and is next set after the one
       * below: it is reset here for the next chunk. */
      if (lid == 0) any[phase ^ 1] = 0;
      if (any[phase]) {
        const int n = asp_min_int(ASP_WG, j1 - c0);
        for (int t = 0; t < n; ++t) {
          if (!flag[t]) continue;
          const ulong vb = asp_kv_row(a.v, b, kvh, c0 + t, table, page_size, max_blocks, num_pages);
          for (int cc = 0; cc < ASP_DPL; ++cc) {
            const int d = lid + cc * ASP_WG;
            if (d >= D) continue;
            const float vv = ASP_LOAD(v, vb + (ulong)d);
            for (int r = 0; r < ASP_DEC_RB; ++r)
              acc[r][cc] = mad(wts[t * ASP_DEC_RB + r], vv, acc[r][cc]);
          }
        }
      }
      barrier(CLK_LOCAL_MEM_FENCE);
    }
#pragma unroll
    for (int r = 0; r < ASP_DEC_RB; ++r) {
      if (r >= nr) continue;
      __global float *dst = part + ((size_t)s * rows + rowi[r]) * (size_t)D;
      for (int cc = 0; cc < ASP_DPL; ++cc) {
        const int d = lid + cc * ASP_WG;
        if (d < D) dst[d] = acc[r][cc];
      }
    }
    if (has_states) {
      /* Fixed-order tree sum of the block's sums of p. */
      for (int r = 0; r < ASP_DEC_RB; ++r) red[r * ASP_WG + lid] = sum[r];
      for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < stride)
          for (int r = 0; r < ASP_DEC_RB; ++r)
            red[r * ASP_WG + lid] += red[r * ASP_WG + lid + stride];
      }
      barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
      for (int r = 0; r < ASP_DEC_RB; ++r)
        if (lid == r && r < nr) psum[(size_t)s * rows + rowi[r]] = red[r * ASP_WG];
      barrier(CLK_LOCAL_MEM_FENCE); /* red is refilled by the next row block */
    }
  }
}

/* Collects into list_z / list_key (unordered, a local counter *count; entries past ASP_DEC_LIST
 * only counted) every key of columns [0, n) of a stored score row whose x = (alpha-1)(z - m)
 * reaches thr. fp32 rows on 16-byte boundaries are read as float4s, ASP_SWEEP_UNROLL of them in
 * flight per work-item (one work-group reads a long row: load latency bounds it otherwise). */
inline void asp_dec_collect(__global const float *row, int n, float m, float am1, float thr,
                            volatile __local int *count, __local float *list_z,
                            __local int *list_key, int lid) {
  int e1 = 0;
  if ((size_t)row % 16 == 0) {
    const int nvec = n / 4;
    __global const float4 *r4 = (__global const float4 *)row;
    for (int v0 = lid; v0 < nvec; v0 += ASP_SWEEP_UNROLL * ASP_WG) {
      float4 zs[ASP_SWEEP_UNROLL];
      for (int u = 0; u < ASP_SWEEP_UNROLL; ++u) {
        const int v = v0 + u * ASP_WG;
        zs[u] = v < nvec ? r4[v] : (float4)(-INFINITY);
      }
      for (int u = 0; u < ASP_SWEEP_UNROLL; ++u) {
        const float z4[4] = {zs[u].x, zs[u].y, zs[u].z, zs[u].w};
        for (int c = 0; c < 4; ++c) {
          if (!(z4[c] > -INFINITY && asp_row_rel(z4[c], m, am1) >= thr)) continue;
          const int at = atomic_inc(count);
          if (at < ASP_DEC_LIST) {
            list_z[at] = z4[c];
            list_key[at] = 4 * (v0 + u * ASP_WG) + c;
          }
        }
      }
    }
    e1 = 4 * nvec;
  }
  for (int e = e1 + lid; e < n; e += ASP_WG) {
    const float z = row[e];
    if (!(z > -INFINITY && asp_row_rel(z, m, am1) >= thr)) continue;
    const int at = atomic_inc(count);
    if (at < ASP_DEC_LIST) {
      list_z[at] = z;
      list_key[at] = e;
    }
  }
}

/* Adds p v over the cnt (key, p) pairs of a local list to acc, the work-item's 16-byte slice sl of
 * the head dim; key group kg of ASP_WG / ASP_DEC_S takes pairs kg, kg + groups, ... (keys with p =
 * 0 are not read). */
inline void asp_dec_accumulate(__global const store_t *v, asp_layout lv, int b, int kvh,
                               __global const int *table, int page_size, int max_blocks,
                               int num_pages, __local const float *list_p,
                               __local const int *list_key, int cnt, int sl, int kg, int D,
                               float acc[ASP_DEC_VEC]) {
  const int groups = ASP_WG / ASP_DEC_S;
  if (kg >= groups) return;
  for (int e = kg; e < cnt; e += groups) {
    const float p = list_p[e];
    if (p == 0.0f) continue;
    float vf[ASP_DEC_VEC];
    asp_dec_chunk_floats(
        asp_dec_chunk(
            v, asp_kv_row(lv, b, kvh, list_key[e], table, page_size, max_blocks, num_pages), sl, D),
        vf);
#pragma unroll
    for (int u = 0; u < ASP_DEC_VEC; ++u) acc[u] = mad(p, vf[u], acc[u]);
  }
}

/* global (rows * ASP_WG): work-group r finishes row r (row index [batch, q_heads, q_len]) from its
 * stored scores and the splits' windows (decode_scores): merge and bracket (entmax_row_solve.clh),
 * then the list of keys whose x reaches the bracket's lower end thr, sorted by key (so sums run in
 * a fixed order), the solver's sweeps on the list while the bracket stays at or above thr (on the
 * whole stored row otherwise), p = g(x - tau) of the listed keys and out = sum p v / sum p from
 * their value rows. A row whose list overflows ASP_DEC_LIST, or whose tau ends below thr, takes its
 * p from all of its scores, ASP_DEC_LIST keys at a time. Rows with no visible key: 0; rows with a
 * non-finite score or a bad alpha: NaN. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void decode_finish(
    asp_attn_args a, __global const store_t *v, __global const int *table, int page_size,
    int max_blocks, int num_pages, int nseg, float qscale, int use_hist, float tol, int max_iter,
    __global const float *scores, __global const int *visible, __global const float *alpha_rows,
    __global const float *seg_max, __global const int *seg_info, __global const uint *seg_hist,
    __global store_t *out) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local float red[ASP_NSUM * ASP_WG];
  __local float cand[ASP_KMAX];
  __local float list_z[ASP_DEC_LIST], raw_z[ASP_DEC_LIST];
  __local int list_key[ASP_DEC_LIST], raw_key[ASP_DEC_LIST];
  __local int ncand, mkey, nvalid, bad, incomplete, best, active, nlist;
  __local asp_row_solver st;
  const int lid = (int)get_local_id(0);
  const size_t row = get_group_id(0);
  const asp_geom g = a.g;
  const int group = g.q_heads / g.kv_heads, D = g.head_dim;
  const int i = (int)(row % (size_t)g.q_len), bh = (int)(row / (size_t)g.q_len);
  const int b = bh / g.q_heads, h = bh % g.q_heads, kvh = h / group;
  const float alpha = a.has_alpha ? alpha_rows[row] : a.alpha, am1 = alpha - 1.0f;
  const int n = visible[row];
  __global const float *zr = scores + row * (size_t)g.kv_len;
  float m, mh;
  int top;
  asp_seg_merge(seg_max, seg_info, seg_hist, row * (size_t)nseg, nseg, am1, hc, h1, h2, &mkey,
                &nvalid, &bad, &incomplete, &m, &mh, &top, lid, ASP_WG);
  asp_row_bracket(alpha, use_hist, qscale, hc, h1, h2, m, mh, nvalid, bad, top, &st, &ncand, &best,
                  &active, lid);
  if (lid == 0) nlist = 0;
  barrier(CLK_LOCAL_MEM_FENCE);
  const float thr = st.lo;
  const int solving = st.status == ASP_ROW_ACTIVE;
  if (solving) asp_dec_collect(zr, n, st.m, am1, thr, &nlist, raw_z, raw_key, lid);
  barrier(CLK_LOCAL_MEM_FENCE);
  const int cnt = nlist, listed = solving && cnt <= ASP_DEC_LIST;
  if (listed) /* rank by key: the keys are distinct */
    for (int e = lid; e < cnt; e += ASP_WG) {
      const int key = raw_key[e];
      int rank = 0;
      for (int f = 0; f < cnt; ++f) rank += raw_key[f] < key;
      list_z[rank] = raw_z[e];
      list_key[rank] = key;
    }
  barrier(CLK_LOCAL_MEM_FENCE);
  asp_row_iterate(zr, 0, n, alpha, 0, 0, listed ? list_z : 0, cnt, thr, tol, max_iter, 0, &st, red,
                  cand, &ncand, lid);
  const asp_row_solver fin = st;
  /* p v per work-item: slice sl of the head dim, key group kg. */
  const int sl = lid % ASP_DEC_S, kg = lid / ASP_DEC_S;
  float acc[ASP_DEC_VEC], psum = 0.0f;
  for (int u = 0; u < ASP_DEC_VEC; ++u) acc[u] = 0.0f;
  if (listed && !(fin.result < thr)) {
    for (int e = lid; e < cnt; e += ASP_WG) {
      const float p = asp_dec_prob(list_z[e], fin.m, fin.result, fin.status, alpha);
      list_z[e] = p;
      psum += p;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    asp_dec_accumulate(v, a.v, b, kvh, table, page_size, max_blocks, num_pages, list_z, list_key,
                       cnt, sl, kg, D, acc);
  } else {
    for (int c0 = 0; c0 < n; c0 += ASP_DEC_LIST) {
      const int cn = asp_min_int(ASP_DEC_LIST, n - c0);
      for (int e = lid; e < cn; e += ASP_WG) {
        const float p = asp_dec_prob(zr[c0 + e], fin.m, fin.result, fin.status, alpha);
        list_z[e] = p;
        list_key[e] = c0 + e;
        psum += p;
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      asp_dec_accumulate(v, a.v, b, kvh, table, page_size, max_blocks, num_pages, list_z, list_key,
                         cn, sl, kg, D, acc);
      barrier(CLK_LOCAL_MEM_FENCE);
    }
  }
  /* Fixed-order sums: of p over the work-items, of the key groups' partial outputs. */
  red[lid] = psum;
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride) red[lid] += red[lid + stride];
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  const float norm = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int u = 0; u < ASP_DEC_VEC; ++u) red[lid * ASP_DEC_VEC + u] = acc[u];
  barrier(CLK_LOCAL_MEM_FENCE);
  const ulong ob = asp_row0(a.o, b, h, i);
  for (int d = lid; d < D; d += ASP_WG) {
    float sum = 0.0f;
    for (int k = 0; k < ASP_WG / ASP_DEC_S; ++k)
      sum += red[(k * ASP_DEC_S + d / ASP_DEC_VEC) * ASP_DEC_VEC + d % ASP_DEC_VEC];
    ASP_STORE(out, ob + (ulong)d, norm != 0.0f ? sum / norm : 0.0f); /* NaN rows: NaN != 0 */
  }
}

/* global >= rows * head_dim: out = the sum over splits of part, in split order, divided by the
 * sum over splits of psum (has_psum; rows with no visible key: 0). */
__kernel void decode_combine(asp_attn_args a, __global const float *part,
                             __global const float *psum, int has_psum, int nsplit,
                             __global store_t *out) {
  const asp_geom g = a.g;
  const size_t rows = (size_t)g.batch * (size_t)g.q_heads * (size_t)g.q_len;
  const size_t D = (size_t)g.head_dim, gid = get_global_id(0);
  if (gid >= rows * D) return;
  const size_t row = gid / D, d = gid % D;
  float sum = 0.0f, norm = 0.0f;
  for (int s = 0; s < nsplit; ++s) sum += part[((size_t)s * rows + row) * D + d];
  if (has_psum) {
    for (int s = 0; s < nsplit; ++s) norm += psum[(size_t)s * rows + row];
    sum = norm != 0.0f ? sum / norm : 0.0f; /* NaN rows: NaN != 0 */
  }
  const int i = (int)(row % (size_t)g.q_len);
  const int bh = (int)(row / (size_t)g.q_len);
  ASP_STORE(out, asp_row0(a.o, bh / g.q_heads, bh % g.q_heads, i) + (ulong)d, sum);
}
