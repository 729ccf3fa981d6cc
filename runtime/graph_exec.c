/* Model graphs: running planned steps on the device. Everything is
 * enqueued on the run's queue; nothing waits or reads back. */
#include "graph.h"

#include <stddef.h>
#include <stdio.h>

typedef struct bind {
  hcl_buf params, x, out, dout, grad;
  size_t n;
} bind;

/* Buffer, offset and replica stride (floats) of an argument. */
static hcl_buf arg_buf(const hcl_graph *g, const bind *b, hcl_garg a, size_t *off, size_t *stride,
                       size_t *span) {
  hcl_buf base;
  if (a.kind != HCL_GA_VALUE) {
    const hcl_block *blk = &g->blocks[a.id];
    base = a.kind == HCL_GA_PARAM ? b->params : b->grad;
    *off = base.offset / sizeof(float) + blk->offset;
    *stride = g->n_params;
    *span = (g->R - 1) * g->n_params + blk->rows * blk->cols;
    return (hcl_buf){base.mem, *off * sizeof(float), *span * sizeof(float)};
  }
  const hcl_gvalue *v = &g->values[a.id];
  base = v->ext == HCL_GV_X      ? b->x
         : v->ext == HCL_GV_OUT  ? b->out
         : v->ext == HCL_GV_DOUT ? b->dout
                                 : g->arena;
  *off = base.offset / sizeof(float) + (v->ext == HCL_GV_ARENA ? v->offset : 0);
  *stride = b->n * v->cols;
  *span = g->R * b->n * v->cols;
  return (hcl_buf){base.mem, *off * sizeof(float), *span * sizeof(float)};
}

/* A fused activation-and-column-sum step (graph_grad.c) runs as one kernel
 * up to this many floats of the gradient, all replicas together: there it
 * saves a launch; beyond it the column form is slower than the elementwise
 * kernel and col_sum (PoCL, 128 x 512: about 2 against 1.5 ns a float),
 * which then run instead, with the same bits. */
#define HCL_FUSED_COLSUM_MAX 8192

/* Launch generated kernel k with the first n arguments of step s. */
static hcl_status launch(hcl_graph *g, const bind *b, const hcl_gstep *s, int k, size_t n,
                         int by_col) {
  /* hcl_gk<n> of graph_util.c: rows, cols, then n offsets and n strides */
  cl_ulong v[2 + 2 * HCL_GSTEP_MAX_ARGS];
  cl_mem mem[HCL_GSTEP_MAX_ARGS];
  hcl_arg args[HCL_GSTEP_MAX_ARGS + 1];
  for (size_t i = 0; i < n; i++) {
    size_t off, stride, span;
    mem[i] = arg_buf(g, b, s->arg[i], &off, &stride, &span).mem;
    v[2 + i] = off;
    v[2 + n + i] = stride;
    args[i] = (hcl_arg){sizeof(cl_mem), &mem[i]};
  }
  cl_ulong rows = b->n * (s->space / s->cols), cols = s->cols;
  v[0] = rows, v[1] = cols;
  args[n] = (hcl_arg){(2 + 2 * n) * sizeof(cl_ulong), v};
  size_t gws[3], lws[3];
  const size_t *l = hcl_ops_geom3(g->ctx, cols, rows, g->R, gws, lws);
  if (by_col) /* CPUs only (graph_grad.c): 8 columns an item, the exact range */
    gws[0] = (cols + 7) / 8, gws[1] = g->R, l = NULL;
  return hcl_run_kernel(g->ctx, g->kernels[k], by_col ? 2 : 3, gws, l,
                        s->node < g->n && s - g->steps < (ptrdiff_t)g->n_fwd ? "graph_fwd"
                                                                             : "graph_bwd",
                        n + 1, args);
}

/* The gradient of bias node nd, (+)= its scale times the column sums of
 * argument x of step s into block-gradient argument d. */
static hcl_status bias_col_sum(hcl_graph *g, const bind *b, const hcl_gstep *s, const hcl_gnode *nd,
                               int x, int d) {
  size_t o, st, sp;
  hcl_buf xb = arg_buf(g, b, s->arg[x], &o, &st, &sp), db = arg_buf(g, b, s->arg[d], &o, &st, &sp);
  return hcl_col_sum(g->ctx, xb, db, g->n_params, g->R, b->n * nd->P, nd->C, nd->scale, s->beta);
}

static hcl_status run_generated(hcl_graph *g, const bind *b, const hcl_gstep *s) {
  if (!s->by_col || g->R * b->n * s->space <= HCL_FUSED_COLSUM_MAX)
    return launch(g, b, s, s->kernel, s->n_args, s->by_col);
  HCL_TRY(launch(g, b, s, s->alt_kernel, 3, 0)); /* gin, then the bias node's column sum */
  return bias_col_sum(g, b, s, &g->nodes[s->node - 1], 2, 3);
}

/* The block argument of a matmul step narrowed to its column window:
 * `first` columns in, the block's full width as leading dimension. */
static hcl_buf window(hcl_buf w, size_t first) {
  return (hcl_buf){w.mem, w.offset + first * sizeof(float), w.size - first * sizeof(float)};
}

/* The three products of a matmul node: forward C = a A W^T, weight gradient
 * dW (+)= a G^T A, input gradient dA (+)= a G W (a: the node's scale, inside
 * the GEMM as a hand-written pass has it); rows = n P per replica. W is
 * the block's column window [out, in] with leading dimension ld. */
static hcl_status run_gemm(hcl_graph *g, const bind *b, const hcl_gstep *s) {
  const hcl_gnode *nd = &g->nodes[s->node];
  size_t in = g->nodes[nd->in[0]].C, out = nd->C, rows = b->n * nd->P;
  size_t ld = g->blocks[nd->block].cols;
  size_t o[3], st[3], sp[3];
  hcl_buf x = arg_buf(g, b, s->arg[0], &o[0], &st[0], &sp[0]);
  hcl_buf y = arg_buf(g, b, s->arg[1], &o[1], &st[1], &sp[1]);
  hcl_buf z = arg_buf(g, b, s->arg[2], &o[2], &st[2], &sp[2]);
  if (s->gemm == 0)
    return hcl_sgemm_batched(g->ctx, 0, 1, rows, out, in, nd->scale, x, in, st[0],
                             window(y, nd->first), ld, st[1], 0.0f, z, out, st[2], g->R);
  if (s->gemm == 1)
    return hcl_sgemm_batched(g->ctx, 1, 0, out, in, rows, nd->scale, x, out, st[0], y, in, st[1],
                             s->beta, window(z, nd->first), ld, st[2], g->R);
  return hcl_sgemm_batched(g->ctx, 0, 0, rows, in, out, nd->scale, x, out, st[0],
                           window(y, nd->first), ld, st[1], s->beta, z, in, st[2], g->R);
}

static hcl_status run_custom(hcl_graph *g, const bind *b, const hcl_gstep *s) {
  const hcl_gnode *nd = &g->nodes[s->node];
  hcl_buf buf[HCL_GSTEP_MAX_ARGS];
  size_t cols[HCL_GSTEP_MAX_ARGS], off, stride, span, ni = nd->n_ins, nb = nd->n_cblocks;
  for (size_t i = 0; i < s->n_args; i++) {
    buf[i] = (hcl_buf){0};
    if (s->arg[i].id >= 0) buf[i] = arg_buf(g, b, s->arg[i], &off, &stride, &span);
  }
  for (size_t i = 0; i < ni; i++) cols[i] = g->nodes[nd->ins[i]].P * g->nodes[nd->ins[i]].C;
  int fwd = s->kind == HCL_GS_CUSTOM_F;
  hcl_graph_io io = {.R = g->R,
                     .n = b->n,
                     .n_in = ni,
                     .in = buf,
                     .cols = cols,
                     .out = buf[ni],
                     .din = fwd ? NULL : buf + ni + 1,
                     .n_blocks = nb,
                     .param = buf + (fwd ? ni + 1 : 2 * ni + 1),
                     .dparam = fwd ? NULL : buf + 2 * ni + 1 + nb,
                     .param_stride = g->n_params,
                     .din_set = fwd ? 0 : s->din_set};
  const hcl_graph_custom *op = nd->op;
  hcl_status rc = fwd ? op->forward(op->user, g->ctx, &io) : op->backward(op->user, g->ctx, &io);
  if (rc != HCL_OK && g->ctx && !g->ctx->errmsg[0])
    return hcl_fail(g->ctx, rc, "graph: custom op %s: %s failed", op->name ? op->name : "",
                    fwd ? "forward" : "backward");
  return rc;
}

static hcl_status run_step(hcl_graph *g, const bind *b, const hcl_gstep *s) {
  size_t o, st, sp;
  switch (s->kind) {
  case HCL_GS_KERNEL: return run_generated(g, b, s);
  case HCL_GS_GEMM: return run_gemm(g, b, s);
  case HCL_GS_COLSUM: return bias_col_sum(g, b, s, &g->nodes[s->node], 0, 1);
  case HCL_GS_AXPY:
  case HCL_GS_COPY: {
    hcl_buf x = arg_buf(g, b, s->arg[0], &o, &st, &sp);
    hcl_buf y = arg_buf(g, b, s->arg[1], &o, &st, &sp);
    if (s->kind == HCL_GS_COPY) return hcl_buf_copy(g->ctx, y, x, sp * sizeof(float));
    return hcl_axpby(g->ctx, 1.0f, x, 1.0f, y, sp);
  }
  case HCL_GS_ZERO: {
    hcl_buf y = arg_buf(g, b, s->arg[0], &o, &st, &sp);
    return hcl_fill(g->ctx, y, 0.0f, sp);
  }
  case HCL_GS_ZERO_GRAD:
    return hcl_fill(g->ctx, hcl_buf_sub(b->grad, 0, g->R * g->n_params * sizeof(float)), 0.0f,
                    g->R * g->n_params);
  default: return run_custom(g, b, s);
  }
}

/* The forward steps the output needs (not those only features() reads). */
static hcl_status output_steps(hcl_graph *g, const bind *b) {
  for (size_t s = 0; s < g->n_fwd; s++)
    if (!g->steps[s].fonly) HCL_TRY(run_step(g, b, &g->steps[s]));
  return HCL_OK;
}

hcl_status hcl_graph_run(hcl_graph *g, size_t from, size_t to, hcl_buf params, hcl_buf x,
                         hcl_buf out, hcl_buf dout, hcl_buf grad, size_t n) {
  hcl_status rc;
  bind b = {params, x, out, dout, grad, n};
  /* the backward as one launch only after the forward ran as one (the
   * passes keep their values apart from the planned arena: graph_pass.c);
   * if its pass cannot be built, the forward's steps fill the arena first */
  if (from == g->n_fwd && to == g->n_steps && from < to && g->pass_fwd_n == n) {
    if (hcl_graph_pass_run(g, 1, params, x, out, dout, grad, n, &rc)) return rc;
    HCL_TRY(output_steps(g, &b));
  }
  if (from < g->n_fwd) g->pass_fwd_n = 0;
  for (size_t s = from; s < to; s++) HCL_TRY(run_step(g, &b, &g->steps[s]));
  return HCL_OK;
}

hcl_status hcl_graph_forward(hcl_graph *g, hcl_buf params, hcl_buf x, hcl_buf out, size_t n) {
  hcl_status rc;
  g->pass_fwd_n = 0;
  if (hcl_graph_pass_run(g, 0, params, x, out, (hcl_buf){0}, (hcl_buf){0}, n, &rc)) {
    if (rc == HCL_OK) g->pass_fwd_n = n;
    return rc;
  }
  bind b = {params, x, out, {0}, {0}, n};
  return output_steps(g, &b);
}

size_t hcl_graph_step_of(const hcl_graph *g, int32_t t) {
  return g->nodes[t].fstep < 0 ? 0 : (size_t)g->nodes[t].fstep;
}
