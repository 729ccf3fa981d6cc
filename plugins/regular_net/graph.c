/* regular_net plugin: the forward pass as a model graph (the runtime derives
 * backward and features), and the two hooks around it: the connectivity
 * masks on the parameters the graph reads, and on its gradient the masks
 * again plus the coordinate-descent selection and penalties. */
#include "regular_net.h"

#include <stdio.h>

/* h_l = act(h_{l-1} W_l^T (+ x S_l^T) (+ b_l)), then out = the read-out
 * layers times their column windows of readout.weight (+ c). */
hcl_status hcl_rn_graph(void *self, hcl_graph *g) {
  hcl_rn *m = self;
  const hcl_host_api *host = hcl_host;
  if (!HCL_HOST_HAS(g_matmul_cols) || !HCL_HOST_HAS(train_forward))
    return host->fail(m->ctx, HCL_ERR_ABI,
                      "the runtime lacks g_matmul_cols or train_forward (older than this plugin)");
  char name[48];
  int act = hcl_graph_act_of(m->act);
  hcl_tensor x = host->g_input(g), h = x, out = HCL_GRAPH_BAD;
  size_t first = m->readout == HCL_RN_READOUT_ALL ? 0 : m->L - 1;
  for (size_t l = 0; l < m->L; l++) {
    snprintf(name, sizeof name, "layer%zu.weight", l + 1);
    hcl_tensor z = host->g_matmul(g, h, name);
    if (m->layers[l].s_off != SIZE_MAX) {
      snprintf(name, sizeof name, "layer%zu.skip", l + 1);
      z = host->g_add(g, z, host->g_matmul(g, x, name));
    }
    if (m->layers[l].b_off != SIZE_MAX) {
      snprintf(name, sizeof name, "layer%zu.bias", l + 1);
      z = host->g_bias(g, z, name);
    }
    h = act ? host->g_act(g, z, act, NULL, 0) : z;
    HCL_TRY(host->g_feature(g, h, l + 1));
    if (l < first) continue;
    hcl_tensor r = host->g_matmul_cols(g, h, "readout.weight", (l - first) * m->W);
    out = l == first ? r : host->g_add(g, out, r);
  }
  if (m->rb_off != SIZE_MAX) out = host->g_bias(g, out, "readout.bias");
  return host->g_output(g, out);
}

hcl_status hcl_rn_graph_params(void *self, hcl_buf params, hcl_buf *use) {
  hcl_rn *m = self;
  *use = params;
  if (!m->masked) return HCL_OK;
  *use = m->eff;
  return hcl_rn_apply_mask(m, params, m->eff);
}

hcl_status hcl_rn_graph_grad(void *self, hcl_buf params, hcl_buf grad) {
  hcl_rn *m = self;
  if (m->masked || m->sel_on) return hcl_rn_grad_post(m, params, grad);
  return HCL_OK;
}

int hcl_rn_graph_plain(void *self) {
  const hcl_rn *m = self;
  return !m->masked && !m->sel_on;
}
