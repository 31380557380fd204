/*
 * attention_decode.c - the split-KV decode path of the entmax attention forward: when a call has
 * few query rows (q_len <= tuning decode_max_q) and no saved buffer, the key range of every
 * (batch, kv head) is spread over many work-groups instead of one work-group per row block and
 * head. Scores are kept (rows x kv_len floats: small for decode shapes), tau is solved on them by
 * the row operator (the same solver, entmax_solver.clh; long rows split into segments whose
 * histograms merge), and the output is the plain sum of per-split partial P V (cl/attn_decode.cl).
 * The same engine reads a paged KV cache through a block table (attention_paged.c).
 */
#include <stdlib.h>
#include <string.h>

#include "attention_internal.h"
#include "entmax_rows.h"

static const char *const asp_decode_kernels[] = {"decode_scores", "decode_pv", "decode_combine"};

static asp_variant_key asp_decode_key(const adasplash_context *ctx, adasplash_dtype dtype,
                                      int head_dim) {
  return asp_variant_key_of(ctx, ASP_PROGRAM_ATTN_DECODE, dtype, asp_attn_padded_head_dim(head_dim),
                            0);
}

/* Work-items of the decode kernels before the compiled kernels' limits (which may halve it). */
static int asp_decode_wg(const adasplash_context *ctx) {
  int wg = ctx->tuning.decode_wg;
  while ((unsigned long)wg > ctx->tuning.max_wg && wg > 16) wg /= 2;
  return wg;
}

/* Keys per split: the tuning's decode_split, halved until decode_pv's arena fits the device's
 * local memory (a function of the tuning and the device only, so sizes are known before any
 * compilation). */
static int asp_decode_split(const adasplash_context *ctx) {
  int split = ctx->tuning.decode_split;
  const int wg = asp_decode_wg(ctx);
  while (split > 64 && (size_t)ASP_DEC_PV_BYTES(split, wg) > asp_attn_local_avail(&ctx->tuning))
    split /= 2;
  return split;
}

adasplash_status asp_decode_prepare(adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  adasplash_status st = asp_rows_prepare(ctx, ADASPLASH_F32); /* tau on the fp32 scores */
  if (st != ADASPLASH_SUCCESS) return st;
  const asp_variant_key key = asp_decode_key(ctx, dtype, head_dim);
  asp_plan plan;
  if (asp_plan_find(ctx, &key, &plan)) return ADASPLASH_SUCCESS;
  int wg = asp_decode_wg(ctx);
  const int split = asp_decode_split(ctx);
  for (;;) {
    const int dpl = (key.head_dim + wg - 1) / wg;
    asp_defines df;
    asp_defines_init(&df, ctx, &key);
    asp_defines_add_int(&df, "ASP_WG", wg);
    asp_defines_add_int(&df, "ASP_DPL", dpl);
    asp_defines_add_int(&df, "ASP_SPLIT", split);
    asp_program *program = NULL;
    st = asp_variant_program(ctx, &key, &df, &program);
    if (st != ADASPLASH_SUCCESS) return st;
    size_t fit = (size_t)wg;
    for (size_t i = 0; i < sizeof asp_decode_kernels / sizeof asp_decode_kernels[0]; ++i) {
      const asp_kernel *k = asp_program_kernel(program, asp_decode_kernels[i]);
      if (!k)
        return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "kernel %s missing from attn_decode.cl",
                        asp_decode_kernels[i]);
      /* decode_pv's arena (cl/abi.h); the other kernels declare none. */
      const size_t want =
          strcmp(asp_decode_kernels[i], "decode_pv") == 0 ? ASP_DEC_PV_BYTES(split, wg) : 0;
      st = asp_check_local_mem(ctx, asp_decode_kernels[i], "attn_decode.cl",
                               (size_t)k->local_mem_size, want);
      if (st != ADASPLASH_SUCCESS) return st;
      if (k->local_mem_size > ctx->tuning.local_mem) fit = 0;
      if (strcmp(asp_decode_kernels[i], "decode_combine") != 0 && k->max_work_group_size < fit)
        fit = k->max_work_group_size;
    }
    if (fit >= (size_t)wg) {
      memset(&plan, 0, sizeof plan);
      plan.key = key;
      plan.program = program;
      plan.decode.wg = wg;
      plan.decode.dpl = dpl;
      return asp_plan_store(ctx, &plan, &plan);
    }
    if (wg <= 16)
      return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                      "decode kernels accept only %zu work-items on this device", fit);
    wg /= 2;
  }
}

/* Splits of the P V pass for kv_len keys. */
size_t asp_decode_nsplit(const adasplash_context *ctx, int kv_len) {
  const size_t split = (size_t)asp_decode_split(ctx);
  return ((size_t)kv_len + split - 1) / split;
}

/* Sections of the decode workspace: scores [rows, kv_len], visible [rows], alpha [rows], partial
 * outputs [nsplit, rows, head_dim]. */
enum { ASP_DEC_SCORES = 0, ASP_DEC_VISIBLE, ASP_DEC_ALPHA, ASP_DEC_PART, ASP_DEC_COUNT };

static size_t asp_decode_layout(const adasplash_context *ctx, const asp_attn_problem *pr,
                                asp_section *sec) {
  const adasplash_attention_desc *d = &pr->d;
  const size_t rows = (size_t)d->batch * (size_t)d->q_heads * (size_t)d->q_len;
  const size_t a = asp_sub_buffer_align(ctx);
  const size_t sizes[ASP_DEC_COUNT] = {
      rows * (size_t)d->kv_len * 4, rows * 4, rows * 4,
      asp_decode_nsplit(ctx, d->kv_len) * rows * (size_t)d->head_dim * 4};
  size_t off = 0;
  for (int i = 0; i < ASP_DEC_COUNT; ++i) {
    if (sec) {
      sec[i].offset = off;
      sec[i].size = sizes[i];
    }
    off = asp_align_up(off + sizes[i], a);
  }
  return off;
}

size_t asp_decode_workspace_bytes(const adasplash_context *ctx, const asp_attn_problem *pr) {
  return asp_decode_layout(ctx, pr, NULL);
}

int asp_decode_fits(const adasplash_context *ctx, const asp_attn_problem *pr) {
  /* The workspace is one buffer (or a caller's buffer cut into views): at most one allocation. */
  const long double need = (long double)pr->d.batch * pr->d.q_heads * pr->d.q_len *
                           ((long double)pr->d.kv_len + 2.0L) * 4.0L;
  return need <= (long double)ctx->dev.info.max_mem_alloc_size &&
         asp_decode_workspace_bytes(ctx, pr) <= (size_t)ctx->dev.info.max_mem_alloc_size;
}

int asp_decode_wanted(const adasplash_context *ctx, const asp_attn_problem *pr) {
  return pr->d.algorithm == ADASPLASH_ATTN_ENTMAX && pr->d.q_len <= ctx->tuning.decode_max_q &&
         asp_decode_fits(ctx, pr);
}

int asp_decode_prepared(adasplash_context *ctx, const asp_attn_problem *pr) {
  asp_plan plan;
  const asp_variant_key rows =
                            asp_variant_key_of(ctx, ASP_PROGRAM_ENTMAX_ROWS, ADASPLASH_F32, 0, 0),
                        key = asp_decode_key(ctx, pr->d.dtype, pr->d.head_dim);
  return asp_plan_find(ctx, &key, &plan) && asp_plan_find(ctx, &rows, &plan);
}

/* decode_pv over p [rows, a->g.kv_len] (see attn_decode.cl) into part [nsplit, rows, head_dim]. */
static adasplash_status asp_decode_pv(adasplash_context *ctx, const asp_plan *plan,
                                      const asp_attn_args *a, const asp_decode_kv *kv,
                                      asp_chain *chain, cl_mem v, cl_mem p, cl_mem visible,
                                      cl_mem part) {
  const int wg = plan->decode.wg;
  const size_t nsplit = asp_decode_nsplit(ctx, a->g.kv_len);
  cl_mem table = kv ? kv->table : NULL;
  cl_int page_size = kv ? kv->page_size : 0, max_blocks = kv ? kv->max_blocks : 0,
         num_pages = kv ? kv->num_pages : 0;
  size_t global[3] = {nsplit * (size_t)wg, (size_t)a->g.kv_heads, (size_t)a->g.batch};
  size_t local[3] = {(size_t)wg, 1, 1};
  asp_arg args[] = {ASP_ARG(*a),        ASP_ARG(v),          ASP_ARG(table),
                    ASP_ARG(page_size), ASP_ARG(max_blocks), ASP_ARG(num_pages),
                    ASP_ARG(p),         ASP_ARG(visible),    ASP_ARG(part)};
  return asp_launch(chain, plan->program, "decode_pv", args, sizeof args / sizeof args[0], 3,
                    global, local);
}

adasplash_status asp_decode_pv_sum(adasplash_context *ctx, const asp_attn_problem *pr,
                                   const asp_attn_args *a, asp_chain *chain, cl_mem v, cl_mem p,
                                   cl_mem visible, cl_mem part) {
  asp_plan plan;
  const asp_variant_key key = asp_decode_key(ctx, pr->d.dtype, pr->d.head_dim);
  if (!asp_plan_find(ctx, &key, &plan))
    return asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                    "decode kernels for dtype %d, head_dim %d are not compiled", (int)pr->d.dtype,
                    pr->d.head_dim);
  if (a->g.kv_len <= 0) return ADASPLASH_SUCCESS;
  return asp_decode_pv(ctx, &plan, a, NULL, chain, v, p, visible, part);
}

adasplash_status asp_decode_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                    const asp_decode_kv *kv, asp_chain *chain, cl_mem q, cl_mem k,
                                    cl_mem v, cl_mem out, cl_mem workspace, const char *fn) {
  asp_plan plan;
  const asp_variant_key key = asp_decode_key(ctx, pr->d.dtype, pr->d.head_dim);
  if (!asp_plan_find(ctx, &key, &plan))
    return asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                    "%s: decode kernels for dtype %d, head_dim %d are not compiled: call "
                    "adasplash_attention_prepare (or adasplash_warmup) first",
                    fn, (int)pr->d.dtype, pr->d.head_dim);
  const adasplash_attention_desc *d = &pr->d;
  asp_section sec[ASP_DEC_COUNT];
  const size_t need = asp_decode_layout(ctx, pr, sec);
  asp_scratch ws;
  adasplash_status st = asp_scratch_get(ctx, fn, ASP_SCRATCH_WORKSPACE, workspace, need, &ws);
  if (st != ADASPLASH_SUCCESS) return st;
  for (int i = 0; i < ASP_DEC_COUNT; ++i) sec[i].buffer = ws.mem;
  cl_mem V[ASP_DEC_COUNT] = {NULL};
  st = asp_views_make(ctx, sec, ASP_DEC_COUNT, V);
  if (st != ADASPLASH_SUCCESS) {
    asp_scratch_release(&ws);
    return st;
  }
  asp_plan geo;
  memset(&geo, 0, sizeof geo);
  geo.attn.tile = geo.attn.nseg = 1; /* the decode kernels use no tiles */
  asp_attn_args a = asp_attn_make_args(pr, &geo);
  const int wg = plan.decode.wg;
  const size_t rows = (size_t)d->batch * (size_t)d->q_heads * (size_t)d->q_len;
  const size_t group_rows = (size_t)(d->q_heads / d->kv_heads) * (size_t)d->q_len;
  cl_mem table = kv ? kv->table : NULL;
  cl_int page_size = kv ? kv->page_size : 0, max_blocks = kv ? kv->max_blocks : 0,
         num_pages = kv ? kv->num_pages : 0;
  cl_mem alpha_buf = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;
  size_t local[3] = {(size_t)wg, 1, 1};
  {
    const size_t n = (size_t)d->kv_len > group_rows ? (size_t)d->kv_len : group_rows;
    size_t global[3] = {(n + (size_t)wg - 1) / (size_t)wg * (size_t)wg, (size_t)d->kv_heads,
                        (size_t)d->batch};
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(q),
                      ASP_ARG(k),
                      ASP_ARG(q_lens),
                      ASP_ARG(kv_lens),
                      ASP_ARG(alpha_buf),
                      ASP_ARG(table),
                      ASP_ARG(page_size),
                      ASP_ARG(max_blocks),
                      ASP_ARG(num_pages),
                      ASP_ARG(V[ASP_DEC_SCORES]),
                      ASP_ARG(V[ASP_DEC_VISIBLE]),
                      ASP_ARG(V[ASP_DEC_ALPHA])};
    st = asp_launch(chain, plan.program, "decode_scores", args, sizeof args / sizeof args[0], 3,
                    global, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    /* tau and p = entmax(z) in place, on the row operator's terms as the dense baseline runs it
     * (tolerance at most 1e-6, at least 32 sweeps). */
    asp_rows_job job;
    memset(&job, 0, sizeof job);
    job.dtype = ADASPLASH_F32;
    job.rows = rows;
    job.cols = (size_t)d->kv_len;
    job.row_stride = job.cols;
    job.alpha = d->alpha;
    job.alpha_buf = d->alpha_buf ? V[ASP_DEC_ALPHA] : NULL;
    job.valid_cols = V[ASP_DEC_VISIBLE];
    job.tolerance = d->tolerance < 1e-6f ? d->tolerance : 1e-6f;
    job.max_iter = d->max_iter > 32 ? d->max_iter : 32;
    job.use_hist = ctx->tuning.attn_hist;
    /* Fewer rows than two per compute unit would leave the device idle while one work-group per
     * row solves tau: such rows are split into segments of at least a split's keys (the row
     * operator's long-row path: per-segment max and histogram on one grid, merged). */
    const size_t want = 2 * (size_t)ctx->dev.info.compute_units;
    if (rows < want) {
      const size_t per_row = (want + rows - 1) / rows;
      size_t seg = (job.cols + per_row - 1) / per_row;
      if (seg < (size_t)asp_decode_split(ctx)) seg = (size_t)asp_decode_split(ctx);
      if (seg < job.cols) job.seg_cols = seg;
    }
    st = asp_rows_forward(ctx, &job, chain, V[ASP_DEC_SCORES], V[ASP_DEC_SCORES], NULL);
  }
  const cl_int nsplit = (cl_int)asp_decode_nsplit(ctx, d->kv_len);
  if (st == ADASPLASH_SUCCESS)
    st = asp_decode_pv(ctx, &plan, &a, kv, chain, v, V[ASP_DEC_SCORES], V[ASP_DEC_VISIBLE],
                       V[ASP_DEC_PART]);
  if (st == ADASPLASH_SUCCESS) {
    const size_t n = rows * (size_t)d->head_dim;
    size_t global[1] = {(n + (size_t)wg - 1) / (size_t)wg * (size_t)wg};
    asp_arg args[] = {ASP_ARG(a), ASP_ARG(V[ASP_DEC_PART]), ASP_ARG(nsplit), ASP_ARG(out)};
    st = asp_launch(chain, plan.program, "decode_combine", args, sizeof args / sizeof args[0], 1,
                    global, local);
  }
  asp_views_release(V, ASP_DEC_COUNT);
  asp_scratch_release(&ws);
  return st;
}
