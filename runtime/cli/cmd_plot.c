/* hiercl plot DIR: runs tools/plot.py (matplotlib) on a run or sweep
 * directory. A well-kept plotting library rather than our own renderer. */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int hcl_cmd_plot(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    fputs("usage: hiercl plot RUN_OR_SWEEP_DIR   (writes SVG and PNG into the directory)\n",
          argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
    return argc == 2 && !strcmp(argv[1], "--help") ? HCL_EXIT_OK : HCL_EXIT_USAGE;
  }
  const char *script = hcl_cli_script("HIERCL_PLOT_SCRIPT", HCL_INSTALL_SHARE_DIR "/plot.py",
                                      HCL_SOURCE_DIR "/tools/plot.py");
  if (!script) {
    fprintf(stderr, "hiercl: error: plot.py not found (set HIERCL_PLOT_SCRIPT)\n");
    return HCL_EXIT_FAIL;
  }
  const char *py = hcl_cli_python();
  pid_t pid = fork();
  if (pid < 0) {
    perror("hiercl: fork");
    return HCL_EXIT_FAIL;
  }
  if (pid == 0) {
    execlp(py, py, script, argv[1], (char *)NULL);
    fprintf(stderr, "hiercl: error: cannot run %s (install python3-matplotlib)\n", py);
    _exit(127);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) < 0) return HCL_EXIT_FAIL;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "hiercl: error: plotting %s failed (the lines above say why)\n", argv[1]);
    return HCL_EXIT_FAIL;
  }
  return HCL_EXIT_OK;
}
