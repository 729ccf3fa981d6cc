/* A batch gather, loss or optimiser launch checked and written but not yet
 * run. ops.c's hcl_gather_xy, hcl_loss and hcl_optim_step prepare one and
 * run it; a graph's one-launch training step (graph_pass.c) runs them inside
 * its own kernel with the same by-value arguments and the same functions,
 * so both compute the same bits. */
#ifndef HCL_LAUNCH_ARGS_H
#define HCL_LAUNCH_ARGS_H

#include "internal.h"
#include "ops_args.h"

typedef struct hcl_loss_launch {
  hcl_loss_p p;
  size_t R;
  cl_mem f, y, dout, loss, err, nan; /* f NULL: nothing to compute */
} hcl_loss_launch;

typedef struct hcl_optim_launch {
  hcl_optim_p p;
  size_t R;
  int plain;                              /* SGD without momentum, rates or mask */
  cl_mem lrs, params, grad, s1, s2, mask; /* params NULL: nothing to update */
} hcl_optim_launch;

/* The steps one launch of a graph's training step runs (their records). */
typedef struct hcl_steps_launch {
  hcl_steps_p p;
} hcl_steps_launch;

/* A training batch's gather on CPUs. */
typedef struct hcl_gather_launch {
  hcl_gather_p p;
  size_t R;
  cl_mem sx, sy, dx, dy, sizes; /* sx NULL: nothing to copy, or not the CPU form */
} hcl_gather_launch;

/* hcl_gather_xy's checks and argument into *G (same parameters) for its CPU
 * form; G->sx stays NULL elsewhere (a GPU: call hcl_gather_xy). Runs nothing. */
hcl_status hcl_gather_prepare(hcl_ctx *ctx, hcl_buf src_x, hcl_buf src_y, size_t rows_src,
                              hcl_buf sizes, hcl_buf dst_x, hcl_buf dst_y, size_t R, uint64_t first,
                              size_t n, size_t wx, size_t wy, hcl_gather_launch *G);
/* Enqueue the gather kernel of a prepared launch. */
hcl_status hcl_gather_run(hcl_ctx *ctx, const hcl_gather_launch *G);
/* hcl_loss's checks and argument into *L (same parameters); runs nothing. */
hcl_status hcl_loss_prepare(hcl_ctx *ctx, hcl_loss_kind kind, hcl_buf f, hcl_buf y, size_t R,
                            size_t n, size_t out_dim, float grad_scale, hcl_buf dout,
                            hcl_buf loss_acc, hcl_buf err_acc, int accumulate, hcl_buf nan_step,
                            int32_t step, hcl_loss_launch *L);
/* Enqueue the loss kernel of a prepared launch. */
hcl_status hcl_loss_run(hcl_ctx *ctx, const hcl_loss_launch *L);
/* hcl_optim_step's checks and argument into *O (same parameters); runs nothing. */
hcl_status hcl_optim_prepare(hcl_ctx *ctx, const hcl_optim *opt, float lr, hcl_buf lr_scale,
                             float l2, hcl_buf params, hcl_buf grad, hcl_buf state1, hcl_buf state2,
                             hcl_buf mask, size_t R, size_t n, uint64_t t, hcl_optim_launch *O);
/* Enqueue the optimiser kernel of a prepared launch. */
hcl_status hcl_optim_run(hcl_ctx *ctx, const hcl_optim_launch *O);

#endif
