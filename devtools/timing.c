/*
 * timing.c - the clock, statistics and the timing loop of the programs (see timing.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "timing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double dt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int dt_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void dt_stats_of(double *v, int n, dt_stats *s) {
  memset(s, 0, sizeof *s);
  s->count = n;
  if (n <= 0) {
    s->min = s->median = s->mean = s->stddev = NAN;
    return;
  }
  qsort(v, (size_t)n, sizeof *v, dt_cmp_double);
  s->min = v[0];
  s->median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += v[i];
  s->mean = sum / n;
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += (v[i] - s->mean) * (v[i] - s->mean);
  s->stddev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

static void dt_release_events(cl_event ev[2]) {
  for (int i = 0; i < 2; ++i)
    if (ev[i]) clReleaseEvent(ev[i]);
  ev[0] = ev[1] = NULL;
}

static int dt_event_end(cl_event e, cl_ulong *t) {
  return clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof *t, t, NULL) == CL_SUCCESS;
}

/* One timed repeat: total and first in ms (profiling, else wall clock: *wall_clock set). */
static adasplash_status dt_time_once(cl_command_queue queue, dt_unit_fn fn, void *arg,
                                     double *total, double *first, int *wall_clock, char *note,
                                     size_t note_size) {
  cl_event ev[2] = {NULL, NULL}, marker = NULL;
  clFinish(queue);
  const double w0 = dt_now();
  cl_int err = clEnqueueMarkerWithWaitList(queue, 0, NULL, &marker);
  if (err != CL_SUCCESS) {
    snprintf(note, note_size, "clEnqueueMarkerWithWaitList failed: %d", (int)err);
    return ADASPLASH_ERROR_OPENCL;
  }
  adasplash_status st = fn(arg, ev);
  if (st != ADASPLASH_SUCCESS) {
    clFinish(queue);
    clReleaseEvent(marker);
    dt_release_events(ev);
    return st;
  }
  cl_event last = ev[1] ? ev[1] : ev[0];
  err = clWaitForEvents(1, &ev[0]);
  const double w1 = dt_now();
  if (err == CL_SUCCESS) err = clWaitForEvents(1, &last);
  const double w2 = dt_now();
  cl_ulong t_mark = 0, t_first = 0, t_last = 0;
  if (err != CL_SUCCESS) {
    snprintf(note, note_size, "clWaitForEvents failed: %d", (int)err);
    st = ADASPLASH_ERROR_OPENCL;
  } else if (!*wall_clock && dt_event_end(marker, &t_mark) && dt_event_end(ev[0], &t_first) &&
             dt_event_end(last, &t_last) && t_first >= t_mark && t_last >= t_mark) {
    *total = (double)(t_last - t_mark) * 1e-6;
    *first = (double)(t_first - t_mark) * 1e-6;
  } else {
    *wall_clock = 1;
    *total = (w2 - w0) * 1e3;
    *first = (w1 - w0) * 1e3;
  }
  clReleaseEvent(marker);
  dt_release_events(ev);
  return st;
}

adasplash_status dt_time(cl_command_queue queue, int warmup, int repeats, dt_unit_fn fn, void *arg,
                         dt_timing *out, char *note, size_t note_size) {
  memset(out, 0, sizeof *out);
  double *tot = (double *)calloc((size_t)repeats, sizeof(double));
  double *first = (double *)calloc((size_t)repeats, sizeof(double));
  if (!tot || !first) {
    free(tot);
    free(first);
    snprintf(note, note_size, "out of host memory");
    return ADASPLASH_ERROR_OUT_OF_HOST_MEMORY;
  }
  adasplash_status st = ADASPLASH_SUCCESS;
  for (int i = 0; i < warmup && st == ADASPLASH_SUCCESS; ++i) {
    cl_event ev[2] = {NULL, NULL};
    st = fn(arg, ev);
    if (st == ADASPLASH_SUCCESS) clFinish(queue);
    dt_release_events(ev);
  }
  for (int i = 0; i < repeats && st == ADASPLASH_SUCCESS; ++i)
    st = dt_time_once(queue, fn, arg, &tot[i], &first[i], &out->wall_clock, note, note_size);
  if (st == ADASPLASH_SUCCESS) {
    dt_stats_of(tot, repeats, &out->total);
    dt_stats_of(first, repeats, &out->first);
  }
  free(tot);
  free(first);
  return st;
}
