/* taylor model plugin (SPEC 2.5): forward and backward against an
 * independent float64 host implementation (its gradient checked by central
 * finite differences), both orders, raw and neural representations, R = 3;
 * the models equal the first- and second-order terms of the two-layer net
 * they expand (numerical derivatives of sigma itself, no derivative formula);
 * the whitening gives the identity covariance on the training data; replicas
 * equal separate runs; full-batch gradient descent through hcl_run lowers the
 * training loss. */
#include "support/hcl_test.h"
#include "trainer.h"

/* the plugin's eigen-solver, tested directly (plugins do not export it) */
#include "../plugins/taylor/eigen.c"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- float64 reference ------------------------------------------------------ */
enum { A_RELU = 0, A_RELU3, A_QUAD, A_SOFTPLUS, A_TANH, A_COUNT };
static const char *const act_names[A_COUNT] = {"relu", "relu3", "quadratic", "softplus", "tanh"};

static double sig(int a, double u) {
  switch (a) {
  case A_RELU: return u > 0 ? u : 0;
  case A_RELU3: return u > 0 ? u * u * u / 6 : 0;
  case A_QUAD: return u * u / 2;
  case A_SOFTPLUS: return log1p(exp(u));
  default: return tanh(u);
  }
}
static double dsig(int a, int order, double u) {
  double s = 1 / (1 + exp(-u)), t = tanh(u);
  switch (a) {
  case A_RELU: return order == 1 && u > 0 ? 1 : 0;
  case A_RELU3: return order == 1 ? (u > 0 ? u * u / 2 : 0) : (u > 0 ? u : 0);
  case A_QUAD: return order == 1 ? u : 1;
  case A_SOFTPLUS: return order == 1 ? s : s * (1 - s);
  default: return order == 1 ? 1 - t * t : -2 * t * (1 - t * t);
  }
}

/* The layout as SPEC 2.5 and the plugin's blocks describe it (one replica):
 * w [m, dz], w0 [m, dz], a [m]; neural: V [D, d], b [D], M [D, D], c [D], fitted. */
typedef struct ref {
  size_t m, d, D, dz;
  int order, act, neural;
} ref;
static size_t off_w(const ref *r) {
  (void)r;
  return 0;
}
static size_t off_w0(const ref *r) { return r->m * r->dz; }
static size_t off_a(const ref *r) { return 2 * r->m * r->dz; }
static size_t off_v(const ref *r) { return off_a(r) + r->m; }
static size_t off_b(const ref *r) { return off_v(r) + r->D * r->d; }
static size_t off_M(const ref *r) { return off_b(r) + r->D; }
static size_t off_c(const ref *r) { return off_M(r) + r->D * r->D; }
static size_t off_fit(const ref *r) { return off_c(r) + r->D; }
static size_t ref_np(const ref *r) { return r->neural ? off_fit(r) + 1 : off_v(r); }

/* z [n, dz]: x itself, or relu(V x + b) M + c. */
static void ref_z(const ref *r, const double *p, const double *x, size_t n, double *z) {
  if (!r->neural) {
    memcpy(z, x, n * r->d * sizeof *z);
    return;
  }
  size_t D = r->D, d = r->d;
  double *h = malloc(D * sizeof *h);
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < D; j++) {
      double s = p[off_b(r) + j];
      for (size_t k = 0; k < d; k++) s += p[off_v(r) + j * d + k] * x[i * d + k];
      h[j] = s > 0 ? s : 0;
    }
    for (size_t j = 0; j < D; j++) {
      double s = p[off_c(r) + j];
      for (size_t k = 0; k < D; k++) s += h[k] * p[off_M(r) + k * D + j];
      z[i * D + j] = s;
    }
  }
  free(h);
}

static double dot(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* out [n] of the Taylor model at z [n, dz] with the formulas of SPEC 2.5. */
static void ref_out(const ref *r, const double *p, const double *z, size_t n, double *out) {
  size_t m = r->m, dz = r->dz;
  for (size_t i = 0; i < n; i++) {
    double f = 0;
    for (size_t k = 0; k < m; k++) {
      double u = dot(p + off_w0(r) + k * dz, z + i * dz, dz) / sqrt((double)dz);
      double s = dot(p + off_w(r) + k * dz, z + i * dz, dz) / sqrt((double)dz);
      double c = p[off_a(r) + k] * dsig(r->act, r->order, u);
      f += r->order == 1 ? c * s : c * s * s / 2;
    }
    out[i] = f / sqrt((double)m);
  }
}

/* grad (np) = d(sum_i dout_i out_i)/dp; zero for every block but w. */
static void ref_grad(const ref *r, const double *p, const double *z, size_t n, const double *dout,
                     double *grad) {
  size_t m = r->m, dz = r->dz;
  memset(grad, 0, ref_np(r) * sizeof *grad);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < m; k++) {
      double u = dot(p + off_w0(r) + k * dz, z + i * dz, dz) / sqrt((double)dz);
      double s = dot(p + off_w(r) + k * dz, z + i * dz, dz) / sqrt((double)dz);
      double c = p[off_a(r) + k] * dsig(r->act, r->order, u) / sqrt((double)m);
      double e = dout[i] * (r->order == 1 ? c : c * s) / sqrt((double)dz);
      for (size_t j = 0; j < dz; j++) grad[off_w(r) + k * dz + j] += e * z[i * dz + j];
    }
}

static double ref_objective(const ref *r, const double *p, const double *z, size_t n,
                            const double *dout) {
  double *o = malloc(n * sizeof *o), s = 0;
  ref_out(r, p, z, n, o);
  for (size_t i = 0; i < n; i++) s += dout[i] * o[i];
  free(o);
  return s;
}

/* The two-layer net g(theta; z) = (1/sqrt m) sum_r a_r sigma(theta_r . z/sqrt(dz)). */
static double two_layer(const ref *r, const double *theta, const double *a, const double *z) {
  double g = 0, u = 1 / sqrt((double)r->dz);
  for (size_t k = 0; k < r->m; k++) g += a[k] * sig(r->act, u * dot(theta + k * r->dz, z, r->dz));
  return g / sqrt((double)r->m);
}

/* ---- small helpers ---------------------------------------------------------- */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static double urand(double lo, double hi) { return hcl_test_xorshift(&rng_state, lo, hi); }

#define max_abs(a, n) hcl_test_max_abs(a, n)

/* Every |got - want| within rel * max|want| (+ a tiny absolute floor). */
#define assert_close(got, want, n, rel, what) hcl_test_assert_close(got, want, n, rel, what)

#define to_double(f, n) hcl_test_to_double(f, n)

/* ---- fixture ---------------------------------------------------------------- */
static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_model_vt *g_vt;

static int group_setup(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("taylor", HCL_PLUGIN_MODEL, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

static hcl_target_info target_vec(size_t d, hcl_task task) {
  hcl_target_info t = {.struct_size = sizeof t, .y_dim = 1, .task = task};
  t.x.rank = 1;
  t.x.dims[0] = d;
  return t;
}

typedef hcl_test_model model;
static hcl_status model_make(const char *const *kv, size_t R, const uint64_t *seeds,
                             size_t max_batch, const hcl_target_info *t, model *m) {
  return hcl_test_model_make(g_ctx, g_desc, kv, R, seeds, max_batch, t, m);
}
#define model_free(m) hcl_test_model_free(m)

#define read_floats(b, n) hcl_test_download(g_ctx, b, n)

#define upload(h, n) hcl_test_upload(g_ctx, h, n)

#define random_floats(n, lo, hi) hcl_test_random_floats(urand, n, lo, hi)

/* kv list for a model: order, activation, representation, sizes. */
typedef struct spec {
  int order, act, neural;
  size_t m, D;
} spec;
static const char *const *spec_kv(const spec *s, char buf[6][64]) {
  static const char *kv[8];
  snprintf(buf[0], 64, "order=%d", s->order);
  snprintf(buf[1], 64, "activation=%s", act_names[s->act]);
  snprintf(buf[2], 64, "representation=%s", s->neural ? "neural" : "raw");
  snprintf(buf[3], 64, "width=%zu", s->m);
  snprintf(buf[4], 64, "rep_width=%zu", s->D ? s->D : 1);
  snprintf(buf[5], 64, "init_std=0.5");
  for (int i = 0; i < 6; i++) kv[i] = buf[i];
  kv[6] = NULL;
  return kv;
}

/* Neural: a random whitening (M, c) and fitted = 1 written into every
 * replica, so forward and backward run without a trainer. */
static void set_random_whitening(model *m, const ref *r) {
  float *ph = read_floats(m->params, m->R * m->np);
  for (size_t rep = 0; rep < m->R; rep++) {
    float *p = ph + rep * m->np;
    for (size_t i = 0; i < r->D * r->D; i++) p[off_M(r) + i] = (float)urand(-0.6, 0.6);
    for (size_t i = 0; i < r->D; i++) p[off_c(r) + i] = (float)urand(-0.5, 0.5);
    p[off_fit(r)] = 1.0f;
  }
  assert_int_equal(hcl_buf_write(g_ctx, m->params, ph, m->R * m->np * sizeof *ph), HCL_OK);
  free(ph);
}

/* ---- tests without a device ------------------------------------------------ */

/* The reference gradient equals central finite differences of the
 * reference objective (every parameter, frozen ones included at 0). */
static void test_reference_gradient_fd(void **state) {
  (void)state;
  const int cases[][3] = {
      {1, A_RELU, 0}, {1, A_SOFTPLUS, 1}, {2, A_RELU3, 0}, {2, A_TANH, 1}, {2, A_QUAD, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    ref r = {
        .m = 5, .d = 4, .D = 6, .order = cases[c][0], .act = cases[c][1], .neural = cases[c][2]};
    r.dz = r.neural ? r.D : r.d;
    size_t np = ref_np(&r), n = 7;
    double *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g);
    double x[7 * 4], dout[7], *z = malloc(n * r.dz * sizeof *z);
    for (size_t i = 0; i < np; i++) p[i] = urand(-0.8, 0.8);
    for (size_t i = 0; i < n * r.d; i++) x[i] = urand(-1, 1);
    for (size_t i = 0; i < n; i++) dout[i] = urand(-1, 1);
    ref_z(&r, p, x, n, z);
    ref_grad(&r, p, z, n, dout, g);
    const double h = 1e-6;
    for (size_t i = 0; i < off_w0(&r); i++) { /* w: the only block f depends on through z fixed */
      double keep = p[i];
      p[i] = keep + h;
      double fp = ref_objective(&r, p, z, n, dout);
      p[i] = keep - h;
      double fm = ref_objective(&r, p, z, n, dout);
      p[i] = keep;
      double fd = (fp - fm) / (2 * h);
      if (!(fabs(fd - g[i]) <= 1e-6 * (1 + fabs(g[i]))))
        fail_msg("order %d %s: w[%zu]: reference %.12g, finite difference %.12g", r.order,
                 act_names[r.act], i, g[i], fd);
    }
    for (size_t i = off_w0(&r); i < np; i++) assert_true(g[i] == 0.0);
    free(p);
    free(g);
    free(z);
  }
}

/* ---- device tests ----------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "taylor");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_MODEL);
  assert_non_null(strstr(g_desc->citation, "2006.13436"));
  assert_non_null(strstr(g_desc->summary, "reading"));
  assert_non_null(g_vt->algorithms);
  assert_string_equal(g_vt->algorithms[0], "gd");
  assert_null(g_vt->algorithms[1]);
  const char *keys[] = {"width",    "order",    "activation", "representation", "rep_width",
                        "rep_bias", "init_std", "w0_std",     "whiten_rcond",   "whiten_size"};
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
    const hcl_param_desc *d = g_desc->params;
    while (d->key && strcmp(d->key, keys[k])) d++;
    assert_non_null(d->key);
    assert_true(d->help && strlen(d->help) > 20);
  }
}

static void test_layout(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  hcl_target_info t = target_vec(10, HCL_TASK_REGRESSION);
  model m;
  char buf[6][64];
  spec s = {.order = 2, .act = A_RELU3, .neural = 0, .m = 7, .D = 5};
  assert_int_equal(model_make(spec_kv(&s, buf), 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, 7 * 10 * 2 + 7);
  assert_int_equal(g_vt->out_dim(m.self), 1);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 3);
  assert_string_equal(b[0].name, "w");
  assert_int_equal(b[0].trainable, 1);
  assert_int_equal(b[0].rows, 7);
  assert_int_equal(b[0].cols, 10);
  assert_string_equal(b[1].name, "w0");
  assert_int_equal(b[1].trainable, 0);
  assert_string_equal(b[2].name, "a");
  assert_int_equal(b[2].trainable, 0);
  assert_int_equal(b[2].offset, 140);
  model_free(&m);
  /* neural: dz = D; the representation blocks are frozen; a rank-2 input is flattened */
  t.x.rank = 2;
  t.x.dims[0] = 2;
  t.x.dims[1] = 5;
  s.neural = 1;
  assert_int_equal(model_make(spec_kv(&s, buf), 1, &seed, 4, &t, &m), HCL_OK);
  ref r = {.m = 7, .d = 10, .D = 5, .dz = 5, .neural = 1};
  assert_int_equal(m.np, ref_np(&r));
  b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 8);
  const char *names[] = {"w",     "w0",         "a",          "rep.v",
                         "rep.b", "rep.whiten", "rep.offset", "rep.fitted"};
  size_t offs[] = {0,         off_w0(&r), off_a(&r), off_v(&r),
                   off_b(&r), off_M(&r),  off_c(&r), off_fit(&r)};
  for (size_t i = 0; i < nb; i++) {
    assert_string_equal(b[i].name, names[i]);
    assert_int_equal(b[i].offset, offs[i]);
    assert_int_equal(b[i].trainable, i == 0);
  }
  assert_int_equal(b[0].cols, 5);
  assert_int_equal(b[3].rows, 5);
  assert_int_equal(b[3].cols, 10);
  model_free(&m);
  /* rep_power = 2: D = d^2 whatever rep_width says (d = 10 here) */
  const char *kp[] = {"order=2",     "representation=neural", "width=7",
                      "rep_width=5", "rep_power=2",           NULL};
  assert_int_equal(model_make(kp, 1, &seed, 4, &t, &m), HCL_OK);
  b = g_vt->blocks(m.self, &nb);
  assert_int_equal(b[0].cols, 100);
  assert_int_equal(b[3].rows, 100);
  assert_int_equal(b[5].rows * b[5].cols, 100 * 100);
  model_free(&m);
  /* d^4 = 10 000 > 4096: refused, naming the key */
  const char *kq[] = {"order=2", "representation=neural", "width=7", "rep_power=4", NULL};
  assert_int_equal(model_make(kq, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "rep_power = 4"));
}

static void test_rejects(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  hcl_target_info t = target_vec(10, HCL_TASK_REGRESSION);
  model m;
  char buf[6][64];
  /* relu has no sigma'': refused for order 2, with the alternatives named */
  spec s = {.order = 2, .act = A_RELU, .m = 4};
  assert_int_equal(model_make(spec_kv(&s, buf), 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "relu3"));
  assert_null(m.self);
  /* one output only */
  s.act = A_RELU3;
  hcl_target_info tc = target_vec(10, HCL_TASK_CLASSES);
  tc.n_classes = 3;
  assert_int_equal(model_make(spec_kv(&s, buf), 1, &seed, 4, &tc, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "3-class"));
  hcl_target_info ty = target_vec(10, HCL_TASK_REGRESSION);
  ty.y_dim = 2;
  assert_int_equal(model_make(spec_kv(&s, buf), 1, &seed, 4, &ty, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "2 outputs"));
  /* create refuses unchecked params with the numbers */
  hcl_kv kv[11] = {{"width", "0", 0},           {"order", "3", 0},
                   {"activation", "auto", 0},   {"representation", "raw", 0},
                   {"rep_width", "4", 0},       {"rep_bias", "0", 0},
                   {"init_std", "0.01", 0},     {"w0_std", "1", 0},
                   {"whiten_rcond", "1e-6", 0}, {"whiten_size", "0", 0},
                   {"penalty_24", "-1", 0}};
  hcl_params p = {.section = "model", .schema = g_desc->params, .kv = kv, .n = 11};
  hcl_setup st = {
      .struct_size = sizeof st, .replicas = 1, .seeds = &seed, .params = &p, .max_batch = 4};
  void *self = (void *)&st;
  assert_int_equal(g_vt->create(g_ctx, &st, &t, &self), HCL_ERR_PARAM);
  assert_null(self);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "width = 0"));
  kv[0].value = "4";
  assert_int_equal(g_vt->create(g_ctx, &st, &t, &self), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "order = 3"));
  kv[1].value = "2";
  assert_int_equal(g_vt->create(g_ctx, &st, &t, &self), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "penalty_24 = -1"));
  /* batch above max_batch, backward without or after another forward */
  assert_int_equal(model_make(spec_kv(&s, buf), 1, &seed, 4, &t, &m), HCL_OK);
  hcl_buf x, out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * 10 * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, m.np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 4, grad), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 5, out), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "max_batch"));
  assert_int_equal(g_vt->forward(m.self, m.params, x, 4, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 3, grad), HCL_ERR_PARAM);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 4, grad), HCL_OK);
  size_t dim = 0;
  assert_int_equal(g_vt->features(m.self, m.params, 2, x, 4, out, &dim), HCL_ERR_PARAM);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

/* Plugin forward and gradient (float32, R = 3 replicas with their own seeds)
 * against the float64 reference on the parameters read back; n samples. */
static void check_forward_backward(const spec *s, size_t n) {
  enum { R = 3 };
  const uint64_t seeds[R] = {11, 2022, 987654321};
  const size_t d = 7, max_batch = n + 3;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION);
  model m;
  char buf[6][64];
  assert_int_equal(model_make(spec_kv(s, buf), R, seeds, max_batch, &t, &m), HCL_OK);
  ref r = {.m = s->m,
           .d = d,
           .D = s->neural ? s->D : 0,
           .order = s->order,
           .act = s->act,
           .neural = s->neural};
  r.dz = r.neural ? r.D : d;
  assert_int_equal(m.np, ref_np(&r));
  size_t np = m.np;
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  if (s->neural) set_random_whitening(&m, &r);
  float *xh = random_floats(R * n * d, -1, 1), *douth = random_floats(R * n, -1, 1);
  hcl_buf x = upload(xh, R * n * d), dout = upload(douth, R * n), out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  float *seven = malloc(R * np * sizeof *seven);
  for (size_t i = 0; i < R * np; i++) seven[i] = 7.0f; /* backward must overwrite all */
  grad = upload(seven, R * np);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_OK);
  float *ph = read_floats(m.params, R * np), *oh = read_floats(out, R * n);
  float *gh = read_floats(grad, R * np);
  double *ro = malloc(n * sizeof *ro), *rg = malloc(np * sizeof *rg);
  double *z = malloc(n * r.dz * sizeof *z);
  char what[128];
  for (size_t rep = 0; rep < R; rep++) {
    double *p = to_double(ph + rep * np, np), *xd = to_double(xh + rep * n * d, n * d);
    double *dd = to_double(douth + rep * n, n);
    ref_z(&r, p, xd, n, z);
    ref_out(&r, p, z, n, ro);
    snprintf(what, sizeof what, "order %d %s %s forward, replica %zu", s->order, act_names[s->act],
             s->neural ? "neural" : "raw", rep);
    assert_true(max_abs(ro, n) > 1e-3); /* a meaningful comparison */
    assert_close(oh + rep * n, ro, n, 1e-4, what);
    ref_grad(&r, p, z, n, dd, rg);
    snprintf(what, sizeof what, "order %d %s %s gradient, replica %zu", s->order, act_names[s->act],
             s->neural ? "neural" : "raw", rep);
    assert_close(gh + rep * np, rg, np, 1e-4, what);
    for (size_t i = off_w0(&r); i < np; i++) assert_true(gh[rep * np + i] == 0.0f);
    free(p);
    free(xd);
    free(dd);
  }
  assert_memory_not_equal(ph, ph + np, np * sizeof *ph); /* replicas have their own draws */
  free(ro), free(rg), free(z), free(ph), free(oh), free(gh), free(xh), free(douth), free(seven);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

static void test_forward_backward_raw(void **state) {
  (void)state;
  NEED_DEVICE();
  const spec cases[] = {{1, A_RELU, 0, 37, 0}, {1, A_SOFTPLUS, 0, 5, 0}, {2, A_RELU3, 0, 37, 0},
                        {2, A_TANH, 0, 70, 0}, {2, A_QUAD, 0, 3, 0},     {1, A_RELU3, 0, 130, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) check_forward_backward(&cases[c], 13);
}

static void test_forward_backward_neural(void **state) {
  (void)state;
  NEED_DEVICE();
  const spec cases[] = {{1, A_RELU, 1, 37, 12}, {2, A_RELU3, 1, 37, 12}, {2, A_SOFTPLUS, 1, 9, 5}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) check_forward_backward(&cases[c], 13);
}

/* Batches of 150 samples: on CPUs the backward takes its rows in tiles of
 * 64 (its accumulators kept between them), its units 16 at a time (a tail
 * at m = 37, 21) and its columns 16 at a time (dz = 7: a tail alone; 20: a
 * block and a tail; 33: two blocks and a tail). */
static void test_forward_backward_tiles(void **state) {
  (void)state;
  NEED_DEVICE();
  const spec cases[] = {{2, A_RELU3, 0, 37, 0}, {2, A_TANH, 1, 21, 20}, {1, A_SOFTPLUS, 1, 48, 33}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) check_forward_backward(&cases[c], 150);
}

/* The models are the Taylor terms of g(w0 + e w) = g0 + e f1 + e^2 f2 + ...
 * for the two-layer net g, found numerically from sigma itself: f1 by a
 * central difference, f2 by a second difference. The plugin's input z comes
 * from features(1) (for neural: its whitened representation). */
static void check_expansion(int order, int act, int neural) {
  enum { R = 3 };
  const uint64_t seeds[R] = {5, 6, 7};
  const size_t n = 9, d = 6, D = 10;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION);
  model m;
  char buf[6][64];
  spec s = {order, act, neural, 41, D};
  assert_int_equal(model_make(spec_kv(&s, buf), R, seeds, n, &t, &m), HCL_OK);
  ref r = {.m = 41,
           .d = d,
           .D = neural ? D : 0,
           .dz = neural ? D : d,
           .order = order,
           .act = act,
           .neural = neural};
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  if (neural) set_random_whitening(&m, &r);
  float *xh = random_floats(R * n * d, -1.5, 1.5);
  hcl_buf x = upload(xh, R * n * d), out, zb;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * r.dz * sizeof(float), &zb), HCL_OK);
  size_t dim = 0;
  assert_int_equal(g_vt->features(m.self, m.params, 1, x, n, zb, &dim), HCL_OK);
  assert_int_equal(dim, r.dz);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  float *ph = read_floats(m.params, R * m.np), *oh = read_floats(out, R * n);
  float *zh = read_floats(zb, R * n * r.dz);
  size_t k = r.m * r.dz;
  double *th = malloc(k * sizeof *th), *want = malloc(n * sizeof *want);
  const double eps = order == 1 ? 1e-6 : 1e-4;
  for (size_t rep = 0; rep < R; rep++) {
    double *p = to_double(ph + rep * m.np, m.np), *z = to_double(zh + rep * n * r.dz, n * r.dz);
    const double *w = p + off_w(&r), *w0 = p + off_w0(&r), *a = p + off_a(&r);
    for (size_t i = 0; i < n; i++) {
      double g[3];
      for (int sgn = -1; sgn <= 1; sgn++) {
        for (size_t j = 0; j < k; j++) th[j] = w0[j] + sgn * eps * w[j];
        g[sgn + 1] = two_layer(&r, th, a, z + i * r.dz);
      }
      want[i] = order == 1 ? (g[2] - g[0]) / (2 * eps) : (g[2] - 2 * g[1] + g[0]) / (2 * eps * eps);
    }
    char what[96];
    snprintf(what, sizeof what, "order %d %s %s: Taylor term of the two-layer net, replica %zu",
             order, act_names[act], neural ? "neural" : "raw", rep);
    assert_true(max_abs(want, n) > 1e-3);
    assert_close(oh + rep * n, want, n, order == 1 ? 1e-4 : 2e-3, what);
    free(p);
    free(z);
  }
  free(th), free(want), free(ph), free(oh), free(zh), free(xh);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &zb);
  model_free(&m);
}

/* A large representation (D = 256, batches of 1024: products that go to
 * CLBlast): two replicas with the same seed and whitening give the float64
 * reference's outputs (a replica-batched whitening product gave one replica
 * wrong rows) and its gradient (on CPUs: 16 row tiles, 16 column blocks). */
static void test_large_representation_replicas(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2 };
  const uint64_t seeds[R] = {5, 5};
  const size_t n = 1024, d = 16, D = 256;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION);
  model m;
  char buf[6][64];
  spec s = {2, A_RELU3, 1, 37, D};
  assert_int_equal(model_make(spec_kv(&s, buf), R, seeds, n, &t, &m), HCL_OK);
  ref r = {.m = 37, .d = d, .D = D, .dz = D, .order = 2, .act = A_RELU3, .neural = 1};
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  for (size_t i = off_M(&r); i < off_fit(&r); i++) /* one whitening for both */
    ph[i] = ph[m.np + i] = (float)urand(-0.1, 0.1);
  ph[off_fit(&r)] = ph[m.np + off_fit(&r)] = 1.0f;
  assert_int_equal(hcl_buf_write(g_ctx, m.params, ph, R * m.np * sizeof *ph), HCL_OK);
  float *xh = random_floats(n * d, -1, 1), *x2 = malloc(R * n * d * sizeof *x2);
  memcpy(x2, xh, n * d * sizeof *x2), memcpy(x2 + n * d, xh, n * d * sizeof *x2);
  hcl_buf x = upload(x2, R * n * d), out;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  float *oh = read_floats(out, R * n);
  double *p = to_double(ph, m.np), *xd = to_double(xh, n * d);
  double *z = malloc(n * D * sizeof *z), *want = malloc(n * sizeof *want);
  ref_z(&r, p, xd, n, z);
  ref_out(&r, p, z, n, want);
  assert_true(max_abs(want, n) > 1e-3);
  assert_close(oh, want, n, 1e-3, "D = 256, replica 0");
  assert_close(oh + n, want, n, 1e-3, "D = 256, replica 1");
  float *douth = random_floats(n, -1, 1), *d2 = malloc(R * n * sizeof *d2);
  memcpy(d2, douth, n * sizeof *d2), memcpy(d2 + n, douth, n * sizeof *d2);
  hcl_buf dout = upload(d2, R * n), grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * m.np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_OK);
  float *gh = read_floats(grad, R * m.np);
  double *dd = to_double(douth, n), *rg = malloc(m.np * sizeof *rg);
  ref_grad(&r, p, z, n, dd, rg);
  assert_true(max_abs(rg, m.np) > 1e-3);
  assert_close(gh, rg, m.np, 1e-3, "D = 256, gradient, replica 0");
  assert_close(gh + m.np, rg, m.np, 1e-3, "D = 256, gradient, replica 1");
  free(p), free(xd), free(z), free(want), free(ph), free(oh), free(xh), free(x2);
  free(douth), free(d2), free(gh), free(dd), free(rg);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

static void test_taylor_expansion(void **state) {
  (void)state;
  NEED_DEVICE();
  check_expansion(1, A_RELU, 0);
  check_expansion(1, A_TANH, 0);
  check_expansion(2, A_RELU3, 0);
  check_expansion(2, A_SOFTPLUS, 0);
  check_expansion(1, A_RELU, 1);
  check_expansion(2, A_RELU3, 1);
}

/* Init draws: a = +-1, w0 ~ N(0, 1), w ~ N(0, init_std^2), V ~ N(0, 1/d),
 * b = 0, whitening blocks 0. */
static void test_init_statistics(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2 };
  const uint64_t seeds[R] = {42, 1ull << 40};
  const size_t d = 16, M = 200, D = 64;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION);
  model m;
  const char *kv[] = {"order=2",      "representation=neural", "width=200",
                      "rep_width=64", "init_std=0.3",          NULL};
  assert_int_equal(model_make(kv, R, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  ref r = {.m = M, .d = d, .D = D, .dz = D, .neural = 1};
  float *ph = read_floats(m.params, R * m.np);
  struct {
    size_t off, count;
    double var;
  } blk[] = {{off_w(&r), M * D, 0.09},
             {off_w0(&r), M * D, 1.0}, /* the model sees z/sqrt(D): w0 . z/sqrt(D) ~ N(0, 1) */
             {off_v(&r), D * d, 1.0 / d},
             {off_a(&r), M, 1.0}};
  for (size_t rep = 0; rep < R; rep++) {
    const float *p = ph + rep * m.np;
    for (size_t b = 0; b < 4; b++) {
      double s = 0, s2 = 0;
      for (size_t i = 0; i < blk[b].count; i++) {
        s += p[blk[b].off + i];
        s2 += (double)p[blk[b].off + i] * p[blk[b].off + i];
      }
      double mean = s / blk[b].count, var = s2 / blk[b].count;
      assert_true(fabs(mean) < 5 * sqrt(blk[b].var / blk[b].count));
      assert_true(fabs(var / blk[b].var - 1) < 0.15);
    }
    for (size_t i = 0; i < M; i++) assert_true(fabsf(p[off_a(&r) + i]) == 1.0f);
    for (size_t i = off_b(&r); i < m.np; i++) assert_true(p[i] == 0.0f);
    /* w and w0 come from different streams */
    assert_memory_not_equal(p + off_w(&r), p + off_w0(&r), 64 * sizeof *p);
  }
  assert_memory_not_equal(ph, ph + m.np, off_b(&r) * sizeof *ph);
  free(ph);
  model_free(&m);
}

/* R replicas in one pass equal R separate models with the same seeds, bit
 * for bit: init, forward, backward (neural, with the same whitening). */
static void test_replicas_bitwise(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {101, 202, 303};
  const size_t n = 11, d = 8;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION);
  char buf[6][64];
  spec s = {2, A_RELU3, 1, 33, 9};
  ref r = {.m = 33, .d = d, .D = 9, .dz = 9, .neural = 1};
  model all;
  assert_int_equal(model_make(spec_kv(&s, buf), R, seeds, n, &t, &all), HCL_OK);
  size_t np = all.np;
  assert_int_equal(g_vt->init(all.self, all.params), HCL_OK);
  set_random_whitening(&all, &r);
  float *pall = read_floats(all.params, R * np), *xh = random_floats(R * n * d, -1, 1);
  float *dh = random_floats(R * n, -1, 1);
  hcl_buf x = upload(xh, R * n * d), dout = upload(dh, R * n), out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(g_vt->forward(all.self, all.params, x, n, out), HCL_OK);
  assert_int_equal(g_vt->backward(all.self, all.params, dout, n, grad), HCL_OK);
  float *oall = read_floats(out, R * n), *gall = read_floats(grad, R * np);
  for (size_t rep = 0; rep < R; rep++) {
    model one;
    assert_int_equal(model_make(spec_kv(&s, buf), 1, &seeds[rep], n, &t, &one), HCL_OK);
    assert_int_equal(g_vt->init(one.self, one.params), HCL_OK);
    float *p1 = read_floats(one.params, np);
    /* the random draws are the replica's own; then the same whitening */
    assert_memory_equal(p1, pall + rep * np, off_M(&r) * sizeof *p1);
    assert_int_equal(hcl_buf_write(g_ctx, one.params, pall + rep * np, np * sizeof *p1), HCL_OK);
    hcl_buf x1 = upload(xh + rep * n * d, n * d), d1 = upload(dh + rep * n, n), o1, g1;
    assert_int_equal(hcl_buf_alloc(g_ctx, n * sizeof(float), &o1), HCL_OK);
    assert_int_equal(hcl_buf_alloc(g_ctx, np * sizeof(float), &g1), HCL_OK);
    assert_int_equal(g_vt->forward(one.self, one.params, x1, n, o1), HCL_OK);
    assert_int_equal(g_vt->backward(one.self, one.params, d1, n, g1), HCL_OK);
    float *oh = read_floats(o1, n), *gh = read_floats(g1, np);
    assert_memory_equal(oh, oall + rep * n, n * sizeof *oh);
    assert_memory_equal(gh, gall + rep * np, np * sizeof *gh);
    free(p1), free(oh), free(gh);
    hcl_buf_free(g_ctx, &x1);
    hcl_buf_free(g_ctx, &d1);
    hcl_buf_free(g_ctx, &o1);
    hcl_buf_free(g_ctx, &g1);
    model_free(&one);
  }
  free(pall), free(xh), free(dh), free(oall), free(gall);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&all);
}

/* ---- the whitening, through a trainer built here as run.c builds it -------- */

typedef struct rig {
  hcl_train_cfg cfg;
  const hcl_target_vt *tvt;
  void *target;
  model m;
  hcl_trainer t;
} rig;

/* A staircase target with Gaussian inputs (n = d) and a taylor model on it,
 * P training samples, full batch. */
static void rig_make(rig *g, size_t R, const uint64_t *seeds, size_t d, size_t P, size_t B,
                     const char *const *model_kv) {
  memset(g, 0, sizeof *g);
  const hcl_plugin_desc *td = hcl_test_plugin("staircase", HCL_PLUGIN_TARGET);
  char nk[32];
  snprintf(nk, sizeof nk, "n=%zu", d);
  const char *tkv[] = {nk, "k=2", "inputs=gaussian", NULL};
  hcl_params *tp = hcl_test_params(td, "target", tkv),
             *mp = hcl_test_params(g_desc, "model", model_kv);
  hcl_setup s = {.struct_size = sizeof s,
                 .replicas = (uint32_t)R,
                 .seeds = seeds,
                 .params = tp,
                 .train_size = P,
                 .max_batch = B};
  g->tvt = td->vt;
  assert_int_equal(g->tvt->create(g_ctx, &s, &g->target), HCL_OK);
  g->t.tinfo.struct_size = sizeof g->t.tinfo;
  assert_int_equal(g->tvt->info(g->target, &g->t.tinfo), HCL_OK);
  s.params = mp;
  if (g_vt->create(g_ctx, &s, &g->t.tinfo, &g->m.self) != HCL_OK) fail_msg("%s", hcl_errmsg(g_ctx));
  hcl_test_params_free(tp);
  hcl_test_params_free(mp);
  g->cfg = (hcl_train_cfg){.replicas = (uint32_t)R,
                           .seeds = seeds,
                           .steps = 0,
                           .batch = B,
                           .train_size = P,
                           .loss = HCL_LOSS_MSE,
                           .eval_batch = B,
                           .algorithm = "gd"};
  g->cfg.sched.lr = 0.01;
  g->t.ctx = g_ctx;
  g->t.cfg = &g->cfg;
  g->t.tvt = g->tvt;
  g->t.target = g->target;
  g->t.mvt = g_vt;
  g->t.model = g->m.self;
  assert_int_equal(hcl_trainer_init(&g->t), HCL_OK);
  g->m.R = R;
  g->m.np = g_vt->n_params(g->m.self);
  g->m.params = g->t.params;
}

static void rig_free(rig *g) {
  hcl_trainer_release(&g->t);
  g_vt->destroy(g->m.self);
  g->tvt->destroy(g->target);
}

/* Covariance [D, D] and mean [D] in double of z [n, D]. */
static void moments(const float *z, size_t n, size_t D, double *mean, double *cov) {
  memset(mean, 0, D * sizeof *mean);
  memset(cov, 0, D * D * sizeof *cov);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < D; j++) mean[j] += z[i * D + j] / (double)n;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < D; j++)
      for (size_t k = 0; k < D; k++)
        cov[j * D + k] += (z[i * D + j] - mean[j]) * (z[i * D + k] - mean[k]) / (double)n;
}

/* Fit on N samples of the unlabelled stream in chunks of B (the model's
 * max_batch); the training set (P samples) plays no part. Then z of those N
 * samples, chunk by chunk, has mean 0 and covariance c I with c the mean
 * square per coordinate of their x (the raw input's scale), or, with fewer
 * samples than units, c' times an orthogonal projection with trace(cov) =
 * c D. rank_out: the rank, trace(cov)^2 / trace(cov^2). */
static void check_whitened(size_t R, size_t d, size_t D, size_t N, size_t P, size_t B,
                           double *rank_out) {
  const uint64_t seeds[4] = {3, 4, 5, 6};
  char dk[32], nk[32];
  snprintf(dk, sizeof dk, "rep_width=%zu", D);
  snprintf(nk, sizeof nk, "whiten_size=%zu", N);
  const char *kv[] = {"order=2", "representation=neural", "width=8", dk, nk, "rep_bias=0.5", NULL};
  rig g;
  rig_make(&g, R, seeds, d, P, B, kv);
  hcl_buf x, y, zb, out;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * B * d * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * B * sizeof(float), &y), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * B * D * sizeof(float), &zb), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * B * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_trainer_batch(&g.t, HCL_STREAM_TRAIN, 0, B, x, y), HCL_OK);
  /* before the fit the model outputs 0 and refuses to train (plain sgd) */
  assert_int_equal(g_vt->forward(g.m.self, g.t.params, x, B, out), HCL_OK);
  float *o = read_floats(out, R * B);
  for (size_t i = 0; i < R * B; i++) assert_true(o[i] == 0.0f);
  free(o);
  assert_int_equal(g_vt->backward(g.m.self, g.t.params, out, B, g.t.grad), HCL_ERR_CONFIG);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "algorithm = gd"));
  /* prepare() fits the whitening before the first evaluation */
  assert_int_equal(g_vt->prepare(g.m.self, &g.t), HCL_OK);
  float *zh = malloc(R * N * D * sizeof *zh), *ph = read_floats(g.t.params, R * g.m.np);
  double msx[4] = {0};
  for (size_t first = 0; first < N; first += B) { /* zh [R, N, D] */
    size_t n = N - first < B ? N - first : B, dim = 0;
    assert_int_equal(hcl_trainer_batch(&g.t, HCL_STREAM_UNLABELLED, first, n, x, y), HCL_OK);
    float *xh = read_floats(x, R * n * d);
    for (size_t rep = 0; rep < R; rep++)
      for (size_t i = 0; i < n * d; i++)
        msx[rep] += (double)xh[rep * n * d + i] * xh[rep * n * d + i] / ((double)N * d);
    free(xh);
    assert_int_equal(g_vt->features(g.m.self, g.t.params, 1, x, n, zb, &dim), HCL_OK);
    assert_int_equal(dim, D);
    float *c = read_floats(zb, R * n * D);
    for (size_t rep = 0; rep < R; rep++)
      memcpy(zh + (rep * N + first) * D, c + rep * n * D, n * D * sizeof *zh);
    free(c);
  }
  double *mean = malloc(D * sizeof *mean), *cov = malloc(D * D * sizeof *cov);
  ref r = {.m = 8, .d = d, .D = D, .dz = D, .neural = 1};
  for (size_t rep = 0; rep < R; rep++) {
    assert_true(ph[rep * g.m.np + off_fit(&r)] == (float)N);
    /* Gaussian inputs: near 1, but not 1 to the tolerance below */
    assert_true(fabs(msx[rep] - 1) < 0.2);
    moments(zh + rep * N * D, N, D, mean, cov);
    for (size_t j = 0; j < D; j++)
      if (!(fabs(mean[j]) < 1e-4))
        fail_msg("replica %zu: whitened mean[%zu] = %g", rep, j, mean[j]);
    double tr = 0, tr2 = 0, worst = 0;
    for (size_t j = 0; j < D; j++) tr += cov[j * D + j];
    for (size_t j = 0; j < D * D; j++) tr2 += cov[j] * cov[j];
    if (!(fabs(tr - msx[rep] * D) < 1e-4 * D))
      fail_msg("replica %zu: E|z|^2 = %.7g, D E|x|^2/d = %.7g", rep, tr, msx[rep] * D);
    if (D < N) { /* full rank: c I */
      for (size_t j = 0; j < D; j++)
        for (size_t k = 0; k < D; k++)
          worst = fmax(worst, fabs(cov[j * D + k] - msx[rep] * (j == k)));
      if (!(worst < 1e-4)) fail_msg("replica %zu: |cov - %g I| = %g", rep, msx[rep], worst);
    } else { /* rank < D: c' times an orthogonal projection, cov^2 = c' cov */
      double cp = tr2 / tr;
      for (size_t j = 0; j < D; j++)
        for (size_t k = 0; k < D; k++) {
          double s = 0;
          for (size_t l = 0; l < D; l++) s += cov[j * D + l] * cov[l * D + k];
          worst = fmax(worst, fabs(s - cp * cov[j * D + k]));
        }
      if (!(worst < 1e-4 * cp)) fail_msg("replica %zu: |cov^2 - c cov| = %g", rep, worst);
    }
    rank_out[rep] = tr * tr / tr2;
  }
  free(mean), free(cov), free(zh), free(ph);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &y);
  hcl_buf_free(g_ctx, &zb);
  hcl_buf_free(g_ctx, &out);
  rig_free(&g);
}

static void test_whitening(void **state) {
  (void)state;
  NEED_DEVICE();
  double rk[4];
  check_whitened(2, 6, 24, 400, 50, 128, rk);
  assert_true(fabs(rk[0] - 24) < 1e-2 && fabs(rk[1] - 24) < 1e-2);
  /* more units than samples: the centred data span at most N - 1 directions */
  check_whitened(1, 5, 40, 30, 100, 30, rk);
  assert_true(rk[0] > 20 && rk[0] < 29.5);
  assert_true(fabs(rk[0] - round(rk[0])) < 1e-2);
}

/* Floats [first, first + count) of every replica of params [R, np], as
 * [R, count] (malloc'd). */
static float *replica_slices(hcl_buf params, size_t R, size_t np, size_t first, size_t count) {
  float *ph = read_floats(params, R * np), *out = malloc(R * count * sizeof *out);
  for (size_t rep = 0; rep < R; rep++)
    memcpy(out + rep * count, ph + rep * np + first, count * sizeof *out);
  free(ph);
  return out;
}

/* The whitening blocks (M, c, fitted) after prepare(), replica-major. */
static float *fitted_whitening(size_t R, const uint64_t *seeds, size_t P, const char *const *kv,
                               size_t *per) {
  rig g;
  rig_make(&g, R, seeds, 6, P, 64, kv);
  assert_int_equal(g_vt->prepare(g.m.self, &g.t), HCL_OK);
  size_t np = g.m.np, D = 40;
  ref r = {.m = 8, .d = 6, .D = D, .dz = D, .neural = 1};
  *per = np - off_M(&r);
  float *out = replica_slices(g.t.params, R, np, off_M(&r), *per);
  rig_free(&g);
  return out;
}

/* The whitening never sees the labelled training set: changing its size
 * (and so its points) changes nothing, bit for bit. */
static void test_whitening_ignores_training_set(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seeds[2] = {8, 9};
  const char *kv[] = {"order=2", "representation=neural", "width=8", "rep_width=40", NULL};
  size_t per = 0;
  float *a = fitted_whitening(2, seeds, 16, kv, &per),
        *b = fitted_whitening(2, seeds, 500, kv, &per);
  assert_memory_equal(a, b, 2 * per * sizeof *a);
  assert_true(a[per - 1] == 800.0f); /* fitted on 20 * rep_width samples by default */
  free(a), free(b);
}

/* With no more training points than units (P = D = 40), inputs the fit
 * never saw (the test stream) come out on the raw input's scale: the mean
 * square per coordinate of z is that of x, within the estimation error of
 * the 800 fitting samples, and no coordinate explodes (fitted on the P
 * training points, the covariance had rank 39 and test z a mean square of
 * about 50 per coordinate, one coordinate 170). */
static void test_features_bounded_small_p(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 12;
  const size_t R = 1, d = 6, D = 40, P = 40, T = 500, B = 500;
  const char *kv[] = {"order=2",      "representation=neural", "width=8",
                      "rep_width=40", "rep_bias=0.5",          NULL};
  rig g;
  rig_make(&g, R, &seed, d, P, B, kv);
  assert_int_equal(g_vt->prepare(g.m.self, &g.t), HCL_OK);
  hcl_buf x, y, zb;
  assert_int_equal(hcl_buf_alloc(g_ctx, T * d * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, T * sizeof(float), &y), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, T * D * sizeof(float), &zb), HCL_OK);
  assert_int_equal(hcl_trainer_batch(&g.t, HCL_STREAM_TEST, 0, T, x, y), HCL_OK);
  size_t dim = 0;
  assert_int_equal(g_vt->features(g.m.self, g.t.params, 1, x, T, zb, &dim), HCL_OK);
  float *xh = read_floats(x, T * d), *zh = read_floats(zb, T * D);
  double msx = 0, msz = 0, big = 0, col[40] = {0};
  for (size_t i = 0; i < T * d; i++) msx += (double)xh[i] * xh[i] / (double)(T * d);
  for (size_t i = 0; i < T * D; i++) {
    msz += (double)zh[i] * zh[i] / (double)(T * D);
    col[i % D] += (double)zh[i] * zh[i] / (double)T;
  }
  for (size_t j = 0; j < D; j++) big = fmax(big, col[j]);
  fprintf(stderr,
          "  P = %zu <= D = %zu: test mean square per coordinate z %.4g, x %.4g, largest %.3g\n", P,
          D, msz, msx, big);
  if (!(msz > 0.8 * msx && msz < 1.35 * msx))
    fail_msg("test features: mean square %g per coordinate, the raw input's %g", msz, msx);
  assert_true(big < 10 * msx); /* no direction blown up */
  free(xh), free(zh);
  hcl_buf_free(g_ctx, &x), hcl_buf_free(g_ctx, &y), hcl_buf_free(g_ctx, &zb);
  rig_free(&g);
}

/* ---- the ||W||_{2,4}^8 penalty (model.penalty_24) ---------------------------- */

/* float64 reference: (sum_r |w_r|^4)^2 of w [m, dz], and its gradient
 * 8 S |w_r|^2 w_r into g (when g is not NULL). */
static double ref_pen(const double *w, size_t m, size_t dz, double *g) {
  double S = 0, n2[64];
  for (size_t r = 0; r < m; r++) {
    n2[r] = dot(w + r * dz, w + r * dz, dz);
    S += n2[r] * n2[r];
  }
  for (size_t r = 0; g && r < m; r++)
    for (size_t c = 0; c < dz; c++) g[r * dz + c] = 8 * S * n2[r] * w[r * dz + c];
  return S * S;
}

/* The reference's value in closed form (rows of equal norm c: (m c^4)^2;
 * one nonzero row: |w_1|^8) and its gradient against central finite
 * differences. */
static void test_penalty_reference(void **state) {
  (void)state;
  const size_t m = 6, dz = 4;
  double w[24], g[24];
  for (size_t i = 0; i < m * dz; i++) w[i] = (i % dz == i / dz % dz) ? 1.5 : 0.0;
  assert_true(fabs(ref_pen(w, m, dz, NULL) - pow(m * pow(1.5, 4), 2)) < 1e-9);
  memset(w, 0, sizeof w);
  w[5] = 0.3, w[6] = -0.4; /* row 1, |w_1| = 0.5 */
  assert_true(fabs(ref_pen(w, m, dz, NULL) - pow(0.5, 8)) < 1e-15);
  for (size_t i = 0; i < m * dz; i++) w[i] = urand(-0.9, 0.9);
  ref_pen(w, m, dz, g);
  const double h = 1e-6;
  for (size_t i = 0; i < m * dz; i++) {
    double keep = w[i];
    w[i] = keep + h;
    double fp = ref_pen(w, m, dz, NULL);
    w[i] = keep - h;
    double fm = ref_pen(w, m, dz, NULL);
    w[i] = keep;
    double fd = (fp - fm) / (2 * h);
    if (!(fabs(fd - g[i]) <= 1e-6 * (1 + fabs(g[i]))))
      fail_msg("penalty: w[%zu]: reference %.12g, finite difference %.12g", i, g[i], fd);
  }
}

/* w after one step of gd from the init, per replica [R, m * dz]; p0 (when
 * not NULL) gets the initial w. */
static float *gd_one_step(size_t R, const uint64_t *seeds, const char *pen, double lr, float *p0,
                          size_t m, size_t dz) {
  const char *kv[] = {"order=2", "representation=raw", "width=8", "init_std=0.5", pen, NULL};
  rig g;
  rig_make(&g, R, seeds, dz, 64, 64, kv);
  g.cfg.steps = 1;
  g.cfg.sched.lr = lr;
  if (p0) {
    float *w0 = replica_slices(g.t.params, R, g.m.np, 0, m * dz);
    memcpy(p0, w0, R * m * dz * sizeof *p0);
    free(w0);
  }
  if (g_vt->train(g.m.self, "gd", &g.t) != HCL_OK) fail_msg("%s", hcl_errmsg(g_ctx));
  float *w = replica_slices(g.t.params, R, g.m.np, 0, m * dz);
  rig_free(&g);
  return w;
}

/* One gd step with lambda against one without, from the same init and on
 * the same data: the difference is -lr times the penalty's gradient at the
 * init, which the float64 reference gives, in every replica (each its own
 * S). */
static void test_penalty_gradient_device(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seeds[2] = {21, 22};
  const size_t R = 2, m = 8, dz = 5;
  const double lr = 0.01, lambda = 0.1;
  float p0[2 * 8 * 5];
  float *with = gd_one_step(R, seeds, "penalty_24=0.1", lr, p0, m, dz),
        *without = gd_one_step(R, seeds, "penalty_24=0", lr, NULL, m, dz);
  double w[40], g[40], got[40], want[40];
  for (size_t rep = 0; rep < R; rep++) {
    for (size_t i = 0; i < m * dz; i++) w[i] = p0[rep * m * dz + i];
    ref_pen(w, m, dz, g);
    for (size_t i = 0; i < m * dz; i++) {
      got[i] = (double)with[rep * m * dz + i] - (double)without[rep * m * dz + i];
      want[i] = -lr * lambda * g[i];
    }
    double big = max_abs(want, m * dz);
    assert_true(big > 1e-3); /* a step the check can see */
    for (size_t i = 0; i < m * dz; i++)
      if (!(fabs(got[i] - want[i]) <= 1e-4 * big))
        fail_msg("replica %zu, w[%zu]: the penalty moved it by %.8g, the reference %.8g", rep, i,
                 got[i], want[i]);
  }
  free(with), free(without);
}

/* The plugin's host eigen-solver (compiled into this test from its source):
 * A u_i = lambda_i u_i, the u_i orthonormal, ascending, on random symmetric
 * matrices, a repeated eigenvalue and a rank-deficient one. */
static void check_eigh(double *a, size_t n) {
  double *v = malloc(n * n * sizeof *v), *w = malloc(n * sizeof *w);
  memcpy(v, a, n * n * sizeof *v);
  assert_int_equal(hcl_taylor_eigh(v, w, n), 0);
  double scale = 0;
  for (size_t i = 0; i < n * n; i++) scale = fmax(scale, fabs(a[i]));
  for (size_t i = 0; i < n; i++) {
    if (i) assert_true(w[i - 1] <= w[i]);
    const double *u = v + i * n;
    for (size_t j = 0; j < n; j++) {
      double s = 0;
      for (size_t k = 0; k < n; k++) s += a[j * n + k] * u[k];
      if (!(fabs(s - w[i] * u[j]) < 1e-10 * (1 + scale) * n))
        fail_msg("n = %zu: (A u_%zu)[%zu] = %g, lambda u = %g", n, i, j, s, w[i] * u[j]);
    }
    for (size_t k = 0; k <= i; k++) assert_true(fabs(dot(u, v + k * n, n) - (k == i)) < 1e-12 * n);
  }
  free(v);
  free(w);
}

static void test_eigh(void **state) {
  (void)state;
  const size_t sizes[] = {1, 2, 3, 17, 64};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t n = sizes[s];
    double *a = malloc(n * n * sizeof *a);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = urand(-1, 1);
    check_eigh(a, n);
    /* B B^T with B [n, n/2]: rank n/2, eigenvalue 0 repeated */
    size_t k = n / 2 ? n / 2 : 1;
    double *b = malloc(n * k * sizeof *b);
    for (size_t i = 0; i < n * k; i++) b[i] = urand(-1, 1);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) a[i * n + j] = dot(b + i * k, b + j * k, k);
    check_eigh(a, n);
    /* the identity times 3: every eigenvalue 3 */
    for (size_t i = 0; i < n * n; i++) a[i] = i % (n + 1) == 0 ? 3 : 0;
    check_eigh(a, n);
    free(a);
    free(b);
  }
}

/* ---- end to end through hcl_run ------------------------------------------- */

static const char *gd_cfg =
    "[run]\nseed = 3\n"
    "[target]\nplugin = staircase\nn = 6\nk = 2\ninputs = gaussian\n"
    "[model]\nplugin = taylor\nwidth = 256\norder = 2\nrepresentation = neural\nrep_width = 24\n"
    "[train]\nalgorithm = gd\nsteps = 200\nbatch = 200\ntrain_size = 200\nlr = 5\nloss = mse\n"
    "[eval]\nevery = 50\ntest_size = 400\nprobes = false\n";

static hcl_status run_cfg(const char *text, const char *const *sets, size_t n_sets, char *dir,
                          char *err, size_t errlen) {
  const char *path = hcl_test_write_temp("taylor.ini", text);
  hcl_run_options o = {.config_path = path,
                       .sets = sets,
                       .n_sets = n_sets,
                       .device = "cpu",
                       .out_dir = hcl_test_tmpdir(),
                       .plugin_path = HCL_TEST_PLUGIN_DIR};
  hcl_status rc = hcl_run(&o, err, errlen);
  snprintf(dir, 1024, "%s", o.run_dir);
  return rc;
}

static char *read_in(const char *dir, const char *file) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  return hcl_test_read_file(p);
}

/* train_loss of every line of a replica, in order (NaN lines skipped). */
static size_t train_losses(const char *text, int replica, double *out, size_t max) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"replica\":%d,", replica);
  size_t n = 0;
  for (const char *line = text; line && *line && n < max;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)len, line);
    double v;
    if (strstr(buf, pat) && hcl_test_json_num(buf, "train_loss", &v) && isfinite(v)) out[n++] = v;
    line = end ? end + 1 : NULL;
  }
  return n;
}

static void check_gd_lowers_loss(const char *cfg, const char *const *sets, size_t n_sets) {
  char dir[1024], err[4096];
  if (run_cfg(cfg, sets, n_sets, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *mt = read_in(dir, "metrics.jsonl");
  assert_non_null(mt);
  double l[64];
  size_t n = train_losses(mt, 0, l, 64);
  assert_true(n >= 3);
  for (size_t i = 1; i < n; i++)
    if (!(l[i] <= l[i - 1] * 1.0001)) fail_msg("train loss rose: %g then %g", l[i - 1], l[i]);
  if (!(l[n - 1] < 0.5 * l[0])) fail_msg("train loss %g -> %g: not halved", l[0], l[n - 1]);
  char *man = read_in(dir, "manifest.json");
  assert_non_null(strstr(man, "\"status\":\"completed\""));
  free(mt);
  free(man);
}

static void test_gd_neural_staircase(void **state) {
  (void)state;
  NEED_DEVICE();
  check_gd_lowers_loss(gd_cfg, NULL, 0);
  /* the NTK on the raw input, too */
  const char *raw[] = {"model.order=1", "model.representation=raw", "train.lr=3"};
  check_gd_lowers_loss(gd_cfg, raw, 3);
}

static void test_gd_low_rank_poly(void **state) {
  (void)state;
  NEED_DEVICE();
  const hcl_plugin *pl = hcl_registry_find(hcl_test_registry(), "low_rank_poly", HCL_PLUGIN_TARGET);
  if (!pl) {
    fprintf(stderr, "  [ skip ] low_rank_poly target not built: GD on it not tested\n");
    skip();
  }
  const char *sets[3];
  size_t ns = 0;
  sets[ns++] = "target.plugin=low_rank_poly";
  /* keep the input small whatever the target calls its dimension */
  for (const hcl_param_desc *d = pl->desc->params; d && d->key; d++) {
    if (!strcmp(d->key, "d")) sets[ns++] = "target.d=8";
  }
  static const char *cfg =
      "[run]\nseed = 3\n"
      "[target]\nplugin = low_rank_poly\n"
      "[model]\nplugin = taylor\nwidth = 256\norder = 2\nrepresentation = neural\n"
      "rep_width = 32\n"
      "[train]\nalgorithm = gd\nsteps = 200\nbatch = 300\ntrain_size = 300\nlr = 5\n"
      "loss = mse\n"
      "[eval]\nevery = 50\ntest_size = 400\nprobes = false\n";
  check_gd_lowers_loss(cfg, sets + 1, ns - 1);
}

/* The whitening is fitted by prepare() for any algorithm, so the runtime's
 * plain sgd works on the neural representation; it is fitted on the
 * unlabelled stream, so fresh samples (train_size = 0) work too. */
static void test_sgd_neural(void **state) {
  (void)state;
  NEED_DEVICE();
  char dir[1024], err[4096];
  const char *sets[] = {"train.algorithm=sgd", "train.steps=5"};
  if (run_cfg(gd_cfg, sets, 2, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  const char *sets2[] = {"train.train_size=0", "train.batch=50", "train.steps=5"};
  if (run_cfg(gd_cfg, sets2, 3, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
}

/* The penalty is applied by gd alone: with the runtime's sgd the run is
 * refused before it starts, the key and the algorithm named. */
static void test_penalty_needs_gd(void **state) {
  (void)state;
  NEED_DEVICE();
  char dir[1024], err[4096];
  const char *sets[] = {"train.algorithm=sgd", "train.steps=5", "model.penalty_24=0.1"};
  assert_int_not_equal(run_cfg(gd_cfg, sets, 3, dir, err, sizeof err), HCL_OK);
  if (!strstr(err, "penalty_24") || !strstr(err, "algorithm = gd")) fail_msg("%s", err);
}

/* On a CPU device (run_cfg's) the model runs as a graph whose forward is
 * the fused head alone (after the representation, when neural) and whose
 * backward is two steps whatever the representation: the zeroed gradient
 * and the head's (dS and grad w inside it). The frozen w0 and the fixed
 * representation cost no backward work. */
static void test_graph_backward_steps(void **state) {
  (void)state;
  NEED_DEVICE();
  const char *raw[] = {"train.steps=2", "model.representation=raw"};
  const char *neural[] = {"train.steps=2"};
  const char *const *sets[] = {raw, neural};
  const size_t n_sets[] = {2, 1};
  const double fwd[] = {1, 2}; /* [rep,] the fused head */
  for (int k = 0; k < 2; k++) {
    char dir[1024], err[4096];
    if (run_cfg(gd_cfg, sets[k], n_sets[k], dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
    char *man = read_in(dir, "manifest.json");
    assert_non_null(man);
    const char *at = strstr(man, "\"model_graph\"");
    assert_non_null(at);
    double f = 0, b = 0;
    assert_true(hcl_test_json_num(at, "forward_steps", &f));
    assert_true(hcl_test_json_num(at, "backward_steps", &b));
    if (f != fwd[k] || b != 2)
      fail_msg("%s: %g forward and %g backward steps, expected %g and 2", k ? "neural" : "raw", f,
               b, fwd[k]);
    free(man);
  }
}

/* On a CPU device the head forms U, S and dS in registers (and counts the
 * products it runs, 2 flops per multiply-add: U, S forward; U, S, grad w
 * backward): forward and
 * backward of R = 4 replicas at n = m = 256 leave hiercl's device
 * allocations less than a quarter of one [R, n, m] array above the
 * parameters, gradient and output (the transposed weights and the
 * backward's accumulators), where the product graph held U, S and dS and
 * the fused head before 2026-12-05 still dS. Counts allocations; times
 * nothing. */
static void test_fused_head_memory(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!(g_ctx->dev.type & CL_DEVICE_TYPE_CPU)) skip(); /* GPUs keep the products */
  enum { R = 4 };
  const uint64_t seeds[R] = {1, 2, 3, 4};
  const size_t n = 256, d = 16;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION);
  spec s = {2, A_RELU3, 0, 256, 0};
  char buf[6][64];
  float *xh = random_floats(R * n * d, -1, 1), *douth = random_floats(R * n, -1, 1);
  hcl_buf x = upload(xh, R * n * d), dout = upload(douth, R * n), out, grad;
  size_t before = hcl_mem_current(g_ctx);
  model m;
  assert_int_equal(model_make(spec_kv(&s, buf), R, seeds, n, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * m.np * sizeof(float), &grad), HCL_OK);
  double flops = g_ctx->gemm_flops, mnk = (double)R * n * s.m * d; /* raw: z has d columns */
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  assert_true(g_ctx->gemm_flops - flops == 4 * mnk); /* U and S, counted for hiercl bench */
  assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_OK);
  assert_true(g_ctx->gemm_flops - flops == 10 * mnk); /* U and S again, and grad w */
  size_t used = hcl_mem_current(g_ctx) - before;
  size_t small = (2 * R * m.np + R * n) * sizeof(float), big = R * n * s.m * sizeof(float);
  if (used > small + big / 4)
    fail_msg("%zu bytes allocated: more than the parameters, gradient and output (%zu) and "
             "a quarter of an array of [R, n, m] (%zu)",
             used, small, big);
  free(xh), free(douth);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

/* Two replicas in one run give the metrics of two separate runs. */
static void test_replicas_equal_runs(void **state) {
  (void)state;
  NEED_DEVICE();
  char d2[1024], da[1024], db[1024], err[4096];
  const char *two[] = {"run.seeds=11, 12", "train.steps=60", "eval.every=20", "train.lr=0.03"};
  const char *one_a[] = {"run.seed=11", "train.steps=60", "eval.every=20", "train.lr=0.03"};
  const char *one_b[] = {"run.seed=12", "train.steps=60", "eval.every=20", "train.lr=0.03"};
  if (run_cfg(gd_cfg, two, 4, d2, err, sizeof err)) fail_msg("%s", err);
  if (run_cfg(gd_cfg, one_a, 4, da, err, sizeof err)) fail_msg("%s", err);
  if (run_cfg(gd_cfg, one_b, 4, db, err, sizeof err)) fail_msg("%s", err);
  char *m2 = read_in(d2, "metrics.jsonl"), *ma = read_in(da, "metrics.jsonl"),
       *mb = read_in(db, "metrics.jsonl");
  double l2[16], la[16], l3[16], lb[16];
  size_t n2 = train_losses(m2, 0, l2, 16), n3 = train_losses(m2, 1, l3, 16);
  size_t na = train_losses(ma, 0, la, 16), nb = train_losses(mb, 0, lb, 16);
  assert_int_equal(n2, na);
  assert_int_equal(n3, nb);
  assert_true(na >= 3);
  for (size_t i = 0; i < na; i++) assert_true(l2[i] == la[i]);
  for (size_t i = 0; i < nb; i++) assert_true(l3[i] == lb[i]);
  assert_true(la[na - 1] != lb[nb - 1]);
  free(m2), free(ma), free(mb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_gradient_fd),
      cmocka_unit_test(test_descriptor),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_forward_backward_raw),
      cmocka_unit_test(test_forward_backward_neural),
      cmocka_unit_test(test_forward_backward_tiles),
      cmocka_unit_test(test_fused_head_memory),
      cmocka_unit_test(test_taylor_expansion),
      cmocka_unit_test(test_large_representation_replicas),
      cmocka_unit_test(test_init_statistics),
      cmocka_unit_test(test_replicas_bitwise),
      cmocka_unit_test(test_whitening),
      cmocka_unit_test(test_whitening_ignores_training_set),
      cmocka_unit_test(test_features_bounded_small_p),
      cmocka_unit_test(test_eigh),
      cmocka_unit_test(test_penalty_reference),
      cmocka_unit_test(test_penalty_gradient_device),
      cmocka_unit_test(test_gd_neural_staircase),
      cmocka_unit_test(test_gd_low_rank_poly),
      cmocka_unit_test(test_sgd_neural),
      cmocka_unit_test(test_penalty_needs_gd),
      cmocka_unit_test(test_replicas_equal_runs),
      cmocka_unit_test(test_graph_backward_steps),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
