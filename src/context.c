/*
 * context.c - context creation (owned or borrowed OpenCL objects) and its setup (device
 * description, program cache, tuning, kernel path), release with the modules' release hooks, and
 * queries.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "variant.h"

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

static adasplash_status asp_context_finish(adasplash_context *ctx,
                                           const adasplash_context_options *o) {
  adasplash_status st = asp_device_describe(NULL, ctx->device, &ctx->dev);
  if (st != ADASPLASH_SUCCESS) return st;
  char tune_dir[sizeof ctx->cache_dir];
  asp_program_cache_open(ctx, o->cache_dir, tune_dir, sizeof tune_dir);
  const char *kdir = o->kernel_dir ? o->kernel_dir : asp_getenv("ADASPLASH_KERNEL_DIR");
  if (kdir && asp_strlcpy(ctx->kernel_dir, kdir, sizeof ctx->kernel_dir))
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "kernel_dir is too long");
  st = asp_tuning_init(&ctx->dev, o->tune, tune_dir, &ctx->tuning);
  if (st != ADASPLASH_SUCCESS) return st;
  st = asp_variant_choose_path(ctx, o->path, &ctx->path, &ctx->path_auto);
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
  asp_plan_release_all(ctx);
  asp_program_release_all(ctx);
  for (int i = 0; i < ctx->release_hook_count; ++i) ctx->release_hooks[i](ctx);
  if (ctx->queue) clReleaseCommandQueue(ctx->queue);
  if (ctx->cl_ctx) clReleaseContext(ctx->cl_ctx);
  asp_mutex_destroy(&ctx->lock);
  free(ctx);
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_context_on_release(adasplash_context *ctx, asp_release_hook hook) {
  adasplash_status st = ADASPLASH_SUCCESS;
  const int cap = (int)(sizeof ctx->release_hooks / sizeof ctx->release_hooks[0]);
  asp_mutex_lock(&ctx->lock);
  int known = 0;
  for (int i = 0; i < ctx->release_hook_count; ++i) known |= ctx->release_hooks[i] == hook;
  if (!known && ctx->release_hook_count < cap)
    ctx->release_hooks[ctx->release_hook_count++] = hook;
  else if (!known)
    st = asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "more than %d release hooks", cap);
  asp_mutex_unlock(&ctx->lock);
  return st;
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

/* Copies a versioned public struct (size_t struct_size first) to a caller's struct of this or an
 * older, smaller version, under the context lock. */
static adasplash_status asp_copy_versioned(const adasplash_context *ctx, const char *fn,
                                           const char *name, void *out, const void *src,
                                           size_t full) {
  if (!ctx) return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
  if (!out) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn, name);
  size_t n;
  memcpy(&n, out, sizeof n);
  if (n < sizeof(size_t) || n > full)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: %s->struct_size=%zu (expected %zu)",
                    fn, name, n, full);
  adasplash_context *c = (adasplash_context *)ctx;
  asp_mutex_lock(&c->lock);
  memcpy(out, src, n);
  asp_mutex_unlock(&c->lock);
  memcpy(out, &n, sizeof n);
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_get_device_info(const adasplash_context *ctx,
                                                   adasplash_device_info *info) {
  return asp_copy_versioned(ctx, "adasplash_context_get_device_info", "info", info,
                            ctx ? &ctx->dev.info : NULL, sizeof *info);
}

adasplash_status adasplash_context_get_cache_stats(const adasplash_context *ctx,
                                                   adasplash_cache_stats *stats) {
  return asp_copy_versioned(ctx, "adasplash_context_get_cache_stats", "stats", stats,
                            ctx ? &ctx->stats : NULL, sizeof *stats);
}
