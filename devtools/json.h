/*
 * json.h - JSON lines: one object per line, written field by field (keys in the order written;
 * non-finite numbers as null), with nested objects and timing statistics.
 */
#ifndef ADASPLASH_DEVTOOLS_JSON_H
#define ADASPLASH_DEVTOOLS_JSON_H

#include <stdio.h>

#include "timing.h"

typedef struct dt_json {
  FILE *f;
  int first; /* no field written yet */
} dt_json;

/* Starts a line's object on f. */
void dt_json_line(dt_json *j, FILE *f);
/* Ends the line's object with a newline and flushes f. */
void dt_json_line_end(dt_json *j);

void dt_json_str(dt_json *j, const char *key, const char *v);
void dt_json_num(dt_json *j, const char *key, double v); /* %.6g */
void dt_json_int(dt_json *j, const char *key, long long v);
void dt_json_bool(dt_json *j, const char *key, int v);
/* {"min", "median", "mean", "stddev", "count"} */
void dt_json_stats(dt_json *j, const char *key, const dt_stats *s);
/* A nested object under key: its fields go to *sub until dt_json_object_end(sub). */
void dt_json_object(dt_json *j, const char *key, dt_json *sub);
void dt_json_object_end(dt_json *sub);

#endif /* ADASPLASH_DEVTOOLS_JSON_H */
