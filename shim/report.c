/* report.c - the leak report: live blocks grouped by kind and allocation
 * stack, largest first, each with a symbolized stack, then a summary of the
 * four kinds.  Text in the shape valgrind users know, or JSON (the schema
 * is in memshim(7)).  Written to standard error (memshim's own copy of it,
 * so a program that closed fd 2 still gets its report) or to MEMSHIM_REPORT,
 * by out.c's rules for output files. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "shim.h"
#include "table.h"
#include "../collector/collector.h"
#include "../include/memshim.h"

static const char *kind_name[MS_NKINDS] = {
    "definitely_lost", "indirectly_lost", "possibly_lost", "still_reachable" };
static const char *kind_text[MS_NKINDS] = {
    "definitely lost", "indirectly lost", "possibly lost", "still reachable" };

typedef struct {
    uint32_t stack;
    uint8_t  kind;
    uint8_t  suppressed;
    const char *gctype;    /* collector objects: their type's name */
    double   blocks, bytes, indirect;
    size_t   why;          /* 1 + the item whose retention path is shown, or 0 */
    unsigned why_depth;    /* its distance from a root, in blocks */
    uint8_t  change;       /* MEMSHIM_LEAK_SINCE: CHANGE_* against the last report */
    double   d_blocks, d_bytes;   /* ... and by how much */
} group_t;

enum { CHANGE_NONE, CHANGE_NEW, CHANGE_INCREASED, CHANGE_DECREASED, CHANGE_SAME };
/* The leak heuristics' names (scan.c), by MS_HEUR_*: memcheck's, then memshim's own. */
static const char *const heur_name[MS_HEUR_KINDS] = { "", "stdstring", "length64", "newarray", "multipleinheritance",
                                                       "gobject" };

static const char *change_name[] = { "", "new", "increased", "decreased", "same" };
static const char *change_word[] = { "", "new ", "increased ", "decreased ", "" };   /* "in new loss record" */

typedef struct {
    group_t *g;
    size_t   n, cap;
    double   total_blocks[MS_NKINDS], total_bytes[MS_NKINDS];
    double   supp_blocks, supp_bytes;
    double   inherited_blocks, inherited_bytes;   /* forked child: the parent's */
    double   heur_blocks[MS_HEUR_KINDS], heur_bytes[MS_HEUR_KINDS];   /* still reachable through a heuristic */
    size_t   raw_items;
    const ms_leak_item_t *items;   /* the scan's, for retention paths */
    unsigned seq;                  /* this report's number in the process (%n) */
    bool     since;                /* MEMSHIM_LEAK_SINCE: changes against report since_seq */
    unsigned since_seq;            /* 0: none before (everything is new) */
    double   d_blocks[MS_NKINDS], d_bytes[MS_NKINDS];
    unsigned changes[5];           /* records per CHANGE_*; [CHANGE_NONE]: gone ones */
} groups_t;

static void count_text(ms_buf_t *b, double v, bool since, double d, const char *one, const char *many);

/* Under "still reachable", as memcheck writes it: the blocks only a
 * heuristic's interior pointer keeps, by heuristic (nothing if none). */
static void heuristics_text(ms_buf_t *b, int pid, const groups_t *gs)
{
    bool any = false;
    for (unsigned h = 1; h < MS_HEUR_KINDS; h++) {
        if (gs->heur_blocks[h] <= 0) continue;
        if (!any) _ms_bprintf(b, "==%d==                       of which reachable via heuristic:\n", pid);
        any = true;
        _ms_bprintf(b, "==%d==                         %-19s: ", pid, heur_name[h]);
        count_text(b, gs->heur_bytes[h], false, 0, "byte", "bytes");
        _ms_bprintf(b, " in ");
        count_text(b, gs->heur_blocks[h], false, 0, "block", "blocks");
        _ms_bprintf(b, "\n");
    }
}

/* ---- what is alive only through cycles ----------------------------------------- *
 * Collector objects only reference cycles keep (the collector finds them),
 * and lost cycles of plain blocks (cliques of lost blocks, as the scan
 * made them, whose pointers among themselves go round).  Each object with
 * its allocation stack and, for collector objects, its reference count;
 * groups of the same shape (the same types, sizes, sites and number of
 * references) are shown once, with how many there are. */

typedef struct { const void *obj; const char *type; size_t size, group; uint32_t stack, refcnt; bool block; } cyc_obj;
#define MS_SORT_NAME cyc_sort
#define MS_SORT_TYPE cyc_obj
#define MS_SORT_BEFORE(x, y) ((uintptr_t)(x)->obj < (uintptr_t)(y)->obj)
#include "sort.h"
typedef struct { const void *from, *to; size_t group; } cyc_edge;
typedef struct { uint64_t sig; size_t count, same_as, nobj, bytes; bool lost; } cyc_group;
typedef struct {
    cyc_obj   *obj;  size_t nobj, capobj;
    cyc_edge  *edge; size_t nedge, capedge;
    cyc_group *grp;  size_t ngroups, capgrp;
    size_t     shown;                  /* groups left after merging */
    bool       oom;
} cycles_t;

/* Room for one more in a full array (meta.c's doubling). */
static bool grow_array(void **arr, size_t *cap, size_t elem)
{
    void *n = _ms_meta_grow(*arr, cap, *cap, *cap + 1, elem);
    if (!n) return false;
    *arr = n;
    return true;
}

static void cyc_object(void *arg, const void *obj, const char *type, size_t size, size_t group)
{
    cycles_t *c = arg;
    if (c->nobj == c->capobj && !grow_array((void **)&c->obj, &c->capobj, sizeof *c->obj)) { c->oom = true; return; }
    size_t rc = memshim_refcount(obj);
    c->obj[c->nobj++] = (cyc_obj){ obj, type ? type : "?", size, group, 0, rc > UINT32_MAX ? UINT32_MAX : (uint32_t)rc, false };
    if (group + 1 > c->ngroups) c->ngroups = group + 1;
}

static void cyc_edge_cb(void *arg, const void *from, const void *to)
{
    cycles_t *c = arg;
    if (c->nedge == c->capedge && !grow_array((void **)&c->edge, &c->capedge, sizeof *c->edge)) { c->oom = true; return; }
    c->edge[c->nedge++] = (cyc_edge){ from, to, SIZE_MAX };
}

/* The item whose block holds p (items are in address order), or SIZE_MAX. */
static size_t item_at(const ms_leak_item_t *items, size_t n, uintptr_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (items[mid].addr <= p) lo = mid + 1; else hi = mid;
    }
    if (!lo) return SIZE_MAX;
    const ms_leak_item_t *it = &items[lo - 1];
    return p - it->addr < (it->size ? it->size : 1) ? lo - 1 : SIZE_MAX;
}

/* Lost cycles of plain blocks: each clique of lost blocks (a definitely
 * lost leader and the blocks only it reaches) whose pointers among
 * themselves contain a cycle, as found by peeling off the blocks no other
 * member points to (Kahn's order: what is left is on or behind a cycle).
 * Bounded: cliques of at most CLIQUE_MAX blocks, CLIQUE_WORDS words read
 * in all.  Blocks are read where they are readable: the program may have
 * unmapped part of a huge block. */
#define CLIQUE_MAX   64
#define CLIQUE_WORDS (1u << 20)

/* Each lost block's clique leader (followed to the definitely lost one),
 * the blocks of each clique listed together: first[l]..first[l+1] in
 * member[] (a counting sort, in memshim's memory). */
static bool clique_lists(const ms_leak_item_t *items, size_t n, uint32_t **first, uint32_t **member)
{
    uint32_t *lead = _ms_meta_alloc(n * sizeof *lead);
    *first = _ms_meta_alloc((n + 1) * sizeof **first);
    *member = _ms_meta_alloc(n * sizeof **member);
    if (!lead || !*first || !*member) {
        if (lead) _ms_meta_free(lead, n * sizeof *lead);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t ld = items[i].kind == MS_KIND_DEFINITE ? (uint32_t)i
                    : items[i].kind == MS_KIND_INDIRECT ? items[i].leader : UINT32_MAX;
        for (unsigned hop = 0; ld < n && items[ld].kind == MS_KIND_INDIRECT && hop < 64; hop++) ld = items[ld].leader;
        lead[i] = ld < n && items[ld].kind == MS_KIND_DEFINITE && !items[i].gctype ? ld : UINT32_MAX;
        if (lead[i] != UINT32_MAX) (*first)[ld + 1]++;
    }
    for (size_t l = 0; l < n; l++) (*first)[l + 1] += (*first)[l];
    uint32_t *fill = _ms_meta_alloc(n * sizeof *fill);
    if (!fill) { _ms_meta_free(lead, n * sizeof *lead); return false; }
    for (size_t i = 0; i < n; i++)
        if (lead[i] != UINT32_MAX) (*member)[(*first)[lead[i]] + fill[lead[i]]++] = (uint32_t)i;
    _ms_meta_free(fill, n * sizeof *fill);
    _ms_meta_free(lead, n * sizeof *lead);
    return true;
}

/* Whether item it leads a clique looked at for cycles: a definite leak of a
 * plain block (not the parent's, in a forked child) that others hang from. */
static bool clique_leads(const ms_leak_item_t *it)
{
    return it->kind == MS_KIND_DEFINITE && it->indirect && !it->gctype && !it->inherited;
}

static void clique_cycles(cycles_t *c, const ms_leak_item_t *items, size_t n)
{
    size_t budget = CLIQUE_WORDS;
    uint32_t mem[CLIQUE_MAX], indeg[CLIQUE_MAX], *first = NULL, *member = NULL;
    /* The lists (8 bytes an item, every item) only when some clique may
     * hold a cycle: a program that ends with its heap reachable has none. */
    size_t l0 = 0;
    while (l0 < n && !clique_leads(&items[l0])) l0++;
    if (l0 == n || !clique_lists(items, n, &first, &member)) goto out;
    for (size_t l = l0; l < n && budget; l++) {
        if (!clique_leads(&items[l])) continue;
        unsigned m = first[l + 1] - first[l];
        if (m < 2 || m > CLIQUE_MAX) continue;
        memcpy(mem, member + first[l], m * sizeof *mem);
        size_t e0 = c->nedge;
        memset(indeg, 0, sizeof indeg);
        for (unsigned a = 0; a < m; a++) {                 /* the pointers among them */
            const ms_leak_item_t *it = &items[mem[a]];
            size_t words = it->size / sizeof(uintptr_t);
            if (words > budget || !_ms_os_readable((const void *)it->addr, words * sizeof(uintptr_t))) continue;
            budget -= words;
            for (size_t w = 0; w < words; w++) {
                uintptr_t v = ((const uintptr_t *)it->addr)[w];
                for (unsigned b = 0; b < m; b++) {
                    const ms_leak_item_t *to = &items[mem[b]];
                    if (b == a || v - to->addr >= (to->size ? to->size : 1)) continue;
                    if (c->nedge == c->capedge && !grow_array((void **)&c->edge, &c->capedge, sizeof *c->edge)) {
                        c->oom = true;
                        goto out;
                    }
                    c->edge[c->nedge++] = (cyc_edge){ (const void *)it->addr, (const void *)to->addr, c->ngroups };
                    indeg[b]++;
                    break;
                }
            }
        }
        bool gone[CLIQUE_MAX] = { false };                  /* peel: no cycle if all go */
        for (bool again = true; again;) {
            again = false;
            for (unsigned b = 0; b < m; b++) {
                if (gone[b] || indeg[b]) continue;
                gone[b] = again = true;
                for (size_t e = e0; e < c->nedge; e++)
                    if (c->edge[e].from == (const void *)items[mem[b]].addr)
                        for (unsigned k = 0; k < m; k++)
                            if (c->edge[e].to == (const void *)items[mem[k]].addr) indeg[k]--;
            }
        }
        bool cycle = false;
        for (unsigned b = 0; b < m; b++) cycle |= !gone[b];
        if (!cycle) { c->nedge = e0; continue; }
        for (unsigned a = 0; a < m; a++) {
            if (c->nobj == c->capobj && !grow_array((void **)&c->obj, &c->capobj, sizeof *c->obj)) { c->oom = true; goto out; }
            const ms_leak_item_t *it = &items[mem[a]];
            c->obj[c->nobj++] = (cyc_obj){ (const void *)it->addr, "block", it->size, c->ngroups, it->stack, 0, true };
        }
        c->ngroups++;
    }
out:
    if (first) _ms_meta_free(first, (n + 1) * sizeof *first);
    if (member) _ms_meta_free(member, n * sizeof *member);
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ULL; }

/* Groups of the same shape: the same multiset of (type, size, allocation
 * site, refcount) and the same number of references.  A sum of per-object
 * hashes does not depend on the order the objects came in. */
static void cycles_merge(cycles_t *c)
{
    for (size_t g = 0; g < c->ngroups; g++) c->grp[g] = (cyc_group){ .sig = 0, .count = 1, .same_as = g };
    for (size_t i = 0; i < c->nobj; i++) {
        const cyc_obj *o = &c->obj[i];
        cyc_group *G = &c->grp[o->group];
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *t = o->type; *t; t++) h = mix(h, (unsigned char)*t);
        h = mix(mix(mix(h, o->size), _ms_stack_site(o->stack)), o->refcnt);   /* its site */
        G->sig += h * 0x9E3779B97F4A7C15ULL;
        G->nobj++;
        G->bytes += o->size;
        G->lost = o->block;
    }
    for (size_t e = 0; e < c->nedge; e++) c->grp[c->edge[e].group].sig += 0x2545F4914F6CDD1DULL;
    c->shown = 0;
    for (size_t g = 0; g < c->ngroups; g++) {
        cyc_group *G = &c->grp[g];
        for (size_t k = 0; k < g; k++)
            if (c->grp[k].same_as == k && c->grp[k].sig == G->sig && c->grp[k].nobj == G->nobj &&
                c->grp[k].lost == G->lost) { G->same_as = k; c->grp[k].count++; break; }
        if (G->same_as == g) c->shown++;
    }
}

/* The object at p (the objects sorted by address). */
static const cyc_obj *obj_of(const cycles_t *c, const void *p)
{
    size_t lo = 0, hi = c->nobj;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->obj[mid].obj < p) lo = mid + 1; else hi = mid;
    }
    return lo < c->nobj && c->obj[lo].obj == p ? &c->obj[lo] : NULL;
}

static void cycles_find(cycles_t *c, const ms_leak_item_t *items, size_t n)
{
    memset(c, 0, sizeof *c);
    gc_cycle_sink sink = { cyc_object, cyc_edge_cb, c };
    if (gc_cycles_find(&sink) < 0) c->nobj = c->nedge = c->ngroups = 0;
    for (size_t i = 0; i < c->nobj; i++) {          /* the collector's objects: their stacks */
        size_t k = item_at(items, n, (uintptr_t)c->obj[i].obj);
        if (k != SIZE_MAX) c->obj[i].stack = items[k].stack;
    }
    clique_cycles(c, items, n);
    if (c->oom || (c->ngroups && !(c->grp = _ms_meta_alloc(c->ngroups * sizeof *c->grp)))) {
        c->nobj = c->nedge = c->ngroups = 0;
        return;
    }
    c->capgrp = c->ngroups;
    cyc_sort(c->obj, c->nobj);                       /* by address */
    for (size_t e = 0; e < c->nedge; e++)
        if (c->edge[e].group == SIZE_MAX) {
            const cyc_obj *o = obj_of(c, c->edge[e].from);
            c->edge[e].group = o ? o->group : 0;
        }
    cycles_merge(c);
}

static void cycles_free(cycles_t *c)
{
    if (c->obj) _ms_meta_free(c->obj, c->capobj * sizeof *c->obj);
    if (c->edge) _ms_meta_free(c->edge, c->capedge * sizeof *c->edge);
    if (c->grp) _ms_meta_free(c->grp, c->capgrp * sizeof *c->grp);
}

/* ---- grouping ---------------------------------------------------------------- */

/* A loss record's identity, and the slot that finds a record by it: this
 * report's groups (`at` indexes gs->g) and the last report's records
 * (MEMSHIM_LEAK_SINCE: `at` indexes prev.r) are tables of these (table.h). */
typedef struct { uint32_t stack; uint8_t kind; const char *gctype; } rec_id;
typedef struct { uint64_t key; rec_id id; size_t at; } rec_slot;     /* key: rec_key(id) */
static const ms_table_kind_t rec_kind = MS_TABLE_KIND(rec_slot, key, 64, _ms_meta_alloc, _ms_meta_free);

static uint64_t rec_key(const rec_id *r)
{
    uint64_t h = ((uint64_t)r->stack << 8 | r->kind) ^ (uint64_t)(uintptr_t)r->gctype * 0x9E3779B97F4A7C15ULL;
    return h ? h : 1;
}

static bool same_rec(const void *slot, const void *arg)
{
    const rec_id *a = &((const rec_slot *)slot)->id, *b = arg;
    return a->stack == b->stack && a->kind == b->kind && a->gctype == b->gctype;
}

static rec_slot *rec_find(const ms_table_t *t, const rec_id *r)
{
    return ms_table_find(t, &rec_kind, rec_key(r), same_rec, r);
}

/* Record r's index `at` into t, made for as many records as it gets. */
static void rec_add(ms_table_t *t, const rec_id *r, size_t at)
{
    ms_table_add(t, &rec_kind, &(rec_slot){ rec_key(r), *r, at });
}

/* The group of the item's record, new at the end of gs->g if none yet:
 * the groups and their table grow with the records (a heap of a million
 * blocks from a few hundred stacks needs a few hundred), NULL when memory
 * runs out. */
static group_t *group_of(groups_t *gs, ms_table_t **t, const ms_leak_item_t *it)
{
    rec_id r = { it->stack, it->kind, it->gctype };
    rec_slot *s = rec_find(*t, &r);
    if (s) return &gs->g[s->at];
    if (gs->n == gs->cap) {
        group_t *g = _ms_meta_alloc(2 * gs->cap * sizeof *g);
        if (!g) return NULL;
        memcpy(g, gs->g, gs->n * sizeof *g);
        _ms_meta_free(gs->g, gs->cap * sizeof *g);
        gs->g = g;
        gs->cap *= 2;
    }
    if (!ms_table_room(t, &rec_kind)) return NULL;
    rec_add(*t, &r, gs->n);
    gs->g[gs->n] = (group_t){ .stack = r.stack, .kind = r.kind, .gctype = r.gctype };
    return &gs->g[gs->n++];
}

/* A collector type's name, if it can still be read (it is the program's). */
static const char *type_name(const char *name)
{
    return name && _ms_os_readable(name, 1) && _ms_os_readable(name, strnlen(name, 64)) ? name : "?";
}

/* In sampling mode a sampled block of s bytes stands for 1/p blocks, where
 * p is its chance of being sampled (sample.c). */
static double weight(const ms_leak_item_t *it)
{
    if (!_ms_opt.sample) return 1;
    if (!it->sampled) return 0;
    double p = _ms_sample_chance(it->size);
    return p > 0 ? 1 / p : 1;
}

/* ---- retention paths ------------------------------------------------------------ */

#define WHY_WALK_MAX 4096        /* blocks followed back from a block towards its root */

/* Blocks between item i and its root (0: a root points to it), each
 * item's found once: depth[k] is 1 + its distance, 0 while unknown; stk
 * has room for every item. */
static uint32_t why_distance(const ms_leak_item_t *items, size_t n, uint32_t *depth, uint32_t *stk, size_t i)
{
    size_t k = 0, cur = i;
    while (!depth[cur]) {
        if (items[cur].parent == MS_WHY_ROOT || k == n) { depth[cur] = 1; break; }
        stk[k++] = (uint32_t)cur;
        cur = items[cur].parent;
    }
    uint32_t d = depth[cur];
    while (k) {
        if (d < UINT32_MAX) d++;
        depth[stk[--k]] = d;
    }
    return depth[i] - 1;
}

/* The chain of item i: the blocks holding the pointers, root side first,
 * in path[0..*n), and the item whose `from` is the root's word.  false if
 * the root is more than WHY_WALK_MAX blocks away (or i was not reached). */
static bool why_walk(const ms_leak_item_t *items, size_t i, uint32_t *path, unsigned *n, size_t *top)
{
    unsigned k = 0;
    size_t cur = i;
    while (items[cur].parent != MS_WHY_ROOT) {
        if (k == WHY_WALK_MAX) return false;
        cur = items[cur].parent;
        path[k++] = (uint32_t)cur;
    }
    for (unsigned a = 0, b = k; a + 1 < b; a++, b--) { uint32_t t = path[a]; path[a] = path[b - 1]; path[b - 1] = t; }
    *n = k;
    *top = cur;
    return items[cur].from != 0;
}


/* A frame's place, the one way each format writes it (reports, and the
 * heap misuse messages of leak.c): text "function (file:line)" or
 * "function (in module+0xoffset)", names through _ms_text_str; JSON members
 * "function", "file" and "line", "module", each where known. */
void _ms_frame_text(ms_buf_t *b, const ms_frame_t *f)
{
    _ms_text_str(b, f->function ? f->function : "???");
    if (f->file) {
        _ms_bprintf(b, " (");
        _ms_text_str(b, _ms_base_name(f->file));
        _ms_bprintf(b, ":%d)", f->line);
    } else if (f->module) {
        _ms_bprintf(b, " (in ");
        _ms_text_str(b, f->module);
        _ms_bprintf(b, "+0x%lx)", (unsigned long)f->offset);
    }
}

static void frame_json(ms_buf_t *b, const ms_frame_t *f)
{
    if (f->function) { _ms_bprintf(b, ", \"function\": "); _ms_json_str(b, f->function); }
    if (f->file) { _ms_bprintf(b, ", \"file\": "); _ms_json_str(b, f->file); _ms_bprintf(b, ", \"line\": %d", f->line); }
    if (f->module) { _ms_bprintf(b, ", \"module\": "); _ms_json_str(b, f->module); }
}


/* A stored stack as a JSON array of frames, innermost first, up to main or
 * start_thread as in text (leak reports and heap profiles). */
void _ms_stack_json(ms_buf_t *b, uint32_t stack)
{
    ms_frame_t f[MS_MAX_STACK];
    unsigned n = _ms_stack_frames(stack, f);
    _ms_bprintf(b, "[");
    for (unsigned j = 0; j < n; j++) {
        _ms_bprintf(b, "%s{\"ip\": \"%p\"", j ? ", " : "", (void *)f[j].ip);
        frame_json(b, &f[j]);
        _ms_bprintf(b, "}");
    }
    _ms_bprintf(b, "]");
}

/* The first frame of a block's allocation stack. */
static void site_text(ms_buf_t *b, uint32_t stack)
{
    uintptr_t site = _ms_stack_site(stack);
    if (!site) { _ms_bprintf(b, "no stack recorded"); return; }
    ms_frame_t f;
    _ms_symbolize(site, &f, true);
    _ms_frame_text(b, &f);
}

static void site_json(ms_buf_t *b, uint32_t stack)
{
    uintptr_t site = _ms_stack_site(stack);
    if (!site) return;
    ms_frame_t f;
    _ms_symbolize(site, &f, true);
    frame_json(b, &f);
}

/* ---- cycles: output ---------------------------------------------------------------- */

static void cyc_obj_text(ms_buf_t *b, const cyc_obj *o)
{
    _ms_text_str(b, o->type);
    _ms_bprintf(b, "@%p (%zu byte%s", o->obj, o->size, o->size == 1 ? "" : "s");
    if (!o->block) _ms_bprintf(b, ", refcount %u", o->refcnt);
    _ms_bprintf(b, ", allocated at ");
    site_text(b, o->stack);
    _ms_bprintf(b, ")");
}

static void cycles_text(ms_buf_t *b, int pid, const cycles_t *c)
{
    if (!c->nobj) return;
    size_t gc_objs = 0, gc_groups = 0, lost_groups = 0;
    for (size_t i = 0; i < c->nobj; i++) gc_objs += !c->obj[i].block;
    for (size_t g = 0; g < c->ngroups; g++) { gc_groups += !c->grp[g].lost; lost_groups += c->grp[g].lost; }
    _ms_bprintf(b, "==%d==\n==%d== ", pid, pid);
    if (gc_objs)
        _ms_bprintf(b, "%zu collector object%s in %zu group%s %s alive only through reference cycles%s", gc_objs,
                    gc_objs == 1 ? "" : "s", gc_groups, gc_groups == 1 ? "" : "s", gc_objs == 1 ? "is" : "are",
                    lost_groups ? "; " : ":\n");
    if (lost_groups)
        _ms_bprintf(b, "%zu lost cycle%s of plain blocks (among the lost records):\n", lost_groups,
                    lost_groups == 1 ? "" : "s");
    for (size_t g = 0, shown = 0; g < c->ngroups; g++) {
        const cyc_group *G = &c->grp[g];
        if (G->same_as != g) continue;
        _ms_bprintf(b, "==%d==    %s %zu: %zu %s%s, %zu bytes", pid, G->lost ? "lost cycle" : "cycle group", ++shown,
                    G->nobj, G->lost ? "block" : "object", G->nobj == 1 ? "" : "s", G->bytes);
        if (G->count > 1) _ms_bprintf(b, ", and %zu more group%s of the same shape", G->count - 1, G->count == 2 ? "" : "s");
        _ms_bprintf(b, "\n");
        unsigned lines = 0;
        for (size_t e = 0; e < c->nedge && lines < 20; e++) {
            if (c->edge[e].group != g) continue;
            const cyc_obj *f = obj_of(c, c->edge[e].from), *t = obj_of(c, c->edge[e].to);
            if (!f || !t) continue;
            _ms_bprintf(b, "==%d==       ", pid);
            cyc_obj_text(b, f);
            _ms_bprintf(b, " -> ");
            cyc_obj_text(b, t);
            _ms_bprintf(b, "\n");
            lines++;
        }
        if (lines == 20) _ms_bprintf(b, "==%d==       ...\n", pid);
    }
}

static void cycles_json(ms_buf_t *b, const cycles_t *c)
{
    _ms_bprintf(b, ",\n \"cycles\": [");
    bool firstg = true;
    for (size_t g = 0, shown = 0; g < c->ngroups; g++) {
        const cyc_group *G = &c->grp[g];
        if (G->same_as != g) continue;
        _ms_bprintf(b, "%s\n  {\"group\": %zu, \"kind\": \"%s\", \"count\": %zu, \"objects\": [", firstg ? "" : ",",
                    ++shown, G->lost ? "lost_blocks" : "collector", G->count);
        firstg = false;
        bool first = true;
        for (size_t i = 0; i < c->nobj; i++) {
            const cyc_obj *o = &c->obj[i];
            if (o->group != g) continue;
            _ms_bprintf(b, "%s{\"addr\": \"%p\", \"type\": ", first ? "" : ", ", o->obj);
            _ms_json_str(b, o->type);
            _ms_bprintf(b, ", \"size\": %zu", o->size);
            if (!o->block) _ms_bprintf(b, ", \"refcount\": %u", o->refcnt);
            site_json(b, o->stack);
            _ms_bprintf(b, "}");
            first = false;
        }
        _ms_bprintf(b, "], \"edges\": [");
        first = true;
        for (size_t e = 0; e < c->nedge; e++) {
            if (c->edge[e].group != g) continue;
            _ms_bprintf(b, "%s{\"from\": \"%p\", \"to\": \"%p\"}", first ? "" : ", ",
                        c->edge[e].from, c->edge[e].to);
            first = false;
        }
        _ms_bprintf(b, "]}");
    }
    _ms_bprintf(b, "]");
}

/* What the root holding items[top].from is. */
typedef struct {
    const char *kind;            /* JSON "kind" */
    const char *symbol, *module, *function, *file;
    uintptr_t   offset;
    int         line, tid;
} root_t;

static void root_name(const ms_leak_item_t *it, root_t *r)
{
    memset(r, 0, sizeof *r);
    r->tid = (int)it->root_tid;
    switch (it->root) {
    case MS_ROOT_MAPPING:
        _ms_symbolize_data(it->from, &r->symbol, &r->offset, &r->module);
        r->kind = r->module ? "global" : "memory";
        break;
    case MS_ROOT_STACK: {
        r->kind = "stack";
        if (it->root_pc) {
            ms_frame_t f;
            _ms_symbolize(it->root_pc, &f, true);
            r->function = f.function;
            r->file = f.file;
            r->line = f.line;
            r->module = f.module;
        }
        break;
    }
    case MS_ROOT_REGS: r->kind = "registers"; break;
    case MS_ROOT_TLS:
        r->kind = "tls";
        _ms_symbolize_tls(it->root_module, it->root_pc, &r->symbol, &r->offset, &r->module);
        break;
    case MS_ROOT_GC: r->kind = "collector_root"; break;
    case MS_ROOT_GARBAGE: r->kind = "garbage"; break;
    default: r->kind = "memshim"; break;
    }
}

static void root_text(ms_buf_t *b, const ms_leak_item_t *it, const root_t *r)
{
    switch (it->root) {
    case MS_ROOT_MAPPING:
        if (r->symbol) {
            _ms_bprintf(b, "global ");
            _ms_text_str(b, r->symbol);
            if (r->offset) _ms_bprintf(b, "+%lu", (unsigned long)r->offset);
            _ms_bprintf(b, " in ");
            _ms_text_str(b, r->module);
        } else if (r->module) {
            _ms_bprintf(b, "data of ");
            _ms_text_str(b, r->module);
            _ms_bprintf(b, " at %p", (void *)it->from);
        } else _ms_bprintf(b, "anonymous memory at %p", (void *)it->from);
        break;
    case MS_ROOT_STACK:
        _ms_bprintf(b, "thread %d's stack", r->tid);
        if (r->function) {
            _ms_bprintf(b, " in ");
            _ms_text_str(b, r->function);
            if (r->file) {
                _ms_bprintf(b, " (");
                _ms_text_str(b, _ms_base_name(r->file));
                _ms_bprintf(b, ":%d)", r->line);
            }
        }
        break;
    case MS_ROOT_REGS: _ms_bprintf(b, "thread %d's registers", r->tid); break;
    case MS_ROOT_TLS:
        _ms_bprintf(b, "thread %d's thread-local ", r->tid);
        if (r->symbol) {
            _ms_text_str(b, r->symbol);
            if (r->offset) _ms_bprintf(b, "+%lu", (unsigned long)r->offset);
        } else _ms_bprintf(b, "storage");
        if (r->module) { _ms_bprintf(b, " in "); _ms_text_str(b, r->module); }
        break;
    case MS_ROOT_GC: _ms_bprintf(b, "a collector root (memshim_root_add)"); break;
    case MS_ROOT_GARBAGE: _ms_bprintf(b, "the collector's garbage list (MEMSHIM_DEBUG_SAVEALL)"); break;
    default: _ms_bprintf(b, "memshim's own memory"); break;
    }
}

static void root_json(ms_buf_t *b, const ms_leak_item_t *it, const root_t *r)
{
    _ms_bprintf(b, "{\"kind\": \"%s\"", r->kind);
    if (it->root == MS_ROOT_MAPPING || it->root == MS_ROOT_STACK || it->root == MS_ROOT_TLS)
        _ms_bprintf(b, ", \"addr\": \"%p\"", (void *)it->from);
    if (it->root == MS_ROOT_STACK || it->root == MS_ROOT_REGS || it->root == MS_ROOT_TLS)
        _ms_bprintf(b, ", \"thread\": %d", r->tid);
    if (r->symbol) {
        _ms_bprintf(b, ", \"symbol\": ");
        _ms_json_str(b, r->symbol);
        _ms_bprintf(b, ", \"offset\": %lu", (unsigned long)r->offset);
    }
    frame_json(b, &(ms_frame_t){ .function = r->function, .file = r->file, .line = r->line, .module = r->module });
    _ms_bprintf(b, "}");
}

/* Where a pointer into the middle of a block points, from the start of the
 * block (of the object, for a collector object). */
static long into_of(const ms_leak_item_t *h) { return (long)h->into - (long)h->objoff; }

/* Hops shown of a chain of n blocks: all if n <= depth, else the first
 * depth-1 from the root and the last (the one pointing to the block). */
static bool hop_shown(unsigned j, unsigned n, unsigned depth)
{
    return n <= depth || j + 1 < depth || j + 1 == n;
}

/* The retention path of items[i], as text lines under a record (each line
 * opened with `lead`), or as a JSON object. */
static void why_text(ms_buf_t *b, const char *lead, const ms_leak_item_t *items, size_t i, unsigned depth)
{
    static uint32_t path[WHY_WALK_MAX];    /* under the report lock */
    unsigned n = 0;
    size_t top = i;
    if (!why_walk(items, i, path, &n, &top)) {
        _ms_bprintf(b, "%skept alive through more than %u blocks: the root is not followed\n", lead, WHY_WALK_MAX);
        return;
    }
    root_t r;
    root_name(&items[top], &r);
    _ms_bprintf(b, "%skept alive by: ", lead);
    root_text(b, &items[top], &r);
    _ms_bprintf(b, "\n");
    for (unsigned j = 0; j < n; j++) {
        if (!hop_shown(j, n, depth)) {
            if (j + 1 == depth) _ms_bprintf(b, "%s  -> ... %u more block%s\n", lead, n - depth, n - depth == 1 ? "" : "s");
            continue;
        }
        const ms_leak_item_t *h = &items[path[j]];
        const ms_leak_item_t *next = j + 1 < n ? &items[path[j + 1]] : &items[i];
        _ms_bprintf(b, "%s  -> %p", lead, (void *)(h->addr + h->objoff));
        if (h->into) _ms_bprintf(b, "%c%ld", into_of(h) < 0 ? '-' : '+', labs(into_of(h)));
        _ms_bprintf(b, " (");
        if (h->gctype) { _ms_text_str(b, type_name(h->gctype)); _ms_bprintf(b, " object, "); }
        _ms_bprintf(b, "%llu byte%s, allocated at ", (unsigned long long)h->size, h->size == 1 ? "" : "s");
        site_text(b, h->stack);
        _ms_bprintf(b, "), pointer at offset %ld\n", (long)(next->from - (h->addr + h->objoff)));
    }
    _ms_bprintf(b, "%s  -> this block, %p", lead, (void *)(items[i].addr + items[i].objoff));
    if (items[i].into) _ms_bprintf(b, "%c%ld (a pointer into its middle)", into_of(&items[i]) < 0 ? '-' : '+', labs(into_of(&items[i])));
    _ms_bprintf(b, "\n");
}

static void why_json(ms_buf_t *b, const ms_leak_item_t *items, size_t i, unsigned depth)
{
    static uint32_t path[WHY_WALK_MAX];
    unsigned n = 0;
    size_t top = i;
    if (!why_walk(items, i, path, &n, &top)) {
        _ms_bprintf(b, "{\"root\": null, \"hops\": [], \"more\": %u", WHY_WALK_MAX);
    } else {
        root_t r;
        root_name(&items[top], &r);
        _ms_bprintf(b, "{\"root\": ");
        root_json(b, &items[top], &r);
        _ms_bprintf(b, ", \"hops\": [");
        bool first = true;
        for (unsigned j = 0; j < n; j++) {
            if (!hop_shown(j, n, depth)) continue;
            const ms_leak_item_t *h = &items[path[j]];
            const ms_leak_item_t *next = j + 1 < n ? &items[path[j + 1]] : &items[i];
            _ms_bprintf(b, "%s{\"addr\": \"%p\", \"size\": %llu, \"offset\": %ld", first ? "" : ", ",
                        (void *)(h->addr + h->objoff), (unsigned long long)h->size,
                        (long)(next->from - (h->addr + h->objoff)));
            if (h->into) _ms_bprintf(b, ", \"into\": %ld", into_of(h));
            if (h->gctype) { _ms_bprintf(b, ", \"type\": "); _ms_json_str(b, type_name(h->gctype)); }
            site_json(b, h->stack);
            _ms_bprintf(b, "}");
            first = false;
        }
        _ms_bprintf(b, "], \"more\": %u", n > depth ? n - depth : 0);
    }
    _ms_bprintf(b, ", \"block\": {\"addr\": \"%p\", \"size\": %llu", (void *)(items[i].addr + items[i].objoff),
                (unsigned long long)items[i].size);
    if (items[i].into) _ms_bprintf(b, ", \"into\": %ld", into_of(&items[i]));
    _ms_bprintf(b, "}}");
}

static bool why_wanted(unsigned kind)
{
    return _ms_opt.why_depth && (kind == MS_KIND_REACHABLE || kind == MS_KIND_POSSIBLE) &&
           (_ms_opt.show >> kind & 1);
}

static bool build_groups(groups_t *gs, const ms_leak_item_t *items, size_t n)
{
    memset(gs, 0, sizeof *gs);
    gs->items = items;
    gs->cap = 16;                                  /* doubles as groups come (group_of) */
    gs->g = _ms_meta_alloc(gs->cap * sizeof *gs->g);
    ms_table_t *t = gs->g ? ms_table_new(&rec_kind, gs->cap) : NULL;
    if (!t) {
        if (gs->g) _ms_meta_free(gs->g, gs->cap * sizeof *gs->g);
        return false;
    }
    gs->raw_items = n;
    bool why = _ms_opt.why_depth && n;
    uint32_t *depth = why ? _ms_meta_alloc(n * sizeof *depth) : NULL;
    uint32_t *stk = why ? _ms_meta_alloc(n * sizeof *stk) : NULL;
    for (size_t i = 0; i < n; i++) {
        const ms_leak_item_t *it = &items[i];
        double w = weight(it);
        if (w == 0) continue;
        if (it->inherited) {
            gs->inherited_blocks += w;
            gs->inherited_bytes += w * (double)it->size;
            continue;
        }
        if (it->heuristic) {
            gs->heur_blocks[it->heuristic] += w;
            gs->heur_bytes[it->heuristic] += w * (double)it->size;
        }
        group_t *g = group_of(gs, &t, it);
        if (!g) {
            ms_table_free(&t, &rec_kind);
            _ms_meta_free(gs->g, gs->cap * sizeof *gs->g);
            gs->g = NULL;
            if (depth) _ms_meta_free(depth, n * sizeof *depth);
            if (stk) _ms_meta_free(stk, n * sizeof *stk);
            return false;
        }
        g->blocks += w;
        g->bytes += w * (double)it->size;
        if (it->kind == MS_KIND_DEFINITE) g->indirect += w * (double)it->indirect;   /* the union's lost half */
        if (depth && stk && why_wanted(it->kind) && (!g->why || g->why_depth > 0)) {   /* the nearest to a root */
            uint32_t d = why_distance(items, n, depth, stk, i);
            if (!g->why || d < g->why_depth) { g->why = i + 1; g->why_depth = d; }
        }
    }
    if (depth) _ms_meta_free(depth, n * sizeof *depth);
    if (stk) _ms_meta_free(stk, n * sizeof *stk);
    ms_table_free(&t, &rec_kind);
    /* sort: kind first, then bytes, largest first */
    for (size_t gap = gs->n / 2; gap; gap /= 2)    /* shell sort: no allocation */
        for (size_t i = gap; i < gs->n; i++) {
            group_t x = gs->g[i];
            size_t j = i;
            while (j >= gap && (gs->g[j - gap].kind > x.kind ||
                                (gs->g[j - gap].kind == x.kind &&
                                 gs->g[j - gap].bytes + gs->g[j - gap].indirect < x.bytes + x.indirect))) {
                gs->g[j] = gs->g[j - gap];
                j -= gap;
            }
            gs->g[j] = x;
        }
    return true;
}

/* ---- since the last report (MEMSHIM_LEAK_SINCE) -------------------------------------- *
 * Each report keeps what every record (stack, kind, type) held, in
 * memshim's memory; the next one flags its records new, increased or
 * decreased against that, as valgrind's leak check does with
 * --leak-check=full and added/increased.  Under the report lock. */
typedef struct { uint8_t kind, seen; double blocks, bytes; } prev_t;
static struct {
    prev_t     *r;                 /* the last report's records, not suppressed */
    size_t      n, cap;
    ms_table_t *t;                 /* ... by identity (rec_slot) */
    double      blocks[MS_NKINDS], bytes[MS_NKINDS];
    unsigned    seq;               /* the report they are from, 0: none yet */
} prev;
static unsigned report_seq;        /* reports made by this process */

static void since_mark(groups_t *gs)
{
    gs->since = true;
    gs->since_seq = prev.seq;
    for (unsigned k = 0; k < MS_NKINDS; k++) {
        gs->d_blocks[k] = gs->total_blocks[k] - prev.blocks[k];
        gs->d_bytes[k] = gs->total_bytes[k] - prev.bytes[k];
    }
    for (size_t i = 0; i < gs->n; i++) {
        group_t *g = &gs->g[i];
        if (g->suppressed) continue;
        const rec_slot *s = rec_find(prev.t, &(rec_id){ g->stack, g->kind, g->gctype });
        prev_t *p = s ? &prev.r[s->at] : NULL;
        g->d_blocks = g->blocks - (p ? p->blocks : 0);
        g->d_bytes = g->bytes - (p ? p->bytes : 0);
        g->change = !p ? CHANGE_NEW : g->d_bytes > 0 || g->d_blocks > 0 ? CHANGE_INCREASED
                  : g->d_bytes < 0 || g->d_blocks < 0 ? CHANGE_DECREASED : CHANGE_SAME;
        if (p) p->seen = 1;
        if (_ms_opt.show >> g->kind & 1) gs->changes[g->change]++;
    }
    for (size_t i = 0; i < prev.n; i++)                  /* records gone since */
        if (!prev.r[i].seen && (_ms_opt.show >> prev.r[i].kind & 1)) gs->changes[CHANGE_NONE]++;
}

/* This report's records become the ones the next report compares with. */
static void since_keep(const groups_t *gs)
{
    if (prev.r) _ms_meta_free(prev.r, prev.cap * sizeof *prev.r);
    ms_table_free(&prev.t, &rec_kind);
    prev.n = 0;
    prev.cap = gs->n ? gs->n : 1;
    prev.r = _ms_meta_alloc(prev.cap * sizeof *prev.r);
    prev.t = prev.r ? ms_table_new(&rec_kind, gs->n) : NULL;
    prev.seq = prev.t ? gs->seq : 0;
    memset(prev.blocks, 0, sizeof prev.blocks);
    memset(prev.bytes, 0, sizeof prev.bytes);
    if (!prev.t) {
        if (prev.r) _ms_meta_free(prev.r, prev.cap * sizeof *prev.r);
        prev.r = NULL;
        return;
    }
    for (size_t i = 0; i < gs->n; i++) {
        const group_t *g = &gs->g[i];
        if (g->suppressed) continue;
        rec_add(prev.t, &(rec_id){ g->stack, g->kind, g->gctype }, prev.n);
        prev.r[prev.n++] = (prev_t){ g->kind, 0, g->blocks, g->bytes };
    }
    memcpy(prev.blocks, gs->total_blocks, sizeof prev.blocks);
    memcpy(prev.bytes, gs->total_bytes, sizeof prev.bytes);
}

/* ---- output ------------------------------------------------------------------------- */

/* "N bytes", "1 block": a count and its noun, singular for one; in since
 * mode with the change in parentheses, "N (+D) bytes". */
static void count_text(ms_buf_t *b, double v, bool since, double d, const char *one, const char *many)
{
    unsigned long long n = _ms_round(v);
    _ms_bprintf(b, "%llu", n);
    if (since) _ms_bprintf(b, " (%c%llu)", d < 0 ? '-' : '+', _ms_round(d < 0 ? -d : d));
    if (one) _ms_bprintf(b, " %s", n == 1 ? one : many);
}

static void json_delta(ms_buf_t *b, double d_blocks, double d_bytes)
{
    _ms_bprintf(b, ", \"blocks_delta\": %s%llu, \"bytes_delta\": %s%llu", d_blocks < 0 ? "-" : "",
                _ms_round(d_blocks < 0 ? -d_blocks : d_blocks), d_bytes < 0 ? "-" : "",
                _ms_round(d_bytes < 0 ? -d_bytes : d_bytes));
}


static void text_frame(ms_buf_t *b, int pid, unsigned i, const ms_frame_t *f)
{
    _ms_bprintf(b, "==%d==    %s %p: ", pid, i ? "by" : "at", (void *)f->ip);
    _ms_frame_text(b, f);
    _ms_bprintf(b, "\n");
}

/* glibc runs a thread's function from start_thread, which clone3 (clone
 * before 2.34) called: a stack that ends in two frames of the C library,
 * and was not cut short by MEMSHIM_STACK_DEPTH, is a thread's, and the
 * first of those two frames is start_thread's.  It is named so without
 * libdw: only the C library's separate debug file, when installed, names
 * that static function, and reading it at exit cost a short threaded
 * program ~40 ms and ~18 MB (zlib-compressed sections).  The frame's
 * index, or n if this is no thread's stack. */
static unsigned thread_start(const uintptr_t *ip, unsigned n)
{
    if (n < 3 || n >= _ms_opt.stack_depth || !_ms_libc_code(ip[n - 1]) || !_ms_libc_code(ip[n - 2])) return n;
    return n - 2;
}

/* A stored stack's frames, innermost first, symbolized, up to main or
 * start_thread: what every output shows (below them is the C library's
 * start-up, the same in every stack, and costly to symbolize). */
unsigned _ms_stack_frames(uint32_t stack, ms_frame_t *f)
{
    uintptr_t ip[MS_MAX_STACK];
    unsigned n = _ms_stack_get(stack, ip), start = thread_start(ip, n);
    for (unsigned i = 0; i < n; i++) {
        if (i == start) {
            _ms_symbolize(ip[i], &f[i], false);        /* the module, from the loader */
            f[i].function = "start_thread";
            return i + 1;
        }
        _ms_symbolize(ip[i], &f[i], true);         /* no line in the C library (symbolize.c) */
        if (f[i].function && (strcmp(f[i].function, "main") == 0 || strcmp(f[i].function, "start_thread") == 0))
            return i + 1;
    }
    return n;
}

static void print_stack_text(ms_buf_t *b, int pid, uint32_t stack)
{
    ms_frame_t f[MS_MAX_STACK];
    unsigned n = _ms_stack_frames(stack, f);
    if (!n) {
        _ms_bprintf(b, "==%d==    (no stack%s)\n", pid, stack == MS_STACK_OOM ? ": out of memory" : " recorded");
        return;
    }
    for (unsigned i = 0; i < n; i++) text_frame(b, pid, i, &f[i]);
}


/* The heap misuse met so far (double frees, bad frees, mismatches, writes
 * after free), as standard error showed each when it happened. */
static void heap_errors_text(ms_buf_t *b, int pid)
{
    unsigned shown, total;
    const ms_heap_err_t *e = _ms_heap_errors(&shown, &total);
    if (!total) return;
    _ms_bprintf(b, "==%d==\n==%d== HEAP ERRORS: %u (each written to standard error when it happened)\n", pid, pid, total);
    for (unsigned i = 0; i < shown; i++) {
        _ms_bprintf(b, "==%d==\n==%d== %s: %p", pid, pid, e[i].what, e[i].p);
        if (e[i].is[0]) _ms_bprintf(b, " is %s", e[i].is);
        _ms_bprintf(b, " (thread %d)\n", e[i].tid);
        for (unsigned k = 0; k < e[i].nstacks; k++) {
            _ms_bprintf(b, "==%d==  %s:\n", pid, e[i].titles[k]);
            ms_frame_t f[MS_MAX_STACK];
            unsigned n = e[i].stacks[k] ? _ms_stack_frames(e[i].stacks[k], f) : 0;
            if (!n) _ms_bprintf(b, "==%d==    (not recorded)\n", pid);
            for (unsigned j = 0; j < n; j++) text_frame(b, pid, j, &f[j]);
        }
    }
    if (total > shown) _ms_bprintf(b, "==%d== %u more not kept\n", pid, total - shown);
}

static void heap_errors_json(ms_buf_t *b)
{
    unsigned shown, total;
    const ms_heap_err_t *e = _ms_heap_errors(&shown, &total);
    _ms_bprintf(b, ",\n \"heap_errors_total\": %u, \"heap_errors\": [", total);
    for (unsigned i = 0; i < shown; i++) {
        _ms_bprintf(b, "%s\n  {\"what\": ", i ? "," : "");
        _ms_json_str(b, e[i].what);
        _ms_bprintf(b, ", \"addr\": \"%p\", \"is\": ", e[i].p);
        _ms_json_str(b, e[i].is);
        _ms_bprintf(b, ", \"thread\": %d, \"stacks\": [", e[i].tid);
        for (unsigned k = 0; k < e[i].nstacks; k++) {
            _ms_bprintf(b, "%s{\"title\": ", k ? ", " : "");
            _ms_json_str(b, e[i].titles[k]);
            _ms_bprintf(b, ", \"stack\": [");
            ms_frame_t f[MS_MAX_STACK];
            unsigned n = e[i].stacks[k] ? _ms_stack_frames(e[i].stacks[k], f) : 0;
            for (unsigned j = 0; j < n; j++) {
                _ms_bprintf(b, "%s{\"ip\": \"%p\"", j ? ", " : "", (void *)f[j].ip);
                frame_json(b, &f[j]);
                _ms_bprintf(b, "}");
            }
            _ms_bprintf(b, "]}");
        }
        _ms_bprintf(b, "]}");
    }
    _ms_bprintf(b, "]");
}

/* memshim's messages (out.c): how many standard error was given, and how
 * many it was not (past the first few of their kind).  Text: only then. */
static void messages_text(ms_buf_t *b, int pid)
{
    ms_msg_stat_t m;
    _ms_message_stats(&m);
    if (m.not_shown)
        _ms_bprintf(b, "==%d==\n==%d== MESSAGES: %llu, of which %llu not shown on standard error "
                    "(%u of each kind are)\n", pid, pid, (unsigned long long)m.total,
                    (unsigned long long)m.not_shown, MS_MSG_SHOWN);
}

static void messages_json(ms_buf_t *b)
{
    ms_msg_stat_t m;
    _ms_message_stats(&m);
    const char *sep = "";
    _ms_bprintf(b, ",\n \"messages\": {");
#define MSG(f, unit, label) _ms_bprintf(b, "%s\"%s\": %llu", sep, #f, (unsigned long long)m.f); sep = ", ";
    MS_MSG_FIGURES(MSG)
    _ms_bprintf(b, "}");
}

/* The signal the process ends on after an exit report (init.c), without
 * its SIG; NULL if none. */
static const char *ending_signal(void)
{
    int sig = _ms_exit_signal();
    return sig ? sigabbrev_np(sig) : NULL;
}

static void write_text(ms_buf_t *b, const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp,
                       unsigned unparked, const char *why)
{
    int pid = (int)getpid();
    char prog[1024];
    _ms_program_name(prog, sizeof prog);
    _ms_bprintf(b, "==%d== memshim leak report (%s) for ", pid, why);
    _ms_text_str(b, prog);
    _ms_bprintf(b, "\n");
    const char *sig = ending_signal();
    if (sig)
        _ms_bprintf(b, "==%d== the process ends on SIG%s (its default action), after this report%s\n", pid, sig,
                    _ms_exit_overflowed() ? ": its stack overflowed" : "");
    if (_ms_opt.sample)
        _ms_bprintf(b, "==%d== sampling one allocation per %llu bytes on average: figures are estimates\n",
                    pid, (unsigned long long)_ms_opt.sample);
    if (unparked)
        _ms_bprintf(b, "==%d== %u thread%s could not be stopped for the scan; %s scanned whole\n",
                    pid, unparked, unparked == 1 ? "" : "s", unparked == 1 ? "its stack was" : "their stacks were");
    if (gs->since) {
        if (gs->since_seq) _ms_bprintf(b, "==%d== since report %u of this process: ", pid, gs->since_seq);
        else _ms_bprintf(b, "==%d== since the start (no report before): ", pid);
        _ms_bprintf(b, "%u new, %u increased, %u decreased, %u unchanged, %u gone loss record%s\n",
                    gs->changes[CHANGE_NEW], gs->changes[CHANGE_INCREASED], gs->changes[CHANGE_DECREASED],
                    gs->changes[CHANGE_SAME], gs->changes[CHANGE_NONE],
                    gs->changes[CHANGE_NEW] + gs->changes[CHANGE_INCREASED] + gs->changes[CHANGE_DECREASED] +
                    gs->changes[CHANGE_SAME] + gs->changes[CHANGE_NONE] == 1 ? "" : "s");
    }
    unsigned shown = 0, total = 0;
    for (size_t i = 0; i < gs->n; i++)
        if (!gs->g[i].suppressed && (_ms_opt.show >> gs->g[i].kind & 1)) total++;
    for (size_t i = 0; i < gs->n; i++) {
        const group_t *g = &gs->g[i];
        if (g->suppressed || !(_ms_opt.show >> g->kind & 1)) continue;
        shown++;
        _ms_bprintf(b, "==%d==\n==%d== ", pid, pid);
        if (g->kind == MS_KIND_DEFINITE && g->indirect > 0) {
            count_text(b, g->bytes + g->indirect, gs->since, g->d_bytes, NULL, NULL);
            _ms_bprintf(b, " (%llu direct, %llu indirect) bytes", _ms_round(g->bytes), _ms_round(g->indirect));
        } else count_text(b, g->bytes, gs->since, g->d_bytes, "byte", "bytes");
        _ms_bprintf(b, " in ");
        count_text(b, g->blocks, gs->since, g->d_blocks, "block", "blocks");
        _ms_bprintf(b, " %s %s in %sloss record %u of %u\n", _ms_round(g->blocks) == 1 ? "is" : "are",
                    kind_text[g->kind], change_word[g->change], shown, total);
        if (g->gctype) _ms_bprintf(b, "==%d==    collector objects of type %s\n", pid, type_name(g->gctype));
        print_stack_text(b, pid, g->stack);
        if (g->why) {
            char lead[32];
            ms_buf_t lb;
            _ms_buf_init(&lb, lead, sizeof lead - 1, -1);
            _ms_bprintf(&lb, "==%d==    ", pid);
            lead[lb.len] = 0;
            why_text(b, lead, gs->items, g->why - 1, _ms_opt.why_depth);
        }
        if (_ms_opt.gen_suppressions) _ms_supp_generate(b, g->stack, g->kind, shown);
    }
    heap_errors_text(b, pid);
    messages_text(b, pid);
    _ms_bprintf(b, "==%d==\n==%d== LEAK SUMMARY:\n", pid, pid);
    static const char *pad[MS_NKINDS] = { "", "", "  ", "" };
    for (unsigned k = 0; k < MS_NKINDS; k++) {
        _ms_bprintf(b, "==%d==    %s%s: ", pid, pad[k], kind_text[k]);
        count_text(b, gs->total_bytes[k], gs->since, gs->d_bytes[k], "byte", "bytes");
        _ms_bprintf(b, " in ");
        count_text(b, gs->total_blocks[k], gs->since, gs->d_blocks[k], "block", "blocks");
        _ms_bprintf(b, "\n");
    }
    heuristics_text(b, pid, gs);
    _ms_bprintf(b, "==%d==         suppressed: ", pid);
    count_text(b, gs->supp_bytes, false, 0, "byte", "bytes");
    _ms_bprintf(b, " in ");
    count_text(b, gs->supp_blocks, false, 0, "block", "blocks");
    _ms_bprintf(b, "\n");
    _ms_supp_used(sp, b, pid, false);
    if (gs->inherited_blocks > 0) {
        _ms_bprintf(b, "==%d== ", pid);
        count_text(b, gs->inherited_bytes, false, 0, "byte", "bytes");
        _ms_bprintf(b, " in ");
        count_text(b, gs->inherited_blocks, false, 0, "block", "blocks");
        _ms_bprintf(b, " allocated by the parent before fork() %s left out (the parent's report counts them)\n",
                    _ms_round(gs->inherited_blocks) == 1 ? "is" : "are");
    }
    if (!(_ms_opt.show >> MS_KIND_REACHABLE & 1) && gs->total_blocks[MS_KIND_REACHABLE] > 0)
        _ms_bprintf(b, "==%d== Reachable blocks are not shown: MEMSHIM_SHOW=all to see them\n", pid);
    cycles_text(b, pid, cy);
}


static void write_json(ms_buf_t *b, const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp,
                       unsigned unparked, const char *why)
{
    _ms_json_begin(b, "memshim-leaks", 1);
    _ms_bprintf(b, ", \"when\": \"%s\", \"sequence\": %u, \"sample_interval\": %llu, \"threads_not_stopped\": %u,\n",
                why, gs->seq, (unsigned long long)_ms_opt.sample, unparked);
    const char *sig = ending_signal();
    if (sig) _ms_bprintf(b, " \"signal\": \"SIG%s\",%s\n", sig, _ms_exit_overflowed() ? " \"stack_overflow\": true," : "");
    if (gs->since)
        _ms_bprintf(b, " \"since\": %u, \"changes\": {\"new\": %u, \"increased\": %u, \"decreased\": %u, "
                    "\"same\": %u, \"gone\": %u},\n", gs->since_seq, gs->changes[CHANGE_NEW],
                    gs->changes[CHANGE_INCREASED], gs->changes[CHANGE_DECREASED], gs->changes[CHANGE_SAME],
                    gs->changes[CHANGE_NONE]);
    _ms_bprintf(b, " \"summary\": {");
    for (unsigned k = 0; k < MS_NKINDS; k++) {
        _ms_bprintf(b, "%s\"%s\": {\"blocks\": %llu, \"bytes\": %llu", k ? ", " : "", kind_name[k],
                    _ms_round(gs->total_blocks[k]), _ms_round(gs->total_bytes[k]));
        if (gs->since) json_delta(b, gs->d_blocks[k], gs->d_bytes[k]);
        _ms_bprintf(b, "}");
    }
    _ms_bprintf(b, ", \"reachable_via_heuristic\": {");
    for (unsigned h = 1; h < MS_HEUR_KINDS; h++)
        _ms_bprintf(b, "%s\"%s\": {\"blocks\": %llu, \"bytes\": %llu}", h > 1 ? ", " : "", heur_name[h],
                    _ms_round(gs->heur_blocks[h]), _ms_round(gs->heur_bytes[h]));
    _ms_bprintf(b, "}");
    _ms_bprintf(b, ", \"suppressed\": {\"blocks\": %llu, \"bytes\": %llu}, "
                "\"inherited\": {\"blocks\": %llu, \"bytes\": %llu}},\n \"leaks\": [",
                _ms_round(gs->supp_blocks), _ms_round(gs->supp_bytes), _ms_round(gs->inherited_blocks), _ms_round(gs->inherited_bytes));
    bool first = true;
    for (size_t i = 0; i < gs->n; i++) {
        const group_t *g = &gs->g[i];
        if (g->suppressed || !(_ms_opt.show >> g->kind & 1)) continue;
        _ms_bprintf(b, "%s\n  {\"kind\": \"%s\", \"blocks\": %llu, \"bytes\": %llu", first ? "" : ",",
                    kind_name[g->kind], _ms_round(g->blocks), _ms_round(g->bytes));
        if (g->kind == MS_KIND_DEFINITE)
            _ms_bprintf(b, ", \"indirect_bytes\": %llu", _ms_round(g->indirect));
        if (g->gctype) { _ms_bprintf(b, ", \"type\": "); _ms_json_str(b, type_name(g->gctype)); }
        if (gs->since) {
            _ms_bprintf(b, ", \"change\": \"%s\"", change_name[g->change]);
            json_delta(b, g->d_blocks, g->d_bytes);
        }
        _ms_bprintf(b, ", \"stack\": ");
        first = false;
        _ms_stack_json(b, g->stack);
        if (g->why) {
            _ms_bprintf(b, ", \"why\": ");
            why_json(b, gs->items, g->why - 1, _ms_opt.why_depth);
        }
        _ms_bprintf(b, "}");
    }
    _ms_bprintf(b, "\n ],\n \"suppressions_used\": [");
    _ms_supp_used(sp, b, 0, true);
    _ms_bprintf(b, "]");
    heap_errors_json(b);
    messages_json(b);
    cycles_json(b, cy);
    _ms_bprintf(b, "}\n");
}

int _ms_leak_forked;

static void write_report(const ms_out_t *o, const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp,
                         unsigned unparked, const char *why)
{
    char mem[8192];
    ms_buf_t b;
    _ms_buf_init_out(&b, mem, sizeof mem, o);
    if (_ms_opt.json) write_json(&b, gs, cy, sp, unparked, why); else write_text(&b, gs, cy, sp, unparked, why);
    _ms_buf_flush(&b);
}

/* To MEMSHIM_REPORT, or standard error; the file rules are out.c's. */
static void emit(const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp, unsigned unparked, bool at_exit)
{
    int saved = errno;
    const char *why = at_exit ? "at exit" : "snapshot";
    ms_out_t o;
    unsigned flags = (_ms_leak_forked || _ms_opt.report_child ? MS_OUT_CHILD_SUFFIX : 0) |
                     (at_exit ? 0 : MS_OUT_SERIES);
    _ms_out_open_seq(&o, "MEMSHIM_REPORT", _ms_opt.report, flags, gs->seq);
    write_report(&o, gs, cy, sp, unparked, why);
    if (!_ms_out_commit(&o)) {
        _ms_out_open(&o, "MEMSHIM_REPORT", NULL, 0);      /* not written there: stderr */
        write_report(&o, gs, cy, sp, unparked, why);
        _ms_out_commit(&o);
    }
    errno = saved;
}

/* Scan, group, suppress, and write a report.  Returns the number of leaked
 * blocks (definitely, indirectly or possibly lost, not suppressed). */
/* One report at a time, from scan to the last byte written: a snapshot
 * (signal, memshim_leak_check) and the exit report never interleave.  The
 * exit report is the last: a snapshot asked for while it runs is folded
 * into it, and one asked for after it (a later destructor) returns at once
 * with the exit report's count. */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int exit_done = -1;             /* leaks of the exit report, once made */

void _ms_leak_report_fork_child(void)
{
    pthread_mutex_init(&report_lock, NULL);
    exit_done = -1;
    report_seq = 0;                    /* the child's reports: a series of their own */
    memset(&prev, 0, sizeof prev);     /* the parent's table stays with it */
}

static int leak_report_locked(int at_exit, const ms_scan_self_t *self);
struct report_call { int at_exit; const ms_scan_self_t *self; };
static int report_on_own_stack(void *arg)
{
    const struct report_call *c = arg;
    return leak_report_locked(c->at_exit, c->self);
}

int _ms_leak_report(int at_exit, const ms_scan_self_t *self)
{
    if (!_ms_track_on) return 0;
    if (_ms_confined_say("leak report")) { errno = EPERM; return -1; }     /* no verdict */
    int done = __atomic_load_n(&exit_done, __ATOMIC_ACQUIRE);
    if (done >= 0) return done;
    pthread_mutex_lock(&report_lock);
    if ((done = __atomic_load_n(&exit_done, __ATOMIC_ACQUIRE)) >= 0) {
        pthread_mutex_unlock(&report_lock);
        return done;
    }
    struct report_call c = { at_exit, self };
    int leaks = _ms_on_own_stack(report_on_own_stack, &c);
    if (at_exit) __atomic_store_n(&exit_done, leaks, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&report_lock);
    return leaks;
}

static int leak_report_locked(int at_exit, const ms_scan_self_t *self)
{
    ms_leak_item_t *items;
    unsigned unparked;
    size_t cap;
    size_t n = _ms_scan_leaks(&items, &cap, &unparked, self, 0);
    if (!items && errno == EMFILE && _ms_symbolize_release())   /* a profile's files held the last ones */
        n = _ms_scan_leaks(&items, &cap, &unparked, self, 0);
    if (!items && errno == EMFILE)                              /* one left at most */
        n = _ms_scan_leaks(&items, &cap, &unparked, self, MS_SCAN_FEW_FDS);
    if (!items) {
        if (errno == ENOMEM) _ms_message("leak check failed: out of memory for the scan");
        else _ms_message("leak check failed: /proc/self/maps could not be read (%s), so no root of the scan is "
                         "known and no verdict is given", strerror(errno));
        return -1;                       /* no verdict */
    }
    _ms_busy++;
    _ms_symbolize_begin();
    groups_t gs;
    int leaks = 0;
    if (build_groups(&gs, items, n)) {
        ms_supps_t *sp = _ms_supp_load();
        for (size_t i = 0; i < gs.n; i++) {
            group_t *g = &gs.g[i];
            if (_ms_supp_match(sp, g->stack, g->kind, g->gctype, g->blocks, g->bytes)) {
                g->suppressed = 1;
                gs.supp_blocks += g->blocks;
                gs.supp_bytes += g->bytes;
                continue;
            }
            gs.total_blocks[g->kind] += g->blocks;
            gs.total_bytes[g->kind] += g->bytes;
            if (g->kind != MS_KIND_REACHABLE) leaks += (int)_ms_round(g->blocks);
        }
        _ms_live_note_leaks(gs.total_blocks, gs.total_bytes);   /* for the live figures, metrics */
        gs.seq = ++report_seq;
        if (_ms_opt.leak_since) since_mark(&gs);
        since_keep(&gs);
        cycles_t cy;
        cycles_find(&cy, items, n);
        unsigned nerr, nerr_total;
        _ms_heap_errors(&nerr, &nerr_total);
        bool shown = cy.nobj > 0 || nerr_total > 0 || (_ms_opt.show_summary && leaks > 0);
        for (size_t i = 0; i < gs.n; i++)
            shown |= !gs.g[i].suppressed && (_ms_opt.show >> gs.g[i].kind & 1);
        /* stderr stays quiet for a clean program; a named file is always written */
        if (shown || _ms_names_file(_ms_opt.report) || !at_exit)
            emit(&gs, &cy, sp, unparked, at_exit);
        cycles_free(&cy);
        _ms_supp_free(sp);
        _ms_meta_free(gs.g, gs.cap * sizeof *gs.g);
    }
    _ms_leak_items_free(items, cap);
    _ms_symbolize_end();
    _ms_busy--;
    return leaks;
}

/* memshim_why: one block's retention path, or what it is, to fd. */
static int why_locked(const void *ptr, int fd, const ms_scan_self_t *self);
struct why_call { const void *ptr; int fd; const ms_scan_self_t *self; };
static int why_on_own_stack(void *arg)
{
    const struct why_call *c = arg;
    return why_locked(c->ptr, c->fd, c->self);
}

int _ms_why(const void *ptr, int fd, const ms_scan_self_t *self)
{
    if (!_ms_track_on) { errno = ENOTSUP; return -1; }
    if (_ms_confined_say("retention path")) { errno = EPERM; return -1; }
    struct why_call c = { ptr, fd, self };
    return _ms_on_own_stack(why_on_own_stack, &c);
}

static int why_locked(const void *ptr, int fd, const ms_scan_self_t *self)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) { errno = EBADF; return -1; }
    pthread_mutex_lock(&report_lock);
    ms_leak_item_t *items;
    unsigned unparked;
    size_t cap;
    size_t n = _ms_scan_leaks(&items, &cap, &unparked, self, 0);
    if (!items) {                        /* errno: ENOMEM, or why /proc/self/maps could not be read */
        int e = errno;
        pthread_mutex_unlock(&report_lock);
        errno = e;
        return -1;
    }
    _ms_busy++;
    _ms_symbolize_begin();
    uintptr_t p = (uintptr_t)ptr;
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < n && found == SIZE_MAX; i++)
        if (p >= items[i].addr && p - items[i].addr < (items[i].size ? items[i].size : 1)) found = i;
    char mem[4096];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, fd);
    if (found == SIZE_MAX) {
        _ms_bprintf(&b, "%p is not in a live block of the heap\n", ptr);
    } else {
        const ms_leak_item_t *it = &items[found];
        uintptr_t a = it->addr + it->objoff;
        if (p != a) _ms_bprintf(&b, "%p is %ld bytes into the block ", ptr, (long)(p - a));
        _ms_bprintf(&b, "%p (", (void *)a);
        if (it->gctype) _ms_bprintf(&b, "%s object, ", type_name(it->gctype));
        _ms_bprintf(&b, "%llu byte%s, allocated at ", (unsigned long long)it->size, it->size == 1 ? "" : "s");
        site_text(&b, it->stack);
        _ms_bprintf(&b, "): %s", kind_text[it->kind]);
        switch (it->kind) {
        case MS_KIND_DEFINITE: _ms_bprintf(&b, ", no pointer to it was found\n"); break;
        case MS_KIND_INDIRECT: _ms_bprintf(&b, ", only lost blocks point to it\n"); break;
        case MS_KIND_POSSIBLE: _ms_bprintf(&b, ", only pointers into its middle reach it\n"); break;
        default: _ms_bprintf(&b, "\n"); break;
        }
        if (it->kind == MS_KIND_REACHABLE || it->kind == MS_KIND_POSSIBLE)
            why_text(&b, "  ", items, found, _ms_opt.why_depth ? _ms_opt.why_depth : 8);
    }
    _ms_buf_flush(&b);
    _ms_leak_items_free(items, cap);
    _ms_symbolize_end();
    _ms_busy--;
    pthread_mutex_unlock(&report_lock);
    return 0;
}
