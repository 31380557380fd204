/*
 * npy.c - minimal NumPy .npy writer (format 1.0) for float32 C-order arrays: magic "\x93NUMPY",
 * version 1.0, a little-endian uint16 header length, then the header dict padded with spaces and
 * ended by '\n' so that the data starts at a multiple of 64 bytes, then the raw data. The dtype
 * descriptor follows the host byte order ('<f4' or '>f4').
 */
#include "npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int bench_host_little_endian(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

int bench_npy_write_f32(const char *path, const float *data, const size_t *shape, int ndim) {
  if (!path || (!data && ndim > 0) || ndim < 0 || ndim > 8) {
    errno = EINVAL;
    return -1;
  }
  char dict[512];
  int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     bench_host_little_endian() ? "<f4" : ">f4");
  size_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    len += snprintf(dict + len, sizeof dict - (size_t)len, "%zu%s", shape[i],
                    (ndim == 1 || i + 1 < ndim) ? ", " : "");
    count *= shape[i];
  }
  if (ndim == 1) len -= 1; /* "(n,)" */
  len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
  /* magic(6) + version(2) + header length(2) + dict + padding + '\n' = multiple of 64 */
  size_t total = 10 + (size_t)len + 1;
  size_t pad = (64 - total % 64) % 64;
  size_t header_len = (size_t)len + pad + 1;
  char header[640];
  memcpy(header, "\x93NUMPY\x01\x00", 8);
  header[8] = (char)(header_len & 0xff);
  header[9] = (char)((header_len >> 8) & 0xff);
  memcpy(header + 10, dict, (size_t)len);
  memset(header + 10 + len, ' ', pad);
  header[10 + header_len - 1] = '\n';

  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int ok = fwrite(header, 1, 10 + header_len, f) == 10 + header_len;
  if (ok && count) ok = fwrite(data, sizeof(float), count, f) == count;
  if (fclose(f) != 0) ok = 0;
  if (!ok && errno == 0) errno = EIO;
  return ok ? 0 : -1;
}
