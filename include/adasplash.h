/*
 * adasplash.h - the whole public API of adasplash-cl.
 *
 * adasplash-cl is a portable OpenCL library for alpha-entmax attention (forward and backward) using
 * the AdaSplash-2 method: a histogram of scores kept in local memory gives a certified bracket and
 * a close start for the entmax threshold tau, and a block bitmap lets every later pass skip
 * all-zero tiles.
 *
 * Conventions that hold for every function in this header:
 *  - Every function returns an adasplash_status (or a value documented otherwise) and never prints,
 *    aborts or exits. Arguments are validated before anything is enqueued; on error no output
 * buffer is written and a message naming the offending argument is recorded
 * (adasplash_get_last_error).
 *  - Buffers are the caller's cl_mem objects created in the context's cl_context. Enqueue functions
 *    take the usual OpenCL triple (num_events_in_wait_list, event_wait_list, event) and never
 * block.
 *  - Enqueue functions never compile: call the matching *_prepare() (or adasplash_warmup) first, or
 *    they return ADASPLASH_ERROR_NOT_PREPARED. The *_host() conveniences prepare, copy and block.
 *  - One context may be used from several threads at once (each thread may pass its own queue).
 *
 * Numerics: p = [(alpha-1) * z - tau]_+ ^ (1/(alpha-1)) with z = scale * q.k (entmax package
 * convention); tau lives in the scaled space x = (alpha-1) * z. Storage may be fp32, fp16 or bf16;
 * products, accumulation and tau are fp32.
 */
#ifndef ADASPLASH_H
#define ADASPLASH_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#if defined(__APPLE__)
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(ADASPLASH_SHARED)
#if defined(ADASPLASH_BUILDING)
#define ADASPLASH_API __declspec(dllexport)
#else
#define ADASPLASH_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) && defined(ADASPLASH_BUILDING)
#define ADASPLASH_API __attribute__((visibility("default")))
#else
#define ADASPLASH_API
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Version */
/* ---------------------------------------------------------------------------------------------- */

#define ADASPLASH_VERSION_MAJOR 0
#define ADASPLASH_VERSION_MINOR 1
#define ADASPLASH_VERSION_PATCH 0
#define ADASPLASH_VERSION_STRING "0.1.0"

/* Library version as "MAJOR.MINOR.PATCH" of the linked library (may differ from the header's). */
ADASPLASH_API const char *adasplash_version(void);

/* ---------------------------------------------------------------------------------------------- */
/* Status */
/* ---------------------------------------------------------------------------------------------- */

/* 0 is success; library errors live in their own block so they never collide with OpenCL codes. */
typedef enum adasplash_status {
  ADASPLASH_SUCCESS = 0,
  ADASPLASH_ERROR_INVALID_ARGUMENT = -4000, /* NULL pointer, bad struct_size, bad enum value */
  ADASPLASH_ERROR_INVALID_SHAPE = -4001,    /* sizes zero/negative/too large, heads not divisible */
  ADASPLASH_ERROR_INVALID_STRIDE = -4002,   /* strides that overlap rows or overflow */
  ADASPLASH_ERROR_INVALID_ALPHA = -4003,    /* alpha not in (1, 2], NaN */
  ADASPLASH_ERROR_INVALID_BUFFER = -4004,   /* NULL, not a buffer, or from another cl_context */
  ADASPLASH_ERROR_BUFFER_TOO_SMALL = -4005, /* buffer smaller than shape, strides and offset need */
  ADASPLASH_ERROR_INVALID_TUNING = -4006,   /* bad ADASPLASH_TUNE / tuned file / override */
  ADASPLASH_ERROR_UNSUPPORTED = -4007,      /* valid, but not available on this device or build */
  ADASPLASH_ERROR_NOT_PREPARED = -4008,     /* enqueue before *_prepare() compiled the kernels */
  ADASPLASH_ERROR_NO_DEVICE = -4009,    /* no OpenCL platform/device, or selection matched none */
  ADASPLASH_ERROR_BUILD_FAILED = -4010, /* kernel compilation failed; log in the last error */
  ADASPLASH_ERROR_OUT_OF_DEVICE_MEMORY = -4011,
  ADASPLASH_ERROR_OUT_OF_HOST_MEMORY = -4012,
  ADASPLASH_ERROR_OPENCL = -4013, /* an OpenCL call failed; cl_int via get_last_error */
  ADASPLASH_ERROR_INTERNAL = -4014,
  ADASPLASH_ERROR_INVALID_SAVED = -4015, /* saved buffer too small or made for another shape */
  ADASPLASH_ERROR_CACHE_IO = -4016       /* the program cache directory cannot be read or changed */
} adasplash_status;

/* Static English name of a status ("ADASPLASH_ERROR_INVALID_SHAPE: ..."); never NULL. */
ADASPLASH_API const char *adasplash_status_string(adasplash_status status);

typedef struct adasplash_context adasplash_context;

/* Copies the last error message into buf (always NUL-terminated when buf_size > 0) and the OpenCL
 * error code behind it into *cl_error (CL_SUCCESS when the error was not an OpenCL failure).
 * ctx != NULL: the last error recorded on that context (by any thread).
 * ctx == NULL: the last error recorded by the calling thread (also covers failed context creation).
 * buf and cl_error may be NULL. Returns the status of that last error (ADASPLASH_SUCCESS if none).
 */
ADASPLASH_API adasplash_status adasplash_get_last_error(const adasplash_context *ctx, char *buf,
                                                        size_t buf_size, cl_int *cl_error);

/* ---------------------------------------------------------------------------------------------- */
/* Data types */
/* ---------------------------------------------------------------------------------------------- */

typedef enum adasplash_dtype {
  ADASPLASH_F32 = 0, /* IEEE binary32 */
  ADASPLASH_F16 = 1, /* IEEE binary16 (no cl_khr_fp16 needed: loads/stores use vload_half) */
  ADASPLASH_BF16 = 2 /* bfloat16, stored as 16-bit patterns */
} adasplash_dtype;

/* Bytes per element (4, 2, 2), or 0 for an invalid dtype. */
ADASPLASH_API size_t adasplash_dtype_size(adasplash_dtype dtype);

/* Host conversion of n elements between dtypes (round to nearest even). src and dst must not
 * overlap unless identical dtypes and pointers. */
ADASPLASH_API adasplash_status adasplash_convert(const void *src, adasplash_dtype src_dtype,
                                                 void *dst, adasplash_dtype dst_dtype, size_t n);

/* ---------------------------------------------------------------------------------------------- */
/* Context */
/* ---------------------------------------------------------------------------------------------- */

/* Kernel paths. The portable path (OpenCL C 1.2) always exists; a device path replaces inner tile
 * products where the device supports it. */
typedef enum adasplash_kernel_path {
  ADASPLASH_PATH_PORTABLE = 0,
  ADASPLASH_PATH_NVIDIA_MMA = 1 /* inline PTX tensor cores, NVIDIA compute capability >= 8 */
} adasplash_kernel_path;

typedef struct adasplash_context_options {
  size_t
      struct_size; /* = sizeof(adasplash_context_options); set by adasplash_context_options_init */
  /* Device choice (owned contexts only): "gpu", "cpu", "N" (global index), "P:D" (platform:device
   * indices) or a case-insensitive substring of "platform device" names. NULL: $ADASPLASH_DEVICE,
   * else the first GPU, else the first device. */
  const char *device;
  /* Program cache directory. NULL: $ADASPLASH_CACHE_DIR, else $XDG_CACHE_HOME/adasplash-cl, else
   * ~/.cache/adasplash-cl. "off" or "" disables the disk cache. An unwritable directory silently
   * disables writing. On PoCL the default location is not used (PoCL caches compiled kernels
   * itself, and serialising a program binary costs it seconds): name a directory here or in
   * ADASPLASH_CACHE_DIR to cache there too. */
  const char *cache_dir;
  /* Tuning override "key=value,key=value" (see docs/TUNING.md). NULL: $ADASPLASH_TUNE. */
  const char *tune;
  /* Directory with the cl/ kernel sources to use instead of the embedded copies (kernel
   * development). NULL: $ADASPLASH_KERNEL_DIR, else the embedded sources. */
  const char *kernel_dir;
  /* "auto", "portable" or "nvidia". NULL: $ADASPLASH_PATH, else "auto". */
  const char *path;
  /* Properties of the queue the library creates for owned contexts (e.g.
   * CL_QUEUE_PROFILING_ENABLE). */
  cl_command_queue_properties queue_properties;
} adasplash_context_options;

/* Fills defaults (all NULL / 0) and struct_size. */
ADASPLASH_API void adasplash_context_options_init(adasplash_context_options *options);

/* Creates a context on a device chosen by the rules of options->device (options may be NULL). The
 * library owns the cl_context and the queue it creates. */
ADASPLASH_API adasplash_status adasplash_context_create(const adasplash_context_options *options,
                                                        adasplash_context **ctx);

/* Creates a context that borrows the caller's OpenCL objects. They are retained while the context
 * lives and released once by adasplash_context_release; the library never finishes or releases them
 * beyond its own retains. queue must belong to context and device. options may be NULL (its device
 * and queue_properties fields are ignored). */
ADASPLASH_API adasplash_status adasplash_context_create_borrowed(
    cl_context context, cl_device_id device, cl_command_queue queue,
    const adasplash_context_options *options, adasplash_context **ctx);

/* Releases everything the context holds (programs, kernels, its retains). NULL is accepted. The
 * caller must have finished all work it enqueued through the context. */
ADASPLASH_API adasplash_status adasplash_context_release(adasplash_context *ctx);

/* The OpenCL objects the context uses (not retained for the caller). Any out pointer may be NULL.
 */
ADASPLASH_API adasplash_status adasplash_context_get_cl(const adasplash_context *ctx,
                                                        cl_context *context, cl_device_id *device,
                                                        cl_command_queue *queue);

typedef struct adasplash_device_info {
  size_t struct_size; /* set to sizeof(adasplash_device_info) before the call */
  char platform_name[128];
  char platform_version[128];
  char device_name[128];
  char device_vendor[128];
  char device_version[128];
  char driver_version[128];
  char opencl_c_version[128];
  cl_device_type device_type;
  cl_uint vendor_id;
  cl_uint compute_units;
  cl_ulong global_mem_size;
  cl_ulong max_mem_alloc_size;
  cl_ulong local_mem_size;           /* what the library plans with (after tuning overrides) */
  size_t max_work_group_size;        /* idem */
  int has_fp16;                      /* cl_khr_fp16 (not needed for fp16 storage) */
  int has_fp64;                      /* cl_khr_fp64 */
  int nvidia_compute_capability;     /* 10*major+minor on NVIDIA, else 0 */
  adasplash_kernel_path kernel_path; /* the path this context uses */
  char selection_reason[128];        /* why this device was chosen ("ADASPLASH_DEVICE=gpu", ...) */
  /* The per-device tuned-parameters file this context reads (docs/TUNING.md): $ADASPLASH_TUNE_FILE,
   * else <cache dir>/tuned-<device hash>.conf (the cache directory of options->cache_dir /
   * $ADASPLASH_CACHE_DIR rules, also on PoCL); "" when there is none (cache directory "off").
   * adasplash-tune writes this file. */
  char tuned_file[1024];
  int tuned_file_loaded; /* 1 when tuned_file existed and was applied */
  /* The launch parameters the context uses, "key=value" lines: defaults for the device class, then
   * the tuned file, then options->tune / $ADASPLASH_TUNE. */
  char tuning[1024];
} adasplash_device_info;

ADASPLASH_API adasplash_status adasplash_context_get_device_info(const adasplash_context *ctx,
                                                                 adasplash_device_info *info);

typedef struct adasplash_cache_stats {
  size_t struct_size;
  unsigned long memory_hits;   /* programs found in the context's in-memory cache */
  unsigned long disk_hits;     /* programs loaded from the disk cache */
  unsigned long disk_misses;   /* no usable disk entry */
  unsigned long disk_rejected; /* corrupt, truncated or foreign entries removed and rebuilt */
  unsigned long disk_writes;   /* entries written */
  unsigned long builds;        /* programs compiled from source */
  double build_seconds;        /* wall time spent compiling from source */
  double load_seconds;         /* wall time spent building from cached binaries */
  double store_seconds;        /* wall time spent fetching and writing binaries to the cache */
  char cache_dir[512];         /* "" when the disk cache is off */
  char cache_note[160];        /* why the disk cache is off, when it is */
} adasplash_cache_stats;

ADASPLASH_API adasplash_status adasplash_context_get_cache_stats(const adasplash_context *ctx,
                                                                 adasplash_cache_stats *stats);

/* Compiles (or loads from the disk cache) every kernel variant the library can use on this device:
 * all dtypes, head dims 16..256 and kernel families. Useful to make first calls fast and in CI. */
ADASPLASH_API adasplash_status adasplash_warmup(adasplash_context *ctx);

/* The program binaries in the context's disk cache directory (adasplash_cache_stats.cache_dir):
 * how many entries and their bytes (headers included). 0 and 0 when the disk cache is off or the
 * directory does not exist yet; ADASPLASH_ERROR_CACHE_IO when it cannot be read. Either out
 * pointer may be NULL. */
ADASPLASH_API adasplash_status adasplash_context_cache_usage(const adasplash_context *ctx,
                                                             size_t *entries,
                                                             unsigned long long *bytes);

/* Removes every entry of the context's disk cache directory and the temporary files interrupted
 * stores left there (nothing else); *removed (may be NULL) gets how many files went, also on
 * failure. Nothing to do when the disk cache is off. Not while another process stores into the
 * same directory (that store would fail). ADASPLASH_ERROR_CACHE_IO when the directory cannot be
 * read or a file cannot be removed. */
ADASPLASH_API adasplash_status adasplash_context_cache_clear(const adasplash_context *ctx,
                                                             size_t *removed);

/* ---------------------------------------------------------------------------------------------- */
/* Tuning keys */
/* ---------------------------------------------------------------------------------------------- */

/* A launch parameter accepted in ADASPLASH_TUNE, options.tune and tuned files (docs/TUNING.md). */
typedef struct adasplash_tuning_key {
  const char *name;          /* as written in "key=value" */
  long min_value, max_value; /* accepted values (some keys must also be powers of two) */
  const char *meaning;
} adasplash_tuning_key;

/* The keys this library accepts: *count gets their number, keys[0 .. min(capacity, *count)) the
 * entries (their strings are static). keys may be NULL when capacity is 0. */
ADASPLASH_API adasplash_status adasplash_tuning_keys(adasplash_tuning_key *keys, size_t capacity,
                                                     size_t *count);

/* Calls fn(key, value, arg) for every item of a tuning text, read exactly as the library reads
 * ADASPLASH_TUNE, options.tune and tuned files: items separated by ',' or newlines, '#' starts a
 * comment to the end of the line, blanks around items, keys and values trimmed; value is NULL for
 * an item without '='. Keys and values are not checked (creating a context does that). Stops at
 * the first nonzero return of fn. text NULL reads as an empty text. */
typedef int (*adasplash_tuning_item_fn)(const char *key, const char *value, void *arg);
ADASPLASH_API adasplash_status adasplash_tuning_scan(const char *text, adasplash_tuning_item_fn fn,
                                                     void *arg);

/* ---------------------------------------------------------------------------------------------- */
/* Row-wise alpha-entmax */
/* ---------------------------------------------------------------------------------------------- */

typedef enum adasplash_tau_init {
  ADASPLASH_INIT_HISTOGRAM = 0, /* histogram in local memory: certified narrow bracket (default) */
  ADASPLASH_INIT_BRACKET = 1 /* plain bracket [m-1, m-n^(1-alpha)], midpoint start (for studies) */
} adasplash_tau_init;

/* A matrix of rows x cols; row r starts at element offset + r*row_stride of each buffer. Entries
 * equal to -inf are masked (probability 0), as are columns >= valid_cols[r] when valid_cols is
 * given. Rows without any valid entry give y = 0 and zero gradients. A NaN or +inf valid entry
 * makes the row's valid outputs NaN (other rows are unaffected). */
typedef struct adasplash_entmax_desc {
  size_t struct_size;    /* = sizeof(adasplash_entmax_desc), set by adasplash_entmax_desc_init */
  adasplash_dtype dtype; /* storage of x, y, dy and dx */
  size_t rows, cols;
  size_t row_stride; /* elements between consecutive rows; 0 means cols */
  size_t offset;     /* element offset of row 0 in every matrix buffer */
  float alpha;       /* in (1, 2]; used when alpha_buf is NULL */
  cl_mem
      alpha_buf; /* optional float32 [rows]: per-row alpha (values outside (1,2] give NaN rows) */
  cl_mem valid_cols; /* optional int32 [rows]: valid prefix length per row (clamped to [0, cols]) */
  float tolerance;   /* stop when |sum(y) - 1| <= tolerance; 0 means 1e-6 */
  int max_iter;      /* refinement sweeps at most; 0 means 32 */
  adasplash_tau_init init;
} adasplash_entmax_desc;

ADASPLASH_API void adasplash_entmax_desc_init(adasplash_entmax_desc *desc);

/* Compiles (or loads) the kernels that desc needs. Cheap when already done. */
ADASPLASH_API adasplash_status adasplash_entmax_prepare(adasplash_context *ctx,
                                                        const adasplash_entmax_desc *desc);

/* y = entmax_alpha(x) along rows. queue NULL means the context's queue. sweeps is optional: int32
 * [rows] receiving the number of refinement sweeps used per row, negated when the row did not reach
 * the tolerance within max_iter. x and y may be the same buffer (in place); sweeps may not overlap
 * them (ADASPLASH_ERROR_INVALID_ARGUMENT). */
ADASPLASH_API adasplash_status adasplash_entmax_forward(
    adasplash_context *ctx, const adasplash_entmax_desc *desc, cl_command_queue queue, cl_mem x,
    cl_mem y, cl_mem sweeps, cl_uint num_events_in_wait_list, const cl_event *event_wait_list,
    cl_event *event);

/* dx = d entmax(x)^T dy, computed from y (the forward output). dalpha is optional: with a per-row
 * alpha_buf it receives float32 [rows] (dL/dalpha_r); with a scalar alpha one float32, the sum over
 * rows. dy and dx may be the same buffer (in place); dalpha may not overlap y, dy or dx. */
ADASPLASH_API adasplash_status adasplash_entmax_backward(
    adasplash_context *ctx, const adasplash_entmax_desc *desc, cl_command_queue queue, cl_mem y,
    cl_mem dy, cl_mem dx, cl_mem dalpha, cl_uint num_events_in_wait_list,
    const cl_event *event_wait_list, cl_event *event);

/* Softmax along rows, with the same launch skeleton as the entmax kernels: the baseline the
 * benchmarks compare against. Only dtype, rows, cols, row_stride and offset of desc are used. */
ADASPLASH_API adasplash_status adasplash_softmax_rows_forward(
    adasplash_context *ctx, const adasplash_entmax_desc *desc, cl_command_queue queue, cl_mem x,
    cl_mem y, cl_uint num_events_in_wait_list, const cl_event *event_wait_list, cl_event *event);

/* Host-memory variants: prepare, copy in, run on the context's queue, copy out, wait. Matrices are
 * laid out as in desc (row_stride, offset) in host memory of desc->dtype. desc->alpha_buf and
 * desc->valid_cols must be NULL; alpha (float [rows]) and valid_cols (int [rows]) may be given as
 * host arrays instead. sweeps (int [rows]) and dalpha (float [rows] or [1]) are optional. */
ADASPLASH_API adasplash_status adasplash_entmax_forward_host(adasplash_context *ctx,
                                                             const adasplash_entmax_desc *desc,
                                                             const void *x, void *y,
                                                             const float *alpha,
                                                             const int *valid_cols, int *sweeps);
ADASPLASH_API adasplash_status adasplash_entmax_backward_host(adasplash_context *ctx,
                                                              const adasplash_entmax_desc *desc,
                                                              const void *y, const void *dy,
                                                              void *dx, const float *alpha,
                                                              const int *valid_cols, float *dalpha);

/* ---------------------------------------------------------------------------------------------- */
/* Fused alpha-entmax attention */
/* ---------------------------------------------------------------------------------------------- */

/* Where a [batch, heads, seq, head_dim] tensor lives in its buffer, in elements. head_dim is always
 * contiguous. Zero strides mean the contiguous BHSD layout; a BSHD tensor has seq_stride =
 * heads*head_dim, head_stride = head_dim, batch_stride = seq*heads*head_dim. */
typedef struct adasplash_layout {
  size_t offset;
  size_t batch_stride;
  size_t head_stride;
  size_t seq_stride;
} adasplash_layout;

/* What the attention calls compute. The two baselines run on the same device through the same API
 * so that benchmarks compare like with like. */
typedef enum adasplash_attention_algorithm {
  ADASPLASH_ATTN_ENTMAX = 0, /* fused AdaSplash-2 style entmax attention (the library) */
  ADASPLASH_ATTN_SOFTMAX_FLASH =
      1, /* dense softmax flash attention, same tiling skeleton (baseline) */
  ADASPLASH_ATTN_ENTMAX_DENSE =
      2 /* scores materialised with CLBlast GEMM, row entmax, CLBlast PV:
           O(batch*heads*q_len*kv_len) workspace (baseline, cross-check) */
} adasplash_attention_algorithm;

enum {
  /* The forward also saves what the alpha gradient needs (two more row accumulators). Required for
   * a non-NULL dalpha in the backward. Its output pass is compiled only by a prepare (or
   * adasplash_warmup) of a desc with this flag: without one, such a forward returns
   * ADASPLASH_ERROR_NOT_PREPARED. */
  ADASPLASH_ATTN_SAVE_ALPHA_GRAD = 1,
  /* Inference: adasplash_attention_prepare compiles only the forward kernels (the backward's
   * program is not built; adasplash_attention_backward refuses such a desc). The forward itself is
   * the same with or without it. */
  ADASPLASH_ATTN_FORWARD_ONLY = 2
};

typedef struct adasplash_attention_desc {
  size_t struct_size; /* = sizeof(adasplash_attention_desc), set by adasplash_attention_desc_init */
  adasplash_dtype dtype; /* storage of q, k, v, out, dout, dq, dk, dv */
  int batch;
  int q_heads;
  int kv_heads; /* q_heads % kv_heads == 0; q head h reads kv head h / (q_heads/kv_heads) */
  int q_len;
  int kv_len;
  int head_dim;                  /* 1..256 */
  adasplash_layout q, k, v, out; /* dq, dk, dv, dout use the layouts of q, k, v, out */
  float alpha;                   /* in (1, 2]; used when alpha_buf is NULL */
  cl_mem alpha_buf; /* optional float32 [q_heads] (values outside (1,2] give NaN heads) */
  float scale;      /* logit scale; 0 means 1/sqrt(head_dim) */
  int causal;       /* key j visible to query i iff j <= i + (kv_len_b - q_len_b) */
  cl_mem q_lens;    /* optional int32 [batch]: valid query rows (right padding), clamped */
  cl_mem kv_lens;   /* optional int32 [batch]: valid keys (right padding), clamped */
  float tolerance;  /* stop refining tau when |sum(p) - 1| <= tolerance; 0 means 1e-5 */
  int max_iter;     /* refinement sweeps at most; 0 means 16 */
  int flags;        /* ADASPLASH_ATTN_* */
  adasplash_attention_algorithm algorithm; /* default ADASPLASH_ATTN_ENTMAX */
} adasplash_attention_desc;

ADASPLASH_API void adasplash_attention_desc_init(adasplash_attention_desc *desc);

/* Bytes of the caller-allocated buffers: saved (forward -> backward state: tau and row sums, the
 * block bitmap and its transpose, row statistics, a shape fingerprint) and workspace (scratch of
 * one call). For decode shapes of the entmax algorithm (q_len <= the tuning's decode_max_q, 16 by
 * default) the workspace also holds what the split-KV decode path keeps: the scores of the rows,
 * batch*q_heads*q_len*kv_len floats, and the partial outputs of its key splits. On the NVIDIA
 * tensor-core path it also holds the dense sweep's per-row results for the threshold pass:
 * 4 * (4 + 3 * (bins + 1)) bytes per query row (220 with the default 16 bins). */
ADASPLASH_API adasplash_status adasplash_attention_saved_size(const adasplash_context *ctx,
                                                              const adasplash_attention_desc *desc,
                                                              size_t *bytes);
ADASPLASH_API adasplash_status adasplash_attention_workspace_size(
    const adasplash_context *ctx, const adasplash_attention_desc *desc, size_t *bytes);

/* Compiles (or loads) forward and backward kernels for desc. Cheap when already done. On the
 * NVIDIA tensor-core path a desc with a scalar alpha of 1.5 or 2 and no alpha_buf runs kernels
 * compiled for that alpha, any other desc the kernels for any alpha (tuning key nv_alpha_fixed):
 * prepare with the alpha the calls use, or they return ADASPLASH_ERROR_NOT_PREPARED. */
ADASPLASH_API adasplash_status adasplash_attention_prepare(adasplash_context *ctx,
                                                           const adasplash_attention_desc *desc);

/* out = entmax_alpha(scale * q k^T) v. saved: NULL for inference, else a buffer of saved_size bytes
 * that the backward reads. An inference call (saved NULL) of the entmax algorithm with q_len <=
 * the tuning's decode_max_q runs the split-KV decode path (the key range of every sequence and kv
 * head spread over many work-groups, tau solved on the kept scores, the splits' partial outputs
 * summed); with a saved buffer the fused passes run, whatever q_len. workspace: NULL (the library
 * allocates one per call) or a buffer of workspace_size bytes, not used concurrently by another
 * call. queue NULL: the context's queue. Arguments a call writes (here out, saved, workspace; in
 * the backward dq, dk, dv, dalpha and workspace) may not share bytes with another argument,
 * sub-buffers included: in-place use is refused with ADASPLASH_ERROR_INVALID_ARGUMENT. Tensors may
 * interleave in one buffer (packed QKV, or dQKV in the backward) as long as they do not start at
 * the same byte. Non-finite inputs: a row whose visible scores include NaN or +-inf gets NaN output
 * (and NaN dq and dalpha in the backward); a NaN or inf in k or v can also make NaN the outputs of
 * other rows whose query block shares its key tile, even where their probability of that key is 0.
 */
ADASPLASH_API adasplash_status adasplash_attention_forward(
    adasplash_context *ctx, const adasplash_attention_desc *desc, cl_command_queue queue, cl_mem q,
    cl_mem k, cl_mem v, cl_mem out, cl_mem saved, cl_mem workspace, cl_uint num_events_in_wait_list,
    const cl_event *event_wait_list, cl_event *event);

/* Gradients of a loss L given dout = dL/dout. dq, dk, dv are overwritten. dalpha (optional, float32
 * [q_heads]) receives dL/dalpha per query head summed over batch and rows; it needs the forward to
 * have run with ADASPLASH_ATTN_SAVE_ALPHA_GRAD. saved must come from the forward of the same desc.
 * With the fused backward (tuning key attn_bwd_fused=1, the portable path's default; nv_bwd_fused=1
 * on the NVIDIA tensor-core path) dq is summed with float atomics and may differ between runs in
 * its last bits; the split backward (attn_bwd_fused=0, the NVIDIA path's default) is bitwise
 * reproducible. */
ADASPLASH_API adasplash_status adasplash_attention_backward(
    adasplash_context *ctx, const adasplash_attention_desc *desc, cl_command_queue queue, cl_mem q,
    cl_mem k, cl_mem v, cl_mem out, cl_mem dout, cl_mem saved, cl_mem dq, cl_mem dk, cl_mem dv,
    cl_mem dalpha, cl_mem workspace, cl_uint num_events_in_wait_list,
    const cl_event *event_wait_list, cl_event *event);

typedef struct adasplash_attention_stats {
  size_t struct_size;
  double block_sparsity; /* skipped / visible tiles over all (batch, head) */
  unsigned long visible_tiles;
  unsigned long active_tiles;
  int max_sweeps;      /* refinement sweeps of the slowest row block */
  double mean_sweeps;  /* over row blocks that hold valid rows */
  int converged;       /* 1 if every row met the tolerance */
  double max_residual; /* max over rows of |sum(p) - 1| measured at the final tau */
  int tile_m, tile_n;  /* tile sizes the bitmap uses */
  /* The same share measured on 64x64 tiles (the convention of the AdaSplash-2 papers and
   * tools), derived from the bitmap when the tile divides 64; -1 otherwise. */
  double block_sparsity_64;
  /* Key tiles the threshold pass's refinement sweeps visited, summed over sweeps and (batch,
   * head): their cost relative to the dense sweep is refine_tiles / visible_tiles. (Added in
   * 0.3: a struct_size that ends before this field is accepted and this field not written.) */
  unsigned long refine_tiles;
} adasplash_attention_stats;

/* Reads statistics from a saved buffer written by the forward (blocking read on queue). */
ADASPLASH_API adasplash_status adasplash_attention_stats_read(adasplash_context *ctx,
                                                              const adasplash_attention_desc *desc,
                                                              cl_command_queue queue, cl_mem saved,
                                                              adasplash_attention_stats *stats);

/* Diagnostics from a saved buffer (blocking reads on queue; either output may be NULL):
 * tau [batch][q_heads][q_len] thresholds in the scaled space x = (alpha-1) * scale * q.k
 * (+inf for rows without visible keys, NaN for rows with non-finite scores). The saved state keeps
 * per row the max m of x and tau - m, so that rows far from zero keep full precision; tau here is
 * m + (tau - m) rounded once to float (its resolution is that of a float near |tau|). active
 * [batch][q_heads][ceil(q_len/tile)][ceil(kv_len/tile)] with 1 for tiles the kernels visit (tile as
 * in adasplash_attention_stats). Fused entmax algorithm only. */
ADASPLASH_API adasplash_status adasplash_attention_saved_read(adasplash_context *ctx,
                                                              const adasplash_attention_desc *desc,
                                                              cl_command_queue queue, cl_mem saved,
                                                              float *tau, unsigned char *active);

/* ---- Decode against a paged KV cache ------------------------------------------------------------
 *
 * Inference engines keep K and V in pages of page_size tokens: a pool of num_pages pages per
 * tensor, described by desc->k and desc->v as [num_pages, kv_heads, page_size, head_dim] tensors
 * (batch_stride = the page stride; zero strides mean that contiguous layout; a vLLM-style
 * [num_pages, page_size, kv_heads, head_dim] pool has seq_stride = kv_heads*head_dim, head_stride
 * = head_dim, batch_stride = page_size*kv_heads*head_dim). Key j of sequence b is row
 * j % page_size of page block_table[b][j / page_size]; sequence b has seq_lens[b] keys, so a batch
 * of sequences of different lengths decodes in one call. Queries are the last q_len positions
 * (right padding by desc->q_lens as in the forward; causal: query i sees keys
 * j <= i + seq_lens[b] - q_len_b). */
typedef struct adasplash_paged_kv {
  size_t struct_size; /* = sizeof(adasplash_paged_kv), set by adasplash_paged_kv_init */
  int page_size;      /* tokens per page: 16, 32, 64, 128 or 256 */
  int num_pages;      /* pages in each of the K and V pools, >= 1 */
  int max_blocks; /* columns of the block table, >= 1; desc->kv_len must be max_blocks*page_size */
  cl_mem block_table; /* int32 [batch, max_blocks]: the device copy the kernels read */
  cl_mem seq_lens;    /* int32 [batch]: the device copy the kernels read */
  /* The same contents in host memory, validated before anything is enqueued (the check reads
   * these host copies, not the device buffers, so the call never blocks): every length in
   * [0, max_blocks*page_size], and the pages of the blocks a sequence uses
   * (j < ceil(seq_lens[b]/page_size)) in [0, num_pages); unused entries are ignored. The device
   * copies must hold the same values when the kernels run; a page number outside the pool there
   * reads page 0 instead of memory outside the buffers. */
  const int32_t *block_table_host;
  const int32_t *seq_lens_host;
} adasplash_paged_kv;

ADASPLASH_API void adasplash_paged_kv_init(adasplash_paged_kv *kv);

/* Bytes of the workspace adasplash_attention_forward_paged needs (scores of the q_len rows against
 * max_blocks*page_size keys, and the partial outputs of the key splits). Like
 * adasplash_attention_workspace_size it also prepares (compiles when not yet) the kernels the
 * call runs: call it once before the first adasplash_attention_forward_paged of a dtype and head
 * dim (or use adasplash_warmup). The host copies of the table are not read here. */
ADASPLASH_API adasplash_status adasplash_attention_paged_workspace_size(
    const adasplash_context *ctx, const adasplash_attention_desc *desc,
    const adasplash_paged_kv *kv, size_t *bytes);

/* Inference forward (no saved state, no backward) of the entmax algorithm reading K and V through
 * the block table, on the split-KV decode path. desc->kv_lens must be NULL (kv->seq_lens replaces
 * it). Any q_len (a chunk of prefill too) whose kept scores, batch*q_heads*q_len*kv_len floats,
 * fit one allocation of the device (ADASPLASH_ERROR_UNSUPPORTED otherwise); the tuning's
 * decode_max_q only decides which path adasplash_attention_forward takes. Prepared by
 * adasplash_attention_paged_workspace_size or adasplash_warmup (ADASPLASH_ERROR_NOT_PREPARED
 * otherwise). workspace: NULL or paged_workspace_size bytes. Errors: a bad page_size or table entry
 * ADASPLASH_ERROR_INVALID_ARGUMENT; a negative length, a length above max_blocks*page_size or
 * kv_len != max_blocks*page_size ADASPLASH_ERROR_INVALID_SHAPE; pools or tables smaller than the
 * shapes need ADASPLASH_ERROR_BUFFER_TOO_SMALL. */
ADASPLASH_API adasplash_status adasplash_attention_forward_paged(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_paged_kv *kv,
    cl_command_queue queue, cl_mem q, cl_mem k_pages, cl_mem v_pages, cl_mem out, cl_mem workspace,
    cl_uint num_events_in_wait_list, const cl_event *event_wait_list, cl_event *event);

/* ---- Sequence parallelism: one sequence's keys split over devices ------------------------------
 *
 * Long sequences whose keys do not fit one device (or that several devices should share) are
 * split into shards: shard r holds every query row and the keys [kv_offset, kv_offset + kv_count)
 * of the global sequence (its K and V, and in the backward its dK and dV). The shards exchange
 * small per-row partial states through the caller's communicator (MPI, NCCL-style collectives,
 * or the library's merge for host arrays); the library never communicates itself. Every
 * exchange is an all-reduce of a flat float array with MAX (the row maxima) or SUM (everything
 * else), of the sizes adasplash_attention_shard_sizes reports (adasplash_shard_sizes).
 *
 * Forward, on every shard (same desc, shard differing only in its key range):
 *   1. adasplash_attention_shard_max        scores kept in work; row_max      -> all-reduce MAX
 *   2. adasplash_attention_shard_histogram  hist (anchored at the merged max) -> all-reduce SUM
 *   3. for round = 0, 1, ...:
 *        adasplash_attention_shard_refine   sums at the next tau              -> all-reduce SUM
 *      until adasplash_attention_shard_pending reports no pending row in the merged sums
 *      (usually 1-3 rounds; at most max(desc->max_iter, 32) + 1)
 *   4. adasplash_attention_shard_output     out, psum                         -> all-reduce SUM
 *      The merged out is the attention output, fp32 [batch, q_heads, q_len, head_dim] contiguous;
 *      the merged psum is sum(p) per row (1 within the tolerance; 0 for rows without keys).
 * Backward (after the forward, with the same work buffer):
 *   5. adasplash_attention_shard_backward_sums  grad_sums                     -> all-reduce SUM
 *   6. adasplash_attention_shard_backward       dk, dv of the shard's keys (complete, on the
 *      device), dq (partial, fp32 [batch, q_heads, q_len, head_dim])          -> all-reduce SUM
 *
 * Why it is exact: each shard's histogram window is anchored at the merged row max, so every
 * shard bins on the same grid and the windows sum into the histogram one pass over all keys would
 * give, hence the same certified bracket for tau. With tau fixed the probabilities of different
 * shards are independent: the output is the plain sum of the shards' P V, a refinement step needs
 * only the sums of f, f' and f'' terms, and the backward's delta = sum(s dp) / sum(s) (s =
 * p^(2-alpha), dp = dO.v) is a ratio of sums, so dK and dV are local and dQ is a sum. tau is
 * solved to min(desc->tolerance, 1e-6) on |sum(p) - 1| with at least 32 rounds allowed, as the
 * single-device decode path solves it, and p is normalised by the merged sum. Every shard runs
 * the same solver step on the same merged arrays: shards must use the same library and device
 * kind so that their solver states stay identical (they decide the rounds together through the
 * merged pending flags, so a mismatch cannot hang the loop, but tau could differ in its last
 * bits).
 *
 * Shapes: desc describes the global problem (kv_len = the whole sequence; causal masks use
 * global positions); desc->k and desc->v (and dk, dv) describe the shard's tensors, whose
 * sequence length is kv_count (zero strides: contiguous [batch, kv_heads, kv_count, head_dim]).
 * q, dout are the full [batch, q_heads, q_len, head_dim] tensors. An empty shard (kv_count 0)
 * takes part in every exchange; its k, v, dk, dv may be NULL. Not supported here (UNSUPPORTED):
 * desc->alpha_buf, q_lens, kv_lens, algorithms other than ADASPLASH_ATTN_ENTMAX, the alpha
 * gradient. The shard's scores are kept: rows x kv_count floats (rows = batch*q_heads*q_len), so
 * this suits few query rows per call (decode, chunked prefill) against long key ranges.
 *
 * The calls synchronise: each enqueues its kernels on queue (NULL: the context's) after the
 * commands already there (use an in-order queue, or finish what produces q, k, v and dout), reads
 * its partial arrays back to the host and returns when they are there. work is the shard's device
 * buffer of work_bytes: it carries the scores, p and the solver state from step 1 to step 6 and
 * must not be used by anything else meanwhile. The calls check their order (a step out of
 * sequence is ADASPLASH_ERROR_INVALID_ARGUMENT) and the merged arrays they are given: a merged
 * max below this shard's own max, NaN or +inf in it, negative or non-integral merged counts, a
 * histogram whose count contradicts the merged max, or a round number out of sequence are refused
 * with ADASPLASH_ERROR_INVALID_ARGUMENT before anything is written. Every host array comes with
 * its length in floats, which must be the one adasplash_attention_shard_sizes reports
 * (ADASPLASH_ERROR_INVALID_ARGUMENT otherwise); a work buffer smaller than work_bytes is
 * ADASPLASH_ERROR_BUFFER_TOO_SMALL. */
typedef struct adasplash_shard {
  size_t struct_size; /* = sizeof(adasplash_shard), set by adasplash_shard_init */
  int kv_offset;      /* global position of the shard's first key, >= 0 */
  int kv_count;       /* keys in the shard, >= 0; kv_offset + kv_count <= desc->kv_len */
} adasplash_shard;

ADASPLASH_API void adasplash_shard_init(adasplash_shard *shard);

/* The arrays of the protocol; each is float, row-major, rows = batch*q_heads*q_len rows. */
typedef enum adasplash_shard_array {
  ADASPLASH_SHARD_MAX = 0,  /* [rows]: row max of z = scale q.k (-inf: no key); reduce MAX */
  ADASPLASH_SHARD_HIST = 1, /* [rows][hist_per_row]: per bin counts, sums, sums of squares of
                               the in-bin offsets, then valid and non-finite counts; SUM */
  ADASPLASH_SHARD_SUMS = 2, /* [rows][sums_per_row]: f-terms at tau, f at the bracket's lower
                               end, then 1 where the shard still refines the row; SUM */
  ADASPLASH_SHARD_OUT = 3,  /* [rows][head_dim]: partial output sum p v; SUM */
  ADASPLASH_SHARD_PSUM = 4, /* [rows]: partial sum of p; SUM */
  ADASPLASH_SHARD_GRAD = 5, /* [rows][grad_per_row]: backward row sums; SUM */
  ADASPLASH_SHARD_DQ = 6    /* [rows][head_dim]: partial dq; SUM */
} adasplash_shard_array;

typedef struct adasplash_shard_sizes {
  size_t struct_size; /* set to sizeof(adasplash_shard_sizes) before the call */
  size_t rows;        /* batch * q_heads * q_len */
  size_t head_dim;
  size_t hist_per_row, sums_per_row, grad_per_row;
  size_t count[7];   /* floats of each array, indexed by adasplash_shard_array */
  size_t work_bytes; /* the shard's device work buffer */
} adasplash_shard_sizes;

/* Sizes of the arrays and of the work buffer for desc and shard. Also prepares (compiles when not
 * yet) the kernels the shard calls run; call it before the first shard call of a dtype and head
 * dim. */
ADASPLASH_API adasplash_status adasplash_attention_shard_sizes(adasplash_context *ctx,
                                                               const adasplash_attention_desc *desc,
                                                               const adasplash_shard *shard,
                                                               adasplash_shard_sizes *sizes);

/* Step 1: scores of every query row against the shard's keys (kept in work) and row_max[rows],
 * the largest finite visible score of each row in this shard (-inf where none). */
ADASPLASH_API adasplash_status adasplash_attention_shard_max(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem q, cl_mem k, cl_mem work, float *row_max, size_t max_count);

/* Step 2: merged_max is the MAX all-reduce of every shard's row_max. hist gets this shard's
 * histogram windows anchored at the merged max. */
ADASPLASH_API adasplash_status adasplash_attention_shard_histogram(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem work, const float *merged_max, size_t max_count, float *hist,
    size_t hist_count);

/* Step 3, round 0, 1, 2, ...: round 0 starts tau from merged_hist (the SUM all-reduce of every
 * shard's hist; sums is only written); round r > 0 takes one solver step from sums as the SUM
 * all-reduce of the shards' sums of round r - 1 (merged_hist may then be NULL), and overwrites
 * sums with this shard's sums at the next tau. Stop when adasplash_attention_shard_pending finds no
 * pending row in the merged sums. */
ADASPLASH_API adasplash_status adasplash_attention_shard_refine(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem work, int round, const float *merged_hist, size_t hist_count,
    float *sums, size_t sums_count);

/* *pending = the rows whose merged sums (SUM all-reduce of a refine round's sums) ask for another
 * round. Host only. */
ADASPLASH_API adasplash_status adasplash_attention_shard_pending(const adasplash_shard_sizes *sizes,
                                                                 const float *merged_sums,
                                                                 size_t *pending);

/* Step 4, after the last refine round: p = entmax in place in work (the backward reads it), out =
 * this shard's sum p v per row (fp32 [rows][head_dim]) and psum = its sum p per row. */
ADASPLASH_API adasplash_status adasplash_attention_shard_output(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem v, cl_mem work, float *out, size_t out_count, float *psum,
    size_t psum_count);

/* Step 5: dp = dout . v for the shard's keys (kept in work) and grad_sums, this shard's backward
 * row sums (sum s, sum s dp and the alpha-gradient sums sum p dp, sum h dp, sum h). */
ADASPLASH_API adasplash_status adasplash_attention_shard_backward_sums(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem v, cl_mem dout, cl_mem work, float *grad_sums,
    size_t grad_count);

/* Step 6: merged_grad_sums is the SUM all-reduce of every shard's grad_sums. Writes dk and dv of
 * the shard's keys (desc->k's and desc->v's layouts, desc->dtype; complete) and dq, this shard's
 * partial dL/dq (fp32 [rows][head_dim]). */
ADASPLASH_API adasplash_status adasplash_attention_shard_backward(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const adasplash_shard *shard,
    cl_command_queue queue, cl_mem q, cl_mem k, cl_mem dout, cl_mem work,
    const float *merged_grad_sums, size_t grad_count, cl_mem dk, cl_mem dv, float *dq,
    size_t dq_count);

/* Host merge of two shards' arrays of one kind: dst = max(dst, src) for ADASPLASH_SHARD_MAX,
 * dst + src otherwise, over sizes->count[array] floats (what an all-reduce computes). */
ADASPLASH_API adasplash_status adasplash_shard_merge(const adasplash_shard_sizes *sizes,
                                                     adasplash_shard_array array, float *dst,
                                                     const float *src);

/* Host-memory variants: tensors in host memory laid out as desc says, in desc->dtype. alpha_buf,
 * q_lens and kv_lens must be NULL in desc; alpha (float [q_heads]), q_lens and kv_lens (int
 * [batch]) may be host arrays instead (validated: lengths must lie in [0, len]). stats may be NULL.
 * The backward runs the forward itself (it needs its saved state). */
ADASPLASH_API adasplash_status adasplash_attention_forward_host(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const void *q, const void *k,
    const void *v, void *out, const float *alpha, const int *q_lens, const int *kv_lens,
    adasplash_attention_stats *stats);
ADASPLASH_API adasplash_status adasplash_attention_backward_host(
    adasplash_context *ctx, const adasplash_attention_desc *desc, const void *q, const void *k,
    const void *v, const void *dout, void *out, void *dq, void *dk, void *dv, float *dalpha,
    const float *alpha, const int *q_lens, const int *kv_lens);

#ifdef __cplusplus
}
#endif

#endif /* ADASPLASH_H */
