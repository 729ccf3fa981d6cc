/* Plugin loader: dlopen each *.so of the search path, call hcl_plugin_init
 * with the host table, and check the descriptor before anything else reads
 * it. Every rejection names the file and the reason (llama.cpp learned that
 * a silent skip costs users hours). */
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef HCL_BUILD_PLUGIN_DIR
#define HCL_BUILD_PLUGIN_DIR ""
#endif
#ifndef HCL_INSTALL_PLUGIN_DIR
#define HCL_INSTALL_PLUGIN_DIR ""
#endif

/* Bytes of a struct up to and including `field`. */
#define HCL_END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

static int valid_plugin_name(const char *s) {
  if (!s || !*s) return 0;
  for (; *s; s++)
    if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return 0;
  return 1;
}

static const char *kind_name(uint32_t kind) {
  return kind == HCL_PLUGIN_TARGET ? "target" : kind == HCL_PLUGIN_MODEL ? "model" : "?";
}

/* The parameter table: lower-case keys, known types, ENUM choices, valid
 * defaults; so a broken schema fails at load time, not in a user's run. */
static hcl_status check_schema(hcl_ctx *ctx, const char *path, const hcl_plugin_desc *d) {
  for (size_t i = 0; d->params && d->params[i].key; i++) {
    const hcl_param_desc *p = &d->params[i];
    if (!valid_plugin_name(p->key))
      return hcl_fail(ctx, HCL_ERR_PLUGIN,
                      "%s: plugin '%s': parameter key '%s' must match [a-z0-9_]+ (iniparser "
                      "lower-cases keys)",
                      path, d->name, p->key);
    if (!strcmp(p->key, "plugin"))
      return hcl_fail(ctx, HCL_ERR_PLUGIN,
                      "%s: plugin '%s': parameter key 'plugin' is reserved (it names the plugin)",
                      path, d->name);
    for (size_t j = 0; j < i; j++)
      if (!strcmp(d->params[j].key, p->key))
        return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin '%s': parameter '%s' declared twice", path,
                        d->name, p->key);
    if (p->type < HCL_PARAM_INT || p->type > HCL_PARAM_LIST)
      return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin '%s': parameter '%s' has unknown type %d",
                      path, d->name, p->key, (int)p->type);
    if (p->type == HCL_PARAM_ENUM && (!p->choices || !p->choices[0]))
      return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin '%s': enum parameter '%s' has no choices",
                      path, d->name, p->key);
    char why[512];
    if (p->def && !hcl_param_check_value(p, p->def, why, sizeof why))
      return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin '%s': default '%s' of '%s' is invalid: %s",
                      path, d->name, p->def, p->key, why);
  }
  return HCL_OK;
}

/* The vtable: big enough for the mandatory entries, and those are set. */
static hcl_status check_vt(hcl_ctx *ctx, const char *path, const hcl_plugin_desc *d) {
  if (!d->vt) return hcl_fail(ctx, HCL_ERR_ABI, "%s: plugin '%s': vt is NULL", path, d->name);
  uint32_t size = *(const uint32_t *)d->vt; /* struct_size is first in both vtables */
  const char *missing = NULL;
  size_t need;
  if (d->kind == HCL_PLUGIN_TARGET) {
    const hcl_target_vt *vt = d->vt;
    need = HCL_END_OF(hcl_target_vt, sample);
    if (size >= need)
      missing = !vt->create    ? "create"
                : !vt->destroy ? "destroy"
                : !vt->info    ? "info"
                : !vt->sample  ? "sample"
                               : NULL;
  } else {
    const hcl_model_vt *vt = d->vt;
    need = HCL_END_OF(hcl_model_vt, backward);
    if (size >= need)
      missing = !vt->create     ? "create"
                : !vt->destroy  ? "destroy"
                : !vt->n_params ? "n_params"
                : !vt->out_dim  ? "out_dim"
                : !vt->blocks   ? "blocks"
                : !vt->init     ? "init"
                : !vt->forward  ? "forward"
                : !vt->backward ? "backward"
                                : NULL;
  }
  if (size < need)
    return hcl_fail(ctx, HCL_ERR_ABI,
                    "%s: plugin '%s': %s vtable struct_size %u too small (host needs at least "
                    "%zu)",
                    path, d->name, kind_name(d->kind), size, need);
  if (missing)
    return hcl_fail(ctx, HCL_ERR_ABI, "%s: plugin '%s': %s vtable has no '%s' function", path,
                    d->name, kind_name(d->kind), missing);
  return HCL_OK;
}

/* The checks in the order a reader may rely on: each one makes the next
 * field safe to read. */
static hcl_status check_desc(hcl_ctx *ctx, const char *path, const hcl_plugin_desc *d) {
  if (d->abi_version != HCL_PLUGIN_ABI_VERSION)
    return hcl_fail(ctx, HCL_ERR_ABI, "%s: plugin ABI %u, host %u", path, d->abi_version,
                    HCL_PLUGIN_ABI_VERSION);
  size_t need = HCL_END_OF(hcl_plugin_desc, vt);
  if (d->struct_size < need)
    return hcl_fail(ctx, HCL_ERR_ABI,
                    "%s: descriptor struct_size %u too small (host needs at least %zu)", path,
                    d->struct_size, need);
  if (d->kind != HCL_PLUGIN_TARGET && d->kind != HCL_PLUGIN_MODEL)
    return hcl_fail(ctx, HCL_ERR_ABI, "%s: plugin kind %u is neither target (%d) nor model (%d)",
                    path, d->kind, HCL_PLUGIN_TARGET, HCL_PLUGIN_MODEL);
  if (!valid_plugin_name(d->name))
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: bad plugin name '%s' (must match [a-z0-9_]+)", path,
                    d->name ? d->name : "(null)");
  HCL_TRY(check_vt(ctx, path, d));
  return check_schema(ctx, path, d);
}

/* sha256 of the file's bytes, for the manifest. */
static hcl_status hash_file(hcl_ctx *ctx, const char *path, char out[65]) {
  FILE *f = fopen(path, "rb");
  if (!f) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0, got;
  do {
    if (cap - len < 65536) {
      char *nb = realloc(buf, cap ? 2 * cap : 1 << 20);
      if (!nb) {
        free(buf);
        fclose(f);
        return hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory hashing the file", path);
      }
      buf = nb;
      cap = cap ? 2 * cap : 1 << 20;
    }
    got = fread(buf + len, 1, cap - len, f);
    len += got;
  } while (got > 0);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return hcl_fail(ctx, HCL_ERR_IO, "%s: read error while hashing", path);
  }
  hcl_sha256_hex(buf, len, out);
  free(buf);
  return HCL_OK;
}

hcl_status hcl_plugin_load(hcl_ctx *ctx, const char *path, hcl_plugin *out) {
  memset(out, 0, sizeof *out);
  if (!path || strlen(path) >= sizeof out->path)
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin path missing or too long",
                    path ? path : "(null)");
  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: dlopen failed: %s", path, e ? e : "unknown error");
  }
  hcl_plugin_init_fn init;
  void *sym = dlsym(h, "hcl_plugin_init");
  memcpy(&init, &sym, sizeof init); /* object -> function pointer without a cast warning */
  if (!sym) {
    dlclose(h);
    return hcl_fail(ctx, HCL_ERR_PLUGIN,
                    "%s: no entry point 'hcl_plugin_init' (define it with HCL_PLUGIN_ENTRY)", path);
  }
  const char *msg = NULL;
  const hcl_plugin_desc *d = init(hcl_host_api_get(), &msg);
  hcl_status rc = HCL_OK;
  if (!d)
    rc = hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: init failed: %s", path,
                  msg && *msg ? msg : "(the plugin gave no message)");
  else
    rc = check_desc(ctx, path, d);
  if (rc == HCL_OK) rc = hash_file(ctx, path, out->sha256);
  if (rc != HCL_OK) {
    dlclose(h);
    memset(out, 0, sizeof *out);
    return rc;
  }
  strcpy(out->path, path);
  out->handle = h;
  out->desc = d;
  return HCL_OK;
}

/* ---- the registry -------------------------------------------------------- */

static int add_rejected(hcl_registry *reg, const char *msg) {
  char **r = realloc(reg->rejected, (reg->n_rejected + 1) * sizeof *r);
  if (!r) return 0;
  reg->rejected = r;
  if (!(r[reg->n_rejected] = strdup(msg))) return 0;
  reg->n_rejected++;
  return 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_so(const char *s) {
  size_t n = strlen(s);
  return n > 3 && !strcmp(s + n - 3, ".so");
}

/* Scan one directory: its *.so files in name order. `explicit` directories
 * (user-given) that can not be opened are reported; built-in ones that do not
 * exist are skipped silently. */
static hcl_status scan_dir(hcl_ctx *ctx, hcl_registry *reg, const char *dir, int explicit_dir,
                           char ***seen, size_t *n_seen) {
  char real[PATH_MAX];
  if (!realpath(dir, real)) {
    if (explicit_dir) {
      char msg[PATH_MAX + 128];
      snprintf(msg, sizeof msg, "%s: cannot open plugin directory: %s", dir, strerror(errno));
      if (!add_rejected(reg, msg)) return hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
    }
    return HCL_OK;
  }
  for (size_t i = 0; i < *n_seen; i++)
    if (!strcmp((*seen)[i], real)) return HCL_OK; /* same directory twice in the path */
  char **ns = realloc(*seen, (*n_seen + 1) * sizeof *ns);
  if (!ns || !(ns[*n_seen] = strdup(real))) {
    if (ns) *seen = ns;
    return hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
  }
  *seen = ns;
  (*n_seen)++;

  DIR *dh = opendir(dir);
  if (!dh) {
    if (explicit_dir) {
      char msg[PATH_MAX + 128];
      snprintf(msg, sizeof msg, "%s: cannot open plugin directory: %s", dir, strerror(errno));
      if (!add_rejected(reg, msg)) return hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
    }
    return HCL_OK;
  }
  char **names = NULL;
  size_t n = 0;
  hcl_status rc = HCL_OK;
  for (struct dirent *e; (e = readdir(dh));) {
    if (!ends_with_so(e->d_name)) continue;
    char **nn = realloc(names, (n + 1) * sizeof *nn);
    if (!nn || !(nn[n] = strdup(e->d_name))) {
      if (nn) names = nn;
      rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
      break;
    }
    names = nn;
    n++;
  }
  closedir(dh);
  if (rc == HCL_OK) qsort(names, n, sizeof *names, cmp_str);

  for (size_t i = 0; i < n && rc == HCL_OK; i++) {
    char path[PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    struct stat st;
    if (len < 0 || (size_t)len >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    hcl_plugin p;
    if (hcl_plugin_load(ctx, path, &p) != HCL_OK) {
      if (!add_rejected(reg, hcl_errmsg(ctx))) rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
      continue;
    }
    const hcl_plugin *prev = hcl_registry_find(reg, p.desc->name, p.desc->kind);
    if (prev) {
      char msg[3 * PATH_MAX];
      snprintf(msg, sizeof msg, "%s: duplicate plugin '%s' (also in %s)", path, p.desc->name,
               prev->path);
      dlclose(p.handle);
      if (!add_rejected(reg, msg)) rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
      continue;
    }
    hcl_plugin *np = realloc(reg->plugins, (reg->n + 1) * sizeof *np);
    if (!np) {
      dlclose(p.handle);
      rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
      break;
    }
    reg->plugins = np;
    reg->plugins[reg->n++] = p;
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

/* Scan each entry of a colon-separated list. */
static hcl_status scan_list(hcl_ctx *ctx, hcl_registry *reg, const char *list, int explicit_dir,
                            char ***seen, size_t *n_seen) {
  if (!list || !*list) return HCL_OK;
  char *copy = strdup(list);
  if (!copy) return hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
  hcl_status rc = HCL_OK;
  char *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir && rc == HCL_OK;
       dir = strtok_r(NULL, ":", &save))
    rc = scan_dir(ctx, reg, dir, explicit_dir, seen, n_seen);
  free(copy);
  return rc;
}

hcl_status hcl_registry_scan(hcl_ctx *ctx, const char *extra_path, hcl_registry *out) {
  memset(out, 0, sizeof *out);
  char **seen = NULL;
  size_t n_seen = 0;
  hcl_status rc = scan_list(ctx, out, extra_path, 1, &seen, &n_seen);
  if (rc == HCL_OK) rc = scan_list(ctx, out, getenv("HIERCL_PLUGIN_PATH"), 1, &seen, &n_seen);
  if (rc == HCL_OK) rc = scan_list(ctx, out, HCL_BUILD_PLUGIN_DIR, 0, &seen, &n_seen);
  if (rc == HCL_OK) rc = scan_list(ctx, out, HCL_INSTALL_PLUGIN_DIR, 0, &seen, &n_seen);
  for (size_t i = 0; i < n_seen; i++) free(seen[i]);
  free(seen);
  if (rc != HCL_OK) hcl_registry_free(out);
  return rc;
}

const hcl_plugin *hcl_registry_find(const hcl_registry *reg, const char *name, uint32_t kind) {
  for (size_t i = 0; reg && name && i < reg->n; i++) {
    const hcl_plugin_desc *d = reg->plugins[i].desc;
    if ((kind == 0 || d->kind == kind) && !strcmp(d->name, name)) return &reg->plugins[i];
  }
  return NULL;
}

void hcl_registry_free(hcl_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->n; i++)
    if (reg->plugins[i].handle) dlclose(reg->plugins[i].handle);
  for (size_t i = 0; i < reg->n_rejected; i++) free(reg->rejected[i]);
  free(reg->plugins);
  free(reg->rejected);
  memset(reg, 0, sizeof *reg);
}
