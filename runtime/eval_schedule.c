/* Evaluation schedules ([eval] every): a fixed interval, or log:N, about N
 * evaluations spaced evenly in log(step) so that learning curves on a log
 * axis show the early dynamics as well as the end. */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HCL_EVAL_LOG_MAX 1000000

int hcl_eval_every_parse(const char *text, uint64_t *every, uint32_t *log_points) {
  *every = 0;
  *log_points = 0;
  if (!text) return -1;
  int is_log = !strncmp(text, "log:", 4);
  const char *s = is_log ? text + 4 : text;
  if (*s < '0' || *s > '9') return -1; /* no sign, no space, not empty */
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  if (!is_log) {
    if (v > 1000000000000000ull) return -1;
    *every = v;
    return 0;
  }
  if (v < 2 || v > HCL_EVAL_LOG_MAX) return -1;
  *log_points = (uint32_t)v;
  return 0;
}

/* Point k (0 .. n-1) of the log schedule over [1, total]:
 * round(total^(k/(n-1))), so point 0 is step 1 and point n-1 is `total`. */
static uint64_t log_point(uint64_t total, uint32_t n, uint64_t k) {
  if (k == 0) return 1;
  if (k + 1 >= n) return total;
  double v = floor(pow((double)total, (double)k / (double)(n - 1)) + 0.5);
  if (v < 1) return 1;
  if (v > (double)total) return total;
  return (uint64_t)v;
}

int hcl_eval_due(uint64_t every, uint32_t log_points, uint64_t total, uint64_t step) {
  if (step == 0) return 1; /* the start */
  if (!log_points) return every && step % every == 0;
  if (total == 0 || step > total) return 0;
  if (step == 1 || step == total) return 1;
  /* points are non-decreasing in k; the k whose point is `step`, if any,
   * lies next to the real solution of total^(k/(n-1)) = step */
  double k_est = log((double)step) / log((double)total) * (double)(log_points - 1);
  long long k0 = (long long)floor(k_est);
  for (long long k = k0 - 1; k <= k0 + 2; k++)
    if (k >= 0 && k < (long long)log_points && log_point(total, log_points, (uint64_t)k) == step)
      return 1;
  return 0;
}

size_t hcl_eval_steps(uint64_t every, uint32_t log_points, uint64_t total, uint64_t *out,
                      size_t max) {
  size_t n = 0;
  if (log_points) {
    uint64_t last = 0;
    if (max) out[0] = 0;
    n = 1;
    for (uint64_t k = 0; total && k < log_points; k++) {
      uint64_t s = log_point(total, log_points, k);
      if (s == last) continue;
      if (n < max) out[n] = s;
      n++;
      last = s;
    }
    return n;
  }
  for (uint64_t s = 0; s <= total; s += every) {
    if (n < max) out[n] = s;
    n++;
    if (!every) break;
  }
  if (total && (every == 0 || total % every)) { /* the closing evaluation */
    if (n < max) out[n] = total;
    n++;
  }
  return n;
}
