/*
 * platform.c - mutexes, threads, monotonic clock, environment and string helpers (see platform.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "platform.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(_WIN32)
int asp_mutex_init(asp_mutex *m) {
  InitializeCriticalSection(m);
  return 0;
}
void asp_mutex_destroy(asp_mutex *m) {
  DeleteCriticalSection(m);
}
void asp_mutex_lock(asp_mutex *m) {
  EnterCriticalSection(m);
}
void asp_mutex_unlock(asp_mutex *m) {
  LeaveCriticalSection(m);
}
static DWORD WINAPI asp_thread_main(LPVOID p) {
  asp_thread *t = (asp_thread *)p;
  t->fn(t->arg);
  return 0;
}
int asp_thread_start(asp_thread *t, void (*fn)(void *), void *arg) {
  t->fn = fn;
  t->arg = arg;
  t->handle = CreateThread(NULL, 0, asp_thread_main, t, 0, NULL);
  return t->handle ? 0 : -1;
}
void asp_thread_join(asp_thread *t) {
  WaitForSingleObject(t->handle, INFINITE);
  CloseHandle(t->handle);
}
double asp_now_seconds(void) {
  LARGE_INTEGER f, c;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&c);
  return (double)c.QuadPart / (double)f.QuadPart;
}
#else
int asp_mutex_init(asp_mutex *m) {
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) return -1;
  /* Recursive: a public call holding the context lock may record an error, which locks again. */
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  int rc = pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}
void asp_mutex_destroy(asp_mutex *m) {
  pthread_mutex_destroy(m);
}
void asp_mutex_lock(asp_mutex *m) {
  pthread_mutex_lock(m);
}
void asp_mutex_unlock(asp_mutex *m) {
  pthread_mutex_unlock(m);
}
static void *asp_thread_main(void *p) {
  asp_thread *t = (asp_thread *)p;
  t->fn(t->arg);
  return NULL;
}
int asp_thread_start(asp_thread *t, void (*fn)(void *), void *arg) {
  t->fn = fn;
  t->arg = arg;
  return pthread_create(&t->handle, NULL, asp_thread_main, t) == 0 ? 0 : -1;
}
void asp_thread_join(asp_thread *t) {
  pthread_join(t->handle, NULL);
}
double asp_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

const char *asp_getenv(const char *name) {
  const char *v = getenv(name);
  return (v && v[0]) ? v : NULL;
}

int asp_strlcpy(char *dst, const char *src, size_t size) {
  if (size == 0) return 1;
  size_t n = strlen(src);
  if (n >= size) {
    memcpy(dst, src, size - 1);
    dst[size - 1] = '\0';
    return 1;
  }
  memcpy(dst, src, n + 1);
  return 0;
}

int asp_contains_nocase(const char *haystack, const char *needle) {
  size_t hn = strlen(haystack), nn = strlen(needle);
  if (nn == 0) return 1;
  for (size_t i = 0; i + nn <= hn; ++i) {
    size_t j = 0;
    while (j < nn && tolower((unsigned char)haystack[i + j]) == tolower((unsigned char)needle[j]))
      ++j;
    if (j == nn) return 1;
  }
  return 0;
}

int asp_equals_nocase(const char *a, const char *b) {
  while (*a && *b) {
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    ++a;
    ++b;
  }
  return *a == *b;
}
