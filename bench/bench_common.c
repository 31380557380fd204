/*
 * bench_common.c - the shared parts of adasplash-bench's modes (see bench.h): names, device
 * buffers, dtype conversion, output checks, directories and the common JSON header.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

const char *const bench_mode_names[MODE_COUNT] = {"attention-fwd", "attention-fwd-bwd",
                                                  "entmax-rows", "decode", "prepare"};
const char *const bench_algo_names[3] = {"entmax", "softmax", "dense"};
const adasplash_attention_algorithm bench_algo_enum[3] = {
    ADASPLASH_ATTN_ENTMAX, ADASPLASH_ATTN_SOFTMAX_FLASH, ADASPLASH_ATTN_ENTMAX_DENSE};
const char *const bench_dtype_names[3] = {"f32", "f16", "bf16"};
const char *const bench_kind_names[2] = {"gaussian", "peaked"};
const char *const bench_outcome_names[3] = {"ok", "skipped", "error"};

cl_mem bench_buffer(bench_env *env, size_t bytes, const void *host, char *note, size_t note_size) {
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

void bench_release(cl_mem *m) {
  if (*m) clReleaseMemObject(*m);
  *m = NULL;
}

void bench_progress(bench_env *env, const char *fmt, ...) {
  if (!env->progress) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%d/%d] ", env->step, env->steps);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Converts n floats to dtype into a new malloc'ed buffer (NULL on failure). */
void *bench_to_dtype(const float *src, size_t n, adasplash_dtype dtype) {
  void *dst = malloc(n * adasplash_dtype_size(dtype));
  if (!dst) return NULL;
  if (adasplash_convert(src, ADASPLASH_F32, dst, dtype, n) != ADASPLASH_SUCCESS) {
    free(dst);
    return NULL;
  }
  return dst;
}

/* Reads a dtype buffer of n elements and counts the non-finite values (-1 on failure). */
long bench_count_nonfinite(bench_env *env, cl_mem buf, size_t n, adasplash_dtype dtype) {
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

int bench_mkdir(const char *dir) {
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

void bench_rm_tree(const char *dir) {
  nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Opens a record with the common header fields. */
void bench_json_begin(bench_env *env, dt_json *j) {
  dt_json_line(j, env->json);
  dt_json_str(j, "format", BENCH_FORMAT);
  dt_json_str(j, "mode", bench_mode_names[env->o->mode]);
  dt_json_str(j, "date", env->date);
  dt_json_str(j, "device", env->info.device_name);
  dt_json_str(j, "device_vendor", env->info.device_vendor);
  dt_json_str(j, "device_version", env->info.device_version);
  dt_json_str(j, "platform", env->info.platform_name);
  dt_json_str(j, "platform_version", env->info.platform_version);
  dt_json_str(j, "driver", env->info.driver_version);
  dt_json_str(j, "kernel_path",
              env->info.kernel_path == ADASPLASH_PATH_NVIDIA_MMA ? "nvidia" : "portable");
  dt_json_str(j, "library", adasplash_version());
  dt_json_int(j, "warmup", env->o->warmup);
  dt_json_int(j, "repeats", env->o->repeats);
}
