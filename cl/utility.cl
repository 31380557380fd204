/*
 * utility.cl - small kernels around the dense (CLBlast) baseline: packing tensors of any layout
 * and dtype into contiguous fp32 and back, the visible key count of every row, per-row alpha from
 * per-head alpha, and per-head sums.
 */
#include "common.clh"
#include "geometry.clh"

/* dst[((b*H + h)*L + i)*D + d] = src at layout (fp32). One work-item per element. */
__kernel void pack_f32(__global const store_t *src, asp_layout l, int batch, int heads, int len,
                       int head_dim, __global float *dst) {
  const size_t gid = get_global_id(0);
  const size_t n = (size_t)batch * heads * len * head_dim;
  if (gid >= n) return;
  const int d = (int)(gid % (size_t)head_dim);
  const size_t row = gid / (size_t)head_dim;
  const int i = (int)(row % (size_t)len);
  const int bh = (int)(row / (size_t)len);
  dst[gid] = ASP_LOAD(src, asp_row0(l, bh / heads, bh % heads, i) + (ulong)d);
}

/* The reverse: contiguous fp32 to layout and dtype, times factor. */
__kernel void unpack_f32(__global const float *src, asp_layout l, int batch, int heads, int len,
                         int head_dim, float factor, __global store_t *dst) {
  const size_t gid = get_global_id(0);
  const size_t n = (size_t)batch * heads * len * head_dim;
  if (gid >= n) return;
  const int d = (int)(gid % (size_t)head_dim);
  const size_t row = gid / (size_t)head_dim;
  const int i = (int)(row % (size_t)len);
  const int bh = (int)(row / (size_t)len);
  ASP_STORE(dst, asp_row0(l, bh / heads, bh % heads, i) + (ulong)d, src[gid] * factor);
}

/* Visible keys of every query row [B, Hq, q_len]; per-row alpha from per-head alpha (optional). */
__kernel void row_params(asp_geom g, __global const int *q_lens, __global const int *kv_lens,
                         __global const float *alpha_heads, int has_alpha, __global int *visible,
                         __global float *alpha_rows) {
  const size_t gid = get_global_id(0);
  const size_t rows = (size_t)g.batch * g.q_heads * g.q_len;
  if (gid >= rows) return;
  const int i = (int)(gid % (size_t)g.q_len);
  const int bh = (int)(gid / (size_t)g.q_len);
  const int b = bh / g.q_heads, h = bh % g.q_heads;
  const int lq = asp_batch_len(q_lens, g.has_qlens, b, g.q_len);
  const int lk = asp_batch_len(kv_lens, g.has_kvlens, b, g.kv_len);
  visible[gid] = asp_visible(&g, i, lq, lk);
  if (has_alpha) alpha_rows[gid] = alpha_heads[h];
}

/* out[h] = sum over batch and rows of values [B, Hq, q_len], fixed order (one work-item per head;
 * a baseline path, not a hot one). */
__kernel void sum_per_head(asp_geom g, __global const float *values, __global float *out) {
  const int h = get_global_id(0);
  if (h >= g.q_heads) return;
  float s = 0.0f;
  for (int b = 0; b < g.batch; ++b)
    for (int i = 0; i < g.q_len; ++i) s += values[((size_t)b * g.q_heads + h) * g.q_len + i];
  out[h] = s;
}
