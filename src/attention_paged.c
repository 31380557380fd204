/*
 * attention_paged.c - the public calls of decode against a paged KV cache: validation of the
 * descriptor, the page pools, the block table and the sequence lengths (on the caller's host
 * copies, so nothing blocks), then the split-KV decode path (attention_decode.c) reading K and V
 * through the table.
 */
#include <string.h>

#include "attention_internal.h"

void adasplash_paged_kv_init(adasplash_paged_kv *kv) {
  if (!kv) return;
  memset(kv, 0, sizeof *kv);
  kv->struct_size = sizeof *kv;
  kv->page_size = 16;
  kv->num_pages = kv->max_blocks = 1;
}

/* Checks desc and kv (not their buffers' contents) and fills pr with the problem the decode path
 * runs: kv_len = max_blocks * page_size, the lengths from kv->seq_lens, K and V as page pools. */
static adasplash_status asp_paged_check_desc(const adasplash_context *ctx,
                                             const adasplash_attention_desc *desc,
                                             const adasplash_paged_kv *kv, const char *fn,
                                             asp_attn_problem *pr, asp_decode_kv *dkv) {
  if (ctx && desc && desc->struct_size == sizeof *desc) {
    /* desc->k and desc->v describe page pools, resolved below: the common check sees them as
     * contiguous [batch, kv_heads, kv_len] tensors it never addresses. */
    adasplash_attention_desc flat = *desc;
    memset(&flat.k, 0, sizeof flat.k);
    memset(&flat.v, 0, sizeof flat.v);
    adasplash_status st = asp_attn_check_desc(ctx, &flat, fn, pr);
    if (st != ADASPLASH_SUCCESS) return st;
  } else {
    return asp_attn_check_desc(ctx, desc, fn, pr); /* its message for a NULL or foreign desc */
  }
  adasplash_status st;
  if (!kv) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: kv is NULL", fn);
  if (kv->struct_size != sizeof *kv)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: kv->struct_size=%zu, expected %zu (use adasplash_paged_kv_init)", fn,
                    kv->struct_size, sizeof *kv);
  const int ps = kv->page_size;
  if (ps != 16 && ps != 32 && ps != 64 && ps != 128 && ps != 256)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: kv->page_size=%d must be 16, 32, 64, 128 or 256", fn, ps);
  if (kv->num_pages < 1 || kv->max_blocks < 1 || kv->max_blocks > (1 << 26) / ps)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE,
                    "%s: kv->num_pages=%d must be >= 1 and kv->max_blocks=%d in [1, %d]", fn,
                    kv->num_pages, kv->max_blocks, (1 << 26) / ps);
  if (desc->kv_len != kv->max_blocks * ps)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE,
                    "%s: desc->kv_len=%d must be kv->max_blocks*kv->page_size = %d", fn,
                    desc->kv_len, kv->max_blocks * ps);
  if (desc->kv_lens)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->kv_lens must be NULL (kv->seq_lens gives the lengths)", fn);
  if (desc->algorithm != ADASPLASH_ATTN_ENTMAX)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: a paged KV cache is read by the entmax algorithm only", fn);
  if (!kv->block_table_host || !kv->seq_lens_host)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: kv->block_table_host and kv->seq_lens_host are required (the table is "
                    "validated on them)",
                    fn);
  st = asp_layout_resolve(ctx, fn, "desc->k", &desc->k, kv->num_pages, desc->kv_heads, ps,
                          desc->head_dim, pr->esize, &pr->k, &pr->k_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_layout_resolve(ctx, fn, "desc->v", &desc->v, kv->num_pages, desc->kv_heads, ps,
                            desc->head_dim, pr->esize, &pr->v, &pr->v_bytes);
  if (st != ADASPLASH_SUCCESS) return st;
  if (!asp_decode_fits(ctx, pr))
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: the decode workspace for %d x %d x %d rows of %d keys exceeds one "
                    "allocation of this device",
                    fn, desc->batch, desc->q_heads, desc->q_len, desc->kv_len);
  pr->d.kv_lens = kv->seq_lens;
  dkv->table = kv->block_table;
  dkv->page_size = ps;
  dkv->max_blocks = kv->max_blocks;
  dkv->num_pages = kv->num_pages;
  return ADASPLASH_SUCCESS;
}

/* The host copies of the lengths and the table. */
static adasplash_status asp_paged_check_table(const adasplash_context *ctx,
                                              const adasplash_paged_kv *kv, int batch,
                                              const char *fn) {
  const int cap = kv->max_blocks * kv->page_size;
  for (int b = 0; b < batch; ++b) {
    const int32_t len = kv->seq_lens_host[b];
    if (len < 0)
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE, "%s: kv->seq_lens[%d]=%d is negative", fn,
                      b, (int)len);
    if (len > cap)
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE,
                      "%s: kv->seq_lens[%d]=%d exceeds max_blocks*page_size = %d", fn, b, (int)len,
                      cap);
    const int used = (len + kv->page_size - 1) / kv->page_size;
    const int32_t *row = kv->block_table_host + (size_t)b * (size_t)kv->max_blocks;
    for (int j = 0; j < used; ++j)
      if (row[j] < 0 || row[j] >= kv->num_pages)
        return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                        "%s: kv->block_table[%d][%d]=%d is not a page in [0, %d) (sequence %d "
                        "has %d keys)",
                        fn, b, j, (int)row[j], kv->num_pages, b, (int)len);
  }
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_attention_paged_workspace_size(const adasplash_context *ctx,
                                                          const adasplash_attention_desc *desc,
                                                          const adasplash_paged_kv *kv,
                                                          size_t *bytes) {
  const char *fn = "adasplash_attention_paged_workspace_size";
  asp_attn_problem pr;
  asp_decode_kv dkv;
  adasplash_status st = asp_paged_check_desc(ctx, desc, kv, fn, &pr, &dkv);
  if (st != ADASPLASH_SUCCESS) return st;
  if (!bytes) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: bytes is NULL", fn);
  /* Like adasplash_attention_workspace_size, the query prepares what the call will run. */
  st = asp_decode_prepare((adasplash_context *)ctx, pr.d.dtype, pr.d.head_dim);
  if (st == ADASPLASH_SUCCESS) *bytes = asp_decode_workspace_bytes(ctx, &pr);
  return st;
}

adasplash_status adasplash_attention_forward_paged(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_paged_kv *kv,
    cl_command_queue queue, cl_mem q, cl_mem k_pages, cl_mem v_pages, cl_mem out, cl_mem workspace,
    cl_uint nwait, const cl_event *wait, cl_event *event) {
  const char *fn = "adasplash_attention_forward_paged";
  asp_attn_problem pr;
  asp_decode_kv dkv;
  adasplash_status st = asp_paged_check_desc(ctx, desc, kv, fn, &pr, &dkv);
  if (st == ADASPLASH_SUCCESS) st = asp_check_queue(ctx, queue);
  if (st == ADASPLASH_SUCCESS) st = asp_check_wait_list(ctx, nwait, wait);
  if (st != ADASPLASH_SUCCESS) return st;
  const adasplash_attention_desc *d = &pr.d;
  const size_t table_bytes = (size_t)d->batch * (size_t)kv->max_blocks * 4;
  st = asp_check_optional_buffer(ctx, d->alpha_buf, "desc->alpha_buf", (size_t)d->q_heads * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, d->q_lens, "desc->q_lens", (size_t)d->batch * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_buffer(ctx, kv->block_table, "kv->block_table", table_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_buffer(ctx, kv->seq_lens, "kv->seq_lens", (size_t)d->batch * 4);
  if (st == ADASPLASH_SUCCESS) st = asp_check_buffer(ctx, q, "q", pr.q_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_check_buffer(ctx, k_pages, "k_pages", pr.k_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_check_buffer(ctx, v_pages, "v_pages", pr.v_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_check_buffer(ctx, out, "out", pr.o_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_paged_check_table(ctx, kv, d->batch, fn);
  const size_t ws_bytes = st == ADASPLASH_SUCCESS ? asp_decode_workspace_bytes(ctx, &pr) : 0;
  if (st == ADASPLASH_SUCCESS) {
    const size_t es = pr.esize;
    const asp_region r[] = {{q, (size_t)pr.q.off * es, pr.q_bytes, "q", 0, 0},
                            {k_pages, (size_t)pr.k.off * es, pr.k_bytes, "k_pages", 0, 0},
                            {v_pages, (size_t)pr.v.off * es, pr.v_bytes, "v_pages", 0, 0},
                            {out, (size_t)pr.o.off * es, pr.o_bytes, "out", 1, 0},
                            {workspace, 0, workspace ? ws_bytes : 0, "workspace", 1, 1},
                            {d->alpha_buf, 0, (size_t)d->q_heads * 4, "desc->alpha_buf", 0, 1},
                            {d->q_lens, 0, (size_t)d->batch * 4, "desc->q_lens", 0, 1},
                            {kv->block_table, 0, table_bytes, "kv->block_table", 0, 1},
                            {kv->seq_lens, 0, (size_t)d->batch * 4, "kv->seq_lens", 0, 1}};
    st = asp_check_overlaps(ctx, fn, r, sizeof r / sizeof r[0]);
  }
  if (st == ADASPLASH_SUCCESS && !asp_decode_prepared(ctx, &pr))
    st = asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                  "%s: decode kernels for dtype %d, head_dim %d are not compiled: call "
                  "adasplash_attention_prepare (or adasplash_warmup) first",
                  fn, (int)d->dtype, d->head_dim);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, queue, nwait, wait);
  st = asp_decode_forward(ctx, &pr, &dkv, &chain, q, k_pages, v_pages, out, workspace, fn);
  return asp_chain_end(&chain, st, event);
}
