/* Sweep internals: the grid (sweep.c), candidate selection (sweep_select.c),
 * and what the tests reach. */
#ifndef HCL_SWEEP_H
#define HCL_SWEEP_H
#include "trainer.h"

#include <pthread.h>

#define HCL_SWEEP_MAX_AXES 8
#define HCL_SWEEP_MAX_VALUES 256
/* Longest grid value: point keys ("k1=v1;k2=v2", 1024 bytes) and the
 * per-replica lists must hold every value whole, never cut. */
#define HCL_SWEEP_MAX_VALUE_LEN 200

typedef struct hcl_axis {
  char key[96]; /* section.key */
  char *values[HCL_SWEEP_MAX_VALUES];
  size_t n;
} hcl_axis;

typedef struct hcl_grid {
  hcl_axis axes[HCL_SWEEP_MAX_AXES];
  size_t n_axes;
  int seed_axis;    /* index of run.seed, or -1 */
  int size_axis;    /* index of train.train_size, or -1 */
  int dim_axis;     /* the dimension P* is fitted against ([sweep] dim, target.d), or -1 */
  char dim_key[96]; /* [sweep] dim as given ("" = target.d when it is an axis) */
  char metric[32];  /* auto, test_error, test_loss, train_loss */
  double threshold; /* 0: automatic */
  char name[128];
  size_t n_select; /* the last n_select axes are candidates ([select], --select), chosen per
                      (point, seed) on val_loss */
} hcl_grid;

/* Points of the grid: every combination of the non-seed axes. */
size_t hcl_sweep_n_points(const hcl_grid *sw);
/* Value index of axis axis_i at point p (mixed radix over the non-seed axes, last fastest). */
size_t hcl_sweep_value_at(const hcl_grid *sw, size_t p, size_t axis_i);
/* "k1=v1;k2=v2" of the non-seed axes, leaving out the axes whose bit is set in skip. */
void hcl_sweep_point_key_mask(const hcl_grid *sw, size_t p, unsigned skip, char *out, size_t len);
/* Selection (sweep_select.c): for every (point, seed) of the grid without its
 * candidate axes that the sweep records of dir (sweep.jsonl and its shard
 * files) lack and whose candidates all have a record (candidates.jsonl and
 * its shard files), append to sel_path (open for appending as sel_fd) one
 * record of the candidate with the lowest finite val_loss: its metrics, with
 * "selected" (the chosen values) and "candidates" (each one's val_loss). One
 * write and an fsync; on failure the error names sel_path. */
/* Failures a sweep reports at its end: how many, and the first few named. */
typedef struct hcl_sweep_failures {
  int n;
  char names[640];
} hcl_sweep_failures;
/* Count one failure of point `key` (and seed, when not NULL) in f (NULL: ignored). */
void hcl_sweep_failure(hcl_sweep_failures *f, const char *key, const uint64_t *seed);
/* Every (point, seed) whose selection failed (no candidate with a finite
 * val_loss: written now, or before and not selected since) is counted in
 * failed (may be NULL); one written now is named on stderr. */
hcl_status hcl_sweep_select_pending(const hcl_grid *sw, const char *dir, const char *sel_path,
                                    int sel_fd, const uint64_t *seeds, size_t nS,
                                    hcl_sweep_failures *failed);
/* "key":"value" pairs of the non-seed axes in [from, to) at point p,
 * comma-separated (the inside of a record's "point" object). */
void hcl_sweep_axes_json(FILE *f, const hcl_grid *sw, size_t p, size_t from, size_t to);
/* Whether line[0, len) is a whole sweep.jsonl record (a completed one with its metrics). */
int hcl_sweep_line_ok(const char *line, size_t len);
/* Whether the record line[0..len) itself is "completed" (its first status:
 * a selection record's candidates have their own, later). */
int hcl_sweep_line_completed(const char *line, size_t len);
/* Whether the record line[0..len) is final: 1 "completed", 2 "diverged" (a
 * replica whose training loss went non-finite: deterministic, so never
 * retrained), 0 neither. */
int hcl_sweep_line_final(const char *line, size_t len);

/* Expand "a, b" | "a..b" | "geom(lo, hi, n)" into strings (malloc'd array of malloc'd strings). */
hcl_status hcl_sweep_parse_values(const char *key, const char *text, char ***out, size_t *n);
/* Check the n values of grid key `key` (section.key) before anything runs:
 * typed like --set for the core sections; no quotes, backslashes, control
 * characters or invalid UTF-8 anywhere. run.seed values are rewritten in
 * place as plain integers. Errors start with `origin` ("--grid", FILE:LINE). */
hcl_status hcl_sweep_check_values(const char *key, char **values, size_t n, const char *origin);
/* P*: the smallest P (ascending P[]) with err <= thr, log-interpolated between
 * the bracketing points [lo, hi]; NaN pstar with lo = 0 when already below at
 * P[0] (then hi = P[0]), NaN with lo = P[n-1] when never reached. */
hcl_status hcl_sweep_pstar(const double *P, const double *err, size_t n, double thr, double *pstar,
                           double *lo, double *hi);
/* How much of a sweep.jsonl text (len bytes, NUL at text[len]) a resumed
 * sweep keeps: the longest prefix ending in a whole record line (a torn or
 * invalid tail, e.g. from a full disk or a crash, is cut). */
size_t hcl_sweep_whole_prefix(const char *text, size_t len);

/* ---- shards (sweep_shard.c) ---- */
/* The run (job) of every point into job[np]: points that differ only in the
 * batched axes (bit i of bmask) train as one run; runs are numbered in grid
 * order. Shard I of N runs the jobs j with j % N == I. Returns the number of runs. */
size_t hcl_sweep_jobs(const hcl_grid *sw, unsigned bmask, size_t *job);
/* "<base>.shard-I-of-N.jsonl": the file shard I of N appends its records to. */
void hcl_sweep_shard_name(const char *base, unsigned i, unsigned n, char *out, size_t len);
/* Every whole record of <dir>/<base>.jsonl, then of each <base>.shard-I-of-N.jsonl
 * in (N, I) order, as one text (malloc'd; "" when there are none, NULL on a
 * read error). A torn tail of each file is left out. */
char *hcl_sweep_read_records(const char *dir, const char *base);
/* The record of one (point, seed) chosen from a records text. */
typedef struct hcl_sweep_pick {
  const char *line; /* NULL: none */
  size_t len;       /* without the newline */
  int final;        /* 1 completed, 2 diverged, 0 otherwise (failed, interrupted) */
} hcl_sweep_pick;
/* pick[p * nS + k]: the last final record of (point p, seeds[k]) in text,
 * else its last record of any status. */
hcl_status hcl_sweep_pick_records(const hcl_grid *sw, const char *text, const uint64_t *seeds,
                                  size_t nS, hcl_sweep_pick *pick);
/* Replace <dir>/<base>.jsonl by the picked record of every (point, seed), in
 * grid order then seed order, from it and every shard file (atomically). */
hcl_status hcl_sweep_merge_file(const hcl_grid *sw, const char *dir, const char *base,
                                const uint64_t *seeds, size_t nS);
/* Each point of the grid as done (every seed completed), diverged (every
 * seed final, one diverged), failed (a seed's last record failed: its error)
 * or pending, one line each to out (NULL: none). A diverged point counts as
 * done in a selection's candidates (sw->n_select: not selectable, a result
 * of the grid search) and as failed otherwise (its number is void); it is
 * never undone (a re-run diverges again). With shard_count > 0 each line names the point's run and
 * shard, and only shard shard_index's points are listed and counted (shard_index >= shard_count:
 * all). counts[] = {done, failed, pending, of these diverged}; undone[s] (when not NULL,
 * shard_count entries, or 1 unsharded) is set for each shard with a point not done. */
hcl_status hcl_sweep_status_report(const hcl_grid *sw, const char *dir, const char *base,
                                   const uint64_t *seeds, size_t nS, const size_t *job,
                                   unsigned shard_index, unsigned shard_count, FILE *out,
                                   size_t counts[4], unsigned char *undone);
/* Whether dir holds a shard's records (sweep.shard-* or candidates.shard-*). */
int hcl_sweep_has_shards(const char *dir);

/* ---- running the runs (sweep_exec.c: one thread or one per device;
 * sweep_mpi.c: ranks) ---- */
/* What every engine needs to train a sweep's runs and record them. The
 * records file, the selection and the progress belong to one process (rank
 * 0 under MPI) and are updated under lock. */
typedef struct hcl_sweep_env {
  hcl_sweep_options *opt;
  const hcl_grid *sw;
  const uint64_t *seeds;
  size_t nS;
  unsigned bmask;           /* batched axes */
  const char *const *blist; /* [axis]: the per-replica list key of a batched axis */
  int group;                /* bmask != 0 */
  size_t Rmax;              /* replicas of the largest run */
  const char *runs;         /* parent of the run directories */
  const char *previous;     /* whole records before this sweep started */
  int out;                  /* records file (candidates.jsonl when selecting), appending */
  const char *rec_path;
  int sel_out; /* sweep.jsonl when selecting */
  const char *path;
  const char *tag;     /* "shard I/N: " or "" */
  const size_t *tasks; /* the first point of each run with work left, in grid order */
  size_t n_tasks, points_todo;
  int progress_tty; /* stderr is a terminal: one redrawn line */
  pthread_mutex_t lock;
  size_t ran, points_done;
  int failures, stop_all;      /* stop_all: an interrupt or a write failure ends the sweep */
  hcl_sweep_failures run_fail; /* the failed runs, the first few named */
  double t0;
  hcl_status rc; /* the first fatal error, its message in err */
  char err[8192];
} hcl_sweep_env;

/* One run of a sweep: its replicas (point, seed) and the --set list. */
typedef struct hcl_sweep_job {
  size_t p, R, n_done, n_points; /* first point, replicas, already recorded, points with work */
  char gkey[1024];
  const char **sets;
  size_t n_sets;
  char (*own)[4200];
  size_t *pts;
  uint64_t *rseeds;
  unsigned char *skip;
  char *seedlist;
  char *lists[HCL_SWEEP_MAX_AXES];
} hcl_sweep_job;

/* Buffers for the largest run of env (HCL_ERR_NOMEM: message set). */
hcl_status hcl_sweep_job_alloc(const hcl_sweep_env *env, hcl_sweep_job *job);
void hcl_sweep_job_free(hcl_sweep_job *job);
/* The run whose first point is p: replicas, which are recorded already
 * (in env->previous) and the overrides that make it. */
void hcl_sweep_job_prepare(const hcl_sweep_env *env, size_t p, hcl_sweep_job *job);
/* Whether records text holds a whole final (completed or diverged) record of (point key, seed). */
int hcl_sweep_done_before(const char *records, const char *key, uint64_t seed);
/* The record lines of a finished run into mb (open): one per replica not
 * skipped, its metrics from <run_dir>/summary.json, "device" its id. */
hcl_status hcl_sweep_record_text(const hcl_grid *sw, const hcl_sweep_job *job, const char *run_dir,
                                 const char *device, const char *status, const char *error,
                                 FILE *mb);
/* Train one run (hcl_run with the session and device given) and format its
 * records into *text (malloc'd, *len bytes); *prc is the run's status, err
 * its message. Returns an error only when the records cannot be formatted. */
hcl_status hcl_sweep_job_run(hcl_sweep_env *env, hcl_sweep_job *job, hcl_session *session,
                             const char *device, hcl_status *prc, char *err, size_t errlen,
                             char **text, size_t *len);
/* Append record text to the records file fd (path names it in errors): one
 * write and an fsync; cut back on failure. */
hcl_status hcl_sweep_append(int fd, const char *path, const char *text, size_t len);
/* Record a finished run (rank 0 / any thread; takes env->lock): append its
 * records, select, count, print progress. Sets env->stop_all (and env->rc)
 * on a write failure or an interrupt. */
void hcl_sweep_job_done(hcl_sweep_env *env, const hcl_sweep_job *job, hcl_status prc,
                        const char *err, const char *text, size_t len);
/* The next run of the queue (its first point; advances *cursor; *ordinal,
 * when not NULL, is its 1-based place), or (size_t)-1 when none is left or
 * the sweep stops (interrupt, write failure). */
size_t hcl_sweep_next_task(hcl_sweep_env *env, size_t *cursor, size_t *ordinal);
/* Run env->tasks on the devices given (NULL or one: this thread, one after
 * another; several: one worker thread per device pulling from one queue). */
hcl_status hcl_sweep_exec_local(hcl_sweep_env *env, char **devices, size_t n_devices);
/* The selector expanded: "all" every device, "a,b" each listed one (by
 * their stable ids, duplicates dropped), "gpu-all" every GPU (none: NULL);
 * NULL *ids (n 0) for one selector. Errors start with origin (where the
 * selector came from) and the selector. */
hcl_status hcl_sweep_devices(const char *selector, const char *origin, char ***ids, size_t *n,
                             char *err, size_t errlen);

/* ---- MPI (sweep_mpi.c; stubs without HCL_MPI) ---- */
/* This process's rank and the world size (0 and 1 outside mpirun). */
void hcl_sweep_mpi_world(int *rank, int *size);
/* Rank 0: hand out env->tasks to the other ranks, one run at a time, and
 * record what they send back. Other ranks: train what rank 0 sends, on the
 * device of their node-local rank among devices (or the selector given). */
hcl_status hcl_sweep_exec_mpi(hcl_sweep_env *env, char **devices, size_t n_devices);
#endif
