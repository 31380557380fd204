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
  return asp_attn_prepare_plan(ctx, ASP_PROGRAM_SOFTMAX_FLASH, pr, &plan);
}

void asp_softmax_sizes(const adasplash_context *ctx, const asp_attn_problem *pr,
                       asp_state_sizes *sizes) {
  (void)ctx;
  sizes->saved = asp_softmax_rows(pr) * 4;                      /* log-sum-exp per row */
  sizes->workspace = asp_softmax_rows(pr) * ASP_QROW_WORDS * 4; /* the backward's row constants */
}

/* The plan of pr and, when the call has one, the caller's saved buffer checked. */
static adasplash_status asp_softmax_begin(adasplash_context *ctx, const asp_attn_problem *pr,
                                          const char *fn, cl_mem saved, asp_plan *plan) {
  adasplash_status st = asp_attn_find_plan(ctx, ASP_PROGRAM_SOFTMAX_FLASH, pr, plan);
  if (st == ADASPLASH_SUCCESS && saved)
    st = asp_scratch_check(ctx, fn, ASP_SCRATCH_SAVED, saved, asp_softmax_rows(pr) * 4);
  return st;
}

adasplash_status asp_softmax_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                     asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                     cl_mem saved, cl_mem workspace) {
  (void)workspace;
  asp_plan plan;
  adasplash_status st = asp_softmax_begin(ctx, pr, "adasplash_attention_forward", saved, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const int wg = plan.attn.wg;
  const asp_attn_args a = asp_attn_make_args(pr, &plan);
  const asp_geom g = a.g;
  cl_int save = saved != NULL;
  cl_mem q_lens = pr->d.q_lens, kv_lens = pr->d.kv_lens;
  size_t local[3] = {(size_t)wg, 1, 1};
  size_t global[3] = {(size_t)g.nqb * (size_t)wg, (size_t)g.q_heads, (size_t)g.batch};
  asp_arg args[] = {ASP_ARG(a),      ASP_ARG(q),       ASP_ARG(k),    ASP_ARG(v),    ASP_ARG(out),
                    ASP_ARG(q_lens), ASP_ARG(kv_lens), ASP_ARG(save), ASP_ARG(saved)};
  return asp_launch(chain, plan.program, "softmax_flash_forward", args,
                    sizeof args / sizeof args[0], 3, global, local);
}

adasplash_status asp_softmax_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                      asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                      cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
                                      cl_mem dalpha, cl_mem workspace) {
  (void)dalpha;
  const char *fn = "adasplash_attention_backward";
  const size_t rows = asp_softmax_rows(pr);
  asp_plan plan;
  adasplash_status st = asp_softmax_begin(ctx, pr, fn, saved, &plan);
  asp_scratch ws;
  if (st == ADASPLASH_SUCCESS)
    st = asp_scratch_get(ctx, fn, ASP_SCRATCH_WORKSPACE, workspace, rows * ASP_QROW_WORDS * 4, &ws);
  if (st != ADASPLASH_SUCCESS) return st;
  cl_mem qrows = ws.mem;
  const int wg = plan.attn.wg;
  const asp_attn_args a = asp_attn_make_args(pr, &plan);
  const asp_geom g = a.g;
  cl_mem q_lens = pr->d.q_lens, kv_lens = pr->d.kv_lens;
  size_t pre_local[1] = {64}, pre_global[1] = {(rows + 63) / 64 * 64};
  asp_arg pre[] = {ASP_ARG(a), ASP_ARG(out), ASP_ARG(dout), ASP_ARG(saved), ASP_ARG(qrows)};
  st = asp_launch(chain, plan.program, "softmax_flash_bwd_pre", pre, 5, 1, pre_global, pre_local);
  size_t local[3] = {(size_t)wg, 1, 1};
  if (st == ADASPLASH_SUCCESS) {
    size_t global[3] = {(size_t)g.nqb * (size_t)wg, (size_t)g.q_heads, (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(a),  ASP_ARG(q),      ASP_ARG(k),       ASP_ARG(v),    ASP_ARG(dout),
                      ASP_ARG(dq), ASP_ARG(q_lens), ASP_ARG(kv_lens), ASP_ARG(qrows)};
    st = asp_launch(chain, plan.program, "softmax_flash_bwd_dq", args, sizeof args / sizeof args[0],
                    3, global, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    size_t global[3] = {(size_t)g.nkb * (size_t)wg, (size_t)g.kv_heads, (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(a),  ASP_ARG(q),  ASP_ARG(k),      ASP_ARG(v),       ASP_ARG(dout),
                      ASP_ARG(dk), ASP_ARG(dv), ASP_ARG(q_lens), ASP_ARG(kv_lens), ASP_ARG(qrows)};
    st = asp_launch(chain, plan.program, "softmax_flash_bwd_dkdv", args,
                    sizeof args / sizeof args[0], 3, global, local);
  }
  asp_scratch_release(&ws);
  return st;
}
