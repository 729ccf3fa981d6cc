/* The linear_teacher target plugin: descriptor, parameters, create/destroy/
 * info (SPEC 1.6; Sarussi, Brutzkus, Globerson, ICML 2021, arXiv:2101.02533). */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS probe_replicas
#include "linear_teacher.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_inputs[] = {"gaussian", "ball", NULL};

static const hcl_param_desc k_params[] = {
    HCL_P_INT("d", "50", 1, 1048576, "input dimension d (x in R^d)"),
    HCL_P_DOUBLE(
        "margin", "0.1", 0, 1e3,
        "margin gamma: inputs are redrawn until |w*.x| >= gamma (float dot product against "
        "(float)gamma); 0 = no rejection"),
    HCL_P_ENUM(
        "inputs", "gaussian", k_inputs,
        "input law before rejection: gaussian x ~ N(0, I_d); ball x uniform in the unit ball of "
        "R^d, built as the first d coordinates of g/|g|, g ~ N(0, I_{d+2}) (a uniform point of the "
        "sphere S^{d+1} projected to R^d is uniform in the ball; |x| <= 1 up to float rounding)"),
    HCL_P_DOUBLE(
        "label_noise", "0", 0, 1,
        "probability that a label y = sign(w*.x) is flipped, independently per sample (its own "
        "random stream; train and test labels alike)"),
    HCL_P_INT(
        "max_attempts", "0", 0, LT_MAX_ATTEMPTS_LIMIT,
        "cap T on rejection attempts per sample; 0 = automatic: the smallest T with P(all T "
        "attempts rejected) <= 1e-30. A sample that hits the cap keeps its last attempt (margin "
        "not met); such draws are counted on the device and reported as a warning and the "
        "manifest note linear_teacher.capped_draws"),
    HCL_P_INT(
        "probe_samples", "10000", 1, 1e9,
        "probe, for a two-layer model f(x) = sum_i v_i act(w_i.x + b_i) (a block [h, d], a "
        "readout of h floats, optionally a first-layer bias [h, 1]; deeper models get no probe "
        "metrics): with w+ and w- the mean w_i over units with v_i > 0 and v_i < 0, "
        "cluster_cos = mean cosine of w_i to its group's mean, clusters (see cluster_threshold), "
        "direction_cos = cos(w+ - w-, w*), linear_agreement = P(sign f(x) = sign((w+ - w-).x + "
        "b+ - b-)) (1 exactly for a leaky-ReLU +-v net whose groups share weights, SPEC 1.6), "
        "teacher_agreement = P(sign f(x) = sign(w*.x)); the probabilities over the first "
        "probe_samples inputs of the probe stream (the same ones at every evaluation, never "
        "trained on)"),
    HCL_P_DOUBLE(
        "cluster_threshold", "0.99", -1, 1,
        "probe: cosine at or above which a hidden unit joins a cluster of its sign group (greedy: "
        "units in index order join the first cluster whose first unit is that close, else start "
        "one); `clusters` counts them over both groups"),
    HCL_P_END};

/* Release everything create made (also a half-made target); warn about
 * capped draws made since the last probe. */
static void lt_destroy(void *self) {
  lt_target *t = self;
  if (!t) return;
  if (t->d_capped.mem) (void)lt_check_capped(t, NULL);
  lt_device_release(t);
  free(t->wstar);
  free(t->seeds);
  free(t);
}

/* Manifest notes: the law, the cap and the stream layout. */
static void describe(lt_target *t) {
  hcl_ctx *ctx = t->ctx;
  char num[64];
  hcl_host->note(ctx, "linear_teacher.inputs", k_inputs[t->inputs], 0);
  snprintf(num, sizeof num, "%.17g", t->p_accept);
  hcl_host->note(ctx, "linear_teacher.accept_probability", num, 1);
  snprintf(num, sizeof num, "%u", t->attempts);
  hcl_host->note(ctx, "linear_teacher.max_attempts", num, 1);
  hcl_host->note(ctx, "linear_teacher.rng",
                 "runtime streams (kernels/common.cl): w* = normalised elements 0..d-1 of stream "
                 "(seed, 0x4C54430200000000); attempt t of sample i of stream s (0 train, 1 "
                 "test, 2 probe): normals at elements i*4*ceil(m/4)+j of stream (seed, "
                 "0x4C54430000000000 | t<<8 | s), m = d (gaussian) or d+2 (ball); label flip = "
                 "element i of stream (seed, 0x4C54430100000000 | s); see linear_teacher.cl",
                 0);
  hcl_host->log(ctx, HCL_LOG_INFO,
                "linear_teacher: d = %zu, %s inputs, margin %g (acceptance %.4g, cap %u "
                "attempts), label noise %g",
                t->d, k_inputs[t->inputs], t->margin, t->p_accept, t->attempts, t->noise);
}

/* Read and check the parameters into t; every failure names the key and
 * the numbers that disagree. */
static hcl_status configure(lt_target *t, const hcl_params *p, const hcl_report *r) {
  hcl_ctx *ctx = t->ctx;
  int64_t d = hcl_host->param_int(p, "d"), ps = hcl_host->param_int(p, "probe_samples");
  int64_t cap = hcl_host->param_int(p, "max_attempts");
  t->inputs = HCL_ENUM(p, "inputs", k_inputs);
  t->margin = hcl_host->param_double(p, "margin");
  t->noise = hcl_host->param_double(p, "label_noise");
  t->threshold = hcl_host->param_double(p, "cluster_threshold");
  if (d < 1 || ps < 1 || t->inputs < 0 || cap < 0 || cap > (int64_t)LT_MAX_ATTEMPTS_LIMIT)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "d = %lld, probe_samples = %lld, max_attempts = %lld "
                           "or inputs out of range",
                           (long long)d, (long long)ps, (long long)cap);
  if (!(t->margin >= 0.0) || !isfinite(t->margin))
    return hcl_report_fail(r, HCL_ERR_PARAM, "margin = %g must be >= 0", t->margin);
  if (!(t->noise >= 0.0 && t->noise <= 1.0))
    return hcl_report_fail(r, HCL_ERR_PARAM, "label_noise = %g must be a probability in [0, 1]",
                           t->noise);
  t->d = (size_t)d;
  t->probe_samples = (uint64_t)ps;
  t->p_accept = lt_accept_prob(t->inputs, t->d, t->margin);
  uint32_t automatic = lt_auto_attempts(t->p_accept);
  if (cap == 0 && automatic == 0)
    return hcl_report_fail(
        r, HCL_ERR_PARAM,
        "margin = %g with %s inputs in d = %zu: a draw meets the margin with "
        "probability %.3g, so the rejection cap would need more than %u attempts per sample; "
        "lower the margin%s",
        t->margin, k_inputs[t->inputs], t->d, t->p_accept, LT_MAX_ATTEMPTS_LIMIT,
        t->inputs == LT_IN_BALL ? " (|w*.x| < 1 in the ball, and about 1/sqrt(d) typically)" : "");
  t->attempts = cap ? (uint32_t)cap : automatic;
  double miss = t->p_accept >= 1.0 ? 0.0 : pow(1.0 - t->p_accept, (double)t->attempts);
  if (!ctx) return HCL_OK; /* check(): no warnings twice, no notes */
  if (cap && miss > LT_CAP_TARGET)
    hcl_host->log(ctx, HCL_LOG_WARN,
                  "linear_teacher: max_attempts = %lld: a sample misses the margin with "
                  "probability %.3g (automatic cap: %u)",
                  (long long)cap, miss, automatic);
  if (t->p_accept < 0.01)
    hcl_host->log(ctx, HCL_LOG_WARN,
                  "linear_teacher: margin %g accepts %.3g of the draws: about %.0f attempts per "
                  "sample",
                  t->margin, t->p_accept, 1.0 / t->p_accept);
  describe(t);
  return HCL_OK;
}

/* A target for setup->replicas replicas: parameters, w*, device state. */
static hcl_status lt_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {
  *self = NULL;
  if (!setup->replicas || !setup->seeds)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "no replicas/seeds in the setup");
  lt_target *t = calloc(1, sizeof *t);
  if (!t) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  t->ctx = ctx;
  t->R = setup->replicas;
  t->train_size = setup->train_size;
  t->max_batch = setup->max_batch ? setup->max_batch : 1;
  t->seeds = malloc(t->R * sizeof *t->seeds);
  hcl_status rc = t->seeds ? HCL_OK : hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc == HCL_OK) {
    memcpy(t->seeds, setup->seeds, t->R * sizeof *t->seeds);
    hcl_report rep = {.host = hcl_host, .ctx = ctx};
    rc = configure(t, setup->params, &rep);
  }
  if (rc == HCL_OK && HCL_HOST_HAS(host_mem_check)) {
    char what[128];
    snprintf(what, sizeof what, "linear_teacher: w* of [target] d = %zu for %zu replicas", t->d,
             t->R);
    double bytes = (double)t->R * (double)t->d * sizeof(float);
    rc = hcl_host->host_mem_check(ctx, bytes < (double)SIZE_MAX ? (size_t)bytes : SIZE_MAX, what);
  }
  if (rc == HCL_OK) {
    t->wstar = malloc(t->R * t->d * sizeof *t->wstar);
    rc = t->wstar ? lt_teacher_make(ctx, t->seeds, t->R, t->d, t->wstar)
                  : hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  }
  if (rc == HCL_OK) rc = lt_device_init(t);
  if (rc != HCL_OK) {
    lt_destroy(t);
    return rc;
  }
  *self = t;
  return HCL_OK;
}

/* x is [d], y one value in {-1, +1}: binary. Writes only what out's size covers. */
static hcl_status lt_info(void *self, hcl_target_info *out) {
  lt_target *t = self;
  hcl_target_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = (uint32_t)sizeof info;
  info.x.rank = 1;
  info.x.dims[0] = t->d;
  info.y_dim = 1;
  info.task = HCL_TASK_BINARY;
  info.n_classes = 0;
  return hcl_target_info_put(out, &info);
}

/* The keys without a device (w* is drawn in create). */
static hcl_status lt_check(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                           char *err, size_t errlen) {
  (void)run;
  lt_target t;
  memset(&t, 0, sizeof t);
  hcl_report rep = {.err = err, .errlen = errlen};
  hcl_status rc = configure(&t, p, &rep);
  return rc == HCL_OK ? lt_info(&t, info) : rc;
}

static const hcl_target_vt k_vt = {
    .struct_size = sizeof(hcl_target_vt),
    .create = lt_create,
    .destroy = lt_destroy,
    .info = lt_info,
    .sample = lt_sample,
    .probe = lt_probe,
    .eval = lt_eval,
    .check = lt_check,
};

static const hcl_plugin_desc k_desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_TARGET),
    .name = "linear_teacher",
    .version = "1.0.0",
    .summary = "Linearly separable data: y = sign(w*.x), w* uniform on the sphere, Gaussian or "
               "ball inputs with margin |w*.x| >= gamma, optional label flips; probes weight "
               "clustering (cluster_cos, clusters, direction_cos) and linearity "
               "(linear_agreement, teacher_agreement) of two-layer nets; eval \"margin\" = w*.x",
    .citation = "A. Sarussi, A. Brutzkus, A. Globerson, \"Towards understanding learning in "
                "neural networks with linear teachers\", ICML 2021, arXiv:2101.02533",
    .params = k_params,
    .vt = &k_vt,
};

HCL_PLUGIN_DEFINE(linear_teacher, k_desc)
