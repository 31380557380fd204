/*
 * cli.h - command-line values of the programs: comma-separated lists of integers, numbers or names
 * from a fixed table, each checked against its range. Errors are printed as "<prog>: <option>: ..."
 * (dt_error) and returned as -1.
 */
#ifndef ADASPLASH_DEVTOOLS_CLI_H
#define ADASPLASH_DEVTOOLS_CLI_H

/* Items of a list are at most this long. */
#define DT_CLI_ITEM 64

/* Parses s ("1,2,3") into v[0..cap) with every value in [lo, hi]. Returns the count, or -1 (with
 * the reason printed) for a bad value, an empty item or more than cap items (cap 1: "takes one
 * value"). */
int dt_cli_ints(const char *prog, const char *opt, const char *s, long long lo, long long hi,
                long long *v, int cap);
int dt_cli_doubles(const char *prog, const char *opt, const char *s, double lo, double hi,
                   double *v, int cap);
/* Names from names[0..count), stored as their indices. */
int dt_cli_names(const char *prog, const char *opt, const char *s, const char *const *names,
                 int count, long long *v, int cap);

#endif /* ADASPLASH_DEVTOOLS_CLI_H */
