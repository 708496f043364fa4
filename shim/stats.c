/* stats.c - the allocator's figures, summed on demand from the thread caches,
 * the central lists, segments and huge blocks; printed at exit when
 * MEMSHIM_STATS is set.  Collecting takes each lock briefly, one at a time. */
#include <string.h>
#include <unistd.h>
#include "shim.h"

void _ms_stats_collect(ms_stats_t *st)
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
        o->allocs = ts[c].allocs;
        o->frees = ts[c].frees;
        st->small_in_use += o->in_use * size;
        st->small_capacity += cs[c].capacity * size;
    }
    st->heap_out = __atomic_load_n(&_ms_heap_out, __ATOMIC_RELAXED);
    st->heap_peak = __atomic_load_n(&_ms_heap_peak, __ATOMIC_RELAXED);
    _ms_segment_stats(&st->seg);
    _ms_huge_stats(&st->huge);
    char status[4096];
    if (_ms_os_read_file("/proc/self/status", status, sizeof status) > 0) {
        st->rss = _ms_os_status_kb(status, "VmRSS");
        st->peak_rss = _ms_os_status_kb(status, "VmHWM");
    }
}

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

void _ms_stats_print_fd(int fd)
{
    ms_stats_t st;
    _ms_stats_collect(&st);
    char mem[4096];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, fd);
    _ms_bprintf(&b, "memshim: heap statistics (pid %d)\n", (int)getpid());
    _ms_bprintf(&b, "%5s %8s %6s %12s %12s %14s %6s %14s\n",
                "class", "size", "pools", "in use", "free", "bytes in use", "frag%", "allocs");
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        ms_stats_class_t *o = &st.cls[c];
        if (!o->spans && !o->allocs) continue;
        uint64_t cap = o->in_use + o->free;
        unsigned frag = cap ? (unsigned)(o->free * 100 / cap) : 0;
        _ms_bprintf(&b, "%5u %8llu %6llu %12llu %12llu %14llu %5u%% %14llu\n", c,
                    (unsigned long long)o->size, (unsigned long long)o->spans,
                    (unsigned long long)o->in_use, (unsigned long long)o->free,
                    (unsigned long long)(o->in_use * o->size), frag,
                    (unsigned long long)o->allocs);
    }
    _ms_bprintf(&b, "small blocks in use: "); human(&b, st.small_in_use);
    _ms_bprintf(&b, " of "); human(&b, st.small_capacity);
    _ms_bprintf(&b, " in pools\nheap peak: "); human(&b, st.heap_peak);
    _ms_bprintf(&b, " (blocks out of the pools, thread caches included)");
    _ms_bprintf(&b, "\nhuge blocks: %llu, ", (unsigned long long)st.huge.blocks);
    human(&b, st.huge.bytes);
    _ms_bprintf(&b, " (+ "); human(&b, st.huge.cached); _ms_bprintf(&b, " cached)\n");
    _ms_bprintf(&b, "segments: %llu mapped (", (unsigned long long)st.seg.segments);
    human(&b, st.seg.mapped);
    _ms_bprintf(&b, "), "); human(&b, st.seg.mapped_total);
    _ms_bprintf(&b, " mapped and "); human(&b, st.seg.unmapped_total);
    _ms_bprintf(&b, " returned to the OS in all\nthreads with a cache: %u\n", st.threads);
    _ms_bprintf(&b, "rss: "); human(&b, st.rss);
    _ms_bprintf(&b, ", peak rss: "); human(&b, st.peak_rss);
    _ms_bprintf(&b, "\n");
    _ms_buf_flush(&b);
}

/* Options of the statistics side (none beyond MEMSHIM_STATS yet). */
void _ms_options_load_reporting(void) {}

void _ms_stats_at_exit(void)
{
    if (!_ms_opt.stats) return;
    int is_stderr;
    int fd = _ms_open_output(_ms_opt.stats, &is_stderr);
    _ms_stats_print_fd(fd);
    if (!is_stderr) close(fd);
}
