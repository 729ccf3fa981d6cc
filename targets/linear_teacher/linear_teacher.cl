/* Kernels of the linear_teacher target (SPEC 1.6). kernels/common.cl is
 * prepended by the runtime (Philox streams, exact-arithmetic normals,
 * FP_CONTRACT OFF), so every + and * below is one correctly rounded IEEE
 * operation and the host reference in tests/test_linear_teacher.c
 * reproduces every bit.
 *
 * Sample i of stream s (i modulo train_size for the train stream when
 * train_size > 0), replica seed `seed`, m = d (gaussian) or d + 2 (ball),
 * nb = ceil(m / 4):
 *   for attempt t = 0, 1, ..., attempts - 1:
 *     g_j = element i*4*nb + j of runtime stream (seed, LT_STREAM_X | t << 8 | s),
 *           normal N(0, 1) (0 + 1*z, as hcl_rng_draw), j = 0..m-1;
 *     gaussian: x_j = g_j;
 *     ball:     q = sum_{j=0..m-1} g_j*g_j (in order), rho = lt_rsqrt(q),
 *               x_j = g_j * rho for j < d (the first d coordinates of a
 *               uniform point of the sphere S^{d+1}: uniform in the unit
 *               ball of R^d);
 *     dot = sum_{j=0..d-1} w*_j x_j in order from 0.0f;
 *     accept when |dot| >= gamma (gamma rounded to float): stop.
 *   No accepted attempt: x, dot of the last attempt, capped[r] += 1.
 *   y = dot >= 0 ? +1 : -1; then, when noise > 0, y = -y if
 *   u01(word) < noise for element i of stream (seed, LT_STREAM_FLIP | s). */

#define LT_STREAM_X 0x4C54430000000000UL
#define LT_STREAM_FLIP 0x4C54430100000000UL
#define LT_IN_BALL 1u

/* 1/sqrt(q) for q >= 0 (0 for q = 0): bit-level first guess and three
 * Newton steps, no sqrt or '/' (their accuracy differs between devices). */
static inline float lt_rsqrt(float q) {
  if (!(q > 0.0f)) return 0.0f;
  float y = as_float(0x5f3759dfu - (as_uint(q) >> 1));
  for (int k = 0; k < 3; k++) y = y * (1.5f - 0.5f * q * y * y);
  return y;
}

/* sum_j a[j] b[j], j = 0..d-1 in order, from 0.0f. */
static inline float lt_dot(const __global float *a, const __global float *b, uint d) {
  float acc = 0.0f;
  for (uint j = 0; j < d; j++) acc = acc + a[j] * b[j];
  return acc;
}

/* One work item per (sample, replica): x [R, count, d], y [R, count, 1].
 * Attempts t0..t1-1 of the rejection loop (0..attempts-1 in one launch, or
 * in rounds so that the host can stop between them: a round with t0 > 0
 * skips the samples already done (y != 0; the host zeroes y first), and a
 * sample still missing the margin when t1 < attempts leaves y = 0 and counts
 * itself in *pending). Every attempt t is the same draw in any split. */
__kernel void lt_sample(__global float *x, ulong xo, __global float *y, ulong yo,
                        __global const uint *keys, __global const float *wstar,
                        __global uint *capped, uint count, uint d, ulong first, ulong train_size,
                        uint stream, uint inputs, uint attempts, float gamma, float noise, uint t0,
                        uint t1, __global uint *pending) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  if (t0 > 0u && HCL_AT(y, yo)[(ulong)r * count + i] != 0.0f) return;
  ulong s = first + i;
  if (train_size) s %= train_size;
  ulong seed = (ulong)keys[2 * r] | ((ulong)keys[2 * r + 1] << 32);
  uint m = inputs == LT_IN_BALL ? d + 2u : d;
  ulong nb = ((ulong)m + 3) >> 2;
  __global float *xr = HCL_AT(x, xo) + ((ulong)r * count + i) * d;
  const __global float *w = wstar + (ulong)r * d;
  float dot = 0.0f;
  int accepted = 0;
  for (uint t = t0; t < t1 && !accepted; t++) {
    ulong st = LT_STREAM_X | ((ulong)t << 8) | (ulong)stream;
    float e0 = 0.0f, e1 = 0.0f; /* ball: the two extra coordinates */
    for (ulong b = 0; b < nb; b++) {
      uint4 wd = hcl_rng_block(seed, st, s * nb + b);
      uint lim = (uint)min((ulong)4, (ulong)m - 4 * b);
      float2 p01 = hcl_normal_pair(wd.x, wd.y);
      float2 p23 = lim > 2u ? hcl_normal_pair(wd.z, wd.w) : (float2)(0.0f, 0.0f);
      for (uint j = 0; j < lim; j++) {
        float z = j == 0u ? p01.x : j == 1u ? p01.y : j == 2u ? p23.x : p23.y;
        float g = 0.0f + 1.0f * z; /* exactly hcl_rng_draw(NORMAL, 0, 1) */
        uint c = (uint)(4 * b) + j;
        if (c < d)
          xr[c] = g;
        else if (c == d)
          e0 = g;
        else
          e1 = g;
      }
    }
    if (inputs == LT_IN_BALL) {
      float q = 0.0f;
      for (uint j = 0; j < d; j++) q = q + xr[j] * xr[j];
      q = q + e0 * e0;
      q = q + e1 * e1;
      float rho = lt_rsqrt(q);
      for (uint j = 0; j < d; j++) xr[j] = xr[j] * rho;
    }
    dot = lt_dot(w, xr, d);
    accepted = fabs(dot) >= gamma;
  }
  if (!accepted && t1 < attempts) { /* the next round goes on */
    atomic_inc(pending);
    return;
  }
  if (!accepted) atomic_inc(capped + r);
  float yv = dot >= 0.0f ? 1.0f : -1.0f;
  if (noise > 0.0f) {
    uint4 wf = hcl_rng_block(seed, LT_STREAM_FLIP | (ulong)stream, s >> 2);
    if (hcl_u01(hcl_word(wf, (uint)(s & 3))) < noise) yv = -yv;
  }
  HCL_AT(y, yo)[(ulong)r * count + i] = yv;
}

/* out [R, count] = w*.x (eval "margin"), the same sum as lt_sample's. */
__kernel void lt_margin(__global const float *x, ulong xo, __global float *out, ulong oo,
                        __global const float *wstar, uint count, uint d) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong row = (ulong)r * count + i;
  HCL_AT(out, oo)[row] = lt_dot(wstar + (ulong)r * d, HCL_AT(x, xo) + row * d, d);
}

/* counts [R, 2] += (#{sign f = sign(dir.x + off)}, #{sign f = sign(w*.x)})
 * over samples [g*B, min((g+1)*B, count)) of replica r, work item (g, r);
 * sign(z) = z >= 0 ? +1 : -1. Integer sums: any order gives the same. */
__kernel void lt_agree(__global const float *x, ulong xo, __global const float *f, ulong fo,
                       __global const float *wstar, __global const float *dir,
                       __global const float *off, __global uint *counts, uint count, uint d, uint G,
                       uint B) {
  uint g = get_global_id(0), r = get_global_id(1);
  if (g >= G) return;
  uint lo = g * B, hi = min(lo + B, count);
  uint a = 0, b = 0;
  for (uint i = lo; i < hi; i++) {
    ulong row = (ulong)r * count + i;
    const __global float *xr = HCL_AT(x, xo) + row * d;
    int sf = HCL_AT(f, fo)[row] >= 0.0f;
    int sh = lt_dot(dir + (ulong)r * d, xr, d) + off[r] >= 0.0f;
    int st = lt_dot(wstar + (ulong)r * d, xr, d) >= 0.0f;
    a += sf == sh;
    b += sf == st;
  }
  atomic_add(counts + 2 * r, a);
  atomic_add(counts + 2 * r + 1, b);
}
