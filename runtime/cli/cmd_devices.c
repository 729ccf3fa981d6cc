/* hiercl devices [--json]: list every OpenCL device with its stable id and
 * mark the one a run would use without --device. Compiles nothing, so it is
 * instant even on a cold driver cache (llama.cpp PR #23318). */
#include "commands.h"
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f, "usage: hiercl devices [--json]\n"
             "  every OpenCL device: index, stable id, type, compute units, global memory,\n"
             "  OpenCL version, name; '*' marks the default device. --device (or\n"
             "  HIERCL_DEVICE) takes an index, an id, gpu|cpu|accel or a name substring.\n");
}

static void json_field_str(const char *key, const char *v, int last) {
  printf("    ");
  hcl_json_str(stdout, key);
  printf(": ");
  hcl_json_str(stdout, v);
  printf(last ? "\n" : ",\n");
}

static void json_field_u64(const char *key, uint64_t v) {
  printf("    ");
  hcl_json_str(stdout, key);
  /* integers printed exactly: memory sizes need more digits than %.9g keeps */
  printf(": %" PRIu64 ",\n", v);
}

static void json_field_bool(const char *key, int v) {
  printf("    ");
  hcl_json_str(stdout, key);
  printf(": %s,\n", v ? "true" : "false");
}

static void print_json(const hcl_device_info *devs, size_t n, size_t def) {
  printf("[\n");
  for (size_t i = 0; i < n; i++) {
    const hcl_device_info *d = &devs[i];
    printf("  {\n");
    json_field_u64("index", i);
    json_field_str("id", d->id, 0);
    json_field_bool("default", i == def);
    json_field_str("type", hcl_device_type_name(d->type), 0);
    json_field_str("name", d->name, 0);
    json_field_str("vendor", d->vendor, 0);
    json_field_str("version", d->version, 0);
    json_field_str("driver", d->driver, 0);
    json_field_str("platform", d->platform, 0);
    json_field_str("platform_vendor", d->platform_vendor, 0);
    json_field_str("platform_version", d->platform_version, 0);
    json_field_u64("compute_units", d->compute_units);
    json_field_u64("clock_mhz", d->clock_mhz);
    json_field_u64("global_mem", d->global_mem);
    json_field_u64("local_mem", d->local_mem);
    json_field_u64("max_alloc", d->max_alloc);
    json_field_u64("max_work_group", d->max_work_group);
    json_field_bool("fp64", d->fp64);
    printf("    ");
    hcl_json_str(stdout, "compiler_available");
    printf(": %s\n", d->compiler_available ? "true" : "false");
    printf("  }%s\n", i + 1 < n ? "," : "");
  }
  printf("]\n");
}

/* "OpenCL 3.0 PoCL ..." -> "3.0": the table column stays narrow. */
static void cl_version(const char *v, char *out, size_t len) {
  const char *p = strncmp(v, "OpenCL ", 7) ? v : v + 7;
  size_t n = strcspn(p, " ");
  snprintf(out, len, "%.*s", (int)n, p);
}

static void print_table(const hcl_device_info *devs, size_t n, size_t def, const char *env) {
  size_t w = 2; /* id column width */
  for (size_t i = 0; i < n; i++)
    if (strlen(devs[i].id) > w) w = strlen(devs[i].id);
  printf("  %-3s %-*s %-5s %4s %9s %-6s %s\n", "#", (int)w, "id", "type", "CUs", "mem GiB", "CL",
         "name");
  for (size_t i = 0; i < n; i++) {
    const hcl_device_info *d = &devs[i];
    char ver[32];
    cl_version(d->version, ver, sizeof ver);
    printf("%c %-3zu %-*s %-5s %4u %9.1f %-6s %s (%s)\n", i == def ? '*' : ' ', i, (int)w, d->id,
           hcl_device_type_name(d->type), d->compute_units,
           (double)d->global_mem / (1024.0 * 1024.0 * 1024.0), ver, d->name, d->platform);
  }
  if (def < n) {
    if (env)
      printf("* default device (HIERCL_DEVICE=%s)\n", env);
    else
      printf("* default device (first GPU, else first CPU)\n");
  }
}

int hcl_cmd_devices(int argc, char **argv) {
  int json = 0;
  for (int i = 0; i < argc; i++) {
    if (i == 0 && argv[0][0] != '-') continue; /* the command name */
    if (!strcmp(argv[i], "--json"))
      json = 1;
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return HCL_EXIT_OK;
    } else {
      fprintf(stderr, "hiercl devices: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return HCL_EXIT_USAGE;
    }
  }
  hcl_device_info *devs = NULL;
  size_t n = 0;
  char err[HCL_ERRMSG_MAX] = "";
  hcl_status rc = hcl_devices_list(&devs, &n, err, sizeof err);
  if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: cannot list OpenCL devices: %s\n", err);
    return hcl_exit_code(rc);
  }
  size_t def = 0;
  if (hcl_device_select(devs, n, NULL, &def, err, sizeof err) != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", err);
    free(devs);
    return HCL_EXIT_NODEVICE;
  }
  /* The default a run would use: HIERCL_DEVICE when it names a device. */
  const char *env = getenv("HIERCL_DEVICE");
  if (env && *env) {
    size_t e = 0;
    if (hcl_device_select(devs, n, env, &e, err, sizeof err) == HCL_OK)
      def = e;
    else {
      fprintf(stderr, "hiercl: warning: HIERCL_DEVICE: %s\n", err);
      env = NULL;
    }
  } else
    env = NULL;
  if (json)
    print_json(devs, n, def);
  else
    print_table(devs, n, def, env);
  free(devs);
  return HCL_EXIT_OK;
}
