/* Model graphs: the gradient, derived once by reverse mode into steps that
 * follow the forward ones. The gradient of a node lives in a value; the
 * identity rules (bias, add, reshape) share their gradient's value instead
 * of copying it, and a shared value is copied only before it would be
 * changed while another node still reads it. */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

typedef struct rev {
  hcl_graph *g;
  int *gv;      /* [nodes]: gradient value, -1: none yet */
  int *holders; /* [values]: nodes not yet processed whose gradient is it */
  size_t n_holders;
  char *written;   /* [blocks]: 1 gradient written (next one adds), 2 in part by windows */
  size_t *wfloats; /* [blocks]: floats of the disjoint column windows written */
  int zero_all;    /* a step adds to a block gradient nothing wrote yet */
  char *summed;    /* [nodes]: 1 a bias node whose gradient's column sum is done */
} rev;

#define NOMEM(g) hcl_fail((g)->ctx, HCL_ERR_NOMEM, "graph: out of host memory")

static int value_of(const hcl_graph *g, int32_t t) {
  while (g->nodes[t].kind == HCL_GN_RESHAPE) t = g->nodes[t].in[0];
  return g->nodes[t].value;
}

static hcl_status grow_holders(rev *r) {
  if (r->n_holders >= r->g->n_values) return HCL_OK;
  int *h = realloc(r->holders, r->g->n_values * sizeof *h);
  if (!h) return NOMEM(r->g);
  for (size_t i = r->n_holders; i < r->g->n_values; i++) h[i] = 0;
  r->holders = h;
  r->n_holders = r->g->n_values;
  return HCL_OK;
}

static hcl_gstep *step(rev *r, hcl_gs_kind kind, size_t node) {
  return hcl_graph_new_step(r->g, kind, node);
}

/* Node a's gradient also receives value v unchanged. */
static hcl_status alias(rev *r, int32_t a, int v, size_t node);

/* The value node a's gradient is accumulated in, with *acc = 1 when it
 * already holds a contribution (write into it with +=). */
static hcl_status target(rev *r, int32_t a, int *out, int *acc, size_t node) {
  hcl_graph *g = r->g;
  int cur = r->gv[a];
  if (cur >= 0 && r->holders[cur] <= 1) {
    *out = cur;
    *acc = 1;
    return HCL_OK;
  }
  int w = hcl_graph_new_value(g, HCL_GV_ARENA, g->nodes[a].P * g->nodes[a].C);
  if (w < 0) return NOMEM(g);
  HCL_TRY(grow_holders(r));
  *acc = 0;
  if (cur >= 0) { /* shared: work on a copy */
    hcl_gstep *s = step(r, HCL_GS_COPY, node);
    if (!s) return NOMEM(g);
    s->arg[0] = hcl_ga(HCL_GA_VALUE, cur);
    s->arg[1] = hcl_ga(HCL_GA_VALUE, w);
    s->n_args = 2;
    r->holders[cur]--;
    *acc = 1;
  }
  r->gv[a] = w;
  r->holders[w] = 1;
  *out = w;
  return HCL_OK;
}

static hcl_status alias(rev *r, int32_t a, int v, size_t node) {
  if (!r->g->nodes[a].grad) return HCL_OK;
  if (r->gv[a] < 0) {
    r->gv[a] = v;
    r->holders[v]++;
    return HCL_OK;
  }
  int t, acc;
  HCL_TRY(target(r, a, &t, &acc, node));
  hcl_gstep *s = step(r, HCL_GS_AXPY, node);
  if (!s) return NOMEM(r->g);
  s->arg[0] = hcl_ga(HCL_GA_VALUE, v);
  s->arg[1] = hcl_ga(HCL_GA_VALUE, t);
  s->n_args = 2;
  return HCL_OK;
}

/* Parameter gradient steps: the first write sets, later ones add. */
static float param_beta(rev *r, size_t block) {
  if (r->written[block] == 2) r->zero_all = 1; /* the rest of a windowed block */
  float beta = r->written[block] ? 1.0f : 0.0f;
  r->written[block] = 1;
  return beta;
}

/* The same for matmul node v reading a column window of its block: a window
 * disjoint from those written before sets its columns; one equal to an
 * earlier window adds; one overlapping another adds onto a gradient zeroed
 * first. Windows that tile the block leave nothing to zero. */
static float window_beta(rev *r, size_t v) {
  hcl_graph *g = r->g;
  const hcl_gnode *n = &g->nodes[v];
  size_t b = n->block, f = n->first, w = g->nodes[n->in[0]].C;
  if (r->written[b] == 1) return 1.0f;
  int overlap = 0;
  for (size_t i = g->n_fwd; r->written[b] && i + 1 < g->n_steps; i++) {
    const hcl_gstep *s = &g->steps[i]; /* earlier weight gradients of block b */
    if (s->kind != HCL_GS_GEMM || s->gemm != 1 || g->nodes[s->node].block != b) continue;
    const hcl_gnode *o = &g->nodes[s->node];
    size_t of = o->first, ow = g->nodes[o->in[0]].C;
    if (of == f && ow == w) return 1.0f;
    if (of < f + w && f < of + ow) overlap = 1;
  }
  if (overlap) {
    r->zero_all = 1;
    return 1.0f;
  }
  r->wfloats[b] += g->blocks[b].rows * w;
  r->written[b] = r->wfloats[b] == g->blocks[b].rows * g->blocks[b].cols ? 1 : 2;
  return 0.0f;
}

/* A kernel step of elementwise node v over its shape, reading g_val and
 * x_val and writing t (NULL: out of memory). */
static hcl_gstep *ew_step(rev *r, size_t v, int g_val, int x_val, int t) {
  const hcl_gnode *n = &r->g->nodes[v];
  hcl_gstep *s = step(r, HCL_GS_KERNEL, v);
  if (!s) return NULL;
  s->space = n->P * n->C;
  s->cols = n->C;
  s->arg[0] = hcl_ga(HCL_GA_VALUE, g_val);
  s->arg[1] = hcl_ga(HCL_GA_VALUE, x_val);
  s->arg[2] = hcl_ga(HCL_GA_VALUE, t);
  return s;
}

/* Whether the bias gradient of node b (the input of activation v) can be
 * summed inside v's backward kernel: on CPUs (the column sum there is
 * hcl_k_col_sum_vec's order, rows in order per column; GPUs keep their tree
 * reduction), a trainable block, v the bias's only user and its next node (so
 * no other gradient of the block is written in between), and a fresh target. */
static int fuse_colsum(const rev *r, size_t v, int32_t b, int acc) {
  const hcl_graph *g = r->g;
  const hcl_gnode *n = &g->nodes[b];
  return !acc && n->kind == HCL_GN_BIAS && (size_t)b + 1 == v && n->n_users == 1 &&
         g->blocks[n->block].trainable && hcl_ops_cpu_paths(g->ctx);
}

/* gin = g * df(z) of activation v and the bias gradient of its input node b
 * in one kernel: each column's gin is summed over the rows in order, as
 * hcl_k_col_sum_vec does (the same bits as the two steps). */
static hcl_status act_colsum_grad(rev *r, size_t v, int g_val, int x_val, int32_t b, int t) {
  hcl_graph *g = r->g;
  hcl_gnode *n = &g->nodes[v], *bn = &g->nodes[b];
  hcl_gstep *s = ew_step(r, v, g_val, x_val, t);
  if (!s) return NOMEM(g);
  s->arg[3] = hcl_ga(HCL_GA_GRAD, (int)bn->block);
  float beta = param_beta(r, bn->block);
  HCL_TRY(hcl_graph_kernel_begin_cols(g, s, 4));
  char f[1024];
  hcl_graph_act_expr(n, 1, "z", f, sizeof f);
  /* 8 columns a work-item (a full row segment: the compiler unrolls the
   * constant loop), fewer at the right edge */
  static const char *const bound[2] = {"8", "nc"};
  HCL_TRY(hcl_graph_src(g, "  size_t nc = cols - c0 < 8 ? cols - c0 : 8;\n"
                           "  float sum[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};\n"));
  for (int k = 0; k < 2; k++)
    HCL_TRY(hcl_graph_src(g,
                          "  %s\n"
                          "    for (size_t row = 0; row < rows; row++)\n"
                          "      for (size_t j = 0; j < %s; j++) {\n"
                          "        size_t w = row * cols + c0 + j;\n"
                          "        float z = a1[o1 + r * s1 + w];\n"
                          "        float d = a0[o0 + r * s0 + w] * %s;\n"
                          "        a2[o2 + r * s2 + w] = d;\n"
                          "        sum[j] += d;\n"
                          "      }\n",
                          k ? "else" : "if (nc == 8)", bound[k], f));
  char scale[32];
  hcl_graph_lit(scale, sizeof scale, bn->scale);
  HCL_TRY(hcl_graph_src(g,
                        "  for (size_t j = 0; j < nc; j++) {\n"
                        "    float v = %s * sum[j];\n"
                        "    size_t o = o3 + r * s3 + c0 + j;\n"
                        "    a3[o] = %s;\n"
                        "  }\n}\n",
                        scale, beta == 0.0f ? "v" : "a3[o] + v"));
  r->summed[b] = 1;
  s->beta = beta;
  HCL_TRY(hcl_graph_kernel_end(g, s));
  /* the unfused pair's elementwise kernel, for large batches (graph_exec.c) */
  hcl_gstep alt = *s;
  HCL_TRY(hcl_graph_kernel_begin(g, &alt, 3));
  HCL_TRY(hcl_graph_src(g,
                        "  float z = a1[o1 + r * s1 + w];\n"
                        "  a2[o2 + r * s2 + w] = a0[o0 + r * s0 + w] * %s;\n}\n",
                        f));
  HCL_TRY(hcl_graph_kernel_end(g, &alt));
  s->alt_kernel = alt.kernel;
  return HCL_OK;
}

/* gin (+)= g * df(x) (act) or g * other (mul): one kernel. */
static hcl_status ew_grad(rev *r, size_t v, int g_val, int x_val, int32_t into) {
  hcl_graph *g = r->g;
  hcl_gnode *n = &g->nodes[v];
  int t, acc;
  HCL_TRY(target(r, into, &t, &acc, v));
  if (n->kind == HCL_GN_ACT && fuse_colsum(r, v, into, acc))
    return act_colsum_grad(r, v, g_val, x_val, into, t);
  hcl_gstep *s = ew_step(r, v, g_val, x_val, t);
  if (!s) return NOMEM(g);
  HCL_TRY(hcl_graph_kernel_begin(g, s, 3));
  char f[1024] = "a1[o1 + r * s1 + w]";
  if (n->kind == HCL_GN_ACT) {
    HCL_TRY(hcl_graph_src(g, "  float z = a1[o1 + r * s1 + w];\n"));
    hcl_graph_act_expr(n, 1, "z", f, sizeof f);
  }
  HCL_TRY(hcl_graph_src(g,
                        "  size_t i = o2 + r * s2 + w;\n  a2[i] = %sa0[o0 + r * s0 + w] * %s;\n}\n",
                        acc ? "a2[i] + " : "", f));
  return hcl_graph_kernel_end(g, s);
}

/* slice: gin[row, first + c] += g[row, c]; mean: gin[p, c] (+)= g[c] / P;
 * transpose: gin[p, c] (+)= g[c, p]; patch: its inverse permutation. */
static hcl_status gather_grad(rev *r, size_t v, int g_val) {
  hcl_graph *g = r->g;
  hcl_gnode *n = &g->nodes[v], *a = &g->nodes[n->in[0]];
  int t, acc;
  HCL_TRY(target(r, n->in[0], &t, &acc, v));
  hcl_gstep *s;
  if (n->kind == HCL_GN_SLICE && !acc) {
    if (!(s = step(r, HCL_GS_ZERO, v))) return NOMEM(g);
    s->arg[0] = hcl_ga(HCL_GA_VALUE, t);
    s->n_args = 1;
  }
  if (!(s = step(r, HCL_GS_KERNEL, v))) return NOMEM(g);
  s->arg[0] = hcl_ga(HCL_GA_VALUE, g_val);
  s->arg[1] = hcl_ga(HCL_GA_VALUE, t);
  if (n->kind == HCL_GN_SLICE) {
    s->space = n->P * n->C;
    s->cols = n->C;
    HCL_TRY(hcl_graph_kernel_begin(g, s, 2));
    HCL_TRY(hcl_graph_src(g,
                          "  a1[o1 + r * s1 + row * %zuu + %zuu + c] += a0[o0 + r * s0 + w];\n}\n",
                          a->C, n->first));
    return hcl_graph_kernel_end(g, s);
  }
  s->space = a->P * a->C;
  s->cols = a->C;
  HCL_TRY(hcl_graph_kernel_begin(g, s, 2));
  if (n->kind == HCL_GN_PATCH) { /* a permutation: gin[i, p*s + j, c] (+)= g[i, p, c*s + j] */
    size_t ps = n->first;
    HCL_TRY(hcl_graph_src(g,
                          "  size_t i = row / %zuu, q = row %% %zuu, p = q / %zuu, j = q %% %zuu;\n"
                          "  float d = a0[o0 + r * s0 + i * %zuu + p * %zuu + c * %zuu + j];\n"
                          "  a1[o1 + r * s1 + w] = %sd;\n}\n",
                          a->P, a->P, ps, ps, a->P * a->C, n->C, ps,
                          acc ? "a1[o1 + r * s1 + w] + " : ""));
    return hcl_graph_kernel_end(g, s);
  }
  if (n->kind == HCL_GN_TRANSPOSE) { /* gin[i, p, c] (+)= g[i, c, p] */
    HCL_TRY(hcl_graph_src(g,
                          "  size_t i = row / %zuu, p = row %% %zuu;\n"
                          "  float d = a0[o0 + r * s0 + i * %zuu + c * %zuu + p];\n"
                          "  a1[o1 + r * s1 + w] = %sd;\n}\n",
                          a->P, a->P, a->P * a->C, a->P, acc ? "a1[o1 + r * s1 + w] + " : ""));
    return hcl_graph_kernel_end(g, s);
  }
  HCL_TRY(hcl_graph_src(g,
                        "  float d = a0[o0 + r * s0 + row / %zuu * %zuu + c] * (1.0f / %zu.0f);\n"
                        "  a1[o1 + r * s1 + w] = %sd;\n}\n",
                        a->P, a->C, a->P, acc ? "a1[o1 + r * s1 + w] + " : ""));
  return hcl_graph_kernel_end(g, s);
}

/* A custom op's backward adds into din, zeroed first, unless the op writes
 * a fresh din itself (HCL_GCUSTOM_DIN_SET). */
static hcl_status custom_grad(rev *r, size_t v, int g_val) {
  hcl_graph *g = r->g;
  hcl_gnode *n = &g->nodes[v];
  int din[HCL_GSTEP_MAX_ARGS];
  int sets = HCL_STRUCT_HAS(n->op, hcl_graph_custom, flags) && (n->op->flags & HCL_GCUSTOM_DIN_SET);
  uint32_t fresh = 0;
  for (size_t i = 0; i < n->n_ins; i++) {
    din[i] = -1;
    if (!g->nodes[n->ins[i]].grad) continue;
    int acc;
    HCL_TRY(target(r, n->ins[i], &din[i], &acc, v));
    if (acc) continue;
    if (sets) {
      fresh |= 1u << i;
      continue;
    }
    hcl_gstep *z = step(r, HCL_GS_ZERO, v);
    if (!z) return NOMEM(g);
    z->arg[0] = hcl_ga(HCL_GA_VALUE, din[i]);
    z->n_args = 1;
  }
  hcl_gstep *s = step(r, HCL_GS_CUSTOM_B, v);
  if (!s) return NOMEM(g);
  size_t ni = n->n_ins, nb = n->n_cblocks;
  for (size_t i = 0; i < ni; i++) {
    s->arg[i] = hcl_ga(HCL_GA_VALUE, value_of(g, n->ins[i]));
    s->arg[ni + 1 + i] = hcl_ga(HCL_GA_VALUE, din[i]);
  }
  s->arg[ni] = hcl_ga(HCL_GA_VALUE, g_val);
  for (size_t i = 0; i < nb; i++) { /* the op adds: a gradient nothing wrote yet starts at 0 */
    if (r->written[n->cblock[i]] != 1) r->zero_all = 1;
    r->written[n->cblock[i]] = 1;
    s->arg[2 * ni + 1 + i] = hcl_ga(HCL_GA_PARAM, (int)n->cblock[i]);
    s->arg[2 * ni + 1 + nb + i] = hcl_ga(HCL_GA_GRAD, (int)n->cblock[i]);
  }
  s->n_args = 2 * ni + 1 + 2 * nb;
  s->n_in = (int)ni;
  s->din_set = fresh;
  return HCL_OK;
}

/* The steps of node v's gradient rule, given its gradient value gv. */
static hcl_status node_grad(rev *r, size_t v, int gv) {
  hcl_graph *g = r->g;
  hcl_gnode *n = &g->nodes[v];
  hcl_gstep *s;
  switch (n->kind) {
  case HCL_GN_MATMUL: {
    if (g->blocks[n->block].trainable) { /* a frozen block keeps the zero of ZERO_GRAD */
      if (!(s = step(r, HCL_GS_GEMM, v))) return NOMEM(g); /* dW (+)= G^T A */
      s->gemm = 1;
      s->arg[0] = hcl_ga(HCL_GA_VALUE, gv);
      s->arg[1] = hcl_ga(HCL_GA_VALUE, value_of(g, n->in[0]));
      s->arg[2] = hcl_ga(HCL_GA_GRAD, (int)n->block);
      s->n_args = 3;
      s->beta = g->nodes[n->in[0]].C == g->blocks[n->block].cols ? param_beta(r, n->block)
                                                                 : window_beta(r, v);
    }
    if (!g->nodes[n->in[0]].grad) return HCL_OK;
    int t, acc;
    HCL_TRY(target(r, n->in[0], &t, &acc, v));
    if (!(s = step(r, HCL_GS_GEMM, v))) return NOMEM(g); /* dA (+)= G W */
    s->gemm = 2;
    s->arg[0] = hcl_ga(HCL_GA_VALUE, gv);
    s->arg[1] = hcl_ga(HCL_GA_PARAM, (int)n->block);
    s->arg[2] = hcl_ga(HCL_GA_VALUE, t);
    s->n_args = 3;
    s->beta = acc ? 1.0f : 0.0f;
    return HCL_OK;
  }
  case HCL_GN_BIAS:
    if (g->blocks[n->block].trainable && !r->summed[v]) {
      if (!(s = step(r, HCL_GS_COLSUM, v))) return NOMEM(g);
      s->arg[0] = hcl_ga(HCL_GA_VALUE, gv);
      s->arg[1] = hcl_ga(HCL_GA_GRAD, (int)n->block);
      s->n_args = 2;
      s->beta = param_beta(r, n->block);
    }
    return alias(r, n->in[0], gv, v);
  case HCL_GN_ADD: HCL_TRY(alias(r, n->in[0], gv, v)); return alias(r, n->in[1], gv, v);
  case HCL_GN_RESHAPE: return alias(r, n->in[0], gv, v);
  case HCL_GN_ACT:
    if (!g->nodes[n->in[0]].grad) return HCL_OK;
    return ew_grad(r, v, gv, value_of(g, n->in[0]), n->in[0]);
  case HCL_GN_MUL:
    for (int i = 0; i < 2; i++)
      if (g->nodes[n->in[i]].grad) HCL_TRY(ew_grad(r, v, gv, value_of(g, n->in[1 - i]), n->in[i]));
    return HCL_OK;
  case HCL_GN_SLICE:
  case HCL_GN_MEAN:
  case HCL_GN_TRANSPOSE:
  case HCL_GN_PATCH:
    if (!g->nodes[n->in[0]].grad) return HCL_OK;
    return gather_grad(r, v, gv);
  case HCL_GN_CUSTOM: return custom_grad(r, v, gv);
  default: return HCL_OK;
  }
}

hcl_status hcl_graph_grad_steps(hcl_graph *g) {
  rev r = {.g = g};
  r.gv = malloc(g->n * sizeof *r.gv);
  r.written = calloc(g->n_blocks + 1, 1);
  r.wfloats = calloc(g->n_blocks + 1, sizeof *r.wfloats);
  r.summed = calloc(g->n + 1, 1);
  hcl_status rc = r.gv && r.written && r.wfloats && r.summed ? grow_holders(&r) : NOMEM(g);
  for (size_t i = 0; r.gv && i < g->n; i++) r.gv[i] = -1;
  int dout = rc == HCL_OK ? hcl_graph_new_value(g, HCL_GV_DOUT, g->out_dim) : -1;
  if (rc == HCL_OK && dout < 0) rc = NOMEM(g);
  if (rc == HCL_OK) rc = grow_holders(&r);
  if (rc == HCL_OK && g->nodes[g->output].grad) {
    r.gv[g->output] = dout;
    r.holders[dout] = 2; /* the caller's dout is never written */
  }
  for (size_t v = g->n; rc == HCL_OK && v-- > 0;) {
    int gv = r.gv[v];
    if (gv < 0) continue; /* no path to the output */
    rc = node_grad(&r, v, gv);
    if (rc == HCL_OK) rc = grow_holders(&r);
    if (rc == HCL_OK) r.holders[gv]--;
  }
  size_t covered = 0; /* floats of the blocks the steps write */
  for (size_t b = 0; rc == HCL_OK && b < g->n_blocks; b++)
    if (r.written[b] == 1) covered += g->blocks[b].rows * g->blocks[b].cols;
  if (rc == HCL_OK && (covered != g->n_params || r.zero_all)) { /* the rest starts at 0 */
    hcl_gstep *s = hcl_graph_new_step(g, HCL_GS_ZERO_GRAD, 0);
    if (!s)
      rc = NOMEM(g);
    else {
      hcl_gstep z = *s;
      memmove(&g->steps[g->n_fwd + 1], &g->steps[g->n_fwd],
              (g->n_steps - 1 - g->n_fwd) * sizeof *g->steps);
      g->steps[g->n_fwd] = z;
    }
  }
  free(r.gv);
  free(r.holders);
  free(r.written);
  free(r.wfloats);
  free(r.summed);
  return rc;
}
