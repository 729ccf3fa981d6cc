/* Host draws of the Gaussian targets' random parameters: the normal map of
 * kernels/common.cl on the runtime's host Philox (host->philox), so that a
 * parameter is "element i of stream (seed, id)" in the runtime's sense,
 * computed once on the host and uploaded (the same on every device). Every
 * float expression is in the order of common.cl (built with
 * -ffp-contract=off); tests/test_gaussian_targets.c checks the bits against
 * the runtime's own mirror. */
#include "gauss_target.h"

#include <math.h>
#include <string.h>

const hcl_host_api *gt_host;

static float as_f(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint32_t as_u(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* hcl_ln of common.cl. */
static float ln_exact(float x) {
  uint32_t ix = as_u(x);
  int e = (int)(ix >> 23) - 127;
  uint32_t mb = ix & 0x007fffffu;
  if (mb >= 0x3504f3u) {
    mb |= 0x3f000000u;
    e += 1;
  } else {
    mb |= 0x3f800000u;
  }
  float f = as_f(mb) - 1.0f;
  float d = 2.0f + f;
  float y = 1.0f - 0.25f * d;
  for (int k = 0; k < 3; k++) y = y + y * (1.0f - d * y);
  float s = f * y;
  float z = s * s;
  float p = 0.333333343f + z * (0.200000003f + z * (0.142857149f + z * 0.111111112f));
  float l1p = 2.0f * (s + s * (z * p));
  float fe = (float)e;
  return fe * 6.931381226e-01f + (fe * 9.058000614e-06f + l1p);
}

/* hcl_sqrt_newton of common.cl. */
static float sqrt_newton(float v) {
  if (!(v > 0.0f)) return 0.0f;
  float y = as_f(0x5f3759dfu - (as_u(v) >> 1));
  for (int k = 0; k < 3; k++) y = y * (1.5f - 0.5f * v * y * y);
  return v * y;
}

/* hcl_rng_radius of common.cl. */
static float radius(uint32_t w) {
  float u = (float)((w >> 8) + 1u) * 5.9604644775390625e-8f;
  return sqrt_newton(-2.0f * ln_exact(u));
}

/* hcl_rng_sincos of common.cl: *s = sin, *c = cos of (w >> 8) 2^-24 turns. */
static void sincos_turns(uint32_t w, float *sn, float *cs) {
  uint32_t k = w >> 8;
  uint32_t qq = (k + 0x200000u) >> 22;
  int j = (int)k - (int)(qq << 22);
  float t = (float)j * 5.9604644775390625e-8f;
  float t2 = t * t;
  float s = t * (6.283185482e+00f +
                 t2 * (-4.134170151e+01f +
                       t2 * (8.160524750e+01f + t2 * (-7.670585632e+01f + t2 * 4.205869293e+01f))));
  float c =
      1.0f +
      t2 * (-1.973920822e+01f +
            t2 * (6.493939209e+01f +
                  t2 * (-8.545681763e+01f + t2 * (6.024464035e+01f + t2 * -2.642625618e+01f))));
  switch (qq & 3u) {
  case 0: *sn = s, *cs = c; break;
  case 1: *sn = c, *cs = -s; break;
  case 2: *sn = -s, *cs = -c; break;
  default: *sn = -c, *cs = s; break;
  }
}

float gt_normal_host(uint64_t seed, uint64_t stream, uint64_t i) {
  uint64_t b = i >> 2;
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
  uint32_t x[4];
  gt_host->philox(key, ctr, x);
  unsigned j = (unsigned)(i & 3u), p = j >> 1;
  float r = radius(x[2 * p]), sn, cs;
  sincos_turns(x[2 * p + 1], &sn, &cs);
  float z = (j & 1u) ? r * sn : r * cs;
  return 0.0f + 1.0f * z;
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
