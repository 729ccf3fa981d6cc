/* The on-device training loop: sample -> forward -> loss -> backward ->
 * update, with no read-back per step. The host syncs every HCL_SYNC_EVERY
 * steps (to bound the queue and check for NaN) and at evaluations. */
#include "trainer.h"

#include "graph.h" /* hcl_graph_model_step */
#include "launch_args.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HCL_SYNC_EVERY 256
#define HCL_CACHE_MAX_BYTES ((size_t)1 << 30)

static size_t fbytes(size_t n) { return n * sizeof(float); }

static hcl_status alloc_f(hcl_trainer *t, hcl_buf *b, size_t n) {
  return hcl_buf_alloc(t->ctx, fbytes(n), b);
}

static hcl_status reset_nan_steps(hcl_trainer *t) {
  int32_t *v = malloc(sizeof(int32_t) * t->cfg->replicas);
  if (!v) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (uint32_t r = 0; r < t->cfg->replicas; r++) v[r] = -1;
  hcl_status rc = hcl_buf_write(t->ctx, t->nan_step, v, sizeof(int32_t) * t->cfg->replicas);
  free(v);
  return rc;
}

/* Fill the cached training set [R, P, w] chunk by chunk through t->x/t->y. */
static hcl_status build_train_cache(hcl_trainer *t) {
  const hcl_train_cfg *c = t->cfg;
  size_t R = c->replicas, P = c->train_size,
         maxb = c->batch > c->eval_batch ? c->batch : c->eval_batch;
  HCL_TRY(alloc_f(t, &t->cache_x, R * P * t->x_size));
  HCL_TRY(alloc_f(t, &t->cache_y, R * P * t->y_dim));
  for (size_t first = 0, chunk = 0; first < P; first += maxb, chunk++) {
    if (chunk % 8 == 7)
      HCL_TRY(hcl_finish(t->ctx)); /* so that a stop need not drain a long queue */
    if (first > 0 && hcl_trainer_stop_requested(t))
      return hcl_fail(t->ctx, HCL_ERR_INTERRUPTED,
                      "interrupted while generating the training set (%zu of %zu samples)", first,
                      P);
    size_t n = P - first < maxb ? P - first : maxb;
    HCL_TRY(
        HCL_IN_TARGET(t->ctx, t->tvt->sample(t->target, HCL_STREAM_TRAIN, first, n, t->x, t->y)));
    for (size_t r = 0; r < R; r++) {
      HCL_TRY(hcl_buf_copy(
          t->ctx,
          hcl_buf_sub(t->cache_x, fbytes((r * P + first) * t->x_size), fbytes(n * t->x_size)),
          hcl_buf_sub(t->x, fbytes(r * n * t->x_size), fbytes(n * t->x_size)),
          fbytes(n * t->x_size)));
      HCL_TRY(hcl_buf_copy(
          t->ctx, hcl_buf_sub(t->cache_y, fbytes((r * P + first) * t->y_dim), fbytes(n * t->y_dim)),
          hcl_buf_sub(t->y, fbytes(r * n * t->y_dim), fbytes(n * t->y_dim)), fbytes(n * t->y_dim)));
    }
  }
  t->cached = 1;
  return hcl_finish(t->ctx);
}

/* Floats of one input sample (the product of the target's shape), saturating. */
static size_t shape_floats(const hcl_target_info *ti) {
  size_t n = 1;
  for (uint32_t i = 0; i < ti->x.rank && i < 4; i++) n = hcl_size_mul3(n, ti->x.dims[i], 1);
  return n;
}

hcl_status hcl_trainer_preflight(hcl_ctx *ctx, const hcl_train_cfg *c, const hcl_target_info *ti,
                                 size_t n_params, size_t out_dim) {
  size_t R = c->replicas, xs = shape_floats(ti), yd = ti->y_dim ? ti->y_dim : 1;
  int eval_max = c->eval_batch > c->batch;
  size_t maxb = (size_t)(eval_max ? c->eval_batch : c->batch);
  size_t F = sizeof(float), width = hcl_size_mul3(2, out_dim, 1), rb = hcl_size_mul3(R, maxb, F);
  /* the terms of hcl_trainer_init, each with the key that sets its size */
  struct term {
    size_t bytes, largest;
    char what[320];
  } tm[3];
  size_t n_state = c->optim.kind == HCL_OPT_ADAM ? 4 : 3; /* params, grad, momentum, 2nd moment */
  tm[0].largest = hcl_size_mul3(R, n_params, F);
  tm[0].bytes = hcl_size_mul3(tm[0].largest, n_state, 1);
  snprintf(tm[0].what, sizeof tm[0].what,
           "[model] parameters: %zu per replica x [run] replicas = %zu x %zu copies (parameters, "
           "gradient, optimiser state)",
           n_params, R, n_state);
  size_t per = xs, wide = xs > out_dim ? xs : out_dim;
  hcl_size_add(per, yd, &per);
  hcl_size_add(per, width, &per);
  tm[1].bytes = hcl_size_mul3(rb, per, 1);
  tm[1].largest = hcl_size_mul3(rb, wide, 1);
  snprintf(tm[1].what, sizeof tm[1].what,
           "[%s] batch = %zu: batch buffers of [run] replicas = %zu x %zu samples x %zu floats "
           "(input %zu from the [target] shape, label %zu%s)",
           eval_max ? "eval" : "train", maxb, R, maxb, per, xs, yd,
           out_dim ? ", output and its gradient" : "");
  size_t set = hcl_size_mul3(R, (size_t)c->train_size, F);
  set = hcl_size_mul3(set, xs > SIZE_MAX - yd ? SIZE_MAX : xs + yd, 1);
  /* sets beyond the cache limit are regenerated per batch: nothing is stored */
  tm[2].bytes = set <= HCL_CACHE_MAX_BYTES ? set : 0;
  tm[2].largest =
      tm[2].bytes ? hcl_size_mul3(hcl_size_mul3(R, (size_t)c->train_size, F), xs, 1) : 0;
  snprintf(tm[2].what, sizeof tm[2].what,
           "[train] train_size = %llu: the training set of [run] replicas = %zu x %llu samples "
           "x %zu floats (the [target] shape and label)",
           (unsigned long long)c->train_size, R, (unsigned long long)c->train_size, xs + yd);
  size_t total = 0, dom = 0, big = 0, big_at = 0;
  for (size_t i = 0; i < 3; i++) {
    hcl_size_add(total, tm[i].bytes, &total);
    if (tm[i].bytes > tm[dom].bytes) dom = i;
    if (tm[i].largest > big) big = tm[i].largest, big_at = i;
  }
  /* a single buffer over the device's limit is named by its own term */
  if (ctx->dev.max_alloc && big > ctx->dev.max_alloc) dom = big_at;
  return hcl_mem_check(ctx, total, big, tm[dom].what);
}

hcl_status hcl_trainer_init(hcl_trainer *t) {
  const hcl_train_cfg *c = t->cfg;
  size_t R = c->replicas;
  t->x_size = shape_floats(&t->tinfo);
  t->y_dim = t->tinfo.y_dim ? t->tinfo.y_dim : 1;
  t->n_params = t->mvt->n_params(t->model);
  t->out_dim = t->mvt->out_dim(t->model);
  t->blocks = t->mvt->blocks(t->model, &t->n_blocks);
  size_t maxb = c->batch > c->eval_batch ? c->batch : c->eval_batch;
  /* every size below is checked here first, so a failure names its key */
  HCL_TRY(hcl_trainer_preflight(t->ctx, c, &t->tinfo, t->n_params, t->out_dim));
  HCL_TRY(alloc_f(t, &t->params, R * t->n_params));
  HCL_TRY(alloc_f(t, &t->grad, R * t->n_params));
  HCL_TRY(alloc_f(t, &t->state1, R * t->n_params));
  HCL_TRY(alloc_f(t, &t->state2, c->optim.kind == HCL_OPT_ADAM ? R * t->n_params : 1));
  HCL_TRY(alloc_f(t, &t->mask, t->n_params));
  HCL_TRY(alloc_f(t, &t->x, R * maxb * t->x_size));
  HCL_TRY(alloc_f(t, &t->y, R * maxb * t->y_dim));
  HCL_TRY(alloc_f(t, &t->out, R * maxb * t->out_dim));
  HCL_TRY(alloc_f(t, &t->dout, R * maxb * t->out_dim));
  HCL_TRY(alloc_f(t, &t->loss_acc, 2 * R));
  HCL_TRY(alloc_f(t, &t->err_acc, 2 * R));
  HCL_TRY(hcl_buf_alloc(t->ctx, sizeof(int32_t) * R, &t->nan_step));
  HCL_TRY(reset_nan_steps(t));
  t->last_train = calloc(4 * R, sizeof(double));
  if (!t->last_train) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
  t->last_test = t->last_train + R;
  t->last_err = t->last_test + R;
  t->best_test = t->last_err + R;
  for (size_t r = 0; r < R; r++) t->best_test[r] = INFINITY;
  t->diverged = malloc(R * sizeof *t->diverged);
  if (!t->diverged) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < R; r++) t->diverged[r] = -1;
  t->n_diverged = 0;
  HCL_TRY(t->mvt->init(t->model, t->params));
  if (c->lr_scales) { /* per-replica learning rates, applied by the optimiser */
    float ls[R];
    for (size_t r = 0; r < R; r++) ls[r] = (float)c->lr_scales[r];
    HCL_TRY(alloc_f(t, &t->lr_scale, R));
    HCL_TRY(hcl_buf_write(t->ctx, t->lr_scale, ls, sizeof ls));
  }
  if (c->train_size > 0) {
    size_t bytes = fbytes(R * c->train_size * (t->x_size + t->y_dim));
    if (c->train_sizes) { /* per-replica sizes: every replica's set lives in the cache */
      if (bytes > HCL_CACHE_MAX_BYTES)
        return hcl_fail(t->ctx, HCL_ERR_CONFIG,
                        "[train] train_sizes: %zu replicas x %llu samples need %zu MiB of device "
                        "memory (at most %zu); use fewer replicas per run",
                        R, (unsigned long long)c->train_size, bytes >> 20,
                        (size_t)HCL_CACHE_MAX_BYTES >> 20);
      HCL_TRY(hcl_buf_alloc(t->ctx, R * sizeof(cl_ulong), &t->sizes));
      cl_ulong sz[R];
      for (size_t r = 0; r < R; r++) sz[r] = c->train_sizes[r];
      HCL_TRY(hcl_buf_write(t->ctx, t->sizes, sz, sizeof sz));
    }
    if (bytes <= HCL_CACHE_MAX_BYTES)
      HCL_TRY(build_train_cache(t));
    else
      hcl_log(t->ctx, HCL_LOG_INFO, "training set of %zu MiB regenerated per batch (same samples)",
              bytes >> 20);
  }
  return hcl_finish(t->ctx);
}

void hcl_trainer_release(hcl_trainer *t) {
  hcl_buf *bufs[] = {&t->params,  &t->grad,    &t->state1, &t->state2,   &t->mask,    &t->x,
                     &t->y,       &t->out,     &t->dout,   &t->loss_acc, &t->err_acc, &t->nan_step,
                     &t->cache_x, &t->cache_y, &t->sizes,  &t->lr_scale};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) hcl_buf_free(t->ctx, bufs[i]);
  free(t->last_train);
  t->last_train = NULL;
  free(t->diverged);
  t->diverged = NULL;
  for (size_t i = 0; i < t->m_n; i++) free(t->m_names[i]);
  free(t->m_names);
  free(t->m_values);
  t->m_names = NULL;
  t->m_values = NULL;
  t->m_n = t->m_cap = 0;
}

hcl_status hcl_trainer_batch(hcl_trainer *t, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                             hcl_buf y) {
  if (stream == HCL_STREAM_TRAIN && t->cached) { /* t->sizes: per-replica sizes, or none */
    return hcl_gather_xy(t->ctx, t->cache_x, t->cache_y, t->cfg->train_size, t->sizes, x, y,
                         t->cfg->replicas, first, n, t->x_size, t->y_dim);
  }
  return HCL_IN_TARGET(t->ctx, t->tvt->sample(t->target, stream, first, n, x, y));
}

hcl_buf hcl_trainer_params(hcl_trainer *t) { return t->params; }

hcl_status hcl_trainer_forward(hcl_trainer *t, hcl_buf x, size_t n, hcl_buf out) {
  return t->mvt->forward(t->model, t->params, x, n, out);
}

hcl_status hcl_trainer_backward(hcl_trainer *t, hcl_buf dout, size_t n, hcl_buf grad) {
  return t->mvt->backward(t->model, t->params, dout, n, grad);
}

hcl_status hcl_trainer_features(hcl_trainer *t, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                                size_t *dim) {
  if (!t->mvt->features)
    return hcl_fail(t->ctx, HCL_ERR_UNSUPPORTED, "this model does not expose hidden features");
  return t->mvt->features(t->model, t->params, layer, x, n, out, dim);
}

int hcl_trainer_stop_requested(hcl_trainer *t) {
  return (t->stop && *t->stop) || hcl_should_stop(t->ctx);
}

/* ---- evaluation ---------------------------------------------------------- */

hcl_status hcl_trainer_metric_add(hcl_trainer *t, const char *name, const double *values) {
  size_t R = t->cfg->replicas;
  for (size_t i = 0; i < t->m_n; i++)
    if (!strcmp(t->m_names[i], name)) {
      memcpy(t->m_values + i * R, values, R * sizeof(double));
      return HCL_OK;
    }
  if (t->m_n == t->m_cap) {
    size_t cap = t->m_cap ? 2 * t->m_cap : 16;
    char **nn = realloc(t->m_names, cap * sizeof *nn);
    if (!nn) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
    t->m_names = nn;
    double *nv = realloc(t->m_values, cap * R * sizeof *nv);
    if (!nv) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
    t->m_values = nv;
    t->m_cap = cap;
  }
  t->m_names[t->m_n] = strdup(name);
  if (!t->m_names[t->m_n]) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
  memcpy(t->m_values + t->m_n * R, values, R * sizeof(double));
  t->m_n++;
  return HCL_OK;
}

/* On a terminal one line redrawn at every sync point; in a log a plain line
 * every progress_every seconds and at the end, so a long run shows it is alive. */
static void progress_line(hcl_trainer *t, int final) {
  if (!t->progress) return;
  double now = hcl_now(), el = now - t->t0, rate = el > 0 ? (double)t->step / el : 0;
  int log = t->progress == HCL_PROGRESS_LOG;
  /* a log's closing line only for a run long enough to have shown progress */
  if (log && now - (final ? t->t0 : t->progress_printed) < t->progress_every) return;
  t->progress_printed = now;
  double left = rate > 0 && t->cfg->steps > t->step ? (double)(t->cfg->steps - t->step) / rate : 0;
  fprintf(stderr, "%s  step %llu/%llu  train %.4g  test %.4g  %.0f steps/s  ETA %d:%02d",
          log ? "hiercl:" : "\r\033[K", (unsigned long long)t->step,
          (unsigned long long)t->cfg->steps, t->last_train[0], t->last_test[0], rate,
          (int)(left / 60), (int)left % 60);
  if (final || log) fputc('\n', stderr);
  fflush(stderr);
}

static hcl_status read_sums(hcl_trainer *t, hcl_buf b, double *out) {
  size_t R = t->cfg->replicas;
  float tmp[R];
  HCL_TRY(hcl_buf_read(t->ctx, b, tmp, sizeof tmp));
  for (size_t r = 0; r < R; r++) out[r] = tmp[r];
  return HCL_OK;
}

size_t hcl_trainer_first_diverged(const hcl_trainer *t) {
  size_t R = t->cfg->replicas, first = R;
  for (size_t r = 0; r < R; r++) /* the earliest step; among equals the lowest replica */
    if (t->diverged[r] >= 0 && (first == R || t->diverged[r] < t->diverged[first])) first = r;
  return first;
}

/* Notes the replicas whose training loss became non-finite; an error only
 * when every replica has (a diverged one's numbers are void: see
 * hcl_trainer.diverged). */
static hcl_status check_nan(hcl_trainer *t) {
  size_t R = t->cfg->replicas;
  int32_t s[R];
  HCL_TRY(hcl_buf_read(t->ctx, t->nan_step, s, sizeof s));
  for (size_t r = 0; r < R; r++) {
    if (s[r] < 0 || t->diverged[r] >= 0) continue;
    t->diverged[r] = s[r];
    if (++t->n_diverged < R)
      hcl_log(t->ctx, HCL_LOG_WARN,
              "replica %zu (seed %llu): training loss is not finite at step %d; its numbers are "
              "void, the other replicas go on",
              r, (unsigned long long)t->cfg->seeds[r], s[r]);
  }
  if (t->n_diverged < R) return HCL_OK;
  size_t first = hcl_trainer_first_diverged(t);
  return hcl_fail(t->ctx, HCL_ERR_NUMERIC,
                  "training loss is not finite at step %d (replica %zu, seed %llu%s); "
                  "lower [train] lr or check the data",
                  t->diverged[first], first, (unsigned long long)t->cfg->seeds[first],
                  R > 1 ? "; every replica diverged" : "");
}

/* Mean loss and error over samples 0 .. size-1 of a held-out stream (test,
 * or val). */
static hcl_status test_metrics(hcl_trainer *t, uint32_t stream, uint64_t size, double *loss,
                               double *err) {
  const hcl_train_cfg *c = t->cfg;
  size_t R = c->replicas;
  hcl_buf tl = hcl_buf_sub(t->loss_acc, fbytes(R), fbytes(R));
  hcl_buf te = hcl_buf_sub(t->err_acc, fbytes(R), fbytes(R));
  hcl_buf none = {0};
  uint64_t chunk = 0;
  for (uint64_t first = 0; first < size; first += c->eval_batch, chunk++) {
    /* a stop request ends a long evaluation; the queue is drained every few
     * chunks so that stopping does not wait for thousands of queued ones */
    if (chunk % 8 == 7) HCL_TRY(hcl_finish(t->ctx));
    if (first > 0 && hcl_trainer_stop_requested(t)) /* between chunks: one always runs */
      return hcl_fail(t->ctx, HCL_ERR_INTERRUPTED,
                      "interrupted during the evaluation at step %llu (%llu of %llu samples)",
                      (unsigned long long)t->step, (unsigned long long)first,
                      (unsigned long long)size);
    size_t n = size - first < c->eval_batch ? size - first : c->eval_batch;
    HCL_TRY(HCL_IN_TARGET(t->ctx, t->tvt->sample(t->target, stream, first, n, t->x, t->y)));
    HCL_TRY(t->mvt->forward(t->model, t->params, t->x, n, t->out));
    HCL_TRY(hcl_loss(t->ctx, c->loss, t->out, t->y, R, n, t->out_dim, 0.0f, none, tl, te, first > 0,
                     none, 0));
  }
  HCL_TRY(read_sums(t, tl, loss));
  HCL_TRY(read_sums(t, te, err));
  for (size_t r = 0; r < R; r++) {
    loss[r] /= (double)size;
    err[r] /= (double)size;
  }
  return HCL_OK;
}

hcl_status hcl_trainer_eval(hcl_trainer *t, const hcl_metric *extra, size_t n_extra) {
  const hcl_train_cfg *c = t->cfg;
  size_t R = c->replicas;
  hcl_status end_rc = check_nan(t); /* a NaN, or a stop during the probes */
  double train[R], test[R], err[R];
  HCL_TRY(read_sums(t, t->loss_acc, train));
  for (size_t r = 0; r < R; r++)
    train[r] = t->acc_steps ? train[r] / (double)(t->acc_steps * c->batch) : NAN;
  HCL_TRY(hcl_fill(t->ctx, hcl_buf_sub(t->loss_acc, 0, fbytes(R)), 0.0f, R));
  t->acc_steps = 0;
  for (size_t i = 0; i < t->m_n; i++) free(t->m_names[i]);
  t->m_n = 0;
  if (c->train_sizes) { /* which point of a sample-complexity curve each replica is */
    double sz[R];
    for (size_t r = 0; r < R; r++) sz[r] = (double)c->train_sizes[r];
    HCL_TRY(hcl_trainer_metric_add(t, "train_size", sz));
  }
  if (c->lr_scales) { /* each replica's own learning rate now */
    double lr[R];
    for (size_t r = 0; r < R; r++) lr[r] = t->lr_now * c->lr_scales[r];
    HCL_TRY(hcl_trainer_metric_add(t, "replica_lr", lr));
  }
  HCL_TRY(hcl_trainer_metric_add(t, "train_loss", train));
  if (c->test_size > 0 && end_rc == HCL_OK) {
    HCL_TRY(test_metrics(t, HCL_STREAM_TEST, c->test_size, test, err));
    HCL_TRY(hcl_trainer_metric_add(t, "test_loss", test));
    if (t->tinfo.task != HCL_TASK_REGRESSION) HCL_TRY(hcl_trainer_metric_add(t, "test_error", err));
  } else {
    for (size_t r = 0; r < R; r++) test[r] = err[r] = NAN;
  }
  if (c->train_set && end_rc == HCL_OK) {
    /* the training set is samples 0..P-1 of the train stream: the loss and
     * error at the current parameters, which train_loss (a mean over the
     * interval's steps) is not under SGD */
    double tl[R], te[R];
    HCL_TRY(test_metrics(t, HCL_STREAM_TRAIN, c->train_size, tl, te));
    HCL_TRY(hcl_trainer_metric_add(t, "train_set_loss", tl));
    if (t->tinfo.task != HCL_TASK_REGRESSION)
      HCL_TRY(hcl_trainer_metric_add(t, "train_set_error", te));
  }
  if (c->val_size > 0 && end_rc == HCL_OK) {
    double vl[R], ve[R];
    HCL_TRY(test_metrics(t, HCL_STREAM_VAL, c->val_size, vl, ve));
    HCL_TRY(hcl_trainer_metric_add(t, "val_loss", vl));
  }
  if (c->probes && end_rc == HCL_OK) {
    hcl_probe p = {t};
    hcl_status prc = t->tvt->probe ? HCL_IN_TARGET(t->ctx, t->tvt->probe(t->target, &p)) : HCL_OK;
    if (prc == HCL_OK && t->mvt->probe) prc = t->mvt->probe(t->model, &p);
    /* a stop during the probes keeps the line (test metrics, probes done) */
    if (prc == HCL_ERR_INTERRUPTED)
      end_rc = prc;
    else
      HCL_TRY(prc);
  }
  for (size_t i = 0; i < n_extra; i++)
    HCL_TRY(hcl_trainer_metric_add(t, extra[i].name, extra[i].values));
  if (t->sink.write)
    HCL_TRY(t->sink.write(t->sink.user, t->step, t->samples, t->phase_label, t->lr_now,
                          hcl_now() - t->t0, t->m_n, (const char *const *)t->m_names, t->m_values,
                          (uint32_t)R));
  for (size_t r = 0; r < R; r++) {
    t->last_train[r] = train[r];
    t->last_test[r] = test[r];
    t->last_err[r] = t->tinfo.task == HCL_TASK_REGRESSION ? test[r] : err[r];
    if (test[r] < t->best_test[r]) t->best_test[r] = test[r];
  }
  t->evals++;
  t->last_eval_step = t->step;
  progress_line(t, 0);
  return end_rc;
}

/* ---- one phase of SGD ---------------------------------------------------- */

static hcl_status upload_mask(hcl_trainer *t, const hcl_phase *ph, int *masked) {
  float *m = malloc(fbytes(t->n_params));
  if (!m) return hcl_fail(t->ctx, HCL_ERR_NOMEM, "out of host memory");
  int any_frozen = 0;
  for (size_t i = 0; i < t->n_params; i++) m[i] = 0.0f;
  for (size_t b = 0; b < t->n_blocks; b++) {
    const hcl_block *bl = &t->blocks[b];
    int on =
        bl->trainable && (!ph->group_mask || (bl->group < 64 && (ph->group_mask >> bl->group) & 1));
    int rowsel = ph->row_block && !strcmp(ph->row_block, bl->name);
    for (size_t i = 0; i < bl->rows * bl->cols; i++) {
      int e = on && (!rowsel || i / bl->cols == ph->row);
      m[bl->offset + i] = e ? 1.0f : 0.0f;
    }
  }
  for (size_t i = 0; i < t->n_params; i++) any_frozen |= m[i] == 0.0f;
  hcl_status rc = any_frozen ? hcl_buf_write(t->ctx, t->mask, m, fbytes(t->n_params)) : HCL_OK;
  free(m);
  *masked = any_frozen;
  return rc;
}

static hcl_status sync_point(hcl_trainer *t) {
  HCL_TRY(hcl_finish(t->ctx));
  progress_line(t, 0);
  return check_nan(t);
}

/* Every replica still training is below thr (a diverged one never will be). */
static int below_all(const hcl_trainer *t, const double *v, size_t R, double thr) {
  for (size_t r = 0; r < R; r++)
    if (t->diverged[r] < 0 && !(v[r] < thr)) return 0;
  return 1;
}

/* The model's factor on the SGD learning rate (hcl_model_vt.lr_scale), 1
 * when it has none or gives no positive number. */
static double model_lr_scale(const hcl_trainer *t) {
  const hcl_model_vt *v = t->mvt;
  if (v->struct_size < offsetof(hcl_model_vt, lr_scale) + sizeof v->lr_scale || !v->lr_scale)
    return 1.0;
  double f = v->lr_scale(t->model);
  return f > 0 && isfinite(f) ? f : 1.0;
}

/* Training steps one launch may run (HIERCL_STEPS_PER_LAUNCH, 1 to
 * HCL_STEPS_MAX; default HCL_STEPS_MAX). */
static uint64_t steps_per_launch(void) {
  const char *e = hcl_getenv("HIERCL_STEPS_PER_LAUNCH");
  long v = e && *e ? strtol(e, NULL, 10) : HCL_STEPS_MAX;
  return v < 1 ? 1 : v > HCL_STEPS_MAX ? HCL_STEPS_MAX : (uint64_t)v;
}

/* Steps i .. i + k - 1 of the phase that one launch may run (k <= most):
 * none but the last may be followed by an evaluation or a sync point (which
 * read what the step wrote), or be the phase's last. */
static uint64_t chunk_len(const hcl_trainer *t, const hcl_phase *ph, uint64_t i, uint64_t most) {
  const hcl_train_cfg *c = t->cfg;
  uint64_t k = 1;
  while (k < most && i + k < ph->steps) {
    uint64_t after = t->step + k; /* the step count once step i + k - 1 ran */
    if (hcl_eval_due(c->eval_every, c->eval_log, c->steps, after) || after % HCL_SYNC_EVERY == 0)
      break;
    k++;
  }
  return k;
}

/* Record *r of step s, whose launches gs, ls, os were prepared like the
 * first step's g, l, o: 1 when the first step's arguments with *r applied
 * are exactly step s's (then one launch computes both with the same bits). */
static int step_record(const hcl_gather_launch *g, const hcl_loss_launch *l,
                       const hcl_optim_launch *o, const hcl_gather_launch *gs,
                       const hcl_loss_launch *ls, const hcl_optim_launch *os, hcl_step_rec *r) {
  *r = (hcl_step_rec){.step = ls->p.step,
                      .first = os->p.first,
                      .lr = os->p.lr,
                      .step_scale = os->p.step_scale,
                      .inv_sqrt_bc2 = os->p.inv_sqrt_bc2,
                      .f0 = gs->p.f0};
  hcl_gather_p gp = g->p;
  hcl_loss_p lp = l->p;
  hcl_optim_p op = o->p;
  hcl_step_apply(r, &gp, &lp, &op);
  return !memcmp(&gp, &gs->p, sizeof gp) && !memcmp(&lp, &ls->p, sizeof lp) &&
         !memcmp(&op, &os->p, sizeof op) && g->sx == gs->sx && o->plain == os->plain;
}

hcl_status hcl_trainer_phase(hcl_trainer *t, const hcl_phase *ph, double *final_loss) {
  const hcl_train_cfg *c = t->cfg;
  size_t R = c->replicas, B = c->batch;
  int masked = 0;
  HCL_TRY(upload_mask(t, ph, &masked));
  HCL_TRY(hcl_fill(t->ctx, t->state1, 0.0f, R * t->n_params));
  if (c->optim.kind == HCL_OPT_ADAM) HCL_TRY(hcl_fill(t->ctx, t->state2, 0.0f, R * t->n_params));
  hcl_buf none = {0}, mask = masked ? t->mask : none;
  double scale = ph->lr_scale > 0 ? ph->lr_scale : 1.0;
  /* The model's factor f acts as a factor on the gradient would (which is
   * how models applied it before): SGD steps lr (f grad + wd w), so lr f with
   * weight decay and l2 divided by f; Adam, invariant to the gradient's scale
   * but for eps, keeps lr and takes eps / f. */
  hcl_optim opt = c->optim;
  double f = model_lr_scale(t), lr_f = f;
  opt.weight_decay = (float)(c->optim.weight_decay / f);
  float l2 = (float)(ph->l2 / f);
  if (opt.kind == HCL_OPT_ADAM) opt.eps = (float)(c->optim.eps / f), lr_f = 1.0;
  snprintf(t->label_buf, sizeof t->label_buf, "%s", ph->label ? ph->label : "sgd");
  t->phase_label = t->label_buf;
  double best = INFINITY;
  uint64_t best_at = 0;
  uint64_t most = steps_per_launch();
  int fused = 1; /* the last step ran as one launch (else prepare one step at a time) */
  for (uint64_t i = 0; i < ph->steps;) {
    if (hcl_trainer_stop_requested(t))
      return hcl_fail(t->ctx, HCL_ERR_INTERRUPTED, "interrupted at step %llu",
                      (unsigned long long)t->step);
    /* Steps i .. i + k - 1 in one launch where the model's training step is
     * one kernel and the batch is copied inside it: every step's gather,
     * loss and optimiser prepared as for its own launch, and kept only while
     * they differ from the first step's in the record's fields alone. */
    uint64_t k = t->cached && fused ? chunk_len(t, ph, i, most) : 1;
    hcl_gather_launch G = {0}; /* the batch: copied inside the step's launch where it can */
    hcl_loss_launch L;
    hcl_optim_launch O;
    hcl_steps_launch S = {.p.k = 0};
    double lr[HCL_STEPS_MAX]; /* each step's rate, for t->lr_now */
    for (uint64_t s = 0; s < k; s++) {
      hcl_gather_launch Gs = {0};
      hcl_loss_launch Ls;
      hcl_optim_launch Os;
      lr[s] = hcl_schedule_lr(&c->sched, t->step + s) * scale;
      if (t->cached)
        HCL_TRY(hcl_gather_prepare(t->ctx, t->cache_x, t->cache_y, c->train_size, t->sizes, t->x,
                                   t->y, R, t->samples + s * B, B, t->x_size, t->y_dim, &Gs));
      HCL_TRY(hcl_loss_prepare(t->ctx, c->loss, t->out, t->y, R, B, t->out_dim, 1.0f / (float)B,
                               t->dout, hcl_buf_sub(t->loss_acc, 0, fbytes(R)), none, 1,
                               t->nan_step, (int32_t)(t->step + s), &Ls));
      HCL_TRY(hcl_optim_prepare(t->ctx, &opt, (float)(lr[s] * lr_f), t->lr_scale, l2, t->params,
                                t->grad, t->state1, t->state2, mask, R, t->n_params, i + s + 1,
                                &Os));
      if (s == 0) G = Gs, L = Ls, O = Os;
      if (!step_record(&G, &L, &O, &Gs, &Ls, &Os, &S.p.s[s])) break;
      S.p.k = s + 1;
      if (!G.sx) break; /* the batch is made apart: one step, no more to prepare */
    }
    if (!G.sx) HCL_TRY(hcl_trainer_batch(t, HCL_STREAM_TRAIN, t->samples, B, t->x, t->y));
    hcl_status rc;
    fused = hcl_graph_model_step(t->mvt, t->model, t->params, t->x, B, t->out, t->dout, t->grad,
                                 G.sx ? &G : NULL, &L, &O, &S, &rc);
    if (fused) { /* the same bits in one launch */
      HCL_TRY(rc);
    } else {
      S.p.k = 1;
      HCL_TRY(hcl_gather_run(t->ctx, &G));
      HCL_TRY(t->mvt->forward(t->model, t->params, t->x, B, t->out));
      HCL_TRY(hcl_loss_run(t->ctx, &L));
      HCL_TRY(t->mvt->backward(t->model, t->params, t->dout, B, t->grad));
      HCL_TRY(hcl_optim_run(t->ctx, &O));
    }
    k = S.p.k;
    t->lr_now = lr[k - 1];
    t->step += k;
    t->samples += k * B;
    t->acc_steps += k;
    i += k - 1; /* i: the launch's last step, as below */
    int last = i + 1 == ph->steps;
    if (hcl_eval_due(c->eval_every, c->eval_log, c->steps, t->step)) {
      HCL_TRY(hcl_trainer_eval(t, NULL, 0));
      if (c->stop_loss > 0 && below_all(t, t->last_train, R, c->stop_loss)) break;
      if (c->stop_error > 0 && below_all(t, t->last_err, R, c->stop_error)) break;
    } else if (t->step % HCL_SYNC_EVERY == 0 || last) {
      HCL_TRY(sync_point(t));
    }
    if ((ph->stop_loss > 0 || ph->patience > 0) && (t->step % HCL_SYNC_EVERY == 0 || last)) {
      double l[R];
      HCL_TRY(read_sums(t, hcl_buf_sub(t->loss_acc, 0, fbytes(R)), l));
      double worst = 0;
      for (size_t r = 0; r < R; r++) {
        double m = t->acc_steps ? l[r] / (double)(t->acc_steps * B) : t->last_train[r];
        if (m > worst) worst = m;
      }
      if (ph->stop_loss > 0 && worst < ph->stop_loss) break;
      if (worst < best) {
        best = worst;
        best_at = i;
      } else if (ph->patience > 0 && i - best_at >= ph->patience) {
        break;
      }
    }
    i++;
  }
  if (final_loss)
    for (size_t r = 0; r < R; r++) final_loss[r] = t->last_train[r];
  return HCL_OK;
}

hcl_status hcl_trainer_run(hcl_trainer *t) {
  const hcl_train_cfg *c = t->cfg;
  t->t0 = hcl_now();
  t->cpu0 = hcl_cpu_now();
  t->progress_printed = t->t0;
  t->phase_label = "init";
  t->last_eval_step = UINT64_MAX;
  t->lr_now = hcl_schedule_lr(&c->sched, 0);
  /* the prepare hook is read only when the plugin's vtable is that large */
  if (t->mvt->struct_size >= offsetof(hcl_model_vt, prepare) + sizeof t->mvt->prepare &&
      t->mvt->prepare)
    HCL_TRY(t->mvt->prepare(t->model, t));
  HCL_TRY(hcl_trainer_eval(t, NULL, 0));
  const char *alg = c->algorithm && *c->algorithm ? c->algorithm : "sgd";
  int custom = 0;
  if (t->mvt->algorithms)
    for (const char *const *a = t->mvt->algorithms; *a; a++) custom |= !strcmp(*a, alg);
  hcl_status rc;
  uint64_t evals_before = t->evals;
  if (custom && t->mvt->train) {
    rc = t->mvt->train(t->model, alg, t);
  } else if (!strcmp(alg, "sgd")) {
    hcl_phase ph = {.struct_size = sizeof ph, .label = "sgd", .steps = c->steps};
    rc = hcl_trainer_phase(t, &ph, NULL);
  } else {
    char known[512] = "sgd";
    if (t->mvt->algorithms)
      for (const char *const *a = t->mvt->algorithms; *a; a++) {
        strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, *a, sizeof known - strlen(known) - 1);
      }
    return hcl_fail(t->ctx, HCL_ERR_CONFIG,
                    "[train] algorithm '%s' is not offered by this model (known: %s)", alg, known);
  }
  if (rc != HCL_OK) {
    progress_line(t, 1);
    return rc;
  }
  /* a closing evaluation unless the last step was evaluated (a closed-form
   * algorithm changes the parameters without steps: it must have evaluated) */
  if (t->last_eval_step != t->step || (custom && t->evals == evals_before))
    HCL_TRY(hcl_trainer_eval(t, NULL, 0));
  progress_line(t, 1);
  return HCL_OK;
}

/* ---- services for custom algorithms -------------------------------------- */

hcl_status hcl_trainer_loss_grad(hcl_trainer *t, hcl_buf out, hcl_buf y, size_t n, float scale,
                                 hcl_buf dout, double *loss) {
  size_t R = t->cfg->replicas;
  hcl_buf acc = hcl_buf_sub(t->err_acc, 0, fbytes(R)), none = {0};
  HCL_TRY(
      hcl_loss(t->ctx, t->cfg->loss, out, y, R, n, t->out_dim, scale, dout, acc, none, 0, none, 0));
  if (!loss) return HCL_OK;
  HCL_TRY(read_sums(t, acc, loss));
  for (size_t r = 0; r < R; r++) loss[r] /= (double)n;
  return HCL_OK;
}

uint64_t hcl_trainer_steps(hcl_trainer *t) { return t->cfg->steps; }
double hcl_trainer_lr(hcl_trainer *t) { return t->cfg->sched.lr; }
size_t hcl_trainer_batch_size(hcl_trainer *t) { return t->cfg->batch; }
uint64_t hcl_trainer_train_size(hcl_trainer *t) { return t->cfg->train_size; }

const char *hcl_trainer_loss_name(hcl_trainer *t) { return hcl_loss_name(t->cfg->loss); }

void hcl_trainer_label(hcl_trainer *t, const char *label) {
  snprintf(t->label_buf, sizeof t->label_buf, "%s", label ? label : "");
  t->phase_label = t->label_buf;
}
