/* kernel_ridge plugin: algorithm "ridge", the exact fit. Per replica: the
 * Gram matrix K [P, P] on the device (kr_gram), then on the host in float64
 * A = K + lambda P I, its Cholesky factor and alpha = A^-1 y (chol.c): the
 * minimiser of (1/P) sum_i (f(x_i) - y_i)^2 + lambda |f|_K^2.
 * alpha goes to the parameters as a float and its rounding residual, so the
 * predictor keeps float64's solution. */
#include "kernel_ridge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Gram matrix of replica r into the host's A [P, P] (float64). */
static hcl_status gram(kr_model *m, size_t r, hcl_buf K, double *A) {
  const hcl_host_api *host = hcl_host;
  size_t P = m->P;
  cl_ulong cP = P, cr = r;
  cl_uint d = (cl_uint)m->d, ntk = m->kernel == KR_NTK;
  hcl_arg args[] = {HCL_ARG(m->X.mem),
                    HCL_ARG(m->nrm.mem),
                    HCL_ARG(cP),
                    HCL_ARG(d),
                    kr_real(m, &m->sc, &m->sc_f),
                    kr_real(m, &m->bs, &m->bs_f),
                    HCL_ARG(ntk),
                    HCL_ARG(cr),
                    HCL_ARG(K.mem)};
  size_t gws[2] = {P, P};
  HCL_TRY(host->run_kernel(m->ctx, m->k_gram, 2, gws, NULL, "kr_gram", 9, args));
  if (m->fp64) return host->buf_read(m->ctx, K, A, P * P * sizeof *A);
  /* float32 entries widened in place, from the end (A holds twice their bytes) */
  float *f = (float *)A;
  HCL_TRY(host->buf_read(m->ctx, K, f, P * P * sizeof *f));
  for (size_t i = P * P; i-- > 0;) A[i] = f[i];
  return HCL_OK;
}

/* alpha of replica r from A = K (overwritten by its factor); fails naming
 * the replica when K + lambda P I is not numerically positive definite. */
static hcl_status solve(kr_model *m, size_t r, double *A, double *alpha) {
  double shift = m->lambda * (double)m->P;
  for (size_t i = 0; i < m->P; i++) A[i * m->P + i] += shift;
  size_t minor = kr_cholesky(A, m->P);
  if (minor)
    return hcl_host->fail(m->ctx, HCL_ERR_NUMERIC,
                          "K + lambda P I is not numerically positive definite (replica %zu, "
                          "leading minor %zu of %zu; lambda = %g): duplicate training inputs or "
                          "lambda too small for float64; increase [model] lambda",
                          r, minor, m->P, m->lambda);
  memcpy(alpha, m->y + r * m->P, m->P * sizeof *alpha);
  kr_cholesky_solve(A, m->P, alpha);
  for (size_t i = 0; i < m->P; i++)
    if (!isfinite(alpha[i]))
      return hcl_host->fail(m->ctx, HCL_ERR_NUMERIC,
                            "kernel ridge: non-finite alpha (replica %zu, lambda = %g); "
                            "increase [model] lambda",
                            r, m->lambda);
  return HCL_OK;
}

/* alpha (float) and its residual alpha - (float)alpha into replica r's parameters. */
static hcl_status store(kr_model *m, hcl_buf params, size_t r, const double *alpha, float *f) {
  size_t P = m->P;
  for (size_t i = 0; i < P; i++) {
    f[i] = (float)alpha[i];
    f[P + i] = (float)(alpha[i] - (double)f[i]);
  }
  return hcl_host->buf_write(m->ctx, hcl_view(params, r * m->n_params, 2 * P), f,
                             2 * P * sizeof *f);
}

/* Mean training loss of the fit (the run's loss), per replica, from its
 * predictions at the training inputs: f = K alpha = y - lambda P alpha
 * (f_all [R, P], from the float64 solution; no P x P product). */
static hcl_status train_loss(kr_model *m, hcl_trainer *t, const double *f_all, double *loss) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, B = m->max_batch;
  hcl_buf f = {0}, y = {0}, none = {0};
  double part[R];
  for (size_t r = 0; r < R; r++) loss[r] = 0;
  float *hf = malloc(2 * R * B * sizeof *hf);
  hcl_status rc = hf ? HCL_OK : host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc == HCL_OK) rc = host->buf_alloc(m->ctx, R * B * sizeof(float), &f);
  if (rc == HCL_OK) rc = host->buf_alloc(m->ctx, R * B * sizeof(float), &y);
  for (size_t off = 0; off < m->P && rc == HCL_OK; off += B) {
    size_t n = m->P - off < B ? m->P - off : B;
    float *hy = hf + R * n;
    for (size_t r = 0; r < R; r++)
      for (size_t i = 0; i < n; i++) {
        hf[r * n + i] = (float)f_all[r * m->P + off + i];
        hy[r * n + i] = (float)m->y[r * m->P + off + i];
      }
    rc = host->buf_write(m->ctx, hcl_view(f, 0, R * n), hf, R * n * sizeof *hf);
    if (rc == HCL_OK) rc = host->buf_write(m->ctx, hcl_view(y, 0, R * n), hy, R * n * sizeof *hy);
    if (rc == HCL_OK)
      rc = host->train_loss_grad(t, hcl_view(f, 0, R * n), hcl_view(y, 0, R * n), n, 0.0f, none,
                                 part);
    for (size_t r = 0; r < R && rc == HCL_OK; r++) loss[r] += part[r] * (double)n / (double)m->P;
  }
  free(hf);
  host->buf_free(m->ctx, &f);
  host->buf_free(m->ctx, &y);
  return rc;
}

hcl_status kr_train(void *self, const char *algorithm, hcl_trainer *t) {
  kr_model *m = self;
  const hcl_host_api *host = hcl_host;
  if (strcmp(algorithm, "ridge"))
    return host->fail(m->ctx, HCL_ERR_CONFIG, "algorithm '%s' unknown (ridge, sgd)", algorithm);
  if (!m->prepared)
    return host->fail(m->ctx, HCL_ERR_PARAM, "no training set: prepare() did not run");
  size_t P = m->P, R = m->R;
  HCL_TRY(host->host_mem_check(
      m->ctx, P * P * sizeof(double) + (R + 1) * P * sizeof(double) + 2 * P * sizeof(float),
      "[train] train_size (kernel_ridge's float64 Gram matrix)"));
  HCL_TRY(host->mem_check(m->ctx, P * P * m->real_size, P * P * m->real_size,
                          "[train] train_size (kernel_ridge's Gram matrix)"));
  hcl_buf params = host->train_params(t), K = {0};
  double *A = malloc(P * P * sizeof *A), *alpha = malloc(P * sizeof *alpha);
  double *fit_f = malloc(R * P * sizeof *fit_f);
  float *f = malloc(2 * P * sizeof *f);
  hcl_status rc =
      A && alpha && f && fit_f ? HCL_OK : host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc == HCL_OK) rc = host->buf_alloc(m->ctx, P * P * m->real_size, &K);
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    if (host->train_stop_requested(t)) {
      rc = host->fail(m->ctx, HCL_ERR_INTERRUPTED, "interrupted before replica %zu's fit", r);
      break;
    }
    rc = gram(m, r, K, A);
    if (rc == HCL_OK) rc = solve(m, r, A, alpha);
    if (rc == HCL_OK) rc = store(m, params, r, alpha, f);
    for (size_t i = 0; i < P && rc == HCL_OK; i++)
      fit_f[r * P + i] = m->y[r * P + i] - m->lambda * (double)P * alpha[i];
  }
  host->buf_free(m->ctx, &K);
  free(A), free(alpha), free(f);
  double fit[R];
  if (rc == HCL_OK) rc = train_loss(m, t, fit_f, fit);
  free(fit_f);
  if (rc != HCL_OK) return rc;
  hcl_metric extra[] = {{"ridge_loss", fit}};
  host->train_label(t, "ridge");
  return host->train_eval(t, extra, 1);
}
