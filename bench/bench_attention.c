/*
 * bench_attention.c - adasplash-bench's attention modes: attention-fwd (inference, no saved buffer)
 * and attention-fwd-bwd (forward + backward, and the forward alone from the same repeats), per
 * algorithm (fused entmax, softmax flash, dense entmax) on the locality inputs, with block
 * sparsity and solver statistics, the cold and warm first call, the table and JSON lines.
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

typedef struct attn_cfg {
  int b, h, n, d;
  adasplash_dtype dtype;
  double alpha, beta, sigma;
  uint64_t seed;
  int causal;
} attn_cfg;

typedef struct attn_result {
  int algo;
  bench_outcome outcome;
  char note[1200];
  dt_timing fwd; /* attention-fwd: forward; fwd-bwd: total = fwd+bwd, first = fwd */
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
  bench_env *env;
  adasplash_attention_desc desc;
  attn_buffers *buf;
  int backward;   /* forward then backward */
  int with_saved; /* forward writes saved */
} attn_call;

static adasplash_status attn_enqueue(void *arg, cl_event ev[2]) {
  attn_call *c = arg;
  bench_env *env = c->env;
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
      dt_lib_message(NULL, st, "first-call context", r->note, sizeof r->note);
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
      double t0 = dt_now();
      cl_event ev = NULL;
      st = adasplash_attention_prepare(ctx, desc);
      if (st == ADASPLASH_SUCCESS)
        st = adasplash_attention_forward(ctx, desc, NULL, m[0], m[1], m[2], m[3], NULL, NULL, 0,
                                         NULL, &ev);
      if (st == ADASPLASH_SUCCESS) {
        clWaitForEvents(1, &ev);
        clReleaseEvent(ev);
        ms[pass] = (dt_now() - t0) * 1e3;
      } else {
        dt_lib_message(ctx, st, "first-call forward", r->note, sizeof r->note);
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
  call.env = env;
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

  double t0 = dt_now();
  adasplash_status st = adasplash_attention_prepare(env->ctx, &call.desc);
  r->prepare_ms = (dt_now() - t0) * 1e3;
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = st == ADASPLASH_ERROR_UNSUPPORTED ? OUT_SKIPPED : OUT_ERROR;
    dt_lib_message(env->ctx, st, "prepare", r->note, sizeof r->note);
    return;
  }
  size_t saved_bytes = 0, ws_bytes = 0;
  st = adasplash_attention_saved_size(env->ctx, &call.desc, &saved_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_attention_workspace_size(env->ctx, &call.desc, &ws_bytes);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    dt_lib_message(env->ctx, st, "saved/workspace size", r->note, sizeof r->note);
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
    dt_lib_message(env->ctx, st, "forward", r->note, sizeof r->note);
    goto done;
  }
  size_t elems = (size_t)c->b * c->h * (size_t)c->n * c->d;
  r->nonfinite = bench_count_nonfinite(env, buf->out, elems, c->dtype);
  if (bench_algo_enum[algo] == ADASPLASH_ATTN_ENTMAX) {
    r->stats.struct_size = sizeof r->stats;
    st = adasplash_attention_stats_read(env->ctx, &call.desc, NULL, buf->saved, &r->stats);
    if (st != ADASPLASH_SUCCESS) {
      r->outcome = OUT_ERROR;
      dt_lib_message(env->ctx, st, "stats_read", r->note, sizeof r->note);
      goto done;
    }
    r->have_stats = 1;
  }

  st = dt_time(env->queue, o->warmup, o->repeats, attn_enqueue, &call, &r->fwd, r->note,
               sizeof r->note);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    if (!r->note[0]) dt_lib_message(env->ctx, st, "timed call", r->note, sizeof r->note);
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
        "%8s %6s %7s %5s %8s | %9s %8s %8s\n",
        "algo", "dtype", "B", "H", "N", "D", "alpha", "beta", "cau", "fwd_med", "fwd_min", "sd%",
        "TFLOP/s", "fb_med", "fb_min", "sd%", "TFLOP/s", "r_fwd", "r_fb", "sparsity", "refine",
        "sweeps", "conv", "resid", "prep_ms", "cold_ms", "warm_ms");
  else
    printf(
        "%-8s %-5s %3s %4s %6s %4s %5s %5s %3s | %9s %8s %6s %9s | %5s | %8s %6s %7s %5s %8s | "
        "%9s %8s %8s\n",
        "algo", "dtype", "B", "H", "N", "D", "alpha", "beta", "cau", "fwd_med", "fwd_min", "sd%",
        "TFLOP/s", "r_fwd", "sparsity", "refine", "sweeps", "conv", "resid", "prep_ms", "cold_ms",
        "warm_ms");
  fflush(stdout);
}

static void attn_report(bench_env *env, const attn_cfg *c, const attn_result *res, int count) {
  const bench_opts *o = env->o;
  const int fb = o->mode == MODE_FWD_BWD;
  const attn_result *soft = attn_find(res, count, 1);
  for (int i = 0; i < count; ++i) {
    const attn_result *r = &res[i];
    const dt_timing *t = &r->fwd;
    /* forward alone: in fwd-bwd mode the first event of the unit, else the whole unit */
    const dt_stats *fwd = fb ? &t->first : &t->total;
    const dt_stats *sfwd = soft ? (fb ? &soft->fwd.first : &soft->fwd.total) : NULL;
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
        printf("%8.4f %6.3f %3.1f/%-3d %5s %8.1e | ", r->stats.block_sparsity,
               r->stats.visible_tiles
                   ? (double)r->stats.refine_tiles / (double)r->stats.visible_tiles
                   : 0.0,
               r->stats.mean_sweeps, r->stats.max_sweeps, r->stats.converged ? "yes" : "NO",
               r->stats.max_residual);
      else
        printf("%8s %6s %7s %5s %8s | ", "-", "-", "-", "-", "-");
      printf("%9.1f ", r->prepare_ms);
      if (r->have_first_call)
        printf("%8.1f %8.1f", r->cold_ms, r->warm_ms);
      else
        printf("%8s %8s", "-", "-");
      if (t->wall_clock) printf("  (wall clock)");
      printf("\n");
    }
    if (!env->json) continue;
    dt_json j;
    bench_json_begin(env, &j);
    dt_json_str(&j, "algo", bench_algo_names[r->algo]);
    dt_json_str(&j, "status", bench_outcome_names[r->outcome]);
    if (r->note[0]) dt_json_str(&j, "note", r->note);
    dt_json_str(&j, "dtype", bench_dtype_names[c->dtype]);
    dt_json_int(&j, "b", c->b);
    dt_json_int(&j, "h", c->h);
    dt_json_int(&j, "n", c->n);
    dt_json_int(&j, "d", c->d);
    dt_json_num(&j, "alpha", c->alpha);
    dt_json_num(&j, "beta", c->beta);
    dt_json_num(&j, "sigma", c->sigma);
    dt_json_int(&j, "seed", (long long)c->seed);
    dt_json_bool(&j, "causal", c->causal);
    dt_json_str(&j, "flop_model", BENCH_FLOP_MODEL);
    if (r->outcome == OUT_OK) {
      dt_json_str(&j, "timing", t->wall_clock ? "wall-clock" : "profiling-marker");
      dt_json_bool(&j, "fwd_saved", fb);
      dt_json_stats(&j, "fwd_ms", fwd);
      dt_json_num(&j, "fwd_tflops", tf_fwd);
      dt_json_num(&j, "ratio_fwd", r_fwd);
      if (fb) {
        dt_json_stats(&j, "fwd_bwd_ms", &t->total);
        dt_json_num(&j, "fwd_bwd_tflops", tf_fb);
        dt_json_num(&j, "ratio_fwd_bwd", r_fb);
      }
      dt_json_num(&j, "prepare_ms", r->prepare_ms);
      if (r->have_stats) {
        dt_json_num(&j, "block_sparsity", r->stats.block_sparsity);
        dt_json_num(&j, "tile", (double)r->stats.tile_m);
        if (r->stats.block_sparsity_64 >= 0.0)
          dt_json_num(&j, "block_sparsity_64", r->stats.block_sparsity_64);
        dt_json_int(&j, "visible_tiles", (long long)r->stats.visible_tiles);
        dt_json_int(&j, "active_tiles", (long long)r->stats.active_tiles);
        dt_json_int(&j, "refine_tiles", (long long)r->stats.refine_tiles);
        dt_json_num(&j, "mean_sweeps", r->stats.mean_sweeps);
        dt_json_int(&j, "max_sweeps", r->stats.max_sweeps);
        dt_json_bool(&j, "converged", r->stats.converged);
        dt_json_num(&j, "max_residual", r->stats.max_residual);
        dt_json_int(&j, "tile_m", r->stats.tile_m);
        dt_json_int(&j, "tile_n", r->stats.tile_n);
      }
    }
    if (r->have_first_call) {
      dt_json_num(&j, "cold_ms", r->cold_ms);
      dt_json_num(&j, "warm_ms", r->warm_ms);
      dt_json_int(&j, "cold_builds", (long long)r->cold_builds);
      dt_json_int(&j, "warm_builds", (long long)r->warm_builds);
      dt_json_int(&j, "warm_disk_hits", (long long)r->warm_disk_hits);
    }
    dt_json_line_end(&j);
  }
  fflush(stdout);
}

static int attn_dump(bench_env *env, const attn_cfg *c, float *const f[3]) {
  if (bench_mkdir(env->o->dump_dir) != 0) {
    dt_error(BENCH_PROG, "--dump: cannot create %s: %s", env->o->dump_dir, strerror(errno));
    return -1;
  }
  const size_t shape[4] = {(size_t)c->b, (size_t)c->h, (size_t)c->n, (size_t)c->d};
  static const char *names[3] = {"q.npy", "k.npy", "v.npy"};
  for (int i = 0; i < 3; ++i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", env->o->dump_dir, names[i]);
    if (bench_npy_write_f32(path, f[i], shape, 4) != 0) {
      dt_error(BENCH_PROG, "--dump: writing %s failed: %s", path, strerror(errno));
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
    dt_error(BENCH_PROG, "out of host memory for N=%d (B=%d H=%d D=%d)", base.n, base.b, base.h,
             base.d);
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

void attn_run(bench_env *env) {
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
