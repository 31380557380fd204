/*
 * json.c - JSON lines writer (see json.h).
 */
#include "json.h"

#include <math.h>

static void dt_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void dt_json_key(dt_json *j, const char *key) {
  if (!j->first) fputc(',', j->f);
  j->first = 0;
  dt_json_string(j->f, key);
  fputc(':', j->f);
}

void dt_json_line(dt_json *j, FILE *f) {
  j->f = f;
  j->first = 1;
  fputc('{', f);
}

void dt_json_line_end(dt_json *j) {
  fputs("}\n", j->f);
  fflush(j->f);
}

void dt_json_str(dt_json *j, const char *key, const char *v) {
  dt_json_key(j, key);
  dt_json_string(j->f, v);
}

void dt_json_num(dt_json *j, const char *key, double v) {
  dt_json_key(j, key);
  if (isfinite(v))
    fprintf(j->f, "%.6g", v);
  else
    fputs("null", j->f);
}

void dt_json_int(dt_json *j, const char *key, long long v) {
  dt_json_key(j, key);
  fprintf(j->f, "%lld", v);
}

void dt_json_bool(dt_json *j, const char *key, int v) {
  dt_json_key(j, key);
  fputs(v ? "true" : "false", j->f);
}

void dt_json_object(dt_json *j, const char *key, dt_json *sub) {
  dt_json_key(j, key);
  sub->f = j->f;
  sub->first = 1;
  fputc('{', j->f);
}

void dt_json_object_end(dt_json *sub) {
  fputc('}', sub->f);
}

void dt_json_stats(dt_json *j, const char *key, const dt_stats *s) {
  dt_json sub;
  dt_json_object(j, key, &sub);
  dt_json_num(&sub, "min", s->min);
  dt_json_num(&sub, "median", s->median);
  dt_json_num(&sub, "mean", s->mean);
  dt_json_num(&sub, "stddev", s->stddev);
  dt_json_int(&sub, "count", s->count);
  dt_json_object_end(&sub);
}
