/* test_contract.c - glibc's contracts for each function of the malloc family,
 * checked on memshim's implementation (this process runs on libmemshim.so). */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include "memshim.h"
#include "helpers.h"

#define BIG_FAIL ((size_t)PTRDIFF_MAX + 1)

/* Sizes touching every kind of block: tiny, every small-class region, huge. */
static const size_t some_sizes[] = {
    0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 128, 129, 200, 255, 256, 257, 1000,
    1024, 1025, 4095, 4096, 4097, 10000, 65535, 65536, 65537, 100000, 300000,
    512 * 1024 - 1, 512 * 1024, 512 * 1024 + 1, 600 * 1024, 1 << 20, (1 << 20) + 12345,
    5 << 20,
};
#define NSIZES (sizeof some_sizes / sizeof some_sizes[0])

static int class_index_of_block(const struct memshim_heap_stats *st, size_t block)
{
    for (unsigned c = 0; c < st->nclasses; c++)
        if (st->classes[c].block_size == block) return (int)c;
    return -1;
}

/* ---- memshim is the allocator of this process ------------------------------ */

Test(identity, memshim_is_the_allocator)
{
    cr_assert_str_eq(memshim_version(), MEMSHIM_VERSION);
    void *p = v_malloc(1);
    cr_assert_not_null(p);
    /* glibc would say 24 here; memshim's smallest class is 16 bytes, and
     * with tracking (as this test runs) it offers the 1 byte asked for. */
    cr_assert_eq(v_usable(p), 1, "malloc_usable_size(malloc(1)) = %zu, expected 1", v_usable(p));
    struct memshim_heap_stats st;
    cr_assert_eq(memshim_heap_stats(&st), 0, "memshim_heap_stats says memshim is not the allocator");
    cr_assert_eq(st.nclasses, 96);
    /* The malloc this program calls is the one defined in libmemshim. */
    Dl_info info;
    cr_assert(dladdr((void *)v_malloc, &info) != 0);
    cr_assert_not_null(strstr(info.dli_fname, "libmemshim"), "malloc comes from %s", info.dli_fname);
    v_free(p);
}

Test(identity, size_classes_match_the_design)
{
    struct memshim_heap_stats st;
    cr_assert_eq(memshim_heap_stats(&st), 0);
    cr_assert_eq(st.nclasses, h_nclasses());
    for (unsigned c = 0; c < st.nclasses; c++)
        cr_expect_eq(st.classes[c].block_size, h_class_size(c),
                     "class %u has %zu-byte blocks, expected %zu", c,
                     st.classes[c].block_size, h_class_size(c));
    cr_assert_eq(st.classes[st.nclasses - 1].block_size, MS_MAX_SMALL_BYTES);
}

/* ---- malloc ---------------------------------------------------------------- */

Test(malloc, zero_size_gives_distinct_minimal_blocks)
{
    void *a = v_malloc(0), *b = v_malloc(0);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    cr_assert_eq((uintptr_t)a % 16, 0);
    cr_assert_eq(v_usable(a), 0, "tracking offers the 0 bytes asked for, as valgrind");
    v_free(a);
    v_free(b);
}

Test(malloc, every_size_is_16_aligned_usable_and_writable)
{
    void *blocks[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = some_sizes[i];
        void *p = blocks[i] = v_malloc(n);
        cr_assert_not_null(p, "malloc(%zu)", n);
        cr_assert_eq((uintptr_t)p % 16, 0, "malloc(%zu) = %p not 16-aligned", n, p);
        size_t u = v_usable(p);
        cr_assert_geq(u, n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
        h_fill(p, u, i + 1);
    }
    for (size_t i = 0; i < NSIZES; i++) {
        size_t u = v_usable(blocks[i]);
        cr_assert_eq(h_check(blocks[i], u, i + 1), (size_t)-1,
                     "block of malloc(%zu) lost its contents", some_sizes[i]);
        v_free(blocks[i]);
    }
}

/* With tracking (as this test runs) what a block holds before the program
 * writes it is no pointer: malloc hands out its bytes cleared, however the
 * block's last owner left them (up to 128 bytes inline, larger by memset:
 * track.c).  The same size freed and asked for again is the same block. */
Test(malloc, tracking_hands_out_reused_blocks_cleared)
{
    for (size_t n = 1; n <= 600; n++) {
        unsigned char *p = v_malloc(n);
        cr_assert_not_null(p);
        memset(p, 0xa5, n);
        v_free(p);
        unsigned char *q = v_malloc(n);
        cr_assert_not_null(q);
        cr_expect_eq(q, p, "malloc(%zu) after a free of its size took another block", n);
        cr_assert(h_all_zero(q, n), "malloc(%zu) handed out a reused block not cleared", n);
        v_free(q);
    }
}

Test(malloc, impossible_sizes_fail_with_enomem)
{
    const size_t bad[] = { SIZE_MAX, SIZE_MAX - 15, BIG_FAIL, (size_t)PTRDIFF_MAX };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = v_malloc(bad[i]);
        cr_assert_null(p, "malloc(%zu) succeeded", bad[i]);
        cr_assert_eq(errno, ENOMEM, "malloc(%zu): errno %d, expected ENOMEM", bad[i], errno);
    }
    /* and the heap still works */
    void *q = v_malloc(100);
    cr_assert_not_null(q);
    v_free(q);
}

/* ---- free ------------------------------------------------------------------ */

Test(free, null_is_a_no_op)
{
    errno = 1234;
    v_free(NULL);
    cr_assert_eq(errno, 1234);
}

Test(free, keeps_errno)
{
    for (size_t i = 0; i < NSIZES; i++) {
        void *p = v_malloc(some_sizes[i]);
        cr_assert_not_null(p);
        errno = 4321;
        v_free(p);
        cr_assert_eq(errno, 4321, "free of a %zu-byte block changed errno to %d",
                     some_sizes[i], errno);
    }
}

Test(free, freed_blocks_are_counted_free)
{
    struct memshim_heap_stats a, b, c;
    size_t n = 300 * KiB;                       /* a class the test harness never uses */
    cr_assert_eq(memshim_heap_stats(&a), 0);
    int cls = class_index_of_block(&a, h_expected_block(n));
    cr_assert_geq(cls, 0);
    void *p = v_malloc(n);
    cr_assert_not_null(p);
    memshim_heap_stats(&b);
    cr_assert_eq(b.classes[cls].blocks_in_use, a.classes[cls].blocks_in_use + 1);
    v_free(p);
    memshim_heap_stats(&c);
    cr_assert_eq(c.classes[cls].blocks_in_use, a.classes[cls].blocks_in_use);
}

/* A collection frees its garbage past the thread's cache, straight back to
 * the blocks' pools, a span at a time: the blocks are counted free, the
 * frees counted, and the next objects reuse them. */
typedef struct ring_obj { void *ref; char pad[1000]; } ring_obj;
static int ring_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    ring_obj *r = o;
    return r->ref ? visit(r->ref, arg) : 0;
}
static void ring_clear(void *o)
{
    ring_obj *r = o;
    void *x = r->ref;
    r->ref = NULL;
    memshim_decref(x);
}
static const memshim_type ring_type = { "ring", ring_traverse, ring_clear, NULL, ring_clear };

static void make_garbage_rings(int n)
{
    for (int i = 0; i < n; i += 5) {
        ring_obj *first = memshim_new(&ring_type, sizeof(ring_obj)), *prev = first;
        cr_assert_not_null(first);
        for (int k = 1; k < 5; k++) {
            ring_obj *o = memshim_new(&ring_type, sizeof(ring_obj));
            cr_assert_not_null(o);
            prev->ref = o;
            prev = o;
        }
        prev->ref = first;
    }
}

Test(free, a_collections_frees_are_counted_free_and_reused)
{
    enum { N = 1000 };
    memshim_gc_disable();
    struct memshim_heap_stats a, b, c, d;
    cr_assert_eq(memshim_heap_stats(&a), 0);
    make_garbage_rings(N);
    memshim_heap_stats(&b);
    int cls = -1;
    for (unsigned k = 0; k < b.nclasses; k++)
        if (b.classes[k].blocks_in_use == a.classes[k].blocks_in_use + N) cls = (int)k;
    cr_assert_geq(cls, 0, "no class holds the %d objects", N);
    cr_assert_eq(memshim_gc_collect(2), N);
    memshim_heap_stats(&c);
    cr_assert_eq(c.classes[cls].blocks_in_use, a.classes[cls].blocks_in_use,
                 "in use after the collection: %zu, before the objects: %zu",
                 c.classes[cls].blocks_in_use, a.classes[cls].blocks_in_use);
    cr_assert_eq(c.classes[cls].frees, b.classes[cls].frees + N);
    make_garbage_rings(N);
    memshim_heap_stats(&d);
    cr_assert_leq(d.classes[cls].pools, b.classes[cls].pools, "the second objects took new pools");
    cr_assert_eq(memshim_gc_collect(2), N);
}

/* The same across spans and classes: rings of objects of sizes from every
 * region of the pools and above them (huge blocks, freed the checked way),
 * interleaved so that consecutive deaths change span. */
typedef struct sized_obj { void *ref; } sized_obj;
static const memshim_type sized_type = { "sized", ring_traverse, ring_clear, NULL, ring_clear };

Test(free, a_collection_across_classes_and_huge_blocks_frees_them_all)
{
    static const size_t sizes[] = { 8, 40, 100, 1000, 5000, 40000, 300000, 700000 };
    enum { NS = sizeof sizes / sizeof *sizes, RINGS = 40, LEN = 7 };
    memshim_gc_disable();
    struct memshim_heap_stats a, b;
    cr_assert_eq(memshim_heap_stats(&a), 0);
    for (int r = 0; r < RINGS; r++) {
        void *first = NULL, *prev = NULL;
        for (int k = 0; k < LEN; k++) {
            sized_obj *o = memshim_new(&sized_type, sizes[(r + k) % NS]);
            cr_assert_not_null(o);
            if (prev) ((sized_obj *)prev)->ref = o;
            else first = o;
            prev = o;
        }
        ((sized_obj *)prev)->ref = first;
    }
    cr_assert_eq(memshim_gc_collect(2), RINGS * LEN);
    memshim_heap_stats(&b);
    for (unsigned c = 0; c < b.nclasses; c++)
        cr_expect_eq(b.classes[c].blocks_in_use, a.classes[c].blocks_in_use,
                     "class of %zu B: %zu in use, %zu before", b.classes[c].block_size,
                     b.classes[c].blocks_in_use, a.classes[c].blocks_in_use);
    cr_expect_eq(b.huge_blocks, a.huge_blocks);
}

/* ---- calloc ----------------------------------------------------------------- */

Test(calloc, returns_zeroed_memory_for_every_size)
{
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = some_sizes[i];
        unsigned char *p = v_calloc(1, n);
        cr_assert_not_null(p, "calloc(1, %zu)", n);
        cr_assert_eq((uintptr_t)p % 16, 0);
        cr_assert(h_all_zero(p, n), "calloc(1, %zu) not zeroed", n);
        cr_assert_geq(v_usable(p), n);
        v_free(p);
        p = v_calloc(n ? n : 1, 1);
        cr_assert_not_null(p);
        cr_assert(h_all_zero(p, n), "calloc(%zu, 1) not zeroed", n);
        v_free(p);
    }
    void *z = v_calloc(0, 0);
    cr_assert_not_null(z);
    v_free(z);
}

/* Dirty a block, free it, calloc the same size: the block comes back (LIFO
 * caches) and must be zero again.  For every class boundary and huge sizes. */
Test(calloc, zeroes_reused_blocks)
{
    size_t sizes[200];
    size_t ns = 0;
    for (unsigned c = 0; c < h_nclasses(); c++) {
        sizes[ns++] = h_class_size(c);
        sizes[ns++] = h_class_size(c) - 1;
    }
    sizes[ns++] = 600 * KiB;
    sizes[ns++] = 1 * MiB;
    sizes[ns++] = 3 * MiB + 5;
    for (size_t i = 0; i < ns; i++) {
        size_t n = sizes[i];
        unsigned char *p = v_malloc(n);
        cr_assert_not_null(p);
        memset(p, 0xa5, v_usable(p));
        v_free(p);
        unsigned char *q = v_calloc(1, n);
        cr_assert_not_null(q);
        cr_assert(h_all_zero(q, n), "calloc(1, %zu) after reuse (%s block) not zeroed", n,
                  q == p ? "same" : "another");
        memset(q, 0x5a, n);
        v_free(q);
    }
}

/* Many dirty blocks at once, then as many callocs. */
Test(calloc, zeroes_many_reused_blocks)
{
    enum { N = 300 };
    static void *ps[N];
    const size_t sizes[] = { 16, 48, 112, 640, 3000, 20000, 200000, 700000 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s], count = n > 100000 ? 8 : N;
        for (size_t i = 0; i < count; i++) {
            ps[i] = v_malloc(n);
            cr_assert_not_null(ps[i]);
            memset(ps[i], 0xff, n);
        }
        for (size_t i = 0; i < count; i++) v_free(ps[i]);
        for (size_t i = 0; i < count; i++) {
            ps[i] = v_calloc(n, 1);
            cr_assert_not_null(ps[i]);
            cr_assert(h_all_zero(ps[i], n), "calloc(%zu, 1) #%zu after reuse not zeroed", n, i);
        }
        for (size_t i = 0; i < count; i++) v_free(ps[i]);
    }
}

/* A cached huge mapping a little larger than the request is reused. */
Test(calloc, zeroes_a_reused_larger_huge_mapping)
{
    unsigned char *p = v_malloc(1200 * KiB);
    cr_assert_not_null(p);
    memset(p, 0x77, 1200 * KiB);
    v_free(p);
    unsigned char *q = v_calloc(1, 1024 * KiB);
    cr_assert_not_null(q);
    cr_assert(h_all_zero(q, 1024 * KiB));
    v_free(q);
}

Test(calloc, overflow_fails_with_enomem)
{
    const size_t pairs[][2] = {
        { SIZE_MAX, 2 }, { 2, SIZE_MAX }, { (size_t)1 << 33, (size_t)1 << 33 },
        { SIZE_MAX / 2 + 1, 2 }, { 65537, SIZE_MAX / 65536 }, { 1, SIZE_MAX }, { BIG_FAIL, 1 },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = v_calloc(pairs[i][0], pairs[i][1]);
        cr_assert_null(p, "calloc(%zu, %zu) succeeded", pairs[i][0], pairs[i][1]);
        cr_assert_eq(errno, ENOMEM, "calloc(%zu, %zu): errno %d", pairs[i][0], pairs[i][1], errno);
    }
}

/* ---- realloc ----------------------------------------------------------------- */

Test(realloc, null_pointer_is_malloc)
{
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = some_sizes[i];
        void *p = v_realloc(NULL, n);
        cr_assert_not_null(p, "realloc(NULL, %zu)", n);
        cr_assert_eq((uintptr_t)p % 16, 0);
        cr_assert_geq(v_usable(p), n);
        h_fill(p, n, 9);
        cr_assert_eq(h_check(p, n, 9), (size_t)-1);
        v_free(p);
    }
}

Test(realloc, zero_size_frees_and_returns_null)
{
    struct memshim_heap_stats a, b;
    size_t n = 300 * KiB;
    memshim_heap_stats(&a);
    int cls = class_index_of_block(&a, h_expected_block(n));
    cr_assert_geq(cls, 0);
    void *p = v_malloc(n);
    cr_assert_not_null(p);
    void *r = v_realloc(p, 0);
    cr_assert_null(r, "realloc(p, 0) returned %p; glibc frees and returns NULL", r);
    memshim_heap_stats(&b);
    cr_assert_eq(b.classes[cls].blocks_in_use, a.classes[cls].blocks_in_use,
                 "realloc(p, 0) did not free the block");

    /* a huge block too */
    memshim_heap_stats(&a);
    p = v_malloc(2 * MiB);
    cr_assert_not_null(p);
    cr_assert_null(v_realloc(p, 0));
    memshim_heap_stats(&b);
    cr_assert_eq(b.huge_blocks, a.huge_blocks, "realloc(huge, 0) did not free the block");
}

Test(realloc, keeps_contents_growing_and_shrinking)
{
    const size_t steps[] = {
        1, 16, 17, 100, 128, 129, 1000, 4096, 10000, 65536, 100000, 500000,
        600 * KiB, 2 * MiB, 9 * MiB, 3 * MiB, 700 * KiB, 300 * KiB, 40000, 1000, 33, 8, 1,
        50000, 5 * MiB, 24,
    };
    size_t cur = steps[0];
    uint64_t seed = 1;
    unsigned char *p = v_malloc(cur);
    cr_assert_not_null(p);
    h_fill(p, cur, seed);
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i], keep = n < cur ? n : cur;
        unsigned char *q = v_realloc(p, n);
        cr_assert_not_null(q, "realloc(%zu -> %zu)", cur, n);
        cr_assert_eq((uintptr_t)q % 16, 0);
        cr_assert_geq(v_usable(q), n);
        size_t bad = h_check(q, keep, seed);
        cr_assert_eq(bad, (size_t)-1, "realloc %zu -> %zu: byte %zu of the kept %zu changed",
                     cur, n, bad, keep);
        p = q;
        cur = n;
        h_fill(p, cur, ++seed);
    }
    v_free(p);
}

/* A shrink needs no memory: with the address space used up (RLIMIT_AS)
 * and every class's blocks taken, realloc to fewer bytes still succeeds,
 * errno untouched, as glibc's; it returned NULL with ENOMEM when the
 * smaller class had no free block (found by a helper writing glibc's
 * malloc tests anew).  Tracked and not. */
Test(realloc, a_shrink_with_no_memory_left_succeeds, .timeout = 60)
{
    h_run_t *r = malloc(sizeof *r);
    static const char *modes[] = { "MEMSHIM_TRACK=1", "MEMSHIM_TRACK=0" };
    char dir[32], rep[PATH_MAX + 32];
    cr_assert_eq(h_report_dir(dir, rep), 0);
    for (int k = 0; k < 2; k++) {
        h_run_fixture2(r, "shrink_oom", NULL, modes[k], rep, 30);
        cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s:\n%s%s", modes[k], r->out, r->err);
        cr_expect(strstr(r->out, "shrink_oom done"), "%s:\n%s", modes[k], r->out);
    }
    h_report_dir_remove(dir);
    free(r);
}

/* To the same size, a block stays where it is, as glibc's (glibc's
 * tst-realloc): blocks of the smallest class of 1 to 7 bytes moved. */
Test(realloc, to_the_same_size_stays)
{
    for (size_t n = 1; n <= 1024; n++) {
        void *p = v_malloc(n);
        cr_assert_not_null(p);
        cr_expect_eq(v_realloc(p, n), p, "realloc(p, %zu) of a block of %zu moved", n, n);
        v_free(p);
    }
}

Test(realloc, small_to_huge_to_small)
{
    for (size_t small = 1; small <= 64 * KiB; small = small * 5 + 3) {
        unsigned char *p = v_malloc(small);
        cr_assert_not_null(p);
        h_fill(p, small, small);
        unsigned char *h = v_realloc(p, 4 * MiB + 100);
        cr_assert_not_null(h);
        cr_assert_eq(h_check(h, small, small), (size_t)-1, "small %zu -> huge lost data", small);
        memset(h + small, 0xcc, 4 * MiB + 100 - small);
        unsigned char *s = v_realloc(h, small);
        cr_assert_not_null(s);
        cr_assert_eq(h_check(s, small, small), (size_t)-1, "huge -> small %zu lost data", small);
        cr_assert_leq(v_usable(s), MS_MAX_SMALL_BYTES, "huge -> %zu stayed huge", small);
        v_free(s);
    }
}

Test(realloc, shrinking_within_a_block_and_growing_by_little)
{
    unsigned char *p = v_malloc(1000);
    cr_assert_not_null(p);
    h_fill(p, 1000, 3);
    for (size_t n = 999; n >= 500; n -= 37) {
        p = v_realloc(p, n);
        cr_assert_not_null(p);
        cr_assert_eq(h_check(p, n, 3), (size_t)-1, "shrink to %zu", n);
    }
    h_fill(p, 500, 4);
    for (size_t n = 501; n < 3000; n += 61) {
        p = v_realloc(p, n);
        cr_assert_not_null(p);
        cr_assert_eq(h_check(p, 500, 4), (size_t)-1, "grow to %zu", n);
    }
    v_free(p);
}

Test(realloc, failure_leaves_the_block_alone)
{
    const size_t sizes[] = { 24, 5000, 200000, 3 * MiB };
    for (size_t i = 0; i < 4; i++) {
        size_t n = sizes[i];
        unsigned char *p = v_malloc(n);
        cr_assert_not_null(p);
        h_fill(p, n, 77 + i);
        const size_t bad[] = { SIZE_MAX, BIG_FAIL, SIZE_MAX - 4096 };
        for (size_t j = 0; j < 3; j++) {
            errno = 0;
            void *q = v_realloc(p, bad[j]);
            cr_assert_null(q, "realloc(%zu-byte block, %zu) succeeded", n, bad[j]);
            cr_assert_eq(errno, ENOMEM, "realloc(.., %zu): errno %d", bad[j], errno);
            cr_assert_eq(h_check(p, n, 77 + i), (size_t)-1, "failed realloc changed the block");
            cr_assert_geq(v_usable(p), n);
        }
        v_free(p);
    }
}

/* ---- reallocarray ----------------------------------------------------------- */

Test(reallocarray, works_like_realloc)
{
    int *a = v_reallocarray(NULL, 10, sizeof(int));
    cr_assert_not_null(a);
    for (int i = 0; i < 10; i++) a[i] = i * 7;
    a = v_reallocarray(a, 100000, sizeof(int));
    cr_assert_not_null(a);
    for (int i = 0; i < 10; i++) cr_assert_eq(a[i], i * 7);
    for (int i = 10; i < 100000; i++) a[i] = i * 7;
    a = v_reallocarray(a, 300000, sizeof(int));       /* huge */
    cr_assert_not_null(a);
    for (int i = 0; i < 100000; i++) cr_assert_eq(a[i], i * 7);
    a = v_reallocarray(a, 5, sizeof(int));
    cr_assert_not_null(a);
    for (int i = 0; i < 5; i++) cr_assert_eq(a[i], i * 7);
    v_free(a);
}

Test(reallocarray, overflow_fails_with_enomem_and_keeps_the_block)
{
    unsigned char *p = v_malloc(64);
    cr_assert_not_null(p);
    h_fill(p, 64, 5);
    const size_t pairs[][2] = { { SIZE_MAX, 2 }, { (size_t)1 << 40, (size_t)1 << 40 },
                                { 3, SIZE_MAX / 2 } };
    for (size_t i = 0; i < 3; i++) {
        errno = 0;
        void *q = v_reallocarray(p, pairs[i][0], pairs[i][1]);
        cr_assert_null(q);
        cr_assert_eq(errno, ENOMEM);
        cr_assert_eq(h_check(p, 64, 5), (size_t)-1);
    }
    errno = 0;
    cr_assert_null(v_reallocarray(NULL, SIZE_MAX / 3, 4));
    cr_assert_eq(errno, ENOMEM);
    v_free(p);
}

/* ---- posix_memalign ------------------------------------------------------------ */

Test(posix_memalign, rejects_bad_alignments_with_einval)
{
    const size_t bad[] = { 0, 1, 2, 4, 3, 6, 12, 24, 48, 100, 4095, 4097, 12345,
                           (1 << 20) + 16, SIZE_MAX, SIZE_MAX / 2 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *sentinel = (void *)0x1234, *p = sentinel;
        errno = 99;
        int rc = v_posix_memalign(&p, bad[i], 64);
        cr_assert_eq(rc, EINVAL, "posix_memalign(align %zu) = %d, expected EINVAL", bad[i], rc);
        cr_assert_eq(p, sentinel, "posix_memalign(align %zu) wrote *memptr on failure", bad[i]);
        cr_assert_eq(errno, 99, "posix_memalign(align %zu) changed errno", bad[i]);
    }
}

Test(posix_memalign, succeeds_without_touching_errno)
{
    for (size_t align = sizeof(void *); align <= MiB; align *= 2) {
        const size_t sizes[] = { 0, 1, align - 1, align, align + 1, 1000, 70000, 600 * KiB };
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = NULL;
            errno = 4242;
            int rc = v_posix_memalign(&p, align, sizes[i]);
            cr_assert_eq(rc, 0, "posix_memalign(%zu, %zu) = %d", align, sizes[i], rc);
            cr_assert_eq(errno, 4242, "posix_memalign(%zu, %zu) changed errno to %d",
                         align, sizes[i], errno);
            cr_assert_not_null(p);
            cr_assert_eq((uintptr_t)p % align, 0, "posix_memalign(%zu, %zu) = %p", align,
                         sizes[i], p);
            cr_assert_geq(v_usable(p), sizes[i]);
            memset(p, 0x3c, sizes[i]);
            v_free(p);
        }
    }
}

Test(posix_memalign, impossible_size_gives_enomem)
{
    void *sentinel = (void *)0x1234, *p = sentinel;
    cr_assert_eq(v_posix_memalign(&p, 16, SIZE_MAX), ENOMEM);
    cr_assert_eq(p, sentinel);
    cr_assert_eq(v_posix_memalign(&p, 4096, BIG_FAIL), ENOMEM);
    cr_assert_eq(v_posix_memalign(&p, 1 << 20, SIZE_MAX - (1 << 20)), ENOMEM);
    cr_assert_eq(p, sentinel);
}

/* ---- aligned_alloc, memalign, valloc, pvalloc -------------------------------- */

Test(aligned_alloc, aligned_usable_and_enomem)
{
    for (size_t align = 16; align <= MiB; align *= 2) {
        void *p = v_aligned_alloc(align, 3 * align);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % align, 0, "aligned_alloc(%zu) = %p", align, p);
        cr_assert_geq(v_usable(p), 3 * align);
        memset(p, 1, 3 * align);
        v_free(p);
    }
    errno = 0;
    cr_assert_null(v_aligned_alloc(64, SIZE_MAX - 128));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(v_aligned_alloc(16, BIG_FAIL));
    cr_assert_eq(errno, ENOMEM);
}

Test(memalign, aligned_usable_and_enomem)
{
    for (size_t align = 2; align <= MiB; align *= 2) {
        void *p = v_memalign(align, 100);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % align, 0, "memalign(%zu) = %p", align, p);
        cr_assert_eq((uintptr_t)p % 16, 0, "memalign(%zu) = %p, below malloc's alignment", align, p);
        cr_assert_geq(v_usable(p), 100);
        memset(p, 2, 100);
        v_free(p);
    }
    errno = 0;
    cr_assert_null(v_memalign(4096, SIZE_MAX - 8192));
    cr_assert_eq(errno, ENOMEM);
}

/* glibc rounds an alignment that is no power of two up to the next one,
 * and refuses with EINVAL only what exceeds SIZE_MAX / 2 + 1 (no power of
 * two is larger): an alignment just above 2^62 becomes 2^63, which no
 * memory can give (ENOMEM).  memshim said EINVAL from 2^62 + 1 on. */
Test(memalign, alignments_past_2_62_round_up_as_glibcs)
{
    errno = 0;
    cr_assert_null(v_memalign(((size_t)1 << 62) + 1, 10));
    cr_assert_eq(errno, ENOMEM, "memalign(2^62 + 1, 10): errno %d, glibc's is ENOMEM", errno);
    errno = 0;
    cr_assert_null(v_memalign((SIZE_MAX / 2 + 1) - 1, 10));
    cr_assert_eq(errno, ENOMEM, "memalign(2^63 - 1, 10): errno %d, glibc's is ENOMEM", errno);
    errno = 0;
    cr_assert_null(v_memalign((SIZE_MAX / 2 + 1) + 1, 10));
    cr_assert_eq(errno, EINVAL, "memalign(2^63 + 1, 10): errno %d", errno);
    errno = 0;
    cr_assert_null(v_memalign(SIZE_MAX, 10));
    cr_assert_eq(errno, EINVAL);
}

Test(valloc, page_aligned)
{
    const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 70000, 600 * KiB, 3 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = v_valloc(sizes[i]);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 4096, 0, "valloc(%zu) = %p", sizes[i], p);
        cr_assert_geq(v_usable(p), sizes[i]);
        memset(p, 3, sizes[i]);
        v_free(p);
    }
    errno = 0;
    cr_assert_null(v_valloc(SIZE_MAX));
    cr_assert_eq(errno, ENOMEM);
}

Test(pvalloc, page_aligned_and_rounded_to_pages)
{
    const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 70000, 600 * KiB, 3 * MiB + 1 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i], rounded = (n + 4095) & ~(size_t)4095;
        if (rounded == 0) rounded = 4096;
        void *p = v_pvalloc(n);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 4096, 0, "pvalloc(%zu) = %p", n, p);
        cr_assert_geq(v_usable(p), rounded, "pvalloc(%zu): usable %zu < %zu", n, v_usable(p), rounded);
        memset(p, 4, rounded);
        v_free(p);
    }
    errno = 0;
    cr_assert_null(v_pvalloc(SIZE_MAX));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(v_pvalloc(SIZE_MAX - 5000));
    cr_assert_eq(errno, ENOMEM);
}

/* ---- malloc_usable_size ------------------------------------------------------- */

Test(malloc_usable_size, null_is_zero)
{
    cr_assert_eq(v_usable(NULL), 0);
}

Test(malloc_usable_size, at_least_requested_and_writable)
{
    for (size_t n = 0; n <= 5000; n += 1 + n / 64) {
        unsigned char *p = v_malloc(n);
        cr_assert_not_null(p);
        size_t u = v_usable(p);
        cr_assert_geq(u, n);
        memset(p, 0xee, u);                /* the whole usable area is ours */
        if (u) cr_assert_eq(p[u - 1], 0xee);
        v_free(p);
    }
    for (size_t i = 0; i < NSIZES; i++) {
        unsigned char *p = v_calloc(1, some_sizes[i]);
        cr_assert_not_null(p);
        size_t u = v_usable(p);
        cr_assert_geq(u, some_sizes[i]);
        memset(p, 0xee, u);
        v_free(p);
    }
}
