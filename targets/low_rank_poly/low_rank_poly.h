/* Internal interface of the low_rank_poly target (SPEC 1.5, a reading). */
#ifndef HCL_LOW_RANK_POLY_H
#define HCL_LOW_RANK_POLY_H

#include "../lib/gauss_target.h"

#define LRP_TAG (0x4c5250ULL << 40) /* "LRP" */
#define LRP_MAX_P 16                /* largest power p_j */

/* The directions B [r, d] (row-major, double) of a replica seed: row j =
 * elements j*d .. j*d+d-1 of stream (seed, LRP | 2<<32 | 0); orthogonal:
 * the rows orthonormalised by Gram-Schmidt (r <= d), else each row
 * normalised on its own (independent uniform directions). 0, or -1 when the
 * draw is degenerate (probability 0). */
int lrp_directions(uint64_t seed, size_t d, size_t r, int orthogonal, double *B);

/* E[u^p v^q] for (u, v) = (b1 . x, b2 . x) whose Gram entries are g11 = |b1|^2,
 * g12 = b1 . b2, g22 = |b2|^2, exactly (up to double rounding): for x ~ N(0,
 * I_d) from u = s1 U, v = s2 (rho U + sqrt(1 - rho^2) W), U, W independent
 * N(0, 1); for x uniform on the sphere of radius sqrt(d) the Gaussian value
 * times prod_{i < m/2} d / (d + 2i), m = p + q (a homogeneous polynomial of
 * degree m: x = sqrt(d) g / |g| with |g| independent of g / |g|). */
double lrp_pair_moment(double g11, double g12, double g22, unsigned p, unsigned q, size_t d,
                       int inputs);

/* Mean and variance of sum_j alpha_j (B_j . x)^{p_j} over the input law. */
void lrp_moments(const double *B, size_t r, size_t d, const unsigned *p, const double *alpha,
                 int inputs, double *mean, double *var);

#endif
