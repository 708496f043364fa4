/* pool.c - size classes, and the central list of each class: spans with free
 * blocks, from which thread caches refill and into which they flush.  One lock
 * per class; a span's free list, `used` and `carved` belong to that lock. */
#include <string.h>
#include "shim.h"

ms_class_t _ms_classes[MS_NCLASSES];
uint8_t    _ms_small_class[MS_SMALL_TABLE_MAX / MS_ALIGN + 1];

typedef struct central_s {
    pthread_mutex_t lock;
    ms_page_t      *partial;    /* spans with a free or uncarved block */
    uint64_t        spans;      /* spans in use by this class */
    uint64_t        free_blocks;/* free + uncarved blocks in those spans */
} __attribute__((aligned(64))) central_t;

static central_t central[MS_NCLASSES];

static size_t class_size(unsigned c)
{
    if (c < 8) return (size_t)(c + 1) * 16;              /* 16 .. 128 */
    if (c < 20) {                                        /* 4 per doubling to 1 KiB */
        unsigned k = c - 8, shift = 7 + k / 4;
        return ((size_t)1 << shift) + ((size_t)(k % 4 + 1) << (shift - 2));
    }
    unsigned k = c - 20, shift = 10 + k / 8;             /* 8 per doubling above */
    return ((size_t)1 << shift) + ((size_t)(k % 8 + 1) << (shift - 3));
}

unsigned _ms_class_of(size_t n)
{
    if (n <= 128) return n ? (unsigned)((n - 1) / 16) : 0;
    unsigned b = 63 - (unsigned)__builtin_clzll(n - 1);  /* 2^b <= n-1 < 2^(b+1) */
    if (b < 10) return 8 + (b - 7) * 4 + (unsigned)(((n - 1) >> (b - 2)) & 3);
    return 20 + (b - 10) * 8 + (unsigned)(((n - 1) >> (b - 3)) & 7);
}

void _ms_classes_init(void)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        ms_class_t *k = &_ms_classes[c];
        size_t size = class_size(c);
        /* Fewest pages holding a whole number of blocks with <= 1/8 left over. */
        unsigned np = 1;
        while (np < MS_MAX_SPAN_PAGES &&
               (np * MS_PAGE_SIZE < size || (np * MS_PAGE_SIZE) % size > np * MS_PAGE_SIZE / 8))
            np++;
        k->size = (uint32_t)size;
        k->npages = (uint16_t)np;
        k->capacity = (uint32_t)(np * MS_PAGE_SIZE / size);
        k->recip = (((uint64_t)1 << MS_RECIP_SHIFT) + size - 1) / size;
        /* Thread cache: up to 128 blocks or 64 KiB, at least 1; none above
         * MS_TCACHE_MAX (limit 0: every call goes central). */
        size_t lim = ((size_t)64 << 10) / size;
        if (lim > 128) lim = 128;
        if (lim < 1) lim = 1;
        if (size > MS_TCACHE_MAX) lim = 0;
        k->limit = (uint16_t)lim;
        k->batch = (uint16_t)(lim > 1 ? lim / 2 : 1);
        pthread_mutex_init(&central[c].lock, NULL);
    }
    for (size_t i = 0; i <= MS_SMALL_TABLE_MAX / MS_ALIGN; i++)
        _ms_small_class[i] = (uint8_t)_ms_class_of(i * MS_ALIGN);
}

static void partial_push(central_t *c, ms_page_t *pg)
{
    pg->prev = NULL;
    pg->next = c->partial;
    if (c->partial) c->partial->prev = pg;
    c->partial = pg;
    pg->in_partial = 1;
}

static void partial_remove(central_t *c, ms_page_t *pg)
{
    if (pg->prev) pg->prev->next = pg->next; else c->partial = pg->next;
    if (pg->next) pg->next->prev = pg->prev;
    pg->prev = pg->next = NULL;
    pg->in_partial = 0;
}

/* Take up to `want` blocks of class cls as a NULL-terminated chain. */
unsigned _ms_central_take(unsigned cls, ms_block_t **head, ms_block_t **tail, unsigned want)
{
    central_t *c = &central[cls];
    const ms_class_t *k = &_ms_classes[cls];
    ms_block_t *h = NULL, *t = NULL;
    unsigned got = 0;
    _ms_lock(&c->lock);
    while (got < want) {
        ms_page_t *pg = c->partial;
        if (!pg) {
            pg = _ms_page_alloc(k->npages, (uint8_t)cls);
            if (!pg) break;
            if (_ms_track_on) pg->meta = _ms_meta_alloc((size_t)pg->capacity * sizeof(ms_meta_t));
            c->spans++;
            c->free_blocks += pg->capacity;
            partial_push(c, pg);
        }
        unsigned before = got;
        while (got < want && pg->free) {             /* recycled blocks first */
            ms_block_t *b = pg->free;
            _ms_link_checked(b, cls);                   /* written after free: cut */
            pg->free = b->next;
            if (t) t->next = b; else h = b;
            t = b;
            got++;
        }
        while (got < want && pg->carved < pg->capacity) {  /* then fresh ones */
            ms_block_t *b = (ms_block_t *)(pg->start + (size_t)pg->carved * k->size);
            pg->carved++;
            if (t) t->next = b; else h = b;
            t = b;
            got++;
        }
        pg->used += got - before;
        c->free_blocks -= got - before;
        if (!pg->free && pg->carved == pg->capacity) partial_remove(c, pg);
    }
    _ms_unlock(&c->lock);
    _ms_heap_account((int64_t)got * k->size);
    if (t) t->next = NULL;
    *head = h;
    *tail = t;
    return got;
}

/* Return the first n blocks of a chain of class cls to their spans; the
 * rest of the chain. */
ms_block_t *_ms_central_give(unsigned cls, ms_block_t *b, unsigned n)
{
    central_t *c = &central[cls];
    unsigned given = 0;
    _ms_lock(&c->lock);
    for (; given < n && b; given++) {
        _ms_link_checked(b, cls);                         /* written after free: cut */
        ms_block_t *next = b->next;
        ms_segment_t *s = (ms_segment_t *)((uintptr_t)b & ~(uintptr_t)MS_SEGMENT_MASK);
        ms_page_t *pg = _ms_page_of(s, b);
        b->next = pg->free;
        pg->free = b;
        pg->used--;
        c->free_blocks++;
        if (pg->used == 0 && (pg->prev || pg->next || !pg->in_partial || pg->npages > 1)) {
            /* Empty, and not the only partial span of a one-page class (kept
             * against churn): back to its segment. */
            if (pg->in_partial) partial_remove(c, pg);
            c->spans--;
            c->free_blocks -= pg->capacity;
            if (pg->meta) _ms_meta_free(pg->meta, (size_t)pg->capacity * sizeof(ms_meta_t));
            pg->meta = NULL;
            _ms_page_free(pg);
        } else if (!pg->in_partial) {
            partial_push(c, pg);
        }
        b = next;
    }
    _ms_unlock(&c->lock);
    _ms_heap_account(-(int64_t)given * _ms_classes[cls].size);
    return b;
}

/* Whether p is the start of a block handed out from segment s; also its class.
 * Cheap enough for error paths; not used on the fast path. */
bool _ms_block_valid(ms_segment_t *s, const void *p, unsigned *cls_out)
{
    ms_where_t w;
    if (s->magic != (MS_SEGMENT_MAGIC ^ (uintptr_t)s) || !_ms_where(s, p, &w)) return false;
    if (w.idx * w.k->size != w.off || w.idx >= __atomic_load_n(&w.pg->carved, __ATOMIC_RELAXED)) return false;
    if (cls_out) *cls_out = w.cls;
    return true;
}

/* Whether p sits on its span's free list (the caller suspects a double free). */
bool _ms_central_holds(unsigned cls, const void *p)
{
    central_t *c = &central[cls];
    ms_segment_t *s = (ms_segment_t *)((uintptr_t)p & ~(uintptr_t)MS_SEGMENT_MASK);
    bool found = false;
    _ms_lock(&c->lock);
    ms_page_t *pg = _ms_page_of(s, p);
    if (pg->cls == cls)
        for (ms_block_t *b = pg->free; b && !found; b = b->next) {
            found = (b == p);
            if (_ms_track_on && !_ms_link_ok(b, cls)) break;
        }
    _ms_unlock(&c->lock);
    return found;
}

void _ms_central_stats(ms_class_stat_t out[MS_NCLASSES])
{
    for (unsigned i = 0; i < MS_NCLASSES; i++) {
        _ms_lock(&central[i].lock);
        out[i].spans = central[i].spans;
        out[i].capacity = central[i].spans * _ms_classes[i].capacity;
        out[i].central_free = central[i].free_blocks;
        _ms_unlock(&central[i].lock);
    }
}

/* check.c's sums against each class's central counts (class locks held). */
void _ms_central_check_locked(const uint64_t spans[MS_NCLASSES], const uint64_t free_blocks[MS_NCLASSES],
                              ms_check_fail_fn fail)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        if (central[c].spans != spans[c]) fail("a class's span count is not its spans'", &central[c], c);
        if (central[c].free_blocks != free_blocks[c]) fail("a class's free count is not its spans'", &central[c], c);
        for (ms_page_t *pg = central[c].partial; pg; pg = pg->next)
            if (!pg->in_partial || pg->cls != c) fail("the partial list holds a stranger", pg, c);
    }
}

void _ms_central_lock_all(void)
{
    for (unsigned i = 0; i < MS_NCLASSES; i++) _ms_lock(&central[i].lock);
}

void _ms_central_unlock_all(bool child)
{
    for (unsigned i = 0; i < MS_NCLASSES; i++) {
        if (child) pthread_mutex_init(&central[i].lock, NULL);
        else _ms_unlock(&central[i].lock);
    }
}
