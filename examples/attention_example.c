/*
 * attention_example.c - a complete use of the public API on the default device: context, device
 * buffers, prepare, entmax attention forward (with a saved buffer) and backward, statistics, and
 * the same problem through the softmax flash baseline for comparison. Error handling as a real
 * caller would do it. Build: see examples/CMakeLists.txt; run: ./attention_example [N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "adasplash.h"

#define CHECK(call)                                                                        \
  do {                                                                                     \
    adasplash_status st_ = (call);                                                         \
    if (st_ != ADASPLASH_SUCCESS) {                                                        \
      char msg_[1024];                                                                     \
      adasplash_get_last_error(ctx, msg_, sizeof msg_, NULL);                              \
      fprintf(stderr, "%s failed: %s\n  %s\n", #call, adasplash_status_string(st_), msg_); \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

/* Inputs with locality (queries close to recent keys) so that entmax is sparse. */
static void make_inputs(float *q, float *k, float *v, int n, int d, unsigned seed) {
  srand(seed);
  float *u = (float *)malloc((size_t)d * sizeof(float));
  for (int j = 0; j < d; ++j) u[j] = (float)rand() / RAND_MAX - 0.5f;
  for (int t = 0; t < n; ++t) {
    float norm = 0;
    for (int j = 0; j < d; ++j) {
      u[j] += 0.1f * ((float)rand() / RAND_MAX - 0.5f);
      norm += u[j] * u[j];
    }
    norm = sqrtf((float)d / norm);
    for (int j = 0; j < d; ++j) {
      float noise = (float)rand() / RAND_MAX - 0.5f;
      q[(size_t)t * d + j] = 2.0f * u[j] * norm + noise;
      k[(size_t)t * d + j] = u[j] * norm - noise;
      v[(size_t)t * d + j] = (float)rand() / RAND_MAX - 0.5f;
    }
  }
  free(u);
}

static double seconds(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 1024, d = 64, heads = 4;
  adasplash_context *ctx = NULL;
  CHECK(adasplash_context_create(NULL, &ctx)); /* ADASPLASH_DEVICE picks another device */
  adasplash_device_info info;
  info.struct_size = sizeof info;
  CHECK(adasplash_context_get_device_info(ctx, &info));
  printf("device: %s (%s), chosen by %s\n", info.device_name, info.platform_name,
         info.selection_reason);

  adasplash_attention_desc desc;
  adasplash_attention_desc_init(&desc);
  desc.dtype = ADASPLASH_F32;
  desc.batch = 1;
  desc.q_heads = desc.kv_heads = heads;
  desc.q_len = desc.kv_len = n;
  desc.head_dim = d;
  desc.causal = 1;
  desc.alpha = 1.5f;
  CHECK(adasplash_attention_prepare(ctx, &desc)); /* compiles or loads from the disk cache */

  const size_t elems = (size_t)heads * n * d, bytes = elems * sizeof(float);
  float *q = (float *)malloc(bytes), *k = (float *)malloc(bytes), *v = (float *)malloc(bytes);
  float *out = (float *)malloc(bytes), *dout = (float *)malloc(bytes);
  for (int h = 0; h < heads; ++h)
    make_inputs(q + (size_t)h * n * d, k + (size_t)h * n * d, v + (size_t)h * n * d, n, d, 1u + h);
  for (size_t i = 0; i < elems; ++i) dout[i] = (float)rand() / RAND_MAX - 0.5f;

  cl_context cl;
  cl_command_queue queue;
  CHECK(adasplash_context_get_cl(ctx, &cl, NULL, &queue));
  cl_int err;
  cl_mem bq = clCreateBuffer(cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, q, &err);
  cl_mem bk = clCreateBuffer(cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, k, &err);
  cl_mem bv = clCreateBuffer(cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, v, &err);
  cl_mem bdo = clCreateBuffer(cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, dout, &err);
  cl_mem bo = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
  cl_mem bdq = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
  cl_mem bdk = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
  cl_mem bdv = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
  size_t saved_bytes = 0;
  CHECK(adasplash_attention_saved_size(ctx, &desc, &saved_bytes));
  cl_mem saved = clCreateBuffer(cl, CL_MEM_READ_WRITE, saved_bytes, NULL, &err);
  if (err != CL_SUCCESS) {
    fprintf(stderr, "clCreateBuffer failed (%d)\n", (int)err);
    return 1;
  }

  /* Forward then backward, chained through events, one wait at the end. */
  cl_event fwd = NULL, bwd = NULL;
  double t0 = seconds();
  CHECK(adasplash_attention_forward(ctx, &desc, NULL, bq, bk, bv, bo, saved, NULL, 0, NULL, &fwd));
  CHECK(adasplash_attention_backward(ctx, &desc, NULL, bq, bk, bv, bo, bdo, saved, bdq, bdk, bdv,
                                     NULL, NULL, 1, &fwd, &bwd));
  clWaitForEvents(1, &bwd);
  double t_entmax = seconds() - t0;
  clReleaseEvent(fwd);
  clReleaseEvent(bwd);

  adasplash_attention_stats stats;
  stats.struct_size = sizeof stats;
  CHECK(adasplash_attention_stats_read(ctx, &desc, NULL, saved, &stats));
  clEnqueueReadBuffer(queue, bo, CL_TRUE, 0, bytes, out, 0, NULL, NULL);
  printf("entmax-1.5 attention, %d heads x %d tokens x %d dims, causal:\n", heads, n, d);
  printf(
      "  block sparsity %.3f (%lu of %lu tiles of %dx%d skipped), tau sweeps %.2f mean / %d "
      "max, |sum p - 1| <= %.2g\n",
      stats.block_sparsity, stats.visible_tiles - stats.active_tiles, stats.visible_tiles,
      stats.tile_m, stats.tile_n, stats.mean_sweeps, stats.max_sweeps, stats.max_residual);
  printf("  out[0][0][0..3] = %.5f %.5f %.5f %.5f\n", out[0], out[1], out[2], out[3]);

  /* The same problem through the softmax flash baseline (same device, same skeleton). */
  adasplash_attention_desc sdesc = desc;
  sdesc.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  CHECK(adasplash_attention_prepare(ctx, &sdesc));
  size_t lse_bytes = 0;
  CHECK(adasplash_attention_saved_size(ctx, &sdesc, &lse_bytes));
  cl_mem lse = clCreateBuffer(cl, CL_MEM_READ_WRITE, lse_bytes, NULL, &err);
  t0 = seconds();
  CHECK(adasplash_attention_forward(ctx, &sdesc, NULL, bq, bk, bv, bo, lse, NULL, 0, NULL, &fwd));
  CHECK(adasplash_attention_backward(ctx, &sdesc, NULL, bq, bk, bv, bo, bdo, lse, bdq, bdk, bdv,
                                     NULL, NULL, 1, &fwd, &bwd));
  clWaitForEvents(1, &bwd);
  double t_softmax = seconds() - t0;
  clReleaseEvent(fwd);
  clReleaseEvent(bwd);
  printf(
      "forward+backward wall time (first timed call, includes launch overheads): entmax %.1f ms, "
      "softmax flash %.1f ms (ratio %.2f); use adasplash-bench for measurements\n",
      1e3 * t_entmax, 1e3 * t_softmax, t_entmax / t_softmax);

  cl_mem all[] = {bq, bk, bv, bdo, bo, bdq, bdk, bdv, saved, lse};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) clReleaseMemObject(all[i]);
  free(q), free(k), free(v), free(out), free(dout);
  adasplash_context_release(ctx);
  return 0;
}
