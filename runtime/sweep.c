/* hcl_sweep: a grid of runs ([sweep] section or --grid), seeds batched as
 * replicas of one run, resumable, with the sample-complexity estimate P*. */
#include "schema.h"
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_AXES 8
#define MAX_VALUES 256
/* Longest grid value: point keys ("k1=v1;k2=v2", 1024 bytes) and the
 * per-replica lists must hold every value whole, never cut. */
#define MAX_VALUE_LEN 200

typedef struct axis {
  char key[96]; /* section.key */
  char *values[MAX_VALUES];
  size_t n;
} axis;

typedef struct sweep {
  axis axes[MAX_AXES];
  size_t n_axes;
  int seed_axis;    /* index of run.seed, or -1 */
  int size_axis;    /* index of train.train_size, or -1 */
  char metric[32];  /* auto, test_error, test_loss, train_loss */
  double threshold; /* 0: automatic */
  char name[128];
} sweep;

/* ---- value lists: "a, b, c" | "a..b" (integers) | "geom(lo, hi, n)" ------- */

static hcl_status add_value(axis *a, const char *v) {
  if (a->n == MAX_VALUES)
    return hcl_fail(NULL, HCL_ERR_CONFIG, "[sweep] %s: more than %d values", a->key, MAX_VALUES);
  a->values[a->n] = strdup(v);
  if (!a->values[a->n]) return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  a->n++;
  return HCL_OK;
}

static char *trimmed(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
  return s;
}

hcl_status hcl_sweep_parse_values(const char *key, const char *text, char ***out, size_t *n) {
  axis a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s", key);
  char *buf = strdup(text); /* any length: a cut list would lose or change values */
  if (!buf) return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  char *t = trimmed(buf);
  double lo, hi;
  int cnt;
  long long i0, i1;
  char tail;
  hcl_status rc = HCL_OK;
  if (sscanf(t, "geom(%lf ,%lf ,%d )%c", &lo, &hi, &cnt, &tail) == 3 ||
      sscanf(t, "geom(%lf,%lf,%d)%c", &lo, &hi, &cnt, &tail) == 3) {
    if (!(lo > 0 && hi > 0 && isfinite(lo) && isfinite(hi) && cnt >= 2 && cnt <= MAX_VALUES))
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "[sweep] %s = %s: geom(lo, hi, n) needs finite 0 < lo, 0 < hi, 2 <= n <= %d",
                    key, text, MAX_VALUES);
    /* whole numbers stay whole while llround is exact (below 2^53) */
    int ints =
        lo == floor(lo) && hi == floor(hi) && lo < 9007199254740992.0 && hi < 9007199254740992.0;
    for (int k = 0; k < cnt && rc == HCL_OK; k++) {
      double v = lo * pow(hi / lo, (double)k / (cnt - 1));
      char s[64];
      if (ints)
        snprintf(s, sizeof s, "%lld", (long long)llround(v));
      else
        snprintf(s, sizeof s, "%.6g", v);
      if (ints && a.n && !strcmp(a.values[a.n - 1], s)) continue; /* rounding made a duplicate */
      rc = add_value(&a, s);
    }
  } else if (strstr(t, "..") && sscanf(t, "%lld..%lld%c", &i0, &i1, &tail) == 2) {
    /* the difference in unsigned arithmetic: i1 - i0 may not fit a long long */
    if (i1 < i0 || (unsigned long long)i1 - (unsigned long long)i0 >= MAX_VALUES)
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "[sweep] %s = %s: range a..b needs a <= b and at most %d values", key, text,
                    MAX_VALUES);
    for (long long v = i0; v <= i1 && rc == HCL_OK; v++) {
      char s[32];
      snprintf(s, sizeof s, "%lld", v);
      rc = add_value(&a, s);
    }
  } else {
    for (char *tok = t; tok && rc == HCL_OK;) { /* not strtok: it would skip empty items */
      char *comma = strchr(tok, ',');
      if (comma) *comma = 0;
      char *v = trimmed(tok);
      rc = *v ? add_value(&a, v)
              : hcl_fail(NULL, HCL_ERR_CONFIG, "[sweep] %s = %s: empty value in the list", key,
                         text);
      tok = comma ? comma + 1 : NULL;
    }
  }
  if (rc == HCL_OK && !a.n) rc = hcl_fail(NULL, HCL_ERR_CONFIG, "[sweep] %s: no values", key);
  free(buf);
  if (rc != HCL_OK) {
    for (size_t i = 0; i < a.n; i++) free(a.values[i]);
    return rc;
  }
  *out = malloc(a.n * sizeof(char *));
  if (!*out) return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  memcpy(*out, a.values, a.n * sizeof(char *));
  *n = a.n;
  return HCL_OK;
}

static const char *const grid_sections[] = {"run",   "runtime", "target", "model",
                                            "train", "eval",    NULL};

/* The declared parameter of a core-section key ("train.lr"), NULL for the
 * plugin sections (their values are checked against the plugin's schema by
 * the dry run of every point, before any point runs). */
static const hcl_param_desc *core_param(const char *key, const char **section) {
  static const struct {
    const char *name;
    const hcl_param_desc *schema;
  } core[] = {{"run", hcl_schema_run},
              {"runtime", hcl_schema_runtime},
              {"train", hcl_schema_train},
              {"eval", hcl_schema_eval}};
  const char *dot = strchr(key, '.');
  *section = NULL;
  for (size_t c = 0; dot && c < sizeof core / sizeof *core; c++) {
    if (strlen(core[c].name) != (size_t)(dot - key) ||
        strncmp(core[c].name, key, (size_t)(dot - key)))
      continue;
    *section = core[c].name;
    for (const hcl_param_desc *d = core[c].schema; d->key; d++)
      if (!strcmp(d->key, dot + 1)) return d;
  }
  return NULL;
}

/* Every value of an axis, before anything runs: the same typed checks as
 * --set for the core sections, and no byte that sweep.jsonl would escape
 * (a quote, a backslash, a control character, invalid UTF-8): the resume
 * matches finished points by their key text, so such a value would never
 * count as finished. Seeds are rewritten as plain integers ("1e3" -> 1000)
 * because they become run.seeds. */
hcl_status hcl_sweep_check_values(const char *key, char **values, size_t n, const char *origin) {
  const char *section;
  const hcl_param_desc *d = core_param(key, &section);
  if (section && !d)
    return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [sweep] grid key '%s': [%s] has no key '%s'", origin,
                    key, section, strchr(key, '.') + 1);
  for (size_t i = 0; i < n; i++) {
    const char *v = values[i];
    if (strlen(v) > MAX_VALUE_LEN)
      return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [sweep] %s value %zu is longer than %d characters",
                      origin, key, i + 1, MAX_VALUE_LEN);
    for (const char *p = v; *p; p++)
      if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7F)
        return hcl_fail(NULL, HCL_ERR_CONFIG,
                        "%s: [sweep] %s value '%s': quotes, backslashes and control characters "
                        "are not allowed in grid values",
                        origin, key, v);
    if (!hcl_utf8_valid(v))
      return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [sweep] %s value %zu is not valid UTF-8", origin,
                      key, i + 1);
    char why[512];
    if (d && !hcl_param_check_value(d, v, why, sizeof why))
      return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [sweep] %s = '%s': %s", origin, key, v, why);
    if (!strcmp(key, "run.seed")) {
      char canon[32];
      snprintf(canon, sizeof canon, "%.0f", strtod(v, NULL)); /* integral, < 2^32: exact */
      char *c = strdup(canon);
      if (!c) return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
      free(values[i]);
      values[i] = c;
    }
  }
  return HCL_OK;
}

static hcl_status add_axis(sweep *sw, const char *key, const char *values, const char *origin) {
  const char *dot = strchr(key, '.');
  int ok = 0;
  for (const char *const *s = grid_sections; dot && *s; s++)
    ok |= strlen(*s) == (size_t)(dot - key) && !strncmp(*s, key, (size_t)(dot - key));
  if (!ok || !dot[1])
    return hcl_fail(NULL, HCL_ERR_CONFIG,
                    "[sweep] '%s': a grid key is section.key with section one of run, runtime, "
                    "target, model, train, eval",
                    key);
  size_t i = 0;
  for (; i < sw->n_axes; i++)
    if (!strcmp(sw->axes[i].key, key)) break; /* --grid replaces the file's axis */
  if (i == MAX_AXES)
    return hcl_fail(NULL, HCL_ERR_CONFIG, "[sweep] at most %d grid keys", MAX_AXES);
  axis *a = &sw->axes[i];
  for (size_t k = 0; k < a->n; k++) free(a->values[k]);
  memset(a, 0, sizeof *a);
  snprintf(a->key, sizeof a->key, "%s", key);
  char **vals;
  size_t n;
  HCL_TRY(hcl_sweep_parse_values(key, values, &vals, &n));
  memcpy(a->values, vals, n * sizeof *vals);
  a->n = n;
  free(vals);
  if (i == sw->n_axes) sw->n_axes++;
  return hcl_sweep_check_values(a->key, a->values, a->n, origin);
}

static hcl_status read_sweep(sweep *sw, const hcl_config *cfg, const hcl_sweep_options *opt) {
  memset(sw, 0, sizeof *sw);
  snprintf(sw->metric, sizeof sw->metric, "auto");
  for (size_t s = 0; s < cfg->n_sections; s++) {
    if (strcmp(cfg->sections[s].name, "sweep")) continue;
    for (size_t k = 0; k < cfg->sections[s].n; k++) {
      const hcl_kv *kv = &cfg->sections[s].kv[k];
      if (strchr(kv->key, '.')) {
        char at[1200];
        hcl_config_where(cfg, "sweep", kv->key, at, sizeof at);
        HCL_TRY(add_axis(sw, kv->key, kv->value, at));
      } else if (!strcmp(kv->key, "metric")) {
        if (strcmp(kv->value, "auto") && strcmp(kv->value, "test_error") &&
            strcmp(kv->value, "test_loss") && strcmp(kv->value, "train_loss"))
          return hcl_fail(
              NULL, HCL_ERR_CONFIG,
              "%s: [sweep] metric = %s (expected auto, test_error, test_loss or train_loss)",
              cfg->path, kv->value);
        snprintf(sw->metric, sizeof sw->metric, "%s", kv->value);
      } else if (!strcmp(kv->key, "threshold")) {
        char *end;
        sw->threshold = strtod(kv->value, &end);
        if (end == kv->value || *end || !(sw->threshold >= 0) || !isfinite(sw->threshold))
          return hcl_fail(NULL, HCL_ERR_CONFIG,
                          "%s: [sweep] threshold = %s: expected a number >= 0", cfg->path,
                          kv->value);
      } else if (!strcmp(kv->key, "name")) {
        snprintf(sw->name, sizeof sw->name, "%s", kv->value);
      } else {
        return hcl_fail(NULL, HCL_ERR_CONFIG,
                        "%s: [sweep] unknown key '%s' (known: metric, threshold, name, and "
                        "section.key grid axes such as train.train_size)",
                        cfg->path, kv->key);
      }
    }
  }
  for (size_t i = 0; i < opt->n_grid; i++) {
    const char *eq = strchr(opt->grid[i], '=');
    if (!eq)
      return hcl_fail(NULL, HCL_ERR_CONFIG, "--grid '%s': expected section.key=v1,v2,...",
                      opt->grid[i]);
    char key[96];
    if ((size_t)(eq - opt->grid[i]) >= sizeof key)
      return hcl_fail(NULL, HCL_ERR_CONFIG, "--grid '%.100s...': key longer than %zu characters",
                      opt->grid[i], sizeof key - 1);
    snprintf(key, sizeof key, "%.*s", (int)(eq - opt->grid[i]), opt->grid[i]);
    HCL_TRY(add_axis(sw, trimmed(key), eq + 1, "--grid"));
  }
  if (!sw->n_axes)
    return hcl_fail(
        NULL, HCL_ERR_CONFIG,
        "%s: nothing to sweep: add a [sweep] section (e.g. train.train_size = 100, 1000) "
        "or --grid section.key=v1,v2",
        cfg->path);
  sw->seed_axis = sw->size_axis = -1;
  size_t key_len = 0; /* the longest point key, which must fit its 1024-byte buffers whole */
  for (size_t i = 0; i < sw->n_axes; i++) {
    if (!strcmp(sw->axes[i].key, "run.seed")) sw->seed_axis = (int)i;
    if (!strcmp(sw->axes[i].key, "train.train_size")) sw->size_axis = (int)i;
    size_t longest = 0;
    for (size_t k = 0; k < sw->axes[i].n; k++)
      if (strlen(sw->axes[i].values[k]) > longest) longest = strlen(sw->axes[i].values[k]);
    if (strcmp(sw->axes[i].key, "run.seed")) key_len += strlen(sw->axes[i].key) + 2 + longest;
  }
  if (key_len >= 1024)
    return hcl_fail(NULL, HCL_ERR_CONFIG,
                    "%s: [sweep] the grid keys and values are too long together (%zu characters; "
                    "at most 1023 for a point's key)",
                    cfg->path, key_len);
  return HCL_OK;
}

static void free_sweep(sweep *sw) {
  for (size_t i = 0; i < sw->n_axes; i++)
    for (size_t k = 0; k < sw->axes[i].n; k++) free(sw->axes[i].values[k]);
}

/* ---- the grid: every combination of the non-seed axes ---------------------- */

static size_t n_points(const sweep *sw) {
  size_t n = 1;
  for (size_t i = 0; i < sw->n_axes; i++)
    if ((int)i != sw->seed_axis) n *= sw->axes[i].n;
  return n;
}

/* Value index of axis i at point p (mixed radix over the non-seed axes, last fastest). */
static size_t value_at(const sweep *sw, size_t p, size_t axis_i) {
  for (size_t i = sw->n_axes; i-- > 0;) {
    if ((int)i == sw->seed_axis) continue;
    size_t idx = p % sw->axes[i].n;
    if (i == axis_i) return idx;
    p /= sw->axes[i].n;
  }
  return 0;
}

/* "k1=v1;k2=v2" of the non-seed axes (optionally leaving one out). */
static void point_key_mask(const sweep *sw, size_t p, unsigned skip, char *out, size_t len) {
  out[0] = 0;
  for (size_t i = 0; i < sw->n_axes; i++) {
    if ((int)i == sw->seed_axis || (skip >> i & 1u)) continue;
    size_t l = strlen(out);
    snprintf(out + l, len - l, "%s%s=%s", l ? ";" : "", sw->axes[i].key,
             sw->axes[i].values[value_at(sw, p, i)]);
  }
}

static void point_key(const sweep *sw, size_t p, int skip_axis, char *out, size_t len) {
  point_key_mask(sw, p, skip_axis >= 0 ? 1u << skip_axis : 0u, out, len);
}

/* ---- results --------------------------------------------------------------- */

/* One metric of a flat one-line JSON object. */
static int json_get(const char *line, const char *key, double *v) {
  char pat[96];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(line, pat);
  if (!p) return 0;
  p += strlen(pat);
  if (!strncmp(p, "null", 4)) {
    *v = NAN;
    return 1;
  }
  char *end;
  *v = strtod(p, &end);
  return end != p;
}

/* Append one line per replica of a finished (or failed) run to sweep.jsonl. */
static void record(FILE *out, const sweep *sw, const size_t *pts, const unsigned char *skip,
                   const char *run_dir, const char *status, const char *error,
                   const uint64_t *seeds, size_t R) {
  char path[1200];
  snprintf(path, sizeof path, "%s/summary.json", run_dir);
  char *sum = *run_dir ? hcl_file_text(path) : NULL;
  const char *rep = sum ? strstr(sum, "\"replicas\":[") : NULL;
  double task_classes = 0, n_classes = 0;
  if (sum && strstr(sum, "\"task\":\"classes\"")) task_classes = 1;
  if (sum && strstr(sum, "\"task\":\"binary\"")) task_classes = 2;
  if (sum) json_get(sum, "n_classes", &n_classes);
  for (size_t r = 0; r < R; r++) {
    if (skip && skip[r]) continue; /* recorded by an earlier, resumed sweep */
    size_t p = pts[r];
    char key[1024];
    point_key(sw, p, -1, key, sizeof key);
    fputs("{\"point\":{", out);
    int first = 1;
    for (size_t i = 0; i < sw->n_axes; i++) {
      if ((int)i == sw->seed_axis) continue;
      fprintf(out, "%s", first ? "" : ",");
      first = 0;
      hcl_json_str(out, sw->axes[i].key);
      fputc(':', out);
      hcl_json_str(out, sw->axes[i].values[value_at(sw, p, i)]);
    }
    fputs("},\"key\":", out);
    hcl_json_str(out, key);
    fprintf(out, ",\"seed\":%llu,\"status\":", (unsigned long long)seeds[r]);
    hcl_json_str(out, status);
    fputs(",\"run_dir\":", out);
    hcl_json_str(out, run_dir);
    if (error && *error) {
      fputs(",\"error\":", out);
      hcl_json_str(out, error);
    }
    fprintf(out, ",\"task\":\"%s\",\"n_classes\":%d",
            task_classes == 1   ? "classes"
            : task_classes == 2 ? "binary"
                                : "regression",
            (int)n_classes);
    /* the replica's object in summary.json: copy its metrics */
    const char *obj = NULL;
    if (rep) {
      char pat[48];
      snprintf(pat, sizeof pat, "{\"replica\":%zu,", r);
      obj = strstr(rep, pat);
    }
    if (obj) {
      const char *end = strchr(obj, '}');
      const char *m = strstr(obj, "\"best_test_loss\"");
      if (m && end && m < end) fprintf(out, ",%.*s", (int)(end - m), m);
    }
    fputs("}\n", out);
  }
  fflush(out);
  free(sum);
}

/* ---- P*: smallest P with metric <= threshold, log-interpolated -------------- */

hcl_status hcl_sweep_pstar(const double *P, const double *err, size_t n, double thr, double *pstar,
                           double *lo, double *hi) {
  *pstar = NAN;
  *lo = NAN;
  *hi = NAN;
  for (size_t i = 0; i < n; i++) {
    if (!(err[i] <= thr)) continue;
    if (i == 0) { /* already below at the smallest P */
      *hi = P[0];
      *lo = 0;
      return HCL_OK;
    }
    double e1 = err[i - 1], e2 = err[i], l1 = log(P[i - 1]), l2 = log(P[i]);
    double u = e1 == e2 ? 1 : (e1 - thr) / (e1 - e2);
    *pstar = exp(l1 + u * (l2 - l1));
    *lo = P[i - 1];
    *hi = P[i];
    return HCL_OK;
  }
  if (n) *lo = P[n - 1]; /* never reached: P* > the largest P */
  return HCL_OK;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Read sweep.jsonl back and write table.tsv (mean and sd over seeds per
 * point) and pstar.json (per group of the other keys); print the table. */
static hcl_status summarise(const sweep *sw, const char *dir, FILE *tty) {
  char path[1200];
  snprintf(path, sizeof path, "%s/sweep.jsonl", dir);
  char *text = hcl_file_text(path);
  if (!text) return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot read", path);
  size_t np = n_points(sw);
  double *mean = calloc(np, sizeof *mean), *sd = calloc(np, sizeof *sd);
  size_t *cnt = calloc(np, sizeof *cnt);
  char metric[32] = "";
  double thr = sw->threshold, nc = 0;
  int classes = 0, binary = 0;
  /* pass 1: find the metric and threshold; pass 2 and 3: mean, sd */
  for (int pass = 0; pass < 3; pass++) {
    for (char *line = text; line && *line;) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = 0;
      if (strstr(line, "\"status\":\"completed\"")) {
        if (pass == 0) {
          classes |= strstr(line, "\"task\":\"classes\"") != NULL;
          binary |= strstr(line, "\"task\":\"binary\"") != NULL;
          double v;
          if (json_get(line, "n_classes", &v)) nc = v;
        } else {
          const char *kp = strstr(line, "\"key\":\"");
          double v;
          if (kp && json_get(line, metric, &v)) {
            kp += 7;
            for (size_t p = 0; p < np; p++) {
              char key[1024];
              point_key(sw, p, -1, key, sizeof key);
              size_t kl = strlen(key);
              if (!strncmp(kp, key, kl) && kp[kl] == '"') {
                if (pass == 1) {
                  mean[p] += v;
                  cnt[p]++;
                } else {
                  sd[p] += (v - mean[p]) * (v - mean[p]);
                }
                break;
              }
            }
          }
        }
      }
      if (nl) *nl = '\n';
      line = nl ? nl + 1 : NULL;
    }
    if (pass == 0) {
      if (strcmp(sw->metric, "auto"))
        snprintf(metric, sizeof metric, "%s", sw->metric);
      else
        snprintf(metric, sizeof metric, "%s", classes || binary ? "test_error" : "test_loss");
      if (thr <= 0) thr = classes && nc > 1 ? (1 - 1 / nc) / 10 : binary ? 0.05 : 0.1;
    }
    if (pass == 1)
      for (size_t p = 0; p < np; p++) mean[p] = cnt[p] ? mean[p] / cnt[p] : NAN;
  }
  for (size_t p = 0; p < np; p++) sd[p] = cnt[p] > 1 ? sqrt(sd[p] / (cnt[p] - 1)) : 0;
  free(text);

  snprintf(path, sizeof path, "%s/table.tsv", dir);
  FILE *t = fopen(path, "w");
  if (!t) return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  for (size_t i = 0; i < sw->n_axes; i++)
    if ((int)i != sw->seed_axis) fprintf(t, "%s\t", sw->axes[i].key);
  fprintf(t, "seeds\t%s_mean\t%s_sd\n", metric, metric);
  for (size_t p = 0; p < np; p++) {
    for (size_t i = 0; i < sw->n_axes; i++)
      if ((int)i != sw->seed_axis) fprintf(t, "%s\t", sw->axes[i].values[value_at(sw, p, i)]);
    fprintf(t, "%zu\t%.6g\t%.6g\n", cnt[p], mean[p], sd[p]);
  }
  fclose(t);
  if (tty) {
    fprintf(tty, "\n%-60s %5s  %s (mean ± sd over seeds)\n", "point", "seeds", metric);
    for (size_t p = 0; p < np; p++) {
      char key[1024];
      point_key(sw, p, -1, key, sizeof key);
      fprintf(tty, "%-60s %5zu  %.4g ± %.2g\n", key, cnt[p], mean[p], sd[p]);
    }
  }

  if (sw->size_axis >= 0) {
    snprintf(path, sizeof path, "%s/pstar.json", dir);
    FILE *ps = fopen(path, "w");
    if (!ps) return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(ps, "{\"metric\":\"%s\",\"threshold\":", metric);
    hcl_json_num(ps, thr);
    fputs(",\"groups\":[", ps);
    if (tty)
      fprintf(tty, "\nP* (smallest train_size with %s <= %.4g, log-interpolated):\n", metric, thr);
    int first = 1;
    for (size_t p = 0; p < np; p++) {
      if (value_at(sw, p, (size_t)sw->size_axis) != 0) continue; /* one per group */
      char group[1024];
      point_key(sw, p, sw->size_axis, group, sizeof group);
      double Ps[MAX_VALUES][2]; /* (P, err) sorted by P */
      size_t k = 0;
      for (size_t q = 0; q < np; q++) {
        char g2[1024];
        point_key(sw, q, sw->size_axis, g2, sizeof g2);
        if (strcmp(g2, group) || !cnt[q]) continue;
        Ps[k][0] = atof(sw->axes[sw->size_axis].values[value_at(sw, q, (size_t)sw->size_axis)]);
        Ps[k][1] = mean[q];
        k++;
      }
      qsort(Ps, k, sizeof Ps[0], cmp_dbl);
      double P[MAX_VALUES], e[MAX_VALUES], pstar, lo, hi;
      for (size_t i = 0; i < k; i++) P[i] = Ps[i][0], e[i] = Ps[i][1];
      hcl_sweep_pstar(P, e, k, thr, &pstar, &lo, &hi);
      fprintf(ps, "%s\n {\"group\":", first ? "" : ",");
      first = 0;
      hcl_json_str(ps, group);
      fputs(",\"pstar\":", ps);
      hcl_json_num(ps, pstar);
      fputs(",\"bracket\":[", ps);
      hcl_json_num(ps, lo);
      fputc(',', ps);
      hcl_json_num(ps, hi);
      fputs("]}", ps);
      if (tty) {
        if (isfinite(pstar))
          fprintf(tty, "  %-40s P* = %.4g  (between %g and %g)\n", *group ? group : "(all)", pstar,
                  lo, hi);
        else if (isfinite(hi))
          fprintf(tty, "  %-40s P* <= %g (the smallest P tried)\n", *group ? group : "(all)", hi);
        else
          fprintf(tty, "  %-40s P* > %g (never reached)\n", *group ? group : "(all)", lo);
      }
    }
    fputs("\n]}\n", ps);
    fclose(ps);
  }
  free(mean);
  free(sd);
  free(cnt);
  return HCL_OK;
}

/* ---- the driver ------------------------------------------------------------ */

/* Whether sweep.jsonl already holds a completed line for this point. */
static int done_before(const char *jsonl, const char *key) {
  if (!jsonl) return 0;
  char pat[1200];
  snprintf(pat, sizeof pat, "\"key\":\"%s\",", key);
  for (const char *p = jsonl; (p = strstr(p, pat)); p++) {
    const char *end = strchr(p, '\n');
    const char *st = strstr(p, "\"status\":\"completed\"");
    if (st && (!end || st < end)) return 1;
  }
  return 0;
}

/* The sweep directory (and its parents) and sweep.jsonl, opened to append. */
static hcl_status open_sweep_dir(const char *parent, const char *dir, const char *path,
                                 FILE **out) {
  HCL_TRY(hcl_mkdir_p(NULL, parent)); /* like hiercl run --out: parents too */
  if (mkdir(dir, 0777) && errno != EEXIST)
    return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
  *out = fopen(path, "a");
  if (!*out) return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  return HCL_OK;
}

hcl_status hcl_sweep(hcl_sweep_options *opt, char *err, size_t errlen) {
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  sweep sw;
  memset(&sw, 0, sizeof sw);
  hcl_status rc = hcl_config_load(NULL, opt->run.config_path, &cfg);
  for (size_t i = 0; rc == HCL_OK && i < opt->run.n_sets; i++)
    rc = hcl_config_set(NULL, &cfg, opt->run.sets[i]);
  if (rc == HCL_OK) rc = read_sweep(&sw, &cfg, opt);
  if (rc != HCL_OK) {
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return rc;
  }
  /* the sweep directory is named by a hash of what defines it: re-running
   * the same command finds it and resumes */
  char name[128], hash[65];
  if (sw.name[0])
    snprintf(name, sizeof name, "%s", sw.name);
  else
    hcl_path_stem(opt->run.config_path, name, sizeof name);
  size_t cap = strlen(cfg.text) + 4096;
  /* each item adds its "\n--set " or "\n--grid " prefix too */
  for (size_t i = 0; i < opt->run.n_sets; i++) cap += strlen(opt->run.sets[i]) + 8;
  for (size_t i = 0; i < opt->n_grid; i++) cap += strlen(opt->grid[i]) + 8;
  char *ident = calloc(cap, 1);
  if (!ident) return snprintf(err, errlen, "out of memory"), HCL_ERR_NOMEM;
  strcat(ident, cfg.text);
  for (size_t i = 0; i < opt->run.n_sets; i++) strcat(strcat(ident, "\n--set "), opt->run.sets[i]);
  for (size_t i = 0; i < opt->n_grid; i++) strcat(strcat(ident, "\n--grid "), opt->grid[i]);
  hcl_sha256_hex(ident, strlen(ident), hash);
  free(ident);
  const char *parent = opt->run.out_dir && *opt->run.out_dir ? opt->run.out_dir : "runs";
  snprintf(opt->sweep_dir, sizeof opt->sweep_dir, "%s/sweep_%s_%.8s", parent, name, hash);
  char path[1200], runs[1200];
  snprintf(path, sizeof path, "%s/sweep.jsonl", opt->sweep_dir);
  snprintf(runs, sizeof runs, "%s/runs", opt->sweep_dir);
  char *previous = hcl_file_text(path);
  FILE *out = NULL; /* opened after every point checked out (pass 0): no directory before */

  size_t np = n_points(&sw), n_sets0 = opt->run.n_sets;
  const char **sets = calloc(n_sets0 + MAX_AXES + 2, sizeof *sets);
  char(*own)[4200] = calloc(MAX_AXES, sizeof *own);
  uint64_t seeds[MAX_VALUES];
  size_t nS = 1;
  if (sw.seed_axis >= 0) {
    axis *a = &sw.axes[sw.seed_axis];
    nS = a->n;
    for (size_t i = 0; i < a->n; i++) seeds[i] = strtoull(a->values[i], NULL, 10);
  } else {
    const char *sd = hcl_config_get(&cfg, "run", "seed");
    seeds[0] = strtoull(sd ? sd : "0", NULL, 10);
  }
  /* Points that differ only in batchable keys train together: one run per
   * group, its replicas the (size, lr, seed) combinations ([train]
   * train_sizes, lrs). Sizes run one by one under full batch (batch = 0:
   * the batch would differ) and under a model's own algorithm (it reads one
   * training-set size). */
  static const struct {
    const char *axis, *list;
  } batchable[] = {{"train.train_size", "train.train_sizes"}, {"train.lr", "train.lrs"}};
  const char *bv = hcl_config_get(&cfg, "train", "batch");
  const char *alg = hcl_config_get(&cfg, "train", "algorithm");
  int sizes_ok = !(bv && !strcmp(bv, "0")) && (!alg || !strcmp(alg, "sgd"));
  unsigned bmask = 0;
  const char *blist[MAX_AXES] = {0};
  size_t Rmax = nS;
  for (size_t i = 0; i < sw.n_axes; i++)
    for (size_t b = 0; b < sizeof batchable / sizeof *batchable; b++)
      if (!strcmp(sw.axes[i].key, batchable[b].axis) && sw.axes[i].n > 1 &&
          ((int)i != sw.size_axis || sizes_ok)) {
        bmask |= 1u << i;
        blist[i] = batchable[b].list;
        Rmax *= sw.axes[i].n;
      }
  int group = bmask != 0;
  if (Rmax > HCL_MAX_REPLICAS) { /* checked before the per-replica lists are allocated */
    rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                  "%s: [sweep] one run would train %zu replicas (seeds x train sizes x learning "
                  "rates); at most %d: use fewer values or split the sweep",
                  cfg.path, Rmax, HCL_MAX_REPLICAS);
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    Rmax = 0;
  }
  size_t *pts = calloc(Rmax, sizeof *pts);
  uint64_t *rseeds = calloc(Rmax, sizeof *rseeds);
  unsigned char *skip = calloc(Rmax, 1);
  char *seedlist = calloc(Rmax + 2, 64); /* numbers, 20 digits at most */
  char *lists[MAX_AXES] = {0};
  int nomem = rc == HCL_OK && (!sets || !own || !pts || !rseeds || !skip || !seedlist);
  for (size_t i = 0; i < sw.n_axes; i++)
    if (rc == HCL_OK && bmask >> i & 1u) nomem |= !(lists[i] = calloc(Rmax + 2, MAX_VALUE_LEN + 8));
  if (nomem) {
    rc = HCL_ERR_NOMEM;
    snprintf(err, errlen, "out of memory");
  }
  /* pass 0 checks every run before any starts, so a bad value fails in seconds */
  int failures = 0;
  double t0 = hcl_now();
  size_t ran = 0, todo = 0, jobs = 0;
  for (int pass = 0; pass < 2 && rc == HCL_OK; pass++) {
    if (pass == 1 && (rc = open_sweep_dir(parent, opt->sweep_dir, path, &out)) != HCL_OK) {
      snprintf(err, errlen, "%s", hcl_errmsg(NULL));
      break;
    }
    for (size_t p = 0; p < np; p++) {
      int first_of_group = 1;
      for (size_t i = 0; i < sw.n_axes; i++)
        if (bmask >> i & 1u) first_of_group &= value_at(&sw, p, i) == 0;
      if (!first_of_group) continue;
      /* the job's replicas: (point, seed) pairs */
      size_t R = 0, n_done = 0;
      char gkey[1024];
      point_key_mask(&sw, p, bmask, gkey, sizeof gkey);
      for (size_t q = 0; q < np; q++) {
        char k2[1024];
        point_key_mask(&sw, q, bmask, k2, sizeof k2);
        if (strcmp(k2, gkey)) continue;
        char key[1024];
        point_key(&sw, q, -1, key, sizeof key);
        int done = done_before(previous, key);
        for (size_t k = 0; k < nS; k++, R++) {
          pts[R] = q;
          rseeds[R] = seeds[k];
          skip[R] = (unsigned char)done;
          n_done += (size_t)done;
        }
      }
      if (pass == 1 && n_done == R) continue;
      size_t ns = 0;
      for (size_t i = 0; i < n_sets0; i++) sets[ns++] = opt->run.sets[i];
      for (size_t i = 0, k = 0; i < sw.n_axes; i++) {
        if ((int)i == sw.seed_axis || (bmask >> i & 1u)) continue;
        snprintf(own[k], sizeof own[k], "%.96s=%.4000s", sw.axes[i].key,
                 sw.axes[i].values[value_at(&sw, p, i)]);
        sets[ns++] = own[k++];
      }
      char *sl = seedlist;
      sl += sprintf(sl, "run.seeds=");
      for (size_t r = 0; r < R; r++)
        sl += sprintf(sl, "%s%llu", r ? ", " : "", (unsigned long long)rseeds[r]);
      if (sw.seed_axis >= 0 || group) sets[ns++] = seedlist;
      for (size_t i = 0; i < sw.n_axes; i++) {
        if (!(bmask >> i & 1u)) continue;
        char *zl = lists[i];
        zl += sprintf(zl, "%s=", blist[i]);
        for (size_t r = 0; r < R; r++)
          zl += sprintf(zl, "%s%s", r ? ", " : "", sw.axes[i].values[value_at(&sw, pts[r], i)]);
        sets[ns++] = lists[i];
      }
      hcl_run_options ro = opt->run;
      ro.sets = sets;
      ro.n_sets = ns;
      ro.out_dir = runs;
      ro.dry_run = pass == 0;
      if (pass == 0) {
        rc = hcl_run(&ro, err, errlen);
        if (rc != HCL_OK) {
          char tmp[2048];
          snprintf(tmp, sizeof tmp, "%s", err);
          snprintf(err, errlen, "sweep point %s: %s", gkey, tmp);
          break;
        }
        jobs++;
        todo += n_done < R;
        continue;
      }
      if (opt->run.stop && *opt->run.stop) {
        rc = HCL_ERR_INTERRUPTED;
        snprintf(err, errlen, "interrupted");
        break;
      }
      fprintf(stderr, "hiercl sweep: [%zu/%zu] %s%s\n", ran + 1, todo, *gkey ? gkey : "(all)",
              group   ? " (train sizes / learning rates and seeds as replicas)"
              : R > 1 ? " (seeds as replicas)"
                      : "");
      hcl_status prc = hcl_run(&ro, err, errlen);
      ran++;
      record(out, &sw, pts, skip, ro.run_dir,
             prc == HCL_OK                ? "completed"
             : prc == HCL_ERR_INTERRUPTED ? "interrupted"
                                          : "failed",
             prc == HCL_OK ? NULL : err, rseeds, R);
      if (prc == HCL_ERR_INTERRUPTED) {
        rc = prc;
        break;
      }
      if (prc != HCL_OK) {
        failures++;
        fprintf(stderr, "hiercl sweep: %s failed: %s\n", gkey, err);
      }
      double el = hcl_now() - t0, left = el / ran * (double)(todo - ran);
      fprintf(stderr, "hiercl sweep: %zu/%zu runs done, %.0f s elapsed, ETA %d:%02d\n", ran, todo,
              el, (int)(left / 60), (int)left % 60);
    }
    if (pass == 0 && rc == HCL_OK && todo < jobs)
      fprintf(stderr, "hiercl sweep: %zu of %zu runs already done in %s; running the rest\n",
              jobs - todo, jobs, opt->sweep_dir);
  }
  free(pts);
  free(rseeds);
  free(skip);
  free(seedlist);
  for (size_t i = 0; i < MAX_AXES; i++) free(lists[i]);
  if (out) fclose(out);
  free(previous);
  free(sets);
  free(own);
  /* no directory when a point failed its checks: nothing to summarise */
  hcl_status srec = out ? summarise(&sw, opt->sweep_dir, rc == HCL_OK ? stdout : NULL) : HCL_OK;
  if (rc == HCL_OK && srec != HCL_OK) {
    rc = srec;
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
  }
  if (rc == HCL_OK && failures) {
    rc = HCL_ERR_PLUGIN;
    snprintf(err, errlen, "%d sweep point(s) failed; see %s/sweep.jsonl (re-run to retry them)",
             failures, opt->sweep_dir);
  }
  hcl_config_free(&cfg);
  free_sweep(&sw);
  return rc;
}
