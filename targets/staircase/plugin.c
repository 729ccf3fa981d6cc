/* The staircase target plugin: descriptor, parameters, create/destroy/info
 * (SPEC 1.1; Abbe et al., NeurIPS 2021, arXiv:2108.10573). */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS probe_replicas
#include "staircase.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_functions[] = {"staircase", "parity", "multi_staircase", "fourier",
                                          NULL};
static const char *const k_inputs[] = {"boolean", "biased", "gaussian", NULL};

static const hcl_param_desc k_params[] = {
    HCL_P_INT("n", "30", 1, 1048576, "input dimension n (x in R^n)"),
    HCL_P_INT("k", "10", 1, 1048576,
              "degree: staircase S_k, parity chi_{1..k}; multi_staircase: length k1 of the first "
              "staircase"),
    HCL_P_ENUM(
        "function", "staircase", k_functions,
        "staircase: S_k = sum_{i<=k} chi_{1..i}; parity: chi_{1..k} (the non-staircase control); "
        "multi_staircase: S_{k,k2} = sum_{i<=k} chi_{1..i} + sum_{i=2..k2} x_1 chi_{k+1..k+i-1} "
        "(not normalised); fourier: the list in `terms`"),
    HCL_P_BOOL(
        "normalize", "true",
        "staircase only: divide S_k by sqrt(k) (every coefficient 1/sqrt(k), variance 1, as in the "
        "paper's ResNet experiments)"),
    HCL_P_INT(
        "k2", "0", 0, 1048576,
        "multi_staircase: length of the second staircase (0 = same as k); it uses coordinates "
        "1 and k+1..k+k2-1, so k+k2-1 <= n"),
    HCL_P_STRING(
        "terms", "",
        "fourier: comma-separated coefficient:indices terms with 1-based space-separated indices, "
        "e.g. '1.0:1, 1.0:1 2, 0.5:1 2 3'; 'c:' is the constant term; equal sets are merged"),
    HCL_P_ENUM("inputs", "boolean", k_inputs,
               "input law: boolean x_i = +-1 uniform; biased x_i = (B - p)/sqrt(p(1-p)), B ~ "
               "Bernoulli(p) (mean 0, variance 1); gaussian x ~ N(0, I_n)"),
    HCL_P_DOUBLE("bias", "0.75", 0, 1, "biased inputs: P(B = 1) = p, strictly between 0 and 1"),
    HCL_P_DOUBLE("noise", "0", 0, 1e6,
                 "label noise: y = f(x) + noise * N(0, 1), independent per sample"),
    HCL_P_INT(
        "probe_samples", "30000", 1, 1e9,
        "probe: inputs of the probe stream (the same ones at every evaluation, never trained on) "
        "averaged to estimate the model's Fourier coefficients c_S = E[f(x) chi_S(x)]"),
    HCL_P_STRING(
        "probe_sets", "",
        "probe: sets to report instead of the default (the chain sets {1..j}, j = 0..k; every "
        "term's set for fourier): comma-separated sets of 1-based space-separated indices, 0 = the "
        "empty set, e.g. '0, 1, 1 2, 1 2 5'"),
    HCL_P_END};

/* Release everything create made (also a half-made target). */
static void stc_destroy(void *self) {
  stc_target *t = self;
  if (!t) return;
  stc_device_release(t);
  stc_terms_free(&t->fn);
  stc_terms_free(&t->probe_sets);
  free(t->seeds);
  free(t);
}

/* Write the manifest notes and the one-line summary of the function. */
static void describe_function(stc_target *t, size_t k, size_t k2, int normalize) {
  hcl_ctx *ctx = t->ctx;
  char head[256], text[4096];
  switch (t->kind) {
  case STC_FN_STAIRCASE:
    if (normalize)
      snprintf(head, sizeof head, "staircase S_%zu(x) = sum_{i=1..%zu} chi_{1..i}(x) / sqrt(%zu)",
               k, k, k);
    else
      snprintf(head, sizeof head, "staircase S_%zu(x) = sum_{i=1..%zu} chi_{1..i}(x)", k, k);
    break;
  case STC_FN_PARITY: snprintf(head, sizeof head, "parity chi_{1..%zu}(x)", k); break;
  case STC_FN_MULTI:
    snprintf(head, sizeof head,
             "multi_staircase S_{%zu,%zu}(x) = sum_{i=1..%zu} chi_{1..i} + sum_{i=2..%zu} x_1 "
             "chi_{%zu..%zu+i-1}",
             k, k2, k, k2, k + 1, k);
    break;
  default: snprintf(head, sizeof head, "fourier function of %zu terms", t->fn.count);
  }
  stc_terms_text(&t->fn, text, sizeof text);
  int sp = stc_staircase_property(&t->fn);
  size_t deg = stc_degree(&t->fn);
  hcl_host->note(ctx, "staircase.function", head, 0);
  hcl_host->note(ctx, "staircase.expansion", text, 0);
  char *json = stc_terms_json(&t->fn);
  if (json) hcl_host->note(ctx, "staircase.terms", json, 1);
  free(json);
  hcl_host->note(ctx, "staircase.staircase_property", sp == 1 ? "true" : "false", 1);
  char num[32];
  snprintf(num, sizeof num, "%zu", deg);
  hcl_host->note(ctx, "staircase.degree", num, 1);
  hcl_host->note(ctx, "staircase.inputs", k_inputs[t->inputs], 0);
  hcl_host->note(ctx, "staircase.rng",
                 "runtime streams (kernels/common.cl): coordinate j of sample i = element "
                 "i*4*ceil(n/4)+j of stream (seed, 0x5354410000000000 | s); label noise = element "
                 "i of stream (seed, 0x5354410100000000 | s); s = 0 train, 1 test, 2 probe",
                 0);
  hcl_host->log(ctx, HCL_LOG_INFO, "staircase: %s, degree %zu, %s the staircase property", head,
                deg, sp == 1 ? "HAS" : "does NOT have");
}

/* Read and check the parameters into t, build the function and its probe
 * sets; every failure names the key and the numbers that disagree. */
static hcl_status configure(stc_target *t, const hcl_params *p, const hcl_report *r) {
  hcl_ctx *ctx = t->ctx;
  int64_t n = hcl_host->param_int(p, "n"), k = hcl_host->param_int(p, "k");
  int64_t k2 = hcl_host->param_int(p, "k2");
  int normalize = hcl_host->param_bool(p, "normalize");
  t->kind = HCL_ENUM(p, "function", k_functions);
  t->inputs = HCL_ENUM(p, "inputs", k_inputs);
  t->bias = hcl_host->param_double(p, "bias");
  t->noise = hcl_host->param_double(p, "noise");
  int64_t ps = hcl_host->param_int(p, "probe_samples");
  const char *terms = hcl_host->param_str(p, "terms");
  const char *psets = hcl_host->param_str(p, "probe_sets");
  char why[512];
  if (n < 1 || k < 1 || k2 < 0 || ps < 1 || t->kind < 0 || t->inputs < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "n = %lld, k = %lld, k2 = %lld, probe_samples = %lld, "
                           "function or inputs out of range",
                           (long long)n, (long long)k, (long long)k2, (long long)ps);
  if (k2 == 0) k2 = k;
  t->n = (size_t)n;
  t->probe_samples = (uint64_t)ps;
  if (t->inputs == STC_IN_BIASED && !(t->bias > 0.0 && t->bias < 1.0))
    return hcl_report_fail(r, HCL_ERR_PARAM, "bias = %g: p must be strictly between 0 and 1",
                           t->bias);
  if (!(t->noise >= 0.0) || !isfinite(t->noise))
    return hcl_report_fail(r, HCL_ERR_PARAM, "noise = %g must be >= 0", t->noise);
  if (ctx && t->kind != STC_FN_FOURIER && terms && *terms)
    hcl_host->log(ctx, HCL_LOG_WARN, "terms is ignored unless function = fourier");
  if (t->kind == STC_FN_FOURIER && !(terms && terms[strspn(terms, " \t")]))
    return hcl_report_fail(
        r, HCL_ERR_PARAM, "function = fourier needs terms, e.g. terms = 1.0:1, 1.0:1 2, 0.5:1 2 3");
  if (stc_function_build(t->kind, t->n, (size_t)k, (size_t)k2, normalize, terms, &t->fn, why,
                         sizeof why))
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s%s", t->kind == STC_FN_FOURIER ? "terms: " : "",
                           why);
  if (psets && *psets) {
    if (stc_sets_parse(psets, t->n, &t->probe_sets, why, sizeof why))
      return hcl_report_fail(r, HCL_ERR_PARAM, "probe_sets: %s", why);
  } else if (stc_probe_default_sets(t->kind, (size_t)k, (size_t)k2, &t->fn, &t->probe_sets)) {
    return hcl_report_fail(r, HCL_ERR_NOMEM, "out of host memory");
  }
  if (ctx) describe_function(t, (size_t)k, (size_t)k2, normalize); /* not in check() */
  return HCL_OK;
}

/* A target for setup->replicas replicas: parameters, notes, device state. */
static hcl_status stc_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {
  *self = NULL;
  if (!setup->replicas || !setup->seeds)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "no replicas/seeds in the setup");
  stc_target *t = calloc(1, sizeof *t);
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
  if (rc == HCL_OK) rc = stc_device_init(t);
  if (rc != HCL_OK) {
    stc_destroy(t);
    return rc;
  }
  *self = t;
  return HCL_OK;
}

/* x is [n], y one real value: regression. Writes only what out's size covers. */
static hcl_status stc_info(void *self, hcl_target_info *out) {
  stc_target *t = self;
  hcl_target_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = (uint32_t)sizeof info;
  info.x.rank = 1;
  info.x.dims[0] = t->n;
  info.y_dim = 1;
  info.task = HCL_TASK_REGRESSION;
  info.n_classes = 0;
  return hcl_target_info_put(out, &info);
}

/* The parameters without a device: configure() on a scratch target (the
 * function's terms and probe sets are small host lists). */
static hcl_status stc_check(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                            char *err, size_t errlen) {
  (void)run;
  stc_target *t = calloc(1, sizeof *t);
  if (!t) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  hcl_report rep = {.err = err, .errlen = errlen};
  hcl_status rc = configure(t, p, &rep);
  if (rc == HCL_OK) rc = stc_info(t, info);
  stc_terms_free(&t->fn);
  stc_terms_free(&t->probe_sets);
  free(t);
  return rc;
}

static const hcl_target_vt k_vt = {
    .struct_size = sizeof(hcl_target_vt),
    .create = stc_create,
    .destroy = stc_destroy,
    .info = stc_info,
    .sample = stc_sample,
    .probe = stc_probe,
    .eval = stc_eval,
    .check = stc_check,
};

static const hcl_plugin_desc k_desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_TARGET),
    .name = "staircase",
    .version = "1.0.0",
    .summary = "Boolean staircases S_k, parities, multi-staircases and Fourier-sparse functions "
               "on boolean, biased or Gaussian inputs, with a Fourier-coefficient probe",
    .citation = "E. Abbe, E. Boix-Adsera, M. Brennan, G. Bresler, D. Nagaraj, \"The staircase "
                "property: how hierarchical structure can guide deep learning\", NeurIPS 2021, "
                "arXiv:2108.10573",
    .params = k_params,
    .vt = &k_vt,
};

HCL_PLUGIN_DEFINE(staircase, k_desc)
