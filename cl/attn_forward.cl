/*
 * attn_forward.cl - the forward program of fused alpha-entmax attention: the threshold pass
 * (attn_tau) and the output pass for inference, training and training with the alpha gradient.
 * Compiled per (tile implementation, dtype, padded head dim, tile plan); an inference prepare
 * compiles only this program.
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_tau.clh"
#include "attn_out.clh"

#define ASP_ENTMAX_FORWARD_KERNEL(NAME, SAVE)                                                  \
  __kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void NAME(                      \
      asp_attn_args a, __global const store_t *q, __global const store_t *k,                   \
      __global const store_t *v, __global store_t *o, __global const float *alpha_heads,       \
      __global const int *q_lens, __global const int *kv_lens, __global const float *rowstate, \
      __global const uint *bitmap, __global float *out2, __global float *zalpha,               \
      __global float *rowstats, __global int *blockstats) {                                    \
    __local float4 arena[(ASP_OUT_ARENA_BYTES + 15) / 16];                                     \
    asp_forward_pass(ASP_FORMULA_ENTMAX, SAVE, &a, q, k, v, o, alpha_heads, q_lens, kv_lens,   \
                     rowstate, bitmap, out2, zalpha, rowstats, blockstats, 0,                  \
                     (__local uchar *)arena);                                                  \
  }

/* Inference, training (out2 for the backward) and training with the alpha gradient (Z too). */
ASP_ENTMAX_FORWARD_KERNEL(attn_forward, ASP_SAVE_NONE)
ASP_ENTMAX_FORWARD_KERNEL(attn_forward_grad, ASP_SAVE_GRAD)
ASP_ENTMAX_FORWARD_KERNEL(attn_forward_alpha, ASP_SAVE_ALPHA_GRAD)
