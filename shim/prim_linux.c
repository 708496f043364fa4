/* prim_linux.c - the operating system under memshim: mappings, time, output.
 * The only file that makes raw system calls.  errno is preserved across every
 * call that succeeds, so an allocation never disturbs the program's errno. */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"

void *_ms_os_map(size_t size)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { errno = ENOMEM; return NULL; }
    errno = saved;
    return p;
}

/* Memory that a forked child shares with this process (leak.c). */
void *_ms_os_map_shared(size_t size)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

/* A mapping of `size` bytes whose start is a multiple of `align` (a power of
 * two at least the OS page): over-map, then give back the ends. */
void *_ms_os_map_aligned(size_t size, size_t align)
{
    if (align <= MS_OS_PAGE) return _ms_os_map(size);
    if (size > SIZE_MAX - align) { errno = ENOMEM; return NULL; }
    uint8_t *raw = _ms_os_map(size + align);
    if (!raw) return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw, tail = align - head;
    if (head) _ms_os_unmap(raw, head);
    if (tail) _ms_os_unmap((uint8_t *)start + size, tail);
    return (void *)start;
}

void _ms_os_unmap(void *p, size_t size)
{
    int saved = errno;
    munmap(p, size);
    errno = saved;
}

void *_ms_os_remap(void *p, size_t old_size, size_t new_size)
{
    int saved = errno;
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) { errno = ENOMEM; return NULL; }
    errno = saved;
    return q;
}

/* p's mapping grown to new_size where it lies (the pages after it free),
 * its pages keeping their addresses; false, nothing done, otherwise. */
bool _ms_os_grow(void *p, size_t old_size, size_t new_size)
{
    int saved = errno;
    void *q = mremap(p, old_size, new_size, 0);
    errno = saved;
    return q != MAP_FAILED;
}

bool _ms_os_purge(void *p, size_t size)
{
    int saved = errno;
    bool ok = madvise(p, size, MADV_DONTNEED) == 0;
    errno = saved;
    return ok;
}

/* Whether every page of [p, p+size) is mapped: mincore() fails with ENOMEM on
 * a hole.  Used only on the rare path of a pointer memshim did not hand out. */
bool _ms_os_readable(const void *p, size_t size)
{
    int saved = errno;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(MS_OS_PAGE - 1);
    uintptr_t end = (uintptr_t)p + size;
    unsigned char vec[64];
    bool ok = true;
    while (a < end && ok) {
        size_t chunk = end - a;
        if (chunk > sizeof vec * MS_OS_PAGE) chunk = sizeof vec * MS_OS_PAGE;
        ok = syscall(SYS_mincore, (void *)a, chunk, vec) == 0;
        a += (chunk + MS_OS_PAGE - 1) & ~(uintptr_t)(MS_OS_PAGE - 1);
    }
    errno = saved;
    return ok;
}

/* Bytes of [p, p+size) (page-aligned) whose pages are in memory, by
 * mincore(); a hole counts none. */
size_t _ms_os_resident(const void *p, size_t size)
{
    int saved = errno;
    uintptr_t a = (uintptr_t)p, end = (uintptr_t)p + size;
    unsigned char vec[256];
    size_t pages = 0;
    while (a < end) {
        size_t chunk = end - a;
        if (chunk > sizeof vec * MS_OS_PAGE) chunk = sizeof vec * MS_OS_PAGE;
        size_t n = (chunk + MS_OS_PAGE - 1) / MS_OS_PAGE;
        if (syscall(SYS_mincore, (void *)a, chunk, vec) == 0)
            for (size_t i = 0; i < n; i++) pages += vec[i] & 1;
        a += n * MS_OS_PAGE;
    }
    errno = saved;
    return pages * MS_OS_PAGE;
}

int _ms_os_gettid(void) { return (int)syscall(SYS_gettid); }

/* All of buf to fd, waiting where fd is non-blocking (below), and raising
 * no SIGPIPE: memshim's exit report written to a standard error whose
 * reader had gone (`prog 2>&1 | head`) killed the program with SIGPIPE,
 * an exit status it would not have had.  SIGPIPE is held during the
 * write, and the one a write to no reader raises (sent to this thread) is
 * taken back, unless one was pending already.  Neither under a seccomp
 * filter the program installed: the system calls they take are not
 * memshim's to add there (init.c). */
#define WRITE_PATIENCE_MS 10000
static int stuck_fd = -1;          /* a descriptor whose reader took nothing for that long */
ssize_t _ms_os_write(int fd, const void *buf, size_t n)
{
    int saved = errno;
    sigset_t pipe_sig, old, pending;
    sigemptyset(&pipe_sig);
    sigaddset(&pipe_sig, SIGPIPE);
    bool held = !_ms_filtered() && pthread_sigmask(SIG_BLOCK, &pipe_sig, &old) == 0;
    bool was_pending = held && sigismember(&old, SIGPIPE) &&
                       (sigpending(&pending) != 0 || sigismember(&pending, SIGPIPE));
    size_t done = 0;
    ssize_t r = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        /* A descriptor the program made non-blocking (its standard error,
         * whose open file memshim's copy shares: Node.js does so) and a
         * reader slower than the report: the write waits, as on a blocking
         * descriptor, instead of cutting the report short; but not for
         * ever (WRITE_PATIENCE_MS with no room made): the reader may be a
         * thread of the program's that has ended, and the process would
         * hang at its exit report.  Once given up on, a descriptor gets no
         * more waiting (the rest of the report, the message saying it was
         * cut) until a write to it goes through again. */
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !_ms_filtered()) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            bool stuck = __atomic_load_n(&stuck_fd, __ATOMIC_RELAXED) == fd;
            int ready = poll(&p, 1, stuck ? 0 : WRITE_PATIENCE_MS);
            if (ready > 0 || (ready < 0 && errno == EINTR)) continue;
            __atomic_store_n(&stuck_fd, fd, __ATOMIC_RELAXED);
            errno = EAGAIN;
        }
        if (w <= 0) { r = w < 0 ? -errno : -EIO; break; }
        if (__atomic_load_n(&stuck_fd, __ATOMIC_RELAXED) == fd) __atomic_store_n(&stuck_fd, -1, __ATOMIC_RELAXED);
        done += (size_t)w;
    }
    if (held) {
        if (r == -EPIPE && !was_pending) {
            static const struct timespec now = { 0, 0 };
            while (sigtimedwait(&pipe_sig, NULL, &now) < 0 && errno == EINTR) {}
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    errno = saved;
    return r ? r : (ssize_t)done;
}

/* /proc's file of this process's memory (maps, pagemap, smaps, status,
 * cmdline, exe) as this thread sees it: /proc/thread-self/FILE.  Once the
 * thread group's leader has left by pthread_exit(), /proc/self is the
 * leader's, a zombie's: its maps and cmdline read empty, and a leak scan
 * from the last thread found no globals and called every block they held
 * definitely lost.  /proc/self on a kernel without thread-self (before
 * 3.17). */
static const char *path_in(const char *dir, const char *file, char *buf, size_t cap)
{
    size_t i = 0;
    while (*dir && i + 1 < cap) buf[i++] = *dir++;
    while (*file && i + 1 < cap) buf[i++] = *file++;
    buf[i] = 0;
    return buf;
}

const char *_ms_os_proc(const char *file, char *buf, size_t cap)
{
    static int have = -1;
    if (have < 0) {
        int saved = errno;
        have = access("/proc/thread-self", F_OK) == 0;
        errno = saved;
    }
    return path_in(have ? "/proc/thread-self/" : "/proc/self/", file, buf, cap);
}

uint64_t _ms_os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool _ms_os_secure(void) { return getauxval(AT_SECURE) != 0; }

/* The whole of the open file fd, from its start, into buf (NUL-terminated);
 * its length.  pread: a file kept open reads anew (/proc regenerates it). */
static ssize_t read_whole(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = pread(fd, buf + got, cap - 1 - got, (off_t)got)) > 0) got += (size_t)r;
    buf[got] = 0;
    return (ssize_t)got;
}

/* fd (-1: none) read whole, then closed; -1 if that number was no longer
 * memshim's file at the close (fds.c): what was read may be the
 * program's. */
static ssize_t read_fd_whole(int fd, char *buf, size_t cap)
{
    ssize_t len = -1;
    if (fd >= 0) {
        len = read_whole(fd, buf, cap);
        if (_ms_fd_close(fd) != 0 && errno == EBADF) len = -1;
    }
    return len;
}

/* Read a small /proc file into buf (NUL-terminated) with open/read, never
 * stdio, which could allocate.  Returns the length, or -1. */
ssize_t _ms_os_read_file(const char *path, char *buf, size_t cap)
{
    int saved = errno;
    ssize_t len = read_fd_whole(_ms_fd_open(AT_FDCWD, path, O_RDONLY, 0), buf, cap);
    errno = saved;
    return len;
}

/* /proc after chroot(2): a daemon's privilege-separated child (sshd's,
 * postfix's) or a build sandbox chroots where there is no /proc, and the
 * leak scan lost /proc/self/maps (no verdict), the RSS log its figures.
 * Before the program's chroot, /proc/self is kept open (a directory at fd
 * >= MS_FD_MIN, close-on-exec, checked by identity before each use); a
 * fork child takes its own through it ("../self": the kept directory lies
 * outside the new root, so ".." still leads to /proc). */
/* A descriptor memshim keeps (at fd >= MS_FD_MIN, registered: fds.c),
 * known by its file's identity: the program may still replace any number
 * (dup2, or a close by its own system call), and one that is no longer
 * ours is never used nor closed. */
typedef struct { int fd; dev_t dev; ino_t ino; } kept_fd_t;

bool _ms_os_same_file(int fd, dev_t dev, ino_t ino)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static bool kept_ours(const kept_fd_t *k) { return _ms_os_same_file(k->fd, k->dev, k->ino); }

/* k takes fd (-1: none), born memshim's (fds.c, _ms_fd_open).  Its file
 * is known from here on: a number the program replaced later (dup2, its
 * own system call) is never read as memshim's.  (When the file was known
 * only after a move to a high number, a program that closed every
 * descriptor and put files of its own on high numbers took the new number
 * in between; its file passed for memshim's, and the RSS log read it:
 * samples of 0 bytes, found by a helper.) */
static void kept_set(kept_fd_t *k, int fd)
{
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) != 0) { _ms_fd_close(fd); fd = -1; }
    k->fd = fd;
    if (fd >= 0) { k->dev = st.st_dev; k->ino = st.st_ino; }
}

static kept_fd_t proc_dir = { -1, 0, 0 };

void _ms_os_proc_keep(void)
{
    int saved = errno;
    if (!kept_ours(&proc_dir)) kept_set(&proc_dir, _ms_fd_open(AT_FDCWD, "/proc/self", O_PATH | O_DIRECTORY, 0));
    errno = saved;
}

void _ms_os_proc_fork_child(void)
{
    int saved = errno;
    if (kept_ours(&proc_dir)) {
        int parent = proc_dir.fd;
        kept_set(&proc_dir, _ms_fd_open(parent, "../self", O_PATH | O_DIRECTORY, 0));
        _ms_fd_close(parent);
    }
    errno = saved;
}

/* open(2) of the process's /proc file (process: /proc/self/FILE, else
 * _ms_os_proc's), through the kept directory when the path is gone. */
static int proc_open(const char *file, int flags, bool process)
{
    char path[64];
    const char *p = process ? path_in("/proc/self/", file, path, sizeof path) : _ms_os_proc(file, path, sizeof path);
    int fd = _ms_fd_open(AT_FDCWD, p, flags, 0);
    if (fd < 0 && errno == ENOENT && kept_ours(&proc_dir)) fd = _ms_fd_open(proc_dir.fd, file, flags, 0);
    return fd;
}

int _ms_os_proc_open(const char *file, int flags) { return proc_open(file, flags, false); }
int _ms_os_self_open(const char *file, int flags) { return proc_open(file, flags, true); }

ssize_t _ms_os_read_proc(const char *file, char *buf, size_t cap, bool process)
{
    int saved = errno;
    ssize_t len = read_fd_whole(proc_open(file, O_RDONLY, process), buf, cap);
    errno = saved;
    return len;
}

ssize_t _ms_os_proc_readlink(const char *file, char *buf, size_t cap)
{
    int saved = errno;
    char path[64];
    ssize_t n = readlink(_ms_os_proc(file, path, sizeof path), buf, cap);
    if (n < 0 && errno == ENOENT && kept_ours(&proc_dir)) n = readlinkat(proc_dir.fd, file, buf, cap);
    errno = saved;
    return n;
}

/* The process's /proc status (its memory figures, _ms_os_proc's).  The
 * thread that called _ms_os_status_keep (memshim's reporter, at each tick)
 * keeps the file open at fd >= MS_FD_MIN and reads it again with pread:
 * opening it at each tick took the lowest free descriptor for a moment,
 * and a program's open() got 4 where 3 was free, or its dup2() onto that
 * number failed with EBUSY.  The descriptor is checked each time (the
 * program may close or replace any); a fork child forgets it. */
static __thread bool status_keeper __attribute__((tls_model("initial-exec")));
static kept_fd_t status_file = { -1, 0, 0 };

void _ms_os_status_keep(void) { status_keeper = true; }

void _ms_os_status_forget(void)
{
    if (kept_ours(&status_file)) _ms_fd_close(status_file.fd);
    status_file.fd = -1;
}

/* The kept file, opened if it is not (or no longer ours: then the
 * program's, not ours to close). */
static void status_open(void)
{
    if (!kept_ours(&status_file)) kept_set(&status_file, _ms_os_proc_open("status", O_RDONLY));
}

/* A fork child's reporter thread reads the file this thread opens now: the
 * child may soon chroot() where there is no /proc (a daemon's privilege-
 * separated child), and its RSS log then had samples of 0 bytes.  Any
 * thread's status gives the process's VmRSS. */
void _ms_os_status_prime(void)
{
    int saved = errno;
    status_open();
    errno = saved;
}

ssize_t _ms_os_read_status(char *buf, size_t cap)
{
    if (!status_keeper) return _ms_os_read_proc("status", buf, cap, false);
    int saved = errno;
    status_open();
    ssize_t len = status_file.fd >= 0 ? read_whole(status_file.fd, buf, cap) : -1;
    errno = saved;
    return len;
}

/* The value in kB of a "Key:   N kB" line of /proc/self/status, in bytes. */
uint64_t _ms_os_status_kb(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    if (!p) return 0;
    p += strlen(key);
    while (*p == ' ' || *p == '\t' || *p == ':') p++;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
    return v * 1024;
}

/* Futex wait while *addr == val, and wake up to n waiters (the leak scan's
 * parking of threads). */
void _ms_os_futex_wait(int *addr, int val) { syscall(SYS_futex, addr, 0 /* FUTEX_WAIT */, val, NULL, NULL, 0); }
void _ms_os_futex_wake(int *addr, int n) { syscall(SYS_futex, addr, 1 /* FUTEX_WAKE */, n, NULL, NULL, 0); }

/* Raw directory entries (readdir would allocate). */
long _ms_os_getdents(int fd, void *buf, size_t n) { return syscall(SYS_getdents64, fd, buf, n); }

int _ms_os_tgkill(int pid, int tid, int sig) { return (int)syscall(SYS_tgkill, pid, tid, sig); }

/* The thread's signal stack (signals.c's, and the program's sigaltstack()
 * passed through: memshim defines that name). */
int _ms_os_sigaltstack(const stack_t *ss, stack_t *old) { return (int)syscall(SYS_sigaltstack, ss, old); }

/* sig sent again to this thread with the siginfo it came with (signals.c:
 * the kernel lets a process send itself any si_code). */
int _ms_os_sigqueue_self(int sig, siginfo_t *si)
{
    int saved = errno;
    int rc = (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), _ms_os_gettid(), sig, si);
    errno = saved;
    return rc;
}

/* Whether process pid shares this one's memory (a vfork or CLONE_VM
 * child's parent): kcmp(KCMP_VM).  False when the kernel cannot say. */
bool _ms_os_same_vm(int pid)
{
    int saved = errno;
    long r = syscall(SYS_kcmp, (long)getpid(), (long)pid, 1 /* KCMP_VM */, 0L, 0L);
    errno = saved;
    return r == 0;
}

int _ms_os_hurry(void)
{
    int saved = errno;
    errno = 0;
    int was = getpriority(PRIO_PROCESS, 0);
    int ok = errno == 0 && was > -20 && setpriority(PRIO_PROCESS, 0, -20) == 0;
    errno = saved;
    return ok ? was : INT_MIN;
}

void _ms_os_unhurry(int nice)
{
    if (nice == INT_MIN) return;
    int saved = errno;
    setpriority(PRIO_PROCESS, 0, nice);         /* raising nice is always allowed */
    errno = saved;
}

/* Whether the byte at p can be read, without faulting and without a
 * descriptor: process_vm_readv of our own memory fails with EFAULT on an
 * unmapped or unreadable page.  Where a sandbox forbids it (EPERM, ENOSYS),
 * a pipe of memshim's own does the job (write(2) fails with EFAULT just the
 * same), kept high, close-on-exec and registered (fds.c), and checked to be
 * still ours (the program may replace any number) before every use. */
static int   vm_read_broken;
static int   probe_pipe[2] = { -1, -1 };
static dev_t probe_dev;
static ino_t probe_ino;

static bool probe_pipe_ours(void)
{
    struct stat st;
    return probe_pipe[0] >= 0 && fstat(probe_pipe[0], &st) == 0 && S_ISFIFO(st.st_mode) &&
           st.st_dev == probe_dev && st.st_ino == probe_ino;
}

bool _ms_os_can_read(const void *p)
{
    int saved = errno;
    char c;
    bool ok = false;
    if (!__atomic_load_n(&vm_read_broken, __ATOMIC_RELAXED)) {
        struct iovec local = { &c, 1 }, remote = { (void *)p, 1 };
        ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
        if (r == 1 || errno == EFAULT) { errno = saved; return r == 1; }
        __atomic_store_n(&vm_read_broken, 1, __ATOMIC_RELAXED);
    }
    if (!probe_pipe_ours()) {
        int fds[2];
        ms_birth_t b;
        _ms_fd_birth_begin(&b, 2);
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) fds[0] = fds[1] = -1;
        _ms_fd_born(&b, fds, 2);
        struct stat st;
        if (fds[0] < 0 || fds[1] < 0 || fstat(fds[0], &st) != 0) {       /* taken by the program meanwhile */
            for (int i = 0; i < 2; i++) if (fds[i] >= 0) _ms_fd_close(fds[i]);
            errno = saved;
            return false;
        }
        probe_dev = st.st_dev;
        probe_ino = st.st_ino;
        probe_pipe[1] = fds[1];
        __atomic_store_n(&probe_pipe[0], fds[0], __ATOMIC_RELEASE);
    }
    ok = write(probe_pipe[1], p, 1) == 1;
    while (read(probe_pipe[0], &c, 1) == 1) {}
    errno = saved;
    return ok;
}

static inline long raw6(long nr, long a, long b, long c, long d, long e, long f);

/* syscall(2) as the C library's: the result, or -1 with errno.  Made here,
 * not through the C library's syscall(), which memshim interposes
 * (override.c): that one comes here. */
long _ms_os_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__) || defined(__aarch64__)
    long r = raw6(nr, a, b, c, d, e, f);
    if ((unsigned long)r > -4096UL) { errno = (int)-r; return -1; }
    return r;
#else
    static long (*next)(long, ...);
    if (!next) next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return next(nr, a, b, c, d, e, f);
#endif
}

/* Descriptors closed or replaced by the system calls themselves, -1 and
 * errno on failure as the C library's: memshim's own closes (fds.c; its
 * code's close() is the program's, override.c), and the gaps of a
 * program's close_range between memshim's descriptors. */
int _ms_os_close(int fd) { return (int)_ms_os_syscall6(SYS_close, fd, 0, 0, 0, 0, 0); }

long _ms_os_close_range(unsigned lo, unsigned hi, unsigned flags)
{
#ifdef SYS_close_range
    return _ms_os_syscall6(SYS_close_range, (long)lo, (long)hi, (long)flags, 0, 0, 0);
#else
    (void)lo; (void)hi; (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

int _ms_os_unshare_files(void) { return (int)_ms_os_syscall6(SYS_unshare, CLONE_FILES, 0, 0, 0, 0, 0); }

/* dup3, or dup2 (as_dup2: old onto itself gives old if open, flags 0). */
long _ms_os_dup3(int old, int fd, int flags, bool as_dup2)
{
    if (as_dup2 && old == fd) return _ms_os_syscall6(SYS_fcntl, old, F_GETFD, 0, 0, 0, 0) < 0 ? -1 : fd;
    return _ms_os_syscall6(SYS_dup3, old, fd, flags, 0, 0, 0);
}

/* Make a page of a library's relocation table writable (or read-only again). */
bool _ms_os_protect(void *page, size_t size, bool writable)
{
    int saved = errno;
    bool ok = mprotect(page, size, PROT_READ | (writable ? PROT_WRITE : 0)) == 0;
    errno = saved;
    return ok;
}

/* Make pages inaccessible: the guard below memshim's own stack (unwind.c). */
bool _ms_os_guard(void *page, size_t size)
{
    int saved = errno;
    bool ok = mprotect(page, size, PROT_NONE) == 0;
    errno = saved;
    return ok;
}

/* ---- stopping threads for the leak scan (park.c) ----------------------------
 * The tracer is a task of its own made with clone(CLONE_VM): it shares our
 * memory but runs on the thread pointer of the thread that made it, so it
 * must not touch errno or any thread-local variable, and must not call into
 * the C library beyond pure functions.  These calls issue the system call
 * themselves and return what the kernel returns: a negative errno on
 * failure.  Only x86-64 and aarch64 have them (_ms_raw_available). */
static inline long raw6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#else
    (void)nr; (void)a; (void)b; (void)c; (void)d; (void)e; (void)f;
    return -ENOSYS;
#endif
}

bool _ms_raw_available(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
    return true;
#else
    return false;
#endif
}

long _ms_raw_ptrace(long req, int tid, uintptr_t addr, uintptr_t data)
{
    return raw6(SYS_ptrace, req, tid, (long)addr, (long)data, 0, 0);
}

long _ms_raw_wait(int pid, int *status, int options)
{
    return raw6(SYS_wait4, pid, (long)status, options, 0, 0, 0);
}

/* The entries of an open directory, from its start each time. */
long _ms_raw_dents(int fd, void *buf, size_t n, bool rewind)
{
    if (rewind) {
        long r = raw6(SYS_lseek, fd, 0, SEEK_SET, 0, 0, 0);
        if (r < 0) return r;
    }
    return raw6(SYS_getdents64, fd, (long)buf, (long)n, 0, 0, 0);
}

/* The pieces of the tracer's reads of small files (fds.c,
 * _ms_fd_raw_read_at). */
int  _ms_raw_gettid(void) { return (int)raw6(SYS_gettid, 0, 0, 0, 0, 0, 0); }
long _ms_raw_openat(int dirfd, const char *name)
{
    return raw6(SYS_openat, dirfd, (long)name, O_RDONLY | O_CLOEXEC, 0, 0, 0);
}
long _ms_raw_read(int fd, void *buf, size_t n) { return raw6(SYS_read, fd, (long)buf, (long)n, 0, 0, 0); }
void _ms_raw_close(int fd) { raw6(SYS_close, fd, 0, 0, 0, 0, 0); }

long _ms_raw_identity(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;
    long r = raw6(SYS_newfstatat, fd, (long)"", (long)&st, AT_EMPTY_PATH, 0, 0);
    if (r == 0) { *dev = st.st_dev; *ino = st.st_ino; }
    return r;
}

/* Wait while *addr == val, at most ns nanoseconds (0: no limit). */
long _ms_raw_futex_wait(int *addr, int val, uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    return raw6(SYS_futex, (long)addr, 0 /* FUTEX_WAIT */, val, ns ? (long)&ts : 0, 0, 0);
}

void _ms_raw_nap_ns(uint64_t ns)
{
    int never = 0;
    _ms_raw_futex_wait(&never, 0, ns);
}

void _ms_raw_futex_wake(int *addr)
{
    raw6(SYS_futex, (long)addr, 1 /* FUTEX_WAKE */, 1 << 30, 0, 0, 0);
}

uint64_t _ms_raw_now_ns(void)
{
    struct timespec ts = { 0, 0 };
    raw6(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Die with the thread that made us (it may be killed in the middle of a
 * scan: the kernel then detaches every thread we stopped); returns the
 * parent's pid, to check it did not die before. */
int _ms_raw_bind_to_parent(void)
{
    raw6(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0);
    return (int)raw6(SYS_getppid, 0, 0, 0, 0, 0, 0);
}

/* setpriority(2) acts on the calling thread alone on Linux (who = 0). */
void _ms_raw_hurry(void)
{
    raw6(SYS_setpriority, PRIO_PROCESS, 0, -20, 0, 0, 0);
}

_Noreturn void _ms_raw_exit(int code)
{
    for (;;) raw6(SYS_exit, code, 0, 0, 0, 0, 0);
}

_Noreturn void _ms_raw_exit_group(int code)      /* what _exit(2) is */
{
    for (;;) raw6(SYS_exit_group, code, 0, 0, 0, 0, 0);
}

/* Every signal held off this thread (the old mask kept in *old) and let in
 * again: around the start of memshim's own threads and tasks, which
 * inherit the mask, so that none of the program's handlers ever runs on
 * them.  errno is kept. */
void _ms_os_signals_hold(sigset_t *old)
{
    int saved = errno;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
    errno = saved;
}

void _ms_os_signals_restore(const sigset_t *old)
{
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, old, NULL);
    errno = saved;
}

/* The signals a fault raises. */
static const int fault_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };

bool _ms_os_fault_signal(int sig)
{
    for (size_t i = 0; i < sizeof fault_signals / sizeof *fault_signals; i++)
        if (fault_signals[i] == sig) return true;
    return false;
}

/* The signals a program's handler may receive at any moment held off this
 * thread while the allocator changes what a handler's allocation would
 * use (tcache.c), the old mask in *old; false, nothing done, when a
 * seccomp filter may kill the process at a system call that is not the
 * allocator's own (init.c).  The signals a fault raises stay: a fault
 * there still reaches the program's handler (a crash reporter) instead of
 * killing the process at once. */
bool _ms_os_signals_defer(sigset_t *old)
{
    if (__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) return false;
    int saved = errno;
    sigset_t async;
    sigfillset(&async);
    for (size_t i = 0; i < sizeof fault_signals / sizeof *fault_signals; i++) sigdelset(&async, fault_signals[i]);
    bool ok = pthread_sigmask(SIG_BLOCK, &async, old) == 0;
    errno = saved;
    return ok;
}

/* The same for the signals that have a handler (the program's or
 * memshim's), around memshim's work at exit: a handler that calls exit()
 * there (a SIGTERM sent while the process winds down) ended the process
 * half way through the leak report.  Held, the signal comes in once the
 * work is done.  Signals left to their default action still end the
 * process at once: ^C stops a long exit scan as it would stop the
 * program.  false: nothing held (none handled, or a seccomp filter). */
bool _ms_os_signals_defer_handled(sigset_t *old)
{
    if (__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) return false;
    int saved = errno;
    sigset_t handled;
    sigemptyset(&handled);
    bool any = false;
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || _ms_os_fault_signal(sig) || _ms_sigaction(sig, NULL, &sa) != 0) continue;
        if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) continue;
        if (_ms_signals_at_default(sig, &sa)) continue;      /* memshim's handler standing for the default */
        sigaddset(&handled, sig);
        any = true;
    }
    bool ok = any && pthread_sigmask(SIG_BLOCK, &handled, old) == 0;
    errno = saved;
    return ok;
}

/* ---- the same, on the side of the thread that makes the tracer ------------ */

/* A task sharing our memory, descriptors and file-system state, not
 * followed by a debugger tracing us (CLONE_UNTRACED), with no exit signal:
 * the program's wait() and waitpid(-1) never see it; it is reaped with
 * _ms_os_task_reap.  Every signal is blocked in it: it inherits the mask
 * current at clone, and a signal sent to the process group (^C, SIGWINCH)
 * must not run one of the program's handlers on its stack.  Returns its
 * pid, or a negative errno. */
int _ms_os_task_start(int (*fn)(void *), void *stack_top, void *arg)
{
    int saved = errno;
    sigset_t old;
    _ms_os_signals_hold(&old);
    int pid = clone(fn, stack_top, CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED, arg);
    int err = errno;
    _ms_os_signals_restore(&old);
    errno = saved;
    return pid >= 0 ? pid : -err;
}

/* Reap the task: 1 once it has ended (or is not ours), 0 if it still
 * runs (only when !block). */
int _ms_os_task_reap(int pid, bool block)
{
    int saved = errno, status;
    for (;;) {
        pid_t r = waitpid(pid, &status, __WCLONE | (block ? 0 : WNOHANG));
        if (r < 0 && errno == EINTR) continue;
        errno = saved;
        return r == 0 ? 0 : 1;
    }
}

void _ms_os_task_kill(int pid)
{
    int saved = errno;
    kill(pid, SIGKILL);
    errno = saved;
}

/* Under Yama's ptrace_scope 1 a task may trace only its descendants: the
 * process names its tracer (Yama forgets it when that task ends). */
void _ms_os_allow_tracer(int pid)
{
    int saved = errno;
    prctl(PR_SET_PTRACER, (unsigned long)pid, 0, 0, 0);
    errno = saved;
}

/* Wait while *addr == val, at most ns nanoseconds. */
void _ms_os_futex_wait_ns(int *addr, int val, uint64_t ns)
{
    int saved = errno;
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    syscall(SYS_futex, addr, 0 /* FUTEX_WAIT */, val, &ts, NULL, 0);
    errno = saved;
}

/* Send sig to one thread with a value the handler recognizes: si_code
 * SI_QUEUE, si_value `value`, si_pid our pid. */
int _ms_os_signal_thread(int pid, int tid, int sig, void *value)
{
    int saved = errno;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = SI_QUEUE;
    si.si_pid = pid;
    si.si_uid = getuid();
    si.si_value.sival_ptr = value;
    int r = (int)syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &si);
    errno = saved;
    return r;
}
