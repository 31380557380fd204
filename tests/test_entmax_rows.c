/*
 * test_entmax_rows.c - the row-wise entmax operator against the double-precision host reference:
 * forward (values, sum = 1, support, convergence), backward (dx and d(alpha)) over alphas, dtypes,
 * row lengths, scales and special rows (ties, masks, single valid column, fully masked, NaN).
 *
 * Tolerances (absolute, on probabilities in [0, 1]):
 *  - fp32: 2e-6 + 8 units of 2^-24 per unit slope. The solver stops at |sum p - 1| <= 1e-6 and
 *    normalises by the measured sum, so p is off by about 1e-6 * p; the inputs themselves are
 *    exact, and the library forms (alpha-1)(z - max z) and subtracts tau relative to the max, so
 *    on the support (x within 1 of the max) each step rounds by at most 2^-24 whatever the row's
 *    magnitude (scales up to 1e4 below), times dp/dx <= c0 * u^(c0-1) <= c0.
 *  - fp16 / bf16 outputs: the above plus half an ulp of the stored value (2^-11 resp. 2^-8
 *    relative).
 * Backward: dx is compared with the reference backward evaluated on the library's own forward
 * output (so it tests the backward alone): 1e-5 of max |dx| in fp32 (fp32 sums of rows of up to
 * 1e5 terms), plus half an ulp of the stored dtype for 16-bit outputs; d(alpha) to 1e-4 relative
 * (fp32) / 1e-3 (16-bit: y is stored rounded, but the reference sees the same rounded y).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"
#include "test_util.h"

typedef enum row_kind {
  ROW_GAUSS,  /* N(0,1) * scale */
  ROW_PEAKED, /* one large entry, the rest small */
  ROW_EQUAL,  /* all entries equal */
  ROW_TIES,   /* three entries tie at the max */
  ROW_MASKED, /* a third of the entries are -inf */
  ROW_SINGLE, /* one valid entry, the rest -inf */
  ROW_EMPTY,  /* every entry -inf */
  ROW_NAN     /* one NaN among valid entries */
} row_kind;

static const char *kind_name(row_kind k) {
  static const char *names[] = {"gauss",  "peaked", "equal", "ties",
                                "masked", "single", "empty", "nan"};
  return names[k];
}

static void fill_row(double *z, size_t n, row_kind kind, double scale, ref_rng *rng) {
  for (size_t j = 0; j < n; ++j) z[j] = ref_rng_normal(rng) * scale;
  switch (kind) {
    case ROW_GAUSS:
      break;
    case ROW_PEAKED:
      for (size_t j = 0; j < n; ++j) z[j] *= 0.01;
      z[n / 2] = 3.0 * scale;
      break;
    case ROW_EQUAL:
      for (size_t j = 0; j < n; ++j) z[j] = 0.25 * scale;
      break;
    case ROW_TIES: {
      double m = -INFINITY;
      for (size_t j = 0; j < n; ++j) m = fmax(m, z[j]);
      for (size_t j = 0; j < n && j < 3; ++j) z[(j * 7919) % n] = m;
      break;
    }
    case ROW_MASKED:
      for (size_t j = 0; j < n; j += 3) z[j] = -INFINITY;
      if (n > 1) z[1] = fabs(z[1]);
      break;
    case ROW_SINGLE:
      for (size_t j = 0; j < n; ++j) z[j] = -INFINITY;
      z[n - 1] = 0.5;
      break;
    case ROW_EMPTY:
      for (size_t j = 0; j < n; ++j) z[j] = -INFINITY;
      break;
    case ROW_NAN:
      z[n / 3] = NAN;
      break;
  }
}

typedef struct row_case {
  size_t rows, cols;
  double alpha;
  adasplash_dtype dtype;
  row_kind kind;
  double scale;
  int per_row_alpha;
  int valid_cols;
  adasplash_tau_init init;
} row_case;

static double unit_round(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

static int run_case(adasplash_context *ctx, const row_case *c, ref_rng *rng, int *sweep_hist) {
  const size_t rows = c->rows, cols = c->cols, n = rows * cols;
  const size_t stride = cols + (c->valid_cols ? 3 : 0); /* exercise row_stride when varlen */
  const size_t esize = adasplash_dtype_size(c->dtype);
  double *z = (double *)calloc(rows * stride, sizeof *z);
  double *p = (double *)calloc(n, sizeof *p);
  double *y = (double *)calloc(rows * stride, sizeof *y);
  double *dy = (double *)calloc(rows * stride, sizeof *dy);
  double *dx = (double *)calloc(rows * stride, sizeof *dx);
  double *dz = (double *)calloc(cols, sizeof *dz);
  void *zb = calloc(rows * stride, esize), *yb = calloc(rows * stride, esize);
  void *dyb = calloc(rows * stride, esize), *dxb = calloc(rows * stride, esize);
  float *alpha = (float *)calloc(rows, sizeof *alpha);
  int *valid = (int *)calloc(rows, sizeof *valid);
  int *sweeps = (int *)calloc(rows, sizeof *sweeps);
  float *dalpha = (float *)calloc(rows, sizeof *dalpha);
  unsigned char *mask = (unsigned char *)calloc(cols, 1);
  int ok = 1;
  for (size_t r = 0; r < rows; ++r) {
    fill_row(z + r * stride, cols, c->kind, c->scale, rng);
    for (size_t j = 0; j < cols; ++j) z[r * stride + j] = test_round(z[r * stride + j], c->dtype);
    for (size_t j = 0; j < cols; ++j)
      dy[r * stride + j] = test_round(ref_rng_normal(rng), c->dtype);
    alpha[r] = c->per_row_alpha ? (float)(1.05 + 0.95 * ref_rng_uniform(rng)) : (float)c->alpha;
    if (c->per_row_alpha && r % 3 == 0) alpha[r] = 1.5f;
    if (c->per_row_alpha && r % 3 == 1) alpha[r] = 2.0f;
    valid[r] = c->valid_cols ? (int)((r * 7) % (cols + 1)) : (int)cols;
  }
  test_pack(z, rows * stride, c->dtype, zb);
  test_pack(dy, rows * stride, c->dtype, dyb);

  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.dtype = c->dtype;
  d.rows = rows;
  d.cols = cols;
  d.row_stride = stride;
  d.alpha = (float)c->alpha;
  d.init = c->init;
  adasplash_status st = adasplash_entmax_forward_host(
      ctx, &d, zb, yb, c->per_row_alpha ? alpha : NULL, c->valid_cols ? valid : NULL, sweeps);
  test_require(ctx, st, "adasplash_entmax_forward_host");
  test_unpack(yb, rows * stride, c->dtype, y);

  char label[160];
  snprintf(label, sizeof label, "rows %zux%zu alpha=%s%.3f %s dtype=%d scale=%g%s%s", rows, cols,
           c->per_row_alpha ? "per-row~" : "", c->alpha, kind_name(c->kind), (int)c->dtype,
           c->scale, c->valid_cols ? " varlen" : "",
           c->init == ADASPLASH_INIT_BRACKET ? " bracket-init" : "");
  double worst = 0.0, worst_sum = 0.0, worst_dx = 0.0, worst_da = 0.0;
  int support_bad = 0, nonconv = 0, nan_bad = 0;
  for (size_t r = 0; r < rows; ++r) {
    const double *zr = z + r * stride;
    const size_t nv = (size_t)valid[r];
    double a = alpha[r];
    for (size_t j = 0; j < cols; ++j) mask[j] = j < nv;
    double tau = ref_entmax_row(zr, mask, cols, a, p + r * cols);
    const double *pr = p + r * cols;
    const double *yr = y + r * stride;
    double c0 = 1.0 / (a - 1.0);
    double atol = 2e-6 + 8.0 * ldexp(1.0, -24) * c0;
    double rtol = unit_round(c->dtype);
    if (isnan(tau)) {
      for (size_t j = 0; j < cols; ++j)
        if ((j < nv && zr[j] != -INFINITY) ? !isnan(yr[j]) : yr[j] != 0.0) nan_bad++;
      continue;
    }
    double sum = 0.0;
    for (size_t j = 0; j < cols; ++j) {
      double err = fabs(yr[j] - pr[j]) - rtol * fabs(pr[j]);
      if (!(err <= atol)) worst = fmax(worst, isnan(err) ? INFINITY : err / atol);
      sum += yr[j];
      if (isfinite(tau) && j < nv && isfinite(zr[j])) {
        double x = (a - 1.0) * zr[j];
        /* A 16-bit output may underflow to 0 where the exact p is below its smallest value. */
        int expect = x > tau && test_round(pr[j], c->dtype) > 0.0;
        if (fabs(x - tau) > 1e-4 * (1.0 + fabs(tau)) && ((yr[j] > 0) != expect)) support_bad++;
      }
    }
    if (isfinite(tau)) worst_sum = fmax(worst_sum, fabs(sum - 1.0));
    if (sweeps[r] <= 0 && isfinite(tau)) nonconv++;
    if (sweep_hist && sweeps[r] > 0) sweep_hist[sweeps[r] < 15 ? sweeps[r] : 15]++;
  }
  ok &= test_check(worst == 0.0, "%s: forward within tolerance (worst excess %.3g x atol)", label,
                   worst);
  double sum_tol = 5e-6 + 2.0 * unit_round(c->dtype);
  ok &=
      test_check(worst_sum <= sum_tol, "%s: |sum y - 1| = %.3g <= %.3g", label, worst_sum, sum_tol);
  ok &= test_check(support_bad == 0, "%s: support equals the reference away from tau (%d differ)",
                   label, support_bad);
  ok &= test_check(nonconv == 0, "%s: every row converged (%d did not)", label, nonconv);
  ok &= test_check(nan_bad == 0, "%s: NaN rows give NaN on valid entries, 0 elsewhere (%d bad)",
                   label, nan_bad);

  /* Backward against the reference applied to the library's own forward output. */
  if (c->kind != ROW_NAN) {
    st = adasplash_entmax_backward_host(ctx, &d, yb, dyb, dxb, c->per_row_alpha ? alpha : NULL,
                                        NULL, c->per_row_alpha ? dalpha : dalpha);
    test_require(ctx, st, "adasplash_entmax_backward_host");
    test_unpack(dxb, rows * stride, c->dtype, dx);
    double da_total_ref = 0.0, da_scale = 0.0;
    for (size_t r = 0; r < rows; ++r) {
      double da_ref = 0.0;
      ref_entmax_row_backward(y + r * stride, dy + r * stride, cols, alpha[r], dz, &da_ref);
      double dmax = 1e-30;
      for (size_t j = 0; j < cols; ++j) dmax = fmax(dmax, fabs(dz[j]));
      for (size_t j = 0; j < cols; ++j) {
        double err = fabs(dx[r * stride + j] - dz[j]) - unit_round(c->dtype) * fabs(dz[j]);
        worst_dx = fmax(worst_dx, err / (1e-5 * fmax(1.0, dmax)));
      }
      if (c->per_row_alpha) {
        double da_tol = (c->dtype == ADASPLASH_F32 ? 1e-4 : 1e-3) * fmax(1.0, fabs(da_ref));
        worst_da = fmax(worst_da, fabs(dalpha[r] - da_ref) / da_tol);
      }
      da_total_ref += da_ref;
      da_scale += fabs(da_ref);
    }
    ok &= test_check(worst_dx <= 1.0, "%s: backward dx within tolerance (worst %.3g x tol)", label,
                     worst_dx);
    if (!c->per_row_alpha) {
      double da_tol = (c->dtype == ADASPLASH_F32 ? 1e-4 : 1e-3) * fmax(1.0, da_scale);
      worst_da = fabs(dalpha[0] - da_total_ref) / da_tol;
    }
    ok &= test_check(worst_da <= 1.0, "%s: d(alpha) within tolerance (worst %.3g x tol)", label,
                     worst_da);
  }
  free(z), free(p), free(y), free(dy), free(dx), free(dz), free(zb), free(yb), free(dyb), free(dxb);
  free(alpha), free(valid), free(sweeps), free(dalpha), free(mask);
  return ok;
}

/* Tiny cases for the simulator (tests/run_oclgrind.sh): every kernel, dtype and row kind. */
/* In place (documented: x and y, dy and dx may be one buffer): the same bits as out of place, for
 * a row held in local memory (300 columns) and one split into segments (70000 > rows_seg_cols). */
static void run_in_place_case(adasplash_context *ctx, size_t cols, ref_rng *rng) {
  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.rows = 3, d.cols = cols, d.row_stride = cols, d.alpha = 1.5f;
  test_require(ctx, adasplash_entmax_prepare(ctx, &d), "prepare (in place)");
  const size_t n = d.rows * cols, bytes = n * sizeof(float);
  float *x = malloc(bytes), *dy = malloc(bytes), *y1 = malloc(bytes), *y2 = malloc(bytes),
        *dx1 = malloc(bytes), *dx2 = malloc(bytes);
  for (size_t i = 0; i < n; ++i) {
    x[i] = (float)(2.0 * ref_rng_normal(rng));
    dy[i] = (float)ref_rng_normal(rng);
  }
  cl_mem bx = test_buffer(ctx, x, bytes), by = test_buffer(ctx, NULL, bytes);
  cl_mem bdy = test_buffer(ctx, dy, bytes), bdx = test_buffer(ctx, NULL, bytes);
  cl_mem bxy = test_buffer(ctx, x, bytes), bdyx = test_buffer(ctx, dy, bytes);
  test_require(ctx, adasplash_entmax_forward(ctx, &d, NULL, bx, by, NULL, 0, NULL, NULL), "fwd");
  test_require(ctx, adasplash_entmax_backward(ctx, &d, NULL, by, bdy, bdx, NULL, 0, NULL, NULL),
               "bwd");
  test_require(ctx, adasplash_entmax_forward(ctx, &d, NULL, bxy, bxy, NULL, 0, NULL, NULL),
               "fwd in place");
  test_require(ctx, adasplash_entmax_backward(ctx, &d, NULL, bxy, bdyx, bdyx, NULL, 0, NULL, NULL),
               "bwd in place");
  test_read(ctx, by, y1, bytes);
  test_read(ctx, bxy, y2, bytes);
  test_read(ctx, bdx, dx1, bytes);
  test_read(ctx, bdyx, dx2, bytes);
  test_check(memcmp(y1, y2, bytes) == 0 && memcmp(dx1, dx2, bytes) == 0,
             "in place (x = y, dx = dy), %zu columns: bitwise the out-of-place results", cols);
  cl_mem m[] = {bx, by, bdy, bdx, bxy, bdyx};
  for (int i = 0; i < 6; ++i) clReleaseMemObject(m[i]);
  free(x), free(dy), free(y1), free(y2), free(dx1), free(dx2);
}

static void run_simulator_cases(adasplash_context *ctx, ref_rng *rng) {
  static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_F16, ADASPLASH_BF16};
  for (size_t d = 0; d < 3; ++d) {
    row_case c = {3, 37, 1.5, dtypes[d], ROW_GAUSS, 1.0, 0, 0, ADASPLASH_INIT_HISTOGRAM};
    run_case(ctx, &c, rng, NULL);
  }
  static const double alphas[] = {1.25, 2.0};
  for (size_t a = 0; a < 2; ++a) {
    row_case c = {2, 20, alphas[a], ADASPLASH_F32, ROW_MASKED, 1.0, 1, 1, ADASPLASH_INIT_BRACKET};
    run_case(ctx, &c, rng, NULL);
  }
  row_case e = {2, 9, 1.5, ADASPLASH_F32, ROW_EMPTY, 1.0, 0, 0, ADASPLASH_INIT_HISTOGRAM};
  run_case(ctx, &e, rng, NULL);
  /* Long-row path: the context of main() splits rows longer than 64 columns. */
  row_case s = {2, 150, 1.5, ADASPLASH_F32, ROW_GAUSS, 1.0, 1, 1, ADASPLASH_INIT_HISTOGRAM};
  run_case(ctx, &s, rng, NULL);
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  int simulator = argc > 1 && strcmp(argv[1], "--oclgrind") == 0;
  adasplash_context_options opts;
  adasplash_context_options_init(&opts);
  if (simulator) opts.tune = "rows_seg_cols=64,rows_wg=32,rows_wg_bracket=1";
  adasplash_context *ctx = test_context(&opts);
  test_print_device(ctx);
  ref_rng rng;
  ref_rng_seed(&rng, 12345);
  if (simulator) {
    run_simulator_cases(ctx, &rng);
    adasplash_context_release(ctx);
    return test_finish("test_entmax_rows --oclgrind");
  }
  static const double alphas[] = {1.1, 1.25, 1.333, 1.5, 1.75, 2.0};
  static const size_t lens[] = {1, 2, 7, 64, 1000, 4097, 100000};
  static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_F16, ADASPLASH_BF16};
  int hist_sweeps[16] = {0}, bracket_sweeps[16] = {0};
  size_t nlens = quick ? 4 : sizeof lens / sizeof lens[0];
  for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; ++a)
    for (size_t l = 0; l < nlens; ++l)
      for (size_t d = 0; d < 3; ++d) {
        if (quick && d > 0 && l > 1) continue;
        row_case c = {lens[l] >= 4097 ? 2 : 5, lens[l], alphas[a], dtypes[d], ROW_GAUSS, 1.0, 0, 0,
                      ADASPLASH_INIT_HISTOGRAM};
        run_case(ctx, &c, &rng, dtypes[d] == ADASPLASH_F32 ? hist_sweeps : NULL);
      }
  /* Scales, special rows, per-row alpha, valid lengths, the bracket-only start. */
  static const double scales[] = {1e-3, 0.1, 10.0, 1e3, 1e4};
  for (size_t s = 0; s < sizeof scales / sizeof scales[0]; ++s)
    for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a += quick ? 3 : 1) {
      row_case c = {4,         777, alphas[a], ADASPLASH_F32,           ROW_GAUSS,
                    scales[s], 0,   0,         ADASPLASH_INIT_HISTOGRAM};
      run_case(ctx, &c, &rng, NULL);
    }
  for (int k = ROW_PEAKED; k <= ROW_NAN; ++k)
    for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a += quick ? 3 : 1) {
      row_case c = {3,   300, alphas[a], ADASPLASH_F32,           (row_kind)k,
                    1.0, 0,   0,         ADASPLASH_INIT_HISTOGRAM};
      run_case(ctx, &c, &rng, NULL);
    }
  {
    row_case c = {9, 513, 1.5, ADASPLASH_F32, ROW_GAUSS, 2.0, 1, 1, ADASPLASH_INIT_HISTOGRAM};
    run_case(ctx, &c, &rng, NULL);
    row_case c2 = {6, 70000, 1.5, ADASPLASH_BF16, ROW_MASKED, 1.0, 1, 1, ADASPLASH_INIT_HISTOGRAM};
    if (!quick) run_case(ctx, &c2, &rng, NULL);
  }
  for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; ++a) {
    row_case c = {5, 1000, alphas[a], ADASPLASH_F32, ROW_GAUSS, 1.0, 0, 0, ADASPLASH_INIT_BRACKET};
    run_case(ctx, &c, &rng, bracket_sweeps);
  }
  run_in_place_case(ctx, 300, &rng);
  if (!quick) run_in_place_case(ctx, 70000, &rng);
  printf("sweeps per row (fp32 gaussian rows, histogram start):");
  for (int i = 1; i < 16; ++i)
    if (hist_sweeps[i]) printf(" %d:%d", i, hist_sweeps[i]);
  printf("\nsweeps per row (bracket start):");
  for (int i = 1; i < 16; ++i)
    if (bracket_sweeps[i]) printf(" %d:%d", i, bracket_sweeps[i]);
  printf("\n");
  adasplash_context_release(ctx);
  return test_finish("test_entmax_rows");
}
