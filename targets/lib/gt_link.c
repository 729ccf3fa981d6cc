/* Link functions g of the Gaussian targets: the menu, reading the keys,
 * Hermite coefficients, and the host mirror of the device arithmetic (the
 * same gt_math.cl source compiled as C). */
#include "gauss_target.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gt_math.cl"

const char *const gt_link_choices[] = {"he1", "he2", "he3", "he4", "relu", "tanh", "poly", NULL};
const char *const gt_basis_choices[] = {"monomial", "hermite", NULL};
const char *const gt_input_choices[] = {"gaussian", "sphere", NULL};

enum { MENU_HE1 = 0, MENU_HE4 = 3, MENU_RELU = 4, MENU_TANH = 5, MENU_POLY = 6 };

void gt_hermite_coef(unsigned k, double *c) {
  /* probabilists' He_{m+1} = z He_m - m He_{m-1}, He_0 = 1, He_1 = z */
  double prev[GT_MAX_COEF] = {0}, cur[GT_MAX_COEF] = {0}, next[GT_MAX_COEF];
  prev[0] = 1.0;
  cur[1] = 1.0;
  if (k == 0) memcpy(cur, prev, sizeof cur);
  for (unsigned m = 1; m < k; m++) {
    for (unsigned j = 0; j < GT_MAX_COEF; j++)
      next[j] = (j ? cur[j - 1] : 0.0) - (double)m * prev[j];
    memcpy(prev, cur, sizeof prev);
    memcpy(cur, next, sizeof cur);
  }
  double fact = 1.0;
  for (unsigned m = 2; m <= k; m++) fact *= (double)m;
  double inv = 1.0 / sqrt(fact);
  for (unsigned j = 0; j <= k; j++) c[j] = cur[j] * inv;
}

static void finish_poly(gt_link *l) {
  while (l->n_coef > 1 && l->coef[l->n_coef - 1] == 0.0) l->n_coef--; /* drop leading zeros */
  for (size_t j = 0; j < GT_MAX_COEF; j++) l->coef_f[j] = j < l->n_coef ? (float)l->coef[j] : 0.0f;
}

void gt_link_identity(gt_link *out) {
  memset(out, 0, sizeof *out);
  out->menu = -1;
  out->kind = GT_LINK_IDENTITY;
  out->n_coef = 1;
}

hcl_status gt_link_read(const hcl_report *r, const char *who, const hcl_params *p, gt_link *out) {
  hcl_ctx *ctx = r->host ? r->ctx : NULL;
  memset(out, 0, sizeof *out);
  out->menu = HCL_ENUM(p, "link", gt_link_choices);
  int basis = HCL_ENUM(p, "poly_basis", gt_basis_choices);
  double c[GT_MAX_COEF + 1];
  size_t nc = hcl_host->param_list(p, "coefficients", c, GT_MAX_COEF + 1);
  if (out->menu < 0 || basis < 0)
    return hcl_report_fail(r, HCL_ERR_PARAM, "%s: link or poly_basis is not one of the choices",
                           who);
  if (r->host && out->menu != MENU_POLY && nc) /* once, from create() */
    hcl_host->log(ctx, HCL_LOG_WARN, "%s: coefficients are ignored unless link = poly", who);
  out->n_coef = 1;
  if (out->menu <= MENU_HE4) {
    out->kind = GT_LINK_POLY;
    out->n_coef = (size_t)out->menu + 2;
    gt_hermite_coef((unsigned)out->menu + 1, out->coef);
  } else if (out->menu == MENU_RELU) {
    out->kind = GT_LINK_RELU;
  } else if (out->menu == MENU_TANH) {
    out->kind = GT_LINK_TANH;
  } else {
    out->kind = GT_LINK_POLY;
    if (!nc)
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "%s: link = poly needs coefficients, e.g. coefficients = 0, 1, 0.5 "
                             "(c_0, c_1, c_2; basis from poly_basis = %s)",
                             who, gt_basis_choices[basis]);
    if (nc > GT_MAX_COEF)
      return hcl_report_fail(r, HCL_ERR_PARAM,
                             "%s: coefficients has %zu values, at most %d (degree %d) are allowed",
                             who, nc, GT_MAX_COEF, GT_MAX_COEF - 1);
    out->n_coef = nc;
    if (basis == 0) {
      memcpy(out->coef, c, nc * sizeof *c);
    } else {
      for (size_t k = 0; k < nc; k++) {
        double h[GT_MAX_COEF];
        gt_hermite_coef((unsigned)k, h);
        for (size_t j = 0; j <= k; j++) out->coef[j] += c[k] * h[j];
      }
    }
  }
  if (out->kind == GT_LINK_POLY) finish_poly(out);
  return HCL_OK;
}

float gt_link_f32(const gt_link *l, float z) {
  return gt_link_eval((gt_u32)l->kind, l->coef_f, (gt_u32)l->n_coef, z);
}

double gt_link_f64(const gt_link *l, double z) {
  switch (l->kind) {
  case GT_LINK_RELU: return z < 0.0 ? 0.0 : z;
  case GT_LINK_TANH: return tanh(z);
  case GT_LINK_IDENTITY: return z;
  default: {
    double g = l->coef[l->n_coef - 1];
    for (size_t k = l->n_coef - 1; k > 0; k--) g = g * z + l->coef[k - 1];
    return g;
  }
  }
}

void gt_link_text(const gt_link *l, char *buf, size_t len) {
  if (!len) return;
  switch (l->kind) {
  case GT_LINK_RELU: snprintf(buf, len, "g(z) = max(0, z)"); return;
  case GT_LINK_TANH: snprintf(buf, len, "g(z) = tanh(z)"); return;
  case GT_LINK_IDENTITY: snprintf(buf, len, "g(z) = z"); return;
  default: break;
  }
  size_t used = (size_t)snprintf(buf, len, "g(z) =");
  int any = 0;
  for (size_t k = 0; k < l->n_coef && used < len; k++) {
    double c = l->coef[k];
    if (c == 0.0) continue;
    used += (size_t)snprintf(buf + used, len - used, " %s %.9g", c < 0 ? "-" : (any ? "+" : ""),
                             fabs(c));
    if (k && used < len) used += (size_t)snprintf(buf + used, len - used, " z^%zu", k);
    any = 1;
  }
  if (!any && used < len) snprintf(buf + used, len - used, " 0");
}

float gt_tanh_f32(float z) { return gt_tanh(z); }

float gt_sphere_scale_f32(float sum_sq, float sqrt_d) { return gt_sphere_scale(sum_sq, sqrt_d); }
