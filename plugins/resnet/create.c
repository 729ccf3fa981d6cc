/* resnet plugin: create (parameters, shape checks, buffers) and destroy. */
#include "resnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Defaults when a caller hands no params (the schema's defaults). */
enum { DEFAULT_WIDTH = 40, DEFAULT_DEPTH = 5 };

static hcl_status parse_act(const hcl_report *r, const char *s, hcl_act *out) {
  if (!s || !strcmp(s, "relu"))
    *out = HCL_ACT_RELU;
  else if (!strcmp(s, "leaky_relu"))
    *out = HCL_ACT_LEAKY_RELU;
  else if (!strcmp(s, "quadratic"))
    *out = HCL_ACT_QUADRATIC;
  else
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "resnet: activation = %s: expected relu, leaky_relu or quadratic", s);
  return HCL_OK;
}

void hcl_resnet_destroy(void *self) {
  hcl_resnet *m = self;
  if (!m) return;
  const hcl_host_api *host = hcl_resnet_host;
  for (size_t l = 0; m->z && l + 1 < m->depth; l++) {
    if (m->z[l].mem) host->buf_free(m->ctx, &m->z[l]);
    if (m->h[l].mem) host->buf_free(m->ctx, &m->h[l]);
  }
  if (m->dh.mem) host->buf_free(m->ctx, &m->dh);
  if (m->dz.mem) host->buf_free(m->ctx, &m->dz);
  free(m->z);
  free(m->h);
  free(m->seeds);
  free(m->w_off);
  free(m->b_off);
  free(m->in_dim);
  free(m->out_dims);
  free(m->blocks);
  free(m->names);
  free(m);
}

/* Read and check width, depth, activation. */
static hcl_status read_params(const hcl_report *r, const hcl_params *p, hcl_resnet *m) {
  const hcl_host_api *host = hcl_resnet_host;
  int64_t width = p ? host->param_int(p, "width") : DEFAULT_WIDTH;
  int64_t depth = p ? host->param_int(p, "depth") : DEFAULT_DEPTH;
  if (width < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "resnet: width = %lld: must be at least 1",
                           (long long)width);
  if (depth < 2)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "resnet: depth = %lld: must be at least 2 (input layer and readout)",
                           (long long)depth);
  m->width = (size_t)width;
  m->depth = (size_t)depth;
  return parse_act(r, p ? host->param_str(p, "activation") : NULL, &m->act);
}

/* Input size and output width from the target. */
static hcl_status read_target(const hcl_report *r, const hcl_target_info *t, hcl_resnet *m) {
  if (!t || t->struct_size < offsetof(hcl_target_info, n_classes) + sizeof t->n_classes)
    return hcl_report_fail(r, HCL_ERR_ABI, "resnet: target info missing or too small");
  if (t->x.rank < 1 || t->x.rank > 4)
    return hcl_report_fail(r, HCL_ERR_PARAM, "resnet: target input rank %u: expected 1 to 4",
                           (unsigned)t->x.rank);
  size_t n_in = 1;
  for (uint32_t i = 0; i < t->x.rank; i++) n_in *= t->x.dims[i];
  if (n_in == 0) return hcl_report_fail(r, HCL_ERR_PARAM, "resnet: target input has size 0");
  m->n_in = n_in;
  if (t->task == HCL_TASK_CLASSES) {
    if (t->n_classes < 1)
      return hcl_report_fail(r, HCL_ERR_PARAM, "resnet: classification target with 0 classes");
    m->out_dim = t->n_classes;
  } else {
    m->out_dim = 1;
  }
  return HCL_OK;
}

static hcl_status alloc_act(hcl_resnet *m, hcl_buf *b) {
  return hcl_resnet_host->buf_alloc(m->ctx, m->R * m->max_batch * m->width * sizeof(float), b);
}

/* z, h of depth-1 layers plus dh, dz: refused as a whole, naming the keys,
 * before any of them is allocated (when the runtime offers the check). */
static hcl_status check_act_memory(hcl_resnet *m) {
  const hcl_host_api *host = hcl_resnet_host;
  if (host->struct_size < offsetof(hcl_host_api, mem_check) + sizeof host->mem_check) return HCL_OK;
  double one = (double)m->R * (double)m->max_batch * (double)m->width * sizeof(float);
  double all = one * (2.0 * (double)(m->depth - 1) + 2.0);
  char what[256];
  snprintf(what, sizeof what,
           "resnet: activations of [model] depth = %zu x width = %zu for %zu replicas x %zu "
           "samples (the largest batch)",
           m->depth, m->width, m->R, m->max_batch);
  size_t cap = SIZE_MAX;
  return host->mem_check(m->ctx, all < (double)cap ? (size_t)all : cap,
                         one < (double)cap ? (size_t)one : cap, what);
}

hcl_status hcl_resnet_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                             void **self) {
  const hcl_host_api *host = hcl_resnet_host;
  *self = NULL;
  if (!setup || setup->struct_size < offsetof(hcl_setup, max_batch) + sizeof setup->max_batch)
    return host->fail(ctx, HCL_ERR_ABI, "resnet: setup missing or too small");
  if (setup->replicas < 1 || !setup->seeds)
    return host->fail(ctx, HCL_ERR_PARAM, "resnet: %u replicas (need >= 1 and their seeds)",
                      (unsigned)setup->replicas);
  if (setup->max_batch < 1) return host->fail(ctx, HCL_ERR_PARAM, "resnet: max_batch = 0");
  hcl_resnet *m = calloc(1, sizeof *m);
  if (!m) return host->fail(ctx, HCL_ERR_NOMEM, "resnet: out of host memory");
  m->ctx = ctx;
  m->R = setup->replicas;
  m->max_batch = setup->max_batch;
  hcl_report rep = {.host = host, .ctx = ctx};
  hcl_status rc = read_params(&rep, setup->params, m);
  if (rc == HCL_OK) rc = read_target(&rep, target, m);
  if (rc != HCL_OK) {
    hcl_resnet_destroy(m);
    return rc;
  }
  m->seeds = malloc(m->R * sizeof *m->seeds);
  m->z = calloc(m->depth - 1, sizeof *m->z);
  m->h = calloc(m->depth - 1, sizeof *m->h);
  if (!m->seeds || !m->z || !m->h || hcl_resnet_layout(m) != HCL_OK) {
    hcl_resnet_destroy(m);
    return host->fail(ctx, HCL_ERR_NOMEM, "resnet: out of host memory");
  }
  memcpy(m->seeds, setup->seeds, m->R * sizeof *m->seeds);
  rc = check_act_memory(m);
  for (size_t l = 0; rc == HCL_OK && l + 1 < m->depth; l++) {
    rc = alloc_act(m, &m->z[l]);
    if (rc == HCL_OK) rc = alloc_act(m, &m->h[l]);
  }
  if (rc == HCL_OK) rc = alloc_act(m, &m->dh);
  if (rc == HCL_OK) rc = alloc_act(m, &m->dz);
  if (rc != HCL_OK) {
    hcl_resnet_destroy(m);
    return rc;
  }
  *self = m;
  return HCL_OK;
}

/* The [model] keys against the target, without a device (hcl_model_vt.check). */
hcl_status hcl_resnet_check(const hcl_params *p, const hcl_check_info *run,
                            const hcl_target_info *target, char *err, size_t errlen) {
  (void)run;
  hcl_report rep = {.err = err, .errlen = errlen, .strip = "resnet: "};
  hcl_resnet m;
  memset(&m, 0, sizeof m);
  hcl_status rc = read_params(&rep, p, &m);
  if (rc == HCL_OK) rc = read_target(&rep, target, &m);
  return rc;
}
