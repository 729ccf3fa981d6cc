/* deep_cnn plugin: parameter initialisation on the device. */
#include "deep_cnn.h"

#include <math.h>

/* One block of every replica: mf draws N(0, 1) (the reference's torch.randn),
 * standard draws U(+-1/sqrt(fan_in)) (PyTorch's Conv1d / Linear default). */
static hcl_status draw(dcnn *m, hcl_buf params, size_t off, size_t count, size_t fan_in,
                       uint64_t stream) {
  const hcl_host_api *host = hcl_host;
  hcl_buf view = hcl_pview(params, m->R, m->n_params, off, count);
  if (m->mf)
    return host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, 1.0f, m->seeds, m->R, stream, 0, view,
                     m->n_params, count);
  float bound = (float)(1.0 / sqrt((double)fan_in));
  return host->rng(m->ctx, HCL_RNG_UNIFORM, -bound, bound, m->seeds, m->R, stream, 0, view,
                   m->n_params, count);
}

hcl_status dcnn_init_readout(dcnn *m, hcl_buf params, uint64_t stream_w, uint64_t stream_b) {
  HCL_TRY(draw(m, params, m->ro_off, m->n_out * m->H, m->H, stream_w));
  if (m->has_rb) HCL_TRY(draw(m, params, m->rb_off, m->n_out, m->H, stream_b));
  return HCL_OK;
}

/* Block b draws from stream DCNN_STREAM_INIT + b of each replica's seed, so
 * a replica's values do not depend on R. */
hcl_status dcnn_init(void *self, hcl_buf params) {
  dcnn *m = self;
  dcnn_ridge_release(m); /* new parameters: a fitted ridge chain no longer applies */
  size_t b = 0;
  for (size_t k = 0; k < m->L; k++) {
    dcnn_layer *ly = &m->layer[k];
    size_t fan_in = ly->c_in * m->s;
    HCL_TRY(draw(m, params, ly->w_off, m->H * fan_in, fan_in, DCNN_STREAM_INIT + b++));
    if (m->bias != DCNN_BIAS_NONE)
      HCL_TRY(draw(m, params, ly->b_off, ly->b_count, fan_in, DCNN_STREAM_INIT + b++));
  }
  uint64_t sw = DCNN_STREAM_INIT + b;
  return dcnn_init_readout(m, params, sw, sw + 1);
}
