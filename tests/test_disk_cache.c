/* test_disk_cache.c - Tests for the SHA-256 helper (src/sha256.c) and the on-disk program-binary
 * cache (src/disk_cache.c): FIPS 180-2 vectors, directory resolution, round trips, verification
 * and rejection of damaged entries, usage/clear, and concurrent stores from processes and threads.
 *
 * Prints one line per check; exits 0 when every check passes, 1 otherwise. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk_cache.h"
#include "sha256.h"

#define HDR ASP_DISK_HEADER_BYTES
#define NUM_WRITERS 8
#define ROUNDS 20

static int g_failures = 0;
static int g_checks = 0;

static void check(int ok, const char *what) {
  ++g_checks;
  if (!ok) ++g_failures;
  printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
  fflush(stdout);
}

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                        */

static void make_key(uint8_t key[32], const char *label) {
  asp_sha256(label, strlen(label), key);
}

static void fill_pattern(unsigned char *buf, size_t n, uint32_t seed) {
  uint32_t x = seed ? seed : 0x9e3779b9u;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (unsigned char)x;
  }
}

/* out (ASP_DISK_PATH_MAX bytes) = a + "/" + b; a path that does not fit fails the whole test. */
static void join_path(char *out, const char *a, const char *b) {
  int n = snprintf(out, ASP_DISK_PATH_MAX, "%s/%s", a, b);
  if (n < 0 || n >= ASP_DISK_PATH_MAX) {
    printf("FAIL: test path too long: %s/%s\n", a, b);
    exit(1);
  }
}

static int file_exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* Reads a whole file into a malloc'd buffer (NULL on error). */
static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  unsigned char *buf = malloc(cap);
  while (buf != NULL) {
    if (n == cap) {
      unsigned char *grown = realloc(buf, cap * 2);
      if (grown == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = grown;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  *len = n;
  return buf;
}

static int spit(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return -1;
  int ok = len == 0 || fwrite(data, 1, len, f) == len;
  if (fclose(f) != 0) ok = 0;
  return ok ? 0 : -1;
}

/* rm -rf for the test's own temp tree (regular files and directories only). */
static void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d != NULL) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char child[ASP_DISK_PATH_MAX];
        join_path(child, path, e->d_name);
        remove_tree(child);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static size_t count_files_containing(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  size_t n = 0;
  if (d == NULL) return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strstr(e->d_name, needle) != NULL) ++n;
  }
  closedir(d);
  return n;
}

/* Saved copy of an environment variable so the test can restore it. */
typedef struct saved_env {
  const char *name;
  char *value; /* NULL if it was unset */
} saved_env;

static void env_save(saved_env *s, const char *name) {
  const char *v = getenv(name);
  s->name = name;
  s->value = v ? strdup(v) : NULL;
}

static void env_restore(saved_env *s) {
  if (s->value != NULL) {
    setenv(s->name, s->value, 1);
  } else {
    unsetenv(s->name);
  }
  free(s->value);
  s->value = NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* SHA-256                                                                                        */

static int digest_is(const uint8_t digest[32], const char *hex) {
  char got[65];
  asp_hex(digest, 32, got);
  return strcmp(got, hex) == 0;
}

static void test_sha256(void) {
  uint8_t d[32];
  asp_sha256("", 0, d);
  check(digest_is(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        "sha256 FIPS 180-2 empty message");
  asp_sha256("abc", 3, d);
  check(digest_is(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        "sha256 FIPS 180-2 \"abc\"");
  const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  asp_sha256(m448, strlen(m448), d);
  check(digest_is(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        "sha256 FIPS 180-2 448-bit message");

  unsigned char chunk[1000];
  memset(chunk, 'a', sizeof(chunk));
  asp_sha256_ctx s;
  asp_sha256_init(&s);
  for (int i = 0; i < 1000; ++i) asp_sha256_update(&s, chunk, sizeof(chunk));
  asp_sha256_final(&s, d);
  check(digest_is(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        "sha256 FIPS 180-2 one million 'a' (streamed)");

  /* Irregular chunking must match the one-shot digest (exercises buffer boundaries). */
  unsigned char data[1031];
  fill_pattern(data, sizeof(data), 7);
  uint8_t one[32];
  asp_sha256(data, sizeof(data), one);
  asp_sha256_init(&s);
  size_t off = 0, step = 1;
  while (off < sizeof(data)) {
    size_t take = step < sizeof(data) - off ? step : sizeof(data) - off;
    asp_sha256_update(&s, data + off, take);
    off += take;
    step = step * 3 % 67 + 1;
  }
  asp_sha256_final(&s, d);
  check(memcmp(one, d, 32) == 0, "sha256 incremental updates match one-shot");

  /* Padding edge: 55 and 56 byte messages straddle the length field boundary. */
  asp_sha256(chunk, 55, one);
  asp_sha256(chunk, 56, d);
  check(memcmp(one, d, 32) != 0, "sha256 55/56-byte padding boundary differs");

  char hex[9];
  const uint8_t bytes[4] = {0x00, 0x9f, 0xa0, 0xff};
  asp_hex(bytes, 4, hex);
  check(strcmp(hex, "009fa0ff") == 0, "asp_hex lowercase with NUL");
}

/* ---------------------------------------------------------------------------------------------- */
/* Directory resolution                                                                           */

static int dir_is(const char *explicit_dir, const char *expect) {
  char out[512];
  memset(out, 'x', sizeof(out));
  int rc = asp_disk_cache_dir(explicit_dir, out, sizeof(out));
  if (expect == NULL) return rc == 0 && out[0] == '\0';
  return rc == 1 && strcmp(out, expect) == 0;
}

static void test_dir_resolution(void) {
  saved_env e1, e2, e3;
  env_save(&e1, "ADASPLASH_CACHE_DIR");
  env_save(&e2, "XDG_CACHE_HOME");
  env_save(&e3, "HOME");

  setenv("ADASPLASH_CACHE_DIR", "/env/cache", 1);
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  setenv("HOME", "/home/u", 1);
  check(dir_is("/explicit/dir", "/explicit/dir"), "dir: explicit option wins over env");
  check(dir_is("off", NULL) && dir_is("OFF", NULL) && dir_is("oFf", NULL),
        "dir: explicit \"off\" (any case) disables");
  check(dir_is("", NULL), "dir: explicit \"\" disables");
  check(dir_is("offline", "offline"), "dir: \"offline\" is a directory, not off");
  check(dir_is(NULL, "/env/cache"), "dir: ADASPLASH_CACHE_DIR wins over XDG/HOME");
  setenv("ADASPLASH_CACHE_DIR", "Off", 1);
  check(dir_is(NULL, NULL), "dir: env \"Off\" disables");
  setenv("ADASPLASH_CACHE_DIR", "", 1);
  check(dir_is(NULL, NULL), "dir: env \"\" disables");
  check(dir_is("/explicit/dir", "/explicit/dir"), "dir: explicit option overrides env off");
  unsetenv("ADASPLASH_CACHE_DIR");
  check(dir_is(NULL, "/xdg/adasplash-cl"), "dir: $XDG_CACHE_HOME/adasplash-cl");
  setenv("XDG_CACHE_HOME", "/xdg/", 1);
  check(dir_is(NULL, "/xdg/adasplash-cl"), "dir: trailing slash of XDG_CACHE_HOME trimmed");
  setenv("XDG_CACHE_HOME", "", 1);
  check(dir_is(NULL, "/home/u/.cache/adasplash-cl"), "dir: empty XDG_CACHE_HOME ignored");
  setenv("XDG_CACHE_HOME", "relative/path", 1);
  check(dir_is(NULL, "/home/u/.cache/adasplash-cl"), "dir: relative XDG_CACHE_HOME ignored");
  unsetenv("XDG_CACHE_HOME");
  check(dir_is(NULL, "/home/u/.cache/adasplash-cl"), "dir: $HOME/.cache/adasplash-cl");
  unsetenv("HOME");
  check(dir_is(NULL, NULL), "dir: no HOME and no XDG -> disabled");
  setenv("HOME", "", 1);
  check(dir_is(NULL, NULL), "dir: empty HOME -> disabled");

  char small[8];
  check(asp_disk_cache_dir("/a/long/directory", small, sizeof(small)) == 0 && small[0] == '\0',
        "dir: path too long for buffer -> 0");
  setenv("HOME", "/home/u", 1);
  char exact[sizeof("/home/u/.cache/adasplash-cl")];
  check(asp_disk_cache_dir(NULL, exact, sizeof(exact)) == 1 &&
            asp_disk_cache_dir(NULL, exact, sizeof(exact) - 1) == 0,
        "dir: exact-fit buffer ok, one byte less fails");

  env_restore(&e1);
  env_restore(&e2);
  env_restore(&e3);
}

/* ---------------------------------------------------------------------------------------------- */
/* Basic store/load                                                                               */

static int round_trip(const char *dir, const char *label, const unsigned char *data, size_t n) {
  uint8_t key[32];
  make_key(key, label);
  if (asp_disk_cache_store(dir, key, data, n) != 0) return 0;
  unsigned char *got = NULL;
  size_t got_n = 12345;
  asp_disk_result r = asp_disk_cache_load(dir, key, &got, &got_n);
  int ok = r == ASP_DISK_HIT && got != NULL && got_n == n && (n == 0 || memcmp(got, data, n) == 0);
  free(got);
  return ok;
}

static void test_basic(const char *root, const char *dir) {
  char nested[ASP_DISK_PATH_MAX];
  join_path(nested, root, "p/q/r/");
  check(asp_disk_cache_prepare(nested) == 0 && asp_disk_cache_prepare(nested) == 0,
        "prepare: mkdir -p creates nested dirs and is idempotent");
  check(asp_disk_cache_prepare(dir) == 0, "prepare: cache dir");

  uint8_t key[32];
  make_key(key, "path");
  char path[ASP_DISK_PATH_MAX];
  char hex[65];
  asp_hex(key, 32, hex);
  char expect[ASP_DISK_PATH_MAX];
  char name[80];
  snprintf(name, sizeof(name), "%s.aspbin", hex);
  join_path(expect, dir, name);
  check(asp_disk_cache_entry_path(dir, key, path, sizeof(path)) == 0 && strcmp(path, expect) == 0,
        "entry path is <dir>/<64 hex>.aspbin");
  check(asp_disk_cache_entry_path(dir, key, path, strlen(expect)) == -1 &&
            asp_disk_cache_entry_path(dir, key, path, strlen(expect) + 1) == 0,
        "entry path: too small buffer -> -1, exact fit ok");

  const char *text = "hello, program binary";
  check(round_trip(dir, "small", (const unsigned char *)text, strlen(text)),
        "store/load round trip (small payload)");
  check(round_trip(dir, "empty", NULL, 0), "store/load round trip (0-byte payload)");

  size_t big_n = 20u * 1024u * 1024u;
  unsigned char *big = malloc(big_n);
  if (big != NULL) fill_pattern(big, big_n, 12345);
  check(big != NULL && round_trip(dir, "big", big, big_n), "store/load round trip (20 MB payload)");
  free(big);

  /* Overwrite with different content: the latest store wins. */
  const char *v2 = "second version";
  check(round_trip(dir, "small", (const unsigned char *)v2, strlen(v2)),
        "store over an existing entry replaces it");

  /* On-disk layout, byte for byte. */
  uint8_t k[32];
  make_key(k, "layout");
  const unsigned char pl[3] = {1, 2, 3};
  asp_disk_cache_store(dir, k, pl, sizeof(pl));
  asp_disk_cache_entry_path(dir, k, path, sizeof(path));
  size_t n = 0;
  unsigned char *raw = slurp(path, &n);
  uint8_t sum[32];
  asp_sha256(pl, sizeof(pl), sum);
  static const unsigned char head[24] = {'A', 'S', 'P', 'L', 'C', 'B', 'I', 'N', 1, 0, 0, 0,
                                         88,  0,   0,   0,   3,   0,   0,   0,   0, 0, 0, 0};
  check(raw != NULL && n == HDR + 3 && memcmp(raw, head, 24) == 0 && memcmp(raw + 24, k, 32) == 0 &&
            memcmp(raw + 56, sum, 32) == 0 && memcmp(raw + 88, pl, 3) == 0,
        "entry layout: magic, LE version/header size/length, key, sha256, payload");
  free(raw);

  uint8_t absent[32];
  make_key(absent, "never stored");
  unsigned char *p = (unsigned char *)1;
  size_t sz = 99;
  check(asp_disk_cache_load(dir, absent, &p, &sz) == ASP_DISK_MISS && p == NULL && sz == 0,
        "load of an absent key -> MISS");
  char missing[ASP_DISK_PATH_MAX];
  join_path(missing, root, "does-not-exist");
  check(asp_disk_cache_load(missing, absent, &p, &sz) == ASP_DISK_MISS,
        "load from a missing dir -> MISS");

  check(asp_disk_cache_remove(dir, k) == 0 && !file_exists(path) &&
            asp_disk_cache_remove(dir, k) == 0,
        "remove: existing entry removed, absent entry ok");
  check(count_files_containing(dir, ".tmp.") == 0, "no temp files left behind by stores");
}

/* ---------------------------------------------------------------------------------------------- */
/* Damaged entries                                                                                */

typedef struct damage {
  const char *what;
  long offset;         /* byte to flip (-1: none) */
  unsigned char xor_v; /* value xor'ed into that byte */
  long new_len;        /* truncate to this length (-1: keep) */
  int append;          /* bytes of garbage to append */
} damage;

static void test_damage(const char *dir) {
  static const damage cases[] = {
      {"one corrupted payload byte -> REJECTED, removed", (long)HDR + 100, 0x01, -1, 0},
      {"truncated payload -> REJECTED, removed", -1, 0, (long)HDR + 200, 0},
      {"truncated inside header -> REJECTED, removed", -1, 0, 40, 0},
      {"zero-length file -> REJECTED, removed", -1, 0, 0, 0},
      {"trailing garbage (long file) -> REJECTED, removed", -1, 0, -1, 1},
      {"wrong magic -> REJECTED, removed", 0, 0x20, -1, 0},
      {"wrong format version -> REJECTED, removed", 8, 0x03, -1, 0},
      {"wrong header size -> REJECTED, removed", 12, 0x01, -1, 0},
      {"payload length field mismatch -> REJECTED, removed", 16, 0x01, -1, 0},
      {"key field altered -> REJECTED, removed", 30, 0x40, -1, 0},
      {"stored checksum altered -> REJECTED, removed", 60, 0x80, -1, 0},
  };
  unsigned char payload[1000];
  fill_pattern(payload, sizeof(payload), 99);
  uint8_t key[32];
  make_key(key, "damage");
  char path[ASP_DISK_PATH_MAX];
  asp_disk_cache_entry_path(dir, key, path, sizeof(path));

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    const damage *c = &cases[i];
    int ok = asp_disk_cache_store(dir, key, payload, sizeof(payload)) == 0;
    size_t n = 0;
    unsigned char *raw = ok ? slurp(path, &n) : NULL;
    ok = ok && raw != NULL;
    if (ok) {
      if (c->offset >= 0) raw[c->offset] ^= c->xor_v;
      if (c->new_len >= 0) n = (size_t)c->new_len;
      ok = spit(path, raw, n) == 0;
      if (ok && c->append > 0) {
        FILE *f = fopen(path, "ab");
        ok = f != NULL && fputc(0x5a, f) != EOF;
        if (f != NULL) fclose(f);
      }
    }
    free(raw);
    unsigned char *got = (unsigned char *)1;
    size_t got_n = 7;
    ok = ok && asp_disk_cache_load(dir, key, &got, &got_n) == ASP_DISK_REJECTED && got == NULL &&
         got_n == 0 && !file_exists(path);
    check(ok, c->what);
  }

  /* Foreign entry: a valid entry of key A placed at key B's path. */
  uint8_t key_a[32], key_b[32];
  make_key(key_a, "foreign A");
  make_key(key_b, "foreign B");
  char path_a[ASP_DISK_PATH_MAX], path_b[ASP_DISK_PATH_MAX];
  asp_disk_cache_entry_path(dir, key_a, path_a, sizeof(path_a));
  asp_disk_cache_entry_path(dir, key_b, path_b, sizeof(path_b));
  int ok = asp_disk_cache_store(dir, key_a, payload, sizeof(payload)) == 0;
  size_t n = 0;
  unsigned char *raw = ok ? slurp(path_a, &n) : NULL;
  ok = ok && raw != NULL && spit(path_b, raw, n) == 0;
  free(raw);
  unsigned char *got = NULL;
  size_t got_n = 0;
  ok = ok && asp_disk_cache_load(dir, key_b, &got, &got_n) == ASP_DISK_REJECTED &&
       !file_exists(path_b);
  check(ok, "foreign entry (A's file at B's path) -> REJECTED, removed");
  ok = asp_disk_cache_load(dir, key_a, &got, &got_n) == ASP_DISK_HIT && got_n == sizeof(payload) &&
       memcmp(got, payload, sizeof(payload)) == 0;
  free(got);
  check(ok, "foreign entry: the genuine entry of A still loads");
  asp_disk_cache_remove(dir, key_a);

  /* A directory sitting at an entry path is not ours to delete. */
  uint8_t key_d[32];
  make_key(key_d, "dir at entry path");
  char path_d[ASP_DISK_PATH_MAX];
  asp_disk_cache_entry_path(dir, key_d, path_d, sizeof(path_d));
  ok = mkdir(path_d, 0755) == 0;
  got = NULL;
  ok = ok && asp_disk_cache_load(dir, key_d, &got, &got_n) == ASP_DISK_ERROR && file_exists(path_d);
  rmdir(path_d);
  check(ok, "non-regular file at entry path -> ERROR, left alone");
}

/* ---------------------------------------------------------------------------------------------- */
/* Unwritable location                                                                            */

static void test_unwritable(const char *root) {
  char blocker[ASP_DISK_PATH_MAX], bad_dir[ASP_DISK_PATH_MAX], missing[ASP_DISK_PATH_MAX];
  join_path(blocker, root, "regular-file");
  join_path(bad_dir, root, "regular-file/cache");
  join_path(missing, root, "missing-dir");
  const char *content = "i am a file";
  int ok = spit(blocker, content, strlen(content)) == 0;
  uint8_t key[32];
  make_key(key, "unwritable");
  const char *payload = "payload";
  ok = ok && asp_disk_cache_store(bad_dir, key, payload, strlen(payload)) == -1;
  size_t n = 0;
  unsigned char *raw = slurp(blocker, &n);
  ok = ok && raw != NULL && n == strlen(content) && memcmp(raw, content, n) == 0;
  free(raw);
  check(ok, "store below a regular file (unwritable even for root) -> -1, no side effects");
  check(asp_disk_cache_prepare(bad_dir) == -1, "prepare below a regular file -> -1");
  check(asp_disk_cache_store(missing, key, payload, strlen(payload)) == -1 && !file_exists(missing),
        "store into a missing dir -> -1, dir not created");
  size_t entries = 1;
  unsigned long long bytes = 1;
  check(asp_disk_cache_usage(blocker, &entries, &bytes) == -1,
        "usage of a path that is a regular file -> -1");
  check(asp_disk_cache_usage(missing, &entries, &bytes) == 0 && entries == 0 && bytes == 0,
        "usage of a missing dir -> 0 entries, 0 bytes");
  size_t removed = 5;
  check(asp_disk_cache_clear(missing, &removed) == 0 && removed == 0,
        "clear of a missing dir -> 0 removed");
}

/* ---------------------------------------------------------------------------------------------- */
/* Usage / clear                                                                                  */

static void test_usage_clear(const char *root) {
  char dir[ASP_DISK_PATH_MAX];
  join_path(dir, root, "usage");
  int ok = asp_disk_cache_prepare(dir) == 0;
  size_t sizes[3] = {0, 10, 5000};
  unsigned long long expect_bytes = 0;
  unsigned char buf[5000];
  fill_pattern(buf, sizeof(buf), 3);
  for (int i = 0; i < 3; ++i) {
    uint8_t key[32];
    char label[32];
    snprintf(label, sizeof(label), "usage %d", i);
    make_key(key, label);
    ok = ok && asp_disk_cache_store(dir, key, buf, sizes[i]) == 0;
    expect_bytes += HDR + sizes[i];
  }
  /* Unrelated files, plus one stale temp file from a crashed writer. */
  char path[ASP_DISK_PATH_MAX];
  const char *unrelated[] = {"notes.txt", "foo.aspbinx", "aspbin", ".aspbin"};
  for (size_t i = 0; i < sizeof(unrelated) / sizeof(unrelated[0]); ++i) {
    join_path(path, dir, unrelated[i]);
    ok = ok && spit(path, "x", 1) == 0;
  }
  char stale[100];
  snprintf(stale, sizeof(stale), "%064d.aspbin.tmp.12345.7", 0);
  join_path(path, dir, stale);
  ok = ok && spit(path, "partial", 7) == 0;
  join_path(path, dir, "subdir.aspbin");
  ok = ok && mkdir(path, 0755) == 0;

  size_t entries = 0;
  unsigned long long bytes = 0;
  check(ok && asp_disk_cache_usage(dir, &entries, &bytes) == 0 && entries == 3 &&
            bytes == expect_bytes,
        "usage counts entries and bytes (ignores temp, unrelated files, dirs)");
  size_t removed = 0;
  check(asp_disk_cache_clear(dir, &removed) == 0 && removed == 4,
        "clear removes 3 entries + 1 stale temp file");
  ok = asp_disk_cache_usage(dir, &entries, &bytes) == 0 && entries == 0 && bytes == 0;
  for (size_t i = 0; i < sizeof(unrelated) / sizeof(unrelated[0]); ++i) {
    join_path(path, dir, unrelated[i]);
    ok = ok && file_exists(path);
  }
  join_path(path, dir, "subdir.aspbin");
  ok = ok && file_exists(path);
  check(ok, "clear leaves unrelated files and directories alone; usage now empty");
}

/* ---------------------------------------------------------------------------------------------- */
/* Concurrency                                                                                    */

#define CONC_PAYLOAD (256u * 1024u)

typedef struct read_stats {
  long hits, misses, rejected, errors, bad_content;
} read_stats;

static void read_once(const char *dir, const uint8_t key[32], const unsigned char *expect,
                      read_stats *st) {
  unsigned char *got = NULL;
  size_t n = 0;
  switch (asp_disk_cache_load(dir, key, &got, &n)) {
    case ASP_DISK_HIT:
      ++st->hits;
      if (n != CONC_PAYLOAD || memcmp(got, expect, n) != 0) ++st->bad_content;
      break;
    case ASP_DISK_MISS:
      ++st->misses;
      break;
    case ASP_DISK_REJECTED:
      ++st->rejected;
      break;
    default:
      ++st->errors;
      break;
  }
  free(got);
}

static int final_entry_valid(const char *dir, const uint8_t key[32], const unsigned char *expect) {
  unsigned char *got = NULL;
  size_t n = 0;
  int ok = asp_disk_cache_load(dir, key, &got, &n) == ASP_DISK_HIT && n == CONC_PAYLOAD &&
           memcmp(got, expect, n) == 0;
  free(got);
  return ok;
}

static void test_processes(const char *root) {
  char dir[ASP_DISK_PATH_MAX];
  join_path(dir, root, "procs");
  asp_disk_cache_prepare(dir);
  uint8_t key[32];
  make_key(key, "shared by processes");
  unsigned char *payload = malloc(CONC_PAYLOAD);
  if (payload == NULL) {
    check(0, "processes: allocation");
    return;
  }
  fill_pattern(payload, CONC_PAYLOAD, 42);

  int gate[2];
  if (pipe(gate) != 0) {
    check(0, "processes: pipe");
    free(payload);
    return;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pids[NUM_WRITERS];
  int spawned = 0;
  for (int i = 0; i < NUM_WRITERS; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      close(gate[1]);
      char c;
      while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
      }
      int failures = 0;
      for (int r = 0; r < ROUNDS; ++r) {
        if (asp_disk_cache_store(dir, key, payload, CONC_PAYLOAD) != 0) ++failures;
      }
      _exit(failures == 0 ? 0 : 1);
    }
    if (pid < 0) break;
    pids[spawned++] = pid;
  }
  close(gate[0]);
  close(gate[1]); /* releases all children at once */

  read_stats st = {0, 0, 0, 0, 0};
  int running = spawned, child_failures = 0;
  int done[NUM_WRITERS] = {0};
  while (running > 0) {
    read_once(dir, key, payload, &st);
    for (int i = 0; i < spawned; ++i) {
      if (done[i]) continue;
      int status = 0;
      pid_t w = waitpid(pids[i], &status, WNOHANG);
      if (w == pids[i] || (w < 0 && errno != EINTR)) {
        done[i] = 1;
        --running;
        if (w < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++child_failures;
      }
    }
  }
  read_once(dir, key, payload, &st);

  char line[256];
  snprintf(line, sizeof(line),
           "%d processes x %d stores of one key; parent loads: %ld hit, %ld miss, %ld rejected, "
           "%ld error, %ld bad",
           spawned, ROUNDS, st.hits, st.misses, st.rejected, st.errors, st.bad_content);
  check(spawned == NUM_WRITERS && child_failures == 0, "processes: every store returned 0");
  check(st.rejected == 0 && st.errors == 0 && st.bad_content == 0 && st.hits > 0, line);
  check(final_entry_valid(dir, key, payload) && count_files_containing(dir, ".tmp.") == 0,
        "processes: final entry valid, no temp files left");
  size_t entries = 0;
  unsigned long long bytes = 0;
  check(asp_disk_cache_usage(dir, &entries, &bytes) == 0 && entries == 1 &&
            bytes == HDR + CONC_PAYLOAD,
        "processes: exactly one entry on disk");
  free(payload);
}

typedef struct thread_ctx {
  const char *dir;
  const uint8_t *key;
  const unsigned char *payload;
  atomic_int *start;
  atomic_int *finished;
  int failures;
} thread_ctx;

static void *writer_thread(void *arg) {
  thread_ctx *c = (thread_ctx *)arg;
  while (!atomic_load(c->start)) sched_yield();
  for (int r = 0; r < ROUNDS; ++r) {
    if (asp_disk_cache_store(c->dir, c->key, c->payload, CONC_PAYLOAD) != 0) ++c->failures;
  }
  atomic_fetch_add(c->finished, 1);
  return NULL;
}

static void test_threads(const char *root) {
  char dir[ASP_DISK_PATH_MAX];
  join_path(dir, root, "threads");
  asp_disk_cache_prepare(dir);
  uint8_t key[32];
  make_key(key, "shared by threads");
  unsigned char *payload = malloc(CONC_PAYLOAD);
  if (payload == NULL) {
    check(0, "threads: allocation");
    return;
  }
  fill_pattern(payload, CONC_PAYLOAD, 43);

  atomic_int start = 0, finished = 0;
  pthread_t tids[NUM_WRITERS];
  thread_ctx ctx[NUM_WRITERS];
  int spawned = 0;
  for (int i = 0; i < NUM_WRITERS; ++i) {
    ctx[i] = (thread_ctx){dir, key, payload, &start, &finished, 0};
    if (pthread_create(&tids[i], NULL, writer_thread, &ctx[i]) != 0) break;
    ++spawned;
  }
  atomic_store(&start, 1);
  read_stats st = {0, 0, 0, 0, 0};
  while (atomic_load(&finished) < spawned) read_once(dir, key, payload, &st);
  read_once(dir, key, payload, &st);
  int failures = 0;
  for (int i = 0; i < spawned; ++i) {
    pthread_join(tids[i], NULL);
    failures += ctx[i].failures;
  }

  char line[256];
  snprintf(line, sizeof(line),
           "%d threads x %d stores of one key; main thread loads: %ld hit, %ld miss, %ld rejected, "
           "%ld error, %ld bad",
           spawned, ROUNDS, st.hits, st.misses, st.rejected, st.errors, st.bad_content);
  check(spawned == NUM_WRITERS && failures == 0,
        "threads: every store returned 0 (temp names never collide)");
  check(st.rejected == 0 && st.errors == 0 && st.bad_content == 0 && st.hits > 0, line);
  check(final_entry_valid(dir, key, payload) && count_files_containing(dir, ".tmp.") == 0,
        "threads: final entry valid, no temp files left");
  free(payload);
}

/* ---------------------------------------------------------------------------------------------- */
/* Debug trace                                                                                    */

static void test_debug_trace(const char *root, const char *dir) {
  char log_path[ASP_DISK_PATH_MAX];
  join_path(log_path, root, "trace.log");
  saved_env dbg;
  env_save(&dbg, "ADASPLASH_CACHE_DEBUG");

  fflush(stderr);
  int saved_fd = dup(STDERR_FILENO);
  int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (saved_fd < 0 || log_fd < 0 || dup2(log_fd, STDERR_FILENO) < 0) {
    check(0, "debug trace: redirect stderr");
    return;
  }
  close(log_fd);

  uint8_t key[32];
  make_key(key, "trace");
  char path[ASP_DISK_PATH_MAX];
  asp_disk_cache_entry_path(dir, key, path, sizeof(path));
  unsigned char *got = NULL;
  size_t n = 0;
  unsetenv("ADASPLASH_CACHE_DEBUG");
  asp_disk_cache_load(dir, key, &got, &n); /* silent */
  setenv("ADASPLASH_CACHE_DEBUG", "1", 1);
  asp_disk_cache_load(dir, key, &got, &n);
  asp_disk_cache_store(dir, key, "abc", 3);
  asp_disk_cache_load(dir, key, &got, &n);
  free(got);
  got = NULL;
  spit(path, "ASPLCBIN", 8);
  asp_disk_cache_load(dir, key, &got, &n);

  fflush(stderr);
  dup2(saved_fd, STDERR_FILENO);
  close(saved_fd);
  env_restore(&dbg);

  char hex[65];
  asp_hex(key, 32, hex);
  char expect[1024];
  snprintf(expect, sizeof(expect),
           "adasplash cache: miss %s\nadasplash cache: store %s\nadasplash cache: hit %s\n"
           "adasplash cache: rejected short-file %s\n",
           hex, hex, hex, hex);
  size_t len = 0;
  unsigned char *log = slurp(log_path, &len);
  check(log != NULL && len == strlen(expect) && memcmp(log, expect, len) == 0,
        "debug trace: one stderr line per event, only with ADASPLASH_CACHE_DEBUG=1");
  free(log);
}

/* ---------------------------------------------------------------------------------------------- */

int main(void) {
  char root[] = "/tmp/adasplash-disk-cache-test-XXXXXX";
  if (mkdtemp(root) == NULL) {
    printf("FAIL: mkdtemp\n");
    return 1;
  }
  char dir[ASP_DISK_PATH_MAX];
  join_path(dir, root, "cache");

  test_sha256();
  test_dir_resolution();
  test_basic(root, dir);
  test_damage(dir);
  test_unwritable(root);
  test_usage_clear(root);
  test_processes(root);
  test_threads(root);
  test_debug_trace(root, dir);

  remove_tree(root);
  check(!file_exists(root), "temp directory cleaned up");
  printf("%d/%d checks passed\n", g_checks - g_failures, g_checks);
  return g_failures == 0 ? 0 : 1;
}
