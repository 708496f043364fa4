/* shim.h - prototypes shared between the files of shim/, grouped by the file
 * that defines them.  Everything here is hidden in libmemshim.so. */
#ifndef MS_SHIM_H
#define MS_SHIM_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/single_threaded.h>
#include "types.h"

typedef struct ms_range_s { uintptr_t start, end; } ms_range_t;   /* [start, end) */
/* Whether a falls in one of the n ranges r (unsorted, few). */
static inline bool _ms_in_ranges(uintptr_t a, const ms_range_t *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (a >= r[i].start && a < r[i].end) return true;
    return false;
}

/* ---- prim_linux.c: the only file making raw system calls ---------------- */
MS_HIDDEN void  *_ms_os_map(size_t size);                 /* NULL on failure */
MS_HIDDEN void  *_ms_os_map_aligned(size_t size, size_t align);
MS_HIDDEN void  *_ms_os_map_shared(size_t size);          /* MAP_SHARED: seen by forked children */
MS_HIDDEN void   _ms_os_unmap(void *p, size_t size);
MS_HIDDEN void  *_ms_os_remap(void *p, size_t old_size, size_t new_size); /* may move */
MS_HIDDEN bool   _ms_os_grow(void *p, size_t old_size, size_t new_size);  /* in place, or false */
/* MADV_DONTNEED: true if the pages went back (zero when next touched);
 * false if the kernel refused (pages locked by mlock or mlockall: their
 * contents stay, and nothing may count on zeros there). */
MS_HIDDEN bool   _ms_os_purge(void *p, size_t size);
MS_HIDDEN bool   _ms_os_readable(const void *p, size_t size);
MS_HIDDEN size_t _ms_os_resident(const void *p, size_t size);  /* bytes of its pages in memory */
MS_HIDDEN int    _ms_os_gettid(void);
MS_HIDDEN void   _ms_os_futex_wait(int *addr, int val);
MS_HIDDEN void   _ms_os_futex_wake(int *addr, int n);
MS_HIDDEN long   _ms_os_getdents(int fd, void *buf, size_t n);
MS_HIDDEN int    _ms_os_close(int fd);                  /* the system call: fds.c */
MS_HIDDEN long   _ms_os_close_range(unsigned lo, unsigned hi, unsigned flags);
MS_HIDDEN int    _ms_os_unshare_files(void);            /* unshare(CLONE_FILES) */
MS_HIDDEN long   _ms_os_dup3(int old, int fd, int flags, bool as_dup2);
MS_HIDDEN int    _ms_os_tgkill(int pid, int tid, int sig);
MS_HIDDEN int    _ms_os_sigqueue_self(int sig, siginfo_t *si);   /* rt_tgsigqueueinfo to this thread; errno kept */
MS_HIDDEN int    _ms_os_sigaltstack(const stack_t *ss, stack_t *old);  /* the system call: -1, errno set */
MS_HIDDEN bool   _ms_os_fault_signal(int sig);  /* SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS */
MS_HIDDEN bool     _ms_os_same_vm(int pid);     /* kcmp(KCMP_VM) */
/* The calling thread's nice value lowered to -20 where the process may do
 * so (CAP_SYS_NICE, RLIMIT_NICE), for work the rest of the process waits
 * on; the value to give back to _ms_os_unhurry, or INT_MIN (nothing
 * changed).  errno kept. */
MS_HIDDEN int      _ms_os_hurry(void);
MS_HIDDEN void     _ms_os_unhurry(int nice);
MS_HIDDEN ssize_t  _ms_os_read_status(char *buf, size_t cap);   /* /proc status, for the memory figures */
MS_HIDDEN void     _ms_os_status_keep(void);    /* this thread reads it at every tick: keep it open */
MS_HIDDEN void     _ms_os_status_forget(void);  /* a fork child: not the parent's file */
MS_HIDDEN void     _ms_os_status_prime(void);   /* a fork child: open it now, for the reporter */
MS_HIDDEN ssize_t _ms_os_write(int fd, const void *buf, size_t n);   /* all of it: n, or -errno */
MS_HIDDEN uint64_t _ms_os_now_ns(void);
MS_HIDDEN bool   _ms_os_secure(void);                     /* AT_SECURE: setuid/setgid */
MS_HIDDEN ssize_t _ms_os_read_file(const char *path, char *buf, size_t cap);
/* Whether fd is open on the file (dev, ino): a descriptor of memshim's that
 * the program may have closed and reused for a file of its own.  errno may change. */
MS_HIDDEN bool    _ms_os_same_file(int fd, dev_t dev, ino_t ino);
MS_HIDDEN const char *_ms_os_proc(const char *file, char *buf, size_t cap); /* /proc/thread-self/FILE */
/* The same opened (O_CLOEXEC added), or read whole (process: /proc/self's
 * FILE), also after the program's chroot(2): _ms_os_proc_keep, called just
 * before it, keeps /proc/self open (override.c); a fork child takes its own. */
MS_HIDDEN int      _ms_os_proc_open(const char *file, int flags);
MS_HIDDEN int      _ms_os_self_open(const char *file, int flags);     /* /proc/self/FILE */
MS_HIDDEN ssize_t  _ms_os_read_proc(const char *file, char *buf, size_t cap, bool process);
MS_HIDDEN ssize_t  _ms_os_proc_readlink(const char *file, char *buf, size_t cap);
MS_HIDDEN void     _ms_os_proc_keep(void);
MS_HIDDEN void     _ms_os_proc_fork_child(void);
MS_HIDDEN uint64_t _ms_os_status_kb(const char *status, const char *key);
MS_HIDDEN bool   _ms_os_can_read(const void *p);          /* no fault, no descriptor */
MS_HIDDEN long   _ms_os_syscall6(long nr, long a, long b, long c, long d, long e, long f);
MS_HIDDEN bool   _ms_os_protect(void *page, size_t size, bool writable);
MS_HIDDEN bool   _ms_os_guard(void *page, size_t size);                  /* PROT_NONE */
MS_HIDDEN void   _ms_os_signals_hold(sigset_t *old);      /* all blocked (a thread to start); old mask in *old */
MS_HIDDEN void   _ms_os_signals_restore(const sigset_t *old);
MS_HIDDEN bool   _ms_os_signals_defer(sigset_t *old);     /* all but a fault's (tcache.c); false: not held */
MS_HIDDEN bool   _ms_os_signals_defer_handled(sigset_t *old); /* those with a handler, but a fault's (exit) */

/* ---- init.c: a process under a seccomp filter ------------------------------ *
 * Set when the process installs a seccomp filter (through prctl() or
 * syscall(): override.c) that may kill it at one of memshim's own system
 * calls (init.c runs the filter on them).  memshim then makes none beyond the allocator's (no unwinding by
 * libunwind, which probes memory with mincore; no scan, profile or table
 * at exit, which read /proc, stop threads with ptrace, open files), and
 * says so once. */
MS_HIDDEN extern int _ms_confined;
MS_HIDDEN void   _ms_confine_note(const void *prog);    /* a filter (struct sock_fprog, NULL: strict mode)
                                                          is being installed */
MS_HIDDEN bool   _ms_confined_say(const char *what);     /* confined: one line, once; true */
MS_HIDDEN bool   _ms_filtered(void);                     /* any seccomp filter installed since start */
/* The leak scan's tracer task (park.c): no errno, no thread-local memory;
 * each returns the kernel's result, a negative errno on failure. */
MS_HIDDEN bool   _ms_raw_available(void);                 /* x86-64, aarch64 */
MS_HIDDEN long   _ms_raw_ptrace(long req, int tid, uintptr_t addr, uintptr_t data);
MS_HIDDEN long   _ms_raw_wait(int pid, int *status, int options);
MS_HIDDEN long   _ms_raw_dents(int fd, void *buf, size_t n, bool rewind);
MS_HIDDEN int    _ms_raw_gettid(void);
MS_HIDDEN long   _ms_raw_openat(int dirfd, const char *name);     /* O_RDONLY | O_CLOEXEC */
MS_HIDDEN long   _ms_raw_read(int fd, void *buf, size_t n);
MS_HIDDEN void   _ms_raw_close(int fd);
MS_HIDDEN long   _ms_raw_identity(int fd, dev_t *dev, ino_t *ino); /* 0, or -errno */
MS_HIDDEN long   _ms_raw_futex_wait(int *addr, int val, uint64_t ns);
MS_HIDDEN void   _ms_raw_futex_wake(int *addr);
/* ns nanoseconds' wait (less if a signal comes): a futex wait nobody ends,
 * a system call memshim keeps under a seccomp filter (init.c), where
 * nanosleep may be refused; no cancellation point.  memshim's every sleep. */
MS_HIDDEN void   _ms_raw_nap_ns(uint64_t ns);
MS_HIDDEN uint64_t _ms_raw_now_ns(void);
MS_HIDDEN int    _ms_raw_bind_to_parent(void);            /* PR_SET_PDEATHSIG; the parent's pid */
MS_HIDDEN void   _ms_raw_hurry(void);                     /* nice -20 if allowed (park.c) */
MS_HIDDEN _Noreturn void _ms_raw_exit(int code);
MS_HIDDEN _Noreturn void _ms_raw_exit_group(int code);
/* ... and on the side of the thread that makes it (errno kept). */
MS_HIDDEN int    _ms_os_task_start(int (*fn)(void *), void *stack_top, void *arg);
MS_HIDDEN int    _ms_os_task_reap(int pid, bool block);
MS_HIDDEN void   _ms_os_task_kill(int pid);
MS_HIDDEN void   _ms_os_allow_tracer(int pid);            /* PR_SET_PTRACER (Yama) */
MS_HIDDEN void   _ms_os_futex_wait_ns(int *addr, int val, uint64_t ns);
MS_HIDDEN int    _ms_os_signal_thread(int pid, int tid, int sig, void *value);

/* ---- fds.c: memshim's descriptors, kept from the program's closes ---------- */
#define MS_FD_MIN 100                   /* memshim's descriptors sit at or above */
/* Every descriptor memshim makes is born registered (fds.c): claimed
 * before the system call that makes it, O_CLOEXEC, moved >= MS_FD_MIN. */
typedef struct { int slot[2]; uint64_t word[2]; unsigned n; int tid; bool held; sigset_t old; } ms_birth_t;
MS_HIDDEN void   _ms_fd_birth_begin(ms_birth_t *b, unsigned n);     /* n (1, 2) numbers to come */
MS_HIDDEN void   _ms_fd_born(ms_birth_t *b, int *fds, unsigned n);  /* made (-1: not): now memshim's */
MS_HIDDEN int    _ms_fd_open(int dir, const char *path, int flags, unsigned mode);   /* openat(2), memshim's */
/* fd still the file dev/ino: fd; else -1 (EBADF, forgotten, not closed). */
MS_HIDDEN int    _ms_fd_check(int fd, dev_t dev, ino_t ino);
MS_HIDDEN int    _ms_fd_closedir(DIR *d);               /* a DIR of memshim's (fdopendir) */
MS_HIDDEN FILE  *_ms_fd_stream(int fd);                 /* reads memshim's fd; fclose: _ms_fd_close */
MS_HIDDEN long   _ms_fd_raw_read_at(int dirfd, const char *name, char *buf, size_t cap); /* the tracer's */
MS_HIDDEN bool   _ms_fd_is_path(int fd, const char *path);  /* fd is the file at path */
MS_HIDDEN int    _ms_fd_close(int fd);                  /* memshim's own close of any descriptor */
MS_HIDDEN void   _ms_fd_forget(int fd);                 /* the program's now: out of the registry */
MS_HIDDEN void   _ms_fds_fork_child(void);
MS_HIDDEN void   _ms_fds_resolve(void);                 /* the C library's close, dup2, dup3 (override.c) */
MS_HIDDEN extern int (*_ms_real_dup2)(int, int);
MS_HIDDEN extern int (*_ms_real_dup3)(int, int, int);
/* The program's calls (override.c): no number of memshim's below _ms_fd_low. */
MS_HIDDEN extern int _ms_fd_low;
MS_HIDDEN bool   _ms_fd_claimed(int fd);                /* memshim's now: the program's close says EBADF */
MS_HIDDEN int    _ms_fd_real_close(int fd);
MS_HIDDEN int    _ms_fd_dup(int old, int fd, int flags);    /* flags < 0: dup2 */
MS_HIDDEN int    _ms_fd_close_range(unsigned lo, unsigned hi, unsigned flags);
MS_HIDDEN void   _ms_fd_closefrom(int lo);
/* A vfork (or CLONE_VM) child: memory shared with memshim's process, not
 * its descriptor table (init.c). */
MS_HIDDEN bool   _ms_shares_memory_with_home(void);

/* ---- hook.c: descriptors of memshim's libraries out of the program's way - */
MS_HIDDEN void   _ms_hook_libunwind(void *handle);      /* before its first unwind */
MS_HIDDEN extern __thread int _ms_unw_nomask __attribute__((tls_model("initial-exec")));
MS_HIDDEN bool   _ms_unw_unshared(void);                /* memshim's unwinds may skip libunwind's masking */
MS_HIDDEN void   _ms_unw_opened(const char *file);      /* every dlopen: the program's open of libunwind */
MS_HIDDEN extern __thread int _ms_unw_own __attribute__((tls_model("initial-exec")));   /* memshim's own open */
MS_HIDDEN void   _ms_hook_libdw(void *handle);
MS_HIDDEN int    _ms_hook_dw_open_self(const char *file); /* /proc/self/FILE for libdw, as its own files */
MS_HIDDEN unsigned _ms_hook_maps(ms_range_t *out, unsigned max);  /* what libdw and libelf mapped */
/* The objects from handle's on, opened with RTLD_DEEPBIND: their calls of
 * what memshim interposes, bound to the very definition memshim takes
 * over, go to memshim's (how many entries changed). */
MS_HIDDEN unsigned _ms_hook_deepbind(void *handle);
/* memshim's own exported function of that name (not its API's), or NULL. */
MS_HIDDEN void  *_ms_self_function(const char *name);
MS_HIDDEN void   _ms_hook_init(void);                   /* its table found: _ms_modules_init */

/* ---- segment.c: segments, pages, the ownership bitmap ------------------ */
MS_HIDDEN void           _ms_segment_init(void);
MS_HIDDEN ms_page_t     *_ms_page_alloc(unsigned npages, uint8_t cls); /* segment lock inside */
MS_HIDDEN void           _ms_page_free(ms_page_t *pg);
MS_HIDDEN bool           _ms_segment_mine(void);   /* this thread holds the segments' lock */
MS_HIDDEN bool           _ms_segment_purge_all(void);   /* anything given back */
MS_HIDDEN void           _ms_segment_decay(uint64_t now_ns); /* purge what was dirty too long */
MS_HIDDEN void           _ms_segment_each_span_locked(void (*fn)(void *arg, ms_page_t *pg), void *arg);

/* ---- check.c: invariants (always-on asserts; the debug tier's heap walk) -- */
MS_HIDDEN void _ms_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn, cold));
#define ms_assert(c) (MS_LIKELY(c) ? (void)0 : _ms_assert_fail(#c, __FILE__, __LINE__))
typedef void (*ms_check_fail_fn)(const char *what, const void *where, unsigned n);
MS_HIDDEN void _ms_heap_check_locked(void);           /* every allocator lock held; aborts */
MS_HIDDEN void _ms_segment_check_locked(ms_check_fail_fn fail);
MS_HIDDEN void _ms_huge_check_locked(ms_check_fail_fn fail);
MS_HIDDEN void _ms_central_check_locked(const uint64_t spans[MS_NCLASSES], const uint64_t free_blocks[MS_NCLASSES],
                                        ms_check_fail_fn fail);
#ifndef MS_DEBUG
#define MS_DEBUG 0
#endif
MS_HIDDEN void           _ms_segment_lock(void);
MS_HIDDEN void           _ms_segment_unlock(bool child);
typedef struct ms_segment_stat_s {
    uint64_t segments, mapped, mapped_total, unmapped_total, dirty, free_pages_bytes;
} ms_segment_stat_t;
MS_HIDDEN void           _ms_segment_stats(ms_segment_stat_t *out);
MS_HIDDEN extern uint64_t *_ms_seg_bitmap;

/* Bytes out of the central lists and huge blocks live (thread caches
 * included), and their high-water mark: updated off the fast path only. */
MS_HIDDEN extern uint64_t _ms_heap_out, _ms_heap_peak;
static inline void _ms_heap_account(int64_t delta)
{
    uint64_t now = __atomic_add_fetch(&_ms_heap_out, (uint64_t)delta, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&_ms_heap_peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&_ms_heap_peak, &peak, now, true,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static inline ms_segment_t *_ms_segment_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (MS_UNLIKELY(a >> MS_ADDR_BITS)) return NULL;
    uintptr_t idx = a >> MS_SEGMENT_SHIFT;
    if (!(__atomic_load_n(&_ms_seg_bitmap[idx >> 6], __ATOMIC_RELAXED) >> (idx & 63) & 1))
        return NULL;
    /* No segment lies at address 0 (the kernel maps nothing there unasked):
     * told so, the compiler drops a caller's second test for NULL. */
    if (!(a & ~(uintptr_t)MS_SEGMENT_MASK)) __builtin_unreachable();
    return (ms_segment_t *)(a & ~(uintptr_t)MS_SEGMENT_MASK);
}
static inline unsigned _ms_page_index(const ms_segment_t *s, const void *p)
{
    return (unsigned)(((uintptr_t)p - (uintptr_t)s) >> MS_PAGE_SHIFT);
}
static inline ms_page_t *_ms_page_of(ms_segment_t *s, const void *p)
{
    return &s->pages[s->span_head[_ms_page_index(s, p)]];
}

/* ---- the allocator's locks ------------------------------------------------ *
 * Taken and released through these, which count what the thread holds: a
 * signal handler that allocates while its thread holds one is given no
 * stack (unwind.c, _ms_capture_miss), since a fork in another thread,
 * taking every lock, may hold the loader guard the unwinding needs while
 * it waits for this one.
 *
 * They also keep which locks the thread holds (up to MS_HELD_SLOTS; more,
 * as when fork takes them all, count as holding every one), from before the
 * wait until after the release.  A handler's allocation that needs a lock
 * its own thread holds would wait for ever (its thread refilling the very
 * class, getting a span, growing a table; glibc corrupts its heap there):
 * where there is another way, _ms_lock_unless_mine says so and the handler
 * takes it -- a larger class (its thread refilling the class, or taking
 * a span), no memory, a block kept instead of given back. */
#define MS_HELD_SLOTS 6
typedef struct ms_held_s {
    pthread_mutex_t *at[MS_HELD_SLOTS];
    int              beyond;                 /* held and not in a slot */
} ms_held_t;
MS_HIDDEN extern __thread int _ms_held __attribute__((tls_model("initial-exec")));
MS_HIDDEN extern __thread ms_held_t _ms_held_set __attribute__((tls_model("initial-exec")));
/* m counted as held by this thread, from before its wait (symbolize.c's
 * timed lock too), and no longer, after its release (pool.c: out of line,
 * each lock's code stays small). */
MS_HIDDEN void _ms_held_add(pthread_mutex_t *m);
MS_HIDDEN void _ms_held_drop(pthread_mutex_t *m);
static inline void _ms_lock(pthread_mutex_t *m)
{
    _ms_held_add(m);
    pthread_mutex_lock(m);
}
static inline void _ms_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
    _ms_held_drop(m);
}
/* Whether this thread holds m (or is waiting for it). */
MS_HIDDEN bool _ms_held_has(const pthread_mutex_t *m);
static inline bool _ms_lock_mine(const pthread_mutex_t *m)
{
    return MS_UNLIKELY(_ms_held != 0) && _ms_held_has(m);
}
/* m, unless this thread holds it already (false: not taken). */
static inline bool _ms_lock_unless_mine(pthread_mutex_t *m)
{
    if (_ms_lock_mine(m)) return false;
    _ms_lock(m);
    return true;
}
/* The thread holds none of them (fork's child, init.c). */
static inline void _ms_held_forget(void)
{
    _ms_held = 0;
    _ms_held_set = (ms_held_t){ .beyond = 0 };
}

/* ---- pool.c: size classes and the central lists ------------------------- */
typedef struct ms_class_s {
    uint32_t size;        /* block size */
    uint16_t npages;      /* pages per span */
    uint16_t limit;       /* thread cache limit (blocks) */
    uint16_t batch;       /* blocks moved per refill/flush */
    uint16_t xfer_max;    /* whole batches its central list parks at most (pool.c; 0: no thread caches) */
    uint32_t capacity;    /* blocks per span */
    uint64_t recip;       /* ceil(2^MS_RECIP_SHIFT / size): offset -> block index */
} ms_class_t;
#define MS_RECIP_SHIFT 42     /* exact for every offset in a span (< 2^20) and size */

MS_HIDDEN extern ms_class_t _ms_classes[MS_NCLASSES];

/* The block of class k holding byte `off` of its span: a multiply, not a
 * division.  The one place the span arithmetic is written. */
static inline uint64_t _ms_block_index(const ms_class_t *k, uint64_t off)
{
    return (off * k->recip) >> MS_RECIP_SHIFT;
}

/* Where p falls in segment s: its span, class and block (p may point into
 * the block's middle: off - idx * size bytes in).  False for the header
 * page and free pages. */
typedef struct { ms_page_t *pg; const ms_class_t *k; unsigned cls; uint64_t off, idx; } ms_where_t;
static inline bool _ms_where(ms_segment_t *s, const void *p, ms_where_t *w)
{
    unsigned i = _ms_page_index(s, p);
    uint8_t cls = __atomic_load_n(&s->page_class[i], __ATOMIC_ACQUIRE);
    if (i == 0 || cls == MS_CLASS_NONE) return false;
    w->cls = cls;
    w->pg = &s->pages[s->span_head[i]];
    w->k = &_ms_classes[cls];
    w->off = (uint64_t)((const uint8_t *)p - w->pg->start);
    w->idx = _ms_block_index(w->k, w->off);
    return true;
}
MS_HIDDEN extern uint8_t    _ms_small_class[MS_SMALL_TABLE_MAX / MS_ALIGN + 1];
MS_HIDDEN void     _ms_classes_init(void);
MS_HIDDEN unsigned _ms_class_of(size_t n);              /* n <= MS_MAX_SMALL */
/* Up to `want` blocks of class cls, linked; the spans they come from are
 * marked as `owner`'s (ms_page_t.owner, a thread cache's id). */
MS_HIDDEN unsigned _ms_central_take(unsigned cls, ms_block_t **head, ms_block_t **tail, unsigned want,
                                    uint32_t owner);
/* The first n blocks of the chain at head back to the central list (whole
 * batches parked, the rest to their spans); the rest of the chain (NULL: it
 * ended, or was cut at a link written after free). */
MS_HIDDEN ms_block_t *_ms_central_give(unsigned cls, ms_block_t *head, unsigned n);
/* A chain of n blocks of span pg, head to tail, handed out and held by the
 * caller since, its links sound: onto the span's free list in one go. */
MS_HIDDEN void _ms_span_give(ms_page_t *pg, ms_block_t *head, ms_block_t *tail, unsigned n);
MS_HIDDEN void     _ms_central_drain(void);             /* parked batches to their spans */
MS_HIDDEN bool     _ms_central_mine(unsigned cls);      /* this thread holds the class's lock */
MS_HIDDEN void     _ms_central_look(uint64_t now_ns);   /* ... those no thread took lately (tcache.c) */
MS_HIDDEN void     _ms_central_lock_all(void);
MS_HIDDEN void     _ms_central_unlock_all(bool child);
MS_HIDDEN bool     _ms_block_valid(ms_segment_t *s, const void *p, unsigned *cls_out);
MS_HIDDEN bool     _ms_central_holds(unsigned cls, const void *p);
/* Free-list links the program may have overwritten (a write after free):
 * checked while tracking, wherever a list is walked.  A bad link is cut,
 * the block noted, and reported at the next safe point (leak.c). */
MS_HIDDEN extern uintptr_t _ms_free_key;
MS_HIDDEN void     _ms_corrupt_note(const void *blk);
MS_HIDDEN extern int _ms_corrupt_pending;
MS_HIDDEN void     _ms_corrupt_report(void);

typedef struct ms_class_stat_s {
    uint64_t spans;        /* spans (pools) in use */
    uint64_t capacity;     /* blocks those spans hold */
    uint64_t central_free; /* blocks free in the central lists (parked ones included) */
    uint64_t parked;       /* of which in parked batches */
} ms_class_stat_t;
MS_HIDDEN void _ms_central_stats(ms_class_stat_t out[MS_NCLASSES]);

static inline unsigned _ms_class_fast(size_t n)
{
    return n <= MS_SMALL_TABLE_MAX ? _ms_small_class[(n + MS_ALIGN - 1) / MS_ALIGN]
                                   : _ms_class_of(n);
}

/* Whether b->next is a plausible free-list link for class cls: NULL, or
 * 16-aligned in one of memshim's segments, on a page of that class -- what
 * it takes for following it to be safe.  The program's bytes almost never
 * pass (a bitmap bit, a class byte); another free block's address would,
 * and is then merely handed out again. */
static inline bool _ms_link_ok(const ms_block_t *b, unsigned cls)
{
    const ms_block_t *n = b->next;
    if (!n) return true;
    ms_segment_t *s = _ms_segment_of(n);
    if (!s || ((uintptr_t)n & (MS_ALIGN - 1))) return false;
    unsigned i = _ms_page_index(s, n);
    return i != 0 && s->page_class[i] == cls;
}

/* While tracking, more than _ms_link_ok: the link `next`, read from block
 * `from`, must also start a block of its span handed out before, whose
 * record says it is not live, and not be `from` itself.  A write after
 * free that aimed a freed block's first word at a live block (a list's
 * next pointer written through a stale pointer) had that block handed out
 * to a second owner, and a block pointing at itself was handed out twice
 * (found by a helper writing memcheck's misuse scenarios anew).  The record read is the next
 * allocation's, which needs its line anyway.  Checked as a thread's list
 * hands a block out (the new head); walks of the central lists check only
 * _ms_link_ok, what it takes to follow a link safely: a record per block
 * walked cost bench `simple`, tracked, 14% more instructions.  The place
 * is worked out here, not by _ms_where: its acquire load and the fields it
 * fills cost churn, tracked, 5,672 -> 5,787 instructions a round. */
static inline bool _ms_link_sound(const ms_block_t *next, const void *from, unsigned cls)
{
    if (!next) return true;
    ms_segment_t *s = _ms_segment_of(next);
    if (!s || ((uintptr_t)next & (MS_ALIGN - 1)) || next == from) return false;
    unsigned i = _ms_page_index(s, next);
    if (i == 0 || s->page_class[i] != cls) return false;
    const ms_page_t *pg = &s->pages[s->span_head[i]];
    const ms_class_t *k = &_ms_classes[cls];
    uint64_t off = (uint64_t)((uintptr_t)next - (uintptr_t)pg->start);
    uint64_t idx = _ms_block_index(k, off);
    if (idx * k->size != off || idx >= __atomic_load_n(&pg->carved, __ATOMIC_RELAXED)) return false;
    const ms_meta_t *m = pg->meta;
    return !m || m[idx].state != MS_BLK_LIVE;
}

/* While tracking: whether bin b's head, just taken over from block `from`,
 * is sound -- a sound link, or the list's end where the bin counts none
 * left.  A zero written over a link (a stale `p->next = NULL`, a memset of
 * a freed block) ended the list early, and the blocks past it were lost to
 * reuse unreported.  The list's end is taken for a zero only where the bin
 * counts more than one block: a signal handler's pop in the middle of its
 * thread's (head moved, count not yet) finds the count one over. */
static inline bool _ms_bin_sound(const ms_bin_t *b, const void *from, unsigned cls)
{
    return b->head ? _ms_link_sound(b->head, from, cls) : b->count <= 1;
}

/* ---- huge.c: requests above MS_MAX_SMALL -------------------------------- */
MS_HIDDEN void   *_ms_huge_alloc(size_t n, size_t align, bool zero);
MS_HIDDEN bool    _ms_huge_free(void *p);                 /* false: not a huge block */
MS_HIDDEN size_t  _ms_huge_usable(const void *p);         /* 0: not a huge block */
MS_HIDDEN void   *_ms_huge_realloc(void *p, size_t n);    /* NULL with errno on failure */
MS_HIDDEN bool    _ms_huge_stays(const void *p, size_t n);  /* _ms_huge_realloc would leave it be */
/* realloc to n of a block of `have` bytes leaves it as it is: n fits, and
 * leaves no more than half of it unused, or it is of the smallest class
 * (alloc.c for the pools, huge.c for huge blocks).  A realloc to the same
 * size of 1 to 7 bytes (1 to 6 tracked: its byte more) moved, where glibc's
 * stays (its tst-realloc, written anew by a helper). */
static inline bool _ms_realloc_fits(size_t n, size_t have)
{
    return n <= have && (n >= have / 2 || have <= MS_ALIGN);   /* the smallest: no smaller to go to */
}
MS_HIDDEN bool    _ms_huge_trim(void);             /* anything unmapped */
MS_HIDDEN bool    _ms_huge_recently_freed(const void *p, ms_meta_t *m);   /* m: its record then */
MS_HIDDEN bool    _ms_huge_containing(const void *p, uintptr_t *start, size_t *req, ms_meta_t *m);
MS_HIDDEN bool    _ms_huge_set_meta(const void *p, const ms_meta_t *m, size_t req);
MS_HIDDEN bool    _ms_huge_get_meta(const void *p, ms_meta_t *m, size_t *req);
MS_HIDDEN void    _ms_huge_flag(const void *p, unsigned flags);
MS_HIDDEN void    _ms_huge_decay(uint64_t now_ns);         /* unmap what was cached too long */
MS_HIDDEN size_t  _ms_huge_cached_locked(ms_range_t *out, size_t max);
MS_HIDDEN void    _ms_huge_each_locked(void (*fn)(void *arg, uintptr_t addr, size_t map,
                                                  size_t req, const ms_meta_t *m), void *arg);
MS_HIDDEN void    _ms_huge_lock(void);
MS_HIDDEN void    _ms_huge_unlock(bool child);
MS_HIDDEN bool    _ms_huge_mine(void);     /* this thread holds the large blocks' lock */
typedef struct ms_huge_stat_s { uint64_t blocks, bytes, mapped, cached; } ms_huge_stat_t;
MS_HIDDEN void    _ms_huge_stats(ms_huge_stat_t *out);

/* ---- tcache.c: per-thread caches --------------------------------------- */
/* A thread's bins are changed by that thread alone, without a lock, and
 * a signal handler that allocates may run in the middle of a change.  The
 * handler's change of the bin its thread was changing is the program's
 * business (glibc's tcache is no safer); memshim's own changes of every
 * bin, the look below and malloc_trim's flush, must not come in the
 * middle of another.  (A look in a handler allocating 40-byte blocks, in
 * the middle of its thread's pop of a 200-byte block, gave that block out
 * twice; one in the thread, in the middle of the handler's pop, crashed
 * it.)  So:
 *   - the slow paths make their changes between _ms_bins_enter and
 *     _ms_bins_leave, which count the changes in progress on the thread
 *     (in_bins); the look and the trim wait for a count of 0, and hold
 *     signals off while they work (_ms_os_signals_defer);
 *   - the inline pop and push cost nothing more: each counts itself in
 *     the bin's allocs or frees before it reads the bin, and the look
 *     halves another bin than its own only if that bin's count has not
 *     moved since the last look (a thread that was in the middle of a pop
 *     or push of it has moved it; one that had not begun has read
 *     nothing yet).  A counter on every pop and push cost 6 instructions
 *     a pair of the 114 (larson 4% slower).
 * The thread's cache and the count are side by side: one address of
 * thread storage for both. */
typedef struct ms_thread_s {
    ms_tcache_t *tc;
    int          in_bins;
} ms_thread_t;
MS_HIDDEN extern __thread ms_thread_t _ms_thread __attribute__((tls_model("initial-exec")));
static inline __attribute__((always_inline)) void _ms_bins_enter(void)
{
    _ms_thread.in_bins++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline __attribute__((always_inline)) void _ms_bins_leave(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    _ms_thread.in_bins--;
}
MS_HIDDEN ms_tcache_t *_ms_tcache_get(void);            /* creates on first use */
MS_HIDDEN void  *_ms_tcache_refill(ms_tcache_t *tc, unsigned cls);
MS_HIDDEN bool   _ms_tcache_push_under(ms_tcache_t *tc, unsigned cls, void *p);
/* Whether tc's bin of class cls takes blocks: a live thread's cache, a
 * class of at most MS_TCACHE_MAX. */
MS_HIDDEN bool   _ms_tcache_caches(const ms_tcache_t *tc, unsigned cls);
MS_HIDDEN void   _ms_tcache_flush(ms_tcache_t *tc, unsigned cls, unsigned keep);
MS_HIDDEN void   _ms_tcache_init(void);
MS_HIDDEN void   _ms_tcache_lock(void);
MS_HIDDEN void   _ms_tcache_unlock(bool child);
MS_HIDDEN void   _ms_tcache_flush_current(void);        /* malloc_trim */
MS_HIDDEN bool   _ms_tcache_left_holds(unsigned cls, const void *p);  /* in a cache a thread gone left */
MS_HIDDEN void   _ms_tcache_free_direct(void *p, unsigned cls);   /* no cache: central */
MS_HIDDEN void   _ms_tcache_count_frees(unsigned cls, unsigned n);  /* freed past the cache (statistics) */
MS_HIDDEN void   _ms_tcache_check_pop(const void *p, unsigned cls);
typedef struct ms_thread_stat_s { uint64_t allocs, frees, cached; } ms_thread_stat_t;
MS_HIDDEN void   _ms_tcache_stats(ms_thread_stat_t out[MS_NCLASSES], unsigned *threads);

/* ---- alloc.c: the allocation family behind override.c ------------------ */
MS_HIDDEN void  *_ms_malloc(size_t n);
MS_HIDDEN void   _ms_free(void *p);
MS_HIDDEN void  *_ms_calloc(size_t n, size_t m);
MS_HIDDEN void  *_ms_realloc(void *p, size_t n);
MS_HIDDEN bool   _ms_realloc_huge_stays(const void *p, size_t n);   /* realloc(p, n) of a huge block would only return p */
MS_HIDDEN void  *_ms_reallocarray(void *p, size_t n, size_t m);
MS_HIDDEN int    _ms_posix_memalign(void **out, size_t align, size_t n);
MS_HIDDEN void  *_ms_aligned_alloc(size_t align, size_t n);
MS_HIDDEN void  *_ms_memalign(size_t align, size_t n);
MS_HIDDEN void  *_ms_valloc(size_t n);
MS_HIDDEN void  *_ms_pvalloc(size_t n);
MS_HIDDEN size_t _ms_pvalloc_size(size_t n);           /* its pages; 0: too big */
MS_HIDDEN void  *_ms_new(size_t n, size_t align);        /* operator new's memory */
MS_HIDDEN size_t _ms_usable_size(const void *p);
MS_HIDDEN int    _ms_trim(size_t pad);
MS_HIDDEN bool   _ms_owns(const void *p);

/* The inline fast paths, for alloc.c and track.c. */
MS_HIDDEN void  *_ms_malloc_slow(size_t n);             /* all that _ms_pop declines */
/* Every MS_LOOK_EVERY allocations from one of its bins, a thread looks at
 * what it keeps for nothing (tcache.c): the fast path declines that
 * allocation and the slow one looks, so that a program living on its
 * caches still gives back what a past peak left. */
#define MS_LOOK_EVERY ((uint64_t)1 << 16)
MS_HIDDEN void   _ms_tcache_look(ms_tcache_t *tc, unsigned cls);   /* bin cls's turn; at most every
                                                                   * _ms_look_interval_ns() */

/* The fast path: the head of the request's bin.  `tracked`: the block's
 * link, the bin's next head, must be sound (a write after free is caught
 * here, where the link is at hand), and the link is cleared too -- a stale
 * pointer to another free block that the leak scan would take for an edge. */
static inline __attribute__((always_inline)) void *_ms_pop(size_t n, bool tracked)
{
    ms_tcache_t *tc = _ms_thread.tc;
    if (MS_LIKELY(tc != NULL && n <= MS_SMALL_TABLE_MAX)) {
        unsigned cls = _ms_small_class[(n + MS_ALIGN - 1) / MS_ALIGN];
        ms_bin_t *b = &tc->bins[cls];
        uint64_t allocs = b->allocs + 1;
        if (MS_LIKELY(allocs & (MS_LOOK_EVERY - 1))) {      /* else the slow path looks */
            b->allocs = allocs;                            /* counted first (above) */
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            ms_block_t *blk = b->head;
            if (MS_LIKELY(blk != NULL)) {
                b->head = blk->next;
                b->count--;
                if (tracked && MS_UNLIKELY(!_ms_bin_sound(b, blk, cls))) _ms_tcache_check_pop(blk, cls);
                if (tracked) ((uintptr_t *)blk)[0] = 0;
                ((uintptr_t *)blk)[1] = 0;
                return blk;
            }
            b->allocs = allocs - 1;                        /* the slow path counts it */
        }
    }
    return NULL;
}

MS_HIDDEN void   _ms_free_slow(void *p, ms_segment_t *s); /* all the inline free declines */

/* p on the bin's free list, carrying the free key (a later free of p sees
 * it and looks for a double free). */
static inline __attribute__((always_inline)) void _ms_bin_push(ms_bin_t *b, void *p)
{
    uintptr_t key = _ms_free_key;         /* read before the stores, which might alias it */
    b->frees++;                           /* counted first (_ms_thread above) */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    ((ms_block_t *)p)->next = b->head;
    ((uintptr_t *)p)[1] = key;
    b->head = p;
    b->count++;
}

/* The fast path of a free once p is known to start a block that was handed
 * out: into this thread's cache unless something says otherwise (a full
 * bin, or one never filled: limit 0, the slow path looks whose p is first,
 * tcache.c's _ms_tcache_push_under; the free key of a block already free;
 * a span holding a block of the sampled profiler: sample.c, never while
 * tracking). */
static inline __attribute__((always_inline))
bool _ms_free_push(void *p, ms_tcache_t *tc, unsigned cls, const ms_page_t *pg)
{
    ms_bin_t *b = &tc->bins[cls];
    if (MS_LIKELY(b->count < b->limit && ((uintptr_t *)p)[1] != _ms_free_key &&
                  !__atomic_load_n(&pg->sampled, __ATOMIC_RELAXED))) {
        _ms_bin_push(b, p);
        return true;
    }
    return false;
}

/* ---- badptr.c: pointers that are no live block of memshim's --------------- */
/* Report p as heap misuse (WHAT: "free(): invalid pointer") if it is certainly
 * no block of anyone's, and return true; false if another allocator (the
 * dynamic loader's early blocks) may have handed it out. */
MS_HIDDEN bool   _ms_bad_pointer(const char *what, const void *p);

/* ---- track.c, unwind.c, stacks.c: per-block records and allocation stacks */
MS_HIDDEN extern int _ms_track_on;
/* While tracking: false, with the link cut and the block noted, when the
 * program overwrote b's link (write after free); true otherwise. */
static inline bool _ms_link_checked(ms_block_t *b, unsigned cls)
{
    if (!_ms_track_on || _ms_link_ok(b, cls)) return true;
    _ms_corrupt_note(b);
    b->next = NULL;
    return false;
}
/* Whether p is among the first `max` blocks of free list b of class cls,
 * which is walked only as far as its links are sound while tracking: a
 * double free's sighting (alloc.c, pool.c, tcache.c). */
static inline bool _ms_chain_holds(const ms_block_t *b, const void *p, unsigned cls, unsigned max)
{
    for (unsigned n = 0; b && n < max; b = b->next, n++) {
        if (b == p) return true;
        if (_ms_track_on && !_ms_link_ok(b, cls)) break;
    }
    return false;
}
MS_HIDDEN extern __thread int _ms_busy __attribute__((tls_model("initial-exec")));
MS_HIDDEN ms_meta_t *_ms_meta_of(const void *p);
MS_HIDDEN size_t _ms_tracked_usable_size(const void *p);   /* the bytes asked for */
typedef struct ms_site_s { uintptr_t ra, sp; } ms_site_t;   /* where the program called us */
/* The site of the call to the function this is written in: the return
 * address, and the caller's stack pointer at the call (the frame address
 * past the saved frame pointer and the return address). */
#define MS_CALLER_SITE (&(ms_site_t){ (uintptr_t)__builtin_return_address(0), \
                                      (uintptr_t)__builtin_frame_address(0) + 16 })

/* unwind.c's per-thread stack cache, whose hit path is inlined into every
 * tracked allocation and free.  The cache is set-associative: a site
 * (return address and stack pointer) may be in any of its set's
 * MS_SC_WAYS entries.  Two hot sites that hash alike each keep an entry
 * instead of evicting each other at every call; the least recently used
 * entry of the set makes room.  A site reached through several chains of
 * callers (a wrapper such as xmalloc, or cfrac's palloc, called from many
 * places at the same depth) keeps its first chain in its own set and the
 * others in second sets chosen by their caller (_ms_sc_set2): a tracked
 * cfrac missed the cache at 43% of its allocations and 33% of its frees
 * with the site's four ways alone, 20% and 11% now.  The stack pointer is
 * part of the key although a chain's slots are kept relative to it (the
 * same chain met deeper in a recursion would check as well): keyed by
 * return address alone, cfrac's chains through one site at different
 * depths pushed each other out, and its misses went from 6.1 M to 34.2 M
 * (espresso's stayed at 30 M); four times the entries took espresso's
 * from 30.2 M to 24.1 M, for 100 KiB more a thread. */
#define MS_SC_BITS    7                /* 2^bits entries */
#define MS_SC_ENTRIES (1u << MS_SC_BITS)
#define MS_SC_WAYS    4
#define MS_SC_DEPTH   24               /* deeper stacks are not cached */
typedef struct ms_sc_ent_s {
    uintptr_t ra, sp;
    uint32_t  id;
    uint16_t  depth;
    uint16_t  fails;                   /* misses at this very site since it was new */
    unsigned  epoch;                   /* _ms_module_epoch when cached */
    uint32_t  used;                    /* the cache's clock at the last hit or fill */
    uint16_t  off[MS_SC_DEPTH];        /* slot of frame i, in words above sp */
    uintptr_t want[MS_SC_DEPTH];       /* the return address expected there */
} ms_sc_ent_t;
#define MS_SC_FRAMES 512              /* the thread's frame sizes at hand (unwind.c) */
#define MS_SC_KNOWN  1024             /* stacks the thread's walks found lately (unwind.c) */
typedef struct ms_sc_known_s {
    uint64_t hash;                    /* a stored stack's (_ms_stack_find), 0: none */
    uint64_t id;
} ms_sc_known_t;
typedef struct ms_stack_cache_s {
    ms_sc_ent_t e[MS_SC_ENTRIES];
    uint64_t    frames[MS_SC_FRAMES];
    ms_sc_known_t known[MS_SC_KNOWN];
    uintptr_t   lo, top;               /* the thread's own stack: a call site below lo
                                        * (on a sigaltstack) is never cached */
    uint32_t    clock;                 /* counts hits and fills: the ways' age */
    uint32_t    probing;               /* the thread is reading its entries (_ms_capture_or):
                                        * a signal handler's miss then fills none */
} ms_stack_cache_t;
#define MS_SC_DEAD ((ms_stack_cache_t *)1)  /* _ms_sc of a thread past its end: no cache */
MS_HIDDEN extern __thread ms_stack_cache_t *_ms_sc __attribute__((tls_model("initial-exec")));
MS_HIDDEN extern unsigned _ms_module_epoch;             /* bumped when a module is unloaded (modules.c) */
MS_HIDDEN uint32_t _ms_capture_miss(const ms_site_t *site);

/* The first entry of the site's set. */
static inline ms_sc_ent_t *_ms_sc_set(ms_stack_cache_t *c, uintptr_t ra, uintptr_t sp)
{
    return &c->e[(size_t)(((ra ^ (sp << 7)) * 0x9E3779B97F4A7C15ULL) >> (64 - MS_SC_BITS)) & (MS_SC_ENTRIES - MS_SC_WAYS)];
}

/* Whether the call at `site` was made on the thread's own stack (not on a
 * sigaltstack below it): only then is its stack cached or walked, the
 * words between its stack pointer and the top being the thread's. */
static inline bool _ms_sc_covers(const ms_stack_cache_t *c, const ms_site_t *site)
{
    return site->sp >= c->lo && site->sp < c->top;
}

MS_HIDDEN uint32_t _ms_capture_miss_release(const ms_site_t *site);
MS_HIDDEN bool _ms_loader_code(uintptr_t a);            /* in the dynamic loader's code? */
MS_HIDDEN bool _ms_libc_code(uintptr_t a);              /* in the C library's code? */
/* While set, stacks are not unwound by libunwind (the loader's calls that
 * may be updating the thread's dynamic TLS: unwind.c). */
MS_HIDDEN extern __thread int _ms_no_unwind __attribute__((tls_model("initial-exec")));
/* dl_iterate_phdr for memshim's own calls, and the program's (override.c),
 * counted: while one runs, no stack is unwound by libunwind (unwind.c). */
struct dl_phdr_info;
MS_HIDDEN int _ms_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg);
MS_HIDDEN int _ms_program_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg);
MS_HIDDEN bool _ms_program_iterating(void);   /* a thread of the program is inside one */
MS_HIDDEN bool _ms_tsd_array_site(uintptr_t ra);   /* ra in glibc's pthread_setspecific */
MS_HIDDEN bool _ms_tsearch_code(uintptr_t a);       /* a in glibc's tsearch */

/* Whether each slot of e's chain (frames 1 to depth-1) still holds its
 * return address, the stack's words being at sp.  Every slot lies between
 * sp and the thread's stack top (the thread found the chain there from
 * this very sp; a cache handed on from a thread gone keeps only the
 * chains that fit below the new thread's top: unwind.c, cache_make), so
 * all may be read, a few past a first difference too.  Four frames are
 * compared at a time, their differences or'ed into one test, the last
 * four of a chain whose length is no multiple of four overlapping the
 * four before them: the probe of a 16-frame chain was 7 instructions a
 * frame, a third of a tracked sqlite3's added instructions. */
static inline __attribute__((always_inline)) bool _ms_sc_chain_holds(const ms_sc_ent_t *e, uintptr_t sp)
{
#define MS_SC_DIFF(j) (*(const uintptr_t *)(sp + (uintptr_t)e->off[j] * 8) ^ e->want[j])
#define MS_SC_DIFF4(j) (MS_SC_DIFF(j) | MS_SC_DIFF((j) + 1) | MS_SC_DIFF((j) + 2) | MS_SC_DIFF((j) + 3))
    unsigned n = e->depth;
    if (MS_LIKELY(n >= 5)) {                 /* the last four again, not one by one */
        for (unsigned i = 1; i + 4 < n; i += 4)
            if (MS_SC_DIFF4(i)) return false;
        return !MS_SC_DIFF4(n - 4);
    }
    for (unsigned i = 1; i < n; i++)
        if (MS_SC_DIFF(i)) return false;
    return true;
#undef MS_SC_DIFF4
#undef MS_SC_DIFF
}

/* The id of the chain cached in `set` for the call at `site`, if each slot
 * of it still holds its return address (unwinding would walk the same
 * chain), else 0: the site's own set, then its second set, that of its
 * chains through one caller (_ms_sc_second).  Only the thread writes its
 * entries, and never while it reads them: a signal handler that allocates
 * in the middle of a probe leaves the cache alone (c->probing, unwind.c's
 * capture_miss).  An entry the handler filled there held its own chain,
 * whose offsets count from the handler's stack pointer, far below the
 * probe's: read from the probe's, they reached past the top of the stack
 * (a 20 kHz timer's handler allocating while its thread allocated from
 * deep call chains: 4 crashes in 120 runs). */
static inline __attribute__((always_inline))
uint32_t _ms_sc_probe(ms_stack_cache_t *c, ms_sc_ent_t *e, const ms_site_t *site)
{
    for (unsigned w = 0; w < MS_SC_WAYS; w++, e++) {
        if (e->ra != site->ra || e->sp != site->sp || !e->id ||
            e->epoch != __atomic_load_n(&_ms_module_epoch, __ATOMIC_RELAXED))
            continue;
        if (_ms_sc_chain_holds(e, site->sp)) { e->used = ++c->clock; return e->id; }
    }
    return 0;
}

/* The learnt frame sizes (unwind.c), the thread's copy: the entry of
 * return address ra, (ra << 16 | words from its slot to the next return
 * address's slot, or MS_FRAME_END: the outermost), in its slot here. */
#define MS_FRAME_END 0xffffu
static inline unsigned _ms_sc_frame_slot(uintptr_t ra) { return (unsigned)(ra ^ ra >> 9) & (MS_SC_FRAMES - 1); }
static inline bool _ms_frame_of(uint64_t v, uintptr_t ra) { return !((v ^ (uint64_t)ra << 16) >> 16); }

/* A site's second set: where its chains through the caller's return
 * address ra2 are cached when its own set holds another chain of it
 * (unwind.c, capture_miss): a site called from many places, as an
 * allocator's wrapper is, keeps their chains spread over the cache. */
static inline ms_sc_ent_t *_ms_sc_set2(ms_stack_cache_t *c, const ms_site_t *site, uintptr_t ra2)
{
    return _ms_sc_set(c, site->ra ^ (ra2 << 13 | ra2 >> 51), site->sp);
}

/* The id of a chain of the call at `site` cached in its second set, or 0:
 * the caller's return address read where the frame size the thread has
 * at hand for the site's function puts it. */
static inline __attribute__((always_inline))
uint32_t _ms_sc_second(ms_stack_cache_t *c, const ms_site_t *site)
{
    uint64_t v = c->frames[_ms_sc_frame_slot(site->ra)];
    unsigned g = (unsigned)(v & 0xffff);
    if (!_ms_frame_of(v, site->ra) || g - 1 >= MS_FRAME_END - 1) return 0;
    uintptr_t at = site->sp - 8 + (uintptr_t)g * 8;
    if (at > c->top - 8) return 0;
    return _ms_sc_probe(c, _ms_sc_set2(c, site, *(const uintptr_t *)at), site);
}

/* The stack id of the program's call at `site`: from the cache when each
 * slot of a cached chain still holds its return address (unwinding would
 * walk the same chain), else from `miss` (unwind.c). */
static inline __attribute__((always_inline))
uint32_t _ms_capture_or(const ms_site_t *site, uint32_t (*miss)(const ms_site_t *))
{
    ms_stack_cache_t *c = _ms_sc;
    if (MS_LIKELY((uintptr_t)c > (uintptr_t)MS_SC_DEAD) && _ms_sc_covers(c, site)) {
        /* A handler's probe adds one and takes it away: the count is the
         * same after it, however the add is compiled. */
        c->probing++;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        uint32_t id = _ms_sc_probe(c, _ms_sc_set(c, site->ra, site->sp), site);
        if (!id) id = _ms_sc_second(c, site);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        c->probing--;
        if (MS_LIKELY(id != 0)) return id;
    }
    return miss(site);
}
/* An allocation's stack; _release: a free's or realloc's. */
static inline __attribute__((always_inline)) uint32_t _ms_capture(const ms_site_t *site)
{
    return _ms_capture_or(site, _ms_capture_miss);
}
static inline __attribute__((always_inline)) uint32_t _ms_capture_release(const ms_site_t *site)
{
    return _ms_capture_or(site, _ms_capture_miss_release);
}
MS_HIDDEN void   _ms_unwind_thread_exit(void);
MS_HIDDEN void   _ms_unwind_lock(void);                 /* the spare stack caches, for fork */
MS_HIDDEN extern __thread int _ms_unwind_in __attribute__((tls_model("initial-exec")));
static inline bool _ms_unwind_mine(void) { return _ms_unwind_in != 0; }   /* this thread holds that lock */
MS_HIDDEN void   _ms_unwind_unlock(bool child);
MS_HIDDEN uintptr_t _ms_stack_top(void);                /* of the calling thread's stack */
/* fn(arg) on a stack of memshim's own (1 MiB, never a root of the leak
 * scan): what writes reports, profiles and tables runs there, never on the
 * program's stack, which may be a coroutine's or a sigaltstack of a few
 * KiB.  Whatever must be read off the program's stack (its frame, the
 * stack of the call now) is taken before.  fn's result. */
MS_HIDDEN int    _ms_on_own_stack(int (*fn)(void *), void *arg);
MS_HIDDEN uint32_t _ms_tid(void);                    /* track.c: the calling thread's id, cached */
MS_HIDDEN bool  _ms_on_main_thread(void);                /* track.c: tid == pid, cached */
MS_HIDDEN void  *_ms_tracked_malloc(size_t n, const ms_site_t *site);
MS_HIDDEN void  *_ms_tracked_calloc(size_t n, size_t m, const ms_site_t *site);
MS_HIDDEN void   _ms_tracked_free(void *p, const ms_site_t *site);
/* free() of blocks released together (a collection's: gcglue.c): one free
 * stack for all, the first's, per batch key (a new key starts a batch).
 * _ms_tracked_free_collected frees a block as free() at (ra, sp) would, or
 * records a pooled block freed and holds it in `blocks` (1; 0: p is no
 * block of memshim's), all of one span, which the held blocks keep from
 * being released; _ms_free_batch_flush gives them back to the span at
 * once, when the batch is full, meets another span, or ends.
 * A held block is free in its record (a report, a double free see it so)
 * and unused by anyone until then. */
#define MS_FREE_BATCH 64
typedef struct ms_free_batch_s {
    unsigned long key;
    bool      taken;              /* stack: the batch's free stack, taken */
    uint32_t  stack;
    unsigned  n;                  /* blocks held */
    uint8_t   cls;                /* their span's class */
    ms_page_t *pg;                /* their span, start and bytes: valid while n > 0 */
    uint8_t  *start;
    uint64_t  bytes;
    void     *blocks[MS_FREE_BATCH];
} ms_free_batch_t;
MS_HIDDEN void   _ms_tracked_free_batch(void *p, const ms_site_t *site, ms_free_batch_t *batch);
MS_HIDDEN int    _ms_tracked_free_collected(void *p, size_t size, uintptr_t ra, uintptr_t sp,
                                           ms_free_batch_t *batch, unsigned long key);
MS_HIDDEN void   _ms_free_batch_flush(ms_free_batch_t *batch);
/* p held: linked to the batch's last block, as a free into the thread's
 * cache would link it (a write after free that lands on the link is seen
 * at the flush), and added to the batch. */
static inline void _ms_free_batch_push(ms_free_batch_t *b, void *p)
{
    ((ms_block_t *)p)->next = b->n ? b->blocks[b->n - 1] : NULL;
    b->blocks[b->n++] = p;
}
/* The batch's blocks back to their span, and the batch on w's span from now
 * on (track.c's and alloc.c's first block of a new span). */
static inline void _ms_free_batch_span(ms_free_batch_t *b, const ms_where_t *w)
{
    _ms_free_batch_flush(b);
    b->pg = w->pg;
    b->cls = (uint8_t)w->cls;
    b->start = w->pg->start;
    b->bytes = (uint64_t)w->k->capacity * w->k->size;
}
/* _ms_tracked_free_collected without tracking (alloc.c): p held in the
 * batch as free() would free it, 1; 0 to leave p to free(). */
MS_HIDDEN int    _ms_free_collected(void *p, ms_free_batch_t *batch, unsigned long key);
MS_HIDDEN void  *_ms_tracked_new(size_t n, size_t align, unsigned how, const ms_site_t *site);
MS_HIDDEN void   _ms_tracked_delete(void *p, unsigned how, const ms_site_t *site);
MS_HIDDEN void  *_ms_tracked_realloc(void *p, size_t n, const ms_site_t *site);
MS_HIDDEN void  *_ms_tracked_memalign(size_t align, size_t n, const ms_site_t *site);
MS_HIDDEN int    _ms_tracked_posix_memalign(void **out, size_t align, size_t n, const ms_site_t *site);
MS_HIDDEN void  *_ms_tracked_valloc(size_t n, const ms_site_t *site);
MS_HIDDEN void  *_ms_tracked_pvalloc(size_t n, const ms_site_t *site);
MS_HIDDEN void   _ms_track_after_fork_child(void);

/* ---- sample.c: MEMSHIM_SAMPLE's byte countdown (track.c and override.c);
 * with MEMSHIM_TRACK=0 the sampled heap profiler: a sampled block's stack in
 * a table by address, its span marked (ms_page_t.sampled) for free(). */
MS_HIDDEN extern __thread int64_t _ms_sample_left __attribute__((tls_model("initial-exec")));
MS_HIDDEN extern int _ms_sampling;
MS_HIDDEN bool   _ms_sample_due(size_t n);          /* the countdown ran out: sample this one? */
MS_HIDDEN void  *_ms_sample_took(void *p, size_t n, const ms_site_t *site);
MS_HIDDEN void   _ms_sample_release(const void *p); /* before p is freed or moved */
MS_HIDDEN void   _ms_sample_release_at(const void *p, ms_page_t *pg);   /* pg->sampled, hash hit */
MS_HIDDEN void  *_ms_sample_realloc(void *p, size_t n, const ms_site_t *site);     /* p maybe sampled */
MS_HIDDEN void  *_ms_sample_realloc_took(void *q, size_t n, const ms_site_t *site); /* moved, due */
MS_HIDDEN void   _ms_sample_init(void);             /* constructor, after the options */
MS_HIDDEN void   _ms_sample_lock(void);
MS_HIDDEN bool   _ms_sample_mine(void);             /* this thread holds the sampled blocks' lock */
MS_HIDDEN void   _ms_sample_unlock(bool child);
MS_HIDDEN void   _ms_sample_fork_child(void);
MS_HIDDEN double _ms_sample_chance(size_t n);     /* a block of n bytes is sampled with this chance */
/* Whether the heap profiler counts (profile.c): with tracking when a
 * profile is asked for, always with the sampled profiler. */
MS_HIDDEN extern int _ms_prof_on;
static inline bool _ms_profiling(void) { return _ms_prof_on; }
/* An untracked allocation of n bytes due for a sample (override.c, cxx.c). */
#define MS_SAMPLE_OUT(n) ((_ms_sample_left -= (int64_t)(n)) < 0)
#define MS_SAMPLE_DUE(n) (MS_UNLIKELY(MS_SAMPLE_OUT(n)) && _ms_sample_due(n))
/* Sampled blocks counted by a hash of their address: a count of 0 says p
 * is not one, without the table's lock (sample.c). */
#define MS_SAMPLE_MAYBE_BITS 12
MS_HIDDEN extern uint32_t _ms_sample_maybe[1u << MS_SAMPLE_MAYBE_BITS];
static inline uint32_t *_ms_sample_maybe_of(const void *p)
{
    return &_ms_sample_maybe[((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL >> (64 - MS_SAMPLE_MAYBE_BITS)];
}
static inline bool _ms_sample_hash_hit(const void *p)
{
    return __atomic_load_n(_ms_sample_maybe_of(p), __ATOMIC_RELAXED) != 0;
}
MS_HIDDEN void   _ms_misuse(const char *what, const void *p, const ms_meta_t *m);
MS_HIDDEN void   _ms_misuse_report(const char *what, const void *p, const char *is,
                                   const char *const *titles, const uint32_t *stacks, unsigned nstacks);
/* Heap misuse kept for the leak report (leak.c): the first MS_HEAP_ERR_MAX
 * messages, each with its stacks; *total counts them all. */
#define MS_HEAP_ERR_MAX 100
typedef struct ms_heap_err_s {
    const char *what;            /* "free(): double free"... (a literal) */
    char        is[160];         /* "a block already freed"... */
    const void *p;
    int         tid;
    unsigned    nstacks;
    const char *titles[3];       /* literals: "allocated at", "now at"... */
    uint32_t    stacks[3];       /* 0: not recorded */
    int         ready;
} ms_heap_err_t;
MS_HIDDEN void   _ms_heap_err_note(const char *what, const void *p, const char *is,
                                   const char *const *titles, const uint32_t *stacks, unsigned nstacks);
MS_HIDDEN const ms_heap_err_t *_ms_heap_errors(unsigned *shown, unsigned *total);
MS_HIDDEN void   _ms_unwind_init(void);
MS_HIDDEN unsigned _ms_unwind(uintptr_t *ip, unsigned max);
MS_HIDDEN void   _ms_loader_enter(void);   /* around memshim's calls that iterate loaded objects */
MS_HIDDEN bool   _ms_loader_mine(void);    /* this thread is inside _ms_loader_enter */
MS_HIDDEN void   _ms_loader_leave(void);
MS_HIDDEN void   _ms_loader_lock(void);    /* fork: none of them under way */
MS_HIDDEN void   _ms_loader_unlock(bool child);
#define MS_STACK_OOM 0xFFFFFFFFu        /* a stack not stored: memshim's memory ran out */
MS_HIDDEN uint32_t _ms_stack_intern(const uintptr_t *ip, unsigned n);
MS_HIDDEN uint32_t _ms_stack_none(void);    /* the stored stack of no frames */
/* A stack's hash, frame by frame (unwind.c's walk hashes as it goes):
 * h = MS_IPS_HASH0, h = _ms_ips_hash_add(h, ip[i]) for each frame, then
 * _ms_ips_hash_end(h, n).  Each step is a bijection of h for a given frame
 * (an odd multiplier, then an xor-shift), so two stacks that differ in one
 * frame never hash alike; a walked stack is known by its hash alone
 * (stacks.c, _ms_stack_find). */
#define MS_IPS_HASH0 0xcbf29ce484222325ULL
/* FNV-1a of string s (NULL hashes as ""); its length in *len if len
 * (symbolize.c's names, pprof.c's string table). */
static inline uint64_t _ms_str_hash(const char *s, size_t *len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t n = 0;
    for (; s && s[n]; n++) h = (h ^ (uint8_t)s[n]) * 0x100000001b3ULL;
    if (len) *len = n;
    return h;
}
static inline uint64_t _ms_ips_hash_add(uint64_t h, uintptr_t ip)
{
    h = (h ^ ip) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}
static inline uint64_t _ms_ips_hash_end(uint64_t h, unsigned n)
{
    h = _ms_ips_hash_add(h, n);
    return h ? h : 1;
}
MS_HIDDEN uint32_t _ms_stack_find(uint64_t h);     /* a stored stack of that hash? 0 if none */
MS_HIDDEN unsigned _ms_stack_get(uint32_t id, uintptr_t *ip);   /* room for MS_MAX_STACK */
MS_HIDDEN uintptr_t _ms_stack_site(uint32_t id);                 /* its first frame, or 0 */
MS_HIDDEN void   _ms_stack_lock(void);
/* This thread holds the trace table's lock (a fork from a handler must not
 * wait for it: init.c).  Inline, as _ms_unwind_mine: the exit of a program
 * that tracks nothing asks, and stacks.c lies outside the pages every
 * process maps (Makefile: HOT_SRC). */
MS_HIDDEN extern __thread int _ms_stack_in __attribute__((tls_model("initial-exec")));
static inline bool _ms_stack_mine(void) { return _ms_stack_in != 0; }
MS_HIDDEN void   _ms_stack_unlock(bool child);

/* ---- cxx.c: C++ operator new's failure path, allocation-kind mismatches -- */
MS_HIDDEN extern int _ms_cxx_checks;    /* report mismatches: the whole family is memshim's */
MS_HIDDEN void   _ms_cxx_init(void);    /* constructor */
MS_HIDDEN void  *_ms_new_failed(size_t n, size_t align, unsigned how, bool nothrow, const ms_site_t *site);
MS_HIDDEN const char *_ms_alloc_name(unsigned how);     /* "operator new[]", "malloc()"... */
MS_HIDDEN const char *_ms_dealloc_name(unsigned how);   /* "operator delete[]", "free()"... */
/* A block released by a call that does not match its allocation, the
 * release called from `caller` (a return address). */
MS_HIDDEN void   _ms_mismatch(const void *p, const ms_meta_t *m, const char *released_by, uintptr_t caller);

/* ---- scan.c, report.c, leak.c: leak detection and reports --------------- */
/* Where the pointer that keeps a block alive was found, when it is in no
 * block (retention paths: report.c names it). */
enum { MS_ROOT_NONE,       /* nothing keeps it (lost), or it is in a block */
       MS_ROOT_MAPPING,    /* a mapping: a module's data or bss, or anonymous memory */
       MS_ROOT_STACK,      /* a thread's live stack */
       MS_ROOT_REGS,       /* a thread's registers */
       MS_ROOT_TLS,        /* a thread's static thread-local storage */
       MS_ROOT_GC,         /* a collector root (memshim_root_add) */
       MS_ROOT_GARBAGE };  /* the collector's garbage list (MEMSHIM_DEBUG_SAVEALL) */
#define MS_WHY_ROOT UINT32_MAX  /* ms_leak_item_t.parent of a block held from a root */
enum { MS_HEUR_NONE, MS_HEUR_STDSTRING, MS_HEUR_LENGTH64, MS_HEUR_NEWARRAY, MS_HEUR_MULTIPLE, MS_HEUR_GOBJECT,
       MS_HEUR_KINDS };
/* One live block's verdict.  64 bytes, as the scan's record it is written
 * over (scan.c): at the exit report there is one per live block (2 million
 * blocks took 176 MB at 88 bytes, 128 MB now).  What only lost blocks have
 * and what only blocks held from a root have share their place: read each
 * only for its kind. */
typedef struct ms_leak_item_s {
    uintptr_t addr;
    uint64_t  size : 48;   /* requested bytes (no block is as large as the address space) */
    uint64_t  objoff : 6;  /* a collector object: where the object starts in its block */
    uint64_t  kind : 2;    /* MS_KIND_* */
    uint64_t  sampled : 1;
    uint64_t  inherited : 1; /* a forked child: allocated by the parent before fork() */
    uint64_t  root : 3;    /* parent == MS_WHY_ROOT: MS_ROOT_* of `from` */
    uint64_t  heuristic : 3; /* reachable only through an interior pointer memcheck's heuristic
                              of that name takes for a start: MS_HEUR_* (scan.c), 0: none */
    const char *gctype;    /* a collector object: its type's name (program memory), else NULL */
    /* Retention path (reachable and possibly lost blocks): the pointer that
     * keeps it, found breadth first, so the chain to a root is shortest. */
    uintptr_t from;        /* the address of that pointer (0: none) */
    union {
        struct {           /* kind DEFINITE or INDIRECT */
            uint64_t indirect;     /* definite leaks: bytes only they reach */
            uint32_t leader;       /* the item leading their clique (maybe through others:
                                      follow until a definitely lost one), or UINT32_MAX */
        };
        struct {           /* kind REACHABLE or POSSIBLE, held from a STACK or TLS root */
            uintptr_t root_pc;     /* STACK: code in the function whose frame holds `from`
                                      (0: unknown); TLS: the offset of `from` in its module's
                                      TLS block */
            uintptr_t root_module; /* TLS: an address in the module whose variable it is */
        };
    };
    uint32_t  stack;
    uint32_t  parent;      /* the item whose block holds `from`, or MS_WHY_ROOT */
    uint32_t  into;        /* where in this block that pointer points, if not at its start */
    uint32_t  root_tid;    /* STACK, REGS, TLS: the thread */
} ms_leak_item_t;
_Static_assert(sizeof(ms_leak_item_t) == 64, "a live block's verdict stays 64 bytes");
/* Where the thread asking for a scan has its live stack: the stack pointer
 * at which the program called exit() or memshim_leak_check(), and the
 * registers the program's frames may keep pointers in. */
#define MS_SCAN_REGS 128         /* general registers from 0, vector registers from MS_SCAN_VREGS */
#define MS_SCAN_VREGS 32
#define MS_SCAN_XREGS 64         /* from here: words of wider vector state that may be addresses
                                  * (the upper parts of %ymm and %zmm: park.c) */
typedef struct ms_scan_self_s {
    uintptr_t sp;
    uintptr_t pc;          /* code of the frame at sp (retention paths), 0 if unknown */
    uintptr_t regs[MS_SCAN_REGS];    /* the callee-saved ones (MS_NSAVED, below), or every
                                      * register of a signal's interrupted context */
    unsigned  nregs;
} ms_scan_self_t;

/* The callee-saved registers as the caller left them: the program's frames
 * above may keep pointers only there.  Called first thing, before the
 * compiler needs any of them. */
#if defined(__x86_64__)
#define MS_SAVE_CALLEE_SAVED(r) __asm__ volatile( \
    "mov %%rbx, 0(%0)\n\tmov %%r12, 8(%0)\n\tmov %%r13, 16(%0)\n\t" \
    "mov %%r14, 24(%0)\n\tmov %%r15, 32(%0)\n\tmov %%rbp, 40(%0)" :: "r"(r) : "memory")
#define MS_NSAVED 6
#elif defined(__aarch64__)
#define MS_SAVE_CALLEE_SAVED(r) __asm__ volatile( \
    "stp x19, x20, [%0, #0]\n\tstp x21, x22, [%0, #16]\n\tstp x23, x24, [%0, #32]\n\t" \
    "stp x25, x26, [%0, #48]\n\tstp x27, x28, [%0, #64]\n\tstr x29, [%0, #80]" :: "r"(r) : "memory")
#define MS_NSAVED 11
#else
#define MS_SAVE_CALLEE_SAVED(r) __builtin_unwind_init()
#define MS_NSAVED 0
#endif
_Static_assert(MS_NSAVED <= MS_SCAN_VREGS, "ms_scan_self_t holds the callee-saved registers");

/* Where the program called us from: its stack pointer after the call, the
 * return address, its callee-saved registers (rbp: the caller's, saved in
 * our frame).  A macro: it must run in the exported function itself. */
#if defined(__x86_64__)
#define MS_CALLER_RBP(s) ((s).regs[5] = *(const uintptr_t *)__builtin_frame_address(0))
#else
#define MS_CALLER_RBP(s) ((void)0)
#endif
#define MS_CALLER_FRAME(s) do {                                                 \
        MS_SAVE_CALLEE_SAVED((s).regs);                                         \
        (s).nregs = MS_NSAVED;                                                  \
        (s).sp = (uintptr_t)__builtin_frame_address(0) + 2 * sizeof(void *);    \
        (s).pc = (uintptr_t)__builtin_return_address(0);                        \
        MS_CALLER_RBP(s);                                                       \
    } while (0)

/* The same, small: where a thread waiting in exit() called it (init.c). */
typedef struct ms_caller_s {
    uintptr_t sp, pc;
    uintptr_t regs[MS_NSAVED + 1];    /* + 1: none saved is no array */
    unsigned  nregs;
} ms_caller_t;

/* flags: MS_SCAN_FEW_FDS, the maps read without pagemap open (one
 * descriptor is then enough; every page of a root is read) */
#define MS_SCAN_FEW_FDS 1u
MS_HIDDEN size_t _ms_scan_leaks(ms_leak_item_t **out, size_t *cap, unsigned *unparked,
                                const ms_scan_self_t *self, unsigned flags);
MS_HIDDEN int    _ms_why(const void *ptr, int fd, const ms_scan_self_t *self); /* report.c: memshim_why */
static inline uintptr_t _ms_thread_pointer(void)
{
    uintptr_t tp = 0;
#if defined(__x86_64__)
    __asm__("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
    __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#endif
    return tp;
}
MS_HIDDEN void   _ms_scan_init(void);                 /* constructor: memshim's data ranges */
MS_HIDDEN bool   _ms_unwind_exit_frame(ms_scan_self_t *self); /* unwind.c: the program's frame under exit() */
MS_HIDDEN void   _ms_internal_threads_forget(void);   /* fork child */
MS_HIDDEN void   _ms_scan_thread_exit(void);          /* a thread ends: its stack is dead */
MS_HIDDEN void   _ms_fork_own_tid(int tid);           /* forked child: a thread allocating here */
MS_HIDDEN void   _ms_fork_own_reset(void);            /* forked child: none yet */
MS_HIDDEN void   _ms_leak_items_free(ms_leak_item_t *items, size_t cap);
MS_HIDDEN void   _ms_internal_thread_add(int tid);
MS_HIDDEN void   _ms_internal_thread_moved(int old, int tid);   /* tid took the ended old's place */
MS_HIDDEN bool   _ms_internal_thread(int tid);
MS_HIDDEN int    _ms_leak_report(int at_exit, const ms_scan_self_t *self); /* leaks found (blocks) */
MS_HIDDEN void   _ms_leak_after_fork_child(void);
MS_HIDDEN void   _ms_leak_report_fork_child(void);    /* report.c: the report lock */
MS_HIDDEN void   _ms_leak_init(void);                 /* constructor */
MS_HIDDEN void   _ms_leak_at_exit(void);              /* destructor */
MS_HIDDEN extern int _ms_leak_forked;                 /* this process is a forked child */
MS_HIDDEN void   _ms_leak_before_fork(void);           /* atfork prepare (leak.c) */
MS_HIDDEN bool   _ms_leak_parent_counts(void);         /* the parent reports what it allocated */
MS_HIDDEN unsigned _ms_leak_note_ranges(ms_range_t *out); /* leak.c's shared note pages (2 at most) */

/* ---- symbolize.c: addresses to function, file:line, module --------------- */
typedef struct ms_frame_s {
    uintptr_t   ip;
    const char *function;  /* NULL if unknown */
    const char *file;      /* NULL if unknown */
    int         line;
    const char *module;    /* NULL if unknown */
    uintptr_t   offset;    /* ip - module base */
} ms_frame_t;
MS_HIDDEN void   _ms_symbolize(uintptr_t ip, ms_frame_t *f, bool full);
MS_HIDDEN void   _ms_symbolize_name(uintptr_t ip, ms_frame_t *f);   /* no file:line: cheaper */
MS_HIDDEN void   _ms_symbolize_begin(void);           /* modules looked at again; names valid until _end */
MS_HIDDEN void   _ms_symbolize_hold(void);            /* names valid until _end, modules as they are */
MS_HIDDEN void   _ms_symbolize_end(void);
MS_HIDDEN void   _ms_symbolize_before_chroot(void);   /* libdw and its files opened while names lead to them */
MS_HIDDEN bool   _ms_symbolize_release(void);         /* libdw's open files closed (none naming) */
/* A data address: the symbol holding it and the offset in it (NULL if none
 * is known), and its module.  A TLS offset of the module holding `probe`:
 * the thread-local variable there. */
MS_HIDDEN void   _ms_symbolize_data(uintptr_t addr, const char **sym, uintptr_t *off, const char **module);
MS_HIDDEN void   _ms_symbolize_tls(uintptr_t probe, uintptr_t tls_off, const char **sym, uintptr_t *off,
                                   const char **module);
/* modules.c, symbolize.c, stacks.c: stacks through unloaded libraries */
#define MS_IP_TAG_SHIFT 48                /* retired addresses: tag in bits 48.. */
#define MS_IP_MASK      (((uintptr_t)1 << MS_IP_TAG_SHIFT) - 1)
MS_HIDDEN int    _ms_dlclose(void *handle);
/* dlopen (override.c's stub): the C library's; whether memshim opens this
 * call itself (RTLD_DEEPBIND, the search for the name not the caller's
 * own); and that opening. */
MS_HIDDEN extern void *(*_ms_real_dlopen)(const char *file, int mode);
MS_HIDDEN int    _ms_dlopen_ours(const char *file, int mode, uintptr_t caller);
MS_HIDDEN void  *_ms_dlopen_deep(const char *file, int mode);
/* dlsym (override.c's stub): the C library's (found by _ms_dlsym_resolve);
 * a lookup in a handle, the C library's functions memshim takes over
 * answered with memshim's. */
MS_HIDDEN extern void *(*_ms_real_dlsym)(void *handle, const char *name);
MS_HIDDEN void   _ms_dlsym_resolve(void);
MS_HIDDEN void  *_ms_dlsym_handle(void *handle, const char *name);
typedef struct ms_self_s {
    ms_range_t image;          /* all of libmemshim.so's segments */
    ms_range_t code;           /* its code */
    ms_range_t data[4];        /* its writable data and bss, page-rounded */
    unsigned   ndata;
} ms_self_t;
MS_HIDDEN const ms_self_t *_ms_self(void);             /* memshim's own image (found once) */
typedef enum { MS_RT_NONE, MS_RT_LIBC, MS_RT_LDSO } ms_runtime_t;
MS_HIDDEN ms_runtime_t _ms_runtime_at(uintptr_t base);   /* the object loaded at base: libc, ld.so? */
MS_HIDDEN void   _ms_modules_init(void);   /* constructor: the lookups above, which take the loader's lock */
MS_HIDDEN uintptr_t _ms_symbolize_keep(const char *module, uintptr_t base, const ms_range_t *code, unsigned n);
MS_HIDDEN void   _ms_symbolize_unloaded(const ms_range_t *code, unsigned n);   /* its kept frames' standby goes */
MS_HIDDEN void   _ms_symbolize_keep_cancel(uintptr_t tag);
MS_HIDDEN void   _ms_stack_retag(const ms_range_t *code, unsigned n, uintptr_t tag);
MS_HIDDEN size_t _ms_stack_ips_in(const ms_range_t *code, unsigned n, uintptr_t *out, size_t max);
MS_HIDDEN void   _ms_exit_enter(const ms_caller_t *caller); /* exit(): one thread at a time (init.c) */
MS_HIDDEN void   _ms_exit_now(const ms_caller_t *caller);  /* _exit(): the end-of-process work first (init.c) */
MS_HIDDEN extern bool _ms_exit_unflushed;   /* ... and the program's stdio buffers stay as they are */
MS_HIDDEN bool   _ms_exit_signal_due(void);  /* a signal at its default ends the process: report first? (init.c) */
MS_HIDDEN void   _ms_exit_by_signal(int sig, const siginfo_t *si, const void *uc);  /* ... the end-of-process work, from its handler */
MS_HIDDEN bool   _ms_exit_overflowed(void);  /* ... and that signal is a stack overflow's SIGSEGV */
MS_HIDDEN void   _ms_exit_signal_lost(int sig);   /* ... which cannot be done there: said in one line */
MS_HIDDEN int    _ms_exit_signal(void);      /* the signal the process ends on after the work, or 0 */
MS_HIDDEN bool   _ms_exit_signal_frame(ms_scan_self_t *self); /* the dying thread's interrupted context */
MS_HIDDEN bool   _ms_inside_memshim(void);  /* a signal handler's thread was in memshim, holding a lock (init.c) */

/* ---- signals.c: the program's handlers, run when memshim holds no lock ----- */
MS_HIDDEN int    _ms_sigaction(int sig, const struct sigaction *act, struct sigaction *old); /* the C library's */
MS_HIDDEN void   _ms_signals_relay(int sig, siginfo_t *si, void *uc);  /* the kernel's handler of the program's */
MS_HIDDEN int    _ms_signals_action(int sig, const struct sigaction *act, struct sigaction *old); /* sigaction() */
MS_HIDDEN sighandler_t _ms_signals_bsd(int sig, sighandler_t handler);     /* signal(), bsd_signal() */
MS_HIDDEN sighandler_t _ms_signals_sysv(int sig, sighandler_t handler);    /* sysv_signal() */
MS_HIDDEN sighandler_t _ms_signals_sigset(int sig, sighandler_t disp);     /* sigset() */
MS_HIDDEN int    _ms_signals_interrupt(int sig, int flag);                 /* siginterrupt() */
MS_HIDDEN int    _ms_signals_altstack(const stack_t *ss, stack_t *old);    /* sigaltstack() */
MS_HIDDEN void   _ms_signals_fork_child(void);
MS_HIDDEN __attribute__((noreturn)) void _ms_abort(void);   /* memshim's abort(), never its report */
MS_HIDDEN void   _ms_signals_arm_endings(void);  /* memshim's handler on the signals at their default */
MS_HIDDEN bool   _ms_signals_at_default(int sig, const struct sigaction *k); /* k is that handler */
MS_HIDDEN void   _ms_signals_deliver(void);
MS_HIDDEN extern __thread uint64_t _ms_sig_deferred __attribute__((tls_model("initial-exec")));
/* At each release of a lock that counts in _ms_inside_memshim: the
 * signals put off while the thread was inside come in once it holds none. */
static inline void _ms_signals_due(void)
{
    if (MS_UNLIKELY(__atomic_load_n(&_ms_sig_deferred, __ATOMIC_RELAXED) != 0)) _ms_signals_deliver();
}
MS_HIDDEN const ms_caller_t *_ms_exit_waiter(int tid); /* init.c: where thread tid, inside exit(), called it */
MS_HIDDEN bool   _ms_main_caller(uintptr_t ra);       /* ra returns into main's caller (override.c) */
MS_HIDDEN void   _ms_symbolize_lock(void);            /* fork: before every other lock */
MS_HIDDEN void   _ms_symbolize_unlock(bool child);

/* ---- meta.c: memory for memshim's own bookkeeping (never the program's heap) */
MS_HIDDEN void  *_ms_meta_alloc(size_t size);           /* zeroed, 16-aligned */
MS_HIDDEN void   _ms_meta_free(void *p, size_t size);
MS_HIDDEN void   _ms_meta_retire(void *table, size_t size); /* a table lock-free readers may probe: purged, kept */
MS_HIDDEN void  *_ms_meta_grow(void *arr, size_t *cap, size_t have, size_t need, size_t size);  /* doubled; NULL: no memory */
MS_HIDDEN void   _ms_meta_decay(uint64_t now_ns);         /* purge big blocks free for MEMSHIM_DECAY */
MS_HIDDEN void   _ms_meta_free_stats(size_t *purged, size_t *resident);
MS_HIDDEN unsigned _ms_meta_ranges(ms_range_t *out, unsigned max);
MS_HIDDEN void   _ms_meta_lock(void);
MS_HIDDEN void   _ms_meta_unlock(bool child);

/* ---- park.c: the other threads stopped while the leak scan reads memory -- */
#define MS_PARK_MAX 4096                /* threads stopped at most */
typedef struct ms_parked_s {
    unsigned         n;           /* threads stopped */
    unsigned         missed;      /* threads that could not be stopped */
    const uintptr_t *sp;          /* [n]: where each one's live stack starts */
    const uintptr_t (*regs)[MS_SCAN_REGS];  /* [n]: its general registers */
    const int       *tid;         /* [n]: its thread id */
    const uintptr_t *pc;          /* [n]: where it was stopped */
    const uintptr_t *tp;          /* [n]: its thread pointer, 0 if unknown (its static TLS) */
    ms_range_t       own;         /* memory of the stopping itself (the tracer's stack): no root */
} ms_parked_t;
MS_HIDDEN void   _ms_park_world(ms_parked_t *out);      /* allocator locks held */
MS_HIDDEN void   _ms_unpark_world(void);
MS_HIDDEN uintptr_t _ms_park_context(const void *uc, uintptr_t *regs, uintptr_t *pc, uintptr_t fallback);
                                        /* a signal handler's interrupted context: its registers
                                         * (MS_SCAN_REGS), pc; where its live stack starts */

/* ---- init.c ------------------------------------------------------------- */
MS_HIDDEN void   _ms_init(void);                        /* idempotent, cheap after first call */
MS_HIDDEN void   _ms_lock_all(void);
MS_HIDDEN void   _ms_unlock_all(bool child);
MS_HIDDEN extern int _ms_inited;

/* ---- options.c: the only reader of the environment ---------------------- */
typedef enum { MS_ON_ERROR_ABORT, MS_ON_ERROR_CONTINUE } ms_on_error_t;
enum { MS_KIND_DEFINITE, MS_KIND_INDIRECT, MS_KIND_POSSIBLE, MS_KIND_REACHABLE, MS_NKINDS };
typedef struct ms_options_s {
    const char   *stats;         /* MEMSHIM_STATS: NULL, "stderr" or an absolute path (a copy) */
    int           verbose;       /* MEMSHIM_VERBOSE */
    ms_on_error_t on_error;      /* MEMSHIM_ON_ERROR */
    /* leak tracking (issue: leak reports) */
    int           track;         /* MEMSHIM_TRACK */
    const char   *report;        /* MEMSHIM_REPORT: NULL, "stderr" or an absolute path (a copy) */
    int           json;          /* MEMSHIM_REPORT_FORMAT=json */
    unsigned      stack_depth;   /* MEMSHIM_STACK_DEPTH */
    int           free_stacks;   /* MEMSHIM_FREE_STACKS: a free's stack kept for misuse reports */
    unsigned      show;          /* MEMSHIM_SHOW: bit per MS_KIND_* */
    int           exitcode;      /* MEMSHIM_EXITCODE, -1 = leave the status alone */
    const char   *suppress;      /* MEMSHIM_SUPPRESS: file of patterns (an absolute copy) */
    uint64_t      sample;        /* MEMSHIM_SAMPLE: mean bytes between samples, 0 = all */
    int           report_signal; /* MEMSHIM_REPORT_SIGNAL, 0 = none */
    int           gen_suppressions; /* MEMSHIM_GEN_SUPPRESSIONS */
    unsigned      why_depth;     /* MEMSHIM_WHY_DEPTH: blocks shown per retention path, 0 = none */
    int           leak_since;    /* MEMSHIM_LEAK_SINCE: flag records new or grown since the last report */
    int           report_child;  /* exec'd by a process writing the same MEMSHIM_REPORT: name.PID */
    int           profile_child; /* the same for MEMSHIM_PROFILE */
    int           show_summary;  /* MEMSHIM_SHOW=summary: the summary whenever something leaked */
    int           trace_children;/* MEMSHIM_TRACE_CHILDREN (1): children keep memshim in LD_PRELOAD */
    /* heap profile (issue 13) */
    const char   *profile;       /* MEMSHIM_PROFILE: NULL, "stderr" or an absolute path (a copy) */
    int           profile_signal;/* MEMSHIM_PROFILE_SIGNAL, 0 = none */
    unsigned      profile_interval_ms; /* MEMSHIM_PROFILE_INTERVAL, 0 = none */
    unsigned      decay_ms;      /* MEMSHIM_DECAY (1000): freed memory kept this long for reuse */
} ms_options_t;
MS_HIDDEN extern ms_options_t _ms_opt;
/* How often a thread looks at what it keeps, and the central lists at
 * their parked batches, at most (tcache.c, pool.c): an eighth of MEMSHIM_DECAY. */
static inline uint64_t _ms_look_interval_ns(void) { return (uint64_t)_ms_opt.decay_ms * 1000000 / 8; }
MS_HIDDEN void   _ms_options_load(void);                /* needs environ */
MS_HIDDEN const char *_ms_option_text(const char *name, char *buf, size_t cap); /* MEMSHIM_GC's text */
static inline bool _ms_names_file(const char *dest)  /* an output setting names a file, not stderr */
{
    return dest && *dest && __builtin_strcmp(dest, "stderr") != 0;
}
/* A value (or the n bytes of a name) as messages show it, in buf of
 * MS_SHOWN bytes: its first 64 bytes, control characters escaped (\n,
 * \xNN: a message stays one line), then "... (N bytes)" if it is longer. */
#define MS_SHOWN 320
MS_HIDDEN const char *_ms_value_shown(const char *v, char *buf, size_t cap);
MS_HIDDEN const char *_ms_text_shown(const char *v, size_t n, char *buf, size_t cap);

/* ---- out.c: allocation-free formatting, the only writer of fds ---------- */
/* out: the output file fd was opened for (out.c), checked to be still
 * that file before each write; NULL for standard error and strings. */
struct ms_out_s;
typedef struct ms_buf_s { char *p; size_t len, cap; int fd; const struct ms_out_s *out; } ms_buf_t;
MS_HIDDEN void   _ms_buf_init(ms_buf_t *b, char *mem, size_t cap, int fd);
MS_HIDDEN void   _ms_bprintf(ms_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
MS_HIDDEN void   _ms_vbprintf(ms_buf_t *b, const char *fmt, va_list ap);
MS_HIDDEN void   _ms_buf_flush(ms_buf_t *b);
MS_HIDDEN void   _ms_buf_put(ms_buf_t *b, const void *bytes, size_t n);   /* raw bytes */
MS_HIDDEN void   _ms_out_write_at(int fd, const void *p, size_t n, off_t off); /* whole, at off */
/* Whether the file open on fd may grow to `end` bytes (-1: n more bytes
 * where the next write(2) goes) under RLIMIT_FSIZE; past it the kernel
 * sends SIGXFSZ, whose default action ends the program. */
MS_HIDDEN bool   _ms_out_fits(int fd, off_t end, size_t n);
MS_HIDDEN void   _ms_json_str(ms_buf_t *b, const char *s);   /* a quoted, escaped JSON string */
MS_HIDDEN void   _ms_text_put(ms_buf_t *b, const char *s, size_t n);   /* a name in text: control */
MS_HIDDEN void   _ms_text_str(ms_buf_t *b, const char *s);             /* characters escaped (utf8.h) */
MS_HIDDEN const char *_ms_name_shown(const char *s, char *buf, size_t cap); /* the same, into buf, for a message */
MS_HIDDEN void   _ms_frame_text(ms_buf_t *b, const ms_frame_t *f);  /* report.c: "function (file:line)" */
MS_HIDDEN void   _ms_json_begin(ms_buf_t *b, const char *format, unsigned version); /* {"format".."program": ".." */
static inline const char *_ms_base_name(const char *p)      /* after the last '/' */
{
    const char *s = p ? __builtin_strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}
static inline bool _ms_ends_with(const char *s, const char *suffix)   /* "x.json", ".json" */
{
    size_t a = __builtin_strlen(s), b = __builtin_strlen(suffix);
    return a >= b && __builtin_strcmp(s + a - b, suffix) == 0;
}
static inline unsigned long long _ms_round(double x) { return (unsigned long long)(x + 0.5); }

/* ---- suppress.c: MEMSHIM_SUPPRESS (LeakSanitizer lines, type:, valgrind blocks) */
typedef struct ms_supps_s ms_supps_t;
typedef struct ms_supp_s ms_supp_t;
MS_HIDDEN ms_supps_t *_ms_supp_load(void);            /* NULL: none (or unreadable, said) */
MS_HIDDEN void   _ms_supp_free(ms_supps_t *s);
MS_HIDDEN bool   _ms_supp_match(ms_supps_t *s, uint32_t stack, unsigned kind, const char *gctype,
                                double blocks, double bytes);
MS_HIDDEN void   _ms_supp_used(const ms_supps_t *s, ms_buf_t *b, int pid, bool json);
MS_HIDDEN void   _ms_supp_generate(ms_buf_t *b, uint32_t stack, unsigned kind, unsigned record);
MS_HIDDEN void   _ms_program_name(char *out, size_t cap); /* the command line, spaced: every output's "program" */
/* Messages: every line memshim says of its own on standard error passes
 * _ms_message_gate, which counts it and lets through the first
 * MS_MSG_SHOWN of its kind (a literal: the format, a heap error's what). */
#define MS_MSG_SHOWN 10
MS_HIDDEN bool   _ms_message_gate(const char *kind);    /* count one; true: write it */
MS_HIDDEN void   _ms_message(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* gated */
MS_HIDDEN void   _ms_heap_error(const char *what, const void *p); /* gated; obeys MEMSHIM_ON_ERROR */
MS_HIDDEN void   _ms_messages_at_exit(void);            /* "N more messages like ... not shown" */
MS_HIDDEN void   _ms_messages_forget(void);             /* fork child; unit tests */
typedef struct ms_msg_stat_s {
    uint64_t total;          /* messages, shown or not */
    uint64_t not_shown;      /* of those, past MS_MSG_SHOWN of their kind */
} ms_msg_stat_t;
MS_HIDDEN void   _ms_message_stats(ms_msg_stat_t *out);
/* Its figures, as MEMSHIM_STATS and the leak report's JSON name them
 * ("messages"): X(name, unit, label), units as MS_HEAP_FIGURES's. */
#define MS_MSG_FIGURES(X) X(total, COUNT, "in all") X(not_shown, COUNT, "not shown")
MS_HIDDEN void   _ms_out_init(void);                    /* constructor: which file stderr is */
MS_HIDDEN void   _ms_out_settle(void);                  /* after the options: keep stderr's copy if needed */
MS_HIDDEN int    _ms_err_fd(void);                      /* stderr as it was at start-up, or -1 */
MS_HIDDEN void   _ms_out_retake_stderr(void);          /* fd 2 as it is now (unit tests) */
MS_HIDDEN void   _ms_out_after_fork_child(void);
MS_HIDDEN bool   _ms_expand_path(const char *pattern, unsigned seq, char *out, size_t cap); /* %p: pid, %n: seq */

/* Output files (reports, statistics, the RSS log): the rules are out.c's. */
enum { MS_OUT_NONE, MS_OUT_STDERR, MS_OUT_ATOMIC, MS_OUT_INPLACE };
#define MS_OUT_CHILD_SUFFIX 1u  /* a forked child and no %p: name.PID (regular files only) */
#define MS_OUT_STREAM       2u  /* kept open and appended to; no fallback to stderr */
#define MS_OUT_SNAPSHOT     4u  /* rewritten periodically for another user's collector:
                                   0644 (less the umask), no fallback to stderr */
#define MS_OUT_SERIES       8u  /* a leak snapshot and no %n: name.snapN (regular files only) */
typedef struct ms_out_s {
    int         fd;              /* where to write now; -1: dropped */
    int         kind;            /* MS_OUT_* */
    int         lock;            /* writers' lock held, or -1 */
    unsigned    flags;
    dev_t       dev;             /* identity of fd */
    ino_t       ino;
    const char *var;             /* the variable that named it, for messages */
    char        path[4096];      /* the final name */
    char        tmp[4096 + 64];  /* the temporary name (MS_OUT_ATOMIC) */
    int         pending;         /* out.c's slot listing tmp for _exit, or -1 */
} ms_out_t;
/* dest: NULL, "", "stderr" or a name pattern.  Returns false (one message
 * said) if dest cannot be written: o then writes to stderr, or nothing for a
 * stream.  Holds the output's lock until _ms_out_commit (not for a stream). */
MS_HIDDEN bool   _ms_out_open(ms_out_t *o, const char *var, const char *dest, unsigned flags);
/* The same, %n in the name standing for seq (_ms_out_open: 1). */
MS_HIDDEN bool   _ms_out_open_seq(ms_out_t *o, const char *var, const char *dest, unsigned flags, unsigned seq);
MS_HIDDEN bool   _ms_out_commit(ms_out_t *o);           /* close, rename into place; false: failed */
MS_HIDDEN void   _ms_out_abandon(void);                 /* _exit: the temporary files being written go */
/* A buffer writing to o's descriptor, checked before each write. */
MS_HIDDEN void   _ms_buf_init_out(ms_buf_t *b, char *mem, size_t cap, const ms_out_t *o);
MS_HIDDEN int    _ms_out_fd(ms_out_t *o);               /* a stream's checked fd, or -1 */
MS_HIDDEN void   _ms_out_remove(const char *path, dev_t dev, ino_t ino); /* if still that file */

/* ---- stats.c ------------------------------------------------------------ */
typedef struct ms_stats_class_s {
    uint64_t size, spans, in_use, free, allocs, frees;
    uint64_t bytes;        /* in_use * size */
    uint64_t frag;         /* free / (in_use + free), in permille */
    uint64_t cached;       /* of the free blocks, those in thread caches */
} ms_stats_class_t;
typedef struct ms_stats_s {
    ms_stats_class_t  cls[MS_NCLASSES];
    uint64_t          small_in_use, small_capacity, rss, peak_rss;
    uint64_t          heap_out, heap_peak;   /* bytes out of central lists + huge */
    uint64_t          heap_in_use;           /* small_in_use + huge.bytes: what the program holds */
    uint64_t          heap_mapped;           /* seg.mapped + huge.mapped: what memshim has mapped */
    unsigned          threads;
    ms_segment_stat_t seg;
    ms_huge_stat_t    huge;
} ms_stats_t;
/* memshim's own memory: its mappings for records, the trace table, thread
 * caches and hash tables (meta.c), the part of them resident (0 where
 * mincore() is not ours to call: a seccomp filter), and of them, the trace
 * table's (stacks.c).  MS_OWN_FIGURES(X): X(member, JSON key, unit, label),
 * MEMSHIM_STATS's "own" in that order. */
typedef struct ms_own_s {
    uint64_t resident, mapped, stacks, stack_bytes;
} ms_own_t;
#define MS_OWN_FIGURES(X) \
    X(resident, "resident_bytes", BYTES, "resident") X(mapped, "mapped_bytes", BYTES, "mapped") \
    X(stacks, "stacks", COUNT, "stacks") X(stack_bytes, "stack_bytes", BYTES, "for stacks")
MS_HIDDEN void   _ms_meta_usage(uint64_t *resident, uint64_t *mapped);
MS_HIDDEN void   _ms_stack_usage(uint64_t *stacks, uint64_t *bytes);
/* The figures, declared once and rendered into each shape from here: the
 * JSON and the text table of MEMSHIM_STATS (stats.c), the live region
 * (live.c), the C API (api.c, rss.c).  Each list carries how the table
 * shows a figure: its unit (BYTES: 2.5 MiB, COUNT: 42, NS: 1.234 ms,
 * PERMILLE: 88% in a row, 88.8 in JSON) and its label (a class's: its
 * column's width and heading).  Users that need fewer columns take the
 * rest as "...".
 *
 * MS_HEAP_FIGURES(X, Y), in the order of MEMSHIM_STATS's JSON: X(section,
 * JSON key, ms_stats_t member, ms_live_t field, unit, label) for a figure
 * the live region publishes too, Y(section, key, member, unit, label) for
 * one only the statistics carry.  Section NULL: a top-level JSON member,
 * a line "label: value" of its own in the table; the others share their
 * section's line, "section: label value, label value". */
#define MS_HEAP_FIGURES(X, Y) \
    X("small", "bytes_in_use",   small_in_use,       small_in_use,      BYTES, "in use")          \
    X("small", "bytes_pooled",   small_capacity,     small_pooled,      BYTES, "pooled")          \
    X("huge",  "blocks",         huge.blocks,        huge_blocks,       COUNT, "blocks")          \
    X("huge",  "bytes",          huge.bytes,         huge_bytes,        BYTES, "in use")          \
    X("huge",  "cached_bytes",   huge.cached,        huge_cached,       BYTES, "cached")          \
    X("heap",  "bytes_in_use",   heap_in_use,        heap_in_use,       BYTES, "in use")          \
    Y("heap",  "bytes_out",      heap_out,                              BYTES, "out of the pools") \
    X("heap",  "peak_bytes",     heap_peak,          heap_peak,         BYTES, "peak")            \
    X("heap",  "mapped_bytes",   heap_mapped,        heap_mapped,       BYTES, "mapped")          \
    X("os",    "segments",       seg.segments,       segments,          COUNT, "segments")        \
    X("os",    "segment_bytes",  seg.mapped,         segment_bytes,     BYTES, "in segments")     \
    X("os",    "mapped_total",   seg.mapped_total,   os_mapped_total,   BYTES, "mapped in all")   \
    X("os",    "returned_total", seg.unmapped_total, os_returned_total, BYTES, "returned in all") \
    Y("os",    "dirty_bytes",    seg.dirty,                             BYTES, "dirty")           \
    X(NULL,    "threads",        threads,            threads,           COUNT, "threads with a cache")
/* A size class's figures, in the order of the table's columns and of the
 * JSON's members (after "class"): X(ms_stats_class_t member, ms_live_class_t
 * field, struct memshim_class_stats field, JSON key, unit, width, heading)
 * for one everything carries, Y(member, JSON key, unit, width, heading)
 * for one derived from the others (the statistics only). */
#define MS_CLASS_FIGURES(X, Y) \
    X(size,   size,   block_size,    "size",              COUNT,     8, "size")   \
    X(spans,  pools,  pools,         "pools",             COUNT,     6, "pools")  \
    X(in_use, in_use, blocks_in_use, "blocks_in_use",     COUNT,    12, "in use") \
    X(free,   free,   blocks_free,   "blocks_free",       COUNT,    12, "free")   \
    Y(bytes,                         "bytes_in_use",      COUNT,    14, "bytes in use") \
    Y(frag,                          "fragmentation_pct", PERMILLE,  6, "frag%")  \
    X(allocs, allocs, allocations,   "allocs",            COUNT,    14, "allocs") \
    X(frees,  frees,  frees,         "frees",             COUNT,    14, "frees")
enum { MS_FIG_BYTES, MS_FIG_COUNT, MS_FIG_NS, MS_FIG_PERMILLE };   /* MS_FIG_ ## unit */
MS_HIDDEN void   _ms_stats_collect(ms_stats_t *st);
MS_HIDDEN void   _ms_stats_collect_heap(ms_stats_t *st);  /* the same, without rss and peak_rss */
MS_HIDDEN void   _ms_stats_print_fd(int fd);
/* Reporting options (options.def), defaults in stats.c. */
typedef struct ms_report_opts_s {
    const char *rss_log;          /* MEMSHIM_RSS_LOG: "stderr" or a path (%p: pid), or NULL */
    unsigned    rss_interval_ms;  /* MEMSHIM_RSS_INTERVAL (100) */
    int         live;             /* MEMSHIM_LIVE: publish figures for `memshim stats PID` */
    unsigned    live_interval_ms; /* MEMSHIM_LIVE_INTERVAL (1000) */
    int         stats_signal;     /* MEMSHIM_STATS_SIGNAL: signal number, or 0 */
    const char *metrics;          /* MEMSHIM_METRICS: a path (%p: pid), or NULL (options.c) */
    unsigned    metrics_interval_ms; /* MEMSHIM_METRICS_INTERVAL (15000) */
} ms_report_opts_t;
MS_HIDDEN extern ms_report_opts_t _ms_ropt;
MS_HIDDEN void   _ms_stats_write(const char *dest);     /* text, or JSON for *.json; atomic */

/* The collector's figures, for MEMSHIM_STATS and the live region, from the
 * collector's glue (gcglue.c); returns 1 and fills *out. */
#define MS_GC_NGEN 3         /* the collector's generations (GC_NGEN, checked in gcapi.c) */
typedef struct ms_gc_figures_s {
    uint64_t collections;    /* cycle collections run */
    uint64_t tracked;        /* objects tracked now */
    uint64_t collected;      /* objects freed by collections, in all */
    uint64_t uncollectable;  /* found unreachable but not freed (finalizers, resurrection) */
    uint64_t time_ns;        /* spent collecting, in all */
    uint64_t gen_collections[MS_GC_NGEN], gen_collected[MS_GC_NGEN], gen_uncollectable[MS_GC_NGEN];
                             /* the same per generation */
} ms_gc_figures_t;
MS_HIDDEN int    _ms_gc_figures(ms_gc_figures_t *out);
/* Its figures as the JSON and the live region name them (gc_ + name there):
 * X(name, unit, label) for the totals (MS_HEAP_FIGURES's units), X(name)
 * for those kept per generation too. */
#define MS_GC_FIGURES(X) \
    X(collections, COUNT, "collections") X(tracked, COUNT, "tracked") X(collected, COUNT, "collected") \
    X(uncollectable, COUNT, "uncollectable") X(time_ns, NS, "time")
#define MS_GC_GEN_FIGURES(X) X(collections) X(collected) X(uncollectable)
MS_HIDDEN void   _ms_gc_glue_init(void) __attribute__((weak)); /* constructor: collector tables */

/* ---- mallinfo.c: glibc's heap questions (override.c), memshim's answers -- */
/* glibc's struct mallinfo2 and struct mallinfo (malloc.h), field for field
 * (mallinfo.c checks): override.c defines mallinfo2() and mallinfo() without
 * malloc.h, whose malloc & co. carry attributes its __libc_ aliases lack. */
typedef struct ms_mallinfo2_s {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} ms_mallinfo2_t;
typedef struct ms_mallinfo_s {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} ms_mallinfo_t;
struct _IO_FILE;
MS_HIDDEN void   _ms_mallinfo2(ms_mallinfo2_t *out);
MS_HIDDEN void   _ms_malloc_stats(void);
MS_HIDDEN int    _ms_malloc_info(int options, struct _IO_FILE *fp);
MS_HIDDEN int    _ms_mallopt(int param, int value);

/* ---- rss.c: the process's memory as the kernel counts it ----------------- */
typedef struct ms_rss_s {
    uint64_t rss, vms, shared, text, data, peak_rss;   /* statm, VmHWM: cheap */
    uint64_t uss, pss, swap;                           /* smaps_rollup: only if full */
} ms_rss_t;
MS_HIDDEN int    _ms_rss_read(ms_rss_t *out, bool full); /* 0, or -1 if /proc is unreadable */
MS_HIDDEN int    _ms_proc_lines(const char *file, bool (*each)(char *line, void *arg), void *arg); /* 4 KiB lines */
MS_HIDDEN int    _ms_proc_lines_in(const char *file, char *buf, size_t cap, bool (*each)(char *line, void *arg),
                                   void *arg);
/* Its figures in the order of MEMSHIM_STATS's JSON ("process"), all bytes,
 * all in struct memshim_rss by the same names: X(name, label) for those the
 * live region publishes too, Y(name, label) for the others. */
#define MS_RSS_FIGURES(X, Y) \
    X(rss, "rss") X(peak_rss, "peak rss") X(vms, "vms") Y(shared, "shared") Y(text, "text") \
    Y(data, "data") X(uss, "uss") X(pss, "pss") X(swap, "swap")

/* ---- sampler.c: the reporter thread (RSS log, live region, stats signal) - */
/* The RSS log's columns after time_ms, by their ms_stats_t names, in the
 * order of its lines and of its header (memshim(7), "RSS LOG").  Adding
 * one changes the format: its version, the man page, and `memshim plot`
 * (tools/plot.c), which reads exactly these. */
#define MS_RSS_LOG_FIGURES(X) X(rss) X(peak_rss) X(heap_in_use) X(heap_mapped)
MS_HIDDEN void   _ms_reporter_start(void);              /* constructor, after the options */
MS_HIDDEN void   _ms_reporter_stop(void);               /* at exit: last sample, withdraw */
MS_HIDDEN void   _ms_reporter_thread_left(void);        /* a thread of the program ends (tcache.c) */
MS_HIDDEN void   _ms_reporter_fork_child(void);         /* atfork child, after the locks */
MS_HIDDEN void   _ms_reporter_hold(void);               /* around setuid() & co., unshare, setns: no thread of ours */
MS_HIDDEN void   _ms_reporter_release(void);
MS_HIDDEN bool   _ms_reporter_exec_hold(void);          /* before exec: no thread of ours, no metrics file; true: release if it fails */

/* ---- live.c: the figures published for `memshim stats PID` (live.h) ------ */
struct ms_live_s;
MS_HIDDEN bool   _ms_live_open(void);
MS_HIDDEN void   _ms_live_publish(void);
MS_HIDDEN void   _ms_live_close(void);                  /* exit, or a fork child */
MS_HIDDEN void   _ms_live_fill(struct ms_live_s *l, bool smaps); /* the figures now (reporter thread) */
MS_HIDDEN void   _ms_live_header(struct ms_live_s *l, unsigned interval_ms); /* magic, pid, program... */
MS_HIDDEN void   _ms_live_note_leaks(const double blocks[MS_NKINDS], const double bytes[MS_NKINDS]);

/* ---- sampler.c, metrics.c: MEMSHIM_METRICS, a node_exporter textfile ------ */
MS_HIDDEN void   _ms_metrics_write(void);               /* the reporter thread, every interval */
MS_HIDDEN void   _ms_metrics_withdraw(void);            /* at exit: the file goes */
MS_HIDDEN void   _ms_metrics_fork_child(void);          /* the parent's file stays the parent's */

/* ---- profile.c, pprof.c: the heap profiler ------------------------------- *
 * Per-stack counters (kept in the trace table, stacks.c) updated on every
 * tracked allocation and free (in place while the process has one thread,
 * then through the thread's slot for the stack), per-thread state (the
 * last block allocated, the heap change not yet published, a size
 * histogram) through one TLS pointer, and the peak: a snapshot of every
 * stack's live bytes taken at the first free after the heap in use passed
 * the last recorded peak by 1% (at least 64 KiB). */
/* A stack's changes: in its counters, or in one thread's slot for it. */
typedef struct ms_prof_counts_s {
    uint64_t allocs;                    /* allocations from this stack, in all */
    uint64_t alloc_bytes;
    uint64_t frees;                     /* of those, freed later than temporaries */
    uint64_t freed_bytes;
    uint64_t temps, temp_bytes;         /* freed before the thread's next allocation:
                                         * live = allocs - frees - temps */
} ms_prof_counts_t;
typedef struct ms_prof_s {
    _Alignas(64) ms_prof_counts_t k;
    uint64_t peak_blocks, peak_bytes;   /* live at the recorded peak */
} ms_prof_t;
/* One line a stack: an allocation and its free touch one line, not two (a
 * compiler's 25,000 stacks missed the cache on both).  Threads do not fight
 * over it: with more than one, changes go through their slots. */
_Static_assert(sizeof(ms_prof_t) == 64, "one cache line for a stack's counters");
#define MS_PROF_CHUNK   1024u           /* stacks.c: ids per chunk of counters */
#define MS_PROF_NCHUNKS 32768u          /* 32 Mi stacks: more than the trace table holds */
MS_HIDDEN extern ms_prof_t *_ms_prof_chunks[MS_PROF_NCHUNKS];
/* The counters of stack id, not 0: every stored id has its chunk (stacks.c
 * maps it before the id is handed out), and MS_STACK_OOM falls in the last
 * chunk, which no stored id reaches and which is a sink once memory ran out
 * (counts nobody reads), so the lookup tests nothing. */
static inline ms_prof_t *_ms_stack_prof(uint32_t id)
{
    uint32_t i = id - 1;
    ms_prof_t *c = __atomic_load_n(&_ms_prof_chunks[i / MS_PROF_CHUNK % MS_PROF_NCHUNKS], __ATOMIC_ACQUIRE);
    return c + i % MS_PROF_CHUNK;
}
MS_HIDDEN ms_prof_t *_ms_prof_at(uint32_t i);            /* the counters of id i + 1 */
MS_HIDDEN uint32_t _ms_prof_count(void);
MS_HIDDEN void   _ms_stack_each(void (*fn)(void *arg, uint32_t id), void *arg);

#define MS_PROF_HIST  41                /* bucket b: sizes with bit length b (0: size 0), the
                                         * last one all larger sizes */
#define MS_PROF_BITS  64                /* a thread's histogram: one bucket a bit length, so
                                         * that counting needs no bound (profile.c folds) */
#define MS_PROF_PUBLISH ((int64_t)64 << 10)
/* Once the process has a second thread, a thread's changes to a stack's
 * counts first go to its own slot for the stack (slot id % MS_PROF_SLOTS),
 * with plain adds: locked adds on counters that several threads share cost
 * a multithreaded program ~20% more than tracking alone (mstress, xthread).
 * A slot taken by another stack hands its changes to the stack's counters;
 * readers (profiles, the peak) add every thread's slots to the counters.
 * While the process has one thread, changes go to the counters in place:
 * each a single add, which a signal handler's change cannot fall inside
 * (a slot's hand-on, several steps, could lose a handler's count). */
#define MS_PROF_SLOTS 64
typedef struct ms_prof_slot_s {
    uint32_t stack;                     /* 0: none */
    ms_prof_counts_t k;
    uint64_t spare;
} ms_prof_slot_t;
_Static_assert(sizeof(ms_prof_slot_t) == 64, "a slot's address is a shift away");
/* A free is not added to its stack's counters at once but written to the
 * thread's log, and the log's MS_PROF_LOG frees are added together: the
 * counters' address comes from the block's record, which a program freeing
 * old blocks has to fetch from memory, and adds to an address not yet
 * known held back the frees after them (1 M blocks freed in random order:
 * about 95 ns a free over tracking with the adds in place, 30 ns logged).
 * Readers add the logs of every thread (profile.c, figures).  A free in a
 * signal handler that interrupts one of its thread's frees may be logged
 * twice or not at all: a figure off by a block, never a write outside the
 * log. */
#define MS_PROF_LOG 32
/* A logged free: one block of (bits 32-63) bytes from stack (bits 0-31).
 * One store: each store waiting for a missed record holds a place in the
 * processor's store queue, and the frees in flight are as many as it holds. */
typedef uint64_t ms_prof_freed_t;
#define MS_PROF_FREED(stack, bytes) ((uint64_t)(stack) | (uint64_t)(bytes) << 32)
#define MS_PROF_FREED_STACK(e) ((uint32_t)(e))
#define MS_PROF_FREED_BYTES(e) ((e) >> 32)
typedef struct ms_prof_thread_s {
    const void *last;                   /* the thread's last block allocated (temporaries) */
    int64_t     last_left;              /* sampling: the countdown just after `last` was
                                         * taken; moved, the thread allocated since */
    int64_t     pending;                /* heap change not yet added to _ms_prof_heap */
    int64_t     room;                   /* _ms_prof_peak_next - _ms_prof_heap when last read */
    unsigned    log_room;               /* free entries of log[], filled from the end:
                                         * frees in log[log_room..MS_PROF_LOG-1] */
    int         flushing;               /* in _ms_prof_log_flush (a signal handler's
                                         * frees then go to the counters at once) */
    int         logging;                /* writing a free to the log (the same) */
    uint32_t    tid;                    /* of the thread that holds this state */
    int         in_use;                 /* claimed by a live thread */
    struct ms_prof_thread_s *next;      /* all of them, never removed */
    uint64_t    hist[MS_PROF_BITS];     /* allocations by size (bit length) */
    ms_prof_freed_t log[MS_PROF_LOG];   /* frees not yet in the counters */
    ms_prof_slot_t slot[MS_PROF_SLOTS]; /* changes not yet in the counters */
} ms_prof_thread_t;
MS_HIDDEN extern __thread ms_prof_thread_t *_ms_prof_tl __attribute__((tls_model("initial-exec")));
MS_HIDDEN extern ms_prof_thread_t _ms_prof_dying;   /* the state exiting threads share: no slots, a log
                                                     * with no room (and no entries) */
MS_HIDDEN extern int64_t _ms_prof_heap;       /* heap in use (bytes), published part */
MS_HIDDEN extern int64_t _ms_prof_peak_next;  /* a free above this refreshes the peak: each
                                               * thread's test is pending > room (no shared
                                               * line read), room renewed when it publishes */
MS_HIDDEN ms_prof_thread_t *_ms_prof_thread(void);
MS_HIDDEN void   _ms_prof_publish(ms_prof_thread_t *t);
/* The log's frees to the counters: the log's room now, MS_PROF_LOG, or 0
 * for the state exiting threads share, whose log has no room (its frees
 * go straight to the counters). */
MS_HIDDEN unsigned _ms_prof_log_flush(ms_prof_thread_t *t);
/* The slot of stack in t, after handing its previous stack's changes on;
 * NULL when the changes must go straight to the counters (the state that
 * exiting threads share). */
MS_HIDDEN ms_prof_slot_t *_ms_prof_slot_take(ms_prof_thread_t *t, uint32_t stack);
/* A free found the heap estimate (as of t's last look) above the next peak
 * to record: the peak's snapshot if it still is, and t's room again. */
MS_HIDDEN void   _ms_prof_peak(ms_prof_thread_t *t);
MS_HIDDEN void   _ms_prof_thread_exit(void);
MS_HIDDEN void   _ms_prof_fork_child(void);
MS_HIDDEN void   _ms_profile_init(void);               /* constructor: MEMSHIM_PROFILE_SIGNAL */
MS_HIDDEN void   _ms_profile_at_exit(void);
MS_HIDDEN int    _ms_profile_write(const char *dest, const char *when); /* 0, or -1 */
/* The RSS log's "# site" and "# sites" lines after a sample at t_ms (the
 * reporter thread; nothing when not tracking or over its 1% budget). */
MS_HIDDEN void   _ms_prof_sites_line(ms_buf_t *b, uint64_t t_ms, uint64_t now_ns);
MS_HIDDEN void   _ms_prof_sites_reset(void);           /* a new log: name sites again */
MS_HIDDEN void   _ms_stack_json(ms_buf_t *b, uint32_t stack);   /* report.c: "[{frame}, ...]" */
MS_HIDDEN unsigned _ms_stack_frames(uint32_t stack, ms_frame_t *f); /* report.c: up to main */

/* The bit length of n (0 for 0): its bucket in a thread's histogram, with
 * no test (n << 1 | 1 is never 0). */
static inline unsigned _ms_prof_bucket(size_t n) { return 63u - (unsigned)__builtin_clzll((uint64_t)n << 1 | 1); }

/* With MEMSHIM_SAMPLE=N a sampled block of n bytes stands for 1/p blocks,
 * p = 1 - e^(-n/N) its chance of being sampled: counts are then kept in
 * 1/MS_PROF_UNIT blocks (MS_PROF_UNIT/p per block) and bytes as n/p, so the
 * same block always adds and takes away the same amounts. */
#define MS_PROF_UNIT 1024u
MS_HIDDEN uint64_t _ms_prof_weigh(size_t n, uint64_t *bytes);

/* Add v to a count: a plain add of one instruction (a signal handler's add
 * cannot fall inside it) to what only this thread writes (`own`), a locked
 * add otherwise. */
static inline void _ms_prof_add(bool own, uint64_t *p, uint64_t v)
{
#if defined(__x86_64__)
    if (MS_LIKELY(own)) {
        __asm__ volatile("addq %1, %0" : "+m"(*p) : "er"(v));
        return;
    }
#endif
    __atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

/* The counts in stack's counters (stack not 0). */
static inline ms_prof_counts_t *_ms_prof_counters(uint32_t stack) { return &_ms_stack_prof(stack)->k; }

/* The counts of stack (not 0) in t's slot for it, or NULL: the slot holds
 * another stack's. */
static inline __attribute__((always_inline))
ms_prof_counts_t *_ms_prof_slot_of(ms_prof_thread_t *t, uint32_t stack)
{
    ms_prof_slot_t *s = &t->slot[stack % MS_PROF_SLOTS];
    return MS_LIKELY(s->stack == stack) ? &s->k : NULL;
}

/* Where t's change to stack's counts (stack not 0) goes at once, or NULL
 * (then _ms_prof_tally, below): while the process has one thread
 * (__libc_single_threaded, which glibc clears for good at the first
 * pthread_create), the stack's counters; afterwards t's slot for the
 * stack if it holds that stack. */
static inline __attribute__((always_inline))
ms_prof_counts_t *_ms_prof_here(ms_prof_thread_t *t, uint32_t stack)
{
    if (MS_LIKELY(__libc_single_threaded)) return _ms_prof_counters(stack);
    return _ms_prof_slot_of(t, stack);
}

/* profile.c: _ms_prof_here found nothing: w blocks of nb bytes (in all)
 * from stack, not 0, counted where they go (the slot, taken from the stack
 * it held, or the counters; nowhere without counters): allocations, frees
 * or temporaries. */
enum { MS_PROF_ALLOCS, MS_PROF_FREES, MS_PROF_TEMPS };
MS_HIDDEN void _ms_prof_tally(ms_prof_thread_t *t, uint32_t stack, unsigned which, uint64_t w, uint64_t nb);

/* w blocks of nb bytes added to k's allocations, frees or temporaries
 * (`which`), with plain adds if `own`. */
static inline __attribute__((always_inline))
void _ms_prof_add_to(ms_prof_counts_t *k, unsigned which, bool own, uint64_t w, uint64_t nb)
{
    switch (which) {
    case MS_PROF_ALLOCS:
        _ms_prof_add(own, &k->allocs, w);
        _ms_prof_add(own, &k->alloc_bytes, nb);
        break;
    case MS_PROF_FREES:
        _ms_prof_add(own, &k->frees, w);
        _ms_prof_add(own, &k->freed_bytes, nb);
        break;
    default:
        _ms_prof_add(own, &k->temps, w);
        _ms_prof_add(own, &k->temp_bytes, nb);
    }
}

/* w blocks of nb bytes from stack (not 0), as `which`, where thread t's
 * changes go: at once (_ms_prof_here), else through _ms_prof_tally. */
static inline __attribute__((always_inline))
void _ms_prof_note(ms_prof_thread_t *t, uint32_t stack, unsigned which, uint64_t w, uint64_t nb)
{
    ms_prof_counts_t *k = _ms_prof_here(t, stack);
    if (MS_LIKELY(k != NULL)) _ms_prof_add_to(k, which, true, w, nb);
    else _ms_prof_tally(t, stack, which, w, nb);
}

/* A block of n bytes from stack was handed out, counting w blocks of nb
 * bytes in all (1 and n without sampling). */
static inline __attribute__((always_inline))
void _ms_prof_alloc_w(uint32_t stack, size_t n, const void *p, uint64_t w, uint64_t nb)
{
    ms_prof_thread_t *t = _ms_prof_tl;
    if (MS_UNLIKELY(!t) && !(t = _ms_prof_thread())) return;
    if (MS_UNLIKELY(!stack)) return;          /* counted nowhere (the free's test too) */
    _ms_prof_note(t, stack, MS_PROF_ALLOCS, w, nb);
    t->hist[_ms_prof_bucket(n)] += w;
    t->last = p;
    if (MS_UNLIKELY((t->pending += (int64_t)nb) >= MS_PROF_PUBLISH)) _ms_prof_publish(t);
}

/* The block p of n bytes from stack, allocated by thread tid, is released
 * (or resized away), counting w blocks of nb bytes: a temporary (the
 * thread's last block allocated, and allocated by this thread: the same
 * address handed out again by another thread is another block) where its
 * allocation has just been counted; another block not sampled (w 1) to
 * the thread's log; a sampled one (rare) straight to the counts.
 *
 * The peak is looked at before the free when the heap may have passed the
 * next one: this thread's figures say so, or the free will publish a fall
 * of 64 KiB, after which the heap other threads published (a worker's
 * blocks freed by main) would no longer show it.
 *
 * A signal handler's free that interrupts this thread's write to its log
 * (`logging`) goes to the counts at once: writing the same entry, one of
 * the two frees was lost. */
static inline __attribute__((always_inline))
void _ms_prof_free_w(uint32_t stack, const void *p, uint64_t w, uint64_t nb, uint32_t tid)
{
    ms_prof_thread_t *t = _ms_prof_tl;
    if (MS_UNLIKELY(!t) && !(t = _ms_prof_thread())) return;
    if (MS_UNLIKELY(t->pending > t->room) || MS_UNLIKELY(t->pending - (int64_t)nb <= -MS_PROF_PUBLISH))
        _ms_prof_peak(t);               /* before the free: the heap at its high */
    if (p == t->last && tid == t->tid) {
        t->last = NULL;
        if (MS_UNLIKELY(!stack)) return;
        _ms_prof_note(t, stack, MS_PROF_TEMPS, w, nb);
    } else {
        if (MS_UNLIKELY(!stack)) return;    /* counted nowhere (as by the allocation) */
        unsigned i = 0;
        if (MS_LIKELY(w == 1 && nb <= UINT32_MAX) && MS_LIKELY(!t->logging)) {
            t->logging = 1;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            i = t->log_room;
            if (MS_UNLIKELY(i == 0)) i = _ms_prof_log_flush(t);
            if (MS_LIKELY(i != 0)) {
                __atomic_store_n(&t->log[i - 1], MS_PROF_FREED(stack, nb), __ATOMIC_RELAXED);
                __atomic_store_n(&t->log_room, i - 1, __ATOMIC_RELEASE);    /* readers see the entry whole */
            }
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            t->logging = 0;
        }
        if (MS_UNLIKELY(i == 0)) _ms_prof_tally(t, stack, MS_PROF_FREES, w, nb);
    }
    if (MS_UNLIKELY((t->pending -= (int64_t)nb) <= -MS_PROF_PUBLISH)) _ms_prof_publish(t);
}

/* Sampling sees only the sampled allocations, so `last` is the thread's
 * last sampled block, and a block freed after others were allocated (not
 * sampled) looked temporary: a loop of x = a(); y = b(); free(x) counted a
 * million temporaries where there are none (found by a helper).  Any
 * allocation of the thread (but one of 0 bytes, or a realloc that stays
 * in place) moves its countdown, so the countdown kept as a sample is
 * counted tells whether one came since.  A sampled block is counted, and
 * released, through these two (profile.c, sample.c). */
static inline void _ms_prof_alloc_sample(uint32_t stack, size_t n, const void *p, uint64_t w, uint64_t nb)
{
    _ms_prof_alloc_w(stack, n, p, w, nb);
    if (_ms_prof_tl) _ms_prof_tl->last_left = _ms_sample_left;
}
static inline void _ms_prof_free_sample(uint32_t stack, const void *p, uint64_t w, uint64_t nb, uint32_t tid)
{
    ms_prof_thread_t *t = _ms_prof_tl;
    if (t && t->last == p && t->last_left != _ms_sample_left) t->last = NULL;   /* not a temporary */
    _ms_prof_free_w(stack, p, w, nb, tid);
}
MS_HIDDEN void _ms_prof_alloc_sampled(uint32_t stack, size_t n, const void *p);
MS_HIDDEN void _ms_prof_free_sampled(uint32_t stack, size_t n, const void *p, uint32_t tid);
static inline __attribute__((always_inline)) void _ms_prof_alloc(uint32_t stack, size_t n, const void *p)
{
    if (MS_UNLIKELY(_ms_opt.sample)) _ms_prof_alloc_sampled(stack, n, p);
    else _ms_prof_alloc_w(stack, n, p, 1, n);
}
static inline __attribute__((always_inline))
void _ms_prof_free(uint32_t stack, size_t n, const void *p, uint32_t tid)
{
    if (MS_UNLIKELY(_ms_opt.sample)) _ms_prof_free_sampled(stack, n, p, tid);
    else _ms_prof_free_w(stack, p, 1, n, tid);
}

#endif
