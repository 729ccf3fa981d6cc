/* resnet plugin: descriptor, declared parameters and entry point. */
#include "resnet.h"

#include <stddef.h>

const hcl_host_api *hcl_resnet_host;

static const char *const activations[] = {"relu", "leaky_relu", "quadratic", NULL};

static const hcl_param_desc params[] = {
    {"width", HCL_PARAM_INT, "40", 1, 1048576, NULL,
     "W: neurons of every hidden layer (the reference code's how_fat)"},
    {"depth", HCL_PARAM_INT, "5", 2, 4096, NULL,
     "L: number of Linear layers, >= 2: Linear(n->W)+act, L-2 residual blocks "
     "x <- act(Linear(x)) + x, Linear(W->out) (the reference code's num_layers)"},
    {"activation", HCL_PARAM_ENUM, "relu", 1, 0, activations,
     "act of every hidden layer: relu | leaky_relu (negative slope 0.1) | quadratic (z^2)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = hcl_resnet_create,
    .destroy = hcl_resnet_destroy,
    .n_params = hcl_resnet_n_params,
    .out_dim = hcl_resnet_out_dim,
    .blocks = hcl_resnet_blocks,
    .init = hcl_resnet_init,
    .forward = hcl_resnet_forward,
    .backward = hcl_resnet_backward,
    .features = hcl_resnet_features,
    .check = hcl_resnet_check,
};

static const hcl_plugin_desc desc = {
    .abi_version = HCL_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hcl_plugin_desc),
    .kind = HCL_PLUGIN_MODEL,
    .name = "resnet",
    .version = "1.0.0",
    .summary = "residual MLP of the staircase experiments (ReLUResNet): Linear(n->W)+act, "
               "L-2 blocks x <- act(Linear(x)) + x, Linear(W->out); PyTorch default init "
               "U(+-1/sqrt(fan_in)); (n=30, W=40, L=5): 6201 parameters",
    .citation = "E. Abbe, E. Boix-Adsera, M. Brennan, G. Bresler, D. Nagaraj, The staircase "
                "property: how hierarchical structure can guide deep learning, NeurIPS 2021, "
                "arXiv:2108.10573 (code: github sean-lo/staircase_boolean, ReLUResNet)",
    .params = params,
    .vt = &vt,
};

/* Accept a host table that has every function this plugin calls. */
static const hcl_plugin_desc *resnet_init(const hcl_host_api *host, const char **errmsg) {
  size_t need = offsetof(hcl_host_api, philox);
  if (!host || host->abi_version != HCL_PLUGIN_ABI_VERSION || host->struct_size < need) {
    *errmsg = "resnet: host API too old or of another ABI version";
    return NULL;
  }
  hcl_resnet_host = host;
  return &desc;
}

HCL_PLUGIN_ENTRY(resnet_init)
