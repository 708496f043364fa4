/* leaks.c - the one reader of leak reports: the JSON the library writes with
 * MEMSHIM_REPORT_FORMAT=json (format in memshim(7)), read with libjansson
 * into the model of leaks.h and checked field by field, so a malformed file
 * earns one line naming the file and the offending field, never a crash.
 * `report` and `diff` read the records and summary, `graph` the cycles (a
 * report of cycles alone will do), `run` the summary of every report of the
 * run (quietly; a text report gives its summary lines). */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaks.h"

const char *const ms_kind_key[4] = { "definitely_lost", "indirectly_lost", "possibly_lost", "still_reachable" };
const char *const ms_kind_words[4] = { "definitely lost", "indirectly lost", "possibly lost", "still reachable" };


/* ---- fields ----------------------------------------------------------------- */

/* A name that must be there: a non-empty string. */
static bool get_name(json_t *obj, const char *key, const char *where, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return ms_fail("%s: no \"%s\"", where, key);
    if (!json_is_string(v) || !*json_string_value(v)) return ms_fail("%s.%s: expected a non-empty string", where, key);
    *out = json_string_value(v);
    return true;
}

/* An integer of at least min (0 or LLONG_MIN), dflt when absent or null. */
static bool get_int(json_t *obj, const char *key, const char *where, long long min, long long dflt, long long *out)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return ms_fail("%s.%s: expected %s", where, key, min == 0 ? "a non-negative integer" : "an integer");
    *out = json_integer_value(v);
    return true;
}
#define ANY_INT LLONG_MIN

static json_t *get_array(json_t *obj, const char *key, const char *where)
{
    json_t *v = json_object_get(obj, key);
    if (!v) { ms_fail("%s: no \"%s\" array", where, key); return NULL; }
    if (!json_is_array(v)) { ms_fail("%s.%s: expected an array", where, key); return NULL; }
    return v;
}

/* Fields that only inform (who, when): taken when they have their type. */
static const char *maybe_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && json_is_string(v) ? json_string_value(v) : NULL;
}

static long long maybe_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && json_is_integer(v) ? json_integer_value(v) : -1;
}

static void *array_of(size_t n, size_t size) { return calloc(n ? n : 1, size); }

/* ---- records ------------------------------------------------------------------ */

/* An optional array member: *n items of size bytes, each checked by one. */
typedef bool (*parse_fn)(json_t *v, const char *where, void *out);
static bool parse_list(json_t *arr, const char *where, const char *member, size_t size, parse_fn one,
                       void **items, size_t *n)
{
    if (!arr || json_is_null(arr)) return true;
    if (!json_is_array(arr)) return ms_fail("%s.%s: expected an array", where, member);
    *n = json_array_size(arr);
    if (!(*items = array_of(*n, size))) return ms_fail("out of memory");
    for (size_t k = 0; k < *n; k++) {
        char at[192];
        snprintf(at, sizeof at, "%s.%s[%zu]", where, member, k);
        if (!one(json_array_get(arr, k), at, (char *)*items + k * size)) return false;
    }
    return true;
}

static bool parse_frame(json_t *f, const char *where, void *p)
{
    frame_t *out = p;
    memset(out, 0, sizeof *out);
    if (!json_is_object(f)) return ms_fail("%s: expected an object", where);
    if (!ms_json_string(f, "ip", where, false, &out->ip) ||
        !ms_json_string(f, "function", where, false, &out->function) ||
        !ms_json_string(f, "file", where, false, &out->file) ||
        !ms_json_string(f, "module", where, false, &out->module)) return false;
    json_t *line = json_object_get(f, "line");
    if (line && !json_is_null(line)) {
        if (!json_is_integer(line) || json_integer_value(line) < 0)
            return ms_fail("%s.line: expected a non-negative integer", where);
        out->line = json_integer_value(line);
    }
    if (!out->ip && !out->function) return ms_fail("%s: neither \"ip\" nor \"function\"", where);
    return true;
}

/* why.root: an object, or null when the path was too long to follow. */
static bool parse_root(json_t *root, const char *at, why_t *o)
{
    if (!root || json_is_null(root)) return true;
    char rw[192];
    snprintf(rw, sizeof rw, "%s.root", at);
    if (!json_is_object(root)) return ms_fail("%s: expected an object or null", rw);
    o->rooted = true;
    return ms_json_string(root, "kind", rw, true, &o->kind) && ms_json_string(root, "addr", rw, false, &o->addr) &&
           ms_json_string(root, "symbol", rw, false, &o->symbol) && ms_json_string(root, "module", rw, false, &o->module) &&
           ms_json_string(root, "function", rw, false, &o->function) && ms_json_string(root, "file", rw, false, &o->file) &&
           get_int(root, "offset", rw, ANY_INT, 0, &o->offset) && get_int(root, "line", rw, ANY_INT, 0, &o->line) &&
           get_int(root, "thread", rw, ANY_INT, -1, &o->thread);
}

static bool parse_hop(json_t *h, const char *hw, void *p)
{
    hop_t *x = p;
    if (!json_is_object(h)) return ms_fail("%s: expected an object", hw);
    return ms_json_string(h, "addr", hw, true, &x->addr) && ms_json_count(h, "size", hw, false, &x->size) &&
           get_int(h, "offset", hw, ANY_INT, 0, &x->offset) && get_int(h, "into", hw, ANY_INT, 0, &x->into) &&
           ms_json_string(h, "type", hw, false, &x->type) && ms_json_string(h, "function", hw, false, &x->site.function) &&
           ms_json_string(h, "file", hw, false, &x->site.file) && ms_json_string(h, "module", hw, false, &x->site.module) &&
           get_int(h, "line", hw, ANY_INT, 0, &x->site.line);
}

static bool parse_block(json_t *block, const char *at, why_t *o)
{
    if (!block || json_is_null(block)) return true;
    char bw[192];
    snprintf(bw, sizeof bw, "%s.block", at);
    if (!json_is_object(block)) return ms_fail("%s: expected an object", bw);
    return ms_json_string(block, "addr", bw, true, &o->block) && ms_json_count(block, "size", bw, false, &o->block_size) &&
           get_int(block, "into", bw, ANY_INT, 0, &o->block_into);
}

/* A record's "why" (memshim(7)): absent, or checked field by field. */
static bool parse_why(json_t *w, const char *where, why_t *o)
{
    memset(o, 0, sizeof *o);
    o->thread = -1;
    if (!w || json_is_null(w)) return true;
    char at[160];
    snprintf(at, sizeof at, "%s.why", where);
    if (!json_is_object(w)) return ms_fail("%s: expected an object", at);
    o->present = true;
    void *hops = NULL;
    bool ok = parse_root(json_object_get(w, "root"), at, o) &&
              parse_list(json_object_get(w, "hops"), at, "hops", sizeof *o->hops, parse_hop, &hops, &o->nhops);
    o->hops = hops;
    return ok && ms_json_count(w, "more", at, false, &o->more) && parse_block(json_object_get(w, "block"), at, o);
}

static bool parse_leak(json_t *l, size_t i, leak_t *o)
{
    char where[96];
    void *frames = NULL;
    o->order = i;
    snprintf(where, sizeof where, "leaks[%zu]", i);
    if (!json_is_object(l)) return ms_fail("%s: expected an object", where);
    bool ok = ms_json_string(l, "kind", where, true, &o->kind) && ms_json_count(l, "bytes", where, true, &o->bytes) &&
              ms_json_count(l, "blocks", where, false, &o->blocks) &&
              parse_list(json_object_get(l, "stack"), where, "stack", sizeof *o->frames, parse_frame, &frames,
                         &o->nframes);
    o->frames = frames;
    return ok && parse_why(json_object_get(l, "why"), where, &o->why) &&
           ms_json_string(l, "change", where, false, &o->change);
}

static bool parse_leaks(report_t *r)
{
    json_t *leaks = json_object_get(r->root, "leaks");
    if (!leaks) return ms_fail("not a memshim leak report (no \"leaks\" array)");
    if (!json_is_array(leaks)) return ms_fail("\"leaks\": expected an array");
    r->nleaks = json_array_size(leaks);
    if (!(r->leaks = array_of(r->nleaks, sizeof *r->leaks))) return ms_fail("out of memory");
    for (size_t i = 0; i < r->nleaks; i++)
        if (!parse_leak(json_array_get(leaks, i), i, &r->leaks[i])) return false;
    return true;
}

/* ---- totals ------------------------------------------------------------------- */

static total_t *total_of(report_t *r, const char *kind)
{
    for (size_t i = 0; i < r->ntotals; i++)
        if (strcmp(r->totals[i].kind, kind) == 0) return &r->totals[i];
    if (r->ntotals == MAX_KINDS) return NULL;
    total_t *t = &r->totals[r->ntotals++];
    t->kind = kind;
    t->blocks = t->bytes = 0;
    return t;
}

const total_t *ms_report_total(const report_t *r, const char *kind)
{
    for (size_t i = 0; i < r->ntotals; i++)
        if (strcmp(r->totals[i].kind, kind) == 0) return &r->totals[i];
    return NULL;
}

/* The summary's totals of the known kinds, in order; kinds the summary does
 * not give are summed from the records. */
static bool parse_summary(report_t *r)
{
    json_t *summary = json_object_get(r->root, "summary");
    char where[96];
    if (summary && !json_is_null(summary)) {
        if (!json_is_object(summary)) return ms_fail("\"summary\": expected an object");
        r->has_summary = true;
        for (size_t i = 0; i < 4; i++) {
            json_t *s = json_object_get(summary, ms_kind_key[i]);
            if (!s) continue;
            snprintf(where, sizeof where, "summary.%s", ms_kind_key[i]);
            if (!json_is_object(s)) return ms_fail("%s: expected an object", where);
            total_t *t = total_of(r, ms_kind_key[i]);
            if (!ms_json_count(s, "blocks", where, false, &t->blocks) ||
                !ms_json_count(s, "bytes", where, true, &t->bytes)) return false;
        }
        json_t *heur = json_object_get(summary, "reachable_via_heuristic"), *h;
        const char *name;
        if (heur && !json_is_object(heur)) return ms_fail("summary.reachable_via_heuristic: expected an object");
        json_object_foreach(heur, name, h) {
            snprintf(where, sizeof where, "summary.reachable_via_heuristic.%.40s", name);
            if (!json_is_object(h)) return ms_fail("%s: expected an object", where);
            total_t t = { name, 0, 0 };
            if (!ms_json_count(h, "blocks", where, true, &t.blocks) ||
                !ms_json_count(h, "bytes", where, true, &t.bytes)) return false;
            if (t.blocks && r->nheur < MAX_HEURISTICS) r->heur[r->nheur++] = t;
        }
    }
    for (size_t i = 0; i < r->nleaks; i++) {
        bool in_summary = false;
        if (r->has_summary)
            for (size_t k = 0; k < 4; k++)
                in_summary |= strcmp(r->leaks[i].kind, ms_kind_key[k]) == 0 &&
                              json_object_get(summary, ms_kind_key[k]);
        if (in_summary) continue;
        total_t *t = total_of(r, r->leaks[i].kind);
        if (!t) continue;
        t->blocks += r->leaks[i].blocks;
        t->bytes += r->leaks[i].bytes;
    }
    return true;
}

/* ---- cycles ------------------------------------------------------------------- */

/* Addresses, sorted, to find an edge's ends and duplicates. */
typedef struct { const char *addr; size_t obj; } addr_ix;
static int by_addr(const void *a, const void *b)
{
    return strcmp(((const addr_ix *)a)->addr, ((const addr_ix *)b)->addr);
}

static bool find_obj(const addr_ix *ix, size_t n, const char *addr, size_t *out)
{
    addr_ix key = { addr, 0 };
    const addr_ix *hit = bsearch(&key, ix, n, sizeof *ix, by_addr);
    if (!hit) return false;
    *out = hit->obj;
    return true;
}

/* Sizes first (each group an object with its two arrays), then the arrays. */
static bool size_cycles(report_t *r, json_t *cycles, addr_ix **ix)
{
    size_t ng = json_array_size(cycles), no = 0, ne = 0;
    char where[160];
    for (size_t g = 0; g < ng; g++) {
        json_t *grp = json_array_get(cycles, g), *objs, *edges;
        snprintf(where, sizeof where, "cycles[%zu]", g);
        if (!json_is_object(grp)) return ms_fail("%s: expected an object", where);
        if (!(objs = get_array(grp, "objects", where)) || !(edges = get_array(grp, "edges", where))) return false;
        no += json_array_size(objs);
        ne += json_array_size(edges);
    }
    r->groups = array_of(ng, sizeof *r->groups);
    r->objs = array_of(no, sizeof *r->objs);
    r->edges = array_of(ne, sizeof *r->edges);
    *ix = array_of(no, sizeof **ix);
    return r->groups && r->objs && r->edges && *ix ? true : ms_fail("out of memory");
}

static bool parse_object(report_t *r, json_t *o, const char *where, addr_ix *ix)
{
    gobj_t *O = &r->objs[r->nobjs];
    ggroup_t *G = &r->groups[r->ngroups - 1];
    if (!json_is_object(o)) return ms_fail("%s: expected an object", where);
    if (!get_name(o, "addr", where, &O->addr) || !get_name(o, "type", where, &O->type) ||
        !ms_json_count(o, "size", where, true, &O->size) || !ms_json_string(o, "function", where, false, &O->function) ||
        !ms_json_string(o, "file", where, false, &O->file) || !get_int(o, "line", where, 0, 0, &O->line) ||
        !get_int(o, "refcount", where, 0, -1, &O->refcount)) return false;
    O->group = r->ngroups - 1;
    ix[r->nobjs] = (addr_ix){ O->addr, r->nobjs };
    r->nobjs++;
    G->nobj++;
    G->bytes = G->bytes + O->size < G->bytes ? UINT64_MAX : G->bytes + O->size;
    return true;
}

/* cycles[g]: its number (once in the report), kind, count and objects. */
static bool parse_group(report_t *r, json_t *grp, size_t g, addr_ix *ix)
{
    ggroup_t *G = &r->groups[r->ngroups++];
    char where[160];
    snprintf(where, sizeof where, "cycles[%zu]", g);
    uint64_t num;
    const char *kind = NULL;
    if (!ms_json_count(grp, "group", where, true, &num)) return false;
    if (num > (uint64_t)1 << 53) return ms_fail("%s.group: %llu is out of range", where, (unsigned long long)num);
    G->number = (long long)num;
    G->count = 1;
    if (!ms_json_string(grp, "kind", where, false, &kind) ||
        (json_object_get(grp, "count") && !ms_json_count(grp, "count", where, true, &G->count))) return false;
    G->lost = kind && strcmp(kind, "lost_blocks") == 0;
    for (size_t k = 0; k < g; k++)
        if (r->groups[k].number == G->number) return ms_fail("%s.group: group %lld appears twice", where, G->number);
    G->first_obj = r->nobjs;
    json_t *objs = json_object_get(grp, "objects");
    for (size_t i = 0; i < json_array_size(objs); i++) {
        snprintf(where, sizeof where, "cycles[%zu].objects[%zu]", g, i);
        if (!parse_object(r, json_array_get(objs, i), where, ix)) return false;
    }
    return true;
}

static bool check_addrs(report_t *r, addr_ix *ix)
{
    qsort(ix, r->nobjs, sizeof *ix, by_addr);
    for (size_t i = 1; i < r->nobjs; i++)
        if (strcmp(ix[i - 1].addr, ix[i].addr) == 0) {
            size_t o = ix[i].obj > ix[i - 1].obj ? ix[i].obj : ix[i - 1].obj, g = r->objs[o].group;
            return ms_fail("cycles[%zu].objects[%zu].addr: %s appears twice", g, o - r->groups[g].first_obj,
                        r->objs[o].addr);
        }
    return true;
}

/* cycles[g].edges: each from and to one of the group's own objects. */
static bool parse_edges(report_t *r, json_t *edges, size_t g, const addr_ix *ix)
{
    ggroup_t *G = &r->groups[g];
    static const char *const names[2] = { "from", "to" };
    char where[160];
    G->first_edge = r->nedges;
    for (size_t i = 0; i < json_array_size(edges); i++) {
        json_t *e = json_array_get(edges, i);
        snprintf(where, sizeof where, "cycles[%zu].edges[%zu]", g, i);
        if (!json_is_object(e)) return ms_fail("%s: expected an object", where);
        const char *ends[2];
        size_t at[2];
        for (int k = 0; k < 2; k++) {
            if (!get_name(e, names[k], where, &ends[k])) return false;
            if (!find_obj(ix, r->nobjs, ends[k], &at[k]) || r->objs[at[k]].group != g)
                return ms_fail("%s.%s: %s is not one of group %lld's objects", where, names[k], ends[k], G->number);
        }
        r->edges[r->nedges++] = (gedge_t){ at[0], at[1] };
        G->nedge++;
    }
    return true;
}

static bool parse_cycles(report_t *r)
{
    json_t *cycles = json_object_get(r->root, "cycles");
    if (!cycles || json_is_null(cycles)) return true;
    if (!json_is_array(cycles)) return ms_fail("\"cycles\": expected an array");
    addr_ix *ix = NULL;
    bool ok = size_cycles(r, cycles, &ix);
    for (size_t g = 0; ok && g < json_array_size(cycles); g++)
        ok = parse_group(r, json_array_get(cycles, g), g, ix);
    ok = ok && check_addrs(r, ix);
    for (size_t g = 0; ok && g < r->ngroups; g++)
        ok = parse_edges(r, json_object_get(json_array_get(cycles, g), "edges"), g, ix);
    free(ix);
    return ok;
}

/* ---- the report ------------------------------------------------------------------ */

/* Who and when; with the records, "program" and "since" are checked too
 * (graph draws reports whose other members it does not read). */
static bool parse_header(report_t *r, bool strict)
{
    r->pid = maybe_int(r->root, "pid");
    r->when = maybe_string(r->root, "when");
    const char *sig = maybe_string(r->root, "signal");
    snprintf(r->signal, sizeof r->signal, "%s", sig ? sig : "");
    r->stack_overflow = json_is_true(json_object_get(r->root, "stack_overflow"));
    r->heap_errors = maybe_int(r->root, "heap_errors_total");
    if (strict)
        return ms_json_string(r->root, "program", "report", false, &r->program) &&
               get_int(r->root, "since", "report", ANY_INT, -1, &r->since);
    r->program = maybe_string(r->root, "program");
    r->since = -1;
    return true;
}

static bool parse_report(report_t *r, unsigned what)
{
    bool leaks = what & MS_LOAD_LEAKS;
    if (!json_is_object(r->root)) return ms_fail("not a memshim leak report (expected a JSON object)");
    if (!parse_header(r, leaks)) return false;
    if (leaks && !(parse_leaks(r) && parse_summary(r))) return false;
    if (!leaks && !json_object_get(r->root, "leaks") && !json_object_get(r->root, "cycles"))
        return ms_fail("not a memshim leak report (no \"leaks\" array)");
    return !(what & MS_LOAD_CYCLES) || parse_cycles(r);
}

static void report_init(report_t *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->pid = r->since = r->heap_errors = -1;
}

void ms_report_free(report_t *r)
{
    for (size_t i = 0; i < r->nleaks; i++) { free(r->leaks[i].frames); free(r->leaks[i].why.hops); }
    free(r->leaks);
    free(r->objs);
    free(r->edges);
    free(r->groups);
    json_decref(r->root);
    free(r->text);
    const char *path = r->path;                  /* kept: a report of the run is still named */
    report_init(r, path);
}

bool ms_report_load(const char *path, unsigned what, report_t *r)
{
    bool quiet = what & MS_LOAD_QUIET;
    json_error_t e;
    report_init(r, path);
    if (!(r->root = quiet ? json_load_file(path, 0, &e) : ms_load_json(path))) return false;
    if (!parse_report(r, what)) {
        if (!quiet) ms_warn("%s: %s", path, ms_failure);
        ms_report_free(r);
        return false;
    }
    return true;
}

/* ---- a text report's summary ---------------------------------------------------------- */

/* One "==PID== ..." line: the header, a kind's total or the heap errors. */
static bool text_line(report_t *r, const char *line, uint64_t bytes[4], uint64_t blocks[4])
{
    int pid, off = 0, wl = 0;
    if (sscanf(line, "==%d==%n", &pid, &off) != 1 || !off) return false;
    const char *t = line + off;
    char when[32], kind[32];
    unsigned long long by, bl;
    long long n;
    if (sscanf(t, " memshim leak report (%31[^)]) for %n", when, &wl) == 1 && wl) {
        size_t wn = strlen(when) + 1, pn = strcspn(t + wl, "\n");
        char *text = malloc(wn + pn + 1);
        if (!text) return false;
        free(r->text);
        r->pid = pid;
        r->text = text;
        memcpy(text, when, wn);
        memcpy(text + wn, t + wl, pn);
        text[wn + pn] = 0;
        r->when = text;
        r->program = text + wn;
        return true;
    }
    /* with MEMSHIM_LEAK_SINCE each count is followed by its change: "9 (+4) bytes" */
    if (sscanf(t, " %31[a-z ]: %llu bytes in %llu block", kind, &by, &bl) == 3 ||
        sscanf(t, " %31[a-z ]: %llu byte in %llu block", kind, &by, &bl) == 3 ||
        sscanf(t, " %31[a-z ]: %llu (%*[-+0-9]) bytes in %llu (", kind, &by, &bl) == 3 ||
        sscanf(t, " %31[a-z ]: %llu (%*[-+0-9]) byte in %llu (", kind, &by, &bl) == 3)
        for (int k = 0; k < 4; k++)
            if (strcmp(kind, ms_kind_words[k]) == 0) { bytes[k] = by; blocks[k] = bl; }
    if (sscanf(t, " HEAP ERRORS: %lld", &n) == 1) r->heap_errors = n;
    if (sscanf(t, " the process ends on %15[A-Z0-9]", r->signal) == 1)   /* the signal, after an exit report */
        r->stack_overflow = strstr(t, ": its stack overflowed") != NULL;
    return false;
}

bool ms_report_load_text(const char *path, report_t *r)
{
    report_init(r, path);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[4096];
    bool any = false;
    uint64_t bytes[4] = { 0 }, blocks[4] = { 0 };
    while (fgets(line, sizeof line, f)) any |= text_line(r, line, bytes, blocks);
    fclose(f);
    if (r->heap_errors < 0 && any) r->heap_errors = 0;
    for (int k = 0; k < 4; k++) r->totals[k] = (total_t){ ms_kind_key[k], blocks[k], bytes[k] };
    r->ntotals = 4;
    r->has_summary = true;
    return any;
}
