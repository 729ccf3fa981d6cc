/* three_layer model plugin (SPEC 2.4): forward and gradient against a float64
 * host reference (itself checked by finite differences) for several
 * activation / baseline combinations, R = 3; layout and blocks; init laws and
 * streams; replicas bit for bit; algorithm1's stage 1 against the closed-form
 * gradient at W = 0 and its stage 2 (b re-drawn, ridge) against the normal
 * equations solved in float64, on the same data (a host-side fake target run
 * through the real trainer); the automatic eta1; the ridge algorithm; the
 * learned-feature probe against a host computation; errors; sgd through the
 * runtime's loop; and a run through hcl_run() where algorithm1 learns a
 * single-index target (skipped when targets/single_index is not built). */
#include "hcl_test.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_model_vt *g_vt;

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

/* the model's stream ids (plugins/three_layer/three_layer.h) */
#define TL_TAG 0x74686c7900000000ull

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static double urand(double lo, double hi) {
  uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53;
}

/* ---- float64 reference network (one replica) ------------------------------ */
enum { A_RELU, A_LEAKY, A_QUAD, A_TANH, A_ID };

static double act_f(int a, double z) {
  switch (a) {
  case A_RELU: return z > 0 ? z : 0;
  case A_LEAKY: return z > 0 ? z : 0.1 * z;
  case A_QUAD: return z * z;
  case A_TANH: return tanh(z);
  default: return z;
  }
}
static double act_df(int a, double z) {
  switch (a) {
  case A_RELU: return z > 0 ? 1 : 0;
  case A_LEAKY: return z > 0 ? 1 : 0.1;
  case A_QUAD: return 2 * z;
  case A_TANH: return 1 - tanh(z) * tanh(z);
  default: return 1;
  }
}

typedef struct ref_net {
  size_t d, m1, m2, D;
  int act1, act2, two_layer;
} ref_net;

static size_t rk(const ref_net *r) { return r->two_layer ? r->d : r->m1; }
static size_t rw(const ref_net *r) { return r->two_layer ? 0 : r->m1 * r->d; }
static size_t rb(const ref_net *r) { return rw(r) + r->m2 * rk(r); }
static size_t ra(const ref_net *r) { return rb(r) + r->m2; }
static size_t rnp(const ref_net *r) { return ra(r) + r->m2 * r->D; }

/* phi [k] and z1 [m1] of one sample x [d] (float inputs, double maths). */
static void ref_phi(const ref_net *r, const double *p, const float *x, double *phi, double *z1) {
  if (r->two_layer) {
    for (size_t c = 0; c < r->d; c++) phi[c] = x[c] / sqrt((double)r->d);
    return;
  }
  for (size_t i = 0; i < r->m1; i++) {
    double s = 0;
    for (size_t c = 0; c < r->d; c++) s += p[i * r->d + c] * x[c];
    z1[i] = s;
    phi[i] = act_f(r->act1, s) / sqrt((double)r->m1);
  }
}

/* out [n, D]. */
static void ref_forward(const ref_net *r, const double *p, const float *x, size_t n, double *out) {
  size_t k = rk(r);
  double *phi = malloc(k * sizeof *phi), *z1 = malloc(r->m1 * sizeof *z1);
  for (size_t i = 0; i < n; i++) {
    ref_phi(r, p, x + i * r->d, phi, z1);
    for (size_t o = 0; o < r->D; o++) out[i * r->D + o] = 0;
    for (size_t j = 0; j < r->m2; j++) {
      double z = p[rb(r) + j];
      for (size_t c = 0; c < k; c++) z += p[rw(r) + j * k + c] * phi[c];
      double h = act_f(r->act2, z);
      for (size_t o = 0; o < r->D; o++) out[i * r->D + o] += h * p[ra(r) + j * r->D + o] / r->m2;
    }
  }
  free(phi);
  free(z1);
}

/* Full gradient (every block) of sum(dout . out). */
static void ref_grad(const ref_net *r, const double *p, const float *x, size_t n,
                     const double *dout, double *g) {
  size_t k = rk(r), m2 = r->m2, D = r->D;
  double *phi = malloc(k * sizeof *phi), *z1 = malloc(r->m1 * sizeof *z1);
  double *dz = malloc(m2 * sizeof *dz), *dphi = malloc(k * sizeof *dphi);
  memset(g, 0, rnp(r) * sizeof *g);
  for (size_t i = 0; i < n; i++) {
    const double *dy = dout + i * D;
    ref_phi(r, p, x + i * r->d, phi, z1);
    for (size_t c = 0; c < k; c++) dphi[c] = 0;
    for (size_t j = 0; j < m2; j++) {
      double z = p[rb(r) + j];
      for (size_t c = 0; c < k; c++) z += p[rw(r) + j * k + c] * phi[c];
      double h = act_f(r->act2, z), dh = 0;
      for (size_t o = 0; o < D; o++) {
        g[ra(r) + j * D + o] += h * dy[o] / m2;
        dh += dy[o] * p[ra(r) + j * D + o] / m2;
      }
      dz[j] = dh * act_df(r->act2, z);
      g[rb(r) + j] += dz[j];
      for (size_t c = 0; c < k; c++) {
        g[rw(r) + j * k + c] += dz[j] * phi[c];
        dphi[c] += dz[j] * p[rw(r) + j * k + c];
      }
    }
    if (!r->two_layer)
      for (size_t q = 0; q < r->m1; q++) {
        double d1 = dphi[q] * act_df(r->act1, z1[q]) / sqrt((double)r->m1);
        for (size_t c = 0; c < r->d; c++) g[q * r->d + c] += d1 * x[i * r->d + c];
      }
  }
  free(phi), free(z1), free(dz), free(dphi);
}

static double ref_objective(const ref_net *r, const double *p, const float *x, size_t n,
                            const double *dout) {
  double *out = malloc(n * r->D * sizeof *out), s = 0;
  ref_forward(r, p, x, n, out);
  for (size_t i = 0; i < n * r->D; i++) s += out[i] * dout[i];
  free(out);
  return s;
}

/* Cholesky solve of (A + lambda I) x = b in place, A [k, k]. */
static int chol_solve(double *A, size_t k, double lambda, double *b) {
  for (size_t i = 0; i < k; i++) A[i * k + i] += lambda;
  for (size_t j = 0; j < k; j++) {
    double d = A[j * k + j];
    for (size_t q = 0; q < j; q++) d -= A[j * k + q] * A[j * k + q];
    if (!(d > 0)) return 0;
    d = sqrt(d);
    A[j * k + j] = d;
    for (size_t i = j + 1; i < k; i++) {
      double s = A[i * k + j];
      for (size_t q = 0; q < j; q++) s -= A[i * k + q] * A[j * k + q];
      A[i * k + j] = s / d;
    }
  }
  for (size_t i = 0; i < k; i++) {
    double s = b[i];
    for (size_t q = 0; q < i; q++) s -= A[i * k + q] * b[q];
    b[i] = s / A[i * k + i];
  }
  for (size_t i = k; i-- > 0;) {
    double s = b[i];
    for (size_t q = i + 1; q < k; q++) s -= A[q * k + i] * b[q];
    b[i] = s / A[i * k + i];
  }
  return 1;
}

/* ---- device helpers ----------------------------------------------------- */
static hcl_target_info target_vec(size_t d, hcl_task task, size_t y_dim, size_t classes) {
  hcl_target_info t = {.struct_size = sizeof t,
                       .x = {.rank = 1, .dims = {d}},
                       .y_dim = y_dim,
                       .task = task,
                       .n_classes = classes};
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

#define to_double(f, n) hcl_test_to_double(f, n)

/* max |a - b| <= tol * max(1, max |b|), else fail naming what. */
static void assert_close(const char *what, const float *a, const double *b, size_t n, double tol) {
  double scale = 1, err = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
  for (size_t i = 0; i < n; i++)
    if (!(fabs(a[i] - b[i]) <= err)) {
      err = fabs(a[i] - b[i]);
      at = i;
      if (isnan(a[i])) err = INFINITY;
    }
  if (!(err <= tol * scale))
    fail_msg("%s: element %zu: device %.9g, reference %.9g (max error %g, scale %g)", what, at,
             (double)a[at], b[at], err, scale);
}

/* ---- the fake target: host-generated data through the trainer ----------- */
#define FAKE_TAG 0x66616b6500000000ull
typedef struct fake_target {
  hcl_ctx *ctx;
  size_t R, d;
  const uint64_t *seeds;
  uint64_t P;
  int has_hstar;
  size_t yd; /* labels per sample: y, then (two outputs) fake_y1 */
} fake_target;

static float fake_x(const fake_target *f, size_t r, uint32_t stream, uint64_t i, size_t c) {
  return hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, f->seeds[r], FAKE_TAG | stream, i * f->d + c);
}
/* h*(x) = x0 + 0.5 x1 (in float, as the device sees it), y = relu(h*) - 0.2 */
static float fake_hstar(const float *x) { return x[0] + 0.5f * x[1]; }
/* the second label of a two-output target */
static float fake_y1(const float *x) { return 0.5f * x[2] - 0.1f; }
static float fake_y(const float *x) {
  float h = fake_hstar(x);
  return (h > 0 ? h : 0.0f) - 0.2f;
}
/* sample i of a stream into x [d]; train indices wrap at P */
static void fake_sample1(const fake_target *f, size_t r, uint32_t stream, uint64_t i, float *x) {
  if (stream == HCL_STREAM_TRAIN && f->P) i %= f->P;
  for (size_t c = 0; c < f->d; c++) x[c] = fake_x(f, r, stream, i, c);
}

static hcl_status fake_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                              hcl_buf y) {
  fake_target *f = self;
  size_t yd = f->yd;
  float *hx = malloc(f->R * n * f->d * sizeof *hx), *hy = malloc(f->R * n * yd * sizeof *hy);
  for (size_t r = 0; r < f->R; r++)
    for (size_t i = 0; i < n; i++) {
      float *xi = hx + (r * n + i) * f->d;
      fake_sample1(f, r, stream, first + i, xi);
      for (size_t o = 0; o < yd; o++) hy[(r * n + i) * yd + o] = o ? fake_y1(xi) : fake_y(xi);
    }
  hcl_status rc = hcl_buf_write(f->ctx, x, hx, f->R * n * f->d * sizeof *hx);
  if (rc == HCL_OK) rc = hcl_buf_write(f->ctx, y, hy, f->R * n * yd * sizeof *hy);
  free(hx);
  free(hy);
  return rc;
}

static hcl_status fake_eval(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out) {
  fake_target *f = self;
  if (!f->has_hstar || strcmp(what, "hstar"))
    return hcl_fail(f->ctx, HCL_ERR_UNSUPPORTED, "fake target: no '%s'", what);
  float *hx = malloc(f->R * n * f->d * sizeof *hx), *ho = malloc(f->R * n * sizeof *ho);
  hcl_status rc = hcl_buf_read(f->ctx, x, hx, f->R * n * f->d * sizeof *hx);
  for (size_t i = 0; i < f->R * n; i++) ho[i] = fake_hstar(hx + i * f->d);
  if (rc == HCL_OK) rc = hcl_buf_write(f->ctx, out, ho, f->R * n * sizeof *ho);
  free(hx);
  free(ho);
  return rc;
}

static const hcl_target_vt fake_vt = {
    .struct_size = sizeof(hcl_target_vt), .sample = fake_sample, .eval = fake_eval};

/* A model trained through the runtime's trainer on the fake target. */
typedef struct run {
  hcl_train_cfg cfg;
  hcl_trainer t;
  fake_target f;
  model m;
  ref_net ref;
} run;

/* classes > 0: the model sees a classification target with that many
 * classes (the fake labels are then meaningless; used for error paths);
 * else a regression target with yd (1 or 2) labels. */
static void run_make_task(run *rn, const char *const *kv, size_t R, const uint64_t *seeds,
                          uint64_t P, size_t batch, int has_hstar, size_t classes, size_t yd) {
  memset(rn, 0, sizeof *rn);
  size_t d = 5;
  rn->f = (fake_target){.ctx = g_ctx,
                        .R = R,
                        .d = d,
                        .seeds = seeds,
                        .P = P,
                        .has_hstar = has_hstar,
                        .yd = classes ? 1 : yd};
  hcl_target_info ti = classes ? target_vec(d, HCL_TASK_CLASSES, 1, classes)
                               : target_vec(d, HCL_TASK_REGRESSION, yd, 0);
  if (model_make(kv, R, seeds, batch, &ti, &rn->m) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  rn->cfg = (hcl_train_cfg){.replicas = (uint32_t)R,
                            .seeds = seeds,
                            .steps = 100,
                            .batch = batch,
                            .train_size = P,
                            .sched = {.kind = HCL_SCHED_CONSTANT, .lr = 0.1},
                            .loss = HCL_LOSS_MSE,
                            .optim = {.kind = HCL_OPT_SGD},
                            .eval_every = 0,
                            .test_size = 0,
                            .eval_batch = batch,
                            .probes = 1,
                            .algorithm = "algorithm1"};
  rn->t = (hcl_trainer){.ctx = g_ctx,
                        .cfg = &rn->cfg,
                        .tvt = &fake_vt,
                        .target = &rn->f,
                        .tinfo = ti,
                        .mvt = g_vt,
                        .model = rn->m.self};
  if (hcl_trainer_init(&rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
}

static void run_make(run *rn, const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                     size_t batch, int has_hstar) {
  run_make_task(rn, kv, R, seeds, P, batch, has_hstar, 0, 1);
}

static void run_free(run *rn) {
  hcl_trainer_release(&rn->t);
  model_free(&rn->m);
}

/* The value of metric `name` of the last evaluation for replica r (NAN: absent). */
static double metric(const run *rn, const char *name, size_t r) {
  for (size_t i = 0; i < rn->t.m_n; i++)
    if (!strcmp(rn->t.m_names[i], name)) return rn->t.m_values[i * rn->cfg.replicas + r];
  return NAN;
}
static int has_metric(const run *rn, const char *name) {
  for (size_t i = 0; i < rn->t.m_n; i++)
    if (!strcmp(rn->t.m_names[i], name)) return 1;
  return 0;
}

/* ---- tests without a device --------------------------------------------- */

/* The reference gradient equals central differences of the reference
 * objective for every parameter, three-layer and two-layer. */
static void reference_gradient_fd(void **state) {
  (void)state;
  const ref_net nets[] = {{4, 6, 5, 2, A_TANH, A_QUAD, 0},
                          {4, 6, 5, 1, A_RELU, A_TANH, 0},
                          {3, 3, 4, 1, A_ID, A_LEAKY, 1}};
  for (size_t q = 0; q < 3; q++) {
    const ref_net *r = &nets[q];
    size_t np = rnp(r), n = 5;
    double *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g), dout[5 * 2];
    float x[5 * 4];
    for (size_t i = 0; i < np; i++) p[i] = urand(-0.9, 0.9);
    for (size_t i = 0; i < n * r->d; i++) x[i] = (float)urand(-1, 1);
    for (size_t i = 0; i < n * r->D; i++) dout[i] = urand(-1, 1);
    ref_grad(r, p, x, n, dout, g);
    for (size_t i = 0; i < np; i++) {
      double keep = p[i], h = 1e-6;
      p[i] = keep + h;
      double fp = ref_objective(r, p, x, n, dout);
      p[i] = keep - h;
      double fm = ref_objective(r, p, x, n, dout);
      p[i] = keep;
      double fd = (fp - fm) / (2 * h);
      if (!(fabs(fd - g[i]) <= 1e-6 * (1 + fabs(g[i]))))
        fail_msg("net %zu param %zu: reference %.12g, finite difference %.12g", q, i, g[i], fd);
    }
    free(p);
    free(g);
  }
}

/* ---- device tests ---------------------------------------------------------- */

/* n_params, blocks (names, offsets, shapes, groups, trainable) for the
 * three-layer net and the baselines; impossible settings rejected. */
static void layout_and_blocks(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 1;
  hcl_target_info t = target_vec(7, HCL_TASK_REGRESSION, 1, 0);
  model m;
  const char *kv1[] = {"m1=11", "m2=5", NULL};
  assert_int_equal(model_make(kv1, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, 11 * 7 + 5 * 11 + 5 + 5);
  assert_int_equal(g_vt->out_dim(m.self), 1);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 4);
  const char *names[] = {"V", "W", "b", "a"};
  const size_t off[] = {0, 77, 132, 137}, rows[] = {11, 5, 5, 5}, cols[] = {7, 11, 1, 1};
  const uint32_t group[] = {0, 1, 1, 2}, trainable[] = {0, 1, 0, 1};
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(b[i].name, names[i]);
    assert_int_equal(b[i].offset, off[i]);
    assert_int_equal(b[i].rows, rows[i]);
    assert_int_equal(b[i].cols, cols[i]);
    assert_int_equal(b[i].group, group[i]);
    assert_int_equal(b[i].trainable, trainable[i]);
  }
  model_free(&m);
  /* two-layer, frozen W, trained b, two outputs */
  hcl_target_info t2 = target_vec(7, HCL_TASK_REGRESSION, 2, 0);
  const char *kv2[] = {"m1=11", "m2=5", "two_layer=true", "freeze_w=true", "train_b=true", NULL};
  assert_int_equal(model_make(kv2, 1, &seed, 4, &t2, &m), HCL_OK);
  assert_int_equal(m.np, 5 * 7 + 5 + 5 * 2);
  assert_int_equal(g_vt->out_dim(m.self), 2);
  b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 3);
  assert_string_equal(b[0].name, "W");
  assert_int_equal(b[0].cols, 7);
  assert_int_equal(b[0].trainable, 0);
  assert_int_equal(b[1].trainable, 1);
  assert_int_equal(b[2].offset, 40);
  assert_int_equal(b[2].cols, 2);
  model_free(&m);
  /* m1_per_d2: m1 = ceil(0.3 * 7^2) = 15 in place of m1 = 11; ignored by two_layer */
  const char *kv4[] = {"m1=11", "m2=5", "m1_per_d2=0.3", NULL};
  assert_int_equal(model_make(kv4, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, 15 * 7 + 5 * 15 + 5 + 5);
  b = g_vt->blocks(m.self, &nb);
  assert_int_equal(b[0].rows, 15);
  model_free(&m);
  const char *kv5[] = {"m2=5", "m1_per_d2=0.3", "two_layer=true", NULL};
  assert_int_equal(model_make(kv5, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, 5 * 7 + 5 + 5);
  model_free(&m);
  const char *kv6[] = {"m2=5", "m1_per_d2=30000", NULL};
  assert_int_equal(model_make(kv6, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(g_ctx->errmsg, "m1_per_d2"));
  /* classes: one output per class */
  hcl_target_info t3 = target_vec(7, HCL_TASK_CLASSES, 1, 4);
  assert_int_equal(model_make(kv1, 1, &seed, 4, &t3, &m), HCL_OK);
  assert_int_equal(g_vt->out_dim(m.self), 4);
  model_free(&m);
  /* errors */
  hcl_target_info t0 = target_vec(0, HCL_TASK_REGRESSION, 1, 0);
  assert_int_equal(model_make(kv1, 1, &seed, 4, &t0, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(g_ctx->errmsg, "size 0"));
  assert_int_equal(model_make(kv1, 1, &seed, 0, &t, &m), HCL_ERR_PARAM);
}

/* Forward and gradient of R = 3 replicas with their own random parameters
 * against the reference, for several settings. Frozen blocks get 0. */
static void forward_backward_vs_reference(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {1, 2, 3};
  struct {
    const char *kv[8];
    ref_net r;
    int train_b, freeze_w;
  } cases[] = {
      {{"m1=10", "m2=7", NULL}, {6, 10, 7, 1, A_RELU, A_RELU, 0}, 0, 0},
      {{"m1=9", "m2=6", "act1=tanh", "act2=quadratic", "train_b=true", NULL},
       {6, 9, 6, 2, A_TANH, A_QUAD, 0},
       1,
       0},
      {{"m2=8", "two_layer=true", "act2=leaky_relu", "train_b=true", NULL},
       {6, 6, 8, 1, A_ID, A_LEAKY, 1},
       1,
       0},
      {{"m1=12", "m2=5", "freeze_w=true", "act1=identity", "act2=tanh", NULL},
       {6, 12, 5, 1, A_ID, A_TANH, 0},
       0,
       1},
      {{"m1=8", "m2=70", "act1=leaky_relu", "act2=relu", NULL},
       {6, 8, 70, 1, A_LEAKY, A_RELU, 0},
       0,
       0},
  };
  const size_t n = 13;
  for (size_t q = 0; q < sizeof cases / sizeof *cases; q++) {
    const ref_net *r = &cases[q].r;
    hcl_target_info t = target_vec(r->d, HCL_TASK_REGRESSION, r->D, 0);
    model m;
    if (model_make(cases[q].kv, R, seeds, 16, &t, &m) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
    size_t np = rnp(r);
    assert_int_equal(m.np, np);
    float *ph = malloc(R * np * sizeof *ph), *xh = malloc(R * n * r->d * sizeof *xh);
    float *dh = malloc(R * n * r->D * sizeof *dh);
    for (size_t i = 0; i < R * np; i++) ph[i] = (float)urand(-0.8, 0.8);
    for (size_t i = 0; i < R * n * r->d; i++) xh[i] = (float)urand(-1.5, 1.5);
    for (size_t i = 0; i < R * n * r->D; i++) dh[i] = (float)urand(-1, 1);
    assert_int_equal(hcl_buf_write(g_ctx, m.params, ph, R * np * sizeof *ph), HCL_OK);
    hcl_buf x = upload(xh, R * n * r->d), dout = upload(dh, R * n * r->D), out, grad;
    assert_int_equal(hcl_buf_alloc(g_ctx, R * n * r->D * sizeof(float), &out), HCL_OK);
    assert_int_equal(hcl_buf_alloc(g_ctx, R * np * sizeof(float), &grad), HCL_OK);
    assert_int_equal(hcl_buf_write(g_ctx, grad, ph, R * np * sizeof *ph), HCL_OK); /* garbage */
    assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_ERR_PARAM);
    if (g_vt->forward(m.self, m.params, x, n, out) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
    if (g_vt->backward(m.self, m.params, dout, n, grad) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
    float *oh = read_floats(out, R * n * r->D), *gh = read_floats(grad, R * np);
    double *ro = malloc(n * r->D * sizeof *ro), *rg = malloc(np * sizeof *rg);
    for (size_t rep = 0; rep < R; rep++) {
      double *p = to_double(ph + rep * np, np), *dd = to_double(dh + rep * n * r->D, n * r->D);
      ref_forward(r, p, xh + rep * n * r->d, n, ro);
      ref_grad(r, p, xh + rep * n * r->d, n, dd, rg);
      if (!r->two_layer)
        for (size_t i = 0; i < rw(r); i++) rg[i] = 0; /* V frozen */
      if (cases[q].freeze_w)
        for (size_t i = rw(r); i < rb(r); i++) rg[i] = 0;
      if (!cases[q].train_b)
        for (size_t i = rb(r); i < ra(r); i++) rg[i] = 0;
      char what[64];
      snprintf(what, sizeof what, "case %zu forward, replica %zu", q, rep);
      assert_close(what, oh + rep * n * r->D, ro, n * r->D, 2e-5);
      snprintf(what, sizeof what, "case %zu gradient, replica %zu", q, rep);
      assert_close(what, gh + rep * np, rg, np, 2e-5);
      free(p);
      free(dd);
    }
    /* features: layer 1 = phi (three-layer), the last layer = sigma2(W phi + b) */
    size_t layers = r->two_layer ? 1 : 2, dim = 0, wmax = r->m2 > r->m1 ? r->m2 : r->m1;
    hcl_buf feat;
    assert_int_equal(hcl_buf_alloc(g_ctx, R * n * wmax * sizeof(float), &feat), HCL_OK);
    assert_int_equal(g_vt->features(m.self, m.params, layers, x, n, feat, &dim), HCL_OK);
    assert_int_equal(dim, r->m2);
    float *fh = read_floats(feat, R * n * dim);
    double *p0 = to_double(ph, np), *phi = malloc(rk(r) * sizeof *phi), *z1 = malloc(r->m1 * 8);
    for (size_t i = 0; i < n; i++) {
      ref_phi(r, p0, xh + i * r->d, phi, z1);
      for (size_t j = 0; j < r->m2; j++) {
        double z = p0[rb(r) + j];
        for (size_t c = 0; c < rk(r); c++) z += p0[rw(r) + j * rk(r) + c] * phi[c];
        assert_true(fabs(fh[i * dim + j] - act_f(r->act2, z)) < 1e-4 * (1 + fabs(z * z)));
      }
    }
    assert_int_equal(g_vt->features(m.self, m.params, layers + 1, x, n, feat, &dim), HCL_ERR_PARAM);
    assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_ERR_PARAM);
    free(fh), free(p0), free(phi), free(z1);
    hcl_buf_free(g_ctx, &feat);
    free(ph), free(xh), free(dh), free(oh), free(gh), free(ro), free(rg);
    hcl_buf_free(g_ctx, &x);
    hcl_buf_free(g_ctx, &dout);
    hcl_buf_free(g_ctx, &out);
    hcl_buf_free(g_ctx, &grad);
    model_free(&m);
  }
}

/* V rows on the unit sphere, a = +-1, b ~ N(0, b_scale^2) from its own stream
 * (checked bit for bit against the host mirror of the device draws), W ~
 * N(0, w_scale^2); replicas differ; the same seeds give the same bits. */
static void init_laws(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2 };
  const uint64_t seeds[R] = {77, 1ull << 33};
  hcl_target_info t = target_vec(20, HCL_TASK_REGRESSION, 1, 0);
  const char *kv[] = {"m1=50", "m2=3000", "b_scale=0.5", "w_scale=2", NULL};
  model m, m2;
  assert_int_equal(model_make(kv, R, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *p = read_floats(m.params, R * m.np);
  size_t np = m.np, w_off = 50 * 20, b_off = w_off + 3000 * 50, a_off = b_off + 3000;
  for (size_t r = 0; r < R; r++) {
    const float *q = p + r * np;
    for (size_t i = 0; i < 50; i++) {
      double s = 0;
      for (size_t c = 0; c < 20; c++) s += (double)q[i * 20 + c] * q[i * 20 + c];
      assert_true(fabs(sqrt(s) - 1) < 1e-6);
    }
    size_t plus = 0;
    for (size_t j = 0; j < 3000; j++) {
      assert_true(q[a_off + j] == 1.0f || q[a_off + j] == -1.0f);
      plus += q[a_off + j] > 0;
      float want = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 0.5f, seeds[r], TL_TAG | 2, j);
      if (q[b_off + j] != want) fail_msg("b[%zu] = %.9g, stream draw %.9g", j, q[b_off + j], want);
    }
    assert_true(plus > 1300 && plus < 1700);
    double s = 0, s2 = 0;
    for (size_t j = 0; j < 3000 * 50; j++) {
      s += q[w_off + j];
      s2 += (double)q[w_off + j] * q[w_off + j];
    }
    assert_true(fabs(s / 150000) < 0.02);
    assert_true(fabs(s2 / 150000 / 4 - 1) < 0.02);
  }
  assert_memory_not_equal(p, p + np, np * sizeof *p);
  assert_int_equal(model_make(kv, R, seeds, 9, &t, &m2), HCL_OK);
  assert_int_equal(g_vt->init(m2.self, m2.params), HCL_OK);
  float *p2 = read_floats(m2.params, R * np);
  assert_memory_equal(p, p2, R * np * sizeof *p);
  free(p);
  free(p2);
  model_free(&m);
  model_free(&m2);
  /* uniform biases */
  const char *kvu[] = {"m1=5", "m2=500", "b_dist=uniform", "b_scale=2", NULL};
  assert_int_equal(model_make(kvu, 1, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  p = read_floats(m.params, m.np);
  double mx = 0;
  for (size_t j = 0; j < 500; j++) {
    float v = p[5 * 20 + 500 * 5 + j];
    assert_true(v >= -2.0f && v <= 2.0f);
    mx = fmax(mx, fabs(v));
  }
  assert_true(mx > 1.9);
  free(p);
  model_free(&m);
}

/* R replicas in one pass equal R separate runs, bit for bit. */
static void replicas_bitwise(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {5, 6, 7};
  const size_t n = 9, d = 8;
  hcl_target_info t = target_vec(d, HCL_TASK_REGRESSION, 1, 0);
  const char *kv[] = {"m1=33", "m2=17", "act2=tanh", NULL};
  model all;
  assert_int_equal(model_make(kv, R, seeds, 16, &t, &all), HCL_OK);
  size_t np = all.np;
  float xh[R * 9 * 8], dh[R * 9];
  for (size_t i = 0; i < R * n * d; i++) xh[i] = (float)urand(-1, 1);
  for (size_t i = 0; i < R * n; i++) dh[i] = (float)urand(-1, 1);
  hcl_buf x = upload(xh, R * n * d), dout = upload(dh, R * n), out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(g_vt->init(all.self, all.params), HCL_OK);
  assert_int_equal(g_vt->forward(all.self, all.params, x, n, out), HCL_OK);
  assert_int_equal(g_vt->backward(all.self, all.params, dout, n, grad), HCL_OK);
  float *pa = read_floats(all.params, R * np), *oa = read_floats(out, R * n);
  float *ga = read_floats(grad, R * np);
  for (size_t rep = 0; rep < R; rep++) {
    model one;
    assert_int_equal(model_make(kv, 1, &seeds[rep], 16, &t, &one), HCL_OK);
    hcl_buf x1 = upload(xh + rep * n * d, n * d), d1 = upload(dh + rep * n, n), o1, g1;
    assert_int_equal(hcl_buf_alloc(g_ctx, n * sizeof(float), &o1), HCL_OK);
    assert_int_equal(hcl_buf_alloc(g_ctx, np * sizeof(float), &g1), HCL_OK);
    assert_int_equal(g_vt->init(one.self, one.params), HCL_OK);
    assert_int_equal(g_vt->forward(one.self, one.params, x1, n, o1), HCL_OK);
    assert_int_equal(g_vt->backward(one.self, one.params, d1, n, g1), HCL_OK);
    float *p1 = read_floats(one.params, np), *oo = read_floats(o1, n), *gg = read_floats(g1, np);
    assert_memory_equal(p1, pa + rep * np, np * sizeof *p1);
    assert_memory_equal(oo, oa + rep * n, n * sizeof *oo);
    assert_memory_equal(gg, ga + rep * np, np * sizeof *gg);
    free(p1), free(oo), free(gg);
    hcl_buf_free(g_ctx, &x1);
    hcl_buf_free(g_ctx, &d1);
    hcl_buf_free(g_ctx, &o1);
    hcl_buf_free(g_ctx, &g1);
    model_free(&one);
  }
  free(pa), free(oa), free(ga);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &dout);
  hcl_buf_free(g_ctx, &out);
  hcl_buf_free(g_ctx, &grad);
  model_free(&all);
}

/* Host phi of training sample i of replica r, with the run's V. */
static void host_phi(const run *rn, const double *p, size_t r, uint32_t stream, uint64_t i,
                     float *x, double *phi) {
  double z1[64];
  fake_sample1(&rn->f, r, stream, i, x);
  ref_phi(&rn->ref, p, x, phi, z1);
}

/* Ridge solution on samples first .. first+n-1 with the params p (double):
 * a = argmin (1/n) sum_i (f(x_i) - y_i)^2 + lambda (1/m2) |a|^2 with
 * f = (1/m2) sum_j a_j s_j, s_j = sigma2(w_j . phi + b_j), whose normal
 * equations are (S^T S/(n m2) + lambda I) a = S^T y/n. */
static void host_ridge(const run *rn, const double *p, size_t r, uint64_t first, size_t n,
                       double lambda, double *a) {
  const ref_net *R_ = &rn->ref;
  size_t m2 = R_->m2, k = rk(R_);
  double *G = calloc(m2 * m2, sizeof *G), *h = malloc(m2 * sizeof *h), phi[64];
  float x[16];
  for (size_t j = 0; j < m2; j++) a[j] = 0;
  for (size_t i = 0; i < n; i++) {
    host_phi(rn, p, r, HCL_STREAM_TRAIN, first + i, x, phi);
    for (size_t j = 0; j < m2; j++) {
      double z = p[rb(R_) + j];
      for (size_t c = 0; c < k; c++) z += p[rw(R_) + j * k + c] * phi[c];
      h[j] = act_f(R_->act2, z);
    }
    double y = fake_y(x);
    for (size_t j = 0; j < m2; j++) {
      a[j] += h[j] * y / n;
      for (size_t l = 0; l < m2; l++) G[j * m2 + l] += h[j] * h[l] / ((double)n * m2);
    }
  }
  assert_true(chol_solve(G, m2, lambda, a));
  free(G);
  free(h);
}

/* Mean (f - y)^2 on samples first .. first+n-1 with params p. */
static double host_loss(const run *rn, const double *p, size_t r, uint64_t first, size_t n) {
  double s = 0, out;
  float x[16];
  for (size_t i = 0; i < n; i++) {
    fake_sample1(&rn->f, r, HCL_STREAM_TRAIN, first + i, x);
    ref_forward(&rn->ref, p, x, 1, &out);
    double e = out - fake_y(x);
    s += e * e;
  }
  return s / n;
}

/* algorithm1 with a given eta1: stage 1 equals -eta1 times the closed-form
 * gradient at W = 0, grad w_j = (a_j sigma2'(b_j)/m2) (1/n1) sum_i 2 (f0 + c -
 * y_i) phi(x_i), f0 = (1/m2) sum_j a_j sigma2(b_j), c = the first half's mean
 * label with center_y (else 0); b is then the stage-2 stream; a the ridge
 * solution on the second half (the reference's S from the dense W, the
 * plugin's from W's rank-1 factors); the reported metrics match. P is odd
 * and not a multiple of the batch, so chunks are partial. two_layer: phi =
 * x / sqrt(d). */
static void check_algorithm1(int center, int two_layer) {
  enum { R = 2 };
  const uint64_t seeds[R] = {21, 22};
  const uint64_t P = 61;
  const size_t n1 = 30, n2 = 31;
  const char *kv[] = {"m1=12",
                      "m2=9",
                      "eta1=0.7",
                      "lambda=1e-3",
                      "act2=tanh",
                      "b_scale=0.8",
                      "probe_samples=0",
                      center ? "center_y=true" : "center_y=false",
                      two_layer ? "two_layer=true" : "two_layer=false",
                      NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, R, seeds, P, 8, 0);
  rn->ref = (ref_net){5, 12, 9, 1, A_RELU, A_TANH, two_layer};
  size_t np = rn->m.np, m2 = 9, k = rk(&rn->ref);
  assert_int_equal(np, rnp(&rn->ref));
  float *p0 = read_floats(rn->t.params, R * np);
  hcl_status rc = g_vt->train(rn->m.self, "algorithm1", &rn->t);
  if (rc != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *p1 = read_floats(rn->t.params, R * np);
  for (size_t r = 0; r < R; r++) {
    double *q0 = to_double(p0 + r * np, np), *q1 = to_double(p1 + r * np, np);
    const double *a0 = q0 + ra(&rn->ref), *b0 = q0 + rb(&rn->ref);
    /* V, unchanged */
    assert_memory_equal(p0 + r * np, p1 + r * np, rw(&rn->ref) * sizeof(float));
    /* stage 1 */
    double f0 = 0, gsum[12] = {0}, loss0 = 0, phi[64], ybar = 0;
    float x[16];
    for (size_t i = 0; i < n1 && center; i++) {
      fake_sample1(&rn->f, r, HCL_STREAM_TRAIN, i, x);
      ybar += fake_y(x) / (double)n1;
    }
    for (size_t j = 0; j < m2; j++) f0 += a0[j] * act_f(A_TANH, b0[j]) / m2;
    for (size_t i = 0; i < n1; i++) {
      host_phi(rn, q0, r, HCL_STREAM_TRAIN, i, x, phi);
      double e = f0 + ybar - fake_y(x);
      loss0 += e * e / n1;
      for (size_t c = 0; c < k; c++) gsum[c] += 2 * e * phi[c] / n1;
    }
    double W[9 * 12];
    for (size_t j = 0; j < m2; j++)
      for (size_t c = 0; c < k; c++)
        W[j * k + c] = -0.7 * a0[j] * act_df(A_TANH, b0[j]) / m2 * gsum[c];
    assert_close(center ? "stage-1 W (centred)" : "stage-1 W", p1 + r * np + rw(&rn->ref), W,
                 m2 * k, 1e-5);
    /* stage 2: b from its own stream, a = ridge on the second half */
    for (size_t j = 0; j < m2; j++) {
      float want = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 0.8f, seeds[r], TL_TAG | 4, j);
      assert_true(p1[r * np + rb(&rn->ref) + j] == want);
      assert_true(want != p0[r * np + rb(&rn->ref) + j]);
    }
    double a[9];
    host_ridge(rn, q1, r, n1, n2, 1e-3, a);
    assert_close("ridge a", p1 + r * np + ra(&rn->ref), a, m2, 2e-4);
    /* metrics */
    assert_true(fabs(metric(rn, "stage1_loss", r) - loss0) < 1e-5 * (1 + loss0));
    assert_true(metric(rn, "eta1", r) == 0.7);
    double fit = host_loss(rn, q1, r, n1, n2);
    assert_true(fabs(metric(rn, "ridge_loss", r) - fit) < 1e-4 * (1 + fit));
    free(q0);
    free(q1);
  }
  free(p0);
  free(p1);
  run_free(rn);
  free(rn);
}

static void algorithm1_matches_formulas(void **state) {
  (void)state;
  NEED_DEVICE();
  check_algorithm1(0, 0);
  check_algorithm1(1, 0);
  check_algorithm1(1, 1);
}

/* eta1 = 0: the step makes mean_{i, j} (w_j . phi(x_i))^2 = eta1_scale^2
 * (1 by default) on the first half, and W is -eta1 (reported) times the
 * gradient direction. Replicas of one run equal separate runs bit for bit
 * (the whole algorithm). */
static void check_auto_eta(const char *scale_kv, double want_ms) {
  enum { R = 2 };
  const uint64_t seeds[R] = {31, 32};
  const uint64_t P = 80;
  const char *kv[] = {"m1=16", "m2=10", "lambda=1e-4", "probe_samples=0", scale_kv, NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, R, seeds, P, 16, 0);
  rn->ref = (ref_net){5, 16, 10, 1, A_RELU, A_RELU, 0};
  size_t np = rn->m.np, m2 = 10, k = 16;
  if (g_vt->train(rn->m.self, "algorithm1", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *p1 = read_floats(rn->t.params, R * np);
  for (size_t r = 0; r < R; r++) {
    double *q = to_double(p1 + r * np, np), ms = 0, phi[64];
    float x[16];
    for (size_t i = 0; i < P / 2; i++) {
      host_phi(rn, q, r, HCL_STREAM_TRAIN, i, x, phi);
      for (size_t j = 0; j < m2; j++) {
        double u = 0;
        for (size_t c = 0; c < k; c++) u += q[rw(&rn->ref) + j * k + c] * phi[c];
        ms += u * u;
      }
    }
    ms /= (double)(P / 2) * m2;
    if (!(fabs(ms - want_ms) < 1e-4 * want_ms))
      fail_msg("replica %zu: mean square of w_j . phi = %.9g, want %g", r, ms, want_ms);
    assert_true(metric(rn, "eta1", r) > 0);
    free(q);
  }
  for (size_t r = 0; r < R; r++) {
    run *one = malloc(sizeof *one);
    run_make(one, kv, 1, &seeds[r], P, 16, 0);
    if (g_vt->train(one->m.self, "algorithm1", &one->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
    float *q = read_floats(one->t.params, np);
    assert_memory_equal(q, p1 + r * np, np * sizeof *q);
    assert_true(metric(one, "eta1", 0) == metric(rn, "eta1", r));
    free(q);
    run_free(one);
    free(one);
  }
  free(p1);
  run_free(rn);
  free(rn);
}

static void algorithm1_auto_eta_and_replicas(void **state) {
  (void)state;
  NEED_DEVICE();
  check_auto_eta(NULL, 1.0);
  check_auto_eta("eta1_scale=2.5", 6.25);
}

/* Two outputs (D = 2), the automatic eta1, act2 = tanh, centred labels,
 * chunks of 8: stage 1's W equals -eta times the float64 reference gradient
 * of the mean loss at W = 0 taken through the reference network's reverse
 * mode (not the closed form), eta makes mean_{i,j} (w_j . phi_i)^2 = 1, and
 * the stage-1 loss matches. */
static void algorithm1_two_outputs(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2, D = 2 };
  const uint64_t seeds[R] = {61, 62};
  const uint64_t P = 61;
  const size_t n1 = 30, m2 = 9, k = 12;
  const char *kv[] = {"m1=12", "m2=9", "act2=tanh", "lambda=1e-3", "probe_samples=0", NULL};
  run *rn = malloc(sizeof *rn);
  run_make_task(rn, kv, R, seeds, P, 8, 0, 0, D);
  rn->ref = (ref_net){5, 12, 9, D, A_RELU, A_TANH, 0};
  size_t np = rn->m.np;
  assert_int_equal(np, rnp(&rn->ref));
  float *p0 = read_floats(rn->t.params, R * np);
  if (g_vt->train(rn->m.self, "algorithm1", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *p1 = read_floats(rn->t.params, R * np);
  float *x = malloc(n1 * 5 * sizeof *x);
  double *out = malloc(n1 * D * sizeof *out), *dout = malloc(n1 * D * sizeof *dout);
  double *g = malloc(np * sizeof *g), *phi = malloc(k * sizeof *phi), z1[12];
  for (size_t r = 0; r < R; r++) {
    double *q = to_double(p0 + r * np, np), ybar[D] = {0}, loss0 = 0, ms = 0;
    for (size_t c = 0; c < m2 * k; c++) q[rw(&rn->ref) + c] = 0; /* W = 0 */
    for (size_t i = 0; i < n1; i++) {
      fake_sample1(&rn->f, r, HCL_STREAM_TRAIN, i, x + i * 5);
      ybar[0] += fake_y(x + i * 5) / (double)n1;
      ybar[1] += fake_y1(x + i * 5) / (double)n1;
    }
    ref_forward(&rn->ref, q, x, n1, out);
    for (size_t i = 0; i < n1; i++)
      for (size_t o = 0; o < D; o++) { /* mse averaged over the outputs */
        double e = out[i * D + o] + ybar[o] - (o ? fake_y1(x + i * 5) : fake_y(x + i * 5));
        loss0 += e * e / (double)(D * n1);
        dout[i * D + o] = 2 * e / (double)(D * n1);
      }
    ref_grad(&rn->ref, q, x, n1, dout, g);
    const double *gw = g + rw(&rn->ref);
    for (size_t i = 0; i < n1; i++) {
      ref_phi(&rn->ref, q, x + i * 5, phi, z1);
      for (size_t j = 0; j < m2; j++) {
        double u = 0;
        for (size_t c = 0; c < k; c++) u += gw[j * k + c] * phi[c];
        ms += u * u / (double)(n1 * m2);
      }
    }
    double eta = 1 / sqrt(ms), W[9 * 12];
    for (size_t c = 0; c < m2 * k; c++) W[c] = -eta * gw[c];
    assert_close("stage-1 W (two outputs)", p1 + r * np + rw(&rn->ref), W, m2 * k, 1e-4);
    if (!(fabs(metric(rn, "eta1", r) - eta) <= 1e-4 * eta))
      fail_msg("replica %zu: eta1 %.9g, reference %.9g", r, metric(rn, "eta1", r), eta);
    if (!(fabs(metric(rn, "stage1_loss", r) - loss0) <= 1e-5 * loss0))
      fail_msg("replica %zu: stage1_loss %.9g, reference %.9g", r, metric(rn, "stage1_loss", r),
               loss0);
    free(q);
  }
  free(x), free(out), free(dout), free(g), free(phi), free(p0), free(p1);
  run_free(rn);
  free(rn);
}

/* No product of n1 x k x m2 in stage 1 (its closed form at W = 0) and no
 * forward for the fit's loss (mse: from the normal equations' sums): the
 * products of a whole algorithm1 run stay below those of the ridge stage
 * as the graph runs it (features S through both layers, S^T S, S^T y) plus
 * half of one n1 x k x m2 product, where the graph's forward and backward at
 * W = 0, the automatic step's phi g^T and the fit's forward cost four such
 * products more. Counted, not timed. m2 = 160 spans two blocks of S^T S's
 * lower triangle: a and the fit's loss match the float64 reference. */
static void algorithm1_products(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2 };
  const uint64_t seeds[R] = {51, 52};
  const uint64_t P = 400;
  const double n1 = 200, n2 = 200, d = 5, k = 48, m2 = 160;
  const char *kv[] = {"m1=48", "m2=160", "lambda=1e-3", "probe_samples=0", NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, R, seeds, P, 64, 0);
  rn->ref = (ref_net){5, 48, 160, 1, A_RELU, A_RELU, 0};
  size_t np = rn->m.np;
  double before = g_ctx->gemm_flops;
  if (g_vt->train(rn->m.self, "algorithm1", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  double used = (g_ctx->gemm_flops - before) / R;
  double features = 2 * n2 * (d * k + k * m2), ridge = features + 2 * n2 * m2 * (m2 + 1);
  double big = 2 * n1 * k * m2;
  if (!(used <= ridge + 0.5 * big))
    fail_msg("algorithm1 ran %.0f flops of products per replica; the ridge stage needs %.0f, one "
             "n1 x k x m2 product is %.0f",
             used, ridge, big);
  float *p1 = read_floats(rn->t.params, R * np);
  for (size_t r = 0; r < R; r++) {
    double *q = to_double(p1 + r * np, np), a[160];
    host_ridge(rn, q, r, (uint64_t)n1, (size_t)n2, 1e-3, a);
    assert_close("ridge a (m2 = 160)", p1 + r * np + ra(&rn->ref), a, 160, 2e-4);
    double fit = host_loss(rn, q, r, (uint64_t)n1, (size_t)n2);
    if (!(fabs(metric(rn, "ridge_loss", r) - fit) < 1e-4 * fit))
      fail_msg("replica %zu: ridge_loss %.9g, reference %.9g", r, metric(rn, "ridge_loss", r), fit);
    free(q);
  }
  free(p1);
  run_free(rn);
  free(rn);
}

/* The ridge algorithm with W frozen: W and b stay at their init, a is the
 * ridge solution on all P samples. */
static void ridge_algorithm(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 41, P = 45;
  const char *kv[] = {
      "m1=8", "m2=12", "freeze_w=true", "lambda=1e-3", "w_scale=1.5", "probe_samples=0", NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, 1, &seed, P, 10, 0);
  rn->ref = (ref_net){5, 8, 12, 1, A_RELU, A_RELU, 0};
  size_t np = rn->m.np;
  float *p0 = read_floats(rn->t.params, np);
  if (g_vt->train(rn->m.self, "ridge", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *p1 = read_floats(rn->t.params, np);
  assert_memory_equal(p0, p1, ra(&rn->ref) * sizeof *p0);
  double *q = to_double(p1, np), a[12];
  host_ridge(rn, q, 0, 0, P, 1e-3, a);
  assert_close("ridge a", p1 + ra(&rn->ref), a, 12, 2e-4);
  assert_true(fabs(metric(rn, "ridge_loss", 0) - host_loss(rn, q, 0, 0, P)) < 1e-4);
  free(q), free(p0), free(p1);
  run_free(rn);
  free(rn);
}

/* The fit's loss stays the loss of the fitted a where the normal equations'
 * sums cancel badly (lambda 1e-5, 100 samples for 64 units: |a| large): within
 * 1e-5 of the float64 loss of the device's a on the same samples (the sums
 * alone are off by 1e-4 here). */
static void ridge_fit_loss_ill_conditioned(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 43, P = 100;
  const char *kv[] = {"m1=24", "m2=64", "freeze_w=true", "lambda=1e-5", "probe_samples=0", NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, 1, &seed, P, 40, 0);
  rn->ref = (ref_net){5, 24, 64, 1, A_RELU, A_RELU, 0};
  size_t np = rn->m.np;
  if (g_vt->train(rn->m.self, "ridge", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *p1 = read_floats(rn->t.params, np);
  double *q = to_double(p1, np), fit = host_loss(rn, q, 0, 0, P), got = metric(rn, "ridge_loss", 0);
  if (!(fabs(got - fit) <= 1e-5 * fit)) fail_msg("ridge_loss %.9g, reference %.9g", got, fit);
  free(q), free(p1);
  run_free(rn);
  free(rn);
}

/* lambda does not depend on the width: with every unit of a width-m net
 * duplicated (W and b rows j and j + m equal) the ridge fit at width 2m is
 * a = [a_m, a_m], a_m the fit at width m, and the predictions are the same
 * (by algebra: the kernel (1/m2) sum_j s_j s_j' is unchanged). A penalty on
 * a Gram of scale 1/m2^2 would make lambda twice as strong at 2m. */
static void ridge_width_invariant(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 43, P = 40;
  enum { M = 6, K = 8, NT = 16 };
  const char *kv1[] = {"m1=8", "m2=6", "freeze_w=true", "lambda=0.05", "probe_samples=0", NULL};
  const char *kv2[] = {"m1=8", "m2=12", "freeze_w=true", "lambda=0.05", "probe_samples=0", NULL};
  run *r1 = malloc(sizeof *r1), *r2 = malloc(sizeof *r2);
  run_make(r1, kv1, 1, &seed, P, NT, 0);
  run_make(r2, kv2, 1, &seed, P, NT, 0);
  r1->ref = (ref_net){5, K, M, 1, A_RELU, A_RELU, 0};
  r2->ref = (ref_net){5, K, 2 * M, 1, A_RELU, A_RELU, 0};
  size_t np1 = r1->m.np, np2 = r2->m.np;
  float *p1 = read_floats(r1->t.params, np1), *p2 = read_floats(r2->t.params, np2);
  /* V is the same draw at both widths; width 2m: both halves of W, b = width m's */
  assert_memory_equal(p1, p2, rw(&r1->ref) * sizeof *p1);
  for (size_t h = 0; h < 2; h++) {
    memcpy(p2 + rw(&r2->ref) + h * M * K, p1 + rw(&r1->ref), M * K * sizeof *p1);
    memcpy(p2 + rb(&r2->ref) + h * M, p1 + rb(&r1->ref), M * sizeof *p1);
  }
  hcl_buf up = hcl_test_upload(g_ctx, p2, np2);
  assert_int_equal(hcl_buf_copy(g_ctx, r2->t.params, up, np2 * sizeof(float)), HCL_OK);
  hcl_buf_free(g_ctx, &up);
  if (g_vt->train(r1->m.self, "ridge", &r1->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  if (g_vt->train(r2->m.self, "ridge", &r2->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *q1 = read_floats(r1->t.params, np1), *q2 = read_floats(r2->t.params, np2);
  double a[2 * M];
  for (size_t j = 0; j < 2 * M; j++) a[j] = q1[ra(&r1->ref) + j % M];
  assert_close("ridge a at width 2m against [a_m, a_m]", q2 + ra(&r2->ref), a, 2 * M, 1e-4);
  /* the regularisation is felt: a differs from the lambda -> 0 fit */
  double *d1 = to_double(q1, np1), a0[M];
  host_ridge(r1, d1, 0, 0, P, 1e-9, a0);
  double diff = 0;
  for (size_t j = 0; j < M; j++) diff = fmax(diff, fabs(a0[j] - q1[ra(&r1->ref) + j]));
  assert_true(diff > 1e-2 * hcl_test_max_abs(a0, M));
  /* the same predictions on fresh inputs */
  float x[NT * 5];
  for (size_t i = 0; i < NT * 5; i++) x[i] = (float)urand(-1, 1);
  hcl_buf xb = hcl_test_upload(g_ctx, x, NT * 5), o1, o2;
  assert_int_equal(hcl_buf_alloc(g_ctx, NT * sizeof(float), &o1), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, NT * sizeof(float), &o2), HCL_OK);
  assert_int_equal(g_vt->forward(r1->m.self, r1->t.params, xb, NT, o1), HCL_OK);
  assert_int_equal(g_vt->forward(r2->m.self, r2->t.params, xb, NT, o2), HCL_OK);
  float *f1 = read_floats(o1, NT), *f2 = read_floats(o2, NT);
  double want[NT];
  for (size_t i = 0; i < NT; i++) want[i] = f1[i];
  assert_close("predictions at width 2m against width m", f2, want, NT, 1e-4);
  hcl_buf_free(g_ctx, &xb), hcl_buf_free(g_ctx, &o1), hcl_buf_free(g_ctx, &o2);
  free(p1), free(p2), free(q1), free(q2), free(d1), free(f1), free(f2);
  run_free(r1), run_free(r2);
  free(r1), free(r2);
}

/* hstar_corr: mean over units of |corr(w_j . phi(x), h*(x))| on the probe
 * stream, against the host; absent when the target has no h*. */
static void probe_feature_correlation(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 51, P = 200;
  const size_t N = 150; /* several chunks of the batch 64, the last partial */
  const char *kv[] = {"m1=20", "m2=6", "probe_samples=150", "lambda=1e-4", NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, 1, &seed, P, 64, 1);
  rn->ref = (ref_net){5, 20, 6, 1, A_RELU, A_RELU, 0};
  if (g_vt->train(rn->m.self, "algorithm1", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  assert_true(has_metric(rn, "hstar_corr"));
  double got = metric(rn, "hstar_corr", 0);
  size_t np = rn->m.np, m2 = 6, k = 20;
  float *p = read_floats(rn->t.params, np);
  double *q = to_double(p, np), phi[64], sz[6] = {0}, szz[6] = {0}, szh[6] = {0}, sh = 0, shh = 0;
  float x[16];
  for (size_t i = 0; i < N; i++) {
    host_phi(rn, q, 0, HCL_STREAM_PROBE, i, x, phi);
    double h = fake_hstar(x);
    sh += h;
    shh += h * h;
    for (size_t j = 0; j < m2; j++) {
      double u = 0;
      for (size_t c = 0; c < k; c++) u += q[rw(&rn->ref) + j * k + c] * phi[c];
      sz[j] += u;
      szz[j] += u * u;
      szh[j] += u * h;
    }
  }
  double mh = sh / N, vh = shh / N - mh * mh, acc = 0;
  size_t used = 0;
  for (size_t j = 0; j < m2; j++) {
    double mz = sz[j] / N, vz = szz[j] / N - mz * mz;
    if (!(vz > 1e-6 * szz[j] / N)) continue;
    acc += fabs((szh[j] / N - mz * mh) / sqrt(vz * vh));
    used++;
  }
  assert_true(used > 0);
  if (!(fabs(got - acc / used) < 1e-3)) fail_msg("hstar_corr %.9g, host %.9g", got, acc / used);
  /* the learned feature is the linear one: strongly correlated */
  assert_true(got > 0.8);
  free(p), free(q);
  run_free(rn);
  /* no h*: no metric, no error */
  run_make(rn, kv, 1, &seed, P, 64, 0);
  if (g_vt->train(rn->m.self, "algorithm1", &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  assert_false(has_metric(rn, "hstar_corr"));
  assert_true(has_metric(rn, "ridge_loss"));
  run_free(rn);
  free(rn);
}

/* Clear errors: no finite training set, algorithm1 with W frozen, a
 * classification target (no ridge fit). */
static void algorithm_errors(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 61;
  const char *kv[] = {"m1=8", "m2=4", NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, 1, &seed, 0, 8, 0);
  assert_int_equal(g_vt->train(rn->m.self, "algorithm1", &rn->t), HCL_ERR_CONFIG);
  assert_non_null(strstr(g_ctx->errmsg, "train_size = 0"));
  assert_int_equal(g_vt->train(rn->m.self, "ridge", &rn->t), HCL_ERR_CONFIG);
  run_free(rn);
  const char *kvf[] = {"m1=8", "m2=4", "freeze_w=true", NULL};
  run_make(rn, kvf, 1, &seed, 20, 8, 0);
  assert_int_equal(g_vt->train(rn->m.self, "algorithm1", &rn->t), HCL_ERR_CONFIG);
  assert_non_null(strstr(g_ctx->errmsg, "freeze_w"));
  run_free(rn);
  run_make_task(rn, kv, 1, &seed, 20, 8, 0, 3, 1);
  float *p0 = read_floats(rn->t.params, rn->m.np);
  assert_int_equal(g_vt->train(rn->m.self, "algorithm1", &rn->t), HCL_ERR_UNSUPPORTED);
  assert_non_null(strstr(g_ctx->errmsg, "ridge regression"));
  float *p1 = read_floats(rn->t.params, rn->m.np);
  assert_memory_equal(p0, p1, rn->m.np * sizeof *p0); /* failed before touching anything */
  free(p0), free(p1);
  run_free(rn);
  free(rn);
}

/* Records the test loss of replica 0 at each evaluation. */
typedef struct losses {
  double v[64];
  size_t n;
} losses;
static hcl_status record(void *user, uint64_t step, uint64_t samples, const char *phase, double lr,
                         double wall_s, size_t n, const char *const *names, const double *values,
                         uint32_t R) {
  (void)step, (void)samples, (void)phase, (void)lr, (void)wall_s;
  losses *l = user;
  for (size_t i = 0; i < n; i++)
    if (!strcmp(names[i], "test_loss") && l->n < 64) l->v[l->n++] = values[i * R];
  return HCL_OK;
}

/* Plain sgd through the runtime's loop (W, a trained; V, b frozen) lowers
 * the test loss well below its start. */
static void sgd_end_to_end(void **state) {
  (void)state;
  NEED_DEVICE();
  const uint64_t seed = 71;
  const char *kv[] = {"m1=64", "m2=64", "probe_samples=0", NULL};
  run *rn = malloc(sizeof *rn);
  run_make(rn, kv, 1, &seed, 0, 32, 0);
  losses l = {.n = 0};
  rn->cfg.algorithm = "sgd";
  rn->cfg.steps = 600;
  rn->cfg.sched.lr = 20; /* mean-field scale: gradients carry 1/m2 */
  rn->cfg.eval_every = 200;
  rn->cfg.test_size = 500;
  rn->cfg.eval_batch = 32;
  rn->t.sink = (hcl_metric_sink){.user = &l, .write = record};
  size_t np = rn->m.np;
  float *p0 = read_floats(rn->t.params, np);
  if (hcl_trainer_run(&rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *p1 = read_floats(rn->t.params, np);
  assert_memory_equal(p0, p1, 64 * 5 * sizeof *p0); /* V frozen */
  size_t b_off = 64 * 5 + 64 * 64;
  assert_memory_equal(p0 + b_off, p1 + b_off, 64 * sizeof *p0); /* b frozen */
  assert_true(l.n >= 4);
  if (!(l.v[l.n - 1] < 0.5 * l.v[0]))
    fail_msg("test loss %g at start, %g at the end", l.v[0], l.v[l.n - 1]);
  free(p0), free(p1);
  run_free(rn);
  free(rn);
}

/* ---- through hcl_run with the single_index target --------------------- */
static int have_single_index(void) {
  return hcl_registry_find(hcl_test_registry(), "single_index", HCL_PLUGIN_TARGET) != NULL;
}

static const char *si_cfg =
    "[run]\nseed = 3\n"
    "[target]\nplugin = single_index\nd = 12\nlink = relu\n"
    "[model]\nplugin = three_layer\nm1 = 256\nm2 = 256\nlambda = 2.56e-4\nprobe_samples = 1000\n"
    "[train]\nalgorithm = algorithm1\ntrain_size = 4000\nbatch = 500\nsteps = 1\nlr = 1\n"
    "[eval]\ntest_size = 2000\n";

static hcl_status run_cfg(const char *text, const char *const *sets, size_t n_sets, char *dir,
                          char *err, size_t errlen) {
  const char *path = hcl_test_write_temp("three_layer.ini", text);
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

/* The last value of `key` in metrics.jsonl of a run. */
static double last_value(const char *dir, const char *key) {
  char p[1200];
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  char *m = hcl_test_read_file(p);
  assert_non_null(m);
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *last = NULL;
  for (const char *s = m; (s = strstr(s, pat)); s++) last = s;
  double v = NAN;
  if (last) hcl_test_json_num(last - 1, key, &v);
  free(m);
  return v;
}

/* algorithm1 learns y = relu(beta . x): test loss far below Var y =
 * 1/2 - 1/(2 pi) = 0.341, and the learned feature correlates with beta . x.
 * The random-features baseline (freeze_w, ridge) at the same size does worse. */
static void learns_single_index(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!have_single_index()) {
    fprintf(stderr, "single_index target not built: skipped\n");
    skip();
  }
  char dir[1024], err[4096];
  if (run_cfg(si_cfg, NULL, 0, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  double test = last_value(dir, "test_loss"), corr = last_value(dir, "hstar_corr");
  double ridge = last_value(dir, "ridge_loss");
  fprintf(stderr, "algorithm1: test loss %.4g (ridge fit %.4g), hstar_corr %.4g\n", test, ridge,
          corr);
  assert_true(test < 0.25 * 0.341);
  assert_true(corr > 0.8);
  const char *rf[] = {"model.freeze_w=true", "train.algorithm=ridge"};
  if (run_cfg(si_cfg, rf, 2, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  double test_rf = last_value(dir, "test_loss");
  fprintf(stderr, "random features: test loss %.4g\n", test_rf);
  assert_true(test_rf > test);
}

static int setup(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("three_layer", HCL_PLUGIN_MODEL, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reference_gradient_fd),
      cmocka_unit_test(layout_and_blocks),
      cmocka_unit_test(forward_backward_vs_reference),
      cmocka_unit_test(init_laws),
      cmocka_unit_test(replicas_bitwise),
      cmocka_unit_test(algorithm1_matches_formulas),
      cmocka_unit_test(algorithm1_auto_eta_and_replicas),
      cmocka_unit_test(algorithm1_two_outputs),
      cmocka_unit_test(algorithm1_products),
      cmocka_unit_test(ridge_algorithm),
      cmocka_unit_test(ridge_fit_loss_ill_conditioned),
      cmocka_unit_test(ridge_width_invariant),
      cmocka_unit_test(probe_feature_correlation),
      cmocka_unit_test(algorithm_errors),
      cmocka_unit_test(sgd_end_to_end),
      cmocka_unit_test(learns_single_index),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
