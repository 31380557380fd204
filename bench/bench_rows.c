/*
 * bench_rows.c - adasplash-bench's entmax-rows mode: row-wise entmax with the histogram and the
 * bracket tau start against row softmax, on gaussian or peaked rows, with the distribution of
 * refinement sweeps per row, the table and JSON lines.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "locality.h"
#include "npy.h"

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
  dt_timing t;
  double prepare_ms;
  int have_sweeps;
  unsigned long hist[BENCH_MAX_SWEEPS + 1]; /* index = sweeps (last bucket: >= BENCH_MAX_SWEEPS) */
  unsigned long not_converged;
  double mean_sweeps;
  int max_sweeps;
  long nonfinite;
} rows_result;

typedef struct rows_call {
  bench_env *env;
  adasplash_entmax_desc desc;
  int softmax;
  cl_mem x, y, sweeps;
} rows_call;

static adasplash_status rows_enqueue(void *arg, cl_event ev[2]) {
  rows_call *c = arg;
  bench_env *env = c->env;
  if (c->softmax)
    return adasplash_softmax_rows_forward(env->ctx, &c->desc, NULL, c->x, c->y, 0, NULL, &ev[0]);
  return adasplash_entmax_forward(env->ctx, &c->desc, NULL, c->x, c->y, c->sweeps, 0, NULL, &ev[0]);
}

static void rows_run_algo(bench_env *env, const rows_cfg *c, int algo, cl_mem x, cl_mem y,
                          cl_mem sweeps, rows_result *r) {
  const bench_opts *o = env->o;
  memset(r, 0, sizeof *r);
  rows_call call;
  call.env = env;
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
  double t0 = dt_now();
  adasplash_status st = adasplash_entmax_prepare(env->ctx, &call.desc);
  r->prepare_ms = (dt_now() - t0) * 1e3;
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = st == ADASPLASH_ERROR_UNSUPPORTED ? OUT_SKIPPED : OUT_ERROR;
    dt_lib_message(env->ctx, st, "prepare", r->note, sizeof r->note);
    return;
  }
  st = dt_time(env->queue, o->warmup, o->repeats, rows_enqueue, &call, &r->t, r->note,
               sizeof r->note);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    if (!r->note[0]) dt_lib_message(env->ctx, st, "timed call", r->note, sizeof r->note);
    return;
  }
  if (!call.softmax) {
    /* One more run with the sweeps output (not timed: writing it is extra traffic). */
    call.sweeps = sweeps;
    cl_event ev[2] = {NULL, NULL};
    st = rows_enqueue(&call, ev);
    if (st == ADASPLASH_SUCCESS) clWaitForEvents(1, &ev[0]);
    if (ev[0]) clReleaseEvent(ev[0]); /* a row call sets only ev[0] */
    int *s = malloc(c->rows * sizeof(int));
    if (st != ADASPLASH_SUCCESS || !s ||
        clEnqueueReadBuffer(env->queue, sweeps, CL_TRUE, 0, c->rows * sizeof(int), s, 0, NULL,
                            NULL) != CL_SUCCESS) {
      r->outcome = OUT_ERROR;
      if (st != ADASPLASH_SUCCESS)
        dt_lib_message(env->ctx, st, "forward with sweeps", r->note, sizeof r->note);
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
    const dt_stats *s = &r->t.total;
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
    dt_json j;
    bench_json_begin(env, &j);
    dt_json_str(&j, "algo", rows_algo_names[a]);
    dt_json_str(&j, "status", bench_outcome_names[r->outcome]);
    if (r->note[0]) dt_json_str(&j, "note", r->note);
    dt_json_str(&j, "dtype", bench_dtype_names[c->dtype]);
    dt_json_str(&j, "rows_kind", bench_kind_names[c->kind]);
    dt_json_int(&j, "rows", (long long)c->rows);
    dt_json_int(&j, "cols", (long long)c->cols);
    dt_json_num(&j, "alpha", c->alpha);
    dt_json_num(&j, "scale", env->o->scale);
    if (c->kind == BENCH_ROWS_PEAKED) dt_json_int(&j, "peaks", env->o->peaks);
    dt_json_int(&j, "seed", (long long)c->seed);
    dt_json_num(&j, "tolerance", env->o->tolerance);
    dt_json_int(&j, "max_iter", env->o->max_iter);
    if (r->outcome == OUT_OK) {
      dt_json_str(&j, "timing", r->t.wall_clock ? "wall-clock" : "profiling-marker");
      dt_json_stats(&j, "ms", s);
      dt_json_num(&j, "gb_per_s", gbs);
      dt_json_num(&j, "ratio_softmax", ratio);
      dt_json_num(&j, "prepare_ms", r->prepare_ms);
      if (r->have_sweeps) {
        dt_json_num(&j, "sweeps_mean", r->mean_sweeps);
        dt_json_int(&j, "sweeps_max", r->max_sweeps);
        dt_json_int(&j, "not_converged", (long long)r->not_converged);
        dt_json sub;
        dt_json_object(&j, "sweeps_hist", &sub);
        for (int v = 0; v <= BENCH_MAX_SWEEPS; ++v) {
          if (!r->hist[v]) continue;
          char key[16];
          snprintf(key, sizeof key, "%s%d", v == BENCH_MAX_SWEEPS ? ">=" : "", v);
          dt_json_int(&sub, key, (long long)r->hist[v]);
        }
        dt_json_object_end(&sub);
      }
    }
    dt_json_line_end(&j);
  }
  fflush(stdout);
}

void rows_run(bench_env *env) {
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
                  dt_error(BENCH_PROG, "--dump: writing %s failed: %s", path, strerror(errno));
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
