/* Kernels of the single_index target (SPEC 1.3), after kernels/common.cl,
 * ../lib/gt_math.cl and ../lib/gt_draw.cl. beta [R, d] comes from the host.
 * y = g(h) + noise * N(0, 1) with h = beta . x = sum_j beta_j x_j (in order,
 * float), g the link (gt_link_eval). */

/* One work item per (sample, replica): x [R, count, d], y [R, count]. */
__kernel void six_sample(__global float *x, ulong xo, __global float *y, ulong yo,
                         __global const ulong *seeds, uint count, uint d, ulong first, ulong wrap,
                         ulong sid_x, ulong sid_noise, uint sphere, float sqrt_d, float noise,
                         uint link_kind, uint n_coef, __global const float *coef,
                         __global const float *beta) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong s = first + i;
  if (wrap) s %= wrap;
  ulong seed = seeds[r], row = (ulong)r * count + i;
  __global float *xr = HCL_AT(x, xo) + row * d;
  gt_sphere_x(xr, d, sphere, sqrt_d); /* x drawn by gt_k_draw_x */
  float h = gt_dot(xr, beta + (ulong)r * d, d);
  float v = gt_link_eval(link_kind, coef, n_coef, h);
  HCL_AT(y, yo)[row] = gt_add_noise(v, seed, sid_noise, s, noise);
}

/* out [R, count] = h*(x) = beta . x (what 0) or g(beta . x) (what 1). */
__kernel void six_eval(__global const float *x, ulong xo, __global float *out, ulong oo, uint count,
                       uint d, uint what, uint link_kind, uint n_coef, __global const float *coef,
                       __global const float *beta) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong row = (ulong)r * count + i;
  float h = gt_dot(HCL_AT(x, xo) + row * d, beta + (ulong)r * d, d);
  HCL_AT(out, oo)[row] = what ? gt_link_eval(link_kind, coef, n_coef, h) : h;
}
