/* hiercl sweep CONFIG: a grid of runs and the sample-complexity estimate. */
#include "commands.h"
#include "hiercl/hiercl.h"
#include "sweep_slurm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char sweep_usage[] =
    "usage: hiercl sweep CONFIG [--grid section.key=v1,v2,...]... [--set section.key=value]...\n"
    "                    [--select section.key=v1,v2,...]... [--device SEL] [--out DIR]\n"
    "                    [--plugin-path DIRS] [--shard I/N | --status | --merge]\n"
    "       mpirun -np K hiercl sweep CONFIG ...   (rank 0 hands out runs; K-1 ranks train)\n"
    "       hiercl sweep CONFIG ... --slurm [--tasks N] [--submit] [-- SBATCH_OPTION...]\n"
    "values: a list 'v1, v2', an integer range 'a..b', or 'geom(lo, hi, n)'; run.seed as an\n"
    "axis trains the seeds as replicas of one run. --select (or a [select] section) trains\n"
    "every candidate at every point and keeps, per seed, the one with the lowest val_loss\n"
    "([eval] val_size > 0). Re-running the same command resumes.\n"
    "--device all (or a comma list of selectors) trains on every selected device at once,\n"
    "one worker thread each; SEL/N in the list is the device SEL split in N parts, a worker\n"
    "each; under mpirun each rank takes the device of its node-local rank.\n"
    "Under mpirun --enable-recovery a rank silent for HIERCL_MPI_TIMEOUT s (default 60) is\n"
    "given up: its run stays pending for the next resume and the other ranks go on.\n"
    "--shard I/N runs shard I (0 <= I < N) of the runs, in the same sweep directory (default:\n"
    "SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, less SLURM_ARRAY_TASK_MIN, when set).\n"
    "--status lists each point as done, failed, diverged (final: never retrained) or pending:\n"
    "exit 0 all done, 1 some failed or diverged, 4 some pending. --merge gathers the shards' "
    "records and writes table.tsv and pstar.json\n"
    "(same exits). --slurm writes <sweep dir>/array.sbatch, a job array of N tasks (default:\n"
    "one per run); --submit hands it to sbatch, only for the shards with work left.\n";

/* Exit status of --status and --merge: failures first, then work left. */
#define HCL_EXIT_PENDING 4

/* "I/N" with 0 <= I < N, digits only; 0 on success. */
static int parse_shard(const char *s, unsigned *i, unsigned *n) {
  char *e1, *e2;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  unsigned long a = strtoul(s, &e1, 10);
  if (*e1 != '/' || e1[1] < '0' || e1[1] > '9') return -1;
  unsigned long b = strtoul(e1 + 1, &e2, 10);
  if (*e2 || errno || b == 0 || a >= b || b > 1000000) return -1;
  *i = (unsigned)a, *n = (unsigned)b;
  return 0;
}

/* A non-negative integer environment variable: 1 when set and valid, 0 when
 * unset, -1 (message printed) when set to anything else. */
static int env_uint(const char *name, unsigned long *v) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  errno = 0;
  *v = strtoul(s, &end, 10);
  if (*s < '0' || *s > '9' || *end || errno || *v > 1000000) {
    fprintf(stderr, "hiercl sweep: %s='%s' (from the environment) is not a task number\n", name, s);
    return -1;
  }
  return 1;
}

/* The shard of a Slurm array task: (ID - MIN) / STEP of COUNT. 1 when
 * found, 0 when not in an array task, -1 on a bad value (message printed). */
static int slurm_shard(unsigned *i, unsigned *n) {
  unsigned long id, count, min = 0, step = 1;
  int has = env_uint("SLURM_ARRAY_TASK_ID", &id);
  if (has <= 0) return has;
  if (env_uint("SLURM_ARRAY_TASK_COUNT", &count) <= 0 ||
      env_uint("SLURM_ARRAY_TASK_MIN", &min) < 0 || env_uint("SLURM_ARRAY_TASK_STEP", &step) < 0) {
    if (!getenv("SLURM_ARRAY_TASK_COUNT"))
      fprintf(stderr, "hiercl sweep: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is "
                      "not: pass --shard I/N\n");
    return -1;
  }
  if (!step) step = 1;
  if (id < min || (id - min) % step || (id - min) / step >= count || !count) {
    fprintf(stderr,
            "hiercl sweep: SLURM_ARRAY_TASK_ID=%lu (from the environment) is not one of %lu tasks "
            "from %lu in steps of %lu: pass --shard I/N\n",
            id, count, min, step);
    return -1;
  }
  *i = (unsigned)((id - min) / step), *n = (unsigned)count;
  return 1;
}

int hcl_cmd_sweep(int argc, char **argv) {
  /* every option takes one argument at least: argc bounds both lists (the
   * sweep itself limits the number of grid keys, with a clear error) */
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  const char **grid = calloc((size_t)argc + 1, sizeof *grid);
  const char **select = calloc((size_t)argc + 1, sizeof *select);
  size_t n_sets = 0, n_grid = 0, n_select = 0;
  int code = -1, shard_given = 0, slurm = 0, submit = 0, first_sbatch = argc;
  unsigned long tasks = 0;
  hcl_sweep_options opt;
  memset(&opt, 0, sizeof opt);
  if (!sets || !grid || !select) {
    fprintf(stderr, "hiercl sweep: out of memory\n");
    code = HCL_EXIT_FAIL;
  }
  for (int i = 1; code < 0 && i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(sweep_usage, stdout);
      code = HCL_EXIT_OK;
    } else if (!strcmp(a, "--grid") && has) {
      grid[n_grid++] = argv[++i];
    } else if (!strcmp(a, "--select") && has) {
      select[n_select++] = argv[++i];
    } else if (!strcmp(a, "--set") && has) {
      sets[n_sets++] = argv[++i];
    } else if (!strcmp(a, "--device") && has) {
      opt.run.device = argv[++i];
    } else if (!strcmp(a, "--out") && has) {
      opt.run.out_dir = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      opt.run.plugin_path = argv[++i];
    } else if (!strcmp(a, "--shard") && has) {
      if (parse_shard(argv[++i], &opt.shard_index, &opt.shard_count)) {
        fprintf(stderr,
                "hiercl sweep: --shard '%s': expected I/N with 0 <= I < N (shard I of N, "
                "counted from 0)\n",
                argv[i]);
        code = HCL_EXIT_USAGE;
      }
      shard_given = 1;
    } else if (!strcmp(a, "--status")) {
      opt.action = HCL_SWEEP_STATUS;
    } else if (!strcmp(a, "--merge")) {
      opt.action = HCL_SWEEP_MERGE;
    } else if (!strcmp(a, "--slurm")) {
      slurm = 1;
    } else if (!strcmp(a, "--submit")) {
      submit = 1;
    } else if (!strcmp(a, "--tasks") && has) {
      char *end;
      tasks = strtoul(argv[++i], &end, 10);
      if (*end || !tasks || tasks > 1000000 || argv[i][0] < '0' || argv[i][0] > '9') {
        fprintf(stderr, "hiercl sweep: --tasks '%s': expected a whole number >= 1\n", argv[i]);
        code = HCL_EXIT_USAGE;
      }
    } else if (!strcmp(a, "--") && slurm) {
      first_sbatch = i + 1; /* the rest goes to sbatch */
      break;
    } else if (a[0] == '-' || opt.run.config_path) {
      fprintf(stderr, "hiercl sweep: unexpected argument '%s'\n%s", a, sweep_usage);
      code = HCL_EXIT_USAGE;
    } else {
      opt.run.config_path = a;
    }
  }
  if (code < 0 && !opt.run.config_path) {
    fputs(sweep_usage, stderr);
    code = HCL_EXIT_USAGE;
  }
  if (code < 0 && ((slurm && (opt.action || shard_given)) || (!slurm && (submit || tasks)) ||
                   (opt.action == HCL_SWEEP_MERGE && shard_given))) {
    fprintf(stderr, "hiercl sweep: --slurm takes no --shard, --status or --merge; --submit and "
                    "--tasks go with --slurm; --merge gathers every shard (no --shard)\n");
    code = HCL_EXIT_USAGE;
  }
  /* a Slurm array task runs its own shard without being told */
  if (code < 0 && !shard_given && !slurm && opt.action == HCL_SWEEP_RUN &&
      slurm_shard(&opt.shard_index, &opt.shard_count) < 0)
    code = HCL_EXIT_USAGE;
  if (code >= 0) {
    free(sets);
    free(grid);
    free(select);
    return code;
  }
  opt.run.sets = sets;
  opt.run.n_sets = n_sets;
  opt.grid = grid;
  opt.n_grid = n_grid;
  opt.select = select;
  opt.n_select = n_select;
  opt.run.stop = hcl_cli_stop_flag();
  opt.run.progress = hcl_cli_progress(0, &opt.run.progress_every_s);
  if (opt.run.progress < 0) {
    free(sets);
    free(grid);
    free(select);
    return HCL_EXIT_USAGE;
  }
  hcl_cli_catch_stop();
  char err[8192];
  if (slurm) {
    code = hcl_sweep_slurm(&opt, argc, argv, first_sbatch, (unsigned)tasks, submit);
    free(sets);
    free(grid);
    free(select);
    return code;
  }
  /* under mpirun: rank 0 hands out the runs, the other ranks train them */
  int world = opt.action == HCL_SWEEP_RUN ? hcl_mpi_begin(&argc, &argv) : 1;
  if (world < 0) {
    fprintf(stderr, "hiercl sweep: started by mpirun with several ranks, but this hiercl was built "
                    "without MPI (HCL_MPI): every rank would run the whole sweep; rebuild with "
                    "libopenmpi-dev installed\n");
    free(sets);
    free(grid);
    free(select);
    return HCL_EXIT_USAGE;
  }
  hcl_status rc = hcl_sweep(&opt, err, sizeof err);
  hcl_mpi_end(); /* also under `mpirun -np 1`, which joined MPI too */
  if (rc == HCL_OK && opt.action != HCL_SWEEP_RUN) {
    free(sets);
    free(grid);
    free(select);
    return opt.n_failed ? HCL_EXIT_FAIL : opt.n_pending ? HCL_EXIT_PENDING : HCL_EXIT_OK;
  }
  if (rc == HCL_ERR_INTERRUPTED)
    fprintf(stderr, "hiercl: sweep interrupted; run the same command again to resume (%s)\n",
            opt.sweep_dir);
  else if (rc != HCL_OK)
    fprintf(stderr, "hiercl: error: %s\n", err);
  else if (opt.action == HCL_SWEEP_RUN && !opt.mpi_worker)
    printf("%s\n", opt.sweep_dir);
  free(sets);
  free(grid);
  free(select);
  return hcl_cli_exit_code(rc);
}
