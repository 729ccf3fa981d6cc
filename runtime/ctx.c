/* The runtime context: one selected device, its OpenCL context and one
 * in-order queue, the error buffer and the plugins' manifest notes. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Record programs keyed for a device without a compiler while the dry run
 * builds and runs them on one that has a compiler (the sources and options
 * do not depend on the device). */
size_t hcl_export_run_on(const hcl_device_info *devs, size_t n, size_t idx) {
  if (idx < n && devs[idx].compiler_available) return idx;
  for (size_t i = 0; i < n; i++)
    if (devs[i].compiler_available) return i;
  return n;
}

hcl_status hcl_ctx_create(const hcl_ctx_options *opt, hcl_ctx **out, char *err, size_t errlen) {
  hcl_ctx_options none = {0};
  if (!opt) opt = &none;
  *out = NULL;
  hcl_device_info *devs = NULL;
  size_t n = 0, idx = 0;
  hcl_status rc = hcl_devices_list(&devs, &n, err, errlen);
  if (rc != HCL_OK) return rc;
  const char *sel = opt->device;
  int from_env = !sel || !*sel;
  if (from_env) sel = getenv("HIERCL_DEVICE");
  char base[256];
  unsigned parts = 1, part = 0;
  int pk = hcl_device_part_parse(sel, base, sizeof base, &parts, &part);
  if (pk < 0 || (pk == 2 && parts > 1)) {
    free(devs);
    if (pk < 0)
      snprintf(err, errlen, "device '%s': a part is SEL/N.I, part I (0 <= I < N) of SEL split in N",
               sel);
    else
      snprintf(err, errlen,
               "device '%s' names %u parts and a run takes one: %s/%u.0 to %s/%u.%u (a sweep's "
               "--device takes them all)",
               sel, parts, base, parts, base, parts, parts - 1);
    return HCL_ERR_NODEVICE;
  }
  if (pk) sel = base;
  rc = hcl_device_select(devs, n, sel, &idx, err, errlen);
  if (rc != HCL_OK) {
    free(devs);
    char *why = from_env && err && errlen ? strdup(err) : NULL;
    if (why) /* say where a selector nobody typed came from */
      snprintf(err, errlen, "HIERCL_DEVICE='%s' (from the environment): %s", sel ? sel : "", why);
    free(why);
    return rc;
  }
  const char *export_dir = opt->export_dir ? opt->export_dir : getenv("HIERCL_EXPORT_PROGRAMS");
  int exporting = export_dir && *export_dir;
  if (exporting && strlen(export_dir) >= 700) { /* room for "/<key>.options" within 1024 */
    free(devs);
    snprintf(err, errlen,
             "program export folder (--export, HIERCL_EXPORT_PROGRAMS) '%.80s...' is too long (%zu "
             "characters, at most 699)",
             export_dir, strlen(export_dir));
    return HCL_ERR_CONFIG;
  }
  size_t run_on = exporting ? hcl_export_run_on(devs, n, idx) : idx;
  if (run_on != idx && parts > 1) {
    snprintf(err, errlen, "device %s: a part of a device cannot record programs for another",
             devs[idx].id);
    free(devs);
    return HCL_ERR_NODEVICE;
  }
  if (run_on == n) {
    snprintf(err, errlen,
             "device %s (%s) has no OpenCL compiler, and recording its programs needs another "
             "device with one to build and run them (none found)",
             devs[idx].id, devs[idx].name);
    free(devs);
    return HCL_ERR_NODEVICE;
  }
  if ((rc = hcl_device_partition(&devs[idx], parts, part, err, errlen)) != HCL_OK) {
    free(devs);
    return rc;
  }
  hcl_ctx *ctx = calloc(1, sizeof *ctx);
  hcl_device_info *export_dev = run_on != idx ? malloc(sizeof *export_dev) : NULL;
  if (!ctx || (run_on != idx && !export_dev)) {
    if (parts > 1) clReleaseDevice(devs[idx].device_id); /* the part made above */
    free(devs);
    free(ctx);
    free(export_dev);
    snprintf(err, errlen, "out of host memory");
    return HCL_ERR_NOMEM;
  }
  ctx->dev = devs[run_on];
  if (export_dev) *export_dev = devs[idx];
  ctx->export_dev = export_dev;
  if (exporting) snprintf(ctx->export_dir, sizeof ctx->export_dir, "%s", export_dir);
  free(devs);
  ctx->log_level = opt->quiet ? HCL_LOG_WARN : HCL_LOG_INFO;
  ctx->profiling = opt->profiling;
  const char *nc = getenv("HIERCL_NO_COMPILE");
  ctx->no_compile = !exporting && (opt->no_compile || (nc && *nc && strcmp(nc, "0")));
  const char *gs = hcl_getenv("HIERCL_GEMM_SMALL_MAX");
  /* CLBlast compiles its kernels at run time: without a compiler every
   * product takes the runtime's own kernel, whose program is prebuilt. */
  int prebuilt_only = ctx->no_compile || !ctx->dev.compiler_available;
  ctx->gemm_small_max = gs ? atof(gs) : prebuilt_only ? HUGE_VAL : 131072.0;
  /* On CPUs hcl_k_gemm_rb ran the training shapes (up to 512 x 256 x 512)
   * 1.6-2x faster than tuned CLBlast, which copies and transposes operands;
   * larger products keep CLBlast's cache-blocked kernel. */
  const char *rb = getenv("HIERCL_GEMM_RB_MAX");
  ctx->gemm_rb_max = rb ? atof(rb) : 134217728.0;
  ctx->cache_policy = opt->cache_policy;
  if (opt->cache_dir) snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", opt->cache_dir);
  if (opt->binary_dir) snprintf(ctx->binary_dir, sizeof ctx->binary_dir, "%s", opt->binary_dir);
  if (!sel || !*sel)
    hcl_log(ctx, HCL_LOG_INFO, "device %s (%s) chosen by default; --device selects another",
            ctx->dev.id, ctx->dev.name);
  if (export_dev)
    hcl_log(ctx, HCL_LOG_WARN,
            "device %s (%s) has no OpenCL compiler: its programs are recorded in %s while %s (%s) "
            "builds and runs them",
            export_dev->id, export_dev->name, ctx->export_dir, ctx->dev.id, ctx->dev.name);
  if (ctx->no_compile)
    hcl_log(ctx, HCL_LOG_INFO, "compilation disabled (HIERCL_NO_COMPILE): programs load from %s",
            ctx->binary_dir[0] ? ctx->binary_dir : "[runtime] binary_dir (not set)");

  cl_int cl;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->dev.platform_id,
                                   0};
  ctx->context = clCreateContext(props, 1, &ctx->dev.device_id, NULL, NULL, &cl);
  if (cl == CL_SUCCESS) {
    cl_command_queue_properties qp = opt->profiling ? CL_QUEUE_PROFILING_ENABLE : 0;
#ifdef __GNUC__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->dev.device_id, qp, &cl);
#ifdef __GNUC__
#pragma GCC diagnostic pop
#endif
  }
  if (cl != CL_SUCCESS) {
    snprintf(err, errlen, "device %s (%s): cannot create an OpenCL context/queue: %s", ctx->dev.id,
             ctx->dev.name, hcl_strerror(cl));
    hcl_ctx_destroy(ctx);
    return cl;
  }
  hcl_mem_budget_init(ctx);
  rc = hcl_blas_apply_tuning(ctx);
  if (rc != HCL_OK) hcl_log(ctx, HCL_LOG_WARN, "CLBlast tuning not applied: %s", ctx->errmsg);
  ctx->errmsg[0] = 0;
  *out = ctx;
  return HCL_OK;
}

void hcl_ctx_destroy(hcl_ctx *ctx) {
  if (!ctx) return;
  hcl_ops_release(ctx);
  for (size_t i = 0; i < ctx->n_memo; i++) clReleaseProgram(ctx->memo[i].prog);
  free(ctx->memo);
  if (ctx->queue) {
    clFinish(ctx->queue);
    hcl_profile_release(ctx);
    clReleaseCommandQueue(ctx->queue);
  }
  if (ctx->context) clReleaseContext(ctx->context);
  /* A part's sub-device is kept until the process ends: releasing it after
   * its context raced with PoCL 3.1's worker threads (a crash at exit in 2
   * of 30 runs of test_device_select; 0 of 30 without the release) and
   * before it freed the device under the context. One handle a context. */
  for (size_t i = 0; i < ctx->n_notes; i++) {
    free(ctx->notes[i].key);
    free(ctx->notes[i].value);
  }
  free(ctx->notes);
  free(ctx->stats);
  free(ctx->export_dev);
  free(ctx);
}

void hcl_note_add(hcl_ctx *ctx, const char *key, const char *value, int is_json) {
  if (!ctx || !key || !value) return;
  for (size_t i = 0; i < ctx->n_notes; i++) /* a later note replaces an earlier one */
    if (!strcmp(ctx->notes[i].key, key)) {
      char *v = strdup(value);
      if (!v) return;
      free(ctx->notes[i].value);
      ctx->notes[i].value = v;
      ctx->notes[i].is_json = is_json;
      return;
    }
  hcl_note *nn = realloc(ctx->notes, (ctx->n_notes + 1) * sizeof *nn);
  if (!nn) return;
  ctx->notes = nn;
  nn[ctx->n_notes].key = strdup(key);
  nn[ctx->n_notes].value = strdup(value);
  nn[ctx->n_notes].is_json = is_json;
  if (nn[ctx->n_notes].key && nn[ctx->n_notes].value) ctx->n_notes++;
}
