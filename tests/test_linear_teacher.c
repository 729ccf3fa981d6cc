/* linear_teacher target plugin (SPEC 1.6), loaded through the runtime
 * loader: w* (unit norm, host reference, uniform direction); samples bit for
 * bit against a host reference of the rejection loop (both input laws,
 * label flips, two replicas, batch splits, train wrap, the attempt cap and
 * its counter); the margin, labels, flip rate and the conditional laws after
 * rejection; parameter errors; the exact sign identity of SPEC 1.6 in
 * float64; the probe's clustering math on hand-built nets with known
 * answers; the whole probe through a fake trainer against a host recount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcl_test.h"
#include "trainer.h"

/* The plugin's pure host code (acceptance probability, cap, clustering),
 * compiled in so it can be checked directly. */
#include "../targets/linear_teacher/probe_math.c"
#include "../targets/linear_teacher/cap.c"

static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_target_vt *g_vt;

#define STREAM_X 0x4C54430000000000ULL
#define STREAM_FLIP 0x4C54430100000000ULL
#define STREAM_TEACHER 0x4C54430200000000ULL

static int setup_group(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("linear_teacher", HCL_PLUGIN_TARGET, &g_ctx, &g_desc);
  if (rc == 0) g_vt = g_desc->vt;
  return rc;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

/* Create a target from "key=value" strings of [target]. */
static hcl_status make(const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                       size_t max_batch, void **self) {
  return hcl_test_target_make(g_ctx, g_desc, kv, R, seeds, P, 0, max_batch, self);
}

static void make_ok(const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                    size_t max_batch, void **self) {
  hcl_status rc = make(kv, R, seeds, P, max_batch, self);
  if (rc != HCL_OK) fail_msg("create: %s", hcl_errmsg(g_ctx));
}

static hcl_buf alloc_f(size_t n) {
  hcl_buf b;
  assert_int_equal(hcl_buf_alloc(g_ctx, n * sizeof(float), &b), HCL_OK);
  return b;
}

/* Draw count samples of a stream into host arrays x [R, count, d], y [R, count]. */
static void draw(void *self, size_t R, size_t d, uint32_t stream, uint64_t first, size_t count,
                 float *x, float *y) {
  hcl_buf dx = alloc_f(R * count * d), dy = alloc_f(R * count);
  assert_int_equal(g_vt->sample(self, stream, first, count, dx, dy), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dx, x, R * count * d * sizeof(float)), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dy, y, R * count * sizeof(float)), HCL_OK);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dy);
}

/* w* of every replica [R, d], read through eval("margin") at the unit
 * vectors: sum_l w_l e_jl = w_j exactly (the other terms are zeros). */
static void device_wstar(void *self, size_t R, size_t d, float *w) {
  float *e = calloc(R * d * d, sizeof *e), *out = malloc(R * d * sizeof *out);
  for (size_t r = 0; r < R; r++)
    for (size_t j = 0; j < d; j++) e[(r * d + j) * d + j] = 1.0f;
  hcl_buf dx = alloc_f(R * d * d), dout = alloc_f(R * d);
  assert_int_equal(hcl_buf_write(g_ctx, dx, e, R * d * d * sizeof *e), HCL_OK);
  assert_int_equal(g_vt->eval(self, "margin", dx, d, dout), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dout, out, R * d * sizeof *out), HCL_OK);
  memcpy(w, out, R * d * sizeof *w);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dout);
  free(e);
  free(out);
}

/* eval("margin") of host inputs x [R, n, d] -> out [R, n]. */
static void device_margin(void *self, size_t R, size_t d, size_t n, const float *x, float *out) {
  hcl_buf dx = alloc_f(R * n * d), dout = alloc_f(R * n);
  assert_int_equal(hcl_buf_write(g_ctx, dx, x, R * n * d * sizeof *x), HCL_OK);
  assert_int_equal(g_vt->eval(self, "margin", dx, n, dout), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dout, out, R * n * sizeof *out), HCL_OK);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dout);
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- independent host reference of the draw layout ------------------------ */

/* 1/sqrt(q): the kernel's bit-level guess and three Newton steps. */
static float ref_rsqrt(float q) {
  if (!(q > 0.0f)) return 0.0f;
  uint32_t u;
  memcpy(&u, &q, sizeof u);
  u = 0x5f3759dfu - (u >> 1);
  float y;
  memcpy(&y, &u, sizeof y);
  for (int k = 0; k < 3; k++) y = y * (1.5f - 0.5f * q * y * y);
  return y;
}

/* w* of one seed: normals of the teacher stream, normalised in double. */
static void ref_wstar(uint64_t seed, size_t d, float *w) {
  double ss = 0.0;
  for (size_t j = 0; j < d; j++) {
    w[j] = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seed, STREAM_TEACHER, j);
    ss += (double)w[j] * (double)w[j];
  }
  for (size_t j = 0; j < d; j++) w[j] = (float)((double)w[j] / sqrt(ss));
}

typedef struct ref_gen {
  size_t d;
  int ball;
  double gamma, noise;
  uint32_t attempts;
  uint64_t P; /* train wrap (0: none) */
} ref_gen;

static float ref_dot(const float *w, const float *x, size_t d) {
  float acc = 0.0f;
  for (size_t j = 0; j < d; j++) acc = acc + w[j] * x[j];
  return acc;
}

/* Sample i of (seed, stream) for teacher w: x [d], returns y; *capped = 1
 * when no attempt met the margin. */
static float ref_sample(const ref_gen *g, const float *w, uint64_t seed, uint32_t stream,
                        uint64_t i, float *x, int *capped) {
  if (stream == HCL_STREAM_TRAIN && g->P) i %= g->P;
  size_t m = g->ball ? g->d + 2 : g->d, width = 4 * ((m + 3) / 4);
  float gv[64];
  assert_true(m <= 64);
  float dot = 0.0f;
  *capped = 1;
  for (uint32_t t = 0; t < g->attempts; t++) {
    uint64_t st = STREAM_X | ((uint64_t)t << 8) | stream;
    for (size_t j = 0; j < m; j++)
      gv[j] = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seed, st, i * width + j);
    float rho = 1.0f;
    if (g->ball) {
      float q = 0.0f;
      for (size_t j = 0; j < m; j++) q = q + gv[j] * gv[j];
      rho = ref_rsqrt(q);
    }
    for (size_t j = 0; j < g->d; j++) x[j] = g->ball ? gv[j] * rho : gv[j];
    dot = ref_dot(w, x, g->d);
    if (fabsf(dot) >= (float)g->gamma) {
      *capped = 0;
      break;
    }
  }
  float y = dot >= 0.0f ? 1.0f : -1.0f;
  if (g->noise > 0.0 &&
      hcl_rng_host(HCL_RNG_BERNOULLI, (float)g->noise, 0.0f, seed, STREAM_FLIP | stream, i) != 0.0f)
    y = -y;
  return y;
}

/* Device rows [R, count, d] / [R, count] against the reference, bit for
 * bit; returns the number of capped samples per replica in capped[]. */
static void check_against_ref(const ref_gen *g, const float *wstar, const uint64_t *seeds, size_t R,
                              uint32_t stream, uint64_t first, size_t count, const float *x,
                              const float *y, uint32_t *capped) {
  float rx[64] = {0};
  for (size_t r = 0; r < R; r++) {
    if (capped) capped[r] = 0;
    for (size_t i = 0; i < count; i++) {
      int cap;
      float ry = ref_sample(g, wstar + r * g->d, seeds[r], stream, first + i, rx, &cap);
      if (capped) capped[r] += (uint32_t)cap;
      const float *dx = x + (r * count + i) * g->d;
      for (size_t j = 0; j < g->d; j++)
        if (!same_bits(dx[j], rx[j]))
          fail_msg("ball %d: x[r=%zu, i=%llu, j=%zu] = %.9g, reference %.9g", g->ball, r,
                   (unsigned long long)(first + i), j, dx[j], rx[j]);
      if (!same_bits(y[r * count + i], ry))
        fail_msg("ball %d: y[r=%zu, i=%llu] = %g, reference %g", g->ball, r,
                 (unsigned long long)(first + i), y[r * count + i], ry);
    }
  }
}

/* The device's count of capped draws per replica. */
static hcl_status lt_host_read_capped(void *self, uint32_t *out) {
  lt_target *t = self;
  return hcl_buf_read(g_ctx, t->d_capped, out, t->R * sizeof *out);
}

static const char *note_of(const char *key) {
  const char *v = NULL; /* the latest */
  for (size_t i = 0; i < g_ctx->n_notes; i++)
    if (!strcmp(g_ctx->notes[i].key, key)) v = g_ctx->notes[i].value;
  return v;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "linear_teacher");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_TARGET);
  assert_non_null(strstr(g_desc->citation, "2101.02533"));
  assert_non_null(strstr(g_desc->citation, "Sarussi"));
  assert_non_null(g_desc->summary);
  const char *keys[] = {
      "d", "margin", "inputs", "label_noise", "max_attempts", "probe_samples", "cluster_threshold"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const hcl_param_desc *p = g_desc->params;
    while (p->key && strcmp(p->key, keys[i])) p++;
    if (!p->key) fail_msg("parameter %s not declared", keys[i]);
    assert_non_null(p->help);
    assert_true(strlen(p->help) > 10);
    assert_non_null(p->def);
  }
  uint64_t seed = 1;
  void *self = NULL;
  make_ok((const char *[]){"d=17", NULL}, 1, &seed, 0, 16, &self);
  hcl_target_info info = {.struct_size = sizeof info};
  assert_int_equal(g_vt->info(self, &info), HCL_OK);
  assert_int_equal(info.x.rank, 1);
  assert_int_equal(info.x.dims[0], 17);
  assert_int_equal(info.y_dim, 1);
  assert_int_equal(info.task, HCL_TASK_BINARY);
  /* defaults: margin 0.1 on Gaussian inputs, cap from erfc */
  assert_string_equal(note_of("linear_teacher.inputs"), "gaussian");
  double p = erfc(0.1 / sqrt(2.0));
  char want[32];
  snprintf(want, sizeof want, "%u", (unsigned)ceil(log(1e-30) / log(1 - p)));
  assert_string_equal(note_of("linear_teacher.max_attempts"), want);
  hcl_buf x = alloc_f(17), out = alloc_f(1);
  assert_int_equal(g_vt->eval(self, "hstar", x, 1, out), HCL_ERR_UNSUPPORTED);
  hcl_buf_free(g_ctx, &x);
  hcl_buf_free(g_ctx, &out);
  g_vt->destroy(self);
}

/* w* = the host reference bit for bit, unit norm, own per replica, and its
 * direction uniform (first and second moments over many replicas). */
static void test_teacher(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 200, d = 3;
  uint64_t seeds[200];
  for (size_t r = 0; r < R; r++) seeds[r] = 1000 + 7 * r;
  void *self = NULL;
  make_ok((const char *[]){"d=3", NULL}, R, seeds, 0, 8, &self);
  float w[600], ref[3];
  device_wstar(self, R, d, w);
  double m1[3] = {0}, m2[3] = {0};
  for (size_t r = 0; r < R; r++) {
    ref_wstar(seeds[r], d, ref);
    double ss = 0;
    for (size_t j = 0; j < d; j++) {
      assert_true(same_bits(w[r * d + j], ref[j]));
      ss += (double)w[r * d + j] * w[r * d + j];
      m1[j] += w[r * d + j] / (double)R;
      m2[j] += (double)w[r * d + j] * w[r * d + j] / (double)R;
    }
    if (fabs(sqrt(ss) - 1.0) > 1e-6) fail_msg("|w*| = %.9g for replica %zu", sqrt(ss), r);
  }
  for (size_t j = 0; j < d; j++) {
    /* uniform on S^2: E w_j = 0, E w_j^2 = 1/3, Var w_j^2 = 1/5 - 1/9 */
    assert_true(fabs(m1[j]) < 5 * sqrt(1.0 / 3.0 / R));
    assert_true(fabs(m2[j] - 1.0 / 3.0) < 5 * sqrt((0.2 - 1.0 / 9.0) / R));
  }
  g_vt->destroy(self);
  /* larger d, two replicas: unit norm and different teachers */
  const uint64_t s2[2] = {5, 6};
  make_ok((const char *[]){"d=200", NULL}, 2, s2, 0, 8, &self);
  float *w2 = malloc(2 * 200 * sizeof *w2), *r2 = malloc(200 * sizeof *r2);
  device_wstar(self, 2, 200, w2);
  for (size_t r = 0; r < 2; r++) {
    ref_wstar(s2[r], 200, r2);
    assert_memory_equal(w2 + r * 200, r2, 200 * sizeof *r2);
  }
  assert_true(memcmp(w2, w2 + 200, 200 * sizeof *w2) != 0);
  free(w2);
  free(r2);
  g_vt->destroy(self);
}

/* Device samples = host reference for both laws, label flips, two replicas,
 * several splits of a range, the probe stream, the train wrap. */
static void test_samples_match_reference(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t d = 7, R = 2, N = 1500;
  const uint64_t seeds[2] = {7, 0x0123456789abcdefULL};
  float *x = malloc(R * N * d * sizeof *x), *y = malloc(R * N * sizeof *y);
  float *x2 = malloc(R * N * d * sizeof *x2), *y2 = malloc(R * N * sizeof *y2);
  float w[2 * 7];
  for (int ball = 0; ball < 2; ball++) {
    void *self = NULL;
    const char *kv[] = {"d=7", ball ? "inputs=ball" : "inputs=gaussian",
                        ball ? "margin=0.1" : "margin=0.3", "label_noise=0.2", NULL};
    make_ok(kv, R, seeds, 0, N, &self);
    for (size_t r = 0; r < R; r++) ref_wstar(seeds[r], d, w + r * d);
    uint32_t attempts = (uint32_t)atoi(note_of("linear_teacher.max_attempts"));
    assert_true(attempts > 10 && attempts < 200);
    ref_gen g = {
        .d = d, .ball = ball, .gamma = ball ? 0.1 : 0.3, .noise = 0.2, .attempts = attempts};
    draw(self, R, d, HCL_STREAM_TEST, 0, N, x, y);
    check_against_ref(&g, w, seeds, R, HCL_STREAM_TEST, 0, N, x, y, NULL);
    const size_t cuts[][2] = {{0, 700}, {700, 1}, {701, 500}, {1201, 299}};
    for (size_t c = 0; c < 4; c++) {
      size_t a = cuts[c][0], m = cuts[c][1];
      draw(self, R, d, HCL_STREAM_TEST, a, m, x2, y2);
      for (size_t r = 0; r < R; r++) {
        assert_memory_equal(x2 + r * m * d, x + (r * N + a) * d, m * d * sizeof *x);
        assert_memory_equal(y2 + r * m, y + r * N + a, m * sizeof *y);
      }
    }
    size_t diff = 0;
    for (size_t i = 0; i < N * d; i++) diff += !same_bits(x[i], x[N * d + i]);
    assert_true(diff > N * d / 2); /* replicas have their own draws */
    draw(self, R, d, HCL_STREAM_PROBE, 0, 300, x2, y2);
    check_against_ref(&g, w, seeds, R, HCL_STREAM_PROBE, 0, 300, x2, y2, NULL);
    diff = 0;
    for (size_t i = 0; i < 300 * d; i++) diff += !same_bits(x[i], x2[i]);
    assert_true(diff > 300 * d / 2); /* streams are disjoint */
    g_vt->destroy(self);
    /* a finite training set: index i is sample i mod P */
    const uint64_t P = 100;
    make_ok(kv, R, seeds, P, N, &self);
    g.P = P;
    draw(self, R, d, HCL_STREAM_TRAIN, 0, 250, x, y);
    check_against_ref(&g, w, seeds, R, HCL_STREAM_TRAIN, 0, 250, x, y, NULL);
    for (size_t r = 0; r < R; r++)
      for (size_t i = P; i < 250; i++) {
        assert_memory_equal(x + (r * 250 + i) * d, x + (r * 250 + i % P) * d, d * sizeof *x);
        assert_true(same_bits(y[r * 250 + i], y[r * 250 + i % P]));
      }
    draw(self, R, d, HCL_STREAM_TRAIN, 1037, 5, x2, y2); /* rows 37..41 */
    for (size_t r = 0; r < R; r++)
      assert_memory_equal(x2 + r * 5 * d, x + (r * 250 + 37) * d, 5 * d * sizeof *x);
    draw(self, R, d, HCL_STREAM_TEST, 0, 250, x2, y2); /* the test stream does not wrap */
    assert_true(memcmp(x2 + 137 * d, x2 + 37 * d, d * sizeof *x) != 0);
    g_vt->destroy(self);
  }
  free(x);
  free(y);
  free(x2);
  free(y2);
}

/* |w*.x| >= gamma for every sample; y = sign(w*.x) without noise; flips at
 * the configured rate; the laws after rejection: Gaussian P(|t| >= 1.5 |
 * |t| >= 0.5) and the orthogonal part N(0, 1); ball |x| <= 1, closed forms
 * for d = 3 (t has density (3/4)(1 - t^2)) and, without margin, |x|^d ~ U(0, 1). */
static void test_margin_labels_laws(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t N = 20000;
  const uint64_t seed = 77;
  float *x = malloc(N * 10 * sizeof *x), *y = malloc(N * sizeof *y), *mg = malloc(N * sizeof *mg);
  float w[10];
  /* Gaussian, d = 10, gamma = 0.5, no noise */
  void *self = NULL;
  make_ok((const char *[]){"d=10", "margin=0.5", NULL}, 1, &seed, 0, N, &self);
  ref_wstar(seed, 10, w);
  draw(self, 1, 10, HCL_STREAM_TRAIN, 0, N, x, y);
  device_margin(self, 1, 10, N, x, mg);
  size_t far = 0;
  double su = 0, su2 = 0;
  double u[10]; /* e_1 minus its w* part, normalised */
  for (size_t j = 0; j < 10; j++) u[j] = (j == 0) - w[0] * (double)w[j];
  double un = 0;
  for (size_t j = 0; j < 10; j++) un += u[j] * u[j];
  for (size_t j = 0; j < 10; j++) u[j] /= sqrt(un);
  for (size_t i = 0; i < N; i++) {
    double t = 0, o = 0;
    for (size_t j = 0; j < 10; j++) {
      t += (double)w[j] * x[i * 10 + j];
      o += u[j] * x[i * 10 + j];
    }
    assert_true(fabsf(mg[i]) >= 0.5f);
    assert_true(fabs(t) >= 0.5 - 1e-5);
    assert_true(y[i] == (mg[i] >= 0 ? 1.0f : -1.0f));
    assert_true(same_bits(mg[i], ref_dot(w, x + i * 10, 10)));
    far += fabs(t) >= 1.5;
    su += o;
    su2 += o * o;
  }
  double pf = erfc(1.5 / sqrt(2.0)) / erfc(0.5 / sqrt(2.0));
  assert_true(fabs((double)far / N - pf) < 5 * sqrt(pf * (1 - pf) / N));
  assert_true(fabs(su / N) < 5 / sqrt((double)N));
  assert_true(fabs(su2 / N - 1) < 5 * sqrt(2.0 / N));
  g_vt->destroy(self);
  /* label flips: rate 0.25 against sign(w*.x), the same inputs as above */
  float *yn = malloc(N * sizeof *yn), *x2 = malloc(N * 10 * sizeof *x2);
  make_ok((const char *[]){"d=10", "margin=0.5", "label_noise=0.25", NULL}, 1, &seed, 0, N, &self);
  draw(self, 1, 10, HCL_STREAM_TRAIN, 0, N, x2, yn);
  assert_memory_equal(x2, x, N * 10 * sizeof *x); /* flips have their own stream */
  size_t flips = 0, flips_pos = 0, pos = 0;
  for (size_t i = 0; i < N; i++) {
    assert_true(yn[i] == 1.0f || yn[i] == -1.0f);
    flips += yn[i] != y[i];
    pos += y[i] > 0;
    flips_pos += yn[i] != y[i] && y[i] > 0;
  }
  assert_true(fabs((double)flips / N - 0.25) < 5 * sqrt(0.25 * 0.75 / N));
  assert_true(fabs((double)flips_pos / pos - 0.25) < 5 * sqrt(0.25 * 0.75 / pos));
  g_vt->destroy(self);
  free(yn);
  free(x2);
  /* ball, d = 3, gamma = 0.2 */
  make_ok((const char *[]){"d=3", "inputs=ball", "margin=0.2", NULL}, 1, &seed, 0, N, &self);
  ref_wstar(seed, 3, w);
  draw(self, 1, 3, HCL_STREAM_TEST, 0, N, x, y);
  device_margin(self, 1, 3, N, x, mg);
  far = 0;
  for (size_t i = 0; i < N; i++) {
    double nn = 0;
    for (size_t j = 0; j < 3; j++) nn += (double)x[i * 3 + j] * x[i * 3 + j];
    assert_true(sqrt(nn) <= 1.0 + 1e-6);
    assert_true(fabsf(mg[i]) >= 0.2f);
    assert_true(y[i] == (mg[i] >= 0 ? 1.0f : -1.0f));
    far += fabsf(mg[i]) >= 0.5f;
  }
  /* P(|t| >= a) = 1 - (3a - a^3)/2 for d = 3 */
  double pa = 1 - (1.5 - 0.125) / 2, pg = 1 - (0.6 - 0.008) / 2;
  pf = pa / pg;
  assert_true(fabs((double)far / N - pf) < 5 * sqrt(pf * (1 - pf) / N));
  assert_true(fabs(lt_accept_prob(LT_IN_BALL, 3, 0.2) - pg) < 1e-9);
  assert_true(fabs(lt_accept_prob(LT_IN_BALL, 3, 0.5) - pa) < 1e-9);
  g_vt->destroy(self);
  /* ball without margin: uniform in the ball of R^5 */
  make_ok((const char *[]){"d=5", "inputs=ball", "margin=0", NULL}, 1, &seed, 0, N, &self);
  assert_string_equal(note_of("linear_teacher.max_attempts"), "1");
  draw(self, 1, 5, HCL_STREAM_TEST, 0, N, x, y);
  double s = 0, s2 = 0, c2 = 0;
  for (size_t i = 0; i < N; i++) {
    double nn = 0;
    for (size_t j = 0; j < 5; j++) nn += (double)x[i * 5 + j] * x[i * 5 + j];
    double v = pow(sqrt(nn), 5); /* U(0, 1) */
    s += v;
    s2 += v * v;
    c2 += (double)x[i * 5 + 2] * x[i * 5 + 2]; /* E x_j^2 = 1/(d+2) */
  }
  assert_true(fabs(s / N - 0.5) < 5 * sqrt(1.0 / 12 / N));
  assert_true(fabs(s2 / N - 1.0 / 3.0) < 5 * sqrt((0.2 - 1.0 / 9.0) / N));
  assert_true(fabs(c2 / N - 1.0 / 7.0) < 0.01);
  g_vt->destroy(self);
  free(x);
  free(y);
  free(mg);
}

/* The attempt cap: with max_attempts small the device keeps the last
 * attempt exactly like the reference and counts the capped draws; the
 * automatic cap; margins no cap can serve fail clearly. */
static void test_cap_and_errors(void **state) {
  (void)state;
  /* automatic caps (pure host) */
  assert_int_equal(lt_auto_attempts(1.0), 1);
  assert_int_equal(lt_auto_attempts(0.5), 100); /* 2^-100 <= 1e-30 < 2^-99 */
  assert_int_equal(lt_auto_attempts(1e-12), 0); /* needs ~7e13 attempts */
  assert_int_equal(lt_auto_attempts(0.0), 0);
  assert_true(fabs(lt_accept_prob(LT_IN_GAUSSIAN, 9, 1.0) - 0.31731050786291410) < 1e-12);
  assert_true(lt_accept_prob(LT_IN_BALL, 9, 1.0) == 0.0);
  assert_true(lt_accept_prob(LT_IN_BALL, 9, 0.0) == 1.0);
  /* ball, large d: t ~ N(0, 1/(d+2)) nearly; P(|t| >= 0.1) at d = 398 near erfc(2/sqrt 2) */
  assert_true(fabs(lt_accept_prob(LT_IN_BALL, 398, 0.1) - erfc(2 / sqrt(2.0))) < 3e-3);

  NEED_DEVICE();
  const size_t d = 4, R = 2, N = 3000;
  const uint64_t seeds[2] = {11, 12};
  float w[8];
  for (size_t r = 0; r < R; r++) ref_wstar(seeds[r], d, w + r * d);
  float *x = malloc(R * N * d * sizeof *x), *y = malloc(R * N * sizeof *y);
  for (uint32_t T = 1; T <= 3; T += 2) {
    char cap[32];
    snprintf(cap, sizeof cap, "max_attempts=%u", T);
    void *self = NULL;
    make_ok((const char *[]){"d=4", "margin=1.0", cap, NULL}, R, seeds, 0, N, &self);
    ref_gen g = {.d = d, .gamma = 1.0, .attempts = T};
    draw(self, R, d, HCL_STREAM_TEST, 0, N, x, y);
    uint32_t want[2], got[2];
    check_against_ref(&g, w, seeds, R, HCL_STREAM_TEST, 0, N, x, y, want);
    lt_target *t = self;
    assert_int_equal(lt_host_read_capped(t, got), 0);
    for (size_t r = 0; r < R; r++) {
      assert_int_equal(got[r], want[r]);
      double q = pow(1 - 0.3173105078629141, T); /* P(capped) */
      assert_true(fabs((double)want[r] / N - q) < 5 * sqrt(q * (1 - q) / N));
    }
    g_vt->destroy(self);
  }
  /* the automatic cap is never reached in practice: counter stays 0 */
  void *self = NULL;
  make_ok((const char *[]){"d=4", "margin=1.0", NULL}, R, seeds, 0, N, &self);
  draw(self, R, d, HCL_STREAM_TEST, 0, N, x, y);
  uint32_t got[2];
  assert_int_equal(lt_host_read_capped(self, got), 0);
  assert_int_equal(got[0] + got[1], 0);
  g_vt->destroy(self);
  free(x);
  free(y);
  /* margins no cap can serve */
  const struct {
    const char *const *kv;
    const char *needle;
  } bad[] = {
      {(const char *[]){"d=10", "margin=8", NULL}, "lower the margin"},
      {(const char *[]){"d=10", "inputs=ball", "margin=1", NULL}, "lower the margin"},
      {(const char *[]){"d=5000", "inputs=ball", "margin=0.3", NULL}, "d = 5000"},
  };
  for (size_t c = 0; c < sizeof bad / sizeof *bad; c++) {
    uint64_t seed = 1;
    self = NULL;
    assert_int_equal(make(bad[c].kv, 1, &seed, 0, 8, &self), HCL_ERR_PARAM);
    assert_null(self);
    if (!strstr(hcl_errmsg(g_ctx), bad[c].needle))
      fail_msg("message '%s' lacks '%s'", hcl_errmsg(g_ctx), bad[c].needle);
  }
  /* the schema itself rejects out-of-range values */
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.path, sizeof cfg.path, "test");
  assert_int_equal(hcl_config_set(g_ctx, &cfg, "target.label_noise=1.5"), HCL_OK);
  hcl_params p;
  assert_int_not_equal(hcl_params_resolve(g_ctx, &cfg, "target", g_desc->params,
                                          (const char *[]){"plugin", NULL}, &p),
                       HCL_OK);
  hcl_config_free(&cfg);
}

/* ---- the exact identity of SPEC 1.6, in float64 ---------------------------- */

static uint64_t g_rs = 0x9E3779B97F4A7C15ULL;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (g_rs += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}
static double nrand(void) {
  double u = urand(), v = urand();
  return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

static double act_d(int leaky, double z) { return z >= 0 ? z : leaky ? 0.1 * z : 0.0; }
static int sgn(double z) { return (z > 0) - (z < 0); }

/* f(x) = sum_i v_i act(w_i.x + b_i), W [h, d], b [h] or NULL, unit by unit. */
static double net_f(int leaky, const double *W, const double *b, const double *v, size_t h,
                    size_t d, const double *x) {
  double f = 0;
  for (size_t i = 0; i < h; i++) {
    double z = b ? b[i] : 0;
    for (size_t j = 0; j < d; j++) z += W[i * d + j] * x[j];
    f += v[i] * act_d(leaky, z);
  }
  return f;
}

/* Mismatches of sign f(x) against sign((w+ - w-).x + b+ - b-) over n random
 * x (x with |hyperplane| < 1e-9 skipped). variant: 0 the +-v net with
 * shared weights, 1 ReLU instead of leaky ReLU, 2 one unit moved off its
 * cluster, 3 k+1 units of +v against k of -v. */
static size_t identity_mismatches(int variant, int with_bias, size_t n_nets, size_t n_x) {
  size_t bad = 0;
  for (size_t net = 0; net < n_nets; net++) {
    size_t k = 1 + (size_t)(urand() * 5), d = 1 + (size_t)(urand() * 12);
    size_t hp = variant == 3 ? k + 1 : k, h = hp + k;
    double *W = malloc(h * d * sizeof *W), *wp = malloc(d * sizeof *wp),
           *wm = malloc(d * sizeof *wm);
    double b[12], v[12], x[13], bp = with_bias ? nrand() : 0, bm = with_bias ? nrand() : 0;
    double vv = 1 / sqrt(2.0 * k) * (0.5 + urand());
    for (size_t j = 0; j < d; j++) {
      wp[j] = nrand();
      wm[j] = nrand();
    }
    for (size_t i = 0; i < h; i++) {
      int pos = i < hp;
      for (size_t j = 0; j < d; j++) W[i * d + j] = pos ? wp[j] : wm[j];
      b[i] = pos ? bp : bm;
      v[i] = pos ? vv : -vv;
    }
    if (variant == 2)
      for (size_t j = 0; j < d; j++) W[j] += 0.5 * nrand();
    for (size_t s = 0; s < n_x; s++) {
      double hyp = bp - bm;
      for (size_t j = 0; j < d; j++) {
        x[j] = 3 * nrand();
        hyp += (wp[j] - wm[j]) * x[j];
      }
      if (fabs(hyp) < 1e-9) continue;
      double f = net_f(variant != 1, W, with_bias ? b : NULL, v, h, d, x);
      bad += sgn(f) != sgn(hyp);
    }
    free(W);
    free(wp);
    free(wm);
  }
  return bad;
}

static void test_sign_identity(void **state) {
  (void)state;
  /* the identity: leaky ReLU, k units at +v sharing w+, k at -v sharing w- */
  assert_int_equal(identity_mismatches(0, 0, 300, 2000), 0);
  assert_int_equal(identity_mismatches(0, 1, 300, 2000), 0); /* with shared biases too */
  /* each hypothesis matters: the identity fails without it */
  assert_true(identity_mismatches(1, 0, 100, 2000) > 1000); /* ReLU: f = 0 when both are off */
  assert_true(identity_mismatches(2, 0, 100, 2000) > 100);  /* a unit off its cluster */
  assert_true(identity_mismatches(3, 0, 100, 2000) > 100);  /* unequal group sizes */
}

/* ---- the probe's math on hand-built nets ---------------------------------- */

static void test_probe_layout(void **state) {
  (void)state;
  const size_t d = 5, h = 4;
  lt_layout L;
  /* regular_net: layer1.weight [h, d], readout.weight [1, h] */
  hcl_block rn[] = {{"layer1.weight", 0, h, d, 0, 1}, {"readout.weight", h * d, 1, h, 1, 0}};
  assert_int_equal(lt_find_layout(rn, 2, d, &L), 0);
  assert_int_equal(L.w1, 0);
  assert_int_equal(L.readout, 1);
  assert_int_equal(L.bias, -1);
  assert_int_equal(L.h, h);
  /* with biases; readout by name even when listed before a [1, h] look-alike */
  hcl_block rb[] = {{"layer1.weight", 0, h, d, 0, 1},
                    {"layer1.bias", 20, h, 1, 0, 1},
                    {"readout.weight", 24, 1, h, 1, 1},
                    {"readout.bias", 28, 1, 1, 1, 1}};
  assert_int_equal(lt_find_layout(rb, 4, d, &L), 0);
  assert_int_equal(L.bias, 1);
  assert_int_equal(L.readout, 2);
  /* resnet depth 2 (fc0 + out) */
  hcl_block r2[] = {{"fc0.weight", 0, h, d, 0, 1},
                    {"fc0.bias", 20, h, 1, 0, 1},
                    {"out.weight", 24, 1, h, 1, 1},
                    {"out.bias", 28, 1, 1, 1, 1}};
  assert_int_equal(lt_find_layout(r2, 4, d, &L), 0);
  assert_int_equal(L.w1, 0);
  assert_int_equal(L.bias, 1);
  assert_int_equal(L.readout, 2);
  /* one hidden unit: the [1, 1] bias must not pass for the readout */
  hcl_block r1[] = {{"fc0.weight", 0, 1, d, 0, 1},
                    {"fc0.bias", 5, 1, 1, 0, 1},
                    {"out.weight", 6, 1, 1, 1, 1},
                    {"out.bias", 7, 1, 1, 1, 1}};
  assert_int_equal(lt_find_layout(r1, 4, d, &L), 0);
  assert_int_equal(L.readout, 2);
  assert_int_equal(L.bias, 1);
  /* deeper: resnet depth 3 has a [h, h] block */
  hcl_block r3[] = {{"fc0.weight", 0, h, d, 0, 1},     {"fc0.bias", 20, h, 1, 0, 1},
                    {"block1.weight", 24, h, h, 1, 1}, {"block1.bias", 40, h, 1, 1, 1},
                    {"out.weight", 44, 1, h, 2, 1},    {"out.bias", 48, 1, 1, 2, 1}};
  assert_int_equal(lt_find_layout(r3, 6, d, &L), -1);
  /* no block over the inputs, or no readout of h floats */
  hcl_block nd[] = {{"a.weight", 0, h, d + 1, 0, 1}, {"readout.weight", 24, 1, h, 1, 1}};
  assert_int_equal(lt_find_layout(nd, 2, d, &L), -1);
  hcl_block nr[] = {{"layer1.weight", 0, h, d, 0, 1}, {"readout.weight", 20, 1, h + 1, 1, 1}};
  assert_int_equal(lt_find_layout(nr, 2, d, &L), -1);
}

static void test_probe_math(void **state) {
  (void)state;
  lt_cluster_stats st;
  double dir[4], off;
  /* + group: e1, e2 (mean (1/2, 1/2), cos 1/sqrt 2 each); - group: (0, -2) */
  const float W[] = {1, 0, 0, 1, 0, -2, 5, 5};
  const float v[] = {1, 0.5f, -1, 0}; /* the last unit has v = 0: in no group */
  const float ws[] = {0, 1};
  assert_int_equal(lt_cluster(W, NULL, v, 4, 2, 0.99, ws, &st, dir, &off), 0);
  assert_int_equal(st.n_pos, 2);
  assert_int_equal(st.n_neg, 1);
  assert_true(fabs(st.cluster_cos - (sqrt(2.0) + 1) / 3) < 1e-12);
  assert_true(st.clusters == 3); /* e1, e2 apart; the - unit alone */
  assert_true(dir[0] == 0.5 && dir[1] == 2.5);
  assert_true(off == 0.0);
  assert_true(fabs(st.direction_cos - 2.5 / sqrt(6.5)) < 1e-12);
  /* thresholds: cos(e1, e2) = 0 joins at thr <= 0 */
  assert_int_equal(lt_cluster(W, NULL, v, 4, 2, 0.0, ws, &st, dir, &off), 0);
  assert_true(st.clusters == 2);
  assert_int_equal(lt_cluster(W, NULL, v, 4, 2, 1e-9, ws, &st, dir, &off), 0);
  assert_true(st.clusters == 3);
  /* biases: offset = mean b over + minus mean b over - (v = 0 ignored) */
  const float b[] = {0.2f, 0.4f, -1, 100};
  assert_int_equal(lt_cluster(W, b, v, 4, 2, 0.99, NULL, &st, dir, &off), 0);
  assert_true(fabs(off - ((0.2f + 0.4f) / 2.0 + 1)) < 1e-7);
  assert_true(st.direction_cos == 0.0); /* no w* given */
  /* a clustered net: positive multiples of w+ at +v, copies of w- at -v */
  const float C[] = {1, 2, 3, 0, 2, 4, 6, 0, 0.5f, 1, 1.5f, 0, -1, 0, 1, 1, -1, 0, 1, 1};
  const float vc[] = {0.3f, 0.3f, 0.3f, -0.3f, -0.3f};
  const float wc[] = {1, 0, 0, 0};
  assert_int_equal(lt_cluster(C, NULL, vc, 5, 4, 0.99, wc, &st, dir, &off), 0);
  assert_true(fabs(st.cluster_cos - 1) < 1e-12);
  assert_true(st.clusters == 2);
  const double want[] = {7.0 / 6 + 1, 7.0 / 3, 3.5 - 1, -1}; /* mean(1,2,.5)*(1,2,3,0) - w- */
  for (size_t j = 0; j < 4; j++) assert_true(fabs(dir[j] - want[j]) < 1e-12);
  double nn = 0;
  for (size_t j = 0; j < 4; j++) nn += want[j] * want[j];
  assert_true(fabs(st.direction_cos - want[0] / sqrt(nn)) < 1e-12);
  /* one sign only: w- = 0, dir = w+; a zero row has cosine 0 and its own cluster */
  const float Z[] = {1, 1, 0, 0, 2, 2};
  const float vz[] = {1, 1, 1};
  assert_int_equal(lt_cluster(Z, NULL, vz, 3, 2, 0.99, NULL, &st, dir, &off), 0);
  assert_int_equal(st.n_neg, 0);
  assert_true(st.clusters == 2);
  assert_true(fabs(st.cluster_cos - 2.0 / 3) < 1e-12);
  assert_true(fabs(dir[0] - 1) < 1e-12 && fabs(dir[1] - 1) < 1e-12);
  /* no unit with v != 0 */
  const float v0[] = {0, 0, 0};
  assert_int_equal(lt_cluster(Z, NULL, v0, 3, 2, 0.99, NULL, &st, dir, &off), 0);
  assert_true(st.cluster_cos == 0 && st.clusters == 0 && dir[0] == 0);
}

/* ---- the probe through a fake trainer ------------------------------------- */

/* The fake model: a two-layer leaky-ReLU net f(x) = sum_i v_i act(w_i.x + b_i),
 * evaluated on the host in double from g_params (the same values as the
 * device parameters the probe reads): W [FK_H, d], b [FK_H], v [FK_H]. */
#define FK_H 4
static size_t g_d, g_np;
static float *g_params;

static double fake_f(const float *P, size_t d, const float *x) {
  double f = 0;
  for (size_t i = 0; i < FK_H; i++) {
    double z = P[FK_H * d + i];
    for (size_t j = 0; j < d; j++) z += (double)P[i * d + j] * x[j];
    f += (double)P[FK_H * d + FK_H + i] * act_d(1, z);
  }
  return f;
}

static size_t g_R;
static hcl_status fake_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  (void)self;
  (void)params;
  float *hx = malloc(g_R * n * g_d * sizeof *hx), *f = malloc(g_R * n * sizeof *f);
  hcl_status rc = hcl_buf_read(g_ctx, x, hx, g_R * n * g_d * sizeof *hx);
  for (size_t r = 0; r < g_R; r++)
    for (size_t i = 0; i < n; i++)
      f[r * n + i] = (float)fake_f(g_params + r * g_np, g_d, hx + (r * n + i) * g_d);
  if (rc == HCL_OK) rc = hcl_buf_write(g_ctx, out, f, g_R * n * sizeof *f);
  free(hx);
  free(f);
  return rc;
}

typedef struct probe_run {
  hcl_trainer tr;
  hcl_train_cfg cfg;
  hcl_model_vt mvt;
} probe_run;

/* Run the target's probe with a fake trainer on parameters g_params. */
static void run_probe(probe_run *pr, void *self, const uint64_t *seeds, size_t batch,
                      const hcl_block *blocks, size_t n_blocks, hcl_buf params) {
  memset(pr, 0, sizeof *pr);
  pr->cfg.replicas = (uint32_t)g_R;
  pr->cfg.seeds = seeds;
  pr->cfg.batch = pr->cfg.eval_batch = batch;
  pr->mvt.struct_size = sizeof pr->mvt;
  pr->mvt.forward = fake_forward;
  pr->tr.ctx = g_ctx;
  pr->tr.cfg = &pr->cfg;
  pr->tr.tvt = g_vt;
  pr->tr.target = self;
  pr->tr.mvt = &pr->mvt;
  pr->tr.params = params;
  pr->tr.n_params = g_np;
  pr->tr.blocks = blocks;
  pr->tr.n_blocks = n_blocks;
  hcl_probe p = {&pr->tr};
  if (g_vt->probe(self, &p) != HCL_OK) fail_msg("probe: %s", hcl_errmsg(g_ctx));
}

static double metric(const probe_run *pr, const char *name, size_t r) {
  for (size_t i = 0; i < pr->tr.m_n; i++)
    if (!strcmp(pr->tr.m_names[i], name)) return pr->tr.m_values[i * pr->cfg.replicas + r];
  fail_msg("probe metric %s missing", name);
  return 0;
}

static void probe_free(probe_run *pr) {
  for (size_t i = 0; i < pr->tr.m_n; i++) free(pr->tr.m_names[i]);
  free(pr->tr.m_names);
  free(pr->tr.m_values);
}

/* Host recount of both agreements on the probe inputs x [R, N, d]: the
 * model's f rounded to float as the device sees it, the hyperplane with
 * float dir/offset summed like the kernel, w*.x like the kernel. */
static void host_agreements(const float *x, size_t N, const float *wstar, size_t r, double *lin,
                            double *tea) {
  const float *P = g_params + r * g_np;
  lt_cluster_stats st;
  double dir[16], off;
  assert_int_equal(
      lt_cluster(P, P + FK_H * g_d, P + FK_H * g_d + FK_H, FK_H, g_d, 0.99, wstar, &st, dir, &off),
      0);
  float df[16];
  for (size_t j = 0; j < g_d; j++) df[j] = (float)dir[j];
  size_t a = 0, b = 0;
  for (size_t i = 0; i < N; i++) {
    const float *xi = x + (r * N + i) * g_d;
    int sf = (float)fake_f(P, g_d, xi) >= 0.0f;
    a += sf == (ref_dot(df, xi, g_d) + (float)off >= 0.0f);
    b += sf == (ref_dot(wstar, xi, g_d) >= 0.0f);
  }
  *lin = (double)a / N;
  *tea = (double)b / N;
}

static void test_probe_fake_trainer(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, d = 6, N = 3000, batch = 1000;
  const uint64_t seeds[2] = {31, 32};
  g_R = R;
  g_d = d;
  g_np = FK_H * d + 2 * FK_H;
  void *self = NULL;
  make_ok((const char *[]){"d=6", "probe_samples=3000", NULL}, R, seeds, 0, batch, &self);
  float wstar[12];
  device_wstar(self, R, d, wstar);
  g_params = calloc(R * g_np, sizeof *g_params);
  hcl_block blocks[] = {{"layer1.weight", 0, FK_H, d, 0, 1},
                        {"readout.weight", FK_H * d + FK_H, 1, FK_H, 1, 0}};
  hcl_buf params = alloc_f(R * g_np);
  float *x = malloc(R * N * d * sizeof *x), *y = malloc(R * N * sizeof *y);
  draw(self, R, d, HCL_STREAM_PROBE, 0, N, x, y); /* the probe's inputs */

  /* 1. clustered nets without biases: replica 0 with w+ - w- = 2 w*,
   *    replica 1 with w+ - w- = q, a fixed direction away from w*; both
   *    share a common part a */
  const float a[6] = {0.3f, -0.2f, 0.1f, 0.0f, 0.5f, -0.4f};
  const float q[6] = {1.0f, -1.0f, 0.5f, 0.25f, 0.0f, 2.0f};
  for (size_t r = 0; r < R; r++) {
    float *P = g_params + r * g_np;
    for (size_t i = 0; i < FK_H; i++) {
      float s = i < FK_H / 2 ? 1.0f : -1.0f;
      for (size_t j = 0; j < d; j++)
        P[i * d + j] = (r == 0 ? s * wstar[j] : s * 0.5f * q[j]) + a[j];
      P[FK_H * d + FK_H + i] = s * 0.5f; /* v = 1/sqrt(2k), k = 2 */
    }
  }
  assert_int_equal(hcl_buf_write(g_ctx, params, g_params, R * g_np * sizeof(float)), HCL_OK);
  probe_run pr;
  run_probe(&pr, self, seeds, batch, blocks, 2, params);
  assert_int_equal(pr.tr.m_n, 5);
  for (size_t r = 0; r < R; r++) {
    assert_true(fabs(metric(&pr, "cluster_cos", r) - 1) < 1e-9);
    assert_true(metric(&pr, "clusters", r) == 2);
    double lin, tea;
    host_agreements(x, N, wstar + r * d, r, &lin, &tea);
    assert_true(metric(&pr, "linear_agreement", r) == lin);
    assert_true(metric(&pr, "teacher_agreement", r) == tea);
    assert_true(lin >= 1.0 - 2.0 / N); /* the identity (float rounding aside) */
  }
  /* replica 0 is the teacher itself: exact agreement, w+ - w- along w* */
  assert_true(metric(&pr, "linear_agreement", 0) == 1.0);
  assert_true(metric(&pr, "teacher_agreement", 0) == 1.0);
  assert_true(fabs(metric(&pr, "direction_cos", 0) - 1) < 1e-6);
  /* replica 1 agrees with w* as often as sign(q.x) does */
  double qw = 0, qq = 0, ww = 0;
  for (size_t j = 0; j < d; j++) {
    qw += (double)q[j] * wstar[d + j];
    qq += (double)q[j] * q[j];
    ww += (double)wstar[d + j] * wstar[d + j];
  }
  assert_true(fabs(metric(&pr, "direction_cos", 1) - qw / sqrt(qq * ww)) < 1e-6);
  assert_true(metric(&pr, "teacher_agreement", 1) < 0.99);
  probe_free(&pr);
  g_vt->destroy(self);

  /* 2. random, unclustered nets with first-layer biases, on inputs without
   *    margin (w*.x near 0 too): every metric equals the host recount */
  make_ok((const char *[]){"d=6", "probe_samples=3000", "margin=0", NULL}, R, seeds, 0, batch,
          &self);
  draw(self, R, d, HCL_STREAM_PROBE, 0, N, x, y);
  hcl_block with_bias[] = {{"layer1.weight", 0, FK_H, d, 0, 1},
                           {"layer1.bias", FK_H * d, FK_H, 1, 0, 1},
                           {"readout.weight", FK_H * d + FK_H, 1, FK_H, 1, 0}};
  for (size_t i = 0; i < R * g_np; i++) g_params[i] = (float)nrand();
  assert_int_equal(hcl_buf_write(g_ctx, params, g_params, R * g_np * sizeof(float)), HCL_OK);
  run_probe(&pr, self, seeds, batch, with_bias, 3, params);
  for (size_t r = 0; r < R; r++) {
    const float *P = g_params + r * g_np;
    lt_cluster_stats st;
    double dir[6], off;
    assert_int_equal(lt_cluster(P, P + FK_H * d, P + FK_H * d + FK_H, FK_H, d, 0.99, wstar + r * d,
                                &st, dir, &off),
                     0);
    assert_true(off != 0.0);
    assert_true(metric(&pr, "cluster_cos", r) == st.cluster_cos);
    assert_true(metric(&pr, "clusters", r) == st.clusters);
    assert_true(metric(&pr, "direction_cos", r) == st.direction_cos);
    assert_true(st.cluster_cos < 0.95);
    double lin, tea;
    host_agreements(x, N, wstar + r * d, r, &lin, &tea);
    assert_true(metric(&pr, "linear_agreement", r) == lin);
    assert_true(metric(&pr, "teacher_agreement", r) == tea);
    assert_true(lin < 1.0 && tea < 1.0);
  }
  /* a fixed evaluation set: the same values again */
  probe_run pr2;
  run_probe(&pr2, self, seeds, batch, with_bias, 3, params);
  for (size_t i = 0; i < pr.tr.m_n * R; i++) assert_true(pr.tr.m_values[i] == pr2.tr.m_values[i]);
  probe_free(&pr);
  probe_free(&pr2);

  /* 3. not a two-layer net: nothing reported */
  hcl_block deep[] = {{"layer1.weight", 0, 2, d, 0, 1},
                      {"layer2.weight", 12, 2, 2, 1, 1},
                      {"readout.weight", 16, 1, 2, 2, 0}};
  run_probe(&pr, self, seeds, batch, deep, 3, params);
  assert_int_equal(pr.tr.m_n, 0);
  probe_free(&pr);

  hcl_buf_free(g_ctx, &params);
  free(g_params);
  g_params = NULL;
  free(x);
  free(y);
  g_vt->destroy(self);
}

/* ---- a real run: hcl_run with a two-layer leaky-ReLU resnet (depth 2) ----- */

/* The last metrics line of replica 0. */
static const char *last_line(const char *text) {
  const char *last = NULL;
  for (const char *p = text; (p = strstr(p, "\"replica\":0,")); p++) last = p;
  return last;
}

static void test_end_to_end(void **state) {
  (void)state;
  NEED_DEVICE();
  const char *cfg = "[run]\nseed = 3\n"
                    "[target]\nplugin = linear_teacher\nd = 10\nprobe_samples = 2000\n"
                    "[model]\nplugin = resnet\nwidth = 8\ndepth = 2\nactivation = leaky_relu\n"
                    "[train]\nsteps = 1500\nbatch = 32\nlr = 0.1\ntrain_size = 0\n"
                    "[eval]\nevery = 500\ntest_size = 2000\n";
  const char *path = hcl_test_write_temp("lt_train.ini", cfg);
  hcl_run_options o = {.config_path = path,
                       .device = "cpu",
                       .out_dir = hcl_test_tmpdir(),
                       .plugin_path = HCL_TEST_PLUGIN_DIR};
  char err[4096], file[1200];
  if (hcl_run(&o, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  snprintf(file, sizeof file, "%s/metrics.jsonl", o.run_dir);
  char *m = hcl_test_read_file(file);
  assert_non_null(m);
  const char *last = last_line(m);
  assert_non_null(last);
  double err_test = 1, tea = 0, lin = 0, ccos = 0, clu = 0, dcos = 0;
  assert_true(hcl_test_json_num(last, "test_error", &err_test));
  assert_true(hcl_test_json_num(last, "teacher_agreement", &tea));
  assert_true(hcl_test_json_num(last, "linear_agreement", &lin));
  assert_true(hcl_test_json_num(last, "cluster_cos", &ccos));
  assert_true(hcl_test_json_num(last, "clusters", &clu));
  assert_true(hcl_test_json_num(last, "direction_cos", &dcos));
  /* learned: few test errors, the net agrees with w* and points along it */
  if (!(err_test < 0.1 && tea > 0.9 && dcos > 0.8))
    fail_msg("after training: test_error %g, teacher_agreement %g, direction_cos %g", err_test, tea,
             dcos);
  fprintf(stderr,
          "end to end: test_error %.4g teacher_agreement %.4g linear_agreement %.4g "
          "cluster_cos %.4g clusters %g direction_cos %.4g\n",
          err_test, tea, lin, ccos, clu, dcos);
  assert_true(lin >= 0 && lin <= 1 && ccos >= -1 && ccos <= 1 && clu >= 1 && clu <= 8);
  free(m);
  snprintf(file, sizeof file, "%s/manifest.json", o.run_dir);
  m = hcl_test_read_file(file);
  assert_non_null(m);
  assert_non_null(strstr(m, "linear_teacher.max_attempts"));
  assert_null(strstr(m, "linear_teacher.capped_draws"));
  free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_descriptor),
      cmocka_unit_test(test_teacher),
      cmocka_unit_test(test_samples_match_reference),
      cmocka_unit_test(test_margin_labels_laws),
      cmocka_unit_test(test_cap_and_errors),
      cmocka_unit_test(test_sign_identity),
      cmocka_unit_test(test_probe_layout),
      cmocka_unit_test(test_probe_math),
      cmocka_unit_test(test_probe_fake_trainer),
      cmocka_unit_test(test_end_to_end),
  };
  return cmocka_run_group_tests(tests, setup_group, NULL);
}
