/* deep_cnn plugin: forward pass and hidden features. */
#include "deep_cnn.h"

static const hcl_buf no_buf;

/* The bias of layer k as bias_act reads it: the parameter block itself, or
 * (mf) a scaled copy in m->bs, since the reference adds 0.1 * b. */
static hcl_status layer_bias(dcnn *m, size_t k, hcl_buf params, hcl_buf *bias, size_t *stride) {
  dcnn_layer *ly = &m->layer[k];
  if (m->bias_scale == 1.0f) {
    *bias = hcl_pview(params, m->R, m->n_params, ly->b_off, ly->b_count);
    *stride = m->n_params;
    return HCL_OK;
  }
  *bias = hcl_view(m->bs, 0, m->R * ly->b_count);
  *stride = ly->b_count;
  return dcnn_scale_copy(m, params, ly->b_off, ly->b_count, m->bias_scale, *bias);
}

/* Layer k (0-based) on its input (x for k = 0, A_{k-1} above): patches,
 * one batched SGEMM Z = alpha U W^T, bias, ReLU. */
static hcl_status conv(dcnn *m, size_t k, hcl_buf params, hcl_buf x, size_t n) {
  const hcl_host_api *host = hcl_host;
  dcnn_layer *ly = &m->layer[k];
  size_t H = m->H, s = m->s, cs = ly->c_in * s, rows = n * ly->P, R = m->R;
  hcl_buf U = hcl_view(ly->U, 0, R * rows * cs);
  if (k == 0) {
    HCL_TRY(dcnn_im2col(m, x, n * m->v * m->d, m->v * m->d, m->d, 1, U, n, ly->P, m->v, s));
  } else {
    const dcnn_layer *below = &m->layer[k - 1];
    HCL_TRY(dcnn_im2col(m, below->A, n * below->P * H, below->P * H, 1, H, U, n, ly->P, H, s));
  }
  hcl_buf Z = hcl_view(ly->Z, 0, R * rows * H), A = hcl_view(ly->A, 0, R * rows * H);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, rows, H, cs, ly->alpha, U, cs, rows * cs,
                              hcl_pview(params, m->R, m->n_params, ly->w_off, H * cs), cs,
                              m->n_params, 0.0f, Z, H, rows * H, R));
  if (m->bias == DCNN_BIAS_NONE)
    return host->bias_act(m->ctx, HCL_ACT_RELU, Z, no_buf, 0, A, R, rows, H);
  hcl_buf bias;
  size_t stride;
  HCL_TRY(layer_bias(m, k, params, &bias, &stride));
  if (m->bias == DCNN_BIAS_SHARED)
    return host->bias_act(m->ctx, HCL_ACT_RELU, Z, bias, stride, A, R, rows, H);
  /* per position: each sample's [P, H] is one row of P*H columns */
  return host->bias_act(m->ctx, HCL_ACT_RELU, Z, bias, stride, A, R, n, ly->P * H);
}

hcl_status dcnn_conv_layers(dcnn *m, hcl_buf params, hcl_buf x, size_t n, size_t upto) {
  for (size_t k = 0; k < upto; k++) HCL_TRY(conv(m, k, params, x, n));
  return HCL_OK;
}

hcl_status dcnn_flatten_cf(dcnn *m, hcl_buf a, hcl_buf out, size_t n, size_t P, size_t C) {
  /* one "patch" spanning every position: column c*P + p */
  return dcnn_im2col(m, a, n * P * C, P * C, 1, C, out, n, 1, C, P);
}

/* The features the readout sees after layer `stage`: A itself when one
 * position is left, else its mean over positions (in m->g). */
static hcl_status pooled(dcnn *m, size_t stage, size_t n, hcl_buf *feat) {
  const dcnn_layer *ly = &m->layer[stage - 1];
  size_t span = m->R * n * m->H;
  if (ly->P == 1) {
    *feat = hcl_view(ly->A, 0, span);
    return HCL_OK;
  }
  *feat = hcl_view(m->g, 0, span);
  return dcnn_pool(m, ly->A, *feat, m->R * n, ly->P, m->H, 1.0f / (float)ly->P);
}

static hcl_status check_n(dcnn *m, size_t n) {
  if (n > m->max_batch)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM, "batch %zu > max_batch %zu", n, m->max_batch);
  return HCL_OK;
}

hcl_status dcnn_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  dcnn *m = self;
  const hcl_host_api *host = hcl_host;
  HCL_TRY(check_n(m, n));
  m->n_last = n;
  m->have_forward = 1;
  if (n == 0) return HCL_OK;
  if (m->rc.fitted) return dcnn_ridge_forward(m, x, n, out);
  HCL_TRY(dcnn_conv_layers(m, params, x, n, m->stage));
  hcl_buf feat;
  HCL_TRY(pooled(m, m->stage, n, &feat));
  size_t D = m->n_out, H = m->H;
  hcl_buf o = hcl_view(out, 0, m->R * n * D);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, D, H, m->out_scale, feat, H, n * H,
                              hcl_pview(params, m->R, m->n_params, m->ro_off, D * H), H,
                              m->n_params, 0.0f, o, D, n * D, m->R));
  if (!m->has_rb) return HCL_OK;
  return host->bias_act(m->ctx, HCL_ACT_IDENTITY, o,
                        hcl_pview(params, m->R, m->n_params, m->rb_off, D), m->n_params, o, m->R, n,
                        D);
}

/* Layer `layer` (1 .. L): the ReLU output of convolution `layer`, [H, P]
 * flattened channels first (H * d / s^layer floats per sample). It reuses
 * the forward buffers, so a backward must follow a new forward. */
hcl_status dcnn_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                         size_t *dim) {
  dcnn *m = self;
  if (layer < 1 || layer > m->L)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM, "features of layer %zu: expected 1 to %zu", layer,
                          m->L);
  HCL_TRY(check_n(m, n));
  m->have_forward = 0;
  if (m->rc.fitted) return dcnn_ridge_features(m, layer, x, n, out, dim);
  const dcnn_layer *ly = &m->layer[layer - 1];
  *dim = m->H * ly->P;
  if (n == 0) return HCL_OK;
  HCL_TRY(dcnn_conv_layers(m, params, x, n, layer));
  return dcnn_flatten_cf(m, ly->A, hcl_view(out, 0, m->R * n * *dim), n, ly->P, m->H);
}
