/* deep_cnn plugin: gradient of sum(dout . out) with respect to the parameters.
 *
 * The true gradient, whatever lr_factor: the mf parametrisation's learning
 * rate times H (the reference's) is the model's lr_scale(), which the
 * runtime's SGD applies (dcnn_lr_scale). */
#include "deep_cnn.h"

/* Gradient of the readout; dA of layer `stage` into m->da. */
static hcl_status readout_backward(dcnn *m, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  const hcl_host_api *host = hcl_host;
  const dcnn_layer *ly = &m->layer[m->stage - 1];
  size_t D = m->n_out, H = m->H, R = m->R;
  hcl_buf d = hcl_view(dout, 0, R * n * D);
  hcl_buf feat = ly->P == 1 ? hcl_view(ly->A, 0, R * n * H) : hcl_view(m->g, 0, R * n * H);
  HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, D, H, n, m->out_scale, d, D, n * D, feat, H, n * H,
                              0.0f, hcl_pview(grad, m->R, m->n_params, m->ro_off, D * H), H,
                              m->n_params, R));
  if (m->has_rb)
    HCL_TRY(host->col_sum(m->ctx, d, hcl_pview(grad, m->R, m->n_params, m->rb_off, D), m->n_params,
                          R, n, D, 1.0f, 0.0f));
  /* dG = out_scale dout W_ro; the mean's transpose spreads it over positions */
  hcl_buf dst = hcl_view(ly->P == 1 ? m->da : m->dg, 0, R * n * H);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, n, H, D, m->out_scale, d, D, n * D,
                              hcl_pview(params, m->R, m->n_params, m->ro_off, D * H), H,
                              m->n_params, 0.0f, dst, H, n * H, R));
  if (ly->P == 1) return HCL_OK;
  return dcnn_spread(m, dst, hcl_view(m->da, 0, R * n * ly->P * H), R * n, ly->P, H,
                     1.0f / (float)ly->P);
}

/* Layer k (0-based) given dA in m->da: dZ, the weight and bias gradients,
 * and (below = 1) dA of layer k-1 into m->da. */
static hcl_status conv_backward(dcnn *m, size_t k, hcl_buf params, size_t n, hcl_buf grad,
                                int below) {
  const hcl_host_api *host = hcl_host;
  const dcnn_layer *ly = &m->layer[k];
  size_t H = m->H, s = m->s, cs = ly->c_in * s, rows = n * ly->P, R = m->R;
  hcl_buf dz = hcl_view(m->dz, 0, R * rows * H);
  HCL_TRY(host->act_backward(m->ctx, HCL_ACT_RELU, hcl_view(m->da, 0, R * rows * H),
                             hcl_view(ly->Z, 0, R * rows * H), dz, R, rows, H));
  HCL_TRY(host->sgemm_batched(
      m->ctx, 1, 0, H, cs, rows, ly->alpha, dz, H, rows * H, hcl_view(ly->U, 0, R * rows * cs), cs,
      rows * cs, 0.0f, hcl_pview(grad, m->R, m->n_params, ly->w_off, H * cs), cs, m->n_params, R));
  float bscale = m->bias_scale;
  if (m->bias == DCNN_BIAS_SHARED)
    HCL_TRY(host->col_sum(m->ctx, dz, hcl_pview(grad, m->R, m->n_params, ly->b_off, H), m->n_params,
                          R, rows, H, bscale, 0.0f));
  else if (m->bias == DCNN_BIAS_POSITION)
    HCL_TRY(host->col_sum(m->ctx, dz, hcl_pview(grad, m->R, m->n_params, ly->b_off, ly->P * H),
                          m->n_params, R, n, ly->P * H, bscale, 0.0f));
  if (!below) return HCL_OK;
  /* dU = alpha dZ W, then the patches' transpose back onto A_{k-1} */
  hcl_buf du = hcl_view(m->du, 0, R * rows * cs);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, rows, cs, H, ly->alpha, dz, H, rows * H,
                              hcl_pview(params, m->R, m->n_params, ly->w_off, H * cs), cs,
                              m->n_params, 0.0f, du, cs, rows * cs, R));
  return dcnn_col2im(m, du, hcl_view(m->da, 0, R * rows * cs), R * n, ly->P, H, s);
}

/* Top down from the readout through layers stage .. train_from; blocks
 * outside them (layers above the stage, frozen layers below) get zeros. */
hcl_status dcnn_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  dcnn *m = self;
  const hcl_host_api *host = hcl_host;
  if (m->rc.fitted)
    return host->fail(m->ctx, HCL_ERR_UNSUPPORTED,
                      "no gradient after ridge_chain (the fitted chain replaced the "
                      "network)");
  if (!m->have_forward)
    return host->fail(m->ctx, HCL_ERR_PARAM, "backward without a forward (or after features())");
  if (n != m->n_last)
    return host->fail(m->ctx, HCL_ERR_PARAM, "backward on %zu samples, forward had %zu", n,
                      m->n_last);
  size_t total = m->R * m->n_params;
  if (n == 0 || m->stage < m->L || m->train_from > 1)
    HCL_TRY(host->fill(m->ctx, hcl_view(grad, 0, total), 0.0f, total));
  if (n == 0) return HCL_OK;
  HCL_TRY(readout_backward(m, params, dout, n, grad));
  size_t lo = m->train_from - 1;
  for (size_t k = m->stage; k-- > lo;) HCL_TRY(conv_backward(m, k, params, n, grad, k > lo));
  return HCL_OK;
}
