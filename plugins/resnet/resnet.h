/* resnet plugin: shared declarations of its source files (not an ABI). */
#ifndef HCL_RESNET_H
#define HCL_RESNET_H

#include "hiercl/plugin.h"

/* The runtime's function table, set once by hcl_plugin_init (plugin.c). */
extern const hcl_host_api *hcl_resnet_host;

/* Return the status of a call when it is not HCL_OK. */
#define HCL_RESNET_TRY(call)                                                                       \
  do {                                                                                             \
    hcl_status hcl_resnet_rc_ = (call);                                                            \
    if (hcl_resnet_rc_ != HCL_OK) return hcl_resnet_rc_;                                           \
  } while (0)

/* Stream ids of the init draws: tag + block index, so that no block shares a
 * stream with another block or with a target's data streams (0, 1, 2). */
#define HCL_RESNET_STREAM_BASE 0x7265736e65740000ull /* "resnet\0\0" */

/* One model instance for R replicas. Layers 0 .. depth-1: layer 0 is
 * Linear(n_in -> width) + act, layers 1 .. depth-2 the residual blocks,
 * layer depth-1 the readout Linear(width -> out_dim). */
typedef struct hcl_resnet {
  hcl_ctx *ctx;
  size_t R, n_in, width, depth, out_dim, max_batch, n_params;
  hcl_act act;
  uint64_t *seeds; /* [R], copied from the setup */
  /* parameter layout: per layer, the weight [out, in] and bias [out] offsets
   * (floats from a replica's start) and the layer's in/out widths */
  size_t *w_off, *b_off, *in_dim, *out_dims;
  hcl_block *blocks; /* 2 * depth: weight then bias of each layer */
  char (*names)[48];
  /* kept activations of the last forward, each [R, max_batch, width]:
   * z[l] the pre-activation (bias included), h[l] the layer's output
   * (after the residual add for blocks), for the hidden layers 0 .. depth-2 */
  hcl_buf *z, *h;
  hcl_buf dh, dz; /* backward scratch, [R, max_batch, width] */
  hcl_buf x_last; /* the input of the last forward (the caller's buffer) */
  size_t n_last;
  int have_forward; /* 0 until a forward; features() resets it */
} hcl_resnet;

/* Fill the layout (offsets, widths, named blocks, n_params) from n_in,
 * width, depth, out_dim. Allocates w_off .. names. */
hcl_status hcl_resnet_layout(hcl_resnet *m);
/* A view of buffer b: `off` floats in, covering `span` floats. */
hcl_buf hcl_resnet_view(hcl_buf b, size_t off, size_t span);
/* The view of a per-replica parameter block at `off` with `count` floats, for
 * batched ops striding n_params floats over the R replicas. */
hcl_buf hcl_resnet_pview(const hcl_resnet *m, hcl_buf params, size_t off, size_t count);

/* Device-free check of the parameters against the target (hcl_model_vt.check). */
hcl_status hcl_resnet_check(const hcl_params *p, const hcl_check_info *run,
                            const hcl_target_info *target, char *err, size_t errlen);
hcl_status hcl_resnet_create(hcl_ctx *ctx, const hcl_setup *setup, const hcl_target_info *target,
                             void **self);
void hcl_resnet_destroy(void *self);
size_t hcl_resnet_n_params(void *self);
size_t hcl_resnet_out_dim(void *self);
const hcl_block *hcl_resnet_blocks(void *self, size_t *n_blocks);
hcl_status hcl_resnet_init(void *self, hcl_buf params);
hcl_status hcl_resnet_forward(void *self, hcl_buf params, hcl_buf x, size_t n, hcl_buf out);
hcl_status hcl_resnet_backward(void *self, hcl_buf params, hcl_buf dout, size_t n, hcl_buf grad);
hcl_status hcl_resnet_features(void *self, hcl_buf params, size_t layer, hcl_buf x, size_t n,
                               hcl_buf out, size_t *dim);

#endif
