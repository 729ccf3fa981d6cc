/* Internal interfaces of the staircase target plugin (SPEC 1.1).
 *
 * A function is a list of (coefficient, set) terms: f(x) = sum_t c_t chi_{S_t}(x)
 * with chi_S(x) = prod_{i in S} x_i. Sets are stored flattened (CSR): term t
 * owns idx[off[t] .. off[t+1]-1], 0-based coordinates in increasing order.
 * The same layout is uploaded to the device for sampling and probing. */
#ifndef HCL_STAIRCASE_H
#define HCL_STAIRCASE_H

#include "hiercl/plugin.h"

#include <stddef.h>
#include <stdint.h>

/* ---- terms (function.c) ------------------------------------------------- */
typedef struct stc_terms {
  size_t count;  /* number of terms (sets) */
  double *coef;  /* [count] */
  uint32_t *off; /* [count + 1] */
  uint32_t *idx; /* [off[count]], 0-based */
  size_t cap, cap_idx;
} stc_terms;

enum { STC_FN_STAIRCASE = 0, STC_FN_PARITY, STC_FN_MULTI, STC_FN_FOURIER };
enum { STC_IN_BOOLEAN = 0, STC_IN_BIASED, STC_IN_GAUSSIAN };

/* Release the arrays of t and zero it. */
void stc_terms_free(stc_terms *t);
/* Append a term (idx 0-based, any order, no repeats). 0, or -1 when out of memory. */
int stc_terms_add(stc_terms *t, double coef, const uint32_t *idx, size_t size);
/* Size of term j. */
static inline size_t stc_term_size(const stc_terms *t, size_t j) {
  return (size_t)(t->off[j + 1] - t->off[j]);
}

/* Parse "c:i j k, c:i, c:" (1-based indices in 1..n; "c:" is the constant
 * term) into out. 0, or -1 with a reason in why. */
int stc_terms_parse(const char *text, size_t n, stc_terms *out, char *why, size_t len);
/* Parse a list of sets "1, 1 2, 1 2 5" ("0" = the empty set) into out
 * (coefficients 0). 0, or -1 with a reason in why. */
int stc_sets_parse(const char *text, size_t n, stc_terms *out, char *why, size_t len);
/* The exact Fourier expansion of in: indices sorted within each set, equal
 * sets merged into the first occurrence (coefficients summed in order),
 * zero coefficients dropped. 0, or -1 when out of memory. */
int stc_terms_canonical(const stc_terms *in, stc_terms *out);
/* Exact Fourier coefficient of the set idx[0..size) (sorted) in canonical t. */
double stc_terms_coef(const stc_terms *t, const uint32_t *idx, size_t size);
/* Index of the set idx[0..size) (sorted) in t, or -1. */
long stc_terms_find(const stc_terms *t, const uint32_t *idx, size_t size);

/* The built-in functions, as terms:
 *  staircase: sum_{i=1..k} chi_{1..i}, times 1/sqrt(k) when normalize;
 *  parity: chi_{1..k};
 *  multi: sum_{i=1..k1} chi_{1..i} + sum_{i=2..k2} x_1 chi_{k1+1..k1+i-1}.
 * Sizes are checked by the caller (stc_function_build). */
int stc_fn_staircase(size_t k, int normalize, stc_terms *out);
int stc_fn_parity(size_t k, stc_terms *out);
int stc_fn_multi(size_t k1, size_t k2, stc_terms *out);
/* Build the canonical terms of a configured function, checking sizes
 * against n. 0, or -1 with the reason in why. */
int stc_function_build(int kind, size_t n, size_t k, size_t k2, int normalize,
                       const char *terms_text, stc_terms *out, char *why, size_t len);
/* The sets the probe reports by default: the chain sets {1..j}, j = 0..k for
 * staircase and parity; ∅, {1..i} and {1, k1+1..k1+i-1} for multi; ∅ and
 * every term's set for fourier. */
int stc_probe_default_sets(int kind, size_t k, size_t k2, const stc_terms *fn, stc_terms *out);

/* f(x) in double for x [n]. */
double stc_terms_eval(const stc_terms *t, const double *x);
/* 1 when every set with a nonzero coefficient is reached from the empty set
 * by adding one index at a time through sets with nonzero coefficients. */
int stc_staircase_property(const stc_terms *t);
/* Largest set size among nonzero terms (0 for a constant or zero function). */
size_t stc_degree(const stc_terms *t);
/* Metric name of set j: "fourier_0" (empty), "fourier_3to7" (a run of at
 * least three consecutive indices), "fourier_1_2_5" (otherwise); 1-based.
 * Only [a-z0-9_]: the runtime's rule for metric names. */
void stc_set_name(const stc_terms *t, size_t j, char *buf, size_t len);
/* "0.5*x1*x2 + 1*x3 - 2" (1-based); truncated with "..." to fit len. */
void stc_terms_text(const stc_terms *t, char *buf, size_t len);
/* JSON array [{"coef":c,"set":[1,2]}, ...] (1-based) into a malloc'd string. */
char *stc_terms_json(const stc_terms *t);

/* ---- the target (plugin.c, sample.c, probe.c) --------------------------- */
typedef struct stc_target {
  hcl_ctx *ctx;
  size_t R;
  uint64_t *seeds;
  uint64_t train_size;
  size_t max_batch;
  size_t n;
  int kind, inputs;
  double bias, noise;
  stc_terms fn;         /* canonical */
  stc_terms probe_sets; /* sets the probe reports */
  uint64_t probe_samples;
  /* device */
  cl_program prog;
  cl_kernel k_draw, k_sample, k_eval, k_probe_partial, k_probe_sum;
  hcl_buf d_seeds;              /* uint [R, 2]: key words of each replica */
  hcl_buf d_coef, d_off, d_idx; /* the function's terms */
  hcl_buf d_poff, d_pidx;       /* probe sets */
  /* probe scratch, allocated on the first probe */
  size_t probe_chunk;
  hcl_buf p_x, p_y, p_f, p_partial, p_acc;
} stc_target;

/* The two values of a biased coordinate, computed in double then rounded
 * (B ~ Bernoulli(p) is drawn on the device as u01(word) < (float)p). */
float stc_biased_hi(double p); /* value of x_i when B = 1: (1-p)/sqrt(p(1-p)) */
float stc_biased_lo(double p); /* value of x_i when B = 0: -p/sqrt(p(1-p)) */

/* Upload the terms and seeds and compile the kernels (sample.c). */
hcl_status stc_device_init(stc_target *t);
void stc_device_release(stc_target *t);
hcl_status stc_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x, hcl_buf y);
hcl_status stc_eval(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out);
/* The Fourier-coefficient probe (probe.c). */
hcl_status stc_probe(void *self, hcl_probe *p);

#endif
