/* Host mirror of the device random draws of kernels/common.cl: Philox-4x32-10
 * and the maps from its words to uniform, normal, Rademacher and Bernoulli
 * draws. Bit-identical to the device because both sides use only correctly
 * rounded + - * on floats (the project builds with -ffp-contract=off and the
 * OpenCL side sets FP_CONTRACT OFF) and integer bit operations. Keep every
 * expression here in the same order as in common.cl. */
#include "internal.h"

#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void hcl_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int i = 0; i < 10; i++) {
    if (i) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static float as_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint32_t as_uint(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* hcl_u01 of common.cl. */
static float u01(uint32_t w) { return (float)(w >> 8) * 5.9604644775390625e-8f; }

/* hcl_ln of common.cl. */
static float ln_exact(float x) {
  uint32_t ix = as_uint(x);
  int e = (int)(ix >> 23) - 127;
  uint32_t mb = ix & 0x007fffffu;
  if (mb >= 0x3504f3u) {
    mb |= 0x3f000000u;
    e += 1;
  } else {
    mb |= 0x3f800000u;
  }
  float f = as_float(mb) - 1.0f;
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
  float y = as_float(0x5f3759dfu - (as_uint(v) >> 1));
  for (int k = 0; k < 3; k++) y = y * (1.5f - 0.5f * v * y * y);
  return v * y;
}

/* hcl_rng_radius of common.cl (exported for tests/test_philox.c). */
float hcl_rng_radius_host(uint32_t w);
float hcl_rng_radius_host(uint32_t w) {
  float u = (float)((w >> 8) + 1u) * 5.9604644775390625e-8f;
  return sqrt_newton(-2.0f * ln_exact(u));
}

/* hcl_rng_sincos of common.cl (exported for tests/test_philox.c). */
void hcl_rng_sincos_host(uint32_t w, float *sin_out, float *cos_out);
void hcl_rng_sincos_host(uint32_t w, float *sin_out, float *cos_out) {
  uint32_t k = w >> 8;
  uint32_t qq = (k + 0x200000u) >> 22;
  int32_t j = (int32_t)k - (int32_t)(qq << 22);
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
  case 0: *sin_out = s, *cos_out = c; break;
  case 1: *sin_out = c, *cos_out = -s; break;
  case 2: *sin_out = -s, *cos_out = -c; break;
  default: *sin_out = -c, *cos_out = s; break;
  }
}

float hcl_rng_host(hcl_rng_dist dist, float a, float b, uint64_t seed, uint64_t stream,
                   uint64_t i) {
  uint64_t block = i >> 2;
  uint32_t j = (uint32_t)(i & 3u);
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                           (uint32_t)(stream >> 32)};
  uint32_t x[4];
  hcl_philox4x32(key, ctr, x);
  uint32_t w = x[j];
  switch (dist) {
  case HCL_RNG_UNIFORM: return a + (b - a) * u01(w);
  case HCL_RNG_RADEMACHER: return (w >> 31) ? -1.0f : 1.0f;
  case HCL_RNG_BERNOULLI: return u01(w) < a ? 1.0f : 0.0f;
  case HCL_RNG_NORMAL:
  default: {
    uint32_t p = j >> 1;
    float r = hcl_rng_radius_host(x[2 * p]), s, c;
    hcl_rng_sincos_host(x[2 * p + 1], &s, &c);
    float z = (j & 1u) ? r * s : r * c;
    return a + b * z;
  }
  }
}
