/*
 * kernel_source.c - the source text of each OpenCL program: the copy embedded at build time, or,
 * for kernel development, the files under a kernel directory with `#include "x.clh"` resolved the
 * same way the build step does (each header once per program).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels_embedded.h"

const char *asp_program_file(asp_program_family family) {
  switch (family) {
    case ASP_PROGRAM_ENTMAX_ROWS:
      return "entmax_rows.cl";
    case ASP_PROGRAM_ATTN_FORWARD:
      return "attn_forward.cl";
    case ASP_PROGRAM_ATTN_BACKWARD:
      return "attn_backward.cl";
    case ASP_PROGRAM_SOFTMAX_FLASH:
      return "softmax_flash.cl";
    case ASP_PROGRAM_UTILITY:
      return "utility.cl";
    case ASP_PROGRAM_ATTN_DECODE:
      return "attn_decode.cl";
    case ASP_PROGRAM_ATTN_SHARD:
      return "attn_shard.cl";
    case ASP_PROGRAM_ATTN_DENSE:
      return "attn_dense.cl";
    case ASP_PROGRAM_ATTN_ALPHA:
      return "attn_alpha.cl";
    case ASP_PROGRAM_FAMILY_COUNT:
      break;
  }
  return NULL;
}

typedef struct asp_text {
  char *data;
  size_t length, capacity;
} asp_text;

static int asp_text_append(asp_text *t, const char *s, size_t n) {
  if (t->length + n + 1 > t->capacity) {
    size_t cap = t->capacity ? t->capacity : 4096;
    while (cap < t->length + n + 1) cap *= 2;
    char *p = (char *)realloc(t->data, cap);
    if (!p) return -1;
    t->data = p;
    t->capacity = cap;
  }
  memcpy(t->data + t->length, s, n);
  t->length += n;
  t->data[t->length] = '\0';
  return 0;
}

static char *asp_read_file(const char *path, size_t *length) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  asp_text t = {0};
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (asp_text_append(&t, buf, n) != 0) {
      free(t.data);
      fclose(f);
      return NULL;
    }
  fclose(f);
  if (!t.data && asp_text_append(&t, "", 0) != 0) return NULL;
  *length = t.length;
  return t.data;
}

/* Appends file `name` from dir with its includes resolved; seen holds names already included. */
static adasplash_status asp_resolve(const adasplash_context *ctx, const char *dir, const char *name,
                                    asp_text *out, char (*seen)[64], int *seen_count, int depth) {
  for (int i = 0; i < *seen_count; ++i)
    if (strcmp(seen[i], name) == 0) return ADASPLASH_SUCCESS;
  if (depth > 16 || *seen_count >= 64)
    return asp_fail(ctx, ADASPLASH_ERROR_BUILD_FAILED, "kernel includes nest too deeply at %s",
                    name);
  asp_strlcpy(seen[(*seen_count)++], name, 64);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  size_t len = 0;
  char *text = asp_read_file(path, &len);
  if (!text)
    return asp_fail(ctx, ADASPLASH_ERROR_BUILD_FAILED, "cannot read kernel source %s", path);
  adasplash_status st = ADASPLASH_SUCCESS;
  const char *line = text;
  while (*line && st == ADASPLASH_SUCCESS) {
    const char *eol = strchr(line, '\n');
    size_t n = eol ? (size_t)(eol - line) + 1 : strlen(line);
    const char *p = line;
    while (*p == ' ' || *p == '\t') ++p;
    int handled = 0;
    if (*p == '#') {
      ++p;
      while (*p == ' ' || *p == '\t') ++p;
      if (strncmp(p, "include", 7) == 0) {
        p += 7;
        while (*p == ' ' || *p == '\t') ++p;
        const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (close && close < line + n) {
          char inc[64];
          size_t il = (size_t)(close - p - 1);
          if (il >= sizeof inc) {
            st = asp_fail(ctx, ADASPLASH_ERROR_BUILD_FAILED, "include name too long in %s", path);
            break;
          }
          memcpy(inc, p + 1, il);
          inc[il] = '\0';
          char mark[128];
          snprintf(mark, sizeof mark, "/* begin %s */\n", inc);
          if (asp_text_append(out, mark, strlen(mark)) != 0)
            st = ADASPLASH_ERROR_OUT_OF_HOST_MEMORY;
          if (st == ADASPLASH_SUCCESS)
            st = asp_resolve(ctx, dir, inc, out, seen, seen_count, depth + 1);
          snprintf(mark, sizeof mark, "/* end %s */\n", inc);
          if (st == ADASPLASH_SUCCESS && asp_text_append(out, mark, strlen(mark)) != 0)
            st = ADASPLASH_ERROR_OUT_OF_HOST_MEMORY;
          handled = 1;
        }
      }
    }
    if (!handled && asp_text_append(out, line, n) != 0) st = ADASPLASH_ERROR_OUT_OF_HOST_MEMORY;
    line += n;
  }
  free(text);
  if (st == ADASPLASH_ERROR_OUT_OF_HOST_MEMORY)
    return asp_fail(ctx, st, "out of host memory assembling kernel source %s", name);
  return st;
}

adasplash_status asp_kernel_source(const adasplash_context *ctx, asp_program_family family,
                                   char **text, size_t *length) {
  const char *file = asp_program_file(family);
  if (!file)
    return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "unknown program family %d", (int)family);
  if (ctx->kernel_dir[0]) {
    asp_text out = {0};
    char seen[64][64];
    int seen_count = 0;
    adasplash_status st = asp_resolve(ctx, ctx->kernel_dir, file, &out, seen, &seen_count, 0);
    if (st != ADASPLASH_SUCCESS) {
      free(out.data);
      return st;
    }
    *text = out.data;
    *length = out.length;
    return ADASPLASH_SUCCESS;
  }
  for (unsigned i = 0; i < asp_embedded_program_count; ++i) {
    if (strcmp(asp_embedded_programs[i].file, file) == 0) {
      size_t n = asp_embedded_programs[i].length;
      char *copy = (char *)malloc(n + 1);
      if (!copy) return asp_fail(ctx, ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "copying kernel source");
      memcpy(copy, asp_embedded_programs[i].text, n + 1);
      *text = copy;
      *length = n;
      return ADASPLASH_SUCCESS;
    }
  }
  return asp_fail(ctx, ADASPLASH_ERROR_INTERNAL, "program %s is not embedded", file);
}
