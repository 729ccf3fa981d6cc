/* The gradient check of a model plugin (gradcheck.c), on a trainer set up
 * by hcl_gradcheck (run.c). */
#ifndef HCL_GRADCHECK_H
#define HCL_GRADCHECK_H

#include "trainer.h"

typedef struct hcl_gradcheck_run {
  hcl_trainer *t; /* initialised (parameters drawn, prepare() run) */
  size_t samples; /* inputs per replica, <= the model's max_batch */
  size_t coords;  /* coordinates checked per block (all of a smaller block) */
} hcl_gradcheck_run;

/* Compare t's model backward() with central finite differences of forward()
 * (float64 sums on the host) on `samples` test inputs with a fixed random
 * dout: one result per block of the model, in its order (*out malloc'd).
 * The parameters are left as they were. */
hcl_status hcl_gradcheck_model(const hcl_gradcheck_run *g, hcl_gradcheck_block **out,
                               size_t *n_out);

#endif
