/* MPI sweeps (`mpirun -np 3 hiercl sweep`): rank 0 hands out runs, two ranks
 * train them. The records, table and P* are those of one process; a rank
 * killed mid-sweep loses only its run, which the next resume trains, and the
 * final files are again those of one process; under --enable-recovery the
 * other rank trains every other run meanwhile, and a rank given up on keeps
 * no other rank from ending. Skipped (saying why) when hiercl was built
 * without MPI or mpirun is missing. */
#include "hcl_test.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char out[1 << 17];

#define sh(...) hcl_test_shf(out, sizeof out, __VA_ARGS__)

static const char *device(void) {
  const char *d = getenv("HIERCL_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

#define MPIRUN "mpirun --oversubscribe --allow-run-as-root -np 3"

/* 1 when the test can run; else prints why and returns 0. */
static int mpi_usable(void) {
#ifndef HCL_MPI
  print_message("skipped: hiercl was built without MPI (HCL_MPI off; install libopenmpi-dev)\n");
  return 0;
#else
  if (sh("command -v mpirun")) {
    print_message("skipped: mpirun is not on PATH (install openmpi-bin)\n");
    return 0;
  }
  return hcl_test_ctx() != NULL;
#endif
}

static const char cfg_text[] = "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 100\n"
                               "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                               "[train]\nsteps = 200\nbatch = 16\nlr = 0.05\n"
                               "[eval]\nevery = 100\ntest_size = 300\n"
                               "[sweep]\ntrain.train_size = 8, 2000\nrun.seed = 0..1\n"
                               "threshold = 0.2\n";

static void same_files(const char *a, const char *b) {
  static const char *const files[] = {"sweep.jsonl", "table.tsv", "pstar.json"};
  for (int f = 0; f < 3; f++) {
    char *x = hcl_test_sweep_file(a, files[f]), *y = hcl_test_sweep_file(b, files[f]);
    if (strcmp(x, y)) {
      fprintf(stderr, "--- one process\n%s\n--- MPI\n%s\n", x, y);
      fail_msg("%s differs (both above)", files[f]);
    }
    free(x), free(y);
  }
}

/* 3 ranks (rank 0 and two workers) give the files of one process. */
static void three_ranks_equal_one_process(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  const char *cfg = hcl_test_write_temp("mpi.ini", cfg_text);
  char one[1024], mpi[1024];
  snprintf(one, sizeof one, "%s/one", hcl_test_tmpdir());
  snprintf(mpi, sizeof mpi, "%s/mpi", hcl_test_tmpdir());
  const char *grid = "--grid 'model.width=8, 12, 16, 20'";
  if (sh("%s sweep %s --out %s --device %s --plugin-path %s %s", HCL_TEST_HIERCL, cfg, one,
         device(), HCL_TEST_PLUGIN_DIR, grid))
    HCL_FAIL_OUT(out, "the command failed (its output is above)");
  if (sh(MPIRUN " %s sweep %s --out %s --device %s --plugin-path %s %s", HCL_TEST_HIERCL, cfg, mpi,
         device(), HCL_TEST_PLUGIN_DIR, grid))
    HCL_FAIL_OUT(out, "the command failed (its output is above)");
  /* both workers trained (each is sent a run at the start); rank 0 logs
   * one line per finished point */
  assert_non_null(strstr(out, "hiercl sweep: rank 1"));
  assert_non_null(strstr(out, "hiercl sweep: rank 2"));
  assert_non_null(strstr(out, "ends the whole job under plain mpirun"));
  assert_non_null(strstr(out, "hiercl sweep: 4/4 runs done (8/8 points)"));
  assert_non_null(
      strstr(out, "hiercl sweep: point train.train_size=2000;model.width=20: completed"));
  same_files(one, mpi);
}

/* Each worker takes the device of its node-local rank among those selected
 * (rank 0 trains nothing): with two PoCL devices, rank 1 the first, rank 2
 * the second, and the records name them. */
static void ranks_take_node_local_devices(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  if (!strstr(hcl_test_ctx()->dev.platform, "Portable Computing Language")) {
    print_message("skipped: two devices are made with PoCL (POCL_DEVICES)\n");
    skip();
  }
  const char *cfg = hcl_test_write_temp("mpidev.ini", cfg_text);
  char mpi[1024];
  snprintf(mpi, sizeof mpi, "%s/mpidev", hcl_test_tmpdir());
  if (sh("POCL_DEVICES='pthread pthread' " MPIRUN
         " -x POCL_DEVICES %s sweep %s --out %s --device all --plugin-path %s --grid "
         "'model.width=8, 12, 16' --set train.steps=20",
         HCL_TEST_HIERCL, cfg, mpi, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (its output is above)");
  assert_non_null(strstr(out, "hiercl sweep: rank 1 on pocl:cpu:0: starting"));
  assert_non_null(strstr(out, "hiercl sweep: rank 2 on pocl:cpu:1: starting"));
  assert_int_equal(sh("cat %s/sweep_*/sweep.jsonl", mpi), 0);
  assert_non_null(strstr(out, "\"device\":\"pocl:cpu:0\""));
  assert_non_null(strstr(out, "\"device\":\"pocl:cpu:1\""));
}

/* The pid of the process run by mpirun (pid launcher) as MPI rank `rank`:
 * the one whose environment says so, below the launcher. 0 when none. */
static pid_t rank_pid(pid_t launcher, int rank) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  char want[64];
  int wl = snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
  pid_t found = 0;
  for (struct dirent *e; !found && (e = readdir(d));) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid <= 0) continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    static char env[1 << 16];
    size_t n = fread(env, 1, sizeof env - 1, f);
    fclose(f);
    int is_rank = 0;
    for (size_t i = 0; i < n; i += strlen(env + i) + 1)
      is_rank |= !strncmp(env + i, want, (size_t)wl) && env[i + (size_t)wl] == 0;
    /* below our launcher: walk up the parents */
    for (pid_t p = pid; is_rank && p > 1 && !found;) {
      snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
      f = fopen(path, "r");
      if (!f) break;
      int pp = 0;
      if (fscanf(f, "%*d (%*[^)]) %*c %d", &pp) != 1) pp = 0;
      fclose(f);
      if (pp == launcher) found = pid;
      p = (pid_t)pp;
    }
  }
  closedir(d);
  return found;
}

static const char kill_grid[] = "--grid 'model.width=8, 12, 16, 20, 24, 28' --set train.steps=1500";

/* Whether ranks 0 and 2 of the job under launcher are gone within 120 s. */
static int others_end(pid_t launcher) {
  for (int t = 0; t < 1200; t++) {
    if (!rank_pid(launcher, 0) && !rank_pid(launcher, 2)) return 1;
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
  }
  return 0;
}

/* Whether mpirun's log (path) says rank 1 started a run: then it is past
 * the collectives of the start and holds a run. */
static int rank1_started(const char *path) {
  static const char who[] = "hiercl sweep: rank 1";
  char *t = hcl_test_read_file(path);
  int yes = 0;
  for (const char *p = t ? strstr(t, who) : NULL; p && !yes; p = strstr(p + 1, who)) {
    const char *e = strchr(p, '\n'), *s = strstr(p, ": starting ");
    yes = (p[sizeof who - 1] == ':' || p[sizeof who - 1] == ' ') && s && (!e || s < e);
  }
  free(t);
  return yes;
}

/* Starts `mpirun [opts] hiercl sweep` into dir. Once rank 1 has started a
 * run it is stopped (SIGSTOP), so it holds that run whatever the machine's
 * load; once rank 2 has recorded a run, rank 1 is killed (kill_it), or
 * *ended is set to whether ranks 0 and 2 end while it is stopped and it is
 * resumed. Waits for mpirun and returns its wait status; the log is in
 * *log_text (malloc'd). args: the sweep's config and options. */
static int sweep_stopping_rank1(const char *opts, const char *args, const char *dir, int kill_it,
                                int *ended, char **log_text) {
  char cmd[8192], log[1200];
  snprintf(log, sizeof log, "%s.log", dir);
  /* a hang fails in minutes, with mpirun's log, not at ctest's timeout */
  snprintf(cmd, sizeof cmd, "exec timeout 240 " MPIRUN " %s %s sweep %s --out %s >%s 2>&1", opts,
           HCL_TEST_HIERCL, args, dir, log);
  pid_t launcher = fork();
  assert_true(launcher >= 0);
  if (launcher == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  pid_t w = 0;
  for (int t = 0; t < 1200 && !w; t++) {
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    if (rank1_started(log) && (w = rank_pid(launcher, 1)) > 0 && kill(w, SIGSTOP)) w = 0;
  }
  int recorded = 0;
  for (int t = 0; w > 0 && t < 1200 && !recorded; t++) {
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    recorded = !sh("cat %s/sweep_*/sweep.jsonl 2>/dev/null | grep -c completed", dir);
  }
  if (w > 0 && kill_it) kill(w, SIGKILL);
  if (w > 0 && !kill_it) *ended = recorded && others_end(launcher);
  if (w > 0 && !kill_it) kill(w, SIGCONT);
  int st = 0;
  if (!w || !recorded) kill(launcher, SIGTERM);
  waitpid(launcher, &st, 0);
  *log_text = hcl_test_read_file(log);
  if (!w) HCL_FAIL_OUT(*log_text, "rank 1 was never found to stop; mpirun's log is above");
  if (!recorded) HCL_FAIL_OUT(*log_text, "rank 2 recorded no run; mpirun's log is above");
  return st;
}

/* A fresh config file for the test `tag` (its path) and its sweep
 * directory (dir). */
static const char *fresh_case(const char *tag, char dir[1024]) {
  char name[32];
  snprintf(name, sizeof name, "%s.ini", tag);
  snprintf(dir, 1024, "%s/%s", hcl_test_tmpdir(), tag);
  return hcl_test_write_temp(name, cfg_text);
}

/* A killing test's paths (tag: their prefix), its sweep arguments, and
 * the one-process sweep (in one) its MPI files must equal. */
static void kill_case(const char *tag, char one[1024], char mpi[1024], char args[2048]) {
  char name[32];
  snprintf(name, sizeof name, "%s.ini", tag);
  const char *cfg = hcl_test_write_temp(name, cfg_text);
  snprintf(one, 1024, "%s/%sone", hcl_test_tmpdir(), tag);
  snprintf(mpi, 1024, "%s/%smpi", hcl_test_tmpdir(), tag);
  snprintf(args, 2048, "%s --device %s --plugin-path %s %s", cfg, device(), HCL_TEST_PLUGIN_DIR,
           kill_grid);
  if (sh("%s sweep %s --out %s", HCL_TEST_HIERCL, args, one))
    HCL_FAIL_OUT(out, "the one-process sweep failed (its output is above)");
}

/* Resuming dir with MPI trains what is pending and gives the files of one
 * process (one: that sweep's directory). */
static void resume_equals(const char *args, const char *dir, const char *one) {
  if (sh(MPIRUN " %s sweep %s --out %s", HCL_TEST_HIERCL, args, dir))
    HCL_FAIL_OUT(out, "the resume failed (its output is above)");
  assert_non_null(strstr(out, "runs already done in"));
  same_files(one, dir);
}

/* Under plain mpirun a killed worker ends the job: the runs not recorded
 * stay pending (nothing counted done that is not), and resuming (with MPI
 * again) gives the files of one process. */
static void killed_rank_resumes(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  char one[1024], mpi[1024], args[2048];
  kill_case("k", one, mpi, args);
  char *l = NULL;
  int st = sweep_stopping_rank1("", args, mpi, 1, NULL, &l);
  assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* the job failed */
  free(l);
  int rc = sh("%s sweep %s --out %s --status", HCL_TEST_HIERCL, args, mpi);
  assert_true(rc == 4 || rc == 1);
  assert_null(strstr(out, ": 12 done, 0 failed, 0 pending"));
  resume_equals(args, mpi, one);
}

/* Rank 0 gave up rank 1 (log: mpirun's), rank 2 trained every other run,
 * and the sweep directory says exactly rank 1's run (2 points) is pending. */
static void only_rank1_run_pending(const char *log, const char *args, const char *dir) {
  if (!strstr(log, "hiercl sweep: rank 1 lost (nothing heard for 5 s); its run model.width=") ||
      !strstr(log, "is left pending for the next resume"))
    HCL_FAIL_OUT(log, "rank 0 did not give rank 1 up; mpirun's log is above");
  if (!strstr(log, "hiercl sweep: 5/6 runs done (10/12 points)"))
    HCL_FAIL_OUT(log, "rank 2 did not train every other run; mpirun's log is above");
  assert_int_equal(sh("%s sweep %s --out %s --status", HCL_TEST_HIERCL, args, dir), 4);
  assert_non_null(strstr(out, ": 10 done, 0 failed, 2 pending"));
}

/* Under `mpirun --enable-recovery` a killed worker loses only the run it
 * held: rank 0 stops waiting once the rank's heartbeat is silent for
 * HIERCL_MPI_TIMEOUT, the other worker trains every other run, exactly that
 * run (2 points) is pending, and a resume completes the files of one
 * process. The job ends by itself: no rank waits for the dead one, in
 * MPI_Finalize either (Open MPI 4.1's finalize fence sometimes did, a hang
 * about one run in eight under load), and rank 0 sends it nothing. */
static void killed_rank_loses_only_its_run(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  char one[1024], mpi[1024], args[2048];
  kill_case("l", one, mpi, args);
  char *l = NULL;
  int st =
      sweep_stopping_rank1("--enable-recovery -x HIERCL_MPI_TIMEOUT=5", args, mpi, 1, NULL, &l);
  if (!WIFEXITED(st) || WEXITSTATUS(st) == 124) /* no hang: the job ends by itself */
    HCL_FAIL_OUT(l, "mpirun did not end by itself (status %d); its log is above", st);
  only_rank1_run_pending(l, args, mpi);
  /* a send to the dead rank makes Open MPI reconnect, and warn of a hang */
  if (strstr(l, "failed to TCP connect"))
    HCL_FAIL_OUT(l, "rank 0 sent to the dead rank; mpirun's log is above");
  /* rank 2 had its stop from rank 0: it did not have to give rank 0 up */
  if (strstr(l, "no word from rank 0"))
    HCL_FAIL_OUT(l, "rank 2 did not get its stop; mpirun's log is above");
  free(l);
  resume_equals(args, mpi, one);
}

/* Under `mpirun --enable-recovery` a rank given up on keeps no one
 * waiting: with rank 1 stopped (SIGSTOP) in a run, rank 0
 * gives it up, rank 2 trains every other run, and ranks 0 and 2 end while
 * rank 1 is still stopped (MPI_Finalize's fence would wait for it); rank 1
 * resumed then ends too, and its run stays pending. */
static void stalled_rank_holds_no_one(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  char dir[1024], args[2048];
  const char *cfg = fresh_case("stall", dir);
  snprintf(args, sizeof args, "%s --device %s --plugin-path %s %s", cfg, device(),
           HCL_TEST_PLUGIN_DIR, kill_grid);
  char *l = NULL;
  int ended = 0;
  int st =
      sweep_stopping_rank1("--enable-recovery -x HIERCL_MPI_TIMEOUT=5", args, dir, 0, &ended, &l);
  if (!ended) HCL_FAIL_OUT(l, "ranks 0 and 2 did not end while rank 1 was stopped; log above");
  if (!WIFEXITED(st) || WEXITSTATUS(st) == 124)
    HCL_FAIL_OUT(l, "mpirun did not end by itself (status %d); its log is above", st);
  only_rank1_run_pending(l, args, dir);
  free(l);
}

/* Open MPI's other spellings of the flag (`--mca orte_enable_recovery
 * true`) are recovery too: no note that a dying rank ends the job. */
static void recovery_flag_spelled_true(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  char dir[1024];
  const char *cfg = fresh_case("rtrue", dir);
  if (sh(MPIRUN " --mca orte_enable_recovery true %s sweep %s --out %s --device %s "
                "--plugin-path %s --grid 'model.width=8' --set train.steps=20",
         HCL_TEST_HIERCL, cfg, dir, device(), HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (its output is above)");
  assert_non_null(strstr(out, "hiercl sweep: 1/1 runs done"));
  assert_null(strstr(out, "ends the whole job under plain mpirun"));
}

/* `mpirun -np 1` runs the sweep in its one rank and leaves MPI properly:
 * mpirun reports no abnormal end. */
static void one_rank_ends_cleanly(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  char dir[1024];
  const char *cfg = fresh_case("np1", dir);
  if (sh("mpirun --allow-run-as-root -np 1 %s sweep %s --out %s --device %s --plugin-path %s "
         "--grid 'model.width=8' --set train.steps=20",
         HCL_TEST_HIERCL, cfg, dir, device(), HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (its output is above)");
  assert_non_null(strstr(out, "hiercl sweep: 1/1 runs done"));
  if (strstr(out, "exiting improperly"))
    HCL_FAIL_OUT(out, "rank 0 did not finalize (output above)");
}

/* A malformed HIERCL_MPI_TIMEOUT is one error line naming it; nothing runs. */
static void bad_timeout_is_named(void **state) {
  (void)state;
  if (!mpi_usable()) skip();
  char dir[1024];
  const char *cfg = fresh_case("badto", dir);
  assert_int_not_equal(sh(MPIRUN " -x HIERCL_MPI_TIMEOUT=1 %s sweep %s --out %s --device %s "
                                 "--plugin-path %s",
                          HCL_TEST_HIERCL, cfg, dir, device(), HCL_TEST_PLUGIN_DIR),
                       0);
  assert_non_null(strstr(out, "HIERCL_MPI_TIMEOUT=1: not a number of seconds >= 2"));
  assert_null(strstr(out, "starting"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(three_ranks_equal_one_process),
      cmocka_unit_test(ranks_take_node_local_devices),
      cmocka_unit_test(killed_rank_resumes),
      cmocka_unit_test(killed_rank_loses_only_its_run),
      cmocka_unit_test(stalled_rank_holds_no_one),
      cmocka_unit_test(recovery_flag_spelled_true),
      cmocka_unit_test(one_rank_ends_cleanly),
      cmocka_unit_test(bad_timeout_is_named),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
