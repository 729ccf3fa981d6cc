/* resnet plugin: the flat parameter layout and its named blocks. */
#include "resnet.h"

#include <stdio.h>
#include <stdlib.h>

/* PyTorch's order: each layer's weight [out, in] row-major, then its bias. */
hcl_status hcl_resnet_layout(hcl_resnet *m) {
  size_t L = m->depth;
  m->w_off = calloc(L, sizeof *m->w_off);
  m->b_off = calloc(L, sizeof *m->b_off);
  m->in_dim = calloc(L, sizeof *m->in_dim);
  m->out_dims = calloc(L, sizeof *m->out_dims);
  m->blocks = calloc(2 * L, sizeof *m->blocks);
  m->names = calloc(2 * L, sizeof *m->names);
  if (!m->w_off || !m->b_off || !m->in_dim || !m->out_dims || !m->blocks || !m->names)
    return HCL_ERR_NOMEM;
  size_t off = 0;
  for (size_t l = 0; l < L; l++) {
    size_t in = l == 0 ? m->n_in : m->width;
    size_t out = l == L - 1 ? m->out_dim : m->width;
    char layer[32];
    if (l == 0)
      snprintf(layer, sizeof layer, "fc0");
    else if (l == L - 1)
      snprintf(layer, sizeof layer, "out");
    else
      snprintf(layer, sizeof layer, "block%zu", l);
    m->in_dim[l] = in;
    m->out_dims[l] = out;
    m->w_off[l] = off;
    m->b_off[l] = off + out * in;
    snprintf(m->names[2 * l], sizeof m->names[0], "%s.weight", layer);
    snprintf(m->names[2 * l + 1], sizeof m->names[0], "%s.bias", layer);
    m->blocks[2 * l] = (hcl_block){m->names[2 * l], m->w_off[l], out, in, (uint32_t)l, 1};
    m->blocks[2 * l + 1] = (hcl_block){m->names[2 * l + 1], m->b_off[l], out, 1, (uint32_t)l, 1};
    off += out * in + out;
  }
  m->n_params = off;
  return HCL_OK;
}

hcl_buf hcl_resnet_view(hcl_buf b, size_t off, size_t span) {
  return (hcl_buf){b.mem, b.offset + off * sizeof(float), span * sizeof(float)};
}

hcl_buf hcl_resnet_pview(const hcl_resnet *m, hcl_buf params, size_t off, size_t count) {
  return hcl_resnet_view(params, off, (m->R - 1) * m->n_params + count);
}

size_t hcl_resnet_n_params(void *self) { return ((hcl_resnet *)self)->n_params; }

size_t hcl_resnet_out_dim(void *self) { return ((hcl_resnet *)self)->out_dim; }

const hcl_block *hcl_resnet_blocks(void *self, size_t *n_blocks) {
  hcl_resnet *m = self;
  *n_blocks = 2 * m->depth;
  return m->blocks;
}
