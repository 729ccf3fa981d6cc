/* Is a file a shared object that dlopen can map without faulting? dlopen
 * maps a plugin's segments and then reads its headers, dynamic table, hash
 * tables, strings, version tables and relocations through that mapping; a
 * page past the end of a truncated file raises SIGBUS inside dlopen, which
 * no caller can catch. So every structure the dynamic loader reads before
 * running the plugin's code is checked here against the file's bytes.
 * What this does not do: make a hostile plugin safe (its code runs anyway). */
#include "elf_check.h"

#include <elf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr ehdr_t;
typedef Elf64_Phdr phdr_t;
typedef Elf64_Shdr shdr_t;
typedef Elf64_Dyn dyn_t;
typedef Elf64_Sym sym_t;
typedef Elf64_Rela rela_t;
typedef Elf64_Rel rel_t;
typedef Elf64_Verdef verdef_t;
typedef Elf64_Verdaux verdaux_t;
typedef Elf64_Verneed verneed_t;
typedef Elf64_Vernaux vernaux_t;
typedef uint64_t addr_t;
#define HOST_CLASS ELFCLASS64
#define R_SYM(i) ELF64_R_SYM(i)
#define R_TYPE(i) ELF64_R_TYPE(i)
#else
typedef Elf32_Ehdr ehdr_t;
typedef Elf32_Phdr phdr_t;
typedef Elf32_Shdr shdr_t;
typedef Elf32_Dyn dyn_t;
typedef Elf32_Sym sym_t;
typedef Elf32_Rela rela_t;
typedef Elf32_Rel rel_t;
typedef Elf32_Verdef verdef_t;
typedef Elf32_Verdaux verdaux_t;
typedef Elf32_Verneed verneed_t;
typedef Elf32_Vernaux vernaux_t;
typedef uint32_t addr_t;
#define HOST_CLASS ELFCLASS32
#define R_SYM(i) ELF32_R_SYM(i)
#define R_TYPE(i) ELF32_R_TYPE(i)
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_DATA ELFDATA2LSB
#else
#define HOST_DATA ELFDATA2MSB
#endif

/* The host's machine, and its IFUNC relocation (which calls an address). */
#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#define R_IRELATIVE R_X86_64_IRELATIVE
#define R_COPY R_X86_64_COPY
#define R_RELATIVE R_X86_64_RELATIVE
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#define R_IRELATIVE R_AARCH64_IRELATIVE
#define R_COPY R_AARCH64_COPY
#define R_RELATIVE R_AARCH64_RELATIVE
#elif defined(__i386__)
#define HOST_MACHINE EM_386
#define R_IRELATIVE R_386_IRELATIVE
#define R_RELATIVE R_386_RELATIVE
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#elif defined(__riscv)
#define HOST_MACHINE EM_RISCV
#elif defined(__arm__)
#define HOST_MACHINE EM_ARM
#elif defined(__s390x__)
#define HOST_MACHINE EM_S390
#else
#define HOST_MACHINE 0 /* unknown here: not checked */
#endif

#ifndef DT_RELRSZ
#define DT_RELRSZ 35
#endif
#ifndef DT_RELR
#define DT_RELR 36
#endif
#ifndef DT_RELRENT
#define DT_RELRENT 37
#endif

/* More than any linker writes; bounds the work on a crafted file. */
#define MAX_PHNUM 512
#define MAX_CHAIN 100000000u
#define MAX_VERSIONS 1000000u

typedef struct view {
  const unsigned char *d;
  size_t size;
  uint64_t phoff;
  size_t phnum;
  char *why;
  size_t wl;
} view;

static int bad(view *v, const char *fmt, ...) {
  if (v->why && v->wl) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, v->wl, fmt, ap);
    va_end(ap);
  }
  return 0;
}

/* [off, off + len) within [0, size), without overflow. */
static int fits(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}

static phdr_t phdr(const view *v, size_t i) {
  phdr_t ph;
  memcpy(&ph, v->d + v->phoff + i * sizeof ph, sizeof ph);
  return ph;
}

/* 1 when [addr, addr + len) lies in one PT_LOAD's memory image. */
static int in_image(const view *v, uint64_t addr, uint64_t len) {
  for (size_t i = 0; i < v->phnum; i++) {
    phdr_t ph = phdr(v, i);
    if (ph.p_type == PT_LOAD && addr >= ph.p_vaddr && fits(addr - ph.p_vaddr, len, ph.p_memsz))
      return 1;
  }
  return 0;
}

/* 1 when [addr, addr + len) lies in one PT_LOAD's file bytes; *off is then
 * where it starts in the file (so its content can be read here). */
static int in_file(const view *v, uint64_t addr, uint64_t len, uint64_t *off) {
  for (size_t i = 0; i < v->phnum; i++) {
    phdr_t ph = phdr(v, i);
    if (ph.p_type == PT_LOAD && addr >= ph.p_vaddr && fits(addr - ph.p_vaddr, len, ph.p_filesz)) {
      *off = ph.p_offset + (addr - ph.p_vaddr); /* within the file: checked per segment */
      return 1;
    }
  }
  return 0;
}

/* 1 when [addr, addr + len) lies in one writable PT_LOAD's memory image
 * (where the loader writes relocated values). */
static int in_writable(const view *v, uint64_t addr, uint64_t len) {
  for (size_t i = 0; i < v->phnum; i++) {
    phdr_t ph = phdr(v, i);
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_W) && addr >= ph.p_vaddr &&
        fits(addr - ph.p_vaddr, len, ph.p_memsz))
      return 1;
  }
  return 0;
}

/* 1 when addr lies in an executable PT_LOAD. */
static int in_code(const view *v, uint64_t addr) {
  for (size_t i = 0; i < v->phnum; i++) {
    phdr_t ph = phdr(v, i);
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && addr >= ph.p_vaddr &&
        addr - ph.p_vaddr < ph.p_memsz)
      return 1;
  }
  return 0;
}

static uint32_t rd32(const view *v, uint64_t off) {
  uint32_t x;
  memcpy(&x, v->d + off, 4);
  return x;
}

static int check_ehdr(view *v, ehdr_t *eh) {
  const unsigned char *d = v->d;
  if (v->size < SELFMAG || memcmp(d, ELFMAG, SELFMAG))
    return bad(v, "not an ELF file (no \\177ELF magic)");
  if (v->size < EI_NIDENT)
    return bad(v, "truncated: %zu bytes, inside the ELF identification", v->size);
  if (d[EI_CLASS] != HOST_CLASS)
    return bad(v, "ELF class %u, this host needs %u (%d-bit)", d[EI_CLASS], HOST_CLASS,
               HOST_CLASS == ELFCLASS64 ? 64 : 32);
  if (d[EI_DATA] != HOST_DATA)
    return bad(v, "ELF byte order %u, this host needs %u", d[EI_DATA], HOST_DATA);
  if (d[EI_VERSION] != EV_CURRENT) return bad(v, "ELF version %u, expected 1", d[EI_VERSION]);
  if (v->size < sizeof *eh)
    return bad(v, "truncated: %zu bytes, shorter than the %zu-byte ELF header", v->size,
               sizeof *eh);
  memcpy(eh, d, sizeof *eh);
  if (eh->e_type != ET_DYN)
    return bad(v, "ELF type %u is not a shared object (ET_DYN = %u)", eh->e_type, ET_DYN);
  if (HOST_MACHINE && eh->e_machine != HOST_MACHINE)
    return bad(v, "built for ELF machine %u, this host is machine %u", eh->e_machine, HOST_MACHINE);
  if (eh->e_phentsize != sizeof(phdr_t))
    return bad(v, "program header size %u, expected %zu", eh->e_phentsize, sizeof(phdr_t));
  if (eh->e_phnum == 0) return bad(v, "no program headers");
  if (eh->e_phnum > MAX_PHNUM)
    return bad(v, "%u program headers (more than %d)", eh->e_phnum, MAX_PHNUM);
  if (eh->e_phoff % sizeof(addr_t))
    return bad(v, "program header table at a misaligned offset %llu",
               (unsigned long long)eh->e_phoff);
  if (!fits(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(phdr_t), v->size))
    return bad(v, "truncated: the program header table ends past the file's %zu bytes", v->size);
  /* glibc does not read section headers, but a table cut off is a sure sign
   * of a truncated file (the linker writes it last). */
  if (eh->e_shoff || eh->e_shnum) {
    if (eh->e_shentsize != sizeof(shdr_t))
      return bad(v, "section header size %u, expected %zu", eh->e_shentsize, sizeof(shdr_t));
    uint64_t n = eh->e_shnum ? eh->e_shnum : 1; /* 0: the count is in the first header */
    if (!fits(eh->e_shoff, n * sizeof(shdr_t), v->size))
      return bad(v,
                 "truncated: the section header table (%llu entries at byte %llu) ends past "
                 "the file's %zu bytes",
                 (unsigned long long)n, (unsigned long long)eh->e_shoff, v->size);
  }
  v->phoff = eh->e_phoff;
  v->phnum = eh->e_phnum;
  return 1;
}

static const char *ptype(uint32_t t) {
  switch (t) {
  case PT_LOAD: return "PT_LOAD";
  case PT_DYNAMIC: return "PT_DYNAMIC";
  case PT_NOTE: return "PT_NOTE";
  case PT_TLS: return "PT_TLS";
  case PT_GNU_EH_FRAME: return "PT_GNU_EH_FRAME";
  case PT_GNU_RELRO: return "PT_GNU_RELRO";
  default: return "segment";
  }
}

/* Segments: every byte a segment takes from the file is in the file; loads
 * ascend without overlap; the segments the loader reads through the mapping
 * lie inside a load. */
static int check_segments(view *v, phdr_t *dyn) {
  size_t loads = 0, dyns = 0;
  uint64_t end_prev = 0;
  for (size_t i = 0; i < v->phnum; i++) {
    phdr_t ph = phdr(v, i);
    if (ph.p_filesz && !fits(ph.p_offset, ph.p_filesz, v->size))
      return bad(v, "truncated: %s %zu needs bytes %llu..%llu, the file has %zu", ptype(ph.p_type),
                 i, (unsigned long long)ph.p_offset, (unsigned long long)ph.p_offset + ph.p_filesz,
                 v->size);
    if (ph.p_type == PT_LOAD) {
      /* the loader reads its tables through the mapping */
      if (!(ph.p_flags & PF_R)) return bad(v, "PT_LOAD %zu is not readable", i);
      if (ph.p_filesz > ph.p_memsz)
        return bad(v, "PT_LOAD %zu: file size %llu exceeds its memory size %llu", i,
                   (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
      if (ph.p_align > 1 && (ph.p_align & (ph.p_align - 1)))
        return bad(v, "PT_LOAD %zu: alignment %llu is not a power of two", i,
                   (unsigned long long)ph.p_align);
      if (ph.p_align > 1 && (ph.p_vaddr - ph.p_offset) % ph.p_align)
        return bad(v, "PT_LOAD %zu: address and offset disagree modulo the alignment", i);
      if (!fits(ph.p_vaddr, ph.p_memsz, (uint64_t)1 << 40))
        return bad(v, "PT_LOAD %zu: address range beyond 1 TiB", i);
      if (loads && ph.p_vaddr < end_prev)
        return bad(v, "PT_LOAD %zu overlaps or precedes the previous one", i);
      end_prev = ph.p_vaddr + ph.p_memsz;
      loads++;
    } else if (ph.p_type == PT_DYNAMIC) {
      *dyn = ph;
      dyns++;
    }
  }
  if (!loads) return bad(v, "no PT_LOAD segment");
  if (dyns != 1) return bad(v, "%zu PT_DYNAMIC segments, a shared object has one", dyns);
  for (size_t i = 0; i < v->phnum; i++) {
    phdr_t ph = phdr(v, i);
    uint64_t off;
    int read_in_memory = ph.p_type == PT_DYNAMIC || ph.p_type == PT_NOTE ||
                         ph.p_type == PT_GNU_PROPERTY || ph.p_type == PT_TLS ||
                         ph.p_type == PT_PHDR || ph.p_type == PT_GNU_EH_FRAME;
    /* RELRO is made read-only after relocation: outside the image, that
     * mprotect would hit whatever else the process has mapped there */
    if (ph.p_type == PT_GNU_RELRO && !in_image(v, ph.p_vaddr, ph.p_memsz))
      return bad(v, "PT_GNU_RELRO %zu lies outside the loaded segments", i);
    if (!read_in_memory) continue;
    if (ph.p_filesz > ph.p_memsz)
      return bad(v, "%s %zu: file size exceeds memory size", ptype(ph.p_type), i);
    if (!in_image(v, ph.p_vaddr, ph.p_memsz) || !in_file(v, ph.p_vaddr, ph.p_filesz, &off))
      return bad(v, "%s %zu lies outside the loaded segments", ptype(ph.p_type), i);
    /* a writable PT_DYNAMIC is relocated in place by the loader */
    if (ph.p_type == PT_DYNAMIC && (ph.p_flags & PF_W) && !in_writable(v, ph.p_vaddr, ph.p_memsz))
      return bad(v, "PT_DYNAMIC is marked writable but lies in a read-only segment");
    if (ph.p_type == PT_TLS && ph.p_align > 1 && (ph.p_align & (ph.p_align - 1)))
      return bad(v, "PT_TLS alignment %llu is not a power of two", (unsigned long long)ph.p_align);
  }
  return 1;
}

/* The dynamic table's values the loader dereferences. */
typedef struct dyninfo {
  uint64_t val[DT_NUM > 40 ? DT_NUM : 40];
  int has[DT_NUM > 40 ? DT_NUM : 40];
  uint64_t gnu_hash, versym, verdef, verdefnum, verneed, verneednum, relacount, relcount;
  int has_gnu_hash, has_versym, has_verdef, has_verneed;
  uint64_t ver_high;   /* the highest version index defined or needed */
  uint64_t strtab_off; /* file offset of the string table */
  uint64_t nsyms;
} dyninfo;

#define NTAGS ((int)(sizeof((dyninfo *)0)->val / sizeof(uint64_t)))

static int string_ok(view *v, const dyninfo *di, uint64_t off, const char *what) {
  if (off >= di->val[DT_STRSZ])
    return bad(v, "%s: string offset %llu past the string table (%llu bytes)", what,
               (unsigned long long)off, (unsigned long long)di->val[DT_STRSZ]);
  return 1;
}

static int read_dynamic(view *v, const phdr_t *dp, dyninfo *di) {
  uint64_t off;
  in_file(v, dp->p_vaddr, dp->p_filesz, &off); /* checked in check_segments */
  size_t n = (size_t)(dp->p_filesz / sizeof(dyn_t));
  int ended = 0;
  for (size_t i = 0; i < n && !ended; i++) {
    dyn_t e;
    memcpy(&e, v->d + off + i * sizeof e, sizeof e);
    uint64_t val = (uint64_t)e.d_un.d_val;
    int64_t tag = (int64_t)e.d_tag;
    if (tag == DT_NULL)
      ended = 1;
    else if (tag == DT_NEEDED || tag == DT_SONAME || tag == DT_RPATH || tag == DT_RUNPATH)
      continue; /* strings: checked once the table is known */
    else if (tag >= 0 && tag < NTAGS) {
      di->val[tag] = val;
      di->has[tag] = 1;
    } else if (tag == DT_GNU_HASH)
      di->gnu_hash = val, di->has_gnu_hash = 1;
    else if (tag == DT_VERSYM)
      di->versym = val, di->has_versym = 1;
    else if (tag == DT_VERDEF)
      di->verdef = val, di->has_verdef = 1;
    else if (tag == DT_VERDEFNUM)
      di->verdefnum = val;
    else if (tag == DT_VERNEED)
      di->verneed = val, di->has_verneed = 1;
    else if (tag == DT_VERNEEDNUM)
      di->verneednum = val;
    else if (tag == DT_RELACOUNT)
      di->relacount = val;
    else if (tag == DT_RELCOUNT)
      di->relcount = val;
  }
  if (!ended) return bad(v, "the dynamic table has no DT_NULL end within the file");
  if (!di->has[DT_STRTAB] || !di->has[DT_SYMTAB])
    return bad(v, "no dynamic string or symbol table");
  if (!di->has[DT_STRSZ] || !di->val[DT_STRSZ]) return bad(v, "dynamic string table size missing");
  if (!in_file(v, di->val[DT_STRTAB], di->val[DT_STRSZ], &di->strtab_off))
    return bad(v, "the dynamic string table lies outside the file's loaded bytes");
  if (v->d[di->strtab_off + di->val[DT_STRSZ] - 1] != 0)
    return bad(v, "the dynamic string table does not end with a NUL");
  /* glibc asserts these entry sizes, reading the entry without a NULL check */
  static const struct {
    int table, ent;
    size_t size;
  } ents[] = {{DT_RELA, DT_RELAENT, sizeof(rela_t)},
              {DT_REL, DT_RELENT, sizeof(rel_t)},
              {DT_RELR, DT_RELRENT, sizeof(addr_t)}};
  for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++)
    if (di->has[ents[i].table] && (!di->has[ents[i].ent] || di->val[ents[i].ent] != ents[i].size))
      return bad(v, "a relocation table without its entry size %zu", ents[i].size);
  /* ... and these sizes, when the table is there */
  static const int sized[][2] = {{DT_RELA, DT_RELASZ},
                                 {DT_REL, DT_RELSZ},
                                 {DT_JMPREL, DT_PLTRELSZ},
                                 {DT_JMPREL, DT_PLTREL},
                                 {DT_PLTREL, DT_JMPREL}, /* glibc keys the PLT on DT_PLTREL */
                                 {DT_PLTREL, DT_PLTRELSZ},
                                 {DT_RELR, DT_RELRSZ},
                                 {DT_INIT_ARRAY, DT_INIT_ARRAYSZ},
                                 {DT_FINI_ARRAY, DT_FINI_ARRAYSZ},
                                 {DT_PREINIT_ARRAY, DT_PREINIT_ARRAYSZ}};
  for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++)
    if (di->has[sized[i][0]] && !di->has[sized[i][1]])
      return bad(v, "dynamic entry %d without entry %d, which the loader reads with it",
                 sized[i][0], sized[i][1]);
  if (di->has[DT_PLTREL] && di->val[DT_PLTREL] != DT_RELA && di->val[DT_PLTREL] != DT_REL)
    return bad(v, "DT_PLTREL %llu is neither DT_RELA nor DT_REL",
               (unsigned long long)di->val[DT_PLTREL]);
  if (!di->has[DT_SYMENT] || di->val[DT_SYMENT] != sizeof(sym_t))
    return bad(v, "symbol size %llu, expected %zu", (unsigned long long)di->val[DT_SYMENT],
               sizeof(sym_t));
  for (size_t i = 0; i < n; i++) { /* the string-valued entries */
    dyn_t e;
    memcpy(&e, v->d + off + i * sizeof e, sizeof e);
    if (e.d_tag == DT_NULL) break;
    if ((e.d_tag == DT_NEEDED || e.d_tag == DT_SONAME || e.d_tag == DT_RPATH ||
         e.d_tag == DT_RUNPATH) &&
        !string_ok(v, di, (uint64_t)e.d_un.d_val, "dynamic entry"))
      return 0;
  }
  return 1;
}

/* The symbol count, from the hash tables: every chain a lookup can walk
 * lies in the file, and no bucket count is zero (glibc divides by it). */
static int check_hash(view *v, dyninfo *di) {
  uint64_t off;
  if (!di->has[DT_HASH] && !di->has_gnu_hash) return bad(v, "no symbol hash table");
  if (di->has[DT_HASH]) {
    if (!in_file(v, di->val[DT_HASH], 8, &off)) return bad(v, "DT_HASH outside the file");
    uint64_t nb = rd32(v, off), nc = rd32(v, off + 4);
    if (!nb) return bad(v, "DT_HASH has no buckets");
    if (!in_file(v, di->val[DT_HASH], 8 + 4 * (nb + nc), &off))
      return bad(v, "DT_HASH's buckets and chains run past the file");
    for (uint64_t i = 0; i < nb + nc; i++)
      if (rd32(v, off + 8 + 4 * i) >= nc)
        return bad(v, "DT_HASH entry %llu out of range", (unsigned long long)i);
    di->nsyms = nc;
  }
  if (di->has_gnu_hash) {
    if (!in_file(v, di->gnu_hash, 16, &off)) return bad(v, "DT_GNU_HASH outside the file");
    uint64_t nb = rd32(v, off), symoff = rd32(v, off + 4), nbloom = rd32(v, off + 8);
    if (!nb) return bad(v, "DT_GNU_HASH has no buckets");
    if (!nbloom || (nbloom & (nbloom - 1)))
      return bad(v, "DT_GNU_HASH bloom size %llu is not a power of two",
                 (unsigned long long)nbloom);
    uint64_t head = 16 + nbloom * sizeof(addr_t), len = head + 4 * nb;
    if (!in_file(v, di->gnu_hash, len, &off)) return bad(v, "DT_GNU_HASH runs past the file");
    /* Chains are consecutive and each ends at an entry with bit 0 set: the
     * last one starts at the highest bucket value; the others end before. */
    uint64_t chains = di->gnu_hash + len, nsyms = symoff, top = 0;
    for (uint64_t b = 0; b < nb; b++) {
      uint64_t s = rd32(v, off + head + 4 * b);
      if (s && s < symoff)
        return bad(v, "DT_GNU_HASH bucket %llu below the first symbol", (unsigned long long)b);
      if (s > top) top = s;
    }
    if (top) {
      for (uint64_t k = top;; k++) {
        uint64_t c;
        if (k - symoff > MAX_CHAIN || !in_file(v, chains + 4 * (k - symoff), 4, &c))
          return bad(v, "DT_GNU_HASH chain runs past the file");
        if (rd32(v, c) & 1) {
          nsyms = k + 1;
          break;
        }
      }
      if (!in_file(v, chains, 4 * (nsyms - symoff), &off))
        return bad(v, "DT_GNU_HASH chains run past the file");
    }
    if (!di->has[DT_HASH] || nsyms > di->nsyms) di->nsyms = nsyms;
  }
  if (!in_file(v, di->val[DT_SYMTAB], di->nsyms * sizeof(sym_t), &off))
    return bad(v, "the symbol table (%llu symbols) runs past the file",
               (unsigned long long)di->nsyms);
  for (uint64_t i = 0; i < di->nsyms; i++) {
    sym_t s;
    memcpy(&s, v->d + off + i * sizeof s, sizeof s);
    if (!string_ok(v, di, s.st_name, "symbol name")) return 0;
  }
  return 1;
}

/* Version definitions and needs: lists the loader walks until a zero
 * "next" (it ignores the counts); the highest index they give sizes the
 * table that every symbol's DT_VERSYM entry indexes, unchecked. */
static int check_versions(view *v, dyninfo *di) {
  uint64_t off, high = 0, steps = 0;
  for (uint64_t at = di->verdef; di->has_verdef;) {
    verdef_t d;
    verdaux_t a;
    if (++steps > MAX_VERSIONS || !in_file(v, at, sizeof d, &off))
      return bad(v, "DT_VERDEF runs past the file");
    memcpy(&d, v->d + off, sizeof d);
    if ((d.vd_ndx & 0x7fffu) > high) high = d.vd_ndx & 0x7fffu;
    if (!in_file(v, at + d.vd_aux, sizeof a, &off)) return bad(v, "DT_VERDEF runs past the file");
    memcpy(&a, v->d + off, sizeof a);
    if (!string_ok(v, di, a.vda_name, "version definition")) return 0;
    if (!d.vd_next) break;
    at += d.vd_next;
  }
  for (uint64_t at = di->verneed; di->has_verneed;) {
    verneed_t n;
    if (++steps > MAX_VERSIONS || !in_file(v, at, sizeof n, &off))
      return bad(v, "DT_VERNEED runs past the file");
    memcpy(&n, v->d + off, sizeof n);
    if (!string_ok(v, di, n.vn_file, "version need")) return 0;
    for (uint64_t aux = at + n.vn_aux;;) {
      vernaux_t a;
      if (++steps > MAX_VERSIONS || !in_file(v, aux, sizeof a, &off))
        return bad(v, "DT_VERNEED runs past the file");
      memcpy(&a, v->d + off, sizeof a);
      if (!string_ok(v, di, a.vna_name, "version need")) return 0;
      if ((a.vna_other & 0x7fffu) > high) high = a.vna_other & 0x7fffu;
      if (!a.vna_next) break;
      aux += a.vna_next;
    }
    if (!n.vn_next) break;
    at += n.vn_next;
  }
  di->ver_high = high;
  if (!di->has_versym) return 1;
  if (!high) return bad(v, "DT_VERSYM without version definitions or needs");
  if (!in_file(v, di->versym, 2 * di->nsyms, &off)) return bad(v, "DT_VERSYM runs past the file");
  for (uint64_t i = 0; i < di->nsyms; i++) {
    uint16_t x;
    memcpy(&x, v->d + off + 2 * i, 2);
    if ((x & 0x7fffu) > high)
      return bad(v, "symbol %llu has an unknown version %u", (unsigned long long)i, x & 0x7fffu);
  }
  return 1;
}

/* One relocation: its target is in the image, its symbol exists, and an
 * IFUNC resolver (which the loader calls) is in code. */
static int check_reloc(view *v, const dyninfo *di, uint64_t where, uint64_t info, uint64_t addend,
                       const char *table) {
  /* without text relocations the loader writes only into writable segments */
  int textrel = di->has[DT_TEXTREL] || (di->val[DT_FLAGS] & DF_TEXTREL);
  if (!(textrel ? in_image : in_writable)(v, where, sizeof(addr_t)))
    return bad(v, "%s: relocation at 0x%llx outside the %s segments", table,
               (unsigned long long)where, textrel ? "loaded" : "writable");
#ifdef R_COPY
  if (R_TYPE(info) == R_COPY) return bad(v, "%s: copy relocation in a shared object", table);
#endif
  /* Symbols past the hashed ones (a table that hashes none) are read too:
   * the entry and its name must be in the file. */
  uint64_t sym = R_SYM(info), off;
  if (sym >= di->nsyms) {
    sym_t s;
    if (sym > UINT64_MAX / sizeof s - 1 ||
        !in_file(v, di->val[DT_SYMTAB] + sym * sizeof s, sizeof s, &off))
      return bad(v, "%s: relocation symbol %llu past the file", table, (unsigned long long)sym);
    memcpy(&s, v->d + off, sizeof s);
    if (!string_ok(v, di, s.st_name, "symbol name")) return 0;
    uint16_t x;
    if (di->has_versym) {
      if (!in_file(v, di->versym + 2 * sym, 2, &off))
        return bad(v, "%s: relocation symbol %llu has no DT_VERSYM entry", table,
                   (unsigned long long)sym);
      memcpy(&x, v->d + off, 2);
      if ((x & 0x7fffu) > di->ver_high)
        return bad(v, "%s: relocation symbol %llu has an unknown version", table,
                   (unsigned long long)sym);
    }
  }
#ifdef R_IRELATIVE
  if (R_TYPE(info) == R_IRELATIVE && !in_code(v, addend))
    return bad(v, "%s: IFUNC resolver at 0x%llx is not in code", table, (unsigned long long)addend);
#else
  (void)addend;
#endif
  return 1;
}

/* glibc applies the first DT_RELACOUNT (DT_RELCOUNT) entries as relative
 * relocations and asserts their type, which exits the process. */
static int check_relative(view *v, uint64_t off, uint64_t n, uint64_t count, int rela) {
  /* more would run into a following PLT table, which glibc may merge */
  if (count > n)
    return bad(v, "%llu relative relocations counted, the table has %llu",
               (unsigned long long)count, (unsigned long long)n);
#ifdef R_RELATIVE
  for (uint64_t i = 0; i < count && i < n; i++) {
    uint64_t info;
    if (rela) {
      rela_t r;
      memcpy(&r, v->d + off + i * sizeof r, sizeof r);
      info = r.r_info;
    } else {
      rel_t r;
      memcpy(&r, v->d + off + i * sizeof r, sizeof r);
      info = r.r_info;
    }
    if (R_TYPE(info) != R_RELATIVE)
      return bad(v, "relocation %llu of the %llu counted relative ones is not relative",
                 (unsigned long long)i, (unsigned long long)count);
  }
#else
  (void)v, (void)off, (void)n, (void)count, (void)rela;
#endif
  return 1;
}

static int check_rela(view *v, const dyninfo *di, uint64_t addr, uint64_t size, int rela,
                      const char *table) {
  size_t ent = rela ? sizeof(rela_t) : sizeof(rel_t);
  uint64_t off;
  if (size % ent)
    return bad(v, "%s: size %llu is not a multiple of %zu", table, (unsigned long long)size, ent);
  if (!in_file(v, addr, size, &off)) return bad(v, "%s runs past the file", table);
  uint64_t count = rela ? di->relacount : di->relcount;
  if (!strcmp(table, "DT_JMPREL")) count = 0; /* the count is the RELA/REL table's */
  if (!check_relative(v, off, size / ent, count, rela)) return 0;
  for (uint64_t i = 0; i < size / ent; i++) {
    if (rela) {
      rela_t r;
      memcpy(&r, v->d + off + i * ent, ent);
      if (!check_reloc(v, di, r.r_offset, r.r_info, (uint64_t)r.r_addend, table)) return 0;
    } else {
      rel_t r;
      memcpy(&r, v->d + off + i * ent, ent);
      uint64_t where = r.r_offset, implicit = 0, o2;
      if (in_file(v, where, sizeof(addr_t), &o2)) {
        addr_t a;
        memcpy(&a, v->d + o2, sizeof a);
        implicit = a;
      }
      if (!check_reloc(v, di, where, r.r_info, implicit, table)) return 0;
    }
  }
  return 1;
}

static int check_relr(view *v, uint64_t addr, uint64_t size) {
  uint64_t off;
  if (size % sizeof(addr_t)) return bad(v, "DT_RELR size is not a multiple of %zu", sizeof(addr_t));
  if (!in_file(v, addr, size, &off)) return bad(v, "DT_RELR runs past the file");
  uint64_t where = 0;
  const unsigned bits = 8 * sizeof(addr_t) - 1;
  for (uint64_t i = 0; i < size / sizeof(addr_t); i++) {
    addr_t e;
    memcpy(&e, v->d + off + i * sizeof e, sizeof e);
    if (!(e & 1)) {
      if (!in_image(v, e, sizeof(addr_t))) return bad(v, "DT_RELR address outside the image");
      where = (uint64_t)e + sizeof(addr_t);
      continue;
    }
    for (unsigned b = 1; b <= bits; b++)
      if (((uint64_t)e >> b) & 1 && !in_image(v, where + (b - 1) * sizeof(addr_t), sizeof(addr_t)))
        return bad(v, "DT_RELR bitmap address outside the image");
    where += (uint64_t)bits * sizeof(addr_t);
  }
  return 1;
}

/* The tables the loader relocates, runs and maps: inside the image. */
static int check_tables(view *v, const dyninfo *di) {
  if (di->has[DT_RELA] && !check_rela(v, di, di->val[DT_RELA], di->val[DT_RELASZ], 1, "DT_RELA"))
    return 0;
  if (di->has[DT_REL] && !check_rela(v, di, di->val[DT_REL], di->val[DT_RELSZ], 0, "DT_REL"))
    return 0;
  if (di->has[DT_JMPREL]) {
    if (di->val[DT_PLTREL] != DT_RELA && di->val[DT_PLTREL] != DT_REL)
      return bad(v, "DT_PLTREL %llu is neither DT_RELA nor DT_REL",
                 (unsigned long long)di->val[DT_PLTREL]);
    if (!check_rela(v, di, di->val[DT_JMPREL], di->val[DT_PLTRELSZ], di->val[DT_PLTREL] == DT_RELA,
                    "DT_JMPREL"))
      return 0;
  }
  if (di->has[DT_RELR] && !check_relr(v, di->val[DT_RELR], di->val[DT_RELRSZ])) return 0;
  static const int arrays[][2] = {{DT_INIT_ARRAY, DT_INIT_ARRAYSZ},
                                  {DT_FINI_ARRAY, DT_FINI_ARRAYSZ},
                                  {DT_PREINIT_ARRAY, DT_PREINIT_ARRAYSZ}};
  for (size_t i = 0; i < 3; i++)
    if (di->has[arrays[i][0]] && (di->val[arrays[i][1]] % sizeof(addr_t) ||
                                  !in_image(v, di->val[arrays[i][0]], di->val[arrays[i][1]])))
      return bad(v, "an init/fini array lies outside the image");
  if (di->has[DT_INIT] && !in_code(v, di->val[DT_INIT])) return bad(v, "DT_INIT is not in code");
  if (di->has[DT_FINI] && !in_code(v, di->val[DT_FINI])) return bad(v, "DT_FINI is not in code");
  if (di->has[DT_PLTGOT] && !in_image(v, di->val[DT_PLTGOT], 3 * sizeof(addr_t)))
    return bad(v, "DT_PLTGOT outside the image");
  return 1;
}

int hcl_elf_check(const unsigned char *data, size_t size, char *why, size_t wl) {
  view v = {data, data ? size : 0, 0, 0, why, wl};
  if (why && wl) why[0] = 0;
  ehdr_t eh;
  phdr_t dyn;
  memset(&dyn, 0, sizeof dyn);
  static const dyninfo zero;
  dyninfo di = zero;
  return check_ehdr(&v, &eh) && check_segments(&v, &dyn) && read_dynamic(&v, &dyn, &di) &&
         check_hash(&v, &di) && check_versions(&v, &di) && check_tables(&v, &di);
}
