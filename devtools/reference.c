/* reference.c - Double-precision reference implementation of alpha-entmax (row forward/backward),
 * entmax attention (forward/backward, GQA, causal, padding), block sparsity, f16/bf16 rounding and
 * a deterministic PRNG. Test-only ground truth; see reference.h for the contract.
 *
 * Numerics: every row is shifted by its scaled maximum M = (alpha-1)*max z before anything else,
 * so the threshold is searched as t = tau - M in [-1, -n^(1-alpha)] and p_j = [y_j - t]_+^c0 with
 * y_j = (alpha-1)*z_j - M <= 0. Sums use Neumaier compensation. */
#include "reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Neumaier-compensated running sum. */
typedef struct ksum {
  double s, c;
} ksum;

static void ksum_add(ksum *k, double x) {
  double t = k->s + x;
  if (fabs(k->s) >= fabs(x)) {
    k->c += (k->s - t) + x;
  } else {
    k->c += (x - t) + k->s;
  }
  k->s = t;
}

static double ksum_value(const ksum *k) {
  return k->s + k->c;
}

static int row_valid(const double *z, const unsigned char *mask, size_t j) {
  if (mask != NULL && mask[j] == 0) return 0;
  return z[j] != -INFINITY;
}

/* d^c0 for d > 0, with exact fast paths for the two sorted cases. */
static double pow_c0(double d, double c0) {
  if (c0 == 1.0) return d;
  if (c0 == 2.0) return d * d;
  return pow(d, c0);
}

/* f(t) = sum_j [y_j - t]_+^c0 - 1 evaluated directly from z (no buffer needed). */
static double row_f(const double *z, const unsigned char *mask, size_t n, double a1, double m,
                    double c0, double t) {
  ksum acc = {0.0, 0.0};
  size_t j;
  for (j = 0; j < n; ++j) {
    double d;
    if (!row_valid(z, mask, j)) continue;
    d = (a1 * z[j] - m) - t;
    if (d > 0.0) ksum_add(&acc, pow_c0(d, c0));
  }
  ksum_add(&acc, -1.0);
  return ksum_value(&acc);
}

/* Bisection for t in [-1, -nvalid^(1-alpha)]; f is non-increasing in t. Halves until the bracket
   cannot shrink any further in double precision, which is at least as fine as 100 halvings of
   the unit bracket (2^-100 is below the spacing of doubles anywhere in it). */
static double bisect_threshold(const double *z, const unsigned char *mask, size_t n, size_t nvalid,
                               double a1, double m, double c0) {
  double lo = -1.0;
  double hi = -pow((double)nvalid, -a1);
  double flo, fhi;
  int it;
  if (hi < lo) hi = lo; /* guard against rounding for nvalid == 1 */
  flo = row_f(z, mask, n, a1, m, c0, lo);
  fhi = row_f(z, mask, n, a1, m, c0, hi);
  for (it = 0; it < 2200; ++it) {
    double mid = lo + 0.5 * (hi - lo);
    double fm;
    if (mid <= lo || mid >= hi) break;
    fm = row_f(z, mask, n, a1, m, c0, mid);
    if (fm > 0.0) {
      lo = mid;
      flo = fm;
    } else {
      hi = mid;
      fhi = fm;
    }
  }
  return fabs(fhi) < fabs(flo) ? hi : lo;
}

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x < y) - (x > y);
}

/* Newton polish of the threshold on the sorted (descending) shifted row y[0..nv); c0 is 1 or 2.
   Accepts a step only if it reduces |f|. */
static double polish_threshold(const double *y, size_t nv, double c0, double t) {
  int it;
  for (it = 0; it < 3; ++it) {
    ksum f = {0.0, 0.0}, fp = {0.0, 0.0}, fn = {0.0, 0.0};
    double tn, fv, fnv;
    size_t j;
    for (j = 0; j < nv && y[j] > t; ++j) {
      double d = y[j] - t;
      ksum_add(&f, pow_c0(d, c0));
      ksum_add(&fp, c0 == 2.0 ? 2.0 * d : 1.0);
    }
    ksum_add(&f, -1.0);
    fv = ksum_value(&f);
    if (fv == 0.0 || ksum_value(&fp) <= 0.0) break;
    tn = t + fv / ksum_value(&fp);
    if (tn == t) break;
    for (j = 0; j < nv && y[j] > tn; ++j) ksum_add(&fn, pow_c0(y[j] - tn, c0));
    ksum_add(&fn, -1.0);
    fnv = ksum_value(&fn);
    if (!(fabs(fnv) < fabs(fv))) break;
    t = tn;
  }
  return t;
}

/* Exact sparsemax threshold on sorted shifted row y (descending, y[0] = 0). */
static double sort_threshold_2(const double *y, size_t nv) {
  double c = 0.0, cstar = 0.0;
  size_t k, kstar = 1;
  for (k = 1; k <= nv; ++k) {
    c += y[k - 1];
    if ((double)k * y[k - 1] > c - 1.0) {
      kstar = k;
      cstar = c;
    }
  }
  return (cstar - 1.0) / (double)kstar;
}

/* Exact 1.5-entmax threshold on sorted shifted row y (descending, y[0] = 0, scaled by 1/2).
   Running mean and sum of squared deviations (Welford) give ss_k = k*(m2_k - mu_k^2) stably. */
static double sort_threshold_15(const double *y, size_t nv) {
  double mean = 0.0, ss = 0.0, tau_k = -1.0;
  size_t k, count = 0;
  for (k = 1; k <= nv; ++k) {
    double v = y[k - 1];
    double dl = v - mean;
    double delta;
    mean += dl / (double)k;
    ss += dl * (v - mean);
    delta = (1.0 - ss) / (double)k;
    if (mean - sqrt(delta > 0.0 ? delta : 0.0) <= v) ++count;
  }
  if (count == 0) count = 1; /* cannot happen: k = 1 always qualifies */
  mean = 0.0;
  ss = 0.0;
  for (k = 1; k <= count; ++k) {
    double v = y[k - 1];
    double dl = v - mean;
    double delta;
    mean += dl / (double)k;
    ss += dl * (v - mean);
    delta = (1.0 - ss) / (double)k;
    tau_k = mean - sqrt(delta > 0.0 ? delta : 0.0);
  }
  return tau_k;
}

static double row_impl(const double *z, const unsigned char *mask, size_t n, double alpha,
                       double *p, int force_bisect) {
  size_t j, nvalid = 0;
  int bad = 0;
  double zmax = -INFINITY, a1, c0, m, t;

  for (j = 0; j < n; ++j) {
    if (!row_valid(z, mask, j)) continue;
    ++nvalid;
    if (isnan(z[j]) || z[j] == INFINITY) {
      bad = 1;
    } else if (z[j] > zmax) {
      zmax = z[j];
    }
  }
  if (nvalid == 0) {
    for (j = 0; j < n; ++j) p[j] = 0.0;
    return INFINITY;
  }
  if (bad || !(alpha > 1.0) || isinf(alpha)) {
    for (j = 0; j < n; ++j) p[j] = row_valid(z, mask, j) ? NAN : 0.0;
    return NAN;
  }

  a1 = alpha - 1.0;
  c0 = 1.0 / a1;
  m = a1 * zmax;
  t = 0.0;
  {
    int sorted = 0;
    if (!force_bisect && (alpha == 2.0 || alpha == 1.5)) {
      double *y = (double *)malloc(nvalid * sizeof *y);
      if (y != NULL) { /* on allocation failure fall back to bisection, which needs no memory */
        size_t k = 0;
        for (j = 0; j < n; ++j) {
          if (row_valid(z, mask, j)) y[k++] = a1 * z[j] - m;
        }
        qsort(y, nvalid, sizeof *y, cmp_desc);
        t = alpha == 2.0 ? sort_threshold_2(y, nvalid) : sort_threshold_15(y, nvalid);
        t = polish_threshold(y, nvalid, c0, t);
        free(y);
        sorted = 1;
      }
    }
    if (!sorted) t = bisect_threshold(z, mask, n, nvalid, a1, m, c0);
  }

  for (j = 0; j < n; ++j) {
    double d;
    if (!row_valid(z, mask, j)) {
      p[j] = 0.0;
      continue;
    }
    d = (a1 * z[j] - m) - t;
    p[j] = d > 0.0 ? pow_c0(d, c0) : 0.0;
  }
  return m + t;
}

double ref_entmax_row(const double *z, const unsigned char *mask, size_t n, double alpha,
                      double *p) {
  return row_impl(z, mask, n, alpha, p, 0);
}

double ref_entmax_row_bisect(const double *z, const unsigned char *mask, size_t n, double alpha,
                             double *p) {
  return row_impl(z, mask, n, alpha, p, 1);
}

void ref_entmax_row_backward(const double *p, const double *dp, size_t n, double alpha, double *dz,
                             double *dalpha) {
  ksum ssum = {0.0, 0.0}, sdp = {0.0, 0.0};
  size_t j;
  int has_nan = 0;
  double s_tot, mean_dp, a1 = alpha - 1.0;

  for (j = 0; j < n; ++j) {
    if (isnan(p[j])) has_nan = 1;
  }
  if (has_nan || !(alpha > 1.0)) {
    for (j = 0; j < n; ++j) dz[j] = p[j] != 0.0 ? NAN : 0.0;
    if (dalpha != NULL) *dalpha = NAN;
    return;
  }
  for (j = 0; j < n; ++j) {
    if (p[j] > 0.0) {
      double s = pow(p[j], 2.0 - alpha);
      ksum_add(&ssum, s);
      ksum_add(&sdp, s * dp[j]);
    }
  }
  s_tot = ksum_value(&ssum);
  if (!(s_tot > 0.0)) {
    for (j = 0; j < n; ++j) dz[j] = 0.0;
    if (dalpha != NULL) *dalpha = 0.0;
    return;
  }
  mean_dp = ksum_value(&sdp) / s_tot;
  for (j = 0; j < n; ++j) {
    dz[j] = p[j] > 0.0 ? pow(p[j], 2.0 - alpha) * (dp[j] - mean_dp) : 0.0;
  }
  if (dalpha != NULL) {
    ksum hs = {0.0, 0.0}, g = {0.0, 0.0};
    double h_tot;
    for (j = 0; j < n; ++j) {
      if (p[j] > 0.0) ksum_add(&hs, p[j] * log(p[j]));
    }
    h_tot = ksum_value(&hs);
    for (j = 0; j < n; ++j) {
      double ps, h, dpda;
      if (!(p[j] > 0.0)) continue;
      ps = pow(p[j], 2.0 - alpha) / s_tot;
      h = p[j] * log(p[j]);
      dpda = (p[j] - ps) / (a1 * a1) - (h - ps * h_tot) / a1;
      ksum_add(&g, dp[j] * dpda);
    }
    *dalpha = ksum_value(&g);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Attention                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int problem_ok(const ref_attention_problem *pr) {
  int b, h;
  if (pr == NULL || pr->alpha == NULL) return 0;
  if (pr->batch < 0 || pr->q_len < 0 || pr->kv_len < 0) return 0;
  if (pr->q_heads < 1 || pr->kv_heads < 1 || pr->head_dim < 1) return 0;
  if (pr->q_heads % pr->kv_heads != 0) return 0;
  if (!isfinite(pr->scale)) return 0;
  for (h = 0; h < pr->q_heads; ++h) {
    if (!(pr->alpha[h] > 1.0) || !isfinite(pr->alpha[h])) return 0;
  }
  for (b = 0; b < pr->batch; ++b) {
    if (pr->q_lens != NULL && (pr->q_lens[b] < 0 || pr->q_lens[b] > pr->q_len)) return 0;
    if (pr->kv_lens != NULL && (pr->kv_lens[b] < 0 || pr->kv_lens[b] > pr->kv_len)) return 0;
  }
  return 1;
}

static int visible(const ref_attention_problem *pr, int b, int i, int j) {
  int lq = pr->q_lens != NULL ? pr->q_lens[b] : pr->q_len;
  int lk = pr->kv_lens != NULL ? pr->kv_lens[b] : pr->kv_len;
  if (i >= lq || j >= lk) return 0;
  if (pr->causal && j > i + (lk - lq)) return 0;
  return 1;
}

static double effective_scale(const ref_attention_problem *pr) {
  return pr->scale != 0.0 ? pr->scale : 1.0 / sqrt((double)pr->head_dim);
}

static double dot(const double *a, const double *b, int d) {
  double s = 0.0;
  int t;
  for (t = 0; t < d; ++t) s += a[t] * b[t];
  return s;
}

/* Offset of row `row` of head `head` in batch `b` of a [B][H][L][D] tensor. */
static size_t offs(int b, int heads, int head, int len, int row, int d) {
  return ((((size_t)b * (size_t)heads + (size_t)head) * (size_t)len) + (size_t)row) * (size_t)d;
}

/* Logits and visibility mask of query row i; returns the tau from ref_entmax_row and fills prow. */
static double attention_row(const ref_attention_problem *pr, const double *q, const double *k,
                            int b, int h, int i, double scale, double *z, unsigned char *mask,
                            double *prow) {
  int j, d = pr->head_dim;
  int kvh = h / (pr->q_heads / pr->kv_heads);
  const double *qi = q + offs(b, pr->q_heads, h, pr->q_len, i, d);
  for (j = 0; j < pr->kv_len; ++j) {
    mask[j] = (unsigned char)visible(pr, b, i, j);
    z[j] = mask[j] ? scale * dot(qi, k + offs(b, pr->kv_heads, kvh, pr->kv_len, j, d), d) : 0.0;
  }
  return ref_entmax_row(z, mask, (size_t)pr->kv_len, pr->alpha[h], prow);
}

typedef struct work {
  double *z, *prow, *dp, *dz;
  unsigned char *mask;
} work;

static int work_alloc(work *w, int kv_len) {
  size_t n = kv_len > 0 ? (size_t)kv_len : 1;
  w->z = (double *)malloc(n * sizeof(double));
  w->prow = (double *)malloc(n * sizeof(double));
  w->dp = (double *)malloc(n * sizeof(double));
  w->dz = (double *)malloc(n * sizeof(double));
  w->mask = (unsigned char *)malloc(n);
  return w->z && w->prow && w->dp && w->dz && w->mask;
}

static void work_free(work *w) {
  free(w->z);
  free(w->prow);
  free(w->dp);
  free(w->dz);
  free(w->mask);
}

int ref_attention_forward(const ref_attention_problem *pr, const double *q, const double *k,
                          const double *v, double *out, double *tau, double *p) {
  work w;
  int b, h, i, j, t, d;
  double scale;
  if (!problem_ok(pr) || q == NULL || k == NULL || v == NULL || out == NULL) return -1;
  if (!work_alloc(&w, pr->kv_len)) {
    work_free(&w);
    return -1;
  }
  d = pr->head_dim;
  scale = effective_scale(pr);
  for (b = 0; b < pr->batch; ++b) {
    for (h = 0; h < pr->q_heads; ++h) {
      int kvh = h / (pr->q_heads / pr->kv_heads);
      for (i = 0; i < pr->q_len; ++i) {
        double *oi = out + offs(b, pr->q_heads, h, pr->q_len, i, d);
        size_t row = (((size_t)b * (size_t)pr->q_heads) + (size_t)h) * (size_t)pr->q_len + i;
        double tv = attention_row(pr, q, k, b, h, i, scale, w.z, w.mask, w.prow);
        if (tau != NULL) tau[row] = tv;
        for (t = 0; t < d; ++t) oi[t] = 0.0;
        for (j = 0; j < pr->kv_len; ++j) {
          const double *vj;
          if (w.prow[j] == 0.0) continue;
          vj = v + offs(b, pr->kv_heads, kvh, pr->kv_len, j, d);
          for (t = 0; t < d; ++t) oi[t] += w.prow[j] * vj[t];
        }
        if (p != NULL) {
          memcpy(p + row * (size_t)pr->kv_len, w.prow, (size_t)pr->kv_len * sizeof(double));
        }
      }
    }
  }
  work_free(&w);
  return 0;
}

int ref_attention_backward(const ref_attention_problem *pr, const double *q, const double *k,
                           const double *v, const double *dout, double *dq, double *dk, double *dv,
                           double *dalpha) {
  work w;
  int b, h, i, j, t, d;
  size_t nq, nkv;
  double scale;
  if (!problem_ok(pr) || q == NULL || k == NULL || v == NULL || dout == NULL) return -1;
  if (!work_alloc(&w, pr->kv_len)) {
    work_free(&w);
    return -1;
  }
  d = pr->head_dim;
  scale = effective_scale(pr);
  nq = (size_t)pr->batch * (size_t)pr->q_heads * (size_t)pr->q_len * (size_t)d;
  nkv = (size_t)pr->batch * (size_t)pr->kv_heads * (size_t)pr->kv_len * (size_t)d;
  if (dq != NULL) memset(dq, 0, nq * sizeof(double));
  if (dk != NULL) memset(dk, 0, nkv * sizeof(double));
  if (dv != NULL) memset(dv, 0, nkv * sizeof(double));
  if (dalpha != NULL) {
    for (h = 0; h < pr->q_heads; ++h) dalpha[h] = 0.0;
  }
  for (b = 0; b < pr->batch; ++b) {
    for (h = 0; h < pr->q_heads; ++h) {
      int kvh = h / (pr->q_heads / pr->kv_heads);
      for (i = 0; i < pr->q_len; ++i) {
        size_t qo = offs(b, pr->q_heads, h, pr->q_len, i, d);
        const double *gi = dout + qo;
        const double *qi = q + qo;
        double da = 0.0;
        double tv = attention_row(pr, q, k, b, h, i, scale, w.z, w.mask, w.prow);
        if (tv == INFINITY) continue; /* no visible key: zero gradients */
        for (j = 0; j < pr->kv_len; ++j) {
          size_t ko = offs(b, pr->kv_heads, kvh, pr->kv_len, j, d);
          w.dp[j] = w.mask[j] ? dot(gi, v + ko, d) : 0.0;
          if (dv != NULL && w.prow[j] != 0.0) {
            for (t = 0; t < d; ++t) dv[ko + t] += w.prow[j] * gi[t];
          }
        }
        ref_entmax_row_backward(w.prow, w.dp, (size_t)pr->kv_len, pr->alpha[h], w.dz,
                                dalpha != NULL ? &da : NULL);
        if (dalpha != NULL) dalpha[h] += da;
        for (j = 0; j < pr->kv_len; ++j) {
          size_t ko = offs(b, pr->kv_heads, kvh, pr->kv_len, j, d);
          double g = scale * w.dz[j];
          if (g == 0.0) continue;
          if (dq != NULL) {
            for (t = 0; t < d; ++t) dq[qo + t] += g * k[ko + t];
          }
          if (dk != NULL) {
            for (t = 0; t < d; ++t) dk[ko + t] += g * qi[t];
          }
        }
      }
    }
  }
  work_free(&w);
  return 0;
}

double ref_block_sparsity(const ref_attention_problem *pr, const double *p_bh, int b, int tile_m,
                          int tile_n, unsigned char *tile_empty) {
  int nbm, nbn, bm, bn, nvis = 0, nempty = 0;
  if (!problem_ok(pr) || p_bh == NULL || tile_m < 1 || tile_n < 1 || b < 0 || b >= pr->batch) {
    return -1.0;
  }
  nbm = (pr->q_len + tile_m - 1) / tile_m;
  nbn = (pr->kv_len + tile_n - 1) / tile_n;
  for (bm = 0; bm < nbm; ++bm) {
    for (bn = 0; bn < nbn; ++bn) {
      int i, j, vis = 0, empty = 1;
      int i1 = (bm + 1) * tile_m < pr->q_len ? (bm + 1) * tile_m : pr->q_len;
      int j1 = (bn + 1) * tile_n < pr->kv_len ? (bn + 1) * tile_n : pr->kv_len;
      for (i = bm * tile_m; i < i1; ++i) {
        for (j = bn * tile_n; j < j1; ++j) {
          if (visible(pr, b, i, j)) vis = 1;
          if (p_bh[(size_t)i * (size_t)pr->kv_len + (size_t)j] != 0.0) empty = 0;
        }
      }
      if (vis) {
        ++nvis;
        if (empty) ++nempty;
      }
      if (tile_empty != NULL) tile_empty[(size_t)bm * (size_t)nbn + (size_t)bn] = vis && empty;
    }
  }
  return nvis > 0 ? (double)nempty / (double)nvis : 0.0;
}

/* ------------------------------------------------------------------------------------------ */
/* Rounding to 16-bit formats                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Round to a binary format with `frac_bits` stored fraction bits, minimum normal exponent emin
   and largest finite value maxf. Works by scaling |x| to units of the local quantum (exact, a
   power-of-two scaling) and rounding that to an integer, ties to even. */
static double round_format(double x, int frac_bits, int emin, double maxf) {
  double a, q, tq, r, f;
  int e;
  if (isnan(x) || isinf(x) || x == 0.0) return x;
  a = fabs(x);
  (void)frexp(a, &e); /* a in [2^(e-1), 2^e) */
  e -= 1;
  if (e < emin) e = emin;
  q = ldexp(1.0, e - frac_bits);
  tq = a / q; /* exact */
  r = floor(tq);
  f = tq - r; /* exact: tq has at most 53 significant bits */
  if (f > 0.5 || (f == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
  r *= q;
  if (r > maxf) r = INFINITY;
  return copysign(r, x);
}

double ref_round_f16(double x) {
  return round_format(x, 10, -14, 65504.0);
}

double ref_round_bf16(double x) {
  return round_format(x, 7, -126, ldexp(255.0, 120)); /* (2 - 2^-7) * 2^127 */
}

/* ------------------------------------------------------------------------------------------ */
/* PRNG                                                                                         */
/* ------------------------------------------------------------------------------------------ */

#define REF_U64_MASK 0xFFFFFFFFFFFFFFFFULL

static unsigned long long splitmix_next(ref_rng *r) {
  unsigned long long z;
  r->s = (r->s + 0x9E3779B97F4A7C15ULL) & REF_U64_MASK;
  z = r->s;
  z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL) & REF_U64_MASK;
  z = ((z ^ (z >> 27)) * 0x94D049BB133111EBULL) & REF_U64_MASK;
  return z ^ (z >> 31);
}

void ref_rng_seed(ref_rng *r, unsigned long long seed) {
  r->s = seed & REF_U64_MASK;
}

double ref_rng_uniform(ref_rng *r) {
  return (double)(splitmix_next(r) >> 11) * 0x1p-53;
}

double ref_rng_normal(ref_rng *r) {
  const double two_pi = 6.283185307179586476925286766559;
  double u1 = 1.0 - ref_rng_uniform(r); /* (0, 1] */
  double u2 = ref_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}
