/* The quadratic_features target plugin (SPEC 1.4; Nichani, Damian, Lee,
 * NeurIPS 2023): x uniform on the sphere of radius sqrt(d) (or Gaussian),
 * h*(x) = x^T A x with A symmetric, tr A = 0, |A|_F = 1 per replica seed,
 * y = g(h*(x)) + noise * N(0, 1). eval("hstar") = h*(x), eval("f") = g(h*). */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS rng_draw
#include "quadratic_features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUF_MAX_D 4096 /* A is d*d floats per replica */

extern const char hcl_cl_quadratic_features[];

typedef struct quf_target {
  gt_target g;
  size_t rank;  /* 0 = full */
  float hscale; /* 1, or 1/sqrt(Var h*) with standardize */
  hcl_buf d_A;  /* float [R, d, d] */
} quf_target;

static const hcl_param_desc k_params[] = {
    GT_PARAM_D("32"),
    HCL_P_INT(
        "rank", "0", 0, 1048576,
        "rank of A: 0 = full (A = G + G^T for a Gaussian G, minus its trace/d times I, scaled to "
        "|A|_F = 1); k in 2..d: A = sum_{j<=k} lambda_j v_j v_j^T with v_j a uniformly random "
        "orthonormal k-frame and lambda Gaussian, centred and scaled to unit norm (exactly rank k, "
        "trace 0, |A|_F = 1; rank 1 cannot be traceless)"),
    GT_PARAM_INPUTS("sphere"),
    GT_PARAM_LINK("h*(x) = x^T A x"),
    GT_PARAM_COEFFICIENTS,
    GT_PARAM_POLY_BASIS,
    HCL_P_BOOL(
        "standardize", "false",
        "divide h* by its standard deviation (sqrt(2d/(d+2)) on the sphere, sqrt(2) for Gaussian "
        "inputs; exact for any such A) so that h* has variance 1 before the link; A itself keeps "
        "|A|_F = 1"),
    GT_PARAM_NOISE,
    HCL_P_END};

static void quf_destroy(void *self) {
  quf_target *t = self;
  if (!t) return;
  if (t->d_A.mem) hcl_host->buf_free(t->g.ctx, &t->d_A);
  gt_target_release(&t->g);
  free(t);
}

/* A of every replica (quf_matrix), rounded to float, uploaded as [R, d, d];
 * notes the trace and Frobenius norm of the float matrices. */
static hcl_status make_matrices(quf_target *t) {
  gt_target *g = &t->g;
  size_t R = g->R, d = g->d;
  char what[160];
  snprintf(what, sizeof what,
           "quadratic_features: the matrices A of [target] d = %zu (d x d doubles, and %zu "
           "replicas x d x d floats)",
           d, R);
  HCL_TRY(gt_host_room(g, (double)d * (double)d * (8.0 + 4.0 * (double)R), what));
  double *A = malloc(d * d * sizeof *A), *tr = malloc(R * sizeof *tr);
  double *fro = malloc(R * sizeof *fro);
  float *Af = malloc(R * d * d * sizeof *Af);
  hcl_status rc = HCL_OK;
  if (!A || !tr || !fro || !Af)
    rc = hcl_host->fail(g->ctx, HCL_ERR_NOMEM,
                        "out of host memory for A "
                        "(%zu x %zu, %zu replicas)",
                        d, d, R);
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    if (quf_matrix(g->seeds[r], d, t->rank, A)) {
      rc = hcl_host->fail(g->ctx, HCL_ERR_NUMERIC,
                          "replica %zu (seed %llu) drew a degenerate A; use "
                          "another seed",
                          r, (unsigned long long)g->seeds[r]);
      break;
    }
    double s = 0.0, f = 0.0;
    for (size_t e = 0; e < d * d; e++) {
      float v = (float)A[e];
      Af[r * d * d + e] = v;
      f += (double)v * (double)v;
    }
    for (size_t a = 0; a < d; a++) s += (double)Af[r * d * d + a * d + a];
    tr[r] = s;
    fro[r] = sqrt(f);
  }
  if (rc == HCL_OK) {
    gt_note_replicas(g, "trace", tr);
    gt_note_replicas(g, "frobenius", fro);
    rc = gt_upload(g, Af, R * d * d, &t->d_A);
  }
  free(A);
  free(tr);
  free(fro);
  free(Af);
  return rc;
}

/* rank against d (shared by create and check). */
static hcl_status check_rank(quf_target *t, const hcl_params *p, const hcl_report *r) {
  gt_target *g = &t->g;
  int64_t rank = hcl_host->param_int(p, "rank");
  if (g->d > QUF_MAX_D)
    return hcl_report_fail(r, HCL_ERR_PARAM, "d = %zu, at most %d (A has d*d entries per replica)",
                           g->d, QUF_MAX_D);
  if (rank < 0 || rank == 1 || (size_t)rank > g->d)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "rank = %lld, must be 0 (full) or 2..d = 2..%zu "
                           "(a rank-1 symmetric A cannot have trace 0)",
                           (long long)rank, g->d);
  t->rank = (size_t)rank;
  return HCL_OK;
}

static hcl_status configure(quf_target *t, const hcl_params *p) {
  gt_target *g = &t->g;
  int standardize = hcl_host->param_bool(p, "standardize");
  hcl_report rep = {.host = hcl_host, .ctx = g->ctx};
  HCL_TRY(check_rank(t, p, &rep));
  double var = quf_hstar_var(g->d, g->inputs);
  t->hscale = standardize ? (float)(1.0 / sqrt(var)) : 1.0f;
  char buf[512];
  gt_note_common(g);
  snprintf(buf, sizeof buf, "%zu", t->rank);
  gt_note(g, "rank", buf, 1);
  snprintf(buf, sizeof buf, "%.17g", var);
  gt_note(g, "hstar_var_unscaled", buf, 1);
  snprintf(buf, sizeof buf, "%.9g", (double)t->hscale);
  gt_note(g, "hstar_scale", buf, 1);
  snprintf(buf, sizeof buf,
           "h*(x) = %s x^T A x, A symmetric, tr A = 0, |A|_F = 1, %s; E h* = 0, Var h* = %.9g",
           standardize ? "(1/sqrt(Var)) *" : "", t->rank ? "low rank" : "full rank",
           standardize ? 1.0 : var);
  gt_note(g, "hstar", buf, 0);
  return HCL_OK;
}

static hcl_status quf_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {
  *self = NULL;
  quf_target *t = calloc(1, sizeof *t);
  if (!t) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  hcl_status rc = gt_target_init(&t->g, ctx, setup, "quadratic_features", QUF_TAG, 1, 2);
  if (rc == HCL_OK) rc = configure(t, setup->params);
  if (rc == HCL_OK) rc = make_matrices(t);
  if (rc == HCL_OK) rc = gt_device_init(&t->g, hcl_cl_quadratic_features, "quf_sample", "quf_eval");
  if (rc != HCL_OK) {
    quf_destroy(t);
    return rc;
  }
  char link[256];
  gt_link_text(&t->g.link, link, sizeof link);
  hcl_host->log(ctx, HCL_LOG_INFO, "quadratic_features: d = %zu, rank %s%zu, %s inputs, %s", t->g.d,
                t->rank ? "" : "full = ", t->rank ? t->rank : t->g.d, gt_input_choices[t->g.inputs],
                link);
  *self = t;
  return HCL_OK;
}

static hcl_status quf_info(void *self, hcl_target_info *out) {
  return gt_target_info(&((quf_target *)self)->g, out);
}

static hcl_status quf_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                             hcl_buf y) {
  quf_target *t = self;
  hcl_arg extra[] = {HCL_ARG(t->d_A.mem), HCL_ARG(t->hscale)};
  return gt_device_sample(&t->g, stream, first, n, x, y, 2, extra);
}

static hcl_status quf_eval(void *self, const char *what, hcl_buf x, size_t n, hcl_buf out) {
  quf_target *t = self;
  cl_uint w;
  HCL_TRY(gt_eval_what(&t->g, what, &w));
  hcl_arg extra[] = {HCL_ARG(t->d_A.mem), HCL_ARG(t->hscale)};
  return gt_device_eval(&t->g, w, x, n, out, 2, extra);
}

/* The keys without a device (A is drawn in create). */
static hcl_status quf_check(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                            char *err, size_t errlen) {
  (void)run;
  quf_target t;
  memset(&t, 0, sizeof t);
  hcl_report rep = {.err = err, .errlen = errlen};
  HCL_TRY(gt_check(&t.g, "quadratic_features", p, 1, 2, &rep, info));
  return check_rank(&t, p, &rep);
}

static const hcl_target_vt k_vt = {
    .struct_size = sizeof(hcl_target_vt),
    .create = quf_create,
    .destroy = quf_destroy,
    .info = quf_info,
    .sample = quf_sample,
    .probe = NULL,
    .eval = quf_eval,
    .check = quf_check,
};

static const hcl_plugin_desc k_desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_TARGET),
    .name = "quadratic_features",
    .version = "1.0.0",
    .summary = "Function of a quadratic feature y = g(x^T A x) + noise, x uniform on the sphere "
               "of radius sqrt(d), A symmetric traceless with |A|_F = 1 per replica seed (full "
               "or given rank); eval hstar = x^T A x for feature-learning probes",
    .citation = "E. Nichani, A. Damian, J. D. Lee, \"Provable guarantees for nonlinear feature "
                "learning in three-layer neural networks\", NeurIPS 2023, arXiv:2305.06986",
    .params = k_params,
    .vt = &k_vt,
};

HCL_PLUGIN_DEFINE(quadratic_features, k_desc)
