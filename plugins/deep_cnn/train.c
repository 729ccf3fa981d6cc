/* deep_cnn plugin: the training algorithms it offers besides the runtime's sgd. */
#include "deep_cnn.h"

#include <string.h>

hcl_status dcnn_train(void *self, const char *algorithm, hcl_trainer *t) {
  dcnn *m = self;
  if (algorithm && !strcmp(algorithm, "layerwise")) return dcnn_layerwise(m, t);
  if (algorithm && !strcmp(algorithm, "ridge_chain")) return dcnn_ridge_chain(m, t);
  return hcl_host->fail(m->ctx, HCL_ERR_CONFIG,
                        "unknown algorithm '%s' (known: sgd, layerwise, ridge_chain)",
                        algorithm ? algorithm : "(null)");
}
