/* Device buffers and kernel launches. Launches never wait for the device;
 * each is counted per label (and timed when profiling is on, read later:
 * profile.c). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* "1.5 GiB": sizes in errors, next to the exact byte count. */
static const char *human(size_t bytes, char *buf, size_t len) {
  static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = (double)bytes;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < sizeof unit / sizeof *unit) v /= 1024.0, u++;
  snprintf(buf, len, u ? "%.3g %s" : "%.0f %s", v, unit[u]);
  return buf;
}

hcl_status hcl_mem_check(hcl_ctx *ctx, size_t bytes, size_t largest, const char *what) {
  char h1[32], h2[32], h3[32];
  const char *sep = what && *what ? ": " : "";
  if (!what) what = "";
  if (ctx->dev.max_alloc && largest > ctx->dev.max_alloc)
    return hcl_fail(ctx, HCL_ERR_NOMEM,
                    "%s%sa buffer of %zu bytes (%s) is larger than device %s allows in one "
                    "allocation (CL_DEVICE_MAX_MEM_ALLOC_SIZE = %llu bytes, %s)",
                    what, sep, largest, human(largest, h1, sizeof h1), ctx->dev.id,
                    (unsigned long long)ctx->dev.max_alloc,
                    human((size_t)ctx->dev.max_alloc, h2, sizeof h2));
  size_t total;
  if (ctx->mem_budget &&
      (!hcl_size_add(ctx->mem_current, bytes, &total) || total > ctx->mem_budget))
    return hcl_fail(ctx, HCL_ERR_NOMEM,
                    "%s%s%zu bytes (%s) of device memory needed, %zu already held by hiercl: "
                    "beyond the %s available on device %s (%s)",
                    what, sep, bytes, human(bytes, h1, sizeof h1), ctx->mem_current,
                    human(ctx->mem_budget, h2, sizeof h2), ctx->dev.id,
                    *ctx->mem_budget_why ? ctx->mem_budget_why
                                         : human(ctx->mem_budget, h3, sizeof h3));
  return HCL_OK;
}

hcl_status hcl_buf_alloc(hcl_ctx *ctx, size_t bytes, hcl_buf *out) {
  cl_int cl;
  memset(out, 0, sizeof *out);
  size_t alloc = bytes ? bytes : 4;
  /* refused before the driver sees it: PoCL aborts or the host's OOM killer
   * ends the process on sizes it cannot hold */
  HCL_TRY(hcl_mem_check(ctx, alloc, alloc, NULL));
  cl_mem m = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, alloc, NULL, &cl);
  if (cl != CL_SUCCESS)
    return hcl_fail(ctx, HCL_ERR_NOMEM, "device %s: cannot allocate %zu bytes: %s", ctx->dev.id,
                    bytes, hcl_strerror(cl));
  const float zero = 0.0f;
  const unsigned char zbyte = 0; /* the pattern size must divide the buffer size */
  cl = alloc % 4 ? clEnqueueFillBuffer(ctx->queue, m, &zbyte, 1, 0, alloc, 0, NULL, NULL)
                 : clEnqueueFillBuffer(ctx->queue, m, &zero, sizeof zero, 0, alloc, 0, NULL, NULL);
  if (cl != CL_SUCCESS) {
    clReleaseMemObject(m);
    return hcl_fail(ctx, cl, "device %s: cannot clear a buffer of %zu bytes: %s", ctx->dev.id,
                    bytes, hcl_strerror(cl));
  }
  out->mem = m;
  out->size = bytes;
  ctx->mem_current += alloc;
  if (ctx->mem_current > ctx->mem_peak) ctx->mem_peak = ctx->mem_current;
  return HCL_OK;
}

void hcl_buf_free(hcl_ctx *ctx, hcl_buf *buf) {
  if (buf && buf->mem && buf->offset == 0) {
    size_t size = 0; /* the object's own size: a copied hcl_buf may carry a smaller one */
    if (clGetMemObjectInfo(buf->mem, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS) size = 0;
    if (ctx) ctx->mem_current -= size < ctx->mem_current ? size : ctx->mem_current;
    clReleaseMemObject(buf->mem);
  }
  if (buf) memset(buf, 0, sizeof *buf);
}

size_t hcl_mem_current(const hcl_ctx *ctx) { return ctx ? ctx->mem_current : 0; }
size_t hcl_mem_peak(const hcl_ctx *ctx) { return ctx ? ctx->mem_peak : 0; }

hcl_status hcl_buf_write(hcl_ctx *ctx, hcl_buf dst, const void *src, size_t bytes) {
  if (bytes > dst.size)
    return hcl_fail(ctx, HCL_ERR_PARAM, "buffer write of %zu bytes into %zu", bytes, dst.size);
  if (!bytes) return HCL_OK;
  HCL_CL(ctx,
         clEnqueueWriteBuffer(ctx->queue, dst.mem, CL_TRUE, dst.offset, bytes, src, 0, NULL, NULL),
         "buffer write");
  return HCL_OK;
}

hcl_status hcl_buf_read(hcl_ctx *ctx, hcl_buf src, void *dst, size_t bytes) {
  if (bytes > src.size)
    return hcl_fail(ctx, HCL_ERR_PARAM, "buffer read of %zu bytes from %zu", bytes, src.size);
  if (!bytes) return HCL_OK;
  HCL_CL(ctx,
         clEnqueueReadBuffer(ctx->queue, src.mem, CL_TRUE, src.offset, bytes, dst, 0, NULL, NULL),
         "buffer read");
  return HCL_OK;
}

hcl_status hcl_buf_copy(hcl_ctx *ctx, hcl_buf dst, hcl_buf src, size_t bytes) {
  if (bytes > src.size || bytes > dst.size)
    return hcl_fail(ctx, HCL_ERR_PARAM, "buffer copy of %zu bytes (src %zu, dst %zu)", bytes,
                    src.size, dst.size);
  if (!bytes) return HCL_OK;
  HCL_CL(ctx,
         clEnqueueCopyBuffer(ctx->queue, src.mem, dst.mem, src.offset, dst.offset, bytes, 0, NULL,
                             NULL),
         "buffer copy");
  return HCL_OK;
}

hcl_buf hcl_buf_sub(hcl_buf b, size_t offset, size_t size) {
  hcl_buf s = {b.mem, b.offset + offset, size};
  return s;
}

static hcl_kernel_stat *stat_for(hcl_ctx *ctx, const char *label) {
  for (size_t i = 0; i < ctx->n_stats; i++)
    if (!strcmp(ctx->stats[i].label, label)) return &ctx->stats[i];
  hcl_kernel_stat *ns = realloc(ctx->stats, (ctx->n_stats + 1) * sizeof *ns);
  if (!ns) return NULL;
  ctx->stats = ns;
  hcl_kernel_stat *s = &ns[ctx->n_stats++];
  memset(s, 0, sizeof *s);
  snprintf(s->label, sizeof s->label, "%s", label);
  return s;
}

hcl_status hcl_run_kernel(hcl_ctx *ctx, cl_kernel k, cl_uint dims, const size_t *gws,
                          const size_t *lws, const char *label, size_t nargs, const hcl_arg *args) {
  if (!label) label = "kernel";
  for (size_t i = 0; i < nargs; i++) {
    cl_int cl = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].value);
    if (cl != CL_SUCCESS)
      return hcl_fail(ctx, cl, "kernel %s: argument %zu: %s", label, i, hcl_strerror(cl));
  }
  for (cl_uint d = 0; d < dims; d++)
    if (gws[d] == 0) return HCL_OK; /* nothing to do */
  cl_event ev = NULL;
  cl_int cl = clEnqueueNDRangeKernel(ctx->queue, k, dims, NULL, gws, lws, 0, NULL,
                                     ctx->profiling ? &ev : NULL);
  if (cl != CL_SUCCESS)
    return hcl_fail(ctx, cl, "kernel %s: launch of %zu items: %s", label, gws[0], hcl_strerror(cl));
  hcl_kernel_stat *s = stat_for(ctx, label);
  if (s) s->launches++;
  if (ev && s)
    hcl_profile_keep(ctx, ev, (size_t)(s - ctx->stats));
  else if (ev)
    clReleaseEvent(ev);
  return HCL_OK;
}

hcl_status hcl_finish(hcl_ctx *ctx) {
  HCL_CL(ctx, clFinish(ctx->queue), "waiting for the device");
  hcl_profile_drain(ctx);
  return HCL_OK;
}
