/* hiercl gradcheck: a model's backward() against central finite differences
 * of its forward(), block by block, on a few samples and replicas. */
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The seed of the random dout: fixed, so a check gives the same numbers every time. */
#define GC_DOUT_SEED 0x6772616463686bull /* "gradchk" */

/* splitmix64: a fixed stream of uniforms in [-1, 1) for dout. */
static double gc_uniform(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / 4503599627370496.0 - 1.0; /* 2^52 */
}

/* Coordinate k of K checked in a block of `count`: all when count <= K, else
 * K evenly spaced ones (the first and the last included). */
static size_t gc_coord(size_t k, size_t K, size_t count) {
  if (count <= K || K < 2) return k;
  return (size_t)((double)k * (double)(count - 1) / (double)(K - 1) + 0.5);
}

/* Per replica r: sum_{i,k} dout[r, i, k] * out[r, i, k] of one forward, in float64. */
static hcl_status gc_objective(const hcl_gradcheck_run *g, const double *dout, float *out_host,
                               double *L) {
  hcl_trainer *t = g->t;
  size_t R = t->cfg->replicas, m = g->samples * t->out_dim;
  HCL_TRY(t->mvt->forward(t->model, t->params, t->x, g->samples, t->out));
  HCL_TRY(hcl_buf_read(t->ctx, t->out, out_host, R * m * sizeof(float)));
  for (size_t r = 0; r < R; r++) {
    double s = 0;
    for (size_t i = 0; i < m; i++) s += dout[r * m + i] * (double)out_host[r * m + i];
    L[r] = s;
  }
  return HCL_OK;
}

/* Set coordinate `at` of every replica's parameters to v[r]. */
static hcl_status gc_poke(hcl_trainer *t, size_t at, const float *v) {
  for (size_t r = 0; r < t->cfg->replicas; r++) {
    hcl_buf one = {t->params.mem, t->params.offset + (r * t->n_params + at) * sizeof(float),
                   sizeof(float)};
    HCL_TRY(hcl_buf_write(t->ctx, one, &v[r], sizeof(float)));
  }
  return HCL_OK;
}

static int gc_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A gradient off by one factor in every coordinate (a learning rate folded
 * into backward) is told apart from a wrong one: the median c of g / fd over
 * the pairs with |g| >= max_g / 10 (first step's fd), kept when at least 80%
 * of them lie within 5% of it and c is not 1; else NaN. gs and fs are
 * reordered. */
static double gc_ratio(double *gs, double *fs, size_t n, double max_g) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(gs[i]) >= 0.1 * max_g && fs[i] != 0 && isfinite(gs[i] / fs[i]))
      gs[m++] = gs[i] / fs[i];
  if (m < 4) return NAN;
  qsort(gs, m, sizeof *gs, gc_cmp);
  double c = gs[m / 2];
  size_t close = 0;
  for (size_t i = 0; i < m; i++) close += fabs(gs[i] / c - 1) < 0.05;
  return close * 5 >= m * 4 && fabs(c - 1) > 0.05 ? c : NAN;
}

/* Steps tried for a coordinate that disagrees: each GC_SHRINK times smaller
 * than the last. */
#define GC_TRIES 4
#define GC_SHRINK 8.0f

/* One block: the finite difference of every checked coordinate in every
 * replica at once (replicas are independent runs, so perturbing coordinate j
 * of each replica moves only that replica's objective). ReLU-like models
 * have kinks, and a step that crosses one misses the gradient; a smaller
 * step does not cross it, while float32 rounding grows as the step shrinks.
 * So a coordinate that disagrees is tried again with smaller steps, and the
 * step that agrees best counts. A wrong gradient disagrees at every step. */
static hcl_status gc_block(const hcl_gradcheck_run *g, const hcl_block *b, const float *p0,
                           const float *grad, const double *dout, float *out_host, double *gs,
                           double *fs, hcl_gradcheck_block *res) {
  hcl_trainer *t = g->t;
  size_t R = t->cfg->replicas, count = b->rows * b->cols;
  size_t K = count < g->coords ? count : g->coords;
  float plus[R], minus[R], base[R];
  double Lp[R], Lm[R], best[R], fd_best[R];
  double max_g = 0, max_fd = 0, max_diff = 0;
  for (size_t k = 0; k < K; k++)
    for (size_t r = 0; r < R; r++)
      max_g = fmax(max_g, fabs(grad[r * t->n_params + b->offset + gc_coord(k, K, count)]));
  for (size_t k = 0; k < K; k++) {
    size_t at = b->offset + gc_coord(k, K, count);
    for (size_t r = 0; r < R; r++) base[r] = p0[r * t->n_params + at], best[r] = INFINITY;
    float shrink = 1.0f;
    for (int attempt = 0; attempt < GC_TRIES; attempt++, shrink *= GC_SHRINK) {
      for (size_t r = 0; r < R; r++) {
        /* float32 forwards: a first step near cbrt(float eps) of the coordinate's scale */
        float h = 4e-3f / shrink * fmaxf(1.0f, fabsf(base[r]));
        plus[r] = base[r] + h;
        minus[r] = base[r] - h;
      }
      HCL_TRY(gc_poke(t, at, plus));
      HCL_TRY(gc_objective(g, dout, out_host, Lp));
      HCL_TRY(gc_poke(t, at, minus));
      HCL_TRY(gc_objective(g, dout, out_host, Lm));
      int agree = 1;
      for (size_t r = 0; r < R; r++) {
        /* the step actually taken: the perturbed values are rounded to float */
        double fd = (Lp[r] - Lm[r]) / ((double)plus[r] - (double)minus[r]);
        double diff = fabs(grad[r * t->n_params + at] - fd);
        if (!(diff >= best[r])) best[r] = diff, fd_best[r] = fd; /* NaN replaces */
        if (!attempt) fs[k * R + r] = fd;
        if (!(best[r] <= 1e-4 * max_g)) agree = 0;
      }
      if (agree) break;
    }
    HCL_TRY(gc_poke(t, at, base));
    for (size_t r = 0; r < R; r++) {
      max_fd = fmax(max_fd, fabs(fd_best[r]));
      if (!(best[r] <= max_diff)) max_diff = best[r]; /* NaN sticks */
      gs[k * R + r] = grad[r * t->n_params + at];
    }
  }
  double scale = fmax(max_g, max_fd);
  res->checked = K;
  res->max_grad = max_g;
  res->max_rel = isnan(max_diff) ? NAN : scale > 0 ? max_diff / scale : 0.0;
  res->ratio = res->max_rel > 1e-2 ? gc_ratio(gs, fs, K * R, max_g) : NAN;
  return HCL_OK;
}

hcl_status hcl_gradcheck_model(const hcl_gradcheck_run *g, hcl_gradcheck_block **out,
                               size_t *n_out) {
  hcl_trainer *t = g->t;
  hcl_ctx *ctx = t->ctx;
  size_t R = t->cfg->replicas, n = g->samples, D = t->out_dim, P = t->n_params;
  *out = NULL;
  *n_out = 0;
  hcl_status rc = HCL_OK;
  float *p0 = malloc(R * P * sizeof *p0), *grad = malloc(R * P * sizeof *grad);
  float *out_host = malloc(R * n * D * sizeof *out_host),
        *dout_f = malloc(R * n * D * sizeof(float));
  double *dout = malloc(R * n * D * sizeof *dout);
  /* (g, fd) pairs of one block: coords x replicas */
  double *gs = malloc(g->coords * R * sizeof *gs), *fs = malloc(g->coords * R * sizeof *fs);
  hcl_gradcheck_block *res = calloc(t->n_blocks ? t->n_blocks : 1, sizeof *res);
  if (!p0 || !grad || !out_host || !dout_f || !dout || !res || !gs || !fs) {
    rc = hcl_fail(ctx, HCL_ERR_NOMEM, "out of host memory");
    goto done;
  }
  uint64_t s = GC_DOUT_SEED;
  for (size_t i = 0; i < R * n * D; i++) {
    dout_f[i] = (float)gc_uniform(&s);
    dout[i] = dout_f[i]; /* the objective uses exactly the dout backward sees */
  }
  if ((rc = hcl_trainer_batch(t, HCL_STREAM_TEST, 0, n, t->x, t->y)) != HCL_OK ||
      (rc = hcl_buf_read(ctx, t->params, p0, R * P * sizeof(float))) != HCL_OK ||
      (rc = hcl_buf_write(ctx, t->dout, dout_f, R * n * D * sizeof(float))) != HCL_OK ||
      (rc = t->mvt->forward(t->model, t->params, t->x, n, t->out)) != HCL_OK ||
      (rc = hcl_fill(ctx, t->grad, 0.0f, R * P)) != HCL_OK ||
      (rc = t->mvt->backward(t->model, t->params, t->dout, n, t->grad)) != HCL_OK ||
      (rc = hcl_buf_read(ctx, t->grad, grad, R * P * sizeof(float))) != HCL_OK)
    goto done;
  for (size_t i = 0; i < t->n_blocks; i++) {
    const hcl_block *b = &t->blocks[i];
    hcl_gradcheck_block *r = &res[i];
    snprintf(r->name, sizeof r->name, "%s", b->name ? b->name : "?");
    r->rows = b->rows;
    r->cols = b->cols;
    r->trainable = b->trainable != 0;
    if (!r->trainable) continue; /* backward need not fill a frozen block */
    if (t->stop && *t->stop) {
      rc = hcl_fail(ctx, HCL_ERR_INTERRUPTED, "gradcheck interrupted");
      goto done;
    }
    if ((rc = gc_block(g, b, p0, grad, dout, out_host, gs, fs, r)) != HCL_OK) goto done;
  }
  *out = res;
  *n_out = t->n_blocks;
  res = NULL;
done:
  free(p0);
  free(grad);
  free(out_host);
  free(dout_f);
  free(dout);
  free(res);
  free(gs);
  free(fs);
  return rc;
}
