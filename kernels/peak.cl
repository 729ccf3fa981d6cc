/* The device's FMA rate, for hiercl bench's fraction of the peak: every
 * work-item runs 16 independent chains x = fma(x, a, b) for `iters` steps
 * (enough independent chains to cover the FMA latency on every port) and
 * writes the sum of its chains' final values, so no step can be dropped.
 * hcl_k_peak_vec works in float16 (CPUs: one vector register per chain),
 * hcl_k_peak_scalar in float (GPUs: one lane per work-item). Chain c of
 * lane l starts at 1 + gid / 1024 + c / 64 + l / 4096 (l = 0 for the scalar
 * kernel); the sum adds the chains in order, then the lanes in order. */
#define HCL_PEAK_CHAINS(T, lane0)                                                                  \
  T x[16];                                                                                         \
  for (int c = 0; c < 16; c++)                                                                     \
    x[c] = (T)(1.0f + (float)get_global_id(0) / 1024.0f + (float)c / 64.0f) + (lane0);             \
  for (ulong i = 0; i < iters; i++) {                                                              \
    x[0] = fma(x[0], a, b), x[1] = fma(x[1], a, b), x[2] = fma(x[2], a, b);                        \
    x[3] = fma(x[3], a, b), x[4] = fma(x[4], a, b), x[5] = fma(x[5], a, b);                        \
    x[6] = fma(x[6], a, b), x[7] = fma(x[7], a, b), x[8] = fma(x[8], a, b);                        \
    x[9] = fma(x[9], a, b), x[10] = fma(x[10], a, b), x[11] = fma(x[11], a, b);                    \
    x[12] = fma(x[12], a, b), x[13] = fma(x[13], a, b), x[14] = fma(x[14], a, b);                  \
    x[15] = fma(x[15], a, b);                                                                      \
  }                                                                                                \
  T s = x[0];                                                                                      \
  for (int c = 1; c < 16; c++) s += x[c]

__kernel void hcl_k_peak_vec(ulong iters, float a, float b, __global float *out) {
  HCL_PEAK_CHAINS(float16, (float16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) / 4096.0f);
  float t[16];
  vstore16(s, 0, t);
  float u = t[0];
  for (int l = 1; l < 16; l++) u += t[l];
  out[get_global_id(0)] = u;
}

__kernel void hcl_k_peak_scalar(ulong iters, float a, float b, __global float *out) {
  HCL_PEAK_CHAINS(float, 0.0f);
  out[get_global_id(0)] = s;
}
