/* Programs and their binary cache (program.c, sha256.c): SHA-256 known
 * answers, the cache key, a save/load round trip on the real device with
 * the cache forced on, corrupt entries rebuilt, policies, prebuilt binaries
 * for devices without a compiler, and build errors carrying the log. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "program_cache.h"
#include "sha256.h"

/* ---- pure parts ------------------------------------------------------------ */
static void test_sha256_known_answers(void **state) {
  (void)state;
  char hex[65];
  hcl_sha256_hex("", 0, hex); /* FIPS 180-2 / NIST examples */
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hcl_sha256_hex("abc", 3, hex);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  hcl_sha256_hex(two, strlen(two), hex);
  assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  /* one million 'a', fed in uneven pieces through the streaming interface */
  static char a[1000000];
  memset(a, 'a', sizeof a);
  hcl_sha256_ctx s;
  hcl_sha256_init(&s);
  size_t off = 0, step = 1;
  while (off < sizeof a) {
    size_t take = step < sizeof a - off ? step : sizeof a - off;
    hcl_sha256_update(&s, a + off, take);
    off += take;
    step = step * 3 % 1021 + 1;
  }
  uint8_t d[32];
  hcl_sha256_final(&s, d);
  hcl_sha256_to_hex(d, hex);
  assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  /* padding edge: 55, 56, 64 bytes one-shot equals streaming byte by byte */
  for (size_t len = 54; len <= 65; len++) {
    char h1[65], h2[65];
    hcl_sha256_hex(a, len, h1);
    hcl_sha256_init(&s);
    for (size_t i = 0; i < len; i++) hcl_sha256_update(&s, a + i, 1);
    hcl_sha256_final(&s, d);
    hcl_sha256_to_hex(d, h2);
    assert_string_equal(h1, h2);
  }
  assert_int_equal(hcl_crc32(0, "123456789", 9), 0xCBF43926u); /* the CRC-32 check value */
}

static hcl_device_info fake_dev(void) {
  hcl_device_info d;
  memset(&d, 0, sizeof d);
  strcpy(d.platform, "Portable Computing Language");
  strcpy(d.platform_version, "OpenCL 3.0 PoCL 3.1");
  strcpy(d.name, "pthread-skylake");
  strcpy(d.vendor, "GenuineIntel");
  strcpy(d.version, "OpenCL 3.0 PoCL HSTR: pthread");
  strcpy(d.driver, "3.1");
  return d;
}

static void test_cache_key(void **state) {
  (void)state;
  hcl_device_info d = fake_dev();
  char k0[65], k[65];
  hcl_program_cache_key(&d, "kernel void f() {}", "-cl-fast-relaxed-math", k0);
  assert_int_equal(strlen(k0), 64);
  assert_int_equal(strspn(k0, "0123456789abcdef"), 64);
  hcl_program_cache_key(&d, "kernel void f() {}", "-cl-fast-relaxed-math", k);
  assert_string_equal(k0, k); /* deterministic */
  hcl_program_cache_key(&d, "kernel void g() {}", "-cl-fast-relaxed-math", k);
  assert_string_not_equal(k0, k); /* source */
  hcl_program_cache_key(&d, "kernel void f() {}", "", k);
  assert_string_not_equal(k0, k); /* options */
  hcl_program_cache_key(&d, "kernel void f() {}", NULL, k);
  assert_string_not_equal(k0, k);
  hcl_device_info e = d;
  strcpy(e.driver, "3.2");
  hcl_program_cache_key(&e, "kernel void f() {}", "-cl-fast-relaxed-math", k);
  assert_string_not_equal(k0, k); /* driver */
  e = d;
  strcpy(e.name, "pthread-zen");
  hcl_program_cache_key(&e, "kernel void f() {}", "-cl-fast-relaxed-math", k);
  assert_string_not_equal(k0, k); /* device */
  e = d;
  strcpy(e.platform_version, "OpenCL 3.0 PoCL 4.0");
  hcl_program_cache_key(&e, "kernel void f() {}", "-cl-fast-relaxed-math", k);
  assert_string_not_equal(k0, k); /* platform version */
  /* fields are NUL-separated: moving text between source and options changes the key */
  char a[65], b[65];
  hcl_program_cache_key(&d, "ab", "c", a);
  hcl_program_cache_key(&d, "a", "bc", b);
  assert_string_not_equal(a, b);
  char path[256];
  hcl_program_cache_path("/c", k0, path, sizeof path);
  char want[256];
  snprintf(want, sizeof want, "/c/%.2s/%s.clbin", k0, k0);
  assert_string_equal(path, want);
}

static void with_env(const char *name, const char *value) {
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
}

static void test_cache_dir(void **state) {
  (void)state;
  char *saved[3];
  const char *names[3] = {"HIERCL_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; i++) saved[i] = getenv(names[i]) ? strdup(getenv(names[i])) : NULL;
  static hcl_ctx ctx; /* only cache_dir is read */
  char out[1024];
  with_env("HIERCL_CACHE_DIR", NULL);
  with_env("XDG_CACHE_HOME", NULL);
  with_env("HOME", "/home/u");
  hcl_cache_dir(&ctx, out, sizeof out);
  assert_string_equal(out, "/home/u/.cache/hiercl/clbin");
  with_env("XDG_CACHE_HOME", "/xdg");
  hcl_cache_dir(&ctx, out, sizeof out);
  assert_string_equal(out, "/xdg/hiercl/clbin");
  strcpy(ctx.cache_dir, "/from/ctx");
  hcl_cache_dir(&ctx, out, sizeof out);
  assert_string_equal(out, "/from/ctx");
  with_env("HIERCL_CACHE_DIR", "/from/env");
  hcl_cache_dir(&ctx, out, sizeof out);
  assert_string_equal(out, "/from/env");
  hcl_cache_dir(NULL, out, sizeof out);
  assert_string_equal(out, "/from/env");
  for (int i = 0; i < 3; i++) {
    with_env(names[i], saved[i]);
    free(saved[i]);
  }
}

static void test_policy(void **state) {
  (void)state;
  static hcl_ctx ctx;
  ctx.dev = fake_dev(); /* PoCL */
  ctx.cache_policy = HCL_CACHE_AUTO;
  assert_false(hcl_program_cache_enabled(&ctx));
  ctx.cache_policy = HCL_CACHE_ON;
  assert_true(hcl_program_cache_enabled(&ctx));
  ctx.cache_policy = HCL_CACHE_OFF;
  assert_false(hcl_program_cache_enabled(&ctx));
  strcpy(ctx.dev.platform, "NVIDIA CUDA");
  strcpy(ctx.dev.platform_vendor, "NVIDIA Corporation");
  ctx.cache_policy = HCL_CACHE_AUTO;
  assert_false(hcl_program_cache_enabled(&ctx));
  strcpy(ctx.dev.platform, "AMD Accelerated Parallel Processing");
  strcpy(ctx.dev.platform_vendor, "Advanced Micro Devices, Inc.");
  assert_true(hcl_program_cache_enabled(&ctx));
  ctx.cache_policy = HCL_CACHE_OFF;
  assert_false(hcl_program_cache_enabled(&ctx));
}

/* ---- on the device ----------------------------------------------------------- */
typedef struct fixture {
  hcl_ctx *ctx;
  char dir[64];    /* HIERCL_CACHE_DIR for this test program */
  char bindir[64]; /* binary_dir for the no-compiler case */
  char *saved_env;
} fixture;

static const char *kSrc = "/* line 1 */\n"
                          "__kernel void affine(__global float *x, float a) {\n"
                          "  size_t i = get_global_id(0);\n"
                          "  x[i] = a * x[i] + 1.0f;\n"
                          "}\n";
static const char *kOpts = "-cl-std=CL1.2";

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static int setup(void **state) {
  static fixture fx;
  memset(&fx, 0, sizeof fx);
  *state = &fx;
  strcpy(fx.dir, "/tmp/hcl_cache_test_XXXXXX");
  strcpy(fx.bindir, "/tmp/hcl_bin_test_XXXXXX");
  if (!mkdtemp(fx.dir) || !mkdtemp(fx.bindir)) return -1;
  fx.saved_env = getenv("HIERCL_CACHE_DIR") ? strdup(getenv("HIERCL_CACHE_DIR")) : NULL;
  setenv("HIERCL_CACHE_DIR", fx.dir, 1);
  char err[HCL_ERRMSG_MAX];
  /* HIERCL_TEST_DEVICE runs the same checks on another device (e.g. "gpu") */
  const char *dev = getenv("HIERCL_TEST_DEVICE");
  hcl_ctx_options o = {
      .device = dev && *dev ? dev : "cpu", .quiet = 1, .cache_policy = HCL_CACHE_ON};
  if (hcl_ctx_create(&o, &fx.ctx, err, sizeof err) != HCL_OK) {
    print_message("no OpenCL device: %s\n", err);
    fx.ctx = NULL;
  }
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  hcl_ctx_destroy(fx->ctx);
  nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  nftw(fx->bindir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  with_env("HIERCL_CACHE_DIR", fx->saved_env);
  free(fx->saved_env);
  return 0;
}

/* Path of the cache entry for kSrc/kOpts on the fixture's device. */
static void entry_path(fixture *fx, const char *src, const char *opts, char *path, size_t len,
                       char key[65]) {
  char *full = hcl_program_full_source(src);
  assert_non_null(full);
  hcl_program_cache_key(&fx->ctx->dev, full, opts, key);
  free(full);
  hcl_program_cache_path(fx->dir, key, path, len);
}

/* Build kSrc, run it on 8 floats and check x = 3 x + 1 against the host. */
static void build_and_run(fixture *fx) {
  cl_program prog = NULL;
  hcl_status rc = hcl_program_build(fx->ctx, "affine", kSrc, kOpts, &prog);
  if (rc != HCL_OK) fail_msg("%s", hcl_errmsg(fx->ctx));
  cl_kernel k = NULL;
  assert_int_equal(hcl_kernel_create(fx->ctx, prog, "affine", &k), HCL_OK);
  float x[8], y[8];
  for (int i = 0; i < 8; i++) x[i] = (float)i - 2.5f;
  cl_int cl;
  cl_mem m =
      clCreateBuffer(fx->ctx->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof x, x, &cl);
  assert_int_equal(cl, CL_SUCCESS);
  float a = 3.0f;
  assert_int_equal(clSetKernelArg(k, 0, sizeof m, &m), CL_SUCCESS);
  assert_int_equal(clSetKernelArg(k, 1, sizeof a, &a), CL_SUCCESS);
  size_t gws = 8;
  assert_int_equal(clEnqueueNDRangeKernel(fx->ctx->queue, k, 1, NULL, &gws, NULL, 0, NULL, NULL),
                   CL_SUCCESS);
  assert_int_equal(clEnqueueReadBuffer(fx->ctx->queue, m, CL_TRUE, 0, sizeof y, y, 0, NULL, NULL),
                   CL_SUCCESS);
  for (int i = 0; i < 8; i++) assert_true(y[i] == 3.0f * x[i] + 1.0f);
  clReleaseMemObject(m);
  clReleaseKernel(k);
  clReleaseProgram(prog);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_round_trip(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  char path[1024], key[65];
  entry_path(fx, kSrc, kOpts, path, sizeof path, key);
  assert_int_equal(file_size(path), -1);
  hcl_program_cache_stats st;
  hcl_program_cache_stats_reset();
  build_and_run(fx); /* miss: built from source, saved */
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.misses, 1);
  assert_int_equal(st.saves, 1);
  assert_int_equal(st.hits, 0);
  assert_true(file_size(path) > HCL_CLBIN_HEADER);
  FILE *f = fopen(path, "rb");
  char magic[8];
  assert_int_equal(fread(magic, 1, 8, f), 8);
  fclose(f);
  assert_memory_equal(magic, "HCLCLBIN", 8);

  build_and_run(fx); /* hit: loaded from the file */
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.hits, 1);
  assert_int_equal(st.misses, 1);
  assert_int_equal(st.saves, 1);
}

/* Rewrite part of the entry, then check it is deleted, rebuilt and saved again. */
static void corrupt_and_check(fixture *fx, const char *path, const char key[65], int how) {
  long size = file_size(path);
  assert_true(size > HCL_CLBIN_HEADER + 16);
  if (how == 0) { /* flip bytes in the binary: checksum mismatch */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, HCL_CLBIN_HEADER + (size - HCL_CLBIN_HEADER) / 2, SEEK_SET);
    fwrite("\xde\xad\xbe\xef", 1, 4, f);
    fclose(f);
  } else if (how == 1) { /* truncated */
    assert_int_equal(truncate(path, 20), 0);
  } else { /* a well-formed entry whose binary the driver must refuse */
    unsigned char junk[64];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 37 + 11);
    unsigned char h[HCL_CLBIN_HEADER] = {'H', 'C', 'L', 'C', 'L', 'B', 'I', 'N'};
    h[8] = HCL_CACHE_FORMAT;
    h[16] = sizeof junk;
    hcl_program_cache_key_bytes(key, h + 32); /* its own key: the driver is what refuses it */
    uint32_t crc = hcl_crc32(0, junk, sizeof junk);
    for (int i = 0; i < 4; i++) h[24 + i] = (unsigned char)(crc >> (8 * i));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(h, 1, sizeof h, f);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
  }
  hcl_program_cache_stats st;
  hcl_program_cache_stats_reset();
  build_and_run(fx); /* the run still works */
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.rejected, 1);
  assert_int_equal(st.hits, 0);
  assert_int_equal(st.saves, 1);
  assert_true(file_size(path) >
              HCL_CLBIN_HEADER); /* a good entry again (checked by the hit below) */
  build_and_run(fx);
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.hits, 1);
}

static void test_corrupt_entries_rebuilt(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  char path[1024], key[65];
  entry_path(fx, kSrc, kOpts, path, sizeof path, key);
  if (file_size(path) < 0) build_and_run(fx);
  for (int how = 0; how < 3; how++) corrupt_and_check(fx, path, key, how);
}

/* The entry of one program copied under another program's name: valid
 * checksum, wrong binary. It was loaded, and every run failed with
 * CL_INVALID_KERNEL_NAME; now the key in the header refuses it and the
 * program is rebuilt from source. */
static void test_other_programs_entry_rebuilt(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  const char *src = "__kernel void seven(__global float *x) { x[get_global_id(0)] = 7.0f; }\n";
  char mine[1024], other[1024], key[65], other_key[65];
  entry_path(fx, src, NULL, mine, sizeof mine, key);
  entry_path(fx, kSrc, kOpts, other, sizeof other, other_key);
  if (file_size(other) < 0) build_and_run(fx); /* the affine program's entry */
  cl_program p = NULL;
  assert_int_equal(hcl_program_build(fx->ctx, "seven", src, NULL, &p), HCL_OK);
  clReleaseProgram(p);
  assert_true(file_size(mine) > HCL_CLBIN_HEADER);
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", other, mine);
  assert_int_equal(system(cmd), 0);
  hcl_program_cache_stats st;
  for (int run = 0; run < 2; run++) { /* the bad entry is dropped once, then a hit */
    hcl_program_cache_stats_reset();
    assert_int_equal(hcl_program_build(fx->ctx, "seven", src, NULL, &p), HCL_OK);
    cl_kernel k = NULL;
    if (hcl_kernel_create(fx->ctx, p, "seven", &k) != HCL_OK) fail_msg("%s", hcl_errmsg(fx->ctx));
    clReleaseKernel(k);
    clReleaseProgram(p);
    hcl_program_cache_stats_get(&st);
    assert_int_equal(st.rejected, run == 0 ? 1 : 0);
    assert_int_equal(st.hits, run == 0 ? 0 : 1);
  }
}

/* Opens the FIFO for writing once `secs` seconds pass without `done`: a
 * reader blocked in open() then gets EOF, so a hang becomes a failure. */
typedef struct watchdog {
  const char *fifo;
  volatile int done, fired;
} watchdog;

static void *watchdog_run(void *arg) {
  watchdog *w = arg;
  for (int i = 0; i < 400 && !w->done; i++) usleep(50000);
  if (w->done) return NULL;
  int fd = open(w->fifo, O_WRONLY | O_NONBLOCK);
  if (fd >= 0) {
    w->fired = 1;
    close(fd);
  }
  return NULL;
}

/* A FIFO where the entry should be hung the run in fopen(); now it is seen
 * not to be a regular file, dropped, and the program rebuilt. */
static void test_fifo_entry_skipped(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  const char *src = "__kernel void eight(__global float *x) { x[get_global_id(0)] = 8.0f; }\n";
  char path[1024], key[65];
  entry_path(fx, src, NULL, path, sizeof path, key);
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = 0;
  mkdir(dir, 0700);
  assert_int_equal(mkfifo(path, 0600), 0);
  watchdog w = {path, 0, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, watchdog_run, &w), 0);
  hcl_program_cache_stats_reset();
  cl_program p = NULL;
  hcl_status rc = hcl_program_build(fx->ctx, "eight", src, NULL, &p);
  w.done = 1;
  pthread_join(t, NULL);
  assert_int_equal(rc, HCL_OK);
  clReleaseProgram(p);
  assert_int_equal(w.fired, 0); /* the build never waited on the FIFO */
  hcl_program_cache_stats st;
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.rejected, 1);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_true(S_ISREG(sb.st_mode)); /* replaced by a real entry */
}

static void test_policy_off_and_auto(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  const char *src = "__kernel void other(__global float *x) { x[get_global_id(0)] = 7.0f; }\n";
  char path[1024], key[65];
  entry_path(fx, src, NULL, path, sizeof path, key);
  hcl_program_cache_stats st;
  int saved = fx->ctx->cache_policy;
  int policies[2] = {HCL_CACHE_OFF, HCL_CACHE_AUTO};
  for (int i = 0; i < 2; i++) {
    fx->ctx->cache_policy = policies[i];
    if (policies[i] == HCL_CACHE_AUTO && hcl_program_cache_enabled(fx->ctx))
      continue; /* not PoCL/NVIDIA */
    hcl_program_cache_stats_reset();
    cl_program p = NULL;
    assert_int_equal(hcl_program_build(fx->ctx, "other", src, NULL, &p), HCL_OK);
    clReleaseProgram(p);
    hcl_program_cache_stats_get(&st);
    assert_int_equal(st.uncached, 1);
    assert_int_equal(st.saves + st.misses + st.hits, 0);
    assert_int_equal(file_size(path), -1);
  }
  fx->ctx->cache_policy = saved;
}

static void test_build_error_has_log(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  const char *bad = "__kernel void broken(__global float *x) {\n"
                    "  x[0] = hcl_no_such_identifier_42;\n"
                    "}\n";
  char path[1024], key[65];
  entry_path(fx, bad, NULL, path, sizeof path, key);
  cl_program p = (cl_program)1;
  hcl_status rc = hcl_program_build(fx->ctx, "my_broken_prog", bad, NULL, &p);
  assert_int_equal(rc, HCL_ERR_BUILD);
  assert_null(p);
  const char *msg = hcl_errmsg(fx->ctx);
  assert_non_null(strstr(msg, "my_broken_prog"));
  assert_non_null(strstr(msg, "hcl_no_such_identifier_42"));
  assert_non_null(strstr(msg, fx->ctx->dev.id));
  if (!strstr(msg, ":2:"))
    fail_msg("no ':2:' (the plugin's own line, thanks to #line 1) in: %s", msg);
  assert_true(strlen(msg) < HCL_ERRMSG_MAX);
  assert_int_equal(file_size(path), -1);
}

static void test_kernel_name_error(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  cl_program prog = NULL;
  assert_int_equal(hcl_program_build(fx->ctx, "affine", kSrc, kOpts, &prog), HCL_OK);
  cl_kernel k = (cl_kernel)1;
  hcl_status rc = hcl_kernel_create(fx->ctx, prog, "afine", &k);
  assert_int_equal(rc, CL_INVALID_KERNEL_NAME);
  assert_null(k);
  assert_non_null(strstr(hcl_errmsg(fx->ctx), "'afine'"));
  assert_non_null(strstr(hcl_errmsg(fx->ctx), "affine")); /* the names it has */
  clReleaseProgram(prog);
}

/* A device without a compiler loads <binary_dir>/<key>.clbin; emulated on
 * the real device by clearing compiler_available. */
static void test_prebuilt_binary(void **state) {
  fixture *fx = *state;
  if (!fx->ctx) skip();
  char path[1024], key[65];
  entry_path(fx, kSrc, kOpts, path, sizeof path, key);
  if (file_size(path) < 0) build_and_run(fx); /* the cache entry to copy */
  hcl_ctx *ctx = fx->ctx;
  ctx->dev.compiler_available = 0;
  cl_program p = NULL;
  ctx->binary_dir[0] = 0;
  assert_int_equal(hcl_program_build(ctx, "affine", kSrc, kOpts, &p), HCL_ERR_UNSUPPORTED);
  assert_non_null(strstr(hcl_errmsg(ctx), key));
  assert_non_null(strstr(hcl_errmsg(ctx), "no OpenCL compiler"));
  snprintf(ctx->binary_dir, sizeof ctx->binary_dir, "%s", fx->bindir);
  assert_int_equal(hcl_program_build(ctx, "affine", kSrc, kOpts, &p), HCL_ERR_UNSUPPORTED);
  char want[1024];
  snprintf(want, sizeof want, "%s/%s.clbin", fx->bindir, key);
  assert_non_null(strstr(hcl_errmsg(ctx), want));
  /* copy the cache entry there: now it loads */
  FILE *in = fopen(path, "rb"), *out = fopen(want, "wb");
  assert_non_null(in);
  assert_non_null(out);
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, got, out);
  fclose(in);
  fclose(out);
  hcl_program_cache_stats st;
  hcl_program_cache_stats_reset();
  build_and_run(fx);
  hcl_program_cache_stats_get(&st);
  assert_int_equal(st.prebuilt, 1);
  assert_int_equal(st.misses + st.hits + st.uncached, 0);
  ctx->dev.compiler_available = 1;
  ctx->binary_dir[0] = 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sha256_known_answers),
      cmocka_unit_test(test_cache_key),
      cmocka_unit_test(test_cache_dir),
      cmocka_unit_test(test_policy),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_corrupt_entries_rebuilt),
      cmocka_unit_test(test_other_programs_entry_rebuilt),
      cmocka_unit_test(test_fifo_entry_skipped),
      cmocka_unit_test(test_policy_off_and_auto),
      cmocka_unit_test(test_build_error_has_log),
      cmocka_unit_test(test_kernel_name_error),
      cmocka_unit_test(test_prebuilt_binary),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
