/* The plugin loader against fixture plugins (tests/fixtures/plugins): the
 * good ones load and are found by name and kind; every bad one is rejected
 * with its path and the reason; directories are scanned in the documented
 * order, files by name, and the first plugin of a name wins. Also `hiercl
 * plugins` / `hiercl describe` when the command is built. No device needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal.h"

#include "elf_check.h"

#include <elf.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIX HCL_TEST_FIXTURE_PLUGINS
#define GOOD FIX "/good"
#define BAD FIX "/bad"
#define DUP FIX "/dup"

#define assert_contains(msg, frag)                                                                 \
  do {                                                                                             \
    if (!strstr((msg), (frag))) fail_msg("message '%s'\n  lacks '%s'", (msg), (frag));             \
  } while (0)

static int setup(void **state) {
  (void)state;
  unsetenv("HIERCL_PLUGIN_PATH"); /* the tests set it themselves */
  return 0;
}

/* The rejection of `path` in reg, or NULL. */
static const char *rejection_of(const hcl_registry *reg, const char *path) {
  size_t n = strlen(path);
  for (size_t i = 0; i < reg->n_rejected; i++)
    if (!strncmp(reg->rejected[i], path, n) && !strncmp(reg->rejected[i] + n, ": ", 2))
      return reg->rejected[i];
  return NULL;
}

static size_t rejection_index(const hcl_registry *reg, const char *path) {
  const char *r = rejection_of(reg, path);
  for (size_t i = 0; r && i < reg->n_rejected; i++)
    if (reg->rejected[i] == r) return i;
  return (size_t)-1;
}

/* sha256sum's answer for a file: an independent reference. */
static void sha256sum(const char *path, char out[65]) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  out[0] = 0;
  if (fscanf(p, "%64s", out) != 1) out[0] = 0;
  pclose(p);
}

static void test_good_plugins_load(void **state) {
  (void)state;
  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, GOOD, &reg), HCL_OK);
  const hcl_plugin *t = hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET);
  const hcl_plugin *m = hcl_registry_find(&reg, "good_model", HCL_PLUGIN_MODEL);
  assert_non_null(t);
  assert_non_null(m);
  /* Names are per kind; kind 0 matches either. */
  assert_null(hcl_registry_find(&reg, "good_target", HCL_PLUGIN_MODEL));
  assert_null(hcl_registry_find(&reg, "good_model", HCL_PLUGIN_TARGET));
  assert_ptr_equal(hcl_registry_find(&reg, "good_model", 0), m);
  assert_null(hcl_registry_find(&reg, "nosuch", 0));
  assert_string_equal(t->path, GOOD "/good_target.so");
  assert_string_equal(m->path, GOOD "/good_model.so");
  assert_string_equal(t->desc->version, "1.2.3");
  assert_int_equal(t->desc->kind, HCL_PLUGIN_TARGET);
  assert_string_equal(t->desc->params[0].key, "n");
  assert_non_null(t->handle);
  /* good_target's init refuses a missing host table, so loading proves the
   * table was passed. The hash is the file's. */
  char want[65];
  sha256sum(t->path, want);
  assert_int_equal(strlen(want), 64);
  assert_string_equal(t->sha256, want);
  sha256sum(m->path, want);
  assert_string_equal(m->sha256, want);
  assert_null(rejection_of(&reg, GOOD "/good_target.so"));
  assert_null(rejection_of(&reg, GOOD "/good_model.so"));
  hcl_registry_free(&reg);
  assert_int_equal(reg.n, 0);
  assert_null(reg.plugins);
  hcl_registry_free(&reg); /* twice is harmless */
}

typedef struct bad_case {
  const char *file;
  hcl_status rc;
  const char *frag[3];
} bad_case;

static void test_each_rejection_names_file_and_reason(void **state) {
  (void)state;
  char small_struct[160], small_vt[160];
  snprintf(small_struct, sizeof small_struct, "descriptor struct_size %u too small",
           (unsigned)offsetof(hcl_plugin_desc, vt));
  snprintf(small_vt, sizeof small_vt, "target vtable struct_size %u too small",
           (unsigned)offsetof(hcl_target_vt, info));
  const bad_case cases[] = {
      {"no_entry", HCL_ERR_PLUGIN, {"no entry point 'hcl_plugin_init'"}},
      {"bad_abi", HCL_ERR_ABI, {"plugin ABI 99, host 1"}},
      {"small_struct", HCL_ERR_ABI, {small_struct}},
      {"init_fails",
       HCL_ERR_PLUGIN,
       {"init failed: needs cl_khr_fp64, which this fixture pretends is missing"}},
      {"bad_name", HCL_ERR_PLUGIN, {"bad plugin name 'Bad-Name'", "[a-z0-9_]+"}},
      {"bad_kind", HCL_ERR_ABI, {"kind 7 is neither target (1) nor model (2)"}},
      {"null_vt", HCL_ERR_ABI, {"plugin 'null_vt': vt is NULL"}},
      {"small_vt", HCL_ERR_ABI, {"plugin 'small_vt'", small_vt}},
      {"missing_fn", HCL_ERR_ABI, {"model vtable has no 'backward' function"}},
      {"bad_default", HCL_ERR_PLUGIN, {"default '1000' of 'n' is invalid", "in [1, 100]"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[1024], head[1100];
    snprintf(path, sizeof path, "%s/%s.so", BAD, cases[i].file);
    snprintf(head, sizeof head, "%s: ", path);
    hcl_plugin p;
    memset(&p, 0x5a, sizeof p);
    hcl_status rc = hcl_plugin_load(NULL, path, &p);
    if (rc != cases[i].rc)
      fail_msg("%s: rc %d (%s), want %d", cases[i].file, rc, hcl_errmsg(NULL), cases[i].rc);
    const char *msg = hcl_errmsg(NULL);
    if (strncmp(msg, head, strlen(head))) fail_msg("'%s' does not start with '%s'", msg, head);
    for (size_t k = 0; k < 3 && cases[i].frag[k]; k++) assert_contains(msg, cases[i].frag[k]);
    assert_null(p.handle);
    assert_null(p.desc);
  }
  /* A file that is not there, and one that is not a shared object. */
  hcl_plugin p;
  assert_int_equal(hcl_plugin_load(NULL, BAD "/nosuch.so", &p), HCL_ERR_PLUGIN);
  assert_contains(hcl_errmsg(NULL), BAD "/nosuch.so: cannot open: ");
  assert_contains(hcl_errmsg(NULL), "No such file");
  /* Errors land in the ctx when there is one. */
  static hcl_ctx ctx;
  assert_int_equal(hcl_plugin_load(&ctx, BAD "/bad_abi.so", &p), HCL_ERR_ABI);
  assert_contains(hcl_errmsg(&ctx), BAD "/bad_abi.so: plugin ABI 99, host 1");
}

static void test_scan_collects_rejections_in_name_order(void **state) {
  (void)state;
  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, BAD, &reg), HCL_OK); /* rejections are not fatal */
  static const char *const order[] = {"bad_abi",      "bad_default", "bad_kind", "bad_name",
                                      "init_fails",   "missing_fn",  "no_entry", "null_vt",
                                      "small_struct", "small_vt"};
  size_t last = 0;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", BAD, order[i]);
    size_t at = rejection_index(&reg, path);
    if (at == (size_t)-1) fail_msg("%s not rejected", path);
    if (i && at != last + 1) fail_msg("%s rejected at %zu, after %zu", path, at, last);
    last = at;
  }
  for (size_t i = 0; i < reg.n; i++)
    if (!strncmp(reg.plugins[i].path, BAD "/", strlen(BAD) + 1))
      fail_msg("%s was loaded", reg.plugins[i].path);
  assert_contains(rejection_of(&reg, BAD "/init_fails.so"), "init failed: needs cl_khr_fp64");
  hcl_registry_free(&reg);
}

static void test_first_directory_wins(void **state) {
  (void)state;
  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, GOOD ":" DUP, &reg), HCL_OK);
  const hcl_plugin *t = hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET);
  assert_non_null(t);
  assert_string_equal(t->desc->version, "1.2.3");
  assert_string_equal(t->path, GOOD "/good_target.so");
  const char *r = rejection_of(&reg, DUP "/dup.so");
  assert_non_null(r);
  assert_string_equal(r, DUP "/dup.so: duplicate plugin 'good_target' (also in " GOOD
                             "/good_target.so)");
  assert_non_null(hcl_registry_find(&reg, "good_model", HCL_PLUGIN_MODEL));
  hcl_registry_free(&reg);

  assert_int_equal(hcl_registry_scan(NULL, DUP ":" GOOD, &reg), HCL_OK);
  t = hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET);
  assert_string_equal(t->desc->version, "dup");
  assert_string_equal(rejection_of(&reg, GOOD "/good_target.so"), GOOD
                      "/good_target.so: duplicate plugin 'good_target' (also in " DUP "/dup.so)");
  assert_non_null(hcl_registry_find(&reg, "good_model", HCL_PLUGIN_MODEL));
  hcl_registry_free(&reg);
}

static void test_env_path_after_extra(void **state) {
  (void)state;
  hcl_registry reg;
  /* The environment alone. */
  setenv("HIERCL_PLUGIN_PATH", GOOD, 1);
  assert_int_equal(hcl_registry_scan(NULL, NULL, &reg), HCL_OK);
  assert_non_null(hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET));
  assert_non_null(hcl_registry_find(&reg, "good_model", HCL_PLUGIN_MODEL));
  hcl_registry_free(&reg);
  /* --plugin-path comes before the environment. */
  assert_int_equal(hcl_registry_scan(NULL, DUP, &reg), HCL_OK);
  assert_string_equal(hcl_registry_find(&reg, "good_target", 1)->desc->version, "dup");
  assert_contains(rejection_of(&reg, GOOD "/good_target.so"), "duplicate plugin 'good_target'");
  hcl_registry_free(&reg);
  /* A colon list; a directory that does not exist is reported, not fatal. */
  setenv("HIERCL_PLUGIN_PATH", FIX "/nosuch:" DUP ":" GOOD, 1);
  assert_int_equal(hcl_registry_scan(NULL, NULL, &reg), HCL_OK);
  assert_string_equal(hcl_registry_find(&reg, "good_target", 1)->desc->version, "dup");
  assert_non_null(hcl_registry_find(&reg, "good_model", HCL_PLUGIN_MODEL));
  assert_contains(rejection_of(&reg, FIX "/nosuch"), "cannot open plugin directory");
  hcl_registry_free(&reg);
  unsetenv("HIERCL_PLUGIN_PATH");
}

/* Files sorted by name within a folder; only regular *.so files load, the
 * rest is listed; a folder named twice is scanned once. Built from symlinks
 * in a temporary folder. */
static void test_sorted_files_and_repeated_dir(void **state) {
  (void)state;
  char dir[] = "/tmp/hcl_loader_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char a[256], b[256], c[256], d[256], txt[256];
  snprintf(a, sizeof a, "%s/a.so", dir);
  snprintf(b, sizeof b, "%s/b.so", dir);
  snprintf(c, sizeof c, "%s/c.so", dir);
  snprintf(d, sizeof d, "%s/d.so", dir);
  snprintf(txt, sizeof txt, "%s/readme.txt", dir);
  assert_int_equal(symlink(DUP "/dup.so", a), 0);
  assert_int_equal(symlink(GOOD "/good_target.so", b), 0);
  FILE *f = fopen(c, "w"); /* not a shared object */
  assert_non_null(f);
  fputs("not an ELF file\n", f);
  fclose(f);
  assert_int_equal(mkdir(d, 0700), 0); /* a folder named *.so: skipped */
  f = fopen(txt, "w");
  assert_non_null(f);
  fclose(f);

  char path[600];
  snprintf(path, sizeof path, "%s:%s/.", dir, dir);
  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, path, &reg), HCL_OK);
  const hcl_plugin *t = hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET);
  assert_non_null(t);
  assert_string_equal(t->path, a); /* a.so sorts first */
  assert_string_equal(t->desc->version, "dup");
  char want[1024];
  snprintf(want, sizeof want, "%s: duplicate plugin 'good_target' (also in %s)", b, a);
  assert_string_equal(rejection_of(&reg, b), want);
  assert_contains(rejection_of(&reg, c), "not a loadable shared object: not an ELF file");
  assert_contains(rejection_of(&reg, d), "a directory, not a plugin file; skipped");
  size_t in_dir = 0;
  for (size_t i = 0; i < reg.n_rejected; i++)
    if (!strncmp(reg.rejected[i], dir, strlen(dir))) in_dir++;
  assert_int_equal(in_dir, 3); /* b.so, c.so and d.so, once each */
  hcl_registry_free(&reg);

  unlink(a);
  unlink(b);
  unlink(c);
  unlink(txt);
  rmdir(d);
  rmdir(dir);
}

/* The bytes of a file (malloc'd), its size in *n. */
static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  assert_true(len > 0);
  unsigned char *b = malloc((size_t)len);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

static void spit(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

/* A truncated plugin made dlopen raise SIGBUS and killed the scan (and
 * every command). Now each cut is rejected with the reason, the rest of the
 * path still loads, and no cut of a real plugin passes the ELF check. */
static void test_truncated_plugins_rejected(void **state) {
  (void)state;
  size_t n;
  unsigned char *b = slurp(GOOD "/good_target.so", &n);
  char why[256];
  assert_int_equal(hcl_elf_check(b, n, why, sizeof why), 1);
  for (size_t k = 0; k < n; k++)
    if (hcl_elf_check(b, k, why, sizeof why)) fail_msg("the first %zu of %zu bytes pass", k, n);
  assert_int_equal(hcl_elf_check(b, 40, why, sizeof why), 0);
  assert_contains(why, "truncated: 40 bytes, shorter than the 64-byte ELF header");

  char dir[] = "/tmp/hcl_trunc_XXXXXX";
  assert_non_null(mkdtemp(dir));
  static const size_t cuts[] = {0, 3, 40, 100, 4000};
  char path[6][300];
  for (size_t i = 0; i < 5; i++) {
    snprintf(path[i], sizeof path[i], "%s/cut%zu.so", dir, cuts[i]);
    spit(path[i], b, cuts[i]);
  }
  snprintf(path[5], sizeof path[5], "%s/cut_last.so", dir);
  spit(path[5], b, n - 1);
  char list[600];
  snprintf(list, sizeof list, "%s:%s", dir, GOOD);
  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, list, &reg), HCL_OK);
  for (size_t i = 0; i < 6; i++) {
    const char *r = rejection_of(&reg, path[i]);
    if (!r) fail_msg("%s not rejected", path[i]);
    assert_contains(r, "not a loadable shared object: ");
    if (i >= 3) assert_contains(r, "truncated: ");
  }
  assert_contains(rejection_of(&reg, path[0]), "not an ELF file");
  assert_non_null(hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET));
  assert_non_null(hcl_registry_find(&reg, "good_model", HCL_PLUGIN_MODEL));
  hcl_registry_free(&reg);

  /* Whole files for another machine or of another ELF type. */
  b[18] ^= 0x55; /* e_machine */
  spit(path[0], b, n);
  b[18] ^= 0x55;
  b[16] = 2; /* e_type: ET_EXEC */
  spit(path[1], b, n);
  hcl_plugin p;
  assert_int_equal(hcl_plugin_load(NULL, path[0], &p), HCL_ERR_PLUGIN);
  assert_contains(hcl_errmsg(NULL), "built for ELF machine");
  assert_int_equal(hcl_plugin_load(NULL, path[1], &p), HCL_ERR_PLUGIN);
  assert_contains(hcl_errmsg(NULL), "is not a shared object (ET_DYN");
  assert_null(p.handle);
  for (size_t i = 0; i < 6; i++) unlink(path[i]);
  rmdir(dir);
  free(b);
}

/* Files the fuzzer (fuzz/fuzz_loader.c, dlopen in a child) found that
 * dlopen faults on after an earlier version of the check let them through:
 * mutations of a fixture plugin. Each is refused now, for its reason. */
static void test_fuzz_findings_rejected(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"finding_relro_outside_image", "PT_GNU_RELRO 8 lies outside the loaded segments"},
      {"finding_rela_without_size", "dynamic entry 7 without entry 8"},
      {"finding_pltrel_without_jmprel", "dynamic entry 20 without entry 23"},
      {"finding_rela_without_entry_size", "a relocation table without its entry size"},
      {"finding_load_not_readable", "PT_LOAD 0 is not readable"},
      {"good_target_stripped.elf", NULL},
      {"resnet_stripped.elf", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[1200], why[256];
    snprintf(path, sizeof path, "%s/../fuzz/corpus/loader/%s", HCL_TEST_DATA, cases[i][0]);
    size_t n;
    unsigned char *b = slurp(path, &n);
    int ok = hcl_elf_check(b, n, why, sizeof why);
    free(b);
    if (ok != !cases[i][1]) fail_msg("%s: check says %d (%s)", cases[i][0], ok, why);
    if (cases[i][1]) assert_contains(why, cases[i][1]);
  }
}

/* File offset of the dynamic entry `tag` of a 64-bit shared object (the
 * fixture), or 0. The dynamic table's address is its file offset there. */
static size_t dyn_entry(const unsigned char *b, size_t n, int64_t tag) {
  Elf64_Ehdr eh;
  memcpy(&eh, b, sizeof eh);
  for (size_t i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, b + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_DYNAMIC) continue;
    for (size_t o = ph.p_offset; o + sizeof(Elf64_Dyn) <= n && o < ph.p_offset + ph.p_filesz;
         o += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d;
      memcpy(&d, b + o, sizeof d);
      if (d.d_tag == tag) return o;
      if (d.d_tag == DT_NULL) break;
    }
  }
  return 0;
}

/* glibc asserts that the first DT_RELACOUNT relocations are relative; a
 * failed assertion exits the whole process inside dlopen (found by the
 * fuzz target once it also counted such exits). */
static void test_relative_count_checked(void **state) {
  (void)state;
#ifndef __x86_64__
  skip(); /* the fixture's relocation types below are x86-64's */
#else
  size_t n;
  unsigned char *b = slurp(GOOD "/good_target.so", &n);
  char why[256];
  size_t cnt = dyn_entry(b, n, DT_RELACOUNT), rela = dyn_entry(b, n, DT_RELA);
  size_t relasz = dyn_entry(b, n, DT_RELASZ);
  if (!cnt || !rela || !relasz) skip(); /* a linker that writes no count */
  Elf64_Dyn dc, dr, ds;
  memcpy(&dc, b + cnt, sizeof dc);
  memcpy(&dr, b + rela, sizeof dr);
  memcpy(&ds, b + relasz, sizeof ds);
  assert_true(dc.d_un.d_val > 0);
  /* more counted than the table has */
  Elf64_Dyn big = dc;
  big.d_un.d_val = ds.d_un.d_val / sizeof(Elf64_Rela) + 1;
  memcpy(b + cnt, &big, sizeof big);
  assert_int_equal(hcl_elf_check(b, n, why, sizeof why), 0);
  assert_contains(why, "relative relocations counted, the table has");
  memcpy(b + cnt, &dc, sizeof dc);
  assert_int_equal(hcl_elf_check(b, n, why, sizeof why), 1);
  /* the first one of another type (the table's address is its offset here) */
  Elf64_Rela r;
  assert_true(dr.d_un.d_ptr + sizeof r <= n);
  memcpy(&r, b + dr.d_un.d_ptr, sizeof r);
  assert_int_equal(ELF64_R_TYPE(r.r_info), R_X86_64_RELATIVE);
  r.r_info = ELF64_R_INFO(0, R_X86_64_64);
  memcpy(b + dr.d_un.d_ptr, &r, sizeof r);
  assert_int_equal(hcl_elf_check(b, n, why, sizeof why), 0);
  assert_contains(why, "is not relative");
  free(b);
#endif
}

/* hcl_plugin_load on `path` in a child with a watchdog (a FIFO blocked the
 * old loader's open forever); the child exits 0 when it was refused with
 * `frag` in the message, 1 otherwise, and dies of SIGALRM when it hangs. */
static int load_in_child(const char *path, const char *frag) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(20);
    hcl_plugin p;
    hcl_status rc = hcl_plugin_load(NULL, path, &p);
    _exit(rc == HCL_ERR_PLUGIN && strstr(hcl_errmsg(NULL), frag) ? 0 : 1);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Link loops, dangling links, FIFOs and folders named *.so used to vanish
 * from the listing; each is now listed with its reason and never opened. */
static void test_special_entries_listed(void **state) {
  (void)state;
  char dir[] = "/tmp/hcl_special_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char loop[300], loop2[300], dangling[300], fifo[300], folder[300], good[300];
  snprintf(loop, sizeof loop, "%s/loop.so", dir);
  snprintf(loop2, sizeof loop2, "%s/loop2.so", dir);
  snprintf(dangling, sizeof dangling, "%s/dangling.so", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo.so", dir);
  snprintf(folder, sizeof folder, "%s/folder.so", dir);
  snprintf(good, sizeof good, "%s/good.so", dir);
  assert_int_equal(symlink(loop2, loop), 0);
  assert_int_equal(symlink(loop, loop2), 0);
  assert_int_equal(symlink("/nonexistent/x.so", dangling), 0);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(mkdir(folder, 0700), 0);
  assert_int_equal(symlink(GOOD "/good_target.so", good), 0);

  hcl_registry reg;
  assert_int_equal(hcl_registry_scan(NULL, dir, &reg), HCL_OK);
  const char *r;
  assert_non_null(r = rejection_of(&reg, loop));
  assert_string_equal(strstr(r, ": ") + 2, "symbolic link loop; skipped");
  assert_non_null(r = rejection_of(&reg, loop2));
  assert_contains(r, "symbolic link loop; skipped");
  assert_non_null(r = rejection_of(&reg, dangling));
  assert_contains(r, "dangling symbolic link (to /nonexistent/x.so); skipped");
  assert_non_null(r = rejection_of(&reg, fifo));
  assert_contains(r, "a FIFO (named pipe), not a plugin file; skipped");
  assert_non_null(r = rejection_of(&reg, folder));
  assert_contains(r, "a directory, not a plugin file; skipped");
  assert_string_equal(hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET)->path, good);
  assert_int_equal(reg.n_rejected, 5);
  hcl_registry_free(&reg);

  /* Loading the FIFO by name does not block; a folder is refused too. */
  assert_int_equal(load_in_child(fifo, "a FIFO (named pipe), not a plugin file"), 0);
  assert_int_equal(load_in_child(folder, "cannot open") == 0 ||
                       load_in_child(folder, "a directory, not a plugin file") == 0,
                   1);

  unlink(loop);
  unlink(loop2);
  unlink(dangling);
  unlink(fifo);
  unlink(good);
  rmdir(folder);
  rmdir(dir);
}

/* A relative entry of HIERCL_PLUGIN_PATH is resolved: plugins show (and
 * the manifest records) where they really came from. */
static void test_relative_entry_resolved(void **state) {
  (void)state;
  char cwd[PATH_MAX], real_good[PATH_MAX], want[PATH_MAX + 32];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_non_null(realpath(GOOD, real_good));
  snprintf(want, sizeof want, "%s/good_target.so", real_good);
  assert_int_equal(chdir(GOOD), 0);
  setenv("HIERCL_PLUGIN_PATH", ".", 1);
  hcl_registry reg;
  hcl_status rc = hcl_registry_scan(NULL, NULL, &reg);
  assert_int_equal(chdir(cwd), 0);
  unsetenv("HIERCL_PLUGIN_PATH");
  assert_int_equal(rc, HCL_OK);
  const hcl_plugin *t = hcl_registry_find(&reg, "good_target", HCL_PLUGIN_TARGET);
  assert_non_null(t);
  assert_string_equal(t->path, want);
  hcl_registry_free(&reg);
}

/* ---- the command ----------------------------------------------------------- */

/* Run the hiercl command; returns its exit status, output (stdout and
 * stderr) in out. */
static int run_cli(const char *args, char *out, size_t len) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "env -u HIERCL_PLUGIN_PATH '%s' %s 2>&1", HCL_TEST_HIERCL, args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state) {
  (void)state;
  if (access(HCL_TEST_HIERCL, X_OK) != 0) {
    print_message("hiercl not built (%s); skipping the command tests\n", HCL_TEST_HIERCL);
    skip();
  }
  static char out[1 << 16];
  assert_int_equal(run_cli("plugins --plugin-path " GOOD ":" BAD, out, sizeof out), 0);
  assert_contains(out, "KIND");
  assert_contains(out, "good_target");
  assert_contains(out, "1.2.3");
  assert_contains(out, GOOD "/good_model.so");
  assert_contains(out, "rejected:");
  assert_contains(out, BAD "/bad_abi.so: plugin ABI 99, host 1");

  assert_int_equal(run_cli("plugins --json --plugin-path=" GOOD, out, sizeof out), 0);
  assert_contains(out, "\"name\": \"good_model\"");
  assert_contains(out, "\"kind\": \"model\"");
  assert_contains(out, "\"sha256\": \"");

  assert_int_equal(run_cli("describe good_target --plugin-path " GOOD, out, sizeof out), 0);
  assert_contains(out, "good_target 1.2.3 (target plugin)");
  assert_contains(out, "Nobody, Fixtures considered useful (2024)");
  assert_contains(out, "plugin = good_target");
  assert_contains(out, "n (int, default 10, range [1, 100])");
  assert_contains(out, "input dimension");
  assert_contains(out, "mode (enum, default a, choices: a, b, c)");
  assert_contains(out, "k (int, required, range [0, 8])");
  assert_contains(out, "widths (list, default 1, 2, 4, range [1, 64])");

  assert_int_equal(run_cli("describe good_model --json --plugin-path " GOOD, out, sizeof out), 0);
  assert_contains(out, "\"key\": \"width\", \"type\": \"int\", \"default\": \"8\"");

  assert_int_equal(run_cli("describe nosuch --plugin-path " GOOD, out, sizeof out), 2);
  assert_contains(out, "unknown plugin 'nosuch'");
  assert_contains(out, "good_model");
  assert_contains(out, "good_target");
  /* A plugin that failed to load: describe says why. */
  assert_int_equal(run_cli("describe init_fails --plugin-path " BAD, out, sizeof out), 2);
  assert_contains(out, BAD "/init_fails.so: init failed");
  assert_int_equal(run_cli("describe", out, sizeof out), 2);
  assert_int_equal(run_cli("plugins --bogus", out, sizeof out), 2);
  assert_contains(out, "unknown option '--bogus'");
}

/* The truncated plugin of the bug report: `hiercl plugins` lists it under
 * "rejected" with the reason and lists the rest (it died of SIGBUS). */
static void test_cli_truncated_plugin(void **state) {
  (void)state;
  if (access(HCL_TEST_HIERCL, X_OK) != 0) skip();
  char dir[] = "/tmp/hcl_cut_XXXXXX", path[300], args[700];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/resnet.so", dir);
  size_t n;
  unsigned char *b = slurp(HCL_TEST_PLUGIN_DIR "/resnet.so", &n);
  spit(path, b, 4000);
  free(b);
  static char out[1 << 16];
  snprintf(args, sizeof args, "plugins --plugin-path %s", dir);
  assert_int_equal(run_cli(args, out, sizeof out), 0);
  char want[400];
  snprintf(want, sizeof want, "%s: not a loadable shared object: truncated", path);
  assert_contains(out, want);
  assert_contains(out, "staircase"); /* the other plugins are still there */
  snprintf(args, sizeof args, "describe resnet --plugin-path %s", dir);
  assert_int_equal(run_cli(args, out, sizeof out), 0); /* the build tree's resnet */
  unlink(path);
  rmdir(dir);
}

/* The installed command searches its own prefix and what the user names,
 * never the build tree (where a dropped .so would run its constructor).
 * The command is copied to <tmp>/bin/hiercl, as `cmake --install --prefix`
 * does; <tmp>/<libdir>/hiercl/plugins is its plugin folder. */
static void test_cli_installed_ignores_build_tree(void **state) {
  (void)state;
  if (access(HCL_TEST_HIERCL, X_OK) != 0) skip();
  char prefix[] = "/tmp/hcl_prefix_XXXXXX", cmd[2048], libdir[256] = "lib";
  assert_non_null(mkdtemp(prefix));
  /* CMake's CMAKE_INSTALL_LIBDIR, from the build's cache */
  char cache[1200];
  snprintf(cache, sizeof cache, "%.*s/CMakeCache.txt",
           (int)(strrchr(HCL_TEST_HIERCL, '/') - HCL_TEST_HIERCL), HCL_TEST_HIERCL);
  FILE *f = fopen(cache, "r");
  for (char line[512]; f && fgets(line, sizeof line, f);)
    if (sscanf(line, "CMAKE_INSTALL_LIBDIR:PATH=%255s", libdir) == 1) break;
  if (f) fclose(f);
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s/bin %s/%s/hiercl/plugins && cp %s %s/bin/hiercl && ln -s %s/good_target.so "
           "%s/%s/hiercl/plugins/",
           prefix, prefix, libdir, HCL_TEST_HIERCL, prefix, GOOD, prefix, libdir);
  assert_int_equal(system(cmd), 0);
  static char out[1 << 16];
  snprintf(cmd, sizeof cmd, "env -u HIERCL_PLUGIN_PATH %s/bin/hiercl plugins 2>&1", prefix);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  assert_int_equal(pclose(p), 0);
  if (strstr(out, HCL_TEST_PLUGIN_DIR))
    fail_msg("the installed command searched the build tree:\n%s", out);
  assert_null(strstr(out, "resnet"));
  char want[600];
  snprintf(want, sizeof want, "%s/%s/hiercl/plugins/good_target.so", prefix, libdir);
  assert_contains(out, want);
  /* The command in the build tree still finds the build's plugins. */
  assert_int_equal(run_cli("plugins", out, sizeof out), 0);
  assert_contains(out, HCL_TEST_PLUGIN_DIR "/resnet.so");
  snprintf(cmd, sizeof cmd, "rm -rf %s", prefix);
  assert_int_equal(system(cmd), 0);
}

/* A long-lived process loads and unloads graph models many times (each
 * sweep point, each embedding call): 40 registries, each with a distinct
 * copy of resnet.so (so a distinct vtable), all load it; the runtime's
 * wrapper slots (32) are released with each registry. */
static void test_graph_models_reload_without_limit(void **state) {
  (void)state;
  char top[] = "/tmp/hcl_reload_XXXXXX";
  assert_non_null(mkdtemp(top));
  for (int i = 0; i < 40; i++) {
    char dir[1024], cmd[2400];
    snprintf(dir, sizeof dir, "%s/%d", top, i);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/resnet.so' '%s/'", dir, HCL_TEST_PLUGIN_DIR,
             dir);
    assert_int_equal(system(cmd), 0);
    hcl_registry reg;
    assert_int_equal(hcl_registry_scan(NULL, dir, &reg), HCL_OK);
    const hcl_plugin *m = hcl_registry_find(&reg, "resnet", HCL_PLUGIN_MODEL);
    if (!m) fail_msg("load %d: resnet not loaded: %s", i, reg.n_rejected ? reg.rejected[0] : "-");
    assert_non_null(strstr(m->path, dir));
    hcl_registry_free(&reg);
  }
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_good_plugins_load, setup),
      cmocka_unit_test_setup(test_graph_models_reload_without_limit, setup),
      cmocka_unit_test_setup(test_each_rejection_names_file_and_reason, setup),
      cmocka_unit_test_setup(test_scan_collects_rejections_in_name_order, setup),
      cmocka_unit_test_setup(test_first_directory_wins, setup),
      cmocka_unit_test_setup(test_env_path_after_extra, setup),
      cmocka_unit_test_setup(test_sorted_files_and_repeated_dir, setup),
      cmocka_unit_test_setup(test_truncated_plugins_rejected, setup),
      cmocka_unit_test_setup(test_fuzz_findings_rejected, setup),
      cmocka_unit_test_setup(test_relative_count_checked, setup),
      cmocka_unit_test_setup(test_special_entries_listed, setup),
      cmocka_unit_test_setup(test_relative_entry_resolved, setup),
      cmocka_unit_test_setup(test_cli, setup),
      cmocka_unit_test_setup(test_cli_truncated_plugin, setup),
      cmocka_unit_test_setup(test_cli_installed_ignores_build_tree, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
