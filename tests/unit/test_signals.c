/* test_signals.c - the program's handlers, set through sigaction() and
 * signal(), never run while their thread holds a lock of memshim's
 * (shim/signals.c): a signal that comes in then is put off until the
 * thread holds none, and comes in once, with its siginfo. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"

static void *small;
static int handled, values[8];

static void on_usr1(int sig)
{
    (void)sig;
    small = _ms_meta_alloc(100);          /* meta's lock: its thread's, while held */
    if (small) _ms_meta_free(small, 100);
    handled++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)uc;
    if (handled < 8) values[handled] = si->si_value.sival_int;
    handled++;
}

static void set(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    cr_assert_eq(sigaction(sig, &sa, NULL), 0, "sigaction: %s", strerror(errno));
}

Test(signals, a_handler_comes_in_when_its_thread_releases_its_last_lock, .timeout = 20)
{
    _ms_init();
    set(SIGUSR1, on_usr1, 0);
    _ms_meta_lock();
    raise(SIGUSR1);
    cr_assert_eq(handled, 0, "the handler ran inside its thread's hold");
    _ms_meta_unlock(false);
    cr_assert_eq(handled, 1, "the signal put off never came in");
    cr_expect_not_null(small, "the handler, its thread out, got no memory");
    raise(SIGUSR1);                      /* outside: at once */
    cr_assert_eq(handled, 2);
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    cr_expect(!sigismember(&m, SIGUSR1), "SIGUSR1 left blocked");
}

Test(signals, queued_signals_put_off_keep_their_values_and_order, .timeout = 20)
{
    _ms_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    int sig = SIGRTMIN + 4;
    cr_assert_eq(sigaction(sig, &sa, NULL), 0);
    _ms_meta_lock();
    for (int v = 1; v <= 3; v++) sigqueue(getpid(), sig, (union sigval){ .sival_int = 100 + v });
    cr_assert_eq(handled, 0);
    _ms_meta_unlock(false);
    cr_assert_eq(handled, 3, "%d of 3 queued signals came in", handled);
    for (int v = 0; v < 3; v++) cr_expect_eq(values[v], 101 + v, "signal %d: value %d", v, values[v]);
}

/* A one-shot handler put off still runs once, and then the default
 * (SIGWINCH's: ignored) is the action, as the program reads it. */
Test(signals, a_one_shot_handler_put_off_runs_once, .timeout = 20)
{
    _ms_init();
    set(SIGWINCH, on_usr1, SA_RESETHAND);
    _ms_meta_lock();
    raise(SIGWINCH);
    cr_assert_eq(handled, 0);
    _ms_meta_unlock(false);
    cr_assert_eq(handled, 1);
    raise(SIGWINCH);
    cr_assert_eq(handled, 1, "the one-shot handler ran twice");
    struct sigaction old;
    cr_assert_eq(sigaction(SIGWINCH, NULL, &old), 0);
    cr_expect(old.sa_handler == SIG_DFL, "one-shot handler not reset");
}
