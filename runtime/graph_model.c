/* Model graphs: the adapter that gives a graph-only model plugin the
 * forward, backward and features of a hand-written one, so the trainer,
 * layer-wise phases, frozen blocks, row masks, probes and closed-form stages
 * see an ordinary model. Every other entry passes through to the plugin. */
#include "graph.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct gm {
  const hcl_model_vt *vt; /* the plugin's */
  void *inner;
  hcl_graph *g;        /* the variant in use */
  hcl_graph **variant; /* [HCL_GRAPH_MAX_VARIANTS], compiled when first used */
  int (*variant_hook)(void *self);
  size_t x_size, R, max_batch;
  hcl_ctx *ctx;
  hcl_buf x_last, out_last;
  hcl_buf p_last; /* the parameters the last forward read (graph_params) */
  size_t n_last;
  /* the plugin's optional hooks (NULL: none) */
  hcl_status (*params_hook)(void *self, hcl_buf params, hcl_buf *use);
  hcl_status (*grad_hook)(void *self, hcl_buf params, hcl_buf grad);
  int (*plain_hook)(void *self); /* both hooks idle now (graph_plain) */
  int have_forward;              /* 0 until a forward; features() resets it */
} gm;

static void gm_destroy(void *self) {
  gm *m = self;
  if (!m) return;
  for (size_t i = 0; m->variant && i < HCL_GRAPH_MAX_VARIANTS; i++) hcl_graph_free(m->variant[i]);
  free(m->variant);
  if (m->inner) m->vt->destroy(m->inner);
  free(m);
}

/* Graph variant k built from the model as it is now, checked and compiled. */
static hcl_status gm_build(gm *m, int k) {
  const hcl_model_vt *vt = m->vt;
  hcl_ctx *ctx = m->ctx;
  size_t nb;
  hcl_graph *g;
  const hcl_block *blocks = vt->blocks(m->inner, &nb);
  HCL_TRY(
      hcl_graph_new(ctx, blocks, nb, vt->n_params(m->inner), m->R, m->x_size, m->max_batch, &g));
  g->variant = k;
  hcl_status rc = vt->graph(m->inner, g);
  if (g->rc != HCL_OK) rc = hcl_fail(ctx, g->rc, "%s", g->err);
  if (rc == HCL_OK && g->output >= 0 && g->out_dim != vt->out_dim(m->inner))
    rc = hcl_fail(ctx, HCL_ERR_PARAM,
                  "graph: the output of variant %d has %zu channels but out_dim() is %zu", k,
                  g->out_dim, vt->out_dim(m->inner));
  if (rc == HCL_OK) rc = hcl_graph_compile(g);
  if (rc != HCL_OK) {
    hcl_graph_free(g);
    return rc;
  }
  m->variant[k] = g;
  return HCL_OK;
}

/* The graph the model asks for now (graph_variant), built on first use; a
 * new variant needs a new forward before backward. Only the variant in use
 * holds its arena: the one left frees it first (compiled kernels stay). */
static hcl_status gm_select(gm *m) {
  int k = m->variant_hook ? m->variant_hook(m->inner) : 0;
  if (k < 0 || k >= HCL_GRAPH_MAX_VARIANTS)
    return hcl_fail(m->ctx, HCL_ERR_PARAM, "graph: variant %d: expected 0 to %d", k,
                    HCL_GRAPH_MAX_VARIANTS - 1);
  if (m->g && m->g == m->variant[k] && m->g->arena.mem) return HCL_OK;
  if (m->g && m->g->arena.mem) hcl_buf_free(m->ctx, &m->g->arena);
  m->have_forward = 0; /* m->g stays (shapes) until the new one is ready; forward asks again */
  hcl_status rc = m->variant[k] ? HCL_OK : gm_build(m, k);
  if (rc == HCL_OK) rc = hcl_graph_arena(m->variant[k]);
  if (rc == HCL_OK) m->g = m->variant[k];
  return rc;
}

static hcl_status gm_create(const hcl_model_vt *vt, hcl_ctx *ctx, const hcl_setup *setup,
                            const hcl_target_info *target, void **self) {
  *self = NULL;
  gm *m = calloc(1, sizeof *m);
  if (!m) return hcl_fail(ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  m->vt = vt;
  m->ctx = ctx;
  if (HCL_STRUCT_HAS(vt, hcl_model_vt, graph_params)) m->params_hook = vt->graph_params;
  if (HCL_STRUCT_HAS(vt, hcl_model_vt, graph_grad)) m->grad_hook = vt->graph_grad;
  if (HCL_STRUCT_HAS(vt, hcl_model_vt, graph_variant)) m->variant_hook = vt->graph_variant;
  if (HCL_STRUCT_HAS(vt, hcl_model_vt, graph_plain)) m->plain_hook = vt->graph_plain;
  m->variant = calloc(HCL_GRAPH_MAX_VARIANTS, sizeof *m->variant);
  if (!m->variant) {
    free(m);
    return hcl_fail(ctx, HCL_ERR_NOMEM, "graph: out of host memory");
  }
  hcl_status rc = vt->create(ctx, setup, target, &m->inner);
  if (rc != HCL_OK) {
    free(m->variant);
    free(m);
    return rc;
  }
  m->x_size = 1;
  for (uint32_t i = 0; i < target->x.rank; i++) m->x_size *= target->x.dims[i];
  m->R = setup->replicas;
  m->max_batch = setup->max_batch;
  rc = gm_select(m);
  if (rc != HCL_OK) {
    gm_destroy(m);
    return rc;
  }
  *self = m;
  return HCL_OK;
}

static size_t gm_n_params(void *self) { return ((gm *)self)->g->n_params; }
static size_t gm_out_dim(void *self) { return ((gm *)self)->g->out_dim; }
static const hcl_block *gm_blocks(void *self, size_t *n) {
  gm *m = self;
  return m->vt->blocks(m->inner, n);
}
static hcl_status gm_init(void *self, hcl_buf params) {
  gm *m = self;
  return m->vt->init(m->inner, params);
}

static hcl_status check_n(gm *m, size_t n) {
  if (n > m->g->max_batch)
    return hcl_fail(m->ctx, HCL_ERR_PARAM, "graph: batch %zu > max_batch %zu", n, m->g->max_batch);
  return HCL_OK;
}

static hcl_status gm_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out) {
  gm *m = self;
  HCL_TRY(check_n(m, n));
  HCL_TRY(gm_select(m));
  m->x_last = x;
  m->out_last = out;
  m->n_last = n;
  m->have_forward = 1;
  if (n == 0) return HCL_OK;
  m->p_last = params;
  if (m->params_hook) HCL_TRY(m->params_hook(m->inner, params, &m->p_last));
  return hcl_graph_forward(m->g, m->p_last, x, out, n);
}

static hcl_status gm_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad) {
  gm *m = self;
  hcl_graph *g = m->g;
  if (!m->have_forward)
    return hcl_fail(m->ctx, HCL_ERR_PARAM,
                    "graph: backward without a forward (or after "
                    "features())");
  if (n != m->n_last)
    return hcl_fail(m->ctx, HCL_ERR_PARAM, "graph: backward on %zu samples, forward had %zu", n,
                    m->n_last);
  if (n == 0)
    return hcl_fill(m->ctx, hcl_buf_sub(grad, 0, g->R * g->n_params * sizeof(float)), 0.0f,
                    g->R * g->n_params);
  HCL_TRY(hcl_graph_run(g, g->n_fwd, g->n_steps, m->p_last, m->x_last, m->out_last, dout, grad, n));
  return m->grad_hook ? m->grad_hook(m->inner, params, grad) : HCL_OK;
}

int hcl_graph_model_step(const hcl_model_vt *vt, void *self, hcl_buf params, hcl_buf x, size_t n,
                         hcl_buf out, hcl_buf dout, hcl_buf grad,
                         const struct hcl_gather_launch *gather, const struct hcl_loss_launch *loss,
                         const struct hcl_optim_launch *opt, const struct hcl_steps_launch *steps,
                         hcl_status *rc) {
  gm *m = self;
  if (vt->forward != gm_forward || !n || n > m->g->max_batch) return 0;
  if ((m->params_hook || m->grad_hook) && !(m->plain_hook && m->plain_hook(m->inner))) return 0;
  if ((*rc = gm_select(m)) != HCL_OK) return 1;
  if (!hcl_graph_step_run(m->g, params, x, out, dout, grad, n, gather, loss, opt, steps, rc))
    return 0;
  m->have_forward = 0; /* the step's values are spent, as after features() */
  return 1;
}

/* The forward pass up to the node marked as hidden layer `layer`, then a
 * copy of its value (the kept activations are overwritten: a backward needs
 * a new forward). */
static hcl_status gm_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n,
                              hcl_buf out, size_t *dim) {
  gm *m = self;
  HCL_TRY(gm_select(m));
  hcl_graph *g = m->g;
  size_t marked = 0;
  while (marked < g->n_features && g->features[marked] >= 0) marked++;
  if (layer < 1 || layer > marked)
    return hcl_fail(m->ctx, marked ? HCL_ERR_PARAM : HCL_ERR_UNSUPPORTED,
                    "graph: features of layer %zu: the model marks layers 1 to %zu", layer, marked);
  HCL_TRY(check_n(m, n));
  m->have_forward = 0;
  int32_t t = g->features[layer - 1];
  *dim = g->nodes[t].P * g->nodes[t].C;
  if (n == 0) return HCL_OK;
  int32_t node = t; /* the node whose value holds the layer */
  while (g->nodes[node].kind == HCL_GN_RESHAPE) node = g->nodes[node].in[0];
  /* the model's input itself: no step computes it (its first step may be
   * the output, e.g. a fused head reading x) */
  int is_x = g->values[g->nodes[node].value].ext == HCL_GV_X;
  size_t upto = is_x ? 0 : hcl_graph_step_of(g, t) + 1;
  if (upto && g->nodes[g->output].fstep >= 0 && (size_t)g->nodes[g->output].fstep < upto)
    return hcl_fail(m->ctx, HCL_ERR_UNSUPPORTED,
                    "graph: features of layer %zu: the layer is computed with the output", layer);
  hcl_buf use = params;
  if (m->params_hook) HCL_TRY(m->params_hook(m->inner, params, &use));
  HCL_TRY(hcl_graph_run(g, 0, upto, use, x, (hcl_buf){0}, (hcl_buf){0}, (hcl_buf){0}, n));
  const hcl_gvalue *v = &g->values[g->nodes[node].value];
  size_t span = g->R * n * v->cols * sizeof(float);
  hcl_buf src = v->ext == HCL_GV_X ? hcl_buf_sub(x, 0, span)
                                   : hcl_buf_sub(g->arena, v->offset * sizeof(float), span);
  return hcl_buf_copy(m->ctx, hcl_buf_sub(out, 0, span), src, span);
}

static hcl_status gm_train(void *self, const char *algorithm, hcl_trainer *t) {
  gm *m = self;
  return m->vt->train(m->inner, algorithm, t);
}
static hcl_status gm_probe(void *self, hcl_probe *p) {
  gm *m = self;
  return m->vt->probe(m->inner, p);
}
static hcl_status gm_prepare(void *self, hcl_trainer *t) {
  gm *m = self;
  return m->vt->prepare(m->inner, t);
}
static double gm_lr_scale(void *self) {
  gm *m = self;
  return m->vt->lr_scale(m->inner);
}

/* create() has no self to find the plugin by: one trampoline per slot. */
#define SLOTS 32
static const hcl_model_vt *g_inner[SLOTS];
static hcl_model_vt g_vt[SLOTS];
static hcl_plugin_desc g_desc[SLOTS];
static unsigned g_refs[SLOTS]; /* loaded plugins using the slot; 0: free again */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

#define SLOT(k)                                                                                    \
  static hcl_status create_##k(hcl_ctx *ctx, const hcl_setup *s, const hcl_target_info *t,         \
                               void **self) {                                                      \
    return gm_create(g_inner[k], ctx, s, t, self);                                                 \
  }
// clang-format off
SLOT(0)
SLOT(1)
SLOT(2)
SLOT(3)
SLOT(4)
SLOT(5)
SLOT(6)
SLOT(7)
SLOT(8)
SLOT(9)
SLOT(10)
SLOT(11)
SLOT(12)
SLOT(13)
SLOT(14)
SLOT(15)
SLOT(16)
SLOT(17)
SLOT(18)
SLOT(19)
SLOT(20)
SLOT(21)
SLOT(22)
SLOT(23)
SLOT(24)
SLOT(25)
SLOT(26)
SLOT(27)
SLOT(28)
SLOT(29)
SLOT(30)
SLOT(31)
// clang-format on
typedef hcl_status (*create_fn)(hcl_ctx *, const hcl_setup *, const hcl_target_info *, void **);
static const create_fn g_create[SLOTS] = {
    create_0,  create_1,  create_2,  create_3,  create_4,  create_5,  create_6,  create_7,
    create_8,  create_9,  create_10, create_11, create_12, create_13, create_14, create_15,
    create_16, create_17, create_18, create_19, create_20, create_21, create_22, create_23,
    create_24, create_25, create_26, create_27, create_28, create_29, create_30, create_31};

hcl_status hcl_graph_wrap(hcl_ctx *ctx, const char *path, const hcl_plugin_desc *d,
                          const hcl_plugin_desc **out) {
  const hcl_model_vt *in = d->vt;
  pthread_mutex_lock(&g_lock);
  /* the slot of this vtable (the same file loaded again), else a free one */
  size_t k = 0;
  while (k < SLOTS && g_inner[k] != in) k++;
  if (k == SLOTS)
    for (k = 0; k < SLOTS && g_inner[k]; k++) {
    }
  if (k == SLOTS) {
    pthread_mutex_unlock(&g_lock);
    return hcl_fail(ctx, HCL_ERR_PLUGIN, "%s: plugin '%s': more than %d graph models loaded", path,
                    d->name, SLOTS);
  }
  size_t n = d->struct_size < sizeof g_desc[k] ? d->struct_size : sizeof g_desc[k];
  /* loaded again (another session, e.g. a sweep's second worker): already
   * wrapped. The slot holds a vtable only while a load uses it, so the same
   * vtable is the same loaded plugin. (Comparing the descriptors never
   * matched, as the copy's vt is the wrapper's: each load reset the count to
   * 1, and the first session to close freed the slot under the others, whose
   * next create called through NULL.) */
  if (g_inner[k] == in) {
    g_refs[k]++;
    *out = &g_desc[k];
    pthread_mutex_unlock(&g_lock);
    return HCL_OK;
  }
  g_inner[k] = in;
  g_refs[k] = 1;
  memset(&g_desc[k], 0, sizeof g_desc[k]);
  memcpy(&g_desc[k], d, n);
  g_vt[k] = (hcl_model_vt){
      .struct_size = sizeof(hcl_model_vt),
      .create = g_create[k],
      .destroy = gm_destroy,
      .n_params = gm_n_params,
      .out_dim = gm_out_dim,
      .blocks = gm_blocks,
      .init = gm_init,
      .forward = gm_forward,
      .backward = gm_backward,
      .features = gm_features,
      .algorithms = in->algorithms,
      .train = in->train ? gm_train : NULL,
      .probe = in->probe ? gm_probe : NULL,
  };
  size_t have = in->struct_size;
  if (have >= offsetof(hcl_model_vt, prepare) + sizeof in->prepare && in->prepare)
    g_vt[k].prepare = gm_prepare;
  if (have >= offsetof(hcl_model_vt, check) + sizeof in->check) g_vt[k].check = in->check;
  if (have >= offsetof(hcl_model_vt, lr_scale) + sizeof in->lr_scale && in->lr_scale)
    g_vt[k].lr_scale = gm_lr_scale;
  g_desc[k].vt = &g_vt[k];
  *out = &g_desc[k];
  pthread_mutex_unlock(&g_lock);
  return HCL_OK;
}

void hcl_graph_unwrap(const hcl_plugin_desc *d) {
  pthread_mutex_lock(&g_lock);
  for (size_t k = 0; k < SLOTS; k++)
    if (d == &g_desc[k] && g_refs[k] && !--g_refs[k]) g_inner[k] = NULL;
  pthread_mutex_unlock(&g_lock);
}
