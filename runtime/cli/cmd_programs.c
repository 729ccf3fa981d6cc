/* hiercl programs CONFIG [--export DIR]: every OpenCL program the run builds,
 * recorded by a dry run (one training step, evaluations at its start and end)
 * so that a user can compile them offline (Intel aoc, AMD/Xilinx v++) for a
 * device without a compiler and point [runtime] binary_dir at the results. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp, setenv */
#include "commands.h"
#include "internal.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char programs_usage[] =
    "usage: hiercl programs CONFIG [--device SEL] [--export DIR] [--set section.key=value]...\n"
    "                       [--plugin-path DIRS]\n"
    "  Run the config's set-up, one training step and its evaluations on the device and\n"
    "  record every OpenCL program built: DIR/<key>.cl (the full source as compiled),\n"
    "  DIR/<key>.options (its build options) and DIR/programs.tsv (key, the file name\n"
    "  the runtime looks for in [runtime] binary_dir, program, device, options).\n"
    "  Compile each <key>.cl with its options for the device and save the binary as\n"
    "  <binary_dir>/<key>.clbin. A device without a compiler is recorded while another\n"
    "  device builds and runs the programs. Without --export the list is only printed.\n"
    "  HIERCL_NO_COMPILE=1 makes a device that compiles load them instead, to test them.\n";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* A fresh folder under TMPDIR (or /tmp) into out; 0 on success. */
static int make_temp(const char *what, char *out, size_t len) {
  const char *t = getenv("TMPDIR");
  snprintf(out, len, "%s/hiercl-%s-XXXXXX", t && *t ? t : "/tmp", what);
  return mkdtemp(out) ? 0 : -1;
}

/* Print programs.tsv of dir to stdout; the number of programs, -1 if unreadable. */
static long print_list(const char *dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/programs.tsv", dir);
  char *text = hcl_file_text(path);
  if (!text) return -1;
  fputs(text, stdout);
  long lines = 0;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  free(text);
  return lines > 0 ? lines - 1 : 0; /* less the header */
}

int hcl_cmd_programs(int argc, char **argv) {
  /* two more overrides than the arguments: steps and evaluations of the dry run */
  const char **sets = calloc((size_t)argc + 3, sizeof *sets);
  size_t n_sets = 0;
  hcl_run_options opt = {0};
  const char *export_dir = NULL;
  int code = -1;
  if (!sets) {
    fprintf(stderr, "hiercl programs: out of memory\n");
    return HCL_EXIT_FAIL;
  }
  for (int i = 1; code < 0 && i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(programs_usage, stdout);
      code = HCL_EXIT_OK;
    } else if (!strcmp(a, "--device") && has) {
      opt.device = argv[++i];
    } else if (!strcmp(a, "--export") && has) {
      export_dir = argv[++i];
    } else if (!strcmp(a, "--set") && has) {
      sets[n_sets++] = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      opt.plugin_path = argv[++i];
    } else if (a[0] == '-' || opt.config_path) {
      fprintf(stderr, "hiercl programs: unexpected argument '%s'\n%s", a, programs_usage);
      code = HCL_EXIT_USAGE;
    } else {
      opt.config_path = a;
    }
  }
  if (code < 0 && !opt.config_path) {
    fputs(programs_usage, stderr);
    code = HCL_EXIT_USAGE;
  }
  if (code >= 0) {
    free(sets);
    return code;
  }
  char listdir[PATH_MAX] = "", rundir[PATH_MAX] = "";
  if (!export_dir && make_temp("programs", listdir, sizeof listdir)) {
    fprintf(stderr, "hiercl programs: cannot create a temporary folder: %s\n", strerror(errno));
    free(sets);
    return HCL_EXIT_FAIL;
  }
  if (make_temp("programs-run", rundir, sizeof rundir)) {
    fprintf(stderr, "hiercl programs: cannot create a temporary folder: %s\n", strerror(errno));
    if (listdir[0]) rmdir(listdir);
    free(sets);
    return HCL_EXIT_FAIL;
  }
  const char *dir = export_dir ? export_dir : listdir;
  /* Every program of the run is built at set-up, in the first step or in an
   * evaluation; the lengths of the run do not change them. */
  sets[n_sets++] = "train.steps=1";
  sets[n_sets++] = "eval.every=0";
  opt.sets = sets;
  opt.n_sets = n_sets;
  opt.out_dir = rundir;
  opt.stop = hcl_cli_stop_flag();
  hcl_cli_catch_stop();
  setenv("HIERCL_EXPORT_PROGRAMS", dir, 1); /* read by hcl_ctx_create */
  char err[8192];
  hcl_status rc = hcl_run(&opt, err, sizeof err);
  unsetenv("HIERCL_EXPORT_PROGRAMS");
  if (nftw(rundir, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
    fprintf(stderr, "hiercl programs: note: could not remove %s\n", rundir);
  if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", err);
    if (export_dir)
      fprintf(stderr,
              "hiercl programs: the programs recorded before the error are "
              "in %s/programs.tsv\n",
              dir);
  } else {
    long n = print_list(dir);
    if (n < 0)
      fprintf(stderr, "hiercl programs: the run built no OpenCL program\n");
    else if (export_dir)
      fprintf(stderr,
              "hiercl programs: %ld programs in %s; compile each <key>.cl with the options in "
              "<key>.options for the device and save it as <binary_dir>/<key>.clbin, then set "
              "[runtime] binary_dir. CLBlast compiles its own kernels at run time: without a "
              "compiler every product takes the runtime's own kernel instead.\n",
              n, dir);
  }
  if (listdir[0] && nftw(listdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
    fprintf(stderr, "hiercl programs: note: could not remove %s\n", listdir);
  free(sets);
  return hcl_cli_exit_code(rc);
}
