/* The plugin SDK of include/hiercl/plugin.h (views, struct-size checks,
 * enum parameters as indices) and the runtime's side of it: a plugin's
 * error carries its name once. */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[65536];

static void views_stride_over_replicas(void **state) {
  (void)state;
  hcl_buf b = {NULL, 8, 4000};
  hcl_buf v = hcl_view(b, 3, 5);
  assert_int_equal(v.offset, 8 + 3 * sizeof(float));
  assert_int_equal(v.size, 5 * sizeof(float));
  /* block at 10, 4 floats, in each of R = 3 replicas of 100 floats: 2 * 100 + 4 */
  hcl_buf p = hcl_pview(b, 3, 100, 10, 4);
  assert_int_equal(p.offset, 8 + 10 * sizeof(float));
  assert_int_equal(p.size, 204 * sizeof(float));
  hcl_shape s = {.rank = 2, .dims = {3, 7}};
  assert_int_equal(hcl_shape_size(&s), 21);
}

static void struct_has_reads_the_size(void **state) {
  (void)state;
  hcl_host_api h;
  memset(&h, 0, sizeof h);
  h.struct_size = (uint32_t)offsetof(hcl_host_api, should_stop); /* an older runtime */
  assert_true(HCL_STRUCT_HAS(&h, hcl_host_api, rng_draw));
  assert_false(HCL_STRUCT_HAS(&h, hcl_host_api, should_stop));
  h.struct_size = sizeof h;
  assert_true(HCL_STRUCT_HAS(&h, hcl_host_api, mem_check));
}

static void enum_values_come_back_as_indices(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const hcl_plugin_desc *d = hcl_test_plugin("regular_net", HCL_PLUGIN_MODEL);
  const char *kv[] = {"activation=tanh", "readout=all", NULL};
  hcl_params *p = hcl_test_params(d, "model", kv);
  static const char *const acts[] = {"relu", "leaky_relu", "quadratic", "tanh", "identity", NULL};
  static const char *const readouts[] = {"last", "all", NULL};
  static const char *const other[] = {"x", "y", NULL};
  const hcl_host_api *host = hcl_host_api_get();
  assert_int_equal(hcl_param_choice(host, p, "activation", acts), 3);
  assert_int_equal(hcl_param_choice(host, p, "readout", readouts), 1);
  assert_int_equal(hcl_param_choice(host, p, "init", other), -1);
  hcl_test_params_free(p);
}

/* A plugin that still writes "regular_net: ..." gets "[model] regular_net:"
 * once (it was "[model] regular_net: regular_net: ..."). */
static void plugin_name_appears_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "HIERCL_DEVICE_MEM_LIMIT=30000000 %s run %s/staircase_regular_scd.ini --device cpu "
           "--set model.width=4000 --set train.steps=1 --out %s",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS, hcl_test_tmpdir());
  assert_int_not_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  const char *at = strstr(out, "[model] regular_net: ");
  assert_non_null(at);
  assert_null(strstr(at + strlen("[model] regular_net: "), "regular_net: "));
  assert_non_null(strstr(out, "activations of [model]"));
}

/* Count of non-overlapping occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + strlen(needle), needle)) n++;
  return n;
}

/* Environment variables are HIERCL_*; an old HCL_* name still works, with
 * one deprecation line per process however often it is read. */
static void old_environment_names_warn_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[2048];
  const char *run = "%s %s sample %s/quickstart.ini --n 2 --device cpu";
  snprintf(cmd, sizeof cmd, run, "HIERCL_LOG=error", HCL_TEST_HIERCL, HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_null(strstr(out, "hiercl: note:")); /* the level applies */
  assert_null(strstr(out, "deprecated"));
  snprintf(cmd, sizeof cmd, run, "HCL_LOG=error", HCL_TEST_HIERCL, HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_null(strstr(out, "hiercl: note:")); /* the old name still sets it */
  assert_int_equal(count(out, "HCL_LOG is deprecated; set HIERCL_LOG instead"), 1);
  snprintf(cmd, sizeof cmd, run, "HCL_LOG=error HIERCL_LOG=info", HCL_TEST_HIERCL,
           HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "hiercl: note:")); /* the new name wins, silently */
  assert_null(strstr(out, "deprecated"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(views_stride_over_replicas),
      cmocka_unit_test(struct_has_reads_the_size),
      cmocka_unit_test(enum_values_come_back_as_indices),
      cmocka_unit_test(plugin_name_appears_once),
      cmocka_unit_test(old_environment_names_warn_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
