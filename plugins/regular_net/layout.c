/* regular_net plugin: the flat parameter layout and its named blocks. */
#include "regular_net.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Append block `name` [rows, cols] at *off in group `group`. */
static void add_block(hcl_rn *m, const char *name, size_t *off, size_t rows, size_t cols,
                      uint32_t group, uint32_t trainable) {
  size_t i = m->n_blocks++;
  snprintf(m->names[i], sizeof m->names[0], "%s", name);
  m->blocks[i] = (hcl_block){m->names[i], *off, rows, cols, group, trainable};
  *off += rows * cols;
}

/* Per layer l = 1..L (group l): weight [W, in], skip [W, d] when l >= 2 and
 * input_skip, bias [W] when bias; then the readout (group L+1): weight
 * [D, U], frozen under readout_fixed, and bias [D] when readout_bias. */
hcl_status hcl_rn_layout(hcl_rn *m) {
  size_t L = m->L, W = m->W, d = m->d;
  m->layers = calloc(L, sizeof *m->layers);
  m->blocks = calloc(3 * L + 2, sizeof *m->blocks);
  m->names = calloc(3 * L + 2, sizeof *m->names);
  if (!m->layers || !m->blocks || !m->names) return HCL_ERR_NOMEM;
  size_t off = 0;
  char name[40];
  m->n_blocks = 0;
  for (size_t l = 0; l < L; l++) {
    hcl_rn_layer *ly = &m->layers[l];
    uint32_t g = (uint32_t)(l + 1);
    ly->in = l == 0 ? d : W;
    ly->w_from_input = l == 0;
    ly->w_off = off;
    snprintf(name, sizeof name, "layer%zu.weight", l + 1);
    add_block(m, name, &off, W, ly->in, g, 1);
    ly->s_off = SIZE_MAX;
    if (l > 0 && m->skip) {
      ly->s_off = off;
      snprintf(name, sizeof name, "layer%zu.skip", l + 1);
      add_block(m, name, &off, W, d, g, 1);
    }
    ly->fan_in = (double)ly->in + (ly->s_off != SIZE_MAX ? (double)d : 0.0);
    ly->b_off = SIZE_MAX;
    if (m->bias) {
      ly->b_off = off;
      snprintf(name, sizeof name, "layer%zu.bias", l + 1);
      add_block(m, name, &off, W, 1, g, 1);
    }
  }
  uint32_t gr = (uint32_t)(L + 1);
  m->r_off = off;
  add_block(m, "readout.weight", &off, m->D, m->U, gr, m->fixed == HCL_RN_FIXED_NONE);
  m->rb_off = SIZE_MAX;
  if (m->readout_bias) {
    m->rb_off = off;
    add_block(m, "readout.bias", &off, m->D, 1, gr, 1);
  }
  m->n_params = off;
  return HCL_OK;
}

size_t hcl_rn_n_params(void *self) { return ((hcl_rn *)self)->n_params; }

size_t hcl_rn_out_dim(void *self) { return ((hcl_rn *)self)->D; }

const hcl_block *hcl_rn_blocks(void *self, size_t *n_blocks) {
  hcl_rn *m = self;
  *n_blocks = m->n_blocks;
  return m->blocks;
}
