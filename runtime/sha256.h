/* Streaming SHA-256 (FIPS 180-4) and CRC-32 for the program cache
 * (sha256.c). The one-shot forms are declared in internal.h. */
#ifndef HCL_SHA256_H
#define HCL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct hcl_sha256_ctx {
  uint32_t h[8];
  uint64_t bytes;    /* message length so far */
  uint8_t block[64]; /* pending partial block */
  size_t fill;
} hcl_sha256_ctx;

/* Start a new digest. */
void hcl_sha256_init(hcl_sha256_ctx *s);
/* Feed len bytes. */
void hcl_sha256_update(hcl_sha256_ctx *s, const void *data, size_t len);
/* Finish: 32-byte digest into out; s must be re-initialised to be reused. */
void hcl_sha256_final(hcl_sha256_ctx *s, uint8_t out[32]);
/* Lowercase hex of a 32-byte digest (64 chars + NUL). */
void hcl_sha256_to_hex(const uint8_t digest[32], char out[65]);
/* CRC-32 (IEEE 802.3, as zlib's crc32) of len bytes, continuing from crc (0 to start). */
uint32_t hcl_crc32(uint32_t crc, const void *data, size_t len);

#endif
