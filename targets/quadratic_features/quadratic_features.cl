/* Kernels of the quadratic_features target (SPEC 1.4), after
 * kernels/common.cl, ../lib/gt_math.cl and ../lib/gt_draw.cl. A [R, d, d]
 * comes from the host. h*(x) = hscale * sum_a x_a (sum_b A_ab x_b), every
 * sum in index order, in float; y = g(h*) + noise * N(0, 1). */

static inline float quf_hstar(const __global float *xr, const __global float *A, uint d,
                              float hscale) {
  float h = 0.0f;
  for (uint a = 0; a < d; a++) {
    const __global float *row = A + (ulong)a * d;
    float ra = 0.0f;
    for (uint b = 0; b < d; b++) ra = ra + row[b] * xr[b];
    h = h + xr[a] * ra;
  }
  return hscale * h;
}

/* One work item per (sample, replica): x [R, count, d], y [R, count]. */
__kernel void quf_sample(__global float *x, ulong xo, __global float *y, ulong yo,
                         __global const ulong *seeds, uint count, uint d, ulong first, ulong wrap,
                         ulong sid_x, ulong sid_noise, uint sphere, float sqrt_d, float noise,
                         uint link_kind, uint n_coef, __global const float *coef,
                         __global const float *A, float hscale) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong s = first + i;
  if (wrap) s %= wrap;
  ulong seed = seeds[r], row = (ulong)r * count + i;
  __global float *xr = HCL_AT(x, xo) + row * d;
  gt_sphere_x(xr, d, sphere, sqrt_d); /* x drawn by gt_k_draw_x */
  float h = quf_hstar(xr, A + (ulong)r * d * d, d, hscale);
  float v = gt_link_eval(link_kind, coef, n_coef, h);
  HCL_AT(y, yo)[row] = gt_add_noise(v, seed, sid_noise, s, noise);
}

/* out [R, count] = h*(x) (what 0) or g(h*(x)) (what 1). */
__kernel void quf_eval(__global const float *x, ulong xo, __global float *out, ulong oo, uint count,
                       uint d, uint what, uint link_kind, uint n_coef, __global const float *coef,
                       __global const float *A, float hscale) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong row = (ulong)r * count + i;
  float h = quf_hstar(HCL_AT(x, xo) + row * d, A + (ulong)r * d * d, d, hscale);
  HCL_AT(out, oo)[row] = what ? gt_link_eval(link_kind, coef, n_coef, h) : h;
}
