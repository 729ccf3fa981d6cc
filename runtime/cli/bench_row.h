/* A row of `hiercl bench`: one case on one device, every round's figures,
 * and the reports made of them (bench_report.c). cmd_bench.c fills the rows;
 * both files see this one definition. */
#ifndef HCL_BENCH_ROW_H
#define HCL_BENCH_ROW_H
#include "bench_suite.h"
#include "internal.h"

#include <stdio.h>

#define BENCH_SCHEMA "hiercl-bench/1"
#define TOP_KERNELS 3
#define BENCH_MAX_REPEAT 25

typedef struct bench_row {
  const hcl_device_info *dev;
  const hcl_bench_case *c;
  /* a row with replicas: the same experiment at R = 1 on the same device in
   * this call, or NULL (its replica gain is then not reported) */
  const struct bench_row *base;
  int ok;
  char error[2048];
  double steps, cpu_s, gemm_flops, peak_bytes; /* the latest round */
  /* every round's replica-steps (or runs) per s and per CPU-s, and its PyTorch twin's */
  double rate[BENCH_MAX_REPEAT], cpu_rate[BENCH_MAX_REPEAT], torch_rate[BENCH_MAX_REPEAT];
  /* the device's FMA rate (GFLOP/s, hcl_fma_peak) around each round; NaN if unmeasured */
  double fma_peak[BENCH_MAX_REPEAT];
  size_t rounds, torch_rounds;
  int runs_per_round;  /* timed runs in the latest round (a case timed as whole runs: several) */
  double timed_s;      /* the latest round's timed wall time (its runs' own, set-up excluded) */
  double warmup_steps; /* steps of the untimed run before the first round (its summary's) */
  struct {
    char name[48];
    double launches, device_s;
  } top[TOP_KERNELS];
  size_t n_top;
  double launches; /* every kernel launch of the latest round */
  int torch_threads;
  char torch_version[48];
} bench_row;

/* Print the rows as hiercl-bench/1 JSON, one row per line (--compare reads it). */
void hcl_bench_print_json(FILE *o, const bench_row *rows, size_t n);
/* Print the rows as a Markdown table (csv = 0) or as CSV with a header line. */
void hcl_bench_print_table(FILE *o, const bench_row *rows, size_t n, int csv);
#endif
