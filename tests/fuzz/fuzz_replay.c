/*
 * fuzz_replay.c - runs fuzz inputs through the libFuzzer target without libFuzzer, so that any
 * compiler builds it and CTest replays the corpus (seeds and saved crash inputs) in every build.
 * Usage: fuzz_replay [--min-files N] FILE_OR_DIR...; directories are read one level deep. Fails
 * when fewer than N files were replayed (a missing corpus must not pass), exits 77 (skipped) when
 * there is no OpenCL device. A property violation aborts inside the target, naming it.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adasplash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("FAIL: cannot open %s\n", path);
    return 0;
  }
  static uint8_t buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, n);
  return 1;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Replays the regular files of dir in name order; returns how many. */
static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  char **names = NULL;
  size_t count = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (count == cap) {
      cap = cap ? 2 * cap : 64;
      char **grown = (char **)realloc(names, cap * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    names[count] = (char *)malloc(len);
    snprintf(names[count], len, "%s/%s", dir, e->d_name);
    ++count;
  }
  closedir(d);
  qsort(names, count, sizeof *names, compare_names);
  int replayed = 0;
  for (size_t i = 0; i < count; ++i) {
    struct stat st;
    if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) replayed += replay_file(names[i]);
    free(names[i]);
  }
  free(names);
  return replayed;
}

int main(int argc, char **argv) {
  long min_files = 1;
  int replayed = 0, first = 1;
  if (argc > 2 && strcmp(argv[1], "--min-files") == 0) {
    min_files = strtol(argv[2], NULL, 10);
    first = 3;
  }
  adasplash_context *probe = NULL;
  if (adasplash_context_create(NULL, &probe) != ADASPLASH_SUCCESS) {
    printf("SKIP: no OpenCL device\n");
    return 77;
  }
  adasplash_context_release(probe);
  for (int i = first; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      printf("FAIL: %s does not exist\n", argv[i]);
      return 1;
    }
    replayed += S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
  }
  printf("fuzz_replay: %d inputs replayed, every property held\n", replayed);
  if (replayed < min_files) {
    printf("FAIL: %d inputs replayed, expected at least %ld\n", replayed, min_files);
    return 1;
  }
  return 0;
}
