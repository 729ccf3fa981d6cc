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

/* "run.KEY=VALUE" (malloc'd), for --seed and --replicas: any length, so a
 * long value is checked whole, never cut. */
static char *assignment(const char *key, const char *value) {
  size_t len = strlen("run.") + strlen(key) + 1 + strlen(value) + 1;
  char *a = malloc(len);
  if (a) snprintf(a, len, "run.%s=%s", key, value);
  return a;
}

int hcl_cmd_run(int argc, char **argv) {
  /* every option takes one argument at least: argc bounds the --set list */
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  char **owned = calloc((size_t)argc + 1, sizeof *owned);
  size_t n_sets = 0, n_owned = 0;
  hcl_run_options opt = {0};
  int quiet = 0, code = -1;
  if (!sets || !owned) {
    fprintf(stderr, "hiercl run: out of memory\n");
    code = HCL_EXIT_FAIL;
  }
  for (int i = 1; code < 0 && i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(run_usage, stdout);
      code = HCL_EXIT_OK;
    } else if (!strcmp(a, "--device") && has) {
      opt.device = argv[++i];
    } else if (!strcmp(a, "--set") && has) {
      sets[n_sets++] = argv[++i];
    } else if (!strcmp(a, "--out") && has) {
      opt.out_dir = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      opt.plugin_path = argv[++i];
    } else if ((!strcmp(a, "--seed") || !strcmp(a, "--replicas")) && has) {
      /* in command-line order with the --set options: the last one wins */
      char *v = assignment(a + 2, argv[++i]);
      if (!v) {
        fprintf(stderr, "hiercl run: out of memory\n");
        code = HCL_EXIT_FAIL;
        break;
      }
      owned[n_owned++] = v;
      sets[n_sets++] = v;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = 1;
    } else if (a[0] == '-' || opt.config_path) {
      fprintf(stderr, "hiercl run: unexpected argument '%s'\n%s", a, run_usage);
      code = HCL_EXIT_USAGE;
    } else {
      opt.config_path = a;
    }
  }
  if (code < 0 && !opt.config_path) {
    fputs(run_usage, stderr);
    code = HCL_EXIT_USAGE;
  }
  if (code < 0) {
    opt.sets = sets;
    opt.n_sets = n_sets;
    opt.stop = hcl_cli_stop_flag();
    opt.progress = hcl_cli_progress(quiet, &opt.progress_every_s);
    if (opt.progress < 0) code = HCL_EXIT_USAGE;
  }
  if (code < 0) {
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
    code = hcl_cli_exit_code(rc);
    if (rc == HCL_OK && opt.n_diverged) { /* the others' numbers stand; the run is not whole */
      fprintf(stderr, "hiercl: error: %s\n", err);
      code = hcl_cli_exit_code(HCL_ERR_NUMERIC);
    }
  }
  for (size_t i = 0; i < n_owned; i++) free(owned[i]);
  free(owned);
  free(sets);
  return code;
}
