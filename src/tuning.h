/*
 * tuning.h - launch parameters: one place for tile sizes, work-group sizes and histogram bins, with
 * defaults per device class, a per-device tuned file and the ADASPLASH_TUNE override.
 */
#ifndef ASP_TUNING_H
#define ASP_TUNING_H

#include <stddef.h>

#include "adasplash.h"

struct asp_device;

typedef struct asp_tuning {
  /* Device limits the planners respect. Default to the device's values; may be lowered (never
   * raised) to simulate a smaller device. */
  unsigned long local_mem; /* bytes of local memory per work-group */
  unsigned long max_wg;    /* work-items per work-group */
  /* Fused attention, portable path. */
  int attn_tile;      /* queries per work-group = keys per tile = bitmap tile side (square tiles) */
  int attn_wg;        /* work-items per work-group */
  int attn_dk;        /* head-dim columns staged in local memory per step */
  int attn_bins;      /* histogram bins per unit of scaled score (bracket width 1/bins at worst) */
  int attn_hist;      /* 1: histogram start for tau (AdaSplash-2); 0: plain certified bracket */
  int attn_kmax;      /* candidates per row for tau's exact finish (planner may lower it) */
  int attn_fuse;      /* 1: the forward's refinement inside the output pass (alpha 1.5 and 2) */
  int attn_bwd_fused; /* 1: one backward pass adds dQ atomically; 0: separate dQ and dK/dV passes */
  /* Fused attention, NVIDIA tensor-core path (16-bit storage, head dims up to 128). */
  int nv_tile;        /* bitmap tile side = rows per work-group = keys per tile */
  int nv_warps;       /* warps per work-group (each owns tile/warps rows, a multiple of 16) */
  int nv_stages;      /* operand slots: 2 prefetches the next tile while one is computed */
  int nv_dense_rows;  /* rows per work-group of the dense sweep kernel (0: none) */
  int nv_dense_tile;  /* keys per staged tile of the dense sweep kernel (0: nv_tile) */
  int nv_dense_warps; /* warps per work-group of the dense sweep kernel (0: one per 16 rows) */
  int nv_bwd_fused;   /* the NVIDIA path's attn_bwd_fused (the paths' backwards rank differently) */
  int nv_alpha_fixed; /* 1: scalar alpha 1.5 / 2 runs programs compiled for it (ASP_ALPHA_CLASS) */
  int nv_fwd_maxrreg; /* register cap of the forward programs (-cl-nv-maxrregcount; 0: none) */
  int nv_bwd_maxrreg; /* register cap of the backward program (0: none) */
  int nv_build_threads; /* 1: a cold prepare compiles its programs in parallel threads */
  int nv_emulate; /* test tool: run the NVIDIA path's kernels with emulated PTX on any device */
  /* Row-wise entmax. */
  int rows_wg;         /* work-items per row (or per row segment) */
  int rows_bins;       /* histogram bins per unit of scaled score */
  int rows_seg_cols;   /* rows longer than this are split across work-groups */
  int rows_cache;      /* 1: keep a row in local memory when it fits */
  int rows_wg_bracket; /* 1: the whole work-group searches the histogram bracket of a row */
  /* Split-KV decode path of the attention forward (attention_decode.c). */
  int decode_max_q; /* inference forwards with q_len <= this take the decode path (0: never) */
  int decode_split; /* keys per split (work-group) of the decode path's P V pass */
  int decode_wg;    /* work-items per work-group of the decode kernels */
} asp_tuning;

/* Names and bounds of the keys (the table behind adasplash_tuning_keys). */
typedef struct asp_tuning_key {
  const char *name;
  size_t offset; /* into asp_tuning */
  int is_ulong;
  long min_value, max_value;
  const char *meaning;
} asp_tuning_key;

/* Calls fn(key, value, arg) for each item of "key=value,key=value" text (also newline-separated,
 * '#' comments to the end of the line, blanks around items, keys and values trimmed); value is
 * NULL for an item without '='. Stops at and returns the first nonzero result of fn; else 0. */
typedef int (*asp_tuning_item_fn)(const char *key, const char *value, void *arg);
int asp_tuning_each_item(const char *text, asp_tuning_item_fn fn, void *arg);

/* Applies "key=value,key=value" (also newline-separated, '#' comments) to t. On error writes a
 * message naming the key into err and returns -1. Values are range-checked; local_mem and max_wg
 * may not exceed device_local_mem / device_max_wg. */
int asp_tuning_apply(asp_tuning *t, const char *text, unsigned long device_local_mem,
                     unsigned long device_max_wg, char *err, size_t err_size);

/* Writes the current values as "key=value" lines. */
void asp_tuning_format(const asp_tuning *t, char *out, size_t out_size);

/* The defaults of dev's class, with the device's limits. */
void asp_tuning_defaults(const struct asp_device *dev, asp_tuning *t);
/* The parameters a context on dev uses: the defaults, then the per-device tuned file
 * ($ADASPLASH_TUNE_FILE, else "<tune_dir>/tuned-<device hash>.conf"; none when tune_dir is ""),
 * then override (NULL: $ADASPLASH_TUNE). Fills dev->info's tuned_file, tuned_file_loaded, tuning
 * text and the (possibly lowered) planning limits. ADASPLASH_ERROR_INVALID_TUNING names the bad
 * key. */
adasplash_status asp_tuning_init(struct asp_device *dev, const char *override, const char *tune_dir,
                                 asp_tuning *t);

#endif /* ASP_TUNING_H */
