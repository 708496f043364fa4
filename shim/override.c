/* override.c - the only file defining C library names.  Each is a thin
 * forwarder to alloc.c; the __libc_* aliases catch programs and libraries
 * that call glibc's internal entry points by name. */

#include <stddef.h>
#include "shim.h"

#define ALIAS(name) __attribute__((alias(#name), visibility("default")))

MS_EXPORT void *malloc(size_t n)                { return _ms_malloc(n); }
MS_EXPORT void  free(void *p)                   { _ms_free(p); }
MS_EXPORT void *calloc(size_t n, size_t m)      { return _ms_calloc(n, m); }
MS_EXPORT void *realloc(void *p, size_t n)      { return _ms_realloc(p, n); }
MS_EXPORT void *reallocarray(void *p, size_t n, size_t m) { return _ms_reallocarray(p, n, m); }
MS_EXPORT int   posix_memalign(void **out, size_t a, size_t n) { return _ms_posix_memalign(out, a, n); }
MS_EXPORT void *aligned_alloc(size_t a, size_t n) { return _ms_aligned_alloc(a, n); }
MS_EXPORT void *memalign(size_t a, size_t n)    { return _ms_memalign(a, n); }
MS_EXPORT void *valloc(size_t n)                { return _ms_valloc(n); }
MS_EXPORT void *pvalloc(size_t n)               { return _ms_pvalloc(n); }
MS_EXPORT size_t malloc_usable_size(void *p)    { return _ms_usable_size(p); }
MS_EXPORT int   malloc_trim(size_t pad)         { return _ms_trim(pad); }
MS_EXPORT void  cfree(void *p)                  { _ms_free(p); }

void *__libc_malloc(size_t n)                   ALIAS(malloc);
void  __libc_free(void *p)                      ALIAS(free);
void *__libc_calloc(size_t n, size_t m)         ALIAS(calloc);
void *__libc_realloc(void *p, size_t n)         ALIAS(realloc);
void *__libc_memalign(size_t a, size_t n)       ALIAS(memalign);
void *__libc_valloc(size_t n)                   ALIAS(valloc);
void *__libc_pvalloc(size_t n)                  ALIAS(pvalloc);
