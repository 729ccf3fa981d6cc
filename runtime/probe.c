/* The probe handle: what a target's or model's probe may do during an
 * evaluation (run the model, draw samples, report metrics). */
#include "trainer.h"

#include <stdio.h>

/* Probes loop over chunks through these services: a stop request ends them
 * between chunks (plugins need not poll). */
static hcl_status stop_check(hcl_trainer *t, const char *where) {
  if (!hcl_trainer_stop_requested(t)) return HCL_OK;
  return hcl_fail(t->ctx, HCL_ERR_INTERRUPTED, "interrupted during %s at step %llu", where,
                  (unsigned long long)t->step);
}

hcl_status hcl_probe_forward(hcl_probe *p, hcl_buf x, size_t n, hcl_buf out) {
  hcl_trainer *t = p->t;
  HCL_TRY(stop_check(t, "a probe"));
  size_t maxb = t->cfg->batch > t->cfg->eval_batch ? t->cfg->batch : t->cfg->eval_batch;
  if (n > maxb)
    return hcl_fail(t->ctx, HCL_ERR_PARAM, "probe asked for %zu samples at once (at most %zu)", n,
                    maxb);
  return t->mvt->forward(t->model, t->params, x, n, out);
}

/* Metric names are [a-z0-9_], so that every JSON key is plain. */
hcl_status hcl_probe_emit(hcl_probe *p, const char *name, const double *values) {
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
      return hcl_fail(p->t->ctx, HCL_ERR_PARAM, "probe metric name '%s': use [a-z0-9_]", name);
  return hcl_trainer_metric_add(p->t, name, values);
}

hcl_status hcl_probe_batch(hcl_probe *p, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                           hcl_buf y) {
  HCL_TRY(stop_check(p->t, "a probe"));
  return HCL_IN_TARGET(p->t->ctx, p->t->tvt->sample(p->t->target, stream, first, n, x, y));
}

hcl_buf hcl_probe_params(hcl_probe *p, const hcl_block **blocks, size_t *n_blocks) {
  if (blocks) *blocks = p->t->blocks;
  if (n_blocks) *n_blocks = p->t->n_blocks;
  return p->t->params;
}

hcl_status hcl_probe_features(hcl_probe *p, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                              size_t *dim) {
  hcl_trainer *t = p->t;
  if (!t->mvt->features)
    return hcl_fail(t->ctx, HCL_ERR_UNSUPPORTED, "this model does not expose hidden features");
  HCL_TRY(stop_check(t, "a probe"));
  return t->mvt->features(t->model, t->params, layer, x, n, out, dim);
}

hcl_status hcl_probe_target_eval(hcl_probe *p, const char *what, hcl_buf x, size_t n, hcl_buf out) {
  hcl_trainer *t = p->t;
  if (!t->tvt->eval)
    return hcl_fail(t->ctx, HCL_ERR_UNSUPPORTED, "the target has no quantity '%s' to evaluate",
                    what);
  return HCL_IN_TARGET(t->ctx, t->tvt->eval(t->target, what, x, n, out));
}

hcl_ctx *hcl_probe_ctx(hcl_probe *p) { return p->t->ctx; }

size_t hcl_probe_replicas(hcl_probe *p) { return p->t->cfg->replicas; }
