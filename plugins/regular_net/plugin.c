/* regular_net plugin: descriptor, declared parameters and entry point. */
#include "regular_net.h"

#include <stddef.h>

const hcl_host_api *hcl_rn_host;

static const char *const activations[] = {"relu", "leaky_relu", "quadratic",
                                          "tanh", "identity",   NULL};
static const char *const readouts[] = {"last", "all", NULL};
static const char *const fixed[] = {"none", "pm_v", NULL};
static const char *const inits[] = {"uniform_fan_in", "normal", "zero", NULL};

static const hcl_param_desc params[] = {
    {"width", HCL_PARAM_INT, "64", 1, 1048576, NULL, "W: neurons of every hidden layer"},
    {"depth", HCL_PARAM_INT, "2", 1, 4096, NULL,
     "L: hidden layers (>= 1); a linear readout follows the last one"},
    {"activation", HCL_PARAM_ENUM, "relu", 1, 0, activations,
     "act of every hidden neuron: relu | leaky_relu (negative slope 0.1) | quadratic (z^2) | "
     "tanh | identity"},
    {"p1", HCL_PARAM_DOUBLE, "1", 0, 1, NULL,
     "probability that a neuron of layer l >= 2 sees a given neuron of layer l-1 (layer.weight "
     "entries); masks drawn once per replica seed"},
    {"p2", HCL_PARAM_DOUBLE, "1", 0, 1, NULL,
     "probability that a neuron sees a given input coordinate: layer1.weight entries, and the "
     "layer<l>.skip entries of layers l >= 2 (p1 = p2 = 1: fully connected)"},
    {"input_skip", HCL_PARAM_BOOL, "true", 1, 0, NULL,
     "layers l >= 2 also see the inputs (block layer<l>.skip [W, d], masked by p2), as in the "
     "regular networks of Abbe et al.; false: a plain MLP"},
    {"bias", HCL_PARAM_BOOL, "true", 1, 0, NULL, "hidden neurons have a bias (layer<l>.bias)"},
    {"readout", HCL_PARAM_ENUM, "last", 1, 0, readouts,
     "linear readout over the last layer (last, U = W units) or over every neuron of every "
     "layer (all, U = depth * W units)"},
    {"readout_fixed", HCL_PARAM_ENUM, "none", 1, 0, fixed,
     "none: trained readout; pm_v: frozen +-v readout of the linear-teacher network (first U/2 "
     "units +v, the rest -v, v = 1/sqrt(U); needs U even and one output)"},
    {"readout_bias", HCL_PARAM_BOOL, "true", 1, 0, NULL, "readout has a (trained) bias"},
    {"init", HCL_PARAM_ENUM, "uniform_fan_in", 1, 0, inits,
     "uniform_fan_in: U(+-1/sqrt(fan_in)) for weights and biases (PyTorch nn.Linear; fan_in = "
     "the full layer's inputs: d for layer 1, W (+ d with input_skip) above, U for the "
     "readout, whatever the masks); normal: weights N(0, init_scale^2/fan_in), biases 0; "
     "zero: all 0. Absent connections are 0"},
    {"init_scale", HCL_PARAM_DOUBLE, "1", 0, 1e6, NULL, "scale of init = normal"},
    {"neuron_steps", HCL_PARAM_INT, "0", 0, 1e15, NULL,
     "layerwise_scd: SGD steps per visited neuron (0: [train] steps / (depth * width * "
     "layer_passes), at least 1)"},
    {"neuron_patience", HCL_PARAM_INT, "0", 0, 1e15, NULL,
     "layerwise_scd: a neuron stops once its loss on a fixed training batch has not improved "
     "(by 1e-4 relative, in any replica) for this many checks (0: never early)"},
    {"neuron_check", HCL_PARAM_INT, "50", 1, 1e15, NULL,
     "layerwise_scd: steps between two loss checks of neuron_patience"},
    {"layer_passes", HCL_PARAM_INT, "1", 1, 1e6, NULL,
     "layerwise_scd: sweeps over the neurons of a layer, each in a fresh random order"},
    {"lambda1", HCL_PARAM_DOUBLE, "0", 0, 1e6, NULL,
     "layerwise_scd: l2 penalty (lambda1/2)|w|^2 on a neuron's weights from the previous layer"},
    {"lambda2", HCL_PARAM_DOUBLE, "0", 0, 1e6, NULL,
     "layerwise_scd: l2 penalty (lambda2/2)|w|^2 on a neuron's weights from the inputs "
     "(layer 1 and the skips)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const char *const algorithms[] = {"layerwise_scd", NULL};

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = hcl_rn_create,
    .destroy = hcl_rn_destroy,
    .n_params = hcl_rn_n_params,
    .out_dim = hcl_rn_out_dim,
    .blocks = hcl_rn_blocks,
    .init = hcl_rn_init,
    .forward = hcl_rn_forward,
    .backward = hcl_rn_backward,
    .features = hcl_rn_features,
    .algorithms = algorithms,
    .train = hcl_rn_train,
    .check = hcl_rn_check,
};

static const hcl_plugin_desc desc = {
    .abi_version = HCL_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hcl_plugin_desc),
    .kind = HCL_PLUGIN_MODEL,
    .name = "regular_net",
    .version = "1.0.0",
    .summary = "regular feed-forward network: depth layers of width neurons, random "
               "connectivity (p1 between layers, p2 from the inputs, input skips), readout of "
               "the last or of all layers, optional frozen +-v readout; trained by sgd or by "
               "layerwise_scd (layers from the bottom, neurons in random order, l2 penalties "
               "lambda1/lambda2; a reading of the staircase paper)",
    .citation = "E. Abbe, E. Boix-Adsera, M. Brennan, G. Bresler, D. Nagaraj, The staircase "
                "property: how hierarchical structure can guide deep learning, NeurIPS 2021, "
                "arXiv:2108.10573 (regular networks, layerwise stochastic coordinate descent; "
                "this project's reading, SPEC 2.1); A. Sarussi, A. Brutzkus, A. Globerson, "
                "Towards understanding learning in neural networks with linear teachers, ICML "
                "2021, arXiv:2101.02533 (the +-v readout network: depth 1, width 2k, leaky_relu, "
                "readout_fixed = pm_v)",
    .params = params,
    .vt = &vt,
};

/* Accept a host table that has every function this plugin calls. */
static const hcl_plugin_desc *regular_net_init(const hcl_host_api *host, const char **errmsg) {
  size_t need = offsetof(hcl_host_api, train_size) + sizeof host->train_size;
  if (!host || host->abi_version != HCL_PLUGIN_ABI_VERSION || host->struct_size < need) {
    *errmsg = "regular_net: host API too old or of another ABI version";
    return NULL;
  }
  hcl_rn_host = host;
  return &desc;
}

HCL_PLUGIN_ENTRY(regular_net_init)
