/* libFuzzer target: the plugin loader's file check (runtime/elf_check.c),
 * which stands between a file on the plugin path and dlopen.
 *
 * Properties, each an abort() when broken:
 *  - any bytes: no crash, no sanitizer report, and a refusal gives a reason;
 *  - an accepted input is a shared object of this host's class whose every
 *    loaded segment lies within the input (checked here independently: the
 *    property whose absence made dlopen raise SIGBUS on a truncated file);
 *  - with HIERCL_FUZZ_DLOPEN=1 in the environment, an accepted input is also
 *    dlopen'ed in a child process: the child dying of a signal, or exiting
 *    inside dlopen (ld.so's assertions), is a file the check let through
 *    that dlopen cannot take. (It runs the input's
 *    constructors: seed the corpus only with the project's own plugins.)
 * Seeds: fuzz/corpus/loader/ (a fixture plugin, cuts of a plugin's header). */
#include "elf_check.h"
#include "internal.h" /* hcl_getenv */

#include <dlfcn.h>
#include <elf.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr ehdr_t;
typedef Elf64_Phdr phdr_t;
typedef Elf64_Dyn dyn_t;
#else
typedef Elf32_Ehdr ehdr_t;
typedef Elf32_Phdr phdr_t;
typedef Elf32_Dyn dyn_t;
#endif

/* Every PT_LOAD's file bytes inside [0, size): 1, else 0. */
static int loads_within(const uint8_t *data, size_t size) {
  ehdr_t eh;
  if (size < sizeof eh) return 0;
  memcpy(&eh, data, sizeof eh);
  if (eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(phdr_t) > size - eh.e_phoff) return 0;
  for (size_t i = 0; i < eh.e_phnum; i++) {
    phdr_t ph;
    memcpy(&ph, data + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD && (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)) return 0;
  }
  return 1;
}

/* The input's own code (constructors, destructors) is no business of the
 * check, and mutated code crashes: turn those entries of the dynamic table
 * into DT_DEBUG, which the loader ignores in a shared object. */
static void disarm_code(uint8_t *d, size_t size) {
  ehdr_t eh;
  memcpy(&eh, d, sizeof eh);
  phdr_t dyn = {0};
  for (size_t i = 0; i < eh.e_phnum; i++) {
    phdr_t ph;
    memcpy(&ph, d + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_DYNAMIC) dyn = ph;
  }
  if (!dyn.p_filesz) return;
  for (size_t i = 0; i < eh.e_phnum; i++) { /* the table's bytes, as mapped */
    phdr_t ph;
    memcpy(&ph, d + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_LOAD || dyn.p_vaddr < ph.p_vaddr ||
        dyn.p_vaddr - ph.p_vaddr + dyn.p_filesz > ph.p_filesz)
      continue;
    size_t off = (size_t)(ph.p_offset + (dyn.p_vaddr - ph.p_vaddr));
    for (size_t k = 0; off + (k + 1) * sizeof(dyn_t) <= size && k < dyn.p_filesz / sizeof(dyn_t);
         k++) {
      dyn_t e;
      memcpy(&e, d + off + k * sizeof e, sizeof e);
      if (e.d_tag == DT_NULL) break;
      if (e.d_tag == DT_INIT || e.d_tag == DT_FINI || e.d_tag == DT_INIT_ARRAY ||
          e.d_tag == DT_FINI_ARRAY || e.d_tag == DT_PREINIT_ARRAY) {
        e.d_tag = DT_DEBUG;
        memcpy(d + off + k * sizeof e, &e, sizeof e);
      }
    }
    return;
  }
}

/* dlopen the bytes in a child; 0 when the child died of a signal. */
static int dlopen_survives(const uint8_t *data, size_t size) {
  char path[] = "/tmp/hcl_fuzz_loader_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  uint8_t *copy = malloc(size);
  if (!copy) {
    close(fd);
    unlink(path);
    return 1;
  }
  memcpy(copy, data, size);
  disarm_code(copy, size);
  int ok = write(fd, copy, size) == (ssize_t)size;
  free(copy);
  close(fd);
  if (!ok) {
    unlink(path);
    return 1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    /* die of the signal itself, not through the inherited sanitizer and
     * fuzzer handlers (which would report the child as the fuzzer) */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
    alarm(10);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h) dlclose(h);
    _exit(0);
  }
  int st = 0;
  if (pid > 0) waitpid(pid, &st, 0);
  unlink(path);
  /* a signal, or an exit inside dlopen (ld.so's "Inconsistency detected"
   * assertions exit 127): either would end the command that loads plugins */
  if (pid > 0 && (WIFSIGNALED(st) || WEXITSTATUS(st) != 0)) {
    if (WIFSIGNALED(st))
      fprintf(stderr, "fuzz_loader: dlopen in the child died of signal %d\n", WTERMSIG(st));
    else
      fprintf(stderr, "fuzz_loader: dlopen in the child exited with %d\n", WEXITSTATUS(st));
    return 0;
  }
  return 1;
}

static unsigned long n_opened; /* accepted inputs dlopen'ed in a child */
static void report(void) {
  fprintf(stderr, "fuzz_loader: %lu accepted inputs dlopen'ed\n", n_opened);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char why[256];
  memset(why, 0x7f, sizeof why);
  if (!hcl_elf_check(data, size, why, sizeof why)) {
    if (!memchr(why, 0, sizeof why) || !why[0]) abort(); /* a refusal always says why */
    return 0;
  }
  if (!loads_within(data, size)) abort();
  static int try_dlopen = -1;
  if (try_dlopen < 0 && (try_dlopen = hcl_getenv("HIERCL_FUZZ_DLOPEN") != NULL)) atexit(report);
  if (try_dlopen) {
    n_opened++;
    if (!dlopen_survives(data, size)) abort();
  }
  return 0;
}
