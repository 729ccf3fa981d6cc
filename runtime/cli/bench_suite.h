/* The fixed suite of `hiercl bench`: the reference experiments' training
 * steps, embedded so an installed binary needs no config files. */
#ifndef HCL_BENCH_SUITE_H
#define HCL_BENCH_SUITE_H
#include <stddef.h>

typedef struct hcl_bench_case {
  const char *name;   /* row name: experiment and replicas, e.g. staircase_resnet/r10 */
  const char *config; /* INI text of the experiment (training settings of its paper) */
  unsigned replicas;
  unsigned steps, quick_steps; /* steps timed (full / --quick); 0: the algorithm's own */
  const char *unit;            /* "step": steps/s from the training loop; "run": runs/s */
} hcl_bench_case;

/* The suite, in a fixed order; *n receives its length. */
const hcl_bench_case *hcl_bench_suite(size_t *n);
#endif
