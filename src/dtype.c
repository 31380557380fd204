/*
 * dtype.c - element sizes and host conversions between fp32, fp16 and bf16 (round to nearest even).
 */
#include <math.h>
#include <string.h>

#include "dtype.h"
#include "internal.h"

size_t adasplash_dtype_size(adasplash_dtype dtype) {
  switch (dtype) {
    case ADASPLASH_F32:
      return 4;
    case ADASPLASH_F16:
    case ADASPLASH_BF16:
      return 2;
  }
  return 0;
}

static uint32_t asp_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float asp_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t asp_f32_to_f16(float f) {
  uint32_t x = asp_f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xffu) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0u));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    /* Subnormal half: shift the full mantissa (with its implicit bit) and round to nearest even. */
    uint32_t m = mant | 0x800000u;
    int shift = 14 - e;
    uint32_t half = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return (uint16_t)(sign | half);
  }
  uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h; /* may carry into the exponent: correct */
  return (uint16_t)h;
}

float asp_f16_to_f32(uint16_t h) {
  uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
  uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
  uint32_t mant = (uint32_t)h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return asp_bits_f32(sign);
    float f = ldexpf((float)mant, -24);
    return sign ? -f : f;
  }
  if (exp == 31) return asp_bits_f32(sign | 0x7f800000u | (mant << 13));
  return asp_bits_f32(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

uint16_t asp_f32_to_bf16(float f) {
  uint32_t x = asp_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)((x + rounding) >> 16);
}

float asp_bf16_to_f32(uint16_t b) {
  return asp_bits_f32((uint32_t)b << 16);
}

float asp_load_as_f32(const void *base, adasplash_dtype dtype, size_t index) {
  switch (dtype) {
    case ADASPLASH_F32: {
      float f;
      memcpy(&f, (const char *)base + 4 * index, 4);
      return f;
    }
    case ADASPLASH_F16: {
      uint16_t h;
      memcpy(&h, (const char *)base + 2 * index, 2);
      return asp_f16_to_f32(h);
    }
    case ADASPLASH_BF16: {
      uint16_t b;
      memcpy(&b, (const char *)base + 2 * index, 2);
      return asp_bf16_to_f32(b);
    }
  }
  return NAN;
}

void asp_store_from_f32(void *base, adasplash_dtype dtype, size_t index, float value) {
  switch (dtype) {
    case ADASPLASH_F32:
      memcpy((char *)base + 4 * index, &value, 4);
      return;
    case ADASPLASH_F16: {
      uint16_t h = asp_f32_to_f16(value);
      memcpy((char *)base + 2 * index, &h, 2);
      return;
    }
    case ADASPLASH_BF16: {
      uint16_t b = asp_f32_to_bf16(value);
      memcpy((char *)base + 2 * index, &b, 2);
      return;
    }
  }
}

adasplash_status adasplash_convert(const void *src, adasplash_dtype src_dtype, void *dst,
                                   adasplash_dtype dst_dtype, size_t n) {
  if (adasplash_dtype_size(src_dtype) == 0)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_convert: src_dtype %d is invalid", (int)src_dtype);
  if (adasplash_dtype_size(dst_dtype) == 0)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_convert: dst_dtype %d is invalid", (int)dst_dtype);
  if (n == 0) return ADASPLASH_SUCCESS;
  if (!src)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "adasplash_convert: src is NULL");
  if (!dst)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT, "adasplash_convert: dst is NULL");
  if (src == dst && src_dtype == dst_dtype) return ADASPLASH_SUCCESS;
  size_t sb = adasplash_dtype_size(src_dtype) * n, db = adasplash_dtype_size(dst_dtype) * n;
  const char *s = (const char *)src;
  char *d = (char *)dst;
  if (s < d + db && d < s + sb)
    return asp_fail(NULL, ADASPLASH_ERROR_INVALID_ARGUMENT,
                    "adasplash_convert: src and dst overlap");
  for (size_t i = 0; i < n; ++i)
    asp_store_from_f32(dst, dst_dtype, i, asp_load_as_f32(src, src_dtype, i));
  return ADASPLASH_SUCCESS;
}
