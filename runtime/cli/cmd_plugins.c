/* `hiercl plugins` and `hiercl describe`: what the loader found, what it
 * rejected and why, and the parameters a plugin declares (gst-inspect).
 * Neither needs a device nor compiles a kernel: they run with a NULL ctx. */
#include "commands.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static const char *kind_str(uint32_t kind) {
  return kind == HCL_PLUGIN_TARGET ? "target" : kind == HCL_PLUGIN_MODEL ? "model" : "?";
}

static const char *type_str(hcl_param_type t) {
  switch (t) {
  case HCL_PARAM_INT: return "int";
  case HCL_PARAM_DOUBLE: return "double";
  case HCL_PARAM_BOOL: return "bool";
  case HCL_PARAM_STRING: return "string";
  case HCL_PARAM_ENUM: return "enum";
  case HCL_PARAM_LIST: return "list";
  }
  return "?";
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* Options shared by both commands. argv[0] is the subcommand's name. */
typedef struct cli_opts {
  const char *plugin_path;
  const char *name; /* describe: the positional NAME */
  int json;
} cli_opts;

/* Returns -1 to go on, else the exit status (help or a usage error). */
static int parse_opts(int argc, char **argv, const char *usage, int want_name, cli_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json"))
      o->json = 1;
    else if (!strcmp(a, "--plugin-path")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "hiercl %s: --plugin-path needs a value\nusage: %s\n", argv[0], usage);
        return HCL_EXIT_USAGE;
      }
      o->plugin_path = argv[++i];
    } else if (!strncmp(a, "--plugin-path=", 14))
      o->plugin_path = a + 14;
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      printf("usage: %s\n", usage);
      return HCL_EXIT_OK;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "hiercl %s: unknown option '%s'\nusage: %s\n", argv[0], a, usage);
      return HCL_EXIT_USAGE;
    } else if (want_name && !o->name)
      o->name = a;
    else {
      fprintf(stderr, "hiercl %s: unexpected argument '%s'\nusage: %s\n", argv[0], a, usage);
      return HCL_EXIT_USAGE;
    }
  }
  if (want_name && !o->name) {
    fprintf(stderr, "hiercl %s: which plugin? give its name\nusage: %s\n", argv[0], usage);
    return HCL_EXIT_USAGE;
  }
  return -1;
}

/* Plugins ordered by kind, then name, for stable listings. */
static int cmp_plugin(const void *a, const void *b) {
  const hcl_plugin *x = *(const hcl_plugin *const *)a, *y = *(const hcl_plugin *const *)b;
  if (x->desc->kind != y->desc->kind) return x->desc->kind < y->desc->kind ? -1 : 1;
  return strcmp(x->desc->name, y->desc->name);
}

static const hcl_plugin **sorted_plugins(const hcl_registry *reg) {
  const hcl_plugin **v = malloc((reg->n ? reg->n : 1) * sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < reg->n; i++) v[i] = &reg->plugins[i];
  qsort(v, reg->n, sizeof *v, cmp_plugin);
  return v;
}

static int scan(const cli_opts *o, const char *cmd, hcl_registry *reg) {
  if (hcl_registry_scan(NULL, o->plugin_path, reg) != HCL_OK) {
    fprintf(stderr, "hiercl %s: %s\n", cmd, hcl_errmsg(NULL));
    return 0;
  }
  return 1;
}

static void print_json_list(const hcl_registry *reg, const hcl_plugin **v) {
  printf("{\"plugins\": [");
  for (size_t i = 0; i < reg->n; i++) {
    const hcl_plugin_desc *d = v[i]->desc;
    printf("%s\n  {\"kind\": ", i ? "," : "");
    hcl_json_str(stdout, kind_str(d->kind));
    printf(", \"name\": ");
    hcl_json_str(stdout, d->name);
    printf(", \"version\": ");
    hcl_json_str(stdout, d->version);
    printf(", \"file\": ");
    hcl_json_str(stdout, v[i]->path);
    printf(", \"sha256\": ");
    hcl_json_str(stdout, v[i]->sha256);
    printf(", \"summary\": ");
    hcl_json_str(stdout, d->summary);
    printf("}");
  }
  printf("%s],\n \"rejected\": [", reg->n ? "\n" : "");
  for (size_t i = 0; i < reg->n_rejected; i++) {
    printf("%s\n  ", i ? "," : "");
    hcl_json_str(stdout, reg->rejected[i]);
  }
  printf("%s]}\n", reg->n_rejected ? "\n" : "");
}

static void print_table(const hcl_registry *reg, const hcl_plugin **v) {
  int wn = 4, wv = 7;
  for (size_t i = 0; i < reg->n; i++) {
    int n = (int)strlen(v[i]->desc->name), ver = (int)strlen(or_dash(v[i]->desc->version));
    if (n > wn) wn = n;
    if (ver > wv) wv = ver;
  }
  if (reg->n == 0)
    printf("no plugins found (add a directory with --plugin-path or HIERCL_PLUGIN_PATH)\n");
  else
    printf("%-6s  %-*s  %-*s  %s\n", "KIND", wn, "NAME", wv, "VERSION", "FILE");
  for (size_t i = 0; i < reg->n; i++)
    printf("%-6s  %-*s  %-*s  %s\n", kind_str(v[i]->desc->kind), wn, v[i]->desc->name, wv,
           or_dash(v[i]->desc->version), v[i]->path);
  if (reg->n_rejected) {
    printf("\nrejected:\n");
    for (size_t i = 0; i < reg->n_rejected; i++) printf("  %s\n", reg->rejected[i]);
  }
}

int hcl_cmd_plugins(int argc, char **argv) {
  static const char usage[] = "hiercl plugins [--plugin-path DIR[:DIR...]] [--json]";
  cli_opts o;
  int st = parse_opts(argc, argv, usage, 0, &o);
  if (st >= 0) return st;
  hcl_registry reg;
  if (!scan(&o, "plugins", &reg)) return HCL_EXIT_FAIL;
  const hcl_plugin **v = sorted_plugins(&reg);
  if (!v) {
    hcl_registry_free(&reg);
    fprintf(stderr, "hiercl plugins: out of memory\n");
    return HCL_EXIT_FAIL;
  }
  if (o.json)
    print_json_list(&reg, v);
  else
    print_table(&reg, v);
  free(v);
  hcl_registry_free(&reg);
  return HCL_EXIT_OK;
}

/* ---- describe ------------------------------------------------------------ */

/* The model's extra training algorithms, if its vtable is new enough. */
static const char *const *model_algorithms(const hcl_plugin_desc *d) {
  if (d->kind != HCL_PLUGIN_MODEL) return NULL;
  const hcl_model_vt *vt = d->vt;
  size_t need = offsetof(hcl_model_vt, algorithms) + sizeof vt->algorithms;
  return vt->struct_size >= need ? vt->algorithms : NULL;
}

static int has_range(const hcl_param_desc *p) {
  return p->lo <= p->hi &&
         (p->type == HCL_PARAM_INT || p->type == HCL_PARAM_DOUBLE || p->type == HCL_PARAM_LIST);
}

static void describe_text(const hcl_plugin *pl) {
  const hcl_plugin_desc *d = pl->desc;
  const char *sec = kind_str(d->kind);
  printf("%s %s (%s plugin)\n", d->name, or_dash(d->version), sec);
  if (d->summary && *d->summary) printf("  %s\n", d->summary);
  printf("\nfile:      %s\nsha256:    %s\n", pl->path, pl->sha256);
  printf("citation:  %s\n", or_dash(d->citation));
  const char *const *alg = model_algorithms(d);
  if (alg && alg[0]) {
    printf("algorithms: sgd (the runtime's)");
    for (size_t i = 0; alg[i]; i++) printf(", %s", alg[i]);
    printf("\n");
  }
  printf("\nconfig: [%s]\n  plugin = %s\n", sec, d->name);
  if (!d->params || !d->params[0].key) {
    printf("\nparameters: none\n");
    return;
  }
  printf("\nparameters (keys of [%s]):\n", sec);
  for (size_t i = 0; d->params[i].key; i++) {
    const hcl_param_desc *p = &d->params[i];
    printf("  %s (%s", p->key, type_str(p->type));
    if (p->def)
      printf(", default %s", *p->def ? p->def : "\"\"");
    else
      printf(", required");
    if (has_range(p)) printf(", range [%.15g, %.15g]", p->lo, p->hi);
    if (p->type == HCL_PARAM_ENUM && p->choices) {
      printf(", choices: ");
      for (size_t c = 0; p->choices[c]; c++) printf("%s%s", c ? ", " : "", p->choices[c]);
    }
    printf(")\n");
    if (p->help && *p->help) printf("      %s\n", p->help);
  }
}

static void describe_json(const hcl_plugin *pl) {
  const hcl_plugin_desc *d = pl->desc;
  printf("{\"name\": ");
  hcl_json_str(stdout, d->name);
  printf(", \"kind\": ");
  hcl_json_str(stdout, kind_str(d->kind));
  printf(", \"version\": ");
  hcl_json_str(stdout, d->version);
  printf(",\n \"file\": ");
  hcl_json_str(stdout, pl->path);
  printf(", \"sha256\": ");
  hcl_json_str(stdout, pl->sha256);
  printf(",\n \"summary\": ");
  hcl_json_str(stdout, d->summary);
  printf(",\n \"citation\": ");
  hcl_json_str(stdout, d->citation);
  printf(",\n \"section\": ");
  hcl_json_str(stdout, kind_str(d->kind));
  const char *const *alg = model_algorithms(d);
  if (alg) {
    printf(",\n \"algorithms\": [");
    for (size_t i = 0; alg[i]; i++) {
      printf("%s", i ? ", " : "");
      hcl_json_str(stdout, alg[i]);
    }
    printf("]");
  }
  printf(",\n \"params\": [");
  for (size_t i = 0; d->params && d->params[i].key; i++) {
    const hcl_param_desc *p = &d->params[i];
    printf("%s\n  {\"key\": ", i ? "," : "");
    hcl_json_str(stdout, p->key);
    printf(", \"type\": ");
    hcl_json_str(stdout, type_str(p->type));
    printf(", \"default\": ");
    if (p->def)
      hcl_json_str(stdout, p->def);
    else
      printf("null");
    printf(", \"required\": %s", p->def ? "false" : "true");
    if (has_range(p)) {
      printf(", \"min\": ");
      hcl_json_num(stdout, p->lo);
      printf(", \"max\": ");
      hcl_json_num(stdout, p->hi);
    }
    if (p->type == HCL_PARAM_ENUM && p->choices) {
      printf(", \"choices\": [");
      for (size_t c = 0; p->choices[c]; c++) {
        printf("%s", c ? ", " : "");
        hcl_json_str(stdout, p->choices[c]);
      }
      printf("]");
    }
    printf(", \"help\": ");
    hcl_json_str(stdout, p->help);
    printf("}");
  }
  printf("]}\n");
}

/* Rejected files whose name is NAME.so: the likely reason describe failed. */
static void print_rejections_for(const hcl_registry *reg, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < reg->n_rejected; i++) {
    const char *r = reg->rejected[i];
    const char *colon = strstr(r, ".so: ");
    if (!colon) continue;
    const char *slash = colon;
    while (slash > r && slash[-1] != '/') slash--;
    if ((size_t)(colon - slash) == n && !strncmp(slash, name, n))
      fprintf(stderr, "  rejected: %s\n", r);
  }
}

int hcl_cmd_describe(int argc, char **argv) {
  static const char usage[] = "hiercl describe NAME [--plugin-path DIR[:DIR...]] [--json]";
  cli_opts o;
  int st = parse_opts(argc, argv, usage, 1, &o);
  if (st >= 0) return st;
  hcl_registry reg;
  if (!scan(&o, "describe", &reg)) return HCL_EXIT_FAIL;
  const hcl_plugin *t = hcl_registry_find(&reg, o.name, HCL_PLUGIN_TARGET);
  const hcl_plugin *m = hcl_registry_find(&reg, o.name, HCL_PLUGIN_MODEL);
  if (!t && !m) {
    const hcl_plugin **v = sorted_plugins(&reg);
    fprintf(stderr, "hiercl describe: unknown plugin '%s' (known:", o.name);
    for (size_t i = 0; v && i < reg.n; i++)
      fprintf(stderr, "%s %s", i ? "," : "", v[i]->desc->name);
    fprintf(stderr, "%s)\n", reg.n ? "" : " none; see `hiercl plugins`");
    print_rejections_for(&reg, o.name);
    free(v);
    hcl_registry_free(&reg);
    return HCL_EXIT_USAGE;
  }
  /* A target and a model may share a name: describe both. */
  if (o.json && t && m) printf("[");
  if (t) o.json ? describe_json(t) : describe_text(t);
  if (t && m) printf(o.json ? "," : "\n");
  if (m) o.json ? describe_json(m) : describe_text(m);
  if (o.json && t && m) printf("]\n");
  hcl_registry_free(&reg);
  return HCL_EXIT_OK;
}
