/* staircase target plugin (SPEC 1.1), loaded through the runtime loader:
 * samples bit for bit against a host reference of the draw layout (three
 * input laws, label noise, two replicas, batch splits, train wrap-around);
 * exact Fourier coefficients by a full Walsh-Hadamard transform of the
 * device's f over {-1,+1}^n; the staircase-property check; parameter
 * errors; the Fourier probe on a model with known coefficients, against the
 * exact values (sampling error) and a host recomputation on the same inputs. */
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

/* The plugin's host-side function code (parsing, exact coefficients, the
 * staircase check), compiled in so it can be checked directly. */
#include "../targets/staircase/function.c"

static hcl_ctx *g_ctx;
static const hcl_plugin_desc *g_desc;
static const hcl_target_vt *g_vt;

#define STREAM_X 0x5354410000000000ULL
#define STREAM_NOISE 0x5354410100000000ULL

static int setup_group(void **state) {
  (void)state;
  int rc = hcl_test_setup_plugin("staircase", HCL_PLUGIN_TARGET, &g_ctx, &g_desc);
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

/* Draw count samples of a stream into host arrays x [R, count, n], y [R, count]. */
static void draw(void *self, size_t R, size_t n, uint32_t stream, uint64_t first, size_t count,
                 float *x, float *y) {
  hcl_buf dx = alloc_f(R * count * n), dy = alloc_f(R * count);
  assert_int_equal(g_vt->sample(self, stream, first, count, dx, dy), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dx, x, R * count * n * sizeof(float)), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dy, y, R * count * sizeof(float)), HCL_OK);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dy);
}

/* ---- independent reference of the function and the draw layout ---------- */
#define REF_MAX_TERMS 64
#define REF_MAX_SET 32
typedef struct ref_fn {
  size_t T;
  double coef[REF_MAX_TERMS];
  int size[REF_MAX_TERMS];
  int set[REF_MAX_TERMS][REF_MAX_SET]; /* 0-based */
} ref_fn;

static void ref_add(ref_fn *f, double c, const int *set, int size) {
  assert_true(f->T < REF_MAX_TERMS && size <= REF_MAX_SET);
  f->coef[f->T] = c;
  f->size[f->T] = size;
  for (int a = 0; a < size; a++) f->set[f->T][a] = set[a];
  f->T++;
}

static void ref_chain(ref_fn *f, double c, int lo, int count, int with_x1) {
  /* the set {x1 if with_x1} + {lo, ..., lo+count-1} */
  int s[REF_MAX_SET], m = 0;
  if (with_x1) s[m++] = 0;
  for (int i = 0; i < count; i++) s[m++] = lo + i;
  ref_add(f, c, s, m);
}

/* f in float, terms in order, like the device. */
static float ref_f32(const ref_fn *f, const float *x) {
  float v = 0.0f;
  for (size_t t = 0; t < f->T; t++) {
    float chi = 1.0f;
    for (int a = 0; a < f->size[t]; a++) chi = chi * x[f->set[t][a]];
    v = v + (float)f->coef[t] * chi;
  }
  return v;
}

static double ref_f64(const ref_fn *f, const double *x) {
  double v = 0.0;
  for (size_t t = 0; t < f->T; t++) {
    double chi = 1.0;
    for (int a = 0; a < f->size[t]; a++) chi *= x[f->set[t][a]];
    v += f->coef[t] * chi;
  }
  return v;
}

enum { IN_BOOLEAN = 0, IN_BIASED = 1, IN_GAUSSIAN = 2 };
typedef struct ref_gen {
  size_t n;
  int inputs;
  double p;
  double noise;
  uint64_t P; /* train wrap (0: none) */
  const ref_fn *f;
} ref_gen;

/* Coordinate j of sample i (already wrapped) of a stream. */
static float ref_x(const ref_gen *g, uint64_t seed, uint32_t stream, uint64_t i, size_t j) {
  uint64_t w = 4 * ((g->n + 3) / 4), e = i * w + j;
  uint64_t st = STREAM_X | stream;
  if (g->inputs == IN_BOOLEAN) return hcl_rng_host(HCL_RNG_RADEMACHER, 0, 0, seed, st, e);
  if (g->inputs == IN_GAUSSIAN) return hcl_rng_host(HCL_RNG_NORMAL, 0, 1, seed, st, e);
  double sd = sqrt(g->p * (1 - g->p));
  float b = hcl_rng_host(HCL_RNG_BERNOULLI, (float)g->p, 0, seed, st, e);
  return b != 0.0f ? (float)((1 - g->p) / sd) : (float)(-g->p / sd);
}

/* Sample i of (seed, stream): x [n], returns y. */
static float ref_sample(const ref_gen *g, uint64_t seed, uint32_t stream, uint64_t i, float *x) {
  if (stream == HCL_STREAM_TRAIN && g->P) i %= g->P;
  for (size_t j = 0; j < g->n; j++) x[j] = ref_x(g, seed, stream, i, j);
  float y = ref_f32(g->f, x);
  if (g->noise != 0.0)
    y = y + (float)g->noise * hcl_rng_host(HCL_RNG_NORMAL, 0, 1, seed, STREAM_NOISE | stream, i);
  return y;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Device rows [R, count, n] / [R, count] against the reference, bit for bit. */
static void check_against_ref(const ref_gen *g, const uint64_t *seeds, size_t R, uint32_t stream,
                              uint64_t first, size_t count, const float *x, const float *y) {
  float *rx = malloc(g->n * sizeof *rx);
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < count; i++) {
      float ry = ref_sample(g, seeds[r], stream, first + i, rx);
      const float *dx = x + (r * count + i) * g->n;
      for (size_t j = 0; j < g->n; j++)
        if (!same_bits(dx[j], rx[j]))
          fail_msg("inputs %d: x[r=%zu, i=%llu, j=%zu] = %.9g, reference %.9g", g->inputs, r,
                   (unsigned long long)(first + i), j, dx[j], rx[j]);
      if (!same_bits(y[r * count + i], ry))
        fail_msg("inputs %d: y[r=%zu, i=%llu] = %.9g, reference %.9g", g->inputs, r,
                 (unsigned long long)(first + i), y[r * count + i], ry);
    }
  free(rx);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_descriptor(void **state) {
  (void)state;
  NEED_DEVICE();
  assert_string_equal(g_desc->name, "staircase");
  assert_int_equal(g_desc->kind, HCL_PLUGIN_TARGET);
  assert_non_null(strstr(g_desc->citation, "2108.10573"));
  assert_non_null(strstr(g_desc->citation, "Abbe"));
  const char *keys[] = {"n",      "k",    "function", "normalize",     "k2",        "terms",
                        "inputs", "bias", "noise",    "probe_samples", "probe_sets"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const hcl_param_desc *d = g_desc->params;
    while (d->key && strcmp(d->key, keys[i])) d++;
    if (!d->key) fail_msg("parameter %s not declared", keys[i]);
    assert_non_null(d->help);
    assert_true(strlen(d->help) > 10);
    assert_non_null(d->def);
  }
  uint64_t seed = 1;
  void *self = NULL;
  make_ok((const char *[]){"n=17", NULL}, 1, &seed, 0, 16, &self);
  hcl_target_info info = {.struct_size = sizeof info};
  assert_int_equal(g_vt->info(self, &info), HCL_OK);
  assert_int_equal(info.x.rank, 1);
  assert_int_equal(info.x.dims[0], 17);
  assert_int_equal(info.y_dim, 1);
  assert_int_equal(info.task, HCL_TASK_REGRESSION);
  g_vt->destroy(self);
}

/* Device samples = host reference, for every input law, with noise, two
 * replicas, several splits of the same range. */
static void test_samples_match_reference(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t n = 13, R = 2, N = 2000;
  const uint64_t seeds[2] = {7, 0x0123456789abcdefULL};
  const char *laws[] = {"boolean", "biased", "gaussian"};
  ref_fn f = {0};
  for (int i = 1; i <= 5; i++) ref_chain(&f, 1.0 / sqrt(5.0), 0, i, 0);
  float *x = malloc(R * N * n * sizeof *x), *y = malloc(R * N * sizeof *y);
  float *x2 = malloc(R * N * n * sizeof *x2), *y2 = malloc(R * N * sizeof *y2);
  for (int law = 0; law < 3; law++) {
    char in[64];
    snprintf(in, sizeof in, "inputs=%s", laws[law]);
    void *self = NULL;
    make_ok((const char *[]){"n=13", "k=5", in, "bias=0.7", "noise=0.5", NULL}, R, seeds, 0, N,
            &self);
    ref_gen g = {.n = n, .inputs = law, .p = 0.7, .noise = 0.5, .P = 0, .f = &f};
    draw(self, R, n, HCL_STREAM_TEST, 0, N, x, y);
    check_against_ref(&g, seeds, R, HCL_STREAM_TEST, 0, N, x, y);
    /* the same range in pieces: same bits */
    const size_t cuts[][2] = {{0, 700}, {700, 1}, {701, 1000}, {1701, 299}};
    for (size_t c = 0; c < 4; c++) {
      size_t a = cuts[c][0], m = cuts[c][1];
      draw(self, R, n, HCL_STREAM_TEST, a, m, x2, y2);
      for (size_t r = 0; r < R; r++) {
        assert_memory_equal(x2 + r * m * n, x + (r * N + a) * n, m * n * sizeof *x);
        assert_memory_equal(y2 + r * m, y + r * N + a, m * sizeof *y);
      }
    }
    /* replicas and streams differ */
    size_t diff = 0;
    for (size_t i = 0; i < N * n; i++) diff += !same_bits(x[i], x[N * n + i]);
    assert_true(diff > (law == IN_BIASED ? N * n / 4 : N * n / 3));
    draw(self, R, n, HCL_STREAM_PROBE, 0, 300, x2, y2);
    check_against_ref(&g, seeds, R, HCL_STREAM_PROBE, 0, 300, x2, y2);
    diff = 0;
    for (size_t i = 0; i < 300 * n; i++) diff += !same_bits(x[i], x2[i]);
    assert_true(diff > 300 * n / 4);
    /* the unlabelled and validation streams: the reference's, differing from
     * test, probe and each other (x2 keeps the probe samples) */
    float *xu = malloc(R * 300 * n * sizeof *xu), *yu = malloc(R * 300 * sizeof *yu);
    float *xv = malloc(R * 300 * n * sizeof *xv), *yv = malloc(R * 300 * sizeof *yv);
    draw(self, R, n, HCL_STREAM_UNLABELLED, 0, 300, xu, yu);
    check_against_ref(&g, seeds, R, HCL_STREAM_UNLABELLED, 0, 300, xu, yu);
    draw(self, R, n, HCL_STREAM_VAL, 0, 300, xv, yv);
    check_against_ref(&g, seeds, R, HCL_STREAM_VAL, 0, 300, xv, yv);
    size_t dv[4] = {0};
    for (size_t i = 0; i < 300 * n; i++) {
      dv[0] += !same_bits(x[i], xv[i]);
      dv[1] += !same_bits(x2[i], xv[i]);
      dv[2] += !same_bits(xu[i], xv[i]);
      dv[3] += !same_bits(x[i], xu[i]);
    }
    for (size_t k = 0; k < 4; k++) assert_true(dv[k] > 300 * n / 4);
    free(xu), free(yu), free(xv), free(yv);
    g_vt->destroy(self);
  }
  free(x);
  free(y);
  free(x2);
  free(y2);
}

/* A finite training set: train index i is sample i mod P, in order; test
 * and probe streams do not wrap. */
static void test_train_wrap(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t n = 9, R = 2, P = 100, N = 250;
  const uint64_t seeds[2] = {42, 43};
  void *self = NULL;
  make_ok((const char *[]){"n=9", "k=4", "noise=0.25", NULL}, R, seeds, P, N, &self);
  ref_fn f = {0};
  for (int i = 1; i <= 4; i++) ref_chain(&f, 0.5, 0, i, 0);
  ref_gen g = {.n = n, .inputs = IN_BOOLEAN, .noise = 0.25, .P = P, .f = &f};
  float *x = malloc(R * N * n * sizeof *x), *y = malloc(R * N * sizeof *y);
  float *x2 = malloc(R * N * n * sizeof *x2), *y2 = malloc(R * N * sizeof *y2);
  draw(self, R, n, HCL_STREAM_TRAIN, 0, N, x, y);
  check_against_ref(&g, seeds, R, HCL_STREAM_TRAIN, 0, N, x, y);
  for (size_t r = 0; r < R; r++)
    for (size_t i = P; i < N; i++) {
      assert_memory_equal(x + (r * N + i) * n, x + (r * N + i % P) * n, n * sizeof *x);
      assert_true(same_bits(y[r * N + i], y[r * N + i % P]));
    }
  draw(self, R, n, HCL_STREAM_TRAIN, 1037, 5, x2, y2); /* rows 37..41 */
  for (size_t r = 0; r < R; r++)
    assert_memory_equal(x2 + r * 5 * n, x + (r * N + 37) * n, 5 * n * sizeof *x);
  /* the test stream does not wrap: sample 137 is not sample 37 */
  draw(self, R, n, HCL_STREAM_TEST, 0, N, x2, y2);
  assert_true(memcmp(x2 + 137 * n, x2 + 37 * n, n * sizeof *x) != 0);
  g.P = 0;
  check_against_ref(&g, seeds, R, HCL_STREAM_TEST, 0, N, x2, y2);
  g_vt->destroy(self);
  free(x);
  free(y);
  free(x2);
  free(y2);
}

/* ---- exact Fourier coefficients ------------------------------------------- */

static void wht(double *a, size_t N) {
  for (size_t h = 1; h < N; h <<= 1)
    for (size_t i = 0; i < N; i += 2 * h)
      for (size_t j = i; j < i + h; j++) {
        double u = a[j], v = a[j + h];
        a[j] = u + v;
        a[j + h] = u - v;
      }
}

/* Coefficient of the set with bitmask S in a reference function. */
static double ref_coef(const ref_fn *f, uint32_t S) {
  double c = 0;
  for (size_t t = 0; t < f->T; t++) {
    uint32_t m = 0;
    for (int a = 0; a < f->size[t]; a++) m |= 1u << f->set[t][a];
    if (m == S) c += f->coef[t];
  }
  return c;
}

/* Device f over all of {-1,+1}^n -> WHT = the declared coefficients; the
 * plugin's host double f and canonical terms agree too. */
static void check_exact(const char *const *kv, size_t n, const ref_fn *f, int kind, size_t k,
                        size_t k2, int normalize, const char *terms) {
  const size_t N = (size_t)1 << n;
  uint64_t seed = 5;
  void *self = NULL;
  make_ok(kv, 1, &seed, 0, N, &self);
  float *x = malloc(N * n * sizeof *x), *out = malloc(N * sizeof *out);
  double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *xd = malloc(n * sizeof *xd);
  for (size_t m = 0; m < N; m++)
    for (size_t j = 0; j < n; j++) x[m * n + j] = (m >> j) & 1 ? -1.0f : 1.0f;
  hcl_buf dx = alloc_f(N * n), dout = alloc_f(N);
  assert_int_equal(hcl_buf_write(g_ctx, dx, x, N * n * sizeof *x), HCL_OK);
  assert_int_equal(g_vt->eval(self, "f", dx, N, dout), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dout, out, N * sizeof *out), HCL_OK);
  stc_terms fn;
  char why[256];
  if (stc_function_build(kind, n, k, k2, normalize, terms, &fn, why, sizeof why))
    fail_msg("stc_function_build: %s", why);
  for (size_t m = 0; m < N; m++) {
    assert_true(same_bits(out[m], ref_f32(f, x + m * n)));
    for (size_t j = 0; j < n; j++) xd[j] = x[m * n + j];
    a[m] = out[m];
    b[m] = stc_terms_eval(&fn, xd);
    assert_true(fabs(b[m] - ref_f64(f, xd)) < 1e-12);
  }
  wht(a, N);
  wht(b, N);
  for (uint32_t S = 0; S < N; S++) {
    double want = ref_coef(f, S);
    if (fabs(a[S] / N - want) > 1e-6)
      fail_msg("set mask %#x: device f has coefficient %.9g, declared %.9g", S, a[S] / N, want);
    if (fabs(b[S] / N - want) > 1e-12)
      fail_msg("set mask %#x: host f has coefficient %.17g, declared %.17g", S, b[S] / N, want);
    /* the canonical terms list exactly the nonzero coefficients */
    uint32_t set[32], m = 0;
    for (uint32_t j = 0; j < n; j++)
      if (S >> j & 1) set[m++] = j;
    assert_true(fabs(stc_terms_coef(&fn, set, m) - want) < 1e-15);
    if (want == 0.0) assert_true(stc_terms_find(&fn, set, m) < 0);
  }
  stc_terms_free(&fn);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dout);
  g_vt->destroy(self);
  free(x);
  free(out);
  free(a);
  free(b);
  free(xd);
}

static void test_exact_fourier(void **state) {
  (void)state;
  NEED_DEVICE();
  ref_fn f;
  memset(&f, 0, sizeof f); /* staircase S_6 / sqrt(6) */
  for (int i = 1; i <= 6; i++) ref_chain(&f, 1.0 / sqrt(6.0), 0, i, 0);
  check_exact((const char *[]){"n=10", "k=6", NULL}, 10, &f, STC_FN_STAIRCASE, 6, 6, 1, "");
  memset(&f, 0, sizeof f); /* not normalised */
  for (int i = 1; i <= 6; i++) ref_chain(&f, 1.0, 0, i, 0);
  check_exact((const char *[]){"n=10", "k=6", "normalize=false", NULL}, 10, &f, STC_FN_STAIRCASE, 6,
              6, 0, "");
  memset(&f, 0, sizeof f); /* parity chi_{1..5} */
  ref_chain(&f, 1.0, 0, 5, 0);
  check_exact((const char *[]){"n=10", "k=5", "function=parity", NULL}, 10, &f, STC_FN_PARITY, 5, 5,
              1, "");
  memset(&f, 0, sizeof f); /* S_{4,5}: chi_{1..i}, i<=4, then x1 chi_{5..5+i-2}, i=2..5 */
  for (int i = 1; i <= 4; i++) ref_chain(&f, 1.0, 0, i, 0);
  for (int i = 2; i <= 5; i++) ref_chain(&f, 1.0, 4, i - 1, 1);
  check_exact((const char *[]){"n=10", "k=4", "k2=5", "function=multi_staircase", NULL}, 10, &f,
              STC_FN_MULTI, 4, 5, 1, "");
  memset(&f, 0, sizeof f); /* fourier, with a repeated set (merged) and a constant */
  const char *terms = "1.0:1, 1.0:1 2, 0.5:3 2 1, -0.25:9, 2:, 0.5:2 1";
  ref_add(&f, 1.0, (int[]){0}, 1);
  ref_add(&f, 1.5, (int[]){0, 1}, 2);
  ref_add(&f, 0.5, (int[]){0, 1, 2}, 3);
  ref_add(&f, -0.25, (int[]){8}, 1);
  ref_add(&f, 2.0, NULL, 0);
  char kv[128];
  snprintf(kv, sizeof kv, "terms=%s", terms);
  check_exact((const char *[]){"n=9", "function=fourier", kv, NULL}, 9, &f, STC_FN_FOURIER, 10, 0,
              1, terms);
}

/* ---- the staircase property ----------------------------------------------- */

static int sp_of(const char *terms, size_t n) {
  stc_terms raw, can;
  char why[256];
  if (stc_terms_parse(terms, n, &raw, why, sizeof why)) fail_msg("%s: %s", terms, why);
  assert_int_equal(stc_terms_canonical(&raw, &can), 0);
  int sp = stc_staircase_property(&can);
  stc_terms_free(&raw);
  stc_terms_free(&can);
  return sp;
}

static const char *note_of(const char *key) {
  for (size_t i = 0; i < g_ctx->n_notes; i++)
    if (!strcmp(g_ctx->notes[i].key, key)) return g_ctx->notes[i].value;
  return NULL;
}

static void test_staircase_property(void **state) {
  (void)state;
  /* SPEC 1.1 examples */
  assert_int_equal(sp_of("1:1 2, 1:1", 5), 1);          /* x1x2 + x1: yes */
  assert_int_equal(sp_of("1:1 2, 1:3", 5), 0);          /* x1x2 + x3: no */
  assert_int_equal(sp_of("1:1 2 3 4", 5), 0);           /* parity, k >= 2: no */
  assert_int_equal(sp_of("1:2", 5), 1);                 /* parity, k = 1: yes */
  assert_int_equal(sp_of("1:1, 1:1 2, 1:1 2 3", 5), 1); /* S_3 */
  /* more */
  assert_int_equal(sp_of("1:1, 1:2 3", 5), 0);
  assert_int_equal(sp_of("1:1, 1:1 2, 1:2 3", 5), 0);      /* {2,3}: neither {2} nor {3} */
  assert_int_equal(sp_of("1:1, 1:1 2, 1:2 3, 1:3", 5), 1); /* {3} -> {2,3} */
  assert_int_equal(sp_of("1:1 2, 1:1, -1:1", 5), 0);       /* x1 cancels */
  assert_int_equal(sp_of("1:1, 1:1 3, 1:3 1 5", 5), 1);    /* order inside a term is free */
  assert_int_equal(sp_of("3:, 1:4", 5), 1);
  assert_int_equal(sp_of("3:", 5), 1);
  for (size_t k = 1; k <= 8; k++) {
    stc_terms s, p;
    assert_int_equal(stc_fn_staircase(k, 1, &s), 0);
    assert_int_equal(stc_fn_parity(k, &p), 0);
    assert_int_equal(stc_staircase_property(&s), 1);
    assert_int_equal(stc_staircase_property(&p), k == 1);
    assert_int_equal(stc_degree(&s), k);
    assert_int_equal(stc_degree(&p), k);
    stc_terms_free(&s);
    stc_terms_free(&p);
  }
  stc_terms m;
  assert_int_equal(stc_fn_multi(4, 5, &m), 0);
  assert_int_equal(stc_staircase_property(&m), 1);
  stc_terms_free(&m);

  /* through the plugin: the manifest notes */
  NEED_DEVICE();
  uint64_t seed = 3;
  const struct {
    const char *const *kv;
    const char *sp, *deg;
  } cases[] = {
      {(const char *[]){"n=30", NULL}, "true", "10"},
      {(const char *[]){"n=30", "function=parity", NULL}, "false", "10"},
      {(const char *[]){"n=30", "function=multi_staircase", "k=3", "k2=4", NULL}, "true", "4"},
      {(const char *[]){"n=5", "function=fourier", "terms=1:1 2, 1:1", NULL}, "true", "2"},
      {(const char *[]){"n=5", "function=fourier", "terms=1:1 2, 1:3", NULL}, "false", "2"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    void *self = NULL;
    make_ok(cases[c].kv, 1, &seed, 0, 8, &self);
    assert_non_null(note_of("staircase.staircase_property"));
    assert_string_equal(note_of("staircase.staircase_property"), cases[c].sp);
    assert_string_equal(note_of("staircase.degree"), cases[c].deg);
    assert_non_null(note_of("staircase.function"));
    assert_non_null(note_of("staircase.terms"));
    assert_int_equal(note_of("staircase.terms")[0], '[');
    g_vt->destroy(self);
  }
  const char *t = note_of("staircase.terms");
  assert_string_equal(t, "[{\"coef\":1,\"set\":[1,2]},{\"coef\":1,\"set\":[3]}]");
  assert_string_equal(note_of("staircase.expansion"), "1*x1*x2 + 1*x3");
}

/* ---- parameters and parsing ----------------------------------------------- */

static void expect_parse_error(const char *terms, size_t n, const char *needle) {
  stc_terms t;
  char why[256] = "";
  assert_int_equal(stc_terms_parse(terms, n, &t, why, sizeof why), -1);
  if (!strstr(why, needle)) fail_msg("'%s': message '%s' lacks '%s'", terms, why, needle);
}

static void expect_create_error(const char *const *kv, const char *needle) {
  uint64_t seed = 1;
  void *self = NULL;
  assert_int_equal(make(kv, 1, &seed, 0, 8, &self), HCL_ERR_PARAM);
  assert_null(self);
  if (!strstr(hcl_errmsg(g_ctx), needle))
    fail_msg("message '%s' lacks '%s'", hcl_errmsg(g_ctx), needle);
}

static void test_parse_and_errors(void **state) {
  (void)state;
  stc_terms t;
  char why[256];
  assert_int_equal(stc_terms_parse(" 1.0:1 , 1e-1 : 1 2 ,-0.5:3 2 1, 2:", 3, &t, why, sizeof why),
                   0);
  assert_int_equal(t.count, 4);
  assert_true(t.coef[1] == 0.1 && t.coef[2] == -0.5 && t.coef[3] == 2.0);
  assert_int_equal(stc_term_size(&t, 2), 3);
  assert_int_equal(t.idx[t.off[2]], 0); /* sorted, 0-based */
  assert_int_equal(stc_term_size(&t, 3), 0);
  stc_terms_free(&t);
  expect_parse_error("1:1 2, 1:4", 3, "index 4 is outside 1..n = 1..3");
  expect_parse_error("1:0", 3, "index 0");
  expect_parse_error("1:1 1", 3, "appears twice");
  expect_parse_error("1 2", 3, "no ':'");
  expect_parse_error("x:1", 3, "not a finite number");
  expect_parse_error("1:1,,1:2", 3, "term 2 is empty");
  expect_parse_error("1:a", 3, "not an index");
  expect_parse_error("", 3, "empty");
  assert_int_equal(stc_sets_parse("0, 1, 2 1, 1 2 3, 1 2", 3, &t, why, sizeof why), 0);
  assert_int_equal(t.count, 4); /* {1,2} given twice */
  stc_terms_free(&t);
  assert_int_equal(stc_sets_parse("0 1", 3, &t, why, sizeof why), -1);

  /* names of the probe metrics: [a-z0-9_] only */
  assert_int_equal(stc_sets_parse("0, 1, 1 2, 1 2 3, 1 2 5, 3 4 5 6", 6, &t, why, sizeof why), 0);
  const char *names[] = {"fourier_0",    "fourier_1",     "fourier_1_2",
                         "fourier_1to3", "fourier_1_2_5", "fourier_3to6"};
  for (size_t j = 0; j < 6; j++) {
    char nm[64];
    stc_set_name(&t, j, nm, sizeof nm);
    assert_string_equal(nm, names[j]);
  }
  stc_terms_free(&t);

  NEED_DEVICE();
  expect_create_error((const char *[]){"n=30", "k=40", NULL}, "k = 40 exceeds");
  expect_create_error((const char *[]){"n=30", "k=40", "function=parity", NULL}, "n = 30");
  expect_create_error((const char *[]){"n=10", "k=6", "k2=6", "function=multi_staircase", NULL},
                      "k+k2-1 = 1..11");
  expect_create_error((const char *[]){"n=4", "function=fourier", "terms=1:1 5", NULL},
                      "index 5 is outside");
  expect_create_error((const char *[]){"n=4", "function=fourier", NULL}, "needs terms");
  expect_create_error((const char *[]){"inputs=biased", "bias=1", NULL}, "strictly between");
  expect_create_error((const char *[]){"inputs=biased", "bias=0", NULL}, "bias = 0");
  expect_create_error((const char *[]){"n=5", "k=2", "probe_sets=1, 6", NULL}, "probe_sets");
  /* the schema itself rejects unknown choices */
  hcl_config cfg;
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.path, sizeof cfg.path, "test");
  assert_int_equal(hcl_config_set(g_ctx, &cfg, "target.function=stairs"), HCL_OK);
  hcl_params p;
  assert_int_not_equal(hcl_params_resolve(g_ctx, &cfg, "target", g_desc->params,
                                          (const char *[]){"plugin", NULL}, &p),
                       HCL_OK);
  hcl_config_free(&cfg);
}

/* ---- the probe ------------------------------------------------------------ */

/* A "model" whose output is another staircase target's noise-free f. */
static void *g_model_target;
static hcl_status fake_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  (void)self;
  (void)params;
  return g_vt->eval(g_model_target, "f", x, n, out);
}

typedef struct probe_run {
  hcl_trainer tr;
  hcl_train_cfg cfg;
  hcl_model_vt mvt;
} probe_run;

/* Run the target's probe with a fake trainer whose model is g_model_target. */
static void run_probe(probe_run *pr, void *self, size_t R, const uint64_t *seeds, size_t batch) {
  memset(pr, 0, sizeof *pr);
  pr->cfg.replicas = (uint32_t)R;
  pr->cfg.seeds = seeds;
  pr->cfg.batch = pr->cfg.eval_batch = batch;
  pr->mvt.struct_size = sizeof pr->mvt;
  pr->mvt.forward = fake_forward;
  pr->tr.ctx = g_ctx;
  pr->tr.cfg = &pr->cfg;
  pr->tr.tvt = g_vt;
  pr->tr.target = self;
  pr->tr.mvt = &pr->mvt;
  pr->tr.model = g_model_target;
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

/* Mean over the probe stream's first N samples of g(x) chi_S(x), and its
 * standard error, on the host (double). */
static void host_probe(const ref_gen *g, const ref_fn *model, uint64_t seed, size_t N,
                       const int *set, int size, double *mean, double *se) {
  float *x = malloc(g->n * sizeof *x);
  double s = 0, s2 = 0;
  for (size_t i = 0; i < N; i++) {
    ref_sample(g, seed, HCL_STREAM_PROBE, i, x);
    double chi = 1;
    for (int a = 0; a < size; a++) chi *= x[set[a]];
    double v = (double)ref_f32(model, x) * chi;
    s += v;
    s2 += v * v;
  }
  *mean = s / N;
  *se = sqrt(fmax(s2 / N - *mean * *mean, 0) / N);
  free(x);
}

static void test_probe_known_model(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, N = 20000, batch = 4096;
  const uint64_t seeds[2] = {101, 202};
  void *self = NULL;
  make_ok((const char *[]){"n=10", "k=4", "probe_samples=20000", NULL}, R, seeds, 0, batch, &self);
  const char *terms = "0.4:, 0.3:1, -0.7:1 2, 0.25:1 2 3, 0.1:1 2 3 4, 0.5:5, 0.2:2 3";
  char kv[160];
  snprintf(kv, sizeof kv, "terms=%s", terms);
  make_ok((const char *[]){"n=10", "function=fourier", kv, NULL}, R, seeds, 0, batch,
          &g_model_target);
  ref_fn model = {0};
  ref_add(&model, 0.4, NULL, 0);
  ref_add(&model, 0.3, (int[]){0}, 1);
  ref_add(&model, -0.7, (int[]){0, 1}, 2);
  ref_add(&model, 0.25, (int[]){0, 1, 2}, 3);
  ref_add(&model, 0.1, (int[]){0, 1, 2, 3}, 4);
  ref_add(&model, 0.5, (int[]){4}, 1);
  ref_add(&model, 0.2, (int[]){1, 2}, 2);
  probe_run pr;
  run_probe(&pr, self, R, seeds, batch);
  assert_int_equal(pr.tr.m_n, 5); /* the chain sets j = 0..4 */
  const char *names[] = {"fourier_0", "fourier_1", "fourier_1_2", "fourier_1to3", "fourier_1to4"};
  const double exact[] = {0.4, 0.3, -0.7, 0.25, 0.1};
  const int chain[] = {0, 1, 2, 3};
  ref_fn unused = {0};
  ref_gen g = {.n = 10, .inputs = IN_BOOLEAN, .f = &unused};
  for (size_t j = 0; j < 5; j++)
    for (size_t r = 0; r < R; r++) {
      double got = metric(&pr, names[j], r), mean, se;
      host_probe(&g, &model, seeds[r], N, chain, (int)j, &mean, &se);
      if (fabs(got - mean) > 2e-5)
        fail_msg("%s r=%zu: device %.9g, host mean over the same inputs %.9g", names[j], r, got,
                 mean);
      if (fabs(got - exact[j]) > 5 * se + 1e-3)
        fail_msg("%s r=%zu: %.6g, exact %.6g (standard error %.3g)", names[j], r, got, exact[j],
                 se);
    }
  assert_true(metric(&pr, "fourier_1", 0) != metric(&pr, "fourier_1", 1)); /* own seeds */
  /* a fixed evaluation set, a fixed-order reduction: the same bits again */
  probe_run pr2;
  run_probe(&pr2, self, R, seeds, batch);
  for (size_t j = 0; j < 5; j++)
    for (size_t r = 0; r < R; r++)
      assert_true(metric(&pr2, names[j], r) == metric(&pr, names[j], r));
  probe_free(&pr);
  probe_free(&pr2);
  g_vt->destroy(self);
  /* fourier target: probe every term's set, plus the empty set */
  make_ok((const char *[]){"n=10", "function=fourier", kv, "probe_samples=3000", NULL}, R, seeds, 0,
          1000, &self);
  run_probe(&pr, self, R, seeds, 1000);
  assert_int_equal(pr.tr.m_n, 7);
  assert_true(fabs(metric(&pr, "fourier_5", 0) - 0.5) < 0.1);
  assert_true(fabs(metric(&pr, "fourier_2_3", 1) - 0.2) < 0.1);
  probe_free(&pr);
  g_vt->destroy(self);
  g_vt->destroy(g_model_target);
  g_model_target = NULL;
}

/* Biased inputs: the two values, mean 0, variance 1, P(B = 1) = p; Gaussian
 * inputs: mean 0, variance 1; the probe of the target itself on biased
 * inputs recovers its coefficients (the chi_S stay orthonormal). */
static void test_input_moments(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t n = 8, N = 20000;
  const uint64_t seed = 77;
  const double p = 0.75;
  float *x = malloc(N * n * sizeof *x), *y = malloc(N * sizeof *y);
  for (int law = IN_BIASED; law <= IN_GAUSSIAN; law++) {
    void *self = NULL;
    make_ok((const char *[]){"n=8", "k=3", law == IN_BIASED ? "inputs=biased" : "inputs=gaussian",
                             NULL},
            1, &seed, 0, N, &self);
    draw(self, 1, n, HCL_STREAM_TEST, 0, N, x, y);
    const float hi = (float)(0.25 / sqrt(0.1875)), lo = (float)(-0.75 / sqrt(0.1875));
    for (size_t j = 0; j < n; j++) {
      double s = 0, s2 = 0, s4 = 0, nhi = 0;
      for (size_t i = 0; i < N; i++) {
        double v = x[i * n + j];
        s += v;
        s2 += v * v;
        s4 += v * v * v * v;
        if (law == IN_BIASED) {
          assert_true(x[i * n + j] == hi || x[i * n + j] == lo);
          nhi += x[i * n + j] == hi;
        }
      }
      double mean = s / N, var = s2 / N - mean * mean, m4 = s4 / N;
      assert_true(fabs(mean) < 5 / sqrt((double)N));
      assert_true(fabs(var - 1) < 5 * sqrt((m4 - 1) / N));
      if (law == IN_BIASED) assert_true(fabs(nhi / N - p) < 5 * sqrt(p * (1 - p) / N));
    }
    g_vt->destroy(self);
  }
  /* SPEC: +0.5774 w.p. 0.75 and -1.7321 w.p. 0.25 for p = 0.75 */
  assert_true(fabs(0.25 / sqrt(0.1875) - 0.5774) < 1e-4);
  assert_true(fabs(-0.75 / sqrt(0.1875) + 1.7321) < 1e-4);
  free(x);
  free(y);

  /* probe on biased inputs, the model being the target itself */
  const uint64_t seeds[1] = {99};
  void *self = NULL;
  make_ok((const char *[]){"n=6", "k=3", "inputs=biased", "probe_samples=12000", NULL}, 1, seeds, 0,
          5000, &self);
  g_model_target = self;
  probe_run pr;
  run_probe(&pr, self, 1, seeds, 5000);
  ref_fn f = {0};
  for (int i = 1; i <= 3; i++) ref_chain(&f, 1.0 / sqrt(3.0), 0, i, 0);
  ref_gen g = {.n = 6, .inputs = IN_BIASED, .p = 0.75, .f = &f};
  const char *names[] = {"fourier_0", "fourier_1", "fourier_1_2", "fourier_1to3"};
  const int chain[] = {0, 1, 2};
  for (size_t j = 0; j < 4; j++) {
    double got = metric(&pr, names[j], 0), mean, se;
    host_probe(&g, &f, seeds[0], 12000, chain, (int)j, &mean, &se);
    double want = j ? 1.0 / sqrt(3.0) : 0.0;
    if (fabs(got - mean) > 2e-5) fail_msg("%s: device %.9g, host %.9g", names[j], got, mean);
    if (fabs(got - want) > 5 * se)
      fail_msg("%s: %.6g, exact %.6g (se %.3g)", names[j], got, want, se);
  }
  probe_free(&pr);
  g_model_target = NULL;
  g_vt->destroy(self);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_descriptor),         cmocka_unit_test(test_samples_match_reference),
      cmocka_unit_test(test_train_wrap),         cmocka_unit_test(test_exact_fourier),
      cmocka_unit_test(test_staircase_property), cmocka_unit_test(test_parse_and_errors),
      cmocka_unit_test(test_probe_known_model),  cmocka_unit_test(test_input_moments),
  };
  return cmocka_run_group_tests(tests, setup_group, NULL);
}
