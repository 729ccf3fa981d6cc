/* The runtime's fused ops (runtime/ops.c, kernels/ops.cl) against float64
 * host references: several replicas, non-zero buffer offsets, odd sizes, and
 * sentinels around every buffer to catch writes out of bounds. Everything
 * runs twice: with the CPU kernel variants and with the GPU ones. Loss
 * gradients are also checked against central finite differences of the host
 * loss in double; optimiser steps against torch's SGD / Adam formulas over
 * several steps; col_sum and loss are bit-identical across repeated runs. */
#include "hcl_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENT 12345.5f

/* ops.c: -1 kernel variants by device type, 0 the GPU ones, 1 the CPU ones. */
void hcl_ops_force_paths(int mode);

#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != HCL_OK) fail_msg("%s: %s", #call, hcl_errmsg(ctx));                              \
  } while (0)

static hcl_ctx *ctx_or_skip(void) {
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  return ctx;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(double lo, double hi) { /* xorshift64* */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  uint64_t x = g_rng * 2685821657736338717ull;
  return lo + (hi - lo) * (double)(x >> 11) * 0x1p-53;
}
static float *frand(size_t n, double lo, double hi) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = (float)urand(lo, hi);
  return p;
}

/* A device copy of n floats at an element offset, sentinels around it. */
typedef struct tbuf {
  hcl_buf all, v;
  size_t off, n;
} tbuf;

static tbuf tb_make(hcl_ctx *ctx, const float *data, size_t n, size_t off) {
  tbuf t = {.off = off, .n = n};
  size_t total = off + n + 5;
  float *h = malloc(total * 4);
  for (size_t i = 0; i < total; i++) h[i] = SENT;
  if (data) memcpy(h + off, data, n * 4);
  OK(hcl_buf_alloc(ctx, total * 4, &t.all));
  OK(hcl_buf_write(ctx, t.all, h, total * 4));
  t.v = hcl_buf_sub(t.all, off * 4, n * 4);
  free(h);
  return t;
}

/* Read back (out may be NULL) and check the sentinels are untouched. */
static void tb_read(hcl_ctx *ctx, tbuf *t, float *out) {
  size_t total = t->off + t->n + 5;
  float *h = malloc(total * 4);
  OK(hcl_buf_read(ctx, t->all, h, total * 4));
  for (size_t i = 0; i < total; i++)
    if ((i < t->off || i >= t->off + t->n) && h[i] != SENT)
      fail_msg("write out of bounds at element %zu (offset %zu, n %zu)", i, t->off, t->n);
  if (out) memcpy(out, h + t->off, t->n * 4);
  free(h);
}

static void tb_free(hcl_ctx *ctx, tbuf *t) { hcl_buf_free(ctx, &t->all); }

static void close_to(double got, double want, double rel, double abs_tol, const char *what,
                     size_t i) {
  if (!(fabs(got - want) <= rel * fabs(want) + abs_tol))
    fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, got, want);
}

static double act_f(hcl_act a, double z) {
  switch (a) {
  case HCL_ACT_RELU: return z > 0 ? z : 0;
  case HCL_ACT_LEAKY_RELU: return z > 0 ? z : 0.1 * z;
  case HCL_ACT_QUADRATIC: return z * z;
  case HCL_ACT_TANH: return tanh(z);
  default: return z;
  }
}
static double act_df(hcl_act a, double z) {
  switch (a) {
  case HCL_ACT_RELU: return z > 0 ? 1 : 0;
  case HCL_ACT_LEAKY_RELU: return z > 0 ? 1 : 0.1;
  case HCL_ACT_QUADRATIC: return 2 * z;
  case HCL_ACT_TANH: return 1 - tanh(z) * tanh(z);
  default: return 1;
  }
}

static void test_bias_act(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, rows = 7, cols = 37, bstride = 41, N = R * rows * cols;
  float *z0 = frand(N, -2, 2), *bias = frand(R * bstride, -1, 1);
  z0[5] = 0.0f; /* the kink */
  float *z = malloc(N * 4), *y = malloc(N * 4);
  for (int a = HCL_ACT_IDENTITY; a <= HCL_ACT_TANH; a++)
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      tbuf tz = tb_make(ctx, z0, N, 3), ty = tb_make(ctx, NULL, N, 11);
      tbuf tb = tb_make(ctx, bias, R * bstride, 2);
      hcl_buf nob = {0};
      OK(hcl_bias_act(ctx, (hcl_act)a, tz.v, with_bias ? tb.v : nob, bstride, ty.v, R, rows, cols));
      tb_read(ctx, &tz, z);
      tb_read(ctx, &ty, y);
      tb_read(ctx, &tb, NULL);
      for (size_t r = 0; r < R; r++)
        for (size_t i = 0; i < rows; i++)
          for (size_t c = 0; c < cols; c++) {
            size_t e = (r * rows + i) * cols + c;
            float pre = with_bias ? z0[e] + bias[r * bstride + c] : z0[e]; /* one float add */
            assert_true(z[e] == pre); /* z keeps the pre-activation */
            close_to(y[e], act_f((hcl_act)a, pre), 1e-6, 1e-7, "bias_act y", e);
          }
      tb_free(ctx, &tz), tb_free(ctx, &ty), tb_free(ctx, &tb);
    }
  /* identity may write in place */
  tbuf tz = tb_make(ctx, z0, N, 1), tb = tb_make(ctx, bias, R * bstride, 0);
  OK(hcl_bias_act(ctx, HCL_ACT_IDENTITY, tz.v, tb.v, bstride, tz.v, R, rows, cols));
  tb_read(ctx, &tz, z);
  for (size_t e = 0; e < N; e++)
    assert_true(z[e] == z0[e] + bias[(e / (rows * cols)) * bstride + e % cols]);
  tb_free(ctx, &tz), tb_free(ctx, &tb);
  free(z0), free(bias), free(z), free(y);
}

static void test_act_backward(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 2, rows = 9, cols = 13, N = R * rows * cols;
  float *z = frand(N, -2, 2), *dy = frand(N, -1, 1), *dz = malloc(N * 4);
  z[0] = 0.0f;
  for (int a = HCL_ACT_IDENTITY; a <= HCL_ACT_TANH; a++) {
    tbuf tz = tb_make(ctx, z, N, 1), tdy = tb_make(ctx, dy, N, 6), tdz = tb_make(ctx, NULL, N, 9);
    OK(hcl_act_backward(ctx, (hcl_act)a, tdy.v, tz.v, tdz.v, R, rows, cols));
    tb_read(ctx, &tdz, dz);
    tb_read(ctx, &tz, NULL);
    tb_read(ctx, &tdy, NULL);
    for (size_t e = 0; e < N; e++)
      close_to(dz[e], dy[e] * act_df((hcl_act)a, z[e]), 1e-6, 1e-7, "act_backward", e);
    /* in place: dz aliases dy */
    OK(hcl_act_backward(ctx, (hcl_act)a, tdy.v, tz.v, tdy.v, R, rows, cols));
    tb_read(ctx, &tdy, dz);
    for (size_t e = 0; e < N; e++)
      close_to(dz[e], dy[e] * act_df((hcl_act)a, z[e]), 1e-6, 1e-7, "act_backward in place", e);
    tb_free(ctx, &tz), tb_free(ctx, &tdy), tb_free(ctx, &tdz);
  }
  free(z), free(dy), free(dz);
}

static void test_col_sum(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, rows = 997, cols = 45, ostride = 50, N = R * rows * cols;
  float *x = frand(N, -1, 1), *o0 = frand(R * ostride, -1, 1);
  float *o1 = malloc(R * ostride * 4), *o2 = malloc(R * ostride * 4);
  const float alpha = 0.5f, betas[2] = {2.0f, 0.0f};
  for (int bi = 0; bi < 2; bi++) {
    float beta = betas[bi];
    float *init = malloc(R * ostride * 4);
    memcpy(init, o0, R * ostride * 4);
    if (beta == 0.0f) /* beta 0: out is not read, NaN there must not leak */
      for (size_t i = 0; i < R * ostride; i++) init[i] = NAN;
    tbuf tx = tb_make(ctx, x, N, 5), to = tb_make(ctx, init, R * ostride, 3);
    OK(hcl_col_sum(ctx, tx.v, to.v, ostride, R, rows, cols, alpha, beta));
    tb_read(ctx, &to, o1);
    for (size_t r = 0; r < R; r++)
      for (size_t c = 0; c < ostride; c++) {
        size_t o = r * ostride + c;
        if (c >= cols) { /* between the replicas' rows: untouched */
          assert_memory_equal(&o1[o], &init[o], 4);
          continue;
        }
        double s = 0, mag = 0;
        for (size_t i = 0; i < rows; i++) {
          s += x[(r * rows + i) * cols + c];
          mag += fabs(x[(r * rows + i) * cols + c]);
        }
        double want = alpha * s + (beta != 0.0f ? beta * (double)o0[o] : 0.0);
        close_to(o1[o], want, 0, 1e-6 * (mag + 1) + 1e-6 * fabs(want), "col_sum", o);
      }
    /* deterministic: a second run gives the same bits */
    OK(hcl_buf_write(ctx, to.v, init, R * ostride * 4));
    OK(hcl_col_sum(ctx, tx.v, to.v, ostride, R, rows, cols, alpha, beta));
    tb_read(ctx, &to, o2);
    assert_memory_equal(o1, o2, R * ostride * 4);
    tb_free(ctx, &tx), tb_free(ctx, &to);
    free(init);
  }
  /* one row, one column (the readout bias of a width-1 output) */
  {
    float one[3] = {1.5f, -2.0f, 4.0f}, out[3];
    tbuf tx = tb_make(ctx, one, 3, 1), to = tb_make(ctx, NULL, 3, 2);
    OK(hcl_col_sum(ctx, tx.v, to.v, 1, 3, 1, 1, 1.0f, 0.0f));
    tb_read(ctx, &to, out);
    assert_memory_equal(out, one, sizeof one);
    tb_free(ctx, &tx), tb_free(ctx, &to);
  }
  free(x), free(o0), free(o1), free(o2);
}

static void test_axpby_fill(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t n = 1001;
  float *x = frand(n, -1, 1), *y = frand(n, -1, 1), *out = malloc(n * 4);
  tbuf tx = tb_make(ctx, x, n, 3), ty = tb_make(ctx, y, n, 7);
  OK(hcl_axpby(ctx, 1.5f, tx.v, -0.25f, ty.v, n));
  tb_read(ctx, &ty, out);
  for (size_t i = 0; i < n; i++) close_to(out[i], 1.5 * x[i] - 0.25 * y[i], 1e-6, 1e-7, "axpby", i);
  OK(hcl_fill(ctx, ty.v, NAN, n));
  OK(hcl_axpby(ctx, 2.0f, tx.v, 0.0f, ty.v, n)); /* b = 0: y not read */
  tb_read(ctx, &ty, out);
  for (size_t i = 0; i < n; i++) assert_true(out[i] == 2.0f * x[i]);
  OK(hcl_fill(ctx, hcl_buf_sub(ty.v, 4, (n - 1) * 4), -3.25f, n - 2));
  tb_read(ctx, &ty, out);
  assert_true(out[0] == 2.0f * x[0] && out[n - 1] == 2.0f * x[n - 1]);
  for (size_t i = 1; i < n - 1; i++) assert_true(out[i] == -3.25f);
  tb_free(ctx, &tx), tb_free(ctx, &ty);
  free(x), free(y), free(out);
}

static void test_gather_rows(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 2, rows = 13, width = 5, n = 30;
  const uint64_t first = (1ull << 33) + 11;
  float *src = frand(R * rows * width, -1, 1), *dst = malloc(R * n * width * 4);
  tbuf ts = tb_make(ctx, src, R * rows * width, 4), td = tb_make(ctx, NULL, R * n * width, 1);
  hcl_buf none = {0};
  OK(hcl_gather_rows(ctx, ts.v, rows, none, td.v, R, first, n, width));
  tb_read(ctx, &td, dst);
  for (size_t r = 0; r < R; r++)
    for (size_t j = 0; j < n; j++)
      assert_memory_equal(&dst[(r * n + j) * width], &src[(r * rows + (first + j) % rows) * width],
                          width * 4);
  tb_free(ctx, &ts), tb_free(ctx, &td);
  free(src), free(dst);
}

/* Per-replica training-set sizes: replica r cycles through its first sizes[r] rows. */
static void test_gather_rows_var(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, rows = 17, width = 4, n = 40;
  const uint64_t first = (1ull << 34) + 5;
  const cl_ulong sizes[3] = {17, 3, 10};
  float *src = frand(R * rows * width, -1, 1), *dst = malloc(R * n * width * 4);
  tbuf ts = tb_make(ctx, src, R * rows * width, 4), td = tb_make(ctx, NULL, R * n * width, 1);
  hcl_buf sb;
  OK(hcl_buf_alloc(ctx, sizeof sizes, &sb));
  OK(hcl_buf_write(ctx, sb, sizes, sizeof sizes));
  OK(hcl_gather_rows(ctx, ts.v, rows, sb, td.v, R, first, n, width));
  tb_read(ctx, &td, dst);
  for (size_t r = 0; r < R; r++)
    for (size_t j = 0; j < n; j++)
      assert_memory_equal(&dst[(r * n + j) * width],
                          &src[(r * rows + (first + j) % sizes[r]) * width], width * 4);
  hcl_buf_free(ctx, &sb);
  tb_free(ctx, &ts), tb_free(ctx, &td);
  free(src), free(dst);
}

/* Inputs and labels in one launch: the bits of two hcl_gather_rows calls,
 * with one size for all replicas and with per-replica sizes. */
static void test_gather_xy(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, rows = 17, wx = 7, wy = 2, n = 40;
  const uint64_t first = (1ull << 34) + 5;
  const cl_ulong sizes[3] = {17, 3, 10};
  float *sx = frand(R * rows * wx, -1, 1), *sy = frand(R * rows * wy, -1, 1);
  float *gx = malloc(R * n * wx * 4), *gy = malloc(R * n * wy * 4);
  float *rx = malloc(R * n * wx * 4), *ry = malloc(R * n * wy * 4);
  tbuf tsx = tb_make(ctx, sx, R * rows * wx, 4), tsy = tb_make(ctx, sy, R * rows * wy, 2);
  tbuf tdx = tb_make(ctx, NULL, R * n * wx, 1), tdy = tb_make(ctx, NULL, R * n * wy, 3);
  tbuf trx = tb_make(ctx, NULL, R * n * wx, 0), try_ = tb_make(ctx, NULL, R * n * wy, 0);
  hcl_buf sb;
  OK(hcl_buf_alloc(ctx, sizeof sizes, &sb));
  OK(hcl_buf_write(ctx, sb, sizes, sizeof sizes));
  for (int per = 0; per < 2; per++) {
    hcl_buf sz = per ? sb : (hcl_buf){0};
    OK(hcl_gather_xy(ctx, tsx.v, tsy.v, rows, sz, tdx.v, tdy.v, R, first, n, wx, wy));
    OK(hcl_gather_rows(ctx, tsx.v, rows, sz, trx.v, R, first, n, wx));
    OK(hcl_gather_rows(ctx, tsy.v, rows, sz, try_.v, R, first, n, wy));
    tb_read(ctx, &tdx, gx), tb_read(ctx, &tdy, gy);
    tb_read(ctx, &trx, rx), tb_read(ctx, &try_, ry);
    assert_memory_equal(gx, rx, R * n * wx * 4);
    assert_memory_equal(gy, ry, R * n * wy * 4);
    for (size_t r = 0; r < R; r++) /* and the rows themselves */
      assert_memory_equal(&gy[r * n * wy], &sy[(r * rows + first % (per ? sizes[r] : rows)) * wy],
                          wy * 4);
  }
  hcl_buf_free(ctx, &sb);
  tb_free(ctx, &tsx), tb_free(ctx, &tsy), tb_free(ctx, &tdx), tb_free(ctx, &tdy);
  tb_free(ctx, &trx), tb_free(ctx, &try_);
  free(sx), free(sy), free(gx), free(gy), free(rx), free(ry);
}

/* ---- losses ----------------------------------------------------------------- */
/* Host loss of one sample in double; err gets the error indicator. */
static double host_loss(hcl_loss_kind kind, const double *f, const float *y, size_t od,
                        double *err) {
  switch (kind) {
  case HCL_LOSS_MSE: {
    double s = 0;
    for (size_t k = 0; k < od; k++) s += (f[k] - y[k]) * (f[k] - y[k]);
    *err = s / (double)od;
    return s / (double)od;
  }
  case HCL_LOSS_CROSS_ENTROPY: {
    size_t c = (size_t)y[0], best = 0;
    double mx = f[0], se = 0;
    for (size_t k = 1; k < od; k++) {
      if (f[k] > mx) mx = f[k];
      if (f[k] > f[best]) best = k;
    }
    for (size_t k = 0; k < od; k++) se += exp(f[k] - mx);
    *err = best != c;
    return mx + log(se) - f[c];
  }
  case HCL_LOSS_LOGISTIC: *err = y[0] * f[0] <= 0; return log1p(exp(-y[0] * f[0]));
  default: *err = y[0] * f[0] <= 0; return fmax(0.0, 1.0 - y[0] * f[0]);
  }
}

static void check_loss(hcl_ctx *ctx, hcl_loss_kind kind, size_t od) {
  const size_t R = 2, n = 300; /* n > the 256 lanes of the reduction */
  const float gs = 0.5f;
  size_t ydim = kind == HCL_LOSS_MSE ? od : 1;
  float *f = frand(R * n * od, -3, 3), *y = malloc(R * n * ydim * 4);
  for (size_t i = 0; i < R * n; i++) {
    if (kind == HCL_LOSS_MSE)
      for (size_t k = 0; k < od; k++) y[i * ydim + k] = (float)urand(-2, 2);
    else if (kind == HCL_LOSS_CROSS_ENTROPY)
      y[i] = (float)(int)urand(0, (double)od);
    else
      y[i] = urand(0, 1) < 0.5 ? -1.0f : 1.0f;
    if (kind == HCL_LOSS_HINGE && fabs(1.0 - y[i] * f[i]) < 1e-3) f[i] += 0.01f; /* off the kink */
  }
  tbuf tf = tb_make(ctx, f, R * n * od, 3), ty = tb_make(ctx, y, R * n * ydim, 2);
  tbuf td = tb_make(ctx, NULL, R * n * od, 5), tl = tb_make(ctx, NULL, R, 1),
       te = tb_make(ctx, NULL, R, 4);
  OK(hcl_loss(ctx, kind, tf.v, ty.v, R, n, od, gs, td.v, tl.v, te.v, 0, (hcl_buf){0}, 0));
  float *dout = malloc(R * n * od * 4), loss[2], err[2], loss2[2], err2[2];
  tb_read(ctx, &td, dout);
  tb_read(ctx, &tl, loss);
  tb_read(ctx, &te, err);
  double *fd = malloc(od * sizeof *fd);
  for (size_t r = 0; r < R; r++) {
    double L = 0, E = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
      size_t s = r * n + i;
      for (size_t k = 0; k < od; k++) fd[k] = f[s * od + k];
      double e;
      double li = host_loss(kind, fd, y + s * ydim, od, &e);
      L += li, E += e, mag += fabs(li);
      /* gradient: central differences of the host loss in double */
      for (size_t k = 0; k < od; k++) {
        const double h = 1e-5;
        double e2, f0 = fd[k];
        fd[k] = f0 + h;
        double lp = host_loss(kind, fd, y + s * ydim, od, &e2);
        fd[k] = f0 - h;
        double lm = host_loss(kind, fd, y + s * ydim, od, &e2);
        fd[k] = f0;
        close_to(dout[s * od + k], gs * (lp - lm) / (2 * h), 1e-4, 1e-6, "dloss/df", s * od + k);
      }
    }
    close_to(loss[r], L, 0, 1e-5 * mag + 1e-6, "loss", r);
    if (kind == HCL_LOSS_MSE)
      assert_true(err[r] == loss[r]);
    else
      assert_true(err[r] == (float)E); /* counts are exact */
  }
  /* accumulate: the same batch again doubles the sums, bit for bit */
  OK(hcl_loss(ctx, kind, tf.v, ty.v, R, n, od, gs, (hcl_buf){0}, tl.v, te.v, 1, (hcl_buf){0}, 0));
  tb_read(ctx, &tl, loss2);
  tb_read(ctx, &te, err2);
  for (size_t r = 0; r < R; r++) {
    assert_true(loss2[r] == loss[r] + loss[r]);
    assert_true(err2[r] == err[r] + err[r]);
  }
  /* deterministic: a fresh run gives the same bits */
  OK(hcl_loss(ctx, kind, tf.v, ty.v, R, n, od, gs, td.v, tl.v, te.v, 0, (hcl_buf){0}, 0));
  tb_read(ctx, &tl, loss2);
  assert_memory_equal(loss2, loss, sizeof loss);
  tb_free(ctx, &tf), tb_free(ctx, &ty), tb_free(ctx, &td), tb_free(ctx, &tl), tb_free(ctx, &te);
  free(f), free(y), free(dout), free(fd);
}

static void test_loss_mse(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  check_loss(ctx, HCL_LOSS_MSE, 3);
  check_loss(ctx, HCL_LOSS_MSE, 1);
}
static void test_loss_cross_entropy(void **state) {
  (void)state;
  check_loss(ctx_or_skip(), HCL_LOSS_CROSS_ENTROPY, 5);
}
static void test_loss_logistic(void **state) {
  (void)state;
  check_loss(ctx_or_skip(), HCL_LOSS_LOGISTIC, 1);
}
static void test_loss_hinge(void **state) {
  (void)state;
  check_loss(ctx_or_skip(), HCL_LOSS_HINGE, 1);
}

/* nan_step records the first non-finite step per replica; bad labels and
 * extreme margins behave. */
static void test_loss_nan_and_edges(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, n = 4;
  float f[12] = {1, 2, 3, 4, 1, NAN, 3, 4, 1, 2, 3, 4}, y[12] = {0};
  int32_t ns[3] = {-1, -1, 5}, got[3];
  hcl_buf bns;
  OK(hcl_buf_alloc(ctx, sizeof ns + 8, &bns));
  hcl_buf vns = hcl_buf_sub(bns, 8, sizeof ns);
  OK(hcl_buf_write(ctx, vns, ns, sizeof ns));
  tbuf tf = tb_make(ctx, f, 12, 1), ty = tb_make(ctx, y, 12, 0), tl = tb_make(ctx, NULL, R, 2);
  OK(hcl_loss(ctx, HCL_LOSS_MSE, tf.v, ty.v, R, n, 1, 1.0f, (hcl_buf){0}, tl.v, (hcl_buf){0}, 0,
              vns, 17));
  OK(hcl_loss(ctx, HCL_LOSS_MSE, tf.v, ty.v, R, n, 1, 1.0f, (hcl_buf){0}, tl.v, (hcl_buf){0}, 0,
              vns, 18));
  OK(hcl_buf_read(ctx, vns, got, sizeof got));
  assert_int_equal(got[0], -1);
  assert_int_equal(got[1], 17); /* the first step stays */
  assert_int_equal(got[2], 5);  /* already set: untouched */
  float loss[3];
  tb_read(ctx, &tl, loss);
  assert_true(loss[0] == 30.0f && isnan(loss[1]) && loss[2] == 30.0f);
  tb_free(ctx, &tf), tb_free(ctx, &ty), tb_free(ctx, &tl);

  /* cross-entropy: a label outside [0, classes) gives NaN, not a wild read */
  float fc[4] = {0, 1, 2, 3}, yc[2] = {7, 1}, lc[2], ec[2];
  tf = tb_make(ctx, fc, 4, 0), ty = tb_make(ctx, yc, 2, 0), tl = tb_make(ctx, NULL, 2, 0);
  tbuf te = tb_make(ctx, NULL, 2, 0);
  OK(hcl_loss(ctx, HCL_LOSS_CROSS_ENTROPY, tf.v, ty.v, 2, 1, 2, 1.0f, (hcl_buf){0}, tl.v, te.v, 0,
              (hcl_buf){0}, 0));
  tb_read(ctx, &tl, lc);
  tb_read(ctx, &te, ec);
  assert_true(isnan(lc[0]));
  assert_true(fabs(lc[1] - log1p(exp(-1.0))) < 1e-6 && ec[1] == 0.0f);
  tb_free(ctx, &tf), tb_free(ctx, &ty), tb_free(ctx, &tl), tb_free(ctx, &te);

  /* logistic at margins +-100: finite loss and gradient */
  float fl[2] = {100, -100}, yl[2] = {1, 1}, ll[2], dl[2];
  tf = tb_make(ctx, fl, 2, 0), ty = tb_make(ctx, yl, 2, 0), tl = tb_make(ctx, NULL, 2, 0);
  tbuf td = tb_make(ctx, NULL, 2, 0);
  OK(hcl_loss(ctx, HCL_LOSS_LOGISTIC, tf.v, ty.v, 2, 1, 1, 1.0f, td.v, tl.v, (hcl_buf){0}, 0,
              (hcl_buf){0}, 0));
  tb_read(ctx, &tl, ll);
  tb_read(ctx, &td, dl);
  assert_true(ll[0] >= 0.0f && ll[0] < 1e-30f && fabs(ll[1] - 100.0f) < 1e-4);
  assert_true(fabs(dl[0]) < 1e-30f && fabs(dl[1] + 1.0f) < 1e-6);
  tb_free(ctx, &tf), tb_free(ctx, &ty), tb_free(ctx, &tl), tb_free(ctx, &td);

  /* logistic with two outputs is a shape error */
  assert_int_equal(hcl_loss(ctx, HCL_LOSS_LOGISTIC, bns, bns, 1, 1, 2, 1.0f, (hcl_buf){0},
                            (hcl_buf){0}, (hcl_buf){0}, 0, (hcl_buf){0}, 0),
                   HCL_ERR_PARAM);
  hcl_buf_free(ctx, &bns);
}

/* ---- optimisers -------------------------------------------------------------- */
static void check_optim(hcl_ctx *ctx, const hcl_optim *opt, float l2, int use_mask, int use_lrs) {
  /* n: on CPUs 3 chunks of HCL_OPT_CHUNK (2 048) entries, the last of 5 (not float8s) */
  const size_t R = 3, n = 2 * 2048 + 5, steps = 5;
  const float lr = 0.05f, lrs[3] = {1.0f, 0.5f, 2.0f};
  float *p = frand(R * n, -1, 1), *mask = malloc(n * 4);
  double *hp = malloc(R * n * 8), *h1 = calloc(R * n, 8), *h2 = calloc(R * n, 8);
  for (size_t i = 0; i < R * n; i++) hp[i] = p[i];
  for (size_t i = 0; i < n; i++) mask[i] = (use_mask && i % 3 == 1) ? 0.0f : 1.0f;
  int stateful = opt->kind == HCL_OPT_ADAM || opt->momentum != 0.0f;
  tbuf tp = tb_make(ctx, p, R * n, 3), tg = tb_make(ctx, NULL, R * n, 1);
  tbuf ts1 = tb_make(ctx, NULL, R * n, 2), ts2 = tb_make(ctx, NULL, R * n, 6);
  tbuf tm = tb_make(ctx, mask, n, 1), tr = tb_make(ctx, lrs, R, 2);
  OK(hcl_fill(ctx, ts1.v, 0.0f, R * n));
  OK(hcl_fill(ctx, ts2.v, 0.0f, R * n));
  float *got = malloc(R * n * 4);
  for (uint64_t t = 1; t <= steps; t++) {
    float *g = frand(R * n, -1, 1);
    OK(hcl_buf_write(ctx, tg.v, g, R * n * 4));
    OK(hcl_optim_step(ctx, opt, lr, use_lrs ? tr.v : (hcl_buf){0}, l2, tp.v, tg.v,
                      stateful ? ts1.v : (hcl_buf){0},
                      opt->kind == HCL_OPT_ADAM ? ts2.v : (hcl_buf){0},
                      use_mask ? tm.v : (hcl_buf){0}, R, n, t));
    for (size_t r = 0; r < R; r++)
      for (size_t e = 0; e < n; e++) {
        size_t i = r * n + e;
        if (mask[e] == 0.0f) continue;
        double lr_r = lr * (use_lrs ? lrs[r] : 1.0f);
        double gg = g[i] + (double)l2 * hp[i] + (double)opt->weight_decay * hp[i];
        if (opt->kind == HCL_OPT_SGD) { /* torch.optim.SGD, dampening 0 */
          if (opt->momentum != 0.0f) {
            h1[i] = t == 1 ? gg : opt->momentum * h1[i] + gg;
            gg = opt->nesterov ? gg + opt->momentum * h1[i] : h1[i];
          }
          hp[i] -= lr_r * gg;
        } else { /* torch.optim.Adam, amsgrad off */
          h1[i] = opt->beta1 * h1[i] + (1 - opt->beta1) * gg;
          h2[i] = opt->beta2 * h2[i] + (1 - opt->beta2) * gg * gg;
          double bc1 = 1 - pow(opt->beta1, (double)t), bc2 = 1 - pow(opt->beta2, (double)t);
          hp[i] -= lr_r / bc1 * h1[i] / (sqrt(h2[i]) / sqrt(bc2) + opt->eps);
        }
      }
    tb_read(ctx, &tp, got);
    for (size_t i = 0; i < R * n; i++) {
      if (mask[i % n] == 0.0f)
        assert_true(got[i] == p[i]); /* frozen: bits unchanged */
      else
        close_to(got[i], hp[i], 2e-5, 2e-6, opt->kind == HCL_OPT_SGD ? "sgd" : "adam", i);
    }
    free(g);
  }
  tb_read(ctx, &ts1, NULL);
  tb_read(ctx, &ts2, NULL);
  tb_read(ctx, &tm, NULL);
  tb_free(ctx, &tp), tb_free(ctx, &tg), tb_free(ctx, &ts1), tb_free(ctx, &ts2);
  tb_free(ctx, &tm), tb_free(ctx, &tr);
  free(p), free(mask), free(hp), free(h1), free(h2), free(got);
}

static void test_optim_sgd(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  hcl_optim plain = {.kind = HCL_OPT_SGD};
  check_optim(ctx, &plain, 0.0f, 0, 0);
  hcl_optim mom = {.kind = HCL_OPT_SGD, .momentum = 0.9f, .weight_decay = 0.01f};
  check_optim(ctx, &mom, 0.001f, 1, 1);
  hcl_optim nest = {.kind = HCL_OPT_SGD, .momentum = 0.8f, .nesterov = 1};
  check_optim(ctx, &nest, 0.0f, 0, 1);
}

/* Plain SGD takes its own two-buffer kernel: the bits of the general kernel
 * (reached here through an all-ones mask), with weight decay and l2. */
static void test_optim_sgd_plain_bits(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 3, n = 301;
  hcl_optim opt = {.kind = HCL_OPT_SGD, .weight_decay = 0.01f};
  float *p = frand(R * n, -1, 1), *g = frand(R * n, -1, 1), *ones = malloc(n * 4);
  float *a = malloc(R * n * 4), *b = malloc(R * n * 4);
  for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
  tbuf pa = tb_make(ctx, p, R * n, 1), pb = tb_make(ctx, p, R * n, 2);
  tbuf tg = tb_make(ctx, g, R * n, 3), tm = tb_make(ctx, ones, n, 0);
  for (uint64_t t = 1; t <= 3; t++) {
    OK(hcl_optim_step(ctx, &opt, 0.05f, (hcl_buf){0}, 0.003f, pa.v, tg.v, (hcl_buf){0},
                      (hcl_buf){0}, (hcl_buf){0}, R, n, t));
    OK(hcl_optim_step(ctx, &opt, 0.05f, (hcl_buf){0}, 0.003f, pb.v, tg.v, (hcl_buf){0},
                      (hcl_buf){0}, tm.v, R, n, t));
  }
  tb_read(ctx, &pa, a), tb_read(ctx, &pb, b);
  assert_memory_equal(a, b, R * n * 4);
  for (size_t i = 0; i < R * n; i++) assert_true(a[i] != p[i]); /* it moved */
  tb_free(ctx, &pa), tb_free(ctx, &pb), tb_free(ctx, &tg), tb_free(ctx, &tm);
  free(p), free(g), free(ones), free(a), free(b);
}

/* The CPU optimiser kernels update eight entries at a time
 * (hcl_optim_range_at), the others one (hcl_optim_at): two texts of the same
 * formulas, which must give the same bits, tails and frozen entries
 * included, for every form. Run by main() outside the forced-path groups. */
static void test_optim_cpu_gpu_forms_bits(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  const size_t R = 2, n = 2 * 2048 + 13;
  const hcl_optim forms[3] = {
      {.kind = HCL_OPT_SGD, .weight_decay = 0.01f},
      {.kind = HCL_OPT_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 0.01f},
      {.kind = HCL_OPT_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.02f}};
  const float lrs[2] = {1.0f, 0.5f};
  float *p = frand(R * n, -1, 1), *g = frand(R * n, -1, 1), *mask = malloc(n * 4);
  for (size_t i = 0; i < n; i++) mask[i] = i % 5 == 2 ? 0.0f : 1.0f;
  float *got[2][3];
  for (int f = 0; f < 3; f++)
    for (int cpu = 0; cpu < 2; cpu++) {
      hcl_ops_force_paths(cpu);
      tbuf tp = tb_make(ctx, p, R * n, 1), tg = tb_make(ctx, g, R * n, 2);
      tbuf s1 = tb_make(ctx, NULL, R * n, 0), s2 = tb_make(ctx, NULL, R * n, 3);
      tbuf tm = tb_make(ctx, mask, n, 1), tr = tb_make(ctx, lrs, R, 0);
      OK(hcl_fill(ctx, s1.v, 0.0f, R * n));
      OK(hcl_fill(ctx, s2.v, 0.0f, R * n));
      int plain = f == 0; /* its own two-buffer kernels: no rates, no mask */
      for (uint64_t t = 1; t <= 3; t++)
        OK(hcl_optim_step(ctx, &forms[f], 0.05f, plain ? (hcl_buf){0} : tr.v, 0.003f, tp.v, tg.v,
                          s1.v, s2.v, plain ? (hcl_buf){0} : tm.v, R, n, t));
      got[cpu][f] = malloc(R * n * 4);
      tb_read(ctx, &tp, got[cpu][f]);
      tb_free(ctx, &tp), tb_free(ctx, &tg), tb_free(ctx, &s1), tb_free(ctx, &s2);
      tb_free(ctx, &tm), tb_free(ctx, &tr);
    }
  hcl_ops_force_paths(-1);
  for (int f = 0; f < 3; f++) {
    for (size_t i = 0; i < R * n; i++)
      if (memcmp(&got[0][f][i], &got[1][f][i], 4))
        fail_msg("form %d entry %zu: %.9g (one at a time) against %.9g (eight)", f, i, got[0][f][i],
                 got[1][f][i]);
    assert_true(got[1][f][0] != p[0]); /* it moved */
    free(got[0][f]), free(got[1][f]);
  }
  free(p), free(g), free(mask);
}

static void test_optim_adam(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  hcl_optim adam = {.kind = HCL_OPT_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
  check_optim(ctx, &adam, 0.0f, 0, 0);
  hcl_optim adam_wd = {
      .kind = HCL_OPT_ADAM, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.02f};
  check_optim(ctx, &adam_wd, 0.003f, 1, 1);
}

static void test_shape_errors(void **state) {
  (void)state;
  hcl_ctx *ctx = ctx_or_skip();
  hcl_buf b;
  OK(hcl_buf_alloc(ctx, 64, &b));
  assert_int_equal(hcl_axpby(ctx, 1, b, 1, b, 17), HCL_ERR_PARAM);
  assert_non_null(strstr(hcl_errmsg(ctx), "axpby"));
  assert_int_equal(hcl_bias_act(ctx, HCL_ACT_RELU, b, b, 4, b, 2, 3, 4), HCL_ERR_PARAM);
  assert_int_equal(hcl_col_sum(ctx, b, b, 4, 1, 5, 4, 1, 0), HCL_ERR_PARAM);
  assert_int_equal(hcl_fill(ctx, (hcl_buf){0}, 1.0f, 1), HCL_ERR_PARAM);
  hcl_optim o = {.kind = HCL_OPT_SGD, .momentum = 0.9f};
  assert_int_equal(hcl_optim_step(ctx, &o, 0.1f, (hcl_buf){0}, 0, b, b, (hcl_buf){0}, (hcl_buf){0},
                                  (hcl_buf){0}, 1, 4, 1),
                   HCL_ERR_PARAM); /* momentum needs state1 */
  assert_non_null(strstr(hcl_errmsg(ctx), "state1"));
  hcl_buf_free(ctx, &b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bias_act),
      cmocka_unit_test(test_act_backward),
      cmocka_unit_test(test_col_sum),
      cmocka_unit_test(test_axpby_fill),
      cmocka_unit_test(test_gather_rows),
      cmocka_unit_test(test_gather_rows_var),
      cmocka_unit_test(test_gather_xy),
      cmocka_unit_test(test_loss_mse),
      cmocka_unit_test(test_loss_cross_entropy),
      cmocka_unit_test(test_loss_logistic),
      cmocka_unit_test(test_loss_hinge),
      cmocka_unit_test(test_loss_nan_and_edges),
      cmocka_unit_test(test_optim_sgd),
      cmocka_unit_test(test_optim_sgd_plain_bits),
      cmocka_unit_test(test_optim_adam),
      cmocka_unit_test(test_shape_errors),
  };
  hcl_ops_force_paths(1);
  int rc = cmocka_run_group_tests_name("cpu kernel variants", tests, NULL, NULL);
  hcl_ops_force_paths(0);
  rc += cmocka_run_group_tests_name("gpu kernel variants", tests, NULL, NULL);
  hcl_ops_force_paths(-1);
  const struct CMUnitTest both[] = {cmocka_unit_test(test_optim_cpu_gpu_forms_bits)};
  rc += cmocka_run_group_tests_name("cpu against gpu kernel variants", both, NULL, NULL);
  return rc;
}
