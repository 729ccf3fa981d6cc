/* Declared parameters: a config section checked against a plugin's (or the
 * runtime's) schema. Unknown keys, missing required keys, and values of the
 * wrong type or out of range are errors naming file, section and key; the
 * typed getters then never fail. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Defined in config.c; not yet in internal.h (proposed to the lead). */
/* hcl_config_line: internal.h */

/* ---- value syntax -------------------------------------------------------- */

/* Parse [b, e) (trimmed) as a finite double: strtod must consume it all. */
static int parse_double_n(const char *b, size_t n, double *out) {
  while (n && isspace((unsigned char)*b)) b++, n--;
  while (n && isspace((unsigned char)b[n - 1])) n--;
  char buf[128];
  if (n == 0 || n >= sizeof buf) return 0;
  /* strtod also reads hex ("0x10"); a config number is decimal. */
  if (memchr(b, 'x', n) || memchr(b, 'X', n)) return 0;
  memcpy(buf, b, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  double v = strtod(buf, &end);
  if (*end || errno == ERANGE || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

/* Integer syntax: decimal digits with an optional sign; also an exactly
 * integral number in float syntax ("1e6"), which configs use for step counts. */
static int parse_int(const char *s, int64_t *out) {
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return 0;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  while (isspace((unsigned char)*end)) end++;
  if (!*end && errno != ERANGE) {
    *out = v;
    return 1;
  }
  double d;
  if (!parse_double_n(s, strlen(s), &d) || d != floor(d) || fabs(d) > 9007199254740992.0) return 0;
  *out = (int64_t)d;
  return 1;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "1", "yes", "on"};
  static const char *const no[] = {"false", "0", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp(s, yes[i])) return *out = 1, 1;
    if (!strcasecmp(s, no[i])) return *out = 0, 1;
  }
  return 0;
}

static int bounded(const hcl_param_desc *d) { return d->lo <= d->hi; }
static int in_range(const hcl_param_desc *d, double v) {
  return !bounded(d) || (v >= d->lo && v <= d->hi);
}

/* " in [lo, hi]" or "" when unbounded. */
static void range_text(const hcl_param_desc *d, char *buf, size_t len) {
  if (bounded(d))
    snprintf(buf, len, " in [%.15g, %.15g]", d->lo, d->hi);
  else if (len)
    buf[0] = 0;
}

static void choices_text(const hcl_param_desc *d, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = 0;
  for (size_t i = 0; d->choices && d->choices[i] && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", d->choices[i]);
}

/* Walk a LIST value: calls back each element; returns the count, or -1 with
 * why set. An empty value is an empty list. */
static long walk_list(const hcl_param_desc *d, const char *value, double *out, size_t max,
                      char *why, size_t len) {
  char range[96];
  range_text(d, range, sizeof range);
  const char *p = value;
  while (isspace((unsigned char)*p)) p++;
  if (!*p) return 0;
  long count = 0;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    double v;
    if (!parse_double_n(p, n, &v)) {
      const char *eb = p;
      size_t en = n;
      while (en && isspace((unsigned char)*eb)) eb++, en--;
      while (en && isspace((unsigned char)eb[en - 1])) en--;
      if (why)
        snprintf(why, len, "element %ld '%.*s' is not a number; expected comma-separated numbers%s",
                 count + 1, (int)en, eb, range);
      return -1;
    }
    if (!in_range(d, v)) {
      if (why)
        snprintf(why, len, "element %ld (%.15g) out of range; expected comma-separated numbers%s",
                 count + 1, v, range);
      return -1;
    }
    if (out && (size_t)count < max) out[count] = v;
    count++;
    if (!comma) break;
    p = comma + 1;
  }
  return count;
}

int hcl_param_check_value(const hcl_param_desc *d, const char *value, char *why, size_t len) {
  char range[96], buf[512];
  if (!why || !len) {
    why = buf;
    len = sizeof buf;
  }
  why[0] = 0;
  if (!value) {
    snprintf(why, len, "no value");
    return 0;
  }
  range_text(d, range, sizeof range);
  switch (d->type) {
  case HCL_PARAM_INT: {
    int64_t v;
    if (!parse_int(value, &v)) {
      snprintf(why, len, "expected an integer%s", range);
      return 0;
    }
    if (!in_range(d, (double)v)) {
      snprintf(why, len, "out of range; expected an integer%s", range);
      return 0;
    }
    return 1;
  }
  case HCL_PARAM_DOUBLE: {
    double v;
    if (!parse_double_n(value, strlen(value), &v)) {
      snprintf(why, len, "expected a finite number%s", range);
      return 0;
    }
    if (!in_range(d, v)) {
      snprintf(why, len, "out of range; expected a number%s", range);
      return 0;
    }
    return 1;
  }
  case HCL_PARAM_BOOL: {
    int b;
    if (!parse_bool(value, &b)) {
      snprintf(why, len, "expected a boolean (true/false, 1/0, yes/no, on/off)");
      return 0;
    }
    return 1;
  }
  case HCL_PARAM_STRING: return 1;
  case HCL_PARAM_ENUM: {
    for (size_t i = 0; d->choices && d->choices[i]; i++)
      if (!strcmp(d->choices[i], value)) return 1;
    char list[400];
    choices_text(d, list, sizeof list);
    snprintf(why, len, "expected one of: %s", list);
    return 0;
  }
  case HCL_PARAM_LIST: return walk_list(d, value, NULL, 0, why, len) >= 0;
  }
  snprintf(why, len, "unknown parameter type %d in the schema", (int)d->type);
  return 0;
}

/* ---- resolving a section ------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 64;
  size_t row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static const hcl_param_desc *schema_find(const hcl_param_desc *schema, const char *key) {
  for (size_t i = 0; schema && schema[i].key; i++)
    if (!strcmp(schema[i].key, key)) return &schema[i];
  return NULL;
}

static int extra_has(const char *const *extra, const char *key) {
  for (size_t i = 0; extra && extra[i]; i++)
    if (!strcmp(extra[i], key)) return 1;
  return 0;
}

/* "FILE:LINE", "FILE (--set)" for a value given with --set (config.c marks
 * those with from_default = -1), or "FILE" when the line is unknown. */
void hcl_config_where(const hcl_config *cfg, const char *section, const char *key, char *buf,
                      size_t len) {
  const char *name = cfg->path[0] ? cfg->path : "<config>";
  for (size_t i = 0; i < cfg->n_sections; i++) {
    if (strcasecmp(cfg->sections[i].name, section)) continue;
    for (size_t k = 0; k < cfg->sections[i].n; k++) {
      if (!strcmp(cfg->sections[i].kv[k].key, key) && cfg->sections[i].kv[k].from_default < 0) {
        snprintf(buf, len, "%s (--set %s.%s)", name, section, key);
        return;
      }
    }
  }
  unsigned line = hcl_config_line(cfg, section, key);
  if (line)
    snprintf(buf, len, "%s:%u", name, line);
  else
    snprintf(buf, len, "%s", name);
}

static hcl_status unknown_key(hcl_ctx *ctx, const hcl_config *cfg, const char *section,
                              const char *key, const hcl_param_desc *schema,
                              const char *const *extra) {
  char at[1100], known[1024] = "", hint[128] = "";
  size_t used = 0, best = 3;
  const char *guess = NULL;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0;; i++) {
      const char *k = pass == 0 ? (schema ? schema[i].key : NULL) : (extra ? extra[i] : NULL);
      if (!k) break;
      if (used < sizeof known)
        used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", k);
      size_t dist = edit_distance(key, k);
      if (dist < best) best = dist, guess = k;
    }
  }
  if (guess) snprintf(hint, sizeof hint, "; did you mean '%s'?", guess);
  hcl_config_where(cfg, section, key, at, sizeof at);
  return hcl_fail(ctx, HCL_ERR_CONFIG, "%s: [%s] unknown key '%s'%s (known: %s)", at, section, key,
                  hint, used ? known : "none");
}

static hcl_status push(hcl_params *p, const char *key, const char *value, int from_default) {
  hcl_kv *kv = realloc(p->kv, (p->n + 1) * sizeof *kv);
  if (!kv) return HCL_ERR_NOMEM;
  p->kv = kv;
  char *k = strdup(key), *v = strdup(value ? value : "");
  if (!k || !v) {
    free(k);
    free(v);
    return HCL_ERR_NOMEM;
  }
  p->kv[p->n++] = (hcl_kv){k, v, from_default};
  return HCL_OK;
}

hcl_status hcl_params_resolve(hcl_ctx *ctx, const hcl_config *cfg, const char *section,
                              const hcl_param_desc *schema, const char *const *extra_keys,
                              hcl_params *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->section, sizeof out->section, "%s", section);
  out->schema = schema;
  const char *file = cfg->path[0] ? cfg->path : "<config>";
  const struct hcl_raw_section *raw = NULL;
  for (size_t i = 0; i < cfg->n_sections; i++)
    if (!strcasecmp(cfg->sections[i].name, section)) raw = &cfg->sections[i];

  hcl_status rc = HCL_OK;
  char at[1100], why[512];
  /* Every key of the file must be declared. */
  for (size_t i = 0; raw && i < raw->n && rc == HCL_OK; i++) {
    const char *key = raw->kv[i].key;
    if (!schema_find(schema, key) && !extra_has(extra_keys, key))
      rc = unknown_key(ctx, cfg, section, key, schema, extra_keys);
  }
  /* Schema order, then the extra keys in file order: a stable manifest. */
  for (size_t i = 0; schema && schema[i].key && rc == HCL_OK; i++) {
    const hcl_param_desc *d = &schema[i];
    const char *v = hcl_config_get(cfg, section, d->key);
    if (v) {
      if (!hcl_param_check_value(d, v, why, sizeof why)) {
        hcl_config_where(cfg, section, d->key, at, sizeof at);
        rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s: [%s] %s = '%s': %s", at, section, d->key, v, why);
        break;
      }
    } else if (!d->def) {
      char help[300] = "";
      if (d->help) snprintf(help, sizeof help, " (%s)", d->help);
      rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s: [%s] missing required key '%s'%s", file, section,
                    d->key, help);
      break;
    } else if (!hcl_param_check_value(d, d->def, why, sizeof why)) {
      rc = hcl_fail(ctx, HCL_ERR_PLUGIN, "[%s] %s: the declared default '%s' is invalid: %s",
                    section, d->key, d->def, why);
      break;
    }
    if (push(out, d->key, v ? v : d->def, v == NULL) != HCL_OK)
      rc = hcl_fail(ctx, HCL_ERR_NOMEM, "%s: [%s] out of memory", file, section);
  }
  for (size_t i = 0; raw && i < raw->n && rc == HCL_OK; i++) {
    if (schema_find(schema, raw->kv[i].key)) continue;
    if (push(out, raw->kv[i].key, raw->kv[i].value, 0) != HCL_OK)
      rc = hcl_fail(ctx, HCL_ERR_NOMEM, "%s: [%s] out of memory", file, section);
  }
  if (rc != HCL_OK) {
    hcl_params_free(out);
    snprintf(out->section, sizeof out->section, "%s", section);
  }
  return rc;
}

void hcl_params_free(hcl_params *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++) {
    free(p->kv[i].key);
    free(p->kv[i].value);
  }
  free(p->kv);
  memset(p, 0, sizeof *p);
}

/* ---- typed getters (values were checked by resolve) ---------------------- */

static const char *lookup(const hcl_params *p, const char *key, const char *what) {
  for (size_t i = 0; p && key && i < p->n; i++)
    if (!strcmp(p->kv[i].key, key)) return p->kv[i].value;
  hcl_log(NULL, HCL_LOG_ERROR, "%s: [%s] has no parameter '%s' (not declared in the schema?)", what,
          p ? p->section : "?", key ? key : "(null)");
  return NULL;
}

int64_t hcl_param_int(const hcl_params *p, const char *key) {
  const char *v = lookup(p, key, "param_int");
  int64_t out = 0;
  if (v && !parse_int(v, &out)) out = 0;
  return out;
}

double hcl_param_double(const hcl_params *p, const char *key) {
  const char *v = lookup(p, key, "param_double");
  double out = NAN;
  if (v && !parse_double_n(v, strlen(v), &out)) out = NAN;
  return out;
}

int hcl_param_bool(const hcl_params *p, const char *key) {
  const char *v = lookup(p, key, "param_bool");
  int out = 0;
  if (v && !parse_bool(v, &out)) out = 0;
  return out;
}

const char *hcl_param_str(const hcl_params *p, const char *key) {
  return lookup(p, key, "param_str");
}

size_t hcl_param_list(const hcl_params *p, const char *key, double *out, size_t max) {
  const char *v = lookup(p, key, "param_list");
  if (!v) return 0;
  static const hcl_param_desc unbounded = {.lo = 1, .hi = 0};
  long n = walk_list(&unbounded, v, out, max, NULL, 0);
  return n < 0 ? 0 : (size_t)n;
}
