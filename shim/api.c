/* api.c - the exported memshim_* functions of include/memshim.h that belong
 * to the allocator side. */
#include <string.h>
#include "shim.h"
#include "../include/memshim.h"

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
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        struct memshim_class_stats *o = &out->classes[c];
        o->block_size = st.cls[c].size;
        o->pools = st.cls[c].spans;
        o->blocks_in_use = st.cls[c].in_use;
        o->blocks_free = st.cls[c].free;
        o->allocations = st.cls[c].allocs;
        o->frees = st.cls[c].frees;
    }
    return 0;
}
