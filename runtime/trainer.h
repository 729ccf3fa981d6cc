/* The training loop and evaluation (trainer.c, probe.c, schedule.c). */
#ifndef HCL_TRAINER_H
#define HCL_TRAINER_H

#include "internal.h"

typedef enum {
  HCL_SCHED_CONSTANT = 0,
  HCL_SCHED_STEP,
  HCL_SCHED_PIECEWISE,
  HCL_SCHED_COSINE
} hcl_sched_kind;

typedef struct hcl_schedule {
  hcl_sched_kind kind;
  double lr;          /* base learning rate */
  uint64_t every;     /* step / piecewise interval */
  double factor;      /* step: multiply by factor every `every` steps */
  double factors[64]; /* piecewise: factor of interval i (the last one holds) */
  size_t n_factors;
  double lr_min;  /* cosine: final lr */
  uint64_t total; /* cosine: total steps */
} hcl_schedule;

/* Learning rate at 0-based step t. */
double hcl_schedule_lr(const hcl_schedule *s, uint64_t t);

/* [eval] every: "N" (every N steps, 0 = start and end only) into *every, or
 * "log:N" (N >= 2) into *log_points. Returns 0, or -1 when malformed. */
int hcl_eval_every_parse(const char *text, uint64_t *every, uint32_t *log_points);
/* Whether the trainer evaluates after `step` steps of `total`: step 0, and
 * step % every == 0 (every > 0), or with log_points = N the distinct values
 * of round(total^(k/(N-1))), k = 0..N-1 (so 1 and total always). The closing
 * evaluation of a run that ends off the schedule is the trainer's own. */
int hcl_eval_due(uint64_t every, uint32_t log_points, uint64_t total, uint64_t step);
/* The steps a run of `total` steps evaluates at, closing evaluation
 * included, ascending, into out (at most max); returns how many there are. */
size_t hcl_eval_steps(uint64_t every, uint32_t log_points, uint64_t total, uint64_t *out,
                      size_t max);

/* Everything the loop needs, resolved from the config by run.c. */
typedef struct hcl_train_cfg {
  uint32_t replicas;
  const uint64_t *seeds;
  uint64_t steps, batch, train_size;
  const uint64_t *train_sizes; /* [R] or NULL; train_size is then their maximum */
  const double *lr_scales;     /* [R] or NULL: replica r's lr is sched(t) * lr_scales[r] */
  hcl_schedule sched;
  hcl_loss_kind loss;
  hcl_optim optim;
  uint64_t eval_every, test_size, eval_batch, probe_samples;
  uint32_t eval_log; /* > 0: [eval] every = log:eval_log (eval_every unused) */
  uint64_t val_size; /* > 0: val_loss on that many samples of HCL_STREAM_VAL */
  int probes;
  int train_set; /* train_set_loss/_error over samples 0..train_size-1 of the train stream */
  double stop_loss, stop_error; /* > 0: end when every replica is below */
  const char *algorithm;
} hcl_train_cfg;

/* Where evaluation lines go (output.c supplies it). */
typedef struct hcl_metric_sink {
  void *user;
  /* one evaluation: names[i] has values[i*R .. i*R+R-1] */
  hcl_status (*write)(void *user, uint64_t step, uint64_t samples, const char *phase, double lr,
                      double wall_s, size_t n, const char *const *names, const double *values,
                      uint32_t R);
} hcl_metric_sink;

struct hcl_trainer {
  hcl_ctx *ctx;
  const hcl_train_cfg *cfg;
  const hcl_target_vt *tvt;
  void *target;
  hcl_target_info tinfo;
  const hcl_model_vt *mvt;
  void *model;
  size_t n_params, out_dim, x_size, y_dim, n_blocks;
  const hcl_block *blocks;
  hcl_buf params, grad, state1, state2, mask;
  hcl_buf x, y, out, dout, loss_acc, err_acc, nan_step;
  hcl_buf cache_x, cache_y; /* the finite training set, generated once */
  hcl_buf sizes;            /* cl_ulong[R] of cfg->train_sizes */
  hcl_buf lr_scale;         /* float[R] of cfg->lr_scales */
  int cached;
  uint64_t step, samples, acc_steps;
  const char *phase_label;
  char label_buf[64];      /* a label set by hcl_trainer_label */
  uint64_t last_eval_step; /* step of the last evaluation (UINT64_MAX: none) */
  double lr_now;
  double t0;
  double cpu0; /* hcl_cpu_now() at t0: summary.json's cpu_s */
  const volatile int *stop;
  int progress;            /* hcl_run_options.progress */
  double progress_every;   /* HCL_PROGRESS_LOG: seconds between lines */
  double progress_printed; /* when the last log line was printed */
  hcl_metric_sink sink;
  /* last evaluation, per replica */
  double *last_train, *last_test, *last_err, *best_test;
  /* per replica: the first step whose training loss was not finite, -1 while
   * finite. A diverged replica's numbers are void; the others go on, so one
   * bad candidate of a batched selection does not end its batch-mates. */
  int32_t *diverged;
  size_t n_diverged;
  uint64_t evals;
  /* metrics of the evaluation under way (probes append) */
  char **m_names;
  double *m_values;
  size_t m_n, m_cap;
};

/* Check that the trainer's buffers for target `ti` (n_params, out_dim: 0
 * when the model is not made yet) fit the device: each within the largest
 * allocation, all of them plus what is held within the budget. The error
 * names the key of the dominant term ([eval] batch, [train] train_size...). */
hcl_status hcl_trainer_preflight(hcl_ctx *ctx, const hcl_train_cfg *c, const hcl_target_info *ti,
                                 size_t n_params, size_t out_dim);
/* Allocate buffers, initialise the parameters and (finite P) generate the
 * training set once on the device. */
hcl_status hcl_trainer_init(hcl_trainer *t);
/* Run the configured algorithm to the end (or stop, Ctrl-C, NaN). */
hcl_status hcl_trainer_run(hcl_trainer *t);
void hcl_trainer_release(hcl_trainer *t);
/* The diverged replica to name: the earliest step, then the lowest index
 * (replicas when none diverged). */
size_t hcl_trainer_first_diverged(const hcl_trainer *t);

/* Plugin-facing services (hcl_host_api). */
hcl_status hcl_trainer_phase(hcl_trainer *t, const hcl_phase *phase, double *final_loss);
hcl_status hcl_trainer_batch(hcl_trainer *t, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                             hcl_buf y);
hcl_buf hcl_trainer_params(hcl_trainer *t);
/* out [R, n, out_dim] = the model at the current parameters on x (n <= max_batch). */
hcl_status hcl_trainer_forward(hcl_trainer *t, hcl_buf x, size_t n, hcl_buf out);
/* The model's backward for its last forward, with the current parameters. */
hcl_status hcl_trainer_backward(hcl_trainer *t, hcl_buf dout, size_t n, hcl_buf grad);
/* The model's hidden layer `layer` at x with the current parameters. */
hcl_status hcl_trainer_features(hcl_trainer *t, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                                size_t *dim);
hcl_status hcl_trainer_eval(hcl_trainer *t, const hcl_metric *extra, size_t n_extra);
int hcl_trainer_stop_requested(hcl_trainer *t);
hcl_status hcl_trainer_loss_grad(hcl_trainer *t, hcl_buf out, hcl_buf y, size_t n, float scale,
                                 hcl_buf dout, double *loss);
uint64_t hcl_trainer_steps(hcl_trainer *t);
double hcl_trainer_lr(hcl_trainer *t);
size_t hcl_trainer_batch_size(hcl_trainer *t);
uint64_t hcl_trainer_train_size(hcl_trainer *t);
void hcl_trainer_label(hcl_trainer *t, const char *label);
/* The run's loss by name (hcl_host_api.train_loss_name). */
const char *hcl_trainer_loss_name(hcl_trainer *t);
/* Add (or replace) a metric of the evaluation under way. */
hcl_status hcl_trainer_metric_add(hcl_trainer *t, const char *name, const double *values);

/* Probe handle = the trainer during an evaluation. */
struct hcl_probe {
  hcl_trainer *t;
};
hcl_status hcl_probe_forward(hcl_probe *p, hcl_buf x, size_t n, hcl_buf out);
hcl_status hcl_probe_emit(hcl_probe *p, const char *name, const double *values);
hcl_status hcl_probe_batch(hcl_probe *p, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                           hcl_buf y);
hcl_buf hcl_probe_params(hcl_probe *p, const hcl_block **blocks, size_t *n_blocks);
hcl_status hcl_probe_features(hcl_probe *p, size_t layer, hcl_buf x, size_t n, hcl_buf out,
                              size_t *dim);
hcl_status hcl_probe_target_eval(hcl_probe *p, const char *what, hcl_buf x, size_t n, hcl_buf out);
hcl_ctx *hcl_probe_ctx(hcl_probe *p);
size_t hcl_probe_replicas(hcl_probe *p);

/* Seconds on a monotonic clock. */
double hcl_now(void);
/* CPU seconds this process has used (every thread, the driver's included). */
double hcl_cpu_now(void);

#endif
