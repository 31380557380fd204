/*
 * adasplash_tune.c - the adasplash-tune tool: searches the launch parameters of the attention and
 * row-entmax kernels on one device (ADASPLASH_DEVICE rules), verifies every candidate against the
 * double-precision reference before timing it, and writes the per-device tuned file the library
 * reads (docs/TUNING.md). --check verifies that a tuned file is accepted.
 *
 * Search: coordinate descent from the library's defaults, one key at a time in the order of the
 * table in tune_space.c; every value of a key is measured with the other keys at their best so
 * far, and the fastest is kept when it beats the current best by more than TUNE_MIN_GAIN.
 * Attention keys are timed on forward + backward, row keys on the forward. Every candidate runs in
 * its own context (options.tune) that borrows one cl_context and one profiling queue.
 *
 * Exit codes: 0 success, 1 failure (no device, library error, defaults failing verification, file
 * not written or not accepted), 2 bad command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adasplash.h"
#include "cli.h"
#include "report.h"
#include "timing.h"
#include "tune_file.h"
#include "tune_space.h"
#include "tune_work.h"
#include "tune_verify.h"

#define EXIT_USAGE 2
#define TUNE_MIN_GAIN 0.02   /* a new value must be this much faster to replace the best */
#define TUNE_ATTN_SHARE 0.75 /* share of the budget for the attention search (rows: the rest) */
/* ADASPLASH_TUNE_FILE while searching, so that candidates start from the library's defaults. */
#define TUNE_IGNORE_FILE "/dev/null"

static const char *tune_usage =
    "usage: adasplash-tune [options]\n"
    "       adasplash-tune --check [FILE]\n"
    "\n"
    "Searches tile sizes, work-group sizes and histogram bins of the attention and row-entmax\n"
    "kernels on the device the library picks (ADASPLASH_DEVICE), verifies every candidate against\n"
    "the double-precision reference (fp32, small shapes) before timing it, and writes the\n"
    "per-device tuned file the library reads (ADASPLASH_TUNE_FILE, else\n"
    "<cache dir>/tuned-<device hash>.conf). See docs/TUNING.md.\n"
    "\n"
    "  --n N               attention sequence length (default 4096 on GPUs, 1024 otherwise)\n"
    "  --d D               head dim (default 64)\n"
    "  --heads H           heads (default 16 on GPUs, 4 otherwise)\n"
    "  --batch B           batch (default 1)\n"
    "  --dtype T           f32, f16 or bf16: storage of the timed shapes (default bf16 on GPUs,\n"
    "                      f32 otherwise; verification is always fp32)\n"
    "  --alpha A           entmax alpha in (1, 2] (default 1.5)\n"
    "  --rows R --cols C   row-entmax shape (default 16384 x 1024 on GPUs, 4096 x 1024 otherwise)\n"
    "  --only WHAT         attention or rows: search only those keys (the file gets only them)\n"
    "  --budget-seconds S  stop trying new candidates after S seconds, keep the best so far\n"
    "                      (default 600; attention gets 75%, rows the rest; the defaults are\n"
    "                      always measured)\n"
    "  --quick             try only the neighbours of each default value, 3 timed runs\n"
    "  --repeats R         timed runs per candidate, median reported (default 10 on GPUs, 5\n"
    "                      otherwise; 3 with --quick)\n"
    "  --output FILE       write FILE instead of the library's default location\n"
    "  --dry-run           print the file on stdout instead of writing it\n"
    "  --check [FILE]      create a context reading FILE (default: the device's tuned file), "
    "check\n"
    "                      that every key was applied and run verified attention and row calls\n"
    "  --help, --version\n"
    "\n"
    "Progress goes to stderr; the result table (candidate, verified?, median ms, speedup over the\n"
    "defaults) to stdout. While searching, the existing tuned file and ADASPLASH_TUNE are "
    "ignored.\n";

typedef struct tune_opts {
  int batch, heads, n, d, repeats;
  adasplash_dtype dtype;
  int dtype_set;
  double alpha, budget;
  size_t rows, cols;
  int quick, dry_run, do_attention, do_rows, check;
  const char *output, *check_file;
} tune_opts;

typedef enum tune_outcome { TUNE_MEASURED = 0, TUNE_OFF = 1, TUNE_SKIPPED = 2 } tune_outcome;

typedef struct tune_line {
  tune_target target;
  char label[192];
  tune_outcome outcome;
  double ms;
  char note[512];
} tune_line;

typedef struct tune_run {
  tune_opts *o;
  double t_start;
  cl_context clctx;
  cl_device_id device;
  cl_command_queue queue;
  adasplash_device_info info;
  tune_config defaults, best;
  tune_verify *verify;
  tune_line *lines;
  size_t nlines, cap;
  double default_ms[2], best_ms[2];
  int measured[2], wall_clock;
  char unsearched[2][256]; /* keys the budget left out */
} tune_run;

/* ---- small helpers ---------------------------------------------------------------------------
 */

#define TUNE_PROG "adasplash-tune"

/* Progress on stderr with the elapsed time. */
static void tune_progress(const tune_run *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void tune_progress(const tune_run *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "adasplash-tune: [%7.1f s] ", dt_now() - r->t_start);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* printf at out + *used, advancing *used (output cut at size). */
static void tune_appendf(char *out, size_t size, size_t *used, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void tune_appendf(char *out, size_t size, size_t *used, const char *fmt, ...) {
  if (*used + 1 >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(out + *used, size - *used, fmt, ap);
  va_end(ap);
  if (w > 0) *used = (size_t)w < size - *used ? *used + (size_t)w : size - 1;
}

static const char *tune_dtype_name(adasplash_dtype t) {
  return t == ADASPLASH_F16 ? "f16" : (t == ADASPLASH_BF16 ? "bf16" : "f32");
}

static const char *tune_target_name(tune_target t) {
  return t == TUNE_ATTENTION ? "attention" : "rows";
}

/* ---- command line ----------------------------------------------------------------------------
 */

static int tune_parse_args(int argc, char **argv, tune_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 1;
  o->d = 64;
  o->alpha = 1.5;
  o->budget = 600.0;
  o->do_attention = o->do_rows = 1;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    long long x = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(tune_usage, stdout);
      exit(0);
    } else if (strcmp(a, "--version") == 0) {
      printf("adasplash-tune (adasplash-cl) library %s, header %s\n", adasplash_version(),
             ADASPLASH_VERSION_STRING);
      exit(0);
    } else if (strcmp(a, "--quick") == 0) {
      o->quick = 1;
    } else if (strcmp(a, "--dry-run") == 0) {
      o->dry_run = 1;
    } else if (strcmp(a, "--check") == 0) {
      o->check = 1;
      if (v && v[0] != '-') o->check_file = argv[++i];
    } else if (strcmp(a, "--output") == 0 && v) {
      o->output = argv[++i];
    } else if (strcmp(a, "--only") == 0 && v) {
      static const char *const targets[] = {"attention", "rows"};
      if (dt_cli_names(TUNE_PROG, a, argv[++i], targets, 2, &x, 1) < 0) return -1;
      o->do_rows = x != 0;
      o->do_attention = x == 0;
    } else if (strcmp(a, "--dtype") == 0 && v) {
      static const char *const dtypes[] = {"f32", "f16", "bf16"}; /* in adasplash_dtype order */
      if (dt_cli_names(TUNE_PROG, a, argv[++i], dtypes, 3, &x, 1) < 0) return -1;
      o->dtype = (adasplash_dtype)x;
      o->dtype_set = 1;
    } else if (strcmp(a, "--alpha") == 0 && v) {
      if (dt_cli_doubles(TUNE_PROG, a, argv[++i], 1.0, 2.0, &o->alpha, 1) < 0) return -1;
      if (o->alpha == 1.0) {
        dt_error(TUNE_PROG, "--alpha must be greater than 1");
        return -1;
      }
    } else if (strcmp(a, "--budget-seconds") == 0 && v) {
      if (dt_cli_doubles(TUNE_PROG, a, argv[++i], 0.0, HUGE_VAL, &o->budget, 1) < 0) return -1;
    } else if ((strcmp(a, "--n") == 0 || strcmp(a, "--d") == 0 || strcmp(a, "--heads") == 0 ||
                strcmp(a, "--batch") == 0 || strcmp(a, "--repeats") == 0 ||
                strcmp(a, "--rows") == 0 || strcmp(a, "--cols") == 0) &&
               v) {
      const long long hi = strcmp(a, "--d") == 0 ? 256 : (1LL << 26);
      if (dt_cli_ints(TUNE_PROG, a, argv[++i], 1, hi, &x, 1) < 0) return -1;
      if (strcmp(a, "--n") == 0) o->n = (int)x;
      if (strcmp(a, "--d") == 0) o->d = (int)x;
      if (strcmp(a, "--heads") == 0) o->heads = (int)x;
      if (strcmp(a, "--batch") == 0) o->batch = (int)x;
      if (strcmp(a, "--repeats") == 0) o->repeats = (int)x;
      if (strcmp(a, "--rows") == 0) o->rows = (size_t)x;
      if (strcmp(a, "--cols") == 0) o->cols = (size_t)x;
    } else {
      dt_error(TUNE_PROG, "unknown option or missing value: \"%s\"", a);
      return -1;
    }
  }
  if (o->check && (o->dry_run || o->output)) {
    dt_error(TUNE_PROG, "--check cannot be combined with --dry-run or --output");
    return -1;
  }
  return 0;
}

/* Device-class defaults of the shapes (GPU: the README's benchmark shape; else PoCL-sized). */
static void tune_shape_defaults(tune_opts *o, const adasplash_device_info *info) {
  const int gpu = (info->device_type & CL_DEVICE_TYPE_GPU) != 0;
  if (!o->n) o->n = gpu ? 4096 : 1024;
  if (!o->heads) o->heads = gpu ? 16 : 4;
  if (!o->dtype_set) o->dtype = gpu ? ADASPLASH_BF16 : ADASPLASH_F32;
  if (!o->rows) o->rows = gpu ? 16384 : 4096;
  if (!o->cols) o->cols = 1024;
  if (!o->repeats) o->repeats = o->quick ? 3 : (gpu ? 10 : 5);
}

/* ---- contexts --------------------------------------------------------------------------------
 */

/* A context on the shared OpenCL objects with options.tune = tune. Returns the status. */
static adasplash_status tune_context(const tune_run *r, const char *tune, adasplash_context **ctx) {
  adasplash_context_options opt;
  adasplash_context_options_init(&opt);
  opt.tune = tune;
  return adasplash_context_create_borrowed(r->clctx, r->device, r->queue, &opt, ctx);
}

static void tune_add_line(tune_run *r, tune_target target, const char *label, tune_outcome out,
                          double ms, const char *note) {
  if (r->nlines == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 32;
    tune_line *l = (tune_line *)realloc(r->lines, cap * sizeof *l);
    if (!l) return;
    r->lines = l;
    r->cap = cap;
  }
  tune_line *l = &r->lines[r->nlines++];
  l->target = target;
  snprintf(l->label, sizeof l->label, "%s", label);
  l->outcome = out;
  l->ms = ms;
  snprintf(l->note, sizeof l->note, "%s", note ? note : "");
}

/* Prepares, verifies and times one configuration. */
static tune_outcome tune_measure(tune_run *r, tune_target target, const tune_config *c,
                                 tune_work *work, double *ms, char *note, size_t note_size) {
  char text[1024];
  tune_config_text(c, text, sizeof text);
  adasplash_context *ctx = NULL;
  adasplash_status st = tune_context(r, text, &ctx);
  note[0] = '\0';
  if (st != ADASPLASH_SUCCESS) {
    dt_lib_message(NULL, st, "rejected", note, note_size);
    return TUNE_SKIPPED;
  }
  /* Prepare the fp32 verification kernels and the timed ones (resource limits show here). */
  if (target == TUNE_ATTENTION) {
    const adasplash_attention_desc *descs = NULL;
    size_t n = tune_verify_attention_descs(r->verify, &descs);
    for (size_t i = 0; i < n && st == ADASPLASH_SUCCESS; ++i)
      st = adasplash_attention_prepare(ctx, &descs[i]);
    if (st == ADASPLASH_SUCCESS)
      st = adasplash_attention_prepare(ctx, tune_work_attention_desc(work));
  } else {
    st = adasplash_entmax_prepare(ctx, tune_verify_rows_desc(r->verify));
    if (st == ADASPLASH_SUCCESS) st = adasplash_entmax_prepare(ctx, tune_work_rows_desc(work));
  }
  tune_outcome out = TUNE_MEASURED;
  if (st != ADASPLASH_SUCCESS) {
    dt_lib_message(ctx, st, "prepare failed", note, note_size);
    out = TUNE_SKIPPED;
  }
  if (out == TUNE_MEASURED) {
    double worst = 0.0;
    int rc = target == TUNE_ATTENTION
                 ? tune_verify_attention(r->verify, ctx, &worst, note, note_size)
                 : tune_verify_rows(r->verify, ctx, &worst, note, note_size);
    if (rc > 0) out = TUNE_OFF;
    if (rc < 0) out = TUNE_SKIPPED;
  }
  if (out == TUNE_MEASURED) {
    int wall = 0;
    if (tune_work_time(work, ctx, 1, r->o->repeats, ms, &wall, note, note_size) != 0)
      out = TUNE_SKIPPED;
    if (wall) r->wall_clock = 1;
  }
  adasplash_context_release(ctx);
  return out;
}

/* Times an already verified configuration again (a fresh context, the timed kernels only). */
static int tune_retime(tune_run *r, tune_target target, const tune_config *c, tune_work *work,
                       double *ms, char *note, size_t note_size) {
  char text[1024];
  tune_config_text(c, text, sizeof text);
  adasplash_context *ctx = NULL;
  adasplash_status st = tune_context(r, text, &ctx);
  if (st == ADASPLASH_SUCCESS)
    st = target == TUNE_ATTENTION ? adasplash_attention_prepare(ctx, tune_work_attention_desc(work))
                                  : adasplash_entmax_prepare(ctx, tune_work_rows_desc(work));
  if (st != ADASPLASH_SUCCESS) {
    dt_lib_message(ctx, st, NULL, note, note_size);
    adasplash_context_release(ctx);
    return -1;
  }
  int wall = 0;
  int rc = tune_work_time(work, ctx, 1, r->o->repeats, ms, &wall, note, note_size);
  adasplash_context_release(ctx);
  return rc;
}

/* Confirms that c beats the current best: both are timed again back to back, twice, and the
 * better median of each counts (a busy machine or a clock change between the first measurements
 * must not pick a value). Returns 1 when c wins by TUNE_MIN_GAIN; *c_ms and *best_ms get the
 * re-timed values. */
static int tune_confirm(tune_run *r, tune_target target, const tune_config *c, tune_work *work,
                        double *c_ms, double *best_ms) {
  char note[1024];
  double t = 0.0, inc = HUGE_VAL, win = HUGE_VAL;
  for (int round = 0; round < 2; ++round) {
    if (tune_retime(r, target, &r->best, work, &t, note, sizeof note) == 0 && t < inc) inc = t;
    if (tune_retime(r, target, c, work, &t, note, sizeof note) == 0 && t < win) win = t;
  }
  *c_ms = win;
  *best_ms = inc;
  return win < HUGE_VAL && (inc == HUGE_VAL || win < inc * (1.0 - TUNE_MIN_GAIN));
}

/* ---- the search ------------------------------------------------------------------------------
 */

static void tune_report(tune_run *r, tune_target target, const char *label, tune_outcome out,
                        double ms, const char *note) {
  const double base = r->default_ms[target];
  if (out == TUNE_MEASURED)
    tune_progress(r, "%s %s: verified, %.3f ms (%.3fx)", tune_target_name(target), label, ms,
                  r->measured[target] ? base / ms : 1.0);
  else
    tune_progress(r, "%s %s: %s: %s", tune_target_name(target), label,
                  out == TUNE_OFF ? "REJECTED, results off" : "skipped", note);
  tune_add_line(r, target, label, out, ms, note);
}

/* 1 when key k plans the kernels this run times: the NVIDIA path serves 16-bit storage on a
 * context whose path is nvidia, the portable path everything else. */
static int tune_key_applies(const tune_run *r, const tune_key *k) {
  const int nvidia =
      r->info.kernel_path == ADASPLASH_PATH_NVIDIA_MMA && r->o->dtype != ADASPLASH_F32;
  if (k->path == TUNE_NVIDIA_PATH) return nvidia;
  if (k->path == TUNE_PORTABLE_PATH) return !nvidia;
  return 1;
}

/* Coordinate descent over the keys of target. Returns 0, or 1 when the defaults fail. */
static int tune_phase(tune_run *r, tune_target target, tune_work *work, double deadline) {
  size_t nkeys = 0;
  const tune_key *keys = tune_space_keys(&nkeys);
  char note[1024], label[192];
  double ms = 0.0;
  tune_progress(r, "%s: measuring the defaults", tune_target_name(target));
  tune_outcome out = tune_measure(r, target, &r->best, work, &ms, note, sizeof note);
  tune_report(r, target, "defaults", out, ms, note);
  if (out != TUNE_MEASURED) {
    dt_error(TUNE_PROG, "the defaults failed on this device (%s): nothing to compare against",
             note);
    return 1;
  }
  r->default_ms[target] = r->best_ms[target] = ms;
  r->measured[target] = 1;
  int spent = 0;
  for (size_t i = 0; i < nkeys && i < TUNE_MAX_KEYS; ++i) {
    const tune_key *k = &keys[i];
    if (k->target != target || !r->best.known[i]) continue;
    if (!tune_key_applies(r, k)) {
      tune_progress(r, "%s: not searched (the %s kernels this run times do not use it)", k->name,
                    k->path == TUNE_NVIDIA_PATH ? "portable" : "NVIDIA");
      continue;
    }
    if (spent) {
      size_t u = strlen(r->unsearched[target]);
      snprintf(r->unsearched[target] + u, sizeof r->unsearched[target] - u, "%s%s", u ? ", " : "",
               k->name);
      continue;
    }
    int values[TUNE_MAX_VALUES];
    char dropped[512];
    size_t nv =
        tune_space_values(k, r->defaults.value[i], (unsigned long)r->info.max_work_group_size,
                          r->o->quick, values, dropped, sizeof dropped);
    if (dropped[0]) tune_progress(r, "%s: not trying %s", k->name, dropped);
    double key_best = r->best_ms[target];
    long key_value = r->best.value[i];
    int tried = 0;
    for (size_t j = 0; j < nv; ++j) {
      if (values[j] == r->best.value[i]) continue;
      if (dt_now() >= deadline) {
        spent = 1;
        size_t u = strlen(r->unsearched[target]);
        snprintf(r->unsearched[target] + u, sizeof r->unsearched[target] - u, "%s%s%s",
                 u ? ", " : "", k->name, tried ? " (partly)" : "");
        break;
      }
      ++tried;
      tune_config c = r->best;
      c.value[i] = values[j];
      tune_config_diff(&c, &r->defaults, target, label, sizeof label);
      unsigned long floor = target == TUNE_ATTENTION ? tune_space_attn_local_floor(&c) : 0;
      if (floor > r->info.local_mem_size) {
        snprintf(note, sizeof note,
                 "needs at least %lu bytes of local memory (tile, histograms), the device has %lu",
                 floor, (unsigned long)r->info.local_mem_size);
        tune_report(r, target, label, TUNE_SKIPPED, 0.0, note);
        continue;
      }
      out = tune_measure(r, target, &c, work, &ms, note, sizeof note);
      tune_report(r, target, label, out, ms, note);
      if (out == TUNE_MEASURED && ms < key_best) {
        key_best = ms;
        key_value = values[j];
      }
    }
    if (key_value != r->best.value[i] && key_best < r->best_ms[target] * (1.0 - TUNE_MIN_GAIN)) {
      tune_config c = r->best;
      c.value[i] = key_value;
      double c_ms = 0.0, inc_ms = 0.0;
      int won = tune_confirm(r, target, &c, work, &c_ms, &inc_ms);
      tune_progress(r, "%s=%ld %s: re-timed %.3f ms against %.3f ms with %s=%ld", k->name,
                    key_value, won ? "kept" : "not confirmed", c_ms, inc_ms, k->name,
                    r->best.value[i]);
      if (won) {
        r->best = c;
        r->best_ms[target] = c_ms;
      } else if (inc_ms < HUGE_VAL) {
        r->best_ms[target] = inc_ms;
      }
    }
  }
  if (spent)
    tune_progress(r, "%s: budget spent; not searched: %s", tune_target_name(target),
                  r->unsearched[target]);
  return 0;
}

/* ---- output ----------------------------------------------------------------------------------
 */

static void tune_shape_text(const tune_opts *o, tune_target t, char *out, size_t size) {
  if (t == TUNE_ATTENTION)
    snprintf(out, size, "fwd+bwd, B=%d H=%d N=%d D=%d %s causal alpha=%g, locality beta=2",
             o->batch, o->heads, o->n, o->d, tune_dtype_name(o->dtype), o->alpha);
  else
    snprintf(out, size, "forward, %zu x %zu %s alpha=%g, N(0,1) rows", o->rows, o->cols,
             tune_dtype_name(o->dtype), o->alpha);
}

static void tune_print_table(const tune_run *r) {
  const tune_opts *o = r->o;
  char shape[256];
  printf("adasplash-tune: %s / %s (driver %s)\n", r->info.platform_name, r->info.device_name,
         r->info.driver_version);
  for (int t = 0; t < 2; ++t) {
    if (!r->measured[t]) continue;
    tune_shape_text(o, (tune_target)t, shape, sizeof shape);
    printf("  %-9s %s; median of %d (%s)\n", tune_target_name((tune_target)t), shape, o->repeats,
           r->wall_clock ? "wall clock" : "profiling events");
  }
  int w = 24; /* the candidate column fits the longest label */
  for (size_t i = 0; i < r->nlines; ++i)
    if ((int)strlen(r->lines[i].label) > w) w = (int)strlen(r->lines[i].label);
  printf("\n%-9s  %-*s  %-8s  %10s  %7s  %s\n", "target", w, "candidate", "verified", "median ms",
         "speedup", "note");
  for (size_t i = 0; i < r->nlines; ++i) {
    const tune_line *l = &r->lines[i];
    const char *ver = l->outcome == TUNE_MEASURED ? "yes" : (l->outcome == TUNE_OFF ? "NO" : "-");
    if (l->outcome == TUNE_MEASURED)
      printf("%-9s  %-*s  %-8s  %10.3f  %6.3fx  %s\n", tune_target_name(l->target), w, l->label,
             ver, l->ms, r->default_ms[l->target] / l->ms, l->note);
    else
      printf("%-9s  %-*s  %-8s  %10s  %7s  %s: %s\n", tune_target_name(l->target), w, l->label, ver,
             "-", "-", l->outcome == TUNE_OFF ? "rejected" : "skipped", l->note);
  }
  printf("\n");
  for (int t = 0; t < 2; ++t) {
    if (!r->measured[t]) continue;
    char label[192];
    tune_config_diff(&r->best, &r->defaults, (tune_target)t, label, sizeof label);
    printf("best %-9s %s: %.3f ms, %.3fx the defaults (%.3f ms)%s%s\n",
           tune_target_name((tune_target)t), label, r->best_ms[t], r->default_ms[t] / r->best_ms[t],
           r->default_ms[t], r->unsearched[t][0] ? "; budget spent, not searched: " : "",
           r->unsearched[t]);
  }
}

/* The tuned file: a comment header, then key=value lines of the searched targets. */
static void tune_file_text(const tune_run *r, char *out, size_t size) {
  size_t nkeys = 0;
  const tune_key *keys = tune_space_keys(&nkeys);
  char date[64] = "";
  time_t now = time(NULL);
  struct tm tmv;
  if (gmtime_r(&now, &tmv)) strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tmv);
  size_t used = 0;
  tune_appendf(out, size, &used,
               "# adasplash-cl tuned launch parameters for one device (docs/TUNING.md)\n");
  tune_appendf(out, size, &used, "# written by adasplash-tune %s on %s\n", adasplash_version(),
               date);
  tune_appendf(out, size, &used, "# device: %s / %s, driver %s\n", r->info.platform_name,
               r->info.device_name, r->info.driver_version);
  for (int t = 0; t < 2; ++t) {
    if (!r->measured[t]) continue;
    char shape[256];
    tune_shape_text(r->o, (tune_target)t, shape, sizeof shape);
    tune_appendf(out, size, &used, "# %s %s: %.3f ms, defaults %.3f ms (%.3fx)\n",
                 tune_target_name((tune_target)t), shape, r->best_ms[t], r->default_ms[t],
                 r->default_ms[t] / r->best_ms[t]);
  }
  for (size_t i = 0; i < nkeys && i < TUNE_MAX_KEYS; ++i)
    if (r->best.known[i] && r->measured[keys[i].target])
      tune_appendf(out, size, &used, "%s=%ld\n", keys[i].name, r->best.value[i]);
}

/* ---- setup -----------------------------------------------------------------------------------
 */

/* Known keys and their defaults: the defaults context's tuning text, and for keys missing there a
 * probe (a context with only that key; INVALID_TUNING means the library does not have it). */
static void tune_find_keys(tune_run *r) {
  size_t nkeys = 0;
  const tune_key *keys = tune_space_keys(&nkeys);
  memset(&r->defaults, 0, sizeof r->defaults);
  for (size_t i = 0; i < nkeys && i < TUNE_MAX_KEYS; ++i) {
    long v = 0;
    int in_text = tune_text_value(r->info.tuning, keys[i].name, &v);
    char probe[128];
    snprintf(probe, sizeof probe, "%s=%ld", keys[i].name, in_text ? v : (long)keys[i].values[0]);
    adasplash_context *ctx = NULL;
    adasplash_status st = tune_context(r, probe, &ctx);
    if (st == ADASPLASH_SUCCESS) adasplash_context_release(ctx);
    if (st == ADASPLASH_ERROR_INVALID_TUNING || !in_text) {
      tune_progress(r, "key %s: %s", keys[i].name,
                    st == ADASPLASH_ERROR_INVALID_TUNING
                        ? "not known to this library, not searched"
                        : "accepted but its default is not reported, not searched");
      continue;
    }
    r->defaults.known[i] = 1;
    r->defaults.value[i] = v;
  }
  r->best = r->defaults;
}

/* Creates the owning context (profiling queue, no ADASPLASH_TUNE). Returns 0 or the exit code. */
static int tune_open(tune_run *r, adasplash_context **owner) {
  adasplash_context_options opt;
  adasplash_context_options_init(&opt);
  opt.tune = "";
  opt.queue_properties = CL_QUEUE_PROFILING_ENABLE;
  adasplash_status st = adasplash_context_create(&opt, owner);
  if (st != ADASPLASH_SUCCESS) {
    char msg[1200];
    dt_lib_message(NULL, st, NULL, msg, sizeof msg);
    if (st == ADASPLASH_ERROR_NO_DEVICE)
      dt_error(TUNE_PROG, "no OpenCL device is available (%s)", msg);
    else if (st == ADASPLASH_ERROR_INVALID_TUNING)
      dt_error(TUNE_PROG,
               "the current tuned file is not accepted: %s (remove it, or point "
               "ADASPLASH_TUNE_FILE elsewhere)",
               msg);
    else
      dt_error(TUNE_PROG, "adasplash_context_create: %s", msg);
    return 1;
  }
  r->info.struct_size = sizeof r->info;
  adasplash_context_get_device_info(*owner, &r->info);
  adasplash_context_get_cl(*owner, &r->clctx, &r->device, &r->queue);
  return 0;
}

/* ---- --check ---------------------------------------------------------------------------------
 */

typedef struct tune_check_state {
  const char *applied; /* the context's tuning text */
  int keys, mismatches;
  char why[512];
} tune_check_state;

static void tune_check_item(const char *key, long value, int ok, void *arg) {
  tune_check_state *s = (tune_check_state *)arg;
  long have = 0;
  ++s->keys;
  if (!ok || !tune_text_value(s->applied, key, &have) || have != value) {
    if (!s->mismatches++)
      snprintf(s->why, sizeof s->why, "%s=%ld in the file, %s%ld in the context", key, value,
               ok ? "" : "(not an integer) ", have);
  }
}

static int tune_check(const tune_opts *o) {
  if (o->check_file && setenv("ADASPLASH_TUNE_FILE", o->check_file, 1) != 0) {
    dt_error(TUNE_PROG, "setenv failed");
    return 1;
  }
  adasplash_context_options opt;
  adasplash_context_options_init(&opt);
  opt.tune = ""; /* the file alone, without ADASPLASH_TUNE */
  adasplash_context *ctx = NULL;
  adasplash_status st = adasplash_context_create(&opt, &ctx);
  char msg[1200];
  if (st != ADASPLASH_SUCCESS) {
    dt_lib_message(NULL, st, NULL, msg, sizeof msg);
    if (st == ADASPLASH_ERROR_NO_DEVICE)
      dt_error(TUNE_PROG, "no OpenCL device is available (%s)", msg);
    else
      dt_error(TUNE_PROG, "the library refused the tuned file: %s", msg);
    return 1;
  }
  adasplash_device_info info;
  info.struct_size = sizeof info;
  adasplash_context_get_device_info(ctx, &info);
  int rc = 0;
  if (!info.tuned_file_loaded) {
    dt_error(TUNE_PROG, "no tuned file was read (looked for \"%s\")",
             info.tuned_file[0] ? info.tuned_file : "nothing: the cache directory is off");
    rc = 1;
  }
  char text[8192];
  tune_check_state s;
  memset(&s, 0, sizeof s);
  s.applied = info.tuning;
  if (rc == 0 && tune_file_read(info.tuned_file, text, sizeof text, msg, sizeof msg) != 0) {
    dt_error(TUNE_PROG, "%s", msg);
    rc = 1;
  }
  if (rc == 0) {
    tune_text_items(text, tune_check_item, &s);
    if (s.mismatches) {
      dt_error(TUNE_PROG, "%s: %d of %d keys not applied as written (%s)", info.tuned_file,
               s.mismatches, s.keys, s.why);
      rc = 1;
    }
  }
  tune_verify *v = rc == 0 ? tune_verify_create(o->d, o->alpha) : NULL;
  if (rc == 0 && !v) {
    dt_error(TUNE_PROG, "out of host memory");
    rc = 1;
  }
  double worst_a = 0.0, worst_r = 0.0;
  if (rc == 0) {
    const adasplash_attention_desc *descs = NULL;
    size_t n = tune_verify_attention_descs(v, &descs);
    for (size_t i = 0; i < n && st == ADASPLASH_SUCCESS; ++i)
      st = adasplash_attention_prepare(ctx, &descs[i]);
    if (st == ADASPLASH_SUCCESS) st = adasplash_entmax_prepare(ctx, tune_verify_rows_desc(v));
    if (st != ADASPLASH_SUCCESS) {
      dt_lib_message(ctx, st, NULL, msg, sizeof msg);
      dt_error(TUNE_PROG, "prepare with the tuned parameters failed: %s", msg);
      rc = 1;
    }
  }
  if (rc == 0 && tune_verify_attention(v, ctx, &worst_a, msg, sizeof msg) != 0) {
    dt_error(TUNE_PROG, "attention with the tuned parameters: %s", msg);
    rc = 1;
  }
  if (rc == 0 && tune_verify_rows(v, ctx, &worst_r, msg, sizeof msg) != 0) {
    dt_error(TUNE_PROG, "row entmax with the tuned parameters: %s", msg);
    rc = 1;
  }
  if (rc == 0)
    printf(
        "tuned file %s: accepted, %d keys applied; attention fwd+bwd (head dim %d) and row "
        "entmax verified against the double reference (worst %.3g and %.3g x tolerance)\n",
        info.tuned_file, s.keys, o->d, worst_a, worst_r);
  tune_verify_free(v);
  adasplash_context_release(ctx);
  return rc;
}

/* ---- main ------------------------------------------------------------------------------------
 */

static int tune_search(tune_opts *o) {
  tune_run r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.t_start = dt_now();
  adasplash_context *owner = NULL;
  int rc = tune_open(&r, &owner);
  if (rc) return rc;
  tune_shape_defaults(o, &r.info);
  char path[1024];
  snprintf(path, sizeof path, "%s", o->output ? o->output : r.info.tuned_file);
  if (!o->dry_run && !path[0]) {
    dt_error(TUNE_PROG,
             "the library reads no tuned file here (cache directory \"off\"): use --output FILE "
             "and ADASPLASH_TUNE_FILE=FILE, or --dry-run");
    adasplash_context_release(owner);
    return 1;
  }
  tune_progress(&r, "device: %s / %s; writing %s", r.info.platform_name, r.info.device_name,
                o->dry_run ? "nothing (--dry-run)" : path);
  if (r.info.tuned_file_loaded)
    tune_progress(&r, "ignoring the current tuned file %s while searching", r.info.tuned_file);
  if (getenv("ADASPLASH_TUNE") && getenv("ADASPLASH_TUNE")[0])
    tune_progress(&r, "ignoring ADASPLASH_TUNE while searching");
  /* Candidates start from the library's defaults: no tuned file for the contexts made from here. */
  setenv("ADASPLASH_TUNE_FILE", TUNE_IGNORE_FILE, 1);
  adasplash_context *defaults = NULL;
  adasplash_status st = tune_context(&r, "", &defaults);
  if (st != ADASPLASH_SUCCESS) {
    char msg[1200];
    dt_lib_message(NULL, st, NULL, msg, sizeof msg);
    dt_error(TUNE_PROG, "adasplash_context_create_borrowed: %s", msg);
    adasplash_context_release(owner);
    return 1;
  }
  adasplash_device_info dinfo;
  dinfo.struct_size = sizeof dinfo;
  adasplash_context_get_device_info(defaults, &dinfo);
  adasplash_context_release(defaults);
  memcpy(r.info.tuning, dinfo.tuning, sizeof r.info.tuning);
  tune_find_keys(&r);
  r.verify = tune_verify_create(o->d, o->alpha);
  if (!r.verify) {
    dt_error(TUNE_PROG, "out of host memory");
    adasplash_context_release(owner);
    return 1;
  }
  const double budget_end = r.t_start + o->budget;
  for (int t = 0; t < 2 && rc == 0; ++t) {
    tune_target target = (tune_target)t;
    if ((target == TUNE_ATTENTION && !o->do_attention) || (target == TUNE_ROWS && !o->do_rows))
      continue;
    char why[512];
    tune_work *work = NULL;
    if (target == TUNE_ATTENTION) {
      tune_attn_shape s = {o->batch, o->heads, o->n, o->d, o->dtype, o->alpha};
      work = tune_work_attention(r.clctx, r.queue, &s, why, sizeof why);
    } else {
      tune_rows_shape s = {o->rows, o->cols, o->dtype, o->alpha};
      work = tune_work_rows(r.clctx, r.queue, &s, why, sizeof why);
    }
    if (!work) {
      dt_error(TUNE_PROG, "%s", why);
      rc = 1;
      break;
    }
    double deadline = target == TUNE_ATTENTION && o->do_rows
                          ? r.t_start + TUNE_ATTN_SHARE * o->budget
                          : budget_end;
    rc = tune_phase(&r, target, work, deadline);
    tune_work_free(work);
  }
  tune_print_table(&r);
  char text[8192];
  tune_file_text(&r, text, sizeof text);
  if (rc == 0) {
    /* The library must accept what we write (the same parser reads the file). */
    adasplash_context *check = NULL;
    st = tune_context(&r, text, &check);
    if (st != ADASPLASH_SUCCESS) {
      char msg[1200];
      dt_lib_message(NULL, st, NULL, msg, sizeof msg);
      dt_error(TUNE_PROG, "the library refuses the result: %s", msg);
      rc = 1;
    } else {
      adasplash_context_release(check);
    }
  }
  if (rc == 0 && o->dry_run) {
    printf("\n--- tuned file (--dry-run; the library would read %s) ---\n%s",
           r.info.tuned_file[0] ? r.info.tuned_file : "nothing: cache directory off", text);
  } else if (rc == 0) {
    char why[1200];
    if (tune_file_write(path, text, why, sizeof why) != 0) {
      dt_error(TUNE_PROG, "%s", why);
      rc = 1;
    } else {
      printf("\nwrote %s%s\n", path,
             strcmp(path, r.info.tuned_file) == 0
                 ? " (the library reads it for this device)"
                 : " (the library reads it with ADASPLASH_TUNE_FILE set to it)");
    }
  }
  tune_progress(&r, "done");
  tune_verify_free(r.verify);
  free(r.lines);
  adasplash_context_release(owner);
  return rc;
}

int main(int argc, char **argv) {
  tune_opts o;
  if (tune_parse_args(argc, argv, &o) != 0) {
    fputs(tune_usage, stderr);
    return EXIT_USAGE;
  }
  return o.check ? tune_check(&o) : tune_search(&o);
}
