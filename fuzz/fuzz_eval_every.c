/* Fuzz [eval] every: hcl_eval_every_parse on arbitrary text, then, for an
 * accepted value and a total taken from the input, the schedule's
 * invariants: steps strictly increasing from 0, the last one the total,
 * hcl_eval_due true exactly on them, log:N at most N + 1 steps. */
#include "trainer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 4096

static void check(int ok) {
  if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 64) return 0;
  /* first two bytes: the total steps (small enough to scan every step) */
  uint64_t total = ((uint64_t)data[0] << 8 | data[1]) % 20000;
  char text[64];
  memcpy(text, data + 2, size - 2);
  text[size - 2] = 0;
  uint64_t every = 0;
  uint32_t lp = 0;
  if (hcl_eval_every_parse(text, &every, &lp) != 0) return 0;
  check(!(every && lp));
  if (lp > 5000) return 0; /* bounded work per input */
  if (!lp && every && total / every > MAX_STEPS) return 0;
  static uint64_t steps[MAX_STEPS + 8];
  size_t n = hcl_eval_steps(every, lp, total, steps, MAX_STEPS + 8);
  check(n >= 1 && n <= MAX_STEPS + 8);
  check(steps[0] == 0 && steps[n - 1] == total);
  if (lp) check(n <= (size_t)lp + 1);
  for (size_t i = 1; i < n; i++) check(steps[i] > steps[i - 1]);
  /* due() is true exactly on the listed steps, the closing one aside */
  size_t k = 0;
  for (uint64_t s = 0; s <= total; s++) {
    int listed = k < n && steps[k] == s;
    if (listed) k++;
    int closing = s == total && !lp && (every == 0 || total % every);
    if (!closing) check(hcl_eval_due(every, lp, total, s) == listed);
  }
  return 0;
}
