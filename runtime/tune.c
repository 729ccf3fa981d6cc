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
 * CLBlast keeps overrides per device for the whole process, so each device is
 * configured once; the list below also tells the self-check (blas.c) that the
 * large-matrix kernel runs with parameters that CLBlast never shipped. */
#include "internal.h"

#include <clblast_c.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEVICES 32
#define MAX_KEYS 64

static cl_device_id g_tuned[MAX_DEVICES];
static char g_source[MAX_DEVICES][1200]; /* where the parameters came from */
static size_t g_n_tuned;

int hcl_blas_tuned(cl_device_id dev);
int hcl_blas_tuned(cl_device_id dev) {
  for (size_t i = 0; i < g_n_tuned; i++)
    if (g_tuned[i] == dev) return 1;
  return 0;
}

static void remember(cl_device_id dev, const char *source) {
  if (g_n_tuned == MAX_DEVICES) return;
  snprintf(g_source[g_n_tuned], sizeof g_source[0], "%s", source);
  g_tuned[g_n_tuned++] = dev;
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

/* Parse and apply a parameter file; errors name the file and line. */
static hcl_status apply_file(hcl_ctx *ctx, const char *path, FILE *f) {
  char line[512], section[64] = "";
  char names[MAX_KEYS][64];
  const char *name_ptr[MAX_KEYS];
  size_t values[MAX_KEYS], n = 0;
  int lineno = 0, sections = 0;
  for (;;) {
    char *got = fgets(line, sizeof line, f);
    lineno++;
    char *s = got ? trim(line) : NULL;
    if (s && (!*s || *s == '#' || *s == ';')) continue;
    if (!s || *s == '[') { /* a section ends */
      if (*section) {
        for (size_t i = 0; i < n; i++) name_ptr[i] = names[i];
        HCL_TRY(override(ctx, path, section, n, name_ptr, values));
        sections++;
      }
      if (!s) break;
      char *e = strchr(s, ']');
      if (!e || e == s + 1 || (size_t)(e - s - 1) >= sizeof section)
        return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: malformed section header", path, lineno);
      *e = 0;
      snprintf(section, sizeof section, "%s", trim(s + 1));
      n = 0;
      continue;
    }
    char *eq = strchr(s, '=');
    if (!*section || !eq)
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: expected NAME = VALUE inside a [Kernel] section",
                      path, lineno);
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1), *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (!*key || strlen(key) >= sizeof names[0] || !*val || *end || errno || *val == '-')
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: %s needs a non-negative integer", path, lineno,
                      key);
    if (n == MAX_KEYS)
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%s:%d: more than %d parameters in [%s]", path, lineno,
                      MAX_KEYS, section);
    snprintf(names[n], sizeof names[0], "%s", key);
    values[n++] = (size_t)v;
  }
  if (!sections) return hcl_fail(ctx, HCL_ERR_CONFIG, "%s: no [Kernel] section", path);
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

/* Apply one parameter file (exported for tests/test_blas.c). */
hcl_status hcl_blas_apply_tuning_file(hcl_ctx *ctx, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot open the CLBlast parameter file", path);
  hcl_status rc = apply_file(ctx, path, f);
  fclose(f);
  if (rc == HCL_OK && !hcl_blas_tuned(ctx->dev.device_id)) remember(ctx->dev.device_id, path);
  return rc;
}

hcl_status hcl_blas_apply_tuning(hcl_ctx *ctx) {
  for (size_t i = 0; i < g_n_tuned; i++)
    if (g_tuned[i] == ctx->dev.device_id) { /* already configured in this process */
      hcl_note_add(ctx, "clblast_parameters", g_source[i], 0);
      return HCL_OK;
    }
  const char *mode = getenv("HCL_CLBLAST_TUNING"); /* "off": CLBlast's own defaults */
  if (mode && !strcmp(mode, "off")) return HCL_OK;
  char path[1200];
  hcl_blas_tuning_path(ctx, path, sizeof path);
  FILE *f = *path ? fopen(path, "r") : NULL;
  if (f) {
    fclose(f);
    HCL_TRY(hcl_blas_apply_tuning_file(ctx, path));
    hcl_note_add(ctx, "clblast_parameters", path, 0);
    hcl_log(ctx, HCL_LOG_INFO, "CLBlast parameters for %s from %s", ctx->dev.name, path);
    return HCL_OK;
  }
  if (!is_pocl(&ctx->dev)) return HCL_OK; /* CLBlast's own database */
  const char *gemm_routine[] = {"XGEMM_MIN_INDIRECT_SIZE"};
  const size_t min_indirect[] = {128};
  HCL_TRY(override(ctx, "built-in PoCL parameters", "Xgemm", 16, (const char **)pocl_names,
                   pocl_values));
  HCL_TRY(override(ctx, "built-in PoCL parameters", "GemmRoutine", 1, gemm_routine, min_indirect));
  remember(ctx->dev.device_id, "built-in PoCL set");
  hcl_note_add(ctx, "clblast_parameters", "built-in PoCL set", 0);
  hcl_log(ctx, HCL_LOG_DEBUG, "CLBlast: built-in PoCL parameters on %s (no %s)", ctx->dev.name,
          path);
  static int noted; /* once per process: a note, not a warning */
  if (!noted++)
    hcl_log(ctx, HCL_LOG_INFO,
            "%s is untuned; built-in GEMM parameters in use (`hiercl tune` tunes them)",
            ctx->dev.id);
  return HCL_OK;
}
