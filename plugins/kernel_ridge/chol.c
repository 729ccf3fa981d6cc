/* A float64 Cholesky solve for the exact fit: the project's dependencies
 * stop at OpenCL, CLBlast and iniparser, so no LAPACK. Row-major, lower
 * factor; every inner loop runs along a row (contiguous), with four partial
 * sums so the compiler can keep several FMAs in flight. */
#include "kernel_ridge.h"

#include <math.h>

/* a[0..n) . b[0..n) in float64, four partial sums. */
static double dot(const double *a, const double *b, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; k++) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

/* Rows are factored in blocks of KR_ROWS: each earlier row j is read once
 * per block, while the block's own rows stay in cache (a row at a time
 * would stream all earlier rows again for every row: memory-bound). */
enum { KR_ROWS = 32 };

size_t kr_cholesky(double *A, size_t n) {
  for (size_t I = 0; I < n; I += KR_ROWS) {
    size_t end = I + KR_ROWS < n ? I + KR_ROWS : n;
    for (size_t j = 0; j < end; j++) {
      const double *Lj = A + j * n;
      for (size_t i = j > I ? j : I; i < end; i++) {
        double *Li = A + i * n;
        double s = Li[j] - dot(Li, Lj, j);
        if (i > j) {
          Li[j] = s / Lj[j];
        } else {
          if (!(s > 0)) return i + 1;
          Li[i] = sqrt(s);
        }
      }
    }
  }
  return 0;
}

void kr_cholesky_solve(const double *L, size_t n, double *b) {
  for (size_t i = 0; i < n; i++) /* L z = b */
    b[i] = (b[i] - dot(L + i * n, b, i)) / L[i * n + i];
  for (size_t i = n; i-- > 0;) { /* L^T x = z, one row of L (a column of L^T) at a time */
    b[i] /= L[i * n + i];
    const double *Li = L + i * n;
    for (size_t k = 0; k < i; k++) b[k] -= Li[k] * b[i];
  }
}
