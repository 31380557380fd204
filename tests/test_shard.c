/*
 * test_shard.c - sequence parallelism (issue 14 part 3): one sequence's keys split over shards in
 * one process, the protocol's arrays merged with adasplash_shard_merge (what an all-reduce
 * computes), against the double-precision reference and against the library's single-device
 * forward (inference: the decode path; training: the fused passes) and backward. Shards of
 * unequal size including an empty one, q_len in {1, 4, 16}, GQA, causal and not, alpha 1.5, 2 and
 * 1.3, f32 and bf16 storage; out, dq, dk, dv. Bad arguments (shapes, NULL buffers and arrays,
 * wrong array lengths, a merged max below a shard's own, merged states of the wrong round, steps
 * out of order) are refused with their status and leave the outputs' canaries intact.
 *
 * Tolerances (per element, |got - want| <= tol):
 *  - out: 1e-4 + 4 * 2^-24 * n_i * M_id (test_decode.c's bound: tau solved to |sum p - 1| <= 1e-6
 *    and p normalised by the merged sum; fp32 sums of p v over n_i support keys of magnitude
 *    M_id = sum_j p_ij |v_jd|); the merged out is fp32, so no storage rounding against the
 *    reference, and u_store |O| more against the library's output stored in the dtype.
 *  - dq, dk, dv: 1e-3 (1 + |ref|) + u_store |ref| for dk, dv (stored in the dtype): the gradients
 *    go through s = p^(2-alpha) and delta = sum(s dp) / sum(s), whose fp32 sums over the support
 *    and tau's 1e-6 residual give relative errors of order 1e-5 per term on these sizes (<= 2048
 *    keys, |dp| <= ~30); 1e-3 leaves room for rows whose support has a key at the threshold's edge,
 *    where p^(2-alpha) for alpha = 1.3 changes fastest. Against the library's backward the same
 *    bound doubled (both sides carry it).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "reference.h"
#include "test_util.h"

static double unit(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

#define MAX_SHARDS 4

typedef struct scase {
  int batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal;
  adasplash_dtype dtype;
  double alpha;
  int nshard;
  int bounds[MAX_SHARDS + 1]; /* shard s: keys [bounds[s], bounds[s+1]) */
  unsigned long long seed;
} scase;

static void label(const scase *c, char *out, size_t n) {
  int w =
      snprintf(out, n, "B=%d Hq=%d Hkv=%d q=%d kv=%d D=%d %s%s alpha=%g shards", c->batch,
               c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim,
               c->dtype == ADASPLASH_F32 ? "f32" : "bf16", c->causal ? " causal" : "", c->alpha);
  for (int s = 0; s < c->nshard && w > 0 && (size_t)w < n; ++s)
    w += snprintf(out + w, n - (size_t)w, " %d", c->bounds[s + 1] - c->bounds[s]);
}

static adasplash_attention_desc make_desc(const scase *c) {
  return test_attention_desc(c->dtype, c->batch, c->q_heads, c->kv_heads, c->q_len, c->kv_len,
                             c->head_dim, c->causal, (float)c->alpha);
}

static void fill(double *x, size_t n, adasplash_dtype dt, double sd, unsigned long long seed) {
  ref_rng r;
  ref_rng_seed(&r, seed);
  for (size_t i = 0; i < n; ++i) x[i] = test_round(sd * ref_rng_normal(&r), dt);
}

/* Keys [j0, j1) of a [batch, heads, kv_len, D] tensor as a contiguous [batch, heads, j1-j0, D]. */
static void slice_keys(const scase *c, const double *src, int j0, int j1, double *dst) {
  const size_t D = (size_t)c->head_dim, n = (size_t)(j1 - j0);
  for (int bh = 0; bh < c->batch * c->kv_heads; ++bh)
    memcpy(dst + (size_t)bh * n * D, src + ((size_t)bh * c->kv_len + (size_t)j0) * D,
           n * D * sizeof(double));
}

static void unslice_keys(const scase *c, const double *src, int j0, int j1, double *dst) {
  const size_t D = (size_t)c->head_dim, n = (size_t)(j1 - j0);
  for (int bh = 0; bh < c->batch * c->kv_heads; ++bh)
    memcpy(dst + ((size_t)bh * c->kv_len + (size_t)j0) * D, src + (size_t)bh * n * D,
           n * D * sizeof(double));
}

static cl_mem device_tensor(adasplash_context *ctx, const double *x, size_t n, adasplash_dtype dt) {
  if (n == 0) return NULL;
  void *h = malloc(n * adasplash_dtype_size(dt));
  test_pack(x, n, dt, h);
  cl_mem m = test_buffer(ctx, h, n * adasplash_dtype_size(dt));
  free(h);
  return m;
}

static void read_tensor(adasplash_context *ctx, cl_mem m, size_t n, adasplash_dtype dt, double *x) {
  void *h = malloc(n * adasplash_dtype_size(dt));
  test_read(ctx, m, h, n * adasplash_dtype_size(dt));
  test_unpack(h, n, dt, x);
  free(h);
}

/* max over i of |got - want| / tol_i, and the max absolute error. */
static double worst(const double *got, const double *want, const double *tol, size_t n,
                    double *abs_err) {
  double w = 0, a = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = fabs(got[i] - want[i]);
    const double r = e / tol[i];
    if (!(r <= w)) w = isnan(r) ? INFINITY : r;
    if (!(e <= a)) a = isnan(e) ? INFINITY : e;
  }
  *abs_err = a;
  return w;
}

/* The shards of one case, run through the protocol in this process. */
typedef struct shards {
  adasplash_shard sh[MAX_SHARDS];
  adasplash_shard_sizes sz[MAX_SHARDS];
  cl_mem k[MAX_SHARDS], v[MAX_SHARDS], dk[MAX_SHARDS], dv[MAX_SHARDS], work[MAX_SHARDS];
  float *arr[MAX_SHARDS][7];
  float *merged[7];
} shards;

/* Every shard's array `which` merged into merged[which] (MAX or SUM, as an all-reduce). */
static void merge_all(const scase *c, shards *s, adasplash_shard_array which) {
  const size_t n = s->sz[0].count[which];
  memcpy(s->merged[which], s->arr[0][which], n * sizeof(float));
  for (int r = 1; r < c->nshard; ++r)
    test_require(NULL, adasplash_shard_merge(&s->sz[0], which, s->merged[which], s->arr[r][which]),
                 "merge");
}

static void run_case(adasplash_context *ctx, const scase *c) {
  char name[256];
  label(c, name, sizeof name);
  const adasplash_attention_desc d = make_desc(c);
  const size_t D = (size_t)c->head_dim, rows = (size_t)c->batch * c->q_heads * c->q_len;
  const size_t qn = rows * D, kn = (size_t)c->batch * c->kv_heads * c->kv_len * D;
  double *q = malloc(qn * sizeof *q), *k = malloc(kn * sizeof *k), *v = malloc(kn * sizeof *v);
  double *dout = malloc(qn * sizeof *dout);
  fill(q, qn, c->dtype, 1.5, c->seed);
  fill(k, kn, c->dtype, 1.0, c->seed + 1);
  fill(v, kn, c->dtype, 1.0, c->seed + 2);
  fill(dout, qn, c->dtype, 1.0, c->seed + 3);
  cl_mem qd = device_tensor(ctx, q, qn, c->dtype), doutd = device_tensor(ctx, dout, qn, c->dtype);
  shards s;
  memset(&s, 0, sizeof s);
  double *tmp = malloc(kn * sizeof *tmp);
  for (int r = 0; r < c->nshard; ++r) {
    adasplash_shard_init(&s.sh[r]);
    s.sh[r].kv_offset = c->bounds[r];
    s.sh[r].kv_count = c->bounds[r + 1] - c->bounds[r];
    s.sz[r].struct_size = sizeof s.sz[r];
    test_require(ctx, adasplash_attention_shard_sizes(ctx, &d, &s.sh[r], &s.sz[r]), "shard sizes");
    const size_t n = (size_t)c->batch * c->kv_heads * (size_t)s.sh[r].kv_count * D;
    slice_keys(c, k, c->bounds[r], c->bounds[r + 1], tmp);
    s.k[r] = device_tensor(ctx, tmp, n, c->dtype);
    slice_keys(c, v, c->bounds[r], c->bounds[r + 1], tmp);
    s.v[r] = device_tensor(ctx, tmp, n, c->dtype);
    s.dk[r] = n ? test_buffer(ctx, NULL, n * adasplash_dtype_size(c->dtype)) : NULL;
    s.dv[r] = n ? test_buffer(ctx, NULL, n * adasplash_dtype_size(c->dtype)) : NULL;
    s.work[r] = test_buffer(ctx, NULL, s.sz[r].work_bytes);
    for (int a = 0; a < 7; ++a) s.arr[r][a] = calloc(s.sz[r].count[a] + 1, sizeof(float));
  }
  for (int a = 0; a < 7; ++a) s.merged[a] = calloc(s.sz[0].count[a] + 1, sizeof(float));
  const size_t *cnt = s.sz[0].count;

  /* The protocol. */
  for (int r = 0; r < c->nshard; ++r)
    test_require(ctx,
                 adasplash_attention_shard_max(ctx, &d, &s.sh[r], NULL, qd, s.k[r], s.work[r],
                                               s.arr[r][ADASPLASH_SHARD_MAX], cnt[0]),
                 "shard max");
  merge_all(c, &s, ADASPLASH_SHARD_MAX);
  for (int r = 0; r < c->nshard; ++r)
    test_require(ctx,
                 adasplash_attention_shard_histogram(ctx, &d, &s.sh[r], NULL, s.work[r],
                                                     s.merged[ADASPLASH_SHARD_MAX], cnt[0],
                                                     s.arr[r][ADASPLASH_SHARD_HIST], cnt[1]),
                 "shard histogram");
  merge_all(c, &s, ADASPLASH_SHARD_HIST);
  int rounds = 0;
  for (;; ++rounds) {
    for (int r = 0; r < c->nshard; ++r) {
      if (rounds > 0)
        memcpy(s.arr[r][ADASPLASH_SHARD_SUMS], s.merged[ADASPLASH_SHARD_SUMS],
               cnt[2] * sizeof(float));
      test_require(ctx,
                   adasplash_attention_shard_refine(ctx, &d, &s.sh[r], NULL, s.work[r], rounds,
                                                    s.merged[ADASPLASH_SHARD_HIST], cnt[1],
                                                    s.arr[r][ADASPLASH_SHARD_SUMS], cnt[2]),
                   "shard refine");
    }
    merge_all(c, &s, ADASPLASH_SHARD_SUMS);
    size_t pending = 0;
    test_require(NULL, adasplash_attention_shard_pending(&s.sz[0], s.merged[2], &pending),
                 "pending");
    if (pending == 0 || rounds > 40) break;
  }
  test_check(rounds <= 8, "%s: %d refinement rounds (expected few)", name, rounds);
  for (int r = 0; r < c->nshard; ++r)
    test_require(ctx,
                 adasplash_attention_shard_output(ctx, &d, &s.sh[r], NULL, s.v[r], s.work[r],
                                                  s.arr[r][ADASPLASH_SHARD_OUT], cnt[3],
                                                  s.arr[r][ADASPLASH_SHARD_PSUM], cnt[4]),
                 "shard output");
  merge_all(c, &s, ADASPLASH_SHARD_OUT);
  merge_all(c, &s, ADASPLASH_SHARD_PSUM);
  for (int r = 0; r < c->nshard; ++r)
    test_require(
        ctx,
        adasplash_attention_shard_backward_sums(ctx, &d, &s.sh[r], NULL, s.v[r], doutd, s.work[r],
                                                s.arr[r][ADASPLASH_SHARD_GRAD], cnt[5]),
        "shard backward sums");
  merge_all(c, &s, ADASPLASH_SHARD_GRAD);
  double *sdq = malloc(qn * sizeof *sdq), *sdk = calloc(kn, sizeof *sdk),
         *sdv = calloc(kn, sizeof *sdv);
  for (int r = 0; r < c->nshard; ++r) {
    test_require(
        ctx,
        adasplash_attention_shard_backward(ctx, &d, &s.sh[r], NULL, qd, s.k[r], doutd, s.work[r],
                                           s.merged[ADASPLASH_SHARD_GRAD], cnt[5], s.dk[r], s.dv[r],
                                           s.arr[r][ADASPLASH_SHARD_DQ], cnt[6]),
        "shard backward");
    const size_t n = (size_t)c->batch * c->kv_heads * (size_t)s.sh[r].kv_count * D;
    if (n) {
      read_tensor(ctx, s.dk[r], n, c->dtype, tmp);
      unslice_keys(c, tmp, c->bounds[r], c->bounds[r + 1], sdk);
      read_tensor(ctx, s.dv[r], n, c->dtype, tmp);
      unslice_keys(c, tmp, c->bounds[r], c->bounds[r + 1], sdv);
    }
  }
  merge_all(c, &s, ADASPLASH_SHARD_DQ);
  for (size_t i = 0; i < qn; ++i) sdq[i] = s.merged[ADASPLASH_SHARD_DQ][i];
  double *sout = malloc(qn * sizeof *sout);
  for (size_t i = 0; i < qn; ++i) sout[i] = s.merged[ADASPLASH_SHARD_OUT][i];

  /* The reference. */
  double *alpha = malloc((size_t)c->q_heads * sizeof *alpha);
  for (int h = 0; h < c->q_heads; ++h) alpha[h] = c->alpha;
  ref_attention_problem rp = {c->batch,  c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim,
                              c->causal, NULL,       NULL,        alpha,    0.0};
  double *rout = malloc(qn * sizeof *rout), *p = malloc(rows * (size_t)c->kv_len * sizeof *p);
  double *rdq = malloc(qn * sizeof *rdq), *rdk = malloc(kn * sizeof *rdk),
         *rdv = malloc(kn * sizeof *rdv);
  if (ref_attention_forward(&rp, q, k, v, rout, NULL, p) != 0 ||
      ref_attention_backward(&rp, q, k, v, dout, rdq, rdk, rdv, NULL) != 0) {
    printf("FAIL: reference\n");
    exit(1);
  }
  double *tol = malloc((kn > qn ? kn : qn) * sizeof *tol), *pmag = malloc(qn * sizeof *pmag);
  size_t *nnz = malloc(rows * sizeof *nnz);
  test_pv_magnitudes(p, v, c->batch, c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim,
                     pmag, nnz);
  for (size_t i = 0; i < qn; ++i)
    tol[i] = 1e-4 + 4.0 * ldexp(1.0, -24) * (double)nnz[i / D] * pmag[i];
  free(nnz);
  double ae;
  double w = worst(sout, rout, tol, qn, &ae);
  test_check(w <= 1.0, "%s: out vs reference: %.3g of tolerance (max abs %.3g)", name, w, ae);
  double psum_err = 0;
  for (size_t r = 0; r < rows; ++r) {
    const double e = fabs(s.merged[ADASPLASH_SHARD_PSUM][r] - 1.0);
    if (!(e <= psum_err)) psum_err = e;
  }
  test_check(psum_err <= 1e-5, "%s: merged sum p within 1e-5 of 1 (%.3g)", name, psum_err);

  /* The library on the whole sequence: inference (decode path) and training (fused passes). */
  cl_mem kd = device_tensor(ctx, k, kn, c->dtype), vd = device_tensor(ctx, v, kn, c->dtype);
  const size_t esz = adasplash_dtype_size(c->dtype);
  cl_mem outd = test_buffer(ctx, NULL, qn * esz), dqd = test_buffer(ctx, NULL, qn * esz),
         dkd = test_buffer(ctx, NULL, kn * esz), dvd = test_buffer(ctx, NULL, kn * esz);
  size_t saved_bytes = 0;
  test_require(ctx, adasplash_attention_prepare(ctx, &d), "prepare");
  test_require(ctx, adasplash_attention_saved_size(ctx, &d, &saved_bytes), "saved size");
  cl_mem saved = test_buffer(ctx, NULL, saved_bytes);
  double *lout = malloc(qn * sizeof *lout);
  test_require(
      ctx, adasplash_attention_forward(ctx, &d, NULL, qd, kd, vd, outd, NULL, NULL, 0, NULL, NULL),
      "forward (inference)");
  read_tensor(ctx, outd, qn, c->dtype, lout);
  for (size_t i = 0; i < qn; ++i) tol[i] = 2.0 * tol[i] + unit(c->dtype) * fabs(lout[i]);
  w = worst(sout, lout, tol, qn, &ae);
  test_check(w <= 1.0,
             "%s: out vs single-device inference forward: %.3g of tolerance (max abs "
             "%.3g)",
             name, w, ae);
  test_require(
      ctx, adasplash_attention_forward(ctx, &d, NULL, qd, kd, vd, outd, saved, NULL, 0, NULL, NULL),
      "forward (training)");
  read_tensor(ctx, outd, qn, c->dtype, lout);
  /* The fused passes round P to the storage format where their products do (the NVIDIA path):
   * at most u * sum_j p |v| more to first order, twice that with the second-order terms. */
  double u = 0.0;
  if (attn_products_round_unit(ctx, c->dtype, c->head_dim, &u))
    for (size_t i = 0; i < qn; ++i) tol[i] += 2.0 * u * pmag[i];
  w = worst(sout, lout, tol, qn, &ae);
  test_check(w <= 1.0,
             "%s: out vs single-device training forward: %.3g of tolerance (max abs "
             "%.3g)",
             name, w, ae);
  test_require(ctx,
               adasplash_attention_backward(ctx, &d, NULL, qd, kd, vd, outd, doutd, saved, dqd, dkd,
                                            dvd, NULL, NULL, 0, NULL, NULL),
               "backward");
  double *ldq = malloc(qn * sizeof *ldq), *ldk = malloc(kn * sizeof *ldk),
         *ldv = malloc(kn * sizeof *ldv);
  read_tensor(ctx, dqd, qn, c->dtype, ldq);
  read_tensor(ctx, dkd, kn, c->dtype, ldk);
  read_tensor(ctx, dvd, kn, c->dtype, ldv);
  /* Where the single-device backward rounds its products' factors (the NVIDIA path) and the
   * shard kernels do not (fp32), the two differ by up to u times the first-order magnitudes of
   * that rounding (attn_rounding_magnitudes), on top of the two tolerances. */
  double *mdq = calloc(qn, sizeof *mdq), *mdk = calloc(kn, sizeof *mdk),
         *mdv = calloc(kn, sizeof *mdv);
  if (u > 0.0) {
    attn_problem mp;
    memset(&mp, 0, sizeof mp);
    mp.c.batch = c->batch, mp.c.q_heads = c->q_heads, mp.c.kv_heads = c->kv_heads;
    mp.c.q_len = c->q_len, mp.c.kv_len = c->kv_len, mp.c.head_dim = c->head_dim;
    mp.c.causal = c->causal, mp.c.dtype = c->dtype, mp.c.alpha = c->alpha;
    mp.c.algorithm = ADASPLASH_ATTN_ENTMAX;
    mp.ref = rp;
    mp.alpha_h = alpha;
    mp.q = q, mp.k = k, mp.v = v, mp.q_n = qn, mp.kv_n = kn;
    attn_rounding_magnitudes(&mp, p, dout, NULL, mdq, mdk, mdv, NULL);
  }
  const struct {
    const char *what;
    const double *got, *ref, *lib, *mag;
    size_t n;
    int stored;
  } grads[] = {{"dq", sdq, rdq, ldq, mdq, qn, 0},
               {"dk", sdk, rdk, ldk, mdk, kn, 1},
               {"dv", sdv, rdv, ldv, mdv, kn, 1}};
  for (size_t g = 0; g < 3; ++g) {
    for (size_t i = 0; i < grads[g].n; ++i)
      tol[i] = 1e-3 * (1.0 + fabs(grads[g].ref[i])) +
               (grads[g].stored ? unit(c->dtype) * fabs(grads[g].ref[i]) : 0.0);
    w = worst(grads[g].got, grads[g].ref, tol, grads[g].n, &ae);
    test_check(w <= 1.0, "%s: %s vs reference: %.3g of tolerance (max abs %.3g)", name,
               grads[g].what, w, ae);
    for (size_t i = 0; i < grads[g].n; ++i)
      tol[i] = 2.0 * tol[i] + unit(c->dtype) * fabs(grads[g].lib[i]) + 2.0 * u * grads[g].mag[i];
    w = worst(grads[g].got, grads[g].lib, tol, grads[g].n, &ae);
    test_check(w <= 1.0, "%s: %s vs single-device backward: %.3g of tolerance (max abs %.3g)", name,
               grads[g].what, w, ae);
  }
  printf("%s: %d rounds, |sum p - 1| %.2g\n", name, rounds, psum_err);

  clReleaseMemObject(kd);
  clReleaseMemObject(vd);
  clReleaseMemObject(outd);
  clReleaseMemObject(dqd);
  clReleaseMemObject(dkd);
  clReleaseMemObject(dvd);
  clReleaseMemObject(saved);
  clReleaseMemObject(qd);
  clReleaseMemObject(doutd);
  for (int r = 0; r < c->nshard; ++r) {
    cl_mem m[] = {s.k[r], s.v[r], s.dk[r], s.dv[r], s.work[r]};
    for (int i = 0; i < 5; ++i)
      if (m[i]) clReleaseMemObject(m[i]);
    for (int a = 0; a < 7; ++a) free(s.arr[r][a]);
  }
  for (int a = 0; a < 7; ++a) free(s.merged[a]);
  free(q), free(k), free(v), free(dout), free(tmp), free(sdq), free(sdk), free(sdv), free(sout);
  free(alpha), free(rout), free(p), free(rdq), free(rdk), free(rdv), free(tol), free(lout),
      free(pmag);
  free(ldq), free(ldk), free(ldv), free(mdq), free(mdk), free(mdv);
}

/* ---- bad arguments ------------------------------------------------------------------------------
 */

#define CANARY 12345.0f

static int canaries_intact(const float *a, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (a[i] != CANARY) return 0;
  return 1;
}

static void expect(adasplash_context *ctx, adasplash_status got, adasplash_status want,
                   const float *out, size_t n, const char *what) {
  char msg[512] = "";
  adasplash_get_last_error(ctx, msg, sizeof msg, NULL);
  test_check(got == want, "%s: status %d (%s), expected %d", what, (int)got, msg, (int)want);
  test_check(!out || canaries_intact(out, n), "%s: output touched", what);
}

static void bad_arguments(adasplash_context *ctx) {
  const scase c = {1, 2, 1, 4, 40, 16, 1, ADASPLASH_F32, 1.5, 2, {0, 24, 40}, 77};
  adasplash_attention_desc d = make_desc(&c);
  const size_t D = 16, rows = 8, qn = rows * D;
  double *q = malloc(qn * sizeof *q), *k = malloc(40 * D * sizeof *k);
  fill(q, qn, ADASPLASH_F32, 1.0, 1);
  fill(k, 40 * D, ADASPLASH_F32, 1.0, 2);
  cl_mem qd = device_tensor(ctx, q, qn, ADASPLASH_F32);
  adasplash_shard sh[2];
  adasplash_shard_sizes sz[2];
  cl_mem kd[2], work[2];
  for (int r = 0; r < 2; ++r) {
    adasplash_shard_init(&sh[r]);
    sh[r].kv_offset = c.bounds[r];
    sh[r].kv_count = c.bounds[r + 1] - c.bounds[r];
    sz[r].struct_size = sizeof sz[r];
    test_require(ctx, adasplash_attention_shard_sizes(ctx, &d, &sh[r], &sz[r]), "sizes");
    kd[r] =
        device_tensor(ctx, k + (size_t)c.bounds[r] * D, (size_t)sh[r].kv_count * D, ADASPLASH_F32);
    work[r] = test_buffer(ctx, NULL, sz[r].work_bytes);
  }
  const size_t *cnt = sz[0].count;
  float *out = malloc((cnt[1] + qn) * sizeof *out);
  float *a0 = malloc(cnt[1] * sizeof *a0), *a1 = malloc(cnt[1] * sizeof *a1);
#define RESET() \
  for (size_t i = 0; i < cnt[1] + qn; ++i) out[i] = CANARY
  adasplash_status st;

  /* Shapes and arguments of the first step. */
  adasplash_shard bad = sh[1];
  bad.kv_count = 30; /* 24 + 30 > 40 */
  RESET();
  st = adasplash_attention_shard_max(ctx, &d, &bad, NULL, qd, kd[1], work[1], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_SHAPE, out, cnt[0], "shard past the sequence");
  bad = sh[1];
  bad.kv_offset = -1;
  st = adasplash_attention_shard_max(ctx, &d, &bad, NULL, qd, kd[1], work[1], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_SHAPE, out, cnt[0], "negative kv_offset");
  bad = sh[1];
  bad.struct_size = 3;
  st = adasplash_attention_shard_max(ctx, &d, &bad, NULL, qd, kd[1], work[1], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[0], "shard struct_size");
  st = adasplash_attention_shard_max(ctx, &d, NULL, NULL, qd, kd[1], work[1], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[0], "NULL shard");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, NULL, kd[0], work[0], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_BUFFER, out, cnt[0], "NULL q");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, NULL, work[0], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_BUFFER, out, cnt[0], "NULL k");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, kd[1], work[0], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_BUFFER_TOO_SMALL, out, cnt[0], "k of the smaller shard");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, kd[0], NULL, out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_BUFFER, out, cnt[0], "NULL work");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, kd[0], qd, out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_BUFFER_TOO_SMALL, out, cnt[0], "work too small");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, kd[0], work[0], NULL, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, NULL, 0, "NULL row_max");
  st = adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, kd[0], work[0], out, cnt[0] + 1);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[0] + 1, "row_max of wrong length");
  adasplash_attention_desc dbad = d;
  dbad.q_heads = 3;
  dbad.kv_heads = 2;
  st = adasplash_attention_shard_max(ctx, &dbad, &sh[0], NULL, qd, kd[0], work[0], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_SHAPE, out, cnt[0], "q_heads not a multiple");
  dbad = d;
  dbad.alpha = 2.5f;
  st = adasplash_attention_shard_max(ctx, &dbad, &sh[0], NULL, qd, kd[0], work[0], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ALPHA, out, cnt[0], "alpha out of range");
  dbad = d;
  dbad.kv_lens = qd;
  st = adasplash_attention_shard_max(ctx, &dbad, &sh[0], NULL, qd, kd[0], work[0], out, cnt[0]);
  expect(ctx, st, ADASPLASH_ERROR_UNSUPPORTED, out, cnt[0], "kv_lens");

  /* Steps out of order: a fresh work buffer has no header. */
  RESET();
  st = adasplash_attention_shard_histogram(ctx, &d, &sh[0], NULL, work[0], a0, cnt[0], out, cnt[1]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[1], "histogram before max");

  /* Merged max inconsistent with the shard's own. */
  test_require(ctx,
               adasplash_attention_shard_max(ctx, &d, &sh[0], NULL, qd, kd[0], work[0], a0, cnt[0]),
               "max 0");
  test_require(ctx,
               adasplash_attention_shard_max(ctx, &d, &sh[1], NULL, qd, kd[1], work[1], a1, cnt[0]),
               "max 1");
  float *m = malloc(cnt[0] * sizeof *m);
  for (size_t i = 0; i < cnt[0]; ++i) m[i] = a0[i] - 1.0f; /* below shard 0's max */
  RESET();
  st = adasplash_attention_shard_histogram(ctx, &d, &sh[0], NULL, work[0], m, cnt[0], out, cnt[1]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[1], "merged max below own max");
  for (size_t i = 0; i < cnt[0]; ++i) m[i] = NAN;
  st = adasplash_attention_shard_histogram(ctx, &d, &sh[0], NULL, work[0], m, cnt[0], out, cnt[1]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[1], "NaN merged max");
  st = adasplash_attention_shard_histogram(ctx, &d, &sh[0], NULL, work[0], a0, cnt[0], out,
                                           cnt[1] - 1);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[1] - 1, "hist of wrong length");
  for (size_t i = 0; i < cnt[0]; ++i) m[i] = a0[i] > a1[i] ? a0[i] : a1[i];
  float *h0 = malloc(cnt[1] * sizeof *h0), *h1 = malloc(cnt[1] * sizeof *h1);
  test_require(
      ctx,
      adasplash_attention_shard_histogram(ctx, &d, &sh[0], NULL, work[0], m, cnt[0], h0, cnt[1]),
      "hist 0");
  test_require(
      ctx,
      adasplash_attention_shard_histogram(ctx, &d, &sh[1], NULL, work[1], m, cnt[0], h1, cnt[1]),
      "hist 1");
  /* Refine: the own histogram alone is not the merged one (shard 1's counts are missing). */
  RESET();
  st = adasplash_attention_shard_refine(ctx, &d, &sh[1], NULL, work[1], 0, h0, cnt[1], out, cnt[2]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[2], "merged hist missing a shard");
  st = adasplash_attention_shard_refine(ctx, &d, &sh[0], NULL, work[0], 1, h0, cnt[1], out, cnt[2]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[2], "round 1 before round 0");
  float *hm = malloc(cnt[1] * sizeof *hm);
  for (size_t i = 0; i < cnt[1]; ++i) hm[i] = h0[i] + h1[i];
  st = adasplash_attention_shard_output(ctx, &d, &sh[0], NULL, kd[0], work[0], out, qn, out, rows);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, qn, "output before refine");
  float *s0 = malloc(cnt[2] * sizeof *s0), *s1 = malloc(cnt[2] * sizeof *s1);
  test_require(
      ctx,
      adasplash_attention_shard_refine(ctx, &d, &sh[0], NULL, work[0], 0, hm, cnt[1], s0, cnt[2]),
      "refine 0");
  test_require(
      ctx,
      adasplash_attention_shard_refine(ctx, &d, &sh[1], NULL, work[1], 0, hm, cnt[1], s1, cnt[2]),
      "refine 0 (1)");
  size_t pending = 0;
  for (size_t i = 0; i < cnt[2]; ++i) s0[i] += s1[i];
  test_require(NULL, adasplash_attention_shard_pending(&sz[0], s0, &pending), "pending");
  if (pending > 0) {
    /* Merged sums whose pending flags disagree with the shard's. */
    for (size_t i = 0; i < cnt[2]; ++i) out[i] = 0.0f;
    st = adasplash_attention_shard_refine(ctx, &d, &sh[0], NULL, work[0], 1, NULL, 0, out, cnt[2]);
    test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "all-zero merged sums refused (%d)",
               (int)st);
    test_check(out[0] == 0.0f, "refused sums left as they were");
    st = adasplash_attention_shard_refine(ctx, &d, &sh[0], NULL, work[0], 2, NULL, 0, s0, cnt[2]);
    test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "round 2 after round 0 refused (%d)",
               (int)st);
    st =
        adasplash_attention_shard_output(ctx, &d, &sh[0], NULL, kd[0], work[0], out, qn, out, rows);
    test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "output with pending rows refused (%d)",
               (int)st);
  }
  /* Backward before the forward finished. */
  RESET();
  st = adasplash_attention_shard_backward_sums(ctx, &d, &sh[0], NULL, kd[0], qd, work[0], out,
                                               cnt[5]);
  expect(ctx, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[5], "backward sums before output");
  /* Host helpers. */
  adasplash_shard_sizes zs = sz[0];
  zs.struct_size = 1;
  st = adasplash_shard_merge(&zs, ADASPLASH_SHARD_SUMS, out, s1);
  expect(NULL, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[2], "merge with bad sizes");
  st = adasplash_shard_merge(&sz[0], (adasplash_shard_array)9, out, s1);
  expect(NULL, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[2], "merge of no array");
  st = adasplash_shard_merge(&sz[0], ADASPLASH_SHARD_SUMS, out, NULL);
  expect(NULL, st, ADASPLASH_ERROR_INVALID_ARGUMENT, out, cnt[2], "merge from NULL");
  size_t pend = 77;
  st = adasplash_attention_shard_pending(&zs, s0, &pend);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT && pend == 77, "pending with bad sizes");
  zs = sz[0];
  zs.struct_size = 1;
  st = adasplash_attention_shard_sizes(ctx, &d, &sh[0], &zs);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "sizes with bad struct_size");
  free(q), free(k), free(out), free(a0), free(a1), free(m), free(h0), free(h1), free(hm);
  free(s0), free(s1);
  clReleaseMemObject(qd);
  for (int r = 0; r < 2; ++r) {
    clReleaseMemObject(kd[r]);
    clReleaseMemObject(work[r]);
  }
#undef RESET
}

int main(int argc, char **argv) {
  const int tiny = argc > 1 && strcmp(argv[1], "--oclgrind") == 0;
  /* The single-device inference forward the shards are compared with: the decode path (fp32 p)
   * for every q_len of the cases (a device's default decode_max_q may be lower), on top of
   * whatever ADASPLASH_TUNE asks for. */
  char tune[1024];
  const char *env_tune = getenv("ADASPLASH_TUNE");
  snprintf(tune, sizeof tune, "%s%sdecode_max_q=16", env_tune ? env_tune : "",
           env_tune && *env_tune ? "," : "");
  adasplash_context_options opts;
  adasplash_context_options_init(&opts);
  opts.tune = tune;
  adasplash_context *ctx = test_context(&opts);
  test_print_device(ctx);
  const scase cases[] = {
      /* q_len 1, MHA, unequal shards with an empty one, the three alpha modes. */
      {1, 2, 2, 1, 300, 32, 1, ADASPLASH_F32, 1.5, 3, {0, 0, 77, 300}, 11},
      {1, 2, 2, 1, 300, 32, 1, ADASPLASH_F32, 2.0, 3, {0, 180, 300, 300}, 12},
      {1, 2, 2, 1, 300, 32, 0, ADASPLASH_F32, 1.3, 2, {0, 13, 300}, 13},
      /* q_len 4 and 16 with GQA, causal (global positions decide the mask). */
      {2, 4, 2, 4, 257, 64, 1, ADASPLASH_F32, 1.5, 4, {0, 100, 100, 200, 257}, 14},
      {1, 4, 1, 16, 500, 64, 1, ADASPLASH_F32, 1.3, 3, {0, 250, 490, 500}, 15},
      {1, 4, 2, 16, 700, 32, 0, ADASPLASH_F32, 2.0, 2, {0, 350, 700}, 16},
      /* bf16 storage. */
      {1, 4, 2, 4, 400, 64, 1, ADASPLASH_BF16, 1.5, 3, {0, 123, 123, 400}, 17},
      {1, 2, 1, 16, 600, 32, 1, ADASPLASH_BF16, 1.3, 2, {0, 1, 600}, 18},
      {1, 2, 2, 1, 2048, 64, 0, ADASPLASH_BF16, 2.0, 2, {0, 1500, 2048}, 19},
  };
  const scase tiny_cases[] = {
      {1, 2, 1, 4, 40, 16, 1, ADASPLASH_F32, 1.5, 3, {0, 0, 25, 40}, 21},
      {1, 2, 2, 1, 33, 16, 0, ADASPLASH_BF16, 1.3, 2, {0, 17, 33}, 22},
  };
  const scase *list = tiny ? tiny_cases : cases;
  const size_t n = tiny ? sizeof tiny_cases / sizeof tiny_cases[0] : sizeof cases / sizeof cases[0];
  for (size_t i = 0; i < n; ++i) run_case(ctx, &list[i]);
  bad_arguments(ctx);
  adasplash_context_release(ctx);
  return test_finish("shard");
}
