/*
 * entmax_rows.h - internal interface of the row-wise entmax operator, shared by its public API
 * (entmax_rows.c) and the dense attention baseline (dense.c), which runs it on materialised scores.
 */
#ifndef ASP_ENTMAX_ROWS_H
#define ASP_ENTMAX_ROWS_H

#include "internal.h"
#include "launch.h"
#include "variant.h"

/* Everything one launch of the operator needs, already validated. */
typedef struct asp_rows_job {
  adasplash_dtype dtype;
  size_t rows, cols, row_stride, offset;
  float alpha; /* used when alpha_buf is NULL */
  cl_mem alpha_buf;
  cl_mem valid_cols;
  float tolerance;
  int max_iter;
  int use_hist;
  size_t seg_cols; /* split rows longer than this across work-groups; 0: tuning rows_seg_cols */
} asp_rows_job;

/* Compiles (or finds) the row program for dtype. */
adasplash_status asp_rows_prepare(adasplash_context *ctx, adasplash_dtype dtype);

adasplash_status asp_rows_forward(adasplash_context *ctx, const asp_rows_job *job, asp_chain *chain,
                                  cl_mem x, cl_mem y, cl_mem sweeps);
/* dalpha_rows: optional float [rows] per-row d(alpha). */
adasplash_status asp_rows_backward(adasplash_context *ctx, const asp_rows_job *job,
                                   asp_chain *chain, cl_mem y, cl_mem dy, cl_mem dx,
                                   cl_mem dalpha_rows);
/* The backward of one-segment rows in two steps, for rows whose entries are spread over several
 * shards (sequence parallelism): the row sums (sum s, sum s dy, sum p dy, sum h dy, sum h;
 * partials [rows][5]) of this part of the row, then, with the sums of the whole row (merged),
 * dx = s (dy - sum(s dy) / sum(s)). */
adasplash_status asp_rows_backward_sums(adasplash_context *ctx, const asp_rows_job *job,
                                        asp_chain *chain, cl_mem y, cl_mem dy, cl_mem partials);
adasplash_status asp_rows_backward_apply(adasplash_context *ctx, const asp_rows_job *job,
                                         asp_chain *chain, cl_mem y, cl_mem dy, cl_mem dx,
                                         cl_mem partials);
/* The quantisation of the histogram's in-bin moments for rows of cols entries: 2^q with (count of
 * a bin) * 2^q < 2^32. */
float asp_rows_qscale(size_t cols);
/* out[0] = sum of values[0..n) in a fixed order. */
adasplash_status asp_rows_sum_floats(adasplash_context *ctx, adasplash_dtype dtype,
                                     asp_chain *chain, cl_mem values, size_t n, cl_mem out);
/* Softmax along rows (benchmark baseline). */
adasplash_status asp_rows_softmax(adasplash_context *ctx, const asp_rows_job *job, asp_chain *chain,
                                  cl_mem x, cl_mem y);

#endif /* ASP_ENTMAX_ROWS_H */
