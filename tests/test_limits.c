/* Sizes beyond what the device or host can hold fail cleanly: every device
 * allocation is counted (current, peak) and refused past the device's limits
 * with the numbers; the trainer's estimate names the key that set the size;
 * a refused run keeps its manifest; summary.json reports the peak. */
#include "hcl_test.h"
#include "trainer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The one run directory under parent (a fresh folder per test). */
static void run_dir_in(const char *parent, char *out, size_t len) {
  DIR *d = opendir(parent);
  assert_non_null(d);
  struct dirent *e;
  out[0] = 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') snprintf(out, len, "%s/%s", parent, e->d_name);
  closedir(d);
  if (!out[0]) fail_msg("no run directory under %s", parent);
}

static char *read_in(const char *dir, const char *file) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  char *s = hcl_test_read_file(p);
  if (!s) fail_msg("%s missing", p);
  return s;
}

static void size_arithmetic_overflows(void **state) {
  (void)state;
  size_t r;
  assert_true(hcl_size_mul(1u << 20, 1u << 10, &r));
  assert_int_equal(r, (size_t)1 << 30);
  assert_false(hcl_size_mul(SIZE_MAX / 2 + 1, 2, &r));
  assert_true(r == SIZE_MAX);
  assert_true(hcl_size_mul(0, SIZE_MAX, &r) && r == 0);
  assert_false(hcl_size_add(SIZE_MAX, 1, &r));
  assert_true(hcl_size_add(SIZE_MAX - 1, 1, &r) && r == SIZE_MAX);
  /* 4096 replicas x 1e7 samples x 2^40 floats does not wrap to something small */
  assert_true(hcl_size_mul3(4096, 10000000, (size_t)1 << 40) == SIZE_MAX);
  assert_true(hcl_size_mul3(3, 5, 7) == 105);
}

/* Host allocations a plugin is about to make are checked the same way. */
static void host_memory_check(void **state) {
  (void)state;
  size_t avail = hcl_host_mem_available();
  assert_true(avail > 0); /* Linux: /proc/meminfo */
  assert_int_equal(hcl_host_mem_check(NULL, avail / 4, "small"), HCL_OK);
  assert_int_equal(hcl_host_mem_check(NULL, SIZE_MAX / 2, "rhm: rule tables ([target] l)"),
                   HCL_ERR_NOMEM);
  assert_non_null(strstr(hcl_errmsg(NULL), "rhm: rule tables ([target] l)"));
  /* plugins reach both checks through the host table */
  const hcl_host_api *h = hcl_host_api_get();
  assert_true(h->struct_size >= offsetof(hcl_host_api, mem_check) + sizeof h->mem_check);
  assert_ptr_equal(h->host_mem_check, hcl_host_mem_check);
  assert_ptr_equal(h->mem_check, hcl_mem_check);
  assert_ptr_equal(h->should_stop, hcl_should_stop);
}

/* A ulimit -v (or a Slurm job's cgroup) is the host memory this process has:
 * with 2 GB of address space left, at most half of it counts (the driver
 * reserves address space later). */
static void ulimit_limits_host_memory(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long vm_kb = 0;
    while (f && fgets(line, sizeof line, f))
      if (sscanf(line, "VmSize: %llu kB", &vm_kb) == 1) break;
    if (f) fclose(f);
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)(vm_kb * 1024 + ((rlim_t)2 << 30));
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) _exit(0); /* cannot test */
    if (setrlimit(RLIMIT_AS, &rl)) _exit(0);
    size_t avail = hcl_host_mem_available();
    _exit(avail > 0 && avail <= ((size_t)1 << 30) + ((size_t)64 << 20) ? 0 : 1);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void allocations_are_counted(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  size_t c0 = hcl_mem_current(ctx);
  hcl_buf a, b;
  assert_int_equal(hcl_buf_alloc(ctx, 1000, &a), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, 24, &b), HCL_OK);
  assert_int_equal(hcl_mem_current(ctx), c0 + 1024);
  assert_true(hcl_mem_peak(ctx) >= c0 + 1024);
  hcl_buf copy = a;
  copy.size = 8; /* a plugin's copy with a smaller size still frees the whole object */
  hcl_buf_free(ctx, &copy);
  assert_int_equal(hcl_mem_current(ctx), c0 + 24);
  size_t peak = hcl_mem_peak(ctx);
  hcl_buf_free(ctx, &b);
  assert_int_equal(hcl_mem_current(ctx), c0);
  assert_int_equal(hcl_mem_peak(ctx), peak); /* the peak stays */
  /* a plugin's buffers (through the host table) count the same */
  const hcl_plugin_desc *d = hcl_test_plugin("staircase", HCL_PLUGIN_TARGET);
  const char *kv[] = {"n=64", "k=3", NULL};
  uint64_t seeds[2] = {1, 2};
  void *t = NULL;
  assert_int_equal(hcl_test_target_make(ctx, d, kv, 2, seeds, 0, 100, 64, &t), HCL_OK);
  assert_true(hcl_mem_current(ctx) > c0);
  ((const hcl_target_vt *)d->vt)->destroy(t);
  assert_int_equal(hcl_mem_current(ctx), c0);
}

static void refused_beyond_device_limits(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  size_t c0 = hcl_mem_current(ctx), budget = ctx->mem_budget;
  hcl_buf b;
  if (ctx->dev.max_alloc && ctx->dev.max_alloc < SIZE_MAX) {
    assert_int_equal(hcl_buf_alloc(ctx, (size_t)ctx->dev.max_alloc + 1, &b), HCL_ERR_NOMEM);
    assert_null(b.mem);
    assert_non_null(strstr(hcl_errmsg(ctx), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
    assert_non_null(strstr(hcl_errmsg(ctx), ctx->dev.id));
  }
  ctx->mem_budget = c0 + 1000; /* as if the device had 1000 bytes left */
  assert_int_equal(hcl_buf_alloc(ctx, 2000, &b), HCL_ERR_NOMEM);
  assert_non_null(strstr(hcl_errmsg(ctx), "2000 bytes"));
  assert_int_equal(hcl_mem_current(ctx), c0);
  assert_int_equal(hcl_buf_alloc(ctx, 600, &b), HCL_OK);
  hcl_buf b2;
  assert_int_equal(hcl_buf_alloc(ctx, 600, &b2), HCL_ERR_NOMEM); /* 1200 in all */
  hcl_buf_free(ctx, &b);
  assert_int_equal(hcl_buf_alloc(ctx, 600, &b2), HCL_OK); /* freed bytes are free again */
  hcl_buf_free(ctx, &b2);
  ctx->mem_budget = budget;
}

/* The trainer's estimate names the key that made the dominant term large. */
static void preflight_names_the_key(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  size_t budget = ctx->mem_budget;
  uint64_t seeds[1] = {0};
  hcl_train_cfg c = {.replicas = 1, .seeds = seeds, .batch = 20, .eval_batch = 10000000};
  hcl_target_info ti = {.struct_size = sizeof ti, .x = {1, {1048576}}, .y_dim = 1};
  assert_int_equal(hcl_trainer_preflight(ctx, &c, &ti, 0, 0), HCL_ERR_NOMEM);
  assert_non_null(strstr(hcl_errmsg(ctx), "[eval] batch = 10000000"));
  ctx->mem_budget = hcl_mem_current(ctx) + ((size_t)64 << 20); /* 64 MiB left */
  c.eval_batch = 20;
  ti.x.dims[0] = 100;
  c.train_size = 100000000; /* 100e6 x 101 floats: 40 GB, larger than any cache */
  assert_int_equal(hcl_trainer_preflight(ctx, &c, &ti, 10, 1), HCL_OK); /* regenerated per batch */
  c.train_size = 1000000;                                               /* 404 MB of cache */
  assert_int_equal(hcl_trainer_preflight(ctx, &c, &ti, 10, 1), HCL_ERR_NOMEM);
  assert_non_null(strstr(hcl_errmsg(ctx), "[train] train_size = 1000000"));
  c.train_size = 0;
  assert_int_equal(hcl_trainer_preflight(ctx, &c, &ti, 20000000, 1), HCL_ERR_NOMEM);
  assert_non_null(strstr(hcl_errmsg(ctx), "[model] parameters: 20000000"));
  assert_int_equal(hcl_trainer_preflight(ctx, &c, &ti, 1000, 1), HCL_OK);
  ctx->mem_budget = budget;
}

static char out[65536];

static const char *tiny_sets = "--set train.steps=2 --set eval.test_size=64 --set "
                               "target.probe_samples=64 --quiet --device cpu";

/* A size the device cannot hold: exit 1, the key in the error, the run
 * directory's manifest says failed (before: the OOM killer or PoCL's abort,
 * no manifest). */
static void cli_refusal_keeps_manifest(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char parent[600], cmd[2048], dir[1200];
  snprintf(parent, sizeof parent, "%s/refused", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "%s run %s/quickstart.ini --out %s %s --set target.n=1048576 --set eval.test_size=20000",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS, parent, tiny_sets);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 1);
  assert_non_null(strstr(out, "[eval] batch = 20000"));
  run_dir_in(parent, dir, sizeof dir);
  char *man = read_in(dir, "manifest.json"), *sum = read_in(dir, "summary.json");
  assert_non_null(strstr(man, "\"status\":\"failed\""));
  assert_non_null(strstr(man, "[eval] batch = 20000"));
  assert_non_null(strstr(sum, "\"status\":\"failed\""));
  free(man), free(sum);
}

/* A budget smaller than the model's buffers: a plugin's allocation is
 * refused, the run fails with a manifest and the peak stays under it. */
static void cli_budget_refuses_plugin_buffers(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char parent[600], cmd[2048], dir[1200];
  snprintf(parent, sizeof parent, "%s/budget", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd, "HIERCL_DEVICE_MEM_LIMIT=20000 %s run %s/quickstart.ini --out %s %s",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS, parent, tiny_sets);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 1);
  assert_non_null(strstr(out, "HIERCL_DEVICE_MEM_LIMIT = 20000"));
  run_dir_in(parent, dir, sizeof dir);
  char *man = read_in(dir, "manifest.json"), *sum = read_in(dir, "summary.json");
  assert_non_null(strstr(man, "\"status\":\"failed\""));
  double peak = -1;
  assert_true(hcl_test_json_num(sum, "peak_device_bytes", &peak));
  assert_true(peak >= 0 && peak <= 20000);
  free(man), free(sum);
}

/* A model's activations are checked as a whole: the error names its keys. */
static void cli_model_names_depth(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char parent[600], cmd[2048];
  snprintf(parent, sizeof parent, "%s/depth", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd,
           "HIERCL_DEVICE_MEM_LIMIT=500000 %s run %s/quickstart.ini --out %s %s --set "
           "model.depth=64",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS, parent, tiny_sets);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 1);
  assert_non_null(strstr(out, "[model] depth = 64 x width = 40"));
}

/* A completed run reports the device memory it held at most. */
static void cli_summary_reports_peak(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char parent[600], cmd[2048], dir[1200];
  snprintf(parent, sizeof parent, "%s/peak", hcl_test_tmpdir());
  snprintf(cmd, sizeof cmd, "%s run %s/quickstart.ini --out %s %s", HCL_TEST_HIERCL,
           HCL_TEST_CONFIGS, parent, tiny_sets);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  run_dir_in(parent, dir, sizeof dir);
  char *sum = read_in(dir, "summary.json");
  double peak = 0;
  assert_true(hcl_test_json_num(sum, "peak_device_bytes", &peak));
  /* at least the parameters, gradient and momentum: 3 x n_params floats */
  char *man = read_in(dir, "manifest.json");
  double np = 0;
  assert_true(hcl_test_json_num(man, "params_per_replica", &np));
  assert_true(np > 0 && peak >= 3 * 4 * np);
  free(sum), free(man);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(size_arithmetic_overflows),
      cmocka_unit_test(host_memory_check),
      cmocka_unit_test(ulimit_limits_host_memory),
      cmocka_unit_test(allocations_are_counted),
      cmocka_unit_test(refused_beyond_device_limits),
      cmocka_unit_test(preflight_names_the_key),
      cmocka_unit_test(cli_refusal_keeps_manifest),
      cmocka_unit_test(cli_budget_refuses_plugin_buffers),
      cmocka_unit_test(cli_model_names_depth),
      cmocka_unit_test(cli_summary_reports_peak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
