/* taylor plugin: gradient of sum(dout . out) with respect to the parameters. */
#include "taylor.h"

#include <math.h>

static cl_ulong fo(hcl_buf b) { return (cl_ulong)(b.offset / sizeof(float)); }

/* Neural: the whitening must have been fitted (rep.fitted > 0 in every
 * replica) before any training step. Read once per params buffer. */
static hcl_status check_fitted(hcl_taylor *m, hcl_buf params) {
  const hcl_host_api *host = hcl_host;
  if (!m->neural || (m->fitted_mem == params.mem && m->fitted_offset == params.offset))
    return HCL_OK;
  for (size_t r = 0; r < m->R; r++) {
    float f = 0.0f;
    HCL_TRY(host->buf_read(
        m->ctx, hcl_view(params, r * m->n_params + m->off[HCL_TAYLOR_B_FITTED], 1), &f, sizeof f));
    if (!(f > 0.0f))
      return host->fail(m->ctx, HCL_ERR_CONFIG,
                        "representation = neural, but the whitening of h(x) on the "
                        "unlabelled stream is not fitted (replica %zu): set [train] algorithm = gd "
                        "(it whitens, then runs gradient descent); the runtime's plain sgd "
                        "would train on an unfitted representation",
                        r);
  }
  m->fitted_mem = params.mem;
  m->fitted_offset = params.offset;
  return HCL_OK;
}

/* f_g = sum_r C_gr t(S_gr) with t(s) = s (order 1) or s^2/2 (order 2), and
 * S_gr = w_r . z_g/sqrt(dz), so d(sum_g dout_g f_g)/dw_r = sum_g E_gr z_g/sqrt(dz)
 * with E = dout C (order 1) or dout C S (order 2): grad_w = E^T Z/sqrt(dz).
 * The frozen blocks get a zero gradient. */
hcl_status hcl_taylor_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  if (!m->have_forward)
    return host->fail(m->ctx, HCL_ERR_PARAM, "backward without a forward (or after features())");
  if (n != m->n_last)
    return host->fail(m->ctx, HCL_ERR_PARAM, "backward on %zu samples, forward had %zu", n,
                      m->n_last);
  HCL_TRY(check_fitted(m, params));
  size_t R = m->R, np = m->n_params, frozen = m->off[HCL_TAYLOR_B_W0];
  for (size_t r = 0; r < R; r++)
    HCL_TRY(host->fill(m->ctx, hcl_view(grad, r * np + frozen, np - frozen), 0.0f, np - frozen));
  if (n == 0) {
    for (size_t r = 0; r < R; r++)
      HCL_TRY(host->fill(m->ctx, hcl_view(grad, r * np, frozen), 0.0f, frozen));
    return HCL_OK;
  }
  size_t w = m->m, dz = m->dz;
  cl_ulong eo = fo(m->eb), co = fo(m->cb), so = fo(m->sb), dO = fo(dout), rows = R * n;
  cl_uint mm = (cl_uint)w, order = (cl_uint)m->order;
  hcl_arg args[] = {HCL_ARG(m->eb.mem), HCL_ARG(eo),   HCL_ARG(m->cb.mem), HCL_ARG(co),
                    HCL_ARG(m->sb.mem), HCL_ARG(so),   HCL_ARG(dout.mem),  HCL_ARG(dO),
                    HCL_ARG(mm),        HCL_ARG(rows), HCL_ARG(order)};
  size_t gws[2] = {w, rows};
  HCL_TRY(host->run_kernel(m->ctx, m->k_dcoef, 2, gws, NULL, "taylor_dcoef",
                           sizeof args / sizeof *args, args));
  float s = (float)(1.0 / sqrt((double)dz)); /* the model's input is z/sqrt(dz) (forward.c) */
  return host->sgemm_batched(m->ctx, 1, 0, w, dz, n, s, hcl_view(m->eb, 0, R * n * w), w, n * w,
                             hcl_taylor_z(m, n), dz, n * dz, 0.0f,
                             hcl_taylor_pview(m, grad, HCL_TAYLOR_B_W), dz, np, R);
}
