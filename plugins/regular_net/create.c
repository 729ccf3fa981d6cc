/* regular_net plugin: create (parameters, shape checks, buffers) and destroy. */
#include "regular_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values used when a caller hands no params (the schema's defaults). */
enum { DEFAULT_WIDTH = 64, DEFAULT_DEPTH = 2, DEFAULT_NEURON_CHECK = 50 };

void hcl_rn_destroy(void *self) {
  hcl_rn *m = self;
  if (!m) return;
  const hcl_host_api *host = hcl_host;
  if (m->cmask.mem) host->buf_free(m->ctx, &m->cmask);
  if (m->eff.mem) host->buf_free(m->ctx, &m->eff);
  if (m->keep.mem) host->buf_free(m->ctx, &m->keep);
  if (m->k_mul) clReleaseKernel(m->k_mul);
  if (m->k_grad) clReleaseKernel(m->k_grad);
  if (m->prog) clReleaseProgram(m->prog);
  free(m->seeds);
  free(m->layers);
  free(m->blocks);
  free(m->names);
  free(m);
}

static hcl_status parse_enum(const hcl_report *r, const hcl_params *p, const char *key,
                             const char *const *choices, int *out) {
  const char *s = p ? hcl_host->param_str(p, key) : choices[0];
  int i = p ? HCL_ENUM(p, key, choices) : 0;
  if (i < 0) {
    char list[256] = "";
    for (size_t k = 0; choices[k]; k++) {
      if (k) strncat(list, ", ", sizeof list - strlen(list) - 1);
      strncat(list, choices[k], sizeof list - strlen(list) - 1);
    }
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s = %s: expected one of %s", key, s ? s : "(none)",
                           list);
  }
  *out = i;
  return HCL_OK;
}

static const char *const act_names[] = {"relu", "leaky_relu", "quadratic",
                                        "tanh", "identity",   NULL};
static const hcl_act act_ids[] = {HCL_ACT_RELU, HCL_ACT_LEAKY_RELU, HCL_ACT_QUADRATIC, HCL_ACT_TANH,
                                  HCL_ACT_IDENTITY};
static const char *const readout_names[] = {"last", "all", NULL};
static const char *const fixed_names[] = {"none", "pm_v", NULL};
static const char *const init_names[] = {"uniform_fan_in", "normal", "zero", NULL};

static int64_t int_or(const hcl_params *p, const char *key, int64_t def) {
  return p ? hcl_host->param_int(p, key) : def;
}
static double dbl_or(const hcl_params *p, const char *key, double def) {
  return p ? hcl_host->param_double(p, key) : def;
}
static int bool_or(const hcl_params *p, const char *key, int def) {
  return p ? hcl_host->param_bool(p, key) : def;
}

/* Read and check every parameter of the [model] section. */
static hcl_status read_params(const hcl_report *r, const hcl_params *p, hcl_rn *m) {
  int64_t width = int_or(p, "width", DEFAULT_WIDTH), depth = int_or(p, "depth", DEFAULT_DEPTH);
  if (width < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "width = %lld: must be at least 1", (long long)width);
  if (depth < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "depth = %lld: must be at least 1", (long long)depth);
  m->W = (size_t)width;
  m->L = (size_t)depth;
  int a;
  HCL_TRY(parse_enum(r, p, "activation", act_names, &a));
  m->act = act_ids[a];
  HCL_TRY(parse_enum(r, p, "readout", readout_names, &m->readout));
  HCL_TRY(parse_enum(r, p, "readout_fixed", fixed_names, &m->fixed));
  HCL_TRY(parse_enum(r, p, "init", init_names, &m->init));
  m->p1 = dbl_or(p, "p1", 1.0);
  m->p2 = dbl_or(p, "p2", 1.0);
  if (!(m->p1 >= 0 && m->p1 <= 1) || !(m->p2 >= 0 && m->p2 <= 1))
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "p1 = %g, p2 = %g: connection probabilities must lie in [0, 1]", m->p1,
                           m->p2);
  m->skip = bool_or(p, "input_skip", 1);
  m->bias = bool_or(p, "bias", 1);
  m->readout_bias = bool_or(p, "readout_bias", 1);
  m->init_scale = dbl_or(p, "init_scale", 1.0);
  if (!(m->init_scale >= 0))
    return hcl_report_fail(r, HCL_ERR_PARAM, "init_scale = %g: must be >= 0", m->init_scale);
  m->neuron_steps = (uint64_t)int_or(p, "neuron_steps", 0);
  m->neuron_patience = (uint64_t)int_or(p, "neuron_patience", 0);
  m->neuron_check = (uint64_t)int_or(p, "neuron_check", DEFAULT_NEURON_CHECK);
  m->passes = (uint64_t)int_or(p, "layer_passes", 1);
  m->lambda1 = dbl_or(p, "lambda1", 0.0);
  m->lambda2 = dbl_or(p, "lambda2", 0.0);
  if (m->neuron_check < 1 || m->passes < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "neuron_check = %llu, layer_passes = %llu: both must be >= 1",
                           (unsigned long long)m->neuron_check, (unsigned long long)m->passes);
  if (!(m->lambda1 >= 0) || !(m->lambda2 >= 0))
    return hcl_report_fail(r, HCL_ERR_PARAM, "lambda1 = %g, lambda2 = %g: penalties must be >= 0",
                           m->lambda1, m->lambda2);
  return HCL_OK;
}

/* Input size and output width from the target; the readout's shape. */
static hcl_status read_target(const hcl_report *r, const hcl_target_info *t, hcl_rn *m) {
  if (!t || !HCL_STRUCT_HAS(t, hcl_target_info, n_classes))
    return hcl_report_fail(r, HCL_ERR_ABI, "target info missing or too small");
  if (t->x.rank < 1 || t->x.rank > 4)
    return hcl_report_fail(r, HCL_ERR_PARAM, "target input rank %u: expected 1 to 4",
                           (unsigned)t->x.rank);
  size_t d = hcl_shape_size(&t->x);
  if (d == 0) return hcl_report_fail(r, HCL_ERR_PARAM, "target input has size 0");
  m->d = d;
  m->y_dim = t->y_dim ? t->y_dim : 1;
  if (t->task == HCL_TASK_CLASSES) {
    if (t->n_classes < 1)
      return hcl_report_fail(r, HCL_ERR_PARAM, "classification target with 0 classes");
    m->D = t->n_classes;
  } else {
    m->D = 1;
  }
  m->U = m->readout == HCL_RN_READOUT_ALL ? m->L * m->W : m->W;
  if (m->fixed == HCL_RN_FIXED_PM_V) {
    if (m->D != 1)
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "readout_fixed = pm_v needs one output, the target has %zu "
                             "classes",
                             m->D);
    if (m->U % 2)
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "readout_fixed = pm_v needs an even number 2k of readout "
                             "units, got %zu (width %zu x %zu layer%s read out)",
                             m->U, m->W, m->U / m->W, m->U / m->W > 1 ? "s" : "");
  }
  return HCL_OK;
}

/* The graph's activations and their gradients, about z, h of L layers plus
 * two gradients: refused here, naming the keys, before the runtime plans
 * them (when the runtime offers the check). */
static hcl_status check_act_memory(hcl_rn *m) {
  const hcl_host_api *host = hcl_host;
  if (!HCL_HOST_HAS(mem_check)) return HCL_OK;
  double one = (double)m->R * (double)m->max_batch * (double)m->W * sizeof(float);
  double all = one * (2.0 * (double)m->L + 2.0);
  char what[256];
  snprintf(what, sizeof what,
           "regular_net: activations of [model] depth = %zu x width = %zu for %zu replicas x %zu "
           "samples (the largest batch)",
           m->L, m->W, m->R, m->max_batch);
  size_t cap = SIZE_MAX;
  return host->mem_check(m->ctx, all < (double)cap ? (size_t)all : cap,
                         one < (double)cap ? (size_t)one : cap, what);
}

/* The memory check of the graph's buffers, and the masks. */
static hcl_status alloc_all(hcl_rn *m) {
  const hcl_host_api *host = hcl_host;
  HCL_TRY(check_act_memory(m));
  m->masked = m->p1 < 1.0 || m->p2 < 1.0;
  if (!m->masked) return HCL_OK;
  HCL_TRY(host->buf_alloc(m->ctx, m->R * m->n_params * sizeof(float), &m->cmask));
  HCL_TRY(host->buf_alloc(m->ctx, m->R * m->n_params * sizeof(float), &m->eff));
  HCL_TRY(hcl_rn_kernels(m));
  return hcl_rn_draw_masks(m);
}

hcl_status hcl_rn_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                         void **self) {
  const hcl_host_api *host = hcl_host;
  *self = NULL;
  if (!setup || !HCL_STRUCT_HAS(setup, hcl_setup, max_batch))
    return host->fail(ctx, HCL_ERR_ABI, "setup missing or too small");
  if (setup->replicas < 1 || !setup->seeds)
    return host->fail(ctx, HCL_ERR_PARAM, "%u replicas (need >= 1 and their seeds)",
                      (unsigned)setup->replicas);
  if (setup->max_batch < 1) return host->fail(ctx, HCL_ERR_PARAM, "max_batch = 0");
  hcl_rn *m = calloc(1, sizeof *m);
  if (!m) return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  m->ctx = ctx;
  m->R = setup->replicas;
  m->max_batch = setup->max_batch;
  hcl_report rep = {.host = host, .ctx = ctx};
  hcl_status rc = read_params(&rep, setup->params, m);
  if (rc == HCL_OK) rc = read_target(&rep, target, m);
  if (rc != HCL_OK) {
    hcl_rn_destroy(m);
    return rc;
  }
  m->seeds = malloc(m->R * sizeof *m->seeds);
  if (!m->seeds || hcl_rn_layout(m) != HCL_OK) {
    hcl_rn_destroy(m);
    return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  }
  memcpy(m->seeds, setup->seeds, m->R * sizeof *m->seeds);
  rc = alloc_all(m);
  if (rc != HCL_OK) {
    hcl_rn_destroy(m);
    return rc;
  }
  *self = m;
  return HCL_OK;
}

/* The [model] keys against the target and the run, without a device; also
 * what layerwise_scd (hcl_rn_train) refuses. */
hcl_status hcl_rn_check(const hcl_params *p, const hcl_check_info *run,
                        const hcl_target_info *target, char *err, size_t errlen) {
  hcl_report rep = {.err = err, .errlen = errlen};
  hcl_rn *m = calloc(1, sizeof *m);
  if (!m) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  hcl_status rc = read_params(&rep, p, m);
  if (rc == HCL_OK) rc = read_target(&rep, target, m);
  if (rc == HCL_OK && run->algorithm && !strcmp(run->algorithm, "layerwise_scd"))
    rc = hcl_rn_scd_check(&rep, m);
  free(m);
  return rc;
}
