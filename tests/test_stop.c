/* Stop requests end a run promptly wherever it is: SIGTERM (a cancelled
 * Slurm or MPI job) like Ctrl-C, during a long evaluation or a target's
 * set-up; the summary says interrupted and the manifest is not left
 * "running". And the linear_teacher's rounds of attempts (which make its
 * set-up stoppable) draw the same samples as one launch. */
#include "hcl_test.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* Start `hiercl run` with args, send sig after `after` seconds, and return
 * its exit status; a process still alive 60 s after the signal (the old
 * behaviour: the signal was ignored for hours) is killed and fails the test. */
static int run_and_signal(const char *const *args, int sig, double after) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    const char *argv[32] = {HCL_TEST_HIERCL, "run"};
    size_t n = 2;
    for (size_t i = 0; args[i] && n < 30; i++) argv[n++] = args[i];
    argv[n] = NULL;
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "w", stdout);
    execv(HCL_TEST_HIERCL, (char *const *)argv);
    _exit(127);
  }
  sleep_s(after);
  kill(pid, sig);
  int st = 0;
  for (int i = 0; i < 600; i++) { /* polls of 0.1 s */
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) {
      if (!WIFEXITED(st)) fail_msg("hiercl ended by signal %d, not by exiting", WTERMSIG(st));
      return WEXITSTATUS(st);
    }
    sleep_s(0.1);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  fail_msg("hiercl still running 60 s after signal %d", sig);
  return -1;
}

static void run_dir_in(const char *parent, char *out, size_t len) {
  DIR *d = opendir(parent);
  assert_non_null(d);
  struct dirent *e;
  out[0] = 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') snprintf(out, len, "%s/%s", parent, e->d_name);
  closedir(d);
  if (!out[0]) fail_msg("no run directory under %s", parent);
}

static void assert_interrupted_on_disk(const char *parent) {
  char dir[1200], p[1400];
  run_dir_in(parent, dir, sizeof dir);
  snprintf(p, sizeof p, "%s/summary.json", dir);
  char *sum = hcl_test_read_file(p);
  snprintf(p, sizeof p, "%s/manifest.json", dir);
  char *man = hcl_test_read_file(p);
  assert_non_null(sum);
  assert_non_null(man);
  assert_non_null(strstr(sum, "\"status\":\"interrupted\""));
  assert_non_null(strstr(man, "\"status\":\"interrupted\""));
  assert_null(strstr(man, "\"status\":\"running\""));
  free(sum), free(man);
}

/* 1e11 test samples: hours of evaluation. SIGTERM ends it, exit 143. */
static void sigterm_during_evaluation(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char parent[600], cfg[600];
  snprintf(parent, sizeof parent, "%s/term", hcl_test_tmpdir());
  snprintf(cfg, sizeof cfg, "%s/quickstart.ini", HCL_TEST_CONFIGS);
  const char *args[] = {
      cfg, "--out", parent, "--device", "cpu", "--set", "eval.test_size=100000000000", NULL};
  assert_int_equal(run_and_signal(args, SIGTERM, 1.5), 143);
  assert_interrupted_on_disk(parent);
}

/* margin 1000: no draw ever meets it, so every sample takes 2^24 attempts
 * while the training set is generated. Ctrl-C ends it, exit 130. */
static void sigint_during_target_setup(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char parent[600], cfg[600];
  snprintf(parent, sizeof parent, "%s/int", hcl_test_tmpdir());
  snprintf(cfg, sizeof cfg, "%s/linear_teacher.ini", HCL_TEST_CONFIGS);
  const char *args[] = {cfg,
                        "--out",
                        parent,
                        "--device",
                        "cpu",
                        "--set",
                        "target.margin=1000",
                        "--set",
                        "target.max_attempts=16777216",
                        NULL};
  assert_int_equal(run_and_signal(args, SIGINT, 1.5), 130);
  assert_interrupted_on_disk(parent);
}

/* The flag behind host->should_stop: the run's stop request, read live. */
static void should_stop_reads_the_flag(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  volatile int flag = 0;
  assert_false(hcl_should_stop(NULL));
  assert_false(hcl_should_stop(ctx)); /* no flag: never */
  ctx->stop = &flag;
  assert_false(hcl_should_stop(ctx));
  flag = 15;
  assert_true(hcl_should_stop(ctx));
  assert_true(hcl_host_api_get()->should_stop(ctx));
  ctx->stop = NULL;
}

static uint64_t launches(hcl_ctx *ctx, const char *label) {
  for (size_t i = 0; i < ctx->n_stats; i++)
    if (!strcmp(ctx->stats[i].label, label)) return ctx->stats[i].launches;
  return 0;
}

/* margin 2.5 (1.2% of the draws accepted): 8000 samples in one call take
 * rounds of attempts; 16 calls of 500 take one launch each. Same bits. */
static void linear_teacher_rounds_same_samples(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  const hcl_plugin_desc *d = hcl_test_plugin("linear_teacher", HCL_PLUGIN_TARGET);
  const hcl_target_vt *vt = d->vt;
  const char *kv[] = {"d=50", "margin=2.5", NULL};
  uint64_t seeds[1] = {7};
  const size_t N = 8000, D = 50, C = 500;
  void *t = NULL;
  assert_int_equal(hcl_test_target_make(ctx, d, kv, 1, seeds, 0, N, N, &t), HCL_OK);
  hcl_buf x1, y1, x2, y2;
  assert_int_equal(hcl_buf_alloc(ctx, N * D * 4, &x1), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, N * 4, &y1), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, C * D * 4, &x2), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, C * 4, &y2), HCL_OK);
  uint64_t l0 = launches(ctx, "linear_teacher_sample");
  assert_int_equal(vt->sample(t, HCL_STREAM_TEST, 0, N, x1, y1), HCL_OK);
  uint64_t rounds = launches(ctx, "linear_teacher_sample") - l0;
  assert_true(rounds > 1); /* the split this test is about did happen */
  float *xa = hcl_test_download(ctx, x1, N * D), *ya = hcl_test_download(ctx, y1, N);
  for (size_t c0 = 0; c0 < N; c0 += C) {
    l0 = launches(ctx, "linear_teacher_sample");
    assert_int_equal(vt->sample(t, HCL_STREAM_TEST, c0, C, x2, y2), HCL_OK);
    assert_int_equal(launches(ctx, "linear_teacher_sample") - l0, 1);
    float *xb = hcl_test_download(ctx, x2, C * D), *yb = hcl_test_download(ctx, y2, C);
    assert_memory_equal(xa + c0 * D, xb, C * D * sizeof(float));
    assert_memory_equal(ya + c0, yb, C * sizeof(float));
    free(xb), free(yb);
  }
  free(xa), free(ya);
  hcl_buf_free(ctx, &x1), hcl_buf_free(ctx, &y1), hcl_buf_free(ctx, &x2), hcl_buf_free(ctx, &y2);
  vt->destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(should_stop_reads_the_flag),
      cmocka_unit_test(sigterm_during_evaluation),
      cmocka_unit_test(sigint_during_target_setup),
      cmocka_unit_test(linear_teacher_rounds_same_samples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
