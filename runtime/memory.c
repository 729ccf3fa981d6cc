/* How much memory a run may take: the device's limits, the host's available
 * memory for CPU devices (whose buffers are host memory), an optional user
 * limit. Sizes beyond them are refused with the numbers, never attempted:
 * drivers abort and the kernel's OOM killer leaves no manifest. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t hcl_host_mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
      found = sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    fclose(f);
    if (found) return kb > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kb * 1024;
  }
#if defined(_SC_AVPHYS_PAGES) && defined(_SC_PAGESIZE)
  long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return hcl_size_mul3((size_t)pages, (size_t)page, 1);
#endif
  return 0;
}

void hcl_mem_budget_init(hcl_ctx *ctx) {
  size_t budget = ctx->dev.global_mem > SIZE_MAX ? SIZE_MAX : (size_t)ctx->dev.global_mem;
  char *why = ctx->mem_budget_why;
  size_t len = sizeof ctx->mem_budget_why;
  snprintf(why, len, "CL_DEVICE_GLOBAL_MEM_SIZE = %llu bytes",
           (unsigned long long)ctx->dev.global_mem);
  if (ctx->dev.type & CL_DEVICE_TYPE_CPU) {
    size_t host = hcl_host_mem_available();
    if (host) {
      size_t u = strlen(why);
      snprintf(why + u, len - u, "; host MemAvailable = %zu bytes", host);
      if (!budget || host < budget) budget = host;
    }
  }
  const char *lim = getenv("HIERCL_DEVICE_MEM_LIMIT");
  if (lim && *lim) {
    char *end = NULL;
    unsigned long long v = strtoull(lim, &end, 10);
    if (end && !*end && v > 0) {
      size_t u = strlen(why);
      snprintf(why + u, len - u, "; HIERCL_DEVICE_MEM_LIMIT = %llu bytes", v);
      if (!budget || v < budget) budget = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    } else {
      hcl_log(ctx, HCL_LOG_WARN, "HIERCL_DEVICE_MEM_LIMIT = '%s' is not a byte count; ignored",
              lim);
    }
  }
  ctx->mem_budget = budget;
}

hcl_status hcl_host_mem_check(hcl_ctx *ctx, size_t bytes, const char *what) {
  size_t avail = hcl_host_mem_available();
  if (!avail || bytes <= avail) return HCL_OK;
  return hcl_fail(ctx, HCL_ERR_NOMEM,
                  "%s%s%zu bytes of host memory needed, the host has %zu available (MemAvailable)",
                  what ? what : "", what && *what ? ": " : "", bytes, avail);
}

int hcl_should_stop(hcl_ctx *ctx) { return ctx && ctx->stop && *ctx->stop; }
