/* The random matrix A of the quadratic_features target and the variance of
 * h*(x) = x^T A x (host, double; see quadratic_features.h). */
#include "quadratic_features.h"

#include <math.h>
#include <stdlib.h>

static int full_rank(uint64_t seed, size_t d, double *A) {
  uint64_t sid = gt_stream_id(QUF_TAG, GT_PURPOSE_PARAM, 0);
  for (size_t a = 0; a < d; a++)
    for (size_t b = 0; b < d; b++) A[a * d + b] = (double)gt_normal_host(seed, sid, a * d + b);
  for (size_t a = 0; a < d; a++) /* S = G + G^T, in place */
    for (size_t b = a; b < d; b++) {
      double s = A[a * d + b] + A[b * d + a];
      A[a * d + b] = A[b * d + a] = s;
    }
  double tr = 0.0;
  for (size_t a = 0; a < d; a++) tr += A[a * d + a];
  for (size_t a = 0; a < d; a++) A[a * d + a] -= tr / (double)d;
  double fro = 0.0;
  for (size_t e = 0; e < d * d; e++) fro += A[e] * A[e];
  if (!(fro > 0.0)) return -1;
  double inv = 1.0 / sqrt(fro);
  for (size_t e = 0; e < d * d; e++) A[e] *= inv;
  return 0;
}

static int low_rank(uint64_t seed, size_t d, size_t k, double *A) {
  double *V = malloc(k * d * sizeof *V), *lam = malloc(k * sizeof *lam);
  int rc = (V && lam) ? 0 : -1;
  uint64_t sv = gt_stream_id(QUF_TAG, GT_PURPOSE_PARAM, 1);
  uint64_t sl = gt_stream_id(QUF_TAG, GT_PURPOSE_PARAM, 2);
  for (size_t e = 0; e < k * d && !rc; e++) V[e] = (double)gt_normal_host(seed, sv, e);
  if (!rc) rc = gt_orthonormalize(V, k, d);
  if (!rc) {
    double mean = 0.0, nrm = 0.0;
    for (size_t j = 0; j < k; j++) mean += (lam[j] = (double)gt_normal_host(seed, sl, j));
    mean /= (double)k;
    for (size_t j = 0; j < k; j++) {
      lam[j] -= mean;
      nrm += lam[j] * lam[j];
    }
    if (!(nrm > 0.0)) rc = -1;
    for (size_t j = 0; j < k && !rc; j++) lam[j] /= sqrt(nrm);
  }
  for (size_t a = 0; a < d && !rc; a++)
    for (size_t b = 0; b < d; b++) {
      double s = 0.0;
      for (size_t j = 0; j < k; j++) s += lam[j] * V[j * d + a] * V[j * d + b];
      A[a * d + b] = s;
    }
  for (size_t a = 0; a < d && !rc; a++) /* exact symmetry: the same sum both ways */
    for (size_t b = a + 1; b < d; b++) A[b * d + a] = A[a * d + b];
  free(V);
  free(lam);
  return rc;
}

int quf_matrix(uint64_t seed, size_t d, size_t rank, double *A) {
  if (d < 2 || rank == 1 || rank > d) return -1;
  return rank ? low_rank(seed, d, rank, A) : full_rank(seed, d, A);
}

double quf_hstar_var(size_t d, int inputs) {
  return inputs == GT_IN_SPHERE ? 2.0 * (double)d / ((double)d + 2.0) : 2.0;
}
