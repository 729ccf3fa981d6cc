/* Run directory writers (output.c). */
#ifndef HCL_OUTPUT_H
#define HCL_OUTPUT_H

#include "trainer.h"

typedef struct hcl_run_out {
  char dir[1024];
  FILE *metrics;
  const uint64_t *seeds;
} hcl_run_out;

typedef struct hcl_manifest {
  const char *status; /* running | completed | interrupted | failed */
  const char *error;
  const hcl_config *cfg;
  const hcl_params *const *sections;
  size_t n_sections;
  const hcl_plugin *target, *model;
  uint32_t replicas;
  const uint64_t *seeds;
  size_t n_params;
} hcl_manifest;

/* Create <parent>/<UTC stamp>_<name>_<device> (never an existing one) and open metrics.jsonl. */
hcl_status hcl_out_open(hcl_ctx *ctx, hcl_run_out *o, const char *parent, const char *name);
void hcl_out_close(hcl_run_out *o);
/* (Re)write manifest.json atomically. */
hcl_status hcl_out_manifest(hcl_ctx *ctx, const hcl_run_out *o, const hcl_manifest *m);
/* The metrics.jsonl writer for the trainer. */
hcl_metric_sink hcl_out_sink(hcl_run_out *o);
/* Write summary.json atomically from the trainer's last evaluation. */
hcl_status hcl_out_summary(hcl_ctx *ctx, const hcl_run_out *o, const hcl_trainer *t,
                           const char *status, const char *error);

#endif
