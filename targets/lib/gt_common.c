/* The state the three Gaussian targets share: setup, common keys, info,
 * manifest notes. */
#include "gauss_target.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hcl_status gt_target_init(gt_target *t, hcl_ctx *ctx, const hcl_setup *setup, const char *name,
                          uint64_t tag, int has_link, size_t min_d) {
  memset(t, 0, sizeof *t);
  t->ctx = ctx;
  t->name = name;
  t->tag = tag;
  snprintf(t->label_sample, sizeof t->label_sample, "%s_sample", name);
  snprintf(t->label_eval, sizeof t->label_eval, "%s_eval", name);
  if (!setup || !setup->replicas || !setup->seeds || !setup->params)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "%s: no replicas, seeds or params in the setup",
                          name);
  t->R = setup->replicas;
  t->train_size = setup->train_size;
  t->max_batch = setup->max_batch ? setup->max_batch : 1;
  t->seeds = malloc(t->R * sizeof *t->seeds);
  if (!t->seeds) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "%s: out of host memory", name);
  memcpy(t->seeds, setup->seeds, t->R * sizeof *t->seeds);
  hcl_report rep = {.host = hcl_host, .ctx = ctx};
  return gt_target_read(t, &rep, setup->params, has_link, min_d);
}

hcl_status gt_target_read(gt_target *t, const hcl_report *r, const hcl_params *p, int has_link,
                          size_t min_d) {
  const char *name = t->name;
  int64_t d = hcl_host->param_int(p, "d");
  t->inputs = HCL_ENUM(p, "inputs", gt_input_choices);
  t->noise = hcl_host->param_double(p, "noise");
  if (d < (int64_t)min_d || d > 1048576)
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s: d = %lld, must be in %zu..1048576%s", name,
                           (long long)d, min_d, min_d > 1 ? " (a traceless A = 0 when d = 1)" : "");
  t->d = (size_t)d;
  if (t->inputs < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s: inputs must be gaussian or sphere", name);
  if (!(t->noise >= 0.0) || !isfinite(t->noise))
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s: noise = %g must be a finite number >= 0", name,
                           t->noise);
  if (has_link) return gt_link_read(r, name, p, &t->link);
  gt_link_identity(&t->link);
  return HCL_OK;
}

hcl_status gt_check(gt_target *t, const char *name, const hcl_params *p, int has_link, size_t min_d,
                    const hcl_report *r, hcl_target_info *info) {
  memset(t, 0, sizeof *t);
  t->name = name;
  HCL_TRY(gt_target_read(t, r, p, has_link, min_d));
  return gt_target_info(t, info);
}

void gt_target_release(gt_target *t) {
  hcl_ctx *ctx = t->ctx;
  if (t->k_draw) clReleaseKernel(t->k_draw);
  if (t->k_sample) clReleaseKernel(t->k_sample);
  if (t->k_eval) clReleaseKernel(t->k_eval);
  if (t->prog) clReleaseProgram(t->prog);
  if (t->d_seeds.mem) hcl_host->buf_free(ctx, &t->d_seeds);
  if (t->d_coef.mem) hcl_host->buf_free(ctx, &t->d_coef);
  free(t->seeds);
  t->seeds = NULL;
  t->k_draw = t->k_sample = t->k_eval = NULL;
  t->prog = NULL;
}

hcl_status gt_target_info(const gt_target *t, hcl_target_info *out) {
  hcl_target_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = (uint32_t)sizeof info;
  info.x.rank = 1;
  info.x.dims[0] = t->d;
  info.y_dim = 1;
  info.task = HCL_TASK_REGRESSION;
  return hcl_target_info_put(out, &info);
}

void gt_note(const gt_target *t, const char *key, const char *value, int is_json) {
  char k[128];
  snprintf(k, sizeof k, "%s.%s", t->name, key);
  hcl_host->note(t->ctx, k, value, is_json);
}

void gt_note_replicas(const gt_target *t, const char *key, const double *v) {
  size_t cap = 8 + t->R * 32, u = 0;
  char *s = malloc(cap);
  if (!s) return;
  u += (size_t)snprintf(s + u, cap - u, "[");
  for (size_t r = 0; r < t->R && u < cap; r++)
    u += (size_t)snprintf(s + u, cap - u, "%s%.17g", r ? "," : "", isfinite(v[r]) ? v[r] : 0.0);
  if (u < cap) snprintf(s + u, cap - u, "]");
  gt_note(t, key, s, 1);
  free(s);
}

void gt_note_common(const gt_target *t) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%zu", t->d);
  gt_note(t, "d", buf, 1);
  gt_note(t, "inputs", gt_input_choices[t->inputs], 0);
  snprintf(buf, sizeof buf, "%.17g", t->noise);
  gt_note(t, "noise", buf, 1);
  if (t->link.menu >= 0) {
    gt_note(t, "link", gt_link_choices[t->link.menu], 0);
    gt_link_text(&t->link, buf, sizeof buf);
    gt_note(t, "link_function", buf, 0);
  }
  unsigned long long tag = (unsigned long long)t->tag;
  snprintf(buf, sizeof buf,
           "runtime streams (kernels/common.cl), T = %#llx: coordinate j of sample i = element "
           "i*4*ceil(d/4)+j of stream (seed, T | s) as N(0,1)%s; label noise = element i of "
           "stream (seed, T | 1<<32 | s); random parameters from streams (seed, T | 2<<32 | q) "
           "drawn on the host; s = 0 train (i mod train_size), 1 test, 2 probe",
           tag,
           t->inputs == GT_IN_SPHERE
               ? ", scaled to radius sqrt(d) by three Newton steps of rsqrt(sum z_j^2)"
               : "");
  gt_note(t, "rng", buf, 0);
}

hcl_status gt_host_room(const gt_target *t, double bytes, const char *what) {
  if (!HCL_HOST_HAS(host_mem_check)) return HCL_OK;
  size_t b = bytes < (double)SIZE_MAX ? (size_t)bytes : SIZE_MAX;
  return hcl_host->host_mem_check(t->ctx, b, what);
}
