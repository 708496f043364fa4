/* pool.c - size classes, and the central list of each class: spans with free
 * blocks, from which thread caches refill and into which they flush.  One lock
 * per class; a span's free list, `used` and `carved` belong to that lock. */
#include <limits.h>
#include <string.h>
#include "shim.h"

ms_class_t _ms_classes[MS_NCLASSES];
uint8_t    _ms_small_class[MS_SMALL_TABLE_MAX / MS_ALIGN + 1];

/* Whole batches parked between a flush and the next refill (tcmalloc's
 * transfer cache).  A thread whose cache overflows gives back one batch; the
 * next thread to run dry takes one.  Parked as a chain, the batch is taken
 * as a chain: a producer and a consumer thread (or one thread's churn past
 * its limit) hand blocks over in a few instructions a batch, instead of
 * each block going back to its span's free list and out again one by one.
 * Parked blocks still count as used by their spans (they keep them from
 * being given back), so a class parks at most MS_XFER_SLOTS batches and
 * MS_XFER_BYTES; the rest goes to the spans, and malloc_trim empties the
 * slots. */
#define MS_XFER_SLOTS 8
#define MS_XFER_BYTES ((size_t)64 << 10)

typedef struct central_s {
    pthread_mutex_t lock;
    ms_page_t      *partial;    /* spans with a free or uncarved block */
    uint64_t        spans;      /* spans in use by this class */
    uint64_t        free_blocks;/* free + uncarved blocks in those spans */
    uint32_t        nxfer;      /* batches parked (at most its class's xfer_max) */
    uint64_t        unparked;   /* parked batches taken, in all */
    uint64_t        unparked_seen; /* ... at the last look (_ms_central_look) */
    uint64_t        unparked_grown;/* ... at the last unpark_idle */
    uint32_t        nxfer_grown;   /* batches parked then: the oldest, if no take since */
    struct { ms_block_t *head, *tail; } xfer[MS_XFER_SLOTS];  /* each `batch` long */
} __attribute__((aligned(64))) central_t;

/* All zeros, locks included (PTHREAD_MUTEX_INITIALIZER): in the .bss, and
 * a class's pages are touched when it is first used, not at start-up (a
 * program of a few sizes touched all 24 KiB of them). */
static central_t central[MS_NCLASSES] = { [0 ... MS_NCLASSES - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER } };

/* New spans about to be taken by takes that hold no other lock (until a
 * take's first look); at every MS_GROW_LOOK-th, unpark_idle. */
#define MS_GROW_LOOK 8
static uint64_t growths;
static int      unparking;              /* a thread is in unpark_idle (it alone writes the *_grown) */
static void unpark_locked(central_t *c, unsigned cls);
static void unpark_idle(unsigned growing);

/* Class numbers: 0-7 are 16..128 by 16; 8-19 four per doubling to 1 KiB;
 * from 1 KiB to 16 KiB nine per doubling (MS_HEAD_DOUBLINGS of them): a
 * power of two plus 16 bytes, then eight steps of an eighth; above, eight
 * per doubling.  The first of the nine takes a power-of-two buffer with a
 * small header in front of it (sqlite's allocator prefixes every block with
 * its size: its 1 KiB and 4 KiB pages ask for 1032 and 4104 bytes), and a
 * tracked power-of-two request with its padding byte (track.c), which
 * would otherwise take the next class, 12.5% larger. */
#define MS_HEAD_FIRST     20        /* class of 1024 + 16 */
#define MS_HEAD_DOUBLINGS 4         /* 1 KiB, 2 KiB, 4 KiB, 8 KiB */
#define MS_HEAD_EXTRA     16        /* bytes above the power of two */
#define MS_PLAIN_FIRST    (MS_HEAD_FIRST + 9 * MS_HEAD_DOUBLINGS)   /* class of 16 KiB + 2 KiB */
_Static_assert(MS_PLAIN_FIRST + 8 * (19 - 10 - MS_HEAD_DOUBLINGS) == MS_NCLASSES, "class count");

static size_t class_size(unsigned c)
{
    if (c < 8) return (size_t)(c + 1) * 16;              /* 16 .. 128 */
    if (c < MS_HEAD_FIRST) {                             /* 4 per doubling to 1 KiB */
        unsigned k = c - 8, shift = 7 + k / 4;
        return ((size_t)1 << shift) + ((size_t)(k % 4 + 1) << (shift - 2));
    }
    if (c < MS_PLAIN_FIRST) {                            /* 2^s + 16, then 8 per doubling */
        unsigned k = c - MS_HEAD_FIRST, shift = 10 + k / 9, j = k % 9;
        return ((size_t)1 << shift) + (j ? (size_t)j << (shift - 3) : MS_HEAD_EXTRA);
    }
    unsigned k = c - MS_PLAIN_FIRST, shift = 10 + MS_HEAD_DOUBLINGS + k / 8;   /* 8 per doubling */
    return ((size_t)1 << shift) + ((size_t)(k % 8 + 1) << (shift - 3));
}

unsigned _ms_class_of(size_t n)
{
    if (n <= 128) return n ? (unsigned)((n - 1) / 16) : 0;
    unsigned b = 63 - (unsigned)__builtin_clzll(n - 1);  /* 2^b <= n-1 < 2^(b+1) */
    if (b < 10) return 8 + (b - 7) * 4 + (unsigned)(((n - 1) >> (b - 2)) & 3);
    unsigned step = (unsigned)(((n - 1) >> (b - 3)) & 7);
    if (b < 10 + MS_HEAD_DOUBLINGS) {
        unsigned first = MS_HEAD_FIRST + (b - 10) * 9;
        return n <= ((size_t)1 << b) + MS_HEAD_EXTRA ? first : first + 1 + step;
    }
    return MS_PLAIN_FIRST + (b - 10 - MS_HEAD_DOUBLINGS) * 8 + step;
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
        /* Thread cache: up to 128 blocks or 64 KiB (16 KiB above 1 KiB),
         * at least 1; none above MS_TCACHE_MAX (limit 0: every call goes
         * central).  Blocks above 1 KiB are written at some length by the
         * program; a trip to the central list (a parked batch, mostly)
         * costs little beside that, while their caches held about 4 MiB
         * in mstress's 4 threads (peak RSS 43.4 -> 40.3 MiB, glibc 34.8). */
        size_t lim = (size <= 1024 ? (size_t)64 << 10 : (size_t)16 << 10) / size;
        if (lim > 128) lim = 128;
        if (lim < 1) lim = 1;
        if (size > MS_TCACHE_MAX) lim = 0;
        k->limit = (uint16_t)lim;
        k->batch = (uint16_t)(lim > 1 ? lim / 2 : 1);
        size_t slots = lim ? MS_XFER_BYTES / ((size_t)k->batch * size) : 0;
        k->xfer_max = (uint16_t)(slots < MS_XFER_SLOTS ? slots : MS_XFER_SLOTS);
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

/* The locks this thread holds (shim.h). */
void _ms_held_add(pthread_mutex_t *m)
{
    _ms_held++;
    unsigned i = 0;
    while (i < MS_HELD_SLOTS && _ms_held_set.at[i]) i++;
    if (i < MS_HELD_SLOTS) _ms_held_set.at[i] = m;
    else _ms_held_set.beyond++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
bool _ms_held_has(const pthread_mutex_t *m)
{
    if (_ms_held_set.beyond) return true;
    for (unsigned i = 0; i < MS_HELD_SLOTS; i++)
        if (_ms_held_set.at[i] == m) return true;
    return false;
}
void _ms_held_drop(pthread_mutex_t *m)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    unsigned i = 0;
    while (i < MS_HELD_SLOTS && _ms_held_set.at[i] != m) i++;
    if (i < MS_HELD_SLOTS) _ms_held_set.at[i] = NULL;
    else if (_ms_held_set.beyond) _ms_held_set.beyond--;
    if (!--_ms_held) _ms_signals_due();
}

/* Take `want` blocks of class cls as a NULL-terminated chain: fewer if
 * memory ran out, more (one parked batch) if one was parked. */
unsigned _ms_central_take(unsigned cls, ms_block_t **head, ms_block_t **tail, unsigned want, uint32_t owner)
{
    central_t *c = &central[cls];
    const ms_class_t *k = &_ms_classes[cls];
    ms_block_t *h = NULL, *t = NULL;
    unsigned got = 0;
    if (!_ms_lock_unless_mine(&c->lock)) {        /* a handler inside its thread's refill (shim.h) */
        *head = *tail = NULL;
        return 0;
    }
    /* A parked batch, whole, even for a thread's small first refills: its
     * blocks are resident already, and taking it is cheaper than carving. */
    if (c->nxfer) {
        c->nxfer--;
        c->unparked++;
        h = c->xfer[c->nxfer].head;
        t = c->xfer[c->nxfer].tail;
        got = k->batch;
    }
    bool looked = false;
    while (got < want) {
        ms_page_t *pg = c->partial;
        if (!pg && !looked && _ms_held == 1 &&         /* holding this lock alone: see unpark_idle */
            !(__atomic_add_fetch(&growths, 1, __ATOMIC_RELAXED) & (MS_GROW_LOOK - 1))) {
            looked = true;
            _ms_unlock(&c->lock);
            unpark_idle(cls);
            _ms_lock(&c->lock);
            continue;                                   /* the list may have changed meanwhile */
        }
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
        /* The span's list ended while the span counts blocks still on it
         * (carved, not used): a zero was written over the last one's link
         * (or another link cut).  The blocks past it are lost to reuse:
         * counted used from now on, so that the span's figures stay true
         * (check.c), and it never goes back to its segment. */
        if (MS_UNLIKELY(!pg->free && _ms_track_on) && pg->used + (got - before) < pg->carved) {
            unsigned lost = pg->carved - pg->used - (got - before);
            if (t && got > before) _ms_corrupt_note(t);
            pg->used += lost;
            c->free_blocks -= lost;
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
        __atomic_store_n(&pg->owner, owner, __ATOMIC_RELAXED);
        if (!pg->free && pg->carved == pg->capacity) partial_remove(c, pg);
    }
    _ms_unlock(&c->lock);
    _ms_heap_account((int64_t)got * k->size);
    if (t) t->next = NULL;
    *head = h;
    *tail = t;
    return got;
}

/* The last of the first `batch` blocks of chain b, each block's link
 * checked (the last one's too: it leads to the rest of the chain); NULL if
 * the chain ends (or is cut) before that. */
static ms_block_t *batch_tail(ms_block_t *b, unsigned cls, unsigned batch)
{
    for (unsigned i = 1; i < batch; i++) {
        if (!_ms_link_checked(b, cls) || !b->next) return NULL;
        b = b->next;
    }
    _ms_link_checked(b, cls);
    return b;
}

/* Span pg got blocks back (class lock held): empty, and not the only
 * partial span of a one-page class (kept against churn), it goes back to
 * its segment -- unless this is a handler whose thread holds the segments'
 * lock (shim.h); else it is on the partial list. */
static inline __attribute__((always_inline)) void span_returned(central_t *c, ms_page_t *pg)
{
    if (pg->used == 0 && (pg->prev || pg->next || !pg->in_partial || pg->npages > 1) && !_ms_segment_mine()) {
        if (pg->in_partial) partial_remove(c, pg);
        c->spans--;
        c->free_blocks -= pg->capacity;
        if (pg->meta) _ms_meta_free(pg->meta, (size_t)pg->capacity * sizeof(ms_meta_t));
        pg->meta = NULL;
        _ms_page_free(pg);
    } else if (!pg->in_partial) {
        partial_push(c, pg);
    }
}

/* The first n blocks of chain b back to their spans (class lock held):
 * the rest of the chain; *given, how many went.  Every caller's chain
 * holds n blocks at least, so one that ends before, while tracking, had a
 * zero written over its last block's link (noted; the blocks past it are
 * lost to reuse). */
static inline __attribute__((always_inline))
ms_block_t *to_spans_locked(central_t *c, unsigned cls, ms_block_t *b, unsigned n, unsigned *given)
{
    unsigned k = 0;
    ms_block_t *last = NULL;
    for (; k < n && b; k++) {
        last = b;
        _ms_link_checked(b, cls);                         /* written after free: cut */
        ms_block_t *next = b->next;
        ms_segment_t *s = (ms_segment_t *)((uintptr_t)b & ~(uintptr_t)MS_SEGMENT_MASK);
        ms_page_t *pg = _ms_page_of(s, b);
        b->next = pg->free;
        pg->free = b;
        pg->used--;
        c->free_blocks++;
        span_returned(c, pg);
        b = next;
    }
    if (MS_UNLIKELY(k < n) && last && _ms_track_on) _ms_corrupt_note(last);
    *given = k;
    return b;
}

void _ms_span_give(ms_page_t *pg, ms_block_t *head, ms_block_t *tail, unsigned n)
{
    unsigned cls = pg->cls;
    central_t *c = &central[cls];
    if (!_ms_lock_unless_mine(&c->lock)) return;   /* a handler inside its thread's hold: kept (shim.h) */
    tail->next = pg->free;
    pg->free = head;
    pg->used -= n;
    c->free_blocks += n;
    span_returned(c, pg);
    _ms_unlock(&c->lock);
    _ms_heap_account(-(int64_t)n * _ms_classes[cls].size);
}

/* Return the first n blocks of a chain of class cls: whole batches parked
 * while the class has room for them, the rest to their spans.  Returns the
 * rest of the chain. */
ms_block_t *_ms_central_give(unsigned cls, ms_block_t *b, unsigned n)
{
    central_t *c = &central[cls];
    const unsigned batch = _ms_classes[cls].batch;
    unsigned given = 0, k;
    _ms_lock(&c->lock);
    while (n - given >= batch && c->nxfer < _ms_classes[cls].xfer_max) {   /* park whole batches */
        ms_block_t *t = batch_tail(b, cls, batch);
        if (!t) break;                                  /* short: to the spans below */
        ms_block_t *rest = t->next;
        t->next = NULL;
        c->xfer[c->nxfer].head = b;
        c->xfer[c->nxfer].tail = t;
        c->nxfer++;
        given += batch;
        b = rest;
    }
    b = to_spans_locked(c, cls, b, n - given, &k);
    given += k;
    _ms_unlock(&c->lock);
    _ms_heap_account(-(int64_t)given * _ms_classes[cls].size);
    return b;
}

/* The class's parked batches back to their spans (spans emptied by it can
 * go back to their segments).  The heap's figures do not change: parked
 * blocks are already out of it. */
static void unpark_locked(central_t *c, unsigned cls)
{
    unsigned k;
    while (c->nxfer) {
        c->nxfer--;
        to_spans_locked(c, cls, c->xfer[c->nxfer].head, _ms_classes[cls].batch, &k);
    }
}

/* The heap is growing (a class is about to take a new span, and
 * MS_GROW_LOOK spans were taken since the last time): the batches that
 * were parked already then, in classes that no thread took a batch from
 * since, go back to their spans, and the spans they empty to their
 * segments, where the new spans are cut from pages already resident.  A
 * program done with one size and on to the next kept each past size's
 * batches, and their spans, until the next look (an eighth of
 * MEMSHIM_DECAY later): bench `simple` (1,600 blocks of each size from
 * 16 B to 1 KiB in turn) peaked at 4,508 KiB, 600 KiB of it for parked
 * batches.  tcmalloc's transfer caches likewise give up room to the class
 * that needs it.  A batch goes only after it sat out MS_GROW_LOOK spans
 * taken at least, so a hand-over between two threads in progress keeps
 * its batches.  The caller holds no lock of the allocator's (a signal
 * handler inside a hold does not come here); each class's lock is taken
 * alone. */
static void unpark_idle(unsigned growing)
{
    if (__atomic_exchange_n(&unparking, 1, __ATOMIC_ACQUIRE)) return;
    for (unsigned cls = 0; cls < MS_NCLASSES; cls++) {
        central_t *c = &central[cls];
        uint32_t parked = __atomic_load_n(&c->nxfer, __ATOMIC_RELAXED);
        uint64_t taken = __atomic_load_n(&c->unparked, __ATOMIC_RELAXED);
        if (cls != growing && parked && taken == c->unparked_grown && c->nxfer_grown) {
            _ms_lock(&c->lock);             /* the bottom of the stack: xfer[0 .. old-1] */
            unsigned old = c->unparked == c->unparked_grown ? c->nxfer_grown : 0, k;
            if (old > c->nxfer) old = c->nxfer;     /* a look or malloc_trim took some */
            for (unsigned i = 0; i < old; i++)
                to_spans_locked(c, cls, c->xfer[i].head, _ms_classes[cls].batch, &k);
            c->nxfer -= old;
            memmove(c->xfer, c->xfer + old, c->nxfer * sizeof c->xfer[0]);
            parked = c->nxfer;
            taken = c->unparked;
            _ms_unlock(&c->lock);
        }
        /* written only when they change: a class never used stays on
         * the zero page (its pages of central[] not resident) */
        if (c->unparked_grown != taken) c->unparked_grown = taken;
        if (c->nxfer_grown != parked) c->nxfer_grown = parked;
    }
    __atomic_store_n(&unparking, 0, __ATOMIC_RELEASE);
}

/* Whether this thread holds class cls's lock: a signal handler's free in
 * the middle of its thread's refill or flush of the class keeps its block
 * (tcache.c, shim.h). */
bool _ms_central_mine(unsigned cls) { return _ms_lock_mine(&central[cls].lock); }

/* Every parked batch back to its spans (malloc_trim). */
void _ms_central_drain(void)
{
    for (unsigned cls = 0; cls < MS_NCLASSES; cls++) {
        _ms_lock(&central[cls].lock);
        unpark_locked(&central[cls], cls);
        _ms_unlock(&central[cls].lock);
    }
}

/* The parked batches of each class that no thread took one from since the
 * last look, to their spans (_ms_tcache_look: the thread that looks first
 * in each eighth of MEMSHIM_DECAY). */
void _ms_central_look(uint64_t now)
{
    static uint64_t next;
    uint64_t due = __atomic_load_n(&next, __ATOMIC_RELAXED);
    if (now < due || !__atomic_compare_exchange_n(&next, &due, now + _ms_look_interval_ns(),
                                                  false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    for (unsigned cls = 0; cls < MS_NCLASSES; cls++) {
        central_t *c = &central[cls];
        if (!__atomic_load_n(&c->nxfer, __ATOMIC_RELAXED)) continue;
        _ms_lock(&c->lock);
        if (c->unparked == c->unparked_seen) unpark_locked(c, cls);
        c->unparked_seen = c->unparked;
        _ms_unlock(&c->lock);
    }
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

/* Whether p sits in a parked batch or on its span's free list (the caller
 * suspects a double free). */
bool _ms_central_holds(unsigned cls, const void *p)
{
    central_t *c = &central[cls];
    ms_segment_t *s = (ms_segment_t *)((uintptr_t)p & ~(uintptr_t)MS_SEGMENT_MASK);
    bool found = false;
    _ms_lock(&c->lock);
    for (unsigned i = 0; i < c->nxfer && !found; i++)
        found = _ms_chain_holds(c->xfer[i].head, p, cls, _ms_classes[cls].batch);
    ms_page_t *pg = _ms_page_of(s, p);
    /* at most the span's blocks: a double free racing in two threads
     * (undefined, pools alone) can close the list into a cycle, which a
     * walk to its end went round for ever (found by a helper) */
    if (!found && pg->cls == cls) found = _ms_chain_holds(pg->free, p, cls, pg->capacity);
    _ms_unlock(&c->lock);
    return found;
}

void _ms_central_stats(ms_class_stat_t out[MS_NCLASSES])
{
    for (unsigned i = 0; i < MS_NCLASSES; i++) {
        _ms_lock(&central[i].lock);
        out[i].spans = central[i].spans;
        out[i].capacity = central[i].spans * _ms_classes[i].capacity;
        out[i].parked = (uint64_t)central[i].nxfer * _ms_classes[i].batch;
        out[i].central_free = central[i].free_blocks + out[i].parked;
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
        if (central[c].nxfer > _ms_classes[c].xfer_max) fail("more batches parked than a class parks", &central[c], c);
        for (unsigned i = 0; i < central[c].nxfer; i++) {
            unsigned n = 0;
            ms_block_t *last = NULL;
            for (ms_block_t *b = central[c].xfer[i].head; b && n <= _ms_classes[c].batch; b = b->next, n++) {
                unsigned got;
                ms_segment_t *s = _ms_segment_of(b);
                if (!s || !_ms_block_valid(s, b, &got) || got != c) fail("a parked batch holds no block of its class", b, c);
                last = b;
            }
            if (n != _ms_classes[c].batch || last != central[c].xfer[i].tail)
                fail("a parked batch is not one batch long", central[c].xfer[i].head, n);
        }
    }
}

void _ms_central_lock_all(void)
{
    for (unsigned i = 0; i < MS_NCLASSES; i++) _ms_lock(&central[i].lock);
}

void _ms_central_unlock_all(bool child)
{
    if (child) unparking = 0;           /* the thread in unpark_idle is not in the child */
    for (unsigned i = 0; i < MS_NCLASSES; i++) {
        if (child) pthread_mutex_init(&central[i].lock, NULL);
        else _ms_unlock(&central[i].lock);
    }
}
