/* regular_net plugin: its own kernels (regular_net.cl) and their launches. */
#include "regular_net.h"

extern const char hcl_cl_regular_net[];

hcl_status hcl_rn_kernels(hcl_rn *m) {
  const hcl_host_api *host = hcl_host;
  if (m->prog) return HCL_OK;
  HCL_TRY(host->program(m->ctx, "regular_net", hcl_cl_regular_net, "", &m->prog));
  HCL_TRY(host->kernel(m->ctx, m->prog, "rn_mask_mul", &m->k_mul));
  return host->kernel(m->ctx, m->prog, "rn_grad_post", &m->k_grad);
}

hcl_status hcl_rn_apply_mask(hcl_rn *m, hcl_buf params, hcl_buf out) {
  cl_ulong po, mo, eo, np = m->n_params;
  HCL_TRY(hcl_view_offset(m->ctx, params, "params", &po));
  HCL_TRY(hcl_view_offset(m->ctx, m->cmask, "mask", &mo));
  HCL_TRY(hcl_view_offset(m->ctx, out, "masked params", &eo));
  hcl_arg args[] = {HCL_ARG(params.mem), HCL_ARG(po),      HCL_ARG(m->cmask.mem),
                    HCL_ARG(mo),         HCL_ARG(out.mem), HCL_ARG(eo),
                    HCL_ARG(np)};
  size_t gws[2] = {m->n_params, m->R};
  return hcl_host->run_kernel(m->ctx, m->k_mul, 2, gws, NULL, "regular_net_mask", 7, args);
}

hcl_status hcl_rn_grad_post(hcl_rn *m, hcl_buf params, hcl_buf grad) {
  cl_ulong go, po, mo = 0, np = m->n_params;
  HCL_TRY(hcl_view_offset(m->ctx, grad, "grad", &go));
  HCL_TRY(hcl_view_offset(m->ctx, params, "params", &po));
  if (m->masked) HCL_TRY(hcl_view_offset(m->ctx, m->cmask, "mask", &mo));
  cl_int has_cm = m->masked, sel = m->sel_on;
  cl_ulong w0 = m->sel_w0, w1 = m->sel_w1, s0 = m->sel_s0, s1 = m->sel_s1, b0 = m->sel_b0,
           b1 = m->sel_b1, ro = m->sel_ro;
  cl_float l2w = m->sel_l2w, l2s = m->sel_l2s;
  cl_mem cm = m->masked ? m->cmask.mem : grad.mem; /* any valid buffer when unused */
  hcl_arg args[] = {
      HCL_ARG(grad.mem), HCL_ARG(go),  HCL_ARG(params.mem), HCL_ARG(po), HCL_ARG(cm),  HCL_ARG(mo),
      HCL_ARG(has_cm),   HCL_ARG(sel), HCL_ARG(w0),         HCL_ARG(w1), HCL_ARG(l2w), HCL_ARG(s0),
      HCL_ARG(s1),       HCL_ARG(l2s), HCL_ARG(b0),         HCL_ARG(b1), HCL_ARG(ro),  HCL_ARG(np)};
  size_t gws[2] = {m->n_params, m->R};
  return hcl_host->run_kernel(m->ctx, m->k_grad, 2, gws, NULL, "regular_net_grad", 18, args);
}
