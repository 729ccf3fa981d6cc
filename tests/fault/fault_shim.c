/* Fault injection for the write-failure tests: an LD_PRELOAD library that
 * makes file operations under one folder fail like a full or broken disk.
 *
 * Counted calls (only on paths under HIERCL_FAULT_DIR): write, writev,
 * pwrite, fsync, fdatasync, close, rename, mkdir, and open/openat that
 * create. The runtime writes every kept byte with write(2) (never stdio's
 * internal writes, which cannot be interposed), so these are all of them.
 *
 *   HIERCL_FAULT_DIR          folder prefix; unset: the shim does nothing
 *   HIERCL_FAULT_AT=K         the K-th counted call (1-based) fails
 *   HIERCL_FAULT_STICKY=1     ... and every counted call after it (a full disk)
 *   HIERCL_FAULT_AFTER_BYTES=N  writes fail once N bytes went under the
 *                             folder (the write crossing N is cut short)
 *   HIERCL_FAULT_ERRNO        ENOSPC (default) or EIO
 *   HIERCL_FAULT_LOG=FILE     one line per counted call: "K op path bytes"
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *g_dir;
static size_t g_dir_len;
static long g_at, g_calls;
static int g_sticky, g_errno = ENOSPC, g_log = -1, g_ready;
static long long g_after = -1, g_bytes;

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

static void setup(void) {
  if (g_ready) return;
  g_ready = 1;
  g_dir = getenv("HIERCL_FAULT_DIR");
  if (g_dir && !*g_dir) g_dir = NULL;
  g_dir_len = g_dir ? strlen(g_dir) : 0;
  const char *v;
  if ((v = getenv("HIERCL_FAULT_AT"))) g_at = atol(v);
  if ((v = getenv("HIERCL_FAULT_STICKY"))) g_sticky = atoi(v);
  if ((v = getenv("HIERCL_FAULT_AFTER_BYTES")) && *v) g_after = atoll(v);
  if ((v = getenv("HIERCL_FAULT_ERRNO")) && !strcmp(v, "EIO")) g_errno = EIO;
  if ((v = getenv("HIERCL_FAULT_LOG")) && *v)
    g_log = REAL(open)(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
}

static int under(const char *path) {
  return g_dir && path && !strncmp(path, g_dir, g_dir_len) &&
         (path[g_dir_len] == '/' || path[g_dir_len] == 0);
}

static int fd_path(int fd, char *out, size_t len) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, out, len - 1);
  if (n < 0) return 0;
  out[n] = 0;
  return 1;
}

/* Count one call on path; 1 when it is to fail. */
static int hit(const char *op, const char *path, size_t bytes) {
  long k = __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
  if (g_log >= 0) {
    char line[4400];
    int n = snprintf(line, sizeof line, "%ld %s %s %zu\n", k, op, path, bytes);
    if (n > 0) {
      ssize_t w = REAL(write)(g_log, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
      (void)w;
    }
  }
  return g_at > 0 && (k == g_at || (g_sticky && k > g_at));
}

static int fd_hit(const char *op, int fd, size_t bytes) {
  setup();
  char p[4096];
  if (!g_dir || !fd_path(fd, p, sizeof p) || !under(p)) return 0;
  return hit(op, p, bytes);
}

ssize_t write(int fd, const void *buf, size_t n) {
  setup();
  char p[4096];
  if (!g_dir || !fd_path(fd, p, sizeof p) || !under(p)) return REAL(write)(fd, buf, n);
  if (hit("write", p, n)) return errno = g_errno, -1;
  size_t ok = n;
  if (g_after >= 0) { /* a disk that holds g_after bytes: the crossing write is cut short */
    long long left = g_after - g_bytes;
    ok = left <= 0 ? 0 : (unsigned long long)left < n ? (size_t)left : n;
  }
  if (n && !ok) return errno = ENOSPC, -1;
  ssize_t w = REAL(write)(fd, buf, ok);
  if (w > 0) g_bytes += w;
  return w;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (fd_hit("pwrite", fd, n)) return errno = g_errno, -1;
  return REAL(pwrite)(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  size_t n = 0;
  for (int i = 0; i < cnt; i++) n += iov[i].iov_len;
  if (fd_hit("writev", fd, n)) return errno = g_errno, -1;
  return REAL(writev)(fd, iov, cnt);
}

int fsync(int fd) {
  if (fd_hit("fsync", fd, 0)) return errno = g_errno, -1;
  return REAL(fsync)(fd);
}

int fdatasync(int fd) {
  if (fd_hit("fdatasync", fd, 0)) return errno = EIO, -1;
  return REAL(fdatasync)(fd);
}

int close(int fd) {
  int fl = fcntl(fd, F_GETFL); /* only descriptors open for writing can lose data */
  if (fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && fd_hit("close", fd, 0)) {
    REAL(close)(fd); /* the descriptor is gone either way, as with a real failure */
    return errno = g_errno, -1;
  }
  return REAL(close)(fd);
}

int rename(const char *from, const char *to) {
  setup();
  if (under(to) && hit("rename", to, 0)) return errno = g_errno, -1;
  return REAL(rename)(from, to);
}

int mkdir(const char *path, mode_t mode) {
  setup();
  if (under(path) && hit("mkdir", path, 0)) return errno = g_errno, -1;
  return REAL(mkdir)(path, mode);
}

static int open_hit(const char *path, int flags) {
  setup();
  return (flags & O_CREAT) && under(path) && hit("open", path, 0);
}

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (open_hit(path, flags)) return errno = g_errno, -1;
  return REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (open_hit(path, flags)) return errno = g_errno, -1;
  return REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (open_hit(path, flags)) return errno = g_errno, -1;
  return REAL(openat)(dirfd, path, flags, mode);
}
