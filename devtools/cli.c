/*
 * cli.c - command-line lists and values (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

typedef enum dt_kind { DT_INT, DT_DOUBLE, DT_NAME } dt_kind;

typedef struct dt_spec {
  dt_kind kind;
  long long ilo, ihi;
  double dlo, dhi;
  const char *const *names;
  int count;
} dt_spec;

/* One item into *iv / *dv; 0, or -1 with the reason printed. */
static int dt_cli_item(const char *prog, const char *opt, const char *item, const dt_spec *sp,
                       long long *iv, double *dv) {
  char *end = NULL;
  errno = 0;
  if (sp->kind == DT_INT) {
    *iv = strtoll(item, &end, 10);
    if (!errno && end != item && !*end && *iv >= sp->ilo && *iv <= sp->ihi) return 0;
    dt_error(prog, "%s: '%s' is not an integer in [%lld, %lld]", opt, item, sp->ilo, sp->ihi);
    return -1;
  }
  if (sp->kind == DT_DOUBLE) {
    *dv = strtod(item, &end);
    if (!errno && end != item && !*end && *dv >= sp->dlo && *dv <= sp->dhi) return 0;
    dt_error(prog, "%s: '%s' is not a number in [%g, %g]", opt, item, sp->dlo, sp->dhi);
    return -1;
  }
  for (int j = 0; j < sp->count; ++j) {
    if (strcmp(item, sp->names[j]) != 0) continue;
    *iv = j;
    return 0;
  }
  dt_error(prog, "%s: unknown value '%s'", opt, item);
  return -1;
}

static int dt_cli_list(const char *prog, const char *opt, const char *s, const dt_spec *sp,
                       long long *iv, double *dv, int cap) {
  int n = 0;
  for (const char *p = s;;) {
    const char *e = strchr(p, ',');
    const size_t len = e ? (size_t)(e - p) : strlen(p);
    if (n >= cap) {
      if (cap == 1)
        dt_error(prog, "%s takes one value", opt);
      else
        dt_error(prog, "%s: more than %d values", opt, cap);
      return -1;
    }
    if (len >= DT_CLI_ITEM) {
      dt_error(prog, "%s: an item is longer than %d characters", opt, DT_CLI_ITEM - 1);
      return -1;
    }
    char item[DT_CLI_ITEM];
    memcpy(item, p, len);
    item[len] = '\0';
    if (dt_cli_item(prog, opt, item, sp, iv ? &iv[n] : NULL, dv ? &dv[n] : NULL) != 0) return -1;
    ++n;
    if (!e) return n;
    p = e + 1;
  }
}

int dt_cli_ints(const char *prog, const char *opt, const char *s, long long lo, long long hi,
                long long *v, int cap) {
  const dt_spec sp = {DT_INT, lo, hi, 0.0, 0.0, NULL, 0};
  return dt_cli_list(prog, opt, s, &sp, v, NULL, cap);
}

int dt_cli_doubles(const char *prog, const char *opt, const char *s, double lo, double hi,
                   double *v, int cap) {
  const dt_spec sp = {DT_DOUBLE, 0, 0, lo, hi, NULL, 0};
  return dt_cli_list(prog, opt, s, &sp, NULL, v, cap);
}

int dt_cli_names(const char *prog, const char *opt, const char *s, const char *const *names,
                 int count, long long *v, int cap) {
  const dt_spec sp = {DT_NAME, 0, 0, 0.0, 0.0, names, count};
  return dt_cli_list(prog, opt, s, &sp, v, NULL, cap);
}
