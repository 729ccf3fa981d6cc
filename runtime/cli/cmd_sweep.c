/* hiercl sweep CONFIG: a grid of runs and the sample-complexity estimate. */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char sweep_usage[] =
    "usage: hiercl sweep CONFIG [--grid section.key=v1,v2,...]... [--set section.key=value]...\n"
    "                    [--select section.key=v1,v2,...]... [--device SEL] [--out DIR]\n"
    "                    [--plugin-path DIRS]\n"
    "values: a list 'v1, v2', an integer range 'a..b', or 'geom(lo, hi, n)'; run.seed as an\n"
    "axis trains the seeds as replicas of one run. --select (or a [select] section) trains\n"
    "every candidate at every point and keeps, per seed, the one with the lowest val_loss\n"
    "([eval] val_size > 0). Re-running the same command resumes.\n";

int hcl_cmd_sweep(int argc, char **argv) {
  /* every option takes one argument at least: argc bounds both lists (the
   * sweep itself limits the number of grid keys, with a clear error) */
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  const char **grid = calloc((size_t)argc + 1, sizeof *grid);
  const char **select = calloc((size_t)argc + 1, sizeof *select);
  size_t n_sets = 0, n_grid = 0, n_select = 0;
  int code = -1;
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
  opt.run.progress = isatty(STDERR_FILENO);
  hcl_cli_catch_stop();
  char err[8192];
  hcl_status rc = hcl_sweep(&opt, err, sizeof err);
  if (rc == HCL_ERR_INTERRUPTED)
    fprintf(stderr, "hiercl: sweep interrupted; run the same command again to resume (%s)\n",
            opt.sweep_dir);
  else if (rc != HCL_OK)
    fprintf(stderr, "hiercl: error: %s\n", err);
  else
    printf("%s\n", opt.sweep_dir);
  free(sets);
  free(grid);
  free(select);
  return hcl_cli_exit_code(rc);
}
