/* three_layer plugin: the learned-feature probe. On probe_samples inputs of
 * the probe stream, per unit j the correlation of the learned feature
 * u_j(x) = w_j . phi(x) (no bias: the feature, not the unit's output) with
 * the target's h*(x) (eval "hstar"); reported is hstar_corr = the mean over
 * units of |corr_j| (a unit's sign is arbitrary: a_j = +-1 flips it), units
 * whose feature is constant (w_j = 0, e.g. sigma2'(b_j) = 0 in algorithm1's
 * step) left out. Sums over samples are accumulated on the device (col_sum
 * and SGEMM in a fixed order), h* is read back; statistics in double on the
 * host. A target without h* (HCL_ERR_UNSUPPORTED) gives no metric. */
#include "three_layer.h"

#include <math.h>
#include <stdlib.h>

static hcl_status probe_alloc(tl_model *m) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, B = m->p_chunk, f = sizeof(float);
  HCL_TRY(host->buf_alloc(m->ctx, R * B * m->d * f, &m->p_x));
  HCL_TRY(host->buf_alloc(m->ctx, R * B * m->y_dim * f, &m->p_y));
  HCL_TRY(host->buf_alloc(m->ctx, R * B * f, &m->p_hs));
  HCL_TRY(host->buf_alloc(m->ctx, R * m->m2 * f, &m->p_sz));
  HCL_TRY(host->buf_alloc(m->ctx, R * m->m2 * f, &m->p_szz));
  return host->buf_alloc(m->ctx, R * m->m2 * f, &m->p_szh);
}

/* sz += sum_i u, szz += sum_i u^2, szh += u^T h over n samples; sh, shh on
 * the host. Returns HCL_ERR_UNSUPPORTED untouched when the target has no h*. */
static hcl_status accumulate(tl_model *m, hcl_probe *p, hcl_buf params, uint64_t first, size_t n,
                             double *sh, double *shh) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, k = tl_phi_dim(m), m2 = m->m2, span = R * n * m2;
  hcl_buf x = hcl_view(m->p_x, 0, R * n * m->d), hs = hcl_view(m->p_hs, 0, R * n);
  HCL_TRY(
      host->probe_batch(p, HCL_STREAM_PROBE, first, n, x, hcl_view(m->p_y, 0, R * n * m->y_dim)));
  hcl_status rc = host->probe_target_eval(p, "hstar", x, n, hs);
  if (rc != HCL_OK) return rc;
  HCL_TRY(tl_phi(m, NULL, p, x, n));
  hcl_buf u = hcl_view(m->u, 0, span), none = {0};
  HCL_TRY(host->sgemm_batched(m->ctx, 0, 1, n, m2, k, 1.0f, hcl_view(m->phi, 0, R * n * k), k,
                              n * k, hcl_pview(params, m->R, m->n_params, m->w_off, m2 * k), k,
                              m->n_params, 0.0f, u, m2, n * m2, R));
  float beta = first == 0 ? 0.0f : 1.0f;
  HCL_TRY(host->col_sum(m->ctx, u, m->p_sz, m2, R, n, m2, 1.0f, beta));
  HCL_TRY(host->sgemm_batched(m->ctx, 1, 0, m2, 1, n, 1.0f, u, m2, n * m2, hs, 1, n, beta, m->p_szh,
                              1, m2, R));
  hcl_buf sq = hcl_view(m->phi, 0, span); /* u^2, phi read */
  HCL_TRY(host->bias_act(m->ctx, HCL_ACT_QUADRATIC, u, none, 0, sq, R, n, m2));
  HCL_TRY(host->col_sum(m->ctx, sq, m->p_szz, m2, R, n, m2, 1.0f, beta));
  float *h = malloc(R * n * sizeof *h);
  if (!h) return host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  rc = host->buf_read(m->ctx, hs, h, R * n * sizeof *h);
  for (size_t r = 0; r < R && rc == HCL_OK; r++)
    for (size_t i = 0; i < n; i++) {
      sh[r] += h[r * n + i];
      shh[r] += (double)h[r * n + i] * h[r * n + i];
    }
  free(h);
  return rc;
}

/* Mean |corr_j| per replica from the sums over N samples. */
static hcl_status finish(tl_model *m, double N, const double *sh, const double *shh, double *corr) {
  const hcl_host_api *host = hcl_host;
  size_t R = m->R, m2 = m->m2;
  float *s = malloc(3 * R * m2 * sizeof *s);
  if (!s) return host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  float *sz = s, *szz = s + R * m2, *szh = s + 2 * R * m2;
  hcl_status rc = host->buf_read(m->ctx, m->p_sz, sz, R * m2 * sizeof *s);
  if (rc == HCL_OK) rc = host->buf_read(m->ctx, m->p_szz, szz, R * m2 * sizeof *s);
  if (rc == HCL_OK) rc = host->buf_read(m->ctx, m->p_szh, szh, R * m2 * sizeof *s);
  for (size_t r = 0; r < R && rc == HCL_OK; r++) {
    double mh = sh[r] / N, vh = shh[r] / N - mh * mh, acc = 0;
    size_t used = 0;
    for (size_t j = 0; j < m2; j++) {
      size_t q = r * m2 + j;
      double mz = sz[q] / N, vz = szz[q] / N - mz * mz, cov = szh[q] / N - mz * mh;
      /* a constant feature: variance at rounding level of its mean square */
      if (!(vz > 1e-6 * (szz[q] / N)) || !(vh > 0)) continue;
      double c = cov / sqrt(vz * vh);
      acc += fabs(c > 1 ? 1 : c < -1 ? -1 : c);
      used++;
    }
    corr[r] = used ? acc / (double)used : NAN;
  }
  free(s);
  return rc;
}

hcl_status tl_probe(void *self, hcl_probe *p) {
  tl_model *m = self;
  const hcl_host_api *host = hcl_host;
  if (!m->probe_samples) return HCL_OK;
  if (host->probe_replicas(p) != m->R)
    return host->fail(m->ctx, HCL_ERR_PARAM, "three_layer probe: %zu replicas, model made for %zu",
                      host->probe_replicas(p), m->R);
  if (!m->p_sz.mem) {
    m->p_chunk = m->max_batch < m->probe_samples ? m->max_batch : (size_t)m->probe_samples;
    HCL_TRY(probe_alloc(m));
  }
  HCL_TRY(tl_scratch(m, m->p_chunk));
  hcl_buf params = host->probe_params(p, NULL, NULL);
  size_t R = m->R;
  double sh[R], shh[R], corr[R];
  for (size_t r = 0; r < R; r++) sh[r] = shh[r] = 0;
  for (uint64_t first = 0; first < m->probe_samples; first += m->p_chunk) {
    uint64_t left = m->probe_samples - first;
    size_t n = left < m->p_chunk ? (size_t)left : m->p_chunk;
    hcl_status rc = accumulate(m, p, params, first, n, sh, shh);
    if (rc == HCL_ERR_UNSUPPORTED && first == 0) return HCL_OK; /* no h*: nothing to report */
    if (rc != HCL_OK) return rc;
  }
  HCL_TRY(finish(m, (double)m->probe_samples, sh, shh, corr));
  return host->probe_emit(p, "hstar_corr", corr);
}
