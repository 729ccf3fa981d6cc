/* Device helpers of the Gaussian targets: inputs, label noise, dot products.
 * Follows gt_math.cl (and kernels/common.cl) in every program; the draw
 * layout is described in gauss_target.h and mirrored by the tests. */

/* One sample's inputs into xr[0..d): element s*w + j (w = 4*ceil(d/4)) of
 * stream (seed, sid) as N(0, 1), exactly as hcl_rng_draw(HCL_RNG_NORMAL, 0,
 * 1) gives it (0 + 1*z, so -0 becomes +0), each Box-Muller pair computed
 * once. sphere != 0: scaled by sqrt_d * rsqrt(sum_j z_j^2), the sum taken in
 * order; an all-zero draw (probability < 2^-23 per pair) becomes
 * (sqrt_d, 0, ..., 0). */
static inline void gt_draw_x(__global float *xr, ulong seed, ulong sid, ulong s, uint d,
                             uint sphere, float sqrt_d) {
  ulong nb = ((ulong)d + 3) >> 2;
  float ss = 0.0f;
  for (ulong b = 0; b < nb; b++) {
    uint4 w = hcl_rng_block(seed, sid, s * nb + b);
    float2 p0 = hcl_normal_pair(w.x, w.y), p1 = hcl_normal_pair(w.z, w.w);
    float v[4];
    v[0] = 0.0f + 1.0f * p0.x;
    v[1] = 0.0f + 1.0f * p0.y;
    v[2] = 0.0f + 1.0f * p1.x;
    v[3] = 0.0f + 1.0f * p1.y;
    uint lim = (uint)min((ulong)4, (ulong)d - 4 * b);
    for (uint j = 0; j < lim; j++) {
      xr[4 * b + j] = v[j];
      ss = ss + v[j] * v[j];
    }
  }
  if (!sphere) return;
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
