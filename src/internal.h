/*
 * internal.h - the context structure and the interfaces of the lower host layers (errors, device
 * description and choice, programs, argument checks, buffers). Nothing here is part of the public
 * API. The other internal headers: tuning.h, variant.h, launch.h, workspace.h, entmax_rows.h,
 * attention_common.h, attention_internal.h, and the self-contained platform.h, dtype.h, sha256.h,
 * disk_cache.h, kernels_embedded.h.
 *
 * Dependency order of src/ (a file calls only files on the lines above its own):
 *   platform
 *   status, sha256
 *   dtype, validate, buffers, device_info, device_select, kernel_source, disk_cache
 *   program_cache
 *   tuning, variant, launch, workspace
 *   context
 *   entmax_rows
 *   attention_common
 *   softmax_flash, dense (dense registers a release hook with context)
 *   attention
 *   attention_host, warmup
 */
#ifndef ASP_INTERNAL_H
#define ASP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "adasplash.h"
#include "platform.h"
#include "tuning.h"

/* ---- errors (status.c) ------------------------------------------------------------------------
 */

/* Records an error on ctx (may be NULL) and on the calling thread; returns status for chaining. */
adasplash_status asp_fail(const adasplash_context *ctx, adasplash_status status, const char *fmt,
                          ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* asp_fail that also records the OpenCL error code behind the failure. */
adasplash_status asp_fail_with_cl(const adasplash_context *ctx, adasplash_status status,
                                  cl_int cl_error, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Maps a failed OpenCL call to a status (out-of-memory codes to their statuses) and records it. */
adasplash_status asp_fail_cl(const adasplash_context *ctx, cl_int err, const char *what);
const char *asp_cl_error_name(cl_int err);

/* ---- device description (device_info.c) -------------------------------------------------------
 */

/* The class that picks launch defaults and kernel variants: GPUs, and the rest (CPUs and other
 * devices whose runtimes run a work-group as loops over its work-items). */
typedef enum asp_device_class { ASP_DEVICE_CPU = 0, ASP_DEVICE_GPU = 1 } asp_device_class;

typedef struct asp_device {
  adasplash_device_info info; /* public view (info.local_mem_size etc. are the raw device values) */
  cl_platform_id platform;
  asp_device_class device_class;
  int is_gpu, is_cpu;
  int is_nvidia, is_amd, is_intel, is_pocl;
  int is_oclgrind;
} asp_device;

adasplash_status asp_device_describe(const adasplash_context *ctx, cl_device_id device,
                                     asp_device *out);

/* ---- device selection (device_select.c) -------------------------------------------------------
 */

/* Picks a device by selection string (NULL: default rule). On success *device and *platform are set
 * and reason (if non-NULL) says why. Returns ADASPLASH_ERROR_NO_DEVICE when nothing matches. */
adasplash_status asp_select_device(const char *selection, cl_platform_id *platform,
                                   cl_device_id *device, char *reason, size_t reason_size);

/* ---- programs (kernel_source.c, program_cache.c) ----------------------------------------------
 */

/* The program families compiled from cl/ (one entry .cl file each). */
typedef enum asp_program_family {
  ASP_PROGRAM_ENTMAX_ROWS = 0,
  ASP_PROGRAM_ATTN_FORWARD,  /* attn_forward.cl: threshold and output passes */
  ASP_PROGRAM_ATTN_BACKWARD, /* attn_backward.cl */
  ASP_PROGRAM_SOFTMAX_FLASH,
  ASP_PROGRAM_UTILITY,
  ASP_PROGRAM_ATTN_DECODE, /* attn_decode.cl: split-KV decode path */
  ASP_PROGRAM_ATTN_SHARD,  /* attn_shard.cl: sequence-parallel shards */
  ASP_PROGRAM_ATTN_DENSE,  /* attn_dense.cl: the threshold pass's dense sweep (NVIDIA path) */
  ASP_PROGRAM_ATTN_ALPHA,  /* attn_alpha.cl: the output pass with the alpha gradient's terms */
  ASP_PROGRAM_FAMILY_COUNT
} asp_program_family;

const char *asp_program_file(asp_program_family family);

/* Self-contained source of a program: from the embedded table, or read from kernel_dir (with
 * #include "x.clh" resolved) when kernel_dir is non-empty. *text is malloc'd. */
adasplash_status asp_kernel_source(const adasplash_context *ctx, asp_program_family family,
                                   char **text, size_t *length);

typedef struct asp_kernel {
  char name[64];
  cl_kernel kernel;
  size_t max_work_group_size; /* CL_KERNEL_WORK_GROUP_SIZE */
  cl_ulong local_mem_size;    /* CL_KERNEL_LOCAL_MEM_SIZE (static part) */
} asp_kernel;

/* A compiled program variant with all its kernels. Kernel argument setting and enqueueing must
 * happen under `lock` (OpenCL kernel objects are not safe to configure from two threads). */
typedef struct asp_program {
  asp_program_family family;
  char *options; /* canonical build options (defines included) */
  cl_program program;
  asp_kernel *kernels;
  size_t kernel_count;
  asp_mutex lock;
  struct asp_program *next;
} asp_program;

/* Finds or builds the program (memory cache, then disk cache, then source). defines: the canonical
 * "-DNAME=value ..." text of a variant (asp_defines_text in variant.c). */
adasplash_status asp_program_get(adasplash_context *ctx, asp_program_family family,
                                 const char *defines, asp_program **program);
/* Kernel by name in a program; NULL if absent. */
const asp_kernel *asp_program_kernel(const asp_program *program, const char *name);
/* Releases every program of ctx (at context release). */
void asp_program_release_all(adasplash_context *ctx);
/* Sets up ctx's disk cache of program binaries (ctx->disk_cache, cache_dir, stats.cache_note) from
 * cache_dir (options.cache_dir, may be NULL), $ADASPLASH_CACHE_DIR, the build default and the
 * driver (PoCL caches itself). tune_dir gets the resolved directory even where binaries are not
 * cached there (the tuned file lives in it), "" when the cache is off. */
void asp_program_cache_open(adasplash_context *ctx, const char *cache_dir, char *tune_dir,
                            size_t tune_dir_size);

/* ---- the context (context.c) ------------------------------------------------------------------
 */

/* A module that leaves state outside the context for it (CLBlast's process-wide program cache)
 * registers a hook; adasplash_context_release runs every hook once, after the context's programs
 * are released and before its OpenCL objects are. Registering a hook again does nothing. */
typedef void (*asp_release_hook)(adasplash_context *ctx);
adasplash_status asp_context_on_release(adasplash_context *ctx, asp_release_hook hook);

struct adasplash_context {
  cl_context cl_ctx;
  cl_device_id device;
  cl_command_queue queue;
  int owned; /* 1: the library created cl_ctx and queue */
  asp_device dev;
  asp_tuning tuning;
  adasplash_kernel_path path; /* the device path kernels are built for */
  int path_auto;              /* 1: the path was chosen by "auto" (asp_variant_choose_path) */
  char selection_reason[128];
  /* Program cache */
  asp_mutex lock; /* protects programs, stats and the error fields */
  asp_program *programs;
  struct asp_plan *plans; /* variant.c */
  adasplash_cache_stats stats;
  int disk_cache; /* 1: read/write the disk cache at cache_dir */
  char cache_dir[512];
  char kernel_dir[512];
  asp_release_hook release_hooks[4]; /* asp_context_on_release, under lock */
  int release_hook_count;
  /* Last error */
  adasplash_status last_status;
  cl_int last_cl_error;
  char last_error[4096];
};

/* ---- argument validation helpers (validate.c) -------------------------------------------------
 */

/* Checks that buf is a buffer of ctx's cl_context with at least need_bytes; name is the argument
 * name for the message. */
adasplash_status asp_check_buffer(const adasplash_context *ctx, cl_mem buf, const char *name,
                                  size_t need_bytes);
/* Like asp_check_buffer but NULL is allowed (returns success). */
adasplash_status asp_check_optional_buffer(const adasplash_context *ctx, cl_mem buf,
                                           const char *name, size_t need_bytes);
adasplash_status asp_check_queue(const adasplash_context *ctx, cl_command_queue queue);
adasplash_status asp_check_wait_list(const adasplash_context *ctx, cl_uint n, const cl_event *list);
/* One buffer argument of a call for the overlap check: bytes [begin, end) of buf (relative to buf,
 * which may be a sub-buffer), whether the call writes it, and whether it is a span the library
 * owns whole (saved state, workspace, small vectors: any shared byte conflicts) or a tensor
 * (strided layouts may interleave in one buffer, so two tensors conflict only when they start at
 * the same byte: in-place use). NULL buffers are skipped. */
typedef struct asp_region {
  cl_mem buf;
  size_t begin, end;
  const char *name;
  int written, span;
} asp_region;
/* Fails with ADASPLASH_ERROR_INVALID_ARGUMENT naming both arguments when a written region
 * conflicts with another one (sub-buffers are resolved to their parent buffer). */
adasplash_status asp_check_overlaps(const adasplash_context *ctx, const char *fn,
                                    const asp_region *regions, size_t count);
/* a*b and a+b with overflow detection (return 0 on overflow). */
int asp_mul_size(size_t a, size_t b, size_t *out);
int asp_add_size(size_t a, size_t b, size_t *out);

/* ---- buffers (buffers.c) --------------------------------------------------------------------- */

/* Creates a temporary device buffer (released by the caller with clReleaseMemObject). */
adasplash_status asp_create_buffer(const adasplash_context *ctx, size_t bytes, cl_mem *out);
/* A region of parent; offset must be a multiple of asp_sub_buffer_align(). */
adasplash_status asp_sub_buffer(const adasplash_context *ctx, cl_mem parent, size_t offset,
                                size_t size, cl_mem *out);
/* Alignment of sub-buffer origins in bytes (CL_DEVICE_MEM_BASE_ADDR_ALIGN, at least 256). */
size_t asp_sub_buffer_align(const adasplash_context *ctx);
size_t asp_align_up(size_t v, size_t a);

/* The device copies of host arrays one *_host() call makes; freed together. */
#define ASP_HOST_MAX_BUFFERS 16
typedef struct asp_host_set {
  cl_mem mem[ASP_HOST_MAX_BUFFERS];
  int count;
} asp_host_set;
/* A device copy of data (bytes; NULL data: uninitialised), recorded in set. */
adasplash_status asp_host_buffer(adasplash_context *ctx, asp_host_set *set, const void *data,
                                 size_t bytes, cl_mem *out);
void asp_host_free(asp_host_set *set);
/* Blocking read of bytes from buf on the context's queue. */
adasplash_status asp_host_get(adasplash_context *ctx, cl_mem buf, void *dst, size_t bytes);

#endif /* ASP_INTERNAL_H */
