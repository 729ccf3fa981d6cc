/* The sweep engine, through the built command: the runs of a sweep share one
 * context per device (programs compiled once) and give the numbers of
 * separate `hiercl run`s; `--device all` (or a list) trains on every
 * selected device at once and, on one device, is that device, as do a
 * device's parts (`--device cpu/2`); the progress
 * names each finished point. */
#include "hcl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[1 << 17];

#define sh(...) hcl_test_shf(out, sizeof out, __VA_ARGS__)

static int count(const char *text, const char *pat) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, pat)); p++) n++;
  return n;
}

static const char *device(void) {
  const char *d = getenv("HIERCL_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

/* three widths, one run each; train sizes batched as replicas */
static const char cfg_text[] = "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 100\n"
                               "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                               "[train]\nsteps = 200\nbatch = 16\nlr = 0.05\n"
                               "[eval]\nevery = 100\ntest_size = 300\n"
                               "[sweep]\ntrain.train_size = 8, 2000\nmodel.width = 8, 12, 16\n"
                               "threshold = 0.2\n";

/* The sweep directory under parent (its one sweep_* entry), into dir. */
static void sweep_dir(const char *parent, char *dir, size_t len) {
  assert_int_equal(sh("ls -d %s/sweep_*", parent), 0);
  snprintf(dir, len, "%.*s", (int)strcspn(out, "\n"), out);
}

/* sweep.jsonl (or another file) of the sweep under parent, with each
 * record's run directory and device taken out: what must not depend on
 * where or when a run trained. */
static char *records(const char *parent, const char *file, int strip) {
  char dir[1200], path[1400];
  sweep_dir(parent, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/%s", dir, file);
  char *t = hcl_test_read_file(path);
  assert_non_null(t);
  if (strip) hcl_test_strip_where(t);
  return t;
}

/* The records, table and P* of the sweeps under parents a and b are the
 * same, run directories and devices aside. */
static void same_records(const char *a, const char *b) {
  static const char *const files[] = {"sweep.jsonl", "table.tsv", "pstar.json"};
  for (int f = 0; f < 3; f++) {
    char *x = records(a, files[f], 1), *y = records(b, files[f], 1);
    assert_string_equal(x, y);
    free(x), free(y);
  }
}

/* The context (and its compiled programs) serves every run of the sweep,
 * and every replica's metrics are those of a separate `hiercl run` of its
 * point, which makes its own context: sharing changes no number. The log
 * has one line per finished point. */
static void shared_context_same_numbers(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp("se.ini", cfg_text);
  char parent[1024];
  snprintf(parent, sizeof parent, "%s/one", hcl_test_tmpdir());
  if (sh("%s sweep %s --out %s --device %s --plugin-path %s", HCL_TEST_HIERCL, cfg, parent,
         device(), HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "3 runs on the device in 1 context: "));
  assert_true(count(out, " compilations spared") == 1);
  assert_null(strstr(out, ": 0 compilations spared"));
  /* progress: each point once, as it finishes, then the runs' count */
  assert_int_equal(count(out, "hiercl sweep: point train.train_size=8;model.width=12: completed"),
                   1);
  assert_int_equal(count(out, ": completed on "), 6);
  assert_non_null(strstr(out, "3/3 runs done (6/6 points)"));
  char *rec = records(parent, "sweep.jsonl", 0);
  static const char *const widths[] = {"8", "12", "16"};
  for (int w = 0; w < 3; w++) {
    char rp[1200];
    snprintf(rp, sizeof rp, "%s/run%d", hcl_test_tmpdir(), w);
    if (sh("%s run %s --out %s --device %s --plugin-path %s --set model.width=%s --set "
           "train.train_sizes='8, 2000' --set 'run.seeds=0, 0' 2>/dev/null | tail -n 1",
           HCL_TEST_HIERCL, cfg, rp, device(), HCL_TEST_PLUGIN_DIR, widths[w]))
      HCL_FAIL_OUT(out, "the command failed (output above)");
    char sum_path[1400];
    snprintf(sum_path, sizeof sum_path, "%.*s/summary.json", (int)strcspn(out, "\n"), out);
    char *sum = hcl_test_read_file(sum_path);
    assert_non_null(sum);
    for (int r = 0; r < 2; r++) {
      char pat[64];
      snprintf(pat, sizeof pat, "{\"replica\":%d,", r);
      const char *obj = strstr(sum, pat);
      assert_non_null(obj);
      const char *m = strstr(obj, "\"best_test_loss\""), *end = strchr(obj, '}');
      assert_true(m && end && m < end);
      char want[4096], key[256];
      snprintf(want, sizeof want, ",%.*s}\n", (int)(end - m), m);
      snprintf(key, sizeof key, "\"key\":\"train.train_size=%s;model.width=%s\"", r ? "2000" : "8",
               widths[w]);
      const char *line = strstr(rec, key);
      assert_non_null(line);
      const char *nl = strchr(line, '\n');
      const char *hit = strstr(line, want);
      if (!hit || hit > nl)
        fail_msg("width %s replica %d: sweep record %.*s lacks %s", widths[w], r, (int)(nl - line),
                 line, want);
    }
    free(sum);
  }
  free(rec);
}

/* --device all on a machine with one device (or a list naming one device
 * twice, where there are more) trains like that device: the same records,
 * table and P*, each record naming the device. */
static void device_all_is_that_device(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  hcl_device_info *devs = NULL;
  size_t nd = 0;
  char err[1024];
  assert_int_equal(hcl_devices_list(&devs, &nd, err, sizeof err), HCL_OK);
  free(devs);
  char sel[256];
  if (nd == 1)
    snprintf(sel, sizeof sel, "all");
  else
    snprintf(sel, sizeof sel, "'%s, %s'", ctx->dev.id, ctx->dev.id);
  const char *cfg = hcl_test_write_temp("sa.ini", cfg_text);
  char one[1024], all[1024];
  snprintf(one, sizeof one, "%s/dev_one", hcl_test_tmpdir());
  snprintf(all, sizeof all, "%s/dev_all", hcl_test_tmpdir());
  if (sh("%s sweep %s --out %s --device %s --plugin-path %s", HCL_TEST_HIERCL, cfg, one,
         ctx->dev.id, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  if (sh("%s sweep %s --out %s --device %s --plugin-path %s", HCL_TEST_HIERCL, cfg, all, sel,
         HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  char *raw = records(all, "sweep.jsonl", 0);
  char want[160];
  snprintf(want, sizeof want, "\"device\":\"%s\"", ctx->dev.id);
  assert_int_equal(count(raw, want), 6);
  free(raw);
  same_records(one, all);
  assert_int_equal(sh("%s sweep %s --out %s --device 'cpu,' --plugin-path %s", HCL_TEST_HIERCL, cfg,
                      all, HCL_TEST_PLUGIN_DIR),
                   3);
  assert_non_null(strstr(out, "--device 'cpu,': empty selector in the list"));
}

/* Two PoCL devices (POCL_DEVICES="pthread pthread"): one worker thread each
 * pulling runs from one queue; the records, once in grid order, the table
 * and P* are those of one device. */
static void two_devices_one_queue(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  if (!strstr(ctx->dev.platform, "Portable Computing Language")) {
    print_message("skipped: two devices are made with PoCL (POCL_DEVICES); device is %s\n",
                  ctx->dev.platform);
    skip();
  }
  const char *cfg = hcl_test_write_temp("s2.ini", cfg_text);
  char one[1024], two[1024];
  snprintf(one, sizeof one, "%s/q_one", hcl_test_tmpdir());
  snprintf(two, sizeof two, "%s/q_two", hcl_test_tmpdir());
  if (sh("POCL_DEVICES='pthread pthread' %s sweep %s --out %s --device all --plugin-path %s "
         "--grid 'model.width=8, 12, 16, 20' --grid 'model.depth=3, 2'",
         HCL_TEST_HIERCL, cfg, two, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  /* both devices drew runs from the one queue (the log says who ran what) */
  if (!strstr(out, " on pocl:cpu:1")) HCL_FAIL_OUT(out, "pocl:cpu:1 trained no point");
  /* the same 8 runs on one device */
  if (sh("POCL_DEVICES='pthread' %s sweep %s --out %s --device pocl:cpu:0 --plugin-path %s "
         "--grid 'model.width=8, 12, 16, 20' --grid 'model.depth=3, 2'",
         HCL_TEST_HIERCL, cfg, one, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  char dir[1200];
  sweep_dir(one, dir, sizeof dir);
  char *raw = records(two, "sweep.jsonl", 0);
  assert_int_equal(
      count(raw, "\"device\":\"pocl:cpu:0\"") + count(raw, "\"device\":\"pocl:cpu:1\""), 16);
  free(raw);
  static const char *const files[] = {"sweep.jsonl", "table.tsv", "pstar.json"};
  for (int f = 0; f < 3; f++) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, files[f]);
    char *a = hcl_test_read_file(path);
    assert_non_null(a);
    for (char *p; f == 0 && (p = strstr(a, ",\"run_dir\":\""));) {
      char *end = strchr(p + 12, '"');
      memmove(p, end + 1, strlen(end + 1) + 1);
    }
    for (char *p; f == 0 && (p = strstr(a, ",\"device\":\""));) {
      char *end = strchr(p + 11, '"');
      memmove(p, end + 1, strlen(end + 1) + 1);
    }
    char *b = records(two, files[f], 1);
    assert_string_equal(a, b);
    free(a), free(b);
  }
}

/* --device SEL/2 (the device split in two parts, one worker each) trains
 * like the whole device: every record names a part, and the records, table
 * and P* are those of the whole device. A malformed part is refused. */
static void device_parts_one_queue(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  if (!(ctx->dev.type & CL_DEVICE_TYPE_CPU) || ctx->dev.compute_units < 2 ||
      ctx->dev.compute_units % 2) {
    print_message("skipped: parts are made of a CPU device with an even number of units\n");
    skip();
  }
  const char *cfg = hcl_test_write_temp("sp.ini", cfg_text);
  char one[1024], parts[1024];
  snprintf(one, sizeof one, "%s/p_one", hcl_test_tmpdir());
  snprintf(parts, sizeof parts, "%s/p_parts", hcl_test_tmpdir());
  if (sh("%s sweep %s --out %s --device %s --plugin-path %s --grid 'model.width=8, 12, 16, 20'",
         HCL_TEST_HIERCL, cfg, one, ctx->dev.id, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  if (sh("%s sweep %s --out %s --device %s/2 --plugin-path %s --grid 'model.width=8, 12, 16, 20'",
         HCL_TEST_HIERCL, cfg, parts, ctx->dev.id, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_null(strstr(out, "will idle")); /* 4 runs for 2 parts */
  char *raw = records(parts, "sweep.jsonl", 0), p0[160], p1[160];
  snprintf(p0, sizeof p0, "\"device\":\"%s/2.0\"", ctx->dev.id);
  snprintf(p1, sizeof p1, "\"device\":\"%s/2.1\"", ctx->dev.id);
  assert_int_equal(count(raw, p0) + count(raw, p1), 8);
  free(raw);
  same_records(one, parts);
  /* one run for two parts: said, and the run still trains */
  char lone[1024];
  snprintf(lone, sizeof lone, "%s/p_lone", hcl_test_tmpdir());
  if (sh("%s sweep %s --out %s --device %s/2 --plugin-path %s --grid 'model.width=8'",
         HCL_TEST_HIERCL, cfg, lone, ctx->dev.id, HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  if (!strstr(out, "1 run for 2 device parts: 1 part will idle"))
    HCL_FAIL_OUT(out, "no note of the idle part");
  assert_int_equal(sh("%s sweep %s --out %s --device cpu/2.x --plugin-path %s", HCL_TEST_HIERCL,
                      cfg, parts, HCL_TEST_PLUGIN_DIR),
                   3);
  assert_non_null(strstr(out, "'cpu/2.x' is not SEL/N (N parts of SEL) or SEL/N.I (part I)"));
}

/* On a terminal the progress is one line redrawn in place (carriage return,
 * erase) with points done / total and an ETA; the per-point lines are for
 * logs only. The terminal is made with script(1). */
static void terminal_progress_one_line(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  if (sh("command -v script")) {
    print_message("skipped: script(1) (util-linux) is not installed to make a terminal\n");
    skip();
  }
  const char *cfg = hcl_test_write_temp("tty.ini", cfg_text);
  char parent[1024];
  snprintf(parent, sizeof parent, "%s/tty", hcl_test_tmpdir());
  if (sh("script -qec \"%s sweep %s --out %s --device %s --plugin-path %s\" /dev/null",
         HCL_TEST_HIERCL, cfg, parent, device(), HCL_TEST_PLUGIN_DIR))
    HCL_FAIL_OUT(out, "the command failed (output above)");
  assert_non_null(strstr(out, "\r\033[Khiercl sweep: 2/6 points done (1/3 runs), "));
  assert_non_null(strstr(out, "\r\033[Khiercl sweep: 6/6 points done (3/3 runs), "));
  assert_non_null(strstr(out, ", ETA "));
  assert_null(strstr(out, ": completed on ")); /* the log's lines stay out */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(shared_context_same_numbers), cmocka_unit_test(device_all_is_that_device),
      cmocka_unit_test(two_devices_one_queue),       cmocka_unit_test(device_parts_one_queue),
      cmocka_unit_test(terminal_progress_one_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
