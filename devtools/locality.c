/*
 * locality.c - deterministic benchmark inputs: splitmix64 streams, Box-Muller normals, the locality
 * attention generator and the gaussian / peaked rows of the entmax-rows mode. The exact
 * definitions are in locality.h.
 */
#include "locality.h"

#include <math.h>

static const double bench_two_pi = 6.283185307179586476925286766559;

static uint64_t bench_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t bench_stream_id(unsigned tag, uint64_t batch, uint64_t head) {
  return ((uint64_t)tag << 56) | (batch << 28) | head;
}

void bench_rng_init(bench_rng *rng, uint64_t seed, uint64_t stream) {
  rng->state = bench_mix64(seed) ^ bench_mix64(stream ^ 0xD1B54A32D192ED03ull);
  rng->has_spare = 0;
  rng->spare = 0.0;
}

uint64_t bench_rng_next(bench_rng *rng) {
  rng->state += 0x9E3779B97F4A7C15ull;
  return bench_mix64(rng->state);
}

double bench_rng_uniform(bench_rng *rng) {
  return (double)(bench_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

double bench_rng_normal(bench_rng *rng) {
  if (rng->has_spare) {
    rng->has_spare = 0;
    return rng->spare;
  }
  double u1 = 1.0 - bench_rng_uniform(rng); /* (0, 1]: log is finite */
  double u2 = bench_rng_uniform(rng);
  double r = sqrt(-2.0 * log(u1));
  rng->spare = r * sin(bench_two_pi * u2);
  rng->has_spare = 1;
  return r * cos(bench_two_pi * u2);
}

void bench_locality_generate(const bench_locality_params *p, float *q, float *k, float *v) {
  const size_t n = (size_t)p->len, d = (size_t)p->head_dim;
  const double root_d = sqrt((double)d);
  double u[256 * 2];
  double *walk = u, *unit = u + 256;
  for (int b = 0; b < p->batch; ++b) {
    for (int h = 0; h < p->heads; ++h) {
      bench_rng rng;
      bench_rng_init(&rng, p->seed,
                     bench_stream_id(BENCH_STREAM_LOCALITY, (uint64_t)b, (uint64_t)h));
      size_t base = ((size_t)b * (size_t)p->heads + (size_t)h) * n * d;
      for (size_t t = 0; t < n; ++t) {
        double norm2 = 0.0;
        for (size_t i = 0; i < d; ++i) {
          double e = bench_rng_normal(&rng);
          walk[i] = t == 0 ? e : walk[i] + p->sigma * e;
          norm2 += walk[i] * walk[i];
        }
        double f = norm2 > 0.0 ? root_d / sqrt(norm2) : 0.0;
        for (size_t i = 0; i < d; ++i) unit[i] = walk[i] * f;
        float *qt = q + base + t * d, *kt = k + base + t * d, *vt = v + base + t * d;
        for (size_t i = 0; i < d; ++i) qt[i] = (float)(p->beta * unit[i] + bench_rng_normal(&rng));
        for (size_t i = 0; i < d; ++i) kt[i] = (float)(unit[i] + bench_rng_normal(&rng));
        for (size_t i = 0; i < d; ++i) vt[i] = (float)bench_rng_normal(&rng);
      }
    }
  }
}

void bench_dout_generate(const bench_locality_params *p, float *x) {
  const size_t per_head = (size_t)p->len * (size_t)p->head_dim;
  for (int b = 0; b < p->batch; ++b) {
    for (int h = 0; h < p->heads; ++h) {
      bench_rng rng;
      bench_rng_init(&rng, p->seed, bench_stream_id(BENCH_STREAM_DOUT, (uint64_t)b, (uint64_t)h));
      float *dst = x + ((size_t)b * (size_t)p->heads + (size_t)h) * per_head;
      for (size_t i = 0; i < per_head; ++i) dst[i] = (float)bench_rng_normal(&rng);
    }
  }
}

void bench_rows_generate(bench_rows_kind kind, size_t rows, size_t cols, double scale, int peaks,
                         uint64_t seed, float *x) {
  for (size_t r = 0; r < rows; ++r) {
    bench_rng rng;
    bench_rng_init(&rng, seed, bench_stream_id(BENCH_STREAM_ROWS, 0, (uint64_t)r));
    float *row = x + r * cols;
    if (kind == BENCH_ROWS_GAUSSIAN) {
      for (size_t c = 0; c < cols; ++c) row[c] = (float)(scale * bench_rng_normal(&rng));
      continue;
    }
    for (size_t c = 0; c < cols; ++c) row[c] = (float)(scale * 0.1 * bench_rng_normal(&rng));
    for (int i = 0; i < peaks; ++i) {
      size_t c = (size_t)(bench_rng_uniform(&rng) * (double)cols);
      if (c >= cols) c = cols - 1;
      row[c] = (float)(scale * (4.0 + bench_rng_normal(&rng)));
    }
  }
}
