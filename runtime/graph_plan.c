/* Model graphs: buffers planned once per run. Each arena value lives from
 * the first step that touches it to the last; values whose lives do not
 * overlap share memory (first fit by offset, in order of first use). */
#include "graph.h"

#include <stdlib.h>

#define ALIGN_FLOATS 64 /* 256-byte offsets: aligned loads for every kernel */

static size_t floats_of(const hcl_graph *g, const hcl_gvalue *v) {
  size_t f = g->R * g->max_batch * v->cols;
  return (f + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

typedef struct born {
  int first;
  size_t id;
} born;

static int by_first(const void *a, const void *b) {
  const born *x = a, *y = b;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

hcl_status hcl_graph_plan(hcl_graph *g) {
  for (size_t i = 0; i < g->n_values; i++) g->values[i].first = g->values[i].last = -1;
  for (size_t s = 0; s < g->n_steps; s++)
    for (size_t a = 0; a < g->steps[s].n_args; a++) {
      hcl_garg arg = g->steps[s].arg[a];
      if (arg.kind != HCL_GA_VALUE || arg.id < 0) continue;
      hcl_gvalue *v = &g->values[arg.id];
      if (v->first < 0) v->first = (int)s;
      v->last = (int)s;
    }
  born *order = malloc((g->n_values + 1) * sizeof *order);
  size_t *live = malloc((g->n_values + 1) * sizeof *live); /* placed, by offset */
  if (!order || !live) {
    free(order), free(live);
    return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  }
  size_t n = 0, n_live = 0;
  for (size_t i = 0; i < g->n_values; i++)
    if (g->values[i].ext == HCL_GV_ARENA && g->values[i].first >= 0)
      order[n++] = (born){g->values[i].first, i};
  qsort(order, n, sizeof *order, by_first);
  g->arena_floats = g->naive_floats = 0;
  for (size_t k = 0; k < n; k++) {
    hcl_gvalue *v = &g->values[order[k].id];
    size_t size = floats_of(g, v), off = 0, at = 0, keep = 0;
    for (size_t j = 0; j < n_live; j++) /* drop the values dead before v is born */
      if (g->values[live[j]].last >= v->first) live[keep++] = live[j];
    n_live = keep;
    for (; at < n_live; at++) { /* the lowest gap that holds v */
      const hcl_gvalue *u = &g->values[live[at]];
      if (off + size <= u->offset) break;
      size_t end = u->offset + floats_of(g, u);
      if (end > off) off = end;
    }
    v->offset = off;
    while (at < n_live && g->values[live[at]].offset < off) at++;
    for (size_t j = n_live; j > at; j--) live[j] = live[j - 1];
    live[at] = order[k].id;
    n_live++;
    g->naive_floats += size;
    if (off + size > g->arena_floats) g->arena_floats = off + size;
  }
  free(order), free(live);
  return HCL_OK;
}
