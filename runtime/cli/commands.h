/* The subcommands of `hiercl`, one file each; main.c dispatches. Each returns
 * the process exit status (hiercl.h HCL_EXIT_*) and prints its own errors. */
#ifndef HCL_COMMANDS_H
#define HCL_COMMANDS_H

/* hiercl devices [--json]: every OpenCL device; compiles nothing. */
int hcl_cmd_devices(int argc, char **argv);
/* hiercl plugins [--plugin-path P] [--json]: loaded plugins and rejected files. */
int hcl_cmd_plugins(int argc, char **argv);
/* hiercl describe NAME [--plugin-path P]: a plugin's parameters and paper. */
int hcl_cmd_describe(int argc, char **argv);
/* hiercl run CONFIG [--device SEL] [--set s.k=v]... [--out DIR] [--seed N]. */
int hcl_cmd_run(int argc, char **argv);
/* hiercl sweep CONFIG [--grid section.key=v1,v2]...: a grid of runs, resumable. */
int hcl_cmd_sweep(int argc, char **argv);
/* hiercl tune [--device SEL]: CLBlast GEMM parameters for a device. */
int hcl_cmd_tune(int argc, char **argv);
/* hiercl plot DIR: learning or sample-complexity curves as SVG and PNG. */
int hcl_cmd_plot(int argc, char **argv);
/* hiercl sample CONFIG --n K [--format csv|npy] [--out FILE]. */
int hcl_cmd_sample(int argc, char **argv);

/* hiercl gradcheck CONFIG [--samples N] [--replicas R] [--tol T]: a model's
 * backward() against finite differences of its forward(). */
int hcl_cmd_gradcheck(int argc, char **argv);
/* hiercl programs CONFIG [--device SEL] [--export DIR]: the OpenCL programs a run builds. */
int hcl_cmd_programs(int argc, char **argv);
/* hiercl bench [--device SEL|all]... [--quick] [-o md|csv|json] | --compare A B. */
int hcl_cmd_bench(int argc, char **argv);

/* ---- stop requests (main.c) ---------------------------------------------- */
/* Exit status of a run ended by SIGTERM (Slurm/MPI cancel, time limit):
 * 128 + 15, as a shell reports it; Ctrl-C (SIGINT) gives 130. */
#define HCL_EXIT_TERMINATED 143
/* The stop flag a run polls (hcl_run_options.stop): 0, or the number of the
 * first SIGINT/SIGTERM received once hcl_cli_catch_stop() is in place. */
const volatile int *hcl_cli_stop_flag(void);
/* Route SIGINT and SIGTERM to the stop flag; a second one ends the process
 * at once (the default action). */
void hcl_cli_catch_stop(void);
/* hcl_exit_code(rc), except that a run interrupted by SIGTERM exits 143. */
int hcl_cli_exit_code(int rc);

/* ---- files the command runs (share.c) ------------------------------------ */
/* A script the command runs: the file named by environment variable env,
 * else the installed copy, else the source tree's; NULL when none is readable. */
const char *hcl_cli_script(const char *env, const char *installed, const char *source);
/* The Python that has Debian's packages (matplotlib, torch): HIERCL_PYTHON,
 * else /usr/bin/python3, which may not be first on PATH. */
const char *hcl_cli_python(void);
/* The progress display for stderr (hcl_run_options.progress) and, for a log,
 * the seconds between lines from HIERCL_PROGRESS_EVERY; -1 after printing one
 * error line when that variable is not a positive number. */
int hcl_cli_progress(int quiet, double *every_s);

#endif
