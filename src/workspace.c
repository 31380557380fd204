/*
 * workspace.c - saved and workspace buffers of a call and their sections (see workspace.h).
 */
#include "workspace.h"

#include <string.h>

adasplash_status asp_scratch_check(const adasplash_context *ctx, const char *fn,
                                   asp_scratch_kind kind, cl_mem given, size_t need) {
  const int saved = kind == ASP_SCRATCH_SAVED;
  adasplash_status st = asp_check_buffer(ctx, given, saved ? "saved" : "workspace", need);
  if (saved && st == ADASPLASH_ERROR_BUFFER_TOO_SMALL)
    return asp_fail(ctx, ADASPLASH_ERROR_INVALID_SAVED,
                    "%s: saved buffer is smaller than adasplash_attention_saved_size() (%zu bytes)",
                    fn, need);
  return st;
}

adasplash_status asp_scratch_get(const adasplash_context *ctx, const char *fn,
                                 asp_scratch_kind kind, cl_mem given, size_t need,
                                 asp_scratch *out) {
  memset(out, 0, sizeof *out);
  if (given) {
    adasplash_status st = asp_scratch_check(ctx, fn, kind, given, need);
    if (st == ADASPLASH_SUCCESS) out->mem = given;
    return st;
  }
  adasplash_status st = asp_create_buffer(ctx, need, &out->owned);
  out->mem = out->owned;
  return st;
}

void asp_scratch_release(asp_scratch *s) {
  if (s->owned) clReleaseMemObject(s->owned);
  memset(s, 0, sizeof *s);
}

adasplash_status asp_views_make(const adasplash_context *ctx, const asp_section *sections,
                                size_t count, cl_mem *views) {
  memset(views, 0, count * sizeof *views);
  adasplash_status st = ADASPLASH_SUCCESS;
  for (size_t i = 0; i < count && st == ADASPLASH_SUCCESS; ++i)
    if (sections[i].buffer && sections[i].size)
      st = asp_sub_buffer(ctx, sections[i].buffer, sections[i].offset, sections[i].size, &views[i]);
  if (st != ADASPLASH_SUCCESS) asp_views_release(views, count);
  return st;
}

void asp_views_release(cl_mem *views, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (views[i]) clReleaseMemObject(views[i]);
    views[i] = NULL;
  }
}
