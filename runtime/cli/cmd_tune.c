/* hiercl tune [--device SEL]: tune CLBlast's GEMM for a device with its own
 * tuner (Debian package clblast-utils), keep the best parameters under the
 * user's cache directory, where every later context applies them, and
 * report GEMM speed before and after on training-sized products. */
#include "commands.h"
#include "trainer.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char tune_usage[] =
    "usage: hiercl tune [--device SEL] [--size M,N,K] [--minutes T] [--dry-run]\n"
    "Runs clblast_tuner_xgemm (apt-get install clblast-utils) on the device for\n"
    "GEMMK=0 kernels (GEMMK=1 is broken on PoCL and in CLBlast 1.5.3), stores the\n"
    "best set where the runtime applies it at start-up, and prints GFLOP/s before\n"
    "and after. Default size 1024,512,512; at most T minutes (default 20).\n";

/* OpenCL's own platform and device indices (what the tuner's -platform and
 * -device mean), which differ from hiercl's sorted list. */
static int icd_indices(const hcl_ctx *ctx, unsigned *pi, unsigned *di) {
  cl_platform_id plats[64];
  cl_uint np = 0;
  if (clGetPlatformIDs(64, plats, &np) != CL_SUCCESS) return -1;
  for (cl_uint p = 0; p < np; p++) {
    if (plats[p] != ctx->dev.platform_id) continue;
    cl_device_id devs[64];
    cl_uint nd = 0;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 64, devs, &nd) != CL_SUCCESS) return -1;
    for (cl_uint d = 0; d < nd; d++)
      if (devs[d] == ctx->dev.device_id) {
        *pi = p;
        *di = d;
        return 0;
      }
  }
  return -1;
}

/* Mean GFLOP/s of C = A B over a few repetitions, CLBlast only. */
static double gflops(hcl_ctx *ctx, size_t m, size_t n, size_t k) {
  hcl_buf a, b, c;
  if (hcl_buf_alloc(ctx, m * k * 4, &a) || hcl_buf_alloc(ctx, k * n * 4, &b) ||
      hcl_buf_alloc(ctx, m * n * 4, &c))
    return 0;
  double keep = ctx->gemm_small_max, t = 0;
  ctx->gemm_small_max = 0;
  int reps = 0;
  for (int i = 0; i < 12; i++) {
    double t0 = hcl_now();
    if (hcl_sgemm(ctx, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n) || hcl_finish(ctx)) break;
    if (i >= 2) t += hcl_now() - t0, reps++; /* the first calls compile */
  }
  ctx->gemm_small_max = keep;
  hcl_buf_free(ctx, &a), hcl_buf_free(ctx, &b), hcl_buf_free(ctx, &c);
  return reps ? 2.0 * m * n * k * reps / t * 1e-9 : 0;
}

/* "key": "value" of a stage file, copied into out. */
static int json_field(const char *text, const char *key, char *out, size_t len) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\": \"", key);
  const char *p = text ? strstr(text, pat) : NULL;
  if (!p) return 0;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  if (!e) return 0;
  snprintf(out, len, "%.*s", (int)(e - p), p);
  return 1;
}

/* Best GEMMK=0 parameters over the stage files in dir. */
static int best_of(const char *dir, char *params, size_t len, double *best_ms) {
  *best_ms = 1e300;
  for (int stage = 1; stage <= 4; stage++) {
    char path[1200], t[64], p[1024];
    snprintf(path, sizeof path, "%s/clblast_xgemm_%d_32.json", dir, stage);
    char *text = hcl_file_text(path);
    if (text && json_field(text, "best_time", t, sizeof t) &&
        json_field(text, "best_parameters", p, sizeof p) && strstr(p, "GEMMK=0") && atof(t) > 0 &&
        atof(t) < *best_ms) {
      *best_ms = atof(t);
      snprintf(params, len, "%s", p);
    }
    free(text);
  }
  return *best_ms < 1e300;
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* Write "[Xgemm]" with NAME = value lines (PRECISION is not a kernel parameter). */
static int write_params(const char *path, const char *params, double ms, const hcl_ctx *ctx,
                        size_t m, size_t n, size_t k) {
  char dir[1200];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0; /* the file's folder */
  if (slash && hcl_mkdir_p(NULL, dir) != HCL_OK) return -1;
  char tmp[1300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  time_t now = time(NULL);
  fprintf(f, "# hiercl tune, %s# device %s, driver %s; %zux%zux%zu best %.3f ms\n[Xgemm]\n",
          ctime(&now), ctx->dev.name, ctx->dev.driver, m, n, k, ms);
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", params);
  for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq || !strncmp(tok, "PRECISION=", 10)) continue;
    *eq = 0;
    fprintf(f, "%s = %s\n", tok, eq + 1);
  }
  if (ctx->dev.type & CL_DEVICE_TYPE_CPU) /* route mid-size products to the tuned kernel */
    fprintf(f, "[GemmRoutine]\nXGEMM_MIN_INDIRECT_SIZE = 128\n");
  int bad = ferror(f);
  if (fclose(f) || bad || rename(tmp, path)) return -1;
  return 0;
}

int hcl_cmd_tune(int argc, char **argv) {
  const char *dev = NULL;
  size_t m = 1024, n = 512, k = 512;
  double minutes = 20;
  int dry = 0;
  for (int i = 1; i < argc; i++) {
    int has = i + 1 < argc;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(tune_usage, stdout);
      return HCL_EXIT_OK;
    } else if (!strcmp(argv[i], "--device") && has) {
      dev = argv[++i];
    } else if (!strcmp(argv[i], "--size") && has) {
      if (sscanf(argv[++i], "%zu,%zu,%zu", &m, &n, &k) != 3 || !m || !n || !k) {
        fprintf(stderr, "hiercl tune: --size takes M,N,K (positive integers)\n");
        return HCL_EXIT_USAGE;
      }
    } else if (!strcmp(argv[i], "--minutes") && has) {
      minutes = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--dry-run")) {
      dry = 1;
    } else {
      fprintf(stderr, "hiercl tune: unexpected argument '%s'\n%s", argv[i], tune_usage);
      return HCL_EXIT_USAGE;
    }
  }
  const char *tuner = getenv("HIERCL_CLBLAST_TUNER");
  if (!tuner || !*tuner) tuner = "/usr/bin/clblast_tuner_xgemm";
  if (access(tuner, X_OK)) {
    fprintf(stderr, "hiercl: error: %s not found: apt-get install clblast-utils\n", tuner);
    return HCL_EXIT_FAIL;
  }
  char err[4096];
  hcl_ctx *ctx;
  hcl_ctx_options o = {.device = dev, .quiet = 1};
  hcl_status rc = hcl_ctx_create(&o, &ctx, err, sizeof err);
  if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", err);
    return hcl_exit_code(rc);
  }
  unsigned pi = 0, di = 0;
  char path[1200];
  hcl_blas_tuning_path(ctx, path, sizeof path);
  if (icd_indices(ctx, &pi, &di) || !*path) {
    fprintf(stderr, "hiercl: error: %s: cannot locate the device for the tuner\n", ctx->dev.id);
    hcl_ctx_destroy(ctx);
    return HCL_EXIT_FAIL;
  }
  printf("device %s (%s), OpenCL platform %u device %u\nparameters file %s\n", ctx->dev.id,
         ctx->dev.name, pi, di, path);
  double before = gflops(ctx, m, n, k), before_sq = gflops(ctx, 512, 512, 512);
  printf("before: %.1f GFLOP/s at %zux%zux%zu, %.1f at 512^3\n", before, m, n, k, before_sq);
  if (dry) {
    hcl_ctx_destroy(ctx);
    return HCL_EXIT_OK;
  }
  char dir[] = "/tmp/hiercl-tune.XXXXXX";
  if (!mkdtemp(dir)) {
    perror("hiercl: mkdtemp");
    hcl_ctx_destroy(ctx);
    return HCL_EXIT_FAIL;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    char a[6][32];
    snprintf(a[0], 32, "%u", pi), snprintf(a[1], 32, "%u", di), snprintf(a[2], 32, "%zu", m);
    snprintf(a[3], 32, "%zu", n), snprintf(a[4], 32, "%zu", k);
    if (chdir(dir) || !freopen("tuner.log", "w", stdout) || !freopen("tuner.log", "a", stderr))
      _exit(126);
    execl(tuner, tuner, "-platform", a[0], "-device", a[1], "-precision", "32", "-m", a[2], "-n",
          a[3], "-k", a[4], "-fraction", "0.01", "-runs", "2", (char *)NULL);
    _exit(127);
  }
  /* stop once stage 2 (random GEMMK=0 configurations) is written, or at the limit */
  double t0 = hcl_now();
  char stage2[1200];
  snprintf(stage2, sizeof stage2, "%s/clblast_xgemm_2_32.json", dir);
  int st = 0, done = 0;
  while (!done) {
    sleep(1);
    done = waitpid(pid, &st, WNOHANG) == pid;
    if (!done && (file_exists(stage2) || hcl_now() - t0 > minutes * 60)) {
      kill(pid, SIGTERM);
      waitpid(pid, &st, 0);
      done = 1;
    }
    if (isatty(STDERR_FILENO)) fprintf(stderr, "\r  tuning: %.0f s", hcl_now() - t0);
  }
  if (isatty(STDERR_FILENO)) fputc('\n', stderr);
  char params[1024];
  double ms;
  if (!best_of(dir, params, sizeof params, &ms)) {
    fprintf(stderr, "hiercl: error: the tuner produced no result (log: %s/tuner.log)\n", dir);
    hcl_ctx_destroy(ctx);
    return HCL_EXIT_FAIL;
  }
  if (write_params(path, params, ms, ctx, m, n, k) ||
      hcl_blas_apply_tuning_file(ctx, path) != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s: cannot write or apply: %s\n", path, hcl_errmsg(ctx));
    hcl_ctx_destroy(ctx);
    return HCL_EXIT_FAIL;
  }
  double after = gflops(ctx, m, n, k), after_sq = gflops(ctx, 512, 512, 512);
  printf("best: %s (%.3f ms)\nafter: %.1f GFLOP/s at %zux%zux%zu, %.1f at 512^3\nsaved %s\n",
         params, ms, after, m, n, k, after_sq, path);
  hcl_ctx_destroy(ctx);
  return HCL_EXIT_OK;
}
