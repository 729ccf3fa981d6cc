/* The path for devices without a compiler, end to end: `hiercl programs`
 * records every program of a run, the test compiles each one with the
 * device's own compiler (clGetProgramInfo(CL_PROGRAM_BINARIES), as an
 * offline compiler would), and a run with compilation disabled loads them
 * from [runtime] binary_dir and gives the same numbers as a normal run. */
#include "hcl_test.h"
#include "program_cache.h"
#include "sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char out[65536];

static const char kConfig[] = "[run]\nseed = 3\n"
                              "[target]\nplugin = staircase\nn = 8\nk = 2\nprobe_samples = 200\n"
                              "[model]\nplugin = resnet\nwidth = 16\ndepth = 3\n"
                              "[train]\nsteps = 50\nbatch = 10\nlr = 0.02\n"
                              "[eval]\nevery = 25\ntest_size = 200\n";

/* The replica line (losses and probes; malloc'd) of the summary.json of the
 * run directory under `parent` that the command printed in run_out. */
static char *replica_line(const char *run_out, const char *parent) {
  char dir[1024], path[1100];
  run_out = strstr(run_out, parent);
  assert_non_null(run_out);
  size_t n = strcspn(run_out, "\n");
  assert_true(n > 0 && n < sizeof dir);
  memcpy(dir, run_out, n);
  dir[n] = 0;
  snprintf(path, sizeof path, "%s/summary.json", dir);
  char *text = hcl_test_read_file(path);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"status\":\"completed\""));
  char *line = strstr(text, "{\"replica\":0");
  assert_non_null(line);
  line[strcspn(line, "\n")] = 0;
  char *copy = strdup(line);
  free(text);
  assert_non_null(strstr(copy, "\"test_loss\":"));
  assert_non_null(strstr(copy, "\"train_loss\":"));
  return copy;
}

/* Compile <exp>/<key>.cl with <exp>/<key>.options on the test device and
 * write the driver's binary, as it is, to <bin>/<file>. */
static void compile_offline(hcl_ctx *ctx, const char *exp, const char *key, const char *file,
                            const char *bin) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s.cl", exp, key);
  char *src = hcl_test_read_file(path);
  assert_non_null(src);
  snprintf(path, sizeof path, "%s/%s.options", exp, key);
  char *opts = hcl_test_read_file(path);
  assert_non_null(opts);
  cl_int cl;
  const char *s = src;
  cl_program p = clCreateProgramWithSource(ctx->context, 1, &s, NULL, &cl);
  assert_int_equal(cl, CL_SUCCESS);
  assert_int_equal(clBuildProgram(p, 1, &ctx->dev.device_id, opts, NULL, NULL), CL_SUCCESS);
  size_t size = 0;
  assert_int_equal(clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL),
                   CL_SUCCESS);
  assert_true(size > 0);
  unsigned char *b = malloc(size);
  assert_non_null(b);
  assert_int_equal(clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof b, &b, NULL), CL_SUCCESS);
  snprintf(path, sizeof path, "%s/%s", bin, file);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, size, f), size);
  assert_int_equal(fclose(f), 0);
  free(b);
  free(opts);
  free(src);
  clReleaseProgram(p);
}

static void export_compile_and_run_without_compiler(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  const char *dev = getenv("HIERCL_TEST_DEVICE");
  if (!dev || !*dev) dev = "cpu";
  const char *ini = hcl_test_write_temp("tiny.ini", kConfig);
  char root[512], exp[600], bin[600], cmd[4096], parent[600];
  snprintf(root, sizeof root, "%s", hcl_test_tmpdir());
  snprintf(exp, sizeof exp, "%s/exported", root);
  snprintf(bin, sizeof bin, "%s/binaries", root);
  assert_int_equal(mkdir(bin, 0755), 0);

  snprintf(cmd, sizeof cmd, "%s programs %s --device '%s' --export %s", HCL_TEST_HIERCL, ini, dev,
           exp);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  /* every program the run builds: the target's and the runtime's own */
  char tsv_path[700];
  snprintf(tsv_path, sizeof tsv_path, "%s/programs.tsv", exp);
  char *tsv = hcl_test_read_file(tsv_path);
  assert_non_null(tsv);
  assert_true(!strncmp(tsv, "key\tfile\tprogram\tdevice\toptions\n", 31));
  int n = 0, have_ops = 0, have_target = 0;
  char staircase_file[80] = "", staircase_key[65] = "";
  for (char *line = strchr(tsv, '\n') + 1; *line;) {
    char *end = strchr(line, '\n');
    assert_non_null(end);
    *end = 0;
    char key[65], file[80], name[64];
    assert_int_equal(sscanf(line, "%64[0-9a-f]\t%79[^\t]\t%63[^\t]", key, file, name), 3);
    assert_int_equal(strlen(key), 64);
    char want[80];
    snprintf(want, sizeof want, "%s.clbin", key);
    assert_string_equal(file, want); /* the name the runtime looks for */
    have_ops += !strcmp(name, "ops");
    if (!strcmp(name, "staircase")) {
      have_target++;
      snprintf(staircase_file, sizeof staircase_file, "%s", file);
      snprintf(staircase_key, sizeof staircase_key, "%s", key);
    }
    compile_offline(ctx, exp, key, file, bin);
    n++;
    line = end + 1;
  }
  free(tsv);
  assert_int_equal(have_ops, 1);
  assert_int_equal(have_target, 1);
  assert_true(n >= 2);

  /* without --export the list is printed and nothing is left behind */
  snprintf(cmd, sizeof cmd, "%s programs %s --device '%s'", HCL_TEST_HIERCL, ini, dev);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  char row[200];
  snprintf(row, sizeof row, "%s\t%s\tstaircase\t", staircase_key, staircase_file);
  assert_non_null(strstr(out, row));
  snprintf(cmd, sizeof cmd, "%s programs", HCL_TEST_HIERCL);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 2); /* no config: usage */
  assert_non_null(strstr(out, "usage: hiercl programs"));

  /* a normal run, and the same run from the binaries only */
  snprintf(cmd, sizeof cmd, "%s run %s --device '%s' --out %s/normal --quiet", HCL_TEST_HIERCL, ini,
           dev, root);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  snprintf(parent, sizeof parent, "%s/normal/", root);
  char *normal = replica_line(out, parent);
  snprintf(cmd, sizeof cmd,
           "HIERCL_NO_COMPILE=1 %s run %s --device '%s' --out %s/prebuilt --set "
           "runtime.binary_dir=%s",
           HCL_TEST_HIERCL, ini, dev, root, bin);
  assert_int_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, "compilation disabled"));
  snprintf(parent, sizeof parent, "%s/prebuilt/", root);
  char *prebuilt = replica_line(out, parent);
  assert_string_equal(prebuilt, normal); /* bit-identical on the same device */
  free(prebuilt);
  free(normal);

  /* a missing binary: one error naming the program's key, the file and the remedy */
  char missing[800];
  snprintf(missing, sizeof missing, "%s/%s", bin, staircase_file);
  assert_int_equal(unlink(missing), 0);
  snprintf(cmd, sizeof cmd,
           "HIERCL_NO_COMPILE=1 %s run %s --device '%s' --out %s/missing --set "
           "runtime.binary_dir=%s",
           HCL_TEST_HIERCL, ini, dev, root, bin);
  assert_int_not_equal(hcl_test_sh(cmd, out, sizeof out), 0);
  assert_non_null(strstr(out, missing));
  assert_non_null(strstr(out, staircase_key));
  assert_non_null(strstr(out, "hiercl programs"));
  assert_non_null(strstr(out, "compilation disabled"));
}

static const char kSrc[] = "__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2; }\n";

/* The record of a device without a compiler is keyed with that device's
 * strings (the dry run builds on another one), holds the text compiled and
 * the options exactly, and lists each program once however often it is built. */
static void export_keyed_for_the_recorded_device(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  hcl_device_info fake = ctx->dev;
  snprintf(fake.id, sizeof fake.id, "fpga:accel:0");
  snprintf(fake.name, sizeof fake.name, "Board without compiler");
  snprintf(fake.driver, sizeof fake.driver, "offline 1.0");
  fake.compiler_available = 0;
  char dir[600];
  snprintf(dir, sizeof dir, "%s/record", hcl_test_tmpdir());
  snprintf(ctx->export_dir, sizeof ctx->export_dir, "%s", dir);
  ctx->export_dev = &fake;
  const char *opts = "-DSCALE=2 -cl-fast-relaxed-math";
  hcl_program_cache_stats st;
  hcl_program_cache_stats_reset();
  for (int i = 0; i < 2; i++) {
    cl_program p = NULL;
    assert_int_equal(hcl_program_build(ctx, "twice", kSrc, opts, &p), HCL_OK);
    assert_non_null(p);
    clReleaseProgram(p);
  }
  hcl_program_cache_stats_get(&st);
  ctx->export_dev = NULL;
  ctx->export_dir[0] = 0;
  assert_int_equal(st.exported, 1);

  char *full = hcl_program_full_source(kSrc);
  char key[65], real_key[65], path[800];
  hcl_program_cache_key(&fake, full, opts, key);
  hcl_program_cache_key(&ctx->dev, full, opts, real_key);
  assert_string_not_equal(key, real_key);
  snprintf(path, sizeof path, "%s/%s.cl", dir, key);
  char *text = hcl_test_read_file(path);
  assert_non_null(text);
  assert_string_equal(text, full);
  free(text);
  snprintf(path, sizeof path, "%s/%s.options", dir, key);
  text = hcl_test_read_file(path);
  assert_non_null(text);
  assert_string_equal(text, opts);
  free(text);
  snprintf(path, sizeof path, "%s/programs.tsv", dir);
  text = hcl_test_read_file(path);
  assert_non_null(text);
  char want[512];
  snprintf(want, sizeof want,
           "key\tfile\tprogram\tdevice\toptions\n%s\t%s.clbin\ttwice\tfpga:accel:0\t%s\n", key, key,
           opts);
  assert_string_equal(text, want);
  free(text);
  free(full);
}

/* With compilation disabled a file in binary_dir may carry the .clbin
 * header (as the program cache writes it) or be the driver's binary as is;
 * a missing one is an error, never a silent compile. */
static void no_compile_loads_both_binary_forms(void **state) {
  (void)state;
  hcl_ctx *ctx = hcl_test_ctx();
  if (!ctx) skip();
  char dir[600];
  snprintf(dir, sizeof dir, "%s/bin_forms", hcl_test_tmpdir());
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(ctx->binary_dir, sizeof ctx->binary_dir, "%s", dir);
  ctx->no_compile = 1;
  cl_program p = NULL;
  assert_int_equal(hcl_program_build(ctx, "twice", kSrc, "", &p), HCL_ERR_UNSUPPORTED);
  assert_null(p);
  char *full = hcl_program_full_source(kSrc);
  char key[65], path[800];
  hcl_program_cache_key(&ctx->dev, full, "", key);
  snprintf(path, sizeof path, "%s/%s.clbin", dir, key);
  assert_non_null(strstr(hcl_errmsg(ctx), path));
  assert_non_null(strstr(hcl_errmsg(ctx), "hiercl programs"));

  /* the driver's binary, as is */
  ctx->no_compile = 0;
  assert_int_equal(hcl_program_build(ctx, "twice", kSrc, "", &p), HCL_OK);
  size_t size = 0;
  assert_int_equal(clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL),
                   CL_SUCCESS);
  unsigned char *b = malloc(HCL_CLBIN_HEADER + size);
  assert_non_null(b);
  unsigned char *raw = b + HCL_CLBIN_HEADER;
  assert_int_equal(clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof raw, &raw, NULL), CL_SUCCESS);
  clReleaseProgram(p);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(raw, 1, size, f), size);
  assert_int_equal(fclose(f), 0);
  ctx->no_compile = 1;
  hcl_program_cache_stats st;
  hcl_program_cache_stats_reset();
  p = NULL;
  assert_int_equal(hcl_program_build(ctx, "twice", kSrc, "", &p), HCL_OK);
  clReleaseProgram(p);

  /* the same bytes behind the header (magic, format, size, crc, key) */
  memcpy(b, "HCLCLBIN", 8);
  memset(b + 8, 0, HCL_CLBIN_HEADER - 8);
  b[8] = HCL_CACHE_FORMAT;
  for (int i = 0; i < 8; i++) b[16 + i] = (unsigned char)((uint64_t)size >> (8 * i));
  uint32_t crc = hcl_crc32(0, raw, size);
  for (int i = 0; i < 4; i++) b[24 + i] = (unsigned char)(crc >> (8 * i));
  hcl_program_cache_key_bytes(key, b + 32);
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, HCL_CLBIN_HEADER + size, f), HCL_CLBIN_HEADER + size);
  assert_int_equal(fclose(f), 0);
  p = NULL;
  assert_int_equal(hcl_program_build(ctx, "twice", kSrc, "", &p), HCL_OK);
  clReleaseProgram(p);
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.prebuilt, 2);
  assert_int_equal(st.misses + st.hits + st.uncached, 0); /* nothing compiled */
  ctx->no_compile = 0;
  ctx->binary_dir[0] = 0;
  free(b);
  free(full);
}

/* A run recording programs for a device without a compiler runs on the
 * first device that has one; none at all is an error (n). */
static void stand_in_device(void **state) {
  (void)state;
  hcl_device_info d[3];
  memset(d, 0, sizeof d);
  d[1].compiler_available = d[2].compiler_available = 1;
  assert_int_equal(hcl_export_run_on(d, 3, 0), 1);
  assert_int_equal(hcl_export_run_on(d, 3, 2), 2); /* its own compiler: itself */
  d[1].compiler_available = 0;
  assert_int_equal(hcl_export_run_on(d, 3, 1), 2);
  d[2].compiler_available = 0;
  assert_int_equal(hcl_export_run_on(d, 3, 0), 3);
  assert_int_equal(hcl_export_run_on(d, 0, 0), 0);
}

/* Compilation disabled: CLBlast, which compiles its kernels at run time, is
 * never called (every product takes the runtime's own kernel); recording
 * programs builds them, so it ignores the switch; a too long export folder is
 * refused before anything is made. */
static void context_options(void **state) {
  (void)state;
  if (!hcl_test_ctx()) skip();
  const char *dev = getenv("HIERCL_TEST_DEVICE");
  hcl_ctx_options o = {.device = dev && *dev ? dev : "cpu", .quiet = 1, .no_compile = 1};
  hcl_ctx *ctx = NULL;
  char err[1024];
  assert_int_equal(hcl_ctx_create(&o, &ctx, err, sizeof err), HCL_OK);
  assert_int_equal(ctx->no_compile, 1);
  if (!hcl_getenv("HIERCL_GEMM_SMALL_MAX")) assert_true(isinf(ctx->gemm_small_max));
  hcl_ctx_destroy(ctx);
  char dir[800];
  snprintf(dir, sizeof dir, "%s/rec", hcl_test_tmpdir());
  o.export_dir = dir;
  assert_int_equal(hcl_ctx_create(&o, &ctx, err, sizeof err), HCL_OK);
  assert_int_equal(ctx->no_compile, 0);
  assert_string_equal(ctx->export_dir, dir);
  assert_null(ctx->export_dev); /* the device compiles: records are keyed for it */
  hcl_ctx_destroy(ctx);
  char long_dir[760];
  memset(long_dir, 'a', sizeof long_dir - 1);
  long_dir[sizeof long_dir - 1] = 0;
  o.export_dir = long_dir;
  assert_int_equal(hcl_ctx_create(&o, &ctx, err, sizeof err), HCL_ERR_CONFIG);
  assert_null(ctx);
  assert_non_null(strstr(err, "HIERCL_EXPORT_PROGRAMS"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stand_in_device),
      cmocka_unit_test(context_options),
      cmocka_unit_test(export_keyed_for_the_recorded_device),
      cmocka_unit_test(no_compile_loads_both_binary_forms),
      cmocka_unit_test(export_compile_and_run_without_compiler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
