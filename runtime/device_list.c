/* Device enumeration: one flat list over every OpenCL platform, sorted by
 * names rather than ICD order (which follows .icd file names and differs
 * between machines), with stable ids such as "pocl:cpu:0" (ANCHORS 3.3). */
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define CL_PLATFORM_NOT_FOUND_KHR_ (-1001) /* cl_khr_icd: the loader found no ICD */

const char *hcl_device_type_name(cl_device_type type) {
  if (type & CL_DEVICE_TYPE_GPU) return "gpu";
  if (type & CL_DEVICE_TYPE_CPU) return "cpu";
  if (type & CL_DEVICE_TYPE_ACCELERATOR) return "accel";
  return "other";
}

/* Copy an info string, cut at its first NUL and stripped of surrounding
 * blanks (some drivers pad device names with spaces). */
static void tidy(char *dst, size_t cap, const char *src) {
  while (*src && isspace((unsigned char)*src)) src++;
  size_t n = strnlen(src, cap - 1);
  while (n && isspace((unsigned char)src[n - 1])) n--;
  memcpy(dst, src, n);
  dst[n] = 0;
}

static void platform_str(cl_platform_id p, cl_platform_info what, char *dst, size_t cap) {
  char buf[1024] = {0};
  if (clGetPlatformInfo(p, what, sizeof buf - 1, buf, NULL) != CL_SUCCESS) buf[0] = 0;
  tidy(dst, cap, buf);
}

static void device_str(cl_device_id d, cl_device_info what, char *dst, size_t cap) {
  char buf[1024] = {0};
  if (clGetDeviceInfo(d, what, sizeof buf - 1, buf, NULL) != CL_SUCCESS) buf[0] = 0;
  tidy(dst, cap, buf);
}

static cl_ulong device_ulong(cl_device_id d, cl_device_info what) {
  cl_ulong v = 0;
  return clGetDeviceInfo(d, what, sizeof v, &v, NULL) == CL_SUCCESS ? v : 0;
}

static cl_uint device_uint(cl_device_id d, cl_device_info what) {
  cl_uint v = 0;
  return clGetDeviceInfo(d, what, sizeof v, &v, NULL) == CL_SUCCESS ? v : 0;
}

/* Case-insensitive substring test. */
static int has_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++) {
    size_t i = 0;
    while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n) return 1;
  }
  return n == 0;
}

/* Short lowercase word naming the platform, the first part of stable ids. */
static void platform_slug(const hcl_device_info *d, char *out, size_t cap) {
  static const struct {
    const char *needle, *slug;
  } known[] = {{"portable computing language", "pocl"},
               {"pocl", "pocl"},
               {"nvidia", "nvidia"},
               {"intel", "intel"},
               {"advanced micro devices", "amd"},
               {"amd", "amd"}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (has_ci(d->platform, known[i].needle) || has_ci(d->platform_vendor, known[i].needle)) {
      snprintf(out, cap, "%s", known[i].slug);
      return;
    }
  size_t n = 0;
  for (const char *p = d->platform; *p && n + 1 < cap; p++) {
    if (isalnum((unsigned char)*p))
      out[n++] = (char)tolower((unsigned char)*p);
    else if (n)
      break; /* end of the first word */
  }
  if (!n) n = (size_t)snprintf(out, cap, "cl");
  out[n] = 0;
}

typedef struct {
  hcl_device_info info;
  size_t platform_index, device_index; /* enumeration order: the last tie-breakers */
} entry;

static int entry_cmp(const void *a, const void *b) {
  const entry *x = a, *y = b;
  int c = strcmp(x->info.platform, y->info.platform);
  if (c) return c;
  if ((c = strcmp(x->info.name, y->info.name))) return c;
  if (x->device_index != y->device_index) return x->device_index < y->device_index ? -1 : 1;
  return x->platform_index < y->platform_index ? -1 : x->platform_index > y->platform_index;
}

static void fill_device(hcl_device_info *d, cl_platform_id p, cl_device_id dev) {
  d->platform_id = p;
  d->device_id = dev;
  platform_str(p, CL_PLATFORM_NAME, d->platform, sizeof d->platform);
  platform_str(p, CL_PLATFORM_VENDOR, d->platform_vendor, sizeof d->platform_vendor);
  platform_str(p, CL_PLATFORM_VERSION, d->platform_version, sizeof d->platform_version);
  device_str(dev, CL_DEVICE_NAME, d->name, sizeof d->name);
  device_str(dev, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
  device_str(dev, CL_DEVICE_VERSION, d->version, sizeof d->version);
  device_str(dev, CL_DRIVER_VERSION, d->driver, sizeof d->driver);
  cl_device_type t = 0;
  if (clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof t, &t, NULL) != CL_SUCCESS) t = 0;
  d->type = t;
  d->compute_units = device_uint(dev, CL_DEVICE_MAX_COMPUTE_UNITS);
  d->clock_mhz = device_uint(dev, CL_DEVICE_MAX_CLOCK_FREQUENCY);
  d->global_mem = device_ulong(dev, CL_DEVICE_GLOBAL_MEM_SIZE);
  d->local_mem = device_ulong(dev, CL_DEVICE_LOCAL_MEM_SIZE);
  d->max_alloc = device_ulong(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  size_t wg = 0;
  if (clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL) != CL_SUCCESS)
    wg = 0;
  d->max_work_group = wg;
  /* fp64: the double config is nonzero exactly when doubles are supported
   * (OpenCL 1.2); older drivers only list the extension. */
  cl_device_fp_config fp = 0;
  if (clGetDeviceInfo(dev, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp, &fp, NULL) == CL_SUCCESS)
    d->fp64 = fp != 0;
  if (!d->fp64) {
    size_t len = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &len) == CL_SUCCESS && len) {
      char *ext = malloc(len + 1);
      if (ext && clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, len, ext, NULL) == CL_SUCCESS) {
        ext[len] = 0;
        d->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
      }
      free(ext);
    }
  }
  cl_bool comp = CL_TRUE;
  if (clGetDeviceInfo(dev, CL_DEVICE_COMPILER_AVAILABLE, sizeof comp, &comp, NULL) != CL_SUCCESS)
    comp = CL_TRUE;
  d->compiler_available = comp != CL_FALSE;
}

hcl_status hcl_devices_list(hcl_device_info **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  cl_uint np = 0;
  cl_int cl = clGetPlatformIDs(0, NULL, &np);
  if (cl == CL_PLATFORM_NOT_FOUND_KHR_ || (cl == CL_SUCCESS && np == 0)) return HCL_OK;
  if (cl != CL_SUCCESS) {
    if (err && errlen) snprintf(err, errlen, "clGetPlatformIDs: %s", hcl_strerror(cl));
    return cl;
  }
  cl_platform_id *plats = calloc(np, sizeof *plats);
  if (!plats) goto nomem;
  if ((cl = clGetPlatformIDs(np, plats, NULL)) != CL_SUCCESS) {
    free(plats);
    if (err && errlen) snprintf(err, errlen, "clGetPlatformIDs: %s", hcl_strerror(cl));
    return cl;
  }
  entry *list = NULL;
  size_t count = 0;
  for (cl_uint p = 0; p < np; p++) {
    cl_uint nd = 0;
    /* A platform without devices (CL_DEVICE_NOT_FOUND) or a broken one is
     * skipped: it must not hide the devices of the others. */
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
      continue;
    cl_device_id *ids = calloc(nd, sizeof *ids);
    entry *grown = realloc(list, (count + nd) * sizeof *list);
    if (!ids || !grown) {
      free(ids);
      free(grown ? grown : list);
      free(plats);
      goto nomem;
    }
    list = grown;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) == CL_SUCCESS) {
      for (cl_uint i = 0; i < nd; i++) {
        entry *e = &list[count++];
        memset(e, 0, sizeof *e);
        e->platform_index = p;
        e->device_index = i;
        fill_device(&e->info, plats[p], ids[i]);
      }
    }
    free(ids);
  }
  free(plats);
  if (!count) {
    free(list);
    return HCL_OK;
  }
  qsort(list, count, sizeof *list, entry_cmp);

  hcl_device_info *devs = calloc(count, sizeof *devs);
  char(*slugs)[32] = calloc(count, sizeof *slugs);
  if (!devs || !slugs) {
    free(devs);
    free(slugs);
    free(list);
    goto nomem;
  }
  for (size_t i = 0; i < count; i++) {
    devs[i] = list[i].info;
    platform_slug(&devs[i], slugs[i], sizeof slugs[i]);
    const char *tn = hcl_device_type_name(devs[i].type);
    unsigned k = 0; /* devices before this one with the same slug and type */
    for (size_t j = 0; j < i; j++)
      if (!strcmp(slugs[j], slugs[i]) && !strcmp(hcl_device_type_name(devs[j].type), tn)) k++;
    snprintf(devs[i].id, sizeof devs[i].id, "%s:%s:%u", slugs[i], tn, k);
  }
  free(slugs);
  free(list);
  *out = devs;
  *n = count;
  return HCL_OK;

nomem:
  if (err && errlen) snprintf(err, errlen, "out of host memory while listing OpenCL devices");
  return HCL_ERR_NOMEM;
}
