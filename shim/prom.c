/* prom.c - live figures as Prometheus text / OpenMetrics (prom.h).
 *
 * One table of metric families drives everything: the text format wants
 * all samples of a family together, so the loop is families outside,
 * processes inside.  A family is printed only when some process has a
 * sample for it (the collector's when it ran, leak totals when a report
 * was made, uss/pss/swap when read).  Names follow Prometheus' conventions:
 * base units (bytes, seconds), _total on counters; in OpenMetrics a
 * counter's family name drops the _total its samples keep. */
#include <stdbool.h>
#include <string.h>
#include "prom.h"
#include "utf8.h"

enum { GAUGE, COUNTER };
enum { ALWAYS, SMAPS, GC, LEAKS };                  /* when a family has samples */
enum { SCALAR, CLASS, GEN, KIND, MILLIS };           /* shape of the figure at `off` */

typedef struct {
    const char    *name;       /* counters without _total */
    const char    *help;
    unsigned char  type, when, shape;
    unsigned short off;        /* in ms_live_t, or in ms_live_class_t for CLASS */
} family_t;

#define L(f) offsetof(ms_live_t, f)
#define C(f) offsetof(ms_live_class_t, f)
static const family_t families[] = {
    { "memshim_rss_bytes", "Resident set size (VmRSS).", GAUGE, ALWAYS, SCALAR, L(rss) },
    { "memshim_peak_rss_bytes", "Peak resident set size (VmHWM).", GAUGE, ALWAYS, SCALAR, L(peak_rss) },
    { "memshim_virtual_memory_bytes", "Virtual memory size (VmSize).", GAUGE, ALWAYS, SCALAR, L(vms) },
    { "memshim_uss_bytes", "Unique set size: private memory (smaps_rollup).", GAUGE, SMAPS, SCALAR, L(uss) },
    { "memshim_pss_bytes", "Proportional set size (smaps_rollup).", GAUGE, SMAPS, SCALAR, L(pss) },
    { "memshim_swap_bytes", "Memory swapped out (smaps_rollup).", GAUGE, SMAPS, SCALAR, L(swap) },
    { "memshim_heap_in_use_bytes", "Heap held by the program: small and huge blocks.", GAUGE, ALWAYS, SCALAR, L(heap_in_use) },
    { "memshim_heap_peak_bytes", "Highest heap out of the pools, thread caches included.", GAUGE, ALWAYS, SCALAR, L(heap_peak) },
    { "memshim_heap_mapped_bytes", "Heap memory mapped from the OS now: segments and huge blocks.", GAUGE, ALWAYS, SCALAR, L(heap_mapped) },
    { "memshim_small_in_use_bytes", "Small blocks held by the program.", GAUGE, ALWAYS, SCALAR, L(small_in_use) },
    { "memshim_small_pooled_bytes", "Capacity of the pools of small blocks.", GAUGE, ALWAYS, SCALAR, L(small_pooled) },
    { "memshim_huge_blocks", "Huge blocks (above 512 KiB, one mapping each) in use.", GAUGE, ALWAYS, SCALAR, L(huge_blocks) },
    { "memshim_huge_bytes", "Bytes of the huge blocks in use.", GAUGE, ALWAYS, SCALAR, L(huge_bytes) },
    { "memshim_huge_cached_bytes", "Mappings of freed huge blocks kept for reuse.", GAUGE, ALWAYS, SCALAR, L(huge_cached) },
    { "memshim_segments", "4 MiB segments mapped.", GAUGE, ALWAYS, SCALAR, L(segments) },
    { "memshim_segment_bytes", "Bytes of the segments mapped.", GAUGE, ALWAYS, SCALAR, L(segment_bytes) },
    { "memshim_os_mapped_bytes", "Segment memory mapped from the OS since start.", COUNTER, ALWAYS, SCALAR, L(os_mapped_total) },
    { "memshim_os_returned_bytes", "Segment memory returned to the OS since start.", COUNTER, ALWAYS, SCALAR, L(os_returned_total) },
    { "memshim_thread_caches", "Threads with a cache.", GAUGE, ALWAYS, SCALAR, L(threads) },
    { "memshim_class_pools", "Pools (spans of 64 KiB pages) of a size class.", GAUGE, ALWAYS, CLASS, C(pools) },
    { "memshim_class_blocks_in_use", "Blocks of a size class held by the program.", GAUGE, ALWAYS, CLASS, C(in_use) },
    { "memshim_class_blocks_free", "Free blocks of a size class, in its pools and the thread caches.", GAUGE, ALWAYS, CLASS, C(free) },
    { "memshim_class_allocations", "Allocations of a size class, with or without a thread cache.", COUNTER, ALWAYS, CLASS, C(allocs) },
    { "memshim_class_frees", "Frees of a size class, with or without a thread cache.", COUNTER, ALWAYS, CLASS, C(frees) },
    { "memshim_gc_tracked_objects", "Objects tracked by the collector.", GAUGE, GC, SCALAR, L(gc_tracked) },
    { "memshim_gc_collections", "Collections of a generation.", COUNTER, GC, GEN, L(gc_gen_collections) },
    { "memshim_gc_collected_objects", "Unreachable objects found by collections of a generation.", COUNTER, GC, GEN, L(gc_gen_collected) },
    { "memshim_gc_uncollectable_objects", "Unreachable objects found but not freed, per generation.", COUNTER, GC, GEN, L(gc_gen_uncollectable) },
    { "memshim_leak_checks", "Leak reports made while running.", COUNTER, LEAKS, SCALAR, L(leak_checks) },
    { "memshim_leak_check_time_seconds", "When the last leak report was made (Unix time).", GAUGE, LEAKS, MILLIS, L(leak_unix_ms) },
    { "memshim_leak_bytes", "Bytes of each kind of leak in the last leak report.", GAUGE, LEAKS, KIND, L(leak_bytes) },
    { "memshim_leak_blocks", "Blocks of each kind of leak in the last leak report.", GAUGE, LEAKS, KIND, L(leak_blocks) },
    { "memshim_start_time_seconds", "When the process began publishing figures (Unix time).", GAUGE, ALWAYS, MILLIS, L(start_unix_ms) },
    { "memshim_update_time_seconds", "When these figures were taken (Unix time).", GAUGE, ALWAYS, MILLIS, L(updated_unix_ms) },
};
#undef L
#undef C

static const char *const kinds[4] = { "definite", "indirect", "possible", "reachable" };

/* ---- output ------------------------------------------------------------------- */

static void put(ms_prom_t *w, const char *s, size_t n)
{
    while (n) {
        if (w->len == w->cap) {
            w->flush(w);
            if (w->len == w->cap) return;               /* cannot take more: drop */
        }
        size_t k = w->cap - w->len < n ? w->cap - w->len : n;
        memcpy(w->p + w->len, s, k);
        w->len += k; s += k; n -= k;
    }
}

static void puts_(ms_prom_t *w, const char *s) { put(w, s, strlen(s)); }

static void put_u64(ms_prom_t *w, uint64_t v)
{
    char d[24];
    int i = sizeof d;
    do { d[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    put(w, d + i, sizeof d - (size_t)i);
}

static void put_millis(ms_prom_t *w, uint64_t ms)          /* as seconds, 3 decimals */
{
    char f[5] = { '.', (char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 0 };
    put_u64(w, ms / 1000);
    puts_(w, f);
}

/* The program's name as a label value: the base name of its first word
 * (the region holds the command line), without the colon of a title a
 * server set over its arguments ("nginx: master process ...", "postgres:
 * checkpointer"), at most 128 bytes, escaped as the format wants; control
 * characters and bytes that are not UTF-8 become '?'. */
static void put_program(ms_prom_t *w, const ms_live_t *l)
{
    const unsigned char *s = (const unsigned char *)l->program;
    size_t n = 0;
    while (n < sizeof l->program && s[n] && s[n] != ' ') n++;
    if (n > 1 && s[n - 1] == ':' && n < sizeof l->program && s[n] == ' ') n--;
    size_t base = 0;
    for (size_t i = 0; i + 1 < n; i++) if (s[i] == '/') base = i + 1;
    s += base;
    n -= base;
    if (n > 128) n = 128;
    for (size_t i = 0; i < n;) {
        size_t k = ms_utf8_len(s + i, n - i);
        if (k == 1 && (s[i] < 0x20 || s[i] == 0x7F)) k = 0;
        if (!k) { puts_(w, "?"); i++; continue; }
        if (s[i] == '\\') puts_(w, "\\\\");
        else if (s[i] == '"') puts_(w, "\\\"");
        else put(w, (const char *)s + i, k);
        i += k;
    }
}

/* ---- families ----------------------------------------------------------------- */

static uint64_t u64_at(const void *base, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)base + off, sizeof v);
    return v;
}

static unsigned nclasses(const ms_live_t *l)
{
    return l->nclasses < MS_LIVE_MAX_CLASSES ? l->nclasses : MS_LIVE_MAX_CLASSES;
}

/* A class is shown when it was ever used, and only above the size of the
 * previous class shown: a region with sizes out of order cannot make one
 * series twice. */
static bool class_shown(const ms_live_class_t *c, uint64_t *prev_size)
{
    if (!(c->pools || c->allocs) || c->size <= *prev_size) return false;
    *prev_size = c->size;
    return true;
}

static bool has_samples(const family_t *f, const ms_live_t *l)
{
    switch (f->when) {
    case SMAPS: if (!l->have_smaps) return false; break;
    case GC:    if (!l->gc_ran) return false; break;
    case LEAKS: if (!l->leak_checks) return false; break;
    }
    if (f->shape != CLASS) return true;
    uint64_t prev = 0;
    for (unsigned c = 0; c < nclasses(l); c++)
        if (class_shown(&l->cls[c], &prev)) return true;
    return false;
}

static void header(ms_prom_t *w, const char *name, const char *help, unsigned type)
{
    const char *t = type == COUNTER ? "counter" : "gauge";
    bool total = type == COUNTER && !w->openmetrics;
    puts_(w, "# HELP "); puts_(w, name); if (total) puts_(w, "_total");
    puts_(w, " "); puts_(w, help); puts_(w, "\n");
    puts_(w, "# TYPE "); puts_(w, name); if (total) puts_(w, "_total");
    puts_(w, " "); puts_(w, t); puts_(w, "\n");
}

/* name{pid="…",program="…"[,extra="value"]} */
static void sample_start(ms_prom_t *w, const family_t *f, const ms_live_t *l, const char *extra,
                         const char *extra_s, uint64_t extra_n)
{
    puts_(w, f->name);
    if (f->type == COUNTER) puts_(w, "_total");
    puts_(w, "{pid=\"");
    put_u64(w, (uint32_t)l->pid);
    puts_(w, "\",program=\"");
    put_program(w, l);
    puts_(w, "\"");
    if (extra) {
        puts_(w, ","); puts_(w, extra); puts_(w, "=\"");
        if (extra_s) puts_(w, extra_s); else put_u64(w, extra_n);
        puts_(w, "\"");
    }
    puts_(w, "} ");
}

static void samples(ms_prom_t *w, const family_t *f, const ms_live_t *l)
{
    uint64_t prev = 0;
    switch (f->shape) {
    case SCALAR:
    case MILLIS:
        sample_start(w, f, l, NULL, NULL, 0);
        if (f->shape == MILLIS) put_millis(w, u64_at(l, f->off)); else put_u64(w, u64_at(l, f->off));
        puts_(w, "\n");
        break;
    case CLASS:
        for (unsigned c = 0; c < nclasses(l); c++) {
            if (!class_shown(&l->cls[c], &prev)) continue;
            sample_start(w, f, l, "class", NULL, l->cls[c].size);
            put_u64(w, u64_at(&l->cls[c], f->off));
            puts_(w, "\n");
        }
        break;
    case GEN:
        for (unsigned g = 0; g < 3; g++) {
            sample_start(w, f, l, "generation", NULL, g);
            put_u64(w, u64_at(l, f->off + g * sizeof(uint64_t)));
            puts_(w, "\n");
        }
        break;
    case KIND:
        for (unsigned k = 0; k < 4; k++) {
            sample_start(w, f, l, "kind", kinds[k], 0);
            put_u64(w, u64_at(l, f->off + k * sizeof(uint64_t)));
            puts_(w, "\n");
        }
        break;
    }
}

static void exporter_figures(ms_prom_t *w, const ms_prom_scrape_t *s)
{
    header(w, "memshim_exporter_processes", "Processes whose figures this scrape reports.", GAUGE);
    puts_(w, "memshim_exporter_processes "); put_u64(w, s->processes); puts_(w, "\n");
    header(w, "memshim_exporter_skipped_regions", "Live regions left out of this scrape, by reason.", GAUGE);
    puts_(w, "memshim_exporter_skipped_regions{reason=\"stale\"} "); put_u64(w, s->stale); puts_(w, "\n");
    puts_(w, "memshim_exporter_skipped_regions{reason=\"invalid\"} "); put_u64(w, s->invalid); puts_(w, "\n");
    header(w, "memshim_exporter_scrape_duration_seconds", "Time this scrape took to read the regions.", GAUGE);
    puts_(w, "memshim_exporter_scrape_duration_seconds ");
    put_u64(w, s->duration_ns / 1000000000);
    char f[8] = { '.' };
    for (int i = 6, v = (int)(s->duration_ns / 1000 % 1000000); i >= 1; i--, v /= 10) f[i] = (char)('0' + v % 10);
    put(w, f, 7);
    puts_(w, "\n");
}

void ms_prom_render(ms_prom_t *w, const ms_live_t *const *procs, size_t n, const ms_prom_scrape_t *scrape)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const family_t *f = &families[i];
        bool any = false;
        for (size_t p = 0; p < n && !any; p++) any = has_samples(f, procs[p]);
        if (!any) continue;
        header(w, f->name, f->help, f->type);
        for (size_t p = 0; p < n; p++)
            if (has_samples(f, procs[p])) samples(w, f, procs[p]);
    }
    if (scrape) exporter_figures(w, scrape);
    if (w->openmetrics) puts_(w, "# EOF\n");
    w->flush(w);
}
