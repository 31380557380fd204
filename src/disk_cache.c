/* disk_cache.c - On-disk cache of compiled OpenCL program binaries (opaque blobs, 32-byte keys).
 *
 * See disk_cache.h for the entry format and guarantees. POSIX only; no OpenCL, no printing except
 * the optional ADASPLASH_CACHE_DEBUG=1 trace on stderr. */
#define _POSIX_C_SOURCE 200809L

#include "disk_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "sha256.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#define ASP_DISK_MAGIC "ASPLCBIN"
#define ASP_DISK_MAGIC_LEN 8
#define ASP_DISK_KEY_SIZE 32
#define ASP_DISK_ENTRY_SUFFIX ".aspbin"
#define ASP_DISK_TMP_INFIX ".aspbin.tmp."
/* Largest chunk handed to one read()/write() call (macOS rejects counts above INT_MAX). */
#define ASP_DISK_IO_CHUNK ((size_t)1 << 30)
/* Attempts at finding an unused temp name before giving up (only matters after pid reuse). */
#define ASP_DISK_TMP_ATTEMPTS 16

/* Process-wide counter that makes temp names unique across threads; pid covers processes. */
static atomic_ullong asp_disk_tmp_counter;

/* ---------------------------------------------------------------------------------------------- */
/* Debug trace                                                                                    */

static int asp_disk_debug_enabled(void) {
  const char *v = getenv("ADASPLASH_CACHE_DEBUG");
  return v != NULL && strcmp(v, "1") == 0;
}

/* One line: "adasplash cache: <event>[ <detail>] <hex key>". */
static void asp_disk_trace(const char *event, const char *detail, const uint8_t key[32]) {
  if (!asp_disk_debug_enabled()) return;
  char hex[2 * ASP_DISK_KEY_SIZE + 1];
  asp_hex(key, ASP_DISK_KEY_SIZE, hex);
  if (detail != NULL) {
    fprintf(stderr, "adasplash cache: %s %s %s\n", event, detail, hex);
  } else {
    fprintf(stderr, "adasplash cache: %s %s\n", event, hex);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                  */

static void asp_put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

static void asp_put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t asp_get_le32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

static uint64_t asp_get_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

/* Reads up to len bytes, stopping early only at end of file. *got = bytes read. 0 ok, -1 error. */
static int asp_read_full(int fd, void *buf, size_t len, size_t *got) {
  unsigned char *p = (unsigned char *)buf;
  size_t done = 0;
  while (done < len) {
    size_t chunk = len - done;
    if (chunk > ASP_DISK_IO_CHUNK) chunk = ASP_DISK_IO_CHUNK;
    ssize_t n = read(fd, p + done, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      *got = done;
      return -1;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  *got = done;
  return 0;
}

static int asp_write_full(int fd, const void *buf, size_t len) {
  const unsigned char *p = (const unsigned char *)buf;
  while (len > 0) {
    size_t chunk = len > ASP_DISK_IO_CHUNK ? ASP_DISK_IO_CHUNK : len;
    ssize_t n = write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int asp_ascii_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* True for "" and any capitalization of "off". */
static int asp_disk_is_off(const char *v) {
  if (v[0] == '\0') return 1;
  const char *off = "off";
  for (size_t i = 0;; ++i) {
    if (asp_ascii_lower((unsigned char)v[i]) != off[i]) return 0;
    if (off[i] == '\0') return 1;
  }
}

static int asp_has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && memcmp(s + n - m, suffix, m) == 0;
}

/* "*.aspbin.tmp.*" with a non-empty stem. */
static int asp_is_tmp_name(const char *s) {
  const char *hit = strstr(s, ASP_DISK_TMP_INFIX);
  return hit != NULL && hit != s;
}

/* out = base (trailing slashes trimmed when trim is set) + tail. 1 on success, 0 if too long. */
static int asp_join(char *out, size_t out_size, const char *base, int trim, const char *tail) {
  size_t n = strlen(base);
  if (trim) {
    while (n > 0 && base[n - 1] == '/') --n;
  }
  size_t m = strlen(tail);
  if (n >= out_size || m >= out_size - n) {
    out[0] = '\0';
    return 0;
  }
  memcpy(out, base, n);
  memcpy(out + n, tail, m + 1);
  return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* Directory handling                                                                             */

int asp_disk_cache_dir(const char *explicit_dir, char *out, size_t out_size) {
  if (out == NULL || out_size == 0) return 0;
  out[0] = '\0';

  if (explicit_dir != NULL) {
    if (asp_disk_is_off(explicit_dir)) return 0;
    return asp_join(out, out_size, explicit_dir, 0, "");
  }
  const char *env = getenv("ADASPLASH_CACHE_DIR");
  if (env != NULL) {
    if (asp_disk_is_off(env)) return 0;
    return asp_join(out, out_size, env, 0, "");
  }
  const char *xdg = getenv("XDG_CACHE_HOME");
  if (xdg != NULL && xdg[0] == '/') return asp_join(out, out_size, xdg, 1, "/adasplash-cl");
  const char *home = getenv("HOME");
  if (home != NULL && home[0] != '\0') {
    return asp_join(out, out_size, home, 1, "/.cache/adasplash-cl");
  }
  return 0;
}

/* mkdir one level; an already existing directory is success. */
static int asp_mkdir_one(const char *path) {
  if (mkdir(path, 0755) == 0) return 0;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  return -1;
}

int asp_disk_cache_prepare(const char *dir) {
  if (dir == NULL || dir[0] == '\0') return -1;
  char buf[ASP_DISK_PATH_MAX];
  size_t len = strlen(dir);
  if (len >= sizeof(buf)) return -1;
  memcpy(buf, dir, len + 1);

  for (char *p = buf + 1; *p != '\0'; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    int rc = asp_mkdir_one(buf);
    *p = '/';
    if (rc != 0) return -1;
  }
  return asp_mkdir_one(buf);
}

int asp_disk_cache_entry_path(const char *dir, const uint8_t key[32], char *out, size_t out_size) {
  if (dir == NULL || key == NULL || out == NULL || out_size == 0) return -1;
  char name[2 * ASP_DISK_KEY_SIZE + sizeof(ASP_DISK_ENTRY_SUFFIX) + 1];
  name[0] = '/';
  asp_hex(key, ASP_DISK_KEY_SIZE, name + 1);
  memcpy(name + 1 + 2 * ASP_DISK_KEY_SIZE, ASP_DISK_ENTRY_SUFFIX, sizeof(ASP_DISK_ENTRY_SUFFIX));
  return asp_join(out, out_size, dir, 0, name) ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* Load                                                                                           */

/* Delete a rejected entry, but only if path still names the file we examined: a concurrent writer
 * may already have renamed a fresh, valid entry over it. */
static void asp_disk_discard(const char *path, const struct stat *seen) {
  struct stat now;
  if (lstat(path, &now) == 0 && now.st_dev == seen->st_dev && now.st_ino == seen->st_ino) {
    (void)unlink(path);
  }
}

asp_disk_result asp_disk_cache_load(const char *dir, const uint8_t key[32], unsigned char **payload,
                                    size_t *size) {
  if (payload != NULL) *payload = NULL;
  if (size != NULL) *size = 0;
  if (dir == NULL || key == NULL || payload == NULL || size == NULL) return ASP_DISK_ERROR;

  char path[ASP_DISK_PATH_MAX];
  if (asp_disk_cache_entry_path(dir, key, path, sizeof(path)) != 0) {
    asp_disk_trace("error", "path-too-long", key);
    return ASP_DISK_ERROR;
  }

  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      asp_disk_trace("miss", NULL, key);
      return ASP_DISK_MISS;
    }
    asp_disk_trace("error", "open", key);
    return ASP_DISK_ERROR;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    asp_disk_trace("error", "not-a-regular-file", key);
    return ASP_DISK_ERROR;
  }

  const char *reason = NULL;
  const char *error = NULL;
  unsigned char *buf = NULL;
  uint64_t length = 0;
  unsigned char header[ASP_DISK_HEADER_BYTES];
  size_t got = 0;

  if (st.st_size == 0) {
    reason = "empty-file";
  } else if ((uint64_t)st.st_size < ASP_DISK_HEADER_BYTES) {
    reason = "short-file";
  } else if (asp_read_full(fd, header, sizeof(header), &got) != 0) {
    error = "read";
  } else if (got < sizeof(header)) {
    reason = "short-file";
  } else if (memcmp(header, ASP_DISK_MAGIC, ASP_DISK_MAGIC_LEN) != 0) {
    reason = "bad-magic";
  } else if (asp_get_le32(header + 8) != ASP_DISK_FORMAT_VERSION) {
    reason = "bad-version";
  } else if (asp_get_le32(header + 12) != ASP_DISK_HEADER_BYTES) {
    reason = "bad-header-size";
  } else if ((length = asp_get_le64(header + 16)) != (uint64_t)st.st_size - ASP_DISK_HEADER_BYTES) {
    reason = "length-mismatch";
  } else if (memcmp(header + 24, key, ASP_DISK_KEY_SIZE) != 0) {
    reason = "foreign-key";
  } else if (length > (uint64_t)SIZE_MAX - 1u) {
    error = "too-large";
  } else if ((buf = (unsigned char *)malloc(length > 0 ? (size_t)length : 1u)) == NULL) {
    error = "out-of-memory";
  } else if (asp_read_full(fd, buf, (size_t)length, &got) != 0) {
    error = "read";
  } else if (got < (size_t)length) {
    reason = "short-file";
  } else {
    unsigned char extra;
    uint8_t digest[ASP_SHA256_DIGEST_SIZE];
    if (asp_read_full(fd, &extra, 1, &got) != 0) {
      error = "read";
    } else if (got != 0) {
      reason = "long-file";
    } else {
      asp_sha256(buf, (size_t)length, digest);
      if (memcmp(digest, header + 56, sizeof(digest)) != 0) reason = "checksum-mismatch";
    }
  }
  close(fd);

  if (error != NULL || reason != NULL) {
    free(buf);
    if (error != NULL) {
      asp_disk_trace("error", error, key);
      return ASP_DISK_ERROR;
    }
    asp_disk_discard(path, &st);
    asp_disk_trace("rejected", reason, key);
    return ASP_DISK_REJECTED;
  }
  *payload = buf;
  *size = (size_t)length;
  asp_disk_trace("hit", NULL, key);
  return ASP_DISK_HIT;
}

/* ---------------------------------------------------------------------------------------------- */
/* Store / remove                                                                                 */

int asp_disk_cache_store(const char *dir, const uint8_t key[32], const void *payload, size_t size) {
  if (dir == NULL || key == NULL || (payload == NULL && size > 0)) return -1;

  char path[ASP_DISK_PATH_MAX];
  char tmp[ASP_DISK_PATH_MAX];
  if (asp_disk_cache_entry_path(dir, key, path, sizeof(path)) != 0) {
    asp_disk_trace("error", "path-too-long", key);
    return -1;
  }

  unsigned char header[ASP_DISK_HEADER_BYTES];
  memcpy(header, ASP_DISK_MAGIC, ASP_DISK_MAGIC_LEN);
  asp_put_le32(header + 8, ASP_DISK_FORMAT_VERSION);
  asp_put_le32(header + 12, ASP_DISK_HEADER_BYTES);
  asp_put_le64(header + 16, (uint64_t)size);
  memcpy(header + 24, key, ASP_DISK_KEY_SIZE);
  asp_sha256(payload, size, header + 56);

  int fd = -1;
  for (int attempt = 0; attempt < ASP_DISK_TMP_ATTEMPTS && fd < 0; ++attempt) {
    unsigned long long unique = atomic_fetch_add(&asp_disk_tmp_counter, 1ull);
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%llu", path, (long)getpid(), unique);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
      asp_disk_trace("error", "path-too-long", key);
      return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    asp_disk_trace("error", "create-temp", key);
    return -1;
  }

  int ok = asp_write_full(fd, header, sizeof(header)) == 0 &&
           (size == 0 || asp_write_full(fd, payload, size) == 0);
  if (close(fd) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) {
    (void)unlink(tmp);
    asp_disk_trace("error", "write", key);
    return -1;
  }
  asp_disk_trace("store", NULL, key);
  return 0;
}

int asp_disk_cache_remove(const char *dir, const uint8_t key[32]) {
  char path[ASP_DISK_PATH_MAX];
  if (asp_disk_cache_entry_path(dir, key, path, sizeof(path)) != 0) return -1;
  if (unlink(path) == 0 || errno == ENOENT || errno == ENOTDIR) return 0;
  return -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* Usage / clear                                                                                  */

/* Opens dir for scanning. Returns 1 with *out set, 0 if it does not exist, -1 on error. */
static int asp_disk_opendir(const char *dir, DIR **out) {
  *out = NULL;
  if (dir == NULL) return -1;
  DIR *d = opendir(dir);
  if (d == NULL) return errno == ENOENT ? 0 : -1;
  *out = d;
  return 1;
}

/* lstat of "<dir>/<name>" into *st; path receives the joined name. 0 ok, -1 error or too long. */
static int asp_disk_stat_child(const char *dir, const char *name, char *path, struct stat *st) {
  if (!asp_join(path, ASP_DISK_PATH_MAX, dir, 0, "/")) return -1;
  size_t n = strlen(path);
  if (!asp_join(path + n, ASP_DISK_PATH_MAX - n, name, 0, "")) return -1;
  return lstat(path, st);
}

/* Calls fn(path, stat, arg) for every regular file in dir that is a cache entry (and, with
 * with_tmp, a temp file of a store). Returns 1 when dir was scanned, 0 when it does not exist, -1
 * when it cannot be read or fn returned -1 for a file (the scan goes on). */
static int asp_disk_each_file(const char *dir, int with_tmp,
                              int (*fn)(const char *path, const struct stat *st, void *arg),
                              void *arg) {
  DIR *d;
  int rc = asp_disk_opendir(dir, &d);
  if (rc <= 0) return rc;
  char path[ASP_DISK_PATH_MAX];
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (e == NULL) {
      if (errno != 0) rc = -1;
      break;
    }
    if (!asp_has_suffix(e->d_name, ASP_DISK_ENTRY_SUFFIX) &&
        !(with_tmp && asp_is_tmp_name(e->d_name)))
      continue;
    struct stat st;
    if (asp_disk_stat_child(dir, e->d_name, path, &st) != 0) continue; /* vanished meanwhile */
    if (!S_ISREG(st.st_mode)) continue;
    if (fn(path, &st, arg) != 0) rc = -1;
  }
  closedir(d);
  return rc;
}

typedef struct asp_disk_tally {
  size_t count;
  unsigned long long bytes;
} asp_disk_tally;

static int asp_disk_count_file(const char *path, const struct stat *st, void *arg) {
  asp_disk_tally *t = (asp_disk_tally *)arg;
  (void)path;
  ++t->count;
  t->bytes += (unsigned long long)st->st_size;
  return 0;
}

static int asp_disk_remove_file(const char *path, const struct stat *st, void *arg) {
  (void)st;
  if (unlink(path) == 0) {
    ++((asp_disk_tally *)arg)->count;
    return 0;
  }
  return errno == ENOENT ? 0 : -1;
}

int asp_disk_cache_usage(const char *dir, size_t *entries, unsigned long long *bytes) {
  asp_disk_tally t = {0, 0};
  int rc = asp_disk_each_file(dir, 0, asp_disk_count_file, &t);
  if (entries != NULL) *entries = t.count;
  if (bytes != NULL) *bytes = t.bytes;
  return rc < 0 ? -1 : 0;
}

int asp_disk_cache_clear(const char *dir, size_t *removed) {
  asp_disk_tally t = {0, 0};
  int rc = asp_disk_each_file(dir, 1, asp_disk_remove_file, &t);
  if (removed != NULL) *removed = t.count;
  return rc < 0 ? -1 : 0;
}
