/* The Fourier-sparse function of the staircase target: building, parsing,
 * exact coefficients, evaluation in double and the staircase-property check. */
#include "staircase.h"

#include <ctype.h>
#include <errno.h>
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

void stc_terms_free(stc_terms *t) {
  free(t->coef);
  free(t->off);
  free(t->idx);
  memset(t, 0, sizeof *t);
}

int stc_terms_add(stc_terms *t, double coef, const uint32_t *idx, size_t size) {
  if (t->count + 1 > t->cap || !t->off) {
    size_t cap = t->cap ? 2 * t->cap : 8;
    double *c = realloc(t->coef, cap * sizeof *c);
    if (!c) return -1;
    t->coef = c;
    uint32_t *o = realloc(t->off, (cap + 1) * sizeof *o);
    if (!o) return -1;
    if (!t->off) o[0] = 0;
    t->off = o;
    t->cap = cap;
  }
  size_t used = t->off[t->count];
  if (used + size > t->cap_idx || !t->idx) {
    size_t cap = t->cap_idx ? t->cap_idx : 16;
    while (cap < used + size) cap *= 2;
    uint32_t *ix = realloc(t->idx, cap * sizeof *ix);
    if (!ix) return -1;
    t->idx = ix;
    t->cap_idx = cap;
  }
  if (size) memcpy(t->idx + used, idx, size * sizeof *idx);
  t->coef[t->count] = coef;
  t->off[t->count + 1] = (uint32_t)(used + size);
  t->count++;
  return 0;
}

static void sort_u32(uint32_t *a, size_t n) {
  for (size_t i = 1; i < n; i++) {
    uint32_t v = a[i];
    size_t j = i;
    while (j > 0 && a[j - 1] > v) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = v;
  }
}

/* Parse whitespace-separated 1-based indices of s[0..end) into idx (0-based,
 * sorted). allow_zero: the single token "0" means the empty set. */
static int parse_indices(const char *s, const char *end, size_t n, int allow_zero, uint32_t **idx,
                         size_t *size, size_t item, const char *what, char *why, size_t len) {
  size_t cap = 8, m = 0;
  uint32_t *a = malloc(cap * sizeof *a);
  if (!a) {
    why_set(why, len, "out of memory");
    return -1;
  }
  int saw_zero = 0;
  const char *p = s;
  while (p < end) {
    while (p < end && isspace((unsigned char)*p)) p++;
    if (p >= end) break;
    const char *q = p;
    while (q < end && !isspace((unsigned char)*q)) q++;
    char tok[32];
    size_t tl = (size_t)(q - p);
    if (tl >= sizeof tok) tl = sizeof tok - 1;
    memcpy(tok, p, tl);
    tok[tl] = 0;
    char *e = NULL;
    errno = 0;
    long long v = strtoll(tok, &e, 10);
    if (e == tok || *e || errno) {
      why_set(why, len, "%s %zu: '%s' is not an index (1-based integer)", what, item, tok);
      free(a);
      return -1;
    }
    if (v == 0 && allow_zero) {
      saw_zero = 1;
    } else if (v < 1 || (unsigned long long)v > n) {
      why_set(why, len, "%s %zu: index %lld is outside 1..n = 1..%zu", what, item, v, n);
      free(a);
      return -1;
    } else {
      for (size_t j = 0; j < m; j++)
        if (a[j] == (uint32_t)(v - 1)) {
          why_set(why, len, "%s %zu: index %lld appears twice", what, item, v);
          free(a);
          return -1;
        }
      if (m == cap) {
        cap *= 2;
        uint32_t *b = realloc(a, cap * sizeof *b);
        if (!b) {
          free(a);
          why_set(why, len, "out of memory");
          return -1;
        }
        a = b;
      }
      a[m++] = (uint32_t)(v - 1);
    }
    p = q;
  }
  if (saw_zero && m) {
    why_set(why, len, "%s %zu: 0 (the empty set) can not be combined with other indices", what,
            item);
    free(a);
    return -1;
  }
  if (!saw_zero && !m && allow_zero) {
    why_set(why, len, "%s %zu is empty (write 0 for the empty set)", what, item);
    free(a);
    return -1;
  }
  sort_u32(a, m);
  *idx = a;
  *size = m;
  return 0;
}

static const char *trim_left(const char *s, const char *end) {
  while (s < end && isspace((unsigned char)*s)) s++;
  return s;
}

int stc_terms_parse(const char *text, size_t n, stc_terms *out, char *why, size_t len) {
  memset(out, 0, sizeof *out);
  if (!text || !*trim_left(text, text + strlen(text))) {
    why_set(why, len, "terms is empty: give coefficient:indices items, e.g. '1.0:1, 0.5:1 2'");
    return -1;
  }
  const char *p = text;
  size_t item = 0;
  for (;;) {
    item++;
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *s = trim_left(p, end);
    if (s == end) {
      why_set(why, len, "term %zu is empty", item);
      goto fail;
    }
    const char *colon = memchr(s, ':', (size_t)(end - s));
    if (!colon) {
      why_set(why, len, "term %zu ('%.*s') has no ':' (write coefficient:indices)", item,
              (int)(end - s), s);
      goto fail;
    }
    char num[64];
    const char *ce = colon;
    while (ce > s && isspace((unsigned char)ce[-1])) ce--;
    size_t nl = (size_t)(ce - s);
    if (nl == 0 || nl >= sizeof num) {
      why_set(why, len, "term %zu: missing or too long coefficient", item);
      goto fail;
    }
    memcpy(num, s, nl);
    num[nl] = 0;
    char *e = NULL;
    errno = 0;
    double c = strtod(num, &e);
    if (e == num || *e || errno == ERANGE || !isfinite(c)) {
      why_set(why, len, "term %zu: coefficient '%s' is not a finite number", item, num);
      goto fail;
    }
    uint32_t *idx = NULL;
    size_t size = 0;
    if (parse_indices(colon + 1, end, n, 0, &idx, &size, item, "term", why, len)) goto fail;
    int rc = stc_terms_add(out, c, idx, size);
    free(idx);
    if (rc) {
      why_set(why, len, "out of memory");
      goto fail;
    }
    if (!*end) break;
    p = end + 1;
  }
  return 0;
fail:
  stc_terms_free(out);
  return -1;
}

int stc_sets_parse(const char *text, size_t n, stc_terms *out, char *why, size_t len) {
  memset(out, 0, sizeof *out);
  if (!text || !*trim_left(text, text + strlen(text))) {
    why_set(why, len, "probe_sets is empty");
    return -1;
  }
  const char *p = text;
  size_t item = 0;
  for (;;) {
    item++;
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    uint32_t *idx = NULL;
    size_t size = 0;
    if (parse_indices(p, end, n, 1, &idx, &size, item, "set", why, len)) goto fail;
    int dup = stc_terms_find(out, idx, size) >= 0;
    int rc = dup ? 0 : stc_terms_add(out, 0.0, idx, size);
    free(idx);
    if (rc) {
      why_set(why, len, "out of memory");
      goto fail;
    }
    if (!*end) break;
    p = end + 1;
  }
  return 0;
fail:
  stc_terms_free(out);
  return -1;
}

long stc_terms_find(const stc_terms *t, const uint32_t *idx, size_t size) {
  for (size_t j = 0; j < t->count; j++) {
    if (stc_term_size(t, j) != size) continue;
    if (size && memcmp(t->idx + t->off[j], idx, size * sizeof *idx)) continue;
    return (long)j;
  }
  return -1;
}

double stc_terms_coef(const stc_terms *t, const uint32_t *idx, size_t size) {
  long j = stc_terms_find(t, idx, size);
  return j < 0 ? 0.0 : t->coef[j];
}

int stc_terms_canonical(const stc_terms *in, stc_terms *out) {
  stc_terms merged = {0};
  memset(out, 0, sizeof *out);
  size_t maxs = 1;
  for (size_t j = 0; j < in->count; j++)
    if (stc_term_size(in, j) > maxs) maxs = stc_term_size(in, j);
  uint32_t *tmp = malloc(maxs * sizeof *tmp);
  if (!tmp) return -1;
  for (size_t j = 0; j < in->count; j++) {
    size_t s = stc_term_size(in, j);
    if (s) memcpy(tmp, in->idx + in->off[j], s * sizeof *tmp);
    sort_u32(tmp, s);
    long at = stc_terms_find(&merged, tmp, s);
    if (at >= 0) {
      merged.coef[at] += in->coef[j];
    } else if (stc_terms_add(&merged, in->coef[j], tmp, s)) {
      goto fail;
    }
  }
  for (size_t j = 0; j < merged.count; j++) {
    if (merged.coef[j] == 0.0) continue;
    if (stc_terms_add(out, merged.coef[j], merged.idx + merged.off[j], stc_term_size(&merged, j)))
      goto fail;
  }
  if (!out->off) { /* the zero function: keep a valid empty CSR */
    out->off = calloc(1, sizeof *out->off);
    if (!out->off) goto fail;
  }
  free(tmp);
  stc_terms_free(&merged);
  return 0;
fail:
  free(tmp);
  stc_terms_free(&merged);
  stc_terms_free(out);
  return -1;
}

static int add_range(stc_terms *t, double c, uint32_t first, uint32_t *buf, size_t prefix,
                     size_t count) {
  /* the set buf[0..prefix) followed by first, first+1, ..., first+count-1 */
  for (size_t i = 0; i < count; i++) buf[prefix + i] = first + (uint32_t)i;
  return stc_terms_add(t, c, buf, prefix + count);
}

int stc_fn_staircase(size_t k, int normalize, stc_terms *out) {
  memset(out, 0, sizeof *out);
  uint32_t *buf = malloc((k + 1) * sizeof *buf);
  if (!buf) return -1;
  double c = normalize ? 1.0 / sqrt((double)k) : 1.0;
  for (size_t i = 1; i <= k; i++)
    if (add_range(out, c, 0, buf, 0, i)) {
      free(buf);
      stc_terms_free(out);
      return -1;
    }
  free(buf);
  return 0;
}

int stc_fn_parity(size_t k, stc_terms *out) {
  memset(out, 0, sizeof *out);
  uint32_t *buf = malloc((k + 1) * sizeof *buf);
  if (!buf) return -1;
  int rc = add_range(out, 1.0, 0, buf, 0, k);
  free(buf);
  if (rc) stc_terms_free(out);
  return rc;
}

int stc_fn_multi(size_t k1, size_t k2, stc_terms *out) {
  memset(out, 0, sizeof *out);
  uint32_t *buf = malloc((k1 + k2 + 1) * sizeof *buf);
  if (!buf) return -1;
  int rc = 0;
  for (size_t i = 1; i <= k1 && !rc; i++) rc = add_range(out, 1.0, 0, buf, 0, i);
  buf[0] = 0; /* x_1 times chi_{k1+1 .. k1+i-1} */
  for (size_t i = 2; i <= k2 && !rc; i++) rc = add_range(out, 1.0, (uint32_t)k1, buf, 1, i - 1);
  free(buf);
  if (rc) stc_terms_free(out);
  return rc;
}

int stc_function_build(int kind, size_t n, size_t k, size_t k2, int normalize,
                       const char *terms_text, stc_terms *out, char *why, size_t len) {
  stc_terms raw = {0};
  int rc = 0;
  memset(out, 0, sizeof *out);
  switch (kind) {
  case STC_FN_STAIRCASE:
  case STC_FN_PARITY:
    if (k > n) {
      why_set(why, len, "k = %zu exceeds the input dimension n = %zu", k, n);
      return -1;
    }
    rc = kind == STC_FN_STAIRCASE ? stc_fn_staircase(k, normalize, &raw) : stc_fn_parity(k, &raw);
    break;
  case STC_FN_MULTI:
    if (k2 < 1) {
      why_set(why, len, "k2 = %zu: the second staircase needs k2 >= 1", k2);
      return -1;
    }
    if (k + k2 - 1 > n) {
      why_set(why, len,
              "multi_staircase uses coordinates 1..k+k2-1 = 1..%zu (k = %zu, k2 = %zu), more "
              "than n = %zu",
              k + k2 - 1, k, k2, n);
      return -1;
    }
    rc = stc_fn_multi(k, k2, &raw);
    break;
  case STC_FN_FOURIER:
    if (stc_terms_parse(terms_text, n, &raw, why, len)) return -1;
    break;
  default: why_set(why, len, "unknown function kind %d", kind); return -1;
  }
  if (rc || stc_terms_canonical(&raw, out)) {
    stc_terms_free(&raw);
    why_set(why, len, "out of memory");
    return -1;
  }
  stc_terms_free(&raw);
  return 0;
}

int stc_probe_default_sets(int kind, size_t k, size_t k2, const stc_terms *fn, stc_terms *out) {
  memset(out, 0, sizeof *out);
  if (stc_terms_add(out, 0.0, NULL, 0)) return -1; /* the empty set first */
  if (kind == STC_FN_FOURIER) {
    for (size_t j = 0; j < fn->count; j++) {
      const uint32_t *s = fn->idx + fn->off[j];
      size_t m = stc_term_size(fn, j);
      if (stc_terms_find(out, s, m) < 0 && stc_terms_add(out, 0.0, s, m)) goto fail;
    }
    return 0;
  }
  uint32_t *buf = malloc((k + k2 + 1) * sizeof *buf);
  if (!buf) goto fail;
  int rc = 0;
  for (size_t i = 1; i <= k && !rc; i++) rc = add_range(out, 0.0, 0, buf, 0, i);
  if (kind == STC_FN_MULTI) {
    buf[0] = 0;
    for (size_t i = 2; i <= k2 && !rc; i++) rc = add_range(out, 0.0, (uint32_t)k, buf, 1, i - 1);
  }
  free(buf);
  if (rc) goto fail;
  return 0;
fail:
  stc_terms_free(out);
  return -1;
}

double stc_terms_eval(const stc_terms *t, const double *x) {
  double f = 0.0;
  for (size_t j = 0; j < t->count; j++) {
    double chi = 1.0;
    for (uint32_t a = t->off[j]; a < t->off[j + 1]; a++) chi *= x[t->idx[a]];
    f += t->coef[j] * chi;
  }
  return f;
}

int stc_staircase_property(const stc_terms *t) {
  /* Sets reached so far, grown one size at a time: a set of size s is
   * reached when removing one of its indices leaves a reached nonzero set
   * (size 1 sets step from the empty set, which is always the start). */
  if (!t->count) return 1;
  char *reached = calloc(t->count, 1);
  size_t maxs = stc_degree(t);
  uint32_t *tmp = malloc((maxs + 1) * sizeof *tmp);
  int ok = 1;
  if (!reached || !tmp) {
    free(reached);
    free(tmp);
    return -1;
  }
  for (size_t s = 0; s <= maxs; s++) {
    for (size_t j = 0; j < t->count; j++) {
      if (t->coef[j] == 0.0 || stc_term_size(t, j) != s) continue;
      if (s <= 1) {
        reached[j] = 1;
        continue;
      }
      const uint32_t *set = t->idx + t->off[j];
      for (size_t drop = 0; drop < s && !reached[j]; drop++) {
        size_t m = 0;
        for (size_t a = 0; a < s; a++)
          if (a != drop) tmp[m++] = set[a];
        long at = stc_terms_find(t, tmp, m);
        if (at >= 0 && t->coef[at] != 0.0 && reached[at]) reached[j] = 1;
      }
    }
  }
  for (size_t j = 0; j < t->count; j++)
    if (t->coef[j] != 0.0 && !reached[j]) ok = 0;
  free(reached);
  free(tmp);
  return ok;
}

size_t stc_degree(const stc_terms *t) {
  size_t d = 0;
  for (size_t j = 0; j < t->count; j++)
    if (t->coef[j] != 0.0 && stc_term_size(t, j) > d) d = stc_term_size(t, j);
  return d;
}

void stc_set_name(const stc_terms *t, size_t j, char *buf, size_t len) {
  const uint32_t *s = t->idx + t->off[j];
  size_t m = stc_term_size(t, j);
  if (!len) return;
  if (m == 0) {
    snprintf(buf, len, "fourier_0");
    return;
  }
  int run = m >= 3; /* runtime metric names are [a-z0-9_]: "to" marks a run */
  for (size_t a = 1; a < m && run; a++)
    if (s[a] != s[a - 1] + 1) run = 0;
  if (run) {
    snprintf(buf, len, "fourier_%uto%u", s[0] + 1, s[m - 1] + 1);
    return;
  }
  size_t used = (size_t)snprintf(buf, len, "fourier");
  for (size_t a = 0; a < m && used < len; a++)
    used += (size_t)snprintf(buf + used, len - used, "_%u", s[a] + 1);
}

void stc_terms_text(const stc_terms *t, char *buf, size_t len) {
  if (!len) return;
  size_t used = 0;
  buf[0] = 0;
  if (!t->count) {
    snprintf(buf, len, "0");
    return;
  }
  for (size_t j = 0; j < t->count; j++) {
    char term[256];
    double c = t->coef[j];
    size_t tl = (size_t)snprintf(term, sizeof term, "%s%.6g",
                                 j == 0 ? (c < 0 ? "-" : "") : (c < 0 ? " - " : " + "), fabs(c));
    for (uint32_t a = t->off[j]; a < t->off[j + 1] && tl < sizeof term; a++)
      tl += (size_t)snprintf(term + tl, sizeof term - tl, "*x%u", t->idx[a] + 1);
    if (tl >= sizeof term || used + tl + 4 >= len) {
      snprintf(buf + used, len - used, " ...");
      return;
    }
    memcpy(buf + used, term, tl + 1);
    used += tl;
  }
}

char *stc_terms_json(const stc_terms *t) {
  size_t cap = 64 + t->count * 64 + (t->count ? t->off[t->count] : 0) * 12;
  char *s = malloc(cap);
  if (!s) return NULL;
  size_t u = 0;
  u += (size_t)snprintf(s + u, cap - u, "[");
  for (size_t j = 0; j < t->count; j++) {
    u += (size_t)snprintf(s + u, cap - u, "%s{\"coef\":%.17g,\"set\":[", j ? "," : "", t->coef[j]);
    for (uint32_t a = t->off[j]; a < t->off[j + 1]; a++)
      u += (size_t)snprintf(s + u, cap - u, "%s%u", a > t->off[j] ? "," : "", t->idx[a] + 1);
    u += (size_t)snprintf(s + u, cap - u, "]}");
  }
  snprintf(s + u, cap - u, "]");
  return s;
}
