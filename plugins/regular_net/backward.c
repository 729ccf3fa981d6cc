/* regular_net plugin: gradient of sum(dout . out) with respect to the
 * parameters; the masks make it the gradient of f(params . masks). */
#include "regular_net.h"

#include <stdint.h>

/* grad block [rows, cols] at off (leading dimension ld) = dy^T a for dy
 * [R, n, rows], a [R, n, cols]; written, not accumulated. */
static hcl_status outer(hcl_rn *m, hcl_buf dy, size_t rows, hcl_buf a, size_t cols, size_t n,
                        hcl_buf grad, size_t off, size_t ld) {
  return hcl_host->sgemm_batched(
      m->ctx, 1, 0, rows, cols, n, 1.0f, hcl_view(dy, 0, m->R * n * rows), rows, n * rows,
      hcl_view(a, 0, m->R * n * cols), cols, n * cols, 0.0f,
      hcl_pview(grad, m->R, m->n_params, off, (rows - 1) * ld + cols), ld, m->n_params, m->R);
}

/* dh [R, n, W] = dy [R, n, k] B + beta dh for the [k, W] block of P at off
 * (leading dimension ld): the gradient reaching a layer's output. */
static hcl_status back(hcl_rn *m, hcl_buf dy, size_t k, hcl_buf P, size_t off, size_t ld, size_t n,
                       float beta, hcl_buf dh) {
  size_t W = m->W;
  return hcl_host->sgemm_batched(m->ctx, 0, 0, n, W, k, 1.0f, hcl_view(dy, 0, m->R * n * k), k,
                                 n * k, hcl_pview(P, m->R, m->n_params, off, (k - 1) * ld + W), ld,
                                 m->n_params, beta, hcl_view(dh, 0, m->R * n * W), W, n * W, m->R);
}

/* Readout first (its weight gradient dout^T h_l for each read-out layer, the
 * bias gradient, and dh_L = dout R_L), then each layer from the top:
 * dz_l = dh_l act'(z_l); dW_l = dz_l^T h_{l-1} (x for layer 1); dS_l =
 * dz_l^T x; db_l = sum dz_l; dh_{l-1} = dz_l W_l (+ dout R_{l-1} when every
 * layer is read out). Last, the masks (and a coordinate-descent selection). */
hcl_status hcl_rn_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  hcl_rn *m = self;
  const hcl_host_api *host = hcl_host;
  if (!m->have_forward)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "regular_net: backward without a forward (or after features())");
  if (n != m->n_last)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "regular_net: backward on %zu samples, forward had %zu", n, m->n_last);
  if (n == 0)
    return host->fill(m->ctx, hcl_view(grad, 0, m->R * m->n_params), 0.0f, m->R * m->n_params);
  size_t L = m->L, W = m->W, D = m->D, U = m->U, span = m->R * n * W;
  hcl_buf P = m->p_last;
  size_t first = m->readout == HCL_RN_READOUT_ALL ? 0 : L - 1;
  for (size_t l = first; l < L; l++)
    HCL_TRY(outer(m, dout, D, m->h[l], W, n, grad, m->r_off + (l - first) * W, U));
  if (m->rb_off != SIZE_MAX)
    HCL_TRY(host->col_sum(m->ctx, hcl_view(dout, 0, m->R * n * D),
                          hcl_pview(grad, m->R, m->n_params, m->rb_off, D), m->n_params, m->R, n, D,
                          1.0f, 0.0f));
  int cur = 0;
  HCL_TRY(back(m, dout, D, P, m->r_off + (L - 1 - first) * W, U, n, 0.0f, m->dh[cur]));
  for (size_t l = L; l-- > 0;) {
    const hcl_rn_layer *ly = &m->layers[l];
    hcl_buf dz = hcl_view(m->dh[cur], 0, span);
    HCL_TRY(host->act_backward(m->ctx, m->act, dz, hcl_view(m->z[l], 0, span), dz, m->R, n, W));
    HCL_TRY(outer(m, dz, W, l == 0 ? m->x_last : m->h[l - 1], ly->in, n, grad, ly->w_off, ly->in));
    if (ly->s_off != SIZE_MAX) HCL_TRY(outer(m, dz, W, m->x_last, m->d, n, grad, ly->s_off, m->d));
    if (ly->b_off != SIZE_MAX)
      HCL_TRY(host->col_sum(m->ctx, dz, hcl_pview(grad, m->R, m->n_params, ly->b_off, W),
                            m->n_params, m->R, n, W, 1.0f, 0.0f));
    if (l == 0) break;
    HCL_TRY(back(m, dz, W, P, ly->w_off, W, n, 0.0f, m->dh[1 - cur]));
    if (m->readout == HCL_RN_READOUT_ALL)
      HCL_TRY(back(m, dout, D, P, m->r_off + (l - 1) * W, U, n, 1.0f, m->dh[1 - cur]));
    cur = 1 - cur;
  }
  if (m->masked || m->sel_on) return hcl_rn_grad_post(m, params, grad);
  return HCL_OK;
}
