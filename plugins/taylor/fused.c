/* taylor plugin: on CPU devices the head fused with its two products.
 *
 * The product graph (graph.c) materialises U = z w0^T s and S = z w^T s,
 * [R, n, m] each, and dS of the same shape; at the bench's R = 8, n = m =
 * 1 024 that is 32 MB per array, written and read back from memory every
 * step. Here one custom op takes z alone: its forward forms U and S in
 * registers and reduces them to out (taylor.cl, tay_fused_head); its
 * backward forms them again, tile by tile, into dS and at once into
 * grad w += s dS^T z (tay_fused_wgrad, in the summation order of the
 * runtime's product), so no [R, n, m] array exists. Every value has the
 * bits of the product graph on CPU devices (hcl_k_gemm_rb's order), so
 * trajectories do not change. */
#include "taylor.h"

#include <math.h>

static cl_ulong fo(hcl_buf b) { return (cl_ulong)(b.offset / sizeof(float)); }

/* Blocks of the fused op, in the order it declares them. */
enum { F_W, F_W0, F_A };

/* w0^T and w^T of every replica into wtb; the backward skips it when the
 * forward it follows (same parameters, not updated in between) left them. */
static hcl_status transpose_w(hcl_taylor *m, hcl_ctx *ctx, const hcl_graph_io *io, int backward) {
  hcl_buf w = io->param[F_W];
  if (backward && m->wt_mem == w.mem && m->wt_offset == w.offset && m->wt_R == io->R) return HCL_OK;
  m->wt_mem = w.mem, m->wt_offset = w.offset, m->wt_R = io->R;
  cl_ulong w0o = fo(io->param[F_W0]), wo = fo(io->param[F_W]), ps = io->param_stride;
  cl_uint mm = (cl_uint)m->m, dz = (cl_uint)m->dz;
  hcl_arg args[] = {HCL_ARG(io->param[F_W0].mem),
                    HCL_ARG(w0o),
                    HCL_ARG(io->param[F_W].mem),
                    HCL_ARG(wo),
                    HCL_ARG(ps),
                    HCL_ARG(m->wtb.mem),
                    HCL_ARG(mm),
                    HCL_ARG(dz)};
  size_t gws[3] = {m->m, m->dz, io->R};
  return hcl_host->run_kernel(ctx, m->k_wt, 3, gws, NULL, "taylor_wt", sizeof args / sizeof *args,
                              args);
}

/* Forward: out [R, n] from z, U and S formed in registers (tay_fused_head,
 * TAY_FR (taylor.cl) rows per work-item). Backward (io->out is dout):
 * grad w += s dS^T z with dS formed inside (tay_fused_wgrad; the runtime
 * zeroed the gradient first, and 0 + x is x), one work-group per 16 units
 * and replica: its grid is small (m/16 per replica), and PoCL's own choice
 * of local size has put a small grid in one group, on one core (the
 * runtime's products). */
#define ROWS_PER_ITEM 4
static hcl_status run_fused(hcl_taylor *m, hcl_ctx *ctx, const hcl_graph_io *io, int backward) {
  HCL_TRY(transpose_w(m, ctx, io, backward));
  hcl_buf g = backward ? io->dparam[F_W] : (hcl_buf){0};
  cl_ulong zo = fo(io->in[0]), ao = fo(io->param[F_A]), ps = io->param_stride, oo = fo(io->out);
  cl_ulong go = fo(g);
  cl_uint nn = (cl_uint)io->n, mm = (cl_uint)m->m, dz = (cl_uint)m->dz;
  cl_uint order = (cl_uint)m->order, act = (cl_uint)m->act;
  cl_float s = (cl_float)(1.0 / sqrt((double)m->dz)), inv = (cl_float)(1.0 / sqrt((double)m->m));
  hcl_arg args[] = {HCL_ARG(io->in[0].mem),
                    HCL_ARG(zo),
                    HCL_ARG(m->wtb.mem),
                    HCL_ARG(io->param[F_A].mem),
                    HCL_ARG(ao),
                    HCL_ARG(ps),
                    HCL_ARG(io->out.mem),
                    HCL_ARG(oo),
                    HCL_ARG(nn),
                    HCL_ARG(mm),
                    HCL_ARG(dz),
                    HCL_ARG(order),
                    HCL_ARG(act),
                    HCL_ARG(s),
                    HCL_ARG(inv),
                    HCL_ARG(m->xsb.mem),
                    HCL_ARG(g.mem),
                    HCL_ARG(go)};
  size_t n_args = sizeof args / sizeof *args;
  /* the products it runs: U and S (2 n m dz multiply-adds each), and in the
   * backward U and S again and grad w */
  if (HCL_HOST_HAS(count_flops))
    hcl_host->count_flops(ctx, (backward ? 6.0 : 4.0) * (double)io->R * (double)io->n *
                                   (double)m->m * (double)m->dz);
  if (!backward) {
    size_t gws[2] = {(io->n + ROWS_PER_ITEM - 1) / ROWS_PER_ITEM, io->R};
    return hcl_host->run_kernel(ctx, m->k_fhead, 2, gws, NULL, "taylor_head", n_args - 3, args);
  }
  size_t gws[2] = {(m->m + 15) / 16, io->R}, lws[2] = {1, 1};
  return hcl_host->run_kernel(ctx, m->k_fwgrad, 2, gws, lws, "taylor_wgrad", n_args, args);
}

static hcl_status fused_forward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  return run_fused(user, ctx, io, 0);
}

static hcl_status fused_backward(void *user, hcl_ctx *ctx, const hcl_graph_io *io) {
  if (io->din[0].mem)
    return hcl_host->fail(ctx, HCL_ERR_UNSUPPORTED,
                          "the Taylor head has no gradient in z (z is the model's fixed input)");
  if (!io->dparam[F_W].mem) return HCL_OK;
  return run_fused(user, ctx, io, 1);
}

static const char *const fused_block_names[] = {"w", "w0", "a", NULL};

void hcl_taylor_fused_op(hcl_taylor *m) {
  m->fused_op = (hcl_graph_custom){.struct_size = sizeof m->fused_op,
                                   .name = "taylor_head",
                                   .out_channels = 1,
                                   .user = m,
                                   .forward = fused_forward,
                                   .backward = fused_backward,
                                   .blocks = fused_block_names};
}

hcl_status hcl_taylor_fused_setup(hcl_taylor *m) {
  const hcl_host_api *host = hcl_host;
  HCL_TRY(host->kernel(m->ctx, m->prog, "tay_wt", &m->k_wt));
  HCL_TRY(host->kernel(m->ctx, m->prog, "tay_fused_head", &m->k_fhead));
  HCL_TRY(host->kernel(m->ctx, m->prog, "tay_fused_wgrad", &m->k_fwgrad));
  HCL_TRY(host->buf_alloc(m->ctx, m->R * 2 * m->dz * m->m * sizeof(float), &m->wtb));
  return host->buf_alloc(m->ctx, (size_t)hcl_taylor_fused_acc_bytes(m), &m->xsb);
}

/* tay_fused_wgrad's accumulators: 16 x 16 per (replica, 16 units, 16 columns) */
double hcl_taylor_fused_acc_bytes(const hcl_taylor *m) {
  return (double)m->R * (double)((m->m + 15) / 16) * (double)((m->dz + 15) / 16) * 256.0 *
         sizeof(float);
}
