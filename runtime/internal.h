/* Internal runtime interfaces shared between the modules of libhiercl.
 * Not installed; plugins never see this (they get include/hiercl/plugin.h). */
#ifndef HCL_INTERNAL_H
#define HCL_INTERNAL_H

#include "hiercl/hiercl.h"
#include "hiercl/plugin.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#define HCL_ERRMSG_MAX 8192

/* ---- devices (device_list.c, device_select.c) ---------------------------- */
typedef struct hcl_device_info {
  char id[96];        /* stable id: "<platform-slug>:<cpu|gpu|accel|other>:<k>" */
  char platform[128]; /* CL_PLATFORM_NAME */
  char platform_vendor[128];
  char platform_version[128];
  char name[256]; /* CL_DEVICE_NAME */
  char vendor[128];
  char version[128]; /* CL_DEVICE_VERSION */
  char driver[128];  /* CL_DRIVER_VERSION */
  cl_device_type type;
  unsigned compute_units;
  unsigned clock_mhz;
  uint64_t global_mem, local_mem, max_alloc;
  size_t max_work_group;
  int fp64;
  int compiler_available; /* 0: needs prebuilt binaries (FPGA boards) */
  cl_platform_id platform_id;
  cl_device_id device_id;
} hcl_device_info;

/* Enumerate every device of every platform, in a stable order (platform
 * name, device name, index), with stable ids. *out is malloc'd. No platform
 * at all is not an error: *n = 0. */
hcl_status hcl_devices_list(hcl_device_info **out, size_t *n, char *err, size_t errlen);
/* "cpu" / "gpu" / "accel" / "other" for a CL device type. */
const char *hcl_device_type_name(cl_device_type type);
/* Resolve a selector (index, stable id, gpu|cpu|accel, name substring; NULL
 * or "" = default: first GPU, else first CPU, else first device) to an index
 * into devs. Pure: no OpenCL calls, so it is tested on fake lists. On no
 * match writes an error listing the candidates and returns HCL_ERR_NODEVICE. */
hcl_status hcl_device_select(const hcl_device_info *devs, size_t n, const char *selector,
                             size_t *index, char *err, size_t errlen);
/* A selector's part suffix (device_part.c): 1 for "SEL/N.I" (part I of N),
 * 2 for "SEL/N" (all N parts, I = 0), 0 without one, -1 malformed; SEL into
 * base. */
int hcl_device_part_parse(const char *sel, char *base, size_t cap, unsigned *n, unsigned *i);
/* dev becomes part i of n equal sub-devices of itself (n < 2: unchanged),
 * its id "<id>/n.i", its memory budget 1/n of the device's; a failure names
 * the device. */
hcl_status hcl_device_partition(hcl_device_info *dev, unsigned n, unsigned i, char *err,
                                size_t errlen);
/* A part's id into out: "<id>/n.i", or id itself for n < 2 (what
 * hcl_device_partition makes its id, and a sweep's list names). */
void hcl_device_part_id(char *out, size_t cap, const char *id, unsigned n, unsigned i);

/* The device a run recording programs for devs[idx] runs on: idx when it
 * has a compiler, else the first device with one; n when there is none. */
size_t hcl_export_run_on(const hcl_device_info *devs, size_t n, size_t idx);

/* ---- the context (ctx.c, error.c) ---------------------------------------- */
typedef struct hcl_note {
  char *key, *value;
  int is_json;
} hcl_note;

typedef struct hcl_kernel_stat {
  char label[64];
  uint64_t launches;
  double device_s; /* with profiling on */
} hcl_kernel_stat;

struct hcl_ctx {
  hcl_device_info dev;
  cl_context context;
  cl_command_queue queue;
  int profiling;
  hcl_log_level log_level;
  char errmsg[HCL_ERRMSG_MAX];
  /* program cache (program.c) */
  int cache_policy;      /* HCL_CACHE_AUTO / ON / OFF */
  char cache_dir[1024];  /* "" = default under the user's cache directory */
  char binary_dir[1024]; /* prebuilt binaries for devices without a compiler */
  int no_compile;        /* load prebuilt binaries even though the device compiles */
  char export_dir[1024]; /* "" or where every program built is recorded */
  /* the device the records are keyed for (NULL: dev) */
  hcl_device_info *export_dev;
  /* the runtime's own kernels (ops.c) */
  struct hcl_ops *ops;
  /* CLBlast checked against the reference kernel on this device (blas.c) */
  int blas_checked;
  /* floating-point operations of the products issued (2 m n k per entry;
   * blas.c), for achieved GFLOP/s in summary.json and hiercl bench */
  double gemm_flops;
  /* CLBlast's own temporaries queued (blas.c): bytes since the marker */
  size_t blas_pending;
  cl_event blas_mark;
  /* products of at most this many multiply-adds skip CLBlast (blas.c) */
  double gemm_small_max;
  double gemm_rb_max; /* CPUs: m n k up to this per entry take hcl_gemm_rb (0: off) */
  /* manifest notes from plugins */
  hcl_note *notes;
  size_t n_notes;
  /* kernel launch statistics */
  hcl_kernel_stat *stats;
  size_t n_stats;
  /* profiled launches whose times are not read yet (profile.c) */
  struct hcl_prof_event {
    cl_event ev;
    size_t stat; /* index into stats */
  } * prof_ev;
  size_t n_prof_ev;
  /* device memory allocated through hcl_buf_alloc (buffer.c): every hiercl
   * allocation is counted, and refused beyond max_alloc or the budget */
  size_t mem_current, mem_peak;
  size_t mem_budget;        /* bytes hiercl may hold at once (hcl_mem_budget_init) */
  char mem_budget_why[256]; /* where the budget comes from, for errors */
  const volatile int *stop; /* the run's stop request (NULL: none), for hcl_should_stop */
  /* Programs built on this ctx, kept for the next run (contexts of a sweep,
   * session.c): a program is compiled once per device, not once per point. */
  int memo_programs;
  size_t memo_max; /* programs kept at most (each holds its device binary) */
  struct hcl_memo_program {
    char key[65];
    cl_program prog;
  } * memo;
  size_t n_memo;
  unsigned long memo_built, memo_reused;
  /* The plugins of the run on this ctx (NULL: none), so that host->fail
   * names the plugin that raised an error: the target's while in_target > 0
   * (around every call into the target), else the model's. Per ctx, so each
   * sweep worker attributes its own errors. */
  const char *plugin_target, *plugin_model;
  const char *plugin_file; /* the run's configuration, named first */
  int in_target;
  /* errmsg was raised by a plugin: "FILE: [section] name: " then its own
   * message from offset errmsg_body */
  int errmsg_plugin;
  size_t errmsg_body;
};

/* Set ctx->errmsg from a format and return rc. Safe with ctx == NULL. */
/* getenv(name) for a HIERCL_* name; when unset, the old HCL_* name, with a
 * one-line deprecation warning on stderr (once per name and process). */
const char *hcl_getenv(const char *name);
hcl_status hcl_fail(hcl_ctx *ctx, hcl_status rc, const char *fmt, ...);
/* A plugin's message without the leading "<name>: " (any number of them)
 * that plugins used to write, for the runtime to prefix "[section] name:" once. */
const char *hcl_plugin_msg(const char *msg, const char *name);
hcl_status hcl_failv(hcl_ctx *ctx, hcl_status rc, const char *fmt, va_list ap);
/* host->fail: the message prefixed "FILE: [section] name: " with the plugin being
 * called (ctx->plugin_target / plugin_model), its own "name: " removed. */
hcl_status hcl_plugin_failv(hcl_ctx *ctx, hcl_status rc, const char *fmt, va_list ap);
/* Mark the start of a call into the target plugin (errors name the target). */
void hcl_target_enter(hcl_ctx *ctx);
/* Mark its end; returns rc, so HCL_IN_TARGET is an expression. */
hcl_status hcl_target_leave(hcl_ctx *ctx, hcl_status rc);
/* Evaluate `call`, a call into the target plugin, with its errors named. */
#define HCL_IN_TARGET(ctx, call) (hcl_target_enter(ctx), hcl_target_leave(ctx, (call)))
/* Log to stderr when level <= the ctx's (or global) level. */
void hcl_log(hcl_ctx *ctx, hcl_log_level level, const char *fmt, ...);
void hcl_logv(hcl_ctx *ctx, hcl_log_level level, const char *fmt, va_list ap);
/* Check an OpenCL return code; on error fail with "what: CL_ERROR_NAME". */
#define HCL_CL(ctx, call, what)                                                                    \
  do {                                                                                             \
    cl_int hcl_cl_rc_ = (call);                                                                    \
    if (hcl_cl_rc_ != CL_SUCCESS)                                                                  \
      return hcl_fail((ctx), hcl_cl_rc_, "%s: %s", (what), hcl_strerror(hcl_cl_rc_));              \
  } while (0)
/* HCL_TRY(call): include/hiercl/plugin.h (the SDK) */

/* Record a manifest note (copied). */
void hcl_note_add(hcl_ctx *ctx, const char *key, const char *value, int is_json);

/* ---- buffers and launches (buffer.c) ------------------------------------- */
/* A zero-filled device buffer, counted in ctx's current and peak bytes.
 * Refused (HCL_ERR_NOMEM, nothing allocated) when larger than the device's
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE or when the total would pass ctx->mem_budget. */
hcl_status hcl_buf_alloc(hcl_ctx *ctx, size_t bytes, hcl_buf *out);
void hcl_buf_free(hcl_ctx *ctx, hcl_buf *buf);
hcl_status hcl_buf_write(hcl_ctx *ctx, hcl_buf dst, const void *src, size_t bytes);
hcl_status hcl_buf_read(hcl_ctx *ctx, hcl_buf src, void *dst, size_t bytes);
hcl_status hcl_buf_copy(hcl_ctx *ctx, hcl_buf dst, hcl_buf src, size_t bytes);
/* A sub-region: byte offset and size relative to b. */
hcl_buf hcl_buf_sub(hcl_buf b, size_t offset, size_t size);
hcl_status hcl_run_kernel(hcl_ctx *ctx, cl_kernel k, cl_uint dims, const size_t *gws,
                          const size_t *lws, const char *label, size_t nargs, const hcl_arg *args);
hcl_status hcl_finish(hcl_ctx *ctx);
/* Keep a profiled launch's event (owned from now on) for stats[stat]; its
 * time is read once the queue has run past it (profile.c). */
void hcl_profile_keep(hcl_ctx *ctx, cl_event ev, size_t stat);
/* Wait for every kept event and add its device time to its label. */
void hcl_profile_drain(hcl_ctx *ctx);
/* Drain, then free the list (context reset and destroy). */
void hcl_profile_release(hcl_ctx *ctx);
/* Device bytes hiercl holds now / held at most, through hcl_buf_alloc. */
size_t hcl_mem_current(const hcl_ctx *ctx);
size_t hcl_mem_peak(const hcl_ctx *ctx);
/* Set ctx->mem_budget: CL_DEVICE_GLOBAL_MEM_SIZE; for CPU devices at most the
 * host memory available (hcl_host_mem_available); at most
 * HIERCL_DEVICE_MEM_LIMIT (bytes) when set. */
void hcl_mem_budget_init(hcl_ctx *ctx);
/* Fail with HCL_ERR_NOMEM unless `bytes` more fit: each of `largest` (the
 * biggest single buffer) within the max allocation size and the total
 * within the budget. `what` names the cause (config keys) in the error. */
hcl_status hcl_mem_check(hcl_ctx *ctx, size_t bytes, size_t largest, const char *what);
/* The host memory this process can still take, in bytes: MemAvailable, at
 * most what its cgroup (Slurm) and RLIMIT_AS leave; 0 when unknown. */
size_t hcl_host_mem_available(void);
/* Fail with HCL_ERR_NOMEM when a host allocation of `bytes` cannot fit in
 * the host's available memory; `what` names the cause. */
hcl_status hcl_host_mem_check(hcl_ctx *ctx, size_t bytes, const char *what);
/* Nonzero once the run was asked to stop (SIGINT/SIGTERM through ctx->stop). */
int hcl_should_stop(hcl_ctx *ctx);

/* Overflow-checked size arithmetic: 1 and *out = a * b (a + b), or 0 (and
 * *out = SIZE_MAX) when the result does not fit in size_t. */
static inline int hcl_size_mul(size_t a, size_t b, size_t *out) {
  if (a && b > SIZE_MAX / a) return *out = SIZE_MAX, 0;
  return *out = a * b, 1;
}
static inline int hcl_size_add(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a) return *out = SIZE_MAX, 0;
  return *out = a + b, 1;
}
/* a * b * c, saturating at SIZE_MAX (a saturated size never fits a budget). */
static inline size_t hcl_size_mul3(size_t a, size_t b, size_t c) {
  size_t ab, abc;
  if (!hcl_size_mul(a, b, &ab) || !hcl_size_mul(ab, c, &abc)) return SIZE_MAX;
  return abc;
}

/* ---- programs and their cache (program.c, sha256.c) ---------------------- */
enum { HCL_CACHE_AUTO = 0, HCL_CACHE_ON = 1, HCL_CACHE_OFF = 2 };
/* Build `src` (the common library prepended) with options, through the
 * on-disk binary cache per ctx->cache_policy, or load a prebuilt binary from
 * ctx->binary_dir when the device has no compiler. A corrupt or stale cache
 * entry is rebuilt. Build errors carry the log. */
hcl_status hcl_program_build(hcl_ctx *ctx, const char *name, const char *src, const char *options,
                             cl_program *out);
hcl_status hcl_kernel_create(hcl_ctx *ctx, cl_program prog, const char *name, cl_kernel *out);
/* Cache key (64 hex chars + NUL) for a source/options on ctx's device. */
void hcl_program_cache_key(const hcl_device_info *dev, const char *src, const char *options,
                           char key[65]);
/* The cache directory in effect (HIERCL_CACHE_DIR, XDG_CACHE_HOME, HOME). */
void hcl_cache_dir(const hcl_ctx *ctx, char *out, size_t len);
void hcl_sha256(const void *data, size_t len, uint8_t out[32]);
void hcl_sha256_hex(const void *data, size_t len, char out[65]);

/* Embedded OpenCL sources (generated from kernels/ at build time). */
extern const char hcl_src_common[]; /* kernels/common.cl: prepended to every program */
extern const char hcl_src_ops[];    /* kernels/ops.cl: the runtime's own kernels */

/* ---- numerics (philox.c, ops.c, blas.c) ---------------------------------- */
/* Philox-4x32-10 (Random123). */
void hcl_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);
/* Host reference of the device draws: element i of (seed, stream) stream. */
float hcl_rng_host(hcl_rng_dist dist, float a, float b, uint64_t seed, uint64_t stream, uint64_t i);

hcl_status hcl_ops_init(hcl_ctx *ctx); /* compiles kernels/ops.cl once per ctx */
void hcl_ops_release(hcl_ctx *ctx);
/* Free the ops' scratch buffers (they grow with a run's sizes), keeping the kernels. */
void hcl_ops_trim(hcl_ctx *ctx);
hcl_status hcl_bias_act(hcl_ctx *ctx, hcl_act act, hcl_buf z, hcl_buf bias, size_t bias_stride,
                        hcl_buf y, size_t R, size_t rows, size_t cols);
hcl_status hcl_act_backward(hcl_ctx *ctx, hcl_act act, hcl_buf dy, hcl_buf z, hcl_buf dz, size_t R,
                            size_t rows, size_t cols);
hcl_status hcl_col_sum(hcl_ctx *ctx, hcl_buf x, hcl_buf out, size_t out_stride, size_t R,
                       size_t rows, size_t cols, float alpha, float beta);
hcl_status hcl_axpby(hcl_ctx *ctx, float a, hcl_buf x, float b, hcl_buf y, size_t n);
/* 1 when the ops run their CPU kernel variants on ctx's device (by device
 * type, or HIERCL_OPS_PATHS). */
int hcl_ops_cpu_paths(const hcl_ctx *ctx);
/* Launch shape over (x, y, z) for elementwise kernels that bound-check x and
 * y (bias_act's): fills gws (and lws); returns the lws to pass (NULL on CPUs). */
const size_t *hcl_ops_geom3(const hcl_ctx *ctx, size_t nx, size_t ny, size_t nz, size_t gws[3],
                            size_t lws[3]);
hcl_status hcl_fill(hcl_ctx *ctx, hcl_buf y, float value, size_t n);
hcl_status hcl_rng_fill(hcl_ctx *ctx, hcl_rng_dist dist, float a, float b, const uint64_t *seeds,
                        size_t R, uint64_t stream_id, uint64_t first, hcl_buf out, size_t stride,
                        size_t n);
/* dst[r, j, :] = src[r, (first + j) % rows, :] for j < n, width floats a row,
 * src [R, rows_src, width]; rows = sizes[r] (device cl_ulong[R], each <=
 * rows_src: a training-set size per replica), or rows_src when sizes.mem is NULL. */
hcl_status hcl_gather_rows(hcl_ctx *ctx, hcl_buf src, size_t rows_src, hcl_buf sizes, hcl_buf dst,
                           size_t R, uint64_t first, size_t n, size_t width);
/* hcl_gather_rows of a training batch's inputs (wx floats a row) and labels
 * (wy) from their two sources, in one launch on CPUs. */
hcl_status hcl_gather_xy(hcl_ctx *ctx, hcl_buf src_x, hcl_buf src_y, size_t rows_src, hcl_buf sizes,
                         hcl_buf dst_x, hcl_buf dst_y, size_t R, uint64_t first, size_t n,
                         size_t wx, size_t wy);

typedef enum {
  HCL_LOSS_MSE = 0,       /* mean (f - y)^2 over outputs and samples, no 1/2 */
  HCL_LOSS_CROSS_ENTROPY, /* softmax over out_dim classes; y = class index */
  HCL_LOSS_LOGISTIC,      /* log(1 + exp(-y f)), y in {-1, +1} */
  HCL_LOSS_HINGE          /* max(0, 1 - y f) */
} hcl_loss_kind;
/* The [train] loss key's name of loss k; "unknown" for a kind added after
 * hinge that this table does not name yet. */
const char *hcl_loss_name(hcl_loss_kind k);
/* For f [R, n, out_dim] and y [R, n, y_dim]:
 *   loss_acc[r] = (accumulate ? loss_acc[r] : 0) + sum_i loss_i   (per sample,
 *                  mse averaged over out_dim);
 *   err_acc[r]  likewise with the per-sample error (mse: same as loss;
 *                  binary: sign(f) != y; classes: argmax f != y);
 *   dout = grad_scale * dloss_i/df (skipped when dout.mem is NULL).
 * When a loss is not finite and nan_step[r] < 0, nan_step[r] = step (int32[R],
 * skipped when nan_step.mem is NULL). Deterministic: fixed-order reduction. */
hcl_status hcl_loss(hcl_ctx *ctx, hcl_loss_kind kind, hcl_buf f, hcl_buf y, size_t R, size_t n,
                    size_t out_dim, float grad_scale, hcl_buf dout, hcl_buf loss_acc,
                    hcl_buf err_acc, int accumulate, hcl_buf nan_step, int32_t step);

typedef enum { HCL_OPT_SGD = 0, HCL_OPT_ADAM = 1 } hcl_optim_kind;
typedef struct hcl_optim {
  hcl_optim_kind kind;
  float momentum, weight_decay, beta1, beta2, eps;
  int nesterov;
} hcl_optim;
/* One update of params [R, n] from grad [R, n] with lr (scalar) times
 * lr_scale[r] (lr_scale.mem NULL: 1), plus l2 * params added to the gradient.
 * state1/state2 [R, n] are momentum / Adam moments (zeroed at start). mask
 * [n] (float 0/1; mask.mem NULL: all) freezes entries. t = 1-based step
 * (Adam bias correction). */
hcl_status hcl_optim_step(hcl_ctx *ctx, const hcl_optim *opt, float lr, hcl_buf lr_scale, float l2,
                          hcl_buf params, hcl_buf grad, hcl_buf state1, hcl_buf state2,
                          hcl_buf mask, size_t R, size_t n, uint64_t t);

/* Solve (A + lambda I) X = B per replica on the device (solve.c); see
 * hcl_host_api.solve_spd. */
hcl_status hcl_solve_spd(hcl_ctx *ctx, hcl_buf a, hcl_buf b, size_t R, size_t k, size_t m,
                         float lambda);
/* hcl_solve_spd with the diagonal blocks factored by one work-item (serial
 * 1: CPU paths' default), by the whole work-group (0: GPU paths') or as
 * hcl_ops_cpu_paths chooses (-1); both give the same bits. */
hcl_status hcl_solve_spd_with(hcl_ctx *ctx, hcl_buf a, hcl_buf b, size_t R, size_t k, size_t m,
                              float lambda, int serial);

/* Row-major SGEMM through CLBlast (checked once per ctx against a reference). */
hcl_status hcl_sgemm(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                     hcl_buf a, size_t lda, hcl_buf b, size_t ldb, float beta, hcl_buf c,
                     size_t ldc);
hcl_status hcl_sgemm_batched(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k,
                             float alpha, hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb,
                             size_t sb, float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch);
/* host->sgemm_lower: hcl_sgemm_batched's values on the lower triangle of
 * each n x n C (elements above it may be written); on CPUs one launch of
 * hcl_gemm_rb_lower, elsewhere block rows of 64 against the columns up to
 * their diagonal block. */
hcl_status hcl_sgemm_lower(hcl_ctx *ctx, int ta, int tb, size_t n, size_t k, float alpha, hcl_buf a,
                           size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb, float beta,
                           hcl_buf c, size_t ldc, size_t sc, size_t batch);
/* Batched products without CLBlast (CPU devices; blas.c decides): 8 x 32
 * blocks of C per work-item, each output summed in order; op(B) = B^T is
 * first transposed into the ctx's scratch buffer. */
/* Launch shape of hcl_k_gemm_rb over nx column blocks, ny row blocks and nz
 * entries on `cus` compute units, a group's work-items along the columns
 * (cols_first) or the rows: gws covers the grid (rounded up to the local
 * size along that dimension; the kernels skip blocks past the edge), lws
 * divides gws. */
void hcl_gemm_rb_geometry(size_t nx, size_t ny, size_t nz, unsigned cus, int cols_first,
                          size_t gws[3], size_t lws[3]);
/* ---- the device's FMA rate (peak.c) -------------------------------------- */
/* GFLOP/s of kernels/peak.cl's independent fma chains, the best of 5
 * launches of about 20 ms each (what the device does now, to state a case's
 * rate as a fraction of it). */
hcl_status hcl_fma_peak(hcl_ctx *ctx, double *gflops);
/* Work-items of hcl_fma_peak's launch and float lanes per work-item. */
size_t hcl_fma_peak_items(const hcl_ctx *ctx, unsigned *lanes);
/* One launch of `iters` steps into out (one float per work-item: the sum of
 * its chains), waited for; *seconds its wall time. */
hcl_status hcl_fma_peak_run(hcl_ctx *ctx, uint64_t iters, hcl_buf out, double *seconds);

/* 1 when hcl_k_gemm_rb's group of local size lws copies its B panel of k
 * rows into local memory first (local_mem: the device's bytes of it). */
int hcl_gemm_rb_pack(size_t k, const size_t lws[3], uint64_t local_mem);
hcl_status hcl_gemm_rb(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                       hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                       float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch);
/* hcl_gemm_rb for m = n in one launch of only the 8 x 32 blocks of C that
 * meet its lower triangle (i >= j): those elements get the bits that
 * hcl_gemm_rb gives them; the rest of those blocks is written too, other
 * elements are not. */
hcl_status hcl_gemm_rb_lower(hcl_ctx *ctx, int ta, int tb, size_t n, size_t k, float alpha,
                             hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                             float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch);
/* The kernel (HCL_WG_* of kernels/ops_args.h) that hcl_gemm_thin (one of
 * m, n, k is 1) or, on CPUs, hcl_gemm_small runs for this shape. */
int hcl_gemm_kernel_of(int ta, int tb, size_t m, size_t n, size_t k);
/* The same for hcl_sgemm_batched's choice on ctx (blas.c): the kernel, or
 * -1 where it takes another path (GPUs' small kernel, the register-blocked
 * kernel, CLBlast). */
int hcl_gemm_own_kernel(const hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k);
/* Small batched products in one kernel launch (no CLBlast call): on GPUs one
 * work-item per output, on CPUs 4 x 32 tiles of C against op(B) copied into
 * local memory (one row per work-item where op(B) does not fit); operand q
 * starts s* floats after operand q-1. */
hcl_status hcl_gemm_small(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                          hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                          float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch);
/* The runtime's simple reference GEMM kernel (same contract as hcl_sgemm). */
hcl_status hcl_sgemm_reference(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k,
                               float alpha, hcl_buf a, size_t lda, hcl_buf b, size_t ldb,
                               float beta, hcl_buf c, size_t ldc);
/* Take / release the process-wide CLBlast lock (recursive): every CLBlast
 * call and the tuning tables go through it, for a sweep's device threads. */
void hcl_clblast_lock(void);
void hcl_clblast_unlock(void);
/* Compare CLBlast against the reference once; fails with a clear message. */
hcl_status hcl_blas_selfcheck(hcl_ctx *ctx);
/* Apply stored CLBlast tuning for this device, if any (tune.c); with
 * HIERCL_CLBLAST_TUNING=off in the environment, CLBlast's own defaults stay. */
hcl_status hcl_blas_apply_tuning(hcl_ctx *ctx);
/* Apply one parameter file ([Kernel] sections of NAME = integer lines). */
hcl_status hcl_blas_apply_tuning_file(hcl_ctx *ctx, const char *path);
/* Where the tuned parameters of ctx's device live ("" without a cache dir). */
void hcl_blas_tuning_path(const hcl_ctx *ctx, char *out, size_t len);

/* ---- config and parameters (config.c, params.c) -------------------------- */
/* One resolved section: key -> value text, checked against a schema. */
typedef struct hcl_kv {
  char *key, *value;
  int from_default;
} hcl_kv;

struct hcl_params {
  char section[32];
  const hcl_param_desc *schema;
  hcl_kv *kv;
  size_t n;
};

typedef struct hcl_config {
  char path[1024];
  char *text; /* the original file */
  /* raw sections: every key found in the file, after overrides */
  struct hcl_raw_section {
    char name[32];
    hcl_kv *kv;
    size_t n;
  } * sections;
  size_t n_sections;
} hcl_config;

/* Load an INI file (iniparser). Malformed lines fail naming file and line. */
hcl_status hcl_config_load(hcl_ctx *ctx, const char *path, hcl_config *out);
/* Apply "section.key=value" (adds or replaces). */
hcl_status hcl_config_set(hcl_ctx *ctx, hcl_config *cfg, const char *assignment);
/* Line of section/key in the file (0: unknown or set with --set). */
unsigned hcl_config_line(const hcl_config *cfg, const char *section, const char *key);
/* Where section/key was given, for messages: "FILE:LINE", "FILE (--set
 * section.key)" or "FILE". */
void hcl_config_where(const hcl_config *cfg, const char *section, const char *key, char *buf,
                      size_t len);
/* Raw value of section/key or NULL. */
const char *hcl_config_get(const hcl_config *cfg, const char *section, const char *key);
/* Check one section against a schema (plus `extra_keys` allowed, e.g.
 * "plugin"), fill defaults, check types, ranges and choices. Errors name the
 * file, section and key. */
hcl_status hcl_params_resolve(hcl_ctx *ctx, const hcl_config *cfg, const char *section,
                              const hcl_param_desc *schema, const char *const *extra_keys,
                              hcl_params *out);
/* Error if the config has a section not in `known` (NULL-terminated). */
hcl_status hcl_config_check_sections(hcl_ctx *ctx, const hcl_config *cfg, const char *const *known);
void hcl_params_free(hcl_params *p);
void hcl_config_free(hcl_config *cfg);
int64_t hcl_param_int(const hcl_params *p, const char *key);
double hcl_param_double(const hcl_params *p, const char *key);
int hcl_param_bool(const hcl_params *p, const char *key);
const char *hcl_param_str(const hcl_params *p, const char *key);
size_t hcl_param_list(const hcl_params *p, const char *key, double *out, size_t max);
/* 1 when value fits the desc, else 0 with the reason in why. */
int hcl_param_check_value(const hcl_param_desc *d, const char *value, char *why, size_t len);

/* ---- plugins (loader.c) --------------------------------------------------- */
typedef struct hcl_plugin {
  char path[1024];
  void *handle;
  const hcl_plugin_desc *desc;
  char sha256[65];
} hcl_plugin;

typedef struct hcl_registry {
  hcl_plugin *plugins;
  size_t n;
  /* rejected files, with reasons, for `hiercl plugins` */
  char **rejected;
  size_t n_rejected;
} hcl_registry;

/* The host table handed to plugins. */
const hcl_host_api *hcl_host_api_get(void);
/* Search directories in order: extra (colon list, may be NULL),
 * HIERCL_PLUGIN_PATH, the build tree (only for programs run from it),
 * <prefix>/lib/hiercl/plugins of an installed hiercl, the configured install
 * prefix. */
hcl_status hcl_registry_scan(hcl_ctx *ctx, const char *extra_path, hcl_registry *out);
/* Load one file; on rejection the message names the file and the reason. */
hcl_status hcl_plugin_load(hcl_ctx *ctx, const char *path, hcl_plugin *out);
const hcl_plugin *hcl_registry_find(const hcl_registry *reg, const char *name, uint32_t kind);
void hcl_registry_free(hcl_registry *reg);

/* ---- sessions: what the runs of one process share (session.c) ----------- */
#define HCL_SESSION_MAX_CTX 8
struct hcl_session {
  hcl_registry reg; /* scanned once, for the session's plugin path */
  struct hcl_session_ctx {
    char key[2200]; /* selector, profiling, cache policy, binary dir */
    hcl_ctx *ctx;
  } ctx[HCL_SESSION_MAX_CTX];
  size_t n_ctx;
};
/* The session's context for these options (created on first use, with
 * program memoisation on): *created is 1 when it was made now. On failure
 * err holds one line, as hcl_ctx_create writes it. */
hcl_status hcl_session_ctx(hcl_session *s, const hcl_ctx_options *o, hcl_ctx **out, int *created,
                           char *err, size_t errlen);
/* Make a session's ctx ready for its next run: notes, kernel statistics,
 * FLOP count, peak memory, error message and stop flag cleared; scratch
 * buffers freed; programs and kernels kept. */
void hcl_ctx_reset_run(hcl_ctx *ctx);

/* ---- files and paths (files.c) ------------------------------------------- */
/* Whole file as a NUL-terminated malloc'd string; NULL when unreadable. */
char *hcl_file_text(const char *path);
/* File name without folders and extension: "configs/x.ini" -> "x". */
void hcl_path_stem(const char *path, char *out, size_t len);
/* Create a directory and its missing parents (like mkdir -p). */
hcl_status hcl_mkdir_p(hcl_ctx *ctx, const char *path);
/* write(2) all of data to fd; a failure names path and the OS error. */
hcl_status hcl_write_fd(hcl_ctx *ctx, int fd, const void *data, size_t len, const char *path);
/* fsync the folder holding path, so a rename or a new file in it is durable. */
hcl_status hcl_sync_parent(hcl_ctx *ctx, const char *path);
/* The temporary name of path, <dir>/.<name>.tmp, into tmp; -1 when too long. */
int hcl_tmp_name(const char *path, char *tmp, size_t len);
/* Replace path with data durably: <dir>/.<name>.tmp, write, fsync, rename,
 * fsync the folder. On failure the temporary is removed and path untouched. */
hcl_status hcl_file_replace(hcl_ctx *ctx, const char *path, const void *data, size_t len);
/* A growing in-memory file (open_memstream): format into f, then close. */
typedef struct hcl_membuf {
  char *data;
  size_t len;
  FILE *f;
} hcl_membuf;
/* Start an empty buffer; NULL when out of memory. */
FILE *hcl_membuf_open(hcl_membuf *m);
/* Close the stream: data/len hold the text (HCL_ERR_NOMEM if a write failed). */
hcl_status hcl_membuf_close(hcl_ctx *ctx, hcl_membuf *m);
/* Release the buffer (and the stream if still open). */
void hcl_membuf_free(hcl_membuf *m);

/* ---- small JSON writer (json.c) ------------------------------------------ */
/* Append a JSON string literal of s (quoted, escaped) to f; always valid
 * JSON: bytes that are not well-formed UTF-8 are written as U+FFFD. */
void hcl_json_str(FILE *f, const char *s);
/* Length (1-4) of the well-formed UTF-8 sequence at s, 0 when the bytes there
 * are not one (overlong, surrogate, truncated, above U+10FFFF). */
size_t hcl_utf8_seq(const char *s);
/* 1 when the NUL-terminated s is well-formed UTF-8. */
int hcl_utf8_valid(const char *s);
/* Print a double as JSON (%.9g; NaN/Inf as null). */
void hcl_json_num(FILE *f, double v);
/* The number after the first "key": in a flat JSON text into *v (null: NaN);
 * 0 when the key is absent or holds no number. */
int hcl_json_get_num(const char *text, const char *key, double *v);

#endif
