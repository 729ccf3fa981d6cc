/* resnet plugin: gradient of sum(dout . out) with respect to the parameters. */
#include "resnet.h"

/* dW_l = dz^T a and db_l = sum over rows of dz, written (not accumulated)
 * into grad; dz [R, n, out], a [R, n, in] the layer's input. */
static hcl_status weight_grad(hcl_resnet *m, size_t l, hcl_buf dz, hcl_buf a, size_t n,
                              hcl_buf grad) {
  const hcl_host_api *host = hcl_resnet_host;
  size_t in = m->in_dim[l], out = m->out_dims[l];
  HCL_RESNET_TRY(
      host->sgemm_batched(m->ctx, 1, 0, out, in, n, 1.0f, hcl_resnet_view(dz, 0, m->R * n * out),
                          out, n * out, hcl_resnet_view(a, 0, m->R * n * in), in, n * in, 0.0f,
                          hcl_resnet_pview(m, grad, m->w_off[l], out * in), in, m->n_params, m->R));
  return host->col_sum(m->ctx, hcl_resnet_view(dz, 0, m->R * n * out),
                       hcl_resnet_pview(m, grad, m->b_off[l], out), m->n_params, m->R, n, out, 1.0f,
                       0.0f);
}

/* dh = dz W_l + beta dh: the gradient reaching layer l's input. */
static hcl_status input_grad(hcl_resnet *m, size_t l, hcl_buf params, hcl_buf dz, size_t n,
                             float beta) {
  size_t in = m->in_dim[l], out = m->out_dims[l];
  return hcl_resnet_host->sgemm_batched(
      m->ctx, 0, 0, n, in, out, 1.0f, hcl_resnet_view(dz, 0, m->R * n * out), out, n * out,
      hcl_resnet_pview(m, params, m->w_off[l], out * in), in, m->n_params, beta,
      hcl_resnet_view(m->dh, 0, m->R * n * in), in, n * in, m->R);
}

/* Top down: readout, then each block (h_l = act(z_l) + h_{l-1}, so the
 * gradient to h_{l-1} is dz_l W_l plus the identity path, accumulated in
 * place with beta = 1), then the input layer. */
hcl_status hcl_resnet_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  hcl_resnet *m = self;
  const hcl_host_api *host = hcl_resnet_host;
  if (!m->have_forward)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "resnet: backward without a forward (or after features())");
  if (n != m->n_last)
    return host->fail(m->ctx, HCL_ERR_PARAM, "resnet: backward on %zu samples, forward had %zu", n,
                      m->n_last);
  if (n == 0)
    return host->fill(m->ctx, hcl_resnet_view(grad, 0, m->R * m->n_params), 0.0f,
                      m->R * m->n_params);
  size_t L = m->depth, W = m->width, span = m->R * n * W;
  HCL_RESNET_TRY(weight_grad(m, L - 1, dout, m->h[L - 2], n, grad));
  HCL_RESNET_TRY(input_grad(m, L - 1, params, dout, n, 0.0f));
  for (size_t l = L - 2;; l--) {
    HCL_RESNET_TRY(host->act_backward(m->ctx, m->act, hcl_resnet_view(m->dh, 0, span),
                                      hcl_resnet_view(m->z[l], 0, span),
                                      hcl_resnet_view(m->dz, 0, span), m->R, n, W));
    HCL_RESNET_TRY(weight_grad(m, l, m->dz, l == 0 ? m->x_last : m->h[l - 1], n, grad));
    if (l == 0) break;
    HCL_RESNET_TRY(input_grad(m, l, params, m->dz, n, 1.0f));
  }
  return HCL_OK;
}
