/* resnet plugin: PyTorch's default nn.Linear initialisation on the device. */
#include "resnet.h"

#include <math.h>

/* Weight and bias of layer l ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), one draw
 * per block covering every replica: block b uses stream STREAM_BASE + b of
 * each replica's seed, so a replica's values do not depend on R. */
hcl_status hcl_resnet_init(void *self, hcl_buf params) {
  hcl_resnet *m = self;
  const hcl_host_api *host = hcl_resnet_host;
  for (size_t b = 0; b < 2 * m->depth; b++) {
    const hcl_block *blk = &m->blocks[b];
    size_t count = blk->rows * blk->cols;
    float bound = (float)(1.0 / sqrt((double)m->in_dim[b / 2]));
    hcl_status rc = host->rng(m->ctx, HCL_RNG_UNIFORM, -bound, bound, m->seeds, m->R,
                              HCL_RESNET_STREAM_BASE + b, 0,
                              hcl_resnet_pview(m, params, blk->offset, count), m->n_params, count);
    if (rc != HCL_OK) return rc;
  }
  return HCL_OK;
}
