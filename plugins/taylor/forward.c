/* taylor plugin: representation, forward pass and features. */
#include "taylor.h"

#include <math.h>

/* Float offset of a buffer region (offsets are whole floats by contract). */
static cl_ulong fo(hcl_buf b) { return (cl_ulong)(b.offset / sizeof(float)); }

hcl_status hcl_taylor_hidden(hcl_taylor *m, hcl_buf params, hcl_buf x, size_t n) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, d = m->d, D = m->D;
  hcl_buf g = hcl_view(m->zb, 0, R * n * D);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, D, d, 1.0f, hcl_view(x, 0, R * n * d), d, n * d,
                              hcl_taylor_pview(m, params, HCL_TAYLOR_B_V), d, m->n_params, 0.0f, g,
                              D, n * D, R));
  return host->bias_act(m->ctx, HCL_ACT_RELU, g, hcl_taylor_pview(m, params, HCL_TAYLOR_B_BIAS),
                        m->n_params, hcl_view(m->hb, 0, R * n * D), R, n, D);
}

/* z = h M + c with M = Sigma^{-1/2} (symmetric) and c = -mu M, so that
 * z = (h - mu) Sigma^{-1/2}: one SGEMM and one broadcast add. */
hcl_status hcl_taylor_represent(hcl_taylor *m, hcl_buf params, hcl_buf x, size_t n) {
  if (!m->neural) return HCL_OK;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, D = m->D;
  HCL_TRY(hcl_taylor_hidden(m, params, x, n));
  hcl_buf z = hcl_view(m->zb, 0, R * n * D);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, n, D, D, 1.0f, hcl_view(m->hb, 0, R * n * D), D, n * D,
                              hcl_taylor_pview(m, params, HCL_TAYLOR_B_WHITEN), D, m->n_params,
                              0.0f, z, D, n * D, R));
  return host->bias_act(m->ctx, HCL_ACT_IDENTITY, z,
                        hcl_taylor_pview(m, params, HCL_TAYLOR_B_OFFSET), m->n_params, z, R, n, D);
}

hcl_buf hcl_taylor_z(const hcl_taylor *m, size_t n) {
  return m->neural ? hcl_view(m->zb, 0, m->R * n * m->D) : hcl_view(m->x_last, 0, m->R * n * m->d);
}

static hcl_status check_n(hcl_taylor *m, size_t n) {
  if (n > m->max_batch)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM, "batch %zu > max_batch %zu", n, m->max_batch);
  return HCL_OK;
}

/* P [R, n, m] = z W^T / sqrt(dz) for the block W [m, dz] of params: the
 * model sees z/sqrt(dz), of unit norm on either representation (the paper's
 * inputs on the unit sphere), so one lr and init mean the same on both and
 * at every d (with z itself the curvature grew like dz). */
static hcl_status project(hcl_taylor *m, hcl_buf params, int blk, hcl_buf z, size_t n, hcl_buf p) {
  size_t dz = m->dz, w = m->m;
  float s = (float)(1.0 / sqrt((double)dz));
  return hcl_host->sgemm_batched(m->ctx, 0, 1, n, w, dz, s, z, dz, n * dz,
                                 hcl_taylor_pview(m, params, blk), dz, m->n_params, 0.0f,
                                 hcl_view(p, 0, m->R * n * w), w, n * w, m->R);
}

hcl_status hcl_taylor_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  HCL_TRY(check_n(m, n));
  m->x_last = x;
  m->n_last = n;
  m->have_forward = 1;
  if (n == 0) return HCL_OK;
  if (out.size && out.size < m->R * n * sizeof(float))
    return host->fail(m->ctx, HCL_ERR_PARAM, "out holds %zu bytes, %zu floats needed", out.size,
                      m->R * n);
  HCL_TRY(hcl_taylor_represent(m, params, x, n));
  hcl_buf z = hcl_taylor_z(m, n);
  HCL_TRY(project(m, params, HCL_TAYLOR_B_W0, z, n, m->cb));
  HCL_TRY(project(m, params, HCL_TAYLOR_B_W, z, n, m->sb));
  cl_ulong co = fo(m->cb), so = fo(m->sb), ao = fo(params) + m->off[HCL_TAYLOR_B_A];
  cl_ulong ps = m->n_params, oo = fo(out);
  cl_uint nn = (cl_uint)n, mm = (cl_uint)m->m, order = (cl_uint)m->order, act = (cl_uint)m->act;
  cl_float inv = (cl_float)(1.0 / sqrt((double)m->m));
  cl_ulong rows = m->R * n;
  hcl_arg args[] = {HCL_ARG(m->cb.mem), HCL_ARG(co),         HCL_ARG(m->sb.mem),
                    HCL_ARG(so),        HCL_ARG(params.mem), HCL_ARG(ao),
                    HCL_ARG(ps),        HCL_ARG(out.mem),    HCL_ARG(oo),
                    HCL_ARG(nn),        HCL_ARG(mm),         HCL_ARG(order),
                    HCL_ARG(act),       HCL_ARG(inv),        {m->wg * sizeof(float), NULL}};
  if (m->head_rows) { /* the last argument is the row count, not local memory */
    args[14] = HCL_ARG(rows);
    size_t gws = rows;
    return host->run_kernel(m->ctx, m->k_head, 1, &gws, NULL, "taylor_head",
                            sizeof args / sizeof *args, args);
  }
  size_t gws = m->wg * m->R * n, lws = m->wg;
  return host->run_kernel(m->ctx, m->k_head, 1, &gws, &lws, "taylor_head",
                          sizeof args / sizeof *args, args);
}

/* Layer 1 is the model's input z [R, n, dz]: the whitened representation
 * (neural) or x itself (raw). It reuses the forward buffers, so a backward
 * must follow a new forward. */
hcl_status hcl_taylor_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n,
                               hcl_buf out, size_t *dim) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  if (layer != 1)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "features of layer %zu: only layer 1 (the input z) exists", layer);
  HCL_TRY(check_n(m, n));
  *dim = m->dz;
  if (n == 0) return HCL_OK;
  size_t span = m->R * n * m->dz;
  if (!m->neural)
    return host->buf_copy(m->ctx, hcl_view(out, 0, span), hcl_view(x, 0, span),
                          span * sizeof(float));
  m->have_forward = 0;
  HCL_TRY(hcl_taylor_represent(m, params, x, n));
  return host->buf_copy(m->ctx, hcl_view(out, 0, span), hcl_view(m->zb, 0, span),
                        span * sizeof(float));
}
