/* hcl_sweep: a grid of runs ([sweep] section or --grid), seeds batched as
 * replicas of one run, resumable, with the sample-complexity estimate P*. */
#include "schema.h"
#include "sweep.h"
#include "scaling.h"
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- value lists: "a, b, c" | "a..b" (integers) | "geom(lo, hi, n)" ------- */

static hcl_status add_value(hcl_axis *a, const char *v) {
  if (a->n == HCL_SWEEP_MAX_VALUES)
    return hcl_fail(NULL, HCL_ERR_CONFIG, "[sweep] %s: more than %d values", a->key,
                    HCL_SWEEP_MAX_VALUES);
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
  hcl_axis a;
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
    if (!(lo > 0 && hi > 0 && isfinite(lo) && isfinite(hi) && cnt >= 2 &&
          cnt <= HCL_SWEEP_MAX_VALUES))
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "[sweep] %s = %s: geom(lo, hi, n) needs finite 0 < lo, 0 < hi, 2 <= n <= %d",
                    key, text, HCL_SWEEP_MAX_VALUES);
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
    if (i1 < i0 || (unsigned long long)i1 - (unsigned long long)i0 >= HCL_SWEEP_MAX_VALUES)
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "[sweep] %s = %s: range a..b needs a <= b and at most %d values", key, text,
                    HCL_SWEEP_MAX_VALUES);
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
    if (strlen(v) > HCL_SWEEP_MAX_VALUE_LEN)
      return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [sweep] %s value %zu is longer than %d characters",
                      origin, key, i + 1, HCL_SWEEP_MAX_VALUE_LEN);
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

static hcl_status add_axis(hcl_grid *sw, const char *key, const char *values, const char *origin) {
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
  if (i == HCL_SWEEP_MAX_AXES)
    return hcl_fail(NULL, HCL_ERR_CONFIG, "[sweep] at most %d grid keys", HCL_SWEEP_MAX_AXES);
  hcl_axis *a = &sw->axes[i];
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

/* The candidate axes ([select] section, then --select), after the grid's:
 * they vary fastest, so a point's candidates are consecutive points. */
static hcl_status read_candidates(hcl_grid *sw, const hcl_config *cfg,
                                  const hcl_sweep_options *opt) {
  size_t n_grid = sw->n_axes;
  size_t n_cli = opt->n_select;
  for (size_t s = 0; s < cfg->n_sections + n_cli; s++) {
    int cli = s >= cfg->n_sections;
    if (!cli && strcmp(cfg->sections[s].name, "select")) continue;
    for (size_t k = 0; k < (cli ? 1 : cfg->sections[s].n); k++) {
      char key[96], raw[96], at[1200];
      const char *values;
      if (cli) {
        const char *arg = opt->select[s - cfg->n_sections], *eq = strchr(arg, '=');
        if (!eq || (size_t)(eq - arg) >= sizeof key)
          return hcl_fail(NULL, HCL_ERR_CONFIG, "--select '%.100s': expected section.key=v1,v2,...",
                          arg);
        snprintf(raw, sizeof raw, "%.*s", (int)(eq - arg), arg);
        snprintf(key, sizeof key, "%s", trimmed(raw));
        snprintf(at, sizeof at, "--select");
        values = eq + 1;
      } else {
        const hcl_kv *kv = &cfg->sections[s].kv[k];
        snprintf(key, sizeof key, "%s", kv->key);
        hcl_config_where(cfg, "select", kv->key, at, sizeof at);
        values = kv->value;
      }
      for (size_t i = 0; i < n_grid; i++)
        if (!strcmp(sw->axes[i].key, key))
          return hcl_fail(NULL, HCL_ERR_CONFIG,
                          "%s: %s is both a grid axis and a candidate for selection", at, key);
      if (!strcmp(key, "run.seed") || !strcmp(key, "train.train_size") ||
          !strcmp(key, "eval.val_size"))
        return hcl_fail(NULL, HCL_ERR_CONFIG,
                        "%s: %s cannot be selected on validation (it defines the point)", at, key);
      HCL_TRY(add_axis(sw, key, values, at));
    }
  }
  sw->n_select = sw->n_axes - n_grid;
  return HCL_OK;
}

static hcl_status read_sweep(hcl_grid *sw, const hcl_config *cfg, const hcl_sweep_options *opt) {
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
      } else if (!strcmp(kv->key, "dim")) {
        snprintf(sw->dim_key, sizeof sw->dim_key, "%s", kv->value);
      } else {
        return hcl_fail(NULL, HCL_ERR_CONFIG,
                        "%s: [sweep] unknown key '%s' (known: metric, threshold, name, dim, and "
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
  HCL_TRY(read_candidates(sw, cfg, opt));
  if (!sw->n_axes)
    return hcl_fail(
        NULL, HCL_ERR_CONFIG,
        "%s: nothing to sweep: add a [sweep] section (e.g. train.train_size = 100, 1000) "
        "or --grid section.key=v1,v2",
        cfg->path);
  sw->seed_axis = sw->size_axis = sw->dim_axis = -1;
  size_t key_len = 0; /* the longest point key, which must fit its 1024-byte buffers whole */
  for (size_t i = 0; i < sw->n_axes; i++) {
    if (!strcmp(sw->axes[i].key, "run.seed")) sw->seed_axis = (int)i;
    if (!strcmp(sw->axes[i].key, "train.train_size")) sw->size_axis = (int)i;
    if (!strcmp(sw->axes[i].key, *sw->dim_key ? sw->dim_key : "target.d")) sw->dim_axis = (int)i;
    size_t longest = 0;
    for (size_t k = 0; k < sw->axes[i].n; k++)
      if (strlen(sw->axes[i].values[k]) > longest) longest = strlen(sw->axes[i].values[k]);
    if (strcmp(sw->axes[i].key, "run.seed")) key_len += strlen(sw->axes[i].key) + 2 + longest;
  }
  if ((*sw->dim_key && sw->dim_axis < 0) ||
      (sw->dim_axis >= 0 && (size_t)sw->dim_axis >= sw->n_axes - sw->n_select))
    return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [sweep] dim = %s is not a grid axis", cfg->path,
                    sw->dim_key);
  for (size_t k = 0; sw->dim_axis >= 0 && k < sw->axes[sw->dim_axis].n; k++) {
    char *end;
    double d = strtod(sw->axes[sw->dim_axis].values[k], &end);
    if (*end || !(d > 0))
      return hcl_fail(NULL, HCL_ERR_CONFIG,
                      "%s: [sweep] dim axis %s: value '%s' is not a positive number", cfg->path,
                      sw->axes[sw->dim_axis].key, sw->axes[sw->dim_axis].values[k]);
  }
  if (key_len >= 1024)
    return hcl_fail(NULL, HCL_ERR_CONFIG,
                    "%s: [sweep] the grid keys and values are too long together (%zu characters; "
                    "at most 1023 for a point's key)",
                    cfg->path, key_len);
  return HCL_OK;
}

static void free_sweep(hcl_grid *sw) {
  for (size_t i = 0; i < sw->n_axes; i++)
    for (size_t k = 0; k < sw->axes[i].n; k++) free(sw->axes[i].values[k]);
}

/* ---- the grid: every combination of the non-seed axes ---------------------- */

size_t hcl_sweep_n_points(const hcl_grid *sw) {
  size_t n = 1;
  for (size_t i = 0; i < sw->n_axes; i++)
    if ((int)i != sw->seed_axis) n *= sw->axes[i].n;
  return n;
}

/* Value index of axis i at point p (mixed radix over the non-seed axes, last fastest). */
size_t hcl_sweep_value_at(const hcl_grid *sw, size_t p, size_t axis_i) {
  for (size_t i = sw->n_axes; i-- > 0;) {
    if ((int)i == sw->seed_axis) continue;
    size_t idx = p % sw->axes[i].n;
    if (i == axis_i) return idx;
    p /= sw->axes[i].n;
  }
  return 0;
}

/* "k1=v1;k2=v2" of the non-seed axes (optionally leaving one out). */
void hcl_sweep_point_key_mask(const hcl_grid *sw, size_t p, unsigned skip, char *out, size_t len) {
  out[0] = 0;
  for (size_t i = 0; i < sw->n_axes; i++) {
    if ((int)i == sw->seed_axis || (skip >> i & 1u)) continue;
    size_t l = strlen(out);
    snprintf(out + l, len - l, "%s%s=%s", l ? ";" : "", sw->axes[i].key,
             sw->axes[i].values[hcl_sweep_value_at(sw, p, i)]);
  }
}

void hcl_sweep_axes_json(FILE *f, const hcl_grid *sw, size_t p, size_t from, size_t to) {
  int first = 1;
  for (size_t i = from; i < to; i++) {
    if ((int)i == sw->seed_axis) continue;
    fputs(first ? "" : ",", f);
    first = 0;
    hcl_json_str(f, sw->axes[i].key);
    fputc(':', f);
    hcl_json_str(f, sw->axes[i].values[hcl_sweep_value_at(sw, p, i)]);
  }
}

static void point_key(const hcl_grid *sw, size_t p, int skip_axis, char *out, size_t len) {
  hcl_sweep_point_key_mask(sw, p, skip_axis >= 0 ? 1u << skip_axis : 0u, out, len);
}

/* ---- results --------------------------------------------------------------- */

/* Whether a sweep.jsonl line is a whole record (as record() writes it); a
 * completed one must carry its metrics. A torn or foreign line is neither. */
static int own_status_is(const char *line, size_t len, const char *status) {
  /* the record's own status comes first; a selection record's candidates
   * carry theirs later, inside "candidates" */
  const char *st = strstr(line, "\"status\":\""); /* line is within a NUL-terminated text */
  size_t n = strlen(status);
  return st && st < line + len && (size_t)(line + len - st) >= 11 + n &&
         !strncmp(st + 10, status, n) && st[10 + n] == '"';
}

int hcl_sweep_line_completed(const char *line, size_t len) {
  return own_status_is(line, len, "completed");
}

int hcl_sweep_line_final(const char *line, size_t len) {
  return own_status_is(line, len, "completed") ? 1 : own_status_is(line, len, "diverged") ? 2 : 0;
}

int hcl_sweep_line_ok(const char *line, size_t len) {
  static const char head[] = "{\"point\":{";
  if (len < sizeof head || strncmp(line, head, sizeof head - 1) || line[len - 1] != '}') return 0;
  char buf[128];
  const char *need[] = {"\"key\":\"", "\"seed\":", "\"status\":\""};
  for (size_t i = 0; i < 3; i++) {
    snprintf(buf, sizeof buf, "%s", need[i]);
    const char *p = strstr(line, buf);
    if (!p || p >= line + len) return 0;
  }
  if (hcl_sweep_line_completed(line, len)) {
    const char *m = strstr(line, "\"best_test_loss\":");
    if (!m || m >= line + len) return 0;
  }
  return 1;
}

/* Whether a (NUL-terminated) line is a whole record of a completed run. */
static int line_completed(const char *line) {
  size_t n = strlen(line);
  return hcl_sweep_line_completed(line, n) && hcl_sweep_line_ok(line, n);
}

/* The text of the replica object r in summary.json ("best_test_loss" on,
 * without braces), or NULL when the summary lacks it; *diverged: the step
 * at which the replica diverged (it then has no metrics), else -1. */
static const char *replica_metrics(const char *rep, size_t r, int *len, double *diverged) {
  *diverged = -1;
  if (!rep) return NULL;
  char pat[48];
  snprintf(pat, sizeof pat, "{\"replica\":%zu,", r);
  const char *obj = strstr(rep, pat);
  const char *end = obj ? strchr(obj, '}') : NULL;
  const char *d = obj ? strstr(obj, "\"diverged_at_step\":") : NULL;
  if (d && d < end) *diverged = strtod(d + 19, NULL);
  const char *m = obj ? strstr(obj, "\"best_test_loss\"") : NULL;
  if (!m || !end || m > end) return NULL;
  *len = (int)(end - m);
  return m;
}

/* The lines of a finished (or failed) run, one per replica not recorded
 * before, formatted after the run's summary.json is on disk. A run recorded
 * "completed" carries its metrics, else it is recorded "failed". */
hcl_status hcl_sweep_record_text(const hcl_grid *sw, const hcl_sweep_job *job, const char *run_dir,
                                 const char *device, const char *status, const char *error,
                                 FILE *out) {
  char path[PATH_MAX + 64];
  int pl = snprintf(path, sizeof path, "%s/summary.json", run_dir);
  char *sum = *run_dir && pl < (int)sizeof path ? hcl_file_text(path) : NULL;
  const char *rep = sum ? strstr(sum, "\"replicas\":[") : NULL;
  int sum_completed = sum && strstr(sum, "\"status\":\"completed\"");
  double task_classes = 0, n_classes = 0;
  if (sum && strstr(sum, "\"task\":\"classes\"")) task_classes = 1;
  if (sum && strstr(sum, "\"task\":\"binary\"")) task_classes = 2;
  if (sum) hcl_json_get_num(sum, "n_classes", &n_classes);
  for (size_t r = 0; r < job->R; r++) {
    if (job->skip[r]) continue; /* recorded by an earlier, resumed sweep */
    size_t p = job->pts[r];
    int mlen = 0;
    double diverged;
    const char *metrics = replica_metrics(rep, r, &mlen, &diverged);
    const char *st = status, *why = error;
    char missing[PATH_MAX + 64];
    if (!strcmp(status, "completed") && diverged >= 0) {
      snprintf(missing, sizeof missing,
               "training loss is not finite at step %.0f: this replica diverged (the other "
               "replicas of its run completed)",
               diverged);
      /* final, not failed: the same seed and settings diverge again, so a
       * resume does not retrain it; its numbers are void, none are written */
      st = "diverged", why = missing;
    } else if (!strcmp(status, "completed") && (!sum_completed || !metrics)) {
      snprintf(missing, sizeof missing, "%.*s: no completed metrics for replica %zu", pl, path, r);
      st = "failed", why = missing; /* never "completed" without its numbers */
    }
    char key[1024];
    point_key(sw, p, -1, key, sizeof key);
    fputs("{\"point\":{", out);
    hcl_sweep_axes_json(out, sw, p, 0, sw->n_axes);
    fputs("},\"key\":", out);
    hcl_json_str(out, key);
    fprintf(out, ",\"seed\":%llu,\"status\":", (unsigned long long)job->rseeds[r]);
    hcl_json_str(out, st);
    fputs(",\"run_dir\":", out);
    hcl_json_str(out, run_dir);
    if (device && *device) { /* which device ran it (--device all, MPI ranks) */
      fputs(",\"device\":", out);
      hcl_json_str(out, device);
    }
    if (why && *why) {
      fputs(",\"error\":", out);
      hcl_json_str(out, why);
    }
    fprintf(out, ",\"task\":\"%s\",\"n_classes\":%d",
            task_classes == 1   ? "classes"
            : task_classes == 2 ? "binary"
                                : "regression",
            (int)n_classes);
    if (metrics) fprintf(out, ",%.*s", mlen, metrics); /* the replica's summary metrics */
    if (diverged >= 0 && !strcmp(st, "diverged"))
      fprintf(out, ",\"diverged_at_step\":%.0f", diverged);
    fputs("}\n", out);
  }
  free(sum);
  return HCL_OK;
}

/* Append a run's record lines to the records file (fd, opened for
 * appending): one write(2) and an fsync, so a point is recorded done only
 * when its metrics are durable. On a write failure the file is cut back to
 * its length before, and the error names it. */
hcl_status hcl_sweep_append(int fd, const char *jsonl, const char *text, size_t len) {
  off_t before = lseek(fd, 0, SEEK_END);
  hcl_status rc = hcl_write_fd(NULL, fd, text, len, jsonl);
  if (rc == HCL_OK && fsync(fd))
    rc = hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", jsonl, strerror(errno));
  if (rc != HCL_OK && before >= 0 && ftruncate(fd, before)) {
    /* cannot cut it back: the next resume drops the torn line */
  }
  return rc;
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

/* "pstar":x,"bracket":[lo,hi] of one curve (ascending P) into pstar.json. */
static void pstar_json(FILE *ps, const double *P, const double *err, size_t n, double thr,
                       double *pstar, double *lo, double *hi) {
  hcl_sweep_pstar(P, err, n, thr, pstar, lo, hi);
  fputs("\"pstar\":", ps);
  hcl_json_num(ps, *pstar);
  fputs(",\"bracket\":[", ps);
  hcl_json_num(ps, *lo);
  fputc(',', ps);
  hcl_json_num(ps, *hi);
  fputc(']', ps);
}

/* Each seed's own P* beside the seed mean's: ,"per_seed":[{"seed":s,"pstar":..,
 * "bracket":[..]},..] from val[q * nS + k] of the group's points q[i] (sorted
 * by P[i]); printed as one line. Only for a complete group. */
static void per_seed_pstar(FILE *ps, FILE *say, const double *P, const size_t *q, size_t n,
                           const double *val, const uint64_t *seeds, size_t nS, double thr) {
  double e[HCL_SWEEP_MAX_VALUES], pstar, lo, hi;
  fputs(",\"per_seed\":[", ps);
  if (say) fputs("    per seed:", say);
  for (size_t k = 0; k < nS; k++) {
    for (size_t i = 0; i < n; i++) e[i] = val[q[i] * nS + k];
    fprintf(ps, "%s{\"seed\":%llu,", k ? "," : "", (unsigned long long)seeds[k]);
    pstar_json(ps, P, e, n, thr, &pstar, &lo, &hi);
    fputc('}', ps);
    if (!say) continue;
    if (isfinite(pstar))
      fprintf(say, " %llu: %.4g", (unsigned long long)seeds[k], pstar);
    else
      fprintf(say, " %llu: %s %g", (unsigned long long)seeds[k], isfinite(hi) ? "<=" : ">",
              isfinite(hi) ? hi : lo);
  }
  fputc(']', ps);
  if (say) fputc('\n', say);
}

/* The index of seed in seeds[0..nS), or nS. */
static size_t seed_index(const char *line, const uint64_t *seeds, size_t nS) {
  const char *p = strstr(line, "\"seed\":");
  if (!p) return nS;
  unsigned long long v = strtoull(p + 7, NULL, 10);
  size_t k = 0;
  while (k < nS && seeds[k] != v) k++;
  return k;
}

/* The point whose key a line carries, or np. */
static size_t line_point(const hcl_grid *sw, const char *line, size_t np) {
  const char *kp = strstr(line, "\"key\":\"");
  if (!kp) return np;
  kp += 7;
  for (size_t p = 0; p < np; p++) {
    char key[1024];
    point_key(sw, p, -1, key, sizeof key);
    size_t kl = strlen(key);
    if (!strncmp(kp, key, kl) && kp[kl] == '"') return p;
  }
  return np;
}

/* The exponent of P* in the dimension, per group of the other keys: each
 * dimension's curve is its seeds' metric against train_size, P* comes from the
 * seed mean, and the interval from resampling the seeds (scaling.c). Written
 * into pstar.json's "exponents" and printed. Groups with a missing point are
 * left out (their P* is not known). */
static void write_exponents(const hcl_grid *sw, const double *val, const size_t *cnt, size_t nS,
                            double thr, FILE *ps, FILE *say) {
  size_t np = hcl_sweep_n_points(sw), nd = sw->axes[sw->dim_axis].n, nP = sw->axes[sw->size_axis].n;
  unsigned skip = 1u << sw->dim_axis | 1u << sw->size_axis;
  double *P = malloc(nP * sizeof *P), *err = malloc(nd * nP * nS * sizeof *err);
  double *pstar = malloc(nd * sizeof *pstar);
  size_t *order = malloc(nP * sizeof *order);
  hcl_scaling_curve *c = malloc(nd * sizeof *c);
  fputs(",\"exponents\":[", ps);
  int first = 1;
  for (size_t p = 0; P && err && pstar && order && c && p < np; p++) {
    if (hcl_sweep_value_at(sw, p, (size_t)sw->dim_axis) ||
        hcl_sweep_value_at(sw, p, (size_t)sw->size_axis))
      continue;
    char group[1024];
    hcl_sweep_point_key_mask(sw, p, skip, group, sizeof group);
    for (size_t i = 0; i < nP; i++) order[i] = i;
    for (size_t i = 1; i < nP; i++) /* sizes ascending (insertion sort: few values) */
      for (size_t j = i; j > 0 && atof(sw->axes[sw->size_axis].values[order[j - 1]]) >
                                      atof(sw->axes[sw->size_axis].values[order[j]]);
           j--) {
        size_t t = order[j];
        order[j] = order[j - 1], order[j - 1] = t;
      }
    for (size_t i = 0; i < nP; i++) P[i] = atof(sw->axes[sw->size_axis].values[order[i]]);
    int complete = 1;
    for (size_t q = 0; q < np; q++) {
      char g2[1024];
      hcl_sweep_point_key_mask(sw, q, skip, g2, sizeof g2);
      if (strcmp(g2, group)) continue;
      size_t j = hcl_sweep_value_at(sw, q, (size_t)sw->dim_axis),
             vi = hcl_sweep_value_at(sw, q, (size_t)sw->size_axis);
      size_t i = 0;
      while (order[i] != vi) i++;
      complete &= cnt[q] == nS;
      memcpy(err + (j * nP + i) * nS, val + q * nS, nS * sizeof *err);
    }
    if (!complete) continue;
    for (size_t j = 0; j < nd; j++)
      c[j] = (hcl_scaling_curve){.d = atof(sw->axes[sw->dim_axis].values[j]),
                                 .n_p = nP,
                                 .P = P,
                                 .n_seeds = nS,
                                 .err = err + j * nP * nS};
    hcl_scaling_fit f;
    if (hcl_scaling_exponent(c, nd, thr, 2000, 0.95, 0, pstar, &f) != HCL_OK) continue;
    fprintf(ps, "%s\n {\"group\":", first ? "" : ",");
    first = 0;
    hcl_json_str(ps, group);
    fputs(",\"dim\":", ps);
    hcl_json_str(ps, sw->axes[sw->dim_axis].key);
    fputs(",\"points\":[", ps);
    for (size_t j = 0; j < nd; j++) {
      fprintf(ps, "%s{\"d\":", j ? "," : "");
      hcl_json_num(ps, c[j].d);
      fputs(",\"pstar\":", ps);
      hcl_json_num(ps, pstar[j]);
      fputs("}", ps);
    }
    fputs("],\"k\":", ps);
    hcl_json_num(ps, f.k);
    fputs(",\"k_interval\":[", ps);
    hcl_json_num(ps, f.k_lo);
    fputc(',', ps);
    hcl_json_num(ps, f.k_hi);
    fputs("],\"log_c\":", ps);
    hcl_json_num(ps, f.log_c);
    fprintf(ps, ",\"n_fit\":%zu,\"level\":0.95,\"bootstrap\":%zu}", f.n_fit, f.n_boot);
    if (say)
      fprintf(say,
              "  %-40s P* ~ %s^k: k = %.3g [%.3g, %.3g] (95%% bootstrap over %zu seeds, %zu of %zu "
              "%s values with a P*)\n",
              *group ? group : "(all)", sw->axes[sw->dim_axis].key, f.k, f.k_lo, f.k_hi, nS,
              f.n_fit, nd, sw->axes[sw->dim_axis].key);
  }
  fputs("\n]", ps);
  free(P), free(err), free(pstar), free(order), free(c);
}

/* Read sweep.jsonl back and write table.tsv (mean and sd over seeds per
 * point) and pstar.json (per group of the other keys); print the table.
 * Only whole records of completed runs count, one per (point, seed), in
 * seed order (so a resumed sweep gives the same bytes as one that never
 * stopped). A point is given a mean only when every seed is in; a group a
 * P* only when every point is. Both files are replaced atomically. */
static hcl_status summarise(const hcl_grid *sw, const char *dir, FILE *tty, const uint64_t *seeds,
                            size_t nS) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/sweep.jsonl", dir);
  char *text = hcl_file_text(path);
  if (!text) return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  size_t np = hcl_sweep_n_points(sw);
  double *mean = calloc(np, sizeof *mean), *sd = calloc(np, sizeof *sd);
  double *val = calloc(np * nS, sizeof *val);
  size_t *cnt = calloc(np, sizeof *cnt);
  unsigned char *have = calloc(np * nS, 1); /* a null metric is a value too (NaN) */
  if (!mean || !sd || !val || !cnt || !have) {
    free(mean), free(sd), free(val), free(cnt), free(have), free(text);
    return hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  }
  char metric[32] = "";
  double thr = sw->threshold, nc = 0;
  int classes = 0, binary = 0;
  /* pass 0: the task (metric and threshold); pass 1: each (point, seed)'s value */
  for (int pass = 0; pass < 2; pass++) {
    for (char *line = text; line && *line;) {
      char *nl = strchr(line, '\n');
      if (!nl) break; /* a line without its newline is torn: not a record */
      *nl = 0;
      if (line_completed(line)) {
        double v;
        if (pass == 0) {
          classes |= strstr(line, "\"task\":\"classes\"") != NULL;
          binary |= strstr(line, "\"task\":\"binary\"") != NULL;
          if (hcl_json_get_num(line, "n_classes", &v)) nc = v;
        } else {
          size_t p = line_point(sw, line, np), k = seed_index(line, seeds, nS);
          if (p < np && k < nS && hcl_json_get_num(line, metric, &v))
            val[p * nS + k] = v, have[p * nS + k] = 1; /* the last record of a pair wins */
        }
      }
      *nl = '\n';
      line = nl + 1;
    }
    if (pass == 0) {
      if (strcmp(sw->metric, "auto"))
        snprintf(metric, sizeof metric, "%s", sw->metric);
      else
        snprintf(metric, sizeof metric, "%s", classes || binary ? "test_error" : "test_loss");
      if (thr <= 0) thr = classes && nc > 1 ? (1 - 1 / nc) / 10 : binary ? 0.05 : 0.1;
    }
  }
  free(text);
  for (size_t p = 0; p < np; p++) {
    double m = 0, q = 0;
    for (size_t k = 0; k < nS; k++)
      if (have[p * nS + k]) cnt[p]++, m += val[p * nS + k]; /* in seed order */
    mean[p] = cnt[p] == nS ? m / (double)nS : NAN;
    for (size_t k = 0; cnt[p] == nS && k < nS; k++)
      q += (val[p * nS + k] - mean[p]) * (val[p * nS + k] - mean[p]);
    sd[p] = cnt[p] == nS ? (nS > 1 ? sqrt(q / (double)(nS - 1)) : 0) : NAN;
  }
  free(have);

  hcl_membuf mb;
  FILE *t = hcl_membuf_open(&mb);
  if (!t)
    return free(mean), free(sd), free(cnt), free(val),
           hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < sw->n_axes; i++)
    if ((int)i != sw->seed_axis) fprintf(t, "%s\t", sw->axes[i].key);
  fprintf(t, "seeds\t%s_mean\t%s_sd\n", metric, metric);
  for (size_t p = 0; p < np; p++) {
    for (size_t i = 0; i < sw->n_axes; i++)
      if ((int)i != sw->seed_axis)
        fprintf(t, "%s\t", sw->axes[i].values[hcl_sweep_value_at(sw, p, i)]);
    fprintf(t, "%zu\t%.6g\t%.6g\n", cnt[p], mean[p], sd[p]);
  }
  snprintf(path, sizeof path, "%s/table.tsv", dir);
  hcl_status rc = hcl_membuf_close(NULL, &mb);
  if (rc == HCL_OK) rc = hcl_file_replace(NULL, path, mb.data, mb.len);
  hcl_membuf_free(&mb);
  if (rc == HCL_OK && tty) {
    fprintf(tty, "\n%-60s %5s  %s (mean ± sd over seeds)\n", "point", "seeds", metric);
    for (size_t p = 0; p < np; p++) {
      char key[1024];
      point_key(sw, p, -1, key, sizeof key);
      fprintf(tty, "%-60s %5zu  %.4g ± %.2g%s\n", key, cnt[p], mean[p], sd[p],
              cnt[p] < nS ? "  (incomplete: seeds missing)" : "");
    }
  }

  if (rc == HCL_OK && sw->size_axis >= 0) {
    FILE *ps = hcl_membuf_open(&mb);
    if (!ps) rc = hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
    FILE *say = ps ? tty : NULL;
    if (ps) {
      fprintf(ps, "{\"metric\":\"%s\",\"threshold\":", metric);
      hcl_json_num(ps, thr);
      fputs(",\"groups\":[", ps);
    }
    if (say)
      fprintf(say, "\nP* (smallest train_size with %s <= %.4g, log-interpolated):\n", metric, thr);
    int first = 1;
    for (size_t p = 0; ps && p < np; p++) {
      if (hcl_sweep_value_at(sw, p, (size_t)sw->size_axis) != 0) continue; /* one per group */
      char group[1024];
      point_key(sw, p, sw->size_axis, group, sizeof group);
      double Ps[HCL_SWEEP_MAX_VALUES][3]; /* (P, err, point) sorted by P */
      size_t k = 0;
      int complete = 1;
      for (size_t q = 0; q < np; q++) {
        char g2[1024];
        point_key(sw, q, sw->size_axis, g2, sizeof g2);
        if (strcmp(g2, group)) continue;
        complete &= cnt[q] == nS;
        Ps[k][0] =
            atof(sw->axes[sw->size_axis].values[hcl_sweep_value_at(sw, q, (size_t)sw->size_axis)]);
        Ps[k][1] = mean[q];
        Ps[k][2] = (double)q;
        k++;
      }
      qsort(Ps, k, sizeof Ps[0], cmp_dbl);
      double P[HCL_SWEEP_MAX_VALUES], e[HCL_SWEEP_MAX_VALUES], pstar = NAN, lo = NAN, hi = NAN;
      size_t pt[HCL_SWEEP_MAX_VALUES];
      for (size_t i = 0; i < k; i++) P[i] = Ps[i][0], e[i] = Ps[i][1], pt[i] = (size_t)Ps[i][2];
      fprintf(ps, "%s\n {\"group\":", first ? "" : ",");
      first = 0;
      hcl_json_str(ps, group);
      fputc(',', ps);
      if (complete)
        pstar_json(ps, P, e, k, thr, &pstar, &lo, &hi);
      else /* not known */
        fputs("\"pstar\":null,\"bracket\":[null,null],\"complete\":false", ps);
      if (say) {
        if (!complete)
          fprintf(say, "  %-40s P* unknown (some points incomplete)\n", *group ? group : "(all)");
        else if (isfinite(pstar))
          fprintf(say, "  %-40s P* = %.4g  (between %g and %g)\n", *group ? group : "(all)", pstar,
                  lo, hi);
        else if (isfinite(hi))
          fprintf(say, "  %-40s P* <= %g (the smallest P tried)\n", *group ? group : "(all)", hi);
        else
          fprintf(say, "  %-40s P* > %g (never reached)\n", *group ? group : "(all)", lo);
      }
      if (complete) per_seed_pstar(ps, say, P, pt, k, val, seeds, nS, thr);
      fputs("}", ps);
    }
    if (ps) {
      fputs("\n]", ps);
      if (sw->dim_axis >= 0 && sw->dim_axis != sw->size_axis) {
        if (say) fprintf(say, "\nScaling of P* in %s:\n", sw->axes[sw->dim_axis].key);
        write_exponents(sw, val, cnt, nS, thr, ps, say);
      }
      fputs("}\n", ps);
      snprintf(path, sizeof path, "%s/pstar.json", dir);
      rc = hcl_membuf_close(NULL, &mb);
      if (rc == HCL_OK) rc = hcl_file_replace(NULL, path, mb.data, mb.len);
      hcl_membuf_free(&mb);
    }
  }
  free(val);
  free(mean);
  free(sd);
  free(cnt);
  return rc;
}

/* ---- the driver ------------------------------------------------------------ */

/* Whether sweep.jsonl holds a whole final record of (point key, seed). */
int hcl_sweep_done_before(const char *jsonl, const char *key, uint64_t seed) {
  if (!jsonl) return 0;
  char pat[1200], sp[48];
  snprintf(pat, sizeof pat, "\"key\":\"%s\",", key);
  snprintf(sp, sizeof sp, ",\"seed\":%llu,", (unsigned long long)seed);
  for (const char *p = jsonl; (p = strstr(p, pat)); p++) {
    const char *start = p, *end = strchr(p, '\n');
    while (start > jsonl && start[-1] != '\n') start--;
    if (!end) return 0; /* torn */
    const char *sd = strstr(p, sp);
    size_t n = (size_t)(end - start);
    if (sd && sd < end && hcl_sweep_line_final(start, n) && hcl_sweep_line_ok(start, n)) return 1;
  }
  return 0;
}

/* Cut a torn or invalid tail off sweep.jsonl (the record a crash or a full
 * disk interrupted): the file then ends with a whole record, so appending
 * starts a new line, and the cut point runs again. text is the file's
 * content, updated in place. */
size_t hcl_sweep_whole_prefix(const char *text, size_t len) {
  size_t keep = len;
  while (keep) {
    if (text[keep - 1] != '\n') { /* no newline at the end: torn */
      while (keep && text[keep - 1] != '\n') keep--;
      continue;
    }
    size_t b = keep - 1, b0 = b; /* the last whole line: text[b0, b) */
    while (b0 && text[b0 - 1] != '\n') b0--;
    if (hcl_sweep_line_ok(text + b0, b - b0)) break;
    keep = b0; /* an invalid last line goes too */
  }
  return keep;
}

static hcl_status repair_tail(const char *path, char *text) {
  size_t len = strlen(text), keep = hcl_sweep_whole_prefix(text, len);
  if (keep == len) return HCL_OK;
  fprintf(stderr,
          "hiercl sweep: %s: dropping a torn or invalid last record (%zu bytes); its point "
          "runs again\n",
          path, len - keep);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)keep) || fsync(fd)) {
    int e = errno;
    if (fd >= 0) close(fd);
    return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot repair the torn last line: %s", path,
                    strerror(e));
  }
  close(fd);
  text[keep] = 0;
  return HCL_OK;
}

/* The sweep directory (and its parents) and sweep.jsonl, its torn tail cut,
 * opened to append. Called once every point has passed its checks, so a bad
 * grid leaves no directory behind. */
static hcl_status open_sweep_dir(const char *parent, const char *dir, const char *path, int *out) {
  HCL_TRY(hcl_mkdir_p(NULL, parent)); /* like hiercl run --out: parents too */
  if (mkdir(dir, 0777) && errno != EEXIST)
    return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
  char *text = hcl_file_text(path);
  hcl_status rc = text ? repair_tail(path, text) : HCL_OK;
  free(text);
  HCL_TRY(rc);
  *out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (*out < 0) return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  return HCL_OK;
}

/* sweep.jsonl (and candidates.jsonl) rewritten from every shard's records. */
static hcl_status merge_records(const hcl_grid *sw, const hcl_grid *vis, const char *dir,
                                const uint64_t *seeds, size_t nS) {
  if (sw->n_select) HCL_TRY(hcl_sweep_merge_file(sw, dir, "candidates", seeds, nS));
  return hcl_sweep_merge_file(vis, dir, "sweep", seeds, nS);
}

/* The states of the points into opt (and their lines on stdout): --status. */
static hcl_status sweep_status(hcl_sweep_options *opt, const hcl_grid *sw, const char *base,
                               const uint64_t *seeds, size_t nS, const size_t *job) {
  size_t c[4];
  FILE *out = opt->quiet ? NULL : stdout;
  HCL_TRY(hcl_sweep_status_report(sw, opt->sweep_dir, base, seeds, nS, job, opt->shard_index,
                                  opt->shard_count, out, c, opt->shard_undone));
  opt->n_done = c[0], opt->n_failed = c[1], opt->n_pending = c[2];
  struct stat st;
  if (out && opt->shard_count && opt->shard_index < opt->shard_count)
    fprintf(out, "shard %u/%u: ", opt->shard_index, opt->shard_count);
  if (out)
    fprintf(out, "%zu points (%zu runs in all): %zu done, %zu failed, %zu pending in %s%s\n",
            c[0] + c[1] + c[2], opt->n_runs, c[0], c[1], c[2], opt->sweep_dir,
            stat(opt->sweep_dir, &st) ? " (not made yet)" : "");
  return HCL_OK;
}

/* --merge: sweep.jsonl from every shard's records (and, when selecting, the
 * selections the shards could not make: a point's candidates ran in several
 * shards), then table.tsv and pstar.json as an unsharded sweep writes them. */
static hcl_status sweep_merge(hcl_sweep_options *opt, const hcl_grid *sw, const char *parent,
                              const uint64_t *seeds, size_t nS, const size_t *job) {
  const char *dir = opt->sweep_dir;
  struct stat st;
  if (stat(dir, &st) || !S_ISDIR(st.st_mode))
    return hcl_fail(NULL, HCL_ERR_IO, "%s: no such sweep directory (no shard has run yet)", dir);
  hcl_grid vis = *sw; /* the grid without its candidate axes */
  vis.n_axes -= sw->n_select;
  vis.n_select = 0;
  size_t n_sel_failed = 0;
  if (sw->n_select) {
    HCL_TRY(hcl_sweep_merge_file(sw, dir, "candidates", seeds, nS));
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/sweep.jsonl", dir);
    int fd = -1;
    hcl_status rc = open_sweep_dir(parent, dir, path, &fd);
    hcl_sweep_failures sf = {0};
    if (rc == HCL_OK) rc = hcl_sweep_select_pending(sw, dir, path, fd, seeds, nS, &sf);
    n_sel_failed = (size_t)sf.n;
    if (fd >= 0 && close(fd) && rc == HCL_OK)
      rc = hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    HCL_TRY(rc);
  }
  HCL_TRY(hcl_sweep_merge_file(&vis, dir, "sweep", seeds, nS));
  HCL_TRY(summarise(&vis, dir, opt->quiet ? NULL : stdout, seeds, nS));
  size_t c[4];
  HCL_TRY(hcl_sweep_status_report(sw, dir, sw->n_select ? "candidates" : "sweep", seeds, nS, job, 0,
                                  0, NULL, c, NULL));
  opt->n_done = c[0], opt->n_failed = c[1], opt->n_pending = c[2];
  fprintf(stderr, "hiercl sweep: merged %s: %zu points done, %zu failed, %zu pending\n", dir, c[0],
          c[1], c[2]);
  if (n_sel_failed) { /* candidates that ran but gave no finite val_loss: the exit says failed */
    fprintf(stderr, "hiercl sweep: %zu selection(s) failed (see %s/sweep.jsonl)\n", n_sel_failed,
            dir);
    opt->n_failed += n_sel_failed;
  }
  return HCL_OK;
}

hcl_status hcl_sweep(hcl_sweep_options *opt, char *err, size_t errlen) {
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  hcl_grid sw;
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
  for (size_t i = 0; i < opt->n_select; i++) cap += strlen(opt->select[i]) + 10;
  char *ident = calloc(cap, 1);
  if (!ident) return snprintf(err, errlen, "out of memory"), HCL_ERR_NOMEM;
  strcat(ident, cfg.text);
  for (size_t i = 0; i < opt->run.n_sets; i++) strcat(strcat(ident, "\n--set "), opt->run.sets[i]);
  for (size_t i = 0; i < opt->n_grid; i++) strcat(strcat(ident, "\n--grid "), opt->grid[i]);
  for (size_t i = 0; i < opt->n_select; i++) strcat(strcat(ident, "\n--select "), opt->select[i]);
  hcl_sha256_hex(ident, strlen(ident), hash);
  free(ident);
  const char *parent = opt->run.out_dir && *opt->run.out_dir ? opt->run.out_dir : "runs";
  /* the runs go to <parent>/sweep_<name>_<hash8>/runs/<run>: all of it must
   * fit in PATH_MAX, checked before anything is created (never cut) */
  if ((rc = hcl_out_check_parent(NULL, parent, strlen(name) + 24)) != HCL_OK) {
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return rc;
  }
  snprintf(opt->sweep_dir, sizeof opt->sweep_dir, "%s/sweep_%s_%.8s", parent, name, hash);
  unsigned shard_n = opt->action == HCL_SWEEP_MERGE ? 0 : opt->shard_count;
  unsigned shard_i = opt->shard_index;
  if (shard_n && shard_i >= shard_n && !(opt->action == HCL_SWEEP_STATUS && shard_i == shard_n)) {
    snprintf(err, errlen, "--shard %u/%u: the shard index must be below the shard count", shard_i,
             shard_n);
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return HCL_ERR_CONFIG;
  }
  int sharded = opt->action == HCL_SWEEP_RUN && shard_n > 0;
  /* sweep.jsonl holds the points' records; with candidates to select, each
   * candidate's record goes to candidates.jsonl and sweep.jsonl the chosen.
   * A shard appends to its own sweep.shard-I-of-N.jsonl (candidates.shard-...)
   * so concurrent shards never append to one file. */
  char path[PATH_MAX + 64], runs[PATH_MAX + 64], cpath[PATH_MAX + 64]; /* checked above */
  char own[2][NAME_MAX + 1];
  hcl_sweep_shard_name("sweep", shard_i, shard_n, own[0], sizeof own[0]);
  hcl_sweep_shard_name("candidates", shard_i, shard_n, own[1], sizeof own[1]);
  snprintf(path, sizeof path, "%s/%s", opt->sweep_dir, sharded ? own[0] : "sweep.jsonl");
  snprintf(cpath, sizeof cpath, "%s/%s", opt->sweep_dir, sharded ? own[1] : "candidates.jsonl");
  snprintf(runs, sizeof runs, "%s/runs", opt->sweep_dir);
  const char *rec_path = sw.n_select ? cpath : path;
  const char *rec_base = sw.n_select ? "candidates" : "sweep";
  const char *vs = hcl_config_get(&cfg, "eval", "val_size");
  if (sw.n_select && !(vs && strtod(vs, NULL) > 0)) {
    snprintf(err, errlen,
             "%s: selection ([select] or --select) picks each point's candidate with the lowest "
             "val_loss: set [eval] val_size > 0 (a validation stream, disjoint from train and "
             "test)",
             opt->run.config_path);
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return HCL_ERR_CONFIG;
  }
  size_t np = hcl_sweep_n_points(&sw);
  uint64_t seeds[HCL_SWEEP_MAX_VALUES];
  size_t nS = 1;
  if (sw.seed_axis >= 0) {
    hcl_axis *a = &sw.axes[sw.seed_axis];
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
  const char *blist[HCL_SWEEP_MAX_AXES] = {0};
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
  size_t *job = calloc(np, sizeof *job);
  if (!job) {
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return snprintf(err, errlen, "out of memory"), HCL_ERR_NOMEM;
  }
  opt->n_runs = hcl_sweep_jobs(&sw, bmask, job);
  if (opt->action != HCL_SWEEP_RUN) {
    rc = opt->action == HCL_SWEEP_STATUS ? sweep_status(opt, &sw, rec_base, seeds, nS, job)
                                         : sweep_merge(opt, &sw, parent, seeds, nS, job);
    if (rc != HCL_OK) snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    free(job);
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return rc;
  }
  /* what earlier sweeps (and every shard) recorded, torn tails left out (this
   * process's own file is cut on disk when the directory is opened, after
   * every point checked out) */
  char *previous = hcl_sweep_read_records(opt->sweep_dir, rec_base);
  if (!previous) {
    rc = hcl_fail(NULL, HCL_ERR_IO, "%s: cannot read the sweep records: %s", opt->sweep_dir,
                  strerror(errno));
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
  }
  int out = -1, sel_out = -1;
  char tag[64] = ""; /* names the shard in every progress line of its log */
  if (sharded) snprintf(tag, sizeof tag, "shard %u/%u: ", shard_i, shard_n);
  if (Rmax > HCL_MAX_REPLICAS) { /* checked before the per-replica lists are allocated */
    if (rc == HCL_OK) {
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "%s: [sweep] one run would train %zu replicas (seeds x train sizes x "
                    "learning rates); at most %d: use fewer values or split the sweep",
                    cfg.path, Rmax, HCL_MAX_REPLICAS);
      snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    }
    Rmax = 0;
  }
  int mpi_rank, mpi_size;
  hcl_sweep_mpi_world(&mpi_rank, &mpi_size);
  hcl_sweep_env *env = calloc(1, sizeof *env);
  size_t *tasks = calloc(np ? np : 1, sizeof *tasks);
  char **devices = NULL;
  size_t n_devices = 0;
  if (rc == HCL_OK && (!env || !tasks)) {
    rc = HCL_ERR_NOMEM;
    snprintf(err, errlen, "out of memory");
  }
  /* the selector as a run resolves it (--device, HIERCL_DEVICE, [runtime]
   * device): "all" or a list gives one worker per device */
  const char *rt_dev = hcl_config_get(&cfg, "runtime", "device");
  const char *env_dev = getenv("HIERCL_DEVICE");
  const char *sel = opt->run.device && *opt->run.device ? opt->run.device
                    : env_dev && *env_dev               ? env_dev
                                                        : rt_dev;
  char origin[1200] = "--device";
  if (sel == env_dev)
    snprintf(origin, sizeof origin, "HIERCL_DEVICE (from the environment) =");
  else if (sel == rt_dev) {
    hcl_config_where(&cfg, "runtime", "device", origin, sizeof origin - 24);
    strcat(origin, ": [runtime] device =");
  }
  if (rc == HCL_OK) rc = hcl_sweep_devices(sel, origin, &devices, &n_devices, err, errlen);
  /* MPI ranks with no device named anywhere: each takes a GPU of its node
   * by its node-local rank (none: the default device) */
  if (rc == HCL_OK && mpi_size > 1 && !n_devices && !(opt->run.device && *opt->run.device) &&
      !(env_dev && *env_dev) && !(rt_dev && *rt_dev))
    rc = hcl_sweep_devices("gpu-all", "", &devices, &n_devices, err, errlen);
  hcl_sweep_job jb;
  memset(&jb, 0, sizeof jb);
  hcl_session *session = NULL; /* the checks' plugin registry, scanned once */
  if (env) {
    *env = (hcl_sweep_env){.opt = opt,
                           .sw = &sw,
                           .seeds = seeds,
                           .nS = nS,
                           .bmask = bmask,
                           .blist = blist,
                           .group = group,
                           .Rmax = Rmax,
                           .runs = runs,
                           .previous = previous,
                           .out = -1,
                           .rec_path = rec_path,
                           .sel_out = -1,
                           .path = path,
                           .tag = tag,
                           .tasks = tasks,
                           .progress_tty = isatty(STDERR_FILENO),
                           .t0 = hcl_now()};
    pthread_mutex_init(&env->lock, NULL);
  }
  if (rc == HCL_OK && (rc = hcl_sweep_job_alloc(env, &jb)) != HCL_OK)
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
  if (rc == HCL_OK &&
      (rc = hcl_session_create(opt->run.plugin_path, &session, err, errlen)) != HCL_OK)
    session = NULL;
  /* pass 0 checks every run before any starts, so a bad value fails in
   * seconds (rank 0 only: the other ranks wait for work) */
  size_t todo = 0, jobs = 0;
  for (size_t p = 0; rc == HCL_OK && mpi_rank == 0 && p < np; p++) {
    int first_of_group = 1;
    for (size_t i = 0; i < sw.n_axes; i++)
      if (bmask >> i & 1u) first_of_group &= hcl_sweep_value_at(&sw, p, i) == 0;
    if (!first_of_group || (sharded && job[p] % shard_n != shard_i)) continue;
    hcl_sweep_job_prepare(env, p, &jb);
    hcl_run_options ro = opt->run;
    ro.sets = jb.sets;
    ro.n_sets = jb.n_sets;
    ro.out_dir = runs;
    ro.dry_run = 1;
    ro.session = session;
    rc = hcl_run(&ro, err, errlen);
    if (rc != HCL_OK) {
      char tmp[2048];
      snprintf(tmp, sizeof tmp, "%s", err);
      snprintf(err, errlen, "sweep point %s: %s", jb.gkey, tmp);
      break;
    }
    jobs++;
    if (jb.n_done < jb.R) tasks[todo++] = p, env->points_todo += jb.n_points;
  }
  hcl_session_destroy(session);
  hcl_sweep_job_free(&jb);
  if (rc == HCL_OK && mpi_rank == 0 && todo < jobs)
    fprintf(stderr, "hiercl sweep: %s%zu of %zu runs already done in %s; running the rest\n", tag,
            jobs - todo, jobs, opt->sweep_dir);
  if (rc == HCL_OK && mpi_rank == 0 &&
      ((rc = open_sweep_dir(parent, opt->sweep_dir, rec_path, &out)) != HCL_OK ||
       (sw.n_select && ((rc = open_sweep_dir(parent, opt->sweep_dir, path, &sel_out)) != HCL_OK ||
                        (rc = hcl_sweep_select_pending(&sw, opt->sweep_dir, path, sel_out, seeds,
                                                       nS, NULL)) != HCL_OK))))
    snprintf(err, errlen, "%s", hcl_errmsg(NULL)); /* (selection caught up after a crash) */
  int failures = 0;
  hcl_sweep_failures run_fail = {0}, sel_fail = {0};
  if (env) {
    env->n_tasks = todo;
    env->out = out;
    env->sel_out = sel_out;
  }
  if (mpi_size > 1) {
    /* every rank takes part, even after a failed check: rank 0 then sends
     * no work and the others end */
    if (rc != HCL_OK && env) env->stop_all = 1, env->n_tasks = 0;
    hcl_status mrc = env ? hcl_sweep_exec_mpi(env, devices, n_devices) : HCL_ERR_NOMEM;
    if (rc == HCL_OK && mrc != HCL_OK) rc = mrc, snprintf(err, errlen, "%s", env->err);
  } else if (rc == HCL_OK) {
    rc = hcl_sweep_exec_local(env, devices, n_devices);
    if (rc != HCL_OK) snprintf(err, errlen, "%s", env->err);
  }
  if (env) failures = env->failures, run_fail = env->run_fail;
  /* points whose every seed is final but one diverged: no number, and a
   * re-run would diverge again, so they are not retried; the exit says so,
   * on a resume too (a selection's diverged candidates are only unselected) */
  size_t n_diverged = 0;
  if (rc == HCL_OK && mpi_rank == 0 && !sw.n_select && out >= 0) {
    size_t c[4];
    rc = hcl_sweep_status_report(&sw, opt->sweep_dir, "sweep", seeds, nS, job, opt->shard_index,
                                 opt->shard_count, NULL, c, NULL);
    if (rc != HCL_OK) snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    n_diverged = c[3];
  }
  /* every (point, seed) left without a selection, this time or before (a
   * resume does not train completed candidates again, so their failed
   * selection would otherwise pass unnoticed) */
  if (rc == HCL_OK && mpi_rank == 0 && sw.n_select && sel_out >= 0 &&
      (rc = hcl_sweep_select_pending(&sw, opt->sweep_dir, path, sel_out, seeds, nS, &sel_fail)) !=
          HCL_OK)
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
  for (size_t i = 0; i < n_devices; i++) free(devices[i]);
  free(devices);
  free(tasks);
  if (env) pthread_mutex_destroy(&env->lock);
  free(env);
  if (out >= 0 && close(out) && rc == HCL_OK) {
    rc = HCL_ERR_IO;
    snprintf(err, errlen, "%s: cannot write: %s", rec_path, strerror(errno));
  }
  if (sel_out >= 0 && close(sel_out) && rc == HCL_OK) {
    rc = HCL_ERR_IO;
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
  }
  if (mpi_rank > 0) { /* a worker: rank 0 writes the records, table and P* */
    opt->mpi_worker = 1;
    free(previous);
    free(job);
    hcl_config_free(&cfg);
    free_sweep(&sw);
    return rc;
  }
  hcl_grid vis = sw; /* the table, P* and exponents: the grid without its candidate axes */
  vis.n_axes -= sw.n_select;
  vis.n_select = 0;
  free(previous);
  free(job);
  /* the table and P* from whole records only; not after a write failed
   * (the files on disk stay as they were, each from whole records), nor
   * when a point failed its checks (no directory was made), nor by a shard
   * (the other shards' runs may not be done: --merge writes them) */
  int summary = !sharded && out >= 0 && (rc == HCL_OK || rc == HCL_ERR_INTERRUPTED);
  hcl_status srec = HCL_OK;
  /* the records in grid then seed order, as --merge writes them: with the
   * shards' records gathered when shards ran here, and the same file
   * whatever order the runs finished in (one device, several, MPI ranks,
   * a resumed sweep) */
  if (summary) srec = merge_records(&sw, &vis, opt->sweep_dir, seeds, nS);
  if (summary && srec == HCL_OK)
    srec = summarise(&vis, opt->sweep_dir, rc == HCL_OK ? stdout : NULL, seeds, nS);
  if (sharded && rc == HCL_OK && !failures)
    fprintf(stderr,
            "hiercl sweep: %sits runs are done; once every shard is, --merge writes table.tsv "
            "and pstar.json\n",
            tag);
  if (rc == HCL_OK && srec != HCL_OK) {
    rc = srec;
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
  }
  if (rc == HCL_OK && failures) {
    rc = HCL_ERR_PLUGIN;
    snprintf(err, errlen, "%s%d sweep point(s) failed (%s); see %s (re-run to retry them)", tag,
             failures, run_fail.names, rec_path);
  }
  if (rc == HCL_OK && n_diverged) {
    rc = HCL_ERR_PLUGIN;
    snprintf(err, errlen,
             "%s%zu sweep point(s) diverged: their numbers are void and a re-run diverges again "
             "(`hiercl sweep %s --status` lists them); change the settings that diverge, e.g. "
             "train.lr",
             tag, n_diverged, opt->run.config_path);
  }
  if (rc == HCL_OK && sel_fail.n) {
    rc = HCL_ERR_PLUGIN;
    snprintf(err, errlen,
             "%s%d selection(s) failed (%s): no candidate finished with a finite val_loss; see "
             "%s/sweep.jsonl",
             tag, sel_fail.n, sel_fail.names, opt->sweep_dir);
  }
  hcl_config_free(&cfg);
  free_sweep(&sw);
  return rc;
}
