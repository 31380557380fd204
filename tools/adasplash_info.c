/*
 * adasplash_info.c - the adasplash-info tool: lists every OpenCL platform and device with its
 * capabilities (queried from OpenCL directly), shows the device, kernel path and program cache the
 * library picks ($ADASPLASH_DEVICE / $ADASPLASH_CACHE_DIR rules), and can clear the disk cache or
 * warm it up (a cold and a warm adasplash_warmup with their timings and cache counters).
 *
 * Exit codes: 0 success, 1 failure (no device, library or OpenCL error), 2 bad command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adasplash.h"
#include "report.h"
#include "timing.h"

#define EXIT_USAGE 2

static const char *info_usage =
    "usage: adasplash-info [--list-devices] [--clear-cache] [--warmup] [--help] [--version]\n"
    "\n"
    "Without options: list every OpenCL platform and device, then show the device the library\n"
    "picks (ADASPLASH_DEVICE rules), its kernel path and the program cache (ADASPLASH_CACHE_DIR).\n"
    "\n"
    "  --list-devices  only list the OpenCL platforms and devices\n"
    "  --clear-cache   remove the entries of the program cache directory\n"
    "  --warmup        compile every kernel variant on a fresh context (cold), then again on a\n"
    "                  second context that loads them from the disk cache (warm); print both "
    "times\n"
    "  --help          this text\n"
    "  --version       library and tool versions\n"
    "\n"
    "Environment: ADASPLASH_DEVICE (gpu, cpu, N, P:D or a name substring), ADASPLASH_CACHE_DIR\n"
    "(a directory, or \"off\"), ADASPLASH_TUNE, ADASPLASH_PATH, ADASPLASH_KERNEL_DIR.\n";

/* ---- small helpers ----------------------------------------------------------------------------
 */

#define INFO_PROG "adasplash-info"

/* Reports a failed library call with the recorded message; returns 1 (the exit code). */
static int info_library_error(const adasplash_context *ctx, adasplash_status st, const char *what) {
  char msg[4096];
  dt_lib_message(ctx, st, NULL, msg, sizeof msg);
  dt_error(INFO_PROG, "%s failed: %s", what, msg);
  return 1;
}

static void info_bytes(unsigned long long bytes, char *out, size_t size) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0)
    snprintf(out, size, "%llu B", bytes);
  else
    snprintf(out, size, "%.1f %s (%llu bytes)", v, units[u], bytes);
}

/* A string of a platform (p) or, when p is NULL, of a device (d), of any length; malloc'd, NULL
 * only when out of host memory ("" when the query fails). */
static char *info_string(cl_platform_id p, cl_device_id d, cl_uint what) {
  size_t len = 0;
  cl_int err =
      p ? clGetPlatformInfo(p, what, 0, NULL, &len) : clGetDeviceInfo(d, what, 0, NULL, &len);
  if (err != CL_SUCCESS) len = 0;
  char *s = (char *)calloc(len + 1, 1);
  if (!s || !len) return s;
  err = p ? clGetPlatformInfo(p, what, len, s, NULL) : clGetDeviceInfo(d, what, len, s, NULL);
  if (err != CL_SUCCESS) s[0] = '\0';
  s[len] = '\0';
  return s;
}

/* Whole-word search in a space-separated extension list. */
static int info_has_word(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *s = list; s && (s = strstr(s, word)) != NULL; s += n) {
    int start_ok = s == list || s[-1] == ' ';
    int end_ok = s[n] == '\0' || s[n] == ' ';
    if (start_ok && end_ok) return 1;
  }
  return 0;
}

static int info_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void info_type_string(cl_device_type t, char *out, size_t size) {
  out[0] = '\0';
  const struct {
    cl_device_type bit;
    const char *name;
  } names[] = {{CL_DEVICE_TYPE_CPU, "CPU"},
               {CL_DEVICE_TYPE_GPU, "GPU"},
               {CL_DEVICE_TYPE_ACCELERATOR, "accelerator"},
               {CL_DEVICE_TYPE_DEFAULT, "default"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (t & names[i].bit) {
      if (out[0]) strncat(out, ", ", size - strlen(out) - 1);
      strncat(out, names[i].name, size - strlen(out) - 1);
    }
  if (!out[0]) snprintf(out, size, "other (%#llx)", (unsigned long long)t);
}

/* ---- the listing ------------------------------------------------------------------------------
 */

static void info_print_device(cl_device_id d, unsigned global_index, unsigned pi, unsigned di) {
  char *name = info_string(NULL, d, CL_DEVICE_NAME);
  char *vendor = info_string(NULL, d, CL_DEVICE_VENDOR);
  char *version = info_string(NULL, d, CL_DEVICE_VERSION);
  char *driver = info_string(NULL, d, CL_DRIVER_VERSION);
  char *clc = info_string(NULL, d, CL_DEVICE_OPENCL_C_VERSION);
  char *ext = info_string(NULL, d, CL_DEVICE_EXTENSIONS);
  cl_device_type type = 0;
  cl_uint cus = 0, clock = 0;
  cl_ulong global = 0, alloc = 0, local = 0;
  cl_device_local_mem_type local_type = CL_LOCAL;
  size_t wg = 0;
  clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof clock, &clock, NULL);
  clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
  clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
  clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_TYPE, sizeof local_type, &local_type, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
  char type_s[64], global_s[64], alloc_s[64], local_s[64];
  info_type_string(type, type_s, sizeof type_s);
  info_bytes(global, global_s, sizeof global_s);
  info_bytes(alloc, alloc_s, sizeof alloc_s);
  info_bytes(local, local_s, sizeof local_s);
  const char *empty = "";
  printf("  Device %u (ADASPLASH_DEVICE=%u or %u:%u): %s\n", global_index, global_index, pi, di,
         name ? name : empty);
  printf("    vendor:              %s\n", vendor ? vendor : empty);
  printf("    type:                %s\n", type_s);
  printf("    device version:      %s\n", version ? version : empty);
  printf("    driver version:      %s\n", driver ? driver : empty);
  printf("    OpenCL C version:    %s\n", clc ? clc : empty);
  printf("    compute units:       %u (max clock %u MHz)\n", (unsigned)cus, (unsigned)clock);
  printf("    global memory:       %s\n", global_s);
  printf("    max allocation:      %s\n", alloc_s);
  printf("    local memory:        %s%s\n", local_s,
         local_type == CL_GLOBAL ? " (emulated in global memory)" : "");
  printf("    max work-group size: %zu\n", wg);
  printf("    fp16 (cl_khr_fp16):  %s\n", info_has_word(ext, "cl_khr_fp16") ? "yes" : "no");
  printf("    fp64 (cl_khr_fp64):  %s\n", info_has_word(ext, "cl_khr_fp64") ? "yes" : "no");
  free(name);
  free(vendor);
  free(version);
  free(driver);
  free(clc);
  free(ext);
}

/* Lists all platforms and devices. Returns the number of devices found. */
static unsigned info_list_devices(void) {
  cl_uint np = 0;
  cl_int err = clGetPlatformIDs(0, NULL, &np);
  if (err != CL_SUCCESS || np == 0) {
    printf("OpenCL platforms: none (clGetPlatformIDs returned %d, %u platforms)\n", (int)err,
           (unsigned)np);
    return 0;
  }
  cl_platform_id *platforms = (cl_platform_id *)calloc(np, sizeof *platforms);
  if (!platforms || clGetPlatformIDs(np, platforms, NULL) != CL_SUCCESS) {
    free(platforms);
    printf("OpenCL platforms: could not be listed\n");
    return 0;
  }
  printf("OpenCL platforms: %u\n", (unsigned)np);
  unsigned global_index = 0;
  for (cl_uint p = 0; p < np; ++p) {
    char *pname = info_string(platforms[p], NULL, CL_PLATFORM_NAME);
    char *pvendor = info_string(platforms[p], NULL, CL_PLATFORM_VENDOR);
    char *pversion = info_string(platforms[p], NULL, CL_PLATFORM_VERSION);
    printf("\nPlatform %u: %s\n", (unsigned)p, pname ? pname : "");
    printf("  vendor:  %s\n", pvendor ? pvendor : "");
    printf("  version: %s\n", pversion ? pversion : "");
    free(pname);
    free(pvendor);
    free(pversion);
    cl_uint nd = 0;
    err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
    if (err != CL_SUCCESS || nd == 0) {
      printf("  (no devices: clGetDeviceIDs returned %d)\n", (int)err);
      continue;
    }
    cl_device_id *devices = (cl_device_id *)calloc(nd, sizeof *devices);
    if (!devices ||
        clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, nd, devices, NULL) != CL_SUCCESS) {
      free(devices);
      printf("  (devices could not be listed)\n");
      continue;
    }
    for (cl_uint d = 0; d < nd; ++d)
      info_print_device(devices[d], global_index++, (unsigned)p, (unsigned)d);
    free(devices);
  }
  free(platforms);
  return global_index;
}

/* ---- the library's view -----------------------------------------------------------------------
 */

static const char *info_path_name(adasplash_kernel_path path) {
  switch (path) {
    case ADASPLASH_PATH_PORTABLE:
      return "portable (OpenCL C 1.2)";
    case ADASPLASH_PATH_NVIDIA_MMA:
      return "nvidia (inline-PTX tensor cores)";
  }
  return "unknown";
}

/* The context's program cache directory and what it holds. */
static void info_print_cache(const adasplash_context *ctx, const adasplash_cache_stats *stats) {
  const char *dir = stats->cache_dir;
  if (!dir[0]) {
    printf("  cache directory: (%s)\n", stats->cache_note[0] ? stats->cache_note : "off");
    return;
  }
  size_t entries = 0;
  unsigned long long bytes = 0;
  adasplash_status st = adasplash_context_cache_usage(ctx, &entries, &bytes);
  char bytes_s[64];
  info_bytes(bytes, bytes_s, sizeof bytes_s);
  printf("  cache directory: %s\n", dir);
  if (st != ADASPLASH_SUCCESS)
    printf("  cache entries:   (directory could not be read)\n");
  else if (!info_is_dir(dir))
    printf("  cache entries:   0 (directory does not exist yet)\n");
  else
    printf("  cache entries:   %zu, %s\n", entries, bytes_s);
}

/* Creates a context the way the library's users do (NULL options). Returns 0 or the exit code. */
static int info_create(adasplash_context **ctx, const char *what) {
  adasplash_status st = adasplash_context_create(NULL, ctx);
  if (st != ADASPLASH_SUCCESS) {
    *ctx = NULL;
    return info_library_error(NULL, st, what);
  }
  return 0;
}

static int info_print_context(adasplash_context *ctx) {
  adasplash_device_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  adasplash_status st = adasplash_context_get_device_info(ctx, &info);
  if (st != ADASPLASH_SUCCESS)
    return info_library_error(ctx, st, "adasplash_context_get_device_info");
  adasplash_cache_stats stats;
  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  st = adasplash_context_get_cache_stats(ctx, &stats);
  if (st != ADASPLASH_SUCCESS)
    return info_library_error(ctx, st, "adasplash_context_get_cache_stats");
  char local_s[64];
  info_bytes(info.local_mem_size, local_s, sizeof local_s);
  printf("adasplash-cl %s\n", adasplash_version());
  printf("  selected device: %s / %s\n", info.platform_name, info.device_name);
  printf("  selected because: %s\n", info.selection_reason);
  printf("  kernel path:     %s\n", info_path_name(info.kernel_path));
  if (info.nvidia_compute_capability)
    printf("  NVIDIA compute capability: %d.%d\n", info.nvidia_compute_capability / 10,
           info.nvidia_compute_capability % 10);
  printf("  planning limits: %s local memory, %zu work-items per work-group\n", local_s,
         info.max_work_group_size);
  info_print_cache(ctx, &stats);
  return 0;
}

static void info_print_stats(const adasplash_cache_stats *s) {
  printf("    programs built from source: %lu (%.3f s compiling)\n", s->builds, s->build_seconds);
  printf(
      "    disk cache: %lu hits (%.3f s loading), %lu misses, %lu rejected, %lu written "
      "(%.3f s fetching and writing binaries)\n",
      s->disk_hits, s->load_seconds, s->disk_misses, s->disk_rejected, s->disk_writes,
      s->store_seconds);
  printf("    memory hits: %lu\n", s->memory_hits);
}

/* One warmup on a fresh context; prints its time and counters into *stats. The context goes to
 * *keep when keep is not NULL (the caller releases it), else it is released. */
static int info_warmup_once(const char *label, adasplash_cache_stats *stats,
                            adasplash_context **keep) {
  adasplash_context *ctx = NULL;
  int rc = info_create(&ctx, "adasplash_context_create");
  if (rc) return rc;
  double t0 = dt_now();
  adasplash_status st = adasplash_warmup(ctx);
  double dt = dt_now() - t0;
  if (st != ADASPLASH_SUCCESS) {
    rc = info_library_error(ctx, st, "adasplash_warmup");
    adasplash_context_release(ctx);
    return rc;
  }
  memset(stats, 0, sizeof *stats);
  stats->struct_size = sizeof *stats;
  st = adasplash_context_get_cache_stats(ctx, stats);
  if (st != ADASPLASH_SUCCESS) {
    rc = info_library_error(ctx, st, "adasplash_context_get_cache_stats");
    adasplash_context_release(ctx);
    return rc;
  }
  printf("  %s warmup: %.3f s\n", label, dt);
  info_print_stats(stats);
  if (keep)
    *keep = ctx;
  else
    adasplash_context_release(ctx);
  return 0;
}

static int info_warmup(void) {
  adasplash_cache_stats cold, warm;
  printf("\nWarmup (every kernel variant for this device):\n");
  int rc = info_warmup_once("cold", &cold, NULL);
  if (rc) return rc;
  adasplash_context *ctx = NULL;
  rc = info_warmup_once("warm", &warm, &ctx);
  if (rc) return rc;
  if (!warm.cache_dir[0]) {
    printf("  note: the disk cache is off, so the second warmup compiled again\n");
  } else if (warm.builds > 0 || warm.disk_hits == 0) {
    printf(
        "  note: the second warmup was not served from the disk cache (%lu disk hits, %lu "
        "builds); is %s writable?\n",
        warm.disk_hits, warm.builds, warm.cache_dir);
  } else {
    printf("  the second warmup loaded all %lu programs from the disk cache\n", warm.disk_hits);
  }
  info_print_cache(ctx, &warm);
  adasplash_context_release(ctx);
  return 0;
}

static int info_clear_cache(adasplash_context *ctx, const char *dir) {
  if (!dir[0]) {
    printf("Cache: disabled, nothing to clear\n");
    return 0;
  }
  size_t removed = 0;
  adasplash_status st = adasplash_context_cache_clear(ctx, &removed);
  if (st != ADASPLASH_SUCCESS) {
    dt_error(INFO_PROG, "clearing the cache directory %s failed after removing %zu entries", dir,
             removed);
    return 1;
  }
  if (removed == 0 && !info_is_dir(dir))
    printf("Cache: %s does not exist, nothing to clear\n", dir);
  else
    printf("Cache: removed %zu entries from %s\n", removed, dir);
  return 0;
}

/* ---- main -------------------------------------------------------------------------------------
 */

int main(int argc, char **argv) {
  int list_only = 0, clear = 0, warmup = 0;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(info_usage, stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("adasplash-info (adasplash-cl) library %s, header %s\n", adasplash_version(),
             ADASPLASH_VERSION_STRING);
      return 0;
    } else if (strcmp(a, "--list-devices") == 0) {
      list_only = 1;
    } else if (strcmp(a, "--clear-cache") == 0) {
      clear = 1;
    } else if (strcmp(a, "--warmup") == 0) {
      warmup = 1;
    } else {
      dt_error(INFO_PROG, "unknown option \"%s\"", a);
      fputs(info_usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (list_only && (clear || warmup)) {
    dt_error(INFO_PROG, "--list-devices cannot be combined with --clear-cache or --warmup");
    return EXIT_USAGE;
  }

  if (list_only || (!clear && !warmup)) {
    unsigned n = info_list_devices();
    if (n == 0) {
      dt_error(INFO_PROG,
               "no OpenCL device is available (is an ICD such as pocl-opencl-icd installed?)");
      return 1;
    }
    if (list_only) return 0;
    printf("\n");
  }

  adasplash_context *ctx = NULL;
  int rc = info_create(&ctx, "adasplash_context_create");
  if (rc) return rc;
  rc = info_print_context(ctx);
  char dir[sizeof(((adasplash_cache_stats *)0)->cache_dir)] = "";
  if (!rc) {
    adasplash_cache_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    adasplash_status st = adasplash_context_get_cache_stats(ctx, &stats);
    if (st == ADASPLASH_SUCCESS)
      memcpy(dir, stats.cache_dir, sizeof dir);
    else
      rc = info_library_error(ctx, st, "adasplash_context_get_cache_stats");
  }
  if (!rc && clear) {
    printf("\n");
    rc = info_clear_cache(ctx, dir);
  }
  adasplash_context_release(ctx);
  if (rc) return rc;
  if (warmup) rc = info_warmup();
  return rc;
}
