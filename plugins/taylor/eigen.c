/* taylor plugin: symmetric eigen-decomposition in double on the host, for
 * the whitening matrix Sigma^{-1/2} (D x D, D up to a few thousand).
 * Householder tridiagonalisation then implicit QL (EISPACK tred2/tql2, as in
 * the public-domain JAMA). The matrix is addressed column-major, V(r, c) =
 * a[c*n + r], so every inner loop runs over contiguous memory; since the
 * input is symmetric its layout does not matter, and on return eigenvector i
 * is the contiguous run a[i*n .. i*n + n). */
#include "taylor.h"

#include <math.h>
#include <stdlib.h>

#define V(r, c) a[(size_t)(c)*n + (size_t)(r)]

/* Reduce to tridiagonal form: d the diagonal, e the subdiagonal (e[0] = 0),
 * V the accumulated orthogonal transformation. */
static void tred2(double *a, double *d, double *e, long n) {
  for (long j = 0; j < n; j++) d[j] = V(n - 1, j);
  for (long i = n - 1; i > 0; i--) {
    double scale = 0.0, h = 0.0;
    for (long k = 0; k < i; k++) scale += fabs(d[k]);
    if (scale == 0.0) {
      e[i] = d[i - 1];
      for (long j = 0; j < i; j++) {
        d[j] = V(i - 1, j);
        V(i, j) = 0.0;
        V(j, i) = 0.0;
      }
    } else {
      for (long k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1], g = sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (long j = 0; j < i; j++) e[j] = 0.0;
      for (long j = 0; j < i; j++) {
        f = d[j];
        V(j, i) = f;
        g = e[j] + V(j, j) * f;
        for (long k = j + 1; k <= i - 1; k++) {
          g += V(k, j) * d[k];
          e[k] += V(k, j) * f;
        }
        e[j] = g;
      }
      f = 0.0;
      for (long j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      double hh = f / (h + h);
      for (long j = 0; j < i; j++) e[j] -= hh * d[j];
      for (long j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (long k = j; k <= i - 1; k++) V(k, j) -= (f * e[k] + g * d[k]);
        d[j] = V(i - 1, j);
        V(i, j) = 0.0;
      }
    }
    d[i] = h;
  }
  for (long i = 0; i < n - 1; i++) {
    V(n - 1, i) = V(i, i);
    V(i, i) = 1.0;
    double h = d[i + 1];
    if (h != 0.0) {
      for (long k = 0; k <= i; k++) d[k] = V(k, i + 1) / h;
      for (long j = 0; j <= i; j++) {
        double g = 0.0;
        for (long k = 0; k <= i; k++) g += V(k, i + 1) * V(k, j);
        for (long k = 0; k <= i; k++) V(k, j) -= g * d[k];
      }
    }
    for (long k = 0; k <= i; k++) V(k, i + 1) = 0.0;
  }
  for (long j = 0; j < n; j++) {
    d[j] = V(n - 1, j);
    V(n - 1, j) = 0.0;
  }
  V(n - 1, n - 1) = 1.0;
  e[0] = 0.0;
}

/* Implicit QL on the tridiagonal (d, e), rotating V; sorts ascending.
 * Returns -1 when an eigenvalue takes more than 60 iterations. */
static int tql2(double *a, double *d, double *e, long n) {
  for (long i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0.0;
  double f = 0.0, tst1 = 0.0, eps = ldexp(1.0, -52);
  for (long l = 0; l < n; l++) {
    tst1 = fmax(tst1, fabs(d[l]) + fabs(e[l]));
    long m = l;
    while (m < n && fabs(e[m]) > eps * tst1) m++;
    if (m == n) m = n - 1;
    if (m > l) {
      int iter = 0;
      do {
        if (++iter > 60) return -1;
        double g = d[l], p = (d[l + 1] - g) / (2.0 * e[l]), r = hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        double dl1 = d[l + 1], h = g - d[l];
        for (long i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1.0, c2 = c, c3 = c, el1 = e[l + 1], s = 0.0, s2 = 0.0;
        for (long i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          double *vi = &V(0, i), *vj = &V(0, i + 1);
          for (long k = 0; k < n; k++) {
            h = vj[k];
            vj[k] = s * vi[k] + c * h;
            vi[k] = c * vi[k] - s * h;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (fabs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0.0;
  }
  for (long i = 0; i < n - 1; i++) {
    long k = i;
    double p = d[i];
    for (long j = i + 1; j < n; j++)
      if (d[j] < p) k = j, p = d[j];
    if (k != i) {
      d[k] = d[i];
      d[i] = p;
      double *vi = &V(0, i), *vk = &V(0, k);
      for (long j = 0; j < n; j++) {
        double t = vi[j];
        vi[j] = vk[j];
        vk[j] = t;
      }
    }
  }
  return 0;
}

int hcl_taylor_eigh(double *a, double *w, size_t n) {
  if (n == 0) return 0;
  double *e = malloc(n * sizeof *e);
  if (!e) return -1;
  tred2(a, w, e, (long)n);
  int rc = tql2(a, w, e, (long)n);
  free(e);
  return rc;
}

#undef V
