/* reference.h - Independent double-precision reference for alpha-entmax and entmax attention.
 *
 * Ground truth for the OpenCL library (tests, adasplash-tune's verification). Pure C11 + libm.
 * Simple and exact rather than fast. Conventions follow the `entmax` Python package: for logits z
 * and 1 < alpha <= 2, x = (alpha - 1) * z is the "scaled space", p_j = [x_j - tau]_+^(1/(alpha-1))
 * with tau chosen so that sum_j p_j = 1. All exported symbols use the prefix ref_. */
#ifndef ADASPLASH_TESTS_REFERENCE_H_
#define ADASPLASH_TESTS_REFERENCE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Row entmax. z: n logits; mask: NULL (all valid) or n bytes, nonzero = valid. An entry with
   z = -INFINITY is treated as masked too. Writes p[n] (masked entries 0). Returns tau in scaled
   space.
   - no valid entry: p = 0 everywhere, returns +INFINITY.
   - any valid entry NaN or +INFINITY: valid entries of p are NaN, masked are 0, returns NaN.
   alpha = 1.5 and alpha = 2 exactly by sorting, other alpha by >= 100 bisection halvings.
   Requires 1 < alpha <= 2 (alpha <= 1 or NaN is treated like a NaN row; alpha > 2 is computed by
   bisection but is outside the validated range). */
double ref_entmax_row(const double *z, const unsigned char *mask, size_t n, double alpha,
                      double *p);
/* Same but forces the bisection path (for cross-checking the sort path). */
double ref_entmax_row_bisect(const double *z, const unsigned char *mask, size_t n, double alpha,
                             double *p);
/* Backward for one row: p = forward output, dp = upstream gradient. Writes dz[n] (0 off support).
   If dalpha is non-NULL writes the row's dL/dalpha there. All-zero p (no valid entry) gives
   dz = 0 and dalpha = 0. A NaN in p gives NaN dz on entries where p is not 0, and NaN dalpha. */
void ref_entmax_row_backward(const double *p, const double *dp, size_t n, double alpha, double *dz,
                             double *dalpha);

/* Attention. Tensors are contiguous [batch][heads][len][head_dim] double arrays. */
typedef struct ref_attention_problem {
  int batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  int causal;          /* bottom-right aligned, see below */
  const int *q_lens;   /* [batch] valid query rows per batch (right padding), NULL = q_len */
  const int *kv_lens;  /* [batch] valid keys per batch (right padding), NULL = kv_len */
  const double *alpha; /* [q_heads] alpha per query head */
  double scale;        /* logit scale; 0 means 1/sqrt(head_dim) */
} ref_attention_problem;

/* Semantics: query head h reads kv head h / (q_heads / kv_heads) (GQA). For batch b let
   Lq = q_lens ? q_lens[b] : q_len and Lk = kv_lens ? kv_lens[b] : kv_len. Query row i sees key j
   iff i < Lq and j < Lk and (!causal || j <= i + (Lk - Lq)). Logit z_ij = scale * dot(q_i, k_j),
   p_i = entmax_alpha(z_i over visible keys), out_i = sum_j p_ij v_j. Rows with no visible key
   (including padding rows i >= Lq) get out = 0, tau = +INFINITY and zero gradients. */

/* out [B][Hq][q_len][D]; tau (optional, may be NULL) [B][Hq][q_len] in scaled space;
   p (optional, may be NULL) [B][Hq][q_len][kv_len] probabilities (0 where not visible).
   Returns 0, or -1 on bad arguments/alloc failure. */
int ref_attention_forward(const ref_attention_problem *pr, const double *q, const double *k,
                          const double *v, double *out, double *tau, double *p);
/* Gradients of L = sum(dout * out): dq like q, dk/dv like k/v (summed over the GQA group),
   dalpha [q_heads] summed over batch and rows. Any of dq, dk, dv, dalpha may be NULL (not
   computed). Returns 0 or -1. */
int ref_attention_backward(const ref_attention_problem *pr, const double *q, const double *k,
                           const double *v, const double *dout, double *dq, double *dk, double *dv,
                           double *dalpha);
/* Block sparsity from p as produced by ref_attention_forward for one (b, h): p_bh points at
   [q_len][kv_len]. Tiles are tile_m x tile_n. A tile is "visible" if it contains at least one
   visible (i, j) pair (pr's visibility rule), "empty" if all its p are 0. Writes flags
   [ceil(q_len/tile_m)][ceil(kv_len/tile_n)] into tile_empty (may be NULL; 1 = visible and empty,
   0 otherwise) and returns (#visible empty tiles)/(#visible tiles) (0 if none visible).
   Returns -1.0 on bad arguments. */
double ref_block_sparsity(const ref_attention_problem *pr, const double *p_bh, int b, int tile_m,
                          int tile_n, unsigned char *tile_empty);

/* Round a double to the nearest IEEE binary16 / bfloat16 value (round to nearest even, overflow
   to inf, NaN kept), returned as double. Independent of any library code. */
double ref_round_f16(double x);
double ref_round_bf16(double x);

/* Deterministic PRNG for tests: splitmix64 state, uniform in [0,1) and standard normal
   (Box-Muller, one normal per two uniforms; no cached second value). */
typedef struct ref_rng {
  unsigned long long s;
} ref_rng;
void ref_rng_seed(ref_rng *r, unsigned long long seed);
double ref_rng_uniform(ref_rng *r);
double ref_rng_normal(ref_rng *r);

#ifdef __cplusplus
}
#endif

#endif /* ADASPLASH_TESTS_REFERENCE_H_ */
