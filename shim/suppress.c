/* suppress.c - leak suppressions: which loss records the report leaves out.
 *
 * MEMSHIM_SUPPRESS names one file, which may mix three forms:
 *
 *   PATTERN  or  leak:PATTERN     LeakSanitizer's form: a glob ('*', anchored
 *                                 with ^ and $, else a substring) against the
 *                                 function, file or module of any frame
 *   type:PATTERN                  a collector object's type name (glob)
 *   { NAME                        valgrind's form, as --gen-suppressions
 *     Memcheck:Leak               writes it: frames from the innermost,
 *     match-leak-kinds: K,...     fun:GLOB (function), obj:GLOB (module),
 *     fun:malloc                  src:GLOB[:LINE] (file), "..." for any
 *     fun:make_*                  number of frames; the stack may go on past
 *     ...                         the last pattern.  A first frame naming an
 *     obj:/opt/app/lib*            allocation function stands for the
 *   }                             allocator's own frame, which memshim's
 *                                 stacks leave out.  Other tools' and kinds'
 *                                 blocks (Memcheck:Cond, Helgrind:Race...)
 *                                 are skipped.
 *
 * Lines starting with '#' are comments.  The file is read whole into
 * memshim's own memory (grown as needed, up to SUPP_MAX_BYTES); only a
 * regular file is read (opened O_NONBLOCK, so a FIFO cannot hang the
 * report).  Each suppression counts the blocks and bytes it took out;
 * the report lists those used (valgrind's used_suppression). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "shim.h"

#define SUPP_MAX_BYTES ((size_t)16 << 20)
#define MAX_FRAMES     64

enum { S_LINE, S_TYPE, S_FRAMES, S_LOADER };
enum { F_FUN, F_OBJ, F_SRC, F_ANY };        /* a frame pattern; F_ANY is "..." */

typedef struct { uint8_t kind; const char *glob; int line; } fpat_t;

struct ms_supp_s {
    uint8_t     form;         /* S_* */
    uint8_t     kinds;        /* bit per MS_KIND_*: the kinds it may suppress */
    const char *name;         /* the pattern, or the valgrind block's name */
    unsigned    lineno;       /* where it starts in the file */
    fpat_t     *frames;       /* S_FRAMES: the patterns, innermost first */
    unsigned    nframes;
    double      blocks, bytes;   /* what it suppressed in this report */
};

struct ms_supps_s {
    char      *text;
    size_t     len, cap;
    ms_supp_t *s;
    unsigned   n, scap;
    fpat_t    *f;              /* all frame patterns, referenced by the entries */
    unsigned   nf, fcap;
};
typedef struct ms_supps_s supps_t;

/* Always on: the blocks the dynamic loader allocates for itself, known by
 * their first frame lying in its code, with or without its debug file:
 * threads' vectors of dynamic TLS (glibc keeps one through a pointer an
 * entry past its start, which a conservative scan sees as interior only;
 * valgrind ships suppressions for them) and the TLS blocks of dlopen'd
 * modules that they point to.  LeakSanitizer treats the loader's blocks as
 * live for the same reason. */
static ms_supp_t builtin[] = {
    { S_LOADER, 0x7, "the dynamic loader's own (thread vectors, TLS blocks)", 0, NULL, 0, 0, 0 },
};
#define NBUILTIN (sizeof builtin / sizeof *builtin)

static bool grow(void **arr, unsigned *cap, unsigned n, size_t elem)
{
    if (n < *cap) return true;
    size_t ncap = *cap ? (size_t)*cap * 2 : 64;
    void *p = _ms_meta_alloc(ncap * elem);
    if (!p) return false;
    if (*arr) {
        memcpy(p, *arr, (size_t)n * elem);
        _ms_meta_free(*arr, (size_t)*cap * elem);
    }
    *arr = p;
    *cap = (unsigned)ncap;
    return true;
}

void _ms_supp_free(ms_supps_t *s)
{
    if (!s) return;
    if (s->text) _ms_meta_free(s->text, s->cap);
    if (s->s) _ms_meta_free(s->s, (size_t)s->scap * sizeof *s->s);
    if (s->f) _ms_meta_free(s->f, (size_t)s->fcap * sizeof *s->f);
    _ms_meta_free(s, sizeof *s);
}

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The whole file into s->text, NUL-terminated; false (said why) if not. */
static bool read_file(supps_t *s, const char *name)
{
    int fd = _ms_fd_open(AT_FDCWD, _ms_opt.suppress, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) {
        _ms_message("MEMSHIM_SUPPRESS=%s: cannot open the suppressions file; no suppressions", name);
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        _ms_message("MEMSHIM_SUPPRESS=%s: %s, not a file of patterns; no suppressions", name,
                    fstat(fd, &st) == 0 ? file_kind(st.st_mode) : "cannot be examined");
        _ms_fd_close(fd);
        return false;
    }
    /* /proc files say size 0 and have text: read until the end, growing. */
    size_t cap = 1 << 16;
    while (cap < (size_t)st.st_size + 1 && cap < SUPP_MAX_BYTES) cap *= 2;
    s->text = _ms_meta_alloc(cap);
    s->cap = s->text ? cap : 0;
    ssize_t r = 0;
    bool too_big = false;
    while (s->text) {
        if (s->len + 1 == s->cap) {
            if (s->cap >= SUPP_MAX_BYTES) { too_big = true; break; }
            char *n = _ms_meta_alloc(s->cap * 2);
            if (!n) break;
            memcpy(n, s->text, s->len);
            _ms_meta_free(s->text, s->cap);
            s->text = n;
            s->cap *= 2;
        }
        r = read(fd, s->text + s->len, s->cap - 1 - s->len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        s->len += (size_t)r;
    }
    int err = errno;
    _ms_fd_close(fd);
    if (!s->text || (s->len + 1 == s->cap && !too_big)) {
        _ms_message("MEMSHIM_SUPPRESS=%s: out of memory for the suppressions; no suppressions", name);
        return false;
    }
    if (r < 0) {
        _ms_message("MEMSHIM_SUPPRESS=%s: cannot read the suppressions file (error %d); no suppressions",
                    name, err);
        return false;
    }
    if (too_big)
        _ms_message("MEMSHIM_SUPPRESS=%s: larger than %zu MiB; only its first %zu MiB are used", name,
                    SUPP_MAX_BYTES >> 20, SUPP_MAX_BYTES >> 20);
    s->text[s->len] = 0;
    return true;
}

/* "definite,possible" (or "all"): a bit per MS_KIND_*, 0 if malformed. */
static uint8_t parse_kinds(const char *v)
{
    static const char *names[MS_NKINDS] = { "definite", "indirect", "possible", "reachable" };
    uint8_t bits = 0;
    while (*v) {
        while (*v == ' ' || *v == ',') v++;
        size_t n = strcspn(v, ", ");
        if (!n) break;
        bool known = false;
        if (n == 3 && strncmp(v, "all", 3) == 0) { bits = 0xF; known = true; }
        for (unsigned k = 0; k < MS_NKINDS && !known; k++)
            if (strlen(names[k]) == n && strncmp(v, names[k], n) == 0) { bits |= (uint8_t)(1u << k); known = true; }
        if (!known) return 0;
        v += n;
    }
    return bits;
}

typedef struct { char *p, *end; unsigned lineno; } cursor_t;

/* The next line, trimmed, NUL-terminated in place; NULL at the end. */
static char *next_line(cursor_t *c)
{
    if (c->p >= c->end) return NULL;
    char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    if (!nl) nl = c->end;
    *nl = 0;
    char *p = c->p;
    c->p = nl + 1;
    c->lineno++;
    while (*p == ' ' || *p == '\t') p++;
    char *e = nl;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    return p;
}

typedef struct { unsigned skipped, first_skipped, bad, first_bad; bool oom; } parse_note_t;

/* A valgrind block from after its "{" to its "}"; false when it is not ours
 * (another tool or kind) or malformed (noted). */
static bool parse_block(supps_t *s, cursor_t *c, ms_supp_t *out, parse_note_t *pn)
{
    unsigned start = c->lineno;
    char *line;
    const char *name = NULL;
    bool ours = false, seen_tool = false, ok = true;
    out->form = S_FRAMES;
    out->kinds = 0x7;                            /* valgrind's default: the lost kinds... */
    out->lineno = start;
    unsigned first = s->nf;
    while ((line = next_line(c))) {
        if (*line == '}') break;
        if (!*line || *line == '#') continue;
        if (!name) { name = line; continue; }
        if (!seen_tool) {
            seen_tool = true;
            const char *colon = strchr(line, ':');
            ours = colon && strcmp(colon + 1, "Leak") == 0;
            continue;
        }
        if (strncmp(line, "match-leak-kinds:", 17) == 0) {
            uint8_t k = parse_kinds(line + 17);
            if (!k) ok = false;
            out->kinds = k;                       /* ...unless it names them */
            continue;
        }
        fpat_t f = { F_ANY, NULL, 0 };
        if (strcmp(line, "...") == 0) f.kind = F_ANY;
        else if (strncmp(line, "fun:", 4) == 0) { f.kind = F_FUN; f.glob = line + 4; }
        else if (strncmp(line, "obj:", 4) == 0) { f.kind = F_OBJ; f.glob = line + 4; }
        else if (strncmp(line, "src:", 4) == 0) {
            f.kind = F_SRC;
            f.glob = line + 4;
            char *colon = strrchr(line + 4, ':');
            if (colon && colon[1] >= '0' && colon[1] <= '9') { *colon = 0; f.line = (int)strtol(colon + 1, NULL, 10); }
        } else { ok = false; continue; }
        if (s->nf - first >= MAX_FRAMES) continue;
        if (!grow((void **)&s->f, &s->fcap, s->nf, sizeof *s->f)) { pn->oom = true; return false; }
        s->f[s->nf++] = f;
    }
    if (!line || !name || !seen_tool) ok = false;
    if (!ours || !ok) {
        s->nf = first;
        if (!ok) { if (!pn->bad++) pn->first_bad = start; }
        else if (!pn->skipped++) pn->first_skipped = start;
        return false;
    }
    out->name = name;
    out->frames = (fpat_t *)(uintptr_t)first;     /* an index until the array stops moving */
    out->nframes = s->nf - first;
    return true;
}

ms_supps_t *_ms_supp_load(void)
{
    for (unsigned i = 0; i < NBUILTIN; i++) builtin[i].blocks = builtin[i].bytes = 0;
    if (!_ms_opt.suppress) return NULL;
    supps_t *s = _ms_meta_alloc(sizeof *s);
    if (!s) return NULL;
    char shown[MS_SHOWN];
    const char *name = _ms_value_shown(_ms_opt.suppress, shown, sizeof shown);
    if (!read_file(s, name)) { _ms_supp_free(s); return NULL; }
    cursor_t c = { s->text, s->text + s->len, 0 };
    parse_note_t pn = { 0 };
    char *line;
    while (!pn.oom && (line = next_line(&c))) {
        if (!*line || *line == '#') continue;
        ms_supp_t e = { S_LINE, 0x7, NULL, c.lineno, NULL, 0, 0, 0 };
        if (*line == '{') {
            if (!parse_block(s, &c, &e, &pn)) continue;
        } else if (strncmp(line, "leak:", 5) == 0) {
            e.name = line + 5;
        } else if (strncmp(line, "type:", 5) == 0) {
            e.form = S_TYPE;
            e.name = line + 5;
        } else {
            const char *k = line;                  /* "race:x" and other kinds are not ours */
            while ((*k >= 'a' && *k <= 'z') || *k == '_') k++;
            if (k > line && k[0] == ':' && k[1] != ':') {
                if (!pn.skipped++) pn.first_skipped = c.lineno;
                continue;
            }
            e.name = line;
        }
        if (!*e.name) continue;
        if (!grow((void **)&s->s, &s->scap, s->n, sizeof *s->s)) { pn.oom = true; break; }
        s->s[s->n++] = e;
    }
    for (unsigned i = 0; i < s->n; i++)             /* frame indices become pointers */
        if (s->s[i].form == S_FRAMES) s->s[i].frames = s->f + (uintptr_t)s->s[i].frames;
    if (pn.oom)
        _ms_message("MEMSHIM_SUPPRESS=%s: out of memory at line %u; the suppressions from there on are "
                    "not used", name, c.lineno);
    if (pn.skipped)
        _ms_message("MEMSHIM_SUPPRESS=%s: %u entr%s (the first at line %u) not for leaks; skipped", name,
                    pn.skipped, pn.skipped == 1 ? "y" : "ies", pn.first_skipped);
    if (pn.bad)
        _ms_message("MEMSHIM_SUPPRESS=%s: %u malformed valgrind block%s (the first at line %u): expected "
                    "{ NAME, TOOL:Leak, [match-leak-kinds: ...], fun:/obj:/src:/... lines, }; skipped", name,
                    pn.bad, pn.bad == 1 ? "" : "s", pn.first_bad);
    return s;
}

/* ---- matching ---------------------------------------------------------------------- */

/* Glob with '*' and '?', anchored at both ends. */
static bool glob(const char *pat, const char *s)
{
    for (; *pat; pat++, s++) {
        if (*pat == '*') {
            while (*pat == '*') pat++;
            if (!*pat) return true;
            for (; *s; s++) if (glob(pat, s)) return true;
            return false;
        }
        if (!*s || (*pat != '?' && *pat != *s)) return false;
    }
    return !*s;
}

/* LeakSanitizer's form: '^' and '$' anchor, otherwise a substring. */
static bool line_glob(const char *pat, const char *s)
{
    if (!s) return false;
    size_t n = strlen(pat);
    char buf[512];
    if (n + 3 > sizeof buf) return false;
    size_t o = 0;
    bool head = pat[0] == '^', tail = n > (size_t)head && pat[n - 1] == '$';
    if (!head) buf[o++] = '*';
    memcpy(buf + o, pat + head, n - head - tail);
    o += n - head - tail;
    if (!tail) buf[o++] = '*';
    buf[o] = 0;
    return glob(buf, s);
}


static bool frame_matches(const fpat_t *f, const ms_frame_t *fr)
{
    switch (f->kind) {
    case F_FUN: return fr->function && glob(f->glob, fr->function);
    case F_OBJ: return fr->module && glob(f->glob, fr->module);
    case F_SRC: return fr->file && (glob(f->glob, fr->file) || glob(f->glob, _ms_base_name(fr->file))) &&
                       (!f->line || f->line == fr->line);
    default:    return true;
    }
}

static bool frames_match(const fpat_t *p, unsigned np, const ms_frame_t *fr, unsigned nf)
{
    if (!np) return true;                           /* the stack may go on */
    if (p->kind == F_ANY) {
        for (unsigned k = 0; k <= nf; k++)
            if (frames_match(p + 1, np - 1, fr + k, nf - k)) return true;
        return false;
    }
    return nf && frame_matches(p, fr) && frames_match(p + 1, np - 1, fr + 1, nf - 1);
}

/* A first fun: pattern naming an allocation function stands for the
 * allocator's frame, which memshim's stacks do not have. */
static bool allocator_pattern(const fpat_t *f)
{
    static const char *names[] = { "malloc", "calloc", "realloc", "reallocarray", "memalign",
        "posix_memalign", "aligned_alloc", "valloc", "pvalloc", "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t",
        "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "operator new(unsigned long)",
        "operator new[](unsigned long)", "strdup", "strndup" };
    if (f->kind != F_FUN) return false;
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        if (glob(f->glob, names[i])) return true;
    return false;
}

static bool entry_matches(const ms_supp_t *e, const ms_frame_t *fr, unsigned nf, unsigned kind, const char *gctype)
{
    if (!(e->kinds >> kind & 1)) return false;
    switch (e->form) {
    case S_TYPE:
        return gctype && glob(e->name, gctype);

    case S_FRAMES: {
        const fpat_t *p = e->frames;
        unsigned np = e->nframes;
        if (np && allocator_pattern(p)) { p++; np--; }
        return frames_match(p, np, fr, nf);
    }
    default:
        for (unsigned i = 0; i < nf; i++)
            if (line_glob(e->name, fr[i].function) || line_glob(e->name, fr[i].file) ||
                line_glob(e->name, fr[i].module))
                return true;
        return false;
    }
}

/* Whether a loss record (its stack, kind, collector type) is suppressed;
 * the suppression that took it counts its blocks and bytes. */
bool _ms_supp_match(ms_supps_t *s, uint32_t stack, unsigned kind, const char *gctype, double blocks, double bytes)
{
    uintptr_t ip[MS_MAX_STACK];
    unsigned nf = _ms_stack_get(stack, ip);
    ms_supp_t *hit = NULL;
    /* memshim's own needs no names, only the first frame's address: a
     * report whose only suppressed blocks are the loader's never loads
     * libdw (a short threaded program's peak RSS was libdw's, 3 MiB). */
    for (unsigned i = 0; i < NBUILTIN && !hit; i++)
        if ((builtin[i].kinds >> kind & 1) && nf && _ms_loader_code(ip[0])) hit = &builtin[i];
    /* Symbolizing a stack is the cost: only when some suppression of the
     * user's may take this kind (still-reachable records, most of a big
     * program's, only through a valgrind block that names them). */
    bool any = false;
    for (unsigned i = 0; s && i < s->n && !any && !hit; i++) any = s->s[i].kinds >> kind & 1;
    if (any) {
        /* Files are looked up (the module's DWARF loaded) only for a
         * LeakSanitizer-style line of the user's, which may name one. */
        bool files = false;
        for (unsigned i = 0; i < s->n && !files; i++) files = s->s[i].form == S_LINE;
        ms_frame_t fr[MS_MAX_STACK];
        for (unsigned i = 0; i < nf; i++) {
            if (files) _ms_symbolize(ip[i], &fr[i], true);
            else _ms_symbolize_name(ip[i], &fr[i]);
        }
        for (unsigned i = 0; i < s->n && !hit; i++)
            if (entry_matches(&s->s[i], fr, nf, kind, gctype)) hit = &s->s[i];
    }
    if (!hit) return false;
    hit->blocks += blocks;
    hit->bytes += bytes;
    return true;
}

/* ---- what was used, and suppressions for the asking -------------------------------- */


void _ms_supp_used(const ms_supps_t *s, ms_buf_t *b, int pid, bool json)
{
    bool first = true;
    for (unsigned i = 0; i < NBUILTIN + (s ? s->n : 0); i++) {
        const ms_supp_t *e = i < NBUILTIN ? &builtin[i] : &s->s[i - NBUILTIN];
        if (e->blocks <= 0) continue;
        if (json) {
            _ms_bprintf(b, "%s{\"name\": ", first ? "" : ", ");
            _ms_json_str(b, e->name);
            _ms_bprintf(b, ", \"line\": %u, \"blocks\": %llu, \"bytes\": %llu}", e->lineno,
                        _ms_round(e->blocks), _ms_round(e->bytes));
        } else {
            unsigned long long nb = _ms_round(e->blocks), ny = _ms_round(e->bytes);
            _ms_bprintf(b, "==%d== used_suppression: %llu block%s, %llu byte%s: %s ", pid, nb, nb == 1 ? "" : "s",
                        ny, ny == 1 ? "" : "s", e->name);
            if (e->lineno) _ms_bprintf(b, "(%s:%u)\n", _ms_base_name(_ms_opt.suppress), e->lineno);
            else _ms_bprintf(b, "(memshim's own)\n");
        }
        first = false;
    }
}

/* A valgrind-format suppression for a loss record (MEMSHIM_GEN_SUPPRESSIONS),
 * which both memshim and valgrind read: "..." for the allocator's frames
 * (valgrind has one or two: posix_memalign calls memalign), then the
 * record's frames, by function where known, else by module. */
void _ms_supp_generate(ms_buf_t *b, uint32_t stack, unsigned kind, unsigned record)
{
    static const char *kinds[MS_NKINDS] = { "definite", "indirect", "possible", "reachable" };
    _ms_bprintf(b, "{\n   <memshim_loss_record_%u>\n   Memcheck:Leak\n   match-leak-kinds: %s\n   ...\n",
                record, kinds[kind]);
    uintptr_t ip[MS_MAX_STACK];
    unsigned n = _ms_stack_get(stack, ip);
    for (unsigned i = 0; i < n; i++) {
        ms_frame_t f;
        _ms_symbolize(ip[i], &f, true);
        if (f.function) _ms_bprintf(b, "   fun:%s\n", f.function);
        else if (f.module) _ms_bprintf(b, "   obj:%s\n", f.module);
        else _ms_bprintf(b, "   ...\n");
        if (f.function && (strcmp(f.function, "main") == 0 || strcmp(f.function, "start_thread") == 0)) break;
    }
    _ms_bprintf(b, "}\n");
}
