/* live.h - the layout of the live region: the figures a process running on
 * memshim publishes for `memshim stats PID` and `memshim top PID`.  Shared by
 * shim/live.c (the writer) and tools/ (the reader); plain C, no shim types.
 *
 * Where it lives: a memfd named "memshim-live.PID" (mode 0600, close-on-exec)
 * held open by the process; a reader of the same user opens it again through
 * /proc/PID/fd/N.  It disappears with the process, however that ends.
 *
 * Consistency: a seqlock.  The writer stores an odd `seq`, the body, then
 * the next even `seq`; a reader copies the whole region and accepts it when
 * `seq` was even and unchanged across the copy.  All numbers are in the
 * writer's byte order (the reader runs on the same machine). */
#ifndef MS_LIVE_H
#define MS_LIVE_H

#include <stdint.h>

#define MS_LIVE_MAGIC       0x31305645494c534dULL   /* "MSLIVE01" read little-endian */
#define MS_LIVE_VERSION     2
#define MS_LIVE_NAME        "memshim-live."         /* + pid */
#define MS_LIVE_MAX_CLASSES 96

typedef struct ms_live_class_s {
    uint64_t size, pools, in_use, free, allocs, frees;
} ms_live_class_t;

typedef struct ms_live_s {
    uint64_t magic;                 /* MS_LIVE_MAGIC */
    uint32_t version;               /* MS_LIVE_VERSION */
    uint32_t size;                  /* sizeof(ms_live_t) as the writer knew it */
    uint64_t seq;                   /* odd while being rewritten */
    int32_t  pid;
    uint32_t nclasses;
    uint64_t interval_ms;           /* how often the figures are refreshed */
    uint64_t updates;               /* refreshes so far */
    uint64_t start_unix_ms;         /* when publishing began (CLOCK_REALTIME) */
    uint64_t updated_unix_ms;       /* when these figures were taken */
    char     program[256];          /* command line, arguments joined by spaces */
    /* the process, from /proc/self/statm and status */
    uint64_t rss, peak_rss, vms;
    /* the heap: as in MEMSHIM_STATS (see memshim(7)); heap_peak counts blocks
     * out of the pools, thread caches included */
    uint64_t heap_in_use, heap_peak, heap_mapped;
    uint64_t small_in_use, small_pooled;
    uint64_t huge_blocks, huge_bytes, huge_cached;
    uint64_t segments, segment_bytes, os_mapped_total, os_returned_total;
    uint64_t threads;
    /* the collector, when it ran (gc_ran != 0) */
    uint64_t gc_ran, gc_collections, gc_tracked, gc_collected, gc_uncollectable, gc_time_ns;
    ms_live_class_t cls[MS_LIVE_MAX_CLASSES];
    /* version 2: the collector per generation (0, 1, 2: as gc_ran) */
    uint64_t gc_gen_collections[3], gc_gen_collected[3], gc_gen_uncollectable[3];
    /* the last leak report (memshim_leak_check, MEMSHIM_REPORT_SIGNAL): its
     * totals per kind (definite, indirect, possible, reachable; suppressed
     * records left out), when leak_checks != 0 */
    uint64_t leak_checks, leak_unix_ms;
    uint64_t leak_blocks[4], leak_bytes[4];
    /* from smaps_rollup, when have_smaps != 0: the live region leaves them
     * out (the kernel walks the page tables to count them); the exporter
     * reads them from /proc/PID/smaps_rollup, MEMSHIM_METRICS from its own */
    uint64_t have_smaps, uss, pss, swap;
} ms_live_t;

#endif
