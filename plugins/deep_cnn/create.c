/* deep_cnn plugin: create (parameters, shape checks, buffers) and destroy. */
#include "deep_cnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dcnn_destroy(void *self) {
  dcnn *m = self;
  if (!m) return;
  const hcl_host_api *host = hcl_host;
  (void)host;
  dcnn_ridge_release(m);
  dcnn_kernels_release(m);
  free(m->rops);
  free(m->layer);
  free(m->blocks);
  free(m->names);
  free(m->seeds);
  free(m);
}

/* Typed parameters with the schema's defaults when no params are given. */
static int64_t pint(const hcl_params *p, const char *key, int64_t def) {
  return p ? hcl_host->param_int(p, key) : def;
}
static double pdbl(const hcl_params *p, const char *key, double def) {
  return p ? hcl_host->param_double(p, key) : def;
}
/* An ENUM key's index in its declared list (plugin.c); def without params. */
static int penum(const hcl_params *p, const char *key, const char *const *choices, int def) {
  return p ? HCL_ENUM(p, key, choices) : def;
}

/* Read and check width, s, depth, param, bias, lr_factor and the
 * algorithm parameters (the depth is checked against the input later). */
static hcl_status read_params(const hcl_report *r, const hcl_params *p, dcnn *m, int64_t *depth) {
  int64_t width = pint(p, "width", 64), s = pint(p, "s", 2);
  *depth = pint(p, "depth", 0);
  if (width < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "width = %lld: must be at least 1", (long long)width);
  if (s < 2)
    return hcl_report_fail(r, HCL_ERR_PARAM, "s = %lld: the patch size must be at least 2",
                           (long long)s);
  if (*depth < 0 || *depth > 64)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "depth = %lld: expected 1 to 64, or 0 (from the input length)",
                           (long long)*depth);
  m->H = (size_t)width;
  m->s = (size_t)s;
  /* the runtime has refused any value outside the declared lists */
  int param = penum(p, "param", dcnn_param_choices, 0),
      bias = penum(p, "bias", dcnn_bias_choices, 0),
      lrf = penum(p, "lr_factor", dcnn_lr_choices, 0);
  if (param < 0 || bias < 0 || lrf < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "param, bias or lr_factor: not a declared value");
  m->mf = param == 0; /* mf | standard */
  m->bias = bias;     /* none | shared | position: the DCNN_BIAS_* order */
  int width_factor = lrf == 0 ? m->mf : lrf == 1; /* auto | width | none */
  m->lr_scale = width_factor ? (double)m->H : 1.0;
  m->out_scale = m->mf ? 1.0f / (float)m->H : 1.0f;
  m->bias_scale = m->mf ? 0.1f : 1.0f;
  int64_t ls = pint(p, "layer_steps", 0);
  if (ls < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "layer_steps = %lld: must be >= 0", (long long)ls);
  m->layer_steps = (uint64_t)ls;
  int64_t feat = pint(p, "ridge_features", 512), samples = pint(p, "ridge_samples", 0);
  double lambda = pdbl(p, "ridge_lambda", 1e-3);
  m->rc.n_sigma = p ? hcl_host->param_list(p, "ridge_sigma", m->rc.sigma, 64) : 0;
  if (m->rc.n_sigma > 64) m->rc.n_sigma = 64;
  if (m->rc.n_sigma == 0) /* the schema's default */
    m->rc.sigma[0] = 1.0, m->rc.sigma[1] = 0.25, m->rc.n_sigma = 2;
  for (size_t i = 0; i < m->rc.n_sigma; i++)
    if (!(m->rc.sigma[i] >= 0))
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "ridge_sigma value %zu = %g: must be > 0 (or 0: median heuristic)",
                             i + 1, m->rc.sigma[i]);
  if (feat < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "ridge_features = %lld: must be at least 1",
                           (long long)feat);
  if (!(lambda >= 0))
    return hcl_report_fail(r, HCL_ERR_PARAM, "ridge_lambda = %g: must be >= 0", lambda);
  if (samples < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "ridge_samples = %lld: must be >= 0",
                           (long long)samples);
  m->rc.D = (size_t)feat;
  m->rc.lambda = lambda;
  m->rc.samples = (uint64_t)samples;
  return HCL_OK;
}

/* Input channels and length, depth and output width from the target. */
static hcl_status read_target(const hcl_report *r, const hcl_target_info *t, int64_t depth,
                              dcnn *m) {
  if (!t || !HCL_STRUCT_HAS(t, hcl_target_info, n_classes))
    return hcl_report_fail(r, HCL_ERR_ABI, "target info missing or too small");
  if (t->x.rank == 2) {
    m->v = t->x.dims[0];
    m->d = t->x.dims[1];
  } else if (t->x.rank == 1) {
    m->v = 1;
    m->d = t->x.dims[0];
  } else {
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "target input rank %u: expected 2 ([channels, length]) or 1",
                           (unsigned)t->x.rank);
  }
  if (m->v == 0 || m->d == 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "target input [%zu, %zu] is empty", m->v, m->d);
  if (depth == 0) { /* L = log_s d, exactly */
    size_t L = 0, pw = 1;
    while (pw < m->d) pw *= m->s, L++;
    if (pw != m->d || L == 0)
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "input length %zu is not a power of s = %zu (depth = 0 takes "
                             "L from the input length)",
                             m->d, m->s);
    m->L = L;
  } else {
    size_t pw = 1;
    int over = 0;
    for (int64_t k = 0; k < depth; k++) {
      if (pw > ((size_t)-1) / m->s)
        over = 1;
      else
        pw *= m->s;
    }
    if (over || pw != m->d) {
      if (over)
        return hcl_report_fail(r, HCL_ERR_PARAM,
                               "depth = %lld: input length %zu is not s^L = %zu^%lld (too "
                               "large)",
                               (long long)depth, m->d, m->s, (long long)depth);
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "depth = %lld: input length %zu is not s^L = %zu^%lld = %zu",
                             (long long)depth, m->d, m->s, (long long)depth, pw);
    }
    m->L = (size_t)depth;
  }
  m->task = t->task;
  m->y_dim = t->y_dim ? t->y_dim : 1;
  if (t->task == HCL_TASK_CLASSES) {
    if (t->n_classes < 1)
      return hcl_report_fail(r, HCL_ERR_PARAM, "classification target with 0 classes");
    m->n_out = t->n_classes;
  } else {
    m->n_out = t->task == HCL_TASK_REGRESSION && t->y_dim > 1 ? t->y_dim : 1;
  }
  return HCL_OK;
}

/* A lower bound of the graph's arena (one buffer, planned when create
 * returns): the patches and products every layer keeps for backward, all
 * live when backward starts. Checked first (when the runtime offers the
 * check) so that the error names the keys; the runtime checks the exact
 * size when it compiles the graph. */
static hcl_status check_buffers(dcnn *m) {
  const hcl_host_api *host = hcl_host;
  if (!HCL_HOST_HAS(mem_check)) return HCL_OK;
  double RB = (double)m->R * (double)m->max_batch, all = 0;
  for (size_t k = 0; k < m->L; k++)
    all += RB * (double)m->layer[k].P * ((double)m->layer[k].c_in * (double)m->s + (double)m->H);
  char what[256];
  snprintf(what, sizeof what,
           "activations of [model] width = %zu over %zu layers ([target] l) for %zu "
           "replicas x %zu samples (the largest batch)",
           m->H, m->L, m->R, m->max_batch);
  double cap = (double)SIZE_MAX / 8.0;
  all *= sizeof(float);
  size_t bytes = all < cap ? (size_t)all : SIZE_MAX;
  return host->mem_check(m->ctx, bytes, bytes, what);
}

hcl_status dcnn_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                       void **self) {
  const hcl_host_api *host = hcl_host;
  *self = NULL;
  if (!setup || !HCL_STRUCT_HAS(setup, hcl_setup, max_batch))
    return host->fail(ctx, HCL_ERR_ABI, "setup missing or too small");
  if (setup->replicas < 1 || !setup->seeds)
    return host->fail(ctx, HCL_ERR_PARAM, "%u replicas (need >= 1 and their seeds)",
                      (unsigned)setup->replicas);
  if (setup->max_batch < 1) return host->fail(ctx, HCL_ERR_PARAM, "max_batch = 0");
  dcnn *m = calloc(1, sizeof *m);
  if (!m) return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  m->ctx = ctx;
  m->R = setup->replicas;
  m->max_batch = setup->max_batch;
  int64_t depth = 0;
  hcl_report rep = {.host = host, .ctx = ctx};
  hcl_status rc = read_params(&rep, setup->params, m, &depth);
  if (rc == HCL_OK) rc = read_target(&rep, target, depth, m);
  if (rc != HCL_OK) {
    dcnn_destroy(m);
    return rc;
  }
  m->has_rb = !m->mf && m->bias != DCNN_BIAS_NONE;
  m->stage = m->L;
  m->train_from = 1;
  m->seeds = malloc(m->R * sizeof *m->seeds);
  m->rops = calloc(m->L + 1, sizeof *m->rops);
  if (!m->seeds || !m->rops || dcnn_layout(m) != HCL_OK) {
    dcnn_destroy(m);
    return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  }
  memcpy(m->seeds, setup->seeds, m->R * sizeof *m->seeds);
  rc = check_buffers(m);
  if (rc == HCL_OK) rc = dcnn_kernels_build(m);
  if (rc != HCL_OK) {
    dcnn_destroy(m);
    return rc;
  }
  *self = m;
  return HCL_OK;
}

/* The parameters against the target's shape and the run, without a device:
 * read_params and read_target on a scratch model, and what ridge_chain
 * (dcnn_ridge_chain) would refuse. */
hcl_status dcnn_check(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                      char *err, size_t errlen) {
  hcl_report rep = {.err = err, .errlen = errlen};
  dcnn m;
  memset(&m, 0, sizeof m);
  int64_t depth = 0;
  hcl_status rc = read_params(&rep, p, &m, &depth);
  if (rc == HCL_OK) rc = read_target(&rep, target, depth, &m);
  if (rc != HCL_OK || !run->algorithm || strcmp(run->algorithm, "ridge_chain")) return rc;
  if (m.task != HCL_TASK_CLASSES)
    return hcl_report_fail(&rep, HCL_ERR_PARAM,
                           "ridge_chain needs a classification target (it regresses the one-hot "
                           "class)");
  if (!m.rc.samples && !run->train_size)
    return hcl_report_fail(&rep, HCL_ERR_PARAM,
                           "ridge_chain with [train] train_size = 0 (fresh samples): set [model] "
                           "ridge_samples");
  return HCL_OK;
}
