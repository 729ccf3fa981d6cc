/* regular_net model plugin (SPEC 2.1): layout, masks, init, forward and
 * backward against an independent float64 host implementation (itself
 * checked by central finite differences) for every activation, sparse
 * connectivity, readout last / all, R = 3 replicas; replicas bit for bit;
 * features; the +-v readout identity; one layerwise_scd neuron step replayed
 * on the host; small learning runs through hcl_run. */
#include "support/hcl_test.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- float64 reference network (one replica) ----------------------------- */
enum { ACT_RELU = 0, ACT_LEAKY, ACT_QUAD, ACT_TANH, ACT_IDENT, N_ACTS };
static const char *const act_names[] = {"relu", "leaky_relu", "quadratic", "tanh", "identity"};

#define NONE ((size_t)-1)

typedef struct ref_net {
  size_t d, W, L, D;
  int act, all, skip, bias, rbias;
  /* layout, filled by ref_layout: per layer weight / skip / bias offsets */
  size_t w_off[8], s_off[8], b_off[8], in[8], r_off, rb_off, U, np;
} ref_net;

/* The documented order: per layer weight [W, in], skip [W, d] (l >= 2),
 * bias [W]; then readout weight [D, U] and bias [D]. */
static void ref_layout(ref_net *r) {
  size_t off = 0;
  for (size_t l = 0; l < r->L; l++) {
    r->in[l] = l == 0 ? r->d : r->W;
    r->w_off[l] = off;
    off += r->W * r->in[l];
    r->s_off[l] = NONE;
    if (l > 0 && r->skip) {
      r->s_off[l] = off;
      off += r->W * r->d;
    }
    r->b_off[l] = NONE;
    if (r->bias) {
      r->b_off[l] = off;
      off += r->W;
    }
  }
  r->U = r->all ? r->L * r->W : r->W;
  r->r_off = off;
  off += r->D * r->U;
  r->rb_off = NONE;
  if (r->rbias) {
    r->rb_off = off;
    off += r->D;
  }
  r->np = off;
}

static double ref_act(int a, double z) {
  switch (a) {
  case ACT_RELU: return z > 0 ? z : 0;
  case ACT_LEAKY: return z > 0 ? z : 0.1 * z;
  case ACT_QUAD: return z * z;
  case ACT_TANH: return tanh(z);
  default: return z;
  }
}
static double ref_dact(int a, double z) {
  switch (a) {
  case ACT_RELU: return z > 0 ? 1 : 0;
  case ACT_LEAKY: return z > 0 ? 1 : 0.1;
  case ACT_QUAD: return 2 * z;
  case ACT_TANH: return 1 - tanh(z) * tanh(z);
  default: return 1;
  }
}

/* pe = p . mask (mask NULL: p). */
static double *ref_masked(const ref_net *r, const double *p, const double *mask) {
  double *pe = malloc(r->np * sizeof *pe);
  for (size_t i = 0; i < r->np; i++) pe[i] = mask ? p[i] * mask[i] : p[i];
  return pe;
}

/* out [n, D]; z, h [L * n * W] kept when not NULL. */
static void ref_forward(const ref_net *r, const double *p, const double *mask, const double *x,
                        size_t n, double *out, double *zs, double *hs) {
  size_t W = r->W, L = r->L, d = r->d, U = r->U;
  double *pe = ref_masked(r, p, mask);
  double *z = malloc(L * n * W * sizeof *z), *h = malloc(L * n * W * sizeof *h);
  for (size_t l = 0; l < L; l++)
    for (size_t i = 0; i < n; i++)
      for (size_t v = 0; v < W; v++) {
        const double *a = l == 0 ? x + i * d : h + ((l - 1) * n + i) * W;
        double s = r->b_off[l] != NONE ? pe[r->b_off[l] + v] : 0;
        for (size_t k = 0; k < r->in[l]; k++) s += pe[r->w_off[l] + v * r->in[l] + k] * a[k];
        if (r->s_off[l] != NONE)
          for (size_t k = 0; k < d; k++) s += pe[r->s_off[l] + v * d + k] * x[i * d + k];
        z[(l * n + i) * W + v] = s;
        h[(l * n + i) * W + v] = ref_act(r->act, s);
      }
  size_t first = r->all ? 0 : L - 1;
  for (size_t i = 0; i < n; i++)
    for (size_t c = 0; c < r->D; c++) {
      double s = r->rb_off != NONE ? pe[r->rb_off + c] : 0;
      for (size_t l = first; l < L; l++)
        for (size_t v = 0; v < W; v++)
          s += pe[r->r_off + c * U + (l - first) * W + v] * h[(l * n + i) * W + v];
      out[i * r->D + c] = s;
    }
  if (zs) memcpy(zs, z, L * n * W * sizeof *z);
  if (hs) memcpy(hs, h, L * n * W * sizeof *h);
  free(z);
  free(h);
  free(pe);
}

/* grad = d(sum dout . f(p . mask))/dp = mask . (gradient at p . mask). */
static void ref_backward(const ref_net *r, const double *p, const double *mask, const double *x,
                         size_t n, const double *dout, double *grad) {
  size_t W = r->W, L = r->L, d = r->d, U = r->U, D = r->D;
  double *pe = ref_masked(r, p, mask);
  double *z = malloc(L * n * W * sizeof *z), *h = malloc(L * n * W * sizeof *h);
  double *out = malloc(n * D * sizeof *out), *gh = calloc(L * n * W, sizeof *gh);
  ref_forward(r, p, mask, x, n, out, z, h);
  memset(grad, 0, r->np * sizeof *grad);
  size_t first = r->all ? 0 : L - 1;
  for (size_t i = 0; i < n; i++)
    for (size_t c = 0; c < D; c++) {
      double g = dout[i * D + c];
      if (r->rb_off != NONE) grad[r->rb_off + c] += g;
      for (size_t l = first; l < L; l++)
        for (size_t v = 0; v < W; v++) {
          size_t at = r->r_off + c * U + (l - first) * W + v;
          grad[at] += g * h[(l * n + i) * W + v];
          gh[(l * n + i) * W + v] += g * pe[at];
        }
    }
  for (size_t l = L; l-- > 0;)
    for (size_t i = 0; i < n; i++)
      for (size_t v = 0; v < W; v++) {
        double dz = gh[(l * n + i) * W + v] * ref_dact(r->act, z[(l * n + i) * W + v]);
        if (r->b_off[l] != NONE) grad[r->b_off[l] + v] += dz;
        const double *a = l == 0 ? x + i * d : h + ((l - 1) * n + i) * W;
        for (size_t k = 0; k < r->in[l]; k++) {
          grad[r->w_off[l] + v * r->in[l] + k] += dz * a[k];
          if (l > 0) gh[((l - 1) * n + i) * W + k] += dz * pe[r->w_off[l] + v * r->in[l] + k];
        }
        if (r->s_off[l] != NONE)
          for (size_t k = 0; k < d; k++) grad[r->s_off[l] + v * d + k] += dz * x[i * d + k];
      }
  if (mask)
    for (size_t i = 0; i < r->np; i++) grad[i] *= mask[i];
  free(pe);
  free(z);
  free(h);
  free(out);
  free(gh);
}

static double ref_objective(const ref_net *r, const double *p, const double *mask, const double *x,
                            size_t n, const double *dout) {
  double *out = malloc(n * r->D * sizeof *out), s = 0;
  ref_forward(r, p, mask, x, n, out, NULL, NULL);
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

/* The plugin's mask stream of layer l's part (0 weight, 1 skip): documented
 * in regular_net.h ("regnet" tag, kind 1 = masks, index l << 2 | part). */
static uint64_t mask_stream(size_t l, unsigned part) {
  return 0x7265676e65740000ull | (1ull << 24) | ((uint64_t)l << 2) | part;
}

/* The connectivity mask [np] of one replica from the host mirror of the
 * device Philox draws: layer 1's weights Bernoulli(p2), layer l >= 2 weights
 * Bernoulli(p1), skips Bernoulli(p2), 1 elsewhere. */
static double *ref_mask(const ref_net *r, double p1, double p2, uint64_t seed) {
  double *m = malloc(r->np * sizeof *m);
  for (size_t i = 0; i < r->np; i++) m[i] = 1;
  for (size_t l = 0; l < r->L; l++) {
    double p = l == 0 ? p2 : p1;
    for (size_t i = 0; p < 1 && i < r->W * r->in[l]; i++)
      m[r->w_off[l] + i] = hcl_rng_host(HCL_RNG_BERNOULLI, (float)p, 0, seed, mask_stream(l, 0), i);
    for (size_t i = 0; r->s_off[l] != NONE && p2 < 1 && i < r->W * r->d; i++)
      m[r->s_off[l] + i] =
          hcl_rng_host(HCL_RNG_BERNOULLI, (float)p2, 0, seed, mask_stream(l, 1), i);
  }
  return m;
}

/* ---- fixture: the shared test ctx and the plugin loaded by the loader ----- */
static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_model_vt *g_vt;

static int group_setup(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("regular_net", HCL_PLUGIN_MODEL, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

static hcl_target_info target_vec(size_t d, hcl_task task, size_t classes) {
  hcl_target_info t = {.struct_size = sizeof t, .y_dim = 1, .task = task, .n_classes = classes};
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

#define to_double(f, n) hcl_test_to_double(f, n)

static const hcl_block *find_block(void *self, const char *name) {
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(self, &nb);
  for (size_t i = 0; i < nb; i++)
    if (!strcmp(b[i].name, name)) return &b[i];
  return NULL;
}

/* ---- tests that need no device -------------------------------------------- */

/* The reference gradient (mask included) equals central finite differences of
 * the reference objective, for every parameter, every activation and several
 * structures. */
static void test_reference_gradient_fd(void **state) {
  (void)state;
  ref_net shapes[] = {{.d = 5, .W = 4, .L = 3, .D = 2, .all = 0, .skip = 1, .bias = 1, .rbias = 1},
                      {.d = 5, .W = 4, .L = 3, .D = 1, .all = 1, .skip = 1, .bias = 0, .rbias = 0},
                      {.d = 3, .W = 4, .L = 2, .D = 1, .all = 1, .skip = 0, .bias = 1, .rbias = 1},
                      {.d = 3, .W = 2, .L = 1, .D = 3, .all = 0, .skip = 1, .bias = 1, .rbias = 0}};
  for (int act = 0; act < N_ACTS; act++)
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      ref_net r = shapes[s];
      r.act = act;
      ref_layout(&r);
      size_t np = r.np, n = 6;
      double *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g);
      double *mask = malloc(np * sizeof *mask), x[6 * 5], dout[6 * 3];
      for (size_t i = 0; i < np; i++) {
        p[i] = urand(-0.6, 0.6);
        mask[i] = s % 2 ? 1.0 : (urand(0, 1) < 0.6 ? 1.0 : 0.0);
      }
      for (size_t i = 0; i < n * r.d; i++) x[i] = urand(-1, 1);
      for (size_t i = 0; i < n * r.D; i++) dout[i] = urand(-1, 1);
      ref_backward(&r, p, mask, x, n, dout, g);
      const double h = 1e-6;
      for (size_t i = 0; i < np; i++) {
        double keep = p[i];
        p[i] = keep + h;
        double fp = ref_objective(&r, p, mask, x, n, dout);
        p[i] = keep - h;
        double fm = ref_objective(&r, p, mask, x, n, dout);
        p[i] = keep;
        double fd = (fp - fm) / (2 * h);
        if (!(fabs(fd - g[i]) <= 1e-6 * (1 + fabs(g[i]))))
          fail_msg("%s shape %zu: param %zu: reference %.12g, finite difference %.12g",
                   act_names[act], s, i, g[i], fd);
        if (mask[i] == 0) assert_true(g[i] == 0);
      }
      free(p);
      free(g);
      free(mask);
    }
}

/* ---- device tests --------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "regular_net");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_MODEL);
  assert_non_null(strstr(g_desc->citation, "2108.10573"));
  assert_non_null(strstr(g_desc->citation, "2101.02533"));
  assert_non_null(g_vt->algorithms);
  assert_string_equal(g_vt->algorithms[0], "layerwise_scd");
  assert_null(g_vt->algorithms[1]);
  assert_non_null(g_vt->train);
  assert_non_null(g_vt->features);
  const char *keys[] = {"width",      "depth",        "activation",    "p1",           "p2",
                        "input_skip", "readout",      "readout_fixed", "readout_bias", "init",
                        "init_scale", "neuron_steps", "lambda1",       "lambda2"};
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
    const hcl_param_desc *d = g_desc->params;
    while (d->key && strcmp(d->key, keys[k])) d++;
    if (!d->key) fail_msg("no parameter %s", keys[k]);
    assert_true(d->help && strlen(d->help) > 10);
  }
}

/* Block names, shapes, offsets, groups and parameter counts. */
static void test_layout(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  hcl_target_info t = target_vec(7, HCL_TASK_BINARY, 0);
  model m;
  const char *kv[] = {"width=6", "depth=3", "readout=all", NULL};
  assert_int_equal(model_make(kv, 1, &seed, 4, &t, &m), HCL_OK);
  /* 6*7 + 6 | 6*6 + 6*7 + 6 | same | 1*18 + 1 */
  assert_int_equal(m.np, 48 + 84 + 84 + 19);
  assert_int_equal(m.D, 1);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  static const char *const names[] = {
      "layer1.weight", "layer1.bias", "layer2.weight", "layer2.skip",    "layer2.bias",
      "layer3.weight", "layer3.skip", "layer3.bias",   "readout.weight", "readout.bias"};
  size_t rows[] = {6, 6, 6, 6, 6, 6, 6, 6, 1, 1}, cols[] = {7, 1, 6, 7, 1, 6, 7, 1, 18, 1};
  uint32_t groups[] = {1, 1, 2, 2, 2, 3, 3, 3, 4, 4};
  assert_int_equal(nb, 10);
  size_t off = 0;
  for (size_t i = 0; i < nb; i++) {
    assert_string_equal(b[i].name, names[i]);
    assert_int_equal(b[i].offset, off);
    assert_int_equal(b[i].rows, rows[i]);
    assert_int_equal(b[i].cols, cols[i]);
    assert_int_equal(b[i].group, groups[i]);
    assert_int_equal(b[i].trainable, 1);
    off += rows[i] * cols[i];
  }
  assert_int_equal(off, m.np);
  model_free(&m);

  /* plain MLP: no skips, no biases, 3 classes read from the last layer */
  t = target_vec(7, HCL_TASK_CLASSES, 3);
  const char *kv2[] = {"width=6", "depth=2", "input_skip=false", "bias=false", NULL};
  assert_int_equal(model_make(kv2, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.D, 3);
  assert_int_equal(m.np, 42 + 36 + 18 + 3);
  b = g_vt->blocks(m.self, &nb);
  assert_int_equal(nb, 4);
  assert_string_equal(b[1].name, "layer2.weight");
  assert_string_equal(b[2].name, "readout.weight");
  assert_int_equal(b[2].rows, 3);
  assert_int_equal(b[2].cols, 6);
  model_free(&m);

  /* the linear-teacher network: width 2k, frozen +-v readout */
  t = target_vec(10, HCL_TASK_BINARY, 0);
  const char *kv3[] = {"width=8",
                       "depth=1",
                       "activation=leaky_relu",
                       "readout_fixed=pm_v",
                       "bias=false",
                       "readout_bias=false",
                       NULL};
  assert_int_equal(model_make(kv3, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(m.np, 80 + 8);
  const hcl_block *w1 = find_block(m.self, "layer1.weight");
  const hcl_block *ro = find_block(m.self, "readout.weight");
  assert_non_null(w1);
  assert_non_null(ro);
  assert_int_equal(w1->rows, 8);
  assert_int_equal(w1->cols, 10);
  assert_int_equal(w1->trainable, 1);
  assert_int_equal(ro->trainable, 0);
  assert_null(find_block(m.self, "readout.bias"));
  model_free(&m);
}

static void test_rejects(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 1;
  hcl_target_info t = target_vec(10, HCL_TASK_BINARY, 0);
  model m;
  const char *odd[] = {"width=5", "depth=1", "readout_fixed=pm_v", NULL};
  assert_int_equal(model_make(odd, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "pm_v"));
  assert_non_null(strstr(hcl_errmsg(g_ctx), "got 5"));
  /* readout = all: 3 layers of 5 units read out = 15, odd as well */
  const char *odd_all[] = {"width=5", "depth=3", "readout=all", "readout_fixed=pm_v", NULL};
  assert_int_equal(model_make(odd_all, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "got 15"));
  const char *even_all[] = {"width=5", "depth=2", "readout=all", "readout_fixed=pm_v", NULL};
  assert_int_equal(model_make(even_all, 1, &seed, 4, &t, &m), HCL_OK);
  model_free(&m);
  hcl_target_info tc = target_vec(10, HCL_TASK_CLASSES, 3);
  const char *pmv[] = {"width=4", "readout_fixed=pm_v", NULL};
  assert_int_equal(model_make(pmv, 1, &seed, 4, &tc, &m), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "3 classes"));
  /* the schema stops bad values before create */
  const char *bad_p[] = {"p1=1.5", NULL};
  assert_int_not_equal(model_make(bad_p, 1, &seed, 4, &t, &m), HCL_OK);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "p1"));
  const char *bad_w[] = {"width=0", NULL};
  assert_int_not_equal(model_make(bad_w, 1, &seed, 4, &t, &m), HCL_OK);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "width"));
  /* create itself refuses them when handed unchecked params */
  hcl_kv kv[2] = {{"depth", "0", 0}, {"width", "4", 0}};
  hcl_params p = {.section = "model", .schema = g_desc->params, .kv = kv, .n = 2};
  hcl_setup s = {
      .struct_size = sizeof s, .replicas = 1, .seeds = &seed, .params = &p, .max_batch = 4};
  void *self = (void *)&s;
  assert_int_equal(g_vt->create(g_ctx, &s, &t, &self), HCL_ERR_PARAM);
  assert_null(self);
  assert_non_null(strstr(hcl_errmsg(g_ctx), "depth"));
  /* batches above max_batch, backward without or after another forward */
  const char *ok[] = {"width=4", NULL};
  assert_int_equal(model_make(ok, 1, &seed, 4, &t, &m), HCL_OK);
  hcl_buf x, out;
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * 10 * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, 8 * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 4, m.params), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 5, out), HCL_ERR_PARAM);
  assert_int_equal(g_vt->forward(m.self, m.params, x, 4, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, out, 3, m.params), HCL_ERR_PARAM);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  model_free(&m);
}

/* Plugin forward and gradient (float32, R = 3 replicas with their own seeds
 * and masks) against the float64 reference on parameters that are NOT zero
 * where a connection is absent: the plugin must apply the masks itself. */
static void check_forward_backward(int act, int all, int masked, size_t classes) {
  enum { R = 3 };
  const uint64_t seeds[R] = {11, 2022, 987654321};
  const size_t n = 13, max_batch = 16, d = 9, W = 8, L = 3;
  const double p1 = masked ? 0.6 : 1.0, p2 = masked ? 0.4 : 1.0;
  hcl_target_info t = target_vec(d, classes ? HCL_TASK_CLASSES : HCL_TASK_BINARY, classes);
  char a[64], sp1[32], sp2[32];
  snprintf(a, sizeof a, "activation=%s", act_names[act]);
  snprintf(sp1, sizeof sp1, "p1=%g", p1);
  snprintf(sp2, sizeof sp2, "p2=%g", p2);
  const char *kv[] = {"width=8",
                      "depth=3",
                      a,
                      sp1,
                      sp2,
                      all ? "readout=all" : "readout=last",
                      all ? "bias=false" : "bias=true",
                      all ? "readout_bias=false" : "readout_bias=true",
                      NULL};
  model m;
  assert_int_equal(model_make(kv, R, seeds, max_batch, &t, &m), HCL_OK);
  ref_net r = {.d = d,
               .W = W,
               .L = L,
               .D = m.D,
               .act = act,
               .all = all,
               .skip = 1,
               .bias = !all,
               .rbias = !all};
  ref_layout(&r);
  assert_int_equal(m.np, r.np);
  size_t D = m.D, np = m.np;
  char what[128];
  /* init: absent connections are exactly 0, present ones drawn (nonzero) */
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * np);
  double *masks[R];
  for (size_t rep = 0; rep < R; rep++) {
    masks[rep] = ref_mask(&r, p1, p2, seeds[rep]);
    size_t zeros = 0, ones = 0;
    for (size_t i = 0; i < np; i++) {
      if (masks[rep][i] == 0) {
        zeros++;
        if (ph[rep * np + i] != 0.0f)
          fail_msg("replica %zu: absent connection %zu = %g", rep, i, (double)ph[rep * np + i]);
      } else {
        ones += ph[rep * np + i] != 0.0f;
      }
    }
    assert_true(ones > np - zeros - 3);
    if (masked) assert_true(zeros > np / 10);
  }
  if (masked) assert_memory_not_equal(masks[0], masks[1], np * sizeof(double));
  /* random values everywhere, masked entries included */
  float *pr = random_floats(R * np, -0.5, 0.5);
  assert_int_equal(hcl_buf_write(g_ctx, m.params, pr, R * np * sizeof *pr), HCL_OK);
  float *xh = random_floats(R * n * d, -1, 1), *douth = random_floats(R * n * D, -1, 1);
  hcl_buf x = upload(xh, R * n * d), dout = upload(douth, R * n * D), out, grad;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * D * sizeof(float), &out), HCL_OK);
  float *seven = malloc(R * np * sizeof *seven);
  for (size_t i = 0; i < R * np; i++) seven[i] = 7.0f; /* backward must overwrite */
  grad = upload(seven, R * np);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  assert_int_equal(g_vt->backward(m.self, m.params, dout, n, grad), HCL_OK);
  float *oh = read_floats(out, R * n * D), *gh = read_floats(grad, R * np);
  float *ph2 = read_floats(m.params, R * np);
  assert_memory_equal(ph2, pr, R * np * sizeof *pr); /* forward does not touch params */
  double *ref_out = malloc(n * D * sizeof *ref_out), *ref_g = malloc(np * sizeof *ref_g);
  for (size_t rep = 0; rep < R; rep++) {
    double *p = to_double(pr + rep * np, np), *xd = to_double(xh + rep * n * d, n * d);
    double *dd = to_double(douth + rep * n * D, n * D);
    ref_forward(&r, p, masks[rep], xd, n, ref_out, NULL, NULL);
    snprintf(what, sizeof what, "%s%s%s forward, replica %zu", act_names[act],
             all ? " readout=all" : "", masked ? " masked" : "", rep);
    assert_close(oh + rep * n * D, ref_out, n * D, 1e-4, what);
    ref_backward(&r, p, masks[rep], xd, n, dd, ref_g);
    snprintf(what, sizeof what, "%s%s%s gradient, replica %zu", act_names[act],
             all ? " readout=all" : "", masked ? " masked" : "", rep);
    assert_close(gh + rep * np, ref_g, np, 1e-4, what);
    for (size_t i = 0; i < np; i++)
      if (masks[rep][i] == 0 && gh[rep * np + i] != 0.0f)
        fail_msg("%s: absent connection %zu has gradient %g", what, i, (double)gh[rep * np + i]);
    free(p);
    free(xd);
    free(dd);
    free(masks[rep]);
  }
  free(ref_out);
  free(ref_g);
  free(ph);
  free(ph2);
  free(pr);
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
  check_forward_backward(ACT_RELU, 0, 1, 0);
  check_forward_backward(ACT_RELU, 1, 1, 0);
  check_forward_backward(ACT_RELU, 0, 0, 3);
}

static void test_leaky_relu(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_LEAKY, 0, 1, 3);
  check_forward_backward(ACT_LEAKY, 1, 1, 0);
}

static void test_quadratic(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_QUAD, 0, 1, 0);
  check_forward_backward(ACT_QUAD, 1, 0, 2);
}

static void test_tanh(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_TANH, 0, 1, 0);
  check_forward_backward(ACT_TANH, 1, 1, 3);
}

static void test_identity(void **state) {
  (void)state;
  NEED_DEVICE();
  check_forward_backward(ACT_IDENT, 0, 1, 0);
  check_forward_backward(ACT_IDENT, 1, 1, 0);
}

/* Mask density and independence of the blocks, on a large network. */
static void test_mask_density(void **state) {
  (void)state;
  NEED_DEVICE();
  uint64_t seed = 77;
  hcl_target_info t = target_vec(200, HCL_TASK_BINARY, 0);
  const char *kv[] = {"width=100", "depth=2", "p1=0.7", "p2=0.2", NULL};
  model m;
  assert_int_equal(model_make(kv, 1, &seed, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, m.np);
  const char *blk[] = {"layer1.weight", "layer2.weight", "layer2.skip", "layer2.bias",
                       "readout.weight"};
  double want[] = {0.2, 0.7, 0.2, 1, 1};
  for (size_t k = 0; k < 5; k++) {
    const hcl_block *b = find_block(m.self, blk[k]);
    assert_non_null(b);
    size_t count = b->rows * b->cols, on = 0;
    for (size_t i = 0; i < count; i++) on += ph[b->offset + i] != 0.0f;
    double frac = (double)on / (double)count, sd = sqrt(want[k] * (1 - want[k]) / count);
    if (!(fabs(frac - want[k]) <= 5 * sd + 1e-9))
      fail_msg("%s: %.4f of the connections present, expected %.2f", blk[k], frac, want[k]);
  }
  free(ph);
  model_free(&m);
}

/* PyTorch's default init with the full layer's fan-in; normal; zero; +-v. */
static void test_init_statistics(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {42, 43, 1ull << 40};
  const size_t d = 30, W = 60;
  hcl_target_info t = target_vec(d, HCL_TASK_BINARY, 0);
  model m;
  const char *kv[] = {"width=60", "depth=2", "readout=all", NULL};
  assert_int_equal(model_make(kv, R, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  size_t nb = 0;
  const hcl_block *b = g_vt->blocks(m.self, &nb);
  /* fan_in: d for layer 1, W + d for layer 2 (skip), U = 2W for the readout */
  double fan[] = {d, d, W + d, W + d, W + d, 2 * W, 2 * W};
  assert_int_equal(nb, 7);
  for (size_t rep = 0; rep < R; rep++) {
    const float *p = ph + rep * m.np;
    for (size_t i = 0; i < nb; i++) {
      size_t count = b[i].rows * b[i].cols;
      double bound = 1.0 / sqrt(fan[i]), s = 0, s2 = 0, mx = 0;
      for (size_t k = 0; k < count; k++) {
        double v = p[b[i].offset + k];
        if (!(fabs(v) <= (double)(float)bound))
          fail_msg("replica %zu %s[%zu] = %g outside +-%g", rep, b[i].name, k, v, bound);
        s += v;
        s2 += v * v;
        mx = fmax(mx, fabs(v));
      }
      if (count >= 60) assert_true(mx > 0.8 * bound);
      if (count >= 1800) {
        double mean = s / count, var = s2 / count - mean * mean;
        assert_true(fabs(mean) < 5 * bound / sqrt(3.0 * count));
        if (!(fabs(var / (bound * bound / 3) - 1) < 0.1))
          fail_msg("%s: variance %g, expected %g", b[i].name, var, bound * bound / 3);
      }
    }
    /* blocks of equal shape draw from their own streams */
    assert_memory_not_equal(p + b[2].offset, p + b[5].offset, 60 * sizeof *p);
  }
  for (size_t i = 0; i < nb; i++) /* replicas differ */
    assert_memory_not_equal(ph + b[i].offset, ph + m.np + b[i].offset, sizeof *ph);
  free(ph);
  model_free(&m);

  /* normal: weights N(0, scale^2 / fan_in), biases 0 */
  const char *kvn[] = {"width=60", "depth=2", "init=normal", "init_scale=2", NULL};
  assert_int_equal(model_make(kvn, 1, seeds, 4, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  ph = read_floats(m.params, m.np);
  const char *nb_names[] = {"layer1.weight", "layer2.weight", "layer2.skip", "readout.weight"};
  double nfan[] = {d, W + d, W + d, W};
  for (size_t k = 0; k < 4; k++) {
    const hcl_block *bl = find_block(m.self, nb_names[k]);
    size_t count = bl->rows * bl->cols;
    double s2 = 0, want = 4.0 / nfan[k];
    for (size_t i = 0; i < count; i++) s2 += (double)ph[bl->offset + i] * ph[bl->offset + i];
    double tol = 5 * want * sqrt(2.0 / count);
    if (!(fabs(s2 / count - want) < tol))
      fail_msg("normal %s: mean square %g, expected %g", nb_names[k], s2 / count, want);
  }
  const hcl_block *b1 = find_block(m.self, "layer1.bias");
  for (size_t i = 0; i < W; i++) assert_true(ph[b1->offset + i] == 0.0f);
  free(ph);
  model_free(&m);

  /* zero, with the +-v readout */
  const char *kvz[] = {"width=6", "depth=1", "init=zero", "readout_fixed=pm_v", NULL};
  assert_int_equal(model_make(kvz, 2, seeds, 4, &t, &m), HCL_OK);
  float *junk = random_floats(2 * m.np, 1, 2);
  assert_int_equal(hcl_buf_write(g_ctx, m.params, junk, 2 * m.np * sizeof *junk), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  ph = read_floats(m.params, 2 * m.np);
  const hcl_block *ro = find_block(m.self, "readout.weight");
  float v = (float)(1.0 / sqrt(6.0));
  for (size_t rep = 0; rep < 2; rep++)
    for (size_t i = 0; i < m.np; i++) {
      float want = 0.0f;
      if (i >= ro->offset && i < ro->offset + 6) want = i - ro->offset < 3 ? v : -v;
      if (ph[rep * m.np + i] != want)
        fail_msg("zero init, replica %zu, param %zu = %g, expected %g", rep, i,
                 (double)ph[rep * m.np + i], (double)want);
    }
  free(junk);
  free(ph);
  model_free(&m);
}

/* R replicas in one pass equal R separate runs with the same seeds, bit for
 * bit: masks, init, forward, backward. */
static void test_replicas_bitwise(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3 };
  const uint64_t seeds[R] = {101, 202, 303};
  const size_t n = 11, d = 12;
  hcl_target_info t = target_vec(d, HCL_TASK_BINARY, 0);
  const char *kv[] = {"width=10",        "depth=3",     "p1=0.5", "p2=0.3",
                      "activation=tanh", "readout=all", NULL};
  float *xh = random_floats(R * n * d, -1, 1), *dh = random_floats(R * n, -1, 1);
  hcl_test_replicas_bitwise(g_ctx, g_desc, kv, R, seeds, 16, &t, n, d, xh, dh);
  free(xh), free(dh);
}

/* features(layer) is the reference's h_layer, masks included. */
static void test_features(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 2 };
  const uint64_t seeds[R] = {5, 6};
  const size_t n = 9, d = 10, W = 7, L = 3;
  hcl_target_info t = target_vec(d, HCL_TASK_BINARY, 0);
  const char *kv[] = {"width=7", "depth=3", "p1=0.5", "p2=0.5", "activation=leaky_relu", NULL};
  model m;
  assert_int_equal(model_make(kv, R, seeds, 12, &t, &m), HCL_OK);
  ref_net r = {.d = d, .W = W, .L = L, .D = 1, .act = ACT_LEAKY, .skip = 1, .bias = 1, .rbias = 1};
  ref_layout(&r);
  float *xh = random_floats(R * n * d, -1, 1);
  hcl_buf x = upload(xh, R * n * d), feat, out;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * W * sizeof(float), &feat), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * n * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, R * m.np);
  double *hs = malloc(L * n * W * sizeof *hs), o[9];
  size_t dim = 0;
  assert_int_equal(g_vt->features(m.self, m.params, 0, x, n, feat, &dim), HCL_ERR_PARAM);
  assert_int_equal(g_vt->features(m.self, m.params, L + 1, x, n, feat, &dim), HCL_ERR_PARAM);
  for (size_t layer = 1; layer <= L; layer++) {
    assert_int_equal(g_vt->features(m.self, m.params, layer, x, n, feat, &dim), HCL_OK);
    assert_int_equal(dim, W);
    float *fh = read_floats(feat, R * n * W);
    for (size_t rep = 0; rep < R; rep++) {
      double *p = to_double(ph + rep * m.np, m.np), *xd = to_double(xh + rep * n * d, n * d);
      double *mask = ref_mask(&r, 0.5, 0.5, seeds[rep]);
      ref_forward(&r, p, mask, xd, n, o, NULL, hs);
      char what[64];
      snprintf(what, sizeof what, "features of layer %zu, replica %zu", layer, rep);
      assert_close(fh + rep * n * W, hs + (layer - 1) * n * W, n * W, 1e-4, what);
      free(p);
      free(xd);
      free(mask);
    }
    free(fh);
  }
  /* features replaced the kept activations: backward needs a new forward */
  assert_int_equal(g_vt->backward(m.self, m.params, out, n, feat), HCL_ERR_PARAM);
  free(hs);
  free(ph);
  free(xh);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &feat);
  hcl_buf_free(g_ctx, &out);
  model_free(&m);
}

/* SPEC 1.6's exact identity: leaky ReLU, +v units sharing w, -v units
 * sharing u: sign f(x) = sign((w - u) . x). */
static void test_pm_v_identity(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t d = 6, k = 3, W = 2 * k, n = 200;
  uint64_t seed = 3;
  hcl_target_info t = target_vec(d, HCL_TASK_BINARY, 0);
  const char *kv[] = {"width=6",
                      "depth=1",
                      "activation=leaky_relu",
                      "readout_fixed=pm_v",
                      "bias=false",
                      "readout_bias=false",
                      NULL};
  model m;
  assert_int_equal(model_make(kv, 1, &seed, n, &t, &m), HCL_OK);
  assert_int_equal(g_vt->init(m.self, m.params), HCL_OK);
  float *ph = read_floats(m.params, m.np);
  const hcl_block *w1 = find_block(m.self, "layer1.weight");
  float wbar[6], ubar[6];
  for (size_t j = 0; j < d; j++) {
    wbar[j] = (float)urand(-1, 1);
    ubar[j] = (float)urand(-1, 1);
  }
  for (size_t v = 0; v < W; v++)
    for (size_t j = 0; j < d; j++) ph[w1->offset + v * d + j] = v < k ? wbar[j] : ubar[j];
  assert_int_equal(hcl_buf_write(g_ctx, m.params, ph, m.np * sizeof *ph), HCL_OK);
  float *xh = random_floats(n * d, -2, 2);
  hcl_buf x = upload(xh, n * d), out;
  assert_int_equal(hcl_buf_alloc(g_ctx, n * sizeof(float), &out), HCL_OK);
  assert_int_equal(g_vt->forward(m.self, m.params, x, n, out), HCL_OK);
  float *oh = read_floats(out, n);
  size_t checked = 0;
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    for (size_t j = 0; j < d; j++) s += ((double)wbar[j] - ubar[j]) * xh[i * d + j];
    if (fabs(s) < 1e-3) continue;
    checked++;
    if ((s > 0) != (oh[i] > 0))
      fail_msg("sample %zu: f = %g but (w - u).x = %g", i, (double)oh[i], s);
  }
  assert_true(checked > n / 2);
  free(ph);
  free(xh);
  free(oh);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  model_free(&m);
}

/* ---- layerwise_scd: one neuron step, replayed on the host ----------------- */

/* The plugin's schedule: Fisher-Yates over Philox words of (seeds[0],
 * "regnet" | kind 2 | layer * passes + pass), word % (i + 1). */
static size_t first_neuron(uint64_t seed, size_t W, uint64_t index) {
  size_t order[64];
  uint64_t stream = 0x7265676e65740000ull | (2ull << 24) | index;
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, w[4];
  uint64_t block = 0;
  unsigned used = 4;
  for (size_t i = 0; i < W; i++) order[i] = i;
  for (size_t i = W; i-- > 1;) {
    if (used == 4) {
      uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                         (uint32_t)(stream >> 32)};
      hcl_philox4x32(key, ctr, w);
      block++;
      used = 0;
    }
    size_t j = w[used++] % (uint32_t)(i + 1);
    size_t tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  return order[0];
}

typedef struct scd_probe {
  hcl_trainer *t;
  int layer; /* the layer whose first neuron step is checked (1-based) */
  volatile int stop;
  float *before; /* params when that layer starts */
  uint64_t before_step, before_samples;
} scd_probe;

/* The sink of the hand-built trainer: keep the parameters when the checked
 * layer starts (the initial evaluation, or the evaluation that ends the layer
 * below), and ask the run to stop after one step of its first neuron. */
static hcl_status scd_sink(void *user, uint64_t step, uint64_t samples, const char *phase,
                           double lr, double wall_s, size_t n, const char *const *names,
                           const double *values, uint32_t R) {
  (void)lr, (void)wall_s;
  scd_probe *s = user;
  int start = 0;
  if (s->layer == 1) start = step == 0;
  for (size_t i = 0; s->layer > 1 && i < n; i++)
    if (!strcmp(names[i], "scd_layer") && values[i * R] == s->layer - 1) start = 1;
  if (start && !s->before) {
    s->before = read_floats(s->t->params, R * s->t->n_params);
    s->before_step = step;
    s->before_samples = samples;
  }
  char want[16];
  snprintf(want, sizeof want, "layer%d", s->layer);
  if (s->before && step == s->before_step + 1) {
    assert_string_equal(phase, want);
    s->stop = 1;
  }
  return HCL_OK;
}

/* One SGD step of the first neuron v of `layer`, replayed on the host: row v
 * of the layer's weights (penalty lambda1, or lambda2 for layer 1), row v of
 * its skip (lambda2), its bias and the readout move by -lr (gradient +
 * penalty + weight decay); every other parameter keeps its bits, absent
 * connections stay 0. */
static void check_scd_step(int layer) {
  enum { R = 2, B = 16 };
  const uint64_t seeds[R] = {8, 9};
  const size_t d = 6, W = 5, L = 2;
  const double lr = 0.05, lambda1 = 0.1, lambda2 = 0.3, wd = 0.2, p1 = 0.7, p2 = 0.6;
  const hcl_plugin_desc *tdesc = hcl_test_plugin("staircase", HCL_PLUGIN_TARGET);
  const hcl_target_vt *tvt = tdesc->vt;
  hcl_params *tp = hcl_test_params(tdesc, "target", (const char *[]){"n=6", "k=2", NULL});
  hcl_setup ts = {.struct_size = sizeof ts,
                  .replicas = R,
                  .seeds = seeds,
                  .params = tp,
                  .train_size = 64,
                  .test_size = 0,
                  .max_batch = B};
  void *target = NULL;
  assert_int_equal(tvt->create(g_ctx, &ts, &target), HCL_OK);
  hcl_target_info ti = {.struct_size = sizeof ti};
  assert_int_equal(tvt->info(target, &ti), HCL_OK);
  const char *kv[] = {"width=5",     "depth=2",     "p1=0.7",         "p2=0.6",
                      "lambda1=0.1", "lambda2=0.3", "neuron_steps=1", "activation=tanh",
                      "readout=all", NULL};
  model m;
  assert_int_equal(model_make(kv, R, seeds, B, &ti, &m), HCL_OK);
  size_t np = m.np;
  hcl_train_cfg cfg = {.replicas = R,
                       .seeds = seeds,
                       .steps = 1000,
                       .batch = B,
                       .train_size = 64,
                       .sched = {.kind = HCL_SCHED_CONSTANT, .lr = lr},
                       .loss = HCL_LOSS_MSE,
                       .optim = {.kind = HCL_OPT_SGD, .weight_decay = wd},
                       .eval_every = 1,
                       .test_size = 0,
                       .eval_batch = B,
                       .algorithm = "layerwise_scd"};
  hcl_trainer t;
  memset(&t, 0, sizeof t);
  scd_probe probe = {.t = &t, .layer = layer};
  t.ctx = g_ctx;
  t.cfg = &cfg;
  t.tvt = tvt;
  t.target = target;
  t.tinfo = ti;
  t.mvt = g_vt;
  t.model = m.self;
  t.stop = &probe.stop;
  t.sink = (hcl_metric_sink){.user = &probe, .write = scd_sink};
  assert_int_equal(hcl_trainer_init(&t), HCL_OK);
  assert_int_equal(hcl_trainer_run(&t), HCL_ERR_INTERRUPTED);
  assert_non_null(probe.before);
  assert_int_equal(t.step, probe.before_step + 1);
  float *after = read_floats(t.params, R * np);
  /* the batch of that step and the host gradient of its MSE at `before` */
  hcl_buf xb, yb;
  assert_int_equal(hcl_buf_alloc(g_ctx, R * B * d * sizeof(float), &xb), HCL_OK);
  assert_int_equal(hcl_buf_alloc(g_ctx, R * B * sizeof(float), &yb), HCL_OK);
  assert_int_equal(hcl_trainer_batch(&t, HCL_STREAM_TRAIN, probe.before_samples, B, xb, yb),
                   HCL_OK);
  float *xh = read_floats(xb, R * B * d), *yh = read_floats(yb, R * B);
  ref_net r = {
      .d = d, .W = W, .L = L, .D = 1, .act = ACT_TANH, .all = 1, .skip = 1, .bias = 1, .rbias = 1};
  ref_layout(&r);
  assert_int_equal(r.np, np);
  size_t l = (size_t)layer - 1, v = first_neuron(seeds[0], W, l), in = r.in[l];
  double *g = malloc(np * sizeof *g), out[B], dout[B];
  for (size_t rep = 0; rep < R; rep++) {
    const float *b = probe.before + rep * np, *a = after + rep * np;
    double *p = to_double(b, np), *xd = to_double(xh + rep * B * d, B * d);
    double *mask = ref_mask(&r, p1, p2, seeds[rep]);
    ref_forward(&r, p, mask, xd, B, out, NULL, NULL);
    for (size_t i = 0; i < B; i++) dout[i] = 2.0 * (out[i] - yh[rep * B + i]) / B;
    ref_backward(&r, p, mask, xd, B, dout, g);
    size_t changed = 0;
    for (size_t i = 0; i < np; i++) {
      int row_w = i >= r.w_off[l] + v * in && i < r.w_off[l] + (v + 1) * in;
      int row_s = r.s_off[l] != NONE && i >= r.s_off[l] + v * d && i < r.s_off[l] + (v + 1) * d;
      int bias_v = i == r.b_off[l] + v, readout = i >= r.r_off;
      double pen = row_w ? (l == 0 ? lambda2 : lambda1) : row_s ? lambda2 : 0;
      double want = p[i];
      if (row_w || row_s || bias_v || readout)
        want = p[i] - lr * ((g[i] + pen * p[i]) * mask[i] + wd * p[i]);
      if (!(fabs(a[i] - want) <= 1e-5 * (1 + fabs(want))))
        fail_msg("layer %d, replica %zu param %zu (neuron %zu%s%s%s%s): %.9g after the step, "
                 "want %.9g (before %.9g)",
                 layer, rep, i, v, row_w ? ", its weights" : "", row_s ? ", its skip" : "",
                 bias_v ? ", its bias" : "", readout ? ", readout" : "", (double)a[i], want, p[i]);
      if (mask[i] == 0) assert_true(a[i] == 0.0f);
      if (!row_w && !row_s && !bias_v && !readout && a[i] != b[i])
        fail_msg("layer %d, replica %zu: frozen param %zu moved from %.9g to %.9g", layer, rep, i,
                 (double)b[i], (double)a[i]);
      changed += a[i] != b[i];
    }
    assert_true(changed > (layer == 1 ? d / 2 : W / 2)); /* the step did move something */
    free(p);
    free(xd);
    free(mask);
  }
  free(g);
  free(after);
  free(probe.before);
  free(xh);
  free(yh);
  hcl_buf_free(g_ctx, &xb);
  hcl_buf_free(g_ctx, &yb);
  hcl_trainer_release(&t);
  model_free(&m);
  tvt->destroy(target);
  hcl_test_params_free(tp);
}

static void test_scd_one_neuron(void **state) {
  (void)state;
  NEED_DEVICE();
  check_scd_step(1);
  check_scd_step(2);
}

/* ---- learning runs through hcl_run ----------------------------------------- */

static hcl_status run_cfg(const char *cfg_text, char *dir, char *err, size_t errlen) {
  const char *path = hcl_test_write_temp("regular_net.ini", cfg_text);
  hcl_run_options o = {.config_path = path,
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

/* Values of `key` on every metrics line of replica r, in order (at most max). */
static size_t series(const char *text, int replica, const char *key, double *out, size_t max) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"replica\":%d,", replica);
  size_t n = 0;
  for (const char *line = text; line && *line && n < max;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[8192];
    snprintf(buf, sizeof buf, "%.*s", (int)len, line);
    double v;
    if (strstr(buf, pat) && hcl_test_json_num(buf, key, &v)) out[n++] = v;
    line = end ? end + 1 : NULL;
  }
  return n;
}

/* Sarussi et al.'s network (width 2k, leaky ReLU, frozen +-v readout) on
 * linearly separable data reaches zero training error: the mean logistic
 * loss over a stretch of full-batch steps falls below ln(2)/P, so at some
 * step every one of the P training points was classified correctly. */
static void test_learns_linear_teacher(void **state) {
  (void)state;
  NEED_DEVICE();
  if (!hcl_registry_find(hcl_test_registry(), "linear_teacher", HCL_PLUGIN_TARGET)) {
    fprintf(stderr, "linear_teacher target not built: skipped\n");
    skip();
  }
  static const char cfg[] =
      "[run]\nseeds = 3, 4\n"
      "[target]\nplugin = linear_teacher\n"
      "[model]\nplugin = regular_net\nwidth = 20\ndepth = 1\nactivation = leaky_relu\n"
      "readout_fixed = pm_v\nbias = false\nreadout_bias = false\n"
      "[train]\nsteps = 3000\nbatch = 64\ntrain_size = 64\nlr = 0.5\nloss = logistic\n"
      "stop_loss = 0.005\n"
      "[eval]\nevery = 100\ntest_size = 1000\n";
  char dir[1024], err[4096];
  if (run_cfg(cfg, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *m = read_in(dir, "metrics.jsonl");
  assert_non_null(m);
  for (int r = 0; r < 2; r++) {
    double tl[64];
    size_t k = series(m, r, "train_loss", tl, 64);
    assert_true(k >= 2);
    if (!(tl[k - 1] < log(2.0) / 64))
      fail_msg("replica %d: final train loss %g, not below ln2/P = %g", r, tl[k - 1],
               log(2.0) / 64);
  }
  free(m);
}

/* layerwise_scd on a staircase runs through every layer and lowers the
 * loss; with a learning rate too small to improve anything, every neuron
 * stops after neuron_patience checks. */
static void test_scd_staircase(void **state) {
  (void)state;
  NEED_DEVICE();
  static const char cfg[] =
      "[run]\nseed = 5\n"
      "[target]\nplugin = staircase\nn = 8\nk = 3\n"
      "[model]\nplugin = regular_net\nwidth = 12\ndepth = 3\nactivation = relu\n"
      "readout = all\np1 = 0.8\np2 = 0.5\nneuron_steps = 30\nneuron_patience = 2\n"
      "neuron_check = 10\nlambda1 = 1e-4\nlambda2 = 1e-4\n"
      "[train]\nalgorithm = layerwise_scd\nsteps = 1080\nbatch = 32\nlr = 0.05\n"
      "train_size = 0\n"
      "[eval]\nevery = 0\ntest_size = 1000\n";
  char dir[1024], err[4096];
  if (run_cfg(cfg, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *m = read_in(dir, "metrics.jsonl");
  assert_non_null(m);
  double test[16], layer[16], steps[16];
  size_t k = series(m, 0, "test_loss", test, 16), kl = series(m, 0, "scd_layer", layer, 16);
  assert_int_equal(kl, 3); /* one evaluation per layer, in order */
  for (size_t i = 0; i < kl; i++) assert_int_equal((int)layer[i], (int)i + 1);
  assert_true(k >= 4); /* plus the initial one and the final one */
  if (!(test[k - 1] < 0.8 * test[0]))
    fail_msg("test loss %g at the start, %g at the end: not lowered", test[0], test[k - 1]);
  assert_int_equal(series(m, 0, "scd_layer_steps", steps, 16), 3);
  for (size_t i = 0; i < 3; i++) assert_true(steps[i] >= 12 * 20 && steps[i] <= 12 * 30);
  free(m);

  /* lr 1e-9: no check improves the loss by 1e-4, each neuron stops after
   * 2 checks of 10 steps */
  static const char still[] =
      "[run]\nseed = 5\n"
      "[target]\nplugin = staircase\nn = 8\nk = 3\n"
      "[model]\nplugin = regular_net\nwidth = 6\ndepth = 2\nneuron_steps = 100\n"
      "neuron_patience = 2\nneuron_check = 10\n"
      "[train]\nalgorithm = layerwise_scd\nsteps = 10\nbatch = 16\nlr = 1e-9\n"
      "[eval]\nevery = 0\ntest_size = 100\n";
  if (run_cfg(still, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  m = read_in(dir, "metrics.jsonl");
  assert_int_equal(series(m, 0, "scd_layer_steps", steps, 16), 2);
  assert_int_equal((int)steps[0], 6 * 20);
  assert_int_equal((int)steps[1], 6 * 20);
  free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_gradient_fd),
      cmocka_unit_test(test_descriptor),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_relu),
      cmocka_unit_test(test_leaky_relu),
      cmocka_unit_test(test_quadratic),
      cmocka_unit_test(test_tanh),
      cmocka_unit_test(test_identity),
      cmocka_unit_test(test_mask_density),
      cmocka_unit_test(test_init_statistics),
      cmocka_unit_test(test_replicas_bitwise),
      cmocka_unit_test(test_features),
      cmocka_unit_test(test_pm_v_identity),
      cmocka_unit_test(test_scd_one_neuron),
      cmocka_unit_test(test_learns_linear_teacher),
      cmocka_unit_test(test_scd_staircase),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
