/* Device selector: a pure function over the device list, so every form is
 * tested on fake lists. Forms, tried in order: flat index ("0"), stable id
 * ("pocl:cpu:0"), type ("gpu" | "cpu" | "accel": the first of that type),
 * then a case-insensitive substring of the device name, the platform name or
 * the platform vendor (the first match). NULL or "" is the default: the
 * first GPU, else the first CPU, else the first device. */
#include "internal.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char no_device_msg[] =
    "no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)";

static int has_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (!strncasecmp(hay, needle, n)) return 1;
  return n == 0;
}

static int first_of_type(const hcl_device_info *devs, size_t n, cl_device_type t, size_t *index) {
  for (size_t i = 0; i < n; i++)
    if (devs[i].type & t) {
      *index = i;
      return 1;
    }
  return 0;
}

/* "<what>; candidates: 0 id (name), 1 id (name)" into err, truncated to fit. */
static hcl_status no_match(const hcl_device_info *devs, size_t n, char *err, size_t errlen,
                           const char *fmt, const char *sel) {
  if (!err || !errlen) return HCL_ERR_NODEVICE;
  size_t len = (size_t)snprintf(err, errlen, fmt, sel);
  for (size_t i = 0; i < n && len < errlen; i++)
    len += (size_t)snprintf(err + len, errlen - len, "%s%zu %s (%s)",
                            i ? ", " : "; candidates: ", i, devs[i].id, devs[i].name);
  return HCL_ERR_NODEVICE;
}

hcl_status hcl_device_select(const hcl_device_info *devs, size_t n, const char *selector,
                             size_t *index, char *err, size_t errlen) {
  if (!devs || n == 0) {
    if (err && errlen) snprintf(err, errlen, "%s", no_device_msg);
    return HCL_ERR_NODEVICE;
  }
  /* surrounding blanks come from INI values and shell quoting, never from a device */
  char sel[256];
  const char *s = selector ? selector : "";
  while (isspace((unsigned char)*s)) s++;
  size_t len = strnlen(s, sizeof sel - 1);
  while (len && isspace((unsigned char)s[len - 1])) len--;
  memcpy(sel, s, len);
  sel[len] = 0;

  if (!len) { /* default: first GPU, else first CPU, else the first device */
    if (first_of_type(devs, n, CL_DEVICE_TYPE_GPU, index)) return HCL_OK;
    if (first_of_type(devs, n, CL_DEVICE_TYPE_CPU, index)) return HCL_OK;
    *index = 0;
    return HCL_OK;
  }
  if (strspn(sel, "0123456789") == len) {
    /* flat index; compared as text length first so huge numbers cannot overflow */
    size_t v = 0;
    int big = len > 18;
    for (size_t i = 0; !big && i < len; i++) v = v * 10 + (size_t)(sel[i] - '0');
    if (!big && v < n) {
      *index = v;
      return HCL_OK;
    }
    char what[96];
    snprintf(what, sizeof what, "device index %%s is out of range (%zu device%s)", n,
             n == 1 ? "" : "s");
    return no_match(devs, n, err, errlen, what, sel);
  }
  for (size_t i = 0; i < n; i++)
    if (!strcasecmp(devs[i].id, sel)) {
      *index = i;
      return HCL_OK;
    }
  static const struct {
    const char *word;
    cl_device_type type;
  } types[] = {{"gpu", CL_DEVICE_TYPE_GPU},
               {"cpu", CL_DEVICE_TYPE_CPU},
               {"accel", CL_DEVICE_TYPE_ACCELERATOR},
               {"accelerator", CL_DEVICE_TYPE_ACCELERATOR}};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    if (!strcasecmp(sel, types[t].word)) {
      if (first_of_type(devs, n, types[t].type, index)) return HCL_OK;
      return no_match(devs, n, err, errlen, "no device of type '%s'", sel);
    }
  for (size_t i = 0; i < n; i++)
    if (has_ci(devs[i].name, sel) || has_ci(devs[i].platform, sel) ||
        has_ci(devs[i].platform_vendor, sel)) {
      *index = i;
      return HCL_OK;
    }
  return no_match(devs, n, err, errlen, "no device matches '%s'", sel);
}
