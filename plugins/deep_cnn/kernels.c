/* deep_cnn plugin: its own kernels (deep_cnn.cl) and their launchers. */
#include "deep_cnn.h"

extern const char hcl_cl_deep_cnn[];

#define DCNN_WG 64 /* work-group size of every plugin kernel */

hcl_status dcnn_kernels_build(dcnn *m) {
  const hcl_host_api *host = hcl_host;
  HCL_TRY(host->program(m->ctx, "deep_cnn", hcl_cl_deep_cnn, "", &m->prog));
  HCL_TRY(host->kernel(m->ctx, m->prog, "dcnn_im2col", &m->k_im2col));
  HCL_TRY(host->kernel(m->ctx, m->prog, "dcnn_rff", &m->k_rff));
  HCL_TRY(host->kernel(m->ctx, m->prog, "dcnn_normalise", &m->k_normalise));
  return host->kernel(m->ctx, m->prog, "dcnn_onehot", &m->k_onehot);
}

void dcnn_kernels_release(dcnn *m) {
  cl_kernel ks[] = {m->k_im2col, m->k_rff, m->k_normalise, m->k_onehot};
  for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
    if (ks[i]) clReleaseKernel(ks[i]);
  if (m->prog) clReleaseProgram(m->prog);
  m->prog = NULL;
}

/* Offset of a view in floats, as the kernels take it. */
static cl_ulong fo(hcl_buf b) { return (cl_ulong)(b.offset / sizeof(float)); }

/* One-dimensional launch over `total` items; the kernel's last argument is
 * total (appended here). */
static hcl_status launch(dcnn *m, cl_kernel k, const char *label, size_t total, size_t nargs,
                         hcl_arg *args) {
  if (!total) return HCL_OK;
  cl_ulong tot = total;
  args[nargs] = HCL_ARG(tot);
  size_t lws = DCNN_WG, gws = (total + DCNN_WG - 1) / DCNN_WG * DCNN_WG;
  return hcl_host->run_kernel(m->ctx, k, 1, &gws, &lws, label, nargs + 1, args);
}

/* Three-dimensional launch over (C, positions, samples); the runtime picks
 * the work-group size. */
static hcl_status launch3(dcnn *m, cl_kernel k, const char *label, size_t C, size_t pos, size_t B,
                          size_t nargs, const hcl_arg *args) {
  if (!C || !pos || !B) return HCL_OK;
  size_t gws[3] = {C, pos, B};
  return hcl_host->run_kernel(m->ctx, k, 3, gws, NULL, label, nargs, args);
}

hcl_status dcnn_im2col(dcnn *m, hcl_buf src, size_t rs, size_t sb, size_t sc, size_t sp,
                       hcl_buf dst, size_t count, size_t P, size_t C, size_t s) {
  cl_ulong so = fo(src), r_ = rs, b = sb, c = sc, p = sp, dof = fo(dst);
  cl_uint cnt = (cl_uint)count, P_ = (cl_uint)P, C_ = (cl_uint)C, s_ = (cl_uint)s;
  hcl_arg args[] = {HCL_ARG(src.mem), HCL_ARG(so), HCL_ARG(r_),      HCL_ARG(b),
                    HCL_ARG(c),       HCL_ARG(p),  HCL_ARG(dst.mem), HCL_ARG(dof),
                    HCL_ARG(cnt),     HCL_ARG(P_), HCL_ARG(C_),      HCL_ARG(s_)};
  return launch3(m, m->k_im2col, "deep_cnn_im2col", C, P * s, m->R * count, 12, args);
}

hcl_status dcnn_flatten_cf(dcnn *m, hcl_buf a, hcl_buf out, size_t n, size_t P, size_t C) {
  /* one "patch" spanning every position: column c*P + p */
  return dcnn_im2col(m, a, n * P * C, P * C, 1, C, out, n, 1, C, P);
}

hcl_status dcnn_rff(dcnn *m, hcl_buf f, hcl_buf phase, size_t rows, size_t D, float amp) {
  cl_ulong fo_ = fo(f), po = fo(phase), rows_ = rows;
  cl_uint D_ = (cl_uint)D;
  hcl_arg args[] = {HCL_ARG(f.mem), HCL_ARG(fo_),   HCL_ARG(phase.mem), HCL_ARG(po),
                    HCL_ARG(D_),    HCL_ARG(rows_), HCL_ARG(amp),       {0, NULL}};
  return launch(m, m->k_rff, "deep_cnn_rff", m->R * rows * D, 7, args);
}

hcl_status dcnn_normalise(dcnn *m, hcl_buf q, size_t rows, size_t C) {
  cl_ulong qo = fo(q);
  cl_uint C_ = (cl_uint)C;
  hcl_arg args[] = {HCL_ARG(q.mem), HCL_ARG(qo), HCL_ARG(C_), {0, NULL}};
  return launch(m, m->k_normalise, "deep_cnn_normalise", rows, 3, args);
}

hcl_status dcnn_onehot(dcnn *m, hcl_buf y, hcl_buf e, size_t B, size_t C) {
  cl_ulong yo = fo(y), eo = fo(e);
  cl_uint C_ = (cl_uint)C;
  hcl_arg args[] = {HCL_ARG(y.mem), HCL_ARG(yo), HCL_ARG(e.mem),
                    HCL_ARG(eo),    HCL_ARG(C_), {0, NULL}};
  return launch(m, m->k_onehot, "deep_cnn_onehot", B * C, 5, args);
}
