/* Internal interfaces of the Random Hierarchy Model target plugin (SPEC 1.2).
 *
 * Tree layout. The root (depth 0) holds the class; a node at depth t < L
 * holds a symbol and picks one of the m rules of that symbol, which produces
 * its s children at depth t + 1; the d = s^L leaves are the input tokens.
 * Nodes are numbered breadth first: node k of depth t is node
 * (s^t - 1)/(s - 1) + k, and there are n_dig = (s^L - 1)/(s - 1) nodes with
 * a rule choice ("digit", in [0, m)).
 *
 * Rule tables (per replica, flat uint): depth 0 (the class level) is
 * [n_c][m][s], each depth t = 1..L-1 is [v][m][s]; rules[sym][j] is the
 * s-tuple (tokens in [0, v)) that rule j of `sym` produces. Level
 * ell = 1..L of SPEC/the paper counts from the bottom: level ell is the
 * tuples produced at depth t = L - ell (level 1 = the input tuples, level L =
 * the tuple produced by the class).
 *
 * Index -> datum (P_max < 2^63): label = idx / (P_max / n_c); the rest,
 * written in base m with n_dig digits, most significant first, gives digit
 * j of node j (breadth-first order = level by level from the top, left to
 * right). */
#ifndef HCL_RHM_H
#define HCL_RHM_H

#include "hiercl/plugin.h"

#include <stddef.h>
#include <stdint.h>

/* ---- stream ids: "RHM" in the top 24 bits, a purpose byte, a sub-id ----- */
#define RHM_STREAM_RULES 0x52484D0000000000ULL   /* | depth t: rule draws (host) */
#define RHM_STREAM_FEISTEL 0x52484D0100000000ULL /* Feistel round function */
#define RHM_STREAM_DRAW 0x52484D0200000000ULL    /* | s: with-replacement data */
#define RHM_STREAM_SYN 0x52484D0300000000ULL     /* | ell: probe synonym re-draws */
#define RHM_FEISTEL_ROUNDS 8u

enum { RHM_RULES_UNIFORM = 0, RHM_RULES_REN };
enum { RHM_WHITEN_NONE = 0, RHM_WHITEN_CENTERED, RHM_WHITEN_PRX };
/* How a stream turns its sample index into a datum. */
enum { RHM_MODE_INDEX = 0, RHM_MODE_DRAW = 1 };

/* ---- grammar sizes and host-side sampling (grammar.c) ------------------- */
__extension__ typedef unsigned __int128 rhm_u128; /* GCC/Clang */

typedef struct rhm_dims {
  uint64_t n_c, v, m, s, L;
  uint64_t d;            /* s^L */
  uint64_t n_dig;        /* (s^L - 1)/(s - 1) */
  rhm_u128 p_max;        /* n_c * m^n_dig, saturated at RHM_U128_SAT */
  int p_max_sat;         /* 1 when the true P_max is >= RHM_U128_SAT */
  uint64_t vs;           /* v^s (checked < 2^64) */
  uint64_t vs1;          /* v^(s-1) */
  size_t table_size;     /* uints of one replica's rule tables */
  int index_mode;        /* P_max < 2^63: exact index -> datum bijection */
  uint64_t per_class;    /* P_max / n_c (index mode) */
  uint32_t feistel_half; /* Feistel half width h: domain 2^(2h) >= P_max */
} rhm_dims;

#define RHM_U128_SAT ((rhm_u128)1 << 126)
#define RHM_MAX_D 1048576u      /* d = s^L */
#define RHM_MAX_X 268435456u    /* v * d floats of one sample */
#define RHM_MAX_TABLE 67108864u /* uints of one replica's rule tables */

/* Fill dims from (n_c, v, m, s, L) and check SPEC's bounds and the plugin's
 * size limits. 0, or -1 with a message stating the violated bound in why. */
int rhm_dims_init(rhm_dims *g, uint64_t n_c, uint64_t v, uint64_t m, uint64_t s, uint64_t L,
                  char *why, size_t len);
/* Offset (uints) of the depth-t table within one replica's tables. */
size_t rhm_table_offset(const rhm_dims *g, uint64_t t);
/* Parents at depth t: n_c at t = 0, v below. */
uint64_t rhm_parents(const rhm_dims *g, uint64_t t);
/* Decimal text of a 128-bit number. */
void rhm_u128_text(rhm_u128 x, char *buf, size_t len);

/* A host Philox (host->philox, or the runtime's hcl_philox4x32 in tests). */
typedef void (*rhm_philox_fn)(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* Sequential reader of stream (seed, id): element e is word e % 4 of block
 * e / 4, exactly as kernels/common.cl lays out streams. */
typedef struct rhm_stream {
  rhm_philox_fn philox;
  uint64_t seed, id, next;
  uint64_t block;
  uint32_t w[4];
  int have;
} rhm_stream;

void rhm_stream_init(rhm_stream *st, rhm_philox_fn philox, uint64_t seed, uint64_t id);
uint32_t rhm_stream_u32(rhm_stream *st);
/* lo word first, then hi word. */
uint64_t rhm_stream_u64(rhm_stream *st);
/* Exactly uniform in [0, n), n >= 1 (Lemire's multiply with rejection). */
uint64_t rhm_stream_below(rhm_stream *st, uint64_t n);
/* out[0..K) = an ordered uniform sample without replacement of [0, N): the
 * first K entries of a Fisher-Yates shuffle of 0..N-1 (sparse, O(K) memory).
 * 0, or -1 when out of memory. */
int rhm_sample_distinct(rhm_stream *st, uint64_t N, size_t K, uint64_t *out);

/* Rule tables of one replica into tables[table_size]: uniform or ren
 * sampler, level t drawn from stream (seed, RHM_STREAM_RULES | t).
 * 0, or -1 when out of memory. */
int rhm_rules_build(const rhm_dims *g, int kind, rhm_philox_fn philox, uint64_t seed,
                    uint32_t *tables);

/* Host mirror of the device Feistel bijection of [0, P_max) (index mode). */
uint64_t rhm_feistel_perm(const rhm_dims *g, rhm_philox_fn philox, uint64_t seed, uint64_t x);

/* One-hot values after whitening (computed in double, rounded once). */
void rhm_whiten_values(int whitening, uint64_t v, float *on, float *off);

/* ---- the target (plugin.c, sample.c, probe.c) --------------------------- */
/* Index map of one data stream. */
typedef struct rhm_stream_map {
  int mode;      /* RHM_MODE_INDEX or RHM_MODE_DRAW */
  uint64_t base; /* index mode: first permuted index */
  uint64_t wrap; /* sample index taken modulo wrap (0: none) */
} rhm_stream_map;

typedef struct rhm_target {
  hcl_ctx *ctx;          /* NULL in check(): no notes, no logs */
  const hcl_report *rep; /* where configure() reports (create or check) */
  size_t R;
  uint64_t *seeds;
  rhm_dims g;
  int rules_kind, whitening;
  float x_on, x_off;
  uint64_t train_size, test_size, val_size;
  size_t max_batch;
  rhm_stream_map map[5]; /* train, test, probe, unlabelled, val (HCL_STREAM_*) */
  uint32_t *tables;      /* [R, table_size] */
  /* probe */
  uint64_t probe_samples;
  size_t n_layers, n_levels;
  uint32_t layers[64], levels[64];
  int layers_default;
  /* device */
  cl_program prog;
  cl_kernel k_sample, k_sqdist;
  hcl_buf d_seeds, d_rules;
  size_t probe_chunk, probe_dim;
  hcl_buf p_x, p_y, p_fa, p_fb, p_dist;
} rhm_target;

/* Upload the seeds and rule tables, compile the kernels (sample.c). */
hcl_status rhm_device_init(rhm_target *t);
void rhm_device_release(rhm_target *t);
hcl_status rhm_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x, hcl_buf y);
/* sample() with the digits of depth t re-drawn from (seed, RHM_STREAM_SYN |
 * ell) (ell = L - t; ell = 0: no re-draw), for the sensitivity probe. */
hcl_status rhm_sample_ext(rhm_target *t, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                          hcl_buf y, uint32_t ell);
/* out [R, n] = squared distance of rows of a and b [R, n, D] (sample.c). */
hcl_status rhm_sqdist(rhm_target *t, hcl_buf a, hcl_buf b, size_t n, size_t D, hcl_buf out);
/* The synonymic-sensitivity probe (probe.c). */
hcl_status rhm_probe(void *self, hcl_probe *p);

#endif
