/*
 * status.c - status names, error recording (per context and per thread) and the version string.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct asp_thread_error {
  adasplash_status status;
  cl_int cl_error;
  char message[4096];
} asp_thread_error;

static ASP_THREAD_LOCAL asp_thread_error asp_thread_last;

const char *adasplash_version(void) {
  return ADASPLASH_VERSION_STRING;
}

const char *adasplash_status_string(adasplash_status status) {
  switch (status) {
    case ADASPLASH_SUCCESS:
      return "ADASPLASH_SUCCESS: no error";
    case ADASPLASH_ERROR_INVALID_ARGUMENT:
      return "ADASPLASH_ERROR_INVALID_ARGUMENT: a required pointer is NULL or a field is invalid";
    case ADASPLASH_ERROR_INVALID_SHAPE:
      return "ADASPLASH_ERROR_INVALID_SHAPE: sizes are zero, negative, too large or inconsistent";
    case ADASPLASH_ERROR_INVALID_STRIDE:
      return "ADASPLASH_ERROR_INVALID_STRIDE: strides make rows overlap or overflow";
    case ADASPLASH_ERROR_INVALID_ALPHA:
      return "ADASPLASH_ERROR_INVALID_ALPHA: alpha must be a number in (1, 2]";
    case ADASPLASH_ERROR_INVALID_BUFFER:
      return "ADASPLASH_ERROR_INVALID_BUFFER: not a buffer of this context";
    case ADASPLASH_ERROR_BUFFER_TOO_SMALL:
      return "ADASPLASH_ERROR_BUFFER_TOO_SMALL: buffer smaller than shape, strides and offset need";
    case ADASPLASH_ERROR_INVALID_TUNING:
      return "ADASPLASH_ERROR_INVALID_TUNING: bad tuning override or tuned file";
    case ADASPLASH_ERROR_UNSUPPORTED:
      return "ADASPLASH_ERROR_UNSUPPORTED: valid request not available on this device or build";
    case ADASPLASH_ERROR_NOT_PREPARED:
      return "ADASPLASH_ERROR_NOT_PREPARED: kernels not compiled yet, call the *_prepare function";
    case ADASPLASH_ERROR_NO_DEVICE:
      return "ADASPLASH_ERROR_NO_DEVICE: no OpenCL device found or matched the selection";
    case ADASPLASH_ERROR_BUILD_FAILED:
      return "ADASPLASH_ERROR_BUILD_FAILED: kernel compilation failed";
    case ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY:
      return "ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY: device memory exhausted";
    case ADASPLASH_ERROR_OUT_OF_HOST_MEMORY:
      return "ADASPLASH_ERROR_OUT_OF_HOST_MEMORY: host memory exhausted";
    case ADASPLASH_ERROR_OPENCL:
      return "ADASPLASH_ERROR_OPENCL: an OpenCL call failed";
    case ADASPLASH_ERROR_INTERNAL:
      return "ADASPLASH_ERROR_INTERNAL: internal error";
    case ADASPLASH_ERROR_INVALID_SAVED:
      return "ADASPLASH_ERROR_INVALID_SAVED: saved buffer too small or from another shape";
    case ADASPLASH_ERROR_CACHE_IO:
      return "ADASPLASH_ERROR_CACHE_IO: the program cache directory cannot be read or changed";
  }
  return "unknown adasplash_status";
}

static void asp_record(const adasplash_context *cctx, adasplash_status status, cl_int cl_error,
                       const char *message) {
  asp_thread_last.status = status;
  asp_thread_last.cl_error = cl_error;
  asp_strlcpy(asp_thread_last.message, message, sizeof asp_thread_last.message);
  if (cctx) {
    /* The error fields are the only state a const context lets us change. */
    adasplash_context *ctx = (adasplash_context *)cctx;
    asp_mutex_lock(&ctx->lock);
    ctx->last_status = status;
    ctx->last_cl_error = cl_error;
    asp_strlcpy(ctx->last_error, message, sizeof ctx->last_error);
    asp_mutex_unlock(&ctx->lock);
  }
}

static void asp_vrecord(const adasplash_context *ctx, adasplash_status status, cl_int cl_error,
                        const char *fmt, va_list ap) {
  char message[4096];
  vsnprintf(message, sizeof message, fmt, ap);
  asp_record(ctx, status, cl_error, message);
}

adasplash_status asp_fail(const adasplash_context *ctx, adasplash_status status, const char *fmt,
                          ...) {
  va_list ap;
  va_start(ap, fmt);
  asp_vrecord(ctx, status, CL_SUCCESS, fmt, ap);
  va_end(ap);
  return status;
}

adasplash_status asp_fail_with_cl(const adasplash_context *ctx, adasplash_status status,
                                  cl_int cl_error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  asp_vrecord(ctx, status, cl_error, fmt, ap);
  va_end(ap);
  return status;
}

adasplash_status asp_fail_cl(const adasplash_context *ctx, cl_int err, const char *what) {
  adasplash_status status = ADASPLASH_ERROR_OPENCL;
  if (err == CL_OUT_OF_HOST_MEMORY) status = ADASPLASH_ERROR_OUT_OF_HOST_MEMORY;
  if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES)
    status = ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY;
  char message[512];
  snprintf(message, sizeof message, "%s failed with %s (%d)", what, asp_cl_error_name(err),
           (int)err);
  asp_record(ctx, status, err, message);
  return status;
}

adasplash_status adasplash_get_last_error(const adasplash_context *ctx, char *buf, size_t buf_size,
                                          cl_int *cl_error) {
  adasplash_status status;
  if (ctx) {
    adasplash_context *c = (adasplash_context *)ctx;
    asp_mutex_lock(&c->lock);
    status = c->last_status;
    if (cl_error) *cl_error = c->last_cl_error;
    if (buf && buf_size) asp_strlcpy(buf, c->last_error, buf_size);
    asp_mutex_unlock(&c->lock);
  } else {
    status = asp_thread_last.status;
    if (cl_error) *cl_error = asp_thread_last.cl_error;
    if (buf && buf_size) asp_strlcpy(buf, asp_thread_last.message, buf_size);
  }
  return status;
}

const char *asp_cl_error_name(cl_int err) {
  switch (err) {
    case CL_SUCCESS:
      return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND:
      return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE:
      return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE:
      return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
      return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES:
      return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY:
      return "CL_OUT_OF_HOST_MEMORY";
    case CL_PROFILING_INFO_NOT_AVAILABLE:
      return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case CL_MEM_COPY_OVERLAP:
      return "CL_MEM_COPY_OVERLAP";
    case CL_BUILD_PROGRAM_FAILURE:
      return "CL_BUILD_PROGRAM_FAILURE";
    case CL_MAP_FAILURE:
      return "CL_MAP_FAILURE";
    case CL_MISALIGNED_SUB_BUFFER_OFFSET:
      return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST:
      return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case CL_INVALID_VALUE:
      return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE_TYPE:
      return "CL_INVALID_DEVICE_TYPE";
    case CL_INVALID_PLATFORM:
      return "CL_INVALID_PLATFORM";
    case CL_INVALID_DEVICE:
      return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT:
      return "CL_INVALID_CONTEXT";
    case CL_INVALID_QUEUE_PROPERTIES:
      return "CL_INVALID_QUEUE_PROPERTIES";
    case CL_INVALID_COMMAND_QUEUE:
      return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_MEM_OBJECT:
      return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_BINARY:
      return "CL_INVALID_BINARY";
    case CL_INVALID_BUILD_OPTIONS:
      return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM:
      return "CL_INVALID_PROGRAM";
    case CL_INVALID_PROGRAM_EXECUTABLE:
      return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME:
      return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL:
      return "CL_INVALID_KERNEL";
    case CL_INVALID_ARG_INDEX:
      return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE:
      return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE:
      return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_KERNEL_ARGS:
      return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_DIMENSION:
      return "CL_INVALID_WORK_DIMENSION";
    case CL_INVALID_WORK_GROUP_SIZE:
      return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE:
      return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_OFFSET:
      return "CL_INVALID_GLOBAL_OFFSET";
    case CL_INVALID_EVENT_WAIT_LIST:
      return "CL_INVALID_EVENT_WAIT_LIST";
    case CL_INVALID_EVENT:
      return "CL_INVALID_EVENT";
    case CL_INVALID_OPERATION:
      return "CL_INVALID_OPERATION";
    case CL_INVALID_BUFFER_SIZE:
      return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE:
      return "CL_INVALID_GLOBAL_WORK_SIZE";
    default:
      return "unknown OpenCL error";
  }
}
