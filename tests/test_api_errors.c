/*
 * test_api_errors.c - argument validation of every public function: each invalid call must return
 * its specific status, record a message that names the offending argument (on the thread, and on
 * the context when there is one), and leave every output untouched. All device buffers and host
 * arrays the calls could write are pre-filled with a canary pattern (inputs with their data) and
 * compared after every case. Also: status strings and the version.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define CANARY 0xA5

/* ---- watched memory ---------------------------------------------------------------------------
 */

/* Every buffer or host array a call might write, with the bytes it must still hold. */
typedef struct watched {
  const char *name;
  cl_mem buf;             /* device buffer, or NULL */
  cl_command_queue queue; /* to read buf */
  void *host;             /* host array, or NULL */
  unsigned char *expect;
  size_t bytes;
} watched;

#define MAX_WATCHED 64
static watched g_watched[MAX_WATCHED];
static int g_nwatched;

static void watch(const char *name, cl_mem buf, cl_command_queue q, void *host,
                  const unsigned char *content, size_t bytes) {
  if (g_nwatched >= MAX_WATCHED) {
    printf("FAIL: too many watched buffers\n");
    exit(1);
  }
  watched *w = &g_watched[g_nwatched++];
  w->name = name;
  w->buf = buf;
  w->queue = q;
  w->host = host;
  w->bytes = bytes;
  w->expect = (unsigned char *)malloc(bytes);
  memcpy(w->expect, content, bytes);
}

/* A device buffer of ctx (or of another cl_context when clctx/queue are given) holding data, or the
 * canary pattern when data is NULL; watched from now on. */
static cl_mem watched_buffer(const char *name, cl_context clctx, cl_command_queue q,
                             const void *data, size_t bytes) {
  unsigned char *content = (unsigned char *)malloc(bytes);
  if (data)
    memcpy(content, data, bytes);
  else
    memset(content, CANARY, bytes);
  cl_int err;
  cl_mem m = clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, content, &err);
  if (err != CL_SUCCESS) {
    printf("FAIL: clCreateBuffer(%s, %zu) = %d\n", name, bytes, (int)err);
    exit(1);
  }
  watch(name, m, q, NULL, content, bytes);
  free(content);
  return m;
}

/* A host output array filled with the canary; watched from now on. */
static void *watched_host(const char *name, size_t bytes) {
  void *p = malloc(bytes);
  memset(p, CANARY, bytes);
  watch(name, NULL, NULL, p, (const unsigned char *)p, bytes);
  return p;
}

/* Returns the name of the first watched buffer that changed, or NULL. */
static const char *changed_output(void) {
  for (int i = 0; i < g_nwatched; ++i) {
    watched *w = &g_watched[i];
    if (w->buf) {
      unsigned char *now = (unsigned char *)malloc(w->bytes);
      clFinish(w->queue);
      cl_int err = clEnqueueReadBuffer(w->queue, w->buf, CL_TRUE, 0, w->bytes, now, 0, NULL, NULL);
      int same = err == CL_SUCCESS && memcmp(now, w->expect, w->bytes) == 0;
      free(now);
      if (!same) return w->name;
    } else if (memcmp(w->host, w->expect, w->bytes) != 0) {
      return w->name;
    }
  }
  return NULL;
}

/* ---- the case checker -------------------------------------------------------------------------
 */

static adasplash_context *g_main; /* for the sentinel error */
static int g_cases;
static char g_sentinel[4096];

/* Records a known error on the thread and on ctx so a stale message cannot pass for a new one.
 * alt picks another sentinel (for the one case whose own message is the default sentinel). */
static void sentinel(adasplash_context *ctx, int alt) {
  adasplash_context *c = ctx ? ctx : g_main;
  if (alt)
    adasplash_context_get_device_info(c, NULL);
  else
    adasplash_context_get_cache_stats(c, NULL);
  adasplash_get_last_error(NULL, g_sentinel, sizeof g_sentinel, NULL);
}

static void check_case(int line, const char *call, adasplash_context *ctx, adasplash_status got,
                       adasplash_status want, const char *name) {
  ++g_cases;
  char msg[4096] = "", ctx_msg[4096] = "";
  adasplash_status last = adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
  int ok = test_check(got == want, "line %d: %s returned %s, want %s", line, call,
                      adasplash_status_string(got), adasplash_status_string(want));
  ok &= test_check(last == want, "line %d: thread's last error status is %d, want %d", line,
                   (int)last, (int)want);
  ok &= test_check(msg[0] != '\0' && strcmp(msg, g_sentinel) != 0,
                   "line %d: a new message is recorded (\"%s\")", line, msg);
  ok &= test_check(strstr(msg, name) != NULL, "line %d: message names \"%s\": %s", line, name, msg);
  if (ctx) {
    adasplash_status ctx_last = adasplash_get_last_error(ctx, ctx_msg, sizeof ctx_msg, NULL);
    ok &= test_check(ctx_last == want && strcmp(ctx_msg, msg) == 0,
                     "line %d: the context records the same error (%d: %s)", line, (int)ctx_last,
                     ctx_msg);
  }
  const char *changed = changed_output();
  ok &= test_check(changed == NULL, "line %d: outputs untouched (%s changed)", line,
                   changed ? changed : "none");
  if (!ok) printf("  in: %s\n", call);
}

/* EXPECT(ctx the error is recorded on (NULL: thread only), call, status, argument name). */
#define EXPECT_ALT(CTX, CALL, WANT, NAME, ALT)           \
  do {                                                   \
    sentinel((CTX), (ALT));                              \
    adasplash_status st_ = (CALL);                       \
    check_case(__LINE__, #CALL, (CTX), st_, WANT, NAME); \
  } while (0)
#define EXPECT(CTX, CALL, WANT, NAME) EXPECT_ALT(CTX, CALL, WANT, NAME, 0)

#define E_ARG ADASPLASH_ERROR_INVALID_ARGUMENT
#define E_SHAPE ADASPLASH_ERROR_INVALID_SHAPE
#define E_STRIDE ADASPLASH_ERROR_INVALID_STRIDE
#define E_ALPHA ADASPLASH_ERROR_INVALID_ALPHA
#define E_BUFFER ADASPLASH_ERROR_INVALID_BUFFER
#define E_SMALL ADASPLASH_ERROR_BUFFER_TOO_SMALL

/* ---- fixtures ---------------------------------------------------------------------------------
 */

#define R_ROWS 4
#define R_COLS 8
#define R_BYTES (R_ROWS * R_COLS * 4)

/* Attention problem: batch 2, q_heads 2, kv_heads 1, q_len 5, kv_len 7, head_dim 16, f32. */
#define A_B 2
#define A_HQ 2
#define A_HK 1
#define A_LQ 5
#define A_LK 7
#define A_D 16
#define A_QBYTES (A_B * A_HQ * A_LQ * A_D * 4)
#define A_KBYTES (A_B * A_HK * A_LK * A_D * 4)

typedef struct fixture {
  adasplash_context *ctx, *fresh; /* fresh: nothing prepared */
  cl_context clctx, other;
  cl_command_queue queue, other_queue, fresh_queue;
  /* rows */
  cl_mem x, y, y_small, x_other, sweeps, sweeps_small, alpha_small, valid_other, dy, dx, dalpha,
      dalpha_small, fresh_x, fresh_y;
  cl_event event;
  /* attention */
  cl_mem q, k, v, out, saved, saved_small, workspace_small, q_other, q_lens_small, alpha_other, dq,
      dk, dv, dout, dq_small, adalpha, adalpha_small, fresh_q, fresh_k, fresh_v, fresh_out;
  size_t saved_bytes, workspace_bytes;
  /* host */
  float *hx, *hy, *hdy, *hdx, *hdalpha, *halpha_bad;
  float *hq, *hk, *hv, *hout, *hdout, *hdq, *hdk, *hdv, *hadalpha;
} fixture;

static float *random_floats(size_t n, unsigned seed) {
  float *p = (float *)malloc(n * sizeof *p);
  unsigned s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = (float)((s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
  }
  return p;
}

static void rows_desc(adasplash_entmax_desc *d) {
  adasplash_entmax_desc_init(d);
  d->rows = R_ROWS;
  d->cols = R_COLS;
  d->alpha = 1.5f;
}

static void attn_desc(adasplash_attention_desc *d) {
  adasplash_attention_desc_init(d);
  d->batch = A_B;
  d->q_heads = A_HQ;
  d->kv_heads = A_HK;
  d->q_len = A_LQ;
  d->kv_len = A_LK;
  d->head_dim = A_D;
  d->alpha = 1.5f;
}

static void setup(fixture *f) {
  memset(f, 0, sizeof *f);
  f->ctx = test_context(NULL);
  g_main = f->ctx;
  test_print_device(f->ctx);
  cl_device_id dev;
  adasplash_context_get_cl(f->ctx, &f->clctx, &dev, &f->queue);
  cl_int err;
  f->other = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
  f->other_queue = clCreateCommandQueue(f->other, dev, 0, &err);
  if (err != CL_SUCCESS) {
    printf("FAIL: a second cl_context: %d\n", (int)err);
    exit(1);
  }
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = "off";
  f->fresh = test_context(&o);
  cl_context fresh_cl;
  adasplash_context_get_cl(f->fresh, &fresh_cl, NULL, &f->fresh_queue);

  /* Prepared variants of the main context: f32 rows and f32 attention (head_dim 16). */
  adasplash_entmax_desc rd;
  rows_desc(&rd);
  test_require(f->ctx, adasplash_entmax_prepare(f->ctx, &rd), "adasplash_entmax_prepare");
  adasplash_attention_desc ad;
  attn_desc(&ad);
  test_require(f->ctx, adasplash_attention_prepare(f->ctx, &ad), "adasplash_attention_prepare");
  ad.flags = ADASPLASH_ATTN_SAVE_ALPHA_GRAD;
  test_require(f->ctx, adasplash_attention_saved_size(f->ctx, &ad, &f->saved_bytes),
               "adasplash_attention_saved_size");
  test_require(f->ctx, adasplash_attention_workspace_size(f->ctx, &ad, &f->workspace_bytes),
               "adasplash_attention_workspace_size");

  float *data = random_floats(4096, 1);
  int lens[8] = {A_LQ, A_LQ, A_LQ, A_LQ, A_LQ, A_LQ, A_LQ, A_LQ};
  cl_context c = f->clctx;
  cl_command_queue q = f->queue;
  f->x = watched_buffer("x", c, q, data, R_BYTES);
  f->y = watched_buffer("y", c, q, NULL, R_BYTES);
  f->y_small = watched_buffer("y_small", c, q, NULL, R_BYTES - 4);
  f->x_other = watched_buffer("x_other", f->other, f->other_queue, data, R_BYTES);
  f->sweeps = watched_buffer("sweeps", c, q, NULL, R_ROWS * 4);
  f->sweeps_small = watched_buffer("sweeps_small", c, q, NULL, R_ROWS * 4 - 4);
  f->alpha_small = watched_buffer("alpha_small", c, q, data, R_ROWS * 4 - 4);
  f->valid_other = watched_buffer("valid_other", f->other, f->other_queue, lens, R_ROWS * 4);
  f->dy = watched_buffer("dy", c, q, data + 64, R_BYTES);
  f->dx = watched_buffer("dx", c, q, NULL, R_BYTES);
  f->dalpha = watched_buffer("dalpha", c, q, NULL, R_ROWS * 4);
  f->dalpha_small = watched_buffer("dalpha_small", c, q, NULL, 4);
  f->fresh_x = watched_buffer("fresh_x", fresh_cl, f->fresh_queue, data, R_BYTES);
  f->fresh_y = watched_buffer("fresh_y", fresh_cl, f->fresh_queue, NULL, R_BYTES);
  f->event = clCreateUserEvent(f->clctx, &err);

  f->q = watched_buffer("q", c, q, data, A_QBYTES);
  f->k = watched_buffer("k", c, q, data + 7, A_KBYTES);
  f->v = watched_buffer("v", c, q, data + 13, A_KBYTES);
  f->out = watched_buffer("out", c, q, NULL, A_QBYTES);
  f->saved = watched_buffer("saved", c, q, NULL, f->saved_bytes);
  f->saved_small = watched_buffer("saved_small", c, q, NULL, 64);
  f->workspace_small = watched_buffer("workspace_small", c, q, NULL, 16);
  f->q_other = watched_buffer("q_other", f->other, f->other_queue, data, A_QBYTES);
  f->q_lens_small = watched_buffer("q_lens_small", c, q, lens, 4);
  f->alpha_other = watched_buffer("alpha_other", f->other, f->other_queue, data, A_HQ * 4);
  f->dq = watched_buffer("dq", c, q, NULL, A_QBYTES);
  f->dk = watched_buffer("dk", c, q, NULL, A_KBYTES);
  f->dv = watched_buffer("dv", c, q, NULL, A_KBYTES);
  f->dout = watched_buffer("dout", c, q, data + 21, A_QBYTES);
  f->dq_small = watched_buffer("dq_small", c, q, NULL, A_QBYTES - 4);
  f->adalpha = watched_buffer("attention dalpha", c, q, NULL, A_HQ * 4);
  f->adalpha_small = watched_buffer("attention dalpha_small", c, q, NULL, 4);
  f->fresh_q = watched_buffer("fresh_q", fresh_cl, f->fresh_queue, data, A_QBYTES);
  f->fresh_k = watched_buffer("fresh_k", fresh_cl, f->fresh_queue, data, A_KBYTES);
  f->fresh_v = watched_buffer("fresh_v", fresh_cl, f->fresh_queue, data, A_KBYTES);
  f->fresh_out = watched_buffer("fresh_out", fresh_cl, f->fresh_queue, NULL, A_QBYTES);

  f->hx = data; /* inputs are read only; outputs are watched */
  f->hy = (float *)watched_host("host y", R_BYTES);
  f->hdy = data + 128;
  f->hdx = (float *)watched_host("host dx", R_BYTES);
  f->hdalpha = (float *)watched_host("host dalpha", R_ROWS * 4);
  f->halpha_bad = (float *)malloc(R_ROWS * 4);
  for (int r = 0; r < R_ROWS; ++r) f->halpha_bad[r] = r == 2 ? 2.5f : 1.5f;
  f->hq = data;
  f->hk = data + 11;
  f->hv = data + 17;
  f->hdout = data + 23;
  f->hout = (float *)watched_host("host out", A_QBYTES);
  f->hdq = (float *)watched_host("host dq", A_QBYTES);
  f->hdk = (float *)watched_host("host dk", A_KBYTES);
  f->hdv = (float *)watched_host("host dv", A_KBYTES);
  f->hadalpha = (float *)watched_host("host attention dalpha", A_HQ * 4);
}

/* ---- row entmax -------------------------------------------------------------------------------
 */

static void test_rows(fixture *f) {
  adasplash_context *ctx = f->ctx;
  adasplash_entmax_desc d, g;
  rows_desc(&g);
  const cl_event *no_wait = NULL;

#define FWD(D) adasplash_entmax_forward(ctx, (D), NULL, f->x, f->y, f->sweeps, 0, no_wait, NULL)
  EXPECT(NULL, adasplash_entmax_forward(NULL, &g, NULL, f->x, f->y, NULL, 0, NULL, NULL), E_ARG,
         "ctx is NULL");
  EXPECT(ctx, FWD(NULL), E_ARG, "desc is NULL");
  d = g, d.struct_size = 0;
  EXPECT(ctx, FWD(&d), E_ARG, "desc->struct_size");
  d = g, d.struct_size = sizeof d - 4;
  EXPECT(ctx, FWD(&d), E_ARG, "desc->struct_size");
  d = g, d.dtype = (adasplash_dtype)7;
  EXPECT(ctx, FWD(&d), E_ARG, "desc->dtype");
  d = g, d.rows = 0;
  EXPECT(ctx, FWD(&d), E_SHAPE, "desc->rows");
  d = g, d.cols = 0;
  EXPECT(ctx, FWD(&d), E_SHAPE, "desc->cols");
  d = g, d.row_stride = R_COLS - 1;
  EXPECT(ctx, FWD(&d), E_STRIDE, "desc->row_stride");
  d = g, d.rows = (size_t)1 << 20, d.row_stride = (size_t)1 << 62;
  EXPECT(ctx, FWD(&d), E_STRIDE, "overflow");
  d = g, d.alpha = 1.0f;
  EXPECT(ctx, FWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = 0.5f;
  EXPECT(ctx, FWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = 2.001f;
  EXPECT(ctx, FWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = NAN;
  EXPECT(ctx, FWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = INFINITY;
  EXPECT(ctx, FWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.tolerance = -1.0f;
  EXPECT(ctx, FWD(&d), E_ARG, "desc->tolerance");
  d = g, d.max_iter = -1;
  EXPECT(ctx, FWD(&d), E_ARG, "desc->max_iter");
  d = g, d.init = (adasplash_tau_init)5;
  EXPECT(ctx, FWD(&d), E_ARG, "desc->init");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, NULL, f->y, NULL, 0, NULL, NULL), E_BUFFER,
         "x is NULL");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x, NULL, NULL, 0, NULL, NULL), E_BUFFER,
         "y is NULL");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x, f->y_small, NULL, 0, NULL, NULL),
         E_SMALL, "y holds");
  d = g, d.offset = 1; /* shape + offset need 4 bytes more than x has */
  EXPECT(ctx, adasplash_entmax_forward(ctx, &d, NULL, f->x, f->y, NULL, 0, NULL, NULL), E_SMALL,
         "x holds");
  d = g, d.row_stride = R_COLS + 1;
  EXPECT(ctx, FWD(&d), E_SMALL, "x holds");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x_other, f->y, NULL, 0, NULL, NULL),
         E_BUFFER, "x belongs to another cl_context");
  /* In-place rows are allowed; the small outputs may not overlap the matrices. */
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x, f->y, f->y, 0, NULL, NULL), E_ARG,
         "sweeps (bytes");
  EXPECT(ctx, adasplash_entmax_backward(ctx, &g, NULL, f->y, f->dy, f->dx, f->dx, 0, NULL, NULL),
         E_ARG, "dalpha (bytes");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x, f->y, f->sweeps_small, 0, NULL, NULL),
         E_SMALL, "sweeps holds");
  d = g, d.alpha_buf = f->alpha_small;
  EXPECT(ctx, FWD(&d), E_SMALL, "desc->alpha_buf holds");
  d = g, d.valid_cols = f->valid_other;
  EXPECT(ctx, FWD(&d), E_BUFFER, "desc->valid_cols belongs");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x, f->y, NULL, 1, NULL, NULL), E_ARG,
         "num_events_in_wait_list");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, NULL, f->x, f->y, NULL, 0, &f->event, NULL), E_ARG,
         "event_wait_list");
  EXPECT(ctx, adasplash_entmax_forward(ctx, &g, f->other_queue, f->x, f->y, NULL, 0, NULL, NULL),
         E_ARG, "queue belongs");
#undef FWD

  /* Backward and softmax share the validation; check their own buffers. */
  EXPECT(ctx, adasplash_entmax_backward(ctx, &g, NULL, f->y, NULL, f->dx, NULL, 0, NULL, NULL),
         E_BUFFER, "dy is NULL");
  EXPECT(ctx,
         adasplash_entmax_backward(ctx, &g, NULL, f->x, f->dy, f->y_small, NULL, 0, NULL, NULL),
         E_SMALL, "dx holds");
  EXPECT(ctx,
         adasplash_entmax_backward(ctx, &g, NULL, f->x, f->dy, f->dx, f->x_other, 0, NULL, NULL),
         E_BUFFER, "dalpha belongs");
  d = g, d.alpha_buf = f->dalpha; /* per-row alpha: dalpha needs rows floats */
  EXPECT(
      ctx,
      adasplash_entmax_backward(ctx, &d, NULL, f->x, f->dy, f->dx, f->dalpha_small, 0, NULL, NULL),
      E_SMALL, "dalpha holds");
  d = g, d.alpha = 3.0f;
  EXPECT(ctx, adasplash_entmax_backward(ctx, &d, NULL, f->x, f->dy, f->dx, NULL, 0, NULL, NULL),
         E_ALPHA, "desc->alpha");
  EXPECT(NULL, adasplash_entmax_backward(NULL, &g, NULL, f->x, f->dy, f->dx, NULL, 0, NULL, NULL),
         E_ARG, "ctx is NULL");
  d = g, d.rows = 0;
  EXPECT(ctx, adasplash_softmax_rows_forward(ctx, &d, NULL, f->x, f->y, 0, NULL, NULL), E_SHAPE,
         "desc->rows");
  EXPECT(ctx, adasplash_softmax_rows_forward(ctx, &g, NULL, f->x, f->x_other, 0, NULL, NULL),
         E_BUFFER, "y belongs");
  EXPECT(ctx, adasplash_softmax_rows_forward(ctx, NULL, NULL, f->x, f->y, 0, NULL, NULL), E_ARG,
         "desc is NULL");
  EXPECT(ctx, adasplash_entmax_prepare(ctx, NULL), E_ARG, "desc is NULL");
  d = g, d.cols = 0;
  EXPECT(ctx, adasplash_entmax_prepare(ctx, &d), E_SHAPE, "desc->cols");
  EXPECT(NULL, adasplash_entmax_prepare(NULL, &g), E_ARG, "ctx is NULL");

  /* Host variants. */
  EXPECT(ctx, adasplash_entmax_forward_host(ctx, &g, NULL, f->hy, NULL, NULL, NULL), E_ARG,
         "x is NULL");
  EXPECT(ctx, adasplash_entmax_forward_host(ctx, &g, f->hx, NULL, NULL, NULL, NULL), E_ARG,
         "y is NULL");
  EXPECT(NULL, adasplash_entmax_forward_host(NULL, &g, f->hx, f->hy, NULL, NULL, NULL), E_ARG,
         "ctx is NULL");
  EXPECT(ctx, adasplash_entmax_forward_host(ctx, &g, f->hx, f->hy, f->halpha_bad, NULL, NULL),
         E_ALPHA, "alpha[2]");
  d = g, d.alpha_buf = f->dalpha;
  EXPECT(ctx, adasplash_entmax_forward_host(ctx, &d, f->hx, f->hy, NULL, NULL, NULL), E_ARG,
         "desc->alpha_buf and desc->valid_cols must be NULL");
  d = g, d.cols = 0;
  EXPECT(ctx, adasplash_entmax_forward_host(ctx, &d, f->hx, f->hy, NULL, NULL, NULL), E_SHAPE,
         "desc->cols");
  EXPECT(ctx, adasplash_entmax_backward_host(ctx, &g, f->hx, NULL, f->hdx, NULL, NULL, f->hdalpha),
         E_ARG, "dy is NULL");
  d = g, d.rows = 0;
  EXPECT(ctx,
         adasplash_entmax_backward_host(ctx, &d, f->hx, f->hdy, f->hdx, NULL, NULL, f->hdalpha),
         E_SHAPE, "desc->rows");
  EXPECT(ctx,
         adasplash_entmax_backward_host(ctx, &g, f->hx, f->hdy, f->hdx, f->halpha_bad, NULL,
                                        f->hdalpha),
         E_ALPHA, "alpha[2]");
  EXPECT(ctx, adasplash_entmax_backward_host(ctx, NULL, f->hx, f->hdy, f->hdx, NULL, NULL, NULL),
         E_ARG, "desc is NULL");
}

/* ---- attention --------------------------------------------------------------------------------
 */

static void test_attention(fixture *f) {
  adasplash_context *ctx = f->ctx;
  adasplash_attention_desc d, g;
  attn_desc(&g);

#define AFWD(D)                                                                                  \
  adasplash_attention_forward(ctx, (D), NULL, f->q, f->k, f->v, f->out, f->saved, NULL, 0, NULL, \
                              NULL)
#define ABWD(D, SAVED, DALPHA)                                                                    \
  adasplash_attention_backward(ctx, (D), NULL, f->q, f->k, f->v, f->out, f->dout, (SAVED), f->dq, \
                               f->dk, f->dv, (DALPHA), NULL, 0, NULL, NULL)
  EXPECT(NULL,
         adasplash_attention_forward(NULL, &g, NULL, f->q, f->k, f->v, f->out, NULL, NULL, 0, NULL,
                                     NULL),
         E_ARG, "ctx is NULL");
  EXPECT(ctx, AFWD(NULL), E_ARG, "desc is NULL");
  d = g, d.struct_size = sizeof d + 8;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->struct_size");
  d = g, d.dtype = (adasplash_dtype)-1;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->dtype");
  d = g, d.algorithm = (adasplash_attention_algorithm)9;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->algorithm");
  d = g, d.batch = 0;
  EXPECT(ctx, AFWD(&d), E_SHAPE, "desc->batch");
  d = g, d.q_heads = 0;
  EXPECT(ctx, AFWD(&d), E_SHAPE, "desc->q_heads");
  d = g, d.q_heads = 3, d.kv_heads = 2;
  EXPECT(ctx, AFWD(&d), E_SHAPE, "desc->kv_heads");
  d = g, d.q_len = 0;
  EXPECT(ctx, AFWD(&d), E_SHAPE, "desc->q_len");
  d = g, d.kv_len = -1;
  EXPECT(ctx, AFWD(&d), E_SHAPE, "desc->kv_len");
  d = g, d.head_dim = 0;
  EXPECT(ctx, AFWD(&d), E_SHAPE, "desc->head_dim");
  d = g, d.head_dim = 300;
  EXPECT(ctx, AFWD(&d), ADASPLASH_ERROR_UNSUPPORTED, "desc->head_dim");
  d = g, d.alpha = 1.0f;
  EXPECT(ctx, AFWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = -2.0f;
  EXPECT(ctx, AFWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = 2.5f;
  EXPECT(ctx, AFWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.alpha = NAN;
  EXPECT(ctx, AFWD(&d), E_ALPHA, "desc->alpha");
  d = g, d.scale = -1.0f;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->scale");
  d = g, d.scale = INFINITY;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->scale");
  d = g, d.tolerance = 1.0f;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->tolerance");
  d = g, d.max_iter = 5000;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->max_iter");
  d = g, d.causal = 2;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->causal");
  d = g, d.flags = 0x10;
  EXPECT(ctx, AFWD(&d), E_ARG, "desc->flags");
  /* Layouts: seq_stride < head_dim, partial strides, heads overlapping in BSHD, overflow. */
  d = g, d.q.seq_stride = A_D / 2, d.q.head_stride = A_LQ * A_D,
  d.q.batch_stride = A_HQ * A_LQ * A_D;
  EXPECT(ctx, AFWD(&d), E_STRIDE, "desc->q");
  d = g, d.k.seq_stride = A_D;
  EXPECT(ctx, AFWD(&d), E_STRIDE, "desc->k");
  d = g, d.out.seq_stride = A_HQ * A_D, d.out.head_stride = A_D / 2,
  d.out.batch_stride = A_LQ * A_HQ * A_D;
  EXPECT(ctx, AFWD(&d), E_STRIDE, "desc->out");
  d = g, d.v.seq_stride = (size_t)1 << 62, d.v.head_stride = A_D, d.v.batch_stride = A_D;
  EXPECT(ctx, AFWD(&d), E_STRIDE, "desc->v");
  d = g, d.v.offset = 1000;
  EXPECT(ctx, AFWD(&d), E_SMALL, "v holds");
  d = g, d.out.offset = 1;
  EXPECT(ctx, AFWD(&d), E_SMALL, "out holds");
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q_other, f->k, f->v, f->out, NULL, NULL, 0,
                                     NULL, NULL),
         E_BUFFER, "q belongs to another cl_context");
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q, NULL, f->v, f->out, NULL, NULL, 0, NULL,
                                     NULL),
         E_BUFFER, "k is NULL");
  EXPECT(
      ctx,
      adasplash_attention_forward(ctx, &g, NULL, f->q, f->k, f->v, NULL, NULL, NULL, 0, NULL, NULL),
      E_BUFFER, "out is NULL");
  d = g, d.q_lens = f->q_lens_small;
  EXPECT(ctx, AFWD(&d), E_SMALL, "desc->q_lens holds");
  d = g, d.kv_lens = f->x_other;
  EXPECT(ctx, AFWD(&d), E_BUFFER, "desc->kv_lens belongs");
  d = g, d.alpha_buf = f->alpha_other;
  EXPECT(ctx, AFWD(&d), E_BUFFER, "desc->alpha_buf belongs");
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q, f->k, f->v, f->out, NULL, NULL, 2, NULL,
                                     NULL),
         E_ARG, "num_events_in_wait_list");
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, f->other_queue, f->q, f->k, f->v, f->out, NULL, NULL,
                                     0, NULL, NULL),
         E_ARG, "queue belongs");
  /* Prepared (f32, head_dim 16): the saved and workspace checks. */
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q, f->k, f->v, f->out, f->saved_small, NULL,
                                     0, NULL, NULL),
         ADASPLASH_ERROR_INVALID_SAVED, "saved buffer is smaller");
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q, f->k, f->v, f->out, f->saved,
                                     f->workspace_small, 0, NULL, NULL),
         E_SMALL, "workspace");

  /* Outputs, saved state and workspace may not overlap another argument. */
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q, f->k, f->v, f->q, f->saved, NULL, 0, NULL,
                                     NULL),
         E_ARG, "out (bytes");
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &g, NULL, f->q, f->k, f->v, f->out, f->saved, f->saved, 0,
                                     NULL, NULL),
         E_ARG, "workspace (bytes");
  EXPECT(ctx,
         adasplash_attention_backward(ctx, &g, NULL, f->q, f->k, f->v, f->out, f->dout, f->saved,
                                      f->dout, f->dk, f->dv, NULL, NULL, 0, NULL, NULL),
         E_ARG, "dq (bytes");

  /* Backward. */
  d = g, d.flags = ADASPLASH_ATTN_SAVE_ALPHA_GRAD;
  EXPECT(ctx, ABWD(&d, f->saved_small, NULL), ADASPLASH_ERROR_INVALID_SAVED,
         "saved buffer is smaller");
  EXPECT(ctx, ABWD(&d, NULL, NULL), ADASPLASH_ERROR_INVALID_SAVED, "saved is NULL");
  EXPECT(ctx, ABWD(&g, f->saved, f->adalpha), E_ARG, "ADASPLASH_ATTN_SAVE_ALPHA_GRAD");
  EXPECT(ctx, ABWD(&d, f->saved, f->adalpha_small), E_SMALL, "dalpha holds");
  EXPECT(ctx,
         adasplash_attention_backward(ctx, &d, NULL, f->q, f->k, f->v, f->out, NULL, f->saved,
                                      f->dq, f->dk, f->dv, NULL, NULL, 0, NULL, NULL),
         E_BUFFER, "dout is NULL");
  EXPECT(ctx,
         adasplash_attention_backward(ctx, &d, NULL, f->q, f->k, f->v, f->out, f->dout, f->saved,
                                      f->dq_small, f->dk, f->dv, NULL, NULL, 0, NULL, NULL),
         E_SMALL, "dq holds");
  EXPECT(ctx,
         adasplash_attention_backward(ctx, &d, NULL, f->q, f->k, f->v, f->out, f->dout, f->saved,
                                      f->dq, f->dk, NULL, NULL, NULL, 0, NULL, NULL),
         E_BUFFER, "dv is NULL");
  d.kv_heads = 0;
  EXPECT(ctx, ABWD(&d, f->saved, NULL), E_SHAPE, "desc->kv_heads");
  EXPECT(ctx,
         adasplash_attention_backward(ctx, &g, NULL, f->q, f->k, f->v, f->out, f->dout, f->saved,
                                      f->dq, f->dk, f->dv, NULL, NULL, 1, NULL, NULL),
         E_ARG, "num_events_in_wait_list");
#undef AFWD
#undef ABWD

  /* The alpha gradient's output pass is a program of its own (attn_alpha.cl), compiled only by a
   * prepare of a desc that asks for it: until then such a forward is refused with outputs
   * untouched, and that prepare compiles (or loads) exactly one more program. */
  d = g, d.flags = ADASPLASH_ATTN_SAVE_ALPHA_GRAD;
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &d, NULL, f->q, f->k, f->v, f->out, f->saved, NULL, 0,
                                     NULL, NULL),
         ADASPLASH_ERROR_NOT_PREPARED, "adasplash_attention_prepare");
  adasplash_cache_stats before, after;
  memset(&before, 0, sizeof before);
  before.struct_size = sizeof before;
  after = before;
  adasplash_context_get_cache_stats(ctx, &before);
  test_check(adasplash_attention_prepare(ctx, &d) == ADASPLASH_SUCCESS,
             "adasplash_attention_prepare with ADASPLASH_ATTN_SAVE_ALPHA_GRAD");
  adasplash_context_get_cache_stats(ctx, &after);
  const unsigned long made = (after.builds + after.disk_hits) - (before.builds + before.disk_hits);
  test_check(made == 1, "the alpha gradient's prepare adds one program, attn_alpha.cl (%lu)", made);

  /* Sizes, prepare, diagnostics. */
  size_t bytes = 0;
  EXPECT(ctx, adasplash_attention_saved_size(ctx, &g, NULL), E_ARG, "bytes is NULL");
  EXPECT(ctx, adasplash_attention_workspace_size(ctx, NULL, &bytes), E_ARG, "desc is NULL");
  d = g, d.batch = -3;
  EXPECT(ctx, adasplash_attention_saved_size(ctx, &d, &bytes), E_SHAPE, "desc->batch");
  d = g, d.head_dim = 300;
  EXPECT(ctx, adasplash_attention_prepare(ctx, &d), ADASPLASH_ERROR_UNSUPPORTED, "desc->head_dim");
  EXPECT(NULL, adasplash_attention_prepare(NULL, &g), E_ARG, "ctx is NULL");
  EXPECT(ctx, adasplash_attention_stats_read(ctx, &g, NULL, f->saved, NULL), E_ARG,
         "stats is NULL");
  adasplash_attention_stats stats;
  memset(&stats, 0, sizeof stats);
  stats.struct_size = 3;
  EXPECT(ctx, adasplash_attention_stats_read(ctx, &g, NULL, f->saved, &stats), E_ARG,
         "stats->struct_size");
  float *tau = (float *)watched_host("host tau", A_B * A_HQ * A_LQ * 4);
  EXPECT(ctx, adasplash_attention_saved_read(ctx, NULL, NULL, f->saved, tau, NULL), E_ARG,
         "desc is NULL");
  EXPECT(ctx, adasplash_attention_saved_read(ctx, &g, NULL, f->saved_small, tau, NULL),
         ADASPLASH_ERROR_INVALID_SAVED, "saved buffer is smaller");

  /* Host variants: lengths must lie in [0, len], alpha in (1, 2]. */
  int q_lens[A_B] = {A_LQ, A_LQ + 1}, kv_lens[A_B] = {-1, A_LK}, kv_big[A_B] = {A_LK, A_LK + 1};
  float alpha_bad[A_HQ] = {1.5f, 1.0f};
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &g, f->hq, f->hk, f->hv, f->hout, NULL, q_lens, NULL,
                                          NULL),
         E_SHAPE, "q_lens[1]");
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &g, f->hq, f->hk, f->hv, f->hout, NULL, NULL,
                                          kv_lens, NULL),
         E_SHAPE, "kv_lens[0]");
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &g, f->hq, f->hk, f->hv, f->hout, alpha_bad, NULL,
                                          NULL, NULL),
         E_ALPHA, "alpha[1]");
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &g, f->hq, NULL, f->hv, f->hout, NULL, NULL, NULL,
                                          NULL),
         E_ARG, "k is NULL");
  d = g, d.q_lens = f->q_lens_small;
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &d, f->hq, f->hk, f->hv, f->hout, NULL, NULL, NULL,
                                          NULL),
         E_ARG, "q_lens and kv_lens must be NULL");
  stats.struct_size = sizeof stats - 4;
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &g, f->hq, f->hk, f->hv, f->hout, NULL, NULL, NULL,
                                          &stats),
         E_ARG, "stats->struct_size");
  d = g, d.head_dim = 300;
  EXPECT(ctx,
         adasplash_attention_forward_host(ctx, &d, f->hq, f->hk, f->hv, f->hout, NULL, NULL, NULL,
                                          NULL),
         ADASPLASH_ERROR_UNSUPPORTED, "desc->head_dim");
  EXPECT(ctx,
         adasplash_attention_backward_host(ctx, &g, f->hq, f->hk, f->hv, f->hdout, f->hout, f->hdq,
                                           f->hdk, f->hdv, f->hadalpha, NULL, NULL, kv_big),
         E_SHAPE, "kv_lens[1]");
  EXPECT(ctx,
         adasplash_attention_backward_host(ctx, &g, f->hq, f->hk, f->hv, f->hdout, f->hout, f->hdq,
                                           f->hdk, f->hdv, NULL, NULL, q_lens, NULL),
         E_SHAPE, "q_lens[1]");
  EXPECT(ctx,
         adasplash_attention_backward_host(ctx, &g, f->hq, f->hk, f->hv, f->hdout, f->hout, f->hdq,
                                           f->hdk, f->hdv, NULL, alpha_bad, NULL, NULL),
         E_ALPHA, "alpha[1]");
  EXPECT(NULL,
         adasplash_attention_backward_host(NULL, &g, f->hq, f->hk, f->hv, f->hdout, f->hout, f->hdq,
                                           f->hdk, f->hdv, NULL, NULL, NULL, NULL),
         E_ARG, "ctx is NULL");
}

/* ---- paged KV cache ----------------------------------------------------------------------------
 * One page of 16 keys per sequence (kv_len = max_blocks * page_size = 16); q doubles as both page
 * pools (read-only arguments may share a buffer). */

static void test_paged(fixture *f) {
  adasplash_context *ctx = f->ctx;
  adasplash_attention_desc g;
  attn_desc(&g);
  g.kv_len = 16;
  int32_t table[A_B] = {0, 0}, lens[A_B] = {16, 3};
  cl_mem bt = test_buffer(ctx, table, sizeof table), bl = test_buffer(ctx, lens, sizeof lens);
  adasplash_paged_kv good;
  adasplash_paged_kv_init(&good);
  good.page_size = 16;
  good.num_pages = 1;
  good.max_blocks = 1;
  good.block_table = bt;
  good.seq_lens = bl;
  good.block_table_host = table;
  good.seq_lens_host = lens;
  adasplash_paged_kv kv = good;
  adasplash_attention_desc d = g;
  size_t bytes = 0;
  test_require(ctx, adasplash_attention_paged_workspace_size(ctx, &g, &good, &bytes),
               "paged_workspace_size");
#define PFWD(D, KV)                                                                                \
  adasplash_attention_forward_paged(ctx, (D), (KV), NULL, f->q, f->q, f->q, f->out, NULL, 0, NULL, \
                                    NULL)
  EXPECT(ctx, adasplash_attention_paged_workspace_size(ctx, &g, &good, NULL), E_ARG,
         "bytes is NULL");
  EXPECT(ctx, adasplash_attention_paged_workspace_size(ctx, &g, NULL, &bytes), E_ARG, "kv is NULL");
  EXPECT(NULL, PFWD(NULL, &good), E_ARG, "desc is NULL");
  kv = good, kv.struct_size = 1;
  EXPECT(ctx, PFWD(&g, &kv), E_ARG, "kv->struct_size");
  kv = good, kv.page_size = 8;
  EXPECT(ctx, PFWD(&g, &kv), E_ARG, "kv->page_size");
  kv = good, kv.max_blocks = 0;
  EXPECT(ctx, PFWD(&g, &kv), E_SHAPE, "kv->max_blocks");
  d = g, d.kv_len = 17;
  EXPECT(ctx, PFWD(&d, &good), E_SHAPE, "desc->kv_len");
  d = g, d.kv_lens = bl;
  EXPECT(ctx, PFWD(&d, &good), E_ARG, "desc->kv_lens");
  d = g, d.algorithm = ADASPLASH_ATTN_SOFTMAX_FLASH;
  EXPECT(ctx, PFWD(&d, &good), ADASPLASH_ERROR_UNSUPPORTED, "entmax algorithm only");
  kv = good, kv.seq_lens_host = NULL;
  EXPECT(ctx, PFWD(&g, &kv), E_ARG, "kv->seq_lens_host");
  kv = good, kv.seq_lens = NULL;
  EXPECT(ctx, PFWD(&g, &kv), E_BUFFER, "kv->seq_lens");
  kv = good, kv.num_pages = 2; /* the pools then need two pages */
  EXPECT(ctx, PFWD(&g, &kv), E_SMALL, "k_pages");
  {
    int32_t bad_lens[A_B] = {16, -2}, long_lens[A_B] = {17, 0}, bad_table[A_B] = {0, 1};
    kv = good, kv.seq_lens_host = bad_lens;
    EXPECT(ctx, PFWD(&g, &kv), E_SHAPE, "kv->seq_lens[1]");
    kv = good, kv.seq_lens_host = long_lens;
    EXPECT(ctx, PFWD(&g, &kv), E_SHAPE, "kv->seq_lens[0]");
    kv = good, kv.block_table_host = bad_table;
    EXPECT(ctx, PFWD(&g, &kv), E_ARG, "kv->block_table[1][0]");
  }
  EXPECT(ctx,
         adasplash_attention_forward_paged(ctx, &g, &good, NULL, f->q, f->q, f->q, f->q, NULL, 0,
                                           NULL, NULL),
         E_ARG, "out");
#undef PFWD
  clReleaseMemObject(bt);
  clReleaseMemObject(bl);
}

/* ---- enqueue before prepare -------------------------------------------------------------------
 */

static void test_not_prepared(fixture *f) {
  adasplash_context *ctx = f->fresh;
  adasplash_entmax_desc rd;
  rows_desc(&rd);
  rd.dtype = ADASPLASH_BF16; /* never prepared anywhere in this program */
  rd.cols = R_COLS * 2;      /* same bytes as the f32 buffers */
  EXPECT(ctx, adasplash_entmax_forward(ctx, &rd, NULL, f->fresh_x, f->fresh_y, NULL, 0, NULL, NULL),
         ADASPLASH_ERROR_NOT_PREPARED, "adasplash_entmax_prepare");
  EXPECT(ctx,
         adasplash_entmax_backward(ctx, &rd, NULL, f->fresh_x, f->fresh_x, f->fresh_y, NULL, 0,
                                   NULL, NULL),
         ADASPLASH_ERROR_NOT_PREPARED, "prepare");
  EXPECT(ctx, adasplash_softmax_rows_forward(ctx, &rd, NULL, f->fresh_x, f->fresh_y, 0, NULL, NULL),
         ADASPLASH_ERROR_NOT_PREPARED, "prepare");
  adasplash_attention_desc ad;
  attn_desc(&ad);
  ad.dtype = ADASPLASH_F16;
  ad.head_dim = 32; /* same bytes as the f32 head_dim 16 buffers */
  EXPECT(ctx,
         adasplash_attention_forward(ctx, &ad, NULL, f->fresh_q, f->fresh_k, f->fresh_v,
                                     f->fresh_out, NULL, NULL, 0, NULL, NULL),
         ADASPLASH_ERROR_NOT_PREPARED, "adasplash_attention_prepare");
  adasplash_cache_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  adasplash_context_get_cache_stats(ctx, &s);
  test_check(s.builds == 0 && s.disk_hits == 0, "enqueue paths never compile (builds=%lu)",
             s.builds);
}

/* ---- contexts, queries, conversions -----------------------------------------------------------
 */

static void test_context_calls(fixture *f) {
  adasplash_context *ctx = f->ctx;
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  adasplash_context *out = NULL;
  EXPECT(NULL, adasplash_context_create(&o, NULL), E_ARG, "ctx is NULL");
  o.struct_size = 3;
  EXPECT(NULL, adasplash_context_create(&o, &out), E_ARG, "options->struct_size");
  o.struct_size = offsetof(adasplash_context_options, cache_dir) + 4; /* half a pointer */
  EXPECT(NULL, adasplash_context_create(&o, &out), E_ARG, "options->struct_size");
  adasplash_context_options_init(&o);
  o.tune = "no_such_key=4";
  EXPECT(NULL, adasplash_context_create(&o, &out), ADASPLASH_ERROR_INVALID_TUNING, "no_such_key");
  o.tune = "rows_wg=100";
  EXPECT(NULL, adasplash_context_create(&o, &out), ADASPLASH_ERROR_INVALID_TUNING, "rows_wg");
  o.tune = "nv_fwd_maxrreg=16"; /* 0 or at least 32 */
  EXPECT(NULL, adasplash_context_create(&o, &out), ADASPLASH_ERROR_INVALID_TUNING,
         "nv_fwd_maxrreg");
  o.tune = "nv_bwd_maxrreg=256";
  EXPECT(NULL, adasplash_context_create(&o, &out), ADASPLASH_ERROR_INVALID_TUNING,
         "nv_bwd_maxrreg");
  o.tune = NULL;
  o.path = "warp-drive";
  EXPECT(NULL, adasplash_context_create(&o, &out), E_ARG, "kernel path");
  o.path = NULL;
  o.device = "no-such-device-xyz";
  EXPECT(NULL, adasplash_context_create(&o, &out), ADASPLASH_ERROR_NO_DEVICE, "no-such-device-xyz");
  test_check(out == NULL, "failed context creation leaves *ctx alone");

  cl_device_id dev;
  adasplash_context_get_cl(ctx, NULL, &dev, NULL);
  EXPECT(NULL, adasplash_context_create_borrowed(NULL, dev, f->queue, NULL, &out), E_ARG,
         "context is NULL");
  EXPECT(NULL, adasplash_context_create_borrowed(f->clctx, NULL, f->queue, NULL, &out), E_ARG,
         "device is NULL");
  EXPECT(NULL, adasplash_context_create_borrowed(f->clctx, dev, NULL, NULL, &out), E_ARG,
         "queue is NULL");
  EXPECT(NULL, adasplash_context_create_borrowed(f->clctx, dev, f->other_queue, NULL, &out), E_ARG,
         "queue belongs to another cl_context");
  EXPECT(NULL, adasplash_context_create_borrowed(f->clctx, dev, f->queue, NULL, NULL), E_ARG,
         "ctx is NULL");
  test_check(out == NULL, "refused borrows leave *ctx alone");

  adasplash_device_info info;
  EXPECT_ALT(ctx, adasplash_context_get_device_info(ctx, NULL), E_ARG, "info", 0);
  info.struct_size = 0;
  EXPECT(ctx, adasplash_context_get_device_info(ctx, &info), E_ARG, "info->struct_size");
  info.struct_size = sizeof info;
  EXPECT(NULL, adasplash_context_get_device_info(NULL, &info), E_ARG, "ctx is NULL");
  adasplash_cache_stats stats;
  EXPECT_ALT(ctx, adasplash_context_get_cache_stats(ctx, NULL), E_ARG, "stats is NULL", 1);
  stats.struct_size = sizeof stats + 1;
  EXPECT(ctx, adasplash_context_get_cache_stats(ctx, &stats), E_ARG, "stats->struct_size");
  EXPECT(NULL, adasplash_context_get_cache_stats(NULL, &stats), E_ARG, "ctx is NULL");
  EXPECT(NULL, adasplash_context_get_cl(NULL, NULL, NULL, NULL), E_ARG, "ctx is NULL");
  EXPECT(NULL, adasplash_warmup(NULL), E_ARG, "ctx is NULL");
  size_t count = 0;
  EXPECT(NULL, adasplash_context_cache_usage(NULL, &count, NULL), E_ARG, "ctx is NULL");
  EXPECT(NULL, adasplash_context_cache_clear(NULL, &count), E_ARG, "ctx is NULL");
  EXPECT(NULL, adasplash_tuning_keys(NULL, 0, NULL), E_ARG, "count is NULL");
  EXPECT(NULL, adasplash_tuning_keys(NULL, 4, &count), E_ARG, "keys is NULL");
  EXPECT(NULL, adasplash_tuning_scan("attn_tile=32", NULL, NULL), E_ARG, "fn is NULL");

  float src[4] = {1, 2, 3, 4};
  unsigned short *dst = (unsigned short *)watched_host("convert dst", 8);
  EXPECT(NULL, adasplash_convert(NULL, ADASPLASH_F32, dst, ADASPLASH_F16, 4), E_ARG, "src is NULL");
  EXPECT(NULL, adasplash_convert(src, ADASPLASH_F32, NULL, ADASPLASH_F16, 4), E_ARG, "dst is NULL");
  EXPECT(NULL, adasplash_convert(src, (adasplash_dtype)3, dst, ADASPLASH_F16, 4), E_ARG,
         "src_dtype");
  EXPECT(NULL, adasplash_convert(src, ADASPLASH_F32, dst, (adasplash_dtype)-2, 4), E_ARG,
         "dst_dtype");
  EXPECT(NULL, adasplash_convert(src, ADASPLASH_F32, (char *)src + 2, ADASPLASH_F16, 4), E_ARG,
         "overlap");
}

/* ---- status strings, version, dtype sizes -----------------------------------------------------
 */

static void test_strings(void) {
  static const struct {
    adasplash_status status;
    const char *name;
  } all[] = {
      {ADASPLASH_SUCCESS, "SUCCESS"},
      {ADASPLASH_ERROR_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {ADASPLASH_ERROR_INVALID_SHAPE, "INVALID_SHAPE"},
      {ADASPLASH_ERROR_INVALID_STRIDE, "INVALID_STRIDE"},
      {ADASPLASH_ERROR_INVALID_ALPHA, "INVALID_ALPHA"},
      {ADASPLASH_ERROR_INVALID_BUFFER, "INVALID_BUFFER"},
      {ADASPLASH_ERROR_BUFFER_TOO_SMALL, "BUFFER_TOO_SMALL"},
      {ADASPLASH_ERROR_INVALID_TUNING, "INVALID_TUNING"},
      {ADASPLASH_ERROR_UNSUPPORTED, "UNSUPPORTED"},
      {ADASPLASH_ERROR_NOT_PREPARED, "NOT_PREPARED"},
      {ADASPLASH_ERROR_NO_DEVICE, "NO_DEVICE"},
      {ADASPLASH_ERROR_BUILD_FAILED, "BUILD_FAILED"},
      {ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY, "OUT_OF_DEVICE_MEMORY"},
      {ADASPLASH_ERROR_OUT_OF_HOST_MEMORY, "OUT_OF_HOST_MEMORY"},
      {ADASPLASH_ERROR_OPENCL, "OPENCL"},
      {ADASPLASH_ERROR_INTERNAL, "INTERNAL"},
      {ADASPLASH_ERROR_INVALID_SAVED, "INVALID_SAVED"},
      {ADASPLASH_ERROR_CACHE_IO, "CACHE_IO"},
  };
  const size_t n = sizeof all / sizeof all[0];
  for (size_t i = 0; i < n; ++i) {
    const char *s = adasplash_status_string(all[i].status);
    test_check(s != NULL && strstr(s, all[i].name) != NULL, "status_string(%d) names %s: %s",
               (int)all[i].status, all[i].name, s ? s : "(null)");
    for (size_t j = 0; j < i && s; ++j) {
      const char *t = adasplash_status_string(all[j].status);
      test_check(t != NULL && strcmp(s, t) != 0, "status strings %d and %d differ",
                 (int)all[i].status, (int)all[j].status);
    }
  }
  test_check(adasplash_status_string((adasplash_status)12345) != NULL,
             "status_string of an unknown value is not NULL");
  test_check(adasplash_status_string((adasplash_status)CL_INVALID_VALUE) != NULL,
             "status_string of an OpenCL code is not NULL");

  const char *v = adasplash_version();
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", ADASPLASH_VERSION_MAJOR, ADASPLASH_VERSION_MINOR,
           ADASPLASH_VERSION_PATCH);
  test_check(v != NULL && strcmp(v, ADASPLASH_VERSION_STRING) == 0,
             "adasplash_version() \"%s\" == ADASPLASH_VERSION_STRING \"%s\"", v ? v : "(null)",
             ADASPLASH_VERSION_STRING);
  test_check(strcmp(ADASPLASH_VERSION_STRING, want) == 0, "version macros agree (%s)", want);

  test_check(adasplash_dtype_size(ADASPLASH_F32) == 4 && adasplash_dtype_size(ADASPLASH_F16) == 2 &&
                 adasplash_dtype_size(ADASPLASH_BF16) == 2,
             "dtype sizes 4, 2, 2");
  test_check(adasplash_dtype_size((adasplash_dtype)3) == 0 &&
                 adasplash_dtype_size((adasplash_dtype)-1) == 0,
             "invalid dtypes have size 0");
}

int main(void) {
  test_strings(); /* no device needed */
  fixture f;
  setup(&f);
  test_rows(&f);
  test_attention(&f);
  test_paged(&f);
  test_not_prepared(&f);
  test_context_calls(&f);
  test_check(g_cases >= 40, "at least 40 invalid-argument cases ran (%d)", g_cases);
  printf("%d invalid-argument cases\n", g_cases);

  for (int i = 0; i < g_nwatched; ++i) {
    if (g_watched[i].buf) clReleaseMemObject(g_watched[i].buf);
    free(g_watched[i].host);
    free(g_watched[i].expect);
  }
  /* A user event must be completed before it and its context go away (NVIDIA's OpenCL waits for
   * it in clReleaseContext: the test hung there on an H100). */
  clSetUserEventStatus(f.event, CL_COMPLETE);
  clReleaseEvent(f.event);
  free(f.hx);
  free(f.halpha_bad);
  adasplash_context_release(f.fresh);
  adasplash_context_release(f.ctx);
  clReleaseCommandQueue(f.other_queue);
  clReleaseContext(f.other);
  return test_finish("api_errors");
}
