/*
 * bench.h - what the modes of adasplash-bench share: the options, the run's environment (context,
 * queue, device, JSON file, progress), the outcome of a measurement, and small helpers for device
 * buffers, dtype conversion, output checks, directories and the common JSON header. Each mode is a
 * file: bench_attention.c (attention-fwd, attention-fwd-bwd), bench_rows.c (entmax-rows),
 * bench_decode.c (decode), bench_prepare.c (prepare).
 */
#ifndef ADASPLASH_BENCH_BENCH_H
#define ADASPLASH_BENCH_BENCH_H

#include <stdio.h>

#include "adasplash.h"
#include "json.h"
#include "report.h"
#include "timing.h"

#define BENCH_PROG "adasplash-bench"
#define BENCH_FORMAT "adasplash-bench/1"
#define BENCH_MAX_LIST 64
#define BENCH_MAX_SWEEPS 64
#define BENCH_FLOP_MODEL                                                                     \
  "FlashAttention model: forward 4*B*H*Nq*Nk*D (halved when causal), forward+backward 3.5x " \
  "forward"

typedef enum bench_mode {
  MODE_FWD = 0,
  MODE_FWD_BWD = 1,
  MODE_ROWS = 2,
  MODE_DECODE = 3,
  MODE_PREPARE = 4,
  MODE_COUNT = 5
} bench_mode;
extern const char *const bench_mode_names[MODE_COUNT];
extern const char *const bench_algo_names[3];
extern const adasplash_attention_algorithm bench_algo_enum[3];
extern const char *const bench_dtype_names[3];
extern const char *const bench_kind_names[2];

typedef struct int_list {
  int n;
  long long v[BENCH_MAX_LIST];
} int_list;

typedef struct dbl_list {
  int n;
  double v[BENCH_MAX_LIST];
} dbl_list;

typedef struct bench_opts {
  bench_mode mode;
  int_list algos, n, b, h, d, seed, rows, cols, dtypes, kinds;
  int_list kv, q, gqa, page; /* decode mode */
  dbl_list alpha, beta, sigma;
  int causal, warmup, repeats, first_call, peaks, max_iter, smoke;
  double scale, tolerance;
  const char *json_path, *dump_dir;
} bench_opts;

typedef struct bench_env {
  const bench_opts *o;
  adasplash_context *ctx;
  cl_context cl;
  cl_device_id device;
  cl_command_queue queue;
  adasplash_device_info info;
  FILE *json;
  int progress;
  int failures;
  int dumped;
  char date[32];
  int step, steps;
} bench_env;

typedef enum bench_outcome { OUT_OK = 0, OUT_SKIPPED = 1, OUT_ERROR = 2 } bench_outcome;
extern const char *const bench_outcome_names[3];

/* A device buffer of bytes filled from host (NULL: zeros); NULL for 0 bytes or on failure (note
 * says why). */
cl_mem bench_buffer(bench_env *env, size_t bytes, const void *host, char *note, size_t note_size);
void bench_release(cl_mem *m);
/* "[step/steps] ..." on stderr when it is a terminal. */
void bench_progress(bench_env *env, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* n floats converted to dtype in a new malloc'ed buffer (NULL on failure). */
void *bench_to_dtype(const float *src, size_t n, adasplash_dtype dtype);
/* Reads a dtype buffer of n elements and counts its non-finite values (-1 on failure). */
long bench_count_nonfinite(bench_env *env, cl_mem buf, size_t n, adasplash_dtype dtype);
int bench_mkdir(const char *dir);
void bench_rm_tree(const char *dir);
/* Starts a JSON line with the common header fields (format, mode, date, device, library, ...). */
void bench_json_begin(bench_env *env, dt_json *j);

/* The modes. */
void attn_run(bench_env *env);
void rows_run(bench_env *env);
void decode_run(bench_env *env);
void prep_run_mode(bench_env *env);

#endif /* ADASPLASH_BENCH_BENCH_H */
