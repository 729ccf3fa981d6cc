/* taylor plugin: the model as a graph.
 *
 *   z = x (raw) or rep(x) (neural: a custom op over the frozen
 *       representation blocks, detached: a fixed stage)
 *   U = z w0^T / sqrt(dz), S = z w^T / sqrt(dz)   (the runtime's scaled
 *       products: the factor inside the GEMM)
 *   out = head(U, S; a)   (a custom op, its kernels in taylor.cl)
 *
 * On CPU devices out = head(z; w, w0, a) instead: one custom op whose
 * kernels form U and S in registers (fused.c), with the same bits.
 *
 * The runtime derives backward: head's backward gives dS, the product gives
 * grad w = dS^T z / sqrt(dz). w0 is frozen and z detached, so U needs no
 * gradient: nothing is computed for w0, a or the representation and their
 * gradient is 0. The whitening is fitted outside the graph (whiten.c), on
 * the unlabelled stream. */
#include "taylor.h"

#include <math.h>

/* Float offset of a buffer region (offsets are whole floats by contract). */
static cl_ulong fo(hcl_buf b) { return (cl_ulong)(b.offset / sizeof(float)); }

/* Blocks of the representation, in the order the rep op declares them. */
enum { REP_V, REP_B, REP_WHITEN, REP_OFFSET, REP_N };

/* pre = x V^T (scratch), h = relu(pre + b); then, when z.mem is set,
 * z = h M + c with M = Sigma^{-1/2} (whiten.c) and c = -mu M, so that
 * z = (h - mu) M: two SGEMMs and two broadcast adds. blk[]: the blocks of
 * replica 0, each replica n_params further. */
static hcl_status rep_run(hcl_taylor *m, const hcl_buf *blk, hcl_buf x, size_t n, hcl_buf pre,
                          hcl_buf h, hcl_buf z) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, d = m->d, D = m->D, np = m->n_params;
  pre = hcl_view(pre, 0, R * n * D);
  h = hcl_view(h, 0, R * n * D);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, D, d, 1.0f, hcl_view(x, 0, R * n * d), d, n * d,
                              blk[REP_V], d, np, 0.0f, pre, D, n * D, R));
  HCL_TRY(host->bias_act(m->ctx, HCL_ACT_RELU, pre, blk[REP_B], np, h, R, n, D));
  if (!z.mem) return HCL_OK;
  z = hcl_view(z, 0, R * n * D);
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 0, n, D, D, 1.0f, h, D, n * D, blk[REP_WHITEN], D, np,
                              0.0f, z, D, n * D, R));
  return host->bias_act(m->ctx, HCL_ACT_IDENTITY, z, blk[REP_OFFSET], np, z, R, n, D);
}

static void rep_blocks(const hcl_taylor *m, hcl_buf params, hcl_buf *blk) {
  for (int i = 0; i < REP_N; i++) blk[i] = hcl_taylor_pview(m, params, HCL_TAYLOR_B_V + i);
}

/* zb is the whitening's alone (the graph keeps its own z): made on first
 * use, freed when the fit ends, so training holds no copy of z. */
static hcl_status need_zb(hcl_taylor *m) {
  if (m->zb.mem) return HCL_OK;
  return hcl_host->buf_alloc(m->ctx, m->R * m->max_batch * m->D * sizeof(float), &m->zb);
}

void hcl_taylor_whiten_done(hcl_taylor *m) {
  if (m->zb.mem) hcl_host->buf_free(m->ctx, &m->zb);
}

hcl_status hcl_taylor_hidden(hcl_taylor *m, hcl_buf params, hcl_buf x, size_t n) {
  hcl_buf blk[REP_N];
  rep_blocks(m, params, blk);
  HCL_TRY(need_zb(m));
  return rep_run(m, blk, x, n, m->zb, m->hb, (hcl_buf){0});
}

hcl_status hcl_taylor_represent(hcl_taylor *m, hcl_buf params, hcl_buf x, size_t n) {
  if (!m->neural) return HCL_OK;
  hcl_buf blk[REP_N];
  rep_blocks(m, params, blk);
  HCL_TRY(need_zb(m));
  return rep_run(m, blk, x, n, m->zb, m->hb, m->zb);
}

/* The rep op: its output doubles as the pre-activation scratch. */
static hcl_status rep_forward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  (void)ctx;
  hcl_taylor *m = user;
  return rep_run(m, io->param, io->in[0], io->n, io->out, m->hb, io->out);
}

static hcl_status rep_backward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  (void)user, (void)io;
  return hcl_host->fail(ctx, HCL_ERR_UNSUPPORTED,
                        "the representation is a fixed stage (detached): it has no gradient");
}

/* The head: out [R, n] = sum_r C S (order 1) or 1/2 sum_r C S^2 (order 2),
 * C = a sigma^(order)(U)/sqrt(m); in = {U, S}, block a. A fixed-shape tree
 * per work-group: the same bits at every launch (CPU devices run the fused
 * head of fused.c instead). */
static hcl_status head_forward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  hcl_taylor *m = user;
  cl_ulong uo = fo(io->in[0]), so = fo(io->in[1]), ao = fo(io->param[0]), ps = io->param_stride;
  cl_ulong oo = fo(io->out), rows = io->R * io->n;
  cl_uint nn = (cl_uint)io->n, mm = (cl_uint)m->m, order = (cl_uint)m->order, act = (cl_uint)m->act;
  cl_float inv = (cl_float)(1.0 / sqrt((double)m->m));
  hcl_arg args[] = {HCL_ARG(io->in[0].mem),
                    HCL_ARG(uo),
                    HCL_ARG(io->in[1].mem),
                    HCL_ARG(so),
                    HCL_ARG(io->param[0].mem),
                    HCL_ARG(ao),
                    HCL_ARG(ps),
                    HCL_ARG(io->out.mem),
                    HCL_ARG(oo),
                    HCL_ARG(nn),
                    HCL_ARG(mm),
                    HCL_ARG(order),
                    HCL_ARG(act),
                    HCL_ARG(inv),
                    {m->wg * sizeof(float), NULL}};
  size_t gws = m->wg * rows, lws = m->wg;
  return hcl_host->run_kernel(ctx, m->k_head, 1, &gws, &lws, "taylor_head",
                              sizeof args / sizeof *args, args);
}

/* d(sum_g dout_g f_g)/dS_gr = dout_g C_gr (order 1) or dout_g C_gr S_gr
 * (order 2) into din[1]: written when the runtime says it holds nothing yet
 * (HCL_GCUSTOM_DIN_SET: no pass to zero it), else added. U has no gradient
 * (w0 and z are frozen). */
static hcl_status head_backward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  hcl_taylor *m = user;
  if (io->din[0].mem)
    return hcl_host->fail(ctx, HCL_ERR_UNSUPPORTED,
                          "the head has no gradient in w0 . z (w0 and z are frozen)");
  if (!io->din[1].mem) return HCL_OK;
  cl_ulong eo = fo(io->din[1]), uo = fo(io->in[0]), so = fo(io->in[1]), ao = fo(io->param[0]);
  cl_ulong ps = io->param_stride, dO = fo(io->out), rows = io->R * io->n;
  cl_uint nn = (cl_uint)io->n, mm = (cl_uint)m->m, order = (cl_uint)m->order, act = (cl_uint)m->act;
  cl_float inv = (cl_float)(1.0 / sqrt((double)m->m));
  cl_uint set = (io->din_set >> 1) & 1u;
  hcl_arg args[] = {HCL_ARG(io->din[1].mem),
                    HCL_ARG(eo),
                    HCL_ARG(io->in[0].mem),
                    HCL_ARG(uo),
                    HCL_ARG(io->in[1].mem),
                    HCL_ARG(so),
                    HCL_ARG(io->param[0].mem),
                    HCL_ARG(ao),
                    HCL_ARG(ps),
                    HCL_ARG(io->out.mem),
                    HCL_ARG(dO),
                    HCL_ARG(nn),
                    HCL_ARG(mm),
                    HCL_ARG(rows),
                    HCL_ARG(order),
                    HCL_ARG(act),
                    HCL_ARG(inv),
                    HCL_ARG(set)};
  size_t gws[2] = {m->m, rows};
  return hcl_host->run_kernel(ctx, m->k_dcoef, 2, gws, NULL, "taylor_dcoef",
                              sizeof args / sizeof *args, args);
}

static const char *const rep_block_names[] = {"rep.v", "rep.b", "rep.whiten", "rep.offset", NULL};
static const char *const head_block_names[] = {"a", NULL};

void hcl_taylor_ops(hcl_taylor *m) {
  m->rep_op = (hcl_graph_custom){.struct_size = sizeof m->rep_op,
                                 .name = "taylor_rep",
                                 .out_channels = m->D,
                                 .user = m,
                                 .forward = rep_forward,
                                 .backward = rep_backward,
                                 .blocks = rep_block_names};
  m->head_op = (hcl_graph_custom){.struct_size = sizeof m->head_op,
                                  .name = "taylor_head",
                                  .out_channels = 1,
                                  .user = m,
                                  .forward = head_forward,
                                  .backward = head_backward,
                                  .blocks = head_block_names,
                                  .flags = HCL_GCUSTOM_DIN_SET};
  hcl_taylor_fused_op(m);
}

/* The model sees u = z/sqrt(dz), of unit norm on either representation (the
 * paper's inputs on the unit sphere), so one lr and init mean the same on
 * both and at every d: the scale rides on the two products. */
hcl_status hcl_taylor_graph(void *self, hcl_graph *g) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  hcl_tensor z = host->g_input(g);
  if (m->neural) z = host->g_detach(g, host->g_custom(g, &m->rep_op, &z, 1));
  HCL_TRY(host->g_feature(g, z, 1)); /* features(1): the model's input z */
  if (m->fused)                      /* CPU devices: the products inside the head (fused.c) */
    return host->g_output(g, host->g_custom(g, &m->fused_op, &z, 1));
  float s = (float)(1.0 / sqrt((double)m->dz));
  hcl_tensor us[2] = {host->g_matmul_scaled(g, z, "w0", s), host->g_matmul_scaled(g, z, "w", s)};
  return host->g_output(g, host->g_custom(g, &m->head_op, us, 2));
}

/* While gd trains, the penalty's gradient (penalty.c). Neural: the
 * whitening must have been fitted (rep.fitted > 0 in every replica) before
 * any training step. Read once per params buffer. */
hcl_status hcl_taylor_graph_grad(void *self, hcl_buf params, hcl_buf grad) {
  hcl_taylor *m = self;
  const hcl_host_api *host = hcl_host;
  if (m->pen_on && m->penalty > 0) HCL_TRY(hcl_taylor_penalty_grad(m, params, grad));
  if (!m->neural || (m->fitted_mem == params.mem && m->fitted_offset == params.offset))
    return HCL_OK;
  for (size_t r = 0; r < m->R; r++) {
    float f = 0.0f;
    HCL_TRY(host->buf_read(
        m->ctx, hcl_view(params, r * m->n_params + m->off[HCL_TAYLOR_B_FITTED], 1), &f, sizeof f));
    if (!(f > 0.0f))
      return host->fail(m->ctx, HCL_ERR_CONFIG,
                        "representation = neural, but the whitening of h(x) on the "
                        "unlabelled stream is not fitted (replica %zu): set [train] algorithm = gd "
                        "(it whitens, then runs gradient descent); the runtime's plain sgd "
                        "would train on an unfitted representation",
                        r);
  }
  m->fitted_mem = params.mem;
  m->fitted_offset = params.offset;
  return HCL_OK;
}
