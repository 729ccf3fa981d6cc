/* Model graphs: a whole forward or backward pass of a small network as one
 * kernel launch on CPUs. A small network's step is bound by the driver's
 * cost per launch (PoCL: 5-8 us each, 27 launches a staircase step), so the
 * pass runs its steps one after another inside one work-group per replica,
 * with a barrier between steps. Each step calls the same per-item function
 * as its own kernel would (kernels/items.cl, the generated hcl_g<k>_at), in
 * the same order per output, so a pass computes the same bits as the steps.
 * A pass exists when every step is a product, a generated kernel, a column
 * sum, an axpy, a copy or a zero; it runs when every product at this batch
 * is thin or small (blas.c's own kernels) and HIERCL_GRAPH_PASS is not 0.
 * A training step whose model's hooks are idle runs the batch's gather,
 * forward, loss, backward and optimiser as one launch (hcl_graph_step_run;
 * HIERCL_GRAPH_STEP=0: as five). */
#include "graph.h"
#include "launch_args.h"
#include "ops_args.h" /* HCL_WG_TILE */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char hcl_src_items[];

/* Items of a pass's work-group. One: PoCL 3.1 hung (64 or 4 items) or
 * crashed (2 items) on a pass that ran the tile product twice (the
 * backward of test_graph_ops' detach graph), and one item is also the
 * faster on the staircase step (its products are vectorised by hand, its
 * elementwise loops by the compiler). */
#define PASS_WG 1

/* The base buffers of a pass, in its kernel's argument order. */
enum { PB_PARAMS = 0, PB_GRAD, PB_X, PB_OUT, PB_DOUT, PB_ARENA, PB_COUNT };
/* A training step's other buffers after those: the loss's 6, the
 * optimiser's 6 and the gather's 5, in their launch structs' order. */
enum { SR_LOSS = PB_COUNT, SR_OPTIM = SR_LOSS + 6, SR_GATHER = SR_OPTIM + 6 };

/* The by-value argument: the batch, each base buffer's offset (floats), and
 * the floats per column of a value in the pass's arena (R samples' worth of
 * the batch it was sized for, rounded to 16). */
typedef struct {
  cl_ulong n, o[PB_COUNT], na;
} pass_p;
static const char pass_p_src[] = "typedef struct { ulong n, o[6], na; } hcl_gpass_p;\n";

/* The shape of product step s at batch n (graph_exec.c's run_gemm). */
static void gemm_shape(const hcl_graph *g, const hcl_gstep *s, size_t n, int *ta, int *tb,
                       size_t *m, size_t *nn, size_t *k) {
  const hcl_gnode *nd = &g->nodes[s->node];
  size_t rows = n * nd->P, in = g->nodes[nd->in[0]].C, out = nd->C;
  *ta = s->gemm == 1, *tb = s->gemm == 0;
  *m = s->gemm == 1 ? out : rows;
  *nn = s->gemm == 0 ? out : in;
  *k = s->gemm == 0 ? in : s->gemm == 1 ? rows : out;
}

static int supported(hcl_gs_kind k) {
  return k == HCL_GS_KERNEL || k == HCL_GS_GEMM || k == HCL_GS_COLSUM || k == HCL_GS_AXPY ||
         k == HCL_GS_COPY || k == HCL_GS_ZERO || k == HCL_GS_ZERO_GRAD;
}

/* Base buffer, offset and replica stride of argument a, as C expressions of
 * the pass kernel (graph_exec.c's arg_buf, with n the batch). */
static void arg_expr(const hcl_graph *g, hcl_garg a, int *base, char *off, char *stride,
                     size_t len) {
  if (a.kind != HCL_GA_VALUE) {
    *base = a.kind == HCL_GA_PARAM ? PB_PARAMS : PB_GRAD;
    snprintf(off, len, "(pp.o[%d] + %zuu)", *base, g->blocks[a.id].offset);
    snprintf(stride, len, "%zuu", g->n_params);
    return;
  }
  const hcl_gvalue *v = &g->values[a.id];
  *base = v->ext == HCL_GV_X      ? PB_X
          : v->ext == HCL_GV_OUT  ? PB_OUT
          : v->ext == HCL_GV_DOUT ? PB_DOUT
                                  : PB_ARENA;
  /* the pass's own arena holds every value apart (see hcl_graph_pass_run) */
  snprintf(off, len, "(pp.o[%d] + pp.na * %zuu)", *base, v->ext == HCL_GV_ARENA ? v->pass_col : 0);
  snprintf(stride, len, "(n * %zuu)", v->cols);
}

/* A generated kernel's step: its item function over this replica's range. */
static hcl_status kernel_step(hcl_graph *g, const hcl_gstep *s) {
  char off[HCL_GSTEP_MAX_ARGS][64], st[HCL_GSTEP_MAX_ARGS][64];
  int base[HCL_GSTEP_MAX_ARGS];
  for (size_t i = 0; i < s->n_args; i++)
    arg_expr(g, s->arg[i], &base[i], off[i], st[i], sizeof off[i]);
  HCL_TRY(hcl_graph_src(g, "  {\n    hcl_gk%zu gk_ = {.rows = n * %zuu, .cols = %zuu, .o = {",
                        s->n_args, s->space / s->cols, s->cols));
  for (size_t i = 0; i < s->n_args; i++) HCL_TRY(hcl_graph_src(g, "%s%s", i ? ", " : "", off[i]));
  HCL_TRY(hcl_graph_src(g, "}, .s = {"));
  for (size_t i = 0; i < s->n_args; i++) HCL_TRY(hcl_graph_src(g, "%s%s", i ? ", " : "", st[i]));
  HCL_TRY(hcl_graph_src(g, "}};\n"));
  if (s->by_col) /* 8 columns an item, rows in order inside (graph_grad.c) */
    HCL_TRY(hcl_graph_src(g, "    for (size_t e = lid; e * 8 < %zuu; e += nl) hcl_g%d_at(", s->cols,
                          s->kernel));
  else
    HCL_TRY(hcl_graph_src(g, "    for (size_t e = lid; e < gk_.rows * %zuu; e += nl) hcl_g%d_at(",
                          s->cols, s->kernel));
  for (size_t i = 0; i < s->n_args; i++) HCL_TRY(hcl_graph_src(g, "b%d, ", base[i]));
  if (s->by_col) return hcl_graph_src(g, "gk_, e, r, 0);\n  }\n");
  return hcl_graph_src(g, "gk_, e %% %zuu, e / %zuu, r);\n  }\n", s->cols, s->cols);
}

/* A product step: run_gemm's operands (graph_exec.c) for hcl_wg_gemm, on
 * path `path` (hcl_graph_pass_run runs a pass only at batches where every
 * product takes the path it was written for). */
static hcl_status gemm_step(hcl_graph *g, const hcl_gstep *s, int path) {
  const hcl_gnode *nd = &g->nodes[s->node];
  size_t in = g->nodes[nd->in[0]].C, out = nd->C, ld = g->blocks[nd->block].cols;
  char off[3][64], st[3][64], al[32], be[32], p[8] = "";
  int base[3], tile = path == HCL_WG_TILE;
  if (!tile) snprintf(p, sizeof p, "%d,", path);
  for (int i = 0; i < 3; i++) arg_expr(g, s->arg[i], &base[i], off[i], st[i], sizeof off[i]);
  hcl_graph_lit(al, sizeof al, nd->scale);
  hcl_graph_lit(be, sizeof be, s->gemm ? s->beta : 0.0f);
  /* ta, tb, m, n, k, lda, ldb, ldc; the block's column window adds `first` */
  const char *rows = "n * ";
  char m[48], nn[48], k[48];
  size_t lda, ldb, ldc, wa = 0, wb = 0, wc = 0;
  int ta = s->gemm == 1, tb = s->gemm == 0;
  if (s->gemm == 0) {
    snprintf(m, sizeof m, "%s%zuu", rows, nd->P), snprintf(nn, sizeof nn, "%zuu", out);
    snprintf(k, sizeof k, "%zuu", in);
    lda = in, ldb = ld, ldc = out, wb = nd->first;
  } else if (s->gemm == 1) {
    snprintf(m, sizeof m, "%zuu", out), snprintf(nn, sizeof nn, "%zuu", in);
    snprintf(k, sizeof k, "%s%zuu", rows, nd->P);
    lda = out, ldb = in, ldc = ld, wc = nd->first;
  } else {
    snprintf(m, sizeof m, "%s%zuu", rows, nd->P), snprintf(nn, sizeof nn, "%zuu", in);
    snprintf(k, sizeof k, "%zuu", out);
    lda = out, ldb = ld, ldc = in, wb = nd->first;
  }
  return hcl_graph_src(g,
                       "  {\n    hcl_gemm_p g_ = {.ta = %d, .tb = %d, .alpha = %s, .beta = %s, "
                       ".m = %s, .n = %s, .k = %s,\n"
                       "      .a_off = %s + %zuu, .lda = %zuu, .sa = %s, .b_off = %s + %zuu, "
                       ".ldb = %zuu, .sb = %s,\n"
                       "      .c_off = %s + %zuu, .ldc = %zuu, .sc = %s};\n"
                       "    %s(g_, %s b%d, b%d, b%d, r, lid, nl%s);\n  }\n",
                       ta, tb, al, be, m, nn, k, off[0], wa, lda, st[0], off[1], wb, ldb, st[1],
                       off[2], wc, ldc, st[2], tile ? "hcl_gemm_tile_wg" : "hcl_wg_gemm", p,
                       base[0], base[1], base[2], tile ? ", bl" : "");
}

/* A bias gradient: hcl_col_sum's CPU form over this replica. */
static hcl_status colsum_step(hcl_graph *g, const hcl_gstep *s, int x, int d) {
  const hcl_gnode *nd = &g->nodes[s->node];
  char off[2][64], st[2][64], al[32], be[32];
  int base[2];
  arg_expr(g, s->arg[x], &base[0], off[0], st[0], sizeof off[0]);
  arg_expr(g, s->arg[d], &base[1], off[1], st[1], sizeof off[1]);
  hcl_graph_lit(al, sizeof al, nd->scale);
  hcl_graph_lit(be, sizeof be, s->beta);
  return hcl_graph_src(g,
                       "  {\n    hcl_colsum_p cp_ = {.alpha = %s, .beta = %s, .x_off = %s, "
                       ".out_off = %s, .out_stride = %zuu, .rows = n * %zuu, .cols = %zuu};\n"
                       "    for (size_t e = lid; e * 8 < %zuu; e += nl) "
                       "hcl_col_sum_vec_at(cp_, b%d, b%d, 8 * e, r);\n  }\n",
                       al, be, off[0], off[1], g->n_params, nd->P, nd->C, nd->C, base[0], base[1]);
}

/* axpy, copy and zero: elementwise over this replica's part. */
static hcl_status simple_step(hcl_graph *g, const hcl_gstep *s) {
  char off[2][64], st[2][64];
  int base[2];
  if (s->kind == HCL_GS_ZERO_GRAD)
    return hcl_graph_src(g,
                         "  for (size_t e = lid; e < %zuu; e += nl) b%d[pp.o[%d] + r * %zuu + e] "
                         "= 0.0f;\n",
                         g->n_params, PB_GRAD, PB_GRAD, g->n_params);
  for (size_t i = 0; i < s->n_args && i < 2; i++)
    arg_expr(g, s->arg[i], &base[i], off[i], st[i], sizeof off[i]);
  size_t cols = g->values[s->arg[0].id].cols;
  if (s->kind == HCL_GS_ZERO)
    return hcl_graph_src(
        g, "  for (size_t e = lid; e < n * %zuu; e += nl) b%d[%s + r * %s + e] = 0.0f;\n", cols,
        base[0], off[0], st[0]);
  if (s->kind == HCL_GS_COPY)
    return hcl_graph_src(g,
                         "  for (size_t e = lid; e < n * %zuu; e += nl) b%d[%s + r * %s + e] = "
                         "b%d[%s + r * %s + e];\n",
                         cols, base[1], off[1], st[1], base[0], off[0], st[0]);
  return hcl_graph_src(g,
                       "  for (size_t e = lid; e < n * %zuu; e += nl) hcl_axpby_at(1.0f, b%d, %s + "
                       "r * %s, 1.0f, b%d, %s + r * %s, n * %zuu, e);\n",
                       cols, base[0], off[0], st[0], base[1], off[1], st[1], cols);
}

/* The steps of pass `which` (0 forward without the features-only steps, 1
 * backward) into g->cur, each product on the path path[step], each step
 * followed by a barrier. */
static hcl_status pass_body(hcl_graph *g, int which, const int *path) {
  size_t from = which ? g->n_fwd : 0, to = which ? g->n_steps : g->n_fwd;
  for (size_t i = from; i < to; i++) {
    const hcl_gstep *s = &g->steps[i];
    if (!which && s->fonly) continue;
    switch (s->kind) {
    case HCL_GS_KERNEL: HCL_TRY(kernel_step(g, s)); break;
    case HCL_GS_GEMM: HCL_TRY(gemm_step(g, s, path[i])); break;
    case HCL_GS_COLSUM: HCL_TRY(colsum_step(g, s, 0, 1)); break;
    default: HCL_TRY(simple_step(g, s)); break;
    }
    HCL_TRY(hcl_graph_src(g, "  barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);\n"));
  }
  return HCL_OK;
}

/* A pass kernel's locals: the tile product's local memory, this item and
 * its replica r (one work-group each), the batch n. */
static const char pass_locals[] =
    "  __local float bl[HCL_TILE_LOCAL] __attribute__((aligned(64)));\n"
    "  size_t lid = get_local_id(0), nl = get_local_size(0), r = get_global_id(1);\n"
    "  ulong n = pp.n;\n";

/* The text of pass `which` (0 forward, 1 backward) into g->cur as kernel
 * hcl_gpass<which>, each product on path path[step]. */
static hcl_status pass_src(hcl_graph *g, int which, const int *path) {
  if (g->cur) g->cur[0] = 0;
  HCL_TRY(hcl_graph_src(g,
                        "__kernel void hcl_gpass%d(__global float *b0, __global float *b1, "
                        "__global float *b2, __global float *b3, __global float *b4, "
                        "__global float *b5, hcl_gpass_p pp) {\n%s",
                        which, pass_locals));
  HCL_TRY(pass_body(g, which, path));
  return hcl_graph_src(g, "}\n");
}

/* The text of the training step into g->cur as kernel hcl_gpass2: the
 * batch's gather (when `gather`), the forward pass (paths path[0..n_steps)),
 * loss `loss` for this replica as its CPU kernel computes it, the backward
 * pass (path[n_steps..)) and the optimiser over this replica's parameters.
 * Its n_slots buffer arguments are the distinct buffers of the roles (PoCL
 * pays per buffer argument at every launch): role i is argument slot[i]. */
static hcl_status step_src(hcl_graph *g, const int *path, const int *slot, int n_slots, int loss,
                           int gather) {
  if (g->cur) g->cur[0] = 0;
  HCL_TRY(hcl_graph_src(g, "__kernel void hcl_gpass2("));
  for (int i = 0; i < n_slots; i++) HCL_TRY(hcl_graph_src(g, "__global float *a%d, ", i));
  HCL_TRY(hcl_graph_src(g, "hcl_gpass_p pp, hcl_gather_p gp0, hcl_loss_p lp0, hcl_optim_p op0, "
                           "hcl_steps_p sp) {\n"));
  for (int i = 0; i < HCL_GSTEP_ROLES; i++)
    HCL_TRY(hcl_graph_src(g, "  __global float *b%d = a%d;\n", i, slot[i]));
  HCL_TRY(hcl_graph_src(g, "%s", pass_locals));
  /* sp.k steps, each with its own record; the optimiser's last writes are
   * seen by the next step's first reads after the loop's barrier */
  HCL_TRY(hcl_graph_src(g, "  for (ulong s_ = 0; s_ < sp.k; s_++) {\n"
                           "  hcl_gather_p gp = gp0;\n  hcl_loss_p lp = lp0;\n"
                           "  hcl_optim_p op = op0;\n"
                           "  hcl_step_apply(&sp.s[s_], &gp, &lp, &op);\n"));
  if (gather)
    HCL_TRY(hcl_graph_src(g,
                          "  if (lid == 0) for (size_t j = 0; j < gp.n; j++) "
                          "hcl_gather_xy_at(gp, b%d, b%d, b%d, b%d, (__global const ulong *)b%d, "
                          "j, r);\n  barrier(CLK_GLOBAL_MEM_FENCE);\n",
                          SR_GATHER, SR_GATHER + 1, SR_GATHER + 2, SR_GATHER + 3, SR_GATHER + 4));
  HCL_TRY(pass_body(g, 0, path));
  HCL_TRY(hcl_graph_src(g,
                        "  if (lid == 0) hcl_loss_replica_at(%d, lp, b%d, b%d, b%d, b%d, b%d, "
                        "(__global int *)b%d, r);\n  barrier(CLK_GLOBAL_MEM_FENCE);\n",
                        loss, SR_LOSS, SR_LOSS + 1, SR_LOSS + 2, SR_LOSS + 3, SR_LOSS + 4,
                        SR_LOSS + 5));
  HCL_TRY(pass_body(g, 1, path + g->n_steps));
  return hcl_graph_src(g,
                       "  if (lid == 0) hcl_optim_range_at(op, b%d, b%d, b%d, b%d, b%d, b%d, "
                       "0, op.n, r);\n  barrier(CLK_GLOBAL_MEM_FENCE);\n  }\n}\n",
                       SR_OPTIM, SR_OPTIM + 1, SR_OPTIM + 2, SR_OPTIM + 3, SR_OPTIM + 4,
                       SR_OPTIM + 5);
}

hcl_status hcl_graph_pass_check(hcl_graph *g) {
  g->has_pass = 0;
  const char *env = hcl_getenv("HIERCL_GRAPH_PASS");
  if (!hcl_ops_cpu_paths(g->ctx) || (env && !strcmp(env, "0")) || !g->n_kernels) return HCL_OK;
  for (size_t i = 0; i < g->n_steps; i++)
    if (!supported(g->steps[i].kind)) return HCL_OK;
  if (!(g->pass_path = malloc(4 * g->n_steps * sizeof *g->pass_path)))
    return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  g->pass_cols = 0; /* each arena value its own columns: see hcl_graph_pass_run */
  for (size_t v = 0; v < g->n_values; v++)
    if (g->values[v].ext == HCL_GV_ARENA) {
      g->values[v].pass_col = g->pass_cols;
      g->pass_cols += g->values[v].cols;
    }
  g->has_pass = 1;
  const char *step = hcl_getenv("HIERCL_GRAPH_STEP");
  g->has_step = !(step && !strcmp(step, "0"));
  return HCL_OK;
}

/* Each product's path at batch n into path[step] (-1 for other steps), and
 * the multiply-adds as hcl_sgemm_batched counts them; 0 when a product is
 * larger than items.cl's kernels serve. */
static int paths_at(hcl_graph *g, int which, size_t n, int *path, double *flops) {
  size_t from = which ? g->n_fwd : 0, to = which ? g->n_steps : g->n_fwd;
  *flops = 0;
  for (size_t i = 0; i < g->n_steps; i++) path[i] = -1;
  for (size_t i = from; i < to; i++) {
    const hcl_gstep *s = &g->steps[i];
    if (s->kind != HCL_GS_GEMM || (!which && s->fonly)) continue;
    int ta, tb;
    size_t m, nn, k;
    gemm_shape(g, s, n, &ta, &tb, &m, &nn, &k);
    if ((path[i] = hcl_gemm_own_kernel(g->ctx, ta, tb, m, nn, k)) < 0) return 0;
    *flops += 2.0 * (double)m * (double)nn * (double)k * (double)g->R;
  }
  return 1;
}

/* Build pass `which` from its text in g->cur: the item functions, the
 * graph's generated kernels (whose hcl_g<k>_at it calls) and the pass. */
static hcl_status pass_build(hcl_graph *g, int which) {
  size_t a = strlen(hcl_src_items), b = strlen(g->src), c = strlen(g->cur);
  size_t len = a + sizeof pass_p_src + b + c + 2;
  char *src = malloc(len);
  if (!src) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  snprintf(src, len, "%s\n%s%s%s", hcl_src_items, pass_p_src, g->src, g->cur);
  hcl_status rc = hcl_program_build(g->ctx, "graph_pass", src, NULL, &g->pass_prog[which]);
  free(src);
  HCL_TRY(rc);
  char name[32];
  snprintf(name, sizeof name, "hcl_gpass%d", which);
  return hcl_kernel_create(g->ctx, g->pass_prog[which], name, &g->pass[which]);
}

/* The pass's arena for batch n: every arena value in columns of its own,
 * pass_na floats each (R n rounded up). The planned arena shares memory
 * between values whose lives do not overlap, which is safe when every step
 * finishes for all replicas before the next starts; inside a pass each
 * replica's work-group runs ahead on its own, so replica r could overwrite
 * replica r''s slice of a value that shares its memory. */
static hcl_status pass_arena(hcl_graph *g, size_t n) {
  size_t na = (g->R * n + 15) / 16 * 16;
  if (g->pass_arena.mem && na <= g->pass_na) return HCL_OK;
  if (g->pass_arena.mem) hcl_buf_free(g->ctx, &g->pass_arena);
  size_t floats = na * g->pass_cols, bytes = (floats ? floats : 1) * sizeof(float);
  HCL_TRY(hcl_mem_check(g->ctx, bytes, bytes, "graph: one-launch pass values"));
  HCL_TRY(hcl_buf_alloc(g->ctx, bytes, &g->pass_arena));
  g->pass_na = na;
  return HCL_OK;
}

/* Both passes' paths at batch n into path[0..2 n_steps) and kernel
 * `which`'s multiply-adds (2, the training step: both passes'): 1 when both
 * passes serve n (every product small or thin, on the paths a built kernel
 * was written for). Both, so that a forward never runs as a pass when its
 * backward would run as steps (their values live in different arenas). */
static int both_fit(hcl_graph *g, int which, size_t n, int *path, double *flops) {
  double f[2];
  size_t ns = g->n_steps;
  for (int w = 0; w < 2; w++) {
    int *p = path + (size_t)w * ns;
    if (!paths_at(g, w, n, p, &f[w])) return 0;
    if (which < 2 && g->pass[w] && memcmp(g->pass_path + (size_t)w * ns, p, ns * sizeof *p))
      return 0; /* built for a batch whose products take other kernels */
  }
  if (which == 2 && g->pass[2] && memcmp(g->pass_path + 2 * ns, path, 2 * ns * sizeof *path))
    return 0;
  *flops = which == 2 ? f[0] + f[1] : f[which];
  return 1;
}

/* Kernel `which` built from the text in g->cur (rc: the writing's status),
 * for the paths path[0..len), unless it is already: 0 when the build failed,
 * after which the graph runs its steps. */
static int built(hcl_graph *g, int which, hcl_status rc, const int *path, size_t len) {
  if (g->pass[which]) return 1;
  if (rc != HCL_OK || pass_build(g, which) != HCL_OK) {
    /* a speed-up only: the steps compute the same (e.g. no compiler under
     * HIERCL_NO_COMPILE and no recorded binary of the pass) */
    hcl_log(g->ctx, HCL_LOG_WARN, "graph: one-launch pass not built (%s); running the steps",
            g->ctx->errmsg);
    g->ctx->errmsg[0] = 0;
    g->has_pass = 0;
    return 0;
  }
  memcpy(g->pass_path + (size_t)(which == 2 ? 2 : which) * g->n_steps, path, len * sizeof *path);
  return 1;
}

/* The base buffers' offsets into pp and their cl_mem into mem (params for
 * one not given: a pass never reads it). */
static void pass_bases(hcl_graph *g, const hcl_buf *b, pass_p *pp, cl_mem *mem, size_t n) {
  *pp = (pass_p){.n = n, .na = g->pass_na};
  for (int i = 0; i < PB_COUNT; i++) {
    mem[i] = b[i].mem ? b[i].mem : b[PB_PARAMS].mem;
    pp->o[i] = b[i].offset / sizeof(float);
  }
}

int hcl_graph_pass_run(hcl_graph *g, int which, hcl_buf params, hcl_buf x, hcl_buf out,
                       hcl_buf dout, hcl_buf grad, size_t n, hcl_status *rc) {
  if (!g->has_pass) return 0;
  int path[2 * g->n_steps];
  double flops;
  if (!both_fit(g, which, n, path, &flops)) return 0;
  int *mine = path + (size_t)which * g->n_steps;
  /* written for the first batch it serves */
  if (!built(g, which, g->pass[which] ? HCL_OK : pass_src(g, which, mine), mine, g->n_steps))
    return 0;
  if ((*rc = pass_arena(g, n)) != HCL_OK) return 1;
  hcl_buf b[PB_COUNT] = {params, grad, x, out, dout, g->pass_arena};
  pass_p pp;
  cl_mem mem[PB_COUNT];
  pass_bases(g, b, &pp, mem, n);
  hcl_arg args[PB_COUNT + 1];
  for (int i = 0; i < PB_COUNT; i++) args[i] = (hcl_arg){sizeof(cl_mem), &mem[i]};
  args[PB_COUNT] = (hcl_arg){sizeof pp, &pp};
  size_t gws[2] = {PASS_WG, g->R}, lws[2] = {PASS_WG, 1};
  g->ctx->gemm_flops += flops;
  *rc = hcl_run_kernel(g->ctx, g->pass[which], 2, gws, lws, which ? "graph_bwd" : "graph_fwd",
                       PB_COUNT + 1, args);
  return 1;
}

int hcl_graph_step_run(hcl_graph *g, hcl_buf params, hcl_buf x, hcl_buf out, hcl_buf dout,
                       hcl_buf grad, size_t n, const hcl_gather_launch *gather,
                       const hcl_loss_launch *loss, const hcl_optim_launch *opt,
                       const hcl_steps_launch *steps, hcl_status *rc) {
  if (!g->has_pass || !g->has_step || !loss->f || !opt->params || loss->R != g->R ||
      steps->p.k < 1 || steps->p.k > HCL_STEPS_MAX || opt->R != g->R ||
      (gather && (!gather->sx || gather->R != g->R || gather->p.n != n)))
    return 0;
  int path[2 * g->n_steps];
  double flops;
  if (!both_fit(g, 2, n, path, &flops)) return 0;
  if ((*rc = pass_arena(g, n)) != HCL_OK) return 1;
  hcl_buf b[PB_COUNT] = {params, grad, x, out, dout, g->pass_arena};
  pass_p pp;
  cl_mem mem[HCL_GSTEP_ROLES], arg[HCL_GSTEP_ROLES];
  pass_bases(g, b, &pp, mem, n);
  const cl_mem roles[] = {loss->f,  loss->y,     loss->dout, loss->loss, loss->err, loss->nan,
                          opt->lrs, opt->params, opt->grad,  opt->s1,    opt->s2,   opt->mask};
  memcpy(mem + PB_COUNT, roles, sizeof roles);
  hcl_gather_launch none = {0};
  const hcl_gather_launch *G = gather ? gather : &none;
  const cl_mem copy[] = {G->sx, G->sy, G->dx, G->dy, G->sizes};
  memcpy(mem + SR_GATHER, copy, sizeof copy);
  int slot[HCL_GSTEP_ROLES], n_slots = 0, with = gather != NULL;
  for (int i = 0; i < HCL_GSTEP_ROLES; i++) { /* each distinct buffer once */
    int j = 0;
    while (j < i && mem[j] != mem[i]) j++;
    slot[i] = j < i ? slot[j] : n_slots;
    if (j == i) arg[n_slots++] = mem[i];
  }
  if (g->pass[2] && (memcmp(slot, g->step_slot, sizeof slot) || g->step_loss != loss->p.kind ||
                     g->step_gather != with)) {
    clReleaseKernel(g->pass[2]); /* other buffers, loss or batch: written again */
    clReleaseProgram(g->pass_prog[2]);
    g->pass[2] = NULL, g->pass_prog[2] = NULL;
  }
  if (!built(g, 2, g->pass[2] ? HCL_OK : step_src(g, path, slot, n_slots, loss->p.kind, with), path,
             2 * g->n_steps))
    return 0;
  memcpy(g->step_slot, slot, sizeof slot);
  g->step_loss = loss->p.kind;
  g->step_gather = with;
  hcl_arg args[HCL_GSTEP_ROLES + 5];
  for (int i = 0; i < n_slots; i++) args[i] = (hcl_arg){sizeof(cl_mem), &arg[i]};
  args[n_slots] = (hcl_arg){sizeof pp, &pp};
  args[n_slots + 1] = (hcl_arg){sizeof G->p, &G->p};
  args[n_slots + 2] = (hcl_arg){sizeof loss->p, &loss->p};
  args[n_slots + 3] = (hcl_arg){sizeof opt->p, &opt->p};
  args[n_slots + 4] = (hcl_arg){sizeof steps->p, &steps->p};
  size_t gws[2] = {PASS_WG, g->R}, lws[2] = {PASS_WG, 1};
  g->ctx->gemm_flops += flops * (double)steps->p.k;
  g->pass_fwd_n = 0; /* its values are spent: a backward needs a forward first */
  *rc = hcl_run_kernel(g->ctx, g->pass[2], 2, gws, lws, "graph_step", (unsigned)n_slots + 5, args);
  return 1;
}
