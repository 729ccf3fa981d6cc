/* Host side of the Random Hierarchy Model: sizes and bounds, the two rule
 * samplers (uniform and ren), the host mirror of the Feistel bijection and
 * the whitening constants. No OpenCL and no host table here, so the tests
 * compile this file in directly. */
#include "rhm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void why_set(char *why, size_t len, const char *fmt, ...) {
  if (!why || !len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, len, fmt, ap);
  va_end(ap);
}

/* a * b, or 0 when the product is >= 2^64 (callers pass a, b >= 1). */
static uint64_t mul_or_zero(uint64_t a, uint64_t b) {
  rhm_u128 p = (rhm_u128)a * b;
  return p >> 64 ? 0 : (uint64_t)p;
}

/* base^e, or 0 when >= 2^64. */
static uint64_t pow_or_zero(uint64_t base, uint64_t e) {
  uint64_t r = 1;
  for (uint64_t i = 0; i < e; i++) {
    r = mul_or_zero(r, base);
    if (!r) return 0;
  }
  return r;
}

void rhm_u128_text(rhm_u128 x, char *buf, size_t len) {
  char tmp[48];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(x % 10));
    x /= 10;
  } while (x && n < sizeof tmp);
  size_t i = 0;
  for (; i < n && i + 1 < len; i++) buf[i] = tmp[n - 1 - i];
  if (len) buf[i < len ? i : len - 1] = 0;
}

int rhm_dims_init(rhm_dims *g, uint64_t n_c, uint64_t v, uint64_t m, uint64_t s, uint64_t L,
                  char *why, size_t len) {
  memset(g, 0, sizeof *g);
  g->n_c = n_c, g->v = v, g->m = m, g->s = s, g->L = L;
  if (n_c < 1 || v < 2 || m < 1 || s < 2 || L < 1) {
    why_set(why, len,
            "n_c = %llu, v = %llu, m = %llu, s = %llu, L = %llu: need n_c >= 1, v >= 2, "
            "m >= 1, s >= 2, L >= 1",
            (unsigned long long)n_c, (unsigned long long)v, (unsigned long long)m,
            (unsigned long long)s, (unsigned long long)L);
    return -1;
  }
  g->d = pow_or_zero(s, L);
  if (!g->d || g->d > RHM_MAX_D) {
    why_set(why, len, "input length d = s^L = %llu^%llu exceeds %u", (unsigned long long)s,
            (unsigned long long)L, RHM_MAX_D);
    return -1;
  }
  if (v * g->d > RHM_MAX_X) {
    why_set(why, len, "one sample has v*d = %llu*%llu floats, more than %u", (unsigned long long)v,
            (unsigned long long)g->d, RHM_MAX_X);
    return -1;
  }
  g->vs = pow_or_zero(v, s);
  g->vs1 = pow_or_zero(v, s - 1);
  if (!g->vs) {
    why_set(why, len, "v^s = %llu^%llu does not fit in 64 bits (not supported)",
            (unsigned long long)v, (unsigned long long)s);
    return -1;
  }
  uint64_t ncm = mul_or_zero(n_c, m);
  if (!ncm || ncm > g->vs) {
    why_set(why, len,
            "n_c*m = %llu*%llu = %llu exceeds v^s = %llu^%llu = %llu: the class level needs n_c*m "
            "distinct s-tuples (bound n_c*m <= v^s)",
            (unsigned long long)n_c, (unsigned long long)m, (unsigned long long)ncm,
            (unsigned long long)v, (unsigned long long)s, (unsigned long long)g->vs);
    return -1;
  }
  if (m > g->vs1) {
    why_set(why, len,
            "m = %llu exceeds v^(s-1) = %llu^%llu = %llu: each lower level needs v*m distinct "
            "s-tuples (bound m <= v^(s-1))",
            (unsigned long long)m, (unsigned long long)v, (unsigned long long)(s - 1),
            (unsigned long long)g->vs1);
    return -1;
  }
  double tab = ((double)n_c + (double)(L - 1) * (double)v) * (double)m * (double)s;
  if (tab > RHM_MAX_TABLE) {
    why_set(why, len, "rule tables of (n_c + (L-1)*v)*m*s = %.0f entries exceed %u", tab,
            RHM_MAX_TABLE);
    return -1;
  }
  g->table_size = (size_t)tab;
  g->n_dig = (g->d - 1) / (s - 1);
  /* P_max = n_c * m^n_dig, exact below 2^126 */
  if (m == 1) {
    g->p_max = n_c;
  } else if ((double)g->n_dig * log2((double)m) + log2((double)n_c) >= 125.0) {
    g->p_max = RHM_U128_SAT;
    g->p_max_sat = 1;
  } else {
    rhm_u128 p = n_c;
    for (uint64_t i = 0; i < g->n_dig; i++) p *= m;
    g->p_max = p;
    if (p >= RHM_U128_SAT) {
      g->p_max = RHM_U128_SAT;
      g->p_max_sat = 1;
    }
  }
  g->index_mode = !g->p_max_sat && g->p_max < ((rhm_u128)1 << 63);
  if (g->index_mode) {
    uint64_t pm = (uint64_t)g->p_max;
    g->per_class = pm / n_c;
    uint32_t k = 2;
    while (k < 64 && ((uint64_t)1 << k) < pm) k++;
    k += k & 1u;
    g->feistel_half = k / 2;
  }
  return 0;
}

uint64_t rhm_parents(const rhm_dims *g, uint64_t t) { return t == 0 ? g->n_c : g->v; }

size_t rhm_table_offset(const rhm_dims *g, uint64_t t) {
  if (t == 0) return 0;
  return (size_t)((g->n_c + (t - 1) * g->v) * g->m * g->s);
}

/* ---- streams -------------------------------------------------------------- */
void rhm_stream_init(rhm_stream *st, rhm_philox_fn philox, uint64_t seed, uint64_t id) {
  memset(st, 0, sizeof *st);
  st->philox = philox;
  st->seed = seed;
  st->id = id;
}

uint32_t rhm_stream_u32(rhm_stream *st) {
  uint64_t b = st->next >> 2;
  if (!st->have || st->block != b) {
    uint32_t key[2] = {(uint32_t)st->seed, (uint32_t)(st->seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)st->id,
                       (uint32_t)(st->id >> 32)};
    st->philox(key, ctr, st->w);
    st->block = b;
    st->have = 1;
  }
  return st->w[st->next++ & 3];
}

uint64_t rhm_stream_u64(rhm_stream *st) {
  uint64_t lo = rhm_stream_u32(st);
  uint64_t hi = rhm_stream_u32(st);
  return lo | hi << 32;
}

uint64_t rhm_stream_below(rhm_stream *st, uint64_t n) {
  uint64_t x = rhm_stream_u64(st);
  rhm_u128 p = (rhm_u128)x * n;
  uint64_t low = (uint64_t)p;
  if (low < n) {
    uint64_t thresh = (0 - n) % n; /* 2^64 mod n */
    while (low < thresh) {
      x = rhm_stream_u64(st);
      p = (rhm_u128)x * n;
      low = (uint64_t)p;
    }
  }
  return (uint64_t)(p >> 64);
}

/* ---- sparse Fisher-Yates -------------------------------------------------- */
/* Open-addressing map position -> value of the virtual array 0..N-1. */
typedef struct fy_map {
  uint64_t *key, *val;
  unsigned char *used;
  size_t mask;
} fy_map;

static size_t fy_slot(const fy_map *h, uint64_t k) {
  uint64_t x = k * 0x9E3779B97F4A7C15ULL;
  size_t i = (size_t)(x ^ (x >> 29)) & h->mask;
  while (h->used[i] && h->key[i] != k) i = (i + 1) & h->mask;
  return i;
}

static uint64_t fy_get(const fy_map *h, uint64_t k) {
  size_t i = fy_slot(h, k);
  return h->used[i] ? h->val[i] : k;
}

static void fy_set(fy_map *h, uint64_t k, uint64_t v) {
  size_t i = fy_slot(h, k);
  h->used[i] = 1;
  h->key[i] = k;
  h->val[i] = v;
}

int rhm_sample_distinct(rhm_stream *st, uint64_t N, size_t K, uint64_t *out) {
  if (!K) return 0;
  if (K > N) return -1;
  size_t cap = 16;
  while (cap < 2 * K + 2) cap *= 2;
  fy_map h = {malloc(cap * sizeof(uint64_t)), malloc(cap * sizeof(uint64_t)), calloc(cap, 1),
              cap - 1};
  if (!h.key || !h.val || !h.used) {
    free(h.key);
    free(h.val);
    free(h.used);
    return -1;
  }
  for (size_t j = 0; j < K; j++) {
    uint64_t r = j + rhm_stream_below(st, N - j);
    uint64_t vj = fy_get(&h, j), vr = fy_get(&h, r);
    out[j] = vr;
    fy_set(&h, r, vj); /* position j is never read again */
  }
  free(h.key);
  free(h.val);
  free(h.used);
  return 0;
}

/* ---- rule samplers ------------------------------------------------------ */
/* uniform: K = parents*m distinct tuple indices of the v^s lexicographic
 * tuples, parent p gets draws p*m .. p*m + m - 1. */
static int level_uniform(const rhm_dims *g, rhm_stream *st, uint64_t parents, uint64_t *idx) {
  return rhm_sample_distinct(st, g->vs, (size_t)(parents * g->m), idx);
}

/* ren: first tokens mu get counts c_mu summing to K = parents*m (m each when
 * parents = v; otherwise floor(K/v), plus one for K mod v symbols drawn
 * without replacement), for each mu (ascending) c_mu distinct suffixes of
 * [v]^(s-1) without replacement, tuple = mu*v^(s-1) + suffix; then a
 * Fisher-Yates shuffle of the K candidates deals m to each parent. */
static int level_ren(const rhm_dims *g, rhm_stream *st, uint64_t parents, uint64_t *idx) {
  uint64_t v = g->v, K = parents * g->m, q = K / v, rem = K % v;
  uint64_t *cnt = malloc(v * sizeof *cnt), *extra = malloc((rem ? rem : 1) * sizeof *extra);
  uint64_t *suf = malloc((q + 1) * sizeof *suf);
  int rc = (!cnt || !extra || !suf) ? -1 : 0;
  if (!rc) {
    for (uint64_t mu = 0; mu < v; mu++) cnt[mu] = q;
    if (rem) rc = rhm_sample_distinct(st, v, (size_t)rem, extra);
    for (uint64_t i = 0; !rc && i < rem; i++) cnt[extra[i]]++;
  }
  size_t n = 0;
  for (uint64_t mu = 0; !rc && mu < v; mu++) {
    rc = rhm_sample_distinct(st, g->vs1, (size_t)cnt[mu], suf);
    for (uint64_t i = 0; !rc && i < cnt[mu]; i++) idx[n++] = mu * g->vs1 + suf[i];
  }
  for (size_t i = n; !rc && i > 1; i--) {
    size_t j = (size_t)rhm_stream_below(st, i);
    uint64_t tmp = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = tmp;
  }
  free(cnt);
  free(extra);
  free(suf);
  return rc;
}

int rhm_rules_build(const rhm_dims *g, int kind, rhm_philox_fn philox, uint64_t seed,
                    uint32_t *tables) {
  uint64_t maxk = (g->n_c > g->v ? g->n_c : g->v) * g->m;
  uint64_t *idx = malloc(maxk * sizeof *idx);
  if (!idx) return -1;
  for (uint64_t t = 0; t < g->L; t++) {
    rhm_stream st;
    rhm_stream_init(&st, philox, seed, RHM_STREAM_RULES | t);
    uint64_t parents = rhm_parents(g, t);
    int rc = kind == RHM_RULES_REN ? level_ren(g, &st, parents, idx)
                                   : level_uniform(g, &st, parents, idx);
    if (rc) {
      free(idx);
      return -1;
    }
    uint32_t *tab = tables + rhm_table_offset(g, t);
    for (uint64_t r = 0; r < parents * g->m; r++) {
      uint64_t x = idx[r]; /* lexicographic: token 0 most significant */
      for (uint64_t a = g->s; a-- > 0;) {
        tab[r * g->s + a] = (uint32_t)(x % g->v);
        x /= g->v;
      }
    }
  }
  free(idx);
  return 0;
}

/* ---- Feistel bijection (mirror of rhm.cl) ------------------------------- */
static uint64_t feistel(const rhm_dims *g, rhm_philox_fn philox, uint64_t seed, uint64_t x) {
  uint32_t h = g->feistel_half;
  uint64_t mask = ((uint64_t)1 << h) - 1;
  uint32_t l = (uint32_t)(x >> h), r = (uint32_t)(x & mask);
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  for (uint32_t k = 0; k < RHM_FEISTEL_ROUNDS; k++) {
    uint32_t ctr[4] = {r, k, (uint32_t)RHM_STREAM_FEISTEL, (uint32_t)(RHM_STREAM_FEISTEL >> 32)};
    uint32_t w[4];
    philox(key, ctr, w);
    uint32_t nr = (uint32_t)((l ^ w[0]) & mask);
    l = r;
    r = nr;
  }
  return ((uint64_t)l << h) | r;
}

uint64_t rhm_feistel_perm(const rhm_dims *g, rhm_philox_fn philox, uint64_t seed, uint64_t x) {
  uint64_t pm = (uint64_t)g->p_max;
  uint64_t y = feistel(g, philox, seed, x);
  while (y >= pm) y = feistel(g, philox, seed, y);
  return y;
}

void rhm_whiten_values(int whitening, uint64_t v, float *on, float *off) {
  double dv = (double)v;
  if (whitening == RHM_WHITEN_CENTERED) {
    double a = 1.0 / dv, sd = sqrt(1.0 - a);
    *on = (float)((1.0 - a) / sd);
    *off = (float)((0.0 - a) / sd);
  } else if (whitening == RHM_WHITEN_PRX) {
    double c = 1.0 / sqrt(dv - 1.0);
    *on = (float)(1.0 * (1.0 + c) - c);
    *off = (float)(0.0 * (1.0 + c) - c);
  } else {
    *on = 1.0f;
    *off = 0.0f;
  }
}
