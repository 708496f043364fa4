/* plot.c - `memshim plot RSSLOG -o FILE.svg`: an RSS log (MEMSHIM_RSS_LOG,
 * format in memshim(7)) drawn as an SVG line chart: RSS and its peak, heap
 * bytes in use and mapped, against time, with axes in round units, a legend
 * and the peak marked.  Long logs are thinned per pixel column, keeping each
 * column's lowest and highest value, so spikes survive.
 *
 * A log of a tracked run also holds the top allocation sites' live bytes
 * ("# site" and "# sites" lines): drawn, unless --no-sites, as stacked areas
 * under the lines (massif's picture), the MAXSITES sites with the most bytes
 * at their highest each a band named in a second legend, the rest one grey
 * band, and the highest heap of the sites marked. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "memshim.h"
#include "table.h"

#define NSERIES 4

#define MAXSITES 8

typedef struct { uint32_t id; uint64_t bytes; } sitev_t;
typedef struct { double t; uint64_t total; size_t first, n; } srec_t;   /* one "# sites" line */
typedef struct { uint32_t id; char *name; uint64_t max; } sname_t;

typedef struct {
    srec_t  *rec;  size_t nrec, caprec;
    sitev_t *val;  size_t nval, capval;
    sname_t *name; size_t nname, capname;
    ms_table_t *by_id;          /* an id's place in name (shim/table.h) */
    uint32_t top[MAXSITES];     /* the bands, largest first */
    int      ntop;
    size_t   peak;              /* the record of the highest total */
} sites_t;

typedef struct {
    double  *t;                 /* seconds */
    double  *v[NSERIES];        /* bytes: rss, peak rss, heap in use, heap mapped */
    size_t   n, cap;
    long     pid;
    char     program[512];
    unsigned interval_ms;
    sites_t  S;
} rsslog_t;

static const struct { const char *name, *color, *dash; double width; } series[NSERIES] = {
    { "rss",          "#1f6fd1", NULL,  2.2 },
    { "peak rss",     "#1f6fd1", "2,3", 1.2 },
    { "heap in use",  "#e8710a", NULL,  1.8 },
    { "heap mapped",  "#2e9e4f", "6,3", 1.5 },
};

static bool push(rsslog_t *L, double t, const uint64_t v[NSERIES])
{
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 1024;
        double *nt = realloc(L->t, cap * sizeof *nt);
        if (!nt) return false;
        L->t = nt;
        for (int s = 0; s < NSERIES; s++) {
            double *nv = realloc(L->v[s], cap * sizeof *nv);
            if (!nv) return false;
            L->v[s] = nv;
        }
        L->cap = cap;
    }
    L->t[L->n] = t;
    for (int s = 0; s < NSERIES; s++) L->v[s][L->n] = (double)v[s];
    L->n++;
    return true;
}

static bool parse_fields(const char *line, uint64_t *out, int n)
{
    const char *p = line;
    for (int i = 0; i < n; i++) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p < '0' || *p > '9') return false;
        uint64_t x = 0;
        while (*p >= '0' && *p <= '9') {
            if (x > (UINT64_MAX - 9) / 10) return false;
            x = x * 10 + (uint64_t)(*p++ - '0');
        }
        out[i] = x;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return *p == 0;
}

/* ---- the top sites ("# site ID NAME", "# sites T TOTAL ID:BYTES...") ---------- */

/* A site's place in S->name; the key is its id + 1, as key 0 marks an
 * empty slot.  A log names tens of thousands of sites, and each value of
 * every "# sites" line is looked up (a search through the names took 7 s). */
typedef struct { uint64_t key; size_t at; } id_slot_t;
static void free_table(void *p, size_t n) { (void)n; free(p); }
static const ms_table_kind_t id_kind = MS_TABLE_KIND(id_slot_t, key, 64, malloc, free_table);

static sname_t *site_find(const sites_t *S, uint32_t id)
{
    const id_slot_t *slot = ms_table_find(S->by_id, &id_kind, (uint64_t)id + 1, NULL, NULL);
    return slot ? &S->name[slot->at] : NULL;
}

/* id's entry, made if it has none. */
static sname_t *site_of(sites_t *S, uint32_t id)
{
    sname_t *n = site_find(S, id);
    if (n) return n;
    if (!ms_table_room(&S->by_id, &id_kind) ||
        !ms_grow((void **)&S->name, &S->capname, S->nname + 1, sizeof *S->name)) return NULL;
    ms_table_add(S->by_id, &id_kind, &(id_slot_t){ (uint64_t)id + 1, S->nname });
    S->name[S->nname] = (sname_t){ .id = id };
    return &S->name[S->nname++];
}

/* A site id: decimal, below 2^32 (sscanf's %u took "-5" as 4294967291 and
 * wrapped larger ones). */
static bool parse_id(const char *s, uint32_t *id)
{
    uint64_t x;
    if (!ms_parse_u64(s, &x) || x > UINT32_MAX) return false;
    *id = (uint32_t)x;
    return true;
}

#define SEP " \t\r\n"                       /* what separates a line's fields */

/* "# site 12 make_node (tree.c:40)": the last name of an id counts.  The
 * line is cut up in place. */
static bool parse_site(sites_t *S, char *line)
{
    char *save, *id_s = strtok_r(line + 7, SEP, &save), *name = strtok_r(NULL, "\r\n", &save);
    uint32_t id;
    if (name) name += strspn(name, " \t");
    if (!parse_id(id_s, &id) || !name || !*name) return false;
    sname_t *n = site_of(S, id);
    if (!n) return false;
    free(n->name);
    return (n->name = strdup(name)) != NULL;
}

/* "# sites 1500 5000304 3:3000000 2:2000000": taken whole or not at all
 * (false: malformed).  Numbers are decimal below 2^64, with no sign (%llu
 * took "-5" as 2^64-5: a peak of 16384 PiB).  The line is cut up in place. */
static bool parse_sites(sites_t *S, char *line)
{
    char *save, *tok;
    uint64_t t, total;
    if (!ms_parse_u64(strtok_r(line + 8, SEP, &save), &t) || !ms_parse_u64(strtok_r(NULL, SEP, &save), &total) ||
        !ms_grow((void **)&S->rec, &S->caprec, S->nrec + 1, sizeof *S->rec)) return false;
    srec_t r = { .t = (double)t / 1000.0, .total = total, .first = S->nval };
    while ((tok = strtok_r(NULL, SEP, &save))) {
        char *colon = strchr(tok, ':');
        uint32_t id;
        uint64_t b;
        if (colon) *colon = 0;
        if (!colon || !parse_id(tok, &id) || !ms_parse_u64(colon + 1, &b) ||
            !ms_grow((void **)&S->val, &S->capval, S->nval + 1, sizeof *S->val)) {
            S->nval = r.first;
            return false;
        }
        S->val[S->nval++] = (sitev_t){ id, b };
        r.n++;
    }
    S->rec[S->nrec++] = r;
    return true;
}

/* The bands: the sites highest at their highest, largest first. */
static void choose_sites(sites_t *S)
{
    for (size_t i = 0; i < S->nrec; i++) {
        const srec_t *r = &S->rec[i];
        if (r->total > S->rec[S->peak].total) S->peak = i;
        for (size_t j = r->first; j < r->first + r->n; j++) {
            sname_t *n = site_of(S, S->val[j].id);
            if (n && S->val[j].bytes > n->max) n->max = S->val[j].bytes;
        }
    }
    uint64_t topmax[MAXSITES];
    S->ntop = 0;
    for (size_t i = 0; i < S->nname; i++) {
        uint64_t m = S->name[i].max;
        int j;
        if (!m) continue;
        if (S->ntop < MAXSITES) j = S->ntop++;
        else if (topmax[MAXSITES - 1] >= m) continue;
        else j = MAXSITES - 1;
        for (; j > 0 && topmax[j - 1] < m; j--) { S->top[j] = S->top[j - 1]; topmax[j] = topmax[j - 1]; }
        S->top[j] = S->name[i].id;
        topmax[j] = m;
    }
}

/* A record's bytes of site id (0 if not among its top). */
static uint64_t rec_bytes(const sites_t *S, const srec_t *r, uint32_t id)
{
    for (size_t j = r->first; j < r->first + r->n; j++) if (S->val[j].id == id) return S->val[j].bytes;
    return 0;
}

static void sites_free(sites_t *S)
{
    for (size_t i = 0; i < S->nname; i++) free(S->name[i].name);
    free(S->name);
    free(S->by_id);
    free(S->rec);
    free(S->val);
}

/* One line of f into *line (NUL-terminated, newline kept), its length, or
 * -1 at the end.  A line longer than LINE_MAX_BYTES is read to its end but
 * kept cut (*cut set): no line of a log is that long, and /dev/zero, or a
 * file with no newline, would otherwise grow the buffer without bound. */
#define LINE_MAX_BYTES ((size_t)1 << 20)
static ssize_t read_line(FILE *f, char **line, size_t *cap, bool *cut)
{
    size_t n = 0;
    int ch;
    *cut = false;
    while ((ch = getc(f)) != EOF) {
        if (n + 2 > *cap && n < LINE_MAX_BYTES && !ms_grow((void **)line, cap, n + 2, 1)) return -1;
        if (n < LINE_MAX_BYTES) (*line)[n++] = (char)ch;
        else *cut = true;
        if (ch == '\n') break;
    }
    if (ch == EOF && n == 0) return -1;
    (*line)[n] = 0;
    return (ssize_t)n;
}

static bool load_log(const char *path, rsslog_t *L)
{
    memset(L, 0, sizeof *L);
    L->pid = -1;
    FILE *f = fopen(path, "r");
    if (!f) { ms_warn("%s: %s", path, strerror(errno)); return false; }
    char *line = NULL;
    size_t cap = 0, lineno = 0, bad = 0, first_bad = 0;
    const char *want = NULL;                /* what the first malformed line should be */
    ssize_t len;
    bool ok = true, header = false, cut;
    char head[19];                      /* looked at before a line is read: /dev/zero has none */
    size_t got = fread(head, 1, sizeof head, f);
    if (got && (got < sizeof head || memcmp(head, "# memshim rss-log 1", sizeof head) != 0)) {
        ms_warn("%s: not a memshim RSS log (it starts with \"# memshim rss-log 1\")", path);
        ok = false;
    }
    header = got > 0;
    while (ok && (len = read_line(f, &line, &cap, &cut)) > 0) {
        if (++lineno == 1) continue;    /* the rest of the header line */
        if (cut) {
            if (!bad++) {
                first_bad = lineno;
                want = "a line shorter than 1 MiB";
            }
            continue;
        }
        if (line[0] == '#') {
            int pid;
            unsigned iv;
            if (sscanf(line, "# pid %d interval_ms %u", &pid, &iv) == 2) { L->pid = pid; L->interval_ms = iv; }
            else if (strncmp(line, "# program ", 10) == 0) {
                snprintf(L->program, sizeof L->program, "%s", line + 10);
                L->program[strcspn(L->program, "\r\n")] = 0;
            } else if (strncmp(line, "# sites ", 8) == 0) {
                if (!parse_sites(&L->S, line) && !bad++) {
                    first_bad = lineno;
                    want = "\"# sites TIME_MS TOTAL ID:BYTES...\": decimal numbers, ids below 2^32";
                }
            } else if (strncmp(line, "# site ", 7) == 0) {
                if (!parse_site(&L->S, line) && !bad++) {
                    first_bad = lineno;
                    want = "\"# site ID NAME\": a decimal id below 2^32";
                }
            }
            continue;
        }
        uint64_t v[5];
        if (!parse_fields(line, v, 5)) {
            if (!bad++) {
                first_bad = lineno;
                want = "5 decimal numbers: time_ms rss peak_rss heap_in_use heap_mapped";
            }
            continue;
        }
        uint64_t vals[NSERIES] = { v[1], v[2], v[3], v[4] };
        if (!push(L, (double)v[0] / 1000.0, vals)) { ms_warn("out of memory"); ok = false; break; }
    }
    free(line);
    if (ok && ferror(f)) { ms_warn("%s: %s", path, strerror(errno)); ok = false; }
    fclose(f);
    if (!ok) return false;
    if (!header) { ms_warn("%s: empty file, not a memshim RSS log", path); return false; }
    if (bad)
        ms_warn("%s: %zu malformed line%s skipped (first: line %zu, expected %s)", path, bad, bad == 1 ? "" : "s",
                first_bad, want);
    if (L->n == 0) { ms_warn("%s: no samples to draw", path); return false; }
    return true;
}

/* A round step (1, 2, 2.5 or 5 times a power of ten) giving about `want` ticks. */
static double nice_step(double range, int want)
{
    if (range <= 0) return 1;
    double raw = range / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
}

static void fmt_num(char *buf, size_t cap, double v)
{
    if (fabs(v - round(v)) < 1e-9) snprintf(buf, cap, "%.0f", v);
    else snprintf(buf, cap, "%g", v);
}

/* The chart's geometry: the plot area (pixels), the time and value ranges,
 * the ticks, in the unit that keeps the top tick between 1 and 1024. */
typedef struct {
    double W, H, ml, mr, mt, mb, pw, ph;
    double t0, t1, scale, ystep, ytop, xstep, xfirst;
    int    unit;                            /* index into units */
    size_t peak;                            /* the sample of the highest rss */
} chart_t;

static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };

static void layout(const rsslog_t *L, chart_t *c)
{
    *c = (chart_t){ .W = 960, .H = 540, .ml = 90, .mr = 30, .mt = 64, .mb = 96, .scale = 1 };
    if (L->S.ntop) c->H += 12 + 20 * ((L->S.ntop + 2) / 2);     /* the sites' legend, two columns */
    c->pw = c->W - c->ml - c->mr;
    c->ph = 540 - c->mt - c->mb;
    c->t0 = L->t[0];
    c->t1 = L->t[L->n - 1];
    if (c->t1 <= c->t0) c->t1 = c->t0 + fmax(1, fabs(c->t0) * 1e-9);    /* + 1 may not move it */
    double vmax = 0;
    for (size_t i = 0; i < L->n; i++) {
        for (int s = 0; s < NSERIES; s++) if (L->v[s][i] > vmax) vmax = L->v[s][i];
        if (L->v[0][i] > L->v[0][c->peak]) c->peak = i;
    }
    for (size_t i = 0; L->S.ntop && i < L->S.nrec; i++)
        if ((double)L->S.rec[i].total > vmax) vmax = (double)L->S.rec[i].total;
    while (c->unit < 4 && vmax / c->scale >= 1024) { c->scale *= 1024; c->unit++; }
    c->ystep = nice_step(vmax / c->scale, 5);
    c->ytop = ceil(vmax / c->scale / c->ystep) * c->ystep;
    if (c->ytop <= 0) c->ytop = c->ystep;
    c->xstep = nice_step(c->t1 - c->t0, 8);
    c->xfirst = ceil(c->t0 / c->xstep) * c->xstep;
}

static double X(const chart_t *c, double t) { return c->ml + (t - c->t0) / (c->t1 - c->t0) * c->pw; }
static double Y(const chart_t *c, double b) { return c->mt + c->ph - (b / c->scale) / c->ytop * c->ph; }

/* name into out (cap bytes), cut between characters with "..." marking
 * the cut: a name cut in the middle of one made the SVG invalid. */
static const char *cut_name(char *out, size_t cap, const char *name)
{
    size_t n = ms_utf8_prefix(name, cap - 1, SIZE_MAX);
    if (name[n]) n = ms_utf8_prefix(name, cap - 4, SIZE_MAX);
    snprintf(out, cap, "%.*s%s", (int)n, name, name[n] ? "..." : "");
    return out;
}

/* The SVG's head, the title (the program's name unless given) and a line
 * saying what was sampled. */
static void svg_title(FILE *o, const rsslog_t *L, const chart_t *c, const char *title)
{
    fprintf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            c->W, c->H, c->W, c->H);
    fprintf(o, "<title>");
    ms_xml_text(o, title ? title : "memshim RSS log");
    fprintf(o, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    fprintf(o, "<text x=\"%.0f\" y=\"30\" font-size=\"19\" font-weight=\"bold\" fill=\"#222\">", c->ml);
    if (title) ms_xml_text(o, title);
    else {
        fputs("Memory of ", o);
        char prog[90];
        ms_xml_text(o, cut_name(prog, sizeof prog, L->program[0] ? L->program : "the program"));
        if (L->pid >= 0) fprintf(o, " (pid %ld)", L->pid);
    }
    fprintf(o, "</text>\n");
    char pk[32];
    fprintf(o, "<text x=\"%.0f\" y=\"50\" font-size=\"13\" fill=\"#555\">%zu samples over %.1f s",
            c->ml, L->n, c->t1 - c->t0);
    if (L->interval_ms) fprintf(o, ", every %u ms", L->interval_ms);
    fprintf(o, "; peak rss %s</text>\n", ms_human((uint64_t)L->v[0][c->peak], pk, sizeof pk));
}

/* Ticks are counted, not stepped to the end: past 2^53 ms a step of a
 * second adds nothing to a double, and a log with such times drew lines
 * until the disk was full. */
#define MAX_TICKS 64
static void svg_axes(FILE *o, const chart_t *c)
{
    double ml = c->ml, mt = c->mt, pw = c->pw, ph = c->ph, ystep = c->ystep, xstep = c->xstep;
    char s1[32];
    fprintf(o, "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n");
    for (double y = 0; y <= c->ytop + ystep / 2 && y / ystep <= MAX_TICKS; y += ystep)
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ml, Y(c, y * c->scale), ml + pw,
                Y(c, y * c->scale));
    for (int k = 0; k <= MAX_TICKS; k++) {
        double x = c->xfirst + k * xstep;
        if (x > c->t1 + xstep / 1000) break;
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", X(c, x), mt, X(c, x), mt + ph);
    }
    fprintf(o, "</g>\n<g stroke=\"#444\" stroke-width=\"1.2\">\n"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n</g>\n",
            ml, mt + ph, ml + pw, mt + ph, ml, mt, ml, mt + ph);
    fprintf(o, "<g font-size=\"12\" fill=\"#333\">\n");
    for (double y = 0; y <= c->ytop + ystep / 2 && y / ystep <= MAX_TICKS; y += ystep) {
        fmt_num(s1, sizeof s1, y);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ml - 8, Y(c, y * c->scale) + 4, s1);
    }
    for (int k = 0; k <= MAX_TICKS; k++) {
        double x = c->xfirst + k * xstep;
        if (x > c->t1 + xstep / 1000) break;
        fmt_num(s1, sizeof s1, x);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", X(c, x), mt + ph + 18, s1);
    }
    fprintf(o, "</g>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">"
               "time (s)</text>\n", ml + pw / 2, mt + ph + 40);
    fprintf(o, "<text x=\"20\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\" "
               "transform=\"rotate(-90 20 %.1f)\">memory (%s)</text>\n", mt + ph / 2, mt + ph / 2, units[c->unit]);
}

/* The area under rss, then the lines; long logs thinned to each pixel
 * column's lowest and highest value, so spikes survive. */
static void svg_series(FILE *o, const rsslog_t *L, const chart_t *c)
{
    size_t cols = (size_t)c->pw, step_pts = L->n > 4 * cols ? L->n / (2 * cols) : 1;
    static const int order[] = { -1, 3, 2, 1, 0 };      /* the area first, rss on top */
    for (size_t oi = 0; oi < sizeof order / sizeof *order; oi++) {
        int s = order[oi], sv = s < 0 ? 0 : s;
        if (s < 0) fprintf(o, "<path fill=\"#1f6fd1\" fill-opacity=\"0.08\" stroke=\"none\" d=\"M%.1f,%.1f", X(c, L->t[0]), c->mt + c->ph);
        else fprintf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-linejoin=\"round\"%s%s%s points=\"",
                     series[s].color, series[s].width, series[s].dash ? " stroke-dasharray=\"" : "",
                     series[s].dash ? series[s].dash : "", series[s].dash ? "\"" : "");
        for (size_t i = 0; i < L->n; i += step_pts) {
            size_t end = i + step_pts < L->n ? i + step_pts : L->n, lo = i, hi = i;
            for (size_t k = i; k < end; k++) {
                if (L->v[sv][k] < L->v[sv][lo]) lo = k;
                if (L->v[sv][k] > L->v[sv][hi]) hi = k;
            }
            size_t a = lo < hi ? lo : hi, b = lo < hi ? hi : lo;
            fprintf(o, s < 0 ? " L%.1f,%.1f" : " %.1f,%.1f", X(c, L->t[a]), Y(c, L->v[sv][a]));
            if (b != a) fprintf(o, s < 0 ? " L%.1f,%.1f" : " %.1f,%.1f", X(c, L->t[b]), Y(c, L->v[sv][b]));
        }
        if (s < 0) fprintf(o, " L%.1f,%.1f Z\"/>\n", X(c, L->t[L->n - 1]), c->mt + c->ph);
        else fprintf(o, "\"/>\n");
    }
}

/* The peak marked, and the legend below the x axis label. */
static void svg_peak_legend(FILE *o, const rsslog_t *L, const chart_t *c)
{
    char pk[32];
    double px = X(c, L->t[c->peak]), py = Y(c, L->v[0][c->peak]);
    bool left = px > c->ml + c->pw * 0.7;
    fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#d62728\" stroke=\"#fff\" stroke-width=\"1.5\"/>\n", px, py);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12.5\" font-weight=\"bold\" fill=\"#d62728\" "
               "stroke=\"#ffffff\" stroke-width=\"4\" paint-order=\"stroke\" "
               "text-anchor=\"%s\">peak rss %s at %.2f s</text>\n",
            left ? px - 9 : px + 9, py < c->mt + 20 ? py + 18 : py - 9, left ? "end" : "start",
            ms_human((uint64_t)L->v[0][c->peak], pk, sizeof pk), L->t[c->peak]);
    double lx = c->ml, ly = c->mt + c->ph + 74;
    for (int s = 0; s < NSERIES; s++) {
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s%s/>\n",
                lx, ly - 4, lx + 28, ly - 4, series[s].color, series[s].width + 0.5,
                series[s].dash ? " stroke-dasharray=\"" : "", series[s].dash ? series[s].dash : "",
                series[s].dash ? "\"" : "");
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12.5\" fill=\"#222\">%s</text>\n", lx + 34, ly, series[s].name);
        lx += 150;
    }
}

/* ---- the top sites drawn: stacked areas, their legend, the heap's peak ------- */

/* Band colours apart from the lines' blue, orange and green. */
static const char *const site_color[MAXSITES + 1] = {
    "#8c6bb1", "#17becf", "#e377c2", "#bcbd22", "#c49c94", "#9edae5", "#f7b6d2", "#dbdb8d",
    "#bab0ac",      /* the other sites */
};

/* Record i's top edge of band k (bands 0..ntop-1, then ntop: the others). */
static double band_top(const sites_t *S, size_t i, int k)
{
    const srec_t *r = &S->rec[i];
    if (k >= S->ntop) return (double)r->total;
    double sum = 0;
    for (int j = 0; j <= k; j++) sum += (double)rec_bytes(S, r, S->top[j]);
    return sum;
}

/* Each band a closed path: its top edge forwards, the one below backwards.
 * Long logs: every stride-th record (and the last). */
static void svg_sites(FILE *o, const rsslog_t *L, const chart_t *c)
{
    const sites_t *S = &L->S;
    size_t stride = S->nrec > 2 * (size_t)c->pw ? S->nrec / (size_t)c->pw : 1;
    fprintf(o, "<g class=\"sites\" stroke=\"#ffffff\" stroke-width=\"0.5\" fill-opacity=\"0.75\">\n");
    for (int k = 0; k <= S->ntop; k++) {
        fprintf(o, "<path class=\"site-area\" fill=\"%s\" d=\"", site_color[k < S->ntop ? k : MAXSITES]);
        char cmd = 'M';
        for (size_t i = 0; i < S->nrec; i = i + stride < S->nrec || i == S->nrec - 1 ? i + stride : S->nrec - 1) {
            fprintf(o, "%c%.1f,%.1f ", cmd, X(c, S->rec[i].t), Y(c, band_top(S, i, k)));
            cmd = 'L';
        }
        for (size_t i = S->nrec; i-- > 0;)
            if (i % stride == 0 || i == S->nrec - 1)
                fprintf(o, "L%.1f,%.1f ", X(c, S->rec[i].t), Y(c, k ? band_top(S, i, k - 1) : 0));
        fprintf(o, "Z\"/>\n");
    }
    fprintf(o, "</g>\n");
}

/* The highest heap of the sites: a marker on top of the stack, a dashed
 * line down to the time axis, its size and time. */
static void svg_sites_peak(FILE *o, const rsslog_t *L, const chart_t *c)
{
    const srec_t *r = &L->S.rec[L->S.peak];
    double px = X(c, r->t), py = Y(c, (double)r->total);
    bool left = px > c->ml + c->pw * 0.7;
    char pk[32];
    fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#7a1f1f\" stroke-width=\"1\" "
               "stroke-dasharray=\"3,3\"/>\n", px, py, px, c->mt + c->ph);
    fprintf(o, "<path class=\"heap-peak\" d=\"M%.1f,%.1f l6,-6 l-6,-6 l-6,6 Z\" fill=\"#7a1f1f\"/>\n", px, py + 6);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12.5\" font-weight=\"bold\" fill=\"#7a1f1f\" "
               "stroke=\"#ffffff\" stroke-width=\"4\" paint-order=\"stroke\" text-anchor=\"%s\">"
               "heap peak %s at %.2f s</text>\n",
            left ? px - 10 : px + 10, py + 16 > c->mt + c->ph - 4 ? py - 10 : py + 16, left ? "end" : "start",
            ms_human(r->total, pk, sizeof pk), r->t);
}

/* The bands named, two columns under the lines' legend: function (file:line)
 * and the site's most bytes. */
static void svg_sites_legend(FILE *o, const rsslog_t *L, const chart_t *c)
{
    const sites_t *S = &L->S;
    double y0 = c->mt + c->ph + 100;
    for (int k = 0; k <= S->ntop; k++) {
        double lx = c->ml + (k % 2) * 430, ly = y0 + (k / 2) * 20;
        char name[72], mx[32];
        const sname_t *n = k < S->ntop ? site_find(S, S->top[k]) : NULL;
        if (k == S->ntop) snprintf(name, sizeof name, "other sites");
        else if (n && n->name) cut_name(name, sizeof name, n->name);
        else snprintf(name, sizeof name, "site %u", (unsigned)S->top[k]);
        fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\" fill=\"%s\"/>\n", lx, ly - 10,
                site_color[k < S->ntop ? k : MAXSITES]);
        fprintf(o, "<text class=\"site-legend\" x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#222\">", lx + 20, ly);
        ms_xml_text(o, name);
        if (n) fprintf(o, " <tspan fill=\"#666\">(up to %s)</tspan>", ms_human(n->max, mx, sizeof mx));
        fprintf(o, "</text>\n");
    }
}

int cmd_plot(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *title = NULL, *v;
    int sites = -1;                         /* -1: when the log has them */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sites") == 0) { sites = 1; continue; }
        if (strcmp(argv[i], "--no-sites") == 0) { sites = 0; continue; }
        if ((v = ms_opt_value(argc, argv, &i, "-o")) || (v = ms_opt_value(argc, argv, &i, "--output"))) out = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--title"))) title = v;
        else if (argv[i][0] == '-' && argv[i][1]) ms_unknown_option("plot", argv[i]);
        else if (!in) in = argv[i];
        else ms_usage_error("plot: one RSS log at a time ('%s' is one too many)", argv[i]);
    }
    if (!in) ms_usage_error("plot: no RSS log given (memshim plot RSSLOG -o FILE.svg)");
    if (!out) ms_usage_error("plot: no output file given (-o FILE.svg)");
    rsslog_t L;
    if (!load_log(in, &L)) { sites_free(&L.S); return 1; }
    if (sites == 1 && !L.S.nrec) {
        ms_warn("%s: no allocation sites in the log (they are logged when tracking is on)", in);
        sites_free(&L.S);
        return 1;
    }
    if (sites) choose_sites(&L.S);
    chart_t c;
    layout(&L, &c);

    ms_output_t of;
    if (!ms_output_open(&of, out, in)) { sites_free(&L.S); return 1; }
    FILE *o = of.f;
    svg_title(o, &L, &c, title);
    svg_axes(o, &c);
    if (L.S.ntop) svg_sites(o, &L, &c);
    svg_series(o, &L, &c);
    if (L.S.ntop) svg_sites_peak(o, &L, &c);
    svg_peak_legend(o, &L, &c);
    if (L.S.ntop) svg_sites_legend(o, &L, &c);
    fprintf(o, "</svg>\n");
    if (!ms_output_close(&of, true)) return 1;
    for (int s = 0; s < NSERIES; s++) free(L.v[s]);
    free(L.t);
    sites_free(&L.S);
    return 0;
}
