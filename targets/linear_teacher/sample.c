/* Device side of the linear_teacher target: w* (drawn by host->rng,
 * normalised on the host), seed and w* upload, kernel
 * compilation, sample(), eval("margin") and the attempt-cap counter. The
 * exact draw layout is in linear_teacher.cl. */
#include "linear_teacher.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char hcl_cl_linear_teacher[];

hcl_status lt_teacher_make(hcl_ctx *ctx, const uint64_t *seeds, size_t R, size_t d, float *out) {
  hcl_buf g = {0};
  HCL_TRY(hcl_host->buf_alloc(ctx, R * d * sizeof(float), &g));
  hcl_status rc =
      hcl_host->rng(ctx, HCL_RNG_NORMAL, 0.0f, 1.0f, seeds, R, LT_STREAM_TEACHER, 0, g, d, d);
  if (rc == HCL_OK) rc = hcl_host->buf_read(ctx, g, out, R * d * sizeof(float));
  hcl_host->buf_free(ctx, &g);
  HCL_TRY(rc);
  for (size_t r = 0; r < R; r++) {
    float *w = out + r * d;
    double ss = 0.0;
    for (size_t j = 0; j < d; j++) ss += (double)w[j] * (double)w[j];
    if (!(ss > 0.0))
      return hcl_host->fail(ctx, HCL_ERR_NUMERIC,
                            "replica %zu (seed %llu) drew w* = 0; use another seed", r,
                            (unsigned long long)seeds[r]);
    double norm = sqrt(ss);
    for (size_t j = 0; j < d; j++) w[j] = (float)((double)w[j] / norm);
  }
  return HCL_OK;
}

hcl_status lt_device_init(lt_target *t) {
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
  HCL_TRY(hcl_host->buf_alloc(ctx, t->R * t->d * sizeof(float), &t->d_wstar));
  HCL_TRY(hcl_host->buf_write(ctx, t->d_wstar, t->wstar, t->R * t->d * sizeof(float)));
  HCL_TRY(hcl_host->buf_alloc(ctx, t->R * sizeof(uint32_t), &t->d_capped));
  HCL_TRY(hcl_host->buf_alloc(ctx, sizeof(uint32_t), &t->d_pending));
  HCL_TRY(hcl_host->program(ctx, "linear_teacher", hcl_cl_linear_teacher, "", &t->prog));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "lt_sample", &t->k_sample));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "lt_margin", &t->k_margin));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "lt_agree", &t->k_agree));
  return HCL_OK;
}

void lt_device_release(lt_target *t) {
  hcl_ctx *ctx = t->ctx;
  cl_kernel ks[] = {t->k_sample, t->k_margin, t->k_agree};
  for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
    if (ks[i]) clReleaseKernel(ks[i]);
  if (t->prog) clReleaseProgram(t->prog);
  hcl_buf *bufs[] = {&t->d_seeds, &t->d_wstar, &t->d_capped, &t->d_pending, &t->p_x,
                     &t->p_y,     &t->p_f,     &t->p_dir,    &t->p_off,     &t->p_counts};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(ctx, bufs[i]);
}

hcl_status lt_sample(void *self, uint32_t stream, uint64_t first, size_t count, hcl_buf x,
                     hcl_buf y) {
  lt_target *t = self;
  if (!count) return HCL_OK;
  if (count > UINT32_MAX || stream > 255)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM,
                          "%zu samples of stream %u in one call (at most 2^32 "
                          "samples, streams 0..255)",
                          count, stream);
  HCL_TRY(hcl_view_room(t->ctx, x, t->R * count * t->d, "x"));
  HCL_TRY(hcl_view_room(t->ctx, y, t->R * count, "y"));
  cl_ulong xo, yo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, y, "y", &yo));
  cl_uint cnt = (cl_uint)count, d = (cl_uint)t->d, st = stream, inputs = (cl_uint)t->inputs;
  cl_uint attempts = t->attempts, t0 = 0, t1 = attempts;
  cl_ulong fst = first, wrap = stream == HCL_STREAM_TRAIN ? t->train_size : 0;
  cl_float gamma = (cl_float)t->margin, noise = (cl_float)t->noise;
  hcl_arg args[] = {HCL_ARG(x.mem),
                    HCL_ARG(xo),
                    HCL_ARG(y.mem),
                    HCL_ARG(yo),
                    HCL_ARG(t->d_seeds.mem),
                    HCL_ARG(t->d_wstar.mem),
                    HCL_ARG(t->d_capped.mem),
                    HCL_ARG(cnt),
                    HCL_ARG(d),
                    HCL_ARG(fst),
                    HCL_ARG(wrap),
                    HCL_ARG(st),
                    HCL_ARG(inputs),
                    HCL_ARG(attempts),
                    HCL_ARG(gamma),
                    HCL_ARG(noise),
                    HCL_ARG(t0),
                    HCL_ARG(t1),
                    HCL_ARG(t->d_pending.mem)};
  size_t gws[2] = {count, t->R};
  size_t per_round = lt_round_attempts(t, count);
  if (per_round >= attempts) /* one launch: the usual case */
    return hcl_host->run_kernel(t->ctx, t->k_sample, 2, gws, NULL, "linear_teacher_sample",
                                sizeof args / sizeof *args, args);
  /* a rare margin: rounds of attempts, a stop request checked between them */
  HCL_TRY(hcl_host->fill(t->ctx, y, 0.0f, t->R * count));
  for (t0 = 0; t0 < attempts; t0 = t1) {
    t1 = attempts - t0 > per_round ? t0 + (cl_uint)per_round : attempts;
    cl_uint pending = 0;
    HCL_TRY(hcl_host->buf_write(t->ctx, t->d_pending, &pending, sizeof pending));
    HCL_TRY(hcl_host->run_kernel(t->ctx, t->k_sample, 2, gws, NULL, "linear_teacher_sample",
                                 sizeof args / sizeof *args, args));
    HCL_TRY(hcl_host->buf_read(t->ctx, t->d_pending, &pending, sizeof pending));
    if (!pending) break;
    if (lt_stop_requested(t->ctx) && t1 < attempts)
      return hcl_host->fail(t->ctx, HCL_ERR_INTERRUPTED,
                            "interrupted while drawing inputs with margin %g "
                            "(attempt %u of at most %u)",
                            t->margin, t1, attempts);
  }
  return HCL_OK;
}

int lt_stop_requested(hcl_ctx *ctx) {
  return HCL_HOST_HAS(should_stop) && hcl_host->should_stop(ctx);
}

size_t lt_round_attempts(const lt_target *t, size_t count) {
  /* expected attempts per sample: 1/p, at most the cap (p = 0: every one) */
  double per_sample = t->p_accept > 0.0 ? 1.0 / t->p_accept : (double)t->attempts;
  if (per_sample > (double)t->attempts) per_sample = (double)t->attempts;
  double draws = (double)t->R * (double)count * (double)(t->d + 2); /* normals of one attempt */
  if (draws * per_sample <= LT_ROUND_DRAWS) return t->attempts;
  double a = LT_ROUND_DRAWS / draws;
  return a < 1.0 ? 1 : (size_t)a;
}

hcl_status lt_eval(void *self, const char *what, hcl_buf x, size_t count, hcl_buf out) {
  lt_target *t = self;
  if (!what || strcmp(what, "margin"))
    return hcl_host->fail(t->ctx, HCL_ERR_UNSUPPORTED,
                          "no quantity '%s' to evaluate (known: margin)", what ? what : "");
  if (!count) return HCL_OK;
  if (count > UINT32_MAX)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%zu samples in one call", count);
  HCL_TRY(hcl_view_room(t->ctx, x, t->R * count * t->d, "x"));
  HCL_TRY(hcl_view_room(t->ctx, out, t->R * count, "out"));
  cl_ulong xo, oo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, out, "out", &oo));
  cl_uint cnt = (cl_uint)count, d = (cl_uint)t->d;
  hcl_arg args[] = {HCL_ARG(x.mem),          HCL_ARG(xo),  HCL_ARG(out.mem), HCL_ARG(oo),
                    HCL_ARG(t->d_wstar.mem), HCL_ARG(cnt), HCL_ARG(d)};
  size_t gws[2] = {count, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_margin, 2, gws, NULL, "linear_teacher_margin",
                              sizeof args / sizeof *args, args);
}

hcl_status lt_check_capped(lt_target *t, uint32_t *per_replica) {
  uint32_t *c = per_replica ? per_replica : malloc(t->R * sizeof *c);
  if (!c) return hcl_host->fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status rc = hcl_host->buf_read(t->ctx, t->d_capped, c, t->R * sizeof *c);
  uint64_t total = 0;
  for (size_t r = 0; r < t->R && rc == HCL_OK; r++) total += c[r];
  if (rc == HCL_OK && total > t->capped_seen) {
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)total);
    hcl_host->note(t->ctx, "linear_teacher.capped_draws", num, 1);
    hcl_host->log(t->ctx, HCL_LOG_WARN,
                  "linear_teacher: %llu draws found no x with |w*.x| >= %g in %u attempts and "
                  "kept the last attempt (margin NOT respected for them); raise max_attempts",
                  (unsigned long long)total, t->margin, t->attempts);
    t->capped_seen = total;
  }
  if (c != per_replica) free(c);
  return rc;
}
