/* INI configs: read the file, check every line ourselves (iniparser accepts
 * or silently drops malformed input), then take the values from iniparser
 * and keep them per section for the strict schema checks in params.c. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* iniparser 4.1 rejects lines of ASCIILINESZ (1024) bytes or more. */
#define HCL_INI_LINE_MAX 1000

/* Line of `key` in `section` of the config text (section header when key is
 * NULL); 0 when it is not in the file (e.g. set with --set). Used by params.c
 * too (declared there until internal.h carries it). */
unsigned hcl_config_line(const hcl_config *cfg, const char *section, const char *key);

/* The file name for messages. */
static const char *cfg_name(const hcl_config *cfg) { return cfg->path[0] ? cfg->path : "<config>"; }

static int name_char(int c) { return isalnum(c) || c == '_' || c == '-'; }

/* Valid section or key name: letters, digits, '_' and '-'. */
static int valid_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!name_char((unsigned char)s[i])) return 0;
  return 1;
}

/* Keys of [sweep] and [select] name other keys ("train.train_size"), so they
 * may hold dots. */
static int valid_key(const char *section, size_t sn, const char *s, size_t n) {
  int sweep = (sn == 5 && !strncasecmp(section, "sweep", 5)) ||
              (sn == 6 && !strncasecmp(section, "select", 6));
  if (n == 0 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; i++)
    if (!name_char((unsigned char)s[i]) && !(sweep && s[i] == '.')) return 0;
  return 1;
}

static void lower_copy(char *dst, size_t cap, const char *src, size_t n) {
  if (n >= cap) n = cap - 1;
  for (size_t i = 0; i < n; i++) dst[i] = (char)tolower((unsigned char)src[i]);
  dst[n] = 0;
}

/* Trim [*b, *e) of blanks and CR. */
static void trim(const char **b, const char **e) {
  while (*b < *e && isspace((unsigned char)**b)) (*b)++;
  while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

/* One line of the text, in [b, e), already trimmed. */
typedef struct line_view {
  const char *b, *e;
  size_t raw; /* length before trimming, without the line end */
  unsigned no;
} line_view;

/* Iterate over the lines of text: *pos advances; returns 0 at the end. */
static int next_line(const char *text, size_t *pos, unsigned *no, line_view *out) {
  if (!text[*pos]) return 0;
  const char *b = text + *pos, *nl = strchr(b, '\n');
  const char *e = nl ? nl : b + strlen(b);
  *pos = (size_t)(e - text) + (nl ? 1 : 0);
  (*no)++;
  out->no = *no;
  out->b = b;
  out->e = e;
  out->raw = (size_t)(e - b) - (e > b && e[-1] == '\r');
  trim(&out->b, &out->e);
  return 1;
}

unsigned hcl_config_line(const hcl_config *cfg, const char *section, const char *key) {
  if (!cfg || !cfg->text || !section) return 0;
  size_t pos = 0;
  unsigned no = 0;
  line_view l;
  int in = 0;
  while (next_line(cfg->text, &pos, &no, &l)) {
    if (l.b == l.e || *l.b == '#' || *l.b == ';') continue;
    if (*l.b == '[') {
      const char *nb = l.b + 1, *ne = memchr(nb, ']', (size_t)(l.e - nb));
      if (!ne) continue;
      trim(&nb, &ne);
      in = (size_t)(ne - nb) == strlen(section) && !strncasecmp(nb, section, (size_t)(ne - nb));
      if (in && !key) return l.no;
      continue;
    }
    const char *eq = memchr(l.b, '=', (size_t)(l.e - l.b));
    if (!in || !key || !eq) continue;
    const char *kb = l.b, *ke = eq;
    trim(&kb, &ke);
    if ((size_t)(ke - kb) == strlen(key) && !strncasecmp(kb, key, (size_t)(ke - kb))) return l.no;
  }
  return 0;
}

/* A key seen by the line scan, for duplicate detection. */
typedef struct seen_key {
  char section[32];
  char key[64];
  unsigned line;
} seen_key;

/* Check every line: comments, "[section]" and "key = value" inside a section
 * are the only forms. Fails with FILE:LINE and what is wrong. */
static hcl_status scan_lines(hcl_ctx *ctx, const char *path, const char *text) {
  size_t pos = 0, n_seen = 0, cap = 0;
  unsigned no = 0;
  line_view l;
  char section[32] = "";
  seen_key *seen = NULL;
  hcl_status rc = HCL_OK;

  if (!strncmp(text, "\xEF\xBB\xBF", 3))
    return hcl_fail(ctx, HCL_ERR_CONFIG,
                    "%s:1: the file starts with a UTF-8 byte-order mark; save it without one",
                    path);
  while (rc == HCL_OK && next_line(text, &pos, &no, &l)) {
    size_t len = (size_t)(l.e - l.b);
    /* the untrimmed length: iniparser reads whole lines, blanks included */
    if (l.raw > HCL_INI_LINE_MAX) {
      rc = hcl_fail(ctx, HCL_ERR_CONFIG,
                    "%s:%u: line of %zu characters; a config line has at most %d (shorten it)",
                    path, l.no, l.raw, HCL_INI_LINE_MAX);
      break;
    }
    if (len == 0 || *l.b == '#' || *l.b == ';') continue;
    if (l.e[-1] == '\\') {
      rc =
          hcl_fail(ctx, HCL_ERR_CONFIG,
                   "%s:%u: line continuation with '\\' is not supported; put the value on one line",
                   path, l.no);
      break;
    }
    if (*l.b == '[') {
      const char *close = memchr(l.b, ']', len);
      if (!close) {
        rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%u: unterminated '[' in section header '%.*s'", path,
                      l.no, (int)len, l.b);
        break;
      }
      if (close != l.e - 1) {
        rc = hcl_fail(ctx, HCL_ERR_CONFIG,
                      "%s:%u: unexpected text after ']' in section header '%.*s' (comments go "
                      "on their own line)",
                      path, l.no, (int)len, l.b);
        break;
      }
      const char *nb = l.b + 1, *ne = close;
      trim(&nb, &ne);
      if (!valid_name(nb, (size_t)(ne - nb))) {
        rc = hcl_fail(ctx, HCL_ERR_CONFIG,
                      "%s:%u: bad section name '%.*s' (letters, digits, '_' and '-' only)", path,
                      l.no, (int)(ne - nb), nb);
        break;
      }
      if ((size_t)(ne - nb) >= sizeof section) {
        rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%u: section name '%.*s' longer than %zu characters",
                      path, l.no, (int)(ne - nb), nb, sizeof section - 1);
        break;
      }
      lower_copy(section, sizeof section, nb, (size_t)(ne - nb));
      continue;
    }
    const char *eq = memchr(l.b, '=', len);
    if (!eq) {
      rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%u: expected 'key = value' or '[section]', got '%.*s'",
                    path, l.no, (int)len, l.b);
      break;
    }
    const char *kb = l.b, *ke = eq, *vb = eq + 1, *ve = l.e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (!valid_key(section, strlen(section), kb, (size_t)(ke - kb)) ||
        (size_t)(ke - kb) >= sizeof seen->key) {
      rc = hcl_fail(ctx, HCL_ERR_CONFIG,
                    "%s:%u: bad key name '%.*s' (letters, digits, '_' and '-', at most %zu)", path,
                    l.no, (int)(ke - kb), kb, sizeof seen->key - 1);
      break;
    }
    if (!section[0]) {
      rc = hcl_fail(ctx, HCL_ERR_CONFIG,
                    "%s:%u: key '%.*s' outside any section (add a [section] header above it)", path,
                    l.no, (int)(ke - kb), kb);
      break;
    }
    if (vb < ve && (*vb == '"' || *vb == '\'') && !memchr(vb + 1, *vb, (size_t)(ve - vb - 1))) {
      rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%u: unterminated quote in value of '%.*s'", path, l.no,
                    (int)(ke - kb), kb);
      break;
    }
    char key[64];
    lower_copy(key, sizeof key, kb, (size_t)(ke - kb));
    for (size_t i = 0; i < n_seen; i++) {
      if (!strcmp(seen[i].section, section) && !strcmp(seen[i].key, key)) {
        rc = hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%u: [%s] key '%s' given twice (first at line %u)",
                      path, l.no, section, key, seen[i].line);
        break;
      }
    }
    if (rc != HCL_OK) break;
    if (n_seen == cap) {
      size_t nc = cap ? 2 * cap : 32;
      seen_key *ns = realloc(seen, nc * sizeof *ns);
      if (!ns) {
        rc = hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
      seen = ns;
      cap = nc;
    }
    strcpy(seen[n_seen].section, section);
    strcpy(seen[n_seen].key, key);
    seen[n_seen++].line = l.no;
  }
  free(seen);
  return rc;
}

/* Read a whole file into a NUL-terminated malloc'd string. */
static hcl_status read_text(hcl_ctx *ctx, const char *path, char **out) {
  FILE *f = fopen(path, "rb");
  if (!f) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot read config: %s", path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 4096) {
      size_t nc = cap ? 2 * cap : 8192;
      char *nb = realloc(buf, nc);
      if (!nb) {
        free(buf);
        fclose(f);
        return hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory reading config", path);
      }
      buf = nb;
      cap = nc;
    }
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
  }
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (err) {
    free(buf);
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot read config: %s", path, strerror(err));
  }
  if (memchr(buf, 0, len)) {
    free(buf);
    return hcl_fail(ctx, HCL_ERR_CONFIG, "%s: not a text file (contains NUL bytes)", path);
  }
  buf[len] = 0;
  *out = buf;
  return HCL_OK;
}

static int quiet_errback(const char *fmt, ...) {
  (void)fmt;
  return 0;
}

static struct hcl_raw_section *find_section(const hcl_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n_sections; i++)
    if (!strcasecmp(cfg->sections[i].name, name)) return &cfg->sections[i];
  return NULL;
}

static struct hcl_raw_section *add_section(hcl_config *cfg, const char *name) {
  struct hcl_raw_section *s = realloc(cfg->sections, (cfg->n_sections + 1) * sizeof *cfg->sections);
  if (!s) return NULL;
  cfg->sections = s;
  s = &cfg->sections[cfg->n_sections++];
  memset(s, 0, sizeof *s);
  lower_copy(s->name, sizeof s->name, name, strlen(name));
  return s;
}

/* Add or replace key in a section (copies). In raw sections `from_default`
 * is otherwise unused; -1 there marks a value given with --set, so errors can
 * say where the value came from instead of pointing at a file line. */
static hcl_status section_put(struct hcl_raw_section *s, const char *key, const char *value,
                              int origin) {
  char *v = strdup(value ? value : "");
  if (!v) return HCL_ERR_NOMEM;
  for (size_t i = 0; i < s->n; i++) {
    if (!strcasecmp(s->kv[i].key, key)) {
      free(s->kv[i].value);
      s->kv[i].value = v;
      s->kv[i].from_default = origin;
      return HCL_OK;
    }
  }
  hcl_kv *kv = realloc(s->kv, (s->n + 1) * sizeof *kv);
  char *k = strdup(key);
  if (!kv || !k) {
    if (kv) s->kv = kv;
    free(k);
    free(v);
    return HCL_ERR_NOMEM;
  }
  for (char *p = k; *p; p++) *p = (char)tolower((unsigned char)*p);
  s->kv = kv;
  s->kv[s->n++] = (hcl_kv){k, v, origin};
  return HCL_OK;
}

/* Copy iniparser's sections and keys, in file order. */
static hcl_status take_dictionary(hcl_ctx *ctx, dictionary *d, hcl_config *cfg) {
  int nsec = iniparser_getnsec(d);
  for (int i = 0; i < nsec; i++) {
    const char *sec = iniparser_getsecname(d, i);
    if (!sec) continue;
    struct hcl_raw_section *s = find_section(cfg, sec);
    if (!s && !(s = add_section(cfg, sec)))
      return hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory", cfg->path);
    int nk = iniparser_getsecnkeys(d, sec);
    if (nk <= 0) continue;
    const char **keys = calloc((size_t)nk, sizeof *keys);
    if (!keys) return hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory", cfg->path);
    iniparser_getseckeys(d, sec, keys);
    size_t plen = strlen(sec) + 1; /* "section:" */
    for (int k = 0; k < nk; k++) {
      if (!keys[k] || strlen(keys[k]) <= plen) continue;
      const char *v = iniparser_getstring(d, keys[k], "");
      if (section_put(s, keys[k] + plen, v, 0) != HCL_OK) {
        free(keys);
        return hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory", cfg->path);
      }
    }
    free(keys);
  }
  return HCL_OK;
}

hcl_status hcl_config_load(hcl_ctx *ctx, const char *path, hcl_config *out) {
  memset(out, 0, sizeof *out);
  if (!path || !path[0]) return hcl_fail(ctx, HCL_ERR_CONFIG, "no config file given");
  if (strlen(path) >= sizeof out->path)
    return hcl_fail(ctx, HCL_ERR_CONFIG, "%s: path too long", path);
  strcpy(out->path, path);
  hcl_status rc = read_text(ctx, path, &out->text);
  if (rc == HCL_OK) rc = scan_lines(ctx, path, out->text);
  if (rc == HCL_OK) {
    iniparser_set_error_callback(quiet_errback);
    dictionary *d = iniparser_load(path);
    if (!d)
      rc = hcl_fail(ctx, HCL_ERR_CONFIG,
                    "%s: iniparser could not parse the file (lines of at most %d characters, "
                    "'key = value' in '[section]'s)",
                    path, HCL_INI_LINE_MAX);
    else {
      rc = take_dictionary(ctx, d, out);
      iniparser_freedict(d);
    }
  }
  if (rc != HCL_OK) {
    hcl_config_free(out);
    strcpy(out->path, path);
  }
  return rc;
}

hcl_status hcl_config_set(hcl_ctx *ctx, hcl_config *cfg, const char *assignment) {
  const char *a = assignment ? assignment : "";
  const char *eq = strchr(a, '=');
  const char *dot = eq ? memchr(a, '.', (size_t)(eq - a)) : NULL;
  if (!eq || !dot)
    return hcl_fail(ctx, HCL_ERR_CONFIG, "bad --set assignment '%s': expected section.key=value",
                    a);
  const char *sb = a, *se = dot, *kb = dot + 1, *ke = eq, *vb = eq + 1, *ve = a + strlen(a);
  trim(&sb, &se);
  trim(&kb, &ke);
  trim(&vb, &ve);
  if (!valid_name(sb, (size_t)(se - sb)) || (size_t)(se - sb) >= 32)
    return hcl_fail(ctx, HCL_ERR_CONFIG,
                    "bad --set assignment '%s': section '%.*s' must be letters, digits, '_' or "
                    "'-' (expected section.key=value)",
                    a, (int)(se - sb), sb);
  if (!valid_key(sb, (size_t)(se - sb), kb, (size_t)(ke - kb)) || (size_t)(ke - kb) >= 64)
    return hcl_fail(ctx, HCL_ERR_CONFIG,
                    "bad --set assignment '%s': key '%.*s' must be letters, digits, '_' or '-' "
                    "(expected section.key=value)",
                    a, (int)(ke - kb), kb);
  /* The shell usually strips quotes; strip one matching pair if they remain. */
  if (ve - vb >= 2 && (*vb == '"' || *vb == '\'') && ve[-1] == *vb) {
    vb++;
    ve--;
  }
  char section[32], key[64];
  lower_copy(section, sizeof section, sb, (size_t)(se - sb));
  lower_copy(key, sizeof key, kb, (size_t)(ke - kb));
  char *value = strndup(vb, (size_t)(ve - vb));
  if (!value) return hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
  struct hcl_raw_section *s = find_section(cfg, section);
  if (!s) s = add_section(cfg, section);
  hcl_status rc = s ? section_put(s, key, value, -1) : HCL_ERR_NOMEM;
  free(value);
  if (rc != HCL_OK) return hcl_fail(ctx, rc, "out of memory applying --set '%s'", a);
  return HCL_OK;
}

const char *hcl_config_get(const hcl_config *cfg, const char *section, const char *key) {
  if (!cfg || !section || !key) return NULL;
  const struct hcl_raw_section *s = find_section(cfg, section);
  if (!s) return NULL;
  for (size_t i = 0; i < s->n; i++)
    if (!strcasecmp(s->kv[i].key, key)) return s->kv[i].value;
  return NULL;
}

hcl_status hcl_config_check_sections(hcl_ctx *ctx, const hcl_config *cfg,
                                     const char *const *known) {
  for (size_t i = 0; i < cfg->n_sections; i++) {
    const char *name = cfg->sections[i].name;
    int ok = 0;
    for (size_t k = 0; known && known[k]; k++)
      if (!strcasecmp(known[k], name)) ok = 1;
    if (ok) continue;
    char list[512] = "";
    size_t used = 0;
    for (size_t k = 0; known && known[k] && used < sizeof list; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", known[k]);
    unsigned line = hcl_config_line(cfg, name, NULL);
    if (line)
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%u: unknown section [%s] (known: %s)", cfg_name(cfg),
                      line, name, list);
    /* No header line: the section came from --set. */
    return hcl_fail(ctx, HCL_ERR_CONFIG, "%s (--set): unknown section [%s] (known: %s)",
                    cfg_name(cfg), name, list);
  }
  return HCL_OK;
}

void hcl_config_free(hcl_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < cfg->n_sections; i++) {
    for (size_t k = 0; k < cfg->sections[i].n; k++) {
      free(cfg->sections[i].kv[k].key);
      free(cfg->sections[i].kv[k].value);
    }
    free(cfg->sections[i].kv);
  }
  free(cfg->sections);
  free(cfg->text);
  memset(cfg, 0, sizeof *cfg);
}
