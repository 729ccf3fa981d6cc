/* hiercl bench: the JSON a user files and compares across machines. Every
 * row names its device, driver and hiercl version; --compare reads it back. */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char out[1 << 16];

static int sh(const char *cmd) { return hcl_test_sh(cmd, out, sizeof out); }

static const char *device(void) {
  const char *d = getenv("HIERCL_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

static void json_rows_name_their_device(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[4096], path[512];
  snprintf(path, sizeof path, "%s/a.json", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "(%s bench --quick --device %s --only linear_teacher -o json 2>/dev/null) > %s",
           HCL_TEST_HIERCL, device(), path);
  assert_int_equal(sh(cmd), 0);
  /* An independent parser checks the schema: valid JSON, one row, every
   * field a comparison across machines needs, a positive rate. */
  snprintf(
      cmd, sizeof cmd,
      "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
      "assert d[\"schema\"]==\"hiercl-bench/1\", d; r=d[\"rows\"]; assert len(r)==1, r; r=r[0]; "
      "[r[k] for k in (\"hiercl_version\",\"device_id\",\"device\",\"driver\",\"platform\")]; "
      "assert r[\"experiment\"]==\"linear_teacher/r1\" and r[\"ok\"] is True, r; "
      "assert r[\"per_s\"]>0 and r[\"replica_per_s\"]==r[\"per_s\"], r; "
      "assert r[\"gflop_per_s\"]>0 and r[\"peak_device_bytes\"]>0, r; "
      "assert 0<r[\"cpu_s\"] and r[\"replica_per_cpu_s\"]>0, r; "
      "assert r[\"top_kernels\"] and all(k[\"launches\"]>0 for k in r[\"top_kernels\"]), r' %s",
      path);
  assert_int_equal(sh(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s bench --compare %s %s", HCL_TEST_HIERCL, path, path);
  assert_int_equal(sh(cmd), 0);
  assert_non_null(strstr(out, "| linear_teacher/r1 |"));
  assert_non_null(strstr(out, "| 1 |")); /* a file against itself: ratio 1 */
}

static void bad_usage(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s bench -o yaml", HCL_TEST_HIERCL);
  assert_int_equal(sh(cmd), 2);
  assert_non_null(strstr(out, "yaml"));
  const char *bad = hcl_test_write_temp("bad.json", "{\"rows\":[]}\n");
  snprintf(cmd, sizeof cmd, "%s bench --compare %s %s", HCL_TEST_HIERCL, bad, bad);
  assert_int_equal(sh(cmd), 2);
  assert_non_null(strstr(out, "not a hiercl bench JSON file"));
  if (!hcl_test_ctx()) return;
  snprintf(cmd, sizeof cmd, "%s bench --device no-such-device-xyz", HCL_TEST_HIERCL);
  assert_int_equal(sh(cmd), 3);
  assert_non_null(strstr(out, "no-such-device-xyz"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_rows_name_their_device),
      cmocka_unit_test(bad_usage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
