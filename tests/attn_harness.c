/*
 * attn_harness.c - attention test problems, library runs through device buffers, and unpacking
 * (see attn_harness.h).
 */
#include "attn_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

void attn_case_label(const attn_case *c, char *out, size_t size) {
  static const char *algos[] = {"entmax", "softmax", "dense"};
  snprintf(out, size, "%s B%d Hq%d Hkv%d Lq%d Lk%d D%d %s dtype=%d alpha=%s%.3g%s%s%s beta=%g",
           algos[c->algorithm], c->batch, c->q_heads, c->kv_heads, c->q_len, c->kv_len, c->head_dim,
           c->causal ? "causal" : "full", (int)c->dtype, c->per_head_alpha ? "per-head/" : "",
           c->alpha, c->varlen ? " varlen" : "", c->bshd ? " bshd" : "",
           c->alpha_grad ? " dalpha" : "", c->beta);
}

attn_case attn_case_dtype_override(attn_case c) {
  const char *e = getenv("TEST_DTYPE");
  if (e && strcmp(e, "f16") == 0) c.dtype = ADASPLASH_F16;
  if (e && strcmp(e, "bf16") == 0) c.dtype = ADASPLASH_BF16;
  return c;
}

/* Element index of (b, h, i, d) in the problem's layout for tensor `which`. */
static size_t attn_index(const attn_problem *p, char which, int b, int h, int i, int d) {
  const adasplash_layout *l = which == 'q' ? &p->desc.q : (which == 'k' ? &p->desc.k : &p->desc.v);
  const int heads = which == 'q' ? p->c.q_heads : p->c.kv_heads;
  const int len = which == 'q' ? p->c.q_len : p->c.kv_len;
  const size_t D = (size_t)p->c.head_dim;
  if (l->seq_stride == 0) return l->offset + (((size_t)b * heads + h) * len + i) * D + d;
  return l->offset + (size_t)b * l->batch_stride + (size_t)h * l->head_stride +
         (size_t)i * l->seq_stride + d;
}

void attn_pack(const attn_problem *p, char which, const double *src, void *dst) {
  const int heads = which == 'q' ? p->c.q_heads : p->c.kv_heads;
  const int len = which == 'q' ? p->c.q_len : p->c.kv_len;
  const size_t esize = adasplash_dtype_size(p->c.dtype);
  for (int b = 0; b < p->c.batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < len; ++i)
        for (int d = 0; d < p->c.head_dim; ++d) {
          size_t at = attn_index(p, which, b, h, i, d);
          size_t from = (((size_t)b * heads + h) * len + i) * p->c.head_dim + d;
          test_pack(&src[from], 1, p->c.dtype, (char *)dst + at * esize);
        }
}

void attn_unpack(const attn_problem *p, char which, const void *src, double *dst) {
  const int heads = which == 'q' ? p->c.q_heads : p->c.kv_heads;
  const int len = which == 'q' ? p->c.q_len : p->c.kv_len;
  const size_t esize = adasplash_dtype_size(p->c.dtype);
  for (int b = 0; b < p->c.batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < len; ++i)
        for (int d = 0; d < p->c.head_dim; ++d) {
          size_t at = attn_index(p, which, b, h, i, d);
          size_t to = (((size_t)b * heads + h) * len + i) * p->c.head_dim + d;
          test_unpack((const char *)src + at * esize, 1, p->c.dtype, &dst[to]);
        }
}

static void attn_set_layout(adasplash_layout *l, int batch, int heads, int len, int d, int bshd,
                            size_t offset, size_t *elems) {
  memset(l, 0, sizeof *l);
  if (!bshd) {
    *elems = (size_t)batch * heads * len * d;
    return;
  }
  /* [batch, seq, heads, head_dim] with a row padding of 3 elements and an offset. */
  l->offset = offset;
  l->head_stride = (size_t)d;
  l->seq_stride = (size_t)heads * d + 3;
  l->batch_stride = l->seq_stride * (size_t)len;
  *elems = offset + l->batch_stride * (size_t)batch;
}

void attn_problem_make(adasplash_context *ctx, const attn_case *c, attn_problem *p) {
  (void)ctx;
  memset(p, 0, sizeof *p);
  p->c = *c;
  ref_rng rng;
  ref_rng_seed(&rng, c->seed ? c->seed : 7);
  const int B = c->batch, Hq = c->q_heads, Hk = c->kv_heads, Lq = c->q_len, Lk = c->kv_len,
            D = c->head_dim;
  p->q_n = (size_t)B * Hq * Lq * D;
  p->kv_n = (size_t)B * Hk * Lk * D;
  p->q = (double *)calloc(p->q_n, sizeof(double));
  p->k = (double *)calloc(p->kv_n, sizeof(double));
  p->v = (double *)calloc(p->kv_n, sizeof(double));
  p->alpha_h = (double *)calloc((size_t)Hq, sizeof(double));
  p->alpha_f = (float *)calloc((size_t)Hq, sizeof(float));
  static const double head_alphas[] = {1.5, 2.0, 1.3, 1.75, 1.15, 1.9};
  for (int h = 0; h < Hq; ++h) {
    p->alpha_f[h] = (float)(c->per_head_alpha ? head_alphas[h % 6] : c->alpha);
    p->alpha_h[h] = (double)p->alpha_f[h];
  }
  if (c->varlen) {
    p->q_lens = (int *)calloc((size_t)B, sizeof(int));
    p->kv_lens = (int *)calloc((size_t)B, sizeof(int));
    for (int b = 0; b < B; ++b) {
      p->kv_lens[b] = b == 0 ? Lk : 1 + (int)(ref_rng_uniform(&rng) * Lk);
      p->q_lens[b] = b == 0 ? Lq : (int)(ref_rng_uniform(&rng) * (Lq + 1));
      if (b == 1 && B > 2) p->q_lens[b] = 0; /* a fully padded batch entry */
    }
  }
  if (c->beta > 0.0) {
    /* Locality generator (DESIGN.md sec. 8), walk per (batch, kv head). */
    const int L = Lq > Lk ? Lq : Lk;
    double *u = (double *)malloc((size_t)L * D * sizeof(double));
    for (int b = 0; b < B; ++b)
      for (int hk = 0; hk < Hk; ++hk) {
        for (int d = 0; d < D; ++d) u[d] = ref_rng_normal(&rng);
        for (int t = 1; t < L; ++t)
          for (int d = 0; d < D; ++d)
            u[(size_t)t * D + d] = u[(size_t)(t - 1) * D + d] + 0.15 * ref_rng_normal(&rng);
        for (int t = 0; t < L; ++t) {
          double nrm = 0;
          for (int d = 0; d < D; ++d) nrm += u[(size_t)t * D + d] * u[(size_t)t * D + d];
          nrm = sqrt((double)D / (nrm > 0 ? nrm : 1));
          for (int d = 0; d < D; ++d) u[(size_t)t * D + d] *= nrm;
        }
        for (int j = 0; j < Lk; ++j)
          for (int d = 0; d < D; ++d) {
            size_t at = (((size_t)b * Hk + hk) * Lk + j) * D + d;
            p->k[at] = u[(size_t)j * D + d] + ref_rng_normal(&rng);
            p->v[at] = ref_rng_normal(&rng);
          }
        const int group = Hq / Hk;
        for (int g = 0; g < group; ++g) {
          const int h = hk * group + g;
          for (int i = 0; i < Lq; ++i) {
            int t = i + (Lk > Lq ? Lk - Lq : 0);
            for (int d = 0; d < D; ++d)
              p->q[(((size_t)b * Hq + h) * Lq + i) * D + d] =
                  c->beta * u[(size_t)t * D + d] + ref_rng_normal(&rng);
          }
        }
      }
    free(u);
  } else {
    for (size_t i = 0; i < p->q_n; ++i) p->q[i] = ref_rng_normal(&rng);
    for (size_t i = 0; i < p->kv_n; ++i) p->k[i] = ref_rng_normal(&rng);
    for (size_t i = 0; i < p->kv_n; ++i) p->v[i] = ref_rng_normal(&rng);
  }
  for (size_t i = 0; i < p->q_n; ++i) p->q[i] = test_round(p->q[i], c->dtype);
  for (size_t i = 0; i < p->kv_n; ++i) p->k[i] = test_round(p->k[i], c->dtype);
  for (size_t i = 0; i < p->kv_n; ++i) p->v[i] = test_round(p->v[i], c->dtype);

  adasplash_attention_desc *d = &p->desc;
  adasplash_attention_desc_init(d);
  d->dtype = c->dtype;
  d->batch = B;
  d->q_heads = Hq;
  d->kv_heads = Hk;
  d->q_len = Lq;
  d->kv_len = Lk;
  d->head_dim = D;
  d->alpha = (float)c->alpha;
  d->scale = (float)c->scale;
  d->causal = c->causal;
  d->algorithm = c->algorithm;
  d->flags = c->alpha_grad ? ADASPLASH_ATTN_SAVE_ALPHA_GRAD : 0;
  size_t qe, ke, ve, oe;
  attn_set_layout(&d->q, B, Hq, Lq, D, c->bshd, 5, &qe);
  attn_set_layout(&d->k, B, Hk, Lk, D, c->bshd, 11, &ke);
  attn_set_layout(&d->v, B, Hk, Lk, D, c->bshd, 2, &ve);
  attn_set_layout(&d->out, B, Hq, Lq, D, c->bshd, 5, &oe);
  const size_t es = adasplash_dtype_size(c->dtype);
  p->q_bytes = qe * es;
  p->k_bytes = ke * es;
  p->v_bytes = ve * es;
  p->o_bytes = oe * es;
  p->q_host = calloc(qe, es);
  p->k_host = calloc(ke, es);
  p->v_host = calloc(ve, es);
  attn_pack(p, 'q', p->q, p->q_host);
  attn_pack(p, 'k', p->k, p->k_host);
  attn_pack(p, 'v', p->v, p->v_host);

  ref_attention_problem *r = &p->ref;
  r->batch = B;
  r->q_heads = Hq;
  r->kv_heads = Hk;
  r->q_len = Lq;
  r->kv_len = Lk;
  r->head_dim = D;
  r->causal = c->causal;
  r->q_lens = p->q_lens;
  r->kv_lens = p->kv_lens;
  r->alpha = p->alpha_h;
  r->scale = c->scale > 0 ? (double)(float)c->scale : 1.0 / sqrt((double)D);
  /* The library uses fp32 1/sqrt(D): give the reference the same rounded scale. */
  if (c->scale <= 0) r->scale = (double)(1.0f / sqrtf((float)D));
}

void attn_problem_free(attn_problem *p) {
  free(p->q), free(p->k), free(p->v), free(p->alpha_h), free(p->alpha_f), free(p->q_lens);
  free(p->kv_lens), free(p->q_host), free(p->k_host), free(p->v_host);
  memset(p, 0, sizeof *p);
}

void attn_run_library(adasplash_context *ctx, attn_problem *p, const double *dout, int want_dalpha,
                      attn_run *r) {
  memset(r, 0, sizeof *r);
  adasplash_attention_desc d = p->desc;
  cl_mem alpha_buf = NULL, ql = NULL, kl = NULL;
  if (p->c.per_head_alpha) {
    alpha_buf = test_buffer(ctx, p->alpha_f, (size_t)p->c.q_heads * 4);
    d.alpha_buf = alpha_buf;
  }
  if (p->c.varlen) {
    ql = test_buffer(ctx, p->q_lens, (size_t)p->c.batch * 4);
    kl = test_buffer(ctx, p->kv_lens, (size_t)p->c.batch * 4);
    d.q_lens = ql;
    d.kv_lens = kl;
  }
  adasplash_status prep = adasplash_attention_prepare(ctx, &d);
  if (prep == ADASPLASH_ERROR_UNSUPPORTED && d.algorithm == ADASPLASH_ATTN_ENTMAX_DENSE) {
    printf("skip: the dense baseline is not available in this build (no CLBlast)\n");
    r->skipped = 1;
    if (alpha_buf) clReleaseMemObject(alpha_buf);
    if (ql) clReleaseMemObject(ql);
    if (kl) clReleaseMemObject(kl);
    return;
  }
  test_require(ctx, prep, "adasplash_attention_prepare");
  size_t saved_bytes = 0, ws_bytes = 0;
  test_require(ctx, adasplash_attention_saved_size(ctx, &d, &saved_bytes), "saved_size");
  test_require(ctx, adasplash_attention_workspace_size(ctx, &d, &ws_bytes), "workspace_size");
  cl_mem bq = test_buffer(ctx, p->q_host, p->q_bytes);
  cl_mem bk = test_buffer(ctx, p->k_host, p->k_bytes);
  cl_mem bv = test_buffer(ctx, p->v_host, p->v_bytes);
  cl_mem bo = test_buffer(ctx, NULL, p->o_bytes);
  cl_mem saved = test_buffer(ctx, NULL, saved_bytes);
  cl_mem ws = test_buffer(ctx, NULL, ws_bytes);
  cl_event ev = NULL;
  test_require(ctx,
               adasplash_attention_forward(ctx, &d, NULL, bq, bk, bv, bo, saved, ws, 0, NULL, &ev),
               "adasplash_attention_forward");
  clWaitForEvents(1, &ev);
  clReleaseEvent(ev);
  void *host = malloc(p->o_bytes > p->q_bytes ? p->o_bytes : p->q_bytes);
  void *host2 = malloc(p->k_bytes > p->v_bytes ? p->k_bytes : p->v_bytes);
  r->out = (double *)calloc(p->q_n, sizeof(double));
  test_read(ctx, bo, host, p->o_bytes);
  attn_unpack(p, 'q', host, r->out);
  if (!dout) {
    /* Inference: no saved buffer (the state lives in a workspace the library allocates), which
     * runs other kernels (attn_forward instead of attn_forward_grad). */
    cl_mem bo2 = test_buffer(ctx, NULL, p->o_bytes);
    test_require(
        ctx, adasplash_attention_forward(ctx, &d, NULL, bq, bk, bv, bo2, NULL, NULL, 0, NULL, NULL),
        "adasplash_attention_forward (inference)");
    r->out_infer = (double *)calloc(p->q_n, sizeof(double));
    test_read(ctx, bo2, host, p->o_bytes);
    attn_unpack(p, 'q', host, r->out_infer);
    clReleaseMemObject(bo2);
  }
  if (d.algorithm == ADASPLASH_ATTN_ENTMAX) {
    r->stats.struct_size = sizeof r->stats;
    test_require(ctx, adasplash_attention_stats_read(ctx, &d, NULL, saved, &r->stats),
                 "stats_read");
    r->tile = r->stats.tile_m;
    const size_t rows = (size_t)p->c.batch * p->c.q_heads * p->c.q_len;
    const size_t nqb = ((size_t)p->c.q_len + r->tile - 1) / r->tile;
    const size_t nkb = ((size_t)p->c.kv_len + r->tile - 1) / r->tile;
    r->tau = (float *)calloc(rows, sizeof(float));
    r->active = (unsigned char *)calloc((size_t)p->c.batch * p->c.q_heads * nqb * nkb, 1);
    test_require(ctx, adasplash_attention_saved_read(ctx, &d, NULL, saved, r->tau, r->active),
                 "saved_read");
  }
  if (dout) {
    void *dout_host = calloc(1, p->o_bytes);
    attn_pack(p, 'q', dout, dout_host);
    cl_mem bdo = test_buffer(ctx, dout_host, p->o_bytes);
    cl_mem bdq = test_buffer(ctx, NULL, p->q_bytes);
    cl_mem bdk = test_buffer(ctx, NULL, p->k_bytes);
    cl_mem bdv = test_buffer(ctx, NULL, p->v_bytes);
    cl_mem bda = want_dalpha ? test_buffer(ctx, NULL, (size_t)p->c.q_heads * 4) : NULL;
    test_require(ctx,
                 adasplash_attention_backward(ctx, &d, NULL, bq, bk, bv, bo, bdo, saved, bdq, bdk,
                                              bdv, bda, ws, 0, NULL, NULL),
                 "adasplash_attention_backward");
    r->dq = (double *)calloc(p->q_n, sizeof(double));
    r->dk = (double *)calloc(p->kv_n, sizeof(double));
    r->dv = (double *)calloc(p->kv_n, sizeof(double));
    test_read(ctx, bdq, host, p->q_bytes);
    attn_unpack(p, 'q', host, r->dq);
    test_read(ctx, bdk, host2, p->k_bytes);
    attn_unpack(p, 'k', host2, r->dk);
    test_read(ctx, bdv, host2, p->v_bytes);
    attn_unpack(p, 'v', host2, r->dv);
    if (bda) {
      r->dalpha = (float *)calloc((size_t)p->c.q_heads, sizeof(float));
      test_read(ctx, bda, r->dalpha, (size_t)p->c.q_heads * 4);
      clReleaseMemObject(bda);
    }
    clReleaseMemObject(bdo), clReleaseMemObject(bdq), clReleaseMemObject(bdk);
    clReleaseMemObject(bdv);
    free(dout_host);
  }
  free(host);
  free(host2);
  cl_mem rel[] = {bq, bk, bv, bo, saved, ws, alpha_buf, ql, kl};
  for (size_t i = 0; i < sizeof rel / sizeof rel[0]; ++i)
    if (rel[i]) clReleaseMemObject(rel[i]);
}

void attn_run_free(attn_run *r) {
  free(r->out), free(r->out_infer), free(r->dq), free(r->dk), free(r->dv), free(r->dalpha);
  free(r->tau);
  free(r->active);
  memset(r, 0, sizeof *r);
}

int attn_products_round_unit(adasplash_context *ctx, adasplash_dtype dtype, int head_dim,
                             double *u) {
  adasplash_device_info info;
  info.struct_size = sizeof info;
  *u = dtype == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8);
  if (dtype == ADASPLASH_F32 || head_dim > 128) return 0;
  if (adasplash_context_get_device_info(ctx, &info) != ADASPLASH_SUCCESS) return 0;
  return info.kernel_path == ADASPLASH_PATH_NVIDIA_MMA;
}

int attn_products_round(adasplash_context *ctx, const attn_case *c, double *u) {
  return attn_products_round_unit(ctx, c->dtype, c->head_dim, u);
}

/* Keys visible to row i of batch b (the library's rule). */
static int attn_visible_keys(const attn_problem *p, int b, int i) {
  const int lq = p->q_lens ? p->q_lens[b] : p->c.q_len;
  const int lk = p->kv_lens ? p->kv_lens[b] : p->c.kv_len;
  if (i >= lq) return 0;
  if (!p->c.causal) return lk;
  const int n = i + (lk - lq) + 1;
  return n < 0 ? 0 : (n > lk ? lk : n);
}

void attn_softmax_probs(const attn_problem *p, double *probs) {
  const attn_case *c = &p->c;
  const int D = c->head_dim, G = c->q_heads / c->kv_heads;
  for (int b = 0; b < c->batch; ++b)
    for (int h = 0; h < c->q_heads; ++h)
      for (int i = 0; i < c->q_len; ++i) {
        double *row = probs + (((size_t)b * c->q_heads + h) * c->q_len + i) * c->kv_len;
        const double *qi = p->q + (((size_t)b * c->q_heads + h) * c->q_len + i) * D;
        const int nv = attn_visible_keys(p, b, i);
        double m = -INFINITY, l = 0.0;
        for (int j = 0; j < c->kv_len; ++j) {
          row[j] = 0.0;
          if (j >= nv) continue;
          const double *kj = p->k + (((size_t)b * c->kv_heads + h / G) * c->kv_len + j) * D;
          double z = 0.0;
          for (int d = 0; d < D; ++d) z += qi[d] * kj[d];
          row[j] = z * (p->ref.scale > 0.0 ? p->ref.scale : 1.0 / sqrt((double)D));
          if (row[j] > m) m = row[j];
        }
        for (int j = 0; j < nv; ++j) l += row[j] = exp(row[j] - m);
        for (int j = 0; j < nv; ++j) row[j] /= l;
      }
}

void attn_rounding_magnitudes(const attn_problem *p, const double *probs, const double *dout,
                              double *mo, double *mdq, double *mdk, double *mdv, double *mda) {
  const attn_case *c = &p->c;
  const int D = c->head_dim, G = c->q_heads / c->kv_heads, n = c->kv_len;
  const int softmax = c->algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH;
  double *s = (double *)calloc((size_t)n, sizeof *s), *dp = (double *)calloc((size_t)n, sizeof *dp);
  double *o = (double *)calloc((size_t)D, sizeof *o),
         *mo_i = (double *)calloc((size_t)D, sizeof *mo_i);
  double *m2 = (double *)calloc((size_t)D, sizeof *m2),
         *m3 = (double *)calloc((size_t)D, sizeof *m3);
  if (!s || !dp || !o || !mo_i || !m2 || !m3) {
    fprintf(stderr, "attn_rounding_magnitudes: out of memory\n");
    exit(1);
  }
  if (mo) memset(mo, 0, p->q_n * sizeof *mo);
  if (mdq) memset(mdq, 0, p->q_n * sizeof *mdq);
  if (mdk) memset(mdk, 0, p->kv_n * sizeof *mdk);
  if (mdv) memset(mdv, 0, p->kv_n * sizeof *mdv);
  if (mda) memset(mda, 0, (size_t)c->q_heads * sizeof *mda);
  const double scale = p->ref.scale > 0.0 ? p->ref.scale : 1.0 / sqrt((double)D);
  for (int b = 0; b < c->batch; ++b)
    for (int h = 0; h < c->q_heads; ++h) {
      const double a = softmax ? 1.0 : p->alpha_h[h];
      for (int i = 0; i < c->q_len; ++i) {
        const size_t qrow = ((size_t)b * c->q_heads + h) * c->q_len + i;
        const double *pr = probs + qrow * (size_t)n;
        const double *qi = p->q + qrow * D;
        const double *gi = dout ? dout + qrow * D : NULL;
        double S = 0.0, H = 0.0;
        for (int d = 0; d < D; ++d) o[d] = mo_i[d] = m2[d] = m3[d] = 0.0;
        for (int j = 0; j < n; ++j) {
          s[j] = pr[j] > 0.0 ? (softmax ? pr[j] : pow(pr[j], 2.0 - a)) : 0.0;
          S += s[j];
          if (pr[j] > 0.0) H += pr[j] * log(pr[j]);
          const double *vj = p->v + (((size_t)b * c->kv_heads + h / G) * n + j) * D;
          for (int d = 0; d < D; ++d) {
            o[d] += pr[j] * vj[d];
            mo_i[d] += pr[j] * fabs(vj[d]);
            m2[d] += s[j] * fabs(vj[d]);
            if (pr[j] > 0.0) m3[d] += fabs(pr[j] * log(pr[j])) * fabs(vj[d]);
          }
        }
        if (mo)
          for (int d = 0; d < D; ++d) mo[qrow * D + d] = mo_i[d];
        if (!gi || S == 0.0) continue;
        /* delta and its error (in units of u): entmax dO . out2 with out2 = sum(s v)/sum(s) from
         * rounded s; softmax dO . O with O stored in the format and made from rounded p. */
        double delta = 0.0, e_delta = 0.0;
        for (int j = 0; j < n; ++j) {
          const double *vj = p->v + (((size_t)b * c->kv_heads + h / G) * n + j) * D;
          dp[j] = 0.0;
          if (pr[j] > 0.0)
            for (int d = 0; d < D; ++d) dp[j] += gi[d] * vj[d];
          delta += s[j] * dp[j];
        }
        delta /= S;
        for (int d = 0; d < D; ++d)
          e_delta += fabs(gi[d]) * (softmax ? fabs(o[d]) + mo_i[d] : m2[d] / S);
        for (int j = 0; j < n; ++j) {
          if (pr[j] == 0.0) continue;
          const size_t krow = ((size_t)b * c->kv_heads + h / G) * n + j;
          const double *kj = p->k + krow * D;
          const double g = scale * (fabs(s[j] * (dp[j] - delta)) + s[j] * e_delta);
          for (int d = 0; d < D; ++d) {
            if (mdq) mdq[qrow * D + d] += g * fabs(kj[d]);
            if (mdk) mdk[krow * D + d] += g * fabs(qi[d]);
            if (mdv) mdv[krow * D + d] += pr[j] * fabs(gi[d]);
          }
        }
        if (mda && !softmax) {
          const double a1 = a - 1.0;
          for (int d = 0; d < D; ++d)
            mda[h] += fabs(gi[d]) * (mo_i[d] / (a1 * a1) +
                                     m2[d] / S * (1.0 / (a1 * a1) + fabs(H) / a1) + m3[d] / a1);
        }
      }
    }
  free(s);
  free(dp);
  free(o);
  free(mo_i);
  free(m2);
  free(m3);
}
