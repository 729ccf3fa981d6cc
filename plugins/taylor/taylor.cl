/* Kernels of the taylor model (SPEC 2.5): the head of its graph (graph.c).
 * kernels/common.cl is prepended by the runtime. Buffers travel as (pointer,
 * offset in floats); per-replica parameters stride `pstride` floats.
 *
 * U [R, n, m] = u w0^T and S [R, n, m] = u w^T come from the graph's
 * products; the head forms the coefficients C = a_r sigma^(order)(U) / sqrt(m)
 * and reduces over r:
 *   order 1: out = sum_r C S          order 2: out = 1/2 sum_r C S^2
 * Its backward forms C again, by the same expression in the same lanes (so
 * the same bits as the forward's), rather than keeping it in memory.      */

#define TAY_ACT_RELU 0u
#define TAY_ACT_RELU3 1u
#define TAY_ACT_QUADRATIC 2u
#define TAY_ACT_SOFTPLUS 3u
#define TAY_ACT_TANH 4u

/* sigma'(u) or sigma''(u) of the activation (order 1 or 2). relu has
 * sigma'(0) = 0 and no sigma'' (the host refuses relu with order 2). */
static inline float tay_deriv(uint act, uint order, float u) {
  if (act == TAY_ACT_RELU) return order == 1u && u > 0.0f ? 1.0f : 0.0f;
  if (act == TAY_ACT_RELU3) {
    float r = u > 0.0f ? u : 0.0f;
    return order == 1u ? 0.5f * r * r : r;
  }
  if (act == TAY_ACT_QUADRATIC) return order == 1u ? u : 1.0f;
  if (act == TAY_ACT_SOFTPLUS) {
    float s = 1.0f / (1.0f + exp(-u));
    return order == 1u ? s : s * (1.0f - s);
  }
  float t = tanh(u), g = 1.0f - t * t;
  return order == 1u ? g : -2.0f * t * g;
}

/* One work-group per (replica, sample) row g = rep * n + i; a fixed-shape
 * tree over the group, so the sum is the same bits at every launch. */
__kernel void tay_head(__global const float *u, ulong uo, __global const float *s, ulong so,
                       __global const float *p, ulong ao, ulong pstride, __global float *out,
                       ulong oo, uint n, uint m, uint order, uint act, float inv_sqrt_m,
                       __local float *red) {
  uint lid = get_local_id(0), wg = get_local_size(0);
  ulong g = get_group_id(0), rep = g / n;
  __global const float *ur = HCL_AT(u, uo) + g * m;
  __global const float *sr = HCL_AT(s, so) + g * m;
  __global const float *ar = HCL_AT(p, ao) + rep * pstride;
  float acc = 0.0f;
  for (uint r = lid; r < m; r += wg) {
    float c = ar[r] * tay_deriv(act, order, ur[r]) * inv_sqrt_m;
    float sv = sr[r];
    acc = acc + (order == 1u ? c * sv : 0.5f * c * (sv * sv));
  }
  red[lid] = acc;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint h = wg >> 1; h > 0; h >>= 1) {
    if (lid < h) red[lid] = red[lid] + red[lid + h];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) HCL_AT(out, oo)[g] = red[0];
}

/* tay_deriv on 16 lanes (the same formulas). */
static inline float16 tay_deriv16(uint act, uint order, float16 u) {
  float16 zero = 0.0f, one = 1.0f;
  if (act == TAY_ACT_RELU) return order == 1u ? select(zero, one, u > zero) : zero;
  if (act == TAY_ACT_RELU3) {
    float16 r = fmax(u, zero);
    return order == 1u ? 0.5f * r * r : r;
  }
  if (act == TAY_ACT_QUADRATIC) return order == 1u ? u : one;
  if (act == TAY_ACT_SOFTPLUS) {
    float16 s = one / (one + exp(-u));
    return order == 1u ? s : s * (one - s);
  }
  float16 t = tanh(u), g = one - t * t;
  return order == 1u ? g : -2.0f * t * g;
}

/* tay_head for CPUs: one work-item per row g, 16 lanes of r at a time
 * (lane sums added in lane order, then the tail of m % 16): no barriers,
 * which cost more than the arithmetic on a CPU device. gws = R * n. */
__kernel void tay_head_rows(__global const float *u, ulong uo, __global const float *s, ulong so,
                            __global const float *p, ulong ao, ulong pstride,
                            __global float *out, ulong oo, uint n, uint m, uint order, uint act,
                            float inv_sqrt_m, ulong rows) {
  ulong g = get_global_id(0);
  if (g >= rows) return;
  ulong rep = g / n;
  __global const float *ur = HCL_AT(u, uo) + g * m;
  __global const float *sr = HCL_AT(s, so) + g * m;
  __global const float *ar = HCL_AT(p, ao) + rep * pstride;
  float16 acc = 0.0f;
  uint r = 0;
  for (; r + 16 <= m; r += 16) {
    float16 c = vload16(0, ar + r) * tay_deriv16(act, order, vload16(0, ur + r)) * inv_sqrt_m;
    float16 sv = vload16(0, sr + r);
    acc = acc + (order == 1u ? c * sv : 0.5f * c * (sv * sv));
  }
  float tot = 0.0f;
  for (uint l = 0; l < 16; l++) tot += acc[l];
  for (; r < m; r++) {
    float c = ar[r] * tay_deriv(act, order, ur[r]) * inv_sqrt_m;
    float sv = sr[r];
    tot = tot + (order == 1u ? c * sv : 0.5f * c * (sv * sv));
  }
  HCL_AT(out, oo)[g] = tot;
}

/* dS [R, n, m] (+)= dout[g] * C (order 1) or dout[g] * C * S (order 2): the
 * derivative of sum_g dout_g f_g with respect to S = u w^T; set: dS holds
 * nothing yet (=). One work-item per (r, g), C as tay_head forms it. */
__kernel void tay_dcoef(__global float *e, ulong eo, __global const float *u, ulong uo,
                        __global const float *s, ulong so, __global const float *p, ulong ao,
                        ulong pstride, __global const float *dout, ulong dO, uint n, uint m,
                        ulong rows, uint order, uint act, float inv_sqrt_m, uint set) {
  uint r = get_global_id(0);
  ulong g = get_global_id(1);
  if (r >= m || g >= rows) return;
  ulong k = g * m + r;
  float c = HCL_AT(p, ao)[(g / n) * pstride + r] * tay_deriv(act, order, HCL_AT(u, uo)[k]) *
            inv_sqrt_m;
  float v = HCL_AT(dout, dO)[g] * c;
  if (order == 2u) v = v * HCL_AT(s, so)[k];
  __global float *er = HCL_AT(e, eo) + k;
  *er = set ? v : *er + v;
}

/* tay_dcoef for CPUs, one work-item per row g as tay_head_rows (its 16
 * lanes, then the tail), so that C has the bits the forward used. */
__kernel void tay_dcoef_rows(__global float *e, ulong eo, __global const float *u, ulong uo,
                             __global const float *s, ulong so, __global const float *p,
                             ulong ao, ulong pstride, __global const float *dout, ulong dO,
                             uint n, uint m, ulong rows, uint order, uint act,
                             float inv_sqrt_m, uint set) {
  ulong g = get_global_id(0);
  if (g >= rows) return;
  __global const float *ur = HCL_AT(u, uo) + g * m;
  __global const float *sr = HCL_AT(s, so) + g * m;
  __global const float *ar = HCL_AT(p, ao) + (g / n) * pstride;
  __global float *er = HCL_AT(e, eo) + g * m;
  float d = HCL_AT(dout, dO)[g];
  uint r = 0;
  for (; r + 16 <= m; r += 16) {
    float16 c = vload16(0, ar + r) * tay_deriv16(act, order, vload16(0, ur + r)) * inv_sqrt_m;
    float16 v = d * c;
    if (order == 2u) v = v * vload16(0, sr + r);
    if (!set) v = vload16(0, er + r) + v;
    vstore16(v, 0, er + r);
  }
  for (; r < m; r++) {
    float c = ar[r] * tay_deriv(act, order, ur[r]) * inv_sqrt_m;
    float v = d * c;
    if (order == 2u) v = v * sr[r];
    er[r] = set ? v : er[r] + v;
  }
}

/* The ||W||_{2,4}^8 penalty (penalty.c): lambda (sum_r |w_r|^4)^2 on the
 * rows w_r [dz] of block w (offset wo floats in each replica). First the
 * squared row norms n2 [R, m], one work-item per (row, replica). */
__kernel void tay_pen_rows(__global const float *p, ulong wo, ulong pstride,
                           __global float *n2, ulong no, uint m, uint dz) {
  size_t r = get_global_id(0), rep = get_global_id(1);
  if (r >= m) return;
  __global const float *w = p + wo + rep * pstride + r * (ulong)dz;
  float s = 0.0f;
  for (uint c = 0; c < dz; c++) s += w[c] * w[c];
  n2[no + rep * (ulong)m + r] = s;
}

/* Then grad_r += 8 lambda S |w_r|^2 w_r with S = sum_j |w_j|^4, the exact
 * gradient of lambda S^2. Every work-item sums S in the same order (the
 * same bits in every row); one work-item per (row, replica). */
__kernel void tay_pen_apply(__global float *g, ulong go, __global const float *p, ulong wo,
                            ulong pstride, __global const float *n2, ulong no, uint m, uint dz,
                            float lambda8) {
  size_t r = get_global_id(0), rep = get_global_id(1);
  if (r >= m) return;
  __global const float *nr = n2 + no + rep * (ulong)m;
  float S = 0.0f;
  for (uint j = 0; j < m; j++) S += nr[j] * nr[j];
  float k = lambda8 * S * nr[r];
  ulong at = rep * pstride + r * (ulong)dz;
  for (uint c = 0; c < dz; c++) g[go + at + c] += k * p[wo + at + c];
}
