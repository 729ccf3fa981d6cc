/* three_layer plugin: shared declarations of its source files (not an ABI).
 *
 * f(x) = (1/m2) sum_j a_j sigma2(w_j . phi(x) + b_j), phi(x) = sigma1(V x)/sqrt(m1)
 * (SPEC 2.4; Nichani, Damian, Lee, NeurIPS 2023, arXiv:2305.06986, our reading).
 * Per replica the flat parameters are, in order:
 *   V [m1, d]  rows uniform on the unit sphere, fixed    (group 0, trainable 0)
 *   W [m2, m1] trainable (unless freeze_w)               (group 1)
 *   b [m2]     random, fixed (unless train_b)            (group 1)
 *   a [m2, D]  the readout (D = 1 but for multi-output)  (group 2)
 * two_layer = true drops V: phi(x) = x / sqrt(d) (the same net with sigma1 =
 * identity and V = I), W [m2, d].
 * The forward pass is a model graph (graph.c): the runtime runs forward,
 * backward and features; train.c (algorithm1, ridge) and probe.c reach them
 * through the trainer and probe services. */
#ifndef HCL_THREE_LAYER_H
#define HCL_THREE_LAYER_H

#include "hiercl/plugin.h"

/* Stream ids of the model's draws: "thly" in the high bits, one per quantity. */
#define TL_STREAM_TAG 0x74686c7900000000ull
enum { TL_STREAM_V = 0, TL_STREAM_W = 1, TL_STREAM_B = 2, TL_STREAM_A = 3, TL_STREAM_B2 = 4 };

enum { TL_B_NORMAL = 0, TL_B_UNIFORM = 1 };
/* The declared list of b_dist, in TL_B_* order (plugin.c). */
extern const char *const tl_b_dists[];
/* The declared lists of act1 and act2 (a prefix of act1's; plugin.c). */
extern const char *const tl_act1_choices[], *const tl_act2_choices[];

typedef struct tl_model {
  hcl_ctx *ctx;
  size_t R, d, m1, m2, D, y_dim, max_batch, n_params;
  hcl_task task;
  hcl_act act1, act2;
  int two_layer, freeze_w, train_b, redraw_b, center_y, b_dist;
  double w_scale, b_scale, eta1, eta1_scale, lambda, m1_per_d2;
  uint64_t probe_samples;
  uint64_t *seeds; /* [R], copied from the setup */
  /* layout: offsets in floats from a replica's start (v_off unused when two_layer) */
  size_t v_off, w_off, b_off, a_off;
  hcl_block blocks[4];
  size_t n_blocks;
  hcl_graph_custom readout; /* out = h a / m2 (graph.c) */
  /* scratch of the algorithms and the probe, [R, scratch_rows, width]:
   * phi (max(k, m2): phi, then u^2 once u is made), u (m2: u = phi G^T, or
   * the hidden features of the ridge stage) */
  hcl_buf phi, u;
  size_t scratch_rows;
  /* probe scratch, made on the first probe */
  hcl_buf p_x, p_y, p_hs, p_sz, p_szz, p_szh;
  size_t p_chunk;
} tl_model;

/* Width of phi: m1, or d for two_layer. */
size_t tl_phi_dim(const tl_model *m);

/* Device-free check of the parameters against the target and the run (hcl_model_vt.check). */
hcl_status tl_check(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                    char *err, size_t errlen);
/* What train(algorithm) needs of the model and the training-set size P. */
hcl_status tl_train_check(const hcl_report *r, const tl_model *m, const char *algorithm,
                          uint64_t P);
hcl_status tl_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                     void **self);
void tl_destroy(void *self);
size_t tl_n_params(void *self);
size_t tl_out_dim(void *self);
const hcl_block *tl_blocks(void *self, size_t *n_blocks);
hcl_status tl_init(void *self, hcl_buf params);
/* m->phi and u for chunks of up to `rows` samples (made, or grown, on
 * demand: train() and the probe only; an sgd run's forward and backward are
 * the graph's). */
hcl_status tl_scratch(tl_model *m, size_t rows);
/* Draw b of every replica from `stream` (TL_STREAM_B at init, TL_STREAM_B2 for
 * algorithm1's stage 2). */
hcl_status tl_draw_b(tl_model *m, hcl_buf params, uint64_t stream);

/* The forward pass as a model graph: phi, the hidden layer and the readout
 * (graph.c); the runtime derives backward and features from it. */
hcl_status tl_graph(void *self, hcl_graph *g);
/* phi(x) of n samples into m->phi: the graph's layer 1 through `t` (inside
 * train()) or `p` (inside a probe), or x / sqrt(d) for two_layer. */
hcl_status tl_phi(tl_model *m, hcl_trainer *t, hcl_probe *p, hcl_buf x, size_t n);
hcl_status tl_train(void *self, const char *algorithm, hcl_trainer *t);
/* A device buffer of n floats in m's context. */
hcl_status tl_alloc_f(tl_model *m, hcl_buf *b, size_t n);

/* What an algorithm's stages share: the model, the trainer, its parameters
 * and the batch buffers of chunks of up to `chunk` samples: x [R, chunk, d],
 * y [R, chunk, y_dim], out and dout [R, chunk, D]. */
typedef struct tl_io {
  tl_model *m;
  hcl_trainer *t;
  hcl_buf params;
  size_t chunk;
  hcl_buf x, y, out, dout;
} tl_io;
/* Training samples first .. first+n-1 into io->x and io->y (train.c). */
hcl_status tl_load(const tl_io *io, uint64_t first, size_t n);
/* The factors of W after Algorithm 1's stage 1: W = cw v^T per replica,
 * cw [R, m2, D] and v [R, k, D] (rank D). The caller frees them. */
typedef struct tl_step {
  hcl_buf cw, v;
} tl_step;
/* Algorithm 1's stage 1 on samples 0 .. n1-1 (stage1.c): W = -eta grad_W L
 * at W = 0, in closed form; loss0 [R] gets the mean loss there, eta [R] the
 * step (eta1, or the automatic one), step W's factors. Uses m->phi
 * (tl_scratch of chunk rows). */
hcl_status tl_stage1(const tl_io *io, size_t n1, double *loss0, double *eta, tl_step *step);
hcl_status tl_probe(void *self, hcl_probe *p);

#endif
