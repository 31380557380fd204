/*
 * entmax_rows.cl - the row-wise alpha-entmax operator: forward (one work-group per row, or per row
 * segment for long rows with the histograms merged), backward with d(alpha), and a softmax row
 * kernel used as the benchmark baseline.
 *
 * Coordinates: the solver sees (alpha-1) * (z - zmax) for a row whose largest valid entry is zmax
 * (z - zmax is exact for entries near the max, and a row shifted by a constant gives the same
 * values). The solver state keeps m = zmax and tau relative to the max. The histogram is anchored
 * at the largest valid entry of the row's first chunk of ASP_WG * ASP_VPT columns (segments: of
 * the row's first chunk, read by every segment; 0 when that chunk holds no valid entry, and in a
 * one-work-group row the first chunk that holds one).
 *
 * Build-time defines: ASP_DTYPE, ASP_WG (work-items per row or segment), ASP_BINS (histogram bins
 * per unit of x, power of two), ASP_KMAX (exact-finish candidates kept per row), ASP_VPT (values
 * per work-item per histogram chunk), ASP_WG_BRACKET (1: the work-group searches the bracket).
 */
#include "common.clh"
#include "entmax_row_solve.clh"
#include "entmax_solver.clh"

/* ---- shared pieces ----------------------------------------------------------------------------
 */

/* Largest valid (finite) entry among the row's first ASP_WG * ASP_VPT columns, 0 if there is none:
 * the histogram anchor every segment of a long row uses. Whole work-group; ends with a barrier. */
inline float asp_row_first_chunk_max(__global const store_t *x, ulong base, int n, __local int *key,
                                     int lid) {
  if (lid == 0) *key = asp_order_key(-INFINITY);
  barrier(CLK_LOCAL_MEM_FENCE);
  float lmax = -INFINITY;
  for (int v = 0; v < ASP_VPT; ++v) {
    int e = lid + ASP_WG * v;
    if (e < n) {
      float z = ASP_LOAD(x, base + (ulong)e);
      if (isfinite(z)) lmax = fmax(lmax, z);
    }
  }
  if (lmax > -INFINITY) atomic_max(key, asp_order_key(lmax));
  barrier(CLK_LOCAL_MEM_FENCE);
  float a = asp_order_value(*key);
  barrier(CLK_LOCAL_MEM_FENCE); /* everyone has read key before it is reused */
  return a > -INFINITY ? a : 0.0f;
}

/* Max + histogram pass over columns [begin, end) of one row, by the whole work-group. On return
 * (after a barrier) *wm (max z), *wmh ((alpha-1)(max - anchor)), *wtop, *nvalid and *bad hold the
 * work-group's results and the histogram window (anchored at *wanc) is filled. preset: the anchor
 * is *wanc as given (segments); otherwise it is the max of the first chunk with a valid entry.
 * Values (z) are also copied to cache[e - begin] when cache is non-NULL. */
inline void asp_row_hist_pass(__global const store_t *x, ulong base, int begin, int end, float am1,
                              __local float *cache, __local uint *hc, __local uint *h1,
                              __local uint *h2, __local int *mkey, __local float *wm,
                              __local float *wanc, __local float *wmh, int preset,
                              __local int *wtop, __local int *nvalid, __local int *bad,
                              float qscale, int lid) {
  if (lid == 0) {
    asp_hist_clear(hc, h1, h2, ASP_W);
    *mkey = asp_order_key(-INFINITY);
    *wm = -INFINITY;
    *wmh = -INFINITY;
    *wtop = ASP_HIST_NONE;
    *nvalid = 0;
    *bad = 0;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int c0 = begin; c0 < end; c0 += ASP_WG * ASP_VPT) {
    float xv[ASP_VPT];
    int cnt = 0, isbad = 0;
    float lmax = -INFINITY;
    for (int v = 0; v < ASP_VPT; ++v) {
      int e = c0 + lid + ASP_WG * v;
      xv[v] = -INFINITY;
      if (e < end) {
        float z = ASP_LOAD(x, base + (ulong)e);
        if (cache) cache[e - begin] = z;
        if (z == -INFINITY) continue;
        if (!isfinite(z)) {
          isbad = 1;
          continue;
        }
        ++cnt;
        lmax = fmax(lmax, z);
        xv[v] = z;
      }
    }
    if (cnt) {
      atomic_add(nvalid, cnt);
      atomic_max(mkey, asp_order_key(lmax));
    }
    if (isbad) atomic_or(bad, 1);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
      float nm = asp_order_value(*mkey);
      if (nm > *wm) {
        if (*wm == -INFINITY && !preset) *wanc = nm;
        const float mh = am1 * (nm - *wanc);
        /* A window that could not be binned stays so: a new one would lack the entries seen. */
        int nt = (*wm > -INFINITY && *wtop == ASP_HIST_NONE) ? ASP_HIST_NONE
                                                             : asp_hist_top(mh, (float)ASP_BINS);
        if (nt != ASP_HIST_NONE) asp_hist_slide(hc, h1, h2, ASP_W, *wtop, nt);
        *wtop = nt;
        *wm = nm;
        *wmh = mh;
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int top = *wtop;
    const float anc = *wanc;
    for (int v = 0; v < ASP_VPT; ++v)
      if (xv[v] > -INFINITY)
        asp_hist_add(hc, h1, h2, ASP_W, top, am1 * (xv[v] - anc), (float)ASP_BINS, qscale);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
}

/* Writes y for columns [begin, end) of a row (columns past the valid length included). */
inline void asp_row_output(__global const store_t *x, __global store_t *y, ulong base, int begin,
                           int end, int n, float am1, __local const float *cache, int cached,
                           const asp_row_solver *st, float alpha, int lid) {
  float c0 = 1.0f / (alpha - 1.0f);
  int mode = asp_alpha_mode(alpha);
  float inv = 1.0f / st->fsum;
  for (int e = begin + lid; e < end; e += ASP_WG) {
    float out = 0.0f;
    if (e < n) {
      float z = asp_row_value(x, base, e, cache, cached);
      if (z != -INFINITY) {
        if (st->status == ASP_ROW_BAD)
          out = NAN;
        else if (st->status != ASP_ROW_EMPTY)
          out = asp_g(asp_row_rel(z, st->m, am1) - st->result, c0, mode) * inv;
      }
    }
    ASP_STORE(y, base + (ulong)e, out);
  }
}

/* ---- forward, one work-group per row ------------------------------------------------------------
 */

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_rows_forward(
    __global const store_t *x, __global store_t *y, ulong offset, ulong row_stride, int rows,
    int cols, float alpha_scalar, __global const float *alpha_rows, int has_alpha,
    __global const int *valid_cols, int has_valid, float tol, int max_iter, int use_hist,
    float qscale, __global int *sweeps_out, int has_sweeps, __local float *cache, int cache_cols) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local float red[ASP_NSUM * ASP_WG];
  __local float cand[ASP_KMAX];
  __local int ncand, mkey, nvalid, bad, wtop, best, active;
  __local float wm, wanc, wmh;
  __local asp_row_solver st;
  const int row = get_group_id(0);
  const int lid = get_local_id(0);
  if (row >= rows) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const float am1 = alpha - 1.0f;
  const int n = has_valid ? asp_clamp_int(valid_cols[row], 0, cols) : cols;
  const ulong base = offset + (ulong)row * row_stride;
  const int cached = n <= cache_cols;

  if (lid == 0) wanc = 0.0f;
  asp_row_hist_pass(x, base, 0, n, am1, cached ? cache : 0, hc, h1, h2, &mkey, &wm, &wanc, &wmh, 0,
                    &wtop, &nvalid, &bad, qscale, lid);
  asp_row_solve(x, base, n, alpha, cache, cached, use_hist, qscale, tol, max_iter, 1, hc, h1, h2,
                wm, wmh, nvalid, bad, wtop, &st, red, cand, &ncand, &best, &active, lid);
  asp_row_solver fin = st;
  asp_row_output(x, y, base, 0, cols, n, am1, cache, cached, &fin, alpha, lid);
  if (has_sweeps && lid == 0) sweeps_out[row] = fin.sweeps;
}

/* ---- forward for long rows: segments of seg_cols columns, one work-group each ------------------
 */

/* Per segment: max and anchor (z), valid count, bad flag and histogram window. Every segment of a
 * row anchors its window at the max of the row's first chunk, so the windows share one grid. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_seg_hist(
    __global const store_t *x, ulong offset, ulong row_stride, int rows, int cols,
    float alpha_scalar, __global const float *alpha_rows, int has_alpha,
    __global const int *valid_cols, int has_valid, int seg_cols, int nseg, float qscale,
    __global float *seg_max, __global int *seg_info, __global uint *seg_hist) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local int mkey, nvalid, bad, wtop;
  __local float wm, wanc, wmh;
  const int seg = get_group_id(0), row = get_group_id(1), lid = get_local_id(0);
  if (row >= rows || seg >= nseg) return;
  const float am1 = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row) - 1.0f;
  const int n = has_valid ? asp_clamp_int(valid_cols[row], 0, cols) : cols;
  const int begin = seg * seg_cols, end = asp_min_int(n, begin + seg_cols);
  const ulong base = offset + (ulong)row * row_stride;
  const float anchor = asp_row_first_chunk_max(x, base, n, &mkey, lid);
  if (lid == 0) wanc = anchor;
  asp_row_hist_pass(x, base, begin, end, am1, 0, hc, h1, h2, &mkey, &wm, &wanc, &wmh, 1, &wtop,
                    &nvalid, &bad, qscale, lid);
  const size_t at = (size_t)row * nseg + seg;
  if (lid == 0) {
    seg_max[2 * at + 0] = wm;
    seg_max[2 * at + 1] = anchor;
    seg_info[3 * at + 0] = wtop;
    seg_info[3 * at + 1] = nvalid;
    seg_info[3 * at + 2] = bad;
  }
  for (int s = lid; s < ASP_W; s += ASP_WG) {
    seg_hist[(3 * at + 0) * ASP_W + s] = hc[s];
    seg_hist[(3 * at + 1) * ASP_W + s] = h1[s];
    seg_hist[(3 * at + 2) * ASP_W + s] = h2[s];
  }
}

/* Per row, one work-item: merge the segment windows onto the row's window and start the solver. */
__kernel void entmax_seg_start(int rows, float alpha_scalar, __global const float *alpha_rows,
                               int has_alpha, int nseg, float qscale, int use_hist,
                               __global const float *seg_max, __global const int *seg_info,
                               __global const uint *seg_hist, __global asp_row_solver *states,
                               __global int *ncand) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local int mkey, nvalid, bad, incomplete;
  const int row = get_group_id(0);
  if (row >= rows) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  float m, mh;
  int top;
  asp_seg_merge(seg_max, seg_info, seg_hist, (size_t)row * (size_t)nseg, nseg, alpha - 1.0f, hc, h1,
                h2, &mkey, &nvalid, &bad, &incomplete, &m, &mh, &top, get_local_id(0),
                get_local_size(0));
  if (get_local_id(0) != 0) return;
  asp_row_solver st;
  asp_row_start(&st, m, mh, nvalid, bad, hc, h1, h2, ASP_W, top, (float)ASP_BINS, qscale, alpha,
                use_hist);
  states[row] = st;
  ncand[row] = 0;
}

/* Per row, one work-group: merges the segment windows (asp_seg_merge) and solves the row with its
 * own sweeps over all of it (asp_row_solve): one launch in place of entmax_seg_start and a
 * sweep/step pair per iteration. states[row]: the final state. verify_exact as asp_row_step takes
 * it (0 when the caller divides by the sum of p it measures itself: the decode path). */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_seg_solve(
    __global const store_t *x, ulong offset, ulong row_stride, int rows, int cols,
    float alpha_scalar, __global const float *alpha_rows, int has_alpha,
    __global const int *valid_cols, int has_valid, int nseg, float qscale, int use_hist, float tol,
    int max_iter, int verify_exact, __global const float *seg_max, __global const int *seg_info,
    __global const uint *seg_hist, __global asp_row_solver *states) {
  __local uint hc[ASP_W], h1[ASP_W], h2[ASP_W];
  __local float red[ASP_NSUM * ASP_WG];
  __local float cand[ASP_KMAX];
  __local int ncand, mkey, nvalid, bad, incomplete, best, active;
  __local asp_row_solver st;
  const int row = get_group_id(0), lid = get_local_id(0);
  if (row >= rows) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const int n = has_valid ? asp_clamp_int(valid_cols[row], 0, cols) : cols;
  float m, mh;
  int top;
  asp_seg_merge(seg_max, seg_info, seg_hist, (size_t)row * (size_t)nseg, nseg, alpha - 1.0f, hc, h1,
                h2, &mkey, &nvalid, &bad, &incomplete, &m, &mh, &top, lid, ASP_WG);
  asp_row_solve(x, offset + (ulong)row * row_stride, n, alpha, 0, 0, use_hist, qscale, tol,
                max_iter, verify_exact, hc, h1, h2, m, mh, nvalid, bad, top, &st, red, cand, &ncand,
                &best, &active, lid);
  if (lid == 0) states[row] = st;
}

/* Per segment: one sweep's partial sums; candidates go to the row's global list. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_seg_sweep(
    __global const store_t *x, ulong offset, ulong row_stride, int rows, int cols,
    float alpha_scalar, __global const float *alpha_rows, int has_alpha,
    __global const int *valid_cols, int has_valid, int seg_cols, int nseg,
    __global const asp_row_solver *states, __global float *partials, __global int *ncand,
    __global float *cands) {
  __local float red[ASP_NSUM * ASP_WG];
  const int seg = get_group_id(0), row = get_group_id(1), lid = get_local_id(0);
  if (row >= rows || seg >= nseg) return;
  asp_row_solver st = states[row];
  if (st.status != ASP_ROW_ACTIVE) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const int n = has_valid ? asp_clamp_int(valid_cols[row], 0, cols) : cols;
  const int begin = seg * seg_cols, end = asp_min_int(n, begin + seg_cols);
  const ulong base = offset + (ulong)row * row_stride;
  asp_sweep_sums s;
  asp_row_sweep_pass(x, base, begin, end, alpha - 1.0f, 0, 0, &st, alpha, &s, &ncand[row],
                     cands + (size_t)row * ASP_KMAX, 0, 0, lid);
  asp_reduce_sums(red, &s, lid);
  if (lid < ASP_NSUM) partials[((size_t)row * nseg + seg) * ASP_NSUM + lid] = red[lid * ASP_WG];
}

/* Per row: reduce the segments' sums in order and take the solver step. */
__kernel void entmax_seg_step(int rows, float alpha_scalar, __global const float *alpha_rows,
                              int has_alpha, int nseg, float tol, int max_iter,
                              __global asp_row_solver *states, __global const float *partials,
                              __global int *ncand, __global const float *cands) {
  __local float cand[ASP_KMAX];
  const int row = get_group_id(0);
  if (row >= rows || get_local_id(0) != 0) return;
  asp_row_solver st = states[row];
  if (st.status != ASP_ROW_ACTIVE) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  asp_sweep_sums tot;
  asp_sums_zero(&tot);
  for (int s = 0; s < nseg; ++s) {
    __global const float *p = partials + ((size_t)row * nseg + s) * ASP_NSUM;
    for (int q = 0; q < ASP_NSUM - 1; ++q) asp_sums_put(&tot, q, asp_sums_get(&tot, q) + p[q]);
    tot.min_hi = fmin(tot.min_hi, p[ASP_NSUM - 1]);
  }
  int k = ncand[row];
  for (int i = 0; i < asp_min_int(k, ASP_KMAX); ++i) cand[i] = cands[(size_t)row * ASP_KMAX + i];
  asp_row_step(&st, &tot, cand, k, ASP_KMAX, alpha, tol, max_iter, 1);
  states[row] = st;
  ncand[row] = 0;
}

/* Per segment: write y; segment 0 also reports the sweeps. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_seg_output(
    __global const store_t *x, __global store_t *y, ulong offset, ulong row_stride, int rows,
    int cols, float alpha_scalar, __global const float *alpha_rows, int has_alpha,
    __global const int *valid_cols, int has_valid, int seg_cols, int nseg,
    __global const asp_row_solver *states, __global int *sweeps_out, int has_sweeps) {
  const int seg = get_group_id(0), row = get_group_id(1), lid = get_local_id(0);
  if (row >= rows || seg >= nseg) return;
  asp_row_solver st = states[row];
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const int n = has_valid ? asp_clamp_int(valid_cols[row], 0, cols) : cols;
  const int begin = seg * seg_cols, end = asp_min_int(cols, begin + seg_cols);
  const ulong base = offset + (ulong)row * row_stride;
  asp_row_output(x, y, base, begin, end, n, alpha - 1.0f, 0, 0, &st, alpha, lid);
  if (has_sweeps && seg == 0 && lid == 0) sweeps_out[row] = st.sweeps;
}

/* ---- backward -----------------------------------------------------------------------------------
 */

/* Row sums the backward needs: sum s, sum s dy, and for d(alpha) sum p dy, sum h dy, sum h with
 * s = p^(2-alpha), h = p ln p. */
inline void asp_bwd_terms(float p, float dy, float alpha, float *acc) {
  if (isnan(p)) acc[0] = NAN; /* a NaN row (non-finite input): its d(alpha) is NaN too */
  if (!(p > 0.0f)) return;
  int mode = asp_alpha_mode(alpha);
  float s =
      mode == ASP_MODE_15 ? sqrt(p) : (mode == ASP_MODE_2 ? 1.0f : asp_pow_pos(p, 2.0f - alpha));
  float h = p * log(p);
  acc[0] += s;
  acc[1] += s * dy;
  acc[2] += p * dy;
  acc[3] += h * dy;
  acc[4] += h;
}

inline void asp_reduce5(__local float *red, float *acc, int lid) {
  for (int q = 0; q < 5; ++q) red[q * ASP_WG + lid] = acc[q];
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride)
      for (int q = 0; q < 5; ++q) red[q * ASP_WG + lid] += red[q * ASP_WG + lid + stride];
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int q = 0; q < 5; ++q) acc[q] = red[q * ASP_WG];
}

/* dx = s (dy - c), c = sum(s dy)/sum(s); d(alpha) of the row from the same sums. */
inline void asp_bwd_apply(__global const store_t *y, __global const store_t *dy,
                          __global store_t *dx, ulong base, int begin, int end, const float *acc,
                          float alpha, int lid) {
  float c = acc[0] > 0.0f ? acc[1] / acc[0] : 0.0f;
  int mode = asp_alpha_mode(alpha);
  for (int e = begin + lid; e < end; e += ASP_WG) {
    float p = ASP_LOAD(y, base + (ulong)e);
    float out = 0.0f;
    if (p > 0.0f) {
      float s = mode == ASP_MODE_15 ? sqrt(p)
                                    : (mode == ASP_MODE_2 ? 1.0f : asp_pow_pos(p, 2.0f - alpha));
      out = s * (ASP_LOAD(dy, base + (ulong)e) - c);
    } else if (isnan(p)) {
      out = NAN;
    }
    ASP_STORE(dx, base + (ulong)e, out);
  }
}

inline float asp_bwd_dalpha(const float *acc, float alpha) {
  if (isnan(acc[0])) return NAN;
  if (!(acc[0] > 0.0f)) return 0.0f;
  float a1 = alpha - 1.0f;
  float c = acc[1] / acc[0];
  return (acc[2] - c) / (a1 * a1) - (acc[3] - c * acc[4]) / a1;
}

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_rows_backward(
    __global const store_t *y, __global const store_t *dy, __global store_t *dx, ulong offset,
    ulong row_stride, int rows, int cols, float alpha_scalar, __global const float *alpha_rows,
    int has_alpha, __global float *dalpha_rows, int has_dalpha) {
  __local float red[5 * ASP_WG];
  const int row = get_group_id(0), lid = get_local_id(0);
  if (row >= rows) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const ulong base = offset + (ulong)row * row_stride;
  float acc[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int e = lid; e < cols; e += ASP_WG)
    asp_bwd_terms(ASP_LOAD(y, base + (ulong)e), ASP_LOAD(dy, base + (ulong)e), alpha, acc);
  asp_reduce5(red, acc, lid);
  asp_bwd_apply(y, dy, dx, base, 0, cols, acc, alpha, lid);
  if (has_dalpha && lid == 0) dalpha_rows[row] = asp_bwd_dalpha(acc, alpha);
}

/* Long rows: per-segment partial sums, then every segment applies with the row's totals. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_seg_bwd_sums(
    __global const store_t *y, __global const store_t *dy, ulong offset, ulong row_stride, int rows,
    int cols, float alpha_scalar, __global const float *alpha_rows, int has_alpha, int seg_cols,
    int nseg, __global float *partials) {
  __local float red[5 * ASP_WG];
  const int seg = get_group_id(0), row = get_group_id(1), lid = get_local_id(0);
  if (row >= rows || seg >= nseg) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const ulong base = offset + (ulong)row * row_stride;
  const int begin = seg * seg_cols, end = asp_min_int(cols, begin + seg_cols);
  float acc[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int e = begin + lid; e < end; e += ASP_WG)
    asp_bwd_terms(ASP_LOAD(y, base + (ulong)e), ASP_LOAD(dy, base + (ulong)e), alpha, acc);
  asp_reduce5(red, acc, lid);
  if (lid < 5) partials[((size_t)row * nseg + seg) * 5 + lid] = acc[lid];
}

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_seg_bwd_apply(
    __global const store_t *y, __global const store_t *dy, __global store_t *dx, ulong offset,
    ulong row_stride, int rows, int cols, float alpha_scalar, __global const float *alpha_rows,
    int has_alpha, int seg_cols, int nseg, __global const float *partials,
    __global float *dalpha_rows, int has_dalpha) {
  const int seg = get_group_id(0), row = get_group_id(1), lid = get_local_id(0);
  if (row >= rows || seg >= nseg) return;
  const float alpha = asp_row_alpha(alpha_scalar, alpha_rows, has_alpha, row);
  const ulong base = offset + (ulong)row * row_stride;
  float acc[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int s = 0; s < nseg; ++s)
    for (int q = 0; q < 5; ++q) acc[q] += partials[((size_t)row * nseg + s) * 5 + q];
  const int begin = seg * seg_cols, end = asp_min_int(cols, begin + seg_cols);
  asp_bwd_apply(y, dy, dx, base, begin, end, acc, alpha, lid);
  if (has_dalpha && seg == 0 && lid == 0) dalpha_rows[row] = asp_bwd_dalpha(acc, alpha);
}

/* Sum of n floats in a fixed order (one work-group): d(alpha) of a scalar alpha. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void entmax_sum_floats(
    __global const float *values, int n, __global float *out) {
  __local float red[ASP_WG];
  const int lid = get_local_id(0);
  float acc = 0.0f;
  for (int i = lid; i < n; i += ASP_WG) acc += values[i];
  red[lid] = acc;
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride) red[lid] += red[lid + stride];
  }
  if (lid == 0) out[0] = red[0];
}

/* ---- softmax rows (benchmark baseline)
 * ------------------------------------------------------------ */

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_rows_forward(
    __global const store_t *x, __global store_t *y, ulong offset, ulong row_stride, int rows,
    int cols) {
  __local float red[ASP_WG];
  const int row = get_group_id(0), lid = get_local_id(0);
  if (row >= rows) return;
  const ulong base = offset + (ulong)row * row_stride;
  float m = -INFINITY;
  for (int e = lid; e < cols; e += ASP_WG) m = fmax(m, ASP_LOAD(x, base + (ulong)e));
  red[lid] = m;
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride) red[lid] = fmax(red[lid], red[lid + stride]);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  m = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  float sum = 0.0f;
  for (int e = lid; e < cols; e += ASP_WG) sum += exp(ASP_LOAD(x, base + (ulong)e) - m);
  red[lid] = sum;
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride) red[lid] += red[lid + stride];
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  float inv = 1.0f / red[0];
  for (int e = lid; e < cols; e += ASP_WG)
    ASP_STORE(y, base + (ulong)e, exp(ASP_LOAD(x, base + (ulong)e) - m) * inv);
  /* PoCL 3.1 crashed in this kernel when cols < ASP_WG (work-items that skip the loop above)
   * unless the kernel ends with a barrier; found by the API fuzzer. */
  barrier(CLK_LOCAL_MEM_FENCE);
}
