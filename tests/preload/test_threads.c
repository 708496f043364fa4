/* test_threads.c - threads that exit while their caches hold blocks, blocks
 * outliving the thread that allocated them, and allocation in thread-specific
 * data destructors that run after memshim's own (the thread's cache is gone). */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include "memshim.h"
#include "helpers.h"

static int class_of_block(const struct memshim_heap_stats *st, size_t block)
{
    for (unsigned c = 0; c < st->nclasses; c++)
        if (st->classes[c].block_size == block) return (int)c;
    return -1;
}

enum { KEEP = 60, CHURN = 150 };
typedef struct { unsigned char *p[KEEP]; size_t n[KEEP]; uint64_t seed; } handoff_t;

/* Allocates, frees most into its own cache (some flushed), hands KEEP blocks
 * to the main thread and exits with the rest still cached. */
static void *worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    handoff_t *h = v_malloc(sizeof *h);
    h->seed = seed;
    void *churn[CHURN];
    for (int i = 0; i < CHURN; i++) {
        churn[i] = v_malloc(i % 2 ? 3000 : 40);
        memset(churn[i], i, i % 2 ? 3000 : 40);
    }
    for (int i = 0; i < KEEP; i++) {
        h->n[i] = i % 2 ? 3000 : 40;
        h->p[i] = v_malloc(h->n[i]);
        h_fill(h->p[i], h->n[i], seed * 1000 + (uint64_t)i);
    }
    for (int i = 0; i < CHURN; i++) v_free(churn[i]);
    return h;
}

Test(threads, exit_with_cached_blocks_gives_them_back)
{
    struct memshim_heap_stats a, b, c;
    cr_assert_eq(memshim_heap_stats(&a), 0);
    int c3k = class_of_block(&a, 3072), c48 = class_of_block(&a, 48);
    cr_assert(c3k >= 0 && c48 >= 0);

    enum { WAVES = 10, PER = 8 };
    handoff_t *got[WAVES * PER];
    for (int w = 0; w < WAVES; w++) {
        pthread_t t[PER];
        for (int i = 0; i < PER; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(w * PER + i + 1)), 0);
        for (int i = 0; i < PER; i++) pthread_join(t[i], (void **)&got[w * PER + i]);
    }
    cr_assert_eq(memshim_heap_stats(&b), 0);
    cr_assert_eq(b.threads, a.threads, "threads with a cache: %u before, %u after all exited",
                 a.threads, b.threads);
    /* exactly the handed-over blocks are in use in those classes */
    size_t want = (size_t)WAVES * PER * KEEP / 2;
    cr_assert_eq(b.classes[c3k].blocks_in_use, a.classes[c3k].blocks_in_use + want,
                 "3072-byte blocks in use: %zu, expected %zu", b.classes[c3k].blocks_in_use,
                 a.classes[c3k].blocks_in_use + want);
    cr_assert_eq(b.classes[c48].blocks_in_use, a.classes[c48].blocks_in_use + want,
                 "48-byte blocks in use: %zu, expected %zu", b.classes[c48].blocks_in_use,
                 a.classes[c48].blocks_in_use + want);

    /* the blocks outlived their threads intact; free them here */
    for (int k = 0; k < WAVES * PER; k++) {
        handoff_t *h = got[k];
        cr_assert_not_null(h);
        for (int i = 0; i < KEEP; i++) {
            cr_assert_eq(h_check(h->p[i], h->n[i], h->seed * 1000 + (uint64_t)i), (size_t)-1,
                         "block of exited thread %llu changed", (unsigned long long)h->seed);
            v_free(h->p[i]);
        }
        v_free(h);
    }
    cr_assert_eq(memshim_heap_stats(&c), 0);
    cr_assert_eq(c.classes[c3k].blocks_in_use, a.classes[c3k].blocks_in_use);
    cr_assert_eq(c.classes[c48].blocks_in_use, a.classes[c48].blocks_in_use);
}

/* Threads one after another: each may reuse a dead thread's cache. */
static void *short_lived(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    void *ps[64];
    for (int i = 0; i < 64; i++) {
        ps[i] = v_malloc((size_t)(i * 37 % 900) + 1);
        h_fill(ps[i], (size_t)(i * 37 % 900) + 1, seed + (uint64_t)i);
    }
    for (int i = 0; i < 64; i++)
        if (h_check(ps[i], (size_t)(i * 37 % 900) + 1, seed + (uint64_t)i) != (size_t)-1) return (void *)1;
    for (int i = 0; i < 64; i += 2) v_free(ps[i]);          /* into this thread's cache */
    void **rest = v_malloc(32 * sizeof *rest);
    for (int i = 1, k = 0; i < 64; i += 2, k++) rest[k] = ps[i];
    return rest;
}

Test(threads, many_sequential_threads)
{
    for (int i = 0; i < 300; i++) {
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, short_lived, (void *)(uintptr_t)(i * 100)), 0);
        void *r;
        pthread_join(t, &r);
        cr_assert_neq(r, (void *)1, "thread %d saw its blocks change", i);
        void **rest = r;
        for (int k = 0, j = 1; k < 32; k++, j += 2) {
            size_t n = (size_t)(j * 37 % 900) + 1;
            cr_assert_eq(h_check(rest[k], n, (uint64_t)(i * 100) + (uint64_t)j), (size_t)-1);
            v_free(rest[k]);
        }
        v_free(rest);
    }
    struct memshim_heap_stats st;
    memshim_heap_stats(&st);
    cr_assert_leq(st.threads, 2, "%u caches registered after 300 threads exited", st.threads);
}

/* A thread-specific-data destructor created after memshim initialised runs
 * after memshim's own: the thread's cache is gone when it allocates. */
static pthread_key_t late_key;
static atomic_int dtor_ok, dtor_ran;

static void late_destructor(void *arg)
{
    unsigned char *held = arg;
    int ok = h_check(held, 5000, 42) == (size_t)-1;
    v_free(held);
    const size_t sizes[] = { 1, 16, 100, 1000, 5000, 40000, 300000, 700000, 3 * MiB };
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = v_malloc(sizes[i]);
            if (!p) { ok = 0; continue; }
            h_fill(p, sizes[i], i + 1);
            unsigned char *q = v_realloc(p, sizes[i] * 2 + 1);
            if (!q || h_check(q, sizes[i], i + 1) != (size_t)-1) ok = 0;
            unsigned char *z = v_calloc(1, sizes[i]);
            if (!z || !h_all_zero(z, sizes[i])) ok = 0;
            v_free(q ? q : p);
            v_free(z);
        }
    atomic_store(&dtor_ok, ok);
    atomic_fetch_add(&dtor_ran, 1);
}

static void *with_late_key(void *arg)
{
    unsigned char *p = v_malloc(5000);
    h_fill(p, 5000, 42);
    pthread_setspecific(late_key, p);
    for (int i = 0; i < 100; i++) v_free(v_malloc((size_t)i * 10 + 1));  /* fill the cache */
    return NULL;
}

Test(threads, allocation_in_tsd_destructor_after_cache_is_gone)
{
    void *warm = v_malloc(8);                  /* memshim initialised: its key comes first */
    v_free(warm);
    cr_assert_eq(pthread_key_create(&late_key, late_destructor), 0);
    struct memshim_heap_stats a, b;
    memshim_heap_stats(&a);
    for (int i = 0; i < 20; i++) {
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, with_late_key, NULL), 0);
        pthread_join(t, NULL);
        cr_assert(atomic_load(&dtor_ok), "allocation in the destructor of thread %d misbehaved", i);
    }
    cr_assert_eq(atomic_load(&dtor_ran), 20);
    /* The heap is still sound: many new spans of few-block classes (each
     * with fresh bookkeeping), filled and checked. */
    static unsigned char *ps[4][40];
    const size_t big[4] = { 20000, 300000, 400000, 500000 };
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 40; i++) {
            ps[k][i] = v_malloc(big[k]);
            cr_assert_not_null(ps[k][i]);
            h_fill(ps[k][i], big[k], (uint64_t)(k * 100 + i));
        }
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 40; i++) {
            cr_assert_eq(h_check(ps[k][i], big[k], (uint64_t)(k * 100 + i)), (size_t)-1);
            v_free(ps[k][i]);
        }
    memshim_heap_stats(&b);
    cr_assert_eq(b.threads, a.threads);
    cr_assert_eq(b.huge_blocks, a.huge_blocks, "huge blocks freed in the destructor still counted");
}
