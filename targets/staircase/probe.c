/* The Fourier-coefficient probe: c_S = mean over probe_samples inputs of the
 * probe stream of f(x) chi_S(x), f the model (hcl_probe_forward), for every
 * probe set S. Reduced on the device in a fixed order (per-chunk partial
 * sums over STC_PROBE_BLOCK samples, then a compensated running sum per
 * (replica, set)), read back once. */
#include "staircase.h"

#include <stdlib.h>
#include <string.h>

#define STC_PROBE_BLOCK 64u /* samples one work item sums (matches nothing else) */

static hcl_status probe_alloc(stc_target *t, hcl_ctx *ctx) {
  size_t R = t->R, S = t->probe_sets.count, m = t->probe_chunk;
  size_t G = (m + STC_PROBE_BLOCK - 1) / STC_PROBE_BLOCK;
  HCL_TRY(hcl_host->buf_alloc(ctx, R * m * t->n * sizeof(float), &t->p_x));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * m * sizeof(float), &t->p_y));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * m * sizeof(float), &t->p_f));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * G * S * sizeof(float), &t->p_partial));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * S * 2 * sizeof(float), &t->p_acc));
  return HCL_OK;
}

/* Add sum_i f[r, i] chi_S(x[r, i, :]) over m samples to the accumulators. */
static hcl_status probe_accumulate(stc_target *t, hcl_ctx *ctx, size_t m) {
  cl_ulong zero = 0;
  cl_uint cm = (cl_uint)m, n = (cl_uint)t->n, S = (cl_uint)t->probe_sets.count;
  cl_uint B = STC_PROBE_BLOCK, G = (cl_uint)((m + STC_PROBE_BLOCK - 1) / STC_PROBE_BLOCK);
  hcl_arg a1[] = {HCL_ARG(t->p_x.mem),
                  HCL_ARG(zero),
                  HCL_ARG(t->p_f.mem),
                  HCL_ARG(zero),
                  HCL_ARG(t->p_partial.mem),
                  HCL_ARG(cm),
                  HCL_ARG(n),
                  HCL_ARG(S),
                  HCL_ARG(G),
                  HCL_ARG(B),
                  HCL_ARG(t->d_poff.mem),
                  HCL_ARG(t->d_pidx.mem)};
  size_t g1[3] = {G, S, t->R};
  HCL_TRY(hcl_host->run_kernel(ctx, t->k_probe_partial, 3, g1, NULL, "staircase_probe_partial",
                               sizeof a1 / sizeof *a1, a1));
  hcl_arg a2[] = {HCL_ARG(t->p_partial.mem), HCL_ARG(t->p_acc.mem), HCL_ARG(G), HCL_ARG(S)};
  size_t g2[2] = {S, t->R};
  return hcl_host->run_kernel(ctx, t->k_probe_sum, 2, g2, NULL, "staircase_probe_sum",
                              sizeof a2 / sizeof *a2, a2);
}

hcl_status stc_probe(void *self, hcl_probe *p) {
  stc_target *t = self;
  hcl_ctx *ctx = hcl_host->probe_ctx(p);
  size_t R = t->R, S = t->probe_sets.count;
  if (hcl_host->probe_replicas(p) != R)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "staircase probe: %zu replicas, target made for %zu",
                          hcl_host->probe_replicas(p), R);
  if (!S || !t->probe_samples) return HCL_OK;
  if (!t->p_acc.mem) {
    t->probe_chunk = t->max_batch < t->probe_samples ? t->max_batch : (size_t)t->probe_samples;
    HCL_TRY(probe_alloc(t, ctx));
  }
  HCL_TRY(hcl_host->fill(ctx, t->p_acc, 0.0f, R * S * 2));
  for (uint64_t first = 0; first < t->probe_samples; first += t->probe_chunk) {
    uint64_t left = t->probe_samples - first;
    size_t m = left < t->probe_chunk ? (size_t)left : t->probe_chunk;
    hcl_buf x = t->p_x, y = t->p_y, f = t->p_f;
    x.size = R * m * t->n * sizeof(float);
    y.size = f.size = R * m * sizeof(float);
    HCL_TRY(hcl_host->probe_batch(p, HCL_STREAM_PROBE, first, m, x, y));
    HCL_TRY(hcl_host->probe_forward(p, x, m, f));
    HCL_TRY(probe_accumulate(t, ctx, m));
  }
  float *acc = malloc(R * S * 2 * sizeof *acc);
  double *vals = malloc(R * sizeof *vals);
  if (!acc || !vals) {
    free(acc);
    free(vals);
    return hcl_host->fail(ctx, HCL_ERR_NOMEM, "staircase probe: out of host memory");
  }
  hcl_status rc = hcl_host->buf_read(ctx, t->p_acc, acc, R * S * 2 * sizeof *acc);
  for (size_t s = 0; s < S && rc == HCL_OK; s++) {
    char name[256];
    stc_set_name(&t->probe_sets, s, name, sizeof name);
    for (size_t r = 0; r < R; r++)
      vals[r] = ((double)acc[(r * S + s) * 2] - (double)acc[(r * S + s) * 2 + 1]) /
                (double)t->probe_samples;
    rc = hcl_host->probe_emit(p, name, vals);
  }
  free(acc);
  free(vals);
  return rc;
}
