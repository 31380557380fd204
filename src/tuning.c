/*
 * tuning.c - launch parameters: the table of keys with their bounds, the "key=value" text scanner,
 * the defaults per device class (each with the measurement behind it), the per-device tuned file
 * and the ADASPLASH_TUNE / options.tune override. Planners (attention_common.c, entmax_rows.c)
 * then fit these values to the device's local-memory and work-group limits.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuning.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sha256.h"

#define ASP_KEY(field, is_ulong, lo, hi, meaning) \
  { #field, offsetof(asp_tuning, field), is_ulong, lo, hi, meaning }

static const asp_tuning_key asp_keys[] = {
    ASP_KEY(local_mem, 1, 4096, 1L << 30, "local memory bytes the planners may use"),
    ASP_KEY(max_wg, 1, 16, 1 << 16, "work-items per work-group at most"),
    ASP_KEY(attn_tile, 0, 8, 128,
            "attention: queries per work-group = keys per tile (bitmap tile side)"),
    ASP_KEY(attn_wg, 0, 16, 1024, "attention: work-items per work-group"),
    ASP_KEY(attn_dk, 0, 4, 256, "attention: head-dim columns staged per step"),
    ASP_KEY(attn_bins, 0, 2, 256, "attention: histogram bins per unit of scaled score"),
    ASP_KEY(attn_hist, 0, 0, 1,
            "attention: tau starts from a score histogram (1) or the plain bracket (0)"),
    ASP_KEY(attn_kmax, 0, 1, 256,
            "attention: candidates per row kept for tau's exact finish (fewer where local "
            "memory runs short)"),
    ASP_KEY(attn_fuse, 0, 0, 2,
            "attention forward, alpha 1.5 and 2: the refinement sweep inside the output pass (1; "
            "2 makes every such block fall back, for tests) or its own sweep (0)"),
    ASP_KEY(attn_bwd_fused, 0, 0, 1,
            "attention backward: one pass with atomic dQ (1) or dQ and dK/dV passes (0)"),
    ASP_KEY(nv_tile, 0, 16, 128, "attention, NVIDIA path: bitmap tile side (rows per work-group)"),
    ASP_KEY(nv_warps, 0, 1, 8, "attention, NVIDIA path: warps per work-group"),
    ASP_KEY(nv_stages, 0, 1, 2, "attention, NVIDIA path: operand slots (2: prefetch a tile ahead)"),
    ASP_KEY(nv_dense_rows, 0, 0, 256,
            "attention, NVIDIA path: query rows per work-group of the threshold pass's dense sweep "
            "(0: the threshold pass sweeps with its own tile)"),
    ASP_KEY(nv_dense_tile, 0, 0, 128,
            "attention, NVIDIA path: keys per staged tile of the threshold pass's dense sweep (a "
            "multiple of nv_tile; 0: nv_tile)"),
    ASP_KEY(nv_dense_warps, 0, 0, 16,
            "attention, NVIDIA path: warps per work-group of the threshold pass's dense sweep "
            "(16 rows or a multiple each; 0: one warp per 16 rows)"),
    ASP_KEY(nv_bwd_fused, 0, 0, 1,
            "attention backward, NVIDIA path: one pass with atomic dQ (1) or dQ and dK/dV passes "
            "(0)"),
    ASP_KEY(nv_alpha_fixed, 0, 0, 1,
            "attention, NVIDIA path: a desc with scalar alpha 1.5 or 2 runs programs compiled for "
            "that alpha (1) or the programs for any alpha (0)"),
    ASP_KEY(nv_fwd_maxrreg, 0, 0, 255,
            "attention, NVIDIA path: registers per work-item at most in the forward programs "
            "(-cl-nv-maxrregcount; 0: the compiler's choice, else 32 - 255)"),
    ASP_KEY(nv_bwd_maxrreg, 0, 0, 255,
            "attention, NVIDIA path: registers per work-item at most in the backward program "
            "(-cl-nv-maxrregcount; 0: the compiler's choice, else 32 - 255)"),
    ASP_KEY(nv_build_threads, 0, 0, 1,
            "attention, NVIDIA path: a cold prepare compiles its programs on one thread each (1) "
            "or one after another (0)"),
    ASP_KEY(nv_emulate, 0, 0, 1,
            "attention, NVIDIA path: emulate its PTX on any device (tests; ADASPLASH_PATH=nvidia)"),
    ASP_KEY(rows_wg, 0, 16, 1024, "rows: work-items per row or row segment"),
    ASP_KEY(rows_bins, 0, 2, 1024, "rows: histogram bins per unit of scaled score"),
    ASP_KEY(rows_seg_cols, 0, 64, 1 << 30, "rows: split rows longer than this across work-groups"),
    ASP_KEY(rows_cache, 0, 0, 1, "rows: keep a row in local memory when it fits"),
    ASP_KEY(rows_wg_bracket, 0, 0, 1,
            "rows: the work-group (1) or one work-item (0) finds tau's bracket"),
    ASP_KEY(decode_max_q, 0, 0, 256,
            "attention: inference forwards with q_len <= this take the split-KV decode path"),
    ASP_KEY(decode_split, 0, 64, 1 << 20,
            "attention decode path: least keys per split (grown while the device stays full; the "
            "shard path's P V splits)"),
    ASP_KEY(decode_wg, 0, 16, 1024,
            "attention decode path: work-items per work-group (decode_scores: at most)"),
};

static int asp_power_of_two(long v) {
  return v > 0 && (v & (v - 1)) == 0;
}

int asp_tuning_each_item(const char *text, asp_tuning_item_fn fn, void *arg) {
  const char *s = text;
  while (s && *s) {
    /* One item: up to ',' or newline; '#' starts a comment to the end of the line. */
    char item[256];
    size_t n = 0;
    while (*s && *s != ',' && *s != '\n' && *s != '#') {
      if (n + 1 < sizeof item) item[n++] = *s;
      ++s;
    }
    item[n] = '\0';
    if (*s == '#')
      while (*s && *s != '\n') ++s;
    if (*s) ++s;
    /* Trim the item, then the key and the value around '='. */
    char *b = item;
    while (isspace((unsigned char)*b)) ++b;
    char *e = b + strlen(b);
    while (e > b && isspace((unsigned char)e[-1])) *--e = '\0';
    if (!*b) continue;
    char *value = strchr(b, '=');
    if (value) {
      *value++ = '\0';
      char *ke = value - 1;
      while (ke > b && isspace((unsigned char)ke[-1])) *--ke = '\0';
      while (isspace((unsigned char)*value)) ++value;
    }
    int r = fn(b, value, arg);
    if (r) return r;
  }
  return 0;
}

typedef struct asp_apply_state {
  asp_tuning *t;
  unsigned long device_local_mem, device_max_wg;
  char *err;
  size_t err_size;
} asp_apply_state;

static int asp_apply_item(const char *key, const char *value, void *arg) {
  asp_apply_state *a = (asp_apply_state *)arg;
  char *err = a->err;
  const size_t err_size = a->err_size;
  if (!value) {
    snprintf(err, err_size, "tuning item \"%s\" is not key=value", key);
    return -1;
  }
  const asp_tuning_key *k = NULL;
  for (size_t i = 0; i < sizeof asp_keys / sizeof asp_keys[0]; ++i)
    if (strcmp(asp_keys[i].name, key) == 0) k = &asp_keys[i];
  if (!k) {
    char known[512] = "";
    for (size_t i = 0; i < sizeof asp_keys / sizeof asp_keys[0]; ++i) {
      strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
      strncat(known, asp_keys[i].name, sizeof known - strlen(known) - 1);
    }
    snprintf(err, err_size, "unknown tuning key \"%s\" (known: %s)", key, known);
    return -1;
  }
  errno = 0;
  char *end = NULL;
  long v = strtol(value, &end, 10);
  if (errno || end == value || *end) {
    snprintf(err, err_size, "tuning key %s: \"%s\" is not an integer", key, value);
    return -1;
  }
  if (v < k->min_value || v > k->max_value) {
    snprintf(err, err_size, "tuning key %s=%ld is outside [%ld, %ld]", key, v, k->min_value,
             k->max_value);
    return -1;
  }
  if (strcmp(key, "local_mem") == 0 && (unsigned long)v > a->device_local_mem) {
    snprintf(err, err_size, "tuning key local_mem=%ld exceeds the device's %lu bytes", v,
             a->device_local_mem);
    return -1;
  }
  if (strcmp(key, "max_wg") == 0 && (unsigned long)v > a->device_max_wg) {
    snprintf(err, err_size, "tuning key max_wg=%ld exceeds the device's %lu work-items", v,
             a->device_max_wg);
    return -1;
  }
  if ((strcmp(key, "nv_fwd_maxrreg") == 0 || strcmp(key, "nv_bwd_maxrreg") == 0) && v != 0 &&
      v < 32) {
    snprintf(err, err_size, "tuning key %s=%ld must be 0 (no limit) or at least 32", key, v);
    return -1;
  }
  if ((strcmp(key, "attn_wg") == 0 || strcmp(key, "rows_wg") == 0 ||
       strcmp(key, "attn_tile") == 0 || strcmp(key, "attn_bins") == 0 ||
       strcmp(key, "nv_tile") == 0 || strcmp(key, "nv_warps") == 0 ||
       (strcmp(key, "nv_dense_rows") == 0 && v != 0) ||
       (strcmp(key, "nv_dense_tile") == 0 && v != 0) ||
       (strcmp(key, "nv_dense_warps") == 0 && v != 0) || strcmp(key, "rows_bins") == 0 ||
       strcmp(key, "decode_wg") == 0 || strcmp(key, "decode_split") == 0) &&
      !asp_power_of_two(v)) {
    snprintf(err, err_size, "tuning key %s=%ld must be a power of two", key, v);
    return -1;
  }
  char *field = (char *)a->t + k->offset;
  if (k->is_ulong)
    *(unsigned long *)(void *)field = (unsigned long)v;
  else
    *(int *)(void *)field = (int)v;
  return 0;
}

int asp_tuning_apply(asp_tuning *t, const char *text, unsigned long device_local_mem,
                     unsigned long device_max_wg, char *err, size_t err_size) {
  asp_apply_state a = {t, device_local_mem, device_max_wg, err, err_size};
  return asp_tuning_each_item(text, asp_apply_item, &a) ? -1 : 0;
}

void asp_tuning_format(const asp_tuning *t, char *out, size_t out_size) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof asp_keys / sizeof asp_keys[0]; ++i) {
    const char *field = (const char *)t + asp_keys[i].offset;
    long v = asp_keys[i].is_ulong ? (long)*(const unsigned long *)(const void *)field
                                  : (long)*(const int *)(const void *)field;
    int w = snprintf(out + used, out_size - used, "%s=%ld\n", asp_keys[i].name, v);
    if (w < 0 || (size_t)w >= out_size - used) break;
    used += (size_t)w;
  }
}

/* ---- defaults per device class, the tuned file, the override --------------------------------- */

/* The defaults of each device class; local_mem and max_wg are the device's. Both classes use the
 * histogram start (attn_hist, the AdaSplash-2 method), cache short rows in local memory and split
 * rows past 65536 columns. The fused backward (dQ added atomically) won on both classes measured:
 * H100, N=16384, H=16, D=64, causal, beta=2, bf16: backward kernels 22.7 ms fused vs 10.1 + 18.1
 * split; PoCL (2-core EPYC), N=4096, H=4, f32, 32x32 tiles: backward 952 vs 1334 ms (16x16 tiles,
 * N=2048: fwd+bwd 472 vs 514 ms). Its dQ is not bitwise reproducible (atomic order);
 * attn_bwd_fused=0 is. The NVIDIA tensor-core path ranks them the other way (nv_bwd_fused=0):
 * H100, same shape, backward kernels 1.71 (dK/dV) + 0.85 (dQ) ms split vs 2.90 + 0.17 (dQ store)
 * fused, fwd+bwd 7.64 vs 8.16 ms (scripts/gpu/experiments.sh, 2026-12-07; red.global.v2 for the
 * fused dQ: 2.72 + 0.17). The NVIDIA tensor-core path (used only on such devices): tiles on warps
 * of 16 rows (measured below), the next tile prefetched with cp.async where local memory allows.
 * The split-KV decode path (attention_decode.c) serves inference forwards with q_len <= 16 on both
 * classes. PoCL (2-core EPYC), B=1, H=16, D=64, f32, causal, kv_len=65536, decode vs fused
 * forward ms (adasplash-bench --mode decode, ADASPLASH_TUNE=decode_max_q=256): q_len 1: 29 vs
 * 382 (13x); 16: 287 vs 637 (2.2x); 64: 1274 vs 1691 (1.3x); 128: 2426 vs 3400 (1.4x); kv_len
 * 4096, q_len 16/32/64: 2.3x/1.4x/1.3x. Past 16 the gain shrinks to ~1.3x while the kept scores
 * (q_len x kv_len floats per head) grow, hence 16 on CPUs. On the H200 (B=16, 16 q heads on 2 kv
 * heads, D=128, kv_len 65536, bf16; decode vs fused forward ms, 2026-12-03): q_len 1: 0.97 vs
 * 5.26; 4: 3.51 vs 7.02; 16: 13.4 vs 9.6 (before the slice-parallel scores, which took that
 * kernel from 0.68 to 0.55 ms at q_len 1): the decode path's fp32 scores lose to the fused
 * forward's tensor cores once a kv head's group has 128 rows. GPUs: q_len <= 8 (8 itself not
 * measured; between the win at 4 and the loss at 16). Splits grow from decode_split (1024 keys on
 * CPUs, 512 on GPUs) while 4 work-groups per compute unit remain; 128 work-items on GPUs
 * (decode_wg=64: 1.03 vs 0.97 ms, 256: 1.23 ms at the old scores kernel; decode_split 128 or
 * 4096: within 2%). */
static const asp_tuning asp_class_defaults[] = {
    /* CPU runtimes (PoCL) run a work-group as loops over work-items: fewer, fatter work-items.
     * 32x32 tiles on 8x8 work-items (4x4 register blocks of the tile contract's portable
     * implementation): PoCL, 2-core EPYC, N=2048, H=4, D=64, f32, causal, beta=2, fwd+bwd ms
     * (entmax / softmax): 32/64 300 / 528, 16/16 300 / 686, 32/16 323 / 776, 64/64 466 / 689,
     * 16/64 467 / 1097 (adasplash-bench --mode attention-fwd-bwd, ADASPLASH_TUNE per row). */
    [ASP_DEVICE_CPU] = {.attn_tile = 32,
                        .attn_wg = 64,
                        .attn_dk = 32,
                        .attn_bins = 16,
                        .attn_hist = 1,
                        .attn_kmax = 32,
                        .attn_bwd_fused = 1,
                        .rows_wg = 64,
                        .rows_bins = 64,
                        .rows_seg_cols = 65536,
                        .rows_cache = 1,
                        .rows_wg_bracket = 0,
                        .decode_max_q = 16,
                        .decode_split = 1024,
                        .decode_wg = 64,
                        .nv_tile = 64,
                        .nv_warps = 4,
                        .nv_stages = 2,
                        .nv_dense_rows = 128,
                        .nv_bwd_fused = 0,
                        .nv_alpha_fixed = 1},
    /* 32x32 tiles, 64 work-items (4x4 scores each), 16 head-dim columns per staging step.
     * Measured on an H100 (N=16384, H=16, D=64, causal, beta=2, bf16 fwd+bwd, ms): 32/64 92.6,
     * 64/128 103, 64/128 dk=32 102, 64/256 134, 64/64 156 (scripts/gpu/gpu_session.sh sweep).
     * NVIDIA path: 32x32 tiles on 2 warps. Measured on the H200 (same shape, fwd / fwd+bwd ms):
     * nv_tile=32,nv_warps=2 8.11 / 11.40; 64/4 10.52 / 14.34; 32/1 17.2 / 22.5 (.gpu exp.sh sweep,
     * ADASPLASH_TUNE). The dense sweep inside attn_tau was bound by the L2 traffic of the key
     * tiles (the bare products at 32 rows per work-group: 3.0 ms; staging 2 or 4 key tiles per
     * barrier, or one pipeline stage instead of two, changed nothing); its own kernel with 128
     * rows per work-group: threshold pass 7.33 -> 2.34 + 2.95 ms, fwd+bwd 12.09 -> 10.04 ms
     * (nv_dense_rows 64: the same within 2%; scripts/gpu/experiments.sh, 2026-12-03).
     * Rows: one work-item searching the bracket left 255 idle: 2.9 ms for 4096 x 1024 rows on an
     * H100, 15x the plain-bracket start, hence rows_wg_bracket=1. */
    [ASP_DEVICE_GPU] = {.attn_tile = 32,
                        .attn_wg = 64,
                        .attn_dk = 16,
                        .attn_bins = 16,
                        .attn_hist = 1,
                        .attn_kmax = 32,
                        .attn_bwd_fused = 1,
                        .rows_wg = 256,
                        .rows_bins = 64,
                        .rows_seg_cols = 65536,
                        .rows_cache = 1,
                        .rows_wg_bracket = 1,
                        .decode_max_q = 8,
                        .decode_split = 512,
                        .decode_wg = 128,
                        .nv_tile = 32,
                        .nv_warps = 2,
                        .nv_stages = 2,
                        .nv_dense_rows = 128,
                        .nv_bwd_fused = 0,
                        .nv_alpha_fixed = 1},
};

void asp_tuning_defaults(const asp_device *dev, asp_tuning *t) {
  *t = asp_class_defaults[dev->device_class];
  t->local_mem = (unsigned long)dev->info.local_mem_size;
  t->max_wg = (unsigned long)dev->info.max_work_group_size;
}

/* "<dir>/tuned-<16 hex>.conf" for this device, or $ADASPLASH_TUNE_FILE. dir is the cache directory
 * even where program binaries are not cached there (PoCL, ADASPLASH_DISK_CACHE=OFF builds): the
 * tuned file is small text that adasplash-tune writes for every device. */
static int asp_tuned_file_path(const adasplash_device_info *i, const char *dir, char *out,
                               size_t size) {
  const char *env = asp_getenv("ADASPLASH_TUNE_FILE");
  if (env) return asp_strlcpy(out, env, size) == 0;
  if (!dir[0]) return 0;
  asp_sha256_ctx h;
  asp_sha256_init(&h);
  const char *parts[] = {i->platform_name, i->device_name, i->device_version, i->driver_version};
  for (size_t p = 0; p < 4; ++p) asp_sha256_update(&h, parts[p], strlen(parts[p]) + 1);
  uint8_t digest[32];
  asp_sha256_final(&h, digest);
  char hex[65];
  asp_hex(digest, 8, hex);
  int n = snprintf(out, size, "%s/tuned-%s.conf", dir, hex);
  return n > 0 && (size_t)n < size;
}

adasplash_status asp_tuning_init(asp_device *dev, const char *override, const char *tune_dir,
                                 asp_tuning *t) {
  asp_tuning_defaults(dev, t);
  adasplash_device_info *info = &dev->info;
  unsigned long dev_local = (unsigned long)info->local_mem_size;
  unsigned long dev_wg = (unsigned long)info->max_work_group_size;
  char err[512];
  char *path = info->tuned_file;
  path[0] = '\0';
  info->tuned_file_loaded = 0;
  if (asp_tuned_file_path(info, tune_dir, path, sizeof info->tuned_file)) {
    FILE *f = fopen(path, "rb");
    if (f) {
      char text[8192];
      size_t n = fread(text, 1, sizeof text - 1, f);
      fclose(f);
      text[n] = '\0';
      if (asp_tuning_apply(t, text, dev_local, dev_wg, err, sizeof err) != 0)
        return asp_fail(NULL, ADASPLASH_ERROR_INVALID_TUNING, "tuned file %s: %s", path, err);
      info->tuned_file_loaded = 1;
    }
  } else {
    path[0] = '\0';
  }
  if (!override) override = asp_getenv("ADASPLASH_TUNE");
  if (asp_tuning_apply(t, override, dev_local, dev_wg, err, sizeof err) != 0)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_TUNING, "ADASPLASH_TUNE: %s", err);
  /* The planners see the (possibly lowered) limits through the public device info too. */
  info->local_mem_size = t->local_mem;
  info->max_work_group_size = t->max_wg;
  asp_tuning_format(t, info->tuning, sizeof info->tuning);
  return ADASPLASH_SUCCESS;
}

/* ---- public queries ---------------------------------------------------------------------------
 */

adasplash_status adasplash_tuning_keys(adasplash_tuning_key *keys, size_t capacity, size_t *count) {
  if (!count)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "adasplash_tuning_keys: count is NULL");
  if (!keys && capacity)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_tuning_keys: keys is NULL with capacity %zu", capacity);
  const size_t n = sizeof asp_keys / sizeof asp_keys[0];
  for (size_t i = 0; i < n && i < capacity; ++i) {
    keys[i].name = asp_keys[i].name;
    keys[i].min_value = asp_keys[i].min_value;
    keys[i].max_value = asp_keys[i].max_value;
    keys[i].meaning = asp_keys[i].meaning;
  }
  *count = n;
  return ADASPLASH_SUCCESS;
}

adasplash_status adasplash_tuning_scan(const char *text, adasplash_tuning_item_fn fn, void *arg) {
  if (!fn)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "adasplash_tuning_scan: fn is NULL");
  asp_tuning_each_item(text, fn, arg);
  return ADASPLASH_SUCCESS;
}
