/* regular_net plugin: shared declarations of its source files (not an ABI).
 *
 * The network (SPEC 2.1), for one replica, input x in R^d:
 *   h_1 = act((x (S_1 . M_1)^T) + b_1)                       layer 1 sees the inputs
 *   h_l = act(h_{l-1} (W_l . M_l)^T + x (S_l . N_l)^T + b_l)  l = 2..L (skip if input_skip)
 *   out = [h_L] or [h_1 .. h_L]  R^T + c                      readout last | all
 * where . is the elementwise product with the fixed 0/1 connectivity masks:
 * M_l, entries Bernoulli(p1), on weights from the previous layer; N_l and the
 * first layer's, entries Bernoulli(p2), on weights from the inputs. */
#ifndef HCL_REGULAR_NET_H
#define HCL_REGULAR_NET_H

#include "hiercl/plugin.h"

/* Stream ids: "regnet" tag in the high bits, the kind of draw in bits 24..31
 * and the block index below, so no two draws share a Philox stream (and none
 * meets a target's data streams 0, 1, 2). */
#define HCL_RN_STREAM_TAG 0x7265676e65740000ull /* "regnet\0\0" */
enum { HCL_RN_DRAW_INIT = 0, HCL_RN_DRAW_MASK = 1, HCL_RN_DRAW_SCHEDULE = 2 };
#define HCL_RN_STREAM(kind, index)                                                                 \
  (HCL_RN_STREAM_TAG | ((uint64_t)(kind) << 24) | (uint64_t)(index))

enum { HCL_RN_READOUT_LAST = 0, HCL_RN_READOUT_ALL = 1 };
enum { HCL_RN_FIXED_NONE = 0, HCL_RN_FIXED_PM_V = 1 };
enum { HCL_RN_INIT_UNIFORM = 0, HCL_RN_INIT_NORMAL = 1, HCL_RN_INIT_ZERO = 2 };

/* What one hidden layer l (0-based here, 1-based in names) owns in a
 * replica's parameter vector; SIZE_MAX offsets mean "absent". */
typedef struct hcl_rn_layer {
  size_t in;        /* columns of `w`: d for layer 1, W above */
  size_t w_off;     /* "layer<l>.weight" [W, in] */
  size_t s_off;     /* "layer<l>.skip" [W, d] (l >= 2 and input_skip) */
  size_t b_off;     /* "layer<l>.bias" [W] (bias) */
  double fan_in;    /* connections of the full layer: in (+ d with a skip) */
  int w_from_input; /* 1 for layer 1: its weights come from the inputs (p2, lambda2) */
} hcl_rn_layer;

/* One model instance for R replicas. */
typedef struct hcl_rn {
  hcl_ctx *ctx;
  size_t R, d, W, L, D, U, y_dim, max_batch, n_params;
  hcl_act act;
  int readout, fixed, init, skip, bias, readout_bias;
  double p1, p2, init_scale;
  /* layerwise_scd settings */
  uint64_t neuron_steps, neuron_patience, neuron_check, passes;
  double lambda1, lambda2;
  uint64_t *seeds; /* [R], copied from the setup */
  /* layout */
  hcl_rn_layer *layers; /* [L] */
  size_t r_off, rb_off; /* "readout.weight" [D, U], "readout.bias" [D] (SIZE_MAX: none) */
  hcl_block *blocks;
  size_t n_blocks;
  char (*names)[40];
  /* masks: cmask [R, n_params] floats 0/1 (1 off the masked blocks) and the
   * masked parameters eff = params . cmask the graph reads; both
   * only when p1 < 1 or p2 < 1 (masked = 1). */
  int masked;
  hcl_buf cmask, eff;
  /* device program for the masking and the coordinate-descent gradient */
  cl_program prog;
  cl_kernel k_mul, k_grad;
  /* coordinate descent in progress: backward keeps only the gradient of the
   * selected neuron's incoming weights (plus the readout) and adds the l2
   * penalty; off (sel_on = 0) outside train() */
  int sel_on;
  size_t sel_w0, sel_w1, sel_s0, sel_s1, sel_b0, sel_b1, sel_ro;
  float sel_l2w, sel_l2s;
  char label[32]; /* the phase label of the layer being trained ("layer2") */
  /* during train(): a layer's skip and bias blocks saved before a neuron's
   * phase, [R, keep_stride] */
  hcl_buf keep;
  size_t keep_stride;
} hcl_rn;

/* ---- layout.c ------------------------------------------------------------ */
/* Fill layers, blocks, names, offsets and n_params from d, W, L, D, U, skip,
 * bias, readout_bias, fixed. HCL_ERR_NOMEM when out of host memory. */
hcl_status hcl_rn_layout(hcl_rn *m);
size_t hcl_rn_n_params(void *self);
size_t hcl_rn_out_dim(void *self);
const hcl_block *hcl_rn_blocks(void *self, size_t *n_blocks);

/* ---- create.c ------------------------------------------------------------ */
/* Device-free check of the parameters against the target and the run (hcl_model_vt.check). */
hcl_status hcl_rn_check(const hcl_params *p, const hcl_check_info *run,
                        const hcl_target_info *target, char *err, size_t errlen);
/* What layerwise_scd needs of the model's shape (train and check). */
hcl_status hcl_rn_scd_check(const hcl_report *r, const hcl_rn *m);
hcl_status hcl_rn_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                         void **self);
void hcl_rn_destroy(void *self);

/* ---- device.c ------------------------------------------------------------ */
/* Build the plugin's program and kernels once per model. */
hcl_status hcl_rn_kernels(hcl_rn *m);
/* out = params . cmask over [R, n_params] (out may be params). */
hcl_status hcl_rn_apply_mask(hcl_rn *m, hcl_buf params, hcl_buf out);
/* grad = (grad + l2 p on the selected rows) . selection . cmask, the final
 * step of backward (params: the values the penalty applies to). */
hcl_status hcl_rn_grad_post(hcl_rn *m, hcl_buf params, hcl_buf grad);

/* ---- init.c -------------------------------------------------------------- */
/* Draw the connectivity masks of every replica into cmask (create). */
hcl_status hcl_rn_draw_masks(hcl_rn *m);
hcl_status hcl_rn_init(void *self, hcl_buf params);

/* ---- graph.c --------------------------------------------------------------- */
/* The forward pass as a graph (hcl_model_vt.graph); layer l is feature l. */
hcl_status hcl_rn_graph(void *self, hcl_graph *g);
/* The parameters the graph reads: params, or params . masks in eff. */
hcl_status hcl_rn_graph_params(void *self, hcl_buf params, hcl_buf *use);
/* After backward: masks, and the coordinate-descent selection (sel_on). */
hcl_status hcl_rn_graph_grad(void *self, hcl_buf params, hcl_buf grad);
/* Nonzero when neither hook above changes anything (no masks, no selection). */
int hcl_rn_graph_plain(void *self);

/* ---- scd.c --------------------------------------------------------------- */
/* The layerwise stochastic coordinate descent (SPEC 2.1). */
hcl_status hcl_rn_train(void *self, const char *algorithm, hcl_trainer *t);

#endif
