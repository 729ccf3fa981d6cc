/* resnet: the staircase paper's residual MLP, as a worked example of a model
 * graph. A model plugin says three things: its parameters (named blocks of
 * one flat float vector per replica), how to initialise them, and its
 * forward pass as a graph. The runtime derives the backward pass, fuses the
 * elementwise chains, plans the buffers and runs both on the device for all
 * R replicas at once; the trainer, layer-wise phases and probes see an
 * ordinary model. */
#define HCL_PLUGIN_NEEDS g_output /* the host table with model graphs */
#include "hiercl/plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* 1. The [model] keys: the runtime validates and defaults them. The SDK's
 * hcl_host (set by HCL_PLUGIN_DEFINE below) is the runtime's function table. */
static const char *const acts[] = {"relu", "leaky_relu", "quadratic", NULL};
static const int act_of[] = {HCL_GACT_RELU, HCL_GACT_LEAKY_RELU, HCL_GACT_QUADRATIC};
static const hcl_param_desc params[] = {
    HCL_P_INT("width", "40", 1, 1048576,
              "W: neurons of every hidden layer (the reference code's how_fat)"),
    HCL_P_INT("depth", "5", 2, 4096,
              "L: number of Linear layers, >= 2: Linear(n->W)+act, L-2 residual blocks "
              "x <- act(Linear(x)) + x, Linear(W->out) (the reference code's num_layers)"),
    HCL_P_ENUM(
        "activation", "relu", acts,
        "act of every hidden layer: relu | leaky_relu (negative slope 0.1) | quadratic (z^2)"),
    HCL_P_END};

/* 2. One instance. Layer l is Linear(in -> out): layer 0 the input layer,
 * 1 .. L-2 the residual blocks, L-1 the readout. */
typedef struct resnet {
  hcl_ctx *ctx;
  size_t R, n_in, W, L, out_dim, n_params;
  int act; /* an hcl_graph_act */
  uint64_t *seeds;
  hcl_block *blocks; /* 2 L: weight [out, in] then bias [out] of each layer */
  char (*names)[32];
} resnet;

static void destroy(void *self) {
  resnet *m = self;
  if (m) free(m->seeds), free(m->blocks), free(m->names);
  free(m);
}

/* Keys and target -> sizes (the runtime checked the keys' bounds already;
 * create() checks again for callers that hand unchecked params). */
static hcl_status read(hcl_ctx *ctx, const hcl_params *p, const hcl_target_info *t, resnet *m) {
  m->W = p ? (size_t)hcl_host->param_int(p, "width") : 40;
  m->L = p ? (size_t)hcl_host->param_int(p, "depth") : 5;
  int a = p ? HCL_ENUM(p, "activation", acts) : 0;
  m->act = act_of[a < 0 ? 0 : a];
  m->n_in = hcl_shape_size(&t->x);
  m->out_dim = t->task == HCL_TASK_CLASSES ? t->n_classes : 1;
  if (m->W < 1 || m->L < 2 || !m->n_in || !m->out_dim)
    return hcl_host->fail(ctx, HCL_ERR_PARAM,
                          "width = %zu, depth = %zu, %zu inputs, %zu outputs: need "
                          "width >= 1, depth >= 2 (input layer and readout)",
                          m->W, m->L, m->n_in, m->out_dim);
  return HCL_OK;
}

/* 3. The parameter layout, PyTorch's order: each layer's weight [out, in]
 * then its bias; the group (layer index) lets layer-wise phases select. */
static hcl_status create(hcl_ctx *ctx, const hcl_setup *s, const hcl_target_info *t, void **self) {
  resnet *m = calloc(1, sizeof *m);
  if (!m) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status rc = read(ctx, s->params, t, m);
  m->ctx = ctx;
  m->R = s->replicas;
  m->seeds = malloc(m->R * sizeof *m->seeds);
  m->blocks = calloc(2 * m->L, sizeof *m->blocks);
  m->names = calloc(2 * m->L, sizeof *m->names);
  if (rc == HCL_OK && (!m->seeds || !m->blocks || !m->names))
    rc = hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t l = 0; rc == HCL_OK && l < m->L; l++) {
    size_t in = l ? m->W : m->n_in, out = l + 1 < m->L ? m->W : m->out_dim, i = 2 * l;
    char layer[24];
    snprintf(layer, sizeof layer, l == 0 ? "fc0" : l + 1 == m->L ? "out" : "block%zu", l);
    snprintf(m->names[i], sizeof m->names[i], "%s.weight", layer);
    snprintf(m->names[i + 1], sizeof m->names[i], "%s.bias", layer);
    m->blocks[i] = (hcl_block){m->names[i], m->n_params, out, in, (uint32_t)l, 1};
    m->blocks[i + 1] = (hcl_block){m->names[i + 1], m->n_params + out * in, out, 1, (uint32_t)l, 1};
    m->n_params += out * in + out;
  }
  /* Optional: refuse a model too large for the device naming its keys
   * (the runtime refuses its buffers too, without the keys). */
  char what[160];
  size_t one = m->R * s->max_batch * m->W * sizeof(float);
  snprintf(what, sizeof what,
           "activations of [model] depth = %zu x width = %zu for %zu "
           "replicas x %zu samples (the largest batch)",
           m->L, m->W, m->R, s->max_batch);
  if (rc == HCL_OK) rc = hcl_host->mem_check(ctx, one * (2 * m->L + 2), one, what);
  if (rc != HCL_OK) return destroy(m), rc;
  memcpy(m->seeds, s->seeds, m->R * sizeof *m->seeds);
  *self = m;
  return HCL_OK;
}

static size_t n_params(void *self) { return ((resnet *)self)->n_params; }
static size_t out_dim(void *self) { return ((resnet *)self)->out_dim; }
static const hcl_block *blocks(void *self, size_t *n) {
  *n = 2 * ((resnet *)self)->L;
  return ((resnet *)self)->blocks;
}

/* 4. PyTorch's nn.Linear init U(+-1/sqrt(fan_in)), drawn on the device: block
 * b uses stream tag + b of each replica's seed, so replica r's values do not
 * depend on R. params is [R, n_params]: a block of every replica is reached
 * with stride n_params. */
static hcl_status init(void *self, hcl_buf p) {
  resnet *m = self;
  for (size_t b = 0; b < 2 * m->L; b++) {
    const hcl_block *k = &m->blocks[b];
    float bound = (float)(1.0 / sqrt((double)m->blocks[b & ~(size_t)1].cols));
    hcl_buf view = hcl_pview(p, m->R, m->n_params, k->offset, k->rows * k->cols);
    HCL_TRY(hcl_host->rng(m->ctx, HCL_RNG_UNIFORM, -bound, bound, m->seeds, m->R,
                          0x7265736e65740000ull + b, 0, view, m->n_params, k->rows * k->cols));
  }
  return HCL_OK;
}

/* 5. The forward pass, once: h0 = act(x W0^T + b0), h_l = act(h_{l-1} Wl^T +
 * bl) + h_{l-1}, out = h_{L-2} W^T + b. Tensors carry the replica and batch
 * dimensions; builders check shapes (one error names the op) and the last
 * call returns the first error. bias + act + add become one kernel. */
static hcl_status graph(void *self, hcl_graph *g) {
  resnet *m = self;
  hcl_tensor h = hcl_host->g_input(g);
  for (size_t l = 0; l + 1 < m->L; l++) {
    hcl_tensor z =
        hcl_host->g_bias(g, hcl_host->g_matmul(g, h, m->names[2 * l]), m->names[2 * l + 1]);
    hcl_tensor a = hcl_host->g_act(g, z, m->act, NULL, 0);
    h = l ? hcl_host->g_add(g, a, h) : a;
    hcl_host->g_feature(g, h, l + 1); /* probes read hidden layer l+1 */
  }
  size_t o = 2 * (m->L - 1);
  return hcl_host->g_output(
      g, hcl_host->g_bias(g, hcl_host->g_matmul(g, h, m->names[o]), m->names[o + 1]));
}

/* 6. The descriptor: no forward or backward, the runtime supplies them. */
/* clang-format off */
static const hcl_model_vt vt = {.struct_size = sizeof vt, .create = create, .destroy = destroy,
    .n_params = n_params, .out_dim = out_dim, .blocks = blocks, .init = init,
    .graph = graph};
static const hcl_plugin_desc desc = {HCL_DESC_HEAD(HCL_PLUGIN_MODEL), .name = "resnet",
    .version = "2.0.0", .params = params, .vt = &vt,
    .summary = "residual MLP of the staircase experiments (ReLUResNet): Linear(n->W)+act, "
               "L-2 blocks x <- act(Linear(x)) + x, Linear(W->out); PyTorch default init "
               "U(+-1/sqrt(fan_in)); (n=30, W=40, L=5): 6201 parameters",
    .citation = "E. Abbe, E. Boix-Adsera, M. Brennan, G. Bresler, D. Nagaraj, The staircase "
                "property: how hierarchical structure can guide deep learning, NeurIPS 2021, "
                "arXiv:2108.10573 (code: github sean-lo/staircase_boolean, ReLUResNet)"};
/* clang-format on */

HCL_PLUGIN_DEFINE(resnet, desc)
