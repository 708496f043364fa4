/* fds.c - memshim's own descriptors, and the program's calls that would
 * close or replace them.
 *
 * memshim holds descriptors while the program runs: its copy of standard
 * error, the output being written (a report, a profile written by the
 * reporter thread, the RSS log, the metrics file), the live region's memfd,
 * the process's /proc directory and status file, the probe pipe, and the
 * files libdw and libunwind keep open; and it reads files it closes at
 * once: /proc's (the reporter thread's figures, a scan's maps and pagemap,
 * the symbolizer's maps, the tracer's, park.c), the options and
 * suppressions files.  Each sits at MS_FD_MIN or above, close-on-exec, and
 * is registered from before its birth to its close (below).  Without
 * memshim those numbers would not be open: a
 * program that closes every descriptor (a loop to the limit, closefrom(3),
 * close_range(3, ~0U, 0)) and opens files of its own could otherwise close
 * memshim's and take the number back between memshim's check of the file's
 * identity and its write, and memshim's bytes went into the program's
 * file.  As valgrind does for its own descriptors, the program's close(),
 * closefrom(), close_range(), dup2() and dup3() (override.c) never close
 * one of memshim's, and answer as they would without memshim:
 *   - close(N) of memshim's N: -1, EBADF; N stays memshim's;
 *   - closefrom / close_range: the program's descriptors of the range are
 *     closed, the range split around memshim's; CLOSE_RANGE_CLOEXEC is
 *     passed on whole (it only sets close-on-exec, which memshim's have);
 *     CLOSE_RANGE_UNSHARE unshares the calling thread's table first, then
 *     the gaps are closed in that table (memshim's copies stay there,
 *     close-on-exec, as they stay in the table the other threads keep);
 *   - dup2/dup3 onto memshim's N succeed as without memshim: N is dropped
 *     from the registry first and the program's file replaces memshim's.
 *     memshim does not move its descriptor out of the way (libdw and
 *     libelf keep the numbers they opened inside their own structures,
 *     where nothing can renumber them); its writers find by identity that
 *     N is no longer theirs and open the output again by name or drop it,
 *     as before.  dup2/dup3 from memshim's N (old): EBADF.
 * The C library's syscall() (override.c) takes the same ways for
 * SYS_close, SYS_close_range, SYS_dup2 and SYS_dup3.  A system call the
 * program makes itself cannot be seen: the identity checks before each of
 * memshim's writes stay as the backstop.
 *
 * The registry: SLOTS slots, each a word (the number + 1, or during a
 * birth the thread's id and a "birth" bit; a "closing" bit; a generation)
 * and the file's identity (st_dev, st_ino), read without a
 * lock, written with atomic compare-and-swap: async-signal-safe (close is
 * called from handlers and in fork and vfork children), no allocation, and
 * no lock the program could deadlock on.  The program's path is one compare
 * with fd_low (no number of memshim's lies below it), then a scan of the
 * slots in use.  A number found there is memshim's only if the descriptor
 * still is the file memshim registered (fstat): a registration is a claim
 * the kernel's table confirms, never an order, so a number that a library
 * closed behind memshim's back, or that the program closed by a direct
 * system call and reused, is dropped and closed for real.
 *
 * Births: every descriptor memshim makes (open, pipe, memfd, a copy by
 * F_DUPFD) is claimed a slot before the system call that makes it: a
 * program's close of that number between the kernel's answer and the
 * registration took memshim's short-lived /proc descriptor, its open took
 * the number back, and memshim read the program's file and closed it.
 * While a birth is under way fd_low is 0, and the program's calls look at
 * the registry, where they wait for another thread's birth (its number
 * could be any); see _ms_fd_birth_begin for what is left.
 *
 * memshim's own closes (_ms_fd_close, and hook.c's for its libraries) mark
 * the slot "closing" with their thread's id, close with the raw system
 * call, then free the slot: a close by another thread of the number in
 * between waits for that (the number may be the program's the moment the
 * kernel has freed it); one by the closing thread itself (a handler) says
 * EBADF.  A fork child forgets the slots a thread of its parent was
 * closing, or giving birth in.  A vfork child (or a CLONE_VM child) shares
 * this memory but not the table: it never changes the registry nor waits
 * for a birth (none lands in its table), and its calls are answered from
 * the registry as the parent's would be (its copies of memshim's
 * descriptors go at its exec, being close-on-exec). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "shim.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define SLOTS      512
#define W_FD_MASK  0xffffffffull             /* the number + 1 (a birth: its thread); 0: a free slot */
#define W_CLOSING  (1ull << 32)
#define W_BIRTH    (1ull << 33)              /* claimed for a number the kernel has yet to give */
#define W_GEN      34                        /* the generation, above */
#define GEN_MASK   0x3fffffffull

static uint64_t slot_word[SLOTS];
static dev_t    slot_dev[SLOTS];
static ino_t    slot_ino[SLOTS];
static int      slot_closer[SLOTS];          /* the thread closing it (W_CLOSING) */
static unsigned slot_top;                    /* slots ever used: the scan's end */
static uint32_t generation;
static int      births;                      /* slots claimed by births not yet settled */
static uint64_t gate;                        /* births going (high half), close_ranges under way (low) */
static __thread uint32_t my_ranges __attribute__((tls_model("initial-exec")));   /* this thread's of those */
#define GATE_BIRTH (1ull << 32)
int _ms_fd_low = INT_MAX;                    /* at or below every registered number; 0 during a birth */

/* The C library's close, dup2 and dup3, for the program's calls (close
 * is a cancellation point there): found by override.c before main and by
 * the constructor, never later (dlsym is no call for a handler); until
 * then the system calls themselves. */

static int w_fd(uint64_t w) { return (int)(w & W_FD_MASK) - 1; }
static bool w_numbered(uint64_t w) { return (w & W_FD_MASK) && !(w & W_BIRTH); }
static uint64_t next_gen(void) { return __atomic_add_fetch(&generation, 1, __ATOMIC_RELAXED) & GEN_MASK; }

/* The lowest registered number; 0 while a birth may take any. */
static int low_scan(void)
{
    unsigned top = __atomic_load_n(&slot_top, __ATOMIC_SEQ_CST);
    int low = INT_MAX;
    for (unsigned i = 0; i < top; i++) {
        uint64_t w = __atomic_load_n(&slot_word[i], __ATOMIC_SEQ_CST);
        if (w & W_BIRTH) return 0;
        if (w_numbered(w) && w_fd(w) < low) low = w_fd(w);
    }
    return low;
}

/* fd_low after a slot was freed: stored, then checked by a second scan (a
 * registration that a scan missed lowered it after the store, or the
 * second scan sees it). */
static void low_refresh(void)
{
    for (int tries = 0; tries < 64; tries++) {
        int low = low_scan();
        __atomic_store_n(&_ms_fd_low, low, __ATOMIC_SEQ_CST);
        if (low_scan() == low) return;
    }
    __atomic_store_n(&_ms_fd_low, 0, __ATOMIC_SEQ_CST);    /* churning: every close looks */
}

/* The slot registering fd (its word in *w), or -1.  Inline: the program's
 * close of a number at or above fd_low is this loop. */
static inline __attribute__((always_inline)) int find(int fd, uint64_t *w)
{
    unsigned top = __atomic_load_n(&slot_top, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < top; i++) {
        uint64_t v = __atomic_load_n(&slot_word[i], __ATOMIC_ACQUIRE);
        if ((v & W_FD_MASK) == (uint64_t)fd + 1 && !(v & W_BIRTH)) { *w = v; return (int)i; }
    }
    return -1;
}

/* Whether the slot read as w still is the file memshim registered at fd. */
static bool slot_holds(unsigned i, uint64_t w, int fd)
{
    dev_t dev = slot_dev[i];
    ino_t ino = slot_ino[i];
    return __atomic_load_n(&slot_word[i], __ATOMIC_ACQUIRE) == w && _ms_os_same_file(fd, dev, ino);
}

static bool drop_slot(unsigned i, uint64_t w)
{
    if (!__atomic_compare_exchange_n(&slot_word[i], &w, 0, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return false;
    low_refresh();
    return true;
}

/* Forget every stale slot of fd (the kernel just gave fd to memshim: none
 * of them is right any more). */
static void forget_number(int fd)
{
    uint64_t w;
    int i;
    while ((i = find(fd, &w)) >= 0 && !(w & W_CLOSING) && drop_slot((unsigned)i, w)) {}
}

static bool changes_allowed(void) { return !_ms_shares_memory_with_home(); }

/* ---- births: memshim's new descriptors ------------------------------------------ */

/* A slot claimed, by thread tid, for a number the kernel has yet to give
 * (a birth), once no close_range of the program's is under way (the gate,
 * birth_go); -1 when the registry is full.  From the claim to its
 * settle() fd_low is 0: every close, closefrom, close_range, dup2 and
 * dup3 of the program's looks at the registry, and waits there while
 * another thread's birth is under way (births_wait), whatever its
 * number, which nobody knows before the kernel's answer. */
static void birth_go(bool tracer);

static int claim(int tid, uint64_t *word, bool tracer)
{
    birth_go(tracer);                       /* first: the program's closes never wait for a birth at the gate */
    __atomic_add_fetch(&births, 1, __ATOMIC_SEQ_CST);
    uint64_t want = (next_gen() << W_GEN) | W_BIRTH | (uint32_t)tid;
    for (unsigned i = 0; i < SLOTS; i++) {
        uint64_t w = __atomic_load_n(&slot_word[i], __ATOMIC_ACQUIRE);
        if (w || !__atomic_compare_exchange_n(&slot_word[i], &w, want, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            continue;
        unsigned top = __atomic_load_n(&slot_top, __ATOMIC_RELAXED);
        while (top < i + 1 && !__atomic_compare_exchange_n(&slot_top, &top, i + 1, false, __ATOMIC_SEQ_CST,
                                                           __ATOMIC_RELAXED)) {}
        __atomic_store_n(&_ms_fd_low, 0, __ATOMIC_SEQ_CST);
        *word = want;
        return (int)i;
    }
    __atomic_sub_fetch(&births, 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&gate, GATE_BIRTH, __ATOMIC_SEQ_CST);
    return -1;                              /* full: unprotected, as before the registry */
}

/* The birth of slot i (claimed as `word`) is over: fd (-1: none was
 * made), the file dev/ino, registered there at its number.  A fork child
 * forgets the births of the parent's threads (_ms_fds_fork_child), its
 * own thread's too when a handler forked in the middle of one: the slot
 * is then no longer `word`, and fd stays unregistered in that child. */
static void settle(int i, uint64_t word, int fd, dev_t dev, ino_t ino)
{
    if (i < 0) return;
    if (fd >= 0) forget_number(fd);         /* the kernel just gave fd: no old slot of it is right */
    if (__atomic_load_n(&slot_word[i], __ATOMIC_ACQUIRE) == word) {
        slot_dev[i] = dev;
        slot_ino[i] = ino;
    }
    uint64_t now = fd >= 0 ? (next_gen() << W_GEN) | ((uint64_t)fd + 1) : 0;
    if (!__atomic_compare_exchange_n(&slot_word[i], &word, now, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return;
    __atomic_sub_fetch(&gate, GATE_BIRTH, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&births, 1, __ATOMIC_SEQ_CST);
    low_refresh();
}

/* The program's side: while another thread's birth is under way its
 * number may be any, the one about to be closed too.  Waited for, not
 * forever: a birth is an open(2), a pipe, a dup, which never wait for the
 * program, but the file may be on a file system served by the program
 * itself (FUSE), or the thread stopped by a debugger; after about a second
 * the program's call goes on, and memshim's checks of its files' identity
 * remain.  A birth of the calling thread itself (a handler that came in
 * while memshim's signals were not held: under a seccomp filter) is not
 * waited for: it cannot go on before the handler returns. */
#define BIRTH_YIELDS 64
#define BIRTH_NAPS   10000                  /* of 100 us */
#define WAIT_ROUNDS  (BIRTH_YIELDS + BIRTH_NAPS)

/* One round of those waits: a yield, later a nap (_ms_raw_nap_ns). */
static void pause_round(unsigned round)
{
    if (round < BIRTH_YIELDS) sched_yield();
    else _ms_raw_nap_ns(100000);
}

static void births_wait(void)
{
    if (my_ranges) return;                  /* inside a close_range of its own: the gate holds births back */
    int me = 0;
    for (unsigned round = 0; round < WAIT_ROUNDS; round++) {
        bool other = false;
        unsigned top = __atomic_load_n(&slot_top, __ATOMIC_SEQ_CST);
        for (unsigned i = 0; i < top && !other; i++) {
            uint64_t w = __atomic_load_n(&slot_word[i], __ATOMIC_SEQ_CST);
            if (!(w & W_BIRTH)) continue;
            if (!me) me = _ms_os_gettid();
            other = (int)(w & W_FD_MASK) != me;
        }
        if (!other) return;
        pause_round(round);
    }
}

/* Whether a close of the program's must look for births first (not in a
 * guest: its table is its own, where no birth of the parent's lands). */
static void births_settle(void)
{
    if (__atomic_load_n(&births, __ATOMIC_SEQ_CST) && changes_allowed()) births_wait();
}

/* The program's close_range (closefrom) closes a range of numbers in one
 * system call, during which the kernel hands out the numbers it has passed
 * and has yet to reach: a birth meanwhile landed on one of those, and the
 * kernel closed it under memshim (a profile's file, whose write then said
 * EBADF, in 3 runs of 30 of fd_churn).  The gate keeps the two apart: a
 * birth goes (makes its system call) only while no close_range is under
 * way, a close_range starts only while no birth is going; each waits for
 * the other, bounded as births_wait's (the program's close_range may
 * itself wait: a file's flush on FUSE).  A birth made on a thread inside
 * its own close_range (a handler, memshim's work in the call) does not
 * wait for it, nor the tracer's (park.c: it stops the program's threads,
 * one of them perhaps in a close_range; its reads check the file after). */
/* Into the gate as a birth going (GATE_BIRTH; `waits`: not the tracer's)
 * or as a close_range (1), once the other kind is out. */
static void gate_enter(uint64_t as, bool waits)
{
    for (unsigned round = 0;; round++) {
        uint64_t g = __atomic_load_n(&gate, __ATOMIC_SEQ_CST);
        bool blocked = as == 1 ? (g >> 32) != 0 : waits && (uint32_t)g > my_ranges;
        bool wait = blocked && round < WAIT_ROUNDS;
        if (!wait && __atomic_compare_exchange_n(&gate, &g, g + as, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return;
        if (wait) pause_round(round);
    }
}

static void birth_go(bool tracer) { gate_enter(GATE_BIRTH, !tracer); }

static void ranges_enter(void)
{
    my_ranges++;                            /* first: a handler's birth in here never waits for it */
    gate_enter(1, true);
}

static void ranges_leave(void)
{
    __atomic_sub_fetch(&gate, 1, __ATOMIC_SEQ_CST);
    my_ranges--;
}

/* A copy of memshim's fd (the file dev/ino), born at MS_FD_MIN or above,
 * in place of fd; fd itself where the limit on descriptors forbids it. */
static int move_high(int fd, dev_t dev, ino_t ino, int tid)
{
    uint64_t word = 0;
    int i = tid ? claim(tid, &word, false) : -1;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, MS_FD_MIN);
    bool same = high >= 0 && _ms_os_same_file(high, dev, ino);
    settle(i, word, same ? high : -1, dev, ino);
    if (high >= 0 && !same) {       /* the program's file: the program had taken fd before its registration */
        _ms_os_close(high);
        _ms_fd_forget(fd);
        errno = EBADF;
        return -1;
    }
    if (high < 0) return fd;
    _ms_fd_close(fd);
    return high;
}

/* Every descriptor memshim makes (opened, a pipe, a memfd, a copy) is
 * born this way: registered as memshim's from before the system call that
 * makes it, so that no close of the program's can take it between the
 * kernel's answer and the registration, then moved to MS_FD_MIN or above,
 * where the program's numbers are not, and kept registered until
 * _ms_fd_close.  Signals are held meanwhile (all but a fault's; not under
 * a seccomp filter, _ms_os_signals_defer): a handler of the program's that
 * closes descriptors cannot come in between on the same thread, where
 * nothing could wait for the birth.  What is left: a close (dup2, dup3)
 * of the program's that looked at fd_low before the claim and reaches the
 * kernel after memshim's open, the few instructions of its own between
 * the two.  Closing those would need every close to announce itself, as
 * close_range does (the gate, above), at the cost of two atomic
 * read-modify-writes of a shared word on every close, and memshim to wait
 * for the program's close system calls; the identity checks of each of
 * memshim's uses stay for it. */
void _ms_fd_birth_begin(ms_birth_t *b, unsigned n)
{
    b->n = 0;
    b->tid = 0;
    b->held = false;
    if (!changes_allowed()) return;         /* a guest: its table is its own; nothing registered */
    b->held = _ms_os_signals_defer(&b->old);
    b->tid = _ms_os_gettid();
    for (; b->n < n && b->n < 2; b->n++) b->slot[b->n] = claim(b->tid, &b->word[b->n], false);
}

/* fds[0..n), made since _ms_fd_birth_begin (-1: not made), registered,
 * then moved out of the program's way (-1, EBADF, when the program had
 * taken the number after all); signals let in again.  errno is kept (the
 * system call's, for one that failed; EBADF for one the program took). */
void _ms_fd_born(ms_birth_t *b, int *fds, unsigned n)
{
    int err = errno;
    for (unsigned k = 0; k < n; k++) {
        struct stat st;
        int fd = fds[k];
        bool made = fd >= 0 && fstat(fd, &st) == 0;
        if (k < b->n) settle(b->slot[k], b->word[k], made ? fd : -1, made ? st.st_dev : 0, made ? st.st_ino : 0);
        if (made && fd < MS_FD_MIN && (fds[k] = move_high(fd, st.st_dev, st.st_ino, b->tid)) < 0) err = EBADF;
    }
    for (unsigned k = n; k < b->n; k++) settle(b->slot[k], b->word[k], -1, 0, 0);
    if (b->held) _ms_os_signals_restore(&b->old);
    errno = err;
}

/* open(2) (openat, dir), as memshim's. */
int _ms_fd_open(int dir, const char *path, int flags, unsigned mode)
{
    ms_birth_t b;
    _ms_fd_birth_begin(&b, 1);
    int fd = openat(dir, path, flags | O_CLOEXEC, mode);
    _ms_fd_born(&b, &fd, 1);
    return fd;
}

/* memshim's fd, checked to be still the file dev/ino (known by name
 * before it was opened): fd; else -1, EBADF, and the number, now the
 * program's, forgotten and left open. */
int _ms_fd_check(int fd, dev_t dev, ino_t ino)
{
    if (fd < 0 || _ms_os_same_file(fd, dev, ino)) return fd;
    _ms_fd_forget(fd);
    errno = EBADF;
    return -1;
}

/* Whether fd, just opened by name, still is the file at path: the number
 * may be the program's by now, when the program closed it meanwhile and
 * opened a file of its own there.  (A name gone meanwhile says nothing:
 * true.) */
bool _ms_fd_is_path(int fd, const char *path)
{
    int saved = errno;
    struct stat a, b;
    bool is = fd >= 0 && fstat(fd, &a) == 0 && (stat(path, &b) != 0 || (a.st_dev == b.st_dev && a.st_ino == b.st_ino));
    errno = saved;
    return is;
}

/* memshim's own close (its code never calls close(), which is the
 * program's now: override.c), and its libraries' (hook.c): a registered
 * number is closed (by `how`, else the system call) only while it still
 * is memshim's file (the program's otherwise: forgotten, -1 EBADF), and
 * leaves the registry once the kernel freed it; any other descriptor is
 * closed as it is. */
static int close_with(int fd, int (*how)(void *), void *arg)
{
    for (;;) {
        uint64_t w;
        int i = fd >= __atomic_load_n(&_ms_fd_low, __ATOMIC_ACQUIRE) ? find(fd, &w) : -1;
        if (i < 0 || (w & W_CLOSING) || !changes_allowed()) return how ? how(arg) : _ms_os_close(fd);
        if (!slot_holds((unsigned)i, w, fd)) {
            if (!drop_slot((unsigned)i, w)) continue;
            errno = EBADF;
            return -1;
        }
        __atomic_store_n(&slot_closer[i], _ms_os_gettid(), __ATOMIC_SEQ_CST);
        if (!__atomic_compare_exchange_n(&slot_word[i], &w, w | W_CLOSING, false, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
            continue;
        int rc = how ? how(arg) : _ms_os_close(fd);
        int err = errno;
        __atomic_store_n(&slot_word[i], 0, __ATOMIC_SEQ_CST);
        low_refresh();
        errno = err;
        return rc;
    }
}

int _ms_fd_close(int fd) { return close_with(fd, NULL, NULL); }

static int closedir_of(void *d) { return closedir(d); }

/* A directory memshim opened (_ms_fd_open, fdopendir) closed with its
 * descriptor; not closed at all (its memory left) if that number is the
 * program's by now. */
int _ms_fd_closedir(DIR *d) { return close_with(dirfd(d), closedir_of, d); }

/* A stdio stream reading memshim's fd (libdw's fopen, hook.c; the maps
 * given to libdw, symbolize.c), whose fclose comes to _ms_fd_close, not to
 * the C library's close of the number: fdopen's stream closed the
 * program's file when the number had become the program's. */
static ssize_t stream_read(void *c, char *buf, size_t n)
{
    ssize_t r;
    while ((r = read((int)(intptr_t)c, buf, n)) < 0 && errno == EINTR) {}
    return r;
}

static int stream_seek(void *c, off64_t *off, int whence)
{
    off_t r = lseek((int)(intptr_t)c, (off_t)*off, whence);
    if (r < 0) return -1;
    *off = (off64_t)r;
    return 0;
}

static int stream_close(void *c) { return _ms_fd_close((int)(intptr_t)c); }

FILE *_ms_fd_stream(int fd)
{
    cookie_io_functions_t io = { stream_read, NULL, stream_seek, stream_close };
    FILE *f = fopencookie((void *)(intptr_t)fd, "r", io);
    if (!f) {
        int e = errno;
        _ms_fd_close(fd);
        errno = e;
    }
    return f;
}

/* The tracer's read of a small file under dirfd (park.c, thread_ended):
 * the same births and closes, by raw system calls alone (the tracer may
 * touch neither errno nor any thread-local variable), and always (it
 * shares the program's table of descriptors, not its process id).  Left
 * where the kernel put it: the file is read and closed at once. */
long _ms_fd_raw_read_at(int dirfd, const char *name, char *buf, size_t cap)
{
    int tid = _ms_raw_gettid();
    uint64_t word = 0, w;
    int i = claim(tid, &word, true);
    dev_t dev = 0;
    ino_t ino = 0;
    long fd = _ms_raw_openat(dirfd, name);
    bool made = fd >= 0 && _ms_raw_identity((int)fd, &dev, &ino) == 0;
    settle(i, word, made ? (int)fd : -1, dev, ino);
    if (fd < 0) return fd;
    long n = _ms_raw_read((int)fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
    dev_t now_dev;
    ino_t now_ino;
    bool ours = _ms_raw_identity((int)fd, &now_dev, &now_ino) == 0 && now_dev == dev && now_ino == ino;
    int at = made ? find((int)fd, &w) : -1;
    if (at < 0 || !ours || (w & W_CLOSING)) {
        if (at >= 0 && !(w & W_CLOSING)) drop_slot((unsigned)at, w);
        if (!ours) return -EBADF;           /* the program's by now: not read, not closed */
        _ms_raw_close((int)fd);
        return n;
    }
    __atomic_store_n(&slot_closer[at], tid, __ATOMIC_SEQ_CST);
    if (__atomic_compare_exchange_n(&slot_word[at], &w, w | W_CLOSING, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        _ms_raw_close((int)fd);
        __atomic_store_n(&slot_word[at], 0, __ATOMIC_SEQ_CST);
        low_refresh();
    } else {
        _ms_raw_close((int)fd);             /* dropped meanwhile (a fork child's): closed all the same */
    }
    return n;
}

/* fd is no longer memshim's (the program replaced it): out of the
 * registry, not closed. */
void _ms_fd_forget(int fd)
{
    uint64_t w;
    int i;
    while (changes_allowed() && (i = find(fd, &w)) >= 0 && !(w & W_CLOSING) && !drop_slot((unsigned)i, w)) {}
}

/* A fork child: the slots a thread of the parent was closing, or giving
 * birth in, stay so for ever (that thread is not here): forgotten, whether
 * or not the close (the birth) was made before the fork. */
void _ms_fds_fork_child(void)
{
    unsigned top = __atomic_load_n(&slot_top, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < top; i++)
        if (slot_word[i] & (W_CLOSING | W_BIRTH)) slot_word[i] = 0;
    births = 0;
    gate = my_ranges;                       /* this thread's close_range goes on here (a handler forked) */
    low_refresh();
}

/* ---- the program's side (override.c) -------------------------------------------- */

/* Whether fd is memshim's now, as the program sees it: registered, and
 * still the file memshim registered.  A stale registration is dropped on
 * the way (not in a guest). */
bool _ms_fd_claimed(int fd)
{
    int me = 0;
    births_settle();
    for (;;) {
        uint64_t w;
        int i = find(fd, &w);
        if (i < 0) return false;
        if (w & W_CLOSING) {
            if (!me) me = _ms_os_gettid();
            if (__atomic_load_n(&slot_closer[i], __ATOMIC_SEQ_CST) == me) return true;   /* a handler */
            sched_yield();                      /* memshim's close of it is under way */
            continue;
        }
        if (slot_holds((unsigned)i, w, fd)) return true;
        if (!changes_allowed()) return false;
        if (drop_slot((unsigned)i, w)) return false;
    }
}


/* memshim lets its fd go: the program's dup2/dup3 replaces it. */
static void let_go(int fd)
{
    int me = 0;
    for (;;) {
        uint64_t w;
        int i = find(fd, &w);
        if (i < 0) return;
        if (w & W_CLOSING) {                        /* its close frees the number anyway */
            if (!me) me = _ms_os_gettid();
            if ((w & W_FD_MASK) && __atomic_load_n(&slot_closer[i], __ATOMIC_SEQ_CST) == me) return;
            sched_yield();
            continue;
        }
        if (drop_slot((unsigned)i, w)) return;
    }
}

/* dup2 (flags < 0) or dup3 of old onto fd.  From memshim's old: EBADF,
 * as without memshim (dup2(N, N) of memshim's N too).  Onto memshim's fd:
 * memshim lets it go, then the call is made (in a guest, whose table is
 * its own, the call alone). */
int _ms_fd_dup(int old, int fd, int flags)
{
    int low = __atomic_load_n(&_ms_fd_low, __ATOMIC_ACQUIRE);
    if (old >= low || fd >= low) {
        if (old >= low && (old != fd || flags < 0) && _ms_fd_claimed(old)) { errno = EBADF; return -1; }
        if (old != fd && fd >= low && _ms_fd_claimed(fd) && changes_allowed() && fcntl(old, F_GETFD) >= 0)
            let_go(fd);                             /* only for a call that will succeed */
    }
    if (flags < 0) return _ms_real_dup2 ? _ms_real_dup2(old, fd) : (int)_ms_os_dup3(old, fd, 0, true);
    return _ms_real_dup3 ? _ms_real_dup3(old, fd, flags) : (int)_ms_os_dup3(old, fd, flags, false);
}

static void sort_ints(int *a, unsigned n)
{
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && a[j - 1] > a[j]; j--) { int t = a[j]; a[j] = a[j - 1]; a[j - 1] = t; }
}

/* memshim's descriptors in [lo, hi], ascending; their count. */
static unsigned ours_in(unsigned lo, unsigned hi, int *out)
{
    unsigned n = 0, top = __atomic_load_n(&slot_top, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < top && n < SLOTS; i++) {
        uint64_t w = __atomic_load_n(&slot_word[i], __ATOMIC_ACQUIRE);
        if (!w_numbered(w)) continue;
        int fd = w_fd(w);
        if ((unsigned)fd >= lo && (unsigned)fd <= hi && _ms_fd_claimed(fd)) out[n++] = fd;
    }
    sort_ints(out, n);
    return n;
}

/* close_range(2) as the kernel's, memshim's descriptors left out. */
static int close_range_around(unsigned lo, unsigned hi, unsigned flags)
{
    int low = __atomic_load_n(&_ms_fd_low, __ATOMIC_ACQUIRE);
    if (hi < (unsigned)low) return (int)_ms_os_close_range(lo, hi, flags);
    int ours[SLOTS];
    unsigned n = ours_in(lo, hi, ours);
    if (!n) return (int)_ms_os_close_range(lo, hi, flags);
    if ((flags & CLOSE_RANGE_UNSHARE) && _ms_os_unshare_files() != 0) return -1;
    unsigned from = lo;
    for (unsigned k = 0; k <= n; k++) {
        unsigned to = k < n ? (unsigned)ours[k] - 1 : hi;
        if (k < n && (unsigned)ours[k] == from) { from++; continue; }
        if (from <= to && _ms_os_close_range(from, to, 0) != 0) return -1;
        if (k < n) from = (unsigned)ours[k] + 1;
    }
    return 0;
}

int _ms_fd_close_range(unsigned lo, unsigned hi, unsigned flags)
{
    if (lo > hi || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) || (flags & CLOSE_RANGE_CLOEXEC))
        return (int)_ms_os_close_range(lo, hi, flags);
    if (!changes_allowed()) return close_range_around(lo, hi, flags);     /* a guest: its own table */
    ranges_enter();
    int rc = close_range_around(lo, hi, flags);
    int err = errno;
    ranges_leave();
    errno = err;
    return rc;
}

/* closefrom(3) as the C library's: close_range(lo, ~0U, 0), and where the
 * kernel has none, each descriptor of /proc/self/fd (or up to the limit on
 * descriptors) but memshim's. */
void _ms_fd_closefrom(int lo)
{
    if (lo < 0) lo = 0;
    int saved = errno;
    if (_ms_fd_close_range((unsigned)lo, ~0U, 0) == 0) { errno = saved; return; }
    int dir = _ms_os_self_open("fd", O_RDONLY | O_DIRECTORY);
    if (dir >= 0) {
        char buf[4096];
        bool again = true;
        while (again) {                 /* closing while reading: again from the start */
            again = false;
            long n;
            for (bool first = true; (n = _ms_raw_dents(dir, buf, sizeof buf, first)) > 0; first = false) {
                for (long off = 0; off < n;) {
                    struct dirent64 *d = (struct dirent64 *)(buf + off);
                    off += d->d_reclen;
                    int fd = 0;
                    const char *p = d->d_name;
                    if (*p < '0' || *p > '9') continue;
                    while (*p >= '0' && *p <= '9') fd = fd * 10 + (*p++ - '0');
                    if (fd < lo || fd == dir || _ms_fd_claimed(fd)) continue;
                    if (_ms_fd_real_close(fd) == 0) again = true;
                }
            }
        }
        _ms_fd_close(dir);
    } else {
        struct rlimit rl;
        unsigned top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (unsigned)rl.rlim_cur : 65536;
        for (unsigned fd = (unsigned)lo; fd < top; fd++)
            if (!_ms_fd_claimed((int)fd)) _ms_fd_real_close((int)fd);
    }
    errno = saved;
}
