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
    if (_ms_os_read_file("/proc/self/status", status, sizeof status) > 0) {
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
        st->small_in_use += o->in_use * size;
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

/* ---- text ------------------------------------------------------------------ */

static void human(ms_buf_t *b, uint64_t v)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;
    uint64_t whole = v, frac = 0;
    while (whole >= 1024 && u < 4) { frac = whole % 1024; whole /= 1024; u++; }
    if (u == 0) _ms_bprintf(b, "%llu B", (unsigned long long)v);
    else _ms_bprintf(b, "%llu.%llu %s", (unsigned long long)whole,
                     (unsigned long long)(frac * 10 / 1024), unit[u]);
}

#define U(x) ((unsigned long long)(x))

static void print_text(ms_buf_t *b, const ms_stats_t *st, const ms_rss_t *rss,
                       const ms_gc_figures_t *gc, bool gc_ran)
{
    _ms_bprintf(b, "memshim: heap statistics (pid %d)\n", (int)getpid());
    _ms_bprintf(b, "%5s %8s %6s %12s %12s %14s %6s %14s\n",
                "class", "size", "pools", "in use", "free", "bytes in use", "frag%", "allocs");
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        const ms_stats_class_t *o = &st->cls[c];
        if (!o->spans && !o->allocs) continue;
        uint64_t cap = o->in_use + o->free;
        unsigned frag = cap ? (unsigned)(o->free * 100 / cap) : 0;
        _ms_bprintf(b, "%5u %8llu %6llu %12llu %12llu %14llu %5u%% %14llu\n", c,
                    U(o->size), U(o->spans), U(o->in_use), U(o->free),
                    U(o->in_use * o->size), frag, U(o->allocs));
    }
    _ms_bprintf(b, "small blocks in use: "); human(b, st->small_in_use);
    _ms_bprintf(b, " of "); human(b, st->small_capacity);
    _ms_bprintf(b, " in pools\nheap in use: "); human(b, st->heap_in_use);
    _ms_bprintf(b, " (small and huge blocks held by the program)\nheap out of the pools: ");
    human(b, st->heap_out);
    _ms_bprintf(b, ", heap peak: "); human(b, st->heap_peak);
    _ms_bprintf(b, " (thread caches included)");
    _ms_bprintf(b, "\nhuge blocks: %llu, ", U(st->huge.blocks));
    human(b, st->huge.bytes);
    _ms_bprintf(b, " (+ "); human(b, st->huge.cached); _ms_bprintf(b, " cached)\n");
    _ms_bprintf(b, "segments: %llu mapped (", U(st->seg.segments));
    human(b, st->seg.mapped);
    _ms_bprintf(b, "), "); human(b, st->seg.mapped_total);
    _ms_bprintf(b, " mapped and "); human(b, st->seg.unmapped_total);
    _ms_bprintf(b, " returned to the OS in all\nheap mapped from the OS now: ");
    human(b, st->heap_mapped);
    _ms_bprintf(b, "\nthreads with a cache: %u\n", st->threads);
    _ms_bprintf(b, "rss: "); human(b, rss->rss);
    _ms_bprintf(b, ", peak rss: "); human(b, rss->peak_rss);
    _ms_bprintf(b, ", uss: "); human(b, rss->uss);
    _ms_bprintf(b, ", pss: "); human(b, rss->pss);
    _ms_bprintf(b, ", swap: "); human(b, rss->swap);
    _ms_bprintf(b, "\n");
    if (gc_ran)
        _ms_bprintf(b, "collector: %llu collections, %llu objects tracked, %llu collected, "
                    "%llu uncollectable\n",
                    U(gc->collections), U(gc->tracked), U(gc->collected),
                    U(gc->uncollectable));
}

/* ---- JSON (schema in man/memshim.7, "STATISTICS IN JSON") ------------------ */

/* One member of the figures' JSON, opening its section (NULL: none) when
 * it changes; *open is the section left open. */
static void json_figure(ms_buf_t *b, const char **open, const char *sec, const char *key, uint64_t v)
{
    bool same = sec && *open && strcmp(sec, *open) == 0;
    if (*open && !same) _ms_bprintf(b, "},\n");
    if (!sec) _ms_bprintf(b, " \"%s\": %llu,\n", key, U(v));
    else {
        if (same) _ms_bprintf(b, ", ");
        else _ms_bprintf(b, " \"%s\": {", sec);
        _ms_bprintf(b, "\"%s\": %llu", key, U(v));
    }
    *open = sec;
}

static void print_json(ms_buf_t *b, const ms_stats_t *st, const ms_rss_t *rss,
                       const ms_gc_figures_t *gc, bool gc_ran)
{
    _ms_json_begin(b, "memshim-stats", 1);
    _ms_bprintf(b, ",\n \"classes\": [");
    bool first = true;
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        const ms_stats_class_t *o = &st->cls[c];
        if (!o->spans && !o->allocs) continue;
        uint64_t cap = o->in_use + o->free;
        uint64_t permille = cap ? o->free * 1000 / cap : 0;
        _ms_bprintf(b, "%s\n  {\"class\": %u, \"size\": %llu, \"pools\": %llu, \"blocks_in_use\": %llu, "
                    "\"blocks_free\": %llu, \"bytes_in_use\": %llu, \"fragmentation_pct\": %llu.%llu, "
                    "\"allocs\": %llu, \"frees\": %llu}",
                    first ? "" : ",", c, U(o->size), U(o->spans), U(o->in_use), U(o->free),
                    U(o->in_use * o->size), U(permille / 10), U(permille % 10),
                    U(o->allocs), U(o->frees));
        first = false;
    }
    _ms_bprintf(b, "],\n");
    const char *open = NULL;
#define HEAP(sec, key, m, f)    json_figure(b, &open, sec, key, st->m);
#define HEAP_JSON(sec, key, m)  json_figure(b, &open, sec, key, st->m);
    MS_HEAP_FIGURES(HEAP, HEAP_JSON)
#define RSS(m)                  json_figure(b, &open, "process", #m, rss->m);
    MS_RSS_FIGURES(RSS, RSS)
    _ms_bprintf(b, "},\n");
    if (!gc_ran) { _ms_bprintf(b, " \"collector\": null\n}\n"); return; }
    open = NULL;
#define GC(m)                   json_figure(b, &open, "collector", #m, gc->m);
    MS_GC_FIGURES(GC)
    _ms_bprintf(b, "}\n}\n");
}

static void print_fd(int fd, bool json)
{
    ms_stats_t st;
    ms_rss_t rss;
    ms_gc_figures_t gc;
    _ms_stats_collect(&st);
    _ms_rss_read(&rss, true);
    bool gc_ran = gc_figures(&gc);
    char mem[4096];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, fd);
    if (json) print_json(&b, &st, &rss, &gc, gc_ran);
    else print_text(&b, &st, &rss, &gc, gc_ran);
    _ms_buf_flush(&b);
}

void _ms_stats_print_fd(int fd) { print_fd(fd, false); }

/* Write the figures to dest ("stderr" or a name pattern, %n: the how
 * manyth statistics of this process; JSON if the name ends in .json), by out.c's rules for output files: a regular file is
 * replaced atomically, a device or FIFO written in place. */
void _ms_stats_write(const char *dest)
{
    int saved = errno;
    static unsigned seq;               /* %n: the statistics' sequence number */
    ms_out_t o;
    _ms_out_open_seq(&o, "MEMSHIM_STATS", dest, 0, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    print_fd(o.fd, o.kind != MS_OUT_STDERR && _ms_ends_with(o.path, ".json"));
    if (!_ms_out_commit(&o)) {
        _ms_out_open(&o, "MEMSHIM_STATS", NULL, 0);         /* the rename failed: stderr */
        print_fd(o.fd, false);
        _ms_out_commit(&o);
    }
    errno = saved;
}

/* At exit (init.c's destructor): stop the reporter thread, which writes the
 * last RSS sample and withdraws the live region, then the final table. */
void _ms_stats_at_exit(void)
{
    _ms_reporter_stop();
    if (_ms_opt.stats) _ms_stats_write(_ms_opt.stats);
}
