/* Exact moments of low-rank polynomials under Gaussian and spherical inputs,
 * and the random directions of the low_rank_poly target (host, double). */
#include "low_rank_poly.h"

#include <math.h>

int lrp_directions(uint64_t seed, size_t d, size_t r, int orthogonal, double *B) {
  uint64_t sid = gt_stream_id(LRP_TAG, GT_PURPOSE_PARAM, 0);
  if (orthogonal) {
    if (r > d) return -1;
    for (size_t e = 0; e < r * d; e++) B[e] = (double)gt_normal_host(seed, sid, e);
    return gt_orthonormalize(B, r, d);
  }
  for (size_t j = 0; j < r; j++)
    if (gt_unit_vector(seed, sid, (uint64_t)j * d, d, B + j * d)) return -1;
  return 0;
}

/* E[Z^k] for Z ~ N(0, 1): (k-1)!! for even k, 0 for odd. */
static double gauss_moment(unsigned k) {
  if (k & 1u) return 0.0;
  double m = 1.0;
  for (unsigned i = k; i > 1; i -= 2) m *= (double)(i - 1);
  return m;
}

static double binom(unsigned n, unsigned k) {
  double b = 1.0;
  for (unsigned i = 1; i <= k; i++) b = b * (double)(n - k + i) / (double)i;
  return b;
}

static double powu(double x, unsigned k) {
  double v = 1.0;
  while (k--) v *= x;
  return v;
}

double lrp_pair_moment(double g11, double g12, double g22, unsigned p, unsigned q, size_t d,
                       int inputs) {
  if ((p + q) & 1u) return 0.0;
  double s1 = sqrt(g11), s2 = sqrt(g22);
  double rho = (s1 > 0.0 && s2 > 0.0) ? g12 / (s1 * s2) : 0.0;
  if (rho > 1.0) rho = 1.0;
  if (rho < -1.0) rho = -1.0;
  double c2 = 1.0 - rho * rho, sum = 0.0;
  for (unsigned k = 0; k <= q; k++) {
    if ((q - k) & 1u) continue; /* odd moment of W */
    sum += binom(q, k) * powu(rho, k) * powu(c2, (q - k) / 2) * gauss_moment(p + k) *
           gauss_moment(q - k);
  }
  double m = powu(s1, p) * powu(s2, q) * sum;
  if (inputs == GT_IN_SPHERE)
    for (unsigned i = 0; i < (p + q) / 2; i++) m *= (double)d / ((double)d + 2.0 * i);
  return m;
}

void lrp_moments(const double *B, size_t r, size_t d, const unsigned *p, const double *alpha,
                 int inputs, double *mean, double *var) {
  double mu = 0.0, second = 0.0;
  for (size_t j = 0; j < r; j++) {
    const double *bj = B + j * d;
    double gjj = 0.0;
    for (size_t a = 0; a < d; a++) gjj += bj[a] * bj[a];
    mu += alpha[j] * lrp_pair_moment(gjj, 0.0, 1.0, p[j], 0, d, inputs);
    for (size_t l = 0; l < r; l++) {
      const double *bl = B + l * d;
      double gll = 0.0, gjl = 0.0;
      for (size_t a = 0; a < d; a++) {
        gll += bl[a] * bl[a];
        gjl += bj[a] * bl[a];
      }
      second += alpha[j] * alpha[l] * lrp_pair_moment(gjj, gjl, gll, p[j], p[l], d, inputs);
    }
  }
  *mean = mu;
  *var = second - mu * mu;
}
