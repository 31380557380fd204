/*
 * attention_shard.c - sequence parallelism: the public shard calls (include/adasplash.h,
 * "Sequence parallelism"). A shard holds every query row and a contiguous range of the global
 * sequence's keys; its scores, p and the row solvers live in the caller's work buffer from the
 * first forward call to the backward, and the per-row partial states the caller all-reduces
 * (MAX for row maxima, SUM for the rest) cross the host boundary as float arrays. The kernels are
 * attn_shard.cl's, decode_pv of the decode program (P V and dQ per split of keys) and the row
 * program's backward sums (entmax_rows.cl). Each call validates its arguments, the protocol step
 * recorded in the work buffer's header and the merged arrays it is given before it enqueues, then
 * waits for its commands and reads its partial arrays back.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention_internal.h"
#include "entmax_rows.h"

static const char *const asp_shard_kernels[] = {"shard_dots",   "shard_max",   "shard_hist",
                                                "shard_refine", "shard_probs", "shard_combine",
                                                "shard_dkdv"};

/* Floats per row of the arrays (cl/attn_shard.cl's ASP_SHARD_HIST_ROW, ASP_SHARD_SUMS_ROW; the
 * row program's five backward sums). */
#define ASP_SHARD_SUMS_ROW 5
#define ASP_SHARD_GRAD_ROW 5
#define ASP_SHARD_ACTIVE 4 /* index of the pending flag in a row of sums */
static size_t asp_shard_hist_row(int bins) {
  return 3 * (size_t)(bins + 1) + 2;
}

/* Bytes per row of the kernels' asp_row_solver (entmax_solver.clh: 8 floats, 3 ints). */
#define ASP_SHARD_STATE_BYTES 44

/* Protocol steps recorded in the work buffer's header. */
enum {
  ASP_SHARD_SCORED = 1, /* step 1 done: scores and own row max */
  ASP_SHARD_BINNED,     /* step 2 done: merged max and own histogram */
  ASP_SHARD_REFINING,   /* step 3 round `round` done; `pending` rows still active */
  ASP_SHARD_OUTPUT,     /* step 4 done: p in place of the scores */
  ASP_SHARD_GRADSUMS,   /* step 5 done: dp and own backward sums */
  ASP_SHARD_BACKWARD    /* step 6 done: dz in place of dp */
};
#define ASP_SHARD_MAGIC 0x41535053u /* "ASPS" */

typedef struct asp_shard_header {
  cl_uint magic, fingerprint;
  cl_int stage, round, pending, reserved[3];
} asp_shard_header;

/* Sections of the work buffer. */
enum {
  ASP_SH_HEADER = 0,
  ASP_SH_VISIBLE, /* int [rows]: the shard's visible keys per row */
  ASP_SH_OWNMAX,  /* [rows] this shard's row max */
  ASP_SH_MMAX,    /* [rows] the merged row max */
  ASP_SH_HIST,    /* [rows][hist_row] own histogram, then the merged one */
  ASP_SH_OWNHIST, /* [rows][hist_row] a copy of the own histogram's counts, for checks */
  ASP_SH_MSUMS,   /* [rows][5] merged sums of the previous round */
  ASP_SH_SUMS,    /* [rows][5] own sums of this round */
  ASP_SH_STATES,  /* [rows] asp_row_solver */
  ASP_SH_PSUM,    /* [rows] own sum p */
  ASP_SH_OUT,     /* [rows][head_dim] own P V, then own dQ */
  ASP_SH_PART,    /* [nsplit][rows][head_dim] decode_pv's partials */
  ASP_SH_GRAD,    /* [rows][5] own backward sums, then the merged ones */
  ASP_SH_SCORES,  /* [rows][kv_count] scores, then p */
  ASP_SH_DP,      /* [rows][kv_count] dp, then dz */
  ASP_SH_COUNT
};

/* One validated shard call. */
typedef struct asp_shard_call {
  asp_attn_problem pr;    /* the global problem (k, v layouts left contiguous) */
  asp_attn_problem local; /* the shard's: kv_len = kv_count, k and v as the shard's tensors */
  int kv_offset, kv_count;
  size_t rows, hist_row, nsplit;
  asp_plan plan;
  asp_section sec[ASP_SH_COUNT];
  size_t work_bytes;
  asp_attn_args args;
} asp_shard_call;

void adasplash_shard_init(adasplash_shard *shard) {
  if (!shard) return;
  memset(shard, 0, sizeof *shard);
  shard->struct_size = sizeof *shard;
}

static asp_variant_key asp_shard_key(const adasplash_context *ctx, adasplash_dtype dtype) {
  return asp_variant_key_of(ctx, ASP_PROGRAM_ATTN_SHARD, dtype, 0, 0);
}

static asp_variant_key asp_shard_rows_key(const adasplash_context *ctx) {
  return asp_variant_key_of(ctx, ASP_PROGRAM_ENTMAX_ROWS, ADASPLASH_F32, 0, 0);
}

adasplash_status asp_shard_prepare(adasplash_context *ctx, adasplash_dtype dtype, int head_dim) {
  adasplash_status st = asp_decode_prepare(ctx, dtype, head_dim);
  if (st != ADASPLASH_SUCCESS) return st;
  const asp_variant_key key = asp_shard_key(ctx, dtype), rows_key = asp_shard_rows_key(ctx);
  asp_plan plan, rows;
  if (asp_plan_find(ctx, &key, &plan)) return ADASPLASH_SUCCESS;
  if (!asp_plan_find(ctx, &rows_key, &rows))
    return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "shard: the fp32 row program is not prepared");
  int wg = 64;
  while ((unsigned long)wg > ctx->tuning.max_wg && wg > 1) wg /= 2;
  for (;;) {
    asp_defines df;
    asp_defines_init(&df, ctx, &key);
    asp_defines_add_int(&df, "ASP_WG", wg);
    asp_defines_add_int(&df, "ASP_BINS", rows.rows.bins);
    asp_program *program = NULL;
    st = asp_variant_program(ctx, &key, &df, &program);
    if (st != ADASPLASH_SUCCESS) return st;
    size_t fit = (size_t)wg;
    for (size_t i = 0; i < sizeof asp_shard_kernels / sizeof asp_shard_kernels[0]; ++i) {
      const asp_kernel *k = asp_program_kernel(program, asp_shard_kernels[i]);
      if (!k)
        return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "kernel %s missing from attn_shard.cl",
                        asp_shard_kernels[i]);
      if (k->local_mem_size > ctx->tuning.local_mem)
        return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                        "shard kernel %s needs %zu bytes of local memory, the device has %zu",
                        asp_shard_kernels[i], (size_t)k->local_mem_size,
                        (size_t)ctx->tuning.local_mem);
      if (k->max_work_group_size < fit) fit = k->max_work_group_size;
    }
    if (fit >= (size_t)wg) {
      memset(&plan, 0, sizeof plan);
      plan.key = key;
      plan.program = program;
      plan.shard.wg = wg;
      plan.shard.bins = rows.rows.bins;
      return asp_plan_store(ctx, &plan, &plan);
    }
    if (wg <= 1)
      return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                      "shard kernels accept no work-group on this device");
    wg /= 2;
  }
}

/* The work buffer's sections (offsets aligned for sub-buffers); returns its bytes. */
static size_t asp_shard_layout(const adasplash_context *ctx, asp_shard_call *c) {
  const size_t rows = c->rows, L = (size_t)c->kv_count, D = (size_t)c->pr.d.head_dim;
  const size_t sizes[ASP_SH_COUNT] = {sizeof(asp_shard_header),
                                      rows * 4,
                                      rows * 4,
                                      rows * 4,
                                      rows * c->hist_row * 4,
                                      rows * c->hist_row * 4,
                                      rows * ASP_SHARD_SUMS_ROW * 4,
                                      rows * ASP_SHARD_SUMS_ROW * 4,
                                      rows * ASP_SHARD_STATE_BYTES,
                                      rows * 4,
                                      rows * D * 4,
                                      c->nsplit * rows * D * 4,
                                      rows * ASP_SHARD_GRAD_ROW * 4,
                                      rows * L * 4,
                                      rows * L * 4};
  const size_t a = asp_sub_buffer_align(ctx);
  size_t off = 0;
  for (int i = 0; i < ASP_SH_COUNT; ++i) {
    c->sec[i].buffer = NULL;
    c->sec[i].offset = off;
    c->sec[i].size = sizes[i];
    off = asp_align_up(off + sizes[i], a);
  }
  return off;
}

static uint32_t asp_shard_fingerprint(const asp_shard_call *c) {
  uint32_t h = asp_attn_fingerprint(&c->pr, 0);
  const uint32_t v[] = {(uint32_t)c->kv_offset, (uint32_t)c->kv_count,
                        (uint32_t)(c->pr.d.alpha * 65536.0f), (uint32_t)c->plan.shard.bins};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; ++i) {
    h ^= v[i];
    h *= 16777619u;
  }
  return h;
}

/* Validates ctx, desc and shard and fills c (plans looked up when `prepared`). */
static adasplash_status asp_shard_check(adasplash_context *ctx,
                                        const adasplash_attention_desc *desc,
                                        const adasplash_shard *shard, const char *fn,
                                        asp_shard_call *c) {
  memset(c, 0, sizeof *c);
  const adasplash_status present = asp_attn_check_desc_present(ctx, desc, fn);
  if (present != ADASPLASH_SUCCESS) return present;
  /* The global problem with contiguous k and v (the shard's k and v are resolved below). */
  adasplash_attention_desc g = *desc;
  memset(&g.k, 0, sizeof g.k);
  memset(&g.v, 0, sizeof g.v);
  adasplash_status st = asp_attn_check_desc(ctx, &g, fn, &c->pr);
  if (st != ADASPLASH_SUCCESS) return st;
  const adasplash_attention_desc *d = &c->pr.d;
  if (d->algorithm != ADASPLASH_ATTN_ENTMAX)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: desc->algorithm=%d: shards run the entmax algorithm only", fn,
                    (int)d->algorithm);
  if (d->alpha_buf || d->q_lens || d->kv_lens)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: desc->%s: shards take a scalar alpha and no length buffers", fn,
                    d->alpha_buf ? "alpha_buf" : (d->q_lens ? "q_lens" : "kv_lens"));
  if (d->flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: desc->flags: shards do not compute the alpha gradient", fn);
  if (!shard) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: shard is NULL", fn);
  if (shard->struct_size != sizeof *shard)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: shard->struct_size=%zu, expected %zu (use adasplash_shard_init)", fn,
                    shard->struct_size, sizeof *shard);
  if (shard->kv_offset < 0 || shard->kv_count < 0 ||
      (long)shard->kv_offset + (long)shard->kv_count > (long)d->kv_len)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE,
                    "%s: shard keys [%d, %d + %d) must lie in the sequence's [0, desc->kv_len=%d)",
                    fn, shard->kv_offset, shard->kv_offset, shard->kv_count, d->kv_len);
  c->kv_offset = shard->kv_offset;
  c->kv_count = shard->kv_count;
  c->local = c->pr;
  c->local.d.kv_len = shard->kv_count;
  c->local.k_bytes = c->local.v_bytes = 0;
  if (shard->kv_count > 0) {
    st = asp_layout_resolve(ctx, fn, "desc->k", &desc->k, d->batch, d->kv_heads, shard->kv_count,
                            d->head_dim, c->pr.esize, &c->local.k, &c->local.k_bytes);
    if (st == ADASPLASH_SUCCESS)
      st = asp_layout_resolve(ctx, fn, "desc->v", &desc->v, d->batch, d->kv_heads, shard->kv_count,
                              d->head_dim, c->pr.esize, &c->local.v, &c->local.v_bytes);
    if (st != ADASPLASH_SUCCESS) return st;
  }
  c->rows = (size_t)d->batch * (size_t)d->q_heads * (size_t)d->q_len;
  const long double scores = (long double)c->rows * (long double)shard->kv_count * 4.0L;
  if (scores > (long double)ctx->dev.info.max_mem_alloc_size)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "%s: the shard's scores (%zu rows x %d keys) exceed one allocation of the "
                    "device (%llu bytes): use more shards",
                    fn, c->rows, shard->kv_count,
                    (unsigned long long)ctx->dev.info.max_mem_alloc_size);
  return ADASPLASH_SUCCESS;
}

/* After asp_shard_check: the plan, the sizes and the kernel parameters. */
static adasplash_status asp_shard_setup(adasplash_context *ctx, asp_shard_call *c, const char *fn) {
  const asp_variant_key key = asp_shard_key(ctx, c->pr.d.dtype), rows_key = asp_shard_rows_key(ctx);
  asp_plan rows;
  if (!asp_plan_find(ctx, &key, &c->plan) || !asp_plan_find(ctx, &rows_key, &rows) ||
      !asp_decode_prepared(ctx, &c->pr))
    return asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                    "%s: shard kernels for dtype %d, head_dim %d are not compiled: call "
                    "adasplash_attention_shard_sizes first",
                    fn, (int)c->pr.d.dtype, c->pr.d.head_dim);
  c->hist_row = asp_shard_hist_row(c->plan.shard.bins);
  c->nsplit = c->kv_count > 0 ? asp_decode_nsplit(ctx, c->kv_count) : 0;
  c->work_bytes = asp_shard_layout(ctx, c);
  asp_plan geo;
  memset(&geo, 0, sizeof geo);
  geo.attn.tile = geo.attn.nseg = 1; /* no tiles */
  c->args = asp_attn_make_args(&c->local, &geo);
  /* tau as the decode path solves it (attention_decode.c): tolerance at most 1e-6, at least 32
   * sweeps; moments quantised for the whole sequence's row length (merged counts). */
  c->args.tol = c->pr.d.tolerance < 1e-6f ? c->pr.d.tolerance : 1e-6f;
  c->args.max_iter = c->pr.d.max_iter > 32 ? c->pr.d.max_iter : 32;
  c->args.qscale = asp_rows_qscale((size_t)c->pr.d.kv_len);
  c->args.use_hist = ctx->tuning.attn_hist;
  return ADASPLASH_SUCCESS;
}

static size_t asp_shard_count(const asp_shard_call *c, adasplash_shard_array which) {
  const size_t D = (size_t)c->pr.d.head_dim;
  switch (which) {
    case ADASPLASH_SHARD_MAX:
    case ADASPLASH_SHARD_PSUM:
      return c->rows;
    case ADASPLASH_SHARD_HIST:
      return c->rows * c->hist_row;
    case ADASPLASH_SHARD_SUMS:
      return c->rows * ASP_SHARD_SUMS_ROW;
    case ADASPLASH_SHARD_GRAD:
      return c->rows * ASP_SHARD_GRAD_ROW;
    case ADASPLASH_SHARD_OUT:
    case ADASPLASH_SHARD_DQ:
      return c->rows * D;
  }
  return 0;
}

adasplash_status adasplash_attention_shard_sizes(adasplash_context *ctx,
                                                 const adasplash_attention_desc *desc,
                                                 const adasplash_shard *shard,
                                                 adasplash_shard_sizes *sizes) {
  static const char fn[] = "adasplash_attention_shard_sizes";
  asp_shard_call c;
  adasplash_status st = asp_shard_check(ctx, desc, shard, fn, &c);
  if (st != ADASPLASH_SUCCESS) return st;
  if (!sizes) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: sizes is NULL", fn);
  if (sizes->struct_size != sizeof *sizes)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: sizes->struct_size=%zu, expected %zu", fn, sizes->struct_size,
                    sizeof *sizes);
  st = asp_shard_prepare(ctx, c.pr.d.dtype, c.pr.d.head_dim);
  if (st == ADASPLASH_SUCCESS) st = asp_shard_setup(ctx, &c, fn);
  if (st != ADASPLASH_SUCCESS) return st;
  sizes->rows = c.rows;
  sizes->head_dim = (size_t)c.pr.d.head_dim;
  sizes->hist_per_row = c.hist_row;
  sizes->sums_per_row = ASP_SHARD_SUMS_ROW;
  sizes->grad_per_row = ASP_SHARD_GRAD_ROW;
  for (int i = 0; i <= ADASPLASH_SHARD_DQ; ++i)
    sizes->count[i] = asp_shard_count(&c, (adasplash_shard_array)i);
  sizes->work_bytes = c.work_bytes;
  return ADASPLASH_SUCCESS;
}

/* ---- the steps' common parts ------------------------------------------------------------------
 */

/* A host array argument: non-NULL and of the expected length. */
static adasplash_status asp_shard_check_array(const adasplash_context *ctx, const char *fn,
                                              const asp_shard_call *c, const void *ptr,
                                              size_t count, adasplash_shard_array which,
                                              const char *name) {
  if (!ptr) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn, name);
  const size_t want = asp_shard_count(c, which);
  if (count != want)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: %s has %zu floats, the protocol's array has %zu "
                    "(adasplash_attention_shard_sizes)",
                    fn, name, count, want);
  return ADASPLASH_SUCCESS;
}

/* Validation shared by every step: desc, shard, plan, queue, the work buffer and its header
 * (skipped when `header` is NULL: step 1 starts the protocol). */
static adasplash_status asp_shard_begin(adasplash_context *ctx,
                                        const adasplash_attention_desc *desc,
                                        const adasplash_shard *shard, const char *fn,
                                        cl_command_queue queue, cl_mem work, asp_shard_call *c,
                                        asp_shard_header *header) {
  adasplash_status st = asp_shard_check(ctx, desc, shard, fn, c);
  if (st == ADASPLASH_SUCCESS) st = asp_shard_setup(ctx, c, fn);
  if (st == ADASPLASH_SUCCESS) st = asp_check_queue(ctx, queue);
  if (st == ADASPLASH_SUCCESS) st = asp_check_buffer(ctx, work, "work", c->work_bytes);
  if (st != ADASPLASH_SUCCESS || !header) return st;
  cl_int err = clEnqueueReadBuffer(asp_queue_or_default(ctx, queue), work, CL_TRUE, 0,
                                   sizeof *header, header, 0, NULL, NULL);
  if (err != CL_SUCCESS) return asp_fail_cl(ctx, err, "reading the shard work buffer's header");
  if (header->magic != ASP_SHARD_MAGIC || header->fingerprint != asp_shard_fingerprint(c))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: work was not set up by adasplash_attention_shard_max for this desc and "
                    "shard",
                    fn);
  return ADASPLASH_SUCCESS;
}

static adasplash_status asp_shard_stage_error(const adasplash_context *ctx, const char *fn,
                                              const char *needs) {
  return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: out of sequence: it must follow %s",
                  fn, needs);
}

/* Blocking copies between host arrays and sections of work. */
static adasplash_status asp_shard_read(const adasplash_context *ctx, cl_command_queue queue,
                                       cl_mem work, const asp_shard_call *c, int sec, void *dst,
                                       size_t bytes) {
  if (bytes == 0) return ADASPLASH_SUCCESS;
  cl_int err = clEnqueueReadBuffer(asp_queue_or_default(ctx, queue), work, CL_TRUE,
                                   c->sec[sec].offset, bytes, dst, 0, NULL, NULL);
  return err == CL_SUCCESS ? ADASPLASH_SUCCESS : asp_fail_cl(ctx, err, "reading shard state");
}

static adasplash_status asp_shard_write(const adasplash_context *ctx, cl_command_queue queue,
                                        cl_mem work, const asp_shard_call *c, int sec,
                                        const void *src, size_t bytes) {
  if (bytes == 0) return ADASPLASH_SUCCESS;
  cl_int err = clEnqueueWriteBuffer(asp_queue_or_default(ctx, queue), work, CL_TRUE,
                                    c->sec[sec].offset, bytes, src, 0, NULL, NULL);
  return err == CL_SUCCESS ? ADASPLASH_SUCCESS : asp_fail_cl(ctx, err, "writing shard state");
}

static adasplash_status asp_shard_write_header(const adasplash_context *ctx, cl_command_queue queue,
                                               cl_mem work, const asp_shard_call *c, int stage,
                                               int round, int pending) {
  asp_shard_header h;
  memset(&h, 0, sizeof h);
  h.magic = ASP_SHARD_MAGIC;
  h.fingerprint = asp_shard_fingerprint(c);
  h.stage = stage;
  h.round = round;
  h.pending = pending;
  return asp_shard_write(ctx, queue, work, c, ASP_SH_HEADER, &h, sizeof h);
}

/* Launches a per-row kernel (one work-group of plan.shard.wg per row). */
static adasplash_status asp_shard_rows_launch(asp_chain *chain, const asp_shard_call *c,
                                              const char *name, const asp_arg *args, size_t n) {
  size_t global[1] = {c->rows * (size_t)c->plan.shard.wg}, local[1] = {(size_t)c->plan.shard.wg};
  return asp_launch(chain, c->plan.program, name, args, n, 1, global, local);
}

/* shard_dots: dst[row, j] for the shard's keys of left (layout lq) against right (layout lk). */
static adasplash_status asp_shard_dots(asp_chain *chain, const asp_shard_call *c, asp_layout lq,
                                       asp_layout lk, float scale, cl_mem left, cl_mem right,
                                       cl_mem dst, cl_mem visible) {
  if (c->kv_count == 0) return ADASPLASH_SUCCESS;
  asp_attn_args a = c->args;
  a.q = lq;
  a.k = lk;
  a.scale = scale;
  cl_int kv_offset = c->kv_offset, kv_len = c->pr.d.kv_len, has_visible = visible != NULL;
  asp_arg args[] = {ASP_ARG(a),     ASP_ARG(kv_offset), ASP_ARG(kv_len),  ASP_ARG(left),
                    ASP_ARG(right), ASP_ARG(dst),       ASP_ARG(visible), ASP_ARG(has_visible)};
  size_t global[2] = {(size_t)c->kv_count, c->rows};
  return asp_launch(chain, c->plan.program, "shard_dots", args, sizeof args / sizeof args[0], 2,
                    global, NULL);
}

/* shard_combine: dst [rows][head_dim] = factor * the sum of decode_pv's partials over the
 * shard's splits of w v (w [rows][kv_count] in p_view, v in layout lv). */
static adasplash_status asp_shard_pv(adasplash_context *ctx, asp_chain *chain,
                                     const asp_shard_call *c, asp_layout lv, cl_mem v, cl_mem w,
                                     cl_mem *V, float factor, cl_mem dst) {
  asp_attn_args a = c->args;
  a.v = lv;
  adasplash_status st =
      asp_decode_pv_sum(ctx, &c->local, &a, chain, v, w, V[ASP_SH_VISIBLE], V[ASP_SH_PART]);
  if (st != ADASPLASH_SUCCESS) return st;
  cl_int nsplit = (cl_int)c->nsplit;
  const size_t n = c->rows * (size_t)c->pr.d.head_dim;
  asp_arg args[] = {ASP_ARG(c->args), ASP_ARG(V[ASP_SH_PART]), ASP_ARG(nsplit), ASP_ARG(factor),
                    ASP_ARG(dst)};
  size_t global[1] = {n};
  return asp_launch(chain, c->plan.program, "shard_combine", args, sizeof args / sizeof args[0], 1,
                    global, NULL);
}

/* The row job of the fp32 row program over the shard's [rows][kv_count] matrices. */
static asp_rows_job asp_shard_rows_job(const asp_shard_call *c) {
  asp_rows_job job;
  memset(&job, 0, sizeof job);
  job.dtype = ADASPLASH_F32;
  job.rows = c->rows;
  job.cols = (size_t)c->kv_count;
  job.row_stride = (size_t)c->kv_count;
  job.alpha = c->pr.d.alpha;
  return job;
}

/* Runs the commands `enqueue` puts on a chain over the work buffer's views, waits for them and
 * releases everything. */
typedef adasplash_status (*asp_shard_enqueue_fn)(adasplash_context *ctx, asp_chain *chain,
                                                 const asp_shard_call *c, cl_mem *V,
                                                 const void *extra);

static adasplash_status asp_shard_run(adasplash_context *ctx, cl_command_queue queue, cl_mem work,
                                      asp_shard_call *c, asp_shard_enqueue_fn enqueue,
                                      const void *extra) {
  for (int i = 0; i < ASP_SH_COUNT; ++i) c->sec[i].buffer = work;
  cl_mem V[ASP_SH_COUNT] = {NULL};
  adasplash_status st = asp_views_make(ctx, c->sec, ASP_SH_COUNT, V);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, asp_queue_or_default(ctx, queue), 0, NULL);
  st = enqueue(ctx, &chain, c, V, extra);
  cl_event done = NULL;
  st = asp_chain_end(&chain, st, &done);
  if (st == ADASPLASH_SUCCESS) {
    cl_int err = clWaitForEvents(1, &done);
    if (err != CL_SUCCESS) st = asp_fail_cl(ctx, err, "waiting for the shard's kernels");
  }
  if (done) clReleaseEvent(done);
  asp_views_release(V, ASP_SH_COUNT);
  return st;
}

/* ---- step 1: scores and row max ---------------------------------------------------------------
 */

typedef struct asp_shard_inputs {
  cl_mem q, k, v, dout, dk, dv;
  cl_int round;
} asp_shard_inputs;

static adasplash_status asp_shard_enqueue_max(adasplash_context *ctx, asp_chain *chain,
                                              const asp_shard_call *c, cl_mem *V,
                                              const void *extra) {
  (void)ctx;
  const asp_shard_inputs *in = (const asp_shard_inputs *)extra;
  adasplash_status st = ADASPLASH_SUCCESS;
  if (c->kv_count == 0) {
    const cl_int zero = 0;
    st = asp_chain_fill(chain, V[ASP_SH_VISIBLE], &zero, sizeof zero, 0, c->rows * 4);
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_dots(chain, c, c->args.q, c->args.k, c->args.scale, in->q, in->k,
                        V[ASP_SH_SCORES], V[ASP_SH_VISIBLE]);
  if (st == ADASPLASH_SUCCESS) {
    asp_arg args[] = {ASP_ARG(c->args), ASP_ARG(V[ASP_SH_SCORES]), ASP_ARG(V[ASP_SH_VISIBLE]),
                      ASP_ARG(V[ASP_SH_OWNMAX])};
    st = asp_shard_rows_launch(chain, c, "shard_max", args, sizeof args / sizeof args[0]);
  }
  return st;
}

adasplash_status adasplash_attention_shard_max(adasplash_context *ctx,
                                               const adasplash_attention_desc *desc,
                                               const adasplash_shard *shard, cl_command_queue queue,
                                               cl_mem q, cl_mem k, cl_mem work, float *row_max,
                                               size_t max_count) {
  static const char fn[] = "adasplash_attention_shard_max";
  asp_shard_call c;
  adasplash_status st = asp_shard_begin(ctx, desc, shard, fn, queue, work, &c, NULL);
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &c.pr, q, "q", 'q');
  if (st == ADASPLASH_SUCCESS && c.kv_count > 0)
    st = asp_check_buffer(ctx, k, "k", c.local.k_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, row_max, max_count, ADASPLASH_SHARD_MAX, "row_max");
  if (st == ADASPLASH_SUCCESS) {
    const asp_region regions[] = {{work, 0, c.work_bytes, "work", 1, 1},
                                  {q, 0, c.pr.q_bytes, "q", 0, 1},
                                  {k, 0, c.local.k_bytes, "k", 0, 1}};
    st = asp_check_overlaps(ctx, fn, regions, sizeof regions / sizeof regions[0]);
  }
  if (st != ADASPLASH_SUCCESS) return st;
  asp_shard_inputs in = {q, k, NULL, NULL, NULL, NULL, 0};
  st = asp_shard_run(ctx, queue, work, &c, asp_shard_enqueue_max, &in);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write_header(ctx, queue, work, &c, ASP_SHARD_SCORED, 0, 0);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_OWNMAX, row_max, c.rows * 4);
  return st;
}

/* ---- step 2: histogram at the merged max ------------------------------------------------------
 */

static adasplash_status asp_shard_enqueue_hist(adasplash_context *ctx, asp_chain *chain,
                                               const asp_shard_call *c, cl_mem *V,
                                               const void *extra) {
  (void)ctx;
  (void)extra;
  asp_arg args[] = {ASP_ARG(c->args), ASP_ARG(V[ASP_SH_SCORES]), ASP_ARG(V[ASP_SH_VISIBLE]),
                    ASP_ARG(V[ASP_SH_MMAX]), ASP_ARG(V[ASP_SH_HIST])};
  adasplash_status st =
      asp_shard_rows_launch(chain, c, "shard_hist", args, sizeof args / sizeof args[0]);
  /* The own counts, kept for the checks of the merged histogram. */
  if (st == ADASPLASH_SUCCESS) {
    cl_event ev = NULL;
    cl_int err = clEnqueueCopyBuffer(chain->queue, V[ASP_SH_HIST], V[ASP_SH_OWNHIST], 0, 0,
                                     c->sec[ASP_SH_HIST].size, chain->last ? 1 : 0,
                                     chain->last ? &chain->last : NULL, &ev);
    if (err != CL_SUCCESS) return asp_fail_cl(chain->ctx, err, "copying the shard's histogram");
    asp_chain_adopt(chain, ev);
  }
  return st;
}

adasplash_status adasplash_attention_shard_histogram(adasplash_context *ctx,
                                                     const adasplash_attention_desc *desc,
                                                     const adasplash_shard *shard,
                                                     cl_command_queue queue, cl_mem work,
                                                     const float *merged_max, size_t max_count,
                                                     float *hist, size_t hist_count) {
  static const char fn[] = "adasplash_attention_shard_histogram";
  asp_shard_call c;
  asp_shard_header h;
  adasplash_status st = asp_shard_begin(ctx, desc, shard, fn, queue, work, &c, &h);
  if (st == ADASPLASH_SUCCESS && h.stage != ASP_SHARD_SCORED)
    st = asp_shard_stage_error(ctx, fn, "adasplash_attention_shard_max");
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, merged_max, max_count, ADASPLASH_SHARD_MAX,
                               "merged_max");
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, hist, hist_count, ADASPLASH_SHARD_HIST, "hist");
  float *own = NULL;
  if (st == ADASPLASH_SUCCESS) {
    own = (float *)malloc(c.rows * sizeof *own);
    if (!own) st = asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: no host memory", fn);
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_OWNMAX, own, c.rows * 4);
  for (size_t r = 0; st == ADASPLASH_SUCCESS && r < c.rows; ++r) {
    const float m = merged_max[r];
    if (isnan(m) || m == INFINITY)
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: merged_max[%zu] = %g: a row max is finite or -inf", fn, r, (double)m);
    else if (own[r] > m)
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: merged_max[%zu] = %g is below this shard's row max %g: not the MAX "
                    "all-reduce of every shard's row_max",
                    fn, r, (double)m, (double)own[r]);
  }
  free(own);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write(ctx, queue, work, &c, ASP_SH_MMAX, merged_max, c.rows * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_run(ctx, queue, work, &c, asp_shard_enqueue_hist, NULL);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write_header(ctx, queue, work, &c, ASP_SHARD_BINNED, 0, 0);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_HIST, hist, hist_count * 4);
  return st;
}

/* ---- step 3: refinement rounds ----------------------------------------------------------------
 */

static adasplash_status asp_shard_enqueue_refine(adasplash_context *ctx, asp_chain *chain,
                                                 const asp_shard_call *c, cl_mem *V,
                                                 const void *extra) {
  (void)ctx;
  const asp_shard_inputs *in = (const asp_shard_inputs *)extra;
  cl_int round = in->round;
  asp_arg args[] = {ASP_ARG(c->args),           ASP_ARG(round),
                    ASP_ARG(V[ASP_SH_MMAX]),    ASP_ARG(V[ASP_SH_HIST]),
                    ASP_ARG(V[ASP_SH_MSUMS]),   ASP_ARG(V[ASP_SH_SCORES]),
                    ASP_ARG(V[ASP_SH_VISIBLE]), ASP_ARG(V[ASP_SH_STATES]),
                    ASP_ARG(V[ASP_SH_SUMS])};
  return asp_shard_rows_launch(chain, c, "shard_refine", args, sizeof args / sizeof args[0]);
}

/* Checks a merged histogram against the merged max and this shard's own counts. */
static adasplash_status asp_shard_check_hist(adasplash_context *ctx, const char *fn,
                                             cl_command_queue queue, cl_mem work,
                                             const asp_shard_call *c, const float *merged) {
  const size_t hr = c->hist_row, W = (hr - 2) / 3;
  float *own = (float *)malloc(c->rows * hr * sizeof *own);
  float *mmax = (float *)malloc(c->rows * sizeof *mmax);
  adasplash_status st = ADASPLASH_SUCCESS;
  if (!own || !mmax)
    st = asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: no host memory", fn);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, c, ASP_SH_OWNHIST, own, c->rows * hr * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, c, ASP_SH_MMAX, mmax, c->rows * 4);
  for (size_t r = 0; st == ADASPLASH_SUCCESS && r < c->rows; ++r) {
    const float *m = merged + r * hr, *o = own + r * hr;
    for (size_t i = 0; i < hr && st == ADASPLASH_SUCCESS; ++i) {
      /* Counts (of bins, valid and non-finite scores) are integers; moment sums are >= 0. */
      const int is_count = i < W || i >= 3 * W;
      if (!(m[i] >= 0.0f) || isinf(m[i]) || (is_count && m[i] != floorf(m[i])) ||
          (is_count && m[i] < o[i]))
        st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                      "%s: merged_hist[%zu] = %g (row %zu) is not the SUM all-reduce of the "
                      "shards' hist (this shard alone has %g there)",
                      fn, r * hr + i, (double)m[i], r, (double)o[i]);
    }
    const float n = m[3 * W], bad = m[3 * W + 1];
    if (st == ADASPLASH_SUCCESS && bad == 0.0f && (n > 0.0f) != (mmax[r] > -INFINITY))
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: row %zu: merged_hist counts %g scores but the merged max was %g", fn, r,
                    (double)n, (double)mmax[r]);
  }
  free(own);
  free(mmax);
  return st;
}

/* Checks merged sums against this shard's sums of the same round (the pending flags agree). */
static adasplash_status asp_shard_check_sums(adasplash_context *ctx, const char *fn,
                                             cl_command_queue queue, cl_mem work,
                                             const asp_shard_call *c, const float *merged) {
  const size_t n = c->rows * ASP_SHARD_SUMS_ROW;
  float *own = (float *)malloc(n * sizeof *own);
  if (!own) return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: no host memory", fn);
  adasplash_status st = asp_shard_read(ctx, queue, work, c, ASP_SH_SUMS, own, n * 4);
  for (size_t r = 0; st == ADASPLASH_SUCCESS && r < c->rows; ++r) {
    const float *m = merged + r * ASP_SHARD_SUMS_ROW, *o = own + r * ASP_SHARD_SUMS_ROW;
    for (int i = 0; i < ASP_SHARD_SUMS_ROW && st == ADASPLASH_SUCCESS; ++i)
      if (!isfinite(m[i]) || m[i] < 0.0f)
        st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                      "%s: sums[%zu] = %g: merged sums are finite and >= 0", fn,
                      r * ASP_SHARD_SUMS_ROW + (size_t)i, (double)m[i]);
    const float act = m[ASP_SHARD_ACTIVE];
    if (st == ADASPLASH_SUCCESS &&
        (act != floorf(act) || (act > 0.0f) != (o[ASP_SHARD_ACTIVE] > 0.0f)))
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: row %zu: the merged sums say %g shards refine it, this shard %s: not the "
                    "SUM all-reduce of the previous round's sums",
                    fn, r, (double)act, o[ASP_SHARD_ACTIVE] > 0.0f ? "does" : "does not");
  }
  free(own);
  return st;
}

adasplash_status adasplash_attention_shard_refine(adasplash_context *ctx,
                                                  const adasplash_attention_desc *desc,
                                                  const adasplash_shard *shard,
                                                  cl_command_queue queue, cl_mem work, int round,
                                                  const float *merged_hist, size_t hist_count,
                                                  float *sums, size_t sums_count) {
  static const char fn[] = "adasplash_attention_shard_refine";
  asp_shard_call c;
  asp_shard_header h;
  adasplash_status st = asp_shard_begin(ctx, desc, shard, fn, queue, work, &c, &h);
  if (st == ADASPLASH_SUCCESS && round < 0)
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: round=%d must be >= 0", fn, round);
  if (st == ADASPLASH_SUCCESS && round == 0 && h.stage != ASP_SHARD_BINNED)
    st = asp_shard_stage_error(ctx, fn, "adasplash_attention_shard_histogram for round 0");
  if (st == ADASPLASH_SUCCESS && round > 0 &&
      (h.stage != ASP_SHARD_REFINING || h.round != round - 1))
    st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                  "%s: round=%d out of sequence: the last round this shard ran is %d", fn, round,
                  h.stage == ASP_SHARD_REFINING ? h.round : -1);
  if (st == ADASPLASH_SUCCESS && round == 0)
    st = asp_shard_check_array(ctx, fn, &c, merged_hist, hist_count, ADASPLASH_SHARD_HIST,
                               "merged_hist");
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, sums, sums_count, ADASPLASH_SHARD_SUMS, "sums");
  if (st == ADASPLASH_SUCCESS && round == 0)
    st = asp_shard_check_hist(ctx, fn, queue, work, &c, merged_hist);
  if (st == ADASPLASH_SUCCESS && round > 0)
    st = asp_shard_check_sums(ctx, fn, queue, work, &c, sums);
  if (st == ADASPLASH_SUCCESS && round == 0)
    st = asp_shard_write(ctx, queue, work, &c, ASP_SH_HIST, merged_hist, hist_count * 4);
  if (st == ADASPLASH_SUCCESS && round > 0)
    st = asp_shard_write(ctx, queue, work, &c, ASP_SH_MSUMS, sums, sums_count * 4);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_shard_inputs in = {NULL, NULL, NULL, NULL, NULL, NULL, (cl_int)round};
  float *own = (float *)malloc(sums_count * sizeof *own);
  if (!own) return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "%s: no host memory", fn);
  st = asp_shard_run(ctx, queue, work, &c, asp_shard_enqueue_refine, &in);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_SUMS, own, sums_count * 4);
  int pending = 0;
  for (size_t r = 0; st == ADASPLASH_SUCCESS && r < c.rows; ++r)
    pending += own[r * ASP_SHARD_SUMS_ROW + ASP_SHARD_ACTIVE] > 0.0f;
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write_header(ctx, queue, work, &c, ASP_SHARD_REFINING, round, pending);
  if (st == ADASPLASH_SUCCESS) memcpy(sums, own, sums_count * sizeof *own);
  free(own);
  return st;
}

adasplash_status adasplash_attention_shard_pending(const adasplash_shard_sizes *sizes,
                                                   const float *merged_sums, size_t *pending) {
  static const char fn[] = "adasplash_attention_shard_pending";
  if (!sizes || !merged_sums || !pending)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                    !sizes ? "sizes" : (!merged_sums ? "merged_sums" : "pending"));
  if (sizes->struct_size != sizeof *sizes || sizes->sums_per_row != ASP_SHARD_SUMS_ROW ||
      sizes->count[ADASPLASH_SHARD_SUMS] != sizes->rows * ASP_SHARD_SUMS_ROW)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: sizes was not filled by adasplash_attention_shard_sizes", fn);
  size_t n = 0;
  for (size_t r = 0; r < sizes->rows; ++r)
    n += merged_sums[r * ASP_SHARD_SUMS_ROW + ASP_SHARD_ACTIVE] > 0.0f;
  *pending = n;
  return ADASPLASH_SUCCESS;
}

/* ---- step 4: probabilities and the partial output ---------------------------------------------
 */

static adasplash_status asp_shard_enqueue_output(adasplash_context *ctx, asp_chain *chain,
                                                 const asp_shard_call *c, cl_mem *V,
                                                 const void *extra) {
  const asp_shard_inputs *in = (const asp_shard_inputs *)extra;
  asp_arg args[] = {ASP_ARG(c->args), ASP_ARG(V[ASP_SH_STATES]), ASP_ARG(V[ASP_SH_VISIBLE]),
                    ASP_ARG(V[ASP_SH_SCORES]), ASP_ARG(V[ASP_SH_PSUM])};
  adasplash_status st =
      asp_shard_rows_launch(chain, c, "shard_probs", args, sizeof args / sizeof args[0]);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_pv(ctx, chain, c, c->args.v, in->v, V[ASP_SH_SCORES], V, 1.0f, V[ASP_SH_OUT]);
  return st;
}

adasplash_status adasplash_attention_shard_output(adasplash_context *ctx,
                                                  const adasplash_attention_desc *desc,
                                                  const adasplash_shard *shard,
                                                  cl_command_queue queue, cl_mem v, cl_mem work,
                                                  float *out, size_t out_count, float *psum,
                                                  size_t psum_count) {
  static const char fn[] = "adasplash_attention_shard_output";
  asp_shard_call c;
  asp_shard_header h;
  adasplash_status st = asp_shard_begin(ctx, desc, shard, fn, queue, work, &c, &h);
  if (st == ADASPLASH_SUCCESS && (h.stage != ASP_SHARD_REFINING || h.pending != 0))
    st = h.stage == ASP_SHARD_REFINING
             ? asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                        "%s: %d rows still refine tau: run adasplash_attention_shard_refine until "
                        "adasplash_attention_shard_pending reports none",
                        fn, h.pending)
             : asp_shard_stage_error(ctx, fn, "the last adasplash_attention_shard_refine round");
  if (st == ADASPLASH_SUCCESS && c.kv_count > 0)
    st = asp_check_buffer(ctx, v, "v", c.local.v_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, out, out_count, ADASPLASH_SHARD_OUT, "out");
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, psum, psum_count, ADASPLASH_SHARD_PSUM, "psum");
  if (st == ADASPLASH_SUCCESS) {
    const asp_region regions[] = {{work, 0, c.work_bytes, "work", 1, 1},
                                  {v, 0, c.local.v_bytes, "v", 0, 1}};
    st = asp_check_overlaps(ctx, fn, regions, sizeof regions / sizeof regions[0]);
  }
  if (st != ADASPLASH_SUCCESS) return st;
  asp_shard_inputs in = {NULL, NULL, v, NULL, NULL, NULL, 0};
  st = asp_shard_run(ctx, queue, work, &c, asp_shard_enqueue_output, &in);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write_header(ctx, queue, work, &c, ASP_SHARD_OUTPUT, 0, 0);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_OUT, out, out_count * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_PSUM, psum, psum_count * 4);
  return st;
}

/* ---- steps 5 and 6: backward ------------------------------------------------------------------
 */

static adasplash_status asp_shard_enqueue_grad_sums(adasplash_context *ctx, asp_chain *chain,
                                                    const asp_shard_call *c, cl_mem *V,
                                                    const void *extra) {
  const asp_shard_inputs *in = (const asp_shard_inputs *)extra;
  adasplash_status st =
      asp_shard_dots(chain, c, c->args.o, c->args.v, 1.0f, in->dout, in->v, V[ASP_SH_DP], NULL);
  const asp_rows_job job = asp_shard_rows_job(c);
  if (st == ADASPLASH_SUCCESS)
    st = asp_rows_backward_sums(ctx, &job, chain, V[ASP_SH_SCORES], V[ASP_SH_DP], V[ASP_SH_GRAD]);
  return st;
}

adasplash_status adasplash_attention_shard_backward_sums(adasplash_context *ctx,
                                                         const adasplash_attention_desc *desc,
                                                         const adasplash_shard *shard,
                                                         cl_command_queue queue, cl_mem v,
                                                         cl_mem dout, cl_mem work, float *grad_sums,
                                                         size_t grad_count) {
  static const char fn[] = "adasplash_attention_shard_backward_sums";
  asp_shard_call c;
  asp_shard_header h;
  adasplash_status st = asp_shard_begin(ctx, desc, shard, fn, queue, work, &c, &h);
  if (st == ADASPLASH_SUCCESS && h.stage < ASP_SHARD_OUTPUT)
    st = asp_shard_stage_error(ctx, fn, "adasplash_attention_shard_output");
  if (st == ADASPLASH_SUCCESS && c.kv_count > 0)
    st = asp_check_buffer(ctx, v, "v", c.local.v_bytes);
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &c.pr, dout, "dout", 'o');
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, grad_sums, grad_count, ADASPLASH_SHARD_GRAD,
                               "grad_sums");
  if (st == ADASPLASH_SUCCESS) {
    const asp_region regions[] = {{work, 0, c.work_bytes, "work", 1, 1},
                                  {v, 0, c.local.v_bytes, "v", 0, 1},
                                  {dout, 0, c.pr.o_bytes, "dout", 0, 1}};
    st = asp_check_overlaps(ctx, fn, regions, sizeof regions / sizeof regions[0]);
  }
  if (st != ADASPLASH_SUCCESS) return st;
  asp_shard_inputs in = {NULL, NULL, v, dout, NULL, NULL, 0};
  st = asp_shard_run(ctx, queue, work, &c, asp_shard_enqueue_grad_sums, &in);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write_header(ctx, queue, work, &c, ASP_SHARD_GRADSUMS, 0, 0);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_GRAD, grad_sums, grad_count * 4);
  return st;
}

static adasplash_status asp_shard_enqueue_backward(adasplash_context *ctx, asp_chain *chain,
                                                   const asp_shard_call *c, cl_mem *V,
                                                   const void *extra) {
  const asp_shard_inputs *in = (const asp_shard_inputs *)extra;
  const asp_rows_job job = asp_shard_rows_job(c);
  /* dz = s (dp - delta) in place of dp, delta from the merged sums. */
  adasplash_status st = asp_rows_backward_apply(ctx, &job, chain, V[ASP_SH_SCORES], V[ASP_SH_DP],
                                                V[ASP_SH_DP], V[ASP_SH_GRAD]);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_pv(ctx, chain, c, c->args.k, in->k, V[ASP_SH_DP], V, c->args.scale,
                      V[ASP_SH_OUT]);
  if (st == ADASPLASH_SUCCESS && c->kv_count > 0) {
    asp_arg args[] = {
        ASP_ARG(c->args),      ASP_ARG(in->q),  ASP_ARG(in->dout), ASP_ARG(V[ASP_SH_SCORES]),
        ASP_ARG(V[ASP_SH_DP]), ASP_ARG(in->dk), ASP_ARG(in->dv)};
    size_t global[3] = {(size_t)c->kv_count * (size_t)c->pr.d.head_dim, (size_t)c->pr.d.kv_heads,
                        (size_t)c->pr.d.batch};
    st = asp_launch(chain, c->plan.program, "shard_dkdv", args, sizeof args / sizeof args[0], 3,
                    global, NULL);
  }
  return st;
}

adasplash_status adasplash_attention_shard_backward(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem q, cl_mem k, cl_mem dout, cl_mem work,
    const float *merged_grad_sums, size_t grad_count, cl_mem dk, cl_mem dv, float *dq,
    size_t dq_count) {
  static const char fn[] = "adasplash_attention_shard_backward";
  asp_shard_call c;
  asp_shard_header h;
  adasplash_status st = asp_shard_begin(ctx, desc, shard, fn, queue, work, &c, &h);
  if (st == ADASPLASH_SUCCESS && h.stage != ASP_SHARD_GRADSUMS)
    st = asp_shard_stage_error(ctx, fn, "adasplash_attention_shard_backward_sums");
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &c.pr, q, "q", 'q');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, &c.pr, dout, "dout", 'o');
  if (st == ADASPLASH_SUCCESS && c.kv_count > 0)
    st = asp_check_buffer(ctx, k, "k", c.local.k_bytes);
  if (st == ADASPLASH_SUCCESS && c.kv_count > 0)
    st = asp_check_buffer(ctx, dk, "dk", c.local.k_bytes);
  if (st == ADASPLASH_SUCCESS && c.kv_count > 0)
    st = asp_check_buffer(ctx, dv, "dv", c.local.v_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, merged_grad_sums, grad_count, ADASPLASH_SHARD_GRAD,
                               "merged_grad_sums");
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_check_array(ctx, fn, &c, dq, dq_count, ADASPLASH_SHARD_DQ, "dq");
  for (size_t r = 0; st == ADASPLASH_SUCCESS && r < c.rows; ++r) {
    const float s = merged_grad_sums[r * ASP_SHARD_GRAD_ROW];
    if (s < 0.0f || isinf(s))
      st = asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: merged_grad_sums[%zu] = %g: a sum of p^(2-alpha) is >= 0 and finite (or "
                    "NaN for a row with non-finite scores)",
                    fn, r * ASP_SHARD_GRAD_ROW, (double)s);
  }
  if (st == ADASPLASH_SUCCESS) {
    const asp_region regions[] = {
        {work, 0, c.work_bytes, "work", 1, 1}, {q, 0, c.pr.q_bytes, "q", 0, 1},
        {k, 0, c.local.k_bytes, "k", 0, 1},    {dout, 0, c.pr.o_bytes, "dout", 0, 1},
        {dk, 0, c.local.k_bytes, "dk", 1, 1},  {dv, 0, c.local.v_bytes, "dv", 1, 1}};
    st = asp_check_overlaps(ctx, fn, regions, sizeof regions / sizeof regions[0]);
  }
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write(ctx, queue, work, &c, ASP_SH_GRAD, merged_grad_sums, grad_count * 4);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_shard_inputs in = {q, k, NULL, dout, dk, dv, 0};
  st = asp_shard_run(ctx, queue, work, &c, asp_shard_enqueue_backward, &in);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_write_header(ctx, queue, work, &c, ASP_SHARD_BACKWARD, 0, 0);
  if (st == ADASPLASH_SUCCESS)
    st = asp_shard_read(ctx, queue, work, &c, ASP_SH_OUT, dq, dq_count * 4);
  return st;
}

/* ---- host merge --------------------------------------------------------------------------------
 */

adasplash_status adasplash_shard_merge(const adasplash_shard_sizes *sizes,
                                       adasplash_shard_array array, float *dst, const float *src) {
  static const char fn[] = "adasplash_shard_merge";
  if (!sizes || !dst || !src)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                    !sizes ? "sizes" : (!dst ? "dst" : "src"));
  if (sizes->struct_size != sizeof *sizes)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: sizes->struct_size=%zu, expected %zu", fn, sizes->struct_size,
                    sizeof *sizes);
  if ((int)array < 0 || (int)array > (int)ADASPLASH_SHARD_DQ)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: array=%d is not a shard array", fn,
                    (int)array);
  const size_t n = sizes->count[array];
  if (array == ADASPLASH_SHARD_MAX) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i] > dst[i] ? src[i] : dst[i];
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] += src[i];
  }
  return ADASPLASH_SUCCESS;
}
