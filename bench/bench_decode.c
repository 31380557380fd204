/*
 * bench_decode.c - adasplash-bench's decode mode: an inference forward of q_len new queries per
 * sequence against a KV cache of kv_len keys (B sequences, H q heads sharing H/gqa kv heads).
 * Timed per configuration: the split-KV decode path (contiguous K/V through
 * adasplash_attention_forward, or a paged cache with shuffled pages through
 * adasplash_attention_forward_paged), the fused forward on the same problem (a second context on
 * the same queue with tuning decode_max_q=0), the library's softmax flash forward on the same
 * contiguous K/V (the dense baseline: every key read and weighed), and a device copy of the K and V
 * bytes (the copy bandwidth the effective K/V bandwidth is compared with). Inputs: N(0,1) from the
 * reference PRNG (splitmix64, Box-Muller), rounded to float32, then to the dtype.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "reference.h"

typedef struct decode_cfg {
  int b, h, kvh, d, q, kv, page;
  adasplash_dtype dtype;
  double alpha;
  uint64_t seed;
} decode_cfg;

enum { DEC_DECODE = 0, DEC_FUSED = 1, DEC_SOFTMAX = 2, DEC_COPY = 3, DEC_ALGOS = 4 };
static const char *const decode_algo_names[DEC_ALGOS] = {"decode", "fused-forward",
                                                         "softmax-forward", "copy"};

typedef struct decode_result {
  bench_outcome outcome;
  char note[1200];
  dt_timing t;
} decode_result;

typedef struct decode_call {
  bench_env *env;
  adasplash_context *ctx;
  adasplash_attention_desc desc;
  const adasplash_paged_kv *kv; /* paged decode, else NULL */
  cl_mem q, k, v, out, ws;
  cl_mem copy_src, copy_dst; /* the copy "algorithm" */
  size_t copy_bytes;
} decode_call;

static adasplash_status decode_enqueue(void *arg, cl_event ev[2]) {
  decode_call *c = arg;
  if (c->copy_src) {
    cl_int err = clEnqueueCopyBuffer(c->env->queue, c->copy_src, c->copy_dst, 0, 0, c->copy_bytes,
                                     0, NULL, &ev[0]);
    return err == CL_SUCCESS ? ADASPLASH_SUCCESS : ADASPLASH_ERROR_OPENCL;
  }
  if (c->kv)
    return adasplash_attention_forward_paged(c->ctx, &c->desc, c->kv, c->env->queue, c->q, c->k,
                                             c->v, c->out, c->ws, 0, NULL, &ev[0]);
  return adasplash_attention_forward(c->ctx, &c->desc, c->env->queue, c->q, c->k, c->v, c->out,
                                     NULL, c->ws, 0, NULL, &ev[0]);
}

static void decode_time(bench_env *env, decode_call *call, decode_result *r) {
  adasplash_status st = dt_time(env->queue, env->o->warmup, env->o->repeats, decode_enqueue, call,
                                &r->t, r->note, sizeof r->note);
  if (st != ADASPLASH_SUCCESS) {
    r->outcome = OUT_ERROR;
    if (!r->note[0]) dt_lib_message(call->ctx, st, "timed call", r->note, sizeof r->note);
  }
}

static float *decode_normals(size_t n, uint64_t seed) {
  float *x = malloc(n * sizeof(float));
  ref_rng r;
  ref_rng_seed(&r, seed);
  for (size_t i = 0; x && i < n; ++i) x[i] = (float)ref_rng_normal(&r);
  return x;
}

/* Host pools [pages, kvh, page, d] holding the contiguous [b, kvh, kv, d] tensor in shuffled pages,
 * and the block table. */
static void *decode_paginate(const decode_cfg *c, const void *src, size_t es, const int *order,
                             int pages) {
  const size_t row = (size_t)c->d * es, P = (size_t)c->page;
  char *dst = calloc((size_t)pages * c->kvh * P, row);
  if (!dst) return NULL;
  const int blocks = c->kv / c->page;
  for (int b = 0; b < c->b; ++b)
    for (int blk = 0; blk < blocks; ++blk) {
      const int page = order[b * blocks + blk];
      for (int h = 0; h < c->kvh; ++h)
        memcpy(dst + (((size_t)page * c->kvh + h) * P) * row,
               (const char *)src + ((((size_t)b * c->kvh + h) * c->kv) + (size_t)blk * P) * row,
               P * row);
    }
  return dst;
}

static void decode_print_header(void) {
  printf("%-15s %-5s %4s %4s %4s %4s %3s %7s %4s | %9s %9s %6s | %8s %6s %7s\n", "algo", "dtype",
         "B", "H", "Hkv", "D", "q", "kv", "page", "med_ms", "min_ms", "sd%", "KV_GB/s", "share",
         "speedup");
  fflush(stdout);
}

static void decode_report(bench_env *env, const decode_cfg *c, const decode_result *res,
                          double kv_bytes, double copy_bytes) {
  const double copy_gbs = res[DEC_COPY].outcome == OUT_OK
                              ? 2.0 * copy_bytes / (res[DEC_COPY].t.total.median * 1e-3) * 1e-9
                              : NAN;
  for (int a = 0; a < DEC_ALGOS; ++a) {
    const decode_result *r = &res[a];
    const dt_stats *s = &r->t.total;
    /* K/V bytes the call must read, per second; the copy moves 2x its bytes (read + write). */
    const double gbs = a == DEC_COPY ? copy_gbs : kv_bytes / (s->median * 1e-3) * 1e-9;
    const double share = gbs / copy_gbs;
    const double speedup = a == DEC_DECODE && res[DEC_FUSED].outcome == OUT_OK
                               ? res[DEC_FUSED].t.total.median / s->median
                               : NAN;
    printf("%-15s %-5s %4d %4d %4d %4d %3d %7d %4d | ", decode_algo_names[a],
           bench_dtype_names[c->dtype], c->b, c->h, c->kvh, c->d, c->q, c->kv, c->page);
    if (r->outcome != OUT_OK) {
      printf("%s: %s\n", bench_outcome_names[r->outcome], r->note);
    } else {
      printf("%9.3f %9.3f %6.1f | %8.2f %6.2f %7.2f%s\n", s->median, s->min,
             100.0 * s->stddev / s->mean, gbs, share, speedup,
             r->t.wall_clock ? " (wall clock)" : "");
    }
    if (!env->json) continue;
    dt_json j;
    bench_json_begin(env, &j);
    dt_json_str(&j, "algo", decode_algo_names[a]);
    dt_json_str(&j, "status", bench_outcome_names[r->outcome]);
    if (r->note[0]) dt_json_str(&j, "note", r->note);
    dt_json_str(&j, "dtype", bench_dtype_names[c->dtype]);
    dt_json_int(&j, "b", c->b);
    dt_json_int(&j, "h", c->h);
    dt_json_int(&j, "kv_heads", c->kvh);
    dt_json_int(&j, "d", c->d);
    dt_json_int(&j, "q_len", c->q);
    dt_json_int(&j, "kv_len", c->kv);
    dt_json_int(&j, "page_size", c->page);
    dt_json_bool(&j, "causal", env->o->causal);
    dt_json_num(&j, "alpha", c->alpha);
    dt_json_int(&j, "seed", (long long)c->seed);
    if (r->outcome == OUT_OK) {
      dt_json_str(&j, "timing", r->t.wall_clock ? "wall-clock" : "profiling-marker");
      dt_json_stats(&j, "ms", s);
      dt_json_num(&j, "kv_gb_per_s", gbs);
      dt_json_num(&j, "copy_gb_per_s", copy_gbs);
      dt_json_num(&j, "bandwidth_share", share);
      if (a == DEC_DECODE) {
        dt_json_num(&j, "speedup_vs_fused", speedup);
        dt_json_num(
            &j, "speedup_vs_softmax",
            res[DEC_SOFTMAX].outcome == OUT_OK ? res[DEC_SOFTMAX].t.total.median / s->median : NAN);
      }
    }
    dt_json_line_end(&j);
  }
  fflush(stdout);
}

static void decode_one(bench_env *env, adasplash_context *fused_ctx, const decode_cfg *c) {
  const bench_opts *o = env->o;
  decode_result res[DEC_ALGOS];
  memset(res, 0, sizeof res);
  const size_t es = adasplash_dtype_size(c->dtype);
  const size_t qn = (size_t)c->b * c->h * c->q * c->d, kvn = (size_t)c->b * c->kvh * c->kv * c->d;
  const double kv_bytes = 2.0 * (double)kvn * (double)es;
  char note[256] = "";
  int skip = 0;
  if ((double)kvn * es > (double)env->info.max_mem_alloc_size ||
      4.0 * (double)kvn * es + (double)c->b * c->h * c->q * (double)c->kv * 4.0 >
          0.5 * (double)env->info.global_mem_size) {
    skip = 1;
    snprintf(note, sizeof note, "K, V (%.0f MiB each) and the scores exceed the device's memory",
             (double)kvn * es / 1048576.0);
  }
  float *fq = skip ? NULL : decode_normals(qn, c->seed * 3 + 1);
  float *fk = skip ? NULL : decode_normals(kvn, c->seed * 3 + 2);
  float *fv = skip ? NULL : decode_normals(kvn, c->seed * 3 + 3);
  void *hq = fq ? bench_to_dtype(fq, qn, c->dtype) : NULL;
  void *hk = fk ? bench_to_dtype(fk, kvn, c->dtype) : NULL;
  void *hv = fv ? bench_to_dtype(fv, kvn, c->dtype) : NULL;
  if (!skip && (!hq || !hk || !hv)) snprintf(note, sizeof note, "out of host memory");
  adasplash_attention_desc d;
  adasplash_attention_desc_init(&d);
  d.dtype = c->dtype;
  d.batch = c->b;
  d.q_heads = c->h;
  d.kv_heads = c->kvh;
  d.q_len = c->q;
  d.kv_len = c->kv;
  d.head_dim = c->d;
  d.alpha = (float)c->alpha;
  d.causal = o->causal;
  d.flags = ADASPLASH_ATTN_FORWARD_ONLY;
  cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL, pk = NULL, pv = NULL, bt = NULL, bl = NULL,
         ws = NULL, ws2 = NULL, ws3 = NULL, cpy = NULL;
  int *table = NULL, *lens = NULL;
  void *hpk = NULL, *hpv = NULL;
  adasplash_paged_kv kv;
  adasplash_paged_kv_init(&kv);
  if (hq && hk && hv) {
    bq = bench_buffer(env, qn * es, hq, note, sizeof note);
    bk = bench_buffer(env, kvn * es, hk, note, sizeof note);
    bv = bench_buffer(env, kvn * es, hv, note, sizeof note);
    bo = bench_buffer(env, qn * es, NULL, note, sizeof note);
    cpy = bench_buffer(env, 2 * kvn * es, NULL, note, sizeof note);
  }
  adasplash_status st = bo ? ADASPLASH_SUCCESS : ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY;
  if (st == ADASPLASH_SUCCESS && c->page) {
    /* Shuffled pages: block blk of sequence b lives in page order[b * blocks + blk]. */
    const int blocks = c->kv / c->page, pages = c->b * blocks;
    table = malloc((size_t)pages * sizeof(int));
    lens = malloc((size_t)c->b * sizeof(int));
    for (int i = 0; table && i < pages; ++i) table[i] = i;
    ref_rng r;
    ref_rng_seed(&r, c->seed + 11);
    for (int i = pages - 1; table && i > 0; --i) {
      int j = (int)(ref_rng_uniform(&r) * (i + 1)), t = table[i];
      table[i] = table[j];
      table[j] = t;
    }
    for (int b = 0; lens && b < c->b; ++b) lens[b] = c->kv;
    hpk = table ? decode_paginate(c, hk, es, table, pages) : NULL;
    hpv = table ? decode_paginate(c, hv, es, table, pages) : NULL;
    if (hpk && hpv && lens) {
      pk = bench_buffer(env, kvn * es, hpk, note, sizeof note);
      pv = bench_buffer(env, kvn * es, hpv, note, sizeof note);
      bt = bench_buffer(env, (size_t)pages * 4, table, note, sizeof note);
      bl = bench_buffer(env, (size_t)c->b * 4, lens, note, sizeof note);
    }
    kv.page_size = c->page;
    kv.num_pages = pages;
    kv.max_blocks = blocks;
    kv.block_table = bt;
    kv.seq_lens = bl;
    kv.block_table_host = table;
    kv.seq_lens_host = lens;
    if (!bl) st = ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY;
  }
  size_t ws_bytes = 0, ws2_bytes = 0, ws3_bytes = 0;
  adasplash_attention_desc ds = d; /* the softmax baseline */
  ds.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_prepare(env->ctx, &d);
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_prepare(fused_ctx, &d);
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_prepare(env->ctx, &ds);
  if (st == ADASPLASH_SUCCESS)
    st = c->page ? adasplash_attention_paged_workspace_size(env->ctx, &d, &kv, &ws_bytes)
                 : adasplash_attention_workspace_size(env->ctx, &d, &ws_bytes);
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_workspace_size(fused_ctx, &d, &ws2_bytes);
  if (st == ADASPLASH_SUCCESS) st = adasplash_attention_workspace_size(env->ctx, &ds, &ws3_bytes);
  if (st == ADASPLASH_SUCCESS) {
    ws = bench_buffer(env, ws_bytes, NULL, note, sizeof note);
    ws2 = bench_buffer(env, ws2_bytes, NULL, note, sizeof note);
    ws3 = ws3_bytes ? bench_buffer(env, ws3_bytes, NULL, note, sizeof note) : NULL;
    if (!ws || !ws2 || (ws3_bytes && !ws3)) st = ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY;
  }
  for (int a = 0; a < DEC_ALGOS; ++a) {
    bench_progress(env, "decode B=%d H=%d q=%d kv=%d page=%d %s: %s", c->b, c->h, c->q, c->kv,
                   c->page, bench_dtype_names[c->dtype], decode_algo_names[a]);
    if (skip || st != ADASPLASH_SUCCESS) {
      res[a].outcome = skip ? OUT_SKIPPED : OUT_ERROR;
      if (skip || note[0])
        snprintf(res[a].note, sizeof res[a].note, "%s", note);
      else
        dt_lib_message(env->ctx, st, "setup", res[a].note, sizeof res[a].note);
      continue;
    }
    decode_call call;
    memset(&call, 0, sizeof call);
    call.env = env;
    call.desc = d;
    call.q = bq;
    call.out = bo;
    if (a == DEC_DECODE) {
      call.ctx = env->ctx;
      call.kv = c->page ? &kv : NULL;
      call.k = c->page ? pk : bk;
      call.v = c->page ? pv : bv;
      call.ws = ws;
      if (c->page) call.desc.k = call.desc.v = (adasplash_layout){0, 0, 0, 0};
      if (c->page) call.desc.kv_len = kv.max_blocks * kv.page_size;
    } else if (a == DEC_FUSED) {
      call.ctx = fused_ctx;
      call.k = bk;
      call.v = bv;
      call.ws = ws2;
    } else if (a == DEC_SOFTMAX) {
      call.ctx = env->ctx;
      call.desc = ds;
      call.k = bk;
      call.v = bv;
      call.ws = ws3;
    } else {
      call.ctx = env->ctx;
      call.copy_src = bk; /* K then V sized: a copy of the K/V bytes into one buffer */
      call.copy_dst = cpy;
      call.copy_bytes = kvn * es;
    }
    decode_time(env, &call, &res[a]);
    if (res[a].outcome == OUT_ERROR) env->failures++;
  }
  if (!skip && st != ADASPLASH_SUCCESS) env->failures += DEC_ALGOS;
  env->step++;
  decode_report(env, c, res, kv_bytes, (double)kvn * es);
  cl_mem *bufs[] = {&bq, &bk, &bv, &bo, &pk, &pv, &bt, &bl, &ws, &ws2, &ws3, &cpy};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i) bench_release(bufs[i]);
  free(fq), free(fk), free(fv), free(hq), free(hk), free(hv), free(hpk), free(hpv);
  free(table), free(lens);
}

void decode_run(bench_env *env) {
  const bench_opts *o = env->o;
  /* The fused forward on the same problem: a second context on the same device and queue, its
   * decode path switched off. */
  adasplash_context_options opt;
  adasplash_context_options_init(&opt);
  opt.tune = "decode_max_q=0";
  adasplash_context *fused = NULL;
  adasplash_status st =
      adasplash_context_create_borrowed(env->cl, env->device, env->queue, &opt, &fused);
  if (st != ADASPLASH_SUCCESS) {
    char note[1200];
    dt_lib_message(NULL, st, "context for the fused forward", note, sizeof note);
    dt_error(BENCH_PROG, "%s", note);
    env->failures++;
    return;
  }
  env->steps = o->b.n * o->h.n * o->gqa.n * o->d.n * o->q.n * o->kv.n * o->page.n * o->dtypes.n *
               o->alpha.n * o->seed.n;
  decode_print_header();
  for (int ib = 0; ib < o->b.n; ++ib)
    for (int ih = 0; ih < o->h.n; ++ih)
      for (int ig = 0; ig < o->gqa.n; ++ig)
        for (int id = 0; id < o->d.n; ++id)
          for (int ikv = 0; ikv < o->kv.n; ++ikv)
            for (int iq = 0; iq < o->q.n; ++iq)
              for (int ip = 0; ip < o->page.n; ++ip)
                for (int it = 0; it < o->dtypes.n; ++it)
                  for (int ia = 0; ia < o->alpha.n; ++ia)
                    for (int is = 0; is < o->seed.n; ++is) {
                      decode_cfg c;
                      c.b = (int)o->b.v[ib];
                      c.h = (int)o->h.v[ih];
                      c.kvh = c.h / (int)o->gqa.v[ig];
                      c.d = (int)o->d.v[id];
                      c.q = (int)o->q.v[iq];
                      c.page = (int)o->page.v[ip];
                      c.kv = (int)o->kv.v[ikv];
                      c.dtype = (adasplash_dtype)o->dtypes.v[it];
                      c.alpha = o->alpha.v[ia];
                      c.seed = (uint64_t)o->seed.v[is];
                      if (c.kvh < 1 || c.h % (int)o->gqa.v[ig] != 0) {
                        printf("skip: --gqa %lld does not divide --h %d\n", o->gqa.v[ig], c.h);
                        continue;
                      }
                      if (c.page && (c.page < 16 || (c.page & (c.page - 1)))) {
                        printf("skip: --page %d is not 16, 32, 64, 128 or 256\n", c.page);
                        continue;
                      }
                      /* A paged cache holds whole pages: kv rounded up to the page size. */
                      if (c.page) c.kv = (c.kv + c.page - 1) / c.page * c.page;
                      decode_one(env, fused, &c);
                    }
  adasplash_context_release(fused);
}
