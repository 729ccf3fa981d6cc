/* Device side of the staircase target: term and seed upload, kernel
 * compilation, sample() and eval("f"). The exact draw layout is in
 * staircase.cl (and mirrored by the test's host reference). */
#include "staircase.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const char hcl_cl_staircase[];

float stc_biased_hi(double p) { return (float)((1.0 - p) / sqrt(p * (1.0 - p))); }
float stc_biased_lo(double p) { return (float)(-p / sqrt(p * (1.0 - p))); }

/* Upload a CSR set list (at least one element per buffer: empty CL buffers
 * are not allowed). */
static hcl_status upload_sets(stc_target *t, const stc_terms *s, hcl_buf *d_coef, hcl_buf *d_off,
                              hcl_buf *d_idx) {
  size_t nt = s->count, ni = s->count ? s->off[s->count] : 0;
  hcl_ctx *ctx = t->ctx;
  if (d_coef) {
    float *c = malloc((nt ? nt : 1) * sizeof *c);
    if (!c) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
    c[0] = 0.0f;
    for (size_t j = 0; j < nt; j++) c[j] = (float)s->coef[j];
    hcl_status rc = hcl_host->buf_alloc(ctx, (nt ? nt : 1) * sizeof *c, d_coef);
    if (rc == HCL_OK && nt) rc = hcl_host->buf_write(ctx, *d_coef, c, nt * sizeof *c);
    free(c);
    if (rc != HCL_OK) return rc;
  }
  uint32_t zero = 0;
  HCL_TRY(hcl_host->buf_alloc(ctx, (nt + 1) * sizeof(uint32_t), d_off));
  HCL_TRY(hcl_host->buf_write(ctx, *d_off, s->off ? s->off : &zero, (nt + 1) * sizeof(uint32_t)));
  HCL_TRY(hcl_host->buf_alloc(ctx, (ni ? ni : 1) * sizeof(uint32_t), d_idx));
  if (ni) HCL_TRY(hcl_host->buf_write(ctx, *d_idx, s->idx, ni * sizeof(uint32_t)));
  return HCL_OK;
}

hcl_status stc_device_init(stc_target *t) {
  hcl_ctx *ctx = t->ctx;
  uint32_t *keys = malloc(2 * t->R * sizeof *keys);
  if (!keys) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < t->R; r++) {
    keys[2 * r] = (uint32_t)t->seeds[r];
    keys[2 * r + 1] = (uint32_t)(t->seeds[r] >> 32);
  }
  hcl_status rc = hcl_host->buf_alloc(ctx, 2 * t->R * sizeof *keys, &t->d_seeds);
  if (rc == HCL_OK) rc = hcl_host->buf_write(ctx, t->d_seeds, keys, 2 * t->R * sizeof *keys);
  free(keys);
  HCL_TRY(rc);
  HCL_TRY(upload_sets(t, &t->fn, &t->d_coef, &t->d_off, &t->d_idx));
  HCL_TRY(upload_sets(t, &t->probe_sets, NULL, &t->d_poff, &t->d_pidx));
  HCL_TRY(hcl_host->program(ctx, "staircase", hcl_cl_staircase, "", &t->prog));
  static const char *const draw[] = {"stc_draw_x_boolean", "stc_draw_x_biased",
                                     "stc_draw_x_gaussian"}; /* by STC_IN_* */
  HCL_TRY(hcl_host->kernel(ctx, t->prog, draw[t->inputs], &t->k_draw));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "stc_sample", &t->k_sample));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "stc_eval_f", &t->k_eval));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "stc_probe_partial", &t->k_probe_partial));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "stc_probe_sum", &t->k_probe_sum));
  return HCL_OK;
}

void stc_device_release(stc_target *t) {
  hcl_ctx *ctx = t->ctx;
  cl_kernel ks[] = {t->k_draw, t->k_sample, t->k_eval, t->k_probe_partial, t->k_probe_sum};
  for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
    if (ks[i]) clReleaseKernel(ks[i]);
  if (t->prog) clReleaseProgram(t->prog);
  hcl_buf *bufs[] = {&t->d_seeds, &t->d_coef, &t->d_off, &t->d_idx,     &t->d_poff, &t->d_pidx,
                     &t->p_x,     &t->p_y,    &t->p_f,   &t->p_partial, &t->p_acc};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(ctx, bufs[i]);
}

/* x of samples first .. first+count-1 (with wrap != 0, sample s is s %
 * wrap): stc_draw_x_<law>, one Philox block a work-item (hcl_run_samples). */
static hcl_status draw_x(stc_target *t, cl_uint stream, uint64_t first, uint64_t wrap,
                         cl_ulong count, cl_mem x, cl_ulong xo, const cl_float law[3]) {
  cl_ulong nb = (t->n + 3) / 4;
  cl_uint n = (cl_uint)t->n;
  hcl_arg args[] = {HCL_ARG(x),
                    HCL_ARG(xo),
                    HCL_ARG(t->d_seeds.mem),
                    HCL_ARG(count),
                    HCL_ARG(n),
                    {0},
                    {0},
                    {0},
                    HCL_ARG(stream),
                    HCL_ARG(law[0]),
                    HCL_ARG(law[1]),
                    HCL_ARG(law[2])};
  return hcl_run_samples(t->ctx, t->k_draw, "staircase_sample", first, wrap, count, nb, t->R, args,
                         sizeof args / sizeof *args, (hcl_sample_slots){5, 6, 7});
}

hcl_status stc_sample(void *self, uint32_t stream, uint64_t first, size_t count, hcl_buf x,
                      hcl_buf y) {
  stc_target *t = self;
  if (!count) return HCL_OK;
  if (count > UINT32_MAX)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%zu samples in one call", count);
  HCL_TRY(hcl_view_room(t->ctx, x, t->R * count * t->n, "x"));
  HCL_TRY(hcl_view_room(t->ctx, y, t->R * count, "y"));
  cl_ulong xo, yo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, y, "y", &yo));
  cl_uint cnt = (cl_uint)count, n = (cl_uint)t->n, st = stream, inputs = (cl_uint)t->inputs;
  cl_uint nterms = (cl_uint)t->fn.count;
  cl_ulong fst = first, wrap = stream == HCL_STREAM_TRAIN ? t->train_size : 0;
  cl_float xhi = 0, xlo = 0, bias = (cl_float)t->bias, noise = (cl_float)t->noise;
  if (t->inputs == STC_IN_BIASED) {
    xhi = stc_biased_hi(t->bias);
    xlo = stc_biased_lo(t->bias);
  }
  const cl_float law[3] = {xhi, xlo, bias};
  HCL_TRY(draw_x(t, st, first, wrap, count, x.mem, xo, law));
  hcl_arg args[] = {HCL_ARG(x.mem),
                    HCL_ARG(xo),
                    HCL_ARG(y.mem),
                    HCL_ARG(yo),
                    HCL_ARG(t->d_seeds.mem),
                    HCL_ARG(cnt),
                    HCL_ARG(n),
                    HCL_ARG(fst),
                    HCL_ARG(wrap),
                    HCL_ARG(st),
                    HCL_ARG(inputs),
                    HCL_ARG(xhi),
                    HCL_ARG(xlo),
                    HCL_ARG(bias),
                    HCL_ARG(noise),
                    HCL_ARG(nterms),
                    HCL_ARG(t->d_coef.mem),
                    HCL_ARG(t->d_off.mem),
                    HCL_ARG(t->d_idx.mem)};
  size_t gws[2] = {count, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_sample, 2, gws, NULL, "staircase_sample",
                              sizeof args / sizeof *args, args);
}

hcl_status stc_eval(void *self, const char *what, hcl_buf x, size_t count, hcl_buf out) {
  stc_target *t = self;
  if (!what || strcmp(what, "f"))
    return hcl_host->fail(t->ctx, HCL_ERR_UNSUPPORTED, "no quantity '%s' to evaluate (known: f)",
                          what ? what : "");
  if (!count) return HCL_OK;
  if (count > UINT32_MAX)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%zu samples in one call", count);
  HCL_TRY(hcl_view_room(t->ctx, x, t->R * count * t->n, "x"));
  HCL_TRY(hcl_view_room(t->ctx, out, t->R * count, "out"));
  cl_ulong xo, oo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, out, "out", &oo));
  cl_uint cnt = (cl_uint)count, n = (cl_uint)t->n, nterms = (cl_uint)t->fn.count;
  hcl_arg args[] = {
      HCL_ARG(x.mem),        HCL_ARG(xo),          HCL_ARG(out.mem), HCL_ARG(oo),
      HCL_ARG(cnt),          HCL_ARG(n),           HCL_ARG(nterms),  HCL_ARG(t->d_coef.mem),
      HCL_ARG(t->d_off.mem), HCL_ARG(t->d_idx.mem)};
  size_t gws[2] = {count, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_eval, 2, gws, NULL, "staircase_eval_f",
                              sizeof args / sizeof *args, args);
}
