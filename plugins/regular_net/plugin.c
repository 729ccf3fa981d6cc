/* regular_net plugin: descriptor, declared parameters and entry point. */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS train_size
#include "regular_net.h"

#include <stddef.h>

static const char *const activations[] = {"relu", "leaky_relu", "quadratic",
                                          "tanh", "identity",   NULL};
static const char *const readouts[] = {"last", "all", NULL};
static const char *const fixed[] = {"none", "pm_v", NULL};
static const char *const inits[] = {"uniform_fan_in", "normal", "zero", NULL};

static const hcl_param_desc params[] = {
    HCL_P_INT("width", "64", 1, 1048576, "W: neurons of every hidden layer"),
    HCL_P_INT("depth", "2", 1, 4096,
              "L: hidden layers (>= 1); a linear readout follows the last one"),
    HCL_P_ENUM(
        "activation", "relu", activations,
        "act of every hidden neuron: relu | leaky_relu (negative slope 0.1) | quadratic (z^2) | "
        "tanh | identity"),
    HCL_P_DOUBLE(
        "p1", "1", 0, 1,
        "probability that a neuron of layer l >= 2 sees a given neuron of layer l-1 (layer.weight "
        "entries); masks drawn once per replica seed"),
    HCL_P_DOUBLE(
        "p2", "1", 0, 1,
        "probability that a neuron sees a given input coordinate: layer1.weight entries, and the "
        "layer<l>.skip entries of layers l >= 2 (p1 = p2 = 1: fully connected)"),
    HCL_P_BOOL(
        "input_skip", "true",
        "layers l >= 2 also see the inputs (block layer<l>.skip [W, d], masked by p2), as in the "
        "regular networks of Abbe et al.; false: a plain MLP"),
    HCL_P_BOOL("bias", "true", "hidden neurons have a bias (layer<l>.bias)"),
    HCL_P_ENUM(
        "readout", "last", readouts,
        "linear readout over the last layer (last, U = W units) or over every neuron of every "
        "layer (all, U = depth * W units)"),
    HCL_P_ENUM(
        "readout_fixed", "none", fixed,
        "none: trained readout; pm_v: frozen +-v readout of the linear-teacher network (first U/2 "
        "units +v, the rest -v, v = 1/sqrt(U); needs U even and one output)"),
    HCL_P_BOOL("readout_bias", "true", "readout has a (trained) bias"),
    HCL_P_ENUM(
        "init", "uniform_fan_in", inits,
        "uniform_fan_in: U(+-1/sqrt(fan_in)) for weights and biases (PyTorch nn.Linear; fan_in = "
        "the full layer's inputs: d for layer 1, W (+ d with input_skip) above, U for the "
        "readout, whatever the masks); normal: weights N(0, init_scale^2/fan_in), biases 0; "
        "zero: all 0. Absent connections are 0"),
    HCL_P_DOUBLE("init_scale", "1", 0, 1e6, "scale of init = normal"),
    HCL_P_INT("neuron_steps", "0", 0, 1e15,
              "layerwise_scd: SGD steps per visited neuron (0: [train] steps / (depth * width * "
              "layer_passes), at least 1)"),
    HCL_P_INT(
        "neuron_patience", "0", 0, 1e15,
        "layerwise_scd: a neuron stops once its loss on a fixed training batch has not improved "
        "(by 1e-4 relative, in any replica) for this many checks (0: never early)"),
    HCL_P_INT("neuron_check", "50", 1, 1e15,
              "layerwise_scd: steps between two loss checks of neuron_patience"),
    HCL_P_INT("layer_passes", "1", 1, 1e6,
              "layerwise_scd: sweeps over the neurons of a layer, each in a fresh random order"),
    HCL_P_DOUBLE(
        "lambda1", "0", 0, 1e6,
        "layerwise_scd: l2 penalty (lambda1/2)|w|^2 on a neuron's weights from the previous layer"),
    HCL_P_DOUBLE("lambda2", "0", 0, 1e6,
                 "layerwise_scd: l2 penalty (lambda2/2)|w|^2 on a neuron's weights from the inputs "
                 "(layer 1 and the skips)"),
    HCL_P_END};

static const char *const algorithms[] = {"layerwise_scd", NULL};

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = hcl_rn_create,
    .destroy = hcl_rn_destroy,
    .n_params = hcl_rn_n_params,
    .out_dim = hcl_rn_out_dim,
    .blocks = hcl_rn_blocks,
    .init = hcl_rn_init,
    .algorithms = algorithms,
    .train = hcl_rn_train,
    .check = hcl_rn_check,
    .graph = hcl_rn_graph,
    .graph_params = hcl_rn_graph_params,
    .graph_grad = hcl_rn_graph_grad,
    .graph_plain = hcl_rn_graph_plain,
};

static const hcl_plugin_desc desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_MODEL),
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

HCL_PLUGIN_DEFINE(regular_net, desc)
