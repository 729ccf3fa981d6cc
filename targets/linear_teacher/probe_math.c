/* Host-side math of the linear_teacher probe: finding the two-layer net in a
 * model's blocks and the weight-clustering statistics (pure C, no host
 * table, so the tests call it directly). */
#include "linear_teacher.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lt_find_layout(const hcl_block *blocks, size_t n_blocks, size_t d, lt_layout *out) {
  out->w1 = out->bias = out->readout = -1;
  out->h = 0;
  for (size_t i = 0; i < n_blocks && out->w1 < 0; i++)
    if (blocks[i].cols == d && blocks[i].rows > 0) out->w1 = (long)i;
  if (out->w1 < 0) return -1;
  const hcl_block *w1 = &blocks[out->w1];
  size_t h = out->h = w1->rows;
  /* readout: h floats; by name first, then the [1, h] shape, then any */
  int best = 0;
  for (size_t i = 0; i < n_blocks; i++) {
    const hcl_block *b = &blocks[i];
    if ((long)i == out->w1 || b->rows * b->cols != h) continue;
    int score = 1 + (b->rows == 1 && b->cols == h) +
                2 * (b->name && strstr(b->name, "readout") != NULL) -
                (b->name && strstr(b->name, "bias") != NULL);
    if (score > best) {
      best = score;
      out->readout = (long)i;
    }
  }
  if (out->readout < 0) return -1;
  for (size_t i = 0; i < n_blocks && out->bias < 0; i++) {
    const hcl_block *b = &blocks[i];
    if ((long)i == out->w1 || (long)i == out->readout) continue;
    if (b->rows == h && b->cols == 1 && b->group == w1->group && b->name && strstr(b->name, "bias"))
      out->bias = (long)i;
  }
  /* a hidden-to-hidden weight (h columns, several rows) means a deeper net */
  for (size_t i = 0; i < n_blocks; i++) {
    const hcl_block *b = &blocks[i];
    if ((long)i == out->w1 || (long)i == out->readout || (long)i == out->bias) continue;
    if (b->cols == h && b->rows > 1) return -1;
    if (b->cols == d && b->rows > 1) return -1; /* a second layer fed by the inputs */
  }
  return 0;
}

double lt_cos(const double *a, const double *b, size_t d) {
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (size_t j = 0; j < d; j++) {
    ab += a[j] * b[j];
    aa += a[j] * a[j];
    bb += b[j] * b[j];
  }
  if (!(aa > 0.0) || !(bb > 0.0)) return 0.0;
  return ab / (sqrt(aa) * sqrt(bb));
}

/* Row i of W as doubles. */
static void row_of(const float *W, size_t i, size_t d, double *out) {
  for (size_t j = 0; j < d; j++) out[j] = (double)W[i * d + j];
}

int lt_cluster(const float *W, const float *b, const float *v, size_t h, size_t d, double thr,
               const float *wstar, lt_cluster_stats *st, double *dir, double *offset) {
  int rc = -1;
  memset(st, 0, sizeof *st);
  double *mean[2], *wi = calloc(d ? d : 1, sizeof *wi), *wl = calloc(d ? d : 1, sizeof *wl);
  mean[0] = calloc(d ? d : 1, sizeof(double));
  mean[1] = calloc(d ? d : 1, sizeof(double));
  size_t *leaders = malloc((h ? h : 1) * sizeof *leaders);
  double bsum[2] = {0.0, 0.0};
  size_t cnt[2] = {0, 0};
  *offset = 0.0;
  for (size_t j = 0; j < d; j++) dir[j] = 0.0;
  if (!wi || !wl || !mean[0] || !mean[1] || !leaders) goto done;
  /* group 0: v > 0, group 1: v < 0 */
  for (size_t i = 0; i < h; i++) {
    int g = v[i] > 0.0f ? 0 : v[i] < 0.0f ? 1 : -1;
    if (g < 0) continue;
    cnt[g]++;
    for (size_t j = 0; j < d; j++) mean[g][j] += (double)W[i * d + j];
    if (b) bsum[g] += (double)b[i];
  }
  for (int g = 0; g < 2; g++)
    if (cnt[g])
      for (size_t j = 0; j < d; j++) mean[g][j] /= (double)cnt[g];
  st->n_pos = cnt[0];
  st->n_neg = cnt[1];
  double cos_sum = 0.0;
  for (int g = 0; g < 2; g++) {
    size_t n_lead = 0;
    for (size_t i = 0; i < h; i++) {
      int gi = v[i] > 0.0f ? 0 : v[i] < 0.0f ? 1 : -1;
      if (gi != g) continue;
      row_of(W, i, d, wi);
      cos_sum += lt_cos(wi, mean[g], d);
      size_t c = 0;
      for (; c < n_lead; c++) {
        row_of(W, leaders[c], d, wl);
        if (lt_cos(wi, wl, d) >= thr) break;
      }
      if (c == n_lead) leaders[n_lead++] = i;
    }
    st->clusters += (double)n_lead;
  }
  if (cnt[0] + cnt[1]) st->cluster_cos = cos_sum / (double)(cnt[0] + cnt[1]);
  for (size_t j = 0; j < d; j++) dir[j] = mean[0][j] - mean[1][j];
  if (b)
    *offset = (cnt[0] ? bsum[0] / (double)cnt[0] : 0.0) - (cnt[1] ? bsum[1] / (double)cnt[1] : 0.0);
  if (wstar) {
    for (size_t j = 0; j < d; j++) wi[j] = (double)wstar[j];
    st->direction_cos = lt_cos(dir, wi, d);
  }
  rc = 0;
done:
  free(wi);
  free(wl);
  free(mean[0]);
  free(mean[1]);
  free(leaders);
  return rc;
}
