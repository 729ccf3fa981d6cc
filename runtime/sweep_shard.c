/* Sharded sweeps (Slurm job arrays): which run belongs to which shard, the
 * records of every shard read as one, --status, and --merge. Each shard
 * appends to its own sweep.shard-I-of-N.jsonl (and candidates.shard-I-of-N.jsonl),
 * so no two processes ever append to the same file. */
#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t hcl_sweep_jobs(const hcl_grid *sw, unsigned bmask, size_t *job) {
  size_t np = hcl_sweep_n_points(sw), n_jobs = 0;
  size_t stride[HCL_SWEEP_MAX_AXES] = {0}, s = 1;
  for (size_t i = sw->n_axes; i-- > 0;) { /* mixed radix, last axis fastest */
    if ((int)i == sw->seed_axis) continue;
    stride[i] = s;
    s *= sw->axes[i].n;
  }
  for (size_t p = 0; p < np; p++) {
    size_t first = p; /* the group's point with every batched axis at its first value */
    for (size_t i = 0; i < sw->n_axes; i++)
      if (bmask >> i & 1u) first -= hcl_sweep_value_at(sw, p, i) * stride[i];
    job[p] = first == p ? n_jobs++ : job[first];
  }
  return n_jobs;
}

typedef struct shard_file {
  unsigned i, n;
  char name[NAME_MAX + 1];
} shard_file;

static int cmp_shard(const void *a, const void *b) {
  const shard_file *x = a, *y = b;
  if (x->n != y->n) return x->n < y->n ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Append the whole records of path to *buf (a torn tail, such as a line a
 * running shard is writing, is left out). */
static int append_file(const char *path, char **buf, size_t *len) {
  char *t = hcl_file_text(path);
  if (!t) return errno == ENOENT ? 0 : -1;
  size_t keep = hcl_sweep_whole_prefix(t, strlen(t));
  char *nb = realloc(*buf, *len + keep + 1);
  if (!nb) return free(t), -1;
  memcpy(nb + *len, t, keep);
  *len += keep;
  nb[*len] = 0;
  *buf = nb;
  free(t);
  return 0;
}

char *hcl_sweep_read_records(const char *dir, const char *base) {
  char *buf = calloc(1, 1), path[PATH_MAX + 64];
  size_t len = 0;
  if (!buf) return NULL;
  snprintf(path, sizeof path, "%s/%s.jsonl", dir, base);
  if (append_file(path, &buf, &len)) return free(buf), NULL;
  DIR *d = opendir(dir);
  if (!d) return buf; /* no directory yet: no records */
  shard_file *files = NULL;
  size_t nf = 0, cap = 0;
  char pat[96];
  snprintf(pat, sizeof pat, "%s.shard-%%u-of-%%u.jsonl%%c", base);
  for (struct dirent *e; (e = readdir(d));) {
    unsigned i, n;
    char tail;
    if (sscanf(e->d_name, pat, &i, &n, &tail) != 2 || i >= n) continue;
    char canon[NAME_MAX + 1]; /* exactly the name a shard writes (no "+1", no leading zeros) */
    hcl_sweep_shard_name(base, i, n, canon, sizeof canon);
    if (strcmp(canon, e->d_name)) continue;
    if (nf == cap) {
      shard_file *nfiles = realloc(files, (cap = cap ? 2 * cap : 16) * sizeof *files);
      if (!nfiles) {
        closedir(d);
        free(files), free(buf);
        return NULL;
      }
      files = nfiles;
    }
    files[nf].i = i, files[nf].n = n;
    snprintf(files[nf].name, sizeof files[nf].name, "%s", e->d_name);
    nf++;
  }
  closedir(d);
  if (nf) qsort(files, nf, sizeof *files, cmp_shard); /* a fixed order, whatever readdir gives */
  for (size_t k = 0; k < nf; k++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[k].name);
    if (append_file(path, &buf, &len)) {
      free(files), free(buf);
      return NULL;
    }
  }
  free(files);
  return buf;
}

void hcl_sweep_shard_name(const char *base, unsigned i, unsigned n, char *out, size_t len) {
  snprintf(out, len, "%s.shard-%u-of-%u.jsonl", base, i, n);
}

/* The point whose key the record carries (keys[] of every point), or np. */
static size_t point_of(const char *line, const char *end, char **keys, size_t np) {
  const char *kp = strstr(line, "\"key\":\"");
  if (!kp || kp >= end) return np;
  kp += 7;
  for (size_t p = 0; p < np; p++) {
    size_t kl = strlen(keys[p]);
    if (kp + kl < end && !strncmp(kp, keys[p], kl) && kp[kl] == '"') return p;
  }
  return np;
}

hcl_status hcl_sweep_pick_records(const hcl_grid *sw, const char *text, const uint64_t *seeds,
                                  size_t nS, hcl_sweep_pick *pick) {
  size_t np = hcl_sweep_n_points(sw);
  memset(pick, 0, np * nS * sizeof *pick);
  char **keys = calloc(np, sizeof *keys);
  for (size_t p = 0; keys && p < np; p++) {
    char key[1024];
    hcl_sweep_point_key_mask(sw, p, 0, key, sizeof key);
    if (!(keys[p] = strdup(key))) {
      for (size_t q = 0; q < p; q++) free(keys[q]);
      free(keys), keys = NULL;
    }
  }
  if (!keys) return hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    if (!nl) break; /* torn: not a record */
    size_t n = (size_t)(nl - line);
    if (hcl_sweep_line_ok(line, n)) {
      size_t p = point_of(line, nl, keys, np), k = nS;
      const char *sp = strstr(line, ",\"seed\":");
      if (sp && sp < nl) {
        unsigned long long v = strtoull(sp + 8, NULL, 10);
        for (k = 0; k < nS && seeds[k] != v; k++) {
        }
      }
      int fin = hcl_sweep_line_final(line, n);
      /* a final record wins over any other (a done point never runs again);
       * among equals the last one, in the order the files were read */
      if (p < np && k < nS && (fin || !pick[p * nS + k].final))
        pick[p * nS + k] = (hcl_sweep_pick){line, n, fin};
    }
    line = nl + 1;
  }
  for (size_t p = 0; p < np; p++) free(keys[p]);
  free(keys);
  return HCL_OK;
}

hcl_status hcl_sweep_merge_file(const hcl_grid *sw, const char *dir, const char *base,
                                const uint64_t *seeds, size_t nS) {
  char *text = hcl_sweep_read_records(dir, base);
  size_t np = hcl_sweep_n_points(sw);
  hcl_sweep_pick *pick = calloc(np * nS, sizeof *pick);
  if (!text || !pick) {
    free(text), free(pick);
    return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot read the %s records: %s", dir, base,
                    errno ? strerror(errno) : "out of memory");
  }
  hcl_status rc = hcl_sweep_pick_records(sw, text, seeds, nS, pick);
  hcl_membuf mb;
  FILE *f = rc == HCL_OK ? hcl_membuf_open(&mb) : NULL;
  if (rc == HCL_OK && !f) rc = hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  for (size_t j = 0; f && j < np * nS; j++) /* grid order, then seed order */
    if (pick[j].line) fprintf(f, "%.*s\n", (int)pick[j].len, pick[j].line);
  if (f) {
    rc = hcl_membuf_close(NULL, &mb);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, base);
    if (rc == HCL_OK) rc = hcl_file_replace(NULL, path, mb.data, mb.len);
    hcl_membuf_free(&mb);
  }
  free(text), free(pick);
  return rc;
}

/* The "error" text of a record, JSON escapes undone (one line: newlines as spaces). */
static void print_error(FILE *out, const char *line, size_t len) {
  const char *e = strstr(line, ",\"error\":\""), *end = line + len;
  if (!e || e >= end) return;
  fputs(": ", out);
  for (e += 10; e < end && *e != '"'; e++) {
    if (*e == '\\' && e + 1 < end) {
      e++;
      if (*e == 'n' || *e == 't' || *e == 'r')
        fputc(' ', out);
      else if (*e == 'u' && e + 4 < end)
        fputc('?', out), e += 4; /* a control character: never raw on a terminal */
      else
        fputc(*e, out);
    } else {
      fputc(*e, out);
    }
  }
}

hcl_status hcl_sweep_status_report(const hcl_grid *sw, const char *dir, const char *base,
                                   const uint64_t *seeds, size_t nS, const size_t *job,
                                   unsigned shard_index, unsigned shard_count, FILE *out,
                                   size_t counts[4], unsigned char *undone) {
  char *text = hcl_sweep_read_records(dir, base);
  size_t np = hcl_sweep_n_points(sw);
  hcl_sweep_pick *pick = calloc(np * nS + 1, sizeof *pick);
  if (!text || !pick) {
    free(text), free(pick);
    return hcl_fail(NULL, HCL_ERR_IO, "%s: cannot read the %s records: %s", dir, base,
                    errno ? strerror(errno) : "out of memory");
  }
  hcl_status rc = hcl_sweep_pick_records(sw, text, seeds, nS, pick);
  counts[0] = counts[1] = counts[2] = counts[3] = 0;
  for (size_t p = 0; rc == HCL_OK && p < np; p++) {
    unsigned shard = shard_count ? (unsigned)(job[p] % shard_count) : 0;
    size_t done = 0, fin = 0;
    const hcl_sweep_pick *failed = NULL, *diverged = NULL;
    for (size_t k = 0; k < nS; k++) {
      const hcl_sweep_pick *q = &pick[p * nS + k];
      done += q->final == 1, fin += q->final != 0;
      if (q->line && !q->final && !failed) failed = q;
      if (q->final == 2 && !diverged) diverged = q;
    }
    /* done, failed, pending; a diverged point is final: done or failed */
    int state = fin == nS && (!diverged || sw->n_select) ? 0 : failed || fin == nS ? 1 : 2;
    if (undone && state && fin < nS) undone[shard] = 1;
    if (shard_count && shard_index < shard_count && shard != shard_index) continue;
    counts[state]++;
    counts[3] += fin == nS && diverged;
    if (!out) continue;
    char key[1024];
    hcl_sweep_point_key_mask(sw, p, 0, key, sizeof key);
    fprintf(out, "%-8s %s",
            fin == nS && diverged ? "diverged"
            : state == 0          ? "done"
            : state == 1          ? "failed"
                                  : "pending",
            *key ? key : "(all)");
    if (shard_count) fprintf(out, "  [run %zu, shard %u/%u]", job[p], shard, shard_count);
    if (done < nS && nS > 1) fprintf(out, "  (%zu of %zu seeds done)", done, nS);
    const hcl_sweep_pick *why = failed ? failed : diverged;
    if (why) print_error(out, why->line, why->len);
    fputc('\n', out);
  }
  free(text), free(pick);
  return rc;
}

int hcl_sweep_has_shards(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int found = 0;
  for (struct dirent *e; !found && (e = readdir(d));)
    found = !strncmp(e->d_name, "sweep.shard-", 12) || !strncmp(e->d_name, "candidates.shard-", 17);
  closedir(d);
  return found;
}
