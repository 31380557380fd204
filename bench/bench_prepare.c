/*
 * bench_prepare.c - adasplash-bench's prepare mode: the cold adasplash_attention_prepare of one
 * training desc per --alpha value (on the NVIDIA path 1.5, 2 and any other alpha compile distinct
 * programs), first one after another and then all at once from one thread each. Every prepare
 * runs on a fresh context that borrows the run's cl_context, device and queue, with the library's
 * disk cache off, so each one compiles. The ratio says whether the device's compiler builds
 * programs concurrently: near 1 / (alphas) it does, near 1 it serialises them (the question
 * behind compiling a prepare's programs in parallel). Driver caches are the caller's to disable
 * (NVIDIA: CUDA_CACHE_DISABLE=1; PoCL keeps its own kernel cache, so a second run is warm there).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define PREP_MAX BENCH_MAX_LIST

typedef struct prep_job {
  bench_env *env;
  adasplash_attention_desc desc;
  adasplash_context *ctx;
  adasplash_status st;
  double ms;
  unsigned long builds;
} prep_job;

static adasplash_status prep_context(bench_env *env, adasplash_context **ctx) {
  adasplash_context_options opt;
  adasplash_context_options_init(&opt);
  opt.cache_dir = "off";
  return adasplash_context_create_borrowed(env->cl, env->device, env->queue, &opt, ctx);
}

static void *prep_run(void *arg) {
  prep_job *j = arg;
  const double t0 = 1e3 * dt_now();
  j->st = adasplash_attention_prepare(j->ctx, &j->desc);
  j->ms = 1e3 * dt_now() - t0;
  adasplash_cache_stats cs;
  memset(&cs, 0, sizeof cs);
  cs.struct_size = sizeof cs;
  adasplash_context_get_cache_stats(j->ctx, &cs);
  j->builds = cs.builds;
  return NULL;
}

/* Runs the jobs one after another (threads 0) or each on its own thread; the wall time in ms, or
 * NAN with note set. */
static double prep_round(bench_env *env, prep_job *jobs, int n, int threads, char *note,
                         size_t note_size) {
  for (int i = 0; i < n; ++i) {
    jobs[i].ctx = NULL;
    adasplash_status st = prep_context(env, &jobs[i].ctx);
    if (st != ADASPLASH_SUCCESS) {
      dt_lib_message(NULL, st, "prepare-mode context", note, note_size);
      for (int k = 0; k < i; ++k) adasplash_context_release(jobs[k].ctx);
      return NAN;
    }
  }
  pthread_t tid[PREP_MAX];
  int started[PREP_MAX] = {0};
  const double t0 = 1e3 * dt_now();
  for (int i = 0; i < n; ++i) {
    if (threads && pthread_create(&tid[i], NULL, prep_run, &jobs[i]) == 0)
      started[i] = 1;
    else
      prep_run(&jobs[i]); /* serial, or a thread that could not start */
  }
  for (int i = 0; i < n; ++i)
    if (started[i]) pthread_join(tid[i], NULL);
  const double wall = 1e3 * dt_now() - t0;
  double result = wall;
  for (int i = 0; i < n; ++i) {
    if (jobs[i].st != ADASPLASH_SUCCESS && !isnan(result)) {
      dt_lib_message(jobs[i].ctx, jobs[i].st, "adasplash_attention_prepare", note, note_size);
      result = NAN;
    }
    adasplash_context_release(jobs[i].ctx);
  }
  return result;
}

void prep_run_mode(bench_env *env) {
  const bench_opts *o = env->o;
  const int n = o->alpha.n < PREP_MAX ? o->alpha.n : PREP_MAX;
  prep_job jobs[PREP_MAX];
  memset(jobs, 0, sizeof jobs);
  const adasplash_dtype dtype = (adasplash_dtype)o->dtypes.v[0];
  for (int i = 0; i < n; ++i) {
    jobs[i].env = env;
    adasplash_attention_desc *d = &jobs[i].desc;
    adasplash_attention_desc_init(d);
    d->dtype = dtype;
    d->batch = (int)o->b.v[0];
    d->q_heads = d->kv_heads = (int)o->h.v[0];
    d->q_len = d->kv_len = (int)o->n.v[0];
    d->head_dim = (int)o->d.v[0];
    d->causal = o->causal;
    d->alpha = (float)o->alpha.v[i];
  }
  printf(
      "cold prepare of a training desc per alpha (%s, B=%d H=%d N=%d D=%d), fresh contexts, "
      "disk cache off\n",
      bench_dtype_names[dtype], (int)o->b.v[0], (int)o->h.v[0], (int)o->n.v[0], (int)o->d.v[0]);
  char note[1200] = "";
  double wall[2];
  double each[2][PREP_MAX];
  unsigned long builds[2] = {0, 0};
  for (int threads = 0; threads < 2; ++threads) {
    bench_progress(env, "prepare, %s", threads ? "threads" : "serial");
    wall[threads] = prep_round(env, jobs, n, threads, note, sizeof note);
    for (int i = 0; i < n; ++i) {
      each[threads][i] = jobs[i].ms;
      builds[threads] += jobs[i].builds;
    }
    printf("  %-8s %9.1f ms wall, %lu programs built;", threads ? "threads" : "serial",
           wall[threads], builds[threads]);
    for (int i = 0; i < n; ++i) printf(" alpha %g: %.1f", o->alpha.v[i], each[threads][i]);
    printf("\n");
  }
  const int ok = !isnan(wall[0]) && !isnan(wall[1]);
  if (ok)
    printf("  threads / serial: %.2f (1 / %d = %.2f if the builds ran fully in parallel)\n",
           wall[1] / wall[0], n, 1.0 / n);
  else {
    printf("ERROR: %s\n", note);
    ++env->failures;
  }
  if (!env->json) return;
  dt_json j;
  bench_json_begin(env, &j);
  dt_json_str(&j, "status", bench_outcome_names[ok ? OUT_OK : OUT_ERROR]);
  if (note[0]) dt_json_str(&j, "note", note);
  dt_json_str(&j, "dtype", bench_dtype_names[dtype]);
  dt_json_int(&j, "b", o->b.v[0]);
  dt_json_int(&j, "h", o->h.v[0]);
  dt_json_int(&j, "n", o->n.v[0]);
  dt_json_int(&j, "d", o->d.v[0]);
  dt_json_int(&j, "prepares", n);
  dt_json_num(&j, "serial_ms", wall[0]);
  dt_json_num(&j, "threads_ms", wall[1]);
  dt_json_int(&j, "serial_builds", (long long)builds[0]);
  dt_json_int(&j, "threads_builds", (long long)builds[1]);
  dt_json_line_end(&j);
}
