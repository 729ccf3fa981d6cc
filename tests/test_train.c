/* End-to-end training through hcl_run: learning S_3, replicas equal to
 * separate runs, interrupt and NaN handling, config errors. */
#include "hcl_test.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base_cfg = "[run]\nseed = 5\n"
                              "[target]\nplugin = staircase\nn = 10\nk = 3\nprobe_samples = 2000\n"
                              "[model]\nplugin = resnet\nwidth = 32\ndepth = 3\n"
                              "[train]\nsteps = 4000\nbatch = 32\nlr = 0.05\ntrain_size = 0\n"
                              "[eval]\nevery = 1000\ntest_size = 2000\n";

static hcl_status run_cfg(const char *cfg_text, const char *const *sets, size_t n_sets,
                          const volatile int *stop, char *dir, char *err, size_t errlen) {
  const char *path = hcl_test_write_temp("train.ini", cfg_text);
  hcl_run_options o = {.config_path = path,
                       .sets = sets,
                       .n_sets = n_sets,
                       .device = "cpu",
                       .out_dir = hcl_test_tmpdir(),
                       .plugin_path = HCL_TEST_PLUGIN_DIR,
                       .stop = stop};
  hcl_status rc = hcl_run(&o, err, errlen);
  snprintf(dir, 1024, "%s", o.run_dir);
  return rc;
}

static char *read_in(const char *dir, const char *file) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  return hcl_test_read_file(p);
}

static void skip_without_device(void) {
  if (!hcl_test_ctx()) skip();
}

/* The last metrics line of a replica. */
static const char *last_line_of(const char *text, int replica) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"replica\":%d,", replica);
  const char *last = NULL;
  for (const char *p = text; (p = strstr(p, pat)); p++) last = p;
  return last;
}

static void learns_s3(void **state) {
  (void)state;
  skip_without_device();
  char dir[1024], err[4096];
  hcl_status rc = run_cfg(base_cfg, NULL, 0, NULL, dir, err, sizeof err);
  if (rc != HCL_OK) fail_msg("%s", err);
  char *m = read_in(dir, "metrics.jsonl");
  assert_non_null(m);
  double test = NAN, c3 = NAN, c1 = NAN;
  const char *last = last_line_of(m, 0);
  assert_non_null(last);
  assert_true(hcl_test_json_num(last, "test_loss", &test));
  assert_true(test < 0.05);
  /* the probe: every chain coefficient near 1/sqrt(3) once learned */
  assert_true(hcl_test_json_num(last, "fourier_1", &c1));
  assert_true(hcl_test_json_num(last, "fourier_1to3", &c3));
  assert_true(fabs(c1 - 1 / sqrt(3.0)) < 0.1);
  assert_true(fabs(c3 - 1 / sqrt(3.0)) < 0.1);
  /* the first evaluation is the untrained network: far from learned */
  double first_test = 0;
  assert_true(hcl_test_json_num(m, "test_loss", &first_test));
  assert_true(first_test > 0.5);
  char *man = read_in(dir, "manifest.json");
  assert_non_null(man);
  assert_non_null(strstr(man, "\"status\":\"completed\""));
  assert_non_null(strstr(man, "\"probe_samples\":\"2000\"")); /* resolved config */
  assert_non_null(strstr(man, "\"width\":\"32\""));
  char *sum = read_in(dir, "summary.json");
  assert_non_null(sum);
  double steps = 0;
  assert_true(hcl_test_json_num(sum, "steps", &steps));
  assert_int_equal((int)steps, 4000);
  free(m);
  free(man);
  free(sum);
}

/* Metrics lines of one replica without the run-specific fields (wall time). */
static char *strip_lines(const char *text, int replica) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"replica\":%d,", replica);
  size_t cap = strlen(text) + 1, n = 0;
  char *out = calloc(cap, 1);
  for (const char *line = text; *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)len, line);
    if (strstr(buf, pat)) {
      /* drop "replica":k and "wall_s":v so lines compare across runs */
      char *w = strstr(buf, "\"wall_s\":");
      if (w) {
        char *c = strchr(w, ',');
        memmove(w, c + 1, strlen(c + 1) + 1);
      }
      char *r = strstr(buf, "\"replica\":");
      if (r) {
        char *c = strchr(r, ',');
        memmove(r, c + 1, strlen(c + 1) + 1);
      }
      n += (size_t)snprintf(out + n, cap - n, "%s\n", buf);
    }
    line += len + (end ? 1 : 0);
  }
  return out;
}

static void replicas_equal_separate_runs(void **state) {
  (void)state;
  skip_without_device();
  char dir2[1024], dira[1024], dirb[1024], err[4096];
  const char *two[] = {"run.seeds=11, 12", "train.steps=300", "eval.every=100"};
  const char *one_a[] = {"run.seed=11", "train.steps=300", "eval.every=100"};
  const char *one_b[] = {"run.seed=12", "train.steps=300", "eval.every=100"};
  if (run_cfg(base_cfg, two, 3, NULL, dir2, err, sizeof err)) fail_msg("%s", err);
  if (run_cfg(base_cfg, one_a, 3, NULL, dira, err, sizeof err)) fail_msg("%s", err);
  if (run_cfg(base_cfg, one_b, 3, NULL, dirb, err, sizeof err)) fail_msg("%s", err);
  char *m2 = read_in(dir2, "metrics.jsonl"), *ma = read_in(dira, "metrics.jsonl"),
       *mb = read_in(dirb, "metrics.jsonl");
  char *r0 = strip_lines(m2, 0), *r1 = strip_lines(m2, 1), *a = strip_lines(ma, 0),
       *b = strip_lines(mb, 0);
  assert_true(strlen(a) > 100);
  assert_string_equal(r0, a); /* bit-identical metrics, printed with %.9g */
  assert_string_equal(r1, b);
  assert_string_not_equal(a, b);
  free(m2), free(ma), free(mb), free(r0), free(r1), free(a), free(b);
}

/* A sample-complexity curve in one pass: replica r trains on the first
 * train_sizes[r] samples, exactly as a separate run with that train_size. */
static void train_sizes_equal_separate_runs(void **state) {
  (void)state;
  skip_without_device();
  char dir2[1024], dira[1024], dirb[1024], err[4096];
  const char *two[] = {"run.seeds=4, 4", "train.train_sizes=40, 700", "train.steps=300",
                       "eval.every=100"};
  const char *one_a[] = {"run.seed=4", "train.train_size=40", "train.steps=300", "eval.every=100"};
  const char *one_b[] = {"run.seed=4", "train.train_size=700", "train.steps=300", "eval.every=100"};
  if (run_cfg(base_cfg, two, 4, NULL, dir2, err, sizeof err)) fail_msg("%s", err);
  if (run_cfg(base_cfg, one_a, 4, NULL, dira, err, sizeof err)) fail_msg("%s", err);
  if (run_cfg(base_cfg, one_b, 4, NULL, dirb, err, sizeof err)) fail_msg("%s", err);
  char *m2 = read_in(dir2, "metrics.jsonl"), *ma = read_in(dira, "metrics.jsonl"),
       *mb = read_in(dirb, "metrics.jsonl");
  assert_non_null(strstr(m2, "\"train_size\":40,"));
  /* drop the train_size metric, then compare line by line */
  for (char *p = m2; (p = strstr(p, "\"train_size\":"));) {
    char *c = strchr(p, ',');
    memmove(p, c + 1, strlen(c + 1) + 1);
  }
  char *r0 = strip_lines(m2, 0), *r1 = strip_lines(m2, 1), *a = strip_lines(ma, 0),
       *b = strip_lines(mb, 0);
  assert_string_equal(r0, a);
  assert_string_equal(r1, b);
  assert_string_not_equal(a, b); /* 40 points are memorised, 700 generalise */
  /* one size per replica, or an error naming the key */
  const char *bad[] = {"train.train_sizes=40, 700, 900"};
  assert_int_equal(hcl_exit_code(run_cfg(base_cfg, bad, 1, NULL, dir2, err, sizeof err)),
                   HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "train_sizes"));
  /* a model's own algorithm reads one training-set size: refused, not guessed */
  const char *alg[] = {"run.seeds=4, 4", "train.train_sizes=40, 700", "train.algorithm=layerwise"};
  assert_int_equal(hcl_exit_code(run_cfg(base_cfg, alg, 3, NULL, dir2, err, sizeof err)),
                   HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "algorithm = sgd only"));
  free(m2), free(ma), free(mb), free(r0), free(r1), free(a), free(b);
}

static void interrupt_keeps_results(void **state) {
  (void)state;
  skip_without_device();
  char dir[1024], err[4096];
  volatile int stop = 1;
  hcl_status rc = run_cfg(base_cfg, NULL, 0, &stop, dir, err, sizeof err);
  assert_int_equal(rc, HCL_ERR_INTERRUPTED);
  assert_int_equal(hcl_exit_code(rc), HCL_EXIT_INTERRUPTED);
  char *man = read_in(dir, "manifest.json"), *sum = read_in(dir, "summary.json"),
       *m = read_in(dir, "metrics.jsonl");
  assert_non_null(strstr(man, "\"status\":\"interrupted\""));
  assert_non_null(strstr(sum, "\"status\":\"interrupted\""));
  assert_non_null(strstr(m, "\"step\":0,")); /* the initial evaluation is on disk */
  free(man), free(sum), free(m);
}

static void nan_stops_with_step(void **state) {
  (void)state;
  skip_without_device();
  char dir[1024], err[4096];
  const char *sets[] = {"train.lr=1e6", "model.activation=quadratic", "eval.every=50"};
  hcl_status rc = run_cfg(base_cfg, sets, 3, NULL, dir, err, sizeof err);
  assert_int_equal(rc, HCL_ERR_NUMERIC);
  assert_non_null(strstr(err, "not finite at step"));
  char *sum = read_in(dir, "summary.json");
  assert_non_null(strstr(sum, "\"status\":\"failed\""));
  free(sum);
}

/* One replica diverging (per-replica lr 1e6) leaves the other's run whole:
 * the run completes, n_diverged and err name the void replica, and
 * summary.json gives it diverged_at_step and no metrics. */
static void diverged_replica_is_void(void **state) {
  (void)state;
  skip_without_device();
  char err[4096];
  const char *sets[] = {"run.seeds=0, 1", "train.lrs=0.05, 1e6", "model.activation=quadratic",
                        "eval.every=50"};
  hcl_run_options o = {.config_path = hcl_test_write_temp("diverge.ini", base_cfg),
                       .sets = sets,
                       .n_sets = 4,
                       .device = "cpu",
                       .out_dir = hcl_test_tmpdir(),
                       .plugin_path = HCL_TEST_PLUGIN_DIR};
  assert_int_equal(hcl_run(&o, err, sizeof err), HCL_OK);
  assert_int_equal(o.n_diverged, 1);
  assert_non_null(strstr(err, "1 of 2 replicas diverged (first: replica 1, seed 1,"));
  char *sum = read_in(o.run_dir, "summary.json");
  assert_non_null(strstr(sum, "\"status\":\"completed\""));
  assert_non_null(strstr(sum, "{\"replica\":0,\"seed\":0,\"best_test_loss\":"));
  assert_non_null(strstr(sum, "{\"replica\":1,\"seed\":1,\"diverged_at_step\":"));
  assert_null(strstr(sum, "\"seed\":1,\"best_test_loss\""));
  free(sum);
}

/* [eval] train_set: the loss over the whole training set at the current
 * parameters. With lr = 0 the parameters never move, so the mean of the ten
 * mini-batch losses of an interval that covers the 100 training points once
 * (train_loss, read through the cached set) must equal it (read from the
 * train stream); train_set_error is a count over 100 points; an online run
 * has no training set and is refused with the key named. */
static const char *lt_cfg = "[run]\nseed = 3\n"
                            "[target]\nplugin = linear_teacher\nd = 10\nmargin = 0.1\n"
                            "probe_samples = 500\n"
                            "[model]\nplugin = regular_net\ndepth = 1\nwidth = 8\n"
                            "activation = leaky_relu\nreadout_fixed = pm_v\nreadout_bias = false\n"
                            "bias = false\ninit = normal\ninit_scale = 0.5\n"
                            "[train]\nloss = logistic\nsteps = 20\nbatch = 10\nlr = 0\n"
                            "train_size = 100\n"
                            "[eval]\nevery = 10\ntest_size = 500\ntrain_set = true\n";

static void train_set_metrics(void **state) {
  (void)state;
  skip_without_device();
  char dir[1024], err[4096];
  assert_int_equal(run_cfg(lt_cfg, NULL, 0, NULL, dir, err, sizeof err), HCL_OK);
  char *m = read_in(dir, "metrics.jsonl");
  assert_non_null(m);
  const char *last = last_line_of(m, 0);
  assert_non_null(last);
  while (last > m && last[-1] != '\n') last--; /* "step" comes before "replica" */
  double step = 0, train = 0, set_loss = 0, set_err = -1, test = 0;
  assert_true(hcl_test_json_num(last, "step", &step));
  assert_true(hcl_test_json_num(last, "train_loss", &train));
  assert_true(hcl_test_json_num(last, "train_set_loss", &set_loss));
  assert_true(hcl_test_json_num(last, "train_set_error", &set_err));
  assert_true(hcl_test_json_num(last, "test_loss", &test));
  free(m);
  assert_true(step == 20);
  assert_true(set_loss > 0.1); /* an untrained net: the check below is not 0 = 0 */
  assert_float_equal(set_loss, train, 1e-5 * train);
  assert_true(fabs(set_loss - test) > 1e-4); /* another stream than the test set */
  assert_true(set_err >= 0 && set_err <= 1);
  assert_float_equal(set_err * 100, round(set_err * 100), 1e-4);
  const char *online[] = {"train.train_size=0"};
  hcl_status rc = run_cfg(lt_cfg, online, 1, NULL, dir, err, sizeof err);
  assert_int_equal(hcl_exit_code(rc), HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "train_set"));
}

static void config_errors_name_the_key(void **state) {
  (void)state;
  skip_without_device();
  char dir[1024], err[4096];
  const char *bad_key[] = {"train.stepz=3"};
  hcl_status rc = run_cfg(base_cfg, bad_key, 1, NULL, dir, err, sizeof err);
  assert_int_equal(hcl_exit_code(rc), HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "stepz"));
  assert_non_null(strstr(err, "train"));
  const char *bad_model[] = {"model.width=-4"};
  rc = run_cfg(base_cfg, bad_model, 1, NULL, dir, err, sizeof err);
  assert_int_equal(hcl_exit_code(rc), HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "width"));
  const char *no_plugin[] = {"model.plugin=nosuchmodel"};
  rc = run_cfg(base_cfg, no_plugin, 1, NULL, dir, err, sizeof err);
  assert_int_equal(hcl_exit_code(rc), HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "nosuchmodel"));
  assert_non_null(strstr(err, "resnet")); /* lists what is available */
  const char *bad_alg[] = {"train.algorithm=magic"};
  rc = run_cfg(base_cfg, bad_alg, 1, NULL, dir, err, sizeof err);
  assert_int_equal(hcl_exit_code(rc), HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "magic"));
}

/* Kernel launches a run made (summary.json's "kernels"), all labels. */
static double launches_of(const char *cfg, const char *steps) {
  char dir[1024], err[4096];
  const char *sets[] = {steps};
  if (run_cfg(cfg, sets, 1, NULL, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *sum = read_in(dir, "summary.json");
  assert_non_null(sum);
  double total = 0, v;
  for (const char *p = sum; (p = strstr(p, "\"launches\":")); p++)
    if (hcl_test_json_num(p, "launches", &v)) total += v;
  free(sum);
  return total;
}

/* On a CPU a small model's step is bound by the driver's cost per launch:
 * the staircase ResNet of the bench (5 layers of width 40, SGD, MSE) takes
 * at most 27 launches a step (33 before the bias gradients were summed in
 * the activations' backward kernels, the loss became one launch and the
 * batch's inputs and labels one gather), the linear teacher's two-layer net
 * (hinge) at most 10 (12 before). On CPUs each takes 1: the batch's gather,
 * forward, loss, backward and optimiser as one launch (runtime/graph_pass.c;
 * 5 with the one-launch passes alone), and one launch runs up to 8 steps
 * (HCL_STEPS_MAX) between sync points: at most a quarter of a launch. */
static void launches_per_step(void **state) {
  (void)state;
  skip_without_device();
  static const char *const cfg[2] = {
      "[target]\nplugin = staircase\nn = 30\nk = 10\n"
      "[model]\nplugin = resnet\nwidth = 40\ndepth = 5\n"
      "[train]\nbatch = 20\nlr = 0.01\ntrain_size = 600\n"
      "[eval]\nevery = 0\ntest_size = 64\nprobes = false\n",
      "[target]\nplugin = linear_teacher\nd = 50\nmargin = 0.1\n"
      "[model]\nplugin = regular_net\ndepth = 1\nwidth = 40\nactivation = leaky_relu\n"
      "readout_fixed = pm_v\nreadout_bias = false\nbias = false\n"
      "[train]\nloss = hinge\nbatch = 50\nlr = 0.05\ntrain_size = 500\n"
      "[eval]\nevery = 0\ntest_size = 64\nprobes = false\n"};
  static const double most[2][2] = {{27, 10}, {0.25, 0.25}};
  hcl_ctx *ctx = hcl_test_ctx();
  int cpu = ctx && hcl_ops_cpu_paths(ctx);
  for (int c = 0; c < 2; c++) {
    double per =
        (launches_of(cfg[c], "train.steps=300") - launches_of(cfg[c], "train.steps=100")) / 200.0;
    if (!(per <= most[cpu][c]))
      fail_msg("case %d: %.3f launches a step, at most %.2f", c, per, most[cpu][c]);
  }
}

/* On CPUs a small graph model's training step runs as one launch, and one
 * launch runs several steps (runtime/graph_pass.c): the same metrics, bit
 * for bit, as the batch's gather, forward, loss, backward and optimiser
 * launched apart (HIERCL_GRAPH_STEP=0), for each form of the loss and the
 * optimiser it takes, with learning rates that change inside a launch: SGD
 * with Nesterov momentum, weight decay and a cosine schedule (mse), Adam
 * with a frozen readout and a step schedule (hinge), per-replica rates
 * (logistic) and cross-entropy; batches wrap around the training set inside
 * a launch. 150 steps with an evaluation every 50 take 7 launches per 50
 * steps (8 + 8 + ... + 2). */
static void fused_step_same_bits(void **state) {
  (void)state;
  skip_without_device();
  if (!hcl_ops_cpu_paths(hcl_test_ctx())) skip();
  static const char *const teacher =
      "[target]\nplugin = linear_teacher\nd = 20\nmargin = 0.1\n"
      "[model]\nplugin = regular_net\ndepth = 1\nwidth = 12\nactivation = leaky_relu\n"
      "readout_fixed = pm_v\nreadout_bias = false\nbias = false\n";
  char cfg[4][1024];
  snprintf(cfg[0], sizeof cfg[0], "%s",
           "[target]\nplugin = staircase\nn = 12\nk = 4\n"
           "[model]\nplugin = resnet\nwidth = 16\ndepth = 2\n"
           "[train]\nbatch = 10\nlr = 0.02\nmomentum = 0.9\nnesterov = true\n"
           "weight_decay = 0.001\ntrain_size = 200\nschedule = cosine\nlr_min = 0.001\n");
  snprintf(cfg[1], sizeof cfg[1], "%s%s", teacher,
           "[train]\nloss = hinge\noptimizer = adam\nlr = 0.01\nbatch = 25\ntrain_size = 100\n"
           "schedule = step\nlr_every = 5\nlr_factor = 0.9\n");
  snprintf(cfg[2], sizeof cfg[2], "%s%s", teacher,
           "[train]\nloss = logistic\nlrs = 0.05, 0.2\nbatch = 25\ntrain_size = 100\n");
  snprintf(cfg[3], sizeof cfg[3], "%s",
           "[target]\nplugin = rhm\nn_c = 4\nv = 4\nm = 4\ns = 2\nl = 2\n"
           "[model]\nplugin = regular_net\ndepth = 1\nwidth = 16\n"
           "[train]\nloss = cross_entropy\nbatch = 8\nlr = 0.1\ntrain_size = 32\n");
  const char *sets[] = {"run.seeds=1, 2", "train.steps=150", "eval.every=50", "eval.test_size=64",
                        "eval.probes=false"};
  for (int c = 0; c < 4; c++) {
    char d0[1024], d1[1024], err[4096], *dir[2] = {d0, d1};
    for (int fused = 0; fused < 2; fused++) {
      if (!fused) setenv("HIERCL_GRAPH_STEP", "0", 1);
      hcl_status rc = run_cfg(cfg[c], sets, 5, NULL, dir[fused], err, sizeof err);
      unsetenv("HIERCL_GRAPH_STEP");
      if (rc != HCL_OK) fail_msg("case %d: %s", c, err);
      char *sum = read_in(dir[fused], "summary.json");
      assert_non_null(sum);
      const char *gs = strstr(sum, "\"graph_step\"");
      double launches = 0;
      if (!gs != !fused) /* the one launch ran, or did not */
        fail_msg("case %d: graph_step %s", c, fused ? "missing" : "with HIERCL_GRAPH_STEP=0");
      if (gs && (!hcl_test_json_num(gs, "launches", &launches) || launches != 21))
        fail_msg("case %d: %g launches of graph_step for 150 steps, expected 21", c, launches);
      free(sum);
    }
    char *m[2] = {read_in(dir[0], "metrics.jsonl"), read_in(dir[1], "metrics.jsonl")};
    for (int r = 0; r < 2; r++) {
      char *a = strip_lines(m[0], r), *b = strip_lines(m[1], r);
      assert_true(strlen(a) > 100);
      if (strcmp(a, b)) fail_msg("case %d replica %d:\n%s\nfused:\n%s", c, r, a, b);
      free(a), free(b);
    }
    free(m[0]), free(m[1]);
  }
}

/* A model whose hooks change the step (regular_net with connectivity masks:
 * graph_params masks the weights, graph_grad the gradient) never has its
 * step fused: no graph_step launch, and the same metrics as with
 * HIERCL_GRAPH_STEP=0. Fails if graph_plain ignored the masks. */
static void fused_step_waits_for_hooks(void **state) {
  (void)state;
  skip_without_device();
  static const char *const cfg = "[target]\nplugin = linear_teacher\nd = 20\nmargin = 0.1\n"
                                 "[model]\nplugin = regular_net\ndepth = 2\nwidth = 12\np1 = 0.5\n"
                                 "[train]\nloss = hinge\nlr = 0.05\nbatch = 25\ntrain_size = 100\n";
  const char *sets[] = {"run.seeds=1, 2", "train.steps=100", "eval.every=50", "eval.test_size=64",
                        "eval.probes=false"};
  char d0[1024], d1[1024], err[4096], *dir[2] = {d0, d1};
  for (int k = 0; k < 2; k++) {
    if (!k) setenv("HIERCL_GRAPH_STEP", "0", 1);
    hcl_status rc = run_cfg(cfg, sets, 5, NULL, dir[k], err, sizeof err);
    unsetenv("HIERCL_GRAPH_STEP");
    if (rc != HCL_OK) fail_msg("%s", err);
  }
  char *sum = read_in(d1, "summary.json"),
       *m[2] = {read_in(d0, "metrics.jsonl"), read_in(d1, "metrics.jsonl")};
  assert_non_null(sum);
  if (strstr(sum, "\"graph_step\"")) fail_msg("a masked regular_net's step ran as one launch");
  for (int r = 0; r < 2; r++) {
    char *a = strip_lines(m[0], r), *b = strip_lines(m[1], r);
    assert_true(strlen(a) > 100);
    assert_string_equal(a, b);
    free(a), free(b);
  }
  free(sum), free(m[0]), free(m[1]);
}

static void schedules(void **state) {
  (void)state;
  hcl_schedule s = {.kind = HCL_SCHED_STEP, .lr = 0.01, .every = 15000, .factor = 0.5};
  assert_float_equal(hcl_schedule_lr(&s, 14999), 0.01, 1e-15);
  assert_float_equal(hcl_schedule_lr(&s, 15000), 0.005, 1e-15);
  assert_float_equal(hcl_schedule_lr(&s, 45000), 0.00125, 1e-15);
  hcl_schedule p = {
      .kind = HCL_SCHED_PIECEWISE, .lr = 1, .every = 10, .factors = {1, 0.3, 0.1}, .n_factors = 3};
  assert_float_equal(hcl_schedule_lr(&p, 9), 1, 0);
  assert_float_equal(hcl_schedule_lr(&p, 10), 0.3, 0);
  assert_float_equal(hcl_schedule_lr(&p, 1000), 0.1, 0);
  hcl_schedule c = {.kind = HCL_SCHED_COSINE, .lr = 1, .lr_min = 0, .total = 100};
  assert_float_equal(hcl_schedule_lr(&c, 0), 1, 1e-12);
  assert_float_equal(hcl_schedule_lr(&c, 50), 0.5, 1e-12);
  assert_float_equal(hcl_schedule_lr(&c, 100), 0, 1e-12);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(schedules),
      cmocka_unit_test(config_errors_name_the_key),
      cmocka_unit_test(train_set_metrics),
      cmocka_unit_test(learns_s3),
      cmocka_unit_test(replicas_equal_separate_runs),
      cmocka_unit_test(train_sizes_equal_separate_runs),
      cmocka_unit_test(interrupt_keeps_results),
      cmocka_unit_test(nan_stops_with_step),
      cmocka_unit_test(diverged_replica_is_void),
      cmocka_unit_test(launches_per_step),
      cmocka_unit_test(fused_step_same_bits),
      cmocka_unit_test(fused_step_waits_for_hooks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
