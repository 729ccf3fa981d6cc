/* regular_net plugin: layerwise stochastic coordinate descent (SPEC 2.1,
 * this project's reading of Abbe et al. 2021).
 *
 * Layers are trained one at a time from the bottom. Inside layer l, the
 * neurons are visited in a random order (layer_passes times, a fresh order
 * each pass); the visited neuron v trains its incoming weights (row v of
 * layer<l>.weight, of layer<l>.skip and its bias) together with the readout,
 * by the runtime's mini-batch SGD, everything else frozen, with the l2
 * penalty (lambda/2)|w|^2: lambda1 on weights from the previous layer,
 * lambda2 on weights from the inputs (layer 1's weights and the skips), none
 * on biases and readout. v stops after neuron_steps steps, or earlier when
 * neuron_patience > 0 and its loss has not improved for that many checks.
 *
 * How it maps onto the trainer: each neuron is one train_phase with
 * group_mask = {group l, the readout's group L+1} and row_block =
 * layer<l>.weight, row v. The phase freezes everything outside layer l and
 * the readout and the other rows of layer<l>.weight; the rest of the
 * selection (other rows of the skip and bias blocks) and the per-block
 * penalties are applied by this model's backward (sel_on), which zeroes
 * those gradients and adds lambda * w. The phase's own l2 stays 0. A zero
 * gradient leaves an entry unchanged under sgd, momentum and adam, but the
 * optimizer's weight_decay would still shrink those other rows: they are
 * saved before the neuron's phase and put back after it. */
#include "regular_net.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A random order of 0..W-1 (Fisher-Yates on Philox words of stream
 * (seeds[0], SCHEDULE + index)): the replicas share the first replica's
 * schedule, so they stay in step with one phase per neuron. */
static void shuffle(const hcl_rn *m, uint64_t index, size_t *order) {
  uint64_t seed = m->seeds[0], stream = HCL_RN_STREAM(HCL_RN_DRAW_SCHEDULE, index);
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, word[4] = {0};
  uint64_t block = 0;
  unsigned used = 4;
  for (size_t i = 0; i < m->W; i++) order[i] = i;
  for (size_t i = m->W; i-- > 1;) {
    if (used == 4) {
      uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                         (uint32_t)(stream >> 32)};
      hcl_host->philox(key, ctr, word);
      block++;
      used = 0;
    }
    size_t j = (size_t)(word[used++] % (uint32_t)(i + 1));
    size_t tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
}

/* Backward keeps neuron v of layer l (0-based) and the readout. */
static void select_neuron(hcl_rn *m, size_t l, size_t v) {
  const hcl_rn_layer *ly = &m->layers[l];
  m->sel_on = 1;
  m->sel_w0 = ly->w_off + v * ly->in;
  m->sel_w1 = m->sel_w0 + ly->in;
  m->sel_l2w = (float)(ly->w_from_input ? m->lambda2 : m->lambda1);
  m->sel_s0 = m->sel_s1 = 0;
  if (ly->s_off != SIZE_MAX) {
    m->sel_s0 = ly->s_off + v * m->d;
    m->sel_s1 = m->sel_s0 + m->d;
  }
  m->sel_l2s = (float)m->lambda2;
  m->sel_b0 = m->sel_b1 = 0;
  if (ly->b_off != SIZE_MAX) {
    m->sel_b0 = ly->b_off + v;
    m->sel_b1 = m->sel_b0 + 1;
  }
  m->sel_ro = m->r_off;
}

/* A fixed batch of training samples on which a neuron's progress is judged. */
typedef struct monitor {
  size_t n;
  hcl_buf x, y, out;
} monitor;

static void monitor_free(hcl_rn *m, monitor *mo) {
  hcl_buf *b[] = {&mo->x, &mo->y, &mo->out};
  for (int i = 0; i < 3; i++)
    if (b[i]->mem) hcl_host->buf_free(m->ctx, b[i]);
}

static hcl_status monitor_make(hcl_rn *m, hcl_trainer *t, monitor *mo) {
  const hcl_host_api *host = hcl_host;
  uint64_t P = host->train_size(t);
  mo->n = P > 0 && P < m->max_batch ? (size_t)P : m->max_batch;
  size_t R = m->R, n = mo->n;
  HCL_TRY(host->buf_alloc(m->ctx, R * n * m->d * sizeof(float), &mo->x));
  HCL_TRY(host->buf_alloc(m->ctx, R * n * m->y_dim * sizeof(float), &mo->y));
  HCL_TRY(host->buf_alloc(m->ctx, R * n * m->D * sizeof(float), &mo->out));
  return host->train_batch(t, HCL_STREAM_TRAIN, 0, n, mo->x, mo->y);
}

/* Mean loss per replica of the current parameters on the monitor batch. */
static hcl_status monitor_loss(hcl_trainer *t, monitor *mo, double *loss) {
  const hcl_host_api *host = hcl_host;
  hcl_buf none = {0};
  HCL_TRY(host->train_forward(t, mo->x, mo->n, mo->out));
  return host->train_loss_grad(t, mo->out, mo->y, mo->n, 0.0f, none, loss);
}

/* Train neuron v of layer l by one phase, or by phases of neuron_check
 * steps until its loss stalls; *used gets the steps it ran. */
static hcl_status run_neuron(hcl_rn *m, hcl_trainer *t, monitor *mo, size_t l, size_t v,
                             uint64_t steps, uint64_t *used) {
  const hcl_host_api *host = hcl_host;
  hcl_phase ph = {.struct_size = sizeof ph,
                  .label = m->label,
                  .group_mask = (1ull << (l + 1)) | (1ull << (m->L + 1)),
                  .row_block = m->blocks[0].name,
                  .row = v};
  for (size_t b = 0; b < m->n_blocks; b++)
    if (m->blocks[b].offset == m->layers[l].w_off) ph.row_block = m->blocks[b].name;
  select_neuron(m, l, v);
  *used = 0;
  if (!m->neuron_patience) {
    ph.steps = steps;
    *used = steps;
    return host->train_phase(t, &ph, NULL);
  }
  size_t R = m->R;
  double best[R], now[R];
  HCL_TRY(monitor_loss(t, mo, best));
  uint64_t stale = 0;
  while (*used < steps) {
    ph.steps = steps - *used < m->neuron_check ? steps - *used : m->neuron_check;
    HCL_TRY(host->train_phase(t, &ph, NULL));
    *used += ph.steps;
    HCL_TRY(monitor_loss(t, mo, now));
    int improved = 0;
    for (size_t r = 0; r < R; r++)
      if (now[r] < best[r] - 1e-4 * fabs(best[r])) {
        improved = 1;
        best[r] = now[r];
      }
    stale = improved ? 0 : stale + 1;
    if (stale >= m->neuron_patience) break;
  }
  return HCL_OK;
}

/* The [W, cols] block at off of every replica to or from keep [R, W*cols]
 * at koff (to_keep: params -> keep). Rows v0 .. v1-1 only. */
static hcl_status copy_rows(hcl_rn *m, hcl_buf params, size_t off, size_t cols, size_t koff,
                            size_t v0, size_t v1, int to_keep) {
  size_t count = (v1 - v0) * cols;
  if (!count) return HCL_OK;
  for (size_t r = 0; r < m->R; r++) {
    hcl_buf p = hcl_view(params, r * m->n_params + off + v0 * cols, count);
    hcl_buf k = hcl_view(m->keep, m->keep_stride * r + koff + v0 * cols, count);
    HCL_TRY(hcl_host->buf_copy(m->ctx, to_keep ? k : p, to_keep ? p : k, count * sizeof(float)));
  }
  return HCL_OK;
}

/* Save (restore = 0) or put back all rows but v (restore = 1) of layer l's
 * skip and bias blocks: the phase cannot freeze rows of those blocks. */
static hcl_status keep_rows(hcl_rn *m, hcl_trainer *t, size_t l, size_t v, int restore) {
  const hcl_rn_layer *ly = &m->layers[l];
  hcl_buf params = hcl_host->train_params(t);
  size_t offs[2] = {ly->s_off, ly->b_off}, cols[2] = {m->d, 1}, koff = 0;
  for (int b = 0; b < 2; b++) {
    if (offs[b] == SIZE_MAX) continue;
    if (!restore) {
      HCL_TRY(copy_rows(m, params, offs[b], cols[b], koff, 0, m->W, 1));
    } else {
      HCL_TRY(copy_rows(m, params, offs[b], cols[b], koff, 0, v, 0));
      HCL_TRY(copy_rows(m, params, offs[b], cols[b], koff, v + 1, m->W, 0));
    }
    koff += m->W * cols[b];
  }
  return HCL_OK;
}

/* Train neuron v of layer l; *used gets the steps it ran. */
static hcl_status train_neuron(hcl_rn *m, hcl_trainer *t, monitor *mo, size_t l, size_t v,
                               uint64_t steps, uint64_t *used) {
  HCL_TRY(keep_rows(m, t, l, v, 0));
  hcl_status rc = run_neuron(m, t, mo, l, v, steps, used);
  hcl_status put = keep_rows(m, t, l, v, 1); /* also after an interrupt */
  return rc != HCL_OK ? rc : put;
}

/* One layer: passes x a random order of its neurons, then an evaluation. */
static hcl_status train_layer(hcl_rn *m, hcl_trainer *t, monitor *mo, size_t l, uint64_t steps,
                              size_t *order) {
  const hcl_host_api *host = hcl_host;
  uint64_t total = 0;
  snprintf(m->label, sizeof m->label, "layer%zu", l + 1);
  for (uint64_t pass = 0; pass < m->passes; pass++) {
    shuffle(m, (uint64_t)l * m->passes + pass, order);
    for (size_t i = 0; i < m->W; i++) {
      uint64_t used = 0;
      HCL_TRY(train_neuron(m, t, mo, l, order[i], steps, &used));
      total += used;
    }
  }
  m->sel_on = 0;
  size_t R = m->R;
  double layer[R], ran[R];
  for (size_t r = 0; r < R; r++) {
    layer[r] = (double)(l + 1);
    ran[r] = (double)total;
  }
  hcl_metric extra[] = {{"scd_layer", layer}, {"scd_layer_steps", ran}};
  return host->train_eval(t, extra, 2);
}

hcl_status hcl_rn_scd_check(const hcl_report *r, const hcl_rn *m) {
  if (m->L + 1 >= 64)
    return hcl_report_fail(r, HCL_ERR_PARAM,
                           "layerwise_scd selects layers by group bits 1..depth+1 < "
                           "64; depth = %zu is too deep",
                           m->L);
  return HCL_OK;
}

hcl_status hcl_rn_train(void *self, const char *algorithm, hcl_trainer *t) {
  hcl_rn *m = self;
  const hcl_host_api *host = hcl_host;
  if (!algorithm || strcmp(algorithm, "layerwise_scd"))
    return host->fail(m->ctx, HCL_ERR_UNSUPPORTED,
                      "no training algorithm '%s' (known: sgd, layerwise_scd)",
                      algorithm ? algorithm : "");
  hcl_report rep = {.host = host, .ctx = m->ctx};
  HCL_TRY(hcl_rn_scd_check(&rep, m));
  HCL_TRY(hcl_rn_kernels(m));
  uint64_t steps = m->neuron_steps;
  if (!steps) {
    uint64_t units = (uint64_t)m->L * m->W * m->passes;
    steps = host->train_steps(t) / units;
    if (!steps) steps = 1;
  }
  size_t *order = malloc(m->W * sizeof *order);
  if (!order) return host->fail(m->ctx, HCL_ERR_NOMEM, "out of host memory");
  monitor mo = {0};
  m->keep_stride = m->W * (m->d + 1);
  hcl_status rc = host->buf_alloc(m->ctx, m->R * m->keep_stride * sizeof(float), &m->keep);
  if (rc == HCL_OK && m->neuron_patience) rc = monitor_make(m, t, &mo);
  for (size_t l = 0; rc == HCL_OK && l < m->L; l++) rc = train_layer(m, t, &mo, l, steps, order);
  m->sel_on = 0;
  monitor_free(m, &mo);
  if (m->keep.mem) host->buf_free(m->ctx, &m->keep);
  free(order);
  return rc;
}
