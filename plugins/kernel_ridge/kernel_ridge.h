/* kernel_ridge plugin: shared declarations of its source files (not an ABI).
 *
 * Exact kernel ridge regression with the infinite-width two-layer ReLU
 * kernels (the kernel limits of the three-layer paper's two-layer
 * baselines): f(x) = sum_j K(x, X_j) alpha_j over the P training inputs X,
 * alpha = (K + lambda P I)^-1 y. Per replica the flat parameters are
 *   alpha    [P]  the float of each coefficient            (group 0, trainable)
 *   alpha_lo [P]  its rounding residual: alpha_j + alpha_lo_j is the float64
 *                 solution to about 1e-14 relative         (group 0, frozen)
 * The training inputs live in the model's own buffer (prepare()). */
#ifndef HCL_KERNEL_RIDGE_H
#define HCL_KERNEL_RIDGE_H

#include "hiercl/plugin.h"

/* Largest training set: the P x P Gram matrix is factored in float64 on the
 * host (8 P^2 bytes, P^3/3 flops: 512 MiB and 0.2 Tflop at 8192). */
#define KR_MAX_TRAIN 8192u

enum { KR_NTK = 0, KR_NNGP = 1 };
extern const char *const kr_kernels[];    /* the declared choices, KR_* order (plugin.c) */
extern const char *const kr_precisions[]; /* auto, float32 */

typedef struct kr_model {
  hcl_ctx *ctx;
  size_t R, d, P, max_batch, n_params;
  int kernel;     /* KR_NTK or KR_NNGP */
  double lambda;  /* ridge penalty, (K + lambda P I) alpha = y */
  double b_scale; /* the constant coordinate of u = (x/sqrt(d), b_scale) */
  hcl_block blocks[2];
  int fp64; /* the device computes kernels in double */
  size_t real_size;
  cl_double sc, bs; /* 1/sqrt(d) and b_scale as kernel arguments */
  cl_float sc_f, bs_f;
  cl_program prog;
  cl_kernel k_norms, k_gram, k_predict, k_grad;
  hcl_buf X;     /* [R, P, d] training inputs (prepare) */
  hcl_buf nrm;   /* [R, P] real: |u| of each training input */
  hcl_buf x_nrm; /* [R, max_batch] real: |u| of the last forward's inputs */
  double *y;     /* [R, P] host copy of the training labels */
  int prepared;
  hcl_buf x_last; /* the last forward's input (the caller's buffer) */
  size_t n_last;
  int have_forward;
} kr_model;

/* Device-free checks of the parameters against the target and the run. */
hcl_status kr_check(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                    char *err, size_t errlen);
/* What every entry needs of a training-set size P (check, create, prepare). */
hcl_status kr_size_check(const hcl_report *r, uint64_t P);
hcl_status kr_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                     void **self);
void kr_destroy(void *self);
size_t kr_n_params(void *self);
size_t kr_out_dim(void *self);
const hcl_block *kr_blocks(void *self, size_t *n_blocks);
hcl_status kr_init(void *self, hcl_buf params);
/* Loads the training inputs (device) and labels (host) from the trainer. */
hcl_status kr_prepare(void *self, hcl_trainer *t);
hcl_status kr_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out);
hcl_status kr_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad);
/* Algorithm "ridge": the exact fit (fit.c). */
hcl_status kr_train(void *self, const char *algorithm, hcl_trainer *t);
/* Factors the symmetric positive definite A [n, n] (row-major) in place
 * into its lower Cholesky factor; 0, or the 1-based leading minor that is
 * not positive. */
size_t kr_cholesky(double *A, size_t n);
/* b = (L L^T)^-1 b for a factor of kr_cholesky. */
void kr_cholesky_solve(const double *L, size_t n, double *b);

/* A `real` kernel argument: v (double) or f (float) as the device computes. */
static inline hcl_arg kr_real(const kr_model *m, const cl_double *v, const cl_float *f) {
  hcl_arg a = {m->fp64 ? sizeof *v : sizeof *f, m->fp64 ? (const void *)v : (const void *)f};
  return a;
}

#endif
