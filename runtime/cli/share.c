/* Where the command finds the scripts it runs (plot.py, the PyTorch
 * twins) and the Python to run them with. */
#include "commands.h"

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
