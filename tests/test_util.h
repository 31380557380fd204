/*
 * test_util.h - helpers shared by the library tests: context on the device chosen by
 * ADASPLASH_DEVICE (exit 77 = skipped when there is no OpenCL device), check counters with
 * messages, dtype round trips and buffers.
 */
#ifndef ASP_TEST_UTIL_H
#define ASP_TEST_UTIL_H

#include <stddef.h>

#include "adasplash.h"

#define TEST_SKIP 77

/* Creates a context with options (may be NULL) or exits with TEST_SKIP when no device exists. */
adasplash_context *test_context(const adasplash_context_options *options);
/* Prints the device once per program. */
void test_print_device(adasplash_context *ctx);

/* Records a check; prints FAIL lines (and PASS lines when verbose). Returns ok. */
int test_check(int ok, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Number of failed checks so far; exit code helper. */
int test_failures(void);
int test_finish(const char *name);

/* Exits the test with a failure message when st is not success. */
void test_require(adasplash_context *ctx, adasplash_status st, const char *what);

/* dtype helpers: round doubles through dtype and back; pack to/from host bytes. */
double test_round(double v, adasplash_dtype dtype);
/* For probabilities p [batch*q_heads*q_len][kv_len] and values v
 * [batch][kv_heads][kv_len][head_dim] (contiguous; q head h reads kv head h / (q_heads/kv_heads)):
 * mag[r*head_dim + d] = sum_j p_rj |v_jd| over the row's nonzero p, the first-order magnitude of an
 * error in P V, and nnz[r] their count. */
void test_pv_magnitudes(const double *p, const double *v, int batch, int q_heads, int kv_heads,
                        int q_len, int kv_len, int head_dim, double *mag, size_t *nnz);
/* An attention descriptor of the given shape (contiguous layouts, the entmax defaults). */
adasplash_attention_desc test_attention_desc(adasplash_dtype dtype, int batch, int q_heads,
                                             int kv_heads, int q_len, int kv_len, int head_dim,
                                             int causal, float alpha);
/* "base" followed by $ADASPLASH_TUNE (an options string replaces the variable, and CTest selects
 * variants through it), written into buf. */
const char *test_tune_with_env(char *buf, size_t size, const char *base);
void test_pack(const double *src, size_t n, adasplash_dtype dtype, void *dst);
void test_unpack(const void *src, size_t n, adasplash_dtype dtype, double *dst);

/* Device buffers from host data (NULL data: zero filled) and read-back. */
cl_mem test_buffer(adasplash_context *ctx, const void *data, size_t bytes);
void test_read(adasplash_context *ctx, cl_mem buf, void *dst, size_t bytes);

#endif /* ASP_TEST_UTIL_H */
