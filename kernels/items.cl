/* The per-item bodies of the runtime's products, column sums, axpby, CPU
 * batch gather, loss and optimiser (ops_args.h is prepended). ops.cl's kernels
 * are one call of these, and a graph's one-launch passes and training step
 * (runtime/graph_pass.c) call the same functions, so both compute the same
 * bits by construction. Helpers only, no __kernel. */

/* The fields of hcl_gemm_p p as locals of the same names. */
#define HCL_GEMM_UNPACK(p)                                                                         \
  int ta = (p).ta, tb = (p).tb;                                                                    \
  float alpha = (p).alpha, beta = (p).beta;                                                        \
  ulong m = (p).m, n = (p).n, k = (p).k, a_off = (p).a_off, lda = (p).lda, sa = (p).sa;            \
  ulong b_off = (p).b_off, ldb = (p).ldb, sb = (p).sb, c_off = (p).c_off, ldc = (p).ldc;           \
  ulong sc = (p).sc

void hcl_col_sum_vec_at(hcl_colsum_p cp, __global const float *x, __global float *out,
                        size_t c0, size_t r) {
  ulong x_off = cp.x_off, out_off = cp.out_off, out_stride = cp.out_stride, rows = cp.rows;
  ulong cols = cp.cols;
  float alpha = cp.alpha, beta = cp.beta;
  if (c0 >= cols) return;
  __global const float *p = x + x_off + r * rows * cols;
  __global float *o = out + out_off + r * out_stride;
  if (c0 + 8 <= cols) {
    float8 s = (float8)(0.0f);
    for (size_t i = 0; i < rows; i++) s += vload8(0, p + i * cols + c0);
    float8 v = alpha * s;
    if (beta != 0.0f) v = beta * vload8(0, o + c0) + v;
    vstore8(v, 0, o + c0);
    return;
  }
  for (size_t c = c0; c < cols; c++) {
    float s = 0.0f;
    for (size_t i = 0; i < rows; i++) s += p[i * cols + c];
    float v = alpha * s;
    o[c] = beta == 0.0f ? v : beta * o[c] + v;
  }
}

void hcl_axpby_at(float a, __global const float *x, ulong x_off, float b, __global float *y,
                  ulong y_off, ulong n, size_t e) {
  if (e >= n) return;
  float v = a * x[x_off + e];
  y[y_off + e] = b == 0.0f ? v : v + b * y[y_off + e];
}

void hcl_gemv_dot_at(hcl_thin_p t, __global const float *M, __global const float *v,
                     __global float *out, size_t i, size_t q) {
  ulong rows = t.d0, k = t.d1, m_off = t.o0, ldm = t.i0, sm = t.s0, v_off = t.o1, incv = t.i1;
  ulong sv = t.s1, o_off = t.o2, inco = t.i2, so = t.s2;
  float alpha = t.alpha, beta = t.beta;
  if (i >= rows) return;
  __global const float *mr = M + m_off + q * sm + i * ldm;
  __global const float *vv = v + v_off + q * sv;
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  size_t p = 0;
  for (; p + 4 <= k; p += 4) {
    s0 += mr[p] * vv[p * incv];
    s1 += mr[p + 1] * vv[(p + 1) * incv];
    s2 += mr[p + 2] * vv[(p + 2) * incv];
    s3 += mr[p + 3] * vv[(p + 3) * incv];
  }
  for (; p < k; p++) s0 += mr[p] * vv[p * incv];
  float val = alpha * ((s0 + s1) + (s2 + s3));
  size_t o = o_off + q * so + i * inco;
  out[o] = beta == 0.0f ? val : val + beta * out[o];
}

void hcl_gemv_axpy_at(hcl_thin_p t, __global const float *M, __global const float *v,
                      __global float *out, size_t j0, size_t q) {
  ulong cols = t.d0, k = t.d1, m_off = t.o0, ldm = t.i0, sm = t.s0, v_off = t.o1, incv = t.i1;
  ulong sv = t.s1, o_off = t.o2, inco = t.i2, so = t.s2;
  float alpha = t.alpha, beta = t.beta;
  if (j0 >= cols) return;
  __global const float *mq = M + m_off + q * sm;
  __global const float *vv = v + v_off + q * sv;
  __global float *oq = out + o_off + q * so;
  if (j0 + 8 <= cols && inco == 1) {
    float8 s = (float8)(0.0f);
    for (size_t p = 0; p < k; p++) s += vv[p * incv] * vload8(0, mq + p * ldm + j0);
    float8 val = alpha * s;
    if (beta != 0.0f) val = val + beta * vload8(0, oq + j0);
    vstore8(val, 0, oq + j0);
    return;
  }
  size_t j1 = j0 + 8 < cols ? j0 + 8 : cols;
  for (size_t j = j0; j < j1; j++) {
    float s = 0.0f;
    for (size_t p = 0; p < k; p++) s += vv[p * incv] * mq[p * ldm + j];
    float val = alpha * s;
    oq[j * inco] = beta == 0.0f ? val : val + beta * oq[j * inco];
  }
}

void hcl_ger_at(hcl_thin_p t, __global const float *u, __global const float *v,
                __global float *c, size_t j, size_t i, size_t q) {
  ulong m = t.d0, n = t.d1, u_off = t.o0, incu = t.i0, su = t.s0, v_off = t.o1, incv = t.i1;
  ulong sv = t.s1, c_off = t.o2, ldc = t.i2, sc = t.s2;
  float alpha = t.alpha, beta = t.beta;
  if (i >= m || j >= n) return;
  float val = alpha * (u[u_off + q * su + i * incu] * v[v_off + q * sv + j * incv]);
  size_t o = c_off + q * sc + i * ldc + j;
  c[o] = beta == 0.0f ? val : val + beta * c[o];
}

#define HCL_ROW_B8N(j, p) vload8(0, bq + (p)*ldb + (j))
#define HCL_ROW_B8T(j, p)                                                                        \
  (float8)(bq[(j)*ldb + (p)], bq[((j) + 1) * ldb + (p)], bq[((j) + 2) * ldb + (p)],             \
           bq[((j) + 3) * ldb + (p)], bq[((j) + 4) * ldb + (p)], bq[((j) + 5) * ldb + (p)],     \
           bq[((j) + 6) * ldb + (p)], bq[((j) + 7) * ldb + (p)])
#define HCL_ROW_STORE8(acc, j)                                                                   \
  do {                                                                                           \
    float8 u_ = alpha * (acc);                                                                   \
    if (beta != 0.0f) u_ += beta * vload8(0, cr + (j));                                          \
    vstore8(u_, 0, cr + (j));                                                                    \
  } while (0)
/* the columns [j, n - n % 8) of the row, op(B)'s 8 columns read by LOAD8 */
#define HCL_ROW_COLUMNS(LOAD8)                                                                   \
  for (; j + 32 <= n; j += 32) {                                                                 \
    float8 s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;                                           \
    for (size_t p = 0; p < k; p++) {                                                             \
      float av = ap[p * as];                                                                     \
      s0 += av * LOAD8(j, p);                                                                    \
      s1 += av * LOAD8(j + 8, p);                                                                \
      s2 += av * LOAD8(j + 16, p);                                                               \
      s3 += av * LOAD8(j + 24, p);                                                               \
    }                                                                                            \
    HCL_ROW_STORE8(s0, j);                                                                       \
    HCL_ROW_STORE8(s1, j + 8);                                                                   \
    HCL_ROW_STORE8(s2, j + 16);                                                                  \
    HCL_ROW_STORE8(s3, j + 24);                                                                  \
  }                                                                                              \
  for (; j + 8 <= n; j += 8) {                                                                   \
    float8 s0 = 0.0f;                                                                            \
    for (size_t p = 0; p < k; p++) s0 += ap[p * as] * LOAD8(j, p);                               \
    HCL_ROW_STORE8(s0, j);                                                                       \
  }
void hcl_gemm_row_at(hcl_gemm_p g, __global const float *a, __global const float *b,
                     __global float *c, size_t i, size_t q) {
  HCL_GEMM_UNPACK(g);
  if (i >= m) return;
  __global const float *ap = a + a_off + q * sa + (ta ? i : i * lda);
  __global const float *bq = b + b_off + q * sb;
  __global float *cr = c + c_off + q * sc + i * ldc;
  size_t as = ta ? lda : 1, j = 0;
  if (tb) {
    HCL_ROW_COLUMNS(HCL_ROW_B8T)
  } else {
    HCL_ROW_COLUMNS(HCL_ROW_B8N)
  }
  for (; j < n; j++) { /* the last n % 8 columns */
    float s = 0.0f;
    for (size_t p = 0; p < k; p++) s += ap[p * as] * (tb ? bq[j * ldb + p] : bq[p * ldb + j]);
    float v = alpha * s;
    cr[j] = beta == 0.0f ? v : v + beta * cr[j];
  }
}

#define HCL_TILE_MULADD(x, b) x##0 += v0 * (b), x##1 += v1 * (b), x##2 += v2 * (b), x##3 += v3 * (b)
#define HCL_TILE_AV(p)                                                                             \
  size_t o_ = (p)*as;                                                                              \
  float v0 = a0[o_], v1 = a1[o_], v2 = a2[o_], v3 = a3[o_]
/* C's columns [j, j + 16) (those below n) of row i0 + r = alpha x (+ beta C) */
#define HCL_TILE_STORE(x, r, j)                                                                    \
  do {                                                                                             \
    if (i0 + (r) < m) hcl_tile_store(x, cq + (i0 + (r)) * ldc, j, n, alpha, beta);                 \
  } while (0)
void hcl_tile_store(float16 x, __global float *cr, size_t j, size_t n, float alpha, float beta);
void hcl_tile_store(float16 x, __global float *cr, size_t j, size_t n, float alpha, float beta) {
  float16 u = alpha * x;
  if (j + 16 <= n) {
    if (beta != 0.0f) u += beta * vload16(0, cr + j);
    vstore16(u, 0, cr + j);
    return;
  }
  /* vector parts of 8, 4, 1: a private array here stalled on store forwarding */
  float8 h = u.lo;
  if (j + 8 <= n) {
    if (beta != 0.0f) h += beta * vload8(0, cr + j);
    vstore8(h, 0, cr + j);
    h = u.hi, j += 8;
  }
  float4 f = h.lo;
  if (j + 4 <= n) {
    if (beta != 0.0f) f += beta * vload4(0, cr + j);
    vstore4(f, 0, cr + j);
    f = h.hi, j += 4;
  }
  for (; j < n; j++, f = f.s1230) {
    float v = f.s0;
    cr[j] = beta == 0.0f ? v : v + beta * cr[j];
  }
}
void hcl_gemm_tile_wg(hcl_gemm_p g, __global const float *a, __global const float *b,
                      __global float *c, size_t q, size_t lid, size_t nl, __local float *bl) {
  HCL_GEMM_UNPACK(g);
  size_t np = (n + 15) / 16 * 16;
  __global const float *bq = b + b_off + q * sb;
  size_t k4 = tb ? k / 4 * 4 : 0, n4 = n / 4 * 4;
  for (size_t p = 4 * lid; p < k4; p += 4 * nl) { /* B^T's rows p..p+3: 4 x 4 blocks */
    __local float *row = bl + p * np;
    size_t j = 0;
    for (; j < n4; j += 4) {
      __global const float *s = bq + j * ldb + p;
      float4 r0 = vload4(0, s), r1 = vload4(0, s + ldb);
      float4 r2 = vload4(0, s + 2 * ldb), r3 = vload4(0, s + 3 * ldb);
      vstore4((float4)(r0.s0, r1.s0, r2.s0, r3.s0), 0, row + j);
      vstore4((float4)(r0.s1, r1.s1, r2.s1, r3.s1), 0, row + np + j);
      vstore4((float4)(r0.s2, r1.s2, r2.s2, r3.s2), 0, row + 2 * np + j);
      vstore4((float4)(r0.s3, r1.s3, r2.s3, r3.s3), 0, row + 3 * np + j);
    }
    for (; j < n; j++)
      for (size_t t = 0; t < 4; t++) row[t * np + j] = bq[j * ldb + p + t];
  }
  for (size_t p = k4 + lid; p < k; p += nl) { /* op(B)'s other rows */
    __local float *row = bl + p * np;
    size_t j = 0;
    if (tb)
      for (; j < n; j++) row[j] = bq[j * ldb + p];
    else {
      for (; j + 16 <= n; j += 16) vstore16(vload16(0, bq + p * ldb + j), 0, row + j);
      if (j + 8 <= n) vstore8(vload8(0, bq + p * ldb + j), 0, row + j), j += 8;
      for (; j < n; j++) row[j] = bq[p * ldb + j];
    }
  }
  for (size_t p = lid; p < k && n < np; p += nl) /* zero columns to np */
    for (size_t j = n; j < np; j++) bl[p * np + j] = 0.0f;
  barrier(CLK_LOCAL_MEM_FENCE);
  size_t tiles = (m + 3) / 4, as = ta ? lda : 1, ars = ta ? 1 : lda;
  __global const float *aq = a + a_off + q * sa;
  __global float *cq = c + c_off + q * sc;
  for (size_t t = lid; t < tiles; t += nl) {
    size_t i0 = 4 * t, j = 0;
    __global const float *a0 = aq + min(i0, m - 1) * ars, *a1 = aq + min(i0 + 1, m - 1) * ars;
    __global const float *a2 = aq + min(i0 + 2, m - 1) * ars, *a3 = aq + min(i0 + 3, m - 1) * ars;
    for (; j + 32 <= np; j += 32) {
      float16 x0 = 0.0f, x1 = 0.0f, x2 = 0.0f, x3 = 0.0f;
      float16 y0 = 0.0f, y1 = 0.0f, y2 = 0.0f, y3 = 0.0f;
      for (size_t p = 0; p < k; p++) {
        HCL_TILE_AV(p);
        float16 b0 = vload16(0, bl + p * np + j), b1 = vload16(0, bl + p * np + j + 16);
        HCL_TILE_MULADD(x, b0);
        HCL_TILE_MULADD(y, b1);
      }
      HCL_TILE_STORE(x0, 0, j);
      HCL_TILE_STORE(x1, 1, j);
      HCL_TILE_STORE(x2, 2, j);
      HCL_TILE_STORE(x3, 3, j);
      HCL_TILE_STORE(y0, 0, j + 16);
      HCL_TILE_STORE(y1, 1, j + 16);
      HCL_TILE_STORE(y2, 2, j + 16);
      HCL_TILE_STORE(y3, 3, j + 16);
    }
    if (j < np) { /* the last 16 columns */
      float16 x0 = 0.0f, x1 = 0.0f, x2 = 0.0f, x3 = 0.0f;
      for (size_t p = 0; p < k; p++) {
        HCL_TILE_AV(p);
        float16 b0 = vload16(0, bl + p * np + j);
        HCL_TILE_MULADD(x, b0);
      }
      HCL_TILE_STORE(x0, 0, j);
      HCL_TILE_STORE(x1, 1, j);
      HCL_TILE_STORE(x2, 2, j);
      HCL_TILE_STORE(x3, 3, j);
    }
  }
}

/* The work-group's items compute C[q] = alpha op(A[q]) op(B[q]) + beta C[q]
 * with the kernel that hcl_sgemm_batched takes on CPUs for this shape, named
 * by `path` (a literal at the call, so the compiler drops the others): the
 * rank-one, dot and axpy forms of hcl_gemm_thin (ops.c), or hcl_gemm_small's
 * row form; the same function per item, so the same bits. hcl_gemm_small's
 * tile form is hcl_gemm_tile_wg (barriers and local memory). */
void hcl_wg_gemm(hcl_gemm_p g, int path, __global const float *a, __global const float *b,
                 __global float *c, size_t q, size_t lid, size_t nl) {
  HCL_GEMM_UNPACK(g);
  if (path == HCL_WG_ROW) {
    for (size_t i = lid; i < m; i += nl) hcl_gemm_row_at(g, a, b, c, i, q);
    return;
  }
  int row;
  hcl_thin_p t = hcl_thin_of(g, &row);
  if (path == HCL_WG_GER) {
    for (size_t e = lid; e < m * n; e += nl) hcl_ger_at(t, a, b, c, e % n, e / n, q);
    return;
  }
  size_t len = t.d0;
  __global const float *M = row ? b : a, *v = row ? a : b;
  if (path == HCL_WG_DOT)
    for (size_t i = lid; i < len; i += nl) hcl_gemv_dot_at(t, M, v, c, i, q);
  else
    for (size_t j = 8 * lid; j < len; j += 8 * nl) hcl_gemv_axpy_at(t, M, v, c, j, q);
}

/* Row srow of replica r of src [R, rows_src, width] into row j of dst [R, n, width]. */
void hcl_copy_row(__global const float *src, ulong rows_src, size_t srow, __global float *dst,
                  ulong n, size_t j, ulong width, size_t r) {
  __global const float *s = src + (r * rows_src + srow) * width;
  __global float *d = dst + (r * n + j) * width;
  for (size_t c = 0; c < width; c++) d[c] = s[c];
}

/* Row j of replica r of a training batch's inputs and labels, as
 * hcl_k_gather_rows_cpu copies each (ops.cl's gather kernel, and a graph's
 * one-launch training step). */
void hcl_gather_xy_at(hcl_gather_p gp, __global const float *sx, __global const float *sy,
                      __global float *dx, __global float *dy, __global const ulong *sizes,
                      size_t j, size_t r) {
  size_t srow = (gp.f0 + j) % (sizes ? sizes[r] : gp.rows_src);
  hcl_copy_row(sx + gp.sx_off, gp.rows_src, srow, dx + gp.dx_off, gp.n, j, gp.wx, r);
  hcl_copy_row(sy + gp.sy_off, gp.rows_src, srow, dy + gp.dy_off, gp.n, j, gp.wy, r);
}

/* Losses (hcl_loss_kind of runtime/internal.h). */
#define HCL_LOSS_MSE 0
#define HCL_LOSS_CROSS_ENTROPY 1
#define HCL_LOSS_LOGISTIC 2
#define HCL_LOSS_HINGE 3

/* Sample i of replica r: the loss (mse averaged over out_dim), the error
 * (mse: the loss; binary: y f <= 0; classes: first argmax != y) and, when
 * has_dout, dout = grad_scale * dloss/df. mse_scale = 1/out_dim,
 * mse_gscale = 2 grad_scale / out_dim. */
void hcl_loss_sample(int kind, __global const float *fi, __global const float *yi,
                     __global float *di, int has_dout, ulong out_dim, float grad_scale,
                     float mse_scale, float mse_gscale, float *loss, float *err) {
  float li, ei;
  if (kind == HCL_LOSS_MSE) {
    float s = 0.0f;
    for (size_t k = 0; k < out_dim; k++) {
      float d = fi[k] - yi[k];
      s += d * d;
      if (has_dout) di[k] = mse_gscale * d;
    }
    li = s * mse_scale;
    ei = li;
  } else if (kind == HCL_LOSS_CROSS_ENTROPY) {
    float mx = fi[0];
    size_t best = 0;
    for (size_t k = 1; k < out_dim; k++) {
      mx = fmax(mx, fi[k]);
      if (fi[k] > fi[best]) best = k;
    }
    float sum = 0.0f;
    for (size_t k = 0; k < out_dim; k++) sum += exp(fi[k] - mx);
    float yc = yi[0];
    int ok = yc >= 0.0f && yc < (float)out_dim; /* a bad label gives NaN */
    long c = ok ? (long)yc : 0;
    ok = ok && (float)c == yc;
    li = ok ? mx + log(sum) - fi[c] : NAN;
    ei = (ok && (long)best == c) ? 0.0f : 1.0f;
    if (has_dout) {
      float inv = 1.0f / sum;
      for (size_t k = 0; k < out_dim; k++) {
        float p = exp(fi[k] - mx) * inv;
        di[k] = grad_scale * ((long)k == c ? p - 1.0f : p);
      }
    }
  } else {
    float yv = yi[0], fv = fi[0];
    float m = yv * fv; /* margin */
    ei = m > 0.0f ? 0.0f : 1.0f;
    float g;
    if (kind == HCL_LOSS_LOGISTIC) {
      /* log(1 + e^-m) and its derivative -y sigmoid(-m), both stable */
      li = m < 0.0f ? -m + log1p(exp(m)) : log1p(exp(-m));
      float em = exp(-fabs(m));
      float sig = m < 0.0f ? 1.0f / (1.0f + em) : em / (1.0f + em); /* sigmoid(-m) */
      g = -yv * sig;
    } else {
      float h = 1.0f - m;
      li = h < 0.0f ? 0.0f : h; /* NaN stays NaN */
      g = h > 0.0f ? -yv : 0.0f;
    }
    if (has_dout) di[0] = grad_scale * g;
  }
  *loss = li;
  *err = ei;
}

/* The per-replica totals: accumulate or overwrite, and record the first
 * non-finite step. */
#define HCL_LOSS_STORE(r, tl, te)                                                                  \
  do {                                                                                             \
    if (has_loss) loss_acc[loss_off + r] = accumulate ? loss_acc[loss_off + r] + tl : tl;          \
    if (has_err) err_acc[err_off + r] = accumulate ? err_acc[err_off + r] + te : te;               \
    if (has_nan && !isfinite(tl) && nan_step[nan_off + r] < 0) nan_step[nan_off + r] = step;       \
  } while (0)

/* Replica r's loss and error over its lp.n samples, summed in sample order,
 * and its dout (the CPU loss kernels, and a graph's one-launch training step,
 * with kind a literal). */
void hcl_loss_replica_at(int kind, hcl_loss_p lp, __global const float *f,
                         __global const float *y, __global float *dout, __global float *loss_acc,
                         __global float *err_acc, __global int *nan_step, size_t r) {
  int has_dout = lp.has_dout, has_loss = lp.has_loss, has_err = lp.has_err;
  int accumulate = lp.accumulate, has_nan = lp.has_nan, step = lp.step;
  ulong n = lp.n, out_dim = lp.out_dim, loss_off = lp.loss_off, err_off = lp.err_off;
  ulong nan_off = lp.nan_off;
  ulong ydim = kind == HCL_LOSS_MSE ? out_dim : 1;
  float tl = 0.0f, te = 0.0f;
  for (size_t i = 0; i < n; i++) {
    size_t s = r * n + i;
    float li, ei;
    hcl_loss_sample(kind, f + lp.f_off + s * out_dim, y + lp.y_off + s * ydim,
                    dout + lp.dout_off + s * out_dim, has_dout, out_dim, lp.grad_scale,
                    lp.mse_scale, lp.mse_gscale, &li, &ei);
    tl += li;
    te += ei;
  }
  HCL_LOSS_STORE(r, tl, te);
}

/* Entry e of replica r of params [R, n]: one optimiser step, for the
 * optimiser kernels and a graph's one-launch training step
 * (torch.optim.SGD / Adam formulas).
 * g = grad + l2 p + wd p; lr_r = lr * lr_scale[r].
 * SGD: momentum: buf = first ? g : mu buf + g; g = nesterov ? g + mu buf : buf;
 *      p -= lr_r g.
 * Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *      p -= lr_r / bc1 * m / (sqrt(v) * inv_sqrt_bc2 + eps)   (step_scale = 1/bc1).
 * mask[e] == 0: entry e untouched (states too). */
void hcl_optim_at(hcl_optim_p op, __global const float *lr_scale, __global float *p,
                  __global const float *grad, __global float *s1, __global float *s2,
                  __global const float *mask, size_t e, size_t r) {
  int kind = op.kind, has_lrs = op.has_lrs, nesterov = op.nesterov, first = op.first;
  int has_mask = op.has_mask;
  float lr = op.lr, l2 = op.l2, wd = op.wd, momentum = op.momentum, beta1 = op.beta1;
  float beta2 = op.beta2, eps = op.eps, step_scale = op.step_scale, inv_sqrt_bc2 = op.inv_sqrt_bc2;
  ulong lrs_off = op.lrs_off, p_off = op.p_off, g_off = op.g_off, s1_off = op.s1_off;
  ulong s2_off = op.s2_off, mask_off = op.mask_off, n = op.n;
  if (has_mask && mask[mask_off + e] == 0.0f) return;
  size_t i = r * n + e;
  float w = p[p_off + i];
  float g = grad[g_off + i];
  if (l2 != 0.0f) g = g + l2 * w;
  if (wd != 0.0f) g = g + wd * w;
  float lr_r = has_lrs ? lr * lr_scale[lrs_off + r] : lr;
  if (kind == 0) {
    if (momentum != 0.0f) {
      float buf = first ? g : momentum * s1[s1_off + i] + g;
      s1[s1_off + i] = buf;
      g = nesterov ? g + momentum * buf : buf;
    }
    p[p_off + i] = w - lr_r * g;
  } else {
    float m = beta1 * s1[s1_off + i] + (1.0f - beta1) * g;
    float v = beta2 * s2[s2_off + i] + (1.0f - beta2) * (g * g);
    s1[s1_off + i] = m;
    s2[s2_off + i] = v;
    float denom = sqrt(v) * inv_sqrt_bc2 + eps;
    p[p_off + i] = w - (lr_r * step_scale) * (m / denom);
  }
}

/* hcl_optim_at for entries e0 .. e1 - 1 of replica r, eight at a time as
 * float8s: the same operations per entry, so the same bits, with a frozen
 * entry written back unchanged; the last (e1 - e0) % 8 by hcl_optim_at.
 * The optimiser's CPU kernels run a chunk of entries each with it, and a
 * graph's one-launch training step all of its replica's (one work-item: no
 * work-items for the compiler to vectorise across). */
void hcl_optim_range_at(hcl_optim_p op, __global const float *lr_scale, __global float *p,
                        __global const float *grad, __global float *s1, __global float *s2,
                        __global const float *mask, size_t e0, size_t e1, size_t r) {
  int kind = op.kind, nesterov = op.nesterov, first = op.first, has_mask = op.has_mask;
  float l2 = op.l2, wd = op.wd, momentum = op.momentum, beta1 = op.beta1, beta2 = op.beta2;
  float eps = op.eps, step_scale = op.step_scale, inv_sqrt_bc2 = op.inv_sqrt_bc2;
  float lr_r = op.has_lrs ? op.lr * lr_scale[op.lrs_off + r] : op.lr;
  ulong n = op.n, n8 = e0 + (e1 - e0) / 8 * 8;
  __global float *pr = p + op.p_off + r * n, *s1r = s1 + op.s1_off + r * n;
  __global float *s2r = s2 + op.s2_off + r * n;
  __global const float *gr = grad + op.g_off + r * n, *mr = mask + op.mask_off;
  for (size_t e = e0; e < n8; e += 8) {
    int8 frozen = has_mask ? vload8(0, mr + e) == 0.0f : (int8)(0);
    float8 w = vload8(0, pr + e);
    float8 g = vload8(0, gr + e);
    if (l2 != 0.0f) g = g + l2 * w;
    if (wd != 0.0f) g = g + wd * w;
    if (kind == 0) {
      if (momentum != 0.0f) {
        float8 old = vload8(0, s1r + e);
        float8 buf = first ? g : momentum * old + g;
        vstore8(select(buf, old, frozen), 0, s1r + e);
        g = nesterov ? g + momentum * buf : buf;
      }
      vstore8(select(w - lr_r * g, w, frozen), 0, pr + e);
    } else {
      float8 m0 = vload8(0, s1r + e), v0 = vload8(0, s2r + e);
      float8 m = beta1 * m0 + (1.0f - beta1) * g;
      float8 v = beta2 * v0 + (1.0f - beta2) * (g * g);
      vstore8(select(m, m0, frozen), 0, s1r + e);
      vstore8(select(v, v0, frozen), 0, s2r + e);
      float8 denom = sqrt(v) * inv_sqrt_bc2 + eps;
      vstore8(select(w - (lr_r * step_scale) * (m / denom), w, frozen), 0, pr + e);
    }
  }
  for (size_t e = n8; e < e1; e++) hcl_optim_at(op, lr_scale, p, grad, s1, s2, mask, e, r);
}
