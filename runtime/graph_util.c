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

/* Append text to *buf (NULL: empty). */
static hcl_status append(hcl_graph *g, char **buf, const char *text) {
  size_t have = *buf ? strlen(*buf) : 0, add = strlen(text);
  char *s = realloc(*buf, have + add + 1);
  if (!s) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  memcpy(s + have, text, add + 1);
  *buf = s;
  return HCL_OK;
}

hcl_status hcl_graph_src(hcl_graph *g, const char *fmt, ...) {
  char small[1024];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (len < 0) return hcl_fail(g->ctx, HCL_ERR_PARAM, "graph: kernel text");
  if ((size_t)len < sizeof small) return append(g, &g->cur, small);
  char *big = malloc((size_t)len + 1);
  if (!big) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  va_start(ap, fmt);
  vsnprintf(big, (size_t)len + 1, fmt, ap);
  va_end(ap);
  hcl_status rc = append(g, &g->cur, big);
  free(big);
  return rc;
}

hcl_status hcl_graph_kernel_end(hcl_graph *g, hcl_gstep *s) {
  for (size_t k = 0; k < g->n_kernels; k++)
    if (!strcmp(g->bodies[k], g->cur)) {
      s->kernel = (int)k;
      return HCL_OK;
    }
  char **b = realloc(g->bodies, (g->n_kernels + 1) * sizeof *b);
  if (!b) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  g->bodies = b;
  if (!(b[g->n_kernels] = strdup(g->cur)))
    return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  char name[48], td[160];
  /* the argument struct of kernels with this many buffers, once */
  snprintf(td, sizeof td, "typedef struct { ulong rows, cols, o[%zu], s[%zu]; } hcl_gk%zu;\n",
           s->n_args, s->n_args, s->n_args);
  if (!g->src || !strstr(g->src, td)) HCL_TRY(append(g, &g->src, td));
  /* the kernel, then the same text as hcl_g<k>_at(..., gx0, gx1, gx2): a
   * function of the work-item's indices, for the one-launch pass */
  static const char kernel_ix[] = "#define HCL_GXARGS\n#define HCL_GX(i) get_global_id(i)\n";
  static const char item_ix[] = "#define HCL_GXARGS , size_t gx0, size_t gx1, size_t gx2\n"
                                "#define HCL_GX(i) gx##i\n";
  static const char undef[] = "#undef HCL_GXARGS\n#undef HCL_GX\n";
  snprintf(name, sizeof name, "__kernel void hcl_g%zu", g->n_kernels);
  HCL_TRY(append(g, &g->src, kernel_ix));
  HCL_TRY(append(g, &g->src, name));
  HCL_TRY(append(g, &g->src, g->cur));
  HCL_TRY(append(g, &g->src, undef));
  HCL_TRY(append(g, &g->src, item_ix));
  snprintf(name, sizeof name, "void hcl_g%zu_at", g->n_kernels);
  s->kernel = (int)g->n_kernels++;
  HCL_TRY(append(g, &g->src, name));
  HCL_TRY(append(g, &g->src, g->cur));
  return append(g, &g->src, undef);
}
