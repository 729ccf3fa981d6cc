/* SGEMM through CLBlast (runtime/blas.c, tune.c): the self-check passes on
 * this device; hcl_sgemm, hcl_sgemm_batched and the reference kernel against
 * a float64 host product for the four transpose variants, odd sizes, buffer
 * offsets, padded leading dimensions, alpha/beta, k = 0; one product large
 * enough for CLBlast's (tuned) indirect kernel; argument errors; the
 * tuning-file parser. */
#include "hcl_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ops.c: -1 kernel variants by device type, 0 the GPU ones, 1 the CPU ones. */
void hcl_ops_force_paths(int mode);
/* blas.c: bytes of CLBlast temporaries allowed in flight (0: one call per
 * batch entry on the ctx's scratch buffer). */
void hcl_blas_set_pending_max(size_t bytes);
/* tune.c: parse and apply one parameter file (not in internal.h). */
hcl_status hcl_blas_apply_tuning_file(hcl_ctx *ctx, const char *path);

#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != HCL_OK) fail_msg("%s: %s", #call, hcl_errmsg(ctx));                              \
  } while (0)

static hcl_ctx *ctx_or_skip(void) {
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  return ctx;
}

static uint32_t g_s = 2463534242u;
static float frand(void) { /* xorshift32 in [-1, 1) */
  g_s ^= g_s << 13;
  g_s ^= g_s >> 17;
  g_s ^= g_s << 5;
  return (float)(g_s >> 8) * 0x1p-23f - 1.0f;
}

/* USE_RB_BITS: a batched call, checked bit for bit against the host's
 * version of hcl_k_gemm_rb's arithmetic (test_sgemm_rb_bits); USE_SMALL_BITS:
 * the same against a multiply and an add per step (the small products) */
typedef enum {
  USE_CLBLAST,
  USE_BATCHED,
  USE_REFERENCE,
  USE_RB_BITS,
  USE_SMALL_BITS,
  USE_LOWER,     /* hcl_sgemm_lower (m = n), checked on the lower triangle */
  USE_LOWER_BITS /* the same, register-blocked bits; blocks above it untouched */
} which;

/* The product paths a test can force; 1e18 and 0 as limits send every
 * product to one path. */
enum { PATH_CLBLAST, PATH_SMALL, PATH_RB };
typedef struct {
  double small, rb;
} gemm_limits;

/* Sends every product of ctx down `path` (CLBlast and the thin kernels, the
 * small-product kernel, or the register-blocked one); returns the limits
 * that gemm_restore puts back. */
static gemm_limits gemm_force(hcl_ctx *ctx, int path) {
  gemm_limits keep = {ctx->gemm_small_max, ctx->gemm_rb_max};
  ctx->gemm_small_max = path == PATH_SMALL ? 1e18 : 0;
  ctx->gemm_rb_max = path == PATH_RB ? 1e18 : 0;
  return keep;
}

/* Puts back the limits gemm_force returned. */
static void gemm_restore(hcl_ctx *ctx, gemm_limits keep) {
  ctx->gemm_small_max = keep.small, ctx->gemm_rb_max = keep.rb;
}

/* C = alpha op(A) op(B) + beta C for `batch` products on the device, checked
 * against double. Operands sit at element offsets with padded ld and gaps
 * between batch entries; the floats around them must stay untouched. */
static void check_gemm(hcl_ctx *ctx, which w, int ta, int tb, size_t m, size_t n, size_t k,
                       float alpha, float beta, size_t batch) {
  size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  size_t lda = ac + 3, ldb = bc + 1, ldc = n + 2;
  size_t sa = ar * lda + 5, sb = br * ldb + 2, sc = m * ldc + 7; /* batch strides with gaps */
  size_t oa = 3, ob = 1, oc = 6;
  size_t na = oa + batch * sa, nb = ob + batch * sb, nc = oc + batch * sc;
  float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *got = malloc(nc * 4);
  for (size_t i = 0; i < na; i++) A[i] = frand();
  for (size_t i = 0; i < nb; i++) B[i] = frand();
  for (size_t i = 0; i < nc; i++) C[i] = frand();
  hcl_buf da = hcl_test_upload(ctx, A, na), db = hcl_test_upload(ctx, B, nb),
          dc = hcl_test_upload(ctx, C, nc);
  hcl_buf a = hcl_buf_sub(da, oa * 4, (na - oa) * 4), b = hcl_buf_sub(db, ob * 4, (nb - ob) * 4);
  hcl_buf c = hcl_buf_sub(dc, oc * 4, (nc - oc) * 4);
  int rb = w == USE_RB_BITS || w == USE_LOWER_BITS, bits = rb || w == USE_SMALL_BITS;
  int lower = w == USE_LOWER || w == USE_LOWER_BITS;
  if (lower)
    OK(hcl_sgemm_lower(ctx, ta, tb, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch));
  else if (w == USE_BATCHED || bits)
    OK(hcl_sgemm_batched(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                         batch));
  else
    for (size_t q = 0; q < batch; q++) {
      hcl_buf aq = hcl_buf_sub(a, q * sa * 4, a.size - q * sa * 4);
      hcl_buf bq = hcl_buf_sub(b, q * sb * 4, b.size - q * sb * 4);
      hcl_buf cq = hcl_buf_sub(c, q * sc * 4, c.size - q * sc * 4);
      if (w == USE_CLBLAST)
        OK(hcl_sgemm(ctx, ta, tb, m, n, k, alpha, aq, lda, bq, ldb, beta, cq, ldc));
      else
        OK(hcl_sgemm_reference(ctx, ta, tb, m, n, k, alpha, aq, lda, bq, ldb, beta, cq, ldc));
    }
  OK(hcl_buf_read(ctx, dc, got, nc * 4));
  for (size_t i = 0; i < nc; i++) { /* outside the products: untouched */
    size_t rel = i - oc, q = rel / sc, in = rel % sc;
    int inside = i >= oc && q < batch && in < m * ldc && in % ldc < n;
    if (!inside && memcmp(&got[i], &C[i], 4))
      fail_msg("variant %d%d: element %zu outside C changed", ta, tb, i);
  }
  for (size_t q = 0; q < batch && bits; q++)
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n; j++) {
        const float *Aq = A + oa + q * sa, *Bq = B + ob + q * sb;
        size_t o = oc + q * sc + i * ldc + j;
        if (lower && j > i) { /* above the diagonal: untouched outside the blocks meeting it */
          if (j / 32 * 32 > i / 8 * 8 + 7 && memcmp(&got[o], &C[o], 4))
            fail_msg("lower n=%zu: C[%zu,%zu] above the diagonal blocks changed", n, i, j);
          continue;
        }
        float s = 0.0f;
        for (size_t p = 0; p < k; p++) {
          float x = ta ? Aq[p * lda + i] : Aq[i * lda + p];
          float y = tb ? Bq[j * ldb + p] : Bq[p * ldb + j];
          s = rb && j < n - n % 16 ? fmaf(x, y, s) : s + x * y; /* -ffp-contract=off */
        }
        float v = alpha * s, want = beta == 0.0f ? v : v + beta * C[o];
        if (memcmp(&got[o], &want, 4))
          fail_msg("%s bits ta=%d tb=%d m=%zu n=%zu k=%zu batch %zu: C[%zu,%zu] = %a, want %a",
                   rb ? "rb" : "small", ta, tb, m, n, k, q, i, j, got[o], want);
      }
  for (size_t q = 0; q < batch && !bits; q++)
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n && !(lower && j > i); j++) {
        const float *Aq = A + oa + q * sa, *Bq = B + ob + q * sb;
        double s = 0, mag = 0;
        for (size_t p = 0; p < k; p++) {
          double x = ta ? Aq[p * lda + i] : Aq[i * lda + p];
          double y = tb ? Bq[j * ldb + p] : Bq[p * ldb + j];
          s += x * y;
          mag += fabs(x * y);
        }
        size_t o = oc + q * sc + i * ldc + j;
        double want = alpha * s + beta * (double)C[o];
        double tol = 2e-6 * (double)(k + 2) * (fabs(alpha) * mag + fabs(beta * C[o])) + 1e-6;
        if (!(fabs(got[o] - want) <= tol))
          fail_msg("%s ta=%d tb=%d m=%zu n=%zu k=%zu batch %zu: C[%zu,%zu] = %.9g, want %.9g",
                   w == USE_BATCHED   ? "batched"
                   : w == USE_CLBLAST ? "sgemm"
                   : lower            ? "lower"
                                      : "reference",
                   ta, tb, m, n, k, q, i, j, got[o], want);
      }
  hcl_buf_free(ctx, &da), hcl_buf_free(ctx, &db), hcl_buf_free(ctx, &dc);
  free(A), free(B), free(C), free(got);
}

static void test_selfcheck(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  OK(hcl_blas_selfcheck(ctx));
  assert_true(ctx->blas_checked != 0);
}

static void test_reference_kernel(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  for (int v = 0; v < 4; v++)
    check_gemm(ctx, USE_REFERENCE, v & 1, v >> 1, 9, 14, 11, 1.25f, 0.5f, 2);
  check_gemm(ctx, USE_REFERENCE, 0, 0, 5, 3, 0, 1.0f, -2.0f, 1); /* k = 0: C = beta C */
}

static void test_sgemm_variants(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_CLBLAST);
  for (int path = PATH_CLBLAST; path <= PATH_RB; path++) {
    gemm_force(ctx, path);
    for (int v = 0; v < 4; v++) {
      check_gemm(ctx, USE_CLBLAST, v & 1, v >> 1, 33, 17, 45, 1.5f, -0.5f, 1);
      check_gemm(ctx, USE_CLBLAST, v & 1, v >> 1, 1, 7, 3, 1.0f, 0.0f, 2);    /* thin, beta 0 */
      check_gemm(ctx, USE_CLBLAST, v & 1, v >> 1, 20, 1, 30, -1.0f, 1.0f, 1); /* one column */
    }
  }
  gemm_restore(ctx, keep);
  check_gemm(ctx, USE_CLBLAST, 0, 0, 6, 4, 0, 1.0f, 0.25f, 1); /* k = 0 */
}

/* m n k >= 128^3: CLBlast's indirect kernel (the tuned one on PoCL). */
static void test_sgemm_large(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_CLBLAST);
  for (int rb = 0; rb < 2; rb++) { /* CLBlast, then the register-blocked kernel */
    gemm_force(ctx, rb ? PATH_RB : PATH_CLBLAST);
    check_gemm(ctx, USE_CLBLAST, 0, 0, 131, 160, 129, 1.0f, 0.0f, 1);
    check_gemm(ctx, USE_CLBLAST, 1, 0, 129, 131, 160, 0.5f, 1.0f, 1);
    check_gemm(ctx, USE_CLBLAST, 0, 1, 160, 129, 131, 1.0f, -1.0f, 1);
  }
  gemm_restore(ctx, keep);
}

/* The register-blocked kernel (hcl_k_gemm_rb, CPUs) against double: every
 * transpose variant, rows not a multiple of its 8, columns of 16, 32 and the
 * edges between (16 < n < 32 and past 32), k = 16 (the RHM CNN's first
 * layer, a Taylor model's projections), replicas, alpha and beta. */
static void test_sgemm_rb(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_RB);
  hcl_ops_force_paths(1);
  for (int v = 0; v < 4; v++) {
    int ta = v & 1, tb = v >> 1;
    check_gemm(ctx, USE_BATCHED, ta, tb, 37, 64, 16, 1.0f, 0.0f, 3);
    check_gemm(ctx, USE_BATCHED, ta, tb, 9, 16, 45, 0.5f, -1.0f, 2);
    check_gemm(ctx, USE_BATCHED, ta, tb, 8, 23, 7, 1.0f, 0.5f, 2);
    check_gemm(ctx, USE_BATCHED, ta, tb, 17, 45, 33, -2.0f, 0.0f, 2);
    check_gemm(ctx, USE_CLBLAST, ta, tb, 3, 5, 2, 1.0f, 1.0f, 1);
    check_gemm(ctx, USE_CLBLAST, ta, tb, 70, 96, 40, 1.0f, 0.0f, 1);
  }
  hcl_ops_force_paths(-1);
  gemm_restore(ctx, keep);
}

/* The register-blocked kernel accumulates with fma(), one rounding per step:
 * with C = A B, A row (1, 1 + 2^-13), B column (-1, 1 + 2^-13) every entry
 * is 2^-12 + 2^-26 exactly; a separate multiply and add would round the
 * second product to 1 + 2^-12 and give 2^-12. n = 32 takes the float16 path. */
static void test_sgemm_rb_fused(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  enum { M = 8, N = 32, K = 2 };
  float e = 1.0f + 0x1p-13f, A[M * K], B[K * N], C[M * N];
  for (int i = 0; i < M; i++) A[i * K] = 1.0f, A[i * K + 1] = e;
  for (int j = 0; j < N; j++) B[j] = -1.0f, B[N + j] = e;
  hcl_buf da = hcl_test_upload(ctx, A, M * K), db = hcl_test_upload(ctx, B, K * N),
          dc = hcl_test_upload(ctx, C, M * N);
  gemm_limits keep = gemm_force(ctx, PATH_RB);
  hcl_ops_force_paths(1);
  OK(hcl_sgemm_batched(ctx, 0, 0, M, N, K, 1.0f, da, K, 0, db, N, 0, 0.0f, dc, N, 0, 1));
  hcl_ops_force_paths(-1);
  gemm_restore(ctx, keep);
  OK(hcl_buf_read(ctx, dc, C, sizeof C));
  for (int i = 0; i < M * N; i++) assert_true(C[i] == 0x1p-12f + 0x1p-26f);
  hcl_buf_free(ctx, &da), hcl_buf_free(ctx, &db), hcl_buf_free(ctx, &dc);
}

/* The register-blocked kernel's exact arithmetic on the host: columns below
 * n - n % 16 sum over p in order with one fmaf() per step, the last n % 16
 * columns with a multiply and an add (the build has -ffp-contract=off), then
 * alpha s (+ beta C). The device must give these bits: every transpose
 * variant, widths with 32-, 16-, 8-, 4- and 1-column parts, rows not a
 * multiple of 8, the RHM CNN's and the QuadNTK's shapes at small k (n = 16
 * with ta = 1 takes hcl_k_gemm_rb_tn16), replicas, alpha and beta, operands
 * at offsets with padded leading dimensions. */
static void test_sgemm_rb_bits(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_RB);
  hcl_ops_force_paths(1);
  static const size_t widths[] = {3, 8, 13, 16, 24, 29, 32, 48, 64, 77, 96}; /* n = 1 is a GEMV */
  for (int v = 0; v < 4; v++) {
    int ta = v & 1, tb = v >> 1;
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
      check_gemm(ctx, USE_RB_BITS, ta, tb, 3 + 5 * w, widths[w], 7 + 3 * w, w % 3 ? 1.0f : -0.75f,
                 w % 2 ? 0.5f : 0.0f, 1 + w % 3);
    check_gemm(ctx, USE_RB_BITS, ta, tb, 128, 256, 24, 1.0f, 0.0f, 2); /* RHM CNN layer, small k */
    check_gemm(ctx, USE_RB_BITS, ta, tb, 128, 8, 40, 1.0f, 1.0f, 2);   /* its readout */
    check_gemm(ctx, USE_RB_BITS, ta, tb, 256, 16, 64, 0.5f, 0.0f, 2);  /* QuadNTK's backward */
    check_gemm(ctx, USE_RB_BITS, ta, tb, 48, 16, 33, -1.0f, 2.0f,
               3); /* its kernel for ta = 1, beta */
    /* k > 64: groups of row blocks copy their B panel first (hcl_k_gemm_rb_pack),
     * the last group with rows past m */
    check_gemm(ctx, USE_RB_BITS, ta, tb, 100, 96, 130, 1.0f, 0.5f, 2);
    check_gemm(ctx, USE_RB_BITS, ta, tb, 128, 512, 256, 1.0f, 0.0f, 1); /* the RHM CNN's layer */
  }
  hcl_ops_force_paths(-1);
  gemm_restore(ctx, keep);
}

/* sgemm_lower: on CPUs one launch of the blocks meeting the lower triangle,
 * whose elements get hcl_k_gemm_rb's bits (with and without the B-panel
 * copy, n not a multiple of 8 or 32, beta, batches) and whose blocks above
 * it stay untouched; elsewhere (the GPU paths, here CLBlast on the CPU)
 * block rows of 64, checked against double. */
static void test_sgemm_lower(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_RB);
  for (int gpu = 0; gpu < 2; gpu++) {
    hcl_ops_force_paths(!gpu);
    which w = gpu ? USE_LOWER : USE_LOWER_BITS;
    for (int ta = 0; ta < 2; ta++) {
      check_gemm(ctx, w, ta, 0, 100, 100, 40, 1.0f, 0.0f, 2);   /* k <= 64: no panel copy */
      check_gemm(ctx, w, ta, 0, 77, 77, 130, 0.5f, 1.0f, 2);    /* panel copy, tails */
      check_gemm(ctx, w, ta, 1, 160, 160, 96, -1.0f, 0.25f, 1); /* B^T */
    }
    check_gemm(ctx, w, 1, 0, 256, 256, 300, 1.0f, 1.0f, 1); /* a Gram matrix S^T S's shape */
  }
  hcl_ops_force_paths(-1);
  gemm_restore(ctx, keep);
}

/* The register-blocked kernel's launch shape, groups along the columns or
 * the rows: the grid covered, local size dividing global size, at least 8
 * work-groups per compute unit where the grid has that many blocks (PoCL's own choice ran the RHM
 * CNN's 128 x 512 layer as one group, on one core of two), groups of at most 64. */
static void test_gemm_rb_geometry(void **state) {
  (void)state;
  static const size_t grids[][3] = {{16, 16, 1},  {8, 16, 1}, {16, 32, 1},  {1, 16, 1},  {1, 1, 1},
                                    {32, 128, 8}, {3, 7, 2},  {1, 1000, 1}, {16, 16, 18}};
  for (unsigned cus = 1; cus <= 16; cus *= 2)
    for (size_t g = 0; g < 2 * sizeof grids / sizeof *grids; g++) {
      int cols_first = g % 2;
      size_t gws[3], lws[3], nx = grids[g / 2][0], ny = grids[g / 2][1], nz = grids[g / 2][2];
      hcl_gemm_rb_geometry(nx, ny, nz, cus, cols_first, gws, lws);
      size_t groups = 1, blocks = nx * ny * nz;
      for (int d = 0; d < 3; d++) {
        assert_true(lws[d] >= 1 && gws[d] % lws[d] == 0);
        groups *= gws[d] / lws[d];
      }
      assert_true(gws[0] >= nx && gws[0] < nx + lws[0] && gws[1] >= ny && gws[1] < ny + lws[1]);
      assert_true(gws[2] == nz && lws[2] == 1 && (cols_first ? lws[1] : lws[0]) == 1);
      assert_true(lws[0] * lws[1] * lws[2] <= 64);
      assert_true(groups >= (blocks < 8 * cus ? blocks : 8 * cus));
    }
  /* the RHM CNN's 128 x 512 x 256 layer on 2 cores: groups of row blocks that
   * copy the B panel; not for k <= 64, one-row groups or too little local memory */
  size_t gws[3], lws[3];
  hcl_gemm_rb_geometry(16, 16, 1, 2, 0, gws, lws);
  assert_true(lws[1] > 1 && hcl_gemm_rb_pack(256, lws, 2u << 20));
  assert_false(hcl_gemm_rb_pack(256, lws, 32u << 10));
  assert_false(hcl_gemm_rb_pack(64, lws, 2u << 20));
  hcl_gemm_rb_geometry(16, 1, 1, 2, 0, gws, lws);
  assert_false(hcl_gemm_rb_pack(256, lws, 2u << 20));
}

/* C of one batched small product (the runtime's small kernels) with the
 * CPU (1) or the GPU (0) kernel variant, read back whole. */
static float *small_product(hcl_ctx *ctx, int cpu, int ta, int tb, size_t m, size_t n, size_t k,
                            float alpha, float beta, size_t batch) {
  size_t lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
  size_t sa = (ta ? k : m) * lda + 1, sb = (tb ? n : k) * ldb, sc = m * ldc + 2;
  size_t na = batch * sa, nb = batch * sb, nc = batch * sc;
  float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4);
  g_s = 977u; /* the same operands for both variants */
  for (size_t i = 0; i < na; i++) A[i] = frand();
  for (size_t i = 0; i < nb; i++) B[i] = frand();
  for (size_t i = 0; i < nc; i++) C[i] = frand();
  hcl_buf da = hcl_test_upload(ctx, A, na), db = hcl_test_upload(ctx, B, nb),
          dc = hcl_test_upload(ctx, C, nc);
  gemm_limits keep = gemm_force(ctx, PATH_SMALL);
  hcl_ops_force_paths(cpu);
  OK(hcl_sgemm_batched(ctx, ta, tb, m, n, k, alpha, da, lda, sa, db, ldb, sb, beta, dc, ldc, sc,
                       batch));
  hcl_ops_force_paths(-1);
  gemm_restore(ctx, keep);
  OK(hcl_buf_read(ctx, dc, C, nc * 4));
  hcl_buf_free(ctx, &da), hcl_buf_free(ctx, &db), hcl_buf_free(ctx, &dc);
  free(A), free(B);
  return C;
}

/* The CPU small-product kernel (4-row tiles against op(B) in local memory,
 * hcl_k_gemm_tile, at these sizes) gives the bits of the GPU one (one output per work-item,
 * a plain loop over p), and both are right against double: every transpose
 * variant, widths with 32-, 8- and 1-column parts (3, 8, 13, 32, 40, 45, 70),
 * alpha and beta, replicas. */
static void test_gemm_small_cpu_bits(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  static const size_t widths[] = {3, 8, 13, 32, 40, 45, 70};
  for (int v = 0; v < 4; v++)
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
      int ta = v & 1, tb = v >> 1;
      size_t m = 5 + w, n = widths[w], k = 9 + 7 * w, batch = 3;
      float beta = w % 2 ? 0.5f : 0.0f, alpha = w % 3 ? 1.0f : -1.5f;
      float *cpu = small_product(ctx, 1, ta, tb, m, n, k, alpha, beta, batch);
      float *gpu = small_product(ctx, 0, ta, tb, m, n, k, alpha, beta, batch);
      size_t nc = batch * (m * (n + 3) + 2);
      for (size_t i = 0; i < nc; i++)
        if (memcmp(&cpu[i], &gpu[i], 4))
          fail_msg("ta=%d tb=%d m=%zu n=%zu k=%zu: float %zu is %.9g on the CPU kernel, %.9g on "
                   "the GPU one",
                   ta, tb, m, n, k, i, cpu[i], gpu[i]);
      free(cpu), free(gpu);
      gemm_limits keep = gemm_force(ctx, PATH_SMALL);
      hcl_ops_force_paths(1);
      check_gemm(ctx, USE_BATCHED, ta, tb, m, n, k, alpha, beta, batch);
      hcl_ops_force_paths(-1);
      gemm_restore(ctx, keep);
    }
}

/* The CPU small-product kernels' exact arithmetic: each output sums over p
 * in order with a multiply and an add from 0, then alpha s (+ beta C), bit
 * for bit on the host. hcl_k_gemm_tile (op(B) in local memory, 4 x 32 and
 * 4 x 16 tiles): every transpose variant, widths with every n % 16 (the
 * zero-padded columns must not reach C), rows not a multiple of 4, k not a
 * multiple of 4, one entry and several,
 * alpha and beta, the staircase ResNet's shapes at 10 replicas, more than 64
 * row tiles (work-items loop over them); and hcl_k_gemm_row where op(B) does
 * not fit (k n > 4096 floats). */
static void test_gemm_small_tile_bits(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_SMALL);
  hcl_ops_force_paths(1);
  for (int v = 0; v < 4; v++) {
    int ta = v & 1, tb = v >> 1;
    for (size_t n = 2; n <= 49; n += n < 18 ? 1 : 7) /* every n % 16, then 16-column steps */
      check_gemm(ctx, USE_SMALL_BITS, ta, tb, 2 + n % 9, n, 2 + n % 11, n % 3 ? 1.0f : -0.75f,
                 n % 2 ? 0.5f : 0.0f, 1 + n % 3);
    check_gemm(ctx, USE_SMALL_BITS, ta, tb, 20, 40, 30, 1.0f, 0.0f, 10); /* the ResNet's layers */
    check_gemm(ctx, USE_SMALL_BITS, ta, tb, 40, 40, 20, 1.0f, 0.0f, 10);
    check_gemm(ctx, USE_SMALL_BITS, ta, tb, 23, 37, 13, 2.0f, -1.0f, 1);
    check_gemm(ctx, USE_SMALL_BITS, ta, tb, 301, 9, 5, 1.0f, 1.0f, 2); /* 76 row tiles */
    check_gemm(ctx, USE_SMALL_BITS, ta, tb, 6, 70, 61, 1.0f, 0.5f, 2); /* 61 x 80 > 4096 */
  }
  hcl_ops_force_paths(-1);
  gemm_restore(ctx, keep);
}

/* The FLOP count behind achieved GFLOP/s: 2 m n k per product entry, on
 * every path (CLBlast, thin, small, register-blocked), once per call. */
static void test_flop_count(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_CLBLAST);
  for (int path = PATH_CLBLAST; path <= PATH_RB; path++) {
    gemm_force(ctx, path);
    double before = ctx->gemm_flops;
    check_gemm(ctx, USE_CLBLAST, 0, 0, 33, 17, 45, 1.0f, 0.0f, 1);
    assert_true(ctx->gemm_flops - before == 2.0 * 33 * 17 * 45);
    before = ctx->gemm_flops;
    check_gemm(ctx, USE_BATCHED, 0, 1, 13, 21, 19, 1.0f, 0.0f, 3);
    assert_true(ctx->gemm_flops - before == 2.0 * 13 * 21 * 19 * 3);
  }
  gemm_restore(ctx, keep);
}

static void test_sgemm_batched(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  gemm_limits keep = gemm_force(ctx, PATH_CLBLAST);
  for (int path = PATH_CLBLAST; path <= PATH_RB; path++) {
    gemm_force(ctx, path);
    for (int v = 0; v < 4; v++)
      check_gemm(ctx, USE_BATCHED, v & 1, v >> 1, 13, 21, 19, 0.75f, 0.5f, 3);
  }
  gemm_restore(ctx, keep);
  check_gemm(ctx, USE_BATCHED, 1, 0, 8, 5, 7, 1.0f, 0.0f, 1); /* batch 1: plain sgemm */
  check_gemm(ctx, USE_BATCHED, 0, 0, 4, 6, 0, 1.0f, 3.0f, 2); /* k = 0 */
}

/* Replicas of products large enough for CLBlast's indirect kernel: the
 * column-major strided-batched call (with the waits that bound its queued
 * temporaries: with 4 MiB each call is a segment of its own), and
 * one call per entry on the shared scratch buffer (bound 0), which must not
 * let one entry's padded copies overwrite another's before they are used. */
static void test_sgemm_batched_large(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  size_t bounds[3] = {(size_t)32 << 20, (size_t)4 << 20, 0};
  gemm_limits keep = gemm_force(ctx, PATH_CLBLAST);
  for (int i = 0; i < 3; i++) {
    hcl_blas_set_pending_max(bounds[i]);
    for (int v = 0; v < 4; v++)
      check_gemm(ctx, USE_BATCHED, v & 1, v >> 1, 131, 160, 129, v ? 0.5f : 1.0f,
                 v & 1 ? 0.0f : -1.0f, 3);
    check_gemm(ctx, USE_CLBLAST, 0, 1, 160, 129, 131, 1.0f, 1.0f, 1);
  }
  hcl_blas_set_pending_max((size_t)64 << 20);
  gemm_restore(ctx, keep);
}

/* m, n or k = 1: the GEMV / rank-one kernels on CPUs, CLBlast on GPUs. */
static void test_sgemm_thin(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  for (int mode = 1; mode >= 0; mode--) {
    hcl_ops_force_paths(mode);
    for (int v = 0; v < 4; v++) {
      int ta = v & 1, tb = v >> 1;
      check_gemm(ctx, USE_CLBLAST, ta, tb, 37, 1, 45, 1.5f, -0.5f, 1); /* a column */
      check_gemm(ctx, USE_CLBLAST, ta, tb, 1, 29, 13, 0.5f, 0.0f, 1);  /* a row, tail of 8 */
      check_gemm(ctx, USE_CLBLAST, ta, tb, 1, 32, 6, 1.0f, 2.0f, 1);   /* a row, whole 8s */
      check_gemm(ctx, USE_CLBLAST, ta, tb, 19, 23, 1, -1.0f, 0.5f, 1); /* rank one */
      check_gemm(ctx, USE_CLBLAST, ta, tb, 1, 1, 33, 1.0f, 1.0f, 1);   /* a dot product */
      check_gemm(ctx, USE_BATCHED, ta, tb, 21, 1, 40, 1.0f, 0.0f, 3);  /* replicas */
      check_gemm(ctx, USE_BATCHED, ta, tb, 1, 40, 21, 1.0f, 1.0f, 3);
      check_gemm(ctx, USE_BATCHED, ta, tb, 20, 40, 1, 2.0f, 0.0f, 3);
    }
    check_gemm(ctx, USE_CLBLAST, 0, 1, 1024, 1, 512, 1.0f, 0.0f, 1); /* a readout's forward */
  }
  hcl_ops_force_paths(-1);
}

static void test_errors(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  hcl_buf b;
  OK(hcl_buf_alloc(ctx, 400, &b));
  assert_int_equal(hcl_sgemm(ctx, 0, 0, 11, 10, 10, 1, b, 10, b, 10, 0, b, 10), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(ctx), "needs"));
  assert_int_equal(hcl_sgemm(ctx, 0, 0, 2, 2, 2, 1, hcl_buf_sub(b, 2, 100), 2, b, 2, 0, b, 2),
                   HCL_ERR_PARAM);
  assert_int_equal(hcl_sgemm(ctx, 0, 0, 2, 3, 2, 1, b, 2, b, 3, 0, b, 2),
                   HCL_ERR_PARAM); /* ldc < n */
  assert_non_null(strstr(hcl_errmsg(ctx), "ldc"));
  assert_int_equal(hcl_sgemm_batched(ctx, 0, 0, 4, 4, 4, 1, b, 4, 16, b, 4, 16, 0, b, 4, 16, 7),
                   HCL_ERR_PARAM);
  hcl_buf_free(ctx, &b);
}

static void test_tuning_file(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  /* CLBlast checks the set is complete for its kernel: a valid Xgemm set */
  const char *good = "# PoCL set\n[Xgemm]\nGEMMK=0\nKREG=1\nKWG=32\nKWI=2\nMDIMA=8\nMDIMC=8\n"
                     "MWG=64\nNDIMB=32\nNDIMC=8\nNWG=128\nSA=0\nSB=0\nSTRM=0\nSTRN=0\nVWM=8\n"
                     "VWN=4\n\n[GemmRoutine]\n XGEMM_MIN_INDIRECT_SIZE = 128 \n";
  OK(hcl_blas_apply_tuning_file(ctx, hcl_test_write_temp("good.ini", good)));
  const char *missing = "[Xgemm]\nGEMMK=0\nKREG=1\n";
  assert_int_equal(hcl_blas_apply_tuning_file(ctx, hcl_test_write_temp("missing.ini", missing)),
                   HCL_ERR_BLAS);
  assert_non_null(strstr(hcl_errmsg(ctx), "missing.ini"));
  assert_int_equal(
      hcl_blas_apply_tuning_file(ctx, hcl_test_write_temp("bad.ini", "[Xgemm]\nKWG 32\n")),
      HCL_ERR_CONFIG);
  assert_non_null(strstr(hcl_errmsg(ctx), "bad.ini:2"));
  assert_int_equal(
      hcl_blas_apply_tuning_file(ctx, hcl_test_write_temp("neg.ini", "[Xgemm]\nKWG = -3\n")),
      HCL_ERR_CONFIG);
  assert_int_equal(hcl_blas_apply_tuning_file(ctx, hcl_test_write_temp("none.ini", "# empty\n")),
                   HCL_ERR_CONFIG);
  /* still correct after re-applying */
  check_gemm(ctx, USE_CLBLAST, 1, 1, 11, 9, 7, 1.0f, 0.0f, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_selfcheck),
      cmocka_unit_test(test_reference_kernel),
      cmocka_unit_test(test_sgemm_variants),
      cmocka_unit_test(test_sgemm_large),
      cmocka_unit_test(test_sgemm_rb),
      cmocka_unit_test(test_sgemm_rb_fused),
      cmocka_unit_test(test_sgemm_rb_bits),
      cmocka_unit_test(test_sgemm_lower),
      cmocka_unit_test(test_gemm_rb_geometry),
      cmocka_unit_test(test_gemm_small_cpu_bits),
      cmocka_unit_test(test_gemm_small_tile_bits),
      cmocka_unit_test(test_sgemm_batched),
      cmocka_unit_test(test_sgemm_batched_large),
      cmocka_unit_test(test_flop_count),
      cmocka_unit_test(test_sgemm_thin),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_tuning_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
