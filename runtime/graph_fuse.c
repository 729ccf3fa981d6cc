/* Model graphs: which nodes need a gradient, which elementwise chains run as
 * one kernel, and which results must be kept in memory. */
#include "graph.h"

static int elementwise(hcl_gn_kind k) {
  return k == HCL_GN_BIAS || k == HCL_GN_ACT || k == HCL_GN_ADD || k == HCL_GN_MUL;
}

static size_t n_inputs(const hcl_gnode *n) {
  if (n->kind == HCL_GN_CUSTOM) return n->n_ins;
  if (n->kind == HCL_GN_INPUT) return 0;
  return n->in[1] >= 0 ? 2 : 1;
}

static int32_t input(const hcl_gnode *n, size_t i) {
  return n->kind == HCL_GN_CUSTOM ? n->ins[i] : n->in[i];
}

/* A node that features() or the caller reads must be kept. */
static int pinned(const hcl_graph *g, int32_t t) {
  if (t == g->output) return 1;
  for (size_t i = 0; i < g->n_features; i++)
    if (g->features[i] == t) return 1;
  return 0;
}

/* A fused group grows along single-user chains: node v joins the group of
 * its first elementwise input that has v as its only user, so every member
 * but the last has no reader outside the group and the group runs as one
 * kernel where its last member stands. */
void hcl_graph_mark(hcl_graph *g) {
  int groups = 0;
  for (size_t v = 0; v < g->n; v++) {
    hcl_gnode *n = &g->nodes[v];
    /* a frozen block (trainable = 0) needs no gradient, so nothing below
     * it does either (a fixed random first layer costs no backward) */
    n->grad =
        ((n->kind == HCL_GN_MATMUL || n->kind == HCL_GN_BIAS) && g->blocks[n->block].trainable) ||
        n->n_cblocks;
    for (size_t i = 0; i < n_inputs(n); i++) {
      g->nodes[input(n, i)].n_users++;
      n->grad |= g->nodes[input(n, i)].grad;
    }
    if (n->stop) n->grad = 0;
  }
  for (size_t v = 0; v < g->n; v++) {
    hcl_gnode *n = &g->nodes[v];
    if (!elementwise(n->kind)) {
      n->store = n->kind != HCL_GN_RESHAPE;
      for (size_t i = 0; i < n_inputs(n); i++) g->nodes[input(n, i)].store = 1;
      continue;
    }
    for (size_t i = 0; i < n_inputs(n) && n->group < 0; i++) {
      hcl_gnode *a = &g->nodes[input(n, i)];
      if (elementwise(a->kind) && a->n_users == 1) n->group = a->group;
    }
    if (n->group < 0) n->group = groups++;
    /* what the gradient reads: an activation's input, a product's operands */
    if (n->grad && n->kind == HCL_GN_ACT) g->nodes[n->in[0]].store = 1;
    if (n->grad && n->kind == HCL_GN_MUL) g->nodes[n->in[0]].store = g->nodes[n->in[1]].store = 1;
  }
  for (size_t v = 0; v < g->n; v++) {
    hcl_gnode *n = &g->nodes[v];
    if (pinned(g, (int32_t)v)) n->store = 1;
    /* the last member of a group, and any member read outside it */
    if (n->group >= 0 && n->n_users != 1) n->store = 1;
    if (n->group >= 0 && n->n_users == 1) {
      int inside = 0;
      for (size_t u = v + 1; u < g->n && !inside; u++) {
        const hcl_gnode *m = &g->nodes[u];
        for (size_t i = 0; i < n_inputs(m); i++)
          if (input(m, i) == (int32_t)v) inside = m->group == n->group;
      }
      if (!inside) n->store = 1;
    }
  }
  for (size_t v = 0; v < g->n; v++)
    if (g->nodes[v].kind == HCL_GN_RESHAPE) g->nodes[g->nodes[v].in[0]].store = 1;
  /* a patch reads through a transpose only it reads (one gather, not two);
   * the transpose's gradient never needs its value */
  for (size_t v = 0; v < g->n; v++) {
    hcl_gnode *n = &g->nodes[v], *a = n->kind == HCL_GN_PATCH ? &g->nodes[n->in[0]] : NULL;
    if (a && a->kind == HCL_GN_TRANSPOSE && a->n_users == 1 && !pinned(g, n->in[0])) a->store = 0;
  }
  /* what the output depends on; the rest only features() runs */
  if (g->output >= 0) g->nodes[g->output].needed = 1;
  for (size_t v = g->n; v-- > 0;)
    if (g->nodes[v].needed)
      for (size_t i = 0; i < n_inputs(&g->nodes[v]); i++)
        g->nodes[input(&g->nodes[v], i)].needed = 1;
}
