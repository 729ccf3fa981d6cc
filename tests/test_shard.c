/* Sharded sweeps, as a Slurm job array runs them: `hiercl sweep --shard I/N`
 * (or the array task's own), --status, --merge, --slurm. Checked through the
 * built command: the union of the shards is every point once, a merge gives
 * the bytes of a single-process sweep, a failed point fails its shard. */
#include "hcl_test.h"
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char out[1 << 16];

/* Run a shell command; stdout (+ stderr when both) into out; its exit status. */
static int sh_to(int both, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
  va_end(ap);
  assert_true(n > 0 && n < (int)sizeof cmd - 8);
  if (both) strcat(cmd, " 2>&1");
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t got = fread(out, 1, sizeof out - 1, p);
  out[got] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#define sh(...) sh_to(1, __VA_ARGS__)
#define sh_stdout(...) sh_to(0, __VA_ARGS__)

static int count(const char *text, const char *pat) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, pat)); p++) n++;
  return n;
}

/* A fresh path under the program's temporary directory (made when mk). */
static const char *subdir(const char *name, int mk) {
  static char paths[8][512];
  static int slot;
  char *p = paths[slot++ % 8];
  snprintf(p, 512, "%s/%s", hcl_test_tmpdir(), name);
  if (mk) assert_int_equal(mkdir(p, 0777), 0);
  return p;
}

static const char *device(void) {
  const char *d = getenv("HIERCL_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

/* train sizes batch (one run per width): 5 runs of 2 points, 2 seeds each */
static const char cfg_text[] = "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 100\n"
                               "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                               "[train]\nsteps = 300\nbatch = 16\nlr = 0.05\n"
                               "[eval]\nevery = 300\ntest_size = 300\n"
                               "[sweep]\ntrain.train_size = 8, 2000\nrun.seed = 0..1\n"
                               "threshold = 0.2\n";
static const char *widths[] = {"8", "12", "16", "20", "24"};

/* --status --shard I/N for N = 1, 2, 3, 5: every point in exactly one shard,
 * the one its run (its width: sizes are batched) belongs to, j % N — the
 * shares do not depend on what is done, and nothing runs (no device). */
static void shards_cover_every_point_once(void **state) {
  (void)state;
  const char *cfg = hcl_test_write_temp("sh.ini", cfg_text);
  const char *dir = subdir("cover", 0);
  static const unsigned Ns[] = {1, 2, 3, 5};
  for (size_t t = 0; t < 4; t++) {
    unsigned N = Ns[t];
    int seen[2][5] = {{0}};
    for (unsigned I = 0; I < N; I++) {
      int rc = sh_stdout("%s sweep %s --out %s --grid 'model.width=8, 12, 16, 20, 24' --status "
                         "--shard %u/%u",
                         HCL_TEST_HIERCL, cfg, dir, I, N);
      assert_int_equal(rc, 4); /* all pending */
      for (const char *l = out; (l = strstr(l, "pending  train.train_size=")); l++) {
        char size[16], width[16];
        unsigned run, si, sn;
        assert_int_equal(sscanf(l,
                                "pending  train.train_size=%15[0-9];model.width=%15[0-9]  [run "
                                "%u, shard %u/%u]",
                                size, width, &run, &si, &sn),
                         5);
        size_t w = 0;
        while (w < 5 && strcmp(widths[w], width)) w++;
        assert_true(w < 5);
        assert_int_equal(run, w); /* runs in grid order: one per width */
        assert_int_equal(si, I);
        assert_int_equal(sn, N);
        assert_int_equal(w % N, I);
        seen[strcmp(size, "8") != 0][w]++;
      }
      char want[64];
      snprintf(want, sizeof want, "shard %u/%u: ", I, N);
      assert_non_null(strstr(out, want));
    }
    for (int s = 0; s < 2; s++)
      for (int w = 0; w < 5; w++) assert_int_equal(seen[s][w], 1);
  }
  /* no sweep directory was made by --status */
  assert_int_equal(sh("ls %s 2>/dev/null | wc -l", dir), 0);
  assert_int_equal(atoi(out), 0);
}

/* Shards of one sweep, one taken from the Slurm array variables, then
 * --merge: table.tsv and pstar.json are the bytes of a single-process sweep;
 * each (point, seed) is recorded by exactly one shard; --slurm --submit
 * submits only the unfinished shard and nothing once all are done. */
static void shards_merge_to_single_process_bytes(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp("sm.ini", cfg_text);
  const char *one = subdir("one", 0), *sharded = subdir("sharded", 0), *bin = subdir("bin", 1);
  const char *grid = "--grid 'model.width=8, 16, 24'";
  char common[2048];
  snprintf(common, sizeof common, "--device %s --plugin-path %s %s --set train.steps=300", device(),
           HCL_TEST_PLUGIN_DIR, grid);
  if (sh("%s sweep %s --out %s %s", HCL_TEST_HIERCL, cfg, one, common))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  /* a fake sbatch that records its arguments */
  char fake[1200];
  snprintf(fake, sizeof fake, "%s/sbatch", bin);
  FILE *f = fopen(fake, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\necho \"$@\" >> %s/sbatch.args\necho Submitted batch job 42\n", bin);
  fclose(f);
  chmod(fake, 0755);
  /* shard 0 of 2 (runs 0 and 2) given on the command line */
  if (sh("%s sweep %s --out %s %s --shard 0/2", HCL_TEST_HIERCL, cfg, sharded, common))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "hiercl sweep: shard 0/2: 1/2 runs done")); /* progress names it */
  assert_int_equal(sh("ls -d %s/sweep_sm_*", sharded), 0);                /* the sweep directory */
  char sdir[1200];
  snprintf(sdir, sizeof sdir, "%.*s", (int)strcspn(out, "\n"), out);
  char path[1400];
  struct stat st;
  snprintf(path, sizeof path, "%s/table.tsv", sdir);
  assert_int_not_equal(stat(path, &st), 0); /* a shard leaves the table to the merge */
  assert_int_equal(sh("%s sweep %s --out %s %s --status", HCL_TEST_HIERCL, cfg, sharded, common),
                   4);
  assert_non_null(strstr(out, "6 points (3 runs in all): 4 done, 0 failed, 2 pending"));
  /* --slurm --submit with shard 0 done: the script, and sbatch for task 1 only */
  if (sh("PATH=%s:$PATH %s sweep %s --out %s %s --slurm --tasks 2 --submit -- "
         "--partition=gpu '--time=1:00:00'",
         bin, HCL_TEST_HIERCL, cfg, sharded, common))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  snprintf(path, sizeof path, "%s/array.sbatch", sdir);
  char *script = hcl_test_read_file(path);
  assert_non_null(script);
  assert_non_null(strstr(script, "#!/bin/bash\n"));
  assert_non_null(strstr(script, "\n#SBATCH --array=0-1\n"));
  assert_non_null(strstr(script, "\n#SBATCH --output=/")); /* absolute */
  assert_non_null(strstr(script, "/slurm-%A_%a.out\n"));
  assert_non_null(strstr(script, "\n#SBATCH --partition=gpu\n#SBATCH --time=1:00:00\n"));
  assert_non_null(strstr(script, " --shard \"${SLURM_ARRAY_TASK_ID}/2\" --out '/"));
  assert_non_null(strstr(script, " --grid 'model.width=8, 16, 24'"));
  assert_non_null(strstr(script, " --set 'train.steps=300'"));
  char want[1400];
  snprintf(want, sizeof want, " sweep '%s' ", cfg); /* absolute: tmpdir is */
  assert_non_null(strstr(script, want));
  free(script);
  snprintf(path, sizeof path, "%s/sbatch.args", bin);
  char *args = hcl_test_read_file(path);
  assert_non_null(args);
  snprintf(want, sizeof want, "--array=1 %s/array.sbatch\n", sdir);
  assert_non_null(strstr(args, want));
  free(args);
  /* shard 1 of 2 from a Slurm array task: --array=4-5, this is task 5 */
  if (sh("SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_COUNT=2 %s sweep %s "
         "--out %s %s",
         HCL_TEST_HIERCL, cfg, sharded, common))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "hiercl sweep: shard 1/2: 1/1 runs done"));
  /* each (point, seed) in exactly one shard file */
  for (int s = 0; s < 2; s++) {
    snprintf(path, sizeof path, "%s/sweep.shard-%d-of-2.jsonl", sdir, s);
    char *rec = hcl_test_read_file(path);
    assert_non_null(rec);
    for (int w = 0; w < 3; w++)
      for (int seed = 0; seed < 2; seed++)
        for (int size = 0; size < 2; size++) {
          char key[128];
          snprintf(key, sizeof key,
                   "\"key\":\"train.train_size=%s;model.width=%d\",\"seed\":%d,\"status\":"
                   "\"completed\"",
                   size ? "2000" : "8", 8 * (w + 1), seed);
          assert_int_equal(count(rec, key), (w % 2 == s) ? 1 : 0);
        }
    assert_int_equal(count(rec, "\n"), s == 0 ? 8 : 4);
    free(rec);
  }
  /* the script runs a task as Slurm would: its shard is done, nothing trains */
  snprintf(path, sizeof path, "%s/array.sbatch", sdir);
  assert_int_equal(sh("SLURM_ARRAY_TASK_ID=1 bash %s", path), 0);
  assert_non_null(strstr(out, "shard 1/2: 1 of 1 runs already done"));
  /* merged: the single-process bytes */
  assert_int_equal(sh_stdout("%s sweep %s --out %s %s --merge 2>/dev/null", HCL_TEST_HIERCL, cfg,
                             sharded, common),
                   0);
  assert_non_null(strstr(out, "train.train_size=2000;model.width=24"));
  const char *files[] = {"table.tsv", "pstar.json"};
  assert_int_equal(sh("ls -d %s/sweep_sm_*", one), 0);
  char odir[1200];
  snprintf(odir, sizeof odir, "%.*s", (int)strcspn(out, "\n"), out);
  for (int i = 0; i < 2; i++) {
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s", odir, files[i]);
    snprintf(b, sizeof b, "%s/%s", sdir, files[i]);
    char *x = hcl_test_read_file(a), *y = hcl_test_read_file(b);
    assert_non_null(x);
    assert_non_null(y);
    assert_string_equal(x, y);
    free(x), free(y);
  }
  snprintf(path, sizeof path, "%s/sweep.jsonl", sdir);
  char *merged = hcl_test_read_file(path);
  assert_non_null(merged);
  assert_int_equal(count(merged, "\"status\":\"completed\""), 12);
  /* grid order, then seed order */
  const char *first = strstr(merged, "model.width=8\",\"seed\":0,");
  const char *second = strstr(merged, "model.width=8\",\"seed\":1,");
  const char *third = strstr(merged, "model.width=16\",\"seed\":0,");
  assert_true(first && second && third && first < second && second < third);
  free(merged);
  assert_int_equal(sh("%s sweep %s --out %s %s --status", HCL_TEST_HIERCL, cfg, sharded, common),
                   0);
  assert_non_null(strstr(out, "6 done, 0 failed, 0 pending"));
  /* all done: --submit submits nothing */
  snprintf(path, sizeof path, "%s/sbatch.args", bin);
  remove(path);
  assert_int_equal(sh("PATH=%s:$PATH %s sweep %s --out %s %s --slurm --tasks 2 --submit", bin,
                      HCL_TEST_HIERCL, cfg, sharded, common),
                   0);
  assert_non_null(strstr(out, "nothing submitted"));
  assert_int_not_equal(stat(path, &st), 0);
}

/* A point that fails (its activations exceed the device memory limit) makes
 * its shard exit 1 — a Slurm array task reported FAILED — while the other
 * shard succeeds; --status and --merge report it failed, with its error. */
static void failed_point_fails_its_shard(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp("sf.ini", cfg_text);
  const char *dir = subdir("failing", 0);
  char common[2048];
  snprintf(common, sizeof common,
           "--device %s --plugin-path %s --grid 'model.width=16, 300' --set train.steps=50",
           device(), HCL_TEST_PLUGIN_DIR);
  assert_int_equal(sh("HIERCL_DEVICE_MEM_LIMIT=3000000 %s sweep %s --out %s %s --shard 1/2",
                      HCL_TEST_HIERCL, cfg, dir, common),
                   1);
  assert_non_null(strstr(out, "shard 1/2: 1 sweep point(s) failed (model.width=300); see "));
  assert_non_null(strstr(out, "sweep.shard-1-of-2.jsonl"));
  assert_int_equal(sh("HIERCL_DEVICE_MEM_LIMIT=3000000 %s sweep %s --out %s %s --shard 0/2",
                      HCL_TEST_HIERCL, cfg, dir, common),
                   0);
  assert_int_equal(sh_stdout("%s sweep %s --out %s %s --status", HCL_TEST_HIERCL, cfg, dir, common),
                   1);
  assert_int_equal(count(out, "\ndone     train.train_size="), 1);
  assert_int_equal(strncmp(out, "done     train.train_size=8;model.width=16\n", 43), 0);
  assert_int_equal(count(out, "failed   train.train_size="), 2);
  assert_non_null(strstr(out, "failed   train.train_size=8;model.width=300  (0 of 2 seeds "
                              "done): "));
  assert_non_null(strstr(out, "width = 300 "));
  assert_non_null(strstr(out, "HIERCL_DEVICE_MEM_LIMIT"));
  assert_non_null(strstr(out, "4 points (2 runs in all): 2 done, 2 failed, 0 pending"));
  assert_int_equal(sh("%s sweep %s --out %s %s --merge", HCL_TEST_HIERCL, cfg, dir, common), 1);
  assert_non_null(strstr(out, "2 points done, 2 failed, 0 pending"));
  /* re-run unsharded without the limit: only the failed run trains, and the
   * table gathers every shard's records */
  if (sh("%s sweep %s --out %s %s", HCL_TEST_HIERCL, cfg, dir, common))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "1 of 2 runs already done"));
  assert_non_null(strstr(out, "[1/1] model.width=300 "));
  assert_int_equal(count(out, "\ntrain.train_size="), 4);
  assert_int_equal(count(out, "  (incomplete"), 0);
  assert_int_equal(sh("%s sweep %s --out %s %s --status", HCL_TEST_HIERCL, cfg, dir, common), 0);
  assert_non_null(strstr(out, "4 done, 0 failed, 0 pending"));
}

/* Selection across shards: a point's candidates (widths, one run each) train
 * in different shards, so no shard sees them all until the last; --merge
 * makes any selection left and gives the single-process table and P*. */
static void selection_across_shards(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp(
      "ss.ini", "[target]\nplugin = staircase\nn = 8\nk = 2\n"
                "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                "[train]\nsteps = 200\nbatch = 16\nlr = 0.05\n"
                "[eval]\nevery = 0\ntest_size = 200\nval_size = 100\n"
                "[sweep]\ntrain.train_size = 64, 1000\nrun.seed = 0..1\nthreshold = 0.2\n"
                "[select]\nmodel.width = 8, 16, 24\ntrain.lr = 0.001, 0.05\n");
  const char *one = subdir("sel_one", 0), *sharded = subdir("sel_sharded", 0);
  char common[1024];
  snprintf(common, sizeof common, "--device %s --plugin-path %s", device(), HCL_TEST_PLUGIN_DIR);
  if (sh("%s sweep %s --out %s %s", HCL_TEST_HIERCL, cfg, one, common))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  /* the three shards at once, as an array's tasks start: each appends to its
   * own files while reading the others' */
  char cmd[4096] = "", *c = cmd;
  for (int i = 0; i < 3; i++)
    c += snprintf(c, sizeof cmd - (size_t)(c - cmd),
                  "%s sweep %s --out %s %s --shard %d/3 >/dev/null & p%d=$!; ", HCL_TEST_HIERCL,
                  cfg, sharded, common, i, i);
  if (sh("%s wait $p0 && wait $p1 && wait $p2", cmd))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  /* as if each shard had seen only its own candidates: no selection made
   * yet (with concurrent shards, some may be); the merge makes them */
  assert_int_equal(sh("rm -f %s/sweep_ss_*/sweep.shard-*-of-3.jsonl", sharded), 0);
  assert_int_equal(sh("%s sweep %s --out %s %s --merge", HCL_TEST_HIERCL, cfg, sharded, common), 0);
  const char *files[] = {"table.tsv", "pstar.json", "sweep.jsonl"};
  for (int i = 0; i < 3; i++) {
    char a[1400], b[1400];
    assert_int_equal(
        sh("ls -d %s/sweep_ss_*/%s %s/sweep_ss_*/%s", one, files[i], sharded, files[i]), 0);
    assert_int_equal(sscanf(out, "%1399s %1399s", a, b), 2);
    char *x = hcl_test_read_file(a), *y = hcl_test_read_file(b);
    assert_non_null(x);
    assert_non_null(y);
    if (i < 2)
      assert_string_equal(x, y);
    else /* 2 sizes x 2 seeds, each with its chosen candidate */
      assert_int_equal(count(y, "\"selected\":{\"model.width\":"), 4);
    free(x), free(y);
  }
}

/* Shard values that are not I/N with 0 <= I < N, and Slurm variables that
 * name no task of the array: one error line, exit 2, nothing runs. */
static void bad_shard_values(void **state) {
  (void)state;
  const char *cfg = hcl_test_write_temp("sb.ini", cfg_text);
  const char *dir = subdir("bad", 0);
  static const char *bad[] = {"0/0", "3/2", "2/2", "abc", "1/", "/2", "-1/2", "1/2x", "1 /2", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(sh("%s sweep %s --out %s --shard '%s'", HCL_TEST_HIERCL, cfg, dir, bad[i]), 2);
    assert_non_null(strstr(out, "--shard"));
    assert_int_equal(count(out, "\n"), 1);
  }
  static const char *env[] = {
      "SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=2", "SLURM_ARRAY_TASK_ID=3",
      "SLURM_ARRAY_TASK_ID=x SLURM_ARRAY_TASK_COUNT=2",
      "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_COUNT=2",
      "SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=2"};
  for (size_t i = 0; i < sizeof env / sizeof *env; i++) {
    assert_int_equal(sh("env %s %s sweep %s --out %s", env[i], HCL_TEST_HIERCL, cfg, dir), 2);
    assert_non_null(strstr(out, "SLURM_ARRAY_TASK_"));
    assert_int_equal(count(out, "\n"), 1);
  }
  assert_int_equal(sh("%s sweep %s --out %s --merge --shard 0/2", HCL_TEST_HIERCL, cfg, dir), 2);
  assert_int_equal(sh("%s sweep %s --out %s --submit", HCL_TEST_HIERCL, cfg, dir), 2);
  assert_int_equal(sh("ls %s 2>/dev/null | wc -l", dir), 0);
  assert_int_equal(atoi(out), 0); /* nothing was made */
}

/* The record kept per (point, seed) when shards disagree: a completed record
 * wins over a failed one whatever the order (a done point never runs again),
 * else the last one; torn lines and unknown points do not count. */
static void pick_rules(void **state) {
  (void)state;
  hcl_grid sw;
  memset(&sw, 0, sizeof sw);
  snprintf(sw.axes[0].key, sizeof sw.axes[0].key, "model.width");
  char v1[] = "1", v2[] = "2";
  sw.axes[0].values[0] = v1, sw.axes[0].values[1] = v2;
  sw.axes[0].n = 2;
  sw.n_axes = 1;
  sw.seed_axis = sw.size_axis = sw.dim_axis = -1;
#define REC(w, s, st, extra)                                                                       \
  "{\"point\":{\"model.width\":\"" w "\"},\"key\":\"model.width=" w "\",\"seed\":" s               \
  ",\"status\":\"" st "\",\"run_dir\":\"r\"" extra "}\n"
  const char *text = REC("1", "0", "failed", ",\"error\":\"A\"")
      REC("1", "0", "completed", ",\"best_test_loss\":1")
          REC("1", "0", "failed", ",\"error\":\"B\"") REC("2", "7", "failed", ",\"error\":\"C\"")
              REC("2", "7", "failed", ",\"error\":\"D\"")
                  REC("3", "0", "completed", ",\"best_test_loss\":1") "{\"point\":{\"model.wi";
  uint64_t seeds[] = {0, 7};
  hcl_sweep_pick pick[4];
  assert_int_equal(hcl_sweep_pick_records(&sw, text, seeds, 2, pick), HCL_OK);
  assert_int_equal(pick[0].final, 1); /* width 1, seed 0 */
  assert_non_null(strstr(pick[0].line, "best_test_loss"));
  assert_true(strstr(pick[0].line, "best_test_loss") < pick[0].line + pick[0].len);
  assert_null(pick[1].line); /* width 1, seed 7: none */
  assert_null(pick[2].line); /* width 2, seed 0: none */
  assert_non_null(pick[3].line);
  assert_int_equal(pick[3].final, 0);
  assert_int_equal(strncmp(pick[3].line + pick[3].len - 12, "\"error\":\"D\"}", 12), 0);
  /* runs: the batched axis' points share one */
  size_t job[2];
  assert_int_equal(hcl_sweep_jobs(&sw, 1u, job), 1);
  assert_int_equal(job[0], 0);
  assert_int_equal(job[1], 0);
  assert_int_equal(hcl_sweep_jobs(&sw, 0u, job), 2);
  assert_int_equal(job[1], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pick_rules),
      cmocka_unit_test(bad_shard_values),
      cmocka_unit_test(shards_cover_every_point_once),
      cmocka_unit_test(shards_merge_to_single_process_bytes),
      cmocka_unit_test(failed_point_fails_its_shard),
      cmocka_unit_test(selection_across_shards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
