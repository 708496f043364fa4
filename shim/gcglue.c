/* gcglue.c - the collector's figures for MEMSHIM_STATS and the live region,
 * through the collector's public API (the shim sees nothing else of it). */
#include "shim.h"
#include "../include/memshim.h"

int _ms_gc_figures(ms_gc_figures_t *out)
{
    struct memshim_gc_stats st[3];
    memshim_gc_get_stats(st);
    out->collections = out->collected = out->uncollectable = 0;
    for (int g = 0; g < 3; g++) {
        out->collections += (uint64_t)st[g].collections;
        out->collected += (uint64_t)st[g].collected;
        out->uncollectable += (uint64_t)st[g].uncollectable;
    }
    out->tracked = memshim_gc_get_objects(-1, NULL, 0);
    out->time_ns = 0;                     /* the collector does not time itself */
    return 1;
}
