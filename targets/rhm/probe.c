/* The synonymic-sensitivity probe (Cagnetta et al., PRX 2024):
 *   S_{k,l} = E|f_k(x) - f_k(P_l x)|^2 / E|f_k(x) - f_k(y)|^2
 * f_k = hidden layer k of the model (host->probe_features), P_l x = x with
 * the rule choices of every level-l node re-drawn (a uniform synonym of the
 * same parent, possibly the same tuple), y an independent datum. x = probe
 * samples 0..N-1, y = probe samples N..2N-1, the re-draws keyed by the
 * probe index (rhm.cl), so every evaluation sees the same inputs. Squared
 * distances are computed on the device per sample and summed on the host in
 * double, in sample order. A model without features: nothing is emitted. */
#include "rhm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Feature width of layer k; HCL_ERR_UNSUPPORTED when the model has none. */
static hcl_status layer_dim(hcl_probe *p, uint32_t k, size_t *dim) {
  hcl_buf none;
  memset(&none, 0, sizeof none);
  *dim = 0;
  return hcl_host->probe_features(p, k, none, 0, none, dim);
}

static hcl_status probe_alloc(rhm_target *t, hcl_ctx *ctx, size_t chunk, size_t dmax) {
  size_t R = t->R, xs = (size_t)(t->g.v * t->g.d);
  if (t->p_x.mem && t->probe_chunk == chunk && t->probe_dim >= dmax) return HCL_OK;
  hcl_buf *bufs[] = {&t->p_x, &t->p_y, &t->p_fa, &t->p_fb, &t->p_dist};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(ctx, bufs[i]);
  t->probe_chunk = chunk;
  t->probe_dim = dmax;
  size_t dm = dmax ? dmax : 1;
  HCL_TRY(hcl_host->buf_alloc(ctx, R * chunk * xs * sizeof(float), &t->p_x));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * chunk * sizeof(float), &t->p_y));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * chunk * dm * sizeof(float), &t->p_fa));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * chunk * dm * sizeof(float), &t->p_fb));
  HCL_TRY(hcl_host->buf_alloc(ctx, R * chunk * sizeof(float), &t->p_dist));
  return HCL_OK;
}

/* Features of layer k at probe samples first..first+c-1 (level ell re-drawn
 * when ell > 0) into f. */
static hcl_status features_at(rhm_target *t, hcl_probe *p, uint32_t k, uint64_t first, size_t c,
                              uint32_t ell, size_t D, hcl_buf f) {
  size_t R = t->R, xs = (size_t)(t->g.v * t->g.d), dim = 0;
  hcl_buf x = t->p_x, y = t->p_y;
  x.size = R * c * xs * sizeof(float);
  y.size = R * c * sizeof(float);
  f.size = R * c * (D ? D : 1) * sizeof(float);
  HCL_TRY(rhm_sample_ext(t, HCL_STREAM_PROBE, first, c, x, y, ell));
  HCL_TRY(hcl_host->probe_features(p, k, x, c, f, &dim));
  if (dim != D)
    return hcl_host->fail(t->ctx, HCL_ERR_PLUGIN,
                          "rhm probe: layer %u reported %zu features, earlier %zu", k, dim, D);
  return HCL_OK;
}

/* acc[r] += sum over the c rows of |fa - fb|^2. */
static hcl_status add_dist(rhm_target *t, size_t c, size_t D, float *host, double *acc) {
  size_t R = t->R;
  HCL_TRY(rhm_sqdist(t, t->p_fa, t->p_fb, c, D, t->p_dist));
  HCL_TRY(hcl_host->buf_read(t->ctx, t->p_dist, host, R * c * sizeof(float)));
  for (size_t r = 0; r < R; r++)
    for (size_t i = 0; i < c; i++) acc[r] += (double)host[r * c + i];
  return HCL_OK;
}

hcl_status rhm_probe(void *self, hcl_probe *p) {
  rhm_target *t = self;
  hcl_ctx *ctx = hcl_host->probe_ctx(p);
  size_t R = t->R;
  if (hcl_host->probe_replicas(p) != R)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "rhm probe: %zu replicas, target made for %zu",
                          hcl_host->probe_replicas(p), R);
  if (!t->probe_samples || !t->n_levels || !t->n_layers) return HCL_OK;
  /* which layers exist, and their widths */
  size_t dims[64], n_k = 0, dmax = 0;
  for (size_t a = 0; a < t->n_layers; a++) {
    hcl_status rc = layer_dim(p, t->layers[a], &dims[a]);
    if (rc == HCL_ERR_UNSUPPORTED && a == 0) return HCL_OK; /* no features at all */
    if (rc != HCL_OK) {
      if (t->layers_default) break; /* the model is shallower than L */
      return rc;
    }
    if (dims[a] > dmax) dmax = dims[a];
    n_k++;
  }
  if (!n_k) return HCL_OK;
  uint64_t N = t->probe_samples;
  size_t chunk = t->max_batch < N ? t->max_batch : (size_t)N;
  HCL_TRY(probe_alloc(t, ctx, chunk, dmax));
  size_t nl = t->n_levels;
  double *num = calloc(n_k * nl * R, sizeof *num), *den = calloc(n_k * R, sizeof *den);
  double *vals = malloc(R * sizeof *vals);
  float *host = malloc(R * chunk * sizeof *host);
  hcl_status rc = (num && den && vals && host)
                      ? HCL_OK
                      : hcl_host->fail(ctx, HCL_ERR_NOMEM, "rhm probe: out of host memory");
  for (size_t a = 0; a < n_k && rc == HCL_OK; a++) {
    uint32_t k = t->layers[a];
    size_t D = dims[a];
    for (uint64_t first = 0; first < N && rc == HCL_OK; first += chunk) {
      size_t c = N - first < chunk ? (size_t)(N - first) : chunk;
      rc = features_at(t, p, k, first, c, 0, D, t->p_fa);
      if (rc == HCL_OK) rc = features_at(t, p, k, N + first, c, 0, D, t->p_fb);
      if (rc == HCL_OK) rc = add_dist(t, c, D, host, den + a * R);
      for (size_t b = 0; b < nl && rc == HCL_OK; b++) {
        rc = features_at(t, p, k, first, c, t->levels[b], D, t->p_fb);
        if (rc == HCL_OK) rc = add_dist(t, c, D, host, num + (a * nl + b) * R);
      }
    }
  }
  for (size_t a = 0; a < n_k && rc == HCL_OK; a++)
    for (size_t b = 0; b < nl && rc == HCL_OK; b++) {
      char name[64];
      snprintf(name, sizeof name, "sensitivity_k%u_l%u", t->layers[a], t->levels[b]);
      for (size_t r = 0; r < R; r++) {
        double dn = den[a * R + r];
        vals[r] = dn > 0 ? num[(a * nl + b) * R + r] / dn : NAN;
      }
      rc = hcl_host->probe_emit(p, name, vals);
    }
  free(num);
  free(den);
  free(vals);
  free(host);
  return rc;
}
