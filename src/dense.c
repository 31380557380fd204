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
typedef struct asp_dense_layout {
  size_t rows, p_elems, q_elems, kv_elems, o_elems;
  size_t saved_p, saved_vis, saved_bytes;
  size_t ws_q, ws_k, ws_v, ws_o, ws_alpha, ws_bytes_fwd;
  size_t ws_dp, ws_dq, ws_dk, ws_dv, ws_drow, ws_bytes_bwd;
} asp_dense_layout;

static void asp_dense_layout_of(const adasplash_context *ctx, const asp_attn_problem *pr,
                                asp_dense_layout *s) {
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

void asp_dense_sizes(const adasplash_context *ctx, const asp_attn_problem *pr,
                     asp_state_sizes *sizes) {
  asp_dense_layout s;
  asp_dense_layout_of(ctx, pr, &s);
  sizes->saved = s.saved_bytes;
  sizes->workspace = s.ws_bytes_bwd;
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

/* The views of one call: P and the visible counts in saved; fp32 copies of q, k, v and out (dO in
 * the backward) and per-row alpha in the workspace, then the backward's dP, dQ, dK, dV, d(alpha).
 */
enum {
  DV_P = 0,
  DV_VIS,
  DV_Q,
  DV_K,
  DV_V,
  DV_O,
  DV_ALPHA,
  DV_DP,
  DV_DQ,
  DV_DK,
  DV_DV,
  DV_DROW,
  DV_COUNT
};

typedef struct asp_dense_ctx {
  adasplash_context *ctx;
  const asp_attn_problem *pr;
  asp_chain *chain;
  asp_plan util;
  asp_geom g;
  asp_dense_layout s;
  asp_scratch saved, ws;
  cl_mem view[DV_COUNT];
  size_t bh;                     /* batch * q_heads */
  size_t *off_a, *off_b, *off_c; /* offset arrays, bh entries */
} asp_dense_ctx;

/* pack_f32 copies a tensor of layout l into contiguous fp32 [B, heads, len, D]; unpack_f32 copies
 * it back. */
static adasplash_status asp_dense_convert(asp_dense_ctx *dc, int unpack, cl_mem src,
                                          const asp_layout *l, int heads, int len, cl_mem dst) {
  cl_int batch = dc->pr->d.batch, h = heads, n = len, hd = dc->pr->d.head_dim;
  cl_float factor = 1.0f;
  size_t total = (size_t)batch * heads * len * hd;
  size_t local[1] = {64}, global[1] = {(total + 63) / 64 * 64};
  asp_arg args[] = {ASP_ARG(src), ASP_ARG(*l), ASP_ARG(batch),  ASP_ARG(h),
                    ASP_ARG(n),   ASP_ARG(hd), ASP_ARG(factor), ASP_ARG(dst)};
  if (!unpack) args[6] = args[7]; /* pack_f32 has no factor */
  return asp_launch(dc->chain, dc->util.program, unpack ? "unpack_f32" : "pack_f32", args,
                    unpack ? 8 : 7, 1, global, local);
}

/* What a dense call starts with: the saved state (a temporary one in an inference forward) and the
 * workspace, the utility program, the views, the GEMM offset arrays, and q, k, v packed to fp32. */
static adasplash_status asp_dense_begin(adasplash_context *ctx, const asp_attn_problem *pr,
                                        asp_chain *chain, const char *fn, int backward, cl_mem q,
                                        cl_mem k, cl_mem v, cl_mem saved, cl_mem workspace,
                                        asp_dense_ctx *dc) {
  memset(dc, 0, sizeof *dc);
  dc->ctx = ctx;
  dc->pr = pr;
  dc->chain = chain;
  asp_dense_layout_of(ctx, pr, &dc->s);
  const asp_dense_layout *s = &dc->s;
  adasplash_status st =
      asp_scratch_get(ctx, fn, ASP_SCRATCH_SAVED, saved, s->saved_bytes, &dc->saved);
  if (st == ADASPLASH_SUCCESS)
    st = asp_scratch_get(ctx, fn, ASP_SCRATCH_WORKSPACE, workspace,
                         backward ? s->ws_bytes_bwd : s->ws_bytes_fwd, &dc->ws);
  if (st == ADASPLASH_SUCCESS) st = asp_util_plan(ctx, pr->d.dtype, 0, &dc->util);
  if (st == ADASPLASH_SUCCESS) st = asp_context_on_release(ctx, asp_dense_release);
  if (st != ADASPLASH_SUCCESS) return st;
  dc->g = asp_attn_geom(pr, 64, 1);
  dc->bh = (size_t)pr->d.batch * pr->d.q_heads;
  dc->off_a = (size_t *)malloc(dc->bh * sizeof(size_t));
  dc->off_b = (size_t *)malloc(dc->bh * sizeof(size_t));
  dc->off_c = (size_t *)malloc(dc->bh * sizeof(size_t));
  if (!dc->off_a || !dc->off_b || !dc->off_c)
    return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating GEMM offsets");
  const size_t e = backward ? 4 : 0; /* element bytes of the backward's views */
  const cl_mem sv = dc->saved.mem, ws = dc->ws.mem;
  const asp_section sections[DV_COUNT] = {
      {sv, s->saved_p, s->p_elems * 4}, {sv, s->saved_vis, s->rows * 4},
      {ws, s->ws_q, s->q_elems * 4},    {ws, s->ws_k, s->kv_elems * 4},
      {ws, s->ws_v, s->kv_elems * 4},   {ws, s->ws_o, s->o_elems * 4},
      {ws, s->ws_alpha, s->rows * 4},   {ws, s->ws_dp, s->p_elems * e},
      {ws, s->ws_dq, s->q_elems * e},   {ws, s->ws_dk, s->kv_elems * e},
      {ws, s->ws_dv, s->kv_elems * e},  {ws, s->ws_drow, s->rows * e}};
  st = asp_views_make(ctx, sections, DV_COUNT, dc->view);
  const adasplash_attention_desc *d = &pr->d;
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(dc, 0, q, &pr->q, d->q_heads, d->q_len, dc->view[DV_Q]);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(dc, 0, k, &pr->k, d->kv_heads, d->kv_len, dc->view[DV_K]);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(dc, 0, v, &pr->v, d->kv_heads, d->kv_len, dc->view[DV_V]);
  return st;
}

static void asp_dense_end(asp_dense_ctx *dc) {
  asp_views_release(dc->view, DV_COUNT);
  asp_scratch_release(&dc->saved);
  asp_scratch_release(&dc->ws);
  free(dc->off_a);
  free(dc->off_b);
  free(dc->off_c);
}

/* Per row: the visible key count (causal mask, valid lengths) and alpha of the row's head. */
static adasplash_status asp_dense_row_params(asp_dense_ctx *dc) {
  const adasplash_attention_desc *d = &dc->pr->d;
  cl_mem alpha_heads = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;
  cl_int has_alpha = d->alpha_buf != NULL;
  size_t local[1] = {64}, global[1] = {(dc->s.rows + 63) / 64 * 64};
  asp_arg args[] = {ASP_ARG(dc->g),
                    ASP_ARG(q_lens),
                    ASP_ARG(kv_lens),
                    ASP_ARG(alpha_heads),
                    ASP_ARG(has_alpha),
                    ASP_ARG(dc->view[DV_VIS]),
                    ASP_ARG(dc->view[DV_ALPHA])};
  return asp_launch(dc->chain, dc->util.program, "row_params", args, 7, 1, global, local);
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

/* C = alpha A op(B) for every (batch, q head): A (Lq x k) and C (Lq x n) of the q head, B (n x k
 * transposed when tb, else k x n) of its kv head. */
static adasplash_status asp_dense_gemm_heads(asp_dense_ctx *dc, int tb, size_t n, size_t k,
                                             float alpha, cl_mem a, cl_mem b, cl_mem c) {
  const size_t Lq = (size_t)dc->pr->d.q_len, Lk = (size_t)dc->pr->d.kv_len;
  const size_t D = (size_t)dc->pr->d.head_dim;
  asp_offsets_q(dc, dc->off_a, Lq * k);
  asp_offsets_kv(dc, dc->off_b, Lk * D);
  asp_offsets_q(dc, dc->off_c, Lq * n);
  return asp_gemm_batched(dc->chain, 0, tb, Lq, n, k, alpha, a, dc->off_a, k, b, dc->off_b,
                          tb ? k : n, 0.0f, c, dc->off_c, n, dc->bh);
}

/* The row operator's job on P: rows of kv_len scores with their visible counts, the row's alpha. */
static asp_rows_job asp_dense_rows_job(const asp_dense_ctx *dc) {
  const asp_attn_problem *pr = dc->pr;
  asp_rows_job job;
  memset(&job, 0, sizeof job);
  job.dtype = ADASPLASH_F32;
  job.rows = (size_t)pr->d.batch * pr->d.q_heads * pr->d.q_len;
  job.cols = (size_t)pr->d.kv_len;
  job.row_stride = job.cols;
  job.alpha = pr->d.alpha;
  job.alpha_buf = pr->d.alpha_buf ? dc->view[DV_ALPHA] : NULL;
  job.valid_cols = dc->view[DV_VIS];
  job.tolerance = pr->d.tolerance < 1e-6f ? pr->d.tolerance : 1e-6f;
  job.max_iter = pr->d.max_iter > 32 ? pr->d.max_iter : 32;
  job.use_hist = 1;
  return job;
}

adasplash_status asp_dense_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                   asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                   cl_mem saved, cl_mem workspace) {
  asp_dense_ctx dc;
  adasplash_status st = asp_dense_begin(ctx, pr, chain, "adasplash_attention_forward", 0, q, k, v,
                                        saved, workspace, &dc);
  const adasplash_attention_desc *d = &pr->d;
  const size_t D = (size_t)d->head_dim, Lk = (size_t)d->kv_len;
  cl_mem *V = dc.view;
  if (st == ADASPLASH_SUCCESS) st = asp_dense_row_params(&dc);
  /* S = scale Q K^T. */
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_gemm_heads(&dc, 1, Lk, D, d->scale, V[DV_Q], V[DV_K], V[DV_P]);
  if (st == ADASPLASH_SUCCESS) {
    asp_rows_job job = asp_dense_rows_job(&dc);
    st = asp_rows_forward(ctx, &job, chain, V[DV_P], V[DV_P], NULL);
  }
  /* O = P V. */
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_gemm_heads(&dc, 0, D, Lk, 1.0f, V[DV_P], V[DV_V], V[DV_O]);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(&dc, 1, V[DV_O], &pr->o, d->q_heads, d->q_len, out);
  asp_dense_end(&dc);
  return st;
}

adasplash_status asp_dense_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                    asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                    cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
                                    cl_mem dalpha, cl_mem workspace) {
  (void)out;
  asp_dense_ctx dc;
  adasplash_status st = asp_dense_begin(ctx, pr, chain, "adasplash_attention_backward", 1, q, k, v,
                                        saved, workspace, &dc);
  const adasplash_attention_desc *d = &pr->d;
  const size_t D = (size_t)d->head_dim, Lq = (size_t)d->q_len, Lk = (size_t)d->kv_len;
  cl_mem *V = dc.view;
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(&dc, 0, dout, &pr->o, d->q_heads, d->q_len, V[DV_O]);
  /* Recomputes the visible counts too (identical to the saved ones). */
  if (st == ADASPLASH_SUCCESS && d->alpha_buf) st = asp_dense_row_params(&dc);
  /* dP = dO V^T. */
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_gemm_heads(&dc, 1, Lk, D, 1.0f, V[DV_O], V[DV_V], V[DV_DP]);
  if (st == ADASPLASH_SUCCESS) {
    asp_rows_job job = asp_dense_rows_job(&dc);
    st = asp_rows_backward(ctx, &job, chain, V[DV_P], V[DV_DP], V[DV_DP],
                           dalpha ? V[DV_DROW] : NULL);
  }
  /* dQ = scale dS K. */
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_gemm_heads(&dc, 0, D, Lk, d->scale, V[DV_DP], V[DV_K], V[DV_DQ]);
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
    st = asp_gemm_batched(chain, 1, 0, Lk, D, Lq, d->scale, V[DV_DP], dc.off_a, Lk, V[DV_Q],
                          dc.off_b, D, beta, V[DV_DK], dc.off_c, D, nkv);
    if (st == ADASPLASH_SUCCESS)
      st = asp_gemm_batched(chain, 1, 0, Lk, D, Lq, 1.0f, V[DV_P], dc.off_a, Lk, V[DV_O], dc.off_b,
                            D, beta, V[DV_DV], dc.off_c, D, nkv);
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(&dc, 1, V[DV_DQ], &pr->q, d->q_heads, d->q_len, dq);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(&dc, 1, V[DV_DK], &pr->k, d->kv_heads, d->kv_len, dk);
  if (st == ADASPLASH_SUCCESS)
    st = asp_dense_convert(&dc, 1, V[DV_DV], &pr->v, d->kv_heads, d->kv_len, dv);
  if (st == ADASPLASH_SUCCESS && dalpha) {
    size_t local[1] = {1}, global[1] = {(size_t)d->q_heads};
    asp_arg args[] = {ASP_ARG(dc.g), ASP_ARG(V[DV_DROW]), ASP_ARG(dalpha)};
    st = asp_launch(chain, dc.util.program, "sum_per_head", args, 3, 1, global, local);
  }
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
