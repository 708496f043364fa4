/* huge.c - requests above MS_MAX_SMALL: one mapping each, found again through
 * an open-addressing hash table keyed by address, grown with mremap.  A few
 * recently freed mappings are kept to absorb alloc/free churn of big buffers
 * (glibc raises its mmap threshold for the same reason). */
#include <errno.h>
#include <string.h>
#include "shim.h"

#define CACHE_SLOTS    16
#define CACHE_MAX      ((size_t)8 << 20)    /* bytes kept across all slots */
#define TOMB           ((uintptr_t)1)

typedef struct {
    uintptr_t addr;
    size_t    size;        /* mapping length */
    size_t    req;         /* bytes requested, for tracking */
    ms_meta_t meta;        /* tracking record (size field unused) */
} huge_ent;

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
static huge_ent *table;            /* huge_lock */
static size_t    cap, used, tombs; /* huge_lock */
static uint64_t  live_bytes;       /* huge_lock */
static huge_ent  cache[CACHE_SLOTS];
static uintptr_t recent[64];       /* addresses of the last huge blocks freed */
static unsigned  recent_next;
static size_t    cache_bytes;

static size_t slot_of(uintptr_t a) { return (size_t)((a >> 12) * 0x9E3779B97F4A7C15ULL >> 20); }

static huge_ent *find(uintptr_t a)
{
    if (!cap) return NULL;
    for (size_t i = slot_of(a) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (table[i].addr == a) return &table[i];
        if (table[i].addr == 0) return NULL;
    }
}

static huge_ent *insert(uintptr_t a, size_t size);

static bool grow(void)
{
    size_t ncap = cap ? cap * 2 : 256;
    huge_ent *old = table;
    size_t ocap = cap;
    huge_ent *t = _ms_meta_alloc(ncap * sizeof *t);
    if (!t) return false;
    table = t; cap = ncap; used = 0; tombs = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].addr > TOMB) *insert(old[i].addr, old[i].size) = old[i];
    _ms_meta_free(old, ocap * sizeof *old);
    return true;
}

/* Past half full (tombstones counted) the table grows; if it cannot, the
 * entry still goes in while two empty slots remain (find() stops at an
 * empty one), so an entry just erased can always be put back. */
static huge_ent *insert(uintptr_t a, size_t size)
{
    if ((used + tombs + 1) * 2 > cap && !grow() && cap - used - tombs < 2) return NULL;
    size_t i = slot_of(a) & (cap - 1);
    while (table[i].addr > TOMB) i = (i + 1) & (cap - 1);
    if (table[i].addr == TOMB) tombs--;
    memset(&table[i], 0, sizeof table[i]);
    table[i].addr = a;
    table[i].size = size;
    used++;
    return &table[i];
}

static void erase(huge_ent *e) { memset(e, 0, sizeof *e); e->addr = TOMB; used--; tombs++; }

static size_t page_round(size_t n) { return (n + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1); }

void *_ms_huge_alloc(size_t n, size_t align, bool zero)
{
    if (n > PTRDIFF_MAX - MS_SEGMENT_SIZE) { errno = ENOMEM; return NULL; }
    size_t size = page_round(n ? n : 1);
    void *p = NULL;
    pthread_mutex_lock(&huge_lock);
    if (align <= MS_OS_PAGE)                     /* a cached mapping close in size? */
        for (int i = 0; i < CACHE_SLOTS; i++)
            if (cache[i].addr && cache[i].size >= size && cache[i].size - size <= size / 2) {
                p = (void *)cache[i].addr;
                size = cache[i].size;
                cache_bytes -= size;
                cache[i].addr = 0;
                break;
            }
    pthread_mutex_unlock(&huge_lock);
    if (!p) {
        p = _ms_os_map_aligned(size, align);    /* fresh pages are already zero */
        if (!p) return NULL;
    } else if (zero) {
        memset(p, 0, n);
    }
    pthread_mutex_lock(&huge_lock);
    bool ok = insert((uintptr_t)p, size) != NULL;
    for (unsigned i = 0; i < 64; i++)                /* handed out again: not "freed" now */
        if (recent[i] == (uintptr_t)p) recent[i] = 0;
    if (ok) live_bytes += size;
    if (ok) _ms_heap_account((int64_t)size);
    pthread_mutex_unlock(&huge_lock);
    if (!ok) { _ms_os_unmap(p, size); errno = ENOMEM; return NULL; }
    return p;
}

bool _ms_huge_free(void *p)
{
    pthread_mutex_lock(&huge_lock);
    huge_ent *e = find((uintptr_t)p);
    if (!e) { pthread_mutex_unlock(&huge_lock); return false; }
    size_t size = e->size;
    erase(e);
    recent[recent_next++ % 64] = (uintptr_t)p;
    live_bytes -= size;
    _ms_heap_account(-(int64_t)size);
    int slot = -1;
    if (size <= CACHE_MAX / 2)
        for (int i = 0; i < CACHE_SLOTS; i++) if (!cache[i].addr) { slot = i; break; }
    if (slot >= 0 && cache_bytes + size <= CACHE_MAX) {
        cache[slot].addr = (uintptr_t)p;
        cache[slot].size = size;
        cache_bytes += size;
        p = NULL;
    }
    pthread_mutex_unlock(&huge_lock);
    if (p) _ms_os_unmap(p, size);
    return true;
}

/* Whether p was a huge block freed lately (and not handed out again): a
 * second free of it is a double free, not a foreign pointer. */
bool _ms_huge_recently_freed(const void *p)
{
    bool hit = false;
    pthread_mutex_lock(&huge_lock);
    if (!find((uintptr_t)p))
        for (unsigned i = 0; i < 64 && !hit; i++) hit = recent[i] == (uintptr_t)p;
    pthread_mutex_unlock(&huge_lock);
    return hit;
}

/* Whether p lies inside a live huge block (at its start or not): its start,
 * requested size and tracking record.  A walk of the whole table, for the
 * rare pointer that is no block. */
bool _ms_huge_containing(const void *p, uintptr_t *start, size_t *req, ms_meta_t *m)
{
    uintptr_t a = (uintptr_t)p;
    bool hit = false;
    pthread_mutex_lock(&huge_lock);
    for (size_t i = 0; i < cap && !hit; i++)
        if (table[i].addr > TOMB && a >= table[i].addr && a - table[i].addr < table[i].size) {
            *start = table[i].addr;
            *req = table[i].req ? table[i].req : table[i].size;
            *m = table[i].meta;
            hit = true;
        }
    pthread_mutex_unlock(&huge_lock);
    return hit;
}

size_t _ms_huge_usable(const void *p)
{
    pthread_mutex_lock(&huge_lock);
    huge_ent *e = find((uintptr_t)p);
    size_t size = e ? e->size : 0;
    pthread_mutex_unlock(&huge_lock);
    return size;
}

/* Resize a huge block in place or by moving its pages (no copy). */
void *_ms_huge_realloc(void *p, size_t n)
{
    if (n > PTRDIFF_MAX - MS_SEGMENT_SIZE) { errno = ENOMEM; return NULL; }
    size_t size = page_round(n);
    pthread_mutex_lock(&huge_lock);
    huge_ent *e = find((uintptr_t)p);
    size_t old = e ? e->size : 0;
    /* A block that shrinks by less than half stays as it is; one that grows
     * grows by at least a quarter, so a buffer grown a little at a time is
     * not remapped at every page it crosses. */
    if (!e || (size <= old && size >= old / 2)) { pthread_mutex_unlock(&huge_lock); return e ? p : NULL; }
    if (size > old && size - old < old / 4) size = page_round(old + old / 4);
    void *q = _ms_os_remap(p, old, size);
    if (q) {
        huge_ent keep = *e;
        erase(e);
        huge_ent *ne = insert((uintptr_t)q, size);   /* cannot fail: a slot was just freed */
        ms_assert(ne != NULL);
        ne->req = keep.req;
        ne->meta = keep.meta;
        live_bytes += size - old;
        _ms_heap_account((int64_t)size - (int64_t)old);
    }
    pthread_mutex_unlock(&huge_lock);
    return q;
}

/* Give the cached mappings back (malloc_trim). */
void _ms_huge_trim(void)
{
    huge_ent drop[CACHE_SLOTS];
    pthread_mutex_lock(&huge_lock);
    memcpy(drop, cache, sizeof drop);
    memset(cache, 0, sizeof cache);
    cache_bytes = 0;
    pthread_mutex_unlock(&huge_lock);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (drop[i].addr) _ms_os_unmap((void *)drop[i].addr, drop[i].size);
}

void _ms_huge_stats(ms_huge_stat_t *out)
{
    pthread_mutex_lock(&huge_lock);
    out->blocks = used;
    out->bytes = live_bytes;
    out->cached = cache_bytes;
    out->mapped = live_bytes + cache_bytes;
    pthread_mutex_unlock(&huge_lock);
}

/* Tracking records of huge blocks (track.c): set them, and enumerate. */
bool _ms_huge_set_meta(const void *p, const ms_meta_t *m, size_t req)
{
    pthread_mutex_lock(&huge_lock);
    huge_ent *e = find((uintptr_t)p);
    if (e) { e->meta = *m; e->req = req; }
    pthread_mutex_unlock(&huge_lock);
    return e != NULL;
}

/* A copy of a live huge block's tracking record; false if p starts none. */
bool _ms_huge_get_meta(const void *p, ms_meta_t *m, size_t *req)
{
    pthread_mutex_lock(&huge_lock);
    huge_ent *e = find((uintptr_t)p);
    if (e) { *m = e->meta; *req = e->req; }
    pthread_mutex_unlock(&huge_lock);
    return e != NULL;
}

/* Add flag bits to a huge block's tracking record (gcglue.c). */
void _ms_huge_flag(const void *p, unsigned flags)
{
    pthread_mutex_lock(&huge_lock);
    huge_ent *e = find((uintptr_t)p);
    if (e) e->meta.flags |= flags & 15;
    pthread_mutex_unlock(&huge_lock);
}

/* Visit every live huge block; the caller holds the huge lock (scan.c). */
void _ms_huge_each_locked(void (*fn)(void *arg, uintptr_t addr, size_t size, size_t req,
                                     const ms_meta_t *m), void *arg)
{
    for (size_t i = 0; i < cap; i++)
        if (table[i].addr > TOMB)
            fn(arg, table[i].addr, table[i].size, table[i].req, &table[i].meta);
}

void _ms_huge_lock(void) { pthread_mutex_lock(&huge_lock); }
void _ms_huge_unlock(bool child)
{
    if (child) pthread_mutex_init(&huge_lock, NULL);
    else pthread_mutex_unlock(&huge_lock);
}
