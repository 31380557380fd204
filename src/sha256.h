/* sha256.h - Internal SHA-256 (FIPS 180-2) hashing and lowercase hex encoding for adasplash-cl.
 *
 * Used to derive program-cache keys and to checksum on-disk cache entries. Not a public API. */
#ifndef ADASPLASH_SRC_SHA256_H_
#define ADASPLASH_SRC_SHA256_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASP_SHA256_DIGEST_SIZE 32
#define ASP_SHA256_BLOCK_SIZE 64

/* Streaming hash state. Initialize with asp_sha256_init before use. The typedef is asp_sha256_ctx
 * (not asp_sha256) because C puts typedef and function names in one namespace and asp_sha256 is the
 * one-shot function; "struct asp_sha256" works too. */
typedef struct asp_sha256 {
  uint32_t state[8];
  uint64_t length; /* total bytes fed so far */
  uint8_t block[64];
  size_t used; /* bytes currently buffered in block */
} asp_sha256_ctx;

void asp_sha256_init(asp_sha256_ctx *s);
/* data may be NULL when len is 0. */
void asp_sha256_update(asp_sha256_ctx *s, const void *data, size_t len);
/* Writes the digest and wipes the state; call asp_sha256_init again to reuse s. */
void asp_sha256_final(asp_sha256_ctx *s, uint8_t digest[32]);
/* One-shot convenience wrapper. */
void asp_sha256(const void *data, size_t len, uint8_t digest[32]);
/* Lowercase hex of n bytes: writes 2n characters plus a terminating NUL to out. */
void asp_hex(const uint8_t *bytes, size_t n, char *out);

#ifdef __cplusplus
}
#endif

#endif /* ADASPLASH_SRC_SHA256_H_ */
