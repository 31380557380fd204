/* disk_cache.h - Internal on-disk cache of compiled OpenCL program binaries for adasplash-cl.
 *
 * Entries are opaque byte blobs stored under a 32-byte key (normally a SHA-256 of everything that
 * determines the binary). Each entry is one file "<dir>/<64 hex>.aspbin" with this layout, all
 * integers little-endian:
 *
 *   offset  size  field
 *        0     8  magic "ASPLCBIN"
 *        8     4  format version (1)
 *       12     4  header size in bytes (88)
 *       16     8  payload length
 *       24    32  key
 *       56    32  SHA-256 of the payload
 *       88     n  payload
 *
 * Stores are atomic (temp file + rename), loads verify every field before reporting a hit, and
 * entries that fail verification are deleted. Functions return codes only; nothing is printed
 * unless the environment variable ADASPLASH_CACHE_DEBUG=1, which traces one line per event to
 * stderr. All functions are safe to call concurrently from several threads and processes
 * (asp_disk_cache_dir reads the environment, so it must not race with setenv). */
#ifndef ADASPLASH_SRC_DISK_CACHE_H_
#define ADASPLASH_SRC_DISK_CACHE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ASP_DISK_FORMAT_VERSION 1u
#define ASP_DISK_HEADER_BYTES 88u
/* Upper bound for every path this module builds; longer paths are reported as failures. */
#define ASP_DISK_PATH_MAX 4096

typedef enum asp_disk_result {
  ASP_DISK_HIT = 0,
  ASP_DISK_MISS = 1,
  ASP_DISK_REJECTED = 2,
  ASP_DISK_ERROR = 3
} asp_disk_result;

/* Resolve the cache directory into out. Order: explicit_dir (API option, may be NULL) >
 * env ADASPLASH_CACHE_DIR > $XDG_CACHE_HOME/adasplash-cl > $HOME/.cache/adasplash-cl.
 * An explicit_dir or env value of "off" (any case) or the empty string disables the cache.
 * An empty or relative XDG_CACHE_HOME is ignored (XDG base-directory spec); an empty HOME counts as
 * unset. Returns 1 if a directory was written to out, 0 if disabled or impossible (no HOME, path
 * too long); on 0, out (if out_size > 0) holds the empty string. */
int asp_disk_cache_dir(const char *explicit_dir, char *out, size_t out_size);

/* mkdir -p (mode 0755, subject to umask). Returns 0 if it exists or was created, -1 otherwise. */
int asp_disk_cache_prepare(const char *dir);

/* Path of the entry for key: "<dir>/<64 lowercase hex of key>.aspbin". Returns 0, -1 if it does
 * not fit. */
int asp_disk_cache_entry_path(const char *dir, const uint8_t key[32], char *out, size_t out_size);

/* Load the entry for key.
 *   HIT:      *payload = malloc'd copy (caller frees; non-NULL even when empty), *size set.
 *   MISS:     no entry file (or the directory does not exist).
 *   REJECTED: a file existed but failed verification (short/long/empty file, bad magic, other
 *             format version, header size, payload length not matching the file size, key
 *             mismatch = a foreign entry, checksum mismatch); the file was removed (unless another
 *             writer has already replaced it with a new entry in the meantime).
 *   ERROR:    I/O or allocation error, or the path is not a regular file.
 * On anything but HIT, *payload is NULL and *size is 0. */
asp_disk_result asp_disk_cache_load(const char *dir, const uint8_t key[32], unsigned char **payload,
                                    size_t *size);

/* Store atomically: the entry is written to "<entry>.tmp.<pid>.<unique counter>" in the same
 * directory and rename()d over the entry, so readers never see a partial file and concurrent
 * writers of the same key (threads or processes) leave one valid entry. The directory must exist
 * (see asp_disk_cache_prepare). payload may be NULL when size is 0. Returns 0 on success, -1 on
 * failure (the temp file is removed; a directory that cannot be written is left untouched). */
int asp_disk_cache_store(const char *dir, const uint8_t key[32], const void *payload, size_t size);

/* Remove the entry for key. Returns 0 if removed or absent, -1 on error. */
int asp_disk_cache_remove(const char *dir, const uint8_t key[32]);

/* Number of entries (regular *.aspbin files) and their total bytes (headers included). Returns 0,
 * -1 if the dir cannot be read (a missing dir counts as empty and returns 0). */
int asp_disk_cache_usage(const char *dir, size_t *entries, unsigned long long *bytes);

/* Remove every *.aspbin entry and every stale "*.aspbin.tmp.*" file in dir (regular files only,
 * nothing else). *removed (may be NULL) = number of files removed. Returns 0, or -1 if the dir
 * cannot be read or a file could not be removed (a missing dir counts as empty and returns 0).
 * Do not run concurrently with stores into the same dir: an in-flight temp file would be removed
 * and that store would fail. */
int asp_disk_cache_clear(const char *dir, size_t *removed);

#ifdef __cplusplus
}
#endif

#endif /* ADASPLASH_SRC_DISK_CACHE_H_ */
