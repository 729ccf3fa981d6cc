/* deep_cnn plugin: descriptor, declared parameters and entry point. */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS g_detach
#include "deep_cnn.h"

const char *const dcnn_param_choices[] = {"mf", "standard", NULL};
const char *const dcnn_bias_choices[] = {"none", "shared", "position", NULL};
const char *const dcnn_lr_choices[] = {"auto", "width", "none", NULL};

static const hcl_param_desc params[] = {
    HCL_P_INT("width", "64", 1, 1048576,
              "H: channels of every convolution (the reference code's --width, default 64)"),
    HCL_P_INT("s", "2", 2, 1024,
              "filter size = stride of every convolution (non-overlapping patches): the RHM's "
              "tuple size s"),
    HCL_P_INT("depth", "0", 0, 63,
              "L: number of convolutions; the input length d must be s^L (else create fails with "
              "the numbers); 0 = L = log_s d from the target"),
    HCL_P_ENUM(
        "param", "mf", dcnn_param_choices,
        "mf: the reference parametrisation (ConvNetGAPMF of pcsl-epfl/hierarchy-learning; its "
        "CNN2 divides by sqrt(c_in) only): conv weights N(0,1), each pre-activation divided by "
        "sqrt(c_in*s), readout N(0,1) with "
        "the output divided by H, conv biases N(0,1) entering as 0.1*b, no readout bias, and the "
        "learning rate multiplied by H (see lr_factor); standard: PyTorch's Conv1d/Linear "
        "default init U(+-1/sqrt(fan_in)) for weights and biases, no scaling, readout bias when "
        "bias != none"),
    HCL_P_ENUM(
        "bias", "none", dcnn_bias_choices,
        "biases of the convolutions: none (the SPEC's default) | shared (one per channel, "
        "[H], as Conv1d and the reference's ConvNetGAPMF) | position (one per channel and "
        "position, [P_k, H], as the reference's CNN2 with --bias 1, which is the default of its "
        "main.py)"),
    HCL_P_ENUM(
        "lr_factor", "auto", dcnn_lr_choices,
        "the reference multiplies the learning rate by H: width makes the runtime's SGD (with or "
        "without momentum) step lr H along the gradient, which backward() leaves true; "
        "[train] weight_decay keeps its strength per unit of lr (the step is lr (H grad + "
        "weight_decay w)); adam, invariant to the gradient's scale, takes eps / H instead "
        "(multiply [train] lr by H yourself): auto = width for param = mf, none for standard"),
    HCL_P_INT(
        "layer_steps", "0", 0, 1e15,
        "algorithm = layerwise: SGD steps of each of the L stages (0 = [train] steps / L). Stage "
        "k trains conv k and a temporary readout (the mean over layer k's positions, then "
        "readout.weight redrawn from the init distribution), layers below frozen, as the "
        "reference's CNNLayerWise; stage L is the full network with its final readout"),
    HCL_P_INT(
        "ridge_features", "512", 1, 65536,
        "algorithm = ridge_chain *(reading)* of Ren-Dandi-Krzakala-Lee 2026: D, random Fourier "
        "features per level: phi(z) = sqrt(2/D) cos(Omega z + b), Omega N(0, 1/sigma^2), "
        "b U[0, 2pi), z the s concatenated child outputs (one-hot tokens at level 1, "
        "normalised n_c-vectors above). Levels are fitted from the bottom (see ridge_lambda); "
        "afterwards the model evaluates the chain (the conv weights are unused, no gradient): "
        "its outputs are level L's vectors q, so test_error is the chain's and test_loss the "
        "cross-entropy of softmax(q)"),
    HCL_P_LIST(
        "ridge_sigma", "1, 0.25", 0, 1e6,
        "algorithm = ridge_chain: sigma of the RBF kernel exp(-|z-z'|^2 / (2 sigma^2)) that "
        "the features approximate, one value per level from the bottom, the last one repeating "
        "(default: 1 at level 1, where distinct one-hot patches are sqrt(2) or 2 apart; 0.25 "
        "above, where the inputs are probability vectors; measured on RHMs with n_c, v, m in "
        "4..16, s = 2, L = 2, 3); 0 = the median heuristic: half the median distance between the "
        "level's first-patch inputs of the first 256 fit samples, per replica"),
    HCL_P_DOUBLE(
        "ridge_lambda", "1e-3", 0, 1e6,
        "algorithm = ridge_chain: lambda of W = E[e_y phi^T](E[phi phi^T] + lambda I)^-1, fitted "
        "per level on the first patch only (e_y the one-hot class label), applied to every "
        "patch, output W phi normalised to sum 1; level L's output is the model's. Independent "
        "of D: with phi's sqrt(2/D) the kernel phi(z) . phi(z') is an average over the D "
        "features (-> the RBF kernel as D grows), so W phi(z) = k(z, Z)(K/N + lambda I)^-1 E/N, "
        "kernel ridge regression with penalty lambda |f|_K^2 whatever D"),
    HCL_P_INT(
        "ridge_samples", "0", 0, 1e15,
        "algorithm = ridge_chain: fit samples (the first ones of the training stream); 0 = the "
        "whole training set ([train] train_size, which must then be > 0)"),
    HCL_P_END};

static const char *const algorithms[] = {"layerwise", "ridge_chain", NULL};

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = dcnn_create,
    .destroy = dcnn_destroy,
    .n_params = dcnn_n_params,
    .out_dim = dcnn_out_dim,
    .blocks = dcnn_blocks,
    .init = dcnn_init,
    .algorithms = algorithms,
    .train = dcnn_train,
    .check = dcnn_check,
    .lr_scale = dcnn_lr_scale,
    .graph = dcnn_graph,
    .graph_variant = dcnn_graph_variant,
};

static const hcl_plugin_desc desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_MODEL),
    .name = "deep_cnn",
    .version = "1.0.0",
    .summary = "hierarchical CNN of the Random Hierarchy Model: L convolutions with filter "
               "size = stride = s (d = s^L), width H, ReLU, mean over positions, linear "
               "readout; mf (reference) or standard parametrisation; algorithms sgd, "
               "layerwise, ridge_chain (reading); features(k) = conv k's output [H, d/s^k]",
    .citation = "F. Cagnetta, L. Petrini, U. M. Tomasini, A. Favero, M. Wyart, How deep "
                "neural networks learn compositional data: the Random Hierarchy Model, "
                "Phys. Rev. X 14, 031001 (2024), arXiv:2307.02129 (code: github "
                "pcsl-epfl/hierarchy-learning, models/cnn.py ConvNetGAPMF, models/cnn2.py "
                "CNN2 and CNNLayerWise); ridge_chain: Y. Ren, Y. Dandi, F. Krzakala, J. D. Lee, "
                "Provable learning of Random Hierarchy Models and hierarchical shallow-to-deep "
                "chaining, COLT 2026, arXiv:2601.19756 (this project's reading, no released code)",
    .params = params,
    .vt = &vt,
};

HCL_PLUGIN_DEFINE(deep_cnn, desc)
