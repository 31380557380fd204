/*
 * tune_verify.c - small fp32 attention and row-entmax problems checked against the double
 * reference (see tune_verify.h).
 */
#include "tune_verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "locality.h"
#include "report.h"
#include "reference.h"

#define TUNE_VERIFY_TOL 1e-3
#define TUNE_ATTN_CASES 2

typedef struct tune_attn_case {
  adasplash_attention_desc desc;
  ref_attention_problem ref;
  double alpha[2];
  size_t qn, kvn;                             /* elements of q (out, dout) and of k (v) */
  float *q, *k, *v, *dout;                    /* fp32 inputs */
  double *out_ref, *dq_ref, *dk_ref, *dv_ref; /* reference answers */
} tune_attn_case;

struct tune_verify {
  tune_attn_case attn[TUNE_ATTN_CASES];
  adasplash_attention_desc descs[TUNE_ATTN_CASES];
  adasplash_entmax_desc rows_desc;
  float *x, *dy; /* rows inputs */
  double *y_ref; /* reference forward */
  double alpha;
};

static double *tune_to_double(const float *f, size_t n) {
  double *d = (double *)malloc(n * sizeof *d);
  if (d)
    for (size_t i = 0; i < n; ++i) d[i] = f[i];
  return d;
}

/* Fills the case's fp32 inputs: locality (sparse) or N(0,1); q, k and v as the desc says. */
static int tune_attn_inputs(tune_attn_case *c, int locality, unsigned long long seed) {
  const adasplash_attention_desc *d = &c->desc;
  c->qn = (size_t)d->batch * d->q_heads * d->q_len * d->head_dim;
  c->kvn = (size_t)d->batch * d->kv_heads * d->kv_len * d->head_dim;
  c->q = (float *)malloc(c->qn * sizeof(float));
  c->dout = (float *)malloc(c->qn * sizeof(float));
  c->k = (float *)malloc(c->kvn * sizeof(float));
  c->v = (float *)malloc(c->kvn * sizeof(float));
  if (!c->q || !c->dout || !c->k || !c->v) return -1;
  if (locality) {
    /* Same head count and length for q and k (the locality generator pairs them). */
    bench_locality_params p = {d->batch, d->q_heads, d->q_len, d->head_dim, 2.0, 0.15, seed};
    bench_locality_generate(&p, c->q, c->k, c->v);
    bench_dout_generate(&p, c->dout);
    return 0;
  }
  ref_rng r;
  ref_rng_seed(&r, seed);
  float *all[4] = {c->q, c->k, c->v, c->dout};
  size_t n[4] = {c->qn, c->kvn, c->kvn, c->qn};
  for (int t = 0; t < 4; ++t)
    for (size_t i = 0; i < n[t]; ++i) all[t][i] = (float)ref_rng_normal(&r);
  return 0;
}

static int tune_attn_reference(tune_attn_case *c) {
  double *q = tune_to_double(c->q, c->qn), *k = tune_to_double(c->k, c->kvn);
  double *v = tune_to_double(c->v, c->kvn), *dout = tune_to_double(c->dout, c->qn);
  c->out_ref = (double *)malloc(c->qn * sizeof(double));
  c->dq_ref = (double *)malloc(c->qn * sizeof(double));
  c->dk_ref = (double *)malloc(c->kvn * sizeof(double));
  c->dv_ref = (double *)malloc(c->kvn * sizeof(double));
  int rc = -1;
  if (q && k && v && dout && c->out_ref && c->dq_ref && c->dk_ref && c->dv_ref &&
      ref_attention_forward(&c->ref, q, k, v, c->out_ref, NULL, NULL) == 0 &&
      ref_attention_backward(&c->ref, q, k, v, dout, c->dq_ref, c->dk_ref, c->dv_ref, NULL) == 0)
    rc = 0;
  free(q);
  free(k);
  free(v);
  free(dout);
  return rc;
}

static int tune_attn_case_make(tune_attn_case *c, int q_heads, int kv_heads, int q_len, int kv_len,
                               int head_dim, int causal, double alpha, int locality,
                               unsigned long long seed) {
  memset(c, 0, sizeof *c);
  adasplash_attention_desc *d = &c->desc;
  adasplash_attention_desc_init(d);
  d->dtype = ADASPLASH_F32;
  d->batch = 1;
  d->q_heads = q_heads;
  d->kv_heads = kv_heads;
  d->q_len = q_len;
  d->kv_len = kv_len;
  d->head_dim = head_dim;
  d->causal = causal;
  d->alpha = (float)alpha;
  c->alpha[0] = c->alpha[1] = (double)d->alpha;
  c->ref.batch = 1;
  c->ref.q_heads = q_heads;
  c->ref.kv_heads = kv_heads;
  c->ref.q_len = q_len;
  c->ref.kv_len = kv_len;
  c->ref.head_dim = head_dim;
  c->ref.causal = causal;
  c->ref.alpha = c->alpha;
  c->ref.scale = 0.0;
  if (tune_attn_inputs(c, locality, seed) != 0) return -1;
  return tune_attn_reference(c);
}

static void tune_attn_case_free(tune_attn_case *c) {
  free(c->q);
  free(c->k);
  free(c->v);
  free(c->dout);
  free(c->out_ref);
  free(c->dq_ref);
  free(c->dk_ref);
  free(c->dv_ref);
}

tune_verify *tune_verify_create(int head_dim, double alpha) {
  tune_verify *v = (tune_verify *)calloc(1, sizeof *v);
  if (!v) return NULL;
  v->alpha = alpha;
  /* 100 rows: partial last tiles for tiles 16, 32 and 64, several row blocks for each; locality
   * inputs leave most tiles empty, so the block bitmap is exercised. */
  int rc = tune_attn_case_make(&v->attn[0], 2, 2, 100, 100, head_dim, 1, alpha, 1, 11);
  /* GQA, q_len != kv_len, no mask, dense N(0,1) scores. */
  if (rc == 0) rc = tune_attn_case_make(&v->attn[1], 2, 1, 37, 150, head_dim, 0, alpha, 0, 12);
  for (int i = 0; i < TUNE_ATTN_CASES; ++i) v->descs[i] = v->attn[i].desc;
  /* Rows: 24 rows of 777 columns (longer than any work-group, not a power of two). */
  adasplash_entmax_desc_init(&v->rows_desc);
  v->rows_desc.dtype = ADASPLASH_F32;
  v->rows_desc.rows = 24;
  v->rows_desc.cols = 777;
  v->rows_desc.alpha = (float)alpha;
  size_t n = v->rows_desc.rows * v->rows_desc.cols;
  v->x = (float *)malloc(n * sizeof(float));
  v->dy = (float *)malloc(n * sizeof(float));
  v->y_ref = (double *)malloc(n * sizeof(double));
  double *row = (double *)malloc(v->rows_desc.cols * sizeof(double));
  if (rc != 0 || !v->x || !v->dy || !v->y_ref || !row) {
    free(row);
    tune_verify_free(v);
    return NULL;
  }
  ref_rng r;
  ref_rng_seed(&r, 13);
  for (size_t i = 0; i < n; ++i) {
    v->x[i] = (float)(2.0 * ref_rng_normal(&r));
    v->dy[i] = (float)ref_rng_normal(&r);
  }
  const size_t cols = v->rows_desc.cols;
  for (size_t i = 0; i < v->rows_desc.rows; ++i) {
    for (size_t j = 0; j < cols; ++j) row[j] = v->x[i * cols + j];
    ref_entmax_row(row, NULL, cols, (double)v->rows_desc.alpha, v->y_ref + i * cols);
  }
  free(row);
  return v;
}

void tune_verify_free(tune_verify *v) {
  if (!v) return;
  for (int i = 0; i < TUNE_ATTN_CASES; ++i) tune_attn_case_free(&v->attn[i]);
  free(v->x);
  free(v->dy);
  free(v->y_ref);
  free(v);
}

size_t tune_verify_attention_descs(const tune_verify *v, const adasplash_attention_desc **descs) {
  *descs = v->descs;
  return TUNE_ATTN_CASES;
}

const adasplash_entmax_desc *tune_verify_rows_desc(const tune_verify *v) {
  return &v->rows_desc;
}

/* ---- running and comparing ------------------------------------------------------------------- */

static int tune_cl_failure(cl_int err, const char *what, char *why, size_t why_size) {
  snprintf(why, why_size, "%s failed (OpenCL error %d)", what, (int)err);
  return -1;
}

/* max |got - ref| / (TOL * max(1, max |ref|)); NaN or inf in got gives +inf. */
static double tune_error(const float *got, const double *ref, size_t n) {
  double m = 1.0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(ref[i]));
  double worst = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double e = fabs((double)got[i] - ref[i]) / (TUNE_VERIFY_TOL * m);
    if (!(e <= worst)) worst = isfinite(e) ? e : INFINITY;
  }
  return worst;
}

/* Buffers of one run: count buffers, the first `inputs` filled from host. */
typedef struct tune_buffers {
  cl_mem m[10];
  int count;
} tune_buffers;

static void tune_buffers_release(tune_buffers *b) {
  for (int i = 0; i < b->count; ++i)
    if (b->m[i]) clReleaseMemObject(b->m[i]);
  b->count = 0;
}

/* Adds a buffer of bytes, filled from data when data is not NULL (blocking write). */
static cl_int tune_buffer_add(tune_buffers *b, cl_context c, cl_command_queue q, size_t bytes,
                              const void *data) {
  cl_int err = CL_SUCCESS;
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
  if (err != CL_SUCCESS) return err;
  b->m[b->count++] = m;
  if (data) err = clEnqueueWriteBuffer(q, m, CL_TRUE, 0, bytes, data, 0, NULL, NULL);
  return err;
}

static int tune_verify_attn_case(tune_attn_case *c, adasplash_context *ctx, double *worst,
                                 char *why, size_t why_size) {
  cl_context clctx;
  cl_command_queue queue;
  adasplash_context_get_cl(ctx, &clctx, NULL, &queue);
  size_t saved_bytes = 0;
  adasplash_status st = adasplash_attention_saved_size(ctx, &c->desc, &saved_bytes);
  if (st != ADASPLASH_SUCCESS)
    return dt_lib_failure(ctx, st, "adasplash_attention_saved_size", why, why_size);
  const size_t qb = c->qn * sizeof(float), kb = c->kvn * sizeof(float);
  tune_buffers b = {{NULL}, 0};
  /* q k v dout | out dq dk dv saved */
  const void *data[9] = {c->q, c->k, c->v, c->dout, NULL, NULL, NULL, NULL, NULL};
  const size_t bytes[9] = {qb, kb, kb, qb, qb, qb, kb, kb, saved_bytes};
  cl_int err = CL_SUCCESS;
  for (int i = 0; i < 9 && err == CL_SUCCESS; ++i)
    err = tune_buffer_add(&b, clctx, queue, bytes[i], data[i]);
  if (err != CL_SUCCESS) {
    tune_buffers_release(&b);
    return tune_cl_failure(err, "creating the verification buffers", why, why_size);
  }
  cl_mem q = b.m[0], k = b.m[1], v = b.m[2], dout = b.m[3], out = b.m[4], dq = b.m[5], dk = b.m[6],
         dv = b.m[7], saved = b.m[8];
  cl_event fwd = NULL, bwd = NULL;
  int rc = 0;
  st = adasplash_attention_forward(ctx, &c->desc, NULL, q, k, v, out, saved, NULL, 0, NULL, &fwd);
  if (st != ADASPLASH_SUCCESS) {
    rc = dt_lib_failure(ctx, st, "adasplash_attention_forward", why, why_size);
  } else {
    st = adasplash_attention_backward(ctx, &c->desc, NULL, q, k, v, out, dout, saved, dq, dk, dv,
                                      NULL, NULL, 1, &fwd, &bwd);
    if (st != ADASPLASH_SUCCESS)
      rc = dt_lib_failure(ctx, st, "adasplash_attention_backward", why, why_size);
  }
  float *got = rc == 0 ? (float *)malloc(c->qn > c->kvn ? qb : kb) : NULL;
  if (rc == 0 && !got) {
    snprintf(why, why_size, "out of host memory");
    rc = -1;
  }
  const char *names[4] = {"out", "dQ", "dK", "dV"};
  const cl_mem bufs[4] = {out, dq, dk, dv};
  const double *refs[4] = {c->out_ref, c->dq_ref, c->dk_ref, c->dv_ref};
  const size_t counts[4] = {c->qn, c->qn, c->kvn, c->kvn};
  for (int t = 0; t < 4 && rc == 0; ++t) {
    err = clEnqueueReadBuffer(queue, bufs[t], CL_TRUE, 0, counts[t] * sizeof(float), got, 1, &bwd,
                              NULL);
    if (err != CL_SUCCESS) {
      rc = tune_cl_failure(err, "reading the results", why, why_size);
      break;
    }
    double e = tune_error(got, refs[t], counts[t]);
    if (worst && !(e <= *worst)) *worst = e;
    if (!(e <= 1.0)) {
      snprintf(why, why_size,
               "%s off by %.3g x the tolerance (%s, q_len %d, kv_len %d, heads %d/%d)", names[t], e,
               c->desc.causal ? "causal" : "non-causal", c->desc.q_len, c->desc.kv_len,
               c->desc.q_heads, c->desc.kv_heads);
      rc = 1;
    }
  }
  free(got);
  clFinish(queue);
  if (fwd) clReleaseEvent(fwd);
  if (bwd) clReleaseEvent(bwd);
  tune_buffers_release(&b);
  return rc;
}

int tune_verify_attention(tune_verify *v, adasplash_context *ctx, double *worst, char *why,
                          size_t why_size) {
  if (worst) *worst = 0.0;
  for (int i = 0; i < TUNE_ATTN_CASES; ++i) {
    int rc = tune_verify_attn_case(&v->attn[i], ctx, worst, why, why_size);
    if (rc != 0) return rc;
  }
  return 0;
}

int tune_verify_rows(tune_verify *v, adasplash_context *ctx, double *worst, char *why,
                     size_t why_size) {
  if (worst) *worst = 0.0;
  cl_context clctx;
  cl_command_queue queue;
  adasplash_context_get_cl(ctx, &clctx, NULL, &queue);
  const adasplash_entmax_desc *d = &v->rows_desc;
  const size_t n = d->rows * d->cols, bytes = n * sizeof(float);
  tune_buffers b = {{NULL}, 0};
  cl_int err = tune_buffer_add(&b, clctx, queue, bytes, v->x);
  if (err == CL_SUCCESS) err = tune_buffer_add(&b, clctx, queue, bytes, v->dy);
  if (err == CL_SUCCESS) err = tune_buffer_add(&b, clctx, queue, bytes, NULL);
  if (err == CL_SUCCESS) err = tune_buffer_add(&b, clctx, queue, bytes, NULL);
  if (err != CL_SUCCESS) {
    tune_buffers_release(&b);
    return tune_cl_failure(err, "creating the verification buffers", why, why_size);
  }
  cl_mem x = b.m[0], dy = b.m[1], y = b.m[2], dx = b.m[3];
  float *got = (float *)malloc(bytes);
  double *yd = (double *)malloc(n * sizeof(double));
  double *dyd = (double *)malloc(n * sizeof(double));
  double *dx_ref = (double *)malloc(n * sizeof(double));
  int rc = got && yd && dyd && dx_ref ? 0 : -1;
  if (rc) snprintf(why, why_size, "out of host memory");
  cl_event ev = NULL;
  adasplash_status st = ADASPLASH_SUCCESS;
  if (rc == 0) {
    st = adasplash_entmax_forward(ctx, d, NULL, x, y, NULL, 0, NULL, &ev);
    if (st != ADASPLASH_SUCCESS)
      rc = dt_lib_failure(ctx, st, "adasplash_entmax_forward", why, why_size);
  }
  if (rc == 0) {
    err = clEnqueueReadBuffer(queue, y, CL_TRUE, 0, bytes, got, 1, &ev, NULL);
    if (err != CL_SUCCESS) rc = tune_cl_failure(err, "reading y", why, why_size);
  }
  if (ev) clReleaseEvent(ev);
  ev = NULL;
  if (rc == 0) {
    double e = tune_error(got, v->y_ref, n);
    if (worst) *worst = e;
    if (!(e <= 1.0)) {
      snprintf(why, why_size, "y off by %.3g x the tolerance (%zu rows x %zu cols)", e, d->rows,
               d->cols);
      rc = 1;
    }
  }
  if (rc == 0) {
    /* The backward from the library's own y, against the reference backward of that y. */
    for (size_t i = 0; i < n; ++i) yd[i] = got[i], dyd[i] = v->dy[i];
    for (size_t r = 0; r < d->rows; ++r)
      ref_entmax_row_backward(yd + r * d->cols, dyd + r * d->cols, d->cols, (double)d->alpha,
                              dx_ref + r * d->cols, NULL);
    st = adasplash_entmax_backward(ctx, d, NULL, y, dy, dx, NULL, 0, NULL, &ev);
    if (st != ADASPLASH_SUCCESS)
      rc = dt_lib_failure(ctx, st, "adasplash_entmax_backward", why, why_size);
  }
  if (rc == 0) {
    err = clEnqueueReadBuffer(queue, dx, CL_TRUE, 0, bytes, got, 1, &ev, NULL);
    if (err != CL_SUCCESS) rc = tune_cl_failure(err, "reading dx", why, why_size);
  }
  if (rc == 0) {
    double e = tune_error(got, dx_ref, n);
    if (worst && !(e <= *worst)) *worst = e;
    if (!(e <= 1.0)) {
      snprintf(why, why_size, "dx off by %.3g x the tolerance (%zu rows x %zu cols)", e, d->rows,
               d->cols);
      rc = 1;
    }
  }
  if (ev) clReleaseEvent(ev);
  clFinish(queue);
  free(got);
  free(yd);
  free(dyd);
  free(dx_ref);
  tune_buffers_release(&b);
  return rc;
}
