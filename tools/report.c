/* report.c - leak reports: `memshim report` renders one, `memshim diff`
 * compares two or a series.  Reports are read into the model of leaks.h
 * (leaks.c checks them field by field); this file chooses and renders. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaks.h"

static const char *const short_names[] = { "definite", "indirect", "possible", "reachable" };

static const char *kind_title(const char *k)
{
    for (size_t i = 0; i < 4; i++) if (strcmp(k, ms_kind_key[i]) == 0) return ms_kind_words[i];
    return k;
}

/* "definite", "reachable"...: a kind as folded stacks name their root. */
static const char *kind_short(const char *k)
{
    for (size_t i = 0; i < 4; i++) if (strcmp(k, ms_kind_key[i]) == 0) return short_names[i];
    return k;
}

/* ---- kinds ------------------------------------------------------------------- */

typedef struct { const char *names[MAX_KINDS]; size_t n; bool all; } kinds_t;

static void parse_kinds(const char *cmd, const char *spec, kinds_t *k)
{
    memset(k, 0, sizeof *k);
    if (!spec || strcmp(spec, "all") == 0) { k->all = true; return; }
    char *copy = strdup(spec), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char *name = NULL;
        for (size_t i = 0; i < 4; i++)
            if (strcmp(t, short_names[i]) == 0 || strcmp(t, ms_kind_key[i]) == 0) name = ms_kind_key[i];
        if (!name) ms_usage_error("%s --kind %s: expected definite, indirect, possible, reachable "
                                  "or all (comma-separated)", cmd, t);
        if (k->n < MAX_KINDS) k->names[k->n++] = name;
    }
    free(copy);
}

static bool kind_wanted(const kinds_t *k, const char *kind)
{
    if (k->all) return true;
    for (size_t i = 0; i < k->n; i++) if (strcmp(k->names[i], kind) == 0) return true;
    return false;
}

/* ---- rendering ------------------------------------------------------------------ */

/* "block" or "blocks" for n: never "1 blocks". */
static const char *blocks_word(long long n) { return n == 1 || n == -1 ? "block" : "blocks"; }
static const char *bytes_word(long long n) { return n == 1 || n == -1 ? "byte" : "bytes"; }

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static void print_frame(FILE *out, size_t i, const frame_t *f)
{
    fprintf(out, "    #%-2zu %s", i, f->ip ? f->ip : "");
    if (f->function) fprintf(out, "%s%s", f->ip ? " in " : "", f->function);
    if (f->file) {
        fprintf(out, " %s", f->file);
        if (f->line) fprintf(out, ":%lld", f->line);
    }
    if (f->module) fprintf(out, " (%s)", f->module);
    fputc('\n', out);
}

/* One frame for a folded line: no ';', no newline. */
static void print_folded_frame(FILE *out, const frame_t *f)
{
    char buf[512];
    if (f->function) snprintf(buf, sizeof buf, "%s", f->function);
    else if (f->module) snprintf(buf, sizeof buf, "%s in %s", f->ip, base_name(f->module));
    else snprintf(buf, sizeof buf, "%s", f->ip);
    for (char *p = buf; *p; p++) if (*p == ';' || *p == '\n' || *p == '\r') *p = *p == ';' ? ':' : ' ';
    fputs(buf, out);
}

static int by_bytes(const void *a, const void *b)
{
    const leak_t *x = *(leak_t *const *)a, *y = *(leak_t *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    if (x->blocks != y->blocks) return x->blocks < y->blocks ? 1 : -1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void print_totals(FILE *out, const report_t *r, const kinds_t *k)
{
    char h[32], c1[32], c2[32];
    for (size_t i = 0; i < r->ntotals; i++) {
        const total_t *t = &r->totals[i];
        if (!kind_wanted(k, t->kind)) continue;
        fprintf(out, "  %-16s %10s in %s %s (%s %s)\n", kind_title(t->kind),
                ms_human(t->bytes, h, sizeof h), ms_commas(t->blocks, c1, sizeof c1), blocks_word((long long)t->blocks),
                ms_commas(t->bytes, c2, sizeof c2), bytes_word((long long)t->bytes));
        if (strcmp(t->kind, "still_reachable") != 0) continue;
        for (size_t j = 0; j < r->nheur; j++)           /* as the library's text report has them */
            fprintf(out, "    via heuristic %-19s %10s in %s %s\n", r->heur[j].kind,
                    ms_human(r->heur[j].bytes, h, sizeof h), ms_commas(r->heur[j].blocks, c1, sizeof c1),
                    blocks_word((long long)r->heur[j].blocks));
    }
}

/* ---- retention paths: report --why ------------------------------------------- */

static void print_site(FILE *out, const frame_t *f)
{
    if (!f->function && !f->file && !f->module) { fputs("no stack recorded", out); return; }
    fputs(f->function ? f->function : "???", out);
    if (f->file) fprintf(out, " (%s:%lld)", base_name(f->file), f->line);
    else if (f->module) fprintf(out, " (in %s)", f->module);
}

static void print_root(FILE *out, const why_t *w)
{
    const char *k = w->kind;
    if (strcmp(k, "global") == 0) {
        if (w->symbol) {
            fprintf(out, "global %s", w->symbol);
            if (w->offset) fprintf(out, "+%lld", w->offset);
            fprintf(out, " in %s", w->module ? w->module : "?");
        } else fprintf(out, "data of %s at %s", w->module ? w->module : "?", w->addr ? w->addr : "?");
    } else if (strcmp(k, "memory") == 0) fprintf(out, "anonymous memory at %s", w->addr ? w->addr : "?");
    else if (strcmp(k, "stack") == 0) {
        fprintf(out, "thread %lld's stack", w->thread);
        if (w->function) {
            fprintf(out, " in %s", w->function);
            if (w->file) fprintf(out, " (%s:%lld)", base_name(w->file), w->line);
        }
    } else if (strcmp(k, "registers") == 0) fprintf(out, "thread %lld's registers", w->thread);
    else if (strcmp(k, "tls") == 0) {
        fprintf(out, "thread %lld's thread-local ", w->thread);
        if (w->symbol) {
            fputs(w->symbol, out);
            if (w->offset) fprintf(out, "+%lld", w->offset);
        } else fputs("storage", out);
        if (w->module) fprintf(out, " in %s", w->module);
    } else if (strcmp(k, "collector_root") == 0) fputs("a collector root (memshim_root_add)", out);
    else if (strcmp(k, "garbage") == 0) fputs("the collector's garbage list (MEMSHIM_DEBUG_SAVEALL)", out);
    else if (strcmp(k, "memshim") == 0) fputs("memshim's own memory", out);
    else fprintf(out, "a root of kind %s", k);
}

static void print_why(FILE *out, const why_t *w)
{
    if (!w->rooted) {
        fprintf(out, "  kept alive through more than %llu blocks: the root is not followed\n",
                (unsigned long long)w->more);
    } else {
        fputs("  kept alive by: ", out);
        print_root(out, w);
        fputc('\n', out);
    }
    for (size_t k = 0; k < w->nhops; k++) {
        const hop_t *h = &w->hops[k];
        if (w->more && k + 1 == w->nhops) fprintf(out, "    -> ... %llu more %s\n", (unsigned long long)w->more, blocks_word((long long)w->more));
        fprintf(out, "    -> %s", h->addr);
        if (h->into) fprintf(out, "%+lld", h->into);
        fputs(" (", out);
        if (h->type) fprintf(out, "%s object, ", h->type);
        fprintf(out, "%llu %s, allocated at ", (unsigned long long)h->size, bytes_word((long long)h->size));
        print_site(out, &h->site);
        fprintf(out, "), pointer at offset %lld\n", h->offset);
    }
    if (w->block) {
        fprintf(out, "    -> this block, %s", w->block);
        if (w->block_into) fprintf(out, "%+lld (a pointer into its middle)", w->block_into);
        fputc('\n', out);
    }
}

static bool parse_addr(const char *s, uint64_t *out)
{
    if (!s || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2]) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s + 2, &end, 16);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* Whether the record is asked for by --why: an address in its block or in
 * a block of its path, or its allocation site (the first frame's function,
 * or FILE:LINE with the file's base name). */
static bool why_matches(const leak_t *l, const char *arg, bool is_addr, uint64_t addr)
{
    if (is_addr) {
        if (!l->why.present) return false;
        uint64_t a;
        if (l->why.block && parse_addr(l->why.block, &a) && addr >= a && addr - a < (l->why.block_size ? l->why.block_size : 1))
            return true;
        for (size_t k = 0; k < l->why.nhops; k++)
            if (parse_addr(l->why.hops[k].addr, &a) && addr >= a &&
                addr - a < (l->why.hops[k].size ? l->why.hops[k].size : 1)) return true;
        return false;
    }
    if (!l->nframes) return false;
    const frame_t *f = &l->frames[0];
    if (f->function && strcmp(f->function, arg) == 0) return true;
    if (f->file) {
        char site[1024];
        snprintf(site, sizeof site, "%s:%lld", base_name(f->file), f->line);
        if (strcmp(site, arg) == 0 || (strchr(arg, '/') && snprintf(site, sizeof site, "%s:%lld", f->file, f->line) > 0 &&
                                       strcmp(site, arg) == 0)) return true;
    }
    return false;
}

static int report_why(const report_t *r, leak_t **sel, size_t n, const char *arg)
{
    uint64_t addr = 0;
    bool is_addr = parse_addr(arg, &addr);
    size_t found = 0;
    char c1[32], c2[32];
    for (size_t i = 0; i < n; i++) {
        const leak_t *l = sel[i];
        if (!why_matches(l, arg, is_addr, addr)) continue;
        printf("%s%s %s in %s %s %s (%zu of %zu), allocated at ", found ? "\n" : "",
               ms_commas(l->bytes, c1, sizeof c1), bytes_word((long long)l->bytes), ms_commas(l->blocks, c2, sizeof c2),
               blocks_word((long long)l->blocks), kind_title(l->kind), i + 1, n);
        if (l->nframes) print_site(stdout, &l->frames[0]);
        else fputs("no stack recorded", stdout);
        fputc('\n', stdout);
        if (l->why.present) print_why(stdout, &l->why);
        else printf("  no retention path: %s\n",
                    strcmp(l->kind, "still_reachable") == 0 || strcmp(l->kind, "possibly_lost") == 0
                        ? "the report was written without them (MEMSHIM_WHY_DEPTH=0)"
                        : "nothing outside lost blocks points to these blocks");
        found++;
    }
    if (!found) {
        ms_warn("%s: no record %s %s", r->path, is_addr ? "with a retention path through" : "allocated at", arg);
        return 1;
    }
    return ferror(stdout) ? 1 : 0;
}

/* report's options, checked. */
typedef struct {
    const char *file, *why;
    uint64_t    top;
    bool        folded;
    kinds_t     kinds;
} report_opts_t;

static void parse_report(int argc, char **argv, report_opts_t *o)
{
    const char *kind = NULL, *format = "text", *v;
    memset(o, 0, sizeof *o);
    o->top = UINT64_MAX;
    for (int i = 1; i < argc; i++) {
        if ((v = ms_opt_value(argc, argv, &i, "--kind"))) kind = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--format"))) format = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--why"))) {
            if (!*v) ms_usage_error("report --why: expected an address (0x...) or an allocating function");
            o->why = v;
        }
        else if ((v = ms_opt_value(argc, argv, &i, "--top"))) {
            if (!ms_parse_u64(v, &o->top) || o->top == 0)
                ms_usage_error("report --top %s: expected a positive number", v);
        } else if (argv[i][0] == '-' && argv[i][1]) ms_unknown_option("report", argv[i]);
        else if (!o->file) o->file = argv[i];
        else ms_usage_error("report: one report at a time ('%s' is one too many)", argv[i]);
    }
    if (!o->file) ms_usage_error("report: no report file given (memshim report FILE.json)");
    if (strcmp(format, "folded") == 0) o->folded = true;
    else if (strcmp(format, "text") != 0) ms_usage_error("report --format %s: expected text or folded", format);
    if (o->why && o->folded) ms_usage_error("report --why prints retention paths as text: no --format folded");
    parse_kinds("report", kind, &o->kinds);
}

/* One line per stack, the kind as its root frame, the bytes last. */
static void print_folded(leak_t **sel, size_t shown)
{
    for (size_t i = 0; i < shown; i++) {
        const leak_t *l = sel[i];
        fprintf(stdout, "%s;", kind_short(l->kind));
        if (l->nframes == 0) fputs("[unknown]", stdout);
        for (size_t k = l->nframes; k-- > 0;) {
            print_folded_frame(stdout, &l->frames[k]);
            if (k) fputc(';', stdout);
        }
        printf(" %llu\n", (unsigned long long)l->bytes);
    }
}

/* The totals, then each record shown with its stack. */
static void print_records(const report_t *r, const kinds_t *kinds, leak_t **sel, size_t n, size_t shown)
{
    printf("leak report of ");
    ms_text(stdout, r->program ? r->program : "(unknown program)");    /* a newline in an argument */
    if (r->pid >= 0) printf(" (pid %lld)", r->pid);
    if (r->signal[0]) printf(", which %s%s ended after this report", r->signal, r->stack_overflow ? " (its stack overflowed)" : "");
    printf("\n");
    print_totals(stdout, r, kinds);
    char c1[32], c2[32];
    for (size_t i = 0; i < shown; i++) {
        const leak_t *l = sel[i];
        printf("\n%s %s in %s %s %s (%zu of %zu)", ms_commas(l->bytes, c1, sizeof c1), bytes_word((long long)l->bytes),
               ms_commas(l->blocks, c2, sizeof c2), blocks_word((long long)l->blocks), kind_title(l->kind), i + 1, n);
        if (l->change && strcmp(l->change, "same") != 0) {
            printf(", %s since ", l->change);
            if (r->since > 0) printf("report %lld", r->since); else printf("the start");
        }
        printf("\n");
        for (size_t k = 0; k < l->nframes; k++) print_frame(stdout, k, &l->frames[k]);
        if (!l->nframes) printf("    (no stack recorded)\n");
    }
    if (shown < n) printf("\n... %zu smaller records not shown (--top %zu)\n", n - shown, shown);
    if (n == 0) printf("\nno leak records%s\n", kinds->all ? "" : " of the kinds asked for");
}

int cmd_report(int argc, char **argv)
{
    report_opts_t o;
    parse_report(argc, argv, &o);
    report_t r;
    if (!ms_report_load(o.file, MS_LOAD_LEAKS, &r)) return 1;
    leak_t **sel = calloc(r.nleaks ? r.nleaks : 1, sizeof *sel);
    size_t n = 0;
    for (size_t i = 0; i < r.nleaks; i++)
        if (kind_wanted(&o.kinds, r.leaks[i].kind)) sel[n++] = &r.leaks[i];
    qsort(sel, n, sizeof *sel, by_bytes);
    size_t shown = n < o.top ? n : (size_t)o.top;
    int rc;
    if (o.why) rc = report_why(&r, sel, shown, o.why);
    else {
        if (o.folded) print_folded(sel, shown);
        else print_records(&r, &o.kinds, sel, n, shown);
        rc = ferror(stdout) ? 1 : 0;
    }
    free(sel);
    ms_report_free(&r);
    return rc;
}

/* ---- diff ------------------------------------------------------------------------- */

/* A stack's identity across reports: its kind and, frame by frame, the
 * function, file and line when symbolised; otherwise the address, which is
 * stable only within one run, so between two runs (different pids) an
 * unsymbolised frame is known by its module alone. */
static char *stack_key(const leak_t *l, bool same_run)
{
    size_t cap = 256, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    len = (size_t)snprintf(s, cap, "%s", l->kind);
    for (size_t k = 0; k < l->nframes; k++) {
        const frame_t *f = &l->frames[k];
        char part[1024];
        if (same_run && f->ip)                   /* one run: addresses are exact */
            snprintf(part, sizeof part, "|%s", f->ip);
        else if (f->function)
            snprintf(part, sizeof part, "|%s@%s:%lld", f->function, f->file ? f->file : "", f->line);
        else if (same_run || !f->module)
            snprintf(part, sizeof part, "|%s", f->ip ? f->ip : "?");
        else
            snprintf(part, sizeof part, "|?@%s", f->module);
        size_t pl = strlen(part);
        if (len + pl + 1 > cap) {
            while (len + pl + 1 > cap) cap *= 2;
            char *t = realloc(s, cap);
            if (!t) { free(s); return NULL; }
            s = t;
        }
        memcpy(s + len, part, pl + 1);
        len += pl;
    }
    return s;
}

static void signed_bytes(char *buf, size_t cap, uint64_t from, uint64_t to)
{
    char c[32];
    if (to >= from) snprintf(buf, cap, "+%s", ms_commas(to - from, c, sizeof c));
    else snprintf(buf, cap, "-%s", ms_commas(from - to, c, sizeof c));
}

/* The model of a diff: each stack's bytes report by report (two reports,
 * or the snapshots of one run: MEMSHIM_REPORT with %n, or name.snapN), in
 * rows, largest growth from the first report to the last first, with how
 * many steps they grew in -- a steady leak grows in every one. */
typedef struct {
    char         *key;
    size_t        rep;                     /* the report it is from */
    const leak_t *rec;
} entry_t;

static int by_entry_key(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->rep > y->rep) - (x->rep < y->rep);
}

typedef struct {
    const char   *key;
    const leak_t *rec;                     /* the latest record of the row (a series shows it) */
    const leak_t *lead;                    /* the first from the latest report it is in (a pair shows it) */
    uint64_t     *bytes, *blocks;          /* [nrep] */
    bool         *seen;                    /* [nrep] */
    long long     growth;                  /* bytes, last - first */
    unsigned      steps_up;                /* steps where the bytes grew */
} row_t;

static int by_row_growth(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->growth != y->growth) return x->growth < y->growth ? 1 : -1;
    return strcmp(x->key, y->key);
}

typedef struct {
    const char **files;
    report_t    *r;
    size_t       nrep;
    bool         same_run;                 /* every report has the pid of the first */
    entry_t     *e;
    size_t       ne;
    row_t       *rows;
    size_t       nrows;
} diff_t;

static void free_diff(diff_t *d)
{
    for (size_t i = 0; i < d->nrows; i++) { free(d->rows[i].bytes); free(d->rows[i].blocks); free(d->rows[i].seen); }
    for (size_t i = 0; i < d->ne; i++) free(d->e[i].key);
    for (size_t i = 0; i < d->nrep; i++) ms_report_free(&d->r[i]);
    free(d->rows);
    free(d->e);
    free(d->r);
}

/* The wanted records of every report, keyed and sorted by key. */
static bool key_entries(diff_t *d, const kinds_t *kinds)
{
    size_t cap = 0;
    for (size_t i = 0; i < d->nrep; i++) cap += d->r[i].nleaks;
    if (!(d->e = calloc(cap ? cap : 1, sizeof *d->e))) return false;
    for (size_t i = 0; i < d->nrep; i++)
        for (size_t k = 0; k < d->r[i].nleaks; k++)
            if (kind_wanted(kinds, d->r[i].leaks[k].kind)) {
                d->e[d->ne] = (entry_t){ stack_key(&d->r[i].leaks[k], d->same_run), i, &d->r[i].leaks[k] };
                if (!d->e[d->ne].key) return false;
                d->ne++;
            }
    qsort(d->e, d->ne, sizeof *d->e, by_entry_key);
    return true;
}

/* The entries of one key merged into a row, largest growth first. */
static bool merge_rows(diff_t *d)
{
    size_t nrep = d->nrep;
    if (!(d->rows = calloc(d->ne ? d->ne : 1, sizeof *d->rows))) return false;
    for (size_t i = 0; i < d->ne; i++) {
        const entry_t *e = &d->e[i];
        if (!i || strcmp(d->e[i - 1].key, e->key) != 0) {
            row_t *w = &d->rows[d->nrows++];
            w->bytes = calloc(nrep, sizeof *w->bytes);
            w->blocks = calloc(nrep, sizeof *w->blocks);
            w->seen = calloc(nrep, sizeof *w->seen);
            if (!w->bytes || !w->blocks || !w->seen) return false;
        }
        row_t *w = &d->rows[d->nrows - 1];
        w->key = e->key;
        w->bytes[e->rep] += e->rec->bytes;
        w->blocks[e->rep] += e->rec->blocks;
        if (!w->seen[e->rep]) w->lead = e->rec;
        w->seen[e->rep] = true;
        w->rec = e->rec;
    }
    for (size_t i = 0; i < d->nrows; i++) {
        row_t *w = &d->rows[i];
        w->growth = (long long)w->bytes[nrep - 1] - (long long)w->bytes[0];
        for (size_t k = 1; k < nrep; k++) w->steps_up += w->bytes[k] > w->bytes[k - 1];
    }
    qsort(d->rows, d->nrows, sizeof *d->rows, by_row_growth);
    return true;
}

/* Load the reports and build the rows; false after one line. */
static bool build_diff(diff_t *d, const char **files, size_t nrep, const kinds_t *kinds)
{
    memset(d, 0, sizeof *d);
    d->files = files;
    if (!(d->r = calloc(nrep, sizeof *d->r))) { ms_warn("out of memory"); return false; }
    for (; d->nrep < nrep; d->nrep++)
        if (!ms_report_load(files[d->nrep], MS_LOAD_LEAKS, &d->r[d->nrep])) return false;
    d->same_run = d->r[0].pid >= 0;
    for (size_t i = 1; i < nrep; i++) d->same_run &= d->r[i].pid == d->r[0].pid;
    if (!key_entries(d, kinds) || !merge_rows(d)) { ms_warn("out of memory"); return false; }
    return true;
}

/* ---- rendering a diff ---------------------------------------------------------------- */

/* Two reports: each kind's totals, then what grew and what is new. */
static void print_pair_totals(const diff_t *d, const kinds_t *kinds)
{
    printf("leak report diff: %s -> %s (%s)\n", d->r[0].path, d->r[1].path,
           d->same_run ? "two snapshots of one run" : "two runs");
    char h1[32], h2[32], g[40];
    for (size_t k = 0; k < 4; k++) {
        if (!kind_wanted(kinds, ms_kind_key[k])) continue;
        const total_t *a = ms_report_total(&d->r[0], ms_kind_key[k]), *b = ms_report_total(&d->r[1], ms_kind_key[k]);
        uint64_t ob = a ? a->bytes : 0, nb = b ? b->bytes : 0, ok = a ? a->blocks : 0, nk = b ? b->blocks : 0;
        signed_bytes(g, sizeof g, ob, nb);
        printf("  %-16s %10s -> %-10s (%s bytes, %+lld %s)\n", kind_title(ms_kind_key[k]),
               ms_human(ob, h1, sizeof h1), ms_human(nb, h2, sizeof h2), g, (long long)nk - (long long)ok,
               blocks_word((long long)nk - (long long)ok));
    }
}

static void print_pair_row(const row_t *x)
{
    char g[40], c1[32], c2[32];
    uint64_t ob = x->bytes[0], nb = x->bytes[1];
    signed_bytes(g, sizeof g, ob, nb);
    long long db = (long long)x->blocks[1] - (long long)x->blocks[0];
    printf("\n%s bytes (%+lld %s) %s: ", g, db, blocks_word(db), kind_title(x->lead->kind));
    if (!x->seen[0]) printf("new, %s bytes in %s %s\n", ms_commas(nb, c1, sizeof c1),
                            ms_commas(x->blocks[1], c2, sizeof c2), blocks_word((long long)x->blocks[1]));
    else if (!x->seen[1]) printf("gone, was %s bytes\n", ms_commas(ob, c1, sizeof c1));
    else printf("%s -> %s bytes\n", ms_commas(ob, c1, sizeof c1), ms_commas(nb, c2, sizeof c2));
    for (size_t k = 0; k < x->lead->nframes; k++) print_frame(stdout, k, &x->lead->frames[k]);
}

static void print_pair(const diff_t *d, const kinds_t *kinds, uint64_t top, bool all)
{
    print_pair_totals(d, kinds);
    size_t grew = 0, shrank = 0, gone = 0, shown = 0, eligible = 0;
    for (size_t i = 0; i < d->nrows; i++) {
        const row_t *x = &d->rows[i];
        bool up = x->bytes[1] > x->bytes[0];
        if (up) grew++;
        else if (x->bytes[1] < x->bytes[0]) { if (x->seen[1]) shrank++; else gone++; }
        if (!(up || (all && x->bytes[1] != x->bytes[0]))) continue;
        if (eligible++ >= top) continue;
        if (shown++ == 0) printf("\n%s, largest growth first:\n", all ? "changes" : "what grew and what is new");
        print_pair_row(x);
    }
    if (grew == 0) printf("\nnothing grew and nothing is new\n");
    if (shown < eligible) printf("\n... %zu more not shown (--top %zu)\n", eligible - shown, shown);
    if (!all && (shrank || gone))
        printf("\n%zu stack%s shrank and %zu %s gone (--all lists them)\n", shrank, shrank == 1 ? "" : "s",
               gone, gone == 1 ? "is" : "are");
}

/* A series: the reports, each kind's bytes report by report. */
static void print_series_totals(const diff_t *d, const kinds_t *kinds)
{
    char h[32];
    printf("leak report series: %zu reports (%s)\n", d->nrep, d->same_run ? "snapshots of one run" : "not all of one run");
    for (size_t i = 0; i < d->nrep; i++) printf("  %zu  %s\n", i + 1, d->files[i]);
    for (size_t k = 0; k < 4; k++) {
        if (!kind_wanted(kinds, ms_kind_key[k])) continue;
        printf("  %-16s", kind_title(ms_kind_key[k]));
        for (size_t i = 0; i < d->nrep; i++) {
            const total_t *t = ms_report_total(&d->r[i], ms_kind_key[k]);
            printf("%s%s", i ? " -> " : " ", ms_human(t ? t->bytes : 0, h, sizeof h));
        }
        printf("\n");
    }
}

static void print_series_row(const row_t *w, size_t nrep)
{
    char c1[32], g[40];
    signed_bytes(g, sizeof g, w->bytes[0], w->bytes[nrep - 1]);
    long long db = (long long)w->blocks[nrep - 1] - (long long)w->blocks[0];
    printf("\n%s bytes (%+lld %s) %s, grew in %u of %zu steps:", g, db, blocks_word(db),
           kind_title(w->rec->kind), w->steps_up, nrep - 1);
    for (size_t k = 0; k < nrep; k++)
        printf("%s%s", k ? " -> " : " ", w->seen[k] ? ms_commas(w->bytes[k], c1, sizeof c1) : "none");
    printf(" bytes\n");
    for (size_t k = 0; k < w->rec->nframes; k++) print_frame(stdout, k, &w->rec->frames[k]);
}

static void print_series(const diff_t *d, const kinds_t *kinds, uint64_t top, bool all)
{
    print_series_totals(d, kinds);
    size_t shown = 0, eligible = 0, grew = 0;
    for (size_t i = 0; i < d->nrows; i++) {
        const row_t *w = &d->rows[i];
        if (w->growth > 0) grew++;
        if (!(w->growth > 0 || (all && w->steps_up))) continue;
        if (eligible++ >= top) continue;
        if (shown++ == 0) printf("\n%s, largest growth first:\n", all ? "records that grew at some step" : "what grew from the first report to the last");
        print_series_row(w, d->nrep);
    }
    if (grew == 0) printf("\nnothing grew from the first report to the last\n");
    if (shown < eligible) printf("\n... %zu more not shown (--top %zu)\n", eligible - shown, shown);
}

int cmd_diff(int argc, char **argv)
{
    const char **files = calloc((size_t)argc + 1, sizeof *files), *kind = NULL, *v;
    uint64_t top = UINT64_MAX;
    bool all = false;
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = ms_opt_value(argc, argv, &i, "--kind"))) kind = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--top"))) {
            if (!ms_parse_u64(v, &top) || top == 0)
                ms_usage_error("diff --top %s: expected a positive number", v);
        } else if (strcmp(argv[i], "--all") == 0) all = true;
        else if (argv[i][0] == '-' && argv[i][1]) ms_unknown_option("diff", argv[i]);
        else files[nf++] = argv[i];
    }
    if (nf < 2) ms_usage_error("diff: expected two reports or more (memshim diff OLD.json NEW.json [MORE.json...])");
    kinds_t kinds;
    parse_kinds("diff", kind, &kinds);
    diff_t d;
    bool ok = build_diff(&d, files, (size_t)nf, &kinds);
    if (ok && nf == 2) print_pair(&d, &kinds, top, all);
    else if (ok) print_series(&d, &kinds, top, all);
    free_diff(&d);
    free(files);
    return ok && !ferror(stdout) ? 0 : 1;
}
