/* signals.c - the program's signal handlers, run when memshim holds none of
 * its locks.
 *
 * A handler that came in while its thread was inside memshim holding one
 * of its locks (a refill, the trace table, a stack being interned) ran
 * there, and could not end the program as handlers do: exit() from a
 * SIGALRM or SIGTERM handler found the locks the statistics, the profile
 * and the leak report need held by the call it interrupted, and the
 * process ended without them (13 of 60 timed-out processes of
 * exit_in_handler lost their statistics); a handler that siglongjmp()s out
 * left the lock held for ever.
 *
 * So the program's handlers are memshim's to call, as ThreadSanitizer's
 * are its runtime's: sigaction(), signal(), bsd_signal(), sysv_signal(),
 * sigset() and siginterrupt() (override.c) give the kernel `relay`, with
 * the program's mask and flags (SA_SIGINFO added), and keep the program's
 * handler in `prog`.  relay calls it at once, unless its thread is inside
 * memshim (_ms_inside_memshim).  Then the signal is put off: sent again to
 * the thread with its own siginfo (rt_tgsigqueueinfo), blocked in the mask
 * the interrupted code gets back, and let in when the thread releases the
 * last of its locks (_ms_signals_due, at each owner's release).  The
 * kernel keeps it pending meanwhile: standard signals merge as they would,
 * real-time ones queue, and the handler runs with the program's mask,
 * stack and flags, a few instructions after the release.  Nothing is
 * spent until a signal comes in: the releases test one thread-local word.
 *
 * The program gets back what it set: the old action of each call is the
 * program's handler and its SA_SIGINFO, with the mask and the other flags
 * the kernel holds (which the C library's own calls may change, as
 * siginterrupt's SA_RESTART).  SA_RESETHAND is the kernel's: a signal put
 * off finds the relay armed again for its second delivery.  Left to the
 * kernel: the signals a fault raises (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * SIGTRAP, SIGSYS: put off, the faulting instruction would raise it at
 * once again), SIGKILL and SIGSTOP, SIG_DFL and SIG_IGN, handlers set by
 * a system call of the program's own or by the C library's inner calls
 * (system(), abort(): these see the kernel's action, the relay, and put it
 * back as it was), and a process under a seccomp filter that may kill it
 * at a system call of memshim's (init.c): there the handler runs where it
 * comes in, as before (init.c's exit then says what it cannot write).
 *
 * A signal left to its default action that ends the process (SIGTERM,
 * SIGINT, SIGHUP, SIGPIPE, SIGALRM, SIGABRT, SIGSEGV...) ended it with no
 * report, no statistics and no profile: ^C on a server run under memshim,
 * a timeout's SIGTERM, abort(), a crash.  valgrind reports there.  So
 * where memshim has such work to do at exit, the process memshim started
 * in gets a handler of memshim's for each of them that is at its default
 * (arm_endings, at start): the relay, with the default as the program's
 * action, or for the signals a fault raises `fault_end`.  Either does the
 * end-of-process work (init.c), then gives the kernel its default action
 * again and sends the signal once more: the process ends as it would have,
 * killed by the same signal, with a core dump where the signal makes one,
 * taken at the interrupted code (the signal comes in as the handler
 * returns).  A signal that comes in while its thread holds memshim's locks
 * is put off as above; a fault there ends the process at once, as
 * memshim's own abort() (_ms_abort) always does.  One that comes in while
 * the work is under way (^C during a long exit scan) or on a forked child
 * ends the process at once, as before.  The program sees the default:
 * sigaction() answers SIG_DFL with no flags for a signal it never set.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* The program's action on a signal memshim relays: its handler (SIG_DFL,
 * SIG_IGN or a function; INFO set if it takes three arguments) in one word,
 * read by relay without a lock; its flags and mask, for the arming again
 * of a one-shot action (SA_RESETHAND). */
#define INFO (1ULL << 63)                 /* no user-space address has it */
typedef struct {
    uint64_t word;
    int      flags;
    sigset_t mask;
} prog_t;
static prog_t prog[65];
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;   /* the program's calls, one at a time */
static unsigned siginterrupted[2];    /* siginterrupt(sig, 1): signal() leaves SA_RESTART out, as glibc's */

static uint64_t armed;                /* bit sig - 1: memshim ends the process on it, report first */
static uint64_t pristine;             /* ... and the program never set its action: shown with no flags */
static __thread int ending_sig __attribute__((tls_model("initial-exec")));   /* this thread ends the process on it */
static __thread int aborting __attribute__((tls_model("initial-exec")));     /* in memshim's abort (_ms_abort) */

__thread uint64_t _ms_sig_deferred;   /* shim.h: the signals put off on this thread, bit sig - 1 */

/* The C library's sigaction, for memshim's own handlers and the relay:
 * glibc's other name for it, which memshim does not define (no lookup: it
 * is called with memshim's locks held, by the leak scan, and from the
 * relay), else found by dlsym at the first call. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *) __attribute__((weak));
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

int _ms_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (MS_LIKELY(__sigaction != NULL)) return __sigaction(sig, act, old);
    int (*real)(int, const struct sigaction *, struct sigaction *) = __atomic_load_n(&real_sigaction, __ATOMIC_ACQUIRE);
    if (MS_UNLIKELY(!real)) {
        real = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
        if (!real) { errno = ENOSYS; return -1; }
        __atomic_store_n(&real_sigaction, real, __ATOMIC_RELEASE);
    }
    return real(sig, act, old);
}

static bool fault(int sig) { return _ms_os_fault_signal(sig); }

static bool relayed(int sig)
{
    return sig > 0 && sig < NSIG && sig <= 64 && sig != SIGKILL && sig != SIGSTOP && !fault(sig);
}

/* The kernel's default action for sig again, and sig sent once more to
 * this thread: held while the handler runs, it ends the process as the
 * handler returns, at the interrupted code (where a core dump shows it);
 * at once if `now`.  A fault the kernel raised is not sent: its
 * instruction raises it again. */
static void default_again(int sig, const siginfo_t *si, bool now)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    _ms_sigaction(sig, &dfl, NULL);
    if (!now && fault(sig) && si && si->si_code > 0) return;
    siginfo_t copy;
    if (si && si->si_signo == sig) {
        copy = *si;
        if (_ms_os_sigqueue_self(sig, &copy) != 0) _ms_os_tgkill((int)getpid(), _ms_os_gettid(), sig);
    } else {
        _ms_os_tgkill((int)getpid(), _ms_os_gettid(), sig);
    }
    if (now) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    }
}

static void run(int sig, siginfo_t *si, void *uc, uint64_t w)
{
    if (w & INFO) {
        ((void (*)(int, siginfo_t *, void *))(uintptr_t)(w & ~INFO))(sig, si, uc);
    } else if (w > (uint64_t)(uintptr_t)SIG_IGN) {
        ((void (*)(int))(uintptr_t)w)(sig);
    } else if (w == (uint64_t)(uintptr_t)SIG_DFL) {
        /* The program set SIG_DFL while this one was on its way to the
         * relay: the kernel's action, once the program's call is done, is
         * the default.  Set now and sent again, it meets that. */
        default_again(sig, si, false);
    }
}

/* Put off sig until the thread leaves memshim (above); false if it
 * cannot be (the handler runs now). */
static bool put_off(int sig, siginfo_t *si, void *ucv, const prog_t *p)
{
    if (__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) return false;
    ucontext_t *uc = ucv;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    int flags = p->flags;
    /* With SA_NODEFER the signal is not held while its handler runs: held
     * here, the copy sent below waits. */
    if (flags & SA_NODEFER) pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (flags & SA_RESETHAND) {          /* the kernel made it SIG_DFL on the way in */
        struct sigaction again;
        memset(&again, 0, sizeof again);
        again.sa_sigaction = (void (*)(int, siginfo_t *, void *))_ms_signals_relay;
        again.sa_flags = flags | SA_SIGINFO;
        again.sa_mask = p->mask;
        _ms_sigaction(sig, &again, NULL);
    }
    siginfo_t copy = *si;
    copy.si_signo = sig;
    if (_ms_os_sigqueue_self(sig, &copy) != 0) {
        if (flags & SA_NODEFER) pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        return false;
    }
    sigaddset(&uc->uc_sigmask, sig);     /* held in the code it goes back to */
    __atomic_or_fetch(&_ms_sig_deferred, 1ULL << (sig - 1), __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return true;
}

/* ---- a signal stack for a stack overflow ----------------------------------------- *
 * A recursion without end overflows the main thread's stack: the kernel
 * finds no room there for the SIGSEGV handler's frame and ends the process
 * at once, with no report (valgrind reports there).  So the main thread
 * gets a signal stack of memshim's (sigaltstack, set at start where it has
 * none) and the fault signals' handler SA_ONSTACK: the kernel puts
 * fault_end's frame there.  It is memshim's metadata (no root of the leak
 * scan: the interrupted code's registers are read from its context), with
 * a guard page below; its pages are taken only when used.  It is hidden as
 * memshim's handlers are: sigaltstack() answers SS_DISABLE for it (but
 * while a handler of the program's runs on it, put there by its own
 * SA_ONSTACK), and a stack the program sets replaces it.  Other threads
 * get none (each thread's start would pay for one).
 *
 * The end-of-process work itself then runs on memshim's own stack
 * (_ms_on_own_stack), whatever stack the signal came in on: a signal stack
 * of the program's may be a few KiB (CPython's faulthandler's, raising the
 * signal again from its handler). */
#define ALT_STACK (64u << 10)        /* fault_end takes about 4 KiB of it, the kernel's frame included */
static char *alt_lo;                 /* its lowest address, or NULL */

/* At start (arm_endings), where this is the main thread and it has none. */
static void make_alt_stack(void)
{
    stack_t cur;
    if (_ms_os_gettid() != (int)getpid() || _ms_os_sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return;
    char *m = _ms_meta_alloc(MS_OS_PAGE + ALT_STACK);     /* over 64 KiB: a mapping of its own */
    if (!m) return;
    stack_t ss = { .ss_sp = m + MS_OS_PAGE, .ss_flags = 0, .ss_size = ALT_STACK };
    if (_ms_os_guard(m, MS_OS_PAGE) && _ms_os_sigaltstack(&ss, NULL) == 0) alt_lo = ss.ss_sp;
    else _ms_meta_free(m, MS_OS_PAGE + ALT_STACK);
}

/* sigaltstack(): the program's, with memshim's signal stack shown as none. */
int _ms_signals_altstack(const stack_t *ss, stack_t *old)
{
    int rc = _ms_os_sigaltstack(ss, old);
    if (rc == 0 && old && alt_lo && old->ss_sp == alt_lo && !(old->ss_flags & SS_ONSTACK)) {
        old->ss_sp = NULL;
        old->ss_size = 0;
        old->ss_flags = SS_DISABLE;
    }
    return rc;
}

typedef struct { int sig; const siginfo_t *si; const void *uc; } ending_t;

static int ending(void *arg)
{
    const ending_t *e = arg;
    _ms_exit_by_signal(e->sig, e->si, e->uc);
    return 0;
}

/* ---- the default action, memshim's report first --------------------------------- */

/* Whether sig's default action ends the process, memshim's report first.
 * Not SIGTRAP (a debugger's) nor SIGSYS (a seccomp filter's), nor the
 * real-time signals (the C library's own, and those libraries set up). */
static bool ends(int sig)
{
    switch (sig) {
    case SIGHUP: case SIGINT: case SIGQUIT: case SIGABRT: case SIGUSR1: case SIGUSR2: case SIGPIPE:
    case SIGALRM: case SIGTERM: case SIGXCPU: case SIGXFSZ: case SIGVTALRM: case SIGPROF: case SIGIO:
#ifdef SIGPWR
    case SIGPWR:
#endif
#ifdef SIGSTKFLT
    case SIGSTKFLT:
#endif
    case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE:
        return true;
    default:
        return false;
    }
}

static bool bit(const uint64_t *set, int sig)
{
    return sig > 0 && sig <= 64 && (__atomic_load_n(set, __ATOMIC_ACQUIRE) >> (sig - 1) & 1);
}

/* sig, at its default action, ends the process: memshim's end-of-process
 * work first where it is due (init.c: the process memshim started in,
 * work to do, none under way). */
static void end(int sig, siginfo_t *si, void *uc)
{
    int first = ending_sig;
    if (first) {          /* a fault or a signal during this thread's work for `first` */
        default_again(first, NULL, true);
        return;
    }
    ending_sig = sig;
    /* memshim's own abort() ends the process at once: it said why */
    if (!aborting && _ms_exit_signal_due()) {
        if (!_ms_inside_memshim()) {
            _ms_on_own_stack(ending, &(ending_t){ sig, si, uc });
        } else if (!fault(sig) && !_ms_shares_memory_with_home() && put_off(sig, si, uc, &prog[sig])) {
            ending_sig = 0;
            return;
        } else {
            _ms_exit_signal_lost(sig);      /* a fault in there: the work would wait for ever */
        }
    }
    _ms_out_abandon();                      /* memshim's temporary files go, as at _exit */
    default_again(sig, si, false);
}

/* memshim ends the process on an internal error or a heap error
 * (MEMSHIM_ON_ERROR=abort), perhaps holding its locks, its heap perhaps
 * broken: SIGABRT ends it at once, with no end-of-process work. */
void _ms_abort(void)
{
    aborting = 1;
    abort();
}

/* The kernel's handler of a fault signal at its default (the relay's,
 * for the others). */
static void fault_end(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    end(sig, si, uc);
    errno = saved;
}

/* k made memshim's handler standing for sig's default: the relay, or for
 * a fault fault_end, on memshim's signal stack. */
static void ending_action(int sig, struct sigaction *k)
{
    k->sa_sigaction = fault(sig) ? fault_end : _ms_signals_relay;
    k->sa_flags |= SA_SIGINFO | (fault(sig) ? SA_ONSTACK : 0);
}

/* At start (init.c), where memshim has work to do at exit: each signal
 * that ends the process and is at its default gets memshim's handler. */
void _ms_signals_arm_endings(void)
{
    make_alt_stack();
    sigset_t all, mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &mask);
    pthread_mutex_lock(&write_lock);
    for (int sig = 1; sig <= 64; sig++) {
        struct sigaction cur, sa;
        if (!ends(sig) || _ms_sigaction(sig, NULL, &cur) != 0) continue;
        if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL) continue;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        ending_action(sig, &sa);
        __atomic_store_n(&prog[sig].word, (uint64_t)(uintptr_t)SIG_DFL, __ATOMIC_RELEASE);
        __atomic_or_fetch(&armed, 1ULL << (sig - 1), __ATOMIC_ACQ_REL);
        __atomic_or_fetch(&pristine, 1ULL << (sig - 1), __ATOMIC_ACQ_REL);
        if (_ms_sigaction(sig, &sa, NULL) != 0) {
            __atomic_and_fetch(&armed, ~(1ULL << (sig - 1)), __ATOMIC_ACQ_REL);
            __atomic_and_fetch(&pristine, ~(1ULL << (sig - 1)), __ATOMIC_ACQ_REL);
        }
    }
    pthread_mutex_unlock(&write_lock);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

/* Whether the kernel's action k on sig is memshim's handler standing for
 * the default (not a handler: prim_linux.c holds none of those off). */
bool _ms_signals_at_default(int sig, const struct sigaction *k)
{
    if (!bit(&armed, sig) || !(k->sa_flags & SA_SIGINFO)) return false;
    if (k->sa_sigaction == fault_end) return true;
    return k->sa_sigaction == _ms_signals_relay &&
           __atomic_load_n(&prog[sig].word, __ATOMIC_ACQUIRE) == (uint64_t)(uintptr_t)SIG_DFL;
}

void _ms_signals_relay(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    const prog_t *p = &prog[sig];
    uint64_t w = __atomic_load_n(&p->word, __ATOMIC_ACQUIRE);
    if (w == (uint64_t)(uintptr_t)SIG_DFL && bit(&armed, sig)) {
        end(sig, si, uc);
        errno = saved;
        return;
    }
    if (_ms_inside_memshim() && !_ms_shares_memory_with_home() && put_off(sig, si, uc, p)) {
        errno = saved;
        return;
    }
    errno = saved;
    run(sig, si, uc, w);
}

/* The thread left memshim with signals put off: they come in now. */
void _ms_signals_deliver(void)
{
    if (_ms_inside_memshim()) return;
    uint64_t m = __atomic_exchange_n(&_ms_sig_deferred, 0, __ATOMIC_RELAXED);
    if (!m) return;
    sigset_t s;
    sigemptyset(&s);
    for (int sig = 1; sig <= 64; sig++)
        if (m & 1ULL << (sig - 1)) sigaddset(&s, sig);
    int saved = errno;
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    errno = saved;
}

/* A fork's child: the program's calls' lock made anew (another thread of
 * the parent may have held it), and the signals its thread had put off let
 * go (the child inherits the mask that held them, not the signals). */
void _ms_signals_fork_child(void)
{
    pthread_mutex_init(&write_lock, NULL);
    _ms_signals_deliver();
}

/* What the program sees of the kernel's action k, w the program's handler
 * then: its own handler where the kernel has the relay. */
static void shown(int sig, const struct sigaction *k, uint64_t w, struct sigaction *out)
{
    *out = *k;
    if (!(k->sa_flags & SA_SIGINFO) || (k->sa_sigaction != _ms_signals_relay && k->sa_sigaction != fault_end)) return;
    if (k->sa_sigaction == fault_end) {              /* SA_ONSTACK is memshim's (the signal stack above) */
        w = (uint64_t)(uintptr_t)SIG_DFL;
        out->sa_flags = (out->sa_flags & ~SA_ONSTACK) | (prog[sig].flags & SA_ONSTACK);
    }
    if (w == (uint64_t)(uintptr_t)SIG_DFL && bit(&pristine, sig)) {     /* as the process began */
        memset(out, 0, sizeof *out);
        sigemptyset(&out->sa_mask);
        out->sa_handler = SIG_DFL;
        return;
    }
    if (w & INFO) {
        out->sa_sigaction = (void (*)(int, siginfo_t *, void *))(uintptr_t)(w & ~INFO);
    } else {
        out->sa_flags &= ~SA_SIGINFO;
        out->sa_handler = (void (*)(int))(uintptr_t)w;
    }
}

int _ms_signals_action(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!relayed(sig) && !bit(&armed, sig)) return _ms_sigaction(sig, act, old);
    /* A vfork child (a shell's, resetting its signals before exec) has
     * actions of its own but its parent's memory, prog included: its
     * changes go to the kernel as they are. */
    if (MS_UNLIKELY(_ms_shares_memory_with_home())) {
        struct sigaction was;
        int rc = _ms_sigaction(sig, act, &was);
        if (rc == 0 && old) shown(sig, &was, __atomic_load_n(&prog[sig].word, __ATOMIC_ACQUIRE), old);
        return rc;
    }
    /* The program's structures are read before and written after the
     * part with its signals held: a bad pointer faults where the C
     * library's own call would, and the program's SIGSEGV handler sees it. */
    struct sigaction want, shown_old;
    if (act) want = *act;
    /* One call at a time, the thread's signals held: a handler of this
     * thread's never sees prog half written, nor waits for the lock. */
    sigset_t all, mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &mask);
    pthread_mutex_lock(&write_lock);
    struct sigaction k, was;
    uint64_t was_word = __atomic_load_n(&prog[sig].word, __ATOMIC_ACQUIRE);
    int rc;
    if (act) {
        void *fn = (want.sa_flags & SA_SIGINFO) ? (void *)want.sa_sigaction : (void *)want.sa_handler;
        bool handler = fn != (void *)SIG_DFL && fn != (void *)SIG_IGN;
        prog_t before = prog[sig];
        uint64_t was_pristine = __atomic_load_n(&pristine, __ATOMIC_ACQUIRE);
        k = want;
        if (fn == (void *)_ms_signals_relay || fn == (void *)fault_end) {
            /* memshim's handler itself (read by a system call of the
             * program's): the action it stands for stays */
        } else if (handler && relayed(sig)) {
            prog[sig].flags = want.sa_flags;
            prog[sig].mask = want.sa_mask;
            __atomic_store_n(&prog[sig].word, (uint64_t)(uintptr_t)fn | (want.sa_flags & SA_SIGINFO ? INFO : 0),
                             __ATOMIC_RELEASE);
            k.sa_sigaction = _ms_signals_relay;
            k.sa_flags |= SA_SIGINFO;
        } else {
            __atomic_store_n(&prog[sig].word, (uint64_t)(uintptr_t)fn, __ATOMIC_RELEASE);
            if (fn == (void *)SIG_DFL && bit(&armed, sig)) {     /* the default: memshim's report first */
                prog[sig].flags = want.sa_flags;
                prog[sig].mask = want.sa_mask;
                ending_action(sig, &k);
            }
        }
        if (fn != (void *)_ms_signals_relay && fn != (void *)fault_end)
            __atomic_and_fetch(&pristine, ~(1ULL << (sig - 1)), __ATOMIC_ACQ_REL);
        rc = _ms_sigaction(sig, &k, &was);
        if (rc != 0) {
            prog[sig] = before;
            __atomic_store_n(&pristine, was_pristine, __ATOMIC_RELEASE);
        }
    } else {
        rc = _ms_sigaction(sig, NULL, &was);
    }
    int err = errno;
    if (rc == 0) shown(sig, &was, was_word, &shown_old);   /* the action it replaced, as the program set it */
    pthread_mutex_unlock(&write_lock);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    if (rc == 0 && old) *old = shown_old;
    errno = err;
    return rc;
}

/* signal()'s family: handler for sig with flags, the signal held while it
 * runs if held; the handler it replaced. */
static sighandler_t set_simple(int sig, sighandler_t handler, bool held, int flags)
{
    if (handler == SIG_ERR || sig <= 0 || sig >= NSIG) { errno = EINVAL; return SIG_ERR; }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    if (held) sigaddset(&act.sa_mask, sig);
    act.sa_flags = flags;
    if (_ms_signals_action(sig, &act, &old) < 0) return SIG_ERR;
    return old.sa_handler;
}

/* signal() and bsd_signal(): glibc's BSD semantics (the signal held while
 * its handler runs, calls restarted unless siginterrupt said otherwise). */
sighandler_t _ms_signals_bsd(int sig, sighandler_t handler)
{
    bool intr = sig > 0 && sig < 64 && (__atomic_load_n(&siginterrupted[sig / 32], __ATOMIC_RELAXED) >> (sig % 32) & 1);
    return set_simple(sig, handler, true, intr ? 0 : SA_RESTART);
}

/* sysv_signal(): one-shot, not held while it runs. */
sighandler_t _ms_signals_sysv(int sig, sighandler_t handler)
{
    return set_simple(sig, handler, false, SA_RESETHAND | SA_NODEFER);
}

/* sigset() (System V): SIG_HOLD blocks the signal; any other disposition
 * is set and the signal let in; SIG_HOLD is answered if it was blocked. */
sighandler_t _ms_signals_sigset(int sig, sighandler_t disp)
{
    if (disp == SIG_ERR || sig <= 0 || sig >= NSIG) { errno = EINVAL; return SIG_ERR; }
    sigset_t one, was;
    sigemptyset(&one);
    sigaddset(&one, sig);
    struct sigaction old;
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &one, &was) < 0) return SIG_ERR;
        if (sigismember(&was, sig)) return SIG_HOLD;
        if (_ms_signals_action(sig, NULL, &old) < 0) return SIG_ERR;
        return old.sa_handler;
    }
    sighandler_t before = set_simple(sig, disp, false, 0);
    if (before == SIG_ERR) return SIG_ERR;
    if (sigprocmask(SIG_UNBLOCK, &one, &was) < 0) return SIG_ERR;
    return sigismember(&was, sig) ? SIG_HOLD : before;
}

/* siginterrupt(): SA_RESTART off (flag != 0) or on for sig's action, and
 * remembered for signal() as glibc does. */
int _ms_signals_interrupt(int sig, int flag)
{
    if (sig <= 0 || sig >= NSIG) { errno = EINVAL; return -1; }
    struct sigaction act;
    if (_ms_signals_action(sig, NULL, &act) < 0) return -1;
    if (sig < 64) {
        if (flag) __atomic_or_fetch(&siginterrupted[sig / 32], 1U << (sig % 32), __ATOMIC_RELAXED);
        else __atomic_and_fetch(&siginterrupted[sig / 32], ~(1U << (sig % 32)), __ATOMIC_RELAXED);
    }
    if (flag) act.sa_flags &= ~SA_RESTART;
    else act.sa_flags |= SA_RESTART;
    return _ms_signals_action(sig, &act, NULL);
}
