/* out.c - formatted output without allocating: a printf subset into a
 * caller's buffer, flushed with write(2).  The only writer of file
 * descriptors in memshim, so a report can never re-enter malloc.
 *
 * Also the one owner of memshim's output files (leak reports, statistics,
 * the RSS log) and of its copy of standard error:
 *   - names: %p is the pid, %n the output's sequence number (its Nth
 *     report or statistics of this process); a forked child, or a program
 *     exec'd by a process writing the same report, whose name has no %p
 *     and that would write a regular file appends ".PID"; a snapshot
 *     whose name has no %n appends ".snapN", so no later report replaces it;
 *   - a regular file, or a name that does not exist yet, is written under
 *     a unique temporary name beside it (name.tmp.PID.TID.N, created 0600
 *     with O_EXCL|O_NOFOLLOW) and renamed into place, so a reader never
 *     sees half of it and a link at that name is replaced, never followed;
 *   - anything else (character device, FIFO, socket, /dev/std*,
 *     /proc/self/fd/N) is opened and written in place, O_NONBLOCK while
 *     opening so that a FIFO without a reader gives one message instead of
 *     a hang; a directory or a block device is refused;
 *   - writers of one output are serialized;
 *   - every descriptor memshim holds (an output's, for as long as it is
 *     written) is close-on-exec, moved to 100 or above, registered as
 *     memshim's (fds.c: the program's close, closefrom and close_range
 *     leave it alone), and remembered by identity (st_dev, st_ino),
 *     checked again before each write: a program that replaced it (dup2,
 *     or a close by its own system call and a file opened on the number)
 *     never gets memshim's output in that file.  A file opened by name is
 *     checked against the name once open (the program may have closed the
 *     number and taken it before memshim registered it). */

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>          /* rename() only: a system call, no stream */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "shim.h"
#include "utf8.h"
#include "outname.h"
#include "../include/memshim.h"     /* MEMSHIM_VERSION */

/* memshim's own copy of standard error, taken at start-up, and the identity
 * of the file it was: a report still reaches the terminal when the program
 * has closed fd 2, and never lands in whatever file the program opened on
 * fd 2, or on the copy's number, afterwards. */
static int   err_fd = -1;
static bool  err_known, err_inited, err_named;   /* err_named: a terminal or a file */
static dev_t err_dev;
static ino_t err_ino;
/* Where it was, when it was a terminal or a file: a daemon that closes
 * every descriptor (closefrom, close_range, or a loop to the limit) no
 * longer closes memshim's copy (fds.c), but one that replaces it (dup2)
 * or closes it by a system call of its own does; the report at its exit
 * is then written to that file opened again, if it still is the same file.  (A pipe or a
 * socket cannot be opened again: its report is lost.) */
static char  err_path[PATH_MAX];

/* First thing at start-up: which file standard error is. */
void _ms_out_init(void)
{
    int saved = errno;
    struct stat st;
    if (!err_inited && fstat(2, &st) == 0) {
        err_dev = st.st_dev;
        err_ino = st.st_ino;
        err_known = true;
        err_named = S_ISCHR(st.st_mode) || S_ISREG(st.st_mode);
    }
    err_inited = true;
    errno = saved;
}

/* After the options: a copy of standard error (close-on-exec, at 100 or
 * above) only when output is aimed at it -- the leak report, MEMSHIM_STATS
 * or MEMSHIM_RSS_LOG set to stderr -- so that it still arrives when the
 * program closes fd 2.  Otherwise memshim holds no descriptor: its rare
 * messages go to fd 2 while fd 2 is still that file, and a program that
 * counts its children's descriptors finds none of memshim's. */
void _ms_out_settle(void)
{
    bool wanted = (_ms_opt.track && !_ms_names_file(_ms_opt.report)) ||
                  (_ms_opt.stats && !_ms_names_file(_ms_opt.stats)) ||
                  (_ms_ropt.rss_log && !_ms_names_file(_ms_ropt.rss_log));
    int saved = errno;
    if (wanted && err_known && err_fd < 0 && _ms_os_same_file(2, err_dev, err_ino)) {
        ms_birth_t b;                                /* registered: the program's closes leave it */
        _ms_fd_birth_begin(&b, 1);
        int fd = fcntl(2, F_DUPFD_CLOEXEC, MS_FD_MIN);
        if (fd < 0) fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
        _ms_fd_born(&b, &fd, 1);
        err_fd = fd;
        if (err_named) {
            ssize_t n = _ms_os_proc_readlink("fd/2", err_path, sizeof err_path - 1);
            err_path[n > 0 && err_path[0] == '/' ? n : 0] = 0;
        }
    }
    errno = saved;
}

/* Standard error's file opened again (err_path), as err_fd; -1 if it is
 * gone, or another file now has its name.  Without blocking (a FIFO put
 * in its place would wait for a reader) and without making a terminal the
 * controlling one; not under a seccomp filter that may kill an open. */
static int reopen_err(void)
{
    if (!err_path[0] || __atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) return -1;
    int fd = _ms_fd_open(AT_FDCWD, err_path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK, 0);
    if (fd < 0) {
        if (errno != EMFILE && errno != ENFILE && errno != EINTR) err_path[0] = 0;   /* for good */
        return -1;
    }
    if (!_ms_fd_is_path(fd, err_path)) return -1;   /* the program's number by now (fds.c) */
    int fl = fcntl(fd, F_GETFL);
    if (!_ms_os_same_file(fd, err_dev, err_ino) || fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        _ms_fd_close(fd);
        err_path[0] = 0;
        return -1;
    }
    int was = __atomic_load_n(&err_fd, __ATOMIC_RELAXED);
    if (!__atomic_compare_exchange_n(&err_fd, &was, fd, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        _ms_fd_close(fd);               /* another thread's is in place */
        return _ms_os_same_file(was, err_dev, err_ino) ? was : -1;
    }
    return fd;
}

/* Take fd 2 as it is now for standard error, forgetting the copy taken at
 * start-up (the unit tests capture memshim's messages this way). */
void _ms_out_retake_stderr(void)
{
    int saved = errno;
    if (err_known && err_fd > 2 && _ms_os_same_file(err_fd, err_dev, err_ino)) _ms_fd_close(err_fd);
    err_fd = -1;
    err_path[0] = 0;
    err_known = err_inited = false;
    _ms_out_init();
    _ms_out_settle();
    errno = saved;
}

/* Standard error as it was at start-up: memshim's copy if it is still that
 * file, else fd 2 if it is, else that file opened again (reopen_err); -1
 * (output dropped) when none is, since then both numbers belong to files
 * of the program or to none. */
int _ms_err_fd(void)
{
    int saved = errno, fd = -1;
    if (!err_inited) _ms_out_init();
    if (err_known) {
        if (_ms_os_same_file(err_fd, err_dev, err_ino)) fd = err_fd;
        else if (_ms_os_same_file(2, err_dev, err_ino)) fd = 2;
        else fd = reopen_err();
    }
    errno = saved;
    return fd;
}

void _ms_buf_init(ms_buf_t *b, char *mem, size_t cap, int fd)
{
    b->p = mem; b->len = 0; b->cap = cap; b->fd = fd; b->out = NULL;
}

void _ms_buf_init_out(ms_buf_t *b, char *mem, size_t cap, const ms_out_t *o)
{
    _ms_buf_init(b, mem, cap, o->fd);
    if (o->kind == MS_OUT_ATOMIC || o->kind == MS_OUT_INPLACE) b->out = o;
}

/* The last write of this thread that failed, and why: an output's commit
 * (one thread opens, writes and commits it) then drops what it holds. */
static __thread int werr_fd __attribute__((tls_model("initial-exec"))) = -1;
static __thread int werr __attribute__((tls_model("initial-exec")));

bool _ms_out_fits(int fd, off_t end, size_t n)
{
    int saved = errno;
    struct rlimit rl;
    struct stat st;
    bool fits = true;
    if (!__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE) && getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
        rl.rlim_cur != RLIM_INFINITY && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if (end < 0) {                  /* O_APPEND writes at the end */
            int fl = fcntl(fd, F_GETFL);
            end = fl >= 0 && (fl & O_APPEND) ? st.st_size : lseek(fd, 0, SEEK_CUR);
            if (end < 0) end = st.st_size;
        }
        fits = (uint64_t)end + n <= (uint64_t)rl.rlim_cur;
    }
    errno = saved;
    return fits;
}

/* [p, p+n) to b's descriptor in writes that end at a line's end and hold
 * at most PIPE_BUF bytes (a longer line in one write of its own, if the
 * buffer held it whole).  Processes that share a standard error (make -j's
 * compilers, a pipeline) then each write whole lines, and a write of up
 * to PIPE_BUF bytes to a pipe is never split by another process's.  In
 * 8 KiB writes, a report's line was cut by another's in 2 of 20 runs of
 * eight leaking programs at once (found by a helper). */
static void write_lines(ms_buf_t *b, const char *p, size_t n)
{
    if (!_ms_out_fits(b->fd, -1, n)) {      /* all or nothing, as one write was */
        werr_fd = b->fd, werr = EFBIG;
        return;
    }
    while (n) {
        size_t k = n;
        if (k > PIPE_BUF) {
            for (k = PIPE_BUF; k && p[k - 1] != '\n'; k--) {}
            if (!k) {                                   /* one line longer than that */
                const char *nl = memchr(p + PIPE_BUF, '\n', n - PIPE_BUF);
                k = nl ? (size_t)(nl - p) + 1 : n;
            }
        }
        /* Another thread of the program may have closed the descriptor
         * (a double close: the number was memshim's by then) and opened a
         * file of its own on the number: the profile that the reporter
         * thread was writing went into it (found by a helper's sweep:
         * bash, and a program closing a pipe twice).  Checked before each
         * write; a descriptor that is no longer the file ends the output,
         * which its commit then drops, saying so. */
        if (b->out && !_ms_os_same_file(b->fd, b->out->dev, b->out->ino)) {
            werr_fd = b->fd, werr = EBADF;
            return;
        }
        ssize_t w = _ms_os_write(b->fd, p, k);
        if (w < 0) {                        /* the rest goes no further (as in one write) */
            werr_fd = b->fd, werr = (int)-w;
            return;
        }
        p += k;
        n -= k;
    }
}

void _ms_buf_flush(ms_buf_t *b)
{
    if (b->len && b->fd >= 0) write_lines(b, b->p, b->len);
    b->len = 0;
}

/* b is full: its whole lines go out, the line begun stays for the next
 * write (all of it goes if no line ends in it; a buffer with no descriptor
 * starts again from empty, as a flush leaves it). */
static void flush_full(ms_buf_t *b)
{
    size_t k = b->len;
    while (k && b->p[k - 1] != '\n') k--;
    if (!k || b->fd < 0) { _ms_buf_flush(b); return; }
    write_lines(b, b->p, k);
    memmove(b->p, b->p + k, b->len - k);
    b->len -= k;
}

static void put(ms_buf_t *b, const char *s, size_t n)
{
    while (n) {
        if (b->len == b->cap) flush_full(b);
        size_t k = b->cap - b->len < n ? b->cap - b->len : n;
        memcpy(b->p + b->len, s, k);
        b->len += k; s += k; n -= k;
    }
}

void _ms_buf_put(ms_buf_t *b, const void *s, size_t n) { put(b, s, n); }

static void pad(ms_buf_t *b, char c, int n) { while (n-- > 0) put(b, &c, 1); }

/* Conversions: %s %c %d %i %u %x %p %%, with l/ll/z sizes, a width, and the
 * flags '-' (left-justify) and '0' (zero-fill). */
void _ms_vbprintf(ms_buf_t *b, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') { put(b, f, 1); continue; }
        f++;
        int left = 0, zero = 0, width = 0, lng = 0;
        for (;; f++) {
            if (*f == '-') left = 1;
            else if (*f == '0') zero = 1;
            else break;
        }
        while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
        while (*f == 'l' || *f == 'z') { lng++; f++; }
        char tmp[24], *s = tmp + sizeof tmp;
        const char *str = NULL;
        size_t n = 0;
        int neg = 0;
        switch (*f) {
        case 's': str = va_arg(ap, const char *); if (!str) str = "(null)"; n = strlen(str); break;
        case 'c': tmp[0] = (char)va_arg(ap, int); str = tmp; n = 1; break;
        case '%': str = "%"; n = 1; break;
        case 'd': case 'i': {
            long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
            unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
            neg = v < 0;
            do { *--s = (char)('0' + u % 10); u /= 10; } while (u);
            break;
        }
        case 'u': case 'x': case 'p': {
            unsigned long long u;
            if (*f == 'p') u = (uintptr_t)va_arg(ap, void *);
            else u = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            unsigned base = *f == 'u' ? 10 : 16;
            do { *--s = "0123456789abcdef"[u % base]; u /= base; } while (u);
            if (*f == 'p') { *--s = 'x'; *--s = '0'; }
            break;
        }
        default: put(b, "%", 1); if (*f) put(b, f, 1); else f--; continue;
        }
        if (!str) { str = s; n = (size_t)(tmp + sizeof tmp - s); }
        int fill = width - (int)n - neg;
        if (!left && !zero) pad(b, ' ', fill);
        if (neg) put(b, "-", 1);
        if (!left && zero) pad(b, '0', fill);
        put(b, str, n);
        if (left) pad(b, ' ', fill);
    }
}

/* A JSON string: quotes, backslashes and control characters escaped, and
 * each byte that is not part of well-formed UTF-8 (a command line or a file
 * name in another encoding, a name cut short in the middle of a character)
 * written as U+FFFD, which JSON readers require (the one JSON string writer:
 * reports, statistics, profiles, suppressions). */
void _ms_json_str(ms_buf_t *b, const char *s)
{
    put(b, "\"", 1);
    size_t n = s ? strlen(s) : 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = ms_utf8_len((const unsigned char *)s + i, n - i);
        if (!k) { put(b, "\\ufffd", 6); i++; continue; }
        if (c == '"' || c == '\\') { put(b, "\\", 1); put(b, (const char *)&c, 1); }
        else if (c < 0x20 || c == 0x7f) {
            char u[6] = { '\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15] };
            put(b, u, 6);
        } else put(b, s + i, k);
        i += k;
    }
    put(b, "\"", 1);
}

/* A name or a value in text (a function, file, module, program or type in
 * reports; a setting's value in messages): the n bytes at s as they are,
 * but what ms_text_escaped (utf8.h) says a terminal must not see as \n, \t
 * or \xNN. */
void _ms_text_put(ms_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k) {
        const unsigned char *c = (const unsigned char *)s + i;
        if (!ms_text_escaped(c, n - i, &k)) { put(b, s + i, k); continue; }
        for (size_t j = 0; j < k; j++) {
            char e[4];
            put(b, e, ms_text_escape(c[j], e));
        }
    }
}

void _ms_text_str(ms_buf_t *b, const char *s) { if (s) _ms_text_put(b, s, strlen(s)); }

const char *_ms_name_shown(const char *s, char *buf, size_t cap)
{
    ms_buf_t b;
    _ms_buf_init(&b, buf, cap - 1, -1);
    _ms_text_str(&b, s);
    buf[b.len] = 0;
    return buf;
}

/* Every JSON output's opening: its format and version, who wrote it, the
 * program (the object is left open after "program"). */
void _ms_json_begin(ms_buf_t *b, const char *format, unsigned version)
{
    char prog[1024];
    _ms_program_name(prog, sizeof prog);
    _ms_bprintf(b, "{\"format\": \"%s\", \"version\": %u, \"memshim\": \"%s\",\n \"pid\": %d, \"program\": ",
                format, version, MEMSHIM_VERSION, (int)getpid());
    _ms_json_str(b, prog);
}

void _ms_bprintf(ms_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _ms_vbprintf(b, fmt, ap);
    va_end(ap);
}

/* n bytes at offset off of fd, whole (the live region). */
void _ms_out_write_at(int fd, const void *p, size_t n, off_t off)
{
    if (!_ms_out_fits(fd, off, n)) return;
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p = (const char *)p + w; n -= (size_t)w; off += w;
    }
}

/* The program, as every output names it ("program" in reports, tables, the
 * live region, metrics): its command line, arguments joined by spaces,
 * truncated to fit (as valgrind's "Command:" line). */
void _ms_program_name(char *out, size_t cap)
{
    ssize_t n = _ms_os_read_proc("cmdline", out, cap, false);
    if (n <= 0) { if (cap) out[0] = 0; return; }
    while (n > 0 && out[n - 1] == 0) n--;
    for (ssize_t i = 0; i < n; i++) if (out[i] == 0) out[i] = ' ';
    if ((size_t)n + 1 >= cap) {          /* cut: not in the middle of a character */
        ssize_t lead = n;
        while (lead > 0 && n - lead < 4 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80) lead--;
        if (lead > 0 && (unsigned char)out[lead - 1] >= 0xC0 &&
            !ms_utf8_len((const unsigned char *)out + lead - 1, (size_t)(n - lead + 1)))
            n = lead - 1;
    }
    out[n] = 0;
}

/* ---- messages ----------------------------------------------------------------
 * Every line memshim says of its own on standard error (warnings, heap
 * misuse, the collector's) passes one gate, _ms_message_gate: it is
 * counted, and written only while its kind -- the literal naming it: a
 * message's format, a heap error's "free(): double free" -- has had fewer
 * than MS_MSG_SHOWN written.  The rest are counted and dropped, so a
 * program that frees a bad pointer a million times pays an atomic add for
 * each, not a write(2), and stderr keeps MS_MSG_SHOWN of them; at exit one
 * line per kind says how many were not shown.  What is shown depends only
 * on what the program did, never on timing.
 *
 * Kinds sit in a fixed table, found by their address: a kind takes a free
 * slot with a compare-and-swap, so any thread, a signal handler and exit
 * pass without a lock or an allocation.  memshim has about 60 kinds; past
 * MSG_KINDS they share the last slot. */
#define MSG_KINDS 128
static struct msg_kind_s {
    const char *kind;
    uint64_t    n;               /* messages of this kind */
    uint64_t    told;            /* of those not shown, how many the summary told */
} kinds[MSG_KINDS + 1];
static uint64_t msg_total, msg_hidden;

static struct msg_kind_s *kind_slot(const char *kind)
{
    unsigned start = (unsigned)(((uint64_t)(uintptr_t)kind * 0x9e3779b97f4a7c15u) >> 40) % MSG_KINDS;
    for (unsigned i = 0; i < MSG_KINDS; i++) {
        struct msg_kind_s *k = &kinds[(start + i) % MSG_KINDS];
        const char *have = __atomic_load_n(&k->kind, __ATOMIC_ACQUIRE);
        if (!have && __atomic_compare_exchange_n(&k->kind, &have, kind, false,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return k;
        if (have == kind) return k;
    }
    struct msg_kind_s *other = &kinds[MSG_KINDS];
    __atomic_store_n(&other->kind, "(other messages)", __ATOMIC_RELEASE);
    return other;
}

bool _ms_message_gate(const char *kind)
{
    __atomic_add_fetch(&msg_total, 1, __ATOMIC_RELAXED);
    if (__atomic_fetch_add(&kind_slot(kind)->n, 1, __ATOMIC_RELAXED) < MS_MSG_SHOWN) return true;
    __atomic_add_fetch(&msg_hidden, 1, __ATOMIC_RELAXED);
    return false;
}

void _ms_message_stats(ms_msg_stat_t *out)
{
    out->total = __atomic_load_n(&msg_total, __ATOMIC_RELAXED);
    out->not_shown = __atomic_load_n(&msg_hidden, __ATOMIC_RELAXED);
}

/* A forked child counts its own; the unit tests start each load afresh. */
void _ms_messages_forget(void)
{
    memset(kinds, 0, sizeof kinds);
    msg_total = msg_hidden = 0;
}

/* One line on standard error, prefixed "memshim: ", not counted. */
static void vsay(const char *fmt, va_list ap)
{
    char mem[512];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, _ms_err_fd());
    put(&b, "memshim: ", 9);
    _ms_vbprintf(&b, fmt, ap);
    put(&b, "\n", 1);
    _ms_buf_flush(&b);
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

/* One line on standard error, prefixed "memshim: ": a message of its
 * format's kind. */
void _ms_message(const char *fmt, ...)
{
    if (!_ms_message_gate(fmt)) return;
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

void _ms_heap_error(const char *what, const void *p)
{
    _ms_heap_err_note(what, p, NULL, NULL, NULL, 0);     /* the report keeps it too */
    if (_ms_message_gate(what))
        say("%s: %p%s", what, p,
            _ms_opt.on_error == MS_ON_ERROR_ABORT ? "; aborting (MEMSHIM_ON_ERROR=continue to go on)" : "");
    if (_ms_opt.on_error == MS_ON_ERROR_ABORT) _ms_abort();
}

/* A kind as the summary names it, into out: a format's conversions become
 * "...". */
static void kind_text(char *out, size_t cap, const char *kind)
{
    ms_buf_t b;
    _ms_buf_init(&b, out, cap - 1, -1);
    for (const char *f = kind; *f && b.len + 3 < b.cap; f++) {
        if (*f != '%') { put(&b, f, 1); continue; }
        if (f[1] == '%') { put(&b, "%", 1); f++; continue; }
        while (f[1] && !strchr("scdiuxp", f[1])) f++;
        if (f[1]) f++;
        put(&b, "...", 3);
    }
    out[b.len] = 0;
}

/* At exit: a line for each kind with messages not shown (none told twice). */
void _ms_messages_at_exit(void)
{
    for (unsigned i = 0; i <= MSG_KINDS; i++) {
        const char *kind = __atomic_load_n(&kinds[i].kind, __ATOMIC_ACQUIRE);
        uint64_t n = __atomic_load_n(&kinds[i].n, __ATOMIC_RELAXED);
        if (!kind || n <= MS_MSG_SHOWN) continue;
        uint64_t hidden = n - MS_MSG_SHOWN;
        uint64_t told = __atomic_exchange_n(&kinds[i].told, hidden, __ATOMIC_RELAXED);
        if (hidden <= told) continue;
        char text[256];
        kind_text(text, sizeof text, kind);
        say("%llu more message%s like \"%s\" not shown", (unsigned long long)(hidden - told),
            hidden - told == 1 ? "" : "s", text);
    }
}


/* ---- output files --------------------------------------------------------- */

/* Writers of one output take the lock of its slot: slot 0 is standard
 * error, a file's name hashes to one of the others. */
#define OUT_SLOTS 8
static pthread_mutex_t out_lock[OUT_SLOTS] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
};
static unsigned tmp_counter;

/* The temporary files being written, with the process writing them: a
 * process that ends with _exit(2) while one is (a profile that memshim's
 * thread writes every MEMSHIM_PROFILE_INTERVAL ms; an exit report that
 * another thread's _exit cuts short) left it beside its output, empty or
 * cut short (rust-lld's _exit).  _ms_out_abandon removes them.  A slot is
 * claimed by its pid (-1 while the name is copied); with all taken, a file
 * goes unlisted.
 *
 * A name is listed before its file is created, and the creation is a
 * handshake with _exit (a thread's `opening` against `abandoning`, each
 * stored before the other is read): either the writer sees the process
 * ending and creates nothing, or _exit sees the creation under way and
 * waits for it before removing the file.  A writer that finds the process
 * ending neither creates, renames nor says anything more: it waits for the
 * end, which is a system call away (a second at most, below). */
#define PENDING 4
static struct {
    int pid;
    int opening;                /* the thread creating the file now, or 0 */
    char tmp[sizeof ((ms_out_t *)0)->tmp];
} pending[PENDING];
static int abandoning;          /* the pid whose _exit has begun */
static int abandoner;           /* and the thread that called it */

static int pending_add(const char *tmp)
{
    for (int i = 0; i < PENDING; i++) {
        int free_slot = 0;
        if (__atomic_compare_exchange_n(&pending[i].pid, &free_slot, -1, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            strcpy(pending[i].tmp, tmp);
            __atomic_store_n(&pending[i].pid, (int)getpid(), __ATOMIC_RELEASE);
            return i;
        }
    }
    return -1;
}

static void pending_drop(ms_out_t *o)
{
    if (o->pending >= 0) __atomic_store_n(&pending[o->pending].pid, 0, __ATOMIC_RELEASE);
    o->pending = -1;
}

/* Another thread of this process has begun its _exit: wait for the end
 * (its exit_group ends this thread; an _exit from a handler on this
 * thread never returns here).  The thread in _exit itself goes on: a
 * handler that comes in there before the end and writes a report would
 * otherwise wait for ever.  After a second without the end, this thread
 * goes on too: that handler may be waiting for this thread's output lock. */
static bool ending(void)
{
    return __atomic_load_n(&abandoning, __ATOMIC_SEQ_CST) == (int)getpid() &&
           __atomic_load_n(&abandoner, __ATOMIC_SEQ_CST) != _ms_os_gettid();
}
static void abandoned_wait(void)
{
    if (!ending()) return;
    for (int naps = 0; naps < 10; naps++) _ms_raw_nap_ns(100000000);
}

/* openat of o->tmp, o->pending's file, unless the process is ending. */
static int create_listed(ms_out_t *o, int flags, int mode)
{
    if (o->pending < 0) return _ms_fd_open(AT_FDCWD, o->tmp, flags, mode);   /* unlisted */
    __atomic_store_n(&pending[o->pending].opening, _ms_os_gettid(), __ATOMIC_SEQ_CST);
    if (ending()) {                     /* _exit need not wait for this creation: there is none */
        __atomic_store_n(&pending[o->pending].opening, 0, __ATOMIC_SEQ_CST);
        abandoned_wait();
        return _ms_fd_open(AT_FDCWD, o->tmp, flags, mode);
    }
    int fd = _ms_fd_open(AT_FDCWD, o->tmp, flags, mode);
    __atomic_store_n(&pending[o->pending].opening, 0, __ATOMIC_SEQ_CST);
    return fd;
}

/* The process ends now (_exit: override.c): its temporary files go.  A
 * file another thread is creating is waited for (about a second at most:
 * a file system that hangs); what a thread is renaming meanwhile may be
 * renamed first (then nothing is removed) or not at all.  Async-signal-
 * safe; in a vfork child (another pid) nothing is removed, and the
 * parent's writers go on. */
void _ms_out_abandon(void)
{
    int me = (int)getpid(), self = _ms_os_gettid();
    __atomic_store_n(&abandoner, self, __ATOMIC_SEQ_CST);
    __atomic_store_n(&abandoning, me, __ATOMIC_SEQ_CST);
    for (int i = 0; i < PENDING; i++) {
        if (__atomic_load_n(&pending[i].pid, __ATOMIC_SEQ_CST) != me) continue;
        for (int naps = 0; naps < 10000; naps++) {
            int t = __atomic_load_n(&pending[i].opening, __ATOMIC_SEQ_CST);
            if (t == 0 || t == self) break;     /* self: a handler that came in on the writer */
            _ms_raw_nap_ns(100000);
        }
        unlink(pending[i].tmp);
    }
}

/* A forked child: the thread that held a writer's lock stayed in the parent,
 * and the files being written are the parent's. */
void _ms_out_after_fork_child(void)
{
    for (unsigned i = 0; i < OUT_SLOTS; i++) pthread_mutex_init(&out_lock[i], NULL);
    for (int i = 0; i < PENDING; i++) pending[i].pid = pending[i].opening = 0;
    abandoning = abandoner = 0;
    _ms_messages_forget();
}

static unsigned slot_of(const char *path)
{
    uint32_t h = 2166136261u;
    for (; *path; path++) h = (h ^ (unsigned char)*path) * 16777619u;
    return 1 + h % (OUT_SLOTS - 1);
}

static void take(ms_out_t *o, unsigned slot)
{
    pthread_mutex_lock(&out_lock[slot]);
    o->lock = (int)slot;
}

static void release(ms_out_t *o)
{
    if (o->lock >= 0) pthread_mutex_unlock(&out_lock[o->lock]);
    o->lock = -1;
}

/* One piece of an output name (outname.h's walk), filled in. */
typedef struct {
    char  *out;
    size_t cap, n;
    unsigned seq;
} expansion_t;

static bool expand_piece(void *ctx, char seq, const char *text, size_t len)
{
    expansion_t *e = ctx;
    char num[24], host[sizeof ((struct utsname *)0)->nodename];
    if (seq == 'p' || seq == 'n') {
        ms_buf_t b;
        _ms_buf_init(&b, num, sizeof num, -1);
        if (seq == 'p') _ms_bprintf(&b, "%d", (int)getpid());
        else _ms_bprintf(&b, "%u", e->seq);
        text = num;
        len = b.len;
    } else if (seq == 'h') {
        len = ms_host_name(host, sizeof host);
        text = host;
    }
    if (e->n + len >= e->cap) return false;
    memcpy(e->out + e->n, text, len);
    e->n += len;
    return true;
}

/* pattern with %p replaced by the pid, %n by seq, %h by the host name
 * (outname.h) and %% by %; false if it does not fit.  The one expansion of
 * output names. */
bool _ms_expand_path(const char *pattern, unsigned seq, char *out, size_t cap)
{
    expansion_t e = { out, cap, 0, seq };
    if (!cap || !ms_outname_walk(pattern, expand_piece, &e)) {
        if (cap) out[0] = 0;                                   /* messages name the pattern */
        return false;
    }
    out[e.n] = 0;
    return true;
}

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* How path is written: MS_OUT_ATOMIC (a regular file, a name that does not
 * exist, a dangling link), MS_OUT_INPLACE (a character device, FIFO or
 * socket, or a regular file reached through /dev/std*, /dev/fd/N or
 * /proc/.../fd/N, which are the program's descriptors, not names to
 * replace), or -1 with errno (a directory, a block device). */
static int kind_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return MS_OUT_ATOMIC;   /* new, or creating will say why */
    if (S_ISREG(st.st_mode)) return MS_OUT_ATOMIC;
    if (S_ISLNK(st.st_mode)) {
        if (stat(path, &st) != 0) return MS_OUT_ATOMIC;  /* dangling: the link is replaced */
        if (S_ISREG(st.st_mode)) {
            char to[16];
            ssize_t n = readlink(path, to, sizeof to - 1);
            to[n > 0 ? n : 0] = 0;
            bool magic = has_prefix(path, "/dev/") || has_prefix(path, "/proc/") || has_prefix(to, "/proc/");
            return magic ? MS_OUT_INPLACE : MS_OUT_ATOMIC;
        }
    }
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) return MS_OUT_INPLACE;
    errno = S_ISDIR(st.st_mode) ? EISDIR : ENOTSUP;
    return -1;
}

static const char *why(int err, bool fifo)
{
    switch (err) {
    case ENXIO:        return fifo ? "no reader on this FIFO" : "no such device or address";
    case ENOENT:       return "no such directory";
    case EACCES:
    case EPERM:        return "permission denied";
    case EROFS:        return "read-only file system";
    case ENOSPC:       return "no space left";
    case EDQUOT:       return "disk quota exceeded";
    case EFBIG:        return "the file size limit (RLIMIT_FSIZE) reached";
    case EPIPE:        return "no reader";
    case EIO:          return "input/output error";
    case ENOTDIR:      return "a component is not a directory";
    case EISDIR:       return "a directory";
    case ENOTSUP:      return "a block device";
    case ELOOP:        return "too many symbolic links";
    case ENAMETOOLONG: return "name too long";
    case EEXIST:       return "cannot create a unique temporary name";
    case EMFILE:       return "too many open files in the process";
    case ENFILE:       return "too many open files in the system";
    case EBADF:        return "the program closed memshim's descriptor";
    /* open() always exists: ENOSYS is a seccomp filter's answer (man-db
     * runs col, groff and the like under one that refuses writes so) */
    case ENOSYS:       return "ENOSYS: refused by a seccomp filter";
    default: {
        const char *name = strerrorname_np(err);    /* a constant string, no allocation */
        return name ? name : "cannot be opened";
    }
    }
}

/* A device, FIFO or socket (or a /proc link), opened where it is. */
static int open_in_place(const char *path, dev_t *dev, ino_t *ino)
{
    int fd = _ms_fd_open(AT_FDCWD, path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (!_ms_fd_is_path(fd, path)) { errno = EBADF; return -1; }   /* the program's number by now */
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode)) {
        _ms_fd_close(fd);
        errno = ENOTSUP;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);   /* open without hanging, write whole */
    *dev = st.st_dev;
    *ino = st.st_ino;
    return fd;
}

/* A fresh temporary file beside o->path, 0600 (a snapshot: 0644), never an
 * existing name. */
static int open_tmp(ms_out_t *o)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        ms_buf_t t;
        _ms_buf_init(&t, o->tmp, sizeof o->tmp - 1, -1);
        _ms_bprintf(&t, "%s.tmp.%d.%d.%u", o->path, (int)getpid(), _ms_os_gettid(),
                    __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED));
        if (t.len >= sizeof o->tmp - 1) { errno = ENAMETOOLONG; return -1; }
        o->tmp[t.len] = 0;
        o->pending = pending_add(o->tmp);       /* listed for _exit before it exists */
        int fd = create_listed(o, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
                               o->flags & MS_OUT_SNAPSHOT ? 0644 : 0600);
        /* A program that closes every descriptor, from another thread, may
         * have closed this one already and opened a file of its own on the
         * number: the number is the program's (not closed), the file goes,
         * and another name is tried. */
        if (fd >= 0 && !_ms_fd_is_path(fd, o->tmp)) { unlink(o->tmp); pending_drop(o); errno = EBADF; continue; }
        if (fd >= 0) return fd;
        int err = errno;
        pending_drop(o);
        errno = err;
        if (err != EEXIST) return -1;
    }
    return -1;
}

static void to_stderr(ms_out_t *o)
{
    o->kind = MS_OUT_STDERR;
    o->fd = _ms_err_fd();
    if (!(o->flags & MS_OUT_STREAM)) take(o, 0);    /* a stream writes whole lines */
}

bool _ms_out_open(ms_out_t *o, const char *var, const char *dest, unsigned flags)
{
    return _ms_out_open_seq(o, var, dest, flags, 1);
}

/* Appended to o->path: ".PID" or ".snapN"; false if it does not fit. */
static bool add_suffix(ms_out_t *o, const char *fmt, unsigned v)
{
    ms_buf_t b;
    size_t len = strlen(o->path);
    _ms_buf_init(&b, o->path + len, sizeof o->path - 24 - len, -1);
    _ms_bprintf(&b, fmt, v);
    if (len + b.len >= sizeof o->path - 24) { o->path[0] = 0; return false; }   /* as _ms_expand_path */
    o->path[len + b.len] = 0;
    return true;
}

bool _ms_out_open_seq(ms_out_t *o, const char *var, const char *dest, unsigned flags, unsigned seq)
{
    int saved = errno;
    o->fd = -1;
    o->lock = -1;
    o->var = var;
    o->flags = flags;
    o->pending = -1;
    o->path[0] = o->tmp[0] = 0;
    if (!dest || !*dest || strcmp(dest, "stderr") == 0) {
        to_stderr(o);
        errno = saved;
        return true;
    }
    const char *fail = NULL;
    int kind = -1;
    if (!_ms_expand_path(dest, seq, o->path, sizeof o->path - 24)) {
        fail = "name too long";
    } else {
        kind = kind_of(o->path);
        /* a child whose name has no %p, a snapshot whose name has no %n:
         * a file of its own, but a device or FIFO stays the one named */
        bool child = (flags & MS_OUT_CHILD_SUFFIX) && !strstr(dest, "%p");
        bool snap = (flags & MS_OUT_SERIES) && !strstr(dest, "%n");
        if (kind == MS_OUT_ATOMIC && (child || snap)) {
            if ((child && !add_suffix(o, ".%u", (unsigned)getpid())) || (snap && !add_suffix(o, ".snap%u", seq)))
                fail = "name too long", kind = -1;
            else kind = kind_of(o->path);
        }
    }
    int err = errno;
    if (kind >= 0) {
        take(o, slot_of(o->path));
        /* A program that closes every descriptor and opens its own, from
         * another thread, may take the number between memshim's open and
         * its registration (fds.c): the file is opened again. */
        for (int tries = 0; tries < 8; tries++) {
            if (kind == MS_OUT_INPLACE) o->fd = open_in_place(o->path, &o->dev, &o->ino);
            else if ((o->fd = open_tmp(o)) >= 0) {
                struct stat st;             /* by name: the number may be the program's already */
                if (stat(o->tmp, &st) == 0) { o->dev = st.st_dev; o->ino = st.st_ino; }
            }
            err = errno;
            if (o->fd < 0 && err == EBADF) continue;
            if (o->fd < 0) break;
            o->kind = kind;
            /* born memshim's, out of the numbers programs reuse (fds.c): a
             * profile is written on the reporter thread while the
             * program's threads run */
            o->fd = _ms_fd_check(o->fd, o->dev, o->ino);
            if (o->fd >= 0) break;
            err = EBADF;                        /* the program took the number meanwhile */
            if (kind == MS_OUT_ATOMIC) unlink(o->tmp);
            pending_drop(o);
        }
        if (o->fd >= 0 && (flags & MS_OUT_STREAM)) {          /* kept open: in place now */
            release(o);
            if (kind == MS_OUT_ATOMIC) abandoned_wait();
            if (kind == MS_OUT_ATOMIC && rename(o->tmp, o->path) != 0) {
                err = errno;
                unlink(o->tmp);
                _ms_fd_close(o->fd);
                o->fd = -1;
            }
            pending_drop(o);
        }
        if (o->fd < 0) release(o);
    }
    if (o->fd >= 0) {
        if (werr_fd == o->fd) werr_fd = -1;
        errno = saved;
        return true;
    }
    if (!fail) {
        struct stat st;
        fail = why(err, kind == MS_OUT_INPLACE && stat(o->path, &st) == 0 && S_ISFIFO(st.st_mode));
    }
    bool none = flags & (MS_OUT_STREAM | MS_OUT_SNAPSHOT);
    char shown[MS_SHOWN];                   /* a name too long is shown cut */
    _ms_message("%s: cannot open %s for writing (%s); %s", var,
                o->path[0] ? o->path : _ms_value_shown(dest, shown, sizeof shown), fail,
                none ? "nothing is written there" : "writing to stderr instead");
    if (!none) to_stderr(o);
    else o->kind = MS_OUT_NONE;
    errno = saved;
    return false;
}

bool _ms_out_commit(ms_out_t *o)
{
    int saved = errno;
    bool ok = true;
    if (o->kind == MS_OUT_ATOMIC || o->kind == MS_OUT_INPLACE) {
        bool whole = werr_fd != o->fd;
        bool replace = o->kind == MS_OUT_ATOMIC && !(o->flags & MS_OUT_STREAM);
        if (!whole) {                   /* a full disk, /dev/full, RLIMIT_FSIZE */
            werr_fd = -1;
            _ms_message("%s: writing %s failed (%s); %s", o->var, o->path, why(werr, false),
                        replace ? "nothing is kept there" : "what it got is cut short");
            ok = false;
        }
        if (_ms_os_same_file(o->fd, o->dev, o->ino)) _ms_fd_close(o->fd);   /* never a number the program took */
        if (replace) abandoned_wait();      /* _exit removes the file, nothing is said */
        if (replace && !whole) unlink(o->tmp);
        else if (replace && rename(o->tmp, o->path) != 0) {
            _ms_message("%s: cannot rename %s to %s (%s)", o->var, o->tmp, o->path, why(errno, false));
            unlink(o->tmp);
            ok = false;
        }
        pending_drop(o);
    }
    o->fd = -1;
    o->kind = MS_OUT_NONE;
    release(o);
    errno = saved;
    return ok;
}

/* A stream's descriptor for the next write: standard error as it was, or
 * the file, checked to be still ours; when the program closed it (and maybe
 * got the number back for a file of its own), the same file opened again by
 * name in append mode.  -1, said once, when nothing safe remains. */
int _ms_out_fd(ms_out_t *o)
{
    if (o->kind == MS_OUT_STDERR) return _ms_err_fd();
    if (o->kind == MS_OUT_NONE) return -1;
    int saved = errno;
    if (!_ms_os_same_file(o->fd, o->dev, o->ino)) {
        int fd = _ms_fd_open(AT_FDCWD, o->path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK |
                                                    (o->kind == MS_OUT_ATOMIC ? O_NOFOLLOW : 0), 0);
        if (fd >= 0 && !_ms_fd_is_path(fd, o->path)) {     /* the program's number by now: not ours to close */
            errno = saved;
            return -1;
        }
        if (fd >= 0 && !_ms_os_same_file(fd, o->dev, o->ino)) { _ms_fd_close(fd); fd = -1; errno = ESTALE; }
        if (fd < 0) {
            _ms_message("%s: the program closed memshim's descriptor of %s, which cannot be "
                        "opened again (%s); nothing more is written there", o->var, o->path,
                        errno == ESTALE ? "the file was replaced" : why(errno, false));
            o->kind = MS_OUT_NONE;
            o->fd = -1;
            errno = saved;
            return -1;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        o->fd = _ms_fd_check(fd, o->dev, o->ino);
        /* A program that closes every descriptor and puts its own files on
         * high numbers, from another thread, may have taken the number it
         * moved to: then this write is skipped and the next opens the file
         * again.  (Unchecked, a sample of the RSS log went into the
         * program's file: found by a helper.) */
        if (!_ms_os_same_file(o->fd, o->dev, o->ino)) {
            o->fd = -1;
            errno = saved;
            return -1;
        }
    }
    errno = saved;
    return o->fd;
}

/* Remove the regular file at path if it is still the one memshim wrote
 * there (dev, ino): a MEMSHIM_METRICS file at exit.  One that someone
 * replaced since is left alone. */
void _ms_out_remove(const char *path, dev_t dev, ino_t ino)
{
    int saved = errno;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == dev && st.st_ino == ino)
        unlink(path);
    errno = saved;
}
