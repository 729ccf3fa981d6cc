/* Sweep internals exposed for tests (sweep.c). */
#ifndef HCL_SWEEP_H
#define HCL_SWEEP_H
#include "trainer.h"

/* Expand "a, b" | "a..b" | "geom(lo, hi, n)" into strings (malloc'd array of malloc'd strings). */
hcl_status hcl_sweep_parse_values(const char *key, const char *text, char ***out, size_t *n);
/* P*: the smallest P (ascending P[]) with err <= thr, log-interpolated between
 * the bracketing points [lo, hi]; NaN pstar with lo = 0 when already below at
 * P[0] (then hi = P[0]), NaN with lo = P[n-1] when never reached. */
hcl_status hcl_sweep_pstar(const double *P, const double *err, size_t n, double thr, double *pstar,
                           double *lo, double *hi);
/* How much of a sweep.jsonl text (len bytes, NUL at text[len]) a resumed
 * sweep keeps: the longest prefix ending in a whole record line (a torn or
 * invalid tail, e.g. from a full disk or a crash, is cut). */
size_t hcl_sweep_whole_prefix(const char *text, size_t len);
#endif
