/* Plugin loader: check each *.so of the search path (a regular file whose
 * ELF structure dlopen can map without faulting, elf_check.c), dlopen it,
 * call hcl_plugin_init with the host table, and check the descriptor before
 * anything else reads it. Every rejection or skipped entry names the file
 * and the reason (llama.cpp learned that a silent skip costs users hours). */
#include "elf_check.h"
#include "graph.h"
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HCL_BUILD_PLUGIN_DIR
#define HCL_BUILD_PLUGIN_DIR ""
#endif
#ifndef HCL_INSTALL_PLUGIN_DIR
#define HCL_INSTALL_PLUGIN_DIR ""
#endif
#ifndef HCL_BUILD_DIR
#define HCL_BUILD_DIR ""
#endif
#ifndef HCL_INSTALL_BINDIR
#define HCL_INSTALL_BINDIR "bin"
#endif
#ifndef HCL_INSTALL_LIBDIR
#define HCL_INSTALL_LIBDIR "lib"
#endif

/* Larger than any plugin; the whole file is read to be checked and hashed. */
#define HCL_PLUGIN_MAX_BYTES ((off_t)1 << 30)

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

/* A model that describes a graph instead of forward and backward. */
static int graph_only(const hcl_model_vt *vt) {
  return vt->struct_size >= HCL_END_OF(hcl_model_vt, graph) && vt->graph && !vt->forward &&
         !vt->backward;
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
    if (size >= need && graph_only(vt))
      missing = !vt->create     ? "create"
                : !vt->destroy  ? "destroy"
                : !vt->n_params ? "n_params"
                : !vt->out_dim  ? "out_dim"
                : !vt->blocks   ? "blocks"
                : !vt->init     ? "init"
                                : NULL;
    else if (size >= need)
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

/* What a non-regular file is, for the reason it is skipped. */
static const char *file_kind(mode_t m) {
  return S_ISDIR(m)    ? "a directory"
         : S_ISFIFO(m) ? "a FIFO (named pipe)"
         : S_ISSOCK(m) ? "a socket"
         : S_ISCHR(m)  ? "a character device"
         : S_ISBLK(m)  ? "a block device"
                       : "not a regular file";
}

/* The whole file, read through one descriptor opened without blocking (a
 * FIFO must not hang the scan) after fstat says it is a regular file. */
static hcl_status read_plugin_file(hcl_ctx *ctx, const char *path, unsigned char **data,
                                   size_t *size) {
  *data = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  hcl_status rc = HCL_OK;
  unsigned char *buf = NULL;
  size_t got = 0;
  if (fstat(fd, &st) != 0)
    rc = hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    rc = hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: %s, not a plugin file; skipped", path,
                  file_kind(st.st_mode));
  else if (st.st_size > HCL_PLUGIN_MAX_BYTES)
    rc = hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: %lld bytes, larger than any plugin; skipped", path,
                  (long long)st.st_size);
  else if (!(buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
    rc = hcl_fail(ctx, HCL_ERR_NOMEM, "%s: out of memory reading the file", path);
  while (rc == HCL_OK && got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      rc = hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: read error: %s", path,
                    n < 0 ? strerror(errno) : "the file shrank while being read");
      break;
    }
    got += (size_t)n;
  }
  close(fd);
  if (rc != HCL_OK) {
    free(buf);
    return rc;
  }
  *data = buf;
  *size = got;
  return HCL_OK;
}

hcl_status hcl_plugin_load(hcl_ctx *ctx, const char *path, hcl_plugin *out) {
  memset(out, 0, sizeof *out);
  if (!path || strlen(path) >= sizeof out->path)
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin path missing or too long",
                    path ? path : "(null)");
  /* dlopen faults (SIGBUS, no error) on a truncated or corrupt file: check
   * the bytes first, and hash the same bytes for the manifest. */
  unsigned char *bytes;
  size_t size;
  HCL_TRY(read_plugin_file(ctx, path, &bytes, &size));
  char why[256];
  if (!hcl_elf_check(bytes, size, why, sizeof why)) {
    free(bytes);
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: not a loadable shared object: %s", path, why);
  }
  hcl_sha256_hex(bytes, size, out->sha256);
  free(bytes);
  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    memset(out, 0, sizeof *out);
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: dlopen failed: %s", path, e ? e : "unknown error");
  }
  hcl_plugin_init_fn init;
  void *sym = dlsym(h, "hcl_plugin_init");
  memcpy(&init, &sym, sizeof init); /* object -> function pointer without a cast warning */
  if (!sym) {
    dlclose(h);
    memset(out, 0, sizeof *out);
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
  if (rc == HCL_OK && d->kind == HCL_PLUGIN_MODEL && graph_only(d->vt))
    rc = hcl_graph_wrap(ctx, path, d, &d); /* the runtime supplies forward and backward */
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

/* Unloads a loaded plugin, releasing its graph wrapper first. */
static void plugin_close(hcl_plugin *p) {
  hcl_graph_unwrap(p->desc);
  dlclose(p->handle);
}

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

/* Entries named *.so that are no plugin file: a dangling link, a link loop,
 * a directory, a FIFO... Each is listed with the reason, never opened (a
 * FIFO would block the open). Returns 1 with the line in why, else 0. */
static int skip_reason(const char *path, char *why, size_t wl) {
  struct stat lst, st;
  if (lstat(path, &lst) != 0) {
    snprintf(why, wl, "%s: cannot stat: %s; skipped", path, strerror(errno));
    return 1;
  }
  if (stat(path, &st) != 0) {
    int e = errno;
    char to[PATH_MAX];
    ssize_t n = S_ISLNK(lst.st_mode) ? readlink(path, to, sizeof to - 1) : -1;
    to[n > 0 ? n : 0] = 0;
    if (e == ELOOP)
      snprintf(why, wl, "%s: symbolic link loop; skipped", path);
    else if (e == ENOENT && S_ISLNK(lst.st_mode))
      snprintf(why, wl, "%s: dangling symbolic link (to %s); skipped", path, to);
    else
      snprintf(why, wl, "%s: cannot stat: %s; skipped", path, strerror(e));
    return 1;
  }
  if (S_ISREG(st.st_mode)) return 0;
  snprintf(why, wl, "%s: %s%s, not a plugin file; skipped", path, file_kind(st.st_mode),
           S_ISLNK(lst.st_mode) ? " (through a symbolic link)" : "");
  return 1;
}

/* Scan one directory: its *.so files in name order, named through the
 * directory's real path (so a relative entry such as "." shows where it
 * pointed). `explicit` directories (user-given) that can not be opened are
 * reported; built-in ones that do not exist are skipped silently. */
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

  DIR *dh = opendir(real);
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
    char path[PATH_MAX], why[2 * PATH_MAX + 128];
    int len = snprintf(path, sizeof path, "%s/%s", real, names[i]);
    if (len < 0 || (size_t)len >= sizeof path) continue;
    if (skip_reason(path, why, sizeof why)) {
      if (!add_rejected(reg, why)) rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
      continue;
    }
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
      plugin_close(&p);
      if (!add_rejected(reg, msg)) rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of memory");
      continue;
    }
    hcl_plugin *np = realloc(reg->plugins, (reg->n + 1) * sizeof *np);
    if (!np) {
      plugin_close(&p);
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

/* The real folder of the running program and its file name; 0 if unknown. */
static int exe_location(char *dir, size_t len, char *base, size_t blen) {
  char exe[PATH_MAX];
  if (!realpath("/proc/self/exe", exe)) return 0;
  char *slash = strrchr(exe, '/');
  if (!slash || (size_t)(slash - exe) >= len || strlen(slash + 1) >= blen) return 0;
  memcpy(dir, exe, (size_t)(slash - exe));
  dir[slash - exe] = 0;
  strcpy(base, slash + 1);
  return 1;
}

/* 1 when the running program was built in this build tree and runs from it
 * (the command in the build folder, the tests one folder below): only then
 * are the build tree's plugins searched. An installed copy never looks into
 * a build folder, where a stale or planted .so would run its constructor. */
static int running_from_build_tree(void) {
  char dir[PATH_MAX], base[256], build[PATH_MAX], tests[PATH_MAX + 8];
  if (!*HCL_BUILD_DIR || !exe_location(dir, sizeof dir, base, sizeof base) ||
      !realpath(HCL_BUILD_DIR, build))
    return 0;
  snprintf(tests, sizeof tests, "%s/tests", build);
  return !strcmp(dir, build) || !strcmp(dir, tests);
}

/* An installed `hiercl` at <prefix>/bin finds <prefix>/lib/hiercl/plugins,
 * wherever the prefix was moved (cmake --install --prefix). Other programs
 * linking the library do not guess. */
static void relocated_install_dir(char *out, size_t len) {
  char dir[PATH_MAX], base[256];
  size_t nb = strlen(HCL_INSTALL_BINDIR);
  out[0] = 0;
  if (!exe_location(dir, sizeof dir, base, sizeof base) || strcmp(base, "hiercl")) return;
  size_t nd = strlen(dir);
  if (nd <= nb || dir[nd - nb - 1] != '/' || strcmp(dir + nd - nb, HCL_INSTALL_BINDIR)) return;
  dir[nd - nb - 1] = 0;
  snprintf(out, len, "%s/%s/hiercl/plugins", dir, HCL_INSTALL_LIBDIR);
}

hcl_status hcl_registry_scan(hcl_ctx *ctx, const char *extra_path, hcl_registry *out) {
  memset(out, 0, sizeof *out);
  char **seen = NULL;
  size_t n_seen = 0;
  char relocated[PATH_MAX + 64];
  relocated_install_dir(relocated, sizeof relocated);
  hcl_status rc = scan_list(ctx, out, extra_path, 1, &seen, &n_seen);
  if (rc == HCL_OK) rc = scan_list(ctx, out, getenv("HIERCL_PLUGIN_PATH"), 1, &seen, &n_seen);
  if (rc == HCL_OK && running_from_build_tree())
    rc = scan_list(ctx, out, HCL_BUILD_PLUGIN_DIR, 0, &seen, &n_seen);
  if (rc == HCL_OK) rc = scan_list(ctx, out, relocated, 0, &seen, &n_seen);
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
    if (reg->plugins[i].handle) plugin_close(&reg->plugins[i]);
  for (size_t i = 0; i < reg->n_rejected; i++) free(reg->rejected[i]);
  free(reg->plugins);
  free(reg->rejected);
  memset(reg, 0, sizeof *reg);
}
