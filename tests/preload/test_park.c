/* test_park.c - taking a snapshot must not change the program: threads
 * waiting in poll, nanosleep, select, sem_timedwait or a pipe read while
 * the leak scan stops them wait their full time and get what they would
 * have got (never EINTR); the program's wait() finds its own children only
 * and no thread is left traced; the figures of a known leak are exact in
 * every report.  The same when ptrace is refused or fatal (the scan then
 * stops threads with signals), when threads start and end during the
 * snapshots, when the program takes signals of its own meanwhile, and
 * under gdb, which must run the program through the exit report without
 * stopping.  Times are only checked from below. */
#include <errno.h>
#include "leakrun.h"

/* Every LEAK SUMMARY of a text report: definitely lost 348 bytes in 4
 * blocks, indirectly lost 192 bytes in 4 (park_waits' loss).  Returns how
 * many summaries there were. */
static int summaries_exact(const char *text)
{
    int n = 0;
    for (const char *p = strstr(text, "LEAK SUMMARY"); p; p = strstr(p + 1, "LEAK SUMMARY")) {
        long f[4];
        cr_assert(text_kind(p, "definitely lost", &f[0], &f[1]) && text_kind(p, "indirectly lost", &f[2], &f[3]),
                  "summary %d unreadable: %s", n + 1, p);
        cr_expect(f[0] == 4 && f[1] == 348 && f[2] == 4 && f[3] == 192,
                  "report %d: definitely lost %ld blocks %ld bytes, indirectly %ld/%ld (want 4/348, 4/192)",
                  n + 1, f[0], f[1], f[2], f[3]);
        n++;
    }
    return n;
}

/* One "wait NAME r=R errno=E us=ELAPSED want=ASKED" line of park_waits. */
static bool wait_line(const char *out, const char *name, long *r, int *err, long long *us, long long *want)
{
    char key[64];
    snprintf(key, sizeof key, "wait %s r=", name);
    const char *p = strstr(out, key);
    return p && sscanf(p + strlen(key) - 2, "r=%ld errno=%d us=%lld want=%lld", r, err, us, want) == 4;
}

static run_t run_park2(const char *mode, const char *arg)
{
    char *argv[] = { path_in_build("fixtures/park_waits"), (char *)mode, (char *)arg, NULL };
    run_t r = run_with(true, NULL, argv, NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "park_waits %s: status %d\nout: %s\nerr: %s",
              mode, r.status, r.out, r.err);
    return r;
}

static run_t run_park(const char *mode) { return run_park2(mode, NULL); }

/* The program's view of processes is unchanged: wait() returns the child
 * it forked, nothing else is left to wait for (no helper, no zombie), and
 * no thread stays traced. */
static void process_view_unchanged(const run_t *r)
{
    cr_expect(strstr(r->out, "wait: the child, status 7"), "wait() in the program: %s", r->out);
    cr_expect(strstr(r->out, "children: none"), "waitpid(-1, __WALL) found a child left: %s", r->out);
    cr_expect(strstr(r->out, "traced threads: 0"), "threads left traced: %s", r->out);
}

Test(park, waits_take_their_full_time_during_snapshots, .timeout = 120)
{
    run_t r = run_park("waits");
    static const struct { const char *name; long r; int err; } want[] = {
        { "poll", 0, 0 }, { "nanosleep", 0, 0 }, { "select", 0, 0 },
        { "sem_timedwait", -1, ETIMEDOUT }, { "read", 1, 0 },
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        long rv;
        int err;
        long long us, asked;
        cr_assert(wait_line(r.out, want[i].name, &rv, &err, &us, &asked), "no line for %s: %s", want[i].name, r.out);
        cr_expect(err != EINTR, "%s was interrupted by a snapshot (EINTR after %lld us of %lld)",
                  want[i].name, us, asked);
        cr_expect(rv == want[i].r && err == want[i].err, "%s returned %ld, errno %d (want %ld, errno %d)",
                  want[i].name, rv, err, want[i].r, want[i].err);
        cr_expect_geq(us, asked, "%s ended early: %lld us of %lld", want[i].name, us, asked);
    }
    process_view_unchanged(&r);
    cr_expect_eq(summaries_exact(r.err), 5, "4 snapshots and the exit report: %s", r.err);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

/* Where ptrace is refused (seccomp here; Yama, containers, a debugger) or
 * kills its caller, threads are stopped with signals: the figures are the
 * same, nothing is left behind.  (Their waits then end with EINTR, the
 * price of the fallback, memshim(7): the line for poll shows the fallback
 * really ran.) */
static void fallback(const char *mode)
{
    run_t r = run_park(mode);
    cr_expect_eq(summaries_exact(r.err), 5, "%s: 4 snapshots and the exit report: %s", mode, r.err);
    process_view_unchanged(&r);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    long rv;
    int err;
    long long us, asked;
    cr_assert(wait_line(r.out, "poll", &rv, &err, &us, &asked), "%s", r.out);
    cr_expect(rv == -1 && err == EINTR, "%s: the signal fallback was not used (poll returned %ld, errno %d)",
              mode, rv, err);
    run_free(&r);
}

Test(park, ptrace_refused_falls_back_to_signals, .timeout = 120) { fallback("noptrace"); }
Test(park, ptrace_fatal_falls_back_to_signals, .timeout = 120) { fallback("killptrace"); }

Test(park, threads_starting_and_ending_during_snapshots, .timeout = 120)
{
    run_t r = run_park("churn");
    cr_expect_eq(summaries_exact(r.err), 13, "12 snapshots and the exit report: %s", r.err);
    cr_expect(strstr(r.out, "traced threads: 0"), "%s", r.out);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

/* ptrace stops a thread whatever its signal mask (a signal never could:
 * the scan waited two seconds, then read the thread's whole stack). */
Test(park, a_thread_blocking_every_signal_is_stopped, .timeout = 120)
{
    run_t r = run_park("masked");
    cr_expect_eq(summaries_exact(r.err), 3, "2 snapshots and the exit report: %s", r.err);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

/* With signals, a thread that ends while the scan waits for it (every
 * signal blocked, as in the C library's last steps of every thread) is
 * seen to end: not awaited further, not counted as missed (the scan
 * waited two seconds and said a thread could not be stopped). */
Test(park, a_thread_ending_during_a_snapshot_is_not_awaited, .timeout = 120)
{
    run_t r = run_park2("maskedexit", "noptrace");
    cr_expect_eq(summaries_exact(r.err), 2, "a snapshot and the exit report: %s", r.err);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

/* Signals the program takes while the scan stops its threads (its own
 * SIGPROF every millisecond) reach its handler; nothing hangs or is missed. */
Test(park, the_program_s_signals_during_snapshots, .timeout = 120)
{
    run_t r = run_park("profiled");
    cr_expect_eq(summaries_exact(r.err), 11, "10 snapshots and the exit report: %s", r.err);
    const char *t = strstr(r.out, "profiling ticks: ");
    cr_expect(t && atoi(t + 17) > 0, "the program's SIGPROF handler ran: %s", r.out);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

/* Realtime signals queue: each one sent to a thread while the scan stops
 * it must reach the handler, also one the thread was stopped on (the
 * tracer hands it back on detaching; the kernel drops it when a tracer
 * just ends). */
Test(park, every_queued_signal_sent_during_snapshots_arrives, .timeout = 120)
{
    run_t r = run_park("queued");
    cr_expect_eq(summaries_exact(r.err), 21, "20 snapshots and the exit report: %s", r.err);
    long sent = -1, got = -2;
    const char *p = strstr(r.out, "signals sent ");
    cr_assert(p && sscanf(p, "signals sent %ld received %ld", &sent, &got) == 2, "%s", r.out);
    cr_expect(sent > 0 && got == sent, "signals sent %ld, received %ld", sent, got);
    run_free(&r);
}

/* Snapshots back to back while threads spin.  With signals, a thread woken
 * at the end of one scan may get no processor before the next begins: it
 * must leave the handler then, or the next scan's signal stays blocked in
 * it and the scan gives up on the thread after two seconds. */
static void back_to_back(const char *arg)
{
    run_t r = run_park2("spin", arg);
    cr_expect_eq(summaries_exact(r.err), 31, "30 snapshots and the exit report: %s", r.err);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

Test(park, snapshots_back_to_back, .timeout = 120) { back_to_back(NULL); }
Test(park, snapshots_back_to_back_with_signals, .timeout = 120) { back_to_back("noptrace"); }

/* After pthread_exit the main thread stays listed, a zombie, until the
 * others end: nothing to stop there (a signal queued to it was never
 * handled: the scan waited two seconds and said a thread was missed). */
static void zombie_main(const char *arg)
{
    run_t r = run_park2("zombiemain", arg);
    cr_expect(strstr(r.out, "park_waits zombiemain done"), "%s", r.out);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

Test(park, a_zombie_main_thread_is_skipped, .timeout = 120) { zombie_main(NULL); }
Test(park, a_zombie_main_thread_is_skipped_by_signals, .timeout = 120) { zombie_main("noptrace"); }

Test(park, exit_report_stops_threads_still_running, .timeout = 120)
{
    run_t r = run_park("running");
    cr_expect_eq(summaries_exact(r.err), 1, "%s", r.err);
    cr_expect_null(strstr(r.err, "could not be stopped"), "%s", r.err);
    run_free(&r);
}

/* gdb traces every thread, so the scan cannot use ptrace; it must not use
 * a signal gdb stops on (SIG62: realtime signals stop by default).  Runs
 * park_waits MODE under gdb in batch mode; stdout and stderr together. */
static char *under_gdb(const char *mode)
{
    char preload[4200];
    snprintf(preload, sizeof preload, "set environment LD_PRELOAD=%s", path_in_build("libmemshim.so"));
    char *argv[] = { "timeout", "120", "gdb", "-nx", "-q", "-batch", "-ex", preload, "-ex", "run",
                     "--args", path_in_build("fixtures/park_waits"), (char *)mode, NULL };
    run_t r = run_with(false, NULL, argv, NULL);
    char *all = malloc(strlen(r.out) + strlen(r.err) + 2);
    sprintf(all, "%s\n%s", r.out, r.err);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "gdb: status %d\n%s", r.status, all);
    cr_expect_null(strstr(all, "received signal"), "gdb stopped the program on a signal:\n%s", all);
    cr_expect(strstr(all, "exited normally"), "the program did not run to its end under gdb:\n%s", all);
    cr_expect(strstr(all, "traces this process"), "one line says a debugger is attached:\n%s", all);
    run_free(&r);
    return all;
}

Test(park, gdb_runs_through_the_exit_report, .timeout = 180)
{
    if (access("/usr/bin/gdb", X_OK) != 0) cr_skip_test("gdb is not installed");
    char *all = under_gdb("running");
    cr_expect(strstr(all, "park_waits running done"), "%s", all);
    cr_expect_eq(summaries_exact(all), 1, "the exit report, under gdb:\n%s", all);
    free(all);
}

/* Under gdb the scan's signal is SIGPROF: a program profiling itself keeps
 * its ticks, and one landing on the scanning thread does not stop it. */
Test(park, gdb_and_a_program_using_sigprof, .timeout = 180)
{
    if (access("/usr/bin/gdb", X_OK) != 0) cr_skip_test("gdb is not installed");
    char *all = under_gdb("profiled");
    cr_expect_eq(summaries_exact(all), 11, "10 snapshots and the exit report, under gdb:\n%s", all);
    const char *t = strstr(all, "profiling ticks: ");
    cr_expect(t && atoi(t + 17) > 0, "the program's SIGPROF handler ran:\n%s", all);
    free(all);
}
