/* test_mt_stress.c - producers allocate blocks of random sizes (every class,
 * some huge) through malloc, calloc, memalign and realloc, fill them with a
 * pattern derived from a seed, and hand them over a queue; consumers on other
 * threads verify, sometimes realloc, hold, and free them.  So most frees are
 * cross-thread.  Deterministic PRNG per thread; bounded to a few seconds on
 * two cores. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include "memshim.h"
#include "helpers.h"

enum { PRODUCERS = 3, CONSUMERS = 3, ITEMS = 12000, QCAP = 512, HOLD = 64, LOCAL = 32 };

typedef struct { unsigned char *p; size_t n; uint64_t seed; } item_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    item_t q[QCAP];
    size_t head, count;
} Q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0 };

static atomic_long errors, consumed, huge_seen, reallocs_done;
static char first_error[256];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...)
{
    if (atomic_fetch_add(&errors, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        pthread_mutex_lock(&err_lock);
        vsnprintf(first_error, sizeof first_error, fmt, ap);
        pthread_mutex_unlock(&err_lock);
        va_end(ap);
    }
}

static void push(item_t it)
{
    pthread_mutex_lock(&Q.lock);
    while (Q.count == QCAP) pthread_cond_wait(&Q.not_full, &Q.lock);
    Q.q[(Q.head + Q.count++) % QCAP] = it;
    pthread_cond_signal(&Q.not_empty);
    pthread_mutex_unlock(&Q.lock);
}

static item_t pop(void)
{
    pthread_mutex_lock(&Q.lock);
    while (Q.count == 0) pthread_cond_wait(&Q.not_empty, &Q.lock);
    item_t it = Q.q[Q.head];
    Q.head = (Q.head + 1) % QCAP;
    Q.count--;
    pthread_cond_signal(&Q.not_full);
    pthread_mutex_unlock(&Q.lock);
    return it;
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = h_mix(rng), k = r % 1000, v = r >> 20;
    if (k < 600) return 1 + v % 256;
    if (k < 850) return 257 + v % (4096 - 256);
    if (k < 960) return 4097 + v % (65536 - 4096);
    if (k < 995) return 65537 + v % (512 * 1024 - 65536);
    return 512 * 1024 + 1 + v % (2 * MiB - 512 * 1024);              /* huge */
}

static void verify(const item_t *it, const char *who)
{
    size_t u = v_usable(it->p);
    if (u < it->n) error("%s: usable %zu < %zu for %p", who, u, it->n, (void *)it->p);
    size_t bad = h_check(it->p, it->n, it->seed);
    if (bad != (size_t)-1)
        error("%s: block %p (%zu bytes, seed %#llx) differs at offset %zu", who, (void *)it->p,
              it->n, (unsigned long long)it->seed, bad);
}

/* Allocate n bytes in one of several ways, checking what each promises. */
static unsigned char *allocate(uint64_t *rng, size_t n)
{
    unsigned k = (unsigned)(h_mix(rng) % 20);
    unsigned char *p;
    if (k < 13) {
        p = v_malloc(n);
    } else if (k < 16) {
        p = v_calloc(1, n);
        if (p && !h_all_zero(p, n)) error("calloc(1, %zu) = %p not zeroed", n, (void *)p);
    } else if (k < 18) {
        size_t align = (size_t)64 << (h_mix(rng) % 7);               /* 64 .. 4096 */
        p = v_memalign(align, n);
        if (p && (uintptr_t)p % align) error("memalign(%zu, %zu) = %p", align, n, (void *)p);
    } else {
        size_t first = 1 + h_mix(rng) % 300;
        p = v_malloc(first);
        if (p) {
            memset(p, 0xab, first);
            unsigned char *q = v_realloc(p, n);
            if (!q) { v_free(p); p = NULL; }
            else {
                size_t keep = first < n ? first : n;
                for (size_t i = 0; i < keep; i++)
                    if (q[i] != 0xab) { error("realloc(%zu -> %zu) lost byte %zu", first, n, i); break; }
                p = q;
            }
        }
    }
    if (!p) error("allocation of %zu bytes failed", n);
    else if ((uintptr_t)p % 16) error("%p (%zu bytes) not 16-aligned", (void *)p, n);
    return p;
}

static void *producer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x1234567ULL * (id + 1);
    item_t local[LOCAL] = {{0}};
    for (unsigned i = 0; i < ITEMS && atomic_load(&errors) == 0; i++) {
        item_t it;
        it.n = random_size(&rng);
        it.seed = ((uint64_t)id << 40) | i;
        it.p = allocate(&rng, it.n);
        if (!it.p) break;
        if (it.n > MS_MAX_SMALL_BYTES) atomic_fetch_add(&huge_seen, 1);
        h_fill(it.p, it.n, it.seed);
        push(it);
        /* some same-thread churn alongside */
        if (h_mix(&rng) % 4 == 0) {
            item_t *l = &local[h_mix(&rng) % LOCAL];
            if (l->p) { verify(l, "producer local"); v_free(l->p); }
            l->n = 1 + h_mix(&rng) % 2000;
            l->seed = ((uint64_t)id << 40) | (1ULL << 39) | i;
            l->p = v_malloc(l->n);
            if (!l->p) { error("local malloc failed"); break; }
            h_fill(l->p, l->n, l->seed);
        }
    }
    for (int k = 0; k < LOCAL; k++)
        if (local[k].p) { verify(&local[k], "producer local"); v_free(local[k].p); }
    return NULL;
}

static void *consumer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0xabcdefULL * (id + 7);
    item_t hold[HOLD] = {{0}};
    for (;;) {
        item_t it = pop();
        if (!it.p) break;                                    /* end of stream */
        verify(&it, "consumer");
        atomic_fetch_add(&consumed, 1);
        if (h_mix(&rng) % 8 == 0) {                          /* realloc on this thread */
            size_t n = random_size(&rng);
            unsigned char *q = v_realloc(it.p, n);
            if (!q) { error("realloc(%zu -> %zu) failed", it.n, n); v_free(it.p); continue; }
            item_t moved = { q, n < it.n ? n : it.n, it.seed };
            verify(&moved, "consumer after realloc");
            it.p = q;
            it.n = n;
            it.seed ^= 0x5555;
            h_fill(it.p, it.n, it.seed);
            atomic_fetch_add(&reallocs_done, 1);
        }
        if (h_mix(&rng) % 2) {                               /* hold it for a while */
            item_t *h = &hold[h_mix(&rng) % HOLD];
            if (h->p) { verify(h, "consumer hold"); v_free(h->p); }
            *h = it;
        } else {
            v_free(it.p);
        }
    }
    for (int k = 0; k < HOLD; k++)
        if (hold[k].p) { verify(&hold[k], "consumer hold"); v_free(hold[k].p); }
    return NULL;
}

Test(mt_stress, cross_thread_frees_keep_contents, .timeout = 120)
{
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    for (unsigned i = 0; i < CONSUMERS; i++)
        cr_assert_eq(pthread_create(&ct[i], NULL, consumer, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < PRODUCERS; i++)
        cr_assert_eq(pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < PRODUCERS; i++) pthread_join(pt[i], NULL);
    for (unsigned i = 0; i < CONSUMERS; i++) push((item_t){ NULL, 0, 0 });
    for (unsigned i = 0; i < CONSUMERS; i++) pthread_join(ct[i], NULL);

    cr_assert_eq(atomic_load(&errors), 0, "%ld errors; first: %s", atomic_load(&errors), first_error);
    cr_assert_eq(atomic_load(&consumed), (long)PRODUCERS * ITEMS);
    cr_assert_gt(atomic_load(&huge_seen), 0, "the size mix never reached a huge block");
    cr_assert_gt(atomic_load(&reallocs_done), 0);

    /* Everything was freed: no huge block is left, and the small blocks in
     * use are back to what the test harness itself holds (a little). */
    struct memshim_heap_stats st;
    cr_assert_eq(memshim_heap_stats(&st), 0);
    cr_assert_eq(st.huge_blocks, 0, "%zu huge blocks still live", st.huge_blocks);
    cr_assert_lt(st.small_bytes_in_use, 4 * MiB, "%zu bytes of small blocks still in use",
                 st.small_bytes_in_use);
}

/* Many threads each allocating and freeing the same sizes at once, frees in
 * another order than allocation, ending with every block handed back. */
static void *same_size_churn(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 977 + 1;
    enum { N = 500 };
    item_t *it = v_malloc(N * sizeof *it);
    for (int round = 0; round < 40; round++) {
        size_t n = h_class_size((unsigned)(h_mix(&rng) % 40));
        for (int i = 0; i < N; i++) {
            it[i].n = n;
            it[i].seed = (uint64_t)(uintptr_t)arg << 32 | (uint64_t)round << 16 | (uint64_t)i;
            it[i].p = v_malloc(n);
            if (!it[i].p) { error("malloc(%zu) failed", n); return NULL; }
            h_fill(it[i].p, n, it[i].seed);
        }
        for (int i = N - 1; i > 0; i--) {                    /* shuffle */
            int j = (int)(h_mix(&rng) % (uint64_t)(i + 1));
            item_t t = it[i]; it[i] = it[j]; it[j] = t;
        }
        for (int i = 0; i < N; i++) { verify(&it[i], "churn"); v_free(it[i].p); }
    }
    v_free(it);
    return NULL;
}

Test(mt_stress, same_classes_from_many_threads, .timeout = 120)
{
    enum { T = 6 };
    pthread_t t[T];
    for (uintptr_t i = 0; i < T; i++) cr_assert_eq(pthread_create(&t[i], NULL, same_size_churn, (void *)(i + 1)), 0);
    for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&errors), 0, "%ld errors; first: %s", atomic_load(&errors), first_error);
}

/* Large blocks' sizes and records are read without their lock (huge.c:
 * every realloc of one asks its size), while other threads insert, erase,
 * move and remap entries of the same table and grow it past its first 256
 * slots.  Each thread grows its blocks by small steps (most stay where
 * they are: a read only), by large ones (a remap), and replaces them; after
 * every step it writes the last byte malloc_usable_size gives and checks
 * its contents: a size read from another block's entry, or from one moved
 * under the reader, writes over another block or past a mapping. */
enum { HUGE_THREADS = 4, HUGE_KEPT = 48, HUGE_STEPS = 6000 };

static void *huge_steps(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 7919 + 3;
    item_t it[HUGE_KEPT] = {{0}};
    for (unsigned step = 0; step < HUGE_STEPS && atomic_load(&errors) == 0; step++) {
        item_t *b = &it[h_mix(&rng) % HUGE_KEPT];
        uint64_t k = h_mix(&rng) % 100;
        size_t n;
        if (!b->p || k < 10) {                          /* replaced: an insert and an erase */
            v_free(b->p);
            n = 512 * 1024 + 1 + h_mix(&rng) % MiB;
            b->p = v_malloc(n);
        } else {
            n = k < 95 ? b->n + 1 + h_mix(&rng) % 2000  /* a step: mostly in place */
                       : b->n / 2 + 512 * 1024;         /* a jump: remapped if it grows */
            if (n > 4 * MiB) n = 512 * 1024 + 1;
            unsigned char *q = v_realloc(b->p, n);
            if (!q) { error("realloc(%p, %zu) failed", (void *)b->p, n); break; }
            b->p = q;
            size_t keep = b->n < n ? b->n : n;
            size_t bad = h_check(b->p, keep, b->seed);
            if (bad != (size_t)-1) error("realloc to %zu lost byte %zu of %zu", n, bad, keep);
        }
        if (!b->p) { error("malloc(%zu) failed", n); break; }
        b->n = n;
        b->seed = (uint64_t)(uintptr_t)arg << 40 | step;
        size_t u = v_usable(b->p);
        if (u < n) { error("usable %zu < %zu for %p", u, n, (void *)b->p); break; }
        b->p[u - 1] = 0x5a;                             /* all of what it says is ours */
        h_fill(b->p, n, b->seed);
    }
    for (unsigned i = 0; i < HUGE_KEPT; i++)
        if (it[i].p) { verify(&it[i], "huge steps"); v_free(it[i].p); }
    return NULL;
}

Test(mt_stress, large_blocks_resized_while_other_threads_change_their_table, .timeout = 180)
{
    pthread_t t[HUGE_THREADS];
    for (uintptr_t i = 0; i < HUGE_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, huge_steps, (void *)(i + 1)), 0);
    for (int i = 0; i < HUGE_THREADS; i++) pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&errors), 0, "%ld errors; first: %s", atomic_load(&errors), first_error);
    struct memshim_heap_stats st;
    cr_assert_eq(memshim_heap_stats(&st), 0);
    cr_assert_eq(st.huge_blocks, 0, "%zu huge blocks still live", st.huge_blocks);
}
