/*
 * attention_decode.c - the split-KV decode path of the entmax attention forward: when a call has
 * few query rows (q_len <= tuning decode_max_q) and no saved buffer, the key range of every
 * (batch, kv head) is spread over many work-groups instead of one work-group per row block and
 * head (cl/attn_decode.cl). Two launches: the scores with each split's max and histogram window
 * per row (decode_scores), then per row the merged windows' bracket, tau solved on the keys that
 * reach it, and the output from their value rows (decode_finish). The same engine reads a paged KV
 * cache through a block table (attention_paged.c); the shard path (attention_shard.c) uses the
 * program's decode_pv and decode_combine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_internal.h"
#include "entmax_rows.h"

static const char *const asp_decode_kernels[] = {"decode_scores", "decode_pv", "decode_combine",
                                                 "decode_finish"};

static asp_variant_key asp_decode_key(const adasplash_context *ctx, adasplash_dtype dtype,
                                      int head_dim) {
  return asp_variant_key_of(ctx, ASP_PROGRAM_ATTN_DECODE, dtype, asp_attn_padded_head_dim(head_dim),
                            0);
}

/* Local bytes of decode_pv or decode_finish (the larger) at wg work-items. */
static size_t asp_decode_wg_bytes(const adasplash_context *ctx, int wg) {
  const size_t pv = (size_t)ASP_DEC_PV_BYTES(wg);
  const size_t fin = (size_t)ASP_DEC_FIN_BYTES(wg, asp_rows_bins(ctx) + 1, ASP_ROWS_KMAX);
  return pv > fin ? pv : fin;
}

/* 16-byte slices of a key or value row. */
static int asp_decode_slices(adasplash_dtype dtype, int head_dim) {
  return asp_attn_padded_head_dim(head_dim) * (int)adasplash_dtype_size(dtype) / 16;
}

/* Work-items of decode_pv, decode_combine and decode_finish before the compiled kernels' limits
 * (which may halve it): decode_wg, at least the slices of a row (decode_finish's key groups),
 * halved (not below them) until the device takes it. */
static int asp_decode_wg(const adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  const int slices = asp_decode_slices(dtype, head_dim);
  int wg = ctx->tuning.decode_wg;
  if (wg < slices) wg = slices;
  while ((unsigned long)wg > ctx->tuning.max_wg && wg / 2 >= slices) wg /= 2;
  while (wg / 2 >= slices && asp_decode_wg_bytes(ctx, wg) > asp_attn_local_avail(&ctx->tuning))
    wg /= 2;
  return wg;
}

/* decode_scores on tensor cores: the NVIDIA path with 16-bit storage (emulated off NVIDIA). */
static int asp_decode_nv(const adasplash_context *ctx, adasplash_dtype dtype) {
  return ctx->path == ADASPLASH_PATH_NVIDIA_MMA && dtype != ADASPLASH_F32;
}

/* Slices of a key row per lane of the portable decode_scores: 1 on GPUs (a row's slices on
 * consecutive work-items: coalesced loads), the whole row on CPUs (a work-item per key: no
 * partial dots to reduce, half the barriers per key; 8-10x faster on PoCL). */
static int asp_decode_spw(const adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  return ctx->dev.device_class == ASP_DEVICE_CPU ? asp_decode_slices(dtype, head_dim) : 1;
}

/* Local bytes of decode_scores at swg work-items. */
static size_t asp_decode_swg_bytes(const adasplash_context *ctx, adasplash_dtype dtype,
                                   int head_dim, int swg) {
  const int hd = asp_attn_padded_head_dim(head_dim), w = asp_rows_bins(ctx) + 1;
  if (asp_decode_nv(ctx, dtype))
    return (size_t)ASP_DEC_SCORES_NV_BYTES(swg, w, !asp_variant_nv_native(ctx));
  return (size_t)ASP_DEC_SCORES_BYTES(swg, hd, (int)adasplash_dtype_size(dtype), w,
                                      asp_decode_spw(ctx, dtype, head_dim));
}

/* Work-items of decode_scores before the compiled kernel's limits: decode_wg, at least the lanes
 * of a key row (asp_decode_spw; tensor cores: at least a warp of 32), halved (not below that) until
 * its local arrays fit the device. A function of the tuning, dtype and head dim only, so that
 * workspace sizes are known before any compilation. */
static int asp_decode_swg(const adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  const int lanes = asp_decode_slices(dtype, head_dim) / asp_decode_spw(ctx, dtype, head_dim);
  const int least = asp_decode_nv(ctx, dtype) ? 32 : lanes;
  int swg = ctx->tuning.decode_wg;
  while ((unsigned long)swg > ctx->tuning.max_wg && swg / 2 >= least) swg /= 2;
  if (swg < least) swg = least;
  while (swg / 2 >= least &&
         asp_decode_swg_bytes(ctx, dtype, head_dim, swg) > asp_attn_local_avail(&ctx->tuning))
    swg /= 2;
  return swg;
}

adasplash_status asp_decode_prepare(adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  adasplash_status st = asp_rows_prepare(ctx, ADASPLASH_F32); /* tau on the fp32 scores */
  if (st != ADASPLASH_SUCCESS) return st;
  const asp_variant_key key = asp_decode_key(ctx, dtype, head_dim);
  asp_plan plan;
  if (asp_plan_find(ctx, &key, &plan)) return ADASPLASH_SUCCESS;
  const int bins = asp_rows_bins(ctx);
  const int slices = asp_decode_slices(dtype, head_dim);
  int wg = asp_decode_wg(ctx, dtype, head_dim), swg = asp_decode_swg(ctx, dtype, head_dim);
  const int nv = asp_decode_nv(ctx, dtype), emulate = nv && !asp_variant_nv_native(ctx);
  if (!asp_decode_supported(ctx, dtype, head_dim))
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "the decode kernels need %d and %d work-items and %zu and %zu bytes of local "
                    "memory for head_dim %d; the device offers %lu and %zu",
                    swg, wg, asp_decode_swg_bytes(ctx, dtype, head_dim, swg),
                    asp_decode_wg_bytes(ctx, wg), head_dim, ctx->tuning.max_wg,
                    asp_attn_local_avail(&ctx->tuning));
  for (;;) {
    const int dpl = (key.head_dim + wg - 1) / wg;
    asp_defines df;
    asp_defines_init(&df, ctx, &key);
    asp_defines_add_int(&df, "ASP_WG", wg);
    asp_defines_add_int(&df, "ASP_DPL", dpl);
    asp_defines_add_int(&df, "ASP_DEC_SWG", swg);
    asp_defines_add_int(&df, "ASP_DEC_SPW", asp_decode_spw(ctx, dtype, head_dim));
    asp_defines_add_int(&df, "ASP_DEC_D", key.head_dim);
    asp_defines_add_int(&df, "ASP_BINS", bins);
    asp_defines_add_int(&df, "ASP_KMAX", ASP_ROWS_KMAX);
    asp_defines_add_int(&df, "ASP_WG_BRACKET", ctx->tuning.rows_wg_bracket);
    asp_defines_add_int(&df, "ASP_DEC_NV", nv);
    if (nv) asp_defines_add_int(&df, "ASP_NV_EMULATE", emulate);
    /* mma.sync needs the device's own target (sm_80 and later). */
    char arch[32] = "";
    if (nv && !emulate)
      snprintf(arch, sizeof arch, "-cl-nv-arch sm_%d", ctx->dev.info.nvidia_compute_capability);
    asp_program *program = NULL;
    st = asp_variant_program_opts(ctx, &key, &df, arch, &program);
    if (st != ADASPLASH_SUCCESS) return st;
    int wg_fits = 1, swg_fits = 1;
    for (size_t i = 0; i < sizeof asp_decode_kernels / sizeof asp_decode_kernels[0]; ++i) {
      const char *name = asp_decode_kernels[i];
      const asp_kernel *k = asp_program_kernel(program, name);
      if (!k)
        return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "kernel %s missing from attn_decode.cl",
                        name);
      const int scores = strcmp(name, "decode_scores") == 0, pv = strcmp(name, "decode_pv") == 0;
      const int fin = strcmp(name, "decode_finish") == 0;
      const size_t want =
          scores ? asp_decode_swg_bytes(ctx, dtype, head_dim, swg)
                 : (pv ? (size_t)ASP_DEC_PV_BYTES(wg)
                       : (fin ? (size_t)ASP_DEC_FIN_BYTES(wg, bins + 1, ASP_ROWS_KMAX) : 0));
      st = asp_check_local_mem(ctx, name, "attn_decode.cl", (size_t)k->local_mem_size, want);
      if (st != ADASPLASH_SUCCESS) return st;
      if (scores &&
          (k->max_work_group_size < (size_t)swg || k->local_mem_size > ctx->tuning.local_mem))
        swg_fits = 0;
      if ((pv || fin) &&
          (k->max_work_group_size < (size_t)wg || k->local_mem_size > ctx->tuning.local_mem))
        wg_fits = 0;
    }
    if (wg_fits && swg_fits) {
      memset(&plan, 0, sizeof plan);
      plan.key = key;
      plan.program = program;
      plan.decode.wg = wg;
      plan.decode.dpl = dpl;
      plan.decode.swg = swg;
      return asp_plan_store(ctx, &plan, &plan);
    }
    if ((!wg_fits && wg / 2 < slices) || (!swg_fits && swg / 2 < (nv ? 32 : slices)))
      return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                      "the decode kernels do not accept their work-items on this device");
    if (!wg_fits) wg /= 2;
    if (!swg_fits) swg /= 2;
  }
}

/* Splits of decode_pv for kv_len keys in the shard path: the tuning's decode_split keys each. */
size_t asp_decode_nsplit(const adasplash_context *ctx, int kv_len) {
  const size_t split = (size_t)ctx->tuning.decode_split;
  return ((size_t)kv_len + split - 1) / split;
}

/* Keys per split of a decode call (decode_scores and decode_pv alike): the tuning's decode_split,
 * doubled while the splits of all (batch, kv head) pairs would still give every compute unit four
 * work-groups (fewer, longer splits: fewer histogram windows and partial outputs to merge). A
 * function of the tuning and the problem. */
static size_t asp_decode_call_split(const adasplash_context *ctx, const asp_attn_problem *pr) {
  const adasplash_attention_desc *d = &pr->d;
  const size_t kv = d->kv_len > 0 ? (size_t)d->kv_len : 1;
  const size_t pairs = (size_t)d->batch * (size_t)d->kv_heads;
  const size_t want = 4 * (size_t)(ctx->dev.info.compute_units ? ctx->dev.info.compute_units : 1);
  size_t split = (size_t)ctx->tuning.decode_split;
  while (split < kv && (kv + 2 * split - 1) / (2 * split) * pairs >= want) split *= 2;
  return split;
}

static size_t asp_decode_call_nsplit(const adasplash_context *ctx, const asp_attn_problem *pr) {
  const size_t split = asp_decode_call_split(ctx, pr);
  const size_t n = ((size_t)pr->d.kv_len + split - 1) / split;
  return n > 0 ? n : 1; /* one split writes the rows' state even without keys */
}

/* Sections of the decode workspace: scores [rows, kv_len], visible [rows], alpha [rows], the
 * splits' windows per row (max and anchor, top/count/bad, histogram: entmax_seg_hist's format). */
enum {
  ASP_DEC_SCORES = 0,
  ASP_DEC_VISIBLE,
  ASP_DEC_ALPHA,
  ASP_DEC_SEG_MAX,
  ASP_DEC_SEG_INFO,
  ASP_DEC_SEG_HIST,
  ASP_DEC_COUNT
};

static size_t asp_decode_layout(const adasplash_context *ctx, const asp_attn_problem *pr,
                                asp_section *sec) {
  const adasplash_attention_desc *d = &pr->d;
  const size_t rows = (size_t)d->batch * (size_t)d->q_heads * (size_t)d->q_len;
  const size_t nsplit = asp_decode_call_nsplit(ctx, pr), w = (size_t)asp_rows_bins(ctx) + 1;
  const size_t a = asp_sub_buffer_align(ctx);
  const size_t sizes[ASP_DEC_COUNT] = {rows * (size_t)d->kv_len * 4,
                                       rows * 4,
                                       rows * 4,
                                       rows * nsplit * 2 * 4,
                                       rows * nsplit * 3 * 4,
                                       rows * nsplit * 3 * w * 4};
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

int asp_decode_supported(const adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  const int swg = asp_decode_swg(ctx, dtype, head_dim), wg = asp_decode_wg(ctx, dtype, head_dim);
  const size_t avail = asp_attn_local_avail(&ctx->tuning);
  return (unsigned long)swg <= ctx->tuning.max_wg && (unsigned long)wg <= ctx->tuning.max_wg &&
         asp_decode_swg_bytes(ctx, dtype, head_dim, swg) <= avail &&
         asp_decode_wg_bytes(ctx, wg) <= avail;
}

int asp_decode_wanted(const adasplash_context *ctx, const asp_attn_problem *pr) {
  return pr->d.algorithm == ADASPLASH_ATTN_ENTMAX && pr->d.q_len <= ctx->tuning.decode_max_q &&
         asp_decode_fits(ctx, pr) && asp_decode_supported(ctx, pr->d.dtype, pr->d.head_dim);
}

int asp_decode_prepared(adasplash_context *ctx, const asp_attn_problem *pr) {
  asp_plan plan;
  const asp_variant_key rows =
                            asp_variant_key_of(ctx, ASP_PROGRAM_ENTMAX_ROWS, ADASPLASH_F32, 0, 0),
                        key = asp_decode_key(ctx, pr->d.dtype, pr->d.head_dim);
  return asp_plan_find(ctx, &key, &plan) && asp_plan_find(ctx, &rows, &plan);
}

/* decode_pv over w [rows, a->g.kv_len] (see attn_decode.cl) in splits of `split` keys into part
 * [nsplit, rows, head_dim]; with states (decode): w holds scores, turned into p by the rows'
 * solved states, and psum [nsplit, rows] gets the splits' sums of p. */
static adasplash_status asp_decode_pv(const asp_plan *plan, const asp_attn_args *a,
                                      const asp_decode_kv *kv, asp_chain *chain, size_t split,
                                      cl_mem v, cl_mem w, cl_mem visible, cl_mem states,
                                      cl_mem alpha_rows, cl_mem part, cl_mem psum) {
  const int wg = plan->decode.wg;
  const size_t nsplit = ((size_t)a->g.kv_len + split - 1) / split;
  cl_mem table = kv ? kv->table : NULL;
  cl_int page_size = kv ? kv->page_size : 0, max_blocks = kv ? kv->max_blocks : 0,
         num_pages = kv ? kv->num_pages : 0, csplit = (cl_int)split, has_states = states != NULL;
  size_t global[3] = {nsplit * (size_t)wg, (size_t)a->g.kv_heads, (size_t)a->g.batch};
  size_t local[3] = {(size_t)wg, 1, 1};
  asp_arg args[] = {ASP_ARG(*a),        ASP_ARG(v),          ASP_ARG(table),
                    ASP_ARG(page_size), ASP_ARG(max_blocks), ASP_ARG(num_pages),
                    ASP_ARG(csplit),    ASP_ARG(w),          ASP_ARG(visible),
                    ASP_ARG(states),    ASP_ARG(alpha_rows), ASP_ARG(has_states),
                    ASP_ARG(part),      ASP_ARG(psum)};
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
  return asp_decode_pv(&plan, a, NULL, chain, (size_t)ctx->tuning.decode_split, v, p, visible, NULL,
                       NULL, part, NULL);
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
  const size_t rows = (size_t)d->batch * (size_t)d->q_heads * (size_t)d->q_len;
  const size_t split = asp_decode_call_split(ctx, pr), nsplit = asp_decode_call_nsplit(ctx, pr);
  cl_mem table = kv ? kv->table : NULL;
  cl_int page_size = kv ? kv->page_size : 0, max_blocks = kv ? kv->max_blocks : 0,
         num_pages = kv ? kv->num_pages : 0, csplit = (cl_int)split, cnseg = (cl_int)nsplit;
  cl_float qscale = asp_rows_qscale((size_t)d->kv_len);
  cl_mem alpha_buf = d->alpha_buf, q_lens = d->q_lens, kv_lens = d->kv_lens;
  {
    const size_t swg = (size_t)plan.decode.swg;
    size_t global[3] = {nsplit * swg, (size_t)d->kv_heads, (size_t)d->batch};
    size_t local[3] = {swg, 1, 1};
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
                      ASP_ARG(csplit),
                      ASP_ARG(cnseg),
                      ASP_ARG(qscale),
                      ASP_ARG(V[ASP_DEC_SCORES]),
                      ASP_ARG(V[ASP_DEC_VISIBLE]),
                      ASP_ARG(V[ASP_DEC_ALPHA]),
                      ASP_ARG(V[ASP_DEC_SEG_MAX]),
                      ASP_ARG(V[ASP_DEC_SEG_INFO]),
                      ASP_ARG(V[ASP_DEC_SEG_HIST])};
    st = asp_launch(chain, plan.program, "decode_scores", args, sizeof args / sizeof args[0], 3,
                    global, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    /* tau per row on the row program's terms (tolerance at most 1e-6, at least 32 sweeps); the
     * output is divided by the measured sum of p, so an exact finish needs no measuring sweep. */
    const size_t wg = (size_t)plan.decode.wg;
    cl_int use_hist = ctx->tuning.attn_hist;
    cl_float tol = d->tolerance < 1e-6f ? d->tolerance : 1e-6f;
    cl_int max_iter = d->max_iter > 32 ? d->max_iter : 32;
    size_t global[1] = {rows * wg}, local[1] = {wg};
    asp_arg args[] = {ASP_ARG(a),
                      ASP_ARG(v),
                      ASP_ARG(table),
                      ASP_ARG(page_size),
                      ASP_ARG(max_blocks),
                      ASP_ARG(num_pages),
                      ASP_ARG(cnseg),
                      ASP_ARG(qscale),
                      ASP_ARG(use_hist),
                      ASP_ARG(tol),
                      ASP_ARG(max_iter),
                      ASP_ARG(V[ASP_DEC_SCORES]),
                      ASP_ARG(V[ASP_DEC_VISIBLE]),
                      ASP_ARG(V[ASP_DEC_ALPHA]),
                      ASP_ARG(V[ASP_DEC_SEG_MAX]),
                      ASP_ARG(V[ASP_DEC_SEG_INFO]),
                      ASP_ARG(V[ASP_DEC_SEG_HIST]),
                      ASP_ARG(out)};
    st = asp_launch(chain, plan.program, "decode_finish", args, sizeof args / sizeof args[0], 1,
                    global, local);
  }
  asp_views_release(V, ASP_DEC_COUNT);
  asp_scratch_release(&ws);
  return st;
}
