/* test_meta.c - memshim's own memory (shim/meta.c) for a signal handler
 * that interrupts its thread while the thread holds meta's lock: the
 * handler's first tracked block made its profile state there and waited for
 * its own thread for ever (a 20 kHz timer's handler, one run in 200).  It
 * gets no memory instead, at once, and what it gives back stays memshim's;
 * the thread, and the handler once its thread is out, get memory as
 * before.  A hang fails by the timeout.  And the allocator's locks, which
 * know which of them the thread holds (shim.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <string.h>
#include "shim.h"

static void *small, *large;
static int handled;

static void on_usr1(int sig)
{
    (void)sig;
    small = _ms_meta_alloc(100);
    large = _ms_meta_alloc((size_t)1 << 20);      /* a mapping of its own */
    _ms_meta_free(small, 100);
    _ms_meta_free(large, (size_t)1 << 20);
    handled++;
}

Test(meta, handler_inside_its_threads_hold_gets_no_memory_and_does_not_wait, .timeout = 20)
{
    _ms_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    /* set with the C library's own call: the kernel calls it where the
     * signal comes in (one set through sigaction() would be put off until
     * the lock is released: test_signals.c) */
    cr_assert_eq(_ms_sigaction(SIGUSR1, &sa, NULL), 0);

    _ms_meta_lock();                    /* as the thread does inside _ms_meta_alloc */
    raise(SIGUSR1);
    _ms_meta_unlock(false);
    cr_assert_eq(handled, 1);
    cr_expect_null(small, "a small block handed out under its thread's hold");
    cr_expect_null(large, "a mapping handed out under its thread's hold");

    void *mine = _ms_meta_alloc(100);    /* the thread itself, after */
    cr_assert_not_null(mine);
    memset(mine, 0xab, 100);
    _ms_meta_free(mine, 100);

    raise(SIGUSR1);                     /* the handler, its thread outside */
    cr_assert_eq(handled, 2);
    cr_expect_not_null(small);
    cr_expect_not_null(large);
}

/* The allocator's locks know which of them the thread holds (shim.h), in
 * any order of release, and past their slots count as holding all. */
Test(locks, a_thread_knows_which_it_holds_in_any_order_of_release)
{
    enum { N = MS_HELD_SLOTS + 3 };
    static pthread_mutex_t m[N];
    for (int i = 0; i < N; i++) pthread_mutex_init(&m[i], NULL);
    cr_assert(!_ms_lock_mine(&m[0]));
    _ms_lock(&m[0]);
    _ms_lock(&m[1]);
    _ms_lock(&m[2]);
    cr_assert(_ms_lock_mine(&m[0]) && _ms_lock_mine(&m[1]) && _ms_lock_mine(&m[2]));
    cr_assert(!_ms_lock_mine(&m[3]));
    cr_assert(!_ms_lock_unless_mine(&m[1]), "taken twice by its holder");
    _ms_unlock(&m[0]);                     /* not the last taken */
    cr_assert(!_ms_lock_mine(&m[0]) && _ms_lock_mine(&m[1]) && _ms_lock_mine(&m[2]));
    cr_assert(_ms_lock_unless_mine(&m[0]));
    _ms_unlock(&m[1]);
    _ms_unlock(&m[2]);
    _ms_unlock(&m[0]);
    cr_assert_eq(_ms_held, 0);
    for (int i = 0; i < N; i++) cr_assert(!_ms_lock_mine(&m[i]));

    for (int i = 0; i < N; i++) _ms_lock(&m[i]);     /* more than the slots: all count as held */
    static pthread_mutex_t other = PTHREAD_MUTEX_INITIALIZER;
    cr_assert(_ms_lock_mine(&m[N - 1]) && _ms_lock_mine(&other));
    for (int i = 0; i < N; i++) _ms_unlock(&m[i]);   /* the first taken first */
    cr_assert_eq(_ms_held, 0);
    for (int i = 0; i < N; i++) cr_assert(!_ms_lock_mine(&m[i]));
    cr_assert(!_ms_lock_mine(&other));
}

/* A block of 16 KiB or more that has been free for MEMSHIM_DECAY is purged
 * (MADV_DONTNEED) and handed out again as zero without being cleared.  Such
 * blocks were carved from a chunk right after smaller ones, at addresses
 * that were not page-aligned: madvise refused them (EINVAL), and the next
 * block of that size came back with what was written in it before.  A
 * heap profile's hash table, taken that way, was full, and writing the
 * profile looped for ever (g++ at exit, found by a helper). */
Test(meta, a_purged_block_comes_back_zeroed)
{
    _ms_init();
    enum { N = 6 };
    const size_t sizes[] = { 16 << 10, 32 << 10, 64 << 10 };
    for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t size = sizes[k];
        void *b[N];
        for (unsigned i = 0; i < N; i++) {
            void *odd = _ms_meta_alloc(48);     /* the chunk's next block starts off a page */
            b[i] = _ms_meta_alloc(size);
            cr_assert_not_null(b[i]);
            cr_expect_eq((uintptr_t)b[i] % MS_OS_PAGE, 0, "a block of %zu bytes at %p", size, b[i]);
            memset(b[i], 0xA5, size);
            _ms_meta_free(odd, 48);
        }
        for (unsigned i = 0; i < N; i++) _ms_meta_free(b[i], size);
        _ms_meta_decay(_ms_os_now_ns() + ((uint64_t)_ms_opt.decay_ms + 1) * 1000000);
        for (unsigned i = 0; i < N; i++) {
            const unsigned char *p = _ms_meta_alloc(size);
            cr_assert_not_null(p);
            size_t bad = 0;
            for (size_t j = 0; j < size; j++) bad += p[j] != 0;
            cr_expect_eq(bad, 0, "block %p of %zu bytes: %zu bytes not zero", (void *)p, size, bad);
        }
    }
}

/* A free block of memshim's own memory that the kernel would not take back
 * (its pages locked: a program that calls mlockall) is not handed out
 * again as zero: madvise(MADV_DONTNEED) fails on locked pages and leaves
 * them as they were, and the block came back holding what its last user
 * wrote (as a new span's records, states of blocks never handed out).
 * Here one block is locked with mlock, whose pages the kernel refuses to
 * purge the same way.  Fails on meta.c before the fix (0x17 at byte 8). */
Test(meta, a_block_the_kernel_would_not_purge_comes_back_cleared)
{
    _ms_init();
    enum { SIZE = 48 << 10, MOST = 64 };             /* a 64 KiB block, one that decays */
    uint8_t *p = _ms_meta_alloc(SIZE);
    cr_assert_not_null(p);
    memset(p, 0xa5, SIZE);
    cr_assert_eq(mlock(p, SIZE), 0, "mlock: %s", strerror(errno));
    _ms_meta_free(p, SIZE);
    unsigned saved = _ms_opt.decay_ms;
    _ms_opt.decay_ms = 0;
    _ms_meta_decay(_ms_os_now_ns());                  /* purge what is free: refused for p */
    _ms_opt.decay_ms = saved;

    void *got[MOST];
    unsigned n = 0;
    bool found = false;
    while (n < MOST && !found) {                      /* blocks of that size until p comes back */
        uint8_t *q = got[n++] = _ms_meta_alloc(SIZE);
        cr_assert_not_null(q);
        size_t i = 0;
        while (i < SIZE && q[i] == 0) i++;
        cr_assert_eq(i, (size_t)SIZE, "a block handed out as zero holds %#x at byte %zu%s", q[i], i,
                     q == p ? " (the locked one)" : "");
        found = q == p;
    }
    cr_assert(found, "the locked block did not come back in %u allocations", n);
    munlock(p, SIZE);
    while (n) _ms_meta_free(got[--n], SIZE);
}
