/* shim.h - prototypes shared between the files of shim/, grouped by the file
 * that defines them.  Everything here is hidden in libmemshim.so. */
#ifndef MS_SHIM_H
#define MS_SHIM_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>
#include "types.h"

/* ---- prim_linux.c: the only file making raw system calls ---------------- */
MS_HIDDEN void  *_ms_os_map(size_t size);                 /* NULL on failure */
MS_HIDDEN void  *_ms_os_map_aligned(size_t size, size_t align);
MS_HIDDEN void   _ms_os_unmap(void *p, size_t size);
MS_HIDDEN void  *_ms_os_remap(void *p, size_t old_size, size_t new_size); /* may move */
MS_HIDDEN void   _ms_os_purge(void *p, size_t size);      /* MADV_DONTNEED */
MS_HIDDEN bool   _ms_os_readable(const void *p, size_t size);
MS_HIDDEN int    _ms_os_gettid(void);
MS_HIDDEN ssize_t _ms_os_write(int fd, const void *buf, size_t n);
MS_HIDDEN uint64_t _ms_os_now_ns(void);
MS_HIDDEN bool   _ms_os_secure(void);                     /* AT_SECURE: setuid/setgid */
MS_HIDDEN ssize_t _ms_os_read_file(const char *path, char *buf, size_t cap);
MS_HIDDEN uint64_t _ms_os_status_kb(const char *status, const char *key);

/* ---- segment.c: segments, pages, the ownership bitmap ------------------ */
MS_HIDDEN void           _ms_segment_init(void);
MS_HIDDEN ms_page_t     *_ms_page_alloc(unsigned npages, uint8_t cls); /* segment lock inside */
MS_HIDDEN void           _ms_page_free(ms_page_t *pg);
MS_HIDDEN void           _ms_segment_purge_all(void);
MS_HIDDEN void           _ms_segment_lock(void);
MS_HIDDEN void           _ms_segment_unlock(bool child);
typedef struct ms_segment_stat_s {
    uint64_t segments, mapped, mapped_total, unmapped_total, dirty, free_pages_bytes;
} ms_segment_stat_t;
MS_HIDDEN void           _ms_segment_stats(ms_segment_stat_t *out);
MS_HIDDEN extern uint64_t *_ms_seg_bitmap;

/* Bytes out of the central lists and huge blocks live (thread caches
 * included), and their high-water mark: updated off the fast path only. */
MS_HIDDEN extern uint64_t _ms_heap_out, _ms_heap_peak;
static inline void _ms_heap_account(int64_t delta)
{
    uint64_t now = __atomic_add_fetch(&_ms_heap_out, (uint64_t)delta, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&_ms_heap_peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&_ms_heap_peak, &peak, now, true,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static inline ms_segment_t *_ms_segment_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (MS_UNLIKELY(a >> MS_ADDR_BITS)) return NULL;
    uintptr_t idx = a >> MS_SEGMENT_SHIFT;
    if (!(__atomic_load_n(&_ms_seg_bitmap[idx >> 6], __ATOMIC_RELAXED) >> (idx & 63) & 1))
        return NULL;
    return (ms_segment_t *)(a & ~(uintptr_t)MS_SEGMENT_MASK);
}
static inline unsigned _ms_page_index(const ms_segment_t *s, const void *p)
{
    return (unsigned)(((uintptr_t)p - (uintptr_t)s) >> MS_PAGE_SHIFT);
}
static inline ms_page_t *_ms_page_of(ms_segment_t *s, const void *p)
{
    return &s->pages[s->span_head[_ms_page_index(s, p)]];
}

/* ---- pool.c: size classes and the central lists ------------------------- */
typedef struct ms_class_s {
    uint32_t size;        /* block size */
    uint16_t npages;      /* pages per span */
    uint16_t limit;       /* thread cache limit (blocks) */
    uint16_t batch;       /* blocks moved per refill/flush */
    uint32_t capacity;    /* blocks per span */
    uint64_t recip;       /* ceil(2^42 / size): offset -> block index */
} ms_class_t;

MS_HIDDEN extern ms_class_t _ms_classes[MS_NCLASSES];
MS_HIDDEN extern uint8_t    _ms_small_class[MS_SMALL_TABLE_MAX / MS_ALIGN + 1];
MS_HIDDEN void     _ms_classes_init(void);
MS_HIDDEN unsigned _ms_class_of(size_t n);              /* n <= MS_MAX_SMALL */
MS_HIDDEN unsigned _ms_central_take(unsigned cls, ms_block_t **head, ms_block_t **tail, unsigned want);
MS_HIDDEN void     _ms_central_give(unsigned cls, ms_block_t *head, unsigned n);
MS_HIDDEN void     _ms_central_lock_all(void);
MS_HIDDEN void     _ms_central_unlock_all(bool child);
MS_HIDDEN bool     _ms_block_valid(ms_segment_t *s, const void *p, unsigned *cls_out);
MS_HIDDEN bool     _ms_central_holds(unsigned cls, const void *p);

typedef struct ms_class_stat_s {
    uint64_t spans;        /* spans (pools) in use */
    uint64_t capacity;     /* blocks those spans hold */
    uint64_t central_free; /* blocks free in the central lists */
} ms_class_stat_t;
MS_HIDDEN void _ms_central_stats(ms_class_stat_t out[MS_NCLASSES]);

static inline unsigned _ms_class_fast(size_t n)
{
    return n <= MS_SMALL_TABLE_MAX ? _ms_small_class[(n + MS_ALIGN - 1) / MS_ALIGN]
                                   : _ms_class_of(n);
}

/* ---- huge.c: requests above MS_MAX_SMALL -------------------------------- */
MS_HIDDEN void   *_ms_huge_alloc(size_t n, size_t align, bool zero);
MS_HIDDEN bool    _ms_huge_free(void *p);                 /* false: not a huge block */
MS_HIDDEN size_t  _ms_huge_usable(const void *p);         /* 0: not a huge block */
MS_HIDDEN void   *_ms_huge_realloc(void *p, size_t n);    /* NULL with errno on failure */
MS_HIDDEN void    _ms_huge_trim(void);
MS_HIDDEN void    _ms_huge_lock(void);
MS_HIDDEN void    _ms_huge_unlock(bool child);
typedef struct ms_huge_stat_s { uint64_t blocks, bytes, mapped, cached; } ms_huge_stat_t;
MS_HIDDEN void    _ms_huge_stats(ms_huge_stat_t *out);

/* ---- tcache.c: per-thread caches --------------------------------------- */
MS_HIDDEN extern __thread ms_tcache_t *_ms_tc
    __attribute__((tls_model("initial-exec")));
MS_HIDDEN ms_tcache_t *_ms_tcache_get(void);            /* creates on first use */
MS_HIDDEN void  *_ms_tcache_refill(ms_tcache_t *tc, unsigned cls);
MS_HIDDEN void   _ms_tcache_flush(ms_tcache_t *tc, unsigned cls, unsigned keep);
MS_HIDDEN void   _ms_tcache_init(void);
MS_HIDDEN void   _ms_tcache_lock(void);
MS_HIDDEN void   _ms_tcache_unlock(bool child);
MS_HIDDEN void   _ms_tcache_flush_current(void);        /* malloc_trim */
MS_HIDDEN void   _ms_tcache_free_dead(void *p, unsigned cls);
MS_HIDDEN ms_tcache_t *_ms_tcache_dead(void);
typedef struct ms_thread_stat_s { uint64_t allocs, frees, cached; } ms_thread_stat_t;
MS_HIDDEN void   _ms_tcache_stats(ms_thread_stat_t out[MS_NCLASSES], unsigned *threads);

/* ---- alloc.c: the allocation family behind override.c ------------------ */
MS_HIDDEN void  *_ms_malloc(size_t n);
MS_HIDDEN void   _ms_free(void *p);
MS_HIDDEN void  *_ms_calloc(size_t n, size_t m);
MS_HIDDEN void  *_ms_realloc(void *p, size_t n);
MS_HIDDEN void  *_ms_reallocarray(void *p, size_t n, size_t m);
MS_HIDDEN int    _ms_posix_memalign(void **out, size_t align, size_t n);
MS_HIDDEN void  *_ms_aligned_alloc(size_t align, size_t n);
MS_HIDDEN void  *_ms_memalign(size_t align, size_t n);
MS_HIDDEN void  *_ms_valloc(size_t n);
MS_HIDDEN void  *_ms_pvalloc(size_t n);
MS_HIDDEN size_t _ms_usable_size(const void *p);
MS_HIDDEN int    _ms_trim(size_t pad);
MS_HIDDEN bool   _ms_owns(const void *p);

/* ---- meta.c: memory for memshim's own bookkeeping (never the program's heap) */
MS_HIDDEN void  *_ms_meta_alloc(size_t size);           /* zeroed, 16-aligned */
MS_HIDDEN void   _ms_meta_free(void *p, size_t size);
MS_HIDDEN void   _ms_meta_lock(void);
MS_HIDDEN void   _ms_meta_unlock(bool child);

/* ---- init.c ------------------------------------------------------------- */
MS_HIDDEN void   _ms_init(void);                        /* idempotent, cheap after first call */
MS_HIDDEN extern int _ms_inited;

/* ---- options.c: the only reader of the environment ---------------------- */
typedef enum { MS_ON_ERROR_ABORT, MS_ON_ERROR_CONTINUE } ms_on_error_t;
typedef struct ms_options_s {
    const char   *stats;         /* MEMSHIM_STATS: NULL, "stderr" or a path */
    int           verbose;       /* MEMSHIM_VERBOSE */
    ms_on_error_t on_error;      /* MEMSHIM_ON_ERROR */
    size_t        purge_limit;   /* MEMSHIM_PURGE_KB * 1024 */
} ms_options_t;
MS_HIDDEN extern ms_options_t _ms_opt;
MS_HIDDEN void   _ms_options_load(void);                /* needs environ */
MS_HIDDEN void   _ms_options_load_reporting(void);      /* stats/RSS options: stats.c */
MS_HIDDEN const char *_ms_getenv(const char *name);

/* ---- out.c: allocation-free formatting, the only writer of fds ---------- */
typedef struct ms_buf_s { char *p; size_t len, cap; int fd; } ms_buf_t;
MS_HIDDEN void   _ms_buf_init(ms_buf_t *b, char *mem, size_t cap, int fd);
MS_HIDDEN void   _ms_bprintf(ms_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
MS_HIDDEN void   _ms_vbprintf(ms_buf_t *b, const char *fmt, va_list ap);
MS_HIDDEN void   _ms_buf_flush(ms_buf_t *b);
MS_HIDDEN void   _ms_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
MS_HIDDEN void   _ms_heap_error(const char *what, const void *p); /* obeys MEMSHIM_ON_ERROR */
MS_HIDDEN int    _ms_open_output(const char *path, int *is_stderr); /* -1 on failure */

/* ---- stats.c ------------------------------------------------------------ */
typedef struct ms_stats_class_s {
    uint64_t size, spans, in_use, free, allocs, frees;
} ms_stats_class_t;
typedef struct ms_stats_s {
    ms_stats_class_t  cls[MS_NCLASSES];
    uint64_t          small_in_use, small_capacity, rss, peak_rss;
    uint64_t          heap_out, heap_peak;   /* bytes out of central lists + huge */
    unsigned          threads;
    ms_segment_stat_t seg;
    ms_huge_stat_t    huge;
} ms_stats_t;
MS_HIDDEN void   _ms_stats_collect(ms_stats_t *st);
MS_HIDDEN void   _ms_stats_print_fd(int fd);
MS_HIDDEN void   _ms_stats_at_exit(void);

#endif
