/* deep_cnn plugin: the network as a model graph (the runtime derives the
 * backward pass, fuses bias + ReLU into one kernel and plans the buffers),
 * and its variants: the truncated network of a layerwise stage, and the
 * fitted ridge chain that replaces the network after ridge_chain. */
#include "deep_cnn.h"

#include <stdio.h>

/* Convolution k (0-based) on h [P_{k-1} s, c_in]: patches [P_k, c_in s]
 * (PyTorch's weight order c*s + j), alpha U W^T, bias, ReLU -> [P_k, H]. */
static hcl_tensor conv(dcnn *m, hcl_graph *g, size_t k, hcl_tensor h) {
  const hcl_host_api *host = hcl_host;
  const dcnn_layer *ly = &m->layer[k];
  char name[32];
  snprintf(name, sizeof name, "conv%zu.weight", k + 1);
  hcl_tensor z = host->g_matmul_scaled(g, host->g_patch(g, h, m->s), name, ly->alpha);
  if (m->bias == DCNN_BIAS_NONE) return host->g_act(g, z, HCL_GACT_RELU, NULL, 0);
  snprintf(name, sizeof name, "conv%zu.bias", k + 1);
  if (m->bias == DCNN_BIAS_SHARED)
    return host->g_act(g, host->g_bias_scaled(g, z, name, m->bias_scale), HCL_GACT_RELU, NULL, 0);
  /* per position: one bias per (position, channel), so the sample's [P, H]
   * is one row of P*H channels for the bias */
  z = host->g_bias_scaled(g, host->g_reshape(g, z, 1, ly->P * m->H), name, m->bias_scale);
  return host->g_reshape(g, host->g_act(g, z, HCL_GACT_RELU, NULL, 0), ly->P, m->H);
}

/* The CNN: every convolution (features(k) is conv k's output [H, P_k]
 * flattened channels first, as PyTorch's [C, P]), then the readout on the
 * mean over the positions of layer `stage` (L but in a layerwise stage; the
 * layers above it are computed only for features(), the frozen ones below
 * train_from get no gradient). */
static hcl_status cnn_graph(dcnn *m, hcl_graph *g) {
  const hcl_host_api *host = hcl_host;
  /* the target's [v, d] is channels first: a transpose the first patches read through */
  hcl_tensor x = host->g_input(g);
  hcl_tensor h = host->g_transpose(g, host->g_reshape(g, x, m->v, m->d)), feat = HCL_GRAPH_BAD;
  for (size_t k = 0; k < m->L; k++) {
    size_t P = m->layer[k].P;
    if (k > 0 && k + 1 == m->train_from) h = host->g_detach(g, h);
    h = conv(m, g, k, h);
    HCL_TRY(host->g_feature(g, P > 1 ? host->g_transpose(g, h) : h, k + 1));
    if (k + 1 == m->stage) feat = P > 1 ? host->g_mean(g, h) : h;
  }
  hcl_tensor out = host->g_matmul_scaled(g, feat, "readout.weight", m->out_scale);
  if (m->has_rb) out = host->g_bias(g, out, "readout.bias");
  return host->g_output(g, out);
}

/* The fitted ridge chain as custom ops: level l's outputs (features(l)) and
 * the model output, computed by ridge.c's own kernels from the input. */
static hcl_status rop_forward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  (void)ctx;
  dcnn_rop *op = user;
  if (!op->level) return dcnn_ridge_forward(op->m, io->in[0], io->n, io->out);
  size_t dim;
  return dcnn_ridge_features(op->m, op->level, io->in[0], io->n, io->out, &dim);
}

static hcl_status rop_backward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  (void)io;
  (void)user;
  return hcl_host->fail(ctx, HCL_ERR_UNSUPPORTED,
                        "no gradient after ridge_chain (the fitted chain replaced the network)");
}

static const char *const rop_blocks[] = {"readout.weight", NULL}; /* so backward reaches it */

static hcl_status ridge_graph(dcnn *m, hcl_graph *g) {
  const hcl_host_api *host = hcl_host;
  hcl_tensor x = host->g_input(g);
  for (size_t l = 0; l <= m->L; l++) {
    dcnn_rop *op = &m->rops[l];
    op->m = m;
    op->level = l;
    op->op = (hcl_graph_custom){.struct_size = sizeof op->op,
                                .name = l ? "ridge_chain_level" : "ridge_chain",
                                .out_channels = l ? m->n_out * m->layer[l - 1].P : m->n_out,
                                .user = op,
                                .forward = rop_forward,
                                .backward = rop_backward,
                                .blocks = l ? NULL : rop_blocks};
  }
  for (size_t l = 1; l <= m->L; l++)
    HCL_TRY(host->g_feature(g, host->g_custom(g, &m->rops[l].op, &x, 1), l));
  return host->g_output(g, host->g_custom(g, &m->rops[0].op, &x, 1));
}

hcl_status dcnn_graph(void *self, hcl_graph *g) {
  dcnn *m = self;
  return m->rc.fitted ? ridge_graph(m, g) : cnn_graph(m, g);
}

int dcnn_graph_variant(void *self) {
  dcnn *m = self;
  if (m->rc.fitted) return 1;
  return m->stage == m->L && m->train_from == 1 ? 0 : 1 + (int)m->stage;
}
