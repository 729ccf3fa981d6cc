/* Model graphs: helpers shared by the passes (values, steps, source text). */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hcl_graph_new_value(hcl_graph *g, int ext, size_t cols) {
  hcl_gvalue *v = realloc(g->values, (g->n_values + 1) * sizeof *v);
  if (!v) return -1;
  g->values = v;
  v[g->n_values] = (hcl_gvalue){.ext = ext, .cols = cols, .first = -1, .last = -1};
  return (int)g->n_values++;
}

hcl_gstep *hcl_graph_new_step(hcl_graph *g, hcl_gs_kind kind, size_t node) {
  hcl_gstep *s = realloc(g->steps, (g->n_steps + 1) * sizeof *s);
  if (!s) return NULL;
  g->steps = s;
  s = &s[g->n_steps++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->node = node;
  s->kernel = -1;
  return s;
}

hcl_garg hcl_ga(int kind, int id) { return (hcl_garg){kind, id}; }

hcl_status hcl_graph_src(hcl_graph *g, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int add = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  size_t have = g->src ? strlen(g->src) : 0;
  char *s = realloc(g->src, have + (size_t)add + 1);
  if (!s) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  g->src = s;
  va_start(ap, fmt);
  vsnprintf(s + have, (size_t)add + 1, fmt, ap);
  va_end(ap);
  return HCL_OK;
}
