/* Model graphs inside the runtime (graph_*.c): the nodes a model's builders
 * record, the step list derived from them (forward with fused elementwise
 * chains, then the reverse-mode gradient), the buffer plan and the adapter
 * that turns a graph-only model into a complete hcl_model_vt. Not an ABI. */
#ifndef HCL_GRAPH_H
#define HCL_GRAPH_H

#include "internal.h"

typedef enum {
  HCL_GN_INPUT = 0,
  HCL_GN_MATMUL,
  HCL_GN_BIAS,
  HCL_GN_ACT,
  HCL_GN_ADD,
  HCL_GN_MUL,
  HCL_GN_RESHAPE,
  HCL_GN_SLICE,
  HCL_GN_MEAN,
  HCL_GN_TRANSPOSE,
  HCL_GN_CUSTOM,
  HCL_GN_PATCH
} hcl_gn_kind;

#define HCL_GRAPH_MAX_COEF 8
#define HCL_GRAPH_CUSTOM_MAX_IN 6     /* a custom op's inputs */
#define HCL_GRAPH_CUSTOM_MAX_BLOCKS 4 /* and parameter blocks */

/* One node: a tensor [R, n, P, C] and the op that makes it. */
typedef struct hcl_gnode {
  hcl_gn_kind kind;
  int32_t in[2]; /* inputs; custom: ins */
  int32_t *ins;  /* custom only, n_ins of them */
  size_t n_ins;
  size_t P, C;  /* positions, channels of one sample */
  size_t block; /* matmul, bias: index into the model's blocks */
  int act;      /* hcl_graph_act */
  float coef[HCL_GRAPH_MAX_COEF];
  size_t n_coef;
  size_t first; /* slice: first channel; matmul: the block's first column; patch: s */
  float scale;  /* matmul: factor on the product; bias: factor on the block (1: none) */
  const hcl_graph_custom *op;
  size_t cblock[HCL_GRAPH_CUSTOM_MAX_BLOCKS]; /* custom: its blocks */
  size_t n_cblocks;
  /* derived by graph_compile */
  int n_users;
  int grad;   /* 1: depends on a parameter (needs a gradient) */
  int store;  /* 1: materialised in a value */
  int group;  /* fused group of an elementwise node, else -1 */
  int value;  /* value holding the output, -1: none */
  int local;  /* name inside its fused kernel */
  int fstep;  /* the forward step that completes it, -1: none (the input) */
  int needed; /* 1: the output depends on it (else only features() read it) */
  int stop;   /* reshape: a view no gradient passes (g_detach) */
} hcl_gnode;

/* A buffer of the plan: `cols` floats per sample, R * max_batch samples. */
enum { HCL_GV_ARENA = 0, HCL_GV_X, HCL_GV_OUT, HCL_GV_DOUT };
typedef struct hcl_gvalue {
  int ext; /* HCL_GV_*: arena-planned or the caller's buffer */
  size_t cols;
  size_t offset;   /* floats into the arena */
  int first, last; /* steps that write first / touch last (liveness) */
  size_t pass_col; /* arena values: first column in a pass's arena (graph_pass.c) */
} hcl_gvalue;

/* An argument of a step: a value, a parameter block, or its gradient. */
enum { HCL_GA_VALUE = 0, HCL_GA_PARAM, HCL_GA_GRAD };
typedef struct hcl_garg {
  int kind;
  int id; /* value id or block index */
} hcl_garg;

typedef enum {
  HCL_GS_KERNEL = 0, /* a generated kernel (fused elementwise, slice, mean) */
  HCL_GS_GEMM,       /* matmul forward, or one of its gradients */
  HCL_GS_COLSUM,     /* bias gradient */
  HCL_GS_AXPY,       /* arg1 += arg0 (value-shaped) */
  HCL_GS_COPY,       /* arg1 = arg0 */
  HCL_GS_ZERO,       /* arg0 = 0 */
  HCL_GS_ZERO_GRAD,  /* the whole parameter gradient = 0 */
  HCL_GS_CUSTOM_F,
  HCL_GS_CUSTOM_B
} hcl_gs_kind;

#define HCL_GSTEP_MAX_ARGS 24
typedef struct hcl_gstep {
  hcl_gs_kind kind;
  hcl_garg arg[HCL_GSTEP_MAX_ARGS];
  size_t n_args;
  size_t space; /* kernel: floats per sample of the iteration space */
  size_t cols;  /* kernel: its columns (the launch is cols x n space/cols x R) */
  int kernel;   /* kernel: index into the graph's kernels */
  /* gemm: C = A op B per replica, rows per sample `rows` (P), see graph_exec */
  int ta, tb, gemm; /* gemm: 0 forward, 1 weight grad, 2 input grad */
  size_t node;      /* the node the step belongs to (errors, gemm shapes) */
  float beta;
  int n_in;         /* custom: inputs among args (then out / dout, din, blocks, their gradients) */
  uint32_t din_set; /* custom backward: din the op writes whole (hcl_graph_io.din_set) */
  int fonly;        /* forward step that only features() needs: forward skips it */
  int by_col;       /* kernel: a work-item per 8 columns and replica, rows in order */
  int alt_kernel;   /* by_col: the activation's plain backward kernel, run with col_sum
                       instead when the batch is large (graph_exec.c) */
} hcl_gstep;

/* Buffers of a one-launch training step: the passes' 6, the loss's 6, the
 * optimiser's 6 and the batch gather's 5 (graph_pass.c). */
#define HCL_GSTEP_ROLES 23

struct hcl_graph {
  hcl_ctx *ctx;
  const hcl_block *blocks;
  size_t n_blocks, n_params, R, x_size, max_batch, out_dim;
  hcl_gnode *nodes;
  size_t n, cap;
  int32_t output;
  int32_t *features; /* features[l - 1]: hidden layer l, -1 none */
  size_t n_features; /* entries of features */
  hcl_status rc;     /* the first builder error */
  char err[512];
  /* compiled (graph_compile) */
  hcl_gvalue *values;
  size_t n_values;
  hcl_gstep *steps;
  size_t n_steps, n_fwd;
  char *src;     /* generated kernels */
  char *cur;     /* the kernel being generated, from its argument list on */
  char **bodies; /* [n_kernels]: each kernel's text, to reuse an equal one */
  size_t n_kernels;
  int variant;         /* the model's graph_variant it was built for (0: the only one) */
  size_t arena_floats; /* planned */
  size_t naive_floats; /* every value its own buffer, for comparison */
  hcl_buf arena;
  cl_program prog;
  cl_kernel *kernels;
  int has_pass;            /* every step can run in a one-launch pass (graph_pass.c) */
  int has_step;            /* and a training step in one (not HIERCL_GRAPH_STEP=0) */
  cl_program pass_prog[3]; /* forward, backward, a whole training step */
  cl_kernel pass[3];
  int *pass_path; /* [4][n_steps]: each product's kernel in the passes (the step: 2 and 3) */
  int step_slot[HCL_GSTEP_ROLES]; /* the training step's kernel argument of each buffer */
  int step_loss;                  /* and the loss kind it was written for */
  int step_gather;                /* and whether it gathers the batch */
  size_t pass_cols, pass_na;      /* columns of the pass arena's values, floats per column */
  size_t pass_fwd_n;              /* the batch of the last forward, when it ran as a pass */
  hcl_buf pass_arena;
};

/* graph_build.c: a new empty graph over the model's blocks (errors go to
 * ctx when it fails). */
hcl_status hcl_graph_new(hcl_ctx *ctx, const hcl_block *blocks, size_t n_blocks, size_t n_params,
                         size_t R, size_t x_size, size_t max_batch, hcl_graph **out);
void hcl_graph_free(hcl_graph *g);
/* The builders of hcl_host_api. */
hcl_tensor hcl_g_input(hcl_graph *g);
hcl_tensor hcl_g_matmul(hcl_graph *g, hcl_tensor a, const char *block);
hcl_tensor hcl_g_matmul_cols(hcl_graph *g, hcl_tensor a, const char *block, size_t first);
hcl_tensor hcl_g_bias(hcl_graph *g, hcl_tensor a, const char *block);
hcl_tensor hcl_g_act(hcl_graph *g, hcl_tensor a, int act, const float *coef, size_t n_coef);
hcl_tensor hcl_g_add(hcl_graph *g, hcl_tensor a, hcl_tensor b);
hcl_tensor hcl_g_mul(hcl_graph *g, hcl_tensor a, hcl_tensor b);
hcl_tensor hcl_g_reshape(hcl_graph *g, hcl_tensor a, size_t positions, size_t channels);
hcl_tensor hcl_g_slice(hcl_graph *g, hcl_tensor a, size_t first, size_t count);
hcl_tensor hcl_g_mean(hcl_graph *g, hcl_tensor a);
hcl_tensor hcl_g_transpose(hcl_graph *g, hcl_tensor a);
hcl_tensor hcl_g_patch(hcl_graph *g, hcl_tensor a, size_t s);
hcl_tensor hcl_g_detach(hcl_graph *g, hcl_tensor a);
hcl_tensor hcl_g_matmul_scaled(hcl_graph *g, hcl_tensor a, const char *block, float alpha);
hcl_tensor hcl_g_bias_scaled(hcl_graph *g, hcl_tensor a, const char *block, float scale);
hcl_tensor hcl_g_custom(hcl_graph *g, const hcl_graph_custom *op, const hcl_tensor *in,
                        size_t n_in);
hcl_status hcl_g_feature(hcl_graph *g, hcl_tensor t, size_t layer);
hcl_status hcl_g_output(hcl_graph *g, hcl_tensor t);

/* graph_fuse.c: users, gradient flags, fused groups and what is stored. */
void hcl_graph_mark(hcl_graph *g);
/* graph_forward.c: forward steps and their kernels' source. */
hcl_status hcl_graph_forward_steps(hcl_graph *g);
/* Start a generated kernel for step s with n_args arguments; its text goes
 * through hcl_graph_src, and kernel_end names it "hcl_g<k>", or points s to
 * an earlier kernel with the same text. */
hcl_status hcl_graph_kernel_begin(hcl_graph *g, hcl_gstep *s, size_t n_args);
hcl_status hcl_graph_kernel_end(hcl_graph *g, hcl_gstep *s);
/* The same for a kernel of the column form (hcl_gstep.by_col): c0 and r are
 * the work-item's first of 8 columns and its replica; the body loops over
 * `rows` itself. */
hcl_status hcl_graph_kernel_begin_cols(hcl_graph *g, hcl_gstep *s, size_t n_args);
/* A float literal of OpenCL C that reads back to the same float: (v f). */
void hcl_graph_lit(char *out, size_t len, float v);
/* The activation of node n (derivative: its derivative) at expression z. */
void hcl_graph_act_expr(const hcl_gnode *n, int derivative, const char *z, char *out, size_t len);
/* graph_grad.c: the reverse-mode steps appended after the forward ones. */
hcl_status hcl_graph_grad_steps(hcl_graph *g);
/* graph_plan.c: liveness of the values and their arena offsets. */
hcl_status hcl_graph_plan(hcl_graph *g);
/* graph_compile.c: the whole pipeline, then the arena and the kernels. */
hcl_status hcl_graph_compile(hcl_graph *g);
/* Allocate the planned arena when the graph has none (after compile, or
 * after the arena was freed while another variant ran). */
hcl_status hcl_graph_arena(hcl_graph *g);

/* graph_exec.c: run steps [from, to) for batch n (x: the input, out: the
 * output, dout, grad: the gradients; params: [R, n_params]). */
hcl_status hcl_graph_run(hcl_graph *g, size_t from, size_t to, hcl_buf params, hcl_buf x,
                         hcl_buf out, hcl_buf dout, hcl_buf grad, size_t n);
/* The forward steps the output needs (not those only features() reads). */
hcl_status hcl_graph_forward(hcl_graph *g, hcl_buf params, hcl_buf x, hcl_buf out, size_t n);
/* The forward step after which node t's value is complete. */
size_t hcl_graph_step_of(const hcl_graph *g, int32_t t);

/* graph_util.c: step and value helpers shared by the passes. */
int hcl_graph_new_value(hcl_graph *g, int ext, size_t cols);
hcl_gstep *hcl_graph_new_step(hcl_graph *g, hcl_gs_kind kind, size_t node);
hcl_garg hcl_ga(int kind, int id);
/* Append printf text to the kernel being generated. */
hcl_status hcl_graph_src(hcl_graph *g, const char *fmt, ...);

/* graph_pass.c: whether every step can run inside a one-launch pass (CPUs
 * only, not with HIERCL_GRAPH_PASS=0): sets has_pass. */
hcl_status hcl_graph_pass_check(hcl_graph *g);
/* Run pass `which` (0 forward, 1 backward) as one launch when the graph has
 * passes and batch n suits the pass (built at its first batch): 1 with *rc
 * the status of the build and launch, else 0 (run the steps). */
int hcl_graph_pass_run(hcl_graph *g, int which, hcl_buf params, hcl_buf x, hcl_buf out,
                       hcl_buf dout, hcl_buf grad, size_t n, hcl_status *rc);
struct hcl_gather_launch;
struct hcl_loss_launch;
struct hcl_steps_launch;
struct hcl_optim_launch;
/* A whole training step as one launch: the prepared gather of the batch into
 * x (NULL: x holds it), the forward pass on x, the prepared loss (its f the
 * graph's output `out`, its dout `dout`), the backward pass into grad and
 * the prepared optimiser update of params, where a pass would run for both
 * passes at batch n: 1 with *rc the status, else 0 (nothing ran: run them
 * apart). The same bits as the separate launches. */
int hcl_graph_step_run(hcl_graph *g, hcl_buf params, hcl_buf x, hcl_buf out, hcl_buf dout,
                       hcl_buf grad, size_t n, const struct hcl_gather_launch *gather,
                       const struct hcl_loss_launch *loss, const struct hcl_optim_launch *opt,
                       const struct hcl_steps_launch *steps, hcl_status *rc);

/* graph_model.c: the descriptor of a graph-only model plugin d (vtable with
 * graph and without forward/backward) with a complete vtable whose forward,
 * backward and features run the graph; static storage, never freed. */
hcl_status hcl_graph_wrap(hcl_ctx *ctx, const char *path, const hcl_plugin_desc *d,
                          const hcl_plugin_desc **out);
/* A training step of the model (self, of vtable vt) as one launch, the
 * batch's gather included when gather is not NULL, when vt is a graph
 * model's made by hcl_graph_wrap, its hooks are idle (graph_plain) and its
 * graph runs batch n as passes: 1 with *rc the status, else 0 and nothing
 * ran (the caller runs gather, forward, loss, backward and optimiser).
 * After it, a backward needs a new forward. */
int hcl_graph_model_step(const hcl_model_vt *vt, void *self, hcl_buf params, hcl_buf x, size_t n,
                         hcl_buf out, hcl_buf dout, hcl_buf grad,
                         const struct hcl_gather_launch *gather, const struct hcl_loss_launch *loss,
                         const struct hcl_optim_launch *opt, const struct hcl_steps_launch *steps,
                         hcl_status *rc);
/* Releases what hcl_graph_wrap gave d (a no-op for a desc it did not make):
 * called before the plugin is unloaded, so a long-lived process that loads
 * and unloads plugins never runs out of wrapper slots. */
void hcl_graph_unwrap(const hcl_plugin_desc *d);

#endif
