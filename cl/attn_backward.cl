/*
 * attn_backward.cl - the backward program of fused alpha-entmax attention (formulas and passes in
 * attn_grad.clh): attn_bwd_pre computes delta (and the per-row alpha gradient); then either
 * attn_bwd_fused (key blocks, dQ added atomically, finished by attn_bwd_dq_store) or the split
 * pair attn_bwd_dq + attn_bwd_dkdv (bitwise reproducible); attn_bwd_dalpha sums d(alpha) per head
 * in a fixed order. Which of the two wins depends on the device (tuning keys attn_bwd_fused,
 * nv_bwd_fused): the program compiles only the chosen one (ASP_BWD_FUSED 1: fused, 0: split), which
 * shortens the cold build.
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_out.clh"
#include "attn_grad.clh"

/* Per row: the backward's row constants (abi.h, ASP_QROW_*): the row max and tau - m, 1/l,
 * l^(alpha-2) and delta = dO . out2; and, when asked, d(alpha) of the row = dO . Z (Z saved by
 * the forward). One work-item per (batch, head, row). */
__kernel void attn_bwd_pre(asp_attn_args a, __global const store_t *dout,
                           __global const float *out2, __global const float *zalpha,
                           __global const float *alpha_heads, __global const float *rowstate,
                           __global const float *rowstats, int want_dalpha, __global float *qrows,
                           __global float *drow) {
  const asp_geom g = a.g;
  const size_t gid = get_global_id(0);
  const size_t rows = (size_t)g.batch * g.q_heads * g.q_len;
  if (gid >= rows) return;
  const int i = (int)(gid % (size_t)g.q_len);
  const int bh = (int)(gid / (size_t)g.q_len);
  const int h = bh % g.q_heads;
  const ulong base = asp_row0(a.o, bh / g.q_heads, h, i);
  const size_t fbase = gid * (size_t)g.head_dim;
  float d_o2 = 0.0f, d_z = 0.0f;
  for (int d = 0; d < g.head_dim; ++d) {
    const float go = ASP_LOAD(dout, base + (ulong)d);
    d_o2 = fma(go, out2[fbase + d], d_o2);
    if (want_dalpha) d_z = fma(go, zalpha[fbase + d], d_z);
  }
  const float alpha = asp_head_alpha(a.has_alpha, alpha_heads, h, a.alpha);
  const float l = rowstats[gid * ASP_ROWSTAT_COUNT + ASP_ROWSTAT_L];
  __global float *w = qrows + gid * ASP_QROW_WORDS;
  w[ASP_QROW_M] = rowstate[gid * ASP_ROWSTATE_COUNT + ASP_ROWSTATE_MAX];
  w[ASP_QROW_T] = rowstate[gid * ASP_ROWSTATE_COUNT + ASP_ROWSTATE_TAU];
  w[ASP_QROW_LINV] = l > 0.0f ? 1.0f / l : 0.0f;
  w[ASP_QROW_LPOW] = l > 0.0f ? exp2((alpha - 2.0f) * log2(l)) : 0.0f;
  w[ASP_QROW_DELTA] = l > 0.0f ? d_o2 : 0.0f;
  if (want_dalpha) drow[gid] = isnan(l) ? NAN : (l > 0.0f ? d_z : 0.0f);
}

/* d(alpha)[h] = sum over batch and rows, fixed order. One work-group per head. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void attn_bwd_dalpha(
    asp_attn_args a, __global const float *drow, __global float *dalpha) {
  __local float red[ASP_WG];
  const asp_geom g = a.g;
  const int h = get_group_id(0), lid = get_local_id(0);
  float acc = 0.0f;
  for (int b = 0; b < g.batch; ++b)
    for (int i = lid; i < g.q_len; i += ASP_WG)
      acc += drow[((size_t)b * g.q_heads + h) * g.q_len + i];
  red[lid] = acc;
  for (int stride = ASP_WG / 2; stride > 0; stride >>= 1) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < stride) red[lid] += red[lid + stride];
  }
  if (lid == 0) dalpha[h] = red[0];
}

#ifndef ASP_BWD_FUSED
#error "the backward program is built with one of its backwards: ASP_BWD_FUSED 0 (split) or 1"
#endif

#if !ASP_BWD_FUSED
/* Split backward: dQ per query row block. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void attn_bwd_dq(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const store_t *v, __global const store_t *dout, __global store_t *dq,
    __global const float *alpha_heads, __global const int *q_lens, __global const int *kv_lens,
    __global const float *qrows, __global const uint *bitmap) {
  __local float4 arena[(ASP_QUERY_PASS_ARENA_BYTES + 15) / 16];
  asp_query_block_pass(ASP_FORMULA_ENTMAX, &a, q, k, v, dout, dq, alpha_heads, q_lens, kv_lens,
                       qrows, bitmap, (__local uchar *)arena);
}

/* Split backward: dK and dV per key block. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void attn_bwd_dkdv(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const store_t *v, __global const store_t *dout, __global store_t *dk,
    __global store_t *dv, __global const float *alpha_heads, __global const int *q_lens,
    __global const int *kv_lens, __global const float *qrows, __global const uint *bitmap_t) {
  __local float4 arena[(ASP_KEY_PASS_ARENA_BYTES(0) + 15) / 16];
  asp_key_block_pass(ASP_FORMULA_ENTMAX, 0, &a, q, k, v, dout, dk, dv, alpha_heads, q_lens, kv_lens,
                     qrows, bitmap_t, 0, (__local uchar *)arena);
}

#else
/* Fused backward: dK, dV and the dQ contributions in one pass over the active tiles; dq_acc must
 * be zero on entry and attn_bwd_dq_store finishes dQ. */
__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void attn_bwd_fused(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const store_t *v, __global const store_t *dout, __global store_t *dk,
    __global store_t *dv, __global const float *alpha_heads, __global const int *q_lens,
    __global const int *kv_lens, __global const float *qrows, __global const uint *bitmap_t,
    __global float *dq_acc) {
  __local float4 arena[(ASP_KEY_PASS_ARENA_BYTES(1) + 15) / 16];
  asp_key_block_pass(ASP_FORMULA_ENTMAX, 1, &a, q, k, v, dout, dk, dv, alpha_heads, q_lens, kv_lens,
                     qrows, bitmap_t, dq_acc, (__local uchar *)arena);
}

/* dQ = scale * dq_acc in the caller's dtype and layout. One work-item per element; padding rows
 * received no contributions, so they get zeros; rows with non-finite scores get NaN. */
__kernel void attn_bwd_dq_store(asp_attn_args a, __global const float *dq_acc,
                                __global const float *rowstate, __global store_t *dq) {
  const asp_geom g = a.g;
  const size_t gid = get_global_id(0);
  const size_t total = (size_t)g.batch * g.q_heads * g.q_len * g.head_dim;
  if (gid >= total) return;
  const size_t row = gid / (size_t)g.head_dim;
  const int d = (int)(gid % (size_t)g.head_dim);
  const int i = (int)(row % (size_t)g.q_len);
  const int bh = (int)(row / (size_t)g.q_len);
  const float f = isnan(rowstate[row * ASP_ROWSTATE_COUNT + ASP_ROWSTATE_TAU]) ? NAN : a.scale;
  ASP_STORE(dq, asp_row0(a.q, bh / g.q_heads, bh % g.q_heads, i) + (ulong)d, dq_acc[gid] * f);
}
#endif /* ASP_BWD_FUSED */
