/* GFLOP/s of hiercl's products at the shapes of the bench suite's matrix
 * models (logged from hcl_gemm_rb: one SGD step of the RHM CNN, the RHM
 * two-layer net and the QuadNTK Taylor model), each timed alone: N calls
 * queued, one hcl_finish; per second of wall time (median and best of ROUNDS
 * rounds: on a loaded machine the best is the closest to an idle one) and
 * per second of the process's CPU time (all threads, median: what the cores
 * achieved while they ran). A shape of its own can be given as
 * "ta tb m n k batch".
 *
 *   build/bench/gemm_shapes [N] [ROUNDS] [ta tb m n k batch]
 *   (HIERCL_GEMM_RB_MAX and HIERCL_GEMM_SMALL_MAX choose the path) */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
  const char *use;
  int ta, tb;
  size_t m, n, k, batch;
} shape;

static const shape shapes[] = {
    {"rhm_cnn fwd", 0, 0, 128, 512, 256, 1},      {"rhm_cnn dW", 1, 0, 256, 512, 128, 1},
    {"rhm_cnn dX", 0, 1, 128, 256, 512, 1},       {"rhm_cnn layer1 dX", 0, 1, 256, 256, 16, 1},
    {"rhm_cnn layer1 dW", 1, 0, 256, 16, 256, 1}, {"rhm_cnn fwd R8", 0, 0, 128, 512, 256, 8},
    {"rhm_cnn dW R8", 1, 0, 256, 512, 128, 8},    {"rhm_cnn dX R8", 0, 1, 128, 256, 512, 8},
    {"rhm_fcn dX", 0, 1, 128, 512, 32, 1},        {"rhm_fcn dW", 1, 0, 512, 32, 128, 1},
    {"quadntk fwd", 0, 1, 1024, 1024, 16, 1},     {"quadntk back", 1, 0, 1024, 16, 1024, 1},
    {"quadntk fwd R8", 0, 1, 1024, 1024, 16, 8},  {"quadntk back R8", 1, 0, 1024, 16, 1024, 8},
};

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* median GFLOP/s per wall second (the best in *best, the median per CPU
 * second in *cpu) of `rounds` rounds of `calls` products of shape s; < 0 on
 * error */
static double time_shape(hcl_ctx *ctx, const shape *s, int calls, int rounds, double *best,
                         double *cpu) {
  size_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n, ldc = s->n;
  size_t sa = s->m * s->k, sb = s->k * s->n, sc = s->m * s->n;
  size_t total = s->batch * (sa + sb + sc);
  float *host = malloc(total * sizeof(float));
  if (!host) return -1;
  for (size_t i = 0; i < total; i++) host[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
  hcl_buf buf;
  double med = -1;
  if (hcl_buf_alloc(ctx, total * sizeof(float), &buf) != HCL_OK ||
      hcl_buf_write(ctx, buf, host, total * sizeof(float)) != HCL_OK)
    goto out;
  size_t nb = s->batch * sa * 4, nc = s->batch * sb * 4;
  hcl_buf a = hcl_buf_sub(buf, 0, nb), b = hcl_buf_sub(buf, nb, nc),
          c = hcl_buf_sub(buf, nb + nc, s->batch * sc * 4);
  double *gf = calloc(2 * (size_t)rounds, sizeof(double)), *gc = gf + rounds;
  for (int r = -1; r < rounds; r++) { /* round -1 compiles and warms */
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < (r < 0 ? 2 : calls); i++)
      if (hcl_sgemm_batched(ctx, s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, sa, b, ldb, sb, 0.0f,
                            c, ldc, sc, s->batch) != HCL_OK)
        goto out_gf;
    if (hcl_finish(ctx) != HCL_OK) goto out_gf;
    double t = clock_s(CLOCK_MONOTONIC) - t0, tc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double gflop = 2e-9 * (double)(s->m * s->n * s->k * s->batch) * calls;
    if (r >= 0) gf[r] = gflop / t, gc[r] = gflop / tc;
  }
  qsort(gf, (size_t)rounds, sizeof(double), cmp_double);
  qsort(gc, (size_t)rounds, sizeof(double), cmp_double);
  med = gf[rounds / 2], *best = gf[rounds - 1], *cpu = gc[rounds / 2];
out_gf:
  free(gf);
out:
  hcl_buf_free(ctx, &buf);
  free(host);
  return med;
}

int main(int argc, char **argv) {
  int calls = argc > 1 ? atoi(argv[1]) : 200, rounds = argc > 2 ? atoi(argv[2]) : 5;
  shape own = {"given", 0, 0, 0, 0, 0, 1};
  if (argc > 8) {
    own.ta = atoi(argv[3]), own.tb = atoi(argv[4]);
    own.m = strtoul(argv[5], NULL, 10), own.n = strtoul(argv[6], NULL, 10);
    own.k = strtoul(argv[7], NULL, 10), own.batch = strtoul(argv[8], NULL, 10);
  }
  if (calls < 1 || rounds < 1) {
    fprintf(stderr, "usage: gemm_shapes [N] [ROUNDS] [ta tb m n k batch]\n");
    return 2;
  }
  hcl_ctx_options o = {.device = "cpu", .quiet = 1};
  hcl_ctx *ctx;
  char err[1024];
  if (hcl_ctx_create(&o, &ctx, err, sizeof err) != HCL_OK) {
    fprintf(stderr, "gemm_shapes: %s\n", err);
    return 1;
  }
  printf("%-20s %2s %2s %5s %5s %5s %5s %8s %8s %9s\n", "shape", "ta", "tb", "m", "n", "k", "batch",
         "GFLOP/s", "best", "per CPU-s");
  int bad = 0;
  size_t n = own.m ? 1 : sizeof shapes / sizeof *shapes;
  for (size_t i = 0; i < n; i++) {
    const shape *s = own.m ? &own : &shapes[i];
    double best = 0, cpu = 0, g = time_shape(ctx, s, calls, rounds, &best, &cpu);
    if (g < 0) {
      fprintf(stderr, "gemm_shapes: %s: %s\n", s->use, hcl_errmsg(ctx));
      bad = 1;
      break;
    }
    printf("%-20s %2d %2d %5zu %5zu %5zu %5zu %8.1f %8.1f %9.1f\n", s->use, s->ta, s->tb, s->m,
           s->n, s->k, s->batch, g, best, cpu);
  }
  hcl_ctx_destroy(ctx);
  return bad;
}
