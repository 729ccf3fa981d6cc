/* Replica-batched SGEMM (hcl_sgemm_batched) at the shapes of the Taylor
 * model's whitening product: A = hidden features [R][m, k] packed, B a k x n
 * block inside a larger per-replica parameter vector (stride n_params, not a
 * multiple of its size, at a nonzero offset) with a packed leading
 * dimension, C [R][m, n] packed; different data per replica. Every transpose
 * variant, through CLBlast (the register-blocked and small kernels off) and
 * the default path, against a float64 host product. CLBlast 1.5's
 * strided-batched indirect kernel reads a packed, untransposed operand in
 * place and then ignores its offset and batch stride (replica q read at
 * q * rows * cols from the buffer's start). */
#include "hcl_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != HCL_OK) fail_msg("%s: %s", #call, hcl_errmsg(ctx));                              \
  } while (0)

static uint32_t g_s = 88172645u;
static float frand(void) { /* xorshift32 in [-1, 1) */
  g_s ^= g_s << 13;
  g_s ^= g_s >> 17;
  g_s ^= g_s << 5;
  return (float)(g_s >> 8) * 0x1p-23f - 1.0f;
}

typedef struct shape {
  size_t m, n, k, R;
  size_t ob, gap_b; /* B: float offset, extra floats between replicas */
  size_t oa, oc;    /* A, C: float offsets (stride stays packed) */
} shape;

/* One replica-batched product C = op(A) op(B) (alpha 1, beta 0, as taylor)
 * on the current path, every entry checked against double. */
static void check(hcl_ctx *ctx, const char *path, const shape *s, int ta, int tb) {
  size_t m = s->m, n = s->n, k = s->k, R = s->R;
  size_t ac = ta ? m : k, bc = tb ? k : n; /* packed leading dimensions */
  size_t sa = m * k, sb = k * n + s->gap_b, sc = m * n;
  size_t na = s->oa + R * sa, nb = s->ob + R * sb, nc = s->oc + R * sc;
  float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *got = malloc(nc * 4);
  assert_non_null(A), assert_non_null(B), assert_non_null(C), assert_non_null(got);
  for (size_t i = 0; i < na; i++) A[i] = frand();
  for (size_t i = 0; i < nb; i++) B[i] = frand();
  for (size_t i = 0; i < nc; i++) C[i] = frand();
  hcl_buf da = hcl_test_upload(ctx, A, na), db = hcl_test_upload(ctx, B, nb),
          dc = hcl_test_upload(ctx, C, nc);
  hcl_buf a = hcl_buf_sub(da, s->oa * 4, (na - s->oa) * 4);
  hcl_buf b = hcl_buf_sub(db, s->ob * 4, (nb - s->ob) * 4);
  hcl_buf c = hcl_buf_sub(dc, s->oc * 4, (nc - s->oc) * 4);
  OK(hcl_sgemm_batched(ctx, ta, tb, m, n, k, 1.0f, a, ac, sa, b, bc, sb, 0.0f, c, n, sc, R));
  OK(hcl_buf_read(ctx, dc, got, nc * 4));
  for (size_t i = 0; i < s->oc; i++)
    if (memcmp(&got[i], &C[i], 4)) fail_msg("%s: float %zu before C changed", path, i);
  double *row = malloc(n * sizeof(double)), *mag = malloc(n * sizeof(double));
  assert_non_null(row), assert_non_null(mag);
  for (size_t q = 0; q < R; q++) {
    const float *Aq = A + s->oa + q * sa, *Bq = B + s->ob + q * sb;
    for (size_t i = 0; i < m; i++) {
      memset(row, 0, n * sizeof(double)), memset(mag, 0, n * sizeof(double));
      for (size_t p = 0; p < k; p++) {
        double x = ta ? Aq[p * ac + i] : Aq[i * ac + p];
        for (size_t j = 0; j < n; j++) {
          double y = tb ? Bq[j * bc + p] : Bq[p * bc + j];
          row[j] += x * y, mag[j] += fabs(x * y);
        }
      }
      for (size_t j = 0; j < n; j++) {
        float g = got[s->oc + q * sc + i * n + j];
        double tol = 2e-6 * (double)(k + 2) * mag[j] + 1e-6;
        if (!(fabs(g - row[j]) <= tol))
          fail_msg("%s ta=%d tb=%d m=%zu n=%zu k=%zu R=%zu (B offset %zu, stride %zu): replica "
                   "%zu C[%zu,%zu] = %.9g, float64 %.9g",
                   path, ta, tb, m, n, k, R, s->ob, sb, q, i, j, g, row[j]);
      }
    }
  }
  free(row), free(mag);
  hcl_buf_free(ctx, &da), hcl_buf_free(ctx, &db), hcl_buf_free(ctx, &dc);
  free(A), free(B), free(C), free(got);
}

/* Each shape through CLBlast (own kernels off) and the default path. */
static void run_shapes(const shape *sh, size_t count, int all_variants) {
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  double keep = ctx->gemm_small_max, keep_rb = ctx->gemm_rb_max;
  for (int path = 0; path < 2; path++) {
    if (path == 0)
      ctx->gemm_small_max = 0, ctx->gemm_rb_max = 0;
    else
      ctx->gemm_small_max = keep, ctx->gemm_rb_max = keep_rb;
    for (size_t i = 0; i < count; i++)
      for (int v = 0; v < (all_variants ? 4 : 1); v++)
        check(ctx, path ? "default" : "CLBlast", &sh[i], v & 1, v >> 1);
  }
  ctx->gemm_small_max = keep, ctx->gemm_rb_max = keep_rb;
}

/* The whitening product: n = k = D = 128 (R = 3) and 256 (R = 2), m = 1024;
 * B at taylor-like offsets, stride n_params = D * D + gap. */
static void test_whitening_shapes(void **state) {
  (void)state;
  const shape sh[] = {
      {1024, 128, 128, 3, 4481, 4481, 0, 0},
      {1024, 256, 256, 2, 8833, 8833, 0, 0},
  };
  run_shapes(sh, 2, 1);
}

/* Neighbouring shapes: A and C at offsets too, a stride gap of one float,
 * sizes off CLBlast's tiles and rectangular products; the deep CNN's input
 * gradient dU = dZ W at width 256 (k = 256, n = 512) and 64 (L = 3). */
static void test_neighbour_shapes(void **state) {
  (void)state;
  const shape sh[] = {
      {512, 128, 128, 2, 1, 1, 64, 32},    {256, 192, 64, 3, 130, 7, 0, 0},
      {1000, 128, 136, 2, 5, 3, 3, 0},     {128, 512, 256, 2, 4096, 8704, 0, 0},
      {256, 128, 64, 2, 1024, 9728, 0, 0},
  };
  run_shapes(sh, 5, 1);
}

/* B with a packed stride (no gap) at offset 0: the layout CLBlast's batched
 * kernel assumes, still correct after the routing. */
static void test_packed_b(void **state) {
  (void)state;
  const shape sh[] = {{512, 128, 128, 2, 0, 0, 0, 0}};
  run_shapes(sh, 1, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whitening_shapes),
      cmocka_unit_test(test_neighbour_shapes),
      cmocka_unit_test(test_packed_b),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
