/* Sweeps: value lists, P* interpolation, a small grid end to end with seeds
 * as replicas, and resuming. */
#include "hcl_test.h"
#include "sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_values(const char *text, const char *const *want, size_t n) {
  char **v;
  size_t k;
  if (hcl_sweep_parse_values("train.x", text, &v, &k) != HCL_OK) fail_msg("%s", hcl_errmsg(NULL));
  assert_int_equal(k, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(v[i], want[i]);
    free(v[i]);
  }
  free(v);
}

static void value_lists(void **state) {
  (void)state;
  expect_values("100, 1000 ,1e4", (const char *const[]){"100", "1000", "1e4"}, 3);
  expect_values("0..3", (const char *const[]){"0", "1", "2", "3"}, 4);
  expect_values("geom(10, 1000, 3)", (const char *const[]){"10", "100", "1000"}, 3);
  expect_values("geom(0.1, 0.4, 3)", (const char *const[]){"0.1", "0.2", "0.4"}, 3);
  char **v;
  size_t k;
  assert_int_equal(hcl_sweep_parse_values("train.x", "3..1", &v, &k), HCL_ERR_CONFIG);
  assert_int_equal(hcl_sweep_parse_values("train.x", "1,,2", &v, &k), HCL_ERR_CONFIG);
  assert_int_equal(hcl_sweep_parse_values("train.x", "geom(0, 10, 3)", &v, &k), HCL_ERR_CONFIG);
}

static void pstar_interpolation(void **state) {
  (void)state;
  double P[] = {100, 1000, 10000}, e[] = {0.5, 0.3, 0.01}, ps, lo, hi;
  /* threshold 0.155 is halfway (linearly in error) between 0.3 and 0.01: P* = sqrt(1000*10000) */
  hcl_sweep_pstar(P, e, 3, 0.155, &ps, &lo, &hi);
  assert_float_equal(ps, sqrt(1000.0 * 10000.0), 1e-6);
  assert_float_equal(lo, 1000, 0);
  assert_float_equal(hi, 10000, 0);
  hcl_sweep_pstar(P, e, 3, 0.3, &ps, &lo, &hi); /* exactly at a point */
  assert_float_equal(ps, 1000, 1e-9);
  hcl_sweep_pstar(P, e, 3, 0.001, &ps, &lo, &hi); /* never reached */
  assert_true(isnan(ps));
  assert_float_equal(lo, 10000, 0);
  hcl_sweep_pstar(P, e, 3, 0.9, &ps, &lo, &hi); /* already below at the smallest P */
  assert_true(isnan(ps));
  assert_float_equal(hi, 100, 0);
}

/* What a resumed sweep keeps of sweep.jsonl: whole records only (a line cut
 * by a full disk, a line that is not a record, and a "completed" record
 * without its metrics are dropped from the end). */
static void whole_prefix(void **state) {
  (void)state;
  const char *rec = "{\"point\":{\"a\":\"1\"},\"key\":\"a=1\",\"seed\":0,\"status\":"
                    "\"completed\",\"run_dir\":\"r\",\"best_test_loss\":0.5,\"test_loss\":0.5}\n";
  const char *failed = "{\"point\":{\"a\":\"2\"},\"key\":\"a=2\",\"seed\":0,\"status\":"
                       "\"failed\",\"run_dir\":\"r\",\"error\":\"disk full\"}\n";
  const char *no_metrics = "{\"point\":{\"a\":\"2\"},\"key\":\"a=2\",\"seed\":1,\"status\":"
                           "\"completed\",\"run_dir\":\"r\"}\n";
  char t[2048];
  size_t n1 = strlen(rec), n2 = strlen(failed);
  snprintf(t, sizeof t, "%s%s", rec, failed); /* all whole */
  assert_int_equal(hcl_sweep_whole_prefix(t, strlen(t)), n1 + n2);
  snprintf(t, sizeof t, "%s%.40s", rec, failed); /* torn: cut at the last newline */
  assert_int_equal(hcl_sweep_whole_prefix(t, strlen(t)), n1);
  snprintf(t, sizeof t, "%s%s", rec, no_metrics); /* "completed" without numbers */
  assert_int_equal(hcl_sweep_whole_prefix(t, strlen(t)), n1);
  snprintf(t, sizeof t, "%s{\"point\":{}}\n\n%.30s", rec, rec); /* junk lines and a torn one */
  assert_int_equal(hcl_sweep_whole_prefix(t, strlen(t)), n1);
  assert_int_equal(hcl_sweep_whole_prefix("", 0), 0);
  assert_int_equal(hcl_sweep_whole_prefix("{\"point\":{", 10), 0);
}

static int count(const char *text, const char *pat) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, pat)); p++) n++;
  return n;
}

/* A sweep of cfg on the CPU into this program's temporary folder. */
static hcl_sweep_options sweep_options(const char *cfg) {
  hcl_sweep_options o;
  memset(&o, 0, sizeof o);
  o.run.config_path = cfg;
  o.run.device = "cpu";
  o.run.out_dir = hcl_test_tmpdir();
  o.run.plugin_path = HCL_TEST_PLUGIN_DIR;
  return o;
}

static void grid_end_to_end_and_resume(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp(
      "sw.ini", "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 200\n"
                "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                "[train]\nsteps = 600\nbatch = 16\nlr = 0.05\n"
                "[eval]\nevery = 300\ntest_size = 500\n"
                "[sweep]\ntrain.train_size = 8, 2000\nrun.seed = 0..1\nthreshold = 0.2\n");
  hcl_sweep_options o = sweep_options(cfg);
  char err[4096];
  if (hcl_sweep(&o, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char path[1200];
  snprintf(path, sizeof path, "%s/sweep.jsonl", o.sweep_dir);
  char *lines = hcl_test_read_file(path);
  assert_non_null(lines);
  /* 2 sizes x 2 seeds: four replicas of ONE run (sizes and seeds batched) */
  assert_int_equal(count(lines, "\"status\":\"completed\""), 4);
  assert_int_equal(count(lines, "\"seed\":1,"), 2);
  char ls[1300];
  snprintf(ls, sizeof ls, "ls %s/runs | wc -l", o.sweep_dir);
  FILE *lp = popen(ls, "r");
  int n_runs = 0;
  assert_int_equal(fscanf(lp, "%d", &n_runs), 1);
  pclose(lp);
  assert_int_equal(n_runs, 1);
  /* with P = 8 the net memorises and cannot generalise; with 2000 it learns */
  snprintf(path, sizeof path, "%s/table.tsv", o.sweep_dir);
  char *table = hcl_test_read_file(path);
  assert_non_null(table);
  double small = 0, large = 0;
  char *l8 = strstr(table, "\n8\t"), *l2000 = strstr(table, "\n2000\t");
  assert_non_null(l8);
  assert_non_null(l2000);
  assert_int_equal(sscanf(l8, "\n8\t2\t%lf", &small), 1);
  assert_int_equal(sscanf(l2000, "\n2000\t2\t%lf", &large), 1);
  assert_true(large < small);
  snprintf(path, sizeof path, "%s/pstar.json", o.sweep_dir);
  char *ps = hcl_test_read_file(path);
  assert_non_null(ps);
  assert_non_null(strstr(ps, "\"metric\":\"test_loss\""));
  /* each seed's own P*, recomputed from sweep.jsonl by an independent parser
   * (the same log-interpolation rule as the seed mean's) */
  const char *check = hcl_test_write_temp(
      "per_seed.py",
      "import json, math, sys\n"
      "d = sys.argv[1]\n"
      "ps = json.load(open(d + '/pstar.json'))\n"
      "thr = ps['threshold']\n"
      "rec = {}\n"
      "for l in open(d + '/sweep.jsonl'):\n"
      "    j = json.loads(l)\n"
      "    if j['status'] == 'completed':\n"
      "        rec[(j['seed'], float(j['point']['train.train_size']))] = j['test_loss']\n"
      "g = ps['groups']\n"
      "assert len(g) == 1, g\n"
      "s = g[0]['per_seed']\n"
      "assert [x['seed'] for x in s] == [0, 1], s\n"
      "assert any(x['pstar'] is not None for x in s), s\n"
      "for x in s:\n"
      "    c = sorted((P, v) for (k, P), v in rec.items() if k == x['seed'])\n"
      "    want, br = None, [c[-1][0], None]\n"
      "    for i, (P, v) in enumerate(c):\n"
      "        if v <= thr:\n"
      "            if i == 0:\n"
      "                br = [0, P]\n"
      "            else:\n"
      "                (P1, e1), (P2, e2) = c[i - 1], c[i]\n"
      "                u = 1 if e1 == e2 else (e1 - thr) / (e1 - e2)\n"
      "                want, br = math.exp(math.log(P1) + u * math.log(P2 / P1)), [P1, P2]\n"
      "            break\n"
      "    assert (want is None) == (x['pstar'] is None), (x, want)\n"
      "    assert want is None or abs(x['pstar'] - want) <= 1e-6 * want, (x, want)\n"
      "    assert x['bracket'] == br, (x, br)\n");
  char pcmd[2600];
  snprintf(pcmd, sizeof pcmd, "python3 %s %s", check, o.sweep_dir);
  assert_int_equal(system(pcmd), 0);
  /* resume: the same sweep again runs nothing new */
  hcl_sweep_options o2;
  memset(&o2, 0, sizeof o2);
  o2.run = o.run;
  if (hcl_sweep(&o2, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  assert_string_equal(o2.sweep_dir, o.sweep_dir);
  char *lines2 = hcl_test_read_file(path);
  free(lines2);
  snprintf(path, sizeof path, "%s/sweep.jsonl", o.sweep_dir);
  lines2 = hcl_test_read_file(path);
  assert_int_equal(count(lines2, "\"status\":\"completed\""), 4);
  /* learning rates batch too: 2 rates x 2 sizes x 2 seeds = one run of 8 replicas */
  const char *lr_grid[] = {"train.lr=0.01, 0.05"};
  hcl_sweep_options o4;
  memset(&o4, 0, sizeof o4);
  o4.run = o.run;
  o4.grid = lr_grid;
  o4.n_grid = 1;
  if (hcl_sweep(&o4, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  snprintf(ls, sizeof ls, "ls %s/runs | wc -l", o4.sweep_dir);
  lp = popen(ls, "r");
  assert_int_equal(fscanf(lp, "%d", &n_runs), 1);
  pclose(lp);
  assert_int_equal(n_runs, 1);
  snprintf(path, sizeof path, "%s/sweep.jsonl", o4.sweep_dir);
  char *l4 = hcl_test_read_file(path);
  assert_int_equal(count(l4, "\"status\":\"completed\""), 8);
  assert_int_equal(count(l4, "\"train.lr\":\"0.05\""), 4);
  /* the run's metrics carry each replica's own learning rate */
  char *rd = strstr(l4, "\"run_dir\":\"");
  assert_non_null(rd);
  char mpath[1300];
  snprintf(mpath, sizeof mpath, "%.*s/metrics.jsonl", (int)(strchr(rd + 11, '"') - (rd + 11)),
           rd + 11);
  char *m4 = hcl_test_read_file(mpath);
  assert_non_null(m4);
  assert_non_null(strstr(m4, "\"replica_lr\":0.05"));
  assert_non_null(strstr(m4, "\"replica_lr\":0.01"));
  free(l4), free(m4);
  /* hiercl plot draws the sample-complexity curve (matplotlib: installed by
   * scripts/setup.sh; a machine without it, e.g. a bare GPU box, skips this) */
  char cmd[1400];
  if (system("/usr/bin/python3 -c 'import matplotlib' 2>/dev/null") == 0) {
    snprintf(cmd, sizeof cmd, "%s plot %s > /dev/null", HCL_TEST_HIERCL, o.sweep_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/sample_complexity.png", o.sweep_dir);
    char *png = hcl_test_read_file(path);
    assert_non_null(png);
    assert_memory_equal(png, "\x89PNG", 4);
    free(png);
  } else {
    fprintf(stderr, "note: matplotlib missing: hiercl plot not checked here\n");
  }
  /* a bad grid value fails before anything runs */
  const char *bad[] = {"model.width=16, -3"};
  hcl_sweep_options o3;
  memset(&o3, 0, sizeof o3);
  o3.run = o.run;
  o3.grid = bad;
  o3.n_grid = 1;
  assert_int_equal(hcl_exit_code(hcl_sweep(&o3, err, sizeof err)), HCL_EXIT_USAGE);
  assert_non_null(strstr(err, "width"));
  free(lines), free(lines2), free(table), free(ps);
}

/* A dimension axis ([sweep] dim) adds P*(d) and its fitted exponent to
 * pstar.json; with two dimensions the fit is exact, so k is checked against
 * the file's own P* values by an independent parser. */
static void exponent_in_dimension(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *cfg = hcl_test_write_temp(
      "swd.ini", "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 200\n"
                 "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                 "[train]\nsteps = 600\nbatch = 16\nlr = 0.05\n"
                 "[eval]\nevery = 0\ntest_size = 500\n"
                 "[sweep]\ntrain.train_size = 8, 64, 2000\ntarget.n = 8, 16\nrun.seed = 0..2\n"
                 "threshold = 0.2\ndim = target.n\n");
  hcl_sweep_options o = sweep_options(cfg);
  char err[4096];
  if (hcl_sweep(&o, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,math,sys; d=json.load(open(sys.argv[1])); e=d[\"exponents\"]; "
           "assert len(e)==1 and e[0][\"dim\"]==\"target.n\", e; e=e[0]; p=e[\"points\"]; "
           "assert [q[\"d\"] for q in p]==[8,16], p; a,b=p[0][\"pstar\"],p[1][\"pstar\"]; "
           "assert a is not None and b is not None, p; "
           "assert abs(e[\"k\"]-math.log(b/a)/math.log(2))<1e-6, e; "
           "assert e[\"bootstrap\"]>0 and e[\"n_fit\"]==2, e' %s/pstar.json",
           o.sweep_dir);
  assert_int_equal(system(cmd), 0);
  if (system("python3 -c 'import matplotlib' 2>/dev/null") == 0) {
    snprintf(cmd, sizeof cmd, "%s plot %s > /dev/null && test -s %s/pstar_scaling.png",
             HCL_TEST_HIERCL, o.sweep_dir, o.sweep_dir);
    assert_int_equal(system(cmd), 0);
  }
  /* a dim that is not an axis is a config error */
  const char *bad =
      hcl_test_write_temp("swb.ini", "[target]\nplugin = staircase\n[model]\nplugin = resnet\n"
                                     "[sweep]\ntrain.train_size = 8, 64\ndim = target.d\n");
  o.run.config_path = bad;
  assert_int_equal(hcl_sweep(&o, err, sizeof err), HCL_ERR_CONFIG);
  assert_non_null(strstr(err, "dim = target.d"));
}

/* Selection on the validation stream: every candidate trains (learning rates
 * batch as replicas), sweep.jsonl keeps per (point, seed) the candidate with
 * the lowest val_loss and its test metrics — checked against
 * candidates.jsonl by an independent parser — and a record lost between the
 * candidates and the selection comes back identical on resume. */
static void select_on_validation(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  static const char base[] =
      "[target]\nplugin = staircase\nn = 8\nk = 2\n"
      "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
      "[train]\nsteps = 400\nbatch = 16\nlr = 0.05\n"
      "[eval]\nevery = 0\ntest_size = 300\n%s"
      "[sweep]\ntrain.train_size = 64, 1000\nrun.seed = 0..1\nthreshold = 0.2\n"
      "[select]\ntrain.lr = 0.0001, 0.05\n";
  char text[1024];
  snprintf(text, sizeof text, base, "val_size = 200\n");
  hcl_sweep_options o = sweep_options(hcl_test_write_temp("sel.ini", text));
  char err[4096], path[1200], cmd[4096];
  if (hcl_sweep(&o, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  snprintf(path, sizeof path, "%s/sweep.jsonl", o.sweep_dir);
  char *first = hcl_test_read_file(path);
  assert_non_null(first);
  assert_int_equal(count(first, "\"selected\":{\"train.lr\":"), 4); /* 2 sizes x 2 seeds */
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys\n"
           "c=[json.loads(l) for l in open(sys.argv[1]+\"/candidates.jsonl\")]\n"
           "s=[json.loads(l) for l in open(sys.argv[1]+\"/sweep.jsonl\")]\n"
           "assert len(c)==8 and len(s)==4, (len(c), len(s))\n"
           "for r in s:\n"
           "  m=[x for x in c if x[\"seed\"]==r[\"seed\"] and "
           "x[\"point\"][\"train.train_size\"]==r[\"point\"][\"train.train_size\"]]\n"
           "  assert len(m)==2, m\n"
           "  b=min(m, key=lambda x: x[\"val_loss\"])\n"
           "  assert r[\"selected\"]=={\"train.lr\": b[\"point\"][\"train.lr\"]}, (r, b)\n"
           "  assert r[\"test_loss\"]==b[\"test_loss\"] and r[\"val_loss\"]==b[\"val_loss\"]\n"
           "  assert b[\"val_loss\"]!=b[\"test_loss\"]\n"
           "  assert sorted(x[\"val_loss\"] for x in r[\"candidates\"])==sorted(x[\"val_loss\"] "
           "for x in m)\n"
           "' %s",
           o.sweep_dir);
  assert_int_equal(system(cmd), 0);
  /* a selection record lost after its candidates were written: resumed, the
   * same bytes come back, and nothing trains again */
  size_t len = strlen(first), cut = len - 1;
  while (cut && first[cut - 1] != '\n') cut--;
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(first, 1, cut, f), cut);
  fclose(f);
  hcl_sweep_options o2;
  memset(&o2, 0, sizeof o2);
  o2.run = o.run;
  if (hcl_sweep(&o2, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *again = hcl_test_read_file(path);
  assert_string_equal(again, first);
  snprintf(path, sizeof path, "%s/candidates.jsonl", o.sweep_dir);
  char *cand = hcl_test_read_file(path);
  assert_int_equal(count(cand, "\n"), 8);
  /* a selection recorded as failed (its candidates had failed, then were
   * re-run): the resume selects again, and the table is the same */
  snprintf(path, sizeof path, "%s/table.tsv", o.sweep_dir);
  char *table = hcl_test_read_file(path);
  const char *st = strstr(first + cut, "\"status\":\"");
  assert_non_null(st);
  char failed[2048];
  snprintf(failed, sizeof failed,
           "%.*s\"status\":\"failed\",\"error\":\"injected\",\"selected\":null}\n",
           (int)(st - (first + cut)), first + cut);
  snprintf(path, sizeof path, "%s/sweep.jsonl", o.sweep_dir);
  f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(first, 1, cut, f), cut);
  fputs(failed, f);
  fclose(f);
  if (hcl_sweep(&o2, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *third = hcl_test_read_file(path);
  assert_int_equal(count(third, "\"selected\":{"), 4); /* selected again after the failed one */
  if (hcl_sweep(&o2, err, sizeof err) != HCL_OK) fail_msg("%s", err);
  char *fourth = hcl_test_read_file(path);
  assert_string_equal(fourth, third); /* and only once */
  snprintf(path, sizeof path, "%s/table.tsv", o.sweep_dir);
  char *table2 = hcl_test_read_file(path);
  assert_string_equal(table2, table);
  free(first), free(again), free(cand), free(table), free(third), free(fourth), free(table2);
  /* no validation stream: refused before anything runs */
  snprintf(text, sizeof text, base, "");
  o.run.config_path = hcl_test_write_temp("sel0.ini", text);
  assert_int_equal(hcl_sweep(&o, err, sizeof err), HCL_ERR_CONFIG);
  assert_non_null(strstr(err, "val_size"));
  /* a key both swept and selected */
  const char *both[] = {"train.train_size=64, 1000"};
  snprintf(text, sizeof text, base, "val_size = 200\n");
  o.run.config_path = hcl_test_write_temp("sel1.ini", text);
  o.select = both;
  o.n_select = 1;
  assert_int_equal(hcl_sweep(&o, err, sizeof err), HCL_ERR_CONFIG);
  assert_non_null(strstr(err, "train.train_size"));
}

/* A sweep of one point (seeds only) has no curve over a key: hiercl plot
 * draws the learning curves of the run it trained instead of failing. */
static void plot_of_one_point(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  if (system("/usr/bin/python3 -c 'import matplotlib' 2>/dev/null") != 0) {
    print_message("skipped: matplotlib is not installed\n");
    skip();
  }
  static char out[16384];
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/one_point", hcl_test_tmpdir());
  if (hcl_test_shf(out, sizeof out,
                   "%s sweep %s/quickstart.ini --grid run.seed=0..1 --set train.steps=40 "
                   "--set eval.every=20 --set eval.test_size=64 --set target.probe_samples=64 "
                   "--out %s && %s plot %s/sweep_*",
                   HCL_TEST_HIERCL, HCL_TEST_CONFIGS, dir, HCL_TEST_HIERCL, dir))
    HCL_FAIL_OUT(out, "sweep or plot failed (output above)");
  assert_int_equal(hcl_test_shf(out, sizeof out, "ls %s/sweep_*/runs/*/learning_curves.png", dir),
                   0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(value_lists),           cmocka_unit_test(pstar_interpolation),
      cmocka_unit_test(whole_prefix),          cmocka_unit_test(grid_end_to_end_and_resume),
      cmocka_unit_test(exponent_in_dimension), cmocka_unit_test(select_on_validation),
      cmocka_unit_test(plot_of_one_point),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
