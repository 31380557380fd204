/*
 * test_concurrency.c - 8 threads share one context, each on its own command queue, and run a mixed
 * workload at once: attention forward, attention backward, row entmax forward and backward, in
 * fp32 and bf16 (even / odd threads), several iterations each, half the threads with their own
 * workspace and half letting the library allocate one per call. Every call must succeed and every
 * result must be bitwise identical to the same calls made single-threaded first, which are
 * themselves checked against the double reference. One exception, with --atomic-dq: the fused
 * backward (the default, tuning key attn_bwd_fused=1) sums dQ with float atomics whose order
 * between work-groups varies, so dQ is compared within the rounding of a reordered fp32 sum
 * (1e-5 max(1, max |dQ|), plus one ulp of the stored dtype for bf16). CTest runs both: the split
 * backward (attn_bwd_fused=0) bitwise, the fused one with --atomic-dq.
 *
 * Reference tolerances of the single-threaded run are those of test_attention_fwd/bwd and
 * test_entmax_rows: O 1e-4 + half an ulp of the stored dtype (2^-8 |O| bf16); gradients 1e-4
 * max(1, max |g|) + half an ulp; rows 2e-6 + 8 ulp of max |x| times c0 + half an ulp.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_harness.h"
#include "test_util.h"

#define THREADS 8
#define ITERS 5
#define R_ROWS 24
#define R_COLS 150
#define SETS 2 /* problem sets: 0 fp32, 1 bf16 */

static double unit(adasplash_dtype d) {
  return d == ADASPLASH_F32 ? 0.0 : (d == ADASPLASH_F16 ? ldexp(1.0, -11) : ldexp(1.0, -8));
}

/* One problem set: attention and rows inputs on the device (shared, read-only) and the results
 * of the single-threaded run (host bytes in the dtype). */
typedef struct problem_set {
  adasplash_dtype dtype;
  attn_problem attn;
  void *dout_host;
  cl_mem q, k, v, dout, x, dy;
  size_t saved_bytes, ws_bytes, r_bytes;
  adasplash_entmax_desc rdesc;
  /* single-threaded results */
  void *out, *dq, *dk, *dv, *y, *dx;
} problem_set;

typedef struct outputs {
  cl_mem out, saved, ws, dq, dk, dv, y, dx;
  void *h_out, *h_dq, *h_dk, *h_dv, *h_y, *h_dx;
} outputs;

static cl_mem device_buffer(cl_context c, const void *data, size_t bytes) {
  cl_int err;
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE | (data ? CL_MEM_COPY_HOST_PTR : 0), bytes,
                            (void *)data, &err);
  if (err != CL_SUCCESS) {
    printf("FAIL: clCreateBuffer(%zu) = %d\n", bytes, (int)err);
    exit(1);
  }
  return m;
}

static void outputs_make(cl_context c, const problem_set *s, int own_ws, outputs *o) {
  const attn_problem *p = &s->attn;
  o->out = device_buffer(c, NULL, p->o_bytes);
  o->saved = device_buffer(c, NULL, s->saved_bytes);
  o->ws = own_ws ? device_buffer(c, NULL, s->ws_bytes) : NULL;
  o->dq = device_buffer(c, NULL, p->q_bytes);
  o->dk = device_buffer(c, NULL, p->k_bytes);
  o->dv = device_buffer(c, NULL, p->v_bytes);
  o->y = device_buffer(c, NULL, s->r_bytes);
  o->dx = device_buffer(c, NULL, s->r_bytes);
  o->h_out = malloc(p->o_bytes), o->h_dq = malloc(p->q_bytes), o->h_dk = malloc(p->k_bytes);
  o->h_dv = malloc(p->v_bytes), o->h_y = malloc(s->r_bytes), o->h_dx = malloc(s->r_bytes);
}

static void outputs_free(outputs *o) {
  cl_mem m[] = {o->out, o->saved, o->ws, o->dq, o->dk, o->dv, o->y, o->dx};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; ++i)
    if (m[i]) clReleaseMemObject(m[i]);
  free(o->h_out), free(o->h_dq), free(o->h_dk), free(o->h_dv), free(o->h_y), free(o->h_dx);
}

/* The workload on one queue: rows first on odd turns, attention first on even ones; waits and
 * reads everything back. Returns the first failing status (message in err). */
static adasplash_status workload(adasplash_context *ctx, problem_set *s, cl_command_queue queue,
                                 outputs *o, int turn, char *err, size_t err_size) {
  const attn_problem *p = &s->attn;
  adasplash_status st = ADASPLASH_SUCCESS;
  cl_event fwd = NULL, bwd = NULL, rf = NULL, rb = NULL;
  for (int part = 0; part < 2 && st == ADASPLASH_SUCCESS; ++part) {
    if ((part == 0) == (turn % 2 == 0)) {
      st = adasplash_attention_forward(ctx, &p->desc, queue, s->q, s->k, s->v, o->out, o->saved,
                                       o->ws, 0, NULL, &fwd);
      if (st == ADASPLASH_SUCCESS)
        st =
            adasplash_attention_backward(ctx, &p->desc, queue, s->q, s->k, s->v, o->out, s->dout,
                                         o->saved, o->dq, o->dk, o->dv, NULL, o->ws, 1, &fwd, &bwd);
    } else {
      st = adasplash_entmax_forward(ctx, &s->rdesc, queue, s->x, o->y, NULL, 0, NULL, &rf);
      if (st == ADASPLASH_SUCCESS)
        st =
            adasplash_entmax_backward(ctx, &s->rdesc, queue, o->y, s->dy, o->dx, NULL, 1, &rf, &rb);
    }
  }
  if (st != ADASPLASH_SUCCESS) {
    char msg[400];
    adasplash_get_last_error(ctx, msg, sizeof msg, NULL);
    snprintf(err, err_size, "%s: %s", adasplash_status_string(st), msg);
  }
  cl_int e = clFinish(queue);
  struct {
    cl_mem m;
    void *h;
    size_t n;
  } reads[] = {{o->out, o->h_out, p->o_bytes}, {o->dq, o->h_dq, p->q_bytes},
               {o->dk, o->h_dk, p->k_bytes},   {o->dv, o->h_dv, p->v_bytes},
               {o->y, o->h_y, s->r_bytes},     {o->dx, o->h_dx, s->r_bytes}};
  for (size_t i = 0; i < 6 && e == CL_SUCCESS; ++i)
    e = clEnqueueReadBuffer(queue, reads[i].m, CL_TRUE, 0, reads[i].n, reads[i].h, 0, NULL, NULL);
  cl_event evs[] = {fwd, bwd, rf, rb};
  for (int i = 0; i < 4; ++i)
    if (evs[i]) clReleaseEvent(evs[i]);
  if (st == ADASPLASH_SUCCESS && e != CL_SUCCESS) {
    snprintf(err, err_size, "OpenCL error %d finishing or reading", (int)e);
    st = ADASPLASH_ERROR_OPENCL;
  }
  return st;
}

static int atomic_dq; /* --atomic-dq: dQ within a reordering tolerance, see the top of the file */

static int dq_matches(const problem_set *s, const void *got) {
  const attn_problem *p = &s->attn;
  if (!atomic_dq) return memcmp(got, s->dq, p->q_bytes) == 0;
  double *a = malloc(p->q_n * sizeof *a), *b = malloc(p->q_n * sizeof *b);
  int ok = a && b;
  if (ok) {
    attn_unpack(p, 'q', got, a);
    attn_unpack(p, 'q', s->dq, b);
    double m = 1.0;
    for (size_t i = 0; i < p->q_n; ++i) m = fmax(m, fabs(b[i]));
    const double ulp = s->dtype == ADASPLASH_BF16 ? 1.0 / 128 : 0.0;
    for (size_t i = 0; i < p->q_n && ok; ++i) ok = fabs(a[i] - b[i]) <= 1e-5 * m + ulp * fabs(b[i]);
  }
  free(a);
  free(b);
  return ok;
}

/* Comparison of a thread's outputs with the single-threaded ones (bitwise but for dQ with
 * --atomic-dq). */
static int same_as_baseline(const problem_set *s, const outputs *o) {
  const attn_problem *p = &s->attn;
  return memcmp(o->h_out, s->out, p->o_bytes) == 0 && dq_matches(s, o->h_dq) &&
         memcmp(o->h_dk, s->dk, p->k_bytes) == 0 && memcmp(o->h_dv, s->dv, p->v_bytes) == 0 &&
         memcmp(o->h_y, s->y, s->r_bytes) == 0 && memcmp(o->h_dx, s->dx, s->r_bytes) == 0;
}

static double worst_ratio(const double *got, const double *ref, size_t n, double abs_tol,
                          double rel_unit) {
  double w = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = fabs(got[i] - ref[i]) / (abs_tol + rel_unit * fabs(ref[i]));
    if (!(e <= w)) w = isnan(e) ? INFINITY : e;
  }
  return w;
}

static double max_abs(const double *v, size_t n) {
  double m = 1.0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(v[i]));
  return m;
}

/* Builds a set, prepares it, runs it single-threaded and checks that run against the reference. */
static void set_make(adasplash_context *ctx, problem_set *s, adasplash_dtype dtype) {
  memset(s, 0, sizeof *s);
  s->dtype = dtype;
  cl_context c;
  adasplash_context_get_cl(ctx, &c, NULL, NULL);
  const attn_case ac = {
      1, 2, 1, 130, 130, 32, 1, dtype, 1.5, 0, 0, 0, 0.0, 0.0, 0, ADASPLASH_ATTN_ENTMAX, 21};
  attn_problem *p = &s->attn;
  attn_problem_make(ctx, &ac, p);
  test_require(ctx, adasplash_attention_prepare(ctx, &p->desc), "adasplash_attention_prepare");
  test_require(ctx, adasplash_attention_saved_size(ctx, &p->desc, &s->saved_bytes), "saved_size");
  test_require(ctx, adasplash_attention_workspace_size(ctx, &p->desc, &s->ws_bytes),
               "workspace_size");
  ref_rng rng;
  ref_rng_seed(&rng, 8);
  double *dout = (double *)malloc(p->q_n * sizeof(double));
  for (size_t i = 0; i < p->q_n; ++i) dout[i] = test_round(ref_rng_normal(&rng), dtype);
  s->dout_host = calloc(1, p->o_bytes);
  attn_pack(p, 'q', dout, s->dout_host);
  s->q = device_buffer(c, p->q_host, p->q_bytes);
  s->k = device_buffer(c, p->k_host, p->k_bytes);
  s->v = device_buffer(c, p->v_host, p->v_bytes);
  s->dout = device_buffer(c, s->dout_host, p->o_bytes);

  adasplash_entmax_desc_init(&s->rdesc);
  s->rdesc.dtype = dtype;
  s->rdesc.rows = R_ROWS;
  s->rdesc.cols = R_COLS;
  s->rdesc.alpha = 1.5f;
  test_require(ctx, adasplash_entmax_prepare(ctx, &s->rdesc), "adasplash_entmax_prepare");
  const size_t rn = (size_t)R_ROWS * R_COLS;
  s->r_bytes = rn * adasplash_dtype_size(dtype);
  double *x = (double *)malloc(rn * sizeof(double)), *dy = (double *)malloc(rn * sizeof(double));
  for (size_t i = 0; i < rn; ++i) {
    x[i] = test_round(2.0 * ref_rng_normal(&rng), dtype);
    dy[i] = test_round(ref_rng_normal(&rng), dtype);
  }
  void *hx = malloc(s->r_bytes), *hdy = malloc(s->r_bytes);
  test_pack(x, rn, dtype, hx);
  test_pack(dy, rn, dtype, hdy);
  s->x = device_buffer(c, hx, s->r_bytes);
  s->dy = device_buffer(c, hdy, s->r_bytes);

  /* The single-threaded run, on the context's queue. */
  cl_command_queue queue;
  adasplash_context_get_cl(ctx, NULL, NULL, &queue);
  outputs o;
  outputs_make(c, s, 1, &o);
  char err[512] = "";
  adasplash_status st = workload(ctx, s, queue, &o, 0, err, sizeof err);
  if (st != ADASPLASH_SUCCESS) {
    printf("FAIL: single-threaded workload: %s\n", err);
    exit(1);
  }
  s->out = o.h_out, s->dq = o.h_dq, s->dk = o.h_dk, s->dv = o.h_dv, s->y = o.h_y, s->dx = o.h_dx;
  o.h_out = o.h_dq = o.h_dk = o.h_dv = o.h_y = o.h_dx = NULL;
  outputs_free(&o);

  /* ...checked against the reference. */
  const char *dn = dtype == ADASPLASH_F32 ? "f32" : "bf16";
  double *got = (double *)malloc((p->q_n > rn ? p->q_n : rn) * sizeof(double));
  double *ref = (double *)malloc(p->q_n * sizeof(double));
  double *rq = (double *)malloc(p->q_n * sizeof(double));
  double *rk = (double *)malloc(p->kv_n * sizeof(double));
  double *rv = (double *)malloc(p->kv_n * sizeof(double));
  double *gk = (double *)malloc(p->kv_n * sizeof(double));
  ref_attention_forward(&p->ref, p->q, p->k, p->v, ref, NULL, NULL);
  ref_attention_backward(&p->ref, p->q, p->k, p->v, dout, rq, rk, rv, NULL);
  attn_unpack(p, 'q', s->out, got);
  test_check(worst_ratio(got, ref, p->q_n, 1e-4, unit(dtype)) <= 1.0,
             "%s single-threaded attention O matches the reference", dn);
  attn_unpack(p, 'q', s->dq, got);
  test_check(worst_ratio(got, rq, p->q_n, 1e-4 * max_abs(rq, p->q_n), unit(dtype)) <= 1.0,
             "%s single-threaded dQ matches the reference", dn);
  attn_unpack(p, 'k', s->dk, gk);
  test_check(worst_ratio(gk, rk, p->kv_n, 1e-4 * max_abs(rk, p->kv_n), unit(dtype)) <= 1.0,
             "%s single-threaded dK matches the reference", dn);
  attn_unpack(p, 'v', s->dv, gk);
  test_check(worst_ratio(gk, rv, p->kv_n, 1e-4 * max_abs(rv, p->kv_n), unit(dtype)) <= 1.0,
             "%s single-threaded dV matches the reference", dn);
  double *yr = (double *)malloc(rn * sizeof(double)), *dxr = (double *)malloc(rn * sizeof(double));
  double *yl = (double *)malloc(rn * sizeof(double));
  test_unpack(s->y, rn, dtype, yl);
  double xmax = 0;
  for (size_t i = 0; i < rn; ++i) xmax = fmax(xmax, 0.5 * fabs(x[i]));
  for (int r = 0; r < R_ROWS; ++r) {
    ref_entmax_row(x + (size_t)r * R_COLS, NULL, R_COLS, 1.5, yr + (size_t)r * R_COLS);
    ref_entmax_row_backward(yl + (size_t)r * R_COLS, dy + (size_t)r * R_COLS, R_COLS, 1.5,
                            dxr + (size_t)r * R_COLS, NULL);
  }
  test_check(worst_ratio(yl, yr, rn, 2e-6 + 8.0 * ldexp(xmax, -24) * 2.0, unit(dtype)) <= 1.0,
             "%s single-threaded rows y matches the reference", dn);
  test_unpack(s->dx, rn, dtype, got);
  test_check(worst_ratio(got, dxr, rn, 1e-5 * max_abs(dxr, rn), unit(dtype)) <= 1.0,
             "%s single-threaded rows dx matches the reference", dn);
  free(got), free(ref), free(rq), free(rk), free(rv), free(gk), free(yr), free(dxr), free(yl);
  free(x), free(dy), free(hx), free(hdy), free(dout);
}

static void set_free(problem_set *s) {
  cl_mem m[] = {s->q, s->k, s->v, s->dout, s->x, s->dy};
  for (size_t i = 0; i < 6; ++i) clReleaseMemObject(m[i]);
  free(s->dout_host), free(s->out), free(s->dq), free(s->dk), free(s->dv), free(s->y), free(s->dx);
  attn_problem_free(&s->attn);
}

typedef struct job {
  adasplash_context *ctx;
  problem_set *set;
  int index;
  pthread_barrier_t *barrier;
  adasplash_status status;
  int identical; /* iterations whose results were bitwise the single-threaded ones */
  char error[512];
} job;

static void *thread_main(void *arg) {
  job *j = (job *)arg;
  cl_context c;
  cl_device_id dev;
  adasplash_context_get_cl(j->ctx, &c, &dev, NULL);
  cl_int err = CL_SUCCESS;
  cl_command_queue queue = clCreateCommandQueue(c, dev, 0, &err);
  outputs o;
  outputs_make(c, j->set, j->index % 4 < 2, &o); /* half with a workspace, half without */
  pthread_barrier_wait(j->barrier);
  j->status = err == CL_SUCCESS ? ADASPLASH_SUCCESS : ADASPLASH_ERROR_OPENCL;
  if (err != CL_SUCCESS) snprintf(j->error, sizeof j->error, "clCreateCommandQueue: %d", (int)err);
  for (int it = 0; it < ITERS && j->status == ADASPLASH_SUCCESS; ++it) {
    /* Clear the outputs so that a call that silently did nothing cannot pass. */
    const unsigned char zero = 0;
    cl_mem m[] = {o.out, o.dq, o.dk, o.dv, o.y, o.dx};
    for (int i = 0; i < 6; ++i) {
      size_t bytes = 0;
      clGetMemObjectInfo(m[i], CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
      clEnqueueFillBuffer(queue, m[i], &zero, 1, 0, bytes, 0, NULL, NULL);
    }
    j->status = workload(j->ctx, j->set, queue, &o, j->index + it, j->error, sizeof j->error);
    if (j->status == ADASPLASH_SUCCESS && same_as_baseline(j->set, &o)) ++j->identical;
  }
  outputs_free(&o);
  if (queue) clReleaseCommandQueue(queue);
  return NULL;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--atomic-dq") == 0) {
      atomic_dq = 1;
    } else {
      fprintf(stderr, "usage: test_concurrency [--atomic-dq]\n");
      return 2;
    }
  }
  adasplash_context *ctx = test_context(NULL);
  test_print_device(ctx);
  problem_set sets[SETS];
  set_make(ctx, &sets[0], ADASPLASH_F32);
  set_make(ctx, &sets[1], ADASPLASH_BF16);

  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, THREADS);
  pthread_t tid[THREADS];
  job jobs[THREADS];
  for (int t = 0; t < THREADS; ++t) {
    memset(&jobs[t], 0, sizeof jobs[t]);
    jobs[t].ctx = ctx;
    jobs[t].set = &sets[t % SETS];
    jobs[t].index = t;
    jobs[t].barrier = &barrier;
    if (pthread_create(&tid[t], NULL, thread_main, &jobs[t]) != 0) {
      printf("FAIL: pthread_create\n");
      return 1;
    }
  }
  for (int t = 0; t < THREADS; ++t) pthread_join(tid[t], NULL);
  pthread_barrier_destroy(&barrier);
  for (int t = 0; t < THREADS; ++t) {
    test_check(jobs[t].status == ADASPLASH_SUCCESS, "thread %d (%s, %s): every call succeeded %s",
               t, t % SETS ? "bf16" : "f32", t % 4 < 2 ? "own workspace" : "library workspace",
               jobs[t].error);
    test_check(jobs[t].identical == ITERS,
               "thread %d: %d of %d iterations identical to the single-threaded run%s", t,
               jobs[t].identical, ITERS, atomic_dq ? " (dQ within reordering tolerance)" : "");
  }
  for (int i = 0; i < SETS; ++i) set_free(&sets[i]);
  adasplash_context_release(ctx);
  return test_finish("test_concurrency");
}
