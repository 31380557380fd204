/*
 * softmax_flash.cl - dense softmax flash attention (forward and backward): the vendor-neutral
 * baseline the benchmarks compare against on the same device. The same passes as the entmax
 * kernels (attn_out.clh, attn_grad.clh) with the softmax formula: online softmax over every
 * visible key tile; the backward recomputes P from the saved log-sum-exp (FlashAttention-2 style,
 * split into a dQ and a dK/dV kernel).
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_out.clh"
#include "attn_grad.clh"

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_flash_forward(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const store_t *v, __global store_t *o, __global const int *q_lens,
    __global const int *kv_lens, int save, __global float *lse) {
  __local float4 arena[(ASP_OUT_ARENA_BYTES + 15) / 16];
  asp_forward_pass(ASP_FORMULA_SOFTMAX, save, &a, q, k, v, o, 0, q_lens, kv_lens, 0, 0, 0, 0, 0, 0,
                   lse, (__local uchar *)arena);
}

/* The backward's row constants (abi.h, ASP_QROW_*): m = 0, t = the log-sum-exp, delta = dO . O. */
__kernel void softmax_flash_bwd_pre(asp_attn_args a, __global const store_t *o,
                                    __global const store_t *dout, __global const float *lse,
                                    __global float *qrows) {
  const asp_geom g = a.g;
  const size_t gid = get_global_id(0);
  const size_t rows = (size_t)g.batch * g.q_heads * g.q_len;
  if (gid >= rows) return;
  const int i = (int)(gid % (size_t)g.q_len);
  const int bh = (int)(gid / (size_t)g.q_len);
  const ulong base = asp_row0(a.o, bh / g.q_heads, bh % g.q_heads, i);
  float s = 0.0f;
  for (int d = 0; d < g.head_dim; ++d)
    s = fma(ASP_LOAD(dout, base + (ulong)d), ASP_LOAD(o, base + (ulong)d), s);
  __global float *w = qrows + gid * ASP_QROW_WORDS;
  w[ASP_QROW_M] = 0.0f;
  w[ASP_QROW_T] = lse[gid];
  w[ASP_QROW_LINV] = 0.0f;
  w[ASP_QROW_LPOW] = 0.0f;
  w[ASP_QROW_DELTA] = s;
}

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_flash_bwd_dq(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const store_t *v, __global const store_t *dout, __global store_t *dq,
    __global const int *q_lens, __global const int *kv_lens, __global const float *qrows) {
  __local float4 arena[(ASP_QUERY_PASS_ARENA_BYTES + 15) / 16];
  asp_query_block_pass(ASP_FORMULA_SOFTMAX, &a, q, k, v, dout, dq, 0, q_lens, kv_lens, qrows, 0,
                       (__local uchar *)arena);
}

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_flash_bwd_dkdv(
    asp_attn_args a, __global const store_t *q, __global const store_t *k,
    __global const store_t *v, __global const store_t *dout, __global store_t *dk,
    __global store_t *dv, __global const int *q_lens, __global const int *kv_lens,
    __global const float *qrows) {
  __local float4 arena[(ASP_KEY_PASS_ARENA_BYTES(0) + 15) / 16];
  asp_key_block_pass(ASP_FORMULA_SOFTMAX, 0, &a, q, k, v, dout, dk, dv, 0, q_lens, kv_lens, qrows,
                     0, 0, (__local uchar *)arena);
}
