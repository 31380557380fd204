/*
 * test_decode.c - the split-KV decode path (issue 14) against the double-precision reference:
 * contiguous K/V through adasplash_attention_forward (an inference call of a decode shape takes
 * the decode path; the same call with a saved buffer runs the fused passes, and the two must
 * agree), and a paged KV cache through adasplash_attention_forward_paged (page sizes 16 and 256,
 * pages in shuffled order, two pool layouts, a batch of lengths including 0 and 1). kv_len in
 * {1, 17, 1000, 65536}, q_len in {1, 4, 16}, GQA, causal, per-head alpha, f32/f16/bf16. The
 * backward of decode shapes (a training forward keeps the fused passes) against the reference. Bad
 * tables and lengths: each refused with its status before anything is enqueued, the output's
 * canary intact.
 *
 * Tolerance per output element: 1e-4 + u_store |O| + 4 * 2^-24 * n_i * M_id, with
 *  - 1e-4: tau solved to |sum p - 1| <= 1e-6 and normalised by the measured sum (the row
 *    operator's terms), fp32 scores from <= 256-term dot products (as the fused forward's test);
 *  - u_store |O|: the output rounded to its storage (0 for fp32, 2^-11 fp16, 2^-8 bf16); inputs are
 *    rounded to the dtype before the reference sees them;
 *  - n_i M_id: the fp32 sums of p v, in at most n_i = (keys in the row's support) terms, each
 *    adding at most 2^-24 of the running magnitude M_id = sum_j p_ij |v_jd| (first-order bound,
 *    4x for the split partials, their combine and the normalisation).
 * --oclgrind: tiny shapes only (the simulator).
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

typedef struct dcase {
  int batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal;
  adasplash_dtype dtype;
  double alpha;       /* 0: per head */
  const int *kv_lens; /* [batch] or NULL (paged: required) */
  const int *q_lens;  /* [batch] or NULL */
  int page_size;      /* 0: contiguous */
  int vllm;           /* paged pools as [pages, page_size, kv_heads, head_dim] */
  unsigned long long seed;
} dcase;

static const char *dname(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? "f32" : (d == ADASPLASH_F16 ? "f16" : "bf16");
}

static void label(const dcase *c, char *out, size_t n) {
  snprintf(out, n, "B=%d Hq=%d Hkv=%d q=%d kv=%d D=%d %s%s alpha=%g%s%s ps=%d%s", c->batch,
           c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim, dname(c->dtype),
           c->causal ? " causal" : "", c->alpha, c->kv_lens ? " kv_lens" : "",
           c->q_lens ? " q_lens" : "", c->page_size, c->vllm ? " vllm" : "");
}

/* Reference output and the tolerance of every element (the decode path's: fp32 p); pmag (may be
 * NULL) gets sum_j p_ij |v_jd|, the first-order magnitude of rounding P before P V. */
static void reference(const dcase *c, const double *q, const double *k, const double *v,
                      const double *alpha, double *out, double *tol, double *pmag) {
  ref_attention_problem rp = {c->batch,  c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim,
                              c->causal, c->q_lens,  c->kv_lens,  alpha,    0.0};
  const size_t rows = (size_t)c->batch * c->q_heads * c->q_len, D = (size_t)c->head_dim;
  double *p = (double *)malloc(rows * (size_t)c->kv_len * sizeof(double));
  if (!p || ref_attention_forward(&rp, q, k, v, out, NULL, p) != 0) {
    printf("FAIL: reference\n");
    exit(1);
  }
  double *mag = pmag ? pmag : (double *)malloc(rows * D * sizeof(double));
  size_t *nnz = (size_t *)malloc(rows * sizeof(size_t));
  test_pv_magnitudes(p, v, c->batch, c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim, mag,
                     nnz);
  for (size_t i = 0; i < rows * D; ++i)
    tol[i] =
        1e-4 + unit(c->dtype) * fabs(out[i]) + 4.0 * ldexp(1.0, -24) * (double)nnz[i / D] * mag[i];
  if (mag != pmag) free(mag);
  free(nnz);
  free(p);
}

static double worst_err(const double *got, const double *want, const double *tol, size_t n,
                        size_t *at) {
  double w = 0;
  *at = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = fabs(got[i] - want[i]) / tol[i];
    if (!(e <= w)) {
      w = isnan(e) ? INFINITY : e;
      *at = i;
    }
  }
  return w;
}

static void fill(double *x, size_t n, adasplash_dtype dt, unsigned long long seed) {
  ref_rng r;
  ref_rng_seed(&r, seed);
  for (size_t i = 0; i < n; ++i) x[i] = test_round(ref_rng_normal(&r), dt);
}

static adasplash_attention_desc make_desc(const dcase *c) {
  return test_attention_desc(c->dtype, c->batch, c->q_heads, c->kv_heads, c->q_len, c->kv_len,
                             c->head_dim, c->causal, c->alpha > 0 ? (float)c->alpha : 1.5f);
}

/* Contiguous: the decode path (inference) and the fused forward (saved buffer) against the
 * reference and each other. */
static int run_contiguous(adasplash_context *ctx, const dcase *c) {
  char lb[256];
  label(c, lb, sizeof lb);
  const size_t D = (size_t)c->head_dim, rows = (size_t)c->batch * c->q_heads * c->q_len;
  const size_t kvn = (size_t)c->batch * c->kv_heads * c->kv_len * D, qn = rows * D;
  const size_t es = adasplash_dtype_size(c->dtype);
  double *q = malloc(qn * 8), *k = malloc(kvn * 8), *v = malloc(kvn * 8);
  double *ref = malloc(qn * 8), *tol = malloc(qn * 8), *dec = malloc(qn * 8), *fus = malloc(qn * 8),
         alpha[64];
  float alpha_f[64];
  fill(q, qn, c->dtype, c->seed);
  fill(k, kvn, c->dtype, c->seed + 1);
  fill(v, kvn, c->dtype, c->seed + 2);
  static const double per_head[] = {1.5, 2.0, 1.3, 1.75};
  for (int h = 0; h < c->q_heads; ++h) {
    alpha[h] = c->alpha > 0 ? c->alpha : per_head[h % 4];
    alpha_f[h] = (float)alpha[h];
  }
  double *pmag = malloc(qn * 8), *tol_fused = malloc(qn * 8);
  reference(c, q, k, v, alpha, ref, tol, pmag);
  /* The fused forward rounds P to the storage format where its products do (the NVIDIA path):
   * at most u * sum_j p |v| more to first order, twice that with the second-order terms. */
  double u = 0.0;
  const int rounds = attn_products_round_unit(ctx, c->dtype, c->head_dim, &u);
  for (size_t i = 0; i < qn; ++i) tol_fused[i] = tol[i] + (rounds ? 2.0 * u * pmag[i] : 0.0);
  adasplash_attention_desc d = make_desc(c);
  cl_mem ab = NULL, ql = NULL, kl = NULL;
  if (c->alpha <= 0) d.alpha_buf = ab = test_buffer(ctx, alpha_f, (size_t)c->q_heads * 4);
  if (c->q_lens) d.q_lens = ql = test_buffer(ctx, c->q_lens, (size_t)c->batch * 4);
  if (c->kv_lens) d.kv_lens = kl = test_buffer(ctx, c->kv_lens, (size_t)c->batch * 4);
  test_require(ctx, adasplash_attention_prepare(ctx, &d), "prepare");
  void *hq = malloc(qn * es), *hk = malloc(kvn * es), *hv = malloc(kvn * es), *ho = malloc(qn * es);
  test_pack(q, qn, c->dtype, hq);
  test_pack(k, kvn, c->dtype, hk);
  test_pack(v, kvn, c->dtype, hv);
  cl_mem bq = test_buffer(ctx, hq, qn * es), bk = test_buffer(ctx, hk, kvn * es),
         bv = test_buffer(ctx, hv, kvn * es), bo = test_buffer(ctx, NULL, qn * es);
  size_t saved_bytes = 0;
  test_require(ctx, adasplash_attention_saved_size(ctx, &d, &saved_bytes), "saved_size");
  cl_mem saved = test_buffer(ctx, NULL, saved_bytes);
  /* The inference call, traced to see that it ran the decode kernels. */
  char trace[64];
  snprintf(trace, sizeof trace, "test_decode_trace_%d.csv", (int)c->seed);
  remove(trace);
  setenv("ADASPLASH_PROFILE", trace, 1);
  test_require(
      ctx, adasplash_attention_forward(ctx, &d, NULL, bq, bk, bv, bo, NULL, NULL, 0, NULL, NULL),
      "forward (inference)");
  unsetenv("ADASPLASH_PROFILE");
  test_read(ctx, bo, ho, qn * es);
  test_unpack(ho, qn, c->dtype, dec);
  int used_decode = 0;
  FILE *f = fopen(trace, "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "decode_finish,", 14) == 0) used_decode = 1;
    fclose(f);
    remove(trace);
  }
  test_require(
      ctx, adasplash_attention_forward(ctx, &d, NULL, bq, bk, bv, bo, saved, NULL, 0, NULL, NULL),
      "forward (saved: fused)");
  test_read(ctx, bo, ho, qn * es);
  test_unpack(ho, qn, c->dtype, fus);
  size_t at, at2;
  const double wd = worst_err(dec, ref, tol, qn, &at),
               wf = worst_err(fus, ref, tol_fused, qn, &at2);
  double agree = 0;
  for (size_t i = 0; i < qn; ++i) {
    double e = fabs(dec[i] - fus[i]) / (tol[i] + tol_fused[i]);
    if (!(e <= agree)) agree = isnan(e) ? INFINITY : e;
  }
  int ok = test_check(used_decode, "%s: the inference call ran the decode kernels", lb);
  ok &=
      test_check(wd <= 1.0, "%s: decode O within tolerance (worst %.3g x tol at %zu: %.6g vs %.6g)",
                 lb, wd, at, dec[at], ref[at]);
  ok &= test_check(wf <= 1.0, "%s: fused O within tolerance (worst %.3g x tol)", lb, wf);
  ok &= test_check(agree <= 1.0, "%s: decode and fused agree (worst %.3g x the sum of their tol)",
                   lb, agree);
  clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv), clReleaseMemObject(bo);
  clReleaseMemObject(saved);
  if (ab) clReleaseMemObject(ab);
  if (ql) clReleaseMemObject(ql);
  if (kl) clReleaseMemObject(kl);
  free(q), free(k), free(v), free(ref), free(tol), free(dec), free(fus), free(pmag),
      free(tol_fused);
  free(hq), free(hk), free(hv), free(ho);
  return ok;
}

/* A paged cache built from contiguous k, v [B, Hkv, kv_len, D]: every used block gets a page in
 * shuffled order (plus spare pages never referenced); unused table entries are -1. */
typedef struct paged {
  int num_pages, max_blocks;
  int *table, *lens;
  double *kp, *vp; /* pools, in the case's layout */
  size_t pool_n;
} paged;

static size_t pool_index(const dcase *c, int page, int h, int row, int d) {
  const size_t ps = (size_t)c->page_size, H = (size_t)c->kv_heads, D = (size_t)c->head_dim;
  return c->vllm ? (((size_t)page * ps + (size_t)row) * H + (size_t)h) * D + (size_t)d
                 : (((size_t)page * H + (size_t)h) * ps + (size_t)row) * D + (size_t)d;
}

static void make_paged(const dcase *c, const double *k, const double *v, paged *pg) {
  const int ps = c->page_size, D = c->head_dim;
  pg->max_blocks = c->kv_len / ps;
  int used = 0;
  for (int b = 0; b < c->batch; ++b) used += (c->kv_lens[b] + ps - 1) / ps;
  pg->num_pages = used + 3;
  int *order = malloc((size_t)pg->num_pages * sizeof(int));
  for (int i = 0; i < pg->num_pages; ++i) order[i] = i;
  ref_rng r;
  ref_rng_seed(&r, c->seed + 7);
  for (int i = pg->num_pages - 1; i > 0; --i) {
    int j = (int)(ref_rng_uniform(&r) * (i + 1));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  pg->table = malloc((size_t)c->batch * pg->max_blocks * sizeof(int));
  pg->lens = malloc((size_t)c->batch * sizeof(int));
  pg->pool_n = (size_t)pg->num_pages * ps * c->kv_heads * D;
  pg->kp = calloc(pg->pool_n, sizeof(double));
  pg->vp = calloc(pg->pool_n, sizeof(double));
  for (size_t i = 0; i < pg->pool_n; ++i) pg->kp[i] = pg->vp[i] = 1e3; /* never read */
  int next = 0;
  for (int b = 0; b < c->batch; ++b) {
    pg->lens[b] = c->kv_lens[b];
    for (int blk = 0; blk < pg->max_blocks; ++blk) {
      const int in_use = blk * ps < c->kv_lens[b];
      const int page = in_use ? order[next++] : -1;
      pg->table[(size_t)b * pg->max_blocks + blk] = page;
      if (!in_use) continue;
      for (int h = 0; h < c->kv_heads; ++h)
        for (int row = 0; row < ps && blk * ps + row < c->kv_lens[b]; ++row)
          for (int d = 0; d < D; ++d) {
            const size_t src = (((size_t)b * c->kv_heads + h) * c->kv_len + blk * ps + row) * D + d;
            pg->kp[pool_index(c, page, h, row, d)] = k[src];
            pg->vp[pool_index(c, page, h, row, d)] = v[src];
          }
    }
  }
  free(order);
}

static void free_paged(paged *pg) {
  free(pg->table), free(pg->lens), free(pg->kp), free(pg->vp);
}

static adasplash_layout pool_layout(const dcase *c) {
  adasplash_layout l = {0, 0, 0, 0};
  if (c->vllm) {
    l.seq_stride = (size_t)c->kv_heads * c->head_dim;
    l.head_stride = (size_t)c->head_dim;
    l.batch_stride = (size_t)c->page_size * c->kv_heads * c->head_dim;
  }
  return l;
}

static int run_paged(adasplash_context *ctx, const dcase *c) {
  char lb[256];
  label(c, lb, sizeof lb);
  const size_t D = (size_t)c->head_dim, rows = (size_t)c->batch * c->q_heads * c->q_len;
  const size_t kvn = (size_t)c->batch * c->kv_heads * c->kv_len * D, qn = rows * D;
  const size_t es = adasplash_dtype_size(c->dtype);
  double *q = malloc(qn * 8), *k = malloc(kvn * 8), *v = malloc(kvn * 8);
  double *ref = malloc(qn * 8), *tol = malloc(qn * 8), *got = malloc(qn * 8), alpha[64];
  float alpha_f[64];
  fill(q, qn, c->dtype, c->seed);
  fill(k, kvn, c->dtype, c->seed + 1);
  fill(v, kvn, c->dtype, c->seed + 2);
  static const double per_head[] = {1.5, 2.0, 1.3, 1.75};
  for (int h = 0; h < c->q_heads; ++h) {
    alpha[h] = c->alpha > 0 ? c->alpha : per_head[h % 4];
    alpha_f[h] = (float)alpha[h];
  }
  reference(c, q, k, v, alpha, ref, tol, NULL);
  paged pg;
  make_paged(c, k, v, &pg);
  adasplash_attention_desc d = make_desc(c);
  d.k = d.v = pool_layout(c);
  cl_mem ql = NULL, ab = NULL;
  if (c->q_lens) d.q_lens = ql = test_buffer(ctx, c->q_lens, (size_t)c->batch * 4);
  if (c->alpha <= 0) d.alpha_buf = ab = test_buffer(ctx, alpha_f, (size_t)c->q_heads * 4);
  void *hq = malloc(qn * es), *hk = malloc(pg.pool_n * es), *hv = malloc(pg.pool_n * es),
       *ho = malloc(qn * es);
  test_pack(q, qn, c->dtype, hq);
  test_pack(pg.kp, pg.pool_n, c->dtype, hk);
  test_pack(pg.vp, pg.pool_n, c->dtype, hv);
  cl_mem bq = test_buffer(ctx, hq, qn * es), bk = test_buffer(ctx, hk, pg.pool_n * es),
         bv = test_buffer(ctx, hv, pg.pool_n * es), bo = test_buffer(ctx, NULL, qn * es);
  cl_mem bt = test_buffer(ctx, pg.table, (size_t)c->batch * pg.max_blocks * 4),
         bl = test_buffer(ctx, pg.lens, (size_t)c->batch * 4);
  adasplash_paged_kv kv;
  adasplash_paged_kv_init(&kv);
  kv.page_size = c->page_size;
  kv.num_pages = pg.num_pages;
  kv.max_blocks = pg.max_blocks;
  kv.block_table = bt;
  kv.seq_lens = bl;
  kv.block_table_host = pg.table;
  kv.seq_lens_host = pg.lens;
  size_t ws_bytes = 0;
  test_require(ctx, adasplash_attention_paged_workspace_size(ctx, &d, &kv, &ws_bytes),
               "paged_workspace_size");
  cl_mem ws = test_buffer(ctx, NULL, ws_bytes);
  test_require(
      ctx, adasplash_attention_forward_paged(ctx, &d, &kv, NULL, bq, bk, bv, bo, ws, 0, NULL, NULL),
      "forward_paged");
  test_read(ctx, bo, ho, qn * es);
  test_unpack(ho, qn, c->dtype, got);
  size_t at;
  const double w = worst_err(got, ref, tol, qn, &at);
  int ok =
      test_check(w <= 1.0, "%s: paged O within tolerance (worst %.3g x tol at %zu: %.6g vs %.6g)",
                 lb, w, at, got[at], ref[at]);
  clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv), clReleaseMemObject(bo);
  clReleaseMemObject(bt), clReleaseMemObject(bl), clReleaseMemObject(ws);
  if (ql) clReleaseMemObject(ql);
  if (ab) clReleaseMemObject(ab);
  free_paged(&pg);
  free(q), free(k), free(v), free(ref), free(tol), free(got), free(hq), free(hk), free(hv),
      free(ho);
  return ok;
}

/* The backward of a decode shape: a forward with a saved buffer runs the fused passes (the decode
 * path serves inference only), so the gradients are the fused backward's; checked against the
 * reference with the bounds of test_small_device (1e-4 of the largest gradient, plus the storage
 * rounding), plus, where the products round their factors (the NVIDIA path), twice u times the
 * first-order magnitudes of that rounding (attn_rounding_magnitudes; mag NULL otherwise). */
static double grad_worst(const double *got, const double *ref, size_t n, adasplash_dtype dt,
                         double u, const double *mag) {
  double m = 1.0, w = 0.0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(ref[i]));
  for (size_t i = 0; i < n; ++i) {
    double e = fabs(got[i] - ref[i]) /
               (1e-4 * m + unit(dt) * fabs(ref[i]) + (mag ? 2.0 * u * mag[i] : 0.0));
    if (!(e <= w)) w = isnan(e) ? INFINITY : e;
  }
  return w;
}

static int run_backward(adasplash_context *ctx, int q_len, int kv_len, adasplash_dtype dt) {
  attn_case c = {2,
                 4,
                 2,
                 q_len,
                 kv_len,
                 64,
                 1,
                 dt,
                 1.5,
                 0,
                 0,
                 0,
                 0.0,
                 0.0,
                 0,
                 ADASPLASH_ATTN_ENTMAX,
                 (unsigned long long)(q_len * 1000 + kv_len)};
  attn_problem p;
  attn_problem_make(ctx, &c, &p);
  char label[256];
  attn_case_label(&c, label, sizeof label);
  ref_rng rng;
  ref_rng_seed(&rng, 5);
  double *dout = malloc(p.q_n * 8), *out = malloc(p.q_n * 8), *dq = malloc(p.q_n * 8),
         *dk = malloc(p.kv_n * 8), *dv = malloc(p.kv_n * 8);
  for (size_t i = 0; i < p.q_n; ++i) dout[i] = test_round(ref_rng_normal(&rng), dt);
  attn_run r;
  attn_run_library(ctx, &p, dout, 0, &r);
  const size_t rows = (size_t)c.batch * c.q_heads * c.q_len;
  double *probs = malloc(rows * (size_t)c.kv_len * 8);
  ref_attention_forward(&p.ref, p.q, p.k, p.v, out, NULL, probs);
  ref_attention_backward(&p.ref, p.q, p.k, p.v, dout, dq, dk, dv, NULL);
  double u = 0.0, *mo = NULL, *mdq = NULL, *mdk = NULL, *mdv = NULL;
  if (attn_products_round(ctx, &c, &u)) {
    mo = malloc(p.q_n * 8), mdq = malloc(p.q_n * 8), mdk = malloc(p.kv_n * 8);
    mdv = malloc(p.kv_n * 8);
    attn_rounding_magnitudes(&p, probs, dout, mo, mdq, mdk, mdv, NULL);
  }
  int ok =
      test_check(grad_worst(r.out, out, p.q_n, dt, u, mo) <= 1.0, "%s: O (fused, saved)", label);
  ok &=
      test_check(grad_worst(r.dq, dq, p.q_n, dt, u, mdq) <= 1.0, "%s: dQ of a decode shape", label);
  ok &= test_check(grad_worst(r.dk, dk, p.kv_n, dt, u, mdk) <= 1.0, "%s: dK of a decode shape",
                   label);
  ok &= test_check(grad_worst(r.dv, dv, p.kv_n, dt, u, mdv) <= 1.0, "%s: dV of a decode shape",
                   label);
  free(dout), free(out), free(dq), free(dk), free(dv), free(probs);
  free(mo), free(mdq), free(mdk), free(mdv);
  attn_run_free(&r);
  attn_problem_free(&p);
  return ok;
}

/* ---- bad tables and lengths ------------------------------------------------------------------ */

#define CANARY 0x5a

static int expect_refused(adasplash_context *ctx, const adasplash_attention_desc *d,
                          const adasplash_paged_kv *kv, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                          size_t out_bytes, adasplash_status want, const char *what) {
  adasplash_status st =
      adasplash_attention_forward_paged(ctx, d, kv, NULL, q, k, v, out, NULL, 0, NULL, NULL);
  char msg[512] = "";
  adasplash_get_last_error(ctx, msg, sizeof msg, NULL);
  unsigned char *host = malloc(out_bytes);
  test_read(ctx, out, host, out_bytes);
  int intact = 1;
  for (size_t i = 0; i < out_bytes; ++i) intact &= host[i] == CANARY;
  free(host);
  int ok = test_check(st == want, "%s: refused with %s (got %s: %s)", what,
                      adasplash_status_string(want), adasplash_status_string(st), msg);
  ok &= test_check(intact, "%s: output untouched", what);
  ok &= test_check(st == ADASPLASH_SUCCESS || msg[0] != '\0', "%s: a message", what);
  return ok;
}

static int check_errors(adasplash_context *ctx) {
  const int B = 2, H = 2, D = 16, ps = 16, blocks = 2, pages = 4;
  adasplash_attention_desc d;
  adasplash_attention_desc_init(&d);
  d.batch = B;
  d.q_heads = d.kv_heads = H;
  d.q_len = 1;
  d.kv_len = blocks * ps;
  d.head_dim = D;
  d.flags = ADASPLASH_ATTN_FORWARD_ONLY; /* an inference desc (documented, so accepted) */
  test_require(ctx, adasplash_attention_prepare(ctx, &d), "prepare (errors)");
  const size_t pool = (size_t)pages * H * ps * D * 4, out_bytes = (size_t)B * H * D * 4;
  cl_mem q = test_buffer(ctx, NULL, out_bytes), k = test_buffer(ctx, NULL, pool),
         v = test_buffer(ctx, NULL, pool), small = test_buffer(ctx, NULL, pool / 2);
  unsigned char *canary = malloc(out_bytes);
  memset(canary, CANARY, out_bytes);
  cl_mem out = test_buffer(ctx, canary, out_bytes);
  int table[4] = {0, 1, 2, 3}, lens[2] = {32, 17};
  cl_mem bt = test_buffer(ctx, table, sizeof table), bl = test_buffer(ctx, lens, sizeof lens);
  adasplash_paged_kv good;
  adasplash_paged_kv_init(&good);
  good.page_size = ps;
  good.num_pages = pages;
  good.max_blocks = blocks;
  good.block_table = bt;
  good.seq_lens = bl;
  good.block_table_host = table;
  good.seq_lens_host = lens;
  int ok = 1;
  adasplash_paged_kv kv = good;
  adasplash_attention_desc dd = d;
#define REFUSE(want, what) \
  ok &= expect_refused(ctx, &dd, &kv, q, k, v, out, out_bytes, want, what), kv = good, dd = d
  kv.page_size = 48;
  REFUSE(ADASPLASH_ERROR_INVALID_ARGUMENT, "page_size 48");
  kv.struct_size = 3;
  REFUSE(ADASPLASH_ERROR_INVALID_ARGUMENT, "kv struct_size");
  {
    int bad[4] = {0, 4, 2, 3}; /* page 4 of 4 */
    kv.block_table_host = bad;
    REFUSE(ADASPLASH_ERROR_INVALID_ARGUMENT, "table entry = num_pages");
    int neg[4] = {0, 1, -1, 3}; /* used by sequence 1 (17 keys: blocks 0 and 1) */
    kv.block_table_host = neg;
    REFUSE(ADASPLASH_ERROR_INVALID_ARGUMENT, "negative table entry in use");
  }
  {
    int l1[2] = {32, -1}, l2[2] = {33, 0};
    kv.seq_lens_host = l1;
    REFUSE(ADASPLASH_ERROR_INVALID_SHAPE, "negative length");
    kv.seq_lens_host = l2;
    REFUSE(ADASPLASH_ERROR_INVALID_SHAPE, "length > pages x page_size");
  }
  kv.block_table_host = NULL;
  REFUSE(ADASPLASH_ERROR_INVALID_ARGUMENT, "no host copy of the table");
  kv.num_pages = 0;
  REFUSE(ADASPLASH_ERROR_INVALID_SHAPE, "num_pages 0");
  kv.block_table = NULL;
  REFUSE(ADASPLASH_ERROR_INVALID_BUFFER, "no device table");
  dd.kv_len = 48;
  REFUSE(ADASPLASH_ERROR_INVALID_SHAPE, "kv_len != max_blocks x page_size");
  dd.kv_lens = bl;
  REFUSE(ADASPLASH_ERROR_INVALID_ARGUMENT, "desc->kv_lens with a paged cache");
  {
    /* Rows of 32 kept scores past one allocation of this device (2^24 did not pass the H200's). */
    adasplash_device_info info;
    info.struct_size = sizeof info;
    test_require(ctx, adasplash_context_get_device_info(ctx, &info), "device info");
    /* More q heads (a power of two times as many, GQA allows it) where one head's rows would pass
     * the q_len limit (2^26: a 35 GB allocation limit asked for 7.3e7 rows of 2 heads). */
    const unsigned long long rows = info.max_mem_alloc_size / (4ull * 32) + 1;
    while (rows / ((unsigned long long)dd.batch * dd.q_heads) + 1 > (1ull << 26) &&
           dd.q_heads < (1 << 20))
      dd.q_heads *= 2;
    dd.q_len = (int)(rows / ((unsigned long long)dd.batch * dd.q_heads) + 1);
  }
  REFUSE(ADASPLASH_ERROR_UNSUPPORTED, "kept scores above one allocation");
  ok &= expect_refused(ctx, &d, &kv, q, small, v, out, out_bytes, ADASPLASH_ERROR_BUFFER_TOO_SMALL,
                       "k pool too small");
  {
    unsigned char *fill_pool = malloc(pool);
    memset(fill_pool, CANARY, pool);
    cl_mem kc = test_buffer(ctx, fill_pool, pool);
    ok &= expect_refused(ctx, &d, &kv, q, kc, v, kc, pool, ADASPLASH_ERROR_INVALID_ARGUMENT,
                         "out shares k_pages");
    clReleaseMemObject(kc);
    free(fill_pool);
  }
  ok &= expect_refused(ctx, &d, NULL, q, k, v, out, out_bytes, ADASPLASH_ERROR_INVALID_ARGUMENT,
                       "kv NULL");
#undef REFUSE
  /* The same buffers with the good table work. */
  ok &= test_check(adasplash_attention_forward_paged(ctx, &d, &good, NULL, q, k, v, out, NULL, 0,
                                                     NULL, NULL) == ADASPLASH_SUCCESS,
                   "the good table is accepted");
  clReleaseMemObject(q), clReleaseMemObject(k), clReleaseMemObject(v), clReleaseMemObject(out);
  clReleaseMemObject(small), clReleaseMemObject(bt), clReleaseMemObject(bl);
  free(canary);
  return ok;
}

int main(int argc, char **argv) {
  const int simulator = argc > 1 && strcmp(argv[1], "--oclgrind") == 0;
  /* The decode path for every q_len of the cases (a device's default decode_max_q may be lower),
   * on top of whatever ADASPLASH_TUNE asks for. */
  char tune[1024];
  const char *env_tune = getenv("ADASPLASH_TUNE");
  snprintf(tune, sizeof tune, "%s%sdecode_max_q=16", env_tune ? env_tune : "",
           env_tune && *env_tune ? "," : "");
  adasplash_context_options opts;
  adasplash_context_options_init(&opts);
  opts.tune = tune;
  adasplash_context *ctx = test_context(&opts);
  test_print_device(ctx);
  unsigned long long seed = 100;
  static const int lens4[4] = {0, 1, 17, 1000}, lens4s[4] = {0, 1, 17, 5};
  static const int qlens2[2] = {3, 1}, kvlens2[2] = {9, 17}, qlens4[4] = {4, 1, 2, 3};
  if (simulator) {
    const dcase cases[] = {
        {2, 4, 2, 4, 17, 16, 1, ADASPLASH_F32, 1.5, NULL, NULL, 0, 0, seed++},
        {1, 2, 1, 1, 1, 32, 0, ADASPLASH_BF16, 0, NULL, NULL, 0, 0, seed++},
        {2, 2, 2, 4, 17, 16, 1, ADASPLASH_F16, 1.3, kvlens2, qlens2, 0, 0, seed++},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) run_contiguous(ctx, &cases[i]);
    const dcase paged_cases[] = {
        {4, 4, 2, 4, 32, 16, 1, ADASPLASH_F32, 1.5, lens4s, NULL, 16, 0, seed++},
        {4, 2, 1, 1, 32, 16, 0, ADASPLASH_BF16, 2.0, lens4s, NULL, 16, 1, seed++},
    };
    for (size_t i = 0; i < sizeof paged_cases / sizeof paged_cases[0]; ++i)
      run_paged(ctx, &paged_cases[i]);
    check_errors(ctx);
    adasplash_context_release(ctx);
    return test_finish("test_decode --oclgrind");
  }
  /* Contiguous: every kv_len x q_len, GQA 2:1 and 4:1, causal and not, dtypes, alphas. */
  static const int kvs[] = {1, 17, 1000}, qs[] = {1, 4, 16};
  static const adasplash_dtype dts[] = {ADASPLASH_F32, ADASPLASH_BF16, ADASPLASH_F16};
  int n = 0;
  for (size_t a = 0; a < 3; ++a)
    for (size_t b = 0; b < 3; ++b, ++n) {
      dcase c = {2,    4,    2, qs[b], kvs[a], 64, n % 2, dts[n % 3], n % 4 == 3 ? 0 : 1.5,
                 NULL, NULL, 0, 0,     seed++};
      run_contiguous(ctx, &c);
    }
  {
    dcase c1 = {2, 8, 2, 4, 17, 128, 1, ADASPLASH_F32, 2.0, kvlens2, qlens2, 0, 0, seed++};
    run_contiguous(ctx, &c1);
    dcase c2 = {1, 4, 1, 16, 1000, 256, 1, ADASPLASH_BF16, 1.25, NULL, NULL, 0, 0, seed++};
    run_contiguous(ctx, &c2);
    dcase c3 = {1, 2, 1, 1, 1000, 24, 0, ADASPLASH_F32, 1.5, NULL, NULL, 0, 0, seed++};
    run_contiguous(ctx, &c3);
    /* Key rows off 16-byte boundaries, a partial last slice (36 of 40 16-bit elements). */
    dcase c4 = {1, 4, 2, 4, 1000, 36, 1, ADASPLASH_BF16, 1.5, NULL, NULL, 0, 0, seed++};
    run_contiguous(ctx, &c4);
  }
  /* 65536 keys: the row operator's segments (histograms merged across work-groups). */
  {
    dcase c1 = {1, 2, 1, 1, 65536, 32, 0, ADASPLASH_F32, 1.5, NULL, NULL, 0, 0, seed++};
    run_contiguous(ctx, &c1);
    dcase c2 = {1, 2, 1, 4, 65536, 64, 1, ADASPLASH_BF16, 0, NULL, NULL, 0, 0, seed++};
    run_contiguous(ctx, &c2);
    dcase c3 = {1, 1, 1, 16, 65536, 16, 1, ADASPLASH_F32, 2.0, NULL, NULL, 0, 0, seed++};
    run_contiguous(ctx, &c3);
  }
  /* Paged: page sizes 16 and 256, shuffled pages, lengths 0, 1, 17, 1000 in one batch. */
  {
    const dcase cs[] = {
        {4, 4, 2, 1, 1008, 64, 0, ADASPLASH_F32, 1.5, lens4, NULL, 16, 0, seed++},
        {4, 4, 2, 4, 1024, 64, 1, ADASPLASH_BF16, 1.5, lens4, NULL, 256, 0, seed++},
        {4, 8, 1, 16, 1008, 32, 1, ADASPLASH_F16, 2.0, lens4, NULL, 16, 1, seed++},
        {4, 2, 2, 4, 1024, 128, 0, ADASPLASH_F32, 1.3, lens4, NULL, 256, 1, seed++},
        {4, 4, 1, 4, 1008, 64, 1, ADASPLASH_BF16, 0, lens4, qlens4, 16, 0, seed++},
        /* A chunk of prefill (q_len above decode_max_q) through the same path. */
        {4, 2, 1, 40, 1024, 32, 1, ADASPLASH_F32, 1.5, lens4, NULL, 256, 0, seed++},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; ++i) run_paged(ctx, &cs[i]);
    static const int big[1] = {65536}, mixed[2] = {65000, 1};
    dcase c1 = {1, 2, 1, 1, 65536, 64, 0, ADASPLASH_BF16, 1.5, big, NULL, 256, 0, seed++};
    run_paged(ctx, &c1);
    dcase c2 = {2, 2, 1, 4, 65024, 16, 1, ADASPLASH_F32, 1.5, mixed, NULL, 16, 0, seed++};
    run_paged(ctx, &c2);
  }
  run_backward(ctx, 1, 1000, ADASPLASH_F32);
  run_backward(ctx, 4, 17, ADASPLASH_BF16);
  run_backward(ctx, 16, 1000, ADASPLASH_F32);
  check_errors(ctx);
  adasplash_context_release(ctx);
  return test_finish("test_decode");
}
