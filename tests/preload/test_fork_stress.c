/* test_fork_stress.c - fork() while other threads allocate, many times; each
 * child allocates (small, huge, aligned, from a new thread too) and exits.
 * A child that hangs on a lock left held across fork is killed by the hang
 * guard and fails the test instead of blocking it. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include "memshim.h"
#include "helpers.h"

enum { BUSY_THREADS = 2, FORKS = 200, CHILD_SECONDS = 20 };

static atomic_int stop, busy_errors;
static atomic_long busy_ops;

static void *busy(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 31337 + 5;
    enum { SLOTS = 64 };
    unsigned char *p[SLOTS] = { 0 };
    size_t n[SLOTS] = { 0 };
    uint64_t seed[SLOTS] = { 0 };
    for (uint64_t k = 1; !atomic_load(&stop); k++) {
        int i = (int)(h_mix(&rng) % SLOTS);
        if (p[i]) {
            if (h_check(p[i], n[i], seed[i]) != (size_t)-1) atomic_fetch_add(&busy_errors, 1);
            v_free(p[i]);
        }
        uint64_t r = h_mix(&rng) % 100;
        n[i] = r < 70 ? 1 + r * 7 : r < 99 ? 1000 + (r * 977) % 60000 : 600 * KiB + r * 1000;
        seed[i] = k;
        p[i] = (r % 10 == 3) ? v_memalign(256, n[i]) : v_malloc(n[i]);
        if (!p[i]) { atomic_fetch_add(&busy_errors, 1); continue; }
        h_fill(p[i], n[i], seed[i]);
        atomic_fetch_add(&busy_ops, 1);
        if (k % 8 == 0) sched_yield();           /* leave the children some CPU */
    }
    for (int i = 0; i < SLOTS; i++) v_free(p[i]);
    return NULL;
}

static void *child_thread(void *arg)
{
    for (int i = 0; i < 50; i++) {
        unsigned char *q = v_malloc((size_t)i * 50 + 1);
        if (!q) return (void *)1;
        h_fill(q, (size_t)i * 50 + 1, (uint64_t)i);
        if (h_check(q, (size_t)i * 50 + 1, (uint64_t)i) != (size_t)-1) return (void *)1;
        v_free(q);
    }
    return NULL;
}

/* Runs in the child: allocate in every way, from this thread and a new one. */
static int child_work(int i)
{
    alarm(CHILD_SECONDS);              /* belt and braces: the parent also kills it */
    int bad = 0;
    void *ps[40];
    for (int k = 0; k < 40; k++) {
        size_t n = (size_t)((k * 1237 + i) % 20000) + 1;
        ps[k] = (k % 7 == 0) ? v_calloc(1, n) : v_malloc(n);
        if (!ps[k]) { bad = 1; continue; }
        h_fill(ps[k], n, (uint64_t)k);
    }
    for (int k = 0; k < 40; k++) {
        size_t n = (size_t)((k * 1237 + i) % 20000) + 1;
        if (ps[k] && h_check(ps[k], n, (uint64_t)k) != (size_t)-1) bad = 1;
        v_free(ps[k]);
    }
    unsigned char *h = v_malloc(1 * MiB);
    if (!h) bad = 1;
    else { memset(h, 1, 1 * MiB); h = v_realloc(h, 2 * MiB); if (!h || h[1 * MiB - 1] != 1) bad = 1; v_free(h); }
    void *a = v_memalign(4096, 10000);
    if (!a || (uintptr_t)a % 4096) bad = 1;
    v_free(a);
    pthread_t t;
    void *tr = (void *)1;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &tr) != 0 || tr) bad = 1;
    struct memshim_heap_stats st;
    if (memshim_heap_stats(&st) != 0) bad = 1;                 /* takes every lock */
    return bad;
}

/* Fork `count` children one after another; 0, or -1 with why[] filled in.
 * (No cr_assert here: it is also called from a second thread.) */
static int fork_many(int count, const char *who, char *why, size_t cap)
{
    for (int i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid == -1) { snprintf(why, cap, "%s: fork: %s", who, strerror(errno)); return -1; }
        if (pid == 0) _exit(child_work(i));
        int timed_out;
        int status = h_wait(pid, CHILD_SECONDS + 5, &timed_out);
        if (timed_out) {
            snprintf(why, cap, "%s: child %d hung (a lock held across fork?)", who, i);
            return -1;
        }
        if (!WIFEXITED(status)) {
            snprintf(why, cap, "%s: child %d died: status %#x (signal %d)", who, i, status,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
            return -1;
        }
        if (WEXITSTATUS(status) != 0) {
            snprintf(why, cap, "%s: child %d found its heap broken (exit %d)", who, i,
                     WEXITSTATUS(status));
            return -1;
        }
    }
    return 0;
}

Test(fork_stress, fork_while_threads_allocate, .timeout = 300)
{
    pthread_t t[BUSY_THREADS];
    for (uintptr_t i = 0; i < BUSY_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, busy, (void *)(i + 1)), 0);
    while (atomic_load(&busy_ops) < 1000) sched_yield();      /* they are running */
    char why[256] = "";
    int rc = fork_many(FORKS, "main thread", why, sizeof why);
    atomic_store(&stop, 1);
    for (int i = 0; i < BUSY_THREADS; i++) pthread_join(t[i], NULL);
    cr_assert_eq(rc, 0, "%s", why);
    cr_assert_eq(atomic_load(&busy_errors), 0, "allocating threads saw corrupted blocks");
}

static char forker_why[256];

static void *forker(void *arg)
{
    return (void *)(intptr_t)fork_many(30, "second thread", forker_why, sizeof forker_why);
}

Test(fork_stress, fork_from_another_thread_while_threads_allocate, .timeout = 300)
{
    pthread_t t[BUSY_THREADS], f;
    for (uintptr_t i = 0; i < BUSY_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, busy, (void *)(i + 10)), 0);
    while (atomic_load(&busy_ops) < 1000) sched_yield();
    cr_assert_eq(pthread_create(&f, NULL, forker, NULL), 0);
    void *rc;
    pthread_join(f, &rc);
    atomic_store(&stop, 1);
    for (int i = 0; i < BUSY_THREADS; i++) pthread_join(t[i], NULL);
    cr_assert_eq(rc, NULL, "%s", forker_why);
    cr_assert_eq(atomic_load(&busy_errors), 0);
}

/* ---- fork while another thread writes a leak report ------------------------
 * fixtures/fork_during_report forks 50 children one after another while a
 * thread makes leak reports (memshim_leak_check() in a loop, or
 * MEMSHIM_REPORT_SIGNAL raised again and again).  A child that inherited
 * the symbolizer's lock (or libdw's state) mid-report would hang in its own
 * exit report; the fixture kills a child after 20 s and fails.  Every child
 * must also have written its own report, naming its 48-byte leak. */
#include <dirent.h>

static void fork_during_report(const char *mode, const char *extra_env)
{
    char dir[] = "/tmp/msforkrepXXXXXX";
    cr_assert(mkdtemp(dir));
    char env_rep[PATH_MAX + 32];
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s/rep", dir);
    static h_run_t r;
    h_run_fixture2(&r, "fork_during_report", mode, env_rep, extra_env, 240);
    cr_assert_eq(r.timed_out, 0, "the fixture hung: %s", r.err);
    bool ok = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
    int children = 0, with_leak = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    char path[2 * PATH_MAX];
    while ((e = readdir(d))) {
        /* rep.PID: a child's report (a stale rep.tmp.PID of the parent's
         * concurrent reports is another matter, issue 9 defect 6) */
        if (strncmp(e->d_name, "rep.", 4) != 0 || strspn(e->d_name + 4, "0123456789") != strlen(e->d_name + 4))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        children++;
        FILE *f = fopen(path, "r");
        static char text[1 << 16];
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[n] = 0;
        if (f) fclose(f);
        if (strstr(text, "48 bytes in 1 block is definitely lost")) with_leak++;
        unlink(path);
    }
    closedir(d);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0) cr_log_warn("could not remove %s", dir);
    cr_assert(ok, "status %#x: %s", r.status, r.err);
    cr_assert(strstr(r.out, "fork_during_report done 50"), "%s", r.out);
    cr_expect_eq(children, 50, "every child writes its own exit report (%d did)", children);
    cr_expect_eq(with_leak, 50, "every child's report names its leak (%d do)", with_leak);
}

Test(fork_during_report, leak_check_loop, .timeout = 300)
{
    fork_during_report("check", NULL);
}

Test(fork_during_report, report_signal, .timeout = 300)
{
    fork_during_report("signal", "MEMSHIM_REPORT_SIGNAL=SIGUSR2");
}

/* A fixture that must end, and print `done`, tracked and not. */
static void ends_tracked_and_not(const char *fixture, const char *arg, const char *done)
{
    static const char *modes[] = { "MEMSHIM_TRACK=1", "MEMSHIM_TRACK=0" };
    static h_run_t r;
    char dir[32], rep[PATH_MAX + 32];
    cr_assert_eq(h_report_dir(dir, rep), 0);
    for (int k = 0; k < 2; k++) {
        h_run_fixture2(&r, fixture, arg, modes[k], rep, 60);
        cr_assert_eq(r.timed_out, 0, "%s: hung", modes[k]);
        cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status %#x: %s", modes[k], r.status, r.err);
        cr_expect(strstr(r.out, done), "%s: %s", modes[k], r.out);
    }
    h_report_dir_remove(dir);
}

/* ---- fork among threads that use streams -------------------------------------
 * fixtures/fork_stdio forks for 2 s while one thread grows lines with
 * getline (a stream's lock held while it reallocates) and another flushes
 * every stream (the list of streams held while it waits for a stream's
 * lock).  memshim's fork handler took the allocator's locks before glibc's
 * fork took the list of streams: the three waited on one another for ever
 * (12 runs in 12, found by a helper writing glibc's tst-malloc-fork-deadlock
 * anew).  Tracked and not. */
Test(fork_stdio, fork_while_threads_read_lines_and_flush_streams, .timeout = 200)
{
    ends_tracked_and_not("fork_stdio", "2", "fork_stdio done");
}

/* ---- a handler's fork inside the program's --------------------------------------
 * fixtures/fork_in_fork forks 300 times; each child, from its atfork
 * handler, signals the parent at once, whose handler forks too: often
 * while the parent is still inside its own fork, between the prepare and
 * parent handlers that hold every lock of memshim's and the collector's.
 * The handler's fork found them held by its own thread and waited for
 * ever (glibc's tst-mallocfork2, found by a helper: 12 runs in 12), and
 * once that was mended, the program's fork left them held when the
 * handler's came between (a flag, not a stack, said which fork took
 * none), or the collector's lock waited in the middle of its own unlock.
 * Tracked and not.  The handler is set with the C library's own sigaction
 * (FX_SIGNALS_DIRECT, fixture.h): one set through sigaction() memshim puts
 * off until the fork has given its locks back (shim/signals.c). */
Test(fork_in_fork, a_handlers_fork_inside_the_programs_gives_every_lock_back, .timeout = 200)
{
    setenv("FX_SIGNALS_DIRECT", "1", 1);
    ends_tracked_and_not("fork_in_fork", "300", "fork_in_fork done 300");
}
