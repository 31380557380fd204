/*
 * softmax_flash.cl - dense softmax flash attention (forward and backward) built on the same tile
 * skeleton as the entmax kernels: the vendor-neutral baseline the benchmarks compare against on the
 * same device. Online softmax over every visible key tile; the backward recomputes P from the
 * saved log-sum-exp (FlashAttention-2 style, split into a dQ and a dK/dV kernel).
 */
#include "common.clh"
#include "tile.clh"

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_flash_forward(
    __global const store_t *q, __global const store_t *k, __global const store_t *v,
    __global store_t *o, asp_layout lq, asp_layout lk, asp_layout lv, asp_layout lo, asp_geom g,
    float scale, __global const int *q_lens, __global const int *kv_lens, int save,
    __global float *lse) {
  __local float As[ASP_DK * ASP_TP], Bs[ASP_DK * ASP_TP];
  __local float P[ASP_T * ASP_TP];
  __local float red[ASP_T * ASP_TC];
  __local float lsum[ASP_T], fac[ASP_T], mrow[ASP_T];

  const int qb = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  const int lid = get_local_id(0), tr = lid / ASP_TC, tc = lid % ASP_TC;
  const int hk = h / (g.q_heads / g.kv_heads);
  const int lq_b = asp_batch_len(q_lens, g.has_qlens, b, g.q_len);
  const int lk_b = asp_batch_len(kv_lens, g.has_kvlens, b, g.kv_len);
  const int i0 = qb * ASP_T;
  const int rows_here = asp_clamp_int(lq_b - i0, 0, ASP_T);
  const int rows_out = asp_clamp_int(g.q_len - i0, 0, ASP_T);
  const int max_nv = rows_here > 0 ? asp_visible(&g, i0 + rows_here - 1, lq_b, lk_b) : 0;
  const int nkt = (max_nv + ASP_T - 1) / ASP_T;
  int nv[ASP_RM];
  float m_i[ASP_RM], l_i[ASP_RM];
  for (int i = 0; i < ASP_RM; ++i) {
    const int r = tr + ASP_TR * i;
    nv[i] = r < rows_here ? asp_visible(&g, i0 + r, lq_b, lk_b) : 0;
    m_i[i] = -INFINITY;
    l_i[i] = 0.0f;
  }
  float acc_o[ASP_RM * ASP_OC];
  for (int e = 0; e < ASP_RM * ASP_OC; ++e) acc_o[e] = 0.0f;
  float acc[ASP_RM * ASP_CN];
  const ulong q_base = asp_row0(lq, b, h, i0);
  for (int kt = 0; kt < nkt; ++kt) {
    const int j0 = kt * ASP_T;
    const int kv_rows = asp_min_int(ASP_T, lk_b - j0);
    asp_tile_dot(acc, q, q_base, lq.ss, rows_here, k, asp_row0(lk, b, hk, j0), lk.ss, kv_rows,
                 g.head_dim, As, Bs, lid, tr, tc);
    for (int i = 0; i < ASP_RM; ++i) {
      float lm = -INFINITY;
      for (int j = 0; j < ASP_CN; ++j) {
        const int c = tc + ASP_TC * j;
        const float x = (j0 + c < nv[i]) ? acc[i * ASP_CN + j] * scale : -INFINITY;
        acc[i * ASP_CN + j] = x;
        lm = fmax(lm, x);
      }
      red[(tr + ASP_TR * i) * ASP_TC + tc] = lm;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int i = 0; i < ASP_RM; ++i) {
      const int r = tr + ASP_TR * i;
      float m_new = m_i[i];
      for (int c = 0; c < ASP_TC; ++c) m_new = fmax(m_new, red[r * ASP_TC + c]);
      const float corr = m_new == -INFINITY ? 1.0f : exp(m_i[i] - m_new);
      float ls = 0.0f;
      for (int j = 0; j < ASP_CN; ++j) {
        const float x = acc[i * ASP_CN + j];
        const float p = x == -INFINITY ? 0.0f : exp(x - m_new);
        ls += p;
        P[r * ASP_TP + tc + ASP_TC * j] = p;
      }
      l_i[i] = l_i[i] * corr + ls;
      for (int kk = 0; kk < ASP_OC; ++kk) acc_o[i * ASP_OC + kk] *= corr;
      m_i[i] = m_new;
    }
    asp_tile_pv(acc_o, P, v, asp_row0(lv, b, hk, j0), lv.ss, kv_rows, g.head_dim, As, lid, tr, tc);
  }
  asp_rows_total(l_i, red, lsum, lid, tr, tc);
  if (tc == 0)
    for (int i = 0; i < ASP_RM; ++i) mrow[tr + ASP_TR * i] = m_i[i];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int r = lid; r < ASP_T; r += ASP_WG) fac[r] = lsum[r] > 0.0f ? 1.0f / lsum[r] : 0.0f;
  barrier(CLK_LOCAL_MEM_FENCE);
  asp_store_rows(acc_o, fac, o, asp_row0(lo, b, h, i0), lo.ss, rows_out, g.head_dim, tr, tc);
  if (save)
    for (int r = lid; r < rows_out; r += ASP_WG)
      lse[((size_t)b * g.q_heads + h) * g.q_len + i0 + r] =
          lsum[r] > 0.0f ? mrow[r] + log(lsum[r]) : INFINITY;
}

/* delta = dO . O per row. */
__kernel void softmax_flash_bwd_pre(__global const store_t *o, __global const store_t *dout,
                                    asp_layout lo, asp_geom g, __global float *delta) {
  const size_t gid = get_global_id(0);
  const size_t rows = (size_t)g.batch * g.q_heads * g.q_len;
  if (gid >= rows) return;
  const int i = (int)(gid % (size_t)g.q_len);
  const int bh = (int)(gid / (size_t)g.q_len);
  const ulong base = asp_row0(lo, bh / g.q_heads, bh % g.q_heads, i);
  float s = 0.0f;
  for (int d = 0; d < g.head_dim; ++d)
    s = fma(ASP_LOAD(dout, base + (ulong)d), ASP_LOAD(o, base + (ulong)d), s);
  delta[gid] = s;
}

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_flash_bwd_dq(
    __global const store_t *q, __global const store_t *k, __global const store_t *v,
    __global const store_t *dout, __global store_t *dq, asp_layout lq, asp_layout lk, asp_layout lv,
    asp_layout lo, asp_geom g, float scale, __global const int *q_lens, __global const int *kv_lens,
    __global const float *lse, __global const float *delta) {
  __local float As[ASP_DK * ASP_TP], Bs[ASP_DK * ASP_TP];
  __local float P[ASP_T * ASP_TP];
  __local float lrow[ASP_T], drow[ASP_T], fq[ASP_T];
  const int qb = get_group_id(0), h = get_group_id(1), b = get_group_id(2);
  const int lid = get_local_id(0), tr = lid / ASP_TC, tc = lid % ASP_TC;
  const int hk = h / (g.q_heads / g.kv_heads);
  const int lq_b = asp_batch_len(q_lens, g.has_qlens, b, g.q_len);
  const int lk_b = asp_batch_len(kv_lens, g.has_kvlens, b, g.kv_len);
  const int i0 = qb * ASP_T;
  const int rows_here = asp_clamp_int(lq_b - i0, 0, ASP_T);
  const int rows_out = asp_clamp_int(g.q_len - i0, 0, ASP_T);
  const size_t row0 = ((size_t)b * g.q_heads + h) * g.q_len + i0;
  for (int r = lid; r < ASP_T; r += ASP_WG) {
    lrow[r] = r < rows_here ? lse[row0 + r] : INFINITY;
    drow[r] = r < rows_here ? delta[row0 + r] : 0.0f;
    fq[r] = scale;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  const int max_nv = rows_here > 0 ? asp_visible(&g, i0 + rows_here - 1, lq_b, lk_b) : 0;
  const int nkt = (max_nv + ASP_T - 1) / ASP_T;
  int nv[ASP_RM];
  for (int i = 0; i < ASP_RM; ++i) {
    const int r = tr + ASP_TR * i;
    nv[i] = r < rows_here ? asp_visible(&g, i0 + r, lq_b, lk_b) : 0;
  }
  float acc_dq[ASP_RM * ASP_OC];
  for (int e = 0; e < ASP_RM * ASP_OC; ++e) acc_dq[e] = 0.0f;
  float sx[ASP_RM * ASP_CN], dp[ASP_RM * ASP_CN];
  const ulong q_base = asp_row0(lq, b, h, i0), o_base = asp_row0(lo, b, h, i0);
  for (int kt = 0; kt < nkt; ++kt) {
    const int j0 = kt * ASP_T;
    const int kv_rows = asp_min_int(ASP_T, lk_b - j0);
    asp_tile_dot(sx, q, q_base, lq.ss, rows_here, k, asp_row0(lk, b, hk, j0), lk.ss, kv_rows,
                 g.head_dim, As, Bs, lid, tr, tc);
    asp_tile_dot(dp, dout, o_base, lo.ss, rows_here, v, asp_row0(lv, b, hk, j0), lv.ss, kv_rows,
                 g.head_dim, As, Bs, lid, tr, tc);
    for (int i = 0; i < ASP_RM; ++i) {
      const int r = tr + ASP_TR * i;
      for (int j = 0; j < ASP_CN; ++j) {
        const int c = tc + ASP_TC * j;
        float ds = 0.0f;
        if (j0 + c < nv[i]) {
          const float p = exp(sx[i * ASP_CN + j] * scale - lrow[r]);
          ds = p * (dp[i * ASP_CN + j] - drow[r]);
        }
        P[r * ASP_TP + c] = ds;
      }
    }
    asp_tile_pv(acc_dq, P, k, asp_row0(lk, b, hk, j0), lk.ss, kv_rows, g.head_dim, As, lid, tr, tc);
  }
  asp_store_rows(acc_dq, fq, dq, q_base, lq.ss, rows_out, g.head_dim, tr, tc);
}

__kernel __attribute__((reqd_work_group_size(ASP_WG, 1, 1))) void softmax_flash_bwd_dkdv(
    __global const store_t *q, __global const store_t *k, __global const store_t *v,
    __global const store_t *dout, __global store_t *dk, __global store_t *dv, asp_layout lq,
    asp_layout lk, asp_layout lv, asp_layout lo, asp_geom g, float scale,
    __global const int *q_lens, __global const int *kv_lens, __global const float *lse,
    __global const float *delta) {
  __local float As[ASP_DK * ASP_TP], Bs[ASP_DK * ASP_TP];
  __local float P[ASP_T * ASP_TP];
  __local float lrow[ASP_T], drow[ASP_T], fk[ASP_T], fv[ASP_T];
  __local int nvq[ASP_T];
  const int kb = get_group_id(0), hk = get_group_id(1), b = get_group_id(2);
  const int lid = get_local_id(0), tr = lid / ASP_TC, tc = lid % ASP_TC;
  const int group = g.q_heads / g.kv_heads;
  const int lq_b = asp_batch_len(q_lens, g.has_qlens, b, g.q_len);
  const int lk_b = asp_batch_len(kv_lens, g.has_kvlens, b, g.kv_len);
  const int j0 = kb * ASP_T;
  const int keys_here = asp_clamp_int(lk_b - j0, 0, ASP_T);
  const int keys_out = asp_clamp_int(g.kv_len - j0, 0, ASP_T);
  const ulong k_base = asp_row0(lk, b, hk, j0), v_base = asp_row0(lv, b, hk, j0);
  for (int r = lid; r < ASP_T; r += ASP_WG) {
    fk[r] = scale;
    fv[r] = 1.0f;
  }
  float acc_dk[ASP_RM * ASP_OC], acc_dv[ASP_RM * ASP_OC];
  for (int e = 0; e < ASP_RM * ASP_OC; ++e) acc_dk[e] = acc_dv[e] = 0.0f;
  float sx[ASP_RM * ASP_CN], dp[ASP_RM * ASP_CN], ds[ASP_RM * ASP_CN];
  for (int hg = 0; hg < group && keys_here > 0; ++hg) {
    const int h = hk * group + hg;
    const size_t rowbase = ((size_t)b * g.q_heads + h) * g.q_len;
    for (int qb = 0; qb < g.nqb; ++qb) {
      const int i0 = qb * ASP_T;
      const int rows_here = asp_clamp_int(lq_b - i0, 0, ASP_T);
      if (rows_here == 0) break;
      /* Skip query blocks that see none of these keys. */
      if (asp_visible(&g, i0 + rows_here - 1, lq_b, lk_b) <= j0) continue;
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int r = lid; r < ASP_T; r += ASP_WG) {
        lrow[r] = r < rows_here ? lse[rowbase + i0 + r] : INFINITY;
        drow[r] = r < rows_here ? delta[rowbase + i0 + r] : 0.0f;
        nvq[r] = r < rows_here ? asp_visible(&g, i0 + r, lq_b, lk_b) : 0;
      }
      asp_tile_dot(sx, k, k_base, lk.ss, keys_here, q, asp_row0(lq, b, h, i0), lq.ss, rows_here,
                   g.head_dim, As, Bs, lid, tr, tc);
      asp_tile_dot(dp, v, v_base, lv.ss, keys_here, dout, asp_row0(lo, b, h, i0), lo.ss, rows_here,
                   g.head_dim, As, Bs, lid, tr, tc);
      for (int i = 0; i < ASP_RM; ++i) {
        const int key = j0 + tr + ASP_TR * i;
        for (int j = 0; j < ASP_CN; ++j) {
          const int c = tc + ASP_TC * j;
          float p = 0.0f, d = 0.0f;
          if (key < nvq[c]) {
            p = exp(sx[i * ASP_CN + j] * scale - lrow[c]);
            d = p * (dp[i * ASP_CN + j] - drow[c]);
          }
          P[(tr + ASP_TR * i) * ASP_TP + c] = p;
          ds[i * ASP_CN + j] = d;
        }
      }
      asp_tile_pv(acc_dv, P, dout, asp_row0(lo, b, h, i0), lo.ss, rows_here, g.head_dim, As, lid,
                  tr, tc);
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int i = 0; i < ASP_RM; ++i)
        for (int j = 0; j < ASP_CN; ++j)
          P[(tr + ASP_TR * i) * ASP_TP + tc + ASP_TC * j] = ds[i * ASP_CN + j];
      asp_tile_pv(acc_dk, P, q, asp_row0(lq, b, h, i0), lq.ss, rows_here, g.head_dim, As, lid, tr,
                  tc);
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  asp_store_rows(acc_dk, fk, dk, k_base, lk.ss, keys_out, g.head_dim, tr, tc);
  asp_store_rows(acc_dv, fv, dv, v_base, lv.ss, keys_out, g.head_dim, tr, tc);
}
