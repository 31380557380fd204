/*
 * tune_verify.h - the correctness gate of adasplash-tune: small fp32 problems whose exact answers
 * come from the double-precision reference (devtools/reference.c), run through a candidate context.
 *
 * Attention: forward and backward (out, dQ, dK, dV) on two shapes that cover partial tiles of
 * every tile size, causal and non-causal masks, q_len != kv_len and GQA; inputs from the locality
 * generator (sparse rows) and N(0,1). Rows: forward (y) and backward (dx) of row entmax on rows
 * longer than any work-group. Tolerance: max |got - ref| <= 1e-3 * max(1, max |ref|) per tensor
 * (the library's own tests hold 1e-4; a wrong tiling is off by far more).
 */
#ifndef ADASPLASH_TUNE_VERIFY_H
#define ADASPLASH_TUNE_VERIFY_H

#include <stddef.h>

#include "adasplash.h"

typedef struct tune_verify tune_verify;

/* Builds the problems and their reference answers for head_dim and alpha (both fixed: programs
 * are compiled per padded head dim, so verifying the timed head dim costs no extra compile).
 * Returns NULL when out of host memory. */
tune_verify *tune_verify_create(int head_dim, double alpha);
void tune_verify_free(tune_verify *v);

/* The fp32 descriptors the attention check uses (for adasplash_attention_prepare). */
size_t tune_verify_attention_descs(const tune_verify *v, const adasplash_attention_desc **descs);
/* The fp32 descriptor of the rows check. */
const adasplash_entmax_desc *tune_verify_rows_desc(const tune_verify *v);

/* Runs the check through ctx (its own queue; the kernels must be prepared). Returns 0 when every
 * tensor is within tolerance, 1 when a result is off (why says which and by how much), -1 when a
 * library or OpenCL call failed (why holds the message). The worst error relative to the
 * tolerance goes to *worst when worst is not NULL. */
int tune_verify_attention(tune_verify *v, adasplash_context *ctx, double *worst, char *why,
                          size_t why_size);
int tune_verify_rows(tune_verify *v, adasplash_context *ctx, double *worst, char *why,
                     size_t why_size);

#endif /* ADASPLASH_TUNE_VERIFY_H */
