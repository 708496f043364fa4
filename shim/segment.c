/* segment.c - 4 MiB segments carved into 64 KiB pages, the ownership bitmap,
 * and giving memory back to the kernel.  All state here is guarded by
 * seg_lock, except the bitmap and page_class[], which free() reads without it. */
#include <string.h>
#include "shim.h"

#define BITMAP_WORDS  (((size_t)1 << (MS_ADDR_BITS - MS_SEGMENT_SHIFT)) / 64)
#define ALL_PAGES     (~(uint64_t)1)          /* page 0 holds the header */
/* Free pages kept resident before purging: 8 MiB plus an eighth of the heap
 * in use, so a big heap that breathes does not fault its pages back in at
 * every swing, and a small one stays small.  Purging goes down to half. */
#define PURGE_LIMIT   (((size_t)8 << 20) + (size_t)__atomic_load_n(&_ms_heap_out, __ATOMIC_RELAXED) / 8)

uint64_t *_ms_seg_bitmap;
uint64_t  _ms_heap_out, _ms_heap_peak;

static pthread_mutex_t seg_lock = PTHREAD_MUTEX_INITIALIZER;
static ms_segment_t *seg_list;     /* every segment we own */
static size_t dirty_bytes;         /* free pages still resident */
static unsigned empty_segments;    /* segments with every page free */
static uint64_t seg_count, seg_mapped_total, seg_unmapped_total;

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

static void segment_purge(ms_segment_t *s)
{
    uint64_t d = s->dirty_mask;
    unsigned i = 1;
    while (i < MS_PAGES_PER_SEG) {               /* purge each run of dirty pages */
        if (!(d >> i & 1)) { i++; continue; }
        unsigned j = i;
        while (j < MS_PAGES_PER_SEG && (d >> j & 1)) j++;
        _ms_os_purge((uint8_t *)s + (size_t)i * MS_PAGE_SIZE, (size_t)(j - i) * MS_PAGE_SIZE);
        i = j;
    }
    dirty_bytes -= (size_t)__builtin_popcountll(d) * MS_PAGE_SIZE;
    s->dirty_mask = 0;
}

ms_page_t *_ms_page_alloc(unsigned npages, uint8_t cls)
{
    pthread_mutex_lock(&seg_lock);
    ms_segment_t *s;
    int idx = -1;
    /* Prefer resident (dirty) free pages, then any free run. */
    for (s = seg_list; s; s = s->next)
        if ((idx = find_run(s->dirty_mask, npages)) >= 0) break;
    if (!s)
        for (s = seg_list; s; s = s->next)
            if ((idx = find_run(s->free_mask, npages)) >= 0) break;
    if (!s) {
        s = segment_new();
        if (!s) { pthread_mutex_unlock(&seg_lock); return NULL; }
        idx = 1;
    }
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
    pthread_mutex_unlock(&seg_lock);
    return pg;
}

void _ms_page_free(ms_page_t *pg)
{
    ms_segment_t *s = (ms_segment_t *)((uintptr_t)pg->start & ~(uintptr_t)MS_SEGMENT_MASK);
    unsigned idx = _ms_page_index(s, pg->start), n = pg->npages;
    uint64_t run = (((uint64_t)1 << n) - 1) << idx;
    pthread_mutex_lock(&seg_lock);
    for (unsigned i = idx; i < idx + n; i++)
        __atomic_store_n(&s->page_class[i], (uint8_t)MS_CLASS_NONE, __ATOMIC_RELEASE);
    pg->cls = MS_CLASS_NONE;
    s->free_mask |= run;
    s->dirty_mask |= run;
    dirty_bytes += (size_t)n * MS_PAGE_SIZE;
    if (s->free_mask == ALL_PAGES) {
        empty_segments++;
        if (empty_segments > 1) segment_release(s);   /* keep one empty segment for churn */
        else segment_purge(s);
    }
    size_t limit = PURGE_LIMIT;
    if (dirty_bytes > limit)                         /* give back the excess, keep some warm */
        for (ms_segment_t *t = seg_list; t && dirty_bytes > limit / 2; t = t->next)
            segment_purge(t);
    pthread_mutex_unlock(&seg_lock);
}

void _ms_segment_purge_all(void)
{
    pthread_mutex_lock(&seg_lock);
    ms_segment_t *s = seg_list;
    while (s) {
        ms_segment_t *next = s->next;
        if (s->free_mask == ALL_PAGES) segment_release(s);
        else segment_purge(s);
        s = next;
    }
    pthread_mutex_unlock(&seg_lock);
}

void _ms_segment_stats(ms_segment_stat_t *out)
{
    pthread_mutex_lock(&seg_lock);
    out->segments = seg_count;
    out->mapped = seg_count * MS_SEGMENT_SIZE;
    out->mapped_total = seg_mapped_total;
    out->unmapped_total = seg_unmapped_total;
    out->dirty = dirty_bytes;
    uint64_t free_pages = 0;
    for (ms_segment_t *s = seg_list; s; s = s->next)
        free_pages += (uint64_t)__builtin_popcountll(s->free_mask);
    out->free_pages_bytes = free_pages * MS_PAGE_SIZE;
    pthread_mutex_unlock(&seg_lock);
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
    for (ms_segment_t *s = seg_list; s; s = s->next) {
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
}

void _ms_segment_lock(void) { pthread_mutex_lock(&seg_lock); }
void _ms_segment_unlock(bool child)
{
    if (child) pthread_mutex_init(&seg_lock, NULL);
    else pthread_mutex_unlock(&seg_lock);
}
