/* meanfield kernels: the activation sigma(z) = erf(z / sqrt 2) and its
 * derivative, which the runtime's fused ops do not have. Buffers travel as
 * (pointer, offset in floats); one work-item per element of [R, n, H]. */

/* h = sigma(z) */
__kernel void mf_act(__global const float *z, ulong z_off, __global float *h, ulong h_off,
                     ulong count) {
  size_t i = get_global_id(0);
  if (i < count) h[h_off + i] = erf(z[z_off + i] * 0.70710678f);
}

/* dz = dh * sigma'(z), sigma'(z) = sqrt(2 / pi) exp(-z^2 / 2); dz may be dh. */
__kernel void mf_act_backward(__global const float *dh, ulong dh_off, __global const float *z,
                              ulong z_off, __global float *dz, ulong dz_off, ulong count) {
  size_t i = get_global_id(0);
  if (i >= count) return;
  float v = z[z_off + i];
  dz[dz_off + i] = dh[dh_off + i] * 0.79788456f * exp(-0.5f * v * v);
}
