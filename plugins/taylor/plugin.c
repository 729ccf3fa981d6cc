/* taylor plugin: descriptor, declared parameters and entry point (SPEC 2.5,
 * neural-rep, our reading of the paper). */
#define HCL_PLUGIN_NEEDS g_detach /* the newest host entry it calls unchecked */
#include "taylor.h"

const char *const hcl_taylor_activations[] = {"auto",     "relu", "relu3", "quadratic",
                                              "softplus", "tanh", NULL};
const char *const hcl_taylor_representations[] = {"raw", "neural", NULL};

static const hcl_param_desc params[] = {
    HCL_P_INT("width", "1024", 1, 16777216,
              "m: neurons of the wide two-layer net g(w; z) = (1/sqrt m) sum_r a_r sigma(w_r . z) "
              "whose Taylor expansion around w0 is the model"),
    HCL_P_INT(
        "order", "2", 1, 2,
        "1: NTK f(z) = (1/sqrt m) sum_r a_r sigma'(w0_r . u)(w_r . u), the linearisation "
        "d/de g(w0 + e w) at e = 0; 2: QuadNTK f(z) = (1/(2 sqrt m)) sum_r a_r sigma''(w0_r . u)"
        "(w_r . u)^2, the second-order term (1/2) d^2/de^2 g(w0 + e w) at e = 0; u = z/sqrt(dz) "
        "has unit norm on either representation (the paper's inputs on the unit sphere), so one "
        "lr and init mean the same on both and at every d"),
    HCL_P_ENUM(
        "activation", "auto", hcl_taylor_activations,
        "sigma of the two-layer net (its derivative of order `order` is used): auto = relu for "
        "order 1 (sigma' = 1{t > 0}, the ReLU NTK) and relu3 for order 2 (our reading of the "
        "smoothness the quadratic model needs: sigma'' must exist and be Lipschitz); relu: "
        "max(0,t), order 1 only (its sigma'' is a delta); relu3: relu(t)^3/6 (sigma' = relu^2/2, "
        "sigma'' = relu); quadratic: t^2/2 (sigma' = t, sigma'' = 1); softplus: log(1+e^t) "
        "(sigma' = logistic s, sigma'' = s(1-s)); tanh"),
    HCL_P_ENUM(
        "representation", "raw", hcl_taylor_representations,
        "input z of the Taylor model: raw z = x; neural z = s Sigma^{-1/2}(h(x) - mu) with "
        "h(x) = relu(V x + b) a fixed random layer of width rep_width, mu and Sigma the mean and "
        "covariance of h over whiten_size samples of the target's unlabelled stream (disjoint "
        "from train and test: the labelled training set plays no part), and s making the mean "
        "square per coordinate of z equal the raw input's (both measured on that sample: "
        "E|z|^2/rep_width = E|x|^2/d), so that one lr and init mean the same on either "
        "representation (for inputs with unit-variance coordinates, such as low_rank_poly's "
        "sphere of radius sqrt(d), E|z|^2 = dz either way). Fitted before the step-0 evaluation, "
        "for any algorithm"),
    HCL_P_INT(
        "rep_width", "512", 1, 4096,
        "D: width of the random representation h(x) = relu(V x + b), V [D, d] ~ N(0, 1/d) per "
        "replica seed (representation = neural only); the whitening costs O(D^3) on the host "
        "in double (about 3 s per replica at D = 1000) and D^2 floats of parameters"),
    HCL_P_INT(
        "rep_power", "0", 0, 8,
        "k > 0: the representation's width is D = d^k (then rep_width is ignored), so that it "
        "grows with d as the paper's needs (D >~ d^ceil(p/2) units express the target's "
        "degree-ceil(p/2) factors: k = 2 for p = 4); 0: D = rep_width at every d"),
    HCL_P_DOUBLE(
        "rep_bias", "0", 0, 1e6,
        "standard deviation of the representation's bias b ~ N(0, rep_bias^2) (0: no bias)"),
    HCL_P_DOUBLE(
        "init_std", "0.01", 0, 1e6,
        "trainable w_r ~ N(0, init_std^2 I) at init (so w_r . u is about init_std): the "
        "expansion starts at w = 0 in the paper's reading, but w = 0 is a stationary point of the "
        "order-2 model (zero gradient), so a small random start is the default; 0 = exactly 0"),
    HCL_P_DOUBLE(
        "w0_std", "1", 0, 1e6,
        "expansion point w0_r ~ N(0, w0_std^2 I), so that the pre-activation w0_r . u is about "
        "N(0, w0_std^2) on either representation (u = z/sqrt(dz) has unit norm, see order): "
        "the paper's w0 ~ N(0, I) on inputs of unit norm; a_r ~ Unif{-1, +1}"),
    HCL_P_DOUBLE("whiten_rcond", "1e-6", 0, 1,
                 "neural: eigenvalues of the covariance of h below whiten_rcond * the largest are "
                 "dropped (their directions map to 0) instead of amplified"),
    HCL_P_DOUBLE(
        "penalty_24", "0", 0, 1e12,
        "lambda >= 0: algorithm gd minimises [train] loss (the mean over the batch) + lambda "
        "||W||_{2,4}^8, the regulariser of Bai & Lee (2020) used by Chen et al. (2020), with "
        "||W||_{2,4}^8 = (sum_r |w_r|_2^4)^2 over the rows w_r of the trainable w (in the units "
        "of u = z/sqrt(dz), see order); its exact gradient 8 lambda (sum_j |w_j|^4) |w_r|^2 w_r "
        "is added to every step's, per replica. It penalises large rows more than the l2 term "
        "([train] weight_decay) does. Not part of f: train_loss, val_loss and gradcheck see the "
        "model's loss alone. Needs algorithm gd. 0 = none"),
    HCL_P_INT("whiten_size", "0", 0, 1e9,
              "neural: samples of the target's unlabelled stream (stream 3) the whitening is "
              "estimated on; 0 = 20 * rep_width, so that the covariance is full rank and "
              "well estimated (fewer than rep_width leave directions out)"),
    HCL_P_END};

static const char *const algorithms[] = {"gd", NULL};

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = hcl_taylor_create,
    .destroy = hcl_taylor_destroy,
    .n_params = hcl_taylor_n_params,
    .out_dim = hcl_taylor_out_dim,
    .blocks = hcl_taylor_blocks,
    .init = hcl_taylor_init,
    .algorithms = algorithms,
    .train = hcl_taylor_train,
    .prepare = hcl_taylor_prepare,
    .check = hcl_taylor_check,
    .graph = hcl_taylor_graph,
    .graph_grad = hcl_taylor_graph_grad,
};

static const hcl_plugin_desc desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_MODEL),
    .name = "taylor",
    .version = "1.3.0",
    .summary =
        "NTK (order 1) and quadratic Taylor model QuadNTK (order 2) of a wide two-layer "
        "net around a random w0, on the raw input or on a fixed random ReLU "
        "representation whitened on unlabelled samples and scaled like the raw input; "
        "trainable w [m, dz], one output. Algorithm gd: the runtime's loop (full-batch gradient "
        "descent with [train] batch = train_size; l2 via [train] weight_decay; the paper's "
        "lambda ||W||_{2,4}^8 via penalty_24). "
        "*(reading)*: implemented from this project's reading of the paper (full text "
        "not at hand); the sign randomisation of Bai & Lee is not a separate option: it "
        "leaves the order-2 model (the quadratic term alone) unchanged",
    .citation = "M. Chen, Y. Bai, J. D. Lee, T. Zhao, H. Wang, C. Xiong, R. Socher, Towards "
                "understanding hierarchical learning: benefits of neural representations, "
                "NeurIPS 2020, arXiv:2006.13436 (reading); quadratic Taylor model from Y. Bai, "
                "J. D. Lee, Beyond linearization, ICLR 2020, arXiv:1910.01619",
    .params = params,
    .vt = &vt,
};

HCL_PLUGIN_DEFINE(taylor, desc)
