/* hiercl runtime API: what the `hiercl` command (and any embedding program)
 * uses. Plugins do not include this; they get include/hiercl/plugin.h. */
#ifndef HIERCL_H
#define HIERCL_H

#include "hiercl/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HIERCL_VERSION "0.1.0"

/* Exit statuses of the command, also used by hcl_run. */
enum {
  HCL_EXIT_OK = 0,
  HCL_EXIT_FAIL = 1,
  HCL_EXIT_USAGE = 2,
  HCL_EXIT_NODEVICE = 3,
  HCL_EXIT_INTERRUPTED = 130
};

typedef struct hcl_ctx_options {
  const char *device;     /* selector; NULL: HIERCL_DEVICE, else the default */
  int profiling;          /* per-kernel device times */
  int cache_policy;       /* 0 auto, 1 on, 2 off */
  const char *cache_dir;  /* NULL: default */
  const char *binary_dir; /* prebuilt program binaries (devices without compiler) */
  int quiet;              /* suppress notes on stderr */
  /* Record every program built (source as compiled, options, the file name
   * the runtime looks for) under this folder; NULL: HIERCL_EXPORT_PROGRAMS. */
  const char *export_dir;
  /* Load every program from binary_dir as on a device without a compiler
   * (also HIERCL_NO_COMPILE=1); ignored while recording programs. */
  int no_compile;
} hcl_ctx_options;

/* Create a context on the selected device. On failure *out is NULL and err
 * holds one line (with the candidate list when the selector matched none). */
hcl_status hcl_ctx_create(const hcl_ctx_options *opt, hcl_ctx **out, char *err, size_t errlen);
/* Release everything the context holds. NULL is a no-op. */
void hcl_ctx_destroy(hcl_ctx *ctx);
/* The last error message of the context ("" when none). */
const char *hcl_errmsg(const hcl_ctx *ctx);
/* A name for a status: HCL_ERR_* names and OpenCL error names. */
const char *hcl_strerror(hcl_status rc);
/* The process exit status that fits rc. */
int hcl_exit_code(hcl_status rc);

/* What the runs of one process share: the plugin registry (scanned once)
 * and one context per device, whose programs are compiled once. Not thread
 * safe: one session per thread. */
typedef struct hcl_session hcl_session;
/* A session whose registry is scanned from plugin_path (colon list, may be
 * NULL) like hcl_run's. On failure *out is NULL and err holds one line. */
hcl_status hcl_session_create(const char *plugin_path, hcl_session **out, char *err, size_t errlen);
/* Release the session's contexts and plugins. NULL is a no-op. */
void hcl_session_destroy(hcl_session *s);
/* Programs the session's contexts compiled, and builds they were spared. */
void hcl_session_programs(const hcl_session *s, unsigned long *built, unsigned long *reused,
                          size_t *contexts);

/* hcl_run_options.progress: a terminal gets a line redrawn in place; a log
 * (nohup, Slurm, CI) gets plain lines, so a long run is never silent there. */
enum { HCL_PROGRESS_TTY = 1, HCL_PROGRESS_LOG = 2 };

/* One experiment: a config file plus command-line overrides. */
typedef struct hcl_run_options {
  const char *config_path;
  const char *const *sets; /* "section.key=value" overrides */
  size_t n_sets;
  const char *device;       /* overrides [runtime] device and HIERCL_DEVICE */
  const char *out_dir;      /* parent of the run directory (default [run] out) */
  const char *plugin_path;  /* extra plugin directories (colon list) */
  const volatile int *stop; /* set to nonzero (e.g. from SIGINT) to end cleanly */
  int progress;             /* stderr progress: 0 none, HCL_PROGRESS_TTY one line redrawn in
                               place, HCL_PROGRESS_LOG a plain line every progress_every_s */
  double progress_every_s;  /* HCL_PROGRESS_LOG: seconds between lines (<= 0: 30) */
  int dry_run;              /* check config and plugins only: no device, no output */
  char run_dir[1024];       /* out: the directory written */
  hcl_session *session;     /* NULL: a context and registry of the run's own */
  char device_id[96];       /* out: the stable id of the device that ran it */
  size_t n_diverged;        /* out: replicas whose training loss became non-finite, their
                               numbers void (summary.json: diverged_at_step); the run still
                               returns HCL_OK when others completed, with err saying so */
} hcl_run_options;

/* Validate the config, train on the device and write manifest.json,
 * metrics.jsonl and summary.json under a new run directory. What was
 * measured before an error or an interrupt stays on disk. err gets one line. */
hcl_status hcl_run(hcl_run_options *opt, char *err, size_t errlen);

/* Write n samples of the configured target (replica 0, stream HCL_STREAM_*)
 * to path ("-" = stdout) as csv (header x0..,y0..) or npy (float32 [n, x+y]). */
hcl_status hcl_sample_run(hcl_run_options *opt, uint64_t n, uint32_t stream, const char *format,
                          const char *path, char *err, size_t errlen);

/* A grid of runs over config keys: the [sweep] section (section.key = v1,
 * v2 | a..b | geom(lo, hi, n)) plus grid entries "section.key=v1,v2". Seeds
 * (run.seed) become replicas of one run per point. Results go to
 * <out>/sweep_<name>_<hash>/ (sweep.jsonl, table.tsv, pstar.json); running
 * the same sweep again skips the points already completed. */
typedef struct hcl_sweep_options {
  hcl_run_options run;     /* config, --set, device, out, plugin path, stop */
  const char *const *grid; /* "section.key=values" */
  size_t n_grid;
  char sweep_dir[1024];      /* out: the sweep directory */
  const char *const *select; /* "section.key=values": candidates chosen per point on val_loss */
  size_t n_select;
  /* Shards (Slurm job arrays): with shard_count > 0 only the runs j with
   * j % shard_count == shard_index train, their records go to
   * sweep.shard-I-of-N.jsonl, and table.tsv / pstar.json are left to a merge. */
  unsigned shard_index, shard_count;
  int action;                  /* HCL_SWEEP_RUN, HCL_SWEEP_STATUS, HCL_SWEEP_MERGE */
  int quiet;                   /* status: count only, print nothing */
  unsigned char *shard_undone; /* status: [shard_count] set for each shard with work left */
  size_t n_done, n_failed;     /* out (status, merge): points done, failed, */
  size_t n_pending;            /* and neither */
  size_t n_runs;               /* out: runs (jobs) in the whole grid */
  int mpi_worker;              /* out: this process was an MPI rank > 0 (it printed no table) */
} hcl_sweep_options;

enum {
  HCL_SWEEP_RUN = 0,    /* run (or resume) the sweep, or one shard of it */
  HCL_SWEEP_STATUS = 1, /* list each point as done, failed or pending; no device, no run */
  HCL_SWEEP_MERGE = 2   /* sweep.jsonl from every shard's records, then table.tsv, pstar.json */
};

/* Join the MPI world when this process was started by mpirun (hiercl built
 * with HCL_MPI): then hcl_sweep runs as rank 0 handing out runs or as a
 * worker. Returns the world size (1 when not under MPI), or -1 when started
 * by mpirun with several ranks but built without MPI. */
int hcl_mpi_begin(int *argc, char ***argv);
/* Leave the MPI world (no-op when not joined). */
void hcl_mpi_end(void);

/* Run (or resume) a sweep; prints progress on stderr and the table on stdout.
 * STATUS and MERGE return HCL_OK when they could read (and write) the
 * records: the points' states are in n_done, n_failed, n_pending. */
hcl_status hcl_sweep(hcl_sweep_options *opt, char *err, size_t errlen);

/* A gradient check of the configured model (hiercl gradcheck): its
 * backward() against central finite differences of its forward(). */
typedef struct hcl_gradcheck_options {
  hcl_run_options run; /* config, --set, device, plugin path, stop */
  size_t samples;      /* test inputs per replica (0: 4) */
  uint32_t replicas;   /* R >= 2 (0: 2); [run] seeds, when set, decide instead */
  size_t coords;       /* coordinates checked per block (0: 16); every one of a smaller block */
} hcl_gradcheck_options;

/* One parameter block's result. max_rel is max |g - fd| over the checked
 * coordinates and replicas, divided by the largest |g| or |fd| among them
 * (0 when both are 0; NaN when a value was not finite); fd is the central
 * difference at the step (of 4, each 8 times smaller) that agrees best, so
 * a step across a ReLU kink does not count against a right gradient. */
typedef struct hcl_gradcheck_block {
  char name[64];
  size_t rows, cols;
  size_t checked; /* coordinates checked (per replica) */
  int trainable;  /* 0: frozen, not checked */
  double max_rel;
  double max_grad; /* largest |g| among the checked coordinates */
  double ratio;    /* when g = ratio * fd in every coordinate but ratio is not 1 (a constant
                      factor folded into backward); NaN otherwise */
} hcl_gradcheck_block;

/* Load the config and plugins, open the device, initialise the model as a
 * run does (init, prepare) and check every trainable block. *blocks
 * (free()) gets one entry per block, model (when not NULL) the plugin's
 * name. err gets one line. */
hcl_status hcl_gradcheck(hcl_gradcheck_options *opt, hcl_gradcheck_block **blocks, size_t *n_blocks,
                         char *model, size_t model_len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
