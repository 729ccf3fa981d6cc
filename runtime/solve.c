/* Dense SPD solves on the device, (A + lambda I) X = B per replica
 * (hcl_host_api.solve_spd): blocked Cholesky then two triangular solves,
 * kernels/solve.cl, the trailing updates by the runtime's batched SGEMM.
 * The factorisation works on a copy of A and reads its lower triangle only,
 * so A is only read and its upper triangle may be anything; B is
 * overwritten only when every replica factored, so a system that is not
 * positive definite leaves B as it was (a non-finite X, from overflow, is
 * reported after the fact). Used by closed-form stages (ridge regression of
 * a readout), not in hot loops: the program is built on a context's first
 * call (its memo keeps it for the later calls and a session's later runs;
 * a binary-cache hit still costs tens of ms on PoCL) and the call waits for
 * the device twice (pivot status, finiteness). */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

extern const char hcl_src_solve[];

/* Shapes; passed to kernels/solve.cl as -D options so there is one copy. */
/* Panel width (the diagonal block in local memory). The diagonal block and
 * the panel's rows are solved column by column (one group per replica), the
 * rest by the SGEMM: at 32 a 512 x 512 system took 4-9 ms on the 2-core
 * CPU, at 64 11-14 ms. */
#define SOLVE_NB 32
#define SOLVE_WG 64 /* items of the per-replica groups */
/* A pivot <= SOLVE_TINY * trace(A + lambda I) is "not positive definite":
 * about 8 float epsilons of the trace, the size float rounding gives the
 * pivots of a singular matrix. */
#define SOLVE_TINY 1e-6f

enum { K_PREPARE, K_POTRF, K_TRSM, K_DIAG, K_TRSV, K_COUNT };
static const char *const k_names[K_COUNT] = {"solve_prepare", "solve_potrf_diag",
                                             "solve_trsm_panel", "solve_syrk_diag", "solve_trsv"};

typedef struct solve_state {
  hcl_ctx *ctx;
  int serial; /* diagonal blocks factored by one work-item */
  cl_program prog;
  cl_kernel k[K_COUNT];
  hcl_buf L, P, comp, dg, thr, st;
  size_t R, k_dim, m;
} solve_state;

/* Everything setup() made (also when it stopped half way). */
static void release(solve_state *s) {
  for (int i = 0; i < K_COUNT; i++)
    if (s->k[i]) clReleaseKernel(s->k[i]);
  if (s->prog) clReleaseProgram(s->prog);
  hcl_buf *bufs[] = {&s->L, &s->P, &s->comp, &s->dg, &s->thr, &s->st};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) hcl_buf_free(s->ctx, bufs[i]);
}

/* A float buffer holding at least n floats at a float-aligned offset. */
static hcl_status check_buf(hcl_ctx *ctx, const char *name, hcl_buf b, size_t n) {
  if (!b.mem) return hcl_fail(ctx, HCL_ERR_PARAM, "solve_spd: buffer %s is NULL", name);
  if (b.offset % sizeof(float))
    return hcl_fail(ctx, HCL_ERR_PARAM, "solve_spd: buffer %s offset %zu is not a multiple of 4",
                    name, b.offset);
  if (b.size / sizeof(float) < n)
    return hcl_fail(ctx, HCL_ERR_PARAM, "solve_spd: buffer %s holds %zu bytes, needs %zu floats",
                    name, b.size, n);
  return HCL_OK;
}

/* The groups of the fixed-shape kernels must fit the device. */
static hcl_status check_group(solve_state *s, int k, size_t need) {
  size_t max = 0;
  HCL_CL(s->ctx,
         clGetKernelWorkGroupInfo(s->k[k], s->ctx->dev.device_id, CL_KERNEL_WORK_GROUP_SIZE,
                                  sizeof max, &max, NULL),
         "solve_spd: work-group size query");
  if (max < need)
    return hcl_fail(s->ctx, HCL_ERR_UNSUPPORTED,
                    "solve_spd on %s (%s): kernel %s needs work-groups of %zu items, the device "
                    "allows %zu",
                    s->ctx->dev.id, s->ctx->dev.name, k_names[k], need, max);
  return HCL_OK;
}

/* Program, kernels and scratch buffers of one call. */
static hcl_status setup(solve_state *s) {
  char opts[128];
  snprintf(opts, sizeof opts, "-DHCL_SOLVE_NB=%d -DHCL_SOLVE_WG=%d -DHCL_SOLVE_SERIAL=%d", SOLVE_NB,
           SOLVE_WG, s->serial);
  HCL_TRY(hcl_program_build(s->ctx, "solve", hcl_src_solve, opts, &s->prog));
  for (int i = 0; i < K_COUNT; i++)
    HCL_TRY(hcl_kernel_create(s->ctx, s->prog, k_names[i], &s->k[i]));
  HCL_TRY(check_group(s, K_POTRF, SOLVE_WG));
  HCL_TRY(check_group(s, K_TRSV, SOLVE_WG));
  size_t R = s->R, k = s->k_dim, f = sizeof(float);
  HCL_TRY(hcl_buf_alloc(s->ctx, R * k * k * f, &s->L));
  HCL_TRY(hcl_buf_alloc(s->ctx, (k > SOLVE_NB ? R * k * SOLVE_NB : 1) * f, &s->P));
  HCL_TRY(hcl_buf_alloc(s->ctx, R * k * f, &s->comp));
  HCL_TRY(hcl_buf_alloc(s->ctx, R * k * f, &s->dg));
  HCL_TRY(hcl_buf_alloc(s->ctx, R * f, &s->thr));
  return hcl_buf_alloc(s->ctx, 2 * R * sizeof(cl_int), &s->st);
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* L = A + lambda I factored in place, panel by panel. */
static hcl_status factor(solve_state *s, hcl_buf a, float lambda) {
  hcl_ctx *ctx = s->ctx;
  cl_ulong k = s->k_dim;
  size_t R = s->R;
  HCL_TRY(hcl_buf_copy(ctx, s->L, hcl_buf_sub(a, 0, R * k * k * sizeof(float)),
                       R * k * k * sizeof(float)));
  float tiny = SOLVE_TINY;
  hcl_arg pa[] = {HCL_ARG(s->L.mem),    HCL_ARG(k),          HCL_ARG(lambda),
                  HCL_ARG(tiny),        HCL_ARG(s->thr.mem), HCL_ARG(s->st.mem),
                  HCL_ARG(s->comp.mem), HCL_ARG(s->dg.mem)};
  HCL_TRY(hcl_run_kernel(ctx, s->k[K_PREPARE], 1, &R, NULL, "solve_prepare", 8, pa));
  for (cl_ulong j0 = 0; j0 < k; j0 += SOLVE_NB) {
    cl_ulong nb = k - j0 < SOLVE_NB ? k - j0 : SOLVE_NB, j1 = j0 + nb;
    size_t g1[2] = {SOLVE_WG, R}, l1[2] = {SOLVE_WG, 1};
    hcl_arg da[] = {HCL_ARG(s->L.mem),    HCL_ARG(k),          HCL_ARG(j0),
                    HCL_ARG(nb),          HCL_ARG(s->thr.mem), HCL_ARG(s->st.mem),
                    HCL_ARG(s->comp.mem), HCL_ARG(s->dg.mem)};
    HCL_TRY(hcl_run_kernel(ctx, s->k[K_POTRF], 2, g1, l1, "solve_potrf", 8, da));
    if (j1 == k) break;
    size_t rows = (size_t)(k - j1);
    size_t g2[2] = {round_up(rows, 64), R};
    hcl_arg ta[] = {HCL_ARG(s->L.mem), HCL_ARG(s->P.mem), HCL_ARG(k),
                    HCL_ARG(j0),       HCL_ARG(nb),       HCL_ARG(s->st.mem)};
    HCL_TRY(hcl_run_kernel(ctx, s->k[K_TRSM], 2, g2, NULL, "solve_trsm", 6, ta));
    hcl_arg sa[] = {HCL_ARG(s->P.mem),  HCL_ARG(k),           HCL_ARG(j1),       HCL_ARG(nb),
                    HCL_ARG(s->st.mem), HCL_ARG(s->comp.mem), HCL_ARG(s->dg.mem)};
    HCL_TRY(hcl_run_kernel(ctx, s->k[K_DIAG], 2, g2, NULL, "solve_syrk_diag", 7, sa));
    /* L22 -= P P^T on its lower triangle, the only part read: the runtime's
     * product (the diagonal it writes is not read either: dg holds the
     * compensated one; the upper triangle is scratch) */
    size_t f = sizeof(float);
    HCL_TRY(hcl_sgemm_lower(ctx, 0, 1, rows, (size_t)nb, -1.0f, s->P, SOLVE_NB,
                            (size_t)k * SOLVE_NB, s->P, SOLVE_NB, (size_t)k * SOLVE_NB, 1.0f,
                            hcl_buf_sub(s->L, (j1 * k + j1) * f, s->L.size - (j1 * k + j1) * f),
                            (size_t)k, (size_t)(k * k), R));
  }
  return HCL_OK;
}

/* Fail naming the first replica whose status is not -1. */
static hcl_status check_status(solve_state *s, int after_solve) {
  size_t R = s->R;
  cl_int st[2 * R];
  HCL_TRY(hcl_buf_read(s->ctx, s->st, st, sizeof st));
  for (size_t r = 0; r < R; r++) {
    if (st[2 * r] == -1) continue;
    if (st[2 * r] == -2 || after_solve)
      return hcl_fail(s->ctx, HCL_ERR_NUMERIC,
                      "ridge system has a non-finite solution (replica %zu, k = %zu); increase "
                      "lambda or check the data",
                      r, s->k_dim);
    float v;
    memcpy(&v, &st[2 * r + 1], sizeof v);
    return hcl_fail(s->ctx, HCL_ERR_NUMERIC,
                    "ridge system not positive definite (replica %zu, pivot %d = %g); increase "
                    "lambda",
                    r, (int)st[2 * r], (double)v);
  }
  return HCL_OK;
}

/* Forward then backward substitution on B in place. */
static hcl_status substitute(solve_state *s, hcl_buf b) {
  cl_ulong k = s->k_dim, m = s->m;
  size_t g[2] = {SOLVE_WG, s->R}, l[2] = {SOLVE_WG, 1};
  for (cl_int trans = 0; trans < 2; trans++) {
    cl_ulong off = b.offset / sizeof(float);
    hcl_arg a[] = {HCL_ARG(s->L.mem), HCL_ARG(b.mem), HCL_ARG(off),      HCL_ARG(k),
                   HCL_ARG(m),        HCL_ARG(trans), HCL_ARG(s->st.mem)};
    HCL_TRY(
        hcl_run_kernel(s->ctx, s->k[K_TRSV], 2, g, l, trans ? "solve_trsv_t" : "solve_trsv", 7, a));
  }
  return HCL_OK;
}

/* Factor, check the pivots, substitute, check the solution. */
static hcl_status solve(solve_state *s, hcl_buf a, hcl_buf b, float lambda) {
  HCL_TRY(setup(s));
  HCL_TRY(factor(s, a, lambda));
  HCL_TRY(check_status(s, 0));
  HCL_TRY(substitute(s, b));
  return check_status(s, 1);
}

hcl_status hcl_solve_spd(hcl_ctx *ctx, hcl_buf a, hcl_buf b, size_t R, size_t k, size_t m,
                         float lambda) {
  return hcl_solve_spd_with(ctx, a, b, R, k, m, lambda, -1);
}

hcl_status hcl_solve_spd_with(hcl_ctx *ctx, hcl_buf a, hcl_buf b, size_t R, size_t k, size_t m,
                              float lambda, int serial) {
  if (!R || !k || !m) return HCL_OK;
  if (!isfinite(lambda))
    return hcl_fail(ctx, HCL_ERR_PARAM, "solve_spd: lambda = %g is not finite", (double)lambda);
  if (k > (size_t)1 << 20 || R > (size_t)1 << 20 || m > (size_t)1 << 30 ||
      R * k > ((size_t)1 << 40) / k)
    return hcl_fail(ctx, HCL_ERR_PARAM, "solve_spd: R = %zu, k = %zu, m = %zu is too large", R, k,
                    m);
  HCL_TRY(check_buf(ctx, "a", a, R * k * k));
  HCL_TRY(check_buf(ctx, "b", b, R * k * m));
  /* a CPU runs a work-group's items one after another: a barrier per step
   * of the diagonal block costs more there than one item doing it all (the
   * ops' choice of CPU or GPU variants, HIERCL_OPS_PATHS included) */
  if (serial < 0) serial = hcl_ops_cpu_paths(ctx);
  solve_state s = {.ctx = ctx, .serial = serial != 0, .R = R, .k_dim = k, .m = m};
  hcl_status rc = solve(&s, a, b, lambda);
  release(&s);
  return rc;
}
