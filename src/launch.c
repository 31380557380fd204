/*
 * launch.c - the launcher every operation uses (see launch.h): kernel arguments, one launch under
 * the program's lock, the event chain of a call, and the ADASPLASH_PROFILE trace of launches.
 */
#define _POSIX_C_SOURCE 200809L
#include "launch.h"

#include <stdio.h>
#include <string.h>

cl_command_queue asp_queue_or_default(const adasplash_context *ctx, cl_command_queue queue) {
  return queue ? queue : ctx->queue;
}

void asp_chain_init(asp_chain *c, const adasplash_context *ctx, cl_command_queue queue,
                    cl_uint nwait, const cl_event *wait) {
  c->ctx = ctx;
  c->queue = asp_queue_or_default(ctx, queue);
  c->nwait = nwait;
  c->wait = nwait ? wait : NULL;
  c->last = NULL;
}

/* What the next command waits for: the previous command, else the caller's wait list. */
static void asp_chain_deps(const asp_chain *c, cl_uint *n, const cl_event **list) {
  if (c->last) {
    *n = 1;
    *list = &c->last;
  } else {
    *n = c->nwait;
    *list = c->wait;
  }
}

void asp_chain_adopt(asp_chain *c, cl_event ev) {
  if (c->last) clReleaseEvent(c->last);
  c->last = ev;
}

/* $ADASPLASH_PROFILE: every kernel the library enqueues is waited for and written as a CSV line
 * (kernel, global sizes, local size, milliseconds from profiling events when the queue has
 * CL_QUEUE_PROFILING_ENABLE, else wall time around the wait) to stderr for "1" or "stderr", else
 * appended to the file the value names. For kernel development only: it serialises the queue. */
static void asp_profile_kernel(const asp_kernel *k, cl_uint dims, const size_t *global,
                               const size_t *local, cl_event ev, double t_enqueue) {
  const char *where = asp_getenv("ADASPLASH_PROFILE");
  if (!where || !ev) return;
  clWaitForEvents(1, &ev);
  double ms = 1e3 * (asp_now_seconds() - t_enqueue);
  cl_ulong start = 0, end = 0;
  if (clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL) ==
          CL_SUCCESS &&
      clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) == CL_SUCCESS &&
      end >= start)
    ms = 1e-6 * (double)(end - start);
  const int to_stderr = strcmp(where, "1") == 0 || strcmp(where, "stderr") == 0;
  FILE *f = to_stderr ? stderr : fopen(where, "a");
  if (!f) return;
  fprintf(f, "%s,%zu,%zu,%zu,%zu,%.4f\n", k->name, global[0], dims > 1 ? global[1] : 1,
          dims > 2 ? global[2] : 1, local ? local[0] : 0, ms);
  if (!to_stderr) fclose(f);
}

static adasplash_status asp_set_args(const adasplash_context *ctx, const asp_kernel *k,
                                     const asp_arg *args, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    cl_int err = clSetKernelArg(k->kernel, (cl_uint)i, args[i].size, args[i].value);
    if (err != CL_SUCCESS) {
      char what[128];
      snprintf(what, sizeof what, "clSetKernelArg(%s, %zu)", k->name, i);
      return asp_fail_cl(ctx, err, what);
    }
  }
  return ADASPLASH_SUCCESS;
}

static adasplash_status asp_chain_kernel(asp_chain *c, const asp_kernel *k, cl_uint dims,
                                         const size_t *global, const size_t *local) {
  cl_uint n;
  const cl_event *list;
  asp_chain_deps(c, &n, &list);
  cl_event ev = NULL;
  double t0 = asp_now_seconds();
  cl_int err = clEnqueueNDRangeKernel(c->queue, k->kernel, dims, NULL, global, local, n,
                                      n ? list : NULL, &ev);
  if (err != CL_SUCCESS) {
    char what[128];
    snprintf(what, sizeof what, "clEnqueueNDRangeKernel(%s)", k->name);
    return asp_fail_cl(c->ctx, err, what);
  }
  asp_profile_kernel(k, dims, global, local, ev, t0);
  asp_chain_adopt(c, ev);
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_launch(asp_chain *c, asp_program *program, const char *name,
                            const asp_arg *args, size_t nargs, cl_uint dims, const size_t *global,
                            const size_t *local) {
  const asp_kernel *k = asp_program_kernel(program, name);
  if (!k)
    return asp_fail(c->ctx, ADASPLASH_ERROR_INTERNAL, "kernel %s missing from %s", name,
                    asp_program_file(program->family));
  asp_mutex_lock(&program->lock);
  adasplash_status st = asp_set_args(c->ctx, k, args, nargs);
  if (st == ADASPLASH_SUCCESS) st = asp_chain_kernel(c, k, dims, global, local);
  asp_mutex_unlock(&program->lock);
  return st;
}

adasplash_status asp_chain_fill(asp_chain *c, cl_mem buf, const void *pattern, size_t pattern_size,
                                size_t offset, size_t size) {
  if (size == 0) return ADASPLASH_SUCCESS;
  cl_uint n;
  const cl_event *list;
  asp_chain_deps(c, &n, &list);
  cl_event ev = NULL;
  cl_int err =
      clEnqueueFillBuffer(c->queue, buf, pattern, pattern_size, offset, size, n, list, &ev);
  if (err != CL_SUCCESS) return asp_fail_cl(c->ctx, err, "clEnqueueFillBuffer");
  asp_chain_adopt(c, ev);
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_chain_barrier(asp_chain *c) {
  cl_uint n;
  const cl_event *list;
  asp_chain_deps(c, &n, &list);
  if (n == 0) return ADASPLASH_SUCCESS;
  cl_event ev;
  cl_int err = clEnqueueBarrierWithWaitList(c->queue, n, list, &ev);
  if (err != CL_SUCCESS) return asp_fail_cl(c->ctx, err, "clEnqueueBarrierWithWaitList");
  asp_chain_adopt(c, ev);
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_chain_end(asp_chain *c, adasplash_status st, cl_event *event) {
  if (st == ADASPLASH_SUCCESS && !c->last && event) {
    cl_int err = clEnqueueMarkerWithWaitList(c->queue, c->nwait, c->wait, &c->last);
    if (err != CL_SUCCESS) return asp_fail_cl(c->ctx, err, "clEnqueueMarkerWithWaitList");
  }
  if (st == ADASPLASH_SUCCESS && event)
    *event = c->last;
  else if (c->last)
    clReleaseEvent(c->last);
  c->last = NULL;
  return st;
}
