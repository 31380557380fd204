/*
 * adasplash_bench.c - the adasplash-bench program: times the library's fused entmax attention
 * against its softmax flash and dense entmax baselines (forward, forward+backward) on the
 * locality inputs of devtools/locality.h, and row-wise entmax against row softmax, on the device
 * the library picks. Prints a table on stdout, appends JSON lines (--json) and can dump the exact
 * inputs as .npy files (--dump) for ../shared/gpu/peer_bench.py. The usage text below documents
 * every option, the PRNG, the timing method and the FLOP model. This file holds the command line
 * and the run; the modes are bench_attention.c and bench_rows.c.
 *
 * Exit codes: 0 success, 1 a measurement failed, 2 bad command line, 77 no OpenCL device.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2
#define BENCH_EXIT_NO_DEVICE 77

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
    "  decode             time an inference forward of q_len new queries against a KV cache of\n"
    "                     kv_len keys: the split-KV decode path (contiguous, or paged through\n"
    "                     adasplash_attention_forward_paged) against the fused forward on the "
    "same\n"
    "                     problem (tuning decode_max_q=0); effective K/V bandwidth against the\n"
    "                     device's copy bandwidth measured in the same run\n"
    "  prepare            cold adasplash_attention_prepare of a training desc per --alpha value\n"
    "                     (first dtype, n, b, h, d), one after another and then from one thread\n"
    "                     each, on fresh contexts with the disk cache off: whether the device's\n"
    "                     compiler builds programs concurrently (set CUDA_CACHE_DISABLE=1)\n"
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
    "Decode options (also --b, --h, --d, --alpha, --seed, --causal):\n"
    "  --kv LIST          keys in the cache (default 4096,65536)\n"
    "  --q LIST           new queries per sequence (default 1,4,16)\n"
    "  --gqa LIST         q heads per kv head, dividing --h (default 8)\n"
    "  --page LIST        page size (16..256), 0 = contiguous K/V (default 0,256); paged runs\n"
    "                     put the pages in shuffled order\n"
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
    "Inputs (the locality generator), deterministic from the seed: per (batch b, head h) one PRNG "
    "stream;\n"
    "per step t: D normals e (u_0 = e, u_t = u_{t-1} + sigma*e), u~ = sqrt(D) u/|u|, then D "
    "normals\n"
    "xi (q = beta*u~ + xi), D normals zeta (k = u~ + zeta), D normals v. PRNG: splitmix64 (state "
    "+=\n"
    "0x9E3779B97F4A7C15, finaliser M with multipliers 0xBF58476D1CE4E5B9, 0x94D049BB133111EB),\n"
    "stream start state = M(seed) ^ M(stream ^ 0xD1B54A32D192ED03) with stream = 1<<56|b<<28|h\n"
    "(output gradient 2<<56|b<<28|h, entmax rows 3<<56|row); uniform = (next>>11)*2^-53;\n"
    "normal = Box-Muller r = sqrt(-2 ln(1-U1)), r cos(2 pi U2) then r sin(2 pi U2). Double math,\n"
    "rounded to float32 once (devtools/locality.h).\n"
    "\n"
    "Environment: ADASPLASH_DEVICE picks the device (the library's rules), ADASPLASH_CACHE_DIR,\n"
    "ADASPLASH_TUNE, ADASPLASH_PATH. Progress goes to stderr when it is a terminal.\n"
    "Exit codes: 0 ok, 1 a measurement failed, 2 bad command line, 77 no OpenCL device.\n",
    NULL};

/* ---- options ----------------------------------------------------------------------------------
 */

/* Lists into the options' fixed-size lists; 0 or -1 (printed). */
static int bench_ints(const char *opt, const char *s, long long lo, long long hi, int_list *out) {
  out->n = dt_cli_ints(BENCH_PROG, opt, s, lo, hi, out->v, BENCH_MAX_LIST);
  return out->n < 0 ? -1 : 0;
}

static int bench_dbls(const char *opt, const char *s, double lo, double hi, dbl_list *out) {
  out->n = dt_cli_doubles(BENCH_PROG, opt, s, lo, hi, out->v, BENCH_MAX_LIST);
  return out->n < 0 ? -1 : 0;
}

static int bench_names(const char *opt, const char *s, const char *const *names, int count,
                       int_list *out) {
  out->n = dt_cli_names(BENCH_PROG, opt, s, names, count, out->v, BENCH_MAX_LIST);
  return out->n < 0 ? -1 : 0;
}

/* The defaults, as options (the usage text gives the same values). */
static const char bench_default_args[] =
    "--mode attention-fwd-bwd --algos entmax,softmax --n 4096 --b 1 --h 16 --d 64 --seed 0 "
    "--rows 4096 --cols 1024,8192,65536 --dtype f32 --rows-kind gaussian,peaked --alpha 1.5 "
    "--beta 2 --sigma 0.15 --causal --warmup 3 --repeats 10 --peaks 4 --scale 1 --kv 4096,65536 "
    "--q 1,4,16 --gqa 8 --page 0,256";

/* --smoke: tiny sizes of every mode for CI (seconds on a CPU device), applied over the command
 * line (--json and --dump still apply). */
static const char bench_smoke_args[] =
    "--algos entmax,softmax,dense --n 64,100 --b 1 --h 2 --d 32 --seed 1 --rows 64 "
    "--cols 100,1000 --dtype f32,bf16 --rows-kind gaussian,peaked --alpha 1.5 --beta 2 "
    "--sigma 0.15 --warmup 1 --repeats 2 --kv 100 --q 1,4 --gqa 2 --page 0,16";

/* Applies the options argv[0..argc) to o. Returns 0 to run, 1 for a clean exit (help/version), -1
 * for a usage error. */
static int bench_apply_args(int argc, const char *const *argv, bench_opts *o) {
  for (int i = 0; i < argc; ++i) {
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
      dt_error(BENCH_PROG, "unknown option or missing value: %s (see --help)", a);
      return -1;
    }
    const char *v = argv[++i];
    int rc = 0;
    if (strcmp(a, "--mode") == 0) {
      long long m = 0;
      rc = dt_cli_names(BENCH_PROG, a, v, bench_mode_names, MODE_COUNT, &m, 1) < 0 ? -1 : 0;
      if (rc == 0) o->mode = (bench_mode)m;
    } else if (strcmp(a, "--algos") == 0) {
      rc = bench_names(a, v, bench_algo_names, 3, &o->algos);
    } else if (strcmp(a, "--dtype") == 0) {
      rc = bench_names(a, v, bench_dtype_names, 3, &o->dtypes);
    } else if (strcmp(a, "--rows-kind") == 0) {
      rc = bench_names(a, v, bench_kind_names, 2, &o->kinds);
    } else if (strcmp(a, "--n") == 0) {
      rc = bench_ints(a, v, 1, 1 << 24, &o->n);
    } else if (strcmp(a, "--b") == 0) {
      rc = bench_ints(a, v, 1, 1 << 16, &o->b);
    } else if (strcmp(a, "--h") == 0) {
      rc = bench_ints(a, v, 1, 1 << 16, &o->h);
    } else if (strcmp(a, "--d") == 0) {
      rc = bench_ints(a, v, 1, 256, &o->d);
    } else if (strcmp(a, "--seed") == 0) {
      rc = bench_ints(a, v, 0, INT64_MAX, &o->seed);
    } else if (strcmp(a, "--kv") == 0) {
      rc = bench_ints(a, v, 1, 1 << 26, &o->kv);
    } else if (strcmp(a, "--q") == 0) {
      rc = bench_ints(a, v, 1, 256, &o->q);
    } else if (strcmp(a, "--gqa") == 0) {
      rc = bench_ints(a, v, 1, 1 << 16, &o->gqa);
    } else if (strcmp(a, "--page") == 0) {
      rc = bench_ints(a, v, 0, 256, &o->page);
    } else if (strcmp(a, "--rows") == 0) {
      rc = bench_ints(a, v, 1, 1 << 26, &o->rows);
    } else if (strcmp(a, "--cols") == 0) {
      rc = bench_ints(a, v, 1, 1 << 30, &o->cols);
    } else if (strcmp(a, "--alpha") == 0) {
      rc = bench_dbls(a, v, 1.0, 2.0, &o->alpha);
    } else if (strcmp(a, "--beta") == 0) {
      rc = bench_dbls(a, v, -1e6, 1e6, &o->beta);
    } else if (strcmp(a, "--sigma") == 0) {
      rc = bench_dbls(a, v, 0.0, 1e6, &o->sigma);
    } else if (strcmp(a, "--warmup") == 0 || strcmp(a, "--repeats") == 0 ||
               strcmp(a, "--peaks") == 0 || strcmp(a, "--max-iter") == 0) {
      long long x = 0;
      const long long lo = strcmp(a, "--repeats") == 0 ? 1 : 0;
      rc = dt_cli_ints(BENCH_PROG, a, v, lo, 1000000, &x, 1) < 0 ? -1 : 0;
      if (rc == 0) {
        if (strcmp(a, "--warmup") == 0) o->warmup = (int)x;
        if (strcmp(a, "--repeats") == 0) o->repeats = (int)x;
        if (strcmp(a, "--peaks") == 0) o->peaks = (int)x;
        if (strcmp(a, "--max-iter") == 0) o->max_iter = (int)x;
      }
    } else if (strcmp(a, "--scale") == 0 || strcmp(a, "--tolerance") == 0) {
      double x = 0.0;
      rc = dt_cli_doubles(BENCH_PROG, a, v, 0.0, 1e9, &x, 1) < 0 ? -1 : 0;
      if (rc == 0 && strcmp(a, "--scale") == 0) o->scale = x;
      if (rc == 0 && strcmp(a, "--tolerance") == 0) o->tolerance = x;
    } else if (strcmp(a, "--json") == 0) {
      o->json_path = v;
    } else if (strcmp(a, "--dump") == 0) {
      o->dump_dir = v;
    } else {
      dt_error(BENCH_PROG, "unknown option: %s (see --help)", a);
      rc = -1;
    }
    if (rc != 0) return -1;
  }
  return 0;
}

/* ---- main -------------------------------------------------------------------------------------
 */

/* bench_apply_args of the space-separated options in text (one of the tables above). */
static int bench_apply_text(const char *text, bench_opts *o) {
  char buf[512];
  const char *argv[64];
  int argc = 0;
  snprintf(buf, sizeof buf, "%s", text);
  for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " ")) argv[argc++] = t;
  return bench_apply_args(argc, argv, o);
}

int main(int argc, char **argv) {
  bench_opts o;
  memset(&o, 0, sizeof o);
  int rc = bench_apply_text(bench_default_args, &o);
  if (rc == 0) rc = bench_apply_args(argc - 1, (const char *const *)argv + 1, &o);
  if (rc != 0) return rc > 0 ? 0 : BENCH_EXIT_USAGE;

  if (o.smoke) bench_apply_text(bench_smoke_args, &o);

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
    dt_lib_message(NULL, st, "context creation", note, sizeof note);
    if (st == ADASPLASH_ERROR_NO_DEVICE) {
      printf("SKIP: no OpenCL device: %s\n", note);
      return BENCH_EXIT_NO_DEVICE;
    }
    dt_error(BENCH_PROG, "%s", note);
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
      dt_error(BENCH_PROG, "--json: cannot open %s: %s", o.json_path, strerror(errno));
      adasplash_context_release(env.ctx);
      return BENCH_EXIT_FAIL;
    }
  }
  if (o.smoke) {
    for (int m = MODE_FWD; m < MODE_COUNT; ++m) {
      o.mode = (bench_mode)m;
      o.first_call = m == MODE_FWD;
      env.step = 0;
      printf("\n== %s\n", bench_mode_names[m]);
      if (o.mode == MODE_ROWS)
        rows_run(&env);
      else if (o.mode == MODE_DECODE)
        decode_run(&env);
      else if (o.mode == MODE_PREPARE)
        prep_run_mode(&env);
      else
        attn_run(&env);
    }
  } else if (o.mode == MODE_ROWS) {
    rows_run(&env);
  } else if (o.mode == MODE_DECODE) {
    decode_run(&env);
  } else if (o.mode == MODE_PREPARE) {
    prep_run_mode(&env);
  } else {
    attn_run(&env);
  }

  if (env.json) fclose(env.json);
  adasplash_context_release(env.ctx);
  if (env.failures) dt_error(BENCH_PROG, "%d measurement(s) failed", env.failures);
  return env.failures ? BENCH_EXIT_FAIL : 0;
}
