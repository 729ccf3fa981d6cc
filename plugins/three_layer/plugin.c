/* three_layer plugin: descriptor, declared parameters and entry point
 * (SPEC 2.4, *(reading)*). */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS sgemm_lower
#include "three_layer.h"

const char *const tl_act1_choices[] = {"relu", "leaky_relu", "quadratic", "tanh", "identity", NULL};
const char *const tl_act2_choices[] = {"relu", "leaky_relu", "quadratic", "tanh", NULL};
const char *const tl_b_dists[] = {"normal", "uniform", NULL};

static const hcl_param_desc params[] = {
    HCL_P_INT(
        "m1", "512", 1, 1048576,
        "width of the fixed random first layer: phi(x) = sigma1(V x)/sqrt(m1), V [m1, d] with rows "
        "uniform on the unit sphere (ignored when two_layer = true or m1_per_d2 > 0)"),
    HCL_P_DOUBLE(
        "m1_per_d2", "0", 0, 1e6,
        "> 0: m1 = ceil(m1_per_d2 d^2) instead of m1, so that one sweep over target.d keeps "
        "the first layer as wide relative to d^2 at every d (phi's random-features estimate of "
        "the degree-2 part of its kernel, which algorithm1's step learns x^T A x through, has a "
        "relative error growing like d/sqrt(m1)); 0 = use m1"),
    HCL_P_INT(
        "m2", "512", 1, 1048576,
        "width of the trained hidden layer: f(x) = (1/m2) sum_j a_j sigma2(w_j . phi(x) + b_j)"),
    HCL_P_ENUM(
        "act1", "relu", tl_act1_choices,
        "sigma1 of the random feature map phi: relu | leaky_relu (slope 0.1) | quadratic (z^2) | "
        "tanh | identity"),
    HCL_P_ENUM("act2", "relu", tl_act2_choices,
               "sigma2 of the hidden layer: relu | leaky_relu | quadratic | tanh"),
    HCL_P_BOOL(
        "two_layer", "false",
        "baseline: a two-layer net, phi(x) = x/sqrt(d) (no V; W [m2, d]): "
        "f(x) = (1/m2) sum_j a_j sigma2(w_j . x/sqrt(d) + b_j); train it with sgd or algorithm1"),
    HCL_P_BOOL(
        "freeze_w", "false",
        "baseline: W frozen at its random init (block W trainable = 0), a random-features model "
        "trained by sgd (a, and b with train_b) or by the ridge stage alone (algorithm ridge)"),
    HCL_P_BOOL("train_b", "false", "let sgd train the biases b too (the paper keeps them random)"),
    HCL_P_DOUBLE(
        "w_scale", "1", 0, 1e6,
        "init of W (sgd, freeze_w): entries N(0, w_scale^2), so w_j . phi(x) has variance about "
        "w_scale^2 |phi(x)|^2 (|phi|^2 ~ 1/2 for relu, 1 for two_layer); algorithm1 starts from "
        "W = 0 regardless"),
    HCL_P_ENUM(
        "b_dist", "normal", tl_b_dists,
        "law of the biases b_j (init and algorithm1's re-draw): normal N(0, b_scale^2) | uniform "
        "U[-b_scale, b_scale]"),
    HCL_P_DOUBLE("b_scale", "1", 0, 1e6, "scale of the biases b_j (see b_dist)"),
    HCL_P_DOUBLE(
        "eta1", "0", 0, 1e12,
        "algorithm1 stage-1 step: W = -eta1 grad_W L(W = 0) on the first half of the data; "
        "0 = automatic, per replica: the eta1 giving the pre-activations w_j . phi(x) unit mean "
        "square over units and first-half samples (so b_scale = 1 spreads the biases over their "
        "range) (our reading; the paper's eta1 is a theory constant)"),
    HCL_P_DOUBLE(
        "eta1_scale", "1", 0, 1e6,
        "with eta1 = 0: the step is eta1_scale times the automatic one (pre-activations of root "
        "mean square eta1_scale), so that a validation grid over eta1_scale means the same at "
        "every d and width; ignored when eta1 > 0"),
    HCL_P_BOOL(
        "center_y", "true",
        "algorithm1 stage 1: take the gradient against centred labels y - mean(y) (the mean over "
        "the first half), i.e. with the network's output shifted by that mean, as in the paper's "
        "setting E f* = 0; otherwise the label mean dominates the step and the learned feature is "
        "mostly the kernel's constant direction (our reading)"),
    HCL_P_DOUBLE(
        "lambda", "1e-3", 0, 1e12,
        "ridge penalty of the readout fit (algorithm1 stage 2, algorithm ridge), independent of "
        "the width: a = argmin (1/n) sum_i (f(x_i) - y_i)^2 + lambda (1/m2) sum_j a_j^2, i.e. "
        "(S^T S/(n m2) + lambda I) a = S^T y/n with s_j(x) = sigma2(w_j . phi(x) + b_j): kernel "
        "ridge regression with the kernel K(x, x') = (1/m2) sum_j s_j(x) s_j(x') (an average "
        "over units, entries of order 1) and penalty lambda |f|_K^2, so a given lambda means the "
        "same at every m2"),
    HCL_P_BOOL(
        "redraw_b", "true",
        "algorithm1: stage 2 re-draws b (fresh stream) before the ridge fit, as in the paper"),
    HCL_P_INT("probe_samples", "2000", 0, 1e9,
              "probe: inputs of the probe stream on which hstar_corr = mean over units j of "
              "|corr(w_j . phi(x), h*(x))| is estimated (h* from the target's eval(\"hstar\"): "
              "single_index, quadratic_features; nothing is reported for other targets); 0 = off"),
    HCL_P_END};

static const char *const algorithms[] = {"algorithm1", "ridge", NULL};

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = tl_create,
    .destroy = tl_destroy,
    .n_params = tl_n_params,
    .out_dim = tl_out_dim,
    .blocks = tl_blocks,
    .init = tl_init,
    .algorithms = algorithms,
    .train = tl_train,
    .check = tl_check,
    .probe = tl_probe,
    .graph = tl_graph,
};

static const hcl_plugin_desc desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_MODEL),
    .name = "three_layer",
    .version = "1.2.0",
    .summary =
        "three-layer net f(x) = (1/m2) sum_j a_j sigma2(w_j . phi(x) + b_j), phi(x) = "
        "sigma1(V x)/sqrt(m1), V fixed random, b random, W and a trained; algorithms: sgd, "
        "algorithm1 (one gradient step on W from 0 on the first half of the data, then b "
        "re-drawn and a by ridge on the second half; lambda is in the units of the kernel (1/m2) "
        "sum_j s_j(x) s_j(x'), independent of the width), ridge (the readout alone); baselines "
        "freeze_w (random features) and two_layer. *(reading)*: implemented from this project's "
        "reading of the paper (full text not at hand); choices are parameters",
    .citation = "E. Nichani, A. Damian, J. D. Lee, Provable guarantees for nonlinear feature "
                "learning in three-layer neural networks, NeurIPS 2023, arXiv:2305.06986 "
                "(reading; no code released)",
    .params = params,
    .vt = &vt,
};

HCL_PLUGIN_DEFINE(three_layer, desc)
