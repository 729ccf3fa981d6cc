/* The device's measured FMA rate (kernels/peak.cl), so that hiercl bench
 * states each case's GFLOP/s as a fraction of what the device did in the
 * same call: on a shared machine the rate of the same loop moved between
 * 101 and 195 GFLOP/s per core within an hour, so a peak measured once
 * and quoted later says little. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <time.h>

extern const char hcl_src_peak[];

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Work-items and lanes of the launch: on CPUs 8 float16 items per compute
 * unit (PoCL runs one work-group per thread; several even out a loaded
 * core), on other devices 2 048 scalar items per compute unit. */
static void peak_shape(const hcl_ctx *ctx, size_t *items, unsigned *lanes) {
  size_t cus = ctx->dev.compute_units ? ctx->dev.compute_units : 1;
  int cpu = hcl_ops_cpu_paths(ctx);
  *items = cpu ? 8 * cus : 2048 * cus;
  *lanes = cpu ? 16 : 1;
}

/* The program's kernel for this device (hcl_k_peak_vec on CPUs). */
static hcl_status peak_kernel(hcl_ctx *ctx, unsigned lanes, cl_program *prog, cl_kernel *k) {
  *prog = NULL, *k = NULL;
  HCL_TRY(hcl_program_build(ctx, "peak", hcl_src_peak, "", prog));
  return hcl_kernel_create(ctx, *prog, lanes > 1 ? "hcl_k_peak_vec" : "hcl_k_peak_scalar", k);
}

/* One launch of kernel k over `items` items, waited for; *seconds its wall time. */
static hcl_status peak_launch(hcl_ctx *ctx, cl_kernel k, size_t items, unsigned lanes,
                              uint64_t iters, hcl_buf out, double *seconds) {
  cl_ulong it = iters;
  float a = 0.9999f, b = 1e-4f;
  hcl_arg args[] = {HCL_ARG(it), HCL_ARG(a), HCL_ARG(b), HCL_ARG(out.mem)};
  double t0 = now_s();
  size_t one = 1; /* on CPUs a group per item: PoCL's own choice ran them all on one core */
  hcl_status rc = hcl_run_kernel(ctx, k, 1, &items, lanes > 1 ? &one : NULL, "fma_peak", 4, args);
  if (rc == HCL_OK) rc = hcl_finish(ctx);
  *seconds = now_s() - t0;
  return rc;
}

static void peak_release(cl_program prog, cl_kernel k) {
  if (k) clReleaseKernel(k);
  if (prog) clReleaseProgram(prog);
}

hcl_status hcl_fma_peak_run(hcl_ctx *ctx, uint64_t iters, hcl_buf out, double *seconds) {
  size_t items;
  unsigned lanes;
  peak_shape(ctx, &items, &lanes);
  if (out.size < items * sizeof(float))
    return hcl_fail(ctx, HCL_ERR_PARAM, "fma peak: output buffer holds %zu bytes, needs %zu",
                    out.size, items * sizeof(float));
  cl_program prog;
  cl_kernel k;
  hcl_status rc = peak_kernel(ctx, lanes, &prog, &k);
  if (rc == HCL_OK) rc = peak_launch(ctx, k, items, lanes, iters, out, seconds);
  peak_release(prog, k);
  return rc;
}

size_t hcl_fma_peak_items(const hcl_ctx *ctx, unsigned *lanes) {
  size_t items;
  unsigned l;
  peak_shape(ctx, &items, &l);
  if (lanes) *lanes = l;
  return items;
}

hcl_status hcl_fma_peak(hcl_ctx *ctx, double *gflops) {
  *gflops = 0;
  unsigned lanes;
  size_t items = hcl_fma_peak_items(ctx, &lanes);
  hcl_buf out = {0};
  cl_program prog;
  cl_kernel k;
  hcl_status rc = peak_kernel(ctx, lanes, &prog, &k);
  if (rc == HCL_OK) rc = hcl_buf_alloc(ctx, items * sizeof(float), &out);
  /* grow the loop until a launch takes 20 ms (launch cost < 1 %), then the
   * best of 5 such launches */
  uint64_t iters = 1024;
  double t = 0, best = 0;
  while (rc == HCL_OK && (rc = peak_launch(ctx, k, items, lanes, iters, out, &t)) == HCL_OK &&
         t < 0.02 && iters < ((uint64_t)1 << 40))
    iters *= t > 0.002 ? (uint64_t)(0.02 / t) + 1 : 8;
  for (int i = 0; rc == HCL_OK && i < 5; i++)
    if ((rc = peak_launch(ctx, k, items, lanes, iters, out, &t)) == HCL_OK && t > 0) {
      double g = 2.0 * 16 * lanes * (double)iters * (double)items / t / 1e9;
      if (g > best) best = g;
    }
  hcl_buf_free(ctx, &out);
  peak_release(prog, k);
  *gflops = best;
  return rc;
}
