/* kernel_ridge plugin: create (parameters, device precision, kernels),
 * layout, init, prepare (the training set) and the predictor's forward and
 * gradient. */
#include "kernel_ridge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char hcl_cl_kernel_ridge[];

void kr_destroy(void *self) {
  kr_model *m = self;
  if (!m) return;
  hcl_buf *bufs[] = {&m->X, &m->nrm, &m->x_nrm};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(m->ctx, bufs[i]);
  cl_kernel ks[] = {m->k_norms, m->k_gram, m->k_predict, m->k_grad};
  for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
    if (ks[i]) clReleaseKernel(ks[i]);
  if (m->prog) clReleaseProgram(m->prog);
  free(m->y);
  free(m);
}

/* Whether the device offers cl_khr_fp64 (the kernels then run in double). */
static int device_fp64(hcl_ctx *ctx) {
  cl_device_id dev = hcl_host->cl_device(ctx);
  size_t len = 0;
  if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &len) != CL_SUCCESS || !len) return 0;
  char *ext = malloc(len + 1);
  if (!ext) return 0;
  int has = clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, len, ext, NULL) == CL_SUCCESS &&
            (ext[len] = 0, strstr(ext, "cl_khr_fp64") != NULL);
  free(ext);
  return has;
}

static hcl_status build(kr_model *m) {
  const hcl_host_api *host = hcl_host;
  HCL_TRY(host->program(m->ctx, "kernel_ridge", hcl_cl_kernel_ridge, m->fp64 ? "-DKR_FP64" : "",
                        &m->prog));
  HCL_TRY(host->kernel(m->ctx, m->prog, "kr_norms", &m->k_norms));
  HCL_TRY(host->kernel(m->ctx, m->prog, "kr_gram", &m->k_gram));
  HCL_TRY(host->kernel(m->ctx, m->prog, "kr_predict", &m->k_predict));
  return host->kernel(m->ctx, m->prog, "kr_grad", &m->k_grad);
}

hcl_status kr_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                     void **self) {
  const hcl_host_api *host = hcl_host;
  *self = NULL;
  if (!target || !HCL_STRUCT_HAS(target, hcl_target_info, n_classes))
    return host->fail(ctx, HCL_ERR_ABI, "target info missing or too small");
  char err[512] = "";
  hcl_check_info run = {.struct_size = sizeof run,
                        .replicas = setup->replicas,
                        .train_size = setup->train_size,
                        .train_size_min = setup->train_size};
  if (kr_check(setup->params, &run, target, err, sizeof err) != HCL_OK)
    return host->fail(ctx, HCL_ERR_CONFIG, "%s", err);
  kr_model *m = calloc(1, sizeof *m);
  if (!m) return host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  m->ctx = ctx;
  m->R = setup->replicas;
  m->d = hcl_shape_size(&target->x);
  m->P = (size_t)setup->train_size;
  m->max_batch = setup->max_batch ? setup->max_batch : 1;
  m->n_params = 2 * m->P;
  m->kernel = setup->params ? HCL_ENUM(setup->params, "kernel", kr_kernels) : KR_NTK;
  m->lambda = setup->params ? host->param_double(setup->params, "lambda") : 1e-3;
  m->b_scale = setup->params ? host->param_double(setup->params, "b_scale") : 1.0;
  m->blocks[0] = (hcl_block){"alpha", 0, m->P, 1, 0, 1};
  m->blocks[1] = (hcl_block){"alpha_lo", m->P, m->P, 1, 0, 0};
  int f32 = setup->params && HCL_ENUM(setup->params, "precision", kr_precisions) == 1;
  m->fp64 = !f32 && device_fp64(ctx);
  m->real_size = m->fp64 ? sizeof(cl_double) : sizeof(cl_float);
  m->sc = 1.0 / sqrt((double)m->d);
  m->bs = m->b_scale;
  m->sc_f = (cl_float)m->sc;
  m->bs_f = (cl_float)m->bs;
  hcl_status rc = HCL_OK;
  if (m->kernel < 0 || !(m->lambda >= 0) || !(m->b_scale >= 0))
    rc = host->fail(ctx, HCL_ERR_PARAM, "kernel, lambda >= 0 and b_scale >= 0 expected");
  size_t R = m->R, P = m->P, d = m->d;
  if (rc == HCL_OK)
    rc = host->mem_check(ctx, (R * P * d) * sizeof(float) + (R * (P + m->max_batch)) * m->real_size,
                         R * P * d * sizeof(float), "[model] kernel_ridge training inputs");
  if (rc == HCL_OK) rc = build(m);
  if (rc == HCL_OK) rc = host->buf_alloc(ctx, R * P * d * sizeof(float), &m->X);
  if (rc == HCL_OK) rc = host->buf_alloc(ctx, R * P * m->real_size, &m->nrm);
  if (rc == HCL_OK) rc = host->buf_alloc(ctx, R * m->max_batch * m->real_size, &m->x_nrm);
  if (rc == HCL_OK && !(m->y = calloc(R * P, sizeof *m->y)))
    rc = host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc != HCL_OK) {
    kr_destroy(m);
    return rc;
  }
  char note[160];
  snprintf(note, sizeof note, "\"%s\"", m->fp64 ? "float64" : "float32");
  host->note(ctx, "kernel_ridge_kernel_precision", note, 1);
  *self = m;
  return HCL_OK;
}

size_t kr_n_params(void *self) { return ((kr_model *)self)->n_params; }
size_t kr_out_dim(void *self) {
  (void)self;
  return 1;
}

const hcl_block *kr_blocks(void *self, size_t *n_blocks) {
  kr_model *m = self;
  *n_blocks = 2;
  return m->blocks;
}

hcl_status kr_init(void *self, hcl_buf params) {
  kr_model *m = self;
  return hcl_host->fill(m->ctx, hcl_view(params, 0, m->R * m->n_params), 0.0f, m->R * m->n_params);
}

static cl_ulong fo(hcl_buf b) { return b.offset / sizeof(float); }

/* nrm [R, n] (real) = |u| of the rows of x [R, n, d]. */
static hcl_status norms(kr_model *m, hcl_buf x, size_t n, hcl_buf nrm) {
  cl_ulong xo = fo(x), nn = n, no = nrm.offset / m->real_size;
  cl_uint d = (cl_uint)m->d;
  hcl_arg args[] = {HCL_ARG(x.mem),
                    HCL_ARG(xo),
                    HCL_ARG(nn),
                    HCL_ARG(d),
                    kr_real(m, &m->sc, &m->sc_f),
                    kr_real(m, &m->bs, &m->bs_f),
                    HCL_ARG(nrm.mem),
                    HCL_ARG(no)};
  size_t gws[2] = {n, m->R};
  return hcl_host->run_kernel(m->ctx, m->k_norms, 2, gws, NULL, "kr_norms", 8, args);
}

hcl_status kr_prepare(void *self, hcl_trainer *t) {
  kr_model *m = self;
  const hcl_host_api *host = hcl_host;
  hcl_report rep = {.host = host, .ctx = m->ctx};
  uint64_t P = host->train_size(t);
  HCL_TRY(kr_size_check(&rep, P));
  if (P != m->P)
    return host->fail(m->ctx, HCL_ERR_PARAM, "training set of %llu samples, created for %zu",
                      (unsigned long long)P, m->P);
  size_t R = m->R, d = m->d, B = m->max_batch;
  hcl_buf xs = {0}, ys = {0};
  float *hy = malloc(R * B * sizeof *hy);
  hcl_status rc = hy ? HCL_OK : host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc == HCL_OK) rc = host->buf_alloc(m->ctx, R * B * d * sizeof(float), &xs);
  if (rc == HCL_OK) rc = host->buf_alloc(m->ctx, R * B * sizeof(float), &ys);
  for (size_t off = 0; off < m->P && rc == HCL_OK; off += B) {
    size_t n = m->P - off < B ? m->P - off : B;
    rc = host->train_batch(t, HCL_STREAM_TRAIN, off, n, hcl_view(xs, 0, R * n * d),
                           hcl_view(ys, 0, R * n));
    for (size_t r = 0; r < R && rc == HCL_OK; r++)
      rc = host->buf_copy(m->ctx, hcl_view(m->X, (r * m->P + off) * d, n * d),
                          hcl_view(xs, r * n * d, n * d), n * d * sizeof(float));
    if (rc == HCL_OK) rc = host->buf_read(m->ctx, hcl_view(ys, 0, R * n), hy, R * n * sizeof *hy);
    for (size_t r = 0; r < R && rc == HCL_OK; r++)
      for (size_t i = 0; i < n; i++) m->y[r * m->P + off + i] = hy[r * n + i];
  }
  if (rc == HCL_OK) rc = norms(m, m->X, m->P, m->nrm);
  free(hy);
  host->buf_free(m->ctx, &xs);
  host->buf_free(m->ctx, &ys);
  m->prepared = rc == HCL_OK;
  return rc;
}

static hcl_status need_prepared(kr_model *m, size_t n) {
  if (!m->prepared)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM,
                          "no training set yet: the model reads it in prepare(), before any "
                          "forward");
  if (n > m->max_batch)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM, "batch %zu > max_batch %zu", n, m->max_batch);
  return HCL_OK;
}

hcl_status kr_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  kr_model *m = self;
  HCL_TRY(need_prepared(m, n));
  m->x_last = x;
  m->n_last = n;
  m->have_forward = 1;
  if (!n) return HCL_OK;
  HCL_TRY(norms(m, x, n, m->x_nrm)); /* for backward */
  cl_ulong xo = fo(x), nn = n, P = m->P, ao = fo(params), ps = m->n_params, oo = fo(out);
  cl_uint d = (cl_uint)m->d, ntk = m->kernel == KR_NTK;
  hcl_arg args[] = {HCL_ARG(x.mem),
                    HCL_ARG(xo),
                    HCL_ARG(nn),
                    HCL_ARG(m->X.mem),
                    HCL_ARG(m->nrm.mem),
                    HCL_ARG(P),
                    HCL_ARG(d),
                    kr_real(m, &m->sc, &m->sc_f),
                    kr_real(m, &m->bs, &m->bs_f),
                    HCL_ARG(ntk),
                    HCL_ARG(params.mem),
                    HCL_ARG(ao),
                    HCL_ARG(ps),
                    HCL_ARG(out.mem),
                    HCL_ARG(oo)};
  size_t gws[2] = {n, m->R};
  return hcl_host->run_kernel(m->ctx, m->k_predict, 2, gws, NULL, "kr_predict",
                              sizeof args / sizeof *args, args);
}

hcl_status kr_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  kr_model *m = self;
  (void)params;
  HCL_TRY(need_prepared(m, n));
  if (!m->have_forward || n != m->n_last)
    return hcl_host->fail(m->ctx, HCL_ERR_PARAM,
                          "backward of %zu samples without a forward of them", n);
  cl_ulong xo = fo(m->x_last), nn = n, P = m->P, dof = fo(dout), go = fo(grad), ps = m->n_params;
  cl_uint d = (cl_uint)m->d, ntk = m->kernel == KR_NTK;
  if (!n) return hcl_host->fill(m->ctx, hcl_view(grad, 0, m->R * ps), 0.0f, m->R * ps);
  hcl_arg args[] = {HCL_ARG(m->x_last.mem),
                    HCL_ARG(xo),
                    HCL_ARG(m->x_nrm.mem),
                    HCL_ARG(nn),
                    HCL_ARG(m->X.mem),
                    HCL_ARG(m->nrm.mem),
                    HCL_ARG(P),
                    HCL_ARG(d),
                    kr_real(m, &m->sc, &m->sc_f),
                    kr_real(m, &m->bs, &m->bs_f),
                    HCL_ARG(ntk),
                    HCL_ARG(dout.mem),
                    HCL_ARG(dof),
                    HCL_ARG(grad.mem),
                    HCL_ARG(go),
                    HCL_ARG(ps)};
  size_t gws[2] = {m->P, m->R};
  return hcl_host->run_kernel(m->ctx, m->k_grad, 2, gws, NULL, "kr_grad",
                              sizeof args / sizeof *args, args);
}
