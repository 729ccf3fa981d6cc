/* taylor plugin: the ||W||_{2,4}^8 regulariser of Bai & Lee (2020), used by
 * Chen et al. (2020): algorithm gd minimises
 *   [train] loss + lambda ||W||_{2,4}^8,  ||W||_{2,4}^8 = (sum_r |w_r|_2^4)^2,
 * over the trainable rows w_r of block w. The penalty is part of the
 * training objective, not of f: backward() stays the gradient of the model
 * alone (what gradcheck compares with finite differences of forward), and
 * the penalty's gradient is added while train() runs (pen_on). */
#include "taylor.h"

hcl_status hcl_taylor_penalty_grad(hcl_taylor *m, hcl_buf params, hcl_buf grad) {
  const hcl_host_api *host = hcl_host;
  cl_ulong wo = params.offset / sizeof(float) + m->off[HCL_TAYLOR_B_W], ps = m->n_params,
           no = m->pen_n2.offset / sizeof(float);
  cl_ulong go = grad.offset / sizeof(float);
  cl_uint mm = (cl_uint)m->m, dz = (cl_uint)m->dz;
  cl_float l8 = (cl_float)(8.0 * m->penalty);
  size_t gws[2] = {m->m, m->R};
  hcl_arg rows[] = {HCL_ARG(params.mem), HCL_ARG(wo), HCL_ARG(ps), HCL_ARG(m->pen_n2.mem),
                    HCL_ARG(no),         HCL_ARG(mm), HCL_ARG(dz)};
  HCL_TRY(host->run_kernel(m->ctx, m->k_pen_rows, 2, gws, NULL, "tay_pen_rows",
                           sizeof rows / sizeof *rows, rows));
  hcl_arg apply[] = {
      HCL_ARG(grad.mem),      HCL_ARG(go), HCL_ARG(params.mem), HCL_ARG(wo), HCL_ARG(ps),
      HCL_ARG(m->pen_n2.mem), HCL_ARG(no), HCL_ARG(mm),         HCL_ARG(dz), HCL_ARG(l8)};
  return host->run_kernel(m->ctx, m->k_pen_apply, 2, gws, NULL, "tay_pen_apply",
                          sizeof apply / sizeof *apply, apply);
}
