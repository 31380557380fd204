/*
 * attn_forward.cl - the forward program of fused alpha-entmax attention: the threshold pass
 * (attn_tau) and the output pass for inference and training; with ASP_FUSE, also the output passes
 * with the refinement inside (attn_fused.clh). The output pass with the alpha gradient's terms is
 * a program of its own (attn_alpha.cl).
 * Compiled per (tile implementation, dtype, padded head dim, tile plan); an inference prepare
 * compiles only this program.
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_tau.clh"
#include "attn_out.clh"
#include "attn_fused.clh"

/* Inference and training (out2 for the backward); with the alpha gradient: attn_alpha.cl. */
ASP_ENTMAX_FORWARD_KERNEL(attn_forward, ASP_SAVE_NONE)
ASP_ENTMAX_FORWARD_KERNEL(attn_forward_grad, ASP_SAVE_GRAD)

#if ASP_FUSE
/* The output pass with the refinement inside (attn_fused.clh) for the blocks attn_tau left to it
 * (ASP_STAT_FUSE 1), the plain output pass for the others. */
#define ASP_ENTMAX_FUSED_KERNEL(NAME, SAVE)                                                     \
  __kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void NAME(                       \
      asp_attn_args a, __global const store_t *q, __global const store_t *k,                    \
      __global const store_t *v, __global store_t *o, __global const float *alpha_heads,        \
      __global const int *q_lens, __global const int *kv_lens, __global const float *rowsolver, \
      __global const float *tilemax, __global float *rowstate, __global uint *bitmap,           \
      __global uint *bitmap_t, __global float *out2, __global float *rowstats,                  \
      __global int *blockstats) {                                                               \
    __local float4 arena[(ASP_FUSE_ARENA_BYTES + 15) / 16];                                     \
    if (asp_fwd_block_stats(&a, blockstats)[ASP_STAT_FUSE] == 1)                                \
      asp_fused_forward_pass(SAVE, &a, q, k, v, o, alpha_heads, q_lens, kv_lens, rowsolver,     \
                             tilemax, bitmap, bitmap_t, rowstate, out2, rowstats, blockstats,   \
                             (__local uchar *)arena);                                           \
    else                                                                                        \
      asp_forward_pass(ASP_FORMULA_ENTMAX, SAVE, &a, q, k, v, o, alpha_heads, q_lens, kv_lens,  \
                       rowstate, bitmap, out2, 0, rowstats, blockstats, 0,                      \
                       (__local uchar *)arena);                                                 \
  }

ASP_ENTMAX_FUSED_KERNEL(attn_forward_fused, ASP_SAVE_NONE)
ASP_ENTMAX_FUSED_KERNEL(attn_forward_grad_fused, ASP_SAVE_GRAD)
#endif
