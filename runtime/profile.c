/* Kernel timing with runtime.profile = true, without waiting per launch:
 * each launch's event is kept and read later, once the in-order queue has
 * run past it. Waiting for every event as it was launched made a profiled
 * step 2-3x slower on PoCL (about 13 futex calls per launch), so profiled
 * runs, hiercl bench's included, measured a serialised device. */
#include "internal.h"

#include <stdlib.h>

/* Events kept at most; at the limit the older half is read (waiting only for
 * the newest of that half), so about HCL_PROF_KEEP / 2 launches stay queued. */
#define HCL_PROF_KEEP 1024

/* Add a completed event's device time to stats[stat] and release it. */
static void read_one(hcl_ctx *ctx, cl_event ev, size_t stat) {
  cl_ulong t0 = 0, t1 = 0;
  if (clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
      clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS &&
      t1 >= t0 && stat < ctx->n_stats)
    ctx->stats[stat].device_s += (double)(t1 - t0) * 1e-9;
  clReleaseEvent(ev);
}

/* Read and drop the first n kept events (all complete). */
static void harvest(hcl_ctx *ctx, size_t n) {
  for (size_t i = 0; i < n; i++) read_one(ctx, ctx->prof_ev[i].ev, ctx->prof_ev[i].stat);
  for (size_t i = n; i < ctx->n_prof_ev; i++) ctx->prof_ev[i - n] = ctx->prof_ev[i];
  ctx->n_prof_ev -= n;
}

void hcl_profile_keep(hcl_ctx *ctx, cl_event ev, size_t stat) {
  if (!ctx->prof_ev && !(ctx->prof_ev = malloc(HCL_PROF_KEEP * sizeof *ctx->prof_ev))) {
    clWaitForEvents(1, &ev); /* no room to defer: time this launch now */
    read_one(ctx, ev, stat);
    return;
  }
  if (ctx->n_prof_ev == HCL_PROF_KEEP) {
    size_t half = HCL_PROF_KEEP / 2;
    clWaitForEvents(1, &ctx->prof_ev[half - 1].ev); /* in order: the earlier ones ran too */
    harvest(ctx, half);
  }
  ctx->prof_ev[ctx->n_prof_ev].ev = ev;
  ctx->prof_ev[ctx->n_prof_ev++].stat = stat;
}

void hcl_profile_drain(hcl_ctx *ctx) {
  if (!ctx || !ctx->n_prof_ev) return;
  clWaitForEvents(1, &ctx->prof_ev[ctx->n_prof_ev - 1].ev);
  harvest(ctx, ctx->n_prof_ev);
}

void hcl_profile_release(hcl_ctx *ctx) {
  if (!ctx) return;
  hcl_profile_drain(ctx);
  free(ctx->prof_ev);
  ctx->prof_ev = NULL;
}
