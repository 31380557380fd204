/*
 * tune_space.h - the search space of adasplash-tune: one table row per tuning key (which operator
 * it tunes, the values worth trying, which device limit bounds it), the candidate values of a key
 * after the library's bounds (adasplash_tuning_keys) and the device limits, and configurations (one
 * value per key of the table) with their "key=value" texts.
 *
 * Adding a key to the search is one row in tune_space.c; keys the linked library does not know
 * are found at run time and left out.
 */
#ifndef ADASPLASH_TUNE_SPACE_H
#define ADASPLASH_TUNE_SPACE_H

#include <stddef.h>

typedef enum tune_target {
  TUNE_ATTENTION = 0, /* timed on adasplash_attention_forward + _backward */
  TUNE_ROWS = 1       /* timed on adasplash_entmax_forward */
} tune_target;

/* The kernel path a key plans (a key of the other path changes nothing there). */
typedef enum tune_path {
  TUNE_ANY_PATH = 0,
  TUNE_PORTABLE_PATH = 1, /* the portable kernels (fp32 storage, non-NVIDIA devices) */
  TUNE_NVIDIA_PATH = 2    /* the NVIDIA tensor-core kernels (16-bit storage) */
} tune_path;

#define TUNE_MAX_VALUES 8
#define TUNE_MAX_KEYS 32

typedef struct tune_key {
  const char *name; /* the library's key (adasplash_tuning_keys) */
  tune_target target;
  int wg_limited;              /* 1: values above the device's max work-group size are left out */
  int values[TUNE_MAX_VALUES]; /* ascending */
  int nvalues;
  tune_path path;
} tune_key;

const tune_key *tune_space_keys(size_t *count);

/* The values of key k to try, in ascending order, into out (at most TUNE_MAX_VALUES): the table's
 * values within the library's bounds for the key and the device limit. quick: only the neighbours
 * of default_value (the next smaller and the next larger value). Values left out are listed in
 * dropped ("512 (above max work-group size 256)", ...). Returns the count. */
size_t tune_space_values(const tune_key *k, long default_value, unsigned long max_wg, int quick,
                         int *out, char *dropped, size_t dropped_size);

/* One value per key of the table; known[i] = 0 for keys the library does not have. */
typedef struct tune_config {
  long value[TUNE_MAX_KEYS];
  int known[TUNE_MAX_KEYS];
} tune_config;

/* Index of a key in the table, or -1. */
int tune_space_index(const char *name);

/* "key=value,key=value" of every known key (what a candidate context gets as options.tune). */
void tune_config_text(const tune_config *c, char *out, size_t size);
/* The keys of target whose values differ from base, "key=value key=value", or "defaults". */
void tune_config_diff(const tune_config *c, const tune_config *base, tune_target target, char *out,
                      size_t size);

/* A lower bound of the local memory (bytes) the attention kernels need for the tile, work-group
 * size and bin count of c: three histograms per row of the tile and the smallest staging of two
 * tiles (one head-dim column per work-item column). The library's planner shrinks a configuration
 * that does not fit, so such a candidate would not be measured as asked. 0 when c lacks a key. */
unsigned long tune_space_attn_local_floor(const tune_config *c);

#endif /* ADASPLASH_TUNE_SPACE_H */
