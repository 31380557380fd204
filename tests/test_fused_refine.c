/*
 * test_fused_refine.c - the forward's refinement fused into the output pass (tuning key attn_fuse,
 * cl/attn_fused.clh) against the separate refinement sweep on the same inputs (tracker issue 12):
 * three contexts on the same device, attn_fuse = 0 (separate), 1 (fused) and 2 (fused, but every
 * block gives up and the host's retry redoes it the separate way), fp32 storage, alpha 1.5 and 2.
 *
 * Both ways start from the same dense sweep and row start (the same bracket and t0) and finish
 * tau with the same exact step (asp_row_step) on the same scores; they differ only in the order
 * of their sums and, for the output, in the fused pass's expansion O = sum_k c_k e^k A_k around t0
 * (e = tau - t0, inside a bracket at most 1/bins wide: no cancellation). Each is within a few fp32
 * ulps of the row's scores of the exact tau, and the normalised outputs within a few ulps of
 * max |v| (|v| < 5 for these inputs), so the two agree within 1e-5 max(1, |value|): tau and the
 * training output (saved buffer) and the inference output (no saved buffer: other kernels,
 * attn_forward). Checked besides: the fused outputs are not all bitwise the separate ones (the
 * fused pass ran: a run that fell back everywhere would be), the retry's outputs agree as well
 * (the separate kernels again: bitwise in practice, within the same tolerance by the check), and
 * every way's bitmap covers every tile where the double reference has a nonzero probability.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "test_util.h"

#define AGREE_TOL 1e-5

/* One pair into the running worst |x - y| / (AGREE_TOL max(1, |y|)) (NaN: infinitely bad) and the
 * count of pairs that differ at all. */
static void agree_add(double x, double y, double *worst, size_t *differ) {
  const double e = fabs(x - y) / (AGREE_TOL * fmax(1.0, fabs(y)));
  *worst = fmax(*worst, isnan(e) ? INFINITY : e);
  *differ += x != y;
}

/* The worst ratio over n outputs, and how many differ. */
static double worst_ratio(const double *a, const double *b, size_t n, size_t *differ) {
  double w = 0.0;
  *differ = 0;
  for (size_t i = 0; i < n; ++i) agree_add(a[i], b[i], &w, differ);
  return w;
}

/* The same over n thresholds, where equal infinities (rows without a visible key) agree. */
static double worst_ratio_tau(const float *a, const float *b, size_t n, size_t *differ) {
  double w = 0.0;
  *differ = 0;
  for (size_t i = 0; i < n; ++i)
    if (!(isinf(a[i]) && a[i] == b[i])) agree_add((double)a[i], (double)b[i], &w, differ);
  return w;
}

/* Tiles of r's bitmap that hold a nonzero probability of the double reference (probs) but are
 * not active: the bitmap must be conservative whichever way finished tau. */
static size_t missing_tiles(const attn_problem *p, const double *probs, const attn_run *r) {
  const int B = p->c.batch, Hq = p->c.q_heads, Lq = p->c.q_len, Lk = p->c.kv_len;
  const int t = r->tile, nqb = (Lq + t - 1) / t, nkb = (Lk + t - 1) / t;
  size_t missing = 0;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < Lq; ++i) {
        const size_t row = ((size_t)b * Hq + h) * Lq + i;
        for (int j = 0; j < Lk; ++j)
          if (probs[row * (size_t)Lk + j] > 0.0)
            missing += !r->active[(((size_t)b * Hq + h) * nqb + i / t) * nkb + j / t];
      }
  return missing;
}

static void agree_case(adasplash_context *const ctx[3], attn_case c) {
  char label[256];
  attn_case_label(&c, label, sizeof label);
  attn_problem p[3];
  attn_run r[3];
  for (int w = 0; w < 3; ++w) {
    attn_problem_make(ctx[w], &c, &p[w]);
    memset(&r[w], 0, sizeof r[w]);
    attn_run_library(ctx[w], &p[w], NULL, 0, &r[w]);
  }
  const size_t rows = (size_t)c.batch * c.q_heads * c.q_len;
  double *probs = (double *)malloc(rows * (size_t)c.kv_len * sizeof(double));
  double *ref_out = (double *)malloc(p[0].q_n * sizeof(double));
  test_check(ref_attention_forward(&p[0].ref, p[0].q, p[0].k, p[0].v, ref_out, NULL, probs) == 0,
             "%s: the reference runs", label);
  static const char *const way[3] = {"separate", "fused", "fused with every block retried"};
  size_t differ_fused = 0;
  for (int w = 1; w < 3; ++w) {
    size_t d_out = 0, d_inf = 0, d_tau = 0;
    const double e_out = worst_ratio(r[w].out, r[0].out, p[0].q_n, &d_out);
    const double e_inf = worst_ratio(r[w].out_infer, r[0].out_infer, p[0].q_n, &d_inf);
    const double e_tau = worst_ratio_tau(r[w].tau, r[0].tau, rows, &d_tau);
    printf(
        "table: fused_refine way=%d %s out=%.3g infer=%.3g tau=%.3g (x 1e-5) differing "
        "%zu/%zu/%zu\n",
        w, label, e_out, e_inf, e_tau, d_out, d_inf, d_tau);
    test_check(e_out <= 1.0 && e_inf <= 1.0 && e_tau <= 1.0,
               "%s: %s agrees with the separate refinement within 1e-5 (worst out %.3g, "
               "inference out %.3g, tau %.3g x tol)",
               label, way[w], e_out, e_inf, e_tau);
    if (w == 1) differ_fused = d_out + d_inf + d_tau;
    test_check(r[w].tile == r[0].tile, "%s: %s keeps the separate way's tiles (%d vs %d)", label,
               way[w], r[w].tile, r[0].tile);
    if (r[w].tile == r[0].tile) {
      const size_t miss = missing_tiles(&p[0], probs, &r[w]);
      test_check(miss == 0, "%s: %s: every tile with support is active (%zu scores missed)", label,
                 way[w], miss);
    }
  }
  test_check(differ_fused > 0,
             "%s: the fused pass ran (its outputs are not all bitwise the separate ones)", label);
  free(probs), free(ref_out);
  for (int w = 0; w < 3; ++w) {
    attn_run_free(&r[w]);
    attn_problem_free(&p[w]);
  }
}

int main(void) {
  static const char *const fuse[3] = {"attn_fuse=0", "attn_fuse=1", "attn_fuse=2"};
  adasplash_context *ctx[3];
  char tune[3][512];
  for (int w = 0; w < 3; ++w) {
    adasplash_context_options opts;
    adasplash_context_options_init(&opts);
    /* The environment's tuning first, then the way under test (the later key wins). */
    const char *env = getenv("ADASPLASH_TUNE");
    snprintf(tune[w], sizeof tune[w], "%s%s%s", env && env[0] ? env : "", env && env[0] ? "," : "",
             fuse[w]);
    opts.tune = tune[w];
    ctx[w] = test_context(&opts);
  }
  test_print_device(ctx[0]);
  /* batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal, dtype, alpha, per_head_alpha,
   * varlen, bshd, scale, beta, alpha_grad, algorithm, seed */
  const attn_case base = {
      1, 2, 1, 200, 200, 64, 1, ADASPLASH_F32, 1.5, 0, 0, 0, 0.0, 0.0, 0, ADASPLASH_ATTN_ENTMAX, 7};
  for (int a = 0; a < 2; ++a)
    for (int causal = 0; causal < 2; ++causal)
      for (int loc = 0; loc < 2; ++loc) {
        attn_case c = base;
        c.alpha = a ? 2.0 : 1.5;
        c.causal = causal;
        c.beta = loc ? 2.0 : 0.0; /* locality inputs: sparse, most tiles skipped */
        c.seed = 11 + (unsigned long long)(4 * a + 2 * causal + loc);
        agree_case(ctx, c);
      }
  /* GQA with q_len != kv_len, a head dim that is not a multiple of 16 and alpha per head (1.5, 2,
   * 1.3, 1.75: the last two take the separate sweep inside the same call); varlen (bottom-right
   * causal per batch). */
  attn_case c = base;
  c.q_heads = 4;
  c.kv_heads = 2;
  c.q_len = 96;
  c.kv_len = 250;
  c.head_dim = 40;
  c.beta = 2.0;
  c.per_head_alpha = 1;
  agree_case(ctx, c);
  c = base;
  c.batch = 3;
  c.varlen = 1;
  c.q_len = c.kv_len = 150;
  c.alpha = 2.0;
  agree_case(ctx, c);
  for (int w = 0; w < 3; ++w) adasplash_context_release(ctx[w]);
  return test_finish("test_fused_refine");
}
