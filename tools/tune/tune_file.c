/*
 * tune_file.c - writing and reading the tuned-parameters file, and key lookup in tuning texts
 * (see tune_file.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "tune_file.h"

#include "adasplash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p of the directory part of path. */
static int tune_make_parents(const char *path, char *why, size_t why_size) {
  char dir[4096];
  size_t n = strlen(path);
  if (n >= sizeof dir) {
    snprintf(why, why_size, "path too long: %s", path);
    return -1;
  }
  memcpy(dir, path, n + 1);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  for (char *p = dir + 1;; ++p) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    struct stat st;
    if (mkdir(dir, 0755) != 0 && !(stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
      snprintf(why, why_size, "cannot create directory %s: %s", dir, strerror(errno));
      return -1;
    }
    if (c == '\0') break;
    *p = c;
  }
  return 0;
}

int tune_file_write(const char *path, const char *text, char *why, size_t why_size) {
  if (tune_make_parents(path, why, why_size) != 0) return -1;
  char tmp[4200];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    snprintf(why, why_size, "path too long: %s", path);
    return -1;
  }
  int fd = mkstemp(tmp);
  if (fd < 0) {
    snprintf(why, why_size, "cannot create a file next to %s: %s", path, strerror(errno));
    return -1;
  }
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    snprintf(why, why_size, "fdopen %s: %s", tmp, strerror(errno));
    close(fd);
    remove(tmp);
    return -1;
  }
  size_t len = strlen(text);
  int ok = fwrite(text, 1, len, f) == len;
  ok = (fclose(f) == 0) && ok;
  if (ok) {
    chmod(tmp, 0644);
    ok = rename(tmp, path) == 0;
  }
  if (!ok) {
    snprintf(why, why_size, "writing %s failed: %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

int tune_file_read(const char *path, char *text, size_t size, char *why, size_t why_size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, why_size, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  size_t n = fread(text, 1, size - 1, f);
  text[n] = '\0';
  fclose(f);
  return 0;
}

typedef struct tune_items {
  tune_item_fn fn;
  void *arg;
} tune_items;

static int tune_items_one(const char *key, const char *value, void *arg) {
  const tune_items *t = (const tune_items *)arg;
  if (!value) {
    t->fn(key, 0, 0, t->arg);
    return 0;
  }
  char *end = NULL;
  errno = 0;
  long v = strtol(value, &end, 10);
  t->fn(key, v, errno == 0 && end != value && *end == '\0', t->arg);
  return 0;
}

/* The library's own scanner, so the tool reads the text exactly as it does. */
void tune_text_items(const char *text, tune_item_fn fn, void *arg) {
  tune_items t = {fn, arg};
  adasplash_tuning_scan(text, tune_items_one, &t);
}

typedef struct tune_lookup {
  const char *key;
  long value;
  int found;
} tune_lookup;

static void tune_lookup_item(const char *key, long value, int ok, void *arg) {
  tune_lookup *l = (tune_lookup *)arg;
  if (ok && strcmp(key, l->key) == 0) {
    l->value = value;
    l->found = 1;
  }
}

int tune_text_value(const char *text, const char *key, long *value) {
  tune_lookup l = {key, 0, 0};
  tune_text_items(text, tune_lookup_item, &l);
  if (l.found) *value = l.value;
  return l.found;
}
