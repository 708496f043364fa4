/* meta.c - memory for memshim's own bookkeeping: thread caches, hash tables,
 * per-block tracking records, the stack table.  It never touches the
 * program's heap.  Requests up to 64 KiB come from power-of-two free lists
 * carved out of 4 MiB chunks; larger ones are mappings of their own.  Every
 * chunk and large mapping is listed, so the leak scanner can skip memshim's
 * own memory when it looks for pointers.  Callers pass the size back.
 *
 * Free blocks of 16 KiB and more (the records of a span while tracking)
 * decay as the pools' pages do: once free for MEMSHIM_DECAY, such a block
 * goes back to the kernel whole and its address onto a stack of purged
 * blocks, which reuse takes last (_ms_meta_decay, from the segments'
 * decay).  Without it, the records of a peak's spans stayed resident for
 * good: 35 MB after 100 MiB of 48-byte blocks had come and gone; purged
 * but for the first page, where the list's link is, 6.4 MB of it stayed.
 * Should a stack be full, the rest are purged that way. */
#include <string.h>
#include "shim.h"

#define META_MIN_SHIFT 6                        /* 64 bytes */
#define META_MAX_SHIFT 16                       /* 64 KiB */
#define META_CHUNK     ((size_t)4 << 20)
#define META_RANGES    4096

#define META_PURGE_SHIFT 14                     /* 16 KiB: free blocks this big decay */
#define META_CLEAN_MAX   65536u                 /* purged blocks a stack holds (512 KiB mapped) */

/* A free block of the lists; from META_PURGE_SHIFT, when it was freed and
 * whether its pages after the first are purged (zero), or the kernel
 * refused to take them back: the pages of a program that locks its memory
 * (mlockall) stay as they were, and such a block, handed out as zero,
 * still held what its last user wrote: as a new span's records, states
 * of blocks the span never handed out. */
enum { META_RESIDENT, META_PURGED, META_REFUSED };
typedef struct meta_free_s {
    struct meta_free_s *next;
    uint32_t freed_ms;
    uint32_t purged;                            /* META_* */
} meta_free_t;

static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
/* Newest first: deeper blocks were freed earlier, so the purged ones
 * are a list's tail (_ms_meta_decay). */
static meta_free_t *free_lists[META_MAX_SHIFT + 1];   /* meta_lock */
static size_t   purged_bytes;                     /* meta_lock: of free blocks, purged */
/* Purged blocks, zero throughout, by size (a mapping each, made at the
 * first purge; none: purged but for the first page, on the list). */
static void   **clean[META_MAX_SHIFT + 1];        /* meta_lock */
static unsigned nclean[META_MAX_SHIFT + 1];       /* meta_lock */
static uint8_t *bump, *bump_end;                  /* meta_lock */
static ms_range_t ranges[META_RANGES];            /* meta_lock */
static unsigned   nranges;                        /* meta_lock */

/* meta_lock; false, not taken, when this thread holds it already: a
 * signal handler whose allocation needs memshim's memory while its thread
 * holds the lock (the handler's first tracked block, making its profile
 * state, in the middle of the stack table's growth) would wait for its own
 * thread for ever (shim.h).  It gets no memory instead (every caller copes
 * with none), and what it gives back in there stays memshim's. */
static bool meta_take(void) { return _ms_lock_unless_mine(&meta_lock); }
static void meta_give(void) { _ms_unlock(&meta_lock); }

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
        if (p && !meta_take()) {
            _ms_os_unmap(p, rounded);
            return NULL;
        }
        if (p) {
            range_add(p, rounded);
            meta_give();
        }
        return p;
    }
    unsigned s = shift_of(size);
    size_t rounded = (size_t)1 << s, dirty = rounded;
    if (!meta_take()) return NULL;
    meta_free_t *p = free_lists[s];
    if (p) {
        free_lists[s] = p->next;
        if (s >= META_PURGE_SHIFT && p->purged == META_PURGED) {   /* zero but for its first page */
            dirty = MS_OS_PAGE;
            purged_bytes -= rounded - MS_OS_PAGE;
        }
    } else if (nclean[s]) {                               /* zero throughout */
        p = clean[s][--nclean[s]];
        dirty = 0;
        purged_bytes -= rounded;
    } else {
        /* A block that may be purged (META_PURGE_SHIFT and up: once free
         * for MEMSHIM_DECAY, _ms_meta_decay) starts on a page: madvise
         * refuses an address inside one, and the block would then be
         * handed out as zero with what was written in it. */
        uint8_t *at = bump;                      /* a multiple of 64: every size is a power of two */
        if (at && s >= META_PURGE_SHIFT) at = (uint8_t *)(((uintptr_t)at + MS_OS_PAGE - 1) & ~(uintptr_t)(MS_OS_PAGE - 1));
        if (!at || at > bump_end || (size_t)(bump_end - at) < rounded) {
            uint8_t *chunk = _ms_os_map(META_CHUNK);
            if (!chunk) { meta_give(); return NULL; }
            range_add(chunk, META_CHUNK);
            at = chunk;
            bump_end = chunk + META_CHUNK;
        }
        bump = at + rounded;                     /* chunk memory starts zeroed */
        meta_give();
        return at;
    }
    meta_give();
    memset(p, 0, dirty);
    return p;
}

void _ms_meta_free(void *p, size_t size)
{
    if (!p) return;
    if (size == 0) size = 1;
    if (size > ((size_t)1 << META_MAX_SHIFT)) {
        if (!meta_take()) return;
        range_remove(p);
        meta_give();
        _ms_os_unmap(p, page_round(size));
        return;
    }
    unsigned s = shift_of(size);
    meta_free_t *f = p;
    uint32_t now_ms = s >= META_PURGE_SHIFT ? (uint32_t)(_ms_os_now_ns() / 1000000) : 0;
    if (!meta_take()) return;
    f->next = free_lists[s];
    f->freed_ms = now_ms;
    f->purged = META_RESIDENT;
    free_lists[s] = f;
    meta_give();
}

/* The end of a table that lock-free readers may still probe (table.h's
 * kind->free for the trace table, stacks.c, and the huge blocks' table,
 * huge.c): never freed, but its slots go back to the kernel, all but the
 * first page's.  A late reader finds its header whole and every slot after
 * that empty (or, inside a page being purged, a key without the rest of
 * its slot), and so misses, or sees what its own check of the table's
 * change throws away; where the kernel keeps the pages (locked memory) it
 * finds the slots as they were when the table was replaced, which were
 * right then, and the same holds.  Kept whole, the old trace tables were
 * about as big as the last: 16 MB of a tracked espresso's 45 MB. */
void _ms_meta_retire(void *t, size_t bytes)
{
    uintptr_t from = ((uintptr_t)t + MS_OS_PAGE) & ~(uintptr_t)(MS_OS_PAGE - 1);
    uintptr_t to = ((uintptr_t)t + bytes) & ~(uintptr_t)(MS_OS_PAGE - 1);
    if (to > from) (void)_ms_os_purge((void *)from, to - from);
}

/* The stack of purged blocks of size 1 << s, made if need be (meta_lock). */
static bool clean_room(unsigned s)
{
    if (!clean[s]) {
        void **c = _ms_os_map(META_CLEAN_MAX * sizeof *c);
        if (!c) return false;
        range_add(c, META_CLEAN_MAX * sizeof *c);
        clean[s] = c;
    }
    return nclean[s] < META_CLEAN_MAX;
}

/* Purge the free blocks of META_PURGE_SHIFT and more that have been free
 * for MEMSHIM_DECAY, the list's tail (segment.c's decay, under the segment
 * lock): each whole onto the stack of purged blocks, or if that is full
 * all but its first page, on the list; one the kernel refused to purge
 * stays on the list as it is. */
void _ms_meta_decay(uint64_t now)
{
    uint32_t now_ms = (uint32_t)(now / 1000000), delay = _ms_opt.decay_ms;
    if (!meta_take()) return;
    for (unsigned s = META_PURGE_SHIFT; s <= META_MAX_SHIFT; s++) {
        size_t size = (size_t)1 << s;
        meta_free_t **at = &free_lists[s];
        while (*at && now_ms - (*at)->freed_ms < delay) at = &(*at)->next;   /* the newer ones */
        while (*at && (*at)->purged == META_RESIDENT) {
            meta_free_t *f = *at, *next = f->next;   /* read before the purge zeroes it */
            bool whole = clean_room(s);
            bool gone = whole ? _ms_os_purge(f, size)
                              : _ms_os_purge((uint8_t *)f + MS_OS_PAGE, size - MS_OS_PAGE);
            if (gone && whole) {
                *at = next;
                clean[s][nclean[s]++] = f;
                purged_bytes += size;
                continue;
            }
            /* The stack full: all but the first page purged, on the
             * list.  Refused (locked pages): on the list as it is, passed
             * over by the next decays and cleared whole when reused. */
            f->purged = gone ? META_PURGED : META_REFUSED;
            if (gone) purged_bytes += size - MS_OS_PAGE;
            at = &f->next;
        }
    }
    meta_give();
}

/* Bytes of memshim's own free blocks that are purged, and that are not. */
void _ms_meta_free_stats(size_t *purged, size_t *resident)
{
    size_t all = 0;
    *purged = *resident = 0;
    if (!meta_take()) return;
    for (unsigned s = META_MIN_SHIFT; s <= META_MAX_SHIFT; s++) {
        for (meta_free_t *f = free_lists[s]; f; f = f->next) all += (size_t)1 << s;
        all += (size_t)nclean[s] << s;
    }
    *purged = purged_bytes;
    *resident = all - purged_bytes;
    meta_give();
}

/* Copy the list of memshim's own mappings; caller holds the meta lock or
 * knows nobody else allocates.  Returns how many were copied. */
unsigned _ms_meta_ranges(ms_range_t *out, unsigned max)
{
    unsigned n = nranges < max ? nranges : max;
    memcpy(out, ranges, n * sizeof *out);
    return n;
}

/* What memshim has mapped for itself, and of it what is resident (0 when
 * confined: mincore may not be ours).  The lock is held for one range at a
 * time, not across the system calls: a figure of a moment (a range that
 * goes meanwhile may be missed or counted twice). */
void _ms_meta_usage(uint64_t *resident, uint64_t *mapped)
{
    bool look = !__atomic_load_n(&_ms_confined, __ATOMIC_RELAXED);
    *resident = *mapped = 0;
    for (unsigned i = 0;; i++) {
        if (!meta_take()) break;
        ms_range_t r = i < nranges ? ranges[i] : (ms_range_t){ 0, 0 };
        meta_give();
        if (!r.end) break;
        *mapped += r.end - r.start;
        if (look) *resident += _ms_os_resident((const void *)r.start, r.end - r.start);
    }
}

void _ms_meta_lock(void) { _ms_lock(&meta_lock); }
void _ms_meta_unlock(bool child)
{
    if (child) pthread_mutex_init(&meta_lock, NULL);
    else _ms_unlock(&meta_lock);
}

/* arr (holding `have` entries of `size` bytes, room for *cap) with room
 * for `need`, in memshim's own memory, doubled as needed: arr itself or
 * its new place; NULL (arr as it was) if there is no memory. */
void *_ms_meta_grow(void *arr, size_t *cap, size_t have, size_t need, size_t size)
{
    if (need <= *cap) return arr;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size) return NULL;
        ncap *= 2;
    }
    void *n = _ms_meta_alloc(ncap * size);
    if (!n) return NULL;
    if (arr) { memcpy(n, arr, have * size); _ms_meta_free(arr, *cap * size); }
    *cap = ncap;
    return n;
}
