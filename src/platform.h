/*
 * platform.h - the few operating-system services the library needs, behind one small interface:
 * mutexes, threads, a monotonic clock, environment lookup and bounded string helpers.
 */
#ifndef ASP_PLATFORM_H
#define ASP_PLATFORM_H

#include <stddef.h>

#if defined(_WIN32)
#include <windows.h>
typedef CRITICAL_SECTION asp_mutex;
typedef HANDLE asp_thread_handle;
#define ASP_THREAD_LOCAL __declspec(thread)
#else
#include <pthread.h>
typedef pthread_mutex_t asp_mutex;
typedef pthread_t asp_thread_handle;
#define ASP_THREAD_LOCAL _Thread_local
#endif

/* A thread running fn(arg); started and joined once. */
typedef struct asp_thread {
  asp_thread_handle handle;
  void (*fn)(void *);
  void *arg;
} asp_thread;

int asp_mutex_init(asp_mutex *m);
void asp_mutex_destroy(asp_mutex *m);
void asp_mutex_lock(asp_mutex *m);
void asp_mutex_unlock(asp_mutex *m);

/* Starts fn(arg) on a new thread; 0 on success (t must stay in place until joined). */
int asp_thread_start(asp_thread *t, void (*fn)(void *), void *arg);
void asp_thread_join(asp_thread *t);

/* Seconds from an arbitrary origin, monotonic. */
double asp_now_seconds(void);

/* getenv that treats unset and empty alike: returns NULL for both. */
const char *asp_getenv(const char *name);

/* Bounded copy that always NUL-terminates (when size > 0); returns 1 if truncated. */
int asp_strlcpy(char *dst, const char *src, size_t size);
/* Case-insensitive substring search (ASCII). */
int asp_contains_nocase(const char *haystack, const char *needle);
int asp_equals_nocase(const char *a, const char *b);

#endif /* ASP_PLATFORM_H */
