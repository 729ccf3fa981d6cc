/* Device side shared by the Gaussian targets: program build (the shared .cl
 * files, then the plugin's), seed and link upload, and the launches of the
 * sample and eval kernels with their common leading arguments. */
#include "gauss_target.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Embedded by each plugin's CMakeLists (KERNELS ../lib/gt_math.cl ../lib/gt_draw.cl). */
extern const char hcl_cl_gt_math[];
extern const char hcl_cl_gt_draw[];

hcl_status gt_upload(gt_target *t, const float *v, size_t n, hcl_buf *out) {
  HCL_TRY(hcl_host->buf_alloc(t->ctx, (n ? n : 1) * sizeof(float), out));
  if (n) HCL_TRY(hcl_host->buf_write(t->ctx, *out, v, n * sizeof(float)));
  return HCL_OK;
}

hcl_status gt_device_init(gt_target *t, const char *plugin_src, const char *sample_kernel,
                          const char *eval_kernel) {
  hcl_ctx *ctx = t->ctx;
  cl_ulong *seeds = malloc(t->R * sizeof *seeds);
  if (!seeds) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "%s: out of host memory", t->name);
  for (size_t r = 0; r < t->R; r++) seeds[r] = (cl_ulong)t->seeds[r];
  hcl_status rc = hcl_host->buf_alloc(ctx, t->R * sizeof *seeds, &t->d_seeds);
  if (rc == HCL_OK) rc = hcl_host->buf_write(ctx, t->d_seeds, seeds, t->R * sizeof *seeds);
  free(seeds);
  HCL_TRY(rc);
  HCL_TRY(gt_upload(t, t->link.coef_f, GT_MAX_COEF, &t->d_coef));
  size_t l1 = strlen(hcl_cl_gt_math), l2 = strlen(hcl_cl_gt_draw), l3 = strlen(plugin_src);
  char *src = malloc(l1 + l2 + l3 + 3);
  if (!src) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "%s: out of host memory", t->name);
  memcpy(src, hcl_cl_gt_math, l1);
  src[l1] = '\n';
  memcpy(src + l1 + 1, hcl_cl_gt_draw, l2);
  src[l1 + 1 + l2] = '\n';
  memcpy(src + l1 + l2 + 2, plugin_src, l3 + 1);
  rc = hcl_host->program(ctx, t->name, src, "", &t->prog);
  free(src);
  HCL_TRY(rc);
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "gt_k_draw_x", &t->k_draw));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, sample_kernel, &t->k_sample));
  return hcl_host->kernel(ctx, t->prog, eval_kernel, &t->k_eval);
}

/* A failure unless b is a device buffer holding `floats` floats. */
static hcl_status check_room(const gt_target *t, hcl_buf b, size_t floats, const char *what) {
  if (!b.mem) return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%s has no device buffer", what);
  return hcl_view_room(t->ctx, b, floats, what);
}

#define GT_MAX_ARGS 32

/* x [R, n, d] of samples first .. first+n-1 of stream sid (with wrap != 0,
 * sample s is s % wrap), over pieces that do not wrap. With d a multiple of
 * 4 a piece's inputs are one range of the stream, so host->rng draws them
 * (the same bits: 0 + 1 * z); else gt_k_draw_x, one Philox block a
 * work-item (hcl_run_samples). */
static hcl_status draw_x(gt_target *t, cl_ulong sid, uint64_t first, uint64_t wrap, size_t n,
                         hcl_buf x, cl_ulong xo) {
  cl_ulong cnt = n, nb = (t->d + 3) / 4;
  cl_uint d = (cl_uint)t->d;
  if (d % 4) {
    hcl_arg args[] = {HCL_ARG(x.mem),
                      HCL_ARG(xo),
                      HCL_ARG(t->d_seeds.mem),
                      HCL_ARG(cnt),
                      HCL_ARG(d),
                      {0},
                      {0},
                      {0},
                      HCL_ARG(sid)};
    return hcl_run_samples(t->ctx, t->k_draw, t->label_sample, first, wrap, cnt, nb, t->R, args, 9,
                           (hcl_sample_slots){5, 6, 7});
  }
  cl_ulong s0 = wrap ? first % wrap : first, row0 = 0;
  while (row0 < cnt) {
    cl_ulong piece = cnt - row0;
    if (wrap && piece > wrap - s0) piece = wrap - s0;
    hcl_buf xv = hcl_view(x, row0 * d, t->R * cnt * d - row0 * d);
    HCL_TRY(hcl_host->rng(t->ctx, HCL_RNG_NORMAL, 0.0f, 1.0f, t->seeds, t->R, sid, s0 * d, xv,
                          cnt * d, piece * d));
    row0 += piece;
    s0 = 0;
  }
  return HCL_OK;
}

hcl_status gt_device_sample(gt_target *t, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                            hcl_buf y, size_t n_extra, const hcl_arg *extra) {
  if (!n) return HCL_OK;
  if (n > UINT32_MAX)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%s: %zu samples in one call", t->name, n);
  if (stream > HCL_STREAM_VAL)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM,
                          "%s: unknown stream %u (0 train, 1 test, 2 probe, 3 unlabelled, 4 val)",
                          t->name, stream);
  HCL_TRY(check_room(t, x, t->R * n * t->d, "x"));
  HCL_TRY(check_room(t, y, t->R * n, "y"));
  cl_ulong xo, yo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, y, "y", &yo));
  cl_uint cnt = (cl_uint)n, d = (cl_uint)t->d, sphere = t->inputs == GT_IN_SPHERE;
  cl_ulong fst = first, wrap = stream == HCL_STREAM_TRAIN ? t->train_size : 0;
  cl_ulong sid_x = gt_stream_id(t->tag, GT_PURPOSE_X, stream);
  cl_ulong sid_noise = gt_stream_id(t->tag, GT_PURPOSE_NOISE, stream);
  cl_float sqrt_d = (cl_float)sqrt((double)t->d), noise = (cl_float)t->noise;
  cl_uint kind = (cl_uint)t->link.kind, nc = (cl_uint)t->link.n_coef;
  HCL_TRY(draw_x(t, sid_x, first, wrap, n, x, xo));
  hcl_arg args[GT_MAX_ARGS] = {
      HCL_ARG(x.mem),          HCL_ARG(xo),    HCL_ARG(y.mem),     HCL_ARG(yo),
      HCL_ARG(t->d_seeds.mem), HCL_ARG(cnt),   HCL_ARG(d),         HCL_ARG(fst),
      HCL_ARG(wrap),           HCL_ARG(sid_x), HCL_ARG(sid_noise), HCL_ARG(sphere),
      HCL_ARG(sqrt_d),         HCL_ARG(noise), HCL_ARG(kind),      HCL_ARG(nc),
      HCL_ARG(t->d_coef.mem)};
  size_t na = 17;
  if (na + n_extra > GT_MAX_ARGS)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%s: too many kernel arguments", t->name);
  for (size_t a = 0; a < n_extra; a++) args[na++] = extra[a];
  size_t gws[2] = {n, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_sample, 2, gws, NULL, t->label_sample, na, args);
}

hcl_status gt_eval_what(const gt_target *t, const char *what, cl_uint *out) {
  if (what && !strcmp(what, "hstar")) {
    *out = 0;
    return HCL_OK;
  }
  if (what && !strcmp(what, "f")) {
    *out = 1;
    return HCL_OK;
  }
  return hcl_host->fail(t->ctx, HCL_ERR_UNSUPPORTED,
                        "%s: no quantity '%s' to evaluate (known: hstar, f)", t->name,
                        what ? what : "");
}

hcl_status gt_device_eval(gt_target *t, cl_uint what, hcl_buf x, size_t n, hcl_buf out,
                          size_t n_extra, const hcl_arg *extra) {
  if (!n) return HCL_OK;
  if (n > UINT32_MAX)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%s: %zu samples in one call", t->name, n);
  HCL_TRY(check_room(t, x, t->R * n * t->d, "x"));
  HCL_TRY(check_room(t, out, t->R * n, "out"));
  cl_ulong xo, oo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, out, "out", &oo));
  cl_uint cnt = (cl_uint)n, d = (cl_uint)t->d;
  cl_uint kind = (cl_uint)t->link.kind, nc = (cl_uint)t->link.n_coef;
  hcl_arg args[GT_MAX_ARGS] = {
      HCL_ARG(x.mem), HCL_ARG(xo),   HCL_ARG(out.mem), HCL_ARG(oo), HCL_ARG(cnt),
      HCL_ARG(d),     HCL_ARG(what), HCL_ARG(kind),    HCL_ARG(nc), HCL_ARG(t->d_coef.mem)};
  size_t na = 10;
  if (na + n_extra > GT_MAX_ARGS)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%s: too many kernel arguments", t->name);
  for (size_t a = 0; a < n_extra; a++) args[na++] = extra[a];
  size_t gws[2] = {n, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_eval, 2, gws, NULL, t->label_eval, na, args);
}
