/* out.c - formatted output without allocating: a printf subset into a
 * caller's buffer, flushed with write(2).  The only writer of file
 * descriptors in memshim, so a report can never re-enter malloc. */

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"

/* memshim's own copy of standard error, taken at start-up: a report still
 * reaches the terminal when the program has closed fd 2 (and never lands in
 * whatever file the program opened on fd 2 afterwards). */
static int err_fd = -1;

void _ms_out_init(void)
{
    if (err_fd < 0 && fcntl(2, F_GETFD) >= 0) err_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
    if (err_fd < 0 && fcntl(2, F_GETFD) >= 0) err_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
}

int _ms_err_fd(void) { return err_fd >= 0 && fcntl(err_fd, F_GETFD) >= 0 ? err_fd : 2; }

void _ms_buf_init(ms_buf_t *b, char *mem, size_t cap, int fd)
{
    b->p = mem; b->len = 0; b->cap = cap; b->fd = fd;
}

void _ms_buf_flush(ms_buf_t *b)
{
    if (b->len && b->fd >= 0) _ms_os_write(b->fd, b->p, b->len);
    b->len = 0;
}

static void put(ms_buf_t *b, const char *s, size_t n)
{
    while (n) {
        if (b->len == b->cap) _ms_buf_flush(b);
        size_t k = b->cap - b->len < n ? b->cap - b->len : n;
        memcpy(b->p + b->len, s, k);
        b->len += k; s += k; n -= k;
    }
}

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

void _ms_bprintf(ms_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _ms_vbprintf(b, fmt, ap);
    va_end(ap);
}

/* One line on standard error, prefixed "memshim: ". */
void _ms_message(const char *fmt, ...)
{
    char mem[512];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, 2);
    put(&b, "memshim: ", 9);
    va_list ap;
    va_start(ap, fmt);
    _ms_vbprintf(&b, fmt, ap);
    va_end(ap);
    put(&b, "\n", 1);
    _ms_buf_flush(&b);
}

void _ms_heap_error(const char *what, const void *p)
{
    static int reported;
    if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) < 100)
        _ms_message("%s: %p%s", what, p,
                    _ms_opt.on_error == MS_ON_ERROR_ABORT ? "; aborting (MEMSHIM_ON_ERROR=continue to go on)" : "");
    if (_ms_opt.on_error == MS_ON_ERROR_ABORT) abort();
}

