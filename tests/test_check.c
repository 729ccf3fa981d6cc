/* The plugins' device-free checks (hcl_target_vt.check, hcl_model_vt.check):
 * a parameter combination a plugin refuses fails with exit 2, naming the
 * file, section, plugin and key, BEFORE the device opens (so even with a
 * device selector that matches nothing, which would otherwise fail first
 * with exit 3) and without a run directory. Every shipped config passes. */
#include "hcl_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char out[1 << 16];

/* Run a shell command; stdout+stderr into out; the exit status (-1: killed). */
static int sh(const char *cmd) { return hcl_test_sh(cmd, out, sizeof out); }

#define assert_contains(hay, needle)                                                               \
  do {                                                                                             \
    if (!strstr((hay), (needle))) fail_msg("'%s' not in '%s'", (needle), (hay));                   \
  } while (0)

/* `hiercl CMD CONFIG SETS --out DIR` with a device selector that matches
 * nothing must fail with exit 2 and `want` (the file and everything after
 * it), and leave no DIR. */
static void refused(const char *cmd, const char *config, const char *sets, const char *want) {
  static int k;
  char dir[1200], path[1200], line[8192], msg[4096];
  snprintf(dir, sizeof dir, "%s/check_out_%d", hcl_test_tmpdir(), k++);
  snprintf(path, sizeof path, "%s/%s", HCL_TEST_CONFIGS, config);
  snprintf(line, sizeof line, "HIERCL_DEVICE=no-such-device %s %s %s %s --out %s", HCL_TEST_HIERCL,
           cmd, path, sets, dir);
  int rc = sh(line);
  if (rc != 2) HCL_FAIL_OUT(out, "%s: exit %d, expected 2 (output above)", line, rc);
  snprintf(msg, sizeof msg, "%s: %s", path, want);
  assert_contains(out, msg);
  if (strstr(out, "no-such-device")) HCL_FAIL_OUT(out, "the device was reached (output above)");
  struct stat st;
  if (stat(dir, &st) == 0) fail_msg("%s: %s was made", line, dir);
}

static void model_shape_checks_come_before_the_device(void **state) {
  (void)state;
  /* deep_cnn: depth against the RHM's input length (was: create(), after the device) */
  refused("run", "rhm_cnn_sweep.ini", "--set model.depth=5",
          "[model] deep_cnn: depth = 5: input length 4 is not s^L = 2^5 = 32");
  /* the plugin's own name is not repeated */
  if (strstr(out, "deep_cnn: deep_cnn:")) HCL_FAIL_OUT(out, "name twice (output above)");
  /* taylor: relu'' is a delta, so order 2 needs another activation */
  refused("run", "neural_rep_taylor.ini", "--set model.order=2 --set model.activation=relu",
          "[model] taylor: activation = relu with order = 2");
  /* regular_net: a fixed +-v readout needs an even number of units */
  refused("run", "staircase_regular_scd.ini", "--set model.readout_fixed=pm_v --set model.width=3",
          "[model] regular_net: readout_fixed = pm_v needs an even number 2k of readout units, "
          "got 9");
}

static void algorithm_checks_come_before_the_run_directory(void **state) {
  (void)state;
  /* three_layer: algorithm1 splits the training set in halves (was: train(),
   * after the run directory was made) */
  refused("run", "three_layer_single_index.ini", "--set train.train_size=1",
          "[model] three_layer: algorithm1 needs a finite training set of at least 2 samples "
          "([train] train_size = 1;");
  /* deep_cnn ridge_chain fits on a finite set */
  refused("run", "rhm_ridge_chain.ini", "--set train.train_size=0",
          "[model] deep_cnn: ridge_chain with [train] train_size = 0 (fresh samples): set "
          "[model] ridge_samples");
}

static void target_checks_come_before_the_device(void **state) {
  (void)state;
  refused("run", "rhm_cnn_sweep.ini", "--set train.train_size=5000",
          "[target] rhm: train_size + test_size + val_size = 5000 + 1024 + 0 = 6024 exceeds "
          "P_max");
  refused("run", "staircase_resnet.ini", "--set target.k=99",
          "[target] staircase: k = 99 exceeds the input dimension n = 30");
  refused("run", "three_layer_quadratic.ini", "--set target.rank=1",
          "[target] quadratic_features: rank = 1, must be 0 (full) or 2..d");
  /* hiercl sample checks the target before the device too (--out: no file) */
  refused("sample", "staircase_resnet.ini", "--n 3 --set target.k=99",
          "[target] staircase: k = 99 exceeds the input dimension n = 30");
  /* the loss against the target's task, known from the target's check */
  refused("run", "rhm_cnn_sweep.ini", "--set train.loss=mse",
          "[train] loss = mse does not fit a classification target");
}

/* A sweep's dry run calls the checks for every point: one bad point stops
 * the sweep before anything runs or any directory is made. */
static void a_bad_sweep_point_fails_before_anything_runs(void **state) {
  (void)state;
  refused("sweep", "rhm_cnn_sweep.ini", "--grid model.depth=2,5",
          "[model] deep_cnn: depth = 5: input length 4");
  assert_contains(out, "sweep point model.depth=5");
}

/* No false refusals: every shipped config passes every check and stops
 * only at the device (exit 3). */
static void every_shipped_config_passes_the_checks(void **state) {
  (void)state;
  DIR *d = opendir(HCL_TEST_CONFIGS);
  assert_non_null(d);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".ini")) continue;
    char line[4096];
    snprintf(line, sizeof line, "HIERCL_DEVICE=no-such-device %s run %s/%s --out %s/check_ok",
             HCL_TEST_HIERCL, HCL_TEST_CONFIGS, e->d_name, hcl_test_tmpdir());
    int rc = sh(line);
    if (rc != 3 || !strstr(out, "no-such-device"))
      HCL_FAIL_OUT(out, "%s: exit %d (output above)", e->d_name, rc);
    n++;
  }
  closedir(d);
  assert_true(n > 0);
}

/* check() fills the target info without a device; it must be the info
 * create() + info() give (the model is checked against it). */
static void target_check_info_matches_create(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  static const struct {
    const char *name;
    const char *kv[4];
  } cases[] = {{"staircase", {"n=6", "k=2", NULL}}, {"rhm", {"n_c=4", "v=4", "m=2", NULL}},
               {"single_index", {"d=5", NULL}},     {"quadratic_features", {"d=4", NULL}},
               {"low_rank_poly", {"d=3", NULL}},    {"linear_teacher", {"d=7", NULL}}};
  uint64_t seed = 1;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const hcl_plugin_desc *d = hcl_test_plugin(cases[i].name, HCL_PLUGIN_TARGET);
    const hcl_target_vt *vt = d->vt;
    assert_true(vt->struct_size >= offsetof(hcl_target_vt, check) + sizeof vt->check);
    assert_non_null(vt->check);
    hcl_params *p = hcl_test_params(d, "target", cases[i].kv);
    hcl_check_info run = {.struct_size = sizeof run,
                          .replicas = 1,
                          .train_size = 16,
                          .train_size_min = 16,
                          .test_size = 16,
                          .batch = 8,
                          .eval_batch = 16,
                          .steps = 1,
                          .algorithm = "sgd",
                          .loss = "auto"};
    hcl_target_info ci = {.struct_size = sizeof ci}, ti = {.struct_size = sizeof ti};
    char err[1024] = "";
    if (vt->check(p, &run, &ci, err, sizeof err) != HCL_OK) fail_msg("%s: %s", cases[i].name, err);
    hcl_test_params_free(p);
    void *self = NULL;
    if (hcl_test_target_make(ctx, d, cases[i].kv, 1, &seed, 16, 16, 16, &self) != HCL_OK)
      fail_msg("%s create: %s", cases[i].name, hcl_errmsg(ctx));
    assert_int_equal(vt->info(self, &ti), HCL_OK);
    vt->destroy(self);
    assert_int_equal(ci.struct_size, ti.struct_size);
    assert_int_equal(ci.x.rank, ti.x.rank);
    for (uint32_t k = 0; k < ti.x.rank; k++) assert_int_equal(ci.x.dims[k], ti.x.dims[k]);
    assert_int_equal(ci.y_dim, ti.y_dim);
    assert_int_equal(ci.task, ti.task);
    assert_int_equal(ci.n_classes, ti.n_classes);
  }
}

/* A model's check() and create() refuse the same parameters; check()'s line
 * leaves the plugin's name to the runtime. */
static void model_check_and_create_agree(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  const hcl_plugin_desc *d = hcl_test_plugin("deep_cnn", HCL_PLUGIN_MODEL);
  const hcl_model_vt *vt = d->vt;
  hcl_target_info t = {.struct_size = sizeof t,
                       .x = {.rank = 2, .dims = {4, 8}},
                       .y_dim = 1,
                       .task = HCL_TASK_CLASSES,
                       .n_classes = 4};
  hcl_check_info run = {.struct_size = sizeof run, .replicas = 1, .algorithm = "sgd"};
  const char *bad[] = {"width=4", "depth=2", NULL}, *good[] = {"width=4", "depth=3", NULL};
  char err[1024] = "";
  hcl_params *p = hcl_test_params(d, "model", bad);
  assert_int_equal(vt->check(p, &run, &t, err, sizeof err), HCL_ERR_PARAM);
  hcl_test_params_free(p);
  assert_string_equal(err, "depth = 2: input length 8 is not s^L = 2^2 = 4");
  uint64_t seed = 1;
  hcl_test_model m;
  assert_int_equal(hcl_test_model_make(ctx, d, bad, 1, &seed, 4, &t, &m), HCL_ERR_PARAM);
  /* the same line as check(): the runtime adds "[model] deep_cnn:" itself */
  assert_string_equal(hcl_errmsg(ctx), "depth = 2: input length 8 is not s^L = 2^2 = 4");
  p = hcl_test_params(d, "model", good);
  assert_int_equal(vt->check(p, &run, &t, err, sizeof err), HCL_OK);
  hcl_test_params_free(p);
  assert_int_equal(hcl_test_model_make(ctx, d, good, 1, &seed, 4, &t, &m), HCL_OK);
  hcl_test_model_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(model_shape_checks_come_before_the_device),
      cmocka_unit_test(algorithm_checks_come_before_the_run_directory),
      cmocka_unit_test(target_checks_come_before_the_device),
      cmocka_unit_test(a_bad_sweep_point_fails_before_anything_runs),
      cmocka_unit_test(every_shipped_config_passes_the_checks),
      cmocka_unit_test(target_check_info_matches_create),
      cmocka_unit_test(model_check_and_create_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
