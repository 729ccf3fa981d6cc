/* Minimal JSON output helpers: enough for manifests and metrics lines. Every
 * string written is valid JSON whatever the bytes given: control characters
 * are escaped and bytes that are not well-formed UTF-8 (configs, file names)
 * become U+FFFD, one per byte, so a reader never rejects the file. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t hcl_utf8_seq(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  /* the ranges of the second byte exclude overlong forms, UTF-16 surrogates
   * (ED A0..BF) and code points above U+10FFFF (Unicode 3.9, table 3-7) */
  unsigned char lo = 0x80, hi = 0xBF;
  size_t n;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (p[1] < lo || p[1] > hi) return 0; /* also stops at the terminating NUL */
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return n;
}

int hcl_utf8_valid(const char *s) {
  for (size_t n; s && *s; s += n)
    if (!(n = hcl_utf8_seq(s))) return 0;
  return 1;
}

void hcl_json_str(FILE *f, const char *s) {
  fputc('"', f);
  const char *p = s ? s : "";
  while (*p) {
    unsigned char c = (unsigned char)*p;
    size_t n = hcl_utf8_seq(p);
    if (n == 0) {
      fputs("\\ufffd", f);
      p++;
      continue;
    }
    if (n > 1) {
      fwrite(p, 1, n, f);
      p += n;
      continue;
    }
    switch (c) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (c < 0x20 || c == 0x7F)
        fprintf(f, "\\u%04x", c);
      else
        fputc(c, f);
    }
    p++;
  }
  fputc('"', f);
}

void hcl_json_num(FILE *f, double v) {
  if (!isfinite(v))
    fputs("null", f);
  else if (v == (double)(long long)v && fabs(v) < 1e15)
    fprintf(f, "%lld", (long long)v);
  else
    fprintf(f, "%.9g", v);
}

int hcl_json_get_num(const char *text, const char *key, double *v) {
  char pat[96];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(text, pat);
  if (!p) return 0;
  p += strlen(pat);
  if (!strncmp(p, "null", 4)) {
    *v = NAN;
    return 1;
  }
  char *end;
  *v = strtod(p, &end);
  return end != p;
}
