/* The by-value argument structs of the runtime's per-step kernels and the
 * work-group shapes both sides must agree on, written once for both:
 * kernels/ops.cl (embedded in front of it, OpenCL C) and runtime/ops.c (C,
 * with the OpenCL host types). Every struct has its 4-byte fields first,
 * then the 8-byte ones, so no padding differs between host and device. */
#ifndef HCL_OPS_ARGS_H
#define HCL_OPS_ARGS_H

#ifdef __OPENCL_VERSION__
#define HCL_AI int
#define HCL_AF float
#define HCL_AU ulong
#else
#define HCL_AI cl_int
#define HCL_AF cl_float
#define HCL_AU cl_ulong
#endif

/* Work-group shapes (kernels/ops.cl: reqd_work_group_size). */
#define HCL_CS_W 32        /* col_sum: columns per group */
#define HCL_CS_H 8         /* col_sum: row lanes per group */
#define HCL_RED_WG 256     /* loss: work-items per replica */
#define HCL_OPT_CHUNK 2048 /* optimiser on CPUs: entries per work-item */

/* Scalars of the launches made every training step, one by-value argument
 * each: PoCL pays per argument at every launch, about 0.5 us for each
 * scalar (bench/launch_cost). */

/* A batched product: C[q] = alpha op(A[q]) op(B[q]) + beta C[q]; offsets,
 * leading dimensions and replica strides in floats. */
typedef struct {
  HCL_AI ta, tb;
  HCL_AF alpha, beta;
  HCL_AU m, n, k, a_off, lda, sa, b_off, ldb, sb, c_off, ldc, sc;
} hcl_gemm_p;

/* A loss launch (hcl_loss of runtime/ops.c): which outputs to write, the
 * scales, and the offsets in floats (nan_off in ints). */
typedef struct {
  HCL_AI kind, has_dout, has_loss, has_err, accumulate, has_nan, step, pad_;
  HCL_AF grad_scale, mse_scale, mse_gscale, pad2_;
  HCL_AU f_off, y_off, n, out_dim, dout_off, loss_off, err_off, nan_off;
} hcl_loss_p;

/* A training batch's gather on CPUs (hcl_gather_xy): row j of replica r
 * of x and y is row (f0 + j) % rows of their sources, rows = sizes[r] or
 * rows_src; offsets in floats. */
typedef struct {
  HCL_AU sx_off, sy_off, rows_src, dx_off, dy_off, f0, n, wx, wy;
} hcl_gather_p;

/* An optimiser step (hcl_k_optim's formulas); offsets in floats. */
typedef struct {
  HCL_AI kind, has_lrs, nesterov, first, has_mask, pad_;
  HCL_AF lr, l2, wd, momentum, beta1, beta2, eps, step_scale, inv_sqrt_bc2, pad2_;
  HCL_AU lrs_off, p_off, g_off, s1_off, s2_off, mask_off, n;
} hcl_optim_p;

/* What differs between the training steps that one launch of a graph's
 * training step runs (graph_pass.c): the batch's first row, the step a NaN
 * is recorded at, the optimiser's rate, first-step flag and Adam's scales.
 * Step s runs with its gather, loss and optimiser arguments equal to the
 * first step's with record s applied (hcl_step_apply): the trainer checks
 * that these are the arguments it prepared for that step. */
#define HCL_STEPS_MAX 8
typedef struct {
  HCL_AI step, first;
  HCL_AF lr, step_scale, inv_sqrt_bc2, pad_;
  HCL_AU f0;
} hcl_step_rec;
typedef struct {
  HCL_AU k; /* steps, 1 .. HCL_STEPS_MAX */
  hcl_step_rec s[HCL_STEPS_MAX];
} hcl_steps_p;
static inline void hcl_step_apply(const hcl_step_rec *r, hcl_gather_p *g, hcl_loss_p *l,
                                  hcl_optim_p *o) {
  g->f0 = r->f0, l->step = r->step, o->first = r->first, o->lr = r->lr;
  o->step_scale = r->step_scale, o->inv_sqrt_bc2 = r->inv_sqrt_bc2;
}

/* A column sum: out = beta out + alpha sum over rows. */
typedef struct {
  HCL_AF alpha, beta;
  HCL_AU x_off, out_off, out_stride, rows, cols;
} hcl_colsum_p;

/* A thin product: two sizes, alpha and beta, and for each of its three
 * operands (offset, increment or leading dimension, replica stride). */
typedef struct {
  HCL_AF alpha, beta;
  HCL_AU d0, d1, o0, i0, s0, o1, i1, s1, o2, i2, s2;
} hcl_thin_p;

/* The thin kernels' operands for product g, where one of k, n, m is 1:
 * hcl_gemm_thin (ops.c) and a graph pass's hcl_wg_gemm (items.cl) build
 * them here, so both hand the same kernel the same figures. k == 1: u, v, C
 * of the rank-one form; else *row = 0 for a column of C (M = op(A), v = B's
 * column) and 1 for a row (M = op(B), v = A's row). */
static inline hcl_thin_p hcl_thin_of(hcl_gemm_p g, int *row) {
  hcl_thin_p t = {.alpha = g.alpha, .beta = g.beta};
  *row = g.k != 1 && g.n != 1;
  if (g.k == 1) {
    t.d0 = g.m, t.d1 = g.n;
    t.o0 = g.a_off, t.i0 = g.ta ? 1 : g.lda, t.s0 = g.sa;
    t.o1 = g.b_off, t.i1 = g.tb ? g.ldb : 1, t.s1 = g.sb;
    t.o2 = g.c_off, t.i2 = g.ldc, t.s2 = g.sc;
    return t;
  }
  t.d0 = *row ? g.n : g.m, t.d1 = g.k;
  if (*row) { /* c_j = sum_p a(p) opB(p,j) */
    t.o0 = g.b_off, t.i0 = g.ldb, t.s0 = g.sb;
    t.o1 = g.a_off, t.i1 = g.ta ? g.lda : 1, t.s1 = g.sa;
  } else { /* c_i = sum_p opA(i,p) b(p) */
    t.o0 = g.a_off, t.i0 = g.lda, t.s0 = g.sa;
    t.o1 = g.b_off, t.i1 = g.tb ? 1 : g.ldb, t.s1 = g.sb;
  }
  t.o2 = g.c_off, t.i2 = *row ? 1 : g.ldc, t.s2 = g.sc;
  return t;
}

/* hcl_k_gemm_tile's op(B) in local memory, floats */
#define HCL_TILE_LOCAL 4096

/* The runtime's own kernels for a thin or small product on CPUs (ops.c:
 * hcl_gemm_kernel_of), as items.cl's hcl_wg_gemm names its paths: the
 * rank-one, dot and axpy forms of a thin product, the tile and row forms
 * of a small one. */
#define HCL_WG_GER 0
#define HCL_WG_DOT 1
#define HCL_WG_AXPY 2
#define HCL_WG_TILE 3
#define HCL_WG_ROW 4

#endif
