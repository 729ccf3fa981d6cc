/* taylor plugin: shared declarations of its source files (not an ABI).
 *
 * SPEC 2.5 (neural-rep, our reading): Taylor models of a wide two-layer net
 * g(w; z) = (1/sqrt m) sum_r a_r sigma(w_r . u) around a random point w0,
 * u = z/sqrt(dz) (of unit norm on either representation: the paper's inputs
 * on the unit sphere, so one lr and init mean the same on both):
 *   order 1 (NTK):     f(z) = (1/sqrt m)     sum_r a_r sigma'(w0_r . u) (w_r . u)
 *   order 2 (QuadNTK): f(z) = (1/(2 sqrt m)) sum_r a_r sigma''(w0_r . u) (w_r . u)^2
 * on z = x (raw) or z = whitened relu(V x + b) (neural), the latter scaled
 * to the raw input's mean square per coordinate (whiten.c). */
#ifndef HCL_TAYLOR_H
#define HCL_TAYLOR_H

#include "hiercl/plugin.h"

/* Stream ids of the init draws: tag "taylor" in the high bits + one id per
 * random quantity, so no draw shares counters with another or with a
 * target's data streams. */
#define HCL_TAYLOR_STREAM_BASE 0x7461796c6f720000ull /* "taylor\0\0" */
enum {
  HCL_TAYLOR_STREAM_W0 = 1, /* w0 [m, dz] ~ N(0, w0_std^2) */
  HCL_TAYLOR_STREAM_A = 2,  /* a [m] ~ Unif{-1, +1} */
  HCL_TAYLOR_STREAM_W = 3,  /* w [m, dz] ~ N(0, init_std^2) */
  HCL_TAYLOR_STREAM_V = 4,  /* V [D, d] ~ N(0, 1/d) */
  HCL_TAYLOR_STREAM_B = 5   /* b [D] ~ N(0, rep_bias^2) */
};

/* Activation sigma of the underlying two-layer net; its derivatives are
 * evaluated in taylor.cl (TAY_ACT_* there, same order). */
typedef enum {
  HCL_TAYLOR_RELU = 0,      /* max(0,t): sigma' = 1{t > 0}; order 1 only */
  HCL_TAYLOR_RELU3 = 1,     /* relu(t)^3/6: sigma' = relu^2/2, sigma'' = relu */
  HCL_TAYLOR_QUADRATIC = 2, /* t^2/2: sigma' = t, sigma'' = 1 */
  HCL_TAYLOR_SOFTPLUS = 3,  /* log(1+e^t): sigma' = logistic, sigma'' = s(1-s) */
  HCL_TAYLOR_TANH = 4       /* tanh: sigma' = 1-tanh^2, sigma'' = -2 tanh (1-tanh^2) */
} hcl_taylor_act;

/* Block indices (into blocks[]); the frozen blocks follow "w" contiguously. */
enum {
  HCL_TAYLOR_B_W = 0,
  HCL_TAYLOR_B_W0,
  HCL_TAYLOR_B_A,
  HCL_TAYLOR_B_V, /* neural only from here */
  HCL_TAYLOR_B_BIAS,
  HCL_TAYLOR_B_WHITEN,
  HCL_TAYLOR_B_OFFSET,
  HCL_TAYLOR_B_FITTED,
  HCL_TAYLOR_B_COUNT
};

/* One model instance for R replicas. */
typedef struct hcl_taylor {
  hcl_ctx *ctx;
  size_t R, d, D, dz, m, max_batch, n_params, n_blocks, y_dim;
  int order, neural;
  int rep_power; /* > 0: D = d^rep_power instead of rep_width */
  hcl_taylor_act act;
  double init_std, w0_std, rep_bias, rcond;
  double penalty;       /* lambda of lambda ||W||_{2,4}^8 (penalty.c); 0 = none */
  int pen_on;           /* the penalty's gradient is added: only while train() runs */
  uint64_t whiten_size; /* N: unlabelled samples the whitening is fitted on */
  uint64_t *seeds;      /* [R], copied from the setup */
  uint64_t train_size;  /* P from the setup (for messages) */
  hcl_block blocks[HCL_TAYLOR_B_COUNT];
  size_t off[HCL_TAYLOR_B_COUNT]; /* offsets of the blocks (floats in a replica) */
  cl_program prog;
  cl_kernel k_head, k_dcoef, k_pen_rows, k_pen_apply;
  cl_kernel k_wt, k_fhead, k_fwgrad; /* CPU devices: the fused head (fused.c) */
  hcl_buf pen_n2;                    /* [R, m]: squared row norms of w (penalty > 0 only) */
  size_t wg;                         /* work-group size of k_head (a power of two; not fused) */
  int fused;                         /* CPU devices: the head fused with its products (fused.c) */
  /* the graph's custom ops (graph.c); user = this instance */
  hcl_graph_custom rep_op, head_op, fused_op;
  /* neural, each [R, max_batch, D]: relu(V x + b) (whitening and the
   * graph's rep op) and, while the whitening is fitted, z (whiten.c) */
  hcl_buf zb, hb;
  /* CPU devices (fused.c): [R][2][dz, m] w0^T and w^T, and the backward's
   * accumulators between row tiles, [R][ceil(m/16)][ceil(dz/16)][16][16] */
  hcl_buf wtb, xsb;
  /* the w whose transposes wtb holds (its buffer, offset and replicas) */
  cl_mem wt_mem;
  size_t wt_offset, wt_R;
  /* the params buffer whose "rep.fitted" block was last seen nonzero */
  cl_mem fitted_mem;
  size_t fitted_offset;
} hcl_taylor;

/* The choices of [model] activation (auto, then hcl_taylor_act's order) and
 * representation (raw, neural), read back as indices (HCL_ENUM). */
extern const char *const hcl_taylor_activations[];
extern const char *const hcl_taylor_representations[];

/* The view of block `blk` of params for ops striding n_params over replicas. */
static inline hcl_buf hcl_taylor_pview(const hcl_taylor *m, hcl_buf params, int blk) {
  const hcl_block *b = &m->blocks[blk];
  return hcl_pview(params, m->R, m->n_params, b->offset, b->rows * b->cols);
}

/* Device-free check of the parameters against the target and the run (hcl_model_vt.check). */
hcl_status hcl_taylor_check(const hcl_params *p, const hcl_check_info *run,
                            const hcl_target_info *target, char *err, size_t errlen);
hcl_status hcl_taylor_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                             void **self);
void hcl_taylor_destroy(void *self);
size_t hcl_taylor_n_params(void *self);
size_t hcl_taylor_out_dim(void *self);
const hcl_block *hcl_taylor_blocks(void *self, size_t *n_blocks);
hcl_status hcl_taylor_init(void *self, hcl_buf params);
/* z [R, n, D] of x into zb: relu(x V^T + b) whitened (neural only; zb
 * lives until hcl_taylor_whiten_done). */
hcl_status hcl_taylor_represent(hcl_taylor *m, hcl_buf params, hcl_buf x, size_t n);
/* relu(x V^T + b) [R, n, D] into hb (neural only; before whitening). */
hcl_status hcl_taylor_hidden(hcl_taylor *m, hcl_buf params, hcl_buf x, size_t n);
/* Free what only the whitening's passes use (zb). */
void hcl_taylor_whiten_done(hcl_taylor *m);
/* Fill in the custom ops' descriptors (create(), before the graph). */
void hcl_taylor_ops(hcl_taylor *m);
/* The fused head's descriptor (fused.c): out from z alone, on CPU devices. */
void hcl_taylor_fused_op(hcl_taylor *m);
/* Its kernels and scratch buffers (create(), CPU devices only). */
hcl_status hcl_taylor_fused_setup(hcl_taylor *m);
/* Bytes of the fused backward's accumulators (xsb), in double so that the
 * memory check sees a size too large for size_t. */
double hcl_taylor_fused_acc_bytes(const hcl_taylor *m);
/* The forward pass as a graph (hcl_model_vt.graph): the runtime derives
 * backward and features (layer 1: the model's input z). */
hcl_status hcl_taylor_graph(void *self, hcl_graph *g);
/* After every backward (hcl_model_vt.graph_grad): adds the penalty's
 * gradient while gd trains; refuses to train a neural representation whose
 * whitening was never fitted. */
hcl_status hcl_taylor_graph_grad(void *self, hcl_buf params, hcl_buf grad);
/* The "gd" algorithm: the runtime's loop on loss + penalty_24 ||W||_{2,4}^8
 * (the whitening was fitted by prepare()). */
hcl_status hcl_taylor_train(void *self, const char *algorithm, hcl_trainer *t);
/* Fit the neural representation's whitening (before the first evaluation). */
hcl_status hcl_taylor_prepare(void *self, hcl_trainer *t);
/* Fit mean and whitening matrix of relu(V x + b) on the first whiten_size
 * samples of the unlabelled stream (never the training set) into the blocks
 * rep.whiten / rep.offset / rep.fitted of params. */
hcl_status hcl_taylor_fit_whitening(hcl_taylor *m, hcl_trainer *t, hcl_buf params);

/* grad [R, n_params] += the gradient of penalty ||W||_{2,4}^8 =
 * penalty (sum_r |w_r|^4)^2 at params, i.e. 8 penalty S |w_r|^2 w_r on
 * every row w_r of block w, S = sum_r |w_r|^4 per replica. */
hcl_status hcl_taylor_penalty_grad(hcl_taylor *m, hcl_buf params, hcl_buf grad);

/* Eigen-decomposition of the symmetric n x n matrix a (double): on return
 * eigenvector i is a[i*n .. i*n + n) (unit norm), w[i] its eigenvalue, in
 * ascending order. Returns 0, or -1 when the QL iteration did not converge. */
int hcl_taylor_eigh(double *a, double *w, size_t n);

#endif
