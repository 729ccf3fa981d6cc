/* rhm target plugin (SPEC 1.2), loaded through the runtime loader:
 * device samples bit for bit against an independent host reference of the
 * documented layout (Feistel bijection, index -> datum, with-replacement
 * draws, one-hot and whitening) for both rule samplers, train/test/probe
 * streams, two replicas and batch splits; rule tables (shapes, no repeated
 * tuple, ren's first-token counts); every datum parses bottom-up to its
 * label; full enumeration of small grammars gives each datum once; the keyed
 * bijection is a permutation; the bounds and their messages; the
 * synonymic-sensitivity probe against a host recomputation with a fake model
 * (one layer invariant to level-1 synonyms by construction). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcl_test.h"
#include "trainer.h"

/* The plugin's host-side grammar code (sizes, rule samplers), compiled in
 * so the tables the device uses can be rebuilt and checked directly. */
#include "../targets/rhm/grammar.c"

static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_target_vt *g_vt;

/* Stream ids as documented in rhm.cl / the manifest note (not taken from rhm.h). */
#define T_FEISTEL 0x52484D0100000000ULL
#define T_DRAW 0x52484D0200000000ULL
#define T_SYN 0x52484D0300000000ULL

static int setup_group(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("rhm", HCL_PLUGIN_TARGET, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

static hcl_status make(const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                       uint64_t T, size_t max_batch, void **self) {
  return hcl_test_target_make(g_ctx, g_desc, kv, R, seeds, P, T, max_batch, self);
}

static void make_ok(const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P, uint64_t T,
                    size_t max_batch, void **self) {
  if (make(kv, R, seeds, P, T, max_batch, self) != HCL_OK)
    fail_msg("create: %s", hcl_errmsg(g_ctx));
}

static hcl_buf alloc_f(size_t n) {
  hcl_buf b;
  assert_int_equal(hcl_buf_alloc(g_ctx, n * sizeof(float), &b), HCL_OK);
  return b;
}

static const char *note_of(const char *key) {
  for (size_t i = 0; i < g_ctx->n_notes; i++)
    if (!strcmp(g_ctx->notes[i].key, key)) return g_ctx->notes[i].value;
  return NULL;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- independent reference of the documented layout ---------------------- */
typedef struct ref {
  uint64_t n_c, v, m, s, L, d, n_dig;
  uint64_t pmax; /* valid when index */
  int index;     /* P_max < 2^63 */
  uint32_t half;
  float on, off;
  size_t R;
  uint64_t seeds[4];
  uint32_t *tab[4]; /* per replica, [table_size] from grammar.c */
  size_t table_size;
  uint64_t P, T, N; /* train, test, probe_samples */
} ref;

static uint64_t ipow(uint64_t b, uint64_t e) {
  uint64_t r = 1;
  while (e--) r *= b;
  return r;
}

/* Fill a reference for a grammar; tables through the plugin's samplers. */
static void ref_init(ref *f, uint64_t n_c, uint64_t v, uint64_t m, uint64_t s, uint64_t L, int kind,
                     int whitening, size_t R, const uint64_t *seeds, uint64_t P, uint64_t T,
                     uint64_t N) {
  memset(f, 0, sizeof *f);
  f->n_c = n_c, f->v = v, f->m = m, f->s = s, f->L = L;
  f->d = ipow(s, L);
  f->n_dig = (f->d - 1) / (s - 1);
  double lg = log2((double)n_c) + (double)f->n_dig * log2((double)m);
  f->index = lg < 62.5;
  if (f->index) {
    f->pmax = n_c * ipow(m, f->n_dig);
    uint32_t k = 0;
    while ((1ULL << k) < f->pmax || k < 2) k++;
    f->half = (k + 1) / 2;
  }
  double dv = (double)v;
  if (whitening == 1) {
    f->on = (float)((1 - 1 / dv) / sqrt(1 - 1 / dv));
    f->off = (float)(-(1 / dv) / sqrt(1 - 1 / dv));
  } else if (whitening == 2) {
    double c = pow(dv - 1, -0.5);
    f->on = (float)(1 + c - c);
    f->off = (float)(-c);
  } else {
    f->on = 1.0f, f->off = 0.0f;
  }
  rhm_dims g;
  char why[256];
  if (rhm_dims_init(&g, n_c, v, m, s, L, why, sizeof why)) fail_msg("dims: %s", why);
  assert_int_equal(g.index_mode, f->index);
  if (f->index) {
    assert_true(g.p_max == f->pmax);
    assert_int_equal(g.feistel_half, f->half);
  }
  f->table_size = (size_t)((n_c + (L - 1) * v) * m * s);
  assert_int_equal(g.table_size, f->table_size);
  f->R = R;
  for (size_t r = 0; r < R; r++) {
    f->seeds[r] = seeds[r];
    f->tab[r] = malloc(f->table_size * sizeof(uint32_t));
    assert_int_equal(rhm_rules_build(&g, kind, hcl_philox4x32, seeds[r], f->tab[r]), 0);
  }
  f->P = P, f->T = T, f->N = N;
}

static void ref_free(ref *f) {
  for (size_t r = 0; r < f->R; r++) free(f->tab[r]);
}

static const uint32_t *ref_level(const ref *f, size_t r, uint64_t t) {
  return f->tab[r] + (t == 0 ? 0 : (f->n_c + (t - 1) * f->v) * f->m * f->s);
}

static void philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t w[4]) {
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
  hcl_philox4x32(key, ctr, w);
}

static uint64_t ref_below(uint64_t seed, uint64_t stream, uint64_t e, uint64_t n) {
  uint32_t w[4];
  philox_block(seed, stream, e / 4, w);
  uint64_t u = (uint64_t)w[e % 4] | (uint64_t)w[e % 4 + 1] << 32;
  return (uint64_t)(((unsigned __int128)u * n) >> 64);
}

static uint64_t ref_feistel1(uint64_t seed, uint32_t half, uint64_t x) {
  uint64_t mask = (1ULL << half) - 1;
  uint64_t l = x >> half, r = x & mask;
  for (uint64_t k = 0; k < 8; k++) {
    uint32_t w[4];
    philox_block(seed, T_FEISTEL, k << 32 | r, w);
    uint64_t f = w[0] & mask;
    uint64_t nl = r;
    r = l ^ f;
    l = nl;
  }
  return l << half | r;
}

static uint64_t ref_perm(uint64_t seed, uint32_t half, uint64_t pmax, uint64_t x) {
  uint64_t y = ref_feistel1(seed, half, x);
  while (y >= pmax) y = ref_feistel1(seed, half, y);
  return y;
}

/* Sample j0 of a stream for replica r: label and d tokens (ell > 0: the
 * digits of depth L - ell re-drawn as the probe does). */
static uint64_t ref_sample(const ref *f, size_t r, uint32_t stream, uint64_t j0, uint32_t ell,
                           uint32_t *tok) {
  uint64_t seed = f->seeds[r], pm = f->pmax, P = f->P, T = f->T;
  int draw = !f->index;
  uint64_t base = 0, wrap = 0;
  if (f->index) {
    if (stream == HCL_STREAM_TRAIN) {
      base = P ? 0 : T;
      wrap = P ? P : pm - T;
    } else if (stream == HCL_STREAM_TEST) {
      base = P;
      wrap = T ? T : pm - P;
      if (!T && pm == P) draw = 1, base = 0, wrap = 0;
    } else {
      uint64_t q = pm - P - T, need = 2 * (f->N ? f->N : 1);
      if (P && q >= need)
        base = P + T, wrap = q;
      else
        draw = 1;
    }
  } else {
    wrap = stream == HCL_STREAM_TRAIN ? P : stream == HCL_STREAM_TEST ? T : 0;
  }
  uint64_t j = wrap ? j0 % wrap : j0;
  uint64_t *dig = calloc(f->n_dig, sizeof *dig), label;
  uint64_t E = 4 * ((2 + 2 * f->n_dig + 3) / 4);
  if (!draw) {
    uint64_t idx = ref_perm(seed, f->half, pm, base + j), per = pm / f->n_c;
    label = idx / per;
    uint64_t rest = idx % per;
    for (uint64_t q = f->n_dig; q-- > 0;) {
      dig[q] = rest % f->m;
      rest /= f->m;
    }
  } else {
    uint64_t st = T_DRAW | stream;
    label = ref_below(seed, st, j * E, f->n_c);
    for (uint64_t q = 0; q < f->n_dig; q++) dig[q] = ref_below(seed, st, j * E + 2 + 2 * q, f->m);
  }
  if (ell) {
    uint64_t t = f->L - ell, lo = (ipow(f->s, t) - 1) / (f->s - 1), w = ipow(f->s, t);
    uint64_t Et = 4 * ((2 * w + 3) / 4);
    for (uint64_t k = 0; k < w; k++)
      dig[lo + k] = ref_below(seed, T_SYN | ell, j0 * Et + 2 * k, f->m);
  }
  /* breadth-first expansion with two arrays */
  uint32_t *cur = malloc(f->d * sizeof *cur), *nxt = malloc(f->d * sizeof *nxt);
  cur[0] = (uint32_t)label;
  uint64_t width = 1, node0 = 0;
  for (uint64_t t = 0; t < f->L; t++) {
    const uint32_t *tab = ref_level(f, r, t);
    for (uint64_t k = 0; k < width; k++) {
      const uint32_t *rule = tab + (cur[k] * f->m + dig[node0 + k]) * f->s;
      for (uint64_t c = 0; c < f->s; c++) nxt[k * f->s + c] = rule[c];
    }
    memcpy(cur, nxt, width * f->s * sizeof *cur);
    node0 += width;
    width *= f->s;
  }
  memcpy(tok, cur, f->d * sizeof *tok);
  free(cur);
  free(nxt);
  free(dig);
  return label;
}

/* Draw count samples of a stream into host x [R, count, v*d], y [R, count]. */
static void draw(void *self, const ref *f, uint32_t stream, uint64_t first, size_t count, float *x,
                 float *y) {
  size_t xs = (size_t)(f->v * f->d);
  hcl_buf dx = alloc_f(f->R * count * xs), dy = alloc_f(f->R * count);
  assert_int_equal(g_vt->sample(self, stream, first, count, dx, dy), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dx, x, f->R * count * xs * sizeof(float)), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dy, y, f->R * count * sizeof(float)), HCL_OK);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dy);
}

static void check_rows(const ref *f, uint32_t stream, uint64_t first, size_t count, const float *x,
                       const float *y) {
  size_t xs = (size_t)(f->v * f->d);
  uint32_t *tok = malloc(f->d * sizeof *tok);
  for (size_t r = 0; r < f->R; r++)
    for (size_t i = 0; i < count; i++) {
      uint64_t lab = ref_sample(f, r, stream, first + i, 0, tok);
      const float *row = x + (r * count + i) * xs;
      if (!same_bits(y[r * count + i], (float)lab))
        fail_msg("stream %u r=%zu i=%llu: y = %g, reference %llu", stream, r,
                 (unsigned long long)(first + i), y[r * count + i], (unsigned long long)lab);
      for (uint64_t c = 0; c < f->v; c++)
        for (uint64_t p = 0; p < f->d; p++) {
          float want = tok[p] == c ? f->on : f->off;
          if (!same_bits(row[c * f->d + p], want))
            fail_msg("stream %u r=%zu i=%llu: x[c=%llu, p=%llu] = %.9g, reference %.9g (token %u)",
                     stream, r, (unsigned long long)(first + i), (unsigned long long)c,
                     (unsigned long long)p, row[c * f->d + p], want, tok[p]);
        }
    }
  free(tok);
}

/* Tokens of a one-hot row (the channel holding `on`). */
static void row_tokens(const ref *f, const float *row, uint32_t *tok) {
  for (uint64_t p = 0; p < f->d; p++) {
    int hits = 0;
    for (uint64_t c = 0; c < f->v; c++)
      if (same_bits(row[c * f->d + p], f->on)) tok[p] = (uint32_t)c, hits++;
    assert_int_equal(hits, 1);
  }
}

/* Inverse tables: parent of each s-tuple (as a base-v number) per depth,
 * -1 when no rule produces it; fails on a tuple with two parents. */
static int32_t *ref_inverse(const ref *f, size_t r) {
  uint64_t vs = ipow(f->v, f->s);
  int32_t *inv = malloc(f->L * vs * sizeof *inv);
  for (uint64_t i = 0; i < f->L * vs; i++) inv[i] = -1;
  for (uint64_t t = 0; t < f->L; t++) {
    uint64_t parents = t ? f->v : f->n_c;
    const uint32_t *tab = ref_level(f, r, t);
    for (uint64_t a = 0; a < parents; a++)
      for (uint64_t j = 0; j < f->m; j++) {
        uint64_t key = 0;
        for (uint64_t c = 0; c < f->s; c++) {
          assert_true(tab[(a * f->m + j) * f->s + c] < f->v);
          key = key * f->v + tab[(a * f->m + j) * f->s + c];
        }
        if (inv[t * vs + key] != -1)
          fail_msg("depth %llu: tuple %llu appears twice", (unsigned long long)t,
                   (unsigned long long)key);
        inv[t * vs + key] = (int32_t)a;
      }
  }
  return inv;
}

/* Parse tokens bottom-up through `levels` levels; -1 if some tuple has no parent. */
static int64_t parse_up(const ref *f, const int32_t *inv, const uint32_t *tok, uint64_t levels,
                        uint32_t *out) {
  uint64_t vs = ipow(f->v, f->s), width = f->d;
  uint32_t *cur = malloc(f->d * sizeof *cur);
  memcpy(cur, tok, f->d * sizeof *cur);
  for (uint64_t u = 0; u < levels; u++) {
    uint64_t t = f->L - 1 - u;
    width /= f->s;
    for (uint64_t k = 0; k < width; k++) {
      uint64_t key = 0;
      for (uint64_t c = 0; c < f->s; c++) key = key * f->v + cur[k * f->s + c];
      int32_t par = inv[t * vs + key];
      if (par < 0) {
        free(cur);
        return -1;
      }
      cur[k] = (uint32_t)par;
    }
  }
  if (out) memcpy(out, cur, width * sizeof *out);
  int64_t root = cur[0];
  free(cur);
  return root;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "rhm");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_TARGET);
  assert_non_null(strstr(g_desc->citation, "2307.02129"));
  assert_non_null(strstr(g_desc->citation, "2601.19756"));
  const char *keys[] = {"n_c",
                        "v",
                        "m",
                        "s",
                        "l",
                        "rules",
                        "whitening",
                        "probe_samples",
                        "sensitivity_layers",
                        "sensitivity_levels"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const hcl_param_desc *d = g_desc->params;
    while (d->key && strcmp(d->key, keys[i])) d++;
    if (!d->key) fail_msg("parameter %s not declared", keys[i]);
    assert_true(d->help && strlen(d->help) > 10);
    assert_non_null(d->def);
  }
  uint64_t seed = 1;
  void *self = NULL;
  make_ok((const char *[]){"n_c=3", "v=5", "m=2", "s=3", "l=2", NULL}, 1, &seed, 10, 5, 16, &self);
  hcl_target_info info = {.struct_size = sizeof info};
  assert_int_equal(g_vt->info(self, &info), HCL_OK);
  assert_int_equal(info.x.rank, 2);
  assert_int_equal(info.x.dims[0], 5);
  assert_int_equal(info.x.dims[1], 9);
  assert_int_equal(info.y_dim, 1);
  assert_int_equal(info.task, HCL_TASK_CLASSES);
  assert_int_equal(info.n_classes, 3);
  assert_non_null(note_of("rhm.grammar"));
  assert_non_null(strstr(note_of("rhm.grammar"), "\"p_max\":\"48\"")); /* 3 * 2^4 */
  assert_non_null(strstr(note_of("rhm.sampling"), "without replacement"));
  assert_non_null(note_of("rhm.rules_replica0"));
  g_vt->destroy(self);
}

/* Device = reference, bit for bit: several grammars, samplers, whitening,
 * streams, splits, two replicas; the replicas differ. */
static void run_match(const char *const *kv, uint64_t n_c, uint64_t v, uint64_t m, uint64_t s,
                      uint64_t L, int kind, int whitening, uint64_t P, uint64_t T, size_t Ntrain) {
  const uint64_t seeds[2] = {11, 0x0123456789abcdefULL};
  const size_t R = 2;
  ref f;
  ref_init(&f, n_c, v, m, s, L, kind, whitening, R, seeds, P, T, 512);
  void *self = NULL;
  make_ok(kv, R, seeds, P, T, Ntrain, &self);
  size_t xs = (size_t)(v * f.d);
  float *x = malloc(R * Ntrain * xs * sizeof *x), *y = malloc(R * Ntrain * sizeof *y);
  float *x2 = malloc(R * Ntrain * xs * sizeof *x2), *y2 = malloc(R * Ntrain * sizeof *y2);
  draw(self, &f, HCL_STREAM_TRAIN, 0, Ntrain, x, y);
  check_rows(&f, HCL_STREAM_TRAIN, 0, Ntrain, x, y);
  /* the same range in pieces */
  size_t a = Ntrain / 3, b = Ntrain / 3 + 1;
  const size_t cuts[][2] = {{0, a}, {a, 1}, {a + 1, b}, {a + 1 + b, Ntrain - a - 1 - b}};
  for (size_t c = 0; c < 4; c++) {
    size_t at = cuts[c][0], n = cuts[c][1];
    if (!n) continue;
    draw(self, &f, HCL_STREAM_TRAIN, at, n, x2, y2);
    for (size_t r = 0; r < R; r++) {
      assert_memory_equal(x2 + r * n * xs, x + (r * Ntrain + at) * xs, n * xs * sizeof *x);
      assert_memory_equal(y2 + r * n, y + r * Ntrain + at, n * sizeof *y);
    }
  }
  /* the replicas differ (their own rules and permutation) */
  assert_true(memcmp(x, x + Ntrain * xs, Ntrain * xs * sizeof *x) != 0);
  size_t nt = T < 300 ? (size_t)T + 7 : 300;
  draw(self, &f, HCL_STREAM_TEST, 0, nt, x2, y2);
  check_rows(&f, HCL_STREAM_TEST, 0, nt, x2, y2);
  draw(self, &f, HCL_STREAM_PROBE, 5, 200, x2, y2);
  check_rows(&f, HCL_STREAM_PROBE, 5, 200, x2, y2);
  /* every datum parses to its label */
  uint32_t *tok = malloc(f.d * sizeof *tok);
  for (size_t r = 0; r < R; r++) {
    int32_t *inv = ref_inverse(&f, r);
    for (size_t i = 0; i < Ntrain; i++) {
      row_tokens(&f, x + (r * Ntrain + i) * xs, tok);
      int64_t root = parse_up(&f, inv, tok, L, NULL);
      if (root != (int64_t)y[r * Ntrain + i])
        fail_msg("r=%zu sample %zu parses to %lld, label %g", r, i, (long long)root,
                 y[r * Ntrain + i]);
    }
    free(inv);
  }
  free(tok);
  g_vt->destroy(self);
  ref_free(&f);
  free(x);
  free(y);
  free(x2);
  free(y2);
}

static void test_samples_match_reference(void **state) {
  (void)state;
  NEED_DEVICE();
  /* P_max = 4*3^7 = 8748: train wraps at P = 1000 (2500 samples), test at 500 */
  run_match((const char *[]){"n_c=4", "v=6", "m=3", "s=2", "l=3", NULL}, 4, 6, 3, 2, 3, 0, 0, 1000,
            500, 2500);
  run_match((const char *[]){"n_c=4", "v=6", "m=3", "s=2", "l=3", "rules=ren", "whitening=centered",
                             NULL},
            4, 6, 3, 2, 3, 1, 1, 1000, 500, 1200);
  /* s = 3, P_max = 3*2^4 = 48, prx whitening; the probe falls back to draws */
  run_match((const char *[]){"n_c=3", "v=4", "m=2", "s=3", "l=2", "whitening=prx", NULL}, 3, 4, 2,
            3, 2, 0, 2, 20, 10, 300);
  /* P_max = 4*4^63 >= 2^63: every stream draws with replacement */
  run_match((const char *[]){"n_c=4", "v=8", "m=4", "s=2", "l=6", "rules=ren", NULL}, 4, 8, 4, 2, 6,
            1, 0, 100, 50, 250);
  assert_non_null(strstr(note_of("rhm.sampling"), "with replacement"));
}

/* Rule tables: shapes, tokens in range, no tuple twice within a level, the
 * plugin's uploaded tables = the samplers' output; ren: first tokens exactly
 * balanced; uniform: tuple frequencies over seeds match n_c*m / v^s. */
static void test_rule_tables(void **state) {
  (void)state;
  const struct {
    uint64_t n_c, v, m, s, L;
  } cfg[] = {{4, 6, 3, 2, 3}, {2, 2, 2, 2, 2}, {4, 4, 4, 2, 2},   {10, 4, 3, 3, 3},
             {3, 5, 5, 2, 4}, {7, 3, 3, 3, 2}, {16, 16, 16, 2, 2}};
  for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++)
    for (int kind = 0; kind < 2; kind++)
      for (uint64_t seed = 1; seed <= 5; seed++) {
        ref f;
        ref_init(&f, cfg[c].n_c, cfg[c].v, cfg[c].m, cfg[c].s, cfg[c].L, kind, 0, 1, &seed, 0, 0,
                 0);
        int32_t *inv = ref_inverse(&f, 0); /* checks ranges and repeats */
        if (kind == RHM_RULES_REN) {
          for (uint64_t t = 0; t < f.L; t++) {
            uint64_t parents = t ? f.v : f.n_c, K = parents * f.m;
            uint64_t *cnt = calloc(f.v, sizeof *cnt);
            const uint32_t *tab = ref_level(&f, 0, t);
            for (uint64_t i = 0; i < K; i++) cnt[tab[i * f.s]]++;
            for (uint64_t mu = 0; mu < f.v; mu++) {
              if (t)
                assert_int_equal(cnt[mu], f.m);
              else
                assert_true(cnt[mu] == K / f.v || cnt[mu] == K / f.v + 1);
            }
            free(cnt);
          }
        }
        free(inv);
        ref_free(&f);
      }
  /* uniform sampler: each of the 9 tuples of [3]^2 is drawn at the class
   * level (n_c*m = 4 of them) with probability 4/9, at each position with
   * probability 1/9 */
  const size_t S = 3000;
  double hit[9] = {0}, first_pos[9] = {0};
  for (uint64_t seed = 0; seed < S; seed++) {
    ref f;
    ref_init(&f, 2, 3, 2, 2, 1, 0, 0, 1, &seed, 0, 0, 0);
    for (size_t i = 0; i < 4; i++) {
      uint32_t key = f.tab[0][2 * i] * 3 + f.tab[0][2 * i + 1];
      hit[key] += 1;
      if (i == 0) first_pos[key] += 1;
    }
    ref_free(&f);
  }
  for (size_t k = 0; k < 9; k++) {
    double p = 4.0 / 9.0, q = 1.0 / 9.0;
    assert_true(fabs(hit[k] / S - p) < 5 * sqrt(p * (1 - p) / S));
    assert_true(fabs(first_pos[k] / S - q) < 5 * sqrt(q * (1 - q) / S));
  }
  /* the plugin built the same tables as the samplers */
  NEED_DEVICE();
  const uint64_t seeds[2] = {5, 6};
  void *self = NULL;
  make_ok((const char *[]){"n_c=10", "v=4", "m=3", "s=3", "l=3", "rules=ren", NULL}, 2, seeds, 0, 0,
          8, &self);
  const rhm_target *t = self;
  ref f;
  ref_init(&f, 10, 4, 3, 3, 3, 1, 0, 2, seeds, 0, 0, 0);
  for (size_t r = 0; r < 2; r++)
    assert_memory_equal(t->tables + r * f.table_size, f.tab[r], f.table_size * sizeof(uint32_t));
  assert_true(memcmp(f.tab[0], f.tab[1], f.table_size * sizeof(uint32_t)) != 0);
  ref_free(&f);
  g_vt->destroy(self);
}

/* Small grammars, every index: each datum exactly once, P_max of them, the
 * classes exact, the first token exactly uniform for ren with n_c = v. */
static void enumerate(const char *const *kv, uint64_t n_c, uint64_t v, uint64_t m, uint64_t s,
                      uint64_t L, int kind, uint64_t want_pmax) {
  const uint64_t seeds[2] = {3, 0xfeedbeefcafe1234ULL};
  const size_t R = 2;
  ref f;
  ref_init(&f, n_c, v, m, s, L, kind, 0, R, seeds, want_pmax, 0, 0);
  assert_true(f.index);
  assert_int_equal(f.pmax, want_pmax);
  size_t N = (size_t)want_pmax, xs = (size_t)(v * f.d);
  void *self = NULL;
  make_ok(kv, R, seeds, want_pmax, 0, N, &self);
  float *x = malloc(R * N * xs * sizeof *x), *y = malloc(R * N * sizeof *y);
  draw(self, &f, HCL_STREAM_TRAIN, 0, N, x, y);
  check_rows(&f, HCL_STREAM_TRAIN, 0, N, x, y);
  uint64_t vd = ipow(v, f.d); /* data as base-v numbers of d tokens */
  assert_true(vd <= 1u << 26);
  uint32_t *tok = malloc(f.d * sizeof *tok);
  for (size_t r = 0; r < R; r++) {
    unsigned char *seen = calloc(vd, 1);
    uint64_t *cls = calloc(n_c, sizeof *cls), *first = calloc(v, sizeof *first);
    int32_t *inv = ref_inverse(&f, r);
    for (size_t i = 0; i < N; i++) {
      row_tokens(&f, x + (r * N + i) * xs, tok);
      uint64_t key = 0;
      for (uint64_t p = 0; p < f.d; p++) key = key * v + tok[p];
      if (seen[key]) fail_msg("r=%zu: datum of index %zu appears twice", r, i);
      seen[key] = 1;
      uint64_t lab = (uint64_t)y[r * N + i];
      assert_true(lab < n_c);
      assert_int_equal(parse_up(&f, inv, tok, L, NULL), (int64_t)lab);
      cls[lab]++;
      first[tok[0]]++;
    }
    for (uint64_t a = 0; a < n_c; a++) assert_int_equal(cls[a], N / n_c);
    if (kind == RHM_RULES_REN && n_c == v)
      for (uint64_t mu = 0; mu < v; mu++) assert_int_equal(first[mu], N / v);
    /* no other string parses: the language has exactly P_max members */
    size_t members = 0;
    uint32_t *t2 = malloc(f.d * sizeof *t2);
    for (uint64_t key = 0; key < vd; key++) {
      uint64_t k = key;
      for (uint64_t p = f.d; p-- > 0;) t2[p] = (uint32_t)(k % v), k /= v;
      if (parse_up(&f, inv, t2, L, NULL) >= 0) {
        members++;
        assert_true(seen[key]);
      }
    }
    assert_int_equal(members, N);
    free(t2);
    free(seen);
    free(cls);
    free(first);
    free(inv);
  }
  free(tok);
  free(x);
  free(y);
  ref_free(&f);
  g_vt->destroy(self);
}

static void test_enumerate_small(void **state) {
  (void)state;
  NEED_DEVICE();
  enumerate((const char *[]){"n_c=2", "v=2", "m=2", "s=2", "l=2", NULL}, 2, 2, 2, 2, 2, 0, 16);
  enumerate((const char *[]){"n_c=2", "v=2", "m=2", "s=2", "l=2", "rules=ren", NULL}, 2, 2, 2, 2, 2,
            1, 16);
  enumerate((const char *[]){"n_c=4", "v=4", "m=4", "s=2", "l=2", NULL}, 4, 4, 4, 2, 2, 0, 256);
  enumerate((const char *[]){"n_c=4", "v=4", "m=4", "s=2", "l=2", "rules=ren", NULL}, 4, 4, 4, 2, 2,
            1, 256);
  /* non-power-of-two P_max = 3*2^3 = 24, and 3*3^4 = 243 with s = 3 */
  enumerate((const char *[]){"n_c=3", "v=3", "m=2", "s=2", "l=2", NULL}, 3, 3, 2, 2, 2, 0, 24);
  enumerate((const char *[]){"n_c=3", "v=3", "m=3", "s=3", "l=2", "rules=ren", NULL}, 3, 3, 3, 3, 2,
            1, 243);
}

/* The keyed bijection: the test's Feistel and the plugin's host mirror
 * agree, and both are permutations of [0, P_max) for many sizes. */
static void test_bijection(void **state) {
  (void)state;
  const uint64_t sizes[] = {1,   2,   3,   4,   5,    7,    16,    17,    24,
                            100, 255, 256, 257, 1000, 4097, 65536, 65537, 100003};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    uint64_t n = sizes[i];
    uint32_t k = 2;
    while ((1ULL << k) < n) k++;
    k += k & 1;
    rhm_dims g;
    memset(&g, 0, sizeof g);
    g.p_max = n;
    g.feistel_half = k / 2;
    for (uint64_t seed = 1; seed <= 2; seed++) {
      unsigned char *seen = calloc(n, 1);
      size_t moved = 0;
      for (uint64_t x = 0; x < n; x++) {
        uint64_t y = ref_perm(seed * 977, k / 2, n, x);
        assert_true(y < n);
        assert_int_equal(y, rhm_feistel_perm(&g, hcl_philox4x32, seed * 977, x));
        if (seen[y])
          fail_msg("size %llu: %llu hit twice", (unsigned long long)n, (unsigned long long)y);
        seen[y] = 1;
        moved += y != x;
      }
      if (n >= 100) assert_true(moved > n / 2); /* not the identity */
      free(seen);
    }
  }
  /* the dims the plugin derives */
  rhm_dims g;
  char why[256];
  assert_int_equal(rhm_dims_init(&g, 4, 6, 3, 2, 3, why, sizeof why), 0);
  assert_true(g.p_max == 8748 && g.n_dig == 7 && g.d == 8 && g.feistel_half == 7);
  assert_int_equal(rhm_dims_init(&g, 2, 2, 1, 2, 3, why, sizeof why), 0);
  assert_true(g.p_max == 2 && g.index_mode);
  assert_int_equal(rhm_dims_init(&g, 8, 32, 8, 2, 5, why, sizeof why), 0);
  assert_true(!g.index_mode); /* 8 * 8^31 = 2^96 */
  char txt[64];
  rhm_u128_text(g.p_max, txt, sizeof txt);
  assert_string_equal(txt, "79228162514264337593543950336");
  /* at the edge: 4 * (2^15)^4 = 2^62 < 2^63 (index), 8 * (2^15)^4 = 2^63 (draws) */
  assert_int_equal(rhm_dims_init(&g, 4, 182, 32768, 3, 2, why, sizeof why), 0);
  assert_true(g.index_mode && g.p_max == (rhm_u128)1 << 62 && g.feistel_half == 31);
  assert_int_equal(rhm_dims_init(&g, 8, 182, 32768, 3, 2, why, sizeof why), 0);
  assert_true(!g.index_mode && g.p_max == (rhm_u128)1 << 63);
}

static void expect_create_error(const char *const *kv, uint64_t P, uint64_t T,
                                const char *const *needles) {
  uint64_t seed = 1;
  void *self = NULL;
  assert_int_equal(make(kv, 1, &seed, P, T, 8, &self), HCL_ERR_PARAM);
  assert_null(self);
  for (size_t i = 0; needles[i]; i++)
    if (!strstr(hcl_errmsg(g_ctx), needles[i]))
      fail_msg("message '%s' lacks '%s'", hcl_errmsg(g_ctx), needles[i]);
}

static void test_bounds_and_whitening(void **state) {
  (void)state;
  /* whitening constants against the formulas */
  for (uint64_t v = 2; v <= 64; v *= 2) {
    float on, off;
    double a = 1.0 / (double)v;
    rhm_whiten_values(RHM_WHITEN_CENTERED, v, &on, &off);
    assert_true(on == (float)((1 - a) / sqrt(1 - a)) && off == (float)(-a / sqrt(1 - a)));
    /* centered channels: mean 0 and variance 1/v... per token: on + (v-1) off = 0 */
    assert_true(fabs((double)on + (double)(v - 1) * off) < 1e-6);
    rhm_whiten_values(RHM_WHITEN_PRX, v, &on, &off);
    double c = 1.0 / sqrt((double)v - 1);
    assert_true(on == (float)(1.0 * (1 + c) - c) && off == (float)(-c));
    assert_true(on == 1.0f);
    rhm_whiten_values(RHM_WHITEN_NONE, v, &on, &off);
    assert_true(on == 1.0f && off == 0.0f);
  }
  NEED_DEVICE();
  expect_create_error((const char *[]){"n_c=5", "v=2", "m=1", "s=2", "l=2", NULL}, 0, 0,
                      (const char *[]){"n_c*m", "v^s", "= 5", "= 4", NULL});
  expect_create_error((const char *[]){"n_c=2", "v=3", "m=4", "s=2", "l=2", NULL}, 0, 0,
                      (const char *[]){"m <= v^(s-1)", "m = 4", "= 3", NULL});
  expect_create_error((const char *[]){"n_c=2", "v=2", "m=2", "s=2", "l=2", NULL}, 10, 7,
                      (const char *[]){"train_size + test_size", "17", "P_max", "16", NULL});
  expect_create_error((const char *[]){"n_c=2", "v=2", "m=2", "s=2", "l=2", NULL}, 0, 16,
                      (const char *[]){"test_size < P_max", "16", NULL});
  expect_create_error((const char *[]){"s=64", "l=4", "n_c=2", "m=1", NULL}, 0, 0,
                      (const char *[]){"d = s^L", "1048576", NULL});
  expect_create_error((const char *[]){"sensitivity_levels=1, 4", NULL}, 0, 0,
                      (const char *[]){"sensitivity_levels", "1..3", NULL});
  /* exactly P_max is fine */
  uint64_t seed = 1;
  void *self = NULL;
  make_ok((const char *[]){"n_c=2", "v=2", "m=2", "s=2", "l=2", NULL}, 1, &seed, 10, 6, 8, &self);
  g_vt->destroy(self);
  /* P_max >= 2^63: with replacement, noted in the manifest */
  make_ok((const char *[]){"n_c=8", "v=32", "m=8", "s=2", "l=5", NULL}, 1, &seed, 1000000, 100000,
          8, &self);
  assert_non_null(strstr(note_of("rhm.sampling"), "with replacement"));
  assert_non_null(strstr(note_of("rhm.grammar"), "79228162514264337593543950336"));
  g_vt->destroy(self);
}

/* ---- the sensitivity probe ------------------------------------------------ */
/* Fake model: layer 1 = the input itself; layer 2 = one-hot of the
 * depth-(L-1) symbols (the input parsed one level up with the replica's
 * rules), invariant to level-1 synonyms by construction; no layer 3. */
typedef struct fake_model {
  const ref *f;
  int32_t *inv[2];
} fake_model;

static hcl_status fake_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n,
                                hcl_buf out, size_t *dim) {
  (void)params;
  fake_model *fm = self;
  const ref *f = fm->f;
  size_t xs = (size_t)(f->v * f->d), d1 = (size_t)(f->d / f->s);
  if (layer == 1)
    *dim = xs;
  else if (layer == 2)
    *dim = (size_t)f->v * d1;
  else
    return hcl_fail(g_ctx, HCL_ERR_PARAM, "fake: no layer %zu", layer);
  if (!n) return HCL_OK;
  if (layer == 1) return hcl_buf_copy(g_ctx, out, x, f->R * n * xs * sizeof(float));
  float *hx = malloc(f->R * n * xs * sizeof *hx), *ho = calloc(f->R * n * *dim, sizeof *ho);
  uint32_t *tok = malloc(f->d * sizeof *tok), *up = malloc(f->d * sizeof *up);
  assert_int_equal(hcl_buf_read(g_ctx, x, hx, f->R * n * xs * sizeof *hx), HCL_OK);
  for (size_t r = 0; r < f->R; r++)
    for (size_t i = 0; i < n; i++) {
      row_tokens(f, hx + (r * n + i) * xs, tok);
      assert_true(parse_up(f, fm->inv[r], tok, 1, up) >= 0);
      for (size_t p = 0; p < d1; p++) ho[(r * n + i) * *dim + up[p] * d1 + p] = 1.0f;
    }
  hcl_status rc = hcl_buf_write(g_ctx, out, ho, f->R * n * *dim * sizeof *ho);
  free(hx);
  free(ho);
  free(tok);
  free(up);
  return rc;
}

typedef struct probe_run {
  hcl_trainer tr;
  hcl_train_cfg cfg;
  hcl_model_vt mvt;
} probe_run;

static void run_probe(probe_run *pr, void *self, size_t R, const uint64_t *seeds, size_t batch,
                      void *model, int with_features) {
  memset(pr, 0, sizeof *pr);
  pr->cfg.replicas = (uint32_t)R;
  pr->cfg.seeds = seeds;
  pr->cfg.batch = pr->cfg.eval_batch = batch;
  pr->mvt.struct_size = sizeof pr->mvt;
  pr->mvt.features = with_features ? fake_features : NULL;
  pr->tr.ctx = g_ctx;
  pr->tr.cfg = &pr->cfg;
  pr->tr.tvt = g_vt;
  pr->tr.target = self;
  pr->tr.mvt = &pr->mvt;
  pr->tr.model = model;
  hcl_probe p = {&pr->tr};
  if (g_vt->probe(self, &p) != HCL_OK) fail_msg("probe: %s", hcl_errmsg(g_ctx));
}

static double metric(const probe_run *pr, const char *name, size_t r) {
  for (size_t i = 0; i < pr->tr.m_n; i++)
    if (!strcmp(pr->tr.m_names[i], name)) return pr->tr.m_values[i * pr->cfg.replicas + r];
  fail_msg("probe metric %s missing", name);
  return 0;
}

static void probe_free(probe_run *pr) {
  for (size_t i = 0; i < pr->tr.m_n; i++) free(pr->tr.m_names[i]);
  free(pr->tr.m_names);
  free(pr->tr.m_values);
}

/* Host S_{k,l}: layer 1 counts differing tokens (x one-hot: |dx|^2 = 2 per
 * differing position), layer 2 differing depth-(L-1) symbols. */
static double host_sensitivity(const ref *f, const fake_model *fm, size_t r, int layer,
                               uint32_t ell) {
  uint32_t *a = malloc(f->d * sizeof *a), *b = malloc(f->d * sizeof *b);
  uint32_t *ua = malloc(f->d * sizeof *ua), *ub = malloc(f->d * sizeof *ub);
  double num = 0, den = 0;
  size_t d1 = (size_t)(f->d / f->s);
  for (int pass = 0; pass < 2; pass++)
    for (uint64_t i = 0; i < f->N; i++) {
      ref_sample(f, r, HCL_STREAM_PROBE, i, 0, a);
      if (pass == 0)
        ref_sample(f, r, HCL_STREAM_PROBE, f->N + i, 0, b);
      else
        ref_sample(f, r, HCL_STREAM_PROBE, i, ell, b);
      double diff = 0;
      if (layer == 1) {
        for (uint64_t p = 0; p < f->d; p++) diff += a[p] != b[p] ? 2 : 0;
      } else {
        parse_up(f, fm->inv[r], a, 1, ua);
        parse_up(f, fm->inv[r], b, 1, ub);
        for (size_t p = 0; p < d1; p++) diff += ua[p] != ub[p] ? 2 : 0;
      }
      if (pass == 0)
        den += diff;
      else
        num += diff;
    }
  free(a);
  free(b);
  free(ua);
  free(ub);
  return num / den;
}

/* A target with a validation stream of V samples ([eval] val_size). */
static hcl_status make_val(const char *const *kv, const uint64_t *seeds, uint64_t P, uint64_t T,
                           uint64_t V, void **self) {
  hcl_params *p = hcl_test_params(g_desc, "target", kv);
  hcl_setup su = {.struct_size = sizeof su,
                  .replicas = 1,
                  .seeds = seeds,
                  .params = p,
                  .train_size = P,
                  .test_size = T,
                  .max_batch = 64,
                  .val_size = V};
  hcl_status rc = g_vt->create(g_ctx, &su, self);
  hcl_test_params_free(p);
  return rc;
}

/* The data of rows first..first+n of a stream, as one 64-bit token code each. */
static void codes(void *self, const ref *f, uint32_t stream, uint64_t first, size_t n,
                  uint64_t *out) {
  size_t xs = (size_t)(f->v * f->d);
  float *x = malloc(n * xs * sizeof *x), *y = malloc(n * sizeof *y);
  uint32_t *tok = malloc(f->d * sizeof *tok);
  draw(self, f, stream, first, n, x, y);
  for (size_t i = 0; i < n; i++) {
    row_tokens(f, x + i * xs, tok);
    out[i] = 0;
    for (uint64_t j = 0; j < f->d; j++) out[i] = out[i] * f->v + tok[j];
  }
  free(tok);
  free(x);
  free(y);
}

/* The validation stream takes its own permuted indices: disjoint from train,
 * test and probe, train and test unchanged by it, wrapping after V; too
 * large a V is refused naming val_size. P_max = 3 * 2^4 = 48. */
static void test_val_stream_disjoint(void **state) {
  (void)state;
  const char *const kv[] = {"n_c=3", "v=5", "m=2", "s=3", "l=2", "probe_samples=4", NULL};
  const uint64_t seed = 7;
  const uint64_t P = 10, T = 5, V = 8;
  ref f;
  ref_init(&f, 3, 5, 2, 3, 2, 0, 0, 1, &seed, P, T, 512);
  void *with = NULL, *without = NULL;
  assert_int_equal(make_val(kv, &seed, P, T, V, &with), HCL_OK);
  assert_int_equal(make_val(kv, &seed, P, T, 0, &without), HCL_OK);
  uint64_t tr[P], te[T], va[2 * V], pr[20], tr0[P], te0[T];
  codes(with, &f, HCL_STREAM_TRAIN, 0, P, tr);
  codes(with, &f, HCL_STREAM_TEST, 0, T, te);
  codes(with, &f, HCL_STREAM_VAL, 0, 2 * V, va);
  codes(with, &f, HCL_STREAM_PROBE, 0, 20, pr);
  codes(without, &f, HCL_STREAM_TRAIN, 0, P, tr0);
  codes(without, &f, HCL_STREAM_TEST, 0, T, te0);
  assert_memory_equal(tr, tr0, sizeof tr);
  assert_memory_equal(te, te0, sizeof te);
  for (uint64_t i = 0; i < V; i++) {
    assert_true(va[i] == va[V + i]); /* wraps after V */
    for (uint64_t j = 0; j < i; j++) assert_true(va[i] != va[j]);
    for (uint64_t j = 0; j < P; j++) assert_true(va[i] != tr[j]);
    for (uint64_t j = 0; j < T; j++) assert_true(va[i] != te[j]);
    for (uint64_t j = 0; j < 20; j++) assert_true(va[i] != pr[j]);
  }
  g_vt->destroy(with);
  g_vt->destroy(without);
  void *bad = NULL;
  assert_int_not_equal(make_val(kv, &seed, P, T, 48 - P - T + 1, &bad), HCL_OK);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "val_size"));
  ref_free(&f);
}

static void test_probe_sensitivity(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, batch = 128;
  const uint64_t seeds[2] = {21, 22};
  const uint64_t P = 200, T = 100, N = 300; /* P_max = 8*4^7 = 131072: fresh probe indices */
  void *self = NULL;
  make_ok((const char *[]){"n_c=8", "v=8", "m=4", "s=2", "l=3", "probe_samples=300", NULL}, R,
          seeds, P, T, batch, &self);
  assert_non_null(strstr(note_of("rhm.probe_stream"), "fresh"));
  ref f;
  ref_init(&f, 8, 8, 4, 2, 3, 0, 0, R, seeds, P, T, N);
  fake_model fm = {&f, {ref_inverse(&f, 0), ref_inverse(&f, 1)}};
  probe_run pr;
  run_probe(&pr, self, R, seeds, batch, &fm, 1);
  assert_int_equal(pr.tr.m_n, 6); /* layers 1, 2 (the model has no 3) x levels 1..3 */
  for (int k = 1; k <= 2; k++)
    for (uint32_t l = 1; l <= 3; l++)
      for (size_t r = 0; r < R; r++) {
        char name[64];
        snprintf(name, sizeof name, "sensitivity_k%d_l%u", k, l);
        double got = metric(&pr, name, r), want = host_sensitivity(&f, &fm, r, k, l);
        if (fabs(got - want) > 1e-12 * fabs(want))
          fail_msg("%s r=%zu: device %.15g, host %.15g", name, r, got, want);
        if (k == 2 && l == 1)
          assert_true(got == 0.0); /* invariant by construction */
        else
          assert_true(got > 0.02);
      }
  assert_true(metric(&pr, "sensitivity_k1_l3", 0) != metric(&pr, "sensitivity_k1_l3", 1));
  /* the same inputs at every evaluation */
  probe_run pr2;
  run_probe(&pr2, self, R, seeds, batch, &fm, 1);
  for (size_t i = 0; i < pr.tr.m_n; i++)
    for (size_t r = 0; r < R; r++)
      assert_true(pr.tr.m_values[i * R + r] == pr2.tr.m_values[i * R + r]);
  probe_free(&pr);
  probe_free(&pr2);
  /* a model without features: nothing emitted, no error */
  run_probe(&pr, self, R, seeds, batch, &fm, 0);
  assert_int_equal(pr.tr.m_n, 0);
  probe_free(&pr);
  g_vt->destroy(self);
  /* explicit layer/level lists; online training: the probe draws with replacement */
  make_ok((const char *[]){"n_c=8", "v=8", "m=4", "s=2", "l=3", "probe_samples=100",
                           "sensitivity_layers=2", "sensitivity_levels=2, 1", NULL},
          R, seeds, 0, T, batch, &self);
  assert_non_null(strstr(note_of("rhm.probe_stream"), "with replacement"));
  f.P = 0, f.N = 100;
  run_probe(&pr, self, R, seeds, batch, &fm, 1);
  assert_int_equal(pr.tr.m_n, 2);
  assert_string_equal(pr.tr.m_names[0], "sensitivity_k2_l2");
  for (size_t r = 0; r < R; r++) {
    double want = host_sensitivity(&f, &fm, r, 2, 2);
    assert_true(fabs(metric(&pr, "sensitivity_k2_l2", r) - want) <= 1e-12 * want);
    assert_true(metric(&pr, "sensitivity_k2_l1", r) == 0.0);
  }
  probe_free(&pr);
  g_vt->destroy(self);
  free(fm.inv[0]);
  free(fm.inv[1]);
  ref_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_descriptor),        cmocka_unit_test(test_samples_match_reference),
      cmocka_unit_test(test_rule_tables),       cmocka_unit_test(test_enumerate_small),
      cmocka_unit_test(test_bijection),         cmocka_unit_test(test_bounds_and_whitening),
      cmocka_unit_test(test_probe_sensitivity), cmocka_unit_test(test_val_stream_disjoint),
  };
  return cmocka_run_group_tests(tests, setup_group, NULL);
}
