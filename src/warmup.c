/*
 * warmup.c - adasplash_warmup: compiles (or loads from the disk cache) every kernel variant the
 * library can use on the context's device: the row operator, the fused attention (per alpha class)
 * and softmax flash programs for every dtype and padded head dim, the decode program
 * (attn_decode.cl) and the dense path's utility program.
 */
#include <string.h>

#include "attention_internal.h"
#include "entmax_rows.h"

adasplash_status adasplash_warmup(adasplash_context *ctx) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "adasplash_warmup: ctx is NULL");
  static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_F16, ADASPLASH_BF16};
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; ++i) {
    adasplash_status st = asp_rows_prepare(ctx, dtypes[i]);
    if (st != ADASPLASH_SUCCESS) return st;
    /* Head dims are padded to a few sizes: one prepare per size covers them all. */
    size_t nsizes;
    const int *sizes = asp_attn_head_dim_sizes(&nsizes);
    for (size_t h = 0; h < nsizes; ++h) {
      adasplash_attention_desc d;
      adasplash_attention_desc_init(&d);
      d.dtype = dtypes[i];
      d.head_dim = sizes[h];
      d.q_len = d.kv_len = 1; /* any valid shape: the kernels do not depend on lengths */
      static const adasplash_attention_algorithm algos[] = {
          ADASPLASH_ATTN_ENTMAX, ADASPLASH_ATTN_SOFTMAX_FLASH, ADASPLASH_ATTN_ENTMAX_DENSE};
      /* The entmax programs per alpha class (cl/abi.h): 1.5, 2 and any other alpha. */
      static const float alphas[] = {1.5f, 2.0f, 1.25f};
      for (size_t a = 0; a < sizeof algos / sizeof algos[0]; ++a) {
        d.algorithm = algos[a];
        /* Every kernel: the alpha gradient's output pass is a program of its own. */
        d.flags = algos[a] == ADASPLASH_ATTN_ENTMAX ? ADASPLASH_ATTN_SAVE_ALPHA_GRAD : 0;
        const size_t nalphas = algos[a] == ADASPLASH_ATTN_ENTMAX ? 3 : 1;
        for (size_t al = 0; al < nalphas && st == ADASPLASH_SUCCESS; ++al) {
          d.alpha = alphas[al];
          st = adasplash_attention_prepare(ctx, &d);
        }
        /* The dense path is optional (CLBlast); everything else must build. */
        if (st == ADASPLASH_ERROR_UNSUPPORTED && algos[a] == ADASPLASH_ATTN_ENTMAX_DENSE) {
          st = ADASPLASH_SUCCESS;
          continue;
        }
        if (st != ADASPLASH_SUCCESS) return st;
      }
      /* The decode kernels, also where decode_max_q = 0 keeps them out of the attention prepare
       * (the paged calls run them whatever the tuning). */
      /* Where they do not fit the device (asp_decode_supported), neither they nor the shard
       * kernels, which use decode_pv, are available: nothing to warm up. */
      if (!asp_decode_supported(ctx, dtypes[i], sizes[h])) continue;
      st = asp_decode_prepare(ctx, dtypes[i], sizes[h]);
      if (st != ADASPLASH_SUCCESS) return st;
      /* The sequence-parallel shard kernels (one program per dtype). */
      st = asp_shard_prepare(ctx, dtypes[i], sizes[h]);
      if (st != ADASPLASH_SUCCESS) return st;
    }
  }
  return ADASPLASH_SUCCESS;
}
