/* graph.c - `memshim graph REPORT.json -o FILE.svg`: the collector objects a
 * leak report says were alive only through reference cycles at exit (its
 * "cycles" member, format in memshim(7)), drawn with Graphviz as objgraph
 * draws Python's: one box per object (type name, size, short address; the
 * full address as tooltip), one arrow per reference, each cycle group in its
 * own captioned cluster, one colour per type with a legend.
 *
 * The DOT text is built in memory and fed to dot(1) on its standard input
 * (fork/exec, found in PATH); dot writes a temporary file beside FILE, which
 * is renamed over FILE when dot succeeds, so a failure leaves nothing half
 * written.  -o FILE.dot writes the DOT text itself, without dot.
 *
 * The report is read by leaks.c (its cycles): a malformed file earns one
 * line naming the file and the field. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "leaks.h"

#define DEFAULT_MAX_OBJECTS 500
#define MAX_MAX_OBJECTS     100000
#define MAX_LEGEND          12            /* types listed in the legend */
#define MAX_TYPE_CHARS      40            /* longer type names are shortened in boxes */

/* ---- choosing what to draw ---------------------------------------------------------- */

static int by_size(const void *a, const void *b)
{
    const ggroup_t *x = *(ggroup_t *const *)a, *y = *(ggroup_t *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    if (x->nobj != y->nobj) return x->nobj < y->nobj ? 1 : -1;
    return x->number < y->number ? -1 : x->number > y->number;
}

typedef struct {
    size_t   groups, objs, edges;  uint64_t bytes;      /* drawn */
    size_t   out_groups, out_objs; uint64_t out_bytes;  /* left out entirely */
    size_t   cut_objs;             const ggroup_t *cut; /* the group drawn in part */
    size_t  *order;                                     /* drawn groups, biggest first */
} selection_t;

/* The biggest groups (bytes, then objects) that fit in max objects; when
 * not even the biggest fits, its first max objects. */
static void select_groups(report_t *c, const ggroup_t *only, uint64_t max, selection_t *s)
{
    memset(s, 0, sizeof *s);
    ggroup_t **order = calloc(c->ngroups ? c->ngroups : 1, sizeof *order);
    s->order = calloc(c->ngroups ? c->ngroups : 1, sizeof *s->order);
    if (!order || !s->order) { free(order); free(s->order); s->order = NULL; return; }
    size_t n = 0;
    for (size_t g = 0; g < c->ngroups; g++)
        if ((!only || &c->groups[g] == only) && c->groups[g].nobj) order[n++] = &c->groups[g];
    qsort(order, n, sizeof *order, by_size);
    uint64_t budget = max;
    for (size_t i = 0; i < n; i++) {
        ggroup_t *G = order[i];
        if (G->nobj <= budget) G->shown = G->nobj;
        else if (s->groups == 0 && budget) { G->shown = (size_t)budget; s->cut = G; s->cut_objs = G->nobj - G->shown; }
        else { s->out_groups++; s->out_objs += G->nobj; s->out_bytes += G->bytes; continue; }
        budget -= G->shown;
        s->order[s->groups++] = (size_t)(G - c->groups);
        s->objs += G->shown;
        for (size_t k = 0; k < G->shown; k++) {
            c->objs[G->first_obj + k].drawn = true;
            s->bytes += c->objs[G->first_obj + k].size;
        }
        for (size_t e = G->first_edge; e < G->first_edge + G->nedge; e++)
            if (c->objs[c->edges[e].from].drawn && c->objs[c->edges[e].to].drawn) s->edges++;
    }
    free(order);
}

/* ---- DOT ------------------------------------------------------------------------- */

/* Soft fills with a darker border of the same hue, one pair per type. */
static const struct { const char *fill, *line; } palette[] = {
    { "#cfe2ff", "#3b6fb6" }, { "#ffdcb0", "#c27412" }, { "#d3f0cd", "#3b8a35" }, { "#f8cfcf", "#b53d3d" },
    { "#e3d6f5", "#6f4ea6" }, { "#fff1a8", "#9c8410" }, { "#cdeeed", "#2a8581" }, { "#f6d3ea", "#a5448a" },
    { "#e8ddcf", "#7a5f42" }, { "#e2e2e2", "#5f5f5f" },
};
#define NPALETTE (sizeof palette / sizeof *palette)

typedef struct { const char *name; size_t count; uint64_t bytes; } type_t;

static int by_type_bytes(const void *a, const void *b)
{
    const type_t *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->name, y->name);
}
static int by_type_name(const void *a, const void *b)
{
    return strcmp(((const type_t *)a)->name, ((const type_t *)b)->name);
}

/* The types of the drawn objects, biggest first; sets each object's colour. */
static type_t *collect_types(report_t *c, size_t *ntypes)
{
    type_t *t = calloc(c->nobjs ? c->nobjs : 1, sizeof *t);
    if (!t) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < c->nobjs; i++)
        if (c->objs[i].drawn) t[n++] = (type_t){ c->objs[i].type, 1, c->objs[i].size };
    qsort(t, n, sizeof *t, by_type_name);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && strcmp(t[m - 1].name, t[i].name) == 0) { t[m - 1].count++; t[m - 1].bytes += t[i].bytes; }
        else t[m++] = t[i];
    }
    qsort(t, m, sizeof *t, by_type_bytes);
    for (size_t i = 0; i < c->nobjs; i++) {
        if (!c->objs[i].drawn) continue;
        type_t key = { c->objs[i].type, 0, 0 };
        for (size_t k = 0; k < m; k++)
            if (by_type_name(&key, &t[k]) == 0) { c->objs[i].color = k % NPALETTE; break; }
    }
    *ntypes = m;
    return t;
}

/* Text inside an HTML-like label: markup characters escaped, control
 * characters shown as '?', at most max characters (UTF-8) then an ellipsis. */
static void html_text(FILE *o, const char *s, size_t max)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) != 0x80 && chars++ == max) { fputs("\xe2\x80\xa6", o); return; }
        switch (*p) {
        case '&': fputs("&amp;", o); break;
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '"': fputs("&quot;", o); break;
        default: fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, o);
        }
    }
}

/* Text inside a quoted DOT string (a tooltip): quotes and backslashes escaped. */
static void dot_text(FILE *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', o);
        fputc((unsigned char)*s < 0x20 ? '?' : *s, o);
    }
}

/* "…2010110": the last 7 hex digits, enough to tell neighbours apart. */
static void short_addr(FILE *o, const char *addr)
{
    const char *hex = strncmp(addr, "0x", 2) == 0 ? addr + 2 : addr;
    size_t n = strlen(hex);
    if (n <= 8) html_text(o, addr, 20);
    else { fputs("\xe2\x80\xa6", o); html_text(o, hex + n - 7, 7); }
}

static void plural(FILE *o, uint64_t n, const char *one, const char *many)
{
    char c[32];
    fprintf(o, "%s %s", ms_commas(n, c, sizeof c), n == 1 ? one : many);
}

static void bytes_text(FILE *o, uint64_t b)
{
    char c[32], h[32];
    if (b < 10240) plural(o, b, "byte", "bytes");
    else fprintf(o, "%s (%s bytes)", ms_human(b, h, sizeof h), ms_commas(b, c, sizeof c));
}

#define FONT "Helvetica"

/* A guess at a cluster's layout, in inches: dot breaks cycles by a depth-first
 * walk from the first box, reversing the edges back to the walk's path, and
 * ranks what remains; here the longest path from a source gives each box its
 * rank.  top and bottom are objects (indices into objs) on the first and
 * last ranks. */
typedef struct { double width, height; size_t top, bottom; } shape_t;

static void estimate_shape(const report_t *c, const ggroup_t *G, shape_t *out)
{
    size_t n = G->shown, f = G->first_obj;
    out->top = out->bottom = f;
    out->width = 2.2;
    out->height = 1.5;
    size_t *rank = calloc(n, sizeof *rank), *state = calloc(n, sizeof *state), *stack = calloc(n, sizeof *stack),
           *next = calloc(n, sizeof *next), *topo = calloc(n, sizeof *topo), *per = calloc(n, sizeof *per);
    if (!rank || !state || !stack || !next || !topo || !per) goto done;
    /* out-edges of local node u: c->edges[G->first_edge .. +nedge] with from == f + u */
    size_t ntopo = 0;
    for (size_t root = 0; root < n; root++) {
        if (state[root]) continue;
        size_t sp = 0;
        stack[sp++] = root;
        state[root] = 1;                                   /* 1: on the path, 2: done */
        while (sp) {
            size_t u = stack[sp - 1];
            bool pushed = false;
            while (next[u] < G->nedge) {
                const gedge_t *E = &c->edges[G->first_edge + next[u]++];
                if (E->from != f + u || E->to < f || E->to >= f + n) continue;
                size_t v = E->to - f;
                if (!state[v]) { state[v] = 1; stack[sp++] = v; pushed = true; break; }
            }
            if (!pushed) { state[u] = 2; topo[ntopo++] = u; sp--; }
        }
    }
    /* topo is in finishing order; walk it backwards: a forward edge u->v has
     * v finishing before u, a back edge has v finishing after u. */
    size_t *pos = state;                                   /* reuse: finishing position */
    for (size_t i = 0; i < ntopo; i++) pos[topo[i]] = i;
    size_t maxrank = 0;
    for (size_t i = ntopo; i-- > 0;) {
        size_t u = topo[i];
        for (size_t e = G->first_edge; e < G->first_edge + G->nedge; e++) {
            const gedge_t *E = &c->edges[e];
            if (E->from != f + u || E->to < f || E->to >= f + n || E->to == E->from) continue;
            size_t v = E->to - f;
            if (pos[v] < pos[u] && rank[v] < rank[u] + 1) rank[v] = rank[u] + 1;
        }
    }
    size_t widest = 1, longest = 0;
    for (size_t u = 0; u < n; u++) {
        if (rank[u] > maxrank) { maxrank = rank[u]; out->bottom = f + u; }
        if (++per[rank[u]] > widest) widest = per[rank[u]];
        size_t len = strlen(c->objs[f + u].type);
        if (len > longest) longest = len;
    }
    /* a box: its type in bold 11 pt or "40 bytes . ...2010110" in 9 pt */
    double box = (longest > MAX_TYPE_CHARS ? MAX_TYPE_CHARS : longest) * 0.11;
    if (box < 1.6) box = 1.6;
    out->width = widest * (box + 0.3) + 0.5 + (maxrank > 0 ? 0.4 : 0.3);
    out->height = (maxrank + 1) * 0.95 + 0.5;
done:
    free(rank); free(state); free(stack); free(next); free(topo); free(per);
}

static void dot_head(FILE *o, const selection_t *s)
{
    fputs("digraph memshim_cycles {\n"
          "  graph [rankdir=TB, fontname=\"" FONT "\", fontsize=11, fontcolor=\"#333333\", bgcolor=\"white\",\n"
          "         labelloc=t, labeljust=l, nodesep=0.3, ranksep=0.45, pad=0.3, newrank=true,\n"
          "         style=\"rounded,filled\", color=\"#c8c8c8\",\n"
          "         fillcolor=\"#f8f8f8\", penwidth=1];\n"
          "  node [shape=box, style=\"rounded,filled\", fontname=\"" FONT "\", fontsize=11, penwidth=1.3,\n"
          "        margin=\"0.14,0.06\", height=0.4];\n"
          "  edge [color=\"#4d4d4d\", arrowsize=0.7, penwidth=1.1];\n", o);
    /* Crossing reduction and ranking are superlinear: with many objects, dot
     * gets fewer iterations (500 tangled objects: seconds, not many minutes). */
    if (s->objs > 100)
        fputs("  graph [mclimit=0.1, nslimit=1, nslimit1=1, searchsize=20, remincross=false];\n", o);
}

/* "■ Node ×3, 120 bytes", four a line, the biggest types first. */
static void dot_legend(FILE *o, const type_t *types, size_t ntypes)
{
    size_t shown = ntypes < MAX_LEGEND ? ntypes : MAX_LEGEND;
    for (size_t i = 0; i < shown; i++) {
        fprintf(o, "%s<font color=\"%s\" point-size=\"14\">\xe2\x96\xa0</font>&#160;<b>", i % 4 ? "&#160;&#160;&#160;&#160;" : "",
                palette[i % NPALETTE].line);
        html_text(o, types[i].name, MAX_TYPE_CHARS);
        fprintf(o, "</b>&#160;\xc3\x97%zu, ", types[i].count);
        bytes_text(o, types[i].bytes);
        if (i % 4 == 3 || i + 1 == shown) fputs("<br align=\"left\"/>", o);
    }
    if (shown < ntypes) {
        fputs("and ", o);
        plural(o, ntypes - shown, "other type", "other types");
        fputs("<br align=\"left\"/>", o);
    }
}

/* The title, what is shown and left out, the legend of types: lines of
 * text, left-aligned. */
static void dot_title(FILE *o, const report_t *c, const selection_t *s, const type_t *types, size_t ntypes)
{
    fputs("  label=<<font point-size=\"16\"><b>", o);
    if (s->objs) fputs("Objects alive only through reference cycles", o);
    else fputs("No reference cycles", o);
    fputs("</b></font><br align=\"left\"/>", o);
    if (c->program) { html_text(o, c->program, 80); fputs(" ", o); }
    if (c->pid >= 0) fprintf(o, "(pid %lld) ", c->pid);
    if (c->program || c->pid >= 0) fputs("at exit", o);
    else html_text(o, c->path, 80);
    if (s->objs) {
        fputs(": ", o);
        plural(o, s->objs, "object", "objects");
        fputs(" in ", o);
        plural(o, s->groups, "group", "groups");
        fputs(", ", o);
        bytes_text(o, s->bytes);
    } else {
        fputs(": no collector object was kept alive only by a reference cycle", o);
    }
    fputs("<br align=\"left\"/>", o);
    if (s->out_groups || s->cut) {
        fputs("<font color=\"#b53d3d\">not shown: ", o);
        if (s->out_groups) {
            plural(o, s->out_groups, "smaller group", "smaller groups");
            fputs(" (", o);
            plural(o, s->out_objs, "object", "objects");
            fputs(", ", o);
            bytes_text(o, s->out_bytes);
            fputs(")", o);
        }
        if (s->cut) {
            if (s->out_groups) fputs("; ", o);
            plural(o, s->cut_objs, "object", "objects");
            fprintf(o, " of group %lld", s->cut->number);
        }
        fputs(" (--max-objects)</font><br align=\"left\"/>", o);
    }
    dot_legend(o, types, ntypes);
    fputs(">;\n", o);
}

/* Clusters in rows, biggest first, the picture about 1.6 times as wide as
 * it is tall: each group's row in row[], the number of rows returned. */
static size_t layout_rows(const report_t *c, const selection_t *s, shape_t *sh, size_t *row)
{
    size_t nrows = 1;
    double area = 0, widest = 0;
    for (size_t k = 0; k < s->groups; k++) {
        estimate_shape(c, &c->groups[s->order[k]], &sh[k]);
        area += sh[k].width * sh[k].height;
        if (sh[k].width > widest) widest = sh[k].width;
    }
    double row_width = sqrt(area * 1.6), used = 0;
    if (row_width < 10) row_width = 10;                /* a few groups stay side by side */
    if (row_width < widest) row_width = widest;
    for (size_t k = 0; k < s->groups; k++) {
        if (used > 0 && used + sh[k].width > row_width * 1.1) { nrows++; used = 0; }
        used += sh[k].width;
        row[k] = nrows - 1;
    }
    return nrows;
}

/* One box: type, size, refcount, short address, allocation site. */
static void dot_box(FILE *o, size_t i, const gobj_t *O)
{
    fprintf(o, "    n%zu [fillcolor=\"%s\", color=\"%s\", label=<<b>", i, palette[O->color].fill,
            palette[O->color].line);
    html_text(o, O->type, MAX_TYPE_CHARS);
    fputs("</b><br/><font point-size=\"9\" color=\"#555555\">", o);
    plural(o, O->size, "byte", "bytes");
    if (O->refcount >= 0) fprintf(o, " \xc2\xb7 refcount %lld", O->refcount);
    fputs(" \xc2\xb7 ", o);
    short_addr(o, O->addr);
    if (O->function || O->file) {
        fputs("<br/>", o);
        html_text(o, O->function ? O->function : "???", MAX_TYPE_CHARS);
        if (O->file) {
            const char *base = strrchr(O->file, '/');
            fputs(" (", o);
            html_text(o, base ? base + 1 : O->file, MAX_TYPE_CHARS);
            fprintf(o, ":%lld)", O->line);
        }
    }
    fputs("</font>>, tooltip=\"", o);
    dot_text(o, O->type);
    fputs(" at ", o);
    dot_text(o, O->addr);
    fprintf(o, ", %llu bytes\"];\n", (unsigned long long)O->size);
}

/* A group's cluster: its caption and its drawn boxes. */
static void dot_cluster(FILE *o, const report_t *c, size_t g)
{
    const ggroup_t *G = &c->groups[g];
    fprintf(o, "  subgraph cluster_%zu {\n    label=<<b>group %lld</b>%s: ", g, G->number,
            G->lost ? " (lost plain blocks)" : "");
    plural(o, G->nobj, G->lost ? "block" : "object", G->lost ? "blocks" : "objects");
    fputs(", ", o);
    bytes_text(o, G->bytes);
    if (G->count > 1) fprintf(o, " <b>\xc3\x97 %llu</b> (groups of this shape)", (unsigned long long)G->count);
    if (G->shown < G->nobj) fprintf(o, " <font color=\"#b53d3d\">(first %zu shown)</font>", G->shown);
    fputs(">;\n", o);
    for (size_t i = G->first_obj; i < G->first_obj + G->shown; i++) dot_box(o, i, &c->objs[i]);
    fputs("  }\n", o);
}

static void write_dot(FILE *o, const report_t *c, const selection_t *s, const type_t *types, size_t ntypes)
{
    dot_head(o, s);
    dot_title(o, c, s, types, ntypes);
    if (!s->objs) {
        fputs("  note [shape=note, style=filled, fillcolor=\"#f3f3f3\", color=\"#999999\", "
              "label=\"nothing to draw\"];\n}\n", o);
        return;
    }
    /* Each row hangs from an invisible node below the previous one (the
     * first from one above it all): invisible edges from the bottom box of
     * each cluster above to it, and from it to the top box of each cluster
     * below. */
    shape_t *sh = calloc(s->groups ? s->groups : 1, sizeof *sh);
    size_t *row = calloc(s->groups ? s->groups : 1, sizeof *row), nrows = 1;
    if (sh && row) nrows = layout_rows(c, s, sh, row);
    for (size_t k = 0; k < s->groups; k++) dot_cluster(o, c, s->order[k]);
    for (size_t e = 0; e < c->nedges; e++) {
        const gedge_t *E = &c->edges[e];
        if (c->objs[E->from].drawn && c->objs[E->to].drawn) fprintf(o, "  n%zu -> n%zu;\n", E->from, E->to);
    }
    if (nrows > 1) {
        fputs("  node [shape=point, style=invis, width=0.01, height=0.01, label=\"\"];\n"
              "  edge [style=invis, weight=0, arrowhead=none];\n", o);
        for (size_t k = 0; k < s->groups; k++) {
            fprintf(o, "  row%zu -> n%zu [weight=1];\n", row[k], sh[k].top);
            if (row[k] + 1 < nrows) fprintf(o, "  n%zu -> row%zu;\n", sh[k].bottom, row[k] + 1);
        }
    }
    free(row);
    free(sh);
    fputs("}\n", o);
}

/* ---- running dot ------------------------------------------------------------------------ */

/* The dot in PATH, or false. */
static bool find_dot(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/dot", *d ? d : ".");
        struct stat st;
        found = stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* Feed text to `dot -Tfmt` and copy what it draws to out.  dot writes
 * into a pipe, not the file: it ends with status 0 when its own writes
 * fail (a file size limit cut its picture at 4 KiB and graph called it
 * done), and here every write is checked.  On failure, one line. */
static bool run_dot(const char *dot, const char *fmt, const char *text, size_t len, FILE *out, const char *name)
{
    FILE *errs = tmpfile();
    int in[2], from[2] = { -1, -1 };
    if (!errs || pipe(in) < 0 || pipe(from) < 0) {
        ms_warn("graph: %s", strerror(errno));
        if (errs) fclose(errs);
        return false;
    }
    char targ[32];
    snprintf(targ, sizeof targ, "-T%s", fmt);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        ms_warn("fork: %s", strerror(errno));
        close(in[0]); close(in[1]); close(from[0]); close(from[1]);
        fclose(errs);
        return false;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(from[1], 1);
        dup2(fileno(errs), 2);
        close(in[0]); close(in[1]); close(from[0]); close(from[1]);
        execl(dot, "dot", targ, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", dot, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(from[1]);
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    /* Both ways at once: dot may write before it has read everything. */
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    bool wrote = true, copied = true;
    size_t off = 0;
    char buf[65536];
    for (;;) {
        struct pollfd p[2] = { { from[0], POLLIN, 0 }, { off < len ? in[1] : -1, POLLOUT, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            wrote = false;
            break;
        }
        if (p[1].revents) {
            ssize_t n = write(in[1], text + off, len - off);
            if (n > 0) off += (size_t)n;
            else if (n < 0 && errno != EINTR && errno != EAGAIN) { wrote = false; off = len; }
            if (off == len && in[1] >= 0) { close(in[1]); in[1] = -1; }
        }
        if (p[0].revents) {
            ssize_t n = read(from[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;                          /* dot is done */
            if (copied && fwrite(buf, 1, (size_t)n, out) != (size_t)n) copied = false;
        }
    }
    if (in[1] >= 0) close(in[1]);
    close(from[0]);
    sigaction(SIGPIPE, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) { ms_warn("waitpid: %s", strerror(errno)); fclose(errs); return false; }
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && wrote;
    if (!ok) {
        char line[300] = "";
        rewind(errs);
        if (!fgets(line, sizeof line, errs)) line[0] = 0;
        line[strcspn(line, "\r\n")] = 0;
        if (WIFSIGNALED(status))
            ms_warn("graph: %s was killed by signal %d writing %s", dot, WTERMSIG(status), name);
        else
            ms_warn("graph: %s failed writing %s%s%s", dot, name, *line ? ": " : "", line);
    }
    fclose(errs);
    return ok && copied;    /* a failed copy: ms_output_close says why */
}

/* ---- the command ---------------------------------------------------------------------- */

static const char *format_of(const char *out)
{
    static const char *const fmts[] = { "svg", "png", "pdf", "dot" };
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && slash > dot)) return NULL;
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++)
        if (strcasecmp(dot + 1, fmts[i]) == 0) return fmts[i];
    return NULL;
}

/* graph's options, checked; where dot is unless DOT text is wanted. */
typedef struct {
    const char *in, *out, *format;
    uint64_t    max, group;
    bool        one_group, to_stdout, want_dot;
    char        dot[4096];
} graph_opts_t;

static void parse_graph(int argc, char **argv, graph_opts_t *g)
{
    const char *v;
    memset(g, 0, sizeof *g);
    g->max = DEFAULT_MAX_OBJECTS;
    for (int i = 1; i < argc; i++) {
        if ((v = ms_opt_value(argc, argv, &i, "-o")) || (v = ms_opt_value(argc, argv, &i, "--output"))) g->out = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--format"))) g->format = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--max-objects"))) {
            if (!ms_parse_u64(v, &g->max) || g->max == 0 || g->max > MAX_MAX_OBJECTS)
                ms_usage_error("graph --max-objects %s: expected a number from 1 to %d", v, MAX_MAX_OBJECTS);
        } else if ((v = ms_opt_value(argc, argv, &i, "--group"))) {
            if (!ms_parse_u64(v, &g->group) || g->group > (uint64_t)1 << 53)
                ms_usage_error("graph --group %s: expected a group number", v);
            g->one_group = true;
        } else if (argv[i][0] == '-' && argv[i][1]) ms_unknown_option("graph", argv[i]);
        else if (!g->in) g->in = argv[i];
        else ms_usage_error("graph: one report at a time ('%s' is one too many)", argv[i]);
    }
    if (!g->in) ms_usage_error("graph: no report given (memshim graph REPORT.json -o FILE.svg)");
    if (!g->out) ms_usage_error("graph: no output file given (-o FILE.svg)");
    if (!*g->out) ms_usage_error("graph -o: empty file name");
    g->to_stdout = strcmp(g->out, "-") == 0;
    if (g->format) {
        if (strcmp(g->format, "svg") && strcmp(g->format, "png") && strcmp(g->format, "pdf") && strcmp(g->format, "dot"))
            ms_usage_error("graph --format %s: expected svg, png, pdf or dot", g->format);
    } else if (g->to_stdout) g->format = "svg";
    else if (!(g->format = format_of(g->out)))
        ms_usage_error("graph -o %s: expected a name ending in .svg, .png, .pdf or .dot (or --format)", g->out);
    g->want_dot = strcmp(g->format, "dot") == 0;
}

/* The group --group asks for (NULL: all), false after saying it is not there. */
static bool find_group(const report_t *c, const graph_opts_t *g, const ggroup_t **only)
{
    *only = NULL;
    if (!g->one_group) return true;
    for (size_t k = 0; k < c->ngroups; k++)
        if ((uint64_t)c->groups[k].number == g->group) *only = &c->groups[k];
    if (!*only)
        ms_warn("%s: no cycle group %llu (the report has %zu group%s)", g->in, (unsigned long long)g->group,
                c->ngroups, c->ngroups == 1 ? "" : "s");
    return *only != NULL;
}

/* The DOT text of what s selected, in memory; NULL when out of memory. */
static char *render_dot(report_t *c, const selection_t *s, size_t *len)
{
    size_t ntypes = 0;
    type_t *types = collect_types(c, &ntypes);
    char *text = NULL;
    FILE *m = open_memstream(&text, len);
    if (!types || !m) { free(types); if (m) fclose(m); free(text); return NULL; }
    write_dot(m, c, s, types, ntypes);
    bool ok = fclose(m) == 0;
    free(types);
    if (!ok) { free(text); return NULL; }
    return text;
}

/* text to out: the DOT itself, or what dot makes of it. */
static bool write_picture(const graph_opts_t *g, const char *text, size_t len, FILE *out)
{
    if (!g->want_dot) return run_dot(g->dot, g->format, text, len, out, g->to_stdout ? "standard output" : g->out);
    return fwrite(text, 1, len, out) == len;
}

/* Replaced only when complete (util.c). */
static bool write_output(const graph_opts_t *g, const char *text, size_t len)
{
    ms_output_t o;
    if (!ms_output_open(&o, g->out, g->in)) return false;
    bool ok = write_picture(g, text, len, o.f);
    bool cut = !ok && !ferror(o.f);             /* dot failed: it said why */
    return ms_output_close(&o, !cut) && ok;
}

/* What was drawn, on stdout (stderr when the picture went there). */
static void say_drawn(const graph_opts_t *g, const selection_t *s)
{
    FILE *say = g->to_stdout ? stderr : stdout;
    char b[32];
    if (!s->objs) {
        fprintf(say, "%s: no reference cycles in %s; %s has a note saying so\n", ms_prog, g->in,
                g->to_stdout ? "the picture" : g->out);
        return;
    }
    fprintf(say, "%s: %s: %zu object%s in %zu group%s, %s, %zu reference%s\n", ms_prog,
            g->to_stdout ? "standard output" : g->out, s->objs, s->objs == 1 ? "" : "s", s->groups,
            s->groups == 1 ? "" : "s", ms_human(s->bytes, b, sizeof b), s->edges, s->edges == 1 ? "" : "s");
    if (!s->out_groups && !s->cut) return;
    fprintf(say, "%s: not shown (--max-objects %llu):", ms_prog, (unsigned long long)g->max);
    if (s->out_groups)
        fprintf(say, " %zu smaller group%s, %zu object%s, %s", s->out_groups, s->out_groups == 1 ? "" : "s",
                s->out_objs, s->out_objs == 1 ? "" : "s", ms_human(s->out_bytes, b, sizeof b));
    if (s->cut)
        fprintf(say, "%s%zu object%s of group %lld", s->out_groups ? "; " : " ", s->cut_objs,
                s->cut_objs == 1 ? "" : "s", s->cut->number);
    fputc('\n', say);
}

int cmd_graph(int argc, char **argv)
{
    graph_opts_t g;
    parse_graph(argc, argv, &g);
    if (!g.want_dot && !find_dot(g.dot, sizeof g.dot)) {
        ms_warn("graph: Graphviz's dot is not installed (install the graphviz package, e.g. apt-get install graphviz)");
        return 1;
    }
    report_t c;
    const ggroup_t *only;
    if (!ms_report_load(g.in, MS_LOAD_CYCLES, &c)) return 1;
    if (!find_group(&c, &g, &only)) { ms_report_free(&c); return 1; }
    selection_t s;
    select_groups(&c, only, g.max, &s);
    size_t len = 0;
    char *text = render_dot(&c, &s, &len);
    bool ok = text != NULL;
    if (!ok) ms_warn("out of memory");
    else ok = write_output(&g, text, len);
    free(text);
    if (ok) say_drawn(&g, &s);
    free(s.order);
    ms_report_free(&c);
    if (ok && !g.to_stdout && ferror(stdout)) ok = false;
    return ok ? 0 : 1;
}
