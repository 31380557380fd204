/* test_reference.c - Self test of the double-precision reference (devtools/reference.c).
 *
 * Checks the sort paths against bisection, normalisation and edge cases of row entmax, row and
 * attention gradients against central finite differences, f16/bf16 rounding (spot checks plus an
 * exhaustive round trip), block sparsity, the PRNG, and prints timings for large problems.
 * Returns 0 when every check passes, 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reference.h"

static int g_checks = 0;
static int g_failed = 0;

/* One summary line per check: worst error seen against its tolerance. */
static void report(const char *name, double worst, double tol) {
  int ok = worst <= tol; /* false for NaN */
  ++g_checks;
  if (!ok) ++g_failed;
  printf("%s  %-58s worst %.3e  (tol %.1e)\n", ok ? "PASS" : "FAIL", name, worst, tol);
}

/* Boolean check with a count of failing cases. */
static void report_count(const char *name, int bad, int total) {
  ++g_checks;
  if (bad != 0) ++g_failed;
  printf("%s  %-58s %d/%d cases failed\n", bad == 0 ? "PASS" : "FAIL", name, bad, total);
}

static double now_s(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double *alloc_d(size_t n) {
  double *p = (double *)calloc(n > 0 ? n : 1, sizeof(double));
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

static unsigned char *alloc_u8(size_t n) {
  unsigned char *p = (unsigned char *)calloc(n > 0 ? n : 1, 1);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

static double maxd(double a, double b) {
  return a > b ? a : b;
}

/* Random row: scale * normal; quantized rows (ties) when `ties`; mask about 30% when `masked`
   (always keeping at least one valid entry), with a few -inf entries mixed in. */
static void random_row(ref_rng *r, size_t n, double scale, int ties, int masked, double *z,
                       unsigned char *mask) {
  size_t j;
  for (j = 0; j < n; ++j) {
    double g = ref_rng_normal(r);
    if (ties) g = floor(2.0 * g + 0.5) / 2.0;
    z[j] = scale * g;
    mask[j] = 1;
    if (masked && ref_rng_uniform(r) < 0.3) mask[j] = 0;
    if (masked && mask[j] && ref_rng_uniform(r) < 0.05) z[j] = -INFINITY;
  }
  if (masked) {
    mask[0] = 1;
    z[0] = scale * ref_rng_normal(r);
  }
}

/* ------------------------------------------------------------------------------------------ */

static void check_sort_vs_bisect(void) {
  static const double alphas[] = {1.5, 2.0};
  static const size_t lens[] = {1, 2, 7, 64, 1000};
  static const double scales[] = {1e-3, 1.0, 30.0};
  ref_rng r;
  double worst_tau = 0.0, worst_p = 0.0;
  double *z = alloc_d(1000), *p1 = alloc_d(1000), *p2 = alloc_d(1000);
  unsigned char *mask = alloc_u8(1000);
  size_t a, l, s, j;
  int trial;
  ref_rng_seed(&r, 1);
  for (a = 0; a < 2; ++a) {
    for (l = 0; l < 5; ++l) {
      for (s = 0; s < 3; ++s) {
        for (trial = 0; trial < 6; ++trial) {
          size_t n = lens[l];
          double t1, t2;
          random_row(&r, n, scales[s], trial % 3 == 1, trial >= 3, z, mask);
          t1 = ref_entmax_row(z, trial >= 3 ? mask : NULL, n, alphas[a], p1);
          t2 = ref_entmax_row_bisect(z, trial >= 3 ? mask : NULL, n, alphas[a], p2);
          worst_tau = maxd(worst_tau, fabs(t1 - t2) / maxd(1.0, fabs(t1)));
          if (isnan(t1) || isnan(t2)) worst_tau = NAN;
          for (j = 0; j < n; ++j) {
            double d = fabs(p1[j] - p2[j]);
            worst_p = d > worst_p || isnan(d) ? d : worst_p;
          }
        }
      }
    }
  }
  report("1. sort vs bisection: tau (relative)", worst_tau, 1e-12);
  report("1. sort vs bisection: p", worst_p, 1e-12);
  free(z);
  free(p1);
  free(p2);
  free(mask);
}

/* Sum, sign and mask checks on random rows; returns worst |sum - 1| and counts bad cases. */
static void check_normalisation(void) {
  static const double alphas[] = {1.1, 1.25, 1.333, 1.5, 1.75, 2.0};
  static const size_t lens[] = {1, 3, 50, 1000, 100000};
  static const double scales[] = {0.1, 1.0, 30.0};
  const size_t nmax = 100000;
  ref_rng r;
  double worst_sum = 0.0, worst_shift = 0.0;
  int bad = 0, total = 0;
  double *z = alloc_d(nmax), *p = alloc_d(nmax), *p2 = alloc_d(nmax);
  unsigned char *mask = alloc_u8(nmax);
  size_t a, l, s, j;
  int m;
  ref_rng_seed(&r, 2);
  for (a = 0; a < 6; ++a) {
    for (l = 0; l < 5; ++l) {
      for (s = 0; s < 3; ++s) {
        for (m = 0; m < 2; ++m) {
          size_t n = lens[l];
          double sum = 0.0, tau;
          int ok = 1;
          random_row(&r, n, scales[s], 0, m, z, mask);
          tau = ref_entmax_row(z, m ? mask : NULL, n, alphas[a], p);
          for (j = 0; j < n; ++j) {
            sum += p[j];
            if (!(p[j] >= 0.0)) ok = 0;
            if ((m && !mask[j]) || z[j] == -INFINITY) {
              if (p[j] != 0.0) ok = 0;
            }
          }
          if (!isfinite(tau)) ok = 0;
          worst_sum = maxd(worst_sum, fabs(sum - 1.0));
          if (isnan(sum)) worst_sum = NAN;
          bad += !ok;
          ++total;
          if (n <= 1000) { /* shift invariance: p(z + c) = p(z) */
            for (j = 0; j < n; ++j) p2[j] = z[j] + 7.0;
            (void)ref_entmax_row(p2, m ? mask : NULL, n, alphas[a], p2);
            for (j = 0; j < n; ++j) worst_shift = maxd(worst_shift, fabs(p2[j] - p[j]));
          }
        }
      }
    }
  }
  report("2. sum p = 1 (6 alphas, n up to 100000)", worst_sum, 1e-12);
  report_count("2. p >= 0, masked/-inf entries 0, tau finite", bad, total);
  report("2. shift invariance p(z+7) vs p(z)", worst_shift, 1e-12);
  free(z);
  free(p);
  free(p2);
  free(mask);
}

static void check_edge_cases(void) {
  static const double alphas[] = {1.1, 1.25, 1.333, 1.5, 1.75, 2.0};
  int bad = 0, total = 0, path;
  double worst = 0.0;
  size_t a, j;
  for (path = 0; path < 2; ++path) {
    for (a = 0; a < 6; ++a) {
      double (*fn)(const double *, const unsigned char *, size_t, double, double *) =
          path == 0 ? ref_entmax_row : ref_entmax_row_bisect;
      double al = alphas[a];
      double z[6], p[6], t;
      unsigned char mask[6] = {0, 0, 0, 0, 0, 0};
      int ok;
      /* all masked */
      z[0] = 1.0, z[1] = 2.0, z[2] = 3.0;
      t = fn(z, mask, 3, al, p);
      ok = t == INFINITY && p[0] == 0.0 && p[1] == 0.0 && p[2] == 0.0;
      bad += !ok, ++total;
      /* empty row and all -inf row */
      t = fn(z, NULL, 0, al, p);
      bad += t != INFINITY, ++total;
      z[0] = z[1] = -INFINITY;
      t = fn(z, NULL, 2, al, p);
      bad += !(t == INFINITY && p[0] == 0.0 && p[1] == 0.0), ++total;
      /* NaN and +inf in a valid entry; masked entry stays 0 */
      z[0] = 1.0, z[1] = NAN, z[2] = 0.5;
      mask[0] = 1, mask[1] = 1, mask[2] = 0;
      t = fn(z, mask, 3, al, p);
      bad += !(isnan(t) && isnan(p[0]) && isnan(p[1]) && p[2] == 0.0), ++total;
      z[1] = INFINITY;
      t = fn(z, mask, 3, al, p);
      bad += !(isnan(t) && isnan(p[0]) && isnan(p[1]) && p[2] == 0.0), ++total;
      /* NaN in a masked entry is ignored */
      z[0] = 1.0, z[1] = 0.0, z[2] = NAN;
      t = fn(z, mask, 3, al, p);
      bad += !(isfinite(t) && p[2] == 0.0 && fabs(p[0] + p[1] - 1.0) <= 1e-15), ++total;
      /* single valid column */
      z[0] = -3.0, z[1] = 42.0, z[2] = 5.0;
      mask[0] = 0, mask[1] = 1, mask[2] = 0;
      t = fn(z, mask, 3, al, p);
      ok = p[0] == 0.0 && p[1] == 1.0 && p[2] == 0.0 && fabs(t - ((al - 1.0) * 42.0 - 1.0)) < 1e-13;
      bad += !ok, ++total;
      /* all-equal row: uniform */
      for (j = 0; j < 5; ++j) z[j] = 0.75;
      (void)fn(z, NULL, 5, al, p);
      for (j = 0; j < 5; ++j) worst = maxd(worst, fabs(p[j] - 0.2));
      /* ties at the max */
      z[0] = 2.0, z[1] = -1.0, z[2] = 2.0, z[3] = 0.5, z[4] = 2.0 - 1e-9;
      (void)fn(z, NULL, 5, al, p);
      bad += !(p[0] == p[2] && p[0] > p[4] && p[4] > 0.0), ++total;
      worst = maxd(worst, fabs(p[0] + p[1] + p[2] + p[3] + p[4] - 1.0));
      /* invalid alpha */
      t = fn(z, NULL, 5, 1.0, p);
      bad += !(isnan(t) && isnan(p[0])), ++total;
    }
  }
  /* known values */
  {
    double z[3] = {1.0, 0.5, -1.0}, p[3], t;
    double tk = 0.25 - sqrt(0.4375);
    t = ref_entmax_row(z, NULL, 3, 2.0, p);
    worst = maxd(worst, fabs(t - 0.25));
    worst = maxd(worst, maxd(fabs(p[0] - 0.75), maxd(fabs(p[1] - 0.25), fabs(p[2]))));
    z[0] = 1.0, z[1] = 0.0, z[2] = -1.0;
    t = ref_entmax_row(z, NULL, 3, 1.5, p);
    worst = maxd(worst, fabs(t - tk));
    worst = maxd(worst, fabs(p[0] - (0.5 - tk) * (0.5 - tk)));
    worst = maxd(worst, maxd(fabs(p[1] - tk * tk), fabs(p[2])));
  }
  report_count("2. edge cases (masked/empty/NaN/inf/single/ties/alpha)", bad, total);
  report("2. uniform row, ties sum, known sparsemax/1.5 values", worst, 1e-14);
}

/* ------------------------------------------------------------------------------------------ */

static double row_loss(const double *z, const unsigned char *mask, size_t n, double alpha,
                       const double *w, double *pbuf) {
  double s = 0.0;
  size_t j;
  (void)ref_entmax_row(z, mask, n, alpha, pbuf);
  for (j = 0; j < n; ++j) s += w[j] * pbuf[j];
  return s;
}

/* d/dalpha by central differences, or a second-order one-sided stencil when alpha + h > 2. */
static double alpha_fd(double (*f)(void *, double), void *ctx, double alpha, double h) {
  if (alpha + h <= 2.0) return (f(ctx, alpha + h) - f(ctx, alpha - h)) / (2.0 * h);
  return (3.0 * f(ctx, alpha) - 4.0 * f(ctx, alpha - h) + f(ctx, alpha - 2.0 * h)) / (2.0 * h);
}

typedef struct row_ctx {
  const double *z, *w;
  const unsigned char *mask;
  size_t n;
  double *pbuf;
} row_ctx;

static double row_loss_alpha(void *c, double alpha) {
  row_ctx *rc = (row_ctx *)c;
  return row_loss(rc->z, rc->mask, rc->n, alpha, rc->w, rc->pbuf);
}

static void check_row_backward(void) {
  static const double alphas[] = {1.25, 1.5, 1.8, 2.0};
  static const size_t lens[] = {5, 12, 40};
  ref_rng r;
  double worst_dz = 0.0, worst_da = 0.0;
  double z[40], w[40], p[40], dz[40], pb[40];
  unsigned char mask[40];
  size_t a, l, j;
  int trial, rejected = 0;
  ref_rng_seed(&r, 3);
  for (a = 0; a < 4; ++a) {
    for (l = 0; l < 3; ++l) {
      for (trial = 0; trial < 4; ++trial) {
        size_t n = lens[l];
        double al = alphas[a], tau, da, gnorm = 0.0, dnorm;
        int masked = trial >= 2, smooth;
        row_ctx rc;
        do { /* draw until no valid x_j is within 1e-4 of tau */
          random_row(&r, n, 1.0 + 2.0 * ref_rng_uniform(&r), 0, masked, z, mask);
          tau = ref_entmax_row(z, masked ? mask : NULL, n, al, p);
          smooth = 1;
          for (j = 0; j < n; ++j) {
            if ((!masked || mask[j]) && z[j] != -INFINITY && fabs((al - 1.0) * z[j] - tau) < 1e-4) {
              smooth = 0;
            }
          }
          rejected += !smooth;
        } while (!smooth);
        for (j = 0; j < n; ++j) w[j] = ref_rng_normal(&r);
        ref_entmax_row_backward(p, w, n, al, dz, &da);
        for (j = 0; j < n; ++j) gnorm = maxd(gnorm, fabs(dz[j]));
        dnorm = maxd(gnorm, 1e-3);
        for (j = 0; j < n; ++j) {
          double h, zj = z[j], lp, lm, fd;
          if (z[j] == -INFINITY) continue;
          h = 1e-6 * maxd(1.0, fabs(zj));
          z[j] = zj + h;
          lp = row_loss(z, masked ? mask : NULL, n, al, w, pb);
          z[j] = zj - h;
          lm = row_loss(z, masked ? mask : NULL, n, al, w, pb);
          z[j] = zj;
          fd = (lp - lm) / (2.0 * h);
          worst_dz = maxd(worst_dz, fabs(fd - dz[j]) / dnorm);
        }
        rc.z = z, rc.w = w, rc.mask = masked ? mask : NULL, rc.n = n, rc.pbuf = pb;
        {
          double fd = alpha_fd(row_loss_alpha, &rc, al, 1e-6);
          worst_da = maxd(worst_da, fabs(fd - da) / maxd(fabs(da), 1e-3));
        }
      }
    }
  }
  printf("      (row FD: %d draws rejected as non-smooth)\n", rejected);
  report("3. row backward dz vs FD (alpha 1.25/1.5/1.8/2)", worst_dz, 1e-6);
  report("3. row backward dalpha vs FD (one-sided at 2)", worst_da, 1e-6);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct attn_case {
  int batch, hq, hkv, lq, lk, d, causal;
  const int *q_lens, *kv_lens;
  int alpha_offset;
} attn_case;

typedef struct attn_ctx {
  ref_attention_problem pr;
  double *alpha;
  double *q, *k, *v, *w, *out;
  size_t nq, nkv;
} attn_ctx;

static double attn_loss(attn_ctx *c) {
  double s = 0.0;
  size_t t;
  if (ref_attention_forward(&c->pr, c->q, c->k, c->v, c->out, NULL, NULL) != 0) return NAN;
  for (t = 0; t < c->nq; ++t) s += c->w[t] * c->out[t];
  return s;
}

static double attn_loss_alpha_h(void *vc, double alpha) {
  attn_ctx *c = (attn_ctx *)vc;
  int h = (int)c->alpha[c->pr.q_heads]; /* head index stashed after the last alpha */
  double keep = c->alpha[h], l;
  c->alpha[h] = alpha;
  l = attn_loss(c);
  c->alpha[h] = keep;
  return l;
}

/* Minimum distance |x_ij - tau_i| over visible pairs of all rows with a visible key. */
static double attn_min_gap(attn_ctx *c, double *tau) {
  const ref_attention_problem *pr = &c->pr;
  double scale = pr->scale != 0.0 ? pr->scale : 1.0 / sqrt((double)pr->head_dim);
  double gap = INFINITY;
  int b, h, i, j, t, d = pr->head_dim;
  (void)ref_attention_forward(pr, c->q, c->k, c->v, c->out, tau, NULL);
  for (b = 0; b < pr->batch; ++b) {
    for (h = 0; h < pr->q_heads; ++h) {
      int kvh = h / (pr->q_heads / pr->kv_heads);
      int lq = pr->q_lens ? pr->q_lens[b] : pr->q_len;
      int lk = pr->kv_lens ? pr->kv_lens[b] : pr->kv_len;
      for (i = 0; i < lq; ++i) {
        double ti = tau[((size_t)b * pr->q_heads + h) * pr->q_len + i];
        for (j = 0; j < lk; ++j) {
          double s = 0.0;
          if (pr->causal && j > i + (lk - lq)) continue;
          for (t = 0; t < d; ++t) {
            s += c->q[(((size_t)b * pr->q_heads + h) * pr->q_len + i) * d + t] *
                 c->k[(((size_t)b * pr->kv_heads + kvh) * pr->kv_len + j) * d + t];
          }
          gap = fmin(gap, fabs((pr->alpha[h] - 1.0) * scale * s - ti));
        }
      }
    }
  }
  return gap;
}

/* FD check of one tensor; returns max |fd - an| / (||an||_inf) with a floor. */
static double fd_tensor(attn_ctx *c, double *x, size_t n, const double *an) {
  double worst = 0.0, norm = 0.0;
  size_t t;
  for (t = 0; t < n; ++t) norm = maxd(norm, fabs(an[t]));
  norm = maxd(norm, 1e-4);
  for (t = 0; t < n; ++t) {
    double keep = x[t], h = 1e-6 * maxd(1.0, fabs(keep)), lp, lm, fd;
    x[t] = keep + h;
    lp = attn_loss(c);
    x[t] = keep - h;
    lm = attn_loss(c);
    x[t] = keep;
    fd = (lp - lm) / (2.0 * h);
    worst = maxd(worst, fabs(fd - an[t]) / norm);
    if (isnan(fd) || isnan(an[t])) worst = NAN;
  }
  return worst;
}

static void check_attention_backward(void) {
  static const double alpha_vals[] = {1.5, 1.3, 2.0, 1.7};
  static const int ql2[] = {6, 4}, kl2[] = {5, 6};
  static const int ql4[] = {6, 3}, kl4[] = {4, 2};
  const attn_case cases[] = {
      {1, 2, 1, 5, 7, 4, 1, NULL, NULL, 0},
      {2, 2, 2, 6, 6, 3, 0, ql2, kl2, 2},
      {1, 4, 2, 3, 9, 5, 1, NULL, NULL, 0},
      {2, 2, 1, 6, 4, 3, 1, ql4, kl4, 1}, /* Lq > Lk causal: rows with no visible key */
  };
  double worst[4] = {0.0, 0.0, 0.0, 0.0};
  int bad_zero = 0, nrows = 0;
  size_t ci;
  ref_rng r;
  ref_rng_seed(&r, 4);
  for (ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
    const attn_case *cs = &cases[ci];
    attn_ctx c;
    double *dq, *dk, *dv, *da, *tau, gap;
    size_t t;
    int h, b, i, tries = 0;
    c.pr.batch = cs->batch, c.pr.q_heads = cs->hq, c.pr.kv_heads = cs->hkv;
    c.pr.q_len = cs->lq, c.pr.kv_len = cs->lk, c.pr.head_dim = cs->d, c.pr.causal = cs->causal;
    c.pr.q_lens = cs->q_lens, c.pr.kv_lens = cs->kv_lens, c.pr.scale = ci == 2 ? 0.7 : 0.0;
    c.alpha = alloc_d((size_t)cs->hq + 1);
    for (h = 0; h < cs->hq; ++h) c.alpha[h] = alpha_vals[(h + cs->alpha_offset) % 4];
    c.pr.alpha = c.alpha;
    c.nq = (size_t)cs->batch * cs->hq * cs->lq * cs->d;
    c.nkv = (size_t)cs->batch * cs->hkv * cs->lk * cs->d;
    c.q = alloc_d(c.nq), c.w = alloc_d(c.nq), c.out = alloc_d(c.nq), dq = alloc_d(c.nq);
    c.k = alloc_d(c.nkv), c.v = alloc_d(c.nkv), dk = alloc_d(c.nkv), dv = alloc_d(c.nkv);
    da = alloc_d((size_t)cs->hq);
    tau = alloc_d((size_t)cs->batch * cs->hq * cs->lq);
    do {
      for (t = 0; t < c.nq; ++t) c.q[t] = 1.5 * ref_rng_normal(&r), c.w[t] = ref_rng_normal(&r);
      for (t = 0; t < c.nkv; ++t) c.k[t] = 1.5 * ref_rng_normal(&r), c.v[t] = ref_rng_normal(&r);
      gap = attn_min_gap(&c, tau);
      ++tries;
    } while (gap < 1e-4 && tries < 100);
    if (ref_attention_backward(&c.pr, c.q, c.k, c.v, c.w, dq, dk, dv, da) != 0) {
      worst[0] = NAN;
    }
    worst[0] = maxd(worst[0], fd_tensor(&c, c.q, c.nq, dq));
    worst[1] = maxd(worst[1], fd_tensor(&c, c.k, c.nkv, dk));
    worst[2] = maxd(worst[2], fd_tensor(&c, c.v, c.nkv, dv));
    {
      double norm = 0.0;
      for (h = 0; h < cs->hq; ++h) norm = maxd(norm, fabs(da[h]));
      norm = maxd(norm, 1e-4);
      for (h = 0; h < cs->hq; ++h) {
        double fd;
        c.alpha[cs->hq] = (double)h;
        fd = alpha_fd(attn_loss_alpha_h, &c, c.alpha[h], 1e-6);
        worst[3] = maxd(worst[3], fabs(fd - da[h]) / norm);
      }
    }
    /* rows with no visible key: out = 0, tau = +inf, dq = 0 */
    (void)ref_attention_forward(&c.pr, c.q, c.k, c.v, c.out, tau, NULL);
    for (b = 0; b < cs->batch; ++b) {
      for (h = 0; h < cs->hq; ++h) {
        int lq = cs->q_lens ? cs->q_lens[b] : cs->lq, lk = cs->kv_lens ? cs->kv_lens[b] : cs->lk;
        for (i = 0; i < cs->lq; ++i) {
          size_t row = ((size_t)b * cs->hq + h) * cs->lq + i;
          int none;
          ++nrows;
          none = i >= lq || lk == 0 || (cs->causal && i + (lk - lq) < 0);
          if (none) {
            int d;
            if (tau[row] != INFINITY) ++bad_zero;
            for (d = 0; d < cs->d; ++d) {
              if (c.out[row * cs->d + d] != 0.0 || dq[row * cs->d + d] != 0.0) ++bad_zero;
            }
          } else if (!isfinite(tau[row])) {
            ++bad_zero;
          }
        }
      }
    }
    printf("      (attention case %d: min |x - tau| = %.2e after %d draws)\n", (int)ci + 1, gap,
           tries);
    free(c.alpha), free(c.q), free(c.w), free(c.out), free(dq);
    free(c.k), free(c.v), free(dk), free(dv), free(da), free(tau);
  }
  report("4. attention dq vs FD (relative to ||dq||_inf)", worst[0], 1e-5);
  report("4. attention dk vs FD (relative to ||dk||_inf)", worst[1], 1e-5);
  report("4. attention dv vs FD (relative to ||dv||_inf)", worst[2], 1e-5);
  report("4. attention dalpha vs FD (one-sided at alpha 2)", worst[3], 1e-5);
  report_count("4. rows without visible keys: out 0, tau inf, dq 0", bad_zero, nrows);
}

/* Forward semantics against an independent gather of the visible logits per row. */
static void check_attention_forward(void) {
  static const double alphas[] = {1.5, 2.0, 1.2, 1.8, 1.6, 1.4};
  static const int ql[] = {7, 2, 0}, kl[] = {5, 9, 3};
  ref_attention_problem pr;
  ref_rng r;
  int B = 3, Hq = 6, Hkv = 2, Lq = 7, Lk = 9, D = 8, b, h, i, j, t, causal;
  size_t nq = (size_t)B * Hq * Lq * D, nkv = (size_t)B * Hkv * Lk * D;
  double *q = alloc_d(nq), *k = alloc_d(nkv), *v = alloc_d(nkv), *out = alloc_d(nq);
  double *out2 = alloc_d(nq), *tau = alloc_d((size_t)B * Hq * Lq);
  double *p = alloc_d((size_t)B * Hq * Lq * Lk);
  double zc[9], pc[9], worst = 0.0;
  int bad = 0;
  ref_rng_seed(&r, 5);
  for (t = 0; t < (int)nq; ++t) q[t] = ref_rng_normal(&r);
  for (t = 0; t < (int)nkv; ++t) k[t] = ref_rng_normal(&r), v[t] = ref_rng_normal(&r);
  pr.batch = B, pr.q_heads = Hq, pr.kv_heads = Hkv, pr.q_len = Lq, pr.kv_len = Lk;
  pr.head_dim = D, pr.q_lens = ql, pr.kv_lens = kl, pr.alpha = alphas, pr.scale = 0.0;
  for (causal = 0; causal < 2; ++causal) {
    pr.causal = causal;
    if (ref_attention_forward(&pr, q, k, v, out, tau, p) != 0) ++bad;
    for (b = 0; b < B; ++b) {
      for (h = 0; h < Hq; ++h) {
        int kvh = h / (Hq / Hkv);
        for (i = 0; i < Lq; ++i) {
          size_t row = ((size_t)b * Hq + h) * Lq + i;
          int n = 0, idx[9];
          double tc;
          for (j = 0; j < Lk; ++j) {
            double s = 0.0;
            if (i >= ql[b] || j >= kl[b] || (causal && j > i + kl[b] - ql[b])) continue;
            for (t = 0; t < D; ++t) {
              s += q[row * D + t] * k[(((size_t)b * Hkv + kvh) * Lk + j) * D + t];
            }
            idx[n] = j;
            zc[n++] = s / sqrt((double)D);
          }
          tc = ref_entmax_row(zc, NULL, (size_t)n, alphas[h], pc);
          if (!(tc == tau[row] || fabs(tc - tau[row]) <= 1e-13 * maxd(1.0, fabs(tc)))) ++bad;
          for (j = 0, t = 0; j < Lk; ++j) {
            double expect = (t < n && idx[t] == j) ? pc[t++] : 0.0;
            worst = maxd(worst, fabs(p[row * Lk + j] - expect));
          }
          for (t = 0; t < D; ++t) {
            double s = 0.0;
            for (j = 0; j < Lk; ++j) {
              s += p[row * Lk + j] * v[(((size_t)b * Hkv + kvh) * Lk + j) * D + t];
            }
            worst = maxd(worst, fabs(out[row * D + t] - s));
          }
        }
      }
    }
  }
  /* scale = 0 equals explicit 1/sqrt(D); NULL lens equals full lens */
  pr.causal = 1;
  (void)ref_attention_forward(&pr, q, k, v, out, NULL, NULL);
  pr.scale = 1.0 / sqrt((double)D);
  (void)ref_attention_forward(&pr, q, k, v, out2, NULL, NULL);
  for (t = 0; t < (int)nq; ++t) worst = maxd(worst, fabs(out[t] - out2[t]));
  {
    static const int fq[] = {7, 7, 7}, fk[] = {9, 9, 9};
    pr.q_lens = fq, pr.kv_lens = fk;
    (void)ref_attention_forward(&pr, q, k, v, out, NULL, NULL);
    pr.q_lens = NULL, pr.kv_lens = NULL;
    (void)ref_attention_forward(&pr, q, k, v, out2, NULL, NULL);
    for (t = 0; t < (int)nq; ++t) worst = maxd(worst, fabs(out[t] - out2[t]));
  }
  /* bad arguments */
  pr.kv_heads = 4;
  bad += ref_attention_forward(&pr, q, k, v, out, NULL, NULL) != -1;
  pr.kv_heads = Hkv;
  bad += ref_attention_forward(NULL, q, k, v, out, NULL, NULL) != -1;
  bad += ref_attention_backward(&pr, q, k, v, NULL, out, NULL, NULL, NULL) != -1;
  report("4. forward vs gathered rows (GQA, causal, padding)", worst, 1e-13);
  report_count("4. forward tau match and bad-argument returns", bad, 2 * B * Hq * Lq + 3);
  free(q), free(k), free(v), free(out), free(out2), free(tau), free(p);
}

/* ------------------------------------------------------------------------------------------ */

static double decode_f16(unsigned bits) {
  int s = (bits >> 15) & 1, e = (bits >> 10) & 31, m = bits & 1023;
  double v;
  if (e == 31) {
    v = m ? NAN : INFINITY;
  } else if (e == 0) {
    v = ldexp((double)m, -24);
  } else {
    v = ldexp((double)(m + 1024), e - 25);
  }
  return s ? -v : v;
}

static double decode_bf16(unsigned bits) {
  int s = (bits >> 15) & 1, e = (bits >> 7) & 255, m = bits & 127;
  double v;
  if (e == 255) {
    v = m ? NAN : INFINITY;
  } else if (e == 0) {
    v = ldexp((double)m, -133);
  } else {
    v = ldexp((double)(m + 128), e - 134);
  }
  return s ? -v : v;
}

static int same(double a, double b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  return a == b && signbit(a) == signbit(b);
}

/* Exhaustive: every finite positive code round-trips; midpoints to the next code go to the even
   code; points just off the midpoint go to the nearer one. Returns number of failures. */
static int exhaustive_round(double (*dec)(unsigned), double (*rnd)(double), unsigned inf_bits) {
  int bad = 0;
  unsigned c;
  for (c = 0; c < inf_bits; ++c) {
    /* above the largest finite code the next step is virtual (one more quantum) and rounds to
       inf: IEEE overflow threshold is max + half a quantum, which ties to the odd max -> inf */
    int last = c + 1 == inf_bits;
    double a = dec(c), bnext = last ? a + (a - dec(c - 1)) : dec(c + 1), mid = 0.5 * (a + bnext);
    double up = last ? INFINITY : bnext, even = (c & 1) ? up : a;
    if (!same(rnd(a), a) || !same(rnd(-a), -a)) ++bad;
    if (!same(rnd(mid), even) || !same(rnd(-mid), -even)) ++bad;
    if (!same(rnd(nextafter(mid, 0.0)), a) || !same(rnd(nextafter(mid, INFINITY)), up)) ++bad;
  }
  return bad;
}

static void check_rounding(void) {
  int bad = 0, total = 0;
  struct {
    double in, out;
  } f16[] = {
      {1.0, 1.0},
      {65504.0, 65504.0},
      {65519.99, 65504.0},
      {65520.0, INFINITY},
      {-65520.0, -INFINITY},
      {1e300, INFINITY},
      {0x1p-24, 0x1p-24},
      {0x1p-25, 0.0},
      {0x1.0000001p-25, 0x1p-24},
      {3 * 0x1p-25, 0x1p-23},
      {0x1p-14, 0x1p-14},
      {1.0 + 0x1p-11, 1.0},
      {1.0 + 3 * 0x1p-11, 1.0 + 0x1p-9},
      {2049.0, 2048.0},
      {2051.0, 2052.0},
      {0.1, 0.0999755859375},
      {-0.1, -0.0999755859375},
      {1e-300, 0.0},
      {INFINITY, INFINITY},
  };
  struct {
    double in, out;
  } bf16[] = {
      {1.0, 1.0},
      {1.0 + 0x1p-8, 1.0},
      {1.0 + 3 * 0x1p-9, 1.0 + 0x1p-7},
      {1.0 + 3 * 0x1p-8, 1.0 + 0x1p-6},
      {0x1.fep127, 0x1.fep127},
      {0x1.ffp127, INFINITY},
      {0x1.fffffep127, INFINITY},
      {0x1p-133, 0x1p-133},
      {0x1p-134, 0.0},
      {3 * 0x1p-134, 0x1p-132},
      {0.1, 0.10009765625},
      {-3.14159265358979, -3.140625},
      {1e-300, 0.0},
  };
  size_t t;
  for (t = 0; t < sizeof f16 / sizeof f16[0]; ++t, ++total) {
    if (!same(ref_round_f16(f16[t].in), f16[t].out)) {
      ++bad;
      printf("      f16(%.17g) = %.17g, expected %.17g\n", f16[t].in, ref_round_f16(f16[t].in),
             f16[t].out);
    }
  }
  for (t = 0; t < sizeof bf16 / sizeof bf16[0]; ++t, ++total) {
    if (!same(ref_round_bf16(bf16[t].in), bf16[t].out)) {
      ++bad;
      printf("      bf16(%.17g) = %.17g, expected %.17g\n", bf16[t].in, ref_round_bf16(bf16[t].in),
             bf16[t].out);
    }
  }
  bad += !isnan(ref_round_f16(NAN)) + !isnan(ref_round_bf16(NAN));
  bad += !same(ref_round_f16(-0.0), -0.0) + !same(ref_round_bf16(-0.0), -0.0);
  bad += !same(ref_round_f16(-1e-300), -0.0) + !same(ref_round_bf16(-INFINITY), -INFINITY);
  total += 6;
  report_count("5. f16/bf16 spot checks", bad, total);
  bad = exhaustive_round(decode_f16, ref_round_f16, 0x7C00u);
  report_count("5. f16 exhaustive round trip / midpoints to even", bad, 3 * 0x7C00);
  bad = exhaustive_round(decode_bf16, ref_round_bf16, 0x7F80u);
  report_count("5. bf16 exhaustive round trip / midpoints to even", bad, 3 * 0x7F80);
}

/* ------------------------------------------------------------------------------------------ */

static void check_block_sparsity(void) {
  ref_attention_problem pr;
  double alpha = 2.0, p[5 * 4];
  unsigned char te[3 * 2];
  int bad = 0, i, j;
  double s;
  static const int ql[] = {5, 3}, kl[] = {4, 2};
  memset(&pr, 0, sizeof pr);
  pr.batch = 2, pr.q_heads = 1, pr.kv_heads = 1, pr.q_len = 5, pr.kv_len = 4, pr.head_dim = 1;
  pr.causal = 1, pr.alpha = &alpha;
  /* causal, Lq = 5 > Lk = 4: row i sees j <= i - 1. Non-zero p only on (i, i-1). */
  for (i = 0; i < 5; ++i) {
    for (j = 0; j < 4; ++j) p[i * 4 + j] = (j == i - 1) ? 1.0 : 0.0;
  }
  /* 2x2 tiles: rows {0,1},{2,3},{4} x cols {0,1},{2,3}. Tile (0,1) sees nothing; of the five
     visible tiles only (2,0) (row 4, cols 0-1) has all p = 0, so sparsity is 1/5. */
  s = ref_block_sparsity(&pr, p, 0, 2, 2, te);
  bad += fabs(s - 0.2) > 1e-15;
  bad += !(te[0] == 0 && te[1] == 0 && te[2] == 0 && te[3] == 0 && te[4] == 1 && te[5] == 0);
  /* padding: batch 1 has Lq = 3, Lk = 2, causal offset -1: visible (1,0),(2,0),(2,1). */
  pr.q_lens = ql, pr.kv_lens = kl;
  for (i = 0; i < 20; ++i) p[i] = 0.0;
  p[1 * 4 + 0] = 1.0;
  s = ref_block_sparsity(&pr, p, 1, 2, 2, te);
  /* tiles visible: (0,0) [has (1,0)], (1,0) [has (2,0),(2,1)]; (1,0) all zero -> empty. */
  bad += fabs(s - 0.5) > 1e-15;
  bad += !(te[0] == 0 && te[1] == 0 && te[2] == 1 && te[3] == 0 && te[4] == 0 && te[5] == 0);
  /* one tile covering everything, and no visible tile at all */
  s = ref_block_sparsity(&pr, p, 1, 64, 64, NULL);
  bad += s != 0.0;
  {
    static const int zq[] = {0, 0};
    pr.q_lens = zq;
    s = ref_block_sparsity(&pr, p, 0, 2, 2, te);
    bad += s != 0.0 || te[0] != 0;
    pr.q_lens = ql;
  }
  /* bad arguments */
  bad += ref_block_sparsity(&pr, p, 2, 2, 2, te) != -1.0;
  bad += ref_block_sparsity(&pr, p, 0, 0, 2, te) != -1.0;
  report_count("6. block sparsity (causal, padding, partial tiles, args)", bad, 8);
}

static void check_rng(void) {
  ref_rng r, r2;
  int bad = 0, t;
  double s1 = 0.0, s2 = 0.0, n1 = 0.0, n2 = 0.0;
  const int n = 200000;
  unsigned long long first;
  /* reference splitmix64 output for seed 0 */
  ref_rng_seed(&r, 0);
  ref_rng_seed(&r2, 0);
  first = (unsigned long long)(ref_rng_uniform(&r) * 0x1p53);
  bad += first != (0xE220A8397B1DCDAFULL >> 11);
  for (t = 0; t < n; ++t) {
    double u = ref_rng_uniform(&r), g = ref_rng_normal(&r);
    if (!(u >= 0.0 && u < 1.0) || !isfinite(g)) ++bad;
    s1 += u, s2 += u * u, n1 += g, n2 += g * g;
  }
  ref_rng_seed(&r, 12345);
  ref_rng_seed(&r2, 12345);
  for (t = 0; t < 100; ++t) { /* same seed, same stream */
    if (ref_rng_uniform(&r) != ref_rng_uniform(&r2) || ref_rng_normal(&r) != ref_rng_normal(&r2)) {
      ++bad;
    }
  }
  s1 /= n, s2 /= n, n1 /= n, n2 /= n;
  bad += fabs(s1 - 0.5) > 0.005 || fabs(s2 - s1 * s1 - 1.0 / 12.0) > 0.002;
  bad += fabs(n1) > 0.01 || fabs(n2 - n1 * n1 - 1.0) > 0.02;
  report_count("7. PRNG (splitmix64 value, ranges, moments)", bad, n + 3);
}

static void report_timings(void) {
  static const double alphas[] = {1.5, 2.0, 1.25, 1.75};
  const size_t n = 100000;
  double *z = alloc_d(n), *p = alloc_d(n), *dz = alloc_d(n);
  ref_rng r;
  size_t j, a;
  double t0, worst_row = 0.0;
  ref_rng_seed(&r, 6);
  for (j = 0; j < n; ++j) z[j] = 3.0 * ref_rng_normal(&r);
  for (a = 0; a < 4; ++a) {
    double t;
    t0 = now_s();
    (void)ref_entmax_row(z, NULL, n, alphas[a], p);
    ref_entmax_row_backward(p, z, n, alphas[a], dz, NULL);
    t = now_s() - t0;
    worst_row = maxd(worst_row, t);
    printf("      time: row n=%zu alpha=%.2f forward+backward %.3f s\n", n, alphas[a], t);
  }
  {
    double al[2] = {1.5, 1.3}, t1, t2;
    ref_attention_problem pr;
    size_t nq = (size_t)2 * 512 * 64, nkv = (size_t)512 * 64;
    double *q = alloc_d(nq), *k = alloc_d(nkv), *v = alloc_d(nkv), *out = alloc_d(nq);
    double *dq = alloc_d(nq), *dk = alloc_d(nkv), *dv = alloc_d(nkv), da[2];
    memset(&pr, 0, sizeof pr);
    pr.batch = 1, pr.q_heads = 2, pr.kv_heads = 1, pr.q_len = 512, pr.kv_len = 512;
    pr.head_dim = 64, pr.causal = 1, pr.alpha = al;
    for (j = 0; j < nq; ++j) q[j] = ref_rng_normal(&r);
    for (j = 0; j < nkv; ++j) k[j] = ref_rng_normal(&r), v[j] = ref_rng_normal(&r);
    t0 = now_s();
    (void)ref_attention_forward(&pr, q, k, v, out, NULL, NULL);
    t1 = now_s() - t0;
    t0 = now_s();
    (void)ref_attention_backward(&pr, q, k, v, out, dq, dk, dv, da);
    t2 = now_s() - t0;
    printf("      time: attention 1x2x512x512x64 forward %.3f s, backward %.3f s\n", t1, t2);
    free(q), free(k), free(v), free(out), free(dq), free(dk), free(dv);
  }
  free(z), free(p), free(dz);
}

int main(void) {
  double t0 = now_s();
  check_sort_vs_bisect();
  check_normalisation();
  check_edge_cases();
  check_row_backward();
  check_attention_backward();
  check_attention_forward();
  check_rounding();
  check_block_sparsity();
  check_rng();
  report_timings();
  printf("%s: %d/%d checks passed (%.2f s)\n", g_failed == 0 ? "OK" : "FAILED", g_checks - g_failed,
         g_checks, now_s() - t0);
  return g_failed == 0 ? 0 : 1;
}
