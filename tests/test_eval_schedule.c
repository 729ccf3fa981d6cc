/* [eval] every: integer intervals and log:N, against an independent
 * computation; parsing; and end to end, the steps of metrics.jsonl.
 * [eval] val_size: val_loss on the validation stream. */
#include "hcl_test.h"
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The log schedule computed independently: {0} and the distinct values of
 * llround(exp(k log T / (N-1))), k = 0..N-1, ascending (an insertion sort,
 * with no assumption that the values are monotone). */
static size_t ref_log(uint64_t T, uint32_t N, uint64_t *out) {
  size_t n = 0;
  out[n++] = 0;
  for (uint32_t k = 0; k < N && T; k++) {
    uint64_t s = (uint64_t)llround(exp((double)k * log((double)T) / (double)(N - 1)));
    int seen = 0;
    for (size_t i = 0; i < n; i++) seen |= out[i] == s;
    if (seen) continue;
    size_t i = n++;
    while (i > 0 && out[i - 1] > s) {
      out[i] = out[i - 1];
      i--;
    }
    out[i] = s;
  }
  return n;
}

static int member(const uint64_t *a, size_t n, uint64_t s) {
  for (size_t i = 0; i < n; i++)
    if (a[i] == s) return 1;
  return 0;
}

static void test_log_schedule(void **state) {
  (void)state;
  static const struct {
    uint64_t T;
    uint32_t N;
  } cases[] = {{1, 2},    {2, 40},    {10, 5},     {50, 10},     {100, 40},
               {1000, 2}, {5000, 40}, {20000, 40}, {100000, 25}, {1000000, 100}};
  uint64_t want[256], got[256];
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    uint64_t T = cases[c].T;
    uint32_t N = cases[c].N;
    size_t nw = ref_log(T, N, want);
    size_t ng = hcl_eval_steps(0, N, T, got, 256);
    if (ng != nw)
      fail_msg("T = %llu, N = %u: %zu steps, expected %zu", (unsigned long long)T, N, ng, nw);
    for (size_t i = 0; i < nw; i++)
      if (got[i] != want[i])
        fail_msg("T = %llu, N = %u: step %zu is %llu, expected %llu", (unsigned long long)T, N, i,
                 (unsigned long long)got[i], (unsigned long long)want[i]);
    /* 0, 1 and T always; at most N + 1 distinct steps; strictly increasing */
    assert_true(want[0] == 0 && member(want, nw, 1) && member(want, nw, T));
    assert_true(nw <= (size_t)N + 1);
    for (size_t i = 1; i < ng; i++) assert_true(got[i] > got[i - 1]);
    /* the trainer's per-step test agrees with the list (all steps for small T) */
    uint64_t upto = T <= 200000 ? T + 2 : 0;
    for (uint64_t s = 0; s < upto; s++)
      if (hcl_eval_due(0, N, T, s) != member(want, nw, s))
        fail_msg("T = %llu, N = %u: due(%llu) = %d", (unsigned long long)T, N,
                 (unsigned long long)s, hcl_eval_due(0, N, T, s));
    for (size_t i = 0; i < nw; i++) assert_true(hcl_eval_due(0, N, T, want[i]));
  }
  /* log:40 over 5000 steps: about 40 evaluations, most of them early */
  size_t n = ref_log(5000, 40, want);
  assert_true(n >= 30 && n <= 41);
  size_t early = 0;
  for (size_t i = 0; i < n; i++) early += want[i] < 500;
  assert_true(early > n / 2);
}

static void test_integer_schedule(void **state) {
  (void)state;
  uint64_t got[64];
  /* every 20 over 50 steps: 0, 20, 40 and the closing 50 */
  assert_int_equal(hcl_eval_steps(20, 0, 50, got, 64), 4);
  assert_true(got[0] == 0 && got[1] == 20 && got[2] == 40 && got[3] == 50);
  assert_int_equal(hcl_eval_steps(25, 0, 50, got, 64), 3);
  assert_true(got[2] == 50);
  assert_int_equal(hcl_eval_steps(0, 0, 50, got, 64), 2); /* start and end */
  for (uint64_t s = 0; s < 100; s++) {
    assert_int_equal(hcl_eval_due(20, 0, 50, s), s % 20 == 0);
    assert_int_equal(hcl_eval_due(0, 0, 50, s), s == 0);
  }
}

static void test_parse(void **state) {
  (void)state;
  uint64_t every = 7;
  uint32_t lp = 7;
  assert_int_equal(hcl_eval_every_parse("1000", &every, &lp), 0);
  assert_true(every == 1000 && lp == 0);
  assert_int_equal(hcl_eval_every_parse("0", &every, &lp), 0);
  assert_true(every == 0 && lp == 0);
  assert_int_equal(hcl_eval_every_parse("log:40", &every, &lp), 0);
  assert_true(every == 0 && lp == 40);
  const char *bad[] = {
      "",    "log:", "log:1", "log:0", "log:-3", "log:4x",           "-5",
      "1e3", "12 ",  " 12",   "lin:4", "log: 4", "2000000000000000", "log:2000000"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (hcl_eval_every_parse(bad[i], &every, &lp) == 0) fail_msg("'%s' accepted", bad[i]);
}

/* ---- end to end ------------------------------------------------------------ */

static const char *cfg = "[run]\nseed = 1\n"
                         "[target]\nplugin = staircase\nn = 6\nk = 2\n"
                         "[model]\nplugin = resnet\nwidth = 8\ndepth = 2\n"
                         "[train]\nsteps = 300\nbatch = 8\nlr = 0.05\n"
                         "[eval]\nevery = log:12\ntest_size = 64\nprobes = false\n";

static hcl_status run_cfg(const char *const *sets, size_t n_sets, char *dir, char *err,
                          size_t errlen) {
  const char *path = hcl_test_write_temp("eval.ini", cfg);
  hcl_run_options o = {.config_path = path,
                       .sets = sets,
                       .n_sets = n_sets,
                       .device = "cpu",
                       .out_dir = hcl_test_tmpdir(),
                       .plugin_path = HCL_TEST_PLUGIN_DIR};
  hcl_status rc = hcl_run(&o, err, errlen);
  snprintf(dir, 1024, "%s", o.run_dir);
  return rc;
}

/* The "step" of every line of replica 0 in metrics.jsonl. */
static size_t metric_steps(const char *dir, uint64_t *out, size_t max) {
  char p[1200];
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  char *text = hcl_test_read_file(p);
  assert_non_null(text);
  size_t n = 0;
  for (const char *line = text; line && *line && n < max;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)len, line);
    double v;
    if (strstr(buf, "\"replica\":0,") && hcl_test_json_num(buf, "step", &v)) out[n++] = (uint64_t)v;
    line = end ? end + 1 : NULL;
  }
  free(text);
  return n;
}

static void test_end_to_end(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char dir[1024], err[4096];
  uint64_t got[128], want[128];
  if (run_cfg(NULL, 0, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  size_t ng = metric_steps(dir, got, 128), nw = ref_log(300, 12, want);
  if (ng != nw) fail_msg("log:12 over 300 steps: %zu evaluations, expected %zu", ng, nw);
  for (size_t i = 0; i < nw; i++) assert_true(got[i] == want[i]);
  /* integers keep working, with the closing evaluation */
  const char *sets[] = {"eval.every=120"};
  if (run_cfg(sets, 1, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  ng = metric_steps(dir, got, 128);
  assert_int_equal(ng, 4);
  assert_true(got[0] == 0 && got[1] == 120 && got[2] == 240 && got[3] == 300);
  /* a malformed value is a config error naming the key, before any training */
  const char *bad[] = {"eval.every=log:1"};
  assert_int_equal(run_cfg(bad, 1, dir, err, sizeof err), HCL_ERR_CONFIG);
  assert_non_null(strstr(err, "[eval] every"));
}

/* The number after `key` in every line of replica 0 of metrics.jsonl. */
static size_t metric_values(const char *dir, const char *key, double *out, size_t max) {
  char p[1200];
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  char *text = hcl_test_read_file(p);
  assert_non_null(text);
  size_t n = 0;
  for (const char *line = text; line && *line && n < max;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)len, line);
    double v;
    if (strstr(buf, "\"replica\":0,") && hcl_test_json_num(buf, key, &v)) out[n++] = v;
    line = end ? end + 1 : NULL;
  }
  free(text);
  return n;
}

/* val_size > 0: every evaluation line and the summary carry val_loss, the
 * loss on the validation stream: not the test stream's (another sample of
 * the same law: close to test_loss at the untrained step 0, not equal) and
 * independent of test_size; val_size = 0 (the default) writes none. */
static void test_val_loss(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char dir[1024], err[4096];
  const char *sets[] = {"eval.every=100", "eval.val_size=3000", "eval.test_size=3000"};
  if (run_cfg(sets, 3, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  double val[16], test[16];
  size_t nv = metric_values(dir, "val_loss", val, 16),
         nt = metric_values(dir, "test_loss", test, 16);
  assert_int_equal(nv, 4);
  assert_int_equal(nt, 4);
  for (size_t i = 0; i < nv; i++) assert_true(isfinite(val[i]) && val[i] != test[i]);
  assert_true(fabs(val[0] - test[0]) < 0.15 * test[0]);
  char p[1200];
  snprintf(p, sizeof p, "%s/summary.json", dir);
  char *sum = hcl_test_read_file(p);
  double vs = NAN;
  assert_true(hcl_test_json_num(sum, "val_loss", &vs));
  assert_true(vs == val[nv - 1]);
  free(sum);
  /* the validation samples do not depend on the test set's size (the
   * evaluation chunks do, so the float sums may differ in the last bits) */
  const char *sets2[] = {"eval.every=100", "eval.val_size=3000", "eval.test_size=500"};
  if (run_cfg(sets2, 3, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  double val2[16];
  assert_int_equal(metric_values(dir, "val_loss", val2, 16), 4);
  for (size_t i = 0; i < nv; i++)
    if (!(fabs(val2[i] - val[i]) <= 1e-5 * val[i]))
      fail_msg("val_loss %.9g with test_size 500, %.9g with 3000", val2[i], val[i]);
  /* off by default */
  const char *sets3[] = {"eval.every=100"};
  if (run_cfg(sets3, 1, dir, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  assert_int_equal(metric_values(dir, "val_loss", val2, 16), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_schedule), cmocka_unit_test(test_integer_schedule),
      cmocka_unit_test(test_parse),        cmocka_unit_test(test_end_to_end),
      cmocka_unit_test(test_val_loss),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
