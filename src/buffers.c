/*
 * buffers.c - device buffers the library makes for itself: scratch buffers, sub-buffers of the
 * caller's saved/workspace buffers (aligned for the device), and the temporary copies of host
 * arrays the *_host() conveniences upload and read back.
 */
#include "internal.h"

adasplash_status asp_create_buffer(const adasplash_context *ctx, size_t bytes, cl_mem *out) {
  cl_int err;
  *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
  if (err != CL_SUCCESS) {
    *out = NULL;
    return asp_fail_cl(ctx, err, "clCreateBuffer(internal scratch)");
  }
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_sub_buffer(const adasplash_context *ctx, cl_mem parent, size_t offset,
                                size_t size, cl_mem *out) {
  cl_buffer_region region = {offset, size ? size : 4};
  cl_int err;
  *out = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
  if (err != CL_SUCCESS) {
    *out = NULL;
    return asp_fail_cl(ctx, err, "clCreateSubBuffer");
  }
  return ADASPLASH_SUCCESS;
}

size_t asp_sub_buffer_align(const adasplash_context *ctx) {
  cl_uint bits = 0;
  clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL);
  size_t a = bits >= 8 ? bits / 8 : 256;
  return a < 256 ? 256 : a;
}

size_t asp_align_up(size_t v, size_t a) {
  return (v + a - 1) / a * a;
}

adasplash_status asp_host_buffer(adasplash_context *ctx, asp_host_set *set, const void *data,
                                 size_t bytes, cl_mem *out) {
  if (set->count >= ASP_HOST_MAX_BUFFERS)
    return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "too many host copies in one call");
  cl_int err;
  cl_mem_flags flags = CL_MEM_READ_WRITE | (data ? CL_MEM_COPY_HOST_PTR : 0);
  *out = clCreateBuffer(ctx->cl_ctx, flags, bytes ? bytes : 4, (void *)data, &err);
  if (err != CL_SUCCESS) return asp_fail_cl(ctx, err, "clCreateBuffer(host copy)");
  set->mem[set->count++] = *out;
  return ADASPLASH_SUCCESS;
}

void asp_host_free(asp_host_set *set) {
  for (int i = 0; i < set->count; ++i) clReleaseMemObject(set->mem[i]);
  set->count = 0;
}

adasplash_status asp_host_get(adasplash_context *ctx, cl_mem buf, void *dst, size_t bytes) {
  cl_int err = clEnqueueReadBuffer(ctx->queue, buf, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
  return err == CL_SUCCESS ? ADASPLASH_SUCCESS : asp_fail_cl(ctx, err, "clEnqueueReadBuffer");
}
