/* hiercl sample CONFIG --n K: the configured target's data, for inspection
 * or reuse elsewhere (.npy loads in numpy). */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sample_usage[] =
    "usage: hiercl sample CONFIG --n K [--format csv|npy] [--out FILE] [--stream train|test]\n"
    "                     [--device SEL] [--set section.key=value]... [--plugin-path DIRS]\n";

int hcl_cmd_sample(int argc, char **argv) {
  /* every option takes one argument at least: argc bounds the --set list */
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  if (!sets) {
    fprintf(stderr, "hiercl sample: out of memory\n");
    return HCL_EXIT_FAIL;
  }
  size_t n_sets = 0;
  int code = -1;
  hcl_run_options opt = {0};
  const char *format = "csv", *out = "-", *stream = "train";
  long long n = -1;
  for (int i = 1; code < 0 && i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(sample_usage, stdout);
      code = HCL_EXIT_OK;
    } else if (!strcmp(a, "--n") && has) {
      char *end;
      n = strtoll(argv[++i], &end, 10);
      if (*end || n < 0) n = -2;
    } else if (!strcmp(a, "--format") && has) {
      format = argv[++i];
    } else if (!strcmp(a, "--out") && has) {
      out = argv[++i];
    } else if (!strcmp(a, "--stream") && has) {
      stream = argv[++i];
    } else if (!strcmp(a, "--device") && has) {
      opt.device = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      opt.plugin_path = argv[++i];
    } else if (!strcmp(a, "--set") && has) {
      sets[n_sets++] = argv[++i];
    } else if (a[0] == '-' || opt.config_path) {
      fprintf(stderr, "hiercl sample: unexpected argument '%s'\n%s", a, sample_usage);
      code = HCL_EXIT_USAGE;
    } else {
      opt.config_path = a;
    }
  }
  if (code >= 0) {
    free(sets);
    return code;
  }
  if (!opt.config_path || n < 0 || (strcmp(format, "csv") && strcmp(format, "npy")) ||
      (strcmp(stream, "train") && strcmp(stream, "test"))) {
    fprintf(stderr, "hiercl sample: %s\n%s",
            !opt.config_path                                    ? "missing CONFIG"
            : n == -1                                           ? "missing --n K"
            : n < 0                                             ? "--n takes a non-negative integer"
            : strcmp(stream, "train") && strcmp(stream, "test") ? "--stream is train or test"
                                                                : "--format is csv or npy",
            sample_usage);
    free(sets);
    return HCL_EXIT_USAGE;
  }
  opt.sets = sets;
  opt.n_sets = n_sets;
  char err[8192];
  hcl_status rc =
      hcl_sample_run(&opt, (uint64_t)n, strcmp(stream, "test") ? HCL_STREAM_TRAIN : HCL_STREAM_TEST,
                     format, out, err, sizeof err);
  if (rc != HCL_OK) fprintf(stderr, "hiercl: error: %s\n", err);
  free(sets);
  return hcl_exit_code(rc);
}
