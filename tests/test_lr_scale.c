/* A model's lr_scale (hcl_model_vt.lr_scale) in the runtime's optimiser:
 * SGD with momentum and weight decay, and Adam, step as they would on the
 * gradient multiplied by the factor (how deep_cnn's lr_factor acted before it
 * became a learning-rate factor), checked against a float64 host simulation
 * of that. The model is f(x) = w x + b computed on the host (two parameters,
 * one replica), trained full batch on four fixed samples with the MSE loss. */
#include "support/hcl_test.h"
#include "trainer.h"

#include <math.h>
#include <string.h>

enum { P = 4 };
static const float xs[P] = {0.5f, -1.0f, 2.0f, 0.25f}, ys[P] = {1.0f, -0.5f, 0.75f, 2.0f};
static hcl_ctx *g_ctx;
static double g_factor; /* what lin_lr_scale returns */

/* ---- the target: the P samples, in order --------------------------------- */
static hcl_status tg_create(hcl_ctx *ctx, const hcl_setup *s, void **self) {
  (void)ctx, (void)s;
  *self = (void *)xs;
  return HCL_OK;
}
static void tg_destroy(void *self) { (void)self; }
static hcl_status tg_info(void *self, hcl_target_info *out) {
  (void)self;
  *out = (hcl_target_info){.struct_size = sizeof *out, .y_dim = 1, .task = HCL_TASK_REGRESSION};
  out->x.rank = 1;
  out->x.dims[0] = 1;
  return HCL_OK;
}
static hcl_status tg_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                            hcl_buf y) {
  (void)self, (void)stream;
  float hx[64], hy[64];
  for (size_t i = 0; i < n && i < 64; i++) hx[i] = xs[(first + i) % P], hy[i] = ys[(first + i) % P];
  hcl_status rc = hcl_buf_write(g_ctx, x, hx, n * sizeof(float));
  return rc == HCL_OK ? hcl_buf_write(g_ctx, y, hy, n * sizeof(float)) : rc;
}
static const hcl_target_vt target = {.struct_size = sizeof(hcl_target_vt),
                                     .create = tg_create,
                                     .destroy = tg_destroy,
                                     .info = tg_info,
                                     .sample = tg_sample};

/* ---- the model: f = w x + b on the host, the true gradient ---------------- */
typedef struct lin {
  float x[64];
  size_t n;
  hcl_block blocks[2];
} lin;
static lin g_lin;

static hcl_status lin_create(hcl_ctx *ctx, const hcl_setup *s, const hcl_target_info *t,
                             void **self) {
  (void)ctx, (void)s, (void)t;
  *self = &g_lin;
  return HCL_OK;
}
static void lin_destroy(void *self) { (void)self; }
static size_t lin_n_params(void *self) { return (void)self, 2; }
static size_t lin_out_dim(void *self) { return (void)self, 1; }
static const hcl_block *lin_blocks(void *self, size_t *n) {
  lin *m = self;
  m->blocks[0] = (hcl_block){.name = "w", .offset = 0, .rows = 1, .cols = 1, .trainable = 1};
  m->blocks[1] = (hcl_block){.name = "b", .offset = 1, .rows = 1, .cols = 1, .trainable = 1};
  *n = 2;
  return m->blocks;
}
static hcl_status lin_init(void *self, hcl_buf params) {
  (void)self;
  const float p[2] = {0.3f, -0.2f};
  return hcl_buf_write(g_ctx, params, p, sizeof p);
}
static hcl_status lin_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  lin *m = self;
  float p[2], o[64];
  m->n = n;
  HCL_TRY(hcl_buf_read(g_ctx, params, p, sizeof p));
  HCL_TRY(hcl_buf_read(g_ctx, x, m->x, n * sizeof(float)));
  for (size_t i = 0; i < n; i++) o[i] = p[0] * m->x[i] + p[1];
  return hcl_buf_write(g_ctx, out, o, n * sizeof(float));
}
static hcl_status lin_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  lin *m = self;
  (void)params;
  float d[64], g[2] = {0, 0};
  HCL_TRY(hcl_buf_read(g_ctx, dout, d, n * sizeof(float)));
  for (size_t i = 0; i < n; i++) g[0] += d[i] * m->x[i], g[1] += d[i];
  return hcl_buf_write(g_ctx, grad, g, sizeof g);
}
static double lin_lr_scale(void *self) { return (void)self, g_factor; }
static const hcl_model_vt model = {.struct_size = sizeof(hcl_model_vt),
                                   .create = lin_create,
                                   .destroy = lin_destroy,
                                   .n_params = lin_n_params,
                                   .out_dim = lin_out_dim,
                                   .blocks = lin_blocks,
                                   .init = lin_init,
                                   .forward = lin_forward,
                                   .backward = lin_backward,
                                   .lr_scale = lin_lr_scale};

/* `steps` full-batch steps through the runtime's trainer; the parameters. */
static void train(hcl_optim optim, double lr, double l2, uint64_t steps, float out[2]) {
  const uint64_t seed = 1;
  hcl_train_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.replicas = 1;
  cfg.seeds = &seed;
  cfg.steps = steps;
  cfg.batch = P;
  cfg.train_size = P;
  cfg.eval_batch = P;
  cfg.sched.kind = HCL_SCHED_CONSTANT;
  cfg.sched.lr = lr;
  cfg.loss = HCL_LOSS_MSE;
  cfg.optim = optim;
  hcl_trainer t;
  memset(&t, 0, sizeof t);
  t.ctx = g_ctx;
  t.cfg = &cfg;
  t.tvt = &target;
  t.target = (void *)xs;
  tg_info(NULL, &t.tinfo);
  t.mvt = &model;
  t.model = &g_lin;
  assert_int_equal(hcl_trainer_init(&t), HCL_OK);
  hcl_phase ph = {.struct_size = sizeof ph, .label = "sgd", .steps = steps, .l2 = l2};
  if (hcl_trainer_phase(&t, &ph, NULL) != HCL_OK) fail_msg("%s", hcl_errmsg(g_ctx));
  assert_int_equal(hcl_buf_read(g_ctx, t.params, out, 2 * sizeof(float)), HCL_OK);
  hcl_trainer_release(&t);
}

/* The same steps in float64 on the gradient times f (weight decay and l2
 * added after the factor), the semantics the trainer must give. */
static void simulate(hcl_optim o, double lr, double l2, uint64_t steps, double f, double p[2]) {
  double m[2] = {0, 0}, v[2] = {0, 0};
  p[0] = 0.3f, p[1] = -0.2f;
  for (uint64_t t = 1; t <= steps; t++) {
    double g[2] = {0, 0};
    for (size_t i = 0; i < P; i++) {
      double d = 2.0 * (p[0] * xs[i] + p[1] - ys[i]) / P;
      g[0] += d * xs[i], g[1] += d;
    }
    for (int k = 0; k < 2; k++) {
      double gk = f * g[k] + (o.weight_decay + l2) * p[k];
      if (o.kind == HCL_OPT_SGD) {
        m[k] = t == 1 ? gk : o.momentum * m[k] + gk;
        p[k] -= lr * m[k];
      } else {
        m[k] = o.beta1 * m[k] + (1 - o.beta1) * gk;
        v[k] = o.beta2 * v[k] + (1 - o.beta2) * gk * gk;
        double mh = m[k] / (1 - pow(o.beta1, (double)t));
        double vh = v[k] / (1 - pow(o.beta2, (double)t));
        p[k] -= lr * mh / (sqrt(vh) + o.eps);
      }
    }
  }
}

static void check(hcl_optim o, double lr, double l2, double f, double tol) {
  float got[2];
  double want[2], plain[2];
  g_factor = f;
  train(o, lr, l2, 5, got);
  simulate(o, lr, l2, 5, f > 0 ? f : 1.0, want);
  simulate(o, lr, l2, 5, 1.0, plain);
  for (int k = 0; k < 2; k++) {
    if (fabs(got[k] - want[k]) > tol * (1 + fabs(want[k])))
      fail_msg("%s f = %g: parameter %d is %.9g, expected %.9g", o.kind ? "adam" : "sgd", f, k,
               got[k], want[k]);
    /* the factor changes the trajectory (the check could fail) */
    if (f > 0 && f != 1.0) assert_true(fabs(want[k] - plain[k]) > 100 * tol);
  }
}

static void sgd_momentum_weight_decay(void **state) {
  (void)state;
  if (!g_ctx) skip();
  hcl_optim o = {.kind = HCL_OPT_SGD, .momentum = 0.9f, .weight_decay = 0.5f};
  check(o, 0.01, 0.0, 3.0, 1e-5);
  check(o, 0.01, 0.25, 3.0, 1e-5); /* a phase's l2 too */
  o.momentum = 0.0f;
  check(o, 0.01, 0.0, 3.0, 1e-5);
  check(o, 0.01, 0.0, 0.0, 1e-5);  /* no factor: 1 */
  check(o, 0.01, 0.0, -2.0, 1e-5); /* not positive: 1 */
}

static void adam_takes_eps_over_the_factor(void **state) {
  (void)state;
  if (!g_ctx) skip();
  /* eps large enough to matter, so that eps / f is seen */
  hcl_optim o = {
      .kind = HCL_OPT_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 0.05f, .weight_decay = 0.5f};
  g_factor = 8.0;
  float got[2];
  double want[2];
  train(o, 0.01, 0.0, 5, got);
  simulate(o, 0.01, 0.0, 5, 8.0, want);
  for (int k = 0; k < 2; k++) assert_true(fabs(got[k] - want[k]) < 1e-5 * (1 + fabs(want[k])));
  double with_eps[2];
  simulate(o, 0.01 * 8.0, 0.0, 5, 1.0, with_eps); /* an lr factor would give this instead */
  assert_true(fabs(with_eps[0] - want[0]) > 1e-3);
}

int main(void) {
  g_ctx = hcl_test_ctx();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sgd_momentum_weight_decay),
      cmocka_unit_test(adam_takes_eps_over_the_factor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
