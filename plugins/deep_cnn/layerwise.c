/* deep_cnn plugin: the layerwise algorithm (SPEC 2.3).
 *
 * As the reference's CNNLayerWise (github pcsl-epfl/hierarchy-learning,
 * models/cnn2.py): stage k = 1..L trains convolution k on top of the frozen
 * layers 1..k-1, with a temporary readout: the mean over the P_k positions
 * of layer k's output followed by the model's own readout.weight (and bias),
 * freshly drawn at the start of every stage with the init distribution
 * (stream DCNN_STREAM_STAGE + 2k) and trained together with layer k. Stage L
 * is the full network (one position left, the mean is the identity): its
 * readout is the final one. During stage k the model's forward is the
 * truncated network, so evaluations inside a stage measure the layer-k
 * model; one evaluation closes every stage k < L (the runtime's closes L).
 * Differences to the reference: its last stage trains every layer (it keeps
 * no_grad off once the network is complete); here stage L trains layer L and
 * the readout only. Steps per stage: [model] layer_steps, or [train] steps / L. */
#include "deep_cnn.h"

#include <stdio.h>

/* Back to the full network, whatever happened. */
static hcl_status finish(dcnn *m, hcl_status rc) {
  m->stage = m->L;
  m->train_from = 1;
  return rc;
}

hcl_status dcnn_layerwise(dcnn *m, hcl_trainer *t) {
  const hcl_host_api *host = hcl_host;
  uint64_t total = host->train_steps(t);
  uint64_t per = m->layer_steps ? m->layer_steps : total / m->L;
  if (per == 0 && total > 0) per = 1;
  hcl_buf params = host->train_params(t);
  for (size_t k = 1; k <= m->L; k++) {
    m->stage = k; /* the model's graph becomes the truncated network (graph.c) */
    m->train_from = k;
    hcl_status rc =
        dcnn_init_readout(m, params, DCNN_STREAM_STAGE + 2 * k, DCNN_STREAM_STAGE + 2 * k + 1);
    if (rc != HCL_OK) return finish(m, rc);
    snprintf(m->stage_label, sizeof m->stage_label, "layer %zu", k);
    hcl_phase ph = {.struct_size = sizeof ph,
                    .label = m->stage_label,
                    .steps = per,
                    .group_mask = (1ull << (k - 1)) | (1ull << m->L)};
    rc = host->train_phase(t, &ph, NULL);
    if (rc == HCL_OK && k < m->L) rc = host->train_eval(t, NULL, 0);
    if (rc != HCL_OK) return finish(m, rc);
  }
  return finish(m, HCL_OK);
}
