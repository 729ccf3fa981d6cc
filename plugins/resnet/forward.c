/* resnet plugin: forward pass and hidden features. */
#include "resnet.h"

/* z = x W^T for layer l over all replicas: one batched SGEMM. x is
 * [R, n, in] (replica stride n*in), W [out, in] inside params. */
static hcl_status linear(hcl_resnet *m, size_t l, hcl_buf params, hcl_buf x, size_t n, hcl_buf z) {
  size_t in = m->in_dim[l], out = m->out_dims[l];
  return hcl_resnet_host->sgemm_batched(
      m->ctx, 0, 1, n, out, in, 1.0f, hcl_resnet_view(x, 0, m->R * n * in), in, n * in,
      hcl_resnet_pview(m, params, m->w_off[l], out * in), in, m->n_params, 0.0f,
      hcl_resnet_view(z, 0, m->R * n * out), out, n * out, m->R);
}

/* Hidden layers 0 .. upto-1 into z[], h[]: h0 = act(x W0^T + b0), then
 * h_l = act(h_{l-1} Wl^T + bl) + h_{l-1}. */
static hcl_status hidden(hcl_resnet *m, hcl_buf params, hcl_buf x, size_t n, size_t upto) {
  const hcl_host_api *host = hcl_resnet_host;
  size_t W = m->width, span = m->R * n * W;
  for (size_t l = 0; l < upto; l++) {
    hcl_buf in = l == 0 ? x : m->h[l - 1];
    HCL_RESNET_TRY(linear(m, l, params, in, n, m->z[l]));
    HCL_RESNET_TRY(host->bias_act(m->ctx, m->act, hcl_resnet_view(m->z[l], 0, span),
                                  hcl_resnet_pview(m, params, m->b_off[l], W), m->n_params,
                                  hcl_resnet_view(m->h[l], 0, span), m->R, n, W));
    if (l > 0)
      HCL_RESNET_TRY(host->axpby(m->ctx, 1.0f, hcl_resnet_view(m->h[l - 1], 0, span), 1.0f,
                                 hcl_resnet_view(m->h[l], 0, span), span));
  }
  return HCL_OK;
}

static hcl_status check_n(hcl_resnet *m, size_t n) {
  if (n > m->max_batch)
    return hcl_resnet_host->fail(m->ctx, HCL_ERR_PARAM, "resnet: batch %zu > max_batch %zu", n,
                                 m->max_batch);
  return HCL_OK;
}

hcl_status hcl_resnet_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  hcl_resnet *m = self;
  HCL_RESNET_TRY(check_n(m, n));
  m->x_last = x;
  m->n_last = n;
  m->have_forward = 1;
  if (n == 0) return HCL_OK;
  size_t L = m->depth, D = m->out_dim;
  HCL_RESNET_TRY(hidden(m, params, x, n, L - 1));
  hcl_buf o = hcl_resnet_view(out, 0, m->R * n * D);
  HCL_RESNET_TRY(linear(m, L - 1, params, m->h[L - 2], n, o));
  return hcl_resnet_host->bias_act(m->ctx, HCL_ACT_IDENTITY, o,
                                   hcl_resnet_pview(m, params, m->b_off[L - 1], D), m->n_params, o,
                                   m->R, n, D);
}

/* Layer `layer` (1 .. depth-1) is the output of hidden layer layer-1. It
 * reuses the forward buffers, so a backward must follow a new forward. */
hcl_status hcl_resnet_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n,
                               hcl_buf out, size_t *dim) {
  hcl_resnet *m = self;
  const hcl_host_api *host = hcl_resnet_host;
  if (layer < 1 || layer >= m->depth)
    return host->fail(m->ctx, HCL_ERR_PARAM, "resnet: features of layer %zu: expected 1 to %zu",
                      layer, m->depth - 1);
  HCL_RESNET_TRY(check_n(m, n));
  m->have_forward = 0;
  *dim = m->width;
  if (n == 0) return HCL_OK;
  HCL_RESNET_TRY(hidden(m, params, x, n, layer));
  size_t span = m->R * n * m->width;
  return host->buf_copy(m->ctx, hcl_resnet_view(out, 0, span),
                        hcl_resnet_view(m->h[layer - 1], 0, span), span * sizeof(float));
}
