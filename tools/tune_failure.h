/*
 * tune_failure.h - how the tuner's verification and timing record a failed library call: the
 * step, the status and the library's message, into the candidate's reason.
 */
#ifndef ADASPLASH_TUNE_FAILURE_H
#define ADASPLASH_TUNE_FAILURE_H

#include <stdio.h>

#include "adasplash.h"

/* Writes "what: STATUS: message" into why; returns -1. */
static inline int tune_lib_failure(const adasplash_context *ctx, adasplash_status st,
                                   const char *what, char *why, size_t why_size) {
  char msg[768] = "";
  adasplash_get_last_error(ctx, msg, sizeof msg, NULL);
  snprintf(why, why_size, "%s: %s: %s", what, adasplash_status_string(st), msg);
  return -1;
}

#endif /* ADASPLASH_TUNE_FAILURE_H */
