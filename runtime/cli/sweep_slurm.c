/* hiercl sweep --slurm [--tasks N] [--submit] [-- SBATCH_OPTION...]: the sweep
 * as a Slurm job array. Slurm schedules, retries and reports; each array task
 * runs `hiercl sweep --shard I/N` into the shared sweep directory. The shard
 * count is written into the script, not read from SLURM_ARRAY_TASK_COUNT, so
 * a re-submission of only the unfinished shards (--array=2,5) keeps every
 * task's share of the runs. */
#include "sweep_slurm.h"
#include "commands.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* s as one shell word: single-quoted, each ' written as '\'' */
static void shell_word(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++)
    if (*s == '\'')
      fputs("'\\''", f);
    else
      fputc(*s, f);
  fputc('\'', f);
}

/* path made absolute (it exists), or as given when it cannot be resolved. */
static void abs_word(FILE *f, const char *path) {
  char real[PATH_MAX];
  shell_word(f, realpath(path, real) ? real : path);
}

/* a colon list of directories, each made absolute */
static void abs_list(FILE *f, const char *list) {
  char *copy = strdup(list), real[PATH_MAX];
  fputc('\'', f);
  for (char *tok = copy, *next; tok; tok = next) {
    next = strchr(tok, ':');
    if (next) *next++ = 0;
    const char *p = *tok && realpath(tok, real) ? real : tok;
    for (; *p; p++)
      if (*p == '\'')
        fputs("'\\''", f);
      else
        fputc(*p, f);
    if (next) fputc(':', f);
  }
  fputc('\'', f);
  free(copy);
}

/* The script's text into f. */
static void write_script(FILE *f, const hcl_sweep_options *opt, const char *parent, unsigned n,
                         char **sb, int n_sb) {
  char self[PATH_MAX];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  self[sl > 0 ? sl : 0] = 0;
  fputs("#!/bin/bash\n", f);
  fputs("# Written by `hiercl sweep --slurm`: task I of this job array trains shard I of the\n"
        "# sweep's runs into one sweep directory (a finished run is never trained again).\n"
        "# Submit with `sbatch array.sbatch`, or re-run `hiercl sweep ... --slurm --submit`\n"
        "# (only the shards with work left); then `hiercl sweep ... --merge`.\n",
        f);
  fprintf(f, "#SBATCH --job-name=hiercl-sweep\n#SBATCH --array=0-%u\n", n - 1);
  char dir[PATH_MAX]; /* Slurm opens --output relative to where the job starts: absolute */
  fprintf(f, "#SBATCH --output=%s/slurm-%%A_%%a.out\n",
          realpath(opt->sweep_dir, dir) ? dir : opt->sweep_dir);
  for (int i = 0; i < n_sb; i++) fprintf(f, "#SBATCH %s\n", sb[i]);
  fputs("exec ", f);
  shell_word(f, *self ? self : "hiercl");
  fputs(" sweep ", f);
  abs_word(f, opt->run.config_path);
  fprintf(f, " --shard \"${SLURM_ARRAY_TASK_ID}/%u\" --out ", n);
  abs_word(f, parent);
  if (opt->run.device) fputs(" --device ", f), shell_word(f, opt->run.device);
  if (opt->run.plugin_path) fputs(" --plugin-path ", f), abs_list(f, opt->run.plugin_path);
  for (size_t i = 0; i < opt->run.n_sets; i++) fputs(" --set ", f), shell_word(f, opt->run.sets[i]);
  for (size_t i = 0; i < opt->n_grid; i++) fputs(" --grid ", f), shell_word(f, opt->grid[i]);
  for (size_t i = 0; i < opt->n_select; i++) fputs(" --select ", f), shell_word(f, opt->select[i]);
  fputc('\n', f);
}

/* Run sbatch [--array=LIST] script; its exit status (sbatch queues and returns). */
static int run_sbatch(const char *script, const char *array) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "hiercl sweep: cannot start sbatch: %s\n", strerror(errno));
    return HCL_EXIT_FAIL;
  }
  if (pid == 0) {
    char *args[4] = {"sbatch", NULL, NULL, NULL};
    int k = 1;
    if (array) args[k++] = (char *)array;
    args[k] = (char *)script;
    execvp("sbatch", args);
    fprintf(stderr,
            "hiercl sweep: cannot run sbatch: %s (is Slurm installed here?); the job "
            "script is %s\n",
            strerror(errno), script);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return HCL_EXIT_FAIL;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return HCL_EXIT_OK;
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 127))
    fprintf(stderr, "hiercl sweep: sbatch failed; the job script is %s\n", script);
  return HCL_EXIT_FAIL;
}

int hcl_sweep_slurm(hcl_sweep_options *opt, int argc, char **argv, int first_sbatch, unsigned tasks,
                    int submit) {
  char err[8192];
  for (int i = first_sbatch; i < argc; i++)
    if (strchr(argv[i], '\n')) {
      fprintf(stderr, "hiercl sweep: sbatch option %d contains a newline\n", i - first_sbatch + 1);
      return HCL_EXIT_USAGE;
    }
  /* the sweep directory and its runs, without opening a device */
  opt->action = HCL_SWEEP_STATUS;
  opt->quiet = 1;
  hcl_status rc = hcl_sweep(opt, err, sizeof err);
  unsigned n = 0;
  unsigned char *undone = NULL;
  if (rc == HCL_OK) {
    n = tasks && tasks < opt->n_runs ? tasks : (unsigned)opt->n_runs;
    undone = calloc(n, 1);
    if (!undone) return fprintf(stderr, "hiercl sweep: out of memory\n"), HCL_EXIT_FAIL;
    opt->shard_count = n, opt->shard_index = n; /* every shard, counted per shard */
    opt->shard_undone = undone;
    rc = hcl_sweep(opt, err, sizeof err);
  }
  if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", err);
    free(undone);
    return hcl_cli_exit_code(rc);
  }
  const char *parent = opt->run.out_dir && *opt->run.out_dir ? opt->run.out_dir : "runs";
  char script[1200];
  snprintf(script, sizeof script, "%s/array.sbatch", opt->sweep_dir);
  hcl_membuf mb;
  FILE *f = hcl_membuf_open(&mb);
  rc = hcl_mkdir_p(NULL, opt->sweep_dir);
  if (rc == HCL_OK && !f) rc = hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  if (rc == HCL_OK) write_script(f, opt, parent, n, argv + first_sbatch, argc - first_sbatch);
  if (f) {
    hcl_status crc = hcl_membuf_close(NULL, &mb);
    if (rc == HCL_OK) rc = crc;
  }
  if (rc == HCL_OK) rc = hcl_file_replace(NULL, script, mb.data, mb.len);
  if (f) hcl_membuf_free(&mb);
  if (rc == HCL_OK && chmod(script, 0755)) { /* runnable by hand too: not needed by sbatch */
  }
  if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", hcl_errmsg(NULL));
    free(undone);
    return hcl_cli_exit_code(rc);
  }
  printf("%s\n", script);
  size_t left = 0;
  for (unsigned s = 0; s < n; s++) left += undone[s];
  fprintf(stderr, "hiercl sweep: %zu runs in %u array tasks; %zu of them with work left\n",
          opt->n_runs, n, left);
  int code = HCL_EXIT_OK;
  if (submit && !left) {
    fprintf(stderr, "hiercl sweep: every point is done; nothing submitted (--merge writes the "
                    "table)\n");
  } else if (submit) {
    /* only the tasks with work left, when some are done: --array=2,5,... */
    char *array = left < n ? malloc(16 + 12 * (size_t)n) : NULL;
    if (array) {
      char *a = array + sprintf(array, "--array=");
      for (unsigned s = 0; s < n; s++)
        if (undone[s]) a += sprintf(a, "%s%u", a[-1] == '=' ? "" : ",", s);
    }
    code = left < n && !array ? HCL_EXIT_FAIL : run_sbatch(script, array);
    free(array);
  }
  free(undone);
  return code;
}
