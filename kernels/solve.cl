/* Dense symmetric positive definite solver, (A + lambda I) X = B per replica
 * (runtime/solve.c launches these; common.cl is prepended).
 *
 * Blocked right-looking Cholesky A = L L^T on a working copy L [R, k, k]
 * (lower triangle used; the upper triangle is scratch): for each panel of
 * HCL_SOLVE_NB columns, factor its diagonal block in local memory
 * (solve_potrf_diag), solve the rows below it against that block
 * (solve_trsm_panel) and subtract their outer product from the trailing
 * block: the runtime's batched SGEMM (runtime/solve.c) off the diagonal,
 * solve_syrk_diag on it. Then two triangular solves on B in place
 * (solve_trsv). Every element is updated in a fixed order (panel by panel,
 * column by column), so the bits do not depend on the work-group size, on
 * scheduling or on how many replicas share the launch.
 *
 * Pivots: the diagonal collects the largest cancellations (a_jj minus a sum
 * of squares), so it is kept apart in dg [R, k] until its panel is factored
 * (the SGEMM's update of L's diagonal is never read), its running sum
 * Kahan-compensated across every kernel (comp [R, k] carries the
 * compensation), and a pivot is tested against
 * thr[r] = HCL_SOLVE_TINY * trace(A + lambda I) before any square root. A
 * failed replica records (pivot index, value) in st and is skipped from then
 * on; the host reports it and never reads its numbers.
 *
 * The host passes HCL_SOLVE_NB, HCL_SOLVE_WG and HCL_SOLVE_SERIAL (the
 * diagonal blocks factored by one item: CPUs) as -D options.
 * st [R, 2] ints: st[2r] = -1 (fine), the failing pivot index, or -2 (the
 * solution is not finite); st[2r+1] = the pivot's float bits. */

/* diag (+)= -t with Kahan compensation c (both updated in place). */
#define HCL_KAHAN_SUB(sum, c, t)                                                                   \
  do {                                                                                             \
    float y_ = -(t) - (c);                                                                         \
    float s_ = (sum) + y_;                                                                         \
    (c) = (s_ - (sum)) - y_;                                                                       \
    (sum) = s_;                                                                                    \
  } while (0)

/* dg[r] = diag(L[r]) + lambda, thr[r] = tiny * max(trace, 0) (NaN trace: 0,
 * so every pivot fails), st and comp reset. One work-item per replica. */
__kernel void solve_prepare(__global const float *L, ulong k, float lambda, float tiny,
                            __global float *thr, __global int *st, __global float *comp,
                            __global float *dg) {
  size_t r = get_global_id(0);
  __global const float *Lr = L + r * k * k;
  float s = 0.0f, c = 0.0f;
  for (size_t i = 0; i < k; i++) {
    float v = Lr[i * k + i] + lambda;
    dg[r * k + i] = v;
    comp[r * k + i] = 0.0f;
    HCL_KAHAN_SUB(s, c, -v);
  }
  thr[r] = tiny * fmax(s, 0.0f);
  st[2 * r] = -1;
  st[2 * r + 1] = 0;
}

/* Factor the nb x nb diagonal block at (j0, j0) in place: one group of
 * HCL_SOLVE_WG items per replica, the block in local memory. No `return` in
 * the kernels with barriers: every item reaches every barrier, and work is
 * guarded instead (PoCL mis-handles returns around barriers). */
__kernel __attribute__((reqd_work_group_size(HCL_SOLVE_WG, 1, 1))) void
solve_potrf_diag(__global float *L, ulong k, ulong j0, ulong nb, __global const float *thr,
                 __global int *st, __global float *comp, __global const float *dg) {
  __local float T[HCL_SOLVE_NB][HCL_SOLVE_NB + 1];
  __local float C[HCL_SOLVE_NB];
  __local int failed;
  size_t lid = get_local_id(0), r = get_group_id(1);
  int live = st[2 * r] == -1; /* the same for the whole group */
  __global float *A = L + r * k * k + j0 * k + j0;
  if (live) {
    for (size_t e = lid; e < nb * nb; e += HCL_SOLVE_WG) {
      size_t i = e / nb, c = e - i * nb;
      T[i][c] = c < i ? A[i * k + c] : c == i ? dg[r * k + j0 + i] : 0.0f;
    }
    for (size_t i = lid; i < nb; i += HCL_SOLVE_WG) C[i] = comp[r * k + j0 + i];
  }
  if (lid == 0) failed = !live;
  barrier(CLK_LOCAL_MEM_FENCE);
  float t = thr[r];
#if HCL_SOLVE_SERIAL
  /* one item factors the block: on a CPU the three barriers a column cost
   * more than the block's arithmetic. Each element gets the same updates in
   * the same order as below, so the same bits. */
  for (size_t j = 0; lid == 0 && !failed && j < nb; j++) {
    float d = T[j][j];
    if (!(d > t)) {
      failed = 1;
      st[2 * r] = (int)(j0 + j);
      st[2 * r + 1] = as_int(d);
      break;
    }
    float p = T[j][j] = sqrt(d);
    for (size_t i = j + 1; i < nb; i++) T[i][j] = T[i][j] / p;
    for (size_t i = j + 1; i < nb; i++) {
      for (size_t c = j + 1; c < i; c++) {
        float v = T[i][j] * T[c][j]; /* as below */
        T[i][c] = T[i][c] - v;
      }
      float v = T[i][j] * T[i][j];
      HCL_KAHAN_SUB(T[i][i], C[i], v);
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);
#else
  for (size_t j = 0; j < nb; j++) {
    if (lid == 0 && !failed) {
      float d = T[j][j];
      if (!(d > t)) {
        failed = 1;
        st[2 * r] = (int)(j0 + j);
        st[2 * r + 1] = as_int(d);
      } else {
        T[j][j] = sqrt(d);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int go = !failed; /* read after the barrier: uniform */
    if (go) {
      float p = T[j][j];
      for (size_t i = j + 1 + lid; i < nb; i += HCL_SOLVE_WG) T[i][j] = T[i][j] / p;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    size_t m = nb - j - 1;
    if (go) {
      for (size_t e = lid; e < m * m; e += HCL_SOLVE_WG) {
        size_t ii = e / m, cc = e - ii * m;
        if (cc <= ii) {
          size_t i = j + 1 + ii, c = j + 1 + cc;
          float v = T[i][j] * T[c][j];
          if (i == c)
            HCL_KAHAN_SUB(T[i][i], C[i], v);
          else
            T[i][c] = T[i][c] - v;
        }
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
#endif
  if (!failed) {
    for (size_t e = lid; e < nb * nb; e += HCL_SOLVE_WG) {
      size_t i = e / nb, c = e - i * nb;
      if (c <= i) A[i * k + c] = T[i][c];
    }
    for (size_t i = lid; i < nb; i += HCL_SOLVE_WG) comp[r * k + j0 + i] = C[i];
  }
}

/* Rows j0+nb .. k-1 of the panel: x L11^T = a for each row (forward
 * substitution against the factored diagonal block), written into L and
 * into P [R, k, NB] (row g = i - j0 - nb) for the trailing update. */
__kernel void solve_trsm_panel(__global float *L, __global float *P, ulong k, ulong j0, ulong nb,
                               __global const int *st) {
  size_t g = get_global_id(0), r = get_global_id(1);
  size_t j1 = j0 + nb, rows = k - j1;
  if (g >= rows || st[2 * r] != -1) return;
  __global float *Lr = L + r * k * k;
  __global float *row = Lr + (j1 + g) * k + j0;
  __global const float *D = Lr + j0 * k + j0;
  __global float *x = P + (r * k + g) * HCL_SOLVE_NB;
  for (size_t c = 0; c < nb; c++) {
    float s = row[c];
    for (size_t p = 0; p < c; p++) s = s - x[p] * D[c * k + p];
    float v = s / D[c * k + c];
    x[c] = v;
    row[c] = v;
  }
}

/* The trailing block's diagonal, dg[i] -= sum_p P[i][p]^2 for j1 <= i < k
 * (P rows relative to j1), Kahan-compensated, p in order. One work-item per
 * (row, replica). */
__kernel void solve_syrk_diag(__global const float *P, ulong k, ulong j1, ulong nb,
                              __global const int *st, __global float *comp, __global float *dg) {
  size_t i = get_global_id(0), r = get_global_id(1);
  if (i >= k - j1 || st[2 * r] != -1) return;
  __global const float *x = P + (r * k + i) * HCL_SOLVE_NB;
  size_t e = r * k + j1 + i;
  float s = dg[e], cp = comp[e];
  for (size_t p = 0; p < nb; p++) HCL_KAHAN_SUB(s, cp, x[p] * x[p]);
  dg[e] = s;
  comp[e] = cp;
}

/* B <- L^{-1} B (trans = 0) or L^{-T} B (trans = 1), B [k, m] per replica, in
 * place; one group per replica, HCL_SOLVE_WG columns of B at a time, rows in
 * blocks of HCL_SOLVE_NB (from the last block down for trans = 1). A block:
 * item c solves its column over the block's rows alone (no barrier inside),
 * keeping the solved values in Y, then every row still to solve subtracts
 * the block's multiples, one row an item. Each element gets the same
 * subtractions in the same order as a sweep row by row, with two barriers
 * a block instead of two a row. trans = 1 flags a non-finite result in st
 * (-2). */
/* The u-th row of a block of nb, in solving order: forward from its first,
 * backward (trans) from its last. */
HCL_FN size_t hcl_trsv_at(int trans, size_t nb, size_t u) { return trans ? nb - 1 - u : u; }
/* The multiplier of solved row q in row i's equation: L[i][q], or for
 * trans L^T's, L[q][i]. */
HCL_FN float hcl_trsv_coef(__global const float *Lr, ulong k, int trans, size_t i, size_t q) {
  return trans ? Lr[q * k + i] : Lr[i * k + q];
}
__kernel __attribute__((reqd_work_group_size(HCL_SOLVE_WG, 1, 1))) void
solve_trsv(__global const float *L, __global float *B, ulong b_off, ulong k, ulong m, int trans,
           __global int *st) {
  __local float Y[HCL_SOLVE_NB][HCL_SOLVE_WG];
  __local int bad;
  size_t lid = get_local_id(0), r = get_group_id(1);
  int live = st[2 * r] == -1; /* uniform; no return in a kernel with barriers */
  __global const float *Lr = L + r * k * k;
  __global float *Br = B + b_off + r * k * m;
  if (lid == 0) bad = 0;
  for (size_t c0 = 0; live && c0 < m; c0 += HCL_SOLVE_WG) {
    size_t mc = m - c0 < HCL_SOLVE_WG ? m - c0 : HCL_SOLVE_WG;
    for (size_t s0 = 0; s0 < k; s0 += HCL_SOLVE_NB) {
      size_t nb = k - s0 < HCL_SOLVE_NB ? k - s0 : HCL_SOLVE_NB;
      size_t j0 = trans ? k - s0 - nb : s0; /* the block's first row */
      barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
      if (lid < mc) {
        size_t c = c0 + lid;
        for (size_t t = 0; t < nb; t++) { /* in solving order */
          size_t jj = hcl_trsv_at(trans, nb, t), j = j0 + jj;
          float v = Br[j * m + c];
          for (size_t u = 0; u < t; u++) {
            size_t p = hcl_trsv_at(trans, nb, u);
            v = v - hcl_trsv_coef(Lr, k, trans, j, j0 + p) * Y[p][lid];
          }
          v = v / Lr[j * k + j];
          Y[jj][lid] = v;
          Br[j * m + c] = v;
          if (trans && !isfinite(v)) bad = 1;
        }
      }
      barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
      /* rows still to solve: after the block (forward) or before it (backward) */
      size_t n_rest = trans ? j0 : k - j0 - nb;
      for (size_t q = lid; q < n_rest; q += HCL_SOLVE_WG) {
        size_t i = trans ? q : j0 + nb + q;
        __global float *bi = Br + i * m + c0;
        for (size_t c = 0; c < mc; c++) {
          float v = bi[c];
          for (size_t u = 0; u < nb; u++) {
            size_t p = hcl_trsv_at(trans, nb, u);
            v = v - hcl_trsv_coef(Lr, k, trans, i, j0 + p) * Y[p][c];
          }
          bi[c] = v;
        }
      }
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  if (lid == 0 && live && bad) st[2 * r] = -2;
}
