/* override.c - the only file defining C library names.  Each is a thin
 * forwarder: to track.c while tracking is on, else straight to alloc.c.
 * Tracking gets the call site: the return address into the program and the
 * program's stack pointer at the call (the key of the stack cache).
 * The __libc_* aliases catch code that calls glibc's entry points by name. */
#include <stddef.h>
#include "shim.h"

#define ALIAS(name) __attribute__((alias(#name), visibility("default")))
#define TRACKING    MS_UNLIKELY(_ms_track_on)
#define SITE        (&(ms_site_t){ (uintptr_t)__builtin_return_address(0), \
                                   (uintptr_t)__builtin_frame_address(0) + 16 })

MS_EXPORT void *malloc(size_t n)
{ return TRACKING ? _ms_tracked_malloc(n, SITE) : _ms_malloc(n); }

MS_EXPORT void free(void *p)
{ if (TRACKING) _ms_tracked_free(p, SITE); else _ms_free(p); }

MS_EXPORT void *calloc(size_t n, size_t m)
{ return TRACKING ? _ms_tracked_calloc(n, m, SITE) : _ms_calloc(n, m); }

MS_EXPORT void *realloc(void *p, size_t n)
{ return TRACKING ? _ms_tracked_realloc(p, n, SITE) : _ms_realloc(p, n); }

MS_EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) return _ms_reallocarray(p, n, m);  /* ENOMEM */
    return TRACKING ? _ms_tracked_realloc(p, total, SITE) : _ms_realloc(p, total);
}

MS_EXPORT int posix_memalign(void **out, size_t a, size_t n)
{ return TRACKING ? _ms_tracked_posix_memalign(out, a, n, SITE) : _ms_posix_memalign(out, a, n); }

MS_EXPORT void *aligned_alloc(size_t a, size_t n)
{ return TRACKING ? _ms_tracked_memalign(a, n, SITE) : _ms_aligned_alloc(a, n); }

MS_EXPORT void *memalign(size_t a, size_t n)
{ return TRACKING ? _ms_tracked_memalign(a, n, SITE) : _ms_memalign(a, n); }

MS_EXPORT void *valloc(size_t n)
{ return TRACKING ? _ms_tracked_valloc(n, SITE) : _ms_valloc(n); }

MS_EXPORT void *pvalloc(size_t n)
{ return TRACKING ? _ms_tracked_pvalloc(n, SITE) : _ms_pvalloc(n); }

MS_EXPORT int dlclose(void *handle) { return _ms_dlclose(handle); }   /* modules.c */

MS_EXPORT size_t malloc_usable_size(void *p) { return _ms_usable_size(p); }
MS_EXPORT int    malloc_trim(size_t pad)     { return _ms_trim(pad); }
MS_EXPORT void   cfree(void *p)              { free(p); }

void *__libc_malloc(size_t n)                   ALIAS(malloc);
void  __libc_free(void *p)                      ALIAS(free);
void *__libc_calloc(size_t n, size_t m)         ALIAS(calloc);
void *__libc_realloc(void *p, size_t n)         ALIAS(realloc);
void *__libc_memalign(size_t a, size_t n)       ALIAS(memalign);
void *__libc_valloc(size_t n)                   ALIAS(valloc);
void *__libc_pvalloc(size_t n)                  ALIAS(pvalloc);
