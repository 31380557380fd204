/*
 * report.h - how the programs report problems: an error line on stderr prefixed with the program's
 * name, and the text of a failed library call (its status and the library's last error message).
 */
#ifndef ADASPLASH_DEVTOOLS_REPORT_H
#define ADASPLASH_DEVTOOLS_REPORT_H

#include <stddef.h>

#include "adasplash.h"

/* Prints "<prog>: <message>" and a newline on stderr; stdout is flushed first so that the lines of
 * both streams keep their order. */
void dt_error(const char *prog, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* "<what>: <status>: <message>" of a failed library call into out, with " (OpenCL <code>)" when an
 * OpenCL error is behind it; ctx is the context the call was given (NULL: the calling thread's
 * last error). what may be NULL: the text then starts with the status. */
void dt_lib_message(const adasplash_context *ctx, adasplash_status st, const char *what, char *out,
                    size_t size);
/* dt_lib_message, returning -1: for helpers that report a failure as -1 with the reason. */
int dt_lib_failure(const adasplash_context *ctx, adasplash_status st, const char *what, char *out,
                   size_t size);

#endif /* ADASPLASH_DEVTOOLS_REPORT_H */
