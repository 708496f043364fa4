/* api.c - the exported memshim_* functions of include/memshim.h that belong
 * to the allocator side. */
#include <string.h>
#include "shim.h"
#include "../include/memshim.h"

_Static_assert(MS_NCLASSES <= sizeof ((struct memshim_heap_stats *)0)->classes
                             / sizeof (struct memshim_class_stats), "memshim.h: classes[] too small");

MS_EXPORT const char *memshim_version(void) { return MEMSHIM_VERSION; }

MS_EXPORT void memshim_stats_print(int fd) { _ms_stats_print_fd(fd); }

MS_EXPORT int memshim_heap_stats(struct memshim_heap_stats *out)
{
    if (!out || !_ms_inited) return -1;    /* our malloc never ran: not the allocator */
    ms_stats_t st;
    _ms_stats_collect(&st);
    memset(out, 0, sizeof *out);
    out->small_bytes_in_use = st.small_in_use;
    out->small_bytes_pooled = st.small_capacity;
    out->huge_blocks = st.huge.blocks;
    out->huge_bytes = st.huge.bytes;
    out->mapped_bytes = st.heap_mapped;
    out->returned_bytes = st.seg.unmapped_total;
    out->rss = st.rss;
    out->peak_rss = st.peak_rss;
    out->threads = st.threads;
    out->nclasses = MS_NCLASSES;
#define CLASS(m, live, f, ...) out->classes[c].f = st.cls[c].m;
#define DERIVED(...)
    for (unsigned c = 0; c < MS_NCLASSES; c++) { MS_CLASS_FIGURES(CLASS, DERIVED) }
    return 0;
}
