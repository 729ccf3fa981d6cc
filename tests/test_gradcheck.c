/* hiercl gradcheck: a model's backward() against finite differences. A
 * fixture model with a wrong gradient for one block (tests/fixtures/plugins/
 * wrong_grad.c) must fail naming that block; every built-in model must pass
 * on every config in configs/. */
#include "hcl_test.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[65536];

static const char fixture_ini[] = "[target]\nplugin = staircase\nn = 6\nk = 2\n"
                                  "[model]\nplugin = wrong_grad\nwidth = 8\n"
                                  "[train]\nbatch = 8\nsteps = 10\n"
                                  "[eval]\ntest_size = 16\n";

/* hiercl gradcheck on the fixture with [model] wrong = `wrong`; returns the exit status. */
static int fixture_cli(const char *wrong) {
  const char *p = hcl_test_write_temp("wrong_grad.ini", fixture_ini);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s gradcheck %s --plugin-path %s/gradcheck --set model.wrong=%s --device cpu",
           HCL_TEST_HIERCL, p, HCL_TEST_FIXTURE_PLUGINS, wrong);
  return hcl_test_sh(cmd, out, sizeof out);
}

static void wrong_block_is_named(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  assert_int_equal(fixture_cli("bias"), 1);
  assert_non_null(strstr(out, "[model] wrong_grad: block 'bias'"));
  assert_non_null(strstr(out, "it is 1.5 times the finite differences"));
  assert_int_equal(fixture_cli("weight"), 1);
  assert_non_null(strstr(out, "block 'weight'"));
  assert_int_equal(fixture_cli("readout"), 1);
  assert_non_null(strstr(out, "block 'readout'"));
  assert_int_equal(fixture_cli("none"), 0);
  assert_non_null(strstr(out, "gradcheck passed: wrong_grad"));
}

/* Through the library: the wrong block's error is what a gradient 1.5 times
 * too large gives, |1.5 g - g| / (1.5 max |g|) = 1/3, and the right blocks'
 * errors are float32 rounding. */
static void error_measures_the_mistake(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp("wrong_grad2.ini", fixture_ini);
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/gradcheck", HCL_TEST_FIXTURE_PLUGINS);
  const char *sets[] = {"model.wrong=weight", "runtime.device=cpu"};
  hcl_gradcheck_options o = {
      .run = {.config_path = p, .sets = sets, .n_sets = 2, .plugin_path = dir},
      .replicas = 3,
      .samples = 5};
  hcl_gradcheck_block *b = NULL;
  size_t n = 0;
  char err[4096], model[64];
  hcl_status rc = hcl_gradcheck(&o, &b, &n, model, sizeof model, err, sizeof err);
  if (rc != HCL_OK) fail_msg("%s", err);
  assert_string_equal(model, "wrong_grad");
  assert_int_equal(n, 4);
  assert_string_equal(b[0].name, "weight");
  assert_true(fabs(b[0].max_rel - 1.0 / 3.0) < 5e-3);
  assert_int_equal(b[0].checked, 16);         /* 8 x 6 weights: 16 of them */
  assert_true(fabs(b[0].ratio - 1.5) < 1e-2); /* a constant factor, told as such */
  for (size_t i = 1; i < 4; i++) {
    assert_true(b[i].trainable);
    assert_true(b[i].max_rel < 1e-3);
    assert_true(b[i].max_grad > 0);
    assert_true(isnan(b[i].ratio));
  }
  assert_int_equal(b[3].checked, 1); /* a block smaller than 16: every coordinate */
  free(b);
}

static void usage_errors(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s gradcheck %s/quickstart.ini --replicas 1", HCL_TEST_HIERCL,
           HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2);
  assert_non_null(strstr(out, "--replicas"));
  snprintf(cmd, sizeof cmd, "%s gradcheck", HCL_TEST_HIERCL);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2);
  assert_non_null(strstr(out, "missing CONFIG"));
  if (!hcl_test_ctx()) return;
  snprintf(cmd, sizeof cmd, "%s gradcheck %s/quickstart.ini --samples 20000", HCL_TEST_HIERCL,
           HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2);
  assert_non_null(strstr(out, "--samples 20000"));
}

/* Every built-in model on every shipped config, as configured (deep_cnn's
 * lr_factor = width is a learning-rate factor, not part of its gradient). */
static void builtin_models_pass_on_every_config(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  DIR *d = opendir(HCL_TEST_CONFIGS);
  assert_non_null(d);
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".ini")) continue;
    char path[2048], cmd[4096];
    snprintf(path, sizeof path, "%s/%s", HCL_TEST_CONFIGS, e->d_name);
    snprintf(cmd, sizeof cmd, "%s gradcheck %s --device cpu", HCL_TEST_HIERCL, path);
    int rc = hcl_test_sh(cmd, out, sizeof out);
    if (rc != 0) HCL_FAIL_OUT(out, "%s: exit %d (output above)", e->d_name, rc);
    assert_non_null(strstr(out, "gradcheck passed"));
    n++;
  }
  closedir(d);
  assert_true(n >= 10);
  /* lr_factor = width forced on a standard-parametrisation net: still the true gradient */
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s gradcheck %s/rhm_cnn_reference.ini --device cpu --set model.param=standard --set "
           "model.lr_factor=width --set model.bias=shared",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS);
  int rc = hcl_test_sh(cmd, out, sizeof out);
  if (rc != 0) HCL_FAIL_OUT(out, "lr_factor = width: exit %d (output above)", rc);
  assert_non_null(strstr(out, "gradcheck passed"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(wrong_block_is_named),
      cmocka_unit_test(error_measures_the_mistake),
      cmocka_unit_test(usage_errors),
      cmocka_unit_test(builtin_models_pass_on_every_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
