/* near.h - "did you mean": the known names nearest to one that is none of
 * them, for the library's MEMSHIM_* variables (options.c) and the memshim
 * command's options (tools/memshim.c).  Freestanding: no allocation, no
 * stdio, no shim internals, so that both the preloaded library and the
 * command compile it (as prom.c).
 *
 * A name is words joined by '_' or '-' (STACK_DEPTH, stack-depth), compared
 * without regard to case.  A known name is near when
 *   - it is a few edits away (a letter added, dropped, changed, or two
 *     swapped): one edit for a name of up to 5 letters, then one more for
 *     each 4 letters, at most 3 (REPROT: REPORT; X is no misspelling of GC);
 *   - or every word given is one of its words (RSS: RSS_LOG and
 *     RSS_INTERVAL; DEPTH: STACK_DEPTH and WHY_DEPTH; PROFILE_SIG:
 *     PROFILE_SIGNAL);
 *   - or, less near than all those, every one of its words is one of
 *     those given (GC_THRESHOLD: GC; REPORT_FILE: REPORT).
 * A word given is a known one when it is the same, abbreviates it (3
 * letters or more: SIG, SIGNAL), or goes on past 6 letters or more of it
 * (SUPPRESSIONS, SUPPRESS; not LEAKS, LEAK).
 * The nearest are kept, at most MS_NEAR_MAX; more than that at the same
 * distance says nothing useful, and none are kept. */
#ifndef MS_NEAR_H
#define MS_NEAR_H

#include <stdbool.h>
#include <stddef.h>

#define MS_NEAR_MAX 4

typedef struct {
    const char *given;                  /* the name that is none of ours */
    size_t      len;
    unsigned    rank;                   /* of the names below (lower: nearer) */
    unsigned    n;                      /* how many: 0 none, MS_NEAR_MAX + 1 too many */
    const void *what[MS_NEAR_MAX];      /* the callers' own handles of them */
} ms_near_t;

void ms_near_start(ms_near_t *m, const char *given, size_t len);
/* Weigh the known name known[0..len), which the caller calls `what`,
 * against the given one. */
void ms_near_offer(ms_near_t *m, const char *known, size_t len, const void *what);
/* How many names to suggest: m->what[0 .. that). */
unsigned ms_near_count(const ms_near_t *m);

#endif
