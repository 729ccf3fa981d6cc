/* Device selector (device_select.c) on fake device lists: every selector
 * form, the default rule, and errors that list the candidates. Also, when an
 * OpenCL platform exists, the real list's ids and order, and a device's
 * parts (device_part.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"

static hcl_device_info mk(const char *id, const char *platform, const char *pvendor,
                          const char *name, cl_device_type type) {
  hcl_device_info d;
  memset(&d, 0, sizeof d);
  snprintf(d.id, sizeof d.id, "%s", id);
  snprintf(d.platform, sizeof d.platform, "%s", platform);
  snprintf(d.platform_vendor, sizeof d.platform_vendor, "%s", pvendor);
  snprintf(d.name, sizeof d.name, "%s", name);
  d.type = type;
  d.compiler_available = 1;
  return d;
}

/* pocl cpu, two NVIDIA GPUs, an FPGA accelerator: sorted as hcl_devices_list would. */
static size_t mixed(hcl_device_info *d) {
  d[0] = mk("intel:accel:0", "Intel(R) FPGA SDK for OpenCL(TM)", "Intel(R) Corporation",
            "Agilex Reference Board : fpga0", CL_DEVICE_TYPE_ACCELERATOR);
  d[1] = mk("nvidia:gpu:0", "NVIDIA CUDA", "NVIDIA Corporation", "NVIDIA H100 80GB HBM3",
            CL_DEVICE_TYPE_GPU);
  d[2] = mk("nvidia:gpu:1", "NVIDIA CUDA", "NVIDIA Corporation", "NVIDIA RTX A4000",
            CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_DEFAULT);
  d[3] = mk("pocl:cpu:0", "Portable Computing Language", "The pocl project",
            "pthread-skylake-avx512-AMD EPYC", CL_DEVICE_TYPE_CPU);
  return 4;
}

static size_t sel(const hcl_device_info *d, size_t n, const char *s, char *err) {
  size_t idx = 999;
  hcl_status rc = hcl_device_select(d, n, s, &idx, err, 1024);
  if (rc != HCL_OK) {
    assert_int_equal(rc, HCL_ERR_NODEVICE);
    return 999;
  }
  assert_true(idx < n);
  return idx;
}

static void test_default_prefers_gpu(void **state) {
  (void)state;
  hcl_device_info d[4];
  size_t n = mixed(d);
  char err[1024];
  assert_int_equal(sel(d, n, NULL, err), 1);
  assert_int_equal(sel(d, n, "", err), 1);
  assert_int_equal(sel(d, n, "  ", err), 1);
}

static void test_default_without_gpu(void **state) {
  (void)state;
  hcl_device_info d[4];
  mixed(d);
  char err[1024];
  hcl_device_info nogpu[2] = {d[0], d[3]}; /* accel first, then cpu */
  assert_int_equal(sel(nogpu, 2, NULL, err), 1);
  hcl_device_info onlyacc[1] = {d[0]};
  assert_int_equal(sel(onlyacc, 1, "", err), 0);
  assert_int_equal(sel(nogpu, 2, "gpu", err), 999);
  assert_non_null(strstr(err, "no device of type 'gpu'"));
  assert_non_null(strstr(err, "1 pocl:cpu:0 (pthread-skylake-avx512-AMD EPYC)"));
}

static void test_index(void **state) {
  (void)state;
  hcl_device_info d[4];
  size_t n = mixed(d);
  char err[1024];
  assert_int_equal(sel(d, n, "0", err), 0);
  assert_int_equal(sel(d, n, "3", err), 3);
  assert_int_equal(sel(d, n, " 2 ", err), 2);
  assert_int_equal(sel(d, n, "4", err), 999);
  assert_non_null(strstr(err, "index 4 is out of range (4 devices)"));
  assert_non_null(strstr(err, "candidates: 0 intel:accel:0"));
  assert_int_equal(sel(d, n, "99999999999999999999999999", err), 999);
  assert_non_null(strstr(err, "out of range"));
}

static void test_stable_id(void **state) {
  (void)state;
  hcl_device_info d[4];
  size_t n = mixed(d);
  char err[1024];
  assert_int_equal(sel(d, n, "pocl:cpu:0", err), 3);
  assert_int_equal(sel(d, n, "nvidia:gpu:1", err), 2);
  assert_int_equal(sel(d, n, "NVIDIA:GPU:0", err), 1);
  assert_int_equal(sel(d, n, "intel:accel:0", err), 0);
  assert_int_equal(sel(d, n, "nvidia:gpu:2", err), 999);
  assert_non_null(strstr(err, "'nvidia:gpu:2'"));
}

static void test_type_words(void **state) {
  (void)state;
  hcl_device_info d[4];
  size_t n = mixed(d);
  char err[1024];
  assert_int_equal(sel(d, n, "gpu", err), 1);
  assert_int_equal(sel(d, n, "GPU", err), 1);
  assert_int_equal(sel(d, n, "cpu", err), 3);
  assert_int_equal(sel(d, n, "accel", err), 0);
  assert_int_equal(sel(d, n, "Accelerator", err), 0);
}

static void test_substring(void **state) {
  (void)state;
  hcl_device_info d[4];
  size_t n = mixed(d);
  char err[1024];
  assert_int_equal(sel(d, n, "a4000", err), 2); /* device name */
  assert_int_equal(sel(d, n, "h100", err), 1);
  assert_int_equal(sel(d, n, "portable", err), 3);         /* platform name */
  assert_int_equal(sel(d, n, "the POCL project", err), 3); /* platform vendor */
  assert_int_equal(sel(d, n, "nvidia", err), 1);           /* several: the first */
  assert_int_equal(sel(d, n, "fpga", err), 0);
  assert_int_equal(sel(d, n, "EPYC", err), 3);
}

static void test_no_match_lists_candidates(void **state) {
  (void)state;
  hcl_device_info d[4];
  size_t n = mixed(d);
  char err[1024];
  assert_int_equal(sel(d, n, "foo", err), 999);
  assert_string_equal(err, "no device matches 'foo'; candidates: "
                           "0 intel:accel:0 (Agilex Reference Board : fpga0), "
                           "1 nvidia:gpu:0 (NVIDIA H100 80GB HBM3), "
                           "2 nvidia:gpu:1 (NVIDIA RTX A4000), "
                           "3 pocl:cpu:0 (pthread-skylake-avx512-AMD EPYC)");
  /* a small buffer truncates instead of overflowing */
  char small[24];
  size_t idx;
  assert_int_equal(hcl_device_select(d, n, "foo", &idx, small, sizeof small), HCL_ERR_NODEVICE);
  assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_empty_list(void **state) {
  (void)state;
  char err[1024];
  size_t idx;
  const char *sels[] = {NULL, "", "0", "gpu", "pocl:cpu:0", "foo"};
  for (size_t i = 0; i < sizeof sels / sizeof sels[0]; i++) {
    err[0] = 0;
    assert_int_equal(hcl_device_select(NULL, 0, sels[i], &idx, err, sizeof err), HCL_ERR_NODEVICE);
    assert_string_equal(err,
                        "no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)");
  }
}

/* The real list (whatever this machine has): ids unique and well formed,
 * listing twice gives the same order, each id selects its own entry. */
static void test_real_list(void **state) {
  (void)state;
  hcl_device_info *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  char err[1024];
  assert_int_equal(hcl_devices_list(&a, &na, err, sizeof err), HCL_OK);
  if (na == 0) {
    free(a);
    skip();
  }
  assert_int_equal(hcl_devices_list(&b, &nb, err, sizeof err), HCL_OK);
  assert_int_equal(na, nb);
  for (size_t i = 0; i < na; i++) {
    assert_string_equal(a[i].id, b[i].id);
    assert_string_equal(a[i].name, b[i].name);
    const char *tn = hcl_device_type_name(a[i].type);
    char prefix[64];
    snprintf(prefix, sizeof prefix, ":%s:", tn);
    assert_non_null(strstr(a[i].id, prefix));
    assert_true(a[i].name[0] != 0);
    assert_true(a[i].compute_units > 0);
    assert_true(a[i].global_mem > 0);
    if (strstr(a[i].platform, "Portable Computing Language"))
      assert_true(strncmp(a[i].id, "pocl:", 5) == 0);
    size_t idx = 999;
    assert_int_equal(hcl_device_select(a, na, a[i].id, &idx, err, sizeof err), HCL_OK);
    assert_int_equal(idx, i);
    for (size_t j = 0; j < i; j++) {
      assert_string_not_equal(a[i].id, a[j].id);
      int c = strcmp(a[j].platform, a[i].platform);
      assert_true(c < 0 || (c == 0 && strcmp(a[j].name, a[i].name) <= 0));
    }
  }
  free(a);
  free(b);
}

/* "SEL/N.I" is part I of N, "SEL/N" all N parts; anything else after the
 * last '/' is refused. */
static void test_part_parse(void **state) {
  (void)state;
  char base[64];
  unsigned n = 9, i = 9;
  assert_int_equal(hcl_device_part_parse("cpu", base, sizeof base, &n, &i), 0);
  assert_int_equal(hcl_device_part_parse(NULL, base, sizeof base, &n, &i), 0);
  assert_int_equal(hcl_device_part_parse("pocl:cpu:0/4.3", base, sizeof base, &n, &i), 1);
  assert_string_equal(base, "pocl:cpu:0");
  assert_true(n == 4 && i == 3);
  assert_int_equal(hcl_device_part_parse("cpu/2", base, sizeof base, &n, &i), 2);
  assert_string_equal(base, "cpu");
  assert_true(n == 2 && i == 0);
  assert_int_equal(hcl_device_part_parse(" cpu/2.1 ", base, sizeof base, &n, &i), 1);
  assert_true(n == 2 && i == 1); /* blanks around, as from an INI value */
  assert_int_equal(hcl_device_part_parse("cpu/2 ", base, sizeof base, &n, &i), 2);
  static const char *const bad[] = {"cpu/2.2", "cpu/0",     "cpu/0.0",  "cpu/x",
                                    "cpu/2.",  "cpu/.1",    "cpu/2.1x", "/2.1",
                                    "cpu/-1",  "cpu/99999", "cpu/2 .1"};
  for (size_t b = 0; b < sizeof bad / sizeof *bad; b++)
    if (hcl_device_part_parse(bad[b], base, sizeof base, &n, &i) != -1)
      fail_msg("'%s' was taken as a part", bad[b]);
}

/* A part of the real CPU device: its own id and half the compute units, the
 * same bits from a product as the whole device; the whole list "cpu/2", a
 * part past the device's units and a part beyond N are refused by name. */
static void test_part_ctx(void **state) {
  (void)state;
  hcl_ctx_options o = {.device = "cpu", .quiet = 1};
  hcl_ctx *whole = NULL, *half = NULL;
  char err[1024];
  if (hcl_ctx_create(&o, &whole, err, sizeof err) != HCL_OK) skip();
  unsigned cu = whole->dev.compute_units;
  if (cu < 2 || cu % 2) {
    hcl_ctx_destroy(whole);
    skip();
  }
  o.device = "cpu/2.1";
  assert_int_equal(hcl_ctx_create(&o, &half, err, sizeof err), HCL_OK);
  char want[128];
  snprintf(want, sizeof want, "%s/2.1", whole->dev.id);
  assert_string_equal(half->dev.id, want);
  assert_int_equal(half->dev.compute_units, cu / 2);
  assert_true(half->dev.global_mem == whole->dev.global_mem / 2);
  enum { M = 37, N = 45, K = 29 };
  static float a[M * K], b[K * N], c[2][M * N];
  for (int t = 0; t < M * K; t++) a[t] = (float)((t * 7919) % 1000) * 1e-3f - 0.5f;
  for (int t = 0; t < K * N; t++) b[t] = (float)((t * 104729) % 1000) * 1e-3f - 0.5f;
  hcl_ctx *ctxs[2] = {whole, half};
  for (int q = 0; q < 2; q++) {
    hcl_buf da, db, dc;
    assert_int_equal(hcl_buf_alloc(ctxs[q], sizeof a, &da), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctxs[q], sizeof b, &db), HCL_OK);
    assert_int_equal(hcl_buf_alloc(ctxs[q], sizeof c[q], &dc), HCL_OK);
    assert_int_equal(hcl_buf_write(ctxs[q], da, a, sizeof a), HCL_OK);
    assert_int_equal(hcl_buf_write(ctxs[q], db, b, sizeof b), HCL_OK);
    assert_int_equal(hcl_sgemm(ctxs[q], 0, 0, M, N, K, 1.0f, da, K, db, N, 0.0f, dc, N), HCL_OK);
    assert_int_equal(hcl_buf_read(ctxs[q], dc, c[q], sizeof c[q]), HCL_OK);
    hcl_buf_free(ctxs[q], &da), hcl_buf_free(ctxs[q], &db), hcl_buf_free(ctxs[q], &dc);
  }
  assert_memory_equal(c[0], c[1], sizeof c[0]);
  hcl_ctx_destroy(half);
  static const struct {
    const char *sel, *says;
  } refused[] = {{"cpu/2", "names 2 parts"},
                 {"cpu/2.2", "a part is SEL/N.I"},
                 {"cpu/4096.0", "do not split into 4096 equal parts"}};
  for (size_t r = 0; r < sizeof refused / sizeof *refused; r++) {
    o.device = refused[r].sel;
    half = NULL;
    assert_int_equal(hcl_ctx_create(&o, &half, err, sizeof err), HCL_ERR_NODEVICE);
    assert_null(half);
    if (!strstr(err, refused[r].says)) fail_msg("%s: '%s'", refused[r].sel, err);
  }
  hcl_ctx_destroy(whole);
}

static void test_type_names(void **state) {
  (void)state;
  assert_string_equal(hcl_device_type_name(CL_DEVICE_TYPE_GPU), "gpu");
  assert_string_equal(hcl_device_type_name(CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_DEFAULT), "gpu");
  assert_string_equal(hcl_device_type_name(CL_DEVICE_TYPE_CPU), "cpu");
  assert_string_equal(hcl_device_type_name(CL_DEVICE_TYPE_ACCELERATOR), "accel");
  assert_string_equal(hcl_device_type_name(CL_DEVICE_TYPE_CUSTOM), "other");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_prefers_gpu),
      cmocka_unit_test(test_default_without_gpu),
      cmocka_unit_test(test_index),
      cmocka_unit_test(test_stable_id),
      cmocka_unit_test(test_type_words),
      cmocka_unit_test(test_substring),
      cmocka_unit_test(test_no_match_lists_candidates),
      cmocka_unit_test(test_empty_list),
      cmocka_unit_test(test_type_names),
      cmocka_unit_test(test_real_list),
      cmocka_unit_test(test_part_parse),
      cmocka_unit_test(test_part_ctx),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
