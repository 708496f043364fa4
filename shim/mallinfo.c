/* mallinfo.c - glibc's questions about the heap, answered with memshim's own
 * figures: glibc's allocator holds nothing here, and would answer zeros.
 * override.c defines the names (mallinfo, mallinfo2, malloc_stats,
 * malloc_info, mallopt); memshim(7) says what each field means.
 *
 * The figures are collected first, each lock taken and dropped in turn
 * (stats.c); only then does malloc_info write to the program's FILE, which
 * may allocate (its buffer, an open_memstream's growth) through memshim's
 * malloc like any other call of the program's, with no lock of memshim's
 * held. */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include "shim.h"
#include "../include/memshim.h"

#define SAME_FIELD(ours, theirs, f) \
    _Static_assert(offsetof(ours, f) == offsetof(theirs, f) && sizeof(((ours *)0)->f) == sizeof(((theirs *)0)->f), \
                   #theirs "." #f " is glibc's")
#define SAME_STRUCT(ours, theirs) \
    _Static_assert(sizeof(ours) == sizeof(theirs), #theirs " is glibc's"); \
    SAME_FIELD(ours, theirs, arena); SAME_FIELD(ours, theirs, ordblks); SAME_FIELD(ours, theirs, smblks); \
    SAME_FIELD(ours, theirs, hblks); SAME_FIELD(ours, theirs, hblkhd); SAME_FIELD(ours, theirs, usmblks); \
    SAME_FIELD(ours, theirs, fsmblks); SAME_FIELD(ours, theirs, uordblks); SAME_FIELD(ours, theirs, fordblks); \
    SAME_FIELD(ours, theirs, keepcost)
SAME_STRUCT(ms_mallinfo2_t, struct mallinfo2);
SAME_STRUCT(ms_mallinfo_t, struct mallinfo);

/* glibc's limits, for mallopt's answers. */
#define MXFAST_MAX      (80 * sizeof(size_t) / 4)

void _ms_mallinfo2(ms_mallinfo2_t *mi)
{
    ms_stats_t st;
    _ms_stats_collect_heap(&st);
    uint64_t free_blocks = 0, cached_blocks = 0, cached_bytes = 0;
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        free_blocks += st.cls[c].free;
        cached_blocks += st.cls[c].cached;
        cached_bytes += st.cls[c].cached * st.cls[c].size;
    }
    mi->arena = st.seg.mapped;                          /* segments: memshim's "arena" */
    mi->ordblks = free_blocks;                          /* free blocks in the pools */
    mi->smblks = cached_blocks;                         /* of which in thread caches */
    mi->hblks = st.huge.blocks;                         /* blocks above 512 KiB, a mapping each */
    mi->hblkhd = st.huge.bytes;
    mi->usmblks = 0;                                    /* unused, as in glibc */
    mi->fsmblks = cached_bytes;
    mi->uordblks = st.small_in_use;                     /* held by the program, huge blocks apart */
    mi->fordblks = st.small_capacity - st.small_in_use; /* free in the pools */
    mi->keepcost = st.seg.dirty + st.huge.cached;       /* what malloc_trim() would give back */
}

/* glibc prints its table on stderr; memshim prints its own there, whole:
 * a thread with a cancel pending was cancelled in its first write, which
 * wrote nothing (glibc holds cancellation off there, its
 * tst-malloc-stats-cancellation; found by a helper). */
void _ms_malloc_stats(void)
{
    int saved = errno, state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    int fd = stderr ? fileno(stderr) : 2;
    if (stderr) fflush(stderr);
    _ms_stats_print_fd(fd >= 0 ? fd : 2);
    pthread_setcancelstate(state, NULL);
    errno = saved;
}

/* glibc's XML, with one heap (memshim's pools) and the huge blocks as its
 * "mmap" total.  glibc's <system type="max"> is left out: memshim keeps no
 * high-water mark of what it maps. */
int _ms_malloc_info(int options, FILE *fp)
{
    if (options != 0) return EINVAL;        /* glibc's answer: EINVAL returned, errno as it was */
    if (!fp) { errno = EINVAL; return -1; } /* glibc's would crash */
    ms_stats_t st;
    _ms_stats_collect_heap(&st);
    uint64_t fast_n = 0, fast_b = 0, rest_n = 0, rest_b = 0;
    fprintf(fp, "<malloc version=\"1\" allocator=\"memshim\" memshim=\"%s\">\n<heap nr=\"0\">\n<sizes>\n",
            MEMSHIM_VERSION);
    uint64_t from = 1;
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        const ms_stats_class_t *o = &st.cls[c];
        if (o->spans)
            fprintf(fp, "  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"/>\n",
                    (unsigned long long)from, (unsigned long long)o->size,
                    (unsigned long long)(o->free * o->size), (unsigned long long)o->free);
        fast_n += o->cached;
        fast_b += o->cached * o->size;
        rest_n += o->free - o->cached;
        rest_b += (o->free - o->cached) * o->size;
        from = o->size + 1;
    }
    unsigned long long seg = st.seg.mapped, all = st.heap_mapped;
    fprintf(fp, "</sizes>\n<total type=\"fast\" count=\"%llu\" size=\"%llu\"/>\n"
                "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
                "<system type=\"current\" size=\"%llu\"/>\n"
                "<aspace type=\"total\" size=\"%llu\"/>\n<aspace type=\"mprotect\" size=\"%llu\"/>\n</heap>\n",
            (unsigned long long)fast_n, (unsigned long long)fast_b,
            (unsigned long long)rest_n, (unsigned long long)rest_b, seg, seg, seg);
    fprintf(fp, "<total type=\"fast\" count=\"%llu\" size=\"%llu\"/>\n"
                "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
                "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
                "<system type=\"current\" size=\"%llu\"/>\n"
                "<aspace type=\"total\" size=\"%llu\"/>\n<aspace type=\"mprotect\" size=\"%llu\"/>\n</malloc>\n",
            (unsigned long long)fast_n, (unsigned long long)fast_b,
            (unsigned long long)rest_n, (unsigned long long)rest_b,
            (unsigned long long)st.huge.blocks, (unsigned long long)st.huge.bytes, all, all, all);
    return 0;
}

/* glibc's parameters are accepted (1) and have no effect: memshim's pools
 * are not tuned that way.  Values glibc refuses are refused (0), and so is
 * a parameter glibc does not know (glibc says 1 to those). */
int _ms_mallopt(int param, int value)
{
    switch (param) {
    case M_MXFAST:
        return value >= 0 && (size_t)value <= MXFAST_MAX;
    case M_MMAP_THRESHOLD:            /* any value since glibc 2.35 (1 << 30 and -1 too, on 2.36) */
        return 1;
    case M_NLBLKS: case M_GRAIN: case M_KEEP:
    case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_MAX: case M_CHECK_ACTION:
    case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
        return 1;
    default:
        return 0;
    }
}
