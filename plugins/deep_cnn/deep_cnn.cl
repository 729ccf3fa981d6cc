/* Kernels of the deep_cnn model (SPEC 2.3). kernels/common.cl is prepended
 * by the runtime. Buffers travel as (pointer, offset in floats).
 *
 * They serve the ridge_chain algorithm (the network itself is a model graph).
 * Layouts (b = sample index over all replicas, b = r * n + i):
 *   input x       [b, c, pos]          channels first (the target's [v, d])
 *   level outputs [b, pos, c]          channels last (one GEMM row per position)
 *   patches       [b, p, c * s + j]    position p*s+j of channel c: the order of
 *                                      PyTorch's Conv1d weight [H, c_in, s]
 * With filter size = stride = s the patch matrix is a permutation of its
 * source, so im2col below only moves floats.
 *
 * The other kernels are one-dimensional over `total` elements (the host
 * pads the global size to a multiple of the work-group size), so that any
 * shape gets full work-groups. */

/* dst[r, i, p, c*s + j] = src[so + r*rs + i*sb + c*sc + (p*s + j)*sp] for
 * sample i < count of replica r. sc/sp select channels-first (sc = d, sp = 1)
 * or channels-last (sc = 1, sp = C) sources; rs lets a chunk of samples be
 * taken from a larger batch. A three-dimensional range (c, pos = p*s + j,
 * b = r*count + i) so that a work-item does one 32-bit division, not six
 * 64-bit ones (those made this copy 10 % of an RHM CNN step on PoCL). */
__kernel void dcnn_im2col(__global const float *src, ulong so, ulong rs, ulong sb, ulong sc,
                          ulong sp, __global float *dst, ulong dof, uint count, uint P, uint C,
                          uint s) {
  uint c = get_global_id(0), pos = get_global_id(1), b = get_global_id(2);
  uint r = b / count, i = b - r * count, p = pos / s, j = pos - p * s;
  size_t o = ((size_t)b * P + p) * ((size_t)C * s) + (size_t)c * s + j;
  dst[dof + o] = src[so + r * rs + i * sb + c * sc + pos * sp];
}

/* Random Fourier features in place: f[r, row, k] = amp * cos(f + phase[r, k])
 * for f [R, rows, D]. total = R * rows * D. */
__kernel void dcnn_rff(__global float *f, ulong fo, __global const float *phase, ulong po, uint D,
                       ulong rows, float amp, ulong total) {
  size_t g = get_global_id(0);
  if (g >= total) return;
  size_t r = g / (rows * D), k = g % D;
  f[fo + g] = amp * cos(f[fo + g] + phase[po + r * D + k]);
}

/* Rows of q [rows, C] divided by their sum (a row summing to less than 1e-12
 * in absolute value becomes uniform 1/C). total = rows. */
__kernel void dcnn_normalise(__global float *q, ulong qo, uint C, ulong total) {
  size_t row = get_global_id(0);
  if (row >= total) return;
  __global float *v = q + qo + row * C;
  float sum = 0.0f;
  for (uint c = 0; c < C; c++) sum += v[c];
  if (fabs(sum) < 1e-12f) {
    for (uint c = 0; c < C; c++) v[c] = 1.0f / (float)C;
    return;
  }
  float inv = 1.0f / sum;
  for (uint c = 0; c < C; c++) v[c] = v[c] * inv;
}

/* One-hot labels: e[b, k] = (k == (int)y[b]) ? 1 : 0 for class indices stored
 * as floats. total = B * C. */
__kernel void dcnn_onehot(__global const float *y, ulong yo, __global float *e, ulong eo, uint C,
                          ulong total) {
  size_t g = get_global_id(0);
  if (g >= total) return;
  size_t b = g / C, k = g - b * C;
  e[eo + g] = (int)k == (int)y[yo + b] ? 1.0f : 0.0f;
}
