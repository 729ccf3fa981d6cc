/* Environment variables. Every one hiercl reads is named HIERCL_*; the HCL_*
 * names of earlier versions still work, with one deprecation warning each. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Old names already warned about in this process (a handful exist). */
static const char *g_warned[16];

const char *hcl_getenv(const char *name) {
  const char *v = getenv(name);
  if (v || strncmp(name, "HIERCL_", 7)) return v;
  char old[128];
  snprintf(old, sizeof old, "HCL_%s", name + 7);
  v = getenv(old);
  if (!v) return NULL;
  size_t i = 0;
  while (i < sizeof g_warned / sizeof *g_warned && g_warned[i] && strcmp(g_warned[i], name)) i++;
  if (i < sizeof g_warned / sizeof *g_warned && !g_warned[i]) {
    g_warned[i] = name;
    /* stderr directly: the log level itself may come from such a variable */
    fprintf(stderr, "hiercl: warning: %s is deprecated; set %s instead\n", old, name);
  }
  return v;
}
