/* The device SPD solver (runtime/solve.c, kernels/solve.cl) against a float64
 * host Cholesky on random systems of several sizes (inside one panel, several
 * panels with a partial last one), errors for singular, ill-conditioned,
 * indefinite and NaN systems with lambda = 0 (naming the replica and pivot,
 * B left as it was), lambda > 0 making them solvable, determinism, replicas
 * independent of each other, argument checks. */
#include "hcl_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEED_DEVICE()                                                                              \
  hcl_ctx *ctx = hcl_test_ctx();                                                                   \
  if (!ctx) skip()

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}
static double nrand(void) {
  double u = urand() + 1e-300, v = urand();
  return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* ---- float64 reference: x = (A + lambda I)^{-1} b by Cholesky ------------- */
/* Returns 0 when not positive definite. */
static int ref_solve(const float *a, const float *b, size_t k, size_t m, double lambda, double *x) {
  double *L = calloc(k * k, sizeof *L);
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j <= i; j++) L[i * k + j] = a[i * k + j] + (i == j ? lambda : 0);
  for (size_t j = 0; j < k; j++) {
    double d = L[j * k + j];
    for (size_t p = 0; p < j; p++) d -= L[j * k + p] * L[j * k + p];
    if (!(d > 0)) {
      free(L);
      return 0;
    }
    d = sqrt(d);
    L[j * k + j] = d;
    for (size_t i = j + 1; i < k; i++) {
      double s = L[i * k + j];
      for (size_t p = 0; p < j; p++) s -= L[i * k + p] * L[j * k + p];
      L[i * k + j] = s / d;
    }
  }
  for (size_t c = 0; c < m; c++) {
    for (size_t i = 0; i < k; i++) {
      double s = b[i * m + c];
      for (size_t p = 0; p < i; p++) s -= L[i * k + p] * x[p * m + c];
      x[i * m + c] = s / L[i * k + i];
    }
    for (size_t i = k; i-- > 0;) {
      double s = x[i * m + c];
      for (size_t p = i + 1; p < k; p++) s -= L[p * k + i] * x[p * m + c];
      x[i * m + c] = s / L[i * k + i];
    }
  }
  free(L);
  return 1;
}

/* A = G G^T / cols + shift I, G [k, cols] Gaussian (rank min(k, cols) + shift). */
static void make_spd(float *a, size_t k, size_t cols, double shift) {
  double *g = malloc(k * cols * sizeof *g);
  for (size_t i = 0; i < k * cols; i++) g[i] = nrand();
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j <= i; j++) {
      double s = 0;
      for (size_t p = 0; p < cols; p++) s += g[i * cols + p] * g[j * cols + p];
      s /= (double)cols;
      if (i == j) s += shift;
      a[i * k + j] = a[j * k + i] = (float)s;
    }
  free(g);
}

static hcl_buf upload(hcl_ctx *ctx, const float *h, size_t n) {
  hcl_buf b;
  assert_int_equal(hcl_buf_alloc(ctx, n * sizeof *h, &b), HCL_OK);
  assert_int_equal(hcl_buf_write(ctx, b, h, n * sizeof *h), HCL_OK);
  return b;
}

static float *download(hcl_ctx *ctx, hcl_buf b, size_t n) {
  float *h = malloc(n * sizeof *h);
  assert_int_equal(hcl_buf_read(ctx, b, h, n * sizeof *h), HCL_OK);
  return h;
}

/* R systems of size K (make_spd with cols = K) and M Gaussian right-hand
 * sides each, on the host (*a, *b) and on the device (*da, *db). */
static void spd_batch(hcl_ctx *ctx, size_t R, size_t K, size_t M, double shift, float **a,
                      float **b, hcl_buf *da, hcl_buf *db) {
  *a = malloc(R * K * K * sizeof **a), *b = malloc(R * K * M * sizeof **b);
  for (size_t r = 0; r < R; r++) make_spd(*a + r * K * K, K, K, shift);
  for (size_t i = 0; i < R * K * M; i++) (*b)[i] = (float)nrand();
  *da = upload(ctx, *a, R * K * K), *db = upload(ctx, *b, R * K * M);
}

/* Relative error ||x - ref|| / ||ref|| of one replica's solution. */
static double rel_err(const float *x, const double *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return sqrt(num / den);
}

/* Solve R random systems of size k with m right-hand sides; compare. */
static void check_random(hcl_ctx *ctx, size_t R, size_t k, size_t m, double lambda) {
  float *a = malloc(R * k * k * sizeof *a), *b = malloc(R * k * m * sizeof *b);
  for (size_t r = 0; r < R; r++) make_spd(a + r * k * k, k, k + 3, r == 0 ? 0.05 : 0.2);
  for (size_t i = 0; i < R * k * m; i++) b[i] = (float)nrand();
  hcl_buf da = upload(ctx, a, R * k * k), db = upload(ctx, b, R * k * m);
  hcl_status rc = hcl_solve_spd(ctx, da, db, R, k, m, (float)lambda);
  if (rc != HCL_OK) fail_msg("k = %zu, m = %zu: %s", k, m, ctx->errmsg);
  float *x = download(ctx, db, R * k * m), *a2 = download(ctx, da, R * k * k);
  assert_memory_equal(a, a2, R * k * k * sizeof *a); /* A only read */
  double *ref = malloc(k * m * sizeof *ref);
  for (size_t r = 0; r < R; r++) {
    assert_true(ref_solve(a + r * k * k, b + r * k * m, k, m, lambda, ref));
    double e = rel_err(x + r * k * m, ref, k * m);
    if (!(e < 2e-4)) fail_msg("k = %zu, m = %zu, replica %zu: relative error %g", k, m, r, e);
  }
  free(a), free(b), free(x), free(a2), free(ref);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

static void random_systems(void **state) {
  (void)state;
  NEED_DEVICE();
  const size_t ks[] = {1, 7, 64, 300};
  for (size_t i = 0; i < 4; i++)
    for (size_t m = 1; m <= 5; m += 4) check_random(ctx, 3, ks[i], m, i % 2 ? 0.0 : 0.01);
  check_random(ctx, 1, 130, 70, 0.0); /* more right-hand sides than one group has items */
}

/* Replica 1 singular (rank k/2) with lambda = 0: a clear error naming it, B
 * untouched, no NaN anywhere; with lambda > 0 every replica solves. */
static void singular_needs_lambda(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3, K = 100, M = 2 };
  float *a = malloc(R * K * K * sizeof *a), b[R * K * M];
  for (size_t r = 0; r < R; r++)
    make_spd(a + r * K * K, K, r == 1 ? K / 2 : 2 * K, r == 1 ? 0 : 0.1);
  for (size_t i = 0; i < R * K * M; i++) b[i] = (float)nrand();
  hcl_buf da = upload(ctx, a, R * K * K), db = upload(ctx, b, R * K * M);
  hcl_status rc = hcl_solve_spd(ctx, da, db, R, K, M, 0.0f);
  assert_int_equal(rc, HCL_ERR_NUMERIC);
  assert_non_null(strstr(ctx->errmsg, "ridge system not positive definite (replica 1, pivot "));
  assert_non_null(strstr(ctx->errmsg, "increase lambda"));
  int pivot = -1;
  assert_int_equal(sscanf(strstr(ctx->errmsg, "pivot ") + 6, "%d", &pivot), 1);
  assert_true(pivot >= K / 2 - 2 && pivot < K); /* rank K/2: fails after about K/2 pivots */
  float *x = download(ctx, db, R * K * M);
  assert_memory_equal(x, b, sizeof b);
  free(x);
  rc = hcl_solve_spd(ctx, da, db, R, K, M, 1e-2f);
  if (rc != HCL_OK) fail_msg("%s", ctx->errmsg);
  x = download(ctx, db, R * K * M);
  double ref[K * M];
  for (size_t r = 0; r < R; r++) {
    assert_true(ref_solve(a + r * K * K, b + r * K * M, K, M, 1e-2, ref));
    assert_true(rel_err(x + r * K * M, ref, K * M) < 2e-4);
  }
  free(x);
  free(a);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

/* Hilbert matrix (condition ~1e19 at k = 12 already) with lambda = 0 fails;
 * lambda = 1e-3 (condition ~ 3e3) matches float64. */
static void ill_conditioned(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { K = 40, M = 1 };
  float a[K * K], b[K * M];
  for (size_t i = 0; i < K; i++)
    for (size_t j = 0; j < K; j++) a[i * K + j] = (float)(1.0 / (double)(i + j + 1));
  for (size_t i = 0; i < K; i++) b[i] = (float)nrand();
  hcl_buf da = upload(ctx, a, K * K), db = upload(ctx, b, K);
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, M, 0.0f), HCL_ERR_NUMERIC);
  assert_non_null(strstr(ctx->errmsg, "replica 0, pivot "));
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, M, 1e-3f), HCL_OK);
  float *x = download(ctx, db, K);
  double ref[K];
  assert_true(ref_solve(a, b, K, M, 1e-3, ref));
  assert_true(rel_err(x, ref, K) < 1e-3);
  free(x);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

/* Indefinite, zero and NaN systems fail cleanly at the right pivot; an
 * indefinite system becomes solvable with a large lambda; an overflowing
 * solution is an error. */
static void indefinite_and_nan(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { K = 70 };
  float *a = calloc(K * K, sizeof *a), b[K];
  for (size_t i = 0; i < K; i++) b[i] = 1.0f;
  hcl_buf db = upload(ctx, b, K);
  /* diag(1, ..., 1, -1 at 66): pivot 66 */
  for (size_t i = 0; i < K; i++) a[i * K + i] = i == 66 ? -1.0f : 1.0f;
  hcl_buf da = upload(ctx, a, K * K);
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, 1, 0.0f), HCL_ERR_NUMERIC);
  assert_non_null(strstr(ctx->errmsg, "(replica 0, pivot 66 = -1)"));
  /* lambda = 3: diag(4, ..., 2): x = 1/diag */
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, 1, 3.0f), HCL_OK);
  float *x = download(ctx, db, K);
  for (size_t i = 0; i < K; i++) assert_float_equal(x[i], i == 66 ? 0.5 : 0.25, 1e-6);
  free(x);
  /* all zero: pivot 0 */
  memset(a, 0, K * K * sizeof *a);
  assert_int_equal(hcl_buf_write(ctx, da, a, K * K * sizeof *a), HCL_OK);
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, 1, 0.0f), HCL_ERR_NUMERIC);
  assert_non_null(strstr(ctx->errmsg, "pivot 0 = 0"));
  /* a NaN anywhere in the lower triangle */
  for (size_t i = 0; i < K; i++) a[i * K + i] = 2.0f;
  a[40 * K + 3] = a[3 * K + 40] = NAN;
  assert_int_equal(hcl_buf_write(ctx, da, a, K * K * sizeof *a), HCL_OK);
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, 1, 0.0f), HCL_ERR_NUMERIC);
  assert_non_null(strstr(ctx->errmsg, "not positive definite"));
  x = download(ctx, db, K);
  for (size_t i = 0; i < K; i++) assert_false(isnan(x[i]));
  free(x);
  /* positive definite but the solution overflows float: reported, not returned silently */
  memset(a, 0, K * K * sizeof *a);
  for (size_t i = 0; i < K; i++) a[i * K + i] = 1e-20f, b[i] = 1e20f;
  assert_int_equal(hcl_buf_write(ctx, da, a, K * K * sizeof *a), HCL_OK);
  assert_int_equal(hcl_buf_write(ctx, db, b, K * sizeof *b), HCL_OK);
  assert_int_equal(hcl_solve_spd(ctx, da, db, 1, K, 1, 0.0f), HCL_ERR_NUMERIC);
  assert_non_null(strstr(ctx->errmsg, "non-finite solution (replica 0"));
  free(a);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

/* Two calls give the same bits; replica r of an R = 3 call equals a call on
 * replica r alone; buffers at offsets work; only A's lower triangle is read
 * (NaN above the diagonal gives the same bits). */
static void deterministic_and_independent(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3, K = 150, M = 3 };
  float *a, *b;
  hcl_buf da, db;
  spd_batch(ctx, R, K, M, 0.1, &a, &b, &da, &db);
  assert_int_equal(hcl_solve_spd(ctx, da, db, R, K, M, 0.0f), HCL_OK);
  float *x1 = download(ctx, db, R * K * M);
  assert_int_equal(hcl_buf_write(ctx, db, b, R * K * M * sizeof *b), HCL_OK);
  assert_int_equal(hcl_solve_spd(ctx, da, db, R, K, M, 0.0f), HCL_OK);
  float *x2 = download(ctx, db, R * K * M);
  assert_memory_equal(x1, x2, R * K * M * sizeof *x1);
  for (size_t r = 0; r < R; r++) {
    /* one replica, at an offset inside a larger buffer */
    size_t pad = 5;
    float *a1 = calloc(pad + K * K, sizeof *a1), *b1 = calloc(2 * pad + K * M, sizeof *b1);
    memcpy(a1 + pad, a + r * K * K, K * K * sizeof *a1);
    memcpy(b1 + pad, b + r * K * M, K * M * sizeof *b1);
    for (size_t i = 0; i < pad; i++) b1[i] = b1[pad + K * M + i] = 7.0f;
    hcl_buf ea = upload(ctx, a1, pad + K * K), eb = upload(ctx, b1, 2 * pad + K * M);
    hcl_status rc = hcl_solve_spd(ctx, hcl_buf_sub(ea, pad * 4, K * K * 4),
                                  hcl_buf_sub(eb, pad * 4, K * M * 4), 1, K, M, 0.0f);
    assert_int_equal(rc, HCL_OK);
    float *y = download(ctx, eb, 2 * pad + K * M);
    assert_memory_equal(y + pad, x1 + r * K * M, K * M * sizeof *y);
    assert_memory_equal(y, b1, pad * sizeof *y); /* nothing around the view touched */
    assert_memory_equal(y + pad + K * M, b1 + pad + K * M, pad * sizeof *y);
    free(y), free(a1), free(b1);
    hcl_buf_free(ctx, &ea);
    hcl_buf_free(ctx, &eb);
  }
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < K; i++)
      for (size_t j = i + 1; j < K; j++) a[(r * K + i) * K + j] = NAN;
  assert_int_equal(hcl_buf_write(ctx, da, a, R * K * K * sizeof *a), HCL_OK);
  assert_int_equal(hcl_buf_write(ctx, db, b, R * K * M * sizeof *b), HCL_OK);
  assert_int_equal(hcl_solve_spd(ctx, da, db, R, K, M, 0.0f), HCL_OK);
  float *x3 = download(ctx, db, R * K * M);
  assert_memory_equal(x1, x3, R * K * M * sizeof *x1);
  free(x1), free(x2), free(x3), free(a), free(b);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

/* The diagonal blocks factored by one work-item (CPUs' default) or by the
 * whole work-group (other devices') give the same bits, solutions and the
 * failing pivot alike, at sizes that end in a partial panel. */
static void serial_and_group_factor_agree(void **state) {
  (void)state;
  NEED_DEVICE();
  enum { R = 3, K = 150, M = 3 };
  float *a, *b;
  hcl_buf da, db;
  spd_batch(ctx, R, K, M, 0.05, &a, &b, &da, &db);
  float *x[2];
  for (int serial = 0; serial < 2; serial++) {
    assert_int_equal(hcl_buf_write(ctx, db, b, R * K * M * sizeof *b), HCL_OK);
    if (hcl_solve_spd_with(ctx, da, db, R, K, M, 1e-3f, serial) != HCL_OK)
      fail_msg("serial = %d: %s", serial, ctx->errmsg);
    x[serial] = download(ctx, db, R * K * M);
  }
  assert_memory_equal(x[0], x[1], R * K * M * sizeof *x[0]);
  /* replica 1 indefinite at pivot 97 (inside the fourth panel) */
  a[(1 * K + 97) * K + 97] = -1.0f;
  assert_int_equal(hcl_buf_write(ctx, da, a, R * K * K * sizeof *a), HCL_OK);
  char msg[2][256];
  for (int serial = 0; serial < 2; serial++) {
    assert_int_equal(hcl_solve_spd_with(ctx, da, db, R, K, M, 0.0f, serial), HCL_ERR_NUMERIC);
    snprintf(msg[serial], sizeof msg[serial], "%.200s", ctx->errmsg);
  }
  assert_string_equal(msg[0], msg[1]);
  assert_non_null(strstr(msg[0], "(replica 1, pivot 97 = "));
  free(x[0]), free(x[1]), free(a), free(b);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

static void argument_checks(void **state) {
  (void)state;
  NEED_DEVICE();
  hcl_buf a, b, none = {0};
  assert_int_equal(hcl_buf_alloc(ctx, 16 * 4, &a), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, 4 * 4, &b), HCL_OK);
  assert_int_equal(hcl_solve_spd(ctx, a, b, 0, 4, 1, 0.0f), HCL_OK); /* nothing to do */
  assert_int_equal(hcl_solve_spd(ctx, a, b, 2, 4, 1, 0.0f), HCL_ERR_PARAM);
  assert_non_null(strstr(ctx->errmsg, "buffer a"));
  assert_int_equal(hcl_solve_spd(ctx, a, b, 1, 4, 2, 0.0f), HCL_ERR_PARAM);
  assert_non_null(strstr(ctx->errmsg, "buffer b"));
  assert_int_equal(hcl_solve_spd(ctx, none, b, 1, 4, 1, 0.0f), HCL_ERR_PARAM);
  assert_int_equal(hcl_solve_spd(ctx, a, b, 1, 4, 1, NAN), HCL_ERR_PARAM);
  assert_int_equal(hcl_solve_spd(ctx, hcl_buf_sub(a, 2, 60), b, 1, 3, 1, 0.0f), HCL_ERR_PARAM);
  hcl_buf_free(ctx, &a);
  hcl_buf_free(ctx, &b);
}

/* Through the plugin table, as plugins call it. */
static void through_host_api(void **state) {
  (void)state;
  NEED_DEVICE();
  const hcl_host_api *host = hcl_host_api_get();
  float a[4] = {4, 2, 2, 3}, b[2] = {2, 1};
  hcl_buf da = upload(ctx, a, 4), db = upload(ctx, b, 2);
  assert_int_equal(host->solve_spd(ctx, da, db, 1, 2, 1, 1.0f), HCL_OK);
  float x[2];
  assert_int_equal(hcl_buf_read(ctx, db, x, sizeof x), HCL_OK);
  /* [[5, 2], [2, 4]] x = [2, 1]: x = [6/16, 1/16] */
  assert_float_equal(x[0], 0.375, 1e-6);
  assert_float_equal(x[1], 0.0625, 1e-6);
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(through_host_api),
      cmocka_unit_test(random_systems),
      cmocka_unit_test(singular_needs_lambda),
      cmocka_unit_test(ill_conditioned),
      cmocka_unit_test(indefinite_and_nan),
      cmocka_unit_test(deterministic_and_independent),
      cmocka_unit_test(serial_and_group_factor_agree),
      cmocka_unit_test(argument_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
