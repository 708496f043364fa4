/* init.c - start-up, fork and exit.
 *
 * memshim initialises itself on the first allocation, which may come from the
 * dynamic loader long before our constructor runs; nothing here calls a
 * function that allocates.  The environment is read in the constructor, when
 * `environ` is certainly set.  pthread_atfork is registered at that first
 * allocation, before any other library can register, so our `prepare` runs
 * last and our `parent`/`child` first: handlers of other libraries that
 * allocate never find our locks held. */
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include <errno.h>
#include <limits.h>
#include "shim.h"

int _ms_inited;
static int home_pid;              /* the process memshim's exit work is for (exit, below) */
static int start_pid;             /* the process memshim started in, never a fork child (_exit) */
static int initializing;

MS_HIDDEN void _ms_alloc_init(uintptr_t key);

/* Every allocator lock, in the nesting order (types.h): fork and the leak
 * scan hold them all so that the heap is consistent while they look. */
void _ms_lock_all(void)
{
    _ms_central_lock_all();
    _ms_segment_lock();
    _ms_huge_lock();
    _ms_tcache_lock();
    _ms_meta_lock();
}

void _ms_unlock_all(bool child)
{
    _ms_meta_unlock(child);
    _ms_tcache_unlock(child);
    _ms_huge_unlock(child);
    _ms_segment_unlock(child);
    _ms_central_unlock_all(child);
}

/* The symbolizer's lock is outermost: a report holds it while libdw
 * allocates (allocator locks) and frees (the trace table's lock, for the
 * free's stack).  The trace table's lock nests outside the allocator's (it
 * allocates from meta).  Taking them all here means no thread is inside
 * libdw, the trace table or the heap when the process forks. */
/*
 * The C library's list of streams (_IO_list_lock, recursive) is taken
 * after the symbolizer's (libdw opens /proc/PID/maps with fopen while it
 * is held) and before every other: glibc's fork takes it after the
 * prepare handlers, and a program's thread holds a stream's lock while it
 * allocates (getline) while another holds the list and waits for that
 * stream (fflush(NULL)); with memshim's locks taken first, a fork among
 * them waited for ever (glibc's tst-malloc-fork-deadlock, found by a
 * helper: 12 runs in 12).  glibc's own malloc locks come after the list
 * for that reason.  The child's list lock is reset by glibc.
 *
 * A fork from a signal handler whose thread was inside memshim holding
 * one of its locks (a refill; the trace table's, the sampler's, the
 * loader guard, the spare stack caches': each says so) would wait for its
 * own thread: no lock of memshim's is taken then (`skipped`), and the
 * child's thread goes on holding what it held (glibc takes no malloc lock
 * when a single-threaded process forks; tst-mallocfork2 hung 12 runs in
 * 12).
 */
/* One bit per fork under way on the thread, the innermost lowest: its
 * prepare took no lock.  A handler's fork can come inside the thread's
 * own (between its prepare and its parent's handler: the signal that a
 * child just made sends at once); with one flag, the handler's fork set
 * it, and the thread's own fork then left every lock it had taken held:
 * its next allocation waited for itself (stacks taken by a helper's
 * watch, 2 runs in 20). */
static __thread unsigned skipped_bits __attribute__((tls_model("initial-exec")));
static bool skipped_pop(void)
{
    bool skipped = skipped_bits & 1;
    skipped_bits >>= 1;
    return skipped;
}
extern void _IO_list_lock(void) __attribute__((weak));      /* glibc's; none elsewhere */
extern void _IO_list_unlock(void) __attribute__((weak));
static void streams_lock(void) { if (_IO_list_lock && _IO_list_unlock) _IO_list_lock(); }
static void streams_unlock(void) { if (_IO_list_lock && _IO_list_unlock) _IO_list_unlock(); }
/* Whether a signal handler now running came in while its thread was
 * inside memshim holding one of its locks (each owner says so). */
bool _ms_inside_memshim(void)
{
    return _ms_held != 0 || _ms_loader_mine() || _ms_stack_mine() || _ms_sample_mine() || _ms_unwind_mine();
}

static void fork_prepare(void)
{
    _ms_leak_before_fork();      /* maps a page: before the locks */
    bool skipped = _ms_inside_memshim();
    skipped_bits = skipped_bits << 1 | skipped;
    if (skipped) {
        streams_lock();
        return;
    }
    _ms_symbolize_lock();
    streams_lock();
    _ms_loader_lock();           /* no memshim call inside dl_iterate_phdr (unwind.c) */
    _ms_stack_lock();
    _ms_sample_lock();
    _ms_lock_all();
    _ms_unwind_lock();
    if (MS_DEBUG) _ms_heap_check_locked();
}
static void fork_parent(void)
{
    bool skipped = skipped_pop();
    if (!skipped) {
        _ms_unwind_unlock(false);
        _ms_unlock_all(false);
        _ms_sample_unlock(false);
        _ms_stack_unlock(false);
        _ms_loader_unlock(false);
    }
    streams_unlock();
    if (!skipped) _ms_symbolize_unlock(false);
}
static void fork_child(void)
{
    __atomic_store_n(&home_pid, (int)getpid(), __ATOMIC_RELEASE);
    __atomic_store_n(&start_pid, 0, __ATOMIC_RELEASE);     /* not the process memshim started in */
    bool skipped = skipped_pop();
    if (!skipped) {
        _ms_held_forget();       /* the locks fork_prepare took are made anew below */
        _ms_unwind_unlock(true);
        _ms_unlock_all(true);
        _ms_sample_unlock(true);
        _ms_stack_unlock(true);
        _ms_loader_unlock(true);
        _ms_symbolize_unlock(true);
    }
    _ms_fds_fork_child();        /* before any of memshim's closes */
    _ms_os_proc_fork_child();    /* before anything reads /proc */
    _ms_out_after_fork_child();
    _ms_track_after_fork_child();
    _ms_sample_fork_child();
    _ms_internal_threads_forget();
    _ms_leak_after_fork_child();
    _ms_prof_fork_child();
    _ms_reporter_fork_child();
    _ms_signals_fork_child();
}

void _ms_init(void)
{
    if (MS_LIKELY(__atomic_load_n(&_ms_inited, __ATOMIC_ACQUIRE))) return;
    if (__atomic_exchange_n(&initializing, 1, __ATOMIC_ACQ_REL)) {
        while (!__atomic_load_n(&_ms_inited, __ATOMIC_ACQUIRE)) sched_yield();
        return;
    }
    _ms_classes_init();
    _ms_segment_init();
    _ms_tcache_init();
    uintptr_t key = 0x9e3779b97f4a7c15u;
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    if (rnd) memcpy(&key, rnd + 8, sizeof key);
    _ms_alloc_init(key);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&_ms_inited, 1, __ATOMIC_RELEASE);
}

/* ---- seccomp ---------------------------------------------------------------- *
 * A filter the program installs (prctl or syscall: override.c) is run, as
 * the kernel would run it, on each system call memshim makes (x86-64, no
 * arguments): one it would kill (or trap, a SIGSYS that kills unless
 * handled) confines memshim; one it refuses with an error memshim already
 * copes with (ptrace refused: threads are stopped with signals; a file not
 * opened: said in one line).  ptrace is made by the scan's helper task
 * alone, whose death the scan survives: only a filter killing the whole
 * process for it confines.  A filter in place at start-up (a container
 * runtime's, systemd's SystemCallFilter=) cannot be read back: memshim
 * goes on as without one (containers' filters allow what it does), and a
 * strict one may still kill the process at the exit scan. */
int _ms_confined;

static void confine(void) { __atomic_store_n(&_ms_confined, 1, __ATOMIC_RELEASE); }

#if defined(__x86_64__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

/* The filter's action for system call nr with no arguments, or
 * SECCOMP_RET_KILL_PROCESS when it does what this little interpreter does
 * not know (classic BPF as seccomp filters use it). */
static uint32_t filter_action(const struct sock_fprog *p, int nr)
{
    struct seccomp_data d = { .nr = nr, .arch = AUDIT_ARCH_X86_64 };
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
    for (unsigned pc = 0, steps = 0; pc < p->len && steps < 4096; pc++, steps++) {
        const struct sock_filter *f = &p->filter[pc];
        uint32_t k = f->k, src = BPF_SRC(f->code) == BPF_X ? x : k;
        switch (BPF_CLASS(f->code)) {
        case BPF_LD:
            if (BPF_MODE(f->code) == BPF_ABS && BPF_SIZE(f->code) == BPF_W && k + 4 <= sizeof d && k % 4 == 0)
                memcpy(&a, (const char *)&d + k, 4);
            else if (BPF_MODE(f->code) == BPF_IMM) a = k;
            else if (BPF_MODE(f->code) == BPF_MEM && k < BPF_MEMWORDS) a = mem[k];
            else if (BPF_MODE(f->code) == BPF_LEN) a = sizeof d;
            else return SECCOMP_RET_KILL_PROCESS;
            break;
        case BPF_LDX:
            if (BPF_MODE(f->code) == BPF_IMM) x = k;
            else if (BPF_MODE(f->code) == BPF_MEM && k < BPF_MEMWORDS) x = mem[k];
            else if (BPF_MODE(f->code) == BPF_LEN) x = sizeof d;
            else return SECCOMP_RET_KILL_PROCESS;
            break;
        case BPF_ST:  if (k >= BPF_MEMWORDS) return SECCOMP_RET_KILL_PROCESS; mem[k] = a; break;
        case BPF_STX: if (k >= BPF_MEMWORDS) return SECCOMP_RET_KILL_PROCESS; mem[k] = x; break;
        case BPF_ALU:
            switch (BPF_OP(f->code)) {
            case BPF_ADD: a += src; break;
            case BPF_SUB: a -= src; break;
            case BPF_MUL: a *= src; break;
            case BPF_DIV: if (!src) return SECCOMP_RET_KILL_PROCESS; a /= src; break;
            case BPF_MOD: if (!src) return SECCOMP_RET_KILL_PROCESS; a %= src; break;
            case BPF_AND: a &= src; break;
            case BPF_OR:  a |= src; break;
            case BPF_XOR: a ^= src; break;
            case BPF_LSH: a = src < 32 ? a << src : 0; break;
            case BPF_RSH: a = src < 32 ? a >> src : 0; break;
            case BPF_NEG: a = -a; break;
            default: return SECCOMP_RET_KILL_PROCESS;
            }
            break;
        case BPF_JMP: {
            bool t;
            switch (BPF_OP(f->code)) {
            case BPF_JA:   pc += k; continue;
            case BPF_JEQ:  t = a == src; break;
            case BPF_JGT:  t = a > src; break;
            case BPF_JGE:  t = a >= src; break;
            case BPF_JSET: t = (a & src) != 0; break;
            default: return SECCOMP_RET_KILL_PROCESS;
            }
            pc += t ? f->jt : f->jf;
            break;
        }
        case BPF_RET:
            return BPF_RVAL(f->code) == BPF_A ? a : k;
        case BPF_MISC:
            if (BPF_MISCOP(f->code) == BPF_TAX) x = a; else a = x;
            break;
        default:
            return SECCOMP_RET_KILL_PROCESS;
        }
    }
    return SECCOMP_RET_KILL_PROCESS;                 /* ran off the end: the kernel refuses such */
}

/* Whether filter p leaves memshim its system calls (see above). */
static bool filter_spares_us(const struct sock_fprog *p)
{
    static const int ours[] = {
        SYS_mincore, SYS_openat, SYS_open, SYS_read, SYS_pread64, SYS_close, SYS_newfstatat, SYS_fstat,
        SYS_getdents64, SYS_clone, SYS_wait4, SYS_tgkill, SYS_rt_tgsigqueueinfo, SYS_rt_sigaction,
        SYS_rt_sigprocmask, SYS_gettid, SYS_getpid, SYS_prctl, SYS_sched_yield, SYS_rename, SYS_unlink,
        SYS_write, SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_futex,
        SYS_prlimit64, SYS_fcntl, SYS_lseek,      /* out.c: no write past RLIMIT_FSIZE */
    };
    if (!p || !p->filter || !p->len) return false;
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) {
        uint32_t act = filter_action(p, ours[i]) & SECCOMP_RET_ACTION_FULL;
        if (act != SECCOMP_RET_ALLOW && act != SECCOMP_RET_ERRNO && act != SECCOMP_RET_LOG &&
            act != SECCOMP_RET_TRACE)
            return false;
    }
    uint32_t act = filter_action(p, SYS_ptrace) & SECCOMP_RET_ACTION_FULL;
    return act != SECCOMP_RET_KILL_PROCESS && act != SECCOMP_RET_TRAP;
}
#else
static bool filter_spares_us(const void *p) { (void)p; return false; }
#endif

static int filtered;               /* a seccomp filter was installed: no kcmp (guest) */

void _ms_confine_note(const void *prog)
{
    __atomic_store_n(&filtered, 1, __ATOMIC_RELEASE);
    if (!filter_spares_us(prog)) confine();
}

bool _ms_filtered(void) { return __atomic_load_n(&filtered, __ATOMIC_ACQUIRE); }

bool _ms_confined_say(const char *what)
{
    static int said;
    if (!__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) return false;
    if (!__atomic_exchange_n(&said, 1, __ATOMIC_ACQ_REL))
        _ms_message("the process runs under a seccomp filter that may kill it at a system call memshim "
                    "makes: no %s (memshim makes none but the allocator's; memshim_leak_check() before "
                    "the filter is installed gives a report)", what);
    return true;
}

/* quick_exit(3) runs the handlers of at_quick_exit(3), newest first, then
 * _exit: no destructor.  memshim's end-of-process work is its first such
 * handler, so the last to run, as its destructor runs after the program's
 * exit handlers.  (glibc's first 32 handlers take no memory.) */
static void ms_destructor(void);
static bool exit_work(void);
static void ms_quick_exit(void) { ms_destructor(); }

__attribute__((constructor(101))) static void ms_constructor(void)
{
    __atomic_store_n(&home_pid, (int)getpid(), __ATOMIC_RELEASE);
    __atomic_store_n(&start_pid, (int)getpid(), __ATOMIC_RELEASE);
    _ms_init();
    _ms_fds_resolve();           /* the C library's close, for the program's (fds.c) */
    _ms_out_init();              /* first: which file stderr is, for the options' messages */
    _ms_modules_init();          /* memshim's image, the C runtime's: before the program's threads */
    _ms_options_load();
    _ms_out_settle();            /* a copy of stderr, if output goes there */
    _ms_cxx_init();              /* does the program replace operator new/delete? */
    if (_ms_gc_glue_init) _ms_gc_glue_init();
    _ms_leak_init();             /* libunwind, MEMSHIM_REPORT_SIGNAL: leak.c */
    _ms_sample_init();           /* MEMSHIM_SAMPLE without tracking: sample.c */
    /* The stack of no frames stored now, not at its first use: that may be
     * a signal handler's allocation whose thread holds an allocator lock,
     * while a fork holds the stack table's lock and waits for that one
     * (found by CI: the handler in _ms_stack_none, stacks_lock; the fork
     * in _ms_central_lock_all). */
    if (_ms_track_on || _ms_opt.sample) (void)_ms_stack_none();
    _ms_profile_init();          /* MEMSHIM_PROFILE: profile.c */
    _ms_reporter_start();        /* RSS log, live figures, stats signal: sampler.c */
    at_quick_exit(ms_quick_exit);
    if (exit_work()) _ms_signals_arm_endings();   /* last: memshim's own signals are set by now */
}

/* ---- exit ------------------------------------------------------------------------- *
 * glibc before 2.41 lets two threads run exit() at once: the first to reach
 * the end of the exit handlers ends the process, while the other may still
 * be in memshim's destructor below.  Three threads calling exit() together
 * lost the leak report in 26 runs of 30 (LeakSanitizer's, 20 of 20).  So
 * exit() (override.c; main's return goes through it too) lets its first
 * caller through; a caller from another thread waits while the destructor
 * runs, then goes on as before (glibc 2.41 keeps it waiting for good).
 * Before the destructor starts, the program's own exit handlers run, and
 * one may need a lock the waiting caller holds (exit() on an error path
 * inside a critical section): the caller waits for them EXIT_PATIENCE_NS
 * at most.  A caller that is the exiting thread itself (exit in an exit
 * handler) goes on; one whose exiter is no thread of this process (a fork
 * or vfork child's) takes its place. */
#define EXIT_PATIENCE_NS 1000000000ull
enum { EXIT_HANDLERS, EXIT_DESTRUCTOR, EXIT_DONE };
static int exiter;                /* the thread running exit(), 0: none */
static int exit_stage;            /* futex: EXIT_* */
static int worker;                /* the thread that took up the end-of-process work (ms_destructor),
                                   * once for the process; 0: none yet */
static __thread const ms_caller_t *ending_at __attribute__((tls_model("initial-exec")));
                                  /* where this thread called exit() or _exit() */
bool _ms_exit_unflushed;          /* the process ends by _exit: the program's buffers stay unwritten */
static int ended_by;              /* the signal the process ends on once the work is done (signals.c) */
static __thread int ending_signal __attribute__((tls_model("initial-exec")));   /* ... this thread's */
static __thread const void *ending_uc __attribute__((tls_model("initial-exec"))); /* ... its context */
static __thread bool ending_overflow __attribute__((tls_model("initial-exec"))); /* ... a stack overflow's */

/* Whether this is the process memshim started in: a fork child's
 * start_pid is 0 (fork_child), a vfork child has a pid of its own. */
static bool start_process(void)
{
    return (int)getpid() == __atomic_load_n(&start_pid, __ATOMIC_ACQUIRE);
}

/* Whether memshim has work to do at the end of the process. */
static bool exit_work(void)
{
    return _ms_track_on || _ms_opt.stats || (_ms_profiling() && _ms_opt.profile);
}

/* A child of vfork() that calls exit() (a common mistake) runs the exit
 * handlers and the libraries' destructors in its parent's memory, and the
 * loader marks them run: the parent's own exit then runs none, and its
 * report was never written (the child wrote one, of the parent's heap).
 * The process memshim started in, or a fork() child (fork_child), is
 * `home`; an exit() from another process that shares its memory does none
 * of memshim's exit work and leaves a note, and the parent's exit() does
 * that work itself before the C library's (its own exit handlers then run
 * after the report).  A child with memory of its own made without fork()
 * (a raw clone) becomes its own home. */
static int foreign_exit;          /* a vfork child called exit() in our memory */
static void ms_destructor(void);

/* Whether this process is a vfork (or CLONE_VM) child of home. */
static bool guest(void)
{
    int pid = (int)getpid(), home = __atomic_load_n(&home_pid, __ATOMIC_ACQUIRE);
    if (pid == home || _ms_filtered()) return false;     /* kcmp may be refused */
    if (_ms_os_same_vm(home)) return true;
    __atomic_store_n(&home_pid, pid, __ATOMIC_RELEASE);
    return false;
}

/* Whether this process shares memshim's memory but not its descriptor
 * table: a vfork child (or a CLONE_VM one), which must leave memshim's
 * registry of descriptors alone (fds.c).  Under a seccomp filter (kcmp may
 * be refused) any other pid is taken for one. */
bool _ms_shares_memory_with_home(void)
{
    int pid = (int)getpid(), home = __atomic_load_n(&home_pid, __ATOMIC_ACQUIRE);
    if (pid == home) return false;
    return _ms_filtered() || guest();
}

/* A thread in here is, to the leak scan, the frame of the program's that
 * called exit(): the frames below it are exit's and memshim's, and the
 * slots they leave unwritten still hold what memshim put there before.
 * The main thread returning from main() while a worker's exit() made the
 * report showed its lost block "still reachable" from such a slot in 40
 * runs of 300. */
#define EXIT_WAITERS 8
static struct { int tid; const ms_caller_t *at; } exit_waiter[EXIT_WAITERS];

const ms_caller_t *_ms_exit_waiter(int tid)
{
    for (unsigned i = 0; i < EXIT_WAITERS; i++)
        if (__atomic_load_n(&exit_waiter[i].tid, __ATOMIC_ACQUIRE) == tid) return exit_waiter[i].at;
    return NULL;
}

static int exit_waiter_in(int me, const ms_caller_t *caller)
{
    for (int i = 0; i < EXIT_WAITERS; i++) {
        int none = 0;
        if (!__atomic_compare_exchange_n(&exit_waiter[i].tid, &none, -1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            continue;                 /* taken; -1: being filled */
        exit_waiter[i].at = caller;
        __atomic_store_n(&exit_waiter[i].tid, me, __ATOMIC_RELEASE);
        return i;
    }
    return -1;                    /* more of them: their frames are scanned whole */
}

static void exit_waiter_out(int slot)
{
    if (slot >= 0) __atomic_store_n(&exit_waiter[slot].tid, 0, __ATOMIC_RELEASE);
}

void _ms_exit_enter(const ms_caller_t *caller)
{
    ending_at = caller;
    if (guest()) {
        __atomic_store_n(&foreign_exit, 1, __ATOMIC_RELEASE);
        return;
    }
    if (__atomic_exchange_n(&foreign_exit, 0, __ATOMIC_ACQ_REL)) ms_destructor();
    int me = _ms_os_gettid();
    int slot = exit_waiter_in(me, caller);
    for (;;) {
        int cur = 0;
        if (__atomic_compare_exchange_n(&exiter, &cur, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
            cur == me) {
            exit_waiter_out(slot);
            /* A second exit() in the thread that runs the first: from a
             * handler of a signal that came in while the C library ran the
             * program's destructors (a SIGTERM timer firing late), or from an
             * exit handler.  The C library then runs the exit handlers left,
             * but not the destructors of the exit it is inside: memshim's
             * would never run, and the report was lost.  Its work is done
             * now, before those handlers (once: `worker` says who took it up). */
            if (cur == me && __atomic_load_n(&exit_stage, __ATOMIC_ACQUIRE) == EXIT_HANDLERS) ms_destructor();
            return;
        }
        if (_ms_os_tgkill((int)getpid(), cur, 0) == 0) break;
        __atomic_compare_exchange_n(&exiter, &cur, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    int saved = errno;
    uint64_t until = _ms_os_now_ns() + EXIT_PATIENCE_NS;
    for (;;) {
        int stage = __atomic_load_n(&exit_stage, __ATOMIC_ACQUIRE);
        if (stage == EXIT_DONE) break;
        if (stage == EXIT_DESTRUCTOR) { _ms_os_futex_wait(&exit_stage, stage); continue; }
        uint64_t now = _ms_os_now_ns();
        if (now >= until) break;
        _ms_os_futex_wait_ns(&exit_stage, stage, until - now);
    }
    exit_waiter_out(slot);
    errno = saved;
}

static void exit_stage_is(int stage)
{
    __atomic_store_n(&exit_stage, stage, __ATOMIC_RELEASE);
    _ms_os_futex_wake(&exit_stage, INT32_MAX);
}

/* Another thread is doing the end-of-process work: the caller waits until
 * it is done, since the caller's way on ends the process (exit's last
 * step, _exit, quick_exit): a thread's _exit during main's exit report,
 * or main's exit while a thread's _exit wrote it, lost the report.  The
 * leak scan takes the waiting thread's stack from where it called exit()
 * or _exit().  me: the caller; by: the thread that took the work up. */
static void await_worker(int me, int by)
{
    int slot = -1;
    for (;;) {
        int stage = __atomic_load_n(&exit_stage, __ATOMIC_ACQUIRE);
        if (stage == EXIT_DONE || by == me) break;
        /* a fork child's copy of a parent's thread at work: none here */
        if (_ms_os_tgkill((int)getpid(), by, 0) != 0) break;
        if (slot < 0 && ending_at) slot = exit_waiter_in(me, ending_at);
        _ms_os_futex_wait(&exit_stage, stage);      /* EXIT_HANDLERS: it has just taken the work up */
    }
    exit_waiter_out(slot);
    /* The work was done for a signal that ends the process (signals.c):
     * its thread sends it again, and the process ends killed by it, as it
     * would have been; going on here would end it with this exit's status
     * first. */
    int sig = __atomic_load_n(&ended_by, __ATOMIC_ACQUIRE);
    if (sig && by != me)
        for (;;) _ms_os_futex_wait(&ended_by, sig);
}

__attribute__((destructor(101))) static void ms_destructor(void)
{
    if (guest()) return;             /* a vfork child's exit, in its parent's memory */
    /* A handler of the program's run inside this work (its SIGTERM's, say)
     * could call exit(), which would end the process from in here: no
     * report.  Held off this thread, such signals come in when the work is
     * done (one sent to the process goes to another thread meanwhile, whose
     * exit() waits: _ms_exit_enter).  Held before `worker` is set: a handler
     * that comes in before still finds this work to do, in its own exit.
     * Only when there is work to protect: asking for every signal's action
     * costs a system call each. */
    bool work = exit_work();
    sigset_t old;
    bool held = work && _ms_os_signals_defer_handled(&old);
    int me = _ms_os_gettid(), by = 0;
    if (!__atomic_compare_exchange_n(&worker, &by, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        /* not a handler's (the work may need its locks), nor a signal's,
         * which ends the process at once (signals.c) */
        if (!_ms_inside_memshim() && !ending_signal) await_worker(me, by);
        if (held) _ms_os_signals_restore(&old);
        return;
    }
    if (ending_signal) __atomic_store_n(&ended_by, ending_signal, __ATOMIC_RELEASE);
    exit_stage_is(EXIT_DESTRUCTOR);
    if (__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) {      /* nothing that may be refused */
        if (work) _ms_confined_say("statistics, profile or leak report at exit");
        exit_stage_is(EXIT_DONE);
        if (held) _ms_os_signals_restore(&old);
        return;
    }
    /* exit() from a signal handler that came in while its thread was
     * inside memshim (a SIGALRM or SIGTERM handler that ends the program,
     * in the parent or in a child it forked): the statistics, the profile
     * and the leak report need the locks the interrupted call holds, and
     * waited for them for ever.  Only a handler the kernel calls directly
     * comes in there: one set through sigaction() is put off (signals.c). */
    if (_ms_inside_memshim()) {
        if (work)
            _ms_message("exit() or _exit() was called from a signal handler that interrupted an "
                        "allocation (a handler set by the rt_sigaction system call itself; memshim puts "
                        "off those set with sigaction or signal until the allocation is done): no "
                        "statistics, profile or leak report at exit (they need the allocator's locks the "
                        "interrupted call holds)");
        exit_stage_is(EXIT_DONE);
        if (held) _ms_os_signals_restore(&old);
        return;
    }
    if (MS_DEBUG) {                  /* the debug tier: the heap as the program leaves it (not
                                      * above: a lock the interrupted call holds, it waited for) */
        _ms_lock_all();
        _ms_heap_check_locked();
        _ms_unlock_all(false);
    }
    /* The program's threads may keep every processor busy until the
     * process ends: the exit's work would get its share of them, seconds
     * with a thousand such threads.  Where the process may, it goes first
     * (setpriority acts on this thread alone; a filter may kill on it). */
    int nice = _ms_filtered() ? INT_MIN : _ms_os_hurry();
    /* The reporter thread stopped (its last RSS sample written, the live
     * region withdrawn), then the final statistics: here, not in stats.c,
     * so that a program that asked for nothing runs none of stats.c's
     * code, which lies outside the pages every process maps (Makefile:
     * HOT_SRC). */
    _ms_reporter_stop();
    if (_ms_opt.stats) _ms_stats_write(_ms_opt.stats);
    _ms_profile_at_exit();       /* before the leak report, which may _exit */
    _ms_leak_at_exit();          /* may end the process with MEMSHIM_EXITCODE */
    _ms_messages_at_exit();      /* how many messages were not shown, last */
    _ms_os_unhurry(nice);
    exit_stage_is(EXIT_DONE);
    if (held) _ms_os_signals_restore(&old);
}

/* ---- _exit ----------------------------------------------------------------------- *
 * _exit(2) and _Exit end the process with no exit handler and no
 * destructor: ssh-keygen's fatal errors, a daemon's parent, a SIGTERM
 * handler's way out, Python's os._exit.  valgrind reports their leaks;
 * memshim wrote nothing, and a leak of such a program was in no report.
 * So in the process memshim started in, _exit (override.c) first does
 * memshim's end-of-process work, as exit() does: statistics, profile,
 * leak report.  Not in a child forked from it: a forked child's _exit (a
 * failed exec, the middle process of a double fork, a worker done) ends a
 * copy of its parent's heap, whose report would repeat the parent's; nor
 * in a vfork child, which runs in its parent's memory.  The program's
 * buffered output stays unwritten, as _exit leaves it, even when
 * MEMSHIM_EXITCODE ends the process.  If another thread is doing that work
 * (its exit()), the caller waits until it is done (await_worker). */
void _ms_exit_now(const ms_caller_t *caller)
{
    if (!start_process()) return;
    __atomic_store_n(&_ms_exit_unflushed, 1, __ATOMIC_RELEASE);
    ending_at = caller;
    ms_destructor();
}

/* ---- a signal at its default action ------------------------------------------------ *
 * A signal that ends the process by its default action (SIGTERM, ^C,
 * SIGPIPE, abort's SIGABRT, a crash's SIGSEGV) comes first to a handler
 * of memshim's (signals.c), which asks here whether the end-of-process
 * work is due (as for _exit: in the process memshim started in, with work
 * to do, none under way), has it done from the handler, then ends the
 * process with the signal as its default action would have.  The program's
 * buffered output stays unwritten, as the signal leaves it, and
 * MEMSHIM_EXITCODE does not apply: the process ends killed by the signal.
 * The leak scan reads the thread's stack from the interrupted code, with
 * every register of its context (a pointer held in a register there is no
 * leak). */
bool _ms_exit_signal_due(void)
{
    return start_process() && !__atomic_load_n(&worker, __ATOMIC_ACQUIRE) && exit_work();
}

/* Whether SIGSEGV's fault at addr, in the context uc, is the stack
 * overflowing: an address that cannot be read, a little below the stack
 * pointer (a call's push, a red zone) or above it in a frame just made. */
static bool overflowed(uintptr_t addr, const void *uc)
{
    uintptr_t regs[MS_SCAN_REGS], pc;
    uintptr_t sp = _ms_park_context(uc, regs, &pc, 0);
    return sp && addr + 256 >= sp && addr < sp + 65536 && !_ms_os_can_read((const void *)addr);
}

void _ms_exit_by_signal(int sig, const siginfo_t *si, const void *uc)
{
    __atomic_store_n(&_ms_exit_unflushed, 1, __ATOMIC_RELEASE);
    ending_signal = sig;
    ending_uc = uc;
    ending_overflow = sig == SIGSEGV && si && si->si_code > 0 && uc && overflowed((uintptr_t)si->si_addr, uc);
    ms_destructor();
}

bool _ms_exit_overflowed(void) { return ending_overflow; }

void _ms_exit_signal_lost(int sig)
{
    const char *name = sigabbrev_np(sig);
    _ms_message("SIG%s came in while memshim held its allocator's locks (a fault inside memshim): no "
                "statistics, profile or leak report at exit", name ? name : "?");
}

int _ms_exit_signal(void) { return __atomic_load_n(&ended_by, __ATOMIC_ACQUIRE); }

bool _ms_exit_signal_frame(ms_scan_self_t *self)
{
    if (!ending_uc) return false;
    self->sp = _ms_park_context(ending_uc, self->regs, &self->pc, (uintptr_t)__builtin_frame_address(0));
    self->nregs = MS_SCAN_REGS;
    return true;
}
