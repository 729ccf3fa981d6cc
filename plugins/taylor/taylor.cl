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

/* ---- CPU devices: the head fused with its two products (graph.c) --------
 * U = s u w0^T and S = s u w^T are formed in registers, TAY_FR rows of u
 * per work-item (each weight vector loaded once for all of them), and never
 * written: at R = 8 each was a 32 MB array written once and read twice.
 * Every entry has the bits hcl_k_gemm_rb gives it: lanes r < 16 floor(m/16)
 * an fma chain over p from 0, the tail r a multiply and an add per p (its
 * scalar columns), then times s; the head's and dS's formulas follow in the
 * same lanes (16 r at a time, lane sums in lane order, then the tail). */
#define TAY_FR 4

/* t [R][2][dz, m]: w0^T, then w^T, of each replica (16 consecutive r load
 * as one vector). gws = (m, dz, R). */
__kernel void tay_wt(__global const float *w0, ulong w0o, __global const float *w, ulong wo,
                     ulong pstride, __global float *t, uint m, uint dz) {
  ulong r = get_global_id(0), c = get_global_id(1), q = get_global_id(2);
  if (r >= m || c >= dz) return;
  __global float *tq = t + q * 2 * (ulong)dz * m;
  tq[c * m + r] = HCL_AT(w0, w0o)[q * pstride + r * dz + c];
  tq[(dz + c) * m + r] = HCL_AT(w, wo)[q * pstride + r * dz + c];
}

/* U and S of the rows z0 .. z3 at lanes r .. r+15 (t0, t1 point at column
 * r of w0^T and w^T) into u0 .. u3, s0 .. s3: named registers, not arrays,
 * which PoCL kept in memory. */
#define TAY_US16(t0, t1)                                                                           \
  float16 u0 = 0.0f, u1 = 0.0f, u2 = 0.0f, u3 = 0.0f, s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f; \
  for (uint p = 0; p < dz; p++) {                                                                  \
    float16 b0 = vload16(0, (t0) + p * (ulong)m), b1 = vload16(0, (t1) + p * (ulong)m), v;        \
    v = (float16)z0[p], u0 = fma(v, b0, u0), s0 = fma(v, b1, s0);                                  \
    v = (float16)z1[p], u1 = fma(v, b0, u1), s1 = fma(v, b1, s1);                                  \
    v = (float16)z2[p], u2 = fma(v, b0, u2), s2 = fma(v, b1, s2);                                  \
    v = (float16)z3[p], u3 = fma(v, b0, u3), s3 = fma(v, b1, s3);                                  \
  }                                                                                                \
  u0 = s * u0, u1 = s * u1, u2 = s * u2, u3 = s * u3;                                              \
  s0 = s * s0, s1 = s * s1, s2 = s * s2, s3 = s * s3

/* The rows of a work-item: z0 .. z3 (past n: row n-1, not stored). */
#define TAY_ROWS                                                                                   \
  ulong g0 = get_global_id(0) * TAY_FR, q = get_global_id(1);                                      \
  if (g0 >= n) return;                                                                             \
  uint nr = n - g0 < TAY_FR ? (uint)(n - g0) : TAY_FR;                                             \
  __global const float *zq = HCL_AT(z, zo) + q * n * dz;                                           \
  __global const float *t0 = t + q * 2 * (ulong)dz * m, *t1 = t0 + (ulong)dz * m;                  \
  __global const float *ar = HCL_AT(p, ao) + q * pstride;                                          \
  __global const float *z0 = zq + g0 * dz, *z1 = zq + (g0 + (nr > 1 ? 1 : 0)) * dz;                \
  __global const float *z2 = zq + (g0 + (nr > 2 ? 2 : 0)) * dz;                                    \
  __global const float *z3 = zq + (g0 + (nr > 3 ? 3 : 0)) * dz

/* One tail entry: s (z_g . column c of t), a multiply and an add per p. */
static inline float tay_dot(__global const float *zr, __global const float *tc, uint dz, uint m,
                            float s) {
  float acc = 0.0f;
  for (uint p = 0; p < dz; p++) acc += zr[p] * tc[p * (ulong)m];
  return s * acc;
}

/* acc + the head's terms of one row at 16 lanes. */
static inline float16 tay_head16(float16 acc, float16 a16, float16 u, float16 sv, uint order,
                                 uint act, float inv_sqrt_m) {
  float16 c = a16 * tay_deriv16(act, order, u) * inv_sqrt_m;
  return acc + (order == 1u ? c * sv : 0.5f * c * (sv * sv));
}

/* The head's total of one row: its lane sums in lane order, then the tail
 * r >= r0, its U and S formed here. */
static inline float tay_head_tail(float16 acc, __global const float *zr,
                                  __global const float *t0, __global const float *t1,
                                  __global const float *ar, uint r0, uint m, uint dz, uint order,
                                  uint act, float s, float inv_sqrt_m) {
  float tot = 0.0f;
  for (uint l = 0; l < 16; l++) tot += acc[l];
  for (uint j = r0; j < m; j++) {
    float u = tay_dot(zr, t0 + j, dz, m, s), sv = tay_dot(zr, t1 + j, dz, m, s);
    float c = ar[j] * tay_deriv(act, order, u) * inv_sqrt_m;
    tot = tot + (order == 1u ? c * sv : 0.5f * c * (sv * sv));
  }
  return tot;
}

/* out [R, n] as tay_head computes it, from z [R, n, dz] and t (tay_wt).
 * gws = (ceil(n / TAY_FR), R). */
__kernel void tay_fused_head(__global const float *z, ulong zo, __global const float *t,
                             __global const float *p, ulong ao, ulong pstride,
                             __global float *out, ulong oo, uint n, uint m, uint dz, uint order,
                             uint act, float s, float inv_sqrt_m) {
  TAY_ROWS;
  float16 c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
  uint r = 0;
  for (; r + 16 <= m; r += 16) {
    TAY_US16(t0 + r, t1 + r);
    float16 a16 = vload16(0, ar + r);
    c0 = tay_head16(c0, a16, u0, s0, order, act, inv_sqrt_m);
    c1 = tay_head16(c1, a16, u1, s1, order, act, inv_sqrt_m);
    c2 = tay_head16(c2, a16, u2, s2, order, act, inv_sqrt_m);
    c3 = tay_head16(c3, a16, u3, s3, order, act, inv_sqrt_m);
  }
  __global float *o = HCL_AT(out, oo) + q * n + g0;
  o[0] = tay_head_tail(c0, z0, t0, t1, ar, r, m, dz, order, act, s, inv_sqrt_m);
  if (nr > 1) o[1] = tay_head_tail(c1, z1, t0, t1, ar, r, m, dz, order, act, s, inv_sqrt_m);
  if (nr > 2) o[2] = tay_head_tail(c2, z2, t0, t1, ar, r, m, dz, order, act, s, inv_sqrt_m);
  if (nr > 3) o[3] = tay_head_tail(c3, z3, t0, t1, ar, r, m, dz, order, act, s, inv_sqrt_m);
}

/* dS at 16 lanes: d C, times S at order 2. */
static inline float16 tay_ds16(float d, float16 a16, float16 u, float16 sv, uint order, uint act,
                               float inv_sqrt_m) {
  float16 c = a16 * tay_deriv16(act, order, u) * inv_sqrt_m;
  float16 v = d * c;
  return order == 2u ? v * sv : v;
}

/* The backward: grad w [R][m, dz] += s dS^T z, with dS = dout[g] * C
 * (order 1) or dout[g] * C * S (order 2) formed here from z and t (U and S
 * again, as tay_fused_head forms them) and never written to memory: a
 * work-item owns 16 units r and takes TAY_FT rows at a time, their dS into
 * private memory, then adds them to the accumulators of every column. Each
 * entry of grad w is the chain hcl_k_gemm_rb forms for this product (ta,
 * m x dz x n): over g in order from 0, an fma for columns c < 16 floor(dz/16),
 * a multiply and an add past them; then times s. Between row tiles the
 * accumulators wait in xs, [R][ceil(m/16)][ceil(dz/16)][16 c][16 r].
 * gws = (ceil(m / 16), R). */
#define TAY_FT 64
#define TAY_WG(k)                                                                                  \
  if (k < nc) {                                                                                    \
    float zc = zr[k];                                                                              \
    x##k = c0 + k < cfull ? fma(v, (float16)zc, x##k) : x##k + v * zc;                             \
  }
#define TAY_WG_FMA(k) x##k = fma(v, (float16)zr[k], x##k);
#define TAY_WG_LOAD(k) x##k = k < nc && i0 > 0 ? vload16(k, xb) : 0.0f;
#define TAY_WG_SAVE(k)                                                                             \
  if (k < nc) vstore16(x##k, k, xb);
#define TAY_WG_OUT(k)                                                                              \
  if (k < nc)                                                                                      \
    for (uint l = 0; l < nl; l++) gq[l * (ulong)dz + k] += s * x##k[l];
#define TAY_WG_ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) \
  M(14) M(15)
__kernel void tay_fused_wgrad(__global const float *z, ulong zo, __global const float *t,
                              __global const float *p, ulong ao, ulong pstride,
                              __global const float *dout, ulong dO, uint n, uint m, uint dz,
                              uint order, uint act, float s, float inv_sqrt_m,
                              __global float *xs, __global float *gr, ulong go) {
  uint r0 = get_global_id(0) * 16;
  ulong q = get_global_id(1);
  if (r0 >= m) return;
  uint nl = m - r0 < 16 ? m - r0 : 16, cfull = dz / 16 * 16, ncb = (dz + 15) / 16;
  __global const float *zq = HCL_AT(z, zo) + q * n * dz;
  __global const float *t0 = t + q * 2 * (ulong)dz * m + r0, *t1 = t0 + (ulong)dz * m;
  __global const float *ar = HCL_AT(p, ao) + q * pstride + r0;
  __global const float *dq = HCL_AT(dout, dO) + q * n;
  __global float *xq = xs + (q * ((m + 15) / 16) + r0 / 16) * (ulong)ncb * 256;
  float et[TAY_FT * 16]; /* dS of the tile's rows, 16 r each */
  for (uint i0 = 0; i0 < n; i0 += TAY_FT) {
    uint nt = n - i0 < TAY_FT ? n - i0 : TAY_FT;
    if (nl == 16) { /* 4 rows at a time (past the tile's rows: row g again, unused) */
      float16 a16 = vload16(0, ar);
      for (uint i = 0; i < nt; i += 4) {
        ulong g = i0 + i;
        uint nr = nt - i < 4 ? nt - i : 4;
        ulong g1 = g + (nr > 1 ? 1 : 0), g2 = g + (nr > 2 ? 2 : 0), g3 = g + (nr > 3 ? 3 : 0);
        __global const float *z0 = zq + g * dz, *z1 = zq + g1 * dz, *z2 = zq + g2 * dz;
        __global const float *z3 = zq + g3 * dz;
        TAY_US16(t0, t1);
        vstore16(tay_ds16(dq[g], a16, u0, s0, order, act, inv_sqrt_m), i, et);
        vstore16(tay_ds16(dq[g1], a16, u1, s1, order, act, inv_sqrt_m), i + 1, et);
        vstore16(tay_ds16(dq[g2], a16, u2, s2, order, act, inv_sqrt_m), i + 2, et);
        vstore16(tay_ds16(dq[g3], a16, u3, s3, order, act, inv_sqrt_m), i + 3, et);
      }
    } else { /* the tail units r >= 16 floor(m/16): U and S entry by entry */
      for (uint i = 0; i < nt; i++) {
        __global const float *zr = zq + (i0 + i) * (ulong)dz;
        float d = dq[i0 + i];
        for (uint l = 0; l < 16; l++) {
          float v = 0.0f;
          if (l < nl) {
            float sv = tay_dot(zr, t1 + l, dz, m, s);
            float c = ar[l] * tay_deriv(act, order, tay_dot(zr, t0 + l, dz, m, s)) * inv_sqrt_m;
            v = d * c;
            v = order == 2u ? v * sv : v;
          }
          et[i * 16 + l] = v;
        }
      }
    }
    int last = i0 + TAY_FT >= n;
    for (uint cb = 0; cb < ncb; cb++) {
      uint c0 = cb * 16, nc = dz - c0 < 16 ? dz - c0 : 16;
      __global float *xb = xq + cb * 256;
      float16 x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15;
      TAY_WG_ALL(TAY_WG_LOAD)
      if (c0 + 16 <= cfull) { /* 16 fma columns: no test in the loop */
        for (uint i = 0; i < nt; i++) {
          float16 v = vload16(i, et);
          __global const float *zr = zq + (i0 + i) * (ulong)dz + c0;
          TAY_WG_ALL(TAY_WG_FMA)
        }
      } else {
        for (uint i = 0; i < nt; i++) {
          float16 v = vload16(i, et);
          __global const float *zr = zq + (i0 + i) * (ulong)dz + c0;
          TAY_WG_ALL(TAY_WG)
        }
      }
      if (!last) {
        TAY_WG_ALL(TAY_WG_SAVE)
      } else {
        __global float *gq = HCL_AT(gr, go) + q * pstride + r0 * (ulong)dz + c0;
        TAY_WG_ALL(TAY_WG_OUT)
      }
    }
  }
}
