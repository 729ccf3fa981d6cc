/* runtime.profile = true: every launch is counted and timed on the device,
 * and a launch returns without waiting for the device (profile.c). */
#include "hcl_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) != HCL_OK) fail_msg("%s: %s", #call, hcl_errmsg(ctx));                              \
  } while (0)

static hcl_ctx *profiled_ctx(void) {
  const char *dev = getenv("HIERCL_TEST_DEVICE");
  hcl_ctx_options o = {.device = dev && *dev ? dev : "cpu", .quiet = 1, .profiling = 1};
  hcl_ctx *ctx = NULL;
  char err[1024];
  if (hcl_ctx_create(&o, &ctx, err, sizeof err) != HCL_OK) skip();
  return ctx;
}

static const hcl_kernel_stat *stat_of(const hcl_ctx *ctx, const char *label) {
  for (size_t i = 0; i < ctx->n_stats; i++)
    if (!strcmp(ctx->stats[i].label, label)) return &ctx->stats[i];
  return NULL;
}

typedef struct gate {
  cl_event user;
  volatile int opened;
} gate;

static void *open_later(void *arg) {
  gate *g = arg;
  sleep(1);
  g->opened = 1;
  clSetUserEventStatus(g->user, CL_COMPLETE);
  return NULL;
}

/* The queue is held by a user event that a thread completes a second later:
 * a launch that waited for its own event would return only after that. */
static void test_launch_does_not_wait(void **state) {
  (void)state;
  hcl_ctx *ctx = profiled_ctx();
  hcl_buf b;
  OK(hcl_buf_alloc(ctx, 64 * sizeof(float), &b));
  OK(hcl_fill(ctx, b, 0.0f, 64)); /* builds the program before the gate */
  OK(hcl_finish(ctx));
  cl_int cl;
  gate g = {.user = clCreateUserEvent(ctx->context, &cl)};
  assert_int_equal(cl, CL_SUCCESS);
  assert_int_equal(clEnqueueBarrierWithWaitList(ctx->queue, 1, &g.user, NULL), CL_SUCCESS);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, open_later, &g), 0);
  for (int i = 0; i < 3; i++) OK(hcl_fill(ctx, b, 2.0f, 64));
  int returned_first = !g.opened;
  pthread_join(th, NULL);
  OK(hcl_finish(ctx));
  clReleaseEvent(g.user);
  assert_true(returned_first);
  const hcl_kernel_stat *s = stat_of(ctx, "fill");
  assert_non_null(s);
  assert_int_equal(s->launches, 4);
  assert_true(s->device_s > 0.0);
  hcl_buf_free(ctx, &b);
  hcl_ctx_destroy(ctx);
}

/* More launches than the events kept at once: every one is counted, every
 * kept event is read by hcl_finish, and the results are right. */
static void test_many_launches_all_timed(void **state) {
  (void)state;
  hcl_ctx *ctx = profiled_ctx();
  hcl_buf b;
  size_t n = 3000;
  OK(hcl_buf_alloc(ctx, 16 * sizeof(float), &b));
  for (size_t i = 0; i < n; i++) OK(hcl_fill(ctx, b, (float)i, 16));
  OK(hcl_finish(ctx));
  assert_int_equal(ctx->n_prof_ev, 0);
  const hcl_kernel_stat *s = stat_of(ctx, "fill");
  assert_non_null(s);
  assert_int_equal(s->launches, n);
  assert_true(s->device_s > 0.0);
  float *h = hcl_test_download(ctx, b, 16);
  for (int i = 0; i < 16; i++) assert_true(h[i] == (float)(n - 1));
  free(h);
  /* launches left unread when the context goes are released with it */
  for (size_t i = 0; i < 10; i++) OK(hcl_fill(ctx, b, 1.0f, 16));
  hcl_buf_free(ctx, &b);
  hcl_ctx_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_launch_does_not_wait),
      cmocka_unit_test(test_many_launches_all_timed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
