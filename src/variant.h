/*
 * variant.h - kernel variants: which device path a context builds for, the key that names one
 * compiled variant of an operation, the -D defines that specialise a program for it, and the typed
 * plan an operation settles on (its launch parameters fitted to the device and the compiled
 * kernels, with the program). Operations prepare a plan once; enqueue paths look it up by key and
 * never compile.
 *
 * Key fields: the operation's program, the device path (portable, or the NVIDIA tensor-core path),
 * the device class, the dtype, the padded head dim, the tile side asked for and the alpha class
 * (0 where an operation has no such parameter).
 */
#ifndef ASP_VARIANT_H
#define ASP_VARIANT_H

#include "internal.h"

/* The path a context builds kernels for, from options.path / $ADASPLASH_PATH ("auto", "portable"
 * or "nvidia"; NULL means $ADASPLASH_PATH, else "auto"), for the context's device and tuning:
 * auto is the NVIDIA tensor-core path on NVIDIA devices of compute capability >= 8.0, else
 * portable; nvidia is that path or UNSUPPORTED, unless the tuning key nv_emulate lets it run
 * emulated (tests). *automatic is 1 for "auto": the portable path may then use a vendor's
 * extensions where the device has them (NVIDIA: PTX float atomics); an explicit "portable"
 * compiles no vendor code. */
adasplash_status asp_variant_choose_path(const adasplash_context *ctx, const char *request,
                                         adasplash_kernel_path *path, int *automatic);
/* 1 when this context's NVIDIA-path kernels run their PTX for real (not emulated). */
int asp_variant_nv_native(const adasplash_context *ctx);

typedef struct asp_variant_key {
  asp_program_family family; /* the operation's program */
  adasplash_kernel_path path;
  asp_device_class device_class;
  adasplash_dtype dtype;
  int head_dim;    /* the padded head dim the program is compiled for; 0: none */
  int tile;        /* the tile side asked for (the plan may settle on a smaller one); 0: none */
  int alpha_class; /* the alpha the program is compiled for (cl/abi.h ASP_ALPHA_*); 0: any */
} asp_variant_key;

/* The key of ctx's variant of family for dtype, head_dim and tile (0 where unused). */
asp_variant_key asp_variant_key_of(const adasplash_context *ctx, asp_program_family family,
                                   adasplash_dtype dtype, int head_dim, int tile);

/* The defines of one variant: add in any order, asp_defines_text() writes them canonically. */
typedef struct asp_defines {
  int path;
  char items[32][64];
  int count;
} asp_defines;
/* Starts the defines of key's variant: the path, the dtype, and what the path adds to the program
 * (ASP_PTX_ATOMICS in the attention program where NVIDIA's float atomics are allowed). */
void asp_defines_init(asp_defines *d, const adasplash_context *ctx, const asp_variant_key *key);
void asp_defines_add_int(asp_defines *d, const char *name, long value);
/* "-DASP_PATH=<path> " then "-DA=1 -DB=2 ..." sorted by name (the program cache's key text). */
void asp_defines_text(const asp_defines *d, char *out, size_t out_size);
/* Builds (or finds) the program of key's family with these defines (and extra build options,
 * e.g. a target architecture; "" for none). */
adasplash_status asp_variant_program(adasplash_context *ctx, const asp_variant_key *key,
                                     const asp_defines *d, asp_program **program);
adasplash_status asp_variant_program_opts(adasplash_context *ctx, const asp_variant_key *key,
                                          const asp_defines *d, const char *options,
                                          asp_program **program);

/* The plan of the attention programs (fused entmax forward and backward, softmax flash): the tile
 * implementation (cl/abi.h ASP_TILE_*) and its parameters. */
typedef struct asp_attn_plan {
  int impl;       /* ASP_TILE_PORTABLE or ASP_TILE_NV_MMA */
  int tile;       /* tile side: queries per work-group = keys per tile = bitmap tile */
  int wg;         /* work-items per work-group */
  int hd;         /* padded head dim */
  int bins;       /* histogram bins per unit of scaled score */
  int kmax;       /* exact-finish candidates per row */
  int nseg;       /* row segments per block (tile maxima are kept per segment) */
  int tr, tc;     /* portable: work-item grid */
  int dk;         /* portable: head-dim columns staged per step */
  int vw;         /* portable: vector width of column groups */
  int nstage_f;   /* NVIDIA: operand slots of the forward program */
  int nstage_b;   /* NVIDIA: operand slots of the backward program */
  int emu;        /* NVIDIA: PTX emulated (tests on other devices) */
  int dense_rows; /* NVIDIA forward: query rows per work-group of attn_tau_dense (0: attn_tau
                     sweeps itself); the dense program's plan: its ASP_TQ */
  int sub_tile;   /* the dense program's plan: the forward's tile (ASP_TSUB), whose layout its
                     tile maxima keep while `tile` keys are staged at a time; else 0 */
  int fuse;       /* the forward program also has the fused output passes (ASP_FUSE, attn_fused.clh:
                     1, or 2: they always fall back) */
  int bwd_fused;  /* the backward adds dQ atomically in one pass (attn_bwd_fused, dq_store), else
                     dQ and dK/dV passes; its program compiles only those (ASP_BWD_FUSED). From
                     the tuning key attn_bwd_fused, on the NVIDIA path nv_bwd_fused */
} asp_attn_plan;

/* The plan of the row program. */
typedef struct asp_rows_plan {
  int wg;              /* work-items per row (or row segment) */
  int bins;            /* histogram bins per unit of scaled score */
  size_t static_local; /* bytes of the forward kernel's static local arrays */
} asp_rows_plan;

/* The plan of the decode program (attn_decode.cl). */
typedef struct asp_decode_plan {
  int wg;  /* work-items per work-group of decode_pv and decode_combine */
  int dpl; /* head-dim columns per work-item in decode_pv */
  int swg; /* work-items of decode_scores */
} asp_decode_plan;

/* The plan of the sequence-parallel shard program (attn_shard.cl). */
typedef struct asp_shard_plan {
  int wg;   /* work-items per row in the per-row kernels */
  int bins; /* histogram bins per unit of scaled score (the fp32 row program's) */
} asp_shard_plan;

typedef struct asp_plan {
  asp_variant_key key;
  asp_program *program;
  asp_attn_plan attn;     /* ASP_PROGRAM_ATTN_FORWARD / _BACKWARD, ASP_PROGRAM_SOFTMAX_FLASH */
  asp_rows_plan rows;     /* ASP_PROGRAM_ENTMAX_ROWS */
  asp_decode_plan decode; /* ASP_PROGRAM_ATTN_DECODE */
  asp_shard_plan shard;   /* ASP_PROGRAM_ATTN_SHARD */
  struct asp_plan *next;
} asp_plan;

/* A copy of the plan for key in *out (returns 1), or 0 when not prepared yet. */
int asp_plan_find(adasplash_context *ctx, const asp_variant_key *key, asp_plan *out);
/* Stores a copy of plan (a plan another thread stored first for the same key wins: the choice is
 * deterministic) and returns the stored one in *out. */
adasplash_status asp_plan_store(adasplash_context *ctx, const asp_plan *plan, asp_plan *out);
void asp_plan_release_all(adasplash_context *ctx);

#endif /* ASP_VARIANT_H */
