/*
 * attn_harness.h - builds attention test problems (inputs, layouts, valid lengths, per-head alpha),
 * runs the library on them through device buffers and computes the double-precision reference.
 */
#ifndef ASP_ATTN_HARNESS_H
#define ASP_ATTN_HARNESS_H

#include <stddef.h>

#include "adasplash.h"
#include "reference.h"

typedef struct attn_case {
  int batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  int causal;
  adasplash_dtype dtype;
  double alpha;       /* used when per_head_alpha is 0 */
  int per_head_alpha; /* alpha per head from {1.5, 2, 1.3, 1.75, ...} */
  int varlen;         /* random q_lens / kv_lens (bottom-right causal alignment per batch) */
  int bshd;           /* [batch, seq, heads, head_dim] layouts with an offset */
  double scale;       /* 0: 1/sqrt(head_dim) */
  double beta;        /* > 0: locality generator with this beta; 0: N(0,1) inputs */
  int alpha_grad;     /* forward saves what d(alpha) needs */
  adasplash_attention_algorithm algorithm;
  unsigned long long seed;
} attn_case;

typedef struct attn_problem {
  attn_case c;
  adasplash_attention_desc desc;
  ref_attention_problem ref;
  double *alpha_h; /* [q_heads] */
  float *alpha_f;  /* [q_heads] */
  int *q_lens, *kv_lens;
  double *q, *k, *v;              /* contiguous BHSD doubles, already rounded to the dtype */
  size_t q_n, kv_n;               /* elements of q (and out), of k (and v) */
  void *q_host, *k_host, *v_host; /* in the desc layouts and dtype */
  size_t q_bytes, k_bytes, v_bytes, o_bytes;
} attn_problem;

/* $TEST_DTYPE (f16 or bf16) replaces the storage of every case: runs the whole battery on a path
 * that only 16-bit storage takes (the NVIDIA tensor-core path, emulated on other devices). */
attn_case attn_case_dtype_override(attn_case c);

/* Builds inputs and the descriptor (with device buffers for alpha / lengths when needed). */
void attn_problem_make(adasplash_context *ctx, const attn_case *c, attn_problem *p);
void attn_problem_free(attn_problem *p);
/* A label for messages. */
void attn_case_label(const attn_case *c, char *out, size_t size);

/* Packs a contiguous BHSD double tensor into a host array of the given layout and dtype, and
 * unpacks back. which: 'q' (q/out/dout layout), 'k' or 'v'. */
void attn_pack(const attn_problem *p, char which, const double *src, void *dst);
void attn_unpack(const attn_problem *p, char which, const void *src, double *dst);

/* Device run of forward (and optionally backward). Results are unpacked to BHSD doubles. */
typedef struct attn_run {
  double *out;           /* [q_n] */
  double *out_infer;     /* [q_n]: the same forward without a saved buffer (forward-only runs) */
  double *dq, *dk, *dv;  /* when backward ran */
  float *dalpha;         /* [q_heads] when requested */
  float *tau;            /* [B*Hq*q_len] (fused entmax only) */
  unsigned char *active; /* bitmap (fused entmax only) */
  adasplash_attention_stats stats;
  int tile;
  int skipped; /* the algorithm is not available in this build (dense without CLBlast) */
} attn_run;

/* dout: BHSD doubles (NULL: forward only). want_dalpha needs c.alpha_grad. */
void attn_run_library(adasplash_context *ctx, attn_problem *p, const double *dout, int want_dalpha,
                      attn_run *r);
void attn_run_free(attn_run *r);

/* The NVIDIA tensor-core path (ADASPLASH_PATH=nvidia, or auto on such a device) rounds the
 * factors P, s = p^(2-alpha), p ln p and dS to the 16-bit storage format before its products
 * (fp32 accumulation); fp32 storage and head dims above 128 stay on the portable path, which
 * multiplies in fp32. 1 when this run's products round, with *u the format's unit roundoff. */
int attn_products_round(adasplash_context *ctx, const attn_case *c, double *u);
/* The same for any call of a dtype and head dim (tests without an attn_case). */
int attn_products_round_unit(adasplash_context *ctx, adasplash_dtype dtype, int head_dim,
                             double *u);

/* Normalised probabilities [B*Hq*q_len][kv_len] of the softmax baseline (0 where not visible). */
void attn_softmax_probs(const attn_problem *p, double *probs);

/* First-order magnitudes M of the error that rounding the products' factors adds (|error| <= u M):
 * probs as from ref_attention_forward (entmax) or attn_softmax_probs (softmax). mo: the output
 * (rows x head_dim, BHSD); with dout, mdq, mdk, mdv like the gradients and mda per head (entmax
 * with the alpha gradient). Any output may be NULL. */
void attn_rounding_magnitudes(const attn_problem *p, const double *probs, const double *dout,
                              double *mo, double *mdq, double *mdk, double *mdv, double *mda);

#endif /* ASP_ATTN_HARNESS_H */
