/* The weight-clustering and linearity probe of the linear_teacher target
 * (SPEC 1.6). For a two-layer model f(x) = sum_i v_i act(w_i.x + b_i) found
 * in the model's blocks (lt_find_layout), per replica:
 *   cluster_cos       mean cosine of each hidden unit to its sign group's mean;
 *   clusters          greedy cosine clusters inside the sign groups (lt_cluster);
 *   direction_cos     cos(w+ - w-, w*);
 *   linear_agreement  P(sign f(x) = sign((w+ - w-).x + b+ - b-)) and
 *   teacher_agreement P(sign f(x) = sign(w*.x)) over the first probe_samples
 *                     inputs of the probe stream (fixed, never trained on).
 * The small parameter blocks are read back and reduced on the host; the
 * model runs on the device, agreements are counted there in integers. */
#include "linear_teacher.h"

#include <stdlib.h>
#include <string.h>

#define LT_PROBE_BLOCK 64u /* samples one work item counts */

/* Probe scratch: one chunk of inputs, labels, outputs; dir, offset, counts. */
static hcl_status probe_alloc(lt_target *t, hcl_ctx *ctx) {
  size_t R = t->R, m = t->probe_chunk;
  HCL_TRY(hcl_host->buf_alloc(ctx, R * m * t->d * sizeof(float), &t->p_x));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * m * sizeof(float), &t->p_y));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * m * sizeof(float), &t->p_f));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * t->d * sizeof(float), &t->p_dir));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * sizeof(float), &t->p_off));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * 2 * sizeof(uint32_t), &t->p_counts));
  return HCL_OK;
}

/* Read rows*cols floats of block b of every replica into out [R, rows*cols]. */
static hcl_status read_block(lt_target *t, hcl_buf params, size_t n_params, const hcl_block *b,
                             float *out) {
  size_t cnt = b->rows * b->cols;
  for (size_t r = 0; r < t->R; r++) {
    hcl_buf sub = hcl_view(params, r * n_params + b->offset, cnt);
    HCL_TRY(hcl_host->buf_read(t->ctx, sub, out + r * cnt, cnt * sizeof(float)));
  }
  return HCL_OK;
}

/* Cluster statistics of every replica; dir [R, d] and off [R] (float) for
 * the device. */
static hcl_status cluster_all(lt_target *t, hcl_buf params, const hcl_block *blocks,
                              size_t n_blocks, const lt_layout *lay, double *cos_v, double *clu_v,
                              double *dcos_v, float *dir_f, float *off_f) {
  hcl_ctx *ctx = t->ctx;
  size_t R = t->R, d = t->d, h = lay->h;
  size_t n_params = 0;
  for (size_t i = 0; i < n_blocks; i++) {
    size_t end = blocks[i].offset + blocks[i].rows * blocks[i].cols;
    if (end > n_params) n_params = end;
  }
  if (params.size) {
    if (params.size / sizeof(float) < R * n_params)
      return hcl_host->fail(ctx, HCL_ERR_PARAM,
                            "linear_teacher probe: parameters hold %zu floats, the blocks need "
                            "%zu per replica x %zu replicas",
                            params.size / sizeof(float), n_params, R);
    n_params = params.size / sizeof(float) / R;
  }
  float *W = malloc(R * h * d * sizeof *W), *v = malloc(R * h * sizeof *v);
  float *b = lay->bias >= 0 ? malloc(R * h * sizeof *b) : NULL;
  double *dir = malloc(d * sizeof *dir);
  hcl_status rc = HCL_OK;
  if (!W || !v || !dir || (lay->bias >= 0 && !b))
    rc = hcl_host->fail(ctx, HCL_ERR_NOMEM, "linear_teacher probe: out of host memory");
  if (rc == HCL_OK) rc = read_block(t, params, n_params, &blocks[lay->w1], W);
  if (rc == HCL_OK) rc = read_block(t, params, n_params, &blocks[lay->readout], v);
  if (rc == HCL_OK && b) rc = read_block(t, params, n_params, &blocks[lay->bias], b);
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    lt_cluster_stats st;
    double off = 0.0;
    if (lt_cluster(W + r * h * d, b ? b + r * h : NULL, v + r * h, h, d, t->threshold,
                   t->wstar + r * d, &st, dir, &off)) {
      rc = hcl_host->fail(ctx, HCL_ERR_NOMEM, "linear_teacher probe: out of host memory");
      break;
    }
    cos_v[r] = st.cluster_cos;
    clu_v[r] = st.clusters;
    dcos_v[r] = st.direction_cos;
    for (size_t j = 0; j < d; j++) dir_f[r * d + j] = (float)dir[j];
    off_f[r] = (float)off;
  }
  free(W);
  free(v);
  free(b);
  free(dir);
  return rc;
}

/* Count agreements over the probe stream's first probe_samples inputs. */
static hcl_status agreements(lt_target *t, hcl_probe *p, double *lin, double *tea) {
  hcl_ctx *ctx = t->ctx;
  size_t R = t->R;
  HCL_TRY(hcl_host->fill(ctx, t->p_counts, 0.0f, 2 * R)); /* 0.0f is all-zero bits */
  for (uint64_t first = 0; first < t->probe_samples; first += t->probe_chunk) {
    uint64_t left = t->probe_samples - first;
    size_t m = left < t->probe_chunk ? (size_t)left : t->probe_chunk;
    hcl_buf x = t->p_x, y = t->p_y, f = t->p_f;
    x.size = R * m * t->d * sizeof(float);
    y.size = f.size = R * m * sizeof(float);
    HCL_TRY(hcl_host->probe_batch(p, HCL_STREAM_PROBE, first, m, x, y));
    HCL_TRY(hcl_host->probe_forward(p, x, m, f));
    cl_ulong zero = 0;
    cl_uint cm = (cl_uint)m, d = (cl_uint)t->d, B = LT_PROBE_BLOCK;
    cl_uint G = (cl_uint)((m + LT_PROBE_BLOCK - 1) / LT_PROBE_BLOCK);
    hcl_arg a[] = {HCL_ARG(t->p_x.mem),
                   HCL_ARG(zero),
                   HCL_ARG(t->p_f.mem),
                   HCL_ARG(zero),
                   HCL_ARG(t->d_wstar.mem),
                   HCL_ARG(t->p_dir.mem),
                   HCL_ARG(t->p_off.mem),
                   HCL_ARG(t->p_counts.mem),
                   HCL_ARG(cm),
                   HCL_ARG(d),
                   HCL_ARG(G),
                   HCL_ARG(B)};
    size_t gws[2] = {G, R};
    HCL_TRY(hcl_host->run_kernel(ctx, t->k_agree, 2, gws, NULL, "linear_teacher_agree",
                                 sizeof a / sizeof *a, a));
  }
  uint32_t *c = malloc(2 * R * sizeof *c);
  if (!c) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "linear_teacher probe: out of host memory");
  hcl_status rc = hcl_host->buf_read(ctx, t->p_counts, c, 2 * R * sizeof *c);
  for (size_t r = 0; r < R; r++) {
    lin[r] = (double)c[2 * r] / (double)t->probe_samples;
    tea[r] = (double)c[2 * r + 1] / (double)t->probe_samples;
  }
  free(c);
  return rc;
}

hcl_status lt_probe(void *self, hcl_probe *p) {
  lt_target *t = self;
  hcl_ctx *ctx = hcl_host->probe_ctx(p);
  size_t R = t->R;
  if (hcl_host->probe_replicas(p) != R)
    return hcl_host->fail(ctx, HCL_ERR_PARAM,
                          "linear_teacher probe: %zu replicas, target made for %zu",
                          hcl_host->probe_replicas(p), R);
  const hcl_block *blocks = NULL;
  size_t n_blocks = 0;
  hcl_buf params = hcl_host->probe_params(p, &blocks, &n_blocks);
  lt_layout lay;
  if (!blocks || !params.mem || lt_find_layout(blocks, n_blocks, t->d, &lay))
    return lt_check_capped(t, NULL); /* not a two-layer net: nothing to report */
  if (!t->p_counts.mem) {
    uint64_t ps = t->probe_samples ? t->probe_samples : 1;
    t->probe_chunk = t->max_batch < ps ? t->max_batch : (size_t)ps;
    HCL_TRY(probe_alloc(t, ctx));
  }
  double *v = calloc(5 * R, sizeof *v);
  float *dir = malloc(R * t->d * sizeof *dir), *off = malloc(R * sizeof *off);
  hcl_status rc = HCL_OK;
  if (!v || !dir || !off)
    rc = hcl_host->fail(ctx, HCL_ERR_NOMEM, "linear_teacher probe: out of host memory");
  if (rc == HCL_OK)
    rc = cluster_all(t, params, blocks, n_blocks, &lay, v, v + R, v + 2 * R, dir, off);
  if (rc == HCL_OK) rc = hcl_host->buf_write(ctx, t->p_dir, dir, R * t->d * sizeof *dir);
  if (rc == HCL_OK) rc = hcl_host->buf_write(ctx, t->p_off, off, R * sizeof *off);
  if (rc == HCL_OK && t->probe_samples) rc = agreements(t, p, v + 3 * R, v + 4 * R);
  const char *names[] = {"cluster_cos", "clusters", "direction_cos", "linear_agreement",
                         "teacher_agreement"};
  size_t n_names = t->probe_samples ? 5 : 3;
  for (size_t i = 0; i < n_names && rc == HCL_OK; i++)
    rc = hcl_host->probe_emit(p, names[i], v + i * R);
  if (rc == HCL_OK) rc = lt_check_capped(t, NULL); /* training and probe draws so far */
  free(v);
  free(dir);
  free(off);
  return rc;
}
