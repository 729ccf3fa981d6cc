/* resnet model plugin: layout, init, forward and backward against an
 * independent float64 host implementation (itself checked by central finite
 * differences), the three activations, features, replicas bit for bit. */
#include "support/hcl_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- float64 reference ResNet (one replica) ------------------------------ */
enum { ACT_RELU = 0, ACT_LEAKY = 1, ACT_QUAD = 2 };
static const char *const act_names[] = {"relu", "leaky_relu", "quadratic"};

typedef struct ref_net {
  size_t n_in, W, L, D;
  int act;
} ref_net;

static size_t ref_in(const ref_net *r, size_t l) { return l == 0 ? r->n_in : r->W; }
static size_t ref_out(const ref_net *r, size_t l) { return l == r->L - 1 ? r->D : r->W; }

/* Offset of layer l's weight: layers in order, each weight [out, in] then bias. */
static size_t ref_woff(const ref_net *r, size_t l) {
  size_t off = 0;
  for (size_t k = 0; k < l; k++) off += ref_out(r, k) * ref_in(r, k) + ref_out(r, k);
  return off;
}
static size_t ref_boff(const ref_net *r, size_t l) {
  return ref_woff(r, l) + ref_out(r, l) * ref_in(r, l);
}
static size_t ref_n_params(const ref_net *r) { return ref_woff(r, r->L); }

static double ref_act(int a, double z) {
  if (a == ACT_RELU) return z > 0 ? z : 0;
  if (a == ACT_LEAKY) return z > 0 ? z : 0.1 * z;
  return z * z;
}
static double ref_dact(int a, double z) {
  if (a == ACT_RELU) return z > 0 ? 1 : 0;
  if (a == ACT_LEAKY) return z > 0 ? 1 : 0.1;
  return 2 * z;
}

/* y [n, out] = a [n, in] W^T + b for layer l. */
static void ref_linear(const ref_net *r, size_t l, const double *p, const double *a, size_t n,
                       double *y) {
  size_t in = ref_in(r, l), out = ref_out(r, l);
  const double *w = p + ref_woff(r, l), *b = p + ref_boff(r, l);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < out; j++) {
      double s = b[j];
      for (size_t k = 0; k < in; k++) s += w[j * in + k] * a[i * in + k];
      y[i * out + j] = s;
    }
}

/* out [n, D]; zs, hs [(L-1) * n * W] the pre-activations and layer outputs
 * (NULL: not kept). */
static void ref_forward(const ref_net *r, const double *p, const double *x, size_t n, double *out,
                        double *zs, double *hs) {
  size_t W = r->W, nh = r->L - 1;
  double *z = malloc(nh * n * W * sizeof *z), *h = malloc(nh * n * W * sizeof *h);
  for (size_t l = 0; l < nh; l++) {
    double *zl = z + l * n * W, *hl = h + l * n * W;
    ref_linear(r, l, p, l == 0 ? x : hl - n * W, n, zl);
    for (size_t i = 0; i < n * W; i++)
      hl[i] = ref_act(r->act, zl[i]) + (l > 0 ? (hl - n * W)[i] : 0.0); /* residual */
  }
  ref_linear(r, r->L - 1, p, h + (nh - 1) * n * W, n, out);
  if (zs) memcpy(zs, z, nh * n * W * sizeof *z);
  if (hs) memcpy(hs, h, nh * n * W * sizeof *h);
  free(z);
  free(h);
}

/* grad = d(sum dout . out)/dp. */
static void ref_backward(const ref_net *r, const double *p, const double *x, size_t n,
                         const double *dout, double *grad) {
  size_t W = r->W, nh = r->L - 1, D = r->D;
  double *z = malloc(nh * n * W * sizeof *z), *h = malloc(nh * n * W * sizeof *h);
  double *out = malloc(n * D * sizeof *out);
  double *gh = calloc(n * W, sizeof *gh), *dz = malloc(n * W * sizeof *dz);
  ref_forward(r, p, x, n, out, z, h);
  memset(grad, 0, ref_n_params(r) * sizeof *grad);
  /* readout */
  const double *wo = p + ref_woff(r, r->L - 1), *hl = h + (nh - 1) * n * W;
  double *gw = grad + ref_woff(r, r->L - 1), *gb = grad + ref_boff(r, r->L - 1);
  for (size_t i = 0; i < n; i++)
    for (size_t d = 0; d < D; d++) {
      double g = dout[i * D + d];
      gb[d] += g;
      for (size_t k = 0; k < W; k++) {
        gw[d * W + k] += g * hl[i * W + k];
        gh[i * W + k] += g * wo[d * W + k];
      }
    }
  for (size_t l = nh; l-- > 0;) {
    size_t in = ref_in(r, l);
    const double *zl = z + l * n * W, *a = l == 0 ? x : h + (l - 1) * n * W;
    const double *w = p + ref_woff(r, l);
    gw = grad + ref_woff(r, l);
    gb = grad + ref_boff(r, l);
    for (size_t i = 0; i < n * W; i++) dz[i] = gh[i] * ref_dact(r->act, zl[i]);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < W; j++) {
        gb[j] += dz[i * W + j];
        for (size_t k = 0; k < in; k++) gw[j * in + k] += dz[i * W + j] * a[i * in + k];
      }
    if (l == 0) break;
    /* gh stays (identity path) and gains dz W */
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < W; j++)
        for (size_t k = 0; k < W; k++) gh[i * W + k] += dz[i * W + j] * w[j * W + k];
  }
  free(z);
  free(h);
  free(out);
  free(gh);
  free(dz);
}

static double ref_objective(const ref_net *r, const double *p, const double *x, size_t n,
                            const double *dout) {
  double *out = malloc(n * r->D * sizeof *out), s = 0;
  ref_forward(r, p, x, n, out, NULL, NULL);
  for (size_t i = 0; i < n * r->D; i++) s += dout[i] * out[i];
  free(out);
  return s;
}

/* ---- small helpers -------------------------------------------------------- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(double lo, double hi) { return hcl_test_xorshift(&rng_state, lo, hi); }

#define max_abs(a, n) hcl_test_max_abs(a, n)

/* Every |got - want| within rel * max|want| (+ a tiny absolute floor). */
static void assert_close(const float *got, const double *want, size_t n, double rel,
                         const char *what) {
  double scale = max_abs(want, n), worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - want[i]);
    if (!(e <= worst)) worst = e, at = i;
  }
  if (!(worst <= rel * scale + 1e-6)) {
    fail_msg("%s: element %zu: got %.9g want %.9g (max error %.3g, scale %.3g)", what, at,
             (double)got[at], want[at], worst, scale);
  }
}

/* ---- fixture: the shared test ctx and the plugin loaded by the loader ----- */
static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_model_vt *g_vt;

static int group_setup(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("resnet", HCL_PLUGIN_MODEL, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

static hcl_target_info target_vec(size_t n_in, hcl_task task, size_t classes) {
  hcl_target_info t = {.struct_size = sizeof t, .y_dim = 1, .task = task, .n_classes = classes};
  t.x.rank = 1;
  t.x.dims[0] = n_in;
  return t;
}

/* A model built like the command does: [model] section resolved against the
 * plugin's schema, then create(). */
typedef hcl_test_model model;
#define model_free(m) hcl_test_model_free(m)

static hcl_status model_make(size_t width, size_t depth, const char *act, size_t R,
                             const uint64_t *seeds, size_t max_batch, const hcl_target_info *t,
                             model *m) {
  char w[64], d[64], a[64];
  snprintf(w, sizeof w, "width=%zu", width);
  snprintf(d, sizeof d, "depth=%zu", depth);
  snprintf(a, sizeof a, "activation=%s", act);
  const char *kv[] = {w, d, a, NULL};
  return hcl_test_model_make(g_ctx, g_desc, kv, R, seeds, max_batch, t, m);
}

#define read_floats(b, n) hcl_test_download(g_ctx, b, n)

#define upload(h, n) hcl_test_upload(g_ctx, h, n)

#define random_floats(n, lo, hi) hcl_test_random_floats(urand, n, lo, hi)

#define to_double(f, n) hcl_test_to_double(f, n)

/* ---- tests that need no device -------------------------------------------- */

/* The reference gradient equals central finite differences of the reference
 * objective, for every parameter of a small net, for each activation. */
static void test_reference_gradient_fd(void **state) {
  (void)state;
  for (int act = 0; act < 3; act++) {
    ref_net r = {.n_in = 5, .W = 4, .L = 4, .D = 2, .act = act};
    size_t np = ref_n_params(&r), n = 6;
    assert_int_equal(np, 5 * 4 + 4 + 2 * (16 + 4) + 2 * 4 + 2);
    double *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g);
    double x[6 * 5], dout[6 * 2];
    for (size_t i = 0; i < np; i++) p[i] = urand(-0.6, 0.6);
    for (size_t i = 0; i < n * r.n_in; i++) x[i] = urand(-1, 1);
    for (size_t i = 0; i < n * r.D; i++) dout[i] = urand(-1, 1);
    ref_backward(&r, p, x, n, dout, g);
    const double h = 1e-6;
    for (size_t i = 0; i < np; i++) {
      double keep = p[i];
      p[i] = keep + h;
      double fp = ref_objective(&r, p, x, n, dout);
      p[i] = keep - h;
      double fm = ref_objective(&r, p, x, n, dout);
      p[i] = keep;
      double fd = (fp - fm) / (2 * h);
      if (!(fabs(fd - g[i]) <= 1e-6 * (1 + fabs(g[i]))))
        fail_msg("%s: param %zu: reference %.12g, finite difference %.12g", act_names[act], i, g[i],
                 fd);
    }
    free(p);
    free(g);
  }
}

/* ---- device tests --------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "resnet");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_MODEL);
  assert_non_null(strstr(g_desc->citation, "2108.10573"));
  assert_non_null(strstr(g_desc->citation, "staircase"));
  const char *keys[] = {"width", "depth", "activation"};
  for (size_t k = 0; k < 3; k++) {
    const hcl_param_desc *d = g_desc->params;
    while (d->key && strcmp(d->key, keys[k])) d++;
    assert_non_null(d->key);
    assert_non_null(d->help);
    assert_true(strlen(d->help) > 10);
  }
}

static void test_layout(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  hcl_target_info t = target_vec(30, HCL_TASK_BINARY, 0);
  model m;
  assert_int_equal(model_make(40, 5, "relu", 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, 6201);
  assert_int_equal(m.D, 1);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 10);
  static const char *const names[] = {
      "fc0.weight",  "fc0.bias",      "block1.weight", "block1.bias", "block2.weight",
      "block2.bias", "block3.weight", "block3.bias",   "out.weight",  "out.bias"};
  size_t rows[] = {40, 40, 40, 40, 40, 40, 40, 40, 1, 1};
  size_t cols[] = {30, 1, 40, 1, 40, 1, 40, 1, 40, 1};
  size_t off = 0;
  for (size_t i = 0; i < nb; i++) {
    assert_string_equal(b[i].name, names[i]);
    assert_int_equal(b[i].offset, off);
    assert_int_equal(b[i].rows, rows[i]);
    assert_int_equal(b[i].cols, cols[i]);
    assert_int_equal(b[i].group, i / 2);
    assert_int_equal(b[i].trainable, 1);
    off += rows[i] * cols[i];
  }
  assert_int_equal(off, 6201);
  model_free(&m);

  /* classification: n_classes outputs; a rank-2 input is flattened */
  t = target_vec(30, HCL_TASK_CLASSES, 3);
  t.x.rank = 2;
  t.x.dims[0] = 3;
  t.x.dims[1] = 10;
  assert_int_equal(model_make(40, 2, "relu", 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.D, 3);
  assert_int_equal(m.np, 30 * 40 + 40 + 3 * 40 + 3);
  b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 4);
  assert_string_equal(b[2].name, "out.weight");
  assert_int_equal(b[2].rows, 3);
  assert_int_equal(b[3].group, 1);
  model_free(&m);
}

static void test_rejects(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  hcl_target_info t = target_vec(30, HCL_TASK_BINARY, 0);
  model m;
  /* the schema bounds stop a config with depth 1 or width 0 */
  assert_int_not_equal(model_make(40, 1, "relu", 1, &seed, 4, &t, &m), HCL_OK);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "depth"));
  assert_int_not_equal(model_make(0, 5, "relu", 1, &seed, 4, &t, &m), HCL_OK);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "width"));
  /* create itself refuses them when handed unchecked params */
  hcl_kv kv[3] = {{"width", "40", 0}, {"depth", "1", 0}, {"activation", "relu", 0}};
  hcl_params p = {.section = "model", .schema = g_desc->params, .kv = kv, .n = 3};
  hcl_setup s = {
      .struct_size = sizeof s, .replicas = 1, .seeds = &seed, .params = &p, .max_batch = 4};
  void *self = (void *)&s;
  assert_int_equal(g_vt->create(g_ctx, &s, &t, &self), HCL_ERR_PARAM);
  assert_null(self);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "depth"));
  kv[0].value = "0";
  kv[1].value = "5";
  assert_int_equal(g_vt->create(g_ctx, &s, &t, &self), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "width"));
  /* batches larger than max_batch, backward on another n */
  assert_int_equal(model_make(8, 3, "relu", 1, &seed, 4, &t, &m), HCL_OK);
  hcl_buf x, out;
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * 30 * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 5, out), HCL_ERR_PARAM);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 3, m.params), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 4, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 3, m.params), HCL_ERR_PARAM);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  model_free(&m);
}

/* Plugin forward and gradient (float32, R = 3 replicas, their own seeds)
 * against the float64 reference on the parameters read back. */
static void check_forward_backward(int act, size_t n_in, size_t W, size_t L, size_t classes) {
  enum { R = 3 };
  const uint64_t seeds[R] = {11, 2022, 987654321};
  const size_t n = 13, max_batch = 16;
  hcl_target_info t = target_vec(n_in, classes ? HCL_TASK_CLASSES : HCL_TASK_BINARY, classes);
  model m;
  assert_int_equal(model_make(W, L, act_names[act], R, seeds, max_batch, &t, &m), HCL_OK);
  ref_net r = {.n_in = n_in, .W = W, .L = L, .D = m.D, .act = act};
  assert_int_equal(m.np, ref_n_params(&r));
  size_t D = m.D, np = m.np;
  float *xh = random_floats(R * n * n_in, -1, 1);
  float *douth = random_floats(R * n * D, -1, 1);
  hcl_buf x = upload(xh, R * n * n_in), dout = upload(douth, R * n * D), out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * D * sizeof(float), &out), HCL_OK);
  float *seven = malloc(R * np * sizeof *seven);
  for (size_t i = 0; i < R * np; i++) seven[i] = 7.0f; /* backward must overwrite */
  grad = upload(seven, R * np);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_OK);
  float *ph = read_floats(m.params, R * np), *oh = read_floats(out, R * n * D);
  float *gh = read_floats(grad, R * np);
  double *ref_out = malloc(n * D * sizeof *ref_out), *ref_g = malloc(np * sizeof *ref_g);
  char what[96];
  for (size_t rep = 0; rep < R; rep++) {
    double *p = to_double(ph + rep * np, np), *xd = to_double(xh + rep * n * n_in, n * n_in);
    double *dd = to_double(douth + rep * n * D, n * D);
    ref_forward(&r, p, xd, n, ref_out, NULL, NULL);
    snprintf(what, sizeof what, "%s forward, replica %zu", act_names[act], rep);
    assert_close(oh + rep * n * D, ref_out, n * D, 1e-4, what);
    ref_backward(&r, p, xd, n, dd, ref_g);
    snprintf(what, sizeof what, "%s gradient, replica %zu", act_names[act], rep);
    assert_close(gh + rep * np, ref_g, np, 1e-4, what);
    free(p);
    free(xd);
    free(dd);
  }
  /* replicas have their own parameters */
  assert_memory_not_equal(ph, ph + np, np * sizeof *ph);
  free(ref_out);
  free(ref_g);
  free(ph);
  free(oh);
  free(gh);
  free(xh);
  free(douth);
  free(seven);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

static void test_relu(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_RELU, 30, 40, 5, 0);
}

static void test_leaky_relu_classes(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_LEAKY, 30, 40, 5, 3);
}

static void test_quadratic(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_QUAD, 30, 40, 5, 0);
  check_forward_backward(ACT_QUAD, 7, 9, 2, 0); /* no residual block */
}

/* features(layer) is the reference's hidden output of layer-1. */
static void test_features(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {5, 6, 7};
  const size_t n = 9, n_in = 30, W = 40, L = 5;
  hcl_target_info t = target_vec(n_in, HCL_TASK_BINARY, 0);
  model m;
  assert_int_equal(model_make(W, L, "relu", R, seeds, 12, &t, &m), HCL_OK);
  ref_net r = {.n_in = n_in, .W = W, .L = L, .D = 1, .act = ACT_RELU};
  float *xh = random_floats(R * n * n_in, -1, 1);
  hcl_buf x = upload(xh, R * n * n_in), feat, out;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * W * sizeof(float), &feat), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  double *hs = malloc((L - 1) * n * W * sizeof *hs), o[9];
  size_t dim = 0;
  assert_int_equal(g_vt->features(m.self, m.params, 0, x, n, feat, &dim), HCL_ERR_PARAM);
  assert_int_equal(g_vt->features(m.self, m.params, L, x, n, feat, &dim), HCL_ERR_PARAM);
  for (size_t layer = 1; layer < L; layer++) {
    assert_int_equal(g_vt->features(m.self, m.params, layer, x, n, feat, &dim), HCL_OK);
    assert_int_equal(dim, W);
    float *fh = read_floats(feat, R * n * W);
    for (size_t rep = 0; rep < R; rep++) {
      double *p = to_double(ph + rep * m.np, m.np), *xd = to_double(xh + rep * n * n_in, n * n_in);
      ref_forward(&r, p, xd, n, o, NULL, hs);
      char what[64];
      snprintf(what, sizeof what, "features of layer %zu, replica %zu", layer, rep);
      assert_close(fh + rep * n * W, hs + (layer - 1) * n * W, n * W, 1e-4, what);
      free(p);
      free(xd);
    }
    free(fh);
  }
  /* features replaced the kept activations: backward needs a new forward */
  assert_int_equal(g_vt->backward(m.self, m.params, out, n, feat), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  hcl_buf grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * m.np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, n, grad), HCL_OK);
  hcl_buf_free(g_ctx, &grad);
  free(hs);
  free(ph);
  free(xh);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &feat);
  hcl_buf_free(g_ctx, &out);
  model_free(&m);
}

/* PyTorch's default init: U(+-1/sqrt(fan_in)) for weight and bias. */
static void test_init_statistics(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {42, 43, 1ull << 40};
  hcl_target_info t = target_vec(30, HCL_TASK_BINARY, 0);
  model m, m2;
  assert_int_equal(model_make(40, 5, "relu", R, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  for (size_t rep = 0; rep < R; rep++) {
    const float *p = ph + rep * m.np;
    for (size_t i = 0; i < nb; i++) {
      size_t fan_in = i / 2 == 0 ? 30 : 40, count = b[i].rows * b[i].cols;
      double bound = 1.0 / sqrt((double)fan_in), s = 0, s2 = 0, mx = 0;
      for (size_t k = 0; k < count; k++) {
        double v = p[b[i].offset + k];
        if (!(fabs(v) <= (double)(float)bound))
          fail_msg("replica %zu %s[%zu] = %g outside +-%g", rep, b[i].name, k, v, bound);
        s += v;
        s2 += v * v;
        mx = fmax(mx, fabs(v));
      }
      if (count >= 40) assert_true(mx > 0.5 * bound);
      if (count >= 1200) { /* mean 0, variance bound^2 / 3 */
        double mean = s / count, var = s2 / count - mean * mean;
        assert_true(fabs(mean) < 5 * bound / sqrt(3.0 * count));
        assert_true(fabs(var / (bound * bound / 3) - 1) < 0.15);
      }
    }
    /* every block draws from its own stream: blocks of equal shape differ,
     * and a bias is not the start of its layer's weight stream */
    assert_memory_not_equal(p + b[2].offset, p + b[4].offset, 1600 * sizeof *p);
    for (size_t i = 0; i < nb; i += 2)
      assert_memory_not_equal(p + b[i + 1].offset, p + b[i].offset, b[i + 1].rows * sizeof *p);
  }
  /* replicas differ in every block */
  for (size_t i = 0; i < nb; i++) {
    size_t count = b[i].rows * b[i].cols, same = 0;
    for (size_t k = 0; k < count; k++) same += ph[b[i].offset + k] == ph[m.np + b[i].offset + k];
    assert_true(same < count / 2 + 1 || count == 1);
    if (count == 1) assert_true(ph[b[i].offset] != ph[m.np + b[i].offset]);
  }
  /* the same seeds give the same bits */
  assert_int_equal(model_make(40, 5, "quadratic", R, seeds, 8, &t, &m2), HCL_OK);
  assert_int_equal(g_vt->init(m2.self, m2.params), HCL_OK);
  float *ph2 = read_floats(m2.params, R * m.np);
  assert_memory_equal(ph, ph2, R * m.np * sizeof *ph);
  free(ph);
  free(ph2);
  model_free(&m);
  model_free(&m2);
}

/* R replicas in one pass equal R separate runs with the same seeds, bit for
 * bit: init, forward, backward. */
static void test_replicas_bitwise(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {101, 202, 303};
  const size_t n = 11, n_in = 30;
  hcl_target_info t = target_vec(n_in, HCL_TASK_BINARY, 0);
  const char *kv[] = {"width=40", "depth=5", "activation=leaky_relu", NULL};
  float *xh = random_floats(R * n * n_in, -1, 1), *dh = random_floats(R * n, -1, 1);
  hcl_test_replicas_bitwise(g_ctx, g_desc, kv, R, seeds, 16, &t, n, n_in, xh, dh);
  free(xh), free(dh);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_gradient_fd),
      cmocka_unit_test(test_descriptor),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_relu),
      cmocka_unit_test(test_leaky_relu_classes),
      cmocka_unit_test(test_quadratic),
      cmocka_unit_test(test_features),
      cmocka_unit_test(test_init_statistics),
      cmocka_unit_test(test_replicas_bitwise),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
