/* Row-major SGEMM: on CPU devices the runtime's own kernels for thin, small
 * and (up to HIERCL_GEMM_RB_MAX multiply-adds) register-blocked products
 * (kernels/ops.cl), else CLBlast, checked once per ctx against the runtime's
 * reference kernel so that a miscompiled or mistuned CLBlast kernel stops
 * the run with a clear message instead of training on wrong numbers. */
#include "internal.h"

#include <clblast_c.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ctx->blas_checked bits: which CLBlast routines passed the self-check. */
#define CHECKED_GEMM 1
#define CHECKED_BATCHED 2

/* Defined in tune.c: nonzero when CLBlast parameters were overridden for this
 * device, so the self-check also covers the (tuned) large-matrix kernel. */
int hcl_blas_tuned(cl_device_id dev);
/* Defined in tune.c: after a failed self-check, drop parameters that came
 * from a file (moved aside, one warning) for the built-in set; 1 when the
 * check is worth running again. */
int hcl_blas_tuning_fallback(hcl_ctx *ctx, const char *why);

/* Defined in ops.c: GEMMs with m, n or k = 1 as GEMV / rank-one kernels. */
hcl_status hcl_gemm_thin(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                         hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                         float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch);

/* Thin shapes skip CLBlast on CPUs, where it pads them to its tiles (3-10x
 * slower than a GEMV there, measured on PoCL). On GPUs the one-work-item-per-
 * output kernels would leave the device idle, so CLBlast keeps them. */
static int use_thin(const hcl_ctx *ctx, size_t m, size_t n, size_t k) {
  return hcl_ops_cpu_paths(ctx) && (m == 1 || n == 1 || k == 1);
}

/* Products up to HIERCL_GEMM_SMALL_MAX multiply-adds per replica take one small
 * kernel: below that CLBlast's host-side cost per call (and on PoCL its
 * local-memory tiles) outweighs the arithmetic. The limit is ctx->gemm_small_max
 * (HIERCL_GEMM_SMALL_MAX in the environment; 0 turns the path off). */
static int use_small(const hcl_ctx *ctx, size_t m, size_t n, size_t k) {
  return (double)m * (double)n * (double)k <= (double)ctx->gemm_small_max;
}

/* Products up to ctx->gemm_rb_max multiply-adds per entry take the runtime's
 * register-blocked kernel on CPUs (HIERCL_GEMM_RB_MAX; 0 turns the path
 * off): CLBlast's indirect kernel copies, pads and transposes its operands
 * (C always, in row-major), and pads k to its tile, which cost more than the
 * product at these sizes on PoCL. GPUs keep CLBlast. */
static int use_rb(const hcl_ctx *ctx, size_t m, size_t n, size_t k) {
  return hcl_ops_cpu_paths(ctx) && (double)m * (double)n * (double)k <= ctx->gemm_rb_max;
}

int hcl_gemm_own_kernel(const hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k) {
  if (!hcl_ops_cpu_paths(ctx) || (!use_thin(ctx, m, n, k) && !use_small(ctx, m, n, k))) return -1;
  return hcl_gemm_kernel_of(ta, tb, m, n, k);
}

static const char *status_name(int s) {
  switch (s) {
  case CLBlastSuccess: return "success";
  case CLBlastOpenCLCompilerNotAvailable: return "OpenCL compiler not available";
  case CLBlastTempBufferAllocFailure: return "temporary buffer allocation failed";
  case CLBlastOpenCLOutOfResources: return "CL_OUT_OF_RESOURCES";
  case CLBlastOpenCLOutOfHostMemory: return "CL_OUT_OF_HOST_MEMORY";
  case CLBlastOpenCLBuildProgramFailure: return "kernel build failed";
  case CLBlastInvalidValue: return "CL_INVALID_VALUE";
  case CLBlastInvalidCommandQueue: return "invalid command queue";
  case CLBlastInvalidMemObject: return "invalid buffer";
  case CLBlastInvalidLocalThreadsTotal: return "work-group too large";
  case CLBlastInvalidLocalMemUsage: return "not enough local memory";
  case CLBlastNotImplemented: return "not implemented";
  case CLBlastInvalidDimension: return "invalid dimension";
  case CLBlastInvalidLeadDimA: return "lda too small";
  case CLBlastInvalidLeadDimB: return "ldb too small";
  case CLBlastInvalidLeadDimC: return "ldc too small";
  case CLBlastInsufficientMemoryA: return "buffer A too small";
  case CLBlastInsufficientMemoryB: return "buffer B too small";
  case CLBlastInsufficientMemoryC: return "buffer C too small";
  case CLBlastInvalidBatchCount: return "invalid batch count";
  case CLBlastInvalidOverrideKernel: return "invalid override kernel";
  case CLBlastMissingOverrideParameter: return "missing override parameter";
  case CLBlastDatabaseError: return "no database entry for the device";
  default: return s < 0 && s > -100 ? hcl_strerror(s) : "CLBlast error";
  }
}

static hcl_status blast_fail(hcl_ctx *ctx, const char *what, int ta, int tb, size_t m, size_t n,
                             size_t k, size_t batch, int st) {
  return hcl_fail(
      ctx, HCL_ERR_BLAS,
      "CLBlast %s m=%zu n=%zu k=%zu (ta=%d tb=%d batch=%zu): status %d (%s), device %s (%s)", what,
      m, n, k, ta, tb, batch, st, status_name(st), ctx->dev.id, ctx->dev.name);
}

/* A row-major rows x cols operand with leading dimension ld in buffer b. */
static hcl_status check_matrix(hcl_ctx *ctx, const char *name, hcl_buf b, size_t rows, size_t cols,
                               size_t ld, size_t stride, size_t batch) {
  if (!b.mem) return hcl_fail(ctx, HCL_ERR_PARAM, "sgemm: buffer %s is NULL", name);
  if (b.offset % 4)
    return hcl_fail(ctx, HCL_ERR_PARAM, "sgemm: buffer %s offset %zu is not a multiple of 4", name,
                    b.offset);
  if (ld < cols)
    return hcl_fail(ctx, HCL_ERR_PARAM, "sgemm: ld%s %zu < %zu columns", name, ld, cols);
  size_t floats = (batch - 1) * stride + (rows - 1) * ld + cols;
  if (b.size / 4 < floats)
    return hcl_fail(ctx, HCL_ERR_PARAM, "sgemm: buffer %s holds %zu floats, needs %zu", name,
                    b.size / 4, floats);
  return HCL_OK;
}

static hcl_status check_args(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, hcl_buf a,
                             size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb, hcl_buf c,
                             size_t ldc, size_t sc, size_t batch) {
  HCL_TRY(check_matrix(ctx, "a", a, ta ? k : m, ta ? m : k, lda, sa, batch));
  HCL_TRY(check_matrix(ctx, "b", b, tb ? n : k, tb ? k : n, ldb, sb, batch));
  return check_matrix(ctx, "c", c, m, n, ldc, sc, batch);
}

static CLBlastTranspose tr(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

/* Defined in ops.c: the ctx's reusable scratch buffer of at least `bytes`. */
hcl_status hcl_ops_blas_temp(hcl_ctx *ctx, size_t bytes, hcl_buf *out);

/* Memory of CLBlast's indirect kernel (m n k >= XGEMM_MIN_INDIRECT_SIZE^3).
 *
 * It copies padded, transposed operands into temporaries, and CLBlastSgemm
 * and CLBlastSgemmStridedBatched create them per call (a row-major C always
 * needs one). The driver frees a released buffer only once the commands
 * using it have run, and the trainer queues up to 256 steps ahead, so every
 * queued step held its own copies: 450 MB per replica for the RHM CNN on
 * PoCL. Now:
 *  - one product: CLBlastSgemmWithTempBuffer on the ctx's scratch buffer
 *    (ops.c), which the in-order queue serialises; nothing is created;
 *  - replicas: still one strided-batched call (R calls cost R times the
 *    launches: half the speed at R = 12 on PoCL), but what its temporaries
 *    take is counted and bounded (bound_queued);
 *  - a batched call whose own temporaries pass half that bound: one call
 *    per entry on the scratch buffer.
 * Every path is row-major, as the single and the batched calls must sum in
 * the same order (a replica is bit-identical to a separate run). Issuing the
 * products column-major (C^T = op(B)^T op(A)^T) would save CLBlast's copies
 * of C, but then CLBlast reads C in place and drops its offset and stride
 * (misread_in_place below): wrong results on the RHM CNN's shapes. */
static size_t g_pending_max = (size_t)64 << 20;

void hcl_blas_set_pending_max(size_t bytes); /* tests: 0 forces one call per entry */
void hcl_blas_set_pending_max(size_t bytes) { g_pending_max = bytes; }

/* Keep the temporaries of queued strided-batched calls under g_pending_max
 * without draining the queue: calls are counted in segments of at most half
 * of it, each closed by a marker; before a segment is closed the host waits
 * for the marker of the one before, so at most two segments are queued (and
 * alive: the driver frees a temporary once its commands have run). A full
 * clFinish instead would idle the device while the host refills the queue. */
static int bound_queued(hcl_ctx *ctx, size_t bytes) {
  if (ctx->blas_pending && ctx->blas_pending + bytes > g_pending_max / 2) {
    if (ctx->blas_mark) {
      cl_int cl = clWaitForEvents(1, &ctx->blas_mark);
      clReleaseEvent(ctx->blas_mark);
      ctx->blas_mark = NULL;
      if (cl != CL_SUCCESS) return cl;
    }
    cl_int cl = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &ctx->blas_mark);
    if (cl != CL_SUCCESS) return cl;
    ctx->blas_pending = 0;
  }
  ctx->blas_pending += bytes;
  return CL_SUCCESS;
}

/* Drop the queue marker (hcl_ops_release calls it when the ctx goes). */
void hcl_blas_release(hcl_ctx *ctx);
void hcl_blas_release(hcl_ctx *ctx) {
  if (ctx->blas_mark) clReleaseEvent(ctx->blas_mark);
  ctx->blas_mark = NULL;
  ctx->blas_pending = 0;
}

/* CLBlast's direct kernel: one launch, no temporaries. */
static int raw_direct(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                      hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                      float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  if (batch == 1)
    return CLBlastSgemm(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, a.mem, a.offset / 4,
                        lda, b.mem, b.offset / 4, ldb, beta, c.mem, c.offset / 4, ldc, &ctx->queue,
                        NULL);
  return CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, a.mem,
                                    a.offset / 4, lda, sa, b.mem, b.offset / 4, ldb, sb, beta,
                                    c.mem, c.offset / 4, ldc, sc, batch, &ctx->queue, NULL);
}

/* Bytes of temporaries one product of this shape needs at most (0: the
 * direct kernel runs). Offsets of 1 make every operand count, whatever its
 * real offset (CLBlast skips the copy of an operand at offset 0 that already
 * has its layout). */
static int temp_bytes(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, size_t lda,
                      size_t ldb, size_t ldc, size_t *bytes) {
  *bytes = 0;
  return CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, 1, lda, 1, ldb,
                                    1, ldc, &ctx->queue, bytes);
}

/* One indirect call per entry, all on the scratch buffer. */
static int raw_scratch(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                       hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                       float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch, size_t bytes) {
  int st = CLBlastSuccess;
  for (size_t q = 0; q < batch && st == CLBlastSuccess; q++)
    for (int tries = 0;; tries++) {
      hcl_buf t;
      if (hcl_ops_blas_temp(ctx, bytes, &t) != HCL_OK) return CLBlastTempBufferAllocFailure;
      st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, a.mem,
                                      a.offset / 4 + q * sa, lda, b.mem, b.offset / 4 + q * sb, ldb,
                                      beta, c.mem, c.offset / 4 + q * sc, ldc, &ctx->queue, NULL,
                                      t.mem);
      /* the size query and the routine disagree (another CLBlast version or
       * parameter set): CLBlast checks before it enqueues, so retry larger */
      if (st != CLBlastInsufficientMemoryTemp || tries == 3) break;
      bytes = t.size * 2;
    }
  return st;
}

/* CLBlast 1.5 (Debian 12) is not safe to call from several threads at once
 * (its program cache: CNugteren/CLBlast#486, fixed in 1.6.1), and its
 * parameter overrides are process-wide: a sweep's device threads take turns
 * (the calls only enqueue; the first on a device compiles). Recursive: the
 * tuning fallback runs inside a checked call. */
static pthread_mutex_t g_clblast_lock;
static pthread_once_t g_clblast_once = PTHREAD_ONCE_INIT;

static void clblast_lock_init(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&g_clblast_lock, &a);
  pthread_mutexattr_destroy(&a);
}

void hcl_clblast_lock(void) {
  pthread_once(&g_clblast_once, clblast_lock_init);
  pthread_mutex_lock(&g_clblast_lock);
}

void hcl_clblast_unlock(void) { pthread_mutex_unlock(&g_clblast_lock); }

/* CLBlast's strided-batched indirect kernel (1.5.3, XgemmStridedBatched)
 * reads an operand in place when it needs no padding or transposition (its
 * ld equals its row length, its sizes are multiples of the kernel's tiles)
 * and then finds entry q at q * rows * cols floats from the buffer's start:
 * the operand's offset and batch stride are dropped (its no-temporary test,
 * unlike the single product's, does not look at them). A packed operand at
 * an offset or with another stride — a parameter block strided by the
 * replica's parameter count — gave wrong replicas, so it takes one call per
 * entry. Row-major, B is read in place only untransposed; A (transposed with
 * GEMMK=0, not with GEMMK=1) and C (GEMMK=1) whatever the parameters. The
 * tile sizes are CLBlast's, so every packed operand counts. */
static int misread_in_place(hcl_buf x, size_t rows, size_t cols, size_t ld, size_t stride) {
  return ld == cols && (x.offset != 0 || stride != rows * cols);
}

/* C = alpha op(A) op(B) + beta C for `batch` entries (strides sa, sb, sc
 * floats). Returns a CLBlast status (OpenCL codes pass through). */
static int raw_batched_unlocked(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k,
                                float alpha, hcl_buf a, size_t lda, size_t sa, hcl_buf b,
                                size_t ldb, size_t sb, float beta, hcl_buf c, size_t ldc, size_t sc,
                                size_t batch) {
  size_t bytes;
  int st = temp_bytes(ctx, ta, tb, m, n, k, lda, ldb, ldc, &bytes);
  if (st != CLBlastSuccess) return st;
  if (!bytes)
    return raw_direct(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
  size_t total = bytes * batch;
  int misread = misread_in_place(a, ta ? k : m, ta ? m : k, lda, sa) ||
                (!tb && misread_in_place(b, k, n, ldb, sb)) || misread_in_place(c, m, n, ldc, sc);
  if (batch == 1 || total > g_pending_max / 2 || misread)
    return raw_scratch(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch,
                       bytes);
  if ((st = bound_queued(ctx, total)) != CL_SUCCESS) return st;
  return CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, a.mem,
                                    a.offset / 4, lda, sa, b.mem, b.offset / 4, ldb, sb, beta,
                                    c.mem, c.offset / 4, ldc, sc, batch, &ctx->queue, NULL);
}

static int raw_batched(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                       hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb,
                       float beta, hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  hcl_clblast_lock();
  int st = raw_batched_unlocked(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc,
                                sc, batch);
  hcl_clblast_unlock();
  return st;
}

static int raw_gemm(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                    hcl_buf a, size_t lda, hcl_buf b, size_t ldb, float beta, hcl_buf c,
                    size_t ldc) {
  return raw_batched(ctx, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

/* ---- self-check ---------------------------------------------------------- */
typedef struct check_case {
  size_t m, n, k, pad, off, batch; /* pad: extra leading-dimension floats */
} check_case;

static uint32_t lcg(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

/* Compare CLBlast with the reference kernel on one shape, all four
 * transpose variants, alpha/beta not trivial, offsets and padded ld. */
static hcl_status check_shape(hcl_ctx *ctx, const check_case *cc) {
  const float alpha = 0.75f, beta = -0.5f;
  size_t m = cc->m, n = cc->n, k = cc->k, B = cc->batch, mx = m > n ? m : n;
  size_t ld = (k > mx ? k : mx) + cc->pad; /* one ld fits every variant */
  size_t sa = (mx > k ? mx : k) * ld, sc = m * ld;
  size_t fa = cc->off + B * sa, fc = cc->off + B * sc;
  float *ha = malloc(fa * 4), *hb = malloc(fa * 4), *hc = malloc(fc * 4);
  float *r1 = malloc(fc * 4), *r2 = malloc(fc * 4);
  hcl_buf da = {0}, db = {0}, dc1 = {0}, dc2 = {0};
  hcl_status rc = HCL_OK;
  if (!ha || !hb || !hc || !r1 || !r2) {
    rc = hcl_fail(ctx, HCL_ERR_NOMEM, "sgemm self-check: out of host memory");
    goto out;
  }
  uint32_t s = 12345u;
  for (size_t i = 0; i < fa; i++) ha[i] = (float)lcg(&s) / 8388608.0f - 1.0f;
  for (size_t i = 0; i < fa; i++) hb[i] = (float)lcg(&s) / 8388608.0f - 1.0f;
  for (size_t i = 0; i < fc; i++) hc[i] = (float)lcg(&s) / 8388608.0f - 1.0f;
  if ((rc = hcl_buf_alloc(ctx, fa * 4, &da)) || (rc = hcl_buf_alloc(ctx, fa * 4, &db)) ||
      (rc = hcl_buf_alloc(ctx, fc * 4, &dc1)) || (rc = hcl_buf_alloc(ctx, fc * 4, &dc2)) ||
      (rc = hcl_buf_write(ctx, da, ha, fa * 4)) || (rc = hcl_buf_write(ctx, db, hb, fa * 4)))
    goto out;
  hcl_buf a = hcl_buf_sub(da, cc->off * 4, (fa - cc->off) * 4);
  hcl_buf b = hcl_buf_sub(db, cc->off * 4, (fa - cc->off) * 4);
  hcl_buf c1 = hcl_buf_sub(dc1, cc->off * 4, (fc - cc->off) * 4);
  hcl_buf c2 = hcl_buf_sub(dc2, cc->off * 4, (fc - cc->off) * 4);
  for (int v = 0; v < 4; v++) {
    int ta = v & 1, tb = v >> 1;
    if ((rc = hcl_buf_write(ctx, dc1, hc, fc * 4)) || (rc = hcl_buf_write(ctx, dc2, hc, fc * 4)))
      goto out;
    int st =
        B > 1 ? raw_batched(ctx, ta, tb, m, n, k, alpha, a, ld, sa, b, ld, sa, beta, c1, ld, sc, B)
              : raw_gemm(ctx, ta, tb, m, n, k, alpha, a, ld, b, ld, beta, c1, ld);
    if (st != CLBlastSuccess) {
      rc = blast_fail(ctx, "self-check", ta, tb, m, n, k, B, st);
      goto out;
    }
    for (size_t q = 0; q < B && rc == HCL_OK; q++)
      rc = hcl_sgemm_reference(ctx, ta, tb, m, n, k, alpha, hcl_buf_sub(a, q * sa * 4, sa * 4), ld,
                               hcl_buf_sub(b, q * sa * 4, sa * 4), ld, beta,
                               hcl_buf_sub(c2, q * sc * 4, sc * 4), ld);
    if (rc || (rc = hcl_buf_read(ctx, dc1, r1, fc * 4)) ||
        (rc = hcl_buf_read(ctx, dc2, r2, fc * 4)))
      goto out;
    for (size_t q = 0; q < B; q++)
      for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
          /* bound: a few float roundings of each product, relative to the
           * sum of magnitudes (both sides accumulate in float) */
          const float *A = ha + cc->off + q * sa, *Bm = hb + cc->off + q * sa;
          double mag = fabs(beta * hc[cc->off + q * sc + i * ld + j]);
          for (size_t p = 0; p < k; p++)
            mag += fabs(alpha * (ta ? A[p * ld + i] : A[i * ld + p]) *
                        (tb ? Bm[j * ld + p] : Bm[p * ld + j]));
          size_t o = cc->off + q * sc + i * ld + j;
          double d = fabs((double)r1[o] - (double)r2[o]);
          if (!(d <= 1e-5 * (double)(k + 4) * mag + 1e-30)) {
            rc = hcl_fail(ctx, HCL_ERR_BLAS,
                          "CLBlast self-check failed on device %s (%s, driver %s): %s m=%zu n=%zu "
                          "k=%zu ta=%d tb=%d gives C[%zu,%zu] = %.9g, the reference kernel %.9g. "
                          "CLBlast's kernels (or the tuned parameters in the cache directory's "
                          "clblast/ folder) are wrong on this device",
                          ctx->dev.id, ctx->dev.name, ctx->dev.driver,
                          B > 1 ? "sgemm_batched" : "sgemm", m, n, k, ta, tb, i, j, r1[o], r2[o]);
            goto out;
          }
        }
  }
  /* the floats before C's offset must be untouched (an offset bug writes there) */
  for (size_t i = 0; i < cc->off; i++)
    if (r1[i] != hc[i]) {
      rc = hcl_fail(ctx, HCL_ERR_BLAS,
                    "CLBlast self-check failed on device %s (%s): it wrote "
                    "before the C offset",
                    ctx->dev.id, ctx->dev.name);
      goto out;
    }
out:
  hcl_buf_free(ctx, &da);
  hcl_buf_free(ctx, &db);
  hcl_buf_free(ctx, &dc1);
  hcl_buf_free(ctx, &dc2);
  free(ha), free(hb), free(hc), free(r1), free(r2);
  return rc;
}

static hcl_status selfcheck_gemm(hcl_ctx *ctx) {
  /* small odd shape: CLBlast's direct kernel */
  check_case small = {23, 19, 29, 3, 5, 1};
  HCL_TRY(check_shape(ctx, &small));
  /* tuned parameters drive the indirect kernel (m n k >= 128^3 on PoCL):
   * check one shape of that size too */
  if (hcl_blas_tuned(ctx->dev.device_id)) {
    check_case big = {131, 133, 129, 1, 3, 1};
    HCL_TRY(check_shape(ctx, &big));
  }
  return HCL_OK;
}

/* A parameter file that passed its checks can still be wrong on the device:
 * it is dropped and the check runs again, so it fails no further run. */
static hcl_status with_fallback(hcl_ctx *ctx, hcl_status (*check)(hcl_ctx *)) {
  hcl_status rc = check(ctx);
  if (rc == HCL_ERR_BLAS && hcl_blas_tuning_fallback(ctx, ctx->errmsg)) {
    ctx->blas_checked = 0; /* every routine again, with the new parameters */
    rc = check(ctx);
  }
  return rc;
}

hcl_status hcl_blas_selfcheck(hcl_ctx *ctx) {
  if (ctx->blas_checked & CHECKED_GEMM) return HCL_OK;
  HCL_TRY(with_fallback(ctx, selfcheck_gemm));
  ctx->blas_checked |= CHECKED_GEMM;
  return HCL_OK;
}

static hcl_status selfcheck_batched_once(hcl_ctx *ctx) {
  check_case small = {13, 17, 11, 2, 7, 3};
  HCL_TRY(check_shape(ctx, &small));
  /* packed operands at an offset, sizes on the tiles: what the indirect
   * kernel reads in place (misread_in_place), where its threshold allows */
  check_case packed = {128, 128, 128, 0, 3, 2};
  HCL_TRY(check_shape(ctx, &packed));
  /* the indirect kernel, one call per entry on the shared scratch buffer */
  if (hcl_blas_tuned(ctx->dev.device_id)) {
    check_case big = {131, 133, 129, 1, 3, 2};
    HCL_TRY(check_shape(ctx, &big));
  }
  return HCL_OK;
}

static hcl_status selfcheck_batched(hcl_ctx *ctx) {
  if (ctx->blas_checked & CHECKED_BATCHED) return HCL_OK;
  HCL_TRY(with_fallback(ctx, selfcheck_batched_once));
  ctx->blas_checked |= CHECKED_BATCHED;
  return HCL_OK;
}

/* ---- the entry points ---------------------------------------------------- */
hcl_status hcl_sgemm(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                     hcl_buf a, size_t lda, hcl_buf b, size_t ldb, float beta, hcl_buf c,
                     size_t ldc) {
  if (!m || !n) return HCL_OK;
  /* k = 0: C = beta C, which CLBlast refuses as a dimension error */
  if (!k) return hcl_sgemm_reference(ctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  HCL_TRY(check_args(ctx, ta, tb, m, n, k, a, lda, 0, b, ldb, 0, c, ldc, 0, 1));
  ctx->gemm_flops += 2.0 * (double)m * (double)n * (double)k;
  if (use_thin(ctx, m, n, k))
    return hcl_gemm_thin(ctx, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
  if (use_small(ctx, m, n, k))
    return hcl_gemm_small(ctx, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
  if (use_rb(ctx, m, n, k))
    return hcl_gemm_rb(ctx, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
  HCL_TRY(hcl_blas_selfcheck(ctx));
  int st = raw_gemm(ctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (st != CLBlastSuccess) return blast_fail(ctx, "sgemm", ta, tb, m, n, k, 1, st);
  return HCL_OK;
}

hcl_status hcl_sgemm_batched(hcl_ctx *ctx, int ta, int tb, size_t m, size_t n, size_t k,
                             float alpha, hcl_buf a, size_t lda, size_t sa, hcl_buf b, size_t ldb,
                             size_t sb, float beta, hcl_buf c, size_t ldc, size_t sc,
                             size_t batch) {
  if (!m || !n || !batch) return HCL_OK;
  if (batch == 1) return hcl_sgemm(ctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (!k) {
    HCL_TRY(check_matrix(ctx, "c", c, m, n, ldc, sc, batch));
    for (size_t q = 0; q < batch; q++)
      HCL_TRY(hcl_sgemm_reference(ctx, ta, tb, m, n, 0, alpha, a, lda, b, ldb, beta,
                                  hcl_buf_sub(c, q * sc * 4, c.size - q * sc * 4), ldc));
    return HCL_OK;
  }
  HCL_TRY(check_args(ctx, ta, tb, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch));
  ctx->gemm_flops += 2.0 * (double)m * (double)n * (double)k * (double)batch;
  if (use_thin(ctx, m, n, k))
    return hcl_gemm_thin(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                         batch);
  if (use_small(ctx, m, n, k))
    return hcl_gemm_small(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                          batch);
  if (use_rb(ctx, m, n, k))
    return hcl_gemm_rb(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                       batch);
  HCL_TRY(hcl_blas_selfcheck(ctx));
  HCL_TRY(selfcheck_batched(ctx));
  int st =
      raw_batched(ctx, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
  if (st != CLBlastSuccess) return blast_fail(ctx, "sgemm_batched", ta, tb, m, n, k, batch, st);
  return HCL_OK;
}

#define HCL_LOWER_BLOCK 64
hcl_status hcl_sgemm_lower(hcl_ctx *ctx, int ta, int tb, size_t n, size_t k, float alpha, hcl_buf a,
                           size_t lda, size_t sa, hcl_buf b, size_t ldb, size_t sb, float beta,
                           hcl_buf c, size_t ldc, size_t sc, size_t batch) {
  if (!n || !batch) return HCL_OK;
  if (k && hcl_ops_cpu_paths(ctx) && !use_thin(ctx, n, n, k) && !use_small(ctx, n, n, k)) {
    HCL_TRY(check_args(ctx, ta, tb, n, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch));
    ctx->gemm_flops += (double)n * (double)(n + 1) * (double)k * (double)batch; /* the triangle */
    return hcl_gemm_rb_lower(ctx, ta, tb, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                             batch);
  }
  for (size_t j0 = 0; j0 < n; j0 += HCL_LOWER_BLOCK) {
    size_t rows = n - j0 < HCL_LOWER_BLOCK ? n - j0 : HCL_LOWER_BLOCK;
    size_t ao = ta ? j0 : j0 * lda, co = j0 * ldc; /* op(A)'s rows and C's from j0 */
    if (ao * 4 > a.size || co * 4 > c.size)
      return hcl_fail(ctx, HCL_ERR_PARAM, "sgemm_lower: a or c smaller than n = %zu rows", n);
    HCL_TRY(hcl_sgemm_batched(ctx, ta, tb, rows, j0 + rows, k, alpha,
                              hcl_buf_sub(a, ao * 4, a.size - ao * 4), lda, sa, b, ldb, sb, beta,
                              hcl_buf_sub(c, co * 4, c.size - co * 4), ldc, sc, batch));
  }
  return HCL_OK;
}
