/*
 * softmax_flash.c - host side of the dense softmax flash-attention baseline (cl/softmax_flash.cl):
 * same tile plan and launch skeleton as the fused entmax kernels, so the benchmark's ratio
 * compares algorithms, not implementations. Saved state: the log-sum-exp per row.
 */
#include <string.h>

#include "attention_internal.h"

static size_t asp_softmax_rows(const asp_attn_problem *pr) {
  return (size_t)pr->d.batch * pr->d.q_heads * pr->d.q_len;
}

adasplash_status asp_softmax_prepare(adasplash_context *ctx, const asp_attn_problem *pr) {
  asp_plan plan;
  return asp_attn_prepare_plan(ctx, ASP_PROGRAM_SOFTMAX_FLASH, pr->d.dtype, pr->d.head_dim, &plan);
}

adasplash_status asp_softmax_saved_size(adasplash_context *ctx, const asp_attn_problem *pr,
                                        size_t *bytes) {
  (void)ctx;
  *bytes = asp_softmax_rows(pr) * 4;
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_softmax_workspace_size(adasplash_context *ctx, const asp_attn_problem *pr,
                                            size_t *bytes) {
  (void)ctx;
  *bytes = asp_softmax_rows(pr) * 4; /* delta of the backward */
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_softmax_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                     asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                     cl_mem saved, cl_mem workspace) {
  (void)workspace;
  asp_plan plan;
  adasplash_status st =
      asp_attn_find_plan(ctx, ASP_PROGRAM_SOFTMAX_FLASH, pr->d.dtype, pr->d.head_dim, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  if (saved) {
    st = asp_check_buffer(ctx, saved, "saved", asp_softmax_rows(pr) * 4);
    if (st == ADASPLASH_ERROR_BUFFER_TOO_SMALL)
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED, "saved is smaller than saved_size()");
    if (st != ADASPLASH_SUCCESS) return st;
  }
  const int wg = plan.attn.wg;
  asp_cl_geom g = asp_attn_geom(pr, plan.attn.tile);
  cl_float scale = pr->d.scale;
  cl_int save = saved != NULL;
  cl_mem q_lens = pr->d.q_lens, kv_lens = pr->d.kv_lens;
  size_t local[3] = {(size_t)wg, 1, 1};
  size_t global[3] = {(size_t)g.nqb * (size_t)wg, (size_t)g.q_heads, (size_t)g.batch};
  asp_arg args[] = {ASP_ARG(q),     ASP_ARG(k),     ASP_ARG(v),      ASP_ARG(out),
                    ASP_ARG(pr->q), ASP_ARG(pr->k), ASP_ARG(pr->v),  ASP_ARG(pr->o),
                    ASP_ARG(g),     ASP_ARG(scale), ASP_ARG(q_lens), ASP_ARG(kv_lens),
                    ASP_ARG(save),  ASP_ARG(saved)};
  return asp_launch(chain, plan.program, "softmax_flash_forward", args,
                    sizeof args / sizeof args[0], 3, global, local);
}

adasplash_status asp_softmax_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                      asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                      cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
                                      cl_mem dalpha, cl_mem workspace) {
  (void)dalpha;
  asp_plan plan;
  adasplash_status st =
      asp_attn_find_plan(ctx, ASP_PROGRAM_SOFTMAX_FLASH, pr->d.dtype, pr->d.head_dim, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const size_t rows = asp_softmax_rows(pr);
  st = asp_check_buffer(ctx, saved, "saved", rows * 4);
  if (st == ADASPLASH_ERROR_BUFFER_TOO_SMALL)
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED, "saved is smaller than saved_size()");
  if (st != ADASPLASH_SUCCESS) return st;
  cl_mem delta = workspace, owned = NULL;
  if (workspace) {
    st = asp_check_buffer(ctx, workspace, "workspace", rows * 4);
  } else {
    st = asp_create_buffer(ctx, rows * 4, &owned);
    delta = owned;
  }
  if (st != ADASPLASH_SUCCESS) return st;
  const int wg = plan.attn.wg;
  asp_cl_geom g = asp_attn_geom(pr, plan.attn.tile);
  cl_float scale = pr->d.scale;
  cl_mem q_lens = pr->d.q_lens, kv_lens = pr->d.kv_lens;
  size_t pre_local[1] = {64}, pre_global[1] = {(rows + 63) / 64 * 64};
  asp_arg pre[] = {ASP_ARG(out), ASP_ARG(dout), ASP_ARG(pr->o), ASP_ARG(g), ASP_ARG(delta)};
  st = asp_launch(chain, plan.program, "softmax_flash_bwd_pre", pre, 5, 1, pre_global, pre_local);
  size_t local[3] = {(size_t)wg, 1, 1};
  if (st == ADASPLASH_SUCCESS) {
    size_t global[3] = {(size_t)g.nqb * (size_t)wg, (size_t)g.q_heads, (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(q),       ASP_ARG(k),     ASP_ARG(v),     ASP_ARG(dout),
                      ASP_ARG(dq),      ASP_ARG(pr->q), ASP_ARG(pr->k), ASP_ARG(pr->v),
                      ASP_ARG(pr->o),   ASP_ARG(g),     ASP_ARG(scale), ASP_ARG(q_lens),
                      ASP_ARG(kv_lens), ASP_ARG(saved), ASP_ARG(delta)};
    st = asp_launch(chain, plan.program, "softmax_flash_bwd_dq", args, sizeof args / sizeof args[0],
                    3, global, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    size_t global[3] = {(size_t)g.nkb * (size_t)wg, (size_t)g.kv_heads, (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(q),      ASP_ARG(k),       ASP_ARG(v),     ASP_ARG(dout),
                      ASP_ARG(dk),     ASP_ARG(dv),      ASP_ARG(pr->q), ASP_ARG(pr->k),
                      ASP_ARG(pr->v),  ASP_ARG(pr->o),   ASP_ARG(g),     ASP_ARG(scale),
                      ASP_ARG(q_lens), ASP_ARG(kv_lens), ASP_ARG(saved), ASP_ARG(delta)};
    st = asp_launch(chain, plan.program, "softmax_flash_bwd_dkdv", args,
                    sizeof args / sizeof args[0], 3, global, local);
  }
  if (owned) clReleaseMemObject(owned);
  return st;
}
