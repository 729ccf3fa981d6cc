/* Kernels of the low_rank_poly target (SPEC 1.5), after kernels/common.cl,
 * ../lib/gt_math.cl and ../lib/gt_draw.cl. From the host: B [R, r, d]
 * (directions), a [R, r] (alpha_j times the normalising constant), off [R]
 * (minus the normalised mean with center, else 0), pw [r] (powers).
 * f(x) = (sum over j in order of a_j * h_j^{p_j}) + off, h_j = B_j . x,
 * h^p = ((h * h) * h) ... (p - 1 products in order), all in float. */

static inline float lrp_f(const __global float *xr, uint d, uint r, const __global float *B,
                          const __global float *a, float off, const __global uint *pw) {
  float f = 0.0f;
  for (uint j = 0; j < r; j++) {
    float h = gt_dot(xr, B + (ulong)j * d, d);
    float v = h;
    for (uint k = 1; k < pw[j]; k++) v = v * h;
    f = f + a[j] * v;
  }
  return f + off;
}

/* One work item per (sample, replica): x [R, count, d], y [R, count]. The
 * link arguments are unused (identity), kept for the shared launcher. */
__kernel void lrp_sample(__global float *x, ulong xo, __global float *y, ulong yo,
                         __global const ulong *seeds, uint count, uint d, ulong first, ulong wrap,
                         ulong sid_x, ulong sid_noise, uint sphere, float sqrt_d, float noise,
                         uint link_kind, uint n_coef, __global const float *coef,
                         __global const float *B, __global const float *a,
                         __global const float *off, __global const uint *pw, uint r) {
  uint i = get_global_id(0), rep = get_global_id(1);
  if (i >= count) return;
  ulong s = first + i;
  if (wrap) s %= wrap;
  ulong seed = seeds[rep], row = (ulong)rep * count + i;
  __global float *xr = HCL_AT(x, xo) + row * d;
  gt_sphere_x(xr, d, sphere, sqrt_d); /* x drawn by gt_k_draw_x */
  float v = lrp_f(xr, d, r, B + (ulong)rep * r * d, a + (ulong)rep * r, off[rep], pw);
  HCL_AT(y, yo)[row] = gt_add_noise(v, seed, sid_noise, s, noise);
}

/* out [R, count] = beta_1 . x (what 0, "hstar") or f*(x) (what 1). */
__kernel void lrp_eval(__global const float *x, ulong xo, __global float *out, ulong oo, uint count,
                       uint d, uint what, uint link_kind, uint n_coef, __global const float *coef,
                       __global const float *B, __global const float *a, __global const float *off,
                       __global const uint *pw, uint r) {
  uint i = get_global_id(0), rep = get_global_id(1);
  if (i >= count) return;
  ulong row = (ulong)rep * count + i;
  const __global float *xr = HCL_AT(x, xo) + row * d;
  const __global float *Br = B + (ulong)rep * r * d;
  HCL_AT(out, oo)
  [row] = what ? lrp_f(xr, d, r, Br, a + (ulong)rep * r, off[rep], pw) : gt_dot(xr, Br, d);
}
