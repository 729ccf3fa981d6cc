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

static int overlap(const hcl_gvalue *a, const hcl_gvalue *b) {
  return !(a->last < b->first || b->last < a->first);
}

void hcl_graph_plan(hcl_graph *g) {
  for (size_t i = 0; i < g->n_values; i++) g->values[i].first = g->values[i].last = -1;
  for (size_t s = 0; s < g->n_steps; s++)
    for (size_t a = 0; a < g->steps[s].n_args; a++) {
      hcl_garg arg = g->steps[s].arg[a];
      if (arg.kind != HCL_GA_VALUE || arg.id < 0) continue;
      hcl_gvalue *v = &g->values[arg.id];
      if (v->first < 0) v->first = (int)s;
      v->last = (int)s;
    }
  g->arena_floats = g->naive_floats = 0;
  for (int s = 0; s < (int)g->n_steps; s++) /* values in order of first use */
    for (size_t i = 0; i < g->n_values; i++) {
      hcl_gvalue *v = &g->values[i];
      if (v->ext != HCL_GV_ARENA || v->first != s) continue;
      size_t size = floats_of(g, v), off = 0;
      g->naive_floats += size;
      for (int moved = 1; moved;) { /* lowest offset clear of every live placed value */
        moved = 0;
        for (size_t j = 0; j < g->n_values; j++) {
          hcl_gvalue *u = &g->values[j];
          if (j == i || u->ext != HCL_GV_ARENA || u->first < 0 || u->first > s || !overlap(u, v))
            continue;
          if (u->first == s && j > i) continue; /* not placed yet */
          size_t us = floats_of(g, u);
          if (off < u->offset + us && u->offset < off + size) {
            off = u->offset + us;
            moved = 1;
          }
        }
      }
      v->offset = off;
      if (off + size > g->arena_floats) g->arena_floats = off + size;
    }
}
