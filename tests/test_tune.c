/* hiercl tune with a stand-in for clblast_tuner_xgemm: the best GEMMK=0
 * result of the stage files becomes the device's parameter file, which the
 * runtime then applies (and GEMMs stay correct). */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
           "chmod +x %s && HIERCL_CLBLAST_TUNER=%s HCL_CACHE_DIR=%s %s tune --device cpu "
           "--size 128,128,128 --minutes 1 2>&1",
           tuner, tuner, cache, HCL_TEST_HIERCL);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) fail_msg("%s", out);
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
  snprintf(cmd, sizeof cmd, "HCL_CACHE_DIR=%s %s run %s --device cpu --out %s -q 2>/dev/null",
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
           "HCL_CACHE_DIR=%s %s tune --dry-run --device cpu --size 200,200,200 2>&1", cache,
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tune_without_tuner_fails_clearly),
      cmocka_unit_test(tune_writes_and_applies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
