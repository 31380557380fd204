/*
 * attention_common.h - what the attention algorithms (fused entmax, softmax flash baseline, dense
 * CLBlast baseline) share on the host: the validated problem, resolved tensor layouts (the
 * host-kernel ABI structs of cl/abi.h), the tile plan, the kernels' by-value parameters, and
 * argument checks.
 */
#ifndef ASP_ATTENTION_COMMON_H
#define ASP_ATTENTION_COMMON_H

#include "abi.h" /* cl/abi.h: the structs, indices and local-memory formulas kernels share */
#include "internal.h"
#include "launch.h"
#include "variant.h"

/* A validated attention problem. */
typedef struct asp_attn_problem {
  adasplash_attention_desc d; /* copy with defaults resolved (scale, tolerance, max_iter) */
  asp_layout q, k, v, o;      /* resolved layouts (elements) */
  size_t q_bytes, k_bytes, v_bytes, o_bytes; /* extents in bytes */
  size_t esize;
} asp_attn_problem;

/* Local memory the planners leave unplanned: a compiler may add a few bytes of its own to a
 * kernel's arrays (NVIDIA's adds 16 to attn_tau). With $ADASPLASH_CHECK_LOCAL_MEM a kernel must
 * report its formula's bytes plus less than this. */
#define ASP_LOCAL_RESERVE 256

/* Local memory (bytes) a plan may use on the context's device: the tuning's less the reserve. */
size_t asp_attn_local_avail(const asp_tuning *tu);
/* With $ADASPLASH_CHECK_LOCAL_MEM set (tests): INTERNAL when kernel `name` of `file` reports
 * `used` bytes of local memory, below its formula's `want` or above it by the reserve or more
 * (the host plans with the formulas). Success otherwise, or when the variable is unset. */
adasplash_status asp_check_local_mem(const adasplash_context *ctx, const char *name,
                                     const char *file, size_t used, size_t want);

/* ctx and desc are there and desc->struct_size is this library's (the first checks of every
 * attention call). */
adasplash_status asp_attn_check_desc_present(const adasplash_context *ctx,
                                             const adasplash_attention_desc *desc, const char *fn);
/* Validates desc (every field, layouts included) and fills pr. fn names the caller. */
adasplash_status asp_attn_check_desc(const adasplash_context *ctx,
                                     const adasplash_attention_desc *desc, const char *fn,
                                     asp_attn_problem *pr);
/* Resolves one tensor's layout (zero strides: contiguous [batch, heads, len, head_dim]) and checks
 * that its (batch, head, row) slices never overlap; *bytes gets its extent. name: for messages. */
adasplash_status asp_layout_resolve(const adasplash_context *ctx, const char *fn, const char *name,
                                    const adasplash_layout *in, int batch, int heads, int len,
                                    int head_dim, size_t esize, asp_layout *out, size_t *bytes);
/* Checks the input tensors q, k, v (and out/dout as "out"-shaped tensors, names given). */
adasplash_status asp_attn_check_tensor(const adasplash_context *ctx, const asp_attn_problem *pr,
                                       cl_mem buf, const char *name, char which);
/* The checks both enqueueing calls start with: desc (into pr), the queue, the wait list, the
 * optional small buffers of desc, then q, k, v and out. */
adasplash_status asp_attn_check_call(const adasplash_context *ctx,
                                     const adasplash_attention_desc *desc, const char *fn,
                                     cl_command_queue queue, cl_uint nwait, const cl_event *wait,
                                     cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                     asp_attn_problem *pr);

/* The tile plan (out->attn) of family for pr: its dtype, head dim and, for the entmax programs,
 * its alpha class (on the NVIDIA path a scalar alpha of 1.5 or 2 has programs of its own, derived
 * from the desc here, so prepare and enqueue always agree). Fits the tuning to the device, builds
 * the program and checks the kernels' limits; stored in the context's plans. */
adasplash_status asp_attn_prepare_plan(adasplash_context *ctx, asp_program_family family,
                                       const asp_attn_problem *pr, asp_plan *out);
/* With the tuning's nv_build_threads on the NVIDIA path: compiles the programs a cold prepare of
 * pr will ask for, each on its own thread, so that the planners that follow find them in the
 * context's program cache. Their plans follow from the tuning without a build; where a compiled
 * kernel refuses its work-group the planners build another program, as they would without this.
 * Does nothing when pr's forward plan exists. */
void asp_attn_prebuild(adasplash_context *ctx, const asp_attn_problem *pr);
/* Looks up the plan without building (NOT_PREPARED if absent). */
adasplash_status asp_attn_find_plan(adasplash_context *ctx, asp_program_family family,
                                    const asp_attn_problem *pr, asp_plan *out);

/* The head dim a program is compiled for: the next of {16, 32, 64, 96, 128, 192, 256}. */
int asp_attn_padded_head_dim(int head_dim);
const int *asp_attn_head_dim_sizes(size_t *count);

/* The geometry for tiles of side tile and nseg row segments per block. */
asp_geom asp_attn_geom(const asp_attn_problem *pr, int tile, int nseg);
/* The by-value kernel parameters of a call on plan (use_hist, qscale, write_t left 0). */
asp_attn_args asp_attn_make_args(const asp_attn_problem *pr, const asp_plan *plan);
/* The effective logit scale (desc->scale or 1/sqrt(head_dim)). */
float asp_attn_scale(const adasplash_attention_desc *d);

/* adasplash_attention_stats sizes a caller may pass: today's, or the one before refine_tiles. */
static inline int asp_attn_stats_size_ok(size_t struct_size) {
  return struct_size == sizeof(adasplash_attention_stats) ||
         struct_size == offsetof(adasplash_attention_stats, refine_tiles);
}

#endif /* ASP_ATTENTION_COMMON_H */
