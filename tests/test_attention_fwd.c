/*
 * test_attention_fwd.c - fused entmax attention forward against the double-precision reference
 * over the option matrix (lengths incl. 1 and tile boundaries, causal and not, q_len != kv_len,
 * varlen, GQA, head dims 16..256, dtypes, alpha 1.5 / 2 / generic / per head, BSHD), plus:
 * V = ones gives O = 1, tau close to the exact one, the bitmap never skips a tile holding
 * probability, reported block sparsity conservative and close to the exact share, and the two
 * baselines (softmax flash vs a host softmax, dense CLBlast vs the reference).
 *
 * Tolerances: fp32 |O - O_ref| <= 1e-4 (solver residual <= 1e-5 on sum p, normalised by the
 * measured sum; fp32 dot products over <= 256 terms and sums over <= kv_len terms with |v| < 5);
 * 16-bit storage adds half an ulp of the stored output (2^-11 |O| for fp16, 2^-8 |O| for bf16);
 * inputs are rounded to the dtype before the reference sees them. tau: 2e-4 (1 + |tau|) in the
 * scaled space (|f'| >= c0 >= 1 near tau, so a 1e-5 residual moves tau by <= 1e-5; fp32 scores of
 * magnitude |x| carry |x| 2^-23).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "test_util.h"

static double unit(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

/* Softmax attention in double (for the softmax flash baseline). */
static void host_softmax_attention(const attn_problem *p, double *out) {
  const attn_case *c = &p->c;
  const int D = c->head_dim, G = c->q_heads / c->kv_heads;
  const double scale = p->ref.scale;
  double *s = (double *)malloc((size_t)c->kv_len * sizeof(double));
  memset(out, 0, p->q_n * sizeof(double));
  for (int b = 0; b < c->batch; ++b) {
    int lq = p->q_lens ? p->q_lens[b] : c->q_len, lk = p->kv_lens ? p->kv_lens[b] : c->kv_len;
    for (int h = 0; h < c->q_heads; ++h)
      for (int i = 0; i < lq; ++i) {
        int nv = c->causal ? i + (lk - lq) + 1 : lk;
        if (nv > lk) nv = lk;
        if (nv <= 0) continue;
        const double *qi = p->q + (((size_t)b * c->q_heads + h) * c->q_len + i) * D;
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < nv; ++j) {
          const double *kj = p->k + (((size_t)b * c->kv_heads + h / G) * c->kv_len + j) * D;
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
          s[j] = dot * scale;
          m = fmax(m, s[j]);
        }
        for (int j = 0; j < nv; ++j) sum += (s[j] = exp(s[j] - m));
        double *oi = out + (((size_t)b * c->q_heads + h) * c->q_len + i) * D;
        for (int j = 0; j < nv; ++j) {
          const double *vj = p->v + (((size_t)b * c->kv_heads + h / G) * c->kv_len + j) * D;
          for (int d = 0; d < D; ++d) oi[d] += s[j] / sum * vj[d];
        }
      }
  }
  free(s);
}

static int check_case(adasplash_context *ctx, attn_case c, int ones) {
  c = attn_case_dtype_override(c);
  attn_problem p;
  attn_problem_make(ctx, &c, &p);
  if (ones) {
    for (size_t i = 0; i < p.kv_n; ++i) p.v[i] = 1.0;
    attn_pack(&p, 'v', p.v, p.v_host);
  }
  char label[256];
  attn_case_label(&c, label, sizeof label);
  if (ones) strncat(label, " V=1", sizeof label - strlen(label) - 1);
  attn_run r;
  attn_run_library(ctx, &p, NULL, 0, &r);
  if (r.skipped) {
    attn_problem_free(&p);
    return 1;
  }
  double *ref_out = (double *)calloc(p.q_n, sizeof(double));
  const size_t rows = (size_t)c.batch * c.q_heads * c.q_len;
  double *ref_tau = (double *)calloc(rows, sizeof(double));
  double *ref_p = NULL;
  int ok = 1;
  if (c.algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH) {
    host_softmax_attention(&p, ref_out);
  } else {
    ref_p = (double *)calloc(rows * (size_t)c.kv_len, sizeof(double));
    if (ref_attention_forward(&p.ref, p.q, p.k, p.v, ref_out, ref_tau, ref_p) != 0) {
      printf("FAIL: %s: reference rejected the problem\n", label);
      exit(1);
    }
  }
  /* Where the products round P to 16 bits (the NVIDIA tensor-core path), the error that adds is at
   * most u * sum_j p_ij |v_jd| to first order (attn_rounding_magnitudes); twice that covers the
   * second-order terms and the fp32 accumulation. */
  double u = 0.0, *mo = NULL;
  if (attn_products_round(ctx, &c, &u)) {
    double *probs = ref_p;
    if (!probs) {
      probs = (double *)calloc(rows * (size_t)c.kv_len, sizeof(double));
      attn_softmax_probs(&p, probs);
    }
    mo = (double *)calloc(p.q_n, sizeof(double));
    attn_rounding_magnitudes(&p, probs, NULL, mo, NULL, NULL, NULL, NULL);
    if (probs != ref_p) free(probs);
  }
  double worst = 0.0;
  size_t worst_at = 0;
  for (size_t i = 0; i < p.q_n; ++i) {
    double tol = 1e-4 + unit(c.dtype) * fabs(ref_out[i]) + (mo ? 2.0 * u * mo[i] : 0.0);
    double e = fabs(r.out[i] - ref_out[i]) / tol;
    if (!(e <= worst)) {
      worst = isnan(e) ? INFINITY : e;
      worst_at = i;
    }
  }
  ok &= test_check(worst <= 1.0, "%s: O within tolerance (worst %.3g x tol at %zu: %.6g vs %.6g)",
                   label, worst, worst_at, r.out[worst_at], ref_out[worst_at]);
  if (r.out_infer) {
    double wi = 0.0;
    for (size_t i = 0; i < p.q_n; ++i) {
      double e = fabs(r.out_infer[i] - ref_out[i]) /
                 (1e-4 + unit(c.dtype) * fabs(ref_out[i]) + (mo ? 2.0 * u * mo[i] : 0.0));
      if (!(e <= wi)) wi = isnan(e) ? INFINITY : e;
    }
    ok &= test_check(wi <= 1.0,
                     "%s: O without a saved buffer (inference) within tolerance (worst %.3g x tol)",
                     label, wi);
  }
  if (c.algorithm == ADASPLASH_ATTN_ENTMAX) {
    /* tau against the exact one. */
    double tw = 0;
    for (size_t rr = 0; rr < rows; ++rr) {
      double t = ref_tau[rr], got = r.tau[rr];
      if (isinf(t)) {
        if (!isinf(got)) tw = INFINITY;
        continue;
      }
      tw = fmax(tw, fabs(got - t) / (2e-4 * (1.0 + fabs(t))));
    }
    ok &= test_check(tw <= 1.0, "%s: tau within tolerance of the exact tau (worst %.3g x tol)",
                     label, tw);
    /* Bitmap: conservative, and its sparsity close to the exact share of empty tiles. */
    const int T = r.tile;
    const int nqb = (c.q_len + T - 1) / T, nkb = (c.kv_len + T - 1) / T;
    long missed = 0, visible = 0, empty = 0, skipped = 0;
    unsigned char *flags = (unsigned char *)malloc((size_t)nqb * nkb);
    for (int b = 0; b < c.batch; ++b)
      for (int h = 0; h < c.q_heads; ++h) {
        const double *pbh = ref_p + ((size_t)b * c.q_heads + h) * c.q_len * (size_t)c.kv_len;
        ref_block_sparsity(&p.ref, pbh, b, T, T, flags);
        for (int qb = 0; qb < nqb; ++qb)
          for (int kb = 0; kb < nkb; ++kb) {
            int act = r.active[(((size_t)b * c.q_heads + h) * nqb + qb) * nkb + kb];
            /* A tile holding any nonzero reference probability must be active. */
            int has_mass = 0;
            for (int i = qb * T; i < (qb + 1) * T && i < c.q_len && !has_mass; ++i)
              for (int j = kb * T; j < (kb + 1) * T && j < c.kv_len; ++j)
                if (pbh[(size_t)i * c.kv_len + j] > 0) {
                  has_mass = 1;
                  break;
                }
            if (has_mass && !act) ++missed;
            /* Visible = reference says it is a visible tile (flag 1 = visible and empty). */
            if (has_mass || flags[(size_t)qb * nkb + kb]) {
              ++visible;
              if (flags[(size_t)qb * nkb + kb]) ++empty;
              if (!act) ++skipped;
            }
          }
      }
    free(flags);
    ok &= test_check(missed == 0, "%s: no tile with probability mass is skipped (%ld were)", label,
                     missed);
    double ref_sparsity = visible ? (double)empty / (double)visible : 0.0;
    double our_sparsity = visible ? (double)skipped / (double)visible : 0.0;
    ok &= test_check(fabs(r.stats.block_sparsity - our_sparsity) < 1e-9 || visible == 0 || c.varlen,
                     "%s: reported block sparsity %.4f matches the bitmap %.4f", label,
                     r.stats.block_sparsity, our_sparsity);
    ok &= test_check(our_sparsity <= ref_sparsity + 1e-12 && our_sparsity >= ref_sparsity - 0.15,
                     "%s: block sparsity %.4f conservative and close to the exact %.4f", label,
                     our_sparsity, ref_sparsity);
    /* Every active tile was visited by the last refinement sweep; no sweep visits a tile twice. */
    ok &= test_check(
        r.stats.refine_tiles >= r.stats.active_tiles &&
            r.stats.refine_tiles <= (unsigned long)r.stats.max_sweeps * r.stats.visible_tiles,
        "%s: refinement visits %lu tiles (active %lu, visible %lu, sweeps max %d)", label,
        r.stats.refine_tiles, r.stats.active_tiles, r.stats.visible_tiles, r.stats.max_sweeps);
    ok &= test_check(r.stats.converged, "%s: converged (residual %.3g, sweeps max %d mean %.2f)",
                     label, r.stats.max_residual, r.stats.max_sweeps, r.stats.mean_sweeps);
    if (getenv("TEST_VERBOSE"))
      printf(
          "  %s: sparsity %.3f (exact %.3f), refinement visits %lu of %lu tiles, sweeps max %d "
          "mean %.2f, residual %.2g\n",
          label, our_sparsity, ref_sparsity, r.stats.refine_tiles, r.stats.visible_tiles,
          r.stats.max_sweeps, r.stats.mean_sweeps, r.stats.max_residual);
  }
  free(ref_out);
  free(mo);
  free(ref_tau);
  free(ref_p);
  attn_run_free(&r);
  attn_problem_free(&p);
  return ok;
}

/* Tiny cases for the simulator (tests/run_oclgrind.sh): every kernel of the forward, every
 * dtype, causal and not, varlen, GQA, per-head alpha, BSHD, and both baselines. */
/* Programs a prepare of desc compiled or loaded. */
static unsigned long programs_added(adasplash_context *ctx, const adasplash_attention_desc *d) {
  adasplash_cache_stats before, after;
  memset(&before, 0, sizeof before);
  before.struct_size = sizeof before;
  after = before;
  adasplash_context_get_cache_stats(ctx, &before);
  test_require(ctx, adasplash_attention_prepare(ctx, d), "adasplash_attention_prepare");
  adasplash_context_get_cache_stats(ctx, &after);
  return (after.builds + after.disk_hits) - (before.builds + before.disk_hits);
}

/* The NVIDIA path compiles the entmax programs per alpha class (cl/abi.h): a desc with scalar
 * alpha 1.5 or 2 runs programs of its own, any other alpha and a per-head buffer the programs for
 * any alpha; the portable path has one set for every alpha. Checked on a fresh context by the
 * programs each prepare adds (an inference desc: the forward program only) and by the forward of
 * a desc whose class was not prepared. */
static void check_alpha_classes(const adasplash_context_options *opts) {
  adasplash_context *ctx = test_context(opts);
  double u;
  const int nv = attn_products_round_unit(ctx, ADASPLASH_BF16, 16, &u);
  /* q_len past decode_max_q: the prepare does not add the decode program. */
  adasplash_attention_desc d = test_attention_desc(ADASPLASH_BF16, 1, 2, 1, 40, 40, 16, 1, 1.25f);
  d.flags = ADASPLASH_ATTN_FORWARD_ONLY;
  programs_added(ctx, &d); /* any alpha (and the programs shared by every class) */
  cl_mem q = test_buffer(ctx, NULL, 2 * 40 * 16 * 2), kv = test_buffer(ctx, NULL, 40 * 16 * 2);
  cl_mem out = test_buffer(ctx, NULL, 2 * 40 * 16 * 2);
  d.alpha = 1.5f;
  const adasplash_status st =
      adasplash_attention_forward(ctx, &d, NULL, q, kv, kv, out, NULL, NULL, 0, NULL, NULL);
  test_check(st == (nv ? ADASPLASH_ERROR_NOT_PREPARED : ADASPLASH_SUCCESS),
             "alpha classes: a forward with alpha 1.5 after a prepare with 1.25 returns %d (%s)",
             (int)st, nv ? "not prepared on the NVIDIA path" : "success on the portable path");
  const unsigned long want = nv ? 1 : 0;
  unsigned long n = programs_added(ctx, &d);
  test_check(n == want, "alpha classes: alpha 1.5 adds %lu programs (expected %lu)", n, want);
  n = programs_added(ctx, &d);
  test_check(n == 0, "alpha classes: alpha 1.5 again adds %lu programs (expected 0)", n);
  d.alpha = 2.0f;
  n = programs_added(ctx, &d);
  test_check(n == want, "alpha classes: alpha 2 adds %lu programs (expected %lu)", n, want);
  float alphas[2] = {1.5f, 1.5f};
  d.alpha_buf = test_buffer(ctx, alphas, sizeof alphas);
  n = programs_added(ctx, &d);
  test_check(n == 0, "alpha classes: a per-head alpha buffer adds %lu programs (expected 0)", n);
  test_require(
      ctx, adasplash_attention_forward(ctx, &d, NULL, q, kv, kv, out, NULL, NULL, 0, NULL, NULL),
      "forward with a per-head alpha buffer");
  unsigned short first[16];
  test_read(ctx, out, first, sizeof first); /* blocking: the forward has run */
  clReleaseMemObject(d.alpha_buf);
  clReleaseMemObject(q);
  clReleaseMemObject(kv);
  clReleaseMemObject(out);

  /* A cold training prepare compiles the same programs whether its programs are compiled up
   * front on threads (nv_build_threads=1, NVIDIA path) or one after another: a program the up
   * front compile mispredicted would be one more here. Not on oclgrind, whose compiler crashes
   * when two threads build at once (the NVIDIA path runs there only emulated, for tests). */
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (adasplash_context_get_device_info(ctx, &info) != ADASPLASH_SUCCESS ||
      strstr(info.platform_name, "Oclgrind")) {
    adasplash_context_release(ctx);
    return;
  }
  adasplash_context_release(ctx);
  d = test_attention_desc(ADASPLASH_BF16, 1, 2, 1, 40, 40, 16, 1, 2.0f);
  d.flags = ADASPLASH_ATTN_SAVE_ALPHA_GRAD;
  unsigned long made[2];
  for (int threads = 0; threads < 2; ++threads) {
    char tune[600];
    snprintf(tune, sizeof tune, "%s%snv_build_threads=%d", opts->tune ? opts->tune : "",
             opts->tune && opts->tune[0] ? "," : "", threads);
    adasplash_context_options o = *opts;
    o.tune = tune;
    adasplash_context *fresh = test_context(&o);
    made[threads] = programs_added(fresh, &d);
    adasplash_context_release(fresh);
  }
  test_check(made[0] == made[1] && made[0] >= 3,
             "alpha classes: a cold training prepare compiles %lu programs one after another, %lu "
             "with nv_build_threads=1 (equal, at least 3)",
             made[0], made[1]);
}

static void run_simulator_cases(adasplash_context *ctx, attn_case base) {
  static const adasplash_dtype dtypes[] = {ADASPLASH_F32, ADASPLASH_F16, ADASPLASH_BF16};
  attn_case c;
  for (size_t d = 0; d < 3; ++d) {
    c = base;
    c.dtype = dtypes[d];
    c.causal = d != 1;
    check_case(ctx, c, 0);
  }
  c = base;
  c.batch = 3;
  c.varlen = 1;
  c.q_heads = 4;
  c.kv_heads = 2;
  c.per_head_alpha = 1;
  c.bshd = 1;
  check_case(ctx, c, 0);
  /* Scalar alphas with programs of their own on the NVIDIA path (2) and without (1.25). */
  c = base;
  c.dtype = ADASPLASH_F16;
  c.alpha = 2.0;
  check_case(ctx, c, 0);
  c.alpha = 1.25;
  check_case(ctx, c, 0);
  c = base;
  c.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  check_case(ctx, c, 0);
  c.algorithm = ADASPLASH_ATTN_ENTMAX_DENSE;
  check_case(ctx, c, 0);
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  int simulator = argc > 1 && strcmp(argv[1], "--oclgrind") == 0;
  adasplash_context_options opts;
  adasplash_context_options_init(&opts);
  /* Small tiles keep the simulator fast and still give several tiles per row. */
  char tune[512];
  if (simulator)
    opts.tune = test_tune_with_env(tune, sizeof tune, "attn_tile=16,attn_wg=16,attn_dk=16");
  adasplash_context *ctx = test_context(&opts);
  test_print_device(ctx);
  const attn_case base = {
      1, 2, 1, 64, 64, 32, 1, ADASPLASH_F32, 1.5, 0, 0, 0, 0.0, 0.0, 0, ADASPLASH_ATTN_ENTMAX, 1};
  attn_case c;
  if (simulator) {
    attn_case tiny = base;
    tiny.q_len = 21;
    tiny.kv_len = 37;
    tiny.head_dim = 16;
    check_alpha_classes(&opts);
    run_simulator_cases(ctx, tiny);
    adasplash_context_release(ctx);
    return test_finish("test_attention_fwd --oclgrind");
  }
  /* Lengths: 1, tile boundaries, odd sizes; causal and not. */
  static const int lens[] = {1, 7, 63, 64, 65, 130};
  for (size_t l = 0; l < sizeof lens / sizeof lens[0]; ++l)
    for (int causal = 0; causal < 2; ++causal) {
      c = base;
      c.q_len = c.kv_len = lens[l];
      c.causal = causal;
      c.seed = 100 + l;
      check_case(ctx, c, 0);
    }
  /* q_len != kv_len (bottom-right causal: some rows see no key when q_len > kv_len); 2500 keys
   * are more tiles than one chunk of the threshold pass's visit mask (ASP_TAU_VISIT_WORDS). */
  const int qk[][2] = {{37, 130}, {130, 37}, {1, 200}, {100, 1}, {40, 2500}};
  for (size_t i = 0; i < sizeof qk / sizeof qk[0]; ++i)
    for (int causal = 0; causal < 2; ++causal) {
      c = base;
      c.q_len = qk[i][0];
      c.kv_len = qk[i][1];
      c.causal = causal;
      check_case(ctx, c, 0);
    }
  /* GQA and varlen. */
  for (int hk = 1; hk <= 4; hk *= 2) {
    c = base;
    c.q_heads = 4;
    c.kv_heads = hk;
    c.q_len = c.kv_len = 90;
    check_case(ctx, c, 0);
  }
  c = base;
  c.batch = 3;
  c.varlen = 1;
  c.q_len = c.kv_len = 100;
  check_case(ctx, c, 0);
  c.causal = 0;
  check_case(ctx, c, 0);
  /* Head dims (incl. not multiples of 16), dtypes, alphas, layouts, scale. */
  static const int dims[] = {16, 32, 64, 96, 128, 256, 40};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i) {
    if (quick && dims[i] > 64) continue;
    c = base;
    c.head_dim = dims[i];
    c.q_len = c.kv_len = 70;
    check_case(ctx, c, 0);
  }
  static const adasplash_dtype dtypes[] = {ADASPLASH_F16, ADASPLASH_BF16};
  for (size_t i = 0; i < 2; ++i) {
    c = base;
    c.dtype = dtypes[i];
    c.q_len = c.kv_len = 80;
    check_case(ctx, c, 0);
    c.bshd = 1;
    c.batch = 2;
    check_case(ctx, c, 0);
  }
  static const double alphas[] = {2.0, 1.25, 1.75, 1.1};
  for (size_t i = 0; i < sizeof alphas / sizeof alphas[0]; ++i) {
    c = base;
    c.alpha = alphas[i];
    c.q_len = c.kv_len = 77;
    check_case(ctx, c, 0);
  }
  c = base;
  c.per_head_alpha = 1;
  c.q_heads = 6;
  c.kv_heads = 3;
  check_case(ctx, c, 0);
  c = base;
  c.bshd = 1;
  c.batch = 2;
  c.scale = 0.3;
  check_case(ctx, c, 0);
  /* V = ones gives O = 1 on every row with a visible key. */
  c = base;
  c.q_len = 50;
  c.kv_len = 90;
  c.per_head_alpha = 1;
  c.q_heads = 4;
  c.kv_heads = 2;
  check_case(ctx, c, 1);
  /* Sparse (locality) inputs: real block skipping. */
  c = base;
  c.beta = 2.0;
  c.q_len = c.kv_len = quick ? 256 : 512;
  c.head_dim = 64;
  check_case(ctx, c, 0);
  c.alpha = 2.0;
  check_case(ctx, c, 0);
  c.alpha = 1.3;
  check_case(ctx, c, 0);
  /* Baselines. */
  c = base;
  c.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  c.q_len = 70;
  c.kv_len = 100;
  check_case(ctx, c, 0);
  c.varlen = 1;
  c.batch = 3;
  c.q_heads = 4;
  c.kv_heads = 2;
  check_case(ctx, c, 0);
  c = base;
  c.algorithm = ADASPLASH_ATTN_ENTMAX_DENSE;
  c.q_len = 70;
  c.kv_len = 100;
  c.per_head_alpha = 1;
  c.q_heads = 4;
  c.kv_heads = 2;
  check_case(ctx, c, 0);
  c.varlen = 1;
  c.batch = 3;
  c.dtype = ADASPLASH_BF16;
  check_case(ctx, c, 0);
  adasplash_context_release(ctx);
  return test_finish("test_attention_fwd");
}
