/* hiercl: the command. Dispatches to one file per subcommand. */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t g_stop;

static void on_stop(int sig) {
  g_stop = sig;
  signal(SIGINT, SIG_DFL); /* a second Ctrl-C or SIGTERM ends the process at once */
  signal(SIGTERM, SIG_DFL);
}

const volatile int *hcl_cli_stop_flag(void) { return (const volatile int *)&g_stop; }

void hcl_cli_catch_stop(void) {
  signal(SIGINT, on_stop);
  signal(SIGTERM, on_stop);
}

int hcl_cli_exit_code(int rc) {
  if (rc == HCL_ERR_INTERRUPTED && g_stop == SIGTERM) return HCL_EXIT_TERMINATED;
  return hcl_exit_code(rc);
}

static const char usage[] =
    "usage: hiercl COMMAND [ARGS]\n"
    "\n"
    "Experiments of deep-learning theory on any OpenCL device.\n"
    "\n"
    "commands:\n"
    "  run CONFIG [--device SEL] [--set section.key=value]... [--out DIR] [--seed N]\n"
    "                      train as the INI config says; writes a run directory\n"
    "  sweep CONFIG [--grid section.key=v1,v2,...]...\n"
    "                      a grid of runs (seeds as replicas), resumable, with P*\n"
    "  plot DIR            learning curves of a run, sample-complexity curves of a sweep\n"
    "  tune [--device SEL] tune CLBlast's GEMM for a device (clblast-utils)\n"
    "  bench [--device SEL|all] [--quick] [-o md|csv|json] | --compare A.json B.json\n"
    "                      the reference experiments' training steps, per device\n"
    "  sample CONFIG --n K [--format csv|npy] [--out FILE]\n"
    "                      write K samples of the configured target\n"
    "  gradcheck CONFIG [--samples N] [--replicas R] [--tol T]\n"
    "                      a model's gradients against finite differences, per block\n"
    "  programs CONFIG [--device SEL] [--export DIR]\n"
    "                      the OpenCL programs a run builds, to compile offline (FPGA)\n"
    "  devices [--json]    list every OpenCL device with its stable id\n"
    "  plugins [--json]    list target and model plugins (and files rejected)\n"
    "  describe NAME       a plugin's parameters, defaults, ranges and paper\n"
    "\n"
    "common options: --plugin-path DIRS (also HIERCL_PLUGIN_PATH), --device SEL\n"
    "(also HIERCL_DEVICE): an index, an id such as pocl:cpu:0, gpu, cpu, accel, or\n"
    "a name substring. Exit status: 0 ok, 1 failure, 2 bad usage or config,\n"
    "3 no device, 130 interrupted (SIGINT), 143 terminated (SIGTERM); an interrupted\n"
    "run's summary.json says \"interrupted\".\n";

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? HCL_EXIT_USAGE : HCL_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("hiercl %s\n", HIERCL_VERSION);
    return HCL_EXIT_OK;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {
      {"run", hcl_cmd_run},           {"sample", hcl_cmd_sample},      {"sweep", hcl_cmd_sweep},
      {"plot", hcl_cmd_plot},         {"tune", hcl_cmd_tune},          {"devices", hcl_cmd_devices},
      {"plugins", hcl_cmd_plugins},   {"describe", hcl_cmd_describe},  {"bench", hcl_cmd_bench},
      {"programs", hcl_cmd_programs}, {"gradcheck", hcl_cmd_gradcheck}};
  for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
    if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "hiercl: unknown command '%s' (see hiercl --help)\n", argv[1]);
  return HCL_EXIT_USAGE;
}
