/*
 * tune_work.h - the representative workloads adasplash-tune times: attention forward + backward
 * on locality inputs (devtools/locality.h: beta = 2, sigma = 0.15, causal) and row entmax forward
 * on N(0,1) rows. Device buffers are made once and shared by every candidate context (all of them
 * borrow the same cl_context and profiling queue). A time is the median over repeats of the
 * devtools timing loop (devtools/timing.h: from a marker before the calls to the end of the last
 * call, profiling events or wall clock).
 */
#ifndef ADASPLASH_TUNE_WORK_H
#define ADASPLASH_TUNE_WORK_H

#include <stddef.h>

#include "adasplash.h"

typedef struct tune_work tune_work;

typedef struct tune_attn_shape {
  int batch, heads, n, head_dim;
  adasplash_dtype dtype;
  double alpha;
} tune_attn_shape;

typedef struct tune_rows_shape {
  size_t rows, cols;
  adasplash_dtype dtype;
  double alpha;
} tune_rows_shape;

/* Inputs on the device in queue's context. NULL on failure (why says what failed). */
tune_work *tune_work_attention(cl_context context, cl_command_queue queue,
                               const tune_attn_shape *shape, char *why, size_t why_size);
tune_work *tune_work_rows(cl_context context, cl_command_queue queue, const tune_rows_shape *shape,
                          char *why, size_t why_size);
void tune_work_free(tune_work *w);

/* The descriptor to prepare (attention or rows; the other is NULL). */
const adasplash_attention_desc *tune_work_attention_desc(const tune_work *w);
const adasplash_entmax_desc *tune_work_rows_desc(const tune_work *w);

/* Runs the workload warmup times, then repeats times timed, through ctx (prepared). Returns 0 and
 * the median in *median_ms, or -1 with the failure in why. *wall_clock is set to 1 when the
 * device gave no profiling timestamps. */
int tune_work_time(tune_work *w, adasplash_context *ctx, int warmup, int repeats, double *median_ms,
                   int *wall_clock, char *why, size_t why_size);

#endif /* ADASPLASH_TUNE_WORK_H */
