/* three_layer plugin: the forward pass as a model graph. The runtime derives
 * backward (only through the trained blocks: V, and W or b when frozen, cost
 * nothing) and features from it:
 *   phi = sigma1(x V^T) / sqrt(m1)   (two_layer: x / sqrt(d))   layer 1
 *   h   = sigma2(phi W^T + b)                                    layer 2 (two_layer: 1)
 *   out = h a / m2                                               custom op
 * The readout is a custom op because block a is stored [m2, D] (inputs by
 * outputs, the layout the ridge stage solves for), where g_matmul reads a
 * block [outputs, inputs]; its SGEMMs carry the 1/m2 as alpha, as the
 * hand-written pass did, so no scaling kernel runs. */
#include "three_layer.h"

#include <math.h>

static const char *const readout_blocks[] = {"a", NULL};

/* out [n, D] = h [n, m2] a [m2, D] / m2, per replica. */
static hcl_status readout_forward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  tl_model *m = user;
  size_t m2 = m->m2, D = m->D, n = io->n;
  return hcl_host->sgemm_batched(ctx, 0, 0, n, D, m2, (float)(1.0 / (double)m2), io->in[0], m2,
                                 n * m2, io->param[0], D, io->param_stride, 0.0f, io->out, D, n * D,
                                 io->R);
}

/* grad a += h^T dout / m2; dh += dout a^T / m2 (when h needs a gradient). */
static hcl_status readout_backward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  tl_model *m = user;
  const hcl_host_api *host = hcl_host;
  size_t m2 = m->m2, D = m->D, n = io->n;
  float inv_m2 = (float)(1.0 / (double)m2);
  HCL_TRY(host->sgemm_batched(ctx, 1, 0, m2, D, n, inv_m2, io->in[0], m2, n * m2, io->out, D, n * D,
                              1.0f, io->dparam[0], D, io->param_stride, io->R));
  if (!io->din[0].mem) return HCL_OK;
  return host->sgemm_batched(ctx, 0, 1, n, m2, D, inv_m2, io->out, D, n * D, io->param[0], D,
                             io->param_stride, 1.0f, io->din[0], m2, n * m2, io->R);
}

/* c z, elementwise: a polynomial {0, c}, fused into the activation before it
 * (the same bits as the scaling axpby of the hand-written pass). */
static hcl_tensor scale(hcl_graph *g, hcl_tensor t, double c) {
  const float coef[2] = {0.0f, (float)c};
  return hcl_host->g_act(g, t, HCL_GACT_POLY, coef, 2);
}

hcl_status tl_graph(void *self, hcl_graph *g) {
  tl_model *m = self;
  const hcl_host_api *host = hcl_host;
  m->readout = (hcl_graph_custom){.struct_size = sizeof m->readout,
                                  .name = "three_layer_readout",
                                  .out_channels = m->D,
                                  .user = m,
                                  .forward = readout_forward,
                                  .backward = readout_backward,
                                  .blocks = readout_blocks};
  hcl_tensor x = host->g_input(g), phi;
  if (m->two_layer) {
    phi = scale(g, x, 1.0 / sqrt((double)m->d));
  } else {
    hcl_tensor z1 = host->g_matmul(g, x, "V");
    int act = hcl_graph_act_of(m->act1);
    phi = scale(g, act ? host->g_act(g, z1, act, NULL, 0) : z1, 1.0 / sqrt((double)m->m1));
    HCL_TRY(host->g_feature(g, phi, 1));
  }
  hcl_tensor z2 = host->g_bias(g, host->g_matmul(g, phi, "W"), "b");
  hcl_tensor h = host->g_act(g, z2, hcl_graph_act_of(m->act2), NULL, 0);
  HCL_TRY(host->g_feature(g, h, m->two_layer ? 1 : 2));
  return host->g_output(g, host->g_custom(g, &m->readout, &h, 1));
}

hcl_status tl_phi(tl_model *m, hcl_trainer *t, hcl_probe *p, hcl_buf x, size_t n) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, d = m->d, k = tl_phi_dim(m), dim = 0;
  if (m->two_layer) /* no layer of the graph is phi itself */
    return host->axpby(m->ctx, (float)(1.0 / sqrt((double)d)), hcl_view(x, 0, R * n * d), 0.0f,
                       hcl_view(m->phi, 0, R * n * d), R * n * d);
  hcl_buf out = hcl_view(m->phi, 0, R * n * k);
  HCL_TRY(t ? host->train_features(t, 1, x, n, out, &dim)
            : host->probe_features(p, 1, x, n, out, &dim));
  if (dim != k)
    return host->fail(m->ctx, HCL_ERR_PARAM, "layer 1 has %zu features, phi has %zu", dim, k);
  return HCL_OK;
}
