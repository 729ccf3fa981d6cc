/* libFuzzer target: the config parser and the --set / --grid value paths.
 * Input: INI text, then optionally a NUL and a --set assignment
 * ("section.key=value"), then optionally a NUL and a --grid argument
 * ("section.key=v1,v2" | "a..b" | "geom(lo, hi, n)"). Without a NUL the
 * first line of the text is also tried as the --set assignment. The config
 * goes through everything hcl_run does before it needs a plugin: load, set,
 * section check, the core schemas, typed getters; the grid through parse
 * and check. Properties: no crash, no leak, no exit, and every JSON string
 * written is valid UTF-8 without raw control characters. */
#include "internal.h"
#include "schema.h"
#include "sweep.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[64];

static void remove_temp(void) {
  if (g_path[0]) unlink(g_path);
}

/* The fuzzer's config file, created once per process. */
static const char *temp_path(void) {
  if (!g_path[0]) {
    snprintf(g_path, sizeof g_path, "/tmp/hcl_fuzz_config_XXXXXX");
    int fd = mkstemp(g_path);
    if (fd < 0) __builtin_trap(); /* no temp file: nothing can be tested */
    close(fd);
    atexit(remove_temp);
  }
  return g_path;
}

/* hcl_json_str(s) must give valid UTF-8 with every control byte escaped. */
static void check_json(const char *s) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return;
  hcl_json_str(f, s);
  fclose(f);
  if (!hcl_utf8_valid(buf)) __builtin_trap();
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7F) __builtin_trap();
  if (len < 2 || buf[0] != '"' || buf[len - 1] != '"') __builtin_trap();
  free(buf);
}

/* Resolve one core section and read every key back through its getter. */
static void resolve(const hcl_config *cfg, const char *section, const hcl_param_desc *schema) {
  hcl_params p;
  if (hcl_params_resolve(NULL, cfg, section, schema, NULL, &p) == HCL_OK) {
    for (const hcl_param_desc *d = schema; d->key; d++) {
      char at[1200];
      hcl_config_where(cfg, section, d->key, at, sizeof at);
      switch (d->type) {
      case HCL_PARAM_INT: (void)hcl_param_int(&p, d->key); break;
      case HCL_PARAM_DOUBLE: (void)hcl_param_double(&p, d->key); break;
      case HCL_PARAM_BOOL: (void)hcl_param_bool(&p, d->key); break;
      case HCL_PARAM_LIST: {
        size_t n = hcl_param_list(&p, d->key, NULL, 0);
        double few[8];
        size_t m = hcl_param_list(&p, d->key, few, 8);
        if (m != n) __builtin_trap(); /* the count never depends on the room given */
        break;
      }
      default: check_json(hcl_param_str(&p, d->key)); break;
      }
    }
  }
  hcl_params_free(&p);
}

static void grid(const char *arg) {
  const char *eq = strchr(arg, '=');
  if (!eq) return;
  char key[96];
  snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
  char **vals = NULL;
  size_t n = 0;
  if (hcl_sweep_parse_values(key, eq + 1, &vals, &n) != HCL_OK) return;
  if (hcl_sweep_check_values(key, vals, n, "--grid") == HCL_OK)
    for (size_t i = 0; i < n; i++) check_json(vals[i]); /* what sweep.jsonl would hold */
  for (size_t i = 0; i < n; i++) free(vals[i]);
  free(vals);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0; /* configs are small; keep iterations fast */
  char *copy = malloc(size + 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  copy[size] = 0;
  /* parts separated by NUL bytes: INI text, --set, --grid */
  const char *ini = copy, *set = NULL, *grid_arg = NULL;
  size_t ini_len = strlen(copy);
  if (ini_len < size) {
    set = copy + ini_len + 1;
    size_t sl = strlen(set);
    if (set + sl < copy + size) grid_arg = set + sl + 1;
  }
  char first_line[1100] = "";
  if (!set) {
    snprintf(first_line, sizeof first_line, "%.*s", (int)strcspn(ini, "\n"), ini);
    set = first_line;
  }

  FILE *f = fopen(temp_path(), "wb");
  if (!f) __builtin_trap();
  fwrite(ini, 1, ini_len, f);
  fclose(f);

  hcl_config cfg;
  if (hcl_config_load(NULL, g_path, &cfg) != HCL_OK) memset(&cfg, 0, sizeof cfg);
  check_json(hcl_errmsg(NULL));
  (void)hcl_config_set(NULL, &cfg, set);
  check_json(hcl_errmsg(NULL));
  if (cfg.text) check_json(cfg.text); /* the manifest copies the original file */
  (void)hcl_config_check_sections(NULL, &cfg, hcl_config_sections);
  resolve(&cfg, "run", hcl_schema_run);
  resolve(&cfg, "runtime", hcl_schema_runtime);
  resolve(&cfg, "train", hcl_schema_train);
  resolve(&cfg, "eval", hcl_schema_eval);
  for (size_t s = 0; s < cfg.n_sections; s++)
    for (size_t k = 0; k < cfg.sections[s].n; k++) {
      (void)hcl_config_line(&cfg, cfg.sections[s].name, cfg.sections[s].kv[k].key);
      check_json(cfg.sections[s].kv[k].value);
      if (!strcmp(cfg.sections[s].name, "sweep") && strchr(cfg.sections[s].kv[k].key, '.')) {
        /* a [sweep] axis takes the --grid path */
        size_t len = strlen(cfg.sections[s].kv[k].key) + strlen(cfg.sections[s].kv[k].value) + 2;
        char *g = malloc(len);
        if (g) {
          snprintf(g, len, "%s=%s", cfg.sections[s].kv[k].key, cfg.sections[s].kv[k].value);
          grid(g);
          free(g);
        }
      }
    }
  hcl_config_free(&cfg);
  if (grid_arg) grid(grid_arg);
  free(copy);
  return 0;
}
