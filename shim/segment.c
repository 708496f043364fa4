/* segment.c - 4 MiB segments carved into 64 KiB pages, the ownership bitmap,
 * and giving memory back to the kernel.  All state here is guarded by
 * seg_lock, except the bitmap and page_class[], which free() reads without it.
 *
 * Purging decays (types.h, "Giving memory back"): a page freed stays dirty
 * (resident, reused first) for MEMSHIM_DECAY ms and is purged after that; a
 * segment all of whose pages are free and past the delay is unmapped, but
 * for one.  The pages past the delay are looked for lazily, when a page is
 * taken or given back (the lock is held then anyway), at most every eighth
 * of the delay, and by the reporter thread if it runs. */
#include <string.h>
#include "shim.h"

#define BITMAP_WORDS  (((size_t)1 << (MS_ADDR_BITS - MS_SEGMENT_SHIFT)) / 64)
#define ALL_PAGES     (~(uint64_t)1)          /* page 0 holds the header */

uint64_t *_ms_seg_bitmap;
uint64_t  _ms_heap_out, _ms_heap_peak;

static pthread_mutex_t seg_lock = PTHREAD_MUTEX_INITIALIZER;
static ms_segment_t *seg_list;     /* every segment we own */
static size_t dirty_bytes;         /* free pages still resident */
static unsigned empty_segments;    /* segments with every page free */
static uint64_t seg_count, seg_mapped_total, seg_unmapped_total;
static uint64_t next_decay;        /* ns: the next look for pages dirty too long (read unlocked) */

void _ms_segment_init(void)
{
    if (_ms_seg_bitmap) return;
    _ms_seg_bitmap = _ms_meta_alloc(BITMAP_WORDS * sizeof(uint64_t));  /* untouched: free */
}

static void bitmap_set(ms_segment_t *s, bool on)
{
    uintptr_t idx = (uintptr_t)s >> MS_SEGMENT_SHIFT;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (on) __atomic_fetch_or(&_ms_seg_bitmap[idx >> 6], bit, __ATOMIC_RELEASE);
    else    __atomic_fetch_and(&_ms_seg_bitmap[idx >> 6], ~bit, __ATOMIC_RELEASE);
}

static ms_segment_t *segment_new(void)
{
    ms_segment_t *s = _ms_os_map_aligned(MS_SEGMENT_SIZE, MS_SEGMENT_SIZE);
    if (!s) return NULL;
    if ((uintptr_t)s >> MS_ADDR_BITS) {          /* beyond what the bitmap covers */
        _ms_os_unmap(s, MS_SEGMENT_SIZE);
        return NULL;
    }
    s->magic = MS_SEGMENT_MAGIC ^ (uintptr_t)s;
    s->free_mask = ALL_PAGES;
    memset(s->page_class, MS_CLASS_NONE, sizeof s->page_class);
    s->next = seg_list;
    if (seg_list) seg_list->prev = s;
    seg_list = s;
    seg_count++;
    seg_mapped_total += MS_SEGMENT_SIZE;
    empty_segments++;
    bitmap_set(s, true);
    return s;
}

static void segment_release(ms_segment_t *s)
{
    bitmap_set(s, false);
    if (s->prev) s->prev->next = s->next; else seg_list = s->next;
    if (s->next) s->next->prev = s->prev;
    dirty_bytes -= (size_t)__builtin_popcountll(s->dirty_mask) * MS_PAGE_SIZE;
    seg_count--;
    seg_unmapped_total += MS_SEGMENT_SIZE;
    empty_segments--;
    _ms_os_unmap(s, MS_SEGMENT_SIZE);
}

/* Lowest index starting a run of n set bits in mask, or -1. */
static int find_run(uint64_t mask, unsigned n)
{
    uint64_t x = mask;
    for (unsigned k = 1; k < n && x; k++) x &= mask >> k;
    return x ? __builtin_ctzll(x) : -1;
}

/* Purge the dirty pages of s in d, a run at a time. */
static void purge_pages(ms_segment_t *s, uint64_t d)
{
    unsigned i = 1;
    while (i < MS_PAGES_PER_SEG) {               /* purge each run of dirty pages */
        if (!(d >> i & 1)) { i++; continue; }
        unsigned j = i;
        while (j < MS_PAGES_PER_SEG && (d >> j & 1)) j++;
        /* Locked pages (mlockall) are refused and stay resident, counted
         * clean all the same: nothing takes a free page for zeros (a
         * block is cleared by whoever wants it so: calloc, tracking). */
        (void)_ms_os_purge((uint8_t *)s + (size_t)i * MS_PAGE_SIZE, (size_t)(j - i) * MS_PAGE_SIZE);
        i = j;
    }
    dirty_bytes -= (size_t)__builtin_popcountll(d) * MS_PAGE_SIZE;
    s->dirty_mask &= ~d;
}

static void segment_purge(ms_segment_t *s) { purge_pages(s, s->dirty_mask); }

/* Purge the pages dirty for MEMSHIM_DECAY ms or more; unmap the segments
 * left with no page in use and none dirty, but for one. */
static void decay(uint64_t now)
{
    if (now < next_decay) return;
    uint32_t delay = _ms_opt.decay_ms, now_ms = (uint32_t)(now / 1000000);
    __atomic_store_n(&next_decay, now + (uint64_t)delay * 1000000 / 8, __ATOMIC_RELAXED);
    for (ms_segment_t *s = seg_list, *next; s; s = next) {
        next = s->next;
        uint64_t old = 0;
        for (uint64_t d = s->dirty_mask; d; d &= d - 1) {
            unsigned i = (unsigned)__builtin_ctzll(d);
            if (now_ms - s->freed_ms[i] >= delay) old |= (uint64_t)1 << i;
        }
        if (s->free_mask == ALL_PAGES && s->dirty_mask == old && empty_segments > 1) segment_release(s);
        else if (old) purge_pages(s, old);
    }
    _ms_meta_decay(now);                  /* the records of spans gone (meta.c) */
}

void _ms_segment_decay(uint64_t now)
{
    if (now < __atomic_load_n(&next_decay, __ATOMIC_RELAXED)) return;
    _ms_lock(&seg_lock);
    decay(now);
    _ms_unlock(&seg_lock);
}

ms_page_t *_ms_page_alloc(unsigned npages, uint8_t cls)
{
    uint64_t now = _ms_os_now_ns();
    if (!_ms_lock_unless_mine(&seg_lock)) return NULL;   /* a handler inside its thread's hold (shim.h) */
    decay(now);
    ms_segment_t *s;
    int idx = -1;
    /* Prefer resident (dirty) free pages, then any free run. */
    for (s = seg_list; s; s = s->next)
        if ((idx = find_run(s->dirty_mask, npages)) >= 0) break;
    if (!s)
        for (s = seg_list; s; s = s->next)
            if ((idx = find_run(s->free_mask, npages)) >= 0) break;
    if (!s && !(s = segment_new())) {
        /* As _ms_huge_alloc: give back the cached huge mappings and try
         * once more (no empty segment is left: it would have had a run).
         * Not the thread's cache: the caller holds a class lock
         * (_ms_central_take), which flushing it would take again. */
        _ms_unlock(&seg_lock);
        _ms_huge_trim();
        _ms_lock(&seg_lock);
        for (s = seg_list; s; s = s->next)
            if ((idx = find_run(s->free_mask, npages)) >= 0) break;
        if (!s && !(s = segment_new())) { _ms_unlock(&seg_lock); return NULL; }
    }
    if (idx < 0) idx = 1;                             /* a new segment: its first page is its header */
    if (s->free_mask == ALL_PAGES) empty_segments--;
    uint64_t run = (((uint64_t)1 << npages) - 1) << idx;
    dirty_bytes -= (size_t)__builtin_popcountll(s->dirty_mask & run) * MS_PAGE_SIZE;
    s->free_mask &= ~run;
    s->dirty_mask &= ~run;

    ms_page_t *pg = &s->pages[idx];
    memset(pg, 0, sizeof *pg);
    pg->start = (uint8_t *)s + (size_t)idx * MS_PAGE_SIZE;
    pg->npages = (uint16_t)npages;
    pg->cls = cls;
    pg->capacity = _ms_classes[cls].capacity;
    for (unsigned i = (unsigned)idx; i < (unsigned)idx + npages; i++) {
        s->span_head[i] = (uint8_t)idx;
        __atomic_store_n(&s->page_class[i], cls, __ATOMIC_RELEASE);
    }
    _ms_unlock(&seg_lock);
    _ms_huge_decay(now);
    return pg;
}

/* Whether this thread holds the segments' lock (pool.c keeps an empty
 * span rather than give it back in a handler inside that hold). */
bool _ms_segment_mine(void) { return _ms_lock_mine(&seg_lock); }

void _ms_page_free(ms_page_t *pg)
{
    ms_segment_t *s = (ms_segment_t *)((uintptr_t)pg->start & ~(uintptr_t)MS_SEGMENT_MASK);
    unsigned idx = _ms_page_index(s, pg->start), n = pg->npages;
    uint64_t run = (((uint64_t)1 << n) - 1) << idx;
    uint64_t now = _ms_os_now_ns();
    _ms_lock(&seg_lock);
    for (unsigned i = idx; i < idx + n; i++) {
        __atomic_store_n(&s->page_class[i], (uint8_t)MS_CLASS_NONE, __ATOMIC_RELEASE);
        s->freed_ms[i] = (uint32_t)(now / 1000000);
    }
    pg->cls = MS_CLASS_NONE;
    s->free_mask |= run;
    s->dirty_mask |= run;
    dirty_bytes += (size_t)n * MS_PAGE_SIZE;
    if (s->free_mask == ALL_PAGES) empty_segments++;
    decay(now);
    _ms_unlock(&seg_lock);
    _ms_huge_decay(now);
}

bool _ms_segment_purge_all(void)
{
    _ms_lock(&seg_lock);
    bool any = dirty_bytes != 0;
    ms_segment_t *s = seg_list;
    while (s) {
        ms_segment_t *next = s->next;
        if (s->free_mask == ALL_PAGES) segment_release(s), any = true;
        else segment_purge(s);
        s = next;
    }
    _ms_unlock(&seg_lock);
    return any;
}

void _ms_segment_stats(ms_segment_stat_t *out)
{
    _ms_lock(&seg_lock);
    out->segments = seg_count;
    out->mapped = seg_count * MS_SEGMENT_SIZE;
    out->mapped_total = seg_mapped_total;
    out->unmapped_total = seg_unmapped_total;
    out->dirty = dirty_bytes;
    uint64_t free_pages = 0;
    for (ms_segment_t *s = seg_list; s; s = s->next)
        free_pages += (uint64_t)__builtin_popcountll(s->free_mask);
    out->free_pages_bytes = free_pages * MS_PAGE_SIZE;
    _ms_unlock(&seg_lock);
}

/* Visit every span in use; the caller holds the segment lock (scan.c). */
void _ms_segment_each_span_locked(void (*fn)(void *arg, ms_page_t *pg), void *arg)
{
    for (ms_segment_t *s = seg_list; s; s = s->next)
        for (unsigned i = 1; i < MS_PAGES_PER_SEG; i++)
            if (s->page_class[i] != MS_CLASS_NONE && s->span_head[i] == i) fn(arg, &s->pages[i]);
}

/* check.c's segment and page invariants (segment lock held). */
void _ms_segment_check_locked(ms_check_fail_fn fail)
{
    uint64_t dirty = 0;
    unsigned empty = 0;
    for (ms_segment_t *s = seg_list; s; s = s->next) {
        dirty += (uint64_t)__builtin_popcountll(s->dirty_mask) * MS_PAGE_SIZE;
        empty += s->free_mask == ALL_PAGES;
        if (s->magic != (MS_SEGMENT_MAGIC ^ (uintptr_t)s)) fail("segment header overwritten", s, 0);
        if (s->dirty_mask & ~s->free_mask) fail("a dirty page is not free", s, 0);
        if (s->free_mask & 1) fail("the header page is free", s, 0);
        for (unsigned i = 1; i < MS_PAGES_PER_SEG; i++) {
            bool is_free = s->free_mask >> i & 1;
            unsigned h = s->span_head[i];
            if (is_free) {
                if (s->page_class[i] != MS_CLASS_NONE) fail("a free page has a class", s, i);
            } else if (h == 0 || h > i || h + s->pages[h].npages <= i || s->page_class[i] != s->pages[h].cls)
                fail("a page in use is outside its span", s, i);
        }
    }
    if (dirty != dirty_bytes) fail("dirty bytes are not the sum of the dirty pages", seg_list, 0);
    if (empty != empty_segments) fail("empty segments miscounted", seg_list, empty);
}

void _ms_segment_lock(void) { _ms_lock(&seg_lock); }
void _ms_segment_unlock(bool child)
{
    if (child) pthread_mutex_init(&seg_lock, NULL);
    else _ms_unlock(&seg_lock);
}
