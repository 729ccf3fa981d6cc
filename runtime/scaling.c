/* Scaling exponents of the sample complexity: how P* grows with the
 * dimension. The papers' claims (P* ~ d^k for one learner, d^k' for another)
 * are exponents, so the sweep reports k with an interval, not one P*. */
#include "scaling.h"
#include "sweep.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t hcl_loglog_fit(const double *x, const double *y, size_t n, double *k, double *log_c) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(x[i] > 0 && y[i] > 0 && isfinite(x[i]) && isfinite(y[i]))) continue;
    double lx = log(x[i]), ly = log(y[i]);
    sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
    m++;
  }
  *k = NAN;
  *log_c = NAN;
  double den = (double)m * sxx - sx * sx;
  if (m < 2 || !(fabs(den) > 1e-12 * (double)m * sxx)) return m < 2 ? m : 0;
  *k = ((double)m * sxy - sx * sy) / den;
  *log_c = (sy - *k * sx) / (double)m;
  return m;
}

/* splitmix64: the bootstrap's resampling only needs a reproducible stream. */
static uint64_t next_u64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* P* of the mean over the chosen seeds (pick[j] indexes a column; NULL: all). */
static double curve_pstar(const hcl_scaling_curve *c, const size_t *pick, double thr,
                          double *mean) {
  for (size_t p = 0; p < c->n_p; p++) {
    double s = 0;
    size_t m = 0;
    for (size_t j = 0; j < c->n_seeds; j++) {
      double v = c->err[p * c->n_seeds + (pick ? pick[j] : j)];
      if (isfinite(v)) s += v, m++;
    }
    mean[p] = m ? s / (double)m : NAN;
  }
  double ps, lo, hi;
  hcl_sweep_pstar(c->P, mean, c->n_p, thr, &ps, &lo, &hi);
  return ps;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Linear interpolation between order statistics (the "type 7" quantile). */
static double quantile(const double *sorted, size_t n, double q) {
  double h = q * (double)(n - 1);
  size_t i = (size_t)h;
  if (i + 1 >= n) return sorted[n - 1];
  return sorted[i] + (h - (double)i) * (sorted[i + 1] - sorted[i]);
}

hcl_status hcl_scaling_exponent(const hcl_scaling_curve *curves, size_t n, double thr, unsigned B,
                                double level, uint64_t rng_seed, double *pstar,
                                hcl_scaling_fit *out) {
  size_t max_p = 0, max_s = 0;
  for (size_t i = 0; i < n; i++) {
    if (curves[i].n_p > max_p) max_p = curves[i].n_p;
    if (curves[i].n_seeds > max_s) max_s = curves[i].n_seeds;
  }
  double *d = malloc((n + 1) * sizeof *d), *ps = malloc((n + 1) * sizeof *ps);
  double *mean = malloc((max_p + 1) * sizeof *mean), *ks = malloc(((size_t)B + 1) * sizeof *ks);
  size_t *pick = malloc((max_s + 1) * sizeof *pick);
  if (!d || !ps || !mean || !ks || !pick) {
    free(d), free(ps), free(mean), free(ks), free(pick);
    return hcl_fail(NULL, HCL_ERR_NOMEM, "scaling fit: out of host memory");
  }
  for (size_t i = 0; i < n; i++) {
    d[i] = curves[i].d;
    pstar[i] = curve_pstar(&curves[i], NULL, thr, mean);
  }
  memset(out, 0, sizeof *out);
  out->n_fit = hcl_loglog_fit(d, pstar, n, &out->k, &out->log_c);
  uint64_t s = rng_seed;
  size_t nb = 0;
  for (unsigned b = 0; b < B; b++) {
    for (size_t i = 0; i < n; i++) {
      const hcl_scaling_curve *c = &curves[i];
      for (size_t j = 0; j < c->n_seeds; j++) pick[j] = (size_t)(next_u64(&s) % c->n_seeds);
      ps[i] = curve_pstar(c, pick, thr, mean);
    }
    double k, lc;
    if (hcl_loglog_fit(d, ps, n, &k, &lc) >= 2 && isfinite(k)) ks[nb++] = k;
  }
  out->n_boot = nb;
  out->k_lo = out->k_hi = NAN;
  /* An interval from a handful of resamples would pretend to a precision it lacks. */
  if (nb >= 20 && nb * 2 >= B) {
    qsort(ks, nb, sizeof *ks, cmp_dbl);
    out->k_lo = quantile(ks, nb, (1 - level) / 2);
    out->k_hi = quantile(ks, nb, (1 + level) / 2);
  }
  free(d), free(ps), free(mean), free(ks), free(pick);
  return HCL_OK;
}
