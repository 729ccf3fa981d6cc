/* regular_net plugin kernels: connectivity masks and the gradient of the
 * layerwise coordinate descent. Buffers travel as (pointer, offset in floats).
 * Elementwise only, one correctly rounded operation per result: the same bits
 * on every device. */

/* y[r, e] = m[r, e] != 0 ? x[r, e] : 0 for e < n, r = get_global_id(1):
 * the masked parameters (0, never -0, where a connection is absent). */
__kernel void rn_mask_mul(__global const float *x, ulong x_off, __global const float *m,
                          ulong m_off, __global float *y, ulong y_off, ulong n) {
  size_t e = get_global_id(0), r = get_global_id(1);
  if (e >= n) return;
  size_t i = r * n + e;
  y[y_off + i] = m[m_off + i] != 0.0f ? x[x_off + i] : 0.0f;
}

/* Final step of backward on grad [R, np]. With sel: entries in [w0, w1)
 * gain l2w * p (the selected neuron's weights from its source layer),
 * entries in [s0, s1) gain l2s * p (its input skip weights), entries in
 * [b0, b1) (its bias) and from ro on (the readout) keep their gradient, every
 * other entry gets 0. Then entries whose connection is absent (cm == 0) get 0. */
__kernel void rn_grad_post(__global float *g, ulong g_off, __global const float *p, ulong p_off,
                           __global const float *cm, ulong cm_off, int has_cm, int sel, ulong w0,
                           ulong w1, float l2w, ulong s0, ulong s1, float l2s, ulong b0, ulong b1,
                           ulong ro, ulong np) {
  size_t e = get_global_id(0), r = get_global_id(1);
  if (e >= np) return;
  size_t i = r * np + e;
  float v = g[g_off + i];
  if (sel) {
    if (e >= w0 && e < w1) {
      if (l2w != 0.0f) v = v + l2w * p[p_off + i];
    } else if (e >= s0 && e < s1) {
      if (l2s != 0.0f) v = v + l2s * p[p_off + i];
    } else if (!((e >= b0 && e < b1) || e >= ro)) {
      v = 0.0f;
    }
  }
  if (has_cm && cm[cm_off + i] == 0.0f) v = 0.0f;
  g[g_off + i] = v;
}
