/* deep_cnn plugin: the flat parameter layout and its named blocks. */
#include "deep_cnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* PyTorch's order: conv1.weight [H, v*s] (as Conv1d's [H, v, s] flattened),
 * conv1.bias, ..., convL, readout.weight [n_out, H], readout.bias. Group of
 * layer k's blocks: k - 1; of the readout: L (layer-wise phases select by it). */
hcl_status dcnn_layout(dcnn *m) {
  size_t L = m->L, nb = 2 * L + 2;
  m->layer = calloc(L, sizeof *m->layer);
  m->blocks = calloc(nb, sizeof *m->blocks);
  m->names = calloc(nb, sizeof *m->names);
  if (!m->layer || !m->blocks || !m->names) return HCL_ERR_NOMEM;
  size_t off = 0, b = 0, P = m->d;
  for (size_t k = 0; k < L; k++) {
    dcnn_layer *ly = &m->layer[k];
    ly->c_in = k == 0 ? m->v : m->H;
    P /= m->s;
    ly->P = P;
    ly->alpha = m->mf ? (float)(1.0 / sqrt((double)(ly->c_in * m->s))) : 1.0f;
    size_t cols = ly->c_in * m->s;
    ly->w_off = off;
    snprintf(m->names[b], sizeof m->names[0], "conv%zu.weight", k + 1);
    m->blocks[b] = (hcl_block){m->names[b], off, m->H, cols, (uint32_t)k, 1};
    b++;
    off += m->H * cols;
    if (m->bias != DCNN_BIAS_NONE) {
      ly->b_off = off;
      ly->b_count = m->bias == DCNN_BIAS_SHARED ? m->H : P * m->H;
      snprintf(m->names[b], sizeof m->names[0], "conv%zu.bias", k + 1);
      /* shared: [H, 1] like a Linear bias; per position: [P, H], channels last */
      int shared = m->bias == DCNN_BIAS_SHARED;
      m->blocks[b] =
          (hcl_block){m->names[b], off, shared ? m->H : P, shared ? 1 : m->H, (uint32_t)k, 1};
      b++;
      off += ly->b_count;
    }
  }
  m->ro_off = off;
  snprintf(m->names[b], sizeof m->names[0], "readout.weight");
  m->blocks[b] = (hcl_block){m->names[b], off, m->n_out, m->H, (uint32_t)L, 1};
  b++;
  off += m->n_out * m->H;
  if (m->has_rb) {
    m->rb_off = off;
    snprintf(m->names[b], sizeof m->names[0], "readout.bias");
    m->blocks[b] = (hcl_block){m->names[b], off, m->n_out, 1, (uint32_t)L, 1};
    b++;
    off += m->n_out;
  }
  m->n_blocks = b;
  m->n_params = off;
  return HCL_OK;
}

size_t dcnn_n_params(void *self) { return ((dcnn *)self)->n_params; }

size_t dcnn_out_dim(void *self) { return ((dcnn *)self)->n_out; }

double dcnn_lr_scale(void *self) { return ((dcnn *)self)->lr_scale; }

const hcl_block *dcnn_blocks(void *self, size_t *n_blocks) {
  dcnn *m = self;
  *n_blocks = m->n_blocks;
  return m->blocks;
}
