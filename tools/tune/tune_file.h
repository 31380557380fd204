/*
 * tune_file.h - the tuned-parameters file on disk: atomic writing (a temporary file renamed over
 * the target, missing directories created), reading, and looking up keys in the library's
 * "key=value" text format (items separated by ',' or newlines, '#' starts a comment).
 */
#ifndef ADASPLASH_TUNE_FILE_H
#define ADASPLASH_TUNE_FILE_H

#include <stddef.h>

/* Returns 0, or -1 with the reason in why. */
int tune_file_write(const char *path, const char *text, char *why, size_t why_size);
/* Reads at most size - 1 bytes into text (NUL-terminated). Returns 0, or -1 with why. */
int tune_file_read(const char *path, char *text, size_t size, char *why, size_t why_size);

/* Calls fn(key, value, arg) for every key=value item of text, in order; items that are not
 * key=<integer> are passed with ok = 0. */
typedef void (*tune_item_fn)(const char *key, long value, int ok, void *arg);
void tune_text_items(const char *text, tune_item_fn fn, void *arg);
/* The last value of key in text. Returns 1 when found. */
int tune_text_value(const char *text, const char *key, long *value);

#endif /* ADASPLASH_TUNE_FILE_H */
