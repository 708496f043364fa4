/* prom.h - the live figures (live.h) in the Prometheus text format, or
 * OpenMetrics: the one renderer of `memshim exporter` (tools/exporter.c)
 * and of MEMSHIM_METRICS (shim/metrics.c).  Freestanding: no allocation, no
 * stdio, no shim internals, so that both the preloaded library and the
 * command compile it.  The metric names are listed in memshim(7), METRICS. */
#ifndef MS_PROM_H
#define MS_PROM_H

#include <stddef.h>
#include <stdint.h>
#include "live.h"

/* Where the text goes: the caller's buffer, handed to flush whenever it is
 * full and at the end; flush empties it (len = 0) or makes it bigger. */
typedef struct ms_prom_s {
    char  *p;
    size_t len, cap;
    void (*flush)(struct ms_prom_s *w);
    void  *ctx;
    int    openmetrics;        /* OpenMetrics 1.0 rather than text 0.0.4 */
} ms_prom_t;

/* The exporter's own figures for one scrape. */
typedef struct ms_prom_scrape_s {
    uint64_t processes;        /* regions reported */
    uint64_t stale, invalid;   /* regions left out: not refreshed in time; malformed */
    uint64_t duration_ns;      /* the scrape's reading and rendering so far */
} ms_prom_scrape_t;

#define MS_PROM_CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define MS_PROM_CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* Every family with at least one sample, the samples of the n processes in
 * the order given; then the exporter's figures (scrape may be NULL); then
 * OpenMetrics' "# EOF".  Flushes at the end.  Safe on any bytes (the
 * reader, tools/live.c, checks the regions; this does not rely on it):
 * numbers are printed as they are, at most MS_LIVE_MAX_CLASSES classes, in
 * increasing sizes only (never one series twice), and the program's name is
 * cut to its base name, escaped and made valid UTF-8. */
void ms_prom_render(ms_prom_t *w, const ms_live_t *const *procs, size_t n,
                    const ms_prom_scrape_t *scrape);

#endif
