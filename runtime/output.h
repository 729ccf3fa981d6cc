/* Run directory writers (output.c). */
#ifndef HCL_OUTPUT_H
#define HCL_OUTPUT_H

#include "trainer.h"

#include <limits.h>

/* Room a run directory needs below its parent: "/<stamp>_<name>_<device>-NNN"
 * (at most 243 characters) and its longest file name. */
#define HCL_OUT_ROOM 320
/* The longest run directory path: hcl_run_options.run_dir's size (well
 * below PATH_MAX, which the run's files then also fit). */
#define HCL_RUN_DIR_MAX 1024

typedef struct hcl_run_out {
  char dir[PATH_MAX];
  char metrics_path[PATH_MAX];
  int metrics_fd, metrics_open;
  hcl_ctx *ctx;
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

/* HCL_ERR_CONFIG (naming --out and the limit) when a run directory under
 * parent, plus `extra` characters of intermediate folders, would not fit in
 * HCL_RUN_DIR_MAX: too long is refused, never cut. */
hcl_status hcl_out_check_parent(hcl_ctx *ctx, const char *parent, size_t extra);
/* Create <parent>/<UTC stamp>_<name>_<device>[-k], always a new directory
 * (mkdir fails on an existing one: the next k is tried, 999 at most), and
 * create metrics.jsonl in it. */
hcl_status hcl_out_open(hcl_ctx *ctx, hcl_run_out *o, const char *parent, const char *name);
/* fsync and close metrics.jsonl (a no-op when closed); a failure names the file. */
hcl_status hcl_out_close(hcl_run_out *o);
/* (Re)write manifest.json atomically. */
hcl_status hcl_out_manifest(hcl_ctx *ctx, const hcl_run_out *o, const hcl_manifest *m);
/* The metrics.jsonl writer for the trainer. */
hcl_metric_sink hcl_out_sink(hcl_run_out *o);
/* Write summary.json atomically from the trainer's last evaluation. */
hcl_status hcl_out_summary(hcl_ctx *ctx, const hcl_run_out *o, const hcl_trainer *t,
                           const char *status, const char *error);

#endif
