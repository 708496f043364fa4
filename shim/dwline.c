/* dwline.c - file and line of a code address, from the DWARF line program
 * of its compilation unit, read once into a compact table.
 *
 * libdw's dwarf_getsrclines (behind dwfl_module_getsrc) allocates every row
 * of a unit's line table on its own, copies them into an array and sorts it
 * whole: writing python3's heap profile, one unit of libpython (the
 * interpreter loop) made it 411 M of the exit's 463 M instructions
 * (callgrind), 155 M of them in the mallocs and frees of its rows.  Here a
 * unit's rows go into one array of 16-byte rows, in program order, with its
 * sequences (each a run of rows of non-decreasing address) sorted by their
 * first address; a lookup is two binary searches.  The answer is libdw's:
 * the last row (in the program's order) at the highest address not above
 * the one asked, unless that is where its sequence ends.
 *
 * DWARF 2 to 5 line programs of little-endian files; whatever else (a
 * VLIW unit, a form this reader does not know, compressed sections libdw
 * left compressed, addresses going back within a sequence) is left to
 * libdw, unit by unit (_ms_dwline_find returns -1).  Called under
 * symbolize.c's lock; memory is memshim's own (meta.c). */
#include <dlfcn.h>
#include <dwarf.h>
#include <gelf.h>
#include <string.h>
#include "shim.h"
#include "dwline.h"

static Dwarf_Die *(*p_addrdie)(Dwfl_Module *, Dwarf_Addr, Dwarf_Addr *);
static Dwarf_Attribute *(*p_attr)(Dwarf_Die *, unsigned int, Dwarf_Attribute *);
static int (*p_formudata)(Dwarf_Attribute *, Dwarf_Word *);
static const char *(*p_formstring)(Dwarf_Attribute *);
static Dwarf *(*p_cu_getdwarf)(Dwarf_CU *);
static Elf *(*p_getelf)(Dwarf *);
static char *(*p_getident)(Elf *, size_t *);
static int (*p_getshdrstrndx)(Elf *, size_t *);
static Elf_Scn *(*p_nextscn)(Elf *, Elf_Scn *);
static GElf_Shdr *(*p_getshdr)(Elf_Scn *, GElf_Shdr *);
static char *(*p_strptr)(Elf *, size_t, size_t);
static Elf_Data *(*p_getdata)(Elf_Scn *, Elf_Data *);
static bool ready;

bool _ms_dwline_init(void *h)
{
    p_addrdie = dlsym(h, "dwfl_module_addrdie");
    p_attr = dlsym(h, "dwarf_attr");
    p_formudata = dlsym(h, "dwarf_formudata");
    p_formstring = dlsym(h, "dwarf_formstring");
    p_cu_getdwarf = dlsym(h, "dwarf_cu_getdwarf");
    p_getelf = dlsym(h, "dwarf_getelf");
    p_getident = dlsym(h, "elf_getident");           /* libelf's, a dependency of libdw's */
    p_getshdrstrndx = dlsym(h, "elf_getshdrstrndx");
    p_nextscn = dlsym(h, "elf_nextscn");
    p_getshdr = dlsym(h, "gelf_getshdr");
    p_strptr = dlsym(h, "elf_strptr");
    p_getdata = dlsym(h, "elf_getdata");
    ready = p_addrdie && p_attr && p_formudata && p_formstring && p_cu_getdwarf && p_getelf && p_getident &&
            p_getshdrstrndx && p_nextscn && p_getshdr && p_strptr && p_getdata;
    return ready;
}

/* ---- a unit's table --------------------------------------------------------- */

typedef struct { uint64_t addr; uint32_t line; uint32_t file; } row_t;
typedef struct { uint64_t lo, hi; uint32_t first, n; } seq_t;   /* rows [first, first + n) cover [lo, hi) */

typedef struct unit_s {
    struct unit_s *next;            /* in its module's bucket */
    const void *die;                /* its unit's DIE in .debug_info: the key */
    uint64_t  off;                  /* of its line program in .debug_line */
    int       status;               /* 1 read, -1 left to libdw */
    row_t    *rows;
    size_t    nrows, rows_cap;
    seq_t    *seqs;
    size_t    nseqs, seqs_cap;
    uint32_t *name;                 /* file number -> offset in names, UINT32_MAX: none */
    size_t    nfiles, name_cap;
    char     *names;                /* joined as libdw joins them: directory/file */
    size_t    names_len, names_cap;
} unit_t;

#define BUCKETS 256
typedef struct {
    Dwarf         *dbg;             /* whose sections these are */
    int            ok;              /* 1 sections found and readable, -1 not */
    const uint8_t *line, *line_str, *str;
    size_t         line_size, line_str_size, str_size;
    unit_t        *bucket[BUCKETS];
} module_t;

static void unit_free(unit_t *u)
{
    if (u->rows) _ms_meta_free(u->rows, u->rows_cap * sizeof *u->rows);
    if (u->seqs) _ms_meta_free(u->seqs, u->seqs_cap * sizeof *u->seqs);
    if (u->name) _ms_meta_free(u->name, u->name_cap * sizeof *u->name);
    if (u->names) _ms_meta_free(u->names, u->names_cap);
    _ms_meta_free(u, sizeof *u);
}

void _ms_dwline_free(void *state)
{
    module_t *m = state;
    if (!m) return;
    for (unsigned b = 0; b < BUCKETS; b++)
        for (unit_t *u = m->bucket[b], *next; u; u = next) {
            next = u->next;
            unit_free(u);
        }
    _ms_meta_free(m, sizeof *m);
}

/* ---- reading ------------------------------------------------------------------ */

typedef struct { const uint8_t *p, *end; bool bad; } rd_t;

static uint64_t uleb_long(rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = true;
    return 0;
}

/* Most operands of a line program fit in one byte. */
static inline uint64_t uleb(rd_t *r)
{
    if (MS_LIKELY(r->p < r->end && *r->p < 0x80)) return *r->p++;
    return uleb_long(r);
}

static int64_t sleb(rd_t *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
            return (int64_t)v;
        }
    }
    r->bad = true;
    return 0;
}

static uint64_t fixed(rd_t *r, unsigned n)            /* little-endian, n <= 8 */
{
    if ((size_t)(r->end - r->p) < n) { r->bad = true; r->p = r->end; return 0; }
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static void skip(rd_t *r, uint64_t n)
{
    if ((uint64_t)(r->end - r->p) < n) { r->bad = true; r->p = r->end; }
    else r->p += n;
}

static const char *cstr(rd_t *r)
{
    const uint8_t *z = r->p < r->end ? memchr(r->p, 0, (size_t)(r->end - r->p)) : NULL;
    if (!z) { r->bad = true; r->p = r->end; return NULL; }
    const char *s = (const char *)r->p;
    r->p = z + 1;
    return s;
}

/* The string at off in a string section, or NULL. */
static const char *str_at(const uint8_t *sec, size_t size, uint64_t off)
{
    if (!sec || off >= size || !memchr(sec + off, 0, size - off)) return NULL;
    return (const char *)sec + off;
}

/* One attribute of a DWARF 5 directory or file entry, of form `form`:
 * a string in *s or a number in *u.  False: a form left to libdw. */
static bool form_value(rd_t *r, const module_t *m, uint64_t form, unsigned offsz, const char **s, uint64_t *u)
{
    switch (form) {
    case DW_FORM_string:    *s = cstr(r); return true;
    case DW_FORM_line_strp: *s = str_at(m->line_str, m->line_str_size, fixed(r, offsz)); return *s != NULL;
    case DW_FORM_strp:      *s = str_at(m->str, m->str_size, fixed(r, offsz)); return *s != NULL;
    case DW_FORM_udata:     *u = uleb(r); return true;
    case DW_FORM_data1:     *u = fixed(r, 1); return true;
    case DW_FORM_data2:     *u = fixed(r, 2); return true;
    case DW_FORM_data4:     *u = fixed(r, 4); return true;
    case DW_FORM_data8:     *u = fixed(r, 8); return true;
    case DW_FORM_data16:    skip(r, 16); return true;
    case DW_FORM_block:     skip(r, uleb(r)); return true;
    default:                return false;    /* strx, strp_sup, GNU alt: another section */
    }
}

/* Append file number `num` named as libdw names it: the name if absolute,
 * else its directory (if known) "/" name. */
static bool add_file(unit_t *u, size_t num, const char *dir, const char *name)
{
    if (!name) return false;
    size_t need = num + 1;
    uint32_t *nm = _ms_meta_grow(u->name, &u->name_cap, u->nfiles, need, sizeof *u->name);
    if (!nm) return false;
    u->name = nm;
    while (u->nfiles < need) u->name[u->nfiles++] = UINT32_MAX;
    size_t dl = name[0] != '/' && dir ? strlen(dir) + 1 : 0, nl = strlen(name) + 1;
    char *ns = _ms_meta_grow(u->names, &u->names_cap, u->names_len, u->names_len + dl + nl, 1);
    if (!ns || u->names_len + dl + nl > UINT32_MAX) return false;
    u->names = ns;
    u->name[num] = (uint32_t)u->names_len;
    if (dl) {
        memcpy(u->names + u->names_len, dir, dl - 1);
        u->names[u->names_len + dl - 1] = '/';
    }
    memcpy(u->names + u->names_len + dl, name, nl);
    u->names_len += dl + nl;
    return true;
}

#define MAX_DIRS  4096                  /* more: left to libdw */
#define MAX_FILES (1u << 20)

/* The directory and file tables of a version-5 header. */
static bool tables_v5(rd_t *r, const module_t *m, unit_t *u, unsigned offsz, const char **dirs, size_t *ndirs)
{
    for (int pass = 0; pass < 2; pass++) {          /* directories, then files */
        unsigned nfmt = (unsigned)fixed(r, 1);
        uint64_t fmt[16][2];
        if (nfmt > 16) return false;
        for (unsigned i = 0; i < nfmt; i++) { fmt[i][0] = uleb(r); fmt[i][1] = uleb(r); }
        uint64_t count = uleb(r);
        if (r->bad || count > (pass == 0 ? MAX_DIRS : MAX_FILES) || (count && !nfmt)) return false;
        for (uint64_t e = 0; e < count && !r->bad; e++) {
            const char *path = NULL;
            uint64_t dir = 0;
            for (unsigned i = 0; i < nfmt; i++) {
                const char *s = NULL;
                uint64_t v = 0;
                if (!form_value(r, m, fmt[i][1], offsz, &s, &v)) return false;
                if (fmt[i][0] == DW_LNCT_path) path = s;
                else if (fmt[i][0] == DW_LNCT_directory_index) dir = v;
            }
            if (pass == 0) dirs[(*ndirs)++] = path;
            else if (!add_file(u, e, dir < *ndirs ? dirs[dir] : NULL, path)) return false;
        }
    }
    return !r->bad;
}

/* The directory and file tables of a version 2-4 header: directory 0 is
 * the unit's compilation directory, file 0 none. */
static bool tables_v4(rd_t *r, unit_t *u, const char *comp_dir, const char **dirs, size_t *ndirs)
{
    dirs[(*ndirs)++] = comp_dir;
    for (;;) {
        const char *d = cstr(r);
        if (!d || !*d) break;
        if (*ndirs == MAX_DIRS) return false;
        dirs[(*ndirs)++] = d;
    }
    for (size_t num = 1; !r->bad; num++) {
        const char *name = cstr(r);
        if (!name || !*name) break;
        uint64_t dir = uleb(r);
        uleb(r);                                    /* time */
        uleb(r);                                    /* size */
        if (!add_file(u, num, dir < *ndirs ? dirs[dir] : NULL, name)) return false;
    }
    return !r->bad;
}

static inline bool push_row(unit_t *u, uint64_t addr, uint64_t line, uint64_t file)
{
    if (MS_UNLIKELY(u->nrows == u->rows_cap)) {
        row_t *n = _ms_meta_grow(u->rows, &u->rows_cap, u->nrows, u->nrows + 1, sizeof *u->rows);
        if (!n) return false;
        u->rows = n;
    }
    u->rows[u->nrows++] = (row_t){ addr, (uint32_t)line, (uint32_t)file };
    return true;
}

/* A sequence ended at `end`: rows [first, nrows). */
static bool end_seq(unit_t *u, size_t first, uint64_t end)
{
    if (first == u->nrows) return true;
    if (end < u->rows[u->nrows - 1].addr) return false;
    seq_t *n = _ms_meta_grow(u->seqs, &u->seqs_cap, u->nseqs, u->nseqs + 1, sizeof *u->seqs);
    if (!n) return false;
    u->seqs = n;
    u->seqs[u->nseqs++] = (seq_t){ u->rows[first].addr, end, (uint32_t)first, (uint32_t)(u->nrows - first) };
    return true;
}

#define MS_SORT_NAME seq_sort               /* by first address, then program order */
#define MS_SORT_TYPE seq_t
#define MS_SORT_BEFORE(x, y) ((x)->lo < (y)->lo || ((x)->lo == (y)->lo && (x)->first < (y)->first))
#include "sort.h"

/* Read the line program at u->off: true if the table is whole. */
static bool read_unit(const module_t *m, unit_t *u, const char *comp_dir)
{
    if (u->off >= m->line_size) return false;
    rd_t r = { m->line + u->off, m->line + m->line_size, false };
    unsigned offsz = 4;
    uint64_t len = fixed(&r, 4);
    if (len == 0xffffffffu) { offsz = 8; len = fixed(&r, 8); }
    if (r.bad || len > (uint64_t)(r.end - r.p)) return false;
    r.end = r.p + len;
    unsigned version = (unsigned)fixed(&r, 2);
    if (version < 2 || version > 5) return false;
    unsigned addrsz = 8;
    if (version >= 5) {
        addrsz = (unsigned)fixed(&r, 1);
        if (fixed(&r, 1) != 0) return false;        /* segment selectors */
    }
    uint64_t hlen = fixed(&r, offsz);
    if (r.bad || hlen > (uint64_t)(r.end - r.p)) return false;
    const uint8_t *prog = r.p + hlen;
    unsigned min_len = (unsigned)fixed(&r, 1);
    unsigned max_ops = version >= 4 ? (unsigned)fixed(&r, 1) : 1;
    fixed(&r, 1);                                   /* default_is_stmt: every row counts */
    int line_base = (int8_t)fixed(&r, 1);
    unsigned line_range = (unsigned)fixed(&r, 1);
    unsigned opcode_base = (unsigned)fixed(&r, 1);
    if (r.bad || max_ops != 1 || line_range == 0 || opcode_base == 0 || (addrsz != 4 && addrsz != 8)) return false;
    uint8_t oplen[256] = { 0 };
    for (unsigned i = 1; i < opcode_base; i++) oplen[i] = (uint8_t)fixed(&r, 1);
    static const char *dirs[MAX_DIRS];              /* under symbolize.c's lock */
    size_t ndirs = 0;
    if (!(version >= 5 ? tables_v5(&r, m, u, offsz, dirs, &ndirs) : tables_v4(&r, u, comp_dir, dirs, &ndirs)))
        return false;

    r.p = prog;
    /* About a row for every three bytes of program (gcc's, at -O2): room
     * for them at once, not grown row by row. */
    size_t guess = (size_t)(r.end - prog) / 3 + 16;
    row_t *rows = _ms_meta_grow(u->rows, &u->rows_cap, u->nrows, guess, sizeof *u->rows);
    if (!rows) return false;
    u->rows = rows;
    uint64_t addr = 0, file = 1, line = 1;
    size_t first = u->nrows;
    while (r.p < r.end && !r.bad) {
        unsigned op = *r.p++;
        if (op >= opcode_base) {                    /* special: advance both, add a row */
            unsigned adj = op - opcode_base;
            addr += (uint64_t)min_len * (adj / line_range);
            line += (int64_t)line_base + (int64_t)(adj % line_range);
            if (!push_row(u, addr, line, file)) return false;
            continue;
        }
        switch (op) {
        case 0: {                                   /* extended */
            uint64_t n = uleb(&r);
            if (n == 0 || n > (uint64_t)(r.end - r.p)) return false;
            const uint8_t *next = r.p + n;
            unsigned sub = *r.p++;
            if (sub == DW_LNE_end_sequence) {
                if (!end_seq(u, first, addr)) return false;
                first = u->nrows;
                addr = 0, file = 1, line = 1;
            } else if (sub == DW_LNE_set_address) {
                if (n - 1 != addrsz) return false;
                uint64_t a = fixed(&r, addrsz);
                if (first < u->nrows && a < u->rows[u->nrows - 1].addr) return false;  /* back: libdw sorts */
                addr = a;
            } else if (sub == DW_LNE_define_file) {
                return false;
            }
            r.p = next;                             /* discriminators, vendors' */
            break;
        }
        case DW_LNS_copy:
            if (!push_row(u, addr, line, file)) return false;
            break;
        case DW_LNS_advance_pc:     addr += (uint64_t)min_len * uleb(&r); break;
        case DW_LNS_advance_line:   line += (uint64_t)sleb(&r); break;
        case DW_LNS_set_file:       file = uleb(&r); break;
        case DW_LNS_const_add_pc:   addr += (uint64_t)min_len * ((255 - opcode_base) / line_range); break;
        case DW_LNS_fixed_advance_pc: addr += fixed(&r, 2); break;
        case DW_LNS_set_column: case DW_LNS_set_isa:
            uleb(&r);
            break;
        case DW_LNS_negate_stmt: case DW_LNS_set_basic_block:
        case DW_LNS_set_prologue_end: case DW_LNS_set_epilogue_begin:
            break;
        default:                                    /* a standard opcode of a later version */
            for (unsigned i = 0; i < oplen[op]; i++) uleb(&r);
        }
    }
    if (r.bad || first != u->nrows) return false;   /* cut short, or a sequence left open */
    seq_sort(u->seqs, u->nseqs);
    return true;
}

/* A line program read on its own, from `size` bytes at `line`, with its
 * .debug_line_str (no compilation directory): how many rows, or -1 if it
 * is left to libdw.  For tests, on damaged copies of real programs. */
long _ms_dwline_parse(const void *line, size_t size, const void *line_str, size_t str_size, uint64_t off)
{
    module_t m = { .ok = 1, .line = line, .line_size = size, .line_str = line_str, .line_str_size = str_size };
    unit_t *u = _ms_meta_alloc(sizeof *u);
    if (!u) return -1;
    memset(u, 0, sizeof *u);
    u->off = off;
    long rows = read_unit(&m, u, NULL) ? (long)u->nrows : -1;
    unit_free(u);
    return rows;
}

/* ---- lookups ------------------------------------------------------------------- */

/* The module's sections, found once. */
static bool sections(module_t *m)
{
    if (m->ok) return m->ok > 0;
    m->ok = -1;
    Elf *elf = p_getelf(m->dbg);
    size_t nident = 0, shstrndx;
    char *ident = elf ? p_getident(elf, &nident) : NULL;
    if (!ident || nident <= EI_DATA || ident[EI_DATA] != ELFDATA2LSB) return false;
    if (p_getshdrstrndx(elf, &shstrndx) != 0) return false;
    for (Elf_Scn *scn = NULL; (scn = p_nextscn(elf, scn));) {
        GElf_Shdr sh;
        if (!p_getshdr(scn, &sh)) continue;
        const char *name = p_strptr(elf, shstrndx, sh.sh_name);
        const uint8_t **at;
        size_t *size;
        if (!name) continue;
        if (!strcmp(name, ".debug_line")) at = &m->line, size = &m->line_size;
        else if (!strcmp(name, ".debug_line_str")) at = &m->line_str, size = &m->line_str_size;
        else if (!strcmp(name, ".debug_str")) at = &m->str, size = &m->str_size;
        else continue;
        if (sh.sh_flags & SHF_COMPRESSED) return false;     /* libdw would decompress it */
        Elf_Data *d = p_getdata(scn, NULL);
        if (!d || !d->d_buf) return false;
        *at = d->d_buf;
        *size = d->d_size;
    }
    if (!m->line) return false;
    m->ok = 1;
    return true;
}

int _ms_dwline_find(Dwfl_Module *mod, void **state, Dwarf_Addr ip, const char **file, int *line)
{
    if (!ready || !state) return -1;
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = p_addrdie(mod, ip, &bias);
    if (!cu) return 0;                              /* libdw would find no unit either */
    Dwarf *dbg = p_cu_getdwarf(cu->cu);
    if (!dbg) return -1;
    module_t *m = *state;
    if (!m) {
        if (!(m = _ms_meta_alloc(sizeof *m))) return -1;
        memset(m, 0, sizeof *m);
        m->dbg = dbg;
        *state = m;
    }
    if (m->dbg != dbg || !sections(m)) return -1;
    uintptr_t key = (uintptr_t)cu->addr;
    unit_t **b = &m->bucket[(key >> 4 ^ key >> 12 ^ key >> 20) % BUCKETS], *u = *b;
    while (u && u->die != cu->addr) u = u->next;
    if (!u) {                                       /* a unit met for the first time */
        if (!(u = _ms_meta_alloc(sizeof *u))) return -1;
        memset(u, 0, sizeof *u);
        u->die = cu->addr;
        Dwarf_Attribute at;
        Dwarf_Word off;
        u->status = -1;
        if (p_attr(cu, DW_AT_stmt_list, &at) && p_formudata(&at, &off) == 0) {
            const char *comp_dir = p_attr(cu, DW_AT_comp_dir, &at) ? p_formstring(&at) : NULL;
            u->off = off;
            u->status = read_unit(m, u, comp_dir) ? 1 : -1;
        }
        u->next = *b;
        *b = u;
    }
    if (u->status < 0) return -1;
    uint64_t a = ip - bias;
    size_t lo = 0, hi = u->nseqs;                   /* the last sequence starting at or below a */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u->seqs[mid].lo <= a) lo = mid + 1;
        else hi = mid;
    }
    if (!lo || a >= u->seqs[lo - 1].hi) return 0;
    const seq_t *s = &u->seqs[lo - 1];
    lo = s->first;                                  /* its last row at or below a */
    hi = (size_t)s->first + s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u->rows[mid].addr <= a) lo = mid + 1;
        else hi = mid;
    }
    const row_t *r = &u->rows[lo - 1];
    if (r->file >= u->nfiles || u->name[r->file] == UINT32_MAX) return -1;   /* libdw says "???" */
    *file = u->names + u->name[r->file];
    *line = (int)r->line;
    return 1;
}
