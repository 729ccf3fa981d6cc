/* hiercl bench: the vendor-neutral benchmark. Runs the fixed suite of the
 * reference experiments' training steps (bench_suite.c) on every selected
 * device and reports steps/s, replica-steps/s, the busiest kernels' device
 * time and peak device memory, one row per (device, case), each row naming
 * its device, driver and hiercl version so files from different machines
 * can be put side by side (--compare). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "bench_row.h"
#include "commands.h"
#include "hiercl/hiercl.h"
#include "internal.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char bench_usage[] =
    "usage: hiercl bench [--device SEL|all]... [--quick] [--only NAME|SUBSTRING] [-o md|csv|json]\n"
    "                    [--torch] [--repeat N] [--plugin-path DIRS]\n"
    "       hiercl bench --compare A.json B.json\n"
    "--only NAME times that case alone (rhm_cnn/r1); any other string, every case whose\n"
    "name contains it (rhm_cnn).\n"
    "--device SEL/N.I times part I of the device SEL split in N equal parts, alone (the\n"
    "PyTorch twin on a CPU part gets at most as many threads as the part has cores).\n";

/* The number after "key": in text (NaN when absent or null). */
static double json_num(const char *text, const char *key) {
  double v;
  return text && hcl_json_get_num(text, key, &v) ? v : NAN;
}

/* The busiest kernels of summary.json's "kernels" object, by device time. */
static void read_kernels(const char *sum, bench_row *r) {
  const char *k = sum ? strstr(sum, "\"kernels\":{") : NULL;
  if (!k) return;
  k += strlen("\"kernels\":{");
  for (;;) {
    const char *q = strchr(k, '"');
    if (!q) return;
    const char *qe = strchr(q + 1, '"');
    const char *obj_end = qe ? strchr(qe, '}') : NULL;
    if (!qe || !obj_end) return;
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)(qe - q - 1), q + 1);
    char obj[256];
    snprintf(obj, sizeof obj, "%.*s", (int)(obj_end - qe), qe);
    double ds = json_num(obj, "device_s"), la = json_num(obj, "launches");
    if (isfinite(la)) r->launches += la;
    size_t at = r->n_top;
    while (at > 0 && !(r->top[at - 1].device_s >= ds)) at--;
    if (at < TOP_KERNELS) {
      size_t last = r->n_top < TOP_KERNELS ? r->n_top : TOP_KERNELS - 1;
      memmove(&r->top[at + 1], &r->top[at], (last - at) * sizeof r->top[0]);
      snprintf(r->top[at].name, sizeof r->top[at].name, "%s", name);
      r->top[at].launches = la;
      r->top[at].device_s = ds;
      if (r->n_top < TOP_KERNELS) r->n_top++;
    }
    k = obj_end + 1;
    if (*k != ',') return;
  }
}

/* --only: the case of that exact name if there is one (rhm_cnn/r1, not also
 * a /r10), else every case whose name contains it; every case without it. */
static int bench_selected(const hcl_bench_case *suite, size_t nc, const char *only,
                          const char *name) {
  if (!only) return 1;
  for (size_t c = 0; c < nc; c++)
    if (!strcmp(suite[c].name, only)) return !strcmp(name, only);
  return strstr(name, only) != NULL;
}

/* A case timed as whole runs: at least BENCH_RUNS_TIMED runs a round, and
 * outside --quick as many more as fill BENCH_WHOLE_MIN_S seconds of timed
 * wall (at most BENCH_RUNS_MAX); its PyTorch twin the same (--steps,
 * --min-seconds). Three runs of Algorithm 1 at R = 1 were a 70 ms window,
 * 20x shorter than a step case's, on a machine whose speed moves within
 * seconds. */
#define BENCH_RUNS_TIMED 3
#define BENCH_WHOLE_MIN_S 1.0
#define BENCH_RUNS_MAX 1000

/* The seconds of timed wall a round of case r fills at least, on both
 * sides: BENCH_WHOLE_MIN_S for a case timed as whole runs outside --quick. */
static double bench_window_s(const bench_row *r, int quick) {
  return !strcmp(r->c->unit, "run") && !quick ? BENCH_WHOLE_MIN_S : 0;
}

static void run_case(bench_row *r, const char *tmp, int quick, const char *plugin_path) {
  r->ok = 0, r->n_top = 0, r->launches = 0; /* the kernels are the latest round's */
  char cfg[1024], sets[3][64], sum_path[1200];
  snprintf(cfg, sizeof cfg, "%s/%s.ini", tmp, strchr(r->c->name, '/') + 1);
  FILE *f = fopen(cfg, "w");
  if (!f || fputs(r->c->config, f) < 0 || fclose(f)) {
    snprintf(r->error, sizeof r->error, "%s: cannot write", cfg);
    return;
  }
  unsigned steps = quick ? r->c->quick_steps : r->c->steps;
  const char *argv[3] = {sets[0], sets[1], sets[2]};
  size_t n = 0;
  snprintf(sets[n++], sizeof sets[0], "run.replicas=%u", r->c->replicas);
  snprintf(sets[n++], sizeof sets[0], "runtime.profile=true");
  if (steps) snprintf(sets[n++], sizeof sets[0], "train.steps=%u", steps);
  hcl_run_options opt = {.config_path = cfg,
                         .sets = argv,
                         .n_sets = n,
                         .device = r->dev->id,
                         .out_dir = tmp,
                         .plugin_path = plugin_path,
                         .stop = hcl_cli_stop_flag()};
  /* a case timed as whole runs loads programs inside the run (the ridge
   * solver's): one untimed run first, in a session whose context keeps its
   * programs for the timed runs, as a sweep's points share them and as the
   * PyTorch twin's warm-up run warms its own; then BENCH_RUNS_TIMED runs or
   * more (above), their rate runs / total wall.
   * A case timed in steps runs once untimed before its first round, as long
   * as its quick pass: PoCL compiles a kernel for its work-group size at its
   * first launch (into its own disk cache), so on a fresh machine the first
   * round timed the compiler (the linear teacher: 885 steps/s, 17 350 in the
   * next process). */
  int whole = !strcmp(r->c->unit, "run"), timed = whole ? BENCH_RUNS_TIMED : 1;
  double min_s = bench_window_s(r, quick);
  hcl_session *session = NULL;
  hcl_status rc = HCL_OK;
  if (whole) {
    rc = hcl_session_create(plugin_path, &session, r->error, sizeof r->error);
    opt.session = session;
  }
  if (rc == HCL_OK && (whole || r->rounds == 0)) {
    char warm[64];
    const char *wargv[3] = {sets[0], sets[1], warm};
    snprintf(warm, sizeof warm, "train.steps=%u", r->c->quick_steps);
    hcl_run_options w = opt;
    if (!whole) w.sets = wargv, w.n_sets = r->c->quick_steps ? 3 : 2;
    rc = hcl_run(&w, r->error, sizeof r->error);
    snprintf(sum_path, sizeof sum_path, "%s/summary.json", w.run_dir);
    char *sum = rc == HCL_OK && r->rounds == 0 ? hcl_file_text(sum_path) : NULL;
    if (sum) r->warmup_steps = json_num(sum, "steps");
    free(sum);
  }
  double wall_s = 0, per_s = NAN;
  r->cpu_s = 0, r->runs_per_round = 0;
  for (int i = 0; (i < timed || (wall_s < min_s && i < BENCH_RUNS_MAX)) && rc == HCL_OK; i++) {
    rc = hcl_run(&opt, r->error, sizeof r->error);
    if (rc != HCL_OK) break;
    snprintf(sum_path, sizeof sum_path, "%s/summary.json", opt.run_dir);
    char *sum = hcl_file_text(sum_path);
    if (!sum) {
      snprintf(r->error, sizeof r->error, "%s: cannot read", sum_path);
      rc = HCL_ERR_IO;
      break;
    }
    r->steps = json_num(sum, "steps");
    wall_s += json_num(sum, "wall_s");
    r->cpu_s += json_num(sum, "cpu_s");
    per_s = whole ? (i + 1) / wall_s : json_num(sum, "steps_per_s");
    r->gemm_flops = json_num(sum, "gemm_flops"); /* a run's, or the run's steps' */
    r->peak_bytes = json_num(sum, "peak_device_bytes");
    r->n_top = 0, r->launches = 0;
    read_kernels(sum, r); /* the last run's */
    free(sum);
    r->runs_per_round = i + 1;
    r->timed_s = wall_s;
  }
  hcl_session_destroy(session);
  if (rc != HCL_OK) return;
  r->ok = isfinite(per_s) && per_s > 0;
  if (!r->ok) {
    snprintf(r->error, sizeof r->error, "%s: no steps_per_s", sum_path);
    return;
  }
  r->rate[r->rounds] = per_s * r->c->replicas;
  r->cpu_rate[r->rounds++] = per_s * r->c->replicas * wall_s / r->cpu_s;
}

/* The PyTorch twin of a row, same case, replicas and steps; on a CPU the
 * faster of 1 thread and all cores (PyTorch's OpenMP threads spin against
 * OpenBLAS's pool, so either can win). */
static void run_torch(bench_row *r, const char *script, int quick) {
  double best = NAN; /* replica steps (or runs) per s of the faster thread count */
  char exp[64];
  snprintf(exp, sizeof exp, "%.*s", (int)strcspn(r->c->name, "/"), r->c->name);
  unsigned steps = quick ? r->c->quick_steps : r->c->steps;
  int gpu = r->dev->type & CL_DEVICE_TYPE_GPU;
  if (gpu && !strstr(r->dev->platform, "NVIDIA")) {
    snprintf(r->torch_version, sizeof r->torch_version, "no CUDA device");
    return;
  }
  /* the device's cores, not more (a part of a CPU has fewer) */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (r->dev->compute_units && cores > (long)r->dev->compute_units) cores = r->dev->compute_units;
  int threads[2] = {1, cores > 1 ? (int)cores : 0};
  char window[48] = ""; /* as long a window as hiercl's */
  double min_s = bench_window_s(r, quick);
  if (min_s > 0) snprintf(window, sizeof window, " --min-seconds %g", min_s);
  for (int t = 0; t < (gpu ? 1 : 2); t++) {
    if (!threads[t]) continue;
    char cmd[2048], line[1024] = "";
    snprintf(cmd, sizeof cmd,
             "OMP_WAIT_POLICY=PASSIVE '%s' '%s' --case %s --replicas %u --steps %u --threads %d "
             "--device %s%s 2>&1",
             hcl_cli_python(), script, exp, r->c->replicas, steps ? steps : BENCH_RUNS_TIMED,
             threads[t], gpu ? "cuda" : "cpu", window);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char buf[1024];
    while (fgets(buf, sizeof buf, p)) memcpy(line, buf, sizeof line);
    int st = pclose(p);
    double v = json_num(line, "replica_per_s");
    if (st != 0 || !isfinite(v)) {
      fprintf(stderr, "hiercl bench: note: PyTorch twin of %s failed: %s", r->c->name, line);
      return;
    }
    if (!(v <= best)) {
      best = v;
      r->torch_threads = threads[t];
    }
    const char *iv = strstr(line, "\"implementation\": \"pytorch ");
    if (iv)
      snprintf(r->torch_version, sizeof r->torch_version, "%.*s", (int)strcspn(iv + 27, "\""),
               iv + 27);
  }
  if (isfinite(best)) r->torch_rate[r->torch_rounds++] = best;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* Each row with replicas gets the row of the same experiment at R = 1 on the
 * same device, if this call times it, as its base (bench_row.base). */
static void link_bases(bench_row *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    size_t len = strcspn(rows[i].c->name, "/");
    for (size_t j = 0; j < n && rows[i].c->replicas > 1; j++)
      if (rows[j].c->replicas == 1 && rows[j].dev == rows[i].dev &&
          !strncmp(rows[j].c->name, rows[i].c->name, len + 1))
        rows[i].base = &rows[j];
  }
}

/* A device's context for the FMA peak; failed once it could not be made or
 * measured, so the note is printed once and not retried every round. */
typedef struct {
  hcl_ctx *ctx;
  int failed;
} peak_slot;

/* The device's FMA rate now (hcl_fma_peak), on a context opened on first
 * use and kept; NaN, with a note, where it cannot be measured (the cases
 * still run). */
static double device_peak(peak_slot *p, const hcl_device_info *dev) {
  char err[1024] = "";
  if (p->failed) return NAN;
  if (!p->ctx) {
    hcl_ctx_options o = {.device = dev->id, .quiet = 1};
    if (hcl_ctx_create(&o, &p->ctx, err, sizeof err) != HCL_OK) {
      fprintf(stderr, "hiercl bench: note: %s: FMA peak not measured: %s\n", dev->id, err);
      p->failed = 1;
      return NAN;
    }
  }
  double g = NAN;
  if (hcl_fma_peak(p->ctx, &g) != HCL_OK) {
    fprintf(stderr, "hiercl bench: note: %s: FMA peak not measured: %s\n", dev->id,
            hcl_errmsg(p->ctx));
    p->failed = 1;
    return NAN;
  }
  return g;
}

/* One row per line in our JSON: (experiment, device_id) -> replica_per_s. */
static int compare(const char *a_path, const char *b_path) {
  char *a = hcl_file_text(a_path), *b = hcl_file_text(b_path);
  if (!a || !b || !strstr(a, BENCH_SCHEMA) || !strstr(b, BENCH_SCHEMA)) {
    fprintf(stderr, "hiercl bench: error: %s: not a hiercl bench JSON file (%s)\n",
            !a || !strstr(a, BENCH_SCHEMA) ? a_path : b_path, BENCH_SCHEMA);
    free(a), free(b);
    return HCL_EXIT_USAGE;
  }
  printf("| experiment | A: %s | B: %s | B/A |\n|---|---:|---:|---:|\n", a_path, b_path);
  int matched = 0;
  for (char *line = strstr(a, "{\"hiercl_version\""); line;
       line = strstr(line + 1, "{\"hiercl_version\"")) {
    char exp[128];
    const char *e = strstr(line, "\"experiment\":\"");
    const char *nl = strchr(line, '\n');
    if (!e || (nl && e > nl)) continue;
    e += strlen("\"experiment\":\"");
    snprintf(exp, sizeof exp, "%.*s", (int)strcspn(e, "\""), e);
    char pat[160];
    snprintf(pat, sizeof pat, "\"experiment\":\"%s\"", exp);
    const char *bl = strstr(b, pat);
    if (!bl) continue;
    double va = json_num(line, "replica_per_s"), vb = json_num(bl, "replica_per_s");
    printf("| %s | %.4g | %.4g | %.3g |\n", exp, va, vb, vb / va);
    matched++;
  }
  free(a), free(b);
  if (!matched) {
    fprintf(stderr, "hiercl bench: error: %s and %s share no experiment\n", a_path, b_path);
    return HCL_EXIT_FAIL;
  }
  return HCL_EXIT_OK;
}

/* The device a --device selector names: *dev into devs, or, for a part
 * SEL/N.I, *part made from its device (id, compute units and memory of the
 * part: the row's and its twin's; the run opens the part itself). */
static hcl_status bench_select(const hcl_device_info *devs, size_t nd, const char *sel,
                               hcl_device_info *part, const hcl_device_info **dev, char *err,
                               size_t errlen) {
  char base[256];
  unsigned n = 1, i = 0;
  int pk = hcl_device_part_parse(sel, base, sizeof base, &n, &i);
  if (pk < 0 || (pk == 2 && n > 1)) {
    snprintf(err, errlen,
             "a part is SEL/N.I, part I (0 <= I < N) of SEL split in N; a bench row "
             "times one part");
    return HCL_ERR_NODEVICE;
  }
  size_t idx;
  HCL_TRY(hcl_device_select(devs, nd, pk ? base : sel, &idx, err, errlen));
  *dev = &devs[idx];
  if (n < 2) return HCL_OK;
  *part = devs[idx];
  HCL_TRY(hcl_device_partition(part, n, i, err, errlen));
  *dev = part;
  return HCL_OK;
}

int hcl_cmd_bench(int argc, char **argv) {
  const char *sel[16], *only = NULL, *fmt = "md", *plugin_path = NULL;
  size_t n_sel = 0;
  int quick = 0, torch = 0;
  long repeat = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(bench_usage, stdout);
      return HCL_EXIT_OK;
    } else if (!strcmp(a, "--compare") && i + 2 < argc) {
      return compare(argv[i + 1], argv[i + 2]);
    } else if (!strcmp(a, "--device") && has) {
      if (n_sel == sizeof sel / sizeof *sel) {
        fprintf(stderr, "hiercl bench: at most %zu --device options\n", n_sel);
        return HCL_EXIT_USAGE;
      }
      sel[n_sel++] = argv[++i];
    } else if (!strcmp(a, "--quick")) {
      quick = 1;
    } else if (!strcmp(a, "--torch")) {
      torch = 1;
    } else if (!strcmp(a, "--repeat") && has) {
      char *end;
      repeat = strtol(argv[++i], &end, 10);
      if (*end || end == argv[i] || repeat < 1 || repeat > BENCH_MAX_REPEAT) {
        fprintf(stderr, "hiercl bench: --repeat '%s': expected a whole number from 1 to %d\n",
                argv[i], BENCH_MAX_REPEAT);
        return HCL_EXIT_USAGE;
      }
    } else if (!strcmp(a, "--only") && has) {
      only = argv[++i];
    } else if (!strcmp(a, "-o") && has) {
      fmt = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      plugin_path = argv[++i];
    } else {
      fprintf(stderr, "hiercl bench: unexpected argument '%s'\n%s", a, bench_usage);
      return HCL_EXIT_USAGE;
    }
  }
  if (strcmp(fmt, "md") && strcmp(fmt, "csv") && strcmp(fmt, "json")) {
    fprintf(stderr, "hiercl bench: -o '%s': expected md, csv or json\n", fmt);
    return HCL_EXIT_USAGE;
  }
  size_t nc, n_match = 0;
  const hcl_bench_case *suite = hcl_bench_suite(&nc);
  for (size_t c = 0; c < nc; c++) n_match += bench_selected(suite, nc, only, suite[c].name);
  if (!n_match) {
    fprintf(stderr, "hiercl bench: error: --only '%s' names no case (the suite:", only);
    for (size_t c = 0; c < nc; c++) fprintf(stderr, "%s %s", c ? "," : "", suite[c].name);
    fprintf(stderr, ")\n");
    return HCL_EXIT_USAGE;
  }
  const char *script =
      torch ? hcl_cli_script("HIERCL_TORCH_SUITE", HCL_INSTALL_SHARE_DIR "/torch/suite.py",
                             HCL_SOURCE_DIR "/bench/torch/suite.py")
            : NULL;
  if (torch && !script) {
    fprintf(stderr, "hiercl bench: error: --torch: bench/torch/suite.py not found "
                    "(set HIERCL_TORCH_SUITE)\n");
    return HCL_EXIT_USAGE;
  }
  hcl_device_info *devs = NULL;
  size_t nd = 0;
  char err[8192];
  if (hcl_devices_list(&devs, &nd, err, sizeof err) != HCL_OK || !nd) {
    fprintf(stderr, "hiercl bench: error: %s\n", nd ? err : "no OpenCL device");
    free(devs);
    return HCL_EXIT_NODEVICE;
  }
  /* Devices to run: each selector once, "all" = every device; default: the
   * run default (HIERCL_DEVICE, else the first GPU, else the CPU). SEL/N.I
   * is one part of a device (device_part.c), its row that part alone. */
  if (!n_sel) sel[n_sel++] = getenv("HIERCL_DEVICE");
  const hcl_device_info **pick = calloc(nd + n_sel, sizeof *pick);
  hcl_device_info *parts = calloc(n_sel, sizeof *parts);
  size_t n_pick = 0, n_parts = 0;
  for (size_t s = 0; s < n_sel && pick && parts; s++) {
    for (size_t d = 0; d < nd; d++) {
      const hcl_device_info *dev = &devs[d];
      if (!sel[s] || strcmp(sel[s], "all")) {
        if (bench_select(devs, nd, sel[s], &parts[n_parts], &dev, err, sizeof err) != HCL_OK) {
          fprintf(stderr, "hiercl bench: error: --device %s: %s\n", sel[s] ? sel[s] : "", err);
          free(pick), free(parts), free(devs);
          return HCL_EXIT_NODEVICE;
        }
        n_parts += dev == &parts[n_parts];
        d = nd; /* one device per selector */
      }
      size_t k = 0;
      while (k < n_pick && strcmp(pick[k]->id, dev->id)) k++;
      if (k == n_pick) pick[n_pick++] = dev;
    }
  }
  bench_row *rows = pick && parts ? calloc(n_pick * nc, sizeof *rows) : NULL;
  size_t n_rows = 0;
  char tmp[] = "/tmp/hiercl-bench-XXXXXX";
  peak_slot *peak_ctx = calloc(n_pick, sizeof *peak_ctx); /* one per device, for the FMA peak */
  if (!rows || !peak_ctx || !mkdtemp(tmp)) {
    fprintf(stderr, "hiercl bench: error: cannot create a scratch folder in /tmp\n");
    free(peak_ctx), free(rows), free(pick), free(parts), free(devs);
    return HCL_EXIT_FAIL;
  }
  hcl_cli_catch_stop();
  const volatile int *stop = hcl_cli_stop_flag();
  for (size_t d = 0; d < n_pick; d++)
    for (size_t c = 0; c < nc; c++) {
      if (!bench_selected(suite, nc, only, suite[c].name)) continue;
      bench_row *r = &rows[n_rows++];
      r->dev = pick[d];
      r->c = &suite[c];
      r->ok = 1;
    }
  link_bases(rows, n_rows);
  /* Round by round over every row, each row's twin right after it: drift in
   * the machine's load or state spreads over all rows and both sides alike. */
  int failed = 0;
  for (long round = 0; round < repeat && !*stop; round++)
    for (size_t i = 0; i < n_rows && !*stop; i++) {
      bench_row *r = &rows[i];
      if (!r->ok) continue;
      if (repeat > 1)
        fprintf(stderr, "bench: %s on %s (round %ld of %ld) ...\n", r->c->name, r->dev->id,
                round + 1, repeat);
      else
        fprintf(stderr, "bench: %s on %s ...\n", r->c->name, r->dev->id);
      size_t slot = 0, at = r->rounds; /* the row's device among the picked ones */
      while (pick[slot] != r->dev) slot++;
      /* the FMA rate before and after the case, the greater kept: the
       * machine's speed moves within seconds, and the fraction of the peak
       * must not be overstated */
      double before = device_peak(&peak_ctx[slot], r->dev);
      run_case(r, tmp, quick, plugin_path);
      if (r->rounds > at) r->fma_peak[at] = fmax(before, device_peak(&peak_ctx[slot], r->dev));
      if (r->ok && script) run_torch(r, script, quick);
      if (!r->ok) {
        fprintf(stderr, "hiercl bench: %s on %s failed: %s\n", r->c->name, r->dev->id, r->error);
        failed = 1;
      }
    }
  for (size_t i = 0; i < n_rows; i++)
    if (!rows[i].rounds && rows[i].ok) { /* interrupted before its first round */
      rows[i].ok = 0;
      snprintf(rows[i].error, sizeof rows[i].error, "not run (interrupted)");
    }
  if (!strcmp(fmt, "json"))
    hcl_bench_print_json(stdout, rows, n_rows);
  else
    hcl_bench_print_table(stdout, rows, n_rows, !strcmp(fmt, "csv"));
  /* The scratch runs are only the timing's by-products. */
  if (nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
    fprintf(stderr, "hiercl bench: note: could not remove %s\n", tmp);
  for (size_t d = 0; d < n_pick; d++) hcl_ctx_destroy(peak_ctx[d].ctx);
  free(peak_ctx), free(rows), free(pick), free(parts), free(devs);
  if (*stop) return hcl_cli_exit_code(HCL_ERR_INTERRUPTED);
  return failed ? HCL_EXIT_FAIL : n_rows ? HCL_EXIT_OK : HCL_EXIT_USAGE;
}
