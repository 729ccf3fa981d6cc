/* Every error a plugin raises names the plugin once, "FILE: [section]
 * name: ...", whichever vtable entry raised it (create, train, forward,
 * sample, ...); the runtime's own errors keep their wording. */
#include "hcl_test.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

static char out[65536];

/* How often `word` occurs in the line of `text` that starts at `line`. */
static int count_in_line(const char *line, const char *word) {
  const char *end = strchr(line, '\n');
  int n = 0;
  for (const char *p = strstr(line, word); p && (!end || p < end); p = strstr(p + 1, word)) n++;
  return n;
}

/* The error line (after "hiercl: error: ") of the command's output. */
static const char *error_line(void) {
  const char *e = strstr(out, "error: ");
  assert_non_null(e);
  return e + strlen("error: ");
}

/* host->fail as a plugin calls it: the model's name outside a target call,
 * the target's inside one (nested calls restore the model), the file
 * first, a leading "name: " of the plugin's own dropped; hcl_fail (the
 * runtime's own errors) is not attributed. */
static void host_fail_names_the_plugin_being_called(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  const hcl_host_api *host = hcl_host_api_get();
  ctx->plugin_file = "a.ini";
  ctx->plugin_target = "rhm";
  ctx->plugin_model = "deep_cnn";
  (host->fail)(ctx, HCL_ERR_PARAM, "batch %d too large", 7);
  assert_string_equal(hcl_errmsg(ctx), "a.ini: [model] deep_cnn: batch 7 too large");
  (host->fail)(ctx, HCL_ERR_PARAM, "deep_cnn: old style");
  assert_string_equal(hcl_errmsg(ctx), "a.ini: [model] deep_cnn: old style");
  hcl_target_enter(ctx);
  (host->fail)(ctx, HCL_ERR_PARAM, "bad stream %u", 3u);
  assert_string_equal(hcl_errmsg(ctx), "a.ini: [target] rhm: bad stream 3");
  assert_int_equal(hcl_target_leave(ctx, HCL_ERR_IO), HCL_ERR_IO);
  (host->fail)(ctx, HCL_ERR_PARAM, "after");
  assert_string_equal(hcl_errmsg(ctx), "a.ini: [model] deep_cnn: after");
  hcl_fail(ctx, HCL_ERR_NUMERIC, "loss is NaN at step 3");
  assert_string_equal(hcl_errmsg(ctx), "loss is NaN at step 3");
  assert_int_equal(ctx->errmsg_plugin, 0);
  ctx->plugin_file = ctx->plugin_target = ctx->plugin_model = NULL;
  (host->fail)(ctx, HCL_ERR_PARAM, "no run");
  assert_string_equal(hcl_errmsg(ctx), "no run");
}

/* A train()-time error of an in-tree model (three_layer's ridge, which no
 * longer writes its name): the file, section and name, once. */
static void train_error_names_the_model_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp(
      "ridge_err.ini", "[target]\nplugin = single_index\nd = 4\n[model]\nplugin = three_layer\n"
                       "m1 = 8\nm2 = 64\nlambda = 0\n[train]\nalgorithm = ridge\ntrain_size = 4\n"
                       "batch = 4\n[eval]\nevery = 0\ntest_size = 8\n");
  char cmd[2048], want[1200];
  snprintf(cmd, sizeof cmd, "%s run %s --quiet --device cpu --out %s/ridge_err_runs",
           HCL_TEST_HIERCL, p, hcl_test_tmpdir());
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 1);
  snprintf(want, sizeof want, "%s: [model] three_layer: algorithm ridge: the ridge system", p);
  const char *e = error_line();
  if (strncmp(e, want, strlen(want))) HCL_FAIL_OUT(out, "want '%s...' in (output above)", want);
  assert_int_equal(count_in_line(e, "three_layer"), 1);
}

/* A plugin that still writes its own "name: " in train() (the fixture
 * ridge_linear) gets it once too. */
static void old_style_train_error_gets_the_name_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp(
      "rl_err.ini", "[target]\nplugin = single_index\nd = 4\nlink = he1\n[model]\n"
                    "plugin = ridge_linear\n[train]\nalgorithm = ridge\nsteps = 1\nbatch = 4\n"
                    "train_size = 0\n[eval]\nevery = 0\ntest_size = 8\n");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s run %s --quiet --device cpu --plugin-path %s:%s/ridge --out %s/rl",
           HCL_TEST_HIERCL, p, HCL_TEST_PLUGIN_DIR, HCL_TEST_FIXTURE_PLUGINS, hcl_test_tmpdir());
  assert_int_not_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  const char *e = error_line();
  if (!strstr(e, "[model] ridge_linear: ridge needs [train] train_size"))
    HCL_FAIL_OUT(out, "no '[model] ridge_linear: ridge needs' in (output above)");
  assert_int_equal(count_in_line(e, "ridge_linear"), 1);
}

/* In a sweep (a worker thread with its own session and ctx, reused from
 * point to point), the failed point's record names the plugin once and the
 * other point completes. */
static void sweep_error_names_the_model_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp(
      "ridge_sweep.ini", "[target]\nplugin = single_index\nd = 4\n[model]\nplugin = three_layer\n"
                         "m1 = 8\nm2 = 64\n[train]\nalgorithm = ridge\ntrain_size = 4\n"
                         "batch = 4\n[eval]\nevery = 0\ntest_size = 8\n");
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s sweep %s --grid model.lambda=0,1 --device cpu --out %s/ridge_sweep && exit 9; "
           "cat %s/ridge_sweep/sweep_ridge_sweep_*/sweep.jsonl",
           HCL_TEST_HIERCL, p, hcl_test_tmpdir(), hcl_test_tmpdir());
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  const char *e = strstr(out, "\"error\":\"");
  if (!e || !strstr(e, "[model] three_layer: algorithm ridge:"))
    HCL_FAIL_OUT(out, "no error record (output above)");
  assert_int_equal(count_in_line(e, "three_layer"), 1);
  if (!strstr(out, "\"status\":\"completed\""))
    HCL_FAIL_OUT(out, "no completed point (output above)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(host_fail_names_the_plugin_being_called),
      cmocka_unit_test(train_error_names_the_model_once),
      cmocka_unit_test(old_style_train_error_gets_the_name_once),
      cmocka_unit_test(sweep_error_names_the_model_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
