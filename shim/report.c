/* report.c - the leak report: live blocks grouped by kind and allocation
 * stack, largest first, each with a symbolized stack, then a summary of the
 * four kinds.  Text in the shape valgrind users know, or JSON (the schema
 * is in memshim(7)).  Written to standard error (memshim's own copy of it,
 * so a program that closed fd 2 still gets its report) or to MEMSHIM_REPORT,
 * by out.c's rules for output files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "shim.h"
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
} group_t;

typedef struct {
    group_t *g;
    size_t   n, cap;
    double   total_blocks[MS_NKINDS], total_bytes[MS_NKINDS];
    double   supp_blocks, supp_bytes;
    double   inherited_blocks, inherited_bytes;   /* forked child: the parent's */
    size_t   raw_items;
    const ms_leak_item_t *items;   /* the scan's, for retention paths */
} groups_t;

/* ---- collector objects alive only through cycles ----------------------------- */

typedef struct { const void *obj; const char *type; size_t size, group; } cyc_obj;
typedef struct { const void *from, *to; } cyc_edge;
typedef struct {
    cyc_obj  *obj;  size_t nobj, capobj;
    cyc_edge *edge; size_t nedge, capedge;
    size_t    ngroups;
    bool      oom;
} cycles_t;

static bool grow_array(void **arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    void *n = _ms_meta_alloc(ncap * elem);
    if (!n) return false;
    if (*arr) { memcpy(n, *arr, *cap * elem); _ms_meta_free(*arr, *cap * elem); }
    *arr = n;
    *cap = ncap;
    return true;
}

static void cyc_object(void *arg, const void *obj, const char *type, size_t size, size_t group)
{
    cycles_t *c = arg;
    if (c->nobj == c->capobj && !grow_array((void **)&c->obj, &c->capobj, sizeof *c->obj)) { c->oom = true; return; }
    c->obj[c->nobj++] = (cyc_obj){ obj, type ? type : "?", size, group };
    if (group + 1 > c->ngroups) c->ngroups = group + 1;
}

static void cyc_edge_cb(void *arg, const void *from, const void *to)
{
    cycles_t *c = arg;
    if (c->nedge == c->capedge && !grow_array((void **)&c->edge, &c->capedge, sizeof *c->edge)) { c->oom = true; return; }
    c->edge[c->nedge++] = (cyc_edge){ from, to };
}

static void cycles_find(cycles_t *c)
{
    memset(c, 0, sizeof *c);
    gc_cycle_sink sink = { cyc_object, cyc_edge_cb, c };
    if (gc_cycles_find(&sink) < 0) c->nobj = c->nedge = 0;
}

static void cycles_free(cycles_t *c)
{
    if (c->obj) _ms_meta_free(c->obj, c->capobj * sizeof *c->obj);
    if (c->edge) _ms_meta_free(c->edge, c->capedge * sizeof *c->edge);
}

static const char *type_of(const cycles_t *c, const void *obj)
{
    for (size_t i = 0; i < c->nobj; i++) if (c->obj[i].obj == obj) return c->obj[i].type;
    return "?";
}

static size_t group_of_obj(const cycles_t *c, const void *obj)
{
    for (size_t i = 0; i < c->nobj; i++) if (c->obj[i].obj == obj) return c->obj[i].group;
    return SIZE_MAX;
}

static void cycles_text(ms_buf_t *b, int pid, const cycles_t *c)
{
    if (!c->nobj) return;
    _ms_bprintf(b, "==%d==\n==%d== %zu collector object(s) in %zu group(s) are alive only through reference cycles:\n",
                pid, pid, c->nobj, c->ngroups);
    for (size_t g = 0; g < c->ngroups; g++) {
        size_t n = 0, bytes = 0;
        for (size_t i = 0; i < c->nobj; i++)
            if (c->obj[i].group == g) { n++; bytes += c->obj[i].size; }
        _ms_bprintf(b, "==%d==    cycle group %zu: %zu objects, %zu bytes\n", pid, g + 1, n, bytes);
        unsigned shown = 0;
        for (size_t e = 0; e < c->nedge && shown < 20; e++) {
            if (group_of_obj(c, c->edge[e].from) != g) continue;
            _ms_bprintf(b, "==%d==       %s@%p -> %s@%p\n", pid, type_of(c, c->edge[e].from), c->edge[e].from,
                        type_of(c, c->edge[e].to), c->edge[e].to);
            shown++;
        }
        if (shown == 20) _ms_bprintf(b, "==%d==       ...\n", pid);
    }
}

static void cycles_json(ms_buf_t *b, const cycles_t *c)
{
    _ms_bprintf(b, ",\n \"cycles\": [");
    for (size_t g = 0; g < c->ngroups; g++) {
        _ms_bprintf(b, "%s\n  {\"group\": %zu, \"objects\": [", g ? "," : "", g + 1);
        bool first = true;
        for (size_t i = 0; i < c->nobj; i++) {
            if (c->obj[i].group != g) continue;
            _ms_bprintf(b, "%s{\"addr\": \"%p\", \"type\": ", first ? "" : ", ", c->obj[i].obj);
            _ms_json_str(b, c->obj[i].type);
            _ms_bprintf(b, ", \"size\": %zu}", c->obj[i].size);
            first = false;
        }
        _ms_bprintf(b, "], \"edges\": [");
        first = true;
        for (size_t e = 0; e < c->nedge; e++) {
            if (group_of_obj(c, c->edge[e].from) != g) continue;
            _ms_bprintf(b, "%s{\"from\": \"%p\", \"to\": \"%p\"}", first ? "" : ", ",
                        c->edge[e].from, c->edge[e].to);
            first = false;
        }
        _ms_bprintf(b, "]}");
    }
    _ms_bprintf(b, "]");
}

/* ---- grouping ---------------------------------------------------------------- */

static group_t *group_of(groups_t *gs, uint32_t stack, uint8_t kind, const char *gctype)
{
    size_t mask = gs->cap - 1;
    for (size_t i = ((stack * 0x9E3779B1u) ^ kind ^ ((uintptr_t)gctype >> 4)) & mask;; i = (i + 1) & mask) {
        group_t *g = &gs->g[i];
        if (g->blocks == 0 && g->bytes == 0 && g->stack == 0 && g->kind == 0 && !g->suppressed && !g->gctype) {
            g->stack = stack;
            g->kind = kind;
            g->gctype = gctype;
            gs->n++;
            return g;
        }
        if (g->stack == stack && g->kind == kind && g->gctype == gctype) return g;
    }
}

/* A collector type's name, if it can still be read (it is the program's). */
static const char *type_name(const char *name)
{
    return name && _ms_os_readable(name, 1) && _ms_os_readable(name, strnlen(name, 64)) ? name : "?";
}

/* In sampling mode a sampled block of s bytes stands for 1/p blocks, where
 * p = 1 - e^(-s/N) is its chance of being sampled. */
static double weight(const ms_leak_item_t *it)
{
    if (!_ms_opt.sample) return 1;
    if (!it->sampled) return 0;
    double p = 1 - _ms_exp_neg((double)(it->size ? it->size : 1) / (double)_ms_opt.sample);
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


/* A frame's place, the one way each format writes it: text
 * "function (file:line)" or "function (in module+0xoffset)"; JSON members
 * "function", "file" and "line", "module", each where known. */
static void frame_text(ms_buf_t *b, const ms_frame_t *f)
{
    _ms_bprintf(b, "%s", f->function ? f->function : "???");
    if (f->file) _ms_bprintf(b, " (%s:%d)", _ms_base_name(f->file), f->line);
    else if (f->module) _ms_bprintf(b, " (in %s+0x%lx)", f->module, (unsigned long)f->offset);
}

static void frame_json(ms_buf_t *b, const ms_frame_t *f)
{
    if (f->function) { _ms_bprintf(b, ", \"function\": "); _ms_json_str(b, f->function); }
    if (f->file) { _ms_bprintf(b, ", \"file\": "); _ms_json_str(b, f->file); _ms_bprintf(b, ", \"line\": %d", f->line); }
    if (f->module) { _ms_bprintf(b, ", \"module\": "); _ms_json_str(b, f->module); }
}

/* A stored stack as a JSON array of frames, innermost first (leak reports
 * and heap profiles). */
void _ms_stack_json(ms_buf_t *b, uint32_t stack)
{
    const uintptr_t *ip;
    unsigned n = _ms_stack_get(stack, &ip);
    _ms_bprintf(b, "[");
    for (unsigned j = 0; j < n; j++) {
        ms_frame_t f;
        _ms_symbolize(ip[j], &f, true);
        _ms_bprintf(b, "%s{\"ip\": \"%p\"", j ? ", " : "", (void *)f.ip);
        frame_json(b, &f);
        _ms_bprintf(b, "}");
    }
    _ms_bprintf(b, "]");
}

/* The first frame of a block's allocation stack. */
static void site_text(ms_buf_t *b, uint32_t stack)
{
    const uintptr_t *ip;
    if (!_ms_stack_get(stack, &ip)) { _ms_bprintf(b, "no stack recorded"); return; }
    ms_frame_t f;
    _ms_symbolize(ip[0], &f, true);
    frame_text(b, &f);
}

static void site_json(ms_buf_t *b, uint32_t stack)
{
    const uintptr_t *ip;
    if (!_ms_stack_get(stack, &ip)) return;
    ms_frame_t f;
    _ms_symbolize(ip[0], &f, true);
    frame_json(b, &f);
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
            _ms_bprintf(b, "global %s", r->symbol);
            if (r->offset) _ms_bprintf(b, "+%lu", (unsigned long)r->offset);
            _ms_bprintf(b, " in %s", r->module);
        } else if (r->module) _ms_bprintf(b, "data of %s at %p", r->module, (void *)it->from);
        else _ms_bprintf(b, "anonymous memory at %p", (void *)it->from);
        break;
    case MS_ROOT_STACK:
        _ms_bprintf(b, "thread %d's stack", r->tid);
        if (r->function) {
            _ms_bprintf(b, " in %s", r->function);
            if (r->file) _ms_bprintf(b, " (%s:%d)", _ms_base_name(r->file), r->line);
        }
        break;
    case MS_ROOT_REGS: _ms_bprintf(b, "thread %d's registers", r->tid); break;
    case MS_ROOT_TLS:
        _ms_bprintf(b, "thread %d's thread-local ", r->tid);
        if (r->symbol) {
            _ms_bprintf(b, "%s", r->symbol);
            if (r->offset) _ms_bprintf(b, "+%lu", (unsigned long)r->offset);
        } else _ms_bprintf(b, "storage");
        if (r->module) _ms_bprintf(b, " in %s", r->module);
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
            if (j + 1 == depth) _ms_bprintf(b, "%s  -> ... %u more blocks\n", lead, n - depth);
            continue;
        }
        const ms_leak_item_t *h = &items[path[j]];
        const ms_leak_item_t *next = j + 1 < n ? &items[path[j + 1]] : &items[i];
        _ms_bprintf(b, "%s  -> %p", lead, (void *)(h->addr + h->objoff));
        if (h->into) _ms_bprintf(b, "%c%ld", into_of(h) < 0 ? '-' : '+', labs(into_of(h)));
        _ms_bprintf(b, " (");
        if (h->gctype) _ms_bprintf(b, "%s object, ", type_name(h->gctype));
        _ms_bprintf(b, "%llu bytes, allocated at ", (unsigned long long)h->size);
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
    gs->cap = 64;
    while (gs->cap < n * 2 + 2) gs->cap *= 2;
    gs->g = _ms_meta_alloc(gs->cap * sizeof *gs->g);
    if (!gs->g) return false;
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
        group_t *g = group_of(gs, it->stack, it->kind, it->gctype);
        g->blocks += w;
        g->bytes += w * (double)it->size;
        g->indirect += w * (double)it->indirect;
        if (depth && stk && why_wanted(it->kind) && (!g->why || g->why_depth > 0)) {   /* the nearest to a root */
            uint32_t d = why_distance(items, n, depth, stk, i);
            if (!g->why || d < g->why_depth) { g->why = i + 1; g->why_depth = d; }
        }
    }
    if (depth) _ms_meta_free(depth, n * sizeof *depth);
    if (stk) _ms_meta_free(stk, n * sizeof *stk);
    /* compact and sort: kind first, then bytes, largest first */
    size_t k = 0;
    for (size_t i = 0; i < gs->cap; i++)
        if (gs->g[i].blocks > 0) gs->g[k++] = gs->g[i];
    gs->n = k;
    for (size_t gap = k / 2; gap; gap /= 2)        /* shell sort: no allocation */
        for (size_t i = gap; i < k; i++) {
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

/* ---- output ------------------------------------------------------------------------- */


static void program_name(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
}

static void text_frame(ms_buf_t *b, int pid, unsigned i, const ms_frame_t *f)
{
    _ms_bprintf(b, "==%d==    %s %p: ", pid, i ? "by" : "at", (void *)f->ip);
    frame_text(b, f);
    _ms_bprintf(b, "\n");
}

static void print_stack_text(ms_buf_t *b, int pid, uint32_t stack)
{
    const uintptr_t *ip;
    unsigned n = _ms_stack_get(stack, &ip);
    if (!n) {
        _ms_bprintf(b, "==%d==    (no stack%s)\n", pid, stack == MS_STACK_OOM ? ": out of memory" : " recorded");
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        ms_frame_t f;
        _ms_symbolize(ip[i], &f, true);
        text_frame(b, pid, i, &f);
        if (f.function && (strcmp(f.function, "main") == 0 || strcmp(f.function, "start_thread") == 0))
            break;
    }
}


static void write_text(ms_buf_t *b, const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp,
                       unsigned unparked, const char *why)
{
    int pid = (int)getpid();
    char prog[1024];
    program_name(prog, sizeof prog);
    _ms_bprintf(b, "==%d== memshim leak report (%s) for %s\n", pid, why, prog);
    if (_ms_opt.sample)
        _ms_bprintf(b, "==%d== sampling one allocation per %llu bytes on average: figures are estimates\n",
                    pid, (unsigned long long)_ms_opt.sample);
    if (unparked)
        _ms_bprintf(b, "==%d== %u thread(s) could not be stopped for the scan; their stacks were scanned whole\n",
                    pid, unparked);
    unsigned shown = 0, total = 0;
    for (size_t i = 0; i < gs->n; i++)
        if (!gs->g[i].suppressed && (_ms_opt.show >> gs->g[i].kind & 1)) total++;
    for (size_t i = 0; i < gs->n; i++) {
        const group_t *g = &gs->g[i];
        if (g->suppressed || !(_ms_opt.show >> g->kind & 1)) continue;
        shown++;
        _ms_bprintf(b, "==%d==\n", pid);
        if (g->kind == MS_KIND_DEFINITE && g->indirect > 0)
            _ms_bprintf(b, "==%d== %llu (%llu direct, %llu indirect) bytes in %llu blocks are %s in loss record %u of %u\n",
                        pid, _ms_round(g->bytes + g->indirect), _ms_round(g->bytes), _ms_round(g->indirect),
                        _ms_round(g->blocks), kind_text[g->kind], shown, total);
        else
            _ms_bprintf(b, "==%d== %llu bytes in %llu blocks are %s in loss record %u of %u\n",
                        pid, _ms_round(g->bytes), _ms_round(g->blocks), kind_text[g->kind], shown, total);
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
    _ms_bprintf(b, "==%d==\n==%d== LEAK SUMMARY:\n", pid, pid);
    static const char *pad[MS_NKINDS] = { "", "", "  ", "" };
    for (unsigned k = 0; k < MS_NKINDS; k++)
        _ms_bprintf(b, "==%d==    %s%s: %llu bytes in %llu blocks\n", pid, pad[k], kind_text[k],
                    _ms_round(gs->total_bytes[k]), _ms_round(gs->total_blocks[k]));
    _ms_bprintf(b, "==%d==         suppressed: %llu bytes in %llu blocks\n", pid,
                _ms_round(gs->supp_bytes), _ms_round(gs->supp_blocks));
    _ms_supp_used(sp, b, pid, false);
    if (gs->inherited_blocks > 0)
        _ms_bprintf(b, "==%d== %llu bytes in %llu blocks allocated by the parent before fork() are left "
                    "out (the parent's report counts them)\n", pid,
                    _ms_round(gs->inherited_bytes), _ms_round(gs->inherited_blocks));
    if (!(_ms_opt.show >> MS_KIND_REACHABLE & 1) && gs->total_blocks[MS_KIND_REACHABLE] > 0)
        _ms_bprintf(b, "==%d== Reachable blocks are not shown: MEMSHIM_SHOW=all to see them\n", pid);
    cycles_text(b, pid, cy);
}


static void write_json(ms_buf_t *b, const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp,
                       unsigned unparked, const char *why)
{
    char prog[1024];
    program_name(prog, sizeof prog);
    _ms_bprintf(b, "{\"format\": \"memshim-leaks\", \"version\": 1, \"memshim\": \"%s\",\n \"pid\": %d, \"program\": ",
                MEMSHIM_VERSION, (int)getpid());
    _ms_json_str(b, prog);
    _ms_bprintf(b, ", \"when\": \"%s\", \"sample_interval\": %llu, \"threads_not_stopped\": %u,\n \"summary\": {",
                why, (unsigned long long)_ms_opt.sample, unparked);
    for (unsigned k = 0; k < MS_NKINDS; k++)
        _ms_bprintf(b, "%s\"%s\": {\"blocks\": %llu, \"bytes\": %llu}", k ? ", " : "", kind_name[k],
                    _ms_round(gs->total_blocks[k]), _ms_round(gs->total_bytes[k]));
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
    cycles_json(b, cy);
    _ms_bprintf(b, "}\n");
}

int _ms_leak_forked;

static void write_report(int fd, const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp,
                         unsigned unparked, const char *why)
{
    char mem[8192];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, fd);
    if (_ms_opt.json) write_json(&b, gs, cy, sp, unparked, why); else write_text(&b, gs, cy, sp, unparked, why);
    _ms_buf_flush(&b);
}

/* To MEMSHIM_REPORT, or standard error; the file rules are out.c's. */
static void emit(const groups_t *gs, const cycles_t *cy, const ms_supps_t *sp, unsigned unparked, const char *why)
{
    int saved = errno;
    ms_out_t o;
    _ms_out_open(&o, "MEMSHIM_REPORT", _ms_opt.report, _ms_leak_forked ? MS_OUT_CHILD_SUFFIX : 0);
    write_report(o.fd, gs, cy, sp, unparked, why);
    if (!_ms_out_commit(&o)) {
        _ms_out_open(&o, "MEMSHIM_REPORT", NULL, 0);      /* the rename failed: stderr */
        write_report(o.fd, gs, cy, sp, unparked, why);
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

void _ms_leak_report_fork_child(void) { pthread_mutex_init(&report_lock, NULL); exit_done = -1; }

static int leak_report_locked(int at_exit, const ms_scan_self_t *self);

int _ms_leak_report(int at_exit, const ms_scan_self_t *self)
{
    if (!_ms_track_on) return 0;
    int done = __atomic_load_n(&exit_done, __ATOMIC_ACQUIRE);
    if (done >= 0) return done;
    pthread_mutex_lock(&report_lock);
    if ((done = __atomic_load_n(&exit_done, __ATOMIC_ACQUIRE)) >= 0) {
        pthread_mutex_unlock(&report_lock);
        return done;
    }
    int leaks = leak_report_locked(at_exit, self);
    if (at_exit) __atomic_store_n(&exit_done, leaks, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&report_lock);
    return leaks;
}

static int leak_report_locked(int at_exit, const ms_scan_self_t *self)
{
    ms_leak_item_t *items;
    unsigned unparked;
    size_t cap;
    size_t n = _ms_scan_leaks(&items, &cap, &unparked, self);
    if (!items) { _ms_message("leak check failed: out of memory for the scan"); return 0; }
    _ms_busy++;
    _ms_symbolize_refresh();
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
        cycles_t cy;
        cycles_find(&cy);
        bool shown = cy.nobj > 0;
        for (size_t i = 0; i < gs.n; i++)
            shown |= !gs.g[i].suppressed && (_ms_opt.show >> gs.g[i].kind & 1);
        /* stderr stays quiet for a clean program; a named file is always written */
        if (shown || _ms_names_file(_ms_opt.report) || !at_exit)
            emit(&gs, &cy, sp, unparked, at_exit ? "at exit" : "snapshot");
        cycles_free(&cy);
        _ms_supp_free(sp);
        _ms_meta_free(gs.g, gs.cap * sizeof *gs.g);
    }
    _ms_leak_items_free(items, cap);
    _ms_busy--;
    return leaks;
}

/* memshim_why: one block's retention path, or what it is, to fd. */
int _ms_why(const void *ptr, int fd, const ms_scan_self_t *self)
{
    if (!_ms_track_on) { errno = ENOTSUP; return -1; }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY) { errno = EBADF; return -1; }
    pthread_mutex_lock(&report_lock);
    ms_leak_item_t *items;
    unsigned unparked;
    size_t cap;
    size_t n = _ms_scan_leaks(&items, &cap, &unparked, self);
    if (!items) {
        pthread_mutex_unlock(&report_lock);
        errno = ENOMEM;
        return -1;
    }
    _ms_busy++;
    _ms_symbolize_refresh();
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
        _ms_bprintf(&b, "%llu bytes, allocated at ", (unsigned long long)it->size);
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
    _ms_busy--;
    pthread_mutex_unlock(&report_lock);
    return 0;
}
