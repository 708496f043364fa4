/* report.c - the leak report: live blocks grouped by kind and allocation
 * stack, largest first, each with a symbolized stack, then a summary of the
 * four kinds.  Text in the shape valgrind users know, or JSON (the schema
 * is in memshim(7)).  Written to standard error (memshim's own copy of it,
 * so a program that closed fd 2 still gets its report) or to MEMSHIM_REPORT,
 * by out.c's rules for output files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
} group_t;

typedef struct {
    group_t *g;
    size_t   n, cap;
    double   total_blocks[MS_NKINDS], total_bytes[MS_NKINDS];
    double   supp_blocks, supp_bytes;
    double   inherited_blocks, inherited_bytes;   /* forked child: the parent's */
    size_t   raw_items;
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

static bool build_groups(groups_t *gs, const ms_leak_item_t *items, size_t n)
{
    memset(gs, 0, sizeof *gs);
    gs->cap = 64;
    while (gs->cap < n * 2 + 2) gs->cap *= 2;
    gs->g = _ms_meta_alloc(gs->cap * sizeof *gs->g);
    if (!gs->g) return false;
    gs->raw_items = n;
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
    }
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

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static void program_name(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
}

static void text_frame(ms_buf_t *b, int pid, unsigned i, const ms_frame_t *f)
{
    _ms_bprintf(b, "==%d==    %s %p: %s", pid, i ? "by" : "at", (void *)f->ip,
                f->function ? f->function : "???");
    if (f->file) _ms_bprintf(b, " (%s:%d)", base_name(f->file), f->line);
    else if (f->module) _ms_bprintf(b, " (in %s+0x%lx)", f->module, (unsigned long)f->offset);
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

static unsigned long long rnd(double x) { return (unsigned long long)(x + 0.5); }

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
                        pid, rnd(g->bytes + g->indirect), rnd(g->bytes), rnd(g->indirect),
                        rnd(g->blocks), kind_text[g->kind], shown, total);
        else
            _ms_bprintf(b, "==%d== %llu bytes in %llu blocks are %s in loss record %u of %u\n",
                        pid, rnd(g->bytes), rnd(g->blocks), kind_text[g->kind], shown, total);
        if (g->gctype) _ms_bprintf(b, "==%d==    collector objects of type %s\n", pid, type_name(g->gctype));
        print_stack_text(b, pid, g->stack);
        if (_ms_opt.gen_suppressions) _ms_supp_generate(b, g->stack, g->kind, shown);
    }
    _ms_bprintf(b, "==%d==\n==%d== LEAK SUMMARY:\n", pid, pid);
    static const char *pad[MS_NKINDS] = { "", "", "  ", "" };
    for (unsigned k = 0; k < MS_NKINDS; k++)
        _ms_bprintf(b, "==%d==    %s%s: %llu bytes in %llu blocks\n", pid, pad[k], kind_text[k],
                    rnd(gs->total_bytes[k]), rnd(gs->total_blocks[k]));
    _ms_bprintf(b, "==%d==         suppressed: %llu bytes in %llu blocks\n", pid,
                rnd(gs->supp_bytes), rnd(gs->supp_blocks));
    _ms_supp_used(sp, b, pid, false);
    if (gs->inherited_blocks > 0)
        _ms_bprintf(b, "==%d== %llu bytes in %llu blocks allocated by the parent before fork() are left "
                    "out (the parent's report counts them)\n", pid,
                    rnd(gs->inherited_bytes), rnd(gs->inherited_blocks));
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
                    rnd(gs->total_blocks[k]), rnd(gs->total_bytes[k]));
    _ms_bprintf(b, ", \"suppressed\": {\"blocks\": %llu, \"bytes\": %llu}, "
                "\"inherited\": {\"blocks\": %llu, \"bytes\": %llu}},\n \"leaks\": [",
                rnd(gs->supp_blocks), rnd(gs->supp_bytes), rnd(gs->inherited_blocks), rnd(gs->inherited_bytes));
    bool first = true;
    for (size_t i = 0; i < gs->n; i++) {
        const group_t *g = &gs->g[i];
        if (g->suppressed || !(_ms_opt.show >> g->kind & 1)) continue;
        _ms_bprintf(b, "%s\n  {\"kind\": \"%s\", \"blocks\": %llu, \"bytes\": %llu", first ? "" : ",",
                    kind_name[g->kind], rnd(g->blocks), rnd(g->bytes));
        if (g->kind == MS_KIND_DEFINITE)
            _ms_bprintf(b, ", \"indirect_bytes\": %llu", rnd(g->indirect));
        if (g->gctype) { _ms_bprintf(b, ", \"type\": "); _ms_json_str(b, type_name(g->gctype)); }
        _ms_bprintf(b, ", \"stack\": [");
        first = false;
        const uintptr_t *ip;
        unsigned n = _ms_stack_get(g->stack, &ip);
        for (unsigned j = 0; j < n; j++) {
            ms_frame_t f;
            _ms_symbolize(ip[j], &f, true);
            _ms_bprintf(b, "%s{\"ip\": \"%p\"", j ? ", " : "", (void *)f.ip);
            if (f.function) { _ms_bprintf(b, ", \"function\": "); _ms_json_str(b, f.function); }
            if (f.file) { _ms_bprintf(b, ", \"file\": "); _ms_json_str(b, f.file); _ms_bprintf(b, ", \"line\": %d", f.line); }
            if (f.module) { _ms_bprintf(b, ", \"module\": "); _ms_json_str(b, f.module); }
            _ms_bprintf(b, "}");
        }
        _ms_bprintf(b, "]}");
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
            if (g->kind != MS_KIND_REACHABLE) leaks += (int)rnd(g->blocks);
        }
        cycles_t cy;
        cycles_find(&cy);
        bool shown = cy.nobj > 0;
        for (size_t i = 0; i < gs.n; i++)
            shown |= !gs.g[i].suppressed && (_ms_opt.show >> gs.g[i].kind & 1);
        /* stderr stays quiet for a clean program; a named file is always written */
        if (shown || _ms_opt.report[0] || !at_exit)
            emit(&gs, &cy, sp, unparked, at_exit ? "at exit" : "snapshot");
        cycles_free(&cy);
        _ms_supp_free(sp);
        _ms_meta_free(gs.g, gs.cap * sizeof *gs.g);
    }
    _ms_leak_items_free(items, cap);
    _ms_busy--;
    return leaks;
}
