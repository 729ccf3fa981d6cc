/* Hyperparameter selection on the validation stream, as the papers do it
 * ("grid search over a holdout validation set"): every candidate of a sweep
 * point trains (as replicas of one run where the key batches), its record
 * goes to candidates.jsonl, and the point's record in sweep.jsonl is the
 * candidate with the lowest val_loss, per seed. The table, P* and the
 * exponents then read sweep.jsonl as for any sweep, so a method and its
 * baselines are tuned by the same procedure. */
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The whole records of a records text, sorted by (key, seed, position): a
 * sweep's selection looks up every (point, seed, candidate) after every run,
 * so each lookup is a binary search, not a scan of the whole text. */
typedef struct rec_ref {
  const char *key, *line;
  size_t klen, len, order;
  uint64_t seed;
} rec_ref;
typedef struct rec_index {
  rec_ref *r;
  size_t n;
} rec_index;

static int rec_cmp(const void *pa, const void *pb) {
  const rec_ref *a = pa, *b = pb;
  size_t m = a->klen < b->klen ? a->klen : b->klen;
  int c = memcmp(a->key, b->key, m);
  if (c) return c;
  if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
  if (a->seed != b->seed) return a->seed < b->seed ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* ix over text's whole record lines (text must outlive it); a torn or
 * foreign line is not a record. */
static hcl_status index_records(const char *text, rec_index *ix) {
  size_t cap = 1;
  for (const char *c = text; (c = strchr(c, '\n')); c++) cap++;
  ix->n = 0;
  if (!(ix->r = malloc(cap * sizeof *ix->r)))
    return hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    if (!nl) break; /* torn: not a record */
    size_t n = (size_t)(nl - line);
    const char *k = strstr(line, "\"key\":\""), *sd = strstr(line, ",\"seed\":");
    if (k && k < nl && sd && sd < nl && hcl_sweep_line_ok(line, n)) {
      rec_ref *r = &ix->r[ix->n];
      r->key = k + 7, r->klen = strcspn(k + 7, "\""), r->seed = strtoull(sd + 8, NULL, 10);
      r->line = line, r->len = n, r->order = ix->n++;
    }
    line = nl + 1;
  }
  qsort(ix->r, ix->n, sizeof *ix->r, rec_cmp);
  return HCL_OK;
}

/* The last whole record of (key, seed), or NULL; *len its length. */
static const char *last_record(const rec_index *ix, const char *key, uint64_t seed, size_t *len) {
  rec_ref q = {.key = key, .klen = strlen(key), .seed = seed, .order = SIZE_MAX};
  size_t lo = 0, hi = ix->n; /* the first entry after q: the last of (key, seed) precedes it */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (rec_cmp(&ix->r[mid], &q) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!lo) return NULL;
  const rec_ref *r = &ix->r[lo - 1];
  if (r->klen != q.klen || memcmp(r->key, key, q.klen) || r->seed != seed) return NULL;
  *len = r->len;
  return r->line;
}

void hcl_sweep_failure(hcl_sweep_failures *f, const char *key, const uint64_t *seed) {
  if (!f) return;
  size_t len = strlen(f->names), room = sizeof f->names - len;
  if (++f->n > 4) { /* the first few name the problem; the record file has the rest */
    if (f->n == 5 && room > 5) memcpy(f->names + len, ", ...", 6);
    return;
  }
  char s[32] = "";
  if (seed) snprintf(s, sizeof s, " seed %llu", (unsigned long long)*seed);
  /* a long key is cut (%.*s), never the seed */
  int keep = (int)(room > strlen(s) + 16 ? room - strlen(s) - 16 : 0);
  snprintf(f->names + len, room, "%s%.*s%s", len ? ", " : "", keep, *key ? key : "(all)", s);
}

/* One (visible point, seed): writes its selection record into f and returns
 * 1 (a candidate chosen) or 2 (none finished with a finite val_loss); -1
 * when a candidate has no record yet; 0 when no candidate finished and
 * only_completed is set (a failed selection is not written twice). p is the
 * point's first candidate. */
static int select_one(FILE *f, const hcl_grid *sw, const rec_index *cand, size_t p, size_t C,
                      uint64_t seed, const char *vkey, int only_completed, char **lines,
                      double *val, int *done) {
  size_t first_sel = sw->n_axes - sw->n_select, best = C;
  double best_v = INFINITY;
  for (size_t c = 0; c < C; c++) {
    char key[1024];
    size_t len;
    hcl_sweep_point_key_mask(sw, p + c, 0, key, sizeof key);
    const char *l = last_record(cand, key, seed, &len);
    free(lines[c]);
    if (!l || !(lines[c] = strndup(l, len))) return lines[c] = NULL, -1;
    /* 1 completed, 2 diverged (final, not selectable), 0 failed */
    done[c] = hcl_sweep_line_final(lines[c], len);
    if (!hcl_json_get_num(lines[c], "val_loss", &val[c])) val[c] = NAN;
    /* ties keep the first candidate in grid order: the choice is deterministic */
    if (done[c] == 1 && isfinite(val[c]) && val[c] < best_v) best_v = val[c], best = c;
  }
  if (best == C && only_completed) return 0;
  fputs("{\"point\":{", f);
  hcl_sweep_axes_json(f, sw, p, 0, first_sel);
  fputs("},\"key\":", f);
  hcl_json_str(f, vkey);
  fprintf(f, ",\"seed\":%llu,\"status\":\"%s\"", (unsigned long long)seed,
          best < C ? "completed" : "failed");
  if (best == C) fputs(",\"error\":\"no candidate finished with a finite val_loss\"", f);
  fputs(",\"selected\":", f);
  if (best < C) {
    fputc('{', f);
    hcl_sweep_axes_json(f, sw, p + best, first_sel, sw->n_axes);
    fputc('}', f);
  } else {
    fputs("null", f);
  }
  fputs(",\"candidates\":[", f);
  for (size_t c = 0; c < C; c++) {
    fputs(c ? ",{" : "{", f);
    hcl_sweep_axes_json(f, sw, p + c, first_sel, sw->n_axes);
    fprintf(f, ",\"status\":\"%s\",\"val_loss\":",
            done[c] == 1   ? "completed"
            : done[c] == 2 ? "diverged"
                           : "failed");
    hcl_json_num(f, val[c]);
    fputc('}', f);
  }
  fputc(']', f);
  if (best < C) { /* the chosen run: its directory, task and every metric */
    const char *tail = strstr(lines[best], ",\"run_dir\":");
    if (tail) fprintf(f, "%.*s", (int)strlen(tail) - 1, tail); /* without its closing brace */
  }
  fputs("}\n", f);
  return best < C ? 1 : 2;
}

hcl_status hcl_sweep_select_pending(const hcl_grid *sw, const char *dir, const char *sel_path,
                                    int sel_fd, const uint64_t *seeds, size_t nS,
                                    hcl_sweep_failures *failed) {
  /* every shard's records: the last candidate of a point may have run in another shard */
  char *cand = hcl_sweep_read_records(dir, "candidates"),
       *sel = hcl_sweep_read_records(dir, "sweep");
  if (!cand || !sel) {
    free(cand), free(sel);
    return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot read the sweep records: %s", dir,
                    strerror(errno));
  }
  if (!*cand) { /* nothing trained yet */
    free(cand), free(sel);
    return HCL_OK;
  }
  size_t first_sel = sw->n_axes - sw->n_select, C = 1;
  unsigned selmask = 0;
  for (size_t i = first_sel; i < sw->n_axes; i++) C *= sw->axes[i].n, selmask |= 1u << i;
  hcl_membuf mb;
  FILE *f = hcl_membuf_open(&mb);
  char **lines = calloc(C, sizeof *lines);
  double *val = calloc(C, sizeof *val);
  int *done = calloc(C, sizeof *done);
  rec_index ci = {0}, si = {0};
  if (!f || !lines || !val || !done || index_records(cand, &ci) != HCL_OK ||
      index_records(sel, &si) != HCL_OK) {
    if (f) hcl_membuf_close(NULL, &mb), hcl_membuf_free(&mb);
    free(cand), free(sel), free(lines), free(val), free(done), free(ci.r), free(si.r);
    return hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  }
  size_t np = hcl_sweep_n_points(sw);
  for (size_t p = 0; p < np; p += C) { /* candidate axes are last: fastest in the grid order */
    char vkey[1024];
    hcl_sweep_point_key_mask(sw, p, selmask, vkey, sizeof vkey);
    for (size_t k = 0; k < nS; k++) {
      size_t len;
      const char *prev = last_record(&si, vkey, seeds[k], &len);
      if (prev && hcl_sweep_line_completed(prev, len)) continue; /* selected before */
      /* none yet, or a failed one whose candidates may since have been re-run */
      int r = select_one(f, sw, &ci, p, C, seeds[k], vkey, prev != NULL, lines, val, done);
      /* failed now, or before and its candidates still have no finite val_loss */
      if (r == 0 || r == 2) hcl_sweep_failure(failed, vkey, &seeds[k]);
      if (r == 2)
        fprintf(stderr,
                "hiercl sweep: selection failed at %s seed %llu: no candidate finished with a "
                "finite val_loss\n",
                *vkey ? vkey : "(all)", (unsigned long long)seeds[k]);
    }
  }
  for (size_t c = 0; c < C; c++) free(lines[c]);
  free(cand), free(sel), free(lines), free(val), free(done), free(ci.r), free(si.r);
  hcl_status rc = hcl_membuf_close(NULL, &mb);
  if (rc == HCL_OK && mb.len) {
    off_t before = lseek(sel_fd, 0, SEEK_END);
    rc = hcl_write_fd(NULL, sel_fd, mb.data, mb.len, sel_path);
    if (rc == HCL_OK && fsync(sel_fd))
      rc = hcl_fail(NULL, HCL_ERR_IO, "%s: cannot write: %s", sel_path, strerror(errno));
    if (rc != HCL_OK && before >= 0 && ftruncate(sel_fd, before)) {
      /* cannot cut it back: the next resume drops the torn line */
    }
  }
  hcl_membuf_free(&mb);
  return rc;
}
