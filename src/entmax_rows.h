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

/* Bytes reserved per row for the kernels' asp_row_solver state (11 four-byte fields). */
#define ASP_ROWS_STATE_BYTES 64
/* Exact-finish candidates a row solver keeps (ASP_KMAX of entmax_row_solve.clh). */
#define ASP_ROWS_KMAX 64

/* Compiles (or finds) the row program for dtype. */
adasplash_status asp_rows_prepare(adasplash_context *ctx, adasplash_dtype dtype);

adasplash_status asp_rows_forward(adasplash_context *ctx, const asp_rows_job *job, asp_chain *chain,
                                  cl_mem x, cl_mem y, cl_mem sweeps);
/* Histogram bins of the row programs of this context (other programs that fill their segment
 * windows must bin alike): a function of the tuning alone. */
int asp_rows_bins(const adasplash_context *ctx);
/* Solves every row from per-segment windows in entmax_seg_hist's format (nseg segments per row:
 * seg_max [rows][nseg][2], seg_info [rows][nseg][3], seg_hist [rows][nseg][3][bins + 1]), one
 * work-group per row sweeping the whole row x: entmax_seg_solve. states: [rows] solver states of
 * ASP_ROWS_STATE_BYTES. verify_exact: see asp_row_step (entmax_solver.clh). */
adasplash_status asp_rows_seg_solve(adasplash_context *ctx, const asp_rows_job *job,
                                    asp_chain *chain, cl_mem x, size_t nseg, cl_mem seg_max,
                                    cl_mem seg_info, cl_mem seg_hist, cl_mem states,
                                    int verify_exact);
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
