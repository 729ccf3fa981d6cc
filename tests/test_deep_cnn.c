/* deep_cnn model plugin: layout and parameter counts, shape rejection with
 * the numbers, forward and backward against an independent float64 host
 * implementation (itself checked by central finite differences) for the mf
 * and standard parametrisations, L = 2 and 3, R = 3 replicas, biases,
 * features, init statistics, replicas bit for bit, and learning runs on a
 * Random Hierarchy Model through hcl_run (sgd, layerwise, ridge_chain). */
#include "support/hcl_test.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- float64 reference CNN (one replica, one sample at a time) ----------
 * Activations channels first a_k[c][pos]; parameters in the plugin's
 * documented order: conv_k.weight [H][c_in*s] (column c*s + j), conv_k.bias
 * ([H] shared, [P_k][H] per position), ..., readout.weight [D][H],
 * readout.bias [D] (standard with biases only). */
enum { BIAS_NONE = 0, BIAS_SHARED = 1, BIAS_POSITION = 2 };

typedef struct ref_cnn {
  size_t v, d, s, L, H, D;
  int mf, bias;
  size_t stage; /* 0: the full network; k: layers 1..k, mean over P_k, readout */
} ref_cnn;

static size_t ref_K(const ref_cnn *r) { return r->stage ? r->stage : r->L; }

static size_t ref_P(const ref_cnn *r, size_t k) { /* positions after layer k (k >= 1) */
  size_t P = r->d;
  for (size_t i = 0; i < k; i++) P /= r->s;
  return P;
}
static size_t ref_cin(const ref_cnn *r, size_t k) { return k == 1 ? r->v : r->H; }
static size_t ref_bcount(const ref_cnn *r, size_t k) {
  return r->bias == BIAS_NONE ? 0 : r->bias == BIAS_SHARED ? r->H : ref_P(r, k) * r->H;
}
static int ref_has_rb(const ref_cnn *r) { return !r->mf && r->bias != BIAS_NONE; }
static size_t ref_woff(const ref_cnn *r, size_t k) { /* k = L + 1: the readout */
  size_t off = 0;
  for (size_t i = 1; i < k; i++) off += r->H * ref_cin(r, i) * r->s + ref_bcount(r, i);
  return off;
}
static size_t ref_boff(const ref_cnn *r, size_t k) {
  return ref_woff(r, k) + r->H * ref_cin(r, k) * r->s;
}
static size_t ref_n_params(const ref_cnn *r) {
  return ref_woff(r, r->L + 1) + r->D * r->H + (ref_has_rb(r) ? r->D : 0);
}
static double ref_alpha(const ref_cnn *r, size_t k) {
  return r->mf ? 1.0 / sqrt((double)(ref_cin(r, k) * r->s)) : 1.0;
}
static double ref_bscale(const ref_cnn *r) { return r->mf ? 0.1 : 1.0; }
static double ref_oscale(const ref_cnn *r) { return r->mf ? 1.0 / (double)r->H : 1.0; }

/* One sample: a[0] = x [v][d]; z[k], a[k] [H][P_k] for k = 1..K; out [D]
 * from the mean over positions of a[K]. */
static void ref_sample(const ref_cnn *r, const double *p, const double *x, double **z, double **a,
                       double *out) {
  size_t s = r->s, H = r->H;
  memcpy(a[0], x, r->v * r->d * sizeof *x);
  size_t K = ref_K(r), PK = ref_P(r, K);
  for (size_t k = 1; k <= K; k++) {
    size_t cin = ref_cin(r, k), P = ref_P(r, k), Pin = P * s, cols = cin * s;
    const double *w = p + ref_woff(r, k), *b = p + ref_boff(r, k);
    for (size_t h = 0; h < H; h++)
      for (size_t q = 0; q < P; q++) {
        double acc = 0;
        for (size_t c = 0; c < cin; c++)
          for (size_t j = 0; j < s; j++)
            acc += w[h * cols + c * s + j] * a[k - 1][c * Pin + q * s + j];
        acc *= ref_alpha(r, k);
        if (r->bias == BIAS_SHARED) acc += ref_bscale(r) * b[h];
        if (r->bias == BIAS_POSITION) acc += ref_bscale(r) * b[q * H + h];
        z[k][h * P + q] = acc;
        a[k][h * P + q] = acc > 0 ? acc : 0;
      }
  }
  const double *ro = p + ref_woff(r, r->L + 1);
  for (size_t o = 0; o < r->D; o++) {
    double acc = 0;
    for (size_t h = 0; h < H; h++) {
      double g = 0;
      for (size_t q = 0; q < PK; q++) g += a[K][h * PK + q];
      acc += ro[o * H + h] * g / (double)PK;
    }
    out[o] = ref_oscale(r) * acc + (ref_has_rb(r) ? ro[r->D * H + o] : 0.0);
  }
}

typedef struct ref_work {
  double *z[8], *a[8], *da[8];
} ref_work;

static void work_alloc(const ref_cnn *r, ref_work *w) {
  memset(w, 0, sizeof *w);
  w->a[0] = calloc(r->v * r->d, sizeof(double));
  w->da[0] = calloc(r->v * r->d, sizeof(double));
  for (size_t k = 1; k <= r->L; k++) {
    w->z[k] = calloc(r->H * ref_P(r, k), sizeof(double));
    w->a[k] = calloc(r->H * ref_P(r, k), sizeof(double));
    w->da[k] = calloc(r->H * ref_P(r, k), sizeof(double));
  }
}
static void work_free(const ref_cnn *r, ref_work *w) {
  for (size_t k = 0; k <= r->L; k++) free(w->z[k]), free(w->a[k]), free(w->da[k]);
}

/* out [n][D] for samples x [n][v*d]. */
static void ref_forward(const ref_cnn *r, const double *p, const double *x, size_t n, double *out) {
  ref_work w;
  work_alloc(r, &w);
  for (size_t i = 0; i < n; i++) ref_sample(r, p, x + i * r->v * r->d, w.z, w.a, out + i * r->D);
  work_free(r, &w);
}

/* grad = d(sum dout . out)/dp, NOT multiplied by the lr factor. */
static void ref_backward(const ref_cnn *r, const double *p, const double *x, size_t n,
                         const double *dout, double *grad) {
  size_t H = r->H, s = r->s, L = r->L, K = ref_K(r), PK = ref_P(r, K);
  ref_work w;
  work_alloc(r, &w);
  double *out = malloc(r->D * sizeof *out), *g = malloc(H * sizeof *g),
         *dg = malloc(H * sizeof *dg);
  memset(grad, 0, ref_n_params(r) * sizeof *grad);
  const double *ro = p + ref_woff(r, L + 1);
  double *gro = grad + ref_woff(r, L + 1);
  for (size_t i = 0; i < n; i++) {
    ref_sample(r, p, x + i * r->v * r->d, w.z, w.a, out);
    const double *dd = dout + i * r->D;
    for (size_t h = 0; h < H; h++) {
      g[h] = 0, dg[h] = 0;
      for (size_t q = 0; q < PK; q++) g[h] += w.a[K][h * PK + q] / (double)PK;
    }
    for (size_t o = 0; o < r->D; o++) {
      if (ref_has_rb(r)) gro[r->D * H + o] += dd[o];
      for (size_t h = 0; h < H; h++) {
        gro[o * H + h] += ref_oscale(r) * dd[o] * g[h];
        dg[h] += ref_oscale(r) * dd[o] * ro[o * H + h];
      }
    }
    for (size_t h = 0; h < H; h++)
      for (size_t q = 0; q < PK; q++) w.da[K][h * PK + q] = dg[h] / (double)PK;
    for (size_t k = K; k >= 1; k--) {
      size_t cin = ref_cin(r, k), P = ref_P(r, k), Pin = P * s, cols = cin * s;
      const double *wk = p + ref_woff(r, k);
      double *gw = grad + ref_woff(r, k), *gb = grad + ref_boff(r, k), al = ref_alpha(r, k);
      if (k > 1) memset(w.da[k - 1], 0, H * Pin * sizeof(double));
      for (size_t h = 0; h < H; h++)
        for (size_t q = 0; q < P; q++) {
          double dz = w.z[k][h * P + q] > 0 ? w.da[k][h * P + q] : 0;
          if (r->bias == BIAS_SHARED) gb[h] += ref_bscale(r) * dz;
          if (r->bias == BIAS_POSITION) gb[q * H + h] += ref_bscale(r) * dz;
          for (size_t c = 0; c < cin; c++)
            for (size_t j = 0; j < s; j++) {
              gw[h * cols + c * s + j] += al * dz * w.a[k - 1][c * Pin + q * s + j];
              if (k > 1) w.da[k - 1][c * Pin + q * s + j] += al * dz * wk[h * cols + c * s + j];
            }
        }
    }
  }
  free(out), free(g), free(dg);
  work_free(r, &w);
}

static double ref_objective(const ref_cnn *r, const double *p, const double *x, size_t n,
                            const double *dout) {
  double *out = malloc(n * r->D * sizeof *out), s = 0;
  ref_forward(r, p, x, n, out);
  for (size_t i = 0; i < n * r->D; i++) s += dout[i] * out[i];
  free(out);
  return s;
}

/* ---- small helpers -------------------------------------------------------- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(double lo, double hi) { return hcl_test_xorshift(&rng_state, lo, hi); }

#define max_abs(a, n) hcl_test_max_abs(a, n)

/* Every |got - want| within rel * max|want| (+ a tiny absolute floor). */
#define assert_close(got, want, n, rel, what) hcl_test_assert_close(got, want, n, rel, what)

/* ---- fixture -------------------------------------------------------------- */
static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_model_vt *g_vt;

static int group_setup(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("deep_cnn", HCL_PLUGIN_MODEL, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

static hcl_target_info target_seq(size_t v, size_t d, hcl_task task, size_t classes) {
  hcl_target_info t = {.struct_size = sizeof t, .y_dim = 1, .task = task, .n_classes = classes};
  t.x.rank = 2;
  t.x.dims[0] = v;
  t.x.dims[1] = d;
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

#define to_double(f, n) hcl_test_to_double(f, n)

/* ---- tests that need no device -------------------------------------------- */

/* The reference gradient equals central finite differences of the reference
 * objective for every parameter, over the parametrisations and biases. */
static void test_reference_gradient_fd(void **state) {
  (void)state;
  const ref_cnn cases[] = {
      {.v = 3, .d = 8, .s = 2, .L = 3, .H = 4, .D = 2, .mf = 1, .bias = BIAS_NONE},
      {.v = 3, .d = 8, .s = 2, .L = 3, .H = 4, .D = 2, .mf = 1, .bias = BIAS_SHARED},
      {.v = 2, .d = 9, .s = 3, .L = 2, .H = 3, .D = 3, .mf = 0, .bias = BIAS_POSITION},
      {.v = 2, .d = 4, .s = 2, .L = 2, .H = 5, .D = 1, .mf = 0, .bias = BIAS_SHARED},
      /* truncated networks (layerwise stages): mean over the positions left */
      {.v = 3, .d = 8, .s = 2, .L = 3, .H = 4, .D = 2, .mf = 1, .bias = BIAS_SHARED, .stage = 1},
      {.v = 2, .d = 9, .s = 3, .L = 2, .H = 3, .D = 2, .mf = 0, .bias = BIAS_POSITION, .stage = 1},
      {.v = 3, .d = 8, .s = 2, .L = 3, .H = 4, .D = 2, .mf = 1, .bias = BIAS_NONE, .stage = 2},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    const ref_cnn *r = &cases[ci];
    size_t np = ref_n_params(r), n = 3;
    double *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g);
    double *x = malloc(n * r->v * r->d * sizeof *x), *dout = malloc(n * r->D * sizeof *dout);
    for (size_t i = 0; i < np; i++) p[i] = urand(-1, 1);
    for (size_t i = 0; i < n * r->v * r->d; i++) x[i] = urand(-1, 1);
    for (size_t i = 0; i < n * r->D; i++) dout[i] = urand(-1, 1);
    ref_backward(r, p, x, n, dout, g);
    const double h = 1e-6;
    for (size_t i = 0; i < np; i++) {
      double keep = p[i];
      p[i] = keep + h;
      double fp = ref_objective(r, p, x, n, dout);
      p[i] = keep - h;
      double fm = ref_objective(r, p, x, n, dout);
      p[i] = keep;
      double fd = (fp - fm) / (2 * h);
      if (!(fabs(fd - g[i]) <= 1e-6 * (1 + fabs(g[i]))))
        fail_msg("case %zu: param %zu: reference %.12g, finite difference %.12g", ci, i, g[i], fd);
    }
    free(p), free(g), free(x), free(dout);
  }
}

/* ---- device tests --------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "deep_cnn");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_MODEL);
  assert_non_null(strstr(g_desc->citation, "2307.02129"));
  assert_non_null(strstr(g_desc->citation, "2601.19756"));
  assert_non_null(strstr(g_desc->citation, "hierarchy-learning"));
  for (const hcl_param_desc *d = g_desc->params; d->key; d++) {
    assert_non_null(d->help);
    if (strlen(d->help) < 20) fail_msg("param %s: help too short", d->key);
  }
  const char *const *alg = g_vt->algorithms;
  assert_non_null(alg);
  assert_string_equal(alg[0], "layerwise");
  assert_string_equal(alg[1], "ridge_chain");
  assert_null(alg[2]);
  assert_non_null(g_vt->train);
  assert_non_null(g_vt->features);
}

/* Expected block names, shapes, groups and offsets against the reference layout. */
static void check_layout(const char *const *kv, const ref_cnn *r, size_t classes) {
  uint64_t seed = 1;
  hcl_target_info t =
      target_seq(r->v, r->d, classes ? HCL_TASK_CLASSES : HCL_TASK_REGRESSION, classes);
  model m;
  assert_int_equal(model_make(kv, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, ref_n_params(r));
  assert_int_equal(m.D, r->D);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  size_t want_nb = r->L + 1 + (r->bias != BIAS_NONE ? r->L : 0) + (ref_has_rb(r) ? 1 : 0);
  assert_int_equal(nb, want_nb);
  size_t i = 0;
  char name[32];
  for (size_t k = 1; k <= r->L; k++) {
    snprintf(name, sizeof name, "conv%zu.weight", k);
    assert_string_equal(b[i].name, name);
    assert_int_equal(b[i].offset, ref_woff(r, k));
    assert_int_equal(b[i].rows, r->H);
    assert_int_equal(b[i].cols, ref_cin(r, k) * r->s);
    assert_int_equal(b[i].group, k - 1);
    assert_int_equal(b[i].trainable, 1);
    i++;
    if (r->bias != BIAS_NONE) {
      snprintf(name, sizeof name, "conv%zu.bias", k);
      assert_string_equal(b[i].name, name);
      assert_int_equal(b[i].offset, ref_boff(r, k));
      assert_int_equal(b[i].rows * b[i].cols, ref_bcount(r, k));
      assert_int_equal(b[i].group, k - 1);
      i++;
    }
  }
  assert_string_equal(b[i].name, "readout.weight");
  assert_int_equal(b[i].offset, ref_woff(r, r->L + 1));
  assert_int_equal(b[i].rows, r->D);
  assert_int_equal(b[i].cols, r->H);
  assert_int_equal(b[i].group, r->L);
  if (ref_has_rb(r)) {
    assert_string_equal(b[i + 1].name, "readout.bias");
    assert_int_equal(b[i + 1].group, r->L);
  }
  model_free(&m);
}

static void test_layout(void **state) {
  (void)state;
  NEED_DEVICE();
  /* v = 4, d = 8, s = 2, L = 3 (from d), H = 5, 3 classes:
   * 5*8 + 5*10 + 5*10 + 3*5 = 155 parameters */
  ref_cnn r = {.v = 4, .d = 8, .s = 2, .L = 3, .H = 5, .D = 3, .mf = 1, .bias = BIAS_NONE};
  assert_int_equal(ref_n_params(&r), 155);
  check_layout((const char *[]){"width=5", NULL}, &r, 3);
  r.bias = BIAS_SHARED; /* + 3 * 5 conv biases, no readout bias in mf */
  assert_int_equal(ref_n_params(&r), 170);
  check_layout((const char *[]){"width=5", "depth=3", "bias=shared", NULL}, &r, 3);
  r.mf = 0;
  r.bias = BIAS_POSITION; /* + (4 + 2 + 1) * 5 + 3 readout bias */
  assert_int_equal(ref_n_params(&r), 193);
  check_layout((const char *[]){"width=5", "bias=position", "param=standard", NULL}, &r, 3);
  /* s = 3, d = 27, regression: one output */
  ref_cnn r3 = {.v = 2, .d = 27, .s = 3, .L = 3, .H = 4, .D = 1, .mf = 0, .bias = BIAS_NONE};
  assert_int_equal(ref_n_params(&r3), 4 * 6 + 4 * 12 + 4 * 12 + 4);
  check_layout((const char *[]){"width=4", "s=3", "param=standard", NULL}, &r3, 0);
}

static void test_rejects(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  model m;
  hcl_target_info t = target_seq(4, 30, HCL_TASK_CLASSES, 4);
  assert_int_equal(model_make((const char *[]){"depth=4", NULL}, 1, &seed, 4, &t, &m),
                   HCL_ERR_PARAM);
  assert_null(m.self);
  const char *msg = hcl_errmsg(g_ctx);
  if (!strstr(msg, "input length 30 is not s^L = 2^4 = 16")) fail_msg("message: %s", msg);
  assert_int_equal(model_make(NULL, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  msg = hcl_errmsg(g_ctx);
  if (!strstr(msg, "input length 30 is not a power of s = 2")) fail_msg("message: %s", msg);
  t = target_seq(4, 16, HCL_TASK_CLASSES, 4);
  assert_int_equal(model_make((const char *[]){"depth=2", NULL}, 1, &seed, 4, &t, &m),
                   HCL_ERR_PARAM);
  msg = hcl_errmsg(g_ctx);
  if (!strstr(msg, "input length 16 is not s^L = 2^2 = 4")) fail_msg("message: %s", msg);
  assert_int_equal(model_make((const char *[]){"s=3", NULL}, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  t.x.rank = 3;
  assert_int_equal(model_make(NULL, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "rank 3"));
  /* batches above max_batch, backward without forward / on another n */
  t = target_seq(4, 16, HCL_TASK_CLASSES, 4);
  assert_int_equal(model_make((const char *[]){"width=8", NULL}, 1, &seed, 4, &t, &m), HCL_OK);
  hcl_buf x, out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * 64 * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * 4 * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, m.np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 4, grad), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 5, out), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 4, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 3, grad), HCL_ERR_PARAM);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 4, grad), HCL_OK);
  size_t dim;
  assert_int_equal(g_vt->features(m.self, m.params, 0, x, 4, out, &dim), HCL_ERR_PARAM);
  assert_int_equal(g_vt->features(m.self, m.params, 5, x, 4, out, &dim), HCL_ERR_PARAM);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

/* Plugin forward and gradient (float32, R = 3 replicas, their own seeds)
 * against the float64 reference on the parameters read back; the gradient is
 * the true one and the lr factor (H for mf, 1 for standard) the model's
 * lr_scale, which the runtime's optimiser applies. */
static void check_forward_backward(const char *const *kv, const ref_cnn *r, size_t classes,
                                   double gscale) {
  enum { R = 3 };
  const uint64_t seeds[R] = {11, 2022, 987654321};
  const size_t n = 7, max_batch = 9, xs = r->v * r->d;
  hcl_target_info t =
      target_seq(r->v, r->d, classes ? HCL_TASK_CLASSES : HCL_TASK_REGRESSION, classes);
  model m;
  assert_int_equal(model_make(kv, R, seeds, max_batch, &t, &m), HCL_OK);
  assert_int_equal(m.np, ref_n_params(r));
  size_t D = m.D, np = m.np;
  assert_int_equal(D, r->D);
  float *xh = random_floats(R * n * xs, -1, 1);
  for (size_t i = 0; i < R * n * xs; i += 5) xh[i] = 0.0f; /* some exact zeros, as one-hot */
  float *douth = random_floats(R * n * D, -1, 1);
  hcl_buf x = upload(xh, R * n * xs), dout = upload(douth, R * n * D), out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * D * sizeof(float), &out), HCL_OK);
  float *seven = malloc(R * np * sizeof *seven);
  for (size_t i = 0; i < R * np; i++) seven[i] = 7.0f; /* backward must overwrite */
  grad = upload(seven, R * np);
  assert_non_null(g_vt->lr_scale);
  assert_true(g_vt->lr_scale(m.self) == gscale);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_OK);
  float *ph = read_floats(m.params, R * np), *oh = read_floats(out, R * n * D);
  float *gh = read_floats(grad, R * np);
  double *ref_out = malloc(n * D * sizeof *ref_out), *ref_g = malloc(np * sizeof *ref_g);
  char what[128];
  for (size_t rep = 0; rep < R; rep++) {
    double *p = to_double(ph + rep * np, np), *xd = to_double(xh + rep * n * xs, n * xs);
    double *dd = to_double(douth + rep * n * D, n * D);
    ref_forward(r, p, xd, n, ref_out);
    snprintf(what, sizeof what, "%s L=%zu forward, replica %zu", r->mf ? "mf" : "standard", r->L,
             rep);
    assert_close(oh + rep * n * D, ref_out, n * D, 1e-4, what);
    ref_backward(r, p, xd, n, dd, ref_g);
    snprintf(what, sizeof what, "%s L=%zu gradient, replica %zu", r->mf ? "mf" : "standard", r->L,
             rep);
    assert_close(gh + rep * np, ref_g, np, 1e-4, what);
    free(p), free(xd), free(dd);
  }
  assert_memory_not_equal(ph, ph + np, np * sizeof *ph); /* replicas have their own params */
  free(ref_out), free(ref_g), free(ph), free(oh), free(gh), free(xh), free(douth), free(seven);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&m);
}

static void test_mf(void **state) {
  (void)state;
  NEED_DEVICE();
  ref_cnn r2 = {.v = 4, .d = 4, .s = 2, .L = 2, .H = 12, .D = 4, .mf = 1, .bias = BIAS_NONE};
  check_forward_backward((const char *[]){"width=12", NULL}, &r2, 4, 12.0);
  ref_cnn r3 = {.v = 3, .d = 8, .s = 2, .L = 3, .H = 10, .D = 5, .mf = 1, .bias = BIAS_NONE};
  check_forward_backward((const char *[]){"width=10", "depth=3", NULL}, &r3, 5, 10.0);
  /* shared biases (0.1 b); lr factor off */
  r3.bias = BIAS_SHARED;
  check_forward_backward((const char *[]){"width=10", "bias=shared", "lr_factor=none", NULL}, &r3,
                         5, 1.0);
  /* s = 3 with per-position biases */
  ref_cnn r9 = {.v = 2, .d = 9, .s = 3, .L = 2, .H = 6, .D = 3, .mf = 1, .bias = BIAS_POSITION};
  check_forward_backward((const char *[]){"width=6", "s=3", "bias=position", NULL}, &r9, 3, 6.0);
}

static void test_standard(void **state) {
  (void)state;
  NEED_DEVICE();
  ref_cnn r2 = {.v = 4, .d = 4, .s = 2, .L = 2, .H = 12, .D = 4, .mf = 0, .bias = BIAS_NONE};
  check_forward_backward((const char *[]){"width=12", "param=standard", NULL}, &r2, 4, 1.0);
  ref_cnn r3 = {.v = 3, .d = 8, .s = 2, .L = 3, .H = 10, .D = 5, .mf = 0, .bias = BIAS_SHARED};
  check_forward_backward((const char *[]){"width=10", "param=standard", "bias=shared", NULL}, &r3,
                         5, 1.0);
  /* regression (one output), per-position biases, lr factor forced on */
  ref_cnn rr = {.v = 2, .d = 8, .s = 2, .L = 3, .H = 7, .D = 1, .mf = 0, .bias = BIAS_POSITION};
  check_forward_backward(
      (const char *[]){"width=7", "param=standard", "bias=position", "lr_factor=width", NULL}, &rr,
      0, 7.0);
}

/* features(k) = conv k's ReLU output, [H, P_k] flattened channels first. */
static void test_features(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {5, 6, 7};
  ref_cnn r = {.v = 3, .d = 8, .s = 2, .L = 3, .H = 6, .D = 4, .mf = 1, .bias = BIAS_SHARED};
  const size_t n = 5, xs = r.v * r.d;
  hcl_target_info t = target_seq(r.v, r.d, HCL_TASK_CLASSES, 4);
  model m;
  assert_int_equal(
      model_make((const char *[]){"width=6", "bias=shared", NULL}, R, seeds, 8, &t, &m), HCL_OK);
  float *xh = random_floats(R * n * xs, -1, 1);
  hcl_buf x = upload(xh, R * n * xs), feat, out;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * r.H * 4 * sizeof(float), &feat), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * 4 * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  ref_work w;
  work_alloc(&r, &w);
  double o[4];
  for (size_t layer = 1; layer <= r.L; layer++) {
    size_t dim = 0, P = ref_P(&r, layer);
    assert_int_equal(g_vt->features(m.self, m.params, layer, x, n, feat, &dim), HCL_OK);
    assert_int_equal(dim, r.H * P);
    float *fh = read_floats(feat, R * n * dim);
    double *want = malloc(n * dim * sizeof *want);
    for (size_t rep = 0; rep < R; rep++) {
      double *p = to_double(ph + rep * m.np, m.np), *xd = to_double(xh + rep * n * xs, n * xs);
      for (size_t i = 0; i < n; i++) {
        ref_sample(&r, p, xd + i * xs, w.z, w.a, o);
        memcpy(want + i * dim, w.a[layer], dim * sizeof *want);
      }
      char what[64];
      snprintf(what, sizeof what, "features of layer %zu, replica %zu", layer, rep);
      assert_close(fh + rep * n * dim, want, n * dim, 1e-5, what);
      free(p), free(xd);
    }
    free(want);
    free(fh);
  }
  /* features replaced the kept activations: backward needs a new forward */
  assert_int_equal(g_vt->backward(m.self, m.params, out, n, feat), HCL_ERR_PARAM);
  work_free(&r, &w);
  free(ph), free(xh);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &feat);
  hcl_buf_free(g_ctx, &out);
  model_free(&m);
}

/* mf: N(0, 1) in every block; standard: U(+-1/sqrt(fan_in)); the same seeds
 * give the same bits, replicas differ. */
static void test_init_statistics(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2 };
  const uint64_t seeds[R] = {42, 1ull << 40};
  hcl_target_info t = target_seq(8, 16, HCL_TASK_CLASSES, 8);
  model m, m2;
  assert_int_equal(
      model_make((const char *[]){"width=64", "bias=shared", NULL}, R, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  for (size_t i = 0; i < nb; i++) {
    size_t count = b[i].rows * b[i].cols;
    double s = 0, s2 = 0;
    for (size_t k = 0; k < count; k++) {
      double v = ph[b[i].offset + k];
      s += v, s2 += v * v;
    }
    double mean = s / count, var = s2 / count - mean * mean;
    if (!(fabs(mean) < 5 / sqrt((double)count) && fabs(var - 1) < 6 * sqrt(2.0 / count)))
      fail_msg("mf %s: mean %g variance %g over %zu", b[i].name, mean, var, count);
  }
  assert_memory_not_equal(ph + b[2].offset, ph + b[4].offset, 64 * 64 * sizeof *ph);
  assert_memory_not_equal(ph, ph + m.np, m.np * sizeof *ph);
  assert_int_equal(
      model_make((const char *[]){"width=64", "bias=shared", NULL}, R, seeds, 8, &t, &m2), HCL_OK);
  assert_int_equal(g_vt->init(m2.self, m2.params), HCL_OK);
  float *ph2 = read_floats(m2.params, R * m.np);
  assert_memory_equal(ph, ph2, R * m.np * sizeof *ph);
  free(ph), free(ph2);
  model_free(&m);
  model_free(&m2);

  assert_int_equal(model_make((const char *[]){"width=64", "param=standard", "bias=shared", NULL},
                              1, seeds, 4, &t, &m),
                   HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  ph = read_floats(m.params, m.np);
  b = g_vt->blocks(m.self, &nb);
  for (size_t i = 0; i < nb; i++) {
    size_t count = b[i].rows * b[i].cols;
    size_t fan_in = !strncmp(b[i].name, "conv1.", 6) ? 16
                    : !strncmp(b[i].name, "conv", 4) ? 128
                                                     : 64;
    double bound = 1 / sqrt((double)fan_in), mx = 0;
    for (size_t k = 0; k < count; k++) {
      double v = ph[b[i].offset + k];
      if (!(fabs(v) <= (double)(float)bound))
        fail_msg("standard %s[%zu] = %g outside +-%g", b[i].name, k, v, bound);
      mx = fmax(mx, fabs(v));
    }
    assert_true(mx > 0.5 * bound);
  }
  free(ph);
  model_free(&m);
}

/* R replicas in one pass equal R separate runs with the same seeds, bit for
 * bit: init, forward, backward. */
static void test_replicas_bitwise(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3, D = 3 };
  const uint64_t seeds[R] = {101, 202, 303};
  const size_t n = 6, v = 4, d = 8, xs = v * d;
  const char *kv[] = {"width=16", "bias=position", NULL};
  hcl_target_info t = target_seq(v, d, HCL_TASK_CLASSES, D);
  float *xh = random_floats(R * n * xs, 0, 1), *dh = random_floats(R * n * D, -1, 1);
  hcl_test_replicas_bitwise(g_ctx, g_desc, kv, R, seeds, 8, &t, n, xs, xh, dh);
  free(xh), free(dh);
}

/* ---- layerwise through the runtime's trainer, step by step --------------
 * A fixed regression data set (a fake target), L = 2, one SGD step per stage
 * on the full batch: the final parameters must be
 *   conv1 = conv1_0 - lr H grad_conv1(stage-1 net: mean over P_1, readout r1)
 *   conv2 = conv2_0 - lr H grad_conv2(full net with the new conv1, readout r2)
 *   readout = r2 - lr H grad_readout(same)
 * with r_k the readouts redrawn at stage k (stream "dcnn" 0x10000 + 2k,
 * reproduced with the host Philox mirror), the MSE loss mean (f - y)^2. */
enum { LW_R = 2, LW_P = 6, LW_V = 3, LW_D = 4, LW_H = 8 };
static float lw_x[LW_R][LW_P][LW_V * LW_D], lw_y[LW_R][LW_P];

static hcl_status lw_create(hcl_ctx *ctx, const hcl_setup *s, void **self) {
  (void)ctx, (void)s;
  *self = lw_x;
  return HCL_OK;
}
static void lw_destroy(void *self) { (void)self; }
static hcl_status lw_info(void *self, hcl_target_info *out) {
  (void)self;
  *out = target_seq(LW_V, LW_D, HCL_TASK_REGRESSION, 0);
  return HCL_OK;
}
static hcl_status lw_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                            hcl_buf y) {
  (void)self, (void)stream;
  size_t xs = LW_V * LW_D;
  float *hx = malloc(LW_R * n * xs * sizeof *hx), *hy = malloc(LW_R * n * sizeof *hy);
  for (size_t r = 0; r < LW_R; r++)
    for (size_t i = 0; i < n; i++) {
      size_t k = (size_t)((first + i) % LW_P);
      memcpy(hx + (r * n + i) * xs, lw_x[r][k], xs * sizeof *hx);
      hy[r * n + i] = lw_y[r][k];
    }
  hcl_status rc = hcl_buf_write(g_ctx, x, hx, LW_R * n * xs * sizeof *hx);
  if (rc == HCL_OK) rc = hcl_buf_write(g_ctx, y, hy, LW_R * n * sizeof *hy);
  free(hx), free(hy);
  return rc;
}
static const hcl_target_vt lw_target = {.struct_size = sizeof(hcl_target_vt),
                                        .create = lw_create,
                                        .destroy = lw_destroy,
                                        .info = lw_info,
                                        .sample = lw_sample};

/* The reference gradient of the MSE loss on the fixed batch. */
static void lw_grad(const ref_cnn *r, const double *p, size_t rep, double *grad) {
  size_t xs = LW_V * LW_D;
  double x[LW_P * LW_V * LW_D], out[LW_P], dout[LW_P];
  for (size_t i = 0; i < LW_P; i++)
    for (size_t j = 0; j < xs; j++) x[i * xs + j] = lw_x[rep][i][j];
  ref_forward(r, p, x, LW_P, out);
  for (size_t i = 0; i < LW_P; i++) dout[i] = 2.0 * (out[i] - lw_y[rep][i]) / LW_P;
  ref_backward(r, p, x, LW_P, dout, grad);
}

static void test_layerwise_steps(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seeds[LW_R] = {7, 1234567};
  const double lr = 0.05;
  for (size_t r = 0; r < LW_R; r++)
    for (size_t i = 0; i < LW_P; i++) {
      for (size_t j = 0; j < LW_V * LW_D; j++) lw_x[r][i][j] = (float)urand(0, 1);
      lw_y[r][i] = (float)urand(-1, 1);
    }
  hcl_target_info ti = target_seq(LW_V, LW_D, HCL_TASK_REGRESSION, 0);
  model m;
  assert_int_equal(
      model_make((const char *[]){"width=8", "bias=shared", NULL}, LW_R, seeds, LW_P, &ti, &m),
      HCL_OK);
  hcl_train_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.replicas = LW_R;
  cfg.seeds = seeds;
  cfg.steps = 2; /* L = 2 stages of one step */
  cfg.batch = LW_P;
  cfg.train_size = LW_P;
  cfg.sched.kind = HCL_SCHED_CONSTANT;
  cfg.sched.lr = lr;
  cfg.loss = HCL_LOSS_MSE;
  cfg.optim.kind = HCL_OPT_SGD;
  cfg.eval_batch = LW_P;
  cfg.algorithm = "layerwise";
  hcl_trainer t;
  memset(&t, 0, sizeof t);
  t.ctx = g_ctx;
  t.cfg = &cfg;
  t.tvt = &lw_target;
  t.target = lw_x;
  t.tinfo = ti;
  t.mvt = g_vt;
  t.model = m.self;
  assert_int_equal(hcl_trainer_init(&t), HCL_OK);
  size_t np = m.np;
  float *p0 = read_floats(t.params, LW_R * np);
  if (hcl_trainer_run(&t) != HCL_OK) fail_msg("%s", hcl_errmsg(g_ctx));
  assert_int_equal(t.step, 2);
  float *p2 = read_floats(t.params, LW_R * np);
  ref_cnn r = {
      .v = LW_V, .d = LW_D, .s = 2, .L = 2, .H = LW_H, .D = 1, .mf = 1, .bias = BIAS_SHARED};
  size_t c1 = ref_woff(&r, 1), c2 = ref_woff(&r, 2), ro = ref_woff(&r, 3);
  double *g = malloc(np * sizeof *g), *want = malloc(np * sizeof *want);
  for (size_t rep = 0; rep < LW_R; rep++) {
    double *p = to_double(p0 + rep * np, np);
    /* stage 1: readout r1, layers 1 only, mean over P_1 = 2 positions */
    for (size_t h = 0; h < LW_H; h++)
      p[ro + h] = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seeds[rep], 0x64636e6e00010002ull, h);
    r.stage = 1;
    lw_grad(&r, p, rep, g);
    for (size_t i = c1; i < c2; i++) p[i] -= lr * LW_H * g[i]; /* conv1 weight and bias */
    /* stage 2: readout r2, the full network; conv2 and the readout train */
    for (size_t h = 0; h < LW_H; h++)
      p[ro + h] = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seeds[rep], 0x64636e6e00010004ull, h);
    r.stage = 0;
    lw_grad(&r, p, rep, g);
    for (size_t i = c2; i < np; i++) p[i] -= lr * LW_H * g[i];
    /* compare the updates: from the init for the conv blocks, from r2 for
     * the readout (its stage-1 values were replaced) */
    float *got = malloc(np * sizeof *got);
    for (size_t i = 0; i < np; i++) {
      double base = i < ro ? p0[rep * np + i]
                           : hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seeds[rep],
                                          0x64636e6e00010004ull, i - ro);
      want[i] = p[i] - base;
      got[i] = (float)((double)p2[rep * np + i] - base);
    }
    char what[64];
    snprintf(what, sizeof what, "layerwise updates, replica %zu", rep);
    assert_close(got, want, np, 2e-4, what);
    assert_true(max_abs(want, c2) > 1e-3);           /* conv1 moved in stage 1 */
    assert_true(max_abs(want + c2, ro - c2) > 1e-3); /* conv2 moved in stage 2 */
    free(got);
    free(p);
  }
  free(g), free(want), free(p0), free(p2);
  hcl_trainer_release(&t);
  model_free(&m);
}

/* ---- learning runs through hcl_run on the rhm target --------------------- */

/* A two-level RHM: n_c = v = m = 4, s = 2, L = 2, d = 4; P_max = 4 * 4^3 =
 * 256 data, training set P = 192 (3x n_c m^L = 64), the other 64 as test. */
static const char *rhm_cfg =
    "[run]\nseed = 3\n"
    "[target]\nplugin = rhm\nn_c = 4\nv = 4\nm = 4\ns = 2\nl = 2\n"
    "[model]\nplugin = deep_cnn\nwidth = 64\n"
    "[train]\nsteps = 1500\nbatch = 32\nlr = 0.5\nmomentum = 0.9\ntrain_size = 192\n"
    "[eval]\nevery = 500\ntest_size = 64\nprobes = false\n";

static int have_rhm(void) {
  return hcl_registry_find(hcl_test_registry(), "rhm", HCL_PLUGIN_TARGET) != NULL;
}

static hcl_status run_cfg(const char *const *sets, size_t n_sets, char *dir, char *err,
                          size_t errlen) {
  const char *path = hcl_test_write_temp("deep_cnn_rhm.ini", rhm_cfg);
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

/* The last value of `key` in metrics.jsonl for replica 0. */
static double last_metric(const char *dir, const char *key) {
  char p[1200];
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  char *text = hcl_test_read_file(p);
  assert_non_null(text);
  const char *last = NULL;
  for (const char *q = text; (q = strstr(q, "\"replica\":0,")); q++) last = q;
  assert_non_null(last);
  double v = NAN;
  assert_true(hcl_test_json_num(last, key, &v));
  free(text);
  return v;
}

static double first_metric(const char *dir, const char *key) {
  char p[1200];
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  char *text = hcl_test_read_file(p);
  assert_non_null(text);
  double v = NAN;
  assert_true(hcl_test_json_num(text, key, &v));
  free(text);
  return v;
}

static void test_learns_rhm_sgd(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!have_rhm()) {
    fprintf(stderr, "rhm target not built: skipping the learning run\n");
    skip();
  }
  char dir[1024], err[4096];
  if (run_cfg(NULL, 0, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  double first = first_metric(dir, "test_error"), last = last_metric(dir, "test_error");
  fprintf(stderr, "deep_cnn sgd on rhm: test error %.3f -> %.3f\n", first, last);
  assert_true(first > 0.5);  /* chance is 0.75 */
  assert_true(last < 0.075); /* below eps_rand / 10 */
}

static void test_learns_rhm_layerwise(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!have_rhm()) skip();
  char dir[1024], err[4096];
  const char *sets[] = {"train.algorithm=layerwise", "train.steps=3000"};
  if (run_cfg(sets, 2, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  double last = last_metric(dir, "test_error");
  fprintf(stderr, "deep_cnn layerwise on rhm: test error %.3f\n", last);
  assert_true(last < 0.15);
  /* the stages are labelled in the metrics */
  char p[1200];
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  char *text = hcl_test_read_file(p);
  assert_non_null(strstr(text, "layer 1"));
  assert_non_null(strstr(text, "layer 2"));
  free(text);
}

/* ridge_chain needs an RHM whose patches identify their parents through
 * P(class | patch) (the n_c = v = m = 4 RHM above has ties): n_c = v = m = 8,
 * P_max = 8 * 8^3 = 4096, P = 2048 fit samples, 1024 test. */
static void test_learns_rhm_ridge_chain(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!have_rhm()) skip();
  char dir[1024], err[4096];
  const char *sets[] = {"train.algorithm=ridge_chain",
                        "model.ridge_features=256",
                        "target.n_c=8",
                        "target.v=8",
                        "target.m=8",
                        "train.train_size=2048",
                        "eval.test_size=1024"};
  hcl_status rc = run_cfg(sets, 7, dir, err, sizeof err);
  if (rc == HCL_ERR_UNSUPPORTED && strstr(err, "solve_spd")) {
    fprintf(stderr, "solve_spd not available yet: skipping ridge_chain (%s)\n", err);
    skip();
  }
  if (rc != HCL_OK) fail_msg("%s", err);
  double last = last_metric(dir, "test_error");
  fprintf(stderr, "deep_cnn ridge_chain on rhm: test error %.3f (chance 0.875)\n", last);
  assert_true(last < 0.1);
  /* the median heuristic for sigma, two replicas */
  const char *med[] = {"train.algorithm=ridge_chain",
                       "model.ridge_features=256",
                       "target.n_c=8",
                       "target.v=8",
                       "target.m=8",
                       "train.train_size=2048",
                       "eval.test_size=1024",
                       "model.ridge_sigma=0",
                       "run.replicas=2"};
  if (run_cfg(med, 9, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  last = last_metric(dir, "test_error");
  fprintf(stderr, "deep_cnn ridge_chain (median heuristic) on rhm: test error %.3f\n", last);
  assert_true(last < 0.1);
}

/* A regression target of length 2^4 (staircase, rank-1 input = one channel):
 * sgd and layerwise run, ridge_chain refuses with the reason. */
static void test_regression_target(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!hcl_registry_find(hcl_test_registry(), "staircase", HCL_PLUGIN_TARGET)) skip();
  const char *cfg = "[run]\nseed = 1\n"
                    "[target]\nplugin = staircase\nn = 16\nk = 2\nprobe_samples = 100\n"
                    "[model]\nplugin = deep_cnn\nwidth = 8\nparam = standard\nbias = shared\n"
                    "[train]\nsteps = 40\nbatch = 16\nlr = 0.01\n"
                    "[eval]\nevery = 20\ntest_size = 64\n";
  const char *path = hcl_test_write_temp("deep_cnn_stc.ini", cfg);
  char err[4096];
  const char *algs[] = {"train.algorithm=sgd", "train.algorithm=layerwise",
                        "train.algorithm=ridge_chain"};
  for (size_t i = 0; i < 3; i++) {
    hcl_run_options o = {.config_path = path,
                         .sets = &algs[i],
                         .n_sets = 1,
                         .device = "cpu",
                         .out_dir = hcl_test_tmpdir(),
                         .plugin_path = HCL_TEST_PLUGIN_DIR};
    hcl_status rc = hcl_run(&o, err, sizeof err);
    if (i < 2 && rc != HCL_OK) fail_msg("%s: %s", algs[i], err);
    if (i == 2) {
      assert_int_not_equal(rc, HCL_OK);
      if (!strstr(err, "classification")) fail_msg("ridge_chain on regression: %s", err);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_gradient_fd),
      cmocka_unit_test(test_descriptor),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_mf),
      cmocka_unit_test(test_standard),
      cmocka_unit_test(test_features),
      cmocka_unit_test(test_init_statistics),
      cmocka_unit_test(test_replicas_bitwise),
      cmocka_unit_test(test_layerwise_steps),
      cmocka_unit_test(test_learns_rhm_sgd),
      cmocka_unit_test(test_learns_rhm_layerwise),
      cmocka_unit_test(test_learns_rhm_ridge_chain),
      cmocka_unit_test(test_regression_target),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
