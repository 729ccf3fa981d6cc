/* The runtime's own kernels (runtime/ops.c launches them; common.cl and
 * ops_args.h, the argument structs and group shapes, are prepended).
 * Buffers are (pointer, offset in floats); sizes are ulong. Reductions have
 * fixed work-group shapes and a fixed summation order, so a result does not
 * depend on the device's scheduling: same bits every run. */


/* One kernel per activation: a run-time switch around tanh keeps PoCL from
 * vectorising the loop (8x slower measured), so ACT is a compile-time constant. */

/* z [R, rows, cols] (+)= bias[r*bias_stride + col]; y = act(z). z keeps the
 * pre-activation (bias included). gws = (>= cols, >= rows, R). */
#define HCL_DEF_BIAS_ACT(NAME, ACT)                                                                \
  __kernel void NAME(__global float *z, ulong z_off, __global const float *bias, ulong bias_off,   \
                     ulong bias_stride, int has_bias, __global float *y, ulong y_off, ulong rows,  \
                     ulong cols) {                                                                 \
    size_t col = get_global_id(0), row = get_global_id(1), r = get_global_id(2);                   \
    if (col >= cols || row >= rows) return;                                                        \
    size_t e = (r * rows + row) * cols + col;                                                      \
    float v = z[z_off + e];                                                                        \
    if (has_bias) {                                                                                \
      v = v + bias[bias_off + r * bias_stride + col];                                              \
      z[z_off + e] = v;                                                                            \
    }                                                                                              \
    y[y_off + e] = hcl_act_f(ACT, v);                                                              \
  }
HCL_DEF_BIAS_ACT(hcl_k_bias_act_identity, HCL_ACT_IDENTITY)
HCL_DEF_BIAS_ACT(hcl_k_bias_act_relu, HCL_ACT_RELU)
HCL_DEF_BIAS_ACT(hcl_k_bias_act_leaky_relu, HCL_ACT_LEAKY_RELU)
HCL_DEF_BIAS_ACT(hcl_k_bias_act_quadratic, HCL_ACT_QUADRATIC)
HCL_DEF_BIAS_ACT(hcl_k_bias_act_tanh, HCL_ACT_TANH)

/* dz = dy * act'(z) over n floats. */
#define HCL_DEF_ACT_BACKWARD(NAME, ACT)                                                            \
  __kernel void NAME(__global const float *dy, ulong dy_off, __global const float *z, ulong z_off, \
                     __global float *dz, ulong dz_off, ulong n) {                                  \
    size_t e = get_global_id(0);                                                                   \
    if (e >= n) return;                                                                            \
    dz[dz_off + e] = dy[dy_off + e] * hcl_act_df(ACT, z[z_off + e]);                               \
  }
HCL_DEF_ACT_BACKWARD(hcl_k_act_backward_identity, HCL_ACT_IDENTITY)
HCL_DEF_ACT_BACKWARD(hcl_k_act_backward_relu, HCL_ACT_RELU)
HCL_DEF_ACT_BACKWARD(hcl_k_act_backward_leaky_relu, HCL_ACT_LEAKY_RELU)
HCL_DEF_ACT_BACKWARD(hcl_k_act_backward_quadratic, HCL_ACT_QUADRATIC)
HCL_DEF_ACT_BACKWARD(hcl_k_act_backward_tanh, HCL_ACT_TANH)

/* out[r*out_stride + col] = beta*out + alpha * sum_row x[r, row, col].
 * Group (col block, 0, r): lane ly sums rows ly, ly+H, ... in order, then a
 * fixed tree over the H lanes. beta == 0: out is not read. */
__kernel __attribute__((reqd_work_group_size(HCL_CS_W, HCL_CS_H, 1))) void
hcl_k_col_sum(hcl_colsum_p cp, __global const float *x, __global float *out) {
  ulong x_off = cp.x_off, out_off = cp.out_off, out_stride = cp.out_stride, rows = cp.rows;
  ulong cols = cp.cols;
  float alpha = cp.alpha, beta = cp.beta;
  __local float part[HCL_CS_H][HCL_CS_W];
  size_t lx = get_local_id(0), ly = get_local_id(1);
  size_t col = get_global_id(0), r = get_global_id(2);
  float s = 0.0f;
  if (col < cols) {
    __global const float *p = x + x_off + r * rows * cols + col;
    for (size_t row = ly; row < rows; row += HCL_CS_H) s += p[row * cols];
  }
  part[ly][lx] = s;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t h = HCL_CS_H / 2; h > 0; h >>= 1) {
    if (ly < h) part[ly][lx] += part[ly + h][lx];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (ly == 0 && col < cols) {
    size_t o = out_off + r * out_stride + col;
    float v = alpha * part[0][lx];
    out[o] = beta == 0.0f ? v : beta * out[o] + v;
  }
}

/* The same on CPUs, where the barriers of the group version are slow (PoCL:
 * 6-30x): each work-item sums 8 columns over all rows in row order, eight
 * floats at a time. Deterministic too (a different fixed order than the
 * group version, so CPU and GPU bits differ). gws = (>= ceil(cols/8), R). */
__kernel void hcl_k_col_sum_vec(hcl_colsum_p cp, __global const float *x, __global float *out) {
  hcl_col_sum_vec_at(cp, x, out, get_global_id(0) * 8, get_global_id(1));
}

/* y = a*x + b*y (b == 0: y not read). */
__kernel void hcl_k_axpby(float a, __global const float *x, ulong x_off, float b, __global float *y,
                          ulong y_off, ulong n) {
  hcl_axpby_at(a, x, x_off, b, y, y_off, n, get_global_id(0));
}

__kernel void hcl_k_fill(__global float *y, ulong y_off, float value, ulong n) {
  size_t e = get_global_id(0);
  if (e < n) y[y_off + e] = value;
}

/* Elements first..first+n-1 of stream (seeds[r], stream) into
 * out[r*stride + (i - first)]. A work-item computes one Philox block and its
 * 4 elements. Whole groups of whole blocks go through a kernel with no
 * branch (a bound check, a tail branch or vector stores stop PoCL's
 * vectoriser: 1.5-4x slower measured); the partial blocks at the ends and
 * the last fewer than 64 whole blocks through a second one. One pair of
 * kernels per distribution. */
#define HCL_RNG_BLOCK_VALUES(DIST)                                                                 \
  uint4 x = hcl_rng_block(seeds[r], stream, block);                                                \
  float v0, v1, v2, v3;                                                                            \
  if (DIST == HCL_RNG_NORMAL) {                                                                    \
    float r0 = hcl_rng_radius(x.x), r1 = hcl_rng_radius(x.z);                                      \
    float2 s0 = hcl_rng_sincos(x.y), s1 = hcl_rng_sincos(x.w);                                     \
    v0 = a + b * (r0 * s0.y), v1 = a + b * (r0 * s0.x);                                            \
    v2 = a + b * (r1 * s1.y), v3 = a + b * (r1 * s1.x);                                            \
  } else {                                                                                         \
    v0 = hcl_rng_draw(DIST, a, b, x, 0u), v1 = hcl_rng_draw(DIST, a, b, x, 1u);                    \
    v2 = hcl_rng_draw(DIST, a, b, x, 2u), v3 = hcl_rng_draw(DIST, a, b, x, 3u);                    \
  }                                                                                                \
  __global float *o = out + out_off + r * stride;

/* full: blocks bfirst .. bfirst+gws-1, gws = (a multiple of 64, R).
 * The stores step by `one`, which is 1 but not known to be 1 when clang
 * optimises one work-item (PoCL knows the local size only when it builds the
 * work-group loop): four stores at known consecutive addresses are what
 * clang's SLP vectoriser packs into one short vector store, with the four
 * draws' arithmetic, and then PoCL's loop vectoriser gives up (3x slower).
 * edge: nhead blocks from e0 (0 or 1) then the blocks from t0 on,
 * gws = (their count, R), each element checked against the range. */
#define HCL_DEF_RNG(FULL, EDGE, DIST)                                                              \
  __kernel void FULL(float a, float b, __global const ulong *seeds, ulong stream, ulong first,     \
                     __global float *out, ulong out_off, ulong stride, ulong bfirst) {             \
    size_t g = get_global_id(0), r = get_global_id(1), one = get_local_size(0) != 0;               \
    ulong block = bfirst + g;                                                                      \
    HCL_RNG_BLOCK_VALUES(DIST)                                                                     \
    size_t q = (block << 2) - first;                                                               \
    o[q] = v0, o[q + one] = v1, o[q + 2 * one] = v2, o[q + 3 * one] = v3;                          \
  }                                                                                                \
  __kernel void EDGE(float a, float b, __global const ulong *seeds, ulong stream, ulong first,     \
                     __global float *out, ulong out_off, ulong stride, ulong n, ulong e0,          \
                     ulong nhead, ulong t0) {                                                      \
    size_t g = get_global_id(0), r = get_global_id(1);                                             \
    ulong block = g < nhead ? e0 : t0 + (g - nhead), i0 = block << 2;                              \
    HCL_RNG_BLOCK_VALUES(DIST)                                                                     \
    if (i0 >= first && i0 - first < n) o[i0 - first] = v0;                                         \
    if (i0 + 1 >= first && i0 + 1 - first < n) o[i0 + 1 - first] = v1;                             \
    if (i0 + 2 >= first && i0 + 2 - first < n) o[i0 + 2 - first] = v2;                             \
    if (i0 + 3 >= first && i0 + 3 - first < n) o[i0 + 3 - first] = v3;                             \
  }
HCL_DEF_RNG(hcl_k_rng_uniform, hcl_k_rng_uniform_edge, HCL_RNG_UNIFORM)
HCL_DEF_RNG(hcl_k_rng_normal, hcl_k_rng_normal_edge, HCL_RNG_NORMAL)
HCL_DEF_RNG(hcl_k_rng_rademacher, hcl_k_rng_rademacher_edge, HCL_RNG_RADEMACHER)
HCL_DEF_RNG(hcl_k_rng_bernoulli, hcl_k_rng_bernoulli_edge, HCL_RNG_BERNOULLI)

/* dst[r, j, c] = src[r, (f0 + j) % rows, c] with rows = sizes[r], or rows_src
 * when sizes is NULL (one training-set size for all replicas).
 * gws = (>= width, >= n, R). */
__kernel void hcl_k_gather_rows(__global const float *src, ulong src_off, ulong rows_src,
                                __global float *dst, ulong dst_off, ulong f0, ulong n, ulong width,
                                __global const ulong *sizes) {
  size_t c = get_global_id(0), j = get_global_id(1), r = get_global_id(2);
  if (c >= width || j >= n) return;
  size_t srow = (f0 + j) % (sizes ? sizes[r] : rows_src);
  dst[dst_off + (r * n + j) * width + c] = src[src_off + (r * rows_src + srow) * width + c];
}

/* The same, one work-item per row (CPUs: a 3D range of small rows costs
 * PoCL a group per row). gws = (>= n, R). */
__kernel void hcl_k_gather_rows_cpu(__global const float *src, ulong src_off, ulong rows_src,
                                    __global float *dst, ulong dst_off, ulong f0, ulong n,
                                    ulong width, __global const ulong *sizes) {
  size_t j = get_global_id(0), r = get_global_id(1);
  if (j >= n) return;
  size_t srow = (f0 + j) % (sizes ? sizes[r] : rows_src);
  hcl_copy_row(src + src_off, rows_src, srow, dst + dst_off, n, j, width, r);
}

/* The training batch's inputs and labels in one launch (CPUs): row j of
 * replica r of both (hcl_gather_xy_at). gws = (>= n, R). */
__kernel void hcl_k_gather_xy_cpu(hcl_gather_p gp, __global const float *sx,
                                  __global const float *sy, __global float *dx, __global float *dy,
                                  __global const ulong *sizes) {
  size_t j = get_global_id(0), r = get_global_id(1);
  if (j < gp.n) hcl_gather_xy_at(gp, sx, sy, dx, dy, sizes, j, r);
}

/* GPUs: one group of HCL_RED_WG work-items per replica; item l handles
 * samples l, l + WG, ... in order, then a fixed tree. gws = (WG, R). */
__kernel __attribute__((reqd_work_group_size(HCL_RED_WG, 1, 1))) void
hcl_k_loss(hcl_loss_p lp, __global const float *f, __global const float *y, __global float *dout,
           __global float *loss_acc, __global float *err_acc, __global int *nan_step) {
  int kind = lp.kind, has_dout = lp.has_dout, has_loss = lp.has_loss, has_err = lp.has_err;
  int accumulate = lp.accumulate, has_nan = lp.has_nan, step = lp.step;
  float grad_scale = lp.grad_scale, mse_scale = lp.mse_scale, mse_gscale = lp.mse_gscale;
  ulong f_off = lp.f_off, y_off = lp.y_off, n = lp.n, out_dim = lp.out_dim;
  ulong dout_off = lp.dout_off, loss_off = lp.loss_off, err_off = lp.err_off, nan_off = lp.nan_off;
  __local float pl[HCL_RED_WG], pe[HCL_RED_WG];
  size_t l = get_local_id(0), r = get_group_id(1);
  ulong ydim = kind == HCL_LOSS_MSE ? out_dim : 1;
  float sl = 0.0f, se = 0.0f;
  for (size_t i = l; i < n; i += HCL_RED_WG) {
    size_t s = r * n + i;
    float li, ei;
    hcl_loss_sample(kind, f + f_off + s * out_dim, y + y_off + s * ydim,
                    dout + dout_off + s * out_dim, has_dout, out_dim, grad_scale, mse_scale,
                    mse_gscale, &li, &ei);
    sl += li;
    se += ei;
  }
  pl[l] = sl;
  pe[l] = se;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t h = HCL_RED_WG / 2; h > 0; h >>= 1) {
    if (l < h) {
      pl[l] += pl[l + h];
      pe[l] += pe[l + h];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) HCL_LOSS_STORE(r, pl[0], pe[0]);
}

/* CPUs, where the group's barriers cost ~1 us per replica (PoCL): one
 * work-item per replica computes each sample's loss and error in sample order
 * and sums them in that order (one kernel per loss kind, a compile-time
 * constant). One launch: a launch costs PoCL more than the few samples of a
 * training batch do. gws = (R). */
#define HCL_DEF_LOSS_REPLICA(NAME, KIND)                                                           \
  __kernel void NAME(hcl_loss_p lp, __global const float *f, __global const float *y,              \
                     __global float *dout, __global float *loss_acc, __global float *err_acc,      \
                     __global int *nan_step) {                                                     \
    hcl_loss_replica_at(KIND, lp, f, y, dout, loss_acc, err_acc, nan_step, get_global_id(0));     \
  }
HCL_DEF_LOSS_REPLICA(hcl_k_loss_mse, HCL_LOSS_MSE)
HCL_DEF_LOSS_REPLICA(hcl_k_loss_cross_entropy, HCL_LOSS_CROSS_ENTROPY)
HCL_DEF_LOSS_REPLICA(hcl_k_loss_logistic, HCL_LOSS_LOGISTIC)
HCL_DEF_LOSS_REPLICA(hcl_k_loss_hinge, HCL_LOSS_HINGE)

/* Optimiser update of params [R, n] (hcl_optim_at, items.cl). gws = (>= n, R). */
__kernel void hcl_k_optim(hcl_optim_p op, __global const float *lr_scale, __global float *p,
                          __global const float *grad, __global float *s1, __global float *s2,
                          __global const float *mask) {
  size_t e = get_global_id(0), r = get_global_id(1);
  if (e < op.n) hcl_optim_at(op, lr_scale, p, grad, s1, s2, mask, e, r);
}

/* Plain SGD (no momentum, no per-replica rates, no mask): hcl_k_optim's
 * arithmetic with two buffers instead of six, each of which a driver may
 * charge per launch (PoCL about 1-2 us; its CPUs take hcl_k_sgd_cpu).
 * gws = (>= n, R). */
__kernel void hcl_k_sgd(hcl_optim_p op, __global float *p, __global const float *grad) {
  size_t e = get_global_id(0), r = get_global_id(1);
  if (e < op.n) hcl_optim_at(op, p, p, grad, p, p, p, e, r);
}

/* The same two on CPUs: HCL_OPT_CHUNK entries an item, eight at a time
 * (hcl_optim_range_at), one item a group. With the per-entry function
 * called per work-item (its early return for a frozen entry) PoCL left the
 * kernel above scalar: 780 us a step for the RHM CNN's 137 k parameters,
 * against 55-64 us for these chunks. gws = (chunks, R). */
__kernel void hcl_k_optim_cpu(hcl_optim_p op, __global const float *lr_scale, __global float *p,
                              __global const float *grad, __global float *s1, __global float *s2,
                              __global const float *mask) {
  size_t e0 = get_global_id(0) * HCL_OPT_CHUNK, r = get_global_id(1);
  if (e0 < op.n)
    hcl_optim_range_at(op, lr_scale, p, grad, s1, s2, mask, e0, min(e0 + HCL_OPT_CHUNK, op.n), r);
}
__kernel void hcl_k_sgd_cpu(hcl_optim_p op, __global float *p, __global const float *grad) {
  size_t e0 = get_global_id(0) * HCL_OPT_CHUNK, r = get_global_id(1);
  if (e0 < op.n) hcl_optim_range_at(op, p, p, grad, p, p, p, e0, min(e0 + HCL_OPT_CHUNK, op.n), r);
}

/* Reference GEMM, row major: C = alpha op(A) op(B) + beta C (beta == 0: C not
 * read). One work-item per element, k summed in order. gws = (>= n, >= m). */
__kernel void hcl_k_gemm_ref(int ta, int tb, ulong m, ulong n, ulong k, float alpha,
                             __global const float *a, ulong a_off, ulong lda,
                             __global const float *b, ulong b_off, ulong ldb, float beta,
                             __global float *c, ulong c_off, ulong ldc) {
  size_t j = get_global_id(0), i = get_global_id(1);
  if (i >= m || j >= n) return;
  float s = 0.0f;
  for (size_t p = 0; p < k; p++) {
    float av = ta ? a[a_off + p * lda + i] : a[a_off + i * lda + p];
    float bv = tb ? b[b_off + j * ldb + p] : b[b_off + p * ldb + j];
    s += av * bv;
  }
  size_t o = c_off + i * ldc + j;
  float v = alpha * s;
  c[o] = beta == 0.0f ? v : v + beta * c[o];
}

/* ---- thin products (GEMMs with m, n or k = 1), batched over q ------------
 * CLBlast pads such shapes to its tiles; these run at memory speed on CPUs.
 * Operand q starts s* floats after operand q-1. */

/* out[q][i*inco] = alpha sum_p M[q][i*ldm + p] v[q][p*incv] (+ beta out):
 * one row dot product per work-item, four partial sums in a fixed order.
 * gws = (>= rows, batch). */
__kernel void hcl_k_gemv_dot(hcl_thin_p t, __global const float *M, __global const float *v,
                             __global float *out) {
  hcl_gemv_dot_at(t, M, v, out, get_global_id(0), get_global_id(1));
}

/* out[q][j*inco] = alpha sum_p v[q][p*incv] M[q][p*ldm + j] (+ beta out):
 * eight consecutive columns per work-item, p in order.
 * gws = (>= ceil(cols / 8), batch). */
__kernel void hcl_k_gemv_axpy(hcl_thin_p t, __global const float *M, __global const float *v,
                              __global float *out) {
  hcl_gemv_axpy_at(t, M, v, out, get_global_id(0) * 8, get_global_id(1));
}

/* Rank one: c[q][i*ldc + j] = alpha (u[q][i*incu] v[q][j*incv]) (+ beta c).
 * gws = (>= n, >= m, batch). */
__kernel void hcl_k_ger(hcl_thin_p t, __global const float *u, __global const float *v,
                        __global float *c) {
  hcl_ger_at(t, u, v, c, get_global_id(0), get_global_id(1), get_global_id(2));
}

/* GPUs: one output per work-item (more parallel work; 4 columns per item
 * was 10-22% slower on an H100 at 100 replicas). Same summation order as
 * hcl_k_gemm_row. */
__kernel void hcl_k_gemm_small1(hcl_gemm_p g, __global const float *a, __global const float *b,
                                __global float *c) {
  HCL_GEMM_UNPACK(g);
  size_t j = get_global_id(0), i = get_global_id(1), q = get_global_id(2);
  if (i >= m || j >= n) return;
  __global const float *ap = a + a_off + q * sa + (ta ? i : i * lda);
  __global const float *bp = b + b_off + q * sb + (tb ? j * ldb : j);
  size_t as = ta ? lda : 1, bs = tb ? 1 : ldb;
  float s = 0.0f;
  for (size_t p = 0; p < k; p++) s += ap[p * as] * bp[p * bs];
  size_t o = c_off + q * sc + i * ldc + j;
  float v = alpha * s;
  c[o] = beta == 0.0f ? v : v + beta * c[o];
}

/* Small products on CPUs, batched, in one launch (CLBlast's per-call host
 * cost dominates products this small). One work-item computes one row of C,
 * 32 and then 8 columns at a time in float8 registers: PoCL vectorises these
 * explicitly, while the former 4 columns per work-item in scalars ran
 * 20 x 40 x 40 in 13-16 us of device time against 2-3 us. Each output sums
 * over p in order, as hcl_k_gemm_small1 does (the same bits).
 * c[q][i*ldc + j] = alpha sum_p opA(i,p) opB(p,j) (+ beta c).
 * gws = (m, batch). */
__kernel void hcl_k_gemm_row(hcl_gemm_p g, __global const float *a, __global const float *b,
                             __global float *c) {
  hcl_gemm_row_at(g, a, b, c, get_global_id(0), get_global_id(1));
}

/* Small products on CPUs when op(B) fits in HCL_TILE_LOCAL floats: one
 * work-group per replica (gws = (L, batch), lws = (L, 1); splitting a
 * replica's rows over two groups was slower at one replica) first copies
 * op(B) into local memory as k rows of np = n rounded up to 16 floats,
 * zero-padded; B^T in 4 x 4 blocks. Then B^T, like B, is read in contiguous
 * float16 rows (hcl_k_gemm_row reads B^T with eight strided loads per
 * float8). Each work-item computes 4-row tiles of C, 32 and then 16 columns
 * at a time: eight independent float16 sums hide the add's latency, and a
 * row of op(B) serves four rows of C. Each output sums over p in order with
 * a multiply and an add, as hcl_k_gemm_row does (the same bits). */
__kernel void hcl_k_gemm_tile(hcl_gemm_p g, __global const float *a, __global const float *b,
                              __global float *c) {
  __local float bl[HCL_TILE_LOCAL] __attribute__((aligned(64)));
  hcl_gemm_tile_wg(g, a, b, c, get_global_id(1), get_local_id(0), get_local_size(0), bl);
}

/* Row-major products on CPUs without CLBlast's padded and transposed copies
 * (on PoCL those cost 20-40 % of a small-k product, and CLBlast pads k to
 * its tile). op(B) must be B itself (blas.c transposes a B^T first, with
 * hcl_k_transpose). Each work-item computes 8 rows x 32 columns of C.
 * Columns below n - n % 16 sum over p in order with fma() in float16
 * registers: FP_CONTRACT is off for every program (common.cl), so a * b + c
 * would be two instructions, and the product is compute-bound (fma is
 * correctly rounded on every device, so the bits do not depend on the CPU).
 * The last n % 16 columns sum in order with a multiply and an add, in float8,
 * float4 and float lanes (the bits of the former scalar loop). Two fma
 * chunks (32 columns) take their own loop: a loop that also served one chunk
 * tested which inside, every step. gws >= (ceil(n / 32), ceil(m / 8), batch),
 * any local size. */
#define HCL_RB_ROW(t) min(i0 + (t), m - 1) * ars
/* the 8 rows' values of op(A) at step p */
#define HCL_RB_AV(p)                                                                               \
  size_t o_ = (p)*as;                                                                              \
  float v0 = a0[o_], v1 = a1[o_], v2 = a2[o_], v3 = a3[o_];                                        \
  float v4 = a4[o_], v5 = a5[o_], v6 = a6[o_], v7 = a7[o_]
#define HCL_RB_FMA(x, b)                                                                           \
  x##0 = fma((float16)v0, b, x##0), x##1 = fma((float16)v1, b, x##1);                              \
  x##2 = fma((float16)v2, b, x##2), x##3 = fma((float16)v3, b, x##3);                              \
  x##4 = fma((float16)v4, b, x##4), x##5 = fma((float16)v5, b, x##5);                              \
  x##6 = fma((float16)v6, b, x##6), x##7 = fma((float16)v7, b, x##7)
/* C's columns [j, j + W) of the tile's rows = alpha acc (+ beta C) */
#define HCL_RB_STORE(x, VT, W, LOAD, STORE, j)                                                     \
  do {                                                                                             \
    VT xs_[8] = {x##0, x##1, x##2, x##3, x##4, x##5, x##6, x##7};                                  \
    for (size_t t = 0; t < rows; t++) {                                                            \
      __global float *cr = cq + (i0 + t) * ldc + (j);                                              \
      VT u = alpha * xs_[t];                                                                       \
      if (beta != 0.0f) u += beta * LOAD(cr);                                                      \
      STORE(u, cr);                                                                                \
    }                                                                                              \
  } while (0)
#define HCL_RB_L16(p) vload16(0, p)
#define HCL_RB_S16(u, p) vstore16(u, 0, p)
#define HCL_RB_L8(p) vload8(0, p)
#define HCL_RB_S8(u, p) vstore8(u, 0, p)
#define HCL_RB_L4(p) vload4(0, p)
#define HCL_RB_S4(u, p) vstore4(u, 0, p)
#define HCL_RB_L1(p) (*(p))
#define HCL_RB_S1(u, p) (*(p) = (u))
#define HCL_RB_ZERO(x, VT)                                                                         \
  VT x##0 = 0.0f, x##1 = 0.0f, x##2 = 0.0f, x##3 = 0.0f, x##4 = 0.0f, x##5 = 0.0f, x##6 = 0.0f,    \
     x##7 = 0.0f
/* W tail columns from j: multiply, then add (the former scalar loop's bits) */
#define HCL_RB_MULADD(x, b)                                                                        \
  x##0 += v0 * b, x##1 += v1 * b, x##2 += v2 * b, x##3 += v3 * b;                                  \
  x##4 += v4 * b, x##5 += v5 * b, x##6 += v6 * b, x##7 += v7 * b
#define HCL_RB_TAIL(VT, W, LOAD, STORE)                                                            \
  for (; j + (W) <= jend; j += (W)) {                                                              \
    HCL_RB_ZERO(z, VT);                                                                            \
    for (size_t p = 0; p < k; p++) {                                                               \
      HCL_RB_AV(p);                                                                                \
      VT b = LOAD(bq + p * ldb + j);                                                               \
      HCL_RB_MULADD(z, b);                                                                         \
    }                                                                                              \
    HCL_RB_STORE(z, VT, W, LOAD, STORE, j);                                                        \
  }
/* The 32-column block's sum over p: op(B)'s row p (32 floats) at BP, the
 * 8 values of op(A) by AV. */
#define HCL_RB_LOOP32(AV, BP)                                                                      \
  for (size_t p = 0; p < k; p++) {                                                                 \
    AV;                                                                                            \
    float16 b0 = vload16(0, BP), b1 = vload16(1, BP);                                              \
    HCL_RB_FMA(x, b0);                                                                             \
    HCL_RB_FMA(y, b1);                                                                             \
  }
/* The same with op(A)'s addressing spelled out per case: with a run-time
 * step `as`, LLVM advanced all eight row pointers every step, and those
 * eight integer adds shared the FMA ports (gemm_shapes: medians of
 * alternating rounds 0.96-1.17x) */
#define HCL_RB_SUM32(BP)                                                                           \
  if (!ta) {                                                                                       \
    HCL_RB_LOOP32(float v0 = a0[p]; float v1 = a1[p]; float v2 = a2[p]; float v3 = a3[p];          \
                  float v4 = a4[p]; float v5 = a5[p]; float v6 = a6[p]; float v7 = a7[p], BP);     \
  } else if (rows == 8) { /* the 8 rows' values of a step are contiguous */                       \
    HCL_RB_LOOP32(__global const float *ap = a0 + p * lda; float v0 = ap[0]; float v1 = ap[1];     \
                  float v2 = ap[2]; float v3 = ap[3]; float v4 = ap[4]; float v5 = ap[5];          \
                  float v6 = ap[6]; float v7 = ap[7], BP);                                         \
  } else {                                                                                         \
    HCL_RB_LOOP32(HCL_RB_AV(p), BP);                                                               \
  }
/* The work-item's 32-column block: get_global_id(0), or for a lower
 * triangle (whose column block c has about n - 32 c rows to compute) the
 * blocks 0, last, 1, last - 1, ...: PoCL's threads take groups in halving
 * chunks, and in order the first thread took the heavy half (85 GFLOP/s at
 * 512 x 512 x 256, S^T S). */
HCL_FN size_t hcl_rb_col_block(int lower, ulong n) {
  size_t cb = get_global_id(0), nb = (n + 31) / 32;
  if (!lower || cb >= nb) return cb;
  return (cb & 1) ? nb - 1 - cb / 2 : cb / 2;
}
__kernel void hcl_k_gemm_rb(int ta, ulong m, ulong n, ulong k, float alpha, __global const float *a,
                            ulong a_off, ulong lda, ulong sa, __global const float *b, ulong b_off,
                            ulong ldb, ulong sb, float beta, __global float *c, ulong c_off,
                            ulong ldc, ulong sc) {
  int lower = (ta >> 1) & 1; /* only the blocks meeting C's lower triangle (hcl_gemm_rb_lower) */
  ta &= 1;
  size_t j0 = hcl_rb_col_block(lower, n) * 32, i0 = get_global_id(1) * 8, q = get_global_id(2);
  if (j0 >= n || i0 >= m || (lower && j0 > i0 + 7)) return;
  __global const float *aq = a + a_off + q * sa, *bq = b + b_off + q * sb;
  __global float *cq = c + c_off + q * sc;
  size_t as = ta ? lda : 1, ars = ta ? 1 : lda;
  size_t rows = m - i0 < 8 ? m - i0 : 8, n16 = n - n % 16, jend = min(j0 + 32, (size_t)n);
  /* rows past m read row m-1 (in bounds) and are not stored */
  __global const float *a0 = aq + HCL_RB_ROW(0), *a1 = aq + HCL_RB_ROW(1);
  __global const float *a2 = aq + HCL_RB_ROW(2), *a3 = aq + HCL_RB_ROW(3);
  __global const float *a4 = aq + HCL_RB_ROW(4), *a5 = aq + HCL_RB_ROW(5);
  __global const float *a6 = aq + HCL_RB_ROW(6), *a7 = aq + HCL_RB_ROW(7);
  size_t j = j0;
  if (j + 32 <= n16) {
    HCL_RB_ZERO(x, float16);
    HCL_RB_ZERO(y, float16);
    HCL_RB_SUM32(bq + p * ldb + j);
    HCL_RB_STORE(x, float16, 16, HCL_RB_L16, HCL_RB_S16, j);
    HCL_RB_STORE(y, float16, 16, HCL_RB_L16, HCL_RB_S16, j + 16);
    return;
  }
  if (j + 16 <= n16) {
    HCL_RB_ZERO(x, float16);
    for (size_t p = 0; p < k; p++) {
      HCL_RB_AV(p);
      float16 b0 = vload16(0, bq + p * ldb + j);
      HCL_RB_FMA(x, b0);
    }
    HCL_RB_STORE(x, float16, 16, HCL_RB_L16, HCL_RB_S16, j);
    j += 16;
  }
  HCL_RB_TAIL(float8, 8, HCL_RB_L8, HCL_RB_S8)
  HCL_RB_TAIL(float4, 4, HCL_RB_L4, HCL_RB_S4)
  HCL_RB_TAIL(float, 1, HCL_RB_L1, HCL_RB_S1)
}

/* hcl_k_gemm_rb for n a multiple of 32 and a group of several row blocks
 * (lws = (1, l, 1)), which share one 32-column panel of B: the group first
 * copies it into pl (k x 32 floats, contiguous), then each work-item sums
 * its 8 x 32 block from there in the same order (the same bits). Read in
 * place, B's rows ldb floats apart fall into a few cache sets (ldb a
 * multiple of 256 maps every row to the same ones): at k = 1024 the
 * 128 x 512 product ran at half its rate at k = 512. Nothing before the
 * barrier depends on the work-item: PoCL computed wrong sums when items past
 * m returned before it or after it, and wrong tail columns when this path
 * shared a kernel with hcl_k_gemm_rb's. Bit 2 of ta: B is given as B^T
 * [n, k] (op(B) = B^T) and the copy transposes 16 x 16 blocks in registers
 * (hcl_t16), which spares the transpose kernel's launch and its pass over
 * memory; the panel, and so the sums, are the same. */
/* One stage of a 16 x 16 transpose: rows a, b (b = a's row + s) exchange
 * the s-blocks whose column bit s differs from their row bit s. */
#define HCL_T16_8(a, b)                                                                            \
  do {                                                                                             \
    float16 u_ = (float16)(a.lo, b.lo);                                                            \
    b = (float16)(a.hi, b.hi), a = u_;                                                             \
  } while (0)
#define HCL_T16_4(a, b)                                                                            \
  do {                                                                                             \
    float16 u_ = (float16)(a.s0123, b.s0123, a.s89ab, b.s89ab);                                    \
    b = (float16)(a.s4567, b.s4567, a.scdef, b.scdef), a = u_;                                     \
  } while (0)
#define HCL_T16_2(a, b)                                                                            \
  do {                                                                                             \
    float16 u_ = (float16)(a.s01, b.s01, a.s45, b.s45, a.s89, b.s89, a.scd, b.scd);                \
    b = (float16)(a.s23, b.s23, a.s67, b.s67, a.sab, b.sab, a.sef, b.sef), a = u_;                 \
  } while (0)
#define HCL_T16_1(a, b)                                                                            \
  do {                                                                                             \
    float16 u_ = (float16)(a.s0, b.s0, a.s2, b.s2, a.s4, b.s4, a.s6, b.s6, a.s8, b.s8, a.sa, b.sa, \
                           a.sc, b.sc, a.se, b.se);                                                \
    b = (float16)(a.s1, b.s1, a.s3, b.s3, a.s5, b.s5, a.s7, b.s7, a.s9, b.s9, a.sb, b.sb, a.sd,    \
                  b.sd, a.sf, b.sf),                                                               \
    a = u_;                                                                                        \
  } while (0)
/* dst[t * 32 + i] = src[i * ld + t] for i, t < 16. */
HCL_FN void hcl_t16(__global const float *src, size_t ld, __local float *dst) {
  float16 r0 = vload16(0, src), r1 = vload16(0, src + ld), r2 = vload16(0, src + 2 * ld);
  float16 r3 = vload16(0, src + 3 * ld), r4 = vload16(0, src + 4 * ld);
  float16 r5 = vload16(0, src + 5 * ld), r6 = vload16(0, src + 6 * ld);
  float16 r7 = vload16(0, src + 7 * ld), r8 = vload16(0, src + 8 * ld);
  float16 r9 = vload16(0, src + 9 * ld), r10 = vload16(0, src + 10 * ld);
  float16 r11 = vload16(0, src + 11 * ld), r12 = vload16(0, src + 12 * ld);
  float16 r13 = vload16(0, src + 13 * ld), r14 = vload16(0, src + 14 * ld);
  float16 r15 = vload16(0, src + 15 * ld);
  HCL_T16_8(r0, r8); HCL_T16_8(r1, r9); HCL_T16_8(r2, r10); HCL_T16_8(r3, r11);
  HCL_T16_8(r4, r12); HCL_T16_8(r5, r13); HCL_T16_8(r6, r14); HCL_T16_8(r7, r15);
  HCL_T16_4(r0, r4); HCL_T16_4(r1, r5); HCL_T16_4(r2, r6); HCL_T16_4(r3, r7);
  HCL_T16_4(r8, r12); HCL_T16_4(r9, r13); HCL_T16_4(r10, r14); HCL_T16_4(r11, r15);
  HCL_T16_2(r0, r2); HCL_T16_2(r1, r3); HCL_T16_2(r4, r6); HCL_T16_2(r5, r7);
  HCL_T16_2(r8, r10); HCL_T16_2(r9, r11); HCL_T16_2(r12, r14); HCL_T16_2(r13, r15);
  HCL_T16_1(r0, r1); HCL_T16_1(r2, r3); HCL_T16_1(r4, r5); HCL_T16_1(r6, r7);
  HCL_T16_1(r8, r9); HCL_T16_1(r10, r11); HCL_T16_1(r12, r13); HCL_T16_1(r14, r15);
  vstore16(r0, 0, dst), vstore16(r1, 0, dst + 32), vstore16(r2, 0, dst + 64);
  vstore16(r3, 0, dst + 96), vstore16(r4, 0, dst + 128), vstore16(r5, 0, dst + 160);
  vstore16(r6, 0, dst + 192), vstore16(r7, 0, dst + 224), vstore16(r8, 0, dst + 256);
  vstore16(r9, 0, dst + 288), vstore16(r10, 0, dst + 320), vstore16(r11, 0, dst + 352);
  vstore16(r12, 0, dst + 384), vstore16(r13, 0, dst + 416), vstore16(r14, 0, dst + 448);
  vstore16(r15, 0, dst + 480);
}
__kernel void hcl_k_gemm_rb_pack(int ta, ulong m, ulong n, ulong k, float alpha,
                                 __global const float *a, ulong a_off, ulong lda, ulong sa,
                                 __global const float *b, ulong b_off, ulong ldb, ulong sb,
                                 float beta, __global float *c, ulong c_off, ulong ldc, ulong sc,
                                 __local float *pl) {
  int lower = (ta >> 1) & 1, tb = ta >> 2; /* as in hcl_k_gemm_rb; B given transposed */
  ta &= 1;
  size_t j = hcl_rb_col_block(lower, n) * 32, i0 = get_global_id(1) * 8, q = get_global_id(2);
  size_t lid = get_local_id(1), lsz = get_local_size(1);
  if (!tb) {
    __global const float *bq = b + b_off + q * sb + j;
    for (size_t p = lid; p < k; p += lsz) {
      vstore16(vload16(0, bq + p * ldb), 0, pl + p * 32);
      vstore16(vload16(1, bq + p * ldb), 0, pl + p * 32 + 16);
    }
  } else { /* panel row p = B^T's column p of rows j .. j+31: 16 x 16 blocks, then k's tail */
    __global const float *bq = b + b_off + q * sb + j * ldb;
    size_t k16 = k - k % 16;
    for (size_t u = lid; u < k16 / 8; u += lsz) /* u: 16 rows of p, one half of the columns */
      hcl_t16(bq + (u & 1) * 16 * ldb + (u >> 1) * 16, ldb, pl + (u >> 1) * 16 * 32 + (u & 1) * 16);
    for (size_t e = lid; e < (k - k16) * 32; e += lsz)
      pl[(k16 + e / 32) * 32 + e % 32] = bq[(e % 32) * ldb + k16 + e / 32];
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  if (i0 < m && !(lower && j > i0 + 7)) {
    __global const float *aq = a + a_off + q * sa;
    __global float *cq = c + c_off + q * sc;
    size_t as = ta ? lda : 1, ars = ta ? 1 : lda, rows = m - i0 < 8 ? m - i0 : 8;
    __global const float *a0 = aq + HCL_RB_ROW(0), *a1 = aq + HCL_RB_ROW(1);
    __global const float *a2 = aq + HCL_RB_ROW(2), *a3 = aq + HCL_RB_ROW(3);
    __global const float *a4 = aq + HCL_RB_ROW(4), *a5 = aq + HCL_RB_ROW(5);
    __global const float *a6 = aq + HCL_RB_ROW(6), *a7 = aq + HCL_RB_ROW(7);
    HCL_RB_ZERO(x, float16);
    HCL_RB_ZERO(y, float16);
    HCL_RB_SUM32(pl + p * 32);
    HCL_RB_STORE(x, float16, 16, HCL_RB_L16, HCL_RB_S16, j);
    HCL_RB_STORE(y, float16, 16, HCL_RB_L16, HCL_RB_S16, j + 16);
  }
}

/* hcl_k_gemm_rb's bits for op(A) = A^T, op(B) = B, n = 16 and m a multiple
 * of 16 (a Taylor model's backward, the RHM CNN's first-layer weight
 * gradient): vectors run along the rows of C, which are contiguous in A,
 * and B's 16 values of a step are broadcast. A work-item computes 16 rows x
 * 16 columns, each output one fma per step, in order, and reads its strip of
 * A once; along the columns the tile was one float16 chunk of 8 rows, whose
 * 8 fma per 9 loads left the FMA units half idle. gws >= (m / 16, 1, batch), any
 * local size. */
#define HCL_TN_FMA(t) x##t = fma(av, (float16)bp[t], x##t)
#define HCL_TN_STORE(t)                                                                            \
  do {                                                                                             \
    float u_[16];                                                                                  \
    vstore16(alpha *x##t, 0, u_);                                                                  \
    for (int l = 0; l < 16; l++) {                                                                 \
      __global float *cp = cq + l * ldc + (t);                                                     \
      *cp = beta == 0.0f ? u_[l] : u_[l] + beta * *cp;                                             \
    }                                                                                              \
  } while (0)
__kernel void hcl_k_gemm_rb_tn16(ulong m, ulong k, float alpha, __global const float *a,
                                 ulong a_off, ulong lda, ulong sa, __global const float *b,
                                 ulong b_off, ulong ldb, ulong sb, float beta, __global float *c,
                                 ulong c_off, ulong ldc, ulong sc) {
  size_t i0 = get_global_id(0) * 16, q = get_global_id(2);
  if (i0 >= m) return;
  __global const float *aq = a + a_off + q * sa + i0, *bq = b + b_off + q * sb;
  __global float *cq = c + c_off + q * sc + i0 * ldc;
  HCL_RB_ZERO(x, float16);
  float16 x8 = 0.0f, x9 = 0.0f, x10 = 0.0f, x11 = 0.0f, x12 = 0.0f, x13 = 0.0f, x14 = 0.0f,
          x15 = 0.0f;
  for (size_t p = 0; p < k; p++) {
    float16 av = vload16(0, aq + p * lda);
    __global const float *bp = bq + p * ldb;
    HCL_TN_FMA(0), HCL_TN_FMA(1), HCL_TN_FMA(2), HCL_TN_FMA(3);
    HCL_TN_FMA(4), HCL_TN_FMA(5), HCL_TN_FMA(6), HCL_TN_FMA(7);
    HCL_TN_FMA(8), HCL_TN_FMA(9), HCL_TN_FMA(10), HCL_TN_FMA(11);
    HCL_TN_FMA(12), HCL_TN_FMA(13), HCL_TN_FMA(14), HCL_TN_FMA(15);
  }
  HCL_TN_STORE(0);
  HCL_TN_STORE(1);
  HCL_TN_STORE(2);
  HCL_TN_STORE(3);
  HCL_TN_STORE(4);
  HCL_TN_STORE(5);
  HCL_TN_STORE(6);
  HCL_TN_STORE(7);
  HCL_TN_STORE(8);
  HCL_TN_STORE(9);
  HCL_TN_STORE(10);
  HCL_TN_STORE(11);
  HCL_TN_STORE(12);
  HCL_TN_STORE(13);
  HCL_TN_STORE(14);
  HCL_TN_STORE(15);
}

/* dst [batch][k, n] = the transpose of src [batch][n, k] (leading dimension
 * lds, batch stride ss): op(B) = B^T as a plain B for hcl_k_gemm_rb. One
 * work-item writes 16 floats of a row p of dst; the work-items of a group
 * take consecutive p, so they read the same 16 rows of src from cache (one
 * float per work-item with stride lds in its reads ran 7 % of an RHM CNN
 * step). gws = (k rounded up to the local size, ceil(n / 16), batch). */
__kernel void hcl_k_transpose(__global const float *src, ulong so, ulong lds, ulong ss,
                              __global float *dst, ulong n, ulong k) {
  size_t p = get_global_id(0), j0 = get_global_id(1) * 16, q = get_global_id(2);
  if (p >= k) return;
  __global const float *s = src + so + q * ss + j0 * lds + p;
  __global float *d = dst + (q * k + p) * n + j0;
  if (j0 + 16 <= n) {
    float16 v = (float16)(s[0], s[lds], s[2 * lds], s[3 * lds], s[4 * lds], s[5 * lds], s[6 * lds],
                          s[7 * lds], s[8 * lds], s[9 * lds], s[10 * lds], s[11 * lds], s[12 * lds],
                          s[13 * lds], s[14 * lds], s[15 * lds]);
    vstore16(v, 0, d);
    return;
  }
  for (size_t t = 0; j0 + t < n; t++) d[t] = s[t * lds];
}
