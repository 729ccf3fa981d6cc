/* three_layer plugin: Algorithm 1's stage 1 (one gradient step on W from
 * W = 0) in closed form.
 *
 * At W = 0 every unit's pre-activation is b_j whatever the input, so the
 * model's output is the constant f0 = (1/m2) sum_j a_j sigma2(b_j) (plus the
 * label mean with center_y) and the gradient of the mean loss over the first
 * half is a matrix of rank D:
 *   grad w_j = C_j v^T,  C_j = a_j sigma2'(b_j) / m2  [D],
 *   v = sum_i dout_i phi(x_i)^T  [k, D],  dout_i the loss gradient at f0 / n1.
 * That is O(n1 k D) arithmetic where the graph's forward and backward cost
 * O(n1 k m2) each. The automatic step needs the mean square of g_j . phi_i:
 *   mean_{i,j} (C_j . u_i)^2 = (1/(n1 m2)) sum_{d,e} (C^T C)_{de} (U^T U)_{de},
 *   u_i = v^T phi_i  (U [n1, D]),
 * one more pass over phi, again without a product of n1 k m2. */
#include "three_layer.h"

#include <math.h>
#include <stdlib.h>

/* Device scratch of stage 1 (freed at its end, but for v and cw: the step's
 * factors, handed to the caller). */
typedef struct s1_bufs {
  hcl_buf unit; /* [3, R, m2]: b, sigma2(b), sigma2'(b) */
  hcl_buf f0;   /* [R, D] the constant output */
  hcl_buf v;    /* [R, k, D] */
  hcl_buf cw;   /* [R, m2, D] -eta C, the step's left factor */
  hcl_buf uu;   /* [R, D, D] U^T U */
} s1_bufs;

static void s1_free(tl_model *m, s1_bufs *s) {
  hcl_buf *bufs[] = {&s->unit, &s->f0, &s->v, &s->cw, &s->uu};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(m->ctx, bufs[i]);
}

/* ybar [R, y_dim] = mean label over samples 0 .. n1-1. */
static hcl_status label_mean(const tl_io *io, size_t n1, hcl_buf ybar) {
  tl_model *m = io->m;
  size_t R = m->R, yd = m->y_dim;
  for (size_t off = 0; off < n1; off += io->chunk) {
    size_t n = n1 - off < io->chunk ? n1 - off : io->chunk;
    HCL_TRY(tl_load(io, off, n));
    HCL_TRY(hcl_host->col_sum(m->ctx, hcl_view(io->y, 0, R * n * yd), ybar, yd, R, n, yd,
                              (float)(1.0 / (double)n1), off == 0 ? 0.0f : 1.0f));
  }
  return HCL_OK;
}

/* f0 [R, D] (host, double, and on the device) and C [R, m2, D] (host) from
 * the current a and b, sigma2 and sigma2' evaluated by the device's kernels. */
static hcl_status unit_terms(const tl_io *io, s1_bufs *s, double *f0, double *C) {
  tl_model *m = io->m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, m2 = m->m2, D = m->D, rm = R * m2;
  hcl_buf z = hcl_view(s->unit, 0, rm), h = hcl_view(s->unit, rm, rm),
          dh = hcl_view(s->unit, 2 * rm, rm);
  HCL_TRY(host->fill(m->ctx, z, 0.0f, rm));
  /* z = 0 + b (exactly b), h = sigma2(b) */
  HCL_TRY(host->bias_act(m->ctx, m->act2, z, hcl_pview(io->params, R, m->n_params, m->b_off, m2),
                         m->n_params, h, R, 1, m2));
  HCL_TRY(host->fill(m->ctx, dh, 1.0f, rm));
  HCL_TRY(host->act_backward(m->ctx, m->act2, dh, z, dh, R, 1, m2));
  float *hv = malloc(2 * rm * sizeof *hv), *a = malloc(m2 * D * sizeof *a);
  hcl_status rc =
      hv && a ? host->buf_read(m->ctx, hcl_view(s->unit, rm, 2 * rm), hv, 2 * rm * sizeof *hv)
              : host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    rc = host->buf_read(m->ctx, hcl_view(io->params, r * m->n_params + m->a_off, m2 * D), a,
                        m2 * D * sizeof *a);
    const float *hr = hv + r * m2, *dr = hv + rm + r * m2;
    for (size_t d = 0; d < D; d++) f0[r * D + d] = 0;
    for (size_t j = 0; j < m2; j++)
      for (size_t d = 0; d < D; d++) {
        f0[r * D + d] += (double)a[j * D + d] * hr[j] / (double)m2;
        C[(r * m2 + j) * D + d] = (double)a[j * D + d] * dr[j] / (double)m2;
      }
  }
  free(hv);
  free(a);
  if (rc != HCL_OK) return rc;
  float f0f[R * D];
  for (size_t i = 0; i < R * D; i++) f0f[i] = (float)f0[i];
  return host->buf_write(m->ctx, s->f0, f0f, sizeof f0f);
}

/* Samples off .. off+n-1 of the first half into io->x, io->y and their phi
 * into m->phi. */
static hcl_status chunk_phi(const tl_io *io, size_t off, size_t n) {
  HCL_TRY(tl_load(io, off, n));
  return tl_phi(io->m, io->t, NULL, io->x, n);
}

/* v = sum_i dout_i phi_i^T over the first half; loss0 the mean loss at f0. */
static hcl_status gradient_pass(const tl_io *io, s1_bufs *s, size_t n1, double *loss0) {
  tl_model *m = io->m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, D = m->D, k = tl_phi_dim(m), built = 0;
  double part[R];
  for (size_t r = 0; r < R; r++) loss0[r] = 0;
  for (size_t off = 0; off < n1; off += io->chunk) {
    size_t n = n1 - off < io->chunk ? n1 - off : io->chunk;
    HCL_TRY(chunk_phi(io, off, n));
    hcl_buf out = hcl_view(io->out, 0, R * n * D), dout = hcl_view(io->dout, 0, R * n * D);
    if (n != built) { /* out [R, n, D] = f0 of each replica, for every sample */
      HCL_TRY(host->fill(m->ctx, out, 0.0f, R * n * D));
      HCL_TRY(host->bias_act(m->ctx, HCL_ACT_IDENTITY, out, s->f0, D, out, R, n, D));
      built = n;
    }
    HCL_TRY(host->train_loss_grad(io->t, out, hcl_view(io->y, 0, R * n * m->y_dim), n,
                                  (float)(1.0 / (double)n1), dout, part));
    for (size_t r = 0; r < R; r++) loss0[r] += part[r] * (double)n / (double)n1;
    HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, k, D, n, 1.0f, hcl_view(m->phi, 0, R * n * k), k,
                                n * k, dout, D, n * D, off == 0 ? 0.0f : 1.0f, s->v, D, k * D, R));
  }
  return HCL_OK;
}

/* eta per replica making mean_{i,j} (eta g_j . phi(x_i))^2 = eta1_scale^2 on
 * the first half (see the header). phi of the last chunk is still in m->phi. */
static hcl_status auto_eta(const tl_io *io, s1_bufs *s, size_t n1, const double *C, double *eta) {
  tl_model *m = io->m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, D = m->D, k = tl_phi_dim(m), m2 = m->m2;
  int one_chunk = n1 <= io->chunk;
  for (size_t off = 0; off < n1; off += io->chunk) {
    size_t n = n1 - off < io->chunk ? n1 - off : io->chunk;
    if (!one_chunk) HCL_TRY(chunk_phi(io, off, n));
    hcl_buf u = hcl_view(io->out, 0, R * n * D);
    HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, n, D, k, 1.0f, hcl_view(m->phi, 0, R * n * k), k,
                                n * k, s->v, D, k * D, 0.0f, u, D, n * D, R));
    HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, D, D, n, 1.0f, u, D, n * D, u, D, n * D,
                                off == 0 ? 0.0f : 1.0f, s->uu, D, D * D, R));
  }
  float uu[R * D * D];
  HCL_TRY(host->buf_read(m->ctx, s->uu, uu, sizeof uu));
  for (size_t r = 0; r < R; r++) {
    double ms = 0;
    for (size_t d = 0; d < D; d++)
      for (size_t e = 0; e < D; e++) {
        double cc = 0;
        for (size_t j = 0; j < m2; j++) cc += C[(r * m2 + j) * D + d] * C[(r * m2 + j) * D + e];
        ms += cc * uu[(r * D + d) * D + e];
      }
    ms /= (double)n1 * (double)m2;
    if (!(ms > 0) || !isfinite(ms))
      return host->fail(m->ctx, HCL_ERR_NUMERIC,
                        "algorithm1 stage 1 gradient of W is zero or not finite "
                        "(replica %zu, mean square of w_j . phi = %g): every unit has "
                        "sigma2'(b_j) = 0 or the labels are constant; set eta1 > 0 or change "
                        "act2 / b_scale",
                        r, ms);
    eta[r] = m->eta1_scale / sqrt(ms);
  }
  return HCL_OK;
}

/* W = -eta C v^T per replica. */
static hcl_status apply_step(const tl_io *io, s1_bufs *s, const double *C, const double *eta) {
  tl_model *m = io->m;
  size_t R = m->R, D = m->D, k = tl_phi_dim(m), m2 = m->m2;
  float *cw = malloc(R * m2 * D * sizeof *cw);
  if (!cw) return hcl_host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < m2 * D; i++) cw[r * m2 * D + i] = (float)(-eta[r] * C[r * m2 * D + i]);
  hcl_status rc = hcl_host->buf_write(m->ctx, s->cw, cw, R * m2 * D * sizeof *cw);
  free(cw);
  if (rc != HCL_OK) return rc;
  return hcl_host->sgemm_batched(m->ctx, 0, 1, m2, k, D, 1.0f, s->cw, D, m2 * D, s->v, D, k * D,
                                 0.0f, hcl_pview(io->params, R, m->n_params, m->w_off, m2 * k), k,
                                 m->n_params, R);
}

static hcl_status stage1(const tl_io *io, s1_bufs *s, size_t n1, double *loss0, double *eta,
                         double *C) {
  tl_model *m = io->m;
  size_t R = m->R, D = m->D, k = tl_phi_dim(m), m2 = m->m2;
  HCL_TRY(tl_alloc_f(m, &s->unit, 3 * R * m2));
  HCL_TRY(tl_alloc_f(m, &s->f0, R * D));
  HCL_TRY(tl_alloc_f(m, &s->v, R * k * D));
  HCL_TRY(tl_alloc_f(m, &s->cw, R * m2 * D));
  HCL_TRY(tl_alloc_f(m, &s->uu, R * D * D));
  double f0[R * D];
  HCL_TRY(unit_terms(io, s, f0, C));
  /* with center_y (one real label per output) the output is shifted by the
   * label mean: the loss of f + ybar against y is that of f against y - ybar */
  if (m->center_y && m->task != HCL_TASK_CLASSES && m->y_dim == D) {
    hcl_buf ybar;
    HCL_TRY(tl_alloc_f(m, &ybar, R * D));
    hcl_status rc = label_mean(io, n1, ybar);
    if (rc == HCL_OK)
      rc = hcl_host->bias_act(m->ctx, HCL_ACT_IDENTITY, s->f0, ybar, D, s->f0, R, 1, D);
    hcl_host->buf_free(m->ctx, &ybar);
    HCL_TRY(rc);
  }
  HCL_TRY(gradient_pass(io, s, n1, loss0));
  if (m->eta1 > 0)
    for (size_t r = 0; r < R; r++) eta[r] = m->eta1;
  else
    HCL_TRY(auto_eta(io, s, n1, C, eta));
  return apply_step(io, s, C, eta);
}

hcl_status tl_stage1(const tl_io *io, size_t n1, double *loss0, double *eta, tl_step *step) {
  tl_model *m = io->m;
  double *C = malloc(m->R * m->m2 * m->D * sizeof *C);
  if (!C) return hcl_host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  s1_bufs s = {0};
  hcl_status rc = stage1(io, &s, n1, loss0, eta, C);
  if (rc == HCL_OK) { /* the caller's now */
    step->cw = s.cw, step->v = s.v;
    s.cw = s.v = (hcl_buf){0};
  }
  s1_free(m, &s);
  free(C);
  return rc;
}
