/* three_layer plugin: create (parameters, shape checks, layout, buffers),
 * destroy and the layout accessors. */
#include "three_layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The activation of ENUM key `key` (declared with `choices`, a prefix of
 * tl_act1_choices); relu without params. */
static hcl_status parse_act(const hcl_report *r, const hcl_params *p, const char *key,
                            const char *const *choices, hcl_act *out) {
  static const hcl_act acts[] = {HCL_ACT_RELU, HCL_ACT_LEAKY_RELU, HCL_ACT_QUADRATIC, HCL_ACT_TANH,
                                 HCL_ACT_IDENTITY}; /* tl_act1_choices' order */
  int i = p ? HCL_ENUM(p, key, choices) : 0;
  if (i < 0) /* the runtime has refused any other value */
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s: not an activation", key);
  *out = acts[i];
  return HCL_OK;
}

void tl_destroy(void *self) {
  tl_model *m = self;
  if (!m) return;
  hcl_buf *bufs[] = {&m->phi, &m->u, &m->p_x, &m->p_y, &m->p_hs, &m->p_sz, &m->p_szz, &m->p_szh};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(m->ctx, bufs[i]);
  free(m->seeds);
  free(m);
}

/* Widths and options from the [model] section (the schema's defaults when
 * no params are given). */
static hcl_status read_params(const hcl_report *r, const hcl_params *p, tl_model *m) {
  const hcl_host_api *host = hcl_host;
  int64_t m1 = p ? host->param_int(p, "m1") : 512, m2 = p ? host->param_int(p, "m2") : 512;
  if (m1 < 1 || m2 < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "m1 = %lld, m2 = %lld: both must be >= 1",
                           (long long)m1, (long long)m2);
  m->m1 = (size_t)m1;
  m->m2 = (size_t)m2;
  HCL_TRY(parse_act(r, p, "act1", tl_act1_choices, &m->act1));
  HCL_TRY(parse_act(r, p, "act2", tl_act2_choices, &m->act2));
  if (m->act2 == HCL_ACT_IDENTITY)
    return hcl_report_fail(r, HCL_ERR_PARAM, "act2 = identity makes f linear in phi");
  m->two_layer = p ? host->param_bool(p, "two_layer") : 0;
  m->freeze_w = p ? host->param_bool(p, "freeze_w") : 0;
  m->train_b = p ? host->param_bool(p, "train_b") : 0;
  m->redraw_b = p ? host->param_bool(p, "redraw_b") : 1;
  m->center_y = p ? host->param_bool(p, "center_y") : 1;
  m->w_scale = p ? host->param_double(p, "w_scale") : 1.0;
  m->b_scale = p ? host->param_double(p, "b_scale") : 1.0;
  m->eta1 = p ? host->param_double(p, "eta1") : 0.0;
  m->eta1_scale = p ? host->param_double(p, "eta1_scale") : 1.0;
  m->m1_per_d2 = p ? host->param_double(p, "m1_per_d2") : 0.0;
  m->lambda = p ? host->param_double(p, "lambda") : 1e-3;
  int64_t ps = p ? host->param_int(p, "probe_samples") : 2000;
  m->probe_samples = ps > 0 ? (uint64_t)ps : 0;
  m->b_dist = p ? HCL_ENUM(p, "b_dist", tl_b_dists) : TL_B_NORMAL;
  if (m->b_dist < 0) /* the runtime has refused any other value */
    return hcl_report_fail(r, HCL_ERR_PARAM, "b_dist: expected normal or uniform");
  if (m->w_scale < 0 || m->b_scale < 0 || m->eta1 < 0 || m->lambda < 0 || m->m1_per_d2 < 0 ||
      !(m->eta1_scale > 0))
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "w_scale, b_scale, eta1, lambda and m1_per_d2 must be >= "
                           "0, eta1_scale > 0");
  return HCL_OK;
}

/* Input size and output width from the target. */
static hcl_status read_target(const hcl_report *r, const hcl_target_info *t, tl_model *m) {
  if (!t || !HCL_STRUCT_HAS(t, hcl_target_info, n_classes))
    return hcl_report_fail(r, HCL_ERR_ABI, "target info missing or too small");
  if (t->x.rank < 1 || t->x.rank > 4)
    return hcl_report_fail(r, HCL_ERR_PARAM, "target input rank %u: expected 1 to 4",
                           (unsigned)t->x.rank);
  size_t d = 1;
  for (uint32_t i = 0; i < t->x.rank; i++) d *= t->x.dims[i];
  if (d == 0) return hcl_report_fail(r, HCL_ERR_PARAM, "target input has size 0");
  m->d = d;
  m->task = t->task;
  m->y_dim = t->y_dim ? t->y_dim : 1;
  if (t->task == HCL_TASK_CLASSES) {
    if (t->n_classes < 1)
      return hcl_report_fail(r, HCL_ERR_PARAM, "classification target with 0 classes");
    m->D = t->n_classes;
  } else {
    m->D = t->task == HCL_TASK_REGRESSION ? m->y_dim : 1;
  }
  return HCL_OK;
}

/* m1 from m1_per_d2 (> 0) and the target's d, for the three-layer net. */
static hcl_status resolve_m1(const hcl_report *r, tl_model *m) {
  if (!(m->m1_per_d2 > 0) || m->two_layer) return HCL_OK;
  double w = ceil(m->m1_per_d2 * (double)m->d * (double)m->d);
  if (w > 1048576.0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "m1_per_d2 = %g at d = %zu gives m1 = %.0f > 1048576",
                           m->m1_per_d2, m->d, w);
  m->m1 = (size_t)w;
  return HCL_OK;
}

/* Offsets and named blocks; V first (absent for two_layer), then W, b, a. */
static void layout(tl_model *m) {
  size_t k = tl_phi_dim(m), off = 0, n = 0;
  if (!m->two_layer) {
    m->v_off = off;
    m->blocks[n++] = (hcl_block){"V", off, m->m1, m->d, 0, 0};
    off += m->m1 * m->d;
  }
  m->w_off = off;
  m->blocks[n++] = (hcl_block){"W", off, m->m2, k, 1, (uint32_t)!m->freeze_w};
  off += m->m2 * k;
  m->b_off = off;
  m->blocks[n++] = (hcl_block){"b", off, m->m2, 1, 1, (uint32_t)m->train_b};
  off += m->m2;
  m->a_off = off;
  m->blocks[n++] = (hcl_block){"a", off, m->m2, m->D, 2, 1};
  off += m->m2 * m->D;
  m->n_params = off;
  m->n_blocks = n;
}

hcl_status tl_alloc_f(tl_model *m, hcl_buf *b, size_t n) {
  return hcl_host->buf_alloc(m->ctx, n * sizeof(float), b);
}

static hcl_status alloc_act(tl_model *m, size_t rows, size_t width, hcl_buf *b) {
  return tl_alloc_f(m, b, m->R * rows * width);
}

hcl_status tl_scratch(tl_model *m, size_t rows) {
  const hcl_host_api *host = hcl_host;
  if (m->u.mem && m->scratch_rows >= rows) return HCL_OK;
  hcl_buf *bufs[] = {&m->phi, &m->u};
  for (size_t i = 0; i < 2; i++)
    if (bufs[i]->mem) host->buf_free(m->ctx, bufs[i]);
  m->scratch_rows = 0;
  size_t k = tl_phi_dim(m), wide = k > m->m2 ? k : m->m2; /* phi, later u^2 */
  if (HCL_HOST_HAS(mem_check)) {
    /* the buffers below as a whole first, so that the error names the keys */
    double rb = (double)m->R * (double)rows * sizeof(float), cap = (double)SIZE_MAX / 8.0;
    double all = rb * ((double)wide + (double)m->m2), big = rb * (double)wide;
    char what[256];
    snprintf(what, sizeof what,
             "activations of [model] m1 = %zu, m2 = %zu for %zu replicas x %zu "
             "samples (a chunk of the algorithm's stages or the probe)",
             m->m1, m->m2, m->R, rows);
    HCL_TRY(host->mem_check(m->ctx, all < cap ? (size_t)all : SIZE_MAX,
                            big < cap ? (size_t)big : SIZE_MAX, what));
  }
  HCL_TRY(alloc_act(m, rows, wide, &m->phi));
  HCL_TRY(alloc_act(m, rows, m->m2, &m->u));
  m->scratch_rows = rows;
  return HCL_OK;
}

hcl_status tl_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                     void **self) {
  const hcl_host_api *host = hcl_host;
  *self = NULL;
  if (!setup || !HCL_STRUCT_HAS(setup, hcl_setup, max_batch))
    return host->fail(ctx, HCL_ERR_ABI, "setup missing or too small");
  if (setup->replicas < 1 || !setup->seeds)
    return host->fail(ctx, HCL_ERR_PARAM, "%u replicas (need >= 1 and their seeds)",
                      (unsigned)setup->replicas);
  if (setup->max_batch < 1) return host->fail(ctx, HCL_ERR_PARAM, "max_batch = 0");
  tl_model *m = calloc(1, sizeof *m);
  if (!m) return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  m->ctx = ctx;
  m->R = setup->replicas;
  m->max_batch = setup->max_batch;
  hcl_report rep = {.host = host, .ctx = ctx};
  hcl_status rc = read_params(&rep, setup->params, m);
  if (rc == HCL_OK) rc = read_target(&rep, target, m);
  if (rc == HCL_OK) rc = resolve_m1(&rep, m);
  if (rc == HCL_OK && !(m->seeds = malloc(m->R * sizeof *m->seeds)))
    rc = host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc != HCL_OK) {
    tl_destroy(m);
    return rc;
  }
  memcpy(m->seeds, setup->seeds, m->R * sizeof *m->seeds);
  if (m->two_layer) m->m1 = m->d;
  layout(m);
  *self = m;
  return HCL_OK;
}

size_t tl_phi_dim(const tl_model *m) { return m->two_layer ? m->d : m->m1; }

size_t tl_n_params(void *self) { return ((tl_model *)self)->n_params; }

size_t tl_out_dim(void *self) { return ((tl_model *)self)->D; }

const hcl_block *tl_blocks(void *self, size_t *n_blocks) {
  tl_model *m = self;
  *n_blocks = m->n_blocks;
  return m->blocks;
}

/* The parameters against the target and the run, without a device: what
 * create() and train() (tl_train_check) would refuse. */
hcl_status tl_check(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                    char *err, size_t errlen) {
  hcl_report rep = {.err = err, .errlen = errlen};
  tl_model m;
  memset(&m, 0, sizeof m);
  hcl_status rc = read_params(&rep, p, &m);
  if (rc == HCL_OK) rc = read_target(&rep, target, &m);
  if (rc == HCL_OK) rc = resolve_m1(&rep, &m);
  if (rc == HCL_OK && run->algorithm && strcmp(run->algorithm, "sgd"))
    rc = tl_train_check(&rep, &m, run->algorithm, run->train_size);
  return rc;
}
