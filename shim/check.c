/* check.c - invariants of the heap, in two tiers.
 *
 * ms_assert (shim.h) is always on: a cheap check of a "cannot happen" whose
 * failure would otherwise corrupt the program's memory; it says what failed
 * and where, and aborts.
 *
 * _ms_heap_check_locked is the debug tier (`make DEBUG=1`, MS_DEBUG): a
 * walk of every segment, span and class with every allocator lock held, run
 * at the safe points where memshim holds them all anyway (the leak scan,
 * fork's prepare, exit).  What it checks:
 *   - a segment's header is intact; its dirty pages are free pages; page 0
 *     (the header) is never free;
 *   - a free page has no class; a page in use belongs to a span that starts
 *     at or before it, covers it, and has its class;
 *   - a span has its class's length and capacity; used <= carved <=
 *     capacity; its free list holds exactly carved - used blocks, each the
 *     start of a carved block of the span, and ends;
 *   - each class's central counts (spans, free + uncarved blocks) are the
 *     sums over its spans;
 *   - the segments' dirty bytes are the sum of their dirty pages;
 *   - a huge block lies within its mapping, has a record, and is found by
 *     its address; the counts of huge blocks, of their bytes and of the
 *     cached mappings' bytes add up; no cached mapping overlaps a live
 *     block.
 * Thread caches are not walked: their owners change them without a lock. */
#include <stdlib.h>
#include <string.h>
#include "shim.h"

void _ms_assert_fail(const char *what, const char *file, int line)
{
    _ms_message("internal error: %s (%s:%d); aborting", what, file, line);
    _ms_abort();
}

static void fail(const char *what, const void *where, unsigned n)
{
    _ms_message("heap check failed: %s (at %p, %u)", what, where, n);
    _ms_abort();
}

typedef struct { uint64_t spans[MS_NCLASSES], free[MS_NCLASSES]; } sums_t;

static void check_span(void *arg, ms_page_t *pg)
{
    sums_t *sum = arg;
    unsigned c = pg->cls;
    if (c >= MS_NCLASSES) fail("span of no class", pg, c);
    const ms_class_t *k = &_ms_classes[c];
    if (pg->npages != k->npages || pg->capacity != k->capacity) fail("span not of its class's shape", pg, c);
    if (pg->used > pg->carved || pg->carved > pg->capacity) fail("span counts out of order", pg, pg->used);
    unsigned n = 0;
    for (ms_block_t *b = pg->free; b; b = b->next) {
        uint64_t off = (uint64_t)((uint8_t *)b - pg->start);
        if ((uint8_t *)b < pg->start || off % k->size || off / k->size >= pg->carved)
            fail("free list holds no block of its span", b, c);
        if (++n > pg->carved - pg->used) fail("free list longer than carved - used", pg, n);
    }
    if (n != pg->carved - pg->used) fail("free list shorter than carved - used", pg, n);
    sum->spans[c]++;
    sum->free[c] += pg->capacity - pg->used;
}

void _ms_heap_check_locked(void)
{
    static sums_t sum;                    /* all locks held: one checker at a time */
    memset(&sum, 0, sizeof sum);
    _ms_segment_check_locked(fail);
    _ms_huge_check_locked(fail);
    _ms_segment_each_span_locked(check_span, &sum);
    _ms_central_check_locked(sum.spans, sum.free, fail);
}
