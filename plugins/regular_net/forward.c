/* regular_net plugin: forward pass and hidden features. */
#include "regular_net.h"

#include <stdint.h>

/* z [R, n, W] = a [R, n, cols] B^T + beta z for the [W, cols] block of P at
 * off: one batched SGEMM over the replicas. */
static hcl_status linear(hcl_rn *m, hcl_buf P, size_t off, size_t cols, hcl_buf a, size_t n,
                         float beta, hcl_buf z) {
  size_t W = m->W;
  return hcl_host->sgemm_batched(m->ctx, 0, 1, n, W, cols, 1.0f, hcl_view(a, 0, m->R * n * cols),
                                 cols, n * cols, hcl_pview(P, m->R, m->n_params, off, W * cols),
                                 cols, m->n_params, beta, hcl_view(z, 0, m->R * n * W), W, n * W,
                                 m->R);
}

/* Hidden layers 0 .. upto-1 into z[], h[]. */
static hcl_status hidden(hcl_rn *m, hcl_buf P, hcl_buf x, size_t n, size_t upto) {
  const hcl_host_api *host = hcl_host;
  size_t W = m->W, span = m->R * n * W;
  for (size_t l = 0; l < upto; l++) {
    const hcl_rn_layer *ly = &m->layers[l];
    HCL_TRY(linear(m, P, ly->w_off, ly->in, l == 0 ? x : m->h[l - 1], n, 0.0f, m->z[l]));
    if (ly->s_off != SIZE_MAX) HCL_TRY(linear(m, P, ly->s_off, m->d, x, n, 1.0f, m->z[l]));
    hcl_buf bias = {0};
    if (ly->b_off != SIZE_MAX) bias = hcl_pview(P, m->R, m->n_params, ly->b_off, W);
    HCL_TRY(host->bias_act(m->ctx, m->act, hcl_view(m->z[l], 0, span), bias, m->n_params,
                           hcl_view(m->h[l], 0, span), m->R, n, W));
  }
  return HCL_OK;
}

/* out [R, n, D] = sum over the read-out layers of h_l R_l^T (+ c), R_l the
 * columns of readout.weight [D, U] that read layer l. */
static hcl_status readout(hcl_rn *m, hcl_buf P, size_t n, hcl_buf out) {
  const hcl_host_api *host = hcl_host;
  size_t W = m->W, D = m->D, U = m->U;
  hcl_buf o = hcl_view(out, 0, m->R * n * D);
  size_t first = m->readout == HCL_RN_READOUT_ALL ? 0 : m->L - 1;
  for (size_t l = first; l < m->L; l++) {
    size_t col = (l - first) * W;
    HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, D, W, 1.0f, hcl_view(m->h[l], 0, m->R * n * W), W,
                                n * W,
                                hcl_pview(P, m->R, m->n_params, m->r_off + col, (D - 1) * U + W), U,
                                m->n_params, l == first ? 0.0f : 1.0f, o, D, n * D, m->R));
  }
  if (m->rb_off == SIZE_MAX) return HCL_OK;
  return host->bias_act(m->ctx, HCL_ACT_IDENTITY, o, hcl_pview(P, m->R, m->n_params, m->rb_off, D),
                        m->n_params, o, m->R, n, D);
}

static hcl_status check_n(hcl_rn *m, size_t n) {
  if (n > m->max_batch)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM, "regular_net: batch %zu > max_batch %zu", n,
                          m->max_batch);
  return HCL_OK;
}

/* The parameters the layers use: params itself, or params . masks. */
static hcl_status effective(hcl_rn *m, hcl_buf params, hcl_buf *P) {
  if (!m->masked) {
    *P = params;
    return HCL_OK;
  }
  *P = m->eff;
  return hcl_rn_apply_mask(m, params, m->eff);
}

hcl_status hcl_rn_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  hcl_rn *m = self;
  HCL_TRY(check_n(m, n));
  m->x_last = x;
  m->n_last = n;
  m->have_forward = 1;
  if (n == 0) return HCL_OK;
  hcl_buf P;
  HCL_TRY(effective(m, params, &P));
  m->p_last = P;
  HCL_TRY(hidden(m, P, x, n, m->L));
  return readout(m, P, n, out);
}

/* Layer `layer` (1 .. depth) is h_layer. It reuses the forward buffers, so a
 * backward must follow a new forward. */
hcl_status hcl_rn_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n,
                           hcl_buf out, size_t *dim) {
  hcl_rn *m = self;
  const hcl_host_api *host = hcl_host;
  if (layer < 1 || layer > m->L)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "regular_net: features of layer %zu: expected 1 to %zu", layer, m->L);
  HCL_TRY(check_n(m, n));
  m->have_forward = 0;
  *dim = m->W;
  if (n == 0) return HCL_OK;
  hcl_buf P;
  HCL_TRY(effective(m, params, &P));
  HCL_TRY(hidden(m, P, x, n, layer));
  size_t span = m->R * n * m->W;
  return host->buf_copy(m->ctx, hcl_view(out, 0, span), hcl_view(m->h[layer - 1], 0, span),
                        span * sizeof(float));
}
