/*
 * attention_internal.h - the saved/workspace layout of the fused entmax attention and the entry
 * points of the baseline algorithms (softmax flash, dense CLBlast) that the public attention calls
 * dispatch to.
 */
#ifndef ASP_ATTENTION_INTERNAL_H
#define ASP_ATTENTION_INTERNAL_H

#include "attention_common.h"
#include "workspace.h"

/* Sections of the saved buffer and the workspace. */
enum {
  ASP_SEC_HEADER = 0, /* magic + fingerprint (saved only) */
  ASP_SEC_ROWSTATE,   /* [B,Hq,q_len] x {tau, solver's sum} */
  ASP_SEC_ROWSTATS,   /* [B,Hq,q_len] x {measured sum of p, H} */
  ASP_SEC_BITMAP,     /* [B,Hq,nqb,wk] bits: active tiles per row block */
  ASP_SEC_BITMAP_T,   /* [B,Hq,nkb,wq] the transpose */
  ASP_SEC_BLOCKSTATS, /* [B,Hq,nqb,8] ints */
  ASP_SEC_OUT2,       /* [B,Hq,q_len,head_dim] fp32: sum(s v)/sum(s) */
  ASP_SEC_ZALPHA,     /* [B,Hq,q_len,head_dim] fp32: Z with dL/dalpha_row = dO . Z (attn_fwd.clh) */
  ASP_SEC_TILEMAX,    /* workspace: [B,Hq,nqb,nseg,nkb] score max per tile and row segment */
  ASP_SEC_DELTA,      /* workspace (backward): [B,Hq,q_len][ASP_QROW_WORDS] row constants */
  ASP_SEC_DROW,       /* workspace (backward): [B,Hq,q_len] d(alpha) per row */
  ASP_SEC_DQACC,      /* workspace (fused backward): [B,Hq,q_len,head_dim] fp32 dQ sums */
  ASP_SEC_DENSE_ROWS, /* workspace (NVIDIA forward): [B,Hq,q_len] x ASP_DENSE_ROW_WORDS */
  ASP_SEC_DENSE_HIST, /* workspace (NVIDIA forward): [B,Hq,q_len] x ASP_DENSE_HIST_WORDS */
  ASP_SEC_ROWSOLVER,  /* workspace (fused forward): [B,Hq,q_len] x ASP_ROWSOLVER_WORDS */
  ASP_SEC_COUNT
};

typedef struct asp_attn_buffers {
  size_t offset[ASP_SEC_COUNT];    /* in the saved buffer */
  size_t ws_offset[ASP_SEC_COUNT]; /* in the workspace */
  size_t size[ASP_SEC_COUNT];
  int in_saved[ASP_SEC_COUNT];
  size_t saved_bytes;
  size_t ws_train_bytes, ws_infer_bytes, ws_bwd_bytes;
} asp_attn_buffers;

void asp_attn_layout(const adasplash_context *ctx, const asp_attn_problem *pr, const asp_plan *plan,
                     asp_attn_buffers *lay);
size_t asp_attn_workspace_need(const asp_attn_buffers *lay);
uint32_t asp_attn_fingerprint(const asp_attn_problem *pr, int tile);

/* Bytes of the saved state and of the workspace one algorithm needs for a problem. */
typedef struct asp_state_sizes {
  size_t saved, workspace;
} asp_state_sizes;

/* The baselines: softmax flash (softmax_flash.c) and dense CLBlast entmax (dense.c). */
#define ASP_DECLARE_ATTENTION_ALGORITHM(prefix)                                                  \
  adasplash_status prefix##_prepare(adasplash_context *ctx, const asp_attn_problem *pr);         \
  void prefix##_sizes(const adasplash_context *ctx, const asp_attn_problem *pr,                  \
                      asp_state_sizes *sizes);                                                   \
  adasplash_status prefix##_forward(adasplash_context *ctx, const asp_attn_problem *pr,          \
                                    asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out,  \
                                    cl_mem saved, cl_mem workspace);                             \
  adasplash_status prefix##_backward(adasplash_context *ctx, const asp_attn_problem *pr,         \
                                     asp_chain *chain, cl_mem q, cl_mem k, cl_mem v, cl_mem out, \
                                     cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv, \
                                     cl_mem dalpha, cl_mem workspace);

/* The split-KV decode path of the entmax forward (attention_decode.c). kv: a paged KV cache (K and
 * V layouts then address pages: batch stride = page stride, seq = row in the page), or NULL. */
typedef struct asp_decode_kv {
  cl_mem table; /* int32 [batch, max_blocks] */
  int page_size, max_blocks, num_pages;
} asp_decode_kv;

/* Compiles (or finds) the decode program for dtype and head_dim and the fp32 row program. */
adasplash_status asp_decode_prepare(adasplash_context *ctx, adasplash_dtype dtype, int head_dim);
/* 1 when both are prepared. */
int asp_decode_prepared(adasplash_context *ctx, const asp_attn_problem *pr);
/* 1 when the decode kernels for dtype and head_dim fit the device's work-items and local memory
 * (the scores kernel's histogram windows do not shrink: large rows_bins or head dims may not). */
int asp_decode_supported(const adasplash_context *ctx, adasplash_dtype dtype, int head_dim);
/* 1 when the decode workspace of pr fits one allocation of the device. */
int asp_decode_fits(const adasplash_context *ctx, const asp_attn_problem *pr);
/* 1 when an inference forward of pr takes the decode path: the entmax algorithm, q_len at most the
 * tuning's decode_max_q, the workspace fits and the decode kernels fit the device. */
int asp_decode_wanted(const adasplash_context *ctx, const asp_attn_problem *pr);
size_t asp_decode_workspace_bytes(const adasplash_context *ctx, const asp_attn_problem *pr);
adasplash_status asp_decode_forward(adasplash_context *ctx, const asp_attn_problem *pr,
                                    const asp_decode_kv *kv, asp_chain *chain, cl_mem q, cl_mem k,
                                    cl_mem v, cl_mem out, cl_mem workspace, const char *fn);
/* Splits of decode_pv for kv_len keys. */
size_t asp_decode_nsplit(const adasplash_context *ctx, int kv_len);
/* decode_pv of the decode program prepared for pr's dtype and head dim, with the kernel
 * parameters a (a->v: the layout of v; a->g.kv_len: keys and row stride of p): part [nsplit, rows,
 * head_dim] = per split of keys, the sum of p v over the split's nonzero p (keys below
 * visible[row]). Nothing is enqueued for kv_len 0. Used by the sequence-parallel shards. */
adasplash_status asp_decode_pv_sum(adasplash_context *ctx, const asp_attn_problem *pr,
                                   const asp_attn_args *a, asp_chain *chain, cl_mem v, cl_mem p,
                                   cl_mem visible, cl_mem part);

/* Compiles (or finds) the sequence-parallel shard program for dtype (attention_shard.c) and the
 * decode and fp32 row programs the shard calls also run. */
adasplash_status asp_shard_prepare(adasplash_context *ctx, adasplash_dtype dtype, int head_dim);

ASP_DECLARE_ATTENTION_ALGORITHM(asp_softmax)
ASP_DECLARE_ATTENTION_ALGORITHM(asp_dense)

#endif /* ASP_ATTENTION_INTERNAL_H */
