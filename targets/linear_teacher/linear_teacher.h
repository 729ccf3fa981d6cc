/* Internal interfaces of the linear_teacher target plugin (SPEC 1.6;
 * Sarussi, Brutzkus, Globerson, ICML 2021, arXiv:2101.02533).
 *
 * Stream layout (kernels/common.cl streams; tag "LTC" in the top 24 bits,
 * a purpose byte in bits 32..39):
 *   teacher w*      : (seed, LT_STREAM_TEACHER), element j = g_j ~ N(0, 1),
 *                     w* = g / |g| in double, rounded to float;
 *   inputs, attempt t of the rejection loop, stream s (0 train, 1 test,
 *   2 probe): (seed, LT_STREAM_X | t << 8 | s), element i*w + j = g_j ~
 *                     N(0, 1), w = 4*ceil(m/4), m = d (gaussian) or d + 2 (ball);
 *   label flips     : (seed, LT_STREAM_FLIP | s), element i, u01 < noise flips.
 * i is the sample index (train: taken modulo train_size). See
 * linear_teacher.cl for the arithmetic. */
#ifndef HCL_LINEAR_TEACHER_H
#define HCL_LINEAR_TEACHER_H

#include "hiercl/plugin.h"

#include <stddef.h>
#include <stdint.h>

#define LT_STREAM_X 0x4C54430000000000ULL       /* "LTC", purpose 0: inputs */
#define LT_STREAM_FLIP 0x4C54430100000000ULL    /* "LTC", purpose 1: label flips */
#define LT_STREAM_TEACHER 0x4C54430200000000ULL /* "LTC", purpose 2: w* */
#define LT_MAX_ATTEMPTS_LIMIT 16777216u         /* attempt index lives in 24 bits */
/* Normal draws of one sample() launch, at most, before the rejection loop is
 * split into rounds of attempts (a stop request is checked between rounds;
 * about a second of a 2-core CPU) */
#define LT_ROUND_DRAWS 3e7
#define LT_CAP_TARGET 1e-30 /* automatic cap: P(one sample hits it) below this */

enum { LT_IN_GAUSSIAN = 0, LT_IN_BALL };

/* ---- acceptance probability and cap (cap.c) ----------------------------- */
/* P(|w*.x| >= gamma) for one draw: gaussian erfc(gamma/sqrt 2); ball
 * (x uniform in the unit ball of R^d) the integral of cos^d over
 * [asin gamma, pi/2] relative to [0, pi/2] (Simpson, double). */
double lt_accept_prob(int inputs, size_t d, double gamma);
/* Smallest T with (1 - p)^T <= LT_CAP_TARGET (1 when p >= 1); 0 when p is
 * so small that T would exceed LT_MAX_ATTEMPTS_LIMIT (or p <= 0). */
uint32_t lt_auto_attempts(double p);

/* ---- probe math, pure C without the host table (probe_math.c) ----------- */
/* Where the two-layer net lives in the model's blocks (indices; -1 = none). */
typedef struct lt_layout {
  long w1;      /* first layer [h, d]: the first block with cols == d */
  long bias;    /* optional first-layer bias [h, 1]: same group, "bias" in its name */
  long readout; /* [1, h] (any block of h floats; "readout" in the name first) */
  size_t h;     /* hidden units */
} lt_layout;
/* 0 and the layout when blocks form a two-layer net on d inputs; -1 when
 * not (no [h, d] block, no readout of h floats, or a deeper net: some other
 * block with h columns and more than one row). */
int lt_find_layout(const hcl_block *blocks, size_t n_blocks, size_t d, lt_layout *out);

typedef struct lt_cluster_stats {
  double cluster_cos;   /* mean over units with v_i != 0 of cos(w_i, mean of its sign group) */
  double clusters;      /* greedy clusters (see lt_cluster) */
  double direction_cos; /* cos(w+ - w-, w*) (0 when either is 0 or wstar NULL) */
  size_t n_pos, n_neg;  /* units with v > 0, v < 0 */
} lt_cluster_stats;
/* Weight clustering of a two-layer net f(x) = sum_i v_i act(w_i.x + b_i):
 * W [h, d] row-major, b [h] or NULL, v [h], wstar [d] or NULL. Sign groups:
 * v_i > 0 and v_i < 0 (v_i == 0: in no group). Group means w+ and w- (0 for
 * an empty group). clusters: inside each sign group, units in index order
 * join the first cluster of that group whose leader (its first unit) has
 * cos >= thr with them, or start a new one; the total over both groups (2
 * for a perfectly clustered net with both signs present). dir [d] gets
 * w+ - w-, *offset gets mean(b over +) - mean(b over -) (0 without b):
 * the hyperplane dir.x + offset = 0 of the two cluster means. 0, or -1
 * when out of host memory. */
int lt_cluster(const float *W, const float *b, const float *v, size_t h, size_t d, double thr,
               const float *wstar, lt_cluster_stats *st, double *dir, double *offset);
/* cos(a, b) in double; 0 when either is the zero vector. */
double lt_cos(const double *a, const double *b, size_t d);

/* ---- the target (plugin.c, sample.c, probe.c) --------------------------- */
typedef struct lt_target {
  hcl_ctx *ctx;
  size_t R;
  uint64_t *seeds;
  uint64_t train_size;
  size_t max_batch;
  size_t d;
  int inputs;
  double margin, noise, threshold;
  double p_accept;
  uint32_t attempts; /* T_max */
  uint64_t probe_samples;
  float *wstar; /* host copy [R, d] */
  /* device */
  cl_program prog;
  cl_kernel k_sample, k_margin, k_agree;
  hcl_buf d_seeds;      /* uint [R, 2]: key words of each replica */
  hcl_buf d_wstar;      /* float [R, d] */
  hcl_buf d_capped;     /* uint [R]: draws that hit the attempt cap (wraps at 2^32) */
  hcl_buf d_pending;    /* uint: samples still drawing after a round of attempts */
  uint64_t capped_seen; /* total last reported */
  /* probe scratch, allocated on the first probe */
  size_t probe_chunk;
  hcl_buf p_x, p_y, p_f, p_dir, p_off, p_counts;
} lt_target;

/* w* [R, d] for the seeds: g from (seed, LT_STREAM_TEACHER) drawn by
 * host->rng (same bits as the device), normalised in double, rounded
 * (sample.c). */
hcl_status lt_teacher_make(hcl_ctx *ctx, const uint64_t *seeds, size_t R, size_t d, float *out);
/* Upload the seeds and w*, compile the kernels (sample.c). */
hcl_status lt_device_init(lt_target *t);
void lt_device_release(lt_target *t);
hcl_status lt_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x, hcl_buf y);
/* Attempts of the rejection loop per launch for n samples: t->attempts (one
 * launch) unless the expected draws exceed LT_ROUND_DRAWS. */
size_t lt_round_attempts(const lt_target *t, size_t n);
/* Nonzero once the run was asked to stop (host->should_stop, when the
 * runtime's table has it). */
int lt_stop_requested(hcl_ctx *ctx);
/* eval "margin": out [R, n] = w*.x, the same float sum as the rejection test. */
hcl_status lt_eval(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out);
/* Draws that hit the cap so far, per replica (reads the device counter);
 * logs a warning and a manifest note when the total grew. */
hcl_status lt_check_capped(lt_target *t, uint32_t *per_replica);
/* Weight clustering and linearity probe (probe.c). */
hcl_status lt_probe(void *self, hcl_probe *p);

#endif
