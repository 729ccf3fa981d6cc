/* Selection on the validation stream against a known optimum, and the exit
 * status of a sweep whose candidates or selections failed. The model is the
 * fixture ridge_linear (tests/fixtures/plugins): w = (X^T X/n + lambda
 * I)^-1 X^T y/n, on a linear teacher y = beta . x + sigma N(0, 1) (the
 * single_index target with link he1), x ~ N(0, I_d). */
#include "hcl_test.h"
#include "sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLUGINS HCL_TEST_PLUGIN_DIR ":" HCL_TEST_FIXTURE_PLUGINS "/ridge"
enum { D = 20, P = 40 };
static const double SIGMA = 1.0;
static const double GRID[] = {0.01, 0.0316, 0.1, 0.316, 1, 3.16, 10};

static const char config[] = "[target]\nplugin = single_index\nd = 20\nlink = he1\nnoise = 1\n"
                             "[model]\nplugin = ridge_linear\n"
                             "[train]\nalgorithm = ridge\nsteps = 1\nbatch = 40\ntrain_size = 40\n"
                             "[eval]\nevery = 0\ntest_size = 1000\nval_size = 20000\n"
                             "[sweep]\nrun.seed = 0..3\n"
                             "[select]\nmodel.lambda = 0.01, 0.0316, 0.1, 0.316, 1, 3.16, 10\n";

/* n rows of (x, y) of the train stream of seed `seed` (hiercl sample, CSV). */
static double *sample(const char *cfg, unsigned seed, int n, const char *extra) {
  char cmd[2048], out[256];
  snprintf(out, sizeof out, "%s/sample_%u_%d.csv", hcl_test_tmpdir(), seed, n);
  snprintf(cmd, sizeof cmd,
           "%s sample %s --plugin-path %s --device cpu --n %d --set run.seed=%u %s --out %s",
           HCL_TEST_HIERCL, cfg, PLUGINS, n, seed, extra, out);
  assert_int_equal(system(cmd), 0);
  FILE *f = fopen(out, "r");
  assert_non_null(f);
  double *v = calloc((size_t)n * (D + 1), sizeof *v);
  char line[8192];
  assert_non_null(fgets(line, sizeof line, f)); /* header */
  for (int i = 0; i < n; i++) {
    assert_non_null(fgets(line, sizeof line, f));
    char *p = line;
    for (int j = 0; j <= D; j++) v[i * (D + 1) + j] = strtod(p, &p), p += *p == ',';
  }
  fclose(f);
  return v;
}

/* Solve (A + lambda I) x = b in place (A k x k, symmetric positive definite) by Cholesky. */
static void chol_solve(const double *A, double lambda, double *b, int k) {
  double L[D * D] = {0};
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++) {
      double s = A[i * k + j] + (i == j ? lambda : 0);
      for (int t = 0; t < j; t++) s -= L[i * k + t] * L[j * k + t];
      L[i * k + j] = i == j ? sqrt(s) : s / L[j * k + j];
    }
  for (int i = 0; i < k; i++) {
    for (int t = 0; t < i; t++) b[i] -= L[i * k + t] * b[t];
    b[i] /= L[i * k + i];
  }
  for (int i = k - 1; i >= 0; i--) {
    for (int t = i + 1; t < k; t++) b[i] -= L[t * k + i] * b[t];
    b[i] /= L[i * k + i];
  }
}

/* G = X^T X/n, c = X^T y/n of rows (x, y). */
static void moments(const double *v, int n, double *G, double *c) {
  memset(G, 0, sizeof(double) * D * D), memset(c, 0, sizeof(double) * D);
  for (int i = 0; i < n; i++)
    for (int a = 0; a < D; a++) {
      c[a] += v[i * (D + 1) + a] * v[i * (D + 1) + D] / n;
      for (int b = 0; b < D; b++) G[a * D + b] += v[i * (D + 1) + a] * v[i * (D + 1) + b] / n;
    }
}

/* The selected lambda of each seed is a grid neighbour of the lambda that
 * minimises the population risk E (w.x - y)^2 = |w_lambda - beta|^2 +
 * sigma^2 of that seed's training set, computed here in float64 (beta from
 * noiseless samples of the same target). */
static void ridge_selects_optimum_neighbour(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp("ridge_sel.ini", config);
  char cmd[2048], out[8192];
  snprintf(cmd, sizeof cmd, "%s sweep %s --plugin-path %s --device cpu --out %s 2>&1",
           HCL_TEST_HIERCL, cfg, PLUGINS, hcl_test_tmpdir());
  int rc = hcl_test_sh(cmd, out, sizeof out);
  if (rc != 0) HCL_FAIL_OUT(out, "the command failed (output above)");
  snprintf(cmd, sizeof cmd, "cat $(ls -dt %s/sweep_ridge_sel_*/ | head -n 1)sweep.jsonl",
           hcl_test_tmpdir());
  char recs[65536];
  assert_int_equal(hcl_test_sh(cmd, recs, sizeof recs), 0);
  double G[D * D], c[D], beta[D], w[D];
  for (unsigned seed = 0; seed < 4; seed++) {
    double *clean = sample(cfg, seed, 400, "--set target.noise=0");
    moments(clean, 400, G, beta);
    chol_solve(G, 0, beta, D); /* labels are exactly beta . x (up to float rounding) */
    free(clean);
    double *v = sample(cfg, seed, P, "");
    moments(v, P, G, c);
    free(v);
    double best = INFINITY, lopt = 0;
    for (int i = 0; i <= 500; i++) { /* 1e-3 .. 1e2, log-spaced */
      double lam = pow(10, -3 + 5.0 * i / 500), risk = SIGMA * SIGMA;
      memcpy(w, c, sizeof w);
      chol_solve(G, lam, w, D);
      for (int a = 0; a < D; a++) risk += (w[a] - beta[a]) * (w[a] - beta[a]);
      if (risk < best) best = risk, lopt = lam;
    }
    /* the grid values on either side of the optimum (one, at an end) */
    size_t ng = sizeof GRID / sizeof *GRID, hi = 0;
    while (hi < ng && GRID[hi] < lopt) hi++;
    double lo_v = GRID[hi ? hi - 1 : 0], hi_v = GRID[hi < ng ? hi : ng - 1];
    char pat[64];
    snprintf(pat, sizeof pat, "\"seed\":%u,\"status\":\"completed\",\"selected\":", seed);
    const char *r = strstr(recs, pat);
    assert_non_null(r);
    double sel = atof(strstr(r, "\"model.lambda\":\"") + 16);
    printf("seed %u: float64 optimum lambda %.3g (sigma^2 d/n = %.3g), grid neighbours %g, %g; "
           "selected %g\n",
           seed, lopt, SIGMA * SIGMA * D / P, lo_v, hi_v, sel);
    assert_true(sel == lo_v || sel == hi_v);
  }
}

/* A failed selection (every candidate ran, none with a finite val_loss: the
 * fixture's outputs overflow) and a failed candidate (a singular ridge
 * system) each make `hiercl sweep` exit 1, its error line naming the point;
 * a resume that trains nothing again still exits 1. */
static void failures_exit_nonzero(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp("ridge_fail.ini", config);
  char cmd[2048], out[16384];
  snprintf(cmd, sizeof cmd,
           "%s sweep %s --plugin-path %s --device cpu --out %s/f1 --grid run.seed=0..1 "
           "--set model.scale=1e30 2>&1 >/dev/null | grep 'error:'",
           HCL_TEST_HIERCL, cfg, PLUGINS, hcl_test_tmpdir());
  /* the pipeline's status is grep's: check the sweep's own status separately */
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "2 selection(s) failed ((all) seed 0, (all) seed 1)"));
  snprintf(cmd, sizeof cmd,
           "%s sweep %s --plugin-path %s --device cpu --out %s/f1 --grid run.seed=0..1 "
           "--set model.scale=1e30 >/dev/null 2>&1",
           HCL_TEST_HIERCL, cfg, PLUGINS, hcl_test_tmpdir());
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 1); /* resumed: nothing to train */
  /* lambda = 0 on fewer samples than dimensions: that candidate's run fails */
  snprintf(cmd, sizeof cmd,
           "%s sweep %s --plugin-path %s --device cpu --out %s/f2 --grid run.seed=0 "
           "--grid target.d=20,24 --set train.train_size=10 --set train.batch=10 "
           "--select model.lambda=0,0.1 2>&1 >/dev/null; echo \"exit $?\"",
           HCL_TEST_HIERCL, cfg, PLUGINS, hcl_test_tmpdir());
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "exit 1"));
  const char *e = strstr(out, "error: 2 sweep point(s) failed");
  assert_non_null(e);
  assert_non_null(strstr(e, "target.d=20;model.lambda=0, target.d=24;model.lambda=0"));
}

/* `hiercl sweep CFG --out DIR ARGS`: its stderr (with --status its stdout
 * too) and "exit N" into out. */
static void sweep_out(const char *cfg, const char *dir, const char *args, char *out, size_t n) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s sweep %s --plugin-path %s --out %s %s 2>&1 %s; echo \"exit $?\"",
           HCL_TEST_HIERCL, cfg, HCL_TEST_PLUGIN_DIR, dir, args,
           strstr(args, "--status") ? "" : ">/dev/null");
  assert_int_equal(hcl_test_sh(cmd, out, n), 0);
}

/* A candidate that diverges (lr 1e6) is trained as replicas of one run with
 * a sound one (lr 0.05): only its own replicas are void and recorded
 * diverged (final, unselectable); the sound candidate completes and is
 * selected for every point and seed, and the sweep exits 0, naming the
 * diverged ones; a resume trains nothing again. */
static void diverged_candidate_spares_its_batch(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp(
      "diverge.ini", "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 100\n"
                     "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                     "[train]\nsteps = 100\nbatch = 16\ntrain_size = 200\n"
                     "[eval]\nevery = 0\ntest_size = 300\nval_size = 200\n"
                     "[sweep]\nrun.seed = 0..1\n[select]\ntrain.lr = 0.05, 1e6\n");
  char out[16384], dir[1024];
  snprintf(dir, sizeof dir, "%s/diverge", hcl_test_tmpdir());
  sweep_out(cfg, dir, "--device cpu", out, sizeof out);
  /* a candidate that diverges is an outcome of the grid search, not a failure */
  assert_non_null(strstr(out, "exit 0"));
  assert_non_null(strstr(out, "train.lr=1e6 seed 0 diverged"));
  assert_non_null(strstr(out, "left out of the selection"));
  char *sel = hcl_test_sweep_file(dir, "sweep.jsonl");
  int n = 0;
  for (const char *l = sel;
       (l = strstr(l, "\"status\":\"completed\",\"selected\":{\"train.lr\":\"0.05\"}")); l++)
    n++;
  assert_int_equal(n, 2); /* both seeds selected, each from the sound candidate */
  assert_non_null(strstr(sel, "{\"train.lr\":\"1e6\",\"status\":\"diverged\",\"val_loss\":"));
  free(sel);
  char *cand = hcl_test_sweep_file(dir, "candidates.jsonl");
  assert_non_null(strstr(cand, "\"key\":\"train.lr=0.05\",\"seed\":0,\"status\":\"completed\""));
  assert_non_null(strstr(cand, "\"key\":\"train.lr=0.05\",\"seed\":1,\"status\":\"completed\""));
  const char *bad = strstr(cand, "\"key\":\"train.lr=1e6\",\"seed\":0,\"status\":\"diverged\"");
  assert_non_null(bad);
  assert_non_null(strstr(bad, "this replica diverged"));
  assert_non_null(strstr(bad, "\"diverged_at_step\":"));
  size_t before = strlen(cand);
  free(cand);
  /* final: a resume trains nothing again, and --status says done */
  sweep_out(cfg, dir, "--device cpu", out, sizeof out);
  assert_non_null(strstr(out, "exit 0"));
  assert_non_null(strstr(out, "1 of 1 runs already done"));
  cand = hcl_test_sweep_file(dir, "candidates.jsonl");
  assert_int_equal(strlen(cand), before);
  free(cand);
  sweep_out(cfg, dir, "--status", out, sizeof out);
  assert_non_null(strstr(out, "diverged train.lr=1e6"));
  assert_non_null(strstr(out, "exit 0"));
}

/* Outside a selection a diverged point has no number: the sweep exits
 * non-zero, on a resume too, but never trains it again (it would diverge
 * again); --status lists it as diverged. */
static void diverged_point_is_final(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp(
      "diverge_plain.ini", "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 100\n"
                           "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                           "[train]\nsteps = 100\nbatch = 16\ntrain_size = 200\n"
                           "[eval]\nevery = 0\ntest_size = 300\n"
                           "[sweep]\ntrain.lr = 0.05, 1e6\n");
  char out[16384], dir[1024];
  snprintf(dir, sizeof dir, "%s/diverge_plain", hcl_test_tmpdir());
  for (int pass = 0; pass < 2; pass++) {
    sweep_out(cfg, dir, "--device cpu", out, sizeof out);
    assert_non_null(strstr(out, "exit 1"));
    assert_non_null(strstr(out, "1 sweep point(s) diverged"));
    char *rec = hcl_test_sweep_file(dir, "sweep.jsonl");
    const char *bad = strstr(rec, "\"key\":\"train.lr=1e6\",\"seed\":0,\"status\":\"diverged\"");
    assert_non_null(bad);
    /* the second time nothing trains: the diverged point is final */
    if (pass) assert_non_null(strstr(out, "1 of 1 runs already done"));
    assert_non_null(strstr(rec, "\"key\":\"train.lr=0.05\",\"seed\":0,\"status\":\"completed\""));
    free(rec);
  }
  sweep_out(cfg, dir, "--status", out, sizeof out);
  assert_non_null(strstr(out, "diverged train.lr=1e6: training loss is not finite"));
  assert_non_null(strstr(out, "1 done, 1 failed, 0 pending"));
  assert_null(strstr(out, "exit 0"));
}

/* A failed selection record whose candidates completed is a whole record
 * of a failed point: kept on resume, and not taken for a completed one. */
static void failed_selection_record(void **state) {
  (void)state;
  const char *rec =
      "{\"point\":{},\"key\":\"\",\"seed\":0,\"status\":\"failed\",\"error\":\"no candidate "
      "finished with a finite val_loss\",\"selected\":null,\"candidates\":[{\"model.lambda\":"
      "\"1\",\"status\":\"completed\",\"val_loss\":null}]}\n";
  assert_int_equal(hcl_sweep_whole_prefix(rec, strlen(rec)), strlen(rec));
  assert_false(hcl_sweep_line_completed(rec, strlen(rec)));
  assert_true(hcl_sweep_line_ok(rec, strlen(rec) - 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(failed_selection_record),
      cmocka_unit_test(ridge_selects_optimum_neighbour),
      cmocka_unit_test(failures_exit_nonzero),
      cmocka_unit_test(diverged_candidate_spares_its_batch),
      cmocka_unit_test(diverged_point_is_final),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
