/* taylor plugin: create (parameters, shape checks, layout, buffers, kernels)
 * and destroy. */
#include "taylor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char hcl_cl_taylor[];

/* The schema's defaults, for a caller that hands no params. */
#define DEF_WIDTH 1024
#define DEF_ORDER 2
#define DEF_REP_WIDTH 512
#define DEF_INIT_STD 0.01
#define DEF_W0_STD 1.0
#define DEF_RCOND 1e-6
#define DEF_WHITEN_PER_UNIT 20 /* whiten_size = 0: this many samples per unit of h */
/* Work-group of the head's reduction (a power of two; lowered to fit the device). */
#define HEAD_WG 64

static const char *const block_names[HCL_TAYLOR_B_COUNT] = {
    "w", "w0", "a", "rep.v", "rep.b", "rep.whiten", "rep.offset", "rep.fitted"};

void hcl_taylor_destroy(void *self) {
  hcl_taylor *m = self;
  if (!m) return;
  const hcl_host_api *host = hcl_host;
  hcl_buf *bufs[] = {&m->zb, &m->hb, &m->pen_n2, &m->wtb, &m->xsb};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) host->buf_free(m->ctx, bufs[i]);
  if (m->k_head) clReleaseKernel(m->k_head);
  if (m->k_dcoef) clReleaseKernel(m->k_dcoef);
  cl_kernel fk[] = {m->k_wt, m->k_fhead, m->k_fwgrad};
  for (size_t i = 0; i < sizeof fk / sizeof *fk; i++)
    if (fk[i]) clReleaseKernel(fk[i]);
  if (m->k_pen_rows) clReleaseKernel(m->k_pen_rows);
  if (m->k_pen_apply) clReleaseKernel(m->k_pen_apply);
  if (m->prog) clReleaseProgram(m->prog);
  free(m->seeds);
  free(m);
}

/* activation (its index in hcl_taylor_activations: auto, then
 * hcl_taylor_act's order) for the order; relu has no sigma''. */
static hcl_status parse_act(const hcl_report *r, hcl_taylor *m, int i) {
  if (i < 0 || i > HCL_TAYLOR_TANH + 1)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "activation: expected auto, relu, relu3, quadratic, softplus or tanh");
  m->act = i > 0 ? (hcl_taylor_act)(i - 1) : m->order == 1 ? HCL_TAYLOR_RELU : HCL_TAYLOR_RELU3;
  if (m->order == 2 && m->act == HCL_TAYLOR_RELU)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "activation = relu with order = 2: relu'' is a delta at 0, so the "
                           "quadratic model is 0 almost everywhere; use relu3 (relu^3/6, sigma'' = "
                           "relu), softplus, tanh or quadratic");
  return HCL_OK;
}

/* Read and check the [model] keys. */
static hcl_status read_params(const hcl_report *r, const hcl_params *p, hcl_taylor *m) {
  const hcl_host_api *host = hcl_host;
  int64_t width = p ? host->param_int(p, "width") : DEF_WIDTH;
  int64_t order = p ? host->param_int(p, "order") : DEF_ORDER;
  int64_t D = p ? host->param_int(p, "rep_width") : DEF_REP_WIDTH;
  int rep = p ? HCL_ENUM(p, "representation", hcl_taylor_representations) : 0; /* raw */
  m->init_std = p ? host->param_double(p, "init_std") : DEF_INIT_STD;
  m->w0_std = p ? host->param_double(p, "w0_std") : DEF_W0_STD;
  m->rep_bias = p ? host->param_double(p, "rep_bias") : 0.0;
  m->rcond = p ? host->param_double(p, "whiten_rcond") : DEF_RCOND;
  int64_t ws = p ? host->param_int(p, "whiten_size") : 0;
  m->penalty = p ? host->param_double(p, "penalty_24") : 0.0;
  if (width < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "width = %lld: must be at least 1", (long long)width);
  if (order != 1 && order != 2)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "order = %lld: expected 1 (NTK) or 2 "
                           "(QuadNTK)",
                           (long long)order);
  if (rep < 0) return hcl_report_fail(r, HCL_ERR_PARAM, "representation: expected raw or neural");
  if (D < 1)
    return hcl_report_fail(r, HCL_ERR_PARAM, "rep_width = %lld: must be at least 1", (long long)D);
  if (!(m->penalty >= 0) || !isfinite(m->penalty))
    return hcl_report_fail(r, HCL_ERR_PARAM, "penalty_24 = %g: must be finite and >= 0",
                           m->penalty);
  if (!(m->init_std >= 0) || !(m->w0_std >= 0) || !(m->rep_bias >= 0) || !(m->rcond >= 0) ||
      m->rcond > 1)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "init_std = %g, w0_std = %g, rep_bias = "
                           "%g must be >= 0 and whiten_rcond = %g in [0, 1]",
                           m->init_std, m->w0_std, m->rep_bias, m->rcond);
  m->m = (size_t)width;
  m->order = (int)order;
  m->neural = rep == 1;
  m->D = m->neural ? (size_t)D : 0;
  if (ws < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "whiten_size = %lld: must be >= 0", (long long)ws);
  m->whiten_size = (uint64_t)ws; /* 0: automatic, set once D is known (size_rep) */
  int64_t k = p ? host->param_int(p, "rep_power") : 0;
  if (k < 0 || k > 8)
    return hcl_report_fail(r, HCL_ERR_PARAM, "rep_power = %lld: expected 0 to 8", (long long)k);
  m->rep_power = (int)k;
  return parse_act(r, m, p ? HCL_ENUM(p, "activation", hcl_taylor_activations) : 0);
}

/* D = d^rep_power when rep_power > 0 (the paper's representation needs
 * D >~ d^ceil(p/2) units to express the target's degree-ceil(p/2) factors),
 * else rep_width; then the automatic whiten_size. After read_target. */
static hcl_status size_rep(const hcl_report *r, hcl_taylor *m) {
  if (!m->neural) return HCL_OK;
  if (m->rep_power > 0) {
    double D = 1;
    for (int i = 0; i < m->rep_power; i++) D *= (double)m->d;
    if (D > 4096)
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "rep_power = %d: D = d^%d = %.0f for d = %zu exceeds 4096 "
                             "(the range of rep_width)",
                             m->rep_power, m->rep_power, D, m->d);
    m->D = (size_t)D;
  }
  if (!m->whiten_size) m->whiten_size = DEF_WHITEN_PER_UNIT * (uint64_t)m->D;
  return HCL_OK;
}

/* Input size from the target; one output (regression, or the score of a
 * binary task). */
static hcl_status read_target(const hcl_report *r, const hcl_target_info *t, hcl_taylor *m) {
  if (!t || t->struct_size < offsetof(hcl_target_info, n_classes) + sizeof t->n_classes)
    return hcl_report_fail(r, HCL_ERR_ABI, "target info missing or too small");
  if (t->x.rank < 1 || t->x.rank > 4)
    return hcl_report_fail(r, HCL_ERR_PARAM, "target input rank %u: expected 1 to 4",
                           (unsigned)t->x.rank);
  size_t d = 1;
  for (uint32_t i = 0; i < t->x.rank; i++) d *= t->x.dims[i];
  if (d == 0) return hcl_report_fail(r, HCL_ERR_PARAM, "target input has size 0");
  if (t->task == HCL_TASK_CLASSES)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "the target is a %zu-class classification task; the Taylor model "
                           "has one output (regression or binary labels)",
                           t->n_classes);
  if (t->task == HCL_TASK_REGRESSION && t->y_dim > 1)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "the target has %zu outputs per sample; the Taylor model has one",
                           t->y_dim);
  m->d = d;
  m->y_dim = t->y_dim ? t->y_dim : 1;
  return HCL_OK;
}

/* Blocks in order: w (trainable), then the frozen w0, a and the
 * representation's V, b, whitening matrix, offset and fitted flag. */
static void layout(hcl_taylor *m) {
  size_t rows[HCL_TAYLOR_B_COUNT] = {m->m, m->m, m->m, m->D, m->D, m->D, m->D, 1};
  size_t cols[HCL_TAYLOR_B_COUNT] = {m->dz, m->dz, 1, m->d, 1, m->D, 1, 1};
  uint32_t group[HCL_TAYLOR_B_COUNT] = {0, 1, 1, 2, 2, 2, 2, 2};
  m->n_blocks = m->neural ? HCL_TAYLOR_B_COUNT : HCL_TAYLOR_B_V;
  size_t off = 0;
  for (size_t b = 0; b < m->n_blocks; b++) {
    m->off[b] = off;
    m->blocks[b] = (hcl_block){block_names[b], off, rows[b], cols[b], group[b], b == 0};
    off += rows[b] * cols[b];
  }
  m->n_params = off;
}

static hcl_status alloc(hcl_taylor *m, size_t width, hcl_buf *b) {
  return hcl_host->buf_alloc(m->ctx, m->R * m->max_batch * width * sizeof(float), b);
}

/* Build the kernels; the head's work-group is HEAD_WG or the largest power
 * of two the device runs it with. */
static hcl_status build(hcl_taylor *m) {
  const hcl_host_api *host = hcl_host;
  HCL_TRY(host->program(m->ctx, "taylor", hcl_cl_taylor, "", &m->prog));
  if (m->fused) {
    HCL_TRY(hcl_taylor_fused_setup(m));
  } else {
    HCL_TRY(host->kernel(m->ctx, m->prog, "tay_head", &m->k_head));
    HCL_TRY(host->kernel(m->ctx, m->prog, "tay_dcoef", &m->k_dcoef));
    size_t kmax = 0;
    cl_int err = clGetKernelWorkGroupInfo(m->k_head, host->cl_device(m->ctx),
                                          CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL);
    if (err != CL_SUCCESS || kmax < 1) kmax = 1;
    m->wg = HEAD_WG;
    while (m->wg > kmax) m->wg >>= 1;
  }
  if (!(m->penalty > 0)) return HCL_OK;
  HCL_TRY(host->kernel(m->ctx, m->prog, "tay_pen_rows", &m->k_pen_rows));
  HCL_TRY(host->kernel(m->ctx, m->prog, "tay_pen_apply", &m->k_pen_apply));
  return host->buf_alloc(m->ctx, m->R * m->m * sizeof(float), &m->pen_n2);
}

/* The activations as a whole at their peak (h and z of the whitening, the
 * graph's z, U, S and dS; on CPUs no [R, n, m] array, only the fused
 * backward's accumulators, the size of w), checked first (when the runtime
 * offers the check), so that the error names the keys. */
static hcl_status check_buffers(hcl_taylor *m) {
  const hcl_host_api *host = hcl_host;
  if (host->struct_size < offsetof(hcl_host_api, mem_check) + sizeof host->mem_check) return HCL_OK;
  double rb = (double)m->R * (double)m->max_batch * sizeof(float);
  double D = m->neural ? (double)m->D : 0.0, w = (double)m->m;
  double xs = hcl_taylor_fused_acc_bytes(m);
  double head = m->fused ? xs : rb * w; /* fused: tay_fused_wgrad's accumulators */
  double all = rb * 3.0 * D + (m->fused ? xs : 3.0 * head), big = rb * D > head ? rb * D : head,
         cap = (double)SIZE_MAX / 8.0;
  char what[256];
  snprintf(what, sizeof what,
           "taylor: activations of [model] width = %zu%s for %zu replicas x %zu samples (the "
           "largest batch)",
           m->m, m->neural ? " and rep_width" : "", m->R, m->max_batch);
  return host->mem_check(m->ctx, all < cap ? (size_t)all : SIZE_MAX,
                         big < cap ? (size_t)big : SIZE_MAX, what);
}

static hcl_status setup_buffers(hcl_taylor *m) {
  /* CPU devices: the fused head (fused.c); others: the head's tree per
   * group after the runtime's products */
  cl_device_type type = 0;
  clGetDeviceInfo(hcl_host->cl_device(m->ctx), CL_DEVICE_TYPE, sizeof type, &type, NULL);
  m->fused = (type & CL_DEVICE_TYPE_CPU) != 0;
  HCL_TRY(check_buffers(m));
  if (m->neural) {
    HCL_TRY(alloc(m, m->D, &m->hb)); /* zb: while the whitening is fitted (graph.c) */
  }
  return build(m);
}

hcl_status hcl_taylor_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                             void **self) {
  const hcl_host_api *host = hcl_host;
  *self = NULL;
  if (!setup || setup->struct_size < offsetof(hcl_setup, max_batch) + sizeof setup->max_batch)
    return host->fail(ctx, HCL_ERR_ABI, "setup missing or too small");
  if (setup->replicas < 1 || !setup->seeds)
    return host->fail(ctx, HCL_ERR_PARAM, "%u replicas (need >= 1 and their seeds)",
                      (unsigned)setup->replicas);
  if (setup->max_batch < 1) return host->fail(ctx, HCL_ERR_PARAM, "max_batch = 0");
  hcl_taylor *m = calloc(1, sizeof *m);
  if (!m) return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  m->ctx = ctx;
  m->R = setup->replicas;
  m->max_batch = setup->max_batch;
  m->train_size = setup->train_size;
  hcl_report rep = {.host = host, .ctx = ctx};
  hcl_status rc = read_params(&rep, setup->params, m);
  if (rc == HCL_OK) rc = read_target(&rep, target, m);
  if (rc == HCL_OK) rc = size_rep(&rep, m);
  if (rc != HCL_OK) {
    hcl_taylor_destroy(m);
    return rc;
  }
  m->dz = m->neural ? m->D : m->d;
  layout(m);
  hcl_taylor_ops(m);
  if (m->order == 2 && m->init_std == 0)
    host->log(ctx, HCL_LOG_WARN,
              "taylor: order = 2 with init_std = 0: w = 0 is a stationary "
              "point of the quadratic model, gradient descent will not move");
  m->seeds = malloc(m->R * sizeof *m->seeds);
  if (!m->seeds) {
    hcl_taylor_destroy(m);
    return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  }
  memcpy(m->seeds, setup->seeds, m->R * sizeof *m->seeds);
  rc = setup_buffers(m);
  if (rc != HCL_OK) {
    hcl_taylor_destroy(m);
    return rc;
  }
  *self = m;
  return HCL_OK;
}

size_t hcl_taylor_n_params(void *self) { return ((hcl_taylor *)self)->n_params; }

size_t hcl_taylor_out_dim(void *self) {
  (void)self;
  return 1;
}

const hcl_block *hcl_taylor_blocks(void *self, size_t *n_blocks) {
  hcl_taylor *m = self;
  *n_blocks = m->n_blocks;
  return m->blocks;
}

/* The [model] keys against the target, without a device (hcl_model_vt.check).
 * A neural representation works with any algorithm (prepare() whitens it);
 * the penalty only with gd (the runtime's sgd would silently drop it). */
hcl_status hcl_taylor_check(const hcl_params *p, const hcl_check_info *run,
                            const hcl_target_info *target, char *err, size_t errlen) {
  hcl_report rep = {.err = err, .errlen = errlen};
  hcl_taylor m;
  memset(&m, 0, sizeof m);
  HCL_TRY(read_params(&rep, p, &m));
  const char *alg = run && run->algorithm && *run->algorithm ? run->algorithm : "sgd";
  if (m.penalty > 0 && strcmp(alg, "gd"))
    return hcl_report_fail(&rep, HCL_ERR_PARAM,
                           "penalty_24 = %g needs [train] algorithm = gd (it is applied by gd; "
                           "algorithm %s would train without it)",
                           m.penalty, alg);
  HCL_TRY(read_target(&rep, target, &m));
  return size_rep(&rep, &m);
}
