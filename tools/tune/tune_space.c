/*
 * tune_space.c - the table of keys adasplash-tune searches and the candidate values of each key
 * (see tune_space.h). The library's bounds come from adasplash_tuning_keys.
 */
#include "tune_space.h"

#include <stdio.h>
#include <string.h>

#include "adasplash.h"

/* The search space. Values are what is worth measuring on current devices; the library's bounds
 * and the device's limits trim them at run time. A key the linked library does not know (say an
 * older library without attn_bwd_fused) is found at run time and not searched. */
static const tune_key tune_keys[] = {
    {"attn_tile", TUNE_ATTENTION, 0, {16, 32, 64}, 3, TUNE_PORTABLE_PATH},
    {"attn_wg", TUNE_ATTENTION, 1, {32, 64, 128, 256}, 4, TUNE_PORTABLE_PATH},
    {"attn_dk", TUNE_ATTENTION, 0, {8, 16, 32}, 3, TUNE_PORTABLE_PATH},
    {"nv_tile", TUNE_ATTENTION, 0, {16, 32, 64}, 3, TUNE_NVIDIA_PATH},
    {"nv_warps", TUNE_ATTENTION, 0, {1, 2, 4}, 3, TUNE_NVIDIA_PATH},
    {"nv_stages", TUNE_ATTENTION, 0, {1, 2}, 2, TUNE_NVIDIA_PATH},
    {"nv_dense_rows", TUNE_ATTENTION, 0, {0, 64, 128}, 3, TUNE_NVIDIA_PATH},
    {"nv_dense_tile", TUNE_ATTENTION, 0, {0, 64, 128}, 3, TUNE_NVIDIA_PATH},
    {"nv_dense_warps", TUNE_ATTENTION, 0, {0, 2, 4}, 3, TUNE_NVIDIA_PATH},
    {"attn_bins", TUNE_ATTENTION, 0, {8, 16, 32}, 3, TUNE_ANY_PATH},
    {"attn_hist", TUNE_ATTENTION, 0, {0, 1}, 2, TUNE_ANY_PATH},
    {"attn_fuse", TUNE_ATTENTION, 0, {0, 1}, 2, TUNE_ANY_PATH},
    {"attn_bwd_fused", TUNE_ATTENTION, 0, {0, 1}, 2, TUNE_ANY_PATH},
    {"nv_bwd_fused", TUNE_ATTENTION, 0, {0, 1}, 2, TUNE_NVIDIA_PATH},
    {"nv_alpha_fixed", TUNE_ATTENTION, 0, {0, 1}, 2, TUNE_NVIDIA_PATH},
    {"nv_fwd_maxrreg", TUNE_ATTENTION, 0, {0, 128, 168}, 3, TUNE_NVIDIA_PATH},
    {"nv_bwd_maxrreg", TUNE_ATTENTION, 0, {0, 168, 200}, 3, TUNE_NVIDIA_PATH},
    {"rows_wg", TUNE_ROWS, 1, {64, 128, 256, 512}, 4, TUNE_ANY_PATH},
    {"rows_bins", TUNE_ROWS, 0, {32, 64, 128}, 3, TUNE_ANY_PATH},
    {"rows_wg_bracket", TUNE_ROWS, 0, {0, 1}, 2, TUNE_ANY_PATH},
    {"rows_cache", TUNE_ROWS, 0, {0, 1}, 2, TUNE_ANY_PATH},
};

const tune_key *tune_space_keys(size_t *count) {
  *count = sizeof tune_keys / sizeof tune_keys[0];
  return tune_keys;
}

int tune_space_index(const char *name) {
  for (size_t i = 0; i < sizeof tune_keys / sizeof tune_keys[0]; ++i)
    if (strcmp(tune_keys[i].name, name) == 0) return (int)i;
  return -1;
}

static void tune_append(char *out, size_t size, const char *fmt, long v, const char *what,
                        long limit) {
  size_t used = strlen(out);
  if (used + 1 >= size) return;
  snprintf(out + used, size - used, fmt, used ? ", " : "", v, what, limit);
}

size_t tune_space_values(const tune_key *k, long default_value, unsigned long max_wg, int quick,
                         int *out, char *dropped, size_t dropped_size) {
  adasplash_tuning_key lib[64];
  const adasplash_tuning_key *bounds = NULL;
  size_t nlib = 0;
  if (adasplash_tuning_keys(lib, sizeof lib / sizeof lib[0], &nlib) != ADASPLASH_SUCCESS) nlib = 0;
  for (size_t i = 0; i < nlib && i < sizeof lib / sizeof lib[0]; ++i)
    if (strcmp(lib[i].name, k->name) == 0) bounds = &lib[i];
  if (dropped_size) dropped[0] = '\0';
  int kept[TUNE_MAX_VALUES];
  size_t n = 0;
  for (int i = 0; i < k->nvalues && i < TUNE_MAX_VALUES; ++i) {
    long v = k->values[i];
    if (bounds && v < bounds->min_value) {
      tune_append(dropped, dropped_size, "%s%ld (%s %ld)", v, "below the library's minimum",
                  bounds->min_value);
    } else if (bounds && v > bounds->max_value) {
      tune_append(dropped, dropped_size, "%s%ld (%s %ld)", v, "above the library's maximum",
                  bounds->max_value);
    } else if (k->wg_limited && (unsigned long)v > max_wg) {
      tune_append(dropped, dropped_size, "%s%ld (%s %ld)", v, "above the max work-group size",
                  (long)max_wg);
    } else {
      kept[n++] = (int)v;
    }
  }
  if (!quick) {
    memcpy(out, kept, n * sizeof *out);
    return n;
  }
  /* Quick: the largest value below the default and the smallest above it. */
  size_t m = 0;
  int below = -1, above = -1;
  for (size_t i = 0; i < n; ++i) {
    if (kept[i] < default_value) below = (int)i;
    if (kept[i] > default_value && above < 0) above = (int)i;
  }
  if (below >= 0) out[m++] = kept[below];
  if (above >= 0) out[m++] = kept[above];
  return m;
}

/* Every key of the table has its slot in a tune_config (keys past TUNE_MAX_KEYS were silently
 * left out of the search). */
_Static_assert(sizeof tune_keys / sizeof tune_keys[0] <= TUNE_MAX_KEYS,
               "tune_keys has more keys than TUNE_MAX_KEYS");

void tune_config_text(const tune_config *c, char *out, size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof tune_keys / sizeof tune_keys[0] && i < TUNE_MAX_KEYS; ++i) {
    if (!c->known[i]) continue;
    int w = snprintf(out + used, size - used, "%s%s=%ld", used ? "," : "", tune_keys[i].name,
                     c->value[i]);
    if (w < 0 || (size_t)w >= size - used) break;
    used += (size_t)w;
  }
}

void tune_config_diff(const tune_config *c, const tune_config *base, tune_target target, char *out,
                      size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof tune_keys / sizeof tune_keys[0] && i < TUNE_MAX_KEYS; ++i) {
    if (!c->known[i] || tune_keys[i].target != target || c->value[i] == base->value[i]) continue;
    int w = snprintf(out + used, size - used, "%s%s=%ld", used ? " " : "", tune_keys[i].name,
                     c->value[i]);
    if (w < 0 || (size_t)w >= size - used) break;
    used += (size_t)w;
  }
  if (!used) snprintf(out, size, "defaults");
}

unsigned long tune_space_attn_local_floor(const tune_config *c) {
  int it = tune_space_index("attn_tile"), iw = tune_space_index("attn_wg"),
      ib = tune_space_index("attn_bins");
  if (it < 0 || iw < 0 || ib < 0 || !c->known[it] || !c->known[iw] || !c->known[ib]) return 0;
  unsigned long t = (unsigned long)c->value[it], wg = (unsigned long)c->value[iw],
                bins = (unsigned long)c->value[ib];
  unsigned long tc = 1;
  while (tc * tc < wg) tc *= 2;
  if (t < tc) t = tc; /* the planner raises the tile to the work-item grid */
  return 3 * t * (bins + 1) * 4 + 2 * tc * (t + 1) * 4;
}
