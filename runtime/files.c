/* File and path helpers shared by the runtime's modules (run, sweep,
 * outputs, tune) and the tests. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *hcl_file_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *s = NULL;
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

void hcl_path_stem(const char *path, char *out, size_t len) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  snprintf(out, len, "%s", b);
  char *dot = strrchr(out, '.');
  if (dot && dot != out) *dot = 0;
}

hcl_status hcl_mkdir_p(hcl_ctx *ctx, const char *path) {
  char tmp[PATH_MAX];
  if (strlen(path) >= sizeof tmp) /* never create a truncated path */
    return hcl_fail(ctx, HCL_ERR_CONFIG, "%.80s...: path too long (%zu characters; PATH_MAX = %d)",
                    path, strlen(path), PATH_MAX);
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0777) && errno != EEXIST)
        return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
      *p = '/';
    }
  if (mkdir(tmp, 0777) && errno != EEXIST)
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  return HCL_OK;
}

/* ---- durable writes ------------------------------------------------------ */
/* Every byte the runtime keeps goes through write(2) here (not stdio's
 * buffered writes), so a short write, ENOSPC or EIO is seen at its call and
 * named; the fault-injection tests interpose exactly these calls. */

hcl_status hcl_write_fd(hcl_ctx *ctx, int fd, const void *data, size_t len, const char *path) {
  const char *p = data;
  while (len) {
    ssize_t k = write(fd, p, len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) /* 0 for a non-empty write: the device took nothing */
      return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(k ? errno : EIO));
    p += k;
    len -= (size_t)k;
  }
  return HCL_OK;
}

hcl_status hcl_sync_parent(hcl_ctx *ctx, const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int n = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path)
                : snprintf(dir, sizeof dir, ".");
  if (n <= 0 || (size_t)n >= sizeof dir) snprintf(dir, sizeof dir, "%s", slash == path ? "/" : ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
  /* some file systems cannot sync a folder (EINVAL): nothing more to do there */
  int bad = fsync(fd) && errno != EINVAL && errno != EROFS;
  int e = errno;
  close(fd);
  return bad ? hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(e)) : HCL_OK;
}

int hcl_tmp_name(const char *path, char *tmp, size_t len) {
  const char *slash = strrchr(path, '/');
  int n = slash ? snprintf(tmp, len, "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1)
                : snprintf(tmp, len, ".%s.tmp", path);
  if (n >= 0 && (size_t)n < len) return 0;
  if (len) tmp[0] = 0; /* never a cut name that could be some other file */
  return -1;
}

hcl_status hcl_file_replace(hcl_ctx *ctx, const char *path, const void *data, size_t len) {
  char tmp[PATH_MAX];
  if (hcl_tmp_name(path, tmp, sizeof tmp))
    return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: path longer than PATH_MAX = %d", path,
                    PATH_MAX);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  hcl_status rc = hcl_write_fd(ctx, fd, data, len, path);
  if (rc == HCL_OK && fsync(fd)) /* the bytes are on the disk before the name points at them */
    rc = hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  if (close(fd) && rc == HCL_OK)
    rc = hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  if (rc == HCL_OK && rename(tmp, path))
    rc = hcl_fail(ctx, HCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  if (rc != HCL_OK) {
    unlink(tmp); /* never leave a half-written temporary behind */
    return rc;
  }
  return hcl_sync_parent(ctx, path); /* the rename itself is durable */
}

FILE *hcl_membuf_open(hcl_membuf *m) {
  m->data = NULL;
  m->len = 0;
  m->f = open_memstream(&m->data, &m->len);
  return m->f;
}

hcl_status hcl_membuf_close(hcl_ctx *ctx, hcl_membuf *m) {
  int bad = !m->f || ferror(m->f);
  if (m->f && fclose(m->f)) bad = 1;
  m->f = NULL;
  return bad ? hcl_fail(ctx, HCL_ERR_NOMEM, "out of host memory") : HCL_OK;
}

void hcl_membuf_free(hcl_membuf *m) {
  if (m->f) fclose(m->f);
  free(m->data);
  memset(m, 0, sizeof *m);
}
