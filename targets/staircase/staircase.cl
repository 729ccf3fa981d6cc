/* Kernels of the staircase target (SPEC 1.1). kernels/common.cl is prepended
 * by the runtime (Philox streams, exact-arithmetic draws, FP_CONTRACT OFF).
 *
 * Draw layout (the test's host reference mirrors it with hcl_rng_host):
 * sample i of stream s (i taken modulo train_size for the train stream when
 * train_size > 0), replica seed `seed`, w = 4 * ceil(n / 4):
 *   coordinate j (0-based) = element i*w + j of runtime stream
 *                            (seed, STC_STREAM_X | s)
 *     boolean:  rademacher (word >> 31 ? -1 : +1)
 *     biased:   bernoulli(p) B, then x = B ? hi : lo (hi, lo from the host)
 *     gaussian: normal N(0, 1) (Box-Muller on the word pair of its block)
 *   label noise = element i of stream (seed, STC_STREAM_NOISE | s), normal.
 * Each sample owns ceil(n / 4) whole Philox blocks.
 * f(x) = sum over terms t in order of coef[t] * (prod over the set in order
 * of x), in float, each * and + one rounded IEEE operation. */

#define STC_STREAM_X 0x5354410000000000UL     /* "STA", purpose 0: inputs */
#define STC_STREAM_NOISE 0x5354410100000000UL /* "STA", purpose 1: label noise */

#define STC_IN_BOOLEAN 0u
#define STC_IN_BIASED 1u
#define STC_IN_GAUSSIAN 2u

/* f at one sample row xr[0..n). */
static inline float stc_f(const __global float *xr, uint n_terms, const __global float *coef,
                          const __global uint *off, const __global uint *idx) {
  float f = 0.0f;
  for (uint t = 0; t < n_terms; t++) {
    float chi = 1.0f;
    for (uint a = off[t]; a < off[t + 1]; a++) chi = chi * xr[idx[a]];
    f = f + coef[t] * chi;
  }
  return f;
}

/* Inputs x [R, count, n] of the samples s0 .. s0+count-1 (already wrapped)
 * into rows row0 on: one work-item per Philox block of a sample, gws =
 * (samples, ceil(n / 4), R), the samples from i0 on. A work-item per sample
 * drawing its blocks in a loop ran in scalars (PoCL vectorises across
 * work-items only an item with no inner loop); the stores of a whole block
 * step by `one` and the sign is taken without a compare, for the reasons
 * given at hcl_k_rng_normal (kernels/ops.cl). No bound check: the host
 * launches exactly the samples. One such kernel per input law, below. */
#define STC_DEF_DRAW(NAME, LAW)                                                                    \
  __kernel void NAME(__global float *x, ulong xo, __global const uint *keys, ulong count, uint n,  \
                     ulong s0, ulong row0, ulong i0, uint stream, float xhi, float xlo,            \
                     float bias) {                                                                 \
    size_t i = i0 + get_global_id(0), b = get_global_id(1), r = get_global_id(2);                 \
    size_t one = get_local_size(0) != 0;                                                           \
    ulong seed = (ulong)keys[2 * r] | ((ulong)keys[2 * r + 1] << 32), nb = ((ulong)n + 3) >> 2;    \
    uint4 w = hcl_rng_block(seed, STC_STREAM_X | stream, (s0 + i) * nb + b);                      \
    float v0, v1, v2, v3;                                                                          \
    LAW;                                                                                           \
    __global float *xr = HCL_AT(x, xo) + ((ulong)r * count + row0 + i) * n + 4 * b;              \
    if (4 * b + 4 <= n) {                                                                          \
      xr[0] = v0, xr[one] = v1, xr[2 * one] = v2, xr[3 * one] = v3;                               \
    } else { /* the last block of an n that is not a multiple of 4 */                            \
      uint lim = n - 4 * (uint)b;                                                                  \
      xr[0] = v0;                                                                                  \
      if (lim > 1) xr[1] = v1;                                                                     \
      if (lim > 2) xr[2] = v2;                                                                     \
    }                                                                                              \
  }
/* hcl_rng_draw's rademacher (word >> 31 ? -1 : +1), without a compare */
#define STC_LAW_BOOLEAN                                                                            \
  v0 = as_float(0x3f800000u | (w.x & 0x80000000u)), v1 = as_float(0x3f800000u | (w.y & 0x80000000u)); \
  v2 = as_float(0x3f800000u | (w.z & 0x80000000u)), v3 = as_float(0x3f800000u | (w.w & 0x80000000u))
#define STC_LAW_BIASED                                                                             \
  v0 = hcl_rng_draw(HCL_RNG_BERNOULLI, bias, 0.0f, w, 0u) != 0.0f ? xhi : xlo;                   \
  v1 = hcl_rng_draw(HCL_RNG_BERNOULLI, bias, 0.0f, w, 1u) != 0.0f ? xhi : xlo;                   \
  v2 = hcl_rng_draw(HCL_RNG_BERNOULLI, bias, 0.0f, w, 2u) != 0.0f ? xhi : xlo;                   \
  v3 = hcl_rng_draw(HCL_RNG_BERNOULLI, bias, 0.0f, w, 3u) != 0.0f ? xhi : xlo
/* hcl_rng_draw(HCL_RNG_NORMAL, 0, 1, w, j), each Box-Muller pair once */
#define STC_LAW_GAUSSIAN                                                                           \
  float2 p0 = hcl_normal_pair(w.x, w.y), p1 = hcl_normal_pair(w.z, w.w);                          \
  v0 = 0.0f + 1.0f * p0.x, v1 = 0.0f + 1.0f * p0.y, v2 = 0.0f + 1.0f * p1.x, v3 = 0.0f + 1.0f * p1.y
/* One kernel per law: clang's SLP pass also packs the compares of a branch
 * never taken, and that alone stops the vectoriser. */
STC_DEF_DRAW(stc_draw_x_boolean, STC_LAW_BOOLEAN)
STC_DEF_DRAW(stc_draw_x_biased, STC_LAW_BIASED)
STC_DEF_DRAW(stc_draw_x_gaussian, STC_LAW_GAUSSIAN)

/* One work item per (sample, replica): y [R, count, 1] = f(x) + noise, x
 * [R, count, n] already drawn by stc_draw_x_<law> (inputs, xhi, xlo and bias
 * are its). */
__kernel void stc_sample(__global float *x, ulong xo, __global float *y, ulong yo,
                         __global const uint *keys, uint count, uint n, ulong first,
                         ulong train_size, uint stream, uint inputs, float xhi, float xlo,
                         float bias, float noise, uint n_terms, __global const float *coef,
                         __global const uint *off, __global const uint *idx) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong s = first + i;
  if (train_size) s %= train_size;
  ulong seed = (ulong)keys[2 * r] | ((ulong)keys[2 * r + 1] << 32);
  __global float *xr = HCL_AT(x, xo) + ((ulong)r * count + i) * n;
  float f = stc_f(xr, n_terms, coef, off, idx);
  if (noise != 0.0f) {
    uint4 w = hcl_rng_block(seed, STC_STREAM_NOISE | stream, s >> 2);
    f = f + noise * hcl_rng_draw(HCL_RNG_NORMAL, 0.0f, 1.0f, w, (uint)(s & 3));
  }
  HCL_AT(y, yo)[(ulong)r * count + i] = f;
}

/* out [R, count] = f(x [R, count, n]) without noise (eval "f"). */
__kernel void stc_eval_f(__global const float *x, ulong xo, __global float *out, ulong oo,
                         uint count, uint n, uint n_terms, __global const float *coef,
                         __global const uint *off, __global const uint *idx) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong row = (ulong)r * count + i;
  HCL_AT(out, oo)[row] = stc_f(HCL_AT(x, xo) + row * n, n_terms, coef, off, idx);
}

/* partial [R, G, S]: work item (g, s, r) sums f[r, i] chi_s(x[r, i, :]) over
 * samples i in [g*B, min((g+1)*B, count)), in order. */
__kernel void stc_probe_partial(__global const float *x, ulong xo, __global const float *f,
                                ulong fo, __global float *partial, uint count, uint n, uint S,
                                uint G, uint B, __global const uint *off,
                                __global const uint *idx) {
  uint g = get_global_id(0), s = get_global_id(1), r = get_global_id(2);
  if (g >= G || s >= S) return;
  uint lo = g * B, hi = min(lo + B, count);
  float acc = 0.0f;
  for (uint i = lo; i < hi; i++) {
    ulong row = (ulong)r * count + i;
    const __global float *xr = HCL_AT(x, xo) + row * n;
    float chi = 1.0f;
    for (uint a = off[s]; a < off[s + 1]; a++) chi = chi * xr[idx[a]];
    acc = acc + HCL_AT(f, fo)[row] * chi;
  }
  partial[((ulong)r * G + g) * S + s] = acc;
}

/* acc [R, S, 2] (sum, Kahan compensation) += sum over g of partial[r, g, s]. */
__kernel void stc_probe_sum(__global const float *partial, __global float *acc, uint G, uint S) {
  uint s = get_global_id(0), r = get_global_id(1);
  if (s >= S) return;
  __global float *a = acc + ((ulong)r * S + s) * 2;
  float sum = a[0], c = a[1];
  for (uint g = 0; g < G; g++) {
    float v = partial[((ulong)r * G + g) * S + s] - c;
    float t = sum + v;
    c = (t - sum) - v;
    sum = t;
  }
  a[0] = sum;
  a[1] = c;
}
