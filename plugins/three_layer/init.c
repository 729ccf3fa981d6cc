/* three_layer plugin: initialisation from the replica seeds. Every quantity
 * has its own stream (TL_STREAM_TAG | k), so a replica's values depend only
 * on its seed, never on R or on another block. */
#include "three_layer.h"

#include <math.h>
#include <stdlib.h>

/* V rows uniform on the unit sphere: N(0, 1) draws on the device, each row
 * normalised on the host in double (so the bits do not depend on the
 * device's sqrt), written back. Once per run, so the round trip is cheap. */
static hcl_status init_v(tl_model *m, hcl_buf params) {
  const hcl_host_api *host = hcl_host;
  size_t count = m->m1 * m->d;
  HCL_TRY(host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, 1.0f, m->seeds, m->R, TL_STREAM_TAG | TL_STREAM_V,
                    0, hcl_pview(params, m->R, m->n_params, m->v_off, count), m->n_params, count));
  float *v = malloc(count * sizeof *v);
  if (!v) return host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status rc = HCL_OK;
  for (size_t r = 0; r < m->R && rc == HCL_OK; r++) {
    hcl_buf blk = hcl_view(params, r * m->n_params + m->v_off, count);
    rc = host->buf_read(m->ctx, blk, v, count * sizeof *v);
    for (size_t i = 0; i < m->m1 && rc == HCL_OK; i++) {
      float *row = v + i * m->d;
      double s = 0;
      for (size_t c = 0; c < m->d; c++) s += (double)row[c] * row[c];
      if (!(s > 0)) { /* all d draws zero: impossible for d >= 1 but for a broken rng */
        rc = host->fail(m->ctx, HCL_ERR_NUMERIC, "row %zu of V is zero (replica %zu)", i, r);
        break;
      }
      double inv = 1.0 / sqrt(s);
      for (size_t c = 0; c < m->d; c++) row[c] = (float)(row[c] * inv);
    }
    if (rc == HCL_OK) rc = host->buf_write(m->ctx, blk, v, count * sizeof *v);
  }
  free(v);
  return rc;
}

hcl_status tl_draw_b(tl_model *m, hcl_buf params, uint64_t stream) {
  float s = (float)m->b_scale;
  hcl_rng_dist dist = m->b_dist == TL_B_UNIFORM ? HCL_RNG_UNIFORM : HCL_RNG_NORMAL;
  float lo = m->b_dist == TL_B_UNIFORM ? -s : 0.0f;
  return hcl_host->rng(m->ctx, dist, lo, s, m->seeds, m->R, TL_STREAM_TAG | stream, 0,
                       hcl_pview(params, m->R, m->n_params, m->b_off, m->m2), m->n_params, m->m2);
}

/* V (three-layer) on the sphere; W ~ N(0, w_scale^2); b per b_dist; a = +-1. */
hcl_status tl_init(void *self, hcl_buf params) {
  tl_model *m = self;
  const hcl_host_api *host = hcl_host;
  if (!m->two_layer) HCL_TRY(init_v(m, params));
  size_t wc = m->m2 * tl_phi_dim(m);
  HCL_TRY(host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, (float)m->w_scale, m->seeds, m->R,
                    TL_STREAM_TAG | TL_STREAM_W, 0,
                    hcl_pview(params, m->R, m->n_params, m->w_off, wc), m->n_params, wc));
  HCL_TRY(tl_draw_b(m, params, TL_STREAM_B));
  size_t ac = m->m2 * m->D;
  return host->rng(m->ctx, HCL_RNG_RADEMACHER, 0.0f, 0.0f, m->seeds, m->R,
                   TL_STREAM_TAG | TL_STREAM_A, 0,
                   hcl_pview(params, m->R, m->n_params, m->a_off, ac), m->n_params, ac);
}
