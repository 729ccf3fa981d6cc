/* Running a sweep's runs: what one run needs (its replicas and overrides),
 * recording it, the progress display, and the local engines: one run after
 * another on one device, or one worker thread per device pulling runs from
 * one queue. Each thread has its own session (plugin registry, context,
 * compiled programs); the records file, selection and progress are shared
 * under env->lock. */
#include "output.h"
#include "sweep.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

hcl_status hcl_sweep_job_alloc(const hcl_sweep_env *env, hcl_sweep_job *j) {
  memset(j, 0, sizeof *j);
  size_t R = env->Rmax ? env->Rmax : 1;
  j->sets = calloc(env->opt->run.n_sets + HCL_SWEEP_MAX_AXES + 2, sizeof *j->sets);
  j->own = calloc(HCL_SWEEP_MAX_AXES, sizeof *j->own);
  j->pts = calloc(R, sizeof *j->pts);
  j->rseeds = calloc(R, sizeof *j->rseeds);
  j->skip = calloc(R, 1);
  j->seedlist = calloc(R + 2, 64); /* numbers, 20 digits at most */
  int nomem = !j->sets || !j->own || !j->pts || !j->rseeds || !j->skip || !j->seedlist;
  for (size_t i = 0; i < env->sw->n_axes; i++)
    if (env->bmask >> i & 1u) nomem |= !(j->lists[i] = calloc(R + 2, HCL_SWEEP_MAX_VALUE_LEN + 8));
  if (nomem) {
    hcl_sweep_job_free(j);
    return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  }
  return HCL_OK;
}

void hcl_sweep_job_free(hcl_sweep_job *j) {
  free(j->sets);
  free(j->own);
  free(j->pts);
  free(j->rseeds);
  free(j->skip);
  free(j->seedlist);
  for (size_t i = 0; i < HCL_SWEEP_MAX_AXES; i++) free(j->lists[i]);
  memset(j, 0, sizeof *j);
}

void hcl_sweep_job_prepare(const hcl_sweep_env *env, size_t p, hcl_sweep_job *j) {
  const hcl_grid *sw = env->sw;
  size_t np = hcl_sweep_n_points(sw);
  j->p = p;
  j->R = j->n_done = j->n_points = 0;
  hcl_sweep_point_key_mask(sw, p, env->bmask, j->gkey, sizeof j->gkey);
  for (size_t q = 0; q < np; q++) { /* the run's replicas: (point, seed) pairs */
    char k2[1024];
    hcl_sweep_point_key_mask(sw, q, env->bmask, k2, sizeof k2);
    if (strcmp(k2, j->gkey)) continue;
    char key[1024];
    hcl_sweep_point_key_mask(sw, q, 0, key, sizeof key);
    size_t undone = 0;
    for (size_t k = 0; k < env->nS; k++, j->R++) {
      /* per seed: a torn group reruns */
      int done = hcl_sweep_done_before(env->previous, key, env->seeds[k]);
      j->pts[j->R] = q;
      j->rseeds[j->R] = env->seeds[k];
      j->skip[j->R] = (unsigned char)done;
      j->n_done += (size_t)done;
      undone += !done;
    }
    j->n_points += undone > 0;
  }
  size_t ns = 0;
  for (size_t i = 0; i < env->opt->run.n_sets; i++) j->sets[ns++] = env->opt->run.sets[i];
  for (size_t i = 0, k = 0; i < sw->n_axes; i++) {
    if ((int)i == sw->seed_axis || (env->bmask >> i & 1u)) continue;
    snprintf(j->own[k], sizeof j->own[k], "%.96s=%.4000s", sw->axes[i].key,
             sw->axes[i].values[hcl_sweep_value_at(sw, p, i)]);
    j->sets[ns++] = j->own[k++];
  }
  char *sl = j->seedlist;
  sl += sprintf(sl, "run.seeds=");
  for (size_t r = 0; r < j->R; r++)
    sl += sprintf(sl, "%s%llu", r ? ", " : "", (unsigned long long)j->rseeds[r]);
  if (sw->seed_axis >= 0 || env->group) j->sets[ns++] = j->seedlist;
  for (size_t i = 0; i < sw->n_axes; i++) {
    if (!(env->bmask >> i & 1u)) continue;
    char *zl = j->lists[i];
    zl += sprintf(zl, "%s=", env->blist[i]);
    for (size_t r = 0; r < j->R; r++)
      zl += sprintf(zl, "%s%s", r ? ", " : "",
                    sw->axes[i].values[hcl_sweep_value_at(sw, j->pts[r], i)]);
    j->sets[ns++] = j->lists[i];
  }
  j->n_sets = ns;
}

hcl_status hcl_sweep_job_run(hcl_sweep_env *env, hcl_sweep_job *j, hcl_session *session,
                             const char *device, hcl_status *prc, char *err, size_t errlen,
                             char **text, size_t *len) {
  hcl_run_options ro = env->opt->run;
  ro.sets = j->sets;
  ro.n_sets = j->n_sets;
  ro.out_dir = env->runs;
  ro.dry_run = 0;
  ro.session = session;
  if (device) ro.device = device;
  *prc = hcl_run(&ro, err, errlen);
  hcl_membuf mb;
  FILE *f = hcl_membuf_open(&mb);
  if (!f) return hcl_fail(NULL, HCL_ERR_NOMEM, "out of host memory");
  hcl_sweep_record_text(env->sw, j, ro.run_dir, ro.device_id,
                        *prc == HCL_OK                ? "completed"
                        : *prc == HCL_ERR_INTERRUPTED ? "interrupted"
                                                      : "failed",
                        *prc == HCL_OK ? NULL : err, f);
  hcl_status rc = hcl_membuf_close(NULL, &mb);
  if (rc == HCL_OK) {
    *text = mb.data, *len = mb.len;
    mb.data = NULL;
  }
  hcl_membuf_free(&mb);
  return rc;
}

/* The string value of "name":"..." in the record line [line, end), or NULL;
 * *n its length (JSON escapes left as they are). */
static const char *rec_str(const char *line, const char *end, const char *name, int *n) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"%s\":\"", name);
  const char *v = strstr(line, pat);
  if (!v || v >= end) return *n = 0, NULL;
  v += strlen(pat);
  *n = (int)strcspn(v, "\"");
  return v;
}

/* The progress after a run: on a terminal one line redrawn in place; in a
 * log (Slurm, MPI) one plain line per finished point, then the runs' count. */
static void progress(hcl_sweep_env *env, const hcl_sweep_job *j, const char *text, size_t len,
                     hcl_status prc) {
  double el = hcl_now() - env->t0;
  double left = env->points_done
                    ? el / (double)env->points_done * (double)(env->points_todo - env->points_done)
                    : 0;
  if (env->progress_tty) {
    fprintf(stderr,
            "\r\033[Khiercl sweep: %s%zu/%zu points done (%zu/%zu runs), %.0f s, ETA %d:%02d",
            env->tag, env->points_done, env->points_todo, env->ran, env->n_tasks, el,
            (int)(left / 60), (int)left % 60);
    if (env->ran == env->n_tasks || prc != HCL_OK) fputc('\n', stderr);
    fflush(stderr);
    return;
  }
  /* one line per point of the run: its key, and its outcome from its records */
  size_t last = (size_t)-1;
  for (size_t r = 0; r < j->R; r++) {
    if (j->skip[r] || j->pts[r] == last) continue;
    last = j->pts[r];
    char key[1024];
    hcl_sweep_point_key_mask(env->sw, last, 0, key, sizeof key);
    char pat[1100];
    snprintf(pat, sizeof pat, "\"key\":\"%s\",", key);
    const char *at = text ? strstr(text, pat) : NULL;
    const char *nl = at ? memchr(at, '\n', (size_t)(text + len - at)) : NULL;
    int sl = 0, dl = 0;
    const char *st = nl ? rec_str(at, nl, "status", &sl) : NULL;
    const char *dev = nl ? rec_str(at, nl, "device", &dl) : NULL;
    fprintf(stderr, "hiercl sweep: %spoint %s: %.*s%s%.*s\n", env->tag, *key ? key : "(all)",
            st ? sl : 6, st ? st : "failed", dev ? " on " : "", dl, dev ? dev : "");
  }
  fprintf(stderr,
          "hiercl sweep: %s%zu/%zu runs done (%zu/%zu points), %.0f s elapsed, ETA %d:%02d\n",
          env->tag, env->ran, env->n_tasks, env->points_done, env->points_todo, el,
          (int)(left / 60), (int)left % 60);
}

/* The replicas of a completed run recorded failed: each is a failure of the
 * sweep, named with its seed. A diverged one is named, not counted: it is
 * final (an unselectable candidate, or a point the sweep's exit reports). */
static void count_failed_replicas(hcl_sweep_env *env, const char *text, size_t len) {
  for (const char *line = text; line && line < text + len;) {
    const char *nl = memchr(line, '\n', (size_t)(text + len - line));
    if (!nl) break;
    int sl, kl, el;
    const char *st = rec_str(line, nl, "status", &sl), *k = rec_str(line, nl, "key", &kl);
    const char *sd = strstr(line, ",\"seed\":"), *e = rec_str(line, nl, "error", &el);
    int failed = st && sl == 6 && !strncmp(st, "failed", 6);
    int diverged = st && sl == 8 && !strncmp(st, "diverged", 8);
    if ((failed || diverged) && k && sd && sd < nl) {
      char key[1024];
      snprintf(key, sizeof key, "%.*s", kl, k);
      uint64_t seed = strtoull(sd + 8, NULL, 10);
      if (failed) env->failures++, hcl_sweep_failure(&env->run_fail, key, &seed);
      if (env->progress_tty) fputc('\n', stderr);
      fprintf(stderr, "hiercl sweep: %s%s seed %llu %s: %.*s%s\n", env->tag, *key ? key : "(all)",
              (unsigned long long)seed, failed ? "failed" : "diverged", el, e ? e : "",
              failed              ? ""
              : env->sw->n_select ? " (a candidate left out of the selection)"
                                  : " (not retried: it would diverge again)");
    }
    line = nl + 1;
  }
}

void hcl_sweep_job_done(hcl_sweep_env *env, const hcl_sweep_job *j, hcl_status prc, const char *err,
                        const char *text, size_t len) {
  pthread_mutex_lock(&env->lock);
  env->ran++;
  env->points_done += j->n_points;
  const char *gkey = *j->gkey ? j->gkey : "(all)";
  hcl_status wrc = text && len ? hcl_sweep_append(env->out, env->rec_path, text, len) : HCL_OK;
  if (prc == HCL_ERR_IO && env->rc == HCL_OK) { /* a write failed (a full disk): stop, naming it */
    env->rc = prc;
    snprintf(env->err, sizeof env->err, "sweep point %s: %s", gkey, err);
    env->stop_all = 1;
  }
  if (wrc == HCL_OK && env->sw->n_select) /* the points whose candidates are all in */
    wrc = hcl_sweep_select_pending(env->sw, env->opt->sweep_dir, env->path, env->sel_out,
                                   env->seeds, env->nS, NULL);
  if (wrc != HCL_OK && env->rc == HCL_OK) {
    env->rc = wrc;
    snprintf(env->err, sizeof env->err, "%s", hcl_errmsg(NULL));
    env->stop_all = 1;
  }
  if (prc == HCL_ERR_INTERRUPTED && env->rc == HCL_OK) {
    env->rc = prc;
    snprintf(env->err, sizeof env->err, "interrupted");
    env->stop_all = 1;
  }
  if (prc != HCL_OK && prc != HCL_ERR_INTERRUPTED && prc != HCL_ERR_IO) {
    env->failures++;
    hcl_sweep_failure(&env->run_fail, gkey, NULL);
    if (env->progress_tty) fputc('\n', stderr);
    fprintf(stderr, "hiercl sweep: %s%s failed: %s\n", env->tag, gkey, err);
  }
  if (prc == HCL_OK) count_failed_replicas(env, text, len);
  progress(env, j, text, len, prc);
  pthread_mutex_unlock(&env->lock);
}

size_t hcl_sweep_next_task(hcl_sweep_env *env, size_t *cursor, size_t *ordinal) {
  pthread_mutex_lock(&env->lock);
  int stop = env->stop_all || (env->opt->run.stop && *env->opt->run.stop);
  if (stop && env->rc == HCL_OK) {
    env->rc = HCL_ERR_INTERRUPTED;
    snprintf(env->err, sizeof env->err, "interrupted");
    env->stop_all = 1;
  }
  size_t t = !stop && *cursor < env->n_tasks ? env->tasks[(*cursor)++] : (size_t)-1;
  if (ordinal) *ordinal = *cursor;
  pthread_mutex_unlock(&env->lock);
  return t;
}

typedef struct worker {
  hcl_sweep_env *env;
  const char *device; /* NULL: the sweep's selector */
  size_t *cursor;
  size_t runs; /* runs this worker trained */
  pthread_t thread;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  hcl_sweep_env *env = w->env;
  hcl_session *session = NULL;
  hcl_sweep_job j;
  char *err = malloc(8192);
  hcl_status rc = err ? hcl_sweep_job_alloc(env, &j) : HCL_ERR_NOMEM;
  if (rc == HCL_OK && (rc = hcl_session_create(env->opt->run.plugin_path, &session, err, 8192)))
    hcl_sweep_job_free(&j);
  if (rc != HCL_OK) {
    pthread_mutex_lock(&env->lock);
    if (env->rc == HCL_OK) {
      env->rc = rc;
      snprintf(env->err, sizeof env->err, "%s", err ? err : "out of memory");
    }
    env->stop_all = 1;
    pthread_mutex_unlock(&env->lock);
    free(err);
    return NULL;
  }
  for (size_t p, k; (p = hcl_sweep_next_task(env, w->cursor, &k)) != (size_t)-1;) {
    hcl_sweep_job_prepare(env, p, &j);
    /* the run's place in the queue: *cursor was advanced past it */
    fprintf(stderr, "%shiercl sweep: %s[%zu/%zu] %s%s%s%s\n", env->progress_tty ? "\r\033[K" : "",
            env->tag, k, env->n_tasks, *j.gkey ? j.gkey : "(all)",
            env->group ? " (train sizes / learning rates and seeds as replicas)"
            : j.R > 1  ? " (seeds as replicas)"
                       : "",
            w->device ? " on " : "", w->device ? w->device : "");
    hcl_status prc;
    char *text = NULL;
    size_t len = 0;
    err[0] = 0;
    hcl_status frc = hcl_sweep_job_run(env, &j, session, w->device, &prc, err, 8192, &text, &len);
    if (frc != HCL_OK) prc = frc, snprintf(err, 8192, "%s", hcl_errmsg(NULL));
    hcl_sweep_job_done(env, &j, prc, err, text, len);
    free(text);
    w->runs++;
  }
  unsigned long built, reused;
  size_t contexts;
  hcl_session_programs(session, &built, &reused, &contexts);
  if (w->runs > 1) /* what sharing the context saved */
    fprintf(stderr,
            "hiercl sweep: %s%zu runs on %s in %zu context%s: %lu programs compiled, %lu "
            "compilations spared\n",
            env->tag, w->runs, w->device ? w->device : "the device", contexts,
            contexts == 1 ? "" : "s", built, reused);
  hcl_session_destroy(session);
  hcl_sweep_job_free(&j);
  free(err);
  return NULL;
}

hcl_status hcl_sweep_exec_local(hcl_sweep_env *env, char **devices, size_t n_devices) {
  size_t cursor = 0;
  size_t n = n_devices > 1 ? n_devices : 1;
  worker *w = calloc(n, sizeof *w);
  if (!w) return snprintf(env->err, sizeof env->err, "out of memory"), HCL_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    w[i] = (worker){.env = env, .device = n_devices ? devices[i] : NULL, .cursor = &cursor};
  /* a part left without a run leaves its share of the device idle, while
   * the whole device would have given it to the runs */
  if (n > 1 && env->n_tasks < n && strchr(devices[0], '/'))
    fprintf(stderr,
            "hiercl sweep: note: %s%zu run%s for %zu device parts: %zu part%s will idle (parts pay "
            "for sweeps of many runs; the whole device gives each run all its units)\n",
            env->tag, env->n_tasks, env->n_tasks == 1 ? "" : "s", n, n - env->n_tasks,
            n - env->n_tasks == 1 ? "" : "s");
  if (n == 1) {
    work(&w[0]); /* one device: this thread, as a plain sweep always did */
  } else {
    /* several runs draw on one terminal: only the sweep's line */
    env->opt->run.progress = 0;
    size_t started = 0;
    for (; started < n; started++)
      if (pthread_create(&w[started].thread, NULL, work, &w[started])) break;
    if (!started) work(&w[0]);
    for (size_t i = 0; i < started; i++) pthread_join(w[i].thread, NULL);
  }
  free(w);
  return env->rc;
}

hcl_status hcl_sweep_devices(const char *selector, const char *origin, char ***ids, size_t *n,
                             char *err, size_t errlen) {
  *ids = NULL;
  *n = 0;
  if (!selector || (strcmp(selector, "all") && strcmp(selector, "gpu-all") &&
                    !strchr(selector, ',') && !strchr(selector, '/')))
    return HCL_OK;
  hcl_device_info *devs = NULL;
  size_t nd = 0;
  HCL_TRY(hcl_devices_list(&devs, &nd, err, errlen));
  if (!strcmp(selector, "gpu-all")) { /* every GPU; none: NULL (the default device) */
    char **gpus = calloc(nd + 1, sizeof *gpus);
    size_t k = 0;
    for (size_t i = 0; gpus && i < nd; i++)
      if (devs[i].type & CL_DEVICE_TYPE_GPU) gpus[k] = strdup(devs[i].id), k += gpus[k] != NULL;
    free(devs);
    if (!k) free(gpus), gpus = NULL;
    *ids = gpus;
    *n = k;
    return HCL_OK;
  }
  size_t cap = nd + 1; /* every device, and the parts a "SEL/N" adds */
  for (const char *c = selector; (c = strchr(c, '/')) != NULL; c++) cap += strtoul(c + 1, NULL, 10);
  char **out = calloc(cap, sizeof *out);
  char *list = strdup(selector);
  hcl_status rc = out && list ? HCL_OK : HCL_ERR_NOMEM;
  if (rc != HCL_OK) snprintf(err, errlen, "out of memory");
  size_t k = 0;
  if (rc == HCL_OK && !strcmp(selector, "all")) {
    for (; k < nd; k++)
      if (!(out[k] = strdup(devs[k].id))) rc = HCL_ERR_NOMEM;
    if (!nd) {
      snprintf(err, errlen, "%s all: no OpenCL device found", origin);
      rc = HCL_ERR_NODEVICE;
    }
  }
  for (char *tok = list; rc == HCL_OK && strcmp(selector, "all") && tok;) {
    char *comma = strchr(tok, ',');
    if (comma) *comma = 0;
    while (*tok == ' ') tok++;
    size_t e = strlen(tok);
    while (e && tok[e - 1] == ' ') tok[--e] = 0;
    size_t idx;
    char why[4096], base[256], id[128];
    unsigned parts = 1, part = 0;
    int pk = hcl_device_part_parse(tok, base, sizeof base, &parts, &part);
    if (!*tok) {
      snprintf(err, errlen, "%s '%s': empty selector in the list", origin, selector);
      rc = HCL_ERR_NODEVICE;
    } else if (pk < 0) {
      snprintf(err, errlen, "%s '%s': '%s' is not SEL/N (N parts of SEL) or SEL/N.I (part I)",
               origin, selector, tok);
      rc = HCL_ERR_NODEVICE;
    } else if ((rc = hcl_device_select(devs, nd, pk ? base : tok, &idx, why, sizeof why)) !=
               HCL_OK) {
      snprintf(err, errlen, "%s '%s': %s", origin, selector, why);
    } else { /* SEL/N: parts 0 .. N-1; SEL/N.I: part I; N = 1: the device itself */
      for (unsigned q = pk == 2 ? 0 : part; rc == HCL_OK && q < (pk == 2 ? parts : part + 1); q++) {
        hcl_device_part_id(id, sizeof id, devs[idx].id, parts, q);
        int dup = 0;
        for (size_t i = 0; i < k; i++) dup |= !strcmp(out[i], id);
        if (!dup && !(out[k++] = strdup(id))) rc = HCL_ERR_NOMEM;
      }
    }
    tok = comma ? comma + 1 : NULL;
  }
  free(list);
  free(devs);
  if (rc != HCL_OK) {
    for (size_t i = 0; out && i < k; i++) free(out[i]);
    free(out);
    return rc;
  }
  *ids = out;
  *n = k;
  return HCL_OK;
}
