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
static int sh(const char *cmd) { /* cmd: at most 8192 bytes */
  char full[8300];
  if ((size_t)snprintf(full, sizeof full, "%s 2>&1", cmd) >= sizeof full)
    fail_msg("command too long");
  FILE *p = popen(full, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

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
  if (rc != 2) fail_msg("%s: exit %d, expected 2: %s", line, rc, out);
  snprintf(msg, sizeof msg, "%s: %s", path, want);
  assert_contains(out, msg);
  if (strstr(out, "no-such-device")) fail_msg("the device was reached: %s", out);
  struct stat st;
  if (stat(dir, &st) == 0) fail_msg("%s: %s was made", line, dir);
}

static void model_shape_checks_come_before_the_device(void **state) {
  (void)state;
  /* deep_cnn: depth against the RHM's input length (was: create(), after the device) */
  refused("run", "rhm_cnn_sweep.ini", "--set model.depth=5",
          "[model] deep_cnn: depth = 5: input length 4 is not s^L = 2^5 = 32");
  /* the plugin's own name is not repeated */
  if (strstr(out, "deep_cnn: deep_cnn:")) fail_msg("name twice: %s", out);
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
    if (rc != 3 || !strstr(out, "no-such-device")) fail_msg("%s: exit %d: %s", e->d_name, rc, out);
    n++;
  }
  closedir(d);
  assert_true(n > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(model_shape_checks_come_before_the_device),
      cmocka_unit_test(algorithm_checks_come_before_the_run_directory),
      cmocka_unit_test(target_checks_come_before_the_device),
      cmocka_unit_test(a_bad_sweep_point_fails_before_anything_runs),
      cmocka_unit_test(every_shipped_config_passes_the_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
