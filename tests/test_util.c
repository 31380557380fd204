/*
 * test_util.c - helpers shared by the library tests (see test_util.h).
 */
#include "test_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

static int test_failed = 0;
static int test_passed = 0;

adasplash_context *test_context(const adasplash_context_options *options) {
  adasplash_context *ctx = NULL;
  adasplash_status st = adasplash_context_create(options, &ctx);
  if (st == ADASPLASH_ERROR_NO_DEVICE) {
    char msg[512];
    adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
    printf("SKIP: no OpenCL device: %s\n", msg);
    exit(TEST_SKIP);
  }
  if (st != ADASPLASH_SUCCESS) {
    char msg[1024];
    adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
    printf("FAIL: adasplash_context_create: %s: %s\n", adasplash_status_string(st), msg);
    exit(1);
  }
  return ctx;
}

void test_print_device(adasplash_context *ctx) {
  adasplash_device_info info;
  info.struct_size = sizeof info;
  if (adasplash_context_get_device_info(ctx, &info) == ADASPLASH_SUCCESS)
    printf("device: %s / %s (%s)\n", info.platform_name, info.device_name, info.selection_reason);
}

int test_check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!ok) {
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    ++test_failed;
  } else {
    ++test_passed;
    if (getenv("TEST_VERBOSE")) {
      printf("ok: ");
      vprintf(fmt, ap);
      printf("\n");
    }
  }
  va_end(ap);
  return ok;
}

int test_failures(void) {
  return test_failed;
}

int test_finish(const char *name) {
  printf("%s: %d checks passed, %d failed\n", name, test_passed, test_failed);
  return test_failed ? 1 : 0;
}

void test_require(adasplash_context *ctx, adasplash_status st, const char *what) {
  if (st == ADASPLASH_SUCCESS) return;
  char msg[4096];
  adasplash_get_last_error(ctx, msg, sizeof msg, NULL);
  printf("FAIL: %s: %s: %s\n", what, adasplash_status_string(st), msg);
  exit(1);
}

double test_round(double v, adasplash_dtype dtype) {
  switch (dtype) {
    case ADASPLASH_F32:
      return (double)(float)v;
    case ADASPLASH_F16:
      return ref_round_f16(v);
    case ADASPLASH_BF16:
      return ref_round_bf16((double)(float)v);
  }
  return v;
}

void test_pack(const double *src, size_t n, adasplash_dtype dtype, void *dst) {
  float *tmp = (float *)malloc((n ? n : 1) * sizeof *tmp);
  for (size_t i = 0; i < n; ++i) tmp[i] = (float)src[i];
  adasplash_convert(tmp, ADASPLASH_F32, dst, dtype, n);
  free(tmp);
}

void test_unpack(const void *src, size_t n, adasplash_dtype dtype, double *dst) {
  float *tmp = (float *)malloc((n ? n : 1) * sizeof *tmp);
  adasplash_convert(src, dtype, tmp, ADASPLASH_F32, n);
  for (size_t i = 0; i < n; ++i) dst[i] = tmp[i];
  free(tmp);
}

cl_mem test_buffer(adasplash_context *ctx, const void *data, size_t bytes) {
  cl_context c;
  cl_command_queue q;
  adasplash_context_get_cl(ctx, &c, NULL, &q);
  cl_int err;
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE | (data ? CL_MEM_COPY_HOST_PTR : 0),
                            bytes ? bytes : 4, (void *)data, &err);
  if (err != CL_SUCCESS) {
    printf("FAIL: clCreateBuffer(%zu) = %d\n", bytes, (int)err);
    exit(1);
  }
  if (!data) {
    unsigned char zero = 0;
    clEnqueueFillBuffer(q, m, &zero, 1, 0, bytes ? bytes : 4, 0, NULL, NULL);
    clFinish(q);
  }
  return m;
}

void test_read(adasplash_context *ctx, cl_mem buf, void *dst, size_t bytes) {
  cl_command_queue q;
  adasplash_context_get_cl(ctx, NULL, NULL, &q);
  cl_int err = clEnqueueReadBuffer(q, buf, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
  if (err != CL_SUCCESS) {
    printf("FAIL: clEnqueueReadBuffer = %d\n", (int)err);
    exit(1);
  }
}

const char *test_tune_with_env(char *buf, size_t size, const char *base) {
  const char *env = getenv("ADASPLASH_TUNE");
  snprintf(buf, size, "%s%s%s", base, env ? "," : "", env ? env : "");
  return buf;
}

adasplash_attention_desc test_attention_desc(adasplash_dtype dtype, int batch, int q_heads,
                                             int kv_heads, int q_len, int kv_len, int head_dim,
                                             int causal, float alpha) {
  adasplash_attention_desc d;
  adasplash_attention_desc_init(&d);
  d.dtype = dtype;
  d.batch = batch;
  d.q_heads = q_heads;
  d.kv_heads = kv_heads;
  d.q_len = q_len;
  d.kv_len = kv_len;
  d.head_dim = head_dim;
  d.causal = causal;
  d.alpha = alpha;
  return d;
}

void test_pv_magnitudes(const double *p, const double *v, int batch, int q_heads, int kv_heads,
                        int q_len, int kv_len, int head_dim, double *mag, size_t *nnz) {
  const size_t rows = (size_t)batch * q_heads * q_len, D = (size_t)head_dim;
  const int G = q_heads / kv_heads;
  for (size_t r = 0; r < rows; ++r) {
    const size_t b = r / ((size_t)q_heads * q_len), h = (r / q_len) % q_heads;
    const double *pr = p + r * (size_t)kv_len;
    const double *vh = v + (b * kv_heads + h / G) * (size_t)kv_len * D;
    size_t n = 0;
    for (int j = 0; j < kv_len; ++j) n += pr[j] > 0;
    nnz[r] = n;
    for (size_t d = 0; d < D; ++d) {
      double m = 0;
      for (int j = 0; j < kv_len; ++j)
        if (pr[j] > 0) m += pr[j] * fabs(vh[(size_t)j * D + d]);
      mag[r * D + d] = m;
    }
  }
}
