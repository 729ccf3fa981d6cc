/* Sessions (runtime/session.c): one context per device selector and options,
 * reused run after run with its per-run state cleared, and its programs
 * compiled once (program.c's memo), at most HCL_MEMO_MAX kept. */
#include "hcl_test.h"

#include <stdlib.h>
#include <string.h>

static const char *device(void) {
  const char *d = getenv("HIERCL_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

static const char src[] = "__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2; }\n";

/* The same options give the same context; its second build of a program is
 * the first one's (no compilation); a plain context compiles each time. */
static void one_context_programs_once(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  hcl_session *s;
  char err[1024];
  assert_int_equal(hcl_session_create(HCL_TEST_PLUGIN_DIR, &s, err, sizeof err), HCL_OK);
  assert_true(s->reg.n > 0); /* the plugins, scanned once */
  hcl_ctx_options o = {.device = device(), .quiet = 1};
  hcl_ctx *a, *b;
  int created;
  assert_int_equal(hcl_session_ctx(s, &o, &a, &created, err, sizeof err), HCL_OK);
  assert_int_equal(created, 1);
  cl_program p1, p2;
  assert_int_equal(hcl_program_build(a, "twice", src, "", &p1), HCL_OK);
  /* a run's state, which the next run must not see */
  hcl_buf buf;
  assert_int_equal(hcl_buf_alloc(a, 4096, &buf), HCL_OK);
  hcl_buf_free(a, &buf);
  hcl_note_add(a, "loss", "mse", 0);
  a->gemm_flops = 42;
  assert_int_equal(hcl_session_ctx(s, &o, &b, &created, err, sizeof err), HCL_OK);
  assert_ptr_equal(a, b);
  assert_int_equal(created, 0);
  assert_int_equal(b->mem_peak, 0);
  assert_true(b->gemm_flops == 0);
  for (size_t i = 0; i < b->n_notes; i++) assert_string_not_equal(b->notes[i].key, "loss");
  assert_int_equal(hcl_program_build(b, "twice", src, "", &p2), HCL_OK);
  assert_ptr_equal(p1, p2); /* the same program object: not compiled again */
  unsigned long built, reused;
  size_t contexts;
  hcl_session_programs(s, &built, &reused, &contexts);
  assert_int_equal(built, 1);
  assert_int_equal(reused, 1);
  assert_int_equal(contexts, 1);
  clReleaseProgram(p1);
  clReleaseProgram(p2);
  /* other options (profiling): another context */
  hcl_ctx_options o2 = o;
  o2.profiling = 1;
  assert_int_equal(hcl_session_ctx(s, &o2, &b, &created, err, sizeof err), HCL_OK);
  assert_ptr_not_equal(a, b);
  assert_int_equal(created, 1);
  hcl_session_destroy(s);
  /* a context of its own keeps nothing */
  hcl_ctx *c = hcl_test_ctx();
  assert_int_equal(hcl_program_build(c, "twice", src, "", &p1), HCL_OK);
  assert_int_equal(hcl_program_build(c, "twice", src, "", &p2), HCL_OK);
  assert_ptr_not_equal(p1, p2);
  assert_int_equal(c->n_memo, 0);
  clReleaseProgram(p1);
  clReleaseProgram(p2);
}

/* Programs whose options differ per point: the memo keeps the newest
 * memo_max (64 in a session; 4 here, to compile few programs). */
static void memo_is_bounded(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  hcl_session *s;
  char err[1024];
  assert_int_equal(hcl_session_create(HCL_TEST_PLUGIN_DIR, &s, err, sizeof err), HCL_OK);
  hcl_ctx_options o = {.device = device(), .quiet = 1};
  hcl_ctx *a;
  int created;
  assert_int_equal(hcl_session_ctx(s, &o, &a, &created, err, sizeof err), HCL_OK);
  assert_int_equal(a->memo_max, 64);
  a->memo_max = 4;
  for (int i = 0; i < 6; i++) {
    char opts[32];
    snprintf(opts, sizeof opts, "-DUNUSED=%d", i);
    cl_program p;
    assert_int_equal(hcl_program_build(a, "twice", src, opts, &p), HCL_OK);
    clReleaseProgram(p);
  }
  assert_int_equal(a->n_memo, 4);
  assert_int_equal(a->memo_built, 6);
  cl_program p; /* the newest is kept, the oldest is built again */
  assert_int_equal(hcl_program_build(a, "twice", src, "-DUNUSED=5", &p), HCL_OK);
  clReleaseProgram(p);
  assert_int_equal(a->memo_reused, 1);
  assert_int_equal(hcl_program_build(a, "twice", src, "-DUNUSED=0", &p), HCL_OK);
  clReleaseProgram(p);
  assert_int_equal(a->memo_built, 7);
  hcl_session_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_context_programs_once),
      cmocka_unit_test(memo_is_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
