/*
 * validate.c - argument checks shared by the operators: buffers (type, owning context, size),
 * outputs that overlap other arguments, queues, event wait lists and overflow-safe size
 * arithmetic.
 */
#include <stdint.h>

#include "internal.h"

int asp_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

int asp_add_size(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a) return 0;
  *out = a + b;
  return 1;
}

adasplash_status asp_check_buffer(const adasplash_context *ctx, cl_mem buf, const char *name,
                                  size_t need_bytes) {
  if (!buf) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_BUFFER, "%s is NULL", name);
  cl_mem_object_type type = 0;
  cl_int err = clGetMemObjectInfo(buf, CL_MEM_TYPE, sizeof type, &type, NULL);
  if (err != CL_SUCCESS)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_BUFFER, "%s is not a valid cl_mem (%s)", name,
                    asp_cl_error_name(err));
  if (type != CL_MEM_OBJECT_BUFFER)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_BUFFER, "%s is an image, not a buffer", name);
  cl_context owner = NULL;
  clGetMemObjectInfo(buf, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
  if (owner != ctx->cl_ctx)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_BUFFER,
                    "%s belongs to another cl_context than the adasplash context's", name);
  size_t size = 0;
  clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof size, &size, NULL);
  if (size < need_bytes)
    return asp_fail(ctx, ADASPLASH_ERROR_BUFFER_TOO_SMALL,
                    "%s holds %zu bytes but shape, strides and offset need %zu", name, size,
                    need_bytes);
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_check_optional_buffer(const adasplash_context *ctx, cl_mem buf,
                                           const char *name, size_t need_bytes) {
  return buf ? asp_check_buffer(ctx, buf, name, need_bytes) : ADASPLASH_SUCCESS;
}

adasplash_status asp_check_queue(const adasplash_context *ctx, cl_command_queue queue) {
  if (!queue) return ADASPLASH_SUCCESS;
  cl_context qctx = NULL;
  cl_device_id qdev = NULL;
  cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL);
  if (err != CL_SUCCESS)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "queue is not a valid command queue (%s)", asp_cl_error_name(err));
  clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qdev, &qdev, NULL);
  if (qctx != ctx->cl_ctx || qdev != ctx->device)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "queue belongs to another cl_context or device than the adasplash context's");
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_check_wait_list(const adasplash_context *ctx, cl_uint n,
                                     const cl_event *list) {
  if ((n == 0) != (list == NULL))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "num_events_in_wait_list=%u does not match event_wait_list %s", (unsigned)n,
                    list ? "(non-NULL)" : "(NULL)");
  for (cl_uint i = 0; i < n; ++i)
    if (!list[i])
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "event_wait_list[%u] is NULL",
                      (unsigned)i);
  return ADASPLASH_SUCCESS;
}

/* The parent of a sub-buffer and the region's offset in it (a buffer is its own root). */
static cl_mem asp_root_buffer(cl_mem buf, size_t *offset) {
  cl_mem parent = NULL;
  size_t off = 0;
  *offset = 0;
  if (clGetMemObjectInfo(buf, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL) !=
          CL_SUCCESS ||
      !parent)
    return buf;
  clGetMemObjectInfo(buf, CL_MEM_OFFSET, sizeof off, &off, NULL);
  *offset = off;
  return parent;
}

adasplash_status asp_check_overlaps(const adasplash_context *ctx, const char *fn,
                                    const asp_region *regions, size_t count) {
  /* Each region's parent buffer and absolute bytes, resolved once (calls enqueue on this path). */
  enum { ASP_MAX_REGIONS = 16 };
  cl_mem root[ASP_MAX_REGIONS];
  size_t lo[ASP_MAX_REGIONS], hi[ASP_MAX_REGIONS];
  if (count > ASP_MAX_REGIONS)
    return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "%s: %zu regions to check, at most %d", fn,
                    count, (int)ASP_MAX_REGIONS);
  for (size_t i = 0; i < count; ++i) {
    const asp_region *a = &regions[i];
    size_t off = 0;
    root[i] = a->buf && a->begin < a->end ? asp_root_buffer(a->buf, &off) : NULL;
    lo[i] = off + a->begin;
    hi[i] = off + a->end;
  }
  for (size_t i = 0; i < count; ++i) {
    if (!root[i]) continue;
    const asp_region *a = &regions[i];
    for (size_t j = i + 1; j < count; ++j) {
      const asp_region *b = &regions[j];
      if (root[j] != root[i] || !(a->written || b->written)) continue;
      const int conflict = (a->span || b->span) ? (lo[i] < hi[j] && lo[j] < hi[i]) : lo[i] == lo[j];
      if (conflict)
        return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                        "%s: %s (bytes %zu..%zu) and %s (bytes %zu..%zu) overlap in one buffer; "
                        "an argument the call writes may not share bytes with another (in-place "
                        "use is not supported)",
                        fn, a->name, lo[i], hi[i], b->name, lo[j], hi[j]);
    }
  }
  return ADASPLASH_SUCCESS;
}
