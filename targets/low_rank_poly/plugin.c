/* The low_rank_poly target plugin (SPEC 1.5, this project's reading of Chen,
 * Bai, Lee, Zhao, Wang, Xiong, Socher, NeurIPS 2020): x uniform on the
 * sphere of radius sqrt(d), f*(x) = c * sum_{j=1}^{r} alpha_j (beta_j . x)^{p_j}
 * with c chosen from exact moments so that Var f* = 1, y = f* + noise. */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS rng_draw
#include "low_rank_poly.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LRP_MAX_R 4096

extern const char hcl_cl_low_rank_poly[];

typedef struct lrp_target {
  gt_target g;
  size_t r;
  int orthogonal, center;
  unsigned p[LRP_MAX_R];
  double alpha[LRP_MAX_R];
  hcl_buf d_B, d_a, d_off, d_pw;
} lrp_target;

static const hcl_param_desc k_params[] = {
    GT_PARAM_D("32"),
    HCL_P_INT("r", "1", 1, LRP_MAX_R,
              "rank r: number of directions beta_1..beta_r (r <= d when orthogonal)"),
    HCL_P_LIST("p", "4", 1, LRP_MAX_P,
               "degrees p_j (integers 1..16): one value for every j, or r values"),
    HCL_P_LIST("alpha", "1", 1, 0,
               "weights alpha_j before normalisation: one value for every j, or r values"),
    HCL_P_BOOL(
        "orthogonal", "true",
        "true: beta_j a uniformly random orthonormal r-frame (Gram-Schmidt of Gaussian vectors); "
        "false: independent uniform unit vectors"),
    HCL_P_BOOL(
        "center", "false",
        "subtract the exact mean so that E f* = 0 (the SPEC's f* is not centred: for even p, "
        "E (beta . x)^p > 0)"),
    GT_PARAM_INPUTS("sphere"),
    GT_PARAM_NOISE,
    HCL_P_END};

static void lrp_destroy(void *self) {
  lrp_target *t = self;
  if (!t) return;
  hcl_buf *bufs[] = {&t->d_B, &t->d_a, &t->d_off, &t->d_pw};
  for (size_t i = 0; i < 4; i++)
    if (bufs[i]->mem) hcl_host->buf_free(t->g.ctx, bufs[i]);
  gt_target_release(&t->g);
  free(t);
}

/* Fill v[0..r) from a LIST key with one value (broadcast) or r values. */
static hcl_status read_per_component(lrp_target *t, const hcl_params *p, const char *key, double *v,
                                     const hcl_report *r) {
  size_t n = hcl_host->param_list(p, key, v, t->r);
  if (n == 1)
    for (size_t j = 1; j < t->r; j++) v[j] = v[0];
  else if (n != t->r)
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s has %zu values; give one (for every j) or r = %zu",
                           key, n, t->r);
  return HCL_OK;
}

static hcl_status configure(lrp_target *t, const hcl_params *prm, const hcl_report *rep) {
  gt_target *g = &t->g;
  int64_t r = hcl_host->param_int(prm, "r");
  t->orthogonal = hcl_host->param_bool(prm, "orthogonal");
  t->center = hcl_host->param_bool(prm, "center");
  if (r < 1 || r > LRP_MAX_R)
    return hcl_report_fail(rep, HCL_ERR_PARAM, "r = %lld, must be in 1..%d", (long long)r,
                           LRP_MAX_R);
  t->r = (size_t)r;
  if (t->orthogonal && t->r > g->d)
    return hcl_report_fail(rep, HCL_ERR_PARAM,
                           "r = %zu orthogonal directions do not fit in d = %zu "
                           "(set orthogonal = false or r <= d)",
                           t->r, g->d);
  double pv[LRP_MAX_R];
  HCL_TRY(read_per_component(t, prm, "p", pv, rep));
  HCL_TRY(read_per_component(t, prm, "alpha", t->alpha, rep));
  int any = 0;
  for (size_t j = 0; j < t->r; j++) {
    if (!(pv[j] >= 1.0 && pv[j] <= LRP_MAX_P) || pv[j] != floor(pv[j]))
      return hcl_report_fail(rep, HCL_ERR_PARAM, "p_%zu = %g, must be an integer in 1..%d", j + 1,
                             pv[j], LRP_MAX_P);
    if (!isfinite(t->alpha[j]))
      return hcl_report_fail(rep, HCL_ERR_PARAM, "alpha_%zu is not finite", j + 1);
    t->p[j] = (unsigned)pv[j];
    any |= t->alpha[j] != 0.0;
  }
  if (!any)
    return hcl_report_fail(rep, HCL_ERR_PARAM,
                           "every alpha_j is 0, f* would be 0 and cannot be "
                           "normalised");
  return HCL_OK;
}

/* Directions, exact moments and normalisation of every replica; uploads
 * B [R, r, d], a [R, r], off [R], pw [r] and notes the constants. */
static hcl_status make_function(lrp_target *t) {
  gt_target *g = &t->g;
  size_t R = g->R, d = g->d, r = t->r;
  char what[160];
  snprintf(what, sizeof what,
           "low_rank_poly: directions of [target] r = %zu, d = %zu for %zu replicas", r, d, R);
  HCL_TRY(gt_host_room(g, (double)r * (double)d * (8.0 + 4.0 * (double)R), what));
  double *B = malloc(r * d * sizeof *B), *c = malloc(R * sizeof *c), *mu = malloc(R * sizeof *mu);
  double *gram = malloc(R * sizeof *gram);
  float *Bf = malloc(R * r * d * sizeof *Bf), *af = malloc(R * r * sizeof *af);
  float *off = malloc(R * sizeof *off);
  hcl_status rc = HCL_OK;
  if (!B || !c || !mu || !gram || !Bf || !af || !off)
    rc = hcl_host->fail(g->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t rep = 0; rep < R && rc == HCL_OK; rep++) {
    if (lrp_directions(g->seeds[rep], d, r, t->orthogonal, B)) {
      rc = hcl_host->fail(g->ctx, HCL_ERR_NUMERIC,
                          "replica %zu (seed %llu) drew degenerate directions; use "
                          "another seed",
                          rep, (unsigned long long)g->seeds[rep]);
      break;
    }
    float *Br = Bf + rep * r * d;
    for (size_t e = 0; e < r * d; e++) {
      Br[e] = (float)B[e];
      B[e] = (double)Br[e]; /* moments of the directions the device uses */
    }
    double mean, var, scale = 0.0;
    lrp_moments(B, r, d, t->p, t->alpha, g->inputs, &mean, &var);
    for (size_t j = 0; j < r; j++) scale += fabs(t->alpha[j]);
    if (!(var > 1e-12 * scale * scale)) {
      rc = hcl_host->fail(g->ctx, HCL_ERR_PARAM,
                          "f* is constant on the inputs (variance %g before "
                          "normalisation; e.g. even p on the sphere with d = 1), nothing to learn",
                          var);
      break;
    }
    c[rep] = 1.0 / sqrt(var);
    mu[rep] = c[rep] * mean;
    for (size_t j = 0; j < r; j++) af[rep * r + j] = (float)(c[rep] * t->alpha[j]);
    off[rep] = t->center ? (float)(-mu[rep]) : 0.0f;
    double worst = 0.0; /* largest |beta_j . beta_l|, j != l */
    for (size_t j = 0; j < r; j++)
      for (size_t l = j + 1; l < r; l++) {
        double s = 0.0;
        for (size_t a = 0; a < d; a++) s += B[j * d + a] * B[l * d + a];
        if (fabs(s) > worst) worst = fabs(s);
      }
    gram[rep] = worst;
  }
  if (rc == HCL_OK) {
    gt_note_replicas(g, "norm_const", c);
    gt_note_replicas(g, "mean_uncentred", mu); /* E of c * sum_j alpha_j (beta_j . x)^p_j */
    gt_note_replicas(g, "max_abs_beta_dot", gram);
    cl_uint pw[LRP_MAX_R];
    for (size_t j = 0; j < r; j++) pw[j] = t->p[j];
    rc = gt_upload(g, Bf, R * r * d, &t->d_B);
    if (rc == HCL_OK) rc = gt_upload(g, af, R * r, &t->d_a);
    if (rc == HCL_OK) rc = gt_upload(g, off, R, &t->d_off);
    if (rc == HCL_OK) {
      rc = hcl_host->buf_alloc(g->ctx, r * sizeof(cl_uint), &t->d_pw);
      if (rc == HCL_OK) rc = hcl_host->buf_write(g->ctx, t->d_pw, pw, r * sizeof(cl_uint));
    }
  }
  free(B);
  free(c);
  free(mu);
  free(gram);
  free(Bf);
  free(af);
  free(off);
  return rc;
}

/* Notes of the configured function (p, alpha as JSON, a one-line formula). */
static void describe(lrp_target *t) {
  gt_target *g = &t->g;
  char buf[1024], *s = buf;
  size_t u = 0;
  gt_note_common(g);
  snprintf(buf, sizeof buf, "%zu", t->r);
  gt_note(g, "r", buf, 1);
  for (int which = 0; which < 2; which++) {
    u = (size_t)snprintf(s, sizeof buf, "[");
    for (size_t j = 0; j < t->r && u < sizeof buf; j++)
      u += (size_t)snprintf(s + u, sizeof buf - u, "%s%.17g", j ? "," : "",
                            which ? t->alpha[j] : (double)t->p[j]);
    if (u >= sizeof buf - 2) {
      snprintf(buf, sizeof buf, "\"(too long)\"");
    } else {
      snprintf(s + u, sizeof buf - u, "]");
    }
    gt_note(g, which ? "alpha" : "p", buf, 1);
  }
  gt_note(g, "orthogonal", t->orthogonal ? "true" : "false", 1);
  gt_note(g, "center", t->center ? "true" : "false", 1);
  snprintf(buf, sizeof buf,
           "f*(x) = c * sum_{j=1..%zu} alpha_j (beta_j . x)^p_j%s, c = 1/sqrt(Var) from exact "
           "moments, so Var f* = 1; eval hstar = beta_1 . x",
           t->r, t->center ? " - c * mean" : "");
  gt_note(g, "function", buf, 0);
}

static hcl_status lrp_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {
  *self = NULL;
  lrp_target *t = calloc(1, sizeof *t);
  if (!t) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status rc = gt_target_init(&t->g, ctx, setup, "low_rank_poly", LRP_TAG, 0, 1);
  hcl_report rep = {.host = hcl_host, .ctx = ctx};
  if (rc == HCL_OK) rc = configure(t, setup->params, &rep);
  if (rc == HCL_OK) {
    describe(t);
    rc = make_function(t);
  }
  if (rc == HCL_OK) rc = gt_device_init(&t->g, hcl_cl_low_rank_poly, "lrp_sample", "lrp_eval");
  if (rc != HCL_OK) {
    lrp_destroy(t);
    return rc;
  }
  hcl_host->log(ctx, HCL_LOG_INFO, "low_rank_poly: d = %zu, r = %zu, p_1 = %u, %s inputs%s", t->g.d,
                t->r, t->p[0], gt_input_choices[t->g.inputs],
                t->orthogonal ? ", orthonormal directions" : "");
  *self = t;
  return HCL_OK;
}

static hcl_status lrp_info(void *self, hcl_target_info *out) {
  return gt_target_info(&((lrp_target *)self)->g, out);
}

static hcl_status lrp_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                             hcl_buf y) {
  lrp_target *t = self;
  cl_uint r = (cl_uint)t->r;
  hcl_arg extra[] = {HCL_ARG(t->d_B.mem), HCL_ARG(t->d_a.mem), HCL_ARG(t->d_off.mem),
                     HCL_ARG(t->d_pw.mem), HCL_ARG(r)};
  return gt_device_sample(&t->g, stream, first, n, x, y, 5, extra);
}

static hcl_status lrp_eval(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out) {
  lrp_target *t = self;
  cl_uint w, r = (cl_uint)t->r;
  HCL_TRY(gt_eval_what(&t->g, what, &w));
  hcl_arg extra[] = {HCL_ARG(t->d_B.mem), HCL_ARG(t->d_a.mem), HCL_ARG(t->d_off.mem),
                     HCL_ARG(t->d_pw.mem), HCL_ARG(r)};
  return gt_device_eval(&t->g, w, x, n, out, 5, extra);
}

/* The keys without a device (the exact moments are computed in create). */
static hcl_status lrp_check(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                            char *err, size_t errlen) {
  (void)run;
  lrp_target *t = calloc(1, sizeof *t);
  if (!t) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  hcl_report rep = {.err = err, .errlen = errlen};
  hcl_status rc = gt_check(&t->g, "low_rank_poly", p, 0, 1, &rep, info);
  if (rc == HCL_OK) rc = configure(t, p, &rep);
  free(t);
  return rc;
}

static const hcl_target_vt k_vt = {
    .struct_size = sizeof(hcl_target_vt),
    .create = lrp_create,
    .destroy = lrp_destroy,
    .info = lrp_info,
    .sample = lrp_sample,
    .probe = NULL,
    .eval = lrp_eval,
    .check = lrp_check,
};

static const hcl_plugin_desc k_desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_TARGET),
    .name = "low_rank_poly",
    .version = "1.0.0",
    .summary = "(reading) Low-rank polynomial f*(x) = sum_j alpha_j (beta_j . x)^p_j, x uniform "
               "on the sphere of radius sqrt(d), normalised to Var f* = 1 by exact moments "
               "(SPEC 1.5 is this project's reading of the paper; defaults r = 1, p = 4); eval "
               "hstar = beta_1 . x",
    .citation = "M. Chen, Y. Bai, J. D. Lee, T. Zhao, H. Wang, C. Xiong, R. Socher, \"Towards "
                "understanding hierarchical learning: benefits of neural representations\", "
                "NeurIPS 2020, arXiv:2006.13436 (reading: implemented from SPEC 1.5, the paper's "
                "full text was not at hand)",
    .params = k_params,
    .vt = &k_vt,
};

HCL_PLUGIN_DEFINE(low_rank_poly, k_desc)
