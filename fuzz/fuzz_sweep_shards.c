/* The readers of sharded sweep records (--merge, --status, resume): any
 * bytes in sweep.jsonl and a shard file give, per (point, seed), a whole
 * record of that point that lies inside the text, and a merge that is a
 * fixed point (merging the merged file again picks the same lines);
 * --status reads them without reading out of bounds. */
#include "sweep.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void put(const char *name, const uint8_t *data, size_t n) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) abort();
  if (n && write(fd, data, n) != (ssize_t)n) abort();
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/fuzz_shards.XXXXXX");
    if (!mkdtemp(dir)) abort();
  }
  hcl_grid sw;
  memset(&sw, 0, sizeof sw);
  static char a1[] = "8", a2[] = "2000", b1[] = "16", b2[] = "24";
  snprintf(sw.axes[0].key, sizeof sw.axes[0].key, "train.train_size");
  sw.axes[0].values[0] = a1, sw.axes[0].values[1] = a2, sw.axes[0].n = 2;
  snprintf(sw.axes[1].key, sizeof sw.axes[1].key, "model.width");
  sw.axes[1].values[0] = b1, sw.axes[1].values[1] = b2, sw.axes[1].n = 2;
  sw.n_axes = 2;
  sw.seed_axis = sw.dim_axis = -1;
  sw.size_axis = 0;
  uint64_t seeds[2] = {0, 1};
  /* the input split at its first NUL: sweep.jsonl, then one shard's file */
  const uint8_t *nul = memchr(data, 0, size);
  size_t n1 = nul ? (size_t)(nul - data) : size;
  put("sweep.jsonl", data, n1);
  put("sweep.shard-1-of-2.jsonl", nul ? nul + 1 : data, nul ? size - n1 - 1 : 0);
  char *text = hcl_sweep_read_records(dir, "sweep");
  if (!text) abort();
  size_t tl = strlen(text);
  if (tl && text[tl - 1] != '\n') abort(); /* whole lines only */
  hcl_sweep_pick pick[8], again[8];
  if (hcl_sweep_pick_records(&sw, text, seeds, 2, pick) != HCL_OK) abort();
  size_t merged_len = 0;
  char *merged = malloc(tl + 1);
  if (!merged) abort();
  for (size_t j = 0; j < 8; j++) {
    if (!pick[j].line) continue;
    if (pick[j].line < text || pick[j].line + pick[j].len > text + tl) abort();
    if (!hcl_sweep_line_ok(pick[j].line, pick[j].len)) abort();
    char key[1024], want[1100];
    hcl_sweep_point_key_mask(&sw, j / 2, 0, key, sizeof key);
    snprintf(want, sizeof want, "\"key\":\"%s\"", key);
    char *line = strndup(pick[j].line, pick[j].len);
    if (!line || !strstr(line, want)) abort();
    free(line);
    memcpy(merged + merged_len, pick[j].line, pick[j].len);
    merged_len += pick[j].len;
    merged[merged_len++] = '\n';
  }
  merged[merged_len] = 0;
  if (hcl_sweep_pick_records(&sw, merged, seeds, 2, again) != HCL_OK) abort();
  for (size_t j = 0; j < 8; j++) {
    if (!pick[j].line != !again[j].line || pick[j].final != again[j].final) abort();
    if (pick[j].line &&
        (pick[j].len != again[j].len || memcmp(pick[j].line, again[j].line, pick[j].len)))
      abort();
  }
  size_t counts[4], job[4];
  hcl_sweep_jobs(&sw, 1u, job);
  FILE *null = fopen("/dev/null", "w");
  if (!null) abort();
  unsigned char undone[2] = {0, 0};
  if (hcl_sweep_status_report(&sw, dir, "sweep", seeds, 2, job, 2, 2, null, counts, undone) !=
      HCL_OK)
    abort();
  fclose(null);
  if (counts[0] + counts[1] + counts[2] != 4) abort();
  free(merged);
  free(text);
  return 0;
}
