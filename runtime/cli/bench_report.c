/* The reports of `hiercl bench`: medians and ranges over a row's rounds,
 * the ratios against the PyTorch twin and against the same experiment at
 * R = 1, as JSON (hiercl-bench/1) or as a Markdown or CSV table. */
#include "bench_row.h"
#include "hiercl/hiercl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Median, least and greatest of v[0..n-1] (n >= 1) into st[0..2]. */
static void spread(const double *v, size_t n, double st[3]) {
  double s[BENCH_MAX_REPEAT];
  memcpy(s, v, n * sizeof *s);
  for (size_t i = 1; i < n; i++) /* insertion sort: n <= BENCH_MAX_REPEAT */
    for (size_t j = i; j > 0 && s[j - 1] > s[j]; j--) {
      double t = s[j];
      s[j] = s[j - 1], s[j - 1] = t;
    }
  st[0] = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  st[1] = s[0], st[2] = s[n - 1];
}

/* The row's figures over its rounds: hiercl's and the twin's replica rates,
 * hiercl's per CPU-s, and the per-round ratio (rounds are pairs: hiercl,
 * then its twin); the device's FMA rate and, per round, the products'
 * GFLOP/s over the rate measured around that round; the process's CPU
 * seconds per wall second (busy); for a row with replicas, its replica rate
 * over its R = 1 row's, per wall and per CPU second, round by round (gain,
 * cpu_gain); NaN where a side has no round, and all NaN for a failed row. */
typedef struct row_stats {
  double rate[3], cpu_rate[3], torch[3], ratio[3], peak[3], peak_fraction[3];
  double busy[3], gain[3], cpu_gain[3];
} row_stats;

/* GFLOP/s of the products at replica rate `rate` (the runtime's, and a
 * plugin's own that it counts: the Taylor head on CPUs): per step, or per
 * run for a case timed as whole runs; NaN (not reported) when none ran. */
static double gflops_at(const bench_row *r, double rate) {
  double per = strcmp(r->c->unit, "run") ? r->gemm_flops / r->steps : r->gemm_flops;
  return r->gemm_flops > 0 ? per * rate / r->c->replicas / 1e9 : NAN;
}

/* The ratio num / den over n paired rounds: the ratio of the medians, and
 * the least and greatest per-round ratio. */
static void ratio_spread(const double *num, const double *den, size_t n, double st[3]) {
  double q[BENCH_MAX_REPEAT], mn[3], md[3];
  for (size_t i = 0; i < n; i++) q[i] = num[i] / den[i];
  spread(q, n, st);
  spread(num, n, mn), spread(den, n, md);
  st[0] = mn[0] / md[0];
}

static row_stats row_spread(const bench_row *r) {
  row_stats s;
  for (int i = 0; i < 3; i++)
    s.rate[i] = s.cpu_rate[i] = s.torch[i] = s.ratio[i] = s.peak[i] = s.peak_fraction[i] = NAN,
    s.busy[i] = s.gain[i] = s.cpu_gain[i] = NAN;
  if (!r->ok) return s;
  int peaks = r->rounds > 0;
  double f[BENCH_MAX_REPEAT];
  for (size_t i = 0; i < r->rounds; i++) {
    peaks = peaks && isfinite(r->fma_peak[i]) && r->fma_peak[i] > 0;
    if (peaks) f[i] = gflops_at(r, r->rate[i]) / r->fma_peak[i];
  }
  if (peaks) {
    spread(r->fma_peak, r->rounds, s.peak);
    if (isfinite(f[0])) spread(f, r->rounds, s.peak_fraction);
  }
  if (r->rounds) {
    spread(r->rate, r->rounds, s.rate), spread(r->cpu_rate, r->rounds, s.cpu_rate);
    double busy[BENCH_MAX_REPEAT]; /* replicas per wall s over per CPU s: CPU s per wall s */
    for (size_t i = 0; i < r->rounds; i++) busy[i] = r->rate[i] / r->cpu_rate[i];
    spread(busy, r->rounds, s.busy);
  }
  if (r->torch_rounds) spread(r->torch_rate, r->torch_rounds, s.torch);
  if (r->rounds && r->torch_rounds == r->rounds)
    ratio_spread(r->rate, r->torch_rate, r->rounds, s.ratio);
  /* Rounds alternate over the rows, so round i of the R = 1 row ran just
   * before round i of this one: the pairs share the machine's state. */
  const bench_row *b = r->base;
  if (r->rounds && b && b->ok && b->rounds >= r->rounds) {
    ratio_spread(r->rate, b->rate, r->rounds, s.gain);
    ratio_spread(r->cpu_rate, b->cpu_rate, r->rounds, s.cpu_gain);
  }
  return s;
}

static void num_or_null(FILE *o, double v, const char *fmt) {
  if (isfinite(v))
    fprintf(o, fmt, v);
  else
    fputs("null", o);
}

/* GFLOP/s of the products at the median rate (gflops_at). */
static double gflop_per_s(const bench_row *r, const row_stats *s) {
  return gflops_at(r, s->rate[0]);
}

/* Kernel launches per training step, set-up included (what bounds a small
 * model on a CPU); NaN for a case timed as whole runs. */
static double launches_per_step(const bench_row *r) {
  return !strcmp(r->c->unit, "step") && r->steps > 0 && r->launches > 0 ? r->launches / r->steps
                                                                        : NAN;
}

/* ,"key":[v[0],...] */
static void json_list(FILE *o, const char *key, const double *v, size_t n) {
  fprintf(o, ",\"%s\":[", key);
  for (size_t i = 0; i < n; i++) {
    if (i) fputc(',', o);
    num_or_null(o, v[i], "%.6g");
  }
  fputc(']', o);
}

/* ,"key":median,"key_range":[least,greatest] */
static void json_spread(FILE *o, const char *key, const double st[3]) {
  fprintf(o, ",\"%s\":", key);
  num_or_null(o, st[0], "%.6g");
  fprintf(o, ",\"%s_range\":[", key);
  num_or_null(o, st[1], "%.6g");
  fputc(',', o);
  num_or_null(o, st[2], "%.6g");
  fputc(']', o);
}

void hcl_bench_print_json(FILE *o, const bench_row *rows, size_t n) {
  fprintf(o, "{\"schema\":\"%s\",\"rows\":[\n", BENCH_SCHEMA);
  for (size_t i = 0; i < n; i++) {
    const bench_row *r = &rows[i];
    fputs(" {\"hiercl_version\":\"" HIERCL_VERSION "\",\"device_id\":", o);
    hcl_json_str(o, r->dev->id);
    fputs(",\"device\":", o);
    hcl_json_str(o, r->dev->name);
    fputs(",\"platform\":", o);
    hcl_json_str(o, r->dev->platform);
    fputs(",\"driver\":", o);
    hcl_json_str(o, r->dev->driver);
    fprintf(
        o, ",\"experiment\":\"%s\",\"replicas\":%u,\"unit\":\"%s\",\"runs_per_round\":%d,\"ok\":%s",
        r->c->name, r->c->replicas, r->c->unit, r->runs_per_round, r->ok ? "true" : "false");
    if (!r->ok) {
      fputs(",\"error\":", o);
      hcl_json_str(o, r->error);
      fputs("}", o);
    } else {
      row_stats st = row_spread(r);
      fputs(",\"steps\":", o);
      num_or_null(o, r->steps, "%.0f");
      fputs(",\"warmup_steps\":", o);
      num_or_null(o, r->warmup_steps, "%.0f");
      fputs(",\"timed_s\":", o);
      num_or_null(o, r->timed_s, "%.4g");
      fprintf(o, ",\"rounds\":%zu,\"per_s\":", r->rounds);
      num_or_null(o, st.rate[0] / r->c->replicas, "%.6g");
      json_spread(o, "replica_per_s", st.rate);
      json_list(o, "replica_per_s_rounds", r->rate, r->rounds);
      /* per CPU second: comparable across runs on a loaded machine */
      fputs(",\"cpu_s\":", o);
      num_or_null(o, r->cpu_s, "%.6g");
      json_spread(o, "replica_per_cpu_s", st.cpu_rate);
      json_spread(o, "cpu_busy", st.busy);
      /* what replicas buy: this row against the same experiment at R = 1 */
      if (isfinite(st.gain[0])) {
        json_spread(o, "replica_gain", st.gain);
        json_spread(o, "replica_cpu_gain", st.cpu_gain);
      }
      fputs(",\"gflop_per_s\":", o);
      num_or_null(o, gflop_per_s(r, &st), "%.6g");
      fputs(",\"peak_device_bytes\":", o);
      num_or_null(o, r->peak_bytes, "%.0f");
      fputs(",\"launches_per_step\":", o);
      num_or_null(o, launches_per_step(r), "%.4g");
      /* what the device's FMAs did around each round, and the products'
       * share of it round by round */
      json_spread(o, "fma_peak_gflop_per_s", st.peak);
      json_list(o, "fma_peak_gflop_per_s_rounds", r->fma_peak, r->rounds);
      json_spread(o, "peak_fraction", st.peak_fraction);
      if (r->torch_rounds) {
        fprintf(o, ",\"torch_version\":\"%s\",\"torch_threads\":%d", r->torch_version,
                r->torch_threads);
        json_spread(o, "torch_replica_per_s", st.torch);
        json_list(o, "torch_replica_per_s_rounds", r->torch_rate, r->torch_rounds);
        json_spread(o, "ratio_vs_torch", st.ratio);
      }
      fputs(",\"top_kernels\":[", o);
      for (size_t k = 0; k < r->n_top; k++)
        fprintf(o, "%s{\"name\":\"%s\",\"launches\":%.0f,\"device_s\":%.6g}", k ? "," : "",
                r->top[k].name, r->top[k].launches, r->top[k].device_s);
      fputs("]}", o);
    }
    fputs(i + 1 < n ? ",\n" : "\n", o);
  }
  fputs("]}\n", o);
}

/* A rate for the table: the median, and in md its range when there were
 * several rounds; "-" (md) or empty (csv) when unknown. */
static void cell(FILE *o, const double st[3], size_t rounds, int csv) {
  if (!isfinite(st[0]))
    fputs(csv ? "" : "-", o);
  else if (csv || rounds < 2)
    fprintf(o, "%.4g", st[0]);
  else
    fprintf(o, "%.4g (%.4g-%.4g)", st[0], st[1], st[2]);
}

/* CSV only: ",least,greatest" of a ratio's spread, or ",," when it has none. */
static void csv_range(FILE *o, const double st[3]) {
  if (isfinite(st[1]))
    fprintf(o, ",%.4g,%.4g", st[1], st[2]);
  else
    fputs(",,", o);
}

void hcl_bench_print_table(FILE *o, const bench_row *rows, size_t n, int csv) {
  const char *sep = csv ? "," : " | ";
  if (csv)
    fputs("hiercl_version,device_id,device,driver,experiment,replicas,unit,rounds,per_s,"
          "replica_per_s,replica_per_s_min,replica_per_s_max,replica_gain,replica_gain_min,"
          "replica_gain_max,cpu_busy,gflop_per_s,peak_device_bytes,"
          "torch_replica_per_s,ratio_vs_torch,ratio_vs_torch_min,ratio_vs_torch_max,"
          "launches_per_step,fma_peak_gflop_per_s,peak_fraction,top_kernels,error\n",
          o);
  else
    fputs("| device | driver | experiment | R | rounds | per s | replica per s | vs R = 1 |"
          " CPU busy | GFLOP/s | peak MiB | PyTorch replica per s | hiercl/PyTorch |"
          " launches a step | FMA peak GFLOP/s | % of peak | top kernels (device s) |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
          o);
  for (size_t i = 0; i < n; i++) {
    const bench_row *r = &rows[i];
    char top[256] = "";
    for (size_t k = 0; k < r->n_top; k++)
      snprintf(top + strlen(top), sizeof top - strlen(top), "%s%s %.3g",
               k ? (csv ? ";" : ", ") : "", r->top[k].name, r->top[k].device_s);
    row_stats st = row_spread(r);
    double gf = gflop_per_s(r, &st), mib = r->peak_bytes / 1048576.0;
    double per[3] = {st.rate[0] / r->c->replicas, NAN, NAN};
    if (csv)
      fprintf(o, "%s,%s,\"%s\",\"%s\",%s,%u,%s,%zu,", HIERCL_VERSION, r->dev->id, r->dev->name,
              r->dev->driver, r->c->name, r->c->replicas, r->c->unit, r->rounds);
    else
      fprintf(o, "| %s (%s) | %s | %s | %u | %zu | ", r->dev->id, r->dev->name, r->dev->driver,
              r->c->name, r->c->replicas, r->rounds);
    if (r->ok) {
      cell(o, per, 1, csv);
      fputs(sep, o);
      cell(o, st.rate, r->rounds, csv);
      if (csv) fprintf(o, ",%.6g,%.6g", st.rate[1], st.rate[2]);
      fputs(sep, o);
      cell(o, st.gain, r->rounds, csv);
      if (csv) csv_range(o, st.gain);
      fputs(sep, o);
      cell(o, st.busy, r->rounds, csv);
      fputs(sep, o);
    } else {
      fprintf(o, "%s%s%s%s%s", csv ? "" : "failed", sep, sep, sep, sep);
      if (csv) fputs(",,,,", o);
    }
    if (r->ok && isfinite(gf))
      fprintf(o, "%.3g", gf);
    else if (!csv)
      fputs("-", o);
    fputs(sep, o);
    if (r->ok && isfinite(mib))
      fprintf(o, csv ? "%.0f" : "%.1f", csv ? r->peak_bytes : mib);
    else if (!csv)
      fputs("-", o);
    fputs(sep, o);
    cell(o, st.torch, r->torch_rounds, csv);
    fputs(sep, o);
    if (!csv && isfinite(st.ratio[0]) && r->rounds > 1)
      fprintf(o, "%.3g (%.3g-%.3g)", st.ratio[0], st.ratio[1], st.ratio[2]);
    else if (isfinite(st.ratio[0]))
      fprintf(o, "%.3g", st.ratio[0]);
    else if (!csv)
      fputs("-", o);
    if (csv) csv_range(o, st.ratio);
    fputs(sep, o);
    double lps = r->ok ? launches_per_step(r) : NAN;
    if (isfinite(lps))
      fprintf(o, "%.3g", lps);
    else if (!csv)
      fputs("-", o);
    fputs(sep, o);
    cell(o, st.peak, r->rounds, csv);
    fputs(sep, o);
    double pct[3] = {100 * st.peak_fraction[0], 100 * st.peak_fraction[1],
                     100 * st.peak_fraction[2]};
    cell(o, csv ? st.peak_fraction : pct, r->rounds, csv);
    fputs(sep, o);
    if (csv)
      fprintf(o, "\"%s\",\"%s\"\n", top, r->ok ? "" : r->error);
    else
      fprintf(o, "%s |\n", r->ok ? top : r->error);
  }
}
