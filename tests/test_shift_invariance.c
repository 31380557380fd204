/*
 * test_shift_invariance.c - alpha-entmax does not change when a constant is added to a row, and
 * the library must not either (tracker issue 15): rows far from zero (unnormalised logits, a large
 * bias) must give the outputs, gradients and sweep counts of the same rows near zero.
 *
 * Row operator: for every alpha of the row suite (1.1, 1.25, 1.333, 1.5, 1.75, 2), fp32 and bf16,
 * and shifts c in {-1e4, -5e3, -300, 0, 300, 5e3}, a matrix of base rows r (gaussian, a three-way
 * tie at the max, masked entries, one peaked entry, a wide row) is run as r and as r + c. The base
 * rows are built on a grid so that r and r + c are both exact in the dtype (fp32: multiples of
 * 2^-10; bf16: the spacing of bf16 at |c|, with an offset so that r_j + c lands on that spacing);
 * both inputs therefore describe exactly the same entmax problem and any difference is the
 * library's. Checked, per case:
 *  - y(r + c) against the double reference of r with the tolerance test_entmax_rows gives the
 *    UNSHIFTED row: 2e-6 + 8 ulp(max |x_base|) c0 + half an ulp of the stored dtype times |p|
 *    (the solver stops at |sum p - 1| <= 1e-6, normalises by the measured sum, and fp32 resolves
 *    x - max to 2^-24 of the base row's magnitude, which a shift must not enlarge);
 *  - y(r + c) against y(r): twice that (both are within it of the reference);
 *  - the sweep count of every row equals the unshifted one;
 *  - dx (backward with dy shared) against the unshifted dx: 2 (1e-5 max(1, max |dx|) + half an ulp
 *    of the dtype |dx|), the backward tolerance of test_entmax_rows doubled;
 *  - d(alpha) per row against the unshifted: 2e-4 (fp32) / 2e-3 (bf16) max(1, |d(alpha)|).
 * Both the one-work-group-per-row kernel and the segmented long-row path (a second context with
 * rows_seg_cols=1024, rows of 3000 columns) are covered. Each case prints a "table:" line (max
 * error against the reference, entries whose bits differ from the unshifted run, sweeps) for the
 * record of issue 15; bitwise equality is reported, not required.
 *
 * Attention (fp32): the shift enters through a key component shared by every key, k_j[D-1] = S
 * (0 in the base problem), with q_i[D-1] = w_i, so row i's scores move by scale * w_i * S (the
 * offsets cycle through the shifts above) and its entmax does not change.
 *  - exact scores: integer q and k entries, scale 1/4 and alpha in {1.25, 1.5, 1.75, 2}, so every
 *    partial sum of q.k and the scaled score are exact in fp32: the shifted problem is exactly the
 *    base problem. O within the fp32 attention tolerance 1e-4 of the reference (test_attention_fwd)
 *    and of the unshifted O, the same sweep statistics and the same active tiles.
 *  - gaussian q, k, v (alpha 1.5, 2, 1.3): the shifted scores are rounded fp32 dot products. For
 *    any summation order (with or without fma) |fl(q.k) - q.k| <= gamma_D sum_d |q_d k_d|,
 *    gamma_D = D u / (1 - D u), u = 2^-24, and scaling adds u |x|: delta_i, the largest score
 *    error of row i in the scaled space. tau moves by at most delta_i (it is monotone and
 *    1-Lipschitz in the max norm of the row), so every u_j = x_j - tau moves by <= 2 delta_i and
 *    p_j = u_j^c0 by <= 2 c0 delta_i (u_j <= 1 on the support); the output, normalised by the
 *    measured sum, moves by <= 2 c0 delta_i sum_j |v_j - O| over the entries within 2 delta_i of
 *    the support (1% added for the normalisation). O must lie within 1e-4 plus that of the
 *    reference.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "test_util.h"

static const double kShifts[] = {-1e4, -5e3, -300.0, 0.0, 300.0, 5e3};
#define NSHIFTS (sizeof kShifts / sizeof kShifts[0])

static double unit_round(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

static const char *dtype_name(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? "f32" : (d == ADASPLASH_F16 ? "f16" : "bf16");
}

/* ---- row operator ----------------------------------------------------------------------------
 */

enum { KIND_GAUSS, KIND_TIES, KIND_MASKED, KIND_PEAKED, KIND_WIDE, KIND_COUNT };

/* Standard normal draws (and the masked pattern) of one base row, shared by every shift. */
static void draw_row(double *w, size_t n, int kind, ref_rng *rng) {
  for (size_t j = 0; j < n; ++j) w[j] = ref_rng_normal(rng);
  switch (kind) {
    case KIND_TIES: {
      double m = -INFINITY;
      for (size_t j = 0; j < n; ++j) m = fmax(m, w[j]);
      for (size_t t = 0; t < 3 && t < n; ++t) w[(t * 7919) % n] = m;
      break;
    }
    case KIND_MASKED:
      for (size_t j = 0; j < n; j += 3) w[j] = -INFINITY;
      break;
    case KIND_PEAKED:
      for (size_t j = 0; j < n; ++j) w[j] *= 0.3;
      w[n / 2] = 3.0;
      break;
    case KIND_WIDE:
      for (size_t j = 0; j < n; ++j) w[j] *= 4.0;
      break;
    default:
      break;
  }
}

/* Base row r (on a grid of spacing g, offset so that r_j + c lies on the grid) and r + c, both
 * exact in dtype. The spacing starts at the finest that fp32 / bf16 allow near |c| <= 1e4 and
 * doubles until every value is exact; a coarse spacing turns the spread into ties (at least four
 * grid steps of spread are kept). Returns the spacing. */
static double grid_rows(const double *w, size_t n, double c, adasplash_dtype dt, double *base,
                        double *shifted) {
  double g = dt == ADASPLASH_F32 ? ldexp(1.0, -10) : ldexp(1.0, -4);
  for (;;) {
    const double delta = g * nearbyint(c / g) - c;
    const double spread = fmax(1.0, 4.0 * g);
    int exact = 1;
    for (size_t j = 0; j < n; ++j) {
      if (w[j] == -INFINITY) {
        base[j] = shifted[j] = -INFINITY;
        continue;
      }
      base[j] = delta + g * nearbyint(w[j] * spread / g);
      shifted[j] = base[j] + c;
      if (test_round(base[j], dt) != base[j] || test_round(shifted[j], dt) != shifted[j]) exact = 0;
    }
    if (exact) return g;
    g *= 2.0;
  }
}

typedef struct rows_out {
  double *y, *dx;
  float *dalpha;
  int *sweeps;
} rows_out;

static void rows_run(adasplash_context *ctx, const adasplash_entmax_desc *d, const double *z,
                     const double *dy, const float *alpha, rows_out *o) {
  const size_t n = d->rows * d->cols, es = adasplash_dtype_size(d->dtype);
  void *zb = malloc(n * es), *yb = malloc(n * es), *dyb = malloc(n * es), *dxb = malloc(n * es);
  test_pack(z, n, d->dtype, zb);
  test_pack(dy, n, d->dtype, dyb);
  test_require(ctx, adasplash_entmax_forward_host(ctx, d, zb, yb, alpha, NULL, o->sweeps),
               "adasplash_entmax_forward_host");
  test_unpack(yb, n, d->dtype, o->y);
  test_require(ctx, adasplash_entmax_backward_host(ctx, d, yb, dyb, dxb, alpha, NULL, o->dalpha),
               "adasplash_entmax_backward_host");
  test_unpack(dxb, n, d->dtype, o->dx);
  free(zb), free(yb), free(dyb), free(dxb);
}

static void rows_out_alloc(rows_out *o, size_t rows, size_t cols) {
  o->y = (double *)calloc(rows * cols, sizeof(double));
  o->dx = (double *)calloc(rows * cols, sizeof(double));
  o->dalpha = (float *)calloc(rows, sizeof(float));
  o->sweeps = (int *)calloc(rows, sizeof(int));
}

static void rows_out_free(rows_out *o) {
  free(o->y), free(o->dx), free(o->dalpha), free(o->sweeps);
}

/* One (path, alpha, dtype) over every shift. kinds: the row kinds of the matrix (one row each). */
static void rows_shift_case(adasplash_context *ctx, const char *path, size_t cols, const int *kinds,
                            size_t rows, double alpha, adasplash_dtype dt, const double *shifts,
                            size_t nshifts, ref_rng *rng) {
  const size_t n = rows * cols;
  double *w = (double *)malloc(n * sizeof(double)), *base = (double *)malloc(n * sizeof(double));
  double *shifted = (double *)malloc(n * sizeof(double)),
         *dy = (double *)malloc(n * sizeof(double));
  double *p = (double *)malloc(n * sizeof(double));
  float *alphas = (float *)malloc(rows * sizeof(float));
  for (size_t r = 0; r < rows; ++r) {
    draw_row(w + r * cols, cols, kinds[r], rng);
    alphas[r] = (float)alpha;
  }
  for (size_t i = 0; i < n; ++i) dy[i] = test_round(ref_rng_normal(rng), dt);
  const double a = (double)(float)alpha, c0 = 1.0 / (a - 1.0), rtol = unit_round(dt);
  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.dtype = dt;
  d.rows = rows;
  d.cols = cols;
  d.alpha = (float)alpha;
  rows_out o0, o1;
  rows_out_alloc(&o0, rows, cols);
  rows_out_alloc(&o1, rows, cols);
  for (size_t s = 0; s < nshifts; ++s) {
    const double c = shifts[s];
    double g = 0.0;
    for (size_t r = 0; r < rows; ++r)
      g = fmax(g, grid_rows(w + r * cols, cols, c, dt, base + r * cols, shifted + r * cols));
    rows_run(ctx, &d, base, dy, alphas, &o0);
    rows_run(ctx, &d, shifted, dy, alphas, &o1);
    char label[160];
    snprintf(label, sizeof label, "rows %s %zux%zu alpha=%.3f %s shift=%g (grid %g)", path, rows,
             cols, alpha, dtype_name(dt), c, g);
    double worst_ref = 0, worst_pair = 0, worst_dx = 0, worst_da = 0, err_shift = 0, err_base = 0;
    int sweeps_differ = 0, nonconv = 0, sw_shift = 0, sw_base = 0, ndiff = 0;
    for (size_t r = 0; r < rows; ++r) {
      const double *zr = base + r * cols;
      double *pr = p + r * cols;
      ref_entmax_row(zr, NULL, cols, a, pr);
      double xmax = 0.0;
      for (size_t j = 0; j < cols; ++j)
        if (isfinite(zr[j])) xmax = fmax(xmax, fabs((a - 1.0) * zr[j]));
      const double atol = 2e-6 + 8.0 * ldexp(xmax, -24) * c0;
      double dmax = 1.0;
      for (size_t j = 0; j < cols; ++j) dmax = fmax(dmax, fabs(o0.dx[r * cols + j]));
      for (size_t j = 0; j < cols; ++j) {
        const size_t e = r * cols + j;
        const double tol = atol + rtol * fabs(pr[j]);
        const double e1 = fabs(o1.y[e] - pr[j]), e0 = fabs(o0.y[e] - pr[j]);
        ndiff += o1.y[e] != o0.y[e] || o1.dx[e] != o0.dx[e];
        worst_ref = fmax(worst_ref, isnan(e1) ? INFINITY : e1 / tol);
        worst_pair = fmax(worst_pair, fabs(o1.y[e] - o0.y[e]) / (2.0 * tol));
        err_shift = fmax(err_shift, isnan(e1) ? INFINITY : e1);
        err_base = fmax(err_base, isnan(e0) ? INFINITY : e0);
        const double dtol = 2.0 * (1e-5 * dmax + rtol * fabs(o0.dx[e]));
        const double ed = fabs(o1.dx[e] - o0.dx[e]) / dtol;
        worst_dx = fmax(worst_dx, isnan(ed) ? INFINITY : ed);
      }
      const double datol =
          2.0 * (dt == ADASPLASH_F32 ? 1e-4 : 1e-3) * fmax(1.0, fabs((double)o0.dalpha[r]));
      const double eda = fabs((double)o1.dalpha[r] - (double)o0.dalpha[r]) / datol;
      worst_da = fmax(worst_da, isnan(eda) ? INFINITY : eda);
      if (o1.sweeps[r] != o0.sweeps[r]) sweeps_differ++;
      if (o1.sweeps[r] <= 0 || o0.sweeps[r] <= 0) nonconv++;
      sw_shift = o1.sweeps[r] > sw_shift ? o1.sweeps[r] : sw_shift;
      sw_base = o0.sweeps[r] > sw_base ? o0.sweeps[r] : sw_base;
    }
    printf(
        "table: rows path=%s alpha=%.3f dtype=%s shift=%g maxerr=%.3g base_maxerr=%.3g "
        "differ=%d sweeps=",
        path, alpha, dtype_name(dt), c, err_shift, err_base, ndiff);
    for (size_t r = 0; r < rows; ++r) printf("%s%d", r ? "," : "", o1.sweeps[r]);
    printf(" base_sweeps=");
    for (size_t r = 0; r < rows; ++r) printf("%s%d", r ? "," : "", o0.sweeps[r]);
    printf("\n");
    test_check(worst_ref <= 1.0,
               "%s: y within the unshifted row's tolerance of the reference (worst %.3g x tol, "
               "max error %.3g)",
               label, worst_ref, err_shift);
    test_check(worst_pair <= 1.0, "%s: y equals the unshifted y (worst %.3g x tol)", label,
               worst_pair);
    test_check(sweeps_differ == 0 && nonconv == 0,
               "%s: the same sweeps as unshifted and converged (%d rows differ, %d not converged; "
               "max %d vs %d)",
               label, sweeps_differ, nonconv, sw_shift, sw_base);
    test_check(worst_dx <= 1.0, "%s: dx equals the unshifted dx (worst %.3g x tol)", label,
               worst_dx);
    test_check(worst_da <= 1.0, "%s: d(alpha) equals the unshifted (worst %.3g x tol)", label,
               worst_da);
  }
  rows_out_free(&o0);
  rows_out_free(&o1);
  free(w), free(base), free(shifted), free(dy), free(p), free(alphas);
}

/* ---- attention -------------------------------------------------------------------------------
 */

/* Runs base and shifted problems (k[., D-1] = 0 vs S, q[i][D-1] = w[i]) and checks O. exact: the
 * inputs are integers and every score is exact in fp32 (see the header). */
static void attn_shift_case(adasplash_context *ctx, attn_case c, int exact, const char *what) {
  attn_problem p;
  attn_problem_make(ctx, &c, &p);
  const int B = c.batch, Hq = c.q_heads, Hk = c.kv_heads, Lq = c.q_len, Lk = c.kv_len;
  const int D = c.head_dim, G = Hq / Hk;
  const double scale = p.ref.scale, S = exact ? 100.0 : 64.0;
  ref_rng rng;
  ref_rng_seed(&rng, 991 + (unsigned long long)(c.alpha * 1000));
  if (exact) {
    for (size_t i = 0; i < p.q_n; ++i) p.q[i] = floor(ref_rng_uniform(&rng) * 7) - 3;
    for (size_t i = 0; i < p.kv_n; ++i) p.k[i] = floor(ref_rng_uniform(&rng) * 7) - 3;
  }
  /* Row offsets (in units of the logit z = scale q.k) cycle through the shifts. */
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < Lq; ++i) {
        const double off = kShifts[(size_t)(i + 3 * h + b) % NSHIFTS];
        const double wv = (double)(float)(off / (scale * S));
        p.q[(((size_t)b * Hq + h) * Lq + i) * D + (D - 1)] = wv;
      }
  for (size_t e = (size_t)D - 1; e < p.kv_n; e += (size_t)D) p.k[e] = 0.0;
  attn_pack(&p, 'q', p.q, p.q_host);
  attn_pack(&p, 'k', p.k, p.k_host);
  const size_t rows = (size_t)B * Hq * Lq;
  double *ref_out = (double *)calloc(p.q_n, sizeof(double));
  double *ref_tau = (double *)calloc(rows, sizeof(double));
  double *ref_p = (double *)calloc(rows * (size_t)Lk, sizeof(double));
  if (ref_attention_forward(&p.ref, p.q, p.k, p.v, ref_out, ref_tau, ref_p) != 0) {
    printf("FAIL: %s: reference rejected the problem\n", what);
    exit(1);
  }
  attn_run r0, r1;
  attn_run_library(ctx, &p, NULL, 0, &r0);
  for (size_t e = (size_t)D - 1; e < p.kv_n; e += (size_t)D) p.k[e] = S;
  attn_pack(&p, 'k', p.k, p.k_host);
  attn_run_library(ctx, &p, NULL, 0, &r1);

  char label[320], cl[256];
  attn_case_label(&c, cl, sizeof cl);
  snprintf(label, sizeof label, "attention %s %s", what, cl);
  const double u = ldexp(1.0, -24), gamma = D * u / (1.0 - D * u);
  double worst = 0, worst_pair = 0, err1 = 0, err0 = 0, maxdelta = 0;
  int ndiff = 0;
  for (size_t row = 0; row < rows; ++row) {
    const int b = (int)(row / ((size_t)Hq * Lq)), h = (int)(row / Lq % Hq), i = (int)(row % Lq);
    const double a = p.alpha_h[h], c0 = 1.0 / (a - 1.0), xs = (a - 1.0) * scale;
    const double *qi = p.q + row * D;
    int lq = p.q_lens ? p.q_lens[b] : Lq, lk = p.kv_lens ? p.kv_lens[b] : Lk;
    int nv = i >= lq ? 0 : (c.causal ? i + (lk - lq) + 1 : lk);
    if (nv > lk) nv = lk;
    /* delta: the largest error of a shifted fp32 score of this row (0 for the exact inputs). */
    double delta = 0.0;
    if (!exact)
      for (int j = 0; j < nv; ++j) {
        const double *kj = p.k + (((size_t)b * Hk + h / G) * Lk + j) * D;
        double sabs = 0, dot = 0;
        for (int d = 0; d < D; ++d) sabs += fabs(qi[d] * kj[d]), dot += qi[d] * kj[d];
        delta = fmax(delta, fabs(xs) * gamma * sabs + u * fabs(xs * dot));
      }
    maxdelta = fmax(maxdelta, delta);
    for (int d = 0; d < D; ++d) {
      const size_t e = row * D + d;
      double sv = 0;
      for (int j = 0; j < nv && delta > 0; ++j) {
        const double *kj = p.k + (((size_t)b * Hk + h / G) * Lk + j) * D;
        double dot = 0;
        for (int dd = 0; dd < D - 1; ++dd) dot += qi[dd] * kj[dd];
        /* base score (the shifted one minus the row's constant) against tau, in scaled space */
        if ((a - 1.0) * scale * dot > ref_tau[row] - 2.0 * delta)
          sv += fabs(p.v[(((size_t)b * Hk + h / G) * Lk + j) * D + d] - ref_out[e]);
      }
      const double tol = 1e-4 + 2.02 * c0 * delta * sv;
      const double e1 = fabs(r1.out[e] - ref_out[e]), e0 = fabs(r0.out[e] - ref_out[e]);
      worst = fmax(worst, isnan(e1) ? INFINITY : e1 / tol);
      worst_pair = fmax(worst_pair, fabs(r1.out[e] - r0.out[e]) / (tol + 1e-4));
      err1 = fmax(err1, isnan(e1) ? INFINITY : e1);
      err0 = fmax(err0, isnan(e0) ? INFINITY : e0);
      ndiff += r1.out[e] != r0.out[e];
    }
  }
  printf(
      "table: attention %s alpha=%s%.3g causal=%d maxerr=%.3g base_maxerr=%.3g differ=%d "
      "max_sweeps=%d base_max_sweeps=%d mean_sweeps=%.3f base_mean_sweeps=%.3f "
      "max_delta=%.3g\n",
      what, c.per_head_alpha ? "per-head/" : "", c.alpha, c.causal, err1, err0, ndiff,
      r1.stats.max_sweeps, r0.stats.max_sweeps, r1.stats.mean_sweeps, r0.stats.mean_sweeps,
      maxdelta);
  test_check(worst <= 1.0,
             "%s: shifted O within tolerance of the reference (worst %.3g x tol, "
             "max error %.3g, base %.3g)",
             label, worst, err1, err0);
  test_check(worst_pair <= 1.0, "%s: shifted O equals the unshifted O (worst %.3g x tol)", label,
             worst_pair);
  if (exact) {
    test_check(r1.stats.max_sweeps == r0.stats.max_sweeps &&
                   r1.stats.mean_sweeps == r0.stats.mean_sweeps &&
                   r1.stats.converged == r0.stats.converged,
               "%s: the same sweeps as unshifted (max %d vs %d, mean %.3f vs %.3f)", label,
               r1.stats.max_sweeps, r0.stats.max_sweeps, r1.stats.mean_sweeps,
               r0.stats.mean_sweeps);
    const size_t nqb = ((size_t)Lq + r0.tile - 1) / r0.tile,
                 nkb = ((size_t)Lk + r0.tile - 1) / r0.tile;
    test_check(memcmp(r0.active, r1.active, (size_t)B * Hq * nqb * nkb) == 0,
               "%s: the same active tiles as unshifted", label);
  }
  free(ref_out), free(ref_tau), free(ref_p);
  attn_run_free(&r0);
  attn_run_free(&r1);
  attn_problem_free(&p);
}

int main(int argc, char **argv) {
  const int simulator = argc > 1 && strcmp(argv[1], "--oclgrind") == 0;
  adasplash_context_options opts;
  adasplash_context_options_init(&opts);
  if (simulator) opts.tune = "rows_wg=32,rows_wg_bracket=1";
  adasplash_context *ctx = test_context(&opts);
  test_print_device(ctx);
  adasplash_context_options sopts;
  adasplash_context_options_init(&sopts);
  sopts.tune = simulator ? "rows_seg_cols=64,rows_wg=32" : "rows_seg_cols=1024";
  adasplash_context *seg = test_context(&sopts);
  ref_rng rng;
  ref_rng_seed(&rng, 4242);

  static const int kinds[KIND_COUNT] = {KIND_GAUSS, KIND_TIES, KIND_MASKED, KIND_PEAKED, KIND_WIDE};
  static const int long_kinds[2] = {KIND_GAUSS, KIND_MASKED};
  static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_BF16};
  if (simulator) {
    static const double sim_shifts[] = {-5e3, 0.0, 300.0};
    rows_shift_case(ctx, "wg", 37, kinds, 3, 1.5, ADASPLASH_F32, sim_shifts, 3, &rng);
    rows_shift_case(ctx, "wg", 37, kinds, 2, 1.25, ADASPLASH_BF16, sim_shifts, 3, &rng);
    rows_shift_case(seg, "seg", 150, long_kinds, 2, 1.5, ADASPLASH_F32, sim_shifts, 3, &rng);
    attn_case c = {
        1, 1, 1, 20, 20, 8, 1, ADASPLASH_F32, 1.5, 0, 0, 0, 0.25, 0, 0, ADASPLASH_ATTN_ENTMAX, 3};
    attn_shift_case(ctx, c, 1, "exact-scores");
  } else {
    static const double alphas[] = {1.1, 1.25, 1.333, 1.5, 1.75, 2.0};
    for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; ++a)
      for (size_t t = 0; t < 2; ++t) {
        rows_shift_case(ctx, "wg", 300, kinds, KIND_COUNT, alphas[a], dtypes[t], kShifts, NSHIFTS,
                        &rng);
        rows_shift_case(seg, "seg", 3000, long_kinds, 2, alphas[a], dtypes[t], kShifts, NSHIFTS,
                        &rng);
      }
    static const double exact_alphas[] = {1.25, 1.5, 1.75, 2.0};
    for (size_t a = 0; a < 4; ++a)
      for (int causal = 0; causal < 2; ++causal) {
        attn_case c = {1,
                       2,
                       1,
                       72,
                       72,
                       16,
                       causal,
                       ADASPLASH_F32,
                       exact_alphas[a],
                       0,
                       0,
                       0,
                       0.25,
                       0,
                       0,
                       ADASPLASH_ATTN_ENTMAX,
                       5};
        attn_shift_case(ctx, c, 1, "exact-scores");
      }
    static const double gauss_alphas[] = {1.5, 2.0, 1.3};
    for (size_t a = 0; a < 3; ++a) {
      attn_case c = {2,
                     2,
                     1,
                     80,
                     80,
                     32,
                     1,
                     ADASPLASH_F32,
                     gauss_alphas[a],
                     0,
                     0,
                     0,
                     0.0,
                     0,
                     0,
                     ADASPLASH_ATTN_ENTMAX,
                     11};
      attn_shift_case(ctx, c, 0, "gaussian");
    }
  }
  adasplash_context_release(seg);
  adasplash_context_release(ctx);
  return test_finish("test_shift_invariance");
}
