/*
 * kernels_embedded.h - the table of OpenCL programs embedded at build time by
 * cmake/EmbedKernels.cmake (each one self-contained: its #includes are already resolved).
 */
#ifndef ASP_KERNELS_EMBEDDED_H
#define ASP_KERNELS_EMBEDDED_H

typedef struct asp_embedded_program {
  const char *file;   /* entry file name in cl/, e.g. "attention.cl" */
  const char *text;   /* NUL-terminated source */
  unsigned length;    /* bytes, without the NUL */
  const char *sha256; /* hex digest of text, computed at build time */
} asp_embedded_program;

extern const asp_embedded_program asp_embedded_programs[];
extern const unsigned asp_embedded_program_count;

#endif /* ASP_KERNELS_EMBEDDED_H */
