/* hiercl plugin ABI: the only header a target or model plugin includes.
 *
 * A plugin is a shared object exporting one symbol, hcl_plugin_init, which
 * receives the runtime's function table (hcl_host_api) and returns a const
 * descriptor (hcl_plugin_desc). Plugins never link libhiercl: everything they
 * need from the runtime comes through the table.
 *
 * Compatibility rules (SQLite vfs / GStreamer plugin desc):
 *  - every struct crossing the boundary starts with a size field and only
 *    ever grows at its end; a reader touches a field only if the size covers it;
 *  - HCL_PLUGIN_ABI_VERSION changes only when an existing field changes.
 *
 * Data layout: every device tensor carries a leading replica dimension R
 * (R independent runs with their own seeds trained in one pass). A batch of
 * inputs is float [R, n, x_size], targets float [R, n, y_dim], model outputs
 * float [R, n, out_dim], model parameters one flat float [R, n_params].
 */
#ifndef HIERCL_PLUGIN_H
#define HIERCL_PLUGIN_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HCL_PLUGIN_ABI_VERSION 1u

/* ---- status codes: OpenCL error codes (negative, > -10000) pass through -- */
typedef int32_t hcl_status;
enum {
  HCL_OK = 0,
  HCL_ERR_NOMEM = -10001,       /* host or device allocation failed */
  HCL_ERR_PARAM = -10002,       /* bad parameter value or shape */
  HCL_ERR_UNSUPPORTED = -10003, /* feature not available on this device / plugin */
  HCL_ERR_ABI = -10004,         /* plugin ABI or struct size mismatch */
  HCL_ERR_IO = -10005,          /* file could not be read or written */
  HCL_ERR_BUILD = -10006,       /* OpenCL program failed to build (log attached) */
  HCL_ERR_CONFIG = -10007,      /* malformed or unknown config key */
  HCL_ERR_NODEVICE = -10008,    /* no OpenCL device, or selector matched none */
  HCL_ERR_NUMERIC = -10009,     /* NaN / Inf / ill-conditioned system */
  HCL_ERR_INTERRUPTED = -10010, /* run stopped by the user (Ctrl-C) */
  HCL_ERR_PLUGIN = -10011,      /* plugin failed (its message is in the ctx) */
  HCL_ERR_BLAS = -10012         /* CLBlast returned an error */
};

typedef struct hcl_ctx hcl_ctx;         /* runtime context: device, queue, errors */
typedef struct hcl_params hcl_params;   /* a plugin's resolved [section] */
typedef struct hcl_trainer hcl_trainer; /* handle given to model train() */
typedef struct hcl_probe hcl_probe;     /* handle given to probe() */
/* A model graph being built (see "model graphs"); a tensor is its node id. */
typedef struct hcl_graph hcl_graph;
typedef int32_t hcl_tensor;
struct hcl_graph_custom;

/* A region of a device buffer. offset and size are in bytes. */
typedef struct hcl_buf {
  cl_mem mem;
  size_t offset;
  size_t size;
} hcl_buf;

/* ---- declared parameters (VLC-style option declarations) ---------------- */
typedef enum {
  HCL_PARAM_INT = 1,
  HCL_PARAM_DOUBLE,
  HCL_PARAM_BOOL,
  HCL_PARAM_STRING,
  HCL_PARAM_ENUM, /* one of choices */
  HCL_PARAM_LIST  /* comma-separated numbers: "1, 0.5, 0.25" */
} hcl_param_type;

/* One key of a plugin's INI section. Tables end with an entry whose key is
 * NULL. Keys are lower case (iniparser lower-cases keys). lo > hi means
 * unbounded; the bounds apply to INT, DOUBLE and every LIST element. */
typedef struct hcl_param_desc {
  const char *key;
  hcl_param_type type;
  const char *def; /* default as text; NULL = the key is required */
  double lo, hi;
  const char *const *choices; /* ENUM: NULL-terminated */
  const char *help;
} hcl_param_desc;

/* ---- what a run looks like, handed to create() -------------------------- */
/* Sample streams of a target, pairwise disjoint. UNLABELLED: inputs a model
 * fits statistics on (a whitening, a normalisation) without touching the
 * labelled training set; its labels are never used. VAL: the validation set
 * ([eval] val_size), for choices that must not see the test set. */
enum {
  HCL_STREAM_TRAIN = 0,
  HCL_STREAM_TEST = 1,
  HCL_STREAM_PROBE = 2,
  HCL_STREAM_UNLABELLED = 3,
  HCL_STREAM_VAL = 4
};

typedef struct hcl_setup {
  uint32_t struct_size;
  uint32_t replicas;     /* R */
  const uint64_t *seeds; /* [R]: replica r behaves as a run with seeds[r] */
  const hcl_params *params;
  uint64_t train_size; /* P; 0 = fresh samples every step */
  uint64_t test_size;
  size_t max_batch;  /* largest n any call will pass */
  uint64_t val_size; /* samples of HCL_STREAM_VAL the run evaluates ([eval] val_size; 0 = none) */
} hcl_setup;

/* Shape of one input sample (without batch and replica). rank 1: [n];
 * rank 2: channels first [channels, length]. */
typedef struct hcl_shape {
  uint32_t rank;
  size_t dims[4];
} hcl_shape;

/* Task of a target: decides losses, error metric and output width. */
typedef enum {
  HCL_TASK_REGRESSION = 1, /* y real, y_dim values */
  HCL_TASK_BINARY = 2,     /* y in {-1, +1}, one output */
  HCL_TASK_CLASSES = 3     /* y a class index stored as float, n_classes outputs */
} hcl_task;

typedef struct hcl_target_info {
  uint32_t struct_size;
  hcl_shape x;  /* one input sample */
  size_t y_dim; /* floats of one label: 1 except multi-output regression */
  hcl_task task;
  size_t n_classes; /* HCL_TASK_CLASSES only */
} hcl_target_info;

/* What a run knows before a device opens, handed to the plugins' check().
 * Read a field only when struct_size covers it. */
typedef struct hcl_check_info {
  uint32_t struct_size;
  uint32_t replicas;       /* R */
  uint64_t train_size;     /* P; 0 = fresh samples; with train_sizes, their largest */
  uint64_t train_size_min; /* the smallest per-replica size (= train_size without train_sizes) */
  uint64_t test_size;
  uint64_t val_size;
  uint64_t batch;        /* [train] batch (full batch: the training-set size) */
  uint64_t eval_batch;   /* [eval] batch as the run will use it */
  uint64_t steps;        /* [train] steps */
  const char *algorithm; /* [train] algorithm: "sgd" or one of the model's algorithms */
  const char *loss;      /* [train] loss as configured ("auto", "mse", ...) */
} hcl_check_info;

/* A named block of a model's flat parameter vector, per replica. */
typedef struct hcl_block {
  const char *name;   /* e.g. "layer2.weight" */
  size_t offset;      /* floats from the start of one replica's parameters */
  size_t rows, cols;  /* count = rows * cols; a bias has cols = 1 */
  uint32_t group;     /* layer index: layer-wise algorithms select by group */
  uint32_t trainable; /* 0 = frozen by construction (e.g. fixed readout) */
} hcl_block;

/* ---- metrics a probe or an algorithm reports ----------------------------- */
/* values has one entry per replica. */
typedef struct hcl_metric {
  const char *name;
  const double *values;
} hcl_metric;

/* ---- one phase of gradient training, run by the runtime's loop ---------- */
/* A model's train() composes phases: layer-wise training is one phase per
 * layer with `groups` selecting it; neuron-wise coordinate descent selects
 * rows within a block via row_mask. The runtime samples batches, computes
 * loss and gradients, applies the optimizer to the selected blocks only,
 * evaluates on schedule and honours Ctrl-C. */
typedef struct hcl_phase {
  uint32_t struct_size;
  const char *label;     /* shown in metrics ("layer 2") */
  uint64_t steps;        /* optimizer steps in this phase */
  uint64_t group_mask;   /* bit g set: blocks of group g train; 0 = all */
  double lr_scale;       /* multiplies the configured lr (0 -> 1) */
  double l2;             /* extra l2 penalty on the trained blocks */
  const char *row_block; /* NULL, or a block whose rows are masked: */
  size_t row;            /* only this row of row_block trains */
  double stop_loss;      /* > 0: stop when train loss (all replicas) below */
  uint64_t patience;     /* > 0: stop when loss has not improved for this many steps */
} hcl_phase;

/* ---- the runtime's function table --------------------------------------- */
typedef struct hcl_arg { /* one kernel argument, for run_kernel */
  size_t size;
  const void *value;
} hcl_arg;
#define HCL_ARG(v) ((hcl_arg){sizeof(v), &(v)})

typedef enum { HCL_LOG_ERROR = 0, HCL_LOG_WARN, HCL_LOG_INFO, HCL_LOG_DEBUG } hcl_log_level;

/* Activations known to the fused runtime kernels. */
typedef enum {
  HCL_ACT_IDENTITY = 0,
  HCL_ACT_RELU,
  HCL_ACT_LEAKY_RELU, /* slope 0.1 */
  HCL_ACT_QUADRATIC,  /* z^2 */
  HCL_ACT_TANH
} hcl_act;

/* Random draws (Philox-4x32-10; see kernels/philox.cl for the exact maps). */
typedef enum {
  HCL_RNG_UNIFORM = 0, /* U[a, b) */
  HCL_RNG_NORMAL,      /* N(a, b^2) */
  HCL_RNG_RADEMACHER,  /* +-1 */
  HCL_RNG_BERNOULLI    /* 1 with probability a, else 0 */
} hcl_rng_dist;

typedef struct hcl_host_api {
  uint32_t abi_version;
  uint32_t struct_size;

  /* Log a line to stderr (prefixed by the runtime). */
  void (*log)(hcl_ctx *ctx, hcl_log_level level, const char *fmt, ...);
  /* Set the ctx error message and return rc, for `return host->fail(...)`. */
  hcl_status (*fail)(hcl_ctx *ctx, hcl_status rc, const char *fmt, ...);
  /* Record a key/value about this run into the manifest (JSON literal or string). */
  void (*note)(hcl_ctx *ctx, const char *key, const char *value, int is_json);

  /* Parameters of the plugin's section: validated, defaulted, typed. */
  int64_t (*param_int)(const hcl_params *p, const char *key);
  double (*param_double)(const hcl_params *p, const char *key);
  int (*param_bool)(const hcl_params *p, const char *key);
  const char *(*param_str)(const hcl_params *p, const char *key);
  /* Numbers of a LIST key into out (at most max); returns how many there are. */
  size_t (*param_list)(const hcl_params *p, const char *key, double *out, size_t max);

  /* The OpenCL objects of the run (one device, one in-order queue). */
  cl_context (*cl_context)(hcl_ctx *ctx);
  cl_device_id (*cl_device)(hcl_ctx *ctx);
  cl_command_queue (*cl_queue)(hcl_ctx *ctx);

  /* Device memory: zero-filled allocation, release, blocking transfers. */
  hcl_status (*buf_alloc)(hcl_ctx *ctx, size_t bytes, hcl_buf *out);
  void (*buf_free)(hcl_ctx *ctx, hcl_buf *buf);
  hcl_status (*buf_write)(hcl_ctx *ctx, hcl_buf dst, const void *src, size_t bytes);
  hcl_status (*buf_read)(hcl_ctx *ctx, hcl_buf src, void *dst, size_t bytes);
  hcl_status (*buf_copy)(hcl_ctx *ctx, hcl_buf dst, hcl_buf src, size_t bytes);

  /* Build an OpenCL program through the runtime's cache. The runtime
   * prepends its common library (kernels/common.cl: Philox, activations,
   * hcl_buf offsets helpers), so plugin kernels can call it. `name` labels
   * the program in logs and errors. Build failures carry the compiler log. */
  hcl_status (*program)(hcl_ctx *ctx, const char *name, const char *src, const char *options,
                        cl_program *out);
  hcl_status (*kernel)(hcl_ctx *ctx, cl_program prog, const char *name, cl_kernel *out);
  /* Set the arguments and enqueue; `label` names the kernel in profiles.
   * lws may be NULL. Never waits for the device. */
  hcl_status (*run_kernel)(hcl_ctx *ctx, cl_kernel k, cl_uint dims, const size_t *gws,
                           const size_t *lws, const char *label, size_t nargs, const hcl_arg *args);
  /* Wait for every enqueued command. */
  hcl_status (*finish)(hcl_ctx *ctx);

  /* Row-major SGEMM, C = alpha op(A) op(B) + beta C, ld* in floats, through
   * CLBlast. The batched form runs `batch` products, operand i starting
   * stride_* floats after operand i-1 (the replica dimension). */
  hcl_status (*sgemm)(hcl_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                      float alpha, hcl_buf a, size_t lda, hcl_buf b, size_t ldb, float beta,
                      hcl_buf c, size_t ldc);
  hcl_status (*sgemm_batched)(hcl_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                              float alpha, hcl_buf a, size_t lda, size_t stride_a, hcl_buf b,
                              size_t ldb, size_t stride_b, float beta, hcl_buf c, size_t ldc,
                              size_t stride_c, size_t batch);

  /* ---- fused elementwise and reduction ops on [R, rows, cols] ---------- */
  /* y = act(z + bias[r, col]) for z [R, rows, cols], bias [R, cols] (bias.mem
   * NULL: none). z keeps the pre-activation; y may alias z only for identity. */
  hcl_status (*bias_act)(hcl_ctx *ctx, hcl_act act, hcl_buf z, hcl_buf bias, size_t bias_stride,
                         hcl_buf y, size_t R, size_t rows, size_t cols);
  /* dz = dy * act'(z) (dz may alias dy). */
  hcl_status (*act_backward)(hcl_ctx *ctx, hcl_act act, hcl_buf dy, hcl_buf z, hcl_buf dz, size_t R,
                             size_t rows, size_t cols);
  /* out[r, col] = beta*out + alpha * sum_row x[r, row, col] (deterministic tree). */
  hcl_status (*col_sum)(hcl_ctx *ctx, hcl_buf x, hcl_buf out, size_t out_stride, size_t R,
                        size_t rows, size_t cols, float alpha, float beta);
  /* y = a*x + b*y over n floats. */
  hcl_status (*axpby)(hcl_ctx *ctx, float a, hcl_buf x, float b, hcl_buf y, size_t n);
  /* Fill n floats with a value. */
  hcl_status (*fill)(hcl_ctx *ctx, hcl_buf y, float value, size_t n);
  /* Draw n floats for each replica r into out[r*stride ...] from the stream
   * (seeds[r], stream_id), counters starting at `first`: the same bits on
   * every device and for any split of the range. */
  hcl_status (*rng)(hcl_ctx *ctx, hcl_rng_dist dist, float a, float b, const uint64_t *seeds,
                    size_t R, uint64_t stream_id, uint64_t first, hcl_buf out, size_t stride,
                    size_t n);
  /* Host Philox-4x32-10: out = philox(key, counter), for host-side setup. */
  void (*philox)(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

  /* ---- trainer services for model train() and probes ------------------- */
  /* Run one phase of the runtime's SGD loop; *final_loss gets the mean train
   * loss of the last step, per replica (may be NULL). */
  hcl_status (*train_phase)(hcl_trainer *t, const hcl_phase *phase, double *final_loss);
  /* Fill x [R, n, x_size], y [R, n, y_dim] with samples first..first+n-1 of
   * a stream (train indices wrap at the training-set size). */
  hcl_status (*train_batch)(hcl_trainer *t, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                            hcl_buf y);
  /* The flat parameters [R, n_params] being trained. */
  hcl_buf (*train_params)(hcl_trainer *t);
  /* Log an evaluation line now (test loss, error, probes, plus extra metrics). */
  hcl_status (*train_eval)(hcl_trainer *t, const hcl_metric *extra, size_t n_extra);
  /* Nonzero once the user asked to stop (Ctrl-C): return HCL_ERR_INTERRUPTED. */
  int (*train_stop_requested)(hcl_trainer *t);

  /* Run the model being trained or probed on x [R, n, x_size] -> out [R, n, out_dim]. */
  hcl_status (*probe_forward)(hcl_probe *p, hcl_buf x, size_t n, hcl_buf out);
  /* Report one metric (one value per replica) from a probe. */
  hcl_status (*probe_emit)(hcl_probe *p, const char *name, const double *values);
  /* Samples for probing: same as train_batch, from the probe's own stream. */
  hcl_status (*probe_batch)(hcl_probe *p, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                            hcl_buf y);
  /* The model's parameters and named blocks, e.g. for weight-clustering probes. */
  hcl_buf (*probe_params)(hcl_probe *p, const hcl_block **blocks, size_t *n_blocks);
  /* Hidden features of the model's layer `layer` (see hcl_model_vt.features). */
  hcl_status (*probe_features)(hcl_probe *p, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                               size_t *dim);
  /* Evaluate a named quantity of the target at x (hcl_target_vt.eval), e.g.
   * "hstar" for learned-feature probes of models; out [R, n]. */
  hcl_status (*probe_target_eval)(hcl_probe *p, const char *what, hcl_buf x, size_t n, hcl_buf out);
  hcl_ctx *(*probe_ctx)(hcl_probe *p);
  size_t (*probe_replicas)(hcl_probe *p);

  /* ---- closed-form stages and custom algorithms ------------------------ */
  /* Solve (A + lambda I) X = B on the device for each replica: A [R, k, k]
   * symmetric (only read, and only its lower triangle: the upper one may be
   * anything), B [R, k, m] overwritten by X. Fails with
   * HCL_ERR_NUMERIC naming the replica and pivot when A + lambda I is not
   * numerically positive definite (never returns NaNs). */
  hcl_status (*solve_spd)(hcl_ctx *ctx, hcl_buf a, hcl_buf b, size_t R, size_t k, size_t m,
                          float lambda);
  /* The run's loss on out [R, n, out_dim] against y [R, n, y_dim]: dout gets
   * scale * dloss/dout (dout.mem NULL: skipped); loss (may be NULL) gets the
   * mean loss per replica (this reads back, so use it outside hot loops). */
  hcl_status (*train_loss_grad)(hcl_trainer *t, hcl_buf out, hcl_buf y, size_t n, float scale,
                                hcl_buf dout, double *loss);
  /* The configured [train] values every algorithm may use. */
  uint64_t (*train_steps)(hcl_trainer *t);
  double (*train_lr)(hcl_trainer *t);
  size_t (*train_batch_size)(hcl_trainer *t);
  uint64_t (*train_size)(hcl_trainer *t);
  /* Name the algorithm's current stage in the metrics ("phase") for stages
   * that run no train_phase (closed-form fits); label is copied. */
  void (*train_label)(hcl_trainer *t, const char *label);
  /* One draw on the host: element i of stream (seed, stream) of `dist`, the
   * same bits as host->rng gives on any device (for parameters a plugin
   * draws once on the host and uploads). */
  float (*rng_draw)(hcl_rng_dist dist, float a, float b, uint64_t seed, uint64_t stream,
                    uint64_t i);
  /* Nonzero once the run was asked to stop (Ctrl-C, SIGTERM): a long loop
   * (set-up, rejection, probe chunks) checks it between device calls and
   * returns host->fail(ctx, HCL_ERR_INTERRUPTED, ...). Read it only when
   * struct_size covers it (runtimes before it lack it). */
  int (*should_stop)(hcl_ctx *ctx);
  /* HCL_OK when `bytes` of host memory can be allocated now (the host's
   * available memory), else HCL_ERR_NOMEM with `what` (the plugin and key
   * that set the size) in the message: check before a large malloc. */
  hcl_status (*host_mem_check)(hcl_ctx *ctx, size_t bytes, const char *what);
  /* HCL_OK when `bytes` more device memory, in buffers of at most `largest`
   * bytes each, fit the device (its largest allocation, and the memory the
   * run may hold beside what it holds already); else HCL_ERR_NOMEM with
   * `what` (the plugin and keys that set the size) and the limits in the
   * message. Check a plugin's total before allocating its buffers one by one. */
  hcl_status (*mem_check)(hcl_ctx *ctx, size_t bytes, size_t largest, const char *what);

  /* ---- model graph builders (see "model graphs" below); read only when
   * struct_size covers them (HCL_HOST_HAS_GRAPH) ------------------------- */
  hcl_tensor (*g_input)(struct hcl_graph *g);
  hcl_tensor (*g_matmul)(struct hcl_graph *g, hcl_tensor a, const char *block);
  hcl_tensor (*g_bias)(struct hcl_graph *g, hcl_tensor a, const char *block);
  hcl_tensor (*g_act)(struct hcl_graph *g, hcl_tensor a, int act, const float *coef,
                      size_t n_coef); /* act: an hcl_graph_act */
  hcl_tensor (*g_add)(struct hcl_graph *g, hcl_tensor a, hcl_tensor b);
  hcl_tensor (*g_mul)(struct hcl_graph *g, hcl_tensor a, hcl_tensor b);
  hcl_tensor (*g_reshape)(struct hcl_graph *g, hcl_tensor a, size_t positions, size_t channels);
  hcl_tensor (*g_slice)(struct hcl_graph *g, hcl_tensor a, size_t first, size_t count);
  hcl_tensor (*g_mean)(struct hcl_graph *g, hcl_tensor a);
  hcl_tensor (*g_transpose)(struct hcl_graph *g, hcl_tensor a);
  hcl_tensor (*g_custom)(struct hcl_graph *g, const struct hcl_graph_custom *op,
                         const hcl_tensor *in, size_t n_in);
  hcl_status (*g_feature)(struct hcl_graph *g, hcl_tensor t, size_t layer);
  hcl_status (*g_output)(struct hcl_graph *g, hcl_tensor t);
  /* Read only when struct_size covers them (HCL_HOST_HAS). */
  hcl_tensor (*g_matmul_cols)(struct hcl_graph *g, hcl_tensor a, const char *block, size_t first);
  /* Run the model being trained on x [R, n, x_size] -> out [R, n, out_dim]
   * with the current parameters (a loss check inside train()). */
  hcl_status (*train_forward)(hcl_trainer *t, hcl_buf x, size_t n, hcl_buf out);
  /* Read only when struct_size covers them (HCL_HOST_HAS): see "model graphs". */
  hcl_tensor (*g_patch)(struct hcl_graph *g, hcl_tensor a, size_t s);
  hcl_tensor (*g_matmul_scaled)(struct hcl_graph *g, hcl_tensor a, const char *block, float alpha);
  hcl_tensor (*g_bias_scaled)(struct hcl_graph *g, hcl_tensor a, const char *block, float scale);
  hcl_tensor (*g_detach)(struct hcl_graph *g, hcl_tensor a);
  /* grad [R, n_params] = d(sum dout . out)/d params of the model being
   * trained, for its last train_forward on n samples (a full-batch gradient
   * or a closed-form stage inside train()). */
  hcl_status (*train_backward)(hcl_trainer *t, hcl_buf dout, size_t n, hcl_buf grad);
  /* Hidden layer `layer` of the model being trained at x, into out
   * [R, n, dim] (hcl_model_vt.features; a later backward needs a new forward). */
  hcl_status (*train_features)(hcl_trainer *t, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                               size_t *dim);
  /* The run's loss as train_loss_grad computes it: "mse" (mean (f - y)^2
   * over outputs), "cross_entropy", "logistic", "hinge", or "unknown"
   * for a loss newer than the plugin (for a closed form that holds for one
   * loss only). Read only when struct_size covers it
   * (HCL_HOST_HAS). */
  const char *(*train_loss_name)(hcl_trainer *t);
  /* Add `flops` (2 per multiply-add) that the plugin's own kernels ran for
   * products to the run's count (summary.json's gemm_flops; hiercl bench's
   * GFLOP/s and fraction of the FMA peak). The runtime's products count
   * themselves. Read only when struct_size covers it (HCL_HOST_HAS). */
  void (*count_flops)(hcl_ctx *ctx, double flops);
  /* sgemm_batched for m = n where only the lower triangle (i >= j) of each
   * C is wanted (a Gram matrix for a Cholesky solve): those elements get
   * the values sgemm_batched gives, the others may be written too. On CPUs
   * one launch of only the blocks meeting the triangle. Read only when
   * struct_size covers it (HCL_HOST_HAS). */
  hcl_status (*sgemm_lower)(hcl_ctx *ctx, int trans_a, int trans_b, size_t n, size_t k, float alpha,
                            hcl_buf a, size_t lda, size_t stride_a, hcl_buf b, size_t ldb,
                            size_t stride_b, float beta, hcl_buf c, size_t ldc, size_t stride_c,
                            size_t batch);
} hcl_host_api;

/* ---- target plugins: data generators ----------------------------------- */
typedef struct hcl_target_vt {
  uint32_t struct_size;
  /* Make a target for setup->replicas replicas (its own random parameters
   * per replica seed, e.g. the staircase's nothing, the RHM's rules). */
  hcl_status (*create)(hcl_ctx *ctx, const hcl_setup *setup, void **self);
  void (*destroy)(void *self);
  hcl_status (*info)(void *self, hcl_target_info *out);
  /* Samples first..first+n-1 of `stream` into x [R, n, x_size], y [R, n,
   * y_dim]; index i of a train stream is taken modulo train_size (> 0).
   * Sample i depends only on (seed, stream, i): the same bits on every device
   * and for every n. */
  hcl_status (*sample)(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x, hcl_buf y);
  /* Optional: metrics computed by evaluating the model (hcl_probe_forward). */
  hcl_status (*probe)(void *self, hcl_probe *p);
  /* Optional: named evaluations for model probes, e.g. "hstar": [R, n] of the
   * latent feature h*(x) at inputs x. Unknown names return HCL_ERR_UNSUPPORTED. */
  hcl_status (*eval)(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out);
  /* Optional, read only when struct_size covers it: validate the parameters
   * against the run (`run`) WITHOUT a device, and fill `info` as info() will
   * (hcl_target_info_put). Runs before the device opens and before a run
   * directory is made, so every parameter error comes first; keep it cheap
   * (no large host computation). On error: one line in err, without the
   * plugin's name (the runtime prefixes FILE: [target] NAME:). create()
   * keeps its own checks. */
  hcl_status (*check)(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                      char *err, size_t errlen);
} hcl_target_vt;

/* For a target's info(): copy a filled-in hcl_target_info to the caller's, no
 * further than the caller's struct_size covers (0: the whole struct), and set
 * out->struct_size to what was written. Returns HCL_OK. */
static inline hcl_status hcl_target_info_put(hcl_target_info *out, const hcl_target_info *info) {
  uint32_t size = out->struct_size ? out->struct_size : (uint32_t)sizeof *out;
  if (size > sizeof *info) size = (uint32_t)sizeof *info;
  memcpy(out, info, size);
  out->struct_size = size;
  return HCL_OK;
}

/* ==== model graphs ========================================================
 * Instead of forward and backward, a model may describe its forward pass
 * once, in hcl_model_vt.graph, through the builders of hcl_host_api (g_*).
 * The runtime checks the shapes as the graph is built, derives the gradient
 * by reverse mode, fuses chains of elementwise ops into one kernel, plans the
 * buffers once for max_batch and runs forward and backward on the device.
 *
 * Every tensor is [R, n, positions, channels] (row-major, the replica
 * dimension first, n the batch): the input is [R, n, 1, x_size]. matmul and
 * bias act on the channels of every position, so a non-overlapping patch
 * convolution (filter = stride = s over [P, C]) is g_patch (PyTorch's weight
 * order; or a reshape to [P/s, s*C], position-major columns) followed by a
 * matmul (a channels-first input is transposed first).
 * A builder given an invalid shape records one error naming the op and the
 * shapes and returns HCL_GRAPH_BAD; every later op on HCL_GRAPH_BAD returns
 * it too, and g_output returns the first error. */
#define HCL_GRAPH_BAD (-1)

/* Activations of g_act. coef: LEAKY_RELU {slope} (none: 0.1); POLY
 * {c0, c1, ..., ck}: sum_i c_i z^i (1 to 8 coefficients); others none. */
typedef enum {
  HCL_GACT_RELU = 1,
  HCL_GACT_LEAKY_RELU,
  HCL_GACT_QUADRATIC, /* z^2 */
  HCL_GACT_TANH,
  HCL_GACT_GELU, /* z Phi(z), the erf form */
  HCL_GACT_POLY
} hcl_graph_act;

/* The g_act activation of a fused-kernel activation (hcl_act); 0 for the
 * identity, which needs no op. */
static inline int hcl_graph_act_of(hcl_act a) {
  switch (a) {
  case HCL_ACT_RELU: return HCL_GACT_RELU;
  case HCL_ACT_LEAKY_RELU: return HCL_GACT_LEAKY_RELU;
  case HCL_ACT_QUADRATIC: return HCL_GACT_QUADRATIC;
  case HCL_ACT_TANH: return HCL_GACT_TANH;
  default: return 0;
  }
}

/* What a custom op's callbacks work on. Buffers are replica-strided: replica
 * r of in[i] starts r * n * cols[i] floats in, of a block r * param_stride. */
typedef struct hcl_graph_io {
  size_t R, n;           /* replicas, samples */
  size_t n_in;           /* inputs */
  const hcl_buf *in;     /* [n_in] the inputs, [R, n, cols[i]] */
  const size_t *cols;    /* [n_in] floats of one sample of each input */
  hcl_buf out;           /* forward: write the output [R, n, out_channels];
                          * backward: its gradient dout (read only) */
  const hcl_buf *din;    /* backward: [n_in] ADD d(sum dout . out)/d in[i]
                          * (mem NULL: that input needs no gradient) */
  size_t n_blocks;       /* the op's parameter blocks (hcl_graph_custom.blocks) */
  const hcl_buf *param;  /* [n_blocks] each block of replica 0, replica stride param_stride */
  const hcl_buf *dparam; /* backward: [n_blocks] ADD the block gradients, same layout */
  size_t param_stride;   /* floats from one replica's block to the next (n_params) */
  /* backward, ops with HCL_GCUSTOM_DIN_SET only (the host table has
   * g_detach): bit i set, din[i] holds nothing yet: write all of it (=)
   * instead of adding; other din[i] still ADD */
  uint32_t din_set;
} hcl_graph_io;

/* A custom op: out [R, n, 1, out_channels] from up to 6 inputs and up to 4
 * parameter blocks, by the plugin's own kernels (host->program / kernel /
 * run_kernel inside the callbacks), for what the built-in ops do not cover
 * (e.g. Taylor-model terms). Both callbacks enqueue work and never wait. */
typedef struct hcl_graph_custom {
  uint32_t struct_size;
  const char *name; /* in errors and profiles */
  size_t out_channels;
  void *user;
  hcl_status (*forward)(void *user, hcl_ctx *ctx, const hcl_graph_io *io);
  hcl_status (*backward)(void *user, hcl_ctx *ctx, const hcl_graph_io *io);
  const char *const *blocks; /* NULL-terminated block names the op reads (NULL: none) */
  uint32_t flags;            /* HCL_GCUSTOM_* (read when struct_size covers it) */
} hcl_graph_custom;
/* The op's backward honours hcl_graph_io.din_set, so an input gradient
 * nothing else adds to is not zeroed first (a pass over it saved). */
#define HCL_GCUSTOM_DIN_SET 1u

/* The builders (hcl_host_api.g_*), each returning the new tensor:
 *  g_input()            the model input x, [R, n, 1, x_size]
 *  g_matmul(a, "w")     a W^T over channels; block w is [out, C] -> [.., P, out]
 *  g_matmul_cols(a, "w", f)  a W[:, f .. f+C-1]^T: a column window of a
 *                       wider block [out, K] (f + C <= K), e.g. one layer's
 *                       share of a readout over several layers
 *  g_bias(a, "b")       a + b per channel; block b holds C values ([C, 1])
 *  g_act(a, act, c, k)  act(a), elementwise
 *  g_add(a, b), g_mul   elementwise sum / product, same shapes
 *  g_reshape(a, P, C)   the same floats as [P, C] (P C = a's P C)
 *  g_slice(a, f, k)     channels f .. f+k-1 of each position
 *  g_mean(a)            mean over positions -> [.., 1, C]
 *  g_transpose(a)       [P, C] -> [C, P]: channels-first input (a target's
 *                       [channels, length]) to positions-first
 *  g_patch(a, s)        non-overlapping patches of s positions: [P, C] ->
 *                       [P/s, C*s], column c*s + j = a[p*s + j, c] (the order
 *                       of PyTorch's Conv1d weight [out, C, s]); a patch
 *                       convolution is g_patch then g_matmul; a patch of a
 *                       g_transpose reads through it (one gather)
 *  g_matmul_scaled(a, "w", f)  f a W^T, the factor inside the GEMM (and its
 *                       gradients): fan-in and mean-field scalings
 *  g_bias_scaled(a, "b", f)    a + f b per channel (a bias entering scaled)
 *  g_detach(a)          a itself, through which no gradient flows (frozen
 *                       layers below a layer-wise stage: their gradients
 *                       are not computed, their blocks get 0)
 *  g_custom(op, in, k)  a custom op (the descriptor must outlive the model)
 *  g_feature(t, l)      t is hidden layer l's activation (features(), 1-based);
 *                       nodes that only features read (the output does not
 *                       depend on them) are skipped by forward
 *  g_output(t)          t [.., 1, out_dim] is the model output; returns the
 *                       graph's status (the first builder error, if any) */
#define HCL_HOST_HAS_GRAPH(host)                                                                   \
  ((host)->struct_size >= offsetof(hcl_host_api, g_output) + sizeof(void *))
/* ==== end of model graphs ================================================= */

/* ---- model plugins: hypothesis classes ---------------------------------- */
typedef struct hcl_model_vt {
  uint32_t struct_size;
  /* Make a model for inputs of `target` (shape, task, classes). Reject
   * impossible shapes with the numbers that disagree. */
  hcl_status (*create)(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                       void **self);
  void (*destroy)(void *self);
  /* Parameters per replica and their named blocks (valid until destroy). */
  size_t (*n_params)(void *self);
  size_t (*out_dim)(void *self);
  const hcl_block *(*blocks)(void *self, size_t *n_blocks);
  /* Initialise params [R, n_params] from the replica seeds. */
  hcl_status (*init)(void *self, hcl_buf params);
  /* out [R, n, out_dim] = f(params, x [R, n, x_size]); n <= max_batch. Keeps
   * what backward needs. */
  hcl_status (*forward)(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out);
  /* grad [R, n_params] = d(sum of dout . out)/d params, for the last forward. */
  hcl_status (*backward)(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad);
  /* Optional: activations of hidden layer `layer` (1-based) at x, into out
   * [R, n, dim]; sets *dim. Used by probes (synonymic sensitivity). */
  hcl_status (*features)(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                         size_t *dim);
  /* Optional: training algorithms other than plain SGD; NULL-terminated. */
  const char *const *algorithms;
  /* Optional: run `algorithm` through the trainer services of hcl_host_api. */
  hcl_status (*train)(void *self, const char *algorithm, hcl_trainer *t);
  /* Optional: metrics about the model itself at an evaluation. */
  hcl_status (*probe)(void *self, hcl_probe *p);
  /* Optional: data-dependent set-up (e.g. whitening a representation on the
   * training set) after init and before the first evaluation. */
  hcl_status (*prepare)(void *self, hcl_trainer *t);
  /* Optional, read only when struct_size covers it: validate the parameters
   * against the target's info and the run (`run`: sizes, algorithm, loss)
   * WITHOUT a device: shape compatibilities and what train() would refuse.
   * Runs before the device opens and before a run directory is made. On
   * error: one line in err, without the plugin's name (the runtime prefixes
   * FILE: [model] NAME:). create() and train() keep their own checks. */
  hcl_status (*check)(const hcl_params *p, const hcl_check_info *run, const hcl_target_info *target,
                      char *err, size_t errlen);
  /* Optional, read only when struct_size covers it: describe the forward
   * pass once as a graph (see "model graphs" below). A model with graph and
   * without forward/backward gets them, and features, from the runtime. */
  hcl_status (*graph)(void *self, struct hcl_graph *g);
  /* Optional, graph models only, read only when struct_size covers it: the
   * parameters the graph reads, from params [R, n_params] (e.g. params times
   * fixed connectivity masks, into the model's own buffer); *use = params
   * when nothing changes. Runs before every forward and features. */
  hcl_status (*graph_params)(void *self, hcl_buf params, hcl_buf *use);
  /* Optional, graph models only: runs after every backward on its grad
   * [R, n_params] (params: backward's), e.g. masks, a coordinate-descent
   * selection or a penalty on the gradient of what graph_params made. */
  hcl_status (*graph_grad)(void *self, hcl_buf params, hcl_buf grad);
  /* Optional, read only when struct_size covers it, at the start of every
   * phase: a factor f (> 0; else 1) on [train] lr for the gradient term,
   * e.g. the width of a mean-field network, whose gradients shrink like
   * 1/width. SGD (with or without momentum) steps lr (f grad + wd w):
   * weight_decay and a phase's l2 keep their strength per unit of lr. Adam,
   * invariant to the gradient's scale, keeps lr and takes eps / f: the
   * update of a gradient multiplied by f. backward() stays the true
   * gradient (gradcheck). */
  double (*lr_scale)(void *self);
  /* Optional, graph models only, read only when struct_size covers it: which
   * of the model's graphs applies now (0 to HCL_GRAPH_MAX_VARIANTS - 1), asked
   * before every forward and features. The runtime calls graph() again, once
   * per new value, with the model in that state: e.g. a layer-wise stage's
   * truncated network, or a closed-form predictor that replaced the network
   * (as custom ops). Every variant has the same out_dim. */
  int (*graph_variant)(void *self);
  /* Optional, graph models with graph_params or graph_grad only, read only
   * when struct_size covers it, before every training step: nonzero when
   * neither hook changes anything now (*use = params, grad untouched), e.g.
   * no mask is set. The runtime may then run the step (forward, loss,
   * backward, optimiser) as one launch, without calling the hooks. A model
   * with hooks and without this entry never has its step fused. */
  int (*graph_plain)(void *self);
} hcl_model_vt;
#define HCL_GRAPH_MAX_VARIANTS 256

/* ---- the descriptor ------------------------------------------------------ */
enum { HCL_PLUGIN_TARGET = 1, HCL_PLUGIN_MODEL = 2 };

typedef struct hcl_plugin_desc {
  uint32_t abi_version; /* HCL_PLUGIN_ABI_VERSION; first, never moves */
  uint32_t struct_size; /* sizeof(hcl_plugin_desc) when the plugin was built */
  uint32_t kind;        /* HCL_PLUGIN_TARGET or HCL_PLUGIN_MODEL */
  const char *name;     /* [a-z0-9_]+, the value of [target|model] plugin */
  const char *version;
  const char *summary;  /* one line */
  const char *citation; /* the paper(s), shown by `hiercl describe` */
  const hcl_param_desc *params;
  const void *vt; /* const hcl_target_vt * or const hcl_model_vt * */
  void *reserved[8];
} hcl_plugin_desc;

/* The one exported entry point. On failure return NULL and set *errmsg to a
 * static string saying why. */
typedef const hcl_plugin_desc *(*hcl_plugin_init_fn)(const hcl_host_api *host, const char **errmsg);

#if defined(__GNUC__)
#define HCL_EXPORT __attribute__((visibility("default")))
#else
#define HCL_EXPORT
#endif

/* Defines the entry point: HCL_PLUGIN_ENTRY(my_init) where
 * `static const hcl_plugin_desc *my_init(const hcl_host_api *, const char **)`. */
#define HCL_PLUGIN_ENTRY(fn)                                                                       \
  HCL_EXPORT const hcl_plugin_desc *hcl_plugin_init(const hcl_host_api *host,                      \
                                                    const char **errmsg) {                         \
    return fn(host, errmsg);                                                                       \
  }

/* ---- checks shared by a plugin's check() and its create() or train() ------ */
/* Where a shared check reports: with `host` set, through host->fail(ctx)
 * (create, train); with host NULL, into err (check). The runtime prefixes
 * "[section] name: " either way, so messages do not name the plugin;
 * `strip` (optional) drops a leading "name: " a plugin still writes. */
typedef struct hcl_report {
  const hcl_host_api *host;
  hcl_ctx *ctx;
  char *err;
  size_t errlen;
  const char *strip;
} hcl_report;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
/* Report one error line where r says; returns rc. */
static inline hcl_status
hcl_report_fail(const hcl_report *r, hcl_status rc, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->host) return (r->host->fail)(r->ctx, rc, "%s", msg); /* () : a plugin may define fail() */
  size_t skip = r->strip && !strncmp(msg, r->strip, strlen(r->strip)) ? strlen(r->strip) : 0;
  if (r->errlen) snprintf(r->err, r->errlen, "%s", msg + skip);
  return rc;
}

/* ==== SDK: what every plugin repeats, once (header only; not part of the ABI) ====
 *
 * A plugin's entry file:
 *
 *   static const hcl_param_desc params[] = {
 *       HCL_P_INT("width", "64", 1, 65536, "hidden neurons"),
 *       HCL_P_ENUM("act", "relu", acts, "activation"),
 *       HCL_P_END};
 *   static const hcl_plugin_desc desc = {HCL_DESC_HEAD(HCL_PLUGIN_MODEL), .name = "mine", ...};
 *   HCL_PLUGIN_DEFINE(mine, desc)
 *
 * and every file then calls the runtime through `hcl_host`. */

/* The runtime's function table in a plugin built with HCL_PLUGIN_DEFINE (set
 * before any other entry is called). Hidden: each plugin has its own. */
#if defined(__GNUC__)
__attribute__((visibility("hidden")))
#endif
extern const hcl_host_api *hcl_host;

/* Nonzero when a struct of `type` at ptr (not NULL, with a struct_size
 * first) covers `field`: read a field added after the plugin's oldest
 * runtime only then. */
#define HCL_STRUCT_HAS(ptr, type, field)                                                           \
  ((size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))
/* Nonzero when the runtime's host table has entry `field` (newer than
 * HCL_PLUGIN_NEEDS): `if (HCL_HOST_HAS(mem_check)) ...`. */
#define HCL_HOST_HAS(field) (HCL_STRUCT_HAS(hcl_host, hcl_host_api, field) && hcl_host->field)

/* The newest host-table entry a plugin calls without HCL_HOST_HAS; define it
 * before including this header to need a newer runtime. The default is the
 * last entry of the table as ABI 1 first shipped it. */
#ifndef HCL_PLUGIN_NEEDS
#define HCL_PLUGIN_NEEDS mem_check
#endif

/* The first fields of a descriptor: ABI version, size and kind. */
#define HCL_DESC_HEAD(kind_)                                                                       \
  .abi_version = HCL_PLUGIN_ABI_VERSION, .struct_size = sizeof(hcl_plugin_desc), .kind = (kind_)

/* Defines hcl_host and the entry point returning `desc` (a static
 * hcl_plugin_desc) once the host table's ABI version matches and the table
 * reaches HCL_PLUGIN_NEEDS; otherwise the loader lists the plugin as
 * rejected with the reason. `name` is the plugin's name, unquoted. */
#define HCL_PLUGIN_DEFINE(name, desc)                                                              \
  const hcl_host_api *hcl_host;                                                                    \
  HCL_EXPORT const hcl_plugin_desc *hcl_plugin_init(const hcl_host_api *host,                      \
                                                    const char **errmsg) {                         \
    if (!host || host->abi_version != HCL_PLUGIN_ABI_VERSION) {                                    \
      *errmsg = #name ": runtime plugin ABI version differs from the one it was built for";        \
      return NULL;                                                                                 \
    }                                                                                              \
    if (!HCL_STRUCT_HAS(host, hcl_host_api, HCL_PLUGIN_NEEDS)) {                                   \
      *errmsg = #name ": the runtime's host table is older than this plugin needs";                \
      return NULL;                                                                                 \
    }                                                                                              \
    hcl_host = host;                                                                               \
    return &(desc);                                                                                \
  }

/* ---- declared parameters: one macro per type (tables end with HCL_P_END) - */
/* def is the default as text (NULL: required); lo > hi: unbounded. */
#define HCL_P_INT(key, def, lo, hi, help)                                                          \
  { key, HCL_PARAM_INT, def, lo, hi, NULL, help }
#define HCL_P_DOUBLE(key, def, lo, hi, help)                                                       \
  { key, HCL_PARAM_DOUBLE, def, lo, hi, NULL, help }
#define HCL_P_BOOL(key, def, help)                                                                 \
  { key, HCL_PARAM_BOOL, def, 1, 0, NULL, help }
#define HCL_P_STRING(key, def, help)                                                               \
  { key, HCL_PARAM_STRING, def, 1, 0, NULL, help }
/* choices: a NULL-terminated list; read the value back as its index (hcl_param_choice). */
#define HCL_P_ENUM(key, def, choices, help)                                                        \
  { key, HCL_PARAM_ENUM, def, 1, 0, choices, help }
#define HCL_P_LIST(key, def, lo, hi, help)                                                         \
  { key, HCL_PARAM_LIST, def, lo, hi, NULL, help }
#define HCL_P_END                                                                                  \
  { NULL, (hcl_param_type)0, NULL, 0, 0, NULL, NULL }

/* The index in `choices` (the list the key was declared with) of an ENUM
 * key's value; the runtime has already refused any other value, so -1 only
 * for a key declared with another list. */
static inline int hcl_param_choice(const hcl_host_api *host, const hcl_params *p, const char *key,
                                   const char *const *choices) {
  const char *v = host->param_str(p, key);
  for (int i = 0; v && choices[i]; i++)
    if (!strcmp(v, choices[i])) return i;
  return -1;
}
/* hcl_param_choice through hcl_host. */
#define HCL_ENUM(p, key, choices) hcl_param_choice(hcl_host, (p), (key), (choices))

/* Return the status of a call when it is not HCL_OK. */
#define HCL_TRY(call)                                                                              \
  do {                                                                                             \
    hcl_status hcl_try_rc_ = (call);                                                               \
    if (hcl_try_rc_ != HCL_OK) return hcl_try_rc_;                                                 \
  } while (0)

/* ---- views of device buffers --------------------------------------------- */
/* The part of buffer b `off` floats in, `span` floats long. */
static inline hcl_buf hcl_view(hcl_buf b, size_t off, size_t span) {
  hcl_buf v = {b.mem, b.offset + off * sizeof(float), span * sizeof(float)};
  return v;
}
/* A per-replica block of a [R, stride] buffer (the parameters: stride =
 * n_params) at `off` with `count` floats: from replica 0's block to the end
 * of replica R-1's, for batched ops that stride `stride` floats. */
static inline hcl_buf hcl_pview(hcl_buf b, size_t R, size_t stride, size_t off, size_t count) {
  return hcl_view(b, off, (R - 1) * stride + count);
}
/* b's offset in floats (views are whole floats by contract) into *out; a
 * failure naming `what` otherwise. */
static inline hcl_status hcl_view_offset(hcl_ctx *ctx, hcl_buf b, const char *what, cl_ulong *out) {
  if (b.offset % sizeof(float))
    return (hcl_host->fail)(ctx, HCL_ERR_PARAM, "%s offset %zu is not float aligned", what,
                            b.offset);
  *out = (cl_ulong)(b.offset / sizeof(float));
  return HCL_OK;
}
/* A failure naming `what` unless b, when its size is set, holds `floats`
 * floats. */
static inline hcl_status hcl_view_room(hcl_ctx *ctx, hcl_buf b, size_t floats, const char *what) {
  if (b.size && b.size < floats * sizeof(float))
    return (hcl_host->fail)(ctx, HCL_ERR_PARAM,
                            "%s holds %zu bytes, %zu floats ([R, n, ...]) needed", what, b.size,
                            floats);
  return HCL_OK;
}

/* ---- per-sample launches over a stream that wraps ------------------------ */
/* Where hcl_run_samples puts each launch's place: indices in args of three
 * cl_ulong arguments. */
typedef struct hcl_sample_slots {
  size_t s0, row0, i0;
} hcl_sample_slots;

/* Runs kernel k with one work-item per sample along dimension 0 (gy along 1,
 * R replicas along 2) over `count` samples from stream position `first`,
 * which wraps every `wrap` samples (0: never): in pieces that do not wrap,
 * each as whole groups of 64 samples and then the rest at local size 1, so
 * the kernel needs no bound check (one stops PoCL's vectoriser) and each
 * local size builds once. args (at most 32) as for run_kernel, except that
 * each launch puts its piece's first position, first row and first item in
 * the arguments at.s0, at.row0 and at.i0. */
static inline hcl_status hcl_run_samples(hcl_ctx *ctx, cl_kernel k, const char *label,
                                         uint64_t first, uint64_t wrap, size_t count, size_t gy,
                                         size_t R, const hcl_arg *args, size_t nargs,
                                         hcl_sample_slots at) {
  hcl_arg a[32];
  if (nargs > 32 || at.s0 >= nargs || at.row0 >= nargs || at.i0 >= nargs)
    return (hcl_host->fail)(ctx, HCL_ERR_PARAM, "%s: %zu arguments, slots %zu %zu %zu", label,
                            nargs, at.s0, at.row0, at.i0);
  cl_ulong s0 = wrap ? first % wrap : first, row0 = 0, i0 = 0;
  for (size_t i = 0; i < nargs; i++) a[i] = args[i];
  a[at.s0] = HCL_ARG(s0), a[at.row0] = HCL_ARG(row0), a[at.i0] = HCL_ARG(i0);
  while (row0 < count) {
    cl_ulong piece = count - row0;
    if (wrap && piece > wrap - s0) piece = wrap - s0;
    cl_ulong main = piece / 64 * 64;
    for (int part = 0; part < 2; part++) {
      cl_ulong items = part ? piece - main : main;
      i0 = part ? main : 0;
      if (!items) continue;
      size_t gws[3] = {(size_t)items, gy, R}, lws[3] = {part ? 1 : 64, 1, 1};
      HCL_TRY(hcl_host->run_kernel(ctx, k, 3, gws, lws, label, nargs, a));
    }
    row0 += piece;
    s0 = 0;
  }
  return HCL_OK;
}
/* Floats of one input sample of shape s (the product of its dims). */
static inline size_t hcl_shape_size(const hcl_shape *s) {
  size_t n = 1;
  for (uint32_t i = 0; i < s->rank && i < 4; i++) n *= s->dims[i];
  return n;
}
/* ---- a target from its sampling kernel alone ----------------------------- */
/* A target plugin whose only required piece is one OpenCL kernel:
 *
 *   __kernel void NAME(__global float *x, ulong x_off, __global float *y, ulong y_off,
 *                      __global const ulong *seeds, uint stream, ulong first, ulong n,
 *                      ulong wrap, __global const float *params, uint n_params)
 *
 * runs on (n, R) work-items; work-item (i, r) writes sample
 * s = first + i (s %= wrap when wrap > 0: the training set) of replica r,
 * x at HCL_AT(x, x_off) + (r n + i) x_size, y at HCL_AT(y, y_off) + (r n + i)
 * y_dim, as a function of (seeds[r], stream, s) only: draw with
 * hcl_rng_block(seeds[r], stream_id, counter) from kernels/common.cl, which
 * is prepended. params holds the plugin's declared INT, DOUBLE and BOOL
 * values and ENUM indices, as floats in table order (STRING and LIST keys
 * are skipped). The plugin writes the kernel, its parameter table and
 *
 *   static const hcl_kernel_target kt = {.source = hcl_cl_mine, .kernel = "mine_sample",
 *                                        .params = params, .shape = mine_shape};
 *   HCL_KERNEL_TARGET_VT(vt, kt)
 *
 * and a descriptor with .vt = &vt. */
typedef struct hcl_kernel_target {
  const char *source;           /* program text (an embedded .cl file) */
  const char *kernel;           /* the sampling kernel's name */
  const hcl_param_desc *params; /* the plugin's table, for the kernel's params */
  hcl_target_info info;         /* shape, y_dim (0: 1), task (0: regression), classes */
  /* Optional: complete `info` from the parameters (e.g. x.dims[0] = d), without a
   * device; an error is one line in err. */
  hcl_status (*shape)(const hcl_params *p, hcl_target_info *info, char *err, size_t errlen);
} hcl_kernel_target;

/* One target made by HCL_KERNEL_TARGET_VT (private to the SDK). */
typedef struct hcl_kt_self {
  const hcl_kernel_target *kt;
  hcl_ctx *ctx;
  size_t R;
  uint64_t train_size;
  hcl_target_info info;
  cl_program prog;
  cl_kernel k;
  hcl_buf seeds, params;
  cl_uint n_params;
} hcl_kt_self;

/* The info of kt for parameters p; one error line in err. */
static inline hcl_status hcl_kt_shape(const hcl_kernel_target *kt, const hcl_params *p,
                                      hcl_target_info *out, char *err, size_t errlen) {
  *out = kt->info;
  out->struct_size = sizeof *out;
  if (!out->y_dim) out->y_dim = 1;
  if (!out->task) out->task = HCL_TASK_REGRESSION;
  hcl_status rc = kt->shape ? kt->shape(p, out, err, errlen) : HCL_OK;
  if (rc == HCL_OK && (out->x.rank < 1 || out->x.rank > 4 || !hcl_shape_size(&out->x)))
    rc = (snprintf(err, errlen, "the input shape has no elements"), HCL_ERR_PARAM);
  return rc;
}

static inline void hcl_kt_destroy(void *self) {
  hcl_kt_self *t = (hcl_kt_self *)self;
  if (!t) return;
  hcl_host->buf_free(t->ctx, &t->seeds);
  hcl_host->buf_free(t->ctx, &t->params);
  if (t->k) clReleaseKernel(t->k);
  if (t->prog) clReleaseProgram(t->prog);
  free(t);
}

/* Everything hcl_kt_create makes, into t (released by hcl_kt_destroy). */
static inline hcl_status hcl_kt_make(hcl_kt_self *t, const hcl_setup *setup) {
  char err[512] = "";
  hcl_ctx *ctx = t->ctx;
  if (hcl_kt_shape(t->kt, setup->params, &t->info, err, sizeof err) != HCL_OK)
    return (hcl_host->fail)(ctx, HCL_ERR_PARAM, "%s", err);
  float values[256];
  cl_uint n = 0;
  for (const hcl_param_desc *d = t->kt->params; d && d->key && n < 256; d++) {
    if (d->type == HCL_PARAM_INT) values[n++] = (float)hcl_host->param_int(setup->params, d->key);
    if (d->type == HCL_PARAM_DOUBLE)
      values[n++] = (float)hcl_host->param_double(setup->params, d->key);
    if (d->type == HCL_PARAM_BOOL) values[n++] = (float)hcl_host->param_bool(setup->params, d->key);
    if (d->type == HCL_PARAM_ENUM)
      values[n++] = (float)hcl_param_choice(hcl_host, setup->params, d->key, d->choices);
  }
  t->n_params = n;
  if (t->R < 1 || t->R > 4096 || !setup->seeds)
    return (hcl_host->fail)(ctx, HCL_ERR_PARAM, "%zu replicas: 1 to 4096, with their seeds", t->R);
  cl_ulong seeds[4096];
  for (size_t r = 0; r < t->R; r++) seeds[r] = setup->seeds[r];
  HCL_TRY(hcl_host->buf_alloc(ctx, t->R * sizeof(cl_ulong), &t->seeds));
  HCL_TRY(hcl_host->buf_write(ctx, t->seeds, seeds, t->R * sizeof(cl_ulong)));
  HCL_TRY(hcl_host->buf_alloc(ctx, (n ? n : 1) * sizeof(float), &t->params));
  if (n) HCL_TRY(hcl_host->buf_write(ctx, t->params, values, n * sizeof(float)));
  HCL_TRY(hcl_host->program(ctx, t->kt->kernel, t->kt->source, "", &t->prog));
  return hcl_host->kernel(ctx, t->prog, t->kt->kernel, &t->k);
}

/* create() of a kernel target: *self is set only on success. */
static inline hcl_status hcl_kt_create(const hcl_kernel_target *kt, hcl_ctx *ctx,
                                       const hcl_setup *setup, void **self) {
  *self = NULL;
  hcl_kt_self *t = (hcl_kt_self *)calloc(1, sizeof *t);
  if (!t) return (hcl_host->fail)(ctx, HCL_ERR_NOMEM, "out of host memory");
  t->kt = kt;
  t->ctx = ctx;
  t->R = setup->replicas;
  t->train_size = setup->train_size;
  hcl_status rc = hcl_kt_make(t, setup);
  if (rc != HCL_OK) {
    hcl_kt_destroy(t);
    return rc;
  }
  *self = t;
  return HCL_OK;
}

static inline hcl_status hcl_kt_info(void *self, hcl_target_info *out) {
  return hcl_target_info_put(out, &((hcl_kt_self *)self)->info);
}

static inline hcl_status hcl_kt_sample(void *self, uint32_t stream, uint64_t first, size_t n,
                                       hcl_buf x, hcl_buf y) {
  hcl_kt_self *t = (hcl_kt_self *)self;
  if (!n) return HCL_OK;
  cl_ulong xo = x.offset / sizeof(float), yo = y.offset / sizeof(float), f = first, cn = n;
  cl_ulong wrap = stream == HCL_STREAM_TRAIN ? t->train_size : 0;
  cl_uint st = stream;
  hcl_arg args[] = {
      HCL_ARG(x.mem),      HCL_ARG(xo), HCL_ARG(y.mem), HCL_ARG(yo),   HCL_ARG(t->seeds.mem),
      HCL_ARG(st),         HCL_ARG(f),  HCL_ARG(cn),    HCL_ARG(wrap), HCL_ARG(t->params.mem),
      HCL_ARG(t->n_params)};
  size_t gws[2] = {n, t->R};
  return hcl_host->run_kernel(t->ctx, t->k, 2, gws, NULL, t->kt->kernel, 11, args);
}

/* Defines `static const hcl_target_vt vt` sampling with the kernel of `kt`
 * (a static hcl_kernel_target): create, destroy, info, sample and a
 * device-free check that fills the info. */
#define HCL_KERNEL_TARGET_VT(vt, kt)                                                               \
  static hcl_status vt##_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {               \
    return hcl_kt_create(&(kt), ctx, setup, self);                                                 \
  }                                                                                                \
  static hcl_status vt##_check(const hcl_params *p, const hcl_check_info *run,                     \
                               hcl_target_info *info, char *err, size_t errlen) {                  \
    hcl_target_info got;                                                                           \
    (void)run;                                                                                     \
    HCL_TRY(hcl_kt_shape(&(kt), p, &got, err, errlen));                                            \
    return hcl_target_info_put(info, &got);                                                        \
  }                                                                                                \
  static const hcl_target_vt vt = {.struct_size = sizeof(hcl_target_vt),                           \
                                   .create = vt##_create,                                          \
                                   .destroy = hcl_kt_destroy,                                      \
                                   .info = hcl_kt_info,                                            \
                                   .sample = hcl_kt_sample,                                        \
                                   .check = vt##_check}
/* ==== end of the SDK ==== */

#ifdef __cplusplus
}
#endif
#endif
