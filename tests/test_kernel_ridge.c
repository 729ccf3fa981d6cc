/* kernel_ridge model plugin: the kernel entries (through forward with chosen
 * alpha) against a float64 closed form (the arc-cosine formula through acos)
 * and against a Monte-Carlo estimate over wide random ReLU features of the
 * law three_layer's random-features baseline draws; the gradient against
 * the same closed form; the ridge fit against a float64 host solve of
 * (K + lambda P I) alpha = y; interpolation of the training labels as lambda
 * -> 0 (and not at a large lambda); the refusals (training-set size, task);
 * the shipped sweep through the command with lambda selected on validation. */
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

enum { D = 5 };

/* ---- float64 reference kernel -------------------------------------------- */
/* k(u, v), u = (a/sqrt(d), bs): the textbook form through acos (Cho & Saul
 * 2009), independent of the plugin's atan2 form, for b_scale bs. */
static double ref_k(const float *a, const float *b, double bs, int ntk) {
  /* long double: acos near c = 1 loses half the digits of c, so double would
   * be the less accurate side at theta ~ 0 (the diagonal) */
  typedef long double ld;
  const ld pi = 3.14159265358979323846264338327950288L;
  ld sc = 1.0L / sqrtl((ld)D), uu = (ld)bs * bs, vv = uu, uv = uu;
  for (size_t k = 0; k < D; k++) {
    ld p = a[k] * sc, q = b[k] * sc;
    uu += p * p, vv += q * q, uv += p * q;
  }
  ld nu = sqrtl(uu), nv = sqrtl(vv), c = uv / (nu * nv);
  c = c > 1 ? 1 : c < -1 ? -1 : c;
  ld th = acosl(c);
  ld k1 = nu * nv * (sinl(th) + (pi - th) * c) / (2 * pi);
  return (double)(ntk ? k1 + uv * (pi - th) / (2 * pi) : k1);
}

/* ---- the fake target: host-generated data through the trainer ----------- */
#define FAKE_TAG 0x6b72667400000000ull
typedef struct fake_target {
  hcl_ctx *ctx;
  size_t R;
  const uint64_t *seeds;
  uint64_t P;
} fake_target;

static void fake_x(const fake_target *f, size_t r, uint32_t stream, uint64_t i, float *x) {
  if (stream == HCL_STREAM_TRAIN && f->P) i %= f->P;
  for (size_t c = 0; c < D; c++)
    x[c] = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, f->seeds[r], FAKE_TAG | stream, i * D + c);
}
/* y = relu(x0 + 0.5 x1) - 0.2 + 0.3 x2 x3 */
static float fake_y(const float *x) {
  float h = x[0] + 0.5f * x[1];
  return (h > 0 ? h : 0.0f) - 0.2f + 0.3f * x[2] * x[3];
}

static hcl_status fake_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                              hcl_buf y) {
  fake_target *f = self;
  float *hx = malloc(f->R * n * D * sizeof *hx), *hy = malloc(f->R * n * sizeof *hy);
  for (size_t r = 0; r < f->R; r++)
    for (size_t i = 0; i < n; i++) {
      float *xi = hx + (r * n + i) * D;
      fake_x(f, r, stream, first + i, xi);
      hy[r * n + i] = fake_y(xi);
    }
  hcl_status rc = hcl_buf_write(f->ctx, x, hx, f->R * n * D * sizeof *hx);
  if (rc == HCL_OK) rc = hcl_buf_write(f->ctx, y, hy, f->R * n * sizeof *hy);
  free(hx);
  free(hy);
  return rc;
}

static const hcl_target_vt fake_vt = {.struct_size = sizeof(hcl_target_vt), .sample = fake_sample};

static hcl_target_info target_info(hcl_task task, size_t classes) {
  hcl_target_info t = {.struct_size = sizeof t,
                       .x = {.rank = 1, .dims = {D}},
                       .y_dim = 1,
                       .task = task,
                       .n_classes = classes};
  return t;
}

/* A kernel_ridge model on the fake target with P training points, its
 * trainer initialised and prepare() run (the training set loaded). */
typedef struct run {
  hcl_train_cfg cfg;
  hcl_trainer t;
  fake_target f;
  void *self;
  size_t R, P, np, batch;
} run;

static hcl_status model_create(const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                               size_t batch, const hcl_target_info *ti, void **self) {
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  char a[256];
  for (size_t i = 0; kv && kv[i]; i++) {
    snprintf(a, sizeof a, "model.%s", kv[i]);
    assert_int_equal(hcl_config_set(g_ctx, &cfg, a), HCL_OK);
  }
  static const char *const extra[] = {"plugin", NULL};
  hcl_params p;
  memset(&p, 0, sizeof p);
  hcl_status rc = hcl_params_resolve(g_ctx, &cfg, "model", g_desc->params, extra, &p);
  if (rc == HCL_OK) {
    hcl_setup s = {.struct_size = sizeof s,
                   .replicas = (uint32_t)R,
                   .seeds = seeds,
                   .params = &p,
                   .train_size = P,
                   .max_batch = batch};
    rc = g_vt->create(g_ctx, &s, ti, self);
  }
  hcl_params_free(&p);
  hcl_config_free(&cfg);
  return rc;
}

static void run_make(run *rn, const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                     size_t batch) {
  memset(rn, 0, sizeof *rn);
  rn->f = (fake_target){.ctx = g_ctx, .R = R, .seeds = seeds, .P = P};
  rn->R = R, rn->P = (size_t)P, rn->batch = batch;
  hcl_target_info ti = target_info(HCL_TASK_REGRESSION, 0);
  if (model_create(kv, R, seeds, P, batch, &ti, &rn->self) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  rn->np = g_vt->n_params(rn->self);
  assert_int_equal(rn->np, 2 * P);
  rn->cfg = (hcl_train_cfg){.replicas = (uint32_t)R,
                            .seeds = seeds,
                            .steps = 1,
                            .batch = batch,
                            .train_size = P,
                            .sched = {.kind = HCL_SCHED_CONSTANT, .lr = 0.1},
                            .loss = HCL_LOSS_MSE,
                            .optim = {.kind = HCL_OPT_SGD},
                            .eval_every = 0,
                            .test_size = 0,
                            .eval_batch = batch,
                            .probes = 1,
                            .algorithm = "ridge"};
  rn->t = (hcl_trainer){.ctx = g_ctx,
                        .cfg = &rn->cfg,
                        .tvt = &fake_vt,
                        .target = &rn->f,
                        .tinfo = ti,
                        .mvt = g_vt,
                        .model = rn->self};
  if (hcl_trainer_init(&rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  if (g_vt->prepare(rn->self, &rn->t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
}

static void run_free(run *rn) {
  hcl_trainer_release(&rn->t);
  g_vt->destroy(rn->self);
}

/* The value of metric `name` of the last evaluation for replica r (NAN: absent). */
static double metric(const run *rn, const char *name, size_t r) {
  for (size_t i = 0; i < rn->t.m_n; i++)
    if (!strcmp(rn->t.m_names[i], name)) return rn->t.m_values[i * rn->cfg.replicas + r];
  return NAN;
}

/* out [R, n] of forward on host inputs x [R, n, D] with the trainer's
 * params; *keep (if not NULL) gets the input buffer, which a backward reads. */
static float *forward_keep(run *rn, const float *x, size_t n, hcl_buf *keep) {
  hcl_buf xb = hcl_test_upload(g_ctx, x, rn->R * n * D), ob;
  assert_int_equal(hcl_buf_alloc(g_ctx, rn->R * n * sizeof(float), &ob), HCL_OK);
  if (g_vt->forward(rn->self, rn->t.params, xb, n, ob) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
  float *out = hcl_test_download(g_ctx, ob, rn->R * n);
  if (keep)
    *keep = xb;
  else
    hcl_buf_free(g_ctx, &xb);
  hcl_buf_free(g_ctx, &ob);
  return out;
}
static float *forward(run *rn, const float *x, size_t n) { return forward_keep(rn, x, n, NULL); }

/* Training input i of replica r. */
static void train_x(const run *rn, size_t r, size_t i, float *x) {
  fake_x(&rn->f, r, HCL_STREAM_TRAIN, i, x);
}

/* Inputs [R, n, D]: test-stream points, then the first n_train training points. */
static float *inputs(const run *rn, size_t n, size_t n_train) {
  float *x = malloc(rn->R * n * D * sizeof *x);
  for (size_t r = 0; r < rn->R; r++)
    for (size_t i = 0; i < n; i++) {
      float *xi = x + (r * n + i) * D;
      if (i < n - n_train)
        fake_x(&rn->f, r, HCL_STREAM_TEST, i, xi);
      else
        train_x(rn, r, i - (n - n_train), xi);
    }
  return x;
}

/* ---- tests -------------------------------------------------------------- */

/* forward = sum_j k(x, X_j) (alpha_j + alpha_lo_j) and backward = sum_i
 * dout_i k(x_i, X_j) against the acos closed form in float64, for both
 * kernels and three bias scales, in float64 and float32 device arithmetic,
 * on test points and on training points themselves (theta = 0), R = 2. */
static void closed_form(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2, P = 23, N = 12, NT = 5 };
  const uint64_t seeds[R] = {11, 12};
  const char *cases[][4] = {{"kernel=ntk", "b_scale=1", NULL, NULL},
                            {"kernel=nngp", "b_scale=1", NULL, NULL},
                            {"kernel=ntk", "b_scale=0.5", NULL, NULL},
                            {"kernel=nngp", "b_scale=0", NULL, NULL},
                            {"kernel=ntk", "b_scale=1", "precision=float32", NULL},
                            {"kernel=nngp", "b_scale=0.5", "precision=float32", NULL}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    int ntk = !strcmp(cases[c][0], "kernel=ntk");
    /* float64 kernels: the float output's rounding; float32: their own */
    double tol = cases[c][2] ? 1e-4 : 1e-5;
    double bs = atof(cases[c][1] + strlen("b_scale="));
    run rn;
    run_make(&rn, cases[c], R, seeds, P, 16);
    uint64_t st = 99 + c;
    float *al = malloc(R * 2 * P * sizeof *al);
    for (size_t i = 0; i < R * 2 * P; i++)
      al[i] = (float)hcl_test_xorshift(&st, -1, 1) * (i % (2 * P) < P ? 1.0f : 1e-3f);
    hcl_buf up = hcl_test_upload(g_ctx, al, R * 2 * P);
    assert_int_equal(hcl_buf_copy(g_ctx, rn.t.params, up, R * 2 * P * sizeof(float)), HCL_OK);
    hcl_buf_free(g_ctx, &up);
    hcl_buf xb;
    float *x = inputs(&rn, N, NT), *out = forward_keep(&rn, x, N, &xb);
    double want[R * N];
    float dout[R * N];
    double gwant[R * 2 * P];
    memset(gwant, 0, sizeof gwant);
    for (size_t r = 0; r < R; r++)
      for (size_t i = 0; i < N; i++) {
        dout[r * N + i] = (float)hcl_test_xorshift(&st, -1, 1);
        double s = 0;
        for (size_t j = 0; j < P; j++) {
          float xj[D];
          train_x(&rn, r, j, xj);
          double k = ref_k(x + (r * N + i) * D, xj, bs, ntk);
          s += k * ((double)al[r * 2 * P + j] + (double)al[r * 2 * P + P + j]);
          gwant[r * 2 * P + j] += dout[r * N + i] * k;
          gwant[r * 2 * P + P + j] += dout[r * N + i] * k;
        }
        want[r * N + i] = s;
      }
    hcl_test_assert_close(out, want, R * N, tol, cases[c][0]);
    /* the gradient of the last forward */
    hcl_buf db = hcl_test_upload(g_ctx, dout, R * N);
    if (g_vt->backward(rn.self, rn.t.params, db, N, rn.t.grad) != HCL_OK)
      fail_msg("%s", g_ctx->errmsg);
    float *g = hcl_test_download(g_ctx, rn.t.grad, R * 2 * P);
    hcl_test_assert_close(g, gwant, R * 2 * P, tol, "gradient");
    hcl_buf_free(g_ctx, &db);
    hcl_buf_free(g_ctx, &xb);
    free(g), free(x), free(out), free(al);
    run_free(&rn);
  }
}

/* Standard normal from the test's xorshift (Box-Muller). */
static double gauss(uint64_t *st) {
  double u = hcl_test_xorshift(st, 0x1p-53, 1), v = hcl_test_xorshift(st, 0, 1);
  return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* The kernels are the infinite-width limits of wide two-layer ReLU nets on
 * u = (x/sqrt(d), b_scale): with w ~ N(0, I_{d+1}) (three_layer's random
 * features with two_layer = true: w_j ~ N(0, I_d) on x/sqrt(d), b_j ~ N(0,
 * b_scale^2)) and a ~ N(0, 1), nngp = E relu(w.u) relu(w.v) and ntk = nngp +
 * E a^2 relu'(w.u) relu'(w.v) u.v. A Monte-Carlo average over 400 000 units
 * agrees with every entry (read through forward with alpha = e_j) within 5
 * standard errors: the kernels' scale, hence lambda's, is the random-
 * features ridge's. */
static void monte_carlo(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { P = 4, N = 6, M = 400000 };
  const uint64_t seed = 5;
  for (int ntk = 0; ntk < 2; ntk++) {
    const char *kv[] = {ntk ? "kernel=ntk" : "kernel=nngp", "b_scale=1", NULL};
    run rn;
    run_make(&rn, kv, 1, &seed, P, 8);
    float *x = inputs(&rn, N, 2);
    double u[N][D + 1], v[P][D + 1];
    for (size_t i = 0; i < N; i++) {
      for (size_t c = 0; c < D; c++) u[i][c] = x[i * D + c] / sqrt((double)D);
      u[i][D] = 1;
    }
    for (size_t j = 0; j < P; j++) {
      float xj[D];
      train_x(&rn, 0, j, xj);
      for (size_t c = 0; c < D; c++) v[j][c] = xj[c] / sqrt((double)D);
      v[j][D] = 1;
    }
    double sum[N][P], sq[N][P];
    memset(sum, 0, sizeof sum);
    memset(sq, 0, sizeof sq);
    uint64_t st = 0x9e3779b97f4a7c15ull + (uint64_t)ntk;
    for (size_t m = 0; m < M; m++) {
      double w[D + 1], a = gauss(&st), zu[N], zv[P];
      for (size_t c = 0; c <= D; c++) w[c] = gauss(&st);
      for (size_t i = 0; i < N; i++) {
        zu[i] = 0;
        for (size_t c = 0; c <= D; c++) zu[i] += w[c] * u[i][c];
      }
      for (size_t j = 0; j < P; j++) {
        zv[j] = 0;
        for (size_t c = 0; c <= D; c++) zv[j] += w[c] * v[j][c];
      }
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < P; j++) {
          double s = (zu[i] > 0 ? zu[i] : 0) * (zv[j] > 0 ? zv[j] : 0);
          if (ntk && zu[i] > 0 && zv[j] > 0) {
            double uv = 0;
            for (size_t c = 0; c <= D; c++) uv += u[i][c] * v[j][c];
            s += a * a * uv;
          }
          sum[i][j] += s, sq[i][j] += s * s;
        }
    }
    for (size_t j = 0; j < P; j++) {
      float al[2 * P];
      memset(al, 0, sizeof al);
      al[j] = 1;
      hcl_buf up = hcl_test_upload(g_ctx, al, 2 * P);
      assert_int_equal(hcl_buf_copy(g_ctx, rn.t.params, up, sizeof al), HCL_OK);
      hcl_buf_free(g_ctx, &up);
      float *out = forward(&rn, x, N);
      for (size_t i = 0; i < N; i++) {
        double mean = sum[i][j] / M, se = sqrt((sq[i][j] / M - mean * mean) / M);
        if (!(fabs(out[i] - mean) <= 5 * se))
          fail_msg("%s: k(x_%zu, X_%zu) = %.6f, Monte-Carlo %.6f +- %.6f", kv[0], i, j,
                   (double)out[i], mean, se);
      }
      free(out);
    }
    free(x);
    run_free(&rn);
  }
}

/* Cholesky solve of A x = b in float64 (A [n, n] overwritten); 0 if not PD. */
static int host_solve(double *A, double *b, size_t n) {
  for (size_t j = 0; j < n; j++) {
    double s = A[j * n + j];
    for (size_t q = 0; q < j; q++) s -= A[j * n + q] * A[j * n + q];
    if (!(s > 0)) return 0;
    A[j * n + j] = sqrt(s);
    for (size_t i = j + 1; i < n; i++) {
      double t = A[i * n + j];
      for (size_t q = 0; q < j; q++) t -= A[i * n + q] * A[j * n + q];
      A[i * n + j] = t / A[j * n + j];
    }
  }
  for (size_t i = 0; i < n; i++) {
    double s = b[i];
    for (size_t q = 0; q < i; q++) s -= A[i * n + q] * b[q];
    b[i] = s / A[i * n + i];
  }
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t q = i + 1; q < n; q++) s -= A[q * n + i] * b[q];
    b[i] = s / A[i * n + i];
  }
  return 1;
}

/* alpha [P] of replica r: (K + lambda P I) alpha = y on the host. */
static void host_fit(const run *rn, size_t r, double lambda, int ntk, double *alpha) {
  size_t P = rn->P;
  double *A = malloc(P * P * sizeof *A);
  float xi[D], xj[D];
  for (size_t i = 0; i < P; i++) {
    train_x(rn, r, i, xi);
    alpha[i] = fake_y(xi);
    for (size_t j = 0; j < P; j++) {
      train_x(rn, r, j, xj);
      A[i * P + j] = ref_k(xi, xj, 1, ntk) + (i == j ? lambda * (double)P : 0);
    }
  }
  assert_true(host_solve(A, alpha, P));
  free(A);
}

/* algorithm ridge: alpha + alpha_lo equals the float64 host solution to
 * 1e-9 (the float alpha alone is off by float rounding, 1e-7), per
 * replica (1e-4 with float32 device kernels); the reported ridge_loss is the training MSE of that
 * solution; the training set spans several batches (P = 41, batch 16). */
static void fit_matches_host(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2, P = 41 };
  const uint64_t seeds[R] = {31, 32};
  for (int c = 0; c < 3; c++) {
    int ntk = c != 1, f32 = c == 2;
    const char *kv[] = {ntk ? "kernel=ntk" : "kernel=nngp", "lambda=2e-3",
                        f32 ? "precision=float32" : NULL, NULL};
    /* float32 Gram entries (1e-7 relative) through the condition number */
    double tol = f32 ? 1e-4 : 1e-9;
    run rn;
    run_make(&rn, kv, R, seeds, P, 16);
    if (g_vt->train(rn.self, "ridge", &rn.t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
    float *p = hcl_test_download(g_ctx, rn.t.params, R * 2 * P);
    for (size_t r = 0; r < R; r++) {
      double want[P], err = 0, scale = 0, loss = 0;
      host_fit(&rn, r, 2e-3, ntk, want);
      for (size_t j = 0; j < P; j++) {
        double got = (double)p[r * 2 * P + j] + (double)p[r * 2 * P + P + j];
        err = fmax(err, fabs(got - want[j]));
        scale = fmax(scale, fabs(want[j]));
        /* the training residual of ridge is y - K alpha = lambda P alpha */
        loss += (2e-3 * P * want[j]) * (2e-3 * P * want[j]) / P;
      }
      if (!(err <= tol * scale))
        fail_msg("%s replica %zu: |alpha - host| = %g (scale %g)", kv[0], r, err, scale);
      double got = metric(&rn, "ridge_loss", r);
      if (!(fabs(got - loss) <= (f32 ? 1e-2 : 1e-4) * loss + 1e-7))
        fail_msg("%s replica %zu: ridge_loss %.8g, host %.8g", kv[0], r, got, loss);
    }
    free(p);
    run_free(&rn);
  }
}

/* As lambda -> 0 the fit interpolates: the predictions at the training
 * inputs are the labels (lambda = 0 and 1e-9); at lambda = 1 they are not. */
static void interpolation(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { P = 30 };
  const uint64_t seed = 7;
  const char *cases[][3] = {{"kernel=ntk", "lambda=0", NULL},
                            {"kernel=nngp", "lambda=1e-9", NULL},
                            {"kernel=ntk", "lambda=1", NULL}};
  for (size_t c = 0; c < 3; c++) {
    run rn;
    run_make(&rn, cases[c], 1, &seed, P, 32);
    if (g_vt->train(rn.self, "ridge", &rn.t) != HCL_OK) fail_msg("%s", g_ctx->errmsg);
    float *x = inputs(&rn, P, P), *out = forward(&rn, x, P);
    double worst = 0;
    for (size_t i = 0; i < P; i++) worst = fmax(worst, fabs(out[i] - fake_y(x + i * D)));
    fprintf(stderr, "%s %s: max |f(x_i) - y_i| = %.3g\n", cases[c][0], cases[c][1], worst);
    if (c < 2 && !(worst < 1e-4)) fail_msg("%s: no interpolation (%g)", cases[c][1], worst);
    if (c == 2 && !(worst > 1e-2)) fail_msg("lambda = 1 interpolates (%g)", worst);
    free(x), free(out);
    run_free(&rn);
  }
}

/* check() (no device) and create() refuse what the fit cannot do, in one
 * line naming the key: more than 8192 or no training samples, unequal
 * per-replica sizes, a classification target. */
static void refusals(void **state) {
  (void)state;
  const char *kv[] = {NULL};
  hcl_params *p = hcl_test_params(g_desc, "model", kv);
  hcl_target_info reg = target_info(HCL_TASK_REGRESSION, 0), cls = target_info(HCL_TASK_CLASSES, 3);
  struct {
    uint64_t P, Pmin;
    const hcl_target_info *t;
    const char *want;
  } cases[] = {{8193, 8193, &reg, "at most 8192 samples"},
               {0, 0, &reg, "needs a finite training set"},
               {512, 256, &reg, "same training-set size"},
               {512, 512, &cls, "one real output"},
               {8192, 8192, &reg, NULL}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    hcl_check_info run = {.struct_size = sizeof run,
                          .replicas = 1,
                          .train_size = cases[c].P,
                          .train_size_min = cases[c].Pmin,
                          .algorithm = "ridge"};
    char err[512] = "";
    hcl_status rc = g_vt->check(p, &run, cases[c].t, err, sizeof err);
    if (!cases[c].want) {
      assert_int_equal(rc, HCL_OK);
      continue;
    }
    assert_int_not_equal(rc, HCL_OK);
    if (!strstr(err, cases[c].want)) fail_msg("case %zu: '%s'", c, err);
    assert_null(strchr(err, '\n'));
  }
  hcl_test_params_free(p);
  if (!g_ctx) return;
  const uint64_t seed = 1;
  void *self = NULL;
  const char *kv2[] = {NULL};
  assert_int_not_equal(model_create(kv2, 1, &seed, 9000, 16, &reg, &self), HCL_OK);
  assert_null(self);
  assert_non_null(strstr(g_ctx->errmsg, "8192"));
}

/* The shipped kernel-limit sweep through the command, scaled down: lambda
 * is selected on the validation stream for each kernel (sweep.jsonl records
 * it), every selected fit beats the constant predictor (test MSE < Var y =
 * 0.34), and pstar.json fits an exponent per kernel. */
static void sweep_selects_lambda(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!hcl_registry_find(hcl_test_registry(), "single_index", HCL_PLUGIN_TARGET)) skip();
  static char out[1 << 16];
  const char *dir = hcl_test_tmpdir();
  int rc = hcl_test_shf(out, sizeof out,
                        "%s sweep %s/three_layer_single_index_kr.ini --device cpu --out %s "
                        "--grid 'train.train_size=32,128' --grid target.d=4,6 --grid run.seed=0..1 "
                        "--select model.lambda=1e-4,1 --set eval.val_size=300 --set "
                        "eval.test_size=300 --set sweep.threshold=0.15",
                        HCL_TEST_HIERCL, HCL_TEST_CONFIGS, dir);
  if (rc != 0) HCL_FAIL_OUT(out, "sweep exit %d (output above)", rc);
  char *rec = hcl_test_sweep_file(dir, "sweep.jsonl");
  size_t n = 0;
  for (const char *l = rec; (l = strstr(l, "\"selected\":{\"model.lambda\":")); l++, n++) {
    double test = NAN;
    assert_true(hcl_test_json_num(l, "test_loss", &test));
    if (!(test < 0.34)) fail_msg("selected fit with test MSE %g: %.300s", test, l);
  }
  assert_int_equal(n, 2 * 2 * 2 * 2); /* sizes x d x kernels x seeds */
  free(rec);
  char *ps = hcl_test_sweep_file(dir, "pstar.json");
  assert_non_null(strstr(ps, "model.kernel=ntk"));
  assert_non_null(strstr(ps, "model.kernel=nngp"));
  assert_non_null(strstr(ps, "\"exponents\""));
  free(ps);
}

static int setup(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("kernel_ridge", HCL_PLUGIN_MODEL, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(closed_form),      cmocka_unit_test(monte_carlo),
      cmocka_unit_test(fit_matches_host), cmocka_unit_test(interpolation),
      cmocka_unit_test(refusals),         cmocka_unit_test(sweep_selects_lambda),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
