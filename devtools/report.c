/*
 * report.c - error lines and library-failure texts of the programs (see report.h).
 */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>

void dt_error(const char *prog, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void dt_lib_message(const adasplash_context *ctx, adasplash_status st, const char *what, char *out,
                    size_t size) {
  char msg[1024] = "";
  cl_int cl_err = CL_SUCCESS;
  adasplash_get_last_error(ctx, msg, sizeof msg, &cl_err);
  char code[32] = "";
  if (cl_err != CL_SUCCESS) snprintf(code, sizeof code, " (OpenCL %d)", (int)cl_err);
  snprintf(out, size, "%s%s%s: %s%s", what ? what : "", what ? ": " : "",
           adasplash_status_string(st), msg, code);
}

int dt_lib_failure(const adasplash_context *ctx, adasplash_status st, const char *what, char *out,
                   size_t size) {
  dt_lib_message(ctx, st, what, out, size);
  return -1;
}
