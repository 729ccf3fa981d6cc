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

/* One work item per (sample, replica): x [R, count, n], y [R, count, 1]. */
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
  ulong nb = ((ulong)n + 3) >> 2;
  __global float *xr = HCL_AT(x, xo) + ((ulong)r * count + i) * n;
  for (ulong b = 0; b < nb; b++) {
    uint4 w = hcl_rng_block(seed, STC_STREAM_X | stream, s * nb + b);
    uint lim = (uint)min((ulong)4, (ulong)n - 4 * b);
    for (uint j = 0; j < lim; j++) {
      float v;
      if (inputs == STC_IN_BOOLEAN)
        v = hcl_rng_draw(HCL_RNG_RADEMACHER, 0.0f, 0.0f, w, j);
      else if (inputs == STC_IN_BIASED)
        v = hcl_rng_draw(HCL_RNG_BERNOULLI, bias, 0.0f, w, j) != 0.0f ? xhi : xlo;
      else
        v = hcl_rng_draw(HCL_RNG_NORMAL, 0.0f, 1.0f, w, j);
      xr[4 * b + j] = v;
    }
  }
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
