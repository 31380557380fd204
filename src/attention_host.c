/*
 * attention_host.c - host-memory conveniences for the attention calls: validate host arrays
 * (alpha per head, valid lengths), prepare, upload, run, read back, wait.
 */
#include <stdlib.h>
#include <string.h>

#include "attention_common.h"

/* Validates desc plus the host arrays and builds a device-side desc with uploaded buffers. */
static adasplash_status asp_host_setup(adasplash_context *ctx, const adasplash_attention_desc *desc,
                                       const char *fn, const float *alpha, const int *q_lens,
                                       const int *kv_lens, asp_host_set *set,
                                       adasplash_attention_desc *dev, asp_attn_problem *pr) {
  if (!ctx) return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
  if (!desc) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc is NULL", fn);
  if (desc->struct_size != sizeof *desc)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->struct_size=%zu, expected %zu", fn, desc->struct_size, sizeof *desc);
  if (desc->alpha_buf || desc->q_lens || desc->kv_lens)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->alpha_buf, q_lens and kv_lens must be NULL (pass host arrays)", fn);
  *dev = *desc;
  if (alpha) dev->alpha = 1.5f; /* the per-head values are checked below */
  adasplash_status st = asp_attn_check_desc(ctx, dev, fn, pr);
  if (st != ADASPLASH_SUCCESS) return st;
  if (alpha)
    for (int h = 0; h < desc->q_heads; ++h)
      if (!(alpha[h] > 1.0f && alpha[h] <= 2.0f))
        return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ALPHA, "%s: alpha[%d]=%g must be in (1, 2]",
                        fn, h, (double)alpha[h]);
  for (int b = 0; b < desc->batch; ++b) {
    if (q_lens && (q_lens[b] < 0 || q_lens[b] > desc->q_len))
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE, "%s: q_lens[%d]=%d is outside [0, %d]",
                      fn, b, q_lens[b], desc->q_len);
    if (kv_lens && (kv_lens[b] < 0 || kv_lens[b] > desc->kv_len))
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE, "%s: kv_lens[%d]=%d is outside [0, %d]",
                      fn, b, kv_lens[b], desc->kv_len);
  }
  if (alpha) st = asp_host_buffer(ctx, set, alpha, (size_t)desc->q_heads * 4, &dev->alpha_buf);
  if (st == ADASPLASH_SUCCESS && q_lens)
    st = asp_host_buffer(ctx, set, q_lens, (size_t)desc->batch * 4, &dev->q_lens);
  if (st == ADASPLASH_SUCCESS && kv_lens)
    st = asp_host_buffer(ctx, set, kv_lens, (size_t)desc->batch * 4, &dev->kv_lens);
  /* Prepared with the device desc the call runs (a per-head alpha buffer picks the programs). */
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_prepare(ctx, dev);
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_desc(ctx, dev, fn, pr);
  return st;
}

adasplash_status adasplash_attention_forward_host(adasplash_context *ctx,
                                                  const adasplash_attention_desc *desc,
                                                  const void *q, const void *k, const void *v,
                                                  void *out, const float *alpha, const int *q_lens,
                                                  const int *kv_lens,
                                                  adasplash_attention_stats *stats) {
  const char *fn = "adasplash_attention_forward_host";
  if (ctx && desc && (!q || !k || !v || !out))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                    !q ? "q" : (!k ? "k" : (!v ? "v" : "out")));
  if (stats && !asp_attn_stats_size_ok(stats->struct_size))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: stats->struct_size=%zu, expected %zu", fn, stats->struct_size,
                    sizeof *stats);
  asp_host_set set = {{NULL}, 0};
  adasplash_attention_desc dev;
  asp_attn_problem pr;
  adasplash_status st = asp_host_setup(ctx, desc, fn, alpha, q_lens, kv_lens, &set, &dev, &pr);
  cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL, saved = NULL;
  size_t saved_bytes = 0;
  const int want_stats = stats && dev.algorithm == ADASPLASH_ATTN_ENTMAX;
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, q, pr.q_bytes, &bq);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, k, pr.k_bytes, &bk);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, v, pr.v_bytes, &bv);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, out, pr.o_bytes, &bo);
  if (st == ADASPLASH_SUCCESS && want_stats)
    st = adasplash_attention_saved_size(ctx, &dev, &saved_bytes);
  if (st == ADASPLASH_SUCCESS && want_stats)
    st = asp_host_buffer(ctx, &set, NULL, saved_bytes, &saved);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_attention_forward(ctx, &dev, NULL, bq, bk, bv, bo, saved, NULL, 0, NULL, NULL);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, bo, out, pr.o_bytes);
  if (st == ADASPLASH_SUCCESS && want_stats)
    st = adasplash_attention_stats_read(ctx, &dev, NULL, saved, stats);
  asp_host_free(&set);
  return st;
}

adasplash_status adasplash_attention_backward_host(adasplash_context *ctx,
                                                   const adasplash_attention_desc *desc,
                                                   const void *q, const void *k, const void *v,
                                                   const void *dout, void *out, void *dq, void *dk,
                                                   void *dv, float *dalpha, const float *alpha,
                                                   const int *q_lens, const int *kv_lens) {
  const char *fn = "adasplash_attention_backward_host";
  if (ctx && desc && (!q || !k || !v || !dout || !out || !dq || !dk || !dv))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: a tensor pointer is NULL", fn);
  asp_host_set set = {{NULL}, 0};
  adasplash_attention_desc dev;
  asp_attn_problem pr;
  adasplash_status st = asp_host_setup(ctx, desc, fn, alpha, q_lens, kv_lens, &set, &dev, &pr);
  cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL, bdo = NULL, bdq = NULL, bdk = NULL, bdv = NULL;
  cl_mem saved = NULL, bda = NULL;
  size_t saved_bytes = 0;
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, q, pr.q_bytes, &bq);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, k, pr.k_bytes, &bk);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, v, pr.v_bytes, &bv);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, out, pr.o_bytes, &bo);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, dout, pr.o_bytes, &bdo);
  /* Gradient buffers start as copies of the caller's arrays so rows the kernels skip keep them. */
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, dq, pr.q_bytes, &bdq);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, dk, pr.k_bytes, &bdk);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, dv, pr.v_bytes, &bdv);
  if (st == ADASPLASH_SUCCESS && dalpha)
    st = asp_host_buffer(ctx, &set, NULL, (size_t)dev.q_heads * 4, &bda);
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_saved_size(ctx, &dev, &saved_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &set, NULL, saved_bytes, &saved);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_attention_forward(ctx, &dev, NULL, bq, bk, bv, bo, saved, NULL, 0, NULL, NULL);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_attention_backward(ctx, &dev, NULL, bq, bk, bv, bo, bdo, saved, bdq, bdk, bdv,
                                      bda, NULL, 0, NULL, NULL);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, bo, out, pr.o_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, bdq, dq, pr.q_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, bdk, dk, pr.k_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, bdv, dv, pr.v_bytes);
  if (st == ADASPLASH_SUCCESS && dalpha)
    st = asp_host_get(ctx, bda, dalpha, (size_t)dev.q_heads * 4);
  asp_host_free(&set);
  return st;
}
