/* profile_phases.c - a heap whose profile is known exactly (issue 13).
 *
 *   peak:   peak_small() 40 x 100,000 bytes and peak_huge() 10 x 1,000,000
 *           bytes, interleaved, all live at once (14,000,000 bytes: the
 *           peak), then freed; the last peak_huge() block, freed before any
 *           other allocation, is a temporary
 *   churn:  churn() 1,000 x 64 bytes, each freed at once: 1,000 temporaries;
 *           pair_first() and pair_second() 100 x 32 bytes each, allocated
 *           a then b, freed a then b: only b's are temporaries
 *   threads: 4 threads run thread_work(): 250 x 48 bytes each, freed by
 *           main after the joins (another thread: no temporaries)
 *   keep:   keep_some() 5 x 1,000 bytes live at exit (still reachable)
 *
 *   profile_phases           the phases, then exit
 *   profile_phases dump F    memshim_profile_dump(F) right after the peak phase
 *   profile_phases signal F  threads allocate while the program sends itself
 *                            MEMSHIM_PROFILE_SIGNAL (USR2), waits for the
 *                            profile to appear at $MEMSHIM_PROFILE and
 *                            renames it to F
 *   profile_phases hold F    no phases: 2 threads each allocate 100 x 64
 *                            bytes in thread_hold() and free 40 of them, then
 *                            wait while main calls memshim_profile_dump(F)
 *                            (their figures still in their own slots: 200
 *                            allocations, 120 blocks of 7,680 bytes live, the
 *                            peak being now), then free the rest
 *   profile_phases stress F  no phases: 4 threads each allocate 20,000
 *                            blocks in stress_site() (16 + i % 200 bytes for
 *                            the i-th) and trade them through a ring of 256
 *                            slots, each freeing the block it takes out (most
 *                            frees are of another thread's blocks), while
 *                            main writes profiles to F without pause (once
 *                            they have traded 1,000); after
 *                            the joins main frees what the ring holds:
 *                            80,000 allocations, none live at exit
 *   profile_phases collide   no phases: main alone, then 2 threads, 20
 *                            rounds each: 128 blocks of 24 bytes from 128
 *                            call sites of spread_site() (128 stacks), one
 *                            of 40 bytes from memo_site(), the 128 freed
 *                            (their log flushed 3 times: in a thread, 96
 *                            stacks through its 64 slots, memo_site's
 *                            taken among them; main alone counts in
 *                            place), another memo_site() block, then both
 *                            freed, the last a temporary: memo_site 120
 *                            allocations of 4,800 bytes, 60 temporaries of
 *                            2,400; spread_site 7,680 of 184,320, none;
 *                            nothing live at exit
 *   profile_phases realloc   the phases, then grow() takes one block through
 *                            realloc to 100, 90, 200, 5,000, 300,000,
 *                            2,000,000, 3,000,000 and 2,900,000 bytes (pool
 *                            and huge, moved, remapped, and left where it is:
 *                            90 and 2,900,000) and frees it: 8 allocations of
 *                            8,205,390 bytes, each freed before the next:
 *                            temporaries; and refused() allocates 48 bytes
 *                            and refused_huge() 1,000,000 that a realloc
 *                            too big for memory leaves live
 *   profile_phases tiny      no phases: one_byte() 1,000 x 1 byte, kept;
 *                            20,000 rounds of held_a() and held_b() (64
 *                            bytes each), a freed, then b: 20,000
 *                            temporaries at held_b, none at held_a
 *   profile_phases logged F  no phases, one thread: logged_a() allocates 100
 *                            blocks of 1,000 bytes and 25 are freed (frees a
 *                            thread keeps in its log until 32 gather), then
 *                            logged_b() 30 more: the heap's highest now,
 *                            105,000 bytes, below the next peak the
 *                            profiler looks for; memshim_profile_dump(F):
 *                            its peak is this heap, not the frees unseen
 *                            (logged_a 75,000 at the peak, logged_b 30,000)
 *   profile_phases shrink    no phases: shrink_from() allocates 20,000 blocks
 *                            of 1,024 bytes, then shrink_to() reallocs each
 *                            to 512 bytes (on memshim's pools, where it is);
 *                            all live at exit: shrink_from 20,000 allocations
 *                            of 20,480,000 bytes, none live; shrink_to 20,000
 *                            of 10,240,000, all live
 *   profile_phases xpeak     no phases: a thread allocates 4 x 4,000,000 bytes
 *                            in xpeak_site() and ends; main frees them: the
 *                            peak is the 16,000,000 bytes the thread left
 *                            (main's own figures never passed it)
 *   profile_phases stale     no phases, 100 rounds: main allocates 64 bytes
 *                            in stale_p() and hands them to a thread, which
 *                            frees them, allocates 64 in stale_q() (at the
 *                            same address, mostly) and 64 in stale_r(),
 *                            frees r (a temporary) and hands q back; main
 *                            frees q: not a temporary (its thread allocated
 *                            r after it), whatever its address
 *   profile_phases dtor      no phases: 4 threads, each allocating and freeing
 *                            200 bytes in dtor_body(), whose thread-key
 *                            destructors allocate 3 x 1,000 bytes in
 *                            dtor_keep() (kept) and 50 in dtor_temp() (freed)
 *                            after memshim saw the thread end: each
 *                            allocation in the histogram too
 *   profile_phases sigfree   no phases: main allocates and frees 16-215
 *                            bytes in sig_main() 2,000,000 times (each block
 *                            freed 8 allocations later) while a 20 kHz timer's
 *                            handler allocates 5,000 bytes in sig_site() and
 *                            frees the block of its run before, then all
 *                            freed: nothing live at either site
 * No stdio before the end: its buffers would be allocations of their own. */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static void *volatile sink, *volatile sink2;
static void *peak[50], *pairs[200], *work[4][250], *kept[5];

NOINLINE void *peak_small(void) { return malloc(100000); }
NOINLINE void *peak_huge(void) { return malloc(1000000); }
NOINLINE void *churn(void) { return malloc(64); }
NOINLINE void *pair_first(void) { return malloc(32); }
NOINLINE void *pair_second(void) { return malloc(32); }
NOINLINE void *thread_work(size_t n) { return malloc(n); }
NOINLINE void *keep_some(void) { return malloc(1000); }
NOINLINE void *grow(void *p, size_t n) { return realloc(p, n); }
NOINLINE void *refused(void) { return malloc(48); }
NOINLINE void *shrink_from(void) { return malloc(1024); }
NOINLINE void *shrink_to(void *p) { return realloc(p, 512); }
NOINLINE void *refused_huge(void) { return malloc(1000000); }
NOINLINE void *thread_hold(void) { return malloc(64); }
NOINLINE void *stress_site(size_t n) { return malloc(n); }
NOINLINE void *memo_site(void) { return malloc(40); }
NOINLINE void *one_byte(void) { return malloc(1); }
NOINLINE void *held_a(void) { return malloc(64); }
NOINLINE void *held_b(void) { return malloc(64); }
/* 128 call sites, so 128 stacks (built at -O0: no call is merged) */
#define SITE1(n) case n: p = malloc(24); break;
#define SITE4(n) SITE1(n) SITE1(n + 1) SITE1(n + 2) SITE1(n + 3)
#define SITE16(n) SITE4(n) SITE4(n + 4) SITE4(n + 8) SITE4(n + 12)
#define SITE64(n) SITE16(n) SITE16(n + 16) SITE16(n + 32) SITE16(n + 48)
NOINLINE void *spread_site(int i)
{
    void *p = NULL;
    switch (i) { SITE64(0) SITE64(64) }
    return p;
}

static void *worker(void *arg)
{
    void **slot = arg;
    for (int i = 0; i < 250; i++) slot[i] = thread_work(48);
    return NULL;
}

static volatile int stop;
static int spins;
static void *spinner(void *arg)   /* allocates and frees until told to stop */
{
    (void)arg;
    while (!stop) { void *p = thread_work(24); sink = p; free(p); __atomic_add_fetch(&spins, 1, __ATOMIC_RELAXED); }
    return NULL;
}

static pthread_barrier_t held, resume;
static void *holder(void *arg)
{
    void **slot = arg;
    for (int i = 0; i < 100; i++) slot[i] = thread_hold();
    for (int i = 0; i < 40; i++) free(slot[i]);
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&resume);
    for (int i = 40; i < 100; i++) free(slot[i]);
    return NULL;
}

static int hold_mode(const char *to)
{
    static void *hold[2][100];
    int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "memshim_profile_dump");
    if (!dump) return 2;
    pthread_barrier_init(&held, NULL, 3);
    pthread_barrier_init(&resume, NULL, 3);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, holder, hold[i]);
    pthread_barrier_wait(&held);
    int rc = dump(to) == 0 ? 0 : 2;
    pthread_barrier_wait(&resume);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    return rc;
}

static void phase_peak(void)
{
    for (int i = 0; i < 50; i++) peak[i] = i % 5 == 4 ? peak_huge() : peak_small();
    for (int i = 0; i < 50; i++) memset(peak[i], 1, i % 5 == 4 ? 1000000 : 100000);
}

static void phase_rest(void)
{
    for (int i = 0; i < 50; i++) free(peak[i]);
    for (int i = 0; i < 1000; i++) { void *p = churn(); sink = p; free(p); }
    for (int i = 0; i < 100; i++) {
        pairs[2 * i] = pair_first();
        pairs[2 * i + 1] = pair_second();
        free(pairs[2 * i]);
        free(pairs[2 * i + 1]);
    }
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, work[i]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) for (int k = 0; k < 250; k++) free(work[i][k]);
    for (int i = 0; i < 5; i++) kept[i] = keep_some();
}

static int signal_mode(const char *to)
{
    const char *path = getenv("MEMSHIM_PROFILE");
    if (!path) return 3;
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, spinner, NULL);
    struct stat st;
    unlink(path);
    while (__atomic_load_n(&spins, __ATOMIC_RELAXED) < 3000) usleep(1000);   /* they are allocating */
    kill(getpid(), SIGUSR2);
    for (int i = 0; i < 1000 && stat(path, &st) != 0; i++) usleep(10000);   /* renamed into place whole */
    int rc = rename(path, to) == 0 ? 0 : 4;
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    return rc;
}

static void *ring[256];
static int stressing;
static void *trader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        void *p = stress_site(16 + (size_t)(i % 200));
        memset(p, i, 16);
        seed = seed * 1103515245u + 12345u;
        void *old = __atomic_exchange_n(&ring[(seed >> 8) % 256], p, __ATOMIC_ACQ_REL);
        free(old);
        __atomic_add_fetch(&spins, 1, __ATOMIC_RELAXED);
    }
    __atomic_sub_fetch(&stressing, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int stress_mode(const char *to)
{
    int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "memshim_profile_dump");
    if (!dump) return 2;
    pthread_t t[4];
    stressing = 4;
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, trader, (void *)(uintptr_t)(i + 1));
    int rc = 0, dumps = 0;
    while (__atomic_load_n(&spins, __ATOMIC_RELAXED) < 1000) sched_yield();   /* they are trading */
    while (__atomic_load_n(&stressing, __ATOMIC_ACQUIRE) > 0 || dumps == 0) {
        if (dump(to) != 0) rc = 2;
        dumps++;
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 256; i++) free(ring[i]);
    return rc;
}

static void *collider(void *arg)
{
    (void)arg;
    void *spread[128];
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 128; i++) spread[i] = spread_site(i);
        void *m[2];
        for (int k = 0; k < 2; k++) {       /* one call site: one stack */
            m[k] = memo_site();
            if (k == 0)
                for (int i = 0; i < 128; i++) free(spread[i]);
        }
        free(m[0]);
        free(m[1]);
    }
    return NULL;
}

NOINLINE void *xpeak_site(void) { return malloc(4000000); }
static void *xpeak_blocks[4];
static void *xpeak_thread(void *arg)
{
    for (int i = 0; i < 4; i++) xpeak_blocks[i] = xpeak_site();
    return arg;
}

static int xpeak_mode(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, xpeak_thread, NULL) || pthread_join(t, NULL)) return 2;
    for (int i = 0; i < 4; i++) free(xpeak_blocks[i]);
    return 0;
}

NOINLINE void *stale_p(void) { return malloc(64); }
NOINLINE void *stale_q(void) { return malloc(64); }
NOINLINE void *stale_r(void) { return malloc(64); }
static void *volatile stale_box;
static int stale_turn;                       /* 0: main's, 1: the thread's */

static void stale_wait(int turn)
{
    while (__atomic_load_n(&stale_turn, __ATOMIC_ACQUIRE) != turn) sched_yield();
}

static void *stale_thread(void *arg)
{
    for (int i = 0; i < 100; i++) {
        stale_wait(1);
        free(stale_box);
        void *q = stale_q();
        free(stale_r());
        stale_box = q;
        __atomic_store_n(&stale_turn, 0, __ATOMIC_RELEASE);
    }
    return arg;
}

static int stale_mode(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, stale_thread, NULL)) return 2;
    for (int i = 0; i < 100; i++) {
        stale_wait(0);
        if (i) free(stale_box);              /* the thread's q */
        stale_box = stale_p();
        __atomic_store_n(&stale_turn, 1, __ATOMIC_RELEASE);
    }
    stale_wait(0);
    free(stale_box);
    return pthread_join(t, NULL) ? 2 : 0;
}

NOINLINE void *dtor_keep(void) { return malloc(1000); }
NOINLINE void *dtor_temp(void) { return malloc(50); }
static pthread_key_t dtor_key;
static void *dtor_kept[4][3];
static void dtor_run(void *arg)
{
    void **keep = arg;
    for (int i = 0; i < 3; i++) keep[i] = dtor_keep();
    free(dtor_temp());
}

NOINLINE void *dtor_body(void) { return malloc(200); }
static void *dtor_thread(void *arg)
{
    pthread_setspecific(dtor_key, arg);
    free(dtor_body());                   /* memshim knows the thread before its end */
    return NULL;
}

static int dtor_mode(void)
{
    if (pthread_key_create(&dtor_key, dtor_run)) return 2;
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, dtor_thread, dtor_kept[i]) || pthread_join(t, NULL)) return 2;
    }
    return 0;
}

NOINLINE void *sig_site(void) { return malloc(5000); }
NOINLINE void *sig_main(size_t n) { return malloc(n); }
static void *sig_prev;
static void sig_handler(int s)
{
    (void)s;
    void *p = sig_site();
    free(sig_prev);
    sig_prev = p;
}

static int sigfree_mode(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGALRM, &sa, NULL)) return 2;
    struct itimerval on = { { 0, 50 }, { 0, 50 } }, off = { { 0, 0 }, { 0, 0 } };
    if (setitimer(ITIMER_REAL, &on, NULL)) return 2;
    void *ring[8] = { 0 };
    for (unsigned i = 0; i < 2000000; i++) {
        free(ring[i % 8]);
        ring[i % 8] = sig_main(16 + i % 200);
    }
    setitimer(ITIMER_REAL, &off, NULL);
    for (int k = 0; k < 8; k++) free(ring[k]);
    free(sig_prev);
    return 0;
}

NOINLINE void *logged_a(void) { return malloc(1000); }
NOINLINE void *logged_b(void) { return malloc(1000); }

static int logged_mode(const char *out)
{
    static void *a[100], *b[30];
    for (int i = 0; i < 100; i++) a[i] = logged_a();
    for (int i = 0; i < 25; i++) { free(a[i]); a[i] = NULL; }
    for (int i = 0; i < 30; i++) b[i] = logged_b();
    int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "memshim_profile_dump");
    if (!dump || dump(out) != 0) return 1;
    for (int i = 0; i < 100; i++) free(a[i]);
    for (int i = 0; i < 30; i++) free(b[i]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "logged") == 0) return logged_mode(argv[2]);
    if (argc == 2 && strcmp(argv[1], "xpeak") == 0) return xpeak_mode();
    if (argc == 2 && strcmp(argv[1], "stale") == 0) return stale_mode();
    if (argc == 2 && strcmp(argv[1], "dtor") == 0) return dtor_mode();
    if (argc == 2 && strcmp(argv[1], "sigfree") == 0) return sigfree_mode();
    if (argc == 2 && strcmp(argv[1], "collide") == 0) {
        collider(NULL);                     /* one thread: no slots, the counters in place */
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, collider, NULL);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "stress") == 0) return stress_mode(argv[2]);
    if (argc == 3 && strcmp(argv[1], "signal") == 0) return signal_mode(argv[2]);
    if (argc == 3 && strcmp(argv[1], "hold") == 0) return hold_mode(argv[2]);
    if (argc == 2 && strcmp(argv[1], "tiny") == 0) {
        static void *ones[1000];
        for (int i = 0; i < 1000; i++) ones[i] = one_byte();
        for (int i = 0; i < 20000; i++) {       /* a's freed after b's allocation: b's temporaries only */
            void *a = held_a(), *b = held_b();
            free(a);
            free(b);
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "shrink") == 0) {
        static void *blocks[20000];
        for (int i = 0; i < 20000; i++) blocks[i] = shrink_from();
        for (int i = 0; i < 20000; i++)
            if (!(blocks[i] = shrink_to(blocks[i]))) return 1;
        return 0;
    }
    phase_peak();
    if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "memshim_profile_dump");
        if (!dump || dump(argv[2]) != 0) return 2;
    }
    phase_rest();
    if (argc == 2 && strcmp(argv[1], "realloc") == 0) {
        static const size_t sizes[] = { 100, 90, 200, 5000, 300000, 2000000, 3000000, 2900000 };
        void *g = NULL;
        for (int i = 0; i < 8; i++) g = grow(g, sizes[i]);
        free(g);
        sink = refused();
        if (realloc(sink, (size_t)PTRDIFF_MAX) != NULL) return 1;
        sink2 = refused_huge();
        if (realloc(sink2, (size_t)PTRDIFF_MAX) != NULL) return 1;
    }
    return 0;
}
