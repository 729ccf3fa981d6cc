/* Model graphs: the builders (hcl_host_api.g_*), which record nodes and
 * check their shapes as the model calls them. */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hcl_status hcl_graph_new(hcl_ctx *ctx, const hcl_block *blocks, size_t n_blocks, size_t n_params,
                         size_t R, size_t x_size, size_t max_batch, hcl_graph **out) {
  hcl_graph *g = calloc(1, sizeof *g);
  if (!g) return hcl_fail(ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  g->ctx = ctx;
  g->blocks = blocks;
  g->n_blocks = n_blocks;
  g->n_params = n_params;
  g->R = R;
  g->x_size = x_size;
  g->max_batch = max_batch;
  g->output = -1;
  *out = g;
  return HCL_OK;
}

void hcl_graph_free(hcl_graph *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n; i++) free(g->nodes[i].ins);
  for (size_t i = 0; g->kernels && i < g->n_kernels; i++)
    if (g->kernels[i]) clReleaseKernel(g->kernels[i]);
  for (int i = 0; i < 3; i++) {
    if (g->pass[i]) clReleaseKernel(g->pass[i]);
    if (g->pass_prog[i]) clReleaseProgram(g->pass_prog[i]);
  }
  if (g->prog) clReleaseProgram(g->prog);
  if (g->arena.mem) hcl_buf_free(g->ctx, &g->arena);
  if (g->pass_arena.mem) hcl_buf_free(g->ctx, &g->pass_arena);
  free(g->kernels);
  free(g->pass_path);
  free(g->features);
  free(g->nodes);
  free(g->values);
  free(g->steps);
  for (size_t i = 0; g->bodies && i < g->n_kernels; i++) free(g->bodies[i]);
  free(g->bodies);
  free(g->cur);
  free(g->src);
  free(g);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
/* Record the first error (later ones follow from it) and return HCL_GRAPH_BAD. */
static hcl_tensor
bad(hcl_graph *g, const char *op, const char *fmt, ...) {
  if (g->rc == HCL_OK) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(g->err, sizeof g->err, "graph: node %zu, %s: %s", g->n, op, msg);
    g->rc = HCL_ERR_PARAM;
  }
  return HCL_GRAPH_BAD;
}

/* Node t when it is a valid id, else NULL (after an error: silently). */
static hcl_gnode *node(hcl_graph *g, hcl_tensor t, const char *op) {
  if (t >= 0 && (size_t)t < g->n) return &g->nodes[t];
  if (t != HCL_GRAPH_BAD)
    bad(g, op, "tensor %d does not exist (the graph has %zu)", (int)t, g->n);
  else if (g->rc == HCL_OK)
    bad(g, op, "input is HCL_GRAPH_BAD");
  return NULL;
}

/* Append a node of kind with shape [P, C]; returns its id. */
static hcl_tensor push(hcl_graph *g, hcl_gn_kind kind, int32_t a, int32_t b, size_t P, size_t C) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 32;
    hcl_gnode *p = realloc(g->nodes, cap * sizeof *p);
    if (!p) {
      g->rc = HCL_ERR_NOMEM;
      snprintf(g->err, sizeof g->err, "graph: out of host memory");
      return HCL_GRAPH_BAD;
    }
    g->nodes = p;
    g->cap = cap;
  }
  hcl_gnode *n = &g->nodes[g->n];
  memset(n, 0, sizeof *n);
  n->kind = kind;
  n->in[0] = a;
  n->in[1] = b;
  n->P = P;
  n->C = C;
  n->group = -1;
  n->value = -1;
  n->scale = 1.0f;
  return (hcl_tensor)g->n++;
}

/* The block named `name`, or -1 with the error recorded. */
static long find_block(hcl_graph *g, const char *name, const char *op) {
  for (size_t i = 0; name && i < g->n_blocks; i++)
    if (!strcmp(g->blocks[i].name, name)) return (long)i;
  bad(g, op, "no parameter block named '%s'", name ? name : "(null)");
  return -1;
}

hcl_tensor hcl_g_input(hcl_graph *g) { return push(g, HCL_GN_INPUT, -1, -1, 1, g->x_size); }

hcl_tensor hcl_g_matmul(hcl_graph *g, hcl_tensor a, const char *block) {
  hcl_gnode *x = node(g, a, "matmul");
  long b = x ? find_block(g, block, "matmul") : -1;
  if (b < 0) return HCL_GRAPH_BAD;
  const hcl_block *blk = &g->blocks[b];
  if (blk->cols != x->C)
    return bad(g, "matmul",
               "block %s is [%zu, %zu] but the input is [%zu, %zu] per sample: the "
               "block's columns must equal the input's channels",
               blk->name, blk->rows, blk->cols, x->P, x->C);
  hcl_tensor t = push(g, HCL_GN_MATMUL, a, -1, x->P, blk->rows);
  if (t >= 0) g->nodes[t].block = (size_t)b;
  return t;
}

hcl_tensor hcl_g_matmul_cols(hcl_graph *g, hcl_tensor a, const char *block, size_t first) {
  hcl_gnode *x = node(g, a, "matmul_cols");
  long b = x ? find_block(g, block, "matmul_cols") : -1;
  if (b < 0) return HCL_GRAPH_BAD;
  const hcl_block *blk = &g->blocks[b];
  if (first > blk->cols || x->C > blk->cols - first)
    return bad(g, "matmul_cols",
               "block %s is [%zu, %zu]: columns %zu .. %zu (the input's %zu channels from "
               "column %zu) do not fit",
               blk->name, blk->rows, blk->cols, first, first + x->C - 1, x->C, first);
  hcl_tensor t = push(g, HCL_GN_MATMUL, a, -1, x->P, blk->rows);
  if (t >= 0) {
    g->nodes[t].block = (size_t)b;
    g->nodes[t].first = first;
  }
  return t;
}

hcl_tensor hcl_g_bias(hcl_graph *g, hcl_tensor a, const char *block) {
  hcl_gnode *x = node(g, a, "bias");
  long b = x ? find_block(g, block, "bias") : -1;
  if (b < 0) return HCL_GRAPH_BAD;
  const hcl_block *blk = &g->blocks[b];
  if (blk->rows * blk->cols != x->C)
    return bad(g, "bias",
               "block %s has %zu values but the input is [%zu, %zu] per sample: one "
               "value per channel needed",
               blk->name, blk->rows * blk->cols, x->P, x->C);
  hcl_tensor t = push(g, HCL_GN_BIAS, a, -1, x->P, x->C);
  if (t >= 0) g->nodes[t].block = (size_t)b;
  return t;
}

hcl_tensor hcl_g_act(hcl_graph *g, hcl_tensor a, int act, const float *coef, size_t n_coef) {
  hcl_gnode *x = node(g, a, "act");
  if (!x) return HCL_GRAPH_BAD;
  if (act < HCL_GACT_RELU || act > HCL_GACT_POLY)
    return bad(g, "act", "unknown activation %d", act);
  size_t want_lo = act == HCL_GACT_POLY ? 1 : 0;
  size_t want_hi = act == HCL_GACT_POLY ? HCL_GRAPH_MAX_COEF : act == HCL_GACT_LEAKY_RELU ? 1 : 0;
  if (n_coef < want_lo || n_coef > want_hi || (n_coef && !coef))
    return bad(g, "act", "activation %d takes %zu to %zu coefficients, got %zu", act, want_lo,
               want_hi, n_coef);
  hcl_tensor t = push(g, HCL_GN_ACT, a, -1, x->P, x->C);
  if (t < 0) return t;
  hcl_gnode *n = &g->nodes[t];
  n->act = act;
  n->n_coef = n_coef;
  for (size_t i = 0; i < n_coef; i++) n->coef[i] = coef[i];
  return t;
}

/* Elementwise binary ops: both operands of the same shape. */
static hcl_tensor binary(hcl_graph *g, hcl_gn_kind kind, const char *op, hcl_tensor a,
                         hcl_tensor b) {
  hcl_gnode *x = node(g, a, op), *y = x ? node(g, b, op) : NULL;
  if (!y) return HCL_GRAPH_BAD;
  if (x->P != y->P || x->C != y->C)
    return bad(g, op, "operands are [%zu, %zu] and [%zu, %zu] per sample: shapes must match", x->P,
               x->C, y->P, y->C);
  return push(g, kind, a, b, x->P, x->C);
}

hcl_tensor hcl_g_add(hcl_graph *g, hcl_tensor a, hcl_tensor b) {
  return binary(g, HCL_GN_ADD, "add", a, b);
}

hcl_tensor hcl_g_mul(hcl_graph *g, hcl_tensor a, hcl_tensor b) {
  return binary(g, HCL_GN_MUL, "mul", a, b);
}

hcl_tensor hcl_g_reshape(hcl_graph *g, hcl_tensor a, size_t positions, size_t channels) {
  hcl_gnode *x = node(g, a, "reshape");
  if (!x) return HCL_GRAPH_BAD;
  if (positions * channels != x->P * x->C || !positions)
    return bad(g, "reshape", "[%zu, %zu] to [%zu, %zu]: the number of values must stay %zu", x->P,
               x->C, positions, channels, x->P * x->C);
  return push(g, HCL_GN_RESHAPE, a, -1, positions, channels);
}

hcl_tensor hcl_g_slice(hcl_graph *g, hcl_tensor a, size_t first, size_t count) {
  hcl_gnode *x = node(g, a, "slice");
  if (!x) return HCL_GRAPH_BAD;
  if (!count || first > x->C || count > x->C - first)
    return bad(g, "slice", "channels %zu..%zu of [%zu, %zu]: out of range or empty", first,
               first + count, x->P, x->C);
  hcl_tensor t = push(g, HCL_GN_SLICE, a, -1, x->P, count);
  if (t >= 0) g->nodes[t].first = first;
  return t;
}

hcl_tensor hcl_g_mean(hcl_graph *g, hcl_tensor a) {
  hcl_gnode *x = node(g, a, "mean");
  if (!x) return HCL_GRAPH_BAD;
  return push(g, HCL_GN_MEAN, a, -1, 1, x->C);
}

hcl_tensor hcl_g_transpose(hcl_graph *g, hcl_tensor a) {
  hcl_gnode *x = node(g, a, "transpose");
  if (!x) return HCL_GRAPH_BAD;
  return push(g, HCL_GN_TRANSPOSE, a, -1, x->C, x->P);
}

hcl_tensor hcl_g_matmul_scaled(hcl_graph *g, hcl_tensor a, const char *block, float alpha) {
  hcl_tensor t = hcl_g_matmul(g, a, block);
  if (t >= 0) g->nodes[t].scale = alpha;
  return t;
}

hcl_tensor hcl_g_bias_scaled(hcl_graph *g, hcl_tensor a, const char *block, float scale) {
  hcl_tensor t = hcl_g_bias(g, a, block);
  if (t >= 0) g->nodes[t].scale = scale;
  return t;
}

hcl_tensor hcl_g_detach(hcl_graph *g, hcl_tensor a) {
  hcl_gnode *x = node(g, a, "detach");
  if (!x) return HCL_GRAPH_BAD;
  /* a view of the same floats, like a reshape, that stops the gradient */
  hcl_tensor t = push(g, HCL_GN_RESHAPE, a, -1, x->P, x->C);
  if (t >= 0) g->nodes[t].stop = 1;
  return t;
}

hcl_tensor hcl_g_patch(hcl_graph *g, hcl_tensor a, size_t s) {
  hcl_gnode *x = node(g, a, "patch");
  if (!x) return HCL_GRAPH_BAD;
  if (s < 1 || x->P % s)
    return bad(g, "patch",
               "patches of %zu positions over [%zu, %zu]: the positions must be a "
               "multiple of the patch size",
               s, x->P, x->C);
  hcl_tensor t = push(g, HCL_GN_PATCH, a, -1, x->P / s, x->C * s);
  if (t >= 0) g->nodes[t].first = s;
  return t;
}

hcl_tensor hcl_g_custom(hcl_graph *g, const hcl_graph_custom *op, const hcl_tensor *in,
                        size_t n_in) {
  if (!op || op->struct_size < offsetof(hcl_graph_custom, backward) + sizeof op->backward ||
      !op->forward || !op->backward || !op->out_channels)
    return bad(g, "custom",
               "op %s: descriptor missing, too small, or without forward, backward "
               "or out_channels",
               op && op->name ? op->name : "(unnamed)");
  const char *name = op->name ? op->name : "";
  if (!n_in || !in || n_in > HCL_GRAPH_CUSTOM_MAX_IN)
    return bad(g, "custom", "op %s: %zu inputs (1 to %d)", name, in ? n_in : 0,
               HCL_GRAPH_CUSTOM_MAX_IN);
  size_t blk[HCL_GRAPH_CUSTOM_MAX_BLOCKS], n_blk = 0;
  for (const char *const *b = op->blocks; b && *b; b++) {
    if (n_blk == HCL_GRAPH_CUSTOM_MAX_BLOCKS)
      return bad(g, "custom", "op %s: more than %d blocks", name, HCL_GRAPH_CUSTOM_MAX_BLOCKS);
    long k = find_block(g, *b, "custom");
    if (k < 0) return HCL_GRAPH_BAD;
    blk[n_blk++] = (size_t)k;
  }
  for (size_t i = 0; i < n_in; i++)
    if (!node(g, in[i], "custom")) return HCL_GRAPH_BAD;
  int32_t *ins = malloc(n_in * sizeof *ins);
  if (!ins) return bad(g, "custom", "out of host memory");
  memcpy(ins, in, n_in * sizeof *ins);
  hcl_tensor t = push(g, HCL_GN_CUSTOM, in[0], -1, 1, op->out_channels);
  if (t < 0) {
    free(ins);
    return t;
  }
  g->nodes[t].ins = ins;
  g->nodes[t].n_ins = n_in;
  g->nodes[t].op = op;
  memcpy(g->nodes[t].cblock, blk, sizeof blk);
  g->nodes[t].n_cblocks = n_blk;
  return t;
}

hcl_status hcl_g_feature(hcl_graph *g, hcl_tensor t, size_t layer) {
  if (!node(g, t, "feature")) return g->rc;
  if (layer < 1 || layer > g->n + 1) {
    bad(g, "feature", "layer %zu: expected 1 to the number of nodes (%zu)", layer, g->n);
    return g->rc;
  }
  if (layer > g->n_features) {
    int32_t *f = realloc(g->features, layer * sizeof *f);
    if (!f) {
      bad(g, "feature", "out of host memory");
      return g->rc;
    }
    for (size_t i = g->n_features; i < layer; i++) f[i] = -1;
    g->features = f;
    g->n_features = layer;
  }
  g->features[layer - 1] = t;
  return HCL_OK;
}

hcl_status hcl_g_output(hcl_graph *g, hcl_tensor t) {
  hcl_gnode *x = node(g, t, "output");
  if (!x) return g->rc;
  if (x->P != 1)
    bad(g, "output",
        "tensor %d is [%zu, %zu] per sample: the output must have one position "
        "(take g_mean or g_reshape first)",
        (int)t, x->P, x->C);
  else if (x->kind == HCL_GN_INPUT || x->kind == HCL_GN_RESHAPE)
    bad(g, "output", "tensor %d is the input, a reshape or a detach: the output must be computed",
        (int)t);
  if (g->rc != HCL_OK) return g->rc;
  g->output = t;
  g->out_dim = x->C;
  return HCL_OK;
}
