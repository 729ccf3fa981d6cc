/* Shared helpers for the cmocka tests. */
#ifndef HCL_TEST_H
#define HCL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "internal.h"

/* One context per test program on HIERCL_TEST_DEVICE (default cpu); NULL when
 * there is no such device (then skip()). */
hcl_ctx *hcl_test_ctx(void);
/* The plugins of the build tree, scanned once. */
const hcl_registry *hcl_test_registry(void);
/* A cmocka group setup's work: *ctx = hcl_test_ctx() (NULL without a device:
 * the device tests skip) and *desc = the built plugin `name` of `kind`.
 * Returns 0, or -1 (the group fails) when the plugin is missing — the
 * loader's rejections are printed — or when HIERCL_TEST_DEVICE names a device
 * that cannot be opened. */
int hcl_test_setup_plugin(const char *name, uint32_t kind, hcl_ctx **ctx,
                          const hcl_plugin_desc **desc);
/* A model for tests, created like the command does: "key=value" strings of
 * [model] resolved against the plugin's schema, then create(); with its
 * parameter buffer [R, np] (zeros). */
typedef struct hcl_test_model {
  hcl_ctx *ctx;
  const hcl_model_vt *vt;
  void *self;
  size_t R, np, D; /* replicas, parameters per replica, outputs */
  hcl_buf params;
} hcl_test_model;
/* Returns the schema's or create()'s status (message in ctx); *m is usable
 * only on HCL_OK. */
hcl_status hcl_test_model_make(hcl_ctx *ctx, const hcl_plugin_desc *desc, const char *const *kv,
                               size_t R, const uint64_t *seeds, size_t max_batch,
                               const hcl_target_info *t, hcl_test_model *m);
void hcl_test_model_free(hcl_test_model *m);
/* R replicas in one model (made from kv with seeds) equal R one-replica
 * models of the same seeds, bit for bit: init, then forward on xh [R, n, xs]
 * and backward of dh [R, n, outputs]; fails the test otherwise. */
void hcl_test_replicas_bitwise(hcl_ctx *ctx, const hcl_plugin_desc *desc, const char *const *kv,
                               size_t R, const uint64_t *seeds, size_t max_batch,
                               const hcl_target_info *t, size_t n, size_t xs, const float *xh,
                               const float *dh);
/* A target created from "key=value" strings of [target] (a schema error fails
 * the test) with P training and T test samples; returns create()'s status. */
hcl_status hcl_test_target_make(hcl_ctx *ctx, const hcl_plugin_desc *desc, const char *const *kv,
                                size_t R, const uint64_t *seeds, uint64_t P, uint64_t T,
                                size_t max_batch, void **self);
/* A built plugin by name and kind; fails the test when missing. */
const hcl_plugin_desc *hcl_test_plugin(const char *name, uint32_t kind);
/* Resolve `section` of a plugin from "key=value" strings (NULL-terminated),
 * defaults filled; fails the test on a config error. Free with hcl_test_params_free. */
hcl_params *hcl_test_params(const hcl_plugin_desc *d, const char *section, const char *const *kv);
void hcl_test_params_free(hcl_params *p);
/* Whole file as a NUL-terminated string (malloc'd), NULL if unreadable. */
char *hcl_test_read_file(const char *path);
/* Cut every ,"run_dir":"..." and ,"device":"..." out of sweep records in
 * place: they name where a run trained, not what it found. */
void hcl_test_strip_where(char *records);
/* <the one sweep_* folder under parent>/file with hcl_test_strip_where
 * applied (malloc'd); fails the test when there is none or it is unreadable. */
char *hcl_test_sweep_file(const char *parent, const char *file);
/* The number after "key": in a JSON text (first occurrence after `from`). */
int hcl_test_json_num(const char *text, const char *key, double *out);
/* Write text to a new file under a fresh temporary directory; returns the path (static buffer per
 * call slot). */
const char *hcl_test_write_temp(const char *name, const char *text);
/* Run a shell command (any length) with stderr joined to stdout; the first
 * len - 1 bytes of its output go to out (NUL-terminated); returns its exit
 * status (-1 when it did not exit normally). */
int hcl_test_sh(const char *cmd, char *out, size_t len);
/* hcl_test_sh of a printf-formatted command (at most 8191 bytes). */
int hcl_test_shf(char *out, size_t len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Fails the test after printing the whole of `text` (a command's output) on
 * stderr: cmocka cuts a failure message after about 1 KB, which once hid how
 * a hung sweep's log ended. */
#define HCL_FAIL_OUT(text, ...)                                                                    \
  do {                                                                                             \
    fprintf(stderr, "--- output\n%s\n--- end of output\n", (text));                                \
    fail_msg(__VA_ARGS__);                                                                         \
  } while (0)
/* A fresh temporary directory (mkdtemp), path valid until exit. */
const char *hcl_test_tmpdir(void);

/* Device buffers in tests: n floats read back (malloc'd), or a new buffer
 * holding n host floats; both fail the test on a device error. */
float *hcl_test_download(hcl_ctx *ctx, hcl_buf b, size_t n);
hcl_buf hcl_test_upload(hcl_ctx *ctx, const float *h, size_t n);
/* A double copy of n floats (malloc'd). */
double *hcl_test_to_double(const float *f, size_t n);
/* n floats, each draw(lo, hi) in turn (malloc'd): the caller's own generator. */
float *hcl_test_random_floats(double (*draw)(double, double), size_t n, double lo, double hi);
/* Uniform double in [lo, hi) from a xorshift64* state (deterministic). */
double hcl_test_xorshift(uint64_t *state, double lo, double hi);
/* Largest |a[i]|. */
double hcl_test_max_abs(const double *a, size_t n);
/* Every |got - want| within rel * max|want| + 1e-6, else fail naming `what`
 * and the worst element. */
void hcl_test_assert_close(const float *got, const double *want, size_t n, double rel,
                           const char *what);

#endif
