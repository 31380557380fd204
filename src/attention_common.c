/*
 * attention_common.c - validation of attention descriptors and tensors, layout resolution, and the
 * tile plan shared by the fused entmax and softmax flash programs (fitted to local memory, the
 * work-group limit and the compiled kernels' limits).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_common.h"

#define ASP_ATTN_MAX_LEN (1 << 26)
#define ASP_ATTN_MAX_HEAD_DIM 256

void adasplash_attention_desc_init(adasplash_attention_desc *desc) {
  if (!desc) return;
  memset(desc, 0, sizeof *desc);
  desc->struct_size = sizeof *desc;
  desc->dtype = ADASPLASH_F32;
  desc->batch = desc->q_heads = desc->kv_heads = 1;
  desc->alpha = 1.5f;
  desc->algorithm = ADASPLASH_ATTN_ENTMAX;
}

float asp_attn_scale(const adasplash_attention_desc *d) {
  return d->scale > 0.0f ? d->scale : 1.0f / sqrtf((float)d->head_dim);
}

adasplash_status asp_layout_resolve(const adasplash_context *ctx, const char *fn, const char *name,
                                    const adasplash_layout *in, int batch, int heads, int len,
                                    int head_dim, size_t esize, asp_layout *out, size_t *bytes) {
  size_t bs = in->batch_stride, hs = in->head_stride, ss = in->seq_stride;
  const size_t D = (size_t)head_dim;
  if (bs == 0 && hs == 0 && ss == 0) {
    ss = D;
    hs = (size_t)len * D;
    bs = (size_t)heads * (size_t)len * D;
  } else if (bs == 0 || hs == 0 || ss == 0) {
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_STRIDE,
                    "%s: %s strides (batch %zu, head %zu, seq %zu): give all three or none "
                    "(none = contiguous [batch, heads, seq, head_dim])",
                    fn, name, bs, hs, ss);
  }
  /* Injectivity: sort the dimensions by stride; each stride must exceed the span of the smaller
   * ones (dimensions of size 1 do not matter). */
  size_t st[3] = {ss, hs, bs}, cnt[3] = {(size_t)len, (size_t)heads, (size_t)batch};
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      if (st[b] < st[a]) {
        size_t t = st[a];
        st[a] = st[b];
        st[b] = t;
        t = cnt[a];
        cnt[a] = cnt[b];
        cnt[b] = t;
      }
  size_t span = D;
  for (int a = 0; a < 3; ++a) {
    if (cnt[a] <= 1) continue;
    if (st[a] < span)
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_STRIDE,
                      "%s: %s strides (batch %zu, head %zu, seq %zu) make rows overlap", fn, name,
                      bs, hs, ss);
    size_t ext;
    if (!asp_mul_size(st[a], cnt[a] - 1, &ext) || !asp_add_size(span, ext, &span))
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_STRIDE, "%s: %s strides overflow", fn, name);
  }
  size_t last = 0, t;
  if (!asp_mul_size(bs, (size_t)batch - 1, &t) || !asp_add_size(last, t, &last) ||
      !asp_mul_size(hs, (size_t)heads - 1, &t) || !asp_add_size(last, t, &last) ||
      !asp_mul_size(ss, (size_t)len - 1, &t) || !asp_add_size(last, t, &last) ||
      !asp_add_size(last, D, &last) || !asp_add_size(last, in->offset, &last) ||
      !asp_mul_size(last, esize, &last))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_STRIDE, "%s: %s offset and strides overflow", fn,
                    name);
  out->off = in->offset;
  out->bs = bs;
  out->hs = hs;
  out->ss = ss;
  *bytes = last;
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_attn_check_desc_present(const adasplash_context *ctx,
                                             const adasplash_attention_desc *desc, const char *fn) {
  if (!ctx) return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
  if (!desc) return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc is NULL", fn);
  if (desc->struct_size != sizeof *desc)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->struct_size=%zu, expected %zu (use adasplash_attention_desc_init)",
                    fn, desc->struct_size, sizeof *desc);
  return ADASPLASH_SUCCESS;
}

adasplash_status asp_attn_check_desc(const adasplash_context *ctx,
                                     const adasplash_attention_desc *desc, const char *fn,
                                     asp_attn_problem *pr) {
  memset(pr, 0, sizeof *pr);
  const adasplash_status present = asp_attn_check_desc_present(ctx, desc, fn);
  if (present != ADASPLASH_SUCCESS) return present;
  const adasplash_attention_desc *d = desc;
  if (adasplash_dtype_size(d->dtype) == 0)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc->dtype=%d is not a dtype", fn,
                    (int)d->dtype);
  if (d->algorithm != ADASPLASH_ATTN_ENTMAX && d->algorithm != ADASPLASH_ATTN_SOFTMAX_FLASH &&
      d->algorithm != ADASPLASH_ATTN_ENTMAX_DENSE)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc->algorithm=%d is unknown", fn,
                    (int)d->algorithm);
  const struct {
    const char *name;
    int value, max;
  } sizes[] = {{"batch", d->batch, 1 << 20},
               {"q_heads", d->q_heads, 1 << 16},
               {"kv_heads", d->kv_heads, 1 << 16},
               {"q_len", d->q_len, ASP_ATTN_MAX_LEN},
               {"kv_len", d->kv_len, ASP_ATTN_MAX_LEN},
               {"head_dim", d->head_dim, 1 << 20}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
    if (sizes[i].value < 1 || sizes[i].value > sizes[i].max)
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE, "%s: desc->%s=%d must be in [1, %d]", fn,
                      sizes[i].name, sizes[i].value, sizes[i].max);
  if (d->q_heads % d->kv_heads != 0)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE,
                    "%s: desc->q_heads=%d is not a multiple of desc->kv_heads=%d", fn, d->q_heads,
                    d->kv_heads);
  if (d->head_dim > ASP_ATTN_MAX_HEAD_DIM)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED, "%s: desc->head_dim=%d: at most %d supported",
                    fn, d->head_dim, ASP_ATTN_MAX_HEAD_DIM);
  if (!d->alpha_buf && !(d->alpha > 1.0f && d->alpha <= 2.0f))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ALPHA, "%s: desc->alpha=%g must be in (1, 2]", fn,
                    (double)d->alpha);
  if (!(d->scale >= 0.0f) || isinf(d->scale))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->scale=%g must be finite and >= 0 (0 = 1/sqrt(head_dim))", fn,
                    (double)d->scale);
  if (!(d->tolerance >= 0.0f) || d->tolerance > 0.5f)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->tolerance=%g must be in [0, 0.5] (0 = default 1e-5)", fn,
                    (double)d->tolerance);
  if (d->max_iter < 0 || d->max_iter > 1000)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "%s: desc->max_iter=%d must be in [0, 1000] (0 = default 16)", fn, d->max_iter);
  if (d->causal != 0 && d->causal != 1)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc->causal=%d must be 0 or 1", fn,
                    d->causal);
  if (d->flags & ~(ADASPLASH_ATTN_SAVE_ALPHA_GRAD | ADASPLASH_ATTN_FORWARD_ONLY))
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_ARGUMENT, "%s: desc->flags=%#x has unknown bits",
                    fn, (unsigned)d->flags);
  {
    /* Each size is bounded above, their product is not: bound the largest state any algorithm
     * keeps (per-row sections with head_dim floats, the tile matrices at the smallest tile 8, the
     * dense baseline's rows x kv_len matrices) so that no size computed later wraps around. */
    const long double rows = (long double)d->batch * d->q_heads * d->q_len;
    const long double per_row = rows * (8.0L + 3.0L * d->head_dim) * 4.0L;
    const long double tiles = (long double)d->batch * d->q_heads * (d->q_len / 8.0L + 1.0L) *
                              (d->kv_len / 8.0L + 1.0L) * 4.0L;
    const long double dense = d->algorithm == ADASPLASH_ATTN_ENTMAX_DENSE
                                  ? rows * (long double)d->kv_len * 4.0L * 4.0L
                                  : 0.0L;
    if (per_row + tiles + dense > (long double)SIZE_MAX / 4.0L)
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SHAPE,
                      "%s: batch=%d x q_heads=%d x q_len=%d (kv_len=%d, head_dim=%d) needs more "
                      "than %.3Le bytes of state: too large for this address space",
                      fn, d->batch, d->q_heads, d->q_len, d->kv_len, d->head_dim,
                      per_row + tiles + dense);
  }
  pr->d = *d;
  pr->d.scale = asp_attn_scale(d);
  pr->d.tolerance = d->tolerance > 0.0f ? d->tolerance : 1e-5f;
  pr->d.max_iter = d->max_iter > 0 ? d->max_iter : 16;
  pr->esize = adasplash_dtype_size(d->dtype);
  adasplash_status st;
  st = asp_layout_resolve(ctx, fn, "desc->q", &d->q, d->batch, d->q_heads, d->q_len, d->head_dim,
                          pr->esize, &pr->q, &pr->q_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_layout_resolve(ctx, fn, "desc->k", &d->k, d->batch, d->kv_heads, d->kv_len,
                            d->head_dim, pr->esize, &pr->k, &pr->k_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_layout_resolve(ctx, fn, "desc->v", &d->v, d->batch, d->kv_heads, d->kv_len,
                            d->head_dim, pr->esize, &pr->v, &pr->v_bytes);
  if (st == ADASPLASH_SUCCESS)
    st = asp_layout_resolve(ctx, fn, "desc->out", &d->out, d->batch, d->q_heads, d->q_len,
                            d->head_dim, pr->esize, &pr->o, &pr->o_bytes);
  return st;
}

adasplash_status asp_attn_check_tensor(const adasplash_context *ctx, const asp_attn_problem *pr,
                                       cl_mem buf, const char *name, char which) {
  size_t need = which == 'q'
                    ? pr->q_bytes
                    : (which == 'k' ? pr->k_bytes : (which == 'v' ? pr->v_bytes : pr->o_bytes));
  return asp_check_buffer(ctx, buf, name, need);
}

adasplash_status asp_attn_check_call(const adasplash_context *ctx,
                                     const adasplash_attention_desc *desc, const char *fn,
                                     cl_command_queue queue, cl_uint nwait, const cl_event *wait,
                                     cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                     asp_attn_problem *pr) {
  adasplash_status st = asp_attn_check_desc(ctx, desc, fn, pr);
  if (st == ADASPLASH_SUCCESS) st = asp_check_queue(ctx, queue);
  if (st == ADASPLASH_SUCCESS) st = asp_check_wait_list(ctx, nwait, wait);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, pr->d.alpha_buf, "desc->alpha_buf",
                                   (size_t)pr->d.q_heads * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, pr->d.q_lens, "desc->q_lens", (size_t)pr->d.batch * 4);
  if (st == ADASPLASH_SUCCESS)
    st = asp_check_optional_buffer(ctx, pr->d.kv_lens, "desc->kv_lens", (size_t)pr->d.batch * 4);
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, pr, q, "q", 'q');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, pr, k, "k", 'k');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, pr, v, "v", 'v');
  if (st == ADASPLASH_SUCCESS) st = asp_attn_check_tensor(ctx, pr, out, "out", 'o');
  return st;
}

asp_geom asp_attn_geom(const asp_attn_problem *pr, int tile, int nseg) {
  const adasplash_attention_desc *d = &pr->d;
  asp_geom g;
  g.batch = d->batch;
  g.q_heads = d->q_heads;
  g.kv_heads = d->kv_heads;
  g.q_len = d->q_len;
  g.kv_len = d->kv_len;
  g.head_dim = d->head_dim;
  g.causal = d->causal;
  g.has_qlens = d->q_lens != NULL;
  g.has_kvlens = d->kv_lens != NULL;
  g.nqb = (d->q_len + tile - 1) / tile;
  g.nkb = (d->kv_len + tile - 1) / tile;
  g.wk = (g.nkb + 31) / 32;
  g.wq = (g.nqb + 31) / 32;
  g.nseg = nseg;
  return g;
}

asp_attn_args asp_attn_make_args(const asp_attn_problem *pr, const asp_plan *plan) {
  const adasplash_attention_desc *d = &pr->d;
  asp_attn_args a;
  memset(&a, 0, sizeof a);
  a.q = pr->q;
  a.k = pr->k;
  a.v = pr->v;
  a.o = pr->o;
  a.g = asp_attn_geom(pr, plan->attn.tile, plan->attn.nseg);
  a.alpha = d->alpha;
  a.scale = d->scale;
  a.tol = d->tolerance;
  a.has_alpha = d->alpha_buf != NULL;
  a.max_iter = d->max_iter;
  /* Rows on 16-byte boundaries (buffers themselves are aligned far more): 8 elements of 16 bits. */
  const asp_layout *ls[4] = {&a.q, &a.k, &a.v, &a.o};
  a.aligned16 = pr->esize == 2 && d->head_dim % 8 == 0;
  for (int i = 0; i < 4; ++i)
    if (ls[i]->off % 8 || ls[i]->bs % 8 || ls[i]->hs % 8 || ls[i]->ss % 8) a.aligned16 = 0;
  return a;
}

/* ---- the tile plan --------------------------------------------------------------------------- */

static const char *const asp_forward_kernels[] = {"attn_tau", "attn_forward", "attn_forward_grad",
                                                  "attn_forward_fused", "attn_forward_grad_fused"};
#define ASP_FUSED_FORWARD_KERNELS 2 /* the last two, compiled only with ASP_FUSE */
/* The backward program has one of the two backwards (ASP_BWD_FUSED): the split one's dQ and
 * dK/dV passes, or the fused pass and its dQ store. */
static const char *const asp_backward_split_kernels[] = {"attn_bwd_pre", "attn_bwd_dalpha",
                                                         "attn_bwd_dq", "attn_bwd_dkdv"};
static const char *const asp_backward_fused_kernels[] = {"attn_bwd_pre", "attn_bwd_dalpha",
                                                         "attn_bwd_fused", "attn_bwd_dq_store"};
static const char *const asp_dense_kernels[] = {"attn_tau_dense"};
/* The output pass with the alpha gradient's terms: a program of its own, compiled only for a desc
 * that asks for the alpha gradient (the largest output kernel: a third of the forward program's
 * PTX on the NVIDIA path, a tenth of its ptxas time; scripts/dev/nv-static.sh). */
static const char *const asp_alpha_kernels[] = {"attn_forward_alpha"};
static const char *const asp_softmax_kernels[] = {"softmax_flash_forward", "softmax_flash_bwd_pre",
                                                  "softmax_flash_bwd_dq", "softmax_flash_bwd_dkdv"};

/* The largest padded head dim the tensor-core path plans; larger ones take the portable path. */
#define ASP_NV_MAX_HEAD_DIM 128

/* The tensor-core path takes 16-bit storage; fp32 keeps the portable path's fp32 products. */
static int asp_attn_uses_nv(const adasplash_context *ctx, adasplash_dtype dtype) {
  return ctx->path == ADASPLASH_PATH_NVIDIA_MMA && dtype != ADASPLASH_F32;
}

/* The programs compiled per alpha class: the entmax forward's threshold and output passes, the
 * alpha gradient's output pass and the backward. The dense sweep (its scores' scale is the only
 * place alpha enters) and the softmax baseline are compiled once for any alpha. */
static int asp_attn_family_has_alpha_class(asp_program_family family) {
  return family == ASP_PROGRAM_ATTN_FORWARD || family == ASP_PROGRAM_ATTN_ALPHA ||
         family == ASP_PROGRAM_ATTN_BACKWARD;
}

static asp_variant_key asp_attn_key(const adasplash_context *ctx, asp_program_family family,
                                    adasplash_dtype dtype, int head_dim, int alpha_class) {
  asp_variant_key key = asp_variant_key_of(
      ctx, family, dtype, asp_attn_padded_head_dim(head_dim),
      asp_attn_uses_nv(ctx, dtype) ? ctx->tuning.nv_tile : ctx->tuning.attn_tile);
  key.alpha_class = asp_attn_family_has_alpha_class(family) ? alpha_class : ASP_ALPHA_ANY;
  return key;
}

/* The alpha class (cl/abi.h ASP_ALPHA_*) of pr's entmax programs: ASP_ALPHA_15 or ASP_ALPHA_2 for
 * a scalar alpha of 1.5 or 2 without a per-head buffer on the NVIDIA path (unless the tuning's
 * nv_alpha_fixed is 0), else ASP_ALPHA_ANY. Every plan is looked up and prepared through
 * asp_attn_problem_key, so prepare and enqueue derive it from the desc alike and a forward, its
 * saved state and its backward always use one class's plans.
 * Only the NVIDIA path compiles per alpha (scripts/dev/nv-static.sh, sm_90, bf16, head dim 64:
 * attn_forward_grad 208 -> 174 registers, attn_forward 130 -> 104, attn_tau's code 11,984 ->
 * 5,816 SASS instructions, the forward program's ptxas time 1.8 -> 0.75 s). The portable path
 * stays with the programs for any alpha: unmeasured on GPUs there, and on PoCL 3.1 (LLVM 15) the
 * attn_tau compiled for alpha 1.5 crashed at head dim 16 on a misaligned 16-byte store into its
 * per-work-item arrays, which the same kernel for any alpha does not do. */
static int asp_attn_alpha_class(const adasplash_context *ctx, const asp_attn_problem *pr) {
  const adasplash_attention_desc *d = &pr->d;
  if (!ctx->tuning.nv_alpha_fixed || !asp_attn_uses_nv(ctx, d->dtype) ||
      asp_attn_padded_head_dim(d->head_dim) > ASP_NV_MAX_HEAD_DIM /* planned as portable */ ||
      d->algorithm != ADASPLASH_ATTN_ENTMAX || d->alpha_buf)
    return ASP_ALPHA_ANY;
  return d->alpha == 1.5f ? ASP_ALPHA_15 : (d->alpha == 2.0f ? ASP_ALPHA_2 : ASP_ALPHA_ANY);
}

/* The key of pr's program of family (its alpha class where the family has classes). */
static asp_variant_key asp_attn_problem_key(const adasplash_context *ctx, asp_program_family family,
                                            const asp_attn_problem *pr) {
  return asp_attn_key(ctx, family, pr->d.dtype, pr->d.head_dim, asp_attn_alpha_class(ctx, pr));
}

static const int asp_head_dim_sizes[] = {16, 32, 64, 96, 128, 192, 256};

int asp_attn_padded_head_dim(int head_dim) {
  for (size_t i = 0; i < sizeof asp_head_dim_sizes / sizeof asp_head_dim_sizes[0]; ++i)
    if (head_dim <= asp_head_dim_sizes[i]) return asp_head_dim_sizes[i];
  return ((head_dim + 63) / 64) * 64;
}

const int *asp_attn_head_dim_sizes(size_t *count) {
  *count = sizeof asp_head_dim_sizes / sizeof asp_head_dim_sizes[0];
  return asp_head_dim_sizes;
}

static int asp_pow2_floor(int v) {
  int p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

static const char *asp_alpha_class_text(int alpha_class) {
  return alpha_class == ASP_ALPHA_15 ? "alpha 1.5"
                                     : (alpha_class == ASP_ALPHA_2 ? "alpha 2" : "any alpha");
}

adasplash_status asp_attn_find_plan(adasplash_context *ctx, asp_program_family family,
                                    const asp_attn_problem *pr, asp_plan *out) {
  const asp_variant_key key = asp_attn_problem_key(ctx, family, pr);
  if (!asp_plan_find(ctx, &key, out))
    return asp_fail(ctx, ADASPLASH_ERROR_NOT_PREPARED,
                    "attention kernels (%s) for dtype %d, head_dim %d, %s are not compiled: call "
                    "adasplash_attention_prepare with this desc (or adasplash_warmup) first",
                    asp_program_file(family), (int)pr->d.dtype, pr->d.head_dim,
                    asp_alpha_class_text(key.alpha_class));
  return ADASPLASH_SUCCESS;
}

/* Local memory one kernel declares by the formulas (cl/abi.h, and the arena macros of the passes:
 * attn_tau.clh, attn_out.clh, attn_grad.clh). */
static size_t asp_attn_kernel_local_bytes(asp_program_family family, const char *name,
                                          const asp_attn_plan *p) {
  const size_t t = (size_t)p->tile, hd = (size_t)p->hd, wg = (size_t)p->wg;
  const size_t nstage = (size_t)(family == ASP_PROGRAM_ATTN_BACKWARD ? p->nstage_b : p->nstage_f);
#define ASP_PRODUCTS(nb, keep, pprod)                                                     \
  (p->impl == ASP_TILE_NV_MMA                                                             \
       ? (size_t)ASP_NV_PRODUCT_BYTES(t, hd, nstage, nb, keep, pprod, (size_t)p->emu, wg) \
       : (size_t)ASP_PT_PRODUCT_BYTES(t, (size_t)p->tc, (size_t)p->dk, pprod))
  size_t b = 0;
  if (strcmp(name, "attn_tau") == 0)
    b = ASP_PRODUCTS(1, 0, 0) + ASP_TAU_PASS_BYTES(t, (size_t)p->bins, (size_t)p->kmax);
  else if (strcmp(name, "attn_tau_dense") == 0)
    b = ASP_PRODUCTS(1, 0, 0) + ASP_TAU_DENSE_PASS_BYTES((size_t)p->dense_rows, (size_t)p->bins);
  else if (strstr(name, "dkdv"))
    b = ASP_PRODUCTS(2, 1, 1) + ASP_QROW_BYTES(t);
  else if (strcmp(name, "attn_bwd_fused") == 0)
    b = ASP_PRODUCTS(2, 1, 2) + ASP_QROW_BYTES(t);
  else if (strstr(name, "_fused") && family == ASP_PROGRAM_ATTN_FORWARD)
    b = ASP_PRODUCTS(2, 0, 1) + ASP_FUSE_PASS_BYTES(t, (size_t)p->kmax);
  else if (strcmp(name, "attn_bwd_dalpha") == 0)
    b = wg * 4;
  else if (!strstr(name, "pre") && !strstr(name, "store"))
    b = ASP_PRODUCTS(2, 0, 1); /* output passes, dQ passes */
#undef ASP_PRODUCTS
  return (b + 15) / 16 * 16; /* one 16-byte aligned arena */
}

/* The kernels of a program. */
static const char *const *asp_attn_kernels(asp_program_family family, const asp_attn_plan *p,
                                           size_t *count) {
  if (family == ASP_PROGRAM_ATTN_FORWARD) {
    *count = sizeof asp_forward_kernels / sizeof asp_forward_kernels[0] -
             (p->fuse ? 0 : ASP_FUSED_FORWARD_KERNELS);
    return asp_forward_kernels;
  }
  if (family == ASP_PROGRAM_ATTN_BACKWARD && p->bwd_fused) {
    *count = sizeof asp_backward_fused_kernels / sizeof asp_backward_fused_kernels[0];
    return asp_backward_fused_kernels;
  }
  if (family == ASP_PROGRAM_ATTN_BACKWARD) {
    *count = sizeof asp_backward_split_kernels / sizeof asp_backward_split_kernels[0];
    return asp_backward_split_kernels;
  }
  if (family == ASP_PROGRAM_ATTN_DENSE) {
    *count = sizeof asp_dense_kernels / sizeof asp_dense_kernels[0];
    return asp_dense_kernels;
  }
  if (family == ASP_PROGRAM_ATTN_ALPHA) {
    *count = sizeof asp_alpha_kernels / sizeof asp_alpha_kernels[0];
    return asp_alpha_kernels;
  }
  *count = sizeof asp_softmax_kernels / sizeof asp_softmax_kernels[0];
  return asp_softmax_kernels;
}

/* Local memory of a program's largest kernel. */
static size_t asp_attn_local_bytes(asp_program_family family, const asp_attn_plan *p) {
  size_t count, m = 0;
  const char *const *names = asp_attn_kernels(family, p, &count);
  for (size_t i = 0; i < count; ++i) {
    const size_t b = asp_attn_kernel_local_bytes(family, names[i], p);
    if (b > m) m = b;
  }
  return m;
}

size_t asp_attn_local_avail(const asp_tuning *tu) {
  return tu->local_mem > ASP_LOCAL_RESERVE ? tu->local_mem - ASP_LOCAL_RESERVE : 0;
}

adasplash_status asp_check_local_mem(const adasplash_context *ctx, const char *name,
                                     const char *file, size_t used, size_t want) {
  if (!getenv("ADASPLASH_CHECK_LOCAL_MEM") || (used >= want && used < want + ASP_LOCAL_RESERVE))
    return ADASPLASH_SUCCESS;
  return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL,
                  "kernel %s of %s uses %zu bytes of local memory; the host's formula says %zu "
                  "(plus at most %d of the compiler's own)",
                  name, file, used, want, ASP_LOCAL_RESERVE - 1);
}

/* Builds one program of a plan and checks its kernels' limits: *fits = 1 when every kernel
 * accepts the plan's work-items and its local memory. With $ADASPLASH_CHECK_LOCAL_MEM set (tests),
 * a kernel whose CL_KERNEL_LOCAL_MEM_SIZE is below what the formulas say, or above it by the
 * reserve or more, fails the build: the host plans with those formulas. */
/* The defines and build options of key's program for plan p. */
static void asp_attn_program_text(const adasplash_context *ctx, const asp_variant_key *key,
                                  const asp_attn_plan *p, asp_defines *defines, char *opts,
                                  size_t opts_size) {
  const asp_tuning *tu = &ctx->tuning;
  const asp_program_family family = key->family;
  asp_defines df;
  asp_defines_init(&df, ctx, key);
  asp_defines_add_int(&df, "ASP_TILE_IMPL", p->impl);
  asp_defines_add_int(&df, "ASP_T", p->tile);
  asp_defines_add_int(&df, "ASP_WG", p->wg);
  asp_defines_add_int(&df, "ASP_HD", p->hd);
  if (key->alpha_class != ASP_ALPHA_ANY)
    asp_defines_add_int(&df, "ASP_ALPHA_CLASS", key->alpha_class);
  if (p->impl == ASP_TILE_NV_MMA) {
    asp_defines_add_int(&df, "ASP_NSTAGE",
                        family == ASP_PROGRAM_ATTN_BACKWARD ? p->nstage_b : p->nstage_f);
    asp_defines_add_int(&df, "ASP_NV_EMULATE", p->emu);
  } else {
    asp_defines_add_int(&df, "ASP_TR", p->tr);
    asp_defines_add_int(&df, "ASP_TC", p->tc);
    asp_defines_add_int(&df, "ASP_DK", p->dk);
    asp_defines_add_int(&df, "ASP_VW", p->vw);
  }
  if (family == ASP_PROGRAM_ATTN_FORWARD || family == ASP_PROGRAM_ATTN_DENSE) {
    asp_defines_add_int(&df, "ASP_BINS", p->bins);
    asp_defines_add_int(&df, "ASP_KMAX", p->kmax);
  }
  if (family == ASP_PROGRAM_ATTN_FORWARD && p->fuse) asp_defines_add_int(&df, "ASP_FUSE", p->fuse);
  /* attn_tau without the dense sweep's code where attn_tau_dense runs it. */
  if (family == ASP_PROGRAM_ATTN_FORWARD && p->dense_rows > 0)
    asp_defines_add_int(&df, "ASP_TAU_DENSE_DONE", 1);
  if (family == ASP_PROGRAM_ATTN_BACKWARD) asp_defines_add_int(&df, "ASP_BWD_FUSED", p->bwd_fused);
  if (family == ASP_PROGRAM_ATTN_DENSE) {
    asp_defines_add_int(&df, "ASP_TQ", p->dense_rows);
    asp_defines_add_int(&df, "ASP_TSUB", p->sub_tile);
  }
  /* mma.sync, ldmatrix and cp.async need the device's own target (sm_80 and later); the tuning
   * may cap the registers of the forward and backward programs (not the dense sweep's). */
  opts[0] = '\0';
  if (p->impl == ASP_TILE_NV_MMA && !p->emu) {
    const int cap = family == ASP_PROGRAM_ATTN_BACKWARD ? tu->nv_bwd_maxrreg
                    : family == ASP_PROGRAM_ATTN_DENSE  ? 0
                                                        : tu->nv_fwd_maxrreg;
    const int n =
        snprintf(opts, opts_size, "-cl-nv-arch sm_%d", ctx->dev.info.nvidia_compute_capability);
    if (cap > 0 && n > 0 && (size_t)n < opts_size)
      snprintf(opts + n, opts_size - (size_t)n, " -cl-nv-maxrregcount=%d", cap);
  }
  *defines = df;
}

static adasplash_status asp_attn_build(adasplash_context *ctx, const asp_variant_key *key,
                                       const asp_attn_plan *p, asp_program **program, int *fits) {
  const asp_tuning *tu = &ctx->tuning;
  const asp_program_family family = key->family;
  asp_defines df;
  char opts[80];
  asp_attn_program_text(ctx, key, p, &df, opts, sizeof opts);
  adasplash_status st = asp_variant_program_opts(ctx, key, &df, opts, program);
  if (st != ADASPLASH_SUCCESS) return st;
  size_t count;
  const char *const *names = asp_attn_kernels(family, p, &count);
  size_t fit = (size_t)p->wg;
  for (size_t i = 0; i < count; ++i) {
    const asp_kernel *k = asp_program_kernel(*program, names[i]);
    if (!k)
      return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "kernel %s missing from %s", names[i],
                      asp_program_file(family));
    if (strstr(names[i], "pre") || strstr(names[i], "store"))
      continue; /* launched with any work-group size */
    if (k->max_work_group_size < fit) fit = k->max_work_group_size;
    if (k->local_mem_size > tu->local_mem) fit = 0;
  }
  for (size_t i = 0; i < count; ++i) {
    const asp_kernel *k = asp_program_kernel(*program, names[i]);
    st = asp_check_local_mem(ctx, names[i], asp_program_file(family), (size_t)k->local_mem_size,
                             asp_attn_kernel_local_bytes(family, names[i], p));
    if (st != ADASPLASH_SUCCESS) return st;
  }
  *fits = fit >= (size_t)p->wg;
  return ADASPLASH_SUCCESS;
}

/* The portable plan: TR x TC work-items over T x T tiles, fitted to local memory (bins, then
 * candidates, then the head-dim chunk, then the tile and the work-group shrink) and then to the
 * compiled kernels' limits. The forward's plan fixes the tiles; the backward reuses it. */
static adasplash_status asp_attn_plan_portable(adasplash_context *ctx, const asp_variant_key *key,
                                               int head_dim, asp_plan *plan) {
  const asp_tuning *tu = &ctx->tuning;
  int t = tu->attn_tile, wg = tu->attn_wg;
  wg = asp_pow2_floor(wg < (int)tu->max_wg ? wg : (int)tu->max_wg);
  const int hd = asp_attn_padded_head_dim(head_dim);
  for (;;) {
    /* Work-item grid: TC = 2^ceil(log2(WG)/2) columns (at most 16, so it divides every padded
     * head dim), TR rows; every row needs an owner. */
    int tc = 1;
    while (tc * tc < wg && tc < 16) tc *= 2;
    const int tr = wg / tc;
    if (t < tc) t = tc;
    if (wg < t) t = asp_pow2_floor(wg);
    if (t % tr != 0 || t % tc != 0 || t < tc || t < tr) {
      if (wg > 16) {
        wg /= 2;
        continue;
      }
      return asp_fail(ctx, ADASPLASH_ERROR_INVALID_TUNING,
                      "attention tile %d does not fit a %dx%d work-item grid (attn_wg=%d)", t, tr,
                      tc, wg);
    }
    /* Columns are owned in vector groups of VW: VW divides the score and output columns per
     * work-item; head-dim chunks are whole groups over all TC columns and multiples of 4. */
    int vw = 4;
    while (vw > 1 && ((t / tc) % vw != 0 || (hd / tc) % vw != 0)) vw /= 2;
    int unit = vw * tc;
    while (unit % 4 != 0) unit *= 2;
    int dk = tu->attn_dk < unit ? unit : (tu->attn_dk / unit) * unit;
    while (dk > unit && (dk > hd || hd % dk != 0)) dk -= unit;
    if (hd % dk != 0) dk = hd; /* one chunk: unit does not divide the head dim */
    asp_attn_plan p = {ASP_TILE_PORTABLE,
                       t,
                       wg,
                       hd,
                       tu->attn_bins,
                       tu->attn_kmax,
                       tr,
                       tr,
                       tc,
                       dk,
                       vw,
                       0,
                       0,
                       0,
                       0,
                       0,
                       tu->attn_fuse,
                       tu->attn_bwd_fused};
    const size_t avail = asp_attn_local_avail(tu);
#define ASP_NEED                                                 \
  (asp_attn_local_bytes(ASP_PROGRAM_ATTN_FORWARD, &p) > avail || \
   asp_attn_local_bytes(ASP_PROGRAM_ATTN_BACKWARD, &p) > avail)
    while (ASP_NEED && p.bins > 4) p.bins /= 2;
    while (ASP_NEED && p.kmax > 8) p.kmax /= 2;
    while (ASP_NEED && p.dk > unit && hd % unit == 0) {
      p.dk -= unit;
      while (p.dk > unit && hd % p.dk != 0) p.dk -= unit;
    }
    if (ASP_NEED) {
      if (wg <= 16 && t <= 8)
        return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                        "attention needs %zu bytes of local memory even with the smallest tiles; "
                        "the device offers %lu",
                        asp_attn_local_bytes(ASP_PROGRAM_ATTN_FORWARD, &p), tu->local_mem);
      if (t > tc) {
        t /= 2;
      } else {
        wg /= 2;
        t = t / 2 > 8 ? t / 2 : 8;
      }
      continue;
    }
#undef ASP_NEED
    int fits = 0;
    adasplash_status st = asp_attn_build(ctx, key, &p, &plan->program, &fits);
    if (st != ADASPLASH_SUCCESS) return st;
    if (fits) {
      plan->attn = p;
      return ADASPLASH_SUCCESS;
    }
    if (wg <= 16)
      return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                      "attention kernels of %s do not accept %d work-items on this device",
                      asp_program_file(key->family), wg);
    wg /= 2; /* registers or local memory limit the compiled kernels: try a smaller grid */
    if (t > 8 && wg < t) t /= 2;
  }
}

/* The dense sweep's plan for an NVIDIA forward plan fwd: attn_tau_dense with at most rows query
 * rows per work-group (more than the forward's tile, in warps of the forward's segment rows, which
 * must be 16; nv_dense_warps warps, each a power-of-two number of m16 tiles) against key tiles of
 * nv_dense_tile keys (a multiple of the forward's tile, at most the rows; its tile maxima keep the
 * forward's tiles), rows halved while its local memory or work-group does not fit. Nothing is
 * built. Returns the rows of *out, or 0 when no such plan exists. */
static int asp_attn_dense_candidate(const adasplash_context *ctx, const asp_attn_plan *fwd,
                                    int rows, asp_attn_plan *out) {
  const asp_tuning *tu = &ctx->tuning;
  if (fwd->impl != ASP_TILE_NV_MMA || fwd->tile / fwd->nseg != 16) return 0;
  const size_t avail = asp_attn_local_avail(tu);
  const int fwd_tile = fwd->tile;
  const int keys = tu->nv_dense_tile > fwd_tile ? tu->nv_dense_tile : fwd_tile;
  for (; rows > fwd_tile; rows /= 2) {
    asp_attn_plan p = *fwd;
    p.sub_tile = fwd_tile;
    p.dense_rows = rows;
    p.tile = keys < rows ? keys : rows; /* TQ a multiple of the key tile (powers of two) */
    const int warps = tu->nv_dense_warps > 0 && tu->nv_dense_warps < rows / 16
                          ? tu->nv_dense_warps
                          : rows / 16; /* each warp a whole number of m16 tiles */
    p.wg = 32 * warps;
    if (rows % p.tile != 0 || (size_t)p.wg > tu->max_wg) continue;
    p.nstage_f = tu->nv_stages;
    while (p.nstage_f > 1 && asp_attn_local_bytes(ASP_PROGRAM_ATTN_DENSE, &p) > avail) --p.nstage_f;
    if (asp_attn_local_bytes(ASP_PROGRAM_ATTN_DENSE, &p) > avail) continue;
    *out = p;
    return rows;
  }
  return 0;
}

/* The dense sweep's program for an NVIDIA forward plan (asp_attn_dense_candidate from the
 * tuning's nv_dense_rows down, until the compiled kernel accepts its work-group). Sets
 * fwd->dense_rows to the rows chosen, or 0 (attn_tau then sweeps itself). */
static adasplash_status asp_attn_plan_dense(adasplash_context *ctx, adasplash_dtype dtype,
                                            int head_dim, asp_attn_plan *fwd) {
  const asp_variant_key key =
      asp_attn_key(ctx, ASP_PROGRAM_ATTN_DENSE, dtype, head_dim, ASP_ALPHA_ANY);
  const asp_attn_plan base = *fwd;
  fwd->dense_rows = 0;
  asp_attn_plan cand;
  for (int rows = ctx->tuning.nv_dense_rows;
       (rows = asp_attn_dense_candidate(ctx, &base, rows, &cand)) > 0; rows /= 2) {
    asp_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.key = key;
    plan.attn = cand;
    int fits = 0;
    adasplash_status st = asp_attn_build(ctx, &key, &plan.attn, &plan.program, &fits);
    if (st != ADASPLASH_SUCCESS) return st;
    if (!fits) continue;
    asp_plan stored;
    st = asp_plan_store(ctx, &plan, &stored);
    if (st != ADASPLASH_SUCCESS) return st;
    fwd->dense_rows = rows;
    return ADASPLASH_SUCCESS;
  }
  return ADASPLASH_SUCCESS;
}

/* The NVIDIA tensor-core plan's geometry: T x T tiles, warps of T/warps rows (a multiple of 16),
 * the forward and backward programs each with as many operand slots (1 or 2) as local memory
 * allows; nothing is built. Returns ADASPLASH_ERROR_UNSUPPORTED without a message when the head
 * dim or no tile fits (the caller then plans the portable path). */
static adasplash_status asp_attn_nv_geometry(const adasplash_context *ctx, int head_dim,
                                             asp_attn_plan *out) {
  const asp_tuning *tu = &ctx->tuning;
  const int hd = asp_attn_padded_head_dim(head_dim);
  int t = tu->nv_tile, nw = tu->nv_warps;
  while (nw > 1 && (t % (16 * nw) != 0 || 32 * nw > (int)tu->max_wg)) --nw;
  if (t % (16 * nw) != 0 || hd > ASP_NV_MAX_HEAD_DIM || hd % 16 != 0)
    return ADASPLASH_ERROR_UNSUPPORTED;
  const size_t avail = asp_attn_local_avail(tu);
  for (;;) {
    asp_attn_plan p = {ASP_TILE_NV_MMA,
                       t,
                       32 * nw,
                       hd,
                       tu->attn_bins,
                       tu->attn_kmax,
                       nw,
                       0,
                       0,
                       0,
                       0,
                       tu->nv_stages,
                       tu->nv_stages,
                       !asp_variant_nv_native(ctx),
                       0,
                       0,
                       tu->attn_fuse,
                       tu->nv_bwd_fused};
    while (asp_attn_local_bytes(ASP_PROGRAM_ATTN_FORWARD, &p) > avail) {
      if (p.bins > 8)
        p.bins /= 2;
      else if (p.kmax > 16)
        p.kmax /= 2;
      else if (p.nstage_f > 1)
        --p.nstage_f;
      else if (p.bins > 4)
        p.bins /= 2;
      else if (p.kmax > 8)
        p.kmax /= 2;
      else
        break;
    }
    while (p.nstage_b > 1 && asp_attn_local_bytes(ASP_PROGRAM_ATTN_BACKWARD, &p) > avail)
      --p.nstage_b;
    if (asp_attn_local_bytes(ASP_PROGRAM_ATTN_FORWARD, &p) > avail ||
        asp_attn_local_bytes(ASP_PROGRAM_ATTN_BACKWARD, &p) > avail) {
      if (t / 2 < 16 * nw || (t / 2) % 16 != 0) return ADASPLASH_ERROR_UNSUPPORTED;
      t /= 2;
      continue;
    }
    *out = p;
    return ADASPLASH_SUCCESS;
  }
}

/* The NVIDIA tensor-core plan: its geometry, the forward's dense sweep program first (whether it
 * runs decides what attn_tau compiles: ASP_TAU_DENSE_DONE), then the program. */
static adasplash_status asp_attn_plan_nv(adasplash_context *ctx, const asp_variant_key *key,
                                         int head_dim, asp_plan *plan) {
  asp_attn_plan p;
  adasplash_status st = asp_attn_nv_geometry(ctx, head_dim, &p);
  if (st != ADASPLASH_SUCCESS) return st;
  if (key->family == ASP_PROGRAM_ATTN_FORWARD)
    st = asp_attn_plan_dense(ctx, key->dtype, head_dim, &p);
  int fits = 0;
  if (st == ADASPLASH_SUCCESS) st = asp_attn_build(ctx, key, &p, &plan->program, &fits);
  if (st != ADASPLASH_SUCCESS) return st;
  if (!fits)
    return asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "the NVIDIA attention kernels do not accept %d work-items", p.wg);
  plan->attn = p;
  return ADASPLASH_SUCCESS;
}

/* One program of asp_attn_prebuild, on its own thread. */
typedef struct asp_prebuild_job {
  adasplash_context *ctx;
  asp_variant_key key;
  asp_attn_plan plan;
} asp_prebuild_job;

static void asp_prebuild_run(void *arg) {
  asp_prebuild_job *j = (asp_prebuild_job *)arg;
  asp_defines df;
  char opts[80];
  asp_attn_program_text(j->ctx, &j->key, &j->plan, &df, opts, sizeof opts);
  asp_program *program;
  /* A failure here is met again, and reported, by the planner that needs the program. */
  (void)asp_variant_program_opts(j->ctx, &j->key, &df, opts, &program);
}

void asp_attn_prebuild(adasplash_context *ctx, const asp_attn_problem *pr) {
  const adasplash_attention_desc *d = &pr->d;
  if (!ctx->tuning.nv_build_threads || !asp_attn_uses_nv(ctx, d->dtype)) return;
  const asp_variant_key fwd_key = asp_attn_problem_key(ctx, ASP_PROGRAM_ATTN_FORWARD, pr);
  asp_plan found;
  if (asp_plan_find(ctx, &fwd_key, &found)) return; /* prepared before: nothing cold to overlap */
  asp_attn_plan g;
  if (asp_attn_nv_geometry(ctx, d->head_dim, &g) != ADASPLASH_SUCCESS) return;
  asp_prebuild_job jobs[4];
  int n = 0;
  asp_attn_plan dense;
  g.dense_rows = asp_attn_dense_candidate(ctx, &g, ctx->tuning.nv_dense_rows, &dense);
  if (g.dense_rows > 0) {
    jobs[n].key = asp_attn_problem_key(ctx, ASP_PROGRAM_ATTN_DENSE, pr);
    jobs[n++].plan = dense;
  }
  jobs[n].key = fwd_key;
  jobs[n++].plan = g;
  if (d->flags & ADASPLASH_ATTN_SAVE_ALPHA_GRAD) {
    jobs[n].key = asp_attn_problem_key(ctx, ASP_PROGRAM_ATTN_ALPHA, pr);
    jobs[n++].plan = g;
  }
  if (!(d->flags & ADASPLASH_ATTN_FORWARD_ONLY)) {
    jobs[n].key = asp_attn_problem_key(ctx, ASP_PROGRAM_ATTN_BACKWARD, pr);
    jobs[n++].plan = g;
  }
  asp_thread threads[4];
  int started[4] = {0, 0, 0, 0};
  for (int i = 0; i < n; ++i) {
    jobs[i].ctx = ctx;
    started[i] = asp_thread_start(&threads[i], asp_prebuild_run, &jobs[i]) == 0;
    if (!started[i]) asp_prebuild_run(&jobs[i]); /* no thread: build it here */
  }
  for (int i = 0; i < n; ++i)
    if (started[i]) asp_thread_join(&threads[i]);
}

adasplash_status asp_attn_prepare_plan(adasplash_context *ctx, asp_program_family family,
                                       const asp_attn_problem *pr, asp_plan *out) {
  const asp_variant_key key = asp_attn_problem_key(ctx, family, pr);
  const adasplash_dtype dtype = pr->d.dtype;
  const int head_dim = pr->d.head_dim;
  if (asp_plan_find(ctx, &key, out)) return ADASPLASH_SUCCESS;
  asp_plan plan;
  memset(&plan, 0, sizeof plan);
  plan.key = key;
  adasplash_status st;
  if (family == ASP_PROGRAM_ATTN_BACKWARD || family == ASP_PROGRAM_ATTN_ALPHA) {
    /* The backward and the alpha output pass run on the forward's tiles (the bitmap and the
     * thresholds come from its threshold pass). */
    asp_plan fwd;
    st = asp_attn_prepare_plan(ctx, ASP_PROGRAM_ATTN_FORWARD, pr, &fwd);
    if (st != ADASPLASH_SUCCESS) return st;
    plan.attn = fwd.attn;
    int fits = 0;
    st = asp_attn_build(ctx, &key, &plan.attn, &plan.program, &fits);
    if (st == ADASPLASH_SUCCESS && !fits)
      st = asp_fail(ctx, ADASPLASH_ERROR_UNSUPPORTED,
                    "the kernels of %s do not accept the forward's %d work-items on this device "
                    "(lower attn_wg)",
                    asp_program_file(family), plan.attn.wg);
  } else {
    st = ADASPLASH_ERROR_UNSUPPORTED;
    if (asp_attn_uses_nv(ctx, dtype)) st = asp_attn_plan_nv(ctx, &key, head_dim, &plan);
    if (st == ADASPLASH_ERROR_UNSUPPORTED) st = asp_attn_plan_portable(ctx, &key, head_dim, &plan);
  }
  if (st != ADASPLASH_SUCCESS) return st;
  return asp_plan_store(ctx, &plan, out);
}
