/* test_pool.c - pool bookkeeping: blocks taken from and given back to the
 * central lists, spans claimed from and returned to segments, the ownership
 * bitmap, and thread-cache limits. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"

static void setup(void) { _ms_init(); free(malloc(1)); }
TestSuite(pool, .init = setup);

/* A class the test process (Criterion included) does not otherwise use. */
#define CLS _ms_class_of(80 << 10)   /* 80 KiB blocks */

static ms_class_stat_t stat_of(unsigned cls)
{
    ms_class_stat_t st[MS_NCLASSES];
    _ms_central_stats(st);
    return st[cls];
}

Test(pool, take_gives_distinct_valid_blocks)
{
    ms_block_t *head, *tail;
    unsigned cls = 3;   /* 64-byte blocks */
    unsigned n = _ms_central_take(cls, &head, &tail, 500, 1);
    cr_assert_eq(n, 500);
    ms_block_t **seen = calloc(n, sizeof *seen);
    unsigned i = 0;
    for (ms_block_t *b = head; b; b = b->next, i++) {
        seen[i] = b;
        ms_segment_t *s = _ms_segment_of(b);
        cr_assert_not_null(s, "block %p not in a memshim segment", (void *)b);
        unsigned got;
        cr_assert(_ms_block_valid(s, b, &got));
        cr_assert_eq(got, cls);
        cr_assert_eq((uintptr_t)b % 16, 0);
        if (!b->next) cr_assert_eq(b, tail);
    }
    cr_assert_eq(i, n);
    for (unsigned a = 0; a < n; a++)
        for (unsigned b = a + 1; b < n; b++) cr_assert_neq(seen[a], seen[b]);
    _ms_central_give(cls, head, n);
    free(seen);
}

Test(pool, spans_are_claimed_and_returned)
{
    ms_class_stat_t before = stat_of(CLS);
    ms_block_t *head, *tail;
    unsigned cap = _ms_classes[CLS].capacity;
    unsigned want = cap * 3;                        /* needs three spans */
    unsigned n = _ms_central_take(CLS, &head, &tail, want, 1);
    cr_assert_eq(n, want);
    ms_class_stat_t mid = stat_of(CLS);
    cr_assert_eq(mid.spans, before.spans + 3 - (before.central_free >= cap ? 1 : 0));
    cr_assert_eq(mid.capacity - mid.central_free, (before.capacity - before.central_free) + want);
    _ms_central_give(CLS, head, n);
    ms_class_stat_t after = stat_of(CLS);
    /* every span emptied goes back to its segment, except one kept for reuse */
    cr_assert_leq(after.spans, 1);
    cr_assert_eq(after.capacity - after.central_free, before.capacity - before.central_free);
}

Test(pool, freed_page_is_no_longer_owned_as_a_block)
{
    ms_page_t *pg = _ms_page_alloc(2, CLS);
    cr_assert_not_null(pg);
    ms_segment_t *s = _ms_segment_of(pg->start);
    cr_assert_not_null(s);
    unsigned i = _ms_page_index(s, pg->start);
    cr_assert_eq(s->page_class[i], CLS);
    cr_assert_eq(s->page_class[i + 1], CLS);
    cr_assert_eq(s->span_head[i + 1], i);
    cr_assert_eq(s->free_mask >> i & 3, 0);
    _ms_page_free(pg);
    cr_assert_eq(s->page_class[i], MS_CLASS_NONE);
    cr_assert_eq(s->page_class[i + 1], MS_CLASS_NONE);
}

Test(pool, ownership_bitmap_rejects_foreign_pointers)
{
    static char data[64];
    int local;
    cr_assert_null(_ms_segment_of(data));
    cr_assert_null(_ms_segment_of(&local));
    cr_assert_null(_ms_segment_of((void *)(uintptr_t)0xffff800000000000ull));
    void *p = malloc(100);
    cr_assert_not_null(_ms_segment_of(p));
    cr_assert_not(_ms_owns(data));
    cr_assert(_ms_owns(p));
    cr_assert_not(_ms_owns((char *)p + 16), "an interior pointer is not a block");
    free(p);
}

Test(pool, thread_cache_stays_within_its_limit)
{
    unsigned cls = _ms_class_of(40);
    void *v[1000];
    for (int i = 0; i < 1000; i++) v[i] = malloc(40);
    for (int i = 0; i < 1000; i++) free(v[i]);
    ms_tcache_t *tc = _ms_thread.tc;
    cr_assert_not_null(tc);
    cr_assert_leq(tc->bins[cls].count, tc->bins[cls].limit);
    unsigned n = 0;
    for (ms_block_t *b = tc->bins[cls].head; b; b = b->next) n++;
    cr_assert_eq(n, tc->bins[cls].count, "count matches the list");
}

/* A new thread's refills of a class: MS_FIRST_BATCH blocks, then twice as
 * many each time up to the class's batch (slow start).  malloc is called
 * through a volatile pointer: gcc assumes malloc leaves memshim's own
 * thread-local cache pointer alone, and would read it once, before. */
static void *(*volatile alloc)(size_t) = malloc;

/* 60-byte blocks: the 64-byte class, with tracking's byte more or without */
static void *first_refills(void *arg)
{
    unsigned cls = _ms_class_of(60), *held = arg, k = 0;
    void *v[256];
    unsigned n = 0;
    for (unsigned want = MS_FIRST_BATCH;; want *= 2) {
        if (want > _ms_classes[cls].batch) want = _ms_classes[cls].batch;
        v[n++] = alloc(60);                           /* empties the bin: a refill */
        held[k++] = _ms_thread.tc->bins[cls].count;          /* what else it brought */
        for (unsigned i = 1; i < want; i++) v[n++] = alloc(60);
        if (want == _ms_classes[cls].batch || n + 2 * want > 256) break;
    }
    held[k] = UINT32_MAX;
    for (unsigned i = 0; i < n; i++) free(v[i]);
    return NULL;
}

Test(pool, a_new_thread_starts_with_small_batches)
{
    unsigned held[16];
    pthread_t t;
    malloc_trim(0);                 /* no parked batch, which a first refill takes whole */
    cr_assert_eq(pthread_create(&t, NULL, first_refills, held), 0);
    pthread_join(t, NULL);
    unsigned cls = _ms_class_of(60), want = MS_FIRST_BATCH, k = 0;
    cr_assert_geq(_ms_classes[cls].batch, 4 * MS_FIRST_BATCH, "the class has room to grow");
    for (; held[k] != UINT32_MAX; k++, want *= 2) {
        if (want > _ms_classes[cls].batch) want = _ms_classes[cls].batch;
        cr_assert_eq(held[k], want - 1, "refill %u: %u blocks cached, expected %u", k, held[k], want - 1);
    }
    cr_assert_geq(k, 3u);
}

/* A thread's first allocation, as a signal handler makes it in the middle
 * of the thread's first call (which is making the thread's cache): the
 * block comes from the central lists and no cache is made; the thread's
 * own call then makes it. */
typedef struct { void *p; bool cached_then, cached_after; } nested_first_t;

static void *nested_first(void *arg)
{
    nested_first_t *r = arg;
    _ms_bins_enter();                     /* the thread's call, under way */
    r->p = alloc(40);
    r->cached_then = _ms_thread.tc != NULL;
    free(r->p);
    _ms_bins_leave();
    free(alloc(40));
    r->cached_after = _ms_thread.tc != NULL;
    return NULL;
}

Test(pool, a_handler_in_a_threads_first_call_goes_central)
{
    nested_first_t r = { 0 };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, nested_first, &r), 0);
    pthread_join(t, NULL);
    cr_assert_not_null(r.p, "the handler's malloc failed");
    cr_assert(!r.cached_then, "a cache was made in the middle of the thread's first call");
    cr_assert(r.cached_after, "the thread's own call made no cache");
}

typedef struct { void **v; unsigned n; size_t size; } blocks_t;

static void *alloc_all(void *arg)
{
    blocks_t *b = arg;
    for (unsigned i = 0; i < b->n; i++) b->v[i] = alloc(b->size);
    return NULL;
}

static void *free_all(void *arg)
{
    void **v = arg;
    for (unsigned i = 0; v[i]; i++) free(v[i]);
    return NULL;
}

/* free_all, then alive until told: its cache is not yet left for the next
 * thread (tcache.c). */
typedef struct { void **v; sem_t freed, go; } free_wait_t;
static void *free_all_and_wait(void *arg)
{
    free_wait_t *w = arg;
    free_all(w->v);
    sem_post(&w->freed);
    sem_wait(&w->go);
    return NULL;
}

/* The first allocation of a new thread: how many blocks its refill brought
 * along (left in its cache), and whether it is one of `v`. */
typedef struct { size_t size; unsigned cls; void **v; unsigned n; unsigned cached; bool among; } first_t;

static void *first_alloc(void *arg)
{
    first_t *f = arg;
    void *p = alloc(f->size);
    f->cached = _ms_thread.tc->bins[f->cls].count;
    f->among = false;
    for (unsigned i = 0; i < f->n; i++) f->among |= f->v[i] == p;
    free(p);
    return NULL;
}

/* A thread frees past its cache's limit once: its blocks go back in whole
 * batches, parked in the class's slots.  The next thread to run dry (a new
 * one, whose first refill of the class this is, started while the other
 * still runs) takes one whole, not the small first refill carved from the
 * spans; the figures count parked blocks as free, and malloc_trim gives
 * them back to their spans, which can then go back to their segments. */
Test(pool, batches_freed_by_one_thread_are_taken_whole_by_another)
{
    const size_t size = 700;                        /* a one-page class (Criterion uses it too) */
    unsigned cls = _ms_class_of(size);
    const ms_class_t *k = &_ms_classes[cls];
    cr_assert_eq(k->npages, 1);
    cr_assert_gt(k->batch, MS_FIRST_BATCH, "a whole batch is told from a first refill");
    malloc_trim(0);                                 /* nothing parked */
    ms_stats_t *st = malloc(sizeof *st);
    _ms_stats_collect_heap(st);
    uint64_t in_use = st->cls[cls].in_use, spans = st->cls[cls].spans;
    unsigned n = k->limit + k->batch;               /* overflows once; the exit gives the rest */
    void **v = calloc(n + 1, sizeof *v);
    blocks_t b = { v, n, size };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, alloc_all, &b), 0);
    pthread_join(t, NULL);
    for (unsigned i = 0; i < n; i++) cr_assert_not_null(v[i]);
    free_wait_t w = { .v = v };
    sem_init(&w.freed, 0, 0);
    sem_init(&w.go, 0, 0);
    pthread_t freer;
    cr_assert_eq(pthread_create(&freer, NULL, free_all_and_wait, &w), 0);
    sem_wait(&w.freed);

    cr_assert_geq(stat_of(cls).parked, k->batch, "a batch is parked");
    _ms_stats_collect_heap(st);
    cr_assert_eq(st->cls[cls].in_use, in_use, "parked blocks are free, not in use (%llu in use, %llu before)",
                 (unsigned long long)st->cls[cls].in_use, (unsigned long long)in_use);

    first_t f = { size, cls, v, n, 0, false };
    cr_assert_eq(pthread_create(&t, NULL, first_alloc, &f), 0);
    pthread_join(t, NULL);
    sem_post(&w.go);
    pthread_join(freer, NULL);
    cr_assert_eq(f.cached, k->batch - 1u, "the first refill brought %u blocks, not a parked batch of %u",
                 f.cached + 1, k->batch);
    cr_assert(f.among, "the batch is the other thread's blocks");

    malloc_trim(0);
    cr_assert_eq(stat_of(cls).parked, 0, "malloc_trim gives parked batches back to their spans");
    _ms_stats_collect_heap(st);
    cr_assert_eq(st->cls[cls].in_use, in_use);
    cr_assert_leq(st->cls[cls].spans, spans + 1, "parked blocks went back, and their empty spans "
                  "too (but one kept against churn): %llu spans, %llu before",
                  (unsigned long long)st->cls[cls].spans, (unsigned long long)spans);
    free(st);
    free(v);
}

/* n blocks of class a taken from its central list and given back
 * (parked, if whole batches and the class has room). */
static void park(unsigned a, unsigned n)
{
    ms_block_t *head, *tail;
    cr_assert_eq(_ms_central_take(a, &head, &tail, n, 1), n);
    cr_assert_null(_ms_central_give(a, head, n), "all given back");
}

/* Class b takes `spans` new spans' worth of blocks in `calls` takes, kept
 * in *h until unheld gives them back. */
typedef struct { ms_block_t *head[16]; unsigned n[16], calls; unsigned cls; } held_t;
static void grow(held_t *h, unsigned b, unsigned spans, unsigned calls)
{
    ms_block_t *tail;
    h->cls = b;
    for (unsigned i = 0; i < calls; i++, h->calls++) {
        unsigned want = _ms_classes[b].capacity * (spans / calls);
        h->n[h->calls] = _ms_central_take(b, &h->head[h->calls], &tail, want, 1);
        cr_assert_eq(h->n[h->calls], want);
    }
}
static void unheld(held_t *h)
{
    for (unsigned i = 0; i < h->calls; i++) _ms_central_give(h->cls, h->head[i], h->n[i]);
    h->calls = 0;
}

/* A program done with one size and on to another: while the heap grows
 * with the new size's spans, the batches parked for the old size that no
 * thread took go back to their spans, and the spans to their segment, for
 * the new spans to be cut from. */
Test(pool, idle_parked_batches_go_back_while_another_class_grows)
{
    unsigned a = _ms_class_of(2000), b = _ms_class_of(24 << 10);
    const ms_class_t *k = &_ms_classes[a];
    malloc_trim(0);
    park(a, 2 * k->batch);
    cr_assert_eq(stat_of(a).parked, 2 * k->batch, "two batches parked");
    held_t h = { .calls = 0 };
    grow(&h, b, 64, 8);                 /* 64 spans: several looks */
    cr_assert_eq(stat_of(a).parked, 0, "idle batches went back to their spans");
    cr_assert_leq(stat_of(a).spans, 1, "and their empty spans to the segment (but one kept against churn)");
    unheld(&h);
}

/* A class whose parked batches are taken between two looks (a hand-over
 * between threads, in progress) keeps them however much the heap grows. */
Test(pool, parked_batches_in_use_stay_while_another_class_grows)
{
    unsigned a = _ms_class_of(2000), b = _ms_class_of(24 << 10);
    const ms_class_t *k = &_ms_classes[a];
    malloc_trim(0);
    park(a, 2 * k->batch);
    held_t h = { .calls = 0 };
    for (int round = 0; round < 8; round++) {
        grow(&h, b, 8, 1);              /* a look at most */
        park(a, k->batch);              /* a parked batch taken, then parked again */
    }
    cr_assert_eq(stat_of(a).parked, 2 * k->batch, "both batches still parked");
    unheld(&h);
}

/* A signal handler whose thread is taking a span (the segments' lock its
 * thread's) and that needs a new span too: a block of a larger class that
 * has one free, not NULL.  Taking the lock here stands for the thread. */
Test(pool, a_handler_inside_its_threads_span_take_gets_a_larger_block)
{
    unsigned cls = _ms_class_of(9000), got;
    cr_assert_eq(stat_of(cls).spans, 0, "no span of the class yet");
    void *keep = malloc(12000);         /* a span of a larger class, with free blocks */
    cr_assert_not_null(keep);
    _ms_segment_lock();
    void *p = malloc(9000);
    _ms_segment_unlock(false);
    cr_assert_not_null(p, "a block, not ENOMEM");
    cr_assert(_ms_block_valid(_ms_segment_of(p), p, &got), "a block of the pools");
    cr_assert_gt(got, cls, "of a larger class (%u, asked %u)", got, cls);
    cr_assert_eq(stat_of(cls).spans, 0, "no span taken under the thread's hold");
    memset(p, 1, 9000);
    free(p);
    free(keep);
}

/* The same when the larger class's bin holds blocks already: the batch
 * taken for the handler goes in front of them.  The refill wrote the
 * batch over the bin's list but added to its count, so the bin counted a
 * block it no longer held; the thread's next flush of that bin gave a
 * NULL list to the central lists and crashed (tests/fixtures/signal_spans
 * under tracking, 3 runs in 450 with the machine busy). */
Test(pool, a_handler_taking_a_larger_block_keeps_that_bins_blocks)
{
    unsigned cls = _ms_class_of(9000), up = _ms_class_of(12000);
    void *a = malloc(12000), *held = malloc(12000);
    cr_assert(a && held);
    free(held);                          /* the larger class's bin holds it */
    ms_bin_t *bin = &_ms_thread.tc->bins[up];
    cr_assert_geq(bin->count, 1);
    for (unsigned c = cls + 1; c < up; c++)
        cr_assert_eq(stat_of(c).spans, 0, "class %u between has no span: the handler's block comes from %u", c, up);
    _ms_segment_lock();
    void *p = malloc(9000);
    _ms_segment_unlock(false);
    unsigned got = 0;
    cr_assert(p && _ms_block_valid(_ms_segment_of(p), p, &got) && got == up, "a block of class %u (%u)", up, got);
    unsigned n = 0;
    bool has_held = false;
    for (ms_block_t *b = bin->head; b && n <= bin->count; b = b->next, n++) has_held |= b == held;
    cr_expect_eq(n, bin->count, "the bin counts %u blocks and holds %u", bin->count, n);
    cr_expect(has_held, "the block the bin held is still there");
    free(p);
    free(a);
}

/* Blocks above MS_TCACHE_MAX are never held by a thread cache: a freed
 * one is back in its span at once, and its empty span back in its segment. */
Test(pool, blocks_above_the_cache_limit_go_straight_back)
{
    unsigned cls = _ms_class_of(MS_TCACHE_MAX + 1);
    cr_assert_eq(_ms_classes[cls].limit, 0);
    cr_assert_geq(_ms_classes[_ms_class_of(MS_TCACHE_MAX)].limit, 1, "the largest cached class");
    uint64_t spans = stat_of(cls).spans;
    void *p = alloc(MS_TCACHE_MAX + 1);
    cr_assert_not_null(p);
    memset(p, 7, MS_TCACHE_MAX + 1);
    cr_assert_eq(stat_of(cls).spans, spans + 1);
    free(p);
    cr_assert_eq(_ms_thread.tc->bins[cls].count, 0, "not in the thread's cache");
    cr_assert_eq(stat_of(cls).spans, spans, "its span went back to its segment");
    void *q = alloc(MS_TCACHE_MAX + 1);
    cr_assert_not_null(q);
    free(q);
}

Test(pool, free_then_malloc_reuses_the_block)
{
    void *p = malloc(200);
    free(p);
    void *q = malloc(200);
    cr_assert_eq(p, q, "LIFO thread cache hands the same block back");
    free(q);
}

/* Hoard's cache-scratch: the main thread allocates a block for each
 * thread, one after another, so that they share a cache line; a thread
 * frees its block and allocates its own.  Handed its freed block again,
 * it would write beside the block the main thread (or the next thread)
 * holds.  A thread's first free of a class, of a block of another
 * thread's span, goes under a refill: the thread's next blocks come from
 * spans it takes for itself.  (Which lines those are depends on what the
 * test process did with the class before; bench `scratch` measures the
 * effect.) */
typedef struct { void *given, *got, *bottom; unsigned count; bool owns; } scratch_t;

/* fn(arg) on a new thread, waited for. */
static void in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    pthread_join(t, NULL);
}

/* Where block p lies: its span and class (tracking pads a request:
 * malloc(16) is no block of the class of 16). */
static ms_where_t where_of(void *p)
{
    ms_where_t w = { 0 };
    cr_assert(_ms_where(_ms_segment_of(p), p, &w));
    return w;
}

static void *free_given_then_alloc(void *arg)
{
    scratch_t *r = arg;
    free(r->given);
    r->got = malloc(16);
    ms_tcache_t *tc = _ms_thread.tc;
    ms_where_t w = where_of(r->got);
    ms_bin_t *b = &tc->bins[w.cls];
    r->count = __atomic_load_n(&b->count, __ATOMIC_RELAXED);
    for (ms_block_t *blk = b->head; blk; blk = blk->next) r->bottom = blk;
    r->owns = w.pg->owner == tc->id;
    free(r->got);
    return NULL;
}

Test(pool, a_threads_first_free_of_another_threads_block_goes_under_a_refill)
{
    void *given = malloc(16), *neighbour = malloc(16);   /* the main thread keeps the second */
    scratch_t r = { .given = given };
    in_thread(free_given_then_alloc, &r);
    cr_assert_neq(r.got, given, "the freed block is not handed out again at once");
    cr_assert(r.owns, "the thread's block comes from a span it took blocks from itself");
    cr_assert_eq(r.bottom, given, "the freed block waits at the bottom of the bin (%p, %p; %u)", r.bottom, given, r.count);
    cr_assert_geq(r.count, 2u, "under the refill's blocks (%u cached)", r.count);
    free(neighbour);
}

/* A bin emptied by allocations takes a free on top, as ever: the next
 * malloc hands the block back. */
static void *empty_own_bin_then_free(void *arg)
{
    scratch_t *r = arg;
    ms_bin_t *b;
    void *v[256];
    unsigned n = 0;
    void *first = malloc(16);
    v[n++] = first;
    b = &_ms_thread.tc->bins[where_of(first).cls];
    /* (read anew after each call: GCC takes malloc for one that writes no
     * memory the caller can see) */
    while (__atomic_load_n(&b->count, __ATOMIC_RELAXED) && n < 256) v[n++] = malloc(16);
    r->count = __atomic_load_n(&b->count, __ATOMIC_RELAXED);
    r->given = v[n - 1];
    free(v[n - 1]);
    r->got = malloc(16);
    for (unsigned i = 0; i < n - 1; i++) free(v[i]);
    free(r->got);
    return NULL;
}

Test(pool, a_free_into_a_bin_emptied_by_allocations_comes_back_next)
{
    scratch_t r = { 0 };
    in_thread(empty_own_bin_then_free, &r);
    cr_assert_eq(r.count, 0u, "the bin was empty at the free (%u)", r.count);
    cr_assert_neq(r.given, NULL);
    cr_assert_eq(r.got, r.given, "LIFO: the block just freed is handed back");
}

Test(pool, huge_blocks_are_registered_and_released)
{
    ms_huge_stat_t a, b, c;
    _ms_huge_stats(&a);
    char *p = malloc(MS_MAX_SMALL + 1);
    cr_assert_not_null(p);
    cr_assert_null(_ms_segment_of(p), "huge blocks live outside segments");
    cr_assert_geq(_ms_huge_usable(p), MS_MAX_SMALL + 1);
    _ms_huge_stats(&b);
    cr_assert_eq(b.blocks, a.blocks + 1);
    memset(p, 1, MS_MAX_SMALL + 1);
    p = realloc(p, 8 << 20);
    cr_assert_not_null(p);
    cr_assert_eq(p[MS_MAX_SMALL], 1);
    cr_assert_geq(_ms_huge_usable(p), 8u << 20);
    free(p);
    _ms_huge_stats(&c);
    cr_assert_eq(c.blocks, a.blocks);
    cr_assert_eq(c.bytes, a.bytes);
}

Test(pool, trim_returns_empty_segments)
{
    enum { N = 20000 };
    void **v = malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) v[i] = malloc(1000);   /* ~20 MB: several segments */
    ms_segment_stat_t a, b;
    _ms_segment_stats(&a);
    for (int i = 0; i < N; i++) free(v[i]);
    free(v);
    malloc_trim(0);
    _ms_segment_stats(&b);
    cr_assert_lt(b.segments, a.segments);
    cr_assert_gt(b.unmapped_total, a.unmapped_total);
    cr_assert_eq(b.dirty, 0);
}

/* A block grown a little at a time (a string appended to) moves to a class
 * with room for half as much again, so the next steps stay in place: a
 * string grown by 16 bytes at a time from 16 bytes to 256 KiB moves about
 * 25 times (1.5 per move), not at each of the ~80 classes it crosses, and
 * keeps its bytes.  A jump of half the block's size or more gets the class
 * of the size asked, as does a first malloc. */
Test(pool, a_block_grown_in_steps_moves_rarely)
{
    static void *(*volatile re)(void *, size_t) = realloc;
    size_t n = 16;
    unsigned char *p = alloc(n);
    memset(p, 0xA5, n);
    unsigned moves = 0, crossed = 0;
    while (n < ((size_t)256 << 10)) {
        size_t m = n + 16;
        crossed += _ms_class_of(m) != _ms_class_of(n);
        unsigned char *q = re(p, m);
        cr_assert_not_null(q);
        moves += q != p;
        cr_assert_eq(q[n - 1], 0xA5, "the bytes moved with the block (%zu)", n);
        memset(q + n, 0xA5, m - n);
        p = q;
        n = m;
    }
    for (size_t i = 0; i < n; i++) cr_assert_eq(p[i], 0xA5);
    cr_assert_gt(crossed, 60u, "the steps cross %u classes", crossed);
    cr_assert_leq(moves, 30u, "moved %u times in %u class changes", moves, crossed);
    free(p);

    p = alloc(1000);
    p = re(p, 5000);                                /* a jump: the size asked */
    cr_assert_eq(_ms_usable_size(p), _ms_classes[_ms_class_of(5000)].size);
    free(p);
}

/* Each size gets the smallest class that holds it (with tracking, one byte
 * more, so that a pointer just past a block never starts the next): what
 * _ms_usable_size says, which is malloc_usable_size without tracking. */
Test(pool, every_size_gets_its_class_block)
{
    for (size_t n = 0; n <= 40000; n += n < 2048 ? 1 : 37) {
        void *p = alloc(n);
        cr_assert_not_null(p);
        size_t want = _ms_track_on ? n + 1 : n;
        cr_assert_eq(_ms_usable_size(p), _ms_classes[_ms_class_of(want ? want : 1)].size,
                     "malloc(%zu): usable %zu", n, _ms_usable_size(p));
        free(p);
    }
}

/* ---- a thread's cache left for the next thread (tcache.c) ---------------------- */

/* Allocates and frees `n` blocks of `size`, then tells what its cache holds
 * of their class: the blocks a thread that ends leaves behind. */
typedef struct { size_t size; unsigned cls, n, left; void *last; } leave_t;
static void *alloc_then_leave(void *arg)
{
    leave_t *l = arg;
    void *v[64];
    for (unsigned i = 0; i < l->n; i++) v[i] = alloc(l->size);
    for (unsigned i = 0; i < l->n; i++) free(v[i]);
    l->last = v[l->n - 1];                          /* on top of its bin */
    l->left = _ms_thread.tc->bins[l->cls].count;
    return NULL;
}

static uint64_t cached_of(unsigned cls)
{
    ms_stats_t *st = malloc(sizeof *st);
    _ms_stats_collect_heap(st);
    uint64_t n = st->cls[cls].cached;
    free(st);
    return n;
}

/* Short threads started one after another: the next one takes over the
 * cache the last one left, blocks and all, with no refill; the blocks
 * count as cached (free) meanwhile, and malloc_trim gives them back. */
Test(pool, a_thread_takes_over_the_cache_a_thread_gone_left)
{
    const size_t size = 700;
    unsigned cls = _ms_class_of(size);
    malloc_trim(0);
    uint64_t mine = _ms_thread.tc->bins[cls].count;
    leave_t a = { size, cls, 20, 0, NULL };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, alloc_then_leave, &a), 0);
    pthread_join(t, NULL);
    cr_assert_geq(a.left, 20u);
    cr_assert_eq(cached_of(cls), mine + a.left, "the blocks left count as cached");

    first_t f = { size, cls, &a.last, 1, 0, false };
    cr_assert_eq(pthread_create(&t, NULL, first_alloc, &f), 0);
    pthread_join(t, NULL);
    cr_assert(f.among, "the next thread's first block is the one the last thread freed last");
    cr_assert_eq(f.cached, a.left - 1, "its cache is the one left (%u blocks), not a refill (%u)",
                 a.left, f.cached + 1);

    malloc_trim(0);
    cr_assert_eq(cached_of(cls), _ms_thread.tc->bins[cls].count, "malloc_trim gives back what was left");
}

/* Left and not taken over within a look's interval, the blocks go back
 * at the next look of a thread that runs. */
Test(pool, a_cache_left_and_not_taken_goes_back_at_a_look)
{
    const size_t size = 700;
    unsigned cls = _ms_class_of(size);
    malloc_trim(0);
    _ms_opt.decay_ms = 8;                          /* a look's interval: 1 ms */
    leave_t a = { size, cls, 20, 0, NULL };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, alloc_then_leave, &a), 0);
    pthread_join(t, NULL);
    uint64_t mine = _ms_thread.tc->bins[cls].count;
    cr_assert_eq(cached_of(cls), mine + a.left);
    usleep(5000);
    _ms_thread.tc->next_look = 0;                  /* this thread's look is due */
    _ms_tcache_look(_ms_thread.tc, cls);
    cr_assert_eq(cached_of(cls), _ms_thread.tc->bins[cls].count, "the blocks left went back (%llu cached)",
                 (unsigned long long)cached_of(cls));
}
