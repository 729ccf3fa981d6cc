/* The runtime's own kernels (runtime/ops.c launches them; common.cl is
 * prepended). Buffers are (pointer, offset in floats); sizes are ulong.
 * Reductions have fixed work-group shapes and a fixed summation order, so a
 * result does not depend on the device's scheduling: same bits every run. */

/* Work-group shapes the host must use (ops.c has the same numbers). */
#define HCL_CS_W 32  /* col_sum: columns per group */
#define HCL_CS_H 8   /* col_sum: row lanes per group */
#define HCL_RED_WG 256 /* loss: work-items per replica */

/* z [R, rows, cols] (+)= bias[r*bias_stride + col]; y = act(z). z keeps the
 * pre-activation (bias included). gws = (>= cols, >= R*rows). */
__kernel void hcl_k_bias_act(int act, __global float *z, ulong z_off, __global const float *bias,
                             ulong bias_off, ulong bias_stride, int has_bias, __global float *y,
                             ulong y_off, ulong R, ulong rows, ulong cols) {
  size_t col = get_global_id(0), rr = get_global_id(1);
  if (col >= cols || rr >= R * rows) return;
  size_t r = rr / rows;
  size_t e = rr * cols + col;
  float v = z[z_off + e];
  if (has_bias) {
    v = v + bias[bias_off + r * bias_stride + col];
    z[z_off + e] = v;
  }
  y[y_off + e] = hcl_act_f(act, v);
}

/* dz = dy * act'(z) over n floats. */
__kernel void hcl_k_act_backward(int act, __global const float *dy, ulong dy_off,
                                 __global const float *z, ulong z_off, __global float *dz,
                                 ulong dz_off, ulong n) {
  size_t e = get_global_id(0);
  if (e >= n) return;
  dz[dz_off + e] = dy[dy_off + e] * hcl_act_df(act, z[z_off + e]);
}

/* out[r*out_stride + col] = beta*out + alpha * sum_row x[r, row, col].
 * Group (col block, 0, r): lane ly sums rows ly, ly+H, ... in order, then a
 * fixed tree over the H lanes. beta == 0: out is not read. */
__kernel __attribute__((reqd_work_group_size(HCL_CS_W, HCL_CS_H, 1))) void
hcl_k_col_sum(__global const float *x, ulong x_off, __global float *out, ulong out_off,
              ulong out_stride, ulong rows, ulong cols, float alpha, float beta) {
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

/* y = a*x + b*y (b == 0: y not read). */
__kernel void hcl_k_axpby(float a, __global const float *x, ulong x_off, float b,
                          __global float *y, ulong y_off, ulong n) {
  size_t e = get_global_id(0);
  if (e >= n) return;
  float v = a * x[x_off + e];
  y[y_off + e] = b == 0.0f ? v : v + b * y[y_off + e];
}

__kernel void hcl_k_fill(__global float *y, ulong y_off, float value, ulong n) {
  size_t e = get_global_id(0);
  if (e < n) y[y_off + e] = value;
}

/* Elements first..first+n-1 of stream (seeds[r], stream) into
 * out[r*stride + (i - first)]. Work-item g of replica r computes block
 * first/4 + g once and writes its (up to) 4 elements. */
__kernel void hcl_k_rng_fill(int dist, float a, float b, __global const ulong *seeds, ulong stream,
                             ulong first, __global float *out, ulong out_off, ulong stride,
                             ulong n, ulong nblocks) {
  size_t g = get_global_id(0), r = get_global_id(1);
  if (g >= nblocks) return;
  ulong block = (first >> 2) + g;
  uint4 x = hcl_rng_block(seeds[r], stream, block);
  __global float *o = out + out_off + r * stride;
  for (uint j = 0; j < 4u; j++) {
    ulong i = (block << 2) + j;
    if (i >= first && i - first < n) o[i - first] = hcl_rng_draw(dist, a, b, x, j);
  }
}

/* dst[r, j, c] = src[r, (f0 + j) % rows_src, c], f0 = first % rows_src.
 * gws = (>= width, >= R*n). */
__kernel void hcl_k_gather_rows(__global const float *src, ulong src_off, ulong rows_src,
                                __global float *dst, ulong dst_off, ulong R, ulong f0, ulong n,
                                ulong width) {
  size_t c = get_global_id(0), rr = get_global_id(1);
  if (c >= width || rr >= R * n) return;
  size_t r = rr / n, j = rr - r * n;
  size_t srow = (f0 + j) % rows_src;
  dst[dst_off + rr * width + c] = src[src_off + (r * rows_src + srow) * width + c];
}

/* Losses (hcl_loss_kind of runtime/internal.h). */
#define HCL_LOSS_MSE 0
#define HCL_LOSS_CROSS_ENTROPY 1
#define HCL_LOSS_LOGISTIC 2
#define HCL_LOSS_HINGE 3

/* One group of HCL_RED_WG work-items per replica: item l handles samples l,
 * l + WG, ... in order, then a fixed tree. Per sample: the loss (mse averaged
 * over out_dim), the error (mse: the loss; binary: y f <= 0; classes: first
 * argmax != y) and dout = grad_scale * dloss/df. mse_scale = 1/out_dim,
 * mse_gscale = 2 grad_scale / out_dim. */
__kernel __attribute__((reqd_work_group_size(HCL_RED_WG, 1, 1))) void
hcl_k_loss(int kind, __global const float *f, ulong f_off, __global const float *y, ulong y_off,
           ulong n, ulong out_dim, float grad_scale, float mse_scale, float mse_gscale,
           __global float *dout, ulong dout_off, int has_dout, __global float *loss_acc,
           ulong loss_off, int has_loss, __global float *err_acc, ulong err_off, int has_err,
           int accumulate, __global int *nan_step, ulong nan_off, int has_nan, int step) {
  __local float pl[HCL_RED_WG], pe[HCL_RED_WG];
  size_t l = get_local_id(0), r = get_group_id(1);
  ulong ydim = kind == HCL_LOSS_MSE ? out_dim : 1;
  float sl = 0.0f, se = 0.0f;
  for (size_t i = l; i < n; i += HCL_RED_WG) {
    __global const float *fi = f + f_off + (r * n + i) * out_dim;
    __global const float *yi = y + y_off + (r * n + i) * ydim;
    __global float *di = dout + dout_off + (r * n + i) * out_dim;
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
      float se_ = 0.0f;
      for (size_t k = 0; k < out_dim; k++) se_ += exp(fi[k] - mx);
      float yc = yi[0];
      int ok = yc >= 0.0f && yc < (float)out_dim; /* a bad label gives NaN */
      long c = ok ? (long)yc : 0;
      ok = ok && (float)c == yc;
      li = ok ? mx + log(se_) - fi[c] : NAN;
      ei = (ok && (long)best == c) ? 0.0f : 1.0f;
      if (has_dout) {
        float inv = 1.0f / se_;
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
  if (l == 0) {
    float tl = pl[0], te = pe[0];
    if (has_loss) loss_acc[loss_off + r] = accumulate ? loss_acc[loss_off + r] + tl : tl;
    if (has_err) err_acc[err_off + r] = accumulate ? err_acc[err_off + r] + te : te;
    if (has_nan && !isfinite(tl) && nan_step[nan_off + r] < 0) nan_step[nan_off + r] = step;
  }
}

/* Optimiser update of params [R, n] (torch.optim.SGD / Adam formulas).
 * g = grad + l2 p + wd p; lr_r = lr * lr_scale[r].
 * SGD: momentum: buf = first ? g : mu buf + g; g = nesterov ? g + mu buf : buf;
 *      p -= lr_r g.
 * Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *      p -= lr_r / bc1 * m / (sqrt(v) * inv_sqrt_bc2 + eps)   (step_scale = 1/bc1).
 * mask[e] == 0: entry e untouched (states too). */
__kernel void hcl_k_optim(int kind, float lr, __global const float *lr_scale, ulong lrs_off,
                          int has_lrs, float l2, float wd, float momentum, int nesterov, int first,
                          float beta1, float beta2, float eps, float step_scale,
                          float inv_sqrt_bc2, __global float *p, ulong p_off,
                          __global const float *grad, ulong g_off, __global float *s1,
                          ulong s1_off, __global float *s2, ulong s2_off,
                          __global const float *mask, ulong mask_off, int has_mask, ulong n) {
  size_t e = get_global_id(0), r = get_global_id(1);
  if (e >= n) return;
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
