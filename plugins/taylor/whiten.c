/* taylor plugin: whitening of the neural representation, and the "gd"
 * algorithm.
 *
 * z = (h(x) - mu) M with mu, Sigma the mean and covariance of h over the
 * first N = whiten_size samples of the target's unlabelled stream and
 * M = s Sigma^{-1/2} (directions with eigenvalue below whiten_rcond * the
 * largest map to 0). Not the labelled training set: with P <= rep_width
 * training points Sigma would be rank-deficient and its tiny eigenvalues
 * would blow test inputs up. Sigma is accumulated on the device in float
 * (two passes: mean, then the centred second moment) and decomposed on the
 * host in double. One refinement pass removes the float error that small
 * eigenvalues amplify: with M0 from the first estimate, C1 = cov(z0) is
 * close to the identity, and M = M0 C1^{-1/2} s. The scale s puts z on the
 * raw input's scale: E|z|^2/D = E|x|^2/d on the sample (the refined z has
 * E|z|^2 = rank before s), so that one lr and init mean the same for the
 * raw and the neural representation. */
#include "taylor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Eigenvalues of the refinement covariance below this are rounding noise of
 * directions the first pass dropped (the kept ones are close to 1). */
#define REFINE_RCOND 1e-3

/* out = pseudo C^{-1/2} (symmetric, D x D, double) with eigenvalues below
 * rcond * max dropped; c is overwritten. Returns the rank, or -1. */
static long inv_sqrt(double *c, size_t D, double rcond, double *out) {
  double *w = malloc(D * sizeof *w);
  if (!w) return -1;
  if (hcl_taylor_eigh(c, w, D) != 0) {
    free(w);
    return -1;
  }
  double top = w[D - 1];
  long rank = 0;
  memset(out, 0, D * D * sizeof *out);
  for (size_t i = 0; i < D; i++) {
    if (!(top > 0) || !(w[i] > rcond * top)) continue;
    rank++;
    double *u = c + i * D, s = 1.0 / sqrt(w[i]);
    /* out += s u u^T, upper triangle */
    for (size_t j = 0; j < D; j++) {
      double f = s * u[j];
      if (f == 0.0) continue;
      double *row = out + j * D;
      for (size_t k = j; k < D; k++) row[k] += f * u[k];
    }
  }
  for (size_t j = 0; j < D; j++)
    for (size_t k = 0; k < j; k++) out[j * D + k] = out[k * D + j];
  free(w);
  return rank;
}

/* c = a b for D x D row-major doubles. */
static void matmul(const double *a, const double *b, size_t D, double *c) {
  memset(c, 0, D * D * sizeof *c);
  for (size_t i = 0; i < D; i++)
    for (size_t l = 0; l < D; l++) {
      double f = a[i * D + l];
      if (f == 0.0) continue;
      const double *br = b + l * D;
      double *cr = c + i * D;
      for (size_t k = 0; k < D; k++) cr[k] += f * br[k];
    }
}

typedef struct fit_bufs {
  hcl_buf x, y, negmean, cov;
  float *hcov, *hmean, *hblock, *hx;
  double *c, *m0, *n, *mm, *msx; /* msx [R]: mean square per coordinate of x */
} fit_bufs;

static void fit_free(hcl_taylor *m, fit_bufs *b) {
  const hcl_host_api *host = hcl_host;
  hcl_buf *bufs[] = {&b->x, &b->y, &b->negmean, &b->cov};
  for (size_t i = 0; i < 4; i++)
    if (bufs[i]->mem) host->buf_free(m->ctx, bufs[i]);
  free(b->hcov), free(b->hmean), free(b->hblock), free(b->hx);
  free(b->c), free(b->m0), free(b->n), free(b->mm), free(b->msx);
}

static hcl_status fit_alloc(hcl_taylor *m, fit_bufs *b) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, D = m->D, B = m->max_batch;
  HCL_TRY(host->buf_alloc(m->ctx, R * B * m->d * sizeof(float), &b->x));
  HCL_TRY(host->buf_alloc(m->ctx, R * B * m->y_dim * sizeof(float), &b->y));
  HCL_TRY(host->buf_alloc(m->ctx, R * D * sizeof(float), &b->negmean));
  HCL_TRY(host->buf_alloc(m->ctx, R * D * D * sizeof(float), &b->cov));
  b->hcov = malloc(R * D * D * sizeof *b->hcov);
  b->hmean = malloc(R * D * sizeof *b->hmean);
  b->hblock = malloc((D * D + D + 1) * sizeof *b->hblock);
  b->hx = malloc(R * B * m->d * sizeof *b->hx);
  size_t dd = D * D * sizeof(double);
  b->c = malloc(dd), b->m0 = malloc(R * dd), b->n = malloc(dd), b->mm = malloc(dd);
  b->msx = calloc(R, sizeof *b->msx);
  if (!b->hcov || !b->hmean || !b->hblock || !b->hx || !b->c || !b->m0 || !b->n || !b->mm ||
      !b->msx)
    return host->fail(m->ctx, HCL_ERR_NOMEM,
                      "out of host memory for the whitening (rep_width = %zu)", D);
  return HCL_OK;
}

/* Samples [first, first + n) of the unlabelled stream into b->x (their
 * labels, in b->y, are not used). */
static hcl_status chunk(hcl_taylor *m, hcl_trainer *t, fit_bufs *b, uint64_t first, size_t n) {
  return hcl_host->train_batch(t, HCL_STREAM_UNLABELLED, first, n,
                               hcl_view(b->x, 0, m->R * n * m->d),
                               hcl_view(b->y, 0, m->R * n * m->y_dim));
}

/* cov [R, D, D] = (1/N) sum over the N unlabelled samples of v v^T for the
 * rows v of the centred h (of_z = 0: after a first pass that puts -mu into
 * negmean and the inputs' mean square into msx) or of z with the blocks now
 * in params (of_z = 1); read back into b->hcov. */
static hcl_status moments(hcl_taylor *m, hcl_trainer *t, hcl_buf params, fit_bufs *b, uint64_t N,
                          int of_z) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, D = m->D, B = m->max_batch;
  float inv = (float)(1.0 / (double)N);
  if (!of_z)
    for (uint64_t first = 0; first < N; first += B) {
      size_t n = N - first < B ? (size_t)(N - first) : B;
      HCL_TRY(chunk(m, t, b, first, n));
      HCL_TRY(hcl_taylor_hidden(m, params, b->x, n));
      HCL_TRY(host->col_sum(m->ctx, hcl_view(m->hb, 0, R * n * D), b->negmean, D, R, n, D, -inv,
                            first ? 1.0f : 0.0f));
      HCL_TRY(host->buf_read(m->ctx, hcl_view(b->x, 0, R * n * m->d), b->hx,
                             R * n * m->d * sizeof *b->hx));
      for (size_t r = 0; r < R; r++) {
        double s = 0;
        for (size_t i = 0; i < n * m->d; i++)
          s += (double)b->hx[r * n * m->d + i] * b->hx[r * n * m->d + i];
        b->msx[r] += s / ((double)N * (double)m->d);
      }
    }
  for (uint64_t first = 0; first < N; first += B) {
    size_t n = N - first < B ? (size_t)(N - first) : B;
    HCL_TRY(chunk(m, t, b, first, n));
    hcl_buf v;
    if (of_z) {
      HCL_TRY(hcl_taylor_represent(m, params, b->x, n));
      v = hcl_view(m->zb, 0, R * n * D);
    } else {
      HCL_TRY(hcl_taylor_hidden(m, params, b->x, n));
      v = hcl_view(m->hb, 0, R * n * D);
      HCL_TRY(host->bias_act(m->ctx, HCL_ACT_IDENTITY, v, b->negmean, D, v, R, n, D));
    }
    HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, D, D, n, inv, v, D, n * D, v, D, n * D,
                                first ? 1.0f : 0.0f, b->cov, D, D * D, R));
  }
  return host->buf_read(m->ctx, b->cov, b->hcov, R * D * D * sizeof(float));
}

/* Write M (row-major D x D), c = -mu M and fitted = N into replica r. */
static hcl_status write_blocks(hcl_taylor *m, hcl_buf params, fit_bufs *b, size_t r,
                               const double *M, uint64_t N) {
  size_t D = m->D;
  const float *negmean = b->hmean + r * D;
  for (size_t i = 0; i < D * D; i++) b->hblock[i] = (float)M[i];
  double *c = b->n; /* scratch row */
  for (size_t j = 0; j < D; j++) c[j] = 0.0;
  for (size_t k = 0; k < D; k++) {
    double f = negmean[k];
    for (size_t j = 0; j < D; j++) c[j] += f * M[k * D + j];
  }
  for (size_t j = 0; j < D; j++) b->hblock[D * D + j] = (float)c[j];
  b->hblock[D * D + D] = (float)N;
  /* whiten, offset and fitted are contiguous in this order */
  return hcl_host->buf_write(
      m->ctx, hcl_view(params, r * m->n_params + m->off[HCL_TAYLOR_B_WHITEN], D * D + D + 1),
      b->hblock, (D * D + D + 1) * sizeof(float));
}

static hcl_status fit(hcl_taylor *m, hcl_trainer *t, hcl_buf params, fit_bufs *b, uint64_t N) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, D = m->D;
  HCL_TRY(fit_alloc(m, b));
  HCL_TRY(moments(m, t, params, b, N, 0));
  HCL_TRY(host->buf_read(m->ctx, b->negmean, b->hmean, R * D * sizeof(float)));
  char ranks[64 * 24] = "[";
  for (size_t r = 0; r < R; r++) {
    for (size_t i = 0; i < D * D; i++) b->c[i] = b->hcov[r * D * D + i];
    long rank = inv_sqrt(b->c, D, m->rcond, b->m0 + r * D * D);
    if (rank < 0)
      return host->fail(m->ctx, HCL_ERR_NUMERIC,
                        "eigen-decomposition of the %zu x %zu covariance of h(x) did not "
                        "converge (replica %zu, seed %llu)",
                        D, D, r, (unsigned long long)m->seeds[r]);
    if (rank == 0)
      return host->fail(m->ctx, HCL_ERR_NUMERIC,
                        "h(x) = relu(V x + b) is constant on the %llu unlabelled samples "
                        "(replica %zu): nothing to whiten",
                        (unsigned long long)N, r);
    if ((size_t)rank < D)
      host->log(m->ctx, HCL_LOG_WARN,
                "taylor: replica %zu: the covariance of h(x) on %llu unlabelled samples has %ld "
                "of %zu eigenvalues above whiten_rcond = %g of the largest; the others map to 0",
                r, (unsigned long long)N, rank, D, m->rcond);
    if (strlen(ranks) < sizeof ranks - 32)
      snprintf(ranks + strlen(ranks), sizeof ranks - strlen(ranks), "%s%ld", r ? "," : "", rank);
    HCL_TRY(write_blocks(m, params, b, r, b->m0 + r * D * D, N));
  }
  strncat(ranks, "]", sizeof ranks - strlen(ranks) - 1);
  host->note(m->ctx, "taylor.whiten_rank", ranks, 1);
  /* refinement: M = M0 C1^{-1/2} s, C1 the covariance of z0 = (h - mu) M0;
   * z0 C1^{-1/2} has E|z|^2 = rank1 on the sample, s^2 = msx D / rank1 */
  HCL_TRY(moments(m, t, params, b, N, 1));
  for (size_t r = 0; r < R; r++) {
    for (size_t i = 0; i < D * D; i++) b->c[i] = b->hcov[r * D * D + i];
    long rank1 = inv_sqrt(b->c, D, REFINE_RCOND, b->mm);
    if (rank1 < 0)
      return host->fail(m->ctx, HCL_ERR_NUMERIC,
                        "eigen-decomposition of the refinement covariance did not "
                        "converge (replica %zu)",
                        r);
    if (!(b->msx[r] > 0) || rank1 == 0)
      return host->fail(m->ctx, HCL_ERR_NUMERIC,
                        "the inputs x are 0 on the %llu unlabelled samples (replica "
                        "%zu): no scale to match",
                        (unsigned long long)N, r);
    double s = sqrt(b->msx[r] * (double)D / (double)rank1);
    for (size_t i = 0; i < D * D; i++) b->mm[i] *= s;
    matmul(b->m0 + r * D * D, b->mm, D, b->c);
    HCL_TRY(write_blocks(m, params, b, r, b->c, N));
  }
  return host->finish(m->ctx);
}

hcl_status hcl_taylor_fit_whitening(hcl_taylor *m, hcl_trainer *t, hcl_buf params) {
  const hcl_host_api *host = hcl_host;
  uint64_t N = m->whiten_size; /* unlabelled samples, not the training set */
  fit_bufs b;
  memset(&b, 0, sizeof b);
  hcl_status rc = fit(m, t, params, &b, N);
  fit_free(m, &b);
  hcl_taylor_whiten_done(m);
  m->fitted_mem = NULL;
  if (rc == HCL_OK)
    host->log(m->ctx, HCL_LOG_INFO,
              "taylor: whitened h(x) (width %zu) on %llu samples of the unlabelled stream", m->D,
              (unsigned long long)N);
  return rc;
}

hcl_status hcl_taylor_train(void *self, const char *algorithm, hcl_trainer *t) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  if (!algorithm || strcmp(algorithm, "gd"))
    return host->fail(m->ctx, HCL_ERR_UNSUPPORTED, "no algorithm '%s' (known: gd)",
                      algorithm ? algorithm : "");
  uint64_t P = host->train_size(t);
  size_t B = host->train_batch_size(t);
  if (P == 0 || B != P)
    host->log(m->ctx, HCL_LOG_WARN,
              "taylor: algorithm gd with [train] batch = %zu and train_size = %llu is "
              "minibatch SGD; set batch = train_size for full-batch gradient descent",
              B, (unsigned long long)P);
  /* the whitening was fitted by prepare(), before the step-0 evaluation */
  hcl_phase ph = {.struct_size = sizeof ph, .label = "gd", .steps = host->train_steps(t)};
  m->pen_on = 1; /* the objective is loss + penalty_24 ||W||_{2,4}^8 (penalty.c) */
  hcl_status rc = host->train_phase(t, &ph, NULL);
  m->pen_on = 0;
  return rc;
}

/* Fit the whitening on the unlabelled stream before the first evaluation,
 * so the step-0 metrics already see the whitened representation. */
hcl_status hcl_taylor_prepare(void *self, hcl_trainer *t) {
  hcl_taylor *m = self;
  if (!m->neural) return HCL_OK;
  return hcl_taylor_fit_whitening(m, t, hcl_host->train_params(t));
}
