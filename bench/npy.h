/*
 * npy.h - writes float32 arrays as NumPy .npy files (format version 1.0, C order), so that
 * ../shared/gpu/peer_bench.py --inputs DIR can load the exact benchmark inputs.
 */
#ifndef ADASPLASH_BENCH_NPY_H
#define ADASPLASH_BENCH_NPY_H

#include <stddef.h>

/* Writes data (prod(shape) floats) to path with the given shape (ndim <= 8). Returns 0 on success,
 * -1 on failure (errno tells why). */
int bench_npy_write_f32(const char *path, const float *data, const size_t *shape, int ndim);

#endif /* ADASPLASH_BENCH_NPY_H */
