/* hcl_run: one experiment from a config file, end to end. */
#include "gradcheck.h"
#include "output.h"
#include "schema.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct run_state {
  hcl_config cfg;
  hcl_params run, runtime, train, eval, target_p, model_p;
  hcl_ctx *ctx;
  int shared_ctx;           /* ctx belongs to the session: kept for its next run */
  hcl_registry reg;         /* the run's own (no session) */
  const hcl_registry *regp; /* the registry in use: &reg or the session's */
  const hcl_plugin *tpl, *mpl;
  void *target, *model;
  uint64_t *seeds, *train_sizes;
  double *lr_scales;
  hcl_train_cfg tc;
  hcl_trainer t;
  hcl_run_out out;
} run_state;

static const char *const plugin_key[] = {"plugin", NULL};

static hcl_status err_out(hcl_status rc, const hcl_ctx *ctx, char *err, size_t errlen) {
  snprintf(err, errlen, "%s", hcl_errmsg(ctx));
  return rc;
}

/* Load, override and check the core sections (no device needed). */
static hcl_status load_config(run_state *s, const hcl_run_options *opt) {
  HCL_TRY(hcl_config_load(NULL, opt->config_path, &s->cfg));
  for (size_t i = 0; i < opt->n_sets; i++) HCL_TRY(hcl_config_set(NULL, &s->cfg, opt->sets[i]));
  HCL_TRY(hcl_config_check_sections(NULL, &s->cfg, hcl_config_sections));
  HCL_TRY(hcl_params_resolve(NULL, &s->cfg, "run", hcl_schema_run, NULL, &s->run));
  HCL_TRY(hcl_params_resolve(NULL, &s->cfg, "runtime", hcl_schema_runtime, NULL, &s->runtime));
  HCL_TRY(hcl_params_resolve(NULL, &s->cfg, "train", hcl_schema_train, NULL, &s->train));
  HCL_TRY(hcl_params_resolve(NULL, &s->cfg, "eval", hcl_schema_eval, NULL, &s->eval));
  return HCL_OK;
}

static hcl_status find_plugin(run_state *s, const char *section, uint32_t kind,
                              const hcl_plugin **out, hcl_params *params) {
  const char *name = hcl_config_get(&s->cfg, section, "plugin");
  if (!name || !*name)
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "%s: [%s] plugin is required (see `hiercl plugins`)",
                    s->cfg.path, section);
  *out = hcl_registry_find(s->regp, name, kind);
  if (!*out) {
    char known[1024] = "";
    for (size_t i = 0; i < s->regp->n; i++)
      if (s->regp->plugins[i].desc->kind == kind) {
        if (*known) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, s->regp->plugins[i].desc->name, sizeof known - strlen(known) - 1);
      }
    /* a file of that name that did not load says why */
    char file[300];
    snprintf(file, sizeof file, "/%s.so: ", name);
    const char *why = NULL;
    for (size_t i = 0; i < s->regp->n_rejected && !why; i++)
      if (strstr(s->regp->rejected[i], file)) why = s->regp->rejected[i];
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "%s: [%s] plugin '%s' not found (available: %s)%s%s",
                    s->cfg.path, section, name, *known ? known : "none; check --plugin-path",
                    why ? "; rejected: " : "", why ? why : "");
  }
  /* runs before the device is open: the message stays in the thread's buffer */
  return hcl_params_resolve(NULL, &s->cfg, section, (*out)->desc->params, plugin_key, params);
}

/* A LIST key of a resolved section, read whole into *out (malloc'd; NULL
 * when empty). At most HCL_MAX_REPLICAS values: one per replica. */
static hcl_status read_list(run_state *s, const hcl_params *p, const char *key, double **out,
                            size_t *n) {
  *out = NULL;
  *n = hcl_param_list(p, key, NULL, 0);
  if (*n > HCL_MAX_REPLICAS) {
    char at[1200];
    hcl_config_where(&s->cfg, p->section, key, at, sizeof at);
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [%s] %s has %zu values; at most %d (one per replica, and a run has at "
                    "most %d replicas)",
                    at, p->section, key, *n, HCL_MAX_REPLICAS, HCL_MAX_REPLICAS);
  }
  if (!*n) return HCL_OK;
  *out = malloc(*n * sizeof **out);
  if (!*out) return hcl_fail(s->ctx, HCL_ERR_NOMEM, "out of host memory");
  if (hcl_param_list(p, key, *out, *n) != *n) {
    free(*out);
    *out = NULL;
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "[%s] %s: the list changed while read", p->section,
                    key);
  }
  return HCL_OK;
}

static hcl_status make_seeds(run_state *s) {
  double *list;
  size_t n;
  HCL_TRY(read_list(s, &s->run, "seeds", &list, &n));
  /* [run] replicas is range-checked by the schema (1..HCL_MAX_REPLICAS) */
  uint32_t R = n ? (uint32_t)n : (uint32_t)hcl_param_int(&s->run, "replicas");
  s->seeds = calloc(R, sizeof *s->seeds);
  if (!s->seeds) {
    free(list);
    return hcl_fail(s->ctx, HCL_ERR_NOMEM, "out of host memory");
  }
  uint64_t base = (uint64_t)hcl_param_int(&s->run, "seed");
  for (uint32_t r = 0; r < R; r++) {
    if (n && list[r] != (double)(uint64_t)list[r]) { /* 1.5 ran as seed 1 */
      char at[1200];
      hcl_config_where(&s->cfg, "run", "seeds", at, sizeof at);
      hcl_status rc =
          hcl_fail(s->ctx, HCL_ERR_CONFIG,
                   "%s: [run] seeds element %u (%.15g) is not a whole number", at, r + 1, list[r]);
      free(list);
      return rc;
    }
    s->seeds[r] = n ? (uint64_t)list[r] : base + r;
  }
  free(list);
  s->tc.replicas = R;
  s->tc.seeds = s->seeds;
  return HCL_OK;
}

/* The model must offer [train] algorithm: checked from its declared list,
 * before a device is opened or a run directory made. */
static hcl_status check_algorithm(run_state *s) {
  const char *alg = hcl_param_str(&s->train, "algorithm");
  if (!alg || !*alg || !strcmp(alg, "sgd") || !s->mpl) return HCL_OK;
  const hcl_model_vt *mvt = s->mpl->desc->vt;
  char known[512] = "sgd";
  for (const char *const *a = mvt ? mvt->algorithms : NULL; a && *a; a++) {
    if (!strcmp(*a, alg) && mvt->train) return HCL_OK;
    strncat(known, ", ", sizeof known - strlen(known) - 1);
    strncat(known, *a, sizeof known - strlen(known) - 1);
  }
  char at[1200];
  hcl_config_where(&s->cfg, "train", "algorithm", at, sizeof at);
  return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                  "%s: [train] algorithm = '%s': model '%s' does not offer it (known: %s)", at, alg,
                  s->mpl->desc->name, known);
}

/* [train] train_sizes: one training-set size per replica (whole numbers). */
static hcl_status train_lists(run_state *s, const double *sizes, size_t ns, int full_batch) {
  hcl_train_cfg *c = &s->tc;
  if (!ns) return HCL_OK;
  if (ns != c->replicas)
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [train] train_sizes has %zu values for %u replicas (one per replica; "
                    "set [run] seeds or replicas to match)",
                    s->cfg.path, ns, c->replicas);
  if (full_batch)
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [train] batch = 0 (full batch) cannot be combined with train_sizes "
                    "(the batch would differ per replica)",
                    s->cfg.path);
  if (strcmp(c->algorithm, "sgd"))
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [train] train_sizes works with algorithm = sgd only (algorithm %s reads "
                    "one training-set size); run the sizes one by one",
                    s->cfg.path, c->algorithm);
  for (size_t r = 0; r < ns; r++)
    if (sizes[r] != (double)(uint64_t)sizes[r]) {
      char at[1200];
      hcl_config_where(&s->cfg, "train", "train_sizes", at, sizeof at);
      return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                      "%s: [train] train_sizes element %zu (%.15g) is not a whole number", at,
                      r + 1, sizes[r]);
    }
  s->train_sizes = calloc(ns, sizeof *s->train_sizes);
  if (!s->train_sizes) return hcl_fail(s->ctx, HCL_ERR_NOMEM, "out of host memory");
  c->train_size = 0;
  for (size_t r = 0; r < ns; r++) {
    s->train_sizes[r] = (uint64_t)sizes[r];
    if (s->train_sizes[r] > c->train_size) c->train_size = s->train_sizes[r];
  }
  c->train_sizes = s->train_sizes;
  return HCL_OK;
}

/* [train] lrs: one learning rate per replica, as scales of [train] lr. */
static hcl_status train_lrs(run_state *s, const double *lrs, size_t nl) {
  hcl_train_cfg *c = &s->tc;
  if (!nl) return HCL_OK;
  if (nl != c->replicas)
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [train] lrs has %zu values for %u replicas (one per replica)", s->cfg.path,
                    nl, c->replicas);
  if (!(c->sched.lr > 0))
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [train] lrs needs lr > 0 (each replica's rate is lrs[r]; the "
                    "schedule is taken relative to lr)",
                    s->cfg.path);
  s->lr_scales = calloc(nl, sizeof *s->lr_scales);
  if (!s->lr_scales) return hcl_fail(s->ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < nl; r++) s->lr_scales[r] = lrs[r] / c->sched.lr;
  c->lr_scales = s->lr_scales;
  return HCL_OK;
}

static hcl_status train_config(run_state *s) {
  hcl_train_cfg *c = &s->tc;
  const hcl_params *tr = &s->train, *ev = &s->eval;
  c->steps = (uint64_t)hcl_param_int(tr, "steps");
  c->batch = (uint64_t)hcl_param_int(tr, "batch");
  c->train_size = (uint64_t)hcl_param_int(tr, "train_size");
  int full_batch = !c->batch;
  if (!c->batch) {
    if (!c->train_size)
      return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                      "%s: [train] batch = 0 (full batch) needs a training set: set train_size > 0",
                      s->cfg.path);
    c->batch = c->train_size;
  }
  c->algorithm = hcl_param_str(tr, "algorithm");
  c->stop_loss = hcl_param_double(tr, "stop_loss");
  c->stop_error = hcl_param_double(tr, "stop_error");
  hcl_schedule *sc = &c->sched;
  const char *kind = hcl_param_str(tr, "schedule");
  sc->kind = !strcmp(kind, "step")        ? HCL_SCHED_STEP
             : !strcmp(kind, "piecewise") ? HCL_SCHED_PIECEWISE
             : !strcmp(kind, "cosine")    ? HCL_SCHED_COSINE
                                          : HCL_SCHED_CONSTANT;
  sc->lr = hcl_param_double(tr, "lr");
  sc->every = (uint64_t)hcl_param_int(tr, "lr_every");
  sc->factor = hcl_param_double(tr, "lr_factor");
  size_t max_factors = sizeof sc->factors / sizeof sc->factors[0];
  sc->n_factors = hcl_param_list(tr, "lr_factors", sc->factors, max_factors);
  if (sc->n_factors > max_factors) {
    char at[1200];
    hcl_config_where(&s->cfg, "train", "lr_factors", at, sizeof at);
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "%s: [train] lr_factors has %zu values; at most %zu",
                    at, sc->n_factors, max_factors);
  }
  sc->lr_min = hcl_param_double(tr, "lr_min");
  sc->total = c->steps;
  if ((sc->kind == HCL_SCHED_STEP || sc->kind == HCL_SCHED_PIECEWISE) && !sc->every)
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "%s: [train] schedule = %s needs lr_every > 0",
                    s->cfg.path, kind);
  if (sc->kind == HCL_SCHED_PIECEWISE && !sc->n_factors)
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "%s: [train] schedule = piecewise needs lr_factors",
                    s->cfg.path);
  const char *opt = hcl_param_str(tr, "optimizer");
  c->optim.kind = !strcmp(opt, "adam") ? HCL_OPT_ADAM : HCL_OPT_SGD;
  c->optim.momentum = (float)hcl_param_double(tr, "momentum");
  c->optim.nesterov = hcl_param_bool(tr, "nesterov");
  c->optim.weight_decay = (float)hcl_param_double(tr, "weight_decay");
  c->optim.beta1 = (float)hcl_param_double(tr, "beta1");
  c->optim.beta2 = (float)hcl_param_double(tr, "beta2");
  c->optim.eps = (float)hcl_param_double(tr, "eps");
  const char *every = hcl_param_str(ev, "every");
  if (hcl_eval_every_parse(every, &c->eval_every, &c->eval_log))
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [eval] every = '%s': expected a step count (0 to 1e15) or log:N "
                    "(N from 2 to 1000000 evaluations spaced in log(step))",
                    s->cfg.path, every);
  c->test_size = (uint64_t)hcl_param_int(ev, "test_size");
  c->val_size = (uint64_t)hcl_param_int(ev, "val_size");
  c->probes = hcl_param_bool(ev, "probes");
  c->train_set = hcl_param_bool(ev, "train_set");
  c->eval_batch = (uint64_t)hcl_param_int(ev, "batch");
  HCL_TRY(make_seeds(s));
  double *sizes;
  size_t ns;
  HCL_TRY(read_list(s, tr, "train_sizes", &sizes, &ns));
  hcl_status rc = train_lists(s, sizes, ns, full_batch);
  free(sizes);
  if (rc != HCL_OK) return rc;
  if (c->train_set && (!c->train_size || c->train_sizes))
    return hcl_fail(s->ctx, HCL_ERR_CONFIG,
                    "%s: [eval] train_set = true needs one finite training set: [train] "
                    "train_size > 0 and no train_sizes",
                    s->cfg.path);
  double *lrs;
  size_t nl;
  HCL_TRY(read_list(s, tr, "lrs", &lrs, &nl));
  rc = train_lrs(s, lrs, nl);
  free(lrs);
  if (rc != HCL_OK) return rc;
  HCL_TRY(check_algorithm(s));
  if (!c->eval_batch) {
    /* few, large evaluation chunks (launches cost more than arithmetic at
     * these sizes), bounded so that R x chunk activations stay modest */
    uint64_t budget = 32768 / c->replicas;
    c->eval_batch = budget > 256 ? budget : 256;
    if (c->test_size && c->eval_batch > c->test_size) c->eval_batch = c->test_size;
    if (c->eval_batch < c->batch) c->eval_batch = c->batch;
  }
  return HCL_OK;
}

static hcl_status pick_loss(run_state *s) {
  const char *l = hcl_param_str(&s->train, "loss");
  hcl_task task = s->t.tinfo.task;
  if (!strcmp(l, "auto"))
    l = task == HCL_TASK_CLASSES ? "cross_entropy" : task == HCL_TASK_BINARY ? "logistic" : "mse";
  s->tc.loss = !strcmp(l, "cross_entropy") ? HCL_LOSS_CROSS_ENTROPY
               : !strcmp(l, "logistic")    ? HCL_LOSS_LOGISTIC
               : !strcmp(l, "hinge")       ? HCL_LOSS_HINGE
                                           : HCL_LOSS_MSE;
  if ((s->tc.loss == HCL_LOSS_CROSS_ENTROPY) != (task == HCL_TASK_CLASSES))
    return hcl_fail(s->ctx, HCL_ERR_CONFIG, "%s: [train] loss = %s does not fit a %s target",
                    s->cfg.path, l,
                    task == HCL_TASK_CLASSES  ? "classification"
                    : task == HCL_TASK_BINARY ? "+-1"
                                              : "regression");
  hcl_note_add(s->ctx, "loss", l, 0);
  return HCL_OK;
}

/* What the run knows before a device, for the plugins' check(). */
static hcl_check_info check_info(const run_state *s) {
  const hcl_train_cfg *c = &s->tc;
  hcl_check_info run = {.struct_size = sizeof run,
                        .replicas = c->replicas,
                        .train_size = c->train_size,
                        .train_size_min = c->train_size,
                        .test_size = c->test_size,
                        .val_size = c->val_size,
                        .batch = c->batch,
                        .eval_batch = c->eval_batch,
                        .steps = c->steps,
                        .algorithm = c->algorithm,
                        .loss = hcl_param_str(&s->train, "loss")};
  for (uint32_t r = 0; c->train_sizes && r < c->replicas; r++)
    if (c->train_sizes[r] < run.train_size_min) run.train_size_min = c->train_sizes[r];
  return run;
}

/* The target's device-free check (hcl_target_vt.check), when it has one;
 * info->struct_size is 0 unless the check filled it. */
static hcl_status check_target(run_state *s, const hcl_check_info *run, hcl_target_info *info) {
  const hcl_target_vt *tvt = s->tpl->desc->vt;
  char msg[HCL_ERRMSG_MAX - 256] = "";
  memset(info, 0, sizeof *info);
  if (tvt->struct_size < offsetof(hcl_target_vt, check) + sizeof tvt->check || !tvt->check)
    return HCL_OK;
  info->struct_size = sizeof *info;
  hcl_status rc = tvt->check(&s->target_p, run, info, msg, sizeof msg);
  if (rc == HCL_OK) return HCL_OK;
  info->struct_size = 0;
  return hcl_fail(NULL, rc, "%s: [target] %s: %s", s->cfg.path, s->tpl->desc->name,
                  *msg ? hcl_plugin_msg(msg, s->tpl->desc->name) : "invalid parameters");
}

/* The plugins' device-free checks (hcl_target_vt.check, hcl_model_vt.check)
 * and the loss against the target's task: every parameter error a plugin
 * can find without a device comes before the device opens or a run
 * directory is made (and in a sweep's dry-run pass). */
static hcl_status plugin_checks(run_state *s) {
  const hcl_model_vt *mvt = s->mpl->desc->vt;
  hcl_check_info run = check_info(s);
  hcl_target_info info;
  HCL_TRY(check_target(s, &run, &info));
  if (info.struct_size < offsetof(hcl_target_info, n_classes) + sizeof info.n_classes)
    return HCL_OK; /* the model's check needs the target's shape */
  const char *l = run.loss;
  int ce = !strcmp(l, "cross_entropy"), classes = info.task == HCL_TASK_CLASSES;
  if (strcmp(l, "auto") && ce != classes)
    return hcl_fail(NULL, HCL_ERR_CONFIG, "%s: [train] loss = %s does not fit a %s target",
                    s->cfg.path, l,
                    classes                        ? "classification"
                    : info.task == HCL_TASK_BINARY ? "+-1"
                                                   : "regression");
  if (mvt->struct_size < offsetof(hcl_model_vt, check) + sizeof mvt->check || !mvt->check)
    return HCL_OK;
  char msg[HCL_ERRMSG_MAX - 256] = "";
  hcl_status rc = mvt->check(&s->model_p, &run, &info, msg, sizeof msg);
  if (rc != HCL_OK)
    return hcl_fail(NULL, rc, "%s: [model] %s: %s", s->cfg.path, s->mpl->desc->name,
                    *msg ? hcl_plugin_msg(msg, s->mpl->desc->name) : "invalid parameters");
  return HCL_OK;
}

static hcl_status open_device(run_state *s, const hcl_run_options *opt, int quiet, char *err,
                              size_t errlen) {
  /* where the selector came from, so a bad one is traced to its source */
  char from[1300] = "";
  const char *sel = opt->device;
  if (!sel || !*sel) {
    sel = getenv("HIERCL_DEVICE");
    if (sel && *sel) snprintf(from, sizeof from, "HIERCL_DEVICE='%s' (from the environment)", sel);
  }
  if (!sel || !*sel) {
    sel = hcl_param_str(&s->runtime, "device");
    if (*sel) {
      char at[1200];
      hcl_config_where(&s->cfg, "runtime", "device", at, sizeof at);
      snprintf(from, sizeof from, "%s: [runtime] device = '%s'", at, sel);
    }
  }
  const char *cache = hcl_param_str(&s->runtime, "kernel_cache");
  const char *bin = hcl_param_str(&s->runtime, "binary_dir");
  hcl_ctx_options o = {.device = sel,
                       .profiling = hcl_param_bool(&s->runtime, "profile"),
                       .cache_policy = !strcmp(cache, "on")    ? HCL_CACHE_ON
                                       : !strcmp(cache, "off") ? HCL_CACHE_OFF
                                                               : HCL_CACHE_AUTO,
                       .binary_dir = *bin ? bin : NULL,
                       .quiet = quiet};
  int created = 1;
  hcl_status rc = opt->session ? hcl_session_ctx(opt->session, &o, &s->ctx, &created, err, errlen)
                               : hcl_ctx_create(&o, &s->ctx, err, errlen);
  s->shared_ctx = opt->session && rc == HCL_OK;
  if (rc == HCL_ERR_NODEVICE && *from && errlen) {
    char *why = strdup(err);
    if (why) snprintf(err, errlen, "%s: %s", from, why);
    free(why);
  }
  return rc;
}

/* Prefix the plugin's own message with the file, section and plugin name. */
static hcl_status plugin_fail(run_state *s, hcl_status rc, const char *section, const char *name) {
  char msg[HCL_ERRMSG_MAX - 256];
  /* host->fail already named the plugin: keep its own words only */
  const char *own = s->ctx->errmsg_plugin ? s->ctx->errmsg + s->ctx->errmsg_body : s->ctx->errmsg;
  /* the message may be long: cut it */
  snprintf(msg, sizeof msg, "%s", hcl_plugin_msg(own, name));
  if (rc == HCL_ERR_NOMEM) /* plugin buffers grow with these keys too */
    return hcl_fail(s->ctx, rc,
                    "%s: [%s] %s: %s (sizes grow with [run] replicas = %u and the largest batch, "
                    "[train] batch = %llu / [eval] batch = %llu)",
                    s->cfg.path, section, name, msg, s->tc.replicas,
                    (unsigned long long)s->tc.batch, (unsigned long long)s->tc.eval_batch);
  return hcl_fail(s->ctx, rc, "%s: [%s] %s: %s", s->cfg.path, section, name, msg);
}

static hcl_status create_plugins(run_state *s) {
  hcl_setup setup = {.struct_size = sizeof setup,
                     .replicas = s->tc.replicas,
                     .seeds = s->seeds,
                     .params = &s->target_p,
                     .train_size = s->tc.train_size,
                     .test_size = s->tc.test_size,
                     .max_batch = s->tc.batch > s->tc.eval_batch ? s->tc.batch : s->tc.eval_batch,
                     .val_size = s->tc.val_size};
  const hcl_target_vt *tvt = s->tpl->desc->vt;
  const hcl_model_vt *mvt = s->mpl->desc->vt;
  s->ctx->plugin_file = s->cfg.path;
  s->ctx->plugin_target = s->tpl->desc->name;
  s->ctx->plugin_model = s->mpl->desc->name;
  hcl_status rc = HCL_IN_TARGET(s->ctx, tvt->create(s->ctx, &setup, &s->target));
  if (rc != HCL_OK) return plugin_fail(s, rc, "target", s->tpl->desc->name);
  s->t.tvt = tvt;
  s->t.target = s->target;
  memset(&s->t.tinfo, 0, sizeof s->t.tinfo);
  s->t.tinfo.struct_size = sizeof s->t.tinfo;
  HCL_TRY(HCL_IN_TARGET(s->ctx, tvt->info(s->target, &s->t.tinfo)));
  HCL_TRY(hcl_trainer_preflight(s->ctx, &s->tc, &s->t.tinfo, 0, 0)); /* names the batch keys */
  setup.params = &s->model_p;
  rc = mvt->create(s->ctx, &setup, &s->t.tinfo, &s->model);
  if (rc != HCL_OK) return plugin_fail(s, rc, "model", s->mpl->desc->name);
  s->t.mvt = mvt;
  s->t.model = s->model;
  return HCL_OK;
}

static hcl_status write_manifest(run_state *s, const char *status, const char *error) {
  const hcl_params *secs[] = {&s->run, &s->runtime, &s->target_p, &s->model_p, &s->train, &s->eval};
  hcl_manifest m = {.status = status,
                    .error = error,
                    .cfg = &s->cfg,
                    .sections = secs,
                    .n_sections = 6,
                    .target = s->tpl,
                    .model = s->mpl,
                    .replicas = s->tc.replicas,
                    .seeds = s->seeds,
                    .n_params = s->t.n_params};
  return hcl_out_manifest(s->ctx, &s->out, &m);
}

static void cleanup(run_state *s) {
  if (s->ctx) /* a session's ctx outlives this run's plugins */
    s->ctx->plugin_file = s->ctx->plugin_target = s->ctx->plugin_model = NULL;
  if (s->ctx) hcl_trainer_release(&s->t);
  if (s->model) s->t.mvt->destroy(s->model);
  if (s->target) s->t.tvt->destroy(s->target);
  hcl_out_close(&s->out);
  hcl_registry_free(&s->reg);
  if (!s->shared_ctx) hcl_ctx_destroy(s->ctx);
  hcl_params *ps[] = {&s->run, &s->runtime, &s->train, &s->eval, &s->target_p, &s->model_p};
  for (size_t i = 0; i < 6; i++) hcl_params_free(ps[i]);
  hcl_config_free(&s->cfg);
  free(s->seeds);
  free(s->train_sizes);
  free(s->lr_scales);
  free(s);
}

hcl_status hcl_run(hcl_run_options *opt, char *err, size_t errlen) {
  run_state *s = calloc(1, sizeof *s);
  if (!s) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  hcl_status rc = load_config(s, opt);
  if (rc != HCL_OK) {
    err_out(rc, NULL, err, errlen);
    cleanup(s);
    return rc;
  }
  /* every config error is found before a device is opened or a kernel built */
  s->regp = opt->session ? &opt->session->reg : &s->reg;
  if ((!opt->session && (rc = hcl_registry_scan(NULL, opt->plugin_path, &s->reg)) != HCL_OK) ||
      (rc = find_plugin(s, "target", HCL_PLUGIN_TARGET, &s->tpl, &s->target_p)) != HCL_OK ||
      (rc = find_plugin(s, "model", HCL_PLUGIN_MODEL, &s->mpl, &s->model_p)) != HCL_OK ||
      (rc = train_config(s)) != HCL_OK || (rc = plugin_checks(s)) != HCL_OK) {
    err_out(rc, NULL, err, errlen);
    cleanup(s);
    return rc;
  }
  const char *parent = opt->out_dir && *opt->out_dir ? opt->out_dir : hcl_param_str(&s->run, "out");
  if ((rc = hcl_out_check_parent(NULL, parent, 0)) != HCL_OK) { /* before any work, never cut */
    err_out(rc, NULL, err, errlen);
    cleanup(s);
    return rc;
  }
  if (opt->dry_run) {
    cleanup(s);
    return HCL_OK;
  }
  rc = open_device(s, opt, 0, err, errlen);
  if (rc != HCL_OK) {
    cleanup(s);
    return rc;
  }
  s->ctx->stop = opt->stop; /* long loops in plugins and evaluation check it */
  snprintf(opt->device_id, sizeof opt->device_id, "%s", s->ctx->dev.id);
  hcl_status setup_rc = create_plugins(s);
  if (setup_rc == HCL_OK) setup_rc = pick_loss(s);
  /* a refused allocation or a stop during set-up still leaves a run directory */
  if (setup_rc != HCL_OK && setup_rc != HCL_ERR_NOMEM && setup_rc != HCL_ERR_INTERRUPTED) {
    err_out(setup_rc, s->ctx, err, errlen);
    cleanup(s);
    return setup_rc;
  }
  char name[256];
  const char *rn = hcl_param_str(&s->run, "name");
  if (*rn)
    snprintf(name, sizeof name, "%s", rn);
  else
    hcl_path_stem(opt->config_path, name, sizeof name);
  s->t.ctx = s->ctx;
  s->t.cfg = &s->tc;
  s->t.stop = opt->stop;
  s->t.progress = opt->progress;
  s->t.progress_every = opt->progress_every_s > 0 ? opt->progress_every_s : 30;
  s->out.seeds = s->seeds;
  char setup_msg[HCL_ERRMSG_MAX];
  snprintf(setup_msg, sizeof setup_msg, "%s", setup_rc != HCL_OK ? s->ctx->errmsg : "");
  if ((rc = hcl_out_open(s->ctx, &s->out, parent, name)) != HCL_OK) {
    err_out(rc, s->ctx, err, errlen);
    cleanup(s);
    return rc;
  }
  snprintf(opt->run_dir, sizeof opt->run_dir, "%s", s->out.dir);
  s->t.sink = hcl_out_sink(&s->out);
  rc = setup_rc != HCL_OK ? hcl_fail(s->ctx, setup_rc, "%s", setup_msg) : hcl_trainer_init(&s->t);
  if (rc == HCL_OK) rc = write_manifest(s, "running", NULL); /* no run without its record */
  if (rc == HCL_OK) rc = hcl_trainer_run(&s->t);
  /* The final writes: metrics.jsonl to disk, then summary.json, then the
   * manifest. A run whose results are not all on disk has not completed:
   * the first failure is the run's error (file and OS error), later writes
   * still try to record it, and no .tmp file is left behind. */
  char msg[HCL_ERRMSG_MAX];
  snprintf(msg, sizeof msg, "%s", rc == HCL_OK ? "" : s->ctx->errmsg);
  hcl_status wrc = hcl_out_close(&s->out);
  if (wrc != HCL_OK && (rc == HCL_OK || rc == HCL_ERR_INTERRUPTED)) {
    rc = wrc;
    snprintf(msg, sizeof msg, "%s", s->ctx->errmsg);
  }
  for (int file = 0; file < 2; file++) {
    const char *status = rc == HCL_OK                ? "completed"
                         : rc == HCL_ERR_INTERRUPTED ? "interrupted"
                                                     : "failed";
    wrc = file == 0 ? hcl_out_summary(s->ctx, &s->out, &s->t, status, msg)
                    : write_manifest(s, status, msg);
    if (wrc != HCL_OK && (rc == HCL_OK || rc == HCL_ERR_INTERRUPTED)) {
      rc = wrc;
      snprintf(msg, sizeof msg, "%s", s->ctx->errmsg);
    }
  }
  if (rc != HCL_OK) snprintf(err, errlen, "%s (results so far in %s)", msg, s->out.dir);
  opt->n_diverged = rc == HCL_OK ? s->t.n_diverged : 0;
  if (opt->n_diverged) {
    size_t first = hcl_trainer_first_diverged(&s->t);
    snprintf(err, errlen,
             "%zu of %zu replicas diverged (first: replica %zu, seed %llu, training loss not "
             "finite at step %d); their numbers are void, the others completed (%s)",
             opt->n_diverged, (size_t)s->t.cfg->replicas, first,
             (unsigned long long)s->t.cfg->seeds[first], (int)s->t.diverged[first], s->out.dir);
  }
  cleanup(s);
  return rc;
}

/* ---- hiercl sample ------------------------------------------------------- */

/* Format n samples (or the header) in memory and write(2) them to fd. */
static hcl_status write_samples(hcl_ctx *ctx, int fd, const char *label, const char *format,
                                const float *x, const float *y, size_t n, size_t xs, size_t yd,
                                int header) {
  hcl_membuf mb;
  FILE *f = hcl_membuf_open(&mb);
  if (!f) return hcl_fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  if (!strcmp(format, "npy")) {
    if (header) {
      char h[256];
      int len =
          snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                   n, xs + yd);
      int pad = 64 - (10 + len + 1) % 64; /* header padded so data is 64-byte aligned */
      fwrite("\x93NUMPY\x01\x00", 1, 8, f);
      uint16_t hl = (uint16_t)(len + pad + 1);
      fputc(hl & 0xff, f);
      fputc(hl >> 8, f);
      fprintf(f, "%s%*s\n", h, pad, "");
    } else {
      for (size_t i = 0; i < n; i++) {
        fwrite(x + i * xs, sizeof(float), xs, f);
        fwrite(y + i * yd, sizeof(float), yd, f);
      }
    }
  } else if (header) {
    for (size_t j = 0; j < xs; j++) fprintf(f, "x%zu,", j);
    for (size_t j = 0; j < yd; j++) fprintf(f, "y%zu%s", j, j + 1 < yd ? "," : "\n");
  } else {
    for (size_t i = 0; i < n; i++) {
      for (size_t j = 0; j < xs; j++) fprintf(f, "%.9g,", x[i * xs + j]);
      for (size_t j = 0; j < yd; j++) fprintf(f, "%.9g%s", y[i * yd + j], j + 1 < yd ? "," : "\n");
    }
  }
  hcl_status rc = hcl_membuf_close(ctx, &mb);
  if (rc == HCL_OK) rc = hcl_write_fd(ctx, fd, mb.data, mb.len, label);
  hcl_membuf_free(&mb);
  return rc;
}

hcl_status hcl_sample_run(hcl_run_options *opt, uint64_t n, uint32_t stream, const char *format,
                          const char *path, char *err, size_t errlen) {
  run_state *s = calloc(1, sizeof *s);
  if (!s) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  int fd = -1, to_file = path && strcmp(path, "-");
  const char *label = to_file ? path : "stdout";
  char tmp[PATH_MAX] = "";
  float *hx = NULL, *hy = NULL;
  hcl_buf bx = {0}, by = {0};
  hcl_status rc = load_config(s, opt);
  if (rc != HCL_OK) {
    err_out(rc, NULL, err, errlen);
    goto done;
  }
  s->regp = &s->reg;
  if ((rc = hcl_registry_scan(NULL, opt->plugin_path, &s->reg)) != HCL_OK ||
      (rc = find_plugin(s, "target", HCL_PLUGIN_TARGET, &s->tpl, &s->target_p)) != HCL_OK ||
      (rc = train_config(s)) != HCL_OK) {
    err_out(rc, NULL, err, errlen);
    goto done;
  }
  hcl_check_info run = check_info(s);
  hcl_target_info checked;
  if ((rc = check_target(s, &run, &checked)) != HCL_OK) { /* before the device */
    err_out(rc, NULL, err, errlen);
    goto done;
  }
  if ((rc = open_device(s, opt, 1, err, errlen)) != HCL_OK) goto done;
  s->tc.replicas = 1; /* replica 0: the run's first seed */
  size_t chunk = 4096;
  hcl_setup setup = {.struct_size = sizeof setup,
                     .replicas = 1,
                     .seeds = s->seeds,
                     .params = &s->target_p,
                     .train_size = s->tc.train_size,
                     .test_size = s->tc.test_size,
                     .max_batch = chunk,
                     .val_size = s->tc.val_size};
  const hcl_target_vt *tvt = s->tpl->desc->vt;
  s->ctx->plugin_file = s->cfg.path;
  s->ctx->plugin_target = s->tpl->desc->name;
  if ((rc = HCL_IN_TARGET(s->ctx, tvt->create(s->ctx, &setup, &s->target))) != HCL_OK) {
    plugin_fail(s, rc, "target", s->tpl->desc->name);
    goto fail;
  }
  s->t.tvt = tvt;
  hcl_target_info ti = {.struct_size = sizeof ti};
  if ((rc = HCL_IN_TARGET(s->ctx, tvt->info(s->target, &ti))) != HCL_OK) goto fail;
  size_t xs = 1, yd = ti.y_dim ? ti.y_dim : 1;
  for (uint32_t i = 0; i < ti.x.rank; i++) xs *= ti.x.dims[i];
  /* a file is written as <dir>/.<name>.tmp and renamed when whole: a
   * failed write never leaves a file that looks complete */
  fd = !to_file ? STDOUT_FILENO
       : hcl_tmp_name(path, tmp, sizeof tmp)
           ? (errno = ENAMETOOLONG, -1)
           : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    rc = hcl_fail(s->ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    goto fail;
  }
  hx = malloc(chunk * xs * sizeof(float));
  hy = malloc(chunk * yd * sizeof(float));
  if (!hx || !hy) {
    rc = hcl_fail(s->ctx, HCL_ERR_NOMEM, "out of host memory");
    goto fail;
  }
  if ((rc = hcl_buf_alloc(s->ctx, chunk * xs * sizeof(float), &bx)) != HCL_OK ||
      (rc = hcl_buf_alloc(s->ctx, chunk * yd * sizeof(float), &by)) != HCL_OK ||
      (rc = write_samples(s->ctx, fd, label, format, NULL, NULL, n, xs, yd, 1)) != HCL_OK)
    goto fail;
  for (uint64_t first = 0; first < n; first += chunk) {
    size_t k = n - first < chunk ? (size_t)(n - first) : chunk;
    if ((rc = HCL_IN_TARGET(s->ctx, tvt->sample(s->target, stream, first, k, bx, by))) != HCL_OK ||
        (rc = hcl_buf_read(s->ctx, bx, hx, k * xs * sizeof(float))) != HCL_OK ||
        (rc = hcl_buf_read(s->ctx, by, hy, k * yd * sizeof(float))) != HCL_OK ||
        (rc = write_samples(s->ctx, fd, label, format, hx, hy, k, xs, yd, 0)) != HCL_OK)
      goto fail;
  }
  if (to_file) { /* whole: to disk, then under its name */
    int bad = fsync(fd), e = errno;
    if (close(fd) && !bad) bad = 1, e = errno;
    fd = -1;
    if (!bad && rename(tmp, path)) bad = 1, e = errno;
    if (bad) {
      rc = hcl_fail(s->ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(e));
      goto fail;
    }
    if ((rc = hcl_sync_parent(s->ctx, path)) != HCL_OK) goto fail;
  }
  goto done;
fail:
  err_out(rc, s->ctx, err, errlen);
  if (to_file && fd >= 0) close(fd);
  if (to_file && tmp[0]) unlink(tmp); /* no partial file under any name */
done:
  free(hx);
  free(hy);
  hcl_buf_free(s->ctx, &bx);
  hcl_buf_free(s->ctx, &by);
  if (s->target) s->t.tvt->destroy(s->target);
  s->target = NULL;
  cleanup(s);
  return rc;
}

/* ---- hiercl gradcheck ---------------------------------------------------- */

hcl_status hcl_gradcheck(hcl_gradcheck_options *opt, hcl_gradcheck_block **blocks, size_t *n_blocks,
                         char *model, size_t model_len, char *err, size_t errlen) {
  *blocks = NULL;
  *n_blocks = 0;
  if (model_len) *model = 0;
  run_state *s = calloc(1, sizeof *s);
  hcl_run_options ro = opt->run;
  size_t n_sets = ro.n_sets;
  const char **sets = calloc(n_sets + 1, sizeof *sets);
  if (!s || !sets) {
    free(s);
    free(sets);
    return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  }
  /* the replicas are an override after the user's own ones */
  char rset[64];
  snprintf(rset, sizeof rset, "run.replicas=%u", opt->replicas ? opt->replicas : 2u);
  for (size_t i = 0; i < n_sets; i++) sets[i] = ro.sets[i];
  sets[n_sets] = rset;
  ro.sets = sets;
  ro.n_sets = n_sets + 1;
  size_t samples = opt->samples ? opt->samples : 4;
  hcl_status rc = load_config(s, &ro);
  s->regp = &s->reg;
  if (rc == HCL_OK && (rc = hcl_registry_scan(NULL, ro.plugin_path, &s->reg)) == HCL_OK &&
      (rc = find_plugin(s, "target", HCL_PLUGIN_TARGET, &s->tpl, &s->target_p)) == HCL_OK &&
      (rc = find_plugin(s, "model", HCL_PLUGIN_MODEL, &s->mpl, &s->model_p)) == HCL_OK &&
      (rc = train_config(s)) == HCL_OK && (rc = plugin_checks(s)) == HCL_OK) {
    if (model_len) snprintf(model, model_len, "%s", s->mpl->desc->name);
    if (s->tc.replicas < 2)
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "%s: [run] seeds gives %u replica; gradcheck needs at least 2 (each replica "
                    "is checked on its own)",
                    s->cfg.path, s->tc.replicas);
    else if (samples > s->tc.batch && samples > s->tc.eval_batch)
      rc = hcl_fail(NULL, HCL_ERR_CONFIG,
                    "--samples %zu: more than the model's largest batch ([train] batch = %llu, "
                    "[eval] batch = %llu)",
                    samples, (unsigned long long)s->tc.batch, (unsigned long long)s->tc.eval_batch);
  }
  if (rc != HCL_OK) {
    err_out(rc, NULL, err, errlen);
    goto done;
  }
  if ((rc = open_device(s, &ro, 1, err, errlen)) != HCL_OK) goto done;
  s->ctx->stop = ro.stop;
  s->t.ctx = s->ctx;
  s->t.cfg = &s->tc;
  s->t.stop = ro.stop;
  if ((rc = create_plugins(s)) != HCL_OK || (rc = pick_loss(s)) != HCL_OK ||
      (rc = hcl_trainer_init(&s->t)) != HCL_OK) {
    err_out(rc, s->ctx, err, errlen);
    goto done;
  }
  const hcl_model_vt *mvt = s->t.mvt; /* data-dependent set-up, as a run does first */
  if (mvt->struct_size >= offsetof(hcl_model_vt, prepare) + sizeof mvt->prepare && mvt->prepare &&
      (rc = mvt->prepare(s->model, &s->t)) != HCL_OK) {
    plugin_fail(s, rc, "model", s->mpl->desc->name);
    err_out(rc, s->ctx, err, errlen);
    goto done;
  }
  hcl_gradcheck_run g = {.t = &s->t, .samples = samples, .coords = opt->coords ? opt->coords : 16};
  if ((rc = hcl_gradcheck_model(&g, blocks, n_blocks)) != HCL_OK) {
    if (rc != HCL_ERR_INTERRUPTED && rc != HCL_ERR_NOMEM)
      plugin_fail(s, rc, "model", s->mpl->desc->name);
    err_out(rc, s->ctx, err, errlen);
  }
done:
  cleanup(s);
  free(sets);
  return rc;
}
