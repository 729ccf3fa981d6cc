/* The single_index target plugin (SPEC 1.3; Nichani, Damian, Lee, NeurIPS
 * 2023): x ~ N(0, I_d), beta uniform on the unit sphere per replica seed,
 * y = g(beta . x) + noise * N(0, 1). eval("hstar") = beta . x for model
 * probes, eval("f") = g(beta . x). */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS rng_draw
#include "../lib/gauss_target.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIX_TAG (0x534958ULL << 40) /* "SIX" */

extern const char hcl_cl_single_index[];

typedef struct six_target {
  gt_target g;
  hcl_buf d_beta; /* float [R, d] */
} six_target;

static const hcl_param_desc k_params[] = {GT_PARAM_D("32"),
                                          GT_PARAM_INPUTS("gaussian"),
                                          GT_PARAM_LINK("h*(x) = beta . x"),
                                          GT_PARAM_COEFFICIENTS,
                                          GT_PARAM_POLY_BASIS,
                                          GT_PARAM_NOISE,
                                          HCL_P_END};

static void six_destroy(void *self) {
  six_target *t = self;
  if (!t) return;
  if (t->d_beta.mem) hcl_host->buf_free(t->g.ctx, &t->d_beta);
  gt_target_release(&t->g);
  free(t);
}

/* beta of every replica: elements 0..d-1 of stream (seed, SIX | 2<<32 | 0),
 * normalised in double, rounded to float; uploaded as [R, d]. */
static hcl_status make_beta(six_target *t) {
  gt_target *g = &t->g;
  size_t R = g->R, d = g->d;
  char what[128];
  snprintf(what, sizeof what, "single_index: beta of [target] d = %zu for %zu replicas", d, R);
  HCL_TRY(gt_host_room(g, (double)d * (8.0 + 4.0 * (double)R), what));
  double *b = malloc(d * sizeof *b), *norm = malloc(R * sizeof *norm);
  float *bf = malloc(R * d * sizeof *bf);
  hcl_status rc = HCL_OK;
  if (!b || !norm || !bf) rc = hcl_host->fail(g->ctx, HCL_ERR_NOMEM, "out of memory");
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    if (gt_unit_vector(g->seeds[r], gt_stream_id(SIX_TAG, GT_PURPOSE_PARAM, 0), 0, d, b)) {
      rc = hcl_host->fail(g->ctx, HCL_ERR_NUMERIC,
                          "replica %zu (seed %llu) drew beta = 0; use another seed", r,
                          (unsigned long long)g->seeds[r]);
      break;
    }
    double ss = 0.0;
    for (size_t j = 0; j < d; j++) {
      bf[r * d + j] = (float)b[j];
      ss += (double)bf[r * d + j] * (double)bf[r * d + j];
    }
    norm[r] = sqrt(ss);
  }
  if (rc == HCL_OK) {
    gt_note_replicas(g, "beta_norm", norm);
    char buf[96];
    snprintf(buf, sizeof buf, "[%.9g, ...]", (double)bf[0]);
    if (d <= 16) {
      /* small d: the whole direction of replica 0 */
      size_t u = (size_t)snprintf(buf, sizeof buf, "[");
      for (size_t j = 0; j < d && u < sizeof buf; j++)
        u += (size_t)snprintf(buf + u, sizeof buf - u, "%s%.4g", j ? "," : "", (double)bf[j]);
      if (u < sizeof buf) snprintf(buf + u, sizeof buf - u, "]");
    }
    gt_note(g, "beta_replica0", buf, 0);
    rc = gt_upload(g, bf, R * d, &t->d_beta);
  }
  free(b);
  free(norm);
  free(bf);
  return rc;
}

static hcl_status six_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {
  *self = NULL;
  six_target *t = calloc(1, sizeof *t);
  if (!t) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status rc = gt_target_init(&t->g, ctx, setup, "single_index", SIX_TAG, 1, 1);
  if (rc == HCL_OK) {
    gt_note_common(&t->g);
    gt_note(&t->g, "hstar", "h*(x) = beta . x, beta uniform on the unit sphere", 0);
    rc = make_beta(t);
  }
  if (rc == HCL_OK) rc = gt_device_init(&t->g, hcl_cl_single_index, "six_sample", "six_eval");
  if (rc != HCL_OK) {
    six_destroy(t);
    return rc;
  }
  char link[256];
  gt_link_text(&t->g.link, link, sizeof link);
  hcl_host->log(ctx, HCL_LOG_INFO, "single_index: d = %zu, %s inputs, %s, noise %g", t->g.d,
                gt_input_choices[t->g.inputs], link, t->g.noise);
  *self = t;
  return HCL_OK;
}

static hcl_status six_info(void *self, hcl_target_info *out) {
  return gt_target_info(&((six_target *)self)->g, out);
}

static hcl_status six_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                             hcl_buf y) {
  six_target *t = self;
  hcl_arg extra[] = {HCL_ARG(t->d_beta.mem)};
  return gt_device_sample(&t->g, stream, first, n, x, y, 1, extra);
}

static hcl_status six_eval(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out) {
  six_target *t = self;
  cl_uint w;
  HCL_TRY(gt_eval_what(&t->g, what, &w));
  hcl_arg extra[] = {HCL_ARG(t->d_beta.mem)};
  return gt_device_eval(&t->g, w, x, n, out, 1, extra);
}

/* The keys without a device (beta is drawn in create). */
static hcl_status six_check(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                            char *err, size_t errlen) {
  (void)run;
  gt_target g;
  hcl_report rep = {.err = err, .errlen = errlen};
  return gt_check(&g, "single_index", p, 1, 1, &rep, info);
}

static const hcl_target_vt k_vt = {
    .struct_size = sizeof(hcl_target_vt),
    .create = six_create,
    .destroy = six_destroy,
    .info = six_info,
    .sample = six_sample,
    .probe = NULL,
    .eval = six_eval,
    .check = six_check,
};

static const hcl_plugin_desc k_desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_TARGET),
    .name = "single_index",
    .version = "1.0.0",
    .summary = "Single-index model y = g(beta . x) + noise, x ~ N(0, I_d), beta uniform on the "
               "unit sphere per replica seed; eval hstar = beta . x for feature-learning probes",
    .citation = "E. Nichani, A. Damian, J. D. Lee, \"Provable guarantees for nonlinear feature "
                "learning in three-layer neural networks\", NeurIPS 2023, arXiv:2305.06986",
    .params = k_params,
    .vt = &k_vt,
};

HCL_PLUGIN_DEFINE(single_index, k_desc)
