/* The device's FMA rate (peak.c, kernels/peak.cl): every chain's fma runs
 * (the sums equal a host replay of every step, bit for bit), and the rate
 * is a finite positive number. */
#include "hcl_test.h"

#include <math.h>
#include <stdlib.h>

#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != HCL_OK) fail_msg("%s: %s", #call, hcl_errmsg(ctx));                              \
  } while (0)

/* What work-item gid writes after `iters` steps: its 16 chains per lane in
 * order, then its lanes in order (kernels/peak.cl). */
static float host_sum(size_t gid, unsigned lanes, uint64_t iters) {
  float t[16] = {0};
  for (unsigned l = 0; l < lanes; l++) {
    float x[16], s;
    for (int c = 0; c < 16; c++) {
      x[c] = 1.0f + (float)gid / 1024.0f + (float)c / 64.0f;
      x[c] = x[c] + (lanes > 1 ? (float)l / 4096.0f : 0.0f);
      for (uint64_t i = 0; i < iters; i++) x[c] = fmaf(x[c], 0.9999f, 1e-4f);
    }
    s = x[0];
    for (int c = 1; c < 16; c++) s += x[c];
    t[l] = s;
  }
  float u = t[0];
  for (unsigned l = 1; l < lanes; l++) u += t[l];
  return u;
}

static void test_peak_chains_run(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  unsigned lanes;
  size_t items = hcl_fma_peak_items(ctx, &lanes);
  assert_true(items >= ctx->dev.compute_units && (lanes == 1 || lanes == 16));
  hcl_buf out;
  OK(hcl_buf_alloc(ctx, items * sizeof(float), &out));
  float *got = malloc(items * sizeof(float));
  for (uint64_t iters = 1; iters <= 3001; iters += 1500) {
    double t = -1;
    OK(hcl_fma_peak_run(ctx, iters, out, &t));
    assert_true(t >= 0);
    OK(hcl_buf_read(ctx, out, got, items * sizeof(float)));
    for (size_t g = 0; g < items; g++) {
      float want = host_sum(g, lanes, iters);
      if (got[g] != want)
        fail_msg("iters %llu item %zu: %a, want %a", (unsigned long long)iters, g, got[g], want);
    }
  }
  /* a buffer too small for the launch is refused, naming both sizes */
  assert_int_equal(hcl_fma_peak_run(ctx, 1, hcl_buf_sub(out, 0, sizeof(float)), &(double){0}),
                   HCL_ERR_PARAM);
  free(got);
  hcl_buf_free(ctx, &out);
}

static void test_peak_rate(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  double g = -1;
  OK(hcl_fma_peak(ctx, &g));
  assert_true(isfinite(g) && g > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_peak_chains_run),
                                     cmocka_unit_test(test_peak_rate)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
