/* hiercl bench: the JSON a user files and compares across machines. Every
 * row names its device, driver and hiercl version; --compare reads it back. */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
           "(%s bench --quick --device %s --only linear_teacher/r1 -o json 2>/dev/null) > %s",
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
      "assert r[\"top_kernels\"] and all(k[\"launches\"]>0 for k in r[\"top_kernels\"]), r; "
      /* one untimed run of the quick pass's length before the first round
       * (PoCL compiles a kernel at its first launch) */
      "assert r[\"warmup_steps\"]==r[\"steps\"]>0, r; "
      /* the device's FMA rate, measured around the round, and the products'
       * share of it (a few GFLOP/s of a tiny net: well under the peak) */
      "p=r[\"fma_peak_gflop_per_s_rounds\"]; assert len(p)==r[\"rounds\"] and p[0]>0, r; "
      "assert r[\"fma_peak_gflop_per_s\"]==p[0], r; "
      "f=r[\"peak_fraction\"]; assert abs(f-r[\"gflop_per_s\"]/p[0])<=1e-4*f and f<1, r; "
      /* the linear teacher's step is one launch on CPUs (set-up adds a few) */
      "assert 0<r[\"launches_per_step\"]<%s, r' %s",
      strcmp(device(), "cpu") ? "1e9" : "2", path);
  assert_int_equal(sh(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s bench --compare %s %s", HCL_TEST_HIERCL, path, path);
  assert_int_equal(sh(cmd), 0);
  assert_non_null(strstr(out, "| linear_teacher/r1 |"));
  assert_non_null(strstr(out, "| 1 |")); /* a file against itself: ratio 1 */
}

/* --repeat N: N rounds, each case's PyTorch twin right after it; the JSON
 * keeps every round and reports medians and ranges. A fake twin (a shell
 * script in place of Python) answers 100 k replica-steps/s in its k-th
 * round (from one thread; slower from more, so the faster is chosen). */
static void repeat_reports_every_round(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[4096], path[512], count[512];
  snprintf(count, sizeof count, "%s/twin_calls", hcl_test_tmpdir());
  remove(count);
  char twin[2048];
  snprintf(twin, sizeof twin,
           "threads=1; while [ $# -gt 0 ]; do [ \"$1\" = --threads ] && threads=$2; shift; done\n"
           "[ \"$threads\" = 1 ] && echo x >> %s\n"
           "k=$(wc -l < %s)\n"
           "[ \"$threads\" = 1 ] && r=$((100 * k)) || r=1\n"
           "echo \"{\\\"implementation\\\": \\\"pytorch fake\\\", \\\"replica_per_s\\\": $r}\"\n",
           count, count);
  const char *script = hcl_test_write_temp("twin.sh", twin);
  snprintf(path, sizeof path, "%s/rep.json", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "(HIERCL_PYTHON=/bin/sh HIERCL_TORCH_SUITE=%s %s bench --quick --device %s --only "
           "linear_teacher/r1 --torch --repeat 3 -o json 2>/dev/null) > %s",
           script, HCL_TEST_HIERCL, device(), path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  /* medians, ranges and ratios recomputed from the rounds by Python */
  snprintf(
      cmd, sizeof cmd,
      "python3 -c 'import json,sys,statistics as st; r=json.load(open(sys.argv[1]))[\"rows\"]; "
      "assert len(r)==1, r; r=r[0]; h=r[\"replica_per_s_rounds\"]; "
      "t=r[\"torch_replica_per_s_rounds\"]; assert r[\"rounds\"]==3 and len(h)==3, r; "
      "assert t==[100,200,300], t; close=lambda a,b: abs(a-b)<=1e-5*abs(b); "
      "assert close(r[\"replica_per_s\"], st.median(h)), r; "
      "assert close(r[\"replica_per_s_range\"][0], min(h)) and "
      "close(r[\"replica_per_s_range\"][1], max(h)), r; "
      "assert r[\"torch_replica_per_s\"]==200 and r[\"torch_replica_per_s_range\"]==[100,300], r; "
      "assert close(r[\"ratio_vs_torch\"], st.median(h)/200), r; q=[a/b for a,b in zip(h,t)]; "
      "assert close(r[\"ratio_vs_torch_range\"][0], min(q)) and "
      "close(r[\"ratio_vs_torch_range\"][1], max(q)), r' %s",
      path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  /* the table shows the ranges */
  snprintf(cmd, sizeof cmd,
           "HIERCL_PYTHON=/bin/sh HIERCL_TORCH_SUITE=%s %s bench --quick --device %s --only "
           "linear_teacher/r1 --torch --repeat 2 2>/dev/null",
           script, HCL_TEST_HIERCL, device());
  remove(count);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  if (!strstr(out, "| 150 (100-200) |")) HCL_FAIL_OUT(out, "no 150 (100-200) in the table");
}

/* A case timed as whole runs (Algorithm 1: features, ridge solves, no
 * steps) reports its products' GFLOP/s per run and their share of the
 * device's FMA rate. */
static void whole_runs_report_gflops(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[4096], path[512];
  snprintf(path, sizeof path, "%s/runs.json", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "(%s bench --quick --device %s --only three_layer_algorithm1/r1 -o json 2>/dev/null) "
           "> %s",
           HCL_TEST_HIERCL, device(), path);
  assert_int_equal(sh(cmd), 0);
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[\"rows\"]; "
           "assert len(r)==1 and r[0][\"unit\"]==\"run\", r; r=r[0]; "
           "assert r[\"runs_per_round\"]==3, r; "
           "assert r[\"gflop_per_s\"]>0 and 0<r[\"peak_fraction\"]<1, r' %s",
           path);
  assert_int_equal(sh(cmd), 0);
  /* Outside --quick, runs until their timed wall reaches 1 s (3 runs were
   * a 70 ms window), and the twin is asked for as long a window; a fake
   * twin records its arguments. */
  char args[512], twin[1024];
  snprintf(args, sizeof args, "%s/twin_args", hcl_test_tmpdir());
  remove(args);
  snprintf(twin, sizeof twin,
           "echo \"$@\" >> %s\n"
           "echo '{\"implementation\": \"pytorch fake\", \"replica_per_s\": 10}'\n",
           args);
  const char *script = hcl_test_write_temp("twin_window.sh", twin);
  snprintf(cmd, sizeof cmd,
           "(HIERCL_PYTHON=/bin/sh HIERCL_TORCH_SUITE=%s %s bench --device %s --only "
           "three_layer_algorithm1/r1 --torch -o json 2>/dev/null) > %s",
           script, HCL_TEST_HIERCL, device(), path);
  assert_int_equal(sh(cmd), 0);
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[\"rows\"][0]; "
           "assert r[\"runs_per_round\"]>=3 and r[\"timed_s\"]>=1.0, r; "
           "a=open(sys.argv[2]).read().split(\"\\n\"); assert len(a)>=2 and "
           "all(\"--min-seconds 1\" in l for l in a if l), a' %s %s",
           path, args);
  assert_int_equal(sh(cmd), 0);
}

/* A row with replicas reports what they buy: its replica rate over the same
 * experiment's R = 1 rate, round by round (the rounds alternate), and per
 * CPU second; every row, the process's CPU seconds per wall second. */
static void replica_gain_against_r1(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[4096], path[512];
  snprintf(path, sizeof path, "%s/gain.json", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "(%s bench --quick --device %s --only rhm_fcn --repeat 3 -o json 2>/dev/null) > %s",
           HCL_TEST_HIERCL, device(), path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys,os,statistics as st; r=json.load(open(sys.argv[1]))"
           "[\"rows\"]; assert [x[\"replicas\"] for x in r]==[1,8], r; a,b=r; "
           "close=lambda x,y: abs(x-y)<=1e-4*abs(y); assert \"replica_gain\" not in a, a; "
           "h,g=a[\"replica_per_s_rounds\"],b[\"replica_per_s_rounds\"]; q=[y/x for x,y in "
           "zip(h,g)]; assert close(b[\"replica_gain\"], st.median(g)/st.median(h)), b; "
           "assert close(b[\"replica_gain_range\"][0], min(q)) and "
           "close(b[\"replica_gain_range\"][1], max(q)), b; "
           "assert close(b[\"replica_cpu_gain\"], "
           "b[\"replica_per_cpu_s\"]/a[\"replica_per_cpu_s\"]), b; "
           "assert all(0<x[\"cpu_busy_range\"][0]<=x[\"cpu_busy\"]<=x[\"cpu_busy_range\"][1]"
           "<=1.05*os.cpu_count() for x in r), r' %s",
           path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  /* alone, a row with replicas has no R = 1 row to be compared with; the
   * CSV's rows have the header's columns, the gain in the R = 8 row only */
  snprintf(cmd, sizeof cmd,
           "(%s bench --quick --device %s --only rhm_fcn/r8 -o json 2>/dev/null) > %s",
           HCL_TEST_HIERCL, device(), path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[\"rows\"]; "
           "assert len(r)==1 and \"replica_gain\" not in r[0] and r[0][\"cpu_busy\"]>0, r' %s",
           path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  snprintf(path, sizeof path, "%s/gain.csv", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd, "(%s bench --quick --device %s --only rhm_fcn -o csv 2>/dev/null) > %s",
           HCL_TEST_HIERCL, device(), path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); "
           "assert len(r)==2 and all(None not in x and None not in x.values() for x in r), r; "
           "assert r[0][\"replica_gain\"]==\"\" and float(r[1][\"replica_gain\"])>0, r; "
           "assert float(r[1][\"replica_gain_min\"])<=float(r[1][\"replica_gain_max\"]), r; "
           "assert all(float(x[\"cpu_busy\"])>0 and float(x[\"gflop_per_s\"])>0 for x in r), r' %s",
           path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
}

/* --device SEL/N.I: a row of its own, named by the part, beside the whole
 * device's; the PyTorch twin of a CPU part gets no more threads than the
 * part has cores (a fake twin that is faster on more threads shows which
 * count was taken). SEL/N, all the parts, is refused: a row times one. */
static void part_rows(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx || strcmp(device(), "cpu")) skip();
  unsigned cu = ctx->dev.compute_units;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cu < 2 || cu % 2 || cores < 2) skip();
  const char *script = hcl_test_write_temp(
      "twin_threads.sh",
      "threads=1; while [ $# -gt 0 ]; do [ \"$1\" = --threads ] && threads=$2; shift; done\n"
      "echo \"{\\\"implementation\\\": \\\"pytorch fake\\\", \\\"replica_per_s\\\": "
      "$((100 * threads))}\"\n");
  char cmd[4096], path[512];
  snprintf(path, sizeof path, "%s/part.json", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "(HIERCL_PYTHON=/bin/sh HIERCL_TORCH_SUITE=%s %s bench --quick --device cpu --device "
           "cpu/2.1 --only linear_teacher/r1 --torch -o json 2>/dev/null) > %s",
           script, HCL_TEST_HIERCL, path);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[\"rows\"]; "
           "assert len(r)==2, r; w,p=r; assert w[\"device_id\"]==sys.argv[2], w; "
           "assert p[\"device_id\"]==sys.argv[2]+\"/2.1\", p; "
           "assert p[\"ok\"] and p[\"replica_per_s\"]>0 and p[\"fma_peak_gflop_per_s\"]>0, p; "
           "assert p[\"torch_threads\"]==1 and p[\"torch_replica_per_s\"]==100, p; "
           "assert w[\"torch_threads\"]==min(%ld,%u), w' %s '%s'",
           cores, cu, path, ctx->dev.id);
  if (sh(cmd) != 0) HCL_FAIL_OUT(out, "exit status not 0");
  snprintf(cmd, sizeof cmd, "%s bench --quick --device cpu/2 --only linear_teacher/r1",
           HCL_TEST_HIERCL);
  assert_int_equal(sh(cmd), 3);
  if (!strstr(out, "--device cpu/2: a part is SEL/N.I")) HCL_FAIL_OUT(out, "no message");
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
  snprintf(cmd, sizeof cmd, "%s bench --repeat 0", HCL_TEST_HIERCL);
  assert_int_equal(sh(cmd), 2);
  assert_non_null(strstr(out, "--repeat '0'"));
  snprintf(cmd, sizeof cmd, "%s bench --only no-such-case", HCL_TEST_HIERCL);
  assert_int_equal(sh(cmd), 2);
  assert_non_null(strstr(out, "--only 'no-such-case' names no case"));
  assert_non_null(strstr(out, "rhm_cnn/r1,"));
  if (!hcl_test_ctx()) return;
  snprintf(cmd, sizeof cmd, "%s bench --device no-such-device-xyz", HCL_TEST_HIERCL);
  assert_int_equal(sh(cmd), 3);
  assert_non_null(strstr(out, "no-such-device-xyz"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_rows_name_their_device),
      cmocka_unit_test(repeat_reports_every_round),
      cmocka_unit_test(whole_runs_report_gflops),
      cmocka_unit_test(replica_gain_against_r1),
      cmocka_unit_test(part_rows),
      cmocka_unit_test(bad_usage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
