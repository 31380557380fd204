/*
 * attention.c - fused alpha-entmax attention on the host: the saved/workspace layouts, prepare,
 * the forward (threshold pass + output pass), the backward (preprocess, dQ, dK/dV, d(alpha)),
 * statistics, and the dispatch of the public calls to the baselines (softmax flash, dense).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_common.h"
#include "attention_internal.h"
#include "workspace.h"

#define ASP_SAVED_MAGIC 0x41535356u /* "ASSV" */

/* ---- buffer layouts ----------------------------------------------------------------------------
 */

void asp_attn_layout(const adasplash_context *ctx, const asp_attn_problem *pr, const asp_plan *plan,
                     asp_attn_buffers *lay) {
  memset(lay, 0, sizeof *lay);
  const adasplash_attention_desc *d = &pr->d;
  const asp_geom g = asp_attn_geom(pr, plan->attn.tile, plan->attn.nseg);
  const size_t a = asp_sub_buffer_align(ctx);
  const size_t rows = (size_t)d->batch * d->q_heads * d->q_len;
  const size_t bh = (size_t)d->batch * d->q_heads;
  size_t sizes[ASP_SEC_COUNT] = {0};
  sizes[ASP_SEC_HEADER] = 64;
  /* Per row the max m of the scaled scores and tau - m (cl/abi.h). */
  sizes[ASP_SEC_ROWSTATE] = rows * ASP_ROWSTATE_COUNT * 4;
  sizes[ASP_SEC_ROWSTATS] = rows * ASP_ROWSTAT_COUNT * 4;
  sizes[ASP_SEC_BITMAP] = bh * (size_t)g.nqb * (size_t)g.wk * 4;
  sizes[ASP_SEC_BITMAP_T] = bh * (size_t)g.nkb * (size_t)g.wq * 4;
  sizes[ASP_SEC_BLOCKSTATS] = bh * (size_t)g.nqb * ASP_STAT_COUNT * 4;
  sizes[ASP_SEC_OUT2] = rows * (size_t)d->head_dim * 4;
  sizes[ASP_SEC_ZALPHA] =
      (d->flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD) ? rows * (size_t)d->head_dim * 4 : 0;
  sizes[ASP_SEC_TILEMAX] = bh * (size_t)g.nqb * (size_t)g.nseg * (size_t)g.nkb * 4;
  sizes[ASP_SEC_DELTA] = rows * ASP_QROW_WORDS * 4;
  sizes[ASP_SEC_DROW] = rows * 4;
  sizes[ASP_SEC_DQACC] = plan->attn.bwd_fused ? rows * (size_t)d->head_dim * 4 : 0;
  /* The dense sweep kernel's results for the threshold pass (plans with attn_tau_dense). */
  const int dense = plan->attn.dense_rows > 0;
  sizes[ASP_SEC_DENSE_ROWS] = dense ? rows * ASP_DENSE_ROW_WORDS * 4 : 0;
  sizes[ASP_SEC_DENSE_HIST] =
      dense ? rows * (size_t)ASP_DENSE_HIST_WORDS((size_t)plan->attn.bins) * 4 : 0;
  /* The row solvers attn_tau leaves to the fused output pass (plans with the fused passes). */
  sizes[ASP_SEC_ROWSOLVER] = plan->attn.fuse ? rows * ASP_ROWSOLVER_WORDS * 4 : 0;
  /* Saved: everything the backward reads. Workspace: the rest (and, for inference, the state). */
  static const int saved_secs[] = {ASP_SEC_HEADER, ASP_SEC_ROWSTATE, ASP_SEC_ROWSTATS,
                                   ASP_SEC_BITMAP, ASP_SEC_BITMAP_T, ASP_SEC_BLOCKSTATS,
                                   ASP_SEC_OUT2,   ASP_SEC_ZALPHA};
  size_t off = 0;
  for (size_t i = 0; i < sizeof saved_secs / sizeof saved_secs[0]; ++i) {
    int s = saved_secs[i];
    lay->offset[s] = off;
    lay->size[s] = sizes[s];
    lay->in_saved[s] = 1;
    off = asp_align_up(off + sizes[s], a);
  }
  lay->saved_bytes = off;
  /* Workspace, forward: tilemax and the dense sweep's results (+ the state when there is no saved
   * buffer). Backward: delta, drow (and the fused backward's dQ sums). The two uses never overlap
   * in time within one call, so they share offsets from 0. */
  size_t w = 0;
  static const int fwd_ws_secs[] = {ASP_SEC_TILEMAX, ASP_SEC_DENSE_ROWS, ASP_SEC_DENSE_HIST,
                                    ASP_SEC_ROWSOLVER};
  for (size_t i = 0; i < sizeof fwd_ws_secs / sizeof fwd_ws_secs[0]; ++i) {
    lay->ws_offset[fwd_ws_secs[i]] = w;
    w = asp_align_up(w + sizes[fwd_ws_secs[i]], a);
  }
  size_t inference_state = w;
  for (int s = ASP_SEC_ROWSTATE; s <= ASP_SEC_BLOCKSTATS; ++s) {
    lay->ws_offset[s] = inference_state;
    inference_state = asp_align_up(inference_state + sizes[s], a);
  }
  lay->ws_offset[ASP_SEC_DELTA] = 0;
  lay->ws_offset[ASP_SEC_DROW] = asp_align_up(sizes[ASP_SEC_DELTA], a);
  lay->ws_offset[ASP_SEC_DQACC] =
      asp_align_up(lay->ws_offset[ASP_SEC_DROW] + sizes[ASP_SEC_DROW], a);
  size_t bwd = asp_align_up(lay->ws_offset[ASP_SEC_DQACC] + sizes[ASP_SEC_DQACC], a);
  lay->ws_train_bytes = w;
  lay->ws_infer_bytes = inference_state;
  lay->ws_bwd_bytes = bwd;
  for (int s = 0; s < ASP_SEC_COUNT; ++s) lay->size[s] = sizes[s];
}

size_t asp_attn_workspace_need(const asp_attn_buffers *lay) {
  size_t m = lay->ws_infer_bytes;
  if (lay->ws_bwd_bytes > m) m = lay->ws_bwd_bytes;
  return m;
}

/* A fingerprint of everything that shapes the saved state, so the backward can refuse a saved
 * buffer written for another problem of the same size. */
uint32_t asp_attn_fingerprint(const asp_attn_problem *pr, int tile) {
  const adasplash_attention_desc *d = &pr->d;
  uint32_t v[] = {(uint32_t)d->batch,    (uint32_t)d->q_heads,
                  (uint32_t)d->kv_heads, (uint32_t)d->q_len,
                  (uint32_t)d->kv_len,   (uint32_t)d->head_dim,
                  (uint32_t)d->causal,   (uint32_t)(d->flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD),
                  (uint32_t)tile,        (uint32_t)d->dtype};
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; ++i) {
    h ^= v[i];
    h *= 16777619u;
  }
  return h;
}

/* ---- baseline dispatch ----------------------------------------------------------------------- */

static int asp_is_softmax(const asp_attn_problem *pr) {
  return pr->d.algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH;
}

static adasplash_status asp_baseline_prepare(adasplash_context *ctx, const asp_attn_problem *pr) {
  return asp_is_softmax(pr) ? asp_softmax_prepare(ctx, pr) : asp_dense_prepare(ctx, pr);
}

static adasplash_status asp_baseline_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                             asp_chain *chain, cl_mem q, cl_mem k, cl_mem v,
                                             cl_mem out, cl_mem saved, cl_mem workspace) {
  return asp_is_softmax(pr) ? asp_softmax_forward(ctx, pr, chain, q, k, v, out, saved, workspace)
                            : asp_dense_forward(ctx, pr, chain, q, k, v, out, saved, workspace);
}

static adasplash_status asp_baseline_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                              asp_chain *chain, cl_mem q, cl_mem k, cl_mem v,
                                              cl_mem out, cl_mem dout, cl_mem saved, cl_mem dq,
                                              cl_mem dk, cl_mem dv, cl_mem dalpha,
                                              cl_mem workspace) {
  return asp_is_softmax(pr) ? asp_softmax_backward(ctx, pr, chain, q, k, v, out, dout, saved, dq,
                                                   dk, dv, dalpha, workspace)
                            : asp_dense_backward(ctx, pr, chain, q, k, v, out, dout, saved, dq, dk,
                                                 dv, dalpha, workspace);
}

/* ---- sizes, prepare ---------------------------------------------------------------------------
 */

/* The saved and workspace bytes of pr's algorithm. The fused algorithm's layout follows its plan's
 * tile: with build, the plan is prepared (compiled) when it is not yet, so the sizes are known
 * before adasplash_attention_prepare; without, an unprepared plan fails with NOT_PREPARED. */
static adasplash_status asp_attn_sizes(adasplash_context *ctx, const asp_attn_problem *pr,
                                       int build, asp_state_sizes *sizes) {
  if (pr->d.algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH) {
    asp_softmax_sizes(ctx, pr, sizes);
    return ADASPLASH_SUCCESS;
  }
  if (pr->d.algorithm == ADASPLASH_ATTN_ENTMAX_DENSE) {
    asp_dense_sizes(ctx, pr, sizes);
    return ADASPLASH_SUCCESS;
  }
  asp_plan plan;
  adasplash_status st = build ? asp_attn_prepare_plan(ctx, ASP_PROGRAM_ATTN_FORWARD, pr, &plan)
                              : asp_attn_find_plan(ctx, ASP_PROGRAM_ATTN_FORWARD, pr, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_attn_buffers lay;
  asp_attn_layout(ctx, pr, &plan, &lay);
  sizes->saved = lay.saved_bytes;
  sizes->workspace = asp_attn_workspace_need(&lay);
  /* An inference forward of a decode shape may take the decode path: room for either. */
  if (asp_decode_wanted(ctx, pr)) {
    const size_t decode = asp_decode_workspace_bytes(ctx, pr);
    if (decode > sizes->workspace) sizes->workspace = decode;
  }
  return ADASPLASH_SUCCESS;
}

/* adasplash_attention_saved_size (workspace 0) and _workspace_size (1). */
static adasplash_status asp_attn_size_query(const adasplash_context *cctx,
                                            const adasplash_attention_desc *desc, const char *fn,
                                            int workspace, size_t *bytes) {
  asp_attn_problem pr;
  adasplash_status st = asp_attn_check_desc(cctx, desc, fn, &pr);
  if (st != ADASPLASH_SUCCESS) return st;
  if (!bytes) return asp_fail(cctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: bytes is NULL", fn);
  asp_state_sizes sizes;
  st = asp_attn_sizes((adasplash_context *)cctx, &pr, 1, &sizes);
  if (st == ADASPLASH_SUCCESS) *bytes = workspace ? sizes.workspace : sizes.saved;
  return st;
}

adasplash_status adasplash_attention_saved_size(const adasplash_context *ctx,
                                                const adasplash_attention_desc *desc,
                                                size_t *bytes) {
  return asp_attn_size_query(ctx, desc, "adasplash_attention_saved_size", 0, bytes);
}

adasplash_status adasplash_attention_workspace_size(const adasplash_context *ctx,
                                                    const adasplash_attention_desc *desc,
                                                    size_t *bytes) {
  return asp_attn_size_query(ctx, desc, "adasplash_attention_workspace_size", 1, bytes);
}

adasplash_status adasplash_attention_prepare(adasplash_context *ctx,
                                             const adasplash_attention_desc *desc) {
  asp_attn_problem pr;
  adasplash_status st = asp_attn_check_desc(ctx, desc, "adasplash_attention_prepare", &pr);
  if (st != ADASPLASH_SUCCESS) return st;
  if (pr.d.algorithm != ADASPLASH_ATTN_ENTMAX) return asp_baseline_prepare(ctx, &pr);
  asp_attn_prebuild(ctx, &pr); /* nv_build_threads: the programs compiled at once */
  asp_plan plan;
  st = asp_attn_prepare_plan(ctx, ASP_PROGRAM_ATTN_FORWARD, &pr, &plan);
  if (st == ADASPLASH_SUCCESS && (pr.d.flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD))
    st = asp_attn_prepare_plan(ctx, ASP_PROGRAM_ATTN_ALPHA, &pr, &plan);
  if (st == ADASPLASH_SUCCESS && !(pr.d.flags & ADASPLASH_ATTN_FORWARD_ONLY))
    st = asp_attn_prepare_plan(ctx, ASP_PROGRAM_ATTN_BACKWARD, &pr, &plan);
  if (st == ADASPLASH_SUCCESS && asp_decode_wanted(ctx, &pr))
    st = asp_decode_prepare(ctx, pr.d.dtype, pr.d.head_dim);
  return st;
}

/* ---- the fused forward ------------------------------------------------------------------------
 */

/* The sections secs of one call as views: in saved where the layout keeps them there (and the
 * call has a saved buffer), else in the workspace; use holds the sizes this call needs (0: none).
 */
static adasplash_status asp_attn_views(const adasplash_context *ctx, const asp_attn_buffers *use,
                                       cl_mem saved, cl_mem ws, const int *secs, size_t nsecs,
                                       cl_mem views[ASP_SEC_COUNT]) {
  asp_section sections[ASP_SEC_COUNT];
  memset(sections, 0, sizeof sections);
  for (size_t i = 0; i < nsecs; ++i) {
    const int sec = secs[i], from_saved = saved && use->in_saved[sec];
    sections[sec].buffer = from_saved ? saved : ws;
    sections[sec].offset = from_saved ? use->offset[sec] : use->ws_offset[sec];
    sections[sec].size = use->size[sec];
  }
  return asp_views_make(ctx, sections, ASP_SEC_COUNT, views);
}

/* The threshold pass over every row block (args.retry: only the blocks to redo). */
static adasplash_status asp_launch_tau(asp_chain *chain, asp_program *program, asp_attn_args a,
                                       cl_mem q, cl_mem k, cl_mem alpha_buf, cl_mem q_lens,
                                       cl_mem kv_lens, cl_mem *S, size_t *global, size_t *local) {
  asp_arg args[] = {ASP_ARG(a),
                    ASP_ARG(q),
                    ASP_ARG(k),
                    ASP_ARG(alpha_buf),
                    ASP_ARG(q_lens),
                    ASP_ARG(kv_lens),
                    ASP_ARG(S[ASP_SEC_DENSE_ROWS]),
                    ASP_ARG(S[ASP_SEC_DENSE_HIST]),
                    ASP_ARG(S[ASP_SEC_ROWSTATE]),
                    ASP_ARG(S[ASP_SEC_BITMAP]),
                    ASP_ARG(S[ASP_SEC_BITMAP_T]),
                    ASP_ARG(S[ASP_SEC_TILEMAX]),
                    ASP_ARG(S[ASP_SEC_BLOCKSTATS]),
                    ASP_ARG(S[ASP_SEC_ROWSOLVER])};
  return asp_launch(chain, program, "attn_tau", args, sizeof args / sizeof args[0], 3, global,
                    local);
}

static adasplash_status asp_entmax_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                           asp_chain *chain, cl_mem q, cl_mem k, cl_mem v,
                                           cl_mem out, cl_mem saved, cl_mem workspace) {
  asp_plan plan;
  adasplash_status st = asp_attn_find_plan(ctx, ASP_PROGRAM_ATTN_FORWARD, pr, &plan);
  /* What the output pass saves: nothing (inference), the backward's state, or with it the alpha
   * gradient's terms, whose output pass is a program of its own (attn_alpha.cl). */
  const int save = saved ? ((pr->d.flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD) ? 2 : 1) : 0;
  asp_plan alpha_plan;
  memset(&alpha_plan, 0, sizeof alpha_plan);
  if (st == ADASPLASH_SUCCESS && save == 2)
    st = asp_attn_find_plan(ctx, ASP_PROGRAM_ATTN_ALPHA, pr, &alpha_plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const int tile = plan.attn.tile, wg = plan.attn.wg;
  asp_attn_buffers lay;
  asp_attn_layout(ctx, pr, &plan, &lay);
  const char *fn = "adasplash_attention_forward";
  if (saved) {
    st = asp_scratch_check(ctx, fn, ASP_SCRATCH_SAVED, saved, lay.saved_bytes);
    if (st != ADASPLASH_SUCCESS) return st;
  }
  asp_scratch ws;
  st = asp_scratch_get(ctx, fn, ASP_SCRATCH_WORKSPACE, workspace,
                       saved ? lay.ws_train_bytes : lay.ws_infer_bytes, &ws);
  cl_mem S[ASP_SEC_COUNT] = {NULL};
  static const int secs[] = {ASP_SEC_ROWSTATE,   ASP_SEC_ROWSTATS,   ASP_SEC_BITMAP,
                             ASP_SEC_BITMAP_T,   ASP_SEC_BLOCKSTATS, ASP_SEC_OUT2,
                             ASP_SEC_ZALPHA,     ASP_SEC_TILEMAX,    ASP_SEC_DENSE_ROWS,
                             ASP_SEC_DENSE_HIST, ASP_SEC_ROWSOLVER};
  asp_attn_buffers use = lay;
  if (!saved) {
    /* Inference: the state lives in the workspace; nothing for the backward is written. */
    use.size[ASP_SEC_ROWSTATS] = use.size[ASP_SEC_OUT2] = use.size[ASP_SEC_ZALPHA] = 0;
    use.size[ASP_SEC_BITMAP_T] = 0;
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_attn_views(ctx, &use, saved, ws.mem, secs, sizeof secs / sizeof secs[0], S);
  if (st != ADASPLASH_SUCCESS) {
    asp_scratch_release(&ws);
    return st;
  }
  const adasplash_attention_desc *d = &pr->d;
  asp_attn_args a = asp_attn_make_args(pr, &plan);
  const asp_geom g = a.g;
  a.use_hist = ctx->tuning.attn_hist;
  a.write_t = saved != NULL; /* the transpose only serves the backward */
  /* Quantisation of the in-bin moments: count * qscale < 2^32 for any bin. */
  int bits = 0;
  while (bits < 31 && (1L << bits) <= d->kv_len) ++bits;
  const int qbits = 31 - bits > 16 ? 16 : (31 - bits < 0 ? 0 : 31 - bits);
  a.qscale = (cl_float)(1u << qbits);
  /* The refinement inside the output pass: not with the alpha gradient (its p ln p terms have no
   * moments). Blocks that cannot be finished there are redone by the retry launches below. */
  a.fuse = plan.attn.fuse && save < 2;
  cl_mem alpha_buf = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;

  if (saved) {
    cl_uint header[16] = {ASP_SAVED_MAGIC, asp_attn_fingerprint(pr, tile)};
    st = asp_chain_fill(chain, saved, header, sizeof header, lay.offset[ASP_SEC_HEADER], 64);
    cl_uint zero = 0;
    if (st == ADASPLASH_SUCCESS)
      st = asp_chain_fill(chain, S[ASP_SEC_BITMAP_T], &zero, 4, 0, lay.size[ASP_SEC_BITMAP_T]);
  }
  if (st == ADASPLASH_SUCCESS && plan.attn.dense_rows > 0) {
    /* The dense sweep in its own kernel, TQ rows per work-group (NVIDIA path). */
    asp_plan dense;
    memset(&dense, 0, sizeof dense);
    st = asp_attn_find_plan(ctx, ASP_PROGRAM_ATTN_DENSE, pr, &dense);
    const size_t tq = st == ADASPLASH_SUCCESS ? (size_t)dense.attn.dense_rows : 1;
    const size_t dwg = (size_t)dense.attn.wg;
    size_t dlocal[3] = {dwg, 1, 1};
    size_t dglobal[3] = {(((size_t)g.q_len + tq - 1) / tq) * dwg, (size_t)g.q_heads,
                         (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(q),
                      ASP_ARG(k),
                      ASP_ARG(alpha_buf),
                      ASP_ARG(q_lens),
                      ASP_ARG(kv_lens),
                      ASP_ARG(S[ASP_SEC_DENSE_ROWS]),
                      ASP_ARG(S[ASP_SEC_DENSE_HIST]),
                      ASP_ARG(S[ASP_SEC_TILEMAX])};
    if (st == ADASPLASH_SUCCESS)
      st = asp_launch(chain, dense.program, "attn_tau_dense", args, sizeof args / sizeof args[0], 3,
                      dglobal, dlocal);
  }
  size_t local[3] = {(size_t)wg, 1, 1};
  size_t global[3] = {(size_t)g.nqb * (size_t)wg, (size_t)g.q_heads, (size_t)g.batch};
  if (st == ADASPLASH_SUCCESS)
    st = asp_launch_tau(chain, plan.program, a, q, k, alpha_buf, q_lens, kv_lens, S, global, local);
  if (st == ADASPLASH_SUCCESS && a.fuse) {
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(q),
                      ASP_ARG(k),
                      ASP_ARG(v),
                      ASP_ARG(out),
                      ASP_ARG(alpha_buf),
                      ASP_ARG(q_lens),
                      ASP_ARG(kv_lens),
                      ASP_ARG(S[ASP_SEC_ROWSOLVER]),
                      ASP_ARG(S[ASP_SEC_TILEMAX]),
                      ASP_ARG(S[ASP_SEC_ROWSTATE]),
                      ASP_ARG(S[ASP_SEC_BITMAP]),
                      ASP_ARG(S[ASP_SEC_BITMAP_T]),
                      ASP_ARG(S[ASP_SEC_OUT2]),
                      ASP_ARG(S[ASP_SEC_ROWSTATS]),
                      ASP_ARG(S[ASP_SEC_BLOCKSTATS])};
    st = asp_launch(chain, plan.program, save ? "attn_forward_grad_fused" : "attn_forward_fused",
                    args, sizeof args / sizeof args[0], 3, global, local);
    /* The retry: attn_tau and the plain output pass below, for the blocks that fell back. */
    a.retry = 1;
    if (st == ADASPLASH_SUCCESS)
      st = asp_launch_tau(chain, plan.program, a, q, k, alpha_buf, q_lens, kv_lens, S, global,
                          local);
  }
  if (st == ADASPLASH_SUCCESS) {
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(q),
                      ASP_ARG(k),
                      ASP_ARG(v),
                      ASP_ARG(out),
                      ASP_ARG(alpha_buf),
                      ASP_ARG(q_lens),
                      ASP_ARG(kv_lens),
                      ASP_ARG(S[ASP_SEC_ROWSTATE]),
                      ASP_ARG(S[ASP_SEC_BITMAP]),
                      ASP_ARG(S[ASP_SEC_OUT2]),
                      ASP_ARG(S[ASP_SEC_ZALPHA]),
                      ASP_ARG(S[ASP_SEC_ROWSTATS]),
                      ASP_ARG(S[ASP_SEC_BLOCKSTATS])};
    static const char *const kernels[] = {"attn_forward", "attn_forward_grad",
                                          "attn_forward_alpha"};
    st = asp_launch(chain, save == 2 ? alpha_plan.program : plan.program, kernels[save], args,
                    sizeof args / sizeof args[0], 3, global, local);
  }
  asp_views_release(S, ASP_SEC_COUNT);
  asp_scratch_release(&ws);
  return st;
}

/* ---- the fused backward -----------------------------------------------------------------------
 */

static adasplash_status asp_entmax_backward(adasplash_context *ctx, const asp_attn_problem *pr,
                                            asp_chain *chain, cl_mem q, cl_mem k, cl_mem v,
                                            cl_mem out, cl_mem dout, cl_mem saved, cl_mem dq,
                                            cl_mem dk, cl_mem dv, cl_mem dalpha, cl_mem workspace) {
  asp_plan plan;
  adasplash_status st = asp_attn_find_plan(ctx, ASP_PROGRAM_ATTN_BACKWARD, pr, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const int wg = plan.attn.wg;
  asp_attn_buffers lay;
  asp_attn_layout(ctx, pr, &plan, &lay);
  const char *fn = "adasplash_attention_backward";
  (void)out; /* the fused backward needs only the saved state (out is validated by the caller) */
  st = asp_scratch_check(ctx, fn, ASP_SCRATCH_SAVED, saved, lay.saved_bytes);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_scratch ws;
  st = asp_scratch_get(ctx, fn, ASP_SCRATCH_WORKSPACE, workspace, lay.ws_bwd_bytes, &ws);
  cl_mem S[ASP_SEC_COUNT] = {NULL};
  static const int secs[] = {ASP_SEC_ROWSTATE, ASP_SEC_ROWSTATS, ASP_SEC_BITMAP,
                             ASP_SEC_BITMAP_T, ASP_SEC_OUT2,     ASP_SEC_ZALPHA,
                             ASP_SEC_DELTA,    ASP_SEC_DROW,     ASP_SEC_DQACC};
  asp_attn_buffers use = lay;
  if (!dalpha) use.size[ASP_SEC_DROW] = 0;
  if (st == ADASPLASH_SUCCESS)
    st = asp_attn_views(ctx, &use, saved, ws.mem, secs, sizeof secs / sizeof secs[0], S);
  if (st != ADASPLASH_SUCCESS) {
    asp_scratch_release(&ws);
    return st;
  }
  const adasplash_attention_desc *d = &pr->d;
  const asp_attn_args a = asp_attn_make_args(pr, &plan);
  const asp_geom g = a.g;
  cl_int want_dalpha = dalpha != NULL;
  cl_mem alpha_buf = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;
  cl_mem drow = S[ASP_SEC_DROW];

  const size_t rows = (size_t)g.batch * g.q_heads * g.q_len;
  size_t pre_local[1] = {64};
  size_t pre_global[1] = {(rows + 63) / 64 * 64};
  asp_arg pre[] = {ASP_ARG(a),
                   ASP_ARG(dout),
                   ASP_ARG(S[ASP_SEC_OUT2]),
                   ASP_ARG(S[ASP_SEC_ZALPHA]),
                   ASP_ARG(alpha_buf),
                   ASP_ARG(S[ASP_SEC_ROWSTATE]),
                   ASP_ARG(S[ASP_SEC_ROWSTATS]),
                   ASP_ARG(want_dalpha),
                   ASP_ARG(S[ASP_SEC_DELTA]),
                   ASP_ARG(drow)};
  st = asp_launch(chain, plan.program, "attn_bwd_pre", pre, sizeof pre / sizeof pre[0], 1,
                  pre_global, pre_local);
  size_t local[3] = {(size_t)wg, 1, 1};
  const int fused = plan.attn.bwd_fused;
  if (st == ADASPLASH_SUCCESS && !fused) {
    size_t global[3] = {(size_t)g.nqb * (size_t)wg, (size_t)g.q_heads, (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(q),
                      ASP_ARG(k),
                      ASP_ARG(v),
                      ASP_ARG(dout),
                      ASP_ARG(dq),
                      ASP_ARG(alpha_buf),
                      ASP_ARG(q_lens),
                      ASP_ARG(kv_lens),
                      ASP_ARG(S[ASP_SEC_DELTA]),
                      ASP_ARG(S[ASP_SEC_BITMAP])};
    st = asp_launch(chain, plan.program, "attn_bwd_dq", args, sizeof args / sizeof args[0], 3,
                    global, local);
  }
  cl_mem dq_acc = S[ASP_SEC_DQACC];
  if (st == ADASPLASH_SUCCESS && fused) {
    const cl_float zero = 0.0f;
    st = asp_chain_fill(chain, dq_acc, &zero, sizeof zero, 0, use.size[ASP_SEC_DQACC]);
  }
  if (st == ADASPLASH_SUCCESS) {
    size_t global[3] = {(size_t)g.nkb * (size_t)wg, (size_t)g.kv_heads, (size_t)g.batch};
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(q),
                      ASP_ARG(k),
                      ASP_ARG(v),
                      ASP_ARG(dout),
                      ASP_ARG(dk),
                      ASP_ARG(dv),
                      ASP_ARG(alpha_buf),
                      ASP_ARG(q_lens),
                      ASP_ARG(kv_lens),
                      ASP_ARG(S[ASP_SEC_DELTA]),
                      ASP_ARG(S[ASP_SEC_BITMAP_T]),
                      ASP_ARG(dq_acc)};
    const size_t nargs = sizeof args / sizeof args[0] - (fused ? 0 : 1);
    st = asp_launch(chain, plan.program, fused ? "attn_bwd_fused" : "attn_bwd_dkdv", args, nargs, 3,
                    global, local);
  }
  if (st == ADASPLASH_SUCCESS && fused) {
    const size_t total = rows * (size_t)g.head_dim;
    size_t global[1] = {(total + (size_t)wg - 1) / (size_t)wg * (size_t)wg};
    asp_arg args[] = {ASP_ARG(a), ASP_ARG(dq_acc), ASP_ARG(S[ASP_SEC_ROWSTATE]), ASP_ARG(dq)};
    st = asp_launch(chain, plan.program, "attn_bwd_dq_store", args, sizeof args / sizeof args[0], 1,
                    global, local);
  }
  if (st == ADASPLASH_SUCCESS && dalpha) {
    size_t global[1] = {(size_t)g.q_heads * (size_t)wg};
    asp_arg args[] = {ASP_ARG(a), ASP_ARG(drow), ASP_ARG(dalpha)};
    st = asp_launch(chain, plan.program, "attn_bwd_dalpha", args, 3, 1, global, local);
  }
  asp_views_release(S, ASP_SEC_COUNT);
  asp_scratch_release(&ws);
  return st;
}

/* ---- public calls ------------------------------------------------------------------------------
 */

/* Bytes of the saved state (workspace: 1) the call will use, without compiling: the whole buffer
 * when the entmax kernels are not prepared yet (the call then fails with NOT_PREPARED anyway). */
static size_t asp_attn_state_bytes(adasplash_context *ctx, const asp_attn_problem *pr,
                                   int workspace) {
  asp_state_sizes sizes;
  if (asp_attn_sizes(ctx, pr, 0, &sizes) != ADASPLASH_SUCCESS)
    return SIZE_MAX; /* its NOT_PREPARED message is the one the call reports next */
  return workspace ? sizes.workspace : sizes.saved;
}

static asp_region asp_tensor_region(cl_mem buf, const char *name, const asp_layout *l, size_t end,
                                    size_t esize, int written) {
  asp_region r = {buf, (size_t)l->off * esize, end, name, written, 0};
  return r;
}

static asp_region asp_span_region(cl_mem buf, const char *name, size_t bytes, int written) {
  asp_region r = {buf, 0, bytes, name, written, 1};
  return r;
}

/* Outputs, saved state and workspace may not overlap another argument (asp_check_overlaps). */
static adasplash_status asp_attn_check_overlaps(adasplash_context *ctx, const asp_attn_problem *pr,
                                                const char *fn, cl_mem q, cl_mem k, cl_mem v,
                                                cl_mem out, int out_written, cl_mem dout,
                                                cl_mem saved, int saved_written, cl_mem dq,
                                                cl_mem dk, cl_mem dv, cl_mem dalpha,
                                                cl_mem workspace) {
  const adasplash_attention_desc *d = &pr->d;
  const size_t es = pr->esize;
  const asp_region r[] = {
      asp_tensor_region(q, "q", &pr->q, pr->q_bytes, es, 0),
      asp_tensor_region(k, "k", &pr->k, pr->k_bytes, es, 0),
      asp_tensor_region(v, "v", &pr->v, pr->v_bytes, es, 0),
      asp_tensor_region(out, "out", &pr->o, pr->o_bytes, es, out_written),
      asp_tensor_region(dout, "dout", &pr->o, pr->o_bytes, es, 0),
      asp_tensor_region(dq, "dq", &pr->q, pr->q_bytes, es, 1),
      asp_tensor_region(dk, "dk", &pr->k, pr->k_bytes, es, 1),
      asp_tensor_region(dv, "dv", &pr->v, pr->v_bytes, es, 1),
      asp_span_region(saved, "saved", saved ? asp_attn_state_bytes(ctx, pr, 0) : 0, saved_written),
      asp_span_region(workspace, "workspace", workspace ? asp_attn_state_bytes(ctx, pr, 1) : 0, 1),
      asp_span_region(dalpha, "dalpha", (size_t)d->q_heads * 4, 1),
      asp_span_region(d->alpha_buf, "desc->alpha_buf", (size_t)d->q_heads * 4, 0),
      asp_span_region(d->q_lens, "desc->q_lens", (size_t)d->batch * 4, 0),
      asp_span_region(d->kv_lens, "desc->kv_lens", (size_t)d->batch * 4, 0)};
  return asp_check_overlaps(ctx, fn, r, sizeof r / sizeof r[0]);
}

/* The decode path serves inference forwards (no saved buffer: the backward's state is the fused
 * forward's) of decode shapes, once prepared, with a workspace that holds its sections (a caller's
 * workspace sized by adasplash_attention_workspace_size always does). Otherwise the fused passes
 * run, as they always could. */
static int asp_decode_chosen(adasplash_context *ctx, const asp_attn_problem *pr, cl_mem saved,
                             cl_mem workspace) {
  if (saved || !asp_decode_wanted(ctx, pr) || !asp_decode_prepared(ctx, pr)) return 0;
  size_t size = 0;
  if (workspace &&
      (clGetMemObjectInfo(workspace, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS ||
       size < asp_decode_workspace_bytes(ctx, pr)))
    return 0;
  return 1;
}

adasplash_status adasplash_attention_forward(adasplash_context *ctx,
                                             const adasplash_attention_desc *desc,
                                             cl_command_queue queue, cl_mem q, cl_mem k, cl_mem v,
                                             cl_mem out, cl_mem saved, cl_mem workspace,
                                             cl_uint nwait, const cl_event *wait, cl_event *event) {
  asp_attn_problem pr;
  const char *fn = "adasplash_attention_forward";
  adasplash_status st = asp_attn_check_call(ctx, desc, fn, queue, nwait, wait, q, k, v, out, &pr);
  if (st == ADASPLASH_SUCCESS)
    st = asp_attn_check_overlaps(ctx, &pr, fn, q, k, v, out, 1, NULL, saved, 1, NULL, NULL, NULL,
                                 NULL, workspace);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, queue, nwait, wait);
  if (asp_decode_chosen(ctx, &pr, saved, workspace))
    st = asp_decode_forward(ctx, &pr, NULL, &chain, q, k, v, out, workspace, fn);
  else if (pr.d.algorithm == ADASPLASH_ATTN_ENTMAX)
    st = asp_entmax_forward(ctx, &pr, &chain, q, k, v, out, saved, workspace);
  else
    st = asp_baseline_forward(ctx, &pr, &chain, q, k, v, out, saved, workspace);
  return asp_chain_end(&chain, st, event);
}

adasplash_status adasplash_attention_backward(
    adasplash_context *ctx, const adasplash_attention_desc *desc, cl_command_queue queue, cl_mem q,
    cl_mem k, cl_mem v, cl_mem out, cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
    cl_mem dalpha, cl_mem workspace, cl_uint nwait, const cl_event *wait, cl_event *event) {
  asp_attn_problem pr;
  const char *fn = "adasplash_attention_backward";
  adasplash_status st = asp_attn_check_call(ctx, desc, fn, queue, nwait, wait, q, k, v, out, &pr);
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &pr, dout, "dout", 'o');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &pr, dq, "dq", 'q');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &pr, dk, "dk", 'k');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &pr, dv, "dv", 'v');
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, dalpha, "dalpha", (size_t)pr.d.q_heads * 4);
  if (st == ADASPLASH_SUCCESS && !saved)
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED,
                  "%s: saved is NULL (run the forward with a saved buffer)", fn);
  if (st == ADASPLASH_SUCCESS && dalpha && pr.d.algorithm != ADASPLASH_ATTN_SOFTMAX_FLASH &&
      !(pr.d.flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD))
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                  "%s: dalpha needs desc->flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD (in the forward "
                  "too)",
                  fn);
  if (st == ADASPLASH_SUCCESS && (pr.d.flags & ADASPLASH_ATTN_FORWARD_ONLY))
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                  "%s: desc->flags has ADASPLASH_ATTN_FORWARD_ONLY (an inference desc)", fn);
  if (st == ADASPLASH_SUCCESS && dalpha && pr.d.algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH)
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                  "%s: softmax has no alpha to differentiate", fn);
  if (st == ADASPLASH_SUCCESS)
    st = asp_attn_check_overlaps(ctx, &pr, fn, q, k, v, out, 0, dout, saved, 0, dq, dk, dv, dalpha,
                                 workspace);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, queue, nwait, wait);
  if (pr.d.algorithm == ADASPLASH_ATTN_ENTMAX)
    st = asp_entmax_backward(ctx, &pr, &chain, q, k, v, out, dout, saved, dq, dk, dv, dalpha,
                             workspace);
  else
    st = asp_baseline_backward(ctx, &pr, &chain, q, k, v, out, dout, saved, dq, dk, dv, dalpha,
                               workspace);
  return asp_chain_end(&chain, st, event);
}

/* Checks a saved buffer against desc for the read-back diagnostics; fills pr, tile, lay. */
static adasplash_status asp_saved_prologue(adasplash_context *ctx,
                                           const adasplash_attention_desc *desc,
                                           cl_command_queue queue, cl_mem saved, const char *fn,
                                           asp_attn_problem *pr, int *tile, asp_attn_buffers *lay) {
  adasplash_status st = asp_attn_check_desc(ctx, desc, fn, pr);
  if (st == ADASPLASH_SUCCESS) st = asp_check_queue(ctx, queue);
  if (st != ADASPLASH_SUCCESS) return st;
  if (pr->d.algorithm != ADASPLASH_ATTN_ENTMAX)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: only the fused entmax algorithm keeps this state", fn);
  asp_plan plan;
  st = asp_attn_find_plan(ctx, ASP_PROGRAM_ATTN_FORWARD, pr, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  *tile = plan.attn.tile;
  asp_attn_layout(ctx, pr, &plan, lay);
  st = asp_scratch_check(ctx, fn, ASP_SCRATCH_SAVED, saved, lay->saved_bytes);
  if (st != ADASPLASH_SUCCESS) return st;
  cl_uint header[16];
  cl_int err =
      clEnqueueReadBuffer(asp_queue_or_default(ctx, queue), saved, CL_TRUE,
                          lay->offset[ASP_SEC_HEADER], sizeof header, header, 0, NULL, NULL);
  if (err != CL_SUCCESS) return asp_fail_cl(ctx, err, "clEnqueueReadBuffer(saved header)");
  if (header[0] != ASP_SAVED_MAGIC || header[1] != asp_attn_fingerprint(pr, *tile))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED,
                    "%s: saved was not written by a forward of this descriptor", fn);
  return ADASPLASH_SUCCESS;
}

static adasplash_status asp_read_section(adasplash_context *ctx, cl_command_queue queue,
                                         cl_mem saved, const asp_attn_buffers *lay, int sec,
                                         void *dst) {
  cl_int err = clEnqueueReadBuffer(asp_queue_or_default(ctx, queue), saved, CL_TRUE,
                                   lay->offset[sec], lay->size[sec], dst, 0, NULL, NULL);
  return err == CL_SUCCESS ? ADASPLASH_SUCCESS
                           : asp_fail_cl(ctx, err, "clEnqueueReadBuffer(saved)");
}

/* Block sparsity on 64x64 tiles from the bitmap of tile x tile tiles (tile divides 64): a 64-tile
 * is visible if one of its sub-tiles is (row block qb sees key tiles [0, visible_qb)), and empty
 * if none of its visible sub-tiles is active. */
static double asp_sparsity_64(const asp_attn_problem *pr, int tile, const cl_int *bs,
                              const cl_uint *bm) {
  const asp_geom g = asp_attn_geom(pr, tile, 1);
  const int f = 64 / tile;
  const int nq64 = (g.nqb + f - 1) / f, nk64 = (g.nkb + f - 1) / f;
  unsigned long visible = 0, empty = 0;
  for (int bh = 0; bh < g.batch * g.q_heads; ++bh)
    for (int Q = 0; Q < nq64; ++Q)
      for (int K = 0; K < nk64; ++K) {
        int vis = 0, act = 0;
        for (int qb = Q * f; qb < (Q + 1) * f && qb < g.nqb; ++qb) {
          const size_t blk = (size_t)bh * g.nqb + qb;
          const int nvis = bs[blk * ASP_STAT_COUNT + ASP_STAT_VISIBLE];
          for (int kt = K * f; kt < (K + 1) * f && kt < g.nkb; ++kt) {
            if (kt >= nvis) continue;
            vis = 1;
            if ((bm[blk * g.wk + kt / 32] >> (kt % 32)) & 1u) act = 1;
          }
        }
        visible += (unsigned long)vis;
        empty += (unsigned long)(vis && !act);
      }
  return visible ? (double)empty / (double)visible : 0.0;
}

adasplash_status adasplash_attention_stats_read(adasplash_context *ctx,
                                                const adasplash_attention_desc *desc,
                                                cl_command_queue queue, cl_mem saved,
                                                adasplash_attention_stats *stats) {
  const char *fn = "adasplash_attention_stats_read";
  if (ctx && !stats)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: stats is NULL", fn);
  if (ctx && !asp_attn_stats_size_ok(stats->struct_size))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: stats->struct_size=%zu, expected %zu", fn, stats->struct_size,
                    sizeof *stats);
  asp_attn_problem pr;
  int tile;
  asp_attn_buffers lay;
  adasplash_status st = asp_saved_prologue(ctx, desc, queue, saved, fn, &pr, &tile, &lay);
  if (st != ADASPLASH_SUCCESS) return st;
  size_t n = lay.size[ASP_SEC_BLOCKSTATS] / 4;
  cl_int *bs = (cl_int *)malloc(lay.size[ASP_SEC_BLOCKSTATS]);
  if (!bs) return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: allocating", fn);
  st = asp_read_section(ctx, queue, saved, &lay, ASP_SEC_BLOCKSTATS, bs);
  if (st != ADASPLASH_SUCCESS) {
    free(bs);
    return st;
  }
  adasplash_attention_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.tile_m = s.tile_n = tile;
  s.converged = 1;
  double sweeps_sum = 0;
  unsigned long blocks = 0;
  for (size_t i = 0; i + ASP_STAT_COUNT <= n; i += ASP_STAT_COUNT) {
    const cl_int *b = bs + i;
    s.visible_tiles += (unsigned long)b[ASP_STAT_VISIBLE];
    s.active_tiles += (unsigned long)b[ASP_STAT_ACTIVE];
    s.refine_tiles += (unsigned long)b[ASP_STAT_REFINE_TILES];
    if (b[ASP_STAT_ROWS] > 0) {
      if (b[ASP_STAT_SWEEPS] > s.max_sweeps) s.max_sweeps = b[ASP_STAT_SWEEPS];
      sweeps_sum += b[ASP_STAT_SWEEPS];
      ++blocks;
      if (!b[ASP_STAT_CONVERGED]) s.converged = 0;
      float res;
      memcpy(&res, &b[ASP_STAT_RESIDUAL], 4);
      if (res > s.max_residual) s.max_residual = res;
    }
  }
  s.block_sparsity_64 = -1.0;
  if (tile <= 64 && 64 % tile == 0) {
    cl_uint *bm = (cl_uint *)malloc(lay.size[ASP_SEC_BITMAP]);
    if (!bm) {
      free(bs);
      return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: allocating", fn);
    }
    st = asp_read_section(ctx, queue, saved, &lay, ASP_SEC_BITMAP, bm);
    if (st != ADASPLASH_SUCCESS) {
      free(bm);
      free(bs);
      return st;
    }
    s.block_sparsity_64 = asp_sparsity_64(&pr, tile, bs, bm);
    free(bm);
  }
  free(bs);
  s.mean_sweeps = blocks ? sweeps_sum / (double)blocks : 0.0;
  s.block_sparsity = s.visible_tiles ? 1.0 - (double)s.active_tiles / (double)s.visible_tiles : 0.0;
  if (s.max_residual > pr.d.tolerance) s.converged = 0;
  const size_t caller_size = stats->struct_size;
  s.struct_size = caller_size;
  memcpy(stats, &s, caller_size); /* sizeof s, or the legacy size without refine_tiles */
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_attention_saved_read(adasplash_context *ctx,
                                                const adasplash_attention_desc *desc,
                                                cl_command_queue queue, cl_mem saved, float *tau,
                                                unsigned char *active) {
  const char *fn = "adasplash_attention_saved_read";
  asp_attn_problem pr;
  int tile;
  asp_attn_buffers lay;
  adasplash_status st = asp_saved_prologue(ctx, desc, queue, saved, fn, &pr, &tile, &lay);
  if (st != ADASPLASH_SUCCESS) return st;
  const asp_geom g = asp_attn_geom(&pr, tile, 1);
  const size_t rows = (size_t)g.batch * g.q_heads * g.q_len;
  if (tau) {
    float *rs = (float *)malloc(lay.size[ASP_SEC_ROWSTATE]);
    if (!rs) return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: allocating", fn);
    st = asp_read_section(ctx, queue, saved, &lay, ASP_SEC_ROWSTATE, rs);
    /* The kernels keep m and tau - m; their sum, rounded once: +inf (m = 0, t = +inf) for rows
     * without visible keys, NaN for rows with non-finite scores. */
    if (st == ADASPLASH_SUCCESS)
      for (size_t r = 0; r < rows; ++r)
        tau[r] = (float)((double)rs[ASP_ROWSTATE_COUNT * r + ASP_ROWSTATE_MAX] +
                         (double)rs[ASP_ROWSTATE_COUNT * r + ASP_ROWSTATE_TAU]);
    free(rs);
    if (st != ADASPLASH_SUCCESS) return st;
  }
  if (active) {
    cl_uint *bm = (cl_uint *)malloc(lay.size[ASP_SEC_BITMAP]);
    if (!bm) return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: allocating", fn);
    st = asp_read_section(ctx, queue, saved, &lay, ASP_SEC_BITMAP, bm);
    if (st == ADASPLASH_SUCCESS) {
      const size_t blocks = (size_t)g.batch * g.q_heads * g.nqb;
      for (size_t blk = 0; blk < blocks; ++blk)
        for (int kt = 0; kt < g.nkb; ++kt)
          active[blk * g.nkb + kt] = (bm[blk * g.wk + kt / 32] >> (kt % 32)) & 1u;
    }
    free(bm);
  }
  return st;
}
