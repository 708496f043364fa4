/* park.c - the other threads of the process stopped while the leak scan
 * reads memory (scan.c), and where each one was: the stack pointer it was
 * stopped at and its general registers, which are roots.  The program must
 * not see it happen: no call of its threads may fail or end early because
 * a snapshot was taken.
 *
 * 1. ptrace, as LeakSanitizer does.  A helper task is cloned (CLONE_VM |
 *    CLONE_FS | CLONE_FILES | CLONE_UNTRACED, no exit signal) on a stack
 *    mapped for it, with every signal blocked.  It attaches to each thread
 *    listed in /proc/self/task with PTRACE_SEIZE, stops it with
 *    PTRACE_INTERRUPT, reads its registers with PTRACE_GETREGSET, tells the
 *    scanning thread, waits for it and exits: its end lets every thread
 *    go at once (one stopped on a signal is detached with it).  The
 *    scanning thread reaps it with __WCLONE, so the program's wait() and
 *    waitpid(-1) never see it and no zombie is left.  A ptrace stop runs
 *    nothing in the thread, so a system call it interrupts is restarted by
 *    the kernel with what remains of its timeout: poll, select, nanosleep,
 *    sem_timedwait, futex waits, pipe and socket reads take their full time
 *    and return what they would have.  (Not epoll_wait, sigtimedwait, semop and
 *    socket calls with SO_RCVTIMEO / SO_SNDTIMEO: the kernel ends them with
 *    EINTR after any stop, ^Z and fg or LeakSanitizer's alike, signal(7).)
 *    A thread is stopped whatever signals it blocks.  A signal arriving
 *    meanwhile stops its thread instead (signal-delivery-stop), which counts
 *    as stopped, and is delivered at detach.
 *    The helper never allocates (every allocator lock is held) and never
 *    touches errno or thread-local memory (it runs on the thread pointer of
 *    the thread that made it): its system calls are raw (prim_linux.c).
 *    If it dies, the kernel detaches every thread it stopped; if the
 *    scanning thread dies, PR_SET_PDEATHSIG kills it.  Under Yama's
 *    ptrace_scope 1 the process names it its tracer (PR_SET_PTRACER).
 *
 * 2. A signal, when ptrace is not possible: a debugger traces the process
 *    (TracerPid in /proc/self/status: only one tracer per thread), or
 *    ptrace is refused (seccomp, Yama, a process that is not dumpable, no
 *    task can be made).  Each thread is sent SIGRTMAX-2 -- SIGPROF under a
 *    debugger: gdb stops on realtime signals, lldb on SIGURG, both pass
 *    SIGPROF on silently -- marked as ours (SI_QUEUE, a value of ours); its
 *    handler notes the interrupted context's stack pointer and registers and
 *    waits on a futex until the scan is done.  Signals that are not ours go
 *    to the handler the program had.  SIGPROF does not queue: a SIGPROF the
 *    program sends to a thread while ours is pending there is lost (a
 *    profiling tick less); ours sent while the program's is pending merges
 *    into it, which then parks the thread as well.  A handler runs, so the
 *    kernel does not restart poll, nanosleep, select...: they fail with
 *    EINTR.
 *
 * Either way a thread that cannot be stopped within two seconds is left
 * running and counted (the scan then reads its whole stack); the caller
 * holds every allocator lock meanwhile, and nothing here allocates. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>
#include "shim.h"

#define PARK_SIGNAL      (SIGRTMAX - 2)
#define DEBUGGER_SIGNAL  SIGPROF    /* what gdb and lldb both pass silently */
#define PARK_TIMEOUT_NS  (2000ull * 1000 * 1000)   /* for the threads listed in one pass */
#define TRACE_LIMIT_NS   (10000ull * 1000 * 1000)  /* for the whole stop, by the tracer */
#define TRACER_STACK     (64u * 1024)
#define RED_ZONE         128     /* below the stack pointer, live in leaf code (x86-64, aarch64) */

#if defined(__x86_64__)
#include <cpuid.h>

/* Where an XSAVE area in its standard form (a signal frame's, ptrace's
 * NT_X86_XSTATE) keeps the vector state beyond %xmm0-15: the upper halves
 * of %ymm0-15 (its part 2, AVX), the upper halves of %zmm0-15 (6) and
 * %zmm16-31 whole (7, AVX-512), as CPUID's leaf 0xD says; size 0 where the
 * processor has none.  Found by the scanning thread before any thread is
 * stopped. */
static struct { uint32_t off, size; } xparts[3];
static const uint8_t xpart_bit[3] = { 2, 6, 7 };
static bool xparts_known;

static void xparts_find(void)
{
    if (xparts_known) return;
    for (unsigned i = 0; i < 3; i++) {
        unsigned a, b, c, d;
        if (__get_cpuid_count(0xd, xpart_bit[i], &a, &b, &c, &d) && a && b >= 512 + 64)
            xparts[i].off = b, xparts[i].size = a;
    }
    xparts_known = true;
}

/* The words of the XSAVE area xs (len bytes) past %xmm0-15 that may be
 * addresses, into regs[MS_SCAN_XREGS ..]: a compiler moves pointers through
 * %ymm and %zmm as through %xmm (a struct copied 32 or 64 bytes at a time;
 * memcheck scans none of them, LeakSanitizer the whole area ptrace gives).
 * Parts the area's header marks as unused (all zeros) are not read; words
 * that cannot be a user address (small numbers, most floating-point
 * values) take no slot; past the 64 slots the rest are not kept (the 224
 * words of AVX-512 would make the two tables of MS_PARK_MAX threads 10 MiB
 * of address space more). */
static void xstate_words(const uint8_t *xs, size_t len, uintptr_t *regs)
{
    uint64_t used;
    if (len < 512 + 64) return;
    memcpy(&used, xs + 512, sizeof used);           /* the header's XSTATE_BV */
    unsigned k = MS_SCAN_XREGS;
    for (unsigned i = 0; i < 3; i++) {
        if (!xparts[i].size || !(used >> xpart_bit[i] & 1) || xparts[i].off + (size_t)xparts[i].size > len)
            continue;
        for (uint32_t o = 0; o + sizeof(uintptr_t) <= xparts[i].size && k < MS_SCAN_REGS; o += sizeof(uintptr_t)) {
            uintptr_t w;
            memcpy(&w, xs + xparts[i].off + o, sizeof w);
            if (w >= 4096 && !(w >> MS_ADDR_BITS)) regs[k++] = w;
        }
    }
}

/* A stopped thread's vector registers, from its FXSAVE image fx (512 bytes
 * at least: ptrace's NT_PRFPREG, a signal frame's fpregs) or XSAVE area
 * (`xsave`: len bytes, which begin with that image): %xmm0-15 into
 * regs[MS_SCAN_VREGS ..], compilers moving pointers through them (a struct
 * copied, an array of pointers moved), as LeakSanitizer knows; and the
 * wider parts (xstate_words). */
static void vector_words(const uint8_t *fx, size_t len, bool xsave, uintptr_t *regs)
{
    memcpy(&regs[MS_SCAN_VREGS], fx + offsetof(struct user_fpregs_struct, xmm_space), 32 * sizeof(uintptr_t));
    if (xsave) xstate_words(fx, len, regs);
}
#endif

static uintptr_t park_sp[MS_PARK_MAX];
static uintptr_t park_regs[MS_PARK_MAX][MS_SCAN_REGS];
static int       park_tid[MS_PARK_MAX];     /* the stopped threads, for retention paths */
static uintptr_t park_pc[MS_PARK_MAX];      /* where each one was stopped */
static uintptr_t park_tp[MS_PARK_MAX];      /* its thread pointer (0 if unknown): its TLS */
static unsigned  park_n, park_missed;
static enum { PARK_NONE, PARK_TRACED, PARK_SIGNALLED } park_how;
static int       task_fd = -1;              /* /proc/self/task while parking */
static int       park_tids[MS_PARK_MAX];    /* a listing */

/* The threads of the process, without `skip` and memshim's own threads;
 * at most max.  Raw calls only: the tracer uses it too. */
static unsigned list_threads(int fd, int skip, int *tids, unsigned max)
{
    char buf[4096];
    unsigned n = 0;
    long got;
    bool first = true;
    while ((got = _ms_raw_dents(fd, buf, sizeof buf, first)) > 0) {
        first = false;
        for (long off = 0; off < got;) {
            struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; }
                *d = (void *)(buf + off);
            if (d->name[0] >= '0' && d->name[0] <= '9' && n < max) {
                int t = 0;
                for (const char *p = d->name; *p; p++) t = t * 10 + (*p - '0');
                if (t != skip && !_ms_internal_thread(t)) tids[n++] = t;
            }
            off += d->reclen;
        }
    }
    return n;
}

/* ---- 1. ptrace ------------------------------------------------------------------ */

enum { T_WAIT, T_GO, T_STOPPED, T_FAILED, T_RESUME };
enum { S_RUNNING, S_STOPPED, S_GONE };
static struct {
    int      state;                  /* T_*: futex word between the tracer and the scanning thread */
    int      pid, self;              /* the process; the scanning thread, never stopped */
    int      hurry;                  /* may lower its nice value (no seccomp filter) */
    int      error;                  /* why the threads could not be stopped */
    unsigned n;                      /* threads attached */
    int      tid[MS_PARK_MAX];
    int      sig[MS_PARK_MAX];       /* the signal a thread stopped on, delivered at detach */
    uint8_t  stop[MS_PARK_MAX];      /* S_* */
} tr;
static int   tracer_pid;
static void *tracer_stack;
static int   ptrace_off;             /* refused once for good: signals from now on */

static void tr_set(int state)
{
    __atomic_store_n(&tr.state, state, __ATOMIC_RELEASE);
    _ms_raw_futex_wake(&tr.state);
}

/* A thread still listed that has ended (the main thread after
 * pthread_exit stays a zombie until the others end): not to be stopped.
 * Raw calls only: the tracer uses it too. */
static bool thread_ended(int tid)
{
    char name[32], buf[512];
    unsigned k = 0;
    char digits[12];
    do digits[k++] = (char)('0' + tid % 10); while ((tid /= 10) && k < sizeof digits);
    unsigned j = 0;
    while (k) name[j++] = digits[--k];
    memcpy(name + j, "/stat", 6);
    long n = _ms_fd_raw_read_at(task_fd, name, buf, sizeof buf);
    if (n == -ENOENT || n == -ESRCH) return true;               /* gone */
    if (n <= 0) return false;                                    /* cannot tell: live */
    const char *p = NULL;
    for (const char *q = buf; *q; q++) if (*q == ')') p = q;      /* the name may hold ')' */
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

#if defined(__x86_64__)
static uint8_t tr_xstate[16384] __attribute__((aligned(64)));   /* the tracer's: one thread's XSAVE
                                                                 * (or FXSAVE) area */
#endif

/* The stopped thread i's registers and stack pointer; false if it is gone. */
static bool tr_registers(unsigned i)
{
    struct user_regs_struct r;
    struct iovec io = { &r, sizeof r };
    if (_ms_raw_ptrace(PTRACE_GETREGSET, tr.tid[i], NT_PRSTATUS, (uintptr_t)&io) < 0) return false;
    if (park_n >= MS_PARK_MAX) return true;
    const uintptr_t *w = (const uintptr_t *)&r;
    size_t nw = io.iov_len / sizeof(uintptr_t);
    for (unsigned j = 0; j < MS_SCAN_REGS; j++) park_regs[park_n][j] = j < nw && j < MS_SCAN_VREGS ? w[j] : 0;
    park_tid[park_n] = tr.tid[i];
#if defined(__x86_64__)
    /* and the vector registers, in one request: the XSAVE area starts with
     * the FXSAVE image that NT_PRFPREG gives alone (asked for where there
     * is no XSAVE area) */
    struct iovec fio = { tr_xstate, sizeof tr_xstate };
    bool whole = xparts[0].size && _ms_raw_ptrace(PTRACE_GETREGSET, tr.tid[i], NT_X86_XSTATE, (uintptr_t)&fio) >= 0;
    if ((whole || _ms_raw_ptrace(PTRACE_GETREGSET, tr.tid[i], NT_PRFPREG, (uintptr_t)&fio) >= 0) &&
        fio.iov_len >= sizeof(struct user_fpregs_struct))
        vector_words(tr_xstate, fio.iov_len, whole, park_regs[park_n]);
    park_sp[park_n] = (uintptr_t)r.rsp - RED_ZONE;
    park_pc[park_n] = (uintptr_t)r.rip;
    park_tp[park_n] = (uintptr_t)r.fs_base;
#elif defined(__aarch64__)
    park_sp[park_n] = (uintptr_t)r.sp - RED_ZONE;
    park_pc[park_n] = (uintptr_t)r.pc;
    park_tp[park_n] = 0;                     /* TPIDR_EL0 is in another regset */
#endif
    park_n++;
    return true;
}

/* Take the stops the attached threads report, until each has stopped or
 * ended, or the deadline passes; returns how many still run. */
static unsigned tr_collect(uint64_t deadline)
{
    unsigned pause = 20;
    for (;;) {
        unsigned running = 0;
        for (unsigned i = 0; i < tr.n; i++) running += tr.stop[i] == S_RUNNING;
        if (!running) return 0;
        int st;
        long p = _ms_raw_wait(-1, &st, __WALL | WNOHANG);
        if (p == -EINTR) continue;
        if (p <= 0) {
            if (p < 0 || _ms_raw_now_ns() >= deadline) return running;
            _ms_raw_nap_ns((uint64_t)pause * 1000);   /* pause: us */
            if (pause < 1000) pause *= 2;
            continue;
        }
        pause = 20;
        unsigned i = 0;
        while (i < tr.n && (tr.tid[i] != (int)p || tr.stop[i] != S_RUNNING)) i++;
        if (i == tr.n) continue;
        if (WIFEXITED(st) || WIFSIGNALED(st)) { tr.stop[i] = S_GONE; continue; }
        if (!WIFSTOPPED(st)) continue;
        if (st >> 16 != PTRACE_EVENT_STOP) tr.sig[i] = WSTOPSIG(st);   /* signal-delivery-stop */
        tr.stop[i] = tr_registers(i) ? S_STOPPED : S_GONE;
    }
}

/* Attach to every thread and stop it, listing again until no new thread
 * appears (threads not yet stopped may start others).  0, or the error
 * that forbids ptrace. */
static int tr_stop_all(void)
{
    uint64_t limit = _ms_raw_now_ns() + TRACE_LIMIT_NS;
    for (unsigned pass = 0; pass < 30; pass++) {
        unsigned n = list_threads(task_fd, tr.self, park_tids, MS_PARK_MAX), fresh = 0;
        for (unsigned j = 0; j < n; j++) {
            int t = park_tids[j];
            bool known = false;              /* an id that ended may be a new thread's now */
            for (unsigned i = 0; i < tr.n && !known; i++) known = tr.tid[i] == t && tr.stop[i] != S_GONE;
            if (known || tr.n == MS_PARK_MAX) continue;
            long r = _ms_raw_ptrace(PTRACE_SEIZE, t, 0, 0);
            if (r == -ESRCH || (r == -EPERM && thread_ended(t))) continue;
            if (r < 0) return (int)r;
            tr.tid[tr.n] = t;
            tr.sig[tr.n] = 0;
            tr.stop[tr.n] = S_RUNNING;
            tr.n++;
            fresh++;
            _ms_raw_ptrace(PTRACE_INTERRUPT, t, 0, 0);
        }
        if (pass && !fresh) break;
        uint64_t deadline = _ms_raw_now_ns() + PARK_TIMEOUT_NS;
        if (tr_collect(deadline < limit ? deadline : limit) && _ms_raw_now_ns() >= limit) break;
    }
    return 0;
}

/* Let every stopped thread go.  A thread stopped on a signal is detached
 * with it: the kernel drops the signal when the tracer just ends.  The
 * others go at once when the tracer ends (a signal sent to one meanwhile
 * is delivered then): a PTRACE_DETACH each would take as long as the stop
 * when the program's threads keep the processors busy. */
static void tr_release(void)
{
    tr_collect(0);                               /* stops that came late */
    for (unsigned i = 0; i < tr.n; i++)
        if (tr.stop[i] == S_STOPPED && tr.sig[i])
            _ms_raw_ptrace(PTRACE_DETACH, tr.tid[i], 0, (uintptr_t)tr.sig[i]);
}

static int tracer_main(void *arg)
{
    (void)arg;
    if (_ms_raw_bind_to_parent() != tr.pid) _ms_raw_exit(1);
    /* Threads that keep every processor busy would give it a share of one:
     * seconds to stop a thousand of them.  It goes first where allowed. */
    if (tr.hurry) _ms_raw_hurry();
    while (__atomic_load_n(&tr.state, __ATOMIC_ACQUIRE) == T_WAIT) _ms_raw_futex_wait(&tr.state, T_WAIT, 0);
    int err = tr_stop_all();
    if (err) {
        tr.error = err;
        tr_set(T_FAILED);
        _ms_raw_exit(0);                         /* which detaches every thread */
    }
    park_missed = 0;
    for (unsigned i = 0; i < tr.n; i++) park_missed += tr.stop[i] == S_RUNNING;
    tr_set(T_STOPPED);
    while (__atomic_load_n(&tr.state, __ATOMIC_ACQUIRE) == T_STOPPED)
        _ms_raw_futex_wait(&tr.state, T_STOPPED, 0);
    tr_release();
    _ms_raw_exit(0);
}

static int yama_scope(void)
{
    static int scope = -2;
    if (scope == -2) {
        char b[16];
        scope = _ms_os_read_file("/proc/sys/kernel/yama/ptrace_scope", b, sizeof b) > 0 ? b[0] - '0' : 0;
    }
    return scope;
}

/* Stop every other thread with ptrace.  False if that is not possible;
 * nothing is then left stopped or traced. */
static bool trace_world(void)
{
    if (ptrace_off || !_ms_raw_available() || yama_scope() >= 3) return false;
    if (!tracer_stack && !(tracer_stack = _ms_os_map(TRACER_STACK))) return false;
    tr.pid = getpid();
    tr.self = _ms_os_gettid();
    tr.error = 0;
    tr.hurry = !_ms_filtered();
    tr.n = 0;
    tr.state = T_WAIT;
    park_n = park_missed = 0;
    int pid = _ms_os_task_start(tracer_main, (char *)tracer_stack + TRACER_STACK, NULL);
    if (pid < 0) {
        if (pid == -EPERM || pid == -ENOSYS) ptrace_off = 1;    /* seccomp forbids clone */
        return false;
    }
    if (yama_scope() == 1) _ms_os_allow_tracer(pid);
    tr_set(T_GO);
    uint64_t deadline = _ms_os_now_ns() + TRACE_LIMIT_NS + 5000000000ull;
    bool ended = false;
    while (__atomic_load_n(&tr.state, __ATOMIC_ACQUIRE) == T_GO) {
        _ms_os_futex_wait_ns(&tr.state, T_GO, 10000000);
        if (__atomic_load_n(&tr.state, __ATOMIC_ACQUIRE) != T_GO) break;
        if (_ms_os_task_reap(pid, false)) {          /* killed: seccomp */
            ended = true;
            ptrace_off = 1;
            break;
        }
        if (_ms_os_now_ns() > deadline) {            /* stuck: its end detaches every thread */
            _ms_os_task_kill(pid);
            _ms_os_task_reap(pid, true);
            ended = true;
            break;
        }
    }
    if (!ended && __atomic_load_n(&tr.state, __ATOMIC_ACQUIRE) == T_STOPPED) {
        tracer_pid = pid;
        return true;
    }
    if (!ended) _ms_os_task_reap(pid, true);
    if (tr.error == -EPERM || tr.error == -EACCES || tr.error == -ENOSYS) ptrace_off = 1;
    park_n = park_missed = 0;
    return false;
}

static void untrace_world(void)
{
    tr_set(T_RESUME);
    _ms_os_task_reap(tracer_pid, true);
    tracer_pid = 0;
}

/* ---- 2. signals ----------------------------------------------------------------- */

static char      park_magic;                 /* its address marks our signals (si_value) */
static int       sig_active;                 /* the scan's number while threads wait, else 0 */
static int       sig_scan;
static unsigned  sig_n;                      /* threads signalled */
static int       sig_tid[MS_PARK_MAX];
/* 0 while the thread is awaited; SIG_PARKED once it noted where it is;
 * SIG_ENDED if it ended first.  A thread on its way out has every signal
 * blocked (the C library's last steps of a thread, or a thread of the
 * program that blocks them all): the signal is dropped with it. */
enum { SIG_PARKED = 1, SIG_ENDED = 2 };
static int       sig_done[MS_PARK_MAX];
static uintptr_t sig_sp[MS_PARK_MAX];
static uintptr_t sig_regs[MS_PARK_MAX][MS_SCAN_REGS];
static uintptr_t sig_pc[MS_PARK_MAX], sig_tp[MS_PARK_MAX];
static struct sigaction prev_action[2];      /* the program's: PARK_SIGNAL, DEBUGGER_SIGNAL */

/* The interrupted context's stack pointer (less the red zone, live in leaf
 * code) and general registers.  The handler's frame and the signal frame
 * below are not scanned: the registers are taken from the context. */
static uintptr_t interrupted(const void *ucv, uintptr_t *regs, uintptr_t *pc, uintptr_t fallback)
{
    const ucontext_t *uc = ucv;
#if defined(__x86_64__)
    for (unsigned i = 0; i < MS_SCAN_REGS; i++) regs[i] = i < NGREG ? (uintptr_t)uc->uc_mcontext.gregs[i] : 0;
    const uint8_t *fp = (const uint8_t *)uc->uc_mcontext.fpregs;
    if (fp) {                                    /* as in tr_registers */
        /* The kernel's words in the FXSAVE area's spare bytes (struct
         * _fpx_sw_bytes, asm/sigcontext.h): whether an XSAVE area follows
         * (FP_XSTATE_MAGIC1), and its size. */
        uint32_t sw[5];
        memcpy(sw, fp + 464, sizeof sw);
        vector_words(fp, sw[4], sw[0] == 0x46505853u, regs);
    }
    *pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP] - RED_ZONE;
#elif defined(__aarch64__)
    for (unsigned i = 0; i < MS_SCAN_REGS && i < 31; i++) regs[i] = (uintptr_t)uc->uc_mcontext.regs[i];
    *pc = (uintptr_t)uc->uc_mcontext.pc;
    return (uintptr_t)uc->uc_mcontext.sp - RED_ZONE;
#else
    (void)uc;
    for (unsigned i = 0; i < MS_SCAN_REGS; i++) regs[i] = 0;
    *pc = 0;
    return fallback;            /* registers are in the signal frame, scanned from here */
#endif
}

/* The same for the thread a signal ends the process on (signals.c), its
 * handler running the end-of-process work: the interrupted code is the
 * program's last, scanned as a stopped thread's. */
uintptr_t _ms_park_context(const void *uc, uintptr_t *regs, uintptr_t *pc, uintptr_t fallback)
{
#if defined(__x86_64__)
    xparts_find();
#endif
    return interrupted(uc, regs, pc, fallback);
}

static void forward(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *p = &prev_action[sig == DEBUGGER_SIGNAL];
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_sigaction) p->sa_sigaction(sig, si, uc);
    } else if (p->sa_handler != SIG_IGN && p->sa_handler != SIG_DFL) {
        p->sa_handler(sig);
    }
}

static void park_handler(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    bool ours = si && si->si_code == SI_QUEUE && si->si_value.sival_ptr == &park_magic;
    if (!ours) forward(sig, si, uc);
    /* A standard signal does not queue: ours may have merged into the
     * program's.  Only a thread we signalled waits: never the scanning one.
     * It waits for the end of this scan only: a thread still here when the
     * next scan begins (it had no processor since it was woken) must leave,
     * or the next scan's signal, blocked meanwhile, would never come in. */
    int scan = __atomic_load_n(&sig_active, __ATOMIC_ACQUIRE);
    if (scan && (ours || sig < SIGRTMIN)) {
        volatile uintptr_t here = (uintptr_t)&here;
        int tid = _ms_os_gettid();
        unsigned n = __atomic_load_n(&sig_n, __ATOMIC_ACQUIRE), i = 0;
        while (i < n && sig_tid[i] != tid) i++;
        if (i < n) {
            if (!__atomic_load_n(&sig_done[i], __ATOMIC_ACQUIRE)) {
                sig_sp[i] = interrupted(uc, sig_regs[i], &sig_pc[i], (uintptr_t)&here - 256);
                sig_tp[i] = _ms_thread_pointer();
                int awaited = 0;
                __atomic_compare_exchange_n(&sig_done[i], &awaited, SIG_PARKED, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
            }
            while (__atomic_load_n(&sig_active, __ATOMIC_ACQUIRE) == scan)
                _ms_os_futex_wait(&sig_active, scan);
        }
    }
    errno = saved;
}

/* Our handler on sig, put back if the program replaced it since. */
static void hook(int sig)
{
    struct sigaction cur, sa;
    if (_ms_sigaction(sig, NULL, &cur) != 0) return;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == park_handler) return;
    prev_action[sig == DEBUGGER_SIGNAL] = cur;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = park_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | (cur.sa_flags & SA_ONSTACK);
    sigfillset(&sa.sa_mask);
    _ms_sigaction(sig, &sa, NULL);          /* kept for good: a late signal must find us */
}

static unsigned signals_done(void)
{
    unsigned k = 0;
    for (unsigned i = 0; i < sig_n; i++) k += __atomic_load_n(&sig_done[i], __ATOMIC_ACQUIRE) != 0;
    return k;
}

/* Threads signalled that ended without answering are not waited for:
 * gone from /proc/self/task, or a zombie, a task runs no handler again.
 * At most NOTE_READS of them are read each time (every 5 ms), in turn:
 * a thousand threads blocking the signal for good cost 32 reads of /proc
 * every 5 ms, not a thousand.  Only the scanning thread calls it. */
#define NOTE_READS 32
static void note_ended(void)
{
    static unsigned from;
    unsigned n = __atomic_load_n(&sig_n, __ATOMIC_ACQUIRE), reads = 0;
    for (unsigned k = 0; k < n && reads < NOTE_READS; k++) {
        unsigned i = (from + k) % n;
        int awaited = 0;
        if (__atomic_load_n(&sig_done[i], __ATOMIC_ACQUIRE)) continue;
        reads++;
        from = i + 1;
        if (thread_ended(sig_tid[i]))
            __atomic_compare_exchange_n(&sig_done[i], &awaited, SIG_ENDED, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
}

static void signal_world(bool debugger)
{
    int sig = debugger ? DEBUGGER_SIGNAL : PARK_SIGNAL;
    hook(sig);
    __atomic_store_n(&sig_n, 0, __ATOMIC_RELEASE);
    if (++sig_scan <= 0) sig_scan = 1;
    __atomic_store_n(&sig_active, sig_scan, __ATOMIC_SEQ_CST);
    int pid = getpid(), self = _ms_os_gettid();
    for (int pass = 0; pass < 3; pass++) {          /* threads may start meanwhile */
        unsigned n = list_threads(task_fd, self, park_tids, MS_PARK_MAX), fresh = 0;
        for (unsigned j = 0; j < n && sig_n < MS_PARK_MAX; j++) {
            bool known = false;
            for (unsigned i = 0; i < sig_n && !known; i++) known = sig_tid[i] == park_tids[j];
            if (known || thread_ended(park_tids[j])) continue;    /* a zombie never handles it */
            sig_tid[sig_n] = park_tids[j];
            sig_done[sig_n] = 0;
            __atomic_store_n(&sig_n, sig_n + 1, __ATOMIC_RELEASE);
            if (_ms_os_signal_thread(pid, park_tids[j], sig, &park_magic) == 0) fresh++;
            else __atomic_store_n(&sig_n, sig_n - 1, __ATOMIC_RELEASE);    /* it has ended */
        }
        if (pass && !fresh) break;
        uint64_t deadline = _ms_os_now_ns() + PARK_TIMEOUT_NS;
        for (unsigned tick = 1; signals_done() < sig_n && _ms_os_now_ns() < deadline; tick++) {
            _ms_raw_nap_ns(200000);
            if (tick % 25 == 0) note_ended();              /* every 5 ms */
        }
    }
    park_n = 0;
    unsigned ended = 0;
    for (unsigned i = 0; i < sig_n; i++) {
        int done = __atomic_load_n(&sig_done[i], __ATOMIC_ACQUIRE);
        ended += done == SIG_ENDED;
        if (done != SIG_PARKED) continue;
        park_sp[park_n] = sig_sp[i];
        park_tid[park_n] = sig_tid[i];
        park_pc[park_n] = sig_pc[i];
        park_tp[park_n] = sig_tp[i];
        memcpy(park_regs[park_n], sig_regs[i], sizeof park_regs[0]);
        park_n++;
    }
    park_missed = sig_n - park_n - ended;
}

static void unsignal_world(void)
{
    __atomic_store_n(&sig_active, 0, __ATOMIC_RELEASE);
    _ms_os_futex_wake(&sig_active, 1 << 30);
}

/* ---- choosing ------------------------------------------------------------------- */

/* The number after `key` in /proc/self/status (st), or 0. */
static int status_field(const char *st, const char *key)
{
    const char *p = strstr(st, key);
    if (!p) return 0;
    for (p += strlen(key); *p == ' ' || *p == '\t'; p++) {}
    int v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    return v;
}

static void say_debugger(int pid)
{
    static int said;
    if (said++) return;
    char path[64], comm[64];
    unsigned k = 0;
    char digits[12];
    int v = pid;
    do digits[k++] = (char)('0' + v % 10); while ((v /= 10) && k < sizeof digits);
    memcpy(path, "/proc/", 6);
    unsigned j = 6;
    while (k) path[j++] = digits[--k];
    memcpy(path + j, "/comm", 6);
    if (_ms_os_read_file(path, comm, sizeof comm) <= 0) memcpy(comm, "a debugger", 11);
    char shown[4 * sizeof comm];
    for (char *c = comm; *c; c++) if (*c == '\n') *c = 0;     /* the file's own newline */
    _ms_message("%s (pid %d) traces this process: the leak scan stops threads with SIGPROF instead "
                "of ptrace, and their poll(), sleep()... may end early with EINTR (memshim(7))",
                _ms_name_shown(comm, shown, sizeof shown), pid);
}

void _ms_park_world(ms_parked_t *out)
{
    int saved = errno;
    park_n = park_missed = 0;
    park_how = PARK_NONE;
#if defined(__x86_64__)
    xparts_find();
#endif
    memset(out, 0, sizeof *out);
    /* The thread count, not a listing: the tracer lists them, and while
     * the program's threads keep the processors busy this thread gets
     * little time before they are stopped. */
    char st[4096];
    task_fd = _ms_os_self_open("task", O_RDONLY | O_DIRECTORY);
    if (_ms_os_read_proc("status", st, sizeof st, true) <= 0) st[0] = 0;
    int threads = status_field(st, "Threads:");
    if (!threads && task_fd >= 0)       /* not read: listed after all */
        threads = 1 + (int)list_threads(task_fd, _ms_os_gettid(), park_tids, MS_PARK_MAX);
    if (task_fd >= 0 && threads > 1) {
        int debugger = status_field(st, "TracerPid:");   /* a debugger, strace */
        if (!debugger && trace_world()) {
            park_how = PARK_TRACED;
        } else {
            if (debugger) say_debugger(debugger);
            signal_world(debugger != 0);
            park_how = PARK_SIGNALLED;
        }
    }
    /* Listed and stopped: the directory's descriptor goes back before the
     * scan opens its two (a program at its descriptor limit may have only
     * those left). */
    if (task_fd >= 0) _ms_fd_close(task_fd);
    task_fd = -1;
    if (tracer_stack) {                 /* kept for the next scan, never a root */
        out->own.start = (uintptr_t)tracer_stack;
        out->own.end = (uintptr_t)tracer_stack + TRACER_STACK;
    }
    out->n = park_n;
    out->missed = park_missed;
    out->sp = park_sp;
    out->regs = (const uintptr_t (*)[MS_SCAN_REGS])park_regs;
    out->tid = park_tid;
    out->pc = park_pc;
    out->tp = park_tp;
    errno = saved;
}

void _ms_unpark_world(void)
{
    int saved = errno;
    if (park_how == PARK_TRACED) untrace_world();
    else if (park_how == PARK_SIGNALLED) unsignal_world();
    park_how = PARK_NONE;
    errno = saved;
}
