/* Placeholder until the device Cholesky solver lands (owned by the helper
 * writing plugins/three_layer). Returns a clear error, never wrong numbers. */
#include "internal.h"

hcl_status hcl_solve_spd(hcl_ctx *ctx, hcl_buf a, hcl_buf b, size_t R, size_t k, size_t m,
                         float lambda) {
  (void)a, (void)b, (void)R, (void)m, (void)lambda;
  return hcl_fail(ctx, HCL_ERR_UNSUPPORTED, "solve_spd (k = %zu) is not available yet", k);
}
