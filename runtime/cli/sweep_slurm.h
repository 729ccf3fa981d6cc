/* hiercl sweep --slurm: the sweep as a Slurm job array (sweep_slurm.c). */
#ifndef HCL_SWEEP_SLURM_H
#define HCL_SWEEP_SLURM_H
#include "hiercl/hiercl.h"

/* Write <sweep dir>/array.sbatch for opt (the command line argv, its
 * sbatch options from argv[first_sbatch]), a job array of `tasks` shards (0:
 * one per run), and with submit run sbatch on it for the shards with work
 * left. Returns the exit status; prints its own errors. */
int hcl_sweep_slurm(hcl_sweep_options *opt, int argc, char **argv, int first_sbatch, unsigned tasks,
                    int submit);
#endif
