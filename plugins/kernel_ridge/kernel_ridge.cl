/* Kernels of the kernel_ridge model. kernels/common.cl is prepended by the
 * runtime. Buffers travel as (pointer, offset in elements). `real` is double
 * where the device has cl_khr_fp64 (the host passes -DKR_FP64), else float.
 *
 * Inputs enter as u = (x sc, bs) in R^{d+1} (sc = 1/sqrt(d), bs = b_scale):
 * the two-layer random-features model's x/sqrt(d) with a bias. With theta
 * the angle between u and v (Cho & Saul 2009, arc-cosine kernels):
 *   nngp(u, v) = |u||v| (sin theta + (pi - theta) cos theta) / (2 pi)
 *              = E_w relu(w.u) relu(w.v), w ~ N(0, I)
 *   ntk(u, v)  = nngp(u, v) + (u.v) (pi - theta) / (2 pi)
 * theta = 2 atan2(|u^ - v^|, |u^ + v^|) on the unit vectors: accurate also
 * for nearly parallel inputs, where acos(u.v / |u||v|) loses half the digits;
 * cos and sin of theta follow from the same two norms. */
#ifdef KR_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double real;
#else
typedef float real;
#endif
#define KR_PI ((real)3.14159265358979323846)

/* |u| of one raw input row x [d]. */
static real kr_norm(__global const float *x, uint d, real sc, real bs) {
  real s = bs * bs;
  for (uint k = 0; k < d; k++) {
    real v = (real)x[k] * sc;
    s += v * v;
  }
  return sqrt(s);
}

/* k(u, v) for raw rows a, b with norms na, nb (ntk: 1 for the NTK). */
static real kr_pair(__global const float *a, real na, __global const float *b, real nb, uint d,
                    real sc, real bs, uint ntk) {
  if (!(na > 0) || !(nb > 0)) return (real)0;
  real ia = sc / na, ib = sc / nb, s2 = 0, c2 = 0;
  for (uint k = 0; k < d; k++) {
    real p = (real)a[k] * ia, q = (real)b[k] * ib;
    s2 += (p - q) * (p - q);
    c2 += (p + q) * (p + q);
  }
  real p = bs / na, q = bs / nb;
  s2 += (p - q) * (p - q);
  c2 += (p + q) * (p + q);
  /* s = |u^ - v^| = 2 sin(theta/2), c = |u^ + v^| = 2 cos(theta/2) */
  real s = sqrt(s2), c = sqrt(c2), q2 = s2 + c2;
  real th = 2 * atan2(s, c), ct = (c2 - s2) / q2, st = 2 * s * c / q2, nn = na * nb;
  real k = nn * (st + (KR_PI - th) * ct) / (2 * KR_PI);
  if (ntk) k += nn * ct * (KR_PI - th) / (2 * KR_PI);
  return k;
}

/* nrm[r n + i] = |u| of row i of replica r of x [R, n, d]; (n, R) items. */
__kernel void kr_norms(__global const float *x, ulong xo, ulong n, uint d, real sc, real bs,
                       __global real *nrm, ulong no) {
  ulong i = get_global_id(0), r = get_global_id(1);
  if (i >= n) return;
  HCL_AT(nrm, no)[r * n + i] = kr_norm(HCL_AT(x, xo) + (r * n + i) * d, d, sc, bs);
}

/* K [P, P] of replica r of the training inputs X [R, P, d]; (P, P) items. */
__kernel void kr_gram(__global const float *X, __global const real *nrm, ulong P, uint d, real sc,
                      real bs, uint ntk, ulong r, __global real *K) {
  ulong i = get_global_id(0), j = get_global_id(1);
  if (i >= P || j >= P) return;
  __global const float *Xr = X + r * P * d;
  __global const real *nr = nrm + r * P;
  K[i * P + j] = kr_pair(Xr + i * d, nr[i], Xr + j * d, nr[j], d, sc, bs, ntk);
}

/* out [R, n] = sum_j k(x_i, X_j) (alpha_j + alpha_lo_j); alpha at ao, alpha_lo
 * at ao + P in a replica's parameters (stride ps); (n, R) items. */
__kernel void kr_predict(__global const float *x, ulong xo, ulong n, __global const float *X,
                         __global const real *nrm, ulong P, uint d, real sc, real bs, uint ntk,
                         __global const float *p, ulong ao, ulong ps, __global float *out,
                         ulong oo) {
  ulong i = get_global_id(0), r = get_global_id(1);
  if (i >= n) return;
  __global const float *xi = HCL_AT(x, xo) + (r * n + i) * d;
  __global const float *Xr = X + r * P * d;
  __global const float *al = HCL_AT(p, ao) + r * ps;
  __global const real *nr = nrm + r * P;
  real ni = kr_norm(xi, d, sc, bs), acc = 0;
  for (ulong j = 0; j < P; j++)
    acc += kr_pair(xi, ni, Xr + j * d, nr[j], d, sc, bs, ntk) * ((real)al[j] + (real)al[P + j]);
  HCL_AT(out, oo)[r * n + i] = (float)acc;
}

/* grad of sum_i dout_i f(x_i) in alpha and alpha_lo (both sum_i dout_i
 * k(x_i, X_j)) for the last forward's x [R, n, d] with norms xn [R, n];
 * (P, R) items. */
__kernel void kr_grad(__global const float *x, ulong xo, __global const real *xn, ulong n,
                      __global const float *X, __global const real *nrm, ulong P, uint d, real sc,
                      real bs, uint ntk, __global const float *dout, ulong dout_o,
                      __global float *g, ulong go, ulong ps) {
  ulong j = get_global_id(0), r = get_global_id(1);
  if (j >= P) return;
  __global const float *xr = HCL_AT(x, xo) + r * n * d, *dr = HCL_AT(dout, dout_o) + r * n;
  __global const float *Xj = X + (r * P + j) * d;
  real nj = nrm[r * P + j], acc = 0;
  for (ulong i = 0; i < n; i++)
    acc += (real)dr[i] * kr_pair(xr + i * d, xn[r * n + i], Xj, nj, d, sc, bs, ntk);
  __global float *gr = HCL_AT(g, go) + r * ps;
  gr[j] = (float)acc;
  gr[P + j] = (float)acc;
}
