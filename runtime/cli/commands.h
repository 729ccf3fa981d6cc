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

/* hiercl bench [--device SEL|all]... [--quick] [-o md|csv|json] | --compare A B. */
int hcl_cmd_bench(int argc, char **argv);

#endif
