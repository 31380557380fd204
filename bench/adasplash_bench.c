/*
 * adasplash_bench.c - the adasplash-bench program: times the library's fused entmax attention
 * against its softmax flash and dense entmax baselines (forward, forward+backward) on the
 * locality inputs of DESIGN.md section 8, and row-wise entmax against row softmax, on the device
 * the library picks. Prints a table on stdout, appends JSON lines (--json) and can dump the exact
 * inputs as .npy files (--dump) for ../shared/gpu/peer_bench.py. The usage text below documents
 * every option, the PRNG, the timing method and the FLOP model.
 *
 * Exit codes: 0 success, 1 a measurement failed, 2 bad command line, 77 no OpenCL device.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adasplash.h"
#include "locality.h"
#include "npy.h"

#define BENCH_FORMAT "adasplash-bench/1"
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2
#define BENCH_EXIT_NO_DEVICE 77
#define BENCH_MAX_LIST 64
#define BENCH_MAX_SWEEPS 64
#define BENCH_FLOP_MODEL                                                                     \
  "FlashAttention model: forward 4*B*H*Nq*Nk*D (halved when causal), forward+backward 3.5x " \
  "forward"

/* The usage text, in pieces (ISO C limits one string literal to 4095 characters). */
static const char *const bench_usage[] = {
    "usage: adasplash-bench [--mode MODE] [options]\n"
    "\n"
    "Modes:\n"
    "  attention-fwd      time adasplash_attention_forward per algorithm (inference: no saved "
    "buffer)\n"
    "  attention-fwd-bwd  time forward+backward together and the forward alone (default mode)\n"
    "  entmax-rows        time adasplash_entmax_forward (histogram and bracket tau init) against\n"
    "                     adasplash_softmax_rows_forward; distribution of refinement sweeps per "
    "row\n"
    "\n"
    "Lists are comma separated; every combination is run.\n",
    "Attention options:\n"
    "  --algos LIST       entmax,softmax,dense (default entmax,softmax): ADASPLASH_ATTN_ENTMAX,\n"
    "                     ADASPLASH_ATTN_SOFTMAX_FLASH, ADASPLASH_ATTN_ENTMAX_DENSE; same inputs,\n"
    "                     same context. dense is skipped (a note, not a failure) when\n"
    "                     B*H*N*N*4*3 bytes exceed half the global memory or the max allocation\n"
    "  --n LIST           sequence length, q_len = kv_len (default 4096)\n"
    "  --b LIST           batch (default 1)\n"
    "  --h LIST           heads (default 16)\n"
    "  --d LIST           head dim, 1..256 (default 64)\n"
    "  --alpha LIST       entmax alpha in (1,2] (default 1.5)\n"
    "  --beta LIST        query sharpness of the locality inputs (default 2)\n"
    "  --sigma LIST       random-walk step of the locality inputs (default 0.15)\n"
    "  --seed LIST        PRNG seed (default 0)\n"
    "  --causal / --non-causal   (default causal)\n"
    "  --first-call       also measure cold_ms (first prepare+forward on a fresh context with an\n"
    "                     empty temporary cache dir) and warm_ms (the same on a second fresh "
    "context\n"
    "                     using the now filled cache dir); wall clock, includes compilation. "
    "Driver\n"
    "                     caches outside the library (PoCL kcache, NVIDIA ComputeCache) still "
    "apply\n"
    "  --dump DIR         write q.npy, k.npy, v.npy (float32 [B,H,N,D], the generated values "
    "before\n"
    "                     any 16-bit rounding) of the first configuration; for entmax-rows x.npy\n"
    "Entmax-rows options:\n"
    "  --rows LIST        rows (default 4096)\n"
    "  --cols LIST        columns (default 1024,8192,65536)\n"
    "  --rows-kind LIST   gaussian,peaked (default both)\n"
    "                     gaussian: x = scale*N(0,1); peaked: background scale*0.1*N(0,1) and\n"
    "                     --peaks columns per row (uniform, repeats allowed) set to "
    "scale*(4+N(0,1))\n"
    "  --scale X          (default 1)\n"
    "  --peaks K          (default 4)\n"
    "  --alpha LIST, --seed LIST as above; --tolerance X, --max-iter K passed to the descriptor\n"
    "                     (0 = library default)\n",
    "Common options:\n"
    "  --dtype LIST       f32,f16,bf16 (default f32)\n"
    "  --warmup K         untimed runs before timing (default 3)\n"
    "  --repeats R        timed runs (default 10): min, median, mean, stddev are reported\n"
    "  --json FILE        append one JSON line per configuration and algorithm\n"
    "  --smoke            run a tiny configuration of every mode (all algorithms, f32 and bf16,\n"
    "                     --first-call in attention-fwd; --json and --dump still apply): for CI\n"
    "  --help, --version\n"
    "\n"
    "Timing: the context's queue has CL_QUEUE_PROFILING_ENABLE. Per repeat: clFinish, a marker\n"
    "(clEnqueueMarkerWithWaitList), the library call(s) with an event, wait; time = END(call "
    "event)\n"
    "- END(marker) in ms, so multi-kernel calls and gaps between their kernels count. fwd-bwd:\n"
    "marker, forward, backward; fwd_bwd = END(backward) - END(marker), fwd = END(forward) -\n"
    "END(marker) of the same repeat. Kernels are prepared (compiled) before timing; prepare_ms is\n"
    "that wall time. If the device gives no marker timestamps, host wall clock is used "
    "(reported).\n"
    "TFLOP/s-equivalent over the median time, with the\n" BENCH_FLOP_MODEL
    ".\n"
    "\n",
    "Inputs (DESIGN.md sec. 8), deterministic from the seed: per (batch b, head h) one PRNG "
    "stream;\n"
    "per step t: D normals e (u_0 = e, u_t = u_{t-1} + sigma*e), u~ = sqrt(D) u/|u|, then D "
    "normals\n"
    "xi (q = beta*u~ + xi), D normals zeta (k = u~ + zeta), D normals v. PRNG: splitmix64 (state "
    "+=\n"
    "0x9E3779B97F4A7C15, finaliser M with multipliers 0xBF58476D1CE4E5B9, 0x94D049BB133111EB),\n"
    "stream start state = M(seed) ^ M(stream ^ 0xD1B54A32D192ED03) with stream = 1<<56|b<<28|h\n"
    "(output gradient 2<<56|b<<28|h, entmax rows 3<<56|row); uniform = (next>>11)*2^-53;\n"
    "normal = Box-Muller r = sqrt(-2 ln(1-U1)), r cos(2 pi U2) then r sin(2 pi U2). Double math,\n"
    "rounded to float32 once (bench/locality.h).\n"
    "\n"
    "Environment: ADASPLASH_DEVICE picks the device (the library's rules), ADASPLASH_CACHE_DIR,\n"
    "ADASPLASH_TUNE, ADASPLASH_PATH. Progress goes to stderr when it is a terminal.\n"
    "Exit codes: 0 ok, 1 a measurement failed, 2 bad command line, 77 no OpenCL device.\n",
    NULL};

/* ---- options ----------------------------------------------------------------------------------
 */

typedef enum bench_mode { MODE_FWD = 0, MODE_FWD_BWD = 1, MODE_ROWS = 2 } bench_mode;
static const char *bench_mode_names[] = {"attention-fwd", "attention-fwd-bwd", "entmax-rows"};

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
  dbl_list alpha, beta, sigma;
  int causal, warmup, repeats, first_call, peaks, max_iter, smoke;
  double scale, tolerance;
  const char *json_path, *dump_dir;
} bench_opts;

static const char *bench_algo_names[] = {"entmax", "softmax", "dense"};
static const adasplash_attention_algorithm bench_algo_enum[] = {
    ADASPLASH_ATTN_ENTMAX, ADASPLASH_ATTN_SOFTMAX_FLASH, ADASPLASH_ATTN_ENTMAX_DENSE};
static const char *bench_dtype_names[] = {"f32", "f16", "bf16"};
static const char *bench_kind_names[] = {"gaussian", "peaked"};

static void bench_err(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void bench_err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("adasplash-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Splits s at commas into items; returns the count or -1 when more than BENCH_MAX_LIST. */
static int bench_split(const char *s, char items[][64]) {
  int n = 0;
  const char *p = s;
  for (;;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (n >= BENCH_MAX_LIST || len >= 64) return -1;
    memcpy(items[n], p, len);
    items[n][len] = '\0';
    ++n;
    if (!e) break;
    p = e + 1;
  }
  return n;
}

static int bench_parse_ints(const char *opt, const char *s, long long lo, long long hi,
                            int_list *out) {
  static char items[BENCH_MAX_LIST][64];
  int n = bench_split(s, items);
  if (n < 0) {
    bench_err("%s: list too long or item too long", opt);
    return -1;
  }
  for (int i = 0; i < n; ++i) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(items[i], &end, 10);
    if (errno || end == items[i] || *end || v < lo || v > hi) {
      bench_err("%s: '%s' is not an integer in [%lld, %lld]", opt, items[i], lo, hi);
      return -1;
    }
    out->v[i] = v;
  }
  out->n = n;
  return 0;
}

static int bench_parse_dbls(const char *opt, const char *s, double lo, double hi, dbl_list *out) {
  static char items[BENCH_MAX_LIST][64];
  int n = bench_split(s, items);
  if (n < 0) {
    bench_err("%s: list too long or item too long", opt);
    return -1;
  }
  for (int i = 0; i < n; ++i) {
    char *end = NULL;
    errno = 0;
    double v = strtod(items[i], &end);
    if (errno || end == items[i] || *end || !(v >= lo && v <= hi)) {
      bench_err("%s: '%s' is not a number in [%g, %g]", opt, items[i], lo, hi);
      return -1;
    }
    out->v[i] = v;
  }
  out->n = n;
  return 0;
}

/* A list of names from a fixed table, stored as indices. */
static int bench_parse_names(const char *opt, const char *s, const char *const *names, int count,
                             int_list *out) {
  static char items[BENCH_MAX_LIST][64];
  int n = bench_split(s, items);
  if (n < 0) {
    bench_err("%s: list too long or item too long", opt);
    return -1;
  }
  for (int i = 0; i < n; ++i) {
    int found = -1;
    for (int j = 0; j < count; ++j)
      if (strcmp(items[i], names[j]) == 0) found = j;
    if (found < 0) {
      bench_err("%s: unknown value '%s'", opt, items[i]);
      return -1;
    }
    out->v[i] = found;
  }
  out->n = n;
  return 0;
}

static void bench_set_ints(int_list *l, int n, const long long *v) {
  l->n = n;
  for (int i = 0; i < n; ++i) l->v[i] = v[i];
}

static void bench_defaults(bench_opts *o) {
  memset(o, 0, sizeof *o);
  o->mode = MODE_FWD_BWD;
  bench_set_ints(&o->algos, 2, (const long long[]){0, 1});
  bench_set_ints(&o->n, 1, (const long long[]){4096});
  bench_set_ints(&o->b, 1, (const long long[]){1});
  bench_set_ints(&o->h, 1, (const long long[]){16});
  bench_set_ints(&o->d, 1, (const long long[]){64});
  bench_set_ints(&o->seed, 1, (const long long[]){0});
  bench_set_ints(&o->rows, 1, (const long long[]){4096});
  bench_set_ints(&o->cols, 3, (const long long[]){1024, 8192, 65536});
  bench_set_ints(&o->dtypes, 1, (const long long[]){ADASPLASH_F32});
  bench_set_ints(&o->kinds, 2, (const long long[]){BENCH_ROWS_GAUSSIAN, BENCH_ROWS_PEAKED});
  o->alpha.n = 1;
  o->alpha.v[0] = 1.5;
  o->beta.n = 1;
  o->beta.v[0] = 2.0;
  o->sigma.n = 1;
  o->sigma.v[0] = 0.15;
  o->causal = 1;
  o->warmup = 3;
  o->repeats = 10;
  o->peaks = 4;
  o->scale = 1.0;
}

/* Returns 0 to run, 1 for a clean exit (help/version), -1 for a usage error. */
static int bench_parse_args(int argc, char **argv, bench_opts *o) {
  bench_defaults(o);
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      for (const char *const *part = bench_usage; *part; ++part) fputs(*part, stdout);
      return 1;
    }
    if (strcmp(a, "--version") == 0) {
      printf("adasplash-bench (header %s, library %s)\n", ADASPLASH_VERSION_STRING,
             adasplash_version());
      return 1;
    }
    if (strcmp(a, "--causal") == 0) {
      o->causal = 1;
      continue;
    }
    if (strcmp(a, "--non-causal") == 0) {
      o->causal = 0;
      continue;
    }
    if (strcmp(a, "--first-call") == 0) {
      o->first_call = 1;
      continue;
    }
    if (strcmp(a, "--smoke") == 0) {
      o->smoke = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
      bench_err("unknown option or missing value: %s (see --help)", a);
      return -1;
    }
    const char *v = argv[++i];
    int rc = 0;
    int_list tmp;
    if (strcmp(a, "--mode") == 0) {
      rc = bench_parse_names(a, v, bench_mode_names, 3, &tmp);
      if (rc == 0 && tmp.n != 1) {
        bench_err("--mode takes one mode");
        rc = -1;
      }
      if (rc == 0) o->mode = (bench_mode)tmp.v[0];
    } else if (strcmp(a, "--algos") == 0) {
      rc = bench_parse_names(a, v, bench_algo_names, 3, &o->algos);
    } else if (strcmp(a, "--dtype") == 0) {
      rc = bench_parse_names(a, v, bench_dtype_names, 3, &o->dtypes);
    } else if (strcmp(a, "--rows-kind") == 0) {
      rc = bench_parse_names(a, v, bench_kind_names, 2, &o->kinds);
    } else if (strcmp(a, "--n") == 0) {
      rc = bench_parse_ints(a, v, 1, 1 << 24, &o->n);
    } else if (strcmp(a, "--b") == 0) {
      rc = bench_parse_ints(a, v, 1, 1 << 16, &o->b);
    } else if (strcmp(a, "--h") == 0) {
      rc = bench_parse_ints(a, v, 1, 1 << 16, &o->h);
    } else if (strcmp(a, "--d") == 0) {
      rc = bench_parse_ints(a, v, 1, 256, &o->d);
    } else if (strcmp(a, "--seed") == 0) {
      rc = bench_parse_ints(a, v, 0, INT64_MAX, &o->seed);
    } else if (strcmp(a, "--rows") == 0) {
      rc = bench_parse_ints(a, v, 1, 1 << 26, &o->rows);
    } else if (strcmp(a, "--cols") == 0) {
      rc = bench_parse_ints(a, v, 1, 1 << 30, &o->cols);
    } else if (strcmp(a, "--alpha") == 0) {
      rc = bench_parse_dbls(a, v, 1.0, 2.0, &o->alpha);
    } else if (strcmp(a, "--beta") == 0) {
      rc = bench_parse_dbls(a, v, -1e6, 1e6, &o->beta);
    } else if (strcmp(a, "--sigma") == 0) {
      rc = bench_parse_dbls(a, v, 0.0, 1e6, &o->sigma);
    } else if (strcmp(a, "--warmup") == 0 || strcmp(a, "--repeats") == 0 ||
               strcmp(a, "--peaks") == 0 || strcmp(a, "--max-iter") == 0) {
      rc = bench_parse_ints(a, v, strcmp(a, "--repeats") == 0 ? 1 : 0, 1000000, &tmp);
      if (rc == 0 && tmp.n != 1) {
        bench_err("%s takes one value", a);
        rc = -1;
      }
      if (rc == 0) {
        if (strcmp(a, "--warmup") == 0) o->warmup = (int)tmp.v[0];
        if (strcmp(a, "--repeats") == 0) o->repeats = (int)tmp.v[0];
        if (strcmp(a, "--peaks") == 0) o->peaks = (int)tmp.v[0];
        if (strcmp(a, "--max-iter") == 0) o->max_iter = (int)tmp.v[0];
      }
    } else if (strcmp(a, "--scale") == 0 || strcmp(a, "--tolerance") == 0) {
      dbl_list t;
      rc = bench_parse_dbls(a, v, 0.0, 1e9, &t);
      if (rc == 0 && t.n != 1) {
        bench_err("%s takes one value", a);
        rc = -1;
      }
      if (rc == 0 && strcmp(a, "--scale") == 0) o->scale = t.v[0];
      if (rc == 0 && strcmp(a, "--tolerance") == 0) o->tolerance = t.v[0];
    } else if (strcmp(a, "--json") == 0) {
      o->json_path = v;
    } else if (strcmp(a, "--dump") == 0) {
      o->dump_dir = v;
    } else {
      bench_err("unknown option: %s (see --help)", a);
      rc = -1;
    }
    if (rc != 0) return -1;
  }
  return 0;
}

/* ---- environment, errors, small helpers -------------------------------------------------------
 */

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

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "<status>: <last error message>" of a failed library call into note. */
static void bench_lib_error(const adasplash_context *ctx, adasplash_status st, const char *what,
                            char *note, size_t size) {
  char msg[1024] = "";
  cl_int cl_err = CL_SUCCESS;
  adasplash_get_last_error(ctx, msg, sizeof msg, &cl_err);
  if (cl_err != CL_SUCCESS)
    snprintf(note, size, "%s: %s: %s (OpenCL %d)", what, adasplash_status_string(st), msg,
             (int)cl_err);
  else
    snprintf(note, size, "%s: %s: %s", what, adasplash_status_string(st), msg);
}

static cl_mem bench_buffer(bench_env *env, size_t bytes, const void *host, char *note,
                           size_t note_size) {
  if (bytes == 0) return NULL;
  cl_int err = CL_SUCCESS;
  cl_mem m = clCreateBuffer(env->cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
  if (!m || err != CL_SUCCESS) {
    snprintf(note, note_size, "clCreateBuffer(%zu bytes) failed: %d", bytes, (int)err);
    return NULL;
  }
  if (host) {
    err = clEnqueueWriteBuffer(env->queue, m, CL_TRUE, 0, bytes, host, 0, NULL, NULL);
  } else {
    unsigned char zero = 0;
    err = clEnqueueFillBuffer(env->queue, m, &zero, 1, 0, bytes, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clFinish(env->queue);
  }
  if (err != CL_SUCCESS) {
    snprintf(note, note_size, "writing a %zu-byte buffer failed: %d", bytes, (int)err);
    clReleaseMemObject(m);
    return NULL;
  }
  return m;
}

static void bench_release(cl_mem *m) {
  if (*m) clReleaseMemObject(*m);
  *m = NULL;
}

static void bench_progress(bench_env *env, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void bench_progress(bench_env *env, const char *fmt, ...) {
  if (!env->progress) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%d/%d] ", env->step, env->steps);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Converts n floats to dtype into a new malloc'ed buffer (NULL on failure). */
static void *bench_to_dtype(const float *src, size_t n, adasplash_dtype dtype) {
  void *dst = malloc(n * adasplash_dtype_size(dtype));
  if (!dst) return NULL;
  if (adasplash_convert(src, ADASPLASH_F32, dst, dtype, n) != ADASPLASH_SUCCESS) {
    free(dst);
    return NULL;
  }
  return dst;
}

/* Reads a dtype buffer of n elements and counts the non-finite values (-1 on failure). */
static long bench_count_nonfinite(bench_env *env, cl_mem buf, size_t n, adasplash_dtype dtype) {
  size_t es = adasplash_dtype_size(dtype);
  void *raw = malloc(n * es);
  float *f = malloc(n * sizeof(float));
  long bad = -1;
  if (raw && f &&
      clEnqueueReadBuffer(env->queue, buf, CL_TRUE, 0, n * es, raw, 0, NULL, NULL) == CL_SUCCESS &&
      adasplash_convert(raw, dtype, f, ADASPLASH_F32, n) == ADASPLASH_SUCCESS) {
    bad = 0;
    for (size_t i = 0; i < n; ++i)
      if (!isfinite(f[i])) ++bad;
  }
  free(raw);
  free(f);
  return bad;
}

static int bench_mkdir(const char *dir) {
  if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
  return -1;
}

static int bench_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void bench_rm_tree(const char *dir) {
  nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- statistics and timing --------------------------------------------------------------------
 */

typedef struct bench_stats {
  int count;
  double min, median, mean, stddev;
} bench_stats;

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void bench_stats_of(double *v, int n, bench_stats *s) {
  memset(s, 0, sizeof *s);
  s->count = n;
  if (n <= 0) {
    s->min = s->median = s->mean = s->stddev = NAN;
    return;
  }
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  s->min = v[0];
  s->median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += v[i];
  s->mean = sum / n;
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += (v[i] - s->mean) * (v[i] - s->mean);
  s->stddev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

/* Enqueues one measured unit of work: ev[0] gets the event of the first library call, ev[1] that
 * of the second one (or stays NULL for single-call units). */
typedef adasplash_status (*bench_call_fn)(bench_env *env, void *arg, cl_event ev[2]);

static int bench_event_end(cl_event e, cl_ulong *t) {
  return clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof *t, t, NULL) == CL_SUCCESS;
}

static void bench_release_events(cl_event ev[2]) {
  for (int i = 0; i < 2; ++i)
    if (ev[i]) clReleaseEvent(ev[i]);
  ev[0] = ev[1] = NULL;
}

typedef struct bench_timing {
  bench_stats total; /* the whole unit (END of the last event) */
  bench_stats first; /* the first call alone (END of ev[0]) */
  int wall_clock;    /* 1 when the device gave no marker timestamps */
} bench_timing;

/* Runs fn warmup times untimed, then repeats times timed. Returns ADASPLASH_SUCCESS or the failing
 * status (note filled). */
static adasplash_status bench_time(bench_env *env, bench_call_fn fn, void *arg, bench_timing *out,
                                   char *note, size_t note_size) {
  const int warmup = env->o->warmup, repeats = env->o->repeats;
  double *tot = calloc((size_t)repeats, sizeof(double));
  double *first = calloc((size_t)repeats, sizeof(double));
  adasplash_status st = ADASPLASH_SUCCESS;
  memset(out, 0, sizeof *out);
  if (!tot || !first) {
    free(tot);
    free(first);
    snprintf(note, note_size, "out of host memory");
    return ADASPLASH_ERROR_OUT_OF_HOST_MEMORY;
  }
  for (int i = 0; i < warmup && st == ADASPLASH_SUCCESS; ++i) {
    cl_event ev[2] = {NULL, NULL};
    st = fn(env, arg, ev);
    if (st == ADASPLASH_SUCCESS) clFinish(env->queue);
    bench_release_events(ev);
  }
  for (int i = 0; i < repeats && st == ADASPLASH_SUCCESS; ++i) {
    cl_event ev[2] = {NULL, NULL}, marker = NULL;
    clFinish(env->queue);
    double w0 = bench_now();
    cl_int err = clEnqueueMarkerWithWaitList(env->queue, 0, NULL, &marker);
    if (err != CL_SUCCESS) {
      snprintf(note, note_size, "clEnqueueMarkerWithWaitList failed: %d", (int)err);
      st = ADASPLASH_ERROR_OPENCL;
      break;
    }
    st = fn(env, arg, ev);
    if (st != ADASPLASH_SUCCESS) {
      clFinish(env->queue);
      clReleaseEvent(marker);
      bench_release_events(ev);
      break;
    }
    cl_event last = ev[1] ? ev[1] : ev[0];
    err = clWaitForEvents(1, &ev[0]);
    double w1 = bench_now();
    if (err == CL_SUCCESS) err = clWaitForEvents(1, &last);
    double w2 = bench_now();
    if (err != CL_SUCCESS) {
      snprintf(note, note_size, "clWaitForEvents failed: %d", (int)err);
      st = ADASPLASH_ERROR_OPENCL;
    } else {
      cl_ulong t_mark = 0, t_first = 0, t_last = 0;
      if (!out->wall_clock && bench_event_end(marker, &t_mark) &&
          bench_event_end(ev[0], &t_first) && bench_event_end(last, &t_last)) {
        tot[i] = (double)(t_last - t_mark) * 1e-6;
        first[i] = (double)(t_first - t_mark) * 1e-6;
      } else {
        out->wall_clock = 1;
        tot[i] = (w2 - w0) * 1e3;
        first[i] = (w1 - w0) * 1e3;
      }
    }
    clReleaseEvent(marker);
    bench_release_events(ev);
  }
  if (st == ADASPLASH_SUCCESS) {
    bench_stats_of(tot, repeats, &out->total);
    bench_stats_of(first, repeats, &out->first);
  }
  free(tot);
  free(first);
  return st;
}

/* ---- JSON lines -------------------------------------------------------------------------------
 */

typedef struct bench_json {
  FILE *f;
  int first;
} bench_json;

static void bench_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void bench_json_key(bench_json *j, const char *key) {
  if (!j->first) fputc(',', j->f);
  j->first = 0;
  bench_json_string(j->f, key);
  fputc(':', j->f);
}

static void bench_json_str(bench_json *j, const char *key, const char *v) {
  bench_json_key(j, key);
  bench_json_string(j->f, v);
}

static void bench_json_num(bench_json *j, const char *key, double v) {
  bench_json_key(j, key);
  if (isfinite(v))
    fprintf(j->f, "%.6g", v);
  else
    fputs("null", j->f);
}

static void bench_json_int(bench_json *j, const char *key, long long v) {
  bench_json_key(j, key);
  fprintf(j->f, "%lld", v);
}

static void bench_json_bool(bench_json *j, const char *key, int v) {
  bench_json_key(j, key);
  fputs(v ? "true" : "false", j->f);
}

static void bench_json_stats(bench_json *j, const char *key, const bench_stats *s) {
  bench_json_key(j, key);
  bench_json sub = {j->f, 1};
  fputc('{', j->f);
  bench_json_num(&sub, "min", s->min);
  bench_json_num(&sub, "median", s->median);
  bench_json_num(&sub, "mean", s->mean);
  bench_json_num(&sub, "stddev", s->stddev);
  bench_json_int(&sub, "count", s->count);
  fputc('}', j->f);
}

/* Opens a record with the common header fields. */
static void bench_json_begin(bench_env *env, bench_json *j) {
  j->f = env->json;
  j->first = 1;
  fputc('{', j->f);
  bench_json_str(j, "format", BENCH_FORMAT);
  bench_json_str(j, "mode", bench_mode_names[env->o->mode]);
  bench_json_str(j, "date", env->date);
  bench_json_str(j, "device", env->info.device_name);
  bench_json_str(j, "device_vendor", env->info.device_vendor);
  bench_json_str(j, "device_version", env->info.device_version);
  bench_json_str(j, "platform", env->info.platform_name);
  bench_json_str(j, "platform_version", env->info.platform_version);
  bench_json_str(j, "driver", env->info.driver_version);
  bench_json_str(j, "kernel_path",
                 env->info.kernel_path == ADASPLASH_PATH_NVIDIA_MMA ? "nvidia" : "portable");
  bench_json_str(j, "library", adasplash_version());
  bench_json_int(j, "warmup", env->o->warmup);
  bench_json_int(j, "repeats", env->o->repeats);
}

static void bench_json_end(bench_json *j) {
  fputs("}\n", j->f);
  fflush(j->f);
}

/* ---- attention --------------------------------------------------------------------------------
 */

typedef struct attn_cfg {
  int b, h, n, d;
  adasplash_dtype dtype;
  double alpha, beta, sigma;
  uint64_t seed;
  int causal;
} attn_cfg;

typedef enum bench_outcome { OUT_OK = 0, OUT_SKIPPED = 1, OUT_ERROR = 2 } bench_outcome;
static const char *bench_outcome_names[] = {"ok", "skipped", "error"};

typedef struct attn_result {
  int algo;
  bench_outcome outcome;
  char note[1200];
  bench_timing fwd; /* attention-fwd: forward; fwd-bwd: total = fwd+bwd, first = fwd */
  double prepare_ms;
  int have_first_call;
  double cold_ms, warm_ms;
  unsigned long cold_builds, warm_builds, warm_disk_hits;
  int have_stats;
  adasplash_attention_stats stats;
  long nonfinite;
} attn_result;

/* Device buffers of one configuration, shared by the algorithms. */
typedef struct attn_buffers {
  cl_mem q, k, v, out, dout, dq, dk, dv, saved, workspace;
} attn_buffers;

typedef struct attn_call {
  adasplash_attention_desc desc;
  attn_buffers *buf;
  int backward;   /* forward then backward */
  int with_saved; /* forward writes saved */
} attn_call;

static adasplash_status attn_enqueue(bench_env *env, void *arg, cl_event ev[2]) {
  attn_call *c = arg;
  attn_buffers *b = c->buf;
  adasplash_status st =
      adasplash_attention_forward(env->ctx, &c->desc, NULL, b->q, b->k, b->v, b->out,
                                  c->with_saved ? b->saved : NULL, b->workspace, 0, NULL, &ev[0]);
  if (st != ADASPLASH_SUCCESS || !c->backward) return st;
  return adasplash_attention_backward(env->ctx, &c->desc, NULL, b->q, b->k, b->v, b->out, b->dout,
                                      b->saved, b->dq, b->dk, b->dv, NULL, b->workspace, 0, NULL,
                                      &ev[1]);
}

static double attn_flops(const attn_cfg *c, int fwd_bwd) {
  double f = 4.0 * c->b * c->h * (double)c->n * (double)c->n * c->d;
  if (c->causal) f *= 0.5;
  return fwd_bwd ? 3.5 * f : f;
}

static void attn_desc_of(const attn_cfg *c, int algo, adasplash_attention_desc *d) {
  adasplash_attention_desc_init(d);
  d->dtype = c->dtype;
  d->batch = c->b;
  d->q_heads = c->h;
  d->kv_heads = c->h;
  d->q_len = c->n;
  d->kv_len = c->n;
  d->head_dim = c->d;
  d->alpha = (float)c->alpha;
  d->causal = c->causal;
  d->algorithm = bench_algo_enum[algo];
}

/* Cold and warm first call: prepare + forward on fresh contexts sharing a new cache dir. */
static void attn_first_call(bench_env *env, const adasplash_attention_desc *desc,
                            void *const host[3], size_t tensor_bytes, attn_result *r) {
  const char *tmp = getenv("TMPDIR");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/adasplash-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    snprintf(r->note, sizeof r->note, "first-call: mkdtemp failed: %s", strerror(errno));
    return;
  }
  double ms[2] = {NAN, NAN};
  adasplash_cache_stats cs[2];
  memset(cs, 0, sizeof cs);
  int ok = 1;
  for (int pass = 0; pass < 2 && ok; ++pass) {
    adasplash_context_options opt;
    adasplash_context_options_init(&opt);
    opt.cache_dir = dir;
    adasplash_context *ctx = NULL;
    adasplash_status st = adasplash_context_create(&opt, &ctx);
    if (st != ADASPLASH_SUCCESS) {
      bench_lib_error(NULL, st, "first-call context", r->note, sizeof r->note);
      ok = 0;
      break;
    }
    adasplash_device_info di;
    di.struct_size = sizeof di;
    adasplash_context_get_device_info(ctx, &di);
    if (strcmp(di.device_name, env->info.device_name) != 0) {
      snprintf(r->note, sizeof r->note, "first-call: fresh context picked another device (%s)",
               di.device_name);
      adasplash_context_release(ctx);
      ok = 0;
      break;
    }
    cl_context clctx;
    cl_command_queue queue;
    adasplash_context_get_cl(ctx, &clctx, NULL, &queue);
    cl_mem m[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4 && ok; ++i) {
      cl_int err = CL_SUCCESS;
      m[i] = clCreateBuffer(clctx, CL_MEM_READ_WRITE, tensor_bytes, NULL, &err);
      if (err == CL_SUCCESS && i < 3)
        err = clEnqueueWriteBuffer(queue, m[i], CL_TRUE, 0, tensor_bytes, host[i], 0, NULL, NULL);
      if (err != CL_SUCCESS) {
        snprintf(r->note, sizeof r->note, "first-call: buffer setup failed: %d", (int)err);
        ok = 0;
      }
    }
    if (ok) {
      clFinish(queue);
      double t0 = bench_now();
      cl_event ev = NULL;
      st = adasplash_attention_prepare(ctx, desc);
      if (st == ADASPLASH_SUCCESS)
        st = adasplash_attention_forward(ctx, desc, NULL, m[0], m[1], m[2], m[3], NULL, NULL, 0,
                                         NULL, &ev);
      if (st == ADASPLASH_SUCCESS) {
        clWaitForEvents(1, &ev);
        clReleaseEvent(ev);
        ms[pass] = (bench_now() - t0) * 1e3;
      } else {
        bench_lib_error(ctx, st, "first-call forward", r->note, sizeof r->note);
        ok = 0;
      }
      cs[pass].struct_size = sizeof cs[pass];
      adasplash_context_get_cache_stats(ctx, &cs[pass]);
    }
    for (int i = 0; i < 4; ++i)
      if (m[i]) clReleaseMemObject(m[i]);
    adasplash_context_release(ctx);
  }
  bench_rm_tree(dir);
  if (ok) {
    r->have_first_call = 1;
    r->cold_ms = ms[0];
    r->warm_ms = ms[1];
    r->cold_builds = cs[0].builds;
    r->warm_builds = cs[1].builds;
    r->warm_disk_hits = cs[1].disk_hits;
  }
}

/* Runs one algorithm on one configuration (inputs already on the device). */
static void attn_run_algo(bench_env *env, const attn_cfg *c, int algo, attn_buffers *buf,
                          void *const host[3], attn_result *r) {
  const bench_opts *o = env->o;
  memset(r, 0, sizeof *r);
  r->algo = algo;
  r->cold_ms = r->warm_ms = NAN;
  attn_call call;
  attn_desc_of(c, algo, &call.desc);
  call.buf = buf;
  call.backward = o->mode == MODE_FWD_BWD;
  call.with_saved = o->mode == MODE_FWD_BWD;

  if (bench_algo_enum[algo] == ADASPLASH_ATTN_ENTMAX_DENSE) {
    double need = (double)c->b * c->h * (double)c->n * (double)c->n * 4.0 * 3.0;
    if (need > 0.5 * (double)env->info.global_mem_size ||
        need > (double)env->info.max_mem_alloc_size) {
      r->outcome = OUT_SKIPPED;
      snprintf(r->note, sizeof r->note,
               "dense needs B*H*N*N*4*3 = %.0f MiB: more than half the global memory (%.0f MiB) "
               "or the max allocation (%.0f MiB)",
               need / 1048576.0, (double)env->info.global_mem_size / 1048576.0,
               (double)env->info.max_mem_alloc_size / 1048576.0);
      return;
    }
  }

  double t0 = bench_now();
  adasplash_status st = adasplash_attention_prepare(env->ctx, &call.desc);
  r->prepare_ms = (bench_now() - t0) * 1e3;
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = st == ADASPLASH_ERROR_UNSUPPORTED ? OUT_SKIPPED : OUT_ERROR;
    bench_lib_error(env->ctx, st, "prepare", r->note, sizeof r->note);
    return;
  }
  size_t saved_bytes = 0, ws_bytes = 0;
  st = adasplash_attention_saved_size(env->ctx, &call.desc, &saved_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_attention_workspace_size(env->ctx, &call.desc, &ws_bytes);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    bench_lib_error(env->ctx, st, "saved/workspace size", r->note, sizeof r->note);
    return;
  }
  if (saved_bytes > env->info.max_mem_alloc_size || ws_bytes > env->info.max_mem_alloc_size) {
    r->outcome = OUT_SKIPPED;
    snprintf(r->note, sizeof r->note,
             "saved (%zu bytes) or workspace (%zu bytes) exceeds the max allocation", saved_bytes,
             ws_bytes);
    return;
  }
  buf->saved = bench_buffer(env, saved_bytes, NULL, r->note, sizeof r->note);
  buf->workspace = bench_buffer(env, ws_bytes, NULL, r->note, sizeof r->note);
  if ((saved_bytes && !buf->saved) || (ws_bytes && !buf->workspace)) {
    r->outcome = OUT_ERROR;
    goto done;
  }

  /* One untimed forward with a saved buffer: statistics and an output sanity check. */
  cl_event ev = NULL;
  st = adasplash_attention_forward(env->ctx, &call.desc, NULL, buf->q, buf->k, buf->v, buf->out,
                                   buf->saved, buf->workspace, 0, NULL, &ev);
  if (st == ADASPLASH_SUCCESS) {
    clWaitForEvents(1, &ev);
    clReleaseEvent(ev);
  } else {
    r->outcome = OUT_ERROR;
    bench_lib_error(env->ctx, st, "forward", r->note, sizeof r->note);
    goto done;
  }
  size_t elems = (size_t)c->b * c->h * (size_t)c->n * c->d;
  r->nonfinite = bench_count_nonfinite(env, buf->out, elems, c->dtype);
  if (bench_algo_enum[algo] == ADASPLASH_ATTN_ENTMAX) {
    r->stats.struct_size = sizeof r->stats;
    st = adasplash_attention_stats_read(env->ctx, &call.desc, NULL, buf->saved, &r->stats);
    if (st != ADASPLASH_SUCCESS) {
      r->outcome = OUT_ERROR;
      bench_lib_error(env->ctx, st, "stats_read", r->note, sizeof r->note);
      goto done;
    }
    r->have_stats = 1;
  }

  st = bench_time(env, attn_enqueue, &call, &r->fwd, r->note, sizeof r->note);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    if (!r->note[0]) bench_lib_error(env->ctx, st, "timed call", r->note, sizeof r->note);
    goto done;
  }
  if (call.backward && bench_algo_enum[algo] == ADASPLASH_ATTN_ENTMAX) {
    /* The saved buffer now holds the last timed forward: same inputs, same statistics. */
    adasplash_attention_stats again;
    again.struct_size = sizeof again;
    if (adasplash_attention_stats_read(env->ctx, &call.desc, NULL, buf->saved, &again) ==
        ADASPLASH_SUCCESS)
      r->stats = again;
  }
  if (r->nonfinite != 0) {
    r->outcome = OUT_ERROR;
    snprintf(r->note, sizeof r->note, "%ld non-finite output values%s", r->nonfinite,
             r->nonfinite < 0 ? " (read-back failed)" : "");
  }
  if (o->first_call) {
    bench_release(&buf->saved);
    bench_release(&buf->workspace);
    attn_first_call(env, &call.desc, host, elems * adasplash_dtype_size(c->dtype), r);
  }
done:
  bench_release(&buf->saved);
  bench_release(&buf->workspace);
}

static const attn_result *attn_find(const attn_result *res, int count, int algo) {
  for (int i = 0; i < count; ++i)
    if (res[i].algo == algo && res[i].outcome == OUT_OK) return &res[i];
  return NULL;
}

static void attn_print_header(const bench_opts *o) {
  if (o->mode == MODE_FWD_BWD)
    printf(
        "%-8s %-5s %3s %4s %6s %4s %5s %5s %3s | %9s %8s %6s %9s | %9s %8s %6s %9s | %5s %5s | "
        "%8s %7s %5s %8s | %9s %8s %8s\n",
        "algo", "dtype", "B", "H", "N", "D", "alpha", "beta", "cau", "fwd_med", "fwd_min", "sd%",
        "TFLOP/s", "fb_med", "fb_min", "sd%", "TFLOP/s", "r_fwd", "r_fb", "sparsity", "sweeps",
        "conv", "resid", "prep_ms", "cold_ms", "warm_ms");
  else
    printf(
        "%-8s %-5s %3s %4s %6s %4s %5s %5s %3s | %9s %8s %6s %9s | %5s | %8s %7s %5s %8s | %9s "
        "%8s %8s\n",
        "algo", "dtype", "B", "H", "N", "D", "alpha", "beta", "cau", "fwd_med", "fwd_min", "sd%",
        "TFLOP/s", "r_fwd", "sparsity", "sweeps", "conv", "resid", "prep_ms", "cold_ms", "warm_ms");
  fflush(stdout);
}

static void attn_report(bench_env *env, const attn_cfg *c, const attn_result *res, int count) {
  const bench_opts *o = env->o;
  const int fb = o->mode == MODE_FWD_BWD;
  const attn_result *soft = attn_find(res, count, 1);
  for (int i = 0; i < count; ++i) {
    const attn_result *r = &res[i];
    const bench_timing *t = &r->fwd;
    /* forward alone: in fwd-bwd mode the first event of the unit, else the whole unit */
    const bench_stats *fwd = fb ? &t->first : &t->total;
    const bench_stats *sfwd = soft ? (fb ? &soft->fwd.first : &soft->fwd.total) : NULL;
    double r_fwd = sfwd ? fwd->median / sfwd->median : NAN;
    double r_fb = soft && fb ? t->total.median / soft->fwd.total.median : NAN;
    double tf_fwd = attn_flops(c, 0) / (fwd->median * 1e-3) * 1e-12;
    double tf_fb = attn_flops(c, 1) / (t->total.median * 1e-3) * 1e-12;
    printf("%-8s %-5s %3d %4d %6d %4d %5.2f %5.2f %3s | ", bench_algo_names[r->algo],
           bench_dtype_names[c->dtype], c->b, c->h, c->n, c->d, c->alpha, c->beta,
           c->causal ? "yes" : "no");
    if (r->outcome != OUT_OK) {
      printf("%s: %s\n", bench_outcome_names[r->outcome], r->note);
    } else {
      printf("%9.3f %8.3f %6.1f %9.3f | ", fwd->median, fwd->min, 100.0 * fwd->stddev / fwd->mean,
             tf_fwd);
      if (fb)
        printf("%9.3f %8.3f %6.1f %9.3f | %5.2f %5.2f | ", t->total.median, t->total.min,
               100.0 * t->total.stddev / t->total.mean, tf_fb, r_fwd, r_fb);
      else
        printf("%5.2f | ", r_fwd);
      if (r->have_stats)
        printf("%8.4f %3.1f/%-3d %5s %8.1e | ", r->stats.block_sparsity, r->stats.mean_sweeps,
               r->stats.max_sweeps, r->stats.converged ? "yes" : "NO", r->stats.max_residual);
      else
        printf("%8s %7s %5s %8s | ", "-", "-", "-", "-");
      printf("%9.1f ", r->prepare_ms);
      if (r->have_first_call)
        printf("%8.1f %8.1f", r->cold_ms, r->warm_ms);
      else
        printf("%8s %8s", "-", "-");
      if (t->wall_clock) printf("  (wall clock)");
      printf("\n");
    }
    if (!env->json) continue;
    bench_json j;
    bench_json_begin(env, &j);
    bench_json_str(&j, "algo", bench_algo_names[r->algo]);
    bench_json_str(&j, "status", bench_outcome_names[r->outcome]);
    if (r->note[0]) bench_json_str(&j, "note", r->note);
    bench_json_str(&j, "dtype", bench_dtype_names[c->dtype]);
    bench_json_int(&j, "b", c->b);
    bench_json_int(&j, "h", c->h);
    bench_json_int(&j, "n", c->n);
    bench_json_int(&j, "d", c->d);
    bench_json_num(&j, "alpha", c->alpha);
    bench_json_num(&j, "beta", c->beta);
    bench_json_num(&j, "sigma", c->sigma);
    bench_json_int(&j, "seed", (long long)c->seed);
    bench_json_bool(&j, "causal", c->causal);
    bench_json_str(&j, "flop_model", BENCH_FLOP_MODEL);
    if (r->outcome == OUT_OK) {
      bench_json_str(&j, "timing", t->wall_clock ? "wall-clock" : "profiling-marker");
      bench_json_bool(&j, "fwd_saved", fb);
      bench_json_stats(&j, "fwd_ms", fwd);
      bench_json_num(&j, "fwd_tflops", tf_fwd);
      bench_json_num(&j, "ratio_fwd", r_fwd);
      if (fb) {
        bench_json_stats(&j, "fwd_bwd_ms", &t->total);
        bench_json_num(&j, "fwd_bwd_tflops", tf_fb);
        bench_json_num(&j, "ratio_fwd_bwd", r_fb);
      }
      bench_json_num(&j, "prepare_ms", r->prepare_ms);
      if (r->have_stats) {
        bench_json_num(&j, "block_sparsity", r->stats.block_sparsity);
        bench_json_num(&j, "tile", (double)r->stats.tile_m);
        if (r->stats.block_sparsity_64 >= 0.0)
          bench_json_num(&j, "block_sparsity_64", r->stats.block_sparsity_64);
        bench_json_int(&j, "visible_tiles", (long long)r->stats.visible_tiles);
        bench_json_int(&j, "active_tiles", (long long)r->stats.active_tiles);
        bench_json_num(&j, "mean_sweeps", r->stats.mean_sweeps);
        bench_json_int(&j, "max_sweeps", r->stats.max_sweeps);
        bench_json_bool(&j, "converged", r->stats.converged);
        bench_json_num(&j, "max_residual", r->stats.max_residual);
        bench_json_int(&j, "tile_m", r->stats.tile_m);
        bench_json_int(&j, "tile_n", r->stats.tile_n);
      }
    }
    if (r->have_first_call) {
      bench_json_num(&j, "cold_ms", r->cold_ms);
      bench_json_num(&j, "warm_ms", r->warm_ms);
      bench_json_int(&j, "cold_builds", (long long)r->cold_builds);
      bench_json_int(&j, "warm_builds", (long long)r->warm_builds);
      bench_json_int(&j, "warm_disk_hits", (long long)r->warm_disk_hits);
    }
    bench_json_end(&j);
  }
  fflush(stdout);
}

static int attn_dump(bench_env *env, const attn_cfg *c, float *const f[3]) {
  if (bench_mkdir(env->o->dump_dir) != 0) {
    bench_err("--dump: cannot create %s: %s", env->o->dump_dir, strerror(errno));
    return -1;
  }
  const size_t shape[4] = {(size_t)c->b, (size_t)c->h, (size_t)c->n, (size_t)c->d};
  static const char *names[3] = {"q.npy", "k.npy", "v.npy"};
  for (int i = 0; i < 3; ++i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", env->o->dump_dir, names[i]);
    if (bench_npy_write_f32(path, f[i], shape, 4) != 0) {
      bench_err("--dump: writing %s failed: %s", path, strerror(errno));
      return -1;
    }
  }
  fprintf(stderr,
          "adasplash-bench: inputs of B=%d H=%d N=%d D=%d beta=%g sigma=%g seed=%llu "
          "written to %s/{q,k,v}.npy\n",
          c->b, c->h, c->n, c->d, c->beta, c->sigma, (unsigned long long)c->seed, env->o->dump_dir);
  return 0;
}

/* One input set (n, b, h, d, beta, sigma, seed): every dtype, alpha and algorithm. */
static void attn_run_inputs(bench_env *env, attn_cfg base) {
  const bench_opts *o = env->o;
  const size_t elems = (size_t)base.b * base.h * (size_t)base.n * base.d;
  float *f[4] = {malloc(elems * sizeof(float)), malloc(elems * sizeof(float)),
                 malloc(elems * sizeof(float)), malloc(elems * sizeof(float))};
  if (!f[0] || !f[1] || !f[2] || !f[3]) {
    bench_err("out of host memory for N=%d (B=%d H=%d D=%d)", base.n, base.b, base.h, base.d);
    env->failures++;
    for (int i = 0; i < 4; ++i) free(f[i]);
    return;
  }
  bench_locality_params lp = {base.b, base.h, base.n, base.d, base.beta, base.sigma, base.seed};
  bench_locality_generate(&lp, f[0], f[1], f[2]);
  bench_dout_generate(&lp, f[3]);
  if (o->dump_dir && !env->dumped) {
    env->dumped = 1;
    if (attn_dump(env, &base, f) != 0) env->failures++;
  }
  for (int di = 0; di < o->dtypes.n; ++di) {
    attn_cfg c = base;
    c.dtype = (adasplash_dtype)o->dtypes.v[di];
    const size_t bytes = elems * adasplash_dtype_size(c.dtype);
    void *host[4] = {NULL, NULL, NULL, NULL};
    attn_buffers buf;
    memset(&buf, 0, sizeof buf);
    char note[256] = "";
    int ok = 1;
    for (int i = 0; i < 4 && ok; ++i) ok = (host[i] = bench_to_dtype(f[i], elems, c.dtype)) != NULL;
    if (!ok) snprintf(note, sizeof note, "out of host memory");
    if (ok) {
      cl_mem *dev[8] = {&buf.q, &buf.k, &buf.v, &buf.dout, &buf.out, &buf.dq, &buf.dk, &buf.dv};
      for (int i = 0; i < 8 && ok; ++i) {
        *dev[i] = bench_buffer(env, bytes, i < 4 ? host[i] : NULL, note, sizeof note);
        ok = *dev[i] != NULL;
      }
    }
    for (int ai = 0; ai < o->alpha.n; ++ai) {
      c.alpha = o->alpha.v[ai];
      env->step++;
      attn_result res[3];
      for (int k = 0; k < o->algos.n; ++k) {
        int algo = (int)o->algos.v[k];
        bench_progress(env, "%s N=%d B=%d H=%d D=%d %s alpha=%g beta=%g: %s",
                       bench_mode_names[o->mode], c.n, c.b, c.h, c.d, bench_dtype_names[c.dtype],
                       c.alpha, c.beta, bench_algo_names[algo]);
        if (!ok) {
          memset(&res[k], 0, sizeof res[k]);
          res[k].algo = algo;
          res[k].outcome = OUT_ERROR;
          snprintf(res[k].note, sizeof res[k].note, "input setup: %s", note);
        } else {
          attn_run_algo(env, &c, algo, &buf, host, &res[k]);
        }
        if (res[k].outcome == OUT_ERROR) env->failures++;
      }
      attn_report(env, &c, res, o->algos.n);
    }
    cl_mem *all[8] = {&buf.q, &buf.k, &buf.v, &buf.dout, &buf.out, &buf.dq, &buf.dk, &buf.dv};
    for (int i = 0; i < 8; ++i) bench_release(all[i]);
    for (int i = 0; i < 4; ++i) free(host[i]);
  }
  for (int i = 0; i < 4; ++i) free(f[i]);
}

static void attn_run(bench_env *env) {
  const bench_opts *o = env->o;
  env->steps = o->n.n * o->b.n * o->h.n * o->d.n * o->beta.n * o->sigma.n * o->seed.n *
               o->dtypes.n * o->alpha.n;
  attn_print_header(o);
  for (int in = 0; in < o->n.n; ++in)
    for (int ib = 0; ib < o->b.n; ++ib)
      for (int ih = 0; ih < o->h.n; ++ih)
        for (int id = 0; id < o->d.n; ++id)
          for (int ibeta = 0; ibeta < o->beta.n; ++ibeta)
            for (int is = 0; is < o->sigma.n; ++is)
              for (int iseed = 0; iseed < o->seed.n; ++iseed) {
                attn_cfg c;
                memset(&c, 0, sizeof c);
                c.n = (int)o->n.v[in];
                c.b = (int)o->b.v[ib];
                c.h = (int)o->h.v[ih];
                c.d = (int)o->d.v[id];
                c.beta = o->beta.v[ibeta];
                c.sigma = o->sigma.v[is];
                c.seed = (uint64_t)o->seed.v[iseed];
                c.causal = o->causal;
                attn_run_inputs(env, c);
              }
}

/* ---- entmax rows ------------------------------------------------------------------------------
 */

enum { ROWS_HIST = 0, ROWS_BRACKET = 1, ROWS_SOFTMAX = 2, ROWS_ALGOS = 3 };
static const char *rows_algo_names[] = {"entmax-hist", "entmax-bracket", "softmax"};

typedef struct rows_cfg {
  size_t rows, cols;
  int kind;
  adasplash_dtype dtype;
  double alpha;
  uint64_t seed;
} rows_cfg;

typedef struct rows_result {
  bench_outcome outcome;
  char note[1200];
  bench_timing t;
  double prepare_ms;
  int have_sweeps;
  unsigned long hist[BENCH_MAX_SWEEPS + 1]; /* index = sweeps (last bucket: >= BENCH_MAX_SWEEPS) */
  unsigned long not_converged;
  double mean_sweeps;
  int max_sweeps;
  long nonfinite;
} rows_result;

typedef struct rows_call {
  adasplash_entmax_desc desc;
  int softmax;
  cl_mem x, y, sweeps;
} rows_call;

static adasplash_status rows_enqueue(bench_env *env, void *arg, cl_event ev[2]) {
  rows_call *c = arg;
  if (c->softmax)
    return adasplash_softmax_rows_forward(env->ctx, &c->desc, NULL, c->x, c->y, 0, NULL, &ev[0]);
  return adasplash_entmax_forward(env->ctx, &c->desc, NULL, c->x, c->y, c->sweeps, 0, NULL, &ev[0]);
}

static void rows_run_algo(bench_env *env, const rows_cfg *c, int algo, cl_mem x, cl_mem y,
                          cl_mem sweeps, rows_result *r) {
  const bench_opts *o = env->o;
  memset(r, 0, sizeof *r);
  rows_call call;
  adasplash_entmax_desc_init(&call.desc);
  call.desc.dtype = c->dtype;
  call.desc.rows = c->rows;
  call.desc.cols = c->cols;
  call.desc.alpha = (float)c->alpha;
  call.desc.tolerance = (float)o->tolerance;
  call.desc.max_iter = o->max_iter;
  call.desc.init = algo == ROWS_BRACKET ? ADASPLASH_INIT_BRACKET : ADASPLASH_INIT_HISTOGRAM;
  call.softmax = algo == ROWS_SOFTMAX;
  call.x = x;
  call.y = y;
  call.sweeps = NULL;
  double t0 = bench_now();
  adasplash_status st = adasplash_entmax_prepare(env->ctx, &call.desc);
  r->prepare_ms = (bench_now() - t0) * 1e3;
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = st == ADASPLASH_ERROR_UNSUPPORTED ? OUT_SKIPPED : OUT_ERROR;
    bench_lib_error(env->ctx, st, "prepare", r->note, sizeof r->note);
    return;
  }
  st = bench_time(env, rows_enqueue, &call, &r->t, r->note, sizeof r->note);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    if (!r->note[0]) bench_lib_error(env->ctx, st, "timed call", r->note, sizeof r->note);
    return;
  }
  if (!call.softmax) {
    /* One more run with the sweeps output (not timed: writing it is extra traffic). */
    call.sweeps = sweeps;
    cl_event ev[2] = {NULL, NULL};
    st = rows_enqueue(env, &call, ev);
    if (st == ADASPLASH_SUCCESS) clWaitForEvents(1, &ev[0]);
    bench_release_events(ev);
    int *s = malloc(c->rows * sizeof(int));
    if (st != ADASPLASH_SUCCESS || !s ||
        clEnqueueReadBuffer(env->queue, sweeps, CL_TRUE, 0, c->rows * sizeof(int), s, 0, NULL,
                            NULL) != CL_SUCCESS) {
      r->outcome = OUT_ERROR;
      if (st != ADASPLASH_SUCCESS)
        bench_lib_error(env->ctx, st, "forward with sweeps", r->note, sizeof r->note);
      else
        snprintf(r->note, sizeof r->note, "reading the sweeps buffer failed");
      free(s);
      return;
    }
    double sum = 0.0;
    for (size_t i = 0; i < c->rows; ++i) {
      int v = s[i] < 0 ? -s[i] : s[i];
      if (s[i] < 0) r->not_converged++;
      sum += v;
      if (v > r->max_sweeps) r->max_sweeps = v;
      r->hist[v < BENCH_MAX_SWEEPS ? v : BENCH_MAX_SWEEPS]++;
    }
    r->mean_sweeps = sum / (double)c->rows;
    r->have_sweeps = 1;
    free(s);
  }
  r->nonfinite = bench_count_nonfinite(env, y, c->rows * c->cols, c->dtype);
  if (r->nonfinite != 0) {
    r->outcome = OUT_ERROR;
    snprintf(r->note, sizeof r->note, "%ld non-finite output values%s", r->nonfinite,
             r->nonfinite < 0 ? " (read-back failed)" : "");
  }
}

static void rows_print_header(void) {
  printf("%-14s %-5s %-8s %7s %7s %5s | %9s %9s %6s %8s | %6s | %5s %4s %3s  %s\n", "algo", "dtype",
         "kind", "rows", "cols", "alpha", "med_ms", "min_ms", "sd%", "GB/s", "ratio", "mean", "max",
         "nc", "sweeps histogram (sweeps:rows)");
  fflush(stdout);
}

static void rows_report(bench_env *env, const rows_cfg *c, const rows_result *res) {
  const rows_result *soft = res[ROWS_SOFTMAX].outcome == OUT_OK ? &res[ROWS_SOFTMAX] : NULL;
  const double bytes = 2.0 * (double)c->rows * (double)c->cols * adasplash_dtype_size(c->dtype);
  for (int a = 0; a < ROWS_ALGOS; ++a) {
    const rows_result *r = &res[a];
    const bench_stats *s = &r->t.total;
    double ratio = soft ? s->median / soft->t.total.median : NAN;
    double gbs = bytes / (s->median * 1e-3) * 1e-9;
    printf("%-14s %-5s %-8s %7zu %7zu %5.2f | ", rows_algo_names[a], bench_dtype_names[c->dtype],
           bench_kind_names[c->kind], c->rows, c->cols, c->alpha);
    if (r->outcome != OUT_OK) {
      printf("%s: %s\n", bench_outcome_names[r->outcome], r->note);
    } else {
      printf("%9.3f %9.3f %6.1f %8.2f | %6.2f | ", s->median, s->min, 100.0 * s->stddev / s->mean,
             gbs, ratio);
      if (r->have_sweeps) {
        printf("%5.2f %4d %3lu  ", r->mean_sweeps, r->max_sweeps, r->not_converged);
        for (int v = 0; v <= BENCH_MAX_SWEEPS; ++v)
          if (r->hist[v]) printf("%s%d:%lu ", v == BENCH_MAX_SWEEPS ? ">=" : "", v, r->hist[v]);
      } else {
        printf("%5s %4s %3s", "-", "-", "-");
      }
      if (r->t.wall_clock) printf(" (wall clock)");
      printf("\n");
    }
    if (!env->json) continue;
    bench_json j;
    bench_json_begin(env, &j);
    bench_json_str(&j, "algo", rows_algo_names[a]);
    bench_json_str(&j, "status", bench_outcome_names[r->outcome]);
    if (r->note[0]) bench_json_str(&j, "note", r->note);
    bench_json_str(&j, "dtype", bench_dtype_names[c->dtype]);
    bench_json_str(&j, "rows_kind", bench_kind_names[c->kind]);
    bench_json_int(&j, "rows", (long long)c->rows);
    bench_json_int(&j, "cols", (long long)c->cols);
    bench_json_num(&j, "alpha", c->alpha);
    bench_json_num(&j, "scale", env->o->scale);
    if (c->kind == BENCH_ROWS_PEAKED) bench_json_int(&j, "peaks", env->o->peaks);
    bench_json_int(&j, "seed", (long long)c->seed);
    bench_json_num(&j, "tolerance", env->o->tolerance);
    bench_json_int(&j, "max_iter", env->o->max_iter);
    if (r->outcome == OUT_OK) {
      bench_json_str(&j, "timing", r->t.wall_clock ? "wall-clock" : "profiling-marker");
      bench_json_stats(&j, "ms", s);
      bench_json_num(&j, "gb_per_s", gbs);
      bench_json_num(&j, "ratio_softmax", ratio);
      bench_json_num(&j, "prepare_ms", r->prepare_ms);
      if (r->have_sweeps) {
        bench_json_num(&j, "sweeps_mean", r->mean_sweeps);
        bench_json_int(&j, "sweeps_max", r->max_sweeps);
        bench_json_int(&j, "not_converged", (long long)r->not_converged);
        bench_json_key(&j, "sweeps_hist");
        bench_json sub = {j.f, 1};
        fputc('{', j.f);
        for (int v = 0; v <= BENCH_MAX_SWEEPS; ++v) {
          if (!r->hist[v]) continue;
          char key[16];
          snprintf(key, sizeof key, "%s%d", v == BENCH_MAX_SWEEPS ? ">=" : "", v);
          bench_json_int(&sub, key, (long long)r->hist[v]);
        }
        fputc('}', j.f);
      }
    }
    bench_json_end(&j);
  }
  fflush(stdout);
}

static void rows_run(bench_env *env) {
  const bench_opts *o = env->o;
  env->steps = o->rows.n * o->cols.n * o->kinds.n * o->seed.n * o->dtypes.n * o->alpha.n;
  rows_print_header();
  for (int ir = 0; ir < o->rows.n; ++ir)
    for (int ic = 0; ic < o->cols.n; ++ic)
      for (int ik = 0; ik < o->kinds.n; ++ik)
        for (int is = 0; is < o->seed.n; ++is) {
          rows_cfg c;
          memset(&c, 0, sizeof c);
          c.rows = (size_t)o->rows.v[ir];
          c.cols = (size_t)o->cols.v[ic];
          c.kind = (int)o->kinds.v[ik];
          c.seed = (uint64_t)o->seed.v[is];
          const size_t elems = c.rows * c.cols;
          float *x = NULL;
          for (int di = 0; di < o->dtypes.n; ++di) {
            c.dtype = (adasplash_dtype)o->dtypes.v[di];
            const size_t bytes = elems * adasplash_dtype_size(c.dtype);
            rows_result res[ROWS_ALGOS];
            memset(res, 0, sizeof res);
            char note[256] = "";
            int skip = 0;
            if ((double)bytes > (double)env->info.max_mem_alloc_size ||
                2.0 * (double)bytes > 0.5 * (double)env->info.global_mem_size) {
              skip = 1;
              snprintf(note, sizeof note,
                       "x and y (%.0f MiB each) exceed the max allocation or together half the "
                       "global memory",
                       (double)bytes / 1048576.0);
            }
            if (!skip && !x) {
              x = malloc(elems * sizeof(float));
              if (x)
                bench_rows_generate((bench_rows_kind)c.kind, c.rows, c.cols, o->scale, o->peaks,
                                    c.seed, x);
              if (x && o->dump_dir && !env->dumped) {
                env->dumped = 1;
                char path[4096];
                const size_t shape[2] = {c.rows, c.cols};
                snprintf(path, sizeof path, "%s/x.npy", o->dump_dir);
                if (bench_mkdir(o->dump_dir) != 0 || bench_npy_write_f32(path, x, shape, 2) != 0) {
                  bench_err("--dump: writing %s failed: %s", path, strerror(errno));
                  env->failures++;
                }
              }
            }
            void *hx = (!skip && x) ? bench_to_dtype(x, elems, c.dtype) : NULL;
            cl_mem dx = NULL, dy = NULL, ds = NULL;
            if (!skip) {
              if (hx) dx = bench_buffer(env, bytes, hx, note, sizeof note);
              if (dx) dy = bench_buffer(env, bytes, NULL, note, sizeof note);
              if (dy) ds = bench_buffer(env, c.rows * sizeof(int), NULL, note, sizeof note);
              if (!hx) snprintf(note, sizeof note, "out of host memory");
            }
            for (int ai = 0; ai < o->alpha.n; ++ai) {
              c.alpha = o->alpha.v[ai];
              env->step++;
              for (int a = 0; a < ROWS_ALGOS; ++a) {
                bench_progress(env, "entmax-rows %zux%zu %s %s alpha=%g: %s", c.rows, c.cols,
                               bench_kind_names[c.kind], bench_dtype_names[c.dtype], c.alpha,
                               rows_algo_names[a]);
                if (skip || !ds) {
                  res[a].outcome = skip ? OUT_SKIPPED : OUT_ERROR;
                  snprintf(res[a].note, sizeof res[a].note, "%s", note);
                } else {
                  rows_run_algo(env, &c, a, dx, dy, ds, &res[a]);
                }
                if (res[a].outcome == OUT_ERROR) env->failures++;
              }
              rows_report(env, &c, res);
            }
            bench_release(&dx);
            bench_release(&dy);
            bench_release(&ds);
            free(hx);
          }
          free(x);
        }
}

/* Tiny sizes of every mode for CI (seconds on a CPU device). */
static void bench_smoke_opts(bench_opts *o) {
  bench_set_ints(&o->algos, 3, (const long long[]){0, 1, 2});
  bench_set_ints(&o->n, 2, (const long long[]){64, 100});
  bench_set_ints(&o->b, 1, (const long long[]){1});
  bench_set_ints(&o->h, 1, (const long long[]){2});
  bench_set_ints(&o->d, 1, (const long long[]){32});
  bench_set_ints(&o->seed, 1, (const long long[]){1});
  bench_set_ints(&o->rows, 1, (const long long[]){64});
  bench_set_ints(&o->cols, 2, (const long long[]){100, 1000});
  bench_set_ints(&o->dtypes, 2, (const long long[]){ADASPLASH_F32, ADASPLASH_BF16});
  bench_set_ints(&o->kinds, 2, (const long long[]){BENCH_ROWS_GAUSSIAN, BENCH_ROWS_PEAKED});
  o->alpha.n = 1;
  o->alpha.v[0] = 1.5;
  o->beta.n = 1;
  o->beta.v[0] = 2.0;
  o->sigma.n = 1;
  o->sigma.v[0] = 0.15;
  o->warmup = 1;
  o->repeats = 2;
}

/* ---- main -------------------------------------------------------------------------------------
 */

int main(int argc, char **argv) {
  bench_opts o;
  int rc = bench_parse_args(argc, argv, &o);
  if (rc != 0) return rc > 0 ? 0 : BENCH_EXIT_USAGE;

  if (o.smoke) bench_smoke_opts(&o);

  bench_env env;
  memset(&env, 0, sizeof env);
  env.o = &o;
  env.progress = isatty(fileno(stderr));
  time_t now = time(NULL);
  strftime(env.date, sizeof env.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

  adasplash_context_options opt;
  adasplash_context_options_init(&opt);
  opt.queue_properties = CL_QUEUE_PROFILING_ENABLE;
  adasplash_status st = adasplash_context_create(&opt, &env.ctx);
  if (st != ADASPLASH_SUCCESS) {
    char note[1200];
    bench_lib_error(NULL, st, "context creation", note, sizeof note);
    if (st == ADASPLASH_ERROR_NO_DEVICE) {
      printf("SKIP: no OpenCL device: %s\n", note);
      return BENCH_EXIT_NO_DEVICE;
    }
    bench_err("%s", note);
    return BENCH_EXIT_FAIL;
  }
  adasplash_context_get_cl(env.ctx, &env.cl, &env.device, &env.queue);
  env.info.struct_size = sizeof env.info;
  adasplash_context_get_device_info(env.ctx, &env.info);
  adasplash_cache_stats cs;
  cs.struct_size = sizeof cs;
  adasplash_context_get_cache_stats(env.ctx, &cs);
  printf("adasplash-bench %s, mode %s, %s\n", adasplash_version(), bench_mode_names[o.mode],
         env.date);
  printf("device: %s / %s (driver %s, %s, %u CUs, %.1f GiB, kernel path %s; %s)\n",
         env.info.platform_name, env.info.device_name, env.info.driver_version,
         env.info.device_version, env.info.compute_units,
         (double)env.info.global_mem_size / 1073741824.0,
         env.info.kernel_path == ADASPLASH_PATH_NVIDIA_MMA ? "nvidia" : "portable",
         env.info.selection_reason);
  printf("cache: %s; warmup %d, repeats %d; times in ms (median, min, stddev %% of mean)\n",
         cs.cache_dir[0] ? cs.cache_dir : "(disabled)", o.warmup, o.repeats);
  fflush(stdout);

  if (o.json_path) {
    env.json = fopen(o.json_path, "a");
    if (!env.json) {
      bench_err("--json: cannot open %s: %s", o.json_path, strerror(errno));
      adasplash_context_release(env.ctx);
      return BENCH_EXIT_FAIL;
    }
  }
  if (o.smoke) {
    for (int m = MODE_FWD; m <= MODE_ROWS; ++m) {
      o.mode = (bench_mode)m;
      o.first_call = m == MODE_FWD;
      env.step = 0;
      printf("\n== %s\n", bench_mode_names[m]);
      if (o.mode == MODE_ROWS)
        rows_run(&env);
      else
        attn_run(&env);
    }
  } else if (o.mode == MODE_ROWS) {
    rows_run(&env);
  } else {
    attn_run(&env);
  }

  if (env.json) fclose(env.json);
  adasplash_context_release(env.ctx);
  if (env.failures) bench_err("%d measurement(s) failed", env.failures);
  return env.failures ? BENCH_EXIT_FAIL : 0;
}
