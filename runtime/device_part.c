/* Parts of a device: "SEL/N.I" selects part I of the device SEL split into
 * N equal sub-devices (OpenCL device fission, CL_DEVICE_PARTITION_EQUALLY),
 * and a device list's "SEL/N" names all N parts. On PoCL's CPU device a
 * part of one compute unit runs on one worker thread of its own, so the
 * sweep's workers, one per part, train their runs side by side instead of
 * sharing every kernel between the threads. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* digits at *s into *v (1 to 4 of them, no sign); the end in *end */
static int small_uint(const char *s, unsigned *v, const char **end) {
  size_t k = strspn(s, "0123456789");
  if (k == 0 || k > 4) return -1;
  *v = (unsigned)strtoul(s, NULL, 10);
  *end = s + k;
  return 0;
}

int hcl_device_part_parse(const char *sel, char *base, size_t cap, unsigned *n, unsigned *i) {
  const char *slash = sel ? strrchr(sel, '/') : NULL;
  if (!slash) return 0;
  const char *e;
  if (small_uint(slash + 1, n, &e) || *n < 1) return -1;
  int whole = !*e || isspace((unsigned char)*e);
  if (!whole && (*e != '.' || small_uint(e + 1, i, &e) || *i >= *n)) return -1;
  while (isspace((unsigned char)*e)) e++; /* blanks from INI values and quoting */
  if (*e) return -1;
  size_t len = (size_t)(slash - sel);
  if (len == 0 || len >= cap) return -1;
  memcpy(base, sel, len);
  base[len] = 0;
  if (whole) *i = 0;
  return whole ? 2 : 1;
}

hcl_status hcl_device_partition(hcl_device_info *dev, unsigned n, unsigned i, char *err,
                                size_t errlen) {
  if (n < 2) return HCL_OK; /* one part: the device itself */
  if (dev->compute_units < n || dev->compute_units % n) {
    snprintf(err, errlen, "device %s has %u compute units, which do not split into %u equal parts",
             dev->id, dev->compute_units, n);
    return HCL_ERR_NODEVICE;
  }
  cl_uint units = dev->compute_units / n, got = 0;
  cl_device_partition_property props[] = {CL_DEVICE_PARTITION_EQUALLY, units, 0};
  cl_device_id *subs = calloc(n, sizeof *subs);
  if (!subs) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  cl_int cl = clCreateSubDevices(dev->device_id, props, n, subs, &got);
  if (cl != CL_SUCCESS || got < n) {
    for (cl_uint k = 0; cl == CL_SUCCESS && k < got; k++) clReleaseDevice(subs[k]);
    free(subs);
    snprintf(err, errlen, "device %s (%s): cannot split it into %u parts: %s", dev->id, dev->name,
             n, cl != CL_SUCCESS ? hcl_strerror(cl) : "too few sub-devices");
    return HCL_ERR_NODEVICE;
  }
  for (cl_uint k = 0; k < got; k++)
    if (k != i) clReleaseDevice(subs[k]);
  dev->device_id = subs[i];
  dev->compute_units = units;
  dev->global_mem /= n; /* the parts share the memory: each budgets its share */
  char whole[sizeof dev->id];
  snprintf(whole, sizeof whole, "%s", dev->id);
  hcl_device_part_id(dev->id, sizeof dev->id, whole, n, i);
  free(subs);
  return HCL_OK;
}

void hcl_device_part_id(char *out, size_t cap, const char *id, unsigned n, unsigned i) {
  if (n > 1)
    snprintf(out, cap, "%s/%u.%u", id, n, i);
  else
    snprintf(out, cap, "%s", id);
}
