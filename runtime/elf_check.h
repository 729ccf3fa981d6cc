/* Structural check of a shared object's bytes before dlopen (elf_check.c).
 * Pure: no I/O, no globals; fuzzed by fuzz/fuzz_loader.c. */
#ifndef HCL_ELF_CHECK_H
#define HCL_ELF_CHECK_H

#include <stddef.h>

/* 1 when the whole file `data` (`size` bytes) is an ELF shared object for
 * this host whose headers, segments and dynamic table lie within the file
 * and its loaded image (so dlopen cannot fault reading them); else 0, with
 * the reason in why (NUL-terminated, at most wl bytes). */
int hcl_elf_check(const unsigned char *data, size_t size, char *why, size_t wl);

#endif
