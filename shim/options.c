/* options.c - MEMSHIM_* settings, read once from the environment.  The only
 * reader of `environ`, and only at start-up (and at the collector's first
 * use, for MEMSHIM_GC): every value kept is copied.  Every variable is a
 * line of options.def: its kind says how it is parsed, one parser a kind;
 * a malformed value earns one warning naming the variable and the accepted
 * form, and the default stays.  MEMSHIM_OPTIONS="key=value:..." sets the
 * same settings in one variable, as LSAN_OPTIONS and MALLOC_CONF do; a
 * variable of its own wins over it.  An unknown MEMSHIM_* variable (a
 * misspelling) is named, with the closest known one. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "near.h"
#include "outname.h"
#include "shim.h"

extern char **environ;

ms_options_t _ms_opt = {
    .stats = NULL,
    .verbose = 0,
    .on_error = MS_ON_ERROR_ABORT,
    .track = 1,
    .stack_depth = 16,
    .free_stacks = 1,
    .show = (1u << MS_KIND_DEFINITE) | (1u << MS_KIND_INDIRECT) | (1u << MS_KIND_POSSIBLE),
    .exitcode = -1,
    .why_depth = 8,
    .trace_children = 1,
    .decay_ms = 1000,
};

/* ---- the table ------------------------------------------------------------------ */
enum { K_BOOL, K_UINT, K_BYTES, K_SIGNAL, K_PATH, K_FILE, K_ONERROR, K_FORMAT, K_SHOW, K_LATER, K_COMMAND };
#define K_CHOICE(k) ((k) == K_ONERROR || (k) == K_FORMAT)     /* FORM lists the words: "a or b" */
typedef struct {
    const char *name, *form;
    unsigned    kind, size;          /* size: of the setting, for numbers */
    void       *dst;
    uint64_t    lo, hi;
} optdef_t;
#define SIZE_OF(w) _Generic((w), unsigned *: 4, int *: 4, uint64_t *: 8, default: 0)   /* enums are unsigned */
#define OPT(name, kind, where, lo, hi, form, doc) \
    { #name, form, K_##kind, SIZE_OF(where), (void *)(where), lo, hi },
static const optdef_t optdefs[] = {
#include "options.def"
};
#undef OPT
#define NOPTS (sizeof optdefs / sizeof optdefs[0])

static const char *_ms_getenv(const char *name)
{
    size_t len = strlen(name);
    if (!environ) return NULL;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    return NULL;
}

/* ---- value parsers ---------------------------------------------------------------- */

/* A decimal number in [lo, hi], with an optional k/m/g suffix when `scaled`. */
static bool parse_num(const char *v, uint64_t lo, uint64_t hi, bool scaled, uint64_t *out)
{
    uint64_t x = 0;
    const char *p = v;
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9') {
        if (x > (UINT64_MAX - 9) / 10) return false;
        x = x * 10 + (uint64_t)(*p++ - '0');
    }
    if (scaled && *p) {
        unsigned sh = (*p == 'k' || *p == 'K') ? 10 : (*p == 'm' || *p == 'M') ? 20
                    : (*p == 'g' || *p == 'G') ? 30 : 0;
        if (!sh || x > (UINT64_MAX >> sh)) return false;
        x <<= sh;
        p++;
    }
    if (*p || x < lo || x > hi) return false;
    *out = x;
    return true;
}

/* A value as messages show it (shim.h): a malformed 100 KB value, or one
 * with a newline in it, makes one readable line (escaped as names are in
 * reports, _ms_text_put). */
const char *_ms_text_shown(const char *v, size_t n, char *buf, size_t cap)
{
    ms_buf_t b;
    _ms_buf_init(&b, buf, cap - 1, -1);
    size_t lim = n <= 64 ? n : 64;
    while (lim < n && lim > 0 && ((unsigned char)v[lim] & 0xC0) == 0x80) lim--;   /* whole characters */
    _ms_text_put(&b, v, lim);
    if (lim < n) _ms_bprintf(&b, "... (%zu bytes)", n);
    buf[b.len] = 0;
    return buf;
}

const char *_ms_value_shown(const char *v, char *buf, size_t cap) { return _ms_text_shown(v, strlen(v), buf, cap); }

/* "1", "0", "yes", "no", "true", "false", "on", "off". */
/* 1 or 0 if v is a yes or a no word (1/0, yes/no, true/false, on/off), -1 if not. */
static int bool_word(const char *v)
{
    static const char *yes[] = { "1", "yes", "true", "on" }, *no[] = { "0", "no", "false", "off" };
    for (unsigned i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return 1;
        if (strcasecmp(v, no[i]) == 0) return 0;
    }
    return -1;
}

static int parse_bool(const char *name, const char *v, int dflt)
{
    int b = bool_word(v);
    if (b >= 0) return b;
    char shown[MS_SHOWN];
    _ms_message("%s=%s: expected 1 or 0 (yes/no, true/false, on/off); using %d", name,
                _ms_value_shown(v, shown, sizeof shown), dflt);
    return dflt;
}

/* A signal for MEMSHIM_STATS_SIGNAL and MEMSHIM_REPORT_SIGNAL: SIGUSR1, USR2,
 * SIGHUP, SIGRTMIN+3, 12...; 0 if v names none.
 * Only signals whose default action a program can spare are accepted. */
static int parse_signal(const char *v)
{
    static const struct { const char *name; int sig; } names[] = {
        { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP }, { "WINCH", SIGWINCH },
        { "URG", SIGURG }, { "PWR", SIGPWR }, { "PROF", SIGPROF }, { "VTALRM", SIGVTALRM },
    };
    const char *s = strncasecmp(v, "SIG", 3) == 0 ? v + 3 : v;
    uint64_t n;
    if (parse_num(s, 1, 64, false, &n)) {
        for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
            if ((int)n == names[i].sig) return (int)n;
        return (int)n >= SIGRTMIN && (int)n <= SIGRTMAX ? (int)n : 0;
    }
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) return names[i].sig;
    if (strncasecmp(s, "RTMIN", 5) == 0) {
        if (!s[5]) return SIGRTMIN;
        if (s[5] == '+' && parse_num(s + 6, 0, 64, false, &n) && SIGRTMIN + (int)n <= SIGRTMAX)
            return SIGRTMIN + (int)n;
    }
    return 0;
}

/* ---- one parser a kind ------------------------------------------------------- */


/* MEMSHIM_SHOW: a comma list of definite, indirect, possible, reachable, or
 * all, none, summary (the summary alone, whenever something leaked). */
static bool parse_show(const char *v, unsigned *out, int *summary)
{
    static const char *names[MS_NKINDS] = { "definite", "indirect", "possible", "reachable" };
    unsigned bits = 0;
    const char *p = v;
    *summary = 0;
    if (!*p) return false;                  /* not "none": an empty value shows nothing by mistake */
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        unsigned k;
        if (!len) return false;
        if (len == 3 && strncmp(p, "all", 3) == 0) bits = (1u << MS_NKINDS) - 1;
        else if (len == 4 && strncmp(p, "none", 4) == 0) ;
        else if (len == 7 && strncmp(p, "summary", 7) == 0) *summary = 1;
        else {
            for (k = 0; k < MS_NKINDS; k++)
                if (strlen(names[k]) == len && strncmp(p, names[k], len) == 0) break;
            if (k == MS_NKINDS) return false;
            bits |= 1u << k;
        }
        p += len;
        if (*p == ',') p++;
    }
    *out = bits;
    return true;
}

/* A choice among the words of `form` ("abort or continue"): the index of v. */
static bool parse_choice(const char *v, const char *form, unsigned *out)
{
    size_t len = strlen(v);
    unsigned i = 0;
    for (const char *w = form; *w; i++) {
        size_t n = strcspn(w, " ,");
        if (n == len && strncmp(w, v, len) == 0) { *out = i; return true; }
        w += n;
        while (*w == ' ' || *w == ',') w++;
        if (strncmp(w, "or ", 3) == 0) w += 3;
    }
    return false;
}

static void put_number(const optdef_t *o, uint64_t x)
{
    if (o->size == 8) *(uint64_t *)o->dst = x;
    else *(uint32_t *)o->dst = (uint32_t)x;
}

/* MEMSHIM_TRACE_CHILDREN=0: the programs this one starts run without
 * memshim.  Its entries (files named libmemshim*, not every path that
 * says memshim: a plugin in /opt/memshim-tools stays) leave LD_PRELOAD in
 * this process's environment, which its children inherit: the value is
 * rewritten in place (never longer), or the variable removed from environ
 * when nothing is left. */
static void untrace_children(void)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0) continue;
        char *v = *e + 11, out[4096];
        size_t n = 0;
        for (const char *p = v; *p;) {
            size_t len = strcspn(p, ": "), base = len;
            while (base > 0 && p[base - 1] != '/') base--;      /* the file's name: memshim's is
                                                                 * libmemshim.so (or .so.0, a copy...) */
            bool ours = len - base >= 10 && strncmp(p + base, "libmemshim", 10) == 0;
            if (!ours && len && n + len + 1 < sizeof out) {
                if (n) out[n++] = ':';
                memcpy(out + n, p, len);
                n += len;
            }
            p += len;
            if (*p) p++;
        }
        if (n) {
            memcpy(v, out, n);
            v[n] = 0;
        } else {
            char **d = e;
            do d[0] = d[1]; while (*d++);
        }
        return;
    }
}

/* A file name kept from the environment: copied into buf now (a program
 * may overwrite its environment, as setproctitle does, before memshim
 * needs the name at exit) and made absolute against the working directory
 * at start-up, so a later chdir() does not move it.  "stderr" is kept as
 * is.  NULL, after a message, if it does not fit. */
static const char *keep_path(const char *var, const char *v, char *buf, size_t cap)
{
    size_t len = 0, vlen = strlen(v);
    if (v[0] != '/' && strcmp(v, "stderr") != 0) {
        if (!getcwd(buf, cap - 2)) {
            char shown[MS_SHOWN];
            _ms_message("%s=%s: cannot resolve the working directory; ignored", var,
                        _ms_value_shown(v, shown, sizeof shown));
            return NULL;
        }
        len = strlen(buf);
        buf[len++] = '/';
    }
    if (len + vlen >= cap) {
        _ms_message("%s: name longer than %zu bytes; ignored", var, cap - 1);
        return NULL;
    }
    memcpy(buf + len, v, vlen + 1);
    return buf;
}

/* Whether the parent process runs on memshim (its LD_PRELOAD names it)
 * with the same value of variable `var` (MEMSHIM_REPORT, MEMSHIM_PROFILE):
 * then this is a program it started (sh -c 'a; b', make, gcc's cc1), and
 * the file gets a name of its own rather than replacing the parent's.
 * Read from /proc/PPID/environ, the parent's environment as it was exec'd,
 * one entry at a time. */
static bool parent_shares(const char *var, const char *value)
{
    char path[64], chunk[4096], ent[4200];
    ms_buf_t b;
    _ms_buf_init(&b, path, sizeof path - 1, -1);
    _ms_bprintf(&b, "/proc/%d/environ", (int)getppid());
    path[b.len] = 0;
    int fd = _ms_fd_open(AT_FDCWD, path, O_RDONLY, 0);
    if (fd < 0) return false;
    bool same = false, preload = false, cut = false;
    size_t len = 0, vl = strlen(var);
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i]) {
                if (len < sizeof ent - 1) ent[len++] = chunk[i]; else cut = true;
                continue;
            }
            ent[len] = 0;
            if (!cut && strncmp(ent, var, vl) == 0 && ent[vl] == '=') same = strcmp(ent + vl + 1, value) == 0;
            if (!cut && strncmp(ent, "LD_PRELOAD=", 11) == 0) preload = strstr(ent, "memshim") != NULL;
            len = 0;
            cut = false;
        }
    _ms_fd_close(fd);
    return same && preload;
}

/* Where a file name is kept: a buffer of its own for each variable.  A
 * K_PATH setting may also say stderr; a K_FILE one (rewritten whole, again
 * and again) names a file. */
#define OPT(name, kind, where, lo, hi, form, doc) + (K_##kind == K_PATH || K_##kind == K_FILE)
enum { NPATHS = 0
#include "options.def"
};
#undef OPT
static char path_buf[NPATHS][4096];

static void set_path(const optdef_t *o, const char *shown_name, const char *v, bool secure)
{
    const char **dst = o->dst;
    /* An output asked for with a yes word (MEMSHIM_STATS=1) goes to standard
     * error, and a no word turns it off, rather than naming a file "1" or
     * "0" in the working directory; ./1 names that file. */
    int word = o->kind != K_PATH || o->dst == (const void *)&_ms_opt.suppress ? -1 : bool_word(v);
    if (word == 1) v = "stderr";
    if (word == 0 && o->dst == (const void *)&_ms_opt.report)   /* no "off" for the report */
        _ms_message("%s=%s: expected stderr or a file name; the report goes to standard error "
                    "(MEMSHIM_TRACK=0 leaves it out)", shown_name, v);
    if (!*v || word == 0) { *dst = NULL; return; }
    if (secure && strcmp(v, "stderr") != 0) {
        _ms_message("%s ignored: a file name is not taken in a setuid/setgid program", shown_name);
        return;
    }
    const char *bad = o->dst == (const void *)&_ms_opt.suppress ? NULL : ms_outname_unknown(v);
    if (bad) {
        char shown[MS_SHOWN], seq[MS_SHOWN];
        _ms_message("%s=%s: %s is none of %%p (the pid), %%n (the output's number), %%h (the host name) or "
                    "%%%% (a percent sign); ignored", shown_name, _ms_value_shown(v, shown, sizeof shown),
                    _ms_text_shown(bad, bad[1] ? 2 : 1, seq, sizeof seq));
        return;
    }
    unsigned slot = 0;
    for (const optdef_t *d = optdefs; d < o; d++) slot += d->kind == K_PATH || d->kind == K_FILE;
    *dst = keep_path(shown_name, v, path_buf[slot], sizeof path_buf[slot]);
}

/* One setting from its text; `shown_name` is how messages name it
 * (the variable's name, or MEMSHIM_OPTIONS: and the key). */
static bool given[sizeof optdefs / sizeof optdefs[0]];    /* set by a variable or MEMSHIM_OPTIONS */

static void set_option(const optdef_t *o, const char *shown_name, const char *v, bool secure)
{
    given[o - optdefs] = true;
    char shown[MS_SHOWN];
    uint64_t n;
    unsigned u;
    bool ok = true;
    switch (o->kind) {
    case K_BOOL:
        *(int *)o->dst = parse_bool(shown_name, v, *(int *)o->dst);
        return;
    case K_UINT: case K_BYTES:
        ok = parse_num(v, o->lo, o->hi, o->kind == K_BYTES, &n) &&
             !(o->dst == (const void *)&_ms_opt.profile_interval_ms && n && n < 100);   /* a gap in the range */
        if (ok) put_number(o, n);
        break;
    case K_SIGNAL:
        if (!*v) return;
        if ((ok = (u = (unsigned)parse_signal(v)) != 0)) *(int *)o->dst = (int)u;
        break;
    case K_SHOW: {
        int summary;
        if ((ok = parse_show(v, &u, &summary))) { *(unsigned *)o->dst = u; _ms_opt.show_summary = summary; }
        break;
    }
    case K_ONERROR: case K_FORMAT:
        if ((ok = parse_choice(v, o->form, &u))) *(unsigned *)o->dst = u;
        break;
    case K_FILE:
        if ((ok = strcmp(v, "stderr") != 0 && bool_word(v) < 0)) set_path(o, shown_name, v, secure);
        break;
    case K_PATH:
        set_path(o, shown_name, v, secure);
        return;
    default:
        return;
    }
    if (!ok)
        _ms_message("%s=%s: expected %s; %s", shown_name, _ms_value_shown(v, shown, sizeof shown), o->form,
                    o->kind == K_SIGNAL || o->kind == K_FILE ? "ignored" : "using the default");
}

/* ---- names ------------------------------------------------------------------------ */

/* The option named by name[0..len) (prefix: "MEMSHIM_" for variables, ""
 * for MEMSHIM_OPTIONS keys, which are case-insensitive); NULL if none, and
 * in *near the known names nearest to it, by their tails (near.h: REPROT
 * is one edit from REPORT, RSS a word of RSS_LOG).  No key names the
 * command's own variable or MEMSHIM_OPTIONS, and none is offered for them. */
static const optdef_t *lookup(const char *name, size_t len, bool key, ms_near_t *near)
{
    for (const optdef_t *o = optdefs; o < optdefs + NOPTS; o++) {
        const char *n = key ? o->name + 8 : o->name;
        if (strlen(n) == len && (key ? strncasecmp(n, name, len) : strncmp(n, name, len)) == 0) return o;
    }
    /* Only now near.c, which lies outside the code every process runs
     * (Makefile, HOT_SRC): a name of ours found did not map its page. */
    size_t skip = key ? 0 : 8;
    ms_near_start(near, name + skip, len > skip ? len - skip : 0);
    for (const optdef_t *o = optdefs; o < optdefs + NOPTS; o++) {
        bool refused = key && (o->kind == K_COMMAND || strcmp(o->name, "MEMSHIM_OPTIONS") == 0);
        if (!refused) ms_near_offer(near, o->name + 8, strlen(o->name + 8), o);
    }
    return NULL;
}

/* One line for a name that is no setting: the nearest known ones (a key's
 * in lower case), or where they are listed. */
static void unknown(const char *what, const char *name, size_t len, const ms_near_t *near, bool key)
{
    char shown[MS_SHOWN], names[4 * MS_NEAR_MAX * 32];
    const char *nm = _ms_text_shown(name, len, shown, sizeof shown);
    unsigned n = near ? ms_near_count(near) : 0;
    if (!n) {
        _ms_message("%s%s: not a memshim setting; ignored (memshim help env lists them)", what, nm);
        return;
    }
    ms_buf_t b;
    _ms_buf_init(&b, names, sizeof names, -1);
    for (unsigned i = 0; i < n; i++) {
        const char *s = ((const optdef_t *)near->what[i])->name + (key ? 8 : 0);
        _ms_bprintf(&b, "%s", i == 0 ? "" : i + 1 < n ? ", " : " or ");
        for (; *s; s++) _ms_bprintf(&b, "%c", key && *s >= 'A' && *s <= 'Z' ? *s | 32 : *s);
    }
    names[b.len < sizeof names ? b.len : sizeof names - 1] = 0;
    _ms_message("%s%s: not a memshim setting; ignored (did you mean %s?)", what, nm, names);
}

/* MEMSHIM_OPTIONS: key=value pairs separated by ':'.  Kept whole in a copy
 * (a program may rewrite its environment); values cannot hold ':'. */
static void load_combined(bool secure, const char *v)
{
    static char copy[8192];
    if (strlen(v) >= sizeof copy) {
        _ms_message("MEMSHIM_OPTIONS: longer than %zu bytes; ignored", sizeof copy - 1);
        return;
    }
    strcpy(copy, v);
    for (char *p = copy, *next; *p; p = next) {
        char *end = strchr(p, ':');
        next = end ? end + 1 : p + strlen(p);
        if (end) *end = 0;
        if (!*p) continue;
        char *eq = strchr(p, '=');
        size_t klen = eq ? (size_t)(eq - p) : strlen(p);
        ms_near_t near;
        const optdef_t *o = lookup(p, klen, true, &near);
        bool nested = o && strcmp(o->name, "MEMSHIM_OPTIONS") == 0;
        if (o && o->kind == K_LATER && !nested) continue;     /* gc=: its owner reads it (_ms_option_text) */
        if (!o || nested || o->kind == K_COMMAND) {
            unknown("MEMSHIM_OPTIONS: ", p, klen, o ? NULL : &near, true);
            continue;
        }
        if (!eq) {
            char shown[MS_SHOWN];
            _ms_message("MEMSHIM_OPTIONS: %s: expected key=value", _ms_value_shown(p, shown, sizeof shown));
            continue;
        }
        char shown_name[80] = "MEMSHIM_OPTIONS:";
        size_t n = klen < sizeof shown_name - 17 ? klen : sizeof shown_name - 17;
        memcpy(shown_name + 16, p, n);
        shown_name[16 + n] = 0;
        set_option(o, shown_name, eq + 1, secure);
    }
}

/* The value of a K_LATER setting, for its owner: the variable, else its key
 * in MEMSHIM_OPTIONS (copied into buf); NULL if neither. */
const char *_ms_option_text(const char *name, char *buf, size_t cap)
{
    const char *v = _ms_getenv(name), *all = _ms_getenv("MEMSHIM_OPTIONS");
    if (v || !all) return v;
    size_t klen = strlen(name) - 8;
    for (const char *p = all; *p;) {
        size_t n = strcspn(p, ":");
        if (n > klen && p[klen] == '=' && strncasecmp(p, name + 8, klen) == 0) {
            size_t vl = n - klen - 1 < cap - 1 ? n - klen - 1 : cap - 1;
            memcpy(buf, p + klen + 1, vl);
            buf[vl] = 0;
            return buf;
        }
        p += n + (p[n] == ':');
    }
    return NULL;
}

void _ms_options_load(void)
{
    bool secure = _ms_os_secure();
    const char *all = _ms_getenv("MEMSHIM_OPTIONS");
    if (all) load_combined(secure, all);
    for (const optdef_t *o = optdefs; o < optdefs + NOPTS; o++) {
        const char *v = _ms_getenv(o->name);
        if (v) set_option(o, o->name, v, secure);
    }
    /* What follows from the settings together. */
    const char *report = _ms_opt.report;
    if (_ms_names_file(report)) {
        const optdef_t *fmt = NULL;
        for (const optdef_t *o = optdefs; o < optdefs + NOPTS; o++) if (o->kind == K_FORMAT) fmt = o;
        if (fmt && !given[fmt - optdefs] && _ms_ends_with(report, ".json")) _ms_opt.json = 1;  /* the name decides */
        _ms_opt.report_child = !strstr(report, "%p") && parent_shares("MEMSHIM_REPORT", _ms_getenv("MEMSHIM_REPORT") ?
                                                                      _ms_getenv("MEMSHIM_REPORT") : report);
    }
    const char *profile = _ms_getenv("MEMSHIM_PROFILE");
    if (profile && _ms_opt.profile && strcmp(_ms_opt.profile, "stderr") != 0)
        _ms_opt.profile_child = !strstr(profile, "%p") && parent_shares("MEMSHIM_PROFILE", profile);
    if (!_ms_opt.trace_children) untrace_children();
    if (!environ) return;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "MEMSHIM_", 8) != 0) continue;
        size_t len = strcspn(*e, "=");
        ms_near_t near;
        if (!lookup(*e, len, false, &near)) unknown("", *e, len, &near, false);
    }
}
