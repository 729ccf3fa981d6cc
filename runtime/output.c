/* The run directory: manifest.json (what ran), metrics.jsonl (one line per
 * replica per evaluation, flushed per line) and summary.json (how it ended). */
#include "output.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void slug(const char *in, char *out, size_t len) {
  size_t j = 0;
  for (; *in && j + 1 < len; in++) {
    char c = *in;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    out[j++] = ok ? c : '-';
  }
  out[j] = 0;
}

hcl_status hcl_out_open(hcl_ctx *ctx, hcl_run_out *o, const char *parent, const char *name) {
  HCL_TRY(hcl_mkdir_p(ctx, parent));
  char stamp[32], n[128], d[96];
  time_t now = time(NULL);
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime(&now));
  slug(name, n, sizeof n);
  slug(ctx->dev.id, d, sizeof d);
  for (int k = 1; k < 1000; k++) {
    if (k == 1)
      snprintf(o->dir, sizeof o->dir, "%s/%s_%s_%s", parent, stamp, n, d);
    else
      snprintf(o->dir, sizeof o->dir, "%s/%s_%s_%s-%d", parent, stamp, n, d, k);
    if (mkdir(o->dir, 0777) == 0) break; /* mkdir is atomic: never reuse a directory */
    if (errno != EEXIST)
      return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot create: %s", o->dir, strerror(errno));
  }
  char p[1100];
  snprintf(p, sizeof p, "%s/metrics.jsonl", o->dir);
  o->metrics = fopen(p, "w");
  if (!o->metrics) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", p, strerror(errno));
  return HCL_OK;
}

void hcl_out_close(hcl_run_out *o) {
  if (o->metrics) fclose(o->metrics);
  o->metrics = NULL;
}

/* Write f through a temporary file and rename, so a reader never sees half. */
static FILE *open_tmp(const hcl_run_out *o, const char *file, char *tmp, size_t len) {
  snprintf(tmp, len, "%s/.%s.tmp", o->dir, file);
  return fopen(tmp, "w");
}

static hcl_status commit_tmp(hcl_ctx *ctx, const hcl_run_out *o, const char *file, FILE *f,
                             const char *tmp) {
  char dst[1100];
  snprintf(dst, sizeof dst, "%s/%s", o->dir, file);
  int bad = ferror(f);
  if (fclose(f) || bad || rename(tmp, dst))
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", dst, strerror(errno));
  return HCL_OK;
}

static void write_section(FILE *f, const hcl_params *p) {
  fputc('{', f);
  for (size_t i = 0; i < p->n; i++) {
    if (i) fputc(',', f);
    hcl_json_str(f, p->kv[i].key);
    fputc(':', f);
    hcl_json_str(f, p->kv[i].value);
  }
  fputc('}', f);
}

static void write_plugin(FILE *f, const hcl_plugin *pl) {
  fputs("{\"name\":", f);
  hcl_json_str(f, pl->desc->name);
  fputs(",\"version\":", f);
  hcl_json_str(f, pl->desc->version);
  fputs(",\"path\":", f);
  hcl_json_str(f, pl->path);
  fputs(",\"sha256\":", f);
  hcl_json_str(f, pl->sha256);
  fputc('}', f);
}

hcl_status hcl_out_manifest(hcl_ctx *ctx, const hcl_run_out *o, const hcl_manifest *m) {
  char tmp[1100];
  FILE *f = open_tmp(o, "manifest.json", tmp, sizeof tmp);
  if (!f) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
  char stamp[32];
  time_t now = time(NULL);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  fputs("{\n\"hiercl_version\":", f);
  hcl_json_str(f, HIERCL_VERSION);
  fputs(",\n\"written\":", f);
  hcl_json_str(f, stamp);
  fputs(",\n\"status\":", f);
  hcl_json_str(f, m->status);
  if (m->error && *m->error) {
    fputs(",\n\"error\":", f);
    hcl_json_str(f, m->error);
  }
  fputs(",\n\"config_path\":", f);
  hcl_json_str(f, m->cfg->path);
  fputs(",\n\"config_text\":", f);
  hcl_json_str(f, m->cfg->text);
  fputs(",\n\"config\":{", f);
  for (size_t i = 0; i < m->n_sections; i++) {
    if (i) fputc(',', f);
    hcl_json_str(f, m->sections[i]->section);
    fputc(':', f);
    write_section(f, m->sections[i]);
  }
  fputs("},\n\"plugins\":{\"target\":", f);
  write_plugin(f, m->target);
  fputs(",\"model\":", f);
  write_plugin(f, m->model);
  fputs("},\n\"device\":{\"id\":", f);
  hcl_json_str(f, ctx->dev.id);
  fputs(",\"name\":", f);
  hcl_json_str(f, ctx->dev.name);
  fputs(",\"type\":", f);
  hcl_json_str(f, hcl_device_type_name(ctx->dev.type));
  fputs(",\"platform\":", f);
  hcl_json_str(f, ctx->dev.platform);
  fputs(",\"platform_version\":", f);
  hcl_json_str(f, ctx->dev.platform_version);
  fputs(",\"vendor\":", f);
  hcl_json_str(f, ctx->dev.vendor);
  fputs(",\"version\":", f);
  hcl_json_str(f, ctx->dev.version);
  fputs(",\"driver\":", f);
  hcl_json_str(f, ctx->dev.driver);
  fputs(",\"compute_units\":", f);
  hcl_json_num(f, ctx->dev.compute_units);
  fputs(",\"global_mem\":", f);
  hcl_json_num(f, (double)ctx->dev.global_mem);
  fputs("},\n\"replicas\":", f);
  hcl_json_num(f, m->replicas);
  fputs(",\n\"seeds\":[", f);
  for (uint32_t r = 0; r < m->replicas; r++) {
    if (r) fputc(',', f);
    hcl_json_num(f, (double)m->seeds[r]);
  }
  fputs("],\n\"params_per_replica\":", f);
  hcl_json_num(f, (double)m->n_params);
  fputs(",\n\"notes\":{", f);
  for (size_t i = 0; i < ctx->n_notes; i++) {
    if (i) fputc(',', f);
    hcl_json_str(f, ctx->notes[i].key);
    fputc(':', f);
    if (ctx->notes[i].is_json)
      fputs(ctx->notes[i].value, f);
    else
      hcl_json_str(f, ctx->notes[i].value);
  }
  fputs("}\n}\n", f);
  return commit_tmp(ctx, o, "manifest.json", f, tmp);
}

/* hcl_metric_sink.write: one JSON object per replica. */
static hcl_status sink_write(void *user, uint64_t step, uint64_t samples, const char *phase,
                             double lr, double wall_s, size_t n, const char *const *names,
                             const double *values, uint32_t R) {
  hcl_run_out *o = user;
  FILE *f = o->metrics;
  for (uint32_t r = 0; r < R; r++) {
    fprintf(f, "{\"step\":%llu,\"samples\":%llu,\"replica\":%u,\"seed\":%llu,\"phase\":",
            (unsigned long long)step, (unsigned long long)samples, r,
            (unsigned long long)o->seeds[r]);
    hcl_json_str(f, phase);
    fputs(",\"lr\":", f);
    hcl_json_num(f, lr);
    fputs(",\"wall_s\":", f);
    hcl_json_num(f, wall_s);
    for (size_t i = 0; i < n; i++) {
      fputc(',', f);
      hcl_json_str(f, names[i]);
      fputc(':', f);
      hcl_json_num(f, values[i * R + r]);
    }
    fputs("}\n", f);
  }
  fflush(f); /* a crash or Ctrl-C keeps every line written so far */
  return ferror(f) ? HCL_ERR_IO : HCL_OK;
}

hcl_metric_sink hcl_out_sink(hcl_run_out *o) {
  hcl_metric_sink s = {o, sink_write};
  return s;
}

hcl_status hcl_out_summary(hcl_ctx *ctx, const hcl_run_out *o, const hcl_trainer *t,
                           const char *status, const char *error) {
  char tmp[1100];
  FILE *f = open_tmp(o, "summary.json", tmp, sizeof tmp);
  if (!f) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
  double wall = t->t0 > 0 ? hcl_now() - t->t0 : 0;
  fputs("{\n\"status\":", f);
  hcl_json_str(f, status);
  if (error && *error) {
    fputs(",\n\"error\":", f);
    hcl_json_str(f, error);
  }
  fprintf(f, ",\n\"steps\":%llu,\n\"samples\":%llu,\n\"evaluations\":%llu,\n\"wall_s\":",
          (unsigned long long)t->step, (unsigned long long)t->samples,
          (unsigned long long)t->evals);
  hcl_json_num(f, wall);
  fprintf(f, ",\n\"task\":\"%s\",\n\"n_classes\":%zu",
          t->tinfo.task == HCL_TASK_CLASSES  ? "classes"
          : t->tinfo.task == HCL_TASK_BINARY ? "binary"
                                             : "regression",
          t->tinfo.task == HCL_TASK_CLASSES ? t->tinfo.n_classes : 0);
  fputs(",\n\"steps_per_s\":", f);
  hcl_json_num(f, wall > 0 ? (double)t->step / wall : 0);
  /* device memory hiercl held at most (every hcl_buf_alloc, plugins included) */
  fprintf(f, ",\n\"peak_device_bytes\":%zu", hcl_mem_peak(ctx));
  fputs(",\n\"replicas\":[", f);
  for (uint32_t r = 0; t->last_train && r < t->cfg->replicas; r++) {
    fprintf(f, "%s\n {\"replica\":%u,\"seed\":%llu,\"best_test_loss\":", r ? "," : "", r,
            (unsigned long long)t->cfg->seeds[r]);
    hcl_json_num(f, t->best_test[r]);
    for (size_t i = 0; i < t->m_n; i++) { /* the last evaluation's metrics, probes included */
      fputc(',', f);
      hcl_json_str(f, t->m_names[i]);
      fputc(':', f);
      hcl_json_num(f, t->m_values[i * t->cfg->replicas + r]);
    }
    fputc('}', f);
  }
  fputs("],\n\"kernels\":{", f);
  for (size_t i = 0; i < ctx->n_stats; i++) {
    fprintf(f, "%s\n \"%s\":{\"launches\":%llu", i ? "," : "", ctx->stats[i].label,
            (unsigned long long)ctx->stats[i].launches);
    if (ctx->profiling) {
      fputs(",\"device_s\":", f);
      hcl_json_num(f, ctx->stats[i].device_s);
    }
    fputc('}', f);
  }
  fputs("}\n}\n", f);
  return commit_tmp(ctx, o, "summary.json", f, tmp);
}
