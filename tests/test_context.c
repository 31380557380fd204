/*
 * test_context.c - contexts: device selection by every form of ADASPLASH_DEVICE / options.device
 * (type, global index, platform:device, name substring, no match), borrowed OpenCL objects (the
 * caller's reference counts are restored on release and the objects keep working; a queue of
 * another context is refused), the struct_size rules of the device-info and cache-stats queries,
 * and thread safety (threads sharing one context, each with its own queue or the context's queue,
 * give results identical to a single-thread run).
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reference.h"
#include "test_util.h"

/* ---- the devices as OpenCL lists them (the library's numbering) -------------------------------
 */

#define MAX_ENTRIES 64

typedef struct device_entry {
  cl_platform_id platform;
  cl_device_id device;
  unsigned platform_index, device_index;
  cl_device_type type;
  char platform_name[256];
  char device_name[256];
  char label[520];
} device_entry;

static device_entry g_devices[MAX_ENTRIES];
static size_t g_ndevices;

static void list_devices(void) {
  cl_platform_id platforms[16];
  cl_uint np = 0;
  g_ndevices = 0;
  if (clGetPlatformIDs(16, platforms, &np) != CL_SUCCESS) return;
  if (np > 16) np = 16;
  for (cl_uint p = 0; p < np; ++p) {
    cl_device_id devices[64];
    cl_uint nd = 0;
    if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 64, devices, &nd) != CL_SUCCESS) continue;
    if (nd > 64) nd = 64;
    char pname[256] = "";
    clGetPlatformInfo(platforms[p], CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
    for (cl_uint d = 0; d < nd && g_ndevices < MAX_ENTRIES; ++d) {
      device_entry *e = &g_devices[g_ndevices++];
      memset(e, 0, sizeof *e);
      e->platform = platforms[p];
      e->device = devices[d];
      e->platform_index = p;
      e->device_index = d;
      clGetDeviceInfo(devices[d], CL_DEVICE_TYPE, sizeof e->type, &e->type, NULL);
      char dname[256] = "";
      clGetDeviceInfo(devices[d], CL_DEVICE_NAME, sizeof dname - 1, dname, NULL);
      memcpy(e->device_name, dname, sizeof dname);
      memcpy(e->platform_name, pname, sizeof pname);
      snprintf(e->label, sizeof e->label, "%s %s", pname, dname);
    }
  }
}

static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (const char *h = hay; *h; ++h) {
    size_t i = 0;
    while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) ++i;
    if (i == n) return 1;
  }
  return n == 0;
}

/* Index of the first device of a type, or -1. */
static long first_of_type(cl_device_type type) {
  for (size_t i = 0; i < g_ndevices; ++i)
    if (g_devices[i].type & type) return (long)i;
  return -1;
}

static long find_pair(unsigned p, unsigned d) {
  for (size_t i = 0; i < g_ndevices; ++i)
    if (g_devices[i].platform_index == p && g_devices[i].device_index == d) return (long)i;
  return -1;
}

static long first_matching(const char *needle) {
  for (size_t i = 0; i < g_ndevices; ++i)
    if (contains_nocase(g_devices[i].label, needle)) return (long)i;
  return -1;
}

/* ---- device selection -------------------------------------------------------------------------
 */

/* Creates a context with options.device = selection (NULL: options NULL, environment rules) and
 * checks the outcome: expected >= 0 is the index of the device it must pick, -1 means it must fail
 * with ADASPLASH_ERROR_NO_DEVICE. On success reason_part must occur in selection_reason; on
 * failure it must occur in the error message (NULL: not checked). */
static void check_selection(const char *label, const char *selection, long expected,
                            const char *reason_part) {
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.device = selection;
  o.cache_dir = "off";
  adasplash_context *sentinel = (adasplash_context *)&o; /* any non-NULL address */
  adasplash_context *ctx = sentinel;
  adasplash_status st = adasplash_context_create(selection ? &o : NULL, &ctx);
  if (expected < 0) {
    char msg[4096] = "";
    adasplash_status last = adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
    test_check(st == ADASPLASH_ERROR_NO_DEVICE, "%s: status %s (want ADASPLASH_ERROR_NO_DEVICE)",
               label, adasplash_status_string(st));
    test_check(last == st, "%s: last error status matches the returned one", label);
    test_check(ctx == sentinel, "%s: *ctx untouched on failure", label);
    test_check(reason_part == NULL || strstr(msg, reason_part) != NULL,
               "%s: message names the selection \"%s\": %s", label, reason_part ? reason_part : "",
               msg);
    /* The message lists the devices so the user can pick one. */
    test_check(g_ndevices == 0 || strstr(msg, g_devices[0].device_name) != NULL,
               "%s: message lists the devices (\"%s\"): %s", label,
               g_ndevices ? g_devices[0].device_name : "", msg);
    if (st == ADASPLASH_SUCCESS) adasplash_context_release(ctx);
    return;
  }
  if (!test_check(st == ADASPLASH_SUCCESS, "%s: context created (%s)", label,
                  adasplash_status_string(st))) {
    char msg[4096];
    adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
    printf("  message: %s\n", msg);
    return;
  }
  cl_device_id dev = NULL;
  adasplash_context_get_cl(ctx, NULL, &dev, NULL);
  test_check(dev == g_devices[expected].device, "%s: picked device %ld (%s)", label, expected,
             g_devices[expected].label);
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  test_check(adasplash_context_get_device_info(ctx, &info) == ADASPLASH_SUCCESS, "%s: device info",
             label);
  test_check(strcmp(info.device_name, g_devices[expected].device_name) == 0,
             "%s: device_name \"%s\"", label, info.device_name);
  test_check(strstr(info.selection_reason, reason_part) != NULL,
             "%s: selection_reason \"%s\" contains \"%s\"", label, info.selection_reason,
             reason_part);
  adasplash_context_release(ctx);
}

static void test_selection(void) {
  const char *env = getenv("ADASPLASH_DEVICE");
  char *saved_env = env ? strdup(env) : NULL;
  unsetenv("ADASPLASH_DEVICE");

  long gpu = first_of_type(CL_DEVICE_TYPE_GPU);
  long cpu = first_of_type(CL_DEVICE_TYPE_CPU);
  /* Default rule: first GPU, else the first device. */
  check_selection("default", NULL, gpu >= 0 ? gpu : 0, "default");
  check_selection("options.device=cpu", "cpu", cpu,
                  cpu >= 0 ? "options.device=cpu" : "options.device=\"cpu\"");
  check_selection("options.device=CPU (any case)", "CPU", cpu,
                  cpu >= 0 ? "options.device=CPU" : "options.device=\"CPU\"");
  /* No GPU (PoCL machines): ADASPLASH_ERROR_NO_DEVICE with the list of devices. */
  check_selection("options.device=gpu", "gpu", gpu,
                  gpu >= 0 ? "options.device=gpu" : "options.device=\"gpu\"");
  check_selection("options.device=0", "0", 0, "options.device=0");
  check_selection("options.device=0:0", "0:0", find_pair(0, 0), "options.device=0:0");
  char last_index[32];
  snprintf(last_index, sizeof last_index, "%zu", g_ndevices - 1);
  check_selection("options.device=last index", last_index, (long)g_ndevices - 1, "options.device");
  char pair[64];
  snprintf(pair, sizeof pair, "%u:%u", g_devices[g_ndevices - 1].platform_index,
           g_devices[g_ndevices - 1].device_index);
  check_selection("options.device=P:D of the last device", pair, (long)g_ndevices - 1,
                  "options.device");
  check_selection("options.device=index out of range", "999", -1, "999");
  check_selection("options.device=P:D out of range", "0:999", -1, "0:999");

  /* Name substrings, case-insensitive: part of the device name in another case. */
  char sub[64];
  const char *dname = g_devices[0].device_name;
  if (contains_nocase(dname, "pthread")) {
    snprintf(sub, sizeof sub, "PThread");
  } else {
    size_t len = strlen(dname);
    size_t start = len > 4 ? 1 : 0, n = len - start > 10 ? 10 : len - start;
    for (size_t i = 0; i < n; ++i) sub[i] = (char)toupper((unsigned char)dname[start + i]);
    sub[n] = '\0';
  }
  check_selection("options.device=device-name substring", sub, first_matching(sub), sub);
  char psub[64];
  snprintf(psub, sizeof psub, "%.40s", g_devices[0].platform_name);
  for (char *c = psub; *c; ++c) *c = (char)toupper((unsigned char)*c);
  check_selection("options.device=platform-name substring", psub, first_matching(psub), psub);
  check_selection("options.device=no-such-device-xyz", "no-such-device-xyz", -1,
                  "options.device=\"no-such-device-xyz\"");

  /* The environment variable, and options.device taking precedence over it. */
  setenv("ADASPLASH_DEVICE", "0:0", 1);
  check_selection("ADASPLASH_DEVICE=0:0", NULL, find_pair(0, 0), "ADASPLASH_DEVICE=0:0");
  setenv("ADASPLASH_DEVICE", "cpu", 1);
  check_selection("ADASPLASH_DEVICE=cpu", NULL, cpu,
                  cpu >= 0 ? "ADASPLASH_DEVICE=cpu" : "ADASPLASH_DEVICE=\"cpu\"");
  setenv("ADASPLASH_DEVICE", sub, 1);
  check_selection("ADASPLASH_DEVICE=<substring>", NULL, first_matching(sub), "ADASPLASH_DEVICE=");
  setenv("ADASPLASH_DEVICE", "no-such-device-xyz", 1);
  check_selection("ADASPLASH_DEVICE=no-such-device-xyz", NULL, -1,
                  "ADASPLASH_DEVICE=\"no-such-device-xyz\"");
  check_selection("options.device=0 overrides ADASPLASH_DEVICE", "0", 0, "options.device=0");
  setenv("ADASPLASH_DEVICE", "", 1);
  check_selection("ADASPLASH_DEVICE empty = unset", NULL, gpu >= 0 ? gpu : 0, "default");

  if (saved_env) {
    setenv("ADASPLASH_DEVICE", saved_env, 1);
    free(saved_env);
  } else {
    unsetenv("ADASPLASH_DEVICE");
  }
}

/* ---- small helpers for the OpenCL-side tests --------------------------------------------------
 */

static cl_uint context_refs(cl_context c) {
  cl_uint n = 0;
  clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof n, &n, NULL);
  return n;
}

static cl_uint queue_refs(cl_command_queue q) {
  cl_uint n = 0;
  clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof n, &n, NULL);
  return n;
}

/* The runtime may drop the references its finished commands hold on the queue (and the queue on
 * the context) a little after they complete (PoCL releases them from its own threads): wait up to
 * two seconds for the counts to come back to want. Returns 1 if both did. */
static int refs_settle(cl_context c, cl_uint want_c, cl_command_queue q, cl_uint want_q) {
  clFinish(q);
  for (int i = 0; i < 200; ++i) {
    if (context_refs(c) == want_c && queue_refs(q) == want_q) return 1;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return context_refs(c) == want_c && queue_refs(q) == want_q;
}

/* A small row-entmax problem and its reference. */
#define SMALL_ROWS 6
#define SMALL_COLS 37

static void small_problem(float *x, double *ref) {
  ref_rng rng;
  ref_rng_seed(&rng, 1234);
  double z[SMALL_COLS];
  for (size_t r = 0; r < SMALL_ROWS; ++r) {
    for (size_t j = 0; j < SMALL_COLS; ++j) {
      x[r * SMALL_COLS + j] = (float)(2.0 * ref_rng_normal(&rng));
      z[j] = x[r * SMALL_COLS + j];
    }
    ref_entmax_row(z, NULL, SMALL_COLS, 1.5, ref + r * SMALL_COLS);
  }
}

static double max_error(const float *y, const double *ref, size_t n) {
  double worst = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double e = fabs((double)y[i] - ref[i]);
    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
  }
  return worst;
}

/* ---- borrowed OpenCL objects ------------------------------------------------------------------
 */

static void test_borrowed(cl_device_id device) {
  cl_int err;
  cl_context clctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
  if (!test_check(err == CL_SUCCESS, "clCreateContext for borrowing (%d)", (int)err)) return;
  cl_command_queue queue = clCreateCommandQueue(clctx, device, 0, &err);
  if (!test_check(err == CL_SUCCESS, "clCreateCommandQueue for borrowing (%d)", (int)err)) return;
  const cl_uint ctx_before = context_refs(clctx), queue_before = queue_refs(queue);

  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = "off";
  adasplash_context *ctx = NULL;
  adasplash_status st = adasplash_context_create_borrowed(clctx, device, queue, &o, &ctx);
  test_require(NULL, st, "adasplash_context_create_borrowed");
  test_check(context_refs(clctx) > ctx_before, "borrowing retains the cl_context (%u -> %u)",
             ctx_before, context_refs(clctx));
  test_check(queue_refs(queue) > queue_before, "borrowing retains the queue (%u -> %u)",
             queue_before, queue_refs(queue));
  cl_context got_ctx = NULL;
  cl_device_id got_dev = NULL;
  cl_command_queue got_queue = NULL;
  adasplash_context_get_cl(ctx, &got_ctx, &got_dev, &got_queue);
  test_check(got_ctx == clctx && got_dev == device && got_queue == queue,
             "adasplash_context_get_cl returns the borrowed objects");
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  adasplash_context_get_device_info(ctx, &info);
  test_check(strstr(info.selection_reason, "borrowed") != NULL,
             "borrowed context says so in selection_reason (\"%s\")", info.selection_reason);

  /* Work on the borrowed objects: the host variant (context queue) and a device-buffer call on the
   * caller's queue with an event. */
  float x[SMALL_ROWS * SMALL_COLS], y[SMALL_ROWS * SMALL_COLS];
  double ref[SMALL_ROWS * SMALL_COLS];
  small_problem(x, ref);
  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.rows = SMALL_ROWS;
  d.cols = SMALL_COLS;
  d.alpha = 1.5f;
  st = adasplash_entmax_forward_host(ctx, &d, x, y, NULL, NULL, NULL);
  test_require(ctx, st, "adasplash_entmax_forward_host on a borrowed context");
  double e = max_error(y, ref, SMALL_ROWS * SMALL_COLS);
  test_check(e < 1e-5, "borrowed context: forward matches the reference (max err %.3g)", e);

  cl_mem bx = clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof x, x, &err);
  cl_mem by = clCreateBuffer(clctx, CL_MEM_READ_WRITE, sizeof y, NULL, &err);
  cl_event ev = NULL;
  st = adasplash_entmax_forward(ctx, &d, queue, bx, by, NULL, 0, NULL, &ev);
  test_require(ctx, st, "adasplash_entmax_forward on the borrowed queue");
  test_check(ev != NULL, "an event is returned");
  memset(y, 0, sizeof y);
  err = clEnqueueReadBuffer(queue, by, CL_TRUE, 0, sizeof y, y, 1, &ev, NULL);
  test_check(err == CL_SUCCESS, "read back on the caller's queue (%d)", (int)err);
  if (ev) clReleaseEvent(ev);
  e = max_error(y, ref, SMALL_ROWS * SMALL_COLS);
  test_check(e < 1e-5, "borrowed queue: forward matches the reference (max err %.3g)", e);

  adasplash_context_release(ctx);
  clReleaseMemObject(bx);
  clReleaseMemObject(by);
  refs_settle(clctx, ctx_before, queue, queue_before);
  test_check(context_refs(clctx) == ctx_before,
             "after release the cl_context has its reference count again (%u, was %u)",
             context_refs(clctx), ctx_before);
  test_check(queue_refs(queue) == queue_before,
             "after release the queue has its reference count again (%u, was %u)",
             queue_refs(queue), queue_before);

  /* The caller's objects still work. */
  float back[4] = {0}, data[4] = {1, 2, 3, 4};
  cl_mem b =
      clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof data, data, &err);
  test_check(err == CL_SUCCESS, "caller's context still creates buffers (%d)", (int)err);
  if (err == CL_SUCCESS) {
    err = clEnqueueReadBuffer(queue, b, CL_TRUE, 0, sizeof back, back, 0, NULL, NULL);
    test_check(err == CL_SUCCESS && memcmp(back, data, sizeof data) == 0,
               "caller's queue still runs commands (%d)", (int)err);
    test_check(clFinish(queue) == CL_SUCCESS, "clFinish on the caller's queue");
    clReleaseMemObject(b);
  }

  /* Borrowing twice and releasing in any order also restores the counts. */
  adasplash_context *c1 = NULL, *c2 = NULL;
  test_require(NULL, adasplash_context_create_borrowed(clctx, device, queue, &o, &c1), "borrow 1");
  test_require(NULL, adasplash_context_create_borrowed(clctx, device, queue, &o, &c2), "borrow 2");
  adasplash_context_release(c1);
  adasplash_context_release(c2);
  refs_settle(clctx, ctx_before, queue, queue_before);
  test_check(context_refs(clctx) == ctx_before && queue_refs(queue) == queue_before,
             "two borrowing contexts released: counts restored (%u/%u, %u/%u)", context_refs(clctx),
             ctx_before, queue_refs(queue), queue_before);

  /* A queue of another cl_context is refused, and nothing is retained. */
  cl_context other = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
  cl_command_queue other_queue = clCreateCommandQueue(other, device, 0, &err);
  const cl_uint other_before = queue_refs(other_queue);
  adasplash_context *sentinel = (adasplash_context *)&o;
  ctx = sentinel;
  st = adasplash_context_create_borrowed(clctx, device, other_queue, &o, &ctx);
  char msg[4096] = "";
  adasplash_get_last_error(NULL, msg, sizeof msg, NULL);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT,
             "a queue of another cl_context is refused (%s)", adasplash_status_string(st));
  test_check(strstr(msg, "queue") != NULL, "the message names the queue: %s", msg);
  test_check(ctx == sentinel, "*ctx untouched when the borrow is refused");
  test_check(context_refs(clctx) == ctx_before && queue_refs(other_queue) == other_before,
             "a refused borrow retains nothing");
  if (st == ADASPLASH_SUCCESS) adasplash_context_release(ctx);
  /* NULL objects are refused too. */
  st = adasplash_context_create_borrowed(NULL, device, queue, &o, &ctx);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "NULL cl_context refused");
  st = adasplash_context_create_borrowed(clctx, NULL, queue, &o, &ctx);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "NULL device refused");
  st = adasplash_context_create_borrowed(clctx, device, NULL, &o, &ctx);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "NULL queue refused");
  test_check(ctx == sentinel, "*ctx untouched by refused borrows");

  clReleaseCommandQueue(other_queue);
  clReleaseContext(other);
  clReleaseCommandQueue(queue);
  clReleaseContext(clctx);
}

/* ---- struct_size rules of the queries ---------------------------------------------------------
 */

static void test_struct_sizes(adasplash_context *ctx) {
  adasplash_device_info info;
  memset(&info, 0xAB, sizeof info);
  info.struct_size = sizeof info;
  test_check(adasplash_context_get_device_info(ctx, &info) == ADASPLASH_SUCCESS,
             "device info with the full struct_size");
  test_check(info.struct_size == sizeof info, "device info keeps struct_size");
  test_check(info.device_name[0] != '\0' && info.platform_name[0] != '\0' &&
                 info.opencl_c_version[0] != '\0',
             "device info names are filled (\"%s\" / \"%s\")", info.platform_name,
             info.device_name);
  test_check(info.compute_units > 0 && info.global_mem_size > 0 && info.local_mem_size > 0 &&
                 info.max_work_group_size > 0,
             "device info limits are filled");
  test_check(info.selection_reason[0] != '\0', "selection_reason is filled");
  test_check(
      info.kernel_path == ADASPLASH_PATH_PORTABLE || info.kernel_path == ADASPLASH_PATH_NVIDIA_MMA,
      "kernel_path is a known path");
  cl_device_id dev = NULL;
  adasplash_context_get_cl(ctx, NULL, &dev, NULL);
  char name[256] = "";
  clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
  test_check(strncmp(name, info.device_name, sizeof info.device_name - 1) == 0,
             "device_name matches CL_DEVICE_NAME");

  /* An older, smaller struct: only its prefix is written. */
  const size_t prefix = offsetof(adasplash_device_info, device_name);
  memset(&info, 0xAB, sizeof info);
  info.struct_size = prefix;
  test_check(adasplash_context_get_device_info(ctx, &info) == ADASPLASH_SUCCESS,
             "device info with a smaller (older) struct_size");
  int untouched = 1;
  for (size_t i = prefix; i < sizeof info; ++i)
    if (((unsigned char *)&info)[i] != 0xAB) untouched = 0;
  test_check(untouched && info.struct_size == prefix && info.platform_name[0] != (char)0xAB,
             "only the first struct_size bytes are written");
  adasplash_status st;
  info.struct_size = 0;
  st = adasplash_context_get_device_info(ctx, &info);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "device info struct_size=0 refused");
  info.struct_size = sizeof info + 8;
  st = adasplash_context_get_device_info(ctx, &info);
  test_check(st == ADASPLASH_ERROR_INVALID_ARGUMENT, "device info struct_size too large refused");
  test_check(adasplash_context_get_device_info(ctx, NULL) == ADASPLASH_ERROR_INVALID_ARGUMENT,
             "device info NULL refused");
  info.struct_size = sizeof info;
  test_check(adasplash_context_get_device_info(NULL, &info) == ADASPLASH_ERROR_INVALID_ARGUMENT,
             "device info of a NULL context refused");

  adasplash_cache_stats stats;
  memset(&stats, 0xAB, sizeof stats);
  stats.struct_size = sizeof stats;
  test_check(adasplash_context_get_cache_stats(ctx, &stats) == ADASPLASH_SUCCESS,
             "cache stats with the full struct_size");
  test_check(
      stats.struct_size == sizeof stats && memchr(stats.cache_dir, '\0', sizeof stats.cache_dir),
      "cache stats filled, cache_dir terminated");
  const size_t sprefix = offsetof(adasplash_cache_stats, builds);
  memset(&stats, 0xAB, sizeof stats);
  stats.struct_size = sprefix;
  test_check(adasplash_context_get_cache_stats(ctx, &stats) == ADASPLASH_SUCCESS,
             "cache stats with a smaller struct_size");
  untouched = 1;
  for (size_t i = sprefix; i < sizeof stats; ++i)
    if (((unsigned char *)&stats)[i] != 0xAB) untouched = 0;
  test_check(untouched && stats.struct_size == sprefix, "cache stats: only the prefix is written");
  stats.struct_size = 1;
  test_check(adasplash_context_get_cache_stats(ctx, &stats) == ADASPLASH_ERROR_INVALID_ARGUMENT,
             "cache stats struct_size=1 refused");
  stats.struct_size = sizeof stats + 1;
  test_check(adasplash_context_get_cache_stats(ctx, &stats) == ADASPLASH_ERROR_INVALID_ARGUMENT,
             "cache stats struct_size too large refused");
  test_check(adasplash_context_get_cache_stats(ctx, NULL) == ADASPLASH_ERROR_INVALID_ARGUMENT,
             "cache stats NULL refused");

  /* Context options: a bad struct_size is refused, a smaller (older) one reads as defaults. */
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  test_check(o.struct_size == sizeof o && o.device == NULL && o.cache_dir == NULL,
             "adasplash_context_options_init fills defaults");
  adasplash_context *c = NULL;
  o.struct_size = 2;
  test_check(adasplash_context_create(&o, &c) == ADASPLASH_ERROR_INVALID_ARGUMENT && c == NULL,
             "options struct_size=2 refused");
  o.struct_size = sizeof o + 16;
  test_check(adasplash_context_create(&o, &c) == ADASPLASH_ERROR_INVALID_ARGUMENT && c == NULL,
             "options struct_size too large refused");
  test_check(adasplash_context_release(NULL) == ADASPLASH_SUCCESS, "releasing NULL is fine");
}

/* ---- threads ----------------------------------------------------------------------------------
 */

#define THREADS 4
#define T_ROWS 40
#define T_COLS 301
#define T_ITERS 3

typedef struct thread_job {
  adasplash_context *ctx;
  const adasplash_entmax_desc *desc;
  cl_mem x;
  int own_queue;
  int prepare; /* call adasplash_entmax_prepare from the thread (concurrent compile) */
  pthread_barrier_t *barrier;
  float *y; /* [T_ITERS][T_ROWS*T_COLS] */
  adasplash_status status;
  char error[512];
} thread_job;

static void *thread_main(void *arg) {
  thread_job *job = (thread_job *)arg;
  cl_context clctx;
  cl_device_id dev;
  cl_command_queue ctx_queue;
  adasplash_context_get_cl(job->ctx, &clctx, &dev, &ctx_queue);
  cl_int err = CL_SUCCESS;
  cl_command_queue queue = job->own_queue ? clCreateCommandQueue(clctx, dev, 0, &err) : ctx_queue;
  const size_t bytes = (size_t)T_ROWS * T_COLS * sizeof(float);
  cl_mem y = clCreateBuffer(clctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
  pthread_barrier_wait(job->barrier);
  adasplash_status st = ADASPLASH_SUCCESS;
  if (job->prepare) st = adasplash_entmax_prepare(job->ctx, job->desc);
  for (int it = 0; it < T_ITERS && st == ADASPLASH_SUCCESS; ++it) {
    cl_event ev = NULL;
    st = adasplash_entmax_forward(job->ctx, job->desc, job->own_queue ? queue : NULL, job->x, y,
                                  NULL, 0, NULL, &ev);
    if (st != ADASPLASH_SUCCESS) break;
    err = clEnqueueReadBuffer(queue, y, CL_TRUE, 0, bytes, job->y + (size_t)it * T_ROWS * T_COLS, 1,
                              &ev, NULL);
    clReleaseEvent(ev);
    if (err != CL_SUCCESS) {
      snprintf(job->error, sizeof job->error, "clEnqueueReadBuffer: %d", (int)err);
      st = ADASPLASH_ERROR_OPENCL;
    }
  }
  if (st != ADASPLASH_SUCCESS && !job->error[0])
    adasplash_get_last_error(NULL, job->error, sizeof job->error, NULL);
  job->status = st;
  clReleaseMemObject(y);
  if (job->own_queue) clReleaseCommandQueue(queue);
  return NULL;
}

static void run_threads(const char *label, adasplash_context *ctx, const adasplash_entmax_desc *d,
                        const float *x, const float *expected, int own_queue, int prepare) {
  cl_context clctx;
  adasplash_context_get_cl(ctx, &clctx, NULL, NULL);
  cl_int err;
  const size_t n = (size_t)T_ROWS * T_COLS;
  cl_mem bx = clCreateBuffer(clctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * sizeof *x,
                             (void *)x, &err);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, THREADS);
  pthread_t tid[THREADS];
  thread_job jobs[THREADS];
  for (int t = 0; t < THREADS; ++t) {
    memset(&jobs[t], 0, sizeof jobs[t]);
    jobs[t].ctx = ctx;
    jobs[t].desc = d;
    jobs[t].x = bx;
    jobs[t].own_queue = own_queue;
    jobs[t].prepare = prepare;
    jobs[t].barrier = &barrier;
    jobs[t].y = (float *)calloc(n * T_ITERS, sizeof(float));
    pthread_create(&tid[t], NULL, thread_main, &jobs[t]);
  }
  for (int t = 0; t < THREADS; ++t) pthread_join(tid[t], NULL);
  pthread_barrier_destroy(&barrier);
  int same = 1;
  for (int t = 0; t < THREADS; ++t) {
    test_check(jobs[t].status == ADASPLASH_SUCCESS, "%s: thread %d succeeded (%s %s)", label, t,
               adasplash_status_string(jobs[t].status), jobs[t].error);
    for (int it = 0; it < T_ITERS; ++it)
      if (memcmp(jobs[t].y + (size_t)it * n, expected, n * sizeof(float)) != 0) same = 0;
    free(jobs[t].y);
  }
  test_check(same, "%s: every thread's results are identical to the single-thread run", label);
  clReleaseMemObject(bx);
}

static void test_threads(adasplash_context *ctx) {
  const size_t n = (size_t)T_ROWS * T_COLS;
  float *x = (float *)malloc(n * sizeof *x), *y = (float *)malloc(n * sizeof *y);
  double *z = (double *)malloc(T_COLS * sizeof *z), *p = (double *)malloc(T_COLS * sizeof *p);
  ref_rng rng;
  ref_rng_seed(&rng, 99);
  for (size_t i = 0; i < n; ++i) x[i] = (float)(1.5 * ref_rng_normal(&rng));
  for (size_t r = 0; r < T_ROWS; r += 5) x[r * T_COLS + r] = -INFINITY; /* a few masked entries */
  adasplash_entmax_desc d;
  adasplash_entmax_desc_init(&d);
  d.rows = T_ROWS;
  d.cols = T_COLS;
  d.alpha = 1.25f;
  /* The single-thread run (and a sanity check against the reference). */
  test_require(ctx, adasplash_entmax_forward_host(ctx, &d, x, y, NULL, NULL, NULL),
               "single-thread adasplash_entmax_forward_host");
  double worst = 0.0;
  for (size_t r = 0; r < T_ROWS; ++r) {
    for (size_t j = 0; j < T_COLS; ++j) z[j] = x[r * T_COLS + j];
    ref_entmax_row(z, NULL, T_COLS, 1.25, p);
    for (size_t j = 0; j < T_COLS; ++j) worst = fmax(worst, fabs(p[j] - y[r * T_COLS + j]));
  }
  test_check(worst < 2e-5, "single-thread run matches the reference (max err %.3g)", worst);

  run_threads("4 threads, own queues", ctx, &d, x, y, 1, 0);
  run_threads("4 threads, the context's queue", ctx, &d, x, y, 0, 0);
  /* A fresh context: the threads prepare concurrently (one program wins, the others discard). */
  adasplash_context_options o;
  adasplash_context_options_init(&o);
  o.cache_dir = "off";
  adasplash_context *fresh = test_context(&o);
  run_threads("4 threads preparing concurrently, own queues", fresh, &d, x, y, 1, 1);
  adasplash_cache_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  adasplash_context_get_cache_stats(fresh, &s);
  test_check(s.builds >= 1 && s.builds <= THREADS, "concurrent prepare built 1..%d programs (%lu)",
             THREADS, s.builds);
  adasplash_context_release(fresh);
  free(x);
  free(y);
  free(z);
  free(p);
}

int main(void) {
  adasplash_context *ctx = test_context(NULL);
  test_print_device(ctx);
  list_devices();
  if (!test_check(g_ndevices > 0, "OpenCL lists at least one device"))
    return test_finish("context");
  cl_device_id device = NULL;
  adasplash_context_get_cl(ctx, NULL, &device, NULL);

  test_selection();
  test_borrowed(device);
  test_struct_sizes(ctx);
  test_threads(ctx);

  adasplash_context_release(ctx);
  return test_finish("context");
}
