/*
 * entmax_rows.c - host side of the row-wise alpha-entmax operator: argument validation, the launch
 * plan (work-group size, bins, row caching in local memory, segmenting long rows), and the
 * enqueueing of the forward, backward and softmax-baseline kernels of cl/entmax_rows.cl.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entmax_rows.h"

#define ASP_ROWS_VPT 4
#define ASP_ROWS_NSUM 8

static const char *const asp_rows_kernels[] = {
    "entmax_rows_forward", "entmax_seg_hist",      "entmax_seg_start",  "entmax_seg_solve",
    "entmax_seg_sweep",    "entmax_seg_step",      "entmax_seg_output", "entmax_rows_backward",
    "entmax_seg_bwd_sums", "entmax_seg_bwd_apply", "entmax_sum_floats", "softmax_rows_forward"};

static asp_variant_key asp_rows_key(const adasplash_context *ctx, adasplash_dtype dtype) {
  return asp_variant_key_of(ctx, ASP_PROGRAM_ENTMAX_ROWS, dtype, 0, 0);
}

/* Static local memory of the forward kernel (histogram, reductions, candidates, state). */
static size_t asp_rows_static_local(int wg, int bins) {
  return (size_t)3 * (size_t)(bins + 1) * 4 + (size_t)ASP_ROWS_NSUM * (size_t)wg * 4 +
         ASP_ROWS_KMAX * 4 + 256;
}

/* Work-items and bins of the row program before the compiled kernels' limits (which may halve the
 * work-items, never the bins): a function of the tuning alone. */
static void asp_rows_shape(const asp_tuning *t, int *wg_out, int *bins_out) {
  int wg = t->rows_wg;
  while ((unsigned long)wg > t->max_wg && wg > 16) wg /= 2;
  int bins = t->rows_bins;
  while (asp_rows_static_local(wg, bins) + 1024 > t->local_mem && bins > 4) bins /= 2;
  while (asp_rows_static_local(wg, bins) + 1024 > t->local_mem && wg > 16) wg /= 2;
  *wg_out = wg;
  *bins_out = bins;
}

int asp_rows_bins(const adasplash_context *ctx) {
  int wg, bins;
  asp_rows_shape(&ctx->tuning, &wg, &bins);
  return bins;
}

adasplash_status asp_rows_prepare(adasplash_context *ctx, adasplash_dtype dtype) {
  const asp_variant_key key = asp_rows_key(ctx, dtype);
  asp_plan plan;
  if (asp_plan_find(ctx, &key, &plan)) return ADASPLASH_SUCCESS;
  const asp_tuning *t = &ctx->tuning;
  int wg, bins;
  asp_rows_shape(t, &wg, &bins);
  if (asp_rows_static_local(wg, bins) > t->local_mem)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "row entmax needs %zu bytes of local memory, the device offers %lu",
                    asp_rows_static_local(wg, bins), t->local_mem);
  for (;;) {
    asp_defines d;
    asp_defines_init(&d, ctx, &key);
    asp_defines_add_int(&d, "ASP_WG_BRACKET", t->rows_wg_bracket);
    asp_defines_add_int(&d, "ASP_WG", wg);
    asp_defines_add_int(&d, "ASP_BINS", bins);
    asp_defines_add_int(&d, "ASP_KMAX", ASP_ROWS_KMAX);
    asp_defines_add_int(&d, "ASP_VPT", ASP_ROWS_VPT);
    asp_program *program = NULL;
    adasplash_status st = asp_variant_program(ctx, &key, &d, &program);
    if (st != ADASPLASH_SUCCESS) return st;
    /* Every kernel must accept the work-group size it was compiled for (registers may limit it). */
    size_t fit = (size_t)wg;
    for (size_t i = 0; i < sizeof asp_rows_kernels / sizeof asp_rows_kernels[0]; ++i) {
      const asp_kernel *k = asp_program_kernel(program, asp_rows_kernels[i]);
      if (!k)
        return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "kernel %s missing from entmax_rows.cl",
                        asp_rows_kernels[i]);
      if (strcmp(asp_rows_kernels[i], "entmax_seg_start") != 0 &&
          strcmp(asp_rows_kernels[i], "entmax_seg_step") != 0 && k->max_work_group_size < fit)
        fit = k->max_work_group_size;
    }
    if (fit >= (size_t)wg) {
      memset(&plan, 0, sizeof plan);
      plan.key = key;
      plan.program = program;
      const asp_rows_plan r = {wg, bins, asp_rows_static_local(wg, bins)};
      plan.rows = r;
      return asp_plan_store(ctx, &plan, &plan);
    }
    if (wg <= 16)
      return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                      "row entmax kernels accept only %zu work-items on this device", fit);
    wg /= 2;
  }
}

static adasplash_status asp_rows_find_plan(adasplash_context *ctx, adasplash_dtype dtype,
                                           asp_plan *plan) {
  const asp_variant_key key = asp_rows_key(ctx, dtype);
  if (!asp_plan_find(ctx, &key, plan))
    return asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                    "row entmax kernels for dtype %d are not compiled: call "
                    "adasplash_entmax_prepare (or adasplash_warmup) first",
                    (int)dtype);
  return ADASPLASH_SUCCESS;
}

/* 2^qbits so that (count of a bin) * qscale < 2^32 for any bin of a row of `cols` entries. */
float asp_rows_qscale(size_t cols) {
  int bits = 0;
  while (bits < 40 && ((size_t)1 << bits) <= cols) ++bits;
  int q = 31 - bits;
  if (q > 16) q = 16;
  if (q < 0) q = 0;
  return (float)(1u << q);
}

typedef struct asp_rows_common_args {
  cl_ulong offset, row_stride;
  cl_int rows, cols;
  cl_float alpha;
  cl_mem alpha_buf;
  cl_int has_alpha;
  cl_mem valid;
  cl_int has_valid;
} asp_rows_common_args;

static asp_rows_common_args asp_rows_args(const asp_rows_job *job) {
  asp_rows_common_args a;
  a.offset = (cl_ulong)job->offset;
  a.row_stride = (cl_ulong)job->row_stride;
  a.rows = (cl_int)job->rows;
  a.cols = (cl_int)job->cols;
  a.alpha = job->alpha;
  a.alpha_buf = job->alpha_buf;
  a.has_alpha = job->alpha_buf != NULL;
  a.valid = job->valid_cols;
  a.has_valid = job->valid_cols != NULL;
  return a;
}

static size_t asp_rows_seg_cols(const adasplash_context *ctx, const asp_rows_job *job) {
  return job->seg_cols ? job->seg_cols : (size_t)ctx->tuning.rows_seg_cols;
}

static size_t asp_rows_segments(const adasplash_context *ctx, const asp_rows_job *job) {
  const size_t seg = asp_rows_seg_cols(ctx, job), cols = job->cols;
  return cols > seg ? (cols + seg - 1) / seg : 1;
}

adasplash_status asp_rows_forward(adasplash_context *ctx, const asp_rows_job *job, asp_chain *chain,
                                  cl_mem x, cl_mem y, cl_mem sweeps) {
  asp_plan plan;
  adasplash_status st = asp_rows_find_plan(ctx, job->dtype, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const int wg = plan.rows.wg;
  asp_rows_common_args a = asp_rows_args(job);
  cl_float tol = job->tolerance;
  cl_int max_iter = job->max_iter, use_hist = job->use_hist;
  cl_float qscale = asp_rows_qscale(job->cols);
  cl_int has_sweeps = sweeps != NULL;
  size_t nseg = asp_rows_segments(ctx, job);
  size_t local[2] = {(size_t)wg, 1};
  asp_program *p = plan.program;

  if (nseg == 1) {
    /* Cache the row in local memory when it fits next to the kernel's static arrays. */
    size_t avail = ctx->tuning.local_mem > plan.rows.static_local + 1024
                       ? ctx->tuning.local_mem - plan.rows.static_local - 1024
                       : 0;
    cl_int cache_cols = 0;
    if (ctx->tuning.rows_cache && job->cols * 4 <= avail) cache_cols = (cl_int)job->cols;
    asp_arg args[] = {ASP_ARG(x),           ASP_ARG(y),
                      ASP_ARG(a.offset),    ASP_ARG(a.row_stride),
                      ASP_ARG(a.rows),      ASP_ARG(a.cols),
                      ASP_ARG(a.alpha),     ASP_ARG(a.alpha_buf),
                      ASP_ARG(a.has_alpha), ASP_ARG(a.valid),
                      ASP_ARG(a.has_valid), ASP_ARG(tol),
                      ASP_ARG(max_iter),    ASP_ARG(use_hist),
                      ASP_ARG(qscale),      ASP_ARG(sweeps),
                      ASP_ARG(has_sweeps),  ASP_LOCAL(cache_cols ? (size_t)cache_cols * 4 : 4),
                      ASP_ARG(cache_cols)};
    size_t global[1] = {job->rows * (size_t)wg};
    return asp_launch(chain, p, "entmax_rows_forward", args, sizeof args / sizeof args[0], 1,
                      global, local);
  }

  /* Long rows: segments of seg_cols columns, histograms merged per row, sweeps as separate
   * launches (rows that converged return at once). */
  cl_int seg_cols = (cl_int)asp_rows_seg_cols(ctx, job), cnseg = (cl_int)nseg;
  const size_t w = (size_t)plan.rows.bins + 1;
  size_t n_rs = job->rows * nseg;
  /* Scratch: per segment max and histogram anchor, info (top, count, bad) and window; per row
   * solver state, partial sums per segment, candidate count and candidates. */
  const size_t sizes[7] = {n_rs * 8,
                           n_rs * 12,
                           n_rs * 3 * w * 4,
                           job->rows * ASP_ROWS_STATE_BYTES,
                           n_rs * ASP_ROWS_NSUM * 4,
                           job->rows * 4,
                           job->rows * ASP_ROWS_KMAX * 4};
  cl_mem parts[7] = {NULL};
  for (int i = 0; i < 7 && st == ADASPLASH_SUCCESS; ++i)
    st = asp_create_buffer(ctx, sizes[i], &parts[i]);
  cl_mem cands = parts[6];
  size_t gseg[2] = {nseg * (size_t)wg, job->rows};
  size_t grow[1] = {job->rows};
  size_t lone[1] = {1};
  if (st == ADASPLASH_SUCCESS) {
    asp_arg args[] = {
        ASP_ARG(x),       ASP_ARG(a.offset),    ASP_ARG(a.row_stride), ASP_ARG(a.rows),
        ASP_ARG(a.cols),  ASP_ARG(a.alpha),     ASP_ARG(a.alpha_buf),  ASP_ARG(a.has_alpha),
        ASP_ARG(a.valid), ASP_ARG(a.has_valid), ASP_ARG(seg_cols),     ASP_ARG(cnseg),
        ASP_ARG(qscale),  ASP_ARG(parts[0]),    ASP_ARG(parts[1]),     ASP_ARG(parts[2])};
    st =
        asp_launch(chain, p, "entmax_seg_hist", args, sizeof args / sizeof args[0], 2, gseg, local);
  }
  if (st == ADASPLASH_SUCCESS) {
    asp_arg args[] = {ASP_ARG(a.rows),      ASP_ARG(a.alpha),  ASP_ARG(a.alpha_buf),
                      ASP_ARG(a.has_alpha), ASP_ARG(cnseg),    ASP_ARG(qscale),
                      ASP_ARG(use_hist),    ASP_ARG(parts[0]), ASP_ARG(parts[1]),
                      ASP_ARG(parts[2]),    ASP_ARG(parts[3]), ASP_ARG(parts[5])};
    st =
        asp_launch(chain, p, "entmax_seg_start", args, sizeof args / sizeof args[0], 1, grow, lone);
  }
  for (int it = 0; it < max_iter && st == ADASPLASH_SUCCESS; ++it) {
    asp_arg args[] = {
        ASP_ARG(x),        ASP_ARG(a.offset),    ASP_ARG(a.row_stride), ASP_ARG(a.rows),
        ASP_ARG(a.cols),   ASP_ARG(a.alpha),     ASP_ARG(a.alpha_buf),  ASP_ARG(a.has_alpha),
        ASP_ARG(a.valid),  ASP_ARG(a.has_valid), ASP_ARG(seg_cols),     ASP_ARG(cnseg),
        ASP_ARG(parts[3]), ASP_ARG(parts[4]),    ASP_ARG(parts[5]),     ASP_ARG(cands)};
    st = asp_launch(chain, p, "entmax_seg_sweep", args, sizeof args / sizeof args[0], 2, gseg,
                    local);
    if (st != ADASPLASH_SUCCESS) break;
    asp_arg args2[] = {ASP_ARG(a.rows),      ASP_ARG(a.alpha),  ASP_ARG(a.alpha_buf),
                       ASP_ARG(a.has_alpha), ASP_ARG(cnseg),    ASP_ARG(tol),
                       ASP_ARG(max_iter),    ASP_ARG(parts[3]), ASP_ARG(parts[4]),
                       ASP_ARG(parts[5]),    ASP_ARG(cands)};
    st = asp_launch(chain, p, "entmax_seg_step", args2, sizeof args2 / sizeof args2[0], 1, grow,
                    lone);
  }
  if (st == ADASPLASH_SUCCESS) {
    asp_arg args[] = {
        ASP_ARG(x),           ASP_ARG(y),        ASP_ARG(a.offset),    ASP_ARG(a.row_stride),
        ASP_ARG(a.rows),      ASP_ARG(a.cols),   ASP_ARG(a.alpha),     ASP_ARG(a.alpha_buf),
        ASP_ARG(a.has_alpha), ASP_ARG(a.valid),  ASP_ARG(a.has_valid), ASP_ARG(seg_cols),
        ASP_ARG(cnseg),       ASP_ARG(parts[3]), ASP_ARG(sweeps),      ASP_ARG(has_sweeps)};
    st = asp_launch(chain, p, "entmax_seg_output", args, sizeof args / sizeof args[0], 2, gseg,
                    local);
  }
  for (int i = 0; i < 7; ++i)
    if (parts[i]) clReleaseMemObject(parts[i]);
  return st;
}

adasplash_status asp_rows_seg_solve(adasplash_context *ctx, const asp_rows_job *job,
                                    asp_chain *chain, cl_mem x, size_t nseg, cl_mem seg_max,
                                    cl_mem seg_info, cl_mem seg_hist, cl_mem states,
                                    int verify_exact) {
  asp_plan plan;
  adasplash_status st = asp_rows_find_plan(ctx, job->dtype, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  if (job->rows == 0) return ADASPLASH_SUCCESS;
  asp_rows_common_args a = asp_rows_args(job);
  cl_int cnseg = (cl_int)nseg, use_hist = job->use_hist, max_iter = job->max_iter,
         verify = verify_exact;
  cl_float tol = job->tolerance, qscale = asp_rows_qscale(job->cols);
  asp_arg args[] = {
      ASP_ARG(x),        ASP_ARG(a.offset),    ASP_ARG(a.row_stride), ASP_ARG(a.rows),
      ASP_ARG(a.cols),   ASP_ARG(a.alpha),     ASP_ARG(a.alpha_buf),  ASP_ARG(a.has_alpha),
      ASP_ARG(a.valid),  ASP_ARG(a.has_valid), ASP_ARG(cnseg),        ASP_ARG(qscale),
      ASP_ARG(use_hist), ASP_ARG(tol),         ASP_ARG(max_iter),     ASP_ARG(verify),
      ASP_ARG(seg_max),  ASP_ARG(seg_info),    ASP_ARG(seg_hist),     ASP_ARG(states)};
  size_t global[1] = {job->rows * (size_t)plan.rows.wg}, local[1] = {(size_t)plan.rows.wg};
  return asp_launch(chain, plan.program, "entmax_seg_solve", args, sizeof args / sizeof args[0], 1,
                    global, local);
}

adasplash_status asp_rows_backward(adasplash_context *ctx, const asp_rows_job *job,
                                   asp_chain *chain, cl_mem y, cl_mem dy, cl_mem dx,
                                   cl_mem dalpha_rows) {
  asp_plan plan;
  adasplash_status st = asp_rows_find_plan(ctx, job->dtype, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const int wg = plan.rows.wg;
  asp_rows_common_args a = asp_rows_args(job);
  cl_int has_dalpha = dalpha_rows != NULL;
  size_t nseg = asp_rows_segments(ctx, job);
  asp_program *p = plan.program;
  if (nseg == 1) {
    asp_arg args[] = {ASP_ARG(y),           ASP_ARG(dy),           ASP_ARG(dx),
                      ASP_ARG(a.offset),    ASP_ARG(a.row_stride), ASP_ARG(a.rows),
                      ASP_ARG(a.cols),      ASP_ARG(a.alpha),      ASP_ARG(a.alpha_buf),
                      ASP_ARG(a.has_alpha), ASP_ARG(dalpha_rows),  ASP_ARG(has_dalpha)};
    size_t global[1] = {job->rows * (size_t)wg}, local[1] = {(size_t)wg};
    return asp_launch(chain, p, "entmax_rows_backward", args, sizeof args / sizeof args[0], 1,
                      global, local);
  }
  cl_int seg_cols = (cl_int)asp_rows_seg_cols(ctx, job), cnseg = (cl_int)nseg;
  cl_mem partials = NULL;
  st = asp_create_buffer(ctx, job->rows * nseg * 5 * 4, &partials);
  if (st != ADASPLASH_SUCCESS) return st;
  size_t gseg[2] = {nseg * (size_t)wg, job->rows};
  size_t local[2] = {(size_t)wg, 1};
  asp_arg args[] = {
      ASP_ARG(y),           ASP_ARG(dy),       ASP_ARG(a.offset), ASP_ARG(a.row_stride),
      ASP_ARG(a.rows),      ASP_ARG(a.cols),   ASP_ARG(a.alpha),  ASP_ARG(a.alpha_buf),
      ASP_ARG(a.has_alpha), ASP_ARG(seg_cols), ASP_ARG(cnseg),    ASP_ARG(partials)};
  st = asp_launch(chain, p, "entmax_seg_bwd_sums", args, sizeof args / sizeof args[0], 2, gseg,
                  local);
  if (st == ADASPLASH_SUCCESS) {
    asp_arg args2[] = {ASP_ARG(y),           ASP_ARG(dy),           ASP_ARG(dx),
                       ASP_ARG(a.offset),    ASP_ARG(a.row_stride), ASP_ARG(a.rows),
                       ASP_ARG(a.cols),      ASP_ARG(a.alpha),      ASP_ARG(a.alpha_buf),
                       ASP_ARG(a.has_alpha), ASP_ARG(seg_cols),     ASP_ARG(cnseg),
                       ASP_ARG(partials),    ASP_ARG(dalpha_rows),  ASP_ARG(has_dalpha)};
    st = asp_launch(chain, p, "entmax_seg_bwd_apply", args2, sizeof args2 / sizeof args2[0], 2,
                    gseg, local);
  }
  clReleaseMemObject(partials);
  return st;
}

/* One launch of entmax_seg_bwd_sums (apply 0) or entmax_seg_bwd_apply (apply 1) with the whole
 * row as one segment and the given partials. */
static adasplash_status asp_rows_backward_stage(adasplash_context *ctx, const asp_rows_job *job,
                                                asp_chain *chain, cl_mem y, cl_mem dy, cl_mem dx,
                                                cl_mem partials, int apply) {
  asp_plan plan;
  adasplash_status st = asp_rows_find_plan(ctx, job->dtype, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  const int wg = plan.rows.wg;
  asp_rows_common_args a = asp_rows_args(job);
  cl_int seg_cols = a.cols > 0 ? a.cols : 1, nseg = 1, has_dalpha = 0;
  cl_mem no_dalpha = NULL;
  size_t global[2] = {(size_t)wg, job->rows}, local[2] = {(size_t)wg, 1};
  if (!apply) {
    asp_arg args[] = {
        ASP_ARG(y),           ASP_ARG(dy),       ASP_ARG(a.offset), ASP_ARG(a.row_stride),
        ASP_ARG(a.rows),      ASP_ARG(a.cols),   ASP_ARG(a.alpha),  ASP_ARG(a.alpha_buf),
        ASP_ARG(a.has_alpha), ASP_ARG(seg_cols), ASP_ARG(nseg),     ASP_ARG(partials)};
    return asp_launch(chain, plan.program, "entmax_seg_bwd_sums", args,
                      sizeof args / sizeof args[0], 2, global, local);
  }
  asp_arg args[] = {ASP_ARG(y),           ASP_ARG(dy),           ASP_ARG(dx),
                    ASP_ARG(a.offset),    ASP_ARG(a.row_stride), ASP_ARG(a.rows),
                    ASP_ARG(a.cols),      ASP_ARG(a.alpha),      ASP_ARG(a.alpha_buf),
                    ASP_ARG(a.has_alpha), ASP_ARG(seg_cols),     ASP_ARG(nseg),
                    ASP_ARG(partials),    ASP_ARG(no_dalpha),    ASP_ARG(has_dalpha)};
  return asp_launch(chain, plan.program, "entmax_seg_bwd_apply", args, sizeof args / sizeof args[0],
                    2, global, local);
}

adasplash_status asp_rows_backward_sums(adasplash_context *ctx, const asp_rows_job *job,
                                        asp_chain *chain, cl_mem y, cl_mem dy, cl_mem partials) {
  return asp_rows_backward_stage(ctx, job, chain, y, dy, NULL, partials, 0);
}

adasplash_status asp_rows_backward_apply(adasplash_context *ctx, const asp_rows_job *job,
                                         asp_chain *chain, cl_mem y, cl_mem dy, cl_mem dx,
                                         cl_mem partials) {
  return asp_rows_backward_stage(ctx, job, chain, y, dy, dx, partials, 1);
}

adasplash_status asp_rows_sum_floats(adasplash_context *ctx, adasplash_dtype dtype,
                                     asp_chain *chain, cl_mem values, size_t n, cl_mem out) {
  asp_plan plan;
  adasplash_status st = asp_rows_find_plan(ctx, dtype, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  cl_int cn = (cl_int)n;
  asp_arg args[] = {ASP_ARG(values), ASP_ARG(cn), ASP_ARG(out)};
  size_t g[1] = {(size_t)plan.rows.wg};
  return asp_launch(chain, plan.program, "entmax_sum_floats", args, 3, 1, g, g);
}

adasplash_status asp_rows_softmax(adasplash_context *ctx, const asp_rows_job *job, asp_chain *chain,
                                  cl_mem x, cl_mem y) {
  asp_plan plan;
  adasplash_status st = asp_rows_find_plan(ctx, job->dtype, &plan);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_rows_common_args a = asp_rows_args(job);
  asp_arg args[] = {ASP_ARG(x),      ASP_ARG(y),     ASP_ARG(a.offset), ASP_ARG(a.row_stride),
                    ASP_ARG(a.rows), ASP_ARG(a.cols)};
  size_t local[1] = {(size_t)plan.rows.wg};
  size_t global[1] = {job->rows * local[0]};
  return asp_launch(chain, plan.program, "softmax_rows_forward", args, sizeof args / sizeof args[0],
                    1, global, local);
}

/* ---- public API ---------------------------------------------------------------------------------
 */

void adasplash_entmax_desc_init(adasplash_entmax_desc *desc) {
  if (!desc) return;
  memset(desc, 0, sizeof *desc);
  desc->struct_size = sizeof *desc;
  desc->dtype = ADASPLASH_F32;
  desc->alpha = 1.5f;
  desc->init = ADASPLASH_INIT_HISTOGRAM;
}

/* Validates desc and fills job. fn names the calling function for messages. */
static adasplash_status asp_rows_check_desc(const adasplash_context *ctx,
                                            const adasplash_entmax_desc *d, const char *fn,
                                            asp_rows_job *job) {
  memset(job, 0, sizeof *job);
  if (!ctx) return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
  if (!d) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc is NULL", fn);
  if (d->struct_size != sizeof *d)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->struct_size=%zu, expected %zu (use adasplash_entmax_desc_init)", fn,
                    d->struct_size, sizeof *d);
  if (adasplash_dtype_size(d->dtype) == 0)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc->dtype=%d is not a dtype", fn,
                    (int)d->dtype);
  if (d->rows == 0 || d->rows > (size_t)1 << 30)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE, "%s: desc->rows=%zu must be in [1, 2^30]",
                    fn, d->rows);
  if (d->cols == 0 || d->cols > (size_t)1 << 30)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE, "%s: desc->cols=%zu must be in [1, 2^30]",
                    fn, d->cols);
  size_t stride = d->row_stride ? d->row_stride : d->cols;
  if (stride < d->cols)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_STRIDE,
                    "%s: desc->row_stride=%zu is smaller than cols=%zu (rows would overlap)", fn,
                    d->row_stride, d->cols);
  if (!d->alpha_buf && !(d->alpha > 1.0f && d->alpha <= 2.0f))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ALPHA, "%s: desc->alpha=%g must be in (1, 2]", fn,
                    (double)d->alpha);
  if (!(d->tolerance >= 0.0f) || d->tolerance > 0.5f)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->tolerance=%g must be in [0, 0.5] (0 = default 1e-6)", fn,
                    (double)d->tolerance);
  if (d->max_iter < 0 || d->max_iter > 1000)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->max_iter=%d must be in [0, 1000] (0 = default 32)", fn, d->max_iter);
  if (d->init != ADASPLASH_INIT_HISTOGRAM && d->init != ADASPLASH_INIT_BRACKET)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc->init=%d is not a tau init",
                    fn, (int)d->init);
  size_t last;
  if (!asp_mul_size(d->rows - 1, stride, &last) || !asp_add_size(last, d->cols, &last) ||
      !asp_add_size(last, d->offset, &last) ||
      !asp_mul_size(last, adasplash_dtype_size(d->dtype), &last))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_STRIDE,
                    "%s: offset + rows*row_stride overflows size_t", fn);
  job->dtype = d->dtype;
  job->rows = d->rows;
  job->cols = d->cols;
  job->row_stride = stride;
  job->offset = d->offset;
  job->alpha = d->alpha;
  job->alpha_buf = d->alpha_buf;
  job->valid_cols = d->valid_cols;
  job->tolerance = d->tolerance > 0.0f ? d->tolerance : 1e-6f;
  job->max_iter = d->max_iter > 0 ? d->max_iter : 32;
  job->use_hist = d->init == ADASPLASH_INIT_HISTOGRAM;
  return ADASPLASH_SUCCESS;
}

static size_t asp_rows_matrix_bytes(const asp_rows_job *job) {
  return ((job->rows - 1) * job->row_stride + job->cols + job->offset) *
         adasplash_dtype_size(job->dtype);
}

/* The checks every enqueueing row call starts with: desc (into job), the queue, the wait list, the
 * optional per-row vectors, then the n matrices (x, y, ...; names as given) of the shape desc
 * describes, whose extent in bytes goes to *bytes. */
static adasplash_status asp_rows_check_call(const adasplash_context *ctx,
                                            const adasplash_entmax_desc *desc, const char *fn,
                                            cl_command_queue queue, cl_uint nwait,
                                            const cl_event *wait, const cl_mem *mats,
                                            const char *const *names, size_t n, asp_rows_job *job,
                                            size_t *bytes) {
  *bytes = 0;
  adasplash_status st = asp_rows_check_desc(ctx, desc, fn, job);
  if (st == ADASPLASH_SUCCESS) st = asp_check_queue(ctx, queue);
  if (st == ADASPLASH_SUCCESS) st = asp_check_wait_list(ctx, nwait, wait);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, job->alpha_buf, "desc->alpha_buf", job->rows * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, job->valid_cols, "desc->valid_cols", job->rows * 4);
  if (st == ADASPLASH_SUCCESS) *bytes = asp_rows_matrix_bytes(job);
  for (size_t i = 0; i < n && st == ADASPLASH_SUCCESS; ++i)
    st = asp_check_buffer(ctx, mats[i], names[i], *bytes);
  return st;
}

adasplash_status adasplash_entmax_prepare(adasplash_context *ctx,
                                          const adasplash_entmax_desc *desc) {
  asp_rows_job job;
  adasplash_status st = asp_rows_check_desc(ctx, desc, "adasplash_entmax_prepare", &job);
  if (st != ADASPLASH_SUCCESS) return st;
  return asp_rows_prepare(ctx, job.dtype);
}

adasplash_status adasplash_entmax_forward(adasplash_context *ctx, const adasplash_entmax_desc *desc,
                                          cl_command_queue queue, cl_mem x, cl_mem y, cl_mem sweeps,
                                          cl_uint nwait, const cl_event *wait, cl_event *event) {
  asp_rows_job job;
  size_t bytes;
  const cl_mem mats[] = {x, y};
  static const char *const names[] = {"x", "y"};
  adasplash_status st = asp_rows_check_call(ctx, desc, "adasplash_entmax_forward", queue, nwait,
                                            wait, mats, names, 2, &job, &bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, sweeps, "sweeps", job.rows * sizeof(cl_int));
  if (st == ADASPLASH_SUCCESS) {
    /* In-place rows are allowed (every kernel reads an element before the same work-item writes
     * it), so x and y count as read here: only the small outputs are checked against them. */
    const asp_region r[] = {{x, 0, bytes, "x", 0, 0},
                            {y, 0, bytes, "y", 0, 0},
                            {sweeps, 0, job.rows * sizeof(cl_int), "sweeps", 1, 1},
                            {job.alpha_buf, 0, job.rows * 4, "desc->alpha_buf", 0, 1}};
    st = asp_check_overlaps(ctx, "adasplash_entmax_forward", r, sizeof r / sizeof r[0]);
  }
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, queue, nwait, wait);
  st = asp_rows_forward(ctx, &job, &chain, x, y, sweeps);
  return asp_chain_end(&chain, st, event);
}

adasplash_status adasplash_entmax_backward(adasplash_context *ctx,
                                           const adasplash_entmax_desc *desc,
                                           cl_command_queue queue, cl_mem y, cl_mem dy, cl_mem dx,
                                           cl_mem dalpha, cl_uint nwait, const cl_event *wait,
                                           cl_event *event) {
  asp_rows_job job;
  size_t bytes;
  const cl_mem mats[] = {y, dy, dx};
  static const char *const names[] = {"y", "dy", "dx"};
  adasplash_status st = asp_rows_check_call(ctx, desc, "adasplash_entmax_backward", queue, nwait,
                                            wait, mats, names, 3, &job, &bytes);
  size_t dalpha_bytes = job.alpha_buf ? job.rows * 4 : 4;
  if (st == ADASPLASH_SUCCESS) st = asp_check_optional_buffer(ctx, dalpha, "dalpha", dalpha_bytes);
  if (st == ADASPLASH_SUCCESS) {
    /* In place (dx over dy or y) is allowed, as in the forward: only dalpha is checked. */
    const asp_region r[] = {{y, 0, bytes, "y", 0, 0},
                            {dy, 0, bytes, "dy", 0, 0},
                            {dx, 0, bytes, "dx", 0, 0},
                            {dalpha, 0, dalpha_bytes, "dalpha", 1, 1},
                            {job.alpha_buf, 0, job.rows * 4, "desc->alpha_buf", 0, 1}};
    st = asp_check_overlaps(ctx, "adasplash_entmax_backward", r, sizeof r / sizeof r[0]);
  }
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, queue, nwait, wait);
  cl_mem per_row = NULL;
  if (dalpha && !job.alpha_buf) st = asp_create_buffer(ctx, job.rows * 4, &per_row);
  if (st == ADASPLASH_SUCCESS)
    st = asp_rows_backward(ctx, &job, &chain, y, dy, dx, per_row ? per_row : dalpha);
  if (st == ADASPLASH_SUCCESS && per_row)
    st = asp_rows_sum_floats(ctx, job.dtype, &chain, per_row, job.rows, dalpha);
  if (per_row) clReleaseMemObject(per_row);
  return asp_chain_end(&chain, st, event);
}

adasplash_status adasplash_softmax_rows_forward(adasplash_context *ctx,
                                                const adasplash_entmax_desc *desc,
                                                cl_command_queue queue, cl_mem x, cl_mem y,
                                                cl_uint nwait, const cl_event *wait,
                                                cl_event *event) {
  asp_rows_job job;
  adasplash_entmax_desc d;
  if (desc && desc->struct_size == sizeof d) {
    d = *desc;
    d.alpha = 1.5f; /* unused by softmax; keeps the shared validation quiet */
    d.alpha_buf = NULL;
    desc = &d;
  }
  size_t bytes;
  const cl_mem mats[] = {x, y};
  static const char *const names[] = {"x", "y"};
  adasplash_status st = asp_rows_check_call(ctx, desc, "adasplash_softmax_rows_forward", queue,
                                            nwait, wait, mats, names, 2, &job, &bytes);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_chain chain;
  asp_chain_init(&chain, ctx, queue, nwait, wait);
  st = asp_rows_softmax(ctx, &job, &chain, x, y);
  return asp_chain_end(&chain, st, event);
}

/* ---- host-memory variants
 * ------------------------------------------------------------------------- */

static adasplash_status asp_rows_host_setup(adasplash_context *ctx,
                                            const adasplash_entmax_desc *desc, const char *fn,
                                            const float *alpha, const int *valid_cols,
                                            adasplash_entmax_desc *dev_desc, asp_host_set *hb,
                                            asp_rows_job *job, size_t *bytes) {
  *bytes = 0;
  adasplash_status st = asp_rows_check_desc(ctx, desc, fn, job);
  if (st != ADASPLASH_SUCCESS && !(st == ADASPLASH_ERROR_INVALID_ALPHA && alpha)) return st;
  if (desc->alpha_buf || desc->valid_cols)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->alpha_buf and desc->valid_cols must be NULL (pass host arrays)", fn);
  if (alpha)
    for (size_t r = 0; r < desc->rows; ++r)
      if (!(alpha[r] > 1.0f && alpha[r] <= 2.0f))
        return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ALPHA, "%s: alpha[%zu]=%g must be in (1, 2]",
                        fn, r, (double)alpha[r]);
  *dev_desc = *desc;
  if (alpha) {
    dev_desc->alpha = 1.5f;
    st = asp_rows_check_desc(ctx, dev_desc, fn, job);
    if (st != ADASPLASH_SUCCESS) return st;
  }
  st = asp_rows_prepare(ctx, desc->dtype);
  if (st == ADASPLASH_SUCCESS && alpha)
    st = asp_host_buffer(ctx, hb, alpha, desc->rows * 4, &dev_desc->alpha_buf);
  if (st == ADASPLASH_SUCCESS && valid_cols)
    st = asp_host_buffer(ctx, hb, valid_cols, desc->rows * 4, &dev_desc->valid_cols);
  if (st == ADASPLASH_SUCCESS) st = asp_rows_check_desc(ctx, dev_desc, fn, job);
  if (st == ADASPLASH_SUCCESS) *bytes = asp_rows_matrix_bytes(job);
  return st;
}

adasplash_status adasplash_entmax_forward_host(adasplash_context *ctx,
                                               const adasplash_entmax_desc *desc, const void *x,
                                               void *y, const float *alpha, const int *valid_cols,
                                               int *sweeps) {
  const char *fn = "adasplash_entmax_forward_host";
  if (ctx && desc && (!x || !y))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn, x ? "y" : "x");
  asp_host_set hb = {{NULL}, 0};
  adasplash_entmax_desc d;
  asp_rows_job job;
  size_t bytes;
  adasplash_status st =
      asp_rows_host_setup(ctx, desc, fn, alpha, valid_cols, &d, &hb, &job, &bytes);
  cl_mem bx = NULL, by = NULL, bs = NULL;
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &hb, x, bytes, &bx);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &hb, y, bytes, &by);
  if (st == ADASPLASH_SUCCESS && sweeps) st = asp_host_buffer(ctx, &hb, NULL, job.rows * 4, &bs);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_entmax_forward(ctx, &d, NULL, bx, by, bs, 0, NULL, NULL);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, by, y, bytes);
  if (st == ADASPLASH_SUCCESS && sweeps) st = asp_host_get(ctx, bs, sweeps, job.rows * 4);
  asp_host_free(&hb);
  return st;
}

adasplash_status adasplash_entmax_backward_host(adasplash_context *ctx,
                                                const adasplash_entmax_desc *desc, const void *y,
                                                const void *dy, void *dx, const float *alpha,
                                                const int *valid_cols, float *dalpha) {
  const char *fn = "adasplash_entmax_backward_host";
  if (ctx && desc && (!y || !dy || !dx))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                    !y ? "y" : (!dy ? "dy" : "dx"));
  (void)valid_cols; /* the backward reads the validity from y (zeros) */
  asp_host_set hb = {{NULL}, 0};
  adasplash_entmax_desc d;
  asp_rows_job job;
  size_t bytes;
  adasplash_status st = asp_rows_host_setup(ctx, desc, fn, alpha, NULL, &d, &hb, &job, &bytes);
  cl_mem by = NULL, bdy = NULL, bdx = NULL, bda = NULL;
  size_t da_bytes = alpha ? job.rows * 4 : 4;
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &hb, y, bytes, &by);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &hb, dy, bytes, &bdy);
  if (st == ADASPLASH_SUCCESS) st = asp_host_buffer(ctx, &hb, dx, bytes, &bdx);
  if (st == ADASPLASH_SUCCESS && dalpha) st = asp_host_buffer(ctx, &hb, NULL, da_bytes, &bda);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_entmax_backward(ctx, &d, NULL, by, bdy, bdx, bda, 0, NULL, NULL);
  if (st == ADASPLASH_SUCCESS) st = asp_host_get(ctx, bdx, dx, bytes);
  if (st == ADASPLASH_SUCCESS && dalpha) st = asp_host_get(ctx, bda, dalpha, da_bytes);
  asp_host_free(&hb);
  return st;
}
