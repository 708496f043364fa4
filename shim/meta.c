/* meta.c - memory for memshim's own bookkeeping: thread caches, hash tables,
 * per-block tracking records, the stack table.  It never touches the
 * program's heap.  Requests up to 64 KiB come from power-of-two free lists
 * carved out of 4 MiB chunks; larger ones are mappings of their own.  Every
 * chunk and large mapping is listed, so the leak scanner can skip memshim's
 * own memory when it looks for pointers.  Callers pass the size back. */
#include <string.h>
#include "shim.h"

#define META_MIN_SHIFT 6                        /* 64 bytes */
#define META_MAX_SHIFT 16                       /* 64 KiB */
#define META_CHUNK     ((size_t)4 << 20)
#define META_RANGES    4096

static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static void    *free_lists[META_MAX_SHIFT + 1];   /* meta_lock */
static uint8_t *bump, *bump_end;                  /* meta_lock */
static ms_range_t ranges[META_RANGES];            /* meta_lock */
static unsigned   nranges;                        /* meta_lock */

static unsigned shift_of(size_t size)
{
    unsigned s = META_MIN_SHIFT;
    while (((size_t)1 << s) < size) s++;
    return s;
}

static void range_add(void *p, size_t size)
{
    if (nranges < META_RANGES) {
        ranges[nranges].start = (uintptr_t)p;
        ranges[nranges].end = (uintptr_t)p + size;
        nranges++;
    }
}

static void range_remove(void *p)
{
    for (unsigned i = 0; i < nranges; i++)
        if (ranges[i].start == (uintptr_t)p) { ranges[i] = ranges[--nranges]; return; }
}

static size_t page_round(size_t n) { return (n + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1); }

void *_ms_meta_alloc(size_t size)
{
    if (size == 0) size = 1;
    if (size > ((size_t)1 << META_MAX_SHIFT)) {
        size_t rounded = page_round(size);
        if (rounded < size) return NULL;
        void *p = _ms_os_map(rounded);          /* fresh mappings are zero */
        if (p) {
            _ms_lock(&meta_lock);
            range_add(p, rounded);
            _ms_unlock(&meta_lock);
        }
        return p;
    }
    unsigned s = shift_of(size);
    size_t rounded = (size_t)1 << s;
    _ms_lock(&meta_lock);
    void *p = free_lists[s];
    if (p) {
        free_lists[s] = *(void **)p;
    } else {
        if (!bump || (size_t)(bump_end - bump) < rounded) {
            uint8_t *chunk = _ms_os_map(META_CHUNK);
            if (!chunk) { _ms_unlock(&meta_lock); return NULL; }
            range_add(chunk, META_CHUNK);
            bump = chunk;
            bump_end = chunk + META_CHUNK;
        }
        p = bump;                                /* chunk memory starts zeroed */
        bump += rounded;
        _ms_unlock(&meta_lock);
        return p;
    }
    _ms_unlock(&meta_lock);
    memset(p, 0, rounded);
    return p;
}

void _ms_meta_free(void *p, size_t size)
{
    if (!p) return;
    if (size == 0) size = 1;
    if (size > ((size_t)1 << META_MAX_SHIFT)) {
        _ms_lock(&meta_lock);
        range_remove(p);
        _ms_unlock(&meta_lock);
        _ms_os_unmap(p, page_round(size));
        return;
    }
    unsigned s = shift_of(size);
    _ms_lock(&meta_lock);
    *(void **)p = free_lists[s];
    free_lists[s] = p;
    _ms_unlock(&meta_lock);
}

/* Copy the list of memshim's own mappings; caller holds the meta lock or
 * knows nobody else allocates.  Returns how many were copied. */
unsigned _ms_meta_ranges(ms_range_t *out, unsigned max)
{
    unsigned n = nranges < max ? nranges : max;
    memcpy(out, ranges, n * sizeof *out);
    return n;
}

void _ms_meta_lock(void) { _ms_lock(&meta_lock); }
void _ms_meta_unlock(bool child)
{
    if (child) pthread_mutex_init(&meta_lock, NULL);
    else _ms_unlock(&meta_lock);
}
