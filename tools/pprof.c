/* pprof.c (tools/) - a heap profile in pprof's format (gzipped
 * profile.proto: MEMSHIM_PROFILE=*.pb.gz, or Go's, jemalloc's, tcmalloc's
 * heap profiles) read into the JSON model that profile.c's views take
 * (memshim(7), "memshim-profile" version 1), so that `memshim profile` and
 * `memshim flame` show a .pb.gz as they show a .json.
 *
 * Each sample is a site: its eight figures by sample type name (memshim's
 * alloc_objects, alloc_space, inuse_objects, inuse_space,
 * peak_inuse_objects, peak_inuse_space, temp_objects, temp_space; a type
 * the file lacks counts 0), its stack from its locations, leaf first, an
 * inlined function as a frame of its own.  A memshim profile's comment
 * holds the JSON profile's other members (program, when, totals,
 * histogram); another writer's totals are the sums of its samples. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "memshim.h"

/* ---- protobuf's wire format: varints and length-delimited fields ----------------- */

typedef struct { const uint8_t *p, *end; bool bad; } pb_t;

static uint64_t varint(pb_t *b)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) break;
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    b->bad = true;
    b->p = b->end;
    return 0;
}

/* The next field of b: its number and wire type, a varint's value in *v or
 * a length-delimited field's bytes in *sub; false at the end (or on bad
 * input, then b->bad). */
static bool field(pb_t *b, unsigned *num, unsigned *wt, uint64_t *v, pb_t *sub)
{
    if (b->p >= b->end || b->bad) return false;
    uint64_t key = varint(b);
    *num = (unsigned)(key >> 3);
    *wt = (unsigned)(key & 7);
    *v = 0;
    switch (*wt) {
    case 0: *v = varint(b); break;
    case 1: if (b->end - b->p < 8) b->bad = true; else b->p += 8; break;
    case 5: if (b->end - b->p < 4) b->bad = true; else b->p += 4; break;
    case 2: {
        uint64_t n = varint(b);
        if (n > (uint64_t)(b->end - b->p)) { b->bad = true; break; }
        *sub = (pb_t){ b->p, b->p + n, false };
        b->p += n;
        break;
    }
    default: b->bad = true;
    }
    return !b->bad;
}

/* Room for one more element of arr (n used of cap): util.c's ms_grow. */
#define GROW(arr, n, cap) ms_grow((void **)&(arr), &(cap), (n) + 1, sizeof *(arr))

/* A growing array of uint64_t */
typedef struct { uint64_t *v; size_t n, cap; } u64s_t;

static bool push(u64s_t *a, uint64_t x)
{
    if (!GROW(a->v, a->n, a->cap)) return false;
    a->v[a->n++] = x;
    return true;
}

/* A repeated scalar field's values, packed (wire type 2) or one by one. */
static bool repeated(u64s_t *a, unsigned wt, uint64_t v, pb_t *sub)
{
    if (wt == 0) return push(a, v);
    if (wt != 2) return true;                    /* not a scalar: skipped */
    while (sub->p < sub->end && !sub->bad) if (!push(a, varint(sub))) return false;
    return !sub->bad;
}

/* ---- the message --------------------------------------------------------------- */

typedef struct { uint64_t function, line; } pline_t;
typedef struct { uint64_t id, mapping, address; size_t first, n; } ploc_t;   /* lines[first..first+n) */
typedef struct { uint64_t id, name, file; } pfunc_t;
typedef struct { uint64_t id, file; } pmap_t;
typedef struct { size_t loc_first, nloc, val_first, nval; } psample_t;

typedef struct {
    u64s_t    types;                 /* sample_type: type names' string indices */
    u64s_t    comments;
    u64s_t    locs_of;               /* every sample's location ids, in turn */
    u64s_t    vals;                  /* every sample's values, in turn */
    psample_t *s;   size_t ns, caps;
    ploc_t    *loc; size_t nloc, caploc;
    pline_t   *ln;  size_t nln, capln;
    pfunc_t   *fn;  size_t nfn, capfn;
    pmap_t    *map; size_t nmap, capmap;
    char     **str; size_t nstr, capstr;
} msg_t;

static void msg_free(msg_t *m)
{
    free(m->types.v); free(m->comments.v); free(m->locs_of.v); free(m->vals.v);
    free(m->s); free(m->loc); free(m->ln); free(m->fn); free(m->map);
    for (size_t i = 0; i < m->nstr; i++) free(m->str[i]);
    free(m->str);
}

static const char *str_at(const msg_t *m, uint64_t i)
{
    return i < m->nstr ? m->str[i] : "";
}

/* One sub-message's varint fields by number (1 to 7; the rest skipped);
 * with `lines`, a Location's lines (field 4) appended to m->ln. */
static bool scalars(pb_t *b, uint64_t out[8], msg_t *m, bool lines)
{
    unsigned num, wt;
    uint64_t v;
    pb_t sub;
    memset(out, 0, 8 * sizeof *out);
    while (field(b, &num, &wt, &v, &sub)) {
        if (lines && num == 4 && wt == 2) {
            uint64_t l[8];
            if (!scalars(&sub, l, m, false) || !GROW(m->ln, m->nln, m->capln)) return false;
            m->ln[m->nln++] = (pline_t){ l[1], l[2] };
        } else if (wt == 0 && num < 8) out[num] = v;
    }
    return !b->bad;
}

static bool parse(pb_t *b, msg_t *m)
{
    unsigned num, wt;
    uint64_t v, f[8];
    pb_t sub;
    while (field(b, &num, &wt, &v, &sub)) {
        switch (num) {
        case 1:                                          /* sample_type: ValueType */
            if (wt != 2 || !scalars(&sub, f, m, false) || !push(&m->types, f[1])) return false;
            break;
        case 2: {                                        /* sample */
            if (wt != 2 || !GROW(m->s, m->ns, m->caps)) return false;
            psample_t s = { m->locs_of.n, 0, m->vals.n, 0 };
            unsigned n2, w2;
            uint64_t v2;
            pb_t s2;
            while (field(&sub, &n2, &w2, &v2, &s2)) {
                if (n2 == 1 && !repeated(&m->locs_of, w2, v2, &s2)) return false;
                if (n2 == 2 && !repeated(&m->vals, w2, v2, &s2)) return false;
            }
            if (sub.bad) return false;
            s.nloc = m->locs_of.n - s.loc_first;
            s.nval = m->vals.n - s.val_first;
            m->s[m->ns++] = s;
            break;
        }
        case 3:                                          /* mapping */
            if (wt != 2 || !scalars(&sub, f, m, false) || !GROW(m->map, m->nmap, m->capmap)) return false;
            m->map[m->nmap++] = (pmap_t){ f[1], f[5] };
            break;
        case 4: {                                        /* location */
            size_t first = m->nln;
            if (wt != 2 || !scalars(&sub, f, m, true) || !GROW(m->loc, m->nloc, m->caploc)) return false;
            m->loc[m->nloc++] = (ploc_t){ f[1], f[2], f[3], first, m->nln - first };
            break;
        }
        case 5:                                          /* function */
            if (wt != 2 || !scalars(&sub, f, m, false) || !GROW(m->fn, m->nfn, m->capfn)) return false;
            m->fn[m->nfn++] = (pfunc_t){ f[1], f[2], f[4] };
            break;
        case 6:                                          /* string_table */
            if (wt != 2 || !GROW(m->str, m->nstr, m->capstr)) return false;
            if (!(m->str[m->nstr] = strndup((const char *)sub.p, (size_t)(sub.end - sub.p)))) return false;
            m->nstr++;
            break;
        case 13:                                         /* comment */
            if (!repeated(&m->comments, wt, v, &sub)) return false;
            break;
        }
    }
    return !b->bad;
}

/* ---- into the JSON model ------------------------------------------------------- */

/* Locations, functions and mappings sorted by id (their first member), so
 * that a sample's ids are found by bisection whatever order the writer
 * gave them in. */
static int by_id_cmp(const void *a, const void *b)
{
    uint64_t x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y ? -1 : x > y;
}
#define SORT_BY_ID(arr, n) ((n) > 1 ? qsort((arr), (n), sizeof *(arr), by_id_cmp) : (void)0)
#define BY_ID(arr, n, want) ((__typeof__(arr))by_id_((arr), sizeof *(arr), (n), (want)))
static void *by_id_(void *arr, size_t size, size_t n, uint64_t want)
{
    return n ? bsearch(&want, arr, n, size, by_id_cmp) : NULL;
}

static const char *const fig_names[8] = {
    "allocations", "allocated_bytes", "temporary", "temporary_bytes",
    "live_blocks", "live_bytes", "peak_blocks", "peak_bytes" };
static const char *const fig_types[8] = {          /* the same, as pprof's sample types */
    "alloc_objects", "alloc_space", "temp_objects", "temp_space",
    "inuse_objects", "inuse_space", "peak_inuse_objects", "peak_inuse_space" };

static json_t *frame_json(const msg_t *m, const ploc_t *l, const pline_t *ln)
{
    json_t *f = json_object();
    char ip[32];
    snprintf(ip, sizeof ip, "0x%llx", (unsigned long long)l->address);
    json_object_set_new(f, "ip", json_string(ip));
    const pfunc_t *fn = ln ? BY_ID(m->fn, m->nfn, ln->function) : NULL;
    if (fn && *str_at(m, fn->name)) json_object_set_new(f, "function", json_string(str_at(m, fn->name)));
    if (fn && *str_at(m, fn->file)) json_object_set_new(f, "file", json_string(str_at(m, fn->file)));
    if (ln && ln->line) json_object_set_new(f, "line", json_integer((json_int_t)ln->line));
    const pmap_t *mp = l->mapping ? BY_ID(m->map, m->nmap, l->mapping) : NULL;
    if (mp && *str_at(m, mp->file)) json_object_set_new(f, "module", json_string(str_at(m, mp->file)));
    return f;
}

/* The profile's root, built from m (sites; the comment's members or sums). */
static json_t *to_json(msg_t *m)
{
    json_t *root = NULL;
    for (size_t i = 0; i < m->comments.n && !root; i++) {
        const char *c = str_at(m, m->comments.v[i]);
        if (strncmp(c, "{\"format\": \"memshim-profile\"", 28) == 0) root = json_loads(c, 0, NULL);
    }
    SORT_BY_ID(m->loc, m->nloc);
    SORT_BY_ID(m->fn, m->nfn);
    SORT_BY_ID(m->map, m->nmap);
    bool head = root != NULL;
    if (!head) {
        root = json_pack("{s:s, s:i, s:s, s:[]}", "format", "memshim-profile", "version", 1, "when",
                         "a pprof profile of another writer: no peak, temporaries or sizes", "histogram");
        if (!root) return NULL;
    }
    int col[8];                                  /* figure -> value column, or -1 */
    for (int k = 0; k < 8; k++) {
        col[k] = -1;
        for (size_t t = 0; t < m->types.n; t++)
            if (strcmp(str_at(m, m->types.v[t]), fig_types[k]) == 0) { col[k] = (int)t; break; }
    }
    uint64_t sum[8] = { 0 };
    json_t *sites = json_array();
    for (size_t i = 0; i < m->ns; i++) {
        const psample_t *s = &m->s[i];
        json_t *site = json_object(), *stack = json_array();
        for (int k = 0; k < 8; k++) {
            int64_t x = col[k] >= 0 && (size_t)col[k] < s->nval ? (int64_t)m->vals.v[s->val_first + (size_t)col[k]] : 0;
            uint64_t u = x > 0 ? (uint64_t)x : 0;
            sum[k] += u;
            json_object_set_new(site, fig_names[k], json_integer((json_int_t)u));
        }
        for (size_t j = 0; j < s->nloc; j++) {
            const ploc_t *l = BY_ID(m->loc, m->nloc, m->locs_of.v[s->loc_first + j]);
            if (!l) continue;
            if (!l->n) json_array_append_new(stack, frame_json(m, l, NULL));
            for (size_t k = 0; k < l->n; k++)          /* the innermost (inlined) function first */
                json_array_append_new(stack, frame_json(m, l, &m->ln[l->first + k]));
        }
        json_object_set_new(site, "stack", stack);
        json_array_append_new(sites, site);
    }
    json_object_set_new(root, "sites", sites);
    if (!head) {
        json_t *tot = json_object();
        for (int k = 0; k < 8; k++) json_object_set_new(tot, fig_names[k], json_integer((json_int_t)sum[k]));
        json_object_set_new(root, "totals", tot);
    }
    return root;
}

/* ---- the file ------------------------------------------------------------------ */

/* The most a file's message may take uncompressed: 256 times the file
 * (profile.proto compresses some 3 to 20 times; deflate reaches 1032, and a
 * 2 MB gzip bomb took 2 GiB and a minute), 1 MiB at least, 1 GiB at most. */
#define MAX_RATIO 256
#define MIN_LIMIT ((uint64_t)1 << 20)
#define MAX_LIMIT ((uint64_t)1 << 30)

json_t *ms_pprof_load(const char *path)
{
    struct stat st;
    gzFile z = gzopen(path, "rb");
    if (!z || stat(path, &st) != 0) {
        ms_warn("%s: %s", path, strerror(errno ? errno : ENOMEM));
        if (z) gzclose(z);
        return NULL;
    }
    uint64_t size = (uint64_t)st.st_size, limit = size > MAX_LIMIT / MAX_RATIO ? MAX_LIMIT : size * MAX_RATIO;
    if (limit < MIN_LIMIT) limit = MIN_LIMIT;
    size_t len = 0, cap = 0;
    uint8_t *d = NULL;
    int got = 0;
    bool oom = false;
    while (len <= limit && !(oom = !ms_grow((void **)&d, &cap, len + (1 << 16), 1))) {   /* 64 KiB of room at least */
        size_t room = cap - len < limit + 1 - len ? cap - len : limit + 1 - len;   /* one byte past the limit at most */
        if ((got = gzread(z, d + len, (unsigned)room)) <= 0) break;
        len += (size_t)got;
    }
    char why[128] = "";                          /* zlib's words, copied: they go with z */
    if (got < 0) {
        int zerr = Z_OK;
        const char *e = gzerror(z, &zerr);
        size_t n = strlen(path);
        if (strncmp(e, path, n) == 0 && strncmp(e + n, ": ", 2) == 0) e += n + 2;   /* zlib names the file too */
        snprintf(why, sizeof why, "%s", e);
    }
    gzclose(z);
    if (oom) { ms_warn("%s: out of memory", path); free(d); return NULL; }
    if (len > limit) {
        char h[32];
        ms_warn("%s: more than %s uncompressed, refused (a gzip bomb? the limit: %d times the file's size, "
                "1 MiB at least, 1 GiB at most)", path, ms_human(limit, h, sizeof h), MAX_RATIO);
        free(d);
        return NULL;
    }
    if (got < 0) { ms_warn("%s: not a readable gzip file (%s)", path, why); free(d); return NULL; }
    uint8_t *exact = realloc(d, len ? len : 1);    /* no slack: a read past the message is a bug */
    if (exact) d = exact;
    msg_t m = { 0 };
    pb_t b = { d, d + len, false };
    json_t *root = NULL;
    if (!parse(&b, &m) || !m.types.n)
        ms_warn("%s: not a pprof profile (no profile.proto message with sample types)", path);
    else if (!(root = to_json(&m)))
        ms_warn("%s: out of memory", path);
    msg_free(&m);
    free(d);
    return root;
}
