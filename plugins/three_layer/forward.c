/* three_layer plugin: forward pass, gradient and hidden features, all
 * through the runtime's batched SGEMM and fused ops (replica stride n_params
 * in the parameters, n * width in the activations). */
#include "three_layer.h"

#include <math.h>

static hcl_status check_n(tl_model *m, size_t n) {
  if (n > m->max_batch)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM, "batch %zu > max_batch %zu", n, m->max_batch);
  return HCL_OK;
}

hcl_status tl_phi(tl_model *m, hcl_buf params, hcl_buf x, size_t n) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, d = m->d;
  if (m->two_layer) /* phi = x / sqrt(d) */
    return host->axpby(m->ctx, (float)(1.0 / sqrt((double)d)), hcl_view(x, 0, R * n * d), 0.0f,
                       hcl_view(m->phi, 0, R * n * d), R * n * d);
  size_t m1 = m->m1, span = R * n * m1;
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, m1, d, 1.0f, hcl_view(x, 0, R * n * d), d, n * d,
                              hcl_pview(params, m->R, m->n_params, m->v_off, m1 * d), d,
                              m->n_params, 0.0f, hcl_view(m->z1, 0, span), m1, n * m1, R));
  hcl_buf none = {0};
  HCL_TRY(host->bias_act(m->ctx, m->act1, hcl_view(m->z1, 0, span), none, 0,
                         hcl_view(m->phi, 0, span), R, n, m1));
  return host->axpby(m->ctx, (float)(1.0 / sqrt((double)m1)), hcl_view(m->phi, 0, span), 0.0f,
                     hcl_view(m->phi, 0, span), span);
}

/* z2 = phi W^T + b, h = sigma2(z2), for n samples whose phi is in m->phi. */
static hcl_status hidden(tl_model *m, hcl_buf params, size_t n) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, k = tl_phi_dim(m), m2 = m->m2, span = R * n * m2;
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, m2, k, 1.0f, hcl_view(m->phi, 0, R * n * k), k,
                              n * k, hcl_pview(params, m->R, m->n_params, m->w_off, m2 * k), k,
                              m->n_params, 0.0f, hcl_view(m->z2, 0, span), m2, n * m2, R));
  return host->bias_act(m->ctx, m->act2, hcl_view(m->z2, 0, span),
                        hcl_pview(params, m->R, m->n_params, m->b_off, m2), m->n_params,
                        hcl_view(m->h, 0, span), R, n, m2);
}

hcl_status tl_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  tl_model *m = self;
  HCL_TRY(check_n(m, n));
  m->x_last = x;
  m->n_last = n;
  m->have_forward = 1;
  if (n == 0) return HCL_OK;
  size_t R = m->R, m2 = m->m2, D = m->D;
  HCL_TRY(tl_phi(m, params, x, n));
  HCL_TRY(hidden(m, params, n));
  /* out [n, D] = h [n, m2] a [m2, D] / m2 */
  return hcl_host->sgemm_batched(m->ctx, 0, 0, n, D, m2, (float)(1.0 / (double)m2),
                                 hcl_view(m->h, 0, R * n * m2), m2, n * m2,
                                 hcl_pview(params, m->R, m->n_params, m->a_off, m2 * D), D,
                                 m->n_params, 0.0f, hcl_view(out, 0, R * n * D), D, n * D, R);
}

/* grad of sum(dout . out): a always, W unless frozen, b with train_b; the
 * frozen blocks (V; W with freeze_w; b without train_b) get 0, so that
 * nothing is spent on gradients no algorithm applies. */
hcl_status tl_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  tl_model *m = self;
  const hcl_host_api *host = hcl_host;
  if (!m->have_forward)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "backward without a forward (or after features/probe)");
  if (n != m->n_last)
    return host->fail(m->ctx, HCL_ERR_PARAM, "backward on %zu samples, forward had %zu", n,
                      m->n_last);
  size_t R = m->R, k = tl_phi_dim(m), m2 = m->m2, D = m->D, span = R * n * m2;
  int all_trained = m->two_layer && m->train_b && !m->freeze_w;
  if (n == 0 || !all_trained)
    HCL_TRY(host->fill(m->ctx, hcl_view(grad, 0, R * m->n_params), 0.0f, R * m->n_params));
  if (n == 0) return HCL_OK;
  float inv_m2 = (float)(1.0 / (double)m2);
  hcl_buf dv = hcl_view(dout, 0, R * n * D), hv = hcl_view(m->h, 0, span);
  hcl_buf dh = hcl_view(m->dh, 0, span);
  /* grad a [m2, D] = h^T dout / m2 */
  HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, m2, D, n, inv_m2, hv, m2, n * m2, dv, D, n * D, 0.0f,
                              hcl_pview(grad, m->R, m->n_params, m->a_off, m2 * D), D, m->n_params,
                              R));
  if (m->freeze_w && !m->train_b) return HCL_OK;
  /* dz2 = (dout a^T / m2) * sigma2'(z2) */
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, m2, D, inv_m2, dv, D, n * D,
                              hcl_pview(params, m->R, m->n_params, m->a_off, m2 * D), D,
                              m->n_params, 0.0f, dh, m2, n * m2, R));
  HCL_TRY(host->act_backward(m->ctx, m->act2, dh, hcl_view(m->z2, 0, span), dh, R, n, m2));
  if (!m->freeze_w) /* grad W [m2, k] = dz2^T phi */
    HCL_TRY(host->sgemm_batched(
        m->ctx, 1, 0, m2, k, n, 1.0f, dh, m2, n * m2, hcl_view(m->phi, 0, R * n * k), k, n * k,
        0.0f, hcl_pview(grad, m->R, m->n_params, m->w_off, m2 * k), k, m->n_params, R));
  if (m->train_b)
    HCL_TRY(host->col_sum(m->ctx, dh, hcl_pview(grad, m->R, m->n_params, m->b_off, m2), m->n_params,
                          R, n, m2, 1.0f, 0.0f));
  return HCL_OK;
}

/* Three-layer: layer 1 = phi (m1), layer 2 = sigma2(W phi + b) (m2);
 * two_layer: layer 1 = sigma2(W x/sqrt(d) + b). Uses the forward buffers. */
hcl_status tl_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                       size_t *dim) {
  tl_model *m = self;
  const hcl_host_api *host = hcl_host;
  size_t layers = m->two_layer ? 1 : 2;
  if (layer < 1 || layer > layers)
    return host->fail(m->ctx, HCL_ERR_PARAM, "features of layer %zu: expected 1 to %zu", layer,
                      layers);
  HCL_TRY(check_n(m, n));
  m->have_forward = 0;
  int want_phi = !m->two_layer && layer == 1;
  *dim = want_phi ? m->m1 : m->m2;
  if (n == 0) return HCL_OK;
  HCL_TRY(tl_phi(m, params, x, n));
  size_t span = m->R * n * *dim;
  if (!want_phi) HCL_TRY(hidden(m, params, n));
  return host->buf_copy(m->ctx, hcl_view(out, 0, span), hcl_view(want_phi ? m->phi : m->h, 0, span),
                        span * sizeof(float));
}
