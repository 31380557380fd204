/*
 * attention_common.h - what the attention algorithms (fused entmax, softmax flash baseline, dense
 * CLBlast baseline) share on the host: the validated problem, resolved tensor layouts, the tile
 * plan, the kernel-side mirrors of asp_layout / asp_geom, and argument checks.
 */
#ifndef ASP_ATTENTION_COMMON_H
#define ASP_ATTENTION_COMMON_H

#include "internal.h"
#include "launch.h"
#include "variant.h"

/* Mirror of asp_layout in cl/tile.clh (four ulongs). */
typedef struct asp_cl_layout {
  cl_ulong off, bs, hs, ss;
} asp_cl_layout;

/* Mirror of asp_geom in cl/tile.clh (ints only). */
typedef struct asp_cl_geom {
  cl_int batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  cl_int causal, has_qlens, has_kvlens;
  cl_int nqb, nkb;
  cl_int wk, wq;
} asp_cl_geom;

/* A validated attention problem. */
typedef struct asp_attn_problem {
  adasplash_attention_desc d; /* copy with defaults resolved (scale, tolerance, max_iter) */
  asp_cl_layout q, k, v, o;   /* resolved layouts (elements) */
  size_t q_bytes, k_bytes, v_bytes, o_bytes; /* extents in bytes */
  size_t esize;
} asp_attn_problem;

/* Validates desc (every field, layouts included) and fills pr. fn names the caller. */
adasplash_status asp_attn_check_desc(const adasplash_context *ctx,
                                     const adasplash_attention_desc *desc, const char *fn,
                                     asp_attn_problem *pr);
/* Checks the input tensors q, k, v (and out/dout as "out"-shaped tensors, names given). */
adasplash_status asp_attn_check_tensor(const adasplash_context *ctx, const asp_attn_problem *pr,
                                       cl_mem buf, const char *name, char which);
/* The checks both enqueueing calls start with: desc (into pr), the queue, the wait list, the
 * optional small buffers of desc, then q, k, v and out. */
adasplash_status asp_attn_check_call(const adasplash_context *ctx,
                                     const adasplash_attention_desc *desc, const char *fn,
                                     cl_command_queue queue, cl_uint nwait, const cl_event *wait,
                                     cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                     asp_attn_problem *pr);

/* The tile plan (out->attn) for (family, dtype, head_dim): fits the tuning to the device, builds
 * the program and checks the kernels' limits; stored in the context's plans. */
adasplash_status asp_attn_prepare_plan(adasplash_context *ctx, asp_program_family family,
                                       adasplash_dtype dtype, int head_dim, asp_plan *out);
/* Looks up the plan without building (NOT_PREPARED if absent). */
adasplash_status asp_attn_find_plan(adasplash_context *ctx, asp_program_family family,
                                    adasplash_dtype dtype, int head_dim, asp_plan *out);

/* The head dim a program is compiled for: the next of {16, 32, 64, 96, 128, 192, 256}. */
int asp_attn_padded_head_dim(int head_dim);
const int *asp_attn_head_dim_sizes(size_t *count);

asp_cl_geom asp_attn_geom(const asp_attn_problem *pr, int tile);
/* The effective logit scale (desc->scale or 1/sqrt(head_dim)). */
float asp_attn_scale(const adasplash_attention_desc *d);

#endif /* ASP_ATTENTION_COMMON_H */
