/*
 * timing.h - the clock and the timing loop of the programs. A unit of work (one or two library
 * calls) is enqueued after a marker on a queue with CL_QUEUE_PROFILING_ENABLE; its time is
 * END(last call's event) - END(marker), so every kernel of the calls and the gaps between them
 * count, and END(first call's event) - END(marker) times the first call alone. When the device
 * reports no timestamps, host wall clock around the waits stands in (reported).
 */
#ifndef ADASPLASH_DEVTOOLS_TIMING_H
#define ADASPLASH_DEVTOOLS_TIMING_H

#include <stddef.h>

#include "adasplash.h"

/* Seconds from an arbitrary origin, monotonic. */
double dt_now(void);

typedef struct dt_stats {
  int count;
  double min, median, mean, stddev; /* NaN when count is 0; stddev over count - 1 */
} dt_stats;

/* Statistics of v[0..n) (v is sorted in place). */
void dt_stats_of(double *v, int n, dt_stats *s);

/* Enqueues one unit of work: ev[0] gets the event of the first library call, ev[1] that of the
 * second one (or stays NULL for a single call). */
typedef adasplash_status (*dt_unit_fn)(void *arg, cl_event ev[2]);

typedef struct dt_timing {
  dt_stats total; /* the whole unit, ms */
  dt_stats first; /* the first call alone, ms */
  int wall_clock; /* 1 when the device gave no timestamps */
} dt_timing;

/* Runs fn warmup times untimed (each finished before the next), then repeats times timed, on
 * queue. Returns ADASPLASH_SUCCESS, fn's failing status (note left as it was), or
 * ADASPLASH_ERROR_OPENCL / _OUT_OF_HOST_MEMORY with the reason in note. */
adasplash_status dt_time(cl_command_queue queue, int warmup, int repeats, dt_unit_fn fn, void *arg,
                         dt_timing *out, char *note, size_t note_size);

#endif /* ADASPLASH_DEVTOOLS_TIMING_H */
