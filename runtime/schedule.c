/* Learning-rate schedules (SPEC 3): constant, step, piecewise, cosine. */
#include "trainer.h"

#include <math.h>
#include <time.h>

double hcl_schedule_lr(const hcl_schedule *s, uint64_t t) {
  switch (s->kind) {
  case HCL_SCHED_STEP: return s->every ? s->lr * pow(s->factor, (double)(t / s->every)) : s->lr;
  case HCL_SCHED_PIECEWISE: {
    if (!s->n_factors || !s->every) return s->lr;
    uint64_t i = t / s->every;
    if (i >= s->n_factors) i = s->n_factors - 1;
    return s->lr * s->factors[i];
  }
  case HCL_SCHED_COSINE: {
    if (!s->total) return s->lr;
    double u = (double)t / (double)s->total;
    if (u > 1) u = 1;
    return s->lr_min + 0.5 * (s->lr - s->lr_min) * (1 + cos(M_PI * u));
  }
  default: return s->lr;
  }
}

double hcl_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double hcl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
