/*
 * test_cache.c - the on-disk program cache seen through the public API, with the row-entmax f32
 * program only (PoCL serialises program binaries slowly, so few programs are built):
 *  - a first context builds and writes one entry; a second context loads it (disk_hits, builds==0);
 *  - corrupt entries (flipped payload byte, truncated, zero-length, bad magic, a well-formed entry
 *    whose payload the driver refuses) are rejected, rebuilt and rewritten, and results stay right;
 *  - an unwritable cache directory (a path under a regular file) still works without writes;
 *  - "off" / "" / ADASPLASH_CACHE_DIR=off disable the cache; the directory resolution order;
 *  - 4 processes preparing the same variant at once into one fresh directory leave exactly one
 *    valid entry (and no temp files) that a later context loads.
 * `test_cache --race N` (CTest robustness_cache: N = 8) runs only the racing processes, with N of
 * them, and entries made for another device (another key) under this device's name, which must be
 * rejected and rebuilt, never loaded.
 * The test runs itself as the child processes: test_cache --child <dir> <ready fd> <go fd>.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reference.h"
#include "sha256.h"
#include "test_util.h"

#ifndef ADASPLASH_TEST_DISK_CACHE_DEFAULT
#define ADASPLASH_TEST_DISK_CACHE_DEFAULT 1
#endif

#define ROWS 5
#define COLS 33
#define N (ROWS * COLS)
#define HEADER_BYTES 88  /* src/disk_cache.h: magic, version, header size, length, key, sha256 */
#define PROCESSES 4      /* the default run */
#define MAX_PROCESSES 16 /* --race N */

static float g_x[N];
static double g_ref[N];
static float g_baseline[N]; /* output of the first (uncorrupted) run */
static int g_have_baseline;

static void make_problem(void) {
  ref_rng rng;
  ref_rng_seed(&rng, 7);
  double z[COLS];
  for (int r = 0; r < ROWS; ++r) {
    for (int j = 0; j < COLS; ++j) {
      g_x[r * COLS + j] = (float)(2.0 * ref_rng_normal(&rng));
      z[j] = g_x[r * COLS + j];
    }
    ref_entmax_row(z, NULL, COLS, 1.5, g_ref + r * COLS);
  }
}

static void small_desc(adasplash_entmax_desc *d) {
  adasplash_entmax_desc_init(d);
  d->dtype = ADASPLASH_F32;
  d->rows = ROWS;
  d->cols = COLS;
  d->alpha = 1.5f;
}

/* ---- files ------------------------------------------------------------------------------------
 */

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

/* out = a + "/" + b; a path that does not fit ends the test. */
static void path_join(char *out, size_t size, const char *a, const char *b) {
  int n = snprintf(out, size, "%s/%s", a, b);
  if (n < 0 || (size_t)n >= size) {
    printf("FAIL: path too long: %s/%s\n", a, b);
    exit(1);
  }
}

/* Counts "*.aspbin" entries and "*.tmp.*" leftovers in dir; the last entry's path goes to path. */
static int count_entries(const char *dir, int *tmp_files, char *path, size_t path_size) {
  int entries = 0;
  if (tmp_files) *tmp_files = 0;
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (has_suffix(e->d_name, ".aspbin")) {
      ++entries;
      if (path) path_join(path, path_size, dir, e->d_name);
    } else if (strstr(e->d_name, ".tmp.") && tmp_files) {
      ++*tmp_files;
    }
  }
  closedir(d);
  return entries;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_tree(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Reads the whole file (malloc'd); NULL on failure. */
static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *size = (size_t)n;
  return buf;
}

static int write_file(const char *path, const unsigned char *buf, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int ok = fwrite(buf, 1, size, f) == size;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* ---- one context's life -----------------------------------------------------------------------
 */

typedef struct run_result {
  adasplash_status status;
  adasplash_cache_stats stats;
  float y[N];
  double err; /* max |y - reference| */
} run_result;

/* Creates a context (cache_dir as the option; use_option 0 leaves it NULL so the environment
 * decides), prepares the f32 row program, runs a small forward and collects the cache stats. */
static void run_context(const char *cache_dir, int use_option, run_result *out) {
  memset(out, 0, sizeof *out);
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  if (use_option) o.cache_dir = cache_dir;
  adasplash_context *ctx = test_context(&o);
  adasplash_entmax_desc d;
  small_desc(&d);
  adasplash_status st = adasplash_entmax_prepare(ctx, &d);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_entmax_forward_host(ctx, &d, g_x, out->y, NULL, NULL, NULL);
  if (st != ADASPLASH_SUCCESS) {
    char msg[4096];
    adasplash_get_last_error(ctx, msg, sizeof msg, NULL);
    printf("  %s: %s\n", adasplash_status_string(st), msg);
  }
  out->status = st;
  out->stats.struct_size = sizeof out->stats;
  adasplash_context_get_cache_stats(ctx, &out->stats);
  adasplash_context_release(ctx);
  out->err = 0.0;
  for (int i = 0; i < N; ++i) {
    double e = fabs((double)out->y[i] - g_ref[i]);
    if (!(e <= out->err)) out->err = isnan(e) ? INFINITY : e;
  }
}

static void print_stats(const char *label, const adasplash_cache_stats *s) {
  printf("  %s: builds %lu, disk hits %lu, misses %lu, rejected %lu, writes %lu, dir \"%s\"\n",
         label, s->builds, s->disk_hits, s->disk_misses, s->disk_rejected, s->disk_writes,
         s->cache_dir);
}

static void check_results(const char *label, const run_result *r) {
  test_check(r->status == ADASPLASH_SUCCESS, "%s: prepare and forward succeed (%s)", label,
             adasplash_status_string(r->status));
  test_check(r->err < 1e-5, "%s: results match the reference (max err %.3g)", label, r->err);
  if (g_have_baseline)
    test_check(memcmp(r->y, g_baseline, sizeof g_baseline) == 0,
               "%s: results identical to the uncorrupted run", label);
}

/* ---- the tests --------------------------------------------------------------------------------
 */

static void test_store_and_load(const char *dir, char *entry, size_t entry_size) {
  run_result r;
  run_context(dir, 1, &r);
  print_stats("first context", &r.stats);
  check_results("first context", &r);
  memcpy(g_baseline, r.y, sizeof g_baseline);
  g_have_baseline = r.status == ADASPLASH_SUCCESS;
  test_check(strcmp(r.stats.cache_dir, dir) == 0, "first context: cache_dir is the option (%s)",
             r.stats.cache_dir);
  test_check(r.stats.builds >= 1, "first context: built from source (builds=%lu)", r.stats.builds);
  test_check(r.stats.disk_misses >= 1, "first context: disk miss (misses=%lu)",
             r.stats.disk_misses);
  test_check(r.stats.disk_writes >= 1, "first context: entry written (writes=%lu)",
             r.stats.disk_writes);
  test_check(r.stats.disk_hits == 0, "first context: no disk hit in a fresh directory");
  int tmp = 0;
  int n = count_entries(dir, &tmp, entry, entry_size);
  test_check(n == 1 && tmp == 0, "one entry in the (created) directory, no temp files (%d, %d)", n,
             tmp);
  test_check(file_size(entry) > HEADER_BYTES, "the entry holds a payload (%ld bytes)",
             file_size(entry));

  run_context(dir, 1, &r);
  print_stats("second context", &r.stats);
  check_results("second context", &r);
  test_check(r.stats.disk_hits >= 1, "second context: loaded from disk (hits=%lu)",
             r.stats.disk_hits);
  test_check(r.stats.builds == 0, "second context: nothing built (builds=%lu)", r.stats.builds);
  test_check(r.stats.disk_writes == 0 && r.stats.disk_rejected == 0,
             "second context: nothing written or rejected");
}

/* The public cache queries: adasplash_context_cache_usage counts the entries, _clear removes them
 * and stale temporary files, and nothing else in the directory. */
static void test_usage_and_clear(const char *base) {
  char dir[1100], entry[2048] = "", other[1200], stale[1200];
  path_join(dir, sizeof dir, base, "usage");
  run_result r;
  run_context(dir, 1, &r);
  check_results("usage: first context", &r);
  int tmp = 0;
  test_check(count_entries(dir, &tmp, entry, sizeof entry) == 1, "usage: one entry stored");
  path_join(other, sizeof other, dir, "keep.txt");
  path_join(stale, sizeof stale, dir, "0123.aspbin.tmp.1.2");
  const unsigned char byte = 1;
  test_check(write_file(other, &byte, 1) == 0 && write_file(stale, &byte, 1) == 0,
             "usage: an unrelated file and a stale temp file written");
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = dir;
  adasplash_context *ctx = test_context(&o);
  size_t entries = 0, removed = 0;
  unsigned long long bytes = 0;
  adasplash_status st = adasplash_context_cache_usage(ctx, &entries, &bytes);
  test_check(
      st == ADASPLASH_SUCCESS && entries == 1 && bytes == (unsigned long long)file_size(entry),
      "usage: 1 entry of %ld bytes reported (%zu, %llu)", file_size(entry), entries, bytes);
  st = adasplash_context_cache_clear(ctx, &removed);
  test_check(st == ADASPLASH_SUCCESS && removed == 2,
             "clear: the entry and the stale temp file removed (%zu)", removed);
  st = adasplash_context_cache_usage(ctx, &entries, &bytes);
  test_check(st == ADASPLASH_SUCCESS && entries == 0 && bytes == 0, "usage after clear: empty");
  test_check(file_size(other) == 1, "clear: the unrelated file is kept");
  adasplash_context_release(ctx);
  o.cache_dir = "off";
  ctx = test_context(&o);
  entries = removed = 7;
  test_check(adasplash_context_cache_usage(ctx, &entries, NULL) == ADASPLASH_SUCCESS &&
                 entries == 0 &&
                 adasplash_context_cache_clear(ctx, &removed) == ADASPLASH_SUCCESS && removed == 0,
             "cache off: usage 0, nothing cleared");
  adasplash_context_release(ctx);
}

typedef enum corruption {
  FLIP_PAYLOAD_BYTE,
  TRUNCATE,
  ZERO_LENGTH,
  BAD_MAGIC,
  REFUSED_PAYLOAD
} corruption;

static const char *corruption_name(corruption c) {
  static const char *names[] = {"flipped payload byte", "truncated", "zero-length", "bad magic",
                                "checksummed payload the driver refuses"};
  return names[c];
}

static int corrupt(const char *entry, corruption c) {
  size_t size = 0;
  unsigned char *buf = read_file(entry, &size);
  if (!buf || size <= HEADER_BYTES) {
    free(buf);
    return -1;
  }
  int rc = 0;
  switch (c) {
    case FLIP_PAYLOAD_BYTE:
      buf[HEADER_BYTES + (size - HEADER_BYTES) / 2] ^= 0x40;
      rc = write_file(entry, buf, size);
      break;
    case TRUNCATE:
      rc = truncate(entry, (off_t)(size / 2));
      break;
    case ZERO_LENGTH:
      rc = truncate(entry, 0);
      break;
    case BAD_MAGIC:
      memcpy(buf, "NOTMAGIC", 8);
      rc = write_file(entry, buf, size);
      break;
    case REFUSED_PAYLOAD:
      /* Header, length and checksum all valid: only the driver can tell it is not a binary. */
      for (size_t i = HEADER_BYTES; i < size; ++i) buf[i] = (unsigned char)(0x5A ^ (i * 131));
      asp_sha256(buf + HEADER_BYTES, size - HEADER_BYTES, buf + 56);
      rc = write_file(entry, buf, size);
      break;
  }
  free(buf);
  return rc;
}

static void test_corruptions(const char *dir, const char *entry) {
  for (int c = FLIP_PAYLOAD_BYTE; c <= REFUSED_PAYLOAD; ++c) {
    char label[128];
    snprintf(label, sizeof label, "%s entry", corruption_name((corruption)c));
    if (!test_check(corrupt(entry, (corruption)c) == 0, "%s: corrupting %s", label, entry))
      continue;
    run_result r;
    run_context(dir, 1, &r);
    print_stats(label, &r.stats);
    check_results(label, &r);
    test_check(r.stats.disk_rejected >= 1, "%s: rejected (disk_rejected=%lu)", label,
               r.stats.disk_rejected);
    test_check(r.stats.disk_hits == 0, "%s: not counted as a hit", label);
    test_check(r.stats.builds >= 1, "%s: rebuilt from source (builds=%lu)", label, r.stats.builds);
    test_check(r.stats.disk_writes >= 1, "%s: rewritten (writes=%lu)", label, r.stats.disk_writes);
    int tmp = 0;
    int n = count_entries(dir, &tmp, NULL, 0);
    test_check(n == 1 && tmp == 0, "%s: one valid entry again, no temp files (%d, %d)", label, n,
               tmp);
    run_context(dir, 1, &r);
    check_results(label, &r);
    test_check(r.stats.disk_hits >= 1 && r.stats.builds == 0,
               "%s: the rewritten entry loads (hits=%lu, builds=%lu)", label, r.stats.disk_hits,
               r.stats.builds);
  }
}

static void test_unwritable(const char *base) {
  char file[1024], dir[1100];
  path_join(file, sizeof file, base, "a-regular-file");
  path_join(dir, sizeof dir, file, "cache");
  FILE *f = fopen(file, "w");
  if (!test_check(f != NULL, "creating %s", file)) return;
  fputs("not a directory\n", f);
  fclose(f);
  run_result r;
  run_context(dir, 1, &r);
  print_stats("unwritable directory", &r.stats);
  check_results("unwritable directory", &r);
  test_check(r.stats.builds >= 1, "unwritable directory: built from source (builds=%lu)",
             r.stats.builds);
  test_check(r.stats.disk_writes == 0 && r.stats.disk_hits == 0,
             "unwritable directory: no writes, no hits (writes=%lu, hits=%lu)", r.stats.disk_writes,
             r.stats.disk_hits);
  test_check(file_size(file) == 16, "unwritable directory: the file in the way is untouched");
}

static void check_off(const char *label, const run_result *r) {
  print_stats(label, &r->stats);
  check_results(label, r);
  test_check(r->stats.cache_dir[0] == '\0', "%s: cache_dir is empty (\"%s\")", label,
             r->stats.cache_dir);
  test_check(r->stats.disk_misses == 0 && r->stats.disk_writes == 0 && r->stats.disk_hits == 0 &&
                 r->stats.disk_rejected == 0,
             "%s: no disk activity (misses=%lu, writes=%lu)", label, r->stats.disk_misses,
             r->stats.disk_writes);
  test_check(r->stats.builds >= 1, "%s: built from source", label);
}

static void test_off(const char *base) {
  run_result r;
  run_context("off", 1, &r);
  check_off("options.cache_dir=\"off\"", &r);
  run_context("OFF", 1, &r);
  check_off("options.cache_dir=\"OFF\"", &r);
  run_context("", 1, &r);
  check_off("options.cache_dir=\"\"", &r);
  setenv("ADASPLASH_CACHE_DIR", "off", 1);
  run_context(NULL, 0, &r);
  check_off("ADASPLASH_CACHE_DIR=off", &r);
  /* The option wins over the environment. */
  char dir[1024];
  path_join(dir, sizeof dir, base, "option-over-env");
  run_context(dir, 1, &r);
  test_check(strcmp(r.stats.cache_dir, dir) == 0 && r.stats.disk_writes >= 1,
             "options.cache_dir wins over ADASPLASH_CACHE_DIR=off (\"%s\", writes=%lu)",
             r.stats.cache_dir, r.stats.disk_writes);
}

/* Only the resolved directory (no program is built). */
/* The cache directory and note a default context reports, and whether its device is PoCL. */
static void cache_dir_of(char *out, size_t size, char *note, size_t note_size, int *is_pocl) {
  adasplash_context *ctx = test_context(NULL);
  adasplash_cache_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  adasplash_context_get_cache_stats(ctx, &s);
  snprintf(out, size, "%s", s.cache_dir);
  snprintf(note, note_size, "%s", s.cache_note);
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  adasplash_context_get_device_info(ctx, &info);
  *is_pocl = strstr(info.platform_name, "Portable Computing Language") != NULL;
  adasplash_context_release(ctx);
}

static void test_environment(const char *base) {
  char dir[1024], want[1100], got[1100], note[200];
  path_join(dir, sizeof dir, base, "from-env");
  setenv("ADASPLASH_CACHE_DIR", dir, 1);
  run_result r;
  run_context(NULL, 0, &r);
  print_stats("ADASPLASH_CACHE_DIR", &r.stats);
  check_results("ADASPLASH_CACHE_DIR", &r);
  /* An explicit directory is always used (whatever the build default and the driver). */
  test_check(strcmp(r.stats.cache_dir, dir) == 0, "ADASPLASH_CACHE_DIR is used (\"%s\")",
             r.stats.cache_dir);
  test_check(r.stats.disk_writes >= 1 && count_entries(dir, NULL, NULL, 0) == 1,
             "ADASPLASH_CACHE_DIR: the entry is written there");
  run_context(NULL, 0, &r);
  test_check(r.stats.disk_hits >= 1 && r.stats.builds == 0,
             "ADASPLASH_CACHE_DIR: a second context loads it (hits=%lu, builds=%lu)",
             r.stats.disk_hits, r.stats.builds);
  /* The default location (XDG_CACHE_HOME here) when ADASPLASH_CACHE_DIR is unset: used unless
   * the build disables it or the driver is PoCL (which caches compiled kernels itself). */
  unsetenv("ADASPLASH_CACHE_DIR");
  path_join(dir, sizeof dir, base, "xdg");
  setenv("XDG_CACHE_HOME", dir, 1);
  path_join(want, sizeof want, dir, "adasplash-cl");
  int is_pocl = 0;
  cache_dir_of(got, sizeof got, note, sizeof note, &is_pocl);
  if (ADASPLASH_TEST_DISK_CACHE_DEFAULT && !is_pocl)
    test_check(strcmp(got, want) == 0, "XDG_CACHE_HOME/adasplash-cl is used (\"%s\")", got);
  else
    test_check(got[0] == '\0' && note[0] != '\0',
               "default location off on PoCL or in an ADASPLASH_DISK_CACHE=OFF build (\"%s\")",
               note);
}

/* ---- an entry made for another device --------------------------------------------------------
 * The file name and the header both carry the key, a SHA-256 over (among others) the platform,
 * device and driver identity; the header has no separate device field. An entry written for
 * another device therefore has another key: copied (or renamed) to this device's name, its header
 * key differs from the name and the loader must reject it ("foreign-key") and rebuild, never load
 * it. "Another device" is made here by ADASPLASH_BUILD_OPTIONS, which enters the key exactly
 * like the device identity does, so the foreign entry is a real, loadable binary: only the key
 * check keeps it out. (An entry whose name and header key were both forged to this device's key
 * can only be refused by the driver: the REFUSED_PAYLOAD corruption above.) */

static void check_foreign_rejected(const char *label, const char *dir, const char *entry) {
  run_result r;
  run_context(dir, 1, &r);
  print_stats(label, &r.stats);
  check_results(label, &r);
  test_check(r.stats.disk_rejected >= 1 && r.stats.disk_hits == 0,
             "%s: rejected, not loaded (rejected=%lu, hits=%lu)", label, r.stats.disk_rejected,
             r.stats.disk_hits);
  test_check(r.stats.builds >= 1 && r.stats.disk_writes >= 1,
             "%s: rebuilt from source and rewritten (builds=%lu, writes=%lu)", label,
             r.stats.builds, r.stats.disk_writes);
  /* The rewritten entry's header key is the one its name says. */
  size_t size = 0;
  unsigned char *buf = read_file(entry, &size);
  char hex[65];
  int named = 0;
  if (buf && size > HEADER_BYTES) {
    asp_hex(buf + 24, 32, hex);
    named = strstr(entry, hex) != NULL;
  }
  free(buf);
  test_check(named, "%s: the rewritten entry's header key matches its name", label);
  run_context(dir, 1, &r);
  check_results(label, &r);
  test_check(r.stats.disk_hits >= 1 && r.stats.builds == 0,
             "%s: the rewritten entry loads (hits=%lu, builds=%lu)", label, r.stats.disk_hits,
             r.stats.builds);
}

static void test_foreign_device(const char *base) {
  char dir[1100], other[1100], entry[2048] = "", other_entry[2048] = "";
  path_join(dir, sizeof dir, base, "foreign/this");
  path_join(other, sizeof other, base, "foreign/other");
  run_result r;
  run_context(dir, 1, &r);
  check_results("this device's entry", &r);
  setenv("ADASPLASH_BUILD_OPTIONS", "-DASP_TEST_OTHER_DEVICE=1", 1);
  run_context(other, 1, &r);
  unsetenv("ADASPLASH_BUILD_OPTIONS");
  check_results("the other device's entry", &r);
  if (!test_check(count_entries(dir, NULL, entry, sizeof entry) == 1 &&
                      count_entries(other, NULL, other_entry, sizeof other_entry) == 1,
                  "one entry for each device"))
    return;
  test_check(strcmp(strrchr(entry, '/'), strrchr(other_entry, '/')) != 0,
             "the other device's entry has another key (%s)", strrchr(other_entry, '/') + 1);
  size_t size = 0, other_size = 0;
  unsigned char *mine = read_file(entry, &size);
  unsigned char *theirs = read_file(other_entry, &other_size);
  if (test_check(mine && theirs && size > HEADER_BYTES && other_size > HEADER_BYTES,
                 "reading both entries")) {
    /* 1. The other device's whole file under this device's name. */
    test_check(write_file(entry, theirs, other_size) == 0, "copying the other entry over %s",
               entry);
    check_foreign_rejected("other device's entry under this name", dir, entry);
    /* 2. This device's file with the header's key rewritten to the other device's. */
    memcpy(mine + 24, theirs + 24, 32);
    test_check(write_file(entry, mine, size) == 0, "rewriting the header key of %s", entry);
    check_foreign_rejected("this entry with another device's header key", dir, entry);
  }
  free(mine);
  free(theirs);
}

/* ---- concurrent processes ---------------------------------------------------------------------
 */

static int child_main(const char *dir, int ready_fd, int go_fd) {
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = dir;
  adasplash_context *ctx = test_context(&o);
  char c = 1;
  if (write(ready_fd, &c, 1) != 1) return 2;
  close(ready_fd);
  while (read(go_fd, &c, 1) < 0 && errno == EINTR) {
  }
  close(go_fd);
  adasplash_entmax_desc d;
  small_desc(&d);
  float y[N];
  adasplash_status st = adasplash_entmax_prepare(ctx, &d);
  if (st == ADASPLASH_SUCCESS)
    st = adasplash_entmax_forward_host(ctx, &d, g_x, y, NULL, NULL, NULL);
  adasplash_cache_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  adasplash_context_get_cache_stats(ctx, &s);
  adasplash_context_release(ctx);
  if (st != ADASPLASH_SUCCESS) {
    printf("child %ld: %s\n", (long)getpid(), adasplash_status_string(st));
    return 1;
  }
  double err = 0.0;
  for (int i = 0; i < N; ++i) err = fmax(err, fabs((double)y[i] - g_ref[i]));
  printf("  child %ld: builds %lu, disk hits %lu, writes %lu, max err %.3g\n", (long)getpid(),
         s.builds, s.disk_hits, s.disk_writes, err);
  return err < 1e-5 ? 0 : 1;
}

static void test_processes(const char *argv0, const char *base, int processes) {
  char dir[1024];
  path_join(dir, sizeof dir, base, "processes");
  int ready[2], go[2];
  if (!test_check(pipe(ready) == 0 && pipe(go) == 0, "pipes")) return;
  /* The children inherit only the read end of "go" and the write end of "ready". */
  fcntl(go[1], F_SETFD, FD_CLOEXEC);
  fcntl(ready[0], F_SETFD, FD_CLOEXEC);
  char ready_s[16], go_s[16];
  snprintf(ready_s, sizeof ready_s, "%d", ready[1]);
  snprintf(go_s, sizeof go_s, "%d", go[0]);
  char *args[] = {(char *)argv0, "--child", dir, ready_s, go_s, NULL};
  fflush(stdout);
  pid_t pids[MAX_PROCESSES];
  int started = 0;
  for (int i = 0; i < processes; ++i) {
    pids[i] = fork();
    if (pids[i] == 0) {
      execv(argv0, args);
      _exit(127);
    }
    if (pids[i] > 0) ++started;
  }
  close(ready[1]);
  close(go[0]);
  /* Wait until every child has its context, then release them all at once. */
  int ready_count = 0;
  char c;
  while (ready_count < started) {
    ssize_t n = read(ready[0], &c, 1);
    if (n == 1) {
      ++ready_count;
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(ready[0]);
  close(go[1]); /* EOF on "go": all children start preparing */
  int all_ok = started == processes;
  for (int i = 0; i < processes; ++i) {
    if (pids[i] <= 0) continue;
    int status = 0;
    waitpid(pids[i], &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) printf("  child %ld: status %#x\n", (long)pids[i], (unsigned)status);
    all_ok &= ok;
  }
  test_check(all_ok, "%d processes prepared the same variant concurrently and got right results",
             processes);
  test_check(ready_count == processes, "every child signalled readiness (%d)", ready_count);
  int tmp = 0;
  int n = count_entries(dir, &tmp, NULL, 0);
  test_check(n == 1, "exactly one entry after %d concurrent writers (%d)", processes, n);
  test_check(tmp == 0, "no temp files left behind (%d)", tmp);
  run_result r;
  run_context(dir, 1, &r);
  print_stats("after the processes", &r.stats);
  check_results("after the processes", &r);
  test_check(r.stats.disk_hits >= 1 && r.stats.builds == 0,
             "the entry the processes left loads (hits=%lu, builds=%lu)", r.stats.disk_hits,
             r.stats.builds);
  test_check(r.stats.disk_rejected == 0, "the entry the processes left is valid");
}

int main(int argc, char **argv) {
  make_problem();
  if (argc == 5 && strcmp(argv[1], "--child") == 0)
    return child_main(argv[2], atoi(argv[3]), atoi(argv[4]));
  /* --race N: only N racing processes and the other device's entries (robustness_cache). */
  const int race = argc == 3 && strcmp(argv[1], "--race") == 0 ? atoi(argv[2]) : 0;
  if (argc > 1 && (race < 2 || race > MAX_PROCESSES)) {
    printf("usage: %s [--race N (2..%d)]\n", argv[0], MAX_PROCESSES);
    return 2;
  }

  /* Environment variables this test sets itself; start from a known state. */
  unsetenv("ADASPLASH_CACHE_DIR");
  unsetenv("XDG_CACHE_HOME");
  const char *tmpdir = getenv("TMPDIR");
  char base[1024];
  snprintf(base, sizeof base, "%s/adasplash-test-cache-XXXXXX",
           tmpdir && tmpdir[0] ? tmpdir : "/tmp");
  if (!mkdtemp(base)) {
    printf("FAIL: mkdtemp(%s): %s\n", base, strerror(errno));
    return 1;
  }
  printf("temp dir: %s\n", base);
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = "off";
  adasplash_context *probe = test_context(&o); /* exits 77 without a device */
  test_print_device(probe);
  adasplash_context_release(probe);

  if (race) {
    test_processes(argv[0], base, race);
    test_foreign_device(base);
  } else {
    char dir[1100], entry[2048] = "";
    path_join(dir, sizeof dir, base, "store/nested"); /* created by the library (mkdir -p) */
    test_store_and_load(dir, entry, sizeof entry);
    if (entry[0]) test_corruptions(dir, entry);
    test_usage_and_clear(base);
    test_unwritable(base);
    test_off(base);
    test_environment(base);
    unsetenv("ADASPLASH_CACHE_DIR");
    unsetenv("XDG_CACHE_HOME");
    test_processes(argv[0], base, PROCESSES);
  }

  if (test_failures() == 0 || !getenv("ADASPLASH_TEST_KEEP"))
    remove_tree(base);
  else
    printf("kept %s (ADASPLASH_TEST_KEEP)\n", base);
  return test_finish(race ? "cache --race" : "cache");
}
