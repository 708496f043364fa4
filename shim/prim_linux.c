/* prim_linux.c - the operating system under memshim: mappings, time, output.
 * The only file that makes raw system calls.  errno is preserved across every
 * call that succeeds, so an allocation never disturbs the program's errno. */

#include <errno.h>
#include <fcntl.h>
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

void _ms_os_purge(void *p, size_t size)
{
    int saved = errno;
    madvise(p, size, MADV_DONTNEED);
    errno = saved;
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

int _ms_os_gettid(void) { return (int)syscall(SYS_gettid); }

ssize_t _ms_os_write(int fd, const void *buf, size_t n)
{
    int saved = errno;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    errno = saved;
    return (ssize_t)done;
}

uint64_t _ms_os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool _ms_os_secure(void) { return getauxval(AT_SECURE) != 0; }

/* Read a small /proc file into buf (NUL-terminated) with open/read, never
 * stdio, which could allocate.  Returns the length, or -1. */
ssize_t _ms_os_read_file(const char *path, char *buf, size_t cap)
{
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t len = -1;
    if (fd >= 0) {
        size_t got = 0;
        ssize_t r;
        while (got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0) got += (size_t)r;
        buf[got] = 0;
        len = (ssize_t)got;
        close(fd);
    }
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

void _ms_os_sleep_us(unsigned us)
{
    int saved = errno;
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
    errno = saved;
}

int _ms_os_tgkill(int pid, int tid, int sig) { return (int)syscall(SYS_tgkill, pid, tid, sig); }

/* Whether the byte at p can be read, without faulting and without a
 * descriptor: process_vm_readv of our own memory fails with EFAULT on an
 * unmapped or unreadable page.  Where a sandbox forbids it (EPERM, ENOSYS),
 * a pipe of memshim's own does the job (write(2) fails with EFAULT just the
 * same), kept high and close-on-exec, and checked to be still ours (the
 * program may close and reuse any number) before every use. */
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
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) { errno = saved; return false; }
        for (int i = 0; i < 2; i++) {
            int high = fcntl(fds[i], F_DUPFD_CLOEXEC, MS_FD_MIN);
            if (high >= 0) { close(fds[i]); fds[i] = high; }
        }
        struct stat st;
        fstat(fds[0], &st);
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

long _ms_os_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    return syscall(nr, a, b, c, d, e, f);
}

/* Make a page of a library's relocation table writable (or read-only again). */
bool _ms_os_protect(void *page, size_t size, bool writable)
{
    int saved = errno;
    bool ok = mprotect(page, size, PROT_READ | (writable ? PROT_WRITE : 0)) == 0;
    errno = saved;
    return ok;
}
