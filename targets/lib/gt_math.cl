/* Arithmetic of the Gaussian targets that must give the same bits on every
 * device and on the host. This one file is compiled twice: as OpenCL C
 * (embedded, after kernels/common.cl, which sets FP_CONTRACT OFF) and as C11
 * (#included by gt_link.c, built with -ffp-contract=off). It uses only
 * correctly rounded + - *, comparisons, integer bit operations and exact
 * hex-float constants: no '/', sqrt, exp or tanh, whose accuracy OpenCL
 * leaves to the device. (Subnormal intermediates would differ on devices
 * that flush them; the values here never produce any.)
 */
#ifndef GT_MATH_CL
#define GT_MATH_CL

#ifdef __OPENCL_VERSION__
#define GT_FN static inline
#define GT_GLOBAL __global
typedef uint gt_u32;
#define gt_as_float(u) as_float(u)
#define gt_as_u32(f) as_uint(f)
#else
#include <stdint.h>
#include <string.h>
#define GT_FN static inline
#define GT_GLOBAL
typedef uint32_t gt_u32;
GT_FN float gt_as_float(gt_u32 u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
GT_FN gt_u32 gt_as_u32(float f) {
  gt_u32 u;
  memcpy(&u, &f, sizeof u);
  return u;
}
#endif

/* Device link kinds (GT_LINK_* of gauss_target.h). */
#define GT_K_POLY 0u
#define GT_K_RELU 1u
#define GT_K_TANH 2u
#define GT_K_IDENTITY 3u

/* 1/sqrt(v) for normal floats v > 0: the bit-level first guess (relative
 * error < 0.18%) and three Newton steps (then a few ulp). */
GT_FN float gt_rsqrt(float v) {
  float y = gt_as_float(0x5f3759dfu - (gt_as_u32(v) >> 1));
  y = y * (1.5f - 0.5f * v * y * y); /* written out: CPU drivers vectorise */
  y = y * (1.5f - 0.5f * v * y * y); /* straight-line code across work-items */
  y = y * (1.5f - 0.5f * v * y * y);
  return y;
}

/* Factor taking a vector with squared norm sum_sq > 0 to radius sqrt_d. */
GT_FN float gt_sphere_scale(float sum_sq, float sqrt_d) { return sqrt_d * gt_rsqrt(sum_sq); }

/* 1/v for normal floats 2 <= v < 2^27: the bit-level first guess (relative
 * error < 12%) and four Newton steps (error squares each step). */
GT_FN float gt_recip(float v) {
  float y = gt_as_float(0x7ef311c3u - gt_as_u32(v));
  y = y * (2.0f - v * y);
  y = y * (2.0f - v * y);
  y = y * (2.0f - v * y);
  y = y * (2.0f - v * y);
  return y;
}

/* tanh(z), absolute error about 1e-7 (tests/test_gaussian_targets.c checks
 * it against libm). tanh|z| = e / (e + 2) with e = expm1(2|z|), computed as
 * 2^k (1 + p(r)) - 1 by Cody-Waite reduction 2|z| = k ln2 + r, |r| <= 0.35,
 * and the degree-8 Taylor polynomial p of expm1 (truncation < 3e-10); tanh
 * rounds to 1 beyond |z| = 9. NaN passes through. */
GT_FN float gt_tanh(float z) {
  float a = z < 0.0f ? -z : z;
  float t;
  if (a == 0.0f) return z; /* keeps the sign of zero: tanh is odd */
  if (!(a < 9.0f)) {
    if (a != a) return z;
    t = 1.0f;
  } else {
    float u = 2.0f * a;                       /* [0, 18) */
    int k = (int)(u * 0x1.715476p+0f + 0.5f); /* round(u / ln 2), 0..26 */
    float fk = (float)k;
    float r = (u - fk * 0x1.62e4p-1f) - fk * 0x1.7f7d1cp-20f; /* ln2 = hi + lo, fk*hi exact */
    float p =
        r +
        r * r *
            (0x1p-1f +
             r * (0x1.555556p-3f +
                  r * (0x1.555556p-5f +
                       r * (0x1.111112p-7f +
                            r * (0x1.6c16c2p-10f + r * (0x1.a01a02p-13f + r * 0x1.a01a02p-16f))))));
    float sc = gt_as_float((gt_u32)(k + 127) << 23); /* 2^k */
    float e = sc * p + (sc - 1.0f);                  /* expm1(u) */
    float den = e + 2.0f;
    float y = gt_recip(den);
    t = e * y;
    t = t + (e - t * den) * y; /* one correction of the quotient */
  }
  return z < 0.0f ? -t : t;
}

/* g(z) for a link kind; poly: Horner on c[0..nc) (c_0 first), nc >= 1. */
GT_FN float gt_link_eval(gt_u32 kind, const GT_GLOBAL float *c, gt_u32 nc, float z) {
  if (kind == GT_K_RELU) return z < 0.0f ? 0.0f : z;
  if (kind == GT_K_TANH) return gt_tanh(z);
  if (kind == GT_K_IDENTITY) return z;
  float g = c[nc - 1];
  for (gt_u32 k = nc - 1; k > 0; k--) g = g * z + c[k - 1];
  return g;
}

#endif
