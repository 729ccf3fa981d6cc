/* Error messages and logging. Messages live in the ctx (or a thread-local
 * buffer when there is no ctx yet), like sqlite3_errmsg. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local char g_errmsg[HCL_ERRMSG_MAX];
static int g_log_level = -1;

static int global_level(void) {
  if (g_log_level < 0) {
    const char *e = hcl_getenv("HIERCL_LOG");
    g_log_level = HCL_LOG_INFO;
    if (e && !strcmp(e, "debug")) g_log_level = HCL_LOG_DEBUG;
    if (e && !strcmp(e, "warn")) g_log_level = HCL_LOG_WARN;
    if (e && !strcmp(e, "error")) g_log_level = HCL_LOG_ERROR;
  }
  return g_log_level;
}

hcl_status hcl_failv(hcl_ctx *ctx, hcl_status rc, const char *fmt, va_list ap) {
  char *buf = ctx ? ctx->errmsg : g_errmsg;
  vsnprintf(buf, HCL_ERRMSG_MAX, fmt, ap);
  if (ctx) ctx->errmsg_plugin = 0;
  if (ctx) memcpy(g_errmsg, buf, HCL_ERRMSG_MAX); /* also reachable without the ctx */
  return rc;
}

hcl_status hcl_fail(hcl_ctx *ctx, hcl_status rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hcl_failv(ctx, rc, fmt, ap);
  va_end(ap);
  return rc;
}

const char *hcl_plugin_msg(const char *msg, const char *name) {
  size_t n = strlen(name);
  for (;;) {
    /* "[section] name: " as host->fail wrote it, or the plugin's own "name: " */
    const char *m = msg, *close = *m == '[' ? strchr(m, ']') : NULL;
    if (close && close[1] == ' ' && !strchr("[ ", m[1])) m = close + 2;
    if (!n || strncmp(m, name, n) || m[n] != ':' || m[n + 1] != ' ') return msg;
    msg = m + n + 2;
  }
}

hcl_status hcl_plugin_failv(hcl_ctx *ctx, hcl_status rc, const char *fmt, va_list ap) {
  const char *name = !ctx ? NULL : ctx->in_target > 0 ? ctx->plugin_target : ctx->plugin_model;
  if (!name) return hcl_failv(ctx, rc, fmt, ap);
  char msg[HCL_ERRMSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  const char *file = ctx->plugin_file ? ctx->plugin_file : "";
  char head[HCL_ERRMSG_MAX];
  snprintf(head, sizeof head, "%s%s[%s] %s: ", file, *file ? ": " : "",
           ctx->in_target > 0 ? "target" : "model", name);
  hcl_fail(ctx, rc, "%s%s", head, hcl_plugin_msg(msg, name));
  size_t n = strlen(head);
  if (n > strlen(ctx->errmsg)) n = strlen(ctx->errmsg); /* cut */
  ctx->errmsg_plugin = 1;
  ctx->errmsg_body = n;
  return rc;
}

void hcl_target_enter(hcl_ctx *ctx) {
  if (ctx) ctx->in_target++;
}

hcl_status hcl_target_leave(hcl_ctx *ctx, hcl_status rc) {
  if (ctx) ctx->in_target--;
  return rc;
}

const char *hcl_errmsg(const hcl_ctx *ctx) { return ctx ? ctx->errmsg : g_errmsg; }

void hcl_logv(hcl_ctx *ctx, hcl_log_level level, const char *fmt, va_list ap) {
  int max = global_level();
  if (ctx && (int)ctx->log_level < max && hcl_getenv("HIERCL_LOG") == NULL) max = ctx->log_level;
  if ((int)level > max) return;
  static const char *const names[] = {"error", "warning", "note", "debug"};
  fprintf(stderr, "hiercl: %s: ", names[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void hcl_log(hcl_ctx *ctx, hcl_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hcl_logv(ctx, level, fmt, ap);
  va_end(ap);
}

int hcl_exit_code(hcl_status rc) {
  switch (rc) {
  case HCL_OK: return HCL_EXIT_OK;
  case HCL_ERR_CONFIG:
  case HCL_ERR_PARAM: return HCL_EXIT_USAGE;
  case HCL_ERR_NODEVICE: return HCL_EXIT_NODEVICE;
  case HCL_ERR_INTERRUPTED: return HCL_EXIT_INTERRUPTED;
  default: return HCL_EXIT_FAIL;
  }
}

const char *hcl_strerror(hcl_status rc) {
  switch (rc) {
// clang-format off
#define N(x) case x: return #x;
    N(HCL_OK)
    N(HCL_ERR_NOMEM)
    N(HCL_ERR_PARAM)
    N(HCL_ERR_UNSUPPORTED)
    N(HCL_ERR_ABI)
    N(HCL_ERR_IO)
    N(HCL_ERR_BUILD)
    N(HCL_ERR_CONFIG)
    N(HCL_ERR_NODEVICE)
    N(HCL_ERR_NUMERIC)
    N(HCL_ERR_INTERRUPTED)
    N(HCL_ERR_PLUGIN)
    N(HCL_ERR_BLAS)
    N(CL_DEVICE_NOT_FOUND)
    N(CL_DEVICE_NOT_AVAILABLE)
    N(CL_COMPILER_NOT_AVAILABLE)
    N(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    N(CL_OUT_OF_RESOURCES)
    N(CL_OUT_OF_HOST_MEMORY)
    N(CL_PROFILING_INFO_NOT_AVAILABLE)
    N(CL_MEM_COPY_OVERLAP)
    N(CL_IMAGE_FORMAT_MISMATCH)
    N(CL_BUILD_PROGRAM_FAILURE)
    N(CL_MAP_FAILURE)
    N(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    N(CL_INVALID_VALUE)
    N(CL_INVALID_DEVICE_TYPE)
    N(CL_INVALID_PLATFORM)
    N(CL_INVALID_DEVICE)
    N(CL_INVALID_CONTEXT)
    N(CL_INVALID_QUEUE_PROPERTIES)
    N(CL_INVALID_COMMAND_QUEUE)
    N(CL_INVALID_HOST_PTR)
    N(CL_INVALID_MEM_OBJECT)
    N(CL_INVALID_BINARY)
    N(CL_INVALID_BUILD_OPTIONS)
    N(CL_INVALID_PROGRAM)
    N(CL_INVALID_PROGRAM_EXECUTABLE)
    N(CL_INVALID_KERNEL_NAME)
    N(CL_INVALID_KERNEL_DEFINITION)
    N(CL_INVALID_KERNEL)
    N(CL_INVALID_ARG_INDEX)
    N(CL_INVALID_ARG_VALUE)
    N(CL_INVALID_ARG_SIZE)
    N(CL_INVALID_KERNEL_ARGS)
    N(CL_INVALID_WORK_DIMENSION)
    N(CL_INVALID_WORK_GROUP_SIZE)
    N(CL_INVALID_WORK_ITEM_SIZE)
    N(CL_INVALID_GLOBAL_OFFSET)
    N(CL_INVALID_EVENT_WAIT_LIST)
    N(CL_INVALID_EVENT)
    N(CL_INVALID_OPERATION)
    N(CL_INVALID_BUFFER_SIZE)
    N(CL_INVALID_GLOBAL_WORK_SIZE)
#undef N
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    // clang-format on
  default: return "unknown status";
  }
}
