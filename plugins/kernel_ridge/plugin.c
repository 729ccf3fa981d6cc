/* kernel_ridge plugin: descriptor, declared parameters, device-free checks
 * and entry point. */
#include "kernel_ridge.h"

#include <stdio.h>
#include <string.h>

const char *const kr_kernels[] = {"ntk", "nngp", NULL};
const char *const kr_precisions[] = {"auto", "float32", NULL};

static const hcl_param_desc params[] = {
    HCL_P_ENUM(
        "kernel", "ntk", kr_kernels,
        "the infinite-width two-layer ReLU kernel on u = (x/sqrt(d), b_scale), theta the angle "
        "between u and u': nngp = |u||u'| (sin theta + (pi - theta) cos theta)/(2 pi) = E_w "
        "relu(w.u) relu(w.u'), w ~ N(0, I) (the arc-cosine kernel of degree 1: the limit of "
        "three_layer's random features with two_layer = true, w_scale = 1, b ~ N(0, b_scale^2)); "
        "ntk = nngp + (u.u') (pi - theta)/(2 pi) (the NTK of f = (1/sqrt m) sum_j a_j "
        "relu(w_j.u), a and w trained)"),
    HCL_P_DOUBLE(
        "lambda", "1e-3", 0, 1e12,
        "ridge penalty, independent of P and of any width: f = argmin (1/P) sum_i (f(x_i) - "
        "y_i)^2 + lambda |f|_K^2, i.e. (K + lambda P I) alpha = y, f(x) = K(x, X) alpha; the "
        "convention of three_layer's ridge (its K = (1/m2) sum_j s_j(x) s_j(x') tends to nngp), "
        "so one lambda means the same for both; 0 = interpolation"),
    HCL_P_DOUBLE("b_scale", "1", 0, 1e6,
                 "the constant coordinate of u (the bias of the underlying two-layer net: b ~ "
                 "N(0, b_scale^2) in three_layer's random features)"),
    HCL_P_ENUM("precision", "auto", kr_precisions,
               "arithmetic of the device kernels (Gram matrix, predictions, gradient): auto = "
               "float64 where the device offers cl_khr_fp64, else float32; float32 = always "
               "(the solve is float64 on the host either way)"),
    HCL_P_END};

static const char *const algorithms[] = {"ridge", NULL};

hcl_status kr_size_check(const hcl_report *r, uint64_t P) {
  if (P < 1)
    return hcl_report_fail(r, HCL_ERR_CONFIG,
                           "needs a finite training set ([train] train_size = 0 means fresh "
                           "samples; kernel ridge keeps all P training inputs)");
  if (P > KR_MAX_TRAIN)
    return hcl_report_fail(r, HCL_ERR_CONFIG,
                           "[train] train_size = %llu: exact kernel ridge factors the P x P "
                           "Gram matrix in float64 on the host (8 P^2 bytes, P^3/3 flops); at "
                           "most %u samples",
                           (unsigned long long)P, KR_MAX_TRAIN);
  return HCL_OK;
}

hcl_status kr_check(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                    char *err, size_t errlen) {
  (void)p;
  hcl_report r = {.err = err, .errlen = errlen};
  if (target->task == HCL_TASK_CLASSES || target->y_dim != 1)
    return hcl_report_fail(&r, HCL_ERR_UNSUPPORTED,
                           "kernel ridge fits one real output (target y_dim %zu%s)", target->y_dim,
                           target->task == HCL_TASK_CLASSES ? ", a classification task" : "");
  if (!HCL_STRUCT_HAS(run, hcl_check_info, train_size_min)) return HCL_OK;
  HCL_TRY(kr_size_check(&r, run->train_size));
  if (run->train_size_min != run->train_size)
    return hcl_report_fail(&r, HCL_ERR_CONFIG,
                           "[train] train_sizes: every replica needs the same training-set size "
                           "(%llu to %llu given)",
                           (unsigned long long)run->train_size_min,
                           (unsigned long long)run->train_size);
  return HCL_OK;
}

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = kr_create,
    .destroy = kr_destroy,
    .n_params = kr_n_params,
    .out_dim = kr_out_dim,
    .blocks = kr_blocks,
    .init = kr_init,
    .forward = kr_forward,
    .backward = kr_backward,
    .algorithms = algorithms,
    .train = kr_train,
    .prepare = kr_prepare,
    .check = kr_check,
};

static const hcl_plugin_desc desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_MODEL),
    .name = "kernel_ridge",
    .version = "1.0.0",
    .summary =
        "exact kernel ridge regression with the infinite-width two-layer ReLU kernels (ntk, or "
        "nngp: the arc-cosine kernel of degree 1, the random-features limit) on u = (x/sqrt(d), "
        "b_scale): f(x) = K(x, X) alpha, (K + lambda P I) alpha = y, i.e. the penalty lambda "
        "|f|_K^2 on the mean squared error, the same lambda as three_layer's ridge at any width; "
        "algorithm ridge (Gram matrices on the device, Cholesky in float64 on the host, "
        "P <= 8192); sgd descends on alpha",
    .citation = "Y. Cho, L. K. Saul, Kernel methods for deep learning, NIPS 2009 (arc-cosine "
                "kernels); A. Jacot, F. Gabriel, C. Hongler, Neural tangent kernel, NeurIPS 2018; "
                "the two-layer kernel baselines of E. Nichani, A. Damian, J. D. Lee, NeurIPS "
                "2023, arXiv:2305.06986",
    .params = params,
    .vt = &vt,
};

HCL_PLUGIN_DEFINE(kernel_ridge, desc)
