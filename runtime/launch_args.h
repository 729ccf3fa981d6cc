/* A loss or optimiser launch checked and written but not yet run. ops.c's
 * hcl_loss and hcl_optim_step prepare one and run it; a graph's one-launch
 * training step (graph_pass.c) runs both inside its own kernel with the same
 * by-value arguments, so both compute the same bits. */
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
