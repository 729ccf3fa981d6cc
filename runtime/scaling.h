/* Scaling exponents: P*(d) = c d^k fitted on log-log axes, with a bootstrap
 * interval over seeds (scaling.c). Pure host code, no device. */
#ifndef HCL_SCALING_H
#define HCL_SCALING_H
#include "internal.h"

/* One learning curve per dimension: the seeds' metric at each training-set size. */
typedef struct hcl_scaling_curve {
  double d;          /* the dimension (or any size the exponent is taken in) */
  size_t n_p;        /* training-set sizes, ascending */
  const double *P;   /* [n_p] */
  size_t n_seeds;    /* columns of err */
  const double *err; /* [n_p * n_seeds], row p holds every seed's metric at P[p]; NaN = missing */
} hcl_scaling_curve;

typedef struct hcl_scaling_fit {
  double k, log_c;   /* log P* = log_c + k log d, over the dimensions with a finite P* */
  double k_lo, k_hi; /* percentile bootstrap interval of k over seeds (NaN if too few resamples) */
  size_t n_fit;      /* dimensions with a finite P* */
  size_t n_boot;     /* bootstrap resamples in which k could be fitted */
} hcl_scaling_fit;

/* Least-squares line through (log x, log y) over the finite positive pairs;
 * returns how many pairs it used (k and log_c are NaN below 2). */
size_t hcl_loglog_fit(const double *x, const double *y, size_t n, double *k, double *log_c);

/* P*(d) of each curve's seed-mean (threshold thr, as hcl_sweep_pstar) into
 * pstar[n], the exponent k of P* in d, and a `level` (e.g. 0.95) percentile
 * interval from B resamples of every curve's seeds with replacement,
 * deterministic in rng_seed. */
hcl_status hcl_scaling_exponent(const hcl_scaling_curve *curves, size_t n, double thr, unsigned B,
                                double level, uint64_t rng_seed, double *pstar,
                                hcl_scaling_fit *out);
#endif
