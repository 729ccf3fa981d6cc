/* Sweeps as Slurm job arrays on a real single-node Slurm that this test
 * starts itself (tests/slurm/cluster.sh: munged, slurmctld, slurmd under a
 * temporary folder; stopped at the end, and by a watchdog if this program
 * dies). `--slurm --submit` returns at once; the array's tasks train their
 * shards; a failing point makes its task FAILED; submitting again sends only
 * the unfinished task; --status and --merge give the single-process files.
 * Skipped, saying why, without the Slurm packages or root. */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char out[1 << 17];
static char cluster[256]; /* the cluster's folder; "" when not started */
static char why_skip[1024];

#define sh(...) hcl_test_shf(out, sizeof out, __VA_ARGS__)

static const char *device(void) {
  const char *d = getenv("HIERCL_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

static int start(void **state) {
  (void)state;
  snprintf(cluster, sizeof cluster, "/tmp/hcl-slurm-XXXXXX"); /* short: socket paths */
  if (!mkdtemp(cluster)) {
    snprintf(why_skip, sizeof why_skip, "cannot make a folder for the cluster");
    cluster[0] = 0;
    return 0;
  }
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/slurm/cluster.sh start %s %d", HCL_TEST_DATA, cluster,
           (int)getpid());
  int rc = hcl_test_sh(cmd, out, sizeof out);
  if (rc == 77) { /* packages or root missing: skip */
    snprintf(why_skip, sizeof why_skip, "%.*s", (int)strcspn(out, "\n"), out);
    rmdir(cluster);
    cluster[0] = 0;
    return 0;
  }
  if (rc) {
    fprintf(stderr, "cannot start the test's Slurm: %s\n", out);
    snprintf(cmd, sizeof cmd, "%s/slurm/cluster.sh stop %s", HCL_TEST_DATA, cluster);
    hcl_test_sh(cmd, out, sizeof out);
    return -1;
  }
  setenv("SLURM_CONF", strcat(strcpy(cmd, cluster), "/slurm.conf"), 1);
  return 0;
}

static int stop(void **state) {
  (void)state;
  if (!cluster[0]) return 0;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/slurm/cluster.sh stop %s && rm -rf %s", HCL_TEST_DATA, cluster,
           cluster);
  return hcl_test_sh(cmd, out, sizeof out) ? -1 : 0;
}

/* Wait until job id has left the queue (at most 300 s). */
static void wait_job(unsigned long id) {
  for (int t = 0; t < 1500; t++) {
    if (sh("squeue -h -j %lu 2>&1", id) == 0 && !out[0]) return;
    nanosleep(&(struct timespec){.tv_nsec = 200000000}, NULL);
  }
  sh("squeue; scontrol show job -o %lu", id);
  HCL_FAIL_OUT(out, "job %lu still queued after 300 s (output above)", id);
}

/* The job id sbatch printed ("Submitted batch job N") in out. */
static unsigned long job_id(void) {
  const char *s = strstr(out, "Submitted batch job ");
  if (!s) HCL_FAIL_OUT(out, "no job submitted (output above)");
  return strtoul(s + 20, NULL, 10);
}

/* JobState of array task `task` of job id ("" when absent), from scontrol. */
static void task_state(unsigned long id, int task, char *state, size_t len) {
  assert_int_equal(sh("scontrol show job -o %lu", id), 0);
  char want[64];
  snprintf(want, sizeof want, " ArrayTaskId=%d ", task);
  state[0] = 0;
  for (char *line = out; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    const char *st = strstr(line, " JobState=");
    if (strstr(line, want) && st) snprintf(state, len, "%.*s", (int)strcspn(st + 10, " "), st + 10);
    line = nl ? nl + 1 : NULL;
  }
}

static const char cfg_text[] = "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 100\n"
                               "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                               "[train]\nsteps = 50\nbatch = 16\nlr = 0.05\n"
                               "[eval]\nevery = 50\ntest_size = 300\n"
                               "[sweep]\ntrain.train_size = 8, 2000\nrun.seed = 0..1\n"
                               "threshold = 0.2\n";

static void array_job_on_real_slurm(void **state) {
  (void)state;
  if (!cluster[0]) {
    print_message("skipped: no Slurm for the test: %s\n", why_skip);
    skip();
  }
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp("slurm.ini", cfg_text);
  char one[1024], arr[1024], common[2048];
  snprintf(one, sizeof one, "%s/one", hcl_test_tmpdir());
  snprintf(arr, sizeof arr, "%s/array", hcl_test_tmpdir());
  /* width 300 fails under the memory limit: its task fails */
  snprintf(common, sizeof common, "%s --device %s --plugin-path %s --grid 'model.width=16, 300'",
           cfg, device(), HCL_TEST_PLUGIN_DIR);
  if (sh("%s sweep %s --out %s", HCL_TEST_HIERCL, common, one))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  /* submitted and returned at once: the environment goes with the job */
  if (sh("HIERCL_DEVICE_MEM_LIMIT=3000000 %s sweep %s --out %s --slurm --submit", HCL_TEST_HIERCL,
         common, arr))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "2 runs in 2 array tasks; 2 of them with work left"));
  unsigned long id = job_id();
  wait_job(id);
  char st[64];
  task_state(id, 0, st, sizeof st);
  assert_string_equal(st, "COMPLETED");
  task_state(id, 1, st, sizeof st);
  assert_string_equal(st, "FAILED"); /* the failed point failed its task */
  assert_int_equal(sh("%s sweep %s --out %s --status", HCL_TEST_HIERCL, common, arr), 1);
  assert_non_null(strstr(out, "4 points (2 runs in all): 2 done, 2 failed, 0 pending"));
  /* again, without the limit: only task 1 is submitted */
  if (sh("%s sweep %s --out %s --slurm --submit", HCL_TEST_HIERCL, common, arr))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "2 runs in 2 array tasks; 1 of them with work left"));
  unsigned long id2 = job_id();
  wait_job(id2);
  task_state(id2, 1, st, sizeof st);
  assert_string_equal(st, "COMPLETED");
  task_state(id2, 0, st, sizeof st);
  assert_string_equal(st, ""); /* not resubmitted */
  assert_int_equal(sh("%s sweep %s --out %s --status", HCL_TEST_HIERCL, common, arr), 0);
  assert_non_null(strstr(out, "4 done, 0 failed, 0 pending"));
  assert_int_equal(sh("%s sweep %s --out %s --merge", HCL_TEST_HIERCL, common, arr), 0);
  static const char *const files[] = {"sweep.jsonl", "table.tsv", "pstar.json"};
  for (int f = 0; f < 3; f++) {
    char *a = hcl_test_sweep_file(one, files[f]), *b = hcl_test_sweep_file(arr, files[f]);
    if (strcmp(a, b)) fail_msg("%s differs:\n--- one process\n%s\n--- array\n%s", files[f], a, b);
    free(a), free(b);
  }
  /* the tasks' logs name their shard, one line per finished point */
  assert_int_equal(sh("cat %s/sweep_*/slurm-%lu_0.out", arr, id), 0);
  assert_non_null(strstr(out, "hiercl sweep: shard 0/2: point train.train_size=8;model.width=16: "
                              "completed"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(array_job_on_real_slurm),
  };
  return cmocka_run_group_tests(tests, start, stop);
}
