/* How much memory a run may take: the device's limits, the host's available
 * memory for CPU devices (whose buffers are host memory), an optional user
 * limit. Sizes beyond them are refused with the numbers, never attempted:
 * drivers abort and the kernel's OOM killer leaves no manifest. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The first "<key> <number>" of a /proc-style file, times `unit`; 0 when absent. */
static size_t file_value(const char *path, const char *key, size_t unit) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  unsigned long long v = 0;
  int found = 0;
  size_t kl = strlen(key);
  while (!found && fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl)) found = sscanf(line + kl, " %llu", &v) == 1;
  fclose(f);
  if (!found) return 0;
  return v > SIZE_MAX / unit ? SIZE_MAX : (size_t)v * unit;
}

/* limit - usage of this process's cgroup (v2, else v1); SIZE_MAX when unlimited. */
static size_t cgroup_left(void) {
  size_t limit = file_value("/sys/fs/cgroup/memory.max", "", 1);
  size_t used = file_value("/sys/fs/cgroup/memory.current", "", 1);
  if (!limit) { /* "max" (no limit) or no cgroup v2 file: try v1 */
    limit = file_value("/sys/fs/cgroup/memory/memory.limit_in_bytes", "", 1);
    used = file_value("/sys/fs/cgroup/memory/memory.usage_in_bytes", "", 1);
  }
  if (!limit || limit >= ((size_t)1 << 60)) return SIZE_MAX; /* v1 writes a huge number */
  return limit > used ? limit - used : 0;
}

/* RLIMIT_AS (ulimit -v) less the address space in use; SIZE_MAX when unlimited. */
static size_t rlimit_left(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  size_t used = file_value("/proc/self/status", "VmSize:", 1024);
  size_t cur = rl.rlim_cur > SIZE_MAX ? SIZE_MAX : (size_t)rl.rlim_cur;
  /* half: the driver's threads and compiler reserve address space later
   * (measured: PoCL aborted with 10.6 GB of buffers under a 16 GB ulimit -v) */
  return cur > used ? (cur - used) / 2 : 0;
}

size_t hcl_host_mem_available(void) {
  size_t avail = file_value("/proc/meminfo", "MemAvailable:", 1024);
#if defined(_SC_AVPHYS_PAGES) && defined(_SC_PAGESIZE)
  if (!avail) {
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = hcl_size_mul3((size_t)pages, (size_t)page, 1);
  }
#endif
  if (!avail) avail = SIZE_MAX; /* unknown: the device's limits still apply */
  /* a Slurm job's cgroup or a ulimit -v is the host memory this process has */
  size_t cg = cgroup_left(), as = rlimit_left();
  if (cg < avail) avail = cg;
  if (as < avail) avail = as;
  if (avail == SIZE_MAX) return 0;
  return avail ? avail : 1; /* a limit reached: nothing left, which is not "unknown" */
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
      /* a quarter stays for the driver, compilers and host copies: PoCL
       * asserts (pocl_util.c) when a buffer's memory cannot be had later */
      size_t share = host / 4 * 3;
      size_t u = strlen(why);
      snprintf(why + u, len - u, "; 3/4 of the host memory available, %zu bytes", host);
      if (!budget || share < budget) budget = share;
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
                  "%s%s%zu bytes of host memory needed, %zu available (MemAvailable, cgroup "
                  "limit, ulimit -v)",
                  what ? what : "", what && *what ? ": " : "", bytes, avail);
}

int hcl_should_stop(hcl_ctx *ctx) { return ctx && ctx->stop && *ctx->stop; }
