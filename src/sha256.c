/* sha256.c - Portable SHA-256 (FIPS 180-2) and lowercase hex encoding for adasplash-cl.
 *
 * Straightforward byte-oriented implementation: endian-independent, no dynamic allocation. */
#include "sha256.h"

#include <string.h>

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t asp_sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

static uint32_t asp_rotr32(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32u - n));
}

static uint32_t asp_load_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void asp_store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void asp_sha256_compress(uint32_t state[8], const uint8_t block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) w[i] = asp_load_be32(block + 4 * i);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = asp_rotr32(w[i - 15], 7) ^ asp_rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = asp_rotr32(w[i - 2], 17) ^ asp_rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }

  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t big_s1 = asp_rotr32(e, 6) ^ asp_rotr32(e, 11) ^ asp_rotr32(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + big_s1 + ch + asp_sha256_k[i] + w[i];
    uint32_t big_s0 = asp_rotr32(a, 2) ^ asp_rotr32(a, 13) ^ asp_rotr32(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = big_s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

void asp_sha256_init(asp_sha256_ctx *s) {
  s->state[0] = 0x6a09e667u;
  s->state[1] = 0xbb67ae85u;
  s->state[2] = 0x3c6ef372u;
  s->state[3] = 0xa54ff53au;
  s->state[4] = 0x510e527fu;
  s->state[5] = 0x9b05688cu;
  s->state[6] = 0x1f83d9abu;
  s->state[7] = 0x5be0cd19u;
  s->length = 0;
  s->used = 0;
  memset(s->block, 0, sizeof(s->block));
}

void asp_sha256_update(asp_sha256_ctx *s, const void *data, size_t len) {
  if (len == 0) return;
  const uint8_t *p = (const uint8_t *)data;
  s->length += (uint64_t)len;

  if (s->used > 0) {
    size_t take = ASP_SHA256_BLOCK_SIZE - s->used;
    if (take > len) take = len;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    len -= take;
    if (s->used < ASP_SHA256_BLOCK_SIZE) return;
    asp_sha256_compress(s->state, s->block);
    s->used = 0;
  }
  while (len >= ASP_SHA256_BLOCK_SIZE) {
    asp_sha256_compress(s->state, p);
    p += ASP_SHA256_BLOCK_SIZE;
    len -= ASP_SHA256_BLOCK_SIZE;
  }
  if (len > 0) {
    memcpy(s->block, p, len);
    s->used = len;
  }
}

void asp_sha256_final(asp_sha256_ctx *s, uint8_t digest[32]) {
  uint64_t bit_length = s->length * 8u;

  s->block[s->used++] = 0x80u;
  if (s->used > ASP_SHA256_BLOCK_SIZE - 8) {
    memset(s->block + s->used, 0, ASP_SHA256_BLOCK_SIZE - s->used);
    asp_sha256_compress(s->state, s->block);
    s->used = 0;
  }
  memset(s->block + s->used, 0, ASP_SHA256_BLOCK_SIZE - 8 - s->used);
  for (int i = 0; i < 8; ++i) {
    s->block[ASP_SHA256_BLOCK_SIZE - 1 - i] = (uint8_t)(bit_length >> (8 * i));
  }
  asp_sha256_compress(s->state, s->block);

  for (int i = 0; i < 8; ++i) asp_store_be32(digest + 4 * i, s->state[i]);
  memset(s, 0, sizeof(*s));
}

void asp_sha256(const void *data, size_t len, uint8_t digest[32]) {
  asp_sha256_ctx s;
  asp_sha256_init(&s);
  asp_sha256_update(&s, data, len);
  asp_sha256_final(&s, digest);
}

void asp_hex(const uint8_t *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0x0fu];
  }
  out[2 * n] = '\0';
}
