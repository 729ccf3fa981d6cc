/* meanfield: a two-layer network in the mean-field scaling,
 *   f(x) = (1/H) sum_h a_h sigma(w_h . x / sqrt(d)),  sigma(z) = erf(z / sqrt 2),
 * as an out-of-tree hiercl model plugin (docs/writing-a-plugin.md walks
 * through it). Every tensor carries the replica dimension R first; the
 * parameters are one flat [R, n_params] buffer owned by the runtime, here
 * the blocks w [H, d] and a [1, H]. */
#include <hiercl/plugin.h>

#include <math.h>
#include <stdlib.h>

extern const char hcl_cl_meanfield[]; /* meanfield.cl, embedded by hiercl_add_plugin */

static const hcl_param_desc params[] = {
    HCL_P_INT("width", "256", 1, 1 << 20, "H: hidden neurons"),
    HCL_P_DOUBLE("init_a", "1", 0, 1e6, "readout init: a_h ~ N(0, init_a^2)"), HCL_P_END};

typedef struct mf {
  hcl_ctx *ctx;
  size_t R, d, H, np;
  float init_a;
  const uint64_t *seeds;
  hcl_block blocks[2];
  cl_program prog;
  cl_kernel k_act, k_back;
  hcl_buf z, h, dh; /* [R, max_batch, H], kept from forward for backward */
  hcl_buf x;        /* the last forward's input */
} mf;

static void mf_destroy(void *self) {
  mf *m = self;
  if (!m) return;
  hcl_host->buf_free(m->ctx, &m->z);
  hcl_host->buf_free(m->ctx, &m->h);
  hcl_host->buf_free(m->ctx, &m->dh);
  if (m->k_act) clReleaseKernel(m->k_act);
  if (m->k_back) clReleaseKernel(m->k_back);
  if (m->prog) clReleaseProgram(m->prog);
  free(m);
}

static hcl_status mf_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *t,
                            void **self) {
  if (t->task == HCL_TASK_CLASSES || t->y_dim != 1)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "needs a target with one output (y_dim = 1)");
  mf *m = calloc(1, sizeof *m);
  if (!m) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  *self = m;
  m->ctx = ctx;
  m->R = setup->replicas;
  m->seeds = setup->seeds;
  m->d = hcl_shape_size(&t->x);
  m->H = (size_t)hcl_host->param_int(setup->params, "width");
  m->init_a = (float)hcl_host->param_double(setup->params, "init_a");
  m->np = m->H * m->d + m->H;
  m->blocks[0] = (hcl_block){"w", 0, m->H, m->d, 1, 1};
  m->blocks[1] = (hcl_block){"a", m->H * m->d, 1, m->H, 2, 1};
  size_t bytes = m->R * setup->max_batch * m->H * sizeof(float);
  HCL_TRY(hcl_host->mem_check(ctx, 3 * bytes, bytes, "[model] width and the batch"));
  HCL_TRY(hcl_host->buf_alloc(ctx, bytes, &m->z));
  HCL_TRY(hcl_host->buf_alloc(ctx, bytes, &m->h));
  HCL_TRY(hcl_host->buf_alloc(ctx, bytes, &m->dh));
  HCL_TRY(hcl_host->program(ctx, "meanfield", hcl_cl_meanfield, "", &m->prog));
  HCL_TRY(hcl_host->kernel(ctx, m->prog, "mf_act", &m->k_act));
  return hcl_host->kernel(ctx, m->prog, "mf_act_backward", &m->k_back);
}

static size_t mf_n_params(void *self) { return ((mf *)self)->np; }
static size_t mf_out_dim(void *self) {
  (void)self;
  return 1;
}
static const hcl_block *mf_blocks(void *self, size_t *n) {
  *n = 2;
  return ((mf *)self)->blocks;
}

/* w ~ N(0, 1), a ~ N(0, init_a^2), from each replica's seed (streams 1, 2). */
static hcl_status mf_init(void *self, hcl_buf p) {
  mf *m = self;
  HCL_TRY(hcl_host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, 1.0f, m->seeds, m->R, 1, 0,
                        hcl_pview(p, m->R, m->np, 0, m->H * m->d), m->np, m->H * m->d));
  return hcl_host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, m->init_a, m->seeds, m->R, 2, 0,
                       hcl_pview(p, m->R, m->np, m->H * m->d, m->H), m->np, m->H);
}

/* Offset of a buffer region in floats, as the kernels take it. */
static cl_ulong off(hcl_buf b) { return (cl_ulong)(b.offset / sizeof(float)); }

/* h = sigma(z) over the first `count` floats of [R, n, H]. */
static hcl_status mf_act(mf *m, size_t count) {
  cl_ulong zo = off(m->z), ho = off(m->h), n = count;
  hcl_arg args[] = {HCL_ARG(m->z.mem), HCL_ARG(zo), HCL_ARG(m->h.mem), HCL_ARG(ho), HCL_ARG(n)};
  return hcl_host->run_kernel(m->ctx, m->k_act, 1, &count, NULL, "mf_act", 5, args);
}

/* dh = dh * sigma'(z), in place. */
static hcl_status mf_act_backward(mf *m, size_t count) {
  cl_ulong dho = off(m->dh), zo = off(m->z), n = count;
  hcl_arg args[] = {HCL_ARG(m->dh.mem), HCL_ARG(dho), HCL_ARG(m->z.mem), HCL_ARG(zo),
                    HCL_ARG(m->dh.mem), HCL_ARG(dho), HCL_ARG(n)};
  return hcl_host->run_kernel(m->ctx, m->k_back, 1, &count, NULL, "mf_act_backward", 7, args);
}

/* out [R, n, 1] = (1/H) sigma(x w^T / sqrt d) a^T, one batched product per layer. */
static hcl_status mf_forward(void *self, hcl_buf p, hcl_buf x, size_t n, hcl_buf out) {
  mf *m = self;
  size_t R = m->R, d = m->d, H = m->H, np = m->np;
  m->x = x;
  HCL_TRY(hcl_host->sgemm_batched(m->ctx, 0, 1, n, H, d, 1.0f / sqrtf((float)d), x, d, n * d,
                                  hcl_pview(p, R, np, 0, H * d), d, np, 0.0f, m->z, H, n * H, R));
  HCL_TRY(mf_act(m, R * n * H));
  return hcl_host->sgemm_batched(m->ctx, 0, 1, n, 1, H, 1.0f / (float)H, m->h, H, n * H,
                                 hcl_pview(p, R, np, H * d, H), H, np, 0.0f, out, 1, n, R);
}

/* grad = d(sum dout . out)/d params for the last forward. */
static hcl_status mf_backward(void *self, hcl_buf p, hcl_buf dout, size_t n, hcl_buf g) {
  mf *m = self;
  size_t R = m->R, d = m->d, H = m->H, np = m->np;
  /* da = (1/H) dout^T h;  dh = (1/H) dout a;  dz = dh sigma'(z);  dw = dz^T x / sqrt d */
  HCL_TRY(hcl_host->sgemm_batched(m->ctx, 1, 0, 1, H, n, 1.0f / (float)H, dout, 1, n, m->h, H,
                                  n * H, 0.0f, hcl_pview(g, R, np, H * d, H), H, np, R));
  HCL_TRY(hcl_host->sgemm_batched(m->ctx, 0, 0, n, H, 1, 1.0f / (float)H, dout, 1, n,
                                  hcl_pview(p, R, np, H * d, H), H, np, 0.0f, m->dh, H, n * H, R));
  HCL_TRY(mf_act_backward(m, R * n * H));
  return hcl_host->sgemm_batched(m->ctx, 1, 0, H, d, n, 1.0f / sqrtf((float)d), m->dh, H, n * H,
                                 m->x, d, n * d, 0.0f, hcl_pview(g, R, np, 0, H * d), d, np, R);
}

static const hcl_model_vt vt = {
    .struct_size = sizeof(hcl_model_vt),
    .create = mf_create,
    .destroy = mf_destroy,
    .n_params = mf_n_params,
    .out_dim = mf_out_dim,
    .blocks = mf_blocks,
    .init = mf_init,
    .forward = mf_forward,
    .backward = mf_backward,
};

static const hcl_plugin_desc desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_MODEL),
    .name = "meanfield",
    .version = "0.1.0",
    .summary = "two-layer network in the mean-field scaling, f(x) = (1/H) sum_h a_h "
               "erf(w_h . x / sqrt(2d)) (an out-of-tree example)",
    .citation = "S. Mei, A. Montanari, P.-M. Nguyen, A mean field view of the landscape of "
                "two-layer neural networks, PNAS 2018",
    .params = params,
    .vt = &vt,
};

HCL_PLUGIN_DEFINE(meanfield, desc)
