/* Internal interface of the quadratic_features target (SPEC 1.4). */
#ifndef HCL_QUADRATIC_FEATURES_H
#define HCL_QUADRATIC_FEATURES_H

#include "../lib/gauss_target.h"

#define QUF_TAG (0x515546ULL << 40) /* "QUF" */

/* The matrix A [d, d] (row-major, double) of a replica seed:
 *  rank 0 (full): G [d, d] = elements a*d + b of stream (seed, QUF | 2<<32 | 0);
 *    S = G + G^T; S -= (tr S / d) I; A = S / |S|_F;
 *  rank k in 2..d: V [k, d] = elements j*d + a of stream (seed, QUF | 2<<32 | 1),
 *    rows orthonormalised (Gram-Schmidt, a uniformly random k-frame);
 *    lambda [k] = elements 0..k-1 of stream (seed, QUF | 2<<32 | 2), centred
 *    (minus their mean) and scaled to unit Euclidean norm;
 *    A = sum_j lambda_j v_j v_j^T: exactly rank k, tr A = sum lambda = 0,
 *    |A|_F = |lambda| = 1 (rank 1 is impossible with tr A = 0).
 * A is symmetric, tr A = 0, |A|_F = 1 (up to double rounding). 0, or -1 when
 * the draw is degenerate (probability 0). */
int quf_matrix(uint64_t seed, size_t d, size_t rank, double *A);

/* Var h*(x) for h* = x^T A x with tr A = 0, |A|_F = 1: 2 for x ~ N(0, I_d),
 * 2d/(d+2) for x uniform on the sphere of radius sqrt(d). */
double quf_hstar_var(size_t d, int inputs);

#endif
