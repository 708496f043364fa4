/* override.c - the only file defining C library names (and C++'s operator
 * new and delete).  Each is a thin forwarder: to track.c while tracking is
 * on, else straight to alloc.c.
 * Tracking gets the call site: the return address into the program and the
 * program's stack pointer at the call (the key of the stack cache).
 * The __libc_* aliases catch code that calls glibc's entry points by name. */
#include <limits.h>
#include <sys/syscall.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <unistd.h>
#include <stddef.h>
#include <stdio.h>
#include "shim.h"

#define ALIAS(name) __attribute__((alias(#name), visibility("default")))
#define TRACKING    MS_UNLIKELY(_ms_track_on)
#define SITE        MS_CALLER_SITE

/* Untracked, an allocation counts its bytes down for MEMSHIM_SAMPLE
 * (sample.c): one subtraction, and a call when the countdown runs out. */
#define TOOK(p, n) _ms_sample_took(p, n, SITE)

/* malloc's countdown ran out.  Reached by a tail call, so that malloc's
 * own fast path needs no frame: the return address and stack pointer here
 * are still those of malloc's caller. */
static MS_NOINLINE void *malloc_sampled(size_t n)
{
    return _ms_sample_due(n) ? TOOK(_ms_malloc(n), n) : _ms_malloc(n);
}

MS_EXPORT void *malloc(size_t n)
{
    if (TRACKING) return _ms_tracked_malloc(n, SITE);
    return MS_LIKELY(!MS_SAMPLE_OUT(n)) ? _ms_malloc(n) : malloc_sampled(n);
}

MS_EXPORT void free(void *p)
{ if (TRACKING) _ms_tracked_free(p, SITE); else _ms_free(p); }

MS_EXPORT void *calloc(size_t n, size_t m)
{
    if (TRACKING) return _ms_tracked_calloc(n, m, SITE);
    return MS_SAMPLE_DUE(n * m) ? TOOK(_ms_calloc(n, m), n * m) : _ms_calloc(n, m);
}

/* realloc while sampling (sample.c): counted down only if the block
 * moves, so the decision comes after _ms_realloc.  realloc_sampled is
 * reached by a tail call, as malloc_sampled, and leaves by one for what
 * needs SITE, so that it is still realloc's caller's and realloc_sampled
 * needs no frame: a block whose hash counts no sampled block (nearly all)
 * that stays where it is costs a hash, a load and a compare more than the
 * pools' realloc. */
static MS_NOINLINE void *realloc_maybe_sampled(void *p, size_t n)
{
    return _ms_sample_realloc(p, n, SITE);
}

static MS_NOINLINE void *realloc_moved(void *q, size_t n)
{
    return _ms_sample_due(n) ? _ms_sample_realloc_took(q, n, SITE) : q;
}

static MS_NOINLINE void *realloc_sampled(void *p, size_t n)
{
    if (MS_UNLIKELY(_ms_sample_hash_hit(p)))
        return realloc_maybe_sampled(p, n);
    void *q = _ms_realloc(p, n);
    return MS_LIKELY(q == p) || MS_LIKELY(!MS_SAMPLE_OUT(n)) ? q : realloc_moved(q, n);
}

MS_EXPORT void *realloc(void *p, size_t n)
{
    if (TRACKING) return _ms_tracked_realloc(p, n, SITE);
    return MS_UNLIKELY(_ms_sampling) ? realloc_sampled(p, n) : _ms_realloc(p, n);
}

MS_EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) return _ms_reallocarray(p, n, m);  /* ENOMEM */
    if (TRACKING) return _ms_tracked_realloc(p, total, SITE);
    return MS_UNLIKELY(_ms_sampling) ? realloc_sampled(p, total) : _ms_realloc(p, total);
}

MS_EXPORT int posix_memalign(void **out, size_t a, size_t n)
{
    if (TRACKING) return _ms_tracked_posix_memalign(out, a, n, SITE);
    int rc = _ms_posix_memalign(out, a, n);
    if (rc == 0 && MS_SAMPLE_DUE(n)) TOOK(*out, n);
    return rc;
}

MS_EXPORT void *aligned_alloc(size_t a, size_t n)
{
    if (TRACKING) return _ms_tracked_memalign(a, n, SITE);
    return MS_SAMPLE_DUE(n) ? TOOK(_ms_aligned_alloc(a, n), n) : _ms_aligned_alloc(a, n);
}

MS_EXPORT void *memalign(size_t a, size_t n)
{
    if (TRACKING) return _ms_tracked_memalign(a, n, SITE);
    return MS_SAMPLE_DUE(n) ? TOOK(_ms_memalign(a, n), n) : _ms_memalign(a, n);
}

MS_EXPORT void *valloc(size_t n)
{
    if (TRACKING) return _ms_tracked_valloc(n, SITE);
    return MS_SAMPLE_DUE(n) ? TOOK(_ms_valloc(n), n) : _ms_valloc(n);
}

MS_EXPORT void *pvalloc(size_t n)
{
    if (TRACKING) return _ms_tracked_pvalloc(n, SITE);
    return MS_SAMPLE_DUE(n) ? TOOK(_ms_pvalloc(n), n) : _ms_pvalloc(n);
}

MS_EXPORT int dlclose(void *handle) { return _ms_dlclose(handle); }   /* modules.c */

/* dlopen.  A library opened with RTLD_DEEPBIND looks symbols up in its own
 * dependencies before the global scope, so its calls of malloc and free
 * reach the C library's rather than memshim's, and it frees memshim's
 * blocks into the C library's heap: php's extensions crashed or aborted
 * the interpreter at its start.  Such a call goes to modules.c
 * (_ms_dlopen_ours decides, _ms_dlopen_deep opens the library and points
 * its calls of what memshim interposes at memshim; every call is looked
 * at there, for the program's own opening of libunwind, hook.c).  Every
 * other call then jumps on to the C library's dlopen as it came, the
 * program's return address on the stack: the loader finds a name without
 * '/' through the calling library's RUNPATH, which it knows by that
 * address, and a call made from memshim would search memshim's instead.
 * The first call resolves the C library's dlopen (_ms_dlopen_ours).  Elsewhere than
 * x86-64 neither dlopen nor dlsym is interposed. */
#if defined(__x86_64__)
/* In a stub: call fn, the stub's two arguments (rdi, rsi) kept for the jump
 * after it, the stack 16-aligned at the call; `before`: instructions just
 * before the call (the arguments saved, the return address 24 bytes up). */
#define CALL_KEEPING_ARGS(before, fn)                 \
        "    push %rdi\n"                              \
        ".cfi_adjust_cfa_offset 8\n"                   \
        "    push %rsi\n"                              \
        ".cfi_adjust_cfa_offset 8\n"                   \
        "    sub $8, %rsp\n"                           \
        ".cfi_adjust_cfa_offset 8\n"                   \
        before                                        \
        "    call " fn "\n"                            \
        "    add $8, %rsp\n"                           \
        ".cfi_adjust_cfa_offset -8\n"                  \
        "    pop %rsi\n"                               \
        ".cfi_adjust_cfa_offset -8\n"                  \
        "    pop %rdi\n"                               \
        ".cfi_adjust_cfa_offset -8\n"
_Static_assert(RTLD_DEEPBIND == 8, "the stub tests bit 3");
__asm__(".pushsection .text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        ".cfi_startproc\n"
        CALL_KEEPING_ARGS("    mov 24(%rsp), %rdx\n", "_ms_dlopen_ours")   /* 3rd: the caller's return address */
        "    test %eax, %eax\n"
        "    jnz _ms_dlopen_deep\n"
        "    jmp *_ms_real_dlopen(%rip)\n"
        ".cfi_endproc\n"
        ".size dlopen, .-dlopen\n"
        ".popsection\n");

/* dlsym.  A lookup in a library's handle that finds the C library's
 * definition of a function memshim takes over gives memshim's instead
 * (modules.c, _ms_dlsym_handle): python's ctypes.CDLL("libc.so.6").free,
 * or php's FFI on libc, freed memshim's blocks into glibc's heap (abort).
 * RTLD_DEFAULT's and RTLD_NEXT's lookups, which depend on the caller (the
 * object after it, its namespace), jump on to the C library's dlsym as
 * they came. */
__asm__(".pushsection .text\n"
        ".globl dlsym\n"
        ".type dlsym, @function\n"
        "dlsym:\n"
        ".cfi_startproc\n"
        "    cmp $-1, %rdi\n"               /* RTLD_NEXT */
        "    je 1f\n"
        "    test %rdi, %rdi\n"             /* RTLD_DEFAULT */
        "    jne _ms_dlsym_handle\n"
        "1:  mov _ms_real_dlsym(%rip), %rax\n"
        "    test %rax, %rax\n"
        "    jz 2f\n"
        "    jmp *%rax\n"
        "2:\n"
        CALL_KEEPING_ARGS("", "_ms_dlsym_resolve")
        "    mov _ms_real_dlsym(%rip), %rax\n"
        "    test %rax, %rax\n"
        "    jz 3f\n"
        "    jmp *%rax\n"
        "3:  ret\n"                         /* no dlsym found: NULL */
        ".cfi_endproc\n"
        ".size dlsym, .-dlsym\n"
        ".popsection\n");
#endif
MS_EXPORT int dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{ return _ms_program_iterate_phdr(cb, arg); }                         /* unwind.c */

/* exit, and main's return, which glibc makes by an internal call to exit
 * that no preload sees: __libc_start_main is given a main that ends by
 * calling exit here (init.c, _ms_exit_enter: one thread at a time). */
static void (*real_exit)(int);
typedef int (*main_fn)(int, char **, char **);
static main_fn program_main;

MS_EXPORT __attribute__((noreturn)) MS_NOINLINE void exit(int status)
{
    ms_caller_t caller;
    MS_CALLER_FRAME(caller);
    _ms_exit_enter(&caller);
    if (!real_exit) real_exit = (void (*)(int))dlsym(RTLD_NEXT, "exit");
    real_exit(status);
    __builtin_unreachable();
}

/* _exit and _Exit: memshim's end-of-process work, in the process it
 * started in (init.c, _ms_exit_now); then the temporary files this process
 * is writing are removed (out.c), then the C library's _exit, found before
 * main (dlsym is no call for a vfork child or a signal handler; before it
 * is found, the system call itself).  The C library's own calls (exit's,
 * system's child, daemon's parent) do not come here. */
static void (*real__exit)(int);
static void exec_find(void);

MS_EXPORT __attribute__((noreturn)) MS_NOINLINE void _exit(int status)
{
    ms_caller_t caller;
    MS_CALLER_FRAME(caller);
    _ms_exit_now(&caller);
    _ms_out_abandon();
    if (real__exit) real__exit(status);
    _ms_raw_exit_group(status);
}
MS_EXPORT __attribute__((noreturn)) void _Exit(int status) ALIAS(_exit);

/* In a section of its own: its bounds tell the unwinder where main's
 * caller is, and a stack ends at main as before (unwind.c). */
__attribute__((section("ms_main_caller"), noinline))
static int main_then_exit(int argc, char **argv, char **envp) { exit(program_main(argc, argv, envp)); }
extern const char __start_ms_main_caller[] __attribute__((visibility("hidden")));
extern const char __stop_ms_main_caller[] __attribute__((visibility("hidden")));
bool _ms_main_caller(uintptr_t ra)
{
    return ra - (uintptr_t)__start_ms_main_caller < (uintptr_t)(__stop_ms_main_caller - __start_ms_main_caller);
}

MS_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                                void (*rtld_fini)(void), void *stack_end)
{
    int (*real)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *) =
        (int (*)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *))
            dlsym(RTLD_NEXT, "__libc_start_main");
    real_exit = (void (*)(int))dlsym(RTLD_NEXT, "exit");
    real__exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
    exec_find();
    _ms_fds_resolve();
    program_main = main;
    return real(main_then_exit, argc, argv, init, fini, rtld_fini, stack_end);
}

/* The program's calls that close or replace descriptors never close nor
 * replace one of memshim's, and answer as they would without memshim,
 * where that number would not be open (fds.c): close of memshim's N is
 * EBADF; closefrom and close_range close the program's descriptors around
 * memshim's; dup2 and dup3 onto memshim's N take it (memshim lets it go),
 * from it say EBADF.  The program's path: one compare with the lowest of
 * memshim's numbers, then the C library's call. */
static int (*real_close)(int);
int (*_ms_real_dup2)(int, int);
int (*_ms_real_dup3)(int, int, int);

/* Found before main (here) and by the constructor (init.c), never later:
 * dlsym is no call for a handler.  Here, not in fds.c, so that a program's
 * close() runs no code of fds.c while no number of memshim's is near. */
void _ms_fds_resolve(void)
{
    if (!real_close) real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    if (!_ms_real_dup2) _ms_real_dup2 = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    if (!_ms_real_dup3) _ms_real_dup3 = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
}

int _ms_fd_real_close(int fd)
{
    return MS_LIKELY(real_close != NULL) ? real_close(fd) : _ms_os_close(fd);
}

MS_EXPORT int close(int fd)
{
    if (MS_LIKELY(fd < __atomic_load_n(&_ms_fd_low, __ATOMIC_ACQUIRE)) || !_ms_fd_claimed(fd))
        return _ms_fd_real_close(fd);
    errno = EBADF;
    return -1;
}

MS_EXPORT void closefrom(int lo) { _ms_fd_closefrom(lo); }
MS_EXPORT int close_range(unsigned lo, unsigned hi, int flags) { return _ms_fd_close_range(lo, hi, (unsigned)flags); }
MS_EXPORT int dup2(int old, int fd) { return _ms_fd_dup(old, fd, -1); }
MS_EXPORT int dup3(int old, int fd, int flags)
{
    if (flags < 0) { errno = EINVAL; return -1; }          /* no flag of dup3's is negative */
    return _ms_fd_dup(old, fd, flags);
}

/* The program's signal handlers are memshim's to call: one that comes in
 * while its thread holds a lock of memshim's is put off until the thread
 * holds none (signals.c). */
MS_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return _ms_signals_action(sig, act, old);
}
MS_EXPORT sighandler_t signal(int sig, sighandler_t handler)      { return _ms_signals_bsd(sig, handler); }
MS_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)  { return _ms_signals_bsd(sig, handler); }
MS_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) { return _ms_signals_sysv(sig, handler); }
MS_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler) { return _ms_signals_sysv(sig, handler); }
MS_EXPORT sighandler_t sigset(int sig, sighandler_t disp)         { return _ms_signals_sigset(sig, disp); }
MS_EXPORT int siginterrupt(int sig, int flag)                     { return _ms_signals_interrupt(sig, flag); }
MS_EXPORT int sigaltstack(const stack_t *ss, stack_t *old)        { return _ms_signals_altstack(ss, old); }

/* A function of the C library's with memshim's work before and after it
 * (errno as the call left it). */
#define MS_AROUND(name, params, args, before, after)                          \
    static int (*real_##name) params;     /* found at the first call, or before main */ \
    MS_EXPORT int name params                                                 \
    {                                                                         \
        if (!real_##name) real_##name = (int (*) params)dlsym(RTLD_NEXT, #name); \
        if (!real_##name) { errno = ENOSYS; return -1; }                      \
        before;                                                               \
        int rc = real_##name args;                                            \
        int err = errno;                                                      \
        after;                                                                \
        errno = err;                                                          \
        return rc;                                                            \
    }

/* setuid() and its kin, which glibc applies to every thread of the
 * process and aborts it when one thread cannot follow: memshim's reporter
 * thread is not there meanwhile (sampler.c).  initgroups() calls setgroups
 * inside the C library, where no preload sees it. */
#define MS_SETXID(name, params, args) MS_AROUND(name, params, args, _ms_reporter_hold(), _ms_reporter_release())
MS_SETXID(setuid, (uid_t u), (u))
MS_SETXID(setgid, (gid_t g), (g))
MS_SETXID(seteuid, (uid_t u), (u))
MS_SETXID(setegid, (gid_t g), (g))
MS_SETXID(setreuid, (uid_t r, uid_t e), (r, e))
MS_SETXID(setregid, (gid_t r, gid_t e), (r, e))
MS_SETXID(setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
MS_SETXID(setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
MS_SETXID(setgroups, (size_t n, const gid_t *list), (n, list))
MS_SETXID(initgroups, (const char *user, gid_t g), (user, g))

/* unshare() into a new user namespace and setns() into another user,
 * mount or time namespace (unshare --user, nsenter --user or --mount, a
 * sandbox entering its namespace), which the kernel refuses (EINVAL) to a
 * process of more than one thread, as it refuses unsharing the thread
 * group, signal handlers or memory: the reporter thread is not there
 * meanwhile, as for setuid.  setns's type 0 may be any namespace. */
#define MS_ONE_THREAD (CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM)
MS_AROUND(unshare, (int flags), (flags),
          bool alone = flags & MS_ONE_THREAD; if (alone) _ms_reporter_hold(),
          if (alone) _ms_reporter_release())
MS_AROUND(setns, (int fd, int type), (fd, type),
          bool alone = !type || type & (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWTIME); if (alone) _ms_reporter_hold(),
          if (alone) _ms_reporter_release())

/* exec and its kin: memshim's thread is not running when the image is
 * replaced, and the metrics file is withdrawn (sampler.c,
 * _ms_reporter_exec_hold); both come back if the call fails.  Found before
 * main, as _exit: a vfork child's exec makes no lookup.  The C library's
 * own execs (system, popen, posix_spawn: in a child of another pid) do
 * not come here, nor need to. */
#define MS_EXECS(X)                                                                              \
    X(execve, (const char *path, char *const argv[], char *const envp[]), (path, argv, envp))     \
    X(execv, (const char *path, char *const argv[]), (path, argv))                               \
    X(execvp, (const char *file, char *const argv[]), (file, argv))                              \
    X(execvpe, (const char *file, char *const argv[], char *const envp[]), (file, argv, envp))   \
    X(fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))               \
    X(execveat, (int dirfd, const char *path, char *const argv[], char *const envp[], int flags), \
      (dirfd, path, argv, envp, flags))
#define MS_EXEC(name, params, args) \
    MS_AROUND(name, params, args, bool held = _ms_reporter_exec_hold(), if (held) _ms_reporter_release())
MS_EXECS(MS_EXEC)
#define MS_EXEC_FIND(name, params, args) real_##name = (int (*) params)dlsym(RTLD_NEXT, #name);
static void exec_find(void) { MS_EXECS(MS_EXEC_FIND) }

/* execl, execlp, execle: their arguments as an array (on the stack, as the
 * C library makes it), to the three above.  envp follows the NULL. */
#define MS_EXECL_ARGV(argv, arg, ap)                                          \
    va_list ap;                                                               \
    size_t n_ = 0;                                                            \
    va_start(ap, arg);                                                        \
    for (const char *a_ = arg; a_; a_ = va_arg(ap, const char *)) n_++;        \
    va_end(ap);                                                               \
    char *argv[n_ + 1];                                                       \
    va_start(ap, arg);                                                        \
    argv[0] = (char *)arg;                                                    \
    for (size_t i_ = 1; i_ <= n_; i_++) argv[i_] = va_arg(ap, char *)
MS_EXPORT int execl(const char *path, const char *arg, ...)
{
    MS_EXECL_ARGV(argv, arg, ap);
    va_end(ap);
    return execv(path, argv);
}
MS_EXPORT int execlp(const char *file, const char *arg, ...)
{
    MS_EXECL_ARGV(argv, arg, ap);
    va_end(ap);
    return execvp(file, argv);
}
MS_EXPORT int execle(const char *path, const char *arg, ...)
{
    MS_EXECL_ARGV(argv, arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

/* chroot(): /proc/self is kept open first, for the scan's maps and the
 * RSS figures where the new root has no /proc (prim_linux.c), and the
 * symbolizer made ready while the files it reads can be found by name
 * (symbolize.c). */
MS_AROUND(chroot, (const char *path), (path), (_ms_os_proc_keep(), _ms_symbolize_before_chroot()), (void)0)

/* A seccomp filter installed (init.c, _ms_confined): through prctl, as
 * OpenSSH's sandbox does, or the seccomp system call through syscall(), as
 * libseccomp does; noted once the kernel took it (a refused one changes
 * nothing).  The call itself is made as the C library makes it
 * (prim_linux.c, no lookup that could allocate). */
MS_EXPORT int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long), d = va_arg(ap, long);
    va_end(ap);
    long rc = _ms_os_syscall6(SYS_prctl, option, a, b, c, d, 0);
    if (option == PR_SET_SECCOMP && rc == 0) _ms_confine_note(a == SECCOMP_MODE_FILTER ? (const void *)b : NULL);
    return (int)rc;
}

MS_EXPORT long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long), d = va_arg(ap, long),
         e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_seccomp && (a == SECCOMP_SET_MODE_STRICT || a == SECCOMP_SET_MODE_FILTER)) {
        long rc = _ms_os_syscall6(number, a, b, c, d, e, f);
        if (rc >= 0) _ms_confine_note(a == SECCOMP_SET_MODE_FILTER ? (const void *)c : NULL);
        return rc;
    }
    if (number == SYS_prctl && a == PR_SET_SECCOMP) {
        long rc = _ms_os_syscall6(number, a, b, c, d, e, f);
        if (rc == 0) _ms_confine_note(b == SECCOMP_MODE_FILTER ? (const void *)c : NULL);
        return rc;
    }
    /* the same ways as the C library's functions (fds.c, and _exit above) */
    if (number == SYS_exit_group) _exit((int)a);
    if (number == SYS_close) return close((int)a);
#ifdef SYS_close_range
    if (number == SYS_close_range) return _ms_fd_close_range((unsigned)a, (unsigned)b, (unsigned)c);
#endif
#ifdef SYS_dup2
    if (number == SYS_dup2) return _ms_fd_dup((int)a, (int)b, -1);
#endif
    if (number == SYS_dup3) return (int)c < 0 ? (errno = EINVAL, -1) : _ms_fd_dup((int)a, (int)b, (int)c);
    if (number == SYS_clone || number == SYS_clone3 || number == SYS_fork || number == SYS_vfork) {
        /* A child on a stack of its own returns from the C library's
         * syscall() by the address the program put on that stack: only
         * that function's frame is made for it. */
        static long (*libc_syscall)(long, ...);
        if (!libc_syscall) libc_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
        if (libc_syscall) return libc_syscall(number, a, b, c, d, e, f);
    }
    return _ms_os_syscall6(number, a, b, c, d, e, f);
}

MS_EXPORT size_t malloc_usable_size(void *p) { return TRACKING ? _ms_tracked_usable_size(p) : _ms_usable_size(p); }
MS_EXPORT int    malloc_trim(size_t pad)     { return _ms_trim(pad); }
MS_EXPORT void   cfree(void *p)              { free(p); }

/* glibc's questions about the heap, answered from memshim's figures
 * (mallinfo.c).  The structures are glibc's, field for field (shim.h: not
 * from malloc.h, whose malloc & co. carry attributes the aliases below
 * lack).  mallinfo's int fields stop at INT_MAX. */
MS_EXPORT ms_mallinfo2_t mallinfo2(void)
{
    ms_mallinfo2_t m;
    _ms_mallinfo2(&m);
    return m;
}

MS_EXPORT ms_mallinfo_t mallinfo(void)
{
    ms_mallinfo2_t m;
    _ms_mallinfo2(&m);
#define CLAMP(x) ((x) > INT_MAX ? INT_MAX : (int)(x))
    return (ms_mallinfo_t){ CLAMP(m.arena), CLAMP(m.ordblks), CLAMP(m.smblks), CLAMP(m.hblks),
                            CLAMP(m.hblkhd), CLAMP(m.usmblks), CLAMP(m.fsmblks), CLAMP(m.uordblks),
                            CLAMP(m.fordblks), CLAMP(m.keepcost) };
#undef CLAMP
}

MS_EXPORT void malloc_stats(void)                { _ms_malloc_stats(); }
MS_EXPORT int  malloc_info(int options, FILE *fp) { return _ms_malloc_info(options, fp); }
MS_EXPORT int  mallopt(int param, int value)     { return _ms_mallopt(param, value); }

/* ---- C++: operator new and delete, by their mangled names (x86-64: size_t
 * is 'm').  std::align_val_t travels as a size_t, std::nothrow_t const & as
 * a pointer.  Sizes given to delete are not needed.  On failure, new calls
 * the new_handler and throws std::bad_alloc, or returns NULL (cxx.c).  While
 * tracking, each block remembers which form allocated it, so that a
 * mismatched free/delete/delete[] is reported. */
#define NEW(n, align, how, nothrow) do { \
        void *p_ = TRACKING ? _ms_tracked_new(n, align, how, SITE) : \
                   MS_SAMPLE_DUE(n) ? _ms_sample_took(_ms_new(n, align), n, SITE) : _ms_new(n, align); \
        return MS_LIKELY(p_ != NULL) ? p_ : _ms_new_failed(n, align, how, nothrow, SITE); \
    } while (0)
#define DELETE(p, how) do { if (TRACKING) _ms_tracked_delete(p, how, SITE); else _ms_free(p); } while (0)
#define NEW_ALIGNED       (MS_ALLOC_NEW | MS_ALLOC_ALIGNED)
#define NEW_ARRAY_ALIGNED (MS_ALLOC_NEW_ARRAY | MS_ALLOC_ALIGNED)

MS_EXPORT void *_Znwm(size_t n)                              { NEW(n, 0, MS_ALLOC_NEW, false); }
MS_EXPORT void *_Znam(size_t n)                              { NEW(n, 0, MS_ALLOC_NEW_ARRAY, false); }
MS_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt) { NEW(n, 0, MS_ALLOC_NEW, true); }
MS_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt) { NEW(n, 0, MS_ALLOC_NEW_ARRAY, true); }
/* An alignment of 0 is no power of two (libstdc++ refuses it); 0 means
 * "none" to _ms_new, so it goes on as 3, refused as every other. */
#define ALIGN_ARG(a) ((a) ? (a) : (size_t)3)
MS_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a)      { NEW(n, ALIGN_ARG(a), NEW_ALIGNED, false); }
MS_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a)      { NEW(n, ALIGN_ARG(a), NEW_ARRAY_ALIGNED, false); }
MS_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt)
{ NEW(n, ALIGN_ARG(a), NEW_ALIGNED, true); }
MS_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt)
{ NEW(n, ALIGN_ARG(a), NEW_ARRAY_ALIGNED, true); }

MS_EXPORT void _ZdlPv(void *p)                               { DELETE(p, MS_ALLOC_NEW); }
MS_EXPORT void _ZdaPv(void *p)                               { DELETE(p, MS_ALLOC_NEW_ARRAY); }
MS_EXPORT void _ZdlPvm(void *p, size_t n)                    { DELETE(p, MS_ALLOC_NEW); }
MS_EXPORT void _ZdaPvm(void *p, size_t n)                    { DELETE(p, MS_ALLOC_NEW_ARRAY); }
MS_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { DELETE(p, MS_ALLOC_NEW); }
MS_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { DELETE(p, MS_ALLOC_NEW_ARRAY); }
MS_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a)      { DELETE(p, NEW_ALIGNED); }
MS_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a)      { DELETE(p, NEW_ARRAY_ALIGNED); }
MS_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) { DELETE(p, NEW_ALIGNED); }
MS_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) { DELETE(p, NEW_ARRAY_ALIGNED); }
MS_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt)
{ DELETE(p, NEW_ALIGNED); }
MS_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt)
{ DELETE(p, NEW_ARRAY_ALIGNED); }

void *__libc_malloc(size_t n)                   ALIAS(malloc);
void  __libc_free(void *p)                      ALIAS(free);
void *__libc_calloc(size_t n, size_t m)         ALIAS(calloc);
void *__libc_realloc(void *p, size_t n)         ALIAS(realloc);
void *__libc_memalign(size_t a, size_t n)       ALIAS(memalign);
void *__libc_valloc(size_t n)                   ALIAS(valloc);
void *__libc_pvalloc(size_t n)                  ALIAS(pvalloc);
