/* Out-of-tree plugins as users build them: `cmake --install` of this build
 * into a fresh prefix, then examples/plugins/meanfield (copied out of the
 * source tree) configured with find_package(hiercl) against that prefix
 * only, built, trained by the installed `hiercl` through --plugin-path, and
 * gradchecked. Also pkg-config's view of the same prefix. */
#include "hcl_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[1 << 17];

/* Run a command; fail the test with its output when it exits non-zero. */
static void sh_ok(const char *cmd) {
  int rc = hcl_test_sh(cmd, out, sizeof out);
  if (rc != 0) HCL_FAIL_OUT(out, "`%s` exited %d (output above)", cmd, rc);
}

/* test_loss of `replica` at the first (first = 1) or last evaluation in metrics.jsonl. */
static double test_loss(const char *metrics, int replica, int first) {
  double v = NAN;
  char key[64];
  snprintf(key, sizeof key, "\"replica\":%d,", replica);
  for (const char *l = metrics; l && *l;) {
    const char *nl = strchr(l, '\n');
    const char *r = strstr(l, key);
    if (r && (!nl || r < nl)) {
      double x;
      if (hcl_test_json_num(l, "test_loss", &x)) {
        v = x;
        if (first) return v;
      }
    }
    l = nl ? nl + 1 : NULL;
  }
  return v;
}

static void example_builds_against_installed_package(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *t = hcl_test_tmpdir();
  char cmd[8192], prefix[1024], ex[1024], exb[1024];
  snprintf(prefix, sizeof prefix, "%s/prefix", t);
  snprintf(ex, sizeof ex, "%s/meanfield", t);
  snprintf(exb, sizeof exb, "%s/meanfield-build", t);
  snprintf(cmd, sizeof cmd, "'%s' --install '%s' --prefix '%s' >/dev/null", HCL_TEST_CMAKE,
           HCL_TEST_BUILD_DIR, prefix);
  sh_ok(cmd);
  snprintf(cmd, sizeof cmd, "cp -r '%s/examples/plugins/meanfield' '%s'", HCL_TEST_SOURCE_DIR, ex);
  sh_ok(cmd);
  /* only the prefix: no package registry, no hiercl_DIR from elsewhere */
  snprintf(cmd, sizeof cmd,
           "'%s' -S '%s' -B '%s' -DCMAKE_PREFIX_PATH='%s' -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "
           "-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS='-Wall -Wextra -Werror' >/dev/null && "
           "'%s' --build '%s'",
           HCL_TEST_CMAKE, ex, exb, prefix, HCL_TEST_CMAKE, exb);
  sh_ok(cmd);
  snprintf(cmd, sizeof cmd, "grep '^hiercl_DIR' '%s/CMakeCache.txt'", exb);
  sh_ok(cmd);
  assert_non_null(strstr(out, prefix)); /* the installed package, not the build tree */
  assert_null(strstr(out, HCL_TEST_BUILD_DIR));

  /* the installed command finds its built-in target and the example's plugin */
  snprintf(cmd, sizeof cmd,
           "'%s/bin/hiercl' run '%s/meanfield.ini' --plugin-path '%s' --out '%s/runs' --device cpu",
           prefix, ex, exb, t);
  sh_ok(cmd);
  snprintf(cmd, sizeof cmd, "cat %s/runs/*/metrics.jsonl", t);
  sh_ok(cmd);
  for (int r = 0; r < 2; r++) {
    double a = test_loss(out, r, 1), b = test_loss(out, r, 0);
    assert_true(isfinite(a) && isfinite(b));
    if (!(b < 0.25 * a)) fail_msg("replica %d: test loss %g -> %g did not go down", r, a, b);
  }
  snprintf(cmd, sizeof cmd,
           "'%s/bin/hiercl' gradcheck '%s/meanfield.ini' --plugin-path '%s' --device cpu", prefix,
           ex, exb);
  sh_ok(cmd);
  assert_non_null(strstr(out, "gradcheck passed: meanfield"));

  /* pkg-config: the headers of the prefix, relocated with it */
  snprintf(
      cmd, sizeof cmd,
      "PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --cflags --libs hiercl > '%s/pc' && "
      "printf '#include <hiercl/plugin.h>\\nint main(void) { return HCL_OK; }\\n' > '%s/pc.c' && "
      "cc -Wall -Werror $(cat '%s/pc') -c '%s/pc.c' -o '%s/pc.o' && cat '%s/pc'",
      prefix, t, t, t, t, t, t);
  sh_ok(cmd);
  assert_non_null(strstr(out, "-lhiercl"));
  assert_non_null(strstr(out, "/include"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(example_builds_against_installed_package),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
