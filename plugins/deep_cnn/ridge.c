/* deep_cnn plugin: the ridge_chain algorithm (SPEC 2.3, rhm-layerwise),
 * this project's reading of Ren, Dandi, Krzakala, Lee, COLT 2026,
 * arXiv:2601.19756 (no released code).
 *
 * Reading, level l = 1..L from the bottom, every level with its own draws:
 *   input of a patch   z = the concatenated outputs of its s children
 *                      (level 1: the s one-hot tokens, c_0 = v channels;
 *                      above: s vectors of n_c entries), in the patch order
 *                      of the convolution (channel-major, c*s + j);
 *   embedding          phi(z) = sqrt(2/D) cos(Omega z + b), Omega [D, c*s]
 *                      i.i.d. N(0, 1/sigma_l^2), b i.i.d. U[0, 2 pi): random
 *                      Fourier features of the RBF kernel
 *                      exp(-|z - z'|^2 / (2 sigma_l^2)) (Rahimi-Recht);
 *                      sigma_l from ridge_sigma (one value per level, the
 *                      last repeating; default 1 at level 1, where distinct
 *                      one-hot patches are sqrt(2) or 2 apart, and 0.25
 *                      above, where the inputs are probability vectors),
 *                      or, for a value 0, half the median distance between
 *                      the level's first-patch inputs of the first 256 fit
 *                      samples (per replica; the median heuristic);
 *   fit                W = E[e_y phi^T] (E[phi phi^T] + lambda I)^{-1} with
 *                      e_y the one-hot class label of the datum and E the
 *                      mean over the fit samples, phi of the FIRST patch of
 *                      the level only (positions 0..s-1 of the level below);
 *                      solved on the device as (A + lambda I) W^T = B with
 *                      A = E[phi phi^T], B = E[phi e_y^T] (host->solve_spd);
 *   output of a patch  q = W phi(z) / sum(W phi(z)) (normalised to sum 1;
 *                      a sum within 1e-12 of 0 gives the uniform vector),
 *                      an estimate of P(class | patch), equal for synonyms;
 *                      the same W and Omega at every patch (a convolution).
 * Level L has one patch: its q is the model output (the scores whose argmax
 * is the predicted class; the run's test loss is the cross-entropy of
 * softmax(q), the error is meaningful). Fit samples: the first `samples` of
 * the training stream, by default the whole training set. After the fit the
 * model evaluates the chain instead of the CNN (its conv weights are unused)
 * and has no gradient. One evaluation follows the fit. */
#include "deep_cnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DCNN_RIDGE_BUDGET ((size_t)1 << 24) /* floats of the feature scratch */
#define DCNN_TWO_PI 6.283185307179586

static size_t level_cin(const dcnn *m, size_t l) { return l == 0 ? m->v : m->n_out; }

void dcnn_ridge_release(dcnn *m) {
  dcnn_ridge *rc = &m->rc;
  const hcl_host_api *host = hcl_host;
  for (size_t l = 0; l < m->L; l++) {
    if (rc->omega) host->buf_free(m->ctx, &rc->omega[l]);
    if (rc->phase) host->buf_free(m->ctx, &rc->phase[l]);
    if (rc->w) host->buf_free(m->ctx, &rc->w[l]);
    if (rc->q) host->buf_free(m->ctx, &rc->q[l]);
  }
  free(rc->omega);
  free(rc->phase);
  free(rc->w);
  free(rc->q);
  rc->omega = rc->phase = rc->w = rc->q = NULL;
  host->buf_free(m->ctx, &rc->u);
  host->buf_free(m->ctx, &rc->f);
  rc->fitted = 0;
}

static hcl_status alloc_f(dcnn *m, hcl_buf *b, size_t floats) {
  return hcl_host->buf_alloc(m->ctx, (floats ? floats : 1) * sizeof(float), b);
}

/* Buffers of every level and the draws of the phases b (Omega is drawn
 * when its level is fitted, see draw_omega). */
static hcl_status ridge_alloc(dcnn *m) {
  const hcl_host_api *host = hcl_host;
  dcnn_ridge *rc = &m->rc;
  size_t L = m->L, R = m->R, D = rc->D, C = m->n_out, max_cs = 0;
  dcnn_ridge_release(m);
  rc->omega = calloc(L, sizeof *rc->omega);
  rc->phase = calloc(L, sizeof *rc->phase);
  rc->w = calloc(L, sizeof *rc->w);
  rc->q = calloc(L, sizeof *rc->q);
  if (!rc->omega || !rc->phase || !rc->w || !rc->q)
    return host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t l = 0; l < L; l++) {
    size_t cs = level_cin(m, l) * m->s;
    if (cs > max_cs) max_cs = cs;
    HCL_TRY(alloc_f(m, &rc->omega[l], R * D * cs));
    HCL_TRY(alloc_f(m, &rc->phase[l], R * D));
    HCL_TRY(alloc_f(m, &rc->w[l], R * D * C));
    HCL_TRY(alloc_f(m, &rc->q[l], R * m->max_batch * m->layer[l].P * C));
    HCL_TRY(host->rng(m->ctx, HCL_RNG_UNIFORM, 0.0f, (float)DCNN_TWO_PI, m->seeds, R,
                      DCNN_STREAM_PHASE + l, 0, rc->phase[l], D, D));
  }
  /* rows of one chunk: at least one sample's patches of level 1 */
  size_t P1 = m->layer[0].P, cap = DCNN_RIDGE_BUDGET / (R * D);
  if (cap > m->max_batch * P1) cap = m->max_batch * P1;
  if (cap < P1) cap = P1;
  rc->rows_cap = cap;
  HCL_TRY(alloc_f(m, &rc->u, R * cap * max_cs));
  return alloc_f(m, &rc->f, R * cap * D);
}

/* The source of level l's patches for `n` samples: x or the level below. */
static void level_source(const dcnn *m, size_t l, hcl_buf x, size_t n, hcl_buf *src, size_t *sb,
                         size_t *sc, size_t *sp) {
  if (l == 0) {
    *src = x;
    *sb = m->v * m->d, *sc = m->d, *sp = 1;
  } else {
    size_t P = m->layer[l - 1].P, C = m->n_out;
    *src = hcl_view(m->rc.q[l - 1], 0, m->R * n * P * C);
    *sb = P * C, *sc = 1, *sp = C;
  }
}

/* phi of `count` samples' patches starting at sample i0 (P patches each, or
 * only the first when P = 1 is passed for a level with more): into rc.f as
 * [R, count * P, D]. */
static hcl_status embed(dcnn *m, size_t l, hcl_buf src, size_t n, size_t sb, size_t sc, size_t sp,
                        size_t i0, size_t count, size_t P) {
  const hcl_host_api *host = hcl_host;
  dcnn_ridge *rc = &m->rc;
  size_t R = m->R, D = rc->D, cs = level_cin(m, l) * m->s, rows = count * P;
  hcl_buf from = hcl_view(src, i0 * sb, (R * n - i0) * sb);
  hcl_buf u = hcl_view(rc->u, 0, R * rows * cs), f = hcl_view(rc->f, 0, R * rows * D);
  HCL_TRY(dcnn_im2col(m, from, n * sb, sb, sc, sp, u, count, P, level_cin(m, l), m->s));
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, rows, D, cs, 1.0f, u, cs, rows * cs, rc->omega[l], cs,
                              D * cs, 0.0f, f, D, rows * D, R));
  return dcnn_rff(m, f, rc->phase[l], rows, D, (float)sqrt(2.0 / (double)D));
}

/* Level l (0-based) of the fitted chain on n samples into rc.q[l]. */
static hcl_status level_forward(dcnn *m, size_t l, hcl_buf x, size_t n) {
  const hcl_host_api *host = hcl_host;
  dcnn_ridge *rc = &m->rc;
  size_t R = m->R, D = rc->D, C = m->n_out, P = m->layer[l].P;
  size_t chunk = rc->rows_cap / P, sb, sc, sp;
  hcl_buf src;
  level_source(m, l, x, n, &src, &sb, &sc, &sp);
  for (size_t i0 = 0; i0 < n; i0 += chunk) {
    size_t count = n - i0 < chunk ? n - i0 : chunk, rows = count * P;
    HCL_TRY(embed(m, l, src, n, sb, sc, sp, i0, count, P));
    hcl_buf q = hcl_view(rc->q[l], i0 * P * C, (R - 1) * n * P * C + rows * C);
    HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, rows, C, D, 1.0f, hcl_view(rc->f, 0, R * rows * D), D,
                                rows * D, rc->w[l], C, D * C, 0.0f, q, C, n * P * C, R));
  }
  return dcnn_normalise(m, hcl_view(rc->q[l], 0, R * n * P * C), R * n * P, C);
}

hcl_status dcnn_ridge_levels(dcnn *m, hcl_buf x, size_t n, size_t upto) {
  for (size_t l = 0; l < upto; l++) HCL_TRY(level_forward(m, l, x, n));
  return HCL_OK;
}

hcl_status dcnn_ridge_forward(dcnn *m, hcl_buf x, size_t n, hcl_buf out) {
  HCL_TRY(dcnn_ridge_levels(m, x, n, m->L));
  size_t span = m->R * n * m->n_out;
  return hcl_host->buf_copy(m->ctx, hcl_view(out, 0, span), hcl_view(m->rc.q[m->L - 1], 0, span),
                            span * sizeof(float));
}

/* Layer k's features after ridge_chain: level k's outputs [n_c, P_k]
 * flattened channels first. */
hcl_status dcnn_ridge_features(dcnn *m, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                               size_t *dim) {
  size_t P = m->layer[layer - 1].P, C = m->n_out;
  *dim = C * P;
  if (n == 0) return HCL_OK;
  HCL_TRY(dcnn_ridge_levels(m, x, n, layer));
  return dcnn_flatten_cf(m, m->rc.q[layer - 1], hcl_view(out, 0, m->R * n * C * P), n, P, C);
}

/* Scratch of the fit: statistics A, B, labels and a batch of data. */
typedef struct fit_bufs {
  hcl_buf a, b, e, x, y;
} fit_bufs;

static void fit_free(dcnn *m, fit_bufs *fb) {
  hcl_buf *all[] = {&fb->a, &fb->b, &fb->e, &fb->x, &fb->y};
  for (size_t i = 0; i < 5; i++) hcl_host->buf_free(m->ctx, all[i]);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Half the median pairwise distance of level l's first-patch inputs over
 * the first (at most 256) fit samples, per replica, into sigma[R]. */
static hcl_status median_sigma(dcnn *m, hcl_trainer *t, size_t l, uint64_t N, fit_bufs *fb,
                               double *sigma) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, cs = level_cin(m, l) * m->s,
         nb = m->max_batch < m->rc.rows_cap ? m->max_batch : m->rc.rows_cap;
  size_t k = N < 256 ? (size_t)N : 256;
  if (k > nb) k = nb;
  HCL_TRY(host->train_batch(t, HCL_STREAM_TRAIN, 0, k, fb->x, fb->y));
  HCL_TRY(dcnn_ridge_levels(m, fb->x, k, l));
  hcl_buf src;
  size_t sb, sc, sp;
  level_source(m, l, fb->x, k, &src, &sb, &sc, &sp);
  HCL_TRY(dcnn_im2col(m, src, k * sb, sb, sc, sp, m->rc.u, k, 1, level_cin(m, l), m->s));
  float *u = malloc(R * k * cs * sizeof *u);
  double *dist = malloc((k * (k - 1) / 2 + 1) * sizeof *dist);
  hcl_status rc = u && dist ? host->buf_read(m->ctx, m->rc.u, u, R * k * cs * sizeof *u)
                            : host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; rc == HCL_OK && r < R; r++) {
    const float *ur = u + r * k * cs;
    size_t nd = 0;
    for (size_t i = 0; i < k; i++)
      for (size_t j = i + 1; j < k; j++) {
        double a = 0;
        for (size_t c = 0; c < cs; c++) {
          double e = (double)ur[i * cs + c] - (double)ur[j * cs + c];
          a += e * e;
        }
        dist[nd++] = sqrt(a);
      }
    double med = 0;
    if (nd) {
      qsort(dist, nd, sizeof *dist, cmp_double);
      med = dist[nd / 2];
    }
    if (!(med > 0))
      rc = host->fail(m->ctx, HCL_ERR_NUMERIC,
                      "ridge_chain level %zu: the median heuristic found no spread in "
                      "the inputs (replica %zu); set [model] ridge_sigma",
                      l + 1, r);
    sigma[r] = 0.5 * med;
  }
  free(u);
  free(dist);
  return rc;
}

/* Omega of level l: N(0, 1/sigma^2) per replica, sigma from ridge_sigma or
 * the median heuristic. */
static hcl_status draw_omega(dcnn *m, hcl_trainer *t, size_t l, uint64_t N, fit_bufs *fb) {
  const hcl_host_api *host = hcl_host;
  dcnn_ridge *rc = &m->rc;
  size_t R = m->R, D = rc->D, cs = level_cin(m, l) * m->s;
  double fixed = rc->sigma[l < rc->n_sigma ? l : rc->n_sigma - 1];
  if (fixed > 0)
    return host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, (float)(1.0 / fixed), m->seeds, R,
                     DCNN_STREAM_OMEGA + l, 0, rc->omega[l], D * cs, D * cs);
  double *sigma = malloc(R * sizeof *sigma);
  if (!sigma) return host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status st = median_sigma(m, t, l, N, fb, sigma);
  for (size_t r = 0; st == HCL_OK && r < R; r++) {
    st = host->rng(m->ctx, HCL_RNG_NORMAL, 0.0f, (float)(1.0 / sigma[r]), m->seeds + r, 1,
                   DCNN_STREAM_OMEGA + l, 0, hcl_view(rc->omega[l], r * D * cs, D * cs), D * cs,
                   D * cs);
    if (st == HCL_OK)
      host->log(m->ctx, HCL_LOG_INFO,
                "deep_cnn: ridge_chain level %zu, replica %zu: sigma = %g "
                "(median heuristic)",
                l + 1, r, sigma[r]);
  }
  free(sigma);
  return st;
}

/* Level l: accumulate A and B over the fit samples, then solve. */
static hcl_status fit_level(dcnn *m, hcl_trainer *t, size_t l, uint64_t N, size_t nb,
                            fit_bufs *fb) {
  const hcl_host_api *host = hcl_host;
  dcnn_ridge *rc = &m->rc;
  size_t R = m->R, D = rc->D, C = m->n_out;
  float inv = (float)(1.0 / (double)N);
  HCL_TRY(draw_omega(m, t, l, N, fb));
  for (uint64_t first = 0; first < N; first += nb) {
    if (host->train_stop_requested(t))
      return host->fail(m->ctx, HCL_ERR_INTERRUPTED,
                        "ridge_chain interrupted at "
                        "level %zu",
                        l + 1);
    size_t count = N - first < nb ? (size_t)(N - first) : nb;
    HCL_TRY(host->train_batch(t, HCL_STREAM_TRAIN, first, count, fb->x, fb->y));
    HCL_TRY(dcnn_ridge_levels(m, fb->x, count, l));
    hcl_buf src;
    size_t sb, sc, sp;
    level_source(m, l, fb->x, count, &src, &sb, &sc, &sp);
    HCL_TRY(embed(m, l, src, count, sb, sc, sp, 0, count, 1)); /* the first patch only */
    hcl_buf f = hcl_view(rc->f, 0, R * count * D), e = hcl_view(fb->e, 0, R * count * C);
    HCL_TRY(dcnn_onehot(m, fb->y, e, R * count, C));
    float beta = first == 0 ? 0.0f : 1.0f;
    HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, D, D, count, inv, f, D, count * D, f, D, count * D,
                                beta, fb->a, D, D * D, R));
    HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, D, C, count, inv, f, D, count * D, e, C, count * C,
                                beta, fb->b, C, D * C, R));
  }
  hcl_status st = host->solve_spd(m->ctx, fb->a, fb->b, R, D, C, (float)rc->lambda);
  if (st == HCL_ERR_NUMERIC) /* the solver cannot know which key sets lambda: say it here */
    return host->fail(m->ctx, st,
                      "algorithm ridge_chain, level %zu: the ridge system (E[phi "
                      "phi^T] + lambda I) is not numerically positive definite for some replica; "
                      "increase [model] ridge_lambda (now %g)",
                      l + 1, rc->lambda);
  HCL_TRY(st);
  return host->buf_copy(m->ctx, rc->w[l], fb->b, R * D * C * sizeof(float));
}

hcl_status dcnn_ridge_chain(dcnn *m, hcl_trainer *t) {
  const hcl_host_api *host = hcl_host;
  dcnn_ridge *rc = &m->rc;
  if (m->task != HCL_TASK_CLASSES)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "ridge_chain needs a classification target (it regresses the "
                      "one-hot class)");
  uint64_t N = rc->samples ? rc->samples : host->train_size(t);
  if (N == 0)
    return host->fail(m->ctx, HCL_ERR_PARAM,
                      "ridge_chain with [train] train_size = 0 (fresh samples): set "
                      "[model] ridge_samples");
  HCL_TRY(ridge_alloc(m));
  size_t nb = m->max_batch < rc->rows_cap ? m->max_batch : rc->rows_cap;
  size_t R = m->R, D = rc->D, C = m->n_out;
  fit_bufs fb;
  memset(&fb, 0, sizeof fb);
  hcl_status st = alloc_f(m, &fb.a, R * D * D);
  if (st == HCL_OK) st = alloc_f(m, &fb.b, R * D * C);
  if (st == HCL_OK) st = alloc_f(m, &fb.e, R * nb * C);
  if (st == HCL_OK) st = alloc_f(m, &fb.x, R * nb * m->v * m->d);
  if (st == HCL_OK) st = alloc_f(m, &fb.y, R * nb * m->y_dim);
  for (size_t l = 0; st == HCL_OK && l < m->L; l++) {
    st = fit_level(m, t, l, N, nb, &fb);
    if (st == HCL_OK)
      host->log(m->ctx, HCL_LOG_INFO,
                "deep_cnn: ridge_chain level %zu of %zu fitted on %llu "
                "samples (D = %zu, lambda = %g)",
                l + 1, m->L, (unsigned long long)N, D, rc->lambda);
  }
  fit_free(m, &fb);
  if (st != HCL_OK) {
    dcnn_ridge_release(m);
    return st;
  }
  rc->fitted = 1;
  /* evaluate the fitted chain now, labelled: it takes no SGD steps */
  host->train_label(t, "ridge_chain");
  return host->train_eval(t, NULL, 0);
}
