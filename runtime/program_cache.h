/* Program-cache internals exposed for tests and tools (program.c). The
 * cache's public contract is in internal.h (hcl_program_build & co). */
#ifndef HCL_PROGRAM_CACHE_H
#define HCL_PROGRAM_CACHE_H

#include "internal.h"

/* Version of the cache key and of the .clbin header; bump to orphan old entries. */
#define HCL_CACHE_FORMAT 2u
/* Bytes of the .clbin header: magic "HCLCLBIN", u32 format, u32 reserved,
 * u64 size, u32 crc32 of the binary, u32 reserved, then the entry's key (the
 * 32 bytes of its SHA-256), so that a valid file under another program's
 * name is refused; integers little-endian. */
#define HCL_CLBIN_HEADER 64

/* Process-wide counters of what hcl_program_build did, for tests and the
 * debug tally (incremented atomically: a sweep's threads build programs at once). */
typedef struct hcl_program_cache_stats {
  unsigned long hits;     /* loaded from the cache */
  unsigned long misses;   /* looked up, absent, built from source */
  unsigned long saves;    /* written to the cache */
  unsigned long rejected; /* corrupt, unreadable or failing entries deleted, then rebuilt */
  unsigned long uncached; /* built from source with the cache off (policy) */
  unsigned long prebuilt; /* loaded from binary_dir (device without compiler) */
  unsigned long exported; /* recorded in the export folder (hiercl programs) */
} hcl_program_cache_stats;

/* Copy the counters into *out. */
void hcl_program_cache_stats_get(hcl_program_cache_stats *out);
/* Zero the counters. */
void hcl_program_cache_stats_reset(void);
/* 1 when ctx's policy (auto skips PoCL and NVIDIA) uses the on-disk cache. */
int hcl_program_cache_enabled(const hcl_ctx *ctx);
/* The 32 bytes of a 64-digit hex key (as stored in the .clbin header). */
void hcl_program_cache_key_bytes(const char key[65], unsigned char out[32]);
/* Path of a cache entry: <dir>/<key[0..1]>/<key>.clbin. */
void hcl_program_cache_path(const char *dir, const char key[65], char *out, size_t len);
/* The text actually compiled: the common library, "\n#line 1\n", then src (malloc'd; NULL if out of
 * memory). */
char *hcl_program_full_source(const char *src);

#endif
