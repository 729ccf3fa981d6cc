/* The check every model plugin's tests make: R replicas in one model are R
 * separate models, bit for bit. */
#include "hcl_test.h"

#include <stdlib.h>

/* init, forward on x and backward of dout for model m; its params, out and
 * grad read back (malloc'd, [m->R, ...]). */
static void pass(hcl_test_model *m, const float *xh, const float *dh, size_t n, size_t xs,
                 float **p, float **o, float **g) {
  hcl_ctx *ctx = m->ctx;
  size_t R = m->R, D = m->D, np = m->np;
  hcl_buf x = hcl_test_upload(ctx, xh, R * n * xs), dout = hcl_test_upload(ctx, dh, R * n * D);
  hcl_buf out, grad;
  assert_int_equal(hcl_buf_alloc(ctx, R * n * D * sizeof(float), &out), HCL_OK);
  assert_int_equal(hcl_buf_alloc(ctx, R * np * sizeof(float), &grad), HCL_OK);
  assert_int_equal(m->vt->init(m->self, m->params), HCL_OK);
  assert_int_equal(m->vt->forward(m->self, m->params, x, n, out), HCL_OK);
  assert_int_equal(m->vt->backward(m->self, m->params, dout, n, grad), HCL_OK);
  *p = hcl_test_download(ctx, m->params, R * np);
  *o = hcl_test_download(ctx, out, R * n * D);
  *g = hcl_test_download(ctx, grad, R * np);
  hcl_buf_free(ctx, &x);
  hcl_buf_free(ctx, &dout);
  hcl_buf_free(ctx, &out);
  hcl_buf_free(ctx, &grad);
}

void hcl_test_replicas_bitwise(hcl_ctx *ctx, const hcl_plugin_desc *desc, const char *const *kv,
                               size_t R, const uint64_t *seeds, size_t max_batch,
                               const hcl_target_info *t, size_t n, size_t xs, const float *xh,
                               const float *dh) {
  hcl_test_model all;
  assert_int_equal(hcl_test_model_make(ctx, desc, kv, R, seeds, max_batch, t, &all), HCL_OK);
  size_t np = all.np, D = all.D;
  float *pa, *oa, *ga;
  pass(&all, xh, dh, n, xs, &pa, &oa, &ga);
  for (size_t rep = 0; rep < R; rep++) {
    hcl_test_model one;
    assert_int_equal(hcl_test_model_make(ctx, desc, kv, 1, &seeds[rep], max_batch, t, &one),
                     HCL_OK);
    float *p1, *o1, *g1;
    pass(&one, xh + rep * n * xs, dh + rep * n * D, n, xs, &p1, &o1, &g1);
    assert_memory_equal(p1, pa + rep * np, np * sizeof *p1);
    assert_memory_equal(o1, oa + rep * n * D, n * D * sizeof *o1);
    assert_memory_equal(g1, ga + rep * np, np * sizeof *g1);
    free(p1), free(o1), free(g1);
    hcl_test_model_free(&one);
  }
  free(pa), free(oa), free(ga);
  hcl_test_model_free(&all);
}
