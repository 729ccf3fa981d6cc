/* The Gaussian-input targets single_index, quadratic_features, low_rank_poly
 * (SPEC 1.3-1.5), loaded through the runtime loader:
 *  - host mirrors: the shared normal draw against the runtime's hcl_rng_host
 *    (bits), the exact-arithmetic tanh and rsqrt against libm (double),
 *    Hermite links orthonormal under N(0, 1) by Gauss-Hermite quadrature;
 *  - device samples bit for bit against a host reference of the draw layout
 *    (every target, several links, both input laws, noise, R = 2, several
 *    batch splits, train wrap-around, disjoint streams);
 *  - the random parameters: beta (read back through eval("hstar") at the
 *    basis vectors) against an independent double computation; A
 *    symmetric, traceless, |A|_F = 1, of the requested rank (Jacobi
 *    eigenvalues); exact sphere/Gaussian moments against closed forms;
 *  - moments on 1e5 samples within sampling error (inputs, Var y = 1 for the
 *    normalised Hermite links, Var h*, Var f* = 1 for low_rank_poly);
 *  - parameter errors with clear messages. */
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

/* The targets' host code (draw mirror, links, A, exact moments), compiled in
 * so it can be checked directly and used for the references. cmocka's fail()
 * macro would swallow their host->fail(...) calls. */
#pragma push_macro("fail")
#undef fail
#include "../targets/lib/gt_link.c"
#include "../targets/lib/gt_rng_host.c"
#include "../targets/low_rank_poly/moments.c"
#include "../targets/quadratic_features/matrix.c"
#pragma pop_macro("fail")

/* The host table the included target code calls (HCL_PLUGIN_DEFINE defines it in a plugin). */
const hcl_host_api *hcl_host;

#define SIX_T (0x534958ULL << 40)
#define QUF_T (0x515546ULL << 40)
#define LRP_T (0x4c5250ULL << 40)

static hcl_ctx *g_ctx;
static const hcl_target_vt *g_vt[3];
static const hcl_plugin_desc *g_desc[3];
enum { SIX = 0, QUF = 1, LRP = 2 };
static const char *const k_names[3] = {"single_index", "quadratic_features", "low_rank_poly"};

static int setup_group(void **state) {
  (void)state;
  hcl_host = hcl_host_api_get();
  for (int k = 0; k < 3; k++) {
    if (hcl_test_setup_plugin(k_names[k], HCL_PLUGIN_TARGET, &g_ctx, &g_desc[k])) return -1;
    g_vt[k] = g_desc[k]->vt;
  }
  return 0;
}

#define NEED_DEVICE()                                                                              \
  do {                                                                                             \
    if (!g_ctx) skip();                                                                            \
  } while (0)

static hcl_status make(int k, const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                       size_t max_batch, void **self) {
  return hcl_test_target_make(g_ctx, g_desc[k], kv, R, seeds, P, 0, max_batch, self);
}

static void *make_ok(int k, const char *const *kv, size_t R, const uint64_t *seeds, uint64_t P,
                     size_t max_batch) {
  void *self = NULL;
  if (make(k, kv, R, seeds, P, max_batch, &self) != HCL_OK)
    fail_msg("%s create: %s", k_names[k], hcl_errmsg(g_ctx));
  return self;
}

/* The link a configuration gives (the plugin's own reading of the keys). */
static gt_link link_of(int k, const char *const *kv) {
  hcl_params *p = hcl_test_params(g_desc[k], "target", kv);
  gt_link l;
  hcl_report rep = {.host = hcl_host, .ctx = g_ctx};
  if (gt_link_read(&rep, "test", p, &l) != HCL_OK) fail_msg("link: %s", hcl_errmsg(g_ctx));
  hcl_test_params_free(p);
  return l;
}

static hcl_buf alloc_f(size_t n) {
  hcl_buf b;
  assert_int_equal(hcl_buf_alloc(g_ctx, (n ? n : 1) * sizeof(float), &b), HCL_OK);
  return b;
}

/* Samples first..first+count-1 of a stream into host x [R, count, d], y [R, count]. */
static void draw(int k, void *self, size_t R, size_t d, uint32_t stream, uint64_t first,
                 size_t count, float *x, float *y) {
  hcl_buf dx = alloc_f(R * count * d), dy = alloc_f(R * count);
  if (g_vt[k]->sample(self, stream, first, count, dx, dy) != HCL_OK)
    fail_msg("sample: %s", hcl_errmsg(g_ctx));
  assert_int_equal(hcl_buf_read(g_ctx, dx, x, R * count * d * sizeof(float)), HCL_OK);
  assert_int_equal(hcl_buf_read(g_ctx, dy, y, R * count * sizeof(float)), HCL_OK);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dy);
}

/* eval(what) at host inputs x [R, n, d] into out [R, n]. */
static void eval_at(int k, void *self, const char *what, size_t R, size_t d, const float *x,
                    size_t n, float *out) {
  hcl_buf dx = alloc_f(R * n * d), dout = alloc_f(R * n);
  assert_int_equal(hcl_buf_write(g_ctx, dx, x, R * n * d * sizeof(float)), HCL_OK);
  if (g_vt[k]->eval(self, what, dx, n, dout) != HCL_OK) fail_msg("eval: %s", hcl_errmsg(g_ctx));
  assert_int_equal(hcl_buf_read(g_ctx, dout, out, R * n * sizeof(float)), HCL_OK);
  hcl_buf_free(g_ctx, &dx);
  hcl_buf_free(g_ctx, &dout);
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static const char *note_of(const char *key) {
  for (size_t i = 0; i < g_ctx->n_notes; i++)
    if (!strcmp(g_ctx->notes[i].key, key)) return g_ctx->notes[i].value;
  return NULL;
}

/* ---- numerical helpers (double) ------------------------------------------ */

/* Eigenvalues of the symmetric n x n matrix a (destroyed) by cyclic Jacobi
 * rotations; v (may be NULL) gets the eigenvectors as columns. */
static void jacobi_eig(double *a, size_t n, double *eig, double *v) {
  if (v)
    for (size_t i = 0; i < n * n; i++) v[i] = (i % (n + 1)) == 0;
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0;
    for (size_t p = 0; p < n; p++)
      for (size_t q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off < 1e-30) break;
    for (size_t p = 0; p < n; p++)
      for (size_t q = p + 1; q < n; q++) {
        double apq = a[p * n + q];
        if (fabs(apq) < 1e-300) continue;
        double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
        double c = 1 / sqrt(t * t + 1), s = t * c;
        for (size_t k = 0; k < n; k++) { /* columns p, q */
          double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < n; k++) { /* rows p, q */
          double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        if (v)
          for (size_t k = 0; k < n; k++) {
            double vkp = v[k * n + p], vkq = v[k * n + q];
            v[k * n + p] = c * vkp - s * vkq;
            v[k * n + q] = s * vkp + c * vkq;
          }
      }
  }
  for (size_t i = 0; i < n; i++) eig[i] = a[i * n + i];
}

/* Gauss-Hermite rule for N(0, 1) by Golub-Welsch: nodes = eigenvalues of
 * the Jacobi matrix of the probabilists' Hermite polynomials (off-diagonal
 * sqrt(k)), weights = squared first components of the eigenvectors. Exact
 * for polynomials of degree <= 2n - 1. */
#define GH_N 40
static double g_gh_x[GH_N], g_gh_w[GH_N];
static void gauss_hermite(void) {
  static double a[GH_N * GH_N], v[GH_N * GH_N];
  memset(a, 0, sizeof a);
  for (size_t k = 1; k < GH_N; k++) a[(k - 1) * GH_N + k] = a[k * GH_N + k - 1] = sqrt((double)k);
  jacobi_eig(a, GH_N, g_gh_x, v);
  for (size_t i = 0; i < GH_N; i++) g_gh_w[i] = v[i] * v[i];
}

/* E f(Z), Z ~ N(0, 1), by the Gauss-Hermite rule. */
static double gh_expect(double (*f)(double, const void *), const void *arg) {
  double s = 0;
  for (size_t i = 0; i < GH_N; i++) s += g_gh_w[i] * f(g_gh_x[i], arg);
  return s;
}

static double f_link(double z, const void *arg) { return gt_link_f64(arg, z); }
static double f_link_sq(double z, const void *arg) {
  double g = gt_link_f64(arg, z);
  return g * g;
}
typedef struct he_pair {
  unsigned j, k;
} he_pair;
static double f_he_prod(double z, const void *arg) {
  const he_pair *p = arg;
  double cj[GT_MAX_COEF] = {0}, ck[GT_MAX_COEF] = {0}, vj = 0, vk = 0;
  gt_hermite_coef(p->j, cj);
  gt_hermite_coef(p->k, ck);
  for (unsigned i = p->j + 1; i-- > 0;) vj = vj * z + cj[i];
  for (unsigned i = p->k + 1; i-- > 0;) vk = vk * z + ck[i];
  return vj * vk;
}
static double f_pow(double z, const void *arg) { return pow(z, *(const double *)arg); }

/* ---- host reference of the samples --------------------------------------- */
typedef struct ref_cfg {
  int kind;
  size_t d;
  int sphere;
  float noise;
  uint64_t tag, P;
  gt_link link;
  const float *param; /* SIX beta [R, d]; QUF A [R, d, d]; LRP B [R, r, d] */
  float hscale;       /* QUF */
  size_t r;           /* LRP: a [R, r], off [R], pw [r] */
  const float *a, *off;
  const unsigned *pw;
} ref_cfg;

static void ref_x(const ref_cfg *c, uint64_t seed, uint32_t stream, uint64_t s, float *x) {
  uint64_t w = 4 * ((c->d + 3) / 4), sid = c->tag | stream;
  float ss = 0.0f;
  for (size_t j = 0; j < c->d; j++) {
    x[j] = hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seed, sid, s * w + j);
    ss = ss + x[j] * x[j];
  }
  if (!c->sphere) return;
  float sqrt_d = (float)sqrt((double)c->d);
  if (!(ss > 0.0f)) {
    x[0] = sqrt_d;
    for (size_t j = 1; j < c->d; j++) x[j] = 0.0f;
    return;
  }
  float sc = gt_sphere_scale_f32(ss, sqrt_d);
  for (size_t j = 0; j < c->d; j++) x[j] = x[j] * sc;
}

static float ref_dot(const float *a, const float *b, size_t d) {
  float h = 0.0f;
  for (size_t j = 0; j < d; j++) h = h + a[j] * b[j];
  return h;
}

/* The noise-free value of replica r at x: what 0 = h*, 1 = f. */
static float ref_value(const ref_cfg *c, size_t r, const float *x, int what) {
  size_t d = c->d;
  if (c->kind == SIX) {
    float h = ref_dot(x, c->param + r * d, d);
    return what ? gt_link_f32(&c->link, h) : h;
  }
  if (c->kind == QUF) {
    const float *A = c->param + r * d * d;
    float h = 0.0f;
    for (size_t a = 0; a < d; a++) {
      float ra = 0.0f;
      for (size_t b = 0; b < d; b++) ra = ra + A[a * d + b] * x[b];
      h = h + x[a] * ra;
    }
    h = c->hscale * h;
    return what ? gt_link_f32(&c->link, h) : h;
  }
  const float *B = c->param + r * c->r * d;
  if (!what) return ref_dot(x, B, d);
  float f = 0.0f;
  for (size_t j = 0; j < c->r; j++) {
    float h = ref_dot(x, B + j * d, d), v = h;
    for (unsigned k = 1; k < c->pw[j]; k++) v = v * h;
    f = f + c->a[r * c->r + j] * v;
  }
  return f + c->off[r];
}

static float ref_sample(const ref_cfg *c, size_t r, uint64_t seed, uint32_t stream, uint64_t i,
                        float *x) {
  uint64_t s = (stream == HCL_STREAM_TRAIN && c->P) ? i % c->P : i;
  ref_x(c, seed, stream, s, x);
  float y = ref_value(c, r, x, 1);
  if (c->noise != 0.0f)
    y = y + c->noise *
                hcl_rng_host(HCL_RNG_NORMAL, 0.0f, 1.0f, seed, c->tag | (1ULL << 32) | stream, s);
  return y;
}

static void check_ref(const ref_cfg *c, const uint64_t *seeds, size_t R, uint32_t stream,
                      uint64_t first, size_t count, const float *x, const float *y) {
  float *rx = malloc(c->d * sizeof *rx);
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < count; i++) {
      float ry = ref_sample(c, r, seeds[r], stream, first + i, rx);
      const float *dx = x + (r * count + i) * c->d;
      for (size_t j = 0; j < c->d; j++)
        if (!same_bits(dx[j], rx[j]))
          fail_msg("%s: x[r=%zu, i=%llu, j=%zu] = %.9g, reference %.9g", k_names[c->kind], r,
                   (unsigned long long)(first + i), j, dx[j], rx[j]);
      if (!same_bits(y[r * count + i], ry))
        fail_msg("%s: y[r=%zu, i=%llu] = %.9g, reference %.9g", k_names[c->kind], r,
                 (unsigned long long)(first + i), y[r * count + i], ry);
    }
  free(rx);
}

/* N samples of the test stream against the reference, then the same range
 * in batches of several sizes (same bits), the probe stream against the
 * reference, and replicas and streams differ. */
static void check_target(const ref_cfg *c, void *self, const uint64_t *seeds, size_t R, size_t N) {
  size_t d = c->d;
  float *x = malloc(R * N * d * sizeof *x), *y = malloc(R * N * sizeof *y);
  float *x2 = malloc(R * N * d * sizeof *x2), *y2 = malloc(R * N * sizeof *y2);
  draw(c->kind, self, R, d, HCL_STREAM_TEST, 0, N, x, y);
  check_ref(c, seeds, R, HCL_STREAM_TEST, 0, N, x, y);
  const size_t sizes[] = {1, 7, 64, 333};
  for (size_t b = 0; b < 4; b++)
    for (size_t a = 0; a < N; a += sizes[b]) {
      size_t m = N - a < sizes[b] ? N - a : sizes[b];
      if (sizes[b] == 1 && a > 50) break; /* single samples: the first 50 are enough */
      draw(c->kind, self, R, d, HCL_STREAM_TEST, a, m, x2, y2);
      for (size_t r = 0; r < R; r++) {
        assert_memory_equal(x2 + r * m * d, x + (r * N + a) * d, m * d * sizeof *x);
        assert_memory_equal(y2 + r * m, y + r * N + a, m * sizeof *y);
      }
    }
  size_t diff = 0; /* replicas differ */
  for (size_t i = 0; i < N * d; i++) diff += !same_bits(x[i], x[N * d + i]);
  assert_true(diff > N * d * 9 / 10);
  draw(c->kind, self, R, d, HCL_STREAM_PROBE, 0, 300, x2, y2);
  check_ref(c, seeds, R, HCL_STREAM_PROBE, 0, 300, x2, y2);
  diff = 0;
  for (size_t i = 0; i < 300 * d; i++) diff += !same_bits(x[i], x2[i]);
  assert_true(diff > 300 * d * 9 / 10);
  /* the unlabelled stream (a model's whitening) and the validation stream:
   * the reference's draws, and neither the test nor the probe stream nor
   * each other */
  float *x3 = malloc(R * 300 * d * sizeof *x3), *y3 = malloc(R * 300 * sizeof *y3);
  float *x4 = malloc(R * 300 * d * sizeof *x4), *y4 = malloc(R * 300 * sizeof *y4);
  draw(c->kind, self, R, d, HCL_STREAM_UNLABELLED, 0, 300, x3, y3);
  check_ref(c, seeds, R, HCL_STREAM_UNLABELLED, 0, 300, x3, y3);
  draw(c->kind, self, R, d, HCL_STREAM_VAL, 0, 300, x4, y4);
  check_ref(c, seeds, R, HCL_STREAM_VAL, 0, 300, x4, y4);
  size_t d_test = 0, d_probe = 0, v_test = 0, v_probe = 0, v_unl = 0;
  for (size_t i = 0; i < 300 * d; i++) {
    d_test += !same_bits(x[i], x3[i]);
    d_probe += !same_bits(x2[i], x3[i]);
    v_test += !same_bits(x[i], x4[i]);
    v_probe += !same_bits(x2[i], x4[i]);
    v_unl += !same_bits(x3[i], x4[i]);
  }
  assert_true(d_test > 300 * d * 9 / 10 && d_probe > 300 * d * 9 / 10);
  assert_true(v_test > 300 * d * 9 / 10 && v_probe > 300 * d * 9 / 10 && v_unl > 300 * d * 9 / 10);
  free(x3), free(y3), free(x4), free(y4);
  /* eval f at the sampled inputs = y (no noise) or its noise-free part */
  float *f = malloc(R * N * sizeof *f);
  eval_at(c->kind, self, "f", R, d, x, N, f);
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < N; i++) {
      float want = ref_value(c, r, x + (r * N + i) * d, 1);
      if (!same_bits(f[r * N + i], want))
        fail_msg("%s: eval f [r=%zu, i=%zu] = %.9g, reference %.9g", k_names[c->kind], r, i,
                 f[r * N + i], want);
      if (c->noise == 0.0f) assert_true(same_bits(f[r * N + i], y[r * N + i]));
    }
  eval_at(c->kind, self, "hstar", R, d, x, N, f);
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < N; i++)
      assert_true(same_bits(f[r * N + i], ref_value(c, r, x + (r * N + i) * d, 0)));
  free(f);
  free(x);
  free(y);
  free(x2);
  free(y2);
}

/* beta of a replica, independently: normals from the runtime's mirror,
 * normalised in double, rounded. */
static void ref_beta(uint64_t seed, size_t d, float *out) {
  double *z = malloc(d * sizeof *z), ss = 0;
  for (size_t j = 0; j < d; j++) {
    z[j] = hcl_rng_host(HCL_RNG_NORMAL, 0, 1, seed, SIX_T | (2ULL << 32), j);
    ss += z[j] * z[j];
  }
  for (size_t j = 0; j < d; j++) out[j] = (float)(z[j] / sqrt(ss));
  free(z);
}

/* ---- tests: host mirrors --------------------------------------------------- */

static void test_host_mirrors(void **state) {
  (void)state;
  hcl_host = hcl_host_api_get();
  /* the shared normal draw = the runtime's mirror of the device, bit for bit */
  const uint64_t seeds[] = {0, 1, 0x0123456789abcdefULL, 0xffffffffffffffffULL};
  const uint64_t streams[] = {SIX_T | (2ULL << 32), QUF_T | (2ULL << 32) | 1, 7};
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 3; b++)
      for (uint64_t i = 0; i < 5000; i++) {
        uint64_t e = i * 7919 % 100003 + (i & 1 ? (1ULL << 40) : 0);
        float want = hcl_rng_host(HCL_RNG_NORMAL, 0, 1, seeds[a], streams[b], e);
        float got = gt_normal_host(seeds[a], streams[b], e);
        if (!same_bits(got, want))
          fail_msg("gt_normal_host(seed %llu, stream %#llx, %llu) = %.9g, runtime %.9g",
                   (unsigned long long)seeds[a], (unsigned long long)streams[b],
                   (unsigned long long)e, got, want);
      }
  /* tanh with + - * only, against libm */
  double worst = 0, worst_rel = 0;
  for (int i = -1400000; i <= 1400000; i++) {
    float z = (float)i * 1e-5f;
    double g = gt_tanh_f32(z), want = tanh((double)z);
    if (fabs(g - want) > worst) worst = fabs(g - want);
    if (z != 0 && fabs(z) < 0.5f && fabs(g - want) / fabs(want) > worst_rel)
      worst_rel = fabs(g - want) / fabs(want);
    assert_true(same_bits(gt_tanh_f32(-z), -gt_tanh_f32(z)));
  }
  const float special[] = {0.0f, 1e-30f, 1e-8f, 8.999999f, 9.0f, 20.0f, 1e30f, INFINITY};
  for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
    double g = gt_tanh_f32(special[i]), want = tanh((double)special[i]);
    if (fabs(g - want) > worst) worst = fabs(g - want);
    if (special[i] > 0 && special[i] < 0.5f && fabs(g - want) / want > worst_rel)
      worst_rel = fabs(g - want) / want;
  }
  assert_true(isnan(gt_tanh_f32(NAN)));
  assert_true(same_bits(gt_tanh_f32(-0.0f), -0.0f));
  printf("tanh (+-* only) vs libm: max abs error %.3g, max rel error below 0.5 %.3g\n", worst,
         worst_rel);
  assert_true(worst < 2.5e-7);
  assert_true(worst_rel < 5e-7);
  /* sphere scale sqrt(d) / sqrt(sum) */
  double wr = 0;
  for (int i = 0; i < 200000; i++) {
    float ss = (float)exp(-3.0 + 20.0 * i / 200000.0), sd = (float)sqrt(1.0 + i % 997);
    double got = gt_sphere_scale_f32(ss, sd), want = (double)sd / sqrt((double)ss);
    if (fabs(got / want - 1) > wr) wr = fabs(got / want - 1);
  }
  printf("sphere scale: max relative error %.3g\n", wr);
  assert_true(wr < 4e-7);

  /* Hermite links orthonormal under the Gaussian measure (Gauss-Hermite, 40
   * nodes: exact for degree <= 79) */
  gauss_hermite();
  double one = 0, m2 = 0, m4 = 0;
  for (size_t i = 0; i < GH_N; i++) {
    one += g_gh_w[i];
    m2 += g_gh_w[i] * g_gh_x[i] * g_gh_x[i];
    m4 += g_gh_w[i] * pow(g_gh_x[i], 4);
  }
  assert_true(fabs(one - 1) < 1e-12 && fabs(m2 - 1) < 1e-11 && fabs(m4 - 3) < 1e-10);
  for (unsigned j = 0; j <= 8; j++)
    for (unsigned k = 0; k <= 8; k++) {
      he_pair p = {j, k};
      double e = gh_expect(f_he_prod, &p);
      if (fabs(e - (j == k)) > 1e-10)
        fail_msg("E[He_%u He_%u]/sqrt(%u! %u!) = %.15g, want %d", j, k, j, k, e, j == k);
    }
  /* the closed forms of the first four */
  double c[GT_MAX_COEF];
  gt_hermite_coef(2, c);
  assert_true(fabs(c[2] - 1 / sqrt(2.0)) < 1e-15 && fabs(c[0] + 1 / sqrt(2.0)) < 1e-15);
  gt_hermite_coef(3, c);
  assert_true(fabs(c[3] - 1 / sqrt(6.0)) < 1e-15 && fabs(c[1] + 3 / sqrt(6.0)) < 1e-15);
  gt_hermite_coef(4, c);
  assert_true(fabs(c[4] - 1 / sqrt(24.0)) < 1e-15 && fabs(c[2] + 6 / sqrt(24.0)) < 1e-15 &&
              fabs(c[0] - 3 / sqrt(24.0)) < 1e-15);

  /* exact moments against closed forms: Gaussian E u^4 = 3|b|^4,
   * E u^2 v^2 = 1 + 2 rho^2, E u^3 v = 3 rho; sphere E x1^4 = 3d/(d+2),
   * E x1^2 x2^2 = d/(d+2), E x1^6 = 15 d^2/((d+2)(d+4)) */
  assert_true(fabs(lrp_pair_moment(4, 0, 1, 4, 0, 9, GT_IN_GAUSSIAN) - 48) < 1e-12);
  assert_true(fabs(lrp_pair_moment(1, 0.3, 1, 2, 2, 9, GT_IN_GAUSSIAN) - 1.18) < 1e-12);
  assert_true(fabs(lrp_pair_moment(1, -0.3, 1, 3, 1, 9, GT_IN_GAUSSIAN) + 0.9) < 1e-12);
  assert_true(fabs(lrp_pair_moment(1, 0, 1, 5, 1, 9, GT_IN_GAUSSIAN)) < 1e-15);
  assert_true(fabs(lrp_pair_moment(1, 0, 1, 4, 0, 10, GT_IN_SPHERE) - 30.0 / 12) < 1e-12);
  assert_true(fabs(lrp_pair_moment(1, 0, 1, 2, 2, 10, GT_IN_SPHERE) - 10.0 / 12) < 1e-12);
  assert_true(fabs(lrp_pair_moment(1, 1, 1, 3, 3, 10, GT_IN_SPHERE) - 1500.0 / 168) < 1e-12);
  /* and the Gaussian ones against quadrature: E (rho Z + ..)^p Z^q for rho = 1 */
  for (unsigned p = 1; p <= 8; p++) {
    double pe = p;
    assert_true(fabs(lrp_pair_moment(1, 1, 1, p, 0, 5, GT_IN_GAUSSIAN) - gh_expect(f_pow, &pe)) <
                1e-9 * (1 + gh_expect(f_pow, &pe)));
  }
}

/* ---- tests: parameters of the targets ------------------------------------- */

static void test_descriptors_and_params(void **state) {
  (void)state;
  NEED_DEVICE();
  for (int k = 0; k < 3; k++) {
    assert_string_equal(g_desc[k]->name, k_names[k]);
    assert_int_equal(g_desc[k]->kind, HCL_PLUGIN_TARGET);
    assert_non_null(strstr(g_desc[k]->citation, k == LRP ? "2006.13436" : "2305.06986"));
    for (const hcl_param_desc *p = g_desc[k]->params; p->key; p++) {
      assert_non_null(p->help);
      assert_true(strlen(p->help) > 10);
      assert_non_null(p->def);
    }
  }
  assert_non_null(strstr(g_desc[LRP]->summary, "reading"));
  assert_non_null(strstr(g_desc[LRP]->citation, "reading"));
  const uint64_t seeds[2] = {3, 4};
  const char *d9[] = {"d=9", NULL};
  for (int k = 0; k < 3; k++) {
    void *self = make_ok(k, d9, 2, seeds, 0, 16);
    hcl_target_info info = {.struct_size = sizeof info};
    assert_int_equal(g_vt[k]->info(self, &info), HCL_OK);
    assert_int_equal(info.x.rank, 1);
    assert_int_equal(info.x.dims[0], 9);
    assert_int_equal(info.y_dim, 1);
    assert_int_equal(info.task, HCL_TASK_REGRESSION);
    hcl_buf x = alloc_f(2 * 9), out = alloc_f(2);
    assert_int_equal(g_vt[k]->eval(self, "beta", x, 1, out), HCL_ERR_UNSUPPORTED);
    assert_non_null(strstr(hcl_errmsg(g_ctx), "hstar"));
    hcl_buf_free(g_ctx, &x);
    hcl_buf_free(g_ctx, &out);
    char key[64];
    snprintf(key, sizeof key, "%s.rng", k_names[k]);
    assert_non_null(note_of(key));
    g_vt[k]->destroy(self);
  }
  /* beta: unit norm, the same on every device: eval hstar at the basis
   * vectors returns beta_j exactly; it equals an independent host draw */
  const size_t d = 11, R = 2;
  void *self = make_ok(SIX, (const char *[]){"d=11", NULL}, R, seeds, 0, d);
  float *e = calloc(R * d * d, sizeof *e), *b = malloc(R * d * sizeof *b), ref[11];
  for (size_t r = 0; r < R; r++)
    for (size_t j = 0; j < d; j++) e[(r * d + j) * d + j] = 1.0f;
  eval_at(SIX, self, "hstar", R, d, e, d, b);
  for (size_t r = 0; r < R; r++) {
    ref_beta(seeds[r], d, ref);
    double nn = 0;
    for (size_t j = 0; j < d; j++) {
      if (!same_bits(b[r * d + j], ref[j]))
        fail_msg("beta[r=%zu][%zu] = %.9g, independent host draw %.9g", r, j, b[r * d + j], ref[j]);
      nn += (double)b[r * d + j] * b[r * d + j];
    }
    assert_true(fabs(sqrt(nn) - 1) < 1e-6);
  }
  assert_true(memcmp(b, b + d, d * sizeof *b) != 0); /* own seeds */
  const char *bn = note_of("single_index.beta_norm");
  assert_non_null(bn);
  assert_int_equal(bn[0], '[');
  g_vt[SIX]->destroy(self);
  free(e);
  free(b);
}

/* A: symmetric, tr A = 0, |A|_F = 1, rank as requested; the full-rank
 * construction against an independent recomputation. */
static void test_matrix_properties(void **state) {
  (void)state;
  hcl_host = hcl_host_api_get();
  const size_t d = 9;
  double A[81], M[81], eig[9];
  for (size_t rank = 0; rank <= d; rank++) {
    if (rank == 1) {
      assert_int_equal(quf_matrix(5, d, 1, A), -1);
      continue;
    }
    for (uint64_t seed = 1; seed <= 3; seed++) {
      assert_int_equal(quf_matrix(seed, d, rank, A), 0);
      double tr = 0, fro = 0;
      for (size_t a = 0; a < d; a++) {
        tr += A[a * d + a];
        for (size_t b2 = 0; b2 < d; b2++) {
          assert_true(A[a * d + b2] == A[b2 * d + a]);
          assert_true(same_bits((float)A[a * d + b2], (float)A[b2 * d + a]));
          fro += A[a * d + b2] * A[a * d + b2];
        }
      }
      assert_true(fabs(tr) < 1e-13);
      assert_true(fabs(sqrt(fro) - 1) < 1e-13);
      memcpy(M, A, sizeof A);
      jacobi_eig(M, d, eig, NULL);
      size_t nz = 0;
      double se = 0, se2 = 0;
      for (size_t i = 0; i < d; i++) {
        nz += fabs(eig[i]) > 1e-9;
        se += eig[i];
        se2 += eig[i] * eig[i];
      }
      assert_int_equal(nz, rank ? rank : d);
      assert_true(fabs(se) < 1e-12 && fabs(se2 - 1) < 1e-12);
    }
  }
  /* full rank, independently: G from the runtime's normal mirror */
  assert_int_equal(quf_matrix(77, d, 0, A), 0);
  double G[81], trs = 0, fro = 0;
  for (size_t e = 0; e < d * d; e++)
    G[e] = hcl_rng_host(HCL_RNG_NORMAL, 0, 1, 77, QUF_T | (2ULL << 32), e);
  for (size_t a = 0; a < d; a++) trs += 2 * G[a * d + a];
  for (size_t a = 0; a < d; a++)
    for (size_t b2 = 0; b2 < d; b2++) {
      M[a * d + b2] = G[a * d + b2] + G[b2 * d + a] - (a == b2 ? trs / d : 0);
      fro += M[a * d + b2] * M[a * d + b2];
    }
  for (size_t e = 0; e < d * d; e++) assert_true(fabs(A[e] - M[e] / sqrt(fro)) < 1e-14);
  assert_int_equal(quf_matrix(5, d, d + 1, A), -1);
  assert_int_equal(quf_matrix(5, 1, 0, A), -1);
}

/* ---- tests: device samples against the reference ---------------------------- */

static void test_single_index_bits(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, N = 1500;
  const uint64_t seeds[2] = {11, 0xfedcba9876543210ULL};
  struct {
    const char *kv[6];
    size_t d;
    int sphere;
    float noise;
  } cases[] = {
      {{"d=7", "link=he3", "noise=0.3", NULL}, 7, 0, 0.3f},
      {{"d=5", "link=tanh", "inputs=sphere", NULL}, 5, 1, 0.0f},
      {{"d=6", "link=poly", "coefficients=0.1, -1, 0.5, 0.25", "noise=0.1", NULL}, 6, 0, 0.1f},
      {{"d=9", "link=relu", "inputs=sphere", NULL}, 9, 1, 0.0f},
      {{"d=1", "link=he4", NULL}, 1, 0, 0.0f},
      {{"d=3", "link=poly", "poly_basis=hermite", "coefficients=0, 1, 0, 0.5", "inputs=sphere",
        NULL},
       3,
       1,
       0.0f},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    void *self = make_ok(SIX, cases[c].kv, R, seeds, 0, N);
    size_t d = cases[c].d;
    float *beta = malloc(R * d * sizeof *beta);
    for (size_t r = 0; r < R; r++) ref_beta(seeds[r], d, beta + r * d);
    ref_cfg rc = {.kind = SIX,
                  .d = d,
                  .sphere = cases[c].sphere,
                  .noise = cases[c].noise,
                  .tag = SIX_T,
                  .link = link_of(SIX, cases[c].kv),
                  .param = beta};
    check_target(&rc, self, seeds, R, N);
    g_vt[SIX]->destroy(self);
    free(beta);
  }
}

/* A finite training set: train index i is sample i mod P; the test stream
 * does not wrap and differs from the train stream. */
static void test_train_wrap(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, P = 100, N = 250, d = 6;
  const uint64_t seeds[2] = {42, 43};
  const char *kv[] = {"d=6", "link=he2", "noise=0.25", NULL};
  void *self = make_ok(SIX, kv, R, seeds, P, N);
  float beta[12];
  for (size_t r = 0; r < R; r++) ref_beta(seeds[r], d, beta + r * d);
  ref_cfg rc = {.kind = SIX,
                .d = d,
                .noise = 0.25f,
                .tag = SIX_T,
                .P = P,
                .link = link_of(SIX, kv),
                .param = beta};
  float *x = malloc(R * N * d * sizeof *x), *y = malloc(R * N * sizeof *y);
  float *x2 = malloc(R * N * d * sizeof *x2), *y2 = malloc(R * N * sizeof *y2);
  draw(SIX, self, R, d, HCL_STREAM_TRAIN, 0, N, x, y);
  check_ref(&rc, seeds, R, HCL_STREAM_TRAIN, 0, N, x, y);
  for (size_t r = 0; r < R; r++)
    for (size_t i = P; i < N; i++) {
      assert_memory_equal(x + (r * N + i) * d, x + (r * N + i % P) * d, d * sizeof *x);
      assert_true(same_bits(y[r * N + i], y[r * N + i % P]));
    }
  draw(SIX, self, R, d, HCL_STREAM_TRAIN, 1037, 5, x2, y2); /* rows 37..41 */
  for (size_t r = 0; r < R; r++)
    assert_memory_equal(x2 + r * 5 * d, x + (r * N + 37) * d, 5 * d * sizeof *x);
  draw(SIX, self, R, d, HCL_STREAM_TEST, 0, N, x2, y2);
  assert_true(memcmp(x2 + 137 * d, x2 + 37 * d, d * sizeof *x) != 0);
  assert_true(memcmp(x2, x, P * d * sizeof *x) != 0);
  rc.P = 0;
  check_ref(&rc, seeds, R, HCL_STREAM_TEST, 0, N, x2, y2);
  g_vt[SIX]->destroy(self);
  free(x);
  free(y);
  free(x2);
  free(y2);
}

static void test_quadratic_bits(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, N = 1200;
  const uint64_t seeds[2] = {5, 6};
  struct {
    const char *kv[6];
    size_t d, rank;
    int sphere, standardize;
    float noise;
  } cases[] = {
      {{"d=6", "link=he2", NULL}, 6, 0, 1, 0, 0.0f},
      {{"d=7", "rank=3", "link=relu", "noise=0.2", NULL}, 7, 3, 1, 0, 0.2f},
      {{"d=5", "rank=2", "link=tanh", "inputs=gaussian", "standardize=true", NULL},
       5,
       2,
       0,
       1,
       0.0f},
      {{"d=2", "link=he4", "standardize=true", NULL}, 2, 0, 1, 1, 0.0f},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    void *self = make_ok(QUF, cases[c].kv, R, seeds, 0, N);
    size_t d = cases[c].d;
    float *A = malloc(R * d * d * sizeof *A);
    double *Ad = malloc(d * d * sizeof *Ad);
    for (size_t r = 0; r < R; r++) {
      assert_int_equal(quf_matrix(seeds[r], d, cases[c].rank, Ad), 0);
      for (size_t e = 0; e < d * d; e++) A[r * d * d + e] = (float)Ad[e];
    }
    double var = cases[c].sphere ? 2.0 * d / (d + 2.0) : 2.0;
    ref_cfg rc = {.kind = QUF,
                  .d = d,
                  .sphere = cases[c].sphere,
                  .noise = cases[c].noise,
                  .tag = QUF_T,
                  .link = link_of(QUF, cases[c].kv),
                  .param = A,
                  .hscale = cases[c].standardize ? (float)(1 / sqrt(var)) : 1.0f};
    check_target(&rc, self, seeds, R, N);
    g_vt[QUF]->destroy(self);
    free(A);
    free(Ad);
  }
}

/* The reference's a, off of low_rank_poly: exact moments of the float
 * directions, as the plugin computes them. */
static void lrp_ref_setup(const uint64_t *seeds, size_t R, size_t d, size_t r, int orth,
                          const unsigned *p, const double *alpha, int inputs, int center, float *B,
                          float *a, float *off, double *c_out) {
  double *Bd = malloc(r * d * sizeof *Bd);
  for (size_t rep = 0; rep < R; rep++) {
    assert_int_equal(lrp_directions(seeds[rep], d, r, orth, Bd), 0);
    for (size_t e = 0; e < r * d; e++) {
      B[rep * r * d + e] = (float)Bd[e];
      Bd[e] = B[rep * r * d + e];
    }
    double mean, var;
    lrp_moments(Bd, r, d, p, alpha, inputs, &mean, &var);
    double c = 1 / sqrt(var);
    for (size_t j = 0; j < r; j++) a[rep * r + j] = (float)(c * alpha[j]);
    off[rep] = center ? (float)(-c * mean) : 0.0f;
    if (c_out) c_out[rep] = c;
  }
  free(Bd);
}

static void test_low_rank_bits(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, N = 1200;
  const uint64_t seeds[2] = {8, 9};
  struct {
    const char *kv[8];
    size_t d, r;
    int orth, sphere, center;
    unsigned p[3];
    double alpha[3];
    float noise;
  } cases[] = {
      {{"d=8", NULL}, 8, 1, 1, 1, 0, {4}, {1}, 0.0f},
      {{"d=8", "r=3", "p=4, 3, 2", "alpha=1, -0.5, 2", "noise=0.1", NULL},
       8,
       3,
       1,
       1,
       0,
       {4, 3, 2},
       {1, -0.5, 2},
       0.1f},
      {{"d=5", "r=2", "p=3", "orthogonal=false", "center=true", "inputs=gaussian", NULL},
       5,
       2,
       0,
       0,
       1,
       {3, 3},
       {1, 1},
       0.0f},
      {{"d=3", "r=3", "p=2", "alpha=1, 2, 3", "center=true", NULL},
       3,
       3,
       1,
       1,
       1,
       {2, 2, 2},
       {1, 2, 3},
       0.0f},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    void *self = make_ok(LRP, cases[c].kv, R, seeds, 0, N);
    size_t d = cases[c].d, r = cases[c].r;
    float *B = malloc(R * r * d * sizeof *B), a[6], off[2];
    lrp_ref_setup(seeds, R, d, r, cases[c].orth, cases[c].p, cases[c].alpha,
                  cases[c].sphere ? GT_IN_SPHERE : GT_IN_GAUSSIAN, cases[c].center, B, a, off,
                  NULL);
    ref_cfg rc = {.kind = LRP,
                  .d = d,
                  .sphere = cases[c].sphere,
                  .noise = cases[c].noise,
                  .tag = LRP_T,
                  .param = B,
                  .r = r,
                  .a = a,
                  .off = off,
                  .pw = cases[c].p};
    gt_link_identity(&rc.link);
    check_target(&rc, self, seeds, R, N);
    if (cases[c].orth) { /* orthonormal directions */
      for (size_t rep = 0; rep < R; rep++)
        for (size_t j = 0; j < r; j++)
          for (size_t l = 0; l < r; l++) {
            double s = 0;
            for (size_t e = 0; e < d; e++)
              s += (double)B[(rep * r + j) * d + e] * B[(rep * r + l) * d + e];
            assert_true(fabs(s - (j == l)) < 1e-6);
          }
    }
    g_vt[LRP]->destroy(self);
    free(B);
  }
}

/* ---- tests: moments on 1e5 samples ------------------------------------------ */

/* Running sums of v - c for a fixed centre c (the expected mean). */
typedef struct stats {
  double c, n, s1, s2, s4;
} stats;
static void st_add(stats *st, double v) {
  double e = v - st->c;
  st->n += 1;
  st->s1 += e;
  st->s2 += e * e;
  st->s4 += e * e * e * e;
}
/* mean within 5 standard errors of the expected centre c */
static void st_check_mean(const stats *st, const char *what) {
  double m1 = st->s1 / st->n, se = sqrt(fmax(st->s2 / st->n - m1 * m1, 0) / st->n);
  if (fabs(m1) > 5 * se + 1e-12)
    fail_msg("%s: mean %.6g, expected %.6g (standard error %.3g)", what, st->c + m1, st->c, se);
}
/* E (v - c)^2 within 5 standard errors of want */
static void st_check_var(const stats *st, double want, const char *what) {
  double m2 = st->s2 / st->n, se = sqrt(fmax(st->s4 / st->n - m2 * m2, 0) / st->n);
  if (fabs(m2 - want) > 5 * se + 1e-9)
    fail_msg("%s: variance %.6g, expected %.6g (standard error %.3g)", what, m2, want, se);
}

/* Inputs (both laws) and labels of every target, N = 1e5 per replica. */
static void test_moments(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t R = 2, N = 100000, d = 4;
  const uint64_t seeds[2] = {1234, 5678};
  float *x = malloc(R * N * 9 * sizeof *x), *y = malloc(R * N * sizeof *y);
  float *h = malloc(R * N * sizeof *h);
  gauss_hermite();

  /* single_index, Gaussian inputs: E x = 0, E x x^T = I; Hermite links E y
   * = 0, Var y = 1; relu, tanh: their Gaussian moments (tanh by quadrature) */
  const char *links[] = {"link=he1", "link=he2", "link=he3", "link=he4", "link=relu", "link=tanh"};
  for (size_t li = 0; li < 6; li++) {
    const char *kv[] = {"d=4", links[li], NULL};
    void *self = make_ok(SIX, kv, R, seeds, 0, N);
    gt_link l = link_of(SIX, kv);
    draw(SIX, self, R, d, HCL_STREAM_TRAIN, 0, N, x, y);
    double mean = gh_expect(f_link, &l), var = gh_expect(f_link_sq, &l) - mean * mean;
    if (li < 4) assert_true(fabs(mean) < 1e-12 && fabs(var - 1) < 1e-12);
    if (li == 4) {
      mean = 1 / sqrt(2 * M_PI);
      var = 0.5 - 1 / (2 * M_PI);
    }
    for (size_t r = 0; r < R; r++) {
      stats sy = {.c = mean};
      for (size_t i = 0; i < N; i++) st_add(&sy, y[r * N + i]);
      char what[64];
      snprintf(what, sizeof what, "single_index %s r=%zu: y", links[li], r);
      st_check_mean(&sy, what);
      st_check_var(&sy, var, what);
      if (li == 0) {
        for (size_t j = 0; j < d; j++)
          for (size_t k = 0; k < d; k++) {
            stats sx = {.c = j == k};
            for (size_t i = 0; i < N; i++)
              st_add(&sx, (double)x[(r * N + i) * d + j] * x[(r * N + i) * d + k]);
            snprintf(what, sizeof what, "gaussian x_%zu x_%zu r=%zu", j, k, r);
            st_check_mean(&sx, what);
            if (j == k) {
              stats s1 = {0};
              for (size_t i = 0; i < N; i++) st_add(&s1, x[(r * N + i) * d + j]);
              st_check_mean(&s1, "gaussian x_j");
              st_check_var(&s1, 1, "gaussian x_j");
            }
          }
      }
    }
    g_vt[SIX]->destroy(self);
  }

  /* sphere: |x|^2 = d for every sample; E x = 0, E x x^T = I */
  {
    const size_t ds = 9;
    const char *kv[] = {"d=9", "inputs=sphere", "noise=0.5", "link=he1", NULL};
    void *self = make_ok(SIX, kv, R, seeds, 0, N);
    draw(SIX, self, R, ds, HCL_STREAM_TEST, 0, N, x, y);
    eval_at(SIX, self, "f", R, ds, x, N, h);
    double worst = 0;
    for (size_t r = 0; r < R; r++) {
      stats noise = {0};
      for (size_t i = 0; i < N; i++) {
        double nn = 0;
        for (size_t j = 0; j < ds; j++)
          nn += (double)x[(r * N + i) * ds + j] * x[(r * N + i) * ds + j];
        if (fabs(nn / ds - 1) > worst) worst = fabs(nn / ds - 1);
        st_add(&noise, ((double)y[r * N + i] - h[r * N + i]) / 0.5);
      }
      st_check_mean(&noise, "label noise / 0.5");
      st_check_var(&noise, 1, "label noise / 0.5");
      for (size_t j = 0; j < ds; j++)
        for (size_t k = j; k < ds; k += 4) {
          stats sx = {.c = j == k}, s1 = {0};
          for (size_t i = 0; i < N; i++) {
            st_add(&sx, (double)x[(r * N + i) * ds + j] * x[(r * N + i) * ds + k]);
            st_add(&s1, x[(r * N + i) * ds + j]);
          }
          st_check_mean(&sx, "sphere x_j x_k");
          st_check_mean(&s1, "sphere x_j");
        }
    }
    printf("sphere: max | |x|^2/d - 1 | = %.3g over %zu samples\n", worst, R * N);
    assert_true(worst < 2e-6);
    g_vt[SIX]->destroy(self);
  }

  /* quadratic_features: E h* = 0, Var h* = 2d/(d+2) (sphere), 2 (gaussian) */
  for (int law = 0; law < 2; law++) {
    const size_t dq = 6;
    const char *kv[] = {"d=6", law ? "inputs=gaussian" : "inputs=sphere", "rank=0", NULL};
    void *self = make_ok(QUF, kv, R, seeds, 0, N);
    draw(QUF, self, R, dq, HCL_STREAM_TRAIN, 0, N, x, y);
    eval_at(QUF, self, "hstar", R, dq, x, N, h);
    double want = law ? 2.0 : 2.0 * dq / (dq + 2.0);
    for (size_t r = 0; r < R; r++) {
      stats sh = {0};
      for (size_t i = 0; i < N; i++) st_add(&sh, h[r * N + i]);
      st_check_mean(&sh, law ? "quadratic h* gaussian" : "quadratic h* sphere");
      st_check_var(&sh, want, law ? "quadratic h* gaussian" : "quadratic h* sphere");
    }
    g_vt[QUF]->destroy(self);
  }

  /* low_rank_poly: Var f* = 1, E f* as computed (0 with center) */
  struct {
    const char *kv[6];
    size_t d, r;
    int orth, sphere, center;
    unsigned p[2];
    double alpha[2];
  } lc[] = {
      {{"d=5", NULL}, 5, 1, 1, 1, 0, {4, 4}, {1, 1}},
      {{"d=5", "r=2", "p=2, 3", "alpha=1, -1", "orthogonal=false", NULL},
       5,
       2,
       0,
       1,
       0,
       {2, 3},
       {1, -1}},
      {{"d=4", "r=2", "p=2", "center=true", "inputs=gaussian", NULL},
       4,
       2,
       1,
       0,
       1,
       {2, 2},
       {1, 1}},
  };
  for (size_t c = 0; c < 3; c++) {
    void *self = make_ok(LRP, lc[c].kv, R, seeds, 0, N);
    size_t dl = lc[c].d, r = lc[c].r;
    float *B = malloc(R * r * dl * sizeof *B), a[4], off[2];
    double cst[2];
    lrp_ref_setup(seeds, R, dl, r, lc[c].orth, lc[c].p, lc[c].alpha,
                  lc[c].sphere ? GT_IN_SPHERE : GT_IN_GAUSSIAN, lc[c].center, B, a, off, cst);
    draw(LRP, self, R, dl, HCL_STREAM_TRAIN, 0, N, x, y);
    for (size_t rep = 0; rep < R; rep++) {
      double *Bd = malloc(r * dl * sizeof *Bd), mean, var;
      for (size_t e = 0; e < r * dl; e++) Bd[e] = B[rep * r * dl + e];
      lrp_moments(Bd, r, dl, lc[c].p, lc[c].alpha, lc[c].sphere ? GT_IN_SPHERE : GT_IN_GAUSSIAN,
                  &mean, &var);
      free(Bd);
      double m = lc[c].center ? 0.0 : cst[rep] * mean;
      stats sy = {.c = m};
      for (size_t i = 0; i < N; i++) st_add(&sy, y[rep * N + i]);
      char what[64];
      snprintf(what, sizeof what, "low_rank_poly case %zu r=%zu: f*", c, rep);
      st_check_mean(&sy, what);
      st_check_var(&sy, 1.0, what);
    }
    free(B);
    g_vt[LRP]->destroy(self);
  }
  free(x);
  free(y);
  free(h);
}

/* ---- tests: errors ------------------------------------------------------------ */

static void expect_create_error(int k, const char *const *kv, const char *needle) {
  uint64_t seed = 1;
  void *self = NULL;
  hcl_status rc = make(k, kv, 1, &seed, 0, 8, &self);
  if (rc == HCL_OK) fail_msg("%s: created, expected an error with '%s'", k_names[k], needle);
  assert_null(self);
  if (!strstr(hcl_errmsg(g_ctx), needle))
    fail_msg("%s: message '%s' lacks '%s'", k_names[k], hcl_errmsg(g_ctx), needle);
}

static void test_errors(void **state) {
  (void)state;
  NEED_DEVICE();
  expect_create_error(SIX, (const char *[]){"link=poly", NULL}, "needs coefficients");
  expect_create_error(
      SIX, (const char *[]){"link=poly", "coefficients=1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", NULL},
      "at most 16");
  expect_create_error(QUF, (const char *[]){"rank=1", NULL}, "rank = 1");
  expect_create_error(QUF, (const char *[]){"d=6", "rank=7", NULL}, "2..d = 2..6");
  expect_create_error(QUF, (const char *[]){"d=1", NULL}, "d = 1");
  expect_create_error(QUF, (const char *[]){"d=5000", NULL}, "at most 4096");
  expect_create_error(QUF, (const char *[]){"link=poly", NULL}, "needs coefficients");
  expect_create_error(LRP, (const char *[]){"d=4", "r=5", NULL}, "do not fit in d = 4");
  expect_create_error(LRP, (const char *[]){"p=2.5", NULL}, "integer");
  expect_create_error(LRP, (const char *[]){"r=3", "p=2, 3", NULL}, "p has 2 values");
  expect_create_error(LRP, (const char *[]){"r=2", "alpha=1, 2, 3", NULL}, "alpha has 3 values");
  expect_create_error(LRP, (const char *[]){"alpha=0", NULL}, "every alpha_j is 0");
  expect_create_error(LRP, (const char *[]){"d=1", "p=2", NULL}, "constant");
  /* the same with orthogonal = false is fine: independent directions */
  uint64_t seed = 1;
  void *self =
      make_ok(LRP, (const char *[]){"d=4", "r=5", "orthogonal=false", NULL}, 1, &seed, 0, 8);
  g_vt[LRP]->destroy(self);
  /* the schema rejects d < 1, p < 1, unknown links */
  const char *bad[][2] = {{"target.d=0", NULL}, {"target.link=cubic", NULL}, {"target.p=0", NULL}};
  for (int k = 0; k < 3; k++) {
    hcl_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.path, sizeof cfg.path, "test");
    assert_int_equal(hcl_config_set(g_ctx, &cfg, bad[k][0]), HCL_OK);
    hcl_params p;
    int which = k == 2 ? LRP : SIX;
    assert_int_not_equal(hcl_params_resolve(g_ctx, &cfg, "target", g_desc[which]->params,
                                            (const char *[]){"plugin", NULL}, &p),
                         HCL_OK);
    hcl_config_free(&cfg);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_mirrors),
      cmocka_unit_test(test_matrix_properties),
      cmocka_unit_test(test_descriptors_and_params),
      cmocka_unit_test(test_single_index_bits),
      cmocka_unit_test(test_train_wrap),
      cmocka_unit_test(test_quadratic_bits),
      cmocka_unit_test(test_low_rank_bits),
      cmocka_unit_test(test_moments),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, setup_group, NULL);
}
