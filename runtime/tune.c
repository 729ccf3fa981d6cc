/* CLBlast kernel parameters per device, applied when a ctx is created.
 *
 * File: <cache dir>/clblast/<sha256 hex of "<CL_DEVICE_NAME>\n<CL_DRIVER_VERSION>">.ini
 *   # comments with '#' or ';'
 *   [Xgemm]                      <- a CLBlast kernel name (single precision)
 *   GEMMK = 0                    <- every parameter of that kernel, integers
 *   ...
 *   [GemmRoutine]
 *   XGEMM_MIN_INDIRECT_SIZE = 128
 * Each section goes to CLBlastOverrideParameters, which wants the complete
 * parameter set of its kernel (clblast_tuner_xgemm prints one).
 * Without a file, PoCL devices get the Xgemm set measured in
 * /work/shared/PERF-NOTES.md: CLBlast's database has no entry for PoCL's
 * vendor string, and its generic defaults are 5-9x slower there. GEMMK=1 is
 * never used on PoCL (it fails CLBlast's own tuner verification).
 *
 * CLBlast takes any integers and then builds broken kernels (or divides by
 * zero), so the values are checked first against the constraints of its own
 * tuner; a file that fails those checks, or later the self-check, is skipped
 * with one warning and the defaults below apply: a bad file never fails runs.
 *
 * CLBlast keeps overrides per device for the whole process, so each device is
 * configured once; the list below also tells the self-check (blas.c) that the
 * large-matrix kernel runs with parameters that CLBlast never shipped. */
#include "internal.h"

#include <clblast_c.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEVICES 32
#define MAX_KEYS 64
#define MAX_SECTIONS 16

static cl_device_id g_tuned[MAX_DEVICES];
static char g_source[MAX_DEVICES][1200]; /* where the parameters came from */
static int g_from_file[MAX_DEVICES];     /* 1: a parameter file, 0: the built-in set */
static size_t g_n_tuned;

int hcl_blas_tuned(cl_device_id dev);
static int hcl_blas_tuned_unlocked(cl_device_id dev) {
  for (size_t i = 0; i < g_n_tuned; i++)
    if (g_tuned[i] == dev) return 1;
  return 0;
}

int hcl_blas_tuned(cl_device_id dev) {
  hcl_clblast_lock(); /* the tables here and CLBlast's overrides are process-wide */
  int r = hcl_blas_tuned_unlocked(dev);
  hcl_clblast_unlock();
  return r;
}

static void remember(cl_device_id dev, const char *source, int from_file) {
  size_t i = 0;
  while (i < g_n_tuned && g_tuned[i] != dev) i++;
  if (i == MAX_DEVICES) return;
  snprintf(g_source[i], sizeof g_source[0], "%s", source);
  g_from_file[i] = from_file;
  g_tuned[i] = dev;
  if (i == g_n_tuned) g_n_tuned++;
}

/* The Xgemm parameters measured best on PoCL (PERF-NOTES.md). */
static const char *const pocl_names[16] = {"GEMMK", "KREG",  "KWG",   "KWI", "MDIMA", "MDIMC",
                                           "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                           "STRM",  "STRN",  "VWM",   "VWN"};
static const size_t pocl_values[16] = {0, 1, 32, 2, 8, 8, 64, 32, 8, 128, 0, 0, 0, 0, 8, 4};

static int is_pocl(const hcl_device_info *d) {
  return strstr(d->platform, "Portable Computing Language") != NULL ||
         strstr(d->platform_vendor, "pocl") != NULL || strstr(d->version, "pocl") != NULL ||
         strstr(d->version, "PoCL") != NULL;
}

static hcl_status override(hcl_ctx *ctx, const char *where, const char *kernel, size_t n,
                           const char **names, const size_t *values) {
  CLBlastStatusCode st = CLBlastOverrideParameters(ctx->dev.device_id, kernel,
                                                   CLBlastPrecisionSingle, n, names, values);
  if (st != CLBlastSuccess)
    return hcl_fail(ctx, HCL_ERR_BLAS,
                    "%s: CLBlast refused the %zu parameters of [%s] on device %s: status %d%s",
                    where, n, kernel, ctx->dev.name, (int)st,
                    st == CLBlastMissingOverrideParameter ? " (the kernel has other parameters: "
                                                            "give all of them)"
                    : st == CLBlastInvalidOverrideKernel  ? " (unknown kernel name)"
                                                          : "");
  return HCL_OK;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

/* One [Kernel] section of a parameter file. */
typedef struct section {
  char kernel[64];
  int line; /* of its header, for messages */
  size_t n;
  char names[MAX_KEYS][64];
  size_t values[MAX_KEYS];
} section;

/* The value of `name` in the section, or -1 when absent. */
static long long get(const section *sc, const char *name) {
  for (size_t i = 0; i < sc->n; i++)
    if (!strcmp(sc->names[i], name)) return (long long)sc->values[i];
  return -1;
}

static int is_flag(const char *name) {
  static const char *const flags[] = {"GEMMK",       "SA",         "SB",   "STRM",
                                      "STRN",        "PADA",       "PADB", "TRA_PAD",
                                      "TRA_SHUFFLE", "PADTRA_PAD", NULL};
  for (size_t i = 0; flags[i]; i++)
    if (!strcmp(name, flags[i])) return 1;
  return 0;
}

/* Values CLBlast takes but that break its kernels or its host code: a zero
 * it divides by, a flag other than 0/1, a vector width it has no type for, a
 * tile that is no multiple of its work-group times its vector width (the
 * constraints of CLBlast's own tuner, src/tuning/kernels/xgemm*.hpp), a
 * work-group or local memory the device lacks. 1 when fine, else 0 with the
 * reason in why. */
static int check_section(const hcl_device_info *dev, int pocl, const section *sc, char *why,
                         size_t wl) {
  for (size_t i = 0; i < sc->n; i++) {
    const char *k = sc->names[i];
    size_t v = sc->values[i];
    int indirect = !strcmp(k, "XGEMM_MIN_INDIRECT_SIZE");
    if (is_flag(k) && v > 1) return snprintf(why, wl, "%s = %zu must be 0 or 1", k, v), 0;
    if (!is_flag(k) && !indirect && v == 0)
      return snprintf(why, wl, "%s = 0 (CLBlast divides by it)", k), 0;
    if (!indirect && v > 65536) return snprintf(why, wl, "%s = %zu is out of range", k, v), 0;
    if (!strncmp(k, "VW", 2) && (v & (v - 1) || v > 16))
      return snprintf(why, wl, "vector width %s = %zu is not 1, 2, 4, 8 or 16", k, v), 0;
  }
  /* tile % (a * b) == 0, named after CLBlast's constraints */
  struct rule {
    const char *kernel, *tile, *a, *b;
  };
  static const struct rule rules[] = {
      {"Xgemm", "KWG", "KWI", NULL},
      {"Xgemm", "MWG", "MDIMC", "VWM"},
      {"Xgemm", "NWG", "NDIMC", "VWN"},
      {"Xgemm", "MWG", "MDIMA", "VWM"},
      {"Xgemm", "NWG", "NDIMB", "VWN"},
      {"XgemmDirect", "WGD", "KWID", NULL},
      {"XgemmDirect", "WGD", "MDIMCD", "VWMD"},
      {"XgemmDirect", "WGD", "NDIMCD", "VWND"},
      {"XgemmDirect", "WGD", "MDIMAD", "VWMD"},
      {"XgemmDirect", "WGD", "NDIMBD", "VWND"},
  };
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    const struct rule *r = &rules[i];
    long long t = get(sc, r->tile), a = get(sc, r->a), b = r->b ? get(sc, r->b) : 1;
    if (strcmp(sc->kernel, r->kernel) || t < 0 || a <= 0 || b <= 0) continue;
    if (!strcmp(r->tile, "KWG") && get(sc, "GEMMK") == 1) continue; /* GEMMK=1 has no KWG loop */
    if (t % (a * b))
      return snprintf(why, wl, "%s = %lld is not a multiple of %s%s%s = %lld", r->tile, t, r->a,
                      r->b ? "*" : "", r->b ? r->b : "", a * b),
             0;
  }
  /* the loads of A and B: KWG (WGD) a multiple of (MDIMC*NDIMC)/MDIMA and /NDIMB */
  int direct = !strcmp(sc->kernel, "XgemmDirect");
  if (direct || !strcmp(sc->kernel, "Xgemm")) {
    long long mc = get(sc, direct ? "MDIMCD" : "MDIMC"), nc = get(sc, direct ? "NDIMCD" : "NDIMC");
    long long ma = get(sc, direct ? "MDIMAD" : "MDIMA"), nb = get(sc, direct ? "NDIMBD" : "NDIMB");
    long long kw = get(sc, direct ? "WGD" : "KWG");
    if (mc > 0 && nc > 0) {
      if ((size_t)(mc * nc) > dev->max_work_group && dev->max_work_group)
        return snprintf(why, wl, "a work-group of %lld x %lld exceeds the device's %zu", mc, nc,
                        dev->max_work_group),
               0;
      long long div[2] = {ma, nb};
      for (int j = 0; j < 2; j++)
        if (div[j] > 0 && get(sc, "GEMMK") != 1 &&
            ((mc * nc) % div[j] || (kw > 0 && kw % ((mc * nc) / div[j]))))
          return snprintf(why, wl, "the tile loads do not divide: %s*%s/%s must divide %s",
                          direct ? "MDIMCD" : "MDIMC", direct ? "NDIMCD" : "NDIMC",
                          j ? (direct ? "NDIMBD" : "NDIMB") : (direct ? "MDIMAD" : "MDIMA"),
                          direct ? "WGD" : "KWG"),
                 0;
    }
  }
  if (!strcmp(sc->kernel, "Xgemm")) {
    if (pocl && get(sc, "GEMMK") == 1)
      return snprintf(why, wl, "GEMMK = 1 fails CLBlast's own verification on PoCL"), 0;
    long long kw = get(sc, "KWG"), mw = get(sc, "MWG"), nw = get(sc, "NWG");
    long long sa = get(sc, "SA"), sb = get(sc, "SB");
    if (kw > 0 && mw > 0 && nw > 0 && dev->local_mem) {
      unsigned long long bytes =
          4ull * (unsigned long long)kw *
          ((sa > 0 ? (unsigned long long)mw : 0) + (sb > 0 ? (unsigned long long)nw : 0));
      if (bytes > dev->local_mem)
        return snprintf(why, wl, "needs %llu bytes of local memory, the device has %llu", bytes,
                        (unsigned long long)dev->local_mem),
               0;
    }
  }
  return 1;
}

/* Parse a parameter file into sections; errors name the file and line. */
static hcl_status parse_file(hcl_ctx *ctx, const char *path, FILE *f, section *secs,
                             size_t *n_secs) {
  char line[512];
  section *sc = NULL;
  int lineno = 0;
  *n_secs = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *s = trim(line);
    if (!*s || *s == '#' || *s == ';') continue;
    if (*s == '[') {
      char *e = strchr(s, ']');
      if (!e || e == s + 1 || (size_t)(e - s - 1) >= sizeof sc->kernel)
        return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: malformed section header", path, lineno);
      if (*n_secs == MAX_SECTIONS)
        return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: more than %d sections", path, lineno,
                        MAX_SECTIONS);
      *e = 0;
      sc = &secs[(*n_secs)++];
      memset(sc, 0, sizeof *sc);
      snprintf(sc->kernel, sizeof sc->kernel, "%s", trim(s + 1));
      sc->line = lineno;
      continue;
    }
    char *eq = strchr(s, '=');
    if (!sc || !eq)
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: expected NAME = VALUE inside a [Kernel] section",
                      path, lineno);
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1), *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (!*key || strlen(key) >= sizeof sc->names[0] || !*val || *end || errno || *val == '-')
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: %s needs a non-negative integer", path, lineno,
                      key);
    if (sc->n == MAX_KEYS)
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: more than %d parameters in [%s]", path, lineno,
                      MAX_KEYS, sc->kernel);
    if (get(sc, key) >= 0)
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: %s given twice in [%s]", path, lineno, key,
                      sc->kernel);
    snprintf(sc->names[sc->n], sizeof sc->names[0], "%s", key);
    sc->values[sc->n++] = (size_t)v;
  }
  if (!*n_secs) return hcl_fail(ctx, HCL_ERR_CONFIG, "%s: no [Kernel] section", path);
  return HCL_OK;
}

/* Parse, check every section, then hand each to CLBlast. */
static hcl_status apply_file(hcl_ctx *ctx, const char *path, FILE *f) {
  static section secs[MAX_SECTIONS]; /* 70 KB: not on the stack; one ctx at a time */
  size_t n = 0;
  HCL_TRY(parse_file(ctx, path, f, secs, &n));
  char why[256];
  for (size_t i = 0; i < n; i++)
    if (!check_section(&ctx->dev, is_pocl(&ctx->dev), &secs[i], why, sizeof why))
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: [%s]: %s", path, secs[i].line, secs[i].kernel,
                      why);
  for (size_t i = 0; i < n; i++) {
    const char *names[MAX_KEYS];
    for (size_t j = 0; j < secs[i].n; j++) names[j] = secs[i].names[j];
    HCL_TRY(override(ctx, path, secs[i].kernel, secs[i].n, names, secs[i].values));
  }
  return HCL_OK;
}

void hcl_blas_tuning_path(const hcl_ctx *ctx, char *out, size_t len) {
  char dir[1024], id[600], key[65];
  hcl_cache_dir(ctx, dir, sizeof dir);
  snprintf(id, sizeof id, "%s\n%s", ctx->dev.name, ctx->dev.driver);
  hcl_sha256_hex(id, strlen(id), key);
  if (*dir)
    snprintf(out, len, "%s/clblast/%s.ini", dir, key);
  else if (len)
    *out = 0;
}

/* Apply one parameter file (exported for tests/test_blas.c). Opened
 * without blocking and only if it is a regular file (a FIFO would hang). */
static hcl_status hcl_blas_apply_tuning_file_unlocked(hcl_ctx *ctx, const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot open the CLBlast parameter file", path);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return hcl_fail(ctx, HCL_ERR_IO, "%s: the CLBlast parameter file is not a regular file", path);
  }
  FILE *f = fdopen(fd, "r");
  if (!f) {
    close(fd);
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot open the CLBlast parameter file", path);
  }
  hcl_status rc = apply_file(ctx, path, f);
  fclose(f);
  if (rc == HCL_OK) remember(ctx->dev.device_id, path, 1);
  return rc;
}

hcl_status hcl_blas_apply_tuning_file(hcl_ctx *ctx, const char *path) {
  hcl_clblast_lock(); /* the tables here and CLBlast's overrides are process-wide */
  hcl_status r = hcl_blas_apply_tuning_file_unlocked(ctx, path);
  hcl_clblast_unlock();
  return r;
}

/* Without a (usable) file: the built-in set on PoCL, CLBlast's database elsewhere. */
static hcl_status apply_defaults(hcl_ctx *ctx, const char *path) {
  if (!is_pocl(&ctx->dev)) return HCL_OK; /* CLBlast's own database */
  const char *gemm_routine[] = {"XGEMM_MIN_INDIRECT_SIZE"};
  const size_t min_indirect[] = {128};
  HCL_TRY(override(ctx, "built-in PoCL parameters", "Xgemm", 16, (const char **)pocl_names,
                   pocl_values));
  HCL_TRY(override(ctx, "built-in PoCL parameters", "GemmRoutine", 1, gemm_routine, min_indirect));
  remember(ctx->dev.device_id, "built-in PoCL set", 0);
  hcl_note_add(ctx, "clblast_parameters", "built-in PoCL set", 0);
  hcl_log(ctx, HCL_LOG_DEBUG, "CLBlast: built-in PoCL parameters on %s (no usable %s)",
          ctx->dev.name, path);
  static int noted; /* once per process: a note, not a warning */
  if (!noted++)
    hcl_log(ctx, HCL_LOG_INFO,
            "%s is untuned; built-in GEMM parameters in use (`hiercl tune` tunes them)",
            ctx->dev.id);
  return HCL_OK;
}

static hcl_status hcl_blas_apply_tuning_unlocked(hcl_ctx *ctx) {
  for (size_t i = 0; i < g_n_tuned; i++)
    if (g_tuned[i] == ctx->dev.device_id) { /* already configured in this process */
      hcl_note_add(ctx, "clblast_parameters", g_source[i], 0);
      return HCL_OK;
    }
  const char *mode = hcl_getenv("HIERCL_CLBLAST_TUNING"); /* "off": CLBlast's own defaults */
  if (mode && !strcmp(mode, "off")) return HCL_OK;
  char path[1200];
  hcl_blas_tuning_path(ctx, path, sizeof path);
  struct stat st;
  if (*path && lstat(path, &st) == 0) {
    if (hcl_blas_apply_tuning_file(ctx, path) == HCL_OK) {
      hcl_note_add(ctx, "clblast_parameters", path, 0);
      hcl_log(ctx, HCL_LOG_INFO, "CLBlast parameters for %s from %s", ctx->dev.name, path);
      return HCL_OK;
    }
    /* A bad file must not fail every run: one note, then the defaults (which
     * also replace any section CLBlast took before refusing a later one). */
    hcl_log(ctx, HCL_LOG_WARN, "CLBlast parameter file skipped, %s in use: %s",
            is_pocl(&ctx->dev) ? "the built-in PoCL set" : "CLBlast's defaults", ctx->errmsg);
    ctx->errmsg[0] = 0;
  }
  return apply_defaults(ctx, path);
}

hcl_status hcl_blas_apply_tuning(hcl_ctx *ctx) {
  hcl_clblast_lock(); /* the tables here and CLBlast's overrides are process-wide */
  hcl_status r = hcl_blas_apply_tuning_unlocked(ctx);
  hcl_clblast_unlock();
  return r;
}

static int hcl_blas_tuning_fallback_unlocked(hcl_ctx *ctx, const char *why) {
  size_t i = 0;
  while (i < g_n_tuned && g_tuned[i] != ctx->dev.device_id) i++;
  if (i == g_n_tuned || !g_from_file[i]) return 0;
  char moved[1300];
  snprintf(moved, sizeof moved, "%s.rejected", g_source[i]);
  int ok = rename(g_source[i], moved) == 0;
  int pocl = is_pocl(&ctx->dev);
  hcl_log(ctx, HCL_LOG_WARN, "CLBlast parameters from %s fail the self-check (%s); %s%s; %s",
          g_source[i], why, ok ? "moved to " : "could not move the file aside", ok ? moved : "",
          pocl ? "using the built-in PoCL set" : "the next run uses CLBlast's defaults");
  if (!pocl) return 0; /* CLBlast cannot forget an override: this run fails once */
  char saved[HCL_ERRMSG_MAX];
  snprintf(saved, sizeof saved, "%s", ctx->errmsg);
  g_from_file[i] = 0;
  if (apply_defaults(ctx, g_source[i]) != HCL_OK) {
    snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s", saved);
    return 0;
  }
  CLBlastClearCache(); /* its compiled kernels still hold the file's parameters */
  return 1;
}

int hcl_blas_tuning_fallback(hcl_ctx *ctx, const char *why) {
  hcl_clblast_lock(); /* the tables here and CLBlast's overrides are process-wide */
  int r = hcl_blas_tuning_fallback_unlocked(ctx, why);
  hcl_clblast_unlock();
  return r;
}
