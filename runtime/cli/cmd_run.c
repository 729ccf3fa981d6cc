/* hiercl run CONFIG: one experiment. Ctrl-C ends it cleanly: what was
 * measured stays on disk and the summary says "interrupted". */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char run_usage[] =
    "usage: hiercl run CONFIG [--device SEL] [--set section.key=value]... [--out DIR]\n"
    "                  [--seed N] [--replicas R] [--plugin-path DIRS] [--quiet]\n";

int hcl_cmd_run(int argc, char **argv) {
  const char *sets[256];
  char extra[2][64];
  size_t n_sets = 0;
  hcl_run_options opt = {0};
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(run_usage, stdout);
      return HCL_EXIT_OK;
    } else if (!strcmp(a, "--device") && has) {
      opt.device = argv[++i];
    } else if (!strcmp(a, "--set") && has) {
      if (n_sets == 250) {
        fprintf(stderr, "hiercl run: too many --set options\n");
        return HCL_EXIT_USAGE;
      }
      sets[n_sets++] = argv[++i];
    } else if (!strcmp(a, "--out") && has) {
      opt.out_dir = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      opt.plugin_path = argv[++i];
    } else if (!strcmp(a, "--seed") && has) {
      snprintf(extra[0], sizeof extra[0], "run.seed=%s", argv[++i]);
      sets[n_sets++] = extra[0];
    } else if (!strcmp(a, "--replicas") && has) {
      snprintf(extra[1], sizeof extra[1], "run.replicas=%s", argv[++i]);
      sets[n_sets++] = extra[1];
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = 1;
    } else if (a[0] == '-' || opt.config_path) {
      fprintf(stderr, "hiercl run: unexpected argument '%s'\n%s", a, run_usage);
      return HCL_EXIT_USAGE;
    } else {
      opt.config_path = a;
    }
  }
  if (!opt.config_path) {
    fputs(run_usage, stderr);
    return HCL_EXIT_USAGE;
  }
  opt.sets = sets;
  opt.n_sets = n_sets;
  opt.stop = hcl_cli_stop_flag();
  opt.progress = !quiet && isatty(STDERR_FILENO);
  hcl_cli_catch_stop();
  char err[8192];
  hcl_status rc = hcl_run(&opt, err, sizeof err);
  if (rc == HCL_ERR_INTERRUPTED) {
    fprintf(stderr, "hiercl: %s; results so far in %s\n",
            hcl_cli_exit_code(rc) == HCL_EXIT_TERMINATED ? "terminated (SIGTERM)" : "interrupted",
            opt.run_dir);
  } else if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", err);
  } else {
    printf("%s\n", opt.run_dir);
  }
  return hcl_cli_exit_code(rc);
}
