/*
 * variant.c - kernel variants (see variant.h): the device path choice, variant keys, the canonical
 * -D defines of a variant and the store of typed plans per context.
 */
#include "variant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mma.sync m16n8k16 with bf16 operands, ldmatrix and cp.async: compute capability 8.0 and later. */
static int asp_variant_nv_capable(const adasplash_context *ctx) {
  return ctx->dev.is_nvidia && ctx->dev.info.nvidia_compute_capability >= 80;
}

adasplash_status asp_variant_choose_path(const adasplash_context *ctx, const char *request,
                                         adasplash_kernel_path *path, int *automatic) {
  if (!request) request = asp_getenv("ADASPLASH_PATH");
  if (!request) request = "auto";
  *automatic = asp_equals_nocase(request, "auto");
  *path = ADASPLASH_PATH_PORTABLE;
  if (*automatic) {
    if (asp_variant_nv_capable(ctx)) *path = ADASPLASH_PATH_NVIDIA_MMA;
    return ADASPLASH_SUCCESS;
  }
  if (asp_equals_nocase(request, "portable")) return ADASPLASH_SUCCESS;
  if (asp_equals_nocase(request, "nvidia")) {
    if (!asp_variant_nv_capable(ctx) && !ctx->tuning.nv_emulate)
      return asp_fail(NULL, ADASPLASH_ERROR_UNSUPPORTED,
                      "kernel path \"nvidia\" needs an NVIDIA device of compute capability >= "
                      "8.0 (this one: %s, capability %d); use \"portable\" or \"auto\"",
                      ctx->dev.info.device_name, ctx->dev.info.nvidia_compute_capability);
    *path = ADASPLASH_PATH_NVIDIA_MMA;
    return ADASPLASH_SUCCESS;
  }
  return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                  "kernel path \"%s\" is unknown (use auto, portable or nvidia)", request);
}

int asp_variant_nv_native(const adasplash_context *ctx) {
  return ctx->path == ADASPLASH_PATH_NVIDIA_MMA && asp_variant_nv_capable(ctx);
}

/* NVIDIA's OpenCL compiler takes inline PTX: one red.add per float atomic (cl/atomics.clh), and
 * from compute capability 9.0 red.global.v2.f32.add is allowed per pair of adjacent floats (opt-in,
 * atomics.clh): ASP_PTX_ATOMICS 2 (or 1, or 0: none). Vendor code, so only where the nvidia path
 * runs natively or "auto" runs on an NVIDIA device. */
static int asp_variant_ptx_atomics(const adasplash_context *ctx) {
  if (!(asp_variant_nv_native(ctx) || (ctx->path_auto && ctx->dev.is_nvidia))) return 0;
  return ctx->dev.info.nvidia_compute_capability >= 90 ? 2 : 1;
}

asp_variant_key asp_variant_key_of(const adasplash_context *ctx, asp_program_family family,
                                   adasplash_dtype dtype, int head_dim, int tile) {
  asp_variant_key k;
  memset(&k, 0, sizeof k);
  k.family = family;
  k.path = ctx->path;
  k.device_class = ctx->dev.device_class;
  k.dtype = dtype;
  k.head_dim = head_dim;
  k.tile = tile;
  return k;
}

static int asp_key_equal(const asp_variant_key *a, const asp_variant_key *b) {
  return a->family == b->family && a->path == b->path && a->device_class == b->device_class &&
         a->dtype == b->dtype && a->head_dim == b->head_dim && a->tile == b->tile &&
         a->alpha_class == b->alpha_class;
}

/* ---- defines ----------------------------------------------------------------------------------
 */

void asp_defines_init(asp_defines *d, const adasplash_context *ctx, const asp_variant_key *key) {
  d->path = (int)key->path;
  d->count = 0;
  asp_defines_add_int(d, "ASP_DTYPE", (long)key->dtype);
  if (key->family == ASP_PROGRAM_ATTN_BACKWARD && asp_variant_ptx_atomics(ctx))
    asp_defines_add_int(d, "ASP_PTX_ATOMICS", asp_variant_ptx_atomics(ctx));
}

void asp_defines_add_int(asp_defines *d, const char *name, long value) {
  if (d->count >= (int)(sizeof d->items / sizeof d->items[0])) return;
  snprintf(d->items[d->count++], sizeof d->items[0], "-D%s=%ld", name, value);
}

static int asp_cmp_str(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

void asp_defines_text(const asp_defines *d, char *out, size_t out_size) {
  asp_defines sorted = *d;
  qsort(sorted.items, (size_t)sorted.count, sizeof sorted.items[0], asp_cmp_str);
  snprintf(out, out_size, "-DASP_PATH=%d ", d->path);
  for (int i = 0; i < sorted.count; ++i) {
    if (i) strncat(out, " ", out_size - strlen(out) - 1);
    strncat(out, sorted.items[i], out_size - strlen(out) - 1);
  }
}

adasplash_status asp_variant_program_opts(adasplash_context *ctx, const asp_variant_key *key,
                                          const asp_defines *d, const char *options,
                                          asp_program **program) {
  char text[1024];
  asp_defines_text(d, text, sizeof text);
  if (options && options[0]) {
    strncat(text, " ", sizeof text - strlen(text) - 1);
    strncat(text, options, sizeof text - strlen(text) - 1);
  }
  return asp_program_get(ctx, key->family, text, program);
}

adasplash_status asp_variant_program(adasplash_context *ctx, const asp_variant_key *key,
                                     const asp_defines *d, asp_program **program) {
  return asp_variant_program_opts(ctx, key, d, "", program);
}

/* ---- plans ------------------------------------------------------------------------------------
 */

int asp_plan_find(adasplash_context *ctx, const asp_variant_key *key, asp_plan *out) {
  int found = 0;
  asp_mutex_lock(&ctx->lock);
  for (asp_plan *p = ctx->plans; p && !found; p = p->next)
    if (asp_key_equal(&p->key, key)) {
      *out = *p;
      found = 1;
    }
  asp_mutex_unlock(&ctx->lock);
  return found;
}

adasplash_status asp_plan_store(adasplash_context *ctx, const asp_plan *plan, asp_plan *out) {
  asp_mutex_lock(&ctx->lock);
  asp_plan *p = ctx->plans;
  while (p && !asp_key_equal(&p->key, &plan->key)) p = p->next;
  if (!p) {
    p = (asp_plan *)malloc(sizeof *p);
    if (!p) {
      asp_mutex_unlock(&ctx->lock);
      return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "allocating a plan");
    }
    *p = *plan;
    p->next = ctx->plans;
    ctx->plans = p;
  }
  *out = *p;
  asp_mutex_unlock(&ctx->lock);
  return ADASPLASH_SUCCESS;
}

void asp_plan_release_all(adasplash_context *ctx) {
  asp_plan *plan = ctx->plans;
  while (plan) {
    asp_plan *next = plan->next;
    free(plan);
    plan = next;
  }
  ctx->plans = NULL;
}
