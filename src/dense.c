/*
 * dense.c - the dense entmax attention baseline and on-device cross-check: scores materialised
 * with CLBlast's batched SGEMM, the library's row entmax operator on them (with per-row visible
 * lengths for causal masking and padding), then P V with CLBlast; the backward likewise
 * (dP = dO V^T, row-entmax backward, three GEMMs). Everything is fp32 inside; 16-bit tensors are
 * packed to fp32 first.
 *
 * Memory: O(batch * q_heads * q_len * kv_len) floats for P (saved) and dP (workspace), plus fp32
 * copies of q, k, v, out: use it where that fits, e.g. to check the fused kernels at sizes the
 * host reference is too slow for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_internal.h"
#include "entmax_rows.h"

#if ADASPLASH_HAVE_CLBLAST
#include <clblast_c.h>
#endif

/* Saved: P [B,Hq,Lq,Lk], then visible counts [B,Hq,Lq] (int). */
typedef struct asp_dense_sizes {
  size_t rows, p_elems, q_elems, kv_elems, o_elems;
  size_t saved_p, saved_vis, saved_bytes;
  size_t ws_q, ws_k, ws_v, ws_o, ws_alpha, ws_bytes_fwd;
  size_t ws_dp, ws_dq, ws_dk, ws_dv, ws_drow, ws_bytes_bwd;
} asp_dense_sizes;

static void asp_dense_sizes_of(const adasplash_context *ctx, const asp_attn_problem *pr,
                               asp_dense_sizes *s) {
  const size_t a = asp_sub_buffer_align(ctx);
  const adasplash_attention_desc *d = &pr->d;
  memset(s, 0, sizeof *s);
  s->rows = (size_t)d->batch * d->q_heads * d->q_len;
  s->p_elems = s->rows * (size_t)d->kv_len;
  s->q_elems = s->rows * (size_t)d->head_dim;
  s->kv_elems = (size_t)d->batch * d->kv_heads * d->kv_len * (size_t)d->head_dim;
  s->o_elems = s->q_elems;
  s->saved_p = 0;
  s->saved_vis = asp_align_up(s->p_elems * 4, a);
  s->saved_bytes = s->saved_vis + asp_align_up(s->rows * 4, a);
  s->ws_q = 0;
  s->ws_k = asp_align_up(s->q_elems * 4, a);
  s->ws_v = s->ws_k + asp_align_up(s->kv_elems * 4, a);
  s->ws_o = s->ws_v + asp_align_up(s->kv_elems * 4, a);
  s->ws_alpha = s->ws_o + asp_align_up(s->o_elems * 4, a);
  s->ws_bytes_fwd = s->ws_alpha + asp_align_up(s->rows * 4, a);
  /* Backward reuses q, k, v, o(=dO), alpha and adds dP, dQ, dK, dV, d(alpha) rows. */
  s->ws_dp = s->ws_bytes_fwd;
  s->ws_dq = s->ws_dp + asp_align_up(s->p_elems * 4, a);
  s->ws_dk = s->ws_dq + asp_align_up(s->q_elems * 4, a);
  s->ws_dv = s->ws_dk + asp_align_up(s->kv_elems * 4, a);
  s->ws_drow = s->ws_dv + asp_align_up(s->kv_elems * 4, a);
  s->ws_bytes_bwd = s->ws_drow + asp_align_up(s->rows * 4, a);
}

adasplash_status asp_dense_saved_size(adasplash_context *ctx, const asp_attn_problem *pr,
                                      size_t *bytes) {
  asp_dense_sizes s;
  asp_dense_sizes_of(ctx, pr, &s);
  *bytes = s.saved_bytes;
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_dense_workspace_size(adasplash_context *ctx, const asp_attn_problem *pr,
                                          size_t *bytes) {
  asp_dense_sizes s;
  asp_dense_sizes_of(ctx, pr, &s);
  *bytes = s.ws_bytes_bwd;
  return ADASPLASH_SUCCESS;
}

#if ADASPLASH_HAVE_CLBLAST

static adasplash_status asp_util_plan(adasplash_context *ctx, adasplash_dtype dtype, int build,
                                      asp_plan *plan) {
  const asp_variant_key key = asp_variant_key_of(ctx, ASP_PROGRAM_UTILITY, dtype, 0, 0);
  if (asp_plan_find(ctx, &key, plan)) return ADASPLASH_SUCCESS;
  if (!build)
    return asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                    "dense attention kernels are not compiled: call adasplash_attention_prepare");
  asp_defines d;
  asp_defines_init(&d, ctx, &key);
  memset(plan, 0, sizeof *plan);
  plan->key = key;
  adasplash_status st = asp_variant_program(ctx, &key, &d, &plan->program);
  if (st == ADASPLASH_SUCCESS) st = asp_plan_store(ctx, plan, plan);
  return st;
}

adasplash_status asp_dense_prepare(adasplash_context *ctx, const asp_attn_problem *pr) {
  asp_plan plan;
  adasplash_status st = asp_util_plan(ctx, pr->d.dtype, 1, &plan);
  if (st == ADASPLASH_SUCCESS) st = asp_rows_prepare(ctx, ADASPLASH_F32);
  return st;
}

/* CLBlast keeps programs per cl_context in a process-wide cache that outlives our context (and
 * would serve stale programs to a new context at the same address). Clearing it costs other
 * CLBlast users in the process a recompile, never a wrong result. */
static void asp_dense_release(adasplash_context *ctx) {
  (void)ctx;
  CLBlastClearCache();
}

static adasplash_status asp_blast(asp_chain *c, CLBlastStatusCode code, cl_event ev,
                                  const char *what) {
  if (code != CLBlastSuccess) {
    if (ev) clReleaseEvent(ev);
    return asp_fail(c->ctx,
                    code == CLBlastTempBufferAllocFailure ? ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY
                                                          : ADASPLASH_ERROR_OPENCL,
                    "CLBlast %s failed with status %d", what, (int)code);
  }
  asp_chain_adopt(c, ev);
  return ADASPLASH_SUCCESS;
}

/* C[i] = alpha op(A[i]) op(B[i]) + beta C[i] for i < count, row-major, offsets in elements. */
static adasplash_status asp_gemm_batched(asp_chain *c, int ta, int tb, size_t m, size_t n, size_t k,
                                         float alpha, cl_mem a, const size_t *aoff, size_t lda,
                                         cl_mem b, const size_t *boff, size_t ldb, float beta,
                                         cl_mem cc, const size_t *coff, size_t ldc, size_t count) {
  /* CLBlast takes no wait list: a barrier makes its commands wait for the chain so far. */
  adasplash_status st = asp_chain_barrier(c);
  if (st != ADASPLASH_SUCCESS) return st;
  float *alphas = (float *)malloc(count * sizeof *alphas),
        *betas = (float *)malloc(count * sizeof *betas);
  if (!alphas || !betas) {
    free(alphas);
    free(betas);
    return asp_fail(c->ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating GEMM scalars");
  }
  for (size_t i = 0; i < count; ++i) {
    alphas[i] = alpha;
    betas[i] = beta;
  }
  cl_event ev = NULL;
  cl_command_queue q = c->queue;
  CLBlastStatusCode code =
      CLBlastSgemmBatched(CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                          tb ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alphas, a, aoff,
                          lda, b, boff, ldb, betas, cc, coff, ldc, count, &q, &ev);
  free(alphas);
  free(betas);
  return asp_blast(c, code, ev, "SgemmBatched");
}

typedef struct asp_dense_ctx {
  adasplash_context *ctx;
  const asp_attn_problem *pr;
  asp_chain *chain;
  asp_plan util;
  asp_cl_geom g;
  size_t bh;                     /* batch * q_heads */
  size_t *off_a, *off_b, *off_c; /* offset arrays, bh entries */
} asp_dense_ctx;

static adasplash_status asp_dense_begin(adasplash_context *ctx, const asp_attn_problem *pr,
                                        asp_chain *chain, asp_dense_ctx *dc) {
  memset(dc, 0, sizeof *dc);
  dc->ctx = ctx;
  dc->pr = pr;
  dc->chain = chain;
  adasplash_status st = asp_util_plan(ctx, pr->d.dtype, 0, &dc->util);
  if (st == ADASPLASH_SUCCESS) st = asp_context_on_release(ctx, asp_dense_release);
  if (st != ADASPLASH_SUCCESS) return st;
  dc->g = asp_attn_geom(pr, 64);
  dc->bh = (size_t)pr->d.batch * pr->d.q_heads;
  dc->off_a = (size_t *)malloc(dc->bh * sizeof(size_t));
  dc->off_b = (size_t *)malloc(dc->bh * sizeof(size_t));
  dc->off_c = (size_t *)malloc(dc->bh * sizeof(size_t));
  if (!dc->off_a || !dc->off_b || !dc->off_c)
    return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating GEMM offsets");
  return ADASPLASH_SUCCESS;
}

static void asp_dense_end(asp_dense_ctx *dc) {
  free(dc->off_a);
  free(dc->off_b);
  free(dc->off_c);
}

static adasplash_status asp_dense_pack(asp_dense_ctx *dc, cl_mem src, const asp_cl_layout *l,
                                       int heads, int len, cl_mem dst) {
  cl_int batch = dc->pr->d.batch, h = heads, n = len, hd = dc->pr->d.head_dim;
  size_t total = (size_t)batch * heads * len * hd;
  size_t local[1] = {64}, global[1] = {(total + 63) / 64 * 64};
  asp_arg args[] = {ASP_ARG(src), ASP_ARG(*l), ASP_ARG(batch), ASP_ARG(h),
                    ASP_ARG(n),   ASP_ARG(hd), ASP_ARG(dst)};
  return asp_launch(dc->chain, dc->util.program, "pack_f32", args, 7, 1, global, local);
}

static adasplash_status asp_dense_unpack(asp_dense_ctx *dc, cl_mem src, const asp_cl_layout *l,
                                         int heads, int len, float factor, cl_mem dst) {
  cl_int batch = dc->pr->d.batch, h = heads, n = len, hd = dc->pr->d.head_dim;
  cl_float f = factor;
  size_t total = (size_t)batch * heads * len * hd;
  size_t local[1] = {64}, global[1] = {(total + 63) / 64 * 64};
  asp_arg args[] = {ASP_ARG(src), ASP_ARG(*l), ASP_ARG(batch), ASP_ARG(h),
                    ASP_ARG(n),   ASP_ARG(hd), ASP_ARG(f),     ASP_ARG(dst)};
  return asp_launch(dc->chain, dc->util.program, "unpack_f32", args, 8, 1, global, local);
}

/* Offsets of the per-(batch, q head) matrices: q-side [bh][rows_a][cols], kv-side of the head's
 * kv head. */
static void asp_offsets_q(asp_dense_ctx *dc, size_t *off, size_t per) {
  for (size_t i = 0; i < dc->bh; ++i) off[i] = i * per;
}

static void asp_offsets_kv(asp_dense_ctx *dc, size_t *off, size_t per) {
  const int group = dc->pr->d.q_heads / dc->pr->d.kv_heads;
  for (size_t i = 0; i < dc->bh; ++i) {
    size_t b = i / (size_t)dc->pr->d.q_heads, h = i % (size_t)dc->pr->d.q_heads;
    off[i] = (b * (size_t)dc->pr->d.kv_heads + h / (size_t)group) * per;
  }
}

static asp_rows_job asp_dense_rows_job(const asp_attn_problem *pr, cl_mem alpha_rows,
                                       cl_mem visible) {
  asp_rows_job job;
  memset(&job, 0, sizeof job);
  job.dtype = ADASPLASH_F32;
  job.rows = (size_t)pr->d.batch * pr->d.q_heads * pr->d.q_len;
  job.cols = (size_t)pr->d.kv_len;
  job.row_stride = job.cols;
  job.alpha = pr->d.alpha;
  job.alpha_buf = alpha_rows;
  job.valid_cols = visible;
  job.tolerance = pr->d.tolerance < 1e-6f ? pr->d.tolerance : 1e-6f;
  job.max_iter = pr->d.max_iter > 32 ? pr->d.max_iter : 32;
  job.use_hist = 1;
  return job;
}

adasplash_status asp_dense_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                   asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                   cl_mem saved, cl_mem workspace) {
  asp_dense_sizes s;
  asp_dense_sizes_of(ctx, pr, &s);
  adasplash_status st = ADASPLASH_SUCCESS;
  cl_mem owned_saved = NULL, owned_ws = NULL;
  if (saved) {
    st = asp_check_buffer(ctx, saved, "saved", s.saved_bytes);
    if (st == ADASPLASH_ERROR_BUFFER_TOO_SMALL)
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED, "saved is smaller than saved_size()");
  } else {
    st = asp_create_buffer(ctx, s.saved_bytes, &owned_saved);
    saved = owned_saved;
  }
  if (st == ADASPLASH_SUCCESS) {
    if (workspace) {
      st = asp_check_buffer(ctx, workspace, "workspace", s.ws_bytes_fwd);
    } else {
      st = asp_create_buffer(ctx, s.ws_bytes_fwd, &owned_ws);
      workspace = owned_ws;
    }
  }
  asp_dense_ctx dc;
  memset(&dc, 0, sizeof dc);
  cl_mem P = NULL, vis = NULL, Qp = NULL, Kp = NULL, Vp = NULL, Op = NULL, arows = NULL;
  if (st == ADASPLASH_SUCCESS) st = asp_dense_begin(ctx, pr, chain, &dc);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, saved, s.saved_p, s.p_elems * 4, &P);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, saved, s.saved_vis, s.rows * 4, &vis);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, workspace, s.ws_q, s.q_elems * 4, &Qp);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, workspace, s.ws_k, s.kv_elems * 4, &Kp);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, workspace, s.ws_v, s.kv_elems * 4, &Vp);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, workspace, s.ws_o, s.o_elems * 4, &Op);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, workspace, s.ws_alpha, s.rows * 4, &arows);
  const adasplash_attention_desc *d = &pr->d;
  const size_t D = (size_t)d->head_dim, Lq = (size_t)d->q_len, Lk = (size_t)d->kv_len;
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, q, &pr->q, d->q_heads, d->q_len, Qp);
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, k, &pr->k, d->kv_heads, d->kv_len, Kp);
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, v, &pr->v, d->kv_heads, d->kv_len, Vp);
  if (st == ADASPLASH_SUCCESS) {
    cl_mem alpha_heads = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;
    cl_int has_alpha = d->alpha_buf != NULL;
    size_t local[1] = {64}, global[1] = {(s.rows + 63) / 64 * 64};
    asp_arg args[] = {ASP_ARG(dc.g),      ASP_ARG(q_lens), ASP_ARG(kv_lens), ASP_ARG(alpha_heads),
                      ASP_ARG(has_alpha), ASP_ARG(vis),    ASP_ARG(arows)};
    st = asp_launch(chain, dc.util.program, "row_params", args, 7, 1, global, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    /* S = scale Q K^T per (batch, q head). */
    asp_offsets_q(&dc, dc.off_a, Lq * D);
    asp_offsets_kv(&dc, dc.off_b, Lk * D);
    asp_offsets_q(&dc, dc.off_c, Lq * Lk);
    st = asp_gemm_batched(chain, 0, 1, Lq, Lk, D, d->scale, Qp, dc.off_a, D, Kp, dc.off_b, D, 0.0f,
                          P, dc.off_c, Lk, dc.bh);
  }
  if (st == ADASPLASH_SUCCESS) {
    asp_rows_job job = asp_dense_rows_job(pr, d->alpha_buf ? arows : NULL, vis);
    st = asp_rows_forward(ctx, &job, chain, P, P, NULL);
  }
  if (st == ADASPLASH_SUCCESS) {
    /* O = P V. */
    asp_offsets_q(&dc, dc.off_a, Lq * Lk);
    asp_offsets_kv(&dc, dc.off_b, Lk * D);
    asp_offsets_q(&dc, dc.off_c, Lq * D);
    st = asp_gemm_batched(chain, 0, 0, Lq, D, Lk, 1.0f, P, dc.off_a, Lk, Vp, dc.off_b, D, 0.0f, Op,
                          dc.off_c, D, dc.bh);
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_unpack(&dc, Op, &pr->o, d->q_heads, d->q_len, 1.0f, out);
  cl_mem rel[] = {P, vis, Qp, Kp, Vp, Op, arows, owned_saved, owned_ws};
  for (size_t i = 0; i < sizeof rel / sizeof rel[0]; ++i)
    if (rel[i]) clReleaseMemObject(rel[i]);
  asp_dense_end(&dc);
  return st;
}

adasplash_status asp_dense_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                    asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                    cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
                                    cl_mem dalpha, cl_mem workspace) {
  (void)out;
  asp_dense_sizes s;
  asp_dense_sizes_of(ctx, pr, &s);
  adasplash_status st = asp_check_buffer(ctx, saved, "saved", s.saved_bytes);
  if (st == ADASPLASH_ERROR_BUFFER_TOO_SMALL)
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED, "saved is smaller than saved_size()");
  cl_mem owned_ws = NULL;
  if (st == ADASPLASH_SUCCESS) {
    if (workspace) {
      st = asp_check_buffer(ctx, workspace, "workspace", s.ws_bytes_bwd);
    } else {
      st = asp_create_buffer(ctx, s.ws_bytes_bwd, &owned_ws);
      workspace = owned_ws;
    }
  }
  asp_dense_ctx dc;
  memset(&dc, 0, sizeof dc);
  cl_mem P = NULL, vis = NULL, Qp = NULL, Kp = NULL, Vp = NULL, dOp = NULL, arows = NULL;
  cl_mem dP = NULL, dQp = NULL, dKp = NULL, dVp = NULL, drow = NULL;
  const adasplash_attention_desc *d = &pr->d;
  if (st == ADASPLASH_SUCCESS) st = asp_dense_begin(ctx, pr, chain, &dc);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, saved, s.saved_p, s.p_elems * 4, &P);
  if (st == ADASPLASH_SUCCESS) st = asp_sub_buffer(ctx, saved, s.saved_vis, s.rows * 4, &vis);
  const size_t offs[] = {s.ws_q,  s.ws_k,  s.ws_v,  s.ws_o,  s.ws_alpha,
                         s.ws_dp, s.ws_dq, s.ws_dk, s.ws_dv, s.ws_drow};
  const size_t sizes[] = {s.q_elems, s.kv_elems, s.kv_elems, s.o_elems,  s.rows,
                          s.p_elems, s.q_elems,  s.kv_elems, s.kv_elems, s.rows};
  cl_mem *views[] = {&Qp, &Kp, &Vp, &dOp, &arows, &dP, &dQp, &dKp, &dVp, &drow};
  for (size_t i = 0; i < sizeof offs / sizeof offs[0] && st == ADASPLASH_SUCCESS; ++i)
    st = asp_sub_buffer(ctx, workspace, offs[i], sizes[i] * 4, views[i]);
  const size_t D = (size_t)d->head_dim, Lq = (size_t)d->q_len, Lk = (size_t)d->kv_len;
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, q, &pr->q, d->q_heads, d->q_len, Qp);
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, k, &pr->k, d->kv_heads, d->kv_len, Kp);
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, v, &pr->v, d->kv_heads, d->kv_len, Vp);
  if (st == ADASPLASH_SUCCESS) st = asp_dense_pack(&dc, dout, &pr->o, d->q_heads, d->q_len, dOp);
  if (st == ADASPLASH_SUCCESS && d->alpha_buf) {
    cl_mem alpha_heads = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;
    cl_int has_alpha = 1;
    size_t local[1] = {64}, global[1] = {(s.rows + 63) / 64 * 64};
    /* Recomputes the visible counts too (identical to the saved ones). */
    asp_arg args[] = {ASP_ARG(dc.g),      ASP_ARG(q_lens), ASP_ARG(kv_lens), ASP_ARG(alpha_heads),
                      ASP_ARG(has_alpha), ASP_ARG(vis),    ASP_ARG(arows)};
    st = asp_launch(chain, dc.util.program, "row_params", args, 7, 1, global, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    /* dP = dO V^T. */
    asp_offsets_q(&dc, dc.off_a, Lq * D);
    asp_offsets_kv(&dc, dc.off_b, Lk * D);
    asp_offsets_q(&dc, dc.off_c, Lq * Lk);
    st = asp_gemm_batched(chain, 0, 1, Lq, Lk, D, 1.0f, dOp, dc.off_a, D, Vp, dc.off_b, D, 0.0f, dP,
                          dc.off_c, Lk, dc.bh);
  }
  if (st == ADASPLASH_SUCCESS) {
    asp_rows_job job = asp_dense_rows_job(pr, d->alpha_buf ? arows : NULL, vis);
    st = asp_rows_backward(ctx, &job, chain, P, dP, dP, dalpha ? drow : NULL);
  }
  if (st == ADASPLASH_SUCCESS) {
    /* dQ = scale dS K. */
    asp_offsets_q(&dc, dc.off_a, Lq * Lk);
    asp_offsets_kv(&dc, dc.off_b, Lk * D);
    asp_offsets_q(&dc, dc.off_c, Lq * D);
    st = asp_gemm_batched(chain, 0, 0, Lq, D, Lk, d->scale, dP, dc.off_a, Lk, Kp, dc.off_b, D, 0.0f,
                          dQp, dc.off_c, D, dc.bh);
  }
  /* dK = scale sum_group dS^T Q, dV = sum_group P^T dO: one batched GEMM per member of the group,
   * accumulating with beta = 1 after the first. */
  const int group = d->q_heads / d->kv_heads;
  const size_t nkv = (size_t)d->batch * d->kv_heads;
  for (int m = 0; m < group && st == ADASPLASH_SUCCESS; ++m) {
    for (size_t i = 0; i < nkv; ++i) {
      size_t b = i / (size_t)d->kv_heads, hk = i % (size_t)d->kv_heads;
      size_t bhq = b * (size_t)d->q_heads + hk * (size_t)group + (size_t)m;
      dc.off_a[i] = bhq * Lq * Lk;
      dc.off_b[i] = bhq * Lq * D;
      dc.off_c[i] = i * Lk * D;
    }
    float beta = m == 0 ? 0.0f : 1.0f;
    st = asp_gemm_batched(chain, 1, 0, Lk, D, Lq, d->scale, dP, dc.off_a, Lk, Qp, dc.off_b, D, beta,
                          dKp, dc.off_c, D, nkv);
    if (st == ADASPLASH_SUCCESS)
      st = asp_gemm_batched(chain, 1, 0, Lk, D, Lq, 1.0f, P, dc.off_a, Lk, dOp, dc.off_b, D, beta,
                            dVp, dc.off_c, D, nkv);
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_unpack(&dc, dQp, &pr->q, d->q_heads, d->q_len, 1.0f, dq);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_unpack(&dc, dKp, &pr->k, d->kv_heads, d->kv_len, 1.0f, dk);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_unpack(&dc, dVp, &pr->v, d->kv_heads, d->kv_len, 1.0f, dv);
  if (st == ADASPLASH_SUCCESS && dalpha) {
    size_t local[1] = {1}, global[1] = {(size_t)d->q_heads};
    asp_arg args[] = {ASP_ARG(dc.g), ASP_ARG(drow), ASP_ARG(dalpha)};
    st = asp_launch(chain, dc.util.program, "sum_per_head", args, 3, 1, global, local);
  }
  cl_mem rel[] = {P, vis, Qp, Kp, Vp, dOp, arows, dP, dQp, dKp, dVp, drow, owned_ws};
  for (size_t i = 0; i < sizeof rel / sizeof rel[0]; ++i)
    if (rel[i]) clReleaseMemObject(rel[i]);
  asp_dense_end(&dc);
  return st;
}

#else /* !ADASPLASH_HAVE_CLBLAST */

adasplash_status asp_dense_prepare(adasplash_context *ctx, const asp_attn_problem *pr) {
  (void)pr;
  return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                  "the dense attention baseline needs CLBlast, which this build lacks");
}

adasplash_status asp_dense_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                   asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                   cl_mem saved, cl_mem workspace) {
  (void)chain, (void)q, (void)k, (void)v, (void)out, (void)saved, (void)workspace;
  return asp_dense_prepare(ctx, pr);
}

adasplash_status asp_dense_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                    asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                    cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
                                    cl_mem dalpha, cl_mem workspace) {
  (void)chain, (void)q, (void)k, (void)v, (void)out, (void)dout, (void)saved, (void)dq, (void)dk;
  (void)dv, (void)dalpha, (void)workspace;
  return asp_dense_prepare(ctx, pr);
}

#endif
