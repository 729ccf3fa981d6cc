/* deep_cnn plugin: shared declarations of its source files (not an ABI).
 *
 * The hierarchical CNN of the Random Hierarchy Model papers (SPEC 2.3):
 * L convolutions with filter size = stride = s over an input [v, d], d = s^L,
 * width H, ReLU; mean over the remaining positions; linear readout.
 *
 * The network is a model graph (graph.c): per replica and sample, the
 * target's x [v, d] (channels first) is transposed to [d, v]; layer k takes
 * patches [P_k, c_{k-1}*s] (column c*s + j as in PyTorch's Conv1d weight
 * [H, c_in, s]), Z_k = alpha_k U_k W_k^T (+ bias), A_k = ReLU(Z_k) [P_k, H]
 * channels last; the readout reads the mean of A_stage over its positions.
 * P_k = d / s^k positions after layer k (P_L = 1), c_0 = v, c_k = H.
 */
#ifndef HCL_DEEP_CNN_H
#define HCL_DEEP_CNN_H

#include "hiercl/plugin.h"

/* Stream ids: a tag ("dcnn" in the high 32 bits) and a purpose, so that no
 * two random quantities share counters (targets use small ids and their own
 * tags). */
#define DCNN_STREAM_INIT 0x64636e6e00000000ull  /* + block index: init() */
#define DCNN_STREAM_STAGE 0x64636e6e00010000ull /* + stage k: layerwise readout redraw */
#define DCNN_STREAM_OMEGA 0x64636e6e00020000ull /* + level: ridge_chain frequencies */
#define DCNN_STREAM_PHASE 0x64636e6e00030000ull /* + level: ridge_chain phases */

enum { DCNN_BIAS_NONE = 0, DCNN_BIAS_SHARED, DCNN_BIAS_POSITION };

/* The declared lists of the ENUM keys param, bias (in DCNN_BIAS_* order) and
 * lr_factor (plugin.c). */
extern const char *const dcnn_param_choices[], *const dcnn_bias_choices[], *const dcnn_lr_choices[];

/* One convolution layer k (1-based in names, 0-based in arrays). */
typedef struct dcnn_layer {
  size_t c_in;    /* input channels: v for layer 1, H above */
  size_t P;       /* output positions d / s^k */
  size_t w_off;   /* weight [H, c_in * s] in a replica's parameters */
  size_t b_off;   /* bias, when the model has biases */
  size_t b_count; /* H (shared) or P * H (per position, channels last) */
  float alpha;    /* pre-activation scale: 1/sqrt(c_in * s) (mf) or 1 */
} dcnn_layer;

/* State of the ridge_chain algorithm (SPEC 2.3, rhm-layerwise, reading). */
typedef struct dcnn_ridge {
  size_t D; /* random Fourier features per level */
  double
      sigma[64]; /* RBF bandwidth of each level, the last value repeating; 0 = median heuristic */
  size_t n_sigma;
  double lambda;    /* ridge */
  uint64_t samples; /* fit samples (0: the training set) */
  int fitted;       /* forward evaluates the chain once every level is fitted */
  hcl_buf *omega;   /* per level: [R, D, c_in * s], N(0, 1/sigma^2), drawn at its fit */
  hcl_buf *phase;   /* per level: [R, D], U[0, 2 pi) */
  hcl_buf *w;       /* per level: [R, D, n_c], W^T of the ridge solution */
  hcl_buf *q;       /* per level: [R, max_batch, P_l, n_c] outputs (channels last) */
  hcl_buf u, f;     /* patches and features of one chunk */
  size_t rows_cap;  /* rows of u and f per replica */
} dcnn_ridge;

struct dcnn;
/* A custom graph op of the fitted ridge chain: level l's outputs, or (level
 * 0) the model output. */
typedef struct dcnn_rop {
  hcl_graph_custom op;
  struct dcnn *m;
  size_t level;
} dcnn_rop;

typedef struct dcnn {
  hcl_ctx *ctx;
  size_t R, max_batch;
  size_t v, d, s, L, H; /* input channels and length, patch, depth, width */
  size_t n_out;         /* n_classes; 1 (y_dim for multi-output regression) */
  size_t y_dim;         /* floats of one label */
  hcl_task task;
  int mf;                /* param = mf (else standard) */
  int bias;              /* DCNN_BIAS_* */
  float out_scale;       /* readout scale: 1/H (mf) or 1 */
  float bias_scale;      /* conv bias factor: 0.1 (mf, as the reference) or 1 */
  double lr_scale;       /* lr_factor: H or 1, applied by the runtime's SGD */
  uint64_t layer_steps;  /* layerwise: steps per layer (0: [train] steps / L) */
  uint64_t *seeds;       /* [R] */
  dcnn_layer *layer;     /* [L] */
  size_t ro_off, rb_off; /* readout weight [n_out, H], bias [n_out] (has_rb) */
  int has_rb;
  size_t n_params, n_blocks;
  hcl_block *blocks;
  char (*names)[32];
  cl_program prog;
  cl_kernel k_im2col, k_rff, k_normalise, k_onehot;
  size_t stage;         /* the graph: layers 1..stage then the readout (L but in layerwise) */
  size_t train_from;    /* the graph: gradients of layers >= train_from only (1 but in layerwise) */
  char stage_label[32]; /* the phase label of a layerwise stage (outlives the phase) */
  dcnn_ridge rc;
  dcnn_rop *rops; /* [L + 1], the ridge chain's graph ops */
} dcnn;

/* ---- layout.c ------------------------------------------------------------ */
/* Fill offsets, blocks and n_params from v, d, s, L, H, n_out, bias. */
hcl_status dcnn_layout(dcnn *m);
size_t dcnn_n_params(void *self);
size_t dcnn_out_dim(void *self);
const hcl_block *dcnn_blocks(void *self, size_t *n_blocks);
/* The factor lr_factor puts on the SGD learning rate: H or 1 (hcl_model_vt.lr_scale). */
double dcnn_lr_scale(void *self);

/* ---- kernels.c: the plugin's own kernels -------------------------------- */
hcl_status dcnn_kernels_build(dcnn *m);
void dcnn_kernels_release(dcnn *m);
/* Patches of `count` samples of every replica: dst [R, count, P, C*s] from
 * src at replica stride rs, sample stride sb, channel stride sc and position
 * stride sp (floats). */
hcl_status dcnn_im2col(dcnn *m, hcl_buf src, size_t rs, size_t sb, size_t sc, size_t sp,
                       hcl_buf dst, size_t count, size_t P, size_t C, size_t s);
/* Copy the channels-last [R, n, P, C] a into out [R, n, C * P] in
 * channels-first order (PyTorch's flatten of [C, P]). */
hcl_status dcnn_flatten_cf(dcnn *m, hcl_buf a, hcl_buf out, size_t n, size_t P, size_t C);
/* f [R, rows, D] <- amp * cos(f + phase[r]). */
hcl_status dcnn_rff(dcnn *m, hcl_buf f, hcl_buf phase, size_t rows, size_t D, float amp);
/* Rows of q [rows, C] normalised to sum 1. */
hcl_status dcnn_normalise(dcnn *m, hcl_buf q, size_t rows, size_t C);
/* e [B, C] one-hot of the class indices y [B]. */
hcl_status dcnn_onehot(dcnn *m, hcl_buf y, hcl_buf e, size_t B, size_t C);

/* ---- the model vtable ---------------------------------------------------- */
/* Device-free check of the parameters against the target and the run (hcl_model_vt.check). */
hcl_status dcnn_check(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                      char *err, size_t errlen);
hcl_status dcnn_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                       void **self);
void dcnn_destroy(void *self);
hcl_status dcnn_init(void *self, hcl_buf params);
/* Draw the readout weight (and bias) of every replica from streams
 * stream_w (stream_b). */
hcl_status dcnn_init_readout(dcnn *m, hcl_buf params, uint64_t stream_w, uint64_t stream_b);
hcl_status dcnn_train(void *self, const char *algorithm, hcl_trainer *t);
/* graph.c: the model graph of the current variant (hcl_model_vt.graph). */
hcl_status dcnn_graph(void *self, struct hcl_graph *g);
/* The variant: 0 the network, 1 the fitted ridge chain, 1 + k layerwise stage k. */
int dcnn_graph_variant(void *self);

/* ---- layerwise.c, ridge.c ------------------------------------------------ */
hcl_status dcnn_layerwise(dcnn *m, hcl_trainer *t);
hcl_status dcnn_ridge_chain(dcnn *m, hcl_trainer *t);
/* The fitted chain on x (n samples): levels 1..upto into rc.q[]. */
hcl_status dcnn_ridge_levels(dcnn *m, hcl_buf x, size_t n, size_t upto);
hcl_status dcnn_ridge_forward(dcnn *m, hcl_buf x, size_t n, hcl_buf out);
hcl_status dcnn_ridge_features(dcnn *m, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                               size_t *dim);
void dcnn_ridge_release(dcnn *m);

#endif
