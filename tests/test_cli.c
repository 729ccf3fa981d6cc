/* The `hiercl` command as a user meets it: exit statuses, one-line errors,
 * commands that must not need a device or compile anything. */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char out[65536];

static void help_and_usage(void **state) {
  (void)state;
  assert_int_equal(hcl_test_sh(HCL_TEST_HIERCL " --help", out, sizeof out), 0);
  assert_non_null(strstr(out, "usage: hiercl"));
  assert_int_equal(hcl_test_sh(HCL_TEST_HIERCL " frobnicate", out, sizeof out), 2);
  assert_non_null(strstr(out, "frobnicate"));
  assert_int_equal(hcl_test_sh(HCL_TEST_HIERCL " run", out, sizeof out), 2);
}

static void no_device_is_exit_3(void **state) {
  (void)state;
  /* an ICD directory with no vendor: the loader finds no platform */
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "OCL_ICD_VENDORS=%s/empty-icd OCL_ICD_FILENAMES= %s devices",
           hcl_test_tmpdir(), HCL_TEST_HIERCL);
  char mk[600];
  snprintf(mk, sizeof mk, "mkdir -p %s/empty-icd", hcl_test_tmpdir());
  assert_int_equal(system(mk), 0);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 3);
  assert_non_null(strstr(out, "no OpenCL device"));
}

static void devices_list_and_bad_selector(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  assert_int_equal(hcl_test_sh(HCL_TEST_HIERCL " devices", out, sizeof out), 0);
  assert_non_null(strstr(out, ":cpu:0"));
  assert_int_equal(hcl_test_sh(HCL_TEST_HIERCL " devices --json", out, sizeof out), 0);
  assert_true(out[0] == '[');
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s run %s/staircase_resnet.ini --device no-such-device-xyz",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 3);
  assert_non_null(strstr(out, "no-such-device-xyz"));
  assert_non_null(strstr(out, "candidates"));
}

static void bad_config_one_line_exit_2(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp("bad.ini", "[target]\nplugin = staircase\nn = 10\nk = 3\n"
                                                 "[model]\nplugin = resnet\nwidht = 3\n");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s run %s --out %s", HCL_TEST_HIERCL, p, hcl_test_tmpdir());
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2);
  assert_non_null(strstr(out, "bad.ini"));
  assert_non_null(strstr(out, "widht"));
  assert_non_null(strstr(out, "[model]"));
  /* one line: the error ends with the only newline */
  char *nl = strchr(out, '\n');
  assert_non_null(nl);
  assert_int_equal(nl[1], 0);
}

/* A config naming a plugin whose file did not load: the one error line
 * says why that file was rejected, not only that the plugin is missing. */
static void rejected_plugin_says_why(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char dir[1024], cmd[2400];
  snprintf(dir, sizeof dir, "%s/rejected", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' && printf 'not an ELF' > '%s/mymodel.so'", dir, dir);
  assert_int_equal(system(cmd), 0);
  const char *p = hcl_test_write_temp("rej.ini", "[target]\nplugin = staircase\nn = 10\nk = 3\n"
                                                 "[model]\nplugin = mymodel\n");
  snprintf(cmd, sizeof cmd, "%s run %s --plugin-path %s --out %s", HCL_TEST_HIERCL, p, dir,
           hcl_test_tmpdir());
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2);
  assert_non_null(strstr(out, "plugin 'mymodel' not found"));
  assert_non_null(strstr(out, "; rejected: "));
  assert_non_null(strstr(out, "/mymodel.so: "));
  assert_int_equal(strchr(out, '\n')[1], 0); /* one line */
}

static void sample_writes_csv_and_npy(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp("s.ini", "[target]\nplugin = staircase\nn = 4\nk = 2\n"
                                               "[model]\nplugin = resnet\n");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s sample %s --n 5 --device cpu", HCL_TEST_HIERCL, p);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "x0,x1,x2,x3,y0\n"));
  int lines = 0;
  for (char *c = out; *c; c++) lines += *c == '\n';
  assert_int_equal(lines, 6);
  char npy[600];
  snprintf(npy, sizeof npy, "%s/s.npy", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd, "%s sample %s --n 7 --format npy --out %s --device cpu",
           HCL_TEST_HIERCL, p, npy);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  char *data = hcl_test_read_file(npy);
  assert_non_null(data);
  assert_memory_equal(data, "\x93NUMPY\x01\x00", 8);
  unsigned hl = (unsigned char)data[8] | (unsigned char)data[9] << 8;
  assert_int_equal((10 + hl) % 64, 0);
  assert_non_null(strstr(data + 10, "'shape': (7, 5)"));
  /* the first sample's y equals the CSV's: same data, two formats */
  float row[5];
  memcpy(row, data + 10 + hl, sizeof row);
  for (int j = 0; j < 4; j++) assert_true(row[j] == 1.0f || row[j] == -1.0f);
  free(data);
}

/* Every shipped config is valid: its keys, values and plugins check out. */
/* With stderr not a terminal (nohup, Slurm, CI) a run prints plain progress
 * lines, one per HIERCL_PROGRESS_EVERY seconds, ending with its last step; a
 * malformed interval is one error line before anything trains. */
static void log_gets_progress_lines(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *q = "--set train.steps=400 --set eval.every=100 --set eval.test_size=64";
  assert_int_equal(hcl_test_shf(out, sizeof out,
                                "HIERCL_PROGRESS_EVERY=0.000001 %s run %s/quickstart.ini %s "
                                "--out %s/progress",
                                HCL_TEST_HIERCL, HCL_TEST_CONFIGS, q, hcl_test_tmpdir()),
                   0);
  size_t lines = 0;
  for (const char *p = out; (p = strstr(p, "hiercl:  step ")); p++) lines++;
  assert_true(lines >= 4); /* one per evaluation at least, not a redrawn line */
  assert_non_null(strstr(out, "step 400/400"));
  assert_null(strchr(out, '\r'));
  /* the default interval (30 s) keeps a short run's log to its own lines */
  assert_int_equal(hcl_test_shf(out, sizeof out, "%s run %s/quickstart.ini %s --out %s/progress",
                                HCL_TEST_HIERCL, HCL_TEST_CONFIGS, q, hcl_test_tmpdir()),
                   0);
  assert_null(strstr(out, "step 400/400"));
  assert_int_equal(hcl_test_shf(out, sizeof out,
                                "HIERCL_PROGRESS_EVERY=soon %s run %s/quickstart.ini",
                                HCL_TEST_HIERCL, HCL_TEST_CONFIGS),
                   2);
  assert_non_null(strstr(out, "HIERCL_PROGRESS_EVERY=soon"));
  assert_int_equal(strchr(out, '\n')[1], 0);
}

static void shipped_configs_validate(void **state) {
  (void)state;
  FILE *ls = popen("ls " HCL_TEST_CONFIGS "/*.ini", "r");
  assert_non_null(ls);
  char path[1024];
  int n = 0;
  while (fgets(path, sizeof path, ls)) {
    path[strcspn(path, "\n")] = 0;
    hcl_run_options o = {.config_path = path, .plugin_path = HCL_TEST_PLUGIN_DIR, .dry_run = 1};
    char err[4096];
    if (hcl_run(&o, err, sizeof err) != HCL_OK) fail_msg("%s: %s", path, err);
    n++;
  }
  pclose(ls);
  assert_true(n >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_and_usage),
      cmocka_unit_test(no_device_is_exit_3),
      cmocka_unit_test(devices_list_and_bad_selector),
      cmocka_unit_test(bad_config_one_line_exit_2),
      cmocka_unit_test(rejected_plugin_says_why),
      cmocka_unit_test(sample_writes_csv_and_npy),
      cmocka_unit_test(log_gets_progress_lines),
      cmocka_unit_test(shipped_configs_validate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
