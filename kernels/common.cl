/* hiercl common OpenCL library: prepended by the runtime to every program
 * (its own and the plugins'). Helpers only, no __kernel, names hcl_ / HCL_.
 * OpenCL C 1.2. runtime/philox.c mirrors the random draws on the host bit for
 * bit; change both together (tests/test_philox.c checks every word).
 *
 * Why contraction is off: with no fused multiply-add every + - * below is one
 * correctly rounded IEEE operation on every device and on the host (which is
 * built with -ffp-contract=off), so the draws are the same bits everywhere.
 * That is also why there is no '/', log, sqrt, sin or cos here: OpenCL only
 * bounds their error in ulps, and devices differ.
 */
#pragma OPENCL FP_CONTRACT OFF

#define HCL_FN static inline
/* The random draws' helpers are always inlined: in a large program (a
 * target's) clang left calls to them in the kernel, and a call stops PoCL's
 * vectoriser ("call instruction cannot be vectorized"): 2-3x slower. */
#define HCL_RNG_FN static inline __attribute__((always_inline))

/* Buffers travel as (pointer, offset in elements): hcl_buf.offset / 4. */
#define HCL_AT(ptr, off) ((ptr) + (off))

/* ---- Philox-4x32-10 (Salmon et al. 2011, Random123 constants) ------------ */
#define HCL_PHILOX_M0 0xD2511F53u
#define HCL_PHILOX_M1 0xCD9E8D57u
#define HCL_PHILOX_W0 0x9E3779B9u
#define HCL_PHILOX_W1 0xBB67AE85u

/* One Philox round and key bump. Scalar uints and 64-bit products instead of
 * mul_hi on uint4, and the ten rounds written out: PoCL vectorises this form
 * across work-items (5-10x faster measured). */
#define HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1)                                                   \
  do {                                                                                             \
    ulong p0_ = (ulong)HCL_PHILOX_M0 * c0, p1_ = (ulong)HCL_PHILOX_M1 * c2;                        \
    uint n0_ = (uint)(p1_ >> 32) ^ c1 ^ k0, n2_ = (uint)(p0_ >> 32) ^ c3 ^ k1;                     \
    c0 = n0_, c1 = (uint)p1_, c2 = n2_, c3 = (uint)p0_;                                            \
    k0 += HCL_PHILOX_W0, k1 += HCL_PHILOX_W1; /* the bump after round 10 is unused */              \
  } while (0)

/* philox4x32-10(counter, key): 10 rounds, the key bumped between rounds. */
HCL_RNG_FN uint4 hcl_philox4x32(uint4 ctr, uint2 key) {
  uint c0 = ctr.x, c1 = ctr.y, c2 = ctr.z, c3 = ctr.w, k0 = key.x, k1 = key.y;
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  HCL_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
  return (uint4)(c0, c1, c2, c3);
}

/* ---- streams ---------------------------------------------------------------
 * A stream is (seed, stream_id), both 64-bit. Its element i (64-bit) comes
 * from block b = i / 4:
 *   key     = (lo32(seed), hi32(seed))
 *   counter = (lo32(b), hi32(b), lo32(stream_id), hi32(stream_id))
 *   x[0..3] = philox4x32-10(counter, key)
 * and uses word j = i % 4 of it:
 *   uniform    U[a,b):  a + (b - a) * u01(x[j])             (may round to b)
 *   rademacher:         x[j] >> 31 ? -1 : +1                 (a, b unused)
 *   bernoulli:          u01(x[j]) < a ? 1 : 0
 *   normal N(a, b^2):   a + b * z, Box-Muller on the pair p = j / 2:
 *                       r = radius(x[2p]), (s, c) = sincos2pi(angle(x[2p+1])),
 *                       z = r*c for even j, r*s for odd j
 * where u01(w) = (w >> 8) * 2^-24 in [0, 1) (exact), radius(w) = sqrt(-2 ln u)
 * with u = ((w >> 8) + 1) * 2^-24 in (0, 1] (so |z| <= 5.77), angle(w) =
 * (w >> 8) * 2^-24 turns. Every element depends only on (seed, stream, i),
 * so any split of a range gives the same bits.
 * Accuracy of the exact-arithmetic normal against libm in double (every
 * 24-bit input checked by tests/test_philox.c): radius 2.6e-7 and sin/cos
 * 1.9e-7 relative at worst, so z within 3.6e-7 relative of the libm
 * Box-Muller of the same words (the test's bound: 1e-6 and 2e-6). */
HCL_RNG_FN uint4 hcl_rng_block(ulong seed, ulong stream, ulong block) {
  uint4 ctr = (uint4)((uint)block, (uint)(block >> 32), (uint)stream, (uint)(stream >> 32));
  return hcl_philox4x32(ctr, (uint2)((uint)seed, (uint)(seed >> 32)));
}

/* Word j (0..3) of a block. */
HCL_RNG_FN uint hcl_word(uint4 x, uint j) { return j == 0 ? x.x : j == 1 ? x.y : j == 2 ? x.z : x.w; }

/* (w >> 8) * 2^-24: the top 24 bits as a float in [0, 1), exactly. */
HCL_RNG_FN float hcl_u01(uint w) { return (float)(w >> 8) * 5.9604644775390625e-8f; }

/* The word maps below are straight-line code, no branches or loops, so that
 * CPU drivers vectorise them across work-items (PoCL: 5x). hcl_ln and
 * hcl_sqrt_newton also avoid compares: PoCL's clang packs the isomorphic
 * compares of an item's several draws into short vectors (SLP) before it
 * builds the work-item loop, and its loop vectoriser then gives up
 * ("instruction return type cannot be vectorized"): 3x slower measured. */

/* Natural log for normal floats x > 0 (used on (0, 1]), fdlibm's reduction
 * x = 2^e (1 + f), sqrt(1/2) <= 1 + f < sqrt(2), ln(1 + f) = 2 atanh(s) with
 * s = f / (2 + f); the reciprocal by Newton steps (no '/'). */
HCL_RNG_FN float hcl_ln(float x) {
  uint ix = as_uint(x);
  uint mb = ix & 0x007fffffu;
  uint big = (mb + 0x004afb0du) >> 23; /* mb >= 0x3504f3 (sqrt(2)): halve it */
  int e = (int)(ix >> 23) - 127 + (int)big;
  mb |= 0x3f800000u - (big << 23); /* 0x3f000000 when big */
  float f = as_float(mb) - 1.0f; /* exact (Sterbenz) */
  float d = 2.0f + f;            /* in [1.707, 2.415] */
  float y = 1.0f - 0.25f * d;    /* ~1/d, relative error <= 0.043 */
  y = y + y * (1.0f - d * y);    /* three Newton steps, written out: CPU drivers */
  y = y + y * (1.0f - d * y);    /* vectorise straight-line code, not inner loops */
  y = y + y * (1.0f - d * y);
  float s = f * y;
  float z = s * s; /* <= 0.0295: the series below is exact to 2e-9 */
  float p = 0.333333343f + z * (0.200000003f + z * (0.142857149f + z * 0.111111112f));
  float l1p = 2.0f * (s + s * (z * p));
  float fe = (float)e;
  return fe * 6.931381226e-01f + (fe * 9.058000614e-06f + l1p);
}

/* sqrt(v) for v >= 0 by the bit-level first guess of 1/sqrt and three
 * Newton steps (relative error about 2 ulp); + 0 turns v = -0 into +0. */
HCL_RNG_FN float hcl_sqrt_newton(float v) {
  float y = as_float(0x5f3759dfu - (as_uint(v) >> 1)); /* finite for any v >= -0 */
  y = y * (1.5f - 0.5f * v * y * y);                   /* written out, as in hcl_ln */
  y = y * (1.5f - 0.5f * v * y * y);
  y = y * (1.5f - 0.5f * v * y * y);
  return v * y + 0.0f;
}

/* Box-Muller radius sqrt(-2 ln u), u = ((w >> 8) + 1) 2^-24 in (0, 1]. */
HCL_RNG_FN float hcl_rng_radius(uint w) {
  float u = (float)((w >> 8) + 1u) * 5.9604644775390625e-8f;
  return hcl_sqrt_newton(-2.0f * hcl_ln(u));
}

/* (sin, cos) of the angle (w >> 8) 2^-24 turns, returned as (x = sin, y = cos).
 * Exact reduction on the integer to the nearest quarter turn q and a rest
 * |t| <= 1/8 turn; Taylor polynomials in t to 3e-8. */
HCL_RNG_FN float2 hcl_rng_sincos(uint w) {
  uint k = w >> 8;
  uint qq = (k + 0x200000u) >> 22;  /* nearest quarter, 0..4 */
  int j = (int)k - (int)(qq << 22); /* in [-2^21, 2^21) */
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
  /* rotate by q quarter turns: (s, c), (c, -s), (-s, -c), (-c, s) */
  uint q = qq & 3u;
  float sn = (q & 1u) ? c : s, cs = (q & 1u) ? s : c;
  return (float2)((q & 2u) ? -sn : sn, ((q + 1u) & 2u) ? -cs : cs);
}

/* Standard normals from two words: (r cos, r sin). */
HCL_RNG_FN float2 hcl_normal_pair(uint w_radius, uint w_angle) {
  float r = hcl_rng_radius(w_radius);
  float2 sc = hcl_rng_sincos(w_angle);
  return (float2)(r * sc.y, r * sc.x);
}

/* Distribution ids: hcl_rng_dist of plugin.h. */
#define HCL_RNG_UNIFORM 0
#define HCL_RNG_NORMAL 1
#define HCL_RNG_RADEMACHER 2
#define HCL_RNG_BERNOULLI 3

/* Element j (0..3) of block x for a distribution (see "streams" above).
 * With dist and j known at compile time this folds to one map; a normal
 * draw computes one Box-Muller pair (to fill a whole block, call
 * hcl_normal_pair on (x.x, x.y) and (x.z, x.w) instead: half the work). */
HCL_RNG_FN float hcl_rng_draw(int dist, float a, float b, uint4 x, uint j) {
  if (dist == HCL_RNG_NORMAL) {
    uint wr = j < 2u ? x.x : x.z, wa = j < 2u ? x.y : x.w;
    float r = hcl_rng_radius(wr);
    float2 sc = hcl_rng_sincos(wa);
    return a + b * ((j & 1u) ? r * sc.x : r * sc.y);
  }
  uint w = hcl_word(x, j);
  if (dist == HCL_RNG_UNIFORM) return a + (b - a) * hcl_u01(w);
  if (dist == HCL_RNG_RADEMACHER) return (w >> 31) ? -1.0f : 1.0f;
  return hcl_u01(w) < a ? 1.0f : 0.0f; /* HCL_RNG_BERNOULLI */
}

/* Element i of stream (seed, stream) for a distribution: one Philox block per
 * call; kernels drawing many elements should call hcl_rng_block once per 4. */
HCL_RNG_FN float hcl_rng_at(int dist, float a, float b, ulong seed, ulong stream, ulong i) {
  return hcl_rng_draw(dist, a, b, hcl_rng_block(seed, stream, i >> 2), (uint)(i & 3u));
}

/* ---- activations (hcl_act of plugin.h) ------------------------------------ */
#define HCL_ACT_IDENTITY 0
#define HCL_ACT_RELU 1
#define HCL_ACT_LEAKY_RELU 2
#define HCL_ACT_QUADRATIC 3
#define HCL_ACT_TANH 4
#define HCL_LEAKY_SLOPE 0.1f

/* act(z). NaN passes through relu (as in torch) so divergence stays visible. */
HCL_FN float hcl_act_f(int act, float z) {
  switch (act) {
  case HCL_ACT_RELU: return z < 0.0f ? 0.0f : z;
  case HCL_ACT_LEAKY_RELU: return z < 0.0f ? HCL_LEAKY_SLOPE * z : z;
  case HCL_ACT_QUADRATIC: return z * z;
  case HCL_ACT_TANH: return tanh(z);
  default: return z;
  }
}

/* act'(z), with torch's conventions at 0: relu' = 0, leaky' = slope. */
HCL_FN float hcl_act_df(int act, float z) {
  switch (act) {
  case HCL_ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
  case HCL_ACT_LEAKY_RELU: return z > 0.0f ? 1.0f : HCL_LEAKY_SLOPE;
  case HCL_ACT_QUADRATIC: return 2.0f * z;
  case HCL_ACT_TANH: {
    float t = tanh(z);
    return 1.0f - t * t;
  }
  default: return 1.0f;
  }
}
