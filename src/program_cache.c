/*
 * program_cache.c - compiled program variants: an in-memory cache per context (thread-safe insert,
 * losers discard), backed by the on-disk binary cache (disk_cache.c) keyed by a SHA-256 of
 * everything that determines the binary, the policy that decides where (and whether) a context
 * caches binaries on disk, and the build-from-source fallback with its log.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk_cache.h"
#include "internal.h"
#include "sha256.h"

/* Bump when the meaning of cached binaries changes without the source changing. */
#define ASP_CACHE_FORMAT "adasplash-cl program cache v1"

void asp_program_cache_open(adasplash_context *ctx, const char *cache_dir, char *tune_dir,
                            size_t tune_dir_size) {
  /* An explicit directory (option or $ADASPLASH_CACHE_DIR) is always used; the default location
   * only when the build enables it and the driver does not cache by itself. */
  const int explicit_dir = cache_dir != NULL || getenv("ADASPLASH_CACHE_DIR") != NULL;
  ctx->disk_cache = asp_disk_cache_dir(cache_dir, ctx->cache_dir, sizeof ctx->cache_dir);
  /* The tuned file lives in the directory even where binaries are not cached there. */
  asp_strlcpy(tune_dir, ctx->disk_cache ? ctx->cache_dir : "", tune_dir_size);
  const char *note = NULL;
  if (ctx->disk_cache && !explicit_dir && !ADASPLASH_DISK_CACHE_DEFAULT)
    note = "off: built with ADASPLASH_DISK_CACHE=OFF";
  else if (ctx->disk_cache && !explicit_dir && ctx->dev.is_pocl)
    note = "off: PoCL caches compiled kernels itself (set ADASPLASH_CACHE_DIR to cache too)";
  else if (!ctx->disk_cache)
    note = "off: disabled by \"off\" or no usable directory";
  if (note) {
    ctx->disk_cache = 0;
    ctx->cache_dir[0] = '\0';
    asp_strlcpy(ctx->stats.cache_note, note, sizeof ctx->stats.cache_note);
  }
}

static void asp_program_free(asp_program *p) {
  if (!p) return;
  for (size_t i = 0; i < p->kernel_count; ++i)
    if (p->kernels[i].kernel) clReleaseKernel(p->kernels[i].kernel);
  free(p->kernels);
  if (p->program) clReleaseProgram(p->program);
  free(p->options);
  asp_mutex_destroy(&p->lock);
  free(p);
}

void asp_program_release_all(adasplash_context *ctx) {
  asp_program *p = ctx->programs;
  while (p) {
    asp_program *next = p->next;
    asp_program_free(p);
    p = next;
  }
  ctx->programs = NULL;
}

static asp_program *asp_find_locked(adasplash_context *ctx, asp_program_family family,
                                    const char *options) {
  for (asp_program *p = ctx->programs; p; p = p->next)
    if (p->family == family && strcmp(p->options, options) == 0) return p;
  return NULL;
}

/* Full build options: the portable language level, IEEE semantics (no fast/finite math: the tau
 * search relies on NaN compares and infinities), then the variant's defines. */
static void asp_build_options(const char *defines, char *out, size_t size) {
  /* $ADASPLASH_BUILD_OPTIONS (kernel development, e.g. -cl-nv-verbose) is appended; it is part
   * of the options and so of the cache key. */
  const char *extra = asp_getenv("ADASPLASH_BUILD_OPTIONS");
  snprintf(out, size, "-cl-std=CL1.2 %s%s%s", defines ? defines : "", extra ? " " : "",
           extra ? extra : "");
}

/* With $ADASPLASH_BUILD_LOG_DIR set, every build from source leaves its compiler log there
 * (register and spill reports on NVIDIA with -cl-nv-verbose). Best effort, never an error. */
static void asp_save_build_log(const adasplash_context *ctx, cl_program program,
                               asp_program_family family, const uint8_t key[32]) {
  const char *dir = asp_getenv("ADASPLASH_BUILD_LOG_DIR");
  if (!dir) return;
  size_t len = 0;
  if (clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) !=
          CL_SUCCESS ||
      len == 0)
    return;
  char *log = (char *)malloc(len + 1);
  if (!log) return;
  if (clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) ==
      CL_SUCCESS) {
    log[len] = '\0';
    char hex[17], path[1024];
    asp_hex(key, 8, hex);
    const char *file = asp_program_file(family);
    snprintf(path, sizeof path, "%s/%.*s-%s.log", dir, (int)(strlen(file) - 3), file, hex);
    FILE *f = fopen(path, "wb");
    if (f) {
      fwrite(log, 1, strlen(log), f);
      fclose(f);
    }
  }
  free(log);
}

const asp_kernel *asp_program_kernel(const asp_program *program, const char *name) {
  for (size_t i = 0; i < program->kernel_count; ++i)
    if (strcmp(program->kernels[i].name, name) == 0) return &program->kernels[i];
  return NULL;
}

static void asp_cache_key(const adasplash_context *ctx, const char *source, size_t source_len,
                          const char *options, uint8_t key[32]) {
  const adasplash_device_info *i = &ctx->dev.info;
  asp_sha256_ctx h;
  asp_sha256_init(&h);
  const char *parts[] = {ASP_CACHE_FORMAT,  ADASPLASH_VERSION_STRING, options,
                         i->platform_name,  i->platform_version,      i->device_name,
                         i->device_version, i->driver_version};
  for (size_t p = 0; p < sizeof parts / sizeof parts[0]; ++p)
    asp_sha256_update(&h, parts[p], strlen(parts[p]) + 1);
  asp_sha256_update(&h, &i->vendor_id, sizeof i->vendor_id);
  asp_sha256_update(&h, source, source_len);
  asp_sha256_final(&h, key);
}

static adasplash_status asp_build_failure(const adasplash_context *ctx, cl_program program,
                                          cl_int err, const char *file, const char *options) {
  char log[3000] = "";
  size_t len = 0;
  if (program &&
      clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) ==
          CL_SUCCESS &&
      len > 0) {
    char *full = (char *)malloc(len + 1);
    if (full && clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, len, full,
                                      NULL) == CL_SUCCESS) {
      full[len] = '\0';
      asp_strlcpy(log, full, sizeof log);
    }
    free(full);
  }
  /* The OpenCL code stays retrievable next to the message. */
  return asp_fail_with_cl(ctx, ADASPLASH_ERROR_BUILD_FAILED, err,
                          "building %s with \"%s\" failed (%s): %s", file, options,
                          asp_cl_error_name(err), log[0] ? log : "(no build log)");
}

static adasplash_status asp_create_kernels(const adasplash_context *ctx, asp_program *p) {
  cl_uint n = 0;
  cl_int err = clCreateKernelsInProgram(p->program, 0, NULL, &n);
  if (err != CL_SUCCESS) return asp_fail_cl(ctx, err, "clCreateKernelsInProgram");
  cl_kernel *ks = (cl_kernel *)calloc(n ? n : 1, sizeof *ks);
  p->kernels = (asp_kernel *)calloc(n ? n : 1, sizeof *p->kernels);
  if (!ks || !p->kernels) {
    free(ks);
    return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating kernel table");
  }
  err = clCreateKernelsInProgram(p->program, n, ks, NULL);
  if (err != CL_SUCCESS) {
    free(ks);
    return asp_fail_cl(ctx, err, "clCreateKernelsInProgram");
  }
  for (cl_uint i = 0; i < n; ++i) {
    asp_kernel *k = &p->kernels[i];
    k->kernel = ks[i];
    clGetKernelInfo(ks[i], CL_KERNEL_FUNCTION_NAME, sizeof k->name - 1, k->name, NULL);
    clGetKernelWorkGroupInfo(ks[i], ctx->device, CL_KERNEL_WORK_GROUP_SIZE,
                             sizeof k->max_work_group_size, &k->max_work_group_size, NULL);
    clGetKernelWorkGroupInfo(ks[i], ctx->device, CL_KERNEL_LOCAL_MEM_SIZE, sizeof k->local_mem_size,
                             &k->local_mem_size, NULL);
  }
  p->kernel_count = n;
  free(ks);
  return ADASPLASH_SUCCESS;
}

/* Builds from a cached binary; returns 0 on success, -1 if the binary is unusable. */
static int asp_build_from_binary(const adasplash_context *ctx, asp_program *p,
                                 const unsigned char *bin, size_t size, const char *options) {
  cl_int status = CL_SUCCESS, err;
  p->program = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->device, &size, &bin, &status, &err);
  if (err != CL_SUCCESS || status != CL_SUCCESS) {
    if (p->program) clReleaseProgram(p->program);
    p->program = NULL;
    return -1;
  }
  if (clBuildProgram(p->program, 1, &ctx->device, options, NULL, NULL) != CL_SUCCESS) {
    clReleaseProgram(p->program);
    p->program = NULL;
    return -1;
  }
  if (asp_create_kernels(ctx, p) != ADASPLASH_SUCCESS) {
    for (size_t i = 0; i < p->kernel_count; ++i) clReleaseKernel(p->kernels[i].kernel);
    free(p->kernels);
    p->kernels = NULL;
    p->kernel_count = 0;
    clReleaseProgram(p->program);
    p->program = NULL;
    return -1;
  }
  return 0;
}

static void asp_count(adasplash_context *ctx, unsigned long *counter, double *seconds, double dt) {
  asp_mutex_lock(&ctx->lock);
  if (counter) ++*counter;
  if (seconds) *seconds += dt;
  asp_mutex_unlock(&ctx->lock);
}

/* Saves the program's binary to the disk cache (after kernel creation: some drivers compile
 * lazily). Failures only mean no cache entry. */
static void asp_store_binary(adasplash_context *ctx, asp_program *p, const uint8_t key[32]) {
  /* The directory first: some drivers (PoCL) spend seconds serialising a binary. */
  if (asp_disk_cache_prepare(ctx->cache_dir) != 0) return;
  double t0 = asp_now_seconds();
  size_t size = 0;
  if (clGetProgramInfo(p->program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) !=
          CL_SUCCESS ||
      size == 0)
    return;
  unsigned char *bin = (unsigned char *)malloc(size);
  if (!bin) return;
  unsigned char *bins[1] = {bin};
  if (clGetProgramInfo(p->program, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS &&
      asp_disk_cache_store(ctx->cache_dir, key, bin, size) == 0)
    asp_count(ctx, &ctx->stats.disk_writes, &ctx->stats.store_seconds, asp_now_seconds() - t0);
  free(bin);
}

adasplash_status asp_program_get(adasplash_context *ctx, asp_program_family family,
                                 const char *defines, asp_program **out) {
  char options[2048];
  asp_build_options(defines, options, sizeof options);
  asp_mutex_lock(&ctx->lock);
  asp_program *existing = asp_find_locked(ctx, family, options);
  if (existing) ++ctx->stats.memory_hits;
  asp_mutex_unlock(&ctx->lock);
  if (existing) {
    *out = existing;
    return ADASPLASH_SUCCESS;
  }

  char *source = NULL;
  size_t source_len = 0;
  adasplash_status st = asp_kernel_source(ctx, family, &source, &source_len);
  if (st != ADASPLASH_SUCCESS) return st;
  asp_program *p = (asp_program *)calloc(1, sizeof *p);
  if (!p || asp_mutex_init(&p->lock) != 0) {
    free(p);
    free(source);
    return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating a program entry");
  }
  p->family = family;
  p->options = (char *)malloc(strlen(options) + 1);
  if (!p->options) {
    free(source);
    asp_mutex_destroy(&p->lock);
    free(p);
    return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating program options");
  }
  strcpy(p->options, options);

  uint8_t key[32];
  asp_cache_key(ctx, source, source_len, options, key);
  int loaded = 0;
  if (ctx->disk_cache) {
    unsigned char *bin = NULL;
    size_t size = 0;
    double t0 = asp_now_seconds();
    asp_disk_result r = asp_disk_cache_load(ctx->cache_dir, key, &bin, &size);
    if (r == ASP_DISK_HIT) {
      if (asp_build_from_binary(ctx, p, bin, size, options) == 0) {
        loaded = 1;
        asp_count(ctx, &ctx->stats.disk_hits, &ctx->stats.load_seconds, asp_now_seconds() - t0);
      } else {
        /* A binary the driver refuses (other driver build, damaged): drop it and rebuild. */
        asp_disk_cache_remove(ctx->cache_dir, key);
        asp_count(ctx, &ctx->stats.disk_rejected, NULL, 0);
      }
    } else if (r == ASP_DISK_REJECTED) {
      asp_count(ctx, &ctx->stats.disk_rejected, NULL, 0);
    } else {
      asp_count(ctx, &ctx->stats.disk_misses, NULL, 0);
    }
    free(bin);
  }
  if (!loaded) {
    double t0 = asp_now_seconds();
    cl_int err;
    const char *src = source;
    p->program = clCreateProgramWithSource(ctx->cl_ctx, 1, &src, &source_len, &err);
    if (err != CL_SUCCESS) {
      free(source);
      asp_program_free(p);
      return asp_fail_cl(ctx, err, "clCreateProgramWithSource");
    }
    err = clBuildProgram(p->program, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
      st = asp_build_failure(ctx, p->program, err, asp_program_file(family), options);
      free(source);
      asp_program_free(p);
      return st;
    }
    st = asp_create_kernels(ctx, p);
    if (st != ADASPLASH_SUCCESS) {
      free(source);
      asp_program_free(p);
      return st;
    }
    asp_count(ctx, &ctx->stats.builds, &ctx->stats.build_seconds, asp_now_seconds() - t0);
    asp_save_build_log(ctx, p->program, family, key);
    if (ctx->disk_cache) asp_store_binary(ctx, p, key);
  }
  free(source);

  asp_mutex_lock(&ctx->lock);
  asp_program *raced = asp_find_locked(ctx, family, options);
  if (raced) {
    asp_mutex_unlock(&ctx->lock);
    asp_program_free(p); /* another thread inserted the same variant first */
    *out = raced;
    return ADASPLASH_SUCCESS;
  }
  p->next = ctx->programs;
  ctx->programs = p;
  asp_mutex_unlock(&ctx->lock);
  *out = p;
  return ADASPLASH_SUCCESS;
}

/* ---- the disk cache directory through the public API ------------------------------------------
 */

adasplash_status adasplash_context_cache_usage(const adasplash_context *ctx, size_t *entries,
                                               unsigned long long *bytes) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_cache_usage: ctx is NULL");
  size_t n = 0;
  unsigned long long b = 0;
  if (ctx->disk_cache && asp_disk_cache_usage(ctx->cache_dir, &n, &b) != 0)
    return asp_fail(ctx, ADASPLASH_ERROR_CACHE_IO,
                    "adasplash_context_cache_usage: the cache directory %s cannot be read",
                    ctx->cache_dir);
  if (entries) *entries = n;
  if (bytes) *bytes = b;
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_context_cache_clear(const adasplash_context *ctx, size_t *removed) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_context_cache_clear: ctx is NULL");
  size_t n = 0;
  int rc = ctx->disk_cache ? asp_disk_cache_clear(ctx->cache_dir, &n) : 0;
  if (removed) *removed = n;
  if (rc != 0)
    return asp_fail(ctx, ADASPLASH_ERROR_CACHE_IO,
                    "adasplash_context_cache_clear: clearing %s failed after removing %zu files",
                    ctx->cache_dir, n);
  return ADASPLASH_SUCCESS;
}
