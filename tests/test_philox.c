/* Philox-4x32-10 and the random draws (kernels/common.cl, runtime/philox.c,
 * hcl_rng_fill): Random123 known answers on host and device; device draws
 * equal the host mirror bit for bit for every distribution and for several
 * splits of a range; the exact-arithmetic log/sqrt/sincos of the normal
 * draw checked bit for bit against the host on every one of the 2^24 inputs
 * and against libm in double; sampling moments of 1e6 draws. */
#include "hcl_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Host mirrors of the word maps (runtime/philox.c, not in internal.h). */
float hcl_rng_radius_host(uint32_t w);
void hcl_rng_sincos_host(uint32_t w, float *sin_out, float *cos_out);

static const char *k_test_src =
    "__kernel void t_philox(__global const uint *in, __global uint *out) {\n"
    "  size_t i = get_global_id(0);\n"
    "  uint4 c = vload4(0, in + 6 * i);\n"
    "  uint2 k = vload2(0, in + 6 * i + 4);\n"
    "  vstore4(hcl_philox4x32(c, k), 0, out + 4 * i);\n"
    "}\n"
    "__kernel void t_words(__global float *rad, __global float *sn, __global float *cs) {\n"
    "  uint k = (uint)get_global_id(0);\n"
    "  uint w = (k << 8) | ((k * 2654435761u) >> 24);\n"
    "  rad[k] = hcl_rng_radius(w);\n"
    "  float2 s = hcl_rng_sincos(w);\n"
    "  sn[k] = s.x;\n"
    "  cs[k] = s.y;\n"
    "}\n";

static cl_program g_prog;

static hcl_ctx *ctx_or_skip(void) {
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  if (!g_prog && hcl_program_build(ctx, "test_philox", k_test_src, "", &g_prog) != HCL_OK)
    fail_msg("%s", hcl_errmsg(ctx));
  return ctx;
}

static cl_kernel kernel(hcl_ctx *ctx, const char *name) {
  cl_kernel k;
  if (hcl_kernel_create(ctx, g_prog, name, &k) != HCL_OK) fail_msg("%s", hcl_errmsg(ctx));
  return k;
}

#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != HCL_OK) fail_msg("%s: %s", #call, hcl_errmsg(ctx));                              \
  } while (0)

/* Random123 kat_vectors: philox4x32 10 rounds. */
static const uint32_t kat[3][10] = {
    {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
     0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
     0x5001e420, 0x24126ea1}};

static void test_known_answers_host(void **state) {
  (void)state;
  for (int v = 0; v < 3; v++) {
    uint32_t out[4];
    hcl_philox4x32(&kat[v][4], &kat[v][0], out);
    for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[v][6 + j]);
  }
}

static void test_known_answers_device(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  uint32_t in[18], out[12];
  for (int v = 0; v < 3; v++) memcpy(in + 6 * v, kat[v], 6 * sizeof(uint32_t));
  hcl_buf bi, bo;
  OK(hcl_buf_alloc(ctx, sizeof in, &bi));
  OK(hcl_buf_alloc(ctx, sizeof out, &bo));
  OK(hcl_buf_write(ctx, bi, in, sizeof in));
  cl_kernel k = kernel(ctx, "t_philox");
  size_t gws = 3;
  hcl_arg args[] = {HCL_ARG(bi.mem), HCL_ARG(bo.mem)};
  OK(hcl_run_kernel(ctx, k, 1, &gws, NULL, "t_philox", 2, args));
  OK(hcl_buf_read(ctx, bo, out, sizeof out));
  for (int v = 0; v < 3; v++)
    for (int j = 0; j < 4; j++) assert_int_equal(out[4 * v + j], kat[v][6 + j]);
  clReleaseKernel(k);
  hcl_buf_free(ctx, &bi);
  hcl_buf_free(ctx, &bo);
}

/* Every 24-bit input of the radius and angle maps: device == host bit for
 * bit, and both within 1e-6 (relative) of libm in double. */
static void test_word_maps_exhaustive(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t N = (size_t)1 << 24;
  float *rad = malloc(N * 4), *sn = malloc(N * 4), *cs = malloc(N * 4);
  assert_non_null(rad);
  assert_non_null(sn);
  assert_non_null(cs);
  hcl_buf br, bs, bc;
  OK(hcl_buf_alloc(ctx, N * 4, &br));
  OK(hcl_buf_alloc(ctx, N * 4, &bs));
  OK(hcl_buf_alloc(ctx, N * 4, &bc));
  cl_kernel k = kernel(ctx, "t_words");
  size_t gws = N, lws = 256;
  hcl_arg args[] = {HCL_ARG(br.mem), HCL_ARG(bs.mem), HCL_ARG(bc.mem)};
  OK(hcl_run_kernel(ctx, k, 1, &gws, &lws, "t_words", 3, args));
  OK(hcl_buf_read(ctx, br, rad, N * 4));
  OK(hcl_buf_read(ctx, bs, sn, N * 4));
  OK(hcl_buf_read(ctx, bc, cs, N * 4));
  size_t mismatches = 0;
  double max_rad = 0, max_sc = 0;
  for (uint32_t kk = 0; kk < (uint32_t)N; kk++) {
    uint32_t w = (kk << 8) | ((kk * 2654435761u) >> 24);
    float r = hcl_rng_radius_host(w), s, c;
    hcl_rng_sincos_host(w, &s, &c);
    if (memcmp(&r, &rad[kk], 4) || memcmp(&s, &sn[kk], 4) || memcmp(&c, &cs[kk], 4)) {
      if (mismatches++ < 5)
        print_error("word %08x: device r=%a s=%a c=%a host r=%a s=%a c=%a\n", w, rad[kk], sn[kk],
                    cs[kk], r, s, c);
    }
    double u = ((double)kk + 1.0) * 0x1p-24;
    double rr = sqrt(-2.0 * log(u));
    double er = fabs(r - rr) / (rr > 0 ? rr : 1.0);
    if (er > max_rad) max_rad = er;
    double ang = 2.0 * M_PI * (double)kk * 0x1p-24;
    double rs = sin(ang), rc = cos(ang);
    /* relative, with a floor for the exact zeros at quarter turns (libm's
     * sin(pi) is 1.2e-16, not 0) */
    double es = fabs(s - rs) / fmax(fabs(rs), 1e-9), ec = fabs(c - rc) / fmax(fabs(rc), 1e-9);
    if (es > max_sc) max_sc = es;
    if (ec > max_sc) max_sc = ec;
  }
  print_message("exact-arithmetic normal: max relative error radius %.3g, sincos %.3g\n", max_rad,
                max_sc);
  assert_int_equal(mismatches, 0);
  assert_true(max_rad < 1e-6);
  assert_true(max_sc < 1e-6);
  clReleaseKernel(k);
  hcl_buf_free(ctx, &br);
  hcl_buf_free(ctx, &bs);
  hcl_buf_free(ctx, &bc);
  free(rad), free(sn), free(cs);
}

static const uint64_t k_seeds[3] = {1u, 0xDEADBEEFCAFEBABEull, 0x8000000000000005ull};

/* rng_fill == hcl_rng_host for each distribution, replicas with a stride,
 * a non-zero buffer offset, and ranges split at odd points. */
static void test_device_equals_host(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, n = 1001, stride = 1013, off = 7;
  const uint64_t streams[2] = {7u, (1ull << 40) + 3u};
  const uint64_t firsts[4] = {0, 1, 3, 4294967297ull * 4 + 2}; /* the last crosses 32-bit blocks */
  const struct {
    hcl_rng_dist d;
    float a, b;
  } dists[] = {{HCL_RNG_UNIFORM, -2.0f, 3.0f},
               {HCL_RNG_NORMAL, 0.5f, 2.0f},
               {HCL_RNG_RADEMACHER, 0.0f, 0.0f},
               {HCL_RNG_BERNOULLI, 0.3f, 0.0f}};
  size_t total = off + R * stride;
  float *got = malloc(total * 4), *piece = malloc(total * 4);
  hcl_buf buf;
  OK(hcl_buf_alloc(ctx, total * 4, &buf));
  hcl_buf out = hcl_buf_sub(buf, off * 4, R * stride * 4);
  for (size_t di = 0; di < 4; di++)
    for (size_t si = 0; si < 2; si++)
      for (size_t fi = 0; fi < 4; fi++) {
        OK(hcl_rng_fill(ctx, dists[di].d, dists[di].a, dists[di].b, k_seeds, R, streams[si],
                        firsts[fi], out, stride, n));
        OK(hcl_buf_read(ctx, buf, got, total * 4));
        for (size_t r = 0; r < R; r++)
          for (size_t j = 0; j < n; j++) {
            float h = hcl_rng_host(dists[di].d, dists[di].a, dists[di].b, k_seeds[r], streams[si],
                                   firsts[fi] + j);
            if (memcmp(&h, &got[off + r * stride + j], 4))
              fail_msg("dist %d stream %llu first %llu r %zu j %zu: device %a host %a",
                       (int)dists[di].d, (unsigned long long)streams[si],
                       (unsigned long long)firsts[fi], r, j, got[off + r * stride + j], h);
          }
        /* the same range in three pieces at odd split points */
        OK(hcl_fill(ctx, buf, -7.0f, total));
        const size_t cut[4] = {0, 5, 506, n};
        for (int p = 0; p < 3; p++)
          OK(hcl_rng_fill(ctx, dists[di].d, dists[di].a, dists[di].b, k_seeds, R, streams[si],
                          firsts[fi] + cut[p], hcl_buf_sub(out, cut[p] * 4, out.size - cut[p] * 4),
                          stride, cut[p + 1] - cut[p]));
        OK(hcl_buf_read(ctx, buf, piece, total * 4));
        for (size_t r = 0; r < R; r++)
          assert_memory_equal(piece + off + r * stride, got + off + r * stride, n * 4);
        for (size_t i = 0; i < off; i++) assert_true(piece[i] == -7.0f); /* offset respected */
        for (size_t r = 0; r < R; r++) /* nothing written past each replica's n */
          for (size_t j = n; j < stride; j++) assert_true(piece[off + r * stride + j] == -7.0f);
      }
  hcl_buf_free(ctx, &buf);
  free(got), free(piece);
}

/* Moments of 1e6 draws within sampling error, and each normal equal to the
 * libm Box-Muller in double of the same two words within 1e-6 relative. */
static void test_distributions(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t N = 1000000;
  const uint64_t seed = 42, stream = 3;
  float *x = malloc(N * 4);
  hcl_buf b;
  OK(hcl_buf_alloc(ctx, N * 4, &b));

  OK(hcl_rng_fill(ctx, HCL_RNG_NORMAL, 0.0f, 1.0f, &seed, 1, stream, 0, b, N, N));
  OK(hcl_buf_read(ctx, b, x, N * 4));
  double m = 0, v = 0, m4 = 0, maxrel = 0;
  for (size_t i = 0; i < N; i++) m += x[i];
  m /= (double)N;
  for (size_t i = 0; i < N; i++) {
    double d = x[i] - m;
    v += d * d;
    m4 += d * d * d * d;
  }
  v /= (double)N;
  m4 /= (double)N;
  assert_true(fabs(m) < 5.0 / sqrt((double)N));               /* sd of the mean 1e-3 */
  assert_true(fabs(v - 1.0) < 5.0 * sqrt(2.0 / (double)N));   /* sd of the variance 1.4e-3 */
  assert_true(fabs(m4 - 3.0) < 5.0 * sqrt(96.0 / (double)N)); /* kurtosis: sd ~ sqrt(96/N) */
  for (size_t i = 0; i < N; i++) {
    uint64_t blk = i >> 2;
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t w[4];
    hcl_philox4x32(key, ctr, w);
    size_t p = (i & 3) >> 1;
    double u1 = ((double)(w[2 * p] >> 8) + 1.0) * 0x1p-24;
    double th = 2.0 * M_PI * (double)(w[2 * p + 1] >> 8) * 0x1p-24;
    double z = sqrt(-2.0 * log(u1)) * ((i & 1) ? sin(th) : cos(th));
    double rel = fabs(x[i] - z) / fmax(fabs(z), 1e-6);
    if (rel > maxrel) maxrel = rel;
  }
  print_message("normal draws vs libm Box-Muller in double: max relative error %.3g\n", maxrel);
  assert_true(maxrel < 2e-6);

  OK(hcl_rng_fill(ctx, HCL_RNG_UNIFORM, -1.0f, 3.0f, &seed, 1, stream, 0, b, N, N));
  OK(hcl_buf_read(ctx, b, x, N * 4));
  m = v = 0;
  for (size_t i = 0; i < N; i++) {
    assert_true(x[i] >= -1.0f && x[i] < 3.0f);
    m += x[i];
    v += (double)x[i] * x[i];
  }
  m /= (double)N;
  v = v / (double)N - m * m;
  assert_true(fabs(m - 1.0) < 5.0 * sqrt(16.0 / 12.0 / (double)N));
  assert_true(fabs(v - 16.0 / 12.0) < 0.01);

  OK(hcl_rng_fill(ctx, HCL_RNG_BERNOULLI, 0.3f, 0.0f, &seed, 1, stream, 0, b, N, N));
  OK(hcl_buf_read(ctx, b, x, N * 4));
  m = 0;
  for (size_t i = 0; i < N; i++) {
    assert_true(x[i] == 0.0f || x[i] == 1.0f);
    m += x[i];
  }
  assert_true(fabs(m / (double)N - 0.3) < 5.0 * sqrt(0.21 / (double)N));

  OK(hcl_rng_fill(ctx, HCL_RNG_RADEMACHER, 0.0f, 0.0f, &seed, 1, stream, 0, b, N, N));
  OK(hcl_buf_read(ctx, b, x, N * 4));
  m = 0;
  for (size_t i = 0; i < N; i++) {
    assert_true(x[i] == 1.0f || x[i] == -1.0f);
    m += x[i];
  }
  assert_true(fabs(m / (double)N) < 5.0 / sqrt((double)N));

  /* different streams and seeds give different draws */
  float a1[8], a2[8];
  uint64_t s2 = 43;
  OK(hcl_rng_fill(ctx, HCL_RNG_UNIFORM, 0.0f, 1.0f, &seed, 1, stream, 0, b, 8, 8));
  OK(hcl_buf_read(ctx, b, a1, sizeof a1));
  OK(hcl_rng_fill(ctx, HCL_RNG_UNIFORM, 0.0f, 1.0f, &s2, 1, stream, 0, b, 8, 8));
  OK(hcl_buf_read(ctx, b, a2, sizeof a2));
  assert_memory_not_equal(a1, a2, sizeof a1);
  OK(hcl_rng_fill(ctx, HCL_RNG_UNIFORM, 0.0f, 1.0f, &seed, 1, stream + 1, 0, b, 8, 8));
  OK(hcl_buf_read(ctx, b, a2, sizeof a2));
  assert_memory_not_equal(a1, a2, sizeof a1);
  hcl_buf_free(ctx, &b);
  free(x);
}

/* Bad arguments fail with a message instead of writing out of bounds. */
static void test_rng_errors(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  hcl_buf b;
  uint64_t seed = 1;
  OK(hcl_buf_alloc(ctx, 40, &b));
  assert_int_equal(hcl_rng_fill(ctx, HCL_RNG_UNIFORM, 0, 1, &seed, 1, 0, 0, b, 11, 11),
                   HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(ctx), "out"));
  assert_int_equal(hcl_rng_fill(ctx, (hcl_rng_dist)9, 0, 1, &seed, 1, 0, 0, b, 10, 10),
                   HCL_ERR_PARAM);
  assert_int_equal(
      hcl_rng_fill(ctx, HCL_RNG_UNIFORM, 0, 1, &seed, 1, 0, 0, hcl_buf_sub(b, 2, 36), 4, 4),
      HCL_ERR_PARAM); /* offset not a multiple of 4 bytes */
  hcl_buf_free(ctx, &b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answers_host),   cmocka_unit_test(test_known_answers_device),
      cmocka_unit_test(test_word_maps_exhaustive), cmocka_unit_test(test_device_equals_host),
      cmocka_unit_test(test_distributions),        cmocka_unit_test(test_rng_errors),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  if (g_prog) clReleaseProgram(g_prog);
  return rc;
}
