/* Shared helpers for the cmocka tests (see hcl_test.h). */
#include "hcl_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static hcl_ctx *g_ctx;
static int g_ctx_tried;
static hcl_registry g_reg;
static int g_reg_done;

static void release_all(void) {
  if (g_reg_done) hcl_registry_free(&g_reg);
  hcl_ctx_destroy(g_ctx);
}

hcl_ctx *hcl_test_ctx(void) {
  if (!g_ctx_tried) {
    g_ctx_tried = 1;
    char err[1024];
    /* HIERCL_TEST_DEVICE runs the device tests elsewhere (e.g. gpu) */
    const char *dev = getenv("HIERCL_TEST_DEVICE");
    hcl_ctx_options o = {.device = dev && *dev ? dev : "cpu", .quiet = 1};
    if (hcl_ctx_create(&o, &g_ctx, err, sizeof err) != HCL_OK) {
      fprintf(stderr, "no OpenCL device for the tests: %s\n", err);
      g_ctx = NULL;
    }
    atexit(release_all);
  }
  return g_ctx;
}

const hcl_registry *hcl_test_registry(void) {
  if (!g_reg_done) {
    g_reg_done = 1;
    if (hcl_registry_scan(hcl_test_ctx(), HCL_TEST_PLUGIN_DIR, &g_reg) != HCL_OK)
      fprintf(stderr, "plugin scan: %s\n", hcl_errmsg(hcl_test_ctx()));
  }
  return &g_reg;
}

int hcl_test_setup_plugin(const char *name, uint32_t kind, hcl_ctx **ctx,
                          const hcl_plugin_desc **desc) {
  *ctx = hcl_test_ctx();
  const char *dev = getenv("HIERCL_TEST_DEVICE");
  if (!*ctx && dev && *dev) {
    fprintf(stderr, "HIERCL_TEST_DEVICE=%s: no such device\n", dev);
    return -1;
  }
  if (*ctx && dev && *dev)
    fprintf(stderr, "%s tests on %s (%s)\n", name, (*ctx)->dev.name, (*ctx)->dev.id);
  const hcl_registry *reg = hcl_test_registry();
  const hcl_plugin *p = hcl_registry_find(reg, name, kind);
  if (!p) {
    fprintf(stderr, "%s plugin not found in %s\n", name, HCL_TEST_PLUGIN_DIR);
    for (size_t i = 0; i < reg->n_rejected; i++) fprintf(stderr, "  %s\n", reg->rejected[i]);
    return -1;
  }
  *desc = p->desc;
  return 0;
}

hcl_status hcl_test_model_make(hcl_ctx *ctx, const hcl_plugin_desc *desc, const char *const *kv,
                               size_t R, const uint64_t *seeds, size_t max_batch,
                               const hcl_target_info *t, hcl_test_model *m) {
  memset(m, 0, sizeof *m);
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  char a[256];
  for (size_t i = 0; kv && kv[i]; i++) {
    snprintf(a, sizeof a, "model.%s", kv[i]);
    assert_int_equal(hcl_config_set(ctx, &cfg, a), HCL_OK);
  }
  static const char *const extra[] = {"plugin", NULL};
  hcl_params p;
  memset(&p, 0, sizeof p);
  const hcl_model_vt *vt = desc->vt;
  hcl_status rc = hcl_params_resolve(ctx, &cfg, "model", desc->params, extra, &p);
  if (rc == HCL_OK) {
    hcl_setup s = {.struct_size = sizeof s,
                   .replicas = (uint32_t)R,
                   .seeds = seeds,
                   .params = &p,
                   .max_batch = max_batch};
    rc = vt->create(ctx, &s, t, &m->self);
  }
  hcl_params_free(&p);
  hcl_config_free(&cfg);
  if (rc != HCL_OK) return rc;
  m->ctx = ctx;
  m->vt = vt;
  m->R = R;
  m->np = vt->n_params(m->self);
  m->D = vt->out_dim(m->self);
  assert_int_equal(hcl_buf_alloc(ctx, R * m->np * sizeof(float), &m->params), HCL_OK);
  return HCL_OK;
}

void hcl_test_model_free(hcl_test_model *m) {
  if (m->self) m->vt->destroy(m->self);
  hcl_buf_free(m->ctx, &m->params);
  memset(m, 0, sizeof *m);
}

hcl_status hcl_test_target_make(hcl_ctx *ctx, const hcl_plugin_desc *desc, const char *const *kv,
                                size_t R, const uint64_t *seeds, uint64_t P, uint64_t T,
                                size_t max_batch, void **self) {
  hcl_params *p = hcl_test_params(desc, "target", kv);
  hcl_setup s = {.struct_size = sizeof s,
                 .replicas = (uint32_t)R,
                 .seeds = seeds,
                 .params = p,
                 .train_size = P,
                 .test_size = T,
                 .max_batch = max_batch};
  const hcl_target_vt *vt = desc->vt;
  hcl_status rc = vt->create(ctx, &s, self);
  hcl_test_params_free(p);
  return rc;
}

const hcl_plugin_desc *hcl_test_plugin(const char *name, uint32_t kind) {
  const hcl_plugin *p = hcl_registry_find(hcl_test_registry(), name, kind);
  if (!p) fail_msg("plugin '%s' not built in %s", name, HCL_TEST_PLUGIN_DIR);
  return p->desc;
}

hcl_params *hcl_test_params(const hcl_plugin_desc *d, const char *section, const char *const *kv) {
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.path, sizeof cfg.path, "test");
  char buf[1024];
  for (size_t i = 0; kv && kv[i]; i++) {
    snprintf(buf, sizeof buf, "%s.%s", section, kv[i]);
    if (hcl_config_set(NULL, &cfg, buf) != HCL_OK) fail_msg("%s", hcl_errmsg(NULL));
  }
  hcl_params *p = calloc(1, sizeof *p);
  static const char *const extra[] = {"plugin", NULL};
  if (hcl_params_resolve(NULL, &cfg, section, d->params, extra, p) != HCL_OK)
    fail_msg("%s", hcl_errmsg(NULL));
  hcl_config_free(&cfg);
  return p;
}

void hcl_test_params_free(hcl_params *p) {
  if (!p) return;
  hcl_params_free(p);
  free(p);
}

char *hcl_test_read_file(const char *path) { return hcl_file_text(path); }

int hcl_test_shf(char *out, size_t len, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  assert_true(n > 0 && n < (int)sizeof cmd);
  return hcl_test_sh(cmd, out, len);
}

void hcl_test_strip_where(char *t) {
  static const char *const cut[] = {",\"run_dir\":\"", ",\"device\":\""};
  for (size_t c = 0; c < 2; c++)
    for (char *p; (p = strstr(t, cut[c]));) {
      char *end = strchr(p + strlen(cut[c]), '"');
      assert_non_null(end);
      memmove(p, end + 1, strlen(end + 1) + 1);
    }
}

char *hcl_test_sweep_file(const char *parent, const char *file) {
  char cmd[1200], dir[1400], path[1600];
  snprintf(cmd, sizeof cmd, "ls -d '%s'/sweep_*", parent);
  assert_int_equal(hcl_test_sh(cmd, dir, sizeof dir), 0);
  snprintf(path, sizeof path, "%.*s/%s", (int)strcspn(dir, "\n"), dir, file);
  char *t = hcl_test_read_file(path);
  if (!t) fail_msg("cannot read %s", path);
  hcl_test_strip_where(t);
  return t;
}

int hcl_test_json_num(const char *text, const char *key, double *out) {
  return hcl_json_get_num(text, key, out);
}

const char *hcl_test_tmpdir(void) {
  static char dir[256];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/hcltest.XXXXXX");
    if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
  }
  return dir;
}

const char *hcl_test_write_temp(const char *name, const char *text) {
  static char paths[8][512];
  static int slot;
  char *p = paths[slot++ % 8];
  snprintf(p, 512, "%s/%s", hcl_test_tmpdir(), name);
  FILE *f = fopen(p, "w");
  if (!f) fail_msg("cannot write %s", p);
  fputs(text, f);
  fclose(f);
  return p;
}

float *hcl_test_download(hcl_ctx *ctx, hcl_buf b, size_t n) {
  float *h = malloc(n * sizeof *h);
  assert_non_null(h);
  assert_int_equal(hcl_buf_read(ctx, b, h, n * sizeof *h), HCL_OK);
  return h;
}

hcl_buf hcl_test_upload(hcl_ctx *ctx, const float *h, size_t n) {
  hcl_buf b;
  assert_int_equal(hcl_buf_alloc(ctx, n * sizeof *h, &b), HCL_OK);
  assert_int_equal(hcl_buf_write(ctx, b, h, n * sizeof *h), HCL_OK);
  return b;
}

double *hcl_test_to_double(const float *f, size_t n) {
  double *d = malloc(n * sizeof *d);
  assert_non_null(d);
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

float *hcl_test_random_floats(double (*draw)(double, double), size_t n, double lo, double hi) {
  float *h = malloc(n * sizeof *h);
  assert_non_null(h);
  for (size_t i = 0; i < n; i++) h[i] = (float)draw(lo, hi);
  return h;
}

double hcl_test_xorshift(uint64_t *state, double lo, double hi) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  uint64_t v = *state * 2685821657736338717ull;
  return lo + (hi - lo) * (double)(v >> 11) / 9007199254740992.0;
}

double hcl_test_max_abs(const double *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
  return m;
}

void hcl_test_assert_close(const float *got, const double *want, size_t n, double rel,
                           const char *what) {
  double scale = hcl_test_max_abs(want, n), worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - want[i]);
    if (!(e <= worst)) worst = e, at = i;
  }
  if (!(worst <= rel * scale + 1e-6))
    fail_msg("%s: element %zu: got %.9g want %.9g (max error %.3g, scale %.3g)", what, at,
             (double)got[at], want[at], worst, scale);
}

int hcl_test_sh(const char *cmd, char *out, size_t len) {
  size_t n = strlen(cmd) + 8;
  char *full = malloc(n);
  assert_non_null(full);
  snprintf(full, n, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  free(full);
  assert_non_null(p);
  size_t got = 0;
  char sink[4096];
  for (;;) { /* drain it all, so the command never dies of a closed pipe */
    size_t room = got + 1 < len ? len - 1 - got : 0;
    size_t r = room ? fread(out + got, 1, room, p) : fread(sink, 1, sizeof sink, p);
    if (!r) break;
    if (room) got += r;
  }
  if (len) out[got] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
