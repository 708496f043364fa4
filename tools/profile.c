/* profile.c - heap profiles (MEMSHIM_PROFILE=FILE.json, format in
 * memshim(7); FILE.pb.gz through pprof.c): `memshim profile` prints the
 * views heaptrack_print and tracemalloc users expect (the sites by peak
 * bytes, by live bytes, by allocations, by temporaries, with stacks; the
 * size histogram; --diff OLD as tracemalloc's compare_to), `memshim
 * flame` draws one metric as a static SVG icicle graph. */
#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "memshim.h"

/* The figures of a site, in this order in every array below. */
enum { ALLOCS, ABYTES, TEMPS, TBYTES, LBLOCKS, LBYTES, PBLOCKS, PBYTES, NFIG };
static const char *const fig_name[NFIG] = {
    "allocations", "allocated_bytes", "temporary", "temporary_bytes",
    "live_blocks", "live_bytes", "peak_blocks", "peak_bytes" };

typedef struct { const char *ip, *function, *file, *module; long long line; } pframe_t;
typedef struct { uint64_t v[NFIG]; pframe_t *f; size_t nf; char *key; } psite_t;
typedef struct { uint64_t min, max, count; } bucket_t;
typedef struct {
    const char *path, *program, *when;
    json_t     *root;
    long long   pid;
    uint64_t    tot[NFIG], peak_ms;
    psite_t    *s;
    size_t      n;
    bucket_t   *h;
    size_t      nh;
} prof_t;


static bool get_figures(json_t *o, const char *where, uint64_t v[NFIG])
{
    for (int i = 0; i < NFIG; i++) if (!ms_json_count(o, fig_name[i], where, true, &v[i])) return false;
    return true;
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

/* A frame's short name: its function, else module@ip, else ip; cut to fit
 * between characters (cut in the middle of one, flame's SVG was invalid). */
static void frame_name(const pframe_t *f, char *buf, size_t cap)
{
    const char *ip = f->ip ? f->ip : "?", *name = f->function ? f->function : f->module ? base_name(f->module) : ip;
    size_t n = ms_utf8_prefix(name, cap - 1, SIZE_MAX);
    memcpy(buf, name, n);
    if (!f->function && f->module && n + 1 < cap - 1) {
        buf[n++] = '@';
        size_t k = ms_utf8_prefix(ip, cap - 1 - n, SIZE_MAX);
        memcpy(buf + n, ip, k);
        n += k;
    }
    buf[n] = 0;
}

/* What identifies a site across runs: its frames' names and lines. */
static char *site_key(const psite_t *s)
{
    size_t cap = 64 + s->nf * 300, len = 0;
    char *k = malloc(cap);
    if (!k) return NULL;
    k[0] = 0;
    for (size_t i = 0; i < s->nf; i++) {
        char name[256];
        frame_name(&s->f[i], name, sizeof name);
        len += (size_t)snprintf(k + len, cap - len, "%s%s:%s:%lld", i ? ";" : "", name,
                                s->f[i].file ? base_name(s->f[i].file) : "", s->f[i].line);
        if (len >= cap) break;
    }
    return k;
}

static bool parse_site(json_t *o, const char *where, psite_t *s)
{
    if (!json_is_object(o)) return ms_fail("%s: expected an object", where);
    if (!get_figures(o, where, s->v)) return false;
    json_t *st = json_object_get(o, "stack");
    if (!json_is_array(st)) return ms_fail("%s: no \"stack\" array", where);
    s->nf = json_array_size(st);
    s->f = calloc(s->nf ? s->nf : 1, sizeof *s->f);
    if (!s->f) return ms_fail("out of memory");
    for (size_t k = 0; k < s->nf; k++) {
        json_t *f = json_array_get(st, k);
        char fw[128];
        snprintf(fw, sizeof fw, "%s.stack[%zu]", where, k);
        if (!json_is_object(f)) return ms_fail("%s: expected an object", fw);
        pframe_t *p = &s->f[k];
        if (!ms_json_string(f, "ip", fw, false, &p->ip) || !ms_json_string(f, "function", fw, false, &p->function) ||
            !ms_json_string(f, "file", fw, false, &p->file) || !ms_json_string(f, "module", fw, false, &p->module)) return false;
        uint64_t line;
        if (!ms_json_count(f, "line", fw, false, &line)) return false;
        p->line = (long long)line;
        if (!p->ip && !p->function) return ms_fail("%s: neither \"ip\" nor \"function\"", fw);
    }
    s->key = site_key(s);
    return s->key ? true : ms_fail("out of memory");
}

static bool parse_profile(prof_t *p)
{
    json_t *r = p->root, *v;
    if (!json_is_object(r)) return ms_fail("not a memshim heap profile (expected a JSON object)");
    v = json_object_get(r, "format");
    if (!json_is_string(v) || strcmp(json_string_value(v), "memshim-profile") != 0)
        return ms_fail("not a memshim heap profile (\"format\" is not \"memshim-profile\")");
    v = json_object_get(r, "version");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return ms_fail("\"version\": this memshim reads version 1");
    v = json_object_get(r, "pid");
    p->pid = json_is_integer(v) ? json_integer_value(v) : -1;
    if (!ms_json_string(r, "program", "profile", false, &p->program) || !ms_json_string(r, "when", "profile", false, &p->when)) return false;
    json_t *t = json_object_get(r, "totals");
    if (!json_is_object(t)) return ms_fail("no \"totals\" object");
    if (!get_figures(t, "totals", p->tot)) return false;
    if (!ms_json_count(t, "peak_time_ms", "totals", false, &p->peak_ms)) return false;
    json_t *h = json_object_get(r, "histogram");
    if (!json_is_array(h)) return ms_fail("no \"histogram\" array");
    p->nh = json_array_size(h);
    p->h = calloc(p->nh ? p->nh : 1, sizeof *p->h);
    if (!p->h) return ms_fail("out of memory");
    for (size_t i = 0; i < p->nh; i++) {
        char w[64];
        snprintf(w, sizeof w, "histogram[%zu]", i);
        json_t *b = json_array_get(h, i);
        if (!json_is_object(b)) return ms_fail("%s: expected an object", w);
        if (!ms_json_count(b, "min", w, true, &p->h[i].min) || !ms_json_count(b, "max", w, true, &p->h[i].max) ||
            !ms_json_count(b, "count", w, true, &p->h[i].count)) return false;
        if (p->h[i].min > p->h[i].max)
            return ms_fail("%s.max: expected at least \"min\" (%llu)", w, (unsigned long long)p->h[i].min);
    }
    json_t *sites = json_object_get(r, "sites");
    if (!json_is_array(sites)) return ms_fail("no \"sites\" array");
    p->n = json_array_size(sites);
    p->s = calloc(p->n ? p->n : 1, sizeof *p->s);
    if (!p->s) return ms_fail("out of memory");
    for (size_t i = 0; i < p->n; i++) {
        char w[64];
        snprintf(w, sizeof w, "sites[%zu]", i);
        if (!parse_site(json_array_get(sites, i), w, &p->s[i])) return false;
    }
    return true;
}

static void free_profile(prof_t *p)
{
    for (size_t i = 0; i < p->n; i++) { free(p->s[i].f); free(p->s[i].key); }
    free(p->s);
    free(p->h);
    json_decref(p->root);
}

static bool load_profile(const char *path, prof_t *p)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    if (!(p->root = ms_is_gzip(path) ? ms_pprof_load(path) : ms_load_json(path))) return false;
    if (!parse_profile(p)) {
        ms_warn("%s: %s", path, ms_failure);
        free_profile(p);
        return false;
    }
    return true;
}

/* ---- memshim profile ------------------------------------------------------------ */

static int sort_fig;
static int by_fig(const void *a, const void *b)
{
    const psite_t *x = *(psite_t *const *)a, *y = *(psite_t *const *)b;
    if (x->v[sort_fig] != y->v[sort_fig]) return x->v[sort_fig] < y->v[sort_fig] ? 1 : -1;
    return strcmp(x->key, y->key);
}

static void print_stack(const psite_t *s, unsigned depth)
{
    if (!s->nf) { printf("       (no stack recorded)\n"); return; }
    for (size_t k = 0; k < s->nf && k < depth; k++) {
        const pframe_t *f = &s->f[k];
        char name[512];
        frame_name(f, name, sizeof name);
        printf("       %s", name);
        if (f->file) printf(" (%s:%lld)", base_name(f->file), f->line);
        printf("\n");
        if (f->function && (strcmp(f->function, "main") == 0 || strcmp(f->function, "start_thread") == 0)) break;
    }
}

static double pct(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0; }

static void view(const prof_t *p, psite_t **order, int fig, unsigned top, unsigned depth, const char *title)
{
    sort_fig = fig;
    qsort(order, p->n, sizeof *order, by_fig);
    printf("\n%s, top %u:\n", title, top);
    unsigned shown = 0;
    for (size_t i = 0; i < p->n && shown < top; i++) {
        const psite_t *s = order[i];
        if (!s->v[fig]) break;
        char a[32], b[32], h[32];
        shown++;
        switch (fig) {
        case PBYTES: case LBYTES:
            printf("  #%u %s bytes (%s) in %s blocks, %.1f%%\n", shown, ms_commas(s->v[fig], a, sizeof a),
                   ms_human(s->v[fig], h, sizeof h), ms_commas(s->v[fig == PBYTES ? PBLOCKS : LBLOCKS], b, sizeof b),
                   pct(s->v[fig], p->tot[fig]));
            break;
        case ALLOCS:
            printf("  #%u %s allocations, %s bytes (%s), %.1f%% of all allocations\n", shown,
                   ms_commas(s->v[ALLOCS], a, sizeof a), ms_commas(s->v[ABYTES], b, sizeof b),
                   ms_human(s->v[ABYTES], h, sizeof h), pct(s->v[ALLOCS], p->tot[ALLOCS]));
            break;
        default:
            printf("  #%u %s temporary allocations of %s (%.1f%%), %s bytes\n", shown,
                   ms_commas(s->v[TEMPS], a, sizeof a), ms_commas(s->v[ALLOCS], b, sizeof b),
                   pct(s->v[TEMPS], s->v[ALLOCS]), ms_commas(s->v[TBYTES], h, sizeof h));
            break;
        }
        print_stack(s, depth);
    }
    if (!shown) printf("  (none)\n");
}

static void histogram(const prof_t *p)
{
    uint64_t most = 0;
    for (size_t i = 0; i < p->nh; i++) if (p->h[i].count > most) most = p->h[i].count;
    printf("\nallocation sizes (bytes requested):\n");
    for (size_t i = 0; i < p->nh; i++) {
        char lo[32], hi[32], c[32];
        ms_commas(p->h[i].min, lo, sizeof lo);
        if (p->h[i].max == UINT64_MAX) snprintf(hi, sizeof hi, "...");
        else ms_commas(p->h[i].max, hi, sizeof hi);
        int bar = most ? (int)ceil(40.0 * (double)p->h[i].count / (double)most) : 0;   /* 40 * count overflowed */
        printf("  %13s - %-13s %12s  %.*s\n", lo, hi, ms_commas(p->h[i].count, c, sizeof c), bar,
               "########################################");
    }
    if (!p->nh) printf("  (none)\n");
}

static void summary(const prof_t *p)
{
    char a[32], b[32], h[32], t[32];
    printf("heap profile of ");
    ms_text(stdout, p->program ? p->program : "?");                     /* a newline in an argument */
    if (p->pid >= 0) printf(" (pid %lld)", p->pid);
    printf(", %s\n", p->when ? p->when : "?");
    printf("peak: %s bytes (%s) in %s blocks, %llu ms after start\n", ms_commas(p->tot[PBYTES], a, sizeof a),
           ms_human(p->tot[PBYTES], h, sizeof h), ms_commas(p->tot[PBLOCKS], b, sizeof b),
           (unsigned long long)p->peak_ms);
    printf("live: %s bytes (%s) in %s blocks\n", ms_commas(p->tot[LBYTES], a, sizeof a),
           ms_human(p->tot[LBYTES], h, sizeof h), ms_commas(p->tot[LBLOCKS], b, sizeof b));
    printf("allocations: %s, %s bytes (%s); temporary: %s (%.1f%%)\n", ms_commas(p->tot[ALLOCS], a, sizeof a),
           ms_commas(p->tot[ABYTES], b, sizeof b), ms_human(p->tot[ABYTES], h, sizeof h),
           ms_commas(p->tot[TEMPS], t, sizeof t), pct(p->tot[TEMPS], p->tot[ALLOCS]));
}

/* --diff: sites matched by their frames, largest change first.  Sites of
 * one profile with the same frames (two calls on one line: different
 * return addresses) count as one, as tracemalloc's tracebacks of
 * filename:lineno do: listed apart, one line's +3,300 bytes showed as
 * +3,600 and -300 (found by a helper). */
typedef struct { const psite_t *now, *old; int64_t d; uint64_t was, is, wb, ib; } change_t;
static int by_change(const void *a, const void *b)
{
    const change_t *x = a, *y = b;
    uint64_t ax = (uint64_t)(x->d < 0 ? -x->d : x->d), ay = (uint64_t)(y->d < 0 ? -y->d : y->d);
    if (ax != ay) return ax < ay ? 1 : -1;
    const char *kx = x->now ? x->now->key : x->old->key, *ky = y->now ? y->now->key : y->old->key;
    return strcmp(kx, ky);
}

/* The first site of p with these frames, or NULL; with the sums of
 * figures fig and blocks over all such sites. */
static const psite_t *find_key(const prof_t *p, const char *key, int fig, int blocks, uint64_t *v, uint64_t *b)
{
    const psite_t *first = NULL;
    *v = *b = 0;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->s[i].key, key) == 0) {
            if (!first) first = &p->s[i];
            *v += p->s[i].v[fig];
            *b += p->s[i].v[blocks];
        }
    return first;
}

static void signed_commas(int64_t d, char *buf, size_t cap)
{
    char c[32];
    snprintf(buf, cap, "%c%s", d < 0 ? '-' : '+', ms_commas((uint64_t)(d < 0 ? -d : d), c, sizeof c));
}

static int diff_view(const prof_t *now, const prof_t *old, int fig, int blocks, unsigned top, unsigned depth,
                     const char *title)
{
    change_t *c = calloc(now->n + old->n + 1, sizeof *c);
    if (!c) { ms_warn("out of memory"); return 1; }
    size_t n = 0;
    for (size_t i = 0; i < now->n; i++) {
        change_t x = { 0 };
        x.now = find_key(now, now->s[i].key, fig, blocks, &x.is, &x.ib);
        if (x.now != &now->s[i]) continue;                /* counted with the first of its frames */
        x.old = find_key(old, now->s[i].key, fig, blocks, &x.was, &x.wb);
        x.d = (int64_t)x.is - (int64_t)x.was;
        if (x.d) c[n++] = x;
    }
    for (size_t i = 0; i < old->n; i++) {
        change_t x = { 0 };
        uint64_t v, b;
        if (find_key(now, old->s[i].key, fig, blocks, &v, &b)) continue;
        x.old = find_key(old, old->s[i].key, fig, blocks, &x.was, &x.wb);
        x.d = -(int64_t)x.was;
        if (x.old == &old->s[i] && x.was) c[n++] = x;
    }
    qsort(c, n, sizeof *c, by_change);
    printf("\n%s, top %u:\n", title, top);
    for (size_t i = 0; i < n && i < top; i++) {
        const psite_t *s = c[i].now ? c[i].now : c[i].old;
        char d[40], db[40], a[32], b[32];
        signed_commas(c[i].d, d, sizeof d);
        signed_commas((int64_t)c[i].ib - (int64_t)c[i].wb, db, sizeof db);
        printf("  #%zu %s bytes (%s blocks): %s -> %s bytes%s\n", i + 1, d, db, ms_commas(c[i].was, a, sizeof a),
               ms_commas(c[i].is, b, sizeof b), !c[i].old ? " [new]" : !c[i].now ? " [gone]" : "");
        print_stack(s, depth);
    }
    if (!n) printf("  (no change)\n");
    free(c);
    return 0;
}

int cmd_profile(int argc, char **argv)
{
    const char *path = NULL, *old_path = NULL;
    uint64_t top = 10, depth = 6;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = ms_opt_value(argc, argv, &i, "--top"))) {
            if (!ms_parse_u64(v, &top) || top == 0) ms_usage_error("profile --top %s: expected a positive number", v);
        } else if ((v = ms_opt_value(argc, argv, &i, "--depth"))) {
            if (!ms_parse_u64(v, &depth) || depth == 0) ms_usage_error("profile --depth %s: expected a positive number", v);
        } else if ((v = ms_opt_value(argc, argv, &i, "--diff"))) old_path = v;
        else if (argv[i][0] == '-' && argv[i][1]) ms_unknown_option("profile", argv[i]);
        else if (path) ms_usage_error("profile: more than one file given");
        else path = argv[i];
    }
    if (!path) ms_usage_error("profile: no profile given (memshim profile FILE.json)");
    prof_t p, o;
    if (!load_profile(path, &p)) return 1;
    if (old_path && !load_profile(old_path, &o)) { free_profile(&p); return 1; }
    summary(&p);
    int rc = 0;
    if (old_path) {
        char a[40], b[40];
        signed_commas((int64_t)p.tot[PBYTES] - (int64_t)o.tot[PBYTES], a, sizeof a);
        signed_commas((int64_t)p.tot[LBYTES] - (int64_t)o.tot[LBYTES], b, sizeof b);
        printf("compared with %s: peak %s bytes, live %s bytes\n", old_path, a, b);
        rc = diff_view(&p, &o, LBYTES, LBLOCKS, (unsigned)top, (unsigned)depth, "by change in live bytes") |
             diff_view(&p, &o, PBYTES, PBLOCKS, (unsigned)top, (unsigned)depth, "by change in bytes at the peak");
        free_profile(&o);
    } else {
        psite_t **order = calloc(p.n + 1, sizeof *order);
        if (!order) { ms_warn("out of memory"); free_profile(&p); return 1; }
        for (size_t i = 0; i < p.n; i++) order[i] = &p.s[i];
        view(&p, order, PBYTES, (unsigned)top, (unsigned)depth, "by bytes at the peak");
        view(&p, order, LBYTES, (unsigned)top, (unsigned)depth, "by bytes live now");
        view(&p, order, ALLOCS, (unsigned)top, (unsigned)depth, "by allocations");
        view(&p, order, TEMPS, (unsigned)top, (unsigned)depth, "by temporary allocations");
        histogram(&p);
        free(order);
    }
    free_profile(&p);
    return rc;
}

/* ---- memshim flame --------------------------------------------------------------- */

typedef struct node_s {
    char          *name;
    uint64_t       value;
    struct node_s *kids, *next;
} node_t;

static node_t *child(node_t *parent, const char *name)
{
    node_t **pp = &parent->kids;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) return *pp;
    node_t *n = calloc(1, sizeof *n);
    if (!n || !(n->name = strdup(name))) { free(n); return NULL; }
    *pp = n;
    return n;
}

static void free_tree(node_t *n)
{
    while (n) { node_t *next = n->next; free_tree(n->kids); free(n->name); free(n); n = next; }
}

static int tree_depth(const node_t *n)
{
    int d = 0;
    for (const node_t *k = n->kids; k; k = k->next) { int x = tree_depth(k); if (x > d) d = x; }
    return d + 1;
}

/* Children left to right, largest first: a stable picture from run to run. */
static void sort_kids(node_t *n)
{
    size_t k = 0;
    for (node_t *c = n->kids; c; c = c->next) k++;
    if (k > 1) {
        node_t **a = malloc(k * sizeof *a);
        if (!a) return;
        size_t i = 0;
        for (node_t *c = n->kids; c; c = c->next) a[i++] = c;
        for (size_t x = 1; x < k; x++)                  /* insertion sort: few children */
            for (size_t y = x; y > 0 && (a[y]->value > a[y - 1]->value ||
                 (a[y]->value == a[y - 1]->value && strcmp(a[y]->name, a[y - 1]->name) < 0)); y--) {
                node_t *t = a[y]; a[y] = a[y - 1]; a[y - 1] = t;
            }
        for (size_t x = 0; x < k; x++) a[x]->next = x + 1 < k ? a[x + 1] : NULL;
        n->kids = a[0];
        free(a);
    }
    for (node_t *c = n->kids; c; c = c->next) sort_kids(c);
}

#define FW 1200.0           /* picture width */
#define FM 10.0             /* margin */
#define FH 18.0             /* row height */
#define FTOP 54.0           /* title area */

static void color_of(const char *name, char *buf, size_t cap)
{
    unsigned h = 2166136261u;
    for (const char *s = name; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    snprintf(buf, cap, "rgb(%u,%u,%u)", 205 + h % 50, 90 + (h >> 8) % 140, 40 + (h >> 16) % 50);
}

static void draw(FILE *o, const node_t *n, double x, int row, uint64_t total)
{
    double w = (FW - 2 * FM) * (double)n->value / (double)total;
    if (w < 0.3) return;
    double y = FTOP + row * FH;
    char fill[32], v[32], h[32];
    color_of(n->name, fill, sizeof fill);
    fprintf(o, "<g><title>");
    ms_xml_text(o, n->name);
    fprintf(o, " (%s bytes, %s, %.2f%%)</title>", ms_commas(n->value, v, sizeof v), ms_human(n->value, h, sizeof h),
            100.0 * (double)n->value / (double)total);
    fprintf(o, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\" rx=\"2\"/>", x, y, w, FH - 1, fill);
    size_t fit = w > 14 ? (size_t)((w - 6) / 7.2) : 0;            /* characters of the font */
    if (fit >= 3) {
        char label[512];
        size_t len = strlen(n->name);
        if (ms_utf8_prefix(n->name, len, fit) < len)
            snprintf(label, sizeof label, "%.*s..", (int)ms_utf8_prefix(n->name, sizeof label - 3, fit - 2), n->name);
        else snprintf(label, sizeof label, "%s", n->name);
        fprintf(o, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + FH - 5);
        ms_xml_text(o, label);
        fprintf(o, "</text>");
    }
    fprintf(o, "</g>\n");
    double cx = x;
    for (const node_t *k = n->kids; k; k = k->next) {
        draw(o, k, cx, row + 1, total);
        cx += (FW - 2 * FM) * (double)k->value / (double)total;
    }
}

int cmd_flame(int argc, char **argv)
{
    const char *path = NULL, *out = NULL, *metric = "peak", *title = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = ms_opt_value(argc, argv, &i, "-o")) || (v = ms_opt_value(argc, argv, &i, "--output"))) out = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--metric"))) metric = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--title"))) title = v;
        else if (argv[i][0] == '-' && argv[i][1]) ms_unknown_option("flame", argv[i]);
        else if (path) ms_usage_error("flame: more than one file given");
        else path = argv[i];
    }
    if (!path) ms_usage_error("flame: no profile given (memshim flame FILE.json -o FILE.svg)");
    if (!out) ms_usage_error("flame: no output given (-o FILE.svg)");
    static const struct { const char *name; int fig; const char *what; } metrics[] = {
        { "peak", PBYTES, "bytes in use at the peak" }, { "inuse", LBYTES, "bytes in use" },
        { "alloc", ABYTES, "bytes allocated" }, { "temp", TBYTES, "bytes in temporary allocations" },
    };
    int m = -1;
    for (int i = 0; i < 4; i++) if (strcmp(metric, metrics[i].name) == 0) m = i;
    if (m < 0) ms_usage_error("flame --metric %s: expected peak, inuse, alloc or temp", metric);
    prof_t p;
    if (!load_profile(path, &p)) return 1;
    int fig = metrics[m].fig;
    node_t root = { .name = "all" };
    for (size_t i = 0; i < p.n; i++) {
        const psite_t *s = &p.s[i];
        if (!s->v[fig]) continue;
        root.value += s->v[fig];
        node_t *n = &root;
        for (size_t k = s->nf; k-- > 0 && n;) {       /* outermost frame first */
            char name[512];
            frame_name(&s->f[k], name, sizeof name);
            if ((n = child(n, name))) n->value += s->v[fig];
        }
        if (!s->nf && (n = child(&root, "[no stack]"))) n->value += s->v[fig];
    }
    sort_kids(&root);
    ms_output_t of;
    if (!ms_output_open(&of, out, path)) { free_tree(root.kids); free_profile(&p); return 1; }
    FILE *o = of.f;
    int rows = root.value ? tree_depth(&root) : 1;
    double height = FTOP + rows * FH + 24;
    char v[32], h[32];
    fprintf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"DejaVu Sans Mono, monospace\" font-size=\"12\">\n"
               "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fdfdf8\"/>\n",
            FW, height, FW, height, FW, height);
    fprintf(o, "<text x=\"%.0f\" y=\"22\" font-size=\"17\" text-anchor=\"middle\">", FW / 2);
    if (title) ms_xml_text(o, title);
    else fprintf(o, "memshim heap profile: %s", metrics[m].what);
    fprintf(o, "</text>\n<text x=\"%.0f\" y=\"42\" text-anchor=\"middle\" fill=\"#555\">", FW / 2);
    ms_xml_text(o, p.program ? p.program : path);
    fprintf(o, ", %s: %s bytes (%s) in all; width: bytes</text>\n", p.when ? p.when : "", ms_commas(root.value, v, sizeof v),
            ms_human(root.value, h, sizeof h));
    if (root.value) draw(o, &root, FM, 0, root.value);
    else fprintf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">no %s</text>\n", FW / 2, FTOP + 12, metrics[m].what);
    fprintf(o, "</svg>\n");
    int rc = ms_output_close(&of, true) ? 0 : 1;
    free_tree(root.kids);
    free_profile(&p);
    return rc;
}
