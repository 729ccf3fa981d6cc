/* hiercl tune with a stand-in for clblast_tuner_xgemm: the best GEMMK=0
 * result of the stage files becomes the device's parameter file, which the
 * runtime then applies (and GEMMs stay correct). */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* tune.c's fallback after a failed self-check (not in a header: internal to
 * blas.c and tune.c). */
int hcl_blas_tuning_fallback(hcl_ctx *ctx, const char *why);

/* The built-in PoCL set as a parameter file, with up to two values
 * replaced: changes = "KEY=VALUE" strings, NULL-terminated. */
static const char *pocl_set(const char *const *changes) {
  static const char *const keys[] = {"GEMMK", "KREG",  "KWG",   "KWI", "MDIMA", "MDIMC",
                                     "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                     "STRM",  "STRN",  "VWM",   "VWN"};
  static const char *const values[] = {"0", "1",   "32", "2", "8", "8", "64", "32",
                                       "8", "128", "0",  "0", "0", "0", "8",  "4"};
  static char buf[1024];
  size_t o = (size_t)snprintf(buf, sizeof buf, "[Xgemm]\n");
  for (size_t i = 0; i < 16; i++) {
    const char *v = values[i];
    size_t n = strlen(keys[i]);
    for (size_t c = 0; changes && changes[c]; c++)
      if (!strncmp(changes[c], keys[i], n) && changes[c][n] == '=') v = changes[c] + n + 1;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%s = %s\n", keys[i], v);
  }
  snprintf(buf + o, sizeof buf - o, "[GemmRoutine]\nXGEMM_MIN_INDIRECT_SIZE = 128\n");
  return buf;
}

/* Run `hiercl ARGS` with HIERCL_CACHE_DIR=cache under a watchdog (timeout);
 * output (stdout and stderr) in out; returns the exit status. */
static int run_hiercl(const char *cache, const char *args, char *out, size_t len) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "HIERCL_CACHE_DIR=%s timeout 120 %s %s 2>&1", cache, HCL_TEST_HIERCL,
           args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The device's parameter file under a fresh cache folder (made). */
static void tuning_file(hcl_ctx *ctx, char *cache, size_t clen, char *path, size_t plen) {
  static int k;
  snprintf(cache, clen, "%s/cache%d", hcl_test_tmpdir(), k++);
  const char *saved = getenv("HIERCL_CACHE_DIR");
  char *keep = saved ? strdup(saved) : NULL;
  setenv("HIERCL_CACHE_DIR", cache, 1);
  hcl_blas_tuning_path(ctx, path, plen);
  if (keep)
    setenv("HIERCL_CACHE_DIR", keep, 1);
  else
    unsetenv("HIERCL_CACHE_DIR");
  free(keep);
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/clblast", cache);
  mkdir(cache, 0700);
  mkdir(dir, 0700);
}

/* A fake tuner: writes stage 1 (a GEMMK=0 winner) and stage 3 (a faster
 * GEMMK=1 result that must be ignored) into its working directory. */
static const char *fake_tuner =
    "#!/bin/sh\n"
    "cat > clblast_xgemm_1_32.json <<'J'\n"
    "{\n  \"kernel_family\": \"xgemm_1\",\n  \"best_kernel\": \"Xgemm\",\n  \"best_time\": "
    "\"2.50\",\n"
    "  \"best_parameters\": \"GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=32 NDIMC=8 "
    "NWG=128 PRECISION=32 SA=0 SB=0 STRM=0 STRN=0 VWM=8 VWN=4\",\n  \"results\": []\n}\nJ\n"
    "cat > clblast_xgemm_3_32.json <<'J'\n"
    "{\n  \"best_time\": \"0.10\",\n  \"best_parameters\": \"GEMMK=1 KREG=4 KWG=1 KWI=1 MDIMA=8 "
    "MDIMC=8 MWG=16 NDIMB=8 NDIMC=8 NWG=16 PRECISION=32 SA=0 SB=0 STRM=0 STRN=0 VWM=1 "
    "VWN=1\"\n}\nJ\n"
    "echo \"$@\" > args.txt\n";

static void tune_writes_and_applies(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  const char *tuner = hcl_test_write_temp("fake_tuner.sh", fake_tuner);
  char cmd[2048], cache[600], out[8192];
  snprintf(cache, sizeof cache, "%s/cache", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "chmod +x %s && HIERCL_CLBLAST_TUNER=%s HIERCL_CACHE_DIR=%s %s tune --device cpu "
           "--size 128,128,128 --minutes 1 2>&1",
           tuner, tuner, cache, HCL_TEST_HIERCL);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "before:"));
  assert_non_null(strstr(out, "after:"));
  assert_non_null(strstr(out, "GEMMK=0")); /* the GEMMK=1 stage was faster but is never used */
  char *saved = strstr(out, "saved ");
  assert_non_null(saved);
  char path[1024];
  assert_int_equal(sscanf(saved, "saved %1023s", path), 1);
  char *ini = hcl_test_read_file(path);
  assert_non_null(ini);
  assert_non_null(strstr(ini, "[Xgemm]\n"));
  assert_non_null(strstr(ini, "NWG = 128\n"));
  assert_null(strstr(ini, "PRECISION"));
  assert_null(strstr(ini, "KREG = 4"));
  /* a later process applies the file (CLBlast's overrides are per process):
   * its manifest names the file, and CLBlast passes the self-check with it */
  const char *cfg = hcl_test_write_temp("tiny.ini", "[target]\nplugin = staircase\nn = 4\nk = 2\n"
                                                    "[model]\nplugin = resnet\n[train]\nsteps = 5\n"
                                                    "[eval]\ntest_size = 10\n");
  snprintf(cmd, sizeof cmd, "HIERCL_CACHE_DIR=%s %s run %s --device cpu --out %s -q 2>/dev/null",
           cache, HCL_TEST_HIERCL, cfg, hcl_test_tmpdir());
  p = popen(cmd, "r");
  n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  assert_int_equal(pclose(p), 0);
  out[strcspn(out, "\n")] = 0;
  char man[8300];
  snprintf(man, sizeof man, "%s/manifest.json", out);
  char *m = hcl_test_read_file(man);
  assert_non_null(m);
  assert_non_null(strstr(m, path));
  free(m);
  snprintf(cmd, sizeof cmd,
           "HIERCL_CACHE_DIR=%s %s tune --dry-run --device cpu --size 200,200,200 2>&1", cache,
           HCL_TEST_HIERCL);
  p = popen(cmd, "r");
  n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  assert_int_equal(pclose(p), 0);
  double gf = 0;
  char *b = strstr(out, "before: ");
  assert_non_null(b);
  assert_int_equal(sscanf(b, "before: %lf", &gf), 1);
  assert_true(gf > 0); /* 0 would mean the GEMM (and its self-check) failed */
  free(ini);
}

static void tune_without_tuner_fails_clearly(void **state) {
  (void)state;
  char cmd[1024], out[4096];
  snprintf(cmd, sizeof cmd, "HIERCL_CLBLAST_TUNER=/nonexistent %s tune 2>&1", HCL_TEST_HIERCL);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  assert_int_equal(WEXITSTATUS(st), 1);
  assert_non_null(strstr(out, "clblast-utils"));
}

/* Values CLBlast accepts but that break its kernels or divide by zero in
 * its host code are refused before CLBlast sees them, naming file, line,
 * section and reason. (CLBlast took them; every large GEMM then failed the
 * self-check, so every run failed.) */
static void bad_values_refused(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  static const struct {
    const char *change[3], *reason;
  } cases[] = {
      {{"MWG=7"}, "MWG = 7 is not a multiple of MDIMC*VWM = 64"},
      {{"MWG=0"}, "MWG = 0 (CLBlast divides by it)"},
      {{"VWM=3"}, "vector width VWM = 3"},
      {{"SA=2"}, "SA = 2 must be 0 or 1"},
      {{"MDIMC=4096", "MWG=32768"}, "exceeds the device's"},
      {{"KWG=13"}, "KWG = 13 is not a multiple of KWI = 2"},
      {{"MDIMA=64"}, "MWG = 64 is not a multiple of MDIMA*VWM = 512"},
      {{"KWG=4"}, "the tile loads do not divide: MDIMC*NDIMC/MDIMA must divide KWG"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "bad%zu.ini", i);
    const char *path = hcl_test_write_temp(name, pocl_set(cases[i].change));
    hcl_status rc = hcl_blas_apply_tuning_file(ctx, path);
    if (rc != HCL_ERR_CONFIG)
      fail_msg("case %s: rc %d, want HCL_ERR_CONFIG", cases[i].change[0], rc);
    const char *msg = hcl_errmsg(ctx);
    if (!strstr(msg, path) || !strstr(msg, ":1: [Xgemm]: ") || !strstr(msg, cases[i].reason))
      fail_msg("case %s: message '%s'", cases[i].change[0], msg);
  }
}

/* `hiercl run` with a bad parameter file in the cache folder: one note, the
 * defaults, and the run completes (it failed the CLBlast self-check on
 * every run). The model is wide enough for CLBlast's large-matrix kernel. */
static void bad_file_skipped_by_run(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  char cache[600], path[1200], args[2048];
  static char out[1 << 16];
  tuning_file(ctx, cache, sizeof cache, path, sizeof path);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  static const char *const mwg7[] = {"MWG=7", NULL};
  fputs(pocl_set(mwg7), f);
  fclose(f);
  const char *cfg = hcl_test_write_temp("wide.ini", "[target]\nplugin = staircase\nn = 4\nk = 2\n"
                                                    "[model]\nplugin = resnet\nwidth = 256\n"
                                                    "[train]\nsteps = 2\nbatch = 256\n"
                                                    "[eval]\ntest_size = 10\n");
  snprintf(args, sizeof args, "run %s --device cpu --out %s", cfg, hcl_test_tmpdir());
  int st = run_hiercl(cache, args, out, sizeof out);
  if (st != 0) HCL_FAIL_OUT(out, "exit %d (output above)", st);
  char *note = strstr(out, "CLBlast parameter file skipped");
  if (!note) HCL_FAIL_OUT(out, "no note in (output above)");
  assert_null(strstr(note + 1, "CLBlast parameter file skipped")); /* once */
  assert_non_null(strstr(out, "MWG = 7 is not a multiple"));
}

/* A FIFO where the parameter file should be: skipped with a note (the
 * run hung in fopen; the watchdog turns that into exit 124). */
static void fifo_file_skipped(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  char cache[600], path[1200];
  static char out[1 << 16];
  tuning_file(ctx, cache, sizeof cache, path, sizeof path);
  assert_int_equal(mkfifo(path, 0600), 0);
  int st = run_hiercl(cache, "tune --dry-run --device cpu --size 16,16,16", out, sizeof out);
  if (st != 0) HCL_FAIL_OUT(out, "exit %d (output above)", st);
  assert_non_null(strstr(out, "is not a regular file"));
}

/* Parameters from a file that fail the self-check anyway are dropped: the
 * file is moved aside (so no later run uses it) and, on PoCL, the built-in
 * set replaces them and the check passes. */
static void failing_file_dropped(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  const char *path = hcl_test_write_temp("fine.ini", pocl_set(NULL));
  assert_int_equal(hcl_blas_apply_tuning_file(ctx, path), HCL_OK);
  int again = hcl_blas_tuning_fallback(ctx, "test");
  char moved[1200];
  snprintf(moved, sizeof moved, "%s.rejected", path);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(access(moved, F_OK), 0);
  assert_int_equal(hcl_blas_tuning_fallback(ctx, "test"), 0); /* nothing left to drop */
  if (again) {
    ctx->blas_checked = 0;
    assert_int_equal(hcl_blas_selfcheck(ctx), HCL_OK);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tune_without_tuner_fails_clearly),
      cmocka_unit_test(tune_writes_and_applies),
      cmocka_unit_test(bad_values_refused),
      cmocka_unit_test(bad_file_skipped_by_run),
      cmocka_unit_test(fifo_file_skipped),
      cmocka_unit_test(failing_file_dropped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
