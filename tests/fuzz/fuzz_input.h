/*
 * fuzz_input.h - decoding of fuzz inputs into values: a cursor over the bytes that yields zeros
 * once the input is used up (so every input, however short, decodes to something). Integers and
 * floats are drawn in modes that make the interesting values likely: small counts, powers of two,
 * boundaries (0, -1, INT_MAX, 2^20, 2^26, 2^30, SIZE_MAX, ...) and raw bit patterns (NaN,
 * infinities, denormals). tests/fuzz/make_corpus.sh writes seeds in this format.
 */
#ifndef ADASPLASH_FUZZ_INPUT_H
#define ADASPLASH_FUZZ_INPUT_H

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct fz_input {
  const uint8_t *data;
  size_t size, pos;
} fz_input;

static inline void fz_init(fz_input *in, const uint8_t *data, size_t size) {
  in->data = data;
  in->size = size;
  in->pos = 0;
}

static inline int fz_empty(const fz_input *in) {
  return in->pos >= in->size;
}

static inline unsigned fz_u8(fz_input *in) {
  return in->pos < in->size ? in->data[in->pos++] : 0u;
}

static inline unsigned fz_u16(fz_input *in) {
  unsigned lo = fz_u8(in);
  return lo | (fz_u8(in) << 8);
}

static inline uint32_t fz_u32(fz_input *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= (uint32_t)fz_u8(in) << (8 * i);
  return v;
}

static inline uint64_t fz_u64(fz_input *in) {
  uint64_t lo = fz_u32(in);
  return lo | ((uint64_t)fz_u32(in) << 32);
}

/* 1..64 mostly, sometimes 0. */
static inline int fz_small(fz_input *in) {
  unsigned v = fz_u8(in);
  return v >= 250 ? 0 : (int)(v % 64) + 1;
}

/* Mode byte, then: a small value, a power of two (+-1), a boundary, or 32 raw bits. */
static inline int fz_int(fz_input *in) {
  static const int bounds[] = {
      0,   -1,  1,    INT_MAX, INT_MIN, 1 << 16, 1 << 20, (1 << 20) + 1, 1 << 26, (1 << 26) + 1,
      256, 257, 1000, 1001,    1 << 30, 2};
  unsigned mode = fz_u8(in);
  switch (mode % 4) {
    case 0:
      return (int)fz_u8(in) - 8;
    case 1: {
      unsigned e = fz_u8(in) % 31;
      return (int)(1u << e) + (int)(mode / 4 % 3) - 1;
    }
    case 2:
      return bounds[fz_u8(in) % (sizeof bounds / sizeof bounds[0])];
    default:
      return (int)fz_u32(in);
  }
}

/* The same modes for size_t (strides, offsets, counts, struct sizes). */
static inline size_t fz_size(fz_input *in) {
  static const size_t bounds[] = {0,
                                  1,
                                  SIZE_MAX,
                                  SIZE_MAX / 2,
                                  SIZE_MAX / 4 + 1,
                                  (size_t)1 << 30,
                                  ((size_t)1 << 30) + 1,
                                  (size_t)1 << 32,
                                  (size_t)1 << 62,
                                  (size_t)1 << 63,
                                  16,
                                  64,
                                  SIZE_MAX - 63,
                                  4096,
                                  sizeof(void *),
                                  3};
  unsigned mode = fz_u8(in);
  switch (mode % 4) {
    case 0:
      return fz_u8(in);
    case 1: {
      unsigned e = fz_u8(in) % 64;
      return ((size_t)1 << e) + (size_t)(mode / 4 % 3) - 1;
    }
    case 2:
      return bounds[fz_u8(in) % (sizeof bounds / sizeof bounds[0])];
    default:
      return (size_t)fz_u64(in);
  }
}

/* Special values (NaN, +-inf, the ends of alpha's (1, 2], denormals) or 32 raw bits. */
static inline float fz_float(fz_input *in) {
  static const float specials[] = {1.5f,        1.0f,     2.0f, 1.0000001f, 2.0000002f, 0.0f,
                                   -0.0f,       -1.0f,    0.5f, 1e-6f,      1e-45f,     3.4e38f,
                                   0.99999994f, 1.99999f, 1e4f, -1e4f};
  unsigned mode = fz_u8(in);
  if (mode % 4 == 0) {
    uint32_t bits = fz_u32(in);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  if (mode % 4 == 1) return mode & 4 ? (mode & 8 ? -INFINITY : INFINITY) : NAN;
  return specials[fz_u8(in) % (sizeof specials / sizeof specials[0])];
}

/* A length byte and that many bytes (capped at max), NUL-terminated into out[max + 1]. */
static inline void fz_string(fz_input *in, char *out, size_t max) {
  size_t n = fz_u8(in);
  if (n > max) n = max;
  for (size_t i = 0; i < n; ++i) out[i] = (char)fz_u8(in);
  out[n] = '\0';
}

/* A length (16 bits) and a byte repeated that often: long strings from short inputs. */
static inline void fz_long_string(fz_input *in, char *out, size_t max) {
  size_t n = fz_u16(in);
  if (n > max) n = max;
  char c = (char)(fz_u8(in) | 0x20);
  memset(out, c, n);
  out[n] = '\0';
}

#endif /* ADASPLASH_FUZZ_INPUT_H */
