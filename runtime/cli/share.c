/* Where the command finds the scripts it runs (plot.py, the PyTorch
 * twins) and the Python to run them with; how a run shows its progress. */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *hcl_cli_script(const char *env, const char *installed, const char *source) {
  const char *e = getenv(env);
  if (e && *e) return e;
  if (access(installed, R_OK) == 0) return installed;
  return access(source, R_OK) == 0 ? source : NULL;
}

const char *hcl_cli_python(void) {
  const char *env = getenv("HIERCL_PYTHON");
  if (env && *env) return env;
  return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

int hcl_cli_progress(int quiet, double *every_s) {
  *every_s = 0;
  if (quiet) return 0;
  if (isatty(STDERR_FILENO)) return HCL_PROGRESS_TTY;
  const char *v = getenv("HIERCL_PROGRESS_EVERY");
  if (v && *v) {
    char *end;
    double t = strtod(v, &end);
    if (end == v || *end || !(t > 0 && t < 1e9)) {
      fprintf(stderr,
              "hiercl: error: HIERCL_PROGRESS_EVERY=%s: not a positive number of seconds "
              "(between progress lines when stderr is not a terminal)\n",
              v);
      return -1;
    }
    *every_s = t;
  }
  return HCL_PROGRESS_LOG;
}
