/* The run directory: manifest.json (what ran), metrics.jsonl (one line per
 * replica per evaluation, flushed per line) and summary.json (how it ended). */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
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

hcl_status hcl_out_check_parent(hcl_ctx *ctx, const char *parent, size_t extra) {
  size_t n = strlen(parent), max = HCL_RUN_DIR_MAX - HCL_OUT_ROOM - extra;
  if (n <= max) return HCL_OK;
  /* refused, never cut: a cut name would land in another run's directory */
  return hcl_fail(ctx, HCL_ERR_CONFIG,
                  "--out / [run] out '%.40s...' is too long: %zu characters (at most %zu: a run "
                  "directory's path is limited to %d bytes, below PATH_MAX = %d)",
                  parent, n, max, HCL_RUN_DIR_MAX, PATH_MAX);
}

hcl_status hcl_out_open(hcl_ctx *ctx, hcl_run_out *o, const char *parent, const char *name) {
  o->ctx = ctx;
  o->metrics_open = 0;
  HCL_TRY(hcl_out_check_parent(ctx, parent, 0));
  HCL_TRY(hcl_mkdir_p(ctx, parent));
  char stamp[32], n[128], d[96];
  time_t now = time(NULL);
  struct tm tm;
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime_r(&now, &tm)); /* threads of a sweep too */
  slug(name, n, sizeof n);
  slug(ctx->dev.id, d, sizeof d);
  int made = 0;
  for (int k = 1; k < 1000 && !made; k++) {
    int len = k == 1 ? snprintf(o->dir, sizeof o->dir, "%s/%s_%s_%s", parent, stamp, n, d)
                     : snprintf(o->dir, sizeof o->dir, "%s/%s_%s_%s-%d", parent, stamp, n, d, k);
    if (len < 0 || (size_t)len >= sizeof o->dir) /* checked above; never write a cut name */
      return hcl_fail(ctx, HCL_ERR_CONFIG, "%.80s...: run directory path longer than PATH_MAX",
                      parent);
    if (mkdir(o->dir, 0777) == 0)
      made = 1; /* mkdir fails on an existing directory: a run never reuses one */
    else if (errno != EEXIST)
      return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot create: %s", o->dir, strerror(errno));
  }
  if (!made)
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot create a new run directory: 999 names taken",
                    o->dir);
  HCL_TRY(hcl_sync_parent(ctx, o->dir));
  if (snprintf(o->metrics_path, sizeof o->metrics_path, "%s/metrics.jsonl", o->dir) >=
      (int)sizeof o->metrics_path) /* HCL_OUT_ROOM leaves room: cannot happen */
    return hcl_fail(ctx, HCL_ERR_IO, "%s: path longer than PATH_MAX", o->dir);
  o->metrics_fd = open(o->metrics_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
  if (o->metrics_fd < 0)
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", o->metrics_path, strerror(errno));
  o->metrics_open = 1;
  return HCL_OK;
}

hcl_status hcl_out_close(hcl_run_out *o) {
  if (!o->metrics_open) return HCL_OK;
  o->metrics_open = 0;
  int bad = fsync(o->metrics_fd), e = errno;
  if (close(o->metrics_fd) && !bad) bad = 1, e = errno;
  return bad ? hcl_fail(o->ctx, HCL_ERR_IO, "%s: cannot write: %s", o->metrics_path, strerror(e))
             : HCL_OK;
}

/* Format a whole file in memory, then replace it on disk in one durable step. */
static FILE *begin(hcl_ctx *ctx, hcl_membuf *m) {
  FILE *f = hcl_membuf_open(m);
  if (!f) hcl_fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  return f;
}

static hcl_status commit(hcl_ctx *ctx, const hcl_run_out *o, const char *file, hcl_membuf *m) {
  char dst[PATH_MAX];
  hcl_status rc = hcl_membuf_close(ctx, m);
  if (rc == HCL_OK && snprintf(dst, sizeof dst, "%s/%s", o->dir, file) >= (int)sizeof dst)
    rc = hcl_fail(ctx, HCL_ERR_IO, "%s: path longer than PATH_MAX", o->dir);
  if (rc == HCL_OK) rc = hcl_file_replace(ctx, dst, m->data, m->len);
  hcl_membuf_free(m);
  return rc;
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
  hcl_membuf mb;
  FILE *f = begin(ctx, &mb);
  if (!f) return HCL_ERR_NOMEM;
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
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
  return commit(ctx, o, "manifest.json", &mb);
}

/* hcl_metric_sink.write: one JSON object per replica. */
static hcl_status sink_write(void *user, uint64_t step, uint64_t samples, const char *phase,
                             double lr, double wall_s, size_t n, const char *const *names,
                             const double *values, uint32_t R) {
  hcl_run_out *o = user;
  hcl_membuf mb;
  FILE *f = begin(o->ctx, &mb);
  if (!f) return HCL_ERR_NOMEM;
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
  /* one write(2) per evaluation: a crash or Ctrl-C keeps every line written
   * so far; a failure names the file and the OS error */
  hcl_status rc = hcl_membuf_close(o->ctx, &mb);
  off_t before = lseek(o->metrics_fd, 0, SEEK_END);
  if (rc == HCL_OK) rc = hcl_write_fd(o->ctx, o->metrics_fd, mb.data, mb.len, o->metrics_path);
  if (rc != HCL_OK && before >= 0 && ftruncate(o->metrics_fd, before)) {
    /* the torn tail stays; readers skip a line without its newline */
  }
  hcl_membuf_free(&mb);
  return rc;
}

hcl_metric_sink hcl_out_sink(hcl_run_out *o) {
  hcl_metric_sink s = {o, sink_write};
  return s;
}

hcl_status hcl_out_summary(hcl_ctx *ctx, const hcl_run_out *o, const hcl_trainer *t,
                           const char *status, const char *error) {
  hcl_membuf mb;
  FILE *f = begin(ctx, &mb);
  if (!f) return HCL_ERR_NOMEM;
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
  /* CPU time beside wall time: on a shared machine wall time counts the
   * others' load, CPU time does not (other runs of this process count too) */
  fputs(",\n\"cpu_s\":", f);
  hcl_json_num(f, t->t0 > 0 ? hcl_cpu_now() - t->cpu0 : 0);
  fputs(",\n\"steps_per_s\":", f);
  hcl_json_num(f, wall > 0 ? (double)t->step / wall : 0);
  /* device memory hiercl held at most (every hcl_buf_alloc, plugins included) */
  fprintf(f, ",\n\"peak_device_bytes\":%zu", hcl_mem_peak(ctx));
  fprintf(f, ",\n\"gemm_flops\":%.0f", ctx->gemm_flops);
  fputs(",\n\"replicas\":[", f);
  for (uint32_t r = 0; t->last_train && r < t->cfg->replicas; r++) {
    if (t->diverged && t->diverged[r] >= 0) { /* its numbers are void: none are written */
      fprintf(f, "%s\n {\"replica\":%u,\"seed\":%llu,\"diverged_at_step\":%d}", r ? "," : "", r,
              (unsigned long long)t->cfg->seeds[r], (int)t->diverged[r]);
      continue;
    }
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
  hcl_profile_drain(ctx); /* the launches whose times are not read yet */
  for (size_t i = 0; i < ctx->n_stats; i++) {
    fputs(i ? ",\n " : "\n ", f);
    hcl_json_str(f, ctx->stats[i].label); /* a plugin's label: escaped like any string */
    fprintf(f, ":{\"launches\":%llu", (unsigned long long)ctx->stats[i].launches);
    if (ctx->profiling) {
      fputs(",\"device_s\":", f);
      hcl_json_num(f, ctx->stats[i].device_s);
    }
    fputc('}', f);
  }
  fputs("}\n}\n", f);
  return commit(ctx, o, "summary.json", &mb);
}
