/* The rejection cap of the linear_teacher target: the acceptance
 * probability of one draw and the automatic attempt cap (pure C, no host
 * table, so the tests call it directly). */
#include "linear_teacher.h"

#include <math.h>
#include <stdlib.h>

/* Simpson's rule for the integral of cos(theta)^d over [a, b], n even. */
static double cos_pow_integral(size_t d, double a, double b, size_t n) {
  if (!(b > a)) return 0.0;
  double h = (b - a) / (double)n, s = 0.0;
  for (size_t i = 0; i <= n; i++) {
    double c = cos(a + h * (double)i);
    double f = c > 0.0 ? exp((double)d * log(c)) : 0.0;
    s += f * (i == 0 || i == n ? 1.0 : (i % 2 ? 4.0 : 2.0));
  }
  return s * h / 3.0;
}

double lt_accept_prob(int inputs, size_t d, double gamma) {
  if (!(gamma > 0.0)) return 1.0;
  if (inputs == LT_IN_GAUSSIAN) return erfc(gamma / sqrt(2.0));
  if (gamma >= 1.0) return 0.0;
  /* t = w*.x has density proportional to (1 - t^2)^((d-1)/2) on [-1, 1];
   * with t = sin(theta) the weight becomes cos(theta)^d. */
  const double half_pi = 1.5707963267948966;
  const size_t n = 200000;
  double all = cos_pow_integral(d, 0.0, half_pi, n);
  double tail = cos_pow_integral(d, asin(gamma), half_pi, n);
  if (!(all > 0.0)) return 0.0;
  double p = tail / all;
  return p > 1.0 ? 1.0 : p;
}

uint32_t lt_auto_attempts(double p) {
  if (p >= 1.0) return 1;
  if (!(p > 0.0)) return 0;
  double t = ceil(log(LT_CAP_TARGET) / log1p(-p));
  if (!(t <= (double)LT_MAX_ATTEMPTS_LIMIT)) return 0;
  return t < 1.0 ? 1u : (uint32_t)t;
}
