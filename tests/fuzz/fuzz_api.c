/*
 * fuzz_api.c - libFuzzer target for the public API's argument validation and descriptor handling.
 *
 * The input is read as a little program (see fuzz_input.h): its first byte picks an operation,
 * the rest mutates descriptors and options field by field (sizes, strides, layouts, dtypes, alpha
 * and scale including NaN and infinities, flags, valid-length buffers, struct_size), then the
 * operation calls the validating entry points on real OpenCL buffers of a context on the default
 * device. Checked after every call:
 *  - the status is one of adasplash_status's values, and one the call may return;
 *  - an error comes with a new, non-empty last-error message on the thread (and the same one on
 *    the context when the call had one), and leaves every output untouched (all buffers and host
 *    arrays hold a canary pattern that is compared after each failed call);
 *  - enqueue, size and query calls never compile (the context's build counter does not move);
 *  - saved_size / workspace_size agree with the forward on descriptor errors, and a size they
 *    report is at least what the shape needs (not a wrapped-around product).
 * A broken property aborts, which libFuzzer reports as a crash with the input saved.
 *
 * Compiling is slow on CPU runtimes, so kernels are prepared once per process for a small
 * whitelist (f32, head_dim <= 16, fused entmax and softmax flash; f32 rows) and the target never
 * calls a compiling entry point (prepare, saved_size, workspace_size) for a descriptor outside
 * it. The same file is linked into a plain driver (fuzz_replay.c) that replays the corpus as a
 * CTest in every build.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adasplash.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CANARY 0xA5
#define POOL 8          /* main-context buffers the calls pick from */
#define POOL_BYTES 4096 /* each: valid shapes stay tiny, so a call takes milliseconds */
#define HOST_BYTES 4096 /* host arrays */
#define WHITELIST_HEAD_DIM 16

/* ---- failures --------------------------------------------------------------------------------
 */

static const char *g_op = "init";

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_api: property violated in %s: ", g_op);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

/* ---- the fixture: one context, prepared for the whitelist, and canary buffers -----------------
 */

typedef struct fixture {
  adasplash_context *ctx;
  cl_context clctx, other;
  cl_device_id dev;
  cl_command_queue queue, other_queue;
  cl_mem pool[POOL];
  cl_mem tiny;      /* 4 bytes */
  cl_mem foreign;   /* POOL_BYTES, from another cl_context */
  cl_event pending; /* a user event that is never completed while calls use it */
} fixture;

static fixture g;

static void fill_canary(cl_mem m, cl_command_queue q, size_t bytes) {
  unsigned char pattern = CANARY;
  if (clEnqueueFillBuffer(q, m, &pattern, 1, 0, bytes, 0, NULL, NULL) != CL_SUCCESS ||
      clFinish(q) != CL_SUCCESS)
    die("refilling a canary buffer failed");
}

static cl_mem canary_buffer(cl_context c, cl_command_queue q, size_t bytes) {
  cl_int err;
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE, bytes, NULL, &err);
  if (err != CL_SUCCESS) die("clCreateBuffer(%zu) = %d", bytes, (int)err);
  fill_canary(m, q, bytes);
  return m;
}

static unsigned long builds(void) {
  adasplash_cache_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  if (adasplash_context_get_cache_stats(g.ctx, &s) != ADASPLASH_SUCCESS) die("cache stats");
  return s.builds;
}

static void require(adasplash_status st, const char *what) {
  if (st != ADASPLASH_SUCCESS) {
    char msg[512];
    adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
    die("setup: %s failed: %s", what, msg);
  }
}

static int setup(void) {
  static int state; /* 0: not yet, 1: ready, -1: no device */
  if (state) return state > 0;
  state = -1;
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = "off";
  if (adasplash_context_create(&o, &g.ctx) != ADASPLASH_SUCCESS) {
    fprintf(stderr, "fuzz_api: no OpenCL device: every input is a no-op\n");
    return 0;
  }
  adasplash_context_get_cl(g.ctx, &g.clctx, &g.dev, &g.queue);
  cl_int err;
  g.other = clCreateContext(NULL, 1, &g.dev, NULL, NULL, &err);
  if (err != CL_SUCCESS) die("second cl_context: %d", (int)err);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  g.other_queue = clCreateCommandQueue(g.other, g.dev, 0, &err);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
  if (err != CL_SUCCESS) die("second queue: %d", (int)err);
  for (int i = 0; i < POOL; ++i) g.pool[i] = canary_buffer(g.clctx, g.queue, POOL_BYTES);
  g.tiny = canary_buffer(g.clctx, g.queue, 4);
  g.foreign = canary_buffer(g.other, g.other_queue, POOL_BYTES);
  g.pending = clCreateUserEvent(g.clctx, &err);
  if (err != CL_SUCCESS) die("user event: %d", (int)err);

  /* The whitelist: everything else would compile, which the target never asks for. */
  adasplash_attention_desc a;
  adasplash_attention_desc_init(&a);
  a.head_dim = WHITELIST_HEAD_DIM;
  a.q_len = a.kv_len = 1;
  a.flags = ADASPLASH_ATTN_SAVE_ALPHA_GRAD; /* also the alpha gradient's program */
  require(adasplash_attention_prepare(g.ctx, &a), "attention_prepare(entmax f32 16)");
  a.flags = 0;
  a.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  require(adasplash_attention_prepare(g.ctx, &a), "attention_prepare(softmax f32 16)");
  adasplash_entmax_desc r;
  adasplash_entmax_desc_init(&r);
  r.rows = r.cols = 1;
  require(adasplash_entmax_prepare(g.ctx, &r), "entmax_prepare(f32)");
  state = 1;
  return 1;
}

/* Completes the user event and releases everything, so leak checkers see a clean exit. */
static void teardown(void) {
  if (!g.ctx) return;
  clSetUserEventStatus(g.pending, CL_COMPLETE);
  clFinish(g.queue);
  clReleaseEvent(g.pending);
  for (int i = 0; i < POOL; ++i) clReleaseMemObject(g.pool[i]);
  clReleaseMemObject(g.tiny);
  clReleaseMemObject(g.foreign);
  clReleaseCommandQueue(g.other_queue);
  clReleaseContext(g.other);
  adasplash_context_release(g.ctx);
  memset(&g, 0, sizeof g);
}

/* Every device buffer still holds the canary. */
static int buffers_untouched(void) {
  static unsigned char now[POOL_BYTES];
  cl_mem all[POOL + 2];
  size_t bytes[POOL + 2];
  cl_command_queue queues[POOL + 2];
  int n = 0;
  for (int i = 0; i < POOL; ++i) all[n] = g.pool[i], bytes[n] = POOL_BYTES, queues[n++] = g.queue;
  all[n] = g.tiny, bytes[n] = 4, queues[n++] = g.queue;
  all[n] = g.foreign, bytes[n] = POOL_BYTES, queues[n++] = g.other_queue;
  clFinish(g.queue);
  for (int i = 0; i < n; ++i) {
    if (clEnqueueReadBuffer(queues[i], all[i], CL_TRUE, 0, bytes[i], now, 0, NULL, NULL) !=
        CL_SUCCESS)
      die("reading back buffer %d failed", i);
    for (size_t b = 0; b < bytes[i]; ++b)
      if (now[b] != CANARY) return 0;
  }
  return 1;
}

static void refill_all(void) {
  clFinish(g.queue);
  for (int i = 0; i < POOL; ++i) fill_canary(g.pool[i], g.queue, POOL_BYTES);
  fill_canary(g.tiny, g.queue, 4);
}

/* ---- the status and error-message contract ---------------------------------------------------
 */

static char g_sentinel[4096];

/* Records a known error so that a stale message cannot pass for the new one. */
static void arm_sentinel(void) {
  adasplash_context_get_cache_stats(g.ctx, NULL);
  adasplash_get_last_error(NULL, g_sentinel, sizeof g_sentinel, NULL);
}

static int is_status(adasplash_status st) {
  return st == ADASPLASH_SUCCESS ||
         (st <= ADASPLASH_ERROR_INVALID_ARGUMENT && st >= ADASPLASH_ERROR_CACHE_IO);
}

/* Checks st against the statuses the call may return (a 0-terminated list of allowed errors) and
 * the message contract; ctx is the context the call was given (NULL: thread only). */
static void check_status(const char *call, adasplash_status st, const adasplash_context *ctx,
                         const adasplash_status *allowed) {
  if (!is_status(st)) die("%s returned %d, not an adasplash_status", call, (int)st);
  if (st == ADASPLASH_SUCCESS) return;
  int ok = 0;
  for (const adasplash_status *a = allowed; *a; ++a) ok |= *a == st;
  if (!ok) die("%s returned %s, not one it documents", call, adasplash_status_string(st));
  char msg[4096], ctx_msg[4096];
  adasplash_status last = adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
  if (last != st) die("%s returned %d but the thread's last error is %d", call, (int)st, (int)last);
  if (!msg[0] || strcmp(msg, g_sentinel) == 0)
    die("%s failed (%s) without recording a new message", call, adasplash_status_string(st));
  if (ctx) {
    adasplash_status cl = adasplash_get_last_error(ctx, ctx_msg, sizeof ctx_msg, NULL);
    if (cl != st || strcmp(ctx_msg, msg) != 0)
      die("%s: the context's last error (%d: %s) differs from the thread's (%d: %s)", call, (int)cl,
          ctx_msg, (int)st, msg);
  }
}

static const adasplash_status k_enqueue_errors[] = {
    ADASPLASH_ERROR_INVALID_ARGUMENT,   ADASPLASH_ERROR_INVALID_SHAPE,
    ADASPLASH_ERROR_INVALID_STRIDE,     ADASPLASH_ERROR_INVALID_ALPHA,
    ADASPLASH_ERROR_INVALID_BUFFER,     ADASPLASH_ERROR_BUFFER_TOO_SMALL,
    ADASPLASH_ERROR_UNSUPPORTED,        ADASPLASH_ERROR_NOT_PREPARED,
    ADASPLASH_ERROR_INVALID_SAVED,      ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY,
    ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, 0};
static const adasplash_status k_desc_errors[] = {
    ADASPLASH_ERROR_INVALID_ARGUMENT, ADASPLASH_ERROR_INVALID_SHAPE, ADASPLASH_ERROR_INVALID_STRIDE,
    ADASPLASH_ERROR_INVALID_ALPHA,    ADASPLASH_ERROR_UNSUPPORTED,   0};

/* A failed call left every output as it was; a successful one may have written: refill. */
static void after_call(const char *call, adasplash_status st, unsigned long builds_before) {
  clFinish(g.queue);
  if (builds() != builds_before) die("%s compiled a program (it must not)", call);
  if (st != ADASPLASH_SUCCESS) {
    if (!buffers_untouched())
      die("%s failed (%s) but wrote an output buffer", call, adasplash_status_string(st));
  } else {
    refill_all();
  }
}

/* ---- decoding buffers --------------------------------------------------------------------------
 */

/* A cl_mem argument: one of the pool, NULL, a 4-byte buffer or a buffer of another context. */
static cl_mem pick_buffer(fz_input *in) {
  unsigned c = fz_u8(in) % 16;
  if (c < POOL) return g.pool[c];
  if (c < 12) return g.pool[c - POOL]; /* most picks are usable buffers */
  if (c == 12) return NULL;
  if (c == 13) return g.tiny;
  if (c == 14) return g.foreign;
  return g.pool[0];
}

/* ADASPLASH_FUZZ_TRACE=1: which buffer each pick returned and each call's status, on stderr (to
 * locate a crash on a machine without a debugger). */
static int trace_on(void) {
  static int on = -1;
  if (on < 0) on = getenv("ADASPLASH_FUZZ_TRACE") != NULL;
  return on;
}

static const char *buffer_name(cl_mem m) {
  static const char *const pool_names[] = {"pool0", "pool1", "pool2", "pool3",
                                           "pool4", "pool5", "pool6", "pool7"};
  _Static_assert(sizeof pool_names / sizeof pool_names[0] == POOL, "one name per pool buffer");
  if (!m) return "NULL";
  if (m == g.tiny) return "tiny";
  if (m == g.foreign) return "foreign";
  for (int i = 0; i < POOL; ++i)
    if (m == g.pool[i]) return pool_names[i];
  return "other";
}

static void trace(const char *fmt, ...) {
  if (!trace_on()) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fflush(stderr);
}

static cl_mem pick_optional_buffer(fz_input *in) {
  return fz_u8(in) % 3 == 0 ? pick_buffer(in) : NULL;
}

/* The event triple: mostly valid (0, NULL), sometimes inconsistent or a pending user event. */
typedef struct wait_list {
  cl_uint n;
  const cl_event *list;
  int valid;
} wait_list;

static wait_list pick_wait_list(fz_input *in) {
  static cl_event null_event;
  wait_list w = {0, NULL, 1};
  switch (fz_u8(in) % 8) {
    case 5:
      w.n = 1, w.valid = 0;
      break; /* count without a list */
    case 6:
      w.list = &g.pending, w.valid = 0;
      break; /* list without a count */
    case 7:
      w.n = 1, w.list = &null_event, w.valid = 0;
      break; /* a NULL event */
    default:
      break;
  }
  return w;
}

/* ---- attention ---------------------------------------------------------------------------------
 */

/* 1 when a valid desc would need a program outside the whitelist. */
static int attention_would_compile(const adasplash_attention_desc *d) {
  if (d->struct_size != sizeof *d || adasplash_dtype_size(d->dtype) == 0) return 0;
  if (d->head_dim < 1 || d->head_dim > 256) return 0;
  if (d->algorithm == ADASPLASH_ATTN_ENTMAX || d->algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH)
    return !(d->dtype == ADASPLASH_F32 && d->head_dim <= WHITELIST_HEAD_DIM);
  return d->algorithm == ADASPLASH_ATTN_ENTMAX_DENSE; /* sizes do not compile, prepare does */
}

static void mutate_layout(fz_input *in, adasplash_layout *l) {
  switch (fz_u8(in) % 5) {
    case 0:
      l->offset = fz_size(in);
      break;
    case 1:
      l->batch_stride = fz_size(in);
      break;
    case 2:
      l->head_stride = fz_size(in);
      break;
    case 3:
      l->seq_stride = fz_size(in);
      break;
    default: /* a plausible BSHD layout from the sizes in the next bytes */
      l->seq_stride = (size_t)fz_small(in) * 16;
      l->head_stride = (size_t)fz_small(in);
      l->batch_stride = l->seq_stride * (size_t)fz_small(in);
      break;
  }
}

static void mutate_attention(fz_input *in, adasplash_attention_desc *d) {
  int n = fz_u8(in) % 24;
  for (int i = 0; i < n && !fz_empty(in); ++i) {
    switch (fz_u8(in) % 26) {
      case 0:
        d->dtype = (adasplash_dtype)fz_int(in);
        break;
      case 1:
        d->batch = fz_int(in);
        break;
      case 2:
        d->q_heads = fz_int(in);
        break;
      case 3:
        d->kv_heads = fz_int(in);
        break;
      case 4:
        d->q_len = fz_int(in);
        break;
      case 5:
        d->kv_len = fz_int(in);
        break;
      case 6:
        d->head_dim = fz_int(in);
        break;
      case 7:
        mutate_layout(in, &d->q);
        break;
      case 8:
        mutate_layout(in, &d->k);
        break;
      case 9:
        mutate_layout(in, &d->v);
        break;
      case 10:
        mutate_layout(in, &d->out);
        break;
      case 11:
        d->alpha = fz_float(in);
        break;
      case 12:
        d->alpha_buf = pick_optional_buffer(in);
        break;
      case 13:
        d->scale = fz_float(in);
        break;
      case 14:
        d->causal = fz_int(in);
        break;
      case 15:
        d->q_lens = pick_optional_buffer(in);
        break;
      case 16:
        d->kv_lens = pick_optional_buffer(in);
        break;
      case 17:
        d->tolerance = fz_float(in);
        break;
      case 18:
        d->max_iter = fz_int(in);
        break;
      case 19:
        d->flags = fz_int(in);
        break;
      case 20:
        d->algorithm = (adasplash_attention_algorithm)fz_int(in);
        break;
      case 21:
        d->struct_size = fz_size(in);
        break;
      case 22:
        d->q_len = d->kv_len = fz_small(in);
        break;
      case 23:
        d->q_heads = fz_small(in), d->kv_heads = fz_small(in);
        break;
      case 24:
        d->head_dim = fz_small(in);
        break;
      default:
        d->dtype = (adasplash_dtype)(fz_u8(in) % 3);
        break;
    }
  }
}

/* What saved_size and workspace_size must at least report for a valid desc, in bytes (long
 * double: the true product, not one that wrapped around). */
static long double attention_need(const adasplash_attention_desc *d, int workspace) {
  long double rows = (long double)d->batch * d->q_heads * d->q_len;
  if (d->algorithm == ADASPLASH_ATTN_ENTMAX_DENSE) return rows * d->kv_len * 4; /* P or dP */
  if (d->algorithm == ADASPLASH_ATTN_SOFTMAX_FLASH) return rows * 4;
  return workspace ? rows * 4 : rows * (2 + (long double)d->head_dim) * 4; /* state, out2 */
}

static void check_size(const char *call, const adasplash_attention_desc *d, adasplash_status st,
                       size_t bytes, int workspace) {
  if (st != ADASPLASH_SUCCESS) return;
  long double need = attention_need(d, workspace);
  if ((long double)bytes < need)
    die("%s reported %zu bytes for a shape that needs at least %.0Lf (batch %d, q_heads %d, "
        "q_len %d, kv_len %d, head_dim %d, algorithm %d)",
        call, bytes, need, d->batch, d->q_heads, d->q_len, d->kv_len, d->head_dim,
        (int)d->algorithm);
}

static void op_attention(fz_input *in) {
  g_op = "attention";
  adasplash_attention_desc d;
  adasplash_attention_desc_init(&d);
  d.batch = 1 + fz_u8(in) % 2;
  d.q_heads = 1 + fz_u8(in) % 2;
  d.kv_heads = 1;
  d.q_len = 1 + fz_u8(in) % 8;
  d.kv_len = 1 + fz_u8(in) % 8;
  d.head_dim = 1 + fz_u8(in) % 16;
  mutate_attention(in, &d);
  const int use_null_ctx = fz_u8(in) % 32 == 0;
  adasplash_context *ctx = use_null_ctx ? NULL : g.ctx;

  /* Forward: never compiles; validates everything, runs tiny problems. */
  cl_mem q = pick_buffer(in), k = pick_buffer(in), v = pick_buffer(in), out = pick_buffer(in);
  cl_mem saved = pick_optional_buffer(in), ws = pick_optional_buffer(in);
  wait_list w = pick_wait_list(in);
  cl_event ev = NULL;
  const int want_event = fz_u8(in) & 1;
  unsigned long b0 = builds();
  trace("attention: B%d Hq%d Hkv%d Lq%d Lk%d D%d dtype %d alg %d flags %#x causal %d alpha %g\n",
        d.batch, d.q_heads, d.kv_heads, d.q_len, d.kv_len, d.head_dim, (int)d.dtype,
        (int)d.algorithm, (unsigned)d.flags, d.causal, (double)d.alpha);
  trace("  forward q=%s k=%s v=%s out=%s saved=%s ws=%s wait=%u\n", buffer_name(q), buffer_name(k),
        buffer_name(v), buffer_name(out), buffer_name(saved), buffer_name(ws), w.n);
  arm_sentinel();
  adasplash_status fwd = adasplash_attention_forward(ctx, &d, NULL, q, k, v, out, saved, ws, w.n,
                                                     w.list, want_event ? &ev : NULL);
  trace("  forward -> %d\n", (int)fwd);
  check_status("adasplash_attention_forward", fwd, ctx, k_enqueue_errors);
  if (fwd == ADASPLASH_SUCCESS && want_event && !ev) die("forward succeeded without an event");
  if (ev) clReleaseEvent(ev);
  if (fwd != ADASPLASH_SUCCESS && ev) die("failed forward returned an event");
  after_call("adasplash_attention_forward", fwd, b0);

  /* Backward: with the saved state of that forward when it ran, else a buffer that cannot pass
   * (a saved buffer that no forward wrote is outside the contract). */
  cl_mem bsaved = fwd == ADASPLASH_SUCCESS && saved ? saved : (fz_u8(in) & 1 ? g.tiny : NULL);
  if (fwd == ADASPLASH_SUCCESS && saved) {
    /* Rerun the forward: after_call refilled the canaries. */
    adasplash_attention_forward(ctx, &d, NULL, q, k, v, out, saved, ws, 0, NULL, NULL);
  }
  cl_mem dout = pick_buffer(in), dq = pick_buffer(in), dk = pick_buffer(in), dv = pick_buffer(in);
  cl_mem dalpha = pick_optional_buffer(in);
  b0 = builds();
  trace("  backward dout=%s saved=%s dq=%s dk=%s dv=%s dalpha=%s\n", buffer_name(dout),
        buffer_name(bsaved), buffer_name(dq), buffer_name(dk), buffer_name(dv),
        buffer_name(dalpha));
  arm_sentinel();
  adasplash_status bwd = adasplash_attention_backward(ctx, &d, NULL, q, k, v, out, dout, bsaved, dq,
                                                      dk, dv, dalpha, ws, 0, NULL, NULL);
  trace("  backward -> %d\n", (int)bwd);
  check_status("adasplash_attention_backward", bwd, ctx, k_enqueue_errors);
  if (bsaved != saved || !saved) {
    after_call("adasplash_attention_backward", bwd, b0);
  } else { /* the forward above wrote outputs on purpose: no canary to compare */
    clFinish(g.queue);
    if (builds() != b0) die("adasplash_attention_backward compiled a program (it must not)");
    refill_all();
  }

  /* Sizes and prepare: only where they cannot compile. */
  if (attention_would_compile(&d) && ctx) return;
  const int desc_error = fwd == ADASPLASH_ERROR_INVALID_SHAPE ||
                         fwd == ADASPLASH_ERROR_INVALID_STRIDE ||
                         fwd == ADASPLASH_ERROR_INVALID_ALPHA;
  size_t bytes = 0;
  size_t *bytes_arg = fz_u8(in) % 16 == 0 ? NULL : &bytes;
  b0 = builds();
  arm_sentinel();
  adasplash_status st = adasplash_attention_saved_size(ctx, &d, bytes_arg);
  check_status("adasplash_attention_saved_size", st, ctx, k_desc_errors);
  if (desc_error && st != fwd)
    die("saved_size returned %d where the forward found a descriptor error %d", (int)st, (int)fwd);
  check_size("adasplash_attention_saved_size", &d, st, bytes, 0);
  if (builds() != b0) die("saved_size compiled for a whitelisted descriptor");
  arm_sentinel();
  st = adasplash_attention_workspace_size(ctx, &d, bytes_arg);
  check_status("adasplash_attention_workspace_size", st, ctx, k_desc_errors);
  if (desc_error && st != fwd)
    die("workspace_size returned %d where the forward found a descriptor error %d", (int)st,
        (int)fwd);
  check_size("adasplash_attention_workspace_size", &d, st, bytes, 1);
  if (d.algorithm != ADASPLASH_ATTN_ENTMAX_DENSE) {
    static const adasplash_status prep_errors[] = {
        ADASPLASH_ERROR_INVALID_ARGUMENT, ADASPLASH_ERROR_INVALID_SHAPE,
        ADASPLASH_ERROR_INVALID_STRIDE,   ADASPLASH_ERROR_INVALID_ALPHA,
        ADASPLASH_ERROR_UNSUPPORTED,      0};
    arm_sentinel();
    st = adasplash_attention_prepare(ctx, &d);
    check_status("adasplash_attention_prepare", st, ctx, prep_errors);
    if (desc_error && st != fwd)
      die("prepare returned %d where the forward found a descriptor error %d", (int)st, (int)fwd);
  }
  if (builds() != b0) die("sizes or prepare compiled for a whitelisted descriptor");
}

/* ---- row entmax --------------------------------------------------------------------------------
 */

static void op_rows(fz_input *in) {
  g_op = "rows";
  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.rows = 1 + fz_u8(in) % 8;
  d.cols = 1 + fz_u8(in) % 64;
  int n = fz_u8(in) % 16;
  for (int i = 0; i < n && !fz_empty(in); ++i) {
    switch (fz_u8(in) % 14) {
      case 0:
        d.dtype = (adasplash_dtype)fz_int(in);
        break;
      case 1:
        d.rows = fz_size(in);
        break;
      case 2:
        d.cols = fz_size(in);
        break;
      case 3:
        d.row_stride = fz_size(in);
        break;
      case 4:
        d.offset = fz_size(in);
        break;
      case 5:
        d.alpha = fz_float(in);
        break;
      case 6:
        d.alpha_buf = pick_optional_buffer(in);
        break;
      case 7:
        d.valid_cols = pick_optional_buffer(in);
        break;
      case 8:
        d.tolerance = fz_float(in);
        break;
      case 9:
        d.max_iter = fz_int(in);
        break;
      case 10:
        d.init = (adasplash_tau_init)fz_int(in);
        break;
      case 11:
        d.struct_size = fz_size(in);
        break;
      case 12:
        d.rows = fz_small(in), d.cols = fz_small(in);
        break;
      default:
        d.dtype = (adasplash_dtype)(fz_u8(in) % 3);
        break;
    }
  }
  adasplash_context *ctx = fz_u8(in) % 32 == 0 ? NULL : g.ctx;
  cl_mem x = pick_buffer(in), y = pick_buffer(in), sweeps = pick_optional_buffer(in);
  wait_list w = pick_wait_list(in);
  unsigned long b0 = builds();
  arm_sentinel();
  adasplash_status st = adasplash_entmax_forward(ctx, &d, NULL, x, y, sweeps, w.n, w.list, NULL);
  check_status("adasplash_entmax_forward", st, ctx, k_enqueue_errors);
  after_call("adasplash_entmax_forward", st, b0);

  cl_mem dy = pick_buffer(in), dx = pick_buffer(in), dalpha = pick_optional_buffer(in);
  arm_sentinel();
  st = adasplash_entmax_backward(ctx, &d, NULL, y, dy, dx, dalpha, 0, NULL, NULL);
  check_status("adasplash_entmax_backward", st, ctx, k_enqueue_errors);
  after_call("adasplash_entmax_backward", st, b0);

  arm_sentinel();
  st = adasplash_softmax_rows_forward(ctx, &d, NULL, x, y, w.n, w.list, NULL);
  check_status("adasplash_softmax_rows_forward", st, ctx, k_enqueue_errors);
  after_call("adasplash_softmax_rows_forward", st, b0);

  /* Prepare compiles one program per dtype: only f32 (prepared) or invalid dtypes. */
  if (d.dtype != ADASPLASH_F32 && adasplash_dtype_size(d.dtype) != 0) return;
  arm_sentinel();
  st = adasplash_entmax_prepare(ctx, &d);
  check_status("adasplash_entmax_prepare", st, ctx, k_desc_errors);
  if (builds() != b0) die("entmax_prepare compiled for f32");
}

/* ---- contexts: tuning overrides, kernel paths, device selection --------------------------------
 */

static const adasplash_status k_context_errors[] = {ADASPLASH_ERROR_INVALID_ARGUMENT,
                                                    ADASPLASH_ERROR_INVALID_TUNING,
                                                    ADASPLASH_ERROR_UNSUPPORTED,
                                                    ADASPLASH_ERROR_NO_DEVICE,
                                                    ADASPLASH_ERROR_OPENCL,
                                                    ADASPLASH_ERROR_OUT_OF_HOST_MEMORY,
                                                    0};

static void decode_options(fz_input *in, adasplash_context_options *o, char *tune, char *path,
                           char *kdir) {
  adasplash_context_options_init(o);
  o->cache_dir = "off"; /* never let an input create directories */
  fz_string(in, tune, 512);
  o->tune = tune;
  switch (fz_u8(in) % 6) {
    case 0:
      o->path = "portable";
      break;
    case 1:
      o->path = "nvidia";
      break;
    case 2:
      fz_string(in, path, 64), o->path = path;
      break;
    default:
      break;
  }
  if (fz_u8(in) % 8 == 0) fz_long_string(in, kdir, 2048), o->kernel_dir = kdir;
  switch (fz_u8(in) % 16) {
    case 0:
      o->struct_size = 0;
      break;
    case 1:
      o->struct_size = sizeof *o + 8;
      break;
    case 2:
      o->struct_size = offsetof(adasplash_context_options, tune);
      break;
    case 3:
      o->struct_size = fz_size(in);
      break;
    default:
      break;
  }
}

/* A context made from decoded options: its planning limits never exceed its device's (which may
 * be another device than the target's: a device string can pick any). */
static void check_new_context(adasplash_context *c) {
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (adasplash_context_get_device_info(c, &info) != ADASPLASH_SUCCESS) die("device info");
  cl_device_id dev = NULL;
  if (adasplash_context_get_cl(c, NULL, &dev, NULL) != ADASPLASH_SUCCESS || !dev)
    die("context without a device");
  cl_ulong dev_local_mem = 0;
  size_t dev_max_wg = 0;
  clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof dev_local_mem, &dev_local_mem, NULL);
  clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dev_max_wg, &dev_max_wg, NULL);
  if (info.local_mem_size > dev_local_mem || info.max_work_group_size > dev_max_wg)
    die("tuning raised the limits: local_mem %llu > %llu or max_wg %zu > %zu",
        (unsigned long long)info.local_mem_size, (unsigned long long)dev_local_mem,
        info.max_work_group_size, dev_max_wg);
  if (info.kernel_path != ADASPLASH_PATH_PORTABLE) die("kernel path %d", (int)info.kernel_path);
  adasplash_context_release(c);
}

static void op_borrowed(fz_input *in) {
  g_op = "context_create_borrowed";
  static char tune[513], path[65], kdir[2049];
  adasplash_context_options o;
  decode_options(in, &o, tune, path, kdir);
  adasplash_context *c = (adasplash_context *)&g; /* any non-NULL value: must stay as it is */
  adasplash_context *const before = c;
  arm_sentinel();
  adasplash_status st =
      adasplash_context_create_borrowed(g.clctx, g.dev, g.queue, fz_u8(in) % 16 ? &o : NULL, &c);
  check_status("adasplash_context_create_borrowed", st, NULL, k_context_errors);
  if (st != ADASPLASH_SUCCESS) {
    if (c != before) die("a failed borrow wrote *ctx");
    return;
  }
  check_new_context(c);
}

static void op_create(fz_input *in) {
  g_op = "context_create";
  static char tune[513], path[65], kdir[2049], device[257];
  adasplash_context_options o;
  decode_options(in, &o, tune, path, kdir);
  fz_string(in, device, 256);
  o.device = device;
  adasplash_context *c = (adasplash_context *)&g;
  adasplash_context *const before = c;
  arm_sentinel();
  adasplash_status st = adasplash_context_create(&o, &c);
  check_status("adasplash_context_create", st, NULL, k_context_errors);
  if (st != ADASPLASH_SUCCESS) {
    if (c != before) die("a failed create wrote *ctx");
    return;
  }
  check_new_context(c);
}

/* ---- host conversions and queries --------------------------------------------------------------
 */

static void op_convert(fz_input *in) {
  g_op = "convert";
  static unsigned char host[HOST_BYTES], expect[HOST_BYTES];
  for (size_t i = 0; i < sizeof host; ++i) host[i] = (unsigned char)(i * 31u + 7u);
  adasplash_dtype sd = (adasplash_dtype)(fz_u8(in) % 4), dd = (adasplash_dtype)(fz_u8(in) % 4);
  if (fz_u8(in) % 8 == 0) sd = (adasplash_dtype)fz_int(in);
  size_t so = fz_u16(in) % 1024, doff = fz_u16(in) % 1024, n = fz_u16(in) % 512;
  const void *src = fz_u8(in) % 16 ? (const void *)(host + so) : NULL;
  void *dst = fz_u8(in) % 16 ? (void *)(host + doff) : NULL;
  memcpy(expect, host, sizeof host);
  arm_sentinel();
  adasplash_status st = adasplash_convert(src, sd, dst, dd, n);
  static const adasplash_status errs[] = {ADASPLASH_ERROR_INVALID_ARGUMENT, 0};
  check_status("adasplash_convert", st, NULL, errs);
  if (st != ADASPLASH_SUCCESS && memcmp(host, expect, sizeof host) != 0)
    die("a failed conversion wrote dst");
  size_t ss = adasplash_dtype_size(sd), ds = adasplash_dtype_size(dd);
  if (st == ADASPLASH_SUCCESS && src && dst && n && ss && ds && !(src == dst && sd == dd)) {
    const unsigned char *s = (const unsigned char *)src, *t = (const unsigned char *)dst;
    if (s < t + ds * n && t < s + ss * n) die("overlapping conversion accepted");
  }
}

static void op_queries(fz_input *in) {
  g_op = "queries";
  /* struct_size: any value, the struct followed by a canary tail that must stay. */
  union {
    adasplash_device_info info;
    adasplash_cache_stats stats;
    unsigned char bytes[sizeof(adasplash_device_info) + sizeof(adasplash_cache_stats) + 64];
  } u;
  const int which = fz_u8(in) & 1;
  const size_t full = which ? sizeof u.stats : sizeof u.info;
  size_t ss = full;
  if (fz_u8(in) % 4 == 0) {
    ss = fz_size(in);
  } else if (fz_u8(in) % 2) {
    ss -= fz_u8(in) % full; /* an older, smaller struct */
  }
  memset(&u, CANARY, sizeof u);
  memcpy(&u, &ss, sizeof ss); /* struct_size is the first member of both */
  arm_sentinel();
  adasplash_status st = which ? adasplash_context_get_cache_stats(g.ctx, &u.stats)
                              : adasplash_context_get_device_info(g.ctx, &u.info);
  static const adasplash_status errs[] = {ADASPLASH_ERROR_INVALID_ARGUMENT, 0};
  check_status(which ? "get_cache_stats" : "get_device_info", st, g.ctx, errs);
  const size_t untouched_from = st == ADASPLASH_SUCCESS ? ss : sizeof ss;
  for (size_t b = untouched_from; b < sizeof u.bytes; ++b)
    if (u.bytes[b] != CANARY) die("struct_size %zu: byte %zu written (status %d)", ss, b, (int)st);

  /* get_last_error into a buffer of any size: NUL-terminated, nothing written past it. */
  unsigned char buf[80];
  size_t bs = fz_u8(in) % 64;
  memset(buf, CANARY, sizeof buf);
  adasplash_get_last_error(fz_u8(in) & 1 ? g.ctx : NULL, (char *)buf, bs, NULL);
  for (size_t b = bs; b < sizeof buf; ++b)
    if (buf[b] != CANARY) die("get_last_error(buf_size %zu) wrote byte %zu", bs, b);
  if (bs && !memchr(buf, 0, bs)) die("get_last_error(buf_size %zu) did not NUL-terminate", bs);
  if (!adasplash_status_string((adasplash_status)fz_int(in))) die("status_string gave NULL");
}

/* ---- entry point -------------------------------------------------------------------------------
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!setup()) return 0;
  static int registered;
  if (!registered) registered = atexit(teardown) == 0;
  fz_input in;
  fz_init(&in, data, size);
  switch (fz_u8(&in) % 8) {
    case 0:
    case 1:
    case 2:
      op_attention(&in);
      break;
    case 3:
    case 4:
      op_rows(&in);
      break;
    case 5:
      op_borrowed(&in);
      break;
    case 6:
      fz_u8(&in) % 4 == 0 ? op_create(&in) : op_convert(&in);
      break;
    default:
      op_queries(&in);
      break;
  }
  g_op = "between inputs";
  return 0;
}
