/* Model graphs: every built-in op's forward against a float64 host
 * evaluation and its gradient (reverse mode, on the device) against float64
 * central finite differences of sum(dout . out), with R = 3 replicas holding
 * different parameters and a batch below max_batch; custom ops (a correct
 * backward passes, a wrong one is caught); shape errors; fusion and buffer
 * planning. */
#include "graph.h"
#include "support/hcl_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny description both the graph and the host evaluation read ----- */
enum {
  T_IN,
  T_MM,
  T_BIAS,
  T_ACT,
  T_ADD,
  T_MUL,
  T_RESHAPE,
  T_SLICE,
  T_MEAN,
  T_CUSTOM,
  T_TRANSPOSE,
  T_MMC,
  T_PATCH, /* .P: the patch size s */
  T_MMS,   /* scaled matmul, factor coef[0] */
  T_BIASS  /* scaled bias, factor coef[0] */
};
typedef struct top {
  int kind, a, b; /* inputs: indices of earlier ops */
  int blk;        /* T_MM, T_MMC, T_BIAS: block index */
  int act;
  float coef[4];
  size_t n_coef, P, C, first; /* T_RESHAPE: P, C; T_SLICE: first, C; T_MMC: first column */
} top;
typedef struct tblock {
  const char *name;
  size_t rows, cols;
} tblock;

typedef struct tcase {
  const top *ops;
  size_t n_ops, x_size;
  const tblock *blocks;
  size_t n_blocks;
  int wrong_custom; /* custom op with a wrong backward */
  int exact;        /* the blocks cover every parameter float */
} tcase;

/* ---- the custom op: out = (c0 sum_j v_j^3, c1 sum_j j v_j^2) per sample,
 * c = 1 or the parameter block "cs" [2, 1] ------------------------------ */
static const char custom_src[] =
    "float cube_c(__global const float *p, ulong po, ulong ps, int has_p, size_t r, int k) {\n"
    "  return has_p ? p[po + r * ps + k] : 1.0f;\n"
    "}\n"
    "__kernel void cube_f(__global const float *in, ulong io, ulong cols, ulong n,\n"
    "                     __global float *out, ulong oo, __global const float *p, ulong po,\n"
    "                     ulong ps, int has_p) {\n"
    "  size_t s = get_global_id(0), r = s / n;\n"
    "  float a = 0.0f, b = 0.0f;\n"
    "  for (size_t j = 0; j < cols; j++) {\n"
    "    float v = in[io + s * cols + j];\n"
    "    a += v * v * v;\n"
    "    b += (float)j * v * v;\n"
    "  }\n"
    "  out[oo + 2 * s] = cube_c(p, po, ps, has_p, r, 0) * a;\n"
    "  out[oo + 2 * s + 1] = cube_c(p, po, ps, has_p, r, 1) * b;\n"
    "}\n"
    "__kernel void cube_b(__global const float *in, ulong io, ulong cols, ulong n,\n"
    "                     __global const float *d, ulong dof, __global float *din, ulong dio,\n"
    "                     float k, __global const float *p, ulong po, ulong ps, int has_p,\n"
    "                     int set) {\n"
    "  size_t e = get_global_id(0), s = e / cols, j = e % cols, r = s / n;\n"
    "  float v = in[io + e];\n"
    "  din[dio + e] = (set ? 0.0f : din[dio + e]) +\n"
    "                 d[dof + 2 * s] * cube_c(p, po, ps, has_p, r, 0) * k * v * v +\n"
    "                 d[dof + 2 * s + 1] * cube_c(p, po, ps, has_p, r, 1) * 2.0f * (float)j * v;\n"
    "}\n"
    "__kernel void cube_pg(__global const float *in, ulong io, ulong cols, ulong n,\n"
    "                      __global const float *d, ulong dof, __global float *dp, ulong dpo,\n"
    "                      ulong ps) {\n"
    "  size_t r = get_global_id(0);\n"
    "  float ga = 0.0f, gb = 0.0f;\n"
    "  for (size_t s = r * n; s < (r + 1) * n; s++) {\n"
    "    float a = 0.0f, b = 0.0f;\n"
    "    for (size_t j = 0; j < cols; j++) {\n"
    "      float v = in[io + s * cols + j];\n"
    "      a += v * v * v;\n"
    "      b += (float)j * v * v;\n"
    "    }\n"
    "    ga += d[dof + 2 * s] * a;\n"
    "    gb += d[dof + 2 * s + 1] * b;\n"
    "  }\n"
    "  dp[dpo + r * ps] += ga;\n"
    "  dp[dpo + r * ps + 1] += gb;\n"
    "}\n";

typedef struct cube {
  cl_kernel f, b, pg;
  float k; /* 3: the true derivative of v^3; else wrong */
} cube;

/* Offset in floats of a buffer region; a has_p flag and a stand-in buffer
 * when the op has no parameter block. */
static cl_ulong fo(hcl_buf b) { return b.offset / sizeof(float); }

static hcl_status cube_forward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  cube *c = user;
  cl_int has_p = io->n_blocks > 0;
  hcl_buf p = has_p ? io->param[0] : io->in[0];
  cl_ulong o_in = fo(io->in[0]), cl = io->cols[0], n = io->n, oo = fo(io->out), po = fo(p),
           ps = io->param_stride;
  hcl_arg a[] = {HCL_ARG(io->in[0].mem),
                 HCL_ARG(o_in),
                 HCL_ARG(cl),
                 HCL_ARG(n),
                 HCL_ARG(io->out.mem),
                 HCL_ARG(oo),
                 HCL_ARG(p.mem),
                 HCL_ARG(po),
                 HCL_ARG(ps),
                 HCL_ARG(has_p)};
  size_t gws = io->R * io->n;
  return hcl_run_kernel(ctx, c->f, 1, &gws, NULL, "cube_f", 10, a);
}

static hcl_status cube_backward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  cube *c = user;
  cl_int has_p = io->n_blocks > 0;
  hcl_buf p = has_p ? io->param[0] : io->in[0];
  cl_ulong o_in = fo(io->in[0]), cl = io->cols[0], n = io->n, dof = fo(io->out), po = fo(p),
           ps = io->param_stride;
  if (io->din[0].mem) {
    cl_ulong dio = fo(io->din[0]);
    cl_int set = (cl_int)(io->din_set & 1u); /* only ops with HCL_GCUSTOM_DIN_SET see it set */
    hcl_arg a[] = {HCL_ARG(io->in[0].mem),
                   HCL_ARG(o_in),
                   HCL_ARG(cl),
                   HCL_ARG(n),
                   HCL_ARG(io->out.mem),
                   HCL_ARG(dof),
                   HCL_ARG(io->din[0].mem),
                   HCL_ARG(dio),
                   HCL_ARG(c->k),
                   HCL_ARG(p.mem),
                   HCL_ARG(po),
                   HCL_ARG(ps),
                   HCL_ARG(has_p),
                   HCL_ARG(set)};
    size_t gws = io->R * io->n * io->cols[0];
    HCL_TRY(hcl_run_kernel(ctx, c->b, 1, &gws, NULL, "cube_b", 14, a));
  }
  if (!has_p) return HCL_OK;
  cl_ulong dpo = fo(io->dparam[0]);
  hcl_arg a[] = {HCL_ARG(io->in[0].mem),
                 HCL_ARG(o_in),
                 HCL_ARG(cl),
                 HCL_ARG(n),
                 HCL_ARG(io->out.mem),
                 HCL_ARG(dof),
                 HCL_ARG(io->dparam[0].mem),
                 HCL_ARG(dpo),
                 HCL_ARG(ps)};
  size_t gws = io->R;
  return hcl_run_kernel(ctx, c->pg, 1, &gws, NULL, "cube_pg", 9, a);
}

static cube g_cube;
static const char *const cube_blocks[] = {"cs", NULL};
static const hcl_graph_custom cube_op = {.struct_size = sizeof cube_op,
                                         .name = "cube",
                                         .out_channels = 2,
                                         .user = &g_cube,
                                         .forward = cube_forward,
                                         .backward = cube_backward};
static const hcl_graph_custom cube_param_op = {.struct_size = sizeof cube_param_op,
                                               .name = "cube_scaled",
                                               .out_channels = 2,
                                               .user = &g_cube,
                                               .forward = cube_forward,
                                               .backward = cube_backward,
                                               .blocks = cube_blocks};
/* the same op, writing a fresh input gradient itself (no zeroing pass) */
static const hcl_graph_custom cube_set_op = {.struct_size = sizeof cube_set_op,
                                             .name = "cube_set",
                                             .out_channels = 2,
                                             .user = &g_cube,
                                             .forward = cube_forward,
                                             .backward = cube_backward,
                                             .flags = HCL_GCUSTOM_DIN_SET};
static int g_cube_set; /* T_CUSTOM builds cube_set_op */

/* ---- float64 host evaluation --------------------------------------------- */
static double act_f(const top *o, double z) {
  switch (o->act) {
  case HCL_GACT_RELU: return z > 0 ? z : 0;
  case HCL_GACT_LEAKY_RELU: return z > 0 ? z : (o->n_coef ? o->coef[0] : 0.1) * z;
  case HCL_GACT_QUADRATIC: return z * z;
  case HCL_GACT_TANH: return tanh(z);
  case HCL_GACT_GELU: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
  default: {
    double s = 0, p = 1;
    for (size_t i = 0; i < o->n_coef; i++, p *= z) s += o->coef[i] * p;
    return s;
  }
  }
}

typedef struct shape {
  size_t P, C;
} shape;

/* Shapes of every op, as the graph should infer them. */
static void shapes(const tcase *c, shape *s) {
  for (size_t i = 0; i < c->n_ops; i++) {
    const top *o = &c->ops[i];
    shape a = i ? s[o->a] : (shape){1, c->x_size};
    switch (o->kind) {
    case T_IN: s[i] = (shape){1, c->x_size}; break;
    case T_MM:
    case T_MMC: s[i] = (shape){a.P, c->blocks[o->blk].rows}; break;
    case T_RESHAPE: s[i] = (shape){o->P, o->C}; break;
    case T_SLICE: s[i] = (shape){a.P, o->C}; break;
    case T_MEAN: s[i] = (shape){1, a.C}; break;
    case T_CUSTOM: s[i] = (shape){1, 2}; break;
    case T_TRANSPOSE: s[i] = (shape){a.C, a.P}; break;
    case T_PATCH: s[i] = (shape){a.P / o->P, a.C * o->P}; break;
    case T_MMS: s[i] = (shape){a.P, c->blocks[o->blk].rows}; break;
    default: s[i] = a;
    }
  }
}

/* out [n, D] of one replica with parameters p (offsets per block). */
static void host_forward(const tcase *c, const double *p, const size_t *off, const double *x,
                         size_t n, double *out) {
  shape s[32];
  double *v[32];
  shapes(c, s);
  for (size_t i = 0; i < c->n_ops; i++) {
    const top *o = &c->ops[i];
    size_t F = s[i].P * s[i].C;
    v[i] = calloc(n * F, sizeof(double));
    const double *A = i ? v[o->a] : NULL, *B = o->kind == T_ADD || o->kind == T_MUL ? v[o->b] : 0;
    size_t aF = i ? s[o->a].P * s[o->a].C : 0, aC = i ? s[o->a].C : 0;
    for (size_t k = 0; k < n; k++)
      for (size_t e = 0; e < F; e++) {
        size_t pp = e / s[i].C, ch = e % s[i].C;
        double *y = &v[i][k * F + e];
        switch (o->kind) {
        case T_IN: *y = x[k * F + e]; break;
        case T_MM:
          for (size_t j = 0; j < aC; j++)
            *y += A[k * aF + pp * aC + j] * p[off[o->blk] + ch * aC + j];
          break;
        case T_MMC: /* columns first .. first + aC - 1 of the wider block */
          for (size_t j = 0; j < aC; j++)
            *y += A[k * aF + pp * aC + j] *
                  p[off[o->blk] + ch * c->blocks[o->blk].cols + o->first + j];
          break;
        case T_BIAS: *y = A[k * F + e] + p[off[o->blk] + ch]; break;
        case T_MMS:
          for (size_t j = 0; j < aC; j++)
            *y += o->coef[0] * A[k * aF + pp * aC + j] * p[off[o->blk] + ch * aC + j];
          break;
        case T_BIASS: *y = A[k * F + e] + o->coef[0] * p[off[o->blk] + ch]; break;
        case T_PATCH: /* column c*s + j of patch pp is position pp*s + j, channel c */
          *y = A[k * aF + (pp * o->P + ch % o->P) * aC + ch / o->P];
          break;
        case T_ACT: *y = act_f(o, A[k * F + e]); break;
        case T_ADD: *y = A[k * F + e] + B[k * F + e]; break;
        case T_MUL: *y = A[k * F + e] * B[k * F + e]; break;
        case T_RESHAPE: *y = A[k * F + e]; break;
        case T_SLICE: *y = A[k * aF + pp * aC + o->first + ch]; break;
        case T_MEAN:
          for (size_t q = 0; q < s[o->a].P; q++) *y += A[k * aF + q * aC + ch] / (double)s[o->a].P;
          break;
        case T_TRANSPOSE: *y = A[k * aF + ch * aC + pp]; break;
        case T_CUSTOM:
          for (size_t j = 0; j < aF; j++) {
            double t = A[k * aF + j];
            *y += ch == 0 ? t * t * t : (double)j * t * t;
          }
          if (o->b) *y *= p[off[o->blk] + ch]; /* the scaled op: block cs */
          break;
        }
      }
  }
  size_t last = c->n_ops - 1, D = s[last].C;
  memcpy(out, v[last], n * D * sizeof(double));
  for (size_t i = 0; i < c->n_ops; i++) free(v[i]);
}

/* ---- building the graph from the description ----------------------------- */
static hcl_status build(hcl_graph *g, const tcase *c) {
  hcl_tensor t[32];
  for (size_t i = 0; i < c->n_ops; i++) {
    const top *o = &c->ops[i];
    const char *blk = o->kind == T_MM || o->kind == T_MMC || o->kind == T_BIAS ||
                              o->kind == T_MMS || o->kind == T_BIASS
                          ? c->blocks[o->blk].name
                          : NULL;
    hcl_tensor a = i ? t[o->a] : -1, b = o->kind == T_ADD || o->kind == T_MUL ? t[o->b] : -1;
    switch (o->kind) {
    case T_IN: t[i] = hcl_g_input(g); break;
    case T_MM: t[i] = hcl_g_matmul(g, a, blk); break;
    case T_MMC: t[i] = hcl_g_matmul_cols(g, a, blk, o->first); break;
    case T_BIAS: t[i] = hcl_g_bias(g, a, blk); break;
    case T_ACT: t[i] = hcl_g_act(g, a, o->act, o->coef, o->n_coef); break;
    case T_ADD: t[i] = hcl_g_add(g, a, b); break;
    case T_MUL: t[i] = hcl_g_mul(g, a, b); break;
    case T_RESHAPE: t[i] = hcl_g_reshape(g, a, o->P, o->C); break;
    case T_SLICE: t[i] = hcl_g_slice(g, a, o->first, o->C); break;
    case T_MEAN: t[i] = hcl_g_mean(g, a); break;
    case T_CUSTOM:
      t[i] = hcl_g_custom(g, o->b ? &cube_param_op : g_cube_set ? &cube_set_op : &cube_op, &a, 1);
      break;
    case T_TRANSPOSE: t[i] = hcl_g_transpose(g, a); break;
    case T_PATCH: t[i] = hcl_g_patch(g, a, o->P); break;
    case T_MMS: t[i] = hcl_g_matmul_scaled(g, a, blk, o->coef[0]); break;
    case T_BIASS: t[i] = hcl_g_bias_scaled(g, a, blk, o->coef[0]); break;
    }
  }
  return hcl_g_output(g, t[c->n_ops - 1]);
}

static double urand(double lo, double hi) {
  static uint64_t s = 0x9e3779b97f4a7c15ull;
  return hcl_test_xorshift(&s, lo, hi);
}

enum { R = 3, N = 5, MAX_BATCH = 7 };

static size_t g_bwd_gemms; /* the backward GEMM steps of the last check_case */
static unsigned g_frozen;  /* bit b: check_case makes block b frozen (trainable = 0) */

/* Forward and gradient of case c on the device against the host; returns
 * the largest gradient error relative to the gradient's scale. */
static double check_case(const tcase *c, const char *what) {
  hcl_ctx *ctx = hcl_test_ctx();
  hcl_block blocks[16];
  size_t off[16], np = 0;
  for (size_t b = 0; b < c->n_blocks; b++) {
    off[b] = np;
    blocks[b] = (hcl_block){c->blocks[b].name, np, c->blocks[b].rows,
                            c->blocks[b].cols, 0,  !((g_frozen >> b) & 1)};
    np += c->blocks[b].rows * c->blocks[b].cols;
  }
  if (!c->exact) np += 3; /* floats no block covers: their gradient must be written (0) */
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(ctx, blocks, c->n_blocks, np, R, c->x_size, MAX_BATCH, &g),
                   HCL_OK);
  assert_int_equal(build(g, c), HCL_OK);
  g_cube.k = c->wrong_custom ? 2.0f : 3.0f;
  assert_int_equal(hcl_graph_compile(g), HCL_OK);
  /* the plan must never rely on what the arena held before */
  assert_int_equal(hcl_fill(ctx, g->arena, 7.0f, g->arena_floats), HCL_OK);
  g_bwd_gemms = 0;
  for (size_t s = g->n_fwd; s < g->n_steps; s++) g_bwd_gemms += g->steps[s].kind == HCL_GS_GEMM;
  size_t D = g->out_dim;
  float *p = hcl_test_random_floats(urand, R * np, -0.8, 0.8); /* replicas differ */
  float *x = hcl_test_random_floats(urand, R * N * c->x_size, -1, 1);
  float *dout = hcl_test_random_floats(urand, R * N * D, -1, 1);
  hcl_buf pb = hcl_test_upload(ctx, p, R * np), xb = hcl_test_upload(ctx, x, R * N * c->x_size);
  hcl_buf db = hcl_test_upload(ctx, dout, R * N * D), ob, gb;
  float *seven = malloc(R * np * sizeof *seven);
  for (size_t i = 0; i < R * np; i++) seven[i] = 7.0f; /* backward must overwrite */
  gb = hcl_test_upload(ctx, seven, R * np);
  assert_int_equal(hcl_buf_alloc(ctx, R * N * D * sizeof(float), &ob), HCL_OK);
  assert_int_equal(hcl_graph_run(g, 0, g->n_fwd, pb, xb, ob, (hcl_buf){0}, (hcl_buf){0}, N),
                   HCL_OK);
  assert_int_equal(hcl_graph_run(g, g->n_fwd, g->n_steps, pb, xb, ob, db, gb, N), HCL_OK);
  float *out = hcl_test_download(ctx, ob, R * N * D), *grad = hcl_test_download(ctx, gb, R * np);
  double worst = 0;
  for (size_t r = 0; r < R; r++) {
    double *pd = hcl_test_to_double(p + r * np, np),
           *xd = hcl_test_to_double(x + r * N * c->x_size, N * c->x_size);
    double *o = malloc(N * D * sizeof *o), *fd = malloc(np * sizeof *fd);
    host_forward(c, pd, off, xd, N, o);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: forward, replica %zu", what, r);
    hcl_test_assert_close(out + r * N * D, o, N * D, 1e-4, msg);
    for (size_t j = 0; j < np; j++) { /* central differences of sum(dout . out) */
      double h = 1e-5, keep = pd[j], lp = 0, lm = 0;
      pd[j] = keep + h;
      host_forward(c, pd, off, xd, N, o);
      for (size_t i = 0; i < N * D; i++) lp += dout[r * N * D + i] * o[i];
      pd[j] = keep - h;
      host_forward(c, pd, off, xd, N, o);
      for (size_t i = 0; i < N * D; i++) lm += dout[r * N * D + i] * o[i];
      pd[j] = keep;
      fd[j] = (lp - lm) / (2 * h);
    }
    for (size_t b = 0; b < c->n_blocks; b++) /* a frozen block's gradient is 0 */
      if ((g_frozen >> b) & 1)
        for (size_t j = 0; j < c->blocks[b].rows * c->blocks[b].cols; j++) fd[off[b] + j] = 0;
    double scale = hcl_test_max_abs(fd, np) + 1e-3;
    for (size_t j = 0; j < np; j++) {
      double e = fabs(grad[r * np + j] - fd[j]) / scale;
      if (e > worst) worst = e;
    }
    free(pd), free(xd), free(o), free(fd);
  }
  hcl_buf_free(ctx, &pb), hcl_buf_free(ctx, &xb), hcl_buf_free(ctx, &db);
  hcl_buf_free(ctx, &ob), hcl_buf_free(ctx, &gb);
  free(p), free(x), free(dout), free(seven), free(out), free(grad);
  hcl_graph_free(g);
  return worst;
}

/* Backward steps of case c's graph of kind `kind`, compiled as check_case
 * does. */
static size_t backward_steps(const tcase *c, hcl_gs_kind kind) {
  hcl_ctx *ctx = hcl_test_ctx();
  hcl_block blocks[16];
  size_t np = 0, count = 0;
  for (size_t b = 0; b < c->n_blocks; b++) {
    blocks[b] = (hcl_block){c->blocks[b].name, np, c->blocks[b].rows, c->blocks[b].cols, 0, 1};
    np += c->blocks[b].rows * c->blocks[b].cols;
  }
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(ctx, blocks, c->n_blocks, np, R, c->x_size, MAX_BATCH, &g),
                   HCL_OK);
  assert_int_equal(build(g, c), HCL_OK);
  assert_int_equal(hcl_graph_compile(g), HCL_OK);
  for (size_t i = g->n_fwd; i < g->n_steps; i++) count += g->steps[i].kind == kind;
  hcl_graph_free(g);
  return count;
}

#define GRAD_TOL 2e-4
#define NEED_CTX()                                                                                 \
  do {                                                                                             \
    if (!hcl_test_ctx()) skip();                                                                   \
  } while (0)

static const tblock mlp_blocks[] = {{"w1", 6, 4}, {"b1", 6, 1}, {"w2", 2, 6}, {"b2", 2, 1}};

/* matmul, bias and each activation: x -> act(x W1^T + b1) W2^T + b2. */
static void test_activations(void **state) {
  (void)state;
  NEED_CTX();
  static const struct {
    int act;
    float coef[4];
    size_t n;
    const char *name;
  } acts[] = {{HCL_GACT_RELU, {0}, 0, "relu"},
              {HCL_GACT_LEAKY_RELU, {0}, 0, "leaky_relu"},
              {HCL_GACT_LEAKY_RELU, {0.25f}, 1, "leaky_relu 0.25"},
              {HCL_GACT_QUADRATIC, {0}, 0, "quadratic"},
              {HCL_GACT_TANH, {0}, 0, "tanh"},
              {HCL_GACT_GELU, {0}, 0, "gelu"},
              {HCL_GACT_POLY, {0.1f, 0.5f, -0.3f, 0.2f}, 4, "polynomial"}};
  for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
    top ops[] = {{.kind = T_IN},
                 {.kind = T_MM, .a = 0, .blk = 0},
                 {.kind = T_BIAS, .a = 1, .blk = 1},
                 {.kind = T_ACT, .a = 2, .act = acts[k].act, .n_coef = acts[k].n},
                 {.kind = T_MM, .a = 3, .blk = 2},
                 {.kind = T_BIAS, .a = 4, .blk = 3}};
    memcpy(ops[3].coef, acts[k].coef, sizeof ops[3].coef);
    tcase c = {ops, 6, 4, mlp_blocks, 4, 0, 0};
    double e = check_case(&c, acts[k].name);
    if (!(e < GRAD_TOL)) fail_msg("%s: gradient error %.3g", acts[k].name, e);
  }
}

/* Residual add, elementwise product, an operand used twice, a block used by
 * two matmuls (its gradient adds up). */
static void test_residual_mul_shared(void **state) {
  (void)state;
  NEED_CTX();
  static const tblock b[] = {{"w1", 4, 4}, {"b1", 4, 1}, {"sq", 4, 4}, {"w2", 2, 4}};
  static const top ops[] = {{.kind = T_IN},
                            {.kind = T_MM, .a = 0, .blk = 0},
                            {.kind = T_BIAS, .a = 1, .blk = 1},
                            {.kind = T_ACT, .a = 2, .act = HCL_GACT_TANH},
                            {.kind = T_ADD, .a = 3, .b = 0},  /* residual from the input */
                            {.kind = T_MM, .a = 4, .blk = 2}, /* sq ... */
                            {.kind = T_MUL, .a = 5, .b = 3},  /* mask-like product */
                            {.kind = T_MM, .a = 6, .blk = 2}, /* ... sq again */
                            {.kind = T_ADD, .a = 7, .b = 7},  /* same operand twice */
                            {.kind = T_MUL, .a = 8, .b = 4},
                            {.kind = T_ADD, .a = 9, .b = 3},
                            {.kind = T_MM, .a = 10, .blk = 3}};
  tcase c = {ops, sizeof ops / sizeof ops[0], 4, b, 4, 0, 0};
  double e = check_case(&c, "residual/mul/shared");
  assert_true(e < GRAD_TOL);
}

/* Patch convolution (reshape + matmul over channels), slice, mean over
 * positions, and a block outside the graph (gradient 0). */
static void test_patch_conv_slice_mean(void **state) {
  (void)state;
  NEED_CTX();
  static const tblock b[] = {
      {"conv", 5, 6}, {"cb", 5, 1}, {"out", 2, 3}, {"ob", 2, 1}, {"unused", 2, 2}};
  static const top ops[] = {{.kind = T_IN}, /* [1, 12] */
                            {.kind = T_RESHAPE, .a = 0, .P = 4, .C = 3},
                            {.kind = T_RESHAPE, .a = 1, .P = 2, .C = 6}, /* patches of 2 */
                            {.kind = T_MM, .a = 2, .blk = 0},            /* [2, 5] */
                            {.kind = T_BIAS, .a = 3, .blk = 1},
                            {.kind = T_ACT, .a = 4, .act = HCL_GACT_QUADRATIC},
                            {.kind = T_SLICE, .a = 5, .first = 1, .C = 3}, /* [2, 3] */
                            {.kind = T_MEAN, .a = 6},                      /* [1, 3] */
                            {.kind = T_MM, .a = 7, .blk = 2},
                            {.kind = T_BIAS, .a = 8, .blk = 3}};
  tcase c = {ops, sizeof ops / sizeof ops[0], 12, b, 5, 0, 0};
  double e = check_case(&c, "patch conv/slice/mean");
  assert_true(e < GRAD_TOL);
  /* a channels-first input [3 channels, 4 positions] made positions-first
   * by a transpose, then the same patch convolution; tanh so the transpose
   * gradient meets a non-constant derivative */
  static const top cf[] = {{.kind = T_IN},
                           {.kind = T_RESHAPE, .a = 0, .P = 3, .C = 4},
                           {.kind = T_TRANSPOSE, .a = 1},
                           {.kind = T_ACT, .a = 2, .act = HCL_GACT_TANH},
                           {.kind = T_RESHAPE, .a = 3, .P = 2, .C = 6},
                           {.kind = T_MM, .a = 4, .blk = 0},
                           {.kind = T_TRANSPOSE, .a = 5}, /* [5, 2]: a gradient through it */
                           {.kind = T_MEAN, .a = 6},      /* [1, 2] */
                           {.kind = T_MM, .a = 7, .blk = 4}};
  tcase c2 = {cf, sizeof cf / sizeof cf[0], 12, b, 5, 0, 0};
  e = check_case(&c2, "channels-first patch conv");
  assert_true(e < GRAD_TOL);
}

/* Patches in PyTorch's Conv1d weight order (g_patch), scaled products and
 * biases (the mean-field factors of deep_cnn), patches of patches, and a
 * patch read through a transpose: of the channels-first input (folded into
 * one gather) and of a computed tensor (its gradient goes through both). */
static void test_patch_scaled(void **state) {
  (void)state;
  NEED_CTX();
  static const tblock b[] = {{"conv", 5, 6}, {"cb", 5, 1}, {"conv2", 3, 10}, {"out", 2, 3},
                             {"w0", 4, 6},   {"pw", 5, 8}, {"unused", 1, 2}};
  static const top cl[] = {{.kind = T_IN}, /* [1, 12] */
                           {.kind = T_RESHAPE, .a = 0, .P = 4, .C = 3},
                           {.kind = T_PATCH, .a = 1, .P = 2},                  /* [2, 6] */
                           {.kind = T_MMS, .a = 2, .blk = 0, .coef = {0.37f}}, /* [2, 5] */
                           {.kind = T_BIASS, .a = 3, .blk = 1, .coef = {0.1f}},
                           {.kind = T_ACT, .a = 4, .act = HCL_GACT_TANH},
                           {.kind = T_PATCH, .a = 5, .P = 2},                  /* [1, 10] */
                           {.kind = T_MMS, .a = 6, .blk = 2, .coef = {-1.5f}}, /* [1, 3] */
                           {.kind = T_ACT, .a = 7, .act = HCL_GACT_TANH},
                           {.kind = T_MMS, .a = 8, .blk = 3, .coef = {0.25f}}};
  tcase c = {cl, sizeof cl / sizeof cl[0], 12, b, 7, 0, 0};
  double e = check_case(&c, "patches, scaled matmul and bias");
  if (!(e < GRAD_TOL)) fail_msg("patches, scaled: gradient error %.3g", e);
  static const top cf[] = {{.kind = T_IN},
                           {.kind = T_RESHAPE, .a = 0, .P = 3, .C = 4}, /* [3 channels, 4] */
                           {.kind = T_TRANSPOSE, .a = 1},               /* [4, 3] */
                           {.kind = T_PATCH, .a = 2, .P = 2},           /* [2, 6] */
                           {.kind = T_MMS, .a = 3, .blk = 0, .coef = {0.5f}},
                           {.kind = T_BIASS, .a = 4, .blk = 1, .coef = {0.1f}},
                           {.kind = T_ACT, .a = 5, .act = HCL_GACT_TANH},
                           {.kind = T_MEAN, .a = 6}, /* [1, 5] */
                           {.kind = T_RESHAPE, .a = 7, .P = 1, .C = 5},
                           {.kind = T_ACT, .a = 8, .act = HCL_GACT_QUADRATIC}};
  tcase c2 = {cf, sizeof cf / sizeof cf[0], 12, b, 7, 0, 0};
  e = check_case(&c2, "patch of the transposed input");
  if (!(e < GRAD_TOL)) fail_msg("patch of the transposed input: gradient error %.3g", e);
  static const top ct[] = {{.kind = T_IN},
                           {.kind = T_RESHAPE, .a = 0, .P = 2, .C = 6},
                           {.kind = T_MM, .a = 1, .blk = 4}, /* [2, 4] */
                           {.kind = T_ACT, .a = 2, .act = HCL_GACT_TANH},
                           {.kind = T_TRANSPOSE, .a = 3},     /* [4, 2] */
                           {.kind = T_PATCH, .a = 4, .P = 4}, /* [1, 8] */
                           {.kind = T_MM, .a = 5, .blk = 5}};
  tcase c3 = {ct, sizeof ct / sizeof ct[0], 12, b, 7, 0, 0};
  e = check_case(&c3, "patch of a transposed hidden layer");
  if (!(e < GRAD_TOL)) fail_msg("patch of a transposed hidden layer: gradient error %.3g", e);
}

/* The patch of a transposed input is one gather (no stored transpose), and
 * nodes only features read do not run in forward: deep_cnn's first layer
 * and its channels-first features. */
static void test_patch_fold_feature_steps(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  hcl_block blocks[] = {{"w", 0, 4, 6, 0, 1}};
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(ctx, blocks, 1, 24, 2, 12, 8, &g), HCL_OK);
  hcl_tensor x = hcl_g_transpose(g, hcl_g_reshape(g, hcl_g_input(g), 3, 4));
  hcl_tensor h = hcl_g_act(g, hcl_g_matmul(g, hcl_g_patch(g, x, 2), "w"), HCL_GACT_RELU, NULL, 0);
  hcl_tensor f = hcl_g_transpose(g, h); /* features: channels first */
  assert_int_equal(hcl_g_feature(g, f, 1), HCL_OK);
  assert_int_equal(hcl_g_output(g, hcl_g_mean(g, h)), HCL_OK);
  assert_int_equal(hcl_graph_compile(g), HCL_OK);
  /* patch (through the transpose), product, ReLU, the feature transpose, mean */
  assert_int_equal(g->n_fwd, 5);
  size_t fonly = 0;
  for (size_t s = 0; s < g->n_fwd; s++) fonly += (size_t)g->steps[s].fonly;
  assert_int_equal(fonly, 1);
  assert_true(g->steps[hcl_graph_step_of(g, f)].fonly);
  hcl_graph_free(g);
}

/* g_detach: the same forward, the gradients above it unchanged (bit for
 * bit), none below it (its blocks 0) and no backward work for them. */
static void test_detach(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  hcl_block blocks[] = {{"w1", 0, 5, 4, 0, 1}, {"w2", 20, 3, 5, 1, 1}, {"w3", 35, 2, 3, 2, 1}};
  enum { NP = 41 };
  float *p = hcl_test_random_floats(urand, R * NP, -0.8, 0.8);
  float *x = hcl_test_random_floats(urand, R * N * 4, -1, 1);
  float *dout = hcl_test_random_floats(urand, R * N * 2, -1, 1);
  hcl_buf pb = hcl_test_upload(ctx, p, R * NP), xb = hcl_test_upload(ctx, x, R * N * 4);
  hcl_buf db = hcl_test_upload(ctx, dout, R * N * 2);
  float *out[2], *grad[2];
  size_t bwd[2];
  for (int d = 0; d < 2; d++) {
    hcl_graph *g;
    assert_int_equal(hcl_graph_new(ctx, blocks, 3, NP, R, 4, MAX_BATCH, &g), HCL_OK);
    hcl_tensor h = hcl_g_act(g, hcl_g_matmul(g, hcl_g_input(g), "w1"), HCL_GACT_TANH, NULL, 0);
    if (d) h = hcl_g_detach(g, h);
    h = hcl_g_act(g, hcl_g_matmul(g, h, "w2"), HCL_GACT_TANH, NULL, 0);
    assert_int_equal(hcl_g_output(g, hcl_g_matmul(g, h, "w3")), HCL_OK);
    assert_int_equal(hcl_graph_compile(g), HCL_OK);
    bwd[d] = g->n_steps - g->n_fwd;
    hcl_buf ob, gb = hcl_test_upload(ctx, p, R * NP); /* backward must overwrite */
    assert_int_equal(hcl_buf_alloc(ctx, R * N * 2 * sizeof(float), &ob), HCL_OK);
    assert_int_equal(hcl_graph_forward(g, pb, xb, ob, N), HCL_OK);
    assert_int_equal(hcl_graph_run(g, g->n_fwd, g->n_steps, pb, xb, ob, db, gb, N), HCL_OK);
    out[d] = hcl_test_download(ctx, ob, R * N * 2);
    grad[d] = hcl_test_download(ctx, gb, R * NP);
    hcl_buf_free(ctx, &ob), hcl_buf_free(ctx, &gb);
    hcl_graph_free(g);
  }
  assert_memory_equal(out[0], out[1], R * N * 2 * sizeof(float));
  for (size_t r = 0; r < R; r++) {
    const float *g0 = grad[0] + r * NP, *g1 = grad[1] + r * NP;
    for (size_t i = 0; i < 20; i++) assert_true(g1[i] == 0.0f);
    float big = 0;
    for (size_t i = 0; i < 20; i++) big = fabsf(g0[i]) > big ? fabsf(g0[i]) : big;
    assert_true(big > 0);
    assert_memory_equal(g0 + 20, g1 + 20, (NP - 20) * sizeof(float));
  }
  /* w3: 2 products, tanh, w2: weight product only, then zeros for w1 (was:
   * w2's input product, tanh and w1's product) */
  if (!(bwd[1] == 5 && bwd[0] == 7))
    fail_msg("backward steps %zu with detach, %zu without", bwd[1], bwd[0]);
  hcl_buf_free(ctx, &pb), hcl_buf_free(ctx, &xb), hcl_buf_free(ctx, &db);
  free(p), free(x), free(dout), free(out[0]), free(out[1]), free(grad[0]), free(grad[1]);
}

/* Column windows of a block (a readout over several layers): windows that
 * tile the block (each window's gradient sets its columns, nothing zeroed);
 * the same window twice, overlapping windows, a column no window reads, and
 * a block read both whole and through a window (the gradients add onto a
 * zeroed block); and a window that does not fit. */
static void test_matmul_cols(void **state) {
  (void)state;
  NEED_CTX();
  static const tblock b[] = {{"w1", 6, 4}, {"w2", 6, 6}, {"ro", 2, 12}};
  static const top tile[] = {{.kind = T_IN},
                             {.kind = T_MM, .a = 0, .blk = 0},
                             {.kind = T_ACT, .a = 1, .act = HCL_GACT_QUADRATIC},
                             {.kind = T_MM, .a = 2, .blk = 1},
                             {.kind = T_ACT, .a = 3, .act = HCL_GACT_TANH},
                             {.kind = T_MMC, .a = 2, .blk = 2, .first = 0},
                             {.kind = T_MMC, .a = 4, .blk = 2, .first = 6},
                             {.kind = T_ADD, .a = 5, .b = 6}};
  tcase c = {tile, sizeof tile / sizeof tile[0], 4, b, 3, 0, 1};
  double e = check_case(&c, "matmul_cols tiling");
  assert_true(e < GRAD_TOL);
  static const tblock b2[] = {{"w", 6, 4}, {"ro", 6, 10}};
  static const top mixed[] = {{.kind = T_IN},
                              {.kind = T_MM, .a = 0, .blk = 0}, /* w whole ... */
                              {.kind = T_SLICE, .a = 0, .first = 1, .C = 3},
                              {.kind = T_MMC, .a = 2, .blk = 0, .first = 1}, /* ... and a window */
                              {.kind = T_ACT, .a = 1, .act = HCL_GACT_TANH},
                              {.kind = T_ADD, .a = 4, .b = 3},
                              {.kind = T_MMC, .a = 5, .blk = 1, .first = 0},
                              {.kind = T_MMC, .a = 5, .blk = 1, .first = 0}, /* again */
                              {.kind = T_MMC, .a = 4, .blk = 1, .first = 3}, /* overlaps */
                              {.kind = T_ADD, .a = 6, .b = 7},
                              {.kind = T_ADD, .a = 9, .b = 8}}; /* column 9 of ro unread */
  tcase c2 = {mixed, sizeof mixed / sizeof mixed[0], 4, b2, 2, 0, 0};
  e = check_case(&c2, "matmul_cols overlapping");
  assert_true(e < GRAD_TOL);
  hcl_block blk[] = {{"ro", 0, 2, 12, 0, 1}};
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(hcl_test_ctx(), blk, 1, 24, R, 7, MAX_BATCH, &g), HCL_OK);
  hcl_tensor t = hcl_g_matmul_cols(g, hcl_g_input(g), "ro", 6); /* columns 6 .. 12 of 12 */
  assert_int_equal(t, HCL_GRAPH_BAD);
  assert_int_not_equal(g->rc, HCL_OK);
  assert_non_null(strstr(g->err, "matmul_cols"));
  assert_non_null(strstr(g->err, "[2, 12]"));
  hcl_graph_free(g);
}

/* Frozen blocks (trainable = 0, e.g. a fixed random first layer) get a zero
 * gradient and cost no backward work: below a frozen first layer and bias
 * nothing is differentiated (one GEMM, dW2, instead of three), while a frozen
 * block in the middle still passes the gradient to the trained layer under
 * it (its dW skipped: four GEMMs instead of five). Every gradient against
 * finite differences, with replicas. */
static void test_frozen_blocks(void **state) {
  (void)state;
  NEED_CTX();
  static const top first[] = {{.kind = T_IN},
                              {.kind = T_MM, .a = 0, .blk = 0},
                              {.kind = T_BIAS, .a = 1, .blk = 1},
                              {.kind = T_ACT, .a = 2, .act = HCL_GACT_TANH},
                              {.kind = T_MM, .a = 3, .blk = 2},
                              {.kind = T_BIAS, .a = 4, .blk = 3}};
  tcase c = {first, 6, 4, mlp_blocks, 4, 0, 1};
  g_frozen = 0x3;
  double e = check_case(&c, "frozen first layer");
  g_frozen = 0;
  if (!(e < GRAD_TOL)) fail_msg("frozen first layer: gradient error %.3g", e);
  assert_int_equal(g_bwd_gemms, 1);
  static const tblock b[] = {{"w1", 5, 4}, {"w2", 3, 5}, {"w3", 2, 3}};
  static const top middle[] = {{.kind = T_IN},
                               {.kind = T_MM, .a = 0, .blk = 0},
                               {.kind = T_ACT, .a = 1, .act = HCL_GACT_TANH},
                               {.kind = T_MM, .a = 2, .blk = 1},
                               {.kind = T_ACT, .a = 3, .act = HCL_GACT_QUADRATIC},
                               {.kind = T_MM, .a = 4, .blk = 2}};
  tcase c2 = {middle, 6, 4, b, 3, 0, 1};
  g_frozen = 0x2;
  e = check_case(&c2, "frozen middle layer");
  g_frozen = 0;
  if (!(e < GRAD_TOL)) fail_msg("frozen middle layer: gradient error %.3g", e);
  assert_int_equal(g_bwd_gemms, 4);
}

/* A custom op with its own kernels: the right backward passes the check;
 * one with a wrong derivative (2 v^2 for v^3) is caught by it. */
static void test_custom_op(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  cl_program prog;
  assert_int_equal(hcl_program_build(ctx, "test_cube", custom_src, NULL, &prog), HCL_OK);
  assert_int_equal(hcl_kernel_create(ctx, prog, "cube_f", &g_cube.f), HCL_OK);
  assert_int_equal(hcl_kernel_create(ctx, prog, "cube_b", &g_cube.b), HCL_OK);
  assert_int_equal(hcl_kernel_create(ctx, prog, "cube_pg", &g_cube.pg), HCL_OK);
  static const tblock b[] = {{"w1", 3, 4}, {"b1", 3, 1}, {"w2", 1, 2}};
  static const top ops[] = {{.kind = T_IN},
                            {.kind = T_MM, .a = 0, .blk = 0},
                            {.kind = T_BIAS, .a = 1, .blk = 1},
                            {.kind = T_CUSTOM, .a = 2},
                            {.kind = T_MM, .a = 3, .blk = 2}};
  tcase c = {ops, sizeof ops / sizeof ops[0], 4, b, 3, 0, 0};
  double good = check_case(&c, "custom");
  c.wrong_custom = 1;
  double bad = check_case(&c, "custom (wrong backward)");
  /* with a parameter block of its own (a Taylor-like coefficient per
   * output), nothing else writing that block's gradient first */
  static const tblock bp[] = {{"w1", 3, 4}, {"b1", 3, 1}, {"cs", 2, 1}, {"w2", 1, 2}};
  static const top opp[] = {{.kind = T_IN},
                            {.kind = T_MM, .a = 0, .blk = 0},
                            {.kind = T_BIAS, .a = 1, .blk = 1},
                            {.kind = T_CUSTOM, .a = 2, .b = 1, .blk = 2},
                            {.kind = T_MM, .a = 3, .blk = 3}};
  tcase cp = {opp, sizeof opp / sizeof opp[0], 4, bp, 4, 0, 1};
  double param = check_case(&cp, "custom with a block");
  /* an op that writes a fresh input gradient itself: no zeroing pass (the
   * arena is poisoned, so adding onto it would fail the check) */
  g_cube_set = 1;
  c.wrong_custom = 0;
  double set = check_case(&c, "custom writing din");
  size_t zeros_set = backward_steps(&c, HCL_GS_ZERO);
  g_cube_set = 0;
  assert_int_equal(zeros_set, 0);
  assert_int_equal(backward_steps(&c, HCL_GS_ZERO), 1);
  clReleaseKernel(g_cube.f), clReleaseKernel(g_cube.b), clReleaseKernel(g_cube.pg);
  clReleaseProgram(prog);
  if (!(good < GRAD_TOL && bad > 100 * GRAD_TOL && param < GRAD_TOL && set < GRAD_TOL))
    fail_msg("custom op: right backward error %.3g, wrong backward error %.3g, with a block %.3g, "
             "writing din %.3g",
             good, bad, param, set);
}

/* A shape error stops the build with one message naming the op and shapes;
 * later ops and g_output report the same first error. */
static void test_shape_error(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  hcl_block blocks[] = {{"fc0.weight", 0, 40, 30, 0, 1}, {"fc0.bias", 1200, 40, 1, 0, 1}};
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(ctx, blocks, 2, 1240, 2, 20, 4, &g), HCL_OK);
  hcl_tensor x = hcl_g_input(g);
  hcl_tensor z = hcl_g_matmul(g, x, "fc0.weight"); /* input has 20 channels, block 30 columns */
  assert_int_equal(z, HCL_GRAPH_BAD);
  hcl_tensor y = hcl_g_bias(g, z, "fc0.bias");
  assert_int_equal(y, HCL_GRAPH_BAD);
  assert_int_equal(hcl_g_output(g, y), HCL_ERR_PARAM);
  assert_int_equal(hcl_graph_compile(g), HCL_ERR_PARAM);
  const char *msg = hcl_errmsg(ctx);
  assert_non_null(strstr(msg, "matmul"));
  assert_non_null(strstr(msg, "fc0.weight is [40, 30]"));
  assert_non_null(strstr(msg, "[1, 20]"));
  hcl_graph_free(g);
  /* an unknown block and mismatched operands are named too */
  assert_int_equal(hcl_graph_new(ctx, blocks, 2, 1240, 2, 30, 4, &g), HCL_OK);
  x = hcl_g_input(g);
  assert_int_equal(hcl_g_bias(g, x, "nope"), HCL_GRAPH_BAD);
  assert_non_null(strstr(g->err, "no parameter block named 'nope'"));
  hcl_graph_free(g);
  assert_int_equal(hcl_graph_new(ctx, blocks, 2, 1240, 2, 30, 4, &g), HCL_OK);
  x = hcl_g_input(g);
  z = hcl_g_matmul(g, x, "fc0.weight");
  assert_int_equal(hcl_g_add(g, z, x), HCL_GRAPH_BAD);
  assert_non_null(strstr(g->err, "add: operands are [1, 40] and [1, 30]"));
  hcl_graph_free(g);
}

/* A deep residual chain: bias + act + residual add run as one kernel per
 * layer, and the planned arena (the bytes actually allocated) is well
 * below one buffer per value. */
static void test_fusion_and_planning(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  enum { L = 24, W = 16 };
  hcl_block blocks[2 * L];
  char names[2 * L][16];
  size_t np = 0;
  for (size_t l = 0; l < L; l++) {
    snprintf(names[2 * l], 16, "w%zu", l);
    snprintf(names[2 * l + 1], 16, "b%zu", l);
    blocks[2 * l] = (hcl_block){names[2 * l], np, W, W, (uint32_t)l, 1};
    blocks[2 * l + 1] = (hcl_block){names[2 * l + 1], np + W * W, W, 1, (uint32_t)l, 1};
    np += W * W + W;
  }
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(ctx, blocks, 2 * L, np, 4, W, 32, &g), HCL_OK);
  hcl_tensor h = hcl_g_input(g);
  for (size_t l = 0; l < L; l++) {
    hcl_tensor z = hcl_g_bias(g, hcl_g_matmul(g, h, names[2 * l]), names[2 * l + 1]);
    h = l + 1 < L ? hcl_g_add(g, hcl_g_act(g, z, HCL_GACT_RELU, NULL, 0), h) : z;
  }
  assert_int_equal(hcl_g_output(g, h), HCL_OK);
  size_t before = hcl_mem_current(ctx);
  assert_int_equal(hcl_graph_compile(g), HCL_OK);
  size_t allocated = hcl_mem_current(ctx) - before;
  /* forward: one product and one fused kernel per layer (the last layer's
   * bias alone) */
  assert_int_equal(g->n_fwd, 2 * L);
  /* equal layers share their generated kernels: one program of a few kernels */
  if (!(g->n_kernels <= 5)) fail_msg("%zu generated kernels for %d equal layers", g->n_kernels, L);
  assert_int_equal(allocated, g->arena_floats * sizeof(float));
  if (!(g->arena_floats * 10 < g->naive_floats * 6))
    fail_msg("planned %zu floats, naive %zu", g->arena_floats, g->naive_floats);
  hcl_graph_free(g);
}

/* ops.c: -1 kernel variants by device type, 0 the GPU ones, 1 the CPU ones. */
void hcl_ops_force_paths(int mode);

/* One layer z = x W^T + b, y = act(z) (nothing after it), compiled on the
 * given ops paths; *colsums: its backward's separate column-sum steps. */
static hcl_graph *one_layer(hcl_ctx *ctx, const hcl_block *blocks, size_t np, size_t in, int act,
                            int with_act, int cpu, size_t *colsums) {
  hcl_ops_force_paths(cpu);
  hcl_graph *g;
  assert_int_equal(hcl_graph_new(ctx, blocks, 2, np, R, in, 128, &g), HCL_OK);
  hcl_tensor z = hcl_g_bias(g, hcl_g_matmul(g, hcl_g_input(g), "w"), "b");
  assert_int_equal(hcl_g_output(g, with_act ? hcl_g_act(g, z, act, NULL, 0) : z), HCL_OK);
  assert_int_equal(hcl_graph_compile(g), HCL_OK);
  hcl_ops_force_paths(-1);
  *colsums = 0;
  for (size_t i = g->n_fwd; i < g->n_steps; i++) *colsums += g->steps[i].kind == HCL_GS_COLSUM;
  return g;
}

/* On CPUs the bias gradient is summed inside the activation's backward
 * kernel (no column-sum step), with the bits of the unfused path:
 * act_backward then col_sum on the same z and dout. 43 columns: five float8
 * lanes and a scalar tail of the column sum; a batch of 20 runs the fused
 * kernel, one of 100 (beyond HCL_FUSED_COLSUM_MAX floats) the pair. */
static void test_act_colsum_fused(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  enum { IN = 9, OUT = 43 };
  size_t np = OUT * IN + OUT;
  hcl_block blocks[2] = {{"w", 0, OUT, IN, 0, 1}, {"b", OUT * IN, OUT, 1, 0, 1}};
  static const int acts[][2] = {{HCL_GACT_RELU, HCL_ACT_RELU}, {HCL_GACT_TANH, HCL_ACT_TANH}};
  for (size_t k = 0; k < 4; k++) {
    size_t B = k < 2 ? 20 : 100, n_fused, n_plain, n_gpu;
    hcl_graph *g = one_layer(ctx, blocks, np, IN, acts[k % 2][0], 1, 1, &n_fused);
    hcl_graph *lin = one_layer(ctx, blocks, np, IN, acts[k % 2][0], 0, 1, &n_plain);
    hcl_graph_free(one_layer(ctx, blocks, np, IN, acts[k % 2][0], 1, 0, &n_gpu));
    assert_int_equal(n_fused, 0); /* summed in the activation's kernel */
    assert_int_equal(n_plain, 1); /* no activation: the column sum alone */
    assert_int_equal(n_gpu, 1);   /* GPUs keep their tree reduction */
    float *p = hcl_test_random_floats(urand, R * np, -0.8, 0.8);
    float *x = hcl_test_random_floats(urand, R * B * IN, -1, 1);
    float *dout = hcl_test_random_floats(urand, R * B * OUT, -1, 1);
    hcl_buf pb = hcl_test_upload(ctx, p, R * np), xb = hcl_test_upload(ctx, x, R * B * IN);
    hcl_buf db = hcl_test_upload(ctx, dout, R * B * OUT), ob, zb, dz, gb, ref;
    size_t nv = R * B * OUT;
    assert_int_equal(hcl_buf_alloc(ctx, nv * sizeof(float), &ob), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctx, nv * sizeof(float), &zb), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctx, nv * sizeof(float), &dz), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctx, R * np * sizeof(float), &gb), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctx, R * np * sizeof(float), &ref), HCL_OK);
    assert_int_equal(hcl_graph_run(g, 0, g->n_steps, pb, xb, ob, db, gb, B), HCL_OK);
    /* the unfused path: z, dz = dout act'(z), col_sum(dz), dW = dz^T x */
    assert_int_equal(hcl_graph_run(lin, 0, lin->n_fwd, pb, xb, zb, (hcl_buf){0}, (hcl_buf){0}, B),
                     HCL_OK);
    assert_int_equal(hcl_act_backward(ctx, acts[k % 2][1], db, zb, dz, R, B, OUT), HCL_OK);
    assert_int_equal(hcl_graph_run(lin, lin->n_fwd, lin->n_steps, pb, xb, zb, dz, ref, B), HCL_OK);
    float *got = hcl_test_download(ctx, gb, R * np), *want = hcl_test_download(ctx, ref, R * np);
    for (size_t i = 0; i < R * np; i++)
      if (memcmp(&got[i], &want[i], sizeof(float)))
        fail_msg("act %zu: gradient float %zu: fused %.9g, unfused %.9g", k, i, got[i], want[i]);
    free(got), free(want), free(p), free(x), free(dout);
    hcl_buf_free(ctx, &pb), hcl_buf_free(ctx, &xb), hcl_buf_free(ctx, &db);
    hcl_buf_free(ctx, &ob), hcl_buf_free(ctx, &zb), hcl_buf_free(ctx, &dz);
    hcl_buf_free(ctx, &gb), hcl_buf_free(ctx, &ref);
    hcl_graph_free(g), hcl_graph_free(lin);
  }
}

/* Kernel launches so far on ctx (every label's count). */
static uint64_t launches(const hcl_ctx *ctx) {
  uint64_t n = 0;
  for (size_t i = 0; i < ctx->n_stats; i++) n += ctx->stats[i].launches;
  return n;
}

/* The one-launch passes (graph_pass.c) against the steps: graph `c` built
 * twice, with HIERCL_GRAPH_PASS=0 and without; on both, forward
 * (hcl_graph_forward) and backward at batches N, 1, N in turn, with the
 * same output and gradient bits each time. Bit i of the result: the i-th
 * forward and backward ran as one launch each. */
static unsigned pass_matches_steps(const tcase *c, const char *what) {
  hcl_ctx *ctx = hcl_test_ctx();
  hcl_block blocks[16];
  size_t np = 0;
  for (size_t b = 0; b < c->n_blocks; b++) {
    blocks[b] = (hcl_block){c->blocks[b].name, np, c->blocks[b].rows,
                            c->blocks[b].cols, 0,  !((g_frozen >> b) & 1)};
    np += c->blocks[b].rows * c->blocks[b].cols;
  }
  static const size_t batch[3] = {N, 1, N};
  hcl_graph *g[2];
  for (int k = 0; k < 2; k++) {
    if (!k) setenv("HIERCL_GRAPH_PASS", "0", 1);
    assert_int_equal(hcl_graph_new(ctx, blocks, c->n_blocks, np, R, c->x_size, MAX_BATCH, &g[k]),
                     HCL_OK);
    assert_int_equal(build(g[k], c), HCL_OK);
    assert_int_equal(hcl_graph_compile(g[k]), HCL_OK);
    unsetenv("HIERCL_GRAPH_PASS");
    assert_int_equal(g[k]->has_pass, k);
  }
  size_t D = g[0]->out_dim;
  unsigned used = 0;
  for (int t = 0; t < 3; t++) {
    size_t n = batch[t];
    float *p = hcl_test_random_floats(urand, R * np, -0.8, 0.8);
    float *x = hcl_test_random_floats(urand, R * n * c->x_size, -1, 1);
    float *dout = hcl_test_random_floats(urand, R * n * D, -1, 1);
    hcl_buf pb = hcl_test_upload(ctx, p, R * np), xb = hcl_test_upload(ctx, x, R * n * c->x_size);
    hcl_buf db = hcl_test_upload(ctx, dout, R * n * D), ob, gb;
    assert_int_equal(hcl_buf_alloc(ctx, R * n * D * sizeof(float), &ob), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctx, R * np * sizeof(float), &gb), HCL_OK);
    float *out[2], *grad[2];
    for (int k = 0; k < 2; k++) {
      assert_int_equal(hcl_fill(ctx, gb, 7.0f, R * np), HCL_OK); /* backward must overwrite */
      uint64_t before = launches(ctx);
      assert_int_equal(hcl_graph_forward(g[k], pb, xb, ob, n), HCL_OK);
      assert_int_equal(hcl_graph_run(g[k], g[k]->n_fwd, g[k]->n_steps, pb, xb, ob, db, gb, n),
                       HCL_OK);
      if (k && launches(ctx) - before == 2) used |= 1u << t;
      out[k] = hcl_test_download(ctx, ob, R * n * D);
      grad[k] = hcl_test_download(ctx, gb, R * np);
    }
    for (size_t i = 0; i < R * n * D; i++)
      if (memcmp(&out[0][i], &out[1][i], sizeof(float)))
        fail_msg("%s, n = %zu: output %zu: steps %.9g, pass %.9g", what, n, i, out[0][i],
                 out[1][i]);
    for (size_t i = 0; i < R * np; i++)
      if (memcmp(&grad[0][i], &grad[1][i], sizeof(float)))
        fail_msg("%s, n = %zu: gradient %zu: steps %.9g, pass %.9g", what, n, i, grad[0][i],
                 grad[1][i]);
    hcl_buf_free(ctx, &pb), hcl_buf_free(ctx, &xb), hcl_buf_free(ctx, &db);
    hcl_buf_free(ctx, &ob), hcl_buf_free(ctx, &gb);
    free(p), free(x), free(dout), free(out[0]), free(out[1]), free(grad[0]), free(grad[1]);
  }
  hcl_graph_free(g[0]), hcl_graph_free(g[1]);
  return used;
}

/* A small network's forward and backward as one launch each, with the
 * steps' bits: a residual network with biases (the staircase's), a frozen
 * readout without biases (the linear teacher's), products with a factor,
 * column windows and elementwise products. The passes are written for the
 * first batch; at one sample the products take other kernels (thin), so
 * the steps run there, and the pass again at the first batch. */
static void test_one_launch_pass(void **state) {
  (void)state;
  NEED_CTX();
  if (!hcl_ops_cpu_paths(hcl_test_ctx())) skip(); /* CPUs only */
  static const tblock rb[] = {{"w0", 6, 4}, {"b0", 6, 1}, {"w1", 6, 6},
                              {"b1", 6, 1}, {"ro", 1, 6}, {"rb", 1, 1}};
  static const top res[] = {{.kind = T_IN},
                            {.kind = T_MM, .a = 0, .blk = 0},
                            {.kind = T_BIAS, .a = 1, .blk = 1},
                            {.kind = T_ACT, .a = 2, .act = HCL_GACT_RELU},
                            {.kind = T_MM, .a = 3, .blk = 2},
                            {.kind = T_BIAS, .a = 4, .blk = 3},
                            {.kind = T_ACT, .a = 5, .act = HCL_GACT_RELU},
                            {.kind = T_ADD, .a = 6, .b = 3},
                            {.kind = T_MM, .a = 7, .blk = 4},
                            {.kind = T_BIAS, .a = 8, .blk = 5}};
  static const tblock lb[] = {{"w", 5, 4}, {"v", 1, 5}};
  static const top lin[] = {{.kind = T_IN},
                            {.kind = T_MM, .a = 0, .blk = 0},
                            {.kind = T_ACT, .a = 1, .act = HCL_GACT_LEAKY_RELU},
                            {.kind = T_MM, .a = 2, .blk = 1}};
  static const tblock mb[] = {{"w1", 6, 4}, {"b1", 6, 1}, {"sq", 6, 6}, {"ro", 2, 12}};
  static const top mix[] = {{.kind = T_IN},
                            {.kind = T_MMS, .a = 0, .blk = 0, .coef = {0.5f}},
                            {.kind = T_BIASS, .a = 1, .blk = 1, .coef = {2.0f}},
                            {.kind = T_ACT, .a = 2, .act = HCL_GACT_TANH},
                            {.kind = T_MM, .a = 3, .blk = 2},
                            {.kind = T_MUL, .a = 4, .b = 3},
                            {.kind = T_MMC, .a = 5, .blk = 3, .first = 0},
                            {.kind = T_MMC, .a = 3, .blk = 3, .first = 6},
                            {.kind = T_ADD, .a = 6, .b = 7}};
  tcase cases[] = {{res, sizeof res / sizeof *res, 4, rb, 6, 0, 1},
                   {lin, sizeof lin / sizeof *lin, 4, lb, 2, 0, 1},
                   {mix, sizeof mix / sizeof *mix, 4, mb, 4, 0, 1}};
  static const char *const names[] = {"residual", "frozen readout", "scaled, windows, mul"};
  for (size_t i = 0; i < 3; i++) {
    g_frozen = i == 1 ? 0x2 : 0;
    assert_int_equal(pass_matches_steps(&cases[i], names[i]), 0x5);
    g_frozen = 0;
  }
}

/* A pass that cannot be built is a speed-up lost, not an error: with
 * compilation off (no recorded binary) after the forward ran as a pass,
 * the backward falls back to the steps, recomputing the forward's values
 * in the planned arena first, with the steps' bits; later forwards run the
 * steps. */
static void test_pass_build_fallback(void **state) {
  (void)state;
  NEED_CTX();
  hcl_ctx *ctx = hcl_test_ctx();
  if (!hcl_ops_cpu_paths(ctx)) skip();
  enum { IN = 3, H = 7 }; /* a shape no other test compiles (the memo would hold it) */
  hcl_block blocks[3] = {
      {"w", 0, H, IN, 0, 1}, {"b", H * IN, H, 1, 0, 1}, {"v", H * IN + H, 1, H, 0, 1}};
  size_t np = H * IN + H + H;
  float *p = hcl_test_random_floats(urand, R * np, -0.8, 0.8);
  float *x = hcl_test_random_floats(urand, R * N * IN, -1, 1);
  float *dout = hcl_test_random_floats(urand, R * N, -1, 1);
  hcl_buf pb = hcl_test_upload(ctx, p, R * np), xb = hcl_test_upload(ctx, x, R * N * IN);
  hcl_buf db = hcl_test_upload(ctx, dout, R * N), ob, gb;
  assert_int_equal(hcl_buf_alloc(ctx, R * N * sizeof(float), &ob), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, R * np * sizeof(float), &gb), HCL_OK);
  float *grad[2];
  for (int k = 0; k < 2; k++) {
    if (!k) setenv("HIERCL_GRAPH_PASS", "0", 1);
    hcl_graph *g;
    assert_int_equal(hcl_graph_new(ctx, blocks, 3, np, R, IN, MAX_BATCH, &g), HCL_OK);
    hcl_tensor h = hcl_g_act(g, hcl_g_bias(g, hcl_g_matmul(g, hcl_g_input(g), "w"), "b"),
                             HCL_GACT_TANH, NULL, 0);
    assert_int_equal(hcl_g_output(g, hcl_g_matmul(g, h, "v")), HCL_OK);
    assert_int_equal(hcl_graph_compile(g), HCL_OK);
    unsetenv("HIERCL_GRAPH_PASS");
    assert_int_equal(hcl_fill(ctx, gb, 7.0f, R * np), HCL_OK);
    assert_int_equal(hcl_graph_forward(g, pb, xb, ob, N), HCL_OK);
    assert_true(k ? g->pass[0] != NULL : g->pass[0] == NULL);
    ctx->no_compile = k; /* the backward's pass cannot be built now */
    hcl_status rc = hcl_graph_run(g, g->n_fwd, g->n_steps, pb, xb, ob, db, gb, N);
    ctx->no_compile = 0;
    assert_int_equal(rc, HCL_OK);
    assert_null(g->pass[1]);
    assert_int_equal(g->has_pass, 0);
    grad[k] = hcl_test_download(ctx, gb, R * np);
    hcl_graph_free(g);
  }
  for (size_t i = 0; i < R * np; i++)
    if (memcmp(&grad[0][i], &grad[1][i], sizeof(float)))
      fail_msg("gradient %zu: steps %.9g, after the fallback %.9g", i, grad[0][i], grad[1][i]);
  hcl_buf_free(ctx, &pb), hcl_buf_free(ctx, &xb), hcl_buf_free(ctx, &db);
  hcl_buf_free(ctx, &ob), hcl_buf_free(ctx, &gb);
  free(p), free(x), free(dout), free(grad[0]), free(grad[1]);
}

/* A graph-only plugin loads (no forward or backward needed), and its shape
 * error reaches the command line as one line naming the plugin, the op and
 * the shapes, with a non-zero exit. */
static void cli_shape_error(void **state) {
  (void)state;
  NEED_CTX();
  const char *ini = hcl_test_write_temp("graph_bad.ini", "[target]\nplugin = staircase\nn = 6\n"
                                                         "k = 2\n[model]\nplugin = graph_bad\n"
                                                         "[train]\nsteps = 2\nbatch = 4\n");
  char cmd[2048], out[8192];
  snprintf(cmd, sizeof cmd, "%s run %s --plugin-path %s/graph --out %s/graph_bad --quiet",
           HCL_TEST_HIERCL, ini, HCL_TEST_FIXTURE_PLUGINS, hcl_test_tmpdir());
  assert_int_not_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  const char *line = strstr(out, "graph_bad");
  if (!line || !strstr(line, "matmul") || !strstr(line, "block w is [3, 5]") ||
      !strstr(line, "[1, 6]"))
    HCL_FAIL_OUT(out, "expected the plugin, op and shapes in one line, got (output above)");
}

/* The runtime's wrapper slots for graph models are released on unwrap:
 * 40 distinct graph-only models (40 vtables, more than the 32 slots), each
 * wrapped then unwrapped, all wrap; a second wrap of the same one shares
 * its slot until both are unwrapped, so another model gets another slot
 * while either holds it. */
static hcl_status no_graph(void *self, struct hcl_graph *g) {
  (void)self, (void)g;
  return HCL_OK;
}

static void test_wrap_slots_released(void **state) {
  (void)state;
  static hcl_model_vt vts[40];
  for (int i = 0; i < 40; i++) {
    vts[i] = (hcl_model_vt){.struct_size = sizeof(hcl_model_vt), .graph = no_graph};
    hcl_plugin_desc d = {
        .struct_size = sizeof d, .kind = HCL_PLUGIN_MODEL, .name = "slot", .vt = &vts[i]};
    const hcl_plugin_desc *w1 = NULL, *w2 = NULL;
    if (hcl_graph_wrap(NULL, "slot.so", &d, &w1) != HCL_OK)
      fail_msg("wrap %d: %s", i, hcl_errmsg(NULL));
    assert_int_equal(hcl_graph_wrap(NULL, "slot.so", &d, &w2), HCL_OK);
    assert_ptr_equal(w1, w2); /* the same model loaded twice: one slot */
    hcl_graph_unwrap(w1);
    /* the second load still holds the slot: another model gets another one
     * (a sweep's worker that closed its session freed the slot under the
     * other worker, whose next run called through NULL) */
    static hcl_model_vt other = {.struct_size = sizeof(hcl_model_vt), .graph = no_graph};
    hcl_plugin_desc d2 = d;
    d2.vt = &other;
    const hcl_plugin_desc *w3 = NULL;
    assert_int_equal(hcl_graph_wrap(NULL, "other.so", &d2, &w3), HCL_OK);
    assert_ptr_not_equal(w3, w2);
    hcl_graph_unwrap(w3);
    hcl_graph_unwrap(w2);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_activations),
      cmocka_unit_test(test_residual_mul_shared),
      cmocka_unit_test(test_patch_conv_slice_mean),
      cmocka_unit_test(test_patch_scaled),
      cmocka_unit_test(test_patch_fold_feature_steps),
      cmocka_unit_test(test_detach),
      cmocka_unit_test(test_matmul_cols),
      cmocka_unit_test(test_frozen_blocks),
      cmocka_unit_test(test_custom_op),
      cmocka_unit_test(test_shape_error),
      cmocka_unit_test(test_fusion_and_planning),
      cmocka_unit_test(test_act_colsum_fused),
      cmocka_unit_test(test_one_launch_pass),
      cmocka_unit_test(test_pass_build_fallback),
      cmocka_unit_test(cli_shape_error),
      cmocka_unit_test(test_wrap_slots_released),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
