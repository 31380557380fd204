/*
 * tune_work.c - representative attention and row-entmax workloads and their timing through the
 * devtools timing loop (see tune_work.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "tune_work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "locality.h"
#include "report.h"
#include "timing.h"

struct tune_work {
  int is_attention;
  cl_context context;
  cl_command_queue queue;
  adasplash_attention_desc attn;
  adasplash_entmax_desc rows;
  /* attention: q k v out dout dq dk dv; rows: x y */
  cl_mem m[8];
  int count;
  cl_mem saved, workspace; /* grown to what each candidate context asks for */
  size_t saved_bytes, workspace_bytes;
};

/* Converts n floats to dtype and uploads them into a new buffer (NULL data: uninitialised). */
static cl_mem tune_upload(tune_work *w, const float *data, size_t n, adasplash_dtype dtype,
                          cl_int *err) {
  const size_t bytes = n * adasplash_dtype_size(dtype);
  cl_mem m = clCreateBuffer(w->context, CL_MEM_READ_WRITE, bytes, NULL, err);
  if (*err != CL_SUCCESS || !data) return m;
  void *tmp = malloc(bytes);
  if (!tmp) {
    *err = CL_OUT_OF_HOST_MEMORY;
  } else if (adasplash_convert(data, ADASPLASH_F32, tmp, dtype, n) != ADASPLASH_SUCCESS) {
    *err = CL_INVALID_VALUE;
  } else {
    *err = clEnqueueWriteBuffer(w->queue, m, CL_TRUE, 0, bytes, tmp, 0, NULL, NULL);
  }
  free(tmp);
  return m;
}

static tune_work *tune_work_new(cl_context context, cl_command_queue queue) {
  tune_work *w = (tune_work *)calloc(1, sizeof *w);
  if (!w) return NULL;
  w->context = context;
  w->queue = queue;
  return w;
}

tune_work *tune_work_attention(cl_context context, cl_command_queue queue, const tune_attn_shape *s,
                               char *why, size_t why_size) {
  tune_work *w = tune_work_new(context, queue);
  const size_t n = (size_t)s->batch * s->heads * s->n * s->head_dim;
  float *host = (float *)malloc(4 * n * sizeof(float));
  if (!w || !host) {
    free(host);
    free(w);
    snprintf(why, why_size, "out of host memory for %zu elements", 4 * n);
    return NULL;
  }
  w->is_attention = 1;
  adasplash_attention_desc *d = &w->attn;
  adasplash_attention_desc_init(d);
  d->dtype = s->dtype;
  d->batch = s->batch;
  d->q_heads = d->kv_heads = s->heads;
  d->q_len = d->kv_len = s->n;
  d->head_dim = s->head_dim;
  d->causal = 1;
  d->alpha = (float)s->alpha;
  bench_locality_params p = {s->batch, s->heads, s->n, s->head_dim, 2.0, 0.15, 1};
  bench_locality_generate(&p, host, host + n, host + 2 * n);
  bench_dout_generate(&p, host + 3 * n);
  /* q k v dout from the host; out dq dk dv written by the library. */
  const float *src[8] = {host, host + n, host + 2 * n, host + 3 * n, NULL, NULL, NULL, NULL};
  cl_int err = CL_SUCCESS;
  for (int i = 0; i < 8 && err == CL_SUCCESS; ++i)
    w->m[w->count++] = tune_upload(w, src[i], n, s->dtype, &err);
  free(host);
  if (err != CL_SUCCESS) {
    snprintf(why, why_size, "creating the attention buffers (%zu elements each) failed: %d", n,
             (int)err);
    tune_work_free(w);
    return NULL;
  }
  return w;
}

tune_work *tune_work_rows(cl_context context, cl_command_queue queue, const tune_rows_shape *s,
                          char *why, size_t why_size) {
  tune_work *w = tune_work_new(context, queue);
  const size_t n = s->rows * s->cols;
  float *host = (float *)malloc(n * sizeof(float));
  if (!w || !host) {
    free(host);
    free(w);
    snprintf(why, why_size, "out of host memory for %zu elements", n);
    return NULL;
  }
  adasplash_entmax_desc *d = &w->rows;
  adasplash_entmax_desc_init(d);
  d->dtype = s->dtype;
  d->rows = s->rows;
  d->cols = s->cols;
  d->alpha = (float)s->alpha;
  bench_rows_generate(BENCH_ROWS_GAUSSIAN, s->rows, s->cols, 1.0, 0, 1, host);
  cl_int err = CL_SUCCESS;
  w->m[w->count++] = tune_upload(w, host, n, s->dtype, &err);
  if (err == CL_SUCCESS) w->m[w->count++] = tune_upload(w, NULL, n, s->dtype, &err);
  free(host);
  if (err != CL_SUCCESS) {
    snprintf(why, why_size, "creating the row buffers (%zu elements each) failed: %d", n, (int)err);
    tune_work_free(w);
    return NULL;
  }
  return w;
}

void tune_work_free(tune_work *w) {
  if (!w) return;
  for (int i = 0; i < w->count; ++i)
    if (w->m[i]) clReleaseMemObject(w->m[i]);
  if (w->saved) clReleaseMemObject(w->saved);
  if (w->workspace) clReleaseMemObject(w->workspace);
  free(w);
}

const adasplash_attention_desc *tune_work_attention_desc(const tune_work *w) {
  return w->is_attention ? &w->attn : NULL;
}

const adasplash_entmax_desc *tune_work_rows_desc(const tune_work *w) {
  return w->is_attention ? NULL : &w->rows;
}

/* Makes *buf at least bytes large. */
static cl_int tune_grow(tune_work *w, cl_mem *buf, size_t *have, size_t bytes) {
  if (*buf && *have >= bytes) return CL_SUCCESS;
  if (*buf) clReleaseMemObject(*buf);
  *have = 0;
  cl_int err = CL_SUCCESS;
  *buf = clCreateBuffer(w->context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
  if (err != CL_SUCCESS) {
    *buf = NULL;
    return err;
  }
  *have = bytes;
  return CL_SUCCESS;
}

/* One unit of work through a candidate context; ev[0] the first call, ev[1] the last (or NULL). */
typedef struct tune_unit {
  tune_work *w;
  adasplash_context *ctx;
} tune_unit;

static adasplash_status tune_enqueue(void *arg, cl_event ev[2]) {
  const tune_unit *u = (const tune_unit *)arg;
  tune_work *w = u->w;
  cl_mem *m = w->m;
  if (!w->is_attention)
    return adasplash_entmax_forward(u->ctx, &w->rows, w->queue, m[0], m[1], NULL, 0, NULL, &ev[0]);
  adasplash_status st = adasplash_attention_forward(u->ctx, &w->attn, w->queue, m[0], m[1], m[2],
                                                    m[4], w->saved, w->workspace, 0, NULL, &ev[0]);
  if (st != ADASPLASH_SUCCESS) return st;
  return adasplash_attention_backward(u->ctx, &w->attn, w->queue, m[0], m[1], m[2], m[4], m[3],
                                      w->saved, m[5], m[6], m[7], NULL, w->workspace, 0, NULL,
                                      &ev[1]);
}

int tune_work_time(tune_work *w, adasplash_context *ctx, int warmup, int repeats, double *median_ms,
                   int *wall_clock, char *why, size_t why_size) {
  *wall_clock = 0;
  if (w->is_attention) {
    size_t saved = 0, ws = 0;
    adasplash_status st = adasplash_attention_saved_size(ctx, &w->attn, &saved);
    if (st != ADASPLASH_SUCCESS)
      return dt_lib_failure(ctx, st, "adasplash_attention_saved_size", why, why_size);
    st = adasplash_attention_workspace_size(ctx, &w->attn, &ws);
    if (st != ADASPLASH_SUCCESS)
      return dt_lib_failure(ctx, st, "adasplash_attention_workspace_size", why, why_size);
    cl_int err = tune_grow(w, &w->saved, &w->saved_bytes, saved);
    if (err == CL_SUCCESS) err = tune_grow(w, &w->workspace, &w->workspace_bytes, ws);
    if (err != CL_SUCCESS) {
      snprintf(why, why_size, "allocating saved (%zu B) / workspace (%zu B) failed: %d", saved, ws,
               (int)err);
      return -1;
    }
  }
  tune_unit unit = {w, ctx};
  dt_timing t;
  why[0] = '\0';
  adasplash_status st = dt_time(w->queue, warmup, repeats, tune_enqueue, &unit, &t, why, why_size);
  if (st != ADASPLASH_SUCCESS) {
    if (!why[0])
      dt_lib_message(ctx, st, w->is_attention ? "attention forward/backward" : "entmax", why,
                     why_size);
    return -1;
  }
  *median_ms = t.total.median;
  *wall_clock = t.wall_clock;
  return 0;
}
