/* three_layer plugin: the layer-wise algorithms (SPEC 2.4, our reading of
 * Nichani, Damian, Lee 2023).
 *
 * algorithm1, on a finite training set of P samples (indices 0..P-1):
 *  stage 1: W = 0, then one gradient step W = -eta1 grad_W L on the first
 *           half (indices 0 .. P/2-1), L the run's loss (against labels
 *           centred by their first-half mean with center_y), with the
 *           init's a and b, in closed form (stage1.c: at W = 0 the gradient
 *           has rank D); eta1 = 0 picks per replica the step giving
 *           w_j . phi(x) mean square eta1_scale^2;
 *  stage 2: b re-drawn (redraw_b), then a by ridge on the second half
 *           (indices P/2 .. P-1), solved on the device:
 *             a = argmin (1/n) sum_i (f(x_i) - y_i)^2 + lambda (1/m2) sum_j a_j^2,
 *           f(x) = (1/m2) sum_j a_j s_j(x), s_j(x) = sigma2(w_j . phi(x) + b_j);
 *           normal equations (S^T S/(n m2) + lambda I) a = S^T y/n. That is
 *           kernel ridge regression with the kernel K(x, x') = (1/m2) sum_j
 *           s_j(x) s_j(x'), an average over units, and the penalty lambda
 *           |f|_K^2: lambda has the same meaning at every width m2 (the fit
 *           converges as m2 grows; duplicating every unit changes nothing).
 * ridge: stage 2 alone on all P samples with the current W and b (the
 *        random-features baseline with freeze_w).
 * Both end with one evaluation (host->train_eval) carrying stage metrics. */
#include "three_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scratch of one algorithm run: the stages' shared batch buffers (io), and
 * the ridge system's G, c, its copy c0 and y^T y (yy). */
typedef struct tl_work {
  tl_io io;
  hcl_buf G, c, c0, yy;
} tl_work;

static void work_free(tl_work *w) {
  hcl_buf *bufs[] = {&w->io.x, &w->io.y, &w->io.out, &w->io.dout, &w->G, &w->c, &w->c0, &w->yy};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(w->io.m->ctx, bufs[i]);
}

static hcl_status work_alloc(tl_work *w) {
  tl_model *m = w->io.m;
  size_t R = m->R, B = w->io.chunk;
  HCL_TRY(tl_alloc_f(m, &w->io.x, R * B * m->d));
  HCL_TRY(tl_alloc_f(m, &w->io.y, R * B * m->y_dim));
  HCL_TRY(tl_alloc_f(m, &w->io.out, R * B * m->D));
  return tl_alloc_f(m, &w->io.dout, R * B * m->D);
}

hcl_status tl_load(const tl_io *io, uint64_t first, size_t n) {
  tl_model *m = io->m;
  return hcl_host->train_batch(io->t, HCL_STREAM_TRAIN, first, n,
                               hcl_view(io->x, 0, m->R * n * m->d),
                               hcl_view(io->y, 0, m->R * n * m->y_dim));
}

/* Samples first .. first+n-1 (tl_load) and the model's forward on them. */
static hcl_status batch_forward(tl_work *w, uint64_t first, size_t n) {
  tl_model *m = w->io.m;
  HCL_TRY(tl_load(&w->io, first, n));
  return hcl_host->train_forward(w->io.t, w->io.x, n, hcl_view(w->io.out, 0, m->R * n * m->D));
}

/* Mean training loss over samples first .. first+n_all-1 (per replica). */
static hcl_status mean_loss(tl_work *w, uint64_t first, size_t n_all, double *loss) {
  tl_model *m = w->io.m;
  size_t R = m->R;
  double part[R];
  for (size_t r = 0; r < R; r++) loss[r] = 0;
  hcl_buf none = {0};
  for (size_t off = 0; off < n_all; off += w->io.chunk) {
    size_t n = n_all - off < w->io.chunk ? n_all - off : w->io.chunk;
    HCL_TRY(batch_forward(w, first + off, n));
    HCL_TRY(hcl_host->train_loss_grad(w->io.t, hcl_view(w->io.out, 0, R * n * m->D),
                                      hcl_view(w->io.y, 0, R * n * m->y_dim), n, 0.0f, none, part));
    for (size_t r = 0; r < R; r++) loss[r] += part[r] * (double)n / (double)n_all;
  }
  return HCL_OK;
}

/* G += alpha S^T S over its lower triangle only (solve_spd reads no more).
 * S [R, n, m2]. */
static hcl_status gram_lower(tl_model *m, hcl_buf S, size_t n, float alpha, float beta, hcl_buf G) {
  size_t R = m->R, m2 = m->m2;
  return hcl_host->sgemm_lower(m->ctx, 1, 0, m2, n, alpha, S, m2, n * m2, S, m2, n * m2, beta, G,
                               m2, m2 * m2, R);
}

/* The fit's mean loss when the run's loss is mse, from the normal
 * equations' own sums instead of a second forward over the samples:
 *   (1/n) sum_i |S_i a / m2 - y_i|^2 / D
 *     = (1/D) sum_d [a_d^T G a_d / m2 - 2 a_d^T c_d / m2 + (y^T y)_dd / n],
 * G = S^T S/(n m2) (lower triangle), c = S^T y/n (w->c0), a = w->c, in
 * double on the host. The terms cancel: G's float rounding enters relative
 * to |a|^T |G| |a| / m2, so where that exceeds TL_FIT_CANCEL times the loss
 * (small lambda, large |a|) *exact is 0 and the caller runs the forward. */
#define TL_FIT_CANCEL 128.0
static hcl_status fit_mse(tl_work *w, double *fit, int *exact) {
  tl_model *m = w->io.m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, m2 = m->m2, D = m->D;
  float *G = malloc(m2 * m2 * sizeof *G), *ac = malloc(2 * m2 * D * sizeof *ac), yy[R * D * D];
  *exact = 1;
  hcl_status rc = G && ac ? host->buf_read(m->ctx, w->yy, yy, sizeof yy)
                          : host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    rc = host->buf_read(m->ctx, hcl_view(w->G, r * m2 * m2, m2 * m2), G, m2 * m2 * sizeof *G);
    if (rc == HCL_OK)
      rc = host->buf_read(m->ctx, hcl_view(w->c, r * m2 * D, m2 * D), ac, m2 * D * sizeof *ac);
    if (rc == HCL_OK)
      rc = host->buf_read(m->ctx, hcl_view(w->c0, r * m2 * D, m2 * D), ac + m2 * D,
                          m2 * D * sizeof *ac);
    const float *a = ac, *c = ac + m2 * D;
    double s = 0, mag = 0;
    for (size_t d = 0; d < D && rc == HCL_OK; d++) {
      double q = 0, l = 0;
      for (size_t j = 0; j < m2; j++) {
        double gj = 0, ga = 0; /* (G a_d)_j and (|G| |a_d|)_j from the lower triangle */
        for (size_t i = 0; i < m2; i++) {
          double e = (double)(i <= j ? G[j * m2 + i] : G[i * m2 + j]) * a[i * D + d];
          gj += e;
          ga += fabs(e);
        }
        q += gj * a[j * D + d];
        mag += ga * fabs((double)a[j * D + d]);
        l += (double)a[j * D + d] * c[j * D + d];
      }
      s += (q - 2 * l) / (double)m2 + yy[(r * D + d) * D + d];
    }
    fit[r] = s / (double)D;
    if (!(mag / (double)m2 <= TL_FIT_CANCEL * s)) *exact = 0;
  }
  free(G);
  free(ac);
  return rc;
}

/* S [R, n, m2] = sigma2(phi W^T + b) of the n samples in io->x, the graph's
 * last hidden layer. After stage 1 (step given) W = cw v^T has rank D, so
 * phi W^T = (phi v) cw^T: O(n k D + n m2 D) instead of the graph's
 * O(n k m2), which was half of Algorithm 1's products. */
static hcl_status hidden(tl_work *w, const tl_step *step, size_t n, hcl_buf S) {
  tl_model *m = w->io.m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, k = tl_phi_dim(m), m2 = m->m2, D = m->D, dim = 0;
  if (!step) return host->train_features(w->io.t, m->two_layer ? 1 : 2, w->io.x, n, S, &dim);
  hcl_buf u = hcl_view(w->io.out, 0, R * n * D), z = hcl_view(m->phi, 0, R * n * m2);
  HCL_TRY(tl_phi(m, w->io.t, NULL, w->io.x, n));
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, n, D, k, 1.0f, hcl_view(m->phi, 0, R * n * k), k, n * k,
                              step->v, D, k * D, 0.0f, u, D, n * D, R));
  /* z overwrites phi, which u has consumed (m->phi is max(k, m2) wide) */
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, m2, D, 1.0f, u, D, n * D, step->cw, D, m2 * D, 0.0f,
                              z, m2, n * m2, R));
  return host->bias_act(m->ctx, m->act2, z, hcl_pview(w->io.params, R, m->n_params, m->b_off, m2),
                        m->n_params, S, R, n, m2);
}

/* Ridge fit of a on samples first .. first+n_all-1 with the current W, b
 * (step: W's factors after stage 1, else NULL); `alg` names the algorithm
 * in errors. fit [R] gets the fit's mean loss there (the run's loss). */
static hcl_status ridge(tl_work *w, const tl_step *step, uint64_t first, size_t n_all,
                        const char *alg, double *fit) {
  tl_model *m = w->io.m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, m2 = m->m2, D = m->D;
  int mse = HCL_HOST_HAS(train_loss_name) && !strcmp(host->train_loss_name(w->io.t), "mse");
  HCL_TRY(tl_alloc_f(m, &w->G, R * m2 * m2));
  HCL_TRY(tl_alloc_f(m, &w->c, R * m2 * D));
  if (mse) {
    HCL_TRY(tl_alloc_f(m, &w->c0, R * m2 * D));
    HCL_TRY(tl_alloc_f(m, &w->yy, R * D * D));
  }
  double inv_n = 1.0 / (double)n_all, inv_m2 = 1.0 / (double)m2;
  for (size_t off = 0; off < n_all; off += w->io.chunk) {
    size_t n = n_all - off < w->io.chunk ? n_all - off : w->io.chunk, span = R * n * m2;
    float beta = off == 0 ? 0.0f : 1.0f;
    /* s_j(x) = sigma2(w_j . phi(x) + b_j) */
    hcl_buf sv = hcl_view(m->u, 0, span), y = hcl_view(w->io.y, 0, R * n * D);
    HCL_TRY(tl_load(&w->io, first + off, n)); /* y_dim = D (tl_train_check) */
    HCL_TRY(hidden(w, step, n, sv));
    /* G += S^T S / (n m2), c += S^T y / n (and y^T y / n for the fit's mse) */
    HCL_TRY(gram_lower(m, sv, n, (float)(inv_m2 * inv_n), beta, w->G));
    HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, m2, D, n, (float)inv_n, sv, m2, n * m2, y, D, n * D,
                                beta, w->c, D, m2 * D, R));
    if (mse)
      HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, D, D, n, (float)inv_n, y, D, n * D, y, D, n * D,
                                  beta, w->yy, D, D * D, R));
  }
  if (mse) HCL_TRY(host->buf_copy(m->ctx, w->c0, w->c, R * m2 * D * sizeof(float)));
  hcl_status st = host->solve_spd(m->ctx, w->G, w->c, R, m2, D, (float)m->lambda);
  if (st == HCL_ERR_NUMERIC) /* the solver cannot know which key sets lambda: say it here */
    return host->fail(m->ctx, st,
                      "algorithm %s: the ridge system (H^T H/n + lambda I) a = H^T "
                      "y/n is not numerically positive definite for some replica; increase "
                      "[model] lambda (now %g)",
                      alg, m->lambda);
  HCL_TRY(st);
  for (size_t r = 0; r < R; r++)
    HCL_TRY(host->buf_copy(m->ctx, hcl_view(w->io.params, r * m->n_params + m->a_off, m2 * D),
                           hcl_view(w->c, r * m2 * D, m2 * D), m2 * D * sizeof(float)));
  int exact = 0;
  if (mse) HCL_TRY(fit_mse(w, fit, &exact));
  return exact ? HCL_OK : mean_loss(w, first, n_all, fit);
}

static hcl_status algorithm1(tl_work *w, uint64_t P) {
  tl_model *m = w->io.m;
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, n1 = (size_t)(P / 2), n2 = (size_t)(P - P / 2);
  double loss0[R], eta[R], fit[R];
  tl_step step = {0};
  hcl_status rc = tl_stage1(&w->io, n1, loss0, eta, &step);
  if (rc == HCL_OK && host->train_stop_requested(w->io.t))
    rc = host->fail(m->ctx, HCL_ERR_INTERRUPTED, "interrupted after stage 1");
  if (rc == HCL_OK && m->redraw_b) rc = tl_draw_b(m, w->io.params, TL_STREAM_B2);
  if (rc == HCL_OK) rc = ridge(w, &step, n1, n2, "algorithm1", fit);
  if (step.cw.mem) host->buf_free(m->ctx, &step.cw);
  if (step.v.mem) host->buf_free(m->ctx, &step.v);
  HCL_TRY(rc);
  hcl_metric extra[] = {{"stage1_loss", loss0}, {"eta1", eta}, {"ridge_loss", fit}};
  host->train_label(w->io.t, "algorithm1");
  return host->train_eval(w->io.t, extra, 3);
}

static hcl_status ridge_only(tl_work *w, uint64_t P) {
  size_t R = w->io.m->R;
  double fit[R];
  HCL_TRY(ridge(w, NULL, 0, (size_t)P, "ridge", fit));
  hcl_metric extra[] = {{"ridge_loss", fit}};
  hcl_host->train_label(w->io.t, "ridge");
  return hcl_host->train_eval(w->io.t, extra, 1);
}

/* What algorithm1 and ridge need of the model and of the training-set size
 * P; shared by tl_train and tl_check (before the device opens). */
hcl_status tl_train_check(const hcl_report *r, const tl_model *m, const char *algorithm,
                          uint64_t P) {
  int alg1 = !strcmp(algorithm, "algorithm1");
  if (!alg1 && strcmp(algorithm, "ridge"))
    return hcl_report_fail(r, HCL_ERR_CONFIG, "algorithm '%s' unknown (sgd, algorithm1, ridge)",
                           algorithm);
  if (P < 2)
    return hcl_report_fail(r, HCL_ERR_CONFIG,
                           "%s needs a finite training set of at least 2 samples "
                           "([train] train_size = %llu; 0 means fresh samples, which this "
                           "algorithm cannot split in halves)",
                           algorithm, (unsigned long long)P);
  if (m->task == HCL_TASK_CLASSES || m->y_dim != m->D)
    return hcl_report_fail(r, HCL_ERR_UNSUPPORTED,
                           "%s fits a by ridge regression, which needs real or +-1 "
                           "labels with one value per output (target y_dim %zu, %zu outputs); "
                           "train classification with sgd",
                           algorithm, m->y_dim, m->D);
  if (alg1 && m->freeze_w)
    return hcl_report_fail(r, HCL_ERR_CONFIG,
                           "algorithm1 trains W, but freeze_w = true; use algorithm "
                           "= ridge or sgd for the random-features baseline");
  return HCL_OK;
}

hcl_status tl_train(void *self, const char *algorithm, hcl_trainer *t) {
  tl_model *m = self;
  const hcl_host_api *host = hcl_host;
  int alg1 = !strcmp(algorithm, "algorithm1");
  uint64_t P = host->train_size(t);
  hcl_report rep = {.host = host, .ctx = m->ctx};
  HCL_TRY(tl_train_check(&rep, m, algorithm, P));
  tl_work w = {.io = {.m = m, .t = t, .params = host->train_params(t), .chunk = m->max_batch}};
  /* the largest chunk: of the second half (algorithm1), of all P (ridge) */
  uint64_t most = alg1 ? P - P / 2 : P;
  HCL_TRY(tl_scratch(m, most < w.io.chunk ? (size_t)most : w.io.chunk));
  hcl_status rc = work_alloc(&w);
  if (rc == HCL_OK) rc = alg1 ? algorithm1(&w, P) : ridge_only(&w, P);
  work_free(&w);
  return rc;
}
