/* Hostile input to the config and command-line paths: every value is read
 * whole or refused with one clear line (file, key, limit), nothing runs or
 * opens a device before the whole config checks out, and JSON output stays
 * valid whatever bytes come in. */
#include "hcl_test.h"
#include "hiercl/hiercl.h"
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char out[1 << 16];

/* Run a shell command; stdout+stderr into out; the exit status (-1: killed). */
static int sh(const char *cmd) { return hcl_test_sh(cmd, out, sizeof out); }

#define assert_contains(hay, needle)                                                               \
  do {                                                                                             \
    if (!strstr((hay), (needle))) fail_msg("'%s' not in '%s'", (needle), (hay));                   \
  } while (0)

/* A small valid config: staircase + resnet. */
static const char *small_config(const char *name) {
  return hcl_test_write_temp(name, "[run]\nseed = 0\n[target]\nplugin = staircase\nn = 6\nk = 2\n"
                                   "[model]\nplugin = resnet\nwidth = 4\ndepth = 2\n"
                                   "[train]\nsteps = 2\nbatch = 4\n[eval]\nevery = 0\n"
                                   "test_size = 16\n");
}

/* hcl_run's checks only (dry run: no device, no directory). */
static hcl_status dry_run(const char *path, const char *const *sets, size_t n, char *err,
                          size_t len) {
  hcl_run_options o = {.config_path = path,
                       .plugin_path = HCL_TEST_PLUGIN_DIR,
                       .sets = sets,
                       .n_sets = n,
                       .dry_run = 1};
  return hcl_run(&o, err, len);
}

/* ---- JSON strings: always valid, whatever the bytes ---------------------- */

static char *json_of(const char *s) {
  static char buf[1024];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  assert_non_null(f);
  hcl_json_str(f, s);
  fclose(f);
  return buf;
}

static void json_escapes_invalid_utf8(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"plain", "\"plain\""},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
       "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
      {"bad\xff.so", "\"bad\\ufffd.so\""},                      /* never a UTF-8 byte */
      {"\xC0\xAF", "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
      {"\xE0\x80\xAF", "\"\\ufffd\\ufffd\\ufffd\""},            /* overlong, 3 bytes */
      {"\xF0\x80\x80\xAF", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* overlong, 4 bytes */
      {"\xED\xA0\x80", "\"\\ufffd\\ufffd\\ufffd\""},            /* UTF-16 surrogate */
      {"\xF4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
      {"x\xE2\x82", "\"x\\ufffd\\ufffd\""},                     /* truncated at the end */
      {"\xE2\x82x", "\"\\ufffd\\ufffdx\""},                     /* truncated before ASCII */
      {"\x80lone", "\"\\ufffdlone\""},                          /* lone continuation byte */
      {"a\"b\\c\n\t\r\x01\x1f\x7f", "\"a\\\"b\\\\c\\n\\t\\r\\u0001\\u001f\\u007f\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    assert_string_equal(json_of(cases[i].in), cases[i].want);
  assert_true(hcl_utf8_valid("caf\xC3\xA9"));
  assert_false(hcl_utf8_valid("bad\xff"));
  assert_false(hcl_utf8_valid("\xC0\xAF"));
}

/* The command's JSON with bytes that are not UTF-8: a rejected plugin file
 * name in `plugins --json`, a config comment copied into manifest.json. */
static void command_json_is_valid_utf8(void **state) {
  (void)state;
  char dir[1200], cmd[4096];
  snprintf(dir, sizeof dir, "%s/badplugins", hcl_test_tmpdir());
  mkdir(dir, 0777);
  char file[1300];
  snprintf(file, sizeof file, "%s/bad\xff.so", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fputs("not a library", f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s plugins --json --plugin-path %s 2>/dev/null", HCL_TEST_HIERCL, dir);
  assert_int_equal(sh(cmd), 0);
  assert_contains(out, "bad\\ufffd.so");
  assert_true(hcl_utf8_valid(out));
  if (!hcl_test_ctx()) skip();
  const char *p = hcl_test_write_temp(
      "latin1.ini", "; caf\xe9 (Latin-1)\n[target]\nplugin = staircase\nn = 6\nk = 2\n"
                    "[model]\nplugin = resnet\nwidth = 4\ndepth = 2\n"
                    "[train]\nsteps = 2\nbatch = 4\n[eval]\nevery = 0\ntest_size = 16\n");
  hcl_run_options o = {.config_path = p, .plugin_path = HCL_TEST_PLUGIN_DIR, .out_dir = dir};
  char err[4096];
  if (hcl_run(&o, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char path[1300];
  snprintf(path, sizeof path, "%s/manifest.json", o.run_dir);
  char *m = hcl_test_read_file(path);
  assert_non_null(m);
  assert_true(hcl_utf8_valid(m));
  assert_contains(m, "caf\\ufffd (Latin-1)");
  free(m);
}

/* ---- config lines -------------------------------------------------------- */

static void long_line_names_file_line_and_limit(void **state) {
  (void)state;
  /* blanks count: iniparser reads the raw line (1024 bytes at most) */
  char text[2048];
  snprintf(text, sizeof text, "[run]\nseed = 1\n%*s%s\n", 1010, "", "name = x");
  const char *p = hcl_test_write_temp("long.ini", text);
  hcl_config cfg;
  assert_int_equal(hcl_config_load(NULL, p, &cfg), HCL_ERR_CONFIG);
  char want[1200];
  snprintf(want, sizeof want, "%s:3: line of 1018 characters", p);
  assert_contains(hcl_errmsg(NULL), want);
  assert_contains(hcl_errmsg(NULL), "at most 1000");
  hcl_config_free(&cfg);
  /* 1000 characters with CRLF is still fine */
  snprintf(text, sizeof text, "[run]\r\nname = %0993d\r\n", 7);
  p = hcl_test_write_temp("long_ok.ini", text);
  assert_int_equal(hcl_config_load(NULL, p, &cfg), HCL_OK);
  hcl_config_free(&cfg);
}

/* ---- lists and replica counts -------------------------------------------- */

/* "section.key=0,1,...,n-1" (malloc'd). */
static char *long_list(const char *key, size_t n, size_t first) {
  size_t cap = strlen(key) + 2 + n * 12;
  char *s = malloc(cap), *p = s;
  assert_non_null(s);
  p += sprintf(p, "%s=", key);
  for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%zu", i ? "," : "", first + i);
  return s;
}

static void seeds_past_the_replica_cap_are_refused(void **state) {
  (void)state;
  const char *cfg = small_config("seeds.ini");
  char err[4096];
  /* 5000 seeds used to be read into a 4096-entry stack array */
  char *seeds = long_list("run.seeds", 5000, 0);
  const char *sets[] = {seeds};
  assert_int_equal(dry_run(cfg, sets, 1, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "(--set run.seeds): [run] seeds has 5000 values; at most 4096");
  free(seeds);
  /* 4096 seeds are fine, and so are matching train_sizes */
  seeds = long_list("run.seeds", 4096, 0);
  char *sizes = long_list("train.train_sizes", 4096, 1);
  const char *ok[] = {seeds, sizes};
  if (dry_run(cfg, ok, 2, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  free(sizes);
  /* a longer train_sizes list is refused whole, naming the key */
  sizes = long_list("train.train_sizes", 6000, 1);
  const char *bad[] = {seeds, sizes};
  assert_int_equal(dry_run(cfg, bad, 2, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "[train] train_sizes has 6000 values; at most 4096");
  free(sizes);
  free(seeds);
}

static void list_values_are_whole_and_within_limits(void **state) {
  (void)state;
  const char *cfg = small_config("lists.ini");
  char err[4096];
  const char *frac[] = {"run.seeds=1,2", "train.train_sizes=10,7.9"};
  assert_int_equal(dry_run(cfg, frac, 2, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "[train] train_sizes element 2 (7.9) is not a whole number");
  const char *seeds[] = {"run.seeds=1,1.5"};
  assert_int_equal(dry_run(cfg, seeds, 1, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "(--set run.seeds): [run] seeds element 2 (1.5) is not a whole number");
  /* lr_factors beyond the schedule's 64 were dropped silently */
  char *factors = long_list("train.lr_factors", 65, 1);
  const char *sets[] = {"train.schedule=piecewise", "train.lr_every=10", factors};
  assert_int_equal(dry_run(cfg, sets, 3, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "[train] lr_factors has 65 values; at most 64");
  free(factors);
}

/* ---- every check before a device or a directory -------------------------- */

static void unknown_algorithm_fails_before_the_device(void **state) {
  (void)state;
  const char *cfg = small_config("alg.ini");
  char err[4096];
  const char *sets[] = {"train.algorithm=nonsense"};
  assert_int_equal(dry_run(cfg, sets, 1, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "alg.ini (--set train.algorithm): [train] algorithm = 'nonsense'");
  assert_contains(err, "model 'resnet'");
  assert_contains(err, "known: sgd");
  /* from the file: FILE:LINE */
  const char *p = hcl_test_write_temp(
      "alg2.ini", "[target]\nplugin = staircase\nn = 6\nk = 2\n[model]\nplugin = resnet\n"
                  "[train]\nalgorithm = layerwise\n");
  assert_int_equal(dry_run(p, NULL, 0, err, sizeof err), HCL_ERR_CONFIG);
  char want[1200];
  snprintf(want, sizeof want, "%s:8: [train] algorithm = 'layerwise'", p);
  assert_contains(err, want);
  /* an algorithm the model offers passes */
  const char *tl = hcl_test_write_temp(
      "alg3.ini", "[target]\nplugin = single_index\n[model]\nplugin = three_layer\n"
                  "[train]\nalgorithm = ridge\ntrain_size = 10\n");
  if (dry_run(tl, NULL, 0, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  /* the command makes no run directory */
  char outdir[1200], cmd[4096];
  snprintf(outdir, sizeof outdir, "%s/alg_runs", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd, "%s run %s --set train.algorithm=nonsense --out %s", HCL_TEST_HIERCL,
           cfg, outdir);
  assert_int_equal(sh(cmd), 2);
  assert_contains(out, "algorithm = 'nonsense'");
  struct stat st;
  assert_int_not_equal(stat(outdir, &st), 0);
}

/* ---- the command line: any number of options ------------------------------ */

static void many_seed_and_replica_options(void **state) {
  (void)state;
  const char *cfg = small_config("many.ini");
  size_t cap = 64 * 3000 + 4096;
  char *cmd = malloc(cap);
  assert_non_null(cmd);
  /* 300 --seed and 3000 --replicas used to overflow a 256-entry array; the
   * bad algorithm stops the run right after the options are read */
  const char *opts[] = {" --seed 1", " --replicas 2"};
  const size_t counts[] = {300, 3000};
  for (size_t k = 0; k < 2; k++) {
    int len = snprintf(cmd, cap, "%s run %s --set train.algorithm=nonsense", HCL_TEST_HIERCL, cfg);
    for (size_t i = 0; i < counts[k]; i++)
      len += snprintf(cmd + len, cap - (size_t)len, "%s", opts[k]);
    assert_int_equal(sh(cmd), 2);
    assert_contains(out, "algorithm = 'nonsense'");
  }
  /* the last --seed wins, and a value is never cut */
  snprintf(cmd, cap,
           "%s run %s --seed 1 --seed 12345678901234567890123456789012345678901234567890"
           "123456789012345",
           HCL_TEST_HIERCL, cfg);
  assert_int_equal(sh(cmd), 2);
  assert_contains(out,
                  "seed = '12345678901234567890123456789012345678901234567890123456789012345'");
  /* sweep: more --grid options than grid keys allowed get the sweep's own error */
  int len = snprintf(cmd, cap, "%s sweep %s", HCL_TEST_HIERCL, cfg);
  for (int i = 0; i < 300; i++)
    len += snprintf(cmd + len, cap - (size_t)len, " --grid model.w%d=1", i);
  assert_int_equal(sh(cmd), 2);
  assert_contains(out, "at most 8 grid keys");
  free(cmd);
}

/* ---- sweep grid values ----------------------------------------------------- */

static hcl_status sweep_grid(const char *cfg, const char *grid, const char *outdir, char *err,
                             size_t len) {
  const char *g[] = {grid};
  hcl_sweep_options o;
  memset(&o, 0, sizeof o);
  o.run.config_path = cfg;
  o.run.plugin_path = HCL_TEST_PLUGIN_DIR;
  o.run.out_dir = outdir;
  o.grid = g;
  o.n_grid = grid ? 1 : 0;
  return hcl_sweep(&o, err, len);
}

static void grid_values_are_checked_before_anything_runs(void **state) {
  (void)state;
  const char *cfg = small_config("grid.ini");
  char err[4096], outdir[1200];
  snprintf(outdir, sizeof outdir, "%s/grid_runs", hcl_test_tmpdir());
  static const struct {
    const char *grid, *want;
  } bad[] = {
      {"run.seed=abc,7", "--grid: [sweep] run.seed = 'abc': expected an integer"},
      {"run.seed=7.9", "--grid: [sweep] run.seed = '7.9': expected an integer"},
      {"train.train_size=10,7.9", "[sweep] train.train_size = '7.9': expected an integer"},
      {"train.lr=0.1,fast", "[sweep] train.lr = 'fast': expected a finite number"},
      {"train.steps=-1", "[sweep] train.steps = '-1': out of range"},
      {"train.nosuch=1", "[sweep] grid key 'train.nosuch': [train] has no key 'nosuch'"},
      {"model.width=4,\"8\"", "model.width value '\"8\"': quotes, backslashes"},
      {"run.name=a\\b", "run.name value 'a\\b': quotes, backslashes"},
      {"run.name=a\tb", "control characters"},
      {"run.name=caf\xff", "run.name value 1 is not valid UTF-8"},
      /* plugin keys: checked by every point's dry run, still before any directory */
      {"target.n=4,abc", "sweep point target.n=abc:"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (sweep_grid(cfg, bad[i].grid, outdir, err, sizeof err) != HCL_ERR_CONFIG)
      fail_msg("%s: accepted (%s)", bad[i].grid, err);
    assert_contains(err, bad[i].want);
  }
  struct stat st;
  assert_int_not_equal(stat(outdir, &st), 0); /* nothing was created */
  /* a [sweep] section is checked the same way, naming file and line */
  const char *p = hcl_test_write_temp(
      "grid_file.ini", "[target]\nplugin = staircase\nn = 6\nk = 2\n[model]\nplugin = resnet\n"
                       "[sweep]\ntrain.train_size = 10, 2.5\n");
  assert_int_equal(sweep_grid(p, NULL, outdir, err, sizeof err), HCL_ERR_CONFIG);
  char want[1200];
  snprintf(want, sizeof want, "%s:8: [sweep] train.train_size = '2.5'", p);
  assert_contains(err, want);
  /* seeds x sizes batched into one run: the replica cap, before anything is allocated */
  p = hcl_test_write_temp("grid_big.ini",
                          "[target]\nplugin = staircase\nn = 6\nk = 2\n[model]\nplugin = resnet\n"
                          "[sweep]\nrun.seed = 0..255\n");
  assert_int_equal(sweep_grid(p, "train.train_size=1..17", outdir, err, sizeof err),
                   HCL_ERR_CONFIG);
  assert_contains(err, "[sweep] one run would train 4352 replicas");
  assert_int_not_equal(stat(outdir, &st), 0);
}

/* Value lists of any length are read whole (a 4 KiB buffer cut them), and
 * the limits that keep point keys whole are errors, never truncation. */
static void grid_lists_are_read_whole(void **state) {
  (void)state;
  char *text = malloc(250 * 24), *p = text;
  assert_non_null(text);
  for (int i = 0; i < 250; i++) p += sprintf(p, "%s%d%018d", i ? ", " : "", 1 + i % 9, i);
  char **v;
  size_t n;
  if (hcl_sweep_parse_values("model.seedish", text, &v, &n) != HCL_OK)
    fail_msg("%s", hcl_errmsg(NULL));
  assert_int_equal(n, 250);
  assert_string_equal(v[249], "7000000000000000249");
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
  free(text);
  /* a range whose width overflows a long long */
  assert_int_equal(hcl_sweep_parse_values("train.x", "-9..9223372036854775807", &v, &n),
                   HCL_ERR_CONFIG);
  assert_int_equal(hcl_sweep_parse_values("train.x", "geom(1, inf, 3)", &v, &n), HCL_ERR_CONFIG);
  /* a value too long for a point's key */
  char *big = malloc(300);
  assert_non_null(big);
  memset(big, 'a', 299);
  big[299] = 0;
  char *vals[] = {big};
  assert_int_equal(hcl_sweep_check_values("model.name", vals, 1, "--grid"), HCL_ERR_CONFIG);
  assert_contains(hcl_errmsg(NULL), "--grid: [sweep] model.name value 1 is longer than 200");
  free(big);
}

/* Thousands of --set options with a sweep: the text hashed into the sweep's
 * name has room for each option's prefix (a heap overflow past ~700). */
static void sweep_with_thousands_of_sets(void **state) {
  (void)state;
  const char *cfg = small_config("sets.ini");
  enum { N = 3000 };
  const char **sets = calloc(N, sizeof *sets);
  assert_non_null(sets);
  for (size_t i = 0; i < N; i++) sets[i] = "train.steps=1";
  const char *g[] = {"target.n=abc"};
  hcl_sweep_options o;
  memset(&o, 0, sizeof o);
  o.run.config_path = cfg;
  o.run.plugin_path = HCL_TEST_PLUGIN_DIR;
  o.run.sets = sets;
  o.run.n_sets = N;
  char outdir[1200], err[4096];
  snprintf(outdir, sizeof outdir, "%s/sets_runs", hcl_test_tmpdir());
  o.run.out_dir = outdir;
  o.grid = g;
  o.n_grid = 1;
  assert_int_equal(hcl_sweep(&o, err, sizeof err), HCL_ERR_CONFIG);
  assert_contains(err, "sweep point target.n=abc:");
  free(sets);
}

/* Seeds written in float syntax are the seeds they say (1e3 was run as 1). */
static void grid_seeds_in_float_syntax(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = small_config("gseed.ini");
  char err[4096], outdir[1200];
  snprintf(outdir, sizeof outdir, "%s/gseed_runs", hcl_test_tmpdir());
  const char *g[] = {"run.seed=1e3,2e3"};
  hcl_sweep_options o;
  memset(&o, 0, sizeof o);
  o.run.config_path = cfg;
  o.run.plugin_path = HCL_TEST_PLUGIN_DIR;
  o.run.out_dir = outdir;
  o.grid = g;
  o.n_grid = 1;
  if (hcl_sweep(&o, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char path[1300];
  snprintf(path, sizeof path, "%s/sweep.jsonl", o.sweep_dir);
  char *text = hcl_test_read_file(path);
  assert_non_null(text);
  assert_contains(text, "\"seed\":1000,");
  assert_contains(text, "\"seed\":2000,");
  free(text);
}

/* ---- where a bad device selector came from --------------------------------- */

static void device_errors_name_their_source(void **state) {
  (void)state;
  const char *cfg = small_config("dev.ini");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "HIERCL_DEVICE=no-such-dev-xyz %s run %s --out %s/dev_runs",
           HCL_TEST_HIERCL, cfg, hcl_test_tmpdir());
  assert_int_equal(sh(cmd), 3);
  assert_contains(out, "HIERCL_DEVICE='no-such-dev-xyz' (from the environment)");
  snprintf(cmd, sizeof cmd,
           "HIERCL_DEVICE= %s run %s --set runtime.device=no-such-dev-xyz --out %s/dev_runs",
           HCL_TEST_HIERCL, cfg, hcl_test_tmpdir());
  assert_int_equal(sh(cmd), 3);
  assert_contains(out, "dev.ini (--set runtime.device): [runtime] device = 'no-such-dev-xyz'");
  /* --device wins over both and says nothing about them */
  snprintf(cmd, sizeof cmd,
           "HIERCL_DEVICE=cpu %s run %s --device no-such-dev-xyz --out %s/dev_runs",
           HCL_TEST_HIERCL, cfg, hcl_test_tmpdir());
  assert_int_equal(sh(cmd), 3);
  assert_null(strstr(out, "environment"));
  assert_contains(out, "no-such-dev-xyz");
}

/* ---- a failed ridge fit names the plugin, the algorithm and the key -------- */

static void ridge_failure_names_the_lambda_key(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  /* 64 readout features from 4 samples and lambda = 0: singular */
  const char *p = hcl_test_write_temp(
      "ridge.ini", "[target]\nplugin = single_index\nd = 4\n[model]\nplugin = three_layer\n"
                   "m1 = 8\nm2 = 64\nlambda = 0\n[train]\nalgorithm = ridge\ntrain_size = 4\n"
                   "batch = 4\n[eval]\nevery = 0\ntest_size = 8\n");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s run %s --quiet --device cpu --out %s/ridge_runs", HCL_TEST_HIERCL,
           p, hcl_test_tmpdir());
  assert_int_equal(sh(cmd), 1);
  assert_contains(out, "[model] three_layer: algorithm ridge:");
  if (strstr(out, "three_layer: three_layer")) HCL_FAIL_OUT(out, "name twice (output above)");
  assert_contains(out, "increase [model] lambda (now 0)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_escapes_invalid_utf8),
      cmocka_unit_test(command_json_is_valid_utf8),
      cmocka_unit_test(long_line_names_file_line_and_limit),
      cmocka_unit_test(seeds_past_the_replica_cap_are_refused),
      cmocka_unit_test(list_values_are_whole_and_within_limits),
      cmocka_unit_test(unknown_algorithm_fails_before_the_device),
      cmocka_unit_test(many_seed_and_replica_options),
      cmocka_unit_test(grid_values_are_checked_before_anything_runs),
      cmocka_unit_test(grid_lists_are_read_whole),
      cmocka_unit_test(sweep_with_thousands_of_sets),
      cmocka_unit_test(grid_seeds_in_float_syntax),
      cmocka_unit_test(device_errors_name_their_source),
      cmocka_unit_test(ridge_failure_names_the_lambda_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
