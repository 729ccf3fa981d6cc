/* Kernels of the Random Hierarchy Model target (SPEC 1.2). kernels/common.cl
 * is prepended by the runtime (Philox streams). Layout of the tree, the rule
 * tables and the index -> datum map: targets/rhm/rhm.h.
 *
 * Sample i of a stream (j0 = first + i, j = j0 mod wrap when wrap > 0):
 *  index mode: idx = perm(base + j) with perm the keyed Feistel bijection of
 *    [0, P_max) below; label = idx / per_class; the rest in base m, n_dig
 *    digits, most significant first = digits of nodes 0..n_dig-1.
 *  draw mode (with replacement): with E = 4*ceil((2 + 2*n_dig)/4),
 *    label = below(n_c) from elements (j*E, j*E + 1) of (seed, draw_stream),
 *    digit of node q = below(m) from elements (j*E + 2 + 2q, +1).
 *  below(n) of elements (e, e + 1): u = word_e | word_{e+1} << 32 (e even,
 *    so both words lie in one Philox block), mul_hi(u, n) = floor(u n / 2^64)
 *    (within n / 2^64 of uniform).
 *  probe re-draw (syn_on): the digits of the s^t nodes of depth syn_t come
 *    instead from (seed, syn_stream) elements (j0*E_t + 2k, +1), k = node
 *    within the depth, E_t = 4*ceil(2 s^t / 4).
 * The tree is expanded top-down in place in the first d words of the
 * sample's row (symbols as uint), then written as one-hot channels first
 * [v, d]: x[c*d + p] = token_p == c ? on : off; y = (float)label. */

#define RHM_STREAM_FEISTEL 0x52484D0100000000UL
#define RHM_FEISTEL_ROUNDS 8u
#define RHM_MODE_INDEX 0u

/* Uniform in [0, n) from the even element pair (e, e + 1) of a stream. */
static inline ulong rhm_below(ulong seed, ulong stream, ulong e, ulong n) {
  uint4 w = hcl_rng_block(seed, stream, e >> 2);
  ulong u = (e & 2) ? ((ulong)w.z | ((ulong)w.w << 32)) : ((ulong)w.x | ((ulong)w.y << 32));
  return mul_hi(u, n);
}

/* One pass of the balanced Feistel network on 2h bits (h <= 32): round k
 * maps (l, r) -> (r, l ^ F_k(r)), F_k(r) = word 0 of Philox block
 * (k << 32 | r) of stream (seed, RHM_STREAM_FEISTEL), masked to h bits. */
static inline ulong rhm_feistel(ulong x, ulong seed, uint h) {
  ulong mask = (1UL << h) - 1UL;
  uint l = (uint)(x >> h), r = (uint)(x & mask);
  for (uint k = 0; k < RHM_FEISTEL_ROUNDS; k++) {
    uint4 w = hcl_rng_block(seed, RHM_STREAM_FEISTEL, ((ulong)k << 32) | (ulong)r);
    uint nr = (uint)((ulong)(l ^ w.x) & mask);
    l = r;
    r = nr;
  }
  return ((ulong)l << h) | (ulong)r;
}

/* Bijection of [0, pmax): Feistel on [0, 2^(2h)) with cycle walking. */
static inline ulong rhm_perm(ulong x, ulong seed, uint h, ulong pmax) {
  ulong y = rhm_feistel(x, seed, h);
  while (y >= pmax) y = rhm_feistel(y, seed, h);
  return y;
}

/* One work item per (sample, replica): x [R, count, v*d], y [R, count]. */
__kernel void rhm_sample(__global float *x, ulong xo, __global float *y, ulong yo,
                         __global const uint *keys, __global const uint *rules, ulong table_size,
                         uint count, ulong first, uint mode, ulong base, ulong wrap,
                         ulong draw_stream, ulong pmax, ulong per_class, uint fh, uint n_c, uint v,
                         uint m, uint s, uint L, uint d, uint n_dig, uint syn_on, uint syn_t,
                         ulong syn_stream, float on, float off) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong j0 = first + i, j = wrap ? j0 % wrap : j0;
  ulong seed = (ulong)keys[2 * r] | ((ulong)keys[2 * r + 1] << 32);
  __global const uint *tabs = rules + (ulong)r * table_size;
  __global uint *row = (__global uint *)(HCL_AT(x, xo) + ((ulong)r * count + i) * v * d);
  ulong E = (((ulong)n_dig * 2 + 2 + 3) >> 2) << 2;
  uint dig[64];
  uint label;
  if (mode == RHM_MODE_INDEX) {
    ulong idx = rhm_perm(base + j, seed, fh, pmax);
    label = (uint)(idx / per_class);
    ulong rest = idx % per_class;
    if (m > 1)
      for (uint q = n_dig; q-- > 0;) {
        dig[q] = (uint)(rest % m);
        rest /= m;
      }
  } else {
    label = (uint)rhm_below(seed, draw_stream, j * E, n_c);
  }
  ulong syn_lo = 0, syn_hi = 0, E_syn = 0;
  if (syn_on) {
    ulong w = 1;
    for (uint t = 0; t < syn_t; t++) {
      syn_lo += w;
      w *= s;
    }
    syn_hi = syn_lo + w;
    E_syn = ((2 * w + 3) >> 2) << 2;
  }
  /* top-down expansion in place: node k of depth t sits at row[k]; its
   * children go to row[k*s .. k*s + s-1], k descending so no unread node
   * is overwritten (k*s > k - 1) */
  row[0] = label;
  ulong node0 = 0, width = 1;
  for (uint t = 0; t < L; t++) {
    __global const uint *tab = tabs + (t == 0 ? 0UL : ((ulong)n_c + (ulong)(t - 1) * v) * m * s);
    for (ulong k = width; k-- > 0;) {
      ulong q = node0 + k;
      uint dg;
      if (q >= syn_lo && q < syn_hi)
        dg = (uint)rhm_below(seed, syn_stream, j0 * E_syn + 2 * (q - syn_lo), m);
      else if (mode == RHM_MODE_INDEX)
        dg = m > 1 ? dig[q] : 0u;
      else
        dg = (uint)rhm_below(seed, draw_stream, j * E + 2 + 2 * q, m);
      __global const uint *tp = tab + ((ulong)row[k] * m + dg) * s;
      for (uint c = s; c-- > 0;) row[k * s + c] = tp[c];
    }
    node0 += width;
    width *= s;
  }
  /* one-hot, channel 0 last: it overwrites the tokens */
  uint won = as_uint(on), woff = as_uint(off);
  for (uint c = v; c-- > 0;)
    for (uint p = 0; p < d; p++) row[(ulong)c * d + p] = row[p] == c ? won : woff;
  HCL_AT(y, yo)[(ulong)r * count + i] = (float)label;
}

/* out [R, count] = sum_c (a - b)^2 over rows of a, b [R, count, D], in order. */
__kernel void rhm_sqdist(__global const float *a, ulong ao, __global const float *b, ulong bo,
                         __global float *out, uint count, uint D) {
  uint i = get_global_id(0), r = get_global_id(1);
  if (i >= count) return;
  ulong row = (ulong)r * count + i;
  const __global float *pa = HCL_AT(a, ao) + row * D, *pb = HCL_AT(b, bo) + row * D;
  float acc = 0.0f;
  for (uint c = 0; c < D; c++) {
    float e = pa[c] - pb[c];
    acc = acc + e * e;
  }
  out[row] = acc;
}
