/*
 * context.c - context creation (owned or borrowed OpenCL objects), release, queries, the choice of
 * kernel path and tuning.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk_cache.h"
#include "internal.h"
#include "sha256.h"

void adasplash_context_options_init(adasplash_context_options *options) {
  if (!options) return;
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
}

/* Options that are missing or from an older, smaller struct read as defaults. */
static adasplash_context_options asp_options_or_defaults(const adasplash_context_options *o) {
  adasplash_context_options d;
  adasplash_context_options_init(&d);
  if (o) memcpy(&d, o, o->struct_size < sizeof d ? o->struct_size : sizeof d);
  d.struct_size = sizeof d;
  return d;
}

/* The sizes an adasplash_context_options of this or an older version can have: the end of one of
 * its members from device on. A size that ends inside a member would copy part of a pointer (the
 * fuzzer's input tests/fuzz/corpus/regression-options-struct-size-mid-pointer). */
static int asp_options_size_ok(size_t size) {
  typedef adasplash_context_options opts;
  static const size_t ends[] = {
      offsetof(opts, device) + sizeof(const char *),
      offsetof(opts, cache_dir) + sizeof(const char *),
      offsetof(opts, tune) + sizeof(const char *),
      offsetof(opts, kernel_dir) + sizeof(const char *),
      offsetof(opts, path) + sizeof(const char *),
      offsetof(opts, queue_properties) + sizeof(cl_command_queue_properties),
      sizeof(opts)};
  for (size_t i = 0; i < sizeof ends / sizeof ends[0]; ++i)
    if (size == ends[i]) return 1;
  return 0;
}

static adasplash_status asp_check_options(const adasplash_context_options *o) {
  if (o && !asp_options_size_ok(o->struct_size))
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "options->struct_size=%zu is not a size of adasplash_context_options (%zu); "
                    "call adasplash_context_options_init",
                    o->struct_size, sizeof *o);
  return ADASPLASH_SUCCESS;
}

static void asp_default_tuning(const asp_device *dev, asp_tuning *t) {
  memset(t, 0, sizeof *t);
  t->local_mem = (unsigned long)dev->info.local_mem_size;
  t->max_wg = (unsigned long)dev->info.max_work_group_size;
  if (dev->is_gpu) {
    /* 32x32 tiles, 64 work-items (4x4 scores each), 16 head-dim columns per staging step.
     * Measured on an H100 (N=16384, H=16, D=64, causal, beta=2, bf16 fwd+bwd, ms): 32/64 92.6,
     * 64/128 103, 64/128 dk=32 102, 64/256 134, 64/64 156 (tools/gpu_session.sh sweep). */
    t->attn_tile = 32;
    t->attn_wg = 64;
    t->attn_dk = 16;
    t->attn_bins = 16;
    t->rows_wg = 256;
    t->rows_bins = 64;
    t->rows_seg_cols = 65536;
    /* One work-item searching the bracket left 255 idle: 2.9 ms for 4096 x 1024 rows on an
     * H100, 15x the plain-bracket start. */
    t->rows_wg_bracket = 1;
  } else {
    /* CPU runtimes (PoCL) run a work-group as loops over work-items: fewer, fatter work-items.
     * 16x16 tiles: adasplash-tune on PoCL (2-core EPYC, N=2048, H=4, D=64, f32, causal, beta=2)
     * measured fwd+bwd 472 ms against 817 ms with 32x32 (finer tiles skip more, and a work-item
     * owns 2x2 scores instead of 4x4); at N=4096 entmax 1561 vs 2734 ms, softmax 4967 vs 6416. */
    t->attn_tile = 16;
    t->attn_wg = 64;
    t->attn_dk = 32;
    t->attn_bins = 16;
    t->rows_wg = 64;
    t->rows_bins = 64;
    t->rows_seg_cols = 65536;
  }
  t->rows_cache = 1;
  t->attn_hist = 1;
  /* The fused backward (dQ added atomically) won on both device classes measured: H100, N=16384,
   * H=16, D=64, causal, beta=2, bf16: backward kernels 22.7 ms fused vs 10.1 + 18.1 split; PoCL
   * (2-core EPYC), N=4096, H=4, f32, 32x32 tiles: backward 952 vs 1334 ms (16x16 tiles, N=2048:
   * fwd+bwd 472 vs 514 ms). Its dQ is not bitwise reproducible (atomic order); attn_bwd_fused=0
   * is. */
  t->attn_bwd_fused = 1;
}

/* "<dir>/tuned-<16 hex>.conf" for this device, or $ADASPLASH_TUNE_FILE. dir is the cache directory
 * even where program binaries are not cached there (PoCL, ADASPLASH_DISK_CACHE=OFF builds): the
 * tuned file is small text that adasplash-tune writes for every device. */
static int asp_tuned_file_path(const adasplash_context *ctx, const char *dir, char *out,
                               size_t size) {
  const char *env = asp_getenv("ADASPLASH_TUNE_FILE");
  if (env) return asp_strlcpy(out, env, size) == 0;
  if (!dir[0]) return 0;
  asp_sha256_ctx h;
  asp_sha256_init(&h);
  const adasplash_device_info *i = &ctx->dev.info;
  const char *parts[] = {i->platform_name, i->device_name, i->device_version, i->driver_version};
  for (size_t p = 0; p < 4; ++p) asp_sha256_update(&h, parts[p], strlen(parts[p]) + 1);
  uint8_t digest[32];
  asp_sha256_final(&h, digest);
  char hex[65];
  asp_hex(digest, 8, hex);
  int n = snprintf(out, size, "%s/tuned-%s.conf", dir, hex);
  return n > 0 && (size_t)n < size;
}

static adasplash_status asp_init_tuning(adasplash_context *ctx, const char *override,
                                        const char *tune_dir) {
  asp_default_tuning(&ctx->dev, &ctx->tuning);
  unsigned long dev_local = (unsigned long)ctx->dev.info.local_mem_size;
  unsigned long dev_wg = (unsigned long)ctx->dev.info.max_work_group_size;
  char err[512];
  char *path = ctx->dev.info.tuned_file;
  path[0] = '\0';
  ctx->dev.info.tuned_file_loaded = 0;
  if (asp_tuned_file_path(ctx, tune_dir, path, sizeof ctx->dev.info.tuned_file)) {
    FILE *f = fopen(path, "rb");
    if (f) {
      char text[8192];
      size_t n = fread(text, 1, sizeof text - 1, f);
      fclose(f);
      text[n] = '\0';
      if (asp_tuning_apply(&ctx->tuning, text, dev_local, dev_wg, err, sizeof err) != 0)
        return asp_fail(NULL, ADASPLASH_ERROR_INVALID_TUNING, "tuned file %s: %s", path, err);
      ctx->dev.info.tuned_file_loaded = 1;
    }
  } else {
    path[0] = '\0';
  }
  if (!override) override = asp_getenv("ADASPLASH_TUNE");
  if (asp_tuning_apply(&ctx->tuning, override, dev_local, dev_wg, err, sizeof err) != 0)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_TUNING, "ADASPLASH_TUNE: %s", err);
  /* The planners see the (possibly lowered) limits through the public device info too. */
  ctx->dev.info.local_mem_size = ctx->tuning.local_mem;
  ctx->dev.info.max_work_group_size = ctx->tuning.max_wg;
  asp_tuning_format(&ctx->tuning, ctx->dev.info.tuning, sizeof ctx->dev.info.tuning);
  return ADASPLASH_SUCCESS;
}

static adasplash_status asp_choose_path(adasplash_context *ctx, const char *request) {
  if (!request) request = asp_getenv("ADASPLASH_PATH");
  if (!request) request = "auto";
  if (asp_equals_nocase(request, "portable") || asp_equals_nocase(request, "auto")) {
    /* The NVIDIA tensor-core path is not available in this version: auto means portable. */
    ctx->path = ADASPLASH_PATH_PORTABLE;
    return ADASPLASH_SUCCESS;
  }
  if (asp_equals_nocase(request, "nvidia"))
    return asp_fail(NULL, ADASPLASH_ERROR_UNSUPPORTED,
                    "kernel path \"nvidia\" (inline-PTX tensor cores) is not available in this "
                    "build; use \"portable\" or \"auto\"");
  return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                  "kernel path \"%s\" is unknown (use auto, portable or nvidia)", request);
}

static adasplash_status asp_context_finish(adasplash_context *ctx,
                                           const adasplash_context_options *o) {
  adasplash_status st = asp_device_describe(NULL, ctx->device, &ctx->dev);
  if (st != ADASPLASH_SUCCESS) return st;
  /* The disk cache: an explicit directory (option or $ADASPLASH_CACHE_DIR) is always used; the
   * default location only when the build enables it and the driver does not cache by itself. */
  const int explicit_dir = o->cache_dir != NULL || getenv("ADASPLASH_CACHE_DIR") != NULL;
  ctx->disk_cache = asp_disk_cache_dir(o->cache_dir, ctx->cache_dir, sizeof ctx->cache_dir);
  char tune_dir[sizeof ctx->cache_dir];
  memcpy(tune_dir, ctx->cache_dir, sizeof tune_dir);
  if (!ctx->disk_cache) tune_dir[0] = '\0'; /* "off", or no usable directory */
  if (ctx->disk_cache && !explicit_dir && !ADASPLASH_DISK_CACHE_DEFAULT) {
    ctx->disk_cache = 0;
    asp_strlcpy(ctx->stats.cache_note, "off: built with ADASPLASH_DISK_CACHE=OFF",
                sizeof ctx->stats.cache_note);
  } else if (ctx->disk_cache && !explicit_dir && ctx->dev.is_pocl) {
    ctx->disk_cache = 0;
    asp_strlcpy(ctx->stats.cache_note,
                "off: PoCL caches compiled kernels itself (set ADASPLASH_CACHE_DIR to cache too)",
                sizeof ctx->stats.cache_note);
  } else if (!ctx->disk_cache) {
    asp_strlcpy(ctx->stats.cache_note, "off: disabled by \"off\" or no usable directory",
                sizeof ctx->stats.cache_note);
  }
  if (!ctx->disk_cache) ctx->cache_dir[0] = '\0';
  const char *kdir = o->kernel_dir ? o->kernel_dir : asp_getenv("ADASPLASH_KERNEL_DIR");
  if (kdir && asp_strlcpy(ctx->kernel_dir, kdir, sizeof ctx->kernel_dir))
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "kernel_dir is too long");
  st = asp_init_tuning(ctx, o->tune, tune_dir);
  if (st != ADASPLASH_SUCCESS) return st;
  st = asp_choose_path(ctx, o->path);
  if (st != ADASPLASH_SUCCESS) return st;
  ctx->dev.info.kernel_path = ctx->path;
  asp_strlcpy(ctx->dev.info.selection_reason, ctx->selection_reason,
              sizeof ctx->dev.info.selection_reason);
  ctx->stats.struct_size = sizeof ctx->stats;
  asp_strlcpy(ctx->stats.cache_dir, ctx->cache_dir, sizeof ctx->stats.cache_dir);
  return ADASPLASH_SUCCESS;
}

static adasplash_context *asp_context_alloc(void) {
  adasplash_context *ctx = (adasplash_context *)calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  if (asp_mutex_init(&ctx->lock) != 0) {
    free(ctx);
    return NULL;
  }
  return ctx;
}

adasplash_status adasplash_context_create(const adasplash_context_options *options,
                                          adasplash_context **out) {
  if (!out)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create: ctx is NULL");
  adasplash_status st = asp_check_options(options);
  if (st != ADASPLASH_SUCCESS) return st;
  adasplash_context_options o = asp_options_or_defaults(options);
  cl_platform_id platform;
  cl_device_id device;
  char reason[128];
  st = asp_select_device(o.device, &platform, &device, reason, sizeof reason);
  if (st != ADASPLASH_SUCCESS) return st;
  adasplash_context *ctx = asp_context_alloc();
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating the context failed");
  asp_strlcpy(ctx->selection_reason, reason, sizeof ctx->selection_reason);
  cl_int err;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
  ctx->cl_ctx = clCreateContext(props, 1, &device, NULL, NULL, &err);
  if (err != CL_SUCCESS) {
    st = asp_fail_cl(NULL, err, "clCreateContext");
    adasplash_context_release(ctx);
    return st;
  }
  ctx->device = device;
  ctx->owned = 1;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  /* clCreateCommandQueue is the OpenCL 1.2 entry point the portable build targets. */
  ctx->queue = clCreateCommandQueue(ctx->cl_ctx, device, o.queue_properties, &err);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
  if (err != CL_SUCCESS) {
    st = asp_fail_cl(NULL, err, "clCreateCommandQueue");
    adasplash_context_release(ctx);
    return st;
  }
  st = asp_context_finish(ctx, &o);
  if (st != ADASPLASH_SUCCESS) {
    adasplash_context_release(ctx);
    return st;
  }
  *out = ctx;
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_create_borrowed(cl_context context, cl_device_id device,
                                                   cl_command_queue queue,
                                                   const adasplash_context_options *options,
                                                   adasplash_context **out) {
  if (!out)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: ctx is NULL");
  if (!context)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: context is NULL");
  if (!device)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: device is NULL");
  if (!queue)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: queue is NULL");
  adasplash_status st = asp_check_options(options);
  if (st != ADASPLASH_SUCCESS) return st;
  adasplash_context_options o = asp_options_or_defaults(options);
  /* The queue must belong to this context and device; the device to the context. */
  cl_context qctx = NULL;
  cl_device_id qdev = NULL;
  cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL);
  if (err != CL_SUCCESS)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: queue is not a command queue (%s)",
                    asp_cl_error_name(err));
  clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qdev, &qdev, NULL);
  if (qctx != context)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: queue belongs to another cl_context");
  if (qdev != device)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_create_borrowed: queue belongs to another device");
  adasplash_context *ctx = asp_context_alloc();
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating the context failed");
  asp_strlcpy(ctx->selection_reason, "borrowed from the caller", sizeof ctx->selection_reason);
  if ((err = clRetainContext(context)) != CL_SUCCESS) {
    free(ctx);
    return asp_fail_cl(NULL, err, "clRetainContext");
  }
  ctx->cl_ctx = context;
  if ((err = clRetainCommandQueue(queue)) != CL_SUCCESS) {
    st = asp_fail_cl(NULL, err, "clRetainCommandQueue");
    adasplash_context_release(ctx);
    return st;
  }
  ctx->queue = queue;
  ctx->device = device;
  ctx->owned = 0;
  st = asp_context_finish(ctx, &o);
  if (st != ADASPLASH_SUCCESS) {
    adasplash_context_release(ctx);
    return st;
  }
  *out = ctx;
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_release(adasplash_context *ctx) {
  if (!ctx) return ADASPLASH_SUCCESS;
  asp_program_release_all(ctx);
  asp_dense_release(ctx);
  if (ctx->queue) clReleaseCommandQueue(ctx->queue);
  if (ctx->cl_ctx) clReleaseContext(ctx->cl_ctx);
  asp_mutex_destroy(&ctx->lock);
  free(ctx);
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_get_cl(const adasplash_context *ctx, cl_context *context,
                                          cl_device_id *device, cl_command_queue *queue) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_cl: ctx is NULL");
  if (context) *context = ctx->cl_ctx;
  if (device) *device = ctx->device;
  if (queue) *queue = ctx->queue;
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_get_device_info(const adasplash_context *ctx,
                                                   adasplash_device_info *info) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_device_info: ctx is NULL");
  if (!info)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_device_info: info is NULL");
  if (info->struct_size < sizeof(size_t) || info->struct_size > sizeof *info)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_device_info: info->struct_size=%zu (expected %zu)",
                    info->struct_size, sizeof *info);
  size_t n = info->struct_size;
  memcpy(info, &ctx->dev.info, n);
  info->struct_size = n;
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_get_cache_stats(const adasplash_context *ctx,
                                                   adasplash_cache_stats *stats) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_cache_stats: ctx is NULL");
  if (!stats)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_cache_stats: stats is NULL");
  if (stats->struct_size < sizeof(size_t) || stats->struct_size > sizeof *stats)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_get_cache_stats: stats->struct_size=%zu (expected %zu)",
                    stats->struct_size, sizeof *stats);
  size_t n = stats->struct_size;
  adasplash_context *c = (adasplash_context *)ctx;
  asp_mutex_lock(&c->lock);
  memcpy(stats, &c->stats, n);
  asp_mutex_unlock(&c->lock);
  stats->struct_size = n;
  return ADASPLASH_SUCCESS;
}
