/* The resume reader of sweep.jsonl: any bytes (a file cut by a full disk or
 * a crash, or edited by hand) give a prefix that ends on a line boundary and
 * whose every trailing record is whole, without reading out of bounds. */
#include "sweep.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  size_t keep = hcl_sweep_whole_prefix(text, size);
  if (keep > size || (keep && text[keep - 1] != '\n')) abort();
  /* idempotent: what is kept is kept again */
  text[keep] = 0;
  if (hcl_sweep_whole_prefix(text, keep) != keep) abort();
  free(text);
  return 0;
}
