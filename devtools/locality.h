/*
 * locality.h - deterministic benchmark inputs (adasplash-bench, adasplash-tune): the splitmix64 +
 * Box-Muller normal generator, the locality attention inputs (random walk keys and queries, below)
 * and the two row-entmax input kinds (gaussian, peaked).
 *
 * PRNG (documented so other tools can reproduce the data bit for bit):
 *  - splitmix64: state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
 *    z = (z ^ z>>27) * 0x94D049BB133111EB; output z ^ z>>31. M(x) below is that finaliser applied
 *    to x (without the increment).
 *  - Streams: a (seed, stream) pair starts at state = M(seed) ^ M(stream ^ 0xD1B54A32D192ED03).
 *    Stream numbers: locality (batch b, head h) = 1<<56 | b<<28 | h; the attention output gradient
 *    of (b, h) = 2<<56 | b<<28 | h; entmax-rows row r = 3<<56 | r.
 *  - Uniform: (next >> 11) * 2^-53 in [0, 1).
 *  - Normal: Box-Muller on two uniforms u1 = 1 - U, u2 = U': r = sqrt(-2 ln u1),
 *    z0 = r cos(2 pi u2) then z1 = r sin(2 pi u2) (the pair is used in that order).
 *  All arithmetic in double; the results are rounded to float32 once.
 *
 * Locality generator, one stream per (batch, head), for t = 0..N-1 in this order per step:
 *   D normals e (u_0 = e at t = 0, else u_t = u_{t-1} + sigma * e),
 *   u~_t = sqrt(D) * u_t / |u_t|,
 *   D normals xi   -> q_t = beta * u~_t + xi,
 *   D normals zeta -> k_t = u~_t + zeta,
 *   D normals      -> v_t.
 * Tensors are float32, contiguous [B, H, N, D] (the library's BHSD layout).
 *
 * Row inputs (one stream per row):
 *   gaussian: x = scale * N(0, 1) for every column.
 *   peaked:   background x = scale * 0.1 * N(0, 1) for every column, then `peaks` columns drawn
 *             uniformly (floor(U * cols), repeats allowed) are set to scale * (4 + N(0, 1)):
 *             a few large entries on a small-noise background (small entmax support).
 */
#ifndef ADASPLASH_BENCH_LOCALITY_H
#define ADASPLASH_BENCH_LOCALITY_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_rng {
  uint64_t state;
  int has_spare;
  double spare;
} bench_rng;

/* Stream tags (bits 56..63 of the stream number). */
#define BENCH_STREAM_LOCALITY 1u
#define BENCH_STREAM_DOUT 2u
#define BENCH_STREAM_ROWS 3u

uint64_t bench_stream_id(unsigned tag, uint64_t batch, uint64_t head);
void bench_rng_init(bench_rng *rng, uint64_t seed, uint64_t stream);
uint64_t bench_rng_next(bench_rng *rng);
double bench_rng_uniform(bench_rng *rng);
double bench_rng_normal(bench_rng *rng);

typedef struct bench_locality_params {
  int batch, heads, len, head_dim;
  double beta, sigma;
  uint64_t seed;
} bench_locality_params;

/* Fills q, k, v (each batch*heads*len*head_dim floats, [B,H,N,D]). */
void bench_locality_generate(const bench_locality_params *p, float *q, float *k, float *v);

/* Fills x ([B,H,N,D]) with N(0,1) from the output-gradient streams of (seed, b, h). */
void bench_dout_generate(const bench_locality_params *p, float *x);

typedef enum bench_rows_kind { BENCH_ROWS_GAUSSIAN = 0, BENCH_ROWS_PEAKED = 1 } bench_rows_kind;

/* Fills x (rows*cols floats, row-major) with the given kind (see the banner). */
void bench_rows_generate(bench_rows_kind kind, size_t rows, size_t cols, double scale, int peaks,
                         uint64_t seed, float *x);

#endif /* ADASPLASH_BENCH_LOCALITY_H */
