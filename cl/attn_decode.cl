/*
 * attn_decode.cl - the split-KV decode path of alpha-entmax attention (few query rows against a
 * long, possibly paged, key range). Three kernels around the row program's entmax_seg_solve
 * (entmax_rows.cl, which merges the splits' histograms and solves tau with entmax_solver.clh on the
 * stored scores, one work-group per row):
 *   decode_scores   per split of keys and row block of a kv head's group (the q heads that share
 *                   it: GQA), z = scale * q.k into a [rows, kv_len] fp32 workspace (work-items own
 *                   16-byte slices of the key rows, with the block's queries for their slice in
 *                   registers; the slices' partial dots meet in local memory), and per row the
 *                   split's max, valid count, bad flag and histogram window in entmax_seg_hist's
 *                   format (every split anchors its window at the row's score of key 0, so the
 *                   windows share one grid and merge); also each row's visible key count and alpha;
 *   (entmax_seg_solve) per row: merged histogram -> bracket -> sweeps -> tau (the solver state);
 *   decode_pv       per split, the partial sum w v of every row of the group and the partial sum
 *                   of w, where w = p = g((alpha-1)(z - m) - tau) of the solved rows (decode) or
 *                   the weights given (the shard path's P and dZ);
 *   decode_combine  out = the sum of the splits' partials divided by the sum of p (with tau fixed
 *                   the splits are independent: no rescaling), in a fixed order, in out's dtype.
 * K and V are read either from [batch, kv_heads, kv_len, head_dim] layouts or through a block
 * table (page_size > 0): key j of sequence b is row j % page_size of page table[b][j / page_size],
 * and the layout's batch stride is the page stride.
 * Defines: ASP_DTYPE, ASP_WG (work-items of decode_pv and decode_combine), ASP_DPL (head-dim
 * columns per work-item in decode_pv: ceil(padded head dim / ASP_WG)), ASP_DEC_SWG (work-items of
 * decode_scores, at least the slices of a key row), ASP_DEC_D (padded head dim), ASP_BINS (the row
 * program's bins).
 */
#include "abi.h"
#include "common.clh"
#include "entmax_solver.clh"
#include "geometry.clh"

#define ASP_W (ASP_BINS + 1)
#if ASP_DTYPE == 0
#define ASP_DEC_VEC 4 /* elements per 16-byte chunk */
#else
#define ASP_DEC_VEC 8
#endif
#define ASP_DEC_S (ASP_DEC_D / ASP_DEC_VEC) /* 16-byte slices per key row */
#define ASP_DEC_KL ASP_DEC_KEYS_PER_ROUND(ASP_DEC_SWG, ASP_DEC_S)
#define ASP_DEC_NR ASP_DEC_ROUNDS(ASP_DEC_KL)
#define ASP_DEC_KT (ASP_DEC_KL * ASP_DEC_NR) /* keys per tile */
/* (row, key) pairs of a tile per work-item */
#define ASP_DEC_PPW ((ASP_DEC_KT * ASP_DEC_RB + ASP_DEC_SWG - 1) / ASP_DEC_SWG)
#if ASP_DEC_PPW > 32
#error "decode_scores keeps one bit per (row, key) pair of a work-item: at most 32"
#endif

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

/* Chunk ch (16 bytes, ASP_DEC_VEC elements) of the row at element offset base as raw bits, zero
 * past d_len elements: one vector load where the chunk is whole and 16-byte aligned (buffers are
 * aligned far more), else element by element. Elements pack little-endian, as memory holds them. */
inline uint4 asp_dec_chunk(__global const store_t *p, ulong base, int ch, int d_len) {
  const int e0 = ch * ASP_DEC_VEC;
  const ulong at = base + (ulong)e0;
  if (e0 + ASP_DEC_VEC <= d_len && at % ASP_DEC_VEC == 0) return *(__global const uint4 *)(p + at);
  uint w[4] = {0u, 0u, 0u, 0u};
  for (int u = 0; u < ASP_DEC_VEC && e0 + u < d_len; ++u) {
#if ASP_DTYPE == 0
    w[u] = as_uint(p[at + (ulong)u]);
#else
    w[u / 2] |= (uint)((__global const ushort *)p)[at + (ulong)u] << (16 * (u % 2));
#endif
  }
  return (uint4)(w[0], w[1], w[2], w[3]);
}

/* The ASP_DEC_VEC elements of a chunk (asp_dec_chunk) as floats. */
inline void asp_dec_chunk_floats(uint4 c, float *dst) {
#if ASP_DTYPE == 0
  const float4 f = as_float4(c);
  dst[0] = f.x;
  dst[1] = f.y;
  dst[2] = f.z;
  dst[3] = f.w;
#elif ASP_DTYPE == 1
  const uint4 bits = c;
  const float8 f = vload_half8(0, (const __private half *)&bits);
  dst[0] = f.s0;
  dst[1] = f.s1;
  dst[2] = f.s2;
  dst[3] = f.s3;
  dst[4] = f.s4;
  dst[5] = f.s5;
  dst[6] = f.s6;
  dst[7] = f.s7;
#else
  const uint ws[4] = {c.x, c.y, c.z, c.w};
  for (int i = 0; i < 4; ++i) {
    dst[2 * i] = as_float(ws[i] << 16);
    dst[2 * i + 1] = as_float(ws[i] & 0xffff0000u);
  }
#endif
}

inline float asp_dec_alpha(const asp_attn_args *a, __global const float *alpha_heads, int h) {
  return a->has_alpha ? alpha_heads[h] : a->alpha;
}

/* Partial dots of one slice of a key row with the block's queries for that slice. */
inline void asp_dec_slice_dots(uint4 chunk, const float q[ASP_DEC_RB][ASP_DEC_VEC], float *out) {
  float kf[ASP_DEC_VEC];
  asp_dec_chunk_floats(chunk, kf);
#pragma unroll
  for (int r = 0; r < ASP_DEC_RB; ++r) {
    float acc = 0.0f;
#pragma unroll
    for (int u = 0; u < ASP_DEC_VEC; ++u) acc = mad(q[r][u], kf[u], acc);
    out[r] = acc;
  }
}

/* global (nseg * ASP_DEC_SWG, kv_heads, batch): work-group s covers keys [s * split, (s + 1) *
 * split) of one (batch, kv head) for every row of its group, ASP_DEC_RB rows at a time. Work-item
 * (key lane kl, slice sl) holds the block's scaled queries for slice sl in registers; per tile of
 * ASP_DEC_KT keys it reads slice sl of keys kl, kl + ASP_DEC_KL, ... (16-byte loads, a key row per
 * ASP_DEC_S consecutive work-items: coalesced) and leaves each key's partial dots in local memory,
 * where the work-items then sum the slices of their (row, key) pairs in a fixed order and store
 * the scores. After the split: its max per row, then a second look at the scores this work-item
 * wrote bins them (entmax_seg_hist's window format, at = row * nseg + s). */
__kernel __attribute__((reqd_work_group_size(ASP_DEC_SWG, 1, 1))) void decode_scores(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const int *q_lens, __global const int *kv_lens, __global const float *alpha_heads,
    __global const int *table, int page_size, int max_blocks, int num_pages, int split, int nseg,
    float qscale, __global float *scores, __global int *visible, __global float *alpha_rows,
    __global float *seg_max, __global int *seg_info, __global uint *seg_hist) {
  /* Partial dots [row][key of the tile][slice], a slice stride of ASP_DEC_S + 1 floats. */
  __local float red[ASP_DEC_RB * ASP_DEC_KT * (ASP_DEC_S + 1)];
  __local uint hc[ASP_DEC_RB * ASP_W], h1[ASP_DEC_RB * ASP_W], h2[ASP_DEC_RB * ASP_W];
  __local int mkey[ASP_DEC_RB], nval[ASP_DEC_RB], badf[ASP_DEC_RB];
  __local float anc[ASP_DEC_RB];
  const int s = (int)get_group_id(0), lid = (int)get_local_id(0);
  const int kvh = (int)get_global_id(1), b = (int)get_global_id(2);
  const int sl = lid % ASP_DEC_S, kl = lid / ASP_DEC_S, active = kl < ASP_DEC_KL;
  const asp_geom g = a.g;
  const int group = g.q_heads / g.kv_heads, R = group * g.q_len, D = g.head_dim;
  const int lq = asp_batch_len(q_lens, g.has_qlens, b, g.q_len);
  const int lk = asp_batch_len(kv_lens, g.has_kvlens, b, g.kv_len);
  const int j0 = s * split, j1 = asp_min_int(j0 + split, lk);
  const float bins = (float)ASP_BINS;
  if (s == 0)
    for (int r = lid; r < R; r += ASP_DEC_SWG) {
      const size_t row = asp_dec_row(&g, b, kvh, r);
      visible[row] = asp_visible(&g, r % g.q_len, lq, lk);
      if (a.has_alpha) alpha_rows[row] = alpha_heads[kvh * group + r / g.q_len];
    }
  for (int rb0 = 0; rb0 < R; rb0 += ASP_DEC_RB) {
    const int nr = asp_min_int(ASP_DEC_RB, R - rb0);
    float qr[ASP_DEC_RB][ASP_DEC_VEC];
#pragma unroll
    for (int r = 0; r < ASP_DEC_RB; ++r) {
      const int rr = rb0 + r;
      const ulong qb =
          asp_row0(a.q, b, kvh * group + asp_min_int(rr, R - 1) / g.q_len, rr % g.q_len);
#pragma unroll
      for (int u = 0; u < ASP_DEC_VEC; ++u) {
        const int d = sl * ASP_DEC_VEC + u;
        qr[r][u] = r < nr && d < D ? a.scale * ASP_LOAD(q, qb + (ulong)d) : 0.0f;
      }
    }
    for (int i = lid; i < ASP_DEC_RB * ASP_W; i += ASP_DEC_SWG) hc[i] = h1[i] = h2[i] = 0u;
    for (int r = lid; r < ASP_DEC_RB; r += ASP_DEC_SWG) { /* any work-group size */
      mkey[r] = asp_order_key(-INFINITY);
      nval[r] = 0;
      badf[r] = 0;
    }
    /* The anchor of row r: its score of key 0 (every split computes the same value). */
    if (kl == 0) {
      float part[ASP_DEC_RB];
      const uint4 c0 =
          lk > 0
              ? asp_dec_chunk(
                    k, asp_kv_row(a.k, b, kvh, 0, table, page_size, max_blocks, num_pages), sl, D)
              : (uint4)(0u);
      asp_dec_slice_dots(c0, qr, part);
#pragma unroll
      for (int r = 0; r < ASP_DEC_RB; ++r) red[r * ASP_DEC_KT * (ASP_DEC_S + 1) + sl] = part[r];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < ASP_DEC_RB; r += ASP_DEC_SWG) {
      float z = 0.0f;
      for (int t = 0; t < ASP_DEC_S; ++t) z += red[r * ASP_DEC_KT * (ASP_DEC_S + 1) + t];
      anc[r] = z;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* This work-item's (row, key) pairs: p = lid + i * ASP_DEC_SWG, row p / KT, key p % KT. */
    int vis[ASP_DEC_PPW], cnt[ASP_DEC_PPW];
    uint isbad = 0u; /* bit i: pair i saw a non-finite score (ASP_DEC_PPW <= 32) */
    size_t rowp[ASP_DEC_PPW];
    float rmax[ASP_DEC_PPW];
#pragma unroll
    for (int i = 0; i < ASP_DEC_PPW; ++i) {
      const int p = lid + i * ASP_DEC_SWG, r = p / ASP_DEC_KT, rr = asp_min_int(rb0 + r, R - 1);
      vis[i] = p < ASP_DEC_KT * ASP_DEC_RB && r < nr
                   ? asp_min_int(asp_visible(&g, rr % g.q_len, lq, lk), j1)
                   : 0;
      rowp[i] = asp_dec_row(&g, b, kvh, rr);
      cnt[i] = 0;
      rmax[i] = -INFINITY;
    }
    for (int t0 = j0; t0 < j1; t0 += ASP_DEC_KT) {
      if (active) {
        uint4 chunks[ASP_DEC_NR];
#pragma unroll
        for (int i = 0; i < ASP_DEC_NR; ++i) {
          const int j = t0 + i * ASP_DEC_KL + kl;
          chunks[i] =
              j < j1 ? asp_dec_chunk(
                           k, asp_kv_row(a.k, b, kvh, j, table, page_size, max_blocks, num_pages),
                           sl, D)
                     : (uint4)(0u);
        }
#pragma unroll
        for (int i = 0; i < ASP_DEC_NR; ++i) {
          float part[ASP_DEC_RB];
          asp_dec_slice_dots(chunks[i], qr, part);
#pragma unroll
          for (int r = 0; r < ASP_DEC_RB; ++r)
            red[(r * ASP_DEC_KT + i * ASP_DEC_KL + kl) * (ASP_DEC_S + 1) + sl] = part[r];
        }
      }
      barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
      for (int i = 0; i < ASP_DEC_PPW; ++i) {
        const int p = lid + i * ASP_DEC_SWG, j = t0 + p % ASP_DEC_KT;
        if (j >= vis[i]) continue;
        __local const float *pr = red + p * (ASP_DEC_S + 1);
        float z = 0.0f;
        for (int t = 0; t < ASP_DEC_S; ++t) z += pr[t];
        scores[rowp[i] * (size_t)g.kv_len + (size_t)j] = z;
        if (z == -INFINITY) continue;
        if (!isfinite(z)) {
          isbad |= 1u << i;
          continue;
        }
        ++cnt[i];
        rmax[i] = fmax(rmax[i], z);
      }
      barrier(CLK_LOCAL_MEM_FENCE);
    }
#pragma unroll
    for (int i = 0; i < ASP_DEC_PPW; ++i) {
      const int r = (lid + i * ASP_DEC_SWG) / ASP_DEC_KT;
      if (cnt[i]) {
        atomic_add(&nval[r], cnt[i]);
        atomic_max(&mkey[r], asp_order_key(rmax[i]));
      }
      if (isbad & (1u << i)) atomic_or(&badf[r], 1);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* Second look: each work-item bins the scores it wrote (program order makes them visible). */
#pragma unroll
    for (int i = 0; i < ASP_DEC_PPW; ++i) {
      const int p = lid + i * ASP_DEC_SWG, r = p / ASP_DEC_KT;
      if (j0 + p % ASP_DEC_KT >= vis[i]) continue;
      const float am1 = asp_dec_alpha(&a, alpha_heads, kvh * group + (rb0 + r) / g.q_len) - 1.0f;
      const int top = asp_hist_top(am1 * (asp_order_value(mkey[r]) - anc[r]), bins);
      if (nval[r] == 0 || top == ASP_HIST_NONE) continue;
      __global const float *zr = scores + rowp[i] * (size_t)g.kv_len;
      for (int j = j0 + p % ASP_DEC_KT; j < vis[i]; j += ASP_DEC_KT) {
        const float z = zr[j];
        if (isfinite(z))
          asp_hist_add(hc + r * ASP_W, h1 + r * ASP_W, h2 + r * ASP_W, ASP_W, top,
                       am1 * (z - anc[r]), bins, qscale);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = 0; r < nr; ++r) {
      const size_t at = asp_dec_row(&g, b, kvh, rb0 + r) * (size_t)nseg + (size_t)s;
      const float am1 = asp_dec_alpha(&a, alpha_heads, kvh * group + (rb0 + r) / g.q_len) - 1.0f;
      const float smax = asp_order_value(mkey[r]);
      if (lid == 0) {
        seg_max[2 * at + 0] = nval[r] > 0 ? smax : -INFINITY;
        seg_max[2 * at + 1] = anc[r];
        seg_info[3 * at + 0] =
            nval[r] > 0 ? asp_hist_top(am1 * (smax - anc[r]), bins) : ASP_HIST_NONE;
        seg_info[3 * at + 1] = nval[r];
        seg_info[3 * at + 2] = badf[r];
      }
      for (int i = lid; i < ASP_W; i += ASP_DEC_SWG) {
        seg_hist[(3 * at + 0) * ASP_W + i] = hc[r * ASP_W + i];
        seg_hist[(3 * at + 1) * ASP_W + i] = h1[r * ASP_W + i];
        seg_hist[(3 * at + 2) * ASP_W + i] = h2[r * ASP_W + i];
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE); /* the next row block reuses the local arrays */
  }
}

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
