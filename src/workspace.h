/*
 * workspace.h - the saved and workspace buffers of an attention call: the caller's, checked against
 * the bytes the call needs, or (a workspace, and the state the dense baseline keeps) a temporary
 * the call makes and releases itself; and the sections of those buffers as sub-buffers.
 */
#ifndef ASP_WORKSPACE_H
#define ASP_WORKSPACE_H

#include "internal.h"

typedef enum asp_scratch_kind {
  ASP_SCRATCH_SAVED = 0, /* forward -> backward state: too small is ADASPLASH_ERROR_INVALID_SAVED */
  ASP_SCRATCH_WORKSPACE  /* scratch of one call: too small is ADASPLASH_ERROR_BUFFER_TOO_SMALL */
} asp_scratch_kind;

typedef struct asp_scratch {
  cl_mem mem;   /* what the call uses: the caller's buffer or owned */
  cl_mem owned; /* a temporary made for this call, or NULL */
} asp_scratch;

/* Checks the caller's buffer of kind for fn (given must not be NULL). */
adasplash_status asp_scratch_check(const adasplash_context *ctx, const char *fn,
                                   asp_scratch_kind kind, cl_mem given, size_t need);
/* The caller's buffer (given, checked) or, when given is NULL, a temporary of need bytes. */
adasplash_status asp_scratch_get(const adasplash_context *ctx, const char *fn,
                                 asp_scratch_kind kind, cl_mem given, size_t need,
                                 asp_scratch *out);
void asp_scratch_release(asp_scratch *s);

/* Bytes [offset, offset + size) of buffer; size 0 (or buffer NULL) means no view. */
typedef struct asp_section {
  cl_mem buffer;
  size_t offset, size;
} asp_section;

/* views[i] = a sub-buffer for sections[i] (NULL where the section is empty). On failure the views
 * made so far are released and all are NULL. */
adasplash_status asp_views_make(const adasplash_context *ctx, const asp_section *sections,
                                size_t count, cl_mem *views);
void asp_views_release(cl_mem *views, size_t count);

#endif /* ASP_WORKSPACE_H */
