/* Device helpers of the Gaussian targets: inputs, label noise, dot products.
 * Follows gt_math.cl (and kernels/common.cl) in every program; the draw
 * layout is described in gauss_target.h and mirrored by the tests. */

/* Inputs x [R, count, d] of samples s0 .. s0+count-1, rows row0 onwards:
 * element s*w + j (w = 4*ceil(d/4)) of stream (seeds[r], sid) as N(0, 1),
 * exactly as hcl_rng_draw(HCL_RNG_NORMAL, 0, 1) gives it (0 + 1*z, so -0
 * becomes +0), each Box-Muller pair computed once. A work-item draws one
 * Philox block of one sample: gws = (samples, ceil(d/4), R), the samples
 * from i0 on. A work-item per sample drawing all its blocks in a loop ran
 * in scalars (PoCL vectorises across work-items only when the item has no
 * inner loop); the stores step by `one` for the reason given at
 * hcl_k_rng_normal (kernels/ops.cl). No bound check: the host launches
 * exactly the samples. */
__kernel void gt_k_draw_x(__global float *x, ulong xo, __global const ulong *seeds, ulong count,
                          uint d, ulong s0, ulong row0, ulong i0, ulong sid) {
  size_t i = i0 + get_global_id(0), b = get_global_id(1), r = get_global_id(2);
  size_t one = get_local_size(0) != 0;
  ulong nb = ((ulong)d + 3) >> 2;
  uint4 w = hcl_rng_block(seeds[r], sid, (s0 + i) * nb + b);
  float2 p0 = hcl_normal_pair(w.x, w.y), p1 = hcl_normal_pair(w.z, w.w);
  __global float *xr = HCL_AT(x, xo) + ((ulong)r * count + row0 + i) * d + 4 * b;
  if (4 * b + 4 <= d) {
    xr[0] = 0.0f + 1.0f * p0.x, xr[one] = 0.0f + 1.0f * p0.y;
    xr[2 * one] = 0.0f + 1.0f * p1.x, xr[3 * one] = 0.0f + 1.0f * p1.y;
  } else { /* the last block of a d that is not a multiple of 4 */
    uint lim = d - 4 * (uint)b;
    xr[0] = 0.0f + 1.0f * p0.x;
    if (lim > 1) xr[1] = 0.0f + 1.0f * p0.y;
    if (lim > 2) xr[2] = 0.0f + 1.0f * p1.x;
  }
}

/* sphere != 0: one sample's drawn inputs xr[0..d) scaled by sqrt_d *
 * rsqrt(sum_j x_j^2), the sum taken in order; an all-zero draw (probability
 * < 2^-23 per pair) becomes (sqrt_d, 0, ..., 0). */
static inline void gt_sphere_x(__global float *xr, uint d, uint sphere, float sqrt_d) {
  if (!sphere) return;
  float ss = 0.0f;
  for (uint j = 0; j < d; j++) ss = ss + xr[j] * xr[j];
  if (!(ss > 0.0f)) {
    xr[0] = sqrt_d;
    for (uint j = 1; j < d; j++) xr[j] = 0.0f;
    return;
  }
  float sc = gt_sphere_scale(ss, sqrt_d);
  for (uint j = 0; j < d; j++) xr[j] = xr[j] * sc;
}

/* v + noise * N(0, 1), the normal = element s of stream (seed, sid). */
static inline float gt_add_noise(float v, ulong seed, ulong sid, ulong s, float noise) {
  if (noise == 0.0f) return v;
  uint4 w = hcl_rng_block(seed, sid, s >> 2);
  return v + noise * hcl_rng_draw(HCL_RNG_NORMAL, 0.0f, 1.0f, w, (uint)(s & 3));
}

/* sum_j a[j] b[j], in order j = 0..d-1. */
static inline float gt_dot(const __global float *a, const __global float *b, uint d) {
  float h = 0.0f;
  for (uint j = 0; j < d; j++) h = h + a[j] * b[j];
  return h;
}
