/* The plugin SDK of include/hiercl/plugin.h (views, struct-size checks,
 * enum parameters as indices, per-sample launches) and the runtime's side of it: a plugin's
 * error carries its name once. */
#include "hcl_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[65536];

static void views_stride_over_replicas(void **state) {
  (void)state;
  hcl_buf b = {NULL, 8, 4000};
  hcl_buf v = hcl_view(b, 3, 5);
  assert_int_equal(v.offset, 8 + 3 * sizeof(float));
  assert_int_equal(v.size, 5 * sizeof(float));
  /* block at 10, 4 floats, in each of R = 3 replicas of 100 floats: 2 * 100 + 4 */
  hcl_buf p = hcl_pview(b, 3, 100, 10, 4);
  assert_int_equal(p.offset, 8 + 10 * sizeof(float));
  assert_int_equal(p.size, 204 * sizeof(float));
  hcl_shape s = {.rank = 2, .dims = {3, 7}};
  assert_int_equal(hcl_shape_size(&s), 21);
}

static void struct_has_reads_the_size(void **state) {
  (void)state;
  hcl_host_api h;
  memset(&h, 0, sizeof h);
  h.struct_size = (uint32_t)offsetof(hcl_host_api, should_stop); /* an older runtime */
  assert_true(HCL_STRUCT_HAS(&h, hcl_host_api, rng_draw));
  assert_false(HCL_STRUCT_HAS(&h, hcl_host_api, should_stop));
  h.struct_size = sizeof h;
  assert_true(HCL_STRUCT_HAS(&h, hcl_host_api, mem_check));
}

static void enum_values_come_back_as_indices(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const hcl_plugin_desc *d = hcl_test_plugin("regular_net", HCL_PLUGIN_MODEL);
  const char *kv[] = {"activation=tanh", "readout=all", NULL};
  hcl_params *p = hcl_test_params(d, "model", kv);
  static const char *const acts[] = {"relu", "leaky_relu", "quadratic", "tanh", "identity", NULL};
  static const char *const readouts[] = {"last", "all", NULL};
  static const char *const other[] = {"x", "y", NULL};
  const hcl_host_api *host = hcl_host_api_get();
  assert_int_equal(hcl_param_choice(host, p, "activation", acts), 3);
  assert_int_equal(hcl_param_choice(host, p, "readout", readouts), 1);
  assert_int_equal(hcl_param_choice(host, p, "init", other), -1);
  hcl_test_params_free(p);
}

/* hcl_run_samples through a host table that records each launch. */
const hcl_host_api *hcl_host;
typedef struct {
  size_t items, lws;
  cl_ulong s0, row0, i0;
} launch_rec;
static launch_rec recs[64];
static int nrec;

static hcl_status record_launch(hcl_ctx *ctx, cl_kernel k, cl_uint dims, const size_t *gws,
                                const size_t *lws, const char *label, size_t nargs,
                                const hcl_arg *args) {
  (void)ctx, (void)k, (void)label;
  assert_int_equal(dims, 3);
  assert_int_equal(nargs, 4);
  assert_int_equal(gws[1], 3);                      /* gy */
  assert_int_equal(gws[2], 2);                      /* R */
  assert_int_equal(*(const int *)args[2].value, 7); /* not a slot: passed as given */
  assert_true(nrec < 64);
  recs[nrec++] = (launch_rec){gws[0], lws[0], *(const cl_ulong *)args[1].value,
                              *(const cl_ulong *)args[3].value, *(const cl_ulong *)args[0].value};
  return HCL_OK;
}

static hcl_status record_fail(hcl_ctx *ctx, hcl_status rc, const char *fmt, ...) {
  (void)ctx, (void)fmt;
  return rc;
}

/* Every requested sample is launched once, at its stream position (first +
 * row, modulo wrap), in whole groups of 64 or at local size 1 with fewer
 * than 64 items; slots outside the arguments are refused. */
static void run_samples_launches_each_sample_once(void **state) {
  (void)state;
  hcl_host_api h;
  memset(&h, 0, sizeof h);
  h.struct_size = sizeof h, h.run_kernel = record_launch, h.fail = record_fail;
  hcl_host = &h;
  int seven = 7;
  hcl_arg args[4] = {{0}, {0}, HCL_ARG(seven), {0}};
  hcl_sample_slots at = {1, 3, 0}; /* s0, row0, i0 */
  static const struct {
    uint64_t first, wrap;
    size_t count;
  } cases[] = {{0, 0, 200},   {5, 0, 64},     {0, 0, 63},  {250, 300, 130},
               {299, 300, 1}, {10, 100, 450}, {7, 64, 64}, {0, 0, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    uint64_t first = cases[c].first, wrap = cases[c].wrap;
    size_t count = cases[c].count;
    unsigned char seen[512] = {0};
    nrec = 0;
    assert_int_equal(hcl_run_samples(NULL, NULL, "t", first, wrap, count, 3, 2, args, 4, at),
                     HCL_OK);
    for (int i = 0; i < nrec; i++) {
      launch_rec r = recs[i];
      assert_true(r.lws == 64 ? r.items % 64 == 0 : r.lws == 1 && r.items < 64);
      for (cl_ulong j = 0; j < r.items; j++) {
        cl_ulong row = r.row0 + r.i0 + j, pos = r.s0 + r.i0 + j;
        assert_true(row < count);
        assert_false(seen[row]);
        seen[row] = 1;
        assert_int_equal(pos, wrap ? (first + row) % wrap : first + row);
      }
    }
    for (size_t row = 0; row < count; row++) assert_true(seen[row]);
  }
  nrec = 0;
  assert_int_equal(
      hcl_run_samples(NULL, NULL, "t", 0, 0, 10, 3, 2, args, 4, (hcl_sample_slots){1, 3, 4}),
      HCL_ERR_PARAM);
  assert_int_equal(nrec, 0);
  hcl_host = NULL;
}

/* A plugin that still writes "regular_net: ..." gets "[model] regular_net:"
 * once (it was "[model] regular_net: regular_net: ..."). */
static void plugin_name_appears_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "HIERCL_DEVICE_MEM_LIMIT=30000000 %s run %s/staircase_regular_scd.ini --device cpu "
           "--set model.width=4000 --set train.steps=1 --out %s",
           HCL_TEST_HIERCL, HCL_TEST_CONFIGS, hcl_test_tmpdir());
  assert_int_not_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  const char *at = strstr(out, "[model] regular_net: ");
  assert_non_null(at);
  assert_null(strstr(at + strlen("[model] regular_net: "), "regular_net: "));
  assert_non_null(strstr(out, "activations of [model]"));
}

/* A target written as one sampling kernel (tests/fixtures/plugins/
 * kernel_target.c, HCL_KERNEL_TARGET_VT): its samples follow (seed, stream,
 * index) only, whatever the batch split, the training stream wraps at the
 * set's size, and the labels are what the kernel says, checked in float64. */
static void kernel_target_samples_by_index(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/sdk", HCL_TEST_FIXTURE_PLUGINS);
  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, dir, &reg), HCL_OK);
  const hcl_plugin *pl = hcl_registry_find(&reg, "kernel_target", HCL_PLUGIN_TARGET);
  assert_non_null(pl);
  const char *kv[] = {"d=5", "scale=2", NULL};
  hcl_params *p = hcl_test_params(pl->desc, "target", kv);
  const uint64_t seeds[2] = {3, 4};
  hcl_setup setup = {.struct_size = sizeof setup,
                     .replicas = 2,
                     .seeds = seeds,
                     .params = p,
                     .train_size = 5,
                     .test_size = 100,
                     .max_batch = 8};
  const hcl_target_vt *vt = pl->desc->vt;
  void *t = NULL;
  assert_int_equal(vt->create(ctx, &setup, &t), HCL_OK);
  hcl_target_info info = {.struct_size = sizeof info};
  assert_int_equal(vt->info(t, &info), HCL_OK);
  assert_int_equal(info.x.rank, 1);
  assert_int_equal(info.x.dims[0], 5);
  assert_int_equal(info.y_dim, 1);
  assert_int_equal(info.task, HCL_TASK_REGRESSION);
  hcl_buf x, y;
  assert_int_equal(hcl_buf_alloc(ctx, 2 * 8 * 5 * sizeof(float), &x), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, 2 * 8 * sizeof(float), &y), HCL_OK);
  float xa[2][7][5], ya[2][7], xb[2][4][5], yb[2][4];
  /* test stream: samples 0..6, then 3..6 alone */
  assert_int_equal(vt->sample(t, HCL_STREAM_TEST, 0, 7, x, y), HCL_OK);
  assert_int_equal(hcl_buf_read(ctx, x, xa, sizeof xa), HCL_OK);
  assert_int_equal(hcl_buf_read(ctx, y, ya, sizeof ya), HCL_OK);
  assert_int_equal(vt->sample(t, HCL_STREAM_TEST, 3, 4, x, y), HCL_OK);
  assert_int_equal(hcl_buf_read(ctx, x, xb, sizeof xb), HCL_OK);
  assert_int_equal(hcl_buf_read(ctx, y, yb, sizeof yb), HCL_OK);
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < 4; i++) {
      assert_memory_equal(xb[r][i], xa[r][3 + i], sizeof xb[r][i]);
      assert_memory_equal(&yb[r][i], &ya[r][3 + i], sizeof(float));
    }
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < 7; i++) {
      double sum = 0;
      for (int j = 0; j < 5; j++) sum += xa[r][i][j];
      assert_true(fabs(ya[r][i] - 2.0 * sum / sqrt(5.0)) < 1e-5 * (1 + fabs(sum)));
    }
  assert_memory_not_equal(xa[0], xa[1], sizeof xa[0]); /* replicas follow their seeds */
  /* training stream of 5 samples: 3..6 are samples 3, 4, 0, 1 */
  assert_int_equal(vt->sample(t, HCL_STREAM_TRAIN, 0, 5, x, y), HCL_OK);
  assert_int_equal(hcl_buf_read(ctx, x, xa, 2 * 5 * 5 * sizeof(float)), HCL_OK);
  float xt[2][5][5];
  memcpy(xt, xa, sizeof xt); /* rows of the [2, 5, 5] read */
  assert_int_equal(vt->sample(t, HCL_STREAM_TRAIN, 3, 4, x, y), HCL_OK);
  assert_int_equal(hcl_buf_read(ctx, x, xb, sizeof xb), HCL_OK);
  const int want[4] = {3, 4, 0, 1};
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < 4; i++) assert_memory_equal(xb[r][i], xt[r][want[i]], sizeof xb[r][i]);
  vt->destroy(t);
  hcl_buf_free(ctx, &x);
  hcl_buf_free(ctx, &y);
  hcl_test_params_free(p);
  hcl_registry_free(&reg);
}

/* The same target through the command: a bad d is refused before a device
 * is opened, naming the key; a network trains on it. */
static void kernel_target_runs(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *ini = hcl_test_write_temp(
      "kt.ini", "[target]\nplugin = kernel_target\nd = 5\nscale = 2\nlink = sign\n"
                "[model]\nplugin = regular_net\nwidth = 16\ndepth = 1\n"
                "[train]\nsteps = 100\nbatch = 16\nlr = 0.05\n[eval]\ntest_size = 64\n");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s run %s --plugin-path %s/sdk --device cpu --out %s -q",
           HCL_TEST_HIERCL, ini, HCL_TEST_FIXTURE_PLUGINS, hcl_test_tmpdir());
  int rc = hcl_test_sh(cmd, out, sizeof out);
  if (rc) HCL_FAIL_OUT(out, "exit %d (output above)", rc);
  snprintf(cmd, sizeof cmd, "%s sample %s --plugin-path %s/sdk --n 3 --set target.d=0",
           HCL_TEST_HIERCL, ini, HCL_TEST_FIXTURE_PLUGINS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2);
  assert_non_null(strstr(out, "[target] d"));
  snprintf(cmd, sizeof cmd, "%s sample %s --plugin-path %s/sdk --n 3 --device cpu", HCL_TEST_HIERCL,
           ini, HCL_TEST_FIXTURE_PLUGINS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, ",2\n") ? strstr(out, ",2\n")
                                      : strstr(out, ",-2\n")); /* sign x scale */
}

/* Count of non-overlapping occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + strlen(needle), needle)) n++;
  return n;
}

/* Environment variables are HIERCL_*; an old HCL_* name still works, with
 * one deprecation line per process however often it is read. */
static void old_environment_names_warn_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  char cmd[2048];
  const char *run = "%s %s sample %s/quickstart.ini --n 2 --device cpu";
  snprintf(cmd, sizeof cmd, run, "HIERCL_LOG=error", HCL_TEST_HIERCL, HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_null(strstr(out, "hiercl: note:")); /* the level applies */
  assert_null(strstr(out, "deprecated"));
  snprintf(cmd, sizeof cmd, run, "HCL_LOG=error", HCL_TEST_HIERCL, HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_null(strstr(out, "hiercl: note:")); /* the old name still sets it */
  assert_int_equal(count(out, "HCL_LOG is deprecated; set HIERCL_LOG instead"), 1);
  snprintf(cmd, sizeof cmd, run, "HCL_LOG=error HIERCL_LOG=info", HCL_TEST_HIERCL,
           HCL_TEST_CONFIGS);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "hiercl: note:")); /* the new name wins, silently */
  assert_null(strstr(out, "deprecated"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(views_stride_over_replicas),
      cmocka_unit_test(run_samples_launches_each_sample_once),
      cmocka_unit_test(struct_has_reads_the_size),
      cmocka_unit_test(enum_values_come_back_as_indices),
      cmocka_unit_test(plugin_name_appears_once),
      cmocka_unit_test(old_environment_names_warn_once),
      cmocka_unit_test(kernel_target_samples_by_index),
      cmocka_unit_test(kernel_target_runs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
