/* regular_net plugin: connectivity masks and parameter initialisation, drawn
 * on the device from each replica's seed (a replica's values do not depend on R). */
#include "regular_net.h"

#include <math.h>
#include <stdint.h>

/* Stream index of a layer's part (0 weight, 1 skip, 2 bias; l 0-based) and
 * of the readout's parts: fixed by the network's structure, not by the block
 * order, so toggling a bias does not re-draw the other blocks. */
static uint64_t part_index(size_t l, unsigned part) { return ((uint64_t)l << 2) | part; }
#define READOUT_INDEX(part) (0xFFFF00u | (part))

/* Bernoulli(p) 0/1 floats into the [W, cols] block at off of every replica. */
static hcl_status draw_mask(hcl_rn *m, size_t off, size_t cols, double p, uint64_t index) {
  if (p >= 1.0) return HCL_OK; /* cmask is 1 already */
  return hcl_host->rng(m->ctx, HCL_RNG_BERNOULLI, (float)p, 0.0f, m->seeds, m->R,
                       HCL_RN_STREAM(HCL_RN_DRAW_MASK, index), 0,
                       hcl_pview(m->cmask, m->R, m->n_params, off, m->W * cols), m->n_params,
                       m->W * cols);
}

/* Entry (v, i) of layer l's weights from the previous layer is present with
 * probability p1 (layer 1: its weights come from the inputs, p2); entries of
 * a skip block with probability p2. Everything else (biases, readout) is 1. */
hcl_status hcl_rn_draw_masks(hcl_rn *m) {
  HCL_TRY(hcl_host->fill(m->ctx, m->cmask, 1.0f, m->R * m->n_params));
  for (size_t l = 0; l < m->L; l++) {
    const hcl_rn_layer *ly = &m->layers[l];
    HCL_TRY(draw_mask(m, ly->w_off, ly->in, ly->w_from_input ? m->p2 : m->p1, part_index(l, 0)));
    if (ly->s_off != SIZE_MAX) HCL_TRY(draw_mask(m, ly->s_off, m->d, m->p2, part_index(l, 1)));
  }
  return HCL_OK;
}

/* One block of every replica: U(-b, b) for uniform_fan_in, N(0, b^2) for
 * normal (b = scale / sqrt(fan_in)); zeros stay from the initial fill. */
static hcl_status draw_block(hcl_rn *m, hcl_buf params, size_t off, size_t count, double fan_in,
                             int is_bias, uint64_t index) {
  const hcl_host_api *host = hcl_host;
  hcl_buf v = hcl_pview(params, m->R, m->n_params, off, count);
  uint64_t stream = HCL_RN_STREAM(HCL_RN_DRAW_INIT, index);
  if (m->init == HCL_RN_INIT_UNIFORM) {
    float b = (float)(1.0 / sqrt(fan_in));
    return host->rng(m->ctx, HCL_RNG_UNIFORM, -b, b, m->seeds, m->R, stream, 0, v, m->n_params,
                     count);
  }
  if (m->init == HCL_RN_INIT_NORMAL && !is_bias) {
    float s = (float)(m->init_scale / sqrt(fan_in));
    return host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, s, m->seeds, m->R, stream, 0, v, m->n_params,
                     count);
  }
  return HCL_OK;
}

/* The +-v readout: units 0 .. U/2-1 get +v, the rest -v, v = 1/sqrt(U). */
static hcl_status pm_v(hcl_rn *m, hcl_buf params) {
  const hcl_host_api *host = hcl_host;
  size_t k = m->U / 2;
  float v = (float)(1.0 / sqrt((double)m->U));
  for (size_t r = 0; r < m->R; r++) {
    size_t at = r * m->n_params + m->r_off;
    HCL_TRY(host->fill(m->ctx, hcl_view(params, at, k), v, k));
    HCL_TRY(host->fill(m->ctx, hcl_view(params, at + k, k), -v, k));
  }
  return HCL_OK;
}

/* uniform_fan_in: PyTorch's nn.Linear default, U(+-1/sqrt(fan_in)) for weights
 * and biases, fan_in the full layer's connections (in, plus d with a skip;
 * U for the readout) whatever the masks; normal: weights N(0, scale^2/fan_in),
 * biases 0; zero: all 0. Then absent connections are set to 0. */
hcl_status hcl_rn_init(void *self, hcl_buf params) {
  hcl_rn *m = self;
  const hcl_host_api *host = hcl_host;
  HCL_TRY(host->fill(m->ctx, hcl_view(params, 0, m->R * m->n_params), 0.0f, m->R * m->n_params));
  for (size_t l = 0; l < m->L; l++) {
    const hcl_rn_layer *ly = &m->layers[l];
    HCL_TRY(draw_block(m, params, ly->w_off, m->W * ly->in, ly->fan_in, 0, part_index(l, 0)));
    if (ly->s_off != SIZE_MAX)
      HCL_TRY(draw_block(m, params, ly->s_off, m->W * m->d, ly->fan_in, 0, part_index(l, 1)));
    if (ly->b_off != SIZE_MAX)
      HCL_TRY(draw_block(m, params, ly->b_off, m->W, ly->fan_in, 1, part_index(l, 2)));
  }
  if (m->fixed == HCL_RN_FIXED_PM_V)
    HCL_TRY(pm_v(m, params));
  else
    HCL_TRY(draw_block(m, params, m->r_off, m->D * m->U, (double)m->U, 0, READOUT_INDEX(0)));
  if (m->rb_off != SIZE_MAX)
    HCL_TRY(draw_block(m, params, m->rb_off, m->D, (double)m->U, 1, READOUT_INDEX(1)));
  if (m->masked) HCL_TRY(hcl_rn_apply_mask(m, params, params));
  return HCL_OK;
}
