/*
 * test_small_device.c - a simulated small device: the tuning override local_mem=32768,max_wg=256
 * (what a phone GPU or an old discrete card offers) makes the planners pick smaller tiles and
 * work-groups. Attention forward and backward (head dims 64, 128 and 256, fp32 and bf16, with the
 * alpha gradient) and the row operator (a short row and one too long for the local row cache)
 * must still succeed and match the double reference with the tolerances of the normal tests. Also
 * the same limits with launch parameters sized for a large GPU (tile 64, 256 work-items, 64-deep
 * staging, 64 bins), and a tiny device (8 KB, 64 work-items). Tolerances:
 *  - O: 1e-4 + half an ulp of the stored dtype (2^-8 |O| bf16);
 *  - dQ, dK, dV: 1e-4 max(1, max |g_ref|) + half an ulp; d(alpha): 1e-3 max(1, |d(alpha)_ref|);
 *  - rows: 2e-6 + 8 ulp of max |x| times c0; dx 1e-5 max(1, max |dx|) on the library's own y.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "test_util.h"

#define SMALL_LOCAL_MEM 32768
#define SMALL_MAX_WG 256

static double unit(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

static double worst_ratio(const double *got, const double *ref, size_t n, double abs_tol,
                          double rel_unit, size_t *at) {
  double w = 0;
  *at = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = fabs(got[i] - ref[i]) / (abs_tol + rel_unit * fabs(ref[i]));
    if (!(e <= w)) {
      w = isnan(e) ? INFINITY : e;
      *at = i;
    }
  }
  return w;
}

static double max_abs(const double *v, size_t n) {
  double m = 1.0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(v[i]));
  return m;
}

static void attention_case(adasplash_context *ctx, int head_dim, adasplash_dtype dtype,
                           int alpha_grad) {
  attn_case c = {1,   2, 1, 70, 70,  head_dim, 1,          dtype,
                 1.5, 0, 0, 0,  0.0, 0.0,      alpha_grad, ADASPLASH_ATTN_ENTMAX,
                 41};
  attn_problem p;
  attn_problem_make(ctx, &c, &p);
  char label[256];
  attn_case_label(&c, label, sizeof label);
  ref_rng rng;
  ref_rng_seed(&rng, 3);
  double *dout = (double *)malloc(p.q_n * sizeof(double));
  for (size_t i = 0; i < p.q_n; ++i) dout[i] = test_round(ref_rng_normal(&rng), dtype);
  /* attn_run_library exits with a FAIL line naming the call and status if one fails. */
  attn_run r;
  attn_run_library(ctx, &p, dout, alpha_grad, &r);
  double *out = (double *)malloc(p.q_n * sizeof(double));
  double *dq = (double *)malloc(p.q_n * sizeof(double));
  double *dk = (double *)malloc(p.kv_n * sizeof(double));
  double *dv = (double *)malloc(p.kv_n * sizeof(double));
  double da[2] = {0, 0};
  ref_attention_forward(&p.ref, p.q, p.k, p.v, out, NULL, NULL);
  ref_attention_backward(&p.ref, p.q, p.k, p.v, dout, dq, dk, dv, da);
  size_t at;
  double w = worst_ratio(r.out, out, p.q_n, 1e-4, unit(dtype), &at);
  test_check(w <= 1.0, "%s: O within tolerance (worst %.3g x tol; tile %d)", label, w, r.tile);
  w = worst_ratio(r.dq, dq, p.q_n, 1e-4 * max_abs(dq, p.q_n), unit(dtype), &at);
  test_check(w <= 1.0, "%s: dQ within tolerance (worst %.3g x tol)", label, w);
  w = worst_ratio(r.dk, dk, p.kv_n, 1e-4 * max_abs(dk, p.kv_n), unit(dtype), &at);
  test_check(w <= 1.0, "%s: dK within tolerance (worst %.3g x tol)", label, w);
  w = worst_ratio(r.dv, dv, p.kv_n, 1e-4 * max_abs(dv, p.kv_n), unit(dtype), &at);
  test_check(w <= 1.0, "%s: dV within tolerance (worst %.3g x tol)", label, w);
  if (alpha_grad)
    for (int h = 0; h < c.q_heads; ++h)
      test_check(fabs(r.dalpha[h] - da[h]) <= 1e-3 * fmax(1.0, fabs(da[h])),
                 "%s: d(alpha) head %d: %.6g vs %.6g", label, h, r.dalpha[h], da[h]);
  test_check(r.stats.converged, "%s: converged (residual %.3g)", label, r.stats.max_residual);
  printf("  %s: tile %d\n", label, r.tile);
  free(dout), free(out), free(dq), free(dk), free(dv);
  attn_run_free(&r);
  attn_problem_free(&p);
}

static void rows_case(adasplash_context *ctx, size_t rows, size_t cols, double alpha) {
  const size_t n = rows * cols;
  float *x = (float *)malloc(n * sizeof(float)), *y = (float *)malloc(n * sizeof(float));
  float *dy = (float *)malloc(n * sizeof(float)), *dx = (float *)malloc(n * sizeof(float));
  double *z = (double *)malloc(cols * sizeof(double)), *p = (double *)malloc(cols * sizeof(double));
  double *g = (double *)malloc(cols * sizeof(double)),
         *dz = (double *)malloc(cols * sizeof(double));
  ref_rng rng;
  ref_rng_seed(&rng, 17);
  for (size_t i = 0; i < n; ++i) {
    x[i] = (float)(2.0 * ref_rng_normal(&rng));
    dy[i] = (float)ref_rng_normal(&rng);
  }
  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.rows = rows;
  d.cols = cols;
  d.alpha = (float)alpha;
  char label[96];
  snprintf(label, sizeof label, "rows %zux%zu alpha=%.2g", rows, cols, alpha);
  test_require(ctx, adasplash_entmax_forward_host(ctx, &d, x, y, NULL, NULL, NULL), label);
  test_require(ctx, adasplash_entmax_backward_host(ctx, &d, y, dy, dx, NULL, NULL, NULL), label);
  const double a1 = (double)(float)alpha - 1.0;
  double wy = 0, wdx = 0;
  for (size_t r = 0; r < rows; ++r) {
    double xmax = 0, dmax = 1.0;
    for (size_t j = 0; j < cols; ++j) {
      z[j] = x[r * cols + j];
      xmax = fmax(xmax, fabs(a1 * z[j]));
    }
    ref_entmax_row(z, NULL, cols, (double)(float)alpha, p);
    const double atol = 2e-6 + 8.0 * ldexp(xmax, -24) / a1;
    for (size_t j = 0; j < cols; ++j) {
      wy = fmax(wy, fabs(y[r * cols + j] - p[j]) / atol);
      z[j] = y[r * cols + j];
      g[j] = dy[r * cols + j];
    }
    ref_entmax_row_backward(z, g, cols, (double)(float)alpha, dz, NULL);
    for (size_t j = 0; j < cols; ++j) dmax = fmax(dmax, fabs(dz[j]));
    for (size_t j = 0; j < cols; ++j)
      wdx = fmax(wdx, fabs(dx[r * cols + j] - dz[j]) / (1e-5 * dmax));
  }
  test_check(wy <= 1.0, "%s: y within tolerance (worst %.3g x tol)", label, wy);
  test_check(wdx <= 1.0, "%s: dx within tolerance (worst %.3g x tol)", label, wdx);
  free(x), free(y), free(dy), free(dx), free(z), free(p), free(g), free(dz);
}

static void run_config(const char *tune, unsigned long local_mem, size_t max_wg) {
  printf("tuning override \"%s\"\n", tune);
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.tune = tune;
  adasplash_context *ctx = test_context(&o);
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  test_require(ctx, adasplash_context_get_device_info(ctx, &info), "get_device_info");
  test_check(info.local_mem_size == local_mem && info.max_work_group_size == max_wg,
             "%s: the context plans with local_mem %lu, max_wg %zu", tune,
             (unsigned long)info.local_mem_size, info.max_work_group_size);
  attention_case(ctx, 64, ADASPLASH_F32, 0);
  attention_case(ctx, 128, ADASPLASH_F32, 1);
  attention_case(ctx, 128, ADASPLASH_BF16, 0);
  attention_case(ctx, 256, ADASPLASH_F32, 1);
  rows_case(ctx, 6, 300, 1.5);
  rows_case(ctx, 3, 9000, 1.3); /* 36 KB of fp32: more than the simulated local memory */
  adasplash_context_release(ctx);
}

int main(int argc, char **argv) {
  if (argc > 1) { /* development: any override, e.g. "local_mem=8192,max_wg=64" */
    run_config(argv[1], strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
    return test_finish("test_small_device");
  }
  adasplash_context *probe = test_context(NULL);
  test_print_device(probe);
  adasplash_context_release(probe);
  run_config("local_mem=32768,max_wg=256", SMALL_LOCAL_MEM, SMALL_MAX_WG);
  /* The same limits under launch parameters sized for a large GPU: the planner must shrink the
   * staging depth, bins and candidate lists (or the tile) to fit. */
  run_config("attn_tile=64,attn_wg=256,attn_dk=64,attn_bins=64,local_mem=32768,max_wg=256",
             SMALL_LOCAL_MEM, SMALL_MAX_WG);
  /* A tiny device: 8 KB and 64 work-items leave no room for 32-query tiles. */
  run_config("local_mem=8192,max_wg=64", 8192, 64);
  return test_finish("test_small_device");
}
