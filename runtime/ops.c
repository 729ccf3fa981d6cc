/* The runtime's fused elementwise, reduction, loss, optimiser and RNG ops
 * (kernels/ops.cl). The program is compiled on the first use of any op in a
 * ctx. Every op checks its buffers (offset a multiple of 4, size large
 * enough) so that a shape mistake fails with a message instead of corrupting
 * device memory, and only enqueues: nothing here waits for the device, except
 * rng_fill when it has to upload a new set of seeds. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "launch_args.h"
#include "ops_args.h" /* the argument structs and group shapes, shared with ops.cl */

#define EW_WG 256   /* elementwise groups */
#define EW_X_MAX 64 /* elementwise: widest first dimension of a group */

/* Kernels; bias_act and act_backward have one kernel per hcl_act, in order. */
enum {
  K_BIAS_ACT,
  K_ACT_BACKWARD = K_BIAS_ACT + 5,
  K_COL_SUM = K_ACT_BACKWARD + 5,
  K_COL_SUM_VEC,
  K_AXPBY,
  K_FILL,
  K_RNG,                  /* one per hcl_rng_dist, in order: whole blocks */
  K_RNG_EDGE = K_RNG + 4, /* the same: partial blocks at the ends */
  K_GATHER = K_RNG_EDGE + 4,
  K_GATHER_CPU,
  K_GATHER_XY_CPU,
  K_LOSS,
  K_LOSS_REPLICA, /* one per hcl_loss_kind, in order (CPUs) */
  K_OPTIM = K_LOSS_REPLICA + 4,
  K_SGD,
  K_OPTIM_CPU,
  K_SGD_CPU,
  K_GEMM_REF,
  K_GEMV_DOT,
  K_GEMV_AXPY,
  K_GER,
  K_GEMM_ROW,
  K_GEMM_TILE,
  K_GEMM_SMALL1,
  K_GEMM_RB,
  K_GEMM_RB_PACK,
  K_GEMM_RB_TN16,
  K_TRANSPOSE,
  K_COUNT
};

static const char *const k_names[K_COUNT] = {"hcl_k_bias_act_identity",
                                             "hcl_k_bias_act_relu",
                                             "hcl_k_bias_act_leaky_relu",
                                             "hcl_k_bias_act_quadratic",
                                             "hcl_k_bias_act_tanh",
                                             "hcl_k_act_backward_identity",
                                             "hcl_k_act_backward_relu",
                                             "hcl_k_act_backward_leaky_relu",
                                             "hcl_k_act_backward_quadratic",
                                             "hcl_k_act_backward_tanh",
                                             "hcl_k_col_sum",
                                             "hcl_k_col_sum_vec",
                                             "hcl_k_axpby",
                                             "hcl_k_fill",
                                             "hcl_k_rng_uniform",
                                             "hcl_k_rng_normal",
                                             "hcl_k_rng_rademacher",
                                             "hcl_k_rng_bernoulli",
                                             "hcl_k_rng_uniform_edge",
                                             "hcl_k_rng_normal_edge",
                                             "hcl_k_rng_rademacher_edge",
                                             "hcl_k_rng_bernoulli_edge",
                                             "hcl_k_gather_rows",
                                             "hcl_k_gather_rows_cpu",
                                             "hcl_k_gather_xy_cpu",
                                             "hcl_k_loss",
                                             "hcl_k_loss_mse",
                                             "hcl_k_loss_cross_entropy",
                                             "hcl_k_loss_logistic",
                                             "hcl_k_loss_hinge",
                                             "hcl_k_optim",
                                             "hcl_k_sgd",
                                             "hcl_k_optim_cpu",
                                             "hcl_k_sgd_cpu",
                                             "hcl_k_gemm_ref",
                                             "hcl_k_gemv_dot",
                                             "hcl_k_gemv_axpy",
                                             "hcl_k_ger",
                                             "hcl_k_gemm_row",
                                             "hcl_k_gemm_tile",
                                             "hcl_k_gemm_small1",
                                             "hcl_k_gemm_rb",
                                             "hcl_k_gemm_rb_pack",
                                             "hcl_k_gemm_rb_tn16",
                                             "hcl_k_transpose"};

struct hcl_ops {
  cl_program prog;
  cl_kernel k[K_COUNT];
  /* the seeds of the last rng_fill, on the device and on the host, so that
   * the usual case (the same replica seeds every call) uploads nothing */
  hcl_buf seeds;
  uint64_t *seeds_host;
  size_t n_seeds, seeds_cap;
  /* CLBlast's padded/transposed operands (blas.c), kept for the ctx */
  hcl_buf blas_temp;
};

void hcl_blas_release(hcl_ctx *ctx); /* blas.c: its queue marker */

void hcl_ops_release(hcl_ctx *ctx) {
  if (ctx) hcl_blas_release(ctx);
  if (!ctx || !ctx->ops) return;
  struct hcl_ops *o = ctx->ops;
  for (int i = 0; i < K_COUNT; i++)
    if (o->k[i]) clReleaseKernel(o->k[i]);
  if (o->prog) clReleaseProgram(o->prog);
  hcl_buf_free(ctx, &o->seeds);
  hcl_buf_free(ctx, &o->blas_temp);
  free(o->seeds_host);
  free(o);
  ctx->ops = NULL;
}

void hcl_ops_trim(hcl_ctx *ctx) {
  if (ctx) hcl_blas_release(ctx);
  if (!ctx || !ctx->ops) return;
  struct hcl_ops *o = ctx->ops;
  hcl_buf_free(ctx, &o->seeds);
  hcl_buf_free(ctx, &o->blas_temp);
  o->n_seeds = o->seeds_cap = 0;
}

/* A reduction kernel needs its fixed group size: the summation order (and so
 * the bits of the result) must not depend on what the device allows. */
static hcl_status check_group(hcl_ctx *ctx, cl_kernel k, const char *name, size_t need) {
  size_t max = 0;
  HCL_CL(ctx,
         clGetKernelWorkGroupInfo(k, ctx->dev.device_id, CL_KERNEL_WORK_GROUP_SIZE, sizeof max,
                                  &max, NULL),
         "ops: work-group size query");
  if (max < need)
    return hcl_fail(
        ctx, HCL_ERR_UNSUPPORTED,
        "device %s (%s): kernel %s needs work-groups of %zu items, the device allows %zu",
        ctx->dev.id, ctx->dev.name, name, need, max);
  return HCL_OK;
}

hcl_status hcl_ops_init(hcl_ctx *ctx) {
  if (ctx->ops) return HCL_OK;
  struct hcl_ops *o = calloc(1, sizeof *o);
  if (!o) return hcl_fail(ctx, HCL_ERR_NOMEM, "ops: out of host memory");
  hcl_status rc = hcl_program_build(ctx, "ops", hcl_src_ops, "", &o->prog);
  for (int i = 0; rc == HCL_OK && i < K_COUNT; i++)
    rc = hcl_kernel_create(ctx, o->prog, k_names[i], &o->k[i]);
  if (rc == HCL_OK) rc = check_group(ctx, o->k[K_COL_SUM], k_names[K_COL_SUM], HCL_CS_W * HCL_CS_H);
  if (rc == HCL_OK) rc = check_group(ctx, o->k[K_LOSS], k_names[K_LOSS], HCL_RED_WG);
  ctx->ops = o;
  if (rc != HCL_OK) hcl_ops_release(ctx);
  return rc;
}

/* Which kernel variants run: CPUs get branch-free, barrier-free ones that
 * PoCL vectorises, GPUs work-group reductions and padded groups.
 * HIERCL_OPS_PATHS=cpu|gpu overrides the choice (to compare or bisect), and
 * tests force either on one device. */
static int g_force_paths = -2;      /* -2: not read yet, -1: by device type, 0 GPU, 1 CPU */
void hcl_ops_force_paths(int mode); /* tests: -1 by device type, 0 GPU, 1 CPU paths */
void hcl_ops_force_paths(int mode) { g_force_paths = mode; }
int hcl_ops_cpu_paths(const hcl_ctx *ctx) {
  if (g_force_paths == -2) {
    const char *e = hcl_getenv("HIERCL_OPS_PATHS");
    g_force_paths = e && !strcmp(e, "cpu") ? 1 : e && !strcmp(e, "gpu") ? 0 : -1;
  }
  return g_force_paths >= 0 ? g_force_paths : (ctx->dev.type & CL_DEVICE_TYPE_CPU) != 0;
}

#define OPS_READY(ctx)                                                                             \
  do {                                                                                             \
    if (!(ctx)->ops) HCL_TRY(hcl_ops_init(ctx));                                                   \
  } while (0)

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* A buffer an op reads or writes: non-NULL, float-aligned, large enough. */
static hcl_status need(hcl_ctx *ctx, const char *op, const char *name, hcl_buf b, size_t floats,
                       size_t elem) {
  if (!b.mem) return hcl_fail(ctx, HCL_ERR_PARAM, "%s: buffer %s is NULL", op, name);
  if (b.offset % elem)
    return hcl_fail(ctx, HCL_ERR_PARAM, "%s: buffer %s offset %zu is not a multiple of %zu bytes",
                    op, name, b.offset, elem);
  if (b.size / elem < floats)
    return hcl_fail(ctx, HCL_ERR_PARAM, "%s: buffer %s holds %zu bytes, needs %zu elements of %zu",
                    op, name, b.size, floats, elem);
  return HCL_OK;
}
#define NEED(op, name, b, n) HCL_TRY(need(ctx, op, name, b, n, 4))

/* Elementwise launch over (x, y): groups of up to EW_X_MAX in x and about
 * EW_WG items in all, so small x (a width-40 layer) still fills a group. */
static void geom2(size_t nx, size_t ny, size_t gws[2], size_t lws[2]) {
  lws[0] = nx < EW_X_MAX ? nx : EW_X_MAX;
  lws[1] = EW_WG / lws[0];
  gws[0] = round_up(nx, lws[0]);
  gws[1] = round_up(ny, lws[1]);
}

/* Launch over (x, y, z) for kernels that bound-check x and y. On CPUs the
 * exact range with the driver's own group size is fastest (PoCL: 1.5x over
 * padded groups); GPUs get geom2's groups. Returns the lws to pass (NULL on CPUs). */
const size_t *hcl_ops_geom3(const hcl_ctx *ctx, size_t nx, size_t ny, size_t nz, size_t gws[3],
                            size_t lws[3]) {
  gws[2] = nz, lws[2] = 1;
  if (hcl_ops_cpu_paths(ctx)) {
    gws[0] = nx, gws[1] = ny;
    return NULL;
  }
  geom2(nx, ny, gws, lws);
  return lws;
}

static hcl_status run1(hcl_ctx *ctx, int k, size_t n, const char *label, size_t nargs,
                       const hcl_arg *args) {
  size_t gws = round_up(n, EW_WG), lws = EW_WG;
  return hcl_run_kernel(ctx, ctx->ops->k[k], 1, &gws, &lws, label, nargs, args);
}

hcl_status hcl_bias_act(hcl_ctx *ctx, hcl_act act, hcl_buf z, hcl_buf bias, size_t bias_stride,
                        hcl_buf y, size_t R, size_t rows, size_t cols) {
  if (!R || !rows || !cols) return HCL_OK;
  if ((unsigned)act > HCL_ACT_TANH)
    return hcl_fail(ctx, HCL_ERR_PARAM, "bias_act: activation %d", (int)act);
  OPS_READY(ctx);
  size_t total = R * rows * cols;
  NEED("bias_act", "z", z, total);
  NEED("bias_act", "y", y, total);
  cl_int has_bias = bias.mem != NULL;
  if (has_bias)
    NEED("bias_act", "bias", bias, (R - 1) * bias_stride + cols);
  else
    bias = z;
  cl_ulong zo = z.offset / 4, bo = bias.offset / 4, bs = bias_stride, yo = y.offset / 4;
  cl_ulong rows_ = rows, cols_ = cols;
  hcl_arg args[] = {HCL_ARG(z.mem), HCL_ARG(zo),       HCL_ARG(bias.mem), HCL_ARG(bo),
                    HCL_ARG(bs),    HCL_ARG(has_bias), HCL_ARG(y.mem),    HCL_ARG(yo),
                    HCL_ARG(rows_), HCL_ARG(cols_)};
  size_t gws[3], lws[3];
  const size_t *l = hcl_ops_geom3(ctx, cols, rows, R, gws, lws);
  return hcl_run_kernel(ctx, ctx->ops->k[K_BIAS_ACT + act], 3, gws, l, "bias_act", 10, args);
}

hcl_status hcl_act_backward(hcl_ctx *ctx, hcl_act act, hcl_buf dy, hcl_buf z, hcl_buf dz, size_t R,
                            size_t rows, size_t cols) {
  size_t total = R * rows * cols;
  if (!total) return HCL_OK;
  if ((unsigned)act > HCL_ACT_TANH)
    return hcl_fail(ctx, HCL_ERR_PARAM, "act_backward: activation %d", (int)act);
  OPS_READY(ctx);
  NEED("act_backward", "dy", dy, total);
  NEED("act_backward", "z", z, total);
  NEED("act_backward", "dz", dz, total);
  cl_ulong dyo = dy.offset / 4, zo = z.offset / 4, dzo = dz.offset / 4, n = total;
  hcl_arg args[] = {HCL_ARG(dy.mem), HCL_ARG(dyo), HCL_ARG(z.mem), HCL_ARG(zo),
                    HCL_ARG(dz.mem), HCL_ARG(dzo), HCL_ARG(n)};
  return run1(ctx, K_ACT_BACKWARD + act, total, "act_backward", 7, args);
}

hcl_status hcl_col_sum(hcl_ctx *ctx, hcl_buf x, hcl_buf out, size_t out_stride, size_t R,
                       size_t rows, size_t cols, float alpha, float beta) {
  if (!R || !cols) return HCL_OK;
  OPS_READY(ctx);
  if (rows)
    NEED("col_sum", "x", x, R * rows * cols);
  else
    x = out;
  NEED("col_sum", "out", out, (R - 1) * out_stride + cols);
  hcl_colsum_p p = {.alpha = alpha,
                    .beta = beta,
                    .x_off = x.offset / 4,
                    .out_off = out.offset / 4,
                    .out_stride = out_stride,
                    .rows = rows,
                    .cols = cols};
  hcl_arg args[] = {HCL_ARG(p), HCL_ARG(x.mem), HCL_ARG(out.mem)};
  if (hcl_ops_cpu_paths(ctx)) { /* see hcl_k_col_sum_vec */
    size_t gws[2] = {(cols + 7) / 8, R};
    return hcl_run_kernel(ctx, ctx->ops->k[K_COL_SUM_VEC], 2, gws, NULL, "col_sum", 3, args);
  }
  size_t gws[3] = {round_up(cols, HCL_CS_W), HCL_CS_H, R}, lws[3] = {HCL_CS_W, HCL_CS_H, 1};
  return hcl_run_kernel(ctx, ctx->ops->k[K_COL_SUM], 3, gws, lws, "col_sum", 3, args);
}

hcl_status hcl_axpby(hcl_ctx *ctx, float a, hcl_buf x, float b, hcl_buf y, size_t n) {
  if (!n) return HCL_OK;
  OPS_READY(ctx);
  NEED("axpby", "x", x, n);
  NEED("axpby", "y", y, n);
  cl_ulong xo = x.offset / 4, yo = y.offset / 4, n_ = n;
  hcl_arg args[] = {HCL_ARG(a),     HCL_ARG(x.mem), HCL_ARG(xo), HCL_ARG(b),
                    HCL_ARG(y.mem), HCL_ARG(yo),    HCL_ARG(n_)};
  return run1(ctx, K_AXPBY, n, "axpby", 7, args);
}

hcl_status hcl_fill(hcl_ctx *ctx, hcl_buf y, float value, size_t n) {
  if (!n) return HCL_OK;
  OPS_READY(ctx);
  NEED("fill", "y", y, n);
  cl_ulong yo = y.offset / 4, n_ = n;
  hcl_arg args[] = {HCL_ARG(y.mem), HCL_ARG(yo), HCL_ARG(value), HCL_ARG(n_)};
  return run1(ctx, K_FILL, n, "fill", 4, args);
}

/* Make o->seeds hold seeds[0..R-1]; uploads only when they changed. */
static hcl_status upload_seeds(hcl_ctx *ctx, const uint64_t *seeds, size_t R) {
  struct hcl_ops *o = ctx->ops;
  if (o->n_seeds == R && !memcmp(o->seeds_host, seeds, R * sizeof *seeds)) return HCL_OK;
  if (R > o->seeds_cap) {
    uint64_t *h = realloc(o->seeds_host, R * sizeof *h);
    if (!h) return hcl_fail(ctx, HCL_ERR_NOMEM, "rng: out of host memory");
    o->seeds_host = h;
    hcl_buf_free(ctx, &o->seeds); /* kernels already enqueued keep their reference */
    o->n_seeds = o->seeds_cap = 0;
    HCL_TRY(hcl_buf_alloc(ctx, R * sizeof *seeds, &o->seeds));
    o->seeds_cap = R;
  }
  o->n_seeds = 0;
  HCL_TRY(hcl_buf_write(ctx, o->seeds, seeds, R * sizeof *seeds));
  memcpy(o->seeds_host, seeds, R * sizeof *seeds);
  o->n_seeds = R;
  return HCL_OK;
}

hcl_status hcl_rng_fill(hcl_ctx *ctx, hcl_rng_dist dist, float a, float b, const uint64_t *seeds,
                        size_t R, uint64_t stream_id, uint64_t first, hcl_buf out, size_t stride,
                        size_t n) {
  if (!R || !n) return HCL_OK;
  if ((unsigned)dist > HCL_RNG_BERNOULLI)
    return hcl_fail(ctx, HCL_ERR_PARAM, "rng: distribution %d", (int)dist);
  if (!seeds) return hcl_fail(ctx, HCL_ERR_PARAM, "rng: no seeds");
  if (R > 1 && stride < n)
    return hcl_fail(ctx, HCL_ERR_PARAM, "rng: replica stride %zu < n %zu", stride, n);
  OPS_READY(ctx);
  NEED("rng", "out", out, (R - 1) * stride + n);
  HCL_TRY(upload_seeds(ctx, seeds, R));
  cl_ulong st = stream_id, fi = first, oo = out.offset / 4, str = stride, n_ = n;
  /* whole blocks [bf, bl): the full kernel takes whole groups of 64 of them
   * (it has no bound check), the edge kernel the partial block at the start
   * (nhead) and every block from t0 on, the partial one at the end included */
  uint64_t last = first + n; /* one past */
  cl_ulong bf = (first + 3) >> 2, bl = last >> 2, e0 = first >> 2, nhead = (first & 3) != 0;
  cl_ulong nmain = bl > bf ? (bl - bf) / 64 * 64 : 0, t0 = bf + nmain;
  cl_ulong ntail = bl > t0 ? bl - t0 : 0;
  if (bl < bf) /* the range lies inside one block */
    nhead = 1;
  else if (last & 3)
    ntail++;
  cl_mem seeds_mem = ctx->ops->seeds.mem;
  if (nmain) {
    hcl_arg args[] = {HCL_ARG(a),       HCL_ARG(b),  HCL_ARG(seeds_mem), HCL_ARG(st), HCL_ARG(fi),
                      HCL_ARG(out.mem), HCL_ARG(oo), HCL_ARG(str),       HCL_ARG(bf)};
    size_t gws[2] = {(size_t)nmain, R}, lws[2] = {64, 1};
    HCL_TRY(hcl_run_kernel(ctx, ctx->ops->k[K_RNG + dist], 2, gws, lws, "rng", 9, args));
  }
  if (!nhead && !ntail) return HCL_OK;
  hcl_arg args[] = {HCL_ARG(a),  HCL_ARG(b),       HCL_ARG(seeds_mem), HCL_ARG(st),
                    HCL_ARG(fi), HCL_ARG(out.mem), HCL_ARG(oo),        HCL_ARG(str),
                    HCL_ARG(n_), HCL_ARG(e0),      HCL_ARG(nhead),     HCL_ARG(t0)};
  size_t gws[2] = {(size_t)(nhead + ntail), R}, lws[2] = {1, 1}; /* one local size: one build */
  return hcl_run_kernel(ctx, ctx->ops->k[K_RNG_EDGE + dist], 2, gws, lws, "rng", 12, args);
}

hcl_status hcl_gather_rows(hcl_ctx *ctx, hcl_buf src, size_t rows_src, hcl_buf sizes, hcl_buf dst,
                           size_t R, uint64_t first, size_t n, size_t width) {
  if (!R || !n || !width) return HCL_OK;
  if (!rows_src) return hcl_fail(ctx, HCL_ERR_PARAM, "gather_rows: the source has no rows");
  OPS_READY(ctx);
  NEED("gather_rows", "src", src, R * rows_src * width);
  NEED("gather_rows", "dst", dst, R * n * width);
  if (sizes.mem) HCL_TRY(need(ctx, "gather_rows", "sizes", sizes, R, sizeof(cl_ulong)));
  /* one size for all: reduce first on the host; per-replica sizes: in the kernel */
  cl_ulong so = src.offset / 4, rs = rows_src, dso = dst.offset / 4;
  cl_ulong f0 = sizes.mem ? first : first % rows_src, n_ = n, w = width;
  hcl_arg args[] = {HCL_ARG(src.mem), HCL_ARG(so), HCL_ARG(rs), HCL_ARG(dst.mem),  HCL_ARG(dso),
                    HCL_ARG(f0),      HCL_ARG(n_), HCL_ARG(w),  HCL_ARG(sizes.mem)};
  if (hcl_ops_cpu_paths(ctx)) { /* see hcl_k_gather_rows_cpu */
    size_t gws[2] = {n, R};
    return hcl_run_kernel(ctx, ctx->ops->k[K_GATHER_CPU], 2, gws, NULL, "gather_rows", 9, args);
  }
  size_t gws[3], lws[3];
  const size_t *l = hcl_ops_geom3(ctx, width, n, R, gws, lws);
  return hcl_run_kernel(ctx, ctx->ops->k[K_GATHER], 3, gws, l, "gather_rows", 9, args);
}

hcl_status hcl_gather_prepare(hcl_ctx *ctx, hcl_buf src_x, hcl_buf src_y, size_t rows_src,
                              hcl_buf sizes, hcl_buf dst_x, hcl_buf dst_y, size_t R, uint64_t first,
                              size_t n, size_t wx, size_t wy, hcl_gather_launch *G) {
  memset(G, 0, sizeof *G);
  if (!hcl_ops_cpu_paths(ctx) || !wx || !wy || !R || !n) return HCL_OK;
  if (!rows_src) return hcl_fail(ctx, HCL_ERR_PARAM, "gather_rows: the source has no rows");
  NEED("gather_rows", "src x", src_x, R * rows_src * wx);
  NEED("gather_rows", "src y", src_y, R * rows_src * wy);
  NEED("gather_rows", "dst x", dst_x, R * n * wx);
  NEED("gather_rows", "dst y", dst_y, R * n * wy);
  if (sizes.mem) HCL_TRY(need(ctx, "gather_rows", "sizes", sizes, R, sizeof(cl_ulong)));
  hcl_gather_p p = {.sx_off = src_x.offset / 4,
                    .sy_off = src_y.offset / 4,
                    .rows_src = rows_src,
                    .dx_off = dst_x.offset / 4,
                    .dy_off = dst_y.offset / 4,
                    .f0 = sizes.mem ? first : first % rows_src,
                    .n = n,
                    .wx = wx,
                    .wy = wy};
  *G = (hcl_gather_launch){.p = p,
                           .R = R,
                           .sx = src_x.mem,
                           .sy = src_y.mem,
                           .dx = dst_x.mem,
                           .dy = dst_y.mem,
                           .sizes = sizes.mem};
  return HCL_OK;
}

hcl_status hcl_gather_run(hcl_ctx *ctx, const hcl_gather_launch *G) {
  if (!G->sx) return HCL_OK;
  OPS_READY(ctx);
  hcl_arg args[] = {HCL_ARG(G->p),  HCL_ARG(G->sx), HCL_ARG(G->sy),
                    HCL_ARG(G->dx), HCL_ARG(G->dy), HCL_ARG(G->sizes)};
  size_t gws[2] = {G->p.n, G->R};
  return hcl_run_kernel(ctx, ctx->ops->k[K_GATHER_XY_CPU], 2, gws, NULL, "gather_rows", 6, args);
}

hcl_status hcl_gather_xy(hcl_ctx *ctx, hcl_buf src_x, hcl_buf src_y, size_t rows_src, hcl_buf sizes,
                         hcl_buf dst_x, hcl_buf dst_y, size_t R, uint64_t first, size_t n,
                         size_t wx, size_t wy) {
  if (!hcl_ops_cpu_paths(ctx) || !wx || !wy) { /* GPUs: the 3D copies, one per tensor */
    HCL_TRY(hcl_gather_rows(ctx, src_x, rows_src, sizes, dst_x, R, first, n, wx));
    return hcl_gather_rows(ctx, src_y, rows_src, sizes, dst_y, R, first, n, wy);
  }
  hcl_gather_launch G;
  HCL_TRY(hcl_gather_prepare(ctx, src_x, src_y, rows_src, sizes, dst_x, dst_y, R, first, n, wx, wy,
                             &G));
  return hcl_gather_run(ctx, &G);
}

const char *hcl_loss_name(hcl_loss_kind k) {
  static const char *const names[] = {"mse", "cross_entropy", "logistic", "hinge"};
  return (unsigned)k <= HCL_LOSS_HINGE ? names[k] : "unknown";
}

hcl_status hcl_loss_prepare(hcl_ctx *ctx, hcl_loss_kind kind, hcl_buf f, hcl_buf y, size_t R,
                            size_t n, size_t out_dim, float grad_scale, hcl_buf dout,
                            hcl_buf loss_acc, hcl_buf err_acc, int accumulate, hcl_buf nan_step,
                            int32_t step, hcl_loss_launch *L) {
  memset(L, 0, sizeof *L);
  if (!R) return HCL_OK;
  if ((unsigned)kind > HCL_LOSS_HINGE)
    return hcl_fail(ctx, HCL_ERR_PARAM, "loss: kind %d", (int)kind);
  if (!out_dim) return hcl_fail(ctx, HCL_ERR_PARAM, "loss %s: out_dim is 0", hcl_loss_name(kind));
  if ((kind == HCL_LOSS_LOGISTIC || kind == HCL_LOSS_HINGE) && out_dim != 1)
    return hcl_fail(ctx, HCL_ERR_PARAM, "loss %s needs one output, the model has %zu",
                    hcl_loss_name(kind), out_dim);
  const char *op = hcl_loss_name(kind);
  size_t ydim = kind == HCL_LOSS_MSE ? out_dim : 1;
  cl_int has_dout = dout.mem != NULL, has_loss = loss_acc.mem != NULL;
  cl_int has_err = err_acc.mem != NULL, has_nan = nan_step.mem != NULL;
  if (n) {
    NEED(op, "f", f, R * n * out_dim);
    NEED(op, "y", y, R * n * ydim);
  } else {
    f = y = has_loss ? loss_acc : err_acc;
    has_dout = 0;
  }
  if (has_dout) NEED(op, "dout", dout, R * n * out_dim);
  if (has_loss) NEED(op, "loss_acc", loss_acc, R);
  if (has_err) NEED(op, "err_acc", err_acc, R);
  if (has_nan) HCL_TRY(need(ctx, op, "nan_step", nan_step, R, sizeof(int32_t)));
  if (!f.mem) return HCL_OK; /* nothing to compute or to write */
  if (!has_dout) dout = f;
  if (!has_loss) loss_acc = f;
  if (!has_err) err_acc = f;
  if (!has_nan) nan_step = f;
  hcl_loss_p p = {.kind = (cl_int)kind,
                  .has_dout = has_dout,
                  .has_loss = has_loss,
                  .has_err = has_err,
                  .accumulate = accumulate != 0,
                  .has_nan = has_nan,
                  .step = step,
                  .grad_scale = grad_scale,
                  .mse_scale = (float)(1.0 / (double)out_dim),
                  .mse_gscale = (float)(2.0 * grad_scale / (double)out_dim),
                  .f_off = f.offset / 4,
                  .y_off = y.offset / 4,
                  .n = n,
                  .out_dim = out_dim,
                  .dout_off = dout.offset / 4,
                  .loss_off = loss_acc.offset / 4,
                  .err_off = err_acc.offset / 4,
                  .nan_off = nan_step.offset / 4};
  *L = (hcl_loss_launch){.p = p,
                         .R = R,
                         .f = f.mem,
                         .y = y.mem,
                         .dout = dout.mem,
                         .loss = loss_acc.mem,
                         .err = err_acc.mem,
                         .nan = nan_step.mem};
  return HCL_OK;
}

hcl_status hcl_loss_run(hcl_ctx *ctx, const hcl_loss_launch *L) {
  if (!L->f) return HCL_OK;
  OPS_READY(ctx);
  hcl_arg args[] = {HCL_ARG(L->p),    HCL_ARG(L->f),   HCL_ARG(L->y),  HCL_ARG(L->dout),
                    HCL_ARG(L->loss), HCL_ARG(L->err), HCL_ARG(L->nan)};
  if (hcl_ops_cpu_paths(ctx)) { /* see hcl_k_loss_mse */
    size_t g1 = L->R, l1 = 1;   /* a group per replica: PoCL made one group of all */
    return hcl_run_kernel(ctx, ctx->ops->k[K_LOSS_REPLICA + L->p.kind], 1, &g1, &l1, "loss", 7,
                          args);
  }
  size_t gws[2] = {HCL_RED_WG, L->R}, lws[2] = {HCL_RED_WG, 1};
  return hcl_run_kernel(ctx, ctx->ops->k[K_LOSS], 2, gws, lws, "loss", 7, args);
}

hcl_status hcl_loss(hcl_ctx *ctx, hcl_loss_kind kind, hcl_buf f, hcl_buf y, size_t R, size_t n,
                    size_t out_dim, float grad_scale, hcl_buf dout, hcl_buf loss_acc,
                    hcl_buf err_acc, int accumulate, hcl_buf nan_step, int32_t step) {
  hcl_loss_launch L;
  HCL_TRY(hcl_loss_prepare(ctx, kind, f, y, R, n, out_dim, grad_scale, dout, loss_acc, err_acc,
                           accumulate, nan_step, step, &L));
  return hcl_loss_run(ctx, &L);
}

hcl_status hcl_optim_prepare(hcl_ctx *ctx, const hcl_optim *opt, float lr, hcl_buf lr_scale,
                             float l2, hcl_buf params, hcl_buf grad, hcl_buf state1, hcl_buf state2,
                             hcl_buf mask, size_t R, size_t n, uint64_t t, hcl_optim_launch *O) {
  memset(O, 0, sizeof *O);
  if (!R || !n) return HCL_OK;
  if (!opt || (opt->kind != HCL_OPT_SGD && opt->kind != HCL_OPT_ADAM))
    return hcl_fail(ctx, HCL_ERR_PARAM, "optim: unknown optimiser");
  if (t < 1) return hcl_fail(ctx, HCL_ERR_PARAM, "optim: step t must start at 1");
  int adam = opt->kind == HCL_OPT_ADAM;
  NEED("optim", "params", params, R * n);
  NEED("optim", "grad", grad, R * n);
  if (adam || opt->momentum != 0.0f)
    NEED("optim", "state1", state1, R * n);
  else
    state1 = params;
  if (adam)
    NEED("optim", "state2", state2, R * n);
  else
    state2 = params;
  cl_int has_lrs = lr_scale.mem != NULL, has_mask = mask.mem != NULL;
  if (has_lrs)
    NEED("optim", "lr_scale", lr_scale, R);
  else
    lr_scale = params;
  if (has_mask)
    NEED("optim", "mask", mask, n);
  else
    mask = params;
  float step_scale = 1.0f, inv_sqrt_bc2 = 1.0f;
  if (adam) {
    double bc1 = 1.0 - pow((double)opt->beta1, (double)t);
    double bc2 = 1.0 - pow((double)opt->beta2, (double)t);
    if (!(bc1 > 0.0) || !(bc2 > 0.0))
      return hcl_fail(ctx, HCL_ERR_PARAM, "optim: adam betas must be below 1 (beta1 %g, beta2 %g)",
                      opt->beta1, opt->beta2);
    step_scale = (float)(1.0 / bc1);
    inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
  }
  hcl_optim_p p = {.kind = adam,
                   .has_lrs = has_lrs,
                   .nesterov = opt->nesterov != 0,
                   .first = t == 1,
                   .has_mask = has_mask,
                   .lr = lr,
                   .l2 = l2,
                   .wd = opt->weight_decay,
                   .momentum = opt->momentum,
                   .beta1 = opt->beta1,
                   .beta2 = opt->beta2,
                   .eps = opt->eps,
                   .step_scale = step_scale,
                   .inv_sqrt_bc2 = inv_sqrt_bc2,
                   .lrs_off = lr_scale.offset / 4,
                   .p_off = params.offset / 4,
                   .g_off = grad.offset / 4,
                   .s1_off = state1.offset / 4,
                   .s2_off = state2.offset / 4,
                   .mask_off = mask.offset / 4,
                   .n = n};
  *O = (hcl_optim_launch){.p = p,
                          .R = R,
                          .plain = !adam && opt->momentum == 0.0f && !has_lrs && !has_mask,
                          .lrs = lr_scale.mem,
                          .params = params.mem,
                          .grad = grad.mem,
                          .s1 = state1.mem,
                          .s2 = state2.mem,
                          .mask = mask.mem};
  return HCL_OK;
}

hcl_status hcl_optim_run(hcl_ctx *ctx, const hcl_optim_launch *O) {
  if (!O->params) return HCL_OK;
  OPS_READY(ctx);
  int cpu = hcl_ops_cpu_paths(ctx); /* see hcl_k_optim_cpu */
  size_t gws[2] = {round_up(O->p.n, 64), O->R}, lws[2] = {64, 1};
  if (cpu) gws[0] = (O->p.n + HCL_OPT_CHUNK - 1) / HCL_OPT_CHUNK, lws[0] = 1;
  if (O->plain) { /* see hcl_k_sgd */
    hcl_arg args[] = {HCL_ARG(O->p), HCL_ARG(O->params), HCL_ARG(O->grad)};
    return hcl_run_kernel(ctx, ctx->ops->k[cpu ? K_SGD_CPU : K_SGD], 2, gws, lws, "optim", 3, args);
  }
  hcl_arg args[] = {HCL_ARG(O->p),  HCL_ARG(O->lrs), HCL_ARG(O->params), HCL_ARG(O->grad),
                    HCL_ARG(O->s1), HCL_ARG(O->s2),  HCL_ARG(O->mask)};
  return hcl_run_kernel(ctx, ctx->ops->k[cpu ? K_OPTIM_CPU : K_OPTIM], 2, gws, lws, "optim", 7,
                        args);
}

hcl_status hcl_optim_step(hcl_ctx *ctx, const hcl_optim *opt, float lr, hcl_buf lr_scale, float l2,
                          hcl_buf params, hcl_buf grad, hcl_buf state1, hcl_buf state2,
                          hcl_buf mask, size_t R, size_t n, uint64_t t) {
  hcl_optim_launch O;
  HCL_TRY(hcl_optim_prepare(ctx, opt, lr, lr_scale, l2, params, grad, state1, state2, mask, R, n, t,
                            &O));
  return hcl_optim_run(ctx, &O);
}

/* Floats a row-major matrix of `rows` x `cols` with leading dimension ld spans. */
static hcl_status need_matrix(hcl_ctx *ctx, const char *name, hcl_buf b, size_t rows, size_t cols,
                              size_t ld) {
  if (ld < cols)
    return hcl_fail(ctx, HCL_ERR_PARAM, "sgemm: ld%s %zu < %zu columns", name, ld, cols);
  return need(ctx, "sgemm", name, b, (rows - 1) * ld + cols, 4);
}

hcl_status hcl_sgemm_reference(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k,
                               float alpha, hcl_buf a, size_t lda, hcl_buf b, size_t ldb,
                               float beta, hcl_buf c, size_t ldc) {
  if (!m || !n) return HCL_OK;
  OPS_READY(ctx);
  if (k) {
    HCL_TRY(need_matrix(ctx, "a", a, ta ? k : m, ta ? m : k, lda));
    HCL_TRY(need_matrix(ctx, "b", b, tb ? n : k, tb ? k : n, ldb));
  } else {
    a = b = c;
  }
  HCL_TRY(need_matrix(ctx, "c", c, m, n, ldc));
  cl_int ta_ = ta != 0, tb_ = tb != 0;
  cl_ulong m_ = m, n_ = n, k_ = k, ao = a.offset / 4, bo = b.offset / 4, co = c.offset / 4;
  cl_ulong lda_ = lda, ldb_ = ldb, ldc_ = ldc;
  hcl_arg args[] = {HCL_ARG(ta_),  HCL_ARG(tb_),   HCL_ARG(m_),    HCL_ARG(n_),
                    HCL_ARG(k_),   HCL_ARG(alpha), HCL_ARG(a.mem), HCL_ARG(ao),
                    HCL_ARG(lda_), HCL_ARG(b.mem), HCL_ARG(bo),    HCL_ARG(ldb_),
                    HCL_ARG(beta), HCL_ARG(c.mem), HCL_ARG(co),    HCL_ARG(ldc_)};
  size_t gws[2] = {round_up(n, 8), round_up(m, 8)}, lws[2] = {8, 8};
  return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_REF], 2, gws, lws, "gemm_ref", 16, args);
}

/* A product's by-value argument (offsets in floats). */
static hcl_gemm_p gemm_p(int ta, int tb, size_t m, size_t n, size_t k, float alpha, hcl_buf a,
                         size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb, float beta,
                         hcl_buf c, size_t ldc, size_t sc) {
  return (hcl_gemm_p){.ta = ta != 0,
                      .tb = tb != 0,
                      .alpha = alpha,
                      .beta = beta,
                      .m = m,
                      .n = n,
                      .k = k,
                      .a_off = a.offset / 4,
                      .lda = lda,
                      .sa = sa,
                      .b_off = b.offset / 4,
                      .ldb = ldb,
                      .sb = sb,
                      .c_off = c.offset / 4,
                      .ldc = ldc,
                      .sc = sc};
}

/* op(B), k rows of n floats rounded up to 16, fits hcl_k_gemm_tile's local
 * memory. */
static int tile_fits(size_t n, size_t k) { return k * ((n + 15) / 16 * 16) <= HCL_TILE_LOCAL; }

int hcl_gemm_kernel_of(int ta, int tb, size_t m, size_t n, size_t k) {
  if (k == 1) return HCL_WG_GER;
  if (n == 1) return ta ? HCL_WG_AXPY : HCL_WG_DOT; /* a column of C: A's rows contiguous? */
  if (m == 1) return tb ? HCL_WG_DOT : HCL_WG_AXPY; /* a row of C: op(B)'s columns are? */
  return tile_fits(n, k) ? HCL_WG_TILE : HCL_WG_ROW;
}

/* Thin products as GEMV / rank-one kernels (blas.c calls this on CPU
 * devices, where CLBlast pads them to its tiles and runs 3-10x slower).
 * Arguments already checked by blas.c; m, n, k >= 1 and one of them is 1. */
hcl_status hcl_gemm_thin(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                         hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                         float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch);
hcl_status hcl_gemm_thin(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                         hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                         float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  OPS_READY(ctx);
  hcl_gemm_p g = gemm_p(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc);
  int row, kind = hcl_gemm_kernel_of(ta, tb, m, n, k);
  hcl_thin_p t = hcl_thin_of(g, &row);
  if (kind == HCL_WG_GER) { /* C = alpha a b^T: u = column of op(A), v = row of op(B) */
    hcl_arg args[] = {HCL_ARG(t), HCL_ARG(a.mem), HCL_ARG(b.mem), HCL_ARG(c.mem)};
    size_t g2[2], l2[2];
    geom2(n, m, g2, l2);
    size_t gws[3] = {g2[0], g2[1], batch}, lws[3] = {l2[0], l2[1], 1};
    return hcl_run_kernel(ctx, ctx->ops->k[K_GER], 3, gws, lws, "gemm_thin", 4, args);
  }
  /* one output vector: n == 1 (a column of C, stride ldc) or m == 1 (a row) */
  size_t len = t.d0;
  hcl_buf M = row ? b : a, v = row ? a : b;
  hcl_arg args[] = {HCL_ARG(t), HCL_ARG(M.mem), HCL_ARG(v.mem), HCL_ARG(c.mem)};
  if (kind == HCL_WG_DOT) { /* M's rows contiguous */
    size_t gws[2] = {round_up(len, 16), batch}, lws[2] = {16, 1};
    return hcl_run_kernel(ctx, ctx->ops->k[K_GEMV_DOT], 2, gws, lws, "gemm_thin", 4, args);
  }
  size_t gws[2] = {round_up((len + 7) / 8, 8), batch}, lws[2] = {8, 1};
  return hcl_run_kernel(ctx, ctx->ops->k[K_GEMV_AXPY], 2, gws, lws, "gemm_thin", 4, args);
}

hcl_status hcl_gemm_small(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                          hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                          float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  OPS_READY(ctx);
  hcl_gemm_p p = gemm_p(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc);
  hcl_arg args[] = {HCL_ARG(p), HCL_ARG(a.mem), HCL_ARG(b.mem), HCL_ARG(c.mem)};
  if (hcl_ops_cpu_paths(ctx)) {
    if (tile_fits(n, k)) { /* op(B) fits: see hcl_k_gemm_tile */
      size_t tiles = (m + 3) / 4, l = tiles < 64 ? tiles : 64;
      size_t gws[2] = {l, batch}, lws[2] = {l, 1};
      return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_TILE], 2, gws, lws, "gemm_small", 4, args);
    }
    /* one row per work-item (see hcl_k_gemm_row); groups of one entry's rows
     * (PoCL's own choice was one group) */
    size_t l = m < 64 ? m : 64, gws[2] = {round_up(m, l), batch}, lws[2] = {l, 1};
    return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_ROW], 2, gws, lws, "gemm_small", 4, args);
  }
  size_t g2[2], l2[2]; /* GPUs: one output per work-item */
  geom2(n, m, g2, l2);
  size_t gws[3] = {g2[0], g2[1], batch}, lws[3] = {l2[0], l2[1], 1};
  return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_SMALL1], 3, gws, lws, "gemm_small", 4, args);
}

hcl_status hcl_ops_blas_temp(hcl_ctx *ctx, size_t bytes, hcl_buf *out);

/* A work-group's work-items run one after another on one core. With
 * cols_first they take consecutive column blocks of the same rows (A's rows
 * from cache, C written contiguously: products with a small k, which are
 * bound by writing C); else consecutive row blocks of one column block (the
 * same B panel from cache). The group is the largest power of two up to 64
 * that still leaves 8 groups per compute unit. PoCL's own choice made one
 * group of the whole 16 x 16 grid of a 128 x 512 product, so one core of two
 * ran it; its threads take groups in halving chunks, so several groups per
 * core also balance a loaded CPU. */
void hcl_gemm_rb_geometry(size_t nx, size_t ny, size_t nz, unsigned cus, int cols_first,
                          size_t gws[3], size_t lws[3]) {
  size_t want = 8 * (size_t)(cus ? cus : 1), along = cols_first ? nx : ny,
         across = (cols_first ? ny : nx) * nz, l = 1;
  while (2 * l <= along && l < 64 && across * ((along + 2 * l - 1) / (2 * l)) >= want) l *= 2;
  size_t d = cols_first ? 0 : 1;
  gws[0] = nx, gws[1] = ny, gws[2] = nz, lws[0] = lws[1] = lws[2] = 1;
  gws[d] = (along + l - 1) / l * l, lws[d] = l;
}

/* A group of several row blocks (k > 64) shares each B panel: it is copied
 * (hcl_k_gemm_rb_pack) when half the device's local memory holds it. */
int hcl_gemm_rb_pack(size_t k, const size_t lws[3], uint64_t local_mem) {
  return lws[0] == 1 && lws[1] > 1 && k > 64 && k * 32 * sizeof(float) <= local_mem / 2;
}

/* hcl_gemm_rb; lower: only the 8 x 32 blocks that meet C's lower triangle
 * (the kernels read it as bit 1 of ta). */
static hcl_status gemm_rb(hcl_ctx *ctx, int ta, int tb, int lower, size_t m, size_t n, size_t k,
                          float alpha, hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb,
                          size_t sb, float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  OPS_READY(ctx);
  size_t gws[3], lws[3];
  hcl_gemm_rb_geometry((n + 31) / 32, (m + 7) / 8, batch, ctx->dev.compute_units, k <= 64, gws,
                       lws);
  int tn16 = ta && !tb && !lower && n == 16 && m % 16 == 0; /* vectors along C's rows */
  int pack = !tn16 && n % 32 == 0 && hcl_gemm_rb_pack(k, lws, ctx->dev.local_mem);
  if (tb && !pack) { /* B^T into the scratch buffer, as [batch][k, n]; the pack kernel reads it */
    hcl_buf t;
    HCL_TRY(hcl_ops_blas_temp(ctx, batch * k * n * sizeof(float), &t));
    cl_ulong so = b.offset / 4, lds = ldb, ss = sb, n_ = n, k_ = k;
    hcl_arg targs[] = {HCL_ARG(b.mem), HCL_ARG(so), HCL_ARG(lds), HCL_ARG(ss),
                       HCL_ARG(t.mem), HCL_ARG(n_), HCL_ARG(k_)};
    size_t tg[3] = {round_up(k, 16), (n + 15) / 16, batch}, tl[3] = {16, 1, 1};
    HCL_TRY(hcl_run_kernel(ctx, ctx->ops->k[K_TRANSPOSE], 3, tg, tl, "transpose", 7, targs));
    b = t, ldb = n, sb = k * n, tb = 0;
  }
  cl_int ta_ = (ta != 0) | (lower != 0) << 1 | (tb != 0) << 2;
  cl_ulong m_ = m, n_ = n, k_ = k, ao = a.offset / 4, bo = b.offset / 4, co = c.offset / 4;
  cl_ulong lda_ = lda, ldb_ = ldb, ldc_ = ldc, sa_ = sa, sb_ = sb, sc_ = sc;
  if (tn16) {
    hcl_arg targs[] = {HCL_ARG(m_),    HCL_ARG(k_),   HCL_ARG(alpha), HCL_ARG(a.mem),
                       HCL_ARG(ao),    HCL_ARG(lda_), HCL_ARG(sa_),   HCL_ARG(b.mem),
                       HCL_ARG(bo),    HCL_ARG(ldb_), HCL_ARG(sb_),   HCL_ARG(beta),
                       HCL_ARG(c.mem), HCL_ARG(co),   HCL_ARG(ldc_),  HCL_ARG(sc_)};
    hcl_gemm_rb_geometry(m / 16, 1, batch, ctx->dev.compute_units, 1, gws, lws);
    return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_RB_TN16], 3, gws, lws, "gemm_rb", 16, targs);
  }
  hcl_arg panel = {k * 32 * sizeof(float), NULL}; /* hcl_k_gemm_rb_pack's __local copy */
  hcl_arg args[] = {HCL_ARG(ta_),   HCL_ARG(m_),   HCL_ARG(n_),   HCL_ARG(k_),   HCL_ARG(alpha),
                    HCL_ARG(a.mem), HCL_ARG(ao),   HCL_ARG(lda_), HCL_ARG(sa_),  HCL_ARG(b.mem),
                    HCL_ARG(bo),    HCL_ARG(ldb_), HCL_ARG(sb_),  HCL_ARG(beta), HCL_ARG(c.mem),
                    HCL_ARG(co),    HCL_ARG(ldc_), HCL_ARG(sc_),  panel};
  if (pack)
    return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_RB_PACK], 3, gws, lws, "gemm_rb", 19, args);
  return hcl_run_kernel(ctx, ctx->ops->k[K_GEMM_RB], 3, gws, lws, "gemm_rb", 18, args);
}

hcl_status hcl_gemm_rb(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                       hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                       float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  return gemm_rb(ctx, ta, tb, 0, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

hcl_status hcl_gemm_rb_lower(hcl_ctx *ctx, int ta, int tb, size_t n, size_t k, float alpha,
                             hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                             float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  return gemm_rb(ctx, ta, tb, 1, n, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

/* ---- scratch for blas.c -------------------------------------------------- */
hcl_status hcl_ops_blas_temp(hcl_ctx *ctx, size_t bytes, hcl_buf *out);
/* A device buffer of at least `bytes`, owned by the ctx and reused by every
 * call: commands on the in-order queue never overlap, so one suffices. A
 * larger request replaces it (the old one is freed once its commands ran). */
hcl_status hcl_ops_blas_temp(hcl_ctx *ctx, size_t bytes, hcl_buf *out) {
  HCL_TRY(hcl_ops_init(ctx));
  hcl_buf *t = &ctx->ops->blas_temp;
  if (!t->mem || t->size < bytes) {
    hcl_buf_free(ctx, t);
    size_t round = (size_t)1 << 16; /* a few sizes, not one buffer per shape */
    HCL_TRY(hcl_buf_alloc(ctx, (bytes + round - 1) / round * round, t));
  }
  *out = *t;
  return HCL_OK;
}
