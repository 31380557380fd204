/*
 * warmup.c - adasplash_warmup: compiles (or loads from the disk cache) every kernel variant the
 * library can use on the context's device.
 */
#include "entmax_rows.h"
#include "internal.h"

adasplash_status adasplash_warmup(adasplash_context *ctx) {
  if (!ctx)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "adasplash_warmup: ctx is NULL");
  static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_F16, ADASPLASH_BF16};
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; ++i) {
    adasplash_status st = asp_rows_prepare(ctx, dtypes[i]);
    if (st != ADASPLASH_SUCCESS) return st;
  }
  return ADASPLASH_SUCCESS;
}
