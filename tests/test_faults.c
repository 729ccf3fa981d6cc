/* Nothing lost, nothing wrong reported as right: `hiercl run`, `sweep` and
 * `sample` under injected write failures (tests/fault/fault_shim.c, an
 * LD_PRELOAD library failing write, fsync, close, rename, mkdir and
 * creating opens with ENOSPC or EIO at the K-th call or after N bytes).
 * For every fault position of a small sweep: a non-zero exit with one error
 * line naming the file and the OS error, no .tmp file left, no point
 * recorded done without its metrics, and a resumed sweep whose table.tsv and
 * pstar.json are byte-identical to an uninterrupted one's. Also: a torn last
 * line of sweep.jsonl, an --out path too long, run directory collisions. */
#include "hcl_test.h"
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* Paths here are short temporary ones; the generous buffers cannot overflow. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char out[1 << 16];
static int g_faults; /* fault positions injected, reported at the end */

/* Run a shell command; stdout+stderr into out; the exit status. */
static int sh(const char *cmd) { return hcl_test_sh(cmd, out, sizeof out); }

static const char *config(void) {
  static const char *p;
  if (!p)
    p = hcl_test_write_temp("f.ini", "[target]\nplugin = staircase\nn = 8\nk = 2\n"
                                     "probe_samples = 50\n"
                                     "[model]\nplugin = resnet\nwidth = 8\ndepth = 2\n"
                                     "[train]\nsteps = 20\nbatch = 8\nlr = 0.05\n"
                                     "[eval]\nevery = 10\ntest_size = 64\n"
                                     "[sweep]\ntrain.train_size = 8, 64\nrun.seed = 0..1\n"
                                     "threshold = 0.9\n");
  return p;
}

/* The environment that loads the shim for one command ("" = no fault). */
static void fault_env(char *env, size_t len, const char *dir, const char *log, const char *what) {
  snprintf(env, len,
           "ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:verify_asan_link_order=0\" LD_PRELOAD=%s "
           "HIERCL_FAULT_DIR=%s "
           "HIERCL_FAULT_LOG=%s %s",
           HCL_TEST_FAULT_SHIM, dir, log, what);
}

static int sweep_cmd(const char *env, const char *dir) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s sweep %s --out %s --device cpu --plugin-path %s", env,
           HCL_TEST_HIERCL, config(), dir, HCL_TEST_PLUGIN_DIR);
  return sh(cmd);
}

static int run_cmd(const char *env, const char *dir) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s run %s --out %s --device cpu --quiet --plugin-path %s", env,
           HCL_TEST_HIERCL, config(), dir, HCL_TEST_PLUGIN_DIR);
  return sh(cmd);
}

/* The counted calls of a fault log: "K op path bytes" per line. */
typedef struct call {
  char op[16], path[1024];
  long bytes;
} call;

static size_t read_log(const char *log, call *c, size_t max) {
  FILE *f = fopen(log, "r");
  if (!f) return 0;
  size_t n = 0;
  long k;
  while (n < max && fscanf(f, "%ld %15s %1023s %ld", &k, c[n].op, c[n].path, &c[n].bytes) == 4) n++;
  fclose(f);
  return n;
}

/* The file an error must name for a fault on c: the real name of a
 * temporary (<dir>/.<name>.tmp -> <dir>/<name>); a folder's own path
 * (a message naming a file in it contains it). */
static void expected_name(const call *c, char *name, size_t len) {
  snprintf(name, len, "%s", c->path);
  char *slash = strrchr(name, '/');
  size_t l = strlen(name);
  if (slash && slash[1] == '.' && l > 4 && !strcmp(name + l - 4, ".tmp")) {
    name[l - 4] = 0;
    memmove(slash + 1, slash + 2, strlen(slash + 2) + 1);
  }
}

/* Exactly one "hiercl: error:" line, naming `name` and the OS error. */
static void assert_one_error_line(const char *name, const char *oserr) {
  const char *e = strstr(out, "hiercl: error: ");
  if (!e) HCL_FAIL_OUT(out, "no error line; output (output above)");
  assert_null(strstr(e + 1, "hiercl: error: "));
  const char *nl = strchr(e, '\n');
  size_t len = nl ? (size_t)(nl - e) : strlen(e);
  char line[8192];
  snprintf(line, sizeof line, "%.*s", (int)len, e);
  if (!strstr(line, name) || !strstr(line, oserr))
    fail_msg("error line does not name %s and '%s':\n%s", name, oserr, line);
}

static int count_files(const char *dir, const char *pattern) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "find %s -name '%s' 2>/dev/null | wc -l", dir, pattern);
  FILE *p = popen(cmd, "r");
  int n = -1;
  assert_int_equal(fscanf(p, "%d", &n), 1);
  pclose(p);
  return n;
}

/* The only sweep directory under parent (its path into dir). */
static int sweep_dir(const char *parent, char *dir, size_t len) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "ls -d %s/sweep_* 2>/dev/null", parent);
  FILE *p = popen(cmd, "r");
  int ok = fgets(dir, (int)len, p) != NULL;
  pclose(p);
  if (ok) dir[strcspn(dir, "\n")] = 0;
  return ok;
}

static char *file_in(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return hcl_test_read_file(p);
}

/* sweep.jsonl holds whole lines only, and every "completed" record carries
 * its metrics and points at a run whose summary.json says completed. */
static void assert_records_whole(const char *sdir) {
  char *j = file_in(sdir, "sweep.jsonl");
  if (!j) return;
  size_t n = strlen(j);
  if (n && j[n - 1] != '\n') fail_msg("sweep.jsonl ends in a torn line:\n%s", j);
  for (char *line = j; *line;) {
    char *nl = strchr(line, '\n');
    *nl = 0;
    assert_true(line[0] == '{' && nl[-1] == '}');
    if (strstr(line, "\"status\":\"completed\"")) {
      assert_non_null(strstr(line, "\"best_test_loss\":"));
      assert_non_null(strstr(line, "\"test_loss\":"));
      char *rd = strstr(line, "\"run_dir\":\"");
      assert_non_null(rd);
      rd += 11;
      *strchr(rd, '"') = 0;
      char *sum = file_in(rd, "summary.json");
      assert_non_null(sum);
      assert_non_null(strstr(sum, "\"status\":\"completed\""));
      free(sum);
    }
    line = nl + 1;
  }
  free(j);
}

typedef struct reference {
  char *table, *pstar;
  call calls[256];
  size_t n_calls;
} reference;

static reference g_ref;

/* An uninterrupted sweep: the table and P* every other sweep must match. */
static void reference_tables(void) {
  if (g_ref.table) return;
  char dir[1024], sdir[2048];
  snprintf(dir, sizeof dir, "%s/plain", hcl_test_tmpdir());
  if (sweep_cmd("", dir) != 0) HCL_FAIL_OUT(out, "reference sweep failed (output above)");
  assert_true(sweep_dir(dir, sdir, sizeof sdir));
  g_ref.table = file_in(sdir, "table.tsv");
  g_ref.pstar = file_in(sdir, "pstar.json");
  assert_non_null(g_ref.table);
  assert_non_null(g_ref.pstar);
  /* both seeds counted at both sizes, and a P* found */
  assert_non_null(strstr(g_ref.table, "\n8\t2\t"));
  assert_non_null(strstr(g_ref.table, "\n64\t2\t"));
  /* the group's own P* (the first after its name; each seed's follows and
   * may be null) */
  const char *g = strstr(g_ref.pstar, "\"group\":"), *p = g ? strstr(g, ",\"pstar\":") : NULL;
  assert_non_null(p);
  assert_true(strncmp(p + strlen(",\"pstar\":"), "null", 4) != 0);
}

/* The same sweep through the shim without a fault: its counted calls are
 * the fault positions; the results are the same as without the shim. */
static void reference_sweep(void) {
  reference_tables();
  if (g_ref.n_calls) return;
  char dir[1024], log[1100], env[4096], sdir[2048];
  snprintf(dir, sizeof dir, "%s/ref", hcl_test_tmpdir());
  snprintf(log, sizeof log, "%s/ref.log", hcl_test_tmpdir());
  fault_env(env, sizeof env, dir, log, "");
  if (sweep_cmd(env, dir) != 0) HCL_FAIL_OUT(out, "reference sweep failed (output above)");
  assert_true(sweep_dir(dir, sdir, sizeof sdir));
  char *t = file_in(sdir, "table.tsv");
  assert_non_null(t);
  assert_string_equal(t, g_ref.table);
  free(t);
  g_ref.n_calls = read_log(log, g_ref.calls, 256);
  /* every kind of file the sweep keeps is written through the shim */
  const char *files[] = {"manifest.json", "metrics.jsonl", "summary.json",
                         "sweep.jsonl",   "table.tsv",     "pstar.json"};
  for (size_t i = 0; i < 6; i++) {
    int seen = 0;
    for (size_t k = 0; k < g_ref.n_calls; k++)
      seen |= !strcmp(g_ref.calls[k].op, "write") && strstr(g_ref.calls[k].path, files[i]);
    if (!seen) fail_msg("no write of %s went through the shim", files[i]);
  }
  assert_true(g_ref.n_calls >= 30);
}

/* After a failed sweep in dir: its files are whole; a plain re-run
 * completes it with the uninterrupted sweep's table and P*, byte for byte. */
static void check_and_resume(const char *dir) {
  char sdir[2048];
  assert_int_equal(count_files(dir, "*.tmp"), 0);
  if (sweep_dir(dir, sdir, sizeof sdir)) {
    assert_records_whole(sdir);
    char *t = file_in(sdir, "table.tsv"); /* written only from whole records */
    if (t) assert_string_equal(t, g_ref.table);
    free(t);
  }
  if (sweep_cmd("", dir) != 0) HCL_FAIL_OUT(out, "resumed sweep failed (output above)");
  assert_true(sweep_dir(dir, sdir, sizeof sdir));
  assert_records_whole(sdir);
  char *t = file_in(sdir, "table.tsv"), *p = file_in(sdir, "pstar.json");
  assert_non_null(t);
  assert_non_null(p);
  assert_string_equal(t, g_ref.table);
  assert_string_equal(p, g_ref.pstar);
  free(t), free(p);
}

/* Every counted call of the sweep fails once in turn: transient EIO, or a
 * disk that stays full (ENOSPC from that call on). */
static void sweep_every_fault_position(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  reference_sweep();
  for (size_t k = 1; k <= g_ref.n_calls; k++) {
    char dir[1024], log[1100], env[4096], what[128], name[1024];
    int full = k % 2;
    snprintf(dir, sizeof dir, "%s/k%zu", hcl_test_tmpdir(), k);
    snprintf(log, sizeof log, "%s/k%zu.log", hcl_test_tmpdir(), k);
    snprintf(what, sizeof what, "HIERCL_FAULT_AT=%zu HIERCL_FAULT_STICKY=%d HIERCL_FAULT_ERRNO=%s",
             k, full, full ? "ENOSPC" : "EIO");
    fault_env(env, sizeof env, dir, log, what);
    int rc = sweep_cmd(env, dir);
    g_faults++;
    if (rc != 1) HCL_FAIL_OUT(out, "fault %zu (%s): exit %d, not 1 (output above)", k, what, rc);
    call c[256];
    size_t n = read_log(log, c, 256);
    assert_true(n >= k);
    expected_name(&c[k - 1], name, sizeof name);
    assert_one_error_line(name, full ? "No space left on device" : "Input/output error");
    check_and_resume(dir);
  }
}

/* A disk that holds N bytes (the 68 KB tmpfs of the report, scaled down):
 * writes stop with ENOSPC part-way through. */
static void sweep_disk_full_after_bytes(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  reference_sweep();
  long total = 0;
  for (size_t k = 0; k < g_ref.n_calls; k++) total += g_ref.calls[k].bytes;
  for (int i = 0; i < 8; i++) {
    char dir[1024], log[1100], env[4096], what[128];
    long limit = total * i / 8 + (i ? 7 : 0); /* not on a write's boundary */
    snprintf(dir, sizeof dir, "%s/b%d", hcl_test_tmpdir(), i);
    snprintf(log, sizeof log, "%s/b%d.log", hcl_test_tmpdir(), i);
    snprintf(what, sizeof what, "HIERCL_FAULT_AFTER_BYTES=%ld", limit);
    fault_env(env, sizeof env, dir, log, what);
    int rc = sweep_cmd(env, dir);
    g_faults++;
    if (rc != 1) HCL_FAIL_OUT(out, "disk of %ld bytes: exit %d, not 1 (output above)", limit, rc);
    assert_one_error_line(hcl_test_tmpdir(), "No space left on device");
    check_and_resume(dir);
  }
}

/* hiercl run: a failure in any of its writes exits 1 naming the file; the
 * metrics written before it stay, whole lines only; no .tmp is left. */
static void run_every_fault_site(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char dir[1024], log[1100], env[4096];
  snprintf(dir, sizeof dir, "%s/run-ref", hcl_test_tmpdir());
  snprintf(log, sizeof log, "%s/run-ref.log", hcl_test_tmpdir());
  fault_env(env, sizeof env, dir, log, "");
  if (run_cmd(env, dir) != 0) HCL_FAIL_OUT(out, "reference run failed (output above)");
  static call ref[256];
  size_t n = read_log(log, ref, 256), last_metrics = 0;
  assert_true(n >= 15);
  int ref_lines = 0;
  for (size_t k = 0; k < n; k++)
    if (!strcmp(ref[k].op, "write") && strstr(ref[k].path, "metrics.jsonl")) last_metrics = k + 1;
  {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cat %s/*/metrics.jsonl | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_int_equal(fscanf(p, "%d", &ref_lines), 1);
    pclose(p);
  }
  for (size_t k = 1; k <= n; k++) {
    char d[1024], what[128], name[1024];
    snprintf(d, sizeof d, "%s/run%zu", hcl_test_tmpdir(), k);
    snprintf(log, sizeof log, "%s/run%zu.log", hcl_test_tmpdir(), k);
    snprintf(what, sizeof what, "HIERCL_FAULT_AT=%zu HIERCL_FAULT_ERRNO=%s", k,
             k % 2 ? "ENOSPC" : "EIO");
    fault_env(env, sizeof env, d, log, what);
    int rc = run_cmd(env, d);
    g_faults++;
    if (rc != 1)
      HCL_FAIL_OUT(out, "run fault %zu (%s): exit %d, not 1 (output above)", k, ref[k - 1].op, rc);
    static call c[256];
    assert_true(read_log(log, c, 256) >= k);
    expected_name(&c[k - 1], name, sizeof name);
    assert_one_error_line(name, k % 2 ? "No space left on device" : "Input/output error");
    assert_null(strstr(out, "error:  (")); /* never an empty cause */
    assert_int_equal(count_files(d, "*.tmp"), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cat %s/*/metrics.jsonl 2>/dev/null", d);
    FILE *p = popen(cmd, "r");
    char buf[65536];
    size_t got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    pclose(p);
    int lines = 0;
    for (char *c = buf; *c; c++) lines += *c == '\n';
    assert_true(!got || buf[got - 1] == '\n');                /* whole lines only */
    if (k > last_metrics) assert_int_equal(lines, ref_lines); /* all kept */
  }
}

/* A torn last line (a crash mid-append) and a missing record: the resumed
 * sweep cuts the torn line, re-runs the incomplete point and reports what
 * an uninterrupted sweep reports. */
static void sweep_torn_last_line(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  reference_tables();
  char dir[1024], sdir[2048], cmd[8192];
  snprintf(dir, sizeof dir, "%s/torn", hcl_test_tmpdir());
  assert_int_equal(sweep_cmd("", dir), 0);
  assert_true(sweep_dir(dir, sdir, sizeof sdir));
  /* drop the last record (one seed of one point) and leave half a line */
  snprintf(
      cmd, sizeof cmd,
      "cd %s && head -n 3 sweep.jsonl > s && printf '%%s' '{\"point\":{\"train.train_size\":\"6' "
      ">> s && mv s sweep.jsonl",
      sdir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(sweep_cmd("", dir), 0);
  assert_non_null(strstr(out, "torn"));
  assert_records_whole(sdir);
  char *j = file_in(sdir, "sweep.jsonl"), *t = file_in(sdir, "table.tsv"),
       *p = file_in(sdir, "pstar.json");
  int completed = 0;
  for (const char *c = j; (c = strstr(c, "\"status\":\"completed\"")); c++) completed++;
  assert_int_equal(completed, 4);
  assert_string_equal(t, g_ref.table);
  assert_string_equal(p, g_ref.pstar);
  free(j), free(t), free(p);
  /* an invalid (not torn) last line goes too */
  FILE *f = fopen(strcat(strcpy(cmd, sdir), "/sweep.jsonl"), "a");
  fputs("{\"point\":garbage}\n", f);
  fclose(f);
  assert_int_equal(sweep_cmd("", dir), 0);
  assert_records_whole(sdir);
  /* a "completed" record without its metrics (as a full disk once made
   * them) is not done: that point runs again, and the numbers hold */
  snprintf(cmd, sizeof cmd, "cd %s && sed -i '1s/,\"best_test_loss\".*}$/}/' sweep.jsonl", sdir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(sweep_cmd("", dir), 0);
  assert_non_null(strstr(out, "[1/1]")); /* it ran */
  t = file_in(sdir, "table.tsv"), p = file_in(sdir, "pstar.json");
  assert_string_equal(t, g_ref.table);
  assert_string_equal(p, g_ref.pstar);
  free(t), free(p);
}

/* An --out path too long is refused before anything runs, never cut (a cut
 * path made every run of a day share one directory). */
static void long_out_refused(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char longp[2048], cmd[4096];
  int n = snprintf(longp, sizeof longp, "%s/long", hcl_test_tmpdir());
  while (n < 1100) n += snprintf(longp + n, sizeof longp - (size_t)n, "/%0100d", 7);
  const char *verbs[] = {"run", "sweep"};
  for (int v = 0; v < 2; v++) {
    snprintf(cmd, sizeof cmd, "%s %s %s --out %s --device cpu --plugin-path %s", HCL_TEST_HIERCL,
             verbs[v], config(), longp, HCL_TEST_PLUGIN_DIR);
    assert_int_equal(sh(cmd), 2);
    assert_non_null(strstr(out, "--out"));
    assert_non_null(strstr(out, "PATH_MAX"));
    assert_non_null(strstr(out, "too long"));
    char first[1100];
    snprintf(first, sizeof first, "%s/long", hcl_test_tmpdir());
    struct stat st;
    assert_int_not_equal(stat(first, &st), 0); /* nothing created */
  }
}

/* Run directories are new each time; when every name is taken the run fails
 * instead of writing into an existing run's directory. */
static void run_dir_never_reused(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  char parent[1024];
  snprintf(parent, sizeof parent, "%s/coll", hcl_test_tmpdir());
  hcl_run_out a, b;
  memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
  assert_int_equal(hcl_out_open(ctx, &a, parent, "x"), HCL_OK);
  assert_int_equal(hcl_out_open(ctx, &b, parent, "x"), HCL_OK);
  assert_string_not_equal(a.dir, b.dir);
  assert_int_equal(hcl_out_close(&a), HCL_OK);
  assert_int_equal(hcl_out_close(&b), HCL_OK);
  /* take every name for this second and the next few */
  char slug[96], d[2048];
  snprintf(slug, sizeof slug, "%s", ctx->dev.id);
  for (char *c = slug; *c; c++)
    if (*c == ':') *c = '-';
  time_t now = time(NULL);
  for (int s = 0; s < 4; s++) {
    char stamp[32];
    time_t t = now + s;
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime(&t));
    for (int k = 1; k < 1000; k++) {
      if (k == 1)
        snprintf(d, sizeof d, "%s/%s_y_%s", parent, stamp, slug);
      else
        snprintf(d, sizeof d, "%s/%s_y_%s-%d", parent, stamp, slug, k);
      mkdir(d, 0777);
    }
  }
  hcl_run_out c;
  memset(&c, 0, sizeof c);
  assert_int_equal(hcl_out_open(ctx, &c, parent, "y"), HCL_ERR_IO);
  assert_non_null(strstr(hcl_errmsg(ctx), "names taken"));
  hcl_out_close(&c);
  assert_int_equal(count_files(parent, "metrics.jsonl"), 2); /* none written into a taken one */
}

/* hiercl sample: a failed write names the file and the OS error, and leaves
 * no file that looks complete. */
static void sample_write_failure(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *fmts[] = {"csv", "npy"};
  for (int i = 0; i < 4; i++) {
    char dir[1024], file[1100], log[1100], env[4096], what[64], cmd[8192];
    snprintf(dir, sizeof dir, "%s/sample%d", hcl_test_tmpdir(), i);
    mkdir(dir, 0777);
    snprintf(file, sizeof file, "%s/s.%s", dir, fmts[i % 2]);
    snprintf(log, sizeof log, "%s/sample%d.log", hcl_test_tmpdir(), i);
    /* the header, a data chunk, the fsync, the rename */
    static const char *at[] = {"HIERCL_FAULT_AT=2", "HIERCL_FAULT_AFTER_BYTES=5000",
                               "HIERCL_FAULT_AT=4", "HIERCL_FAULT_AT=6"};
    snprintf(what, sizeof what, "%s", at[i]);
    fault_env(env, sizeof env, dir, log, what);
    snprintf(cmd, sizeof cmd, "%s %s sample %s --n 10000 --format %s --out %s --device cpu", env,
             HCL_TEST_HIERCL, config(), fmts[i % 2], file);
    int rc = sh(cmd);
    g_faults++;
    if (rc != 1) HCL_FAIL_OUT(out, "sample fault %s: exit %d (output above)", what, rc);
    assert_one_error_line(file, "No space left on device");
    struct stat st;
    assert_int_not_equal(stat(file, &st), 0);
    assert_int_equal(count_files(dir, "*"), 1); /* the folder itself: no partial, no .tmp */
  }
}

static int report(void **state) {
  (void)state;
  fprintf(stderr, "fault positions injected: %d\n", g_faults);
  free(g_ref.table), free(g_ref.pstar);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(long_out_refused),
      cmocka_unit_test(run_dir_never_reused),
      cmocka_unit_test(sample_write_failure),
      cmocka_unit_test(run_every_fault_site),
      cmocka_unit_test(sweep_torn_last_line),
      cmocka_unit_test(sweep_every_fault_position),
      cmocka_unit_test(sweep_disk_full_after_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, report);
}
