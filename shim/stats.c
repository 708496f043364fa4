/* stats.c - the allocator's figures, summed on demand from the thread caches,
 * the central lists, segments and huge blocks; written as a table or as JSON
 * when MEMSHIM_STATS is set (at exit, and on MEMSHIM_STATS_SIGNAL).  Also
 * the options of the reporting side (MEMSHIM_RSS_LOG, MEMSHIM_RSS_INTERVAL,
 * MEMSHIM_LIVE, MEMSHIM_LIVE_INTERVAL, MEMSHIM_STATS_SIGNAL).
 *
 * Collecting takes each lock briefly, one at a time, never two together. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"
#include "../include/memshim.h"

ms_report_opts_t _ms_ropt = {
    .rss_log = NULL,
    .rss_interval_ms = 100,
    .live = 0,
    .live_interval_ms = 1000,
    .stats_signal = 0,
    .metrics = NULL,
    .metrics_interval_ms = 15000,
};

void _ms_stats_collect(ms_stats_t *st)
{
    _ms_stats_collect_heap(st);
    char status[4096];
    if (_ms_os_read_status(status, sizeof status) > 0) {
        st->rss = _ms_os_status_kb(status, "VmRSS");
        st->peak_rss = _ms_os_status_kb(status, "VmHWM");
    }
}

void _ms_stats_collect_heap(ms_stats_t *st)
{
    memset(st, 0, sizeof *st);
    ms_class_stat_t cs[MS_NCLASSES];
    ms_thread_stat_t ts[MS_NCLASSES];
    _ms_central_stats(cs);
    _ms_tcache_stats(ts, &st->threads);
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        ms_stats_class_t *o = &st->cls[c];
        uint64_t size = _ms_classes[c].size;
        uint64_t handed = cs[c].capacity - cs[c].central_free;   /* out of the central list */
        o->size = size;
        o->spans = cs[c].spans;
        o->in_use = handed > ts[c].cached ? handed - ts[c].cached : 0;
        o->free = cs[c].capacity - o->in_use;
        o->cached = ts[c].cached < o->free ? ts[c].cached : o->free;
        o->allocs = ts[c].allocs;
        o->frees = ts[c].frees;
        o->bytes = o->in_use * size;
        o->frag = cs[c].capacity ? o->free * 1000 / cs[c].capacity : 0;
        st->small_in_use += o->bytes;
        st->small_capacity += cs[c].capacity * size;
    }
    st->heap_out = __atomic_load_n(&_ms_heap_out, __ATOMIC_RELAXED);
    st->heap_peak = __atomic_load_n(&_ms_heap_peak, __ATOMIC_RELAXED);
    _ms_segment_stats(&st->seg);
    _ms_huge_stats(&st->huge);
    st->heap_in_use = st->small_in_use + st->huge.bytes;     /* derived here, once */
    st->heap_mapped = st->seg.mapped + st->huge.mapped;
}

/* The collector's figures, if it ran. */
static bool gc_figures(ms_gc_figures_t *g)
{
    memset(g, 0, sizeof *g);
    return _ms_gc_figures(g) > 0 && g->collections > 0;
}

/* ---- rendering: the table and the JSON from the figures' lists (shim.h) ---- */

#define U(x) ((unsigned long long)(x))

static void human(ms_buf_t *b, uint64_t v)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;
    uint64_t whole = v, frac = 0;
    while (whole >= 1024 && u < 4) { frac = whole % 1024; whole /= 1024; u++; }
    if (u == 0) _ms_bprintf(b, "%llu B", U(v));
    else _ms_bprintf(b, "%llu.%llu %s", U(whole), U(frac * 10 / 1024), unit[u]);
}

/* A value in its unit: the JSON's plain numbers, or the table's; a class
 * row's numbers stay plain (raw: true) but for its percentage. */
static void value(ms_buf_t *b, bool json, bool raw, int unit, uint64_t v)
{
    if (unit == MS_FIG_PERMILLE && json) _ms_bprintf(b, "%llu.%llu", U(v / 10), U(v % 10));
    else if (unit == MS_FIG_PERMILLE) _ms_bprintf(b, "%llu%%", U(v / 10));
    else if (json || raw || unit == MS_FIG_COUNT) _ms_bprintf(b, "%llu", U(v));
    else if (unit == MS_FIG_BYTES) human(b, v);
    else _ms_bprintf(b, "%llu.%03llu ms", U(v / 1000000), U(v / 1000 % 1000));   /* MS_FIG_NS */
}

/* One figure of the totals.  JSON: members grouped in objects by section;
 * the table: a line per section, "section: label value, label value".  A
 * figure without a section stands alone.  f->open: the section left open. */
typedef struct { bool json; const char *open; } figs_t;

static void figures_close(ms_buf_t *b, figs_t *f)
{
    if (f->open) _ms_bprintf(b, f->json ? "},\n" : "\n");
    f->open = NULL;
}

static void figure(ms_buf_t *b, figs_t *f, const char *sec, const char *key, int unit,
                   const char *label, uint64_t v)
{
    const char *name = f->json ? key : label;
    bool same = sec && f->open && strcmp(sec, f->open) == 0;
    if (!same) figures_close(b, f);
    if (!sec) _ms_bprintf(b, f->json ? " \"%s\": " : "%s: ", name);
    else if (same) _ms_bprintf(b, f->json ? ", \"%s\": " : ", %s ", name);
    else _ms_bprintf(b, f->json ? " \"%s\": {\"%s\": " : "%s: %s ", sec, name);
    value(b, f->json, false, unit, v);
    if (!sec) _ms_bprintf(b, f->json ? ",\n" : "\n");
    f->open = sec;
}

/* memshim's own memory: its section follows the program's ("process"). */
static void own(ms_buf_t *b, figs_t *f)
{
    ms_own_t o;
    _ms_meta_usage(&o.resident, &o.mapped);
    _ms_stack_usage(&o.stacks, &o.stack_bytes);
#define OWN(m, key, unit, label)              figure(b, f, "own", key, MS_FIG_##unit, label, o.m);
    MS_OWN_FIGURES(OWN)
}

/* The totals both shapes carry, in the JSON's order; the section of the
 * last is left open. */
static void totals(ms_buf_t *b, figs_t *f, const ms_stats_t *st, const ms_rss_t *rss,
                   const ms_msg_stat_t *msgs)
{
#define HEAP(sec, key, m, live, unit, label)  figure(b, f, sec, key, MS_FIG_##unit, label, st->m);
#define HEAP_ONLY(sec, key, m, unit, label)   figure(b, f, sec, key, MS_FIG_##unit, label, st->m);
    MS_HEAP_FIGURES(HEAP, HEAP_ONLY)
#define RSS(m, label)                         figure(b, f, "process", #m, MS_FIG_BYTES, label, rss->m);
    MS_RSS_FIGURES(RSS, RSS)
    own(b, f);
#define MSG(m, unit, label)                   figure(b, f, "messages", #m, MS_FIG_##unit, label, msgs->m);
    MS_MSG_FIGURES(MSG)
}

static void collector(ms_buf_t *b, figs_t *f, const ms_gc_figures_t *gc)
{
#define GC(m, unit, label)                    figure(b, f, "collector", #m, MS_FIG_##unit, label, gc->m);
    MS_GC_FIGURES(GC)
}

/* A cell of the class table: text right-aligned in width, after a space. */
static void cell(ms_buf_t *b, unsigned width, const char *text, size_t n)
{
    _ms_bprintf(b, " ");
    for (size_t i = n; i < width; i++) _ms_bprintf(b, " ");
    _ms_buf_put(b, text, n);
}

static void class_heading(ms_buf_t *b)
{
    _ms_bprintf(b, "class");
#define HEADING(m, live, api, key, unit, width, heading)  cell(b, width, heading, strlen(heading));
#define HEADING_ONLY(m, key, unit, width, heading)        cell(b, width, heading, strlen(heading));
    MS_CLASS_FIGURES(HEADING, HEADING_ONLY)
    _ms_bprintf(b, "\n");
}

/* A class's row: the table's, or the JSON's object. */
static void class_row(ms_buf_t *b, bool json, unsigned c, const ms_stats_class_t *o)
{
    char mem[32];
    ms_buf_t v;
    if (json) _ms_bprintf(b, "{\"class\": %u", c);
    else _ms_bprintf(b, "%5u", c);
#define COLUMN(m, key, unit, width)                                              \
    if (json) { _ms_bprintf(b, ", \"%s\": ", key); value(b, true, true, MS_FIG_##unit, o->m); } \
    else {                                                                       \
        _ms_buf_init(&v, mem, sizeof mem, -1);                                   \
        value(&v, false, true, MS_FIG_##unit, o->m);                             \
        cell(b, width, mem, v.len);                                              \
    }
#define ROW(m, live, api, key, unit, width, heading)  COLUMN(m, key, unit, width)
#define ROW_ONLY(m, key, unit, width, heading)        COLUMN(m, key, unit, width)
    MS_CLASS_FIGURES(ROW, ROW_ONLY)
    _ms_bprintf(b, json ? "}" : "\n");
}

static bool class_used(const ms_stats_class_t *o) { return o->spans || o->allocs; }

static void print_text(ms_buf_t *b, const ms_stats_t *st, const ms_rss_t *rss,
                       const ms_msg_stat_t *msgs, const ms_gc_figures_t *gc, bool gc_ran)
{
    _ms_bprintf(b, "memshim: heap statistics (pid %d)\n", (int)getpid());
    class_heading(b);
    for (unsigned c = 0; c < MS_NCLASSES; c++)
        if (class_used(&st->cls[c])) class_row(b, false, c, &st->cls[c]);
    figs_t f = { false, NULL };
    totals(b, &f, st, rss, msgs);
    if (gc_ran) collector(b, &f, gc);
    figures_close(b, &f);
}

/* ---- JSON (schema in man/memshim.7, "STATISTICS IN JSON") ------------------ */

static void print_json(ms_buf_t *b, const ms_stats_t *st, const ms_rss_t *rss,
                       const ms_msg_stat_t *msgs, const ms_gc_figures_t *gc, bool gc_ran)
{
    _ms_json_begin(b, "memshim-stats", 1);
    _ms_bprintf(b, ",\n \"classes\": [");
    bool first = true;
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        if (!class_used(&st->cls[c])) continue;
        _ms_bprintf(b, "%s\n  ", first ? "" : ",");
        class_row(b, true, c, &st->cls[c]);
        first = false;
    }
    _ms_bprintf(b, "],\n");
    figs_t f = { true, NULL };
    totals(b, &f, st, rss, msgs);
    figures_close(b, &f);
    if (!gc_ran) { _ms_bprintf(b, " \"collector\": null\n}\n"); return; }
    collector(b, &f, gc);
    _ms_bprintf(b, "}\n}\n");
}

static int print_on_own_stack(void *arg);

/* The figures, to fd or (not NULL) o's file (on memshim's own stack:
 * unwind.c). */
struct print_call { int fd; bool json; const ms_out_t *o; };
static void print_fd(int fd, bool json, const ms_out_t *o)
{
    struct print_call c = { fd, json, o };
    _ms_on_own_stack(print_on_own_stack, &c);
}

static int print_on_own_stack(void *arg)
{
    const struct print_call *c = arg;
    bool json = c->json;
    ms_stats_t st;
    ms_rss_t rss;
    ms_msg_stat_t msgs;
    ms_gc_figures_t gc;
    _ms_stats_collect(&st);
    _ms_rss_read(&rss, true);
    _ms_message_stats(&msgs);
    bool gc_ran = gc_figures(&gc);
    char mem[4096];
    ms_buf_t b;
    if (c->o) _ms_buf_init_out(&b, mem, sizeof mem, c->o);
    else _ms_buf_init(&b, mem, sizeof mem, c->fd);
    if (json) print_json(&b, &st, &rss, &msgs, &gc, gc_ran);
    else print_text(&b, &st, &rss, &msgs, &gc, gc_ran);
    _ms_buf_flush(&b);
    return 0;
}

void _ms_stats_print_fd(int fd) { print_fd(fd, false, NULL); }

/* Write the figures to dest ("stderr" or a name pattern, %n: the how
 * manyth statistics of this process; JSON if the name ends in .json), by out.c's rules for output files: a regular file is
 * replaced atomically, a device or FIFO written in place. */
void _ms_stats_write(const char *dest)
{
    int saved = errno;
    static unsigned seq;               /* %n: the statistics' sequence number */
    ms_out_t o;
    _ms_out_open_seq(&o, "MEMSHIM_STATS", dest, 0, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    print_fd(o.fd, o.kind != MS_OUT_STDERR && _ms_ends_with(o.path, ".json"), &o);
    if (!_ms_out_commit(&o)) {
        _ms_out_open(&o, "MEMSHIM_STATS", NULL, 0);         /* not written there: stderr */
        print_fd(o.fd, false, &o);
        _ms_out_commit(&o);
    }
    errno = saved;
}
