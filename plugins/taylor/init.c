/* taylor plugin: initialisation from the replica seeds, on the device. */
#include "taylor.h"

#include <math.h>

/* One draw per block covering every replica, from the block's own stream of
 * each replica's seed, so a replica's values do not depend on R. */
static hcl_status draw(hcl_taylor *m, hcl_buf params, int blk, hcl_rng_dist dist, double a,
                       double b, uint64_t stream) {
  const hcl_block *bl = &m->blocks[blk];
  return hcl_host->rng(m->ctx, dist, (float)a, (float)b, m->seeds, m->R,
                       HCL_TAYLOR_STREAM_BASE + stream, 0, hcl_taylor_pview(m, params, blk),
                       m->n_params, bl->rows * bl->cols);
}

/* w ~ N(0, init_std^2), w0 ~ N(0, w0_std^2), a ~ +-1; neural: V ~ N(0, 1/d),
 * b ~ N(0, rep_bias^2), and the whitening blocks zero (not fitted yet: the
 * model outputs 0 until algorithm gd fits them). */
hcl_status hcl_taylor_init(void *self, hcl_buf params) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  m->fitted_mem = NULL;
  /* the model sees z/sqrt(dz), of unit norm (graph.c): w_r . z/sqrt(dz) is
   * about init_std and w0_r . z/sqrt(dz) about N(0, w0_std^2) on either
   * representation and at every d */
  HCL_TRY(draw(m, params, HCL_TAYLOR_B_W, HCL_RNG_NORMAL, 0.0, m->init_std, HCL_TAYLOR_STREAM_W));
  HCL_TRY(draw(m, params, HCL_TAYLOR_B_W0, HCL_RNG_NORMAL, 0.0, m->w0_std, HCL_TAYLOR_STREAM_W0));
  HCL_TRY(draw(m, params, HCL_TAYLOR_B_A, HCL_RNG_RADEMACHER, 0.0, 0.0, HCL_TAYLOR_STREAM_A));
  if (!m->neural) return HCL_OK;
  HCL_TRY(draw(m, params, HCL_TAYLOR_B_V, HCL_RNG_NORMAL, 0.0, 1.0 / sqrt((double)m->d),
               HCL_TAYLOR_STREAM_V));
  HCL_TRY(
      draw(m, params, HCL_TAYLOR_B_BIAS, HCL_RNG_NORMAL, 0.0, m->rep_bias, HCL_TAYLOR_STREAM_B));
  size_t first = m->off[HCL_TAYLOR_B_WHITEN], tail = m->n_params - first;
  for (size_t r = 0; r < m->R; r++)
    HCL_TRY(host->fill(m->ctx, hcl_view(params, r * m->n_params + first, tail), 0.0f, tail));
  return HCL_OK;
}
