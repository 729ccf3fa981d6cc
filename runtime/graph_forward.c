/* Model graphs: the values that hold results, the forward steps in node
 * order, and the OpenCL source of the fused elementwise kernels. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

/* Every generated kernel takes (pointer, offset, replica stride) per
 * argument, then the rows and columns of one replica's iteration space; the
 * launch is (columns, rows, replicas), as the runtime's bias_act, so no
 * work-item divides. */
/* The signature of a generated kernel: its buffers, then one by-value
 * struct hcl_gk<n> (graph_util.c) with rows, cols and every buffer's offset
 * and replica stride, unpacked into o<i>, s<i>: PoCL pays per argument at
 * every launch, a struct is one. The work-item's indices are HCL_GX(i) and
 * HCL_GXARGS adds nothing: graph_util.c also compiles the same text as a
 * function of the indices for the one-launch pass (graph_pass.c). */
static hcl_status signature(hcl_graph *g, hcl_gstep *s, size_t n_args) {
  s->n_args = n_args;
  if (g->cur) g->cur[0] = 0;
  HCL_TRY(hcl_graph_src(g, "("));
  for (size_t i = 0; i < n_args; i++) HCL_TRY(hcl_graph_src(g, "__global float *a%zu, ", i));
  HCL_TRY(hcl_graph_src(
      g, "hcl_gk%zu gk_ HCL_GXARGS) {\n  ulong rows = gk_.rows, cols = gk_.cols;\n", n_args));
  for (size_t i = 0; i < n_args; i++)
    HCL_TRY(hcl_graph_src(g, "  ulong o%zu = gk_.o[%zu], s%zu = gk_.s[%zu];\n", i, i, i, i));
  return HCL_OK;
}

hcl_status hcl_graph_kernel_begin(hcl_graph *g, hcl_gstep *s, size_t n_args) {
  HCL_TRY(signature(g, s, n_args));
  return hcl_graph_src(g, "  size_t c = HCL_GX(0), row = HCL_GX(1), r = HCL_GX(2);\n"
                          "  if (c >= cols || row >= rows) return;\n"
                          "  size_t w = row * cols + c;\n");
}

hcl_status hcl_graph_kernel_begin_cols(hcl_graph *g, hcl_gstep *s, size_t n_args) {
  HCL_TRY(signature(g, s, n_args));
  s->by_col = 1;
  return hcl_graph_src(g, "  size_t c0 = HCL_GX(0) * 8, r = HCL_GX(1);\n"
                          "  if (c0 >= cols) return;\n");
}

void hcl_graph_lit(char *out, size_t len, float v) { snprintf(out, len, "(%.9ef)", (double)v); }

void hcl_graph_act_expr(const hcl_gnode *n, int derivative, const char *z, char *out, size_t len) {
  char c[HCL_GRAPH_MAX_COEF][32];
  for (size_t i = 0; i < n->n_coef; i++) hcl_graph_lit(c[i], sizeof c[i], n->coef[i]);
  /* the built-in activations go through common.cl, so that a graph model
   * computes the same bits as the runtime's bias_act / act_backward */
  static const char *const builtin[] = {[HCL_GACT_RELU] = "HCL_ACT_RELU",
                                        [HCL_GACT_QUADRATIC] = "HCL_ACT_QUADRATIC",
                                        [HCL_GACT_TANH] = "HCL_ACT_TANH",
                                        [HCL_GACT_LEAKY_RELU] = "HCL_ACT_LEAKY_RELU"};
  if (n->act != HCL_GACT_GELU && n->act != HCL_GACT_POLY &&
      !(n->act == HCL_GACT_LEAKY_RELU && n->n_coef)) {
    snprintf(out, len, "hcl_act_%s(%s, %s)", derivative ? "df" : "f", builtin[n->act], z);
  } else if (n->act == HCL_GACT_LEAKY_RELU) {
    if (derivative)
      snprintf(out, len, "(%s > 0.0f ? 1.0f : %s)", z, c[0]);
    else
      snprintf(out, len, "(%s < 0.0f ? %s * %s : %s)", z, c[0], z, z);
  } else if (n->act == HCL_GACT_GELU) {
    if (derivative)
      snprintf(out, len,
               "(0.5f * (1.0f + erf(%s * 0.70710678f)) + %s * 0.39894228f * exp(-0.5f * %s * %s))",
               z, z, z, z);
    else
      snprintf(out, len, "(0.5f * %s * (1.0f + erf(%s * 0.70710678f)))", z, z);
  } else { /* polynomial by Horner: c0 + z (c1 + z (c2 + ...)) */
    size_t k = n->n_coef, at = 0;
    out[0] = 0;
    size_t lo = derivative ? 1 : 0;
    if (k <= lo) {
      snprintf(out, len, "0.0f");
      return;
    }
    for (size_t i = lo; i < k; i++) {
      if (i + 1 < k)
        at += (size_t)snprintf(out + at, len - at, "(%s * %zu.0f + %s * ", c[i], derivative ? i : 1,
                               z);
      else
        at += (size_t)snprintf(out + at, len - at, "%s * %zu.0f", c[i], derivative ? i : 1);
      if (at >= len) return;
    }
    for (size_t i = lo; i + 1 < k && at < len; i++) at += (size_t)snprintf(out + at, len - at, ")");
  }
}

/* The value of node t (a reshape shares its input's). */
static int value_of(const hcl_graph *g, int32_t t) {
  while (g->nodes[t].kind == HCL_GN_RESHAPE) t = g->nodes[t].in[0];
  return g->nodes[t].value;
}

/* Argument index of `a` in step s, appended when new. */
static size_t arg_index(hcl_gstep *s, hcl_garg a) {
  for (size_t i = 0; i < s->n_args; i++)
    if (s->arg[i].kind == a.kind && s->arg[i].id == a.id) return i;
  s->arg[s->n_args] = a;
  return s->n_args++;
}

/* One kernel for the group whose last member is `tail`: loads of the
 * inputs from outside, the chain in registers, stores of what is kept. */
static hcl_status fused(hcl_graph *g, size_t tail) {
  int grp = g->nodes[tail].group;
  hcl_gstep *s = hcl_graph_new_step(g, HCL_GS_KERNEL, tail);
  if (!s) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  s->space = g->nodes[tail].P * g->nodes[tail].C;
  s->cols = g->nodes[tail].C;
  /* collect the arguments first: the head needs their number */
  size_t first = tail;
  int members = 0; /* local names v0, v1, ...: equal chains give equal kernels */
  for (size_t v = 0; v <= tail; v++)
    if (g->nodes[v].group == grp) {
      first = v < first ? v : first;
      hcl_gnode *n = &g->nodes[v];
      n->local = members++;
      for (int i = 0; i < 2; i++)
        if (n->in[i] >= 0 && g->nodes[n->in[i]].group != grp)
          arg_index(s, hcl_ga(HCL_GA_VALUE, value_of(g, n->in[i])));
      if (n->kind == HCL_GN_BIAS) arg_index(s, hcl_ga(HCL_GA_PARAM, (int)n->block));
      if (n->store) arg_index(s, hcl_ga(HCL_GA_VALUE, n->value));
      if (s->n_args > HCL_GSTEP_MAX_ARGS - 2)
        return hcl_fail(g->ctx, HCL_ERR_UNSUPPORTED,
                        "graph: node %zu: elementwise chain reads too many tensors", v);
    }
  size_t n_args = s->n_args;
  s->n_args = 0;
  hcl_garg saved[HCL_GSTEP_MAX_ARGS];
  memcpy(saved, s->arg, sizeof saved);
  HCL_TRY(hcl_graph_kernel_begin(g, s, n_args));
  memcpy(s->arg, saved, sizeof saved);
  for (size_t v = first; v <= tail; v++) {
    hcl_gnode *n = &g->nodes[v];
    if (n->group != grp) continue;
    char op[2][48];
    for (int i = 0; i < 2; i++) {
      if (n->in[i] < 0) continue;
      if (g->nodes[n->in[i]].group == grp)
        snprintf(op[i], sizeof op[i], "v%d", g->nodes[n->in[i]].local);
      else {
        size_t k = arg_index(s, hcl_ga(HCL_GA_VALUE, value_of(g, n->in[i])));
        snprintf(op[i], sizeof op[i], "a%zu[o%zu + r * s%zu + w]", k, k, k);
      }
    }
    char expr[1024];
    switch (n->kind) {
    case HCL_GN_BIAS: {
      size_t k = arg_index(s, hcl_ga(HCL_GA_PARAM, (int)n->block));
      if (n->scale != 1.0f) { /* f b rounded first, as a scaled copy of the bias would be */
        char f[32];
        hcl_graph_lit(f, sizeof f, n->scale);
        HCL_TRY(hcl_graph_src(g, "  float v%db = %s * a%zu[o%zu + r * s%zu + c];\n", n->local, f, k,
                              k, k));
        snprintf(expr, sizeof expr, "%s + v%db", op[0], n->local);
      } else {
        snprintf(expr, sizeof expr, "%s + a%zu[o%zu + r * s%zu + c]", op[0], k, k, k);
      }
      break;
    }
    case HCL_GN_ACT: {
      char z[64];
      snprintf(z, sizeof z, "v%dz", n->local);
      HCL_TRY(hcl_graph_src(g, "  float %s = %s;\n", z, op[0]));
      hcl_graph_act_expr(n, 0, z, expr, sizeof expr);
      break;
    }
    case HCL_GN_ADD: snprintf(expr, sizeof expr, "%s + %s", op[0], op[1]); break;
    default: snprintf(expr, sizeof expr, "%s * %s", op[0], op[1]); break;
    }
    HCL_TRY(hcl_graph_src(g, "  float v%d = %s;\n", n->local, expr));
    if (n->store) {
      size_t k = arg_index(s, hcl_ga(HCL_GA_VALUE, n->value));
      HCL_TRY(hcl_graph_src(g, "  a%zu[o%zu + r * s%zu + w] = v%d;\n", k, k, k, n->local));
    }
    n->fstep = (int)(g->n_steps - 1);
  }
  HCL_TRY(hcl_graph_src(g, "}\n"));
  return hcl_graph_kernel_end(g, s);
}

/* patch: out[p, c*s + j] = in[p*s + j, c], or in[c, p*s + j] through an
 * unstored transpose (row stride sr, channel stride sc). */
static hcl_status patch_src(hcl_graph *g, const hcl_gnode *n) {
  const hcl_gnode *a = &g->nodes[n->in[0]];
  size_t s = n->first, sr = a->C, sc = 1;
  if (a->kind == HCL_GN_TRANSPOSE && !a->store) sr = 1, sc = a->P;
  return hcl_graph_src(
      g,
      "  size_t i = row / %zuu, p = row %% %zuu, ch = c / %zuu, j = c %% %zuu;\n"
      "  a1[o1 + r * s1 + w] = a0[o0 + r * s0 + i * %zuu + (p * %zuu + j) * %zuu + "
      "ch * %zuu];\n}\n",
      n->P, n->P, s, s, a->P * a->C, s, sr, sc);
}

/* slice: out[row, c] = in[row, first + c]; mean: out[c] = mean_p in[p, c];
 * transpose: out[q, c] = in[c, q]; patch: see patch_src. */
static hcl_status gather(hcl_graph *g, size_t v) {
  hcl_gnode *n = &g->nodes[v], *a = &g->nodes[n->in[0]];
  hcl_gstep *s = hcl_graph_new_step(g, HCL_GS_KERNEL, v);
  if (!s) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  s->space = n->P * n->C;
  s->cols = n->C;
  int through = n->kind == HCL_GN_PATCH && a->kind == HCL_GN_TRANSPOSE && !a->store;
  s->arg[0] = hcl_ga(HCL_GA_VALUE, value_of(g, through ? a->in[0] : n->in[0]));
  s->arg[1] = hcl_ga(HCL_GA_VALUE, n->value);
  HCL_TRY(hcl_graph_kernel_begin(g, s, 2));
  if (n->kind == HCL_GN_PATCH)
    HCL_TRY(patch_src(g, n));
  else if (n->kind == HCL_GN_SLICE)
    HCL_TRY(hcl_graph_src(g,
                          "  a1[o1 + r * s1 + w] = a0[o0 + r * s0 + row * %zuu + %zuu + c];\n}\n",
                          a->C, n->first));
  else if (n->kind == HCL_GN_TRANSPOSE) /* out[i, q, c] = in[i, c, q] */
    HCL_TRY(hcl_graph_src(g,
                          "  size_t i = row / %zuu, q = row %% %zuu;\n"
                          "  a1[o1 + r * s1 + w] = a0[o0 + r * s0 + i * %zuu + c * %zuu + q];\n}\n",
                          n->P, n->P, a->P * a->C, a->C));
  else
    HCL_TRY(hcl_graph_src(g,
                          "  __global const float *p = a0 + o0 + r * s0 + row * %zuu + c;\n"
                          "  float sum = 0.0f;\n"
                          "  for (size_t q = 0; q < %zuu; q++) sum += p[q * %zuu];\n"
                          "  a1[o1 + r * s1 + w] = sum * (1.0f / %zu.0f);\n}\n",
                          a->P * a->C, a->P, a->C, a->P));
  HCL_TRY(hcl_graph_kernel_end(g, s));
  n->fstep = (int)(g->n_steps - 1);
  return HCL_OK;
}

hcl_status hcl_graph_forward_steps(hcl_graph *g) {
  for (size_t v = 0; v < g->n; v++) {
    hcl_gnode *n = &g->nodes[v];
    n->fstep = -1;
    if (n->kind == HCL_GN_INPUT)
      n->value = hcl_graph_new_value(g, HCL_GV_X, g->x_size);
    else if ((int32_t)v == g->output)
      n->value = hcl_graph_new_value(g, HCL_GV_OUT, n->C);
    else if (n->store)
      n->value = hcl_graph_new_value(g, HCL_GV_ARENA, n->P * n->C);
    else
      continue;
    if (n->value < 0) return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  }
  for (size_t v = 0; v < g->n; v++) {
    hcl_gnode *n = &g->nodes[v];
    hcl_gstep *s;
    switch (n->kind) {
    case HCL_GN_INPUT: break;
    case HCL_GN_RESHAPE: n->fstep = g->nodes[n->in[0]].fstep; break;
    case HCL_GN_MATMUL:
      if (!(s = hcl_graph_new_step(g, HCL_GS_GEMM, v)))
        return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
      s->gemm = 0;
      s->arg[0] = hcl_ga(HCL_GA_VALUE, value_of(g, n->in[0]));
      s->arg[1] = hcl_ga(HCL_GA_PARAM, (int)n->block);
      s->arg[2] = hcl_ga(HCL_GA_VALUE, n->value);
      s->n_args = 3;
      n->fstep = (int)(g->n_steps - 1);
      break;
    case HCL_GN_TRANSPOSE:
      if (n->store) HCL_TRY(gather(g, v)); /* else its patch reads through it */
      break;
    case HCL_GN_SLICE:
    case HCL_GN_MEAN:
    case HCL_GN_PATCH: HCL_TRY(gather(g, v)); break;
    case HCL_GN_CUSTOM:
      if (!(s = hcl_graph_new_step(g, HCL_GS_CUSTOM_F, v)))
        return hcl_fail(g->ctx, HCL_ERR_NOMEM, "graph: out of host memory");
      for (size_t i = 0; i < n->n_ins; i++)
        s->arg[i] = hcl_ga(HCL_GA_VALUE, value_of(g, n->ins[i]));
      s->arg[n->n_ins] = hcl_ga(HCL_GA_VALUE, n->value);
      for (size_t i = 0; i < n->n_cblocks; i++)
        s->arg[n->n_ins + 1 + i] = hcl_ga(HCL_GA_PARAM, (int)n->cblock[i]);
      s->n_args = n->n_ins + 1 + n->n_cblocks;
      s->n_in = (int)n->n_ins;
      n->fstep = (int)(g->n_steps - 1);
      break;
    default: {
      /* elementwise: the group runs where its last member stands */
      int last = 1;
      for (size_t u = v + 1; u < g->n && last; u++) last = g->nodes[u].group != n->group;
      if (last) HCL_TRY(fused(g, v));
    }
    }
  }
  g->n_fwd = g->n_steps;
  /* a step of nodes the output does not depend on runs for features() only */
  for (size_t i = 0; i < g->n_fwd; i++) g->steps[i].fonly = 1;
  for (size_t v = 0; v < g->n; v++)
    if (g->nodes[v].needed && g->nodes[v].fstep >= 0) g->steps[g->nodes[v].fstep].fonly = 0;
  return HCL_OK;
}
