/* Host draws of the Gaussian targets' random parameters: element i of stream
 * (seed, id) in the runtime's sense (host->rng_draw, the host mirror of
 * kernels/common.cl), computed once on the host and uploaded, so the same on
 * every device; tests/test_gaussian_targets.c checks the bits. */
#include "gauss_target.h"

#include <math.h>
#include <string.h>

float gt_normal_host(uint64_t seed, uint64_t stream, uint64_t i) {
  return hcl_host->rng_draw(HCL_RNG_NORMAL, 0.0f, 1.0f, seed, stream, i);
}

int gt_unit_vector(uint64_t seed, uint64_t stream, uint64_t first, size_t d, double *out) {
  double ss = 0.0;
  for (size_t j = 0; j < d; j++) {
    out[j] = (double)gt_normal_host(seed, stream, first + j);
    ss += out[j] * out[j];
  }
  if (!(ss > 0.0)) return -1;
  double inv = 1.0 / sqrt(ss);
  for (size_t j = 0; j < d; j++) out[j] *= inv;
  return 0;
}

int gt_orthonormalize(double *v, size_t k, size_t d) {
  for (size_t a = 0; a < k; a++) {
    double *va = v + a * d;
    double n0 = 0.0;
    for (size_t j = 0; j < d; j++) n0 += va[j] * va[j];
    for (int pass = 0; pass < 2; pass++) /* twice is enough (Giraud et al. 2005) */
      for (size_t b = 0; b < a; b++) {
        const double *vb = v + b * d;
        double dot = 0.0;
        for (size_t j = 0; j < d; j++) dot += va[j] * vb[j];
        for (size_t j = 0; j < d; j++) va[j] -= dot * vb[j];
      }
    double n = 0.0;
    for (size_t j = 0; j < d; j++) n += va[j] * va[j];
    if (!(n > 1e-20 * n0) || !(n > 0.0)) return -1;
    double inv = 1.0 / sqrt(n);
    for (size_t j = 0; j < d; j++) va[j] *= inv;
  }
  return 0;
}
