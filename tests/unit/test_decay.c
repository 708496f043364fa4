/* test_decay.c - freed memory kept for reuse and given back after
 * MEMSHIM_DECAY (_ms_opt.decay_ms, set here directly): cached huge mappings
 * (huge.c) and dirty pages of segments (segment.c).  The delays are short
 * and the tests wait several times longer than them: they check what is
 * kept and what is given back, never how fast. */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "shim.h"

#define MiB ((size_t)1 << 20)

static void setup(void) { _ms_init(); free(malloc(1)); malloc_trim(0); }
TestSuite(decay, .init = setup);

/* The pools' functions, not the tracked ones the program's malloc is
 * here: tracking gives each block a byte more, which takes a page more
 * for a huge block of whole pages, and these tests count pages. */
static void *(*volatile v_malloc)(size_t) = _ms_malloc;
static void *(*volatile v_calloc)(size_t, size_t) = _ms_calloc;
static void pfree(void *p) { _ms_free(p); }

static ms_huge_stat_t huge_now(void)
{
    ms_huge_stat_t st;
    _ms_huge_stats(&st);
    return st;
}

/* Resident 4 KiB pages of [p, p+len). */
static size_t resident(const void *p, size_t len)
{
    unsigned char vec[4096];
    size_t pages = len / 4096, n = 0;
    cr_assert_leq(pages, sizeof vec);
    cr_assert_eq(mincore((void *)p, len, vec), 0, "mincore: %s", strerror(errno));
    for (size_t i = 0; i < pages; i++) n += vec[i] & 1;
    return n;
}

/* memset that the compiler keeps although the block is freed next. */
static void fill(void *p, int byte, size_t len)
{
    memset(p, byte, len);
    __asm__ volatile("" :: "r"(p) : "memory");
}

static void wait_past(unsigned ms) { usleep(ms * 1000 * 3); }

/* ---- huge blocks ---------------------------------------------------------------- */

Test(decay, freed_huge_block_is_reused_as_it_was)
{
    _ms_opt.decay_ms = 600000;
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 0x5a, 8 * MiB);
    pfree(p);
    ms_huge_stat_t a = huge_now();
    cr_assert_eq(a.cached, 8 * MiB, "the freed mapping is kept (%llu cached)", (unsigned long long)a.cached);
    unsigned char *q = v_malloc(8 * MiB);
    cr_assert_eq(q, p, "the same mapping is handed out again");
    size_t res = resident(q, 8 * MiB);
    cr_assert_eq(res, 2048, "its pages are still resident (%zu of 2048): no fault to come", res);
    cr_assert_eq(_ms_usable_size(q), 8 * MiB);
    cr_assert_eq(huge_now().cached, 0);
    pfree(q);
}

Test(decay, smaller_request_takes_the_head_and_leaves_the_tail_cached)
{
    _ms_opt.decay_ms = 600000;
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 1, 8 * MiB);
    pfree(p);
    unsigned char *q = v_malloc(5 * MiB + 100);
    cr_assert_eq(q, p);
    cr_assert_eq(_ms_usable_size(q), 5 * MiB + 4096, "usable size as for a fresh mapping");
    ms_huge_stat_t st = huge_now();
    cr_assert_eq(st.cached, 3 * MiB - 4096, "the tail stays cached (%llu)", (unsigned long long)st.cached);
    cr_assert_eq(st.bytes, 5 * MiB + 4096);
    unsigned char *r = v_malloc(2 * MiB);             /* the tail serves the next one */
    cr_assert_eq((uintptr_t)r, (uintptr_t)q + 5 * MiB + 4096);
    pfree(q);
    pfree(r);
}

Test(decay, a_freed_head_merges_with_its_cached_tail)
{
    _ms_opt.decay_ms = 600000;
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 3, 8 * MiB);
    pfree(p);
    unsigned char *q = v_malloc(2 * MiB);             /* the head; 6 MiB stay cached */
    cr_assert_eq(q, p);
    pfree(q);
    ms_huge_stat_t st = huge_now();
    cr_assert_eq(st.cached, 8 * MiB, "head and tail cached (%llu)", (unsigned long long)st.cached);
    unsigned char *r = v_malloc(8 * MiB);             /* one mapping again: it holds 8 MiB */
    cr_assert_eq(r, p, "the merged mapping is handed out whole");
    size_t res = resident(r, 8 * MiB);
    cr_assert_eq(res, 2048, "all of it still resident (%zu of 2048 pages)", res);
    cr_assert_eq(huge_now().cached, 0);
    pfree(r);
}

Test(decay, the_cache_keeps_a_quarter_of_the_live_bytes_above_the_peak)
{
    _ms_opt.decay_ms = 600000;
    malloc_trim(0);
    unsigned char *live = v_malloc(64 * MiB);        /* live huge bytes: 64 MiB */
    pfree(v_malloc(8 * MiB));                         /* peak 72; 8 cached */
    void *b = NULL;                                  /* aligned: a fresh mapping */
    cr_assert_eq(_ms_posix_memalign(&b, 4 * MiB, 16 * MiB), 0);
    pfree(b);                                         /* peak 80, 64 live: 16 more than the peak */
    ms_huge_stat_t st = huge_now();                  /* allows, 16 (64 / 4) above it */
    cr_assert_eq(st.bytes, 64 * MiB);
    cr_assert_eq(st.cached, 24 * MiB, "both freed mappings kept (%llu cached)", (unsigned long long)st.cached);
    pfree(live);
    malloc_trim(0);
}

/* Maps one inaccessible page at `at` only if nothing is there: the
 * address then, else NULL (something is there, or the kernel put it
 * elsewhere and it was unmapped again). */
static void *map_at(void *at, size_t len)
{
    void *m = mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (m != at) { munmap(m, len); return NULL; }
    return m;
}

Test(decay, larger_request_grows_a_cached_mapping_where_it_lies)
{
    _ms_opt.decay_ms = 600000;
    /* A block with free addresses after it: the kernel places most
     * mappings just below the last one, so a few are tried. */
    unsigned char *tried[8], *p = NULL;
    unsigned n = 0;
    while (!p && n < 8) {
        unsigned char *b = tried[n++] = v_malloc(2 * MiB);
        void *probe = map_at(b + 2 * MiB, MiB);
        if (probe) { munmap(probe, MiB); p = b; n--; }
    }
    for (unsigned i = 0; i < n; i++) pfree(tried[i]);
    malloc_trim(0);                                  /* the others unmapped, not cached */
    if (!p) cr_skip_test("no 2 MiB block with free addresses after it in 8 tries");
    fill(p, 0x77, 2 * MiB);
    uintptr_t at = (uintptr_t)p;
    pfree(p);
    unsigned char *q = v_calloc(1, 3 * MiB);
    cr_assert_eq((uintptr_t)q, at, "the cached mapping grown where it lies");
    cr_assert_eq(huge_now().cached, 0, "the 2 MiB mapping was grown into the 3 MiB block");
    cr_assert_eq(_ms_usable_size(q), 3 * MiB);
    for (size_t i = 0; i < 3 * MiB; i++) cr_assert_eq(q[i], 0, "calloc byte %zu not zero", i);
    pfree(q);
}

/* A cached mapping with no room after it is left where it is, not moved
 * (huge.c, cache_take): the larger request gets a mapping of its own. */
Test(decay, cached_mapping_with_no_room_after_it_is_not_moved)
{
    _ms_opt.decay_ms = 600000;
    unsigned char *p = v_malloc(2 * MiB);
    fill(p, 0x77, 2 * MiB);
    void *wall = map_at(p + 2 * MiB, 4096);          /* NULL: something else is there already */
    uintptr_t at = (uintptr_t)p;
    pfree(p);
    unsigned char *q = v_calloc(1, 3 * MiB);
    cr_assert_not_null(q);
    cr_assert_neq((uintptr_t)q, at);
    cr_assert_eq(huge_now().cached, 2 * MiB, "the 2 MiB mapping stays cached, where it was (%llu cached)",
                 (unsigned long long)huge_now().cached);
    for (size_t i = 0; i < 3 * MiB; i++) cr_assert_eq(q[i], 0, "calloc byte %zu not zero", i);
    unsigned char *r = v_malloc(2 * MiB);
    cr_assert_eq((uintptr_t)r, at, "the next request it holds takes it");
    cr_assert_eq(r[MiB], 0x77, "as it was");
    pfree(q);
    pfree(r);
    if (wall) munmap(wall, 4096);
}

Test(decay, calloc_of_a_reused_huge_block_is_zero)
{
    _ms_opt.decay_ms = 600000;
    unsigned char *p = v_malloc(4 * MiB);
    fill(p, 0xab, 4 * MiB);
    pfree(p);
    unsigned char *q = v_calloc(4, MiB - 10);
    cr_assert_eq(q, p, "the cached mapping is reused");
    for (size_t i = 0; i < 4 * (MiB - 10); i++) cr_assert_eq(q[i], 0, "calloc byte %zu not zero", i);
    pfree(q);
}

Test(decay, cached_huge_mapping_is_unmapped_after_the_delay)
{
    _ms_opt.decay_ms = 50;
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 1, 8 * MiB);
    volatile uintptr_t at = (uintptr_t)p;
    pfree(p);
    cr_assert_eq(huge_now().cached, 8 * MiB, "kept within the delay");
    wait_past(50);
    _ms_huge_decay(_ms_os_now_ns());                 /* what the next malloc or free does */
    ms_huge_stat_t st = huge_now();
    cr_assert_eq(st.cached, 0, "still %llu cached after the delay", (unsigned long long)st.cached);
    cr_assert_eq(st.mapped, st.bytes);
    cr_assert_neq(msync((void *)at, 4096, MS_ASYNC), 0, "the mapping is gone");
    cr_assert_eq(errno, ENOMEM);
}

/* A cached mapping is a whole buffer kept resident: if the program asks
 * for no huge block after freeing it, it goes after a tenth of a quarter of
 * the delay (huge.c, keep_ns), while free pages of the pools stay for all
 * of it. */
Test(decay, a_cached_mapping_goes_after_a_fortieth_of_the_delay_when_no_huge_block_is_asked_for)
{
    _ms_opt.decay_ms = 8000;                          /* a tenth of a quarter: 200 ms */
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 1, 8 * MiB);
    pfree(p);
    cr_assert_eq(huge_now().cached, 8 * MiB, "kept at first");
    usleep(600 * 1000);                               /* past 200 ms, well within 2000 */
    _ms_huge_decay(_ms_os_now_ns());
    ms_huge_stat_t st = huge_now();
    cr_assert_eq(st.cached, 0, "still %llu cached, though no huge block was asked for",
                 (unsigned long long)st.cached);
}

/* While the program asks for huge blocks, mappings freed before stay a
 * quarter of the delay, even if no ask took them: a program replacing big
 * buffers of varying sizes finds one that holds a later request. */
Test(decay, while_huge_blocks_are_asked_for_cached_mappings_stay_a_quarter_of_the_delay)
{
    _ms_opt.decay_ms = 8000;                          /* a quarter: 2000 ms; a tenth of it 200 */
    malloc_trim(0);
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 1, 8 * MiB);
    pfree(p);
    void *b = NULL;                                   /* an ask the 8 MiB mapping cannot hold */
    cr_assert_eq(_ms_posix_memalign(&b, 4 * MiB, 16 * MiB), 0);
    cr_assert_eq(huge_now().cached, 8 * MiB, "the 16 MiB block is a fresh mapping (%llu cached)",
                 (unsigned long long)huge_now().cached);
    usleep(600 * 1000);                               /* past 200 ms, well within 2000 */
    _ms_huge_decay(_ms_os_now_ns());
    cr_assert_eq(huge_now().cached, 8 * MiB, "kept, huge blocks being asked for (%llu cached)",
                 (unsigned long long)huge_now().cached);
    usleep(2500 * 1000);                              /* past 2000 ms */
    _ms_huge_decay(_ms_os_now_ns());
    cr_assert_eq(huge_now().cached, 0, "still %llu cached after a quarter of the delay",
                 (unsigned long long)huge_now().cached);
    pfree(b);
}

Test(decay, huge_decay_runs_on_the_allocation_path)
{
    _ms_opt.decay_ms = 50;
    unsigned char *p = v_malloc(8 * MiB);
    fill(p, 1, 8 * MiB);
    pfree(p);
    wait_past(50);
    void *q = v_malloc(600 << 10);                   /* another huge block: the cache is checked first */
    cr_assert_eq(huge_now().cached, 0);
    pfree(q);
    cr_assert_eq(huge_now().cached, 600 << 10, "the block just freed is kept");
}

Test(decay, zero_delay_keeps_nothing)
{
    _ms_opt.decay_ms = 0;
    pfree(v_malloc(4 * MiB));
    cr_assert_eq(huge_now().cached, 0);
}

/* ---- pages of segments ------------------------------------------------------------ */

#define CLS _ms_class_of(96 << 10)    /* a span of several pages */

static ms_page_t *dirty_span(void)
{
    ms_page_t *pg = _ms_page_alloc(_ms_classes[CLS].npages, (uint8_t)CLS);
    cr_assert_not_null(pg);
    fill(pg->start, 3, (size_t)pg->npages * MS_PAGE_SIZE);
    return pg;
}

Test(decay, free_pages_stay_resident_within_the_delay)
{
    _ms_opt.decay_ms = 600000;
    ms_page_t *pg = dirty_span();
    uint8_t *start = pg->start;
    size_t len = (size_t)pg->npages * MS_PAGE_SIZE;
    ms_segment_stat_t a, b;
    _ms_segment_stats(&a);
    _ms_page_free(pg);
    _ms_segment_stats(&b);
    cr_assert_eq(b.dirty, a.dirty + len);
    _ms_segment_decay(_ms_os_now_ns());
    cr_assert_eq(resident(start, len), len / 4096, "purged before the delay");
    _ms_segment_stats(&b);
    cr_assert_eq(b.dirty, a.dirty + len);
}

Test(decay, free_pages_are_purged_after_the_delay)
{
    _ms_opt.decay_ms = 50;
    ms_page_t *keep = _ms_page_alloc(1, (uint8_t)_ms_class_of(64));   /* the segment stays */
    ms_page_t *pg = dirty_span();
    uint8_t *start = pg->start;
    size_t len = (size_t)pg->npages * MS_PAGE_SIZE;
    _ms_page_free(pg);
    cr_assert_eq(resident(start, len), len / 4096);
    wait_past(50);
    _ms_segment_decay(_ms_os_now_ns());
    cr_assert_eq(resident(start, len), 0, "still resident after the delay");
    ms_segment_stat_t st;
    _ms_segment_stats(&st);
    cr_assert_eq(st.dirty, 0);
    _ms_page_free(keep);
}

Test(decay, purge_runs_when_a_page_is_taken)
{
    _ms_opt.decay_ms = 50;
    ms_page_t *keep = _ms_page_alloc(1, (uint8_t)_ms_class_of(64));
    ms_page_t *pg = dirty_span();
    uint8_t *start = pg->start;
    size_t len = (size_t)pg->npages * MS_PAGE_SIZE;
    _ms_page_free(pg);
    wait_past(50);
    ms_page_t *other = dirty_span();                 /* the lazy check on the allocation path */
    ms_segment_stat_t st;
    _ms_segment_stats(&st);
    cr_assert_eq(st.dirty, 0, "%llu bytes dirty", (unsigned long long)st.dirty);
    if (other->start != start) cr_assert_eq(resident(start, len), 0);
    _ms_page_free(other);
    _ms_segment_stats(&st);
    cr_assert_eq(st.dirty, len, "the span just freed is kept");
    _ms_page_free(keep);
}

Test(decay, empty_segments_beyond_one_are_unmapped_after_the_delay)
{
    _ms_opt.decay_ms = 300;   /* longer than the frees take */
    enum { N = 8000 };
    void **v = v_malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) v[i] = v_malloc(2000);   /* ~16 MB: several segments */
    ms_segment_stat_t a, b;
    _ms_segment_stats(&a);
    for (int i = 0; i < N; i++) pfree(v[i]);
    pfree(v);
    _ms_tcache_flush_current();
    _ms_segment_stats(&b);
    cr_assert_eq(b.segments, a.segments, "segments kept within the delay");
    wait_past(300);
    _ms_segment_decay(_ms_os_now_ns());
    _ms_segment_stats(&b);
    cr_assert_lt(b.segments, a.segments);
    cr_assert_eq(b.dirty, 0);
}

/* ---- what a running thread keeps for nothing (tcache.c) --------------------- */

static uint64_t spans_of(unsigned cls)
{
    ms_class_stat_t st[MS_NCLASSES];
    _ms_central_stats(st);
    return st[cls].spans;
}

/* A peak of 48-byte blocks freed in random order leaves the few hundred
 * blocks the thread's bin and the parked batches keep spread over most of
 * the class's spans.  A thread that then lives on its cache (allocations
 * of another size, no page taken or given back) gives them back: the
 * spans go to the segments and their pages are purged, and so are the
 * spans' records while tracking (meta.c). */
Test(decay, a_thread_living_on_its_cache_gives_back_a_past_peak)
{
    _ms_opt.decay_ms = 40;
    enum { N = 100000 };
    unsigned cls = _ms_class_of(48);      /* 47 bytes: 48 with tracking's byte (track.c) */
    void **v = v_malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) fill(v[i] = v_malloc(47), 1, 47);
    uint64_t r = 88172645463325252ULL;
    for (int i = N - 1; i > 0; i--) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        int j = (int)(r % (uint64_t)(i + 1));
        void *t = v[i]; v[i] = v[j]; v[j] = t;
    }
    for (int i = 0; i < N; i++) pfree(v[i]);
    pfree(v);
    uint64_t before = spans_of(cls);
    cr_assert_gt(before, 30, "the peak's spans are kept at first (%llu)", (unsigned long long)before);

    /* Pairs of another class until ten delays have passed, and at least
     * 20 looks' worth of allocations. */
    uint64_t start = _ms_os_now_ns();
    for (long k = 0; k < 20 * (long)MS_LOOK_EVERY || _ms_os_now_ns() - start < 10 * 40 * 1000000ULL; k++) {
        void *p = v_malloc(200);
        fill(p, 2, 8);
        pfree(p);
    }
    uint64_t after = spans_of(cls);
    cr_assert_leq(after, 2, "spans of the freed class still held: %llu of %llu",
                  (unsigned long long)after, (unsigned long long)before);
    ms_segment_stat_t st;
    _ms_segment_stats(&st);
    cr_assert_leq(st.dirty, 2 * MS_PAGE_SIZE * 2, "%llu bytes free and resident", (unsigned long long)st.dirty);
    if (_ms_track_on) {                   /* the spans' records (32 KiB each) went too */
        size_t purged, resident;
        _ms_meta_free_stats(&purged, &resident);
        cr_assert_geq(purged, (before - 2) * (28 << 10), "records purged: %zu bytes", purged);
        cr_assert_lt(resident, (size_t)1 << 20, "free records resident: %zu bytes", resident);
    }
}

/* A look changes every bin of its thread: never while a slow path's change
 * of one is in progress on the thread (a signal handler's allocation that
 * came in the middle of it: shim.h, _ms_bins_enter), nor when the thread
 * holds one of the allocator's locks; the next allocation's look does it. */
Test(decay, no_look_in_the_middle_of_a_change_of_a_bin)
{
    _ms_opt.decay_ms = 40;
    enum { N = 60 };
    unsigned cls = _ms_class_of(200);
    void *v[N];
    for (int i = 0; i < N; i++) v[i] = v_malloc(199);
    for (int i = 0; i < N; i++) pfree(v[i]);
    ms_tcache_t *tc = _ms_thread.tc;
    cr_assert_not_null(tc);
    unsigned count = tc->bins[cls].count;
    cr_assert_gt(count, 2, "the freed blocks are in the bin (%u)", count);
    memset(tc->dry, 0, sizeof tc->dry);          /* not refilled since the last look */

    _ms_bins_enter();                            /* a handler, its thread in a refill */
    tc->next_look = 0;
    _ms_tcache_look(tc, cls);
    _ms_bins_leave();
    cr_assert_eq(tc->bins[cls].count, count, "a bin was changed under a change in progress");
    cr_assert_eq(tc->next_look, 0, "the look was counted as made");

    _ms_tcache_look(tc, cls);                    /* the thread's own, the bin's turn */
    cr_assert_eq(tc->bins[cls].count, count / 2, "the look halves a bin that kept too much (%u of %u)",
                 tc->bins[cls].count, count);
}

/* The inline pop and push mark nothing: a look halves another bin than
 * the one whose turn it is only if that bin was not used at all since the
 * last look (a handler's look may have interrupted its thread in the
 * middle of a pop or push of it).  An unused bin is halved at the next. */
Test(decay, a_look_halves_only_the_bins_unused_since_the_last)
{
    _ms_opt.decay_ms = 40;
    enum { N = 60 };
    unsigned cls = _ms_class_of(300), other = _ms_class_of(2000);
    void *v[N];
    for (int i = 0; i < N; i++) v[i] = v_malloc(299);
    for (int i = 0; i < N; i++) pfree(v[i]);
    ms_tcache_t *tc = _ms_thread.tc;
    unsigned count = tc->bins[cls].count;
    cr_assert_gt(count, 4, "the freed blocks are in the bin (%u)", count);
    memset(tc->dry, 0, sizeof tc->dry);

    tc->next_look = 0;
    _ms_tcache_look(tc, other);                  /* used since the last look: left */
    cr_assert_eq(tc->bins[cls].count, count, "a bin used since the last look was halved");

    pfree(v_malloc(299));                         /* a pop and a push: used again */
    tc->next_look = 0;
    _ms_tcache_look(tc, other);
    cr_assert_eq(tc->bins[cls].count, count, "a bin used since the last look was halved");

    tc->next_look = 0;
    _ms_tcache_look(tc, other);                  /* unused since: halved */
    cr_assert_eq(tc->bins[cls].count, count / 2, "an unused bin kept %u of %u", tc->bins[cls].count, count);
}
