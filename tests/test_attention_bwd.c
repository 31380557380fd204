/*
 * test_attention_bwd.c - fused entmax attention backward (dQ, dK, dV, d(alpha)) against the
 * reference's analytic gradient (itself checked by central finite differences in
 * test_reference), over the forward's option matrix; a directional finite-difference check of
 * L = sum(w * O) through the library itself in fp32; and the two baselines' backward.
 *
 * Tolerances: fp32 |g - g_ref| <= 1e-4 * max(1, max |g_ref|) per tensor: the forward's solver
 * residual (1e-5 on sum p, normalised away) and fp32 sums of products over head_dim and over the
 * active keys (dP - delta cancels terms of size |dO||v| ~ sqrt(D)). 16-bit storage adds half an
 * ulp of the stored gradient (2^-11 |g| fp16, 2^-8 |g| bf16) plus the forward's output rounding
 * that delta = dO . out2 inherits (out2 is kept in fp32, so only dO's own rounding, which the
 * reference shares). d(alpha): 1e-3 relative to max(1, |d(alpha)_ref|) (sums over all rows).
 * Library finite differences: step 2e-3 along the gradient scaled to unit max-norm (curvature
 * error O(h^2), fp32 forward noise ~1e-6 absolute on L against a change of 2h |g|^2/max|g|), so
 * 2e-2 relative agreement.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "test_util.h"

static double unit(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

/* Slack on the first-order bound of rounding the products' factors (attn_rounding_magnitudes):
 * the bound leaves out second-order terms and the fp32 accumulation of the products. */
#define ROUNDING_SLACK 2.0

/* mag (may be NULL): u times it bounds the error of a path whose products round their factors
 * to the storage format (the NVIDIA tensor-core path). */
static double compare(const double *got, const double *ref, const double *mag, double u, size_t n,
                      adasplash_dtype dt, size_t *at) {
  double m = 1.0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(ref[i]));
  double worst = 0.0;
  *at = 0;
  for (size_t i = 0; i < n; ++i) {
    double tol = 1e-4 * m + unit(dt) * fabs(ref[i]) + (mag ? ROUNDING_SLACK * u * mag[i] : 0.0);
    double e = fabs(got[i] - ref[i]) / tol;
    if (!(e <= worst)) {
      worst = isnan(e) ? INFINITY : e;
      *at = i;
    }
  }
  return worst;
}

/* Softmax attention gradients in double, for the softmax flash baseline. */
static void host_softmax_backward(const attn_problem *p, const double *dout, double *dq, double *dk,
                                  double *dv) {
  const attn_case *c = &p->c;
  const int D = c->head_dim, G = c->q_heads / c->kv_heads;
  const double scale = p->ref.scale;
  double *pr = (double *)malloc((size_t)c->kv_len * sizeof(double));
  double *dp = (double *)malloc((size_t)c->kv_len * sizeof(double));
  memset(dq, 0, p->q_n * sizeof(double));
  memset(dk, 0, p->kv_n * sizeof(double));
  memset(dv, 0, p->kv_n * sizeof(double));
  for (int b = 0; b < c->batch; ++b) {
    int lq = p->q_lens ? p->q_lens[b] : c->q_len, lk = p->kv_lens ? p->kv_lens[b] : c->kv_len;
    for (int h = 0; h < c->q_heads; ++h)
      for (int i = 0; i < lq; ++i) {
        int nv = c->causal ? i + (lk - lq) + 1 : lk;
        if (nv > lk) nv = lk;
        if (nv <= 0) continue;
        const size_t qi = (((size_t)b * c->q_heads + h) * c->q_len + i) * D;
        const size_t kv0 = ((size_t)b * c->kv_heads + h / G) * c->kv_len;
        double m = -INFINITY, sum = 0, dsum = 0;
        for (int j = 0; j < nv; ++j) {
          double dot = 0, dd = 0;
          for (int d = 0; d < D; ++d) {
            dot += p->q[qi + d] * p->k[(kv0 + j) * D + d];
            dd += dout[qi + d] * p->v[(kv0 + j) * D + d];
          }
          pr[j] = dot * scale;
          dp[j] = dd;
          m = fmax(m, pr[j]);
        }
        for (int j = 0; j < nv; ++j) sum += (pr[j] = exp(pr[j] - m));
        for (int j = 0; j < nv; ++j) dsum += (pr[j] /= sum) * dp[j];
        for (int j = 0; j < nv; ++j) {
          const double ds = pr[j] * (dp[j] - dsum) * scale;
          for (int d = 0; d < D; ++d) {
            dq[qi + d] += ds * p->k[(kv0 + j) * D + d];
            dk[(kv0 + j) * D + d] += ds * p->q[qi + d];
            dv[(kv0 + j) * D + d] += pr[j] * dout[qi + d];
          }
        }
      }
  }
  free(pr);
  free(dp);
}

static int check_case(adasplash_context *ctx, attn_case c) {
  c = attn_case_dtype_override(c);
  attn_problem p;
  attn_problem_make(ctx, &c, &p);
  char label[256];
  attn_case_label(&c, label, sizeof label);
  ref_rng rng;
  ref_rng_seed(&rng, 99 + c.seed);
  double *dout = (double *)malloc(p.q_n * sizeof(double));
  for (size_t i = 0; i < p.q_n; ++i) dout[i] = test_round(ref_rng_normal(&rng), c.dtype);
  const int want_dalpha = c.alpha_grad && c.algorithm != ADASPLASH_ATTN_SOFTMAX_FLASH;
  attn_run r;
  attn_run_library(ctx, &p, dout, want_dalpha, &r);
  if (r.skipped) {
    free(dout);
    attn_problem_free(&p);
    return 1;
  }
  double *dq = (double *)calloc(p.q_n, sizeof(double));
  double *dk = (double *)calloc(p.kv_n, sizeof(double));
  double *dv = (double *)calloc(p.kv_n, sizeof(double));
  double *da = (double *)calloc((size_t)c.q_heads, sizeof(double));
  if (c.algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH)
    host_softmax_backward(&p, dout, dq, dk, dv);
  else if (ref_attention_backward(&p.ref, p.q, p.k, p.v, dout, dq, dk, dv, da) != 0) {
    printf("FAIL: %s: reference rejected the problem\n", label);
    exit(1);
  }
  /* Where the products round P, s, p ln p and dS to 16 bits, first-order bounds of what that adds
   * (the reference keeps everything in double). */
  double u = 0.0, *mdq = NULL, *mdk = NULL, *mdv = NULL, *mda = NULL;
  if (attn_products_round(ctx, &c, &u)) {
    const size_t rows = (size_t)c.batch * c.q_heads * c.q_len;
    double *probs = (double *)calloc(rows * (size_t)c.kv_len, sizeof(double));
    double *ro = (double *)calloc(p.q_n, sizeof(double));
    mdq = (double *)calloc(p.q_n, sizeof(double));
    mdk = (double *)calloc(p.kv_n, sizeof(double));
    mdv = (double *)calloc(p.kv_n, sizeof(double));
    mda = (double *)calloc((size_t)c.q_heads, sizeof(double));
    if (c.algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH)
      attn_softmax_probs(&p, probs);
    else
      ref_attention_forward(&p.ref, p.q, p.k, p.v, ro, NULL, probs);
    attn_rounding_magnitudes(&p, probs, dout, NULL, mdq, mdk, mdv, mda);
    free(probs);
    free(ro);
  }
  int ok = 1;
  size_t at;
  double w = compare(r.dq, dq, mdq, u, p.q_n, c.dtype, &at);
  ok &= test_check(w <= 1.0, "%s: dQ within tolerance (worst %.3g x tol at %zu: %.6g vs %.6g)",
                   label, w, at, r.dq[at], dq[at]);
  w = compare(r.dk, dk, mdk, u, p.kv_n, c.dtype, &at);
  ok &= test_check(w <= 1.0, "%s: dK within tolerance (worst %.3g x tol at %zu: %.6g vs %.6g)",
                   label, w, at, r.dk[at], dk[at]);
  w = compare(r.dv, dv, mdv, u, p.kv_n, c.dtype, &at);
  ok &= test_check(w <= 1.0, "%s: dV within tolerance (worst %.3g x tol at %zu: %.6g vs %.6g)",
                   label, w, at, r.dv[at], dv[at]);
  if (want_dalpha) {
    double worst = 0;
    for (int h = 0; h < c.q_heads; ++h)
      worst = fmax(worst, fabs(r.dalpha[h] - da[h]) / (1e-3 * fmax(1.0, fabs(da[h])) +
                                                       (mda ? ROUNDING_SLACK * u * mda[h] : 0.0)));
    ok &= test_check(worst <= 1.0,
                     "%s: d(alpha) within tolerance (worst %.3g x tol; head 0 %.6g "
                     "vs %.6g)",
                     label, worst, r.dalpha[0], da[0]);
  }
  free(dq), free(dk), free(dv), free(da), free(dout);
  free(mdq), free(mdk), free(mdv), free(mda);
  attn_run_free(&r);
  attn_problem_free(&p);
  return ok;
}

/* Directional finite difference of L = sum(w * O) through the library (fp32). */
static void check_library_fd(adasplash_context *ctx) {
  attn_case c = {
      1, 2, 1, 40, 50, 16, 1, ADASPLASH_F32, 1.5, 0, 0, 0, 0.0, 0.0, 0, ADASPLASH_ATTN_ENTMAX, 31};
  attn_problem p;
  attn_problem_make(ctx, &c, &p);
  ref_rng rng;
  ref_rng_seed(&rng, 5);
  double *w = (double *)malloc(p.q_n * sizeof(double));
  for (size_t i = 0; i < p.q_n; ++i) w[i] = ref_rng_normal(&rng);
  attn_run r;
  attn_run_library(ctx, &p, w, 0, &r);
  const char names[3] = {'q', 'k', 'v'};
  for (int t = 0; t < 3; ++t) {
    double *x = t == 0 ? p.q : (t == 1 ? p.k : p.v);
    const size_t n = t == 0 ? p.q_n : p.kv_n;
    const double *g = t == 0 ? r.dq : (t == 1 ? r.dk : r.dv);
    double *dir = (double *)malloc(n * sizeof(double));
    double *orig = (double *)malloc(n * sizeof(double));
    memcpy(orig, x, n * sizeof(double));
    /* Direction: the gradient itself scaled to unit max-norm, so the directional derivative is
     * large next to fp32 noise of the forward (a random direction nearly orthogonal to a small
     * gradient is dominated by curvature or noise). */
    double gmax = 1e-30, analytic = 0;
    for (size_t i = 0; i < n; ++i) gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < n; ++i) {
      dir[i] = g[i] / gmax;
      analytic += g[i] * dir[i];
    }
    const double h = 2e-3;
    double lp = 0, lm = 0;
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      for (size_t i = 0; i < n; ++i) x[i] = (double)(float)(orig[i] + sgn * h * dir[i]);
      attn_pack(&p, names[t], x, t == 0 ? p.q_host : (t == 1 ? p.k_host : p.v_host));
      attn_run rr;
      attn_run_library(ctx, &p, NULL, 0, &rr);
      double l = 0;
      for (size_t i = 0; i < p.q_n; ++i) l += w[i] * rr.out[i];
      if (sgn < 0)
        lm = l;
      else
        lp = l;
      attn_run_free(&rr);
    }
    /* The step is applied to fp32-rounded inputs: use the realised step. */
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
      double dp = (double)(float)(orig[i] + h * dir[i]) - (double)(float)(orig[i] - h * dir[i]);
      num += g[i] * dp;
      den += dp * dir[i];
    }
    (void)den;
    double fd = lp - lm;
    test_check(fabs(fd - num) <= 2e-2 * fmax(fabs(num), 1e-3),
               "library finite difference along the gradient in %c: %.6g vs analytic %.6g "
               "(grad . dir %.6g)",
               names[t], fd, num, analytic);
    memcpy(x, orig, n * sizeof(double));
    attn_pack(&p, names[t], x, t == 0 ? p.q_host : (t == 1 ? p.k_host : p.v_host));
    free(dir);
    free(orig);
  }
  free(w);
  attn_run_free(&r);
  attn_problem_free(&p);
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  int simulator = argc > 1 && strcmp(argv[1], "--oclgrind") == 0;
  adasplash_context_options opts;
  adasplash_context_options_init(&opts);
  /* The simulator's small tiles, then $ADASPLASH_TUNE (an options string replaces the variable,
   * and CTest picks the fused or split backward through it). */
  char tune[512];
  if (simulator)
    opts.tune = test_tune_with_env(tune, sizeof tune, "attn_tile=16,attn_wg=16,attn_dk=16");
  adasplash_context *ctx = test_context(&opts);
  test_print_device(ctx);
  const attn_case base = {
      1, 2, 1, 64, 64, 32, 1, ADASPLASH_F32, 1.5, 0, 0, 0, 0.0, 0.0, 1, ADASPLASH_ATTN_ENTMAX, 3};
  attn_case c;
  if (simulator) {
    /* Tiny cases for the simulator: every backward kernel, dtypes, GQA + varlen + per-head alpha,
     * both baselines. */
    static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_F16, ADASPLASH_BF16};
    for (size_t d = 0; d < 3; ++d) {
      c = base;
      c.q_len = 21;
      c.kv_len = 37;
      c.head_dim = 16;
      c.dtype = dtypes[d];
      c.causal = d != 1;
      check_case(ctx, c);
    }
    /* Scalar alphas with programs of their own on the NVIDIA path (2) and without (1.25). */
    c.dtype = ADASPLASH_F16;
    c.alpha = 2.0;
    check_case(ctx, c);
    c.alpha = 1.25;
    check_case(ctx, c);
    c.alpha = base.alpha;
    c.dtype = ADASPLASH_F32;
    c.batch = 3;
    c.varlen = 1;
    c.q_heads = 4;
    c.kv_heads = 2;
    c.per_head_alpha = 1;
    check_case(ctx, c);
    c.varlen = 0;
    c.batch = 1;
    c.per_head_alpha = 0;
    c.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
    check_case(ctx, c);
    c.algorithm = ADASPLASH_ATTN_ENTMAX_DENSE;
    check_case(ctx, c);
    adasplash_context_release(ctx);
    return test_finish("test_attention_bwd --oclgrind");
  }
  static const int lens[] = {1, 63, 65, 130};
  for (size_t l = 0; l < sizeof lens / sizeof lens[0]; ++l)
    for (int causal = 0; causal < 2; ++causal) {
      c = base;
      c.q_len = c.kv_len = lens[l];
      c.causal = causal;
      check_case(ctx, c);
    }
  const int qk[][2] = {{37, 130}, {130, 37}};
  for (size_t i = 0; i < 2; ++i)
    for (int causal = 0; causal < 2; ++causal) {
      c = base;
      c.q_len = qk[i][0];
      c.kv_len = qk[i][1];
      c.causal = causal;
      check_case(ctx, c);
    }
  for (int hk = 1; hk <= 4; hk *= 2) { /* GQA: kv_heads in {1, 2, q_heads} */
    c = base;
    c.q_heads = 4;
    c.kv_heads = hk;
    c.q_len = c.kv_len = 90;
    check_case(ctx, c);
  }
  c = base;
  c.batch = 3;
  c.varlen = 1;
  c.q_len = c.kv_len = 100;
  check_case(ctx, c);
  static const int dims[] = {16, 64, 96, 128, 256, 40};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i) {
    if (quick && dims[i] > 64) continue;
    c = base;
    c.head_dim = dims[i];
    c.q_len = c.kv_len = 70;
    check_case(ctx, c);
  }
  static const adasplash_dtype dtypes[] = {ADASPLASH_F16, ADASPLASH_BF16};
  for (size_t i = 0; i < 2; ++i) {
    c = base;
    c.dtype = dtypes[i];
    c.q_len = c.kv_len = 80;
    c.bshd = 1;
    c.batch = 2;
    check_case(ctx, c);
  }
  static const double alphas[] = {2.0, 1.25, 1.75};
  for (size_t i = 0; i < sizeof alphas / sizeof alphas[0]; ++i) {
    c = base;
    c.alpha = alphas[i];
    c.q_len = c.kv_len = 77;
    check_case(ctx, c);
  }
  c = base;
  c.per_head_alpha = 1;
  c.q_heads = 6;
  c.kv_heads = 3;
  c.varlen = 1;
  c.batch = 2;
  check_case(ctx, c);
  c = base;
  c.beta = 2.0;
  c.q_len = c.kv_len = quick ? 256 : 512;
  c.head_dim = 64;
  check_case(ctx, c);
  /* Baselines. */
  c = base;
  c.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  c.q_len = 70;
  c.kv_len = 100;
  c.q_heads = 4;
  c.kv_heads = 2;
  c.varlen = 1;
  c.batch = 3;
  check_case(ctx, c);
  c = base;
  c.algorithm = ADASPLASH_ATTN_ENTMAX_DENSE;
  c.q_len = 70;
  c.kv_len = 100;
  c.per_head_alpha = 1;
  c.q_heads = 4;
  c.kv_heads = 2;
  check_case(ctx, c);
  check_library_fd(ctx);
  adasplash_context_release(ctx);
  return test_finish("test_attention_bwd");
}
