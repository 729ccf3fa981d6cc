/* Sessions: the plugin registry and the device contexts that the runs of one
 * process (a sweep's points) share, so each point pays no start-up: no
 * plugin scan, no OpenCL context, no kernel compilation after the first. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

hcl_status hcl_session_create(const char *plugin_path, hcl_session **out, char *err,
                              size_t errlen) {
  *out = NULL;
  hcl_session *s = calloc(1, sizeof *s);
  if (!s) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  hcl_status rc = hcl_registry_scan(NULL, plugin_path, &s->reg);
  if (rc != HCL_OK) {
    snprintf(err, errlen, "%s", hcl_errmsg(NULL));
    free(s);
    return rc;
  }
  *out = s;
  return HCL_OK;
}

void hcl_session_destroy(hcl_session *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n_ctx; i++) hcl_ctx_destroy(s->ctx[i].ctx);
  hcl_registry_free(&s->reg);
  free(s);
}

void hcl_session_programs(const hcl_session *s, unsigned long *built, unsigned long *reused,
                          size_t *contexts) {
  *built = *reused = 0;
  *contexts = s ? s->n_ctx : 0;
  for (size_t i = 0; s && i < s->n_ctx; i++) {
    *built += s->ctx[i].ctx->memo_built;
    *reused += s->ctx[i].ctx->memo_reused;
  }
}

hcl_status hcl_session_ctx(hcl_session *s, const hcl_ctx_options *o, hcl_ctx **out, int *created,
                           char *err, size_t errlen) {
  char key[sizeof s->ctx[0].key];
  /* the selector as given (HIERCL_DEVICE is read when it is empty: the
   * environment does not change within a process) and what the queue and
   * program loading depend on */
  snprintf(key, sizeof key, "%s|%d|%d|%s|%s|%d|%d", o->device ? o->device : "", o->profiling,
           o->cache_policy, o->cache_dir ? o->cache_dir : "", o->binary_dir ? o->binary_dir : "",
           o->no_compile, o->quiet);
  *created = 0;
  for (size_t i = 0; i < s->n_ctx; i++)
    if (!strcmp(s->ctx[i].key, key)) {
      *out = s->ctx[i].ctx;
      hcl_ctx_reset_run(*out);
      return HCL_OK;
    }
  hcl_ctx *ctx;
  /* one at a time: creating a context applies CLBlast's tuned parameters,
   * which CLBlast and tune.c keep in process-wide tables */
  static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&create_lock);
  hcl_status rc = hcl_ctx_create(o, &ctx, err, errlen);
  pthread_mutex_unlock(&create_lock);
  HCL_TRY(rc);
  ctx->memo_programs = !ctx->export_dir[0]; /* a recording run builds every program itself */
  ctx->memo_max = 64;
  if (s->n_ctx == HCL_SESSION_MAX_CTX) { /* many [runtime] variants: the oldest goes */
    hcl_ctx_destroy(s->ctx[0].ctx);
    memmove(s->ctx, s->ctx + 1, (HCL_SESSION_MAX_CTX - 1) * sizeof s->ctx[0]);
    s->n_ctx--;
  }
  snprintf(s->ctx[s->n_ctx].key, sizeof s->ctx[s->n_ctx].key, "%s", key);
  s->ctx[s->n_ctx++].ctx = ctx;
  *out = ctx;
  *created = 1;
  return HCL_OK;
}

void hcl_ctx_reset_run(hcl_ctx *ctx) {
  if (!ctx) return;
  if (ctx->queue) clFinish(ctx->queue);
  hcl_profile_release(ctx); /* its events point into the stats freed below */
  hcl_ops_trim(ctx);
  for (size_t i = 0; i < ctx->n_notes; i++) {
    free(ctx->notes[i].key);
    free(ctx->notes[i].value);
  }
  free(ctx->notes);
  ctx->notes = NULL;
  ctx->n_notes = 0;
  free(ctx->stats);
  ctx->stats = NULL;
  ctx->n_stats = 0;
  ctx->gemm_flops = 0;
  ctx->mem_peak = ctx->mem_current; /* 0 unless a plugin leaked a buffer */
  ctx->stop = NULL;
  /* the notes a new context starts with (which CLBlast parameters): the
   * tables are set already, so this only notes them */
  if (hcl_blas_apply_tuning(ctx) != HCL_OK) hcl_log(ctx, HCL_LOG_DEBUG, "%s", ctx->errmsg);
  ctx->errmsg[0] = 0;
}
