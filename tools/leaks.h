/* leaks.h (tools/) - a leak report as a model, read once (leaks.c) for
 * `report`, `diff`, `graph` and `run`'s summary lines, then rendered by each.
 * The strings point into the JSON tree the model owns (or into text, for a
 * text report's summary). */
#ifndef MS_LEAKS_H
#define MS_LEAKS_H

#include "memshim.h"

#define MAX_KINDS 16
#define MAX_HEURISTICS 16

/* The library's four kinds, in their order: the JSON names ("definitely_lost"),
 * the words of the text report ("definitely lost"). */
extern const char *const ms_kind_key[4];
extern const char *const ms_kind_words[4];

typedef struct {
    const char *ip, *function, *file, *module;   /* NULL when absent */
    long long   line;                            /* 0 when absent */
} frame_t;

/* A retention path ("why"): a root, the blocks from it, the record's block. */
typedef struct {
    const char *addr, *type;
    uint64_t    size;
    long long   offset, into;                    /* into: 0 when absent */
    frame_t     site;                            /* its allocation site; function/ip may be NULL */
} hop_t;

typedef struct {
    bool        present;
    bool        rooted;                          /* false: "root": null (too far to follow) */
    const char *kind, *addr, *symbol, *module, *function, *file;
    long long   offset, line, thread;            /* thread -1 when absent */
    hop_t      *hops;
    size_t      nhops;
    uint64_t    more;
    const char *block;
    uint64_t    block_size;
    long long   block_into;
} why_t;

typedef struct {
    const char *kind;
    uint64_t    blocks, bytes;
    size_t      nframes;
    frame_t    *frames;                          /* [0] is where it was allocated */
    size_t      order;                           /* position in the file */
    why_t       why;
    const char *change;                          /* MEMSHIM_LEAK_SINCE: "new", "increased"...; NULL */
} leak_t;

typedef struct {
    const char *kind;
    uint64_t    blocks, bytes;
} total_t;

/* The objects alive only through reference cycles ("cycles"), by group. */
typedef struct {
    const char *addr, *type;
    const char *function, *file;          /* its allocation site, NULL when unknown */
    long long   line, refcount;           /* refcount -1: a plain block */
    uint64_t    size;
    size_t      group;                    /* index into groups */
    size_t      color;                    /* graph.c's: index into its palette */
    bool        drawn;                    /* graph.c's */
} gobj_t;

typedef struct { size_t from, to; } gedge_t;    /* indices into objs */

typedef struct {
    long long number;                     /* the report's "group" */
    uint64_t  count;                      /* groups of this shape it stands for (1 when absent) */
    bool      lost;                       /* "kind": "lost_blocks": plain blocks, lost */
    size_t    first_obj, nobj, first_edge, nedge;
    uint64_t  bytes;
    size_t    shown;                      /* graph.c's: objects drawn, 0 (left out) to nobj */
} ggroup_t;

typedef struct {
    const char *path;
    json_t     *root;                            /* owns every string below */
    long long   pid;                             /* -1 when absent */
    const char *program, *when;                  /* when: "at exit", "snapshot"...; NULL */
    char        signal[16];                      /* an exit report's: the signal that ended the process, or "" */
    bool        stack_overflow;                  /* ... a SIGSEGV of its stack overflowing */
    long long   since;                           /* the report compared with (MEMSHIM_LEAK_SINCE), -1: none */
    long long   heap_errors;                     /* heap_errors_total, -1 when absent */
    total_t     totals[MAX_KINDS];
    size_t      ntotals;
    total_t     heur[MAX_HEURISTICS];            /* still reachable through each heuristic
                                                  * (summary.reachable_via_heuristic; kind:
                                                  * its name), those with blocks */
    size_t      nheur;
    bool        has_summary;
    leak_t     *leaks;
    size_t      nleaks;
    gobj_t     *objs;   size_t nobjs;
    gedge_t    *edges;  size_t nedges;
    ggroup_t   *groups; size_t ngroups;
    char       *text;                            /* a text report's when and program (owned) */
} report_t;

/* What to read and check: the records and summary (their header fields
 * checked too), the cycles; QUIET: say nothing when the file will not do. */
enum { MS_LOAD_LEAKS = 1, MS_LOAD_CYCLES = 2, MS_LOAD_QUIET = 4 };

/* Load path into r, or print one line naming the file and the field (unless
 * QUIET) and return false, r freed. */
bool ms_report_load(const char *path, unsigned what, report_t *r);
/* A text report's header, summary and heap-error lines; false if it has no
 * header. */
bool ms_report_load_text(const char *path, report_t *r);
void ms_report_free(report_t *r);
/* The total of a kind, or NULL when the report has none. */
const total_t *ms_report_total(const report_t *r, const char *kind);

#endif
