/* OpenCL programs: the common library prepended to every source, an
 * on-disk binary cache (ANCHORS 3.2), prebuilt binaries for devices without
 * a compiler, and the record of every program a run builds (`hiercl
 * programs`). The cache is an optimisation only: an entry that is missing, corrupt, not a regular
 * file, another program's (its header carries its key) or refused by the driver is deleted and the
 * program rebuilt from source, so a bad cache never fails a run. */
#include "program_cache.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char clbin_magic[8] = {'H', 'C', 'L', 'C', 'L', 'B', 'I', 'N'};
#define CLBIN_MAX_SIZE ((uint64_t)1 << 31) /* a larger size field is a corrupt header */

static hcl_program_cache_stats g_stats;
/* Worker threads of a sweep build programs at the same time (one ctx each). */
#define STAT_INC(field) __atomic_fetch_add(&g_stats.field, 1, __ATOMIC_RELAXED)

void hcl_program_cache_stats_get(hcl_program_cache_stats *out) { *out = g_stats; }
void hcl_program_cache_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

static int has_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (!strncasecmp(hay, needle, n)) return 1;
  return n == 0;
}

/* PoCL (kcache) and NVIDIA (ComputeCache) keep compiled programs on disk
 * themselves; a second layer on top only costs extra compiles (pyopencl #731). */
static int driver_caches_itself(const hcl_device_info *d) {
  return has_ci(d->platform, "portable computing language") || has_ci(d->platform, "pocl") ||
         has_ci(d->platform_vendor, "pocl") || has_ci(d->platform, "nvidia") ||
         has_ci(d->platform_vendor, "nvidia");
}

int hcl_program_cache_enabled(const hcl_ctx *ctx) {
  if (ctx->cache_policy == HCL_CACHE_ON) return 1;
  if (ctx->cache_policy == HCL_CACHE_OFF) return 0;
  return !driver_caches_itself(&ctx->dev);
}

void hcl_cache_dir(const hcl_ctx *ctx, char *out, size_t len) {
  const char *env = hcl_getenv("HIERCL_CACHE_DIR");
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (env && *env)
    snprintf(out, len, "%s", env);
  else if (ctx && ctx->cache_dir[0])
    snprintf(out, len, "%s", ctx->cache_dir);
  else if (xdg && *xdg)
    snprintf(out, len, "%s/hiercl/clbin", xdg);
  else if (home && *home)
    snprintf(out, len, "%s/.cache/hiercl/clbin", home);
  else if (len)
    out[0] = 0; /* nowhere to cache: programs are built every time */
}

void hcl_program_cache_key(const hcl_device_info *dev, const char *src, const char *options,
                           char key[65]) {
  char format[16];
  snprintf(format, sizeof format, "%u", HCL_CACHE_FORMAT);
  const char *fields[] = {format,        src ? src : "",        options ? options : "",
                          dev->platform, dev->platform_version, dev->name,
                          dev->vendor,   dev->version,          dev->driver};
  hcl_sha256_ctx s;
  hcl_sha256_init(&s);
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    hcl_sha256_update(&s, fields[i], strlen(fields[i]) + 1); /* with its NUL: fields stay apart */
  uint8_t d[32];
  hcl_sha256_final(&s, d);
  hcl_sha256_to_hex(d, key);
}

void hcl_program_cache_key_bytes(const char key[65], unsigned char out[32]) {
  for (int i = 0; i < 32; i++) {
    unsigned v = 0;
    for (int j = 0; j < 2; j++) {
      char c = key[2 * i + j];
      v = v * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    out[i] = (unsigned char)v;
  }
}

void hcl_program_cache_path(const char *dir, const char key[65], char *out, size_t len) {
  snprintf(out, len, "%s/%.2s/%s.clbin", dir, key, key);
}

char *hcl_program_full_source(const char *src) {
  static const char sep[] = "\n#line 1\n"; /* compiler line numbers = the plugin's lines */
  size_t a = strlen(hcl_src_common), b = strlen(src);
  char *full = malloc(a + sizeof sep - 1 + b + 1);
  if (!full) return NULL;
  memcpy(full, hcl_src_common, a);
  memcpy(full + a, sep, sizeof sep - 1);
  memcpy(full + a + sizeof sep - 1, src, b + 1);
  return full;
}

/* ---- .clbin files -------------------------------------------------------- */
static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

enum { ENTRY_OK = 0, ENTRY_MISSING = 1, ENTRY_BAD = 2 };

/* All of n bytes from fd; 0 on a short read or an error. */
static int read_full(int fd, unsigned char *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    got += (size_t)r;
  }
  return 1;
}

/* The whole of a prebuilt file without our header: the vendor's binary as
 * its offline compiler wrote it (aoc, v++), named <key>.clbin. */
static int read_raw(int fd, const struct stat *st, unsigned char **bin, size_t *size, char *why,
                    size_t wl) {
  if (st->st_size == 0 || (uint64_t)st->st_size > CLBIN_MAX_SIZE) {
    snprintf(why, wl, "%lld bytes, not a program binary", (long long)st->st_size);
    return ENTRY_BAD;
  }
  unsigned char *b = malloc((size_t)st->st_size);
  if (!b) {
    snprintf(why, wl, "out of host memory");
    return ENTRY_BAD;
  }
  if (lseek(fd, 0, SEEK_SET) != 0 || !read_full(fd, b, (size_t)st->st_size)) {
    free(b);
    snprintf(why, wl, "read error");
    return ENTRY_BAD;
  }
  *bin = b;
  *size = (size_t)st->st_size;
  return ENTRY_OK;
}

/* Read and check the entry stored for `key`; with allow_raw a file that does
 * not start with the header's magic is taken whole as the binary; on ENTRY_BAD `why` says what is
 * wrong. Opened without blocking and checked to be a regular file: a FIFO or
 * a device in the cache folder must not hang the run. */
static int entry_read(const char *path, const char key[65], int allow_raw, unsigned char **bin,
                      size_t *size, char *why, size_t wl) {
  *bin = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return ENTRY_MISSING;
    snprintf(why, wl, "cannot open: %s", strerror(errno));
    return ENTRY_BAD;
  }
  unsigned char h[HCL_CLBIN_HEADER], want[32];
  struct stat st;
  int rc = ENTRY_BAD;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(why, wl, "not a regular file");
    goto done;
  }
  if (allow_raw &&
      (st.st_size < (off_t)sizeof clbin_magic ||
       (read_full(fd, h, sizeof clbin_magic) && memcmp(h, clbin_magic, sizeof clbin_magic)))) {
    rc = read_raw(fd, &st, bin, size, why, wl);
    goto done;
  }
  if (allow_raw && lseek(fd, 0, SEEK_SET) != 0) {
    snprintf(why, wl, "cannot seek: %s", strerror(errno));
    goto done;
  }
  if (!read_full(fd, h, sizeof h)) {
    snprintf(why, wl, "shorter than its %d-byte header", HCL_CLBIN_HEADER);
    goto done;
  }
  uint64_t n = get64(h + 16);
  if (memcmp(h, clbin_magic, sizeof clbin_magic)) {
    snprintf(why, wl, "bad magic");
    goto done;
  }
  if (get32(h + 8) != HCL_CACHE_FORMAT) {
    snprintf(why, wl, "format %u, expected %u", get32(h + 8), HCL_CACHE_FORMAT);
    goto done;
  }
  hcl_program_cache_key_bytes(key, want);
  if (memcmp(h + 32, want, sizeof want)) {
    snprintf(why, wl, "it holds the binary of another program (key mismatch)");
    goto done;
  }
  if (n == 0 || n > CLBIN_MAX_SIZE || (uint64_t)st.st_size != HCL_CLBIN_HEADER + n) {
    snprintf(why, wl, "size field %llu does not match the file (%lld bytes)", (unsigned long long)n,
             (long long)st.st_size);
    goto done;
  }
  unsigned char *b = malloc((size_t)n);
  if (!b) {
    snprintf(why, wl, "out of host memory");
    goto done;
  }
  if (!read_full(fd, b, (size_t)n)) {
    free(b);
    snprintf(why, wl, "read error");
    goto done;
  }
  if (hcl_crc32(0, b, (size_t)n) != get32(h + 24)) {
    free(b);
    snprintf(why, wl, "checksum mismatch");
    goto done;
  }
  *bin = b;
  *size = (size_t)n;
  rc = ENTRY_OK;
done:
  close(fd);
  return rc;
}

/* mkdir -p of the folder holding `path`. */
static int make_parent_dirs(const char *path) {
  char tmp[2048];
  snprintf(tmp, sizeof tmp, "%s", path);
  char *slash = strrchr(tmp, '/');
  if (!slash) return 0;
  *slash = 0;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Atomic write: a reader sees the old entry, no entry, or the whole new one. */
static int entry_write(const char *path, const char key[65], const unsigned char *bin, size_t size,
                       char *why, size_t wl) {
  if (make_parent_dirs(path) != 0) {
    snprintf(why, wl, "cannot create its folder: %s", strerror(errno));
    return -1;
  }
  char tmp[2100];
  static unsigned long seq; /* threads of one process save entries too */
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lu", path, (long)getpid(),
           __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
  unsigned char h[HCL_CLBIN_HEADER] = {0};
  memcpy(h, clbin_magic, sizeof clbin_magic);
  put32(h + 8, HCL_CACHE_FORMAT);
  put64(h + 16, size);
  put32(h + 24, hcl_crc32(0, bin, size));
  hcl_program_cache_key_bytes(key, h + 32);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    snprintf(why, wl, "cannot create %s: %s", tmp, strerror(errno));
    return -1;
  }
  int ok = fwrite(h, 1, sizeof h, f) == sizeof h && fwrite(bin, 1, size, f) == size;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(why, wl, "cannot write %s: %s", tmp, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

/* ---- building ------------------------------------------------------------- */
/* The build log of prog (malloc'd, NUL-terminated; NULL when there is none). */
static char *build_log(hcl_ctx *ctx, cl_program prog) {
  size_t len = 0;
  if (clGetProgramBuildInfo(prog, ctx->dev.device_id, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) !=
          CL_SUCCESS ||
      !len)
    return NULL;
  char *log = malloc(len + 1);
  if (log && clGetProgramBuildInfo(prog, ctx->dev.device_id, CL_PROGRAM_BUILD_LOG, len, log,
                                   NULL) != CL_SUCCESS)
    len = 0;
  if (log) log[len] = 0;
  return log;
}

/* Some compilers (NVIDIA's) ignore #line. Asked only after a failed build,
 * with a program whose error sits on physical line 5 and logical line 1. */
static int ignores_line_directive(hcl_ctx *ctx) {
  const char *probe = "\n\n\n#line 1\n#error hcl_line_probe\n";
  cl_int cl;
  cl_program p = clCreateProgramWithSource(ctx->context, 1, &probe, NULL, &cl);
  if (cl != CL_SUCCESS) return 0;
  int ignores = 0;
  if (clBuildProgram(p, 1, &ctx->dev.device_id, "", NULL, NULL) != CL_SUCCESS) {
    char *log = build_log(ctx, p);
    ignores = log && strstr(log, ":5:2") != NULL; /* line 5, column 2: "#error" */
    free(log);
  }
  clReleaseProgram(p);
  return ignores;
}

/* Rewrite ":<n>:" to ":<n - offset>:" for n > offset, so the lines of a log
 * from a compiler that ignored #line count from the plugin's first line. */
static char *shift_lines(const char *log, unsigned long offset) {
  size_t cap = strlen(log) + 1;
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t o = 0;
  for (const char *p = log; *p;) {
    if (*p == ':' && p[1] >= '0' && p[1] <= '9') {
      char *end;
      unsigned long n = strtoul(p + 1, &end, 10);
      if (*end == ':' && n > offset) {
        o += (size_t)snprintf(out + o, cap - o, ":%lu", n - offset); /* never longer */
        p = end;
        continue;
      }
    }
    out[o++] = *p++;
  }
  out[o] = 0;
  return out;
}

static hcl_status build_failed(hcl_ctx *ctx, const char *name, cl_program prog, cl_int cl,
                               const char *options, unsigned long line_offset) {
  char *log = build_log(ctx, prog);
  if (log && line_offset && ignores_line_directive(ctx)) {
    char *shifted = shift_lines(log, line_offset);
    if (shifted) {
      free(log);
      log = shifted;
    }
  }
  const char *text = log ? log : "";
  size_t tl = strlen(text);
  while (tl && (text[tl - 1] == '\n' || text[tl - 1] == ' ' || text[tl - 1] == '\r')) tl--;
  char head[1024];
  int hl = snprintf(head, sizeof head, "program '%s' failed to build on %s (%s): %s%s%s%s", name,
                    ctx->dev.id, ctx->dev.name, hcl_strerror(cl),
                    options && *options ? " with options '" : "", options ? options : "",
                    options && *options ? "'" : "");
  hl = hl < 0 ? 0 : (int)strlen(head); /* snprintf returns the untruncated length */
  /* The head of the log names the first error; keep it when the log is long. */
  static const char cut[] = "\n[... build log truncated]";
  size_t room = HCL_ERRMSG_MAX - 1 - (size_t)hl - 1;
  int trunc = tl > room;
  if (trunc) tl = room > sizeof cut ? room - (sizeof cut - 1) : 0;
  hcl_status rc = hcl_fail(ctx, HCL_ERR_BUILD, "%s%s%.*s%s", head, tl ? "\n" : " (no build log)",
                           (int)tl, text, trunc ? cut : "");
  free(log);
  return rc;
}

/* Build from source. */
static hcl_status build_source(hcl_ctx *ctx, const char *name, const char *full,
                               const char *options, cl_program *out) {
  unsigned long offset = 2; /* the lines before the plugin's first: common + "\n#line 1\n" */
  for (const char *c = hcl_src_common; *c; c++) offset += *c == '\n';
  cl_int cl;
  cl_program prog = clCreateProgramWithSource(ctx->context, 1, &full, NULL, &cl);
  if (cl != CL_SUCCESS)
    return hcl_fail(ctx, cl, "program '%s': clCreateProgramWithSource on %s: %s", name, ctx->dev.id,
                    hcl_strerror(cl));
  cl = clBuildProgram(prog, 1, &ctx->dev.device_id, options, NULL, NULL);
  if (cl != CL_SUCCESS) {
    hcl_status rc = build_failed(ctx, name, prog, cl, options, offset);
    clReleaseProgram(prog);
    return rc;
  }
  *out = prog;
  return HCL_OK;
}

/* Load a checked binary; CL_SUCCESS or the driver's refusal (why says where). */
static cl_int build_binary(hcl_ctx *ctx, const unsigned char *bin, size_t size, const char *options,
                           cl_program *out, char *why, size_t wl) {
  cl_int cl, status = CL_SUCCESS;
  cl_program prog =
      clCreateProgramWithBinary(ctx->context, 1, &ctx->dev.device_id, &size, &bin, &status, &cl);
  if (cl == CL_SUCCESS && status != CL_SUCCESS) cl = status;
  if (cl != CL_SUCCESS) {
    snprintf(why, wl, "clCreateProgramWithBinary: %s", hcl_strerror(cl));
    if (prog) clReleaseProgram(prog);
    return cl;
  }
  /* Needed even for binaries (some platforms refuse kernels otherwise). */
  cl = clBuildProgram(prog, 1, &ctx->dev.device_id, options, NULL, NULL);
  if (cl != CL_SUCCESS) {
    snprintf(why, wl, "clBuildProgram of the binary: %s", hcl_strerror(cl));
    clReleaseProgram(prog);
    return cl;
  }
  *out = prog;
  return CL_SUCCESS;
}

/* Save a freshly built program; failures only cost the next run a compile. */
static void cache_save(hcl_ctx *ctx, const char *name, cl_program prog, const char *path,
                       const char key[65]) {
  char why[2300] = "";
  /* Some drivers (Mali) compile lazily at clCreateKernel: force it so the
   * saved binary holds the compiled code (viennacl-dev PR #225). */
  cl_uint nk = 0;
  if (clCreateKernelsInProgram(prog, 0, NULL, &nk) == CL_SUCCESS && nk) {
    cl_kernel *ks = calloc(nk, sizeof *ks);
    if (ks && clCreateKernelsInProgram(prog, nk, ks, NULL) == CL_SUCCESS)
      for (cl_uint i = 0; i < nk; i++) clReleaseKernel(ks[i]);
    free(ks);
  }
  size_t size = 0;
  unsigned char *bin = NULL;
  cl_int cl = clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL);
  if (cl != CL_SUCCESS || size == 0) {
    snprintf(why, sizeof why, "the driver gives no binary (%s)", hcl_strerror(cl));
  } else if (!(bin = malloc(size))) {
    snprintf(why, sizeof why, "out of host memory");
  } else if ((cl = clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL)) !=
             CL_SUCCESS) {
    snprintf(why, sizeof why, "clGetProgramInfo(CL_PROGRAM_BINARIES): %s", hcl_strerror(cl));
  } else if (entry_write(path, key, bin, size, why, sizeof why) == 0) {
    STAT_INC(saves);
    hcl_log(ctx, HCL_LOG_DEBUG, "program cache SAVE '%s' %s (%zu bytes)", name, path, size);
    free(bin);
    return;
  }
  free(bin);
  static int warned; /* once per process: a read-only cache would repeat it per program */
  if (!warned++)
    hcl_log(ctx, HCL_LOG_WARN, "program cache: cannot save '%s' to %s: %s", name, path, why);
}

/* Devices without a compiler (FPGA boards), and any device with
 * compilation disabled, load <binary_dir>/<key>.clbin: either the vendor's
 * binary as its offline compiler wrote it, or a .clbin with our header. */
static hcl_status load_prebuilt(hcl_ctx *ctx, const char *name, const char *key,
                                const char *options, cl_program *out) {
  char path[2048], why[512] = "missing";
  if (!ctx->binary_dir[0]) snprintf(why, sizeof why, "no binary directory is set");
  snprintf(path, sizeof path, "%s/%s.clbin", ctx->binary_dir[0] ? ctx->binary_dir : "<binary_dir>",
           key);
  unsigned char *bin = NULL;
  size_t size = 0;
  if (ctx->binary_dir[0]) {
    int e = entry_read(path, key, 1, &bin, &size, why, sizeof why);
    if (e == ENTRY_OK) {
      cl_int cl = build_binary(ctx, bin, size, options, out, why, sizeof why);
      free(bin);
      if (cl == CL_SUCCESS) {
        STAT_INC(prebuilt);
        hcl_log(ctx, HCL_LOG_DEBUG, "program '%s': prebuilt binary %s", name, path);
        return HCL_OK;
      }
    }
  }
  return hcl_fail(ctx, HCL_ERR_UNSUPPORTED,
                  "program '%s' (key %s): device %s (%s) %s and needs the prebuilt binary %s "
                  "(%s); `hiercl programs CONFIG --device %s --export DIR` writes every program "
                  "of the run (DIR/<key>.cl, its options and programs.tsv) to compile offline "
                  "into [runtime] binary_dir",
                  name, key, ctx->dev.id, ctx->dev.name,
                  ctx->dev.compiler_available ? "has compilation disabled (HIERCL_NO_COMPILE)"
                                              : "has no OpenCL compiler",
                  path, why, ctx->dev.id);
}

/* ---- recording programs (hiercl programs) -------------------------------- */
/* One field of a programs.tsv line: tabs and line breaks become spaces (the
 * exact options are in <key>.options). */
static void tsv_field(FILE *f, const char *s) {
  for (; *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

/* 1 when programs.tsv (text) already lists key (at the start of a line). */
static int tsv_has(const char *text, const char *key) {
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, key, 64) && p[64] == '\t') return 1;
  return 0;
}

/* Append one line to <dir>/programs.tsv (with the header when it is new). */
static hcl_status tsv_append(hcl_ctx *ctx, const char *path, const char *key, const char *name,
                             const hcl_device_info *dev, const char *options) {
  hcl_membuf mb;
  FILE *f = hcl_membuf_open(&mb);
  if (!f) return hcl_fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0)
    fputs("key\tfile\tprogram\tdevice\toptions\n", f);
  fprintf(f, "%s\t%s.clbin\t", key, key);
  tsv_field(f, name);
  fputc('\t', f);
  tsv_field(f, dev->id);
  fputc('\t', f);
  tsv_field(f, options);
  fputc('\n', f);
  hcl_status rc = hcl_membuf_close(ctx, &mb);
  if (rc == HCL_OK && fd < 0)
    rc = hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  if (rc == HCL_OK) rc = hcl_write_fd(ctx, fd, mb.data, mb.len, path); /* one write: one line */
  if (fd >= 0 && close(fd) && rc == HCL_OK)
    rc = hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  hcl_membuf_free(&mb);
  return rc;
}

/* Record a program in ctx->export_dir: <key>.cl (the text compiled),
 * <key>.options, and a programs.tsv line, the commit (a program already
 * listed is skipped, so rebuilding or a second run adds nothing). Keyed for
 * ctx->export_dev when the dry run stands in for a device without a compiler. */
static hcl_status export_program(hcl_ctx *ctx, const char *name, const char *full,
                                 const char *options) {
  const hcl_device_info *dev = ctx->export_dev ? ctx->export_dev : &ctx->dev;
  char key[65], tsv[1100], path[1100];
  hcl_program_cache_key(dev, full, options, key);
  HCL_TRY(hcl_mkdir_p(ctx, ctx->export_dir));
  snprintf(tsv, sizeof tsv, "%s/programs.tsv", ctx->export_dir);
  char *text = hcl_file_text(tsv);
  int listed = tsv_has(text, key);
  free(text);
  if (listed) return HCL_OK;
  snprintf(path, sizeof path, "%s/%s.cl", ctx->export_dir, key);
  HCL_TRY(hcl_file_replace(ctx, path, full, strlen(full)));
  snprintf(path, sizeof path, "%s/%s.options", ctx->export_dir, key);
  HCL_TRY(hcl_file_replace(ctx, path, options, strlen(options)));
  HCL_TRY(tsv_append(ctx, tsv, key, name, dev, options));
  STAT_INC(exported);
  hcl_log(ctx, HCL_LOG_INFO, "program '%s' recorded as %s/%s.cl", name, ctx->export_dir, key);
  return HCL_OK;
}

/* The program of key built earlier on ctx (a new reference), or NULL. */
static cl_program memo_find(hcl_ctx *ctx, const char key[65]) {
  for (size_t i = 0; ctx->memo_programs && i < ctx->n_memo; i++)
    if (!strcmp(ctx->memo[i].key, key) && clRetainProgram(ctx->memo[i].prog) == CL_SUCCESS) {
      ctx->memo_reused++;
      return ctx->memo[i].prog;
    }
  return NULL;
}

/* Keep a reference to a program just built for ctx's later runs (memory
 * permitting: without it the next run builds it again). */
static void memo_keep(hcl_ctx *ctx, const char key[65], cl_program prog) {
  if (!ctx->memo_programs) return;
  ctx->memo_built++;
  if (ctx->n_memo && ctx->n_memo >= ctx->memo_max) { /* options that vary per point: oldest goes */
    clReleaseProgram(ctx->memo[0].prog);
    memmove(ctx->memo, ctx->memo + 1, --ctx->n_memo * sizeof *ctx->memo);
  }
  struct hcl_memo_program *m = realloc(ctx->memo, (ctx->n_memo + 1) * sizeof *m);
  if (!m) return;
  ctx->memo = m;
  if (clRetainProgram(prog) != CL_SUCCESS) return;
  memcpy(m[ctx->n_memo].key, key, 65);
  m[ctx->n_memo++].prog = prog;
}

static hcl_status build_uncached(hcl_ctx *ctx, const char *name, const char *full,
                                 const char *options, const char *key, cl_program *out);

hcl_status hcl_program_build(hcl_ctx *ctx, const char *name, const char *src, const char *options,
                             cl_program *out) {
  *out = NULL;
  if (!name) name = "program";
  if (!src) return hcl_fail(ctx, HCL_ERR_PARAM, "program '%s': no source", name);
  if (!options) options = "";
  char *full = hcl_program_full_source(src);
  if (!full) return hcl_fail(ctx, HCL_ERR_NOMEM, "program '%s': out of host memory", name);
  char key[65];
  hcl_program_cache_key(&ctx->dev, full, options, key);
  if ((*out = memo_find(ctx, key))) {
    hcl_log(ctx, HCL_LOG_DEBUG, "program '%s' reused (built earlier on this device)", name);
    free(full);
    return HCL_OK;
  }
  hcl_status rc = build_uncached(ctx, name, full, options, key, out);
  free(full);
  if (rc == HCL_OK) memo_keep(ctx, key, *out);
  return rc;
}

/* hcl_program_build without the memo: full is the source as compiled. */
static hcl_status build_uncached(hcl_ctx *ctx, const char *name, const char *full,
                                 const char *options, const char *key, cl_program *out) {
  hcl_status rc;
  if (ctx->export_dir[0] && (rc = export_program(ctx, name, full, options)) != HCL_OK) {
    return rc;
  }
  if (!ctx->dev.compiler_available || ctx->no_compile) {
    rc = load_prebuilt(ctx, name, key, options, out);
    return rc;
  }

  char dir[1024], path[2048] = "";
  int use = hcl_program_cache_enabled(ctx);
  if (use) {
    hcl_cache_dir(ctx, dir, sizeof dir);
    use = dir[0] != 0;
  }
  if (!use) {
    STAT_INC(uncached);
    rc = build_source(ctx, name, full, options, out);
    return rc;
  }
  hcl_program_cache_path(dir, key, path, sizeof path);
  unsigned char *bin = NULL;
  size_t size = 0;
  char why[512] = "";
  int e = entry_read(path, key, 0, &bin, &size, why, sizeof why);
  if (e == ENTRY_OK) {
    cl_int cl = build_binary(ctx, bin, size, options, out, why, sizeof why);
    free(bin);
    if (cl == CL_SUCCESS) {
      STAT_INC(hits);
      hcl_log(ctx, HCL_LOG_DEBUG, "program cache HIT '%s' %s", name, path);
      return HCL_OK;
    }
    e = ENTRY_BAD;
  }
  if (e == ENTRY_BAD) {
    STAT_INC(rejected);
    hcl_log(ctx, HCL_LOG_INFO, "program cache: deleting %s (%s); rebuilding '%s'", path, why, name);
    remove(path);
  } else {
    STAT_INC(misses);
    hcl_log(ctx, HCL_LOG_DEBUG, "program cache MISS '%s' %s", name, path);
  }
  rc = build_source(ctx, name, full, options, out);
  if (rc == HCL_OK) cache_save(ctx, name, *out, path, key);
  return rc;
}

hcl_status hcl_kernel_create(hcl_ctx *ctx, cl_program prog, const char *name, cl_kernel *out) {
  cl_int cl;
  *out = clCreateKernel(prog, name, &cl);
  if (cl == CL_SUCCESS) return HCL_OK;
  *out = NULL;
  char names[1024] = "";
  if (clGetProgramInfo(prog, CL_PROGRAM_KERNEL_NAMES, sizeof names - 1, names, NULL) != CL_SUCCESS)
    names[0] = 0;
  return hcl_fail(ctx, cl, "kernel '%s' on %s: %s%s%s%s", name ? name : "(null)", ctx->dev.id,
                  hcl_strerror(cl), names[0] ? " (the program has: " : "", names,
                  names[0] ? ")" : "");
}
