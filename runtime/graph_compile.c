/* Model graphs: from the recorded nodes to a runnable plan, once per model
 * instance: gradient flags and fusion, forward steps, reverse-mode steps,
 * buffer plan, then the arena and the generated kernels. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>

hcl_status hcl_graph_arena(hcl_graph *g) {
  if (g->arena.mem) return HCL_OK;
  size_t bytes = (g->arena_floats ? g->arena_floats : 1) * sizeof(float);
  char what[160];
  snprintf(what, sizeof what, "graph: activations and gradients of %zu replicas x %zu samples",
           g->R, g->max_batch);
  HCL_TRY(hcl_mem_check(g->ctx, bytes, bytes, what));
  return hcl_buf_alloc(g->ctx, bytes, &g->arena);
}

hcl_status hcl_graph_compile(hcl_graph *g) {
  if (g->rc != HCL_OK) return hcl_fail(g->ctx, g->rc, "%s", g->err);
  if (g->output < 0)
    return hcl_fail(g->ctx, HCL_ERR_PARAM,
                    "graph: no output (the model's graph() must end with "
                    "g_output)");
  hcl_graph_mark(g);
  HCL_TRY(hcl_graph_forward_steps(g));
  HCL_TRY(hcl_graph_grad_steps(g));
  HCL_TRY(hcl_graph_plan(g));
  size_t bytes = (g->arena_floats ? g->arena_floats : 1) * sizeof(float);
  HCL_TRY(hcl_graph_arena(g));
  /* what the plan came to, in the manifest: a reader can check fusion and reuse */
  char note[256];
  snprintf(note, sizeof note,
           "{\"nodes\":%zu,\"forward_steps\":%zu,\"backward_steps\":%zu,\"kernels\":%zu,"
           "\"arena_bytes\":%zu,\"unshared_bytes\":%zu}",
           g->n, g->n_fwd, g->n_steps - g->n_fwd, g->n_kernels, bytes,
           g->naive_floats * sizeof(float));
  char key[48] = "model_graph"; /* the network; each other variant its own note */
  if (g->variant) snprintf(key, sizeof key, "model_graph_variant_%d", g->variant);
  hcl_note_add(g->ctx, key, note, 1);
  if (!g->n_kernels) return HCL_OK;
  HCL_TRY(hcl_program_build(g->ctx, "graph", g->src, NULL, &g->prog));
  g->kernels = calloc(g->n_kernels, sizeof *g->kernels);
  if (!g->kernels) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  for (size_t k = 0; k < g->n_kernels; k++) {
    char name[32];
    snprintf(name, sizeof name, "hcl_g%zu", k);
    HCL_TRY(hcl_kernel_create(g->ctx, g->prog, name, &g->kernels[k]));
  }
  return hcl_graph_pass_check(g);
}
