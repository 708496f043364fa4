/* util.c - errors, numbers and sizes for the `memshim` command. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "memshim.h"
#include "utf8.h"

const char *ms_prog = "memshim";

/* "memshim: " fmt tail, on stderr. */
static void say(const char *fmt, va_list ap, const char *tail)
{
    fprintf(stderr, "%s: ", ms_prog);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

void ms_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, " (see 'memshim help')\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

void ms_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, "\n");
    va_end(ap);
}

bool ms_parse_u64(const char *s, uint64_t *out)
{
    uint64_t x = 0;
    if (!s || !*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        if (x > (UINT64_MAX - 9) / 10) return false;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *out = x;
    return true;
}

bool ms_parse_size(const char *s, uint64_t *out)
{
    char num[32];
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= sizeof num) return false;
    memcpy(num, s, n + 1);
    unsigned shift = 0;
    char last = num[n - 1];
    if (last == 'k' || last == 'K') shift = 10;
    else if (last == 'm' || last == 'M') shift = 20;
    else if (last == 'g' || last == 'G') shift = 30;
    if (shift) num[n - 1] = 0;
    uint64_t x;
    if (!ms_parse_u64(num, &x) || x > (UINT64_MAX >> shift)) return false;
    *out = x << shift;
    return true;
}

char *ms_human(uint64_t v, char *buf, size_t cap)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    if (v < 1024) { snprintf(buf, cap, "%llu B", (unsigned long long)v); return buf; }
    double x = (double)v;
    unsigned u = 0;
    while (x >= 1024 && u < 5) { x /= 1024; u++; }
    snprintf(buf, cap, x < 10 ? "%.2f %s" : x < 100 ? "%.1f %s" : "%.0f %s", x, unit[u]);
    return buf;
}

char *ms_commas(uint64_t n, char *buf, size_t cap)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

const char *ms_opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != 0) return NULL;
    if (*i + 1 >= argc) ms_usage_error("%s %s: missing value", argv[0], name);
    return argv[++*i];
}

/* The JSON document in path, or NULL after one line saying why (the file
 * cannot be read, or where the JSON goes wrong). */
/* What a loader found wrong, for its caller's one line (ms_failure). */
char ms_failure[512];

bool ms_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ms_failure, sizeof ms_failure, fmt, ap);
    va_end(ap);
    return false;
}

/* A non-negative integer member; absent: 0 (an error if required).  The
 * loaders' one-line errors name where and key (ms_fail). */
bool ms_json_count(json_t *obj, const char *key, const char *where, bool required, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v) return required ? ms_fail("%s: no \"%s\"", where, key) : true;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return ms_fail("%s.%s: expected a non-negative integer", where, key);
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* A string member; absent or null: NULL (an error if required). */
bool ms_json_string(json_t *obj, const char *key, const char *where, bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return required ? ms_fail("%s: no \"%s\"", where, key) : true;
    if (!json_is_string(v)) return ms_fail("%s.%s: expected a string", where, key);
    *out = json_string_value(v);
    /* Read to be shown: what a terminal must not see escaped (utf8.h) as
     * the library's text reports write it, in the document itself, so that
     * every view and every compare of two documents see the same name. */
    const unsigned char *s = (const unsigned char *)*out;
    size_t n = json_string_length(v), k, i, shown = 0;
    bool any = false;
    for (i = 0; i < n; i += k) {
        bool e = ms_text_escaped(s + i, n - i, &k);
        shown += e ? 4 * k : k;
        any |= e;
    }
    if (!any) return true;
    char *t = malloc(shown + 1);
    if (!t) return ms_fail("%s.%s: out of memory", where, key);
    char *o = t;
    for (i = 0; i < n; i += k) {
        if (!ms_text_escaped(s + i, n - i, &k)) { memcpy(o, s + i, k); o += k; continue; }
        for (size_t j = 0; j < k; j++) o += ms_text_escape(s[i + j], o);
    }
    *o = 0;
    bool ok = json_string_set(v, t) == 0;
    free(t);
    if (!ok) return ms_fail("%s.%s: out of memory", where, key);
    *out = json_string_value(v);
    return true;
}

bool ms_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return true;
    size_t n = *cap ? *cap * 2 : 256;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

bool ms_is_gzip(const char *path)
{
    unsigned char magic[2] = { 0, 0 };
    FILE *f = fopen(path, "r");
    bool gz = f && fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (f) fclose(f);
    return gz;
}

json_t *ms_load_json(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) { ms_warn("%s: %s", path, strerror(errno)); return NULL; }
    json_error_t e;
    json_t *root = json_loadf(f, 0, &e);
    if (!root) {
        if (ferror(f))   /* a directory, an I/O error: jansson calls it the end of the file */
            ms_warn("%s: %s", path, strerror(errno));
        else if (ms_is_gzip(path))   /* MEMSHIM_PROFILE=*.pb.gz */
            ms_warn("%s: gzip data (a pprof heap profile?), not JSON: "
                    "read it with memshim profile or go tool pprof", path);
        else
            ms_warn("%s:%d:%d: not valid JSON: %s", path, e.line, e.column, e.text);
    }
    fclose(f);
    return root;
}

static const char fffd[] = "\xEF\xBF\xBD";     /* U+FFFD, the replacement character */

size_t ms_utf8_prefix(const char *s, size_t bytes, size_t chars)
{
    size_t n = strlen(s), i = 0;
    for (size_t c = 0; i < n && c < chars; c++) {
        size_t k = ms_utf8_len((const unsigned char *)s + i, n - i);
        if (!k) k = 1;                           /* a stray byte: one character, U+FFFD */
        if (i + k > bytes) break;
        i += k;
    }
    return i;
}

char *ms_utf8_repair(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s), o = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = ms_utf8_len((const unsigned char *)s + i, n - i);
        const char *c = k ? s + i : fffd;
        size_t len = k ? k : sizeof fffd - 1;
        if (o + len >= cap) break;
        memcpy(out + o, c, len);
        o += len;
    }
    out[o] = 0;
    return out;
}

void ms_text(FILE *o, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') fputs("\\n", o);
        else if (c == '\t') fputs("\\t", o);
        else if (c < 0x20 || c == 0x7f) fprintf(o, "\\x%02x", c);
        else fputc(c, o);
    }
}

/* Text for an SVG/XML element or attribute: escaped, control characters as
 * spaces.  XML 1.0 allows neither those nor bytes outside well-formed UTF-8
 * (a program run with a Latin-1 argument, a name cut in the middle of a
 * character) nor U+FFFE and U+FFFF, and a reader refuses the whole file for
 * one: they are written as U+FFFD. */
void ms_xml_text(FILE *o, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        const unsigned char *c = (const unsigned char *)s + i;
        k = ms_utf8_len(c, n - i);
        if (k == 3 && c[0] == 0xEF && c[1] == 0xBF && c[2] >= 0xBE) k = 0;   /* U+FFFE, U+FFFF */
        if (!k) fputs(fffd, o);
        else if (*c == '&') fputs("&amp;", o);
        else if (*c == '<') fputs("&lt;", o);
        else if (*c == '>') fputs("&gt;", o);
        else if (*c == '"') fputs("&quot;", o);
        else if (*c < 0x20) fputc(' ', o);
        else fwrite(c, 1, k, o);
    }
}

/* ---- pictures written whole or not at all ------------------------------------
 * plot, flame and graph write their output through here.  A name that is a
 * device, a FIFO or a socket, or a link under /dev or /proc (/dev/stdout),
 * is written in place: a regular file put in its place would replace
 * /dev/null for everyone.  Any other name gets a temporary file beside it,
 * renamed over it once everything is written, so that a failure (a full
 * disk, a file size limit) leaves the old file or none, never half a
 * picture.  The output may not be the input it is drawn from. */
bool ms_output_open(ms_output_t *o, const char *path, const char *in)
{
    o->path = path;
    o->tmp[0] = 0;
    o->f = NULL;
    if (strcmp(path, "-") == 0) { o->f = stdout; return true; }
    struct stat st, ist;
    bool exists = stat(path, &st) == 0;
    if (exists && in && stat(in, &ist) == 0 && st.st_dev == ist.st_dev && st.st_ino == ist.st_ino) {
        ms_warn("%s: is the input file; not overwritten", path);
        return false;
    }
    if (exists && S_ISDIR(st.st_mode)) { ms_warn("%s: %s", path, strerror(EISDIR)); return false; }
    bool in_place = exists && (!S_ISREG(st.st_mode) || strncmp(path, "/dev/", 5) == 0 ||
                               strncmp(path, "/proc/", 6) == 0);
    if (in_place) {
        if (!(o->f = fopen(path, "w"))) { ms_warn("%s: %s", path, strerror(errno)); return false; }
        return true;
    }
    if ((size_t)snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof o->tmp) {
        o->tmp[0] = 0;
        ms_warn("%s: %s", path, strerror(ENAMETOOLONG));
        return false;
    }
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
        ms_warn("%s: %s", path, strerror(errno));
        if (fd >= 0) { close(fd); unlink(o->tmp); }
        o->tmp[0] = 0;
        return false;
    }
    return true;
}

bool ms_output_close(ms_output_t *o, bool ok)
{
    if (!o->f) return false;
    int err = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) err = errno ? errno : EIO;
    if (o->f != stdout && fclose(o->f) != 0 && !err) err = errno;
    o->f = NULL;
    if (err && ok) ms_warn("%s: %s", o->path, strerror(err));
    ok = ok && !err;
    if (o->tmp[0]) {
        if (ok && rename(o->tmp, o->path) != 0) { ms_warn("%s: %s", o->path, strerror(errno)); ok = false; }
        if (!ok) unlink(o->tmp);
    }
    return ok;
}
