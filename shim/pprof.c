/* pprof.c - heap profiles in pprof's format: a profile.proto message
 * (github.com/google/pprof, proto/profile.proto), gzipped, as Go's heap
 * profiles, jemalloc, tcmalloc, Pyroscope and Parca write them.
 *
 * The message is encoded here (varints and length-delimited fields are all
 * it takes) into memshim's own memory, then written as a gzip member of
 * deflate (fixed Huffman codes, below) with its CRC-32: valid gzip that any
 * reader takes, without zlib in the preloaded library.  Every sample is one
 * allocation stack with eight values (sample_type, in this order):
 *   alloc_objects alloc_space inuse_objects inuse_space
 *   peak_inuse_objects peak_inuse_space temp_objects temp_space
 * (the peak as its own pair: `go tool pprof -sample_index=peak_inuse_space`);
 * inuse_space is the default.  Functions, files and lines come from the
 * symbolizer, so every mapping says has_functions, has_filenames and
 * has_line_numbers; mappings are the executable segments of the loaded
 * objects, with their GNU build ids. */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "profile.h"
#include "utf8.h"

/* ---- a growing byte buffer and protobuf's wire format -------------------------- */

typedef struct { uint8_t *p; size_t len, cap; bool oom; } pb_t;

static bool pb_room(pb_t *b, size_t n)
{
    if (b->len + n <= b->cap) return true;
    if (b->oom) return false;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + n) ncap *= 2;
    uint8_t *q = _ms_meta_alloc(ncap);
    if (!q) { b->oom = true; return false; }
    if (b->p) { memcpy(q, b->p, b->len); _ms_meta_free(b->p, b->cap); }
    b->p = q;
    b->cap = ncap;
    return true;
}

static void pb_raw(pb_t *b, const void *d, size_t n)
{
    if (n && pb_room(b, n)) { memcpy(b->p + b->len, d, n); b->len += n; }
}

static void pb_varint(pb_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do { tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
    pb_raw(b, tmp, n);
}

static void pb_uint(pb_t *b, unsigned field, uint64_t v)   /* proto3: zero is left out */
{
    if (!v) return;
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

static void pb_bytes(pb_t *b, unsigned field, const void *d, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_raw(b, d, n);
}

/* A string field: proto3 wants UTF-8 (Go's protobuf, Pyroscope's and
 * Parca's reader, refuses the whole profile otherwise), so each byte that
 * is not part of well-formed UTF-8 (a file name in another encoding) is
 * written as U+FFFD. */
static void pb_utf8(pb_t *b, unsigned field, const char *s)
{
    static const char fffd[3] = { (char)0xEF, (char)0xBF, (char)0xBD };
    size_t n = strlen(s), size = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = ms_utf8_len((const unsigned char *)s + i, n - i);
        size += k ? k : sizeof fffd;
    }
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, size);
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = ms_utf8_len((const unsigned char *)s + i, n - i);
        if (k) pb_raw(b, s + i, k);
        else pb_raw(b, fffd, sizeof fffd);
    }
}

static void pb_packed(pb_t *b, unsigned field, const uint64_t *v, unsigned n)
{
    size_t size = 0;
    for (unsigned i = 0; i < n; i++) { uint64_t x = v[i]; do { size++; x >>= 7; } while (x); }
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, size);
    for (unsigned i = 0; i < n; i++) pb_varint(b, v[i]);
}

static void pb_free(pb_t *b) { if (b->p) _ms_meta_free(b->p, b->cap); memset(b, 0, sizeof *b); }

/* ---- maps: 64-bit key -> id (1, 2, ...), open addressing ------------------------- */

typedef struct { uint64_t key; uint32_t val; } slot_t;
typedef struct { slot_t *s; size_t cap, used; } map_t;

static uint64_t mix(uint64_t k) { k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33; return k; }

/* The slot of key (val 0: absent, to be filled by the caller); `same` tells
 * keys that hash alike apart (strings).  NULL when memory ran out. */
static slot_t *map_slot(map_t *m, uint64_t key, bool (*same)(void *, uint32_t), void *arg)
{
    if ((m->used + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 1024;
        slot_t *n = _ms_meta_alloc(ncap * sizeof *n);
        if (!n) return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->s[i].val) continue;
            size_t j = mix(m->s[i].key) & (ncap - 1);
            while (n[j].val) j = (j + 1) & (ncap - 1);
            n[j] = m->s[i];
        }
        if (m->s) _ms_meta_free(m->s, m->cap * sizeof *m->s);
        m->s = n;
        m->cap = ncap;
    }
    for (size_t j = mix(key) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        slot_t *s = &m->s[j];
        if (!s->val) { s->key = key; return s; }
        if (s->key == key && (!same || same(arg, s->val))) return s;
    }
}

static void map_free(map_t *m) { if (m->s) _ms_meta_free(m->s, m->cap * sizeof *m->s); }

/* ---- the profile under construction ------------------------------------------------ */

#define MAX_MAPPINGS 1024
typedef struct { uintptr_t start, limit, offset; uint32_t file, build; } mapping_t;

typedef struct {
    pb_t        out, sub, line;           /* the Profile; a message being built; a Line */
    map_t       strs, funcs, locs;
    const char **str;                     /* string_table by index */
    size_t      nstr, capstr;
    char       *heap[64];                 /* strings built here, in chunks that never move */
    size_t      nheap, heap_used;
    uint32_t    nfuncs, nlocs;
    mapping_t   map[MAX_MAPPINGS];
    unsigned    nmap;
    const char *lookup;                   /* the string map_slot compares */
} enc_t;

#define HEAP_CHUNK 65536

static bool str_same(void *arg, uint32_t v)
{
    enc_t *e = arg;
    return strcmp(e->str[v - 1], e->lookup) == 0;
}

/* The index of s in the string table (s must outlive the encoding). */
static uint64_t str_index(enc_t *e, const char *s)
{
    if (!s) s = "";
    e->lookup = s;
    slot_t *sl = map_slot(&e->strs, _ms_str_hash(s, NULL), str_same, e);
    if (!sl) { e->out.oom = true; return 0; }
    if (sl->val) return sl->val - 1;
    if (e->nstr == e->capstr) {
        size_t ncap = e->capstr ? e->capstr * 2 : 1024;
        const char **n = _ms_meta_alloc(ncap * sizeof *n);
        if (!n) { e->out.oom = true; sl->key = 0; return 0; }
        if (e->str) { memcpy(n, e->str, e->nstr * sizeof *n); _ms_meta_free(e->str, e->capstr * sizeof *n); }
        e->str = n;
        e->capstr = ncap;
    }
    e->str[e->nstr++] = s;
    e->strs.used++;
    sl->val = (uint32_t)e->nstr;
    return e->nstr - 1;
}

/* A copy of a string built here, in chunks that never move. */
static const char *str_keep(enc_t *e, const char *s, size_t n)
{
    if (n + 1 > HEAP_CHUNK) n = HEAP_CHUNK - 1;
    if (!e->nheap || e->heap_used + n + 1 > HEAP_CHUNK) {
        if (e->nheap == sizeof e->heap / sizeof *e->heap || !(e->heap[e->nheap] = _ms_meta_alloc(HEAP_CHUNK)))
            return "";
        e->nheap++;
        e->heap_used = 0;
    }
    char *c = e->heap[e->nheap - 1] + e->heap_used;
    memcpy(c, s, n);
    c[n] = 0;
    e->heap_used += n + 1;
    return c;
}

/* ---- mappings: executable segments of the loaded objects, with build ids -- */

static const char *build_id(enc_t *e, const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *name = p + sizeof *nh, *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (desc + nh->n_descsz > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh->n_descsz <= 64) {
                char hex[129];
                for (unsigned k = 0; k < nh->n_descsz; k++) {
                    hex[2 * k] = "0123456789abcdef"[desc[k] >> 4];
                    hex[2 * k + 1] = "0123456789abcdef"[desc[k] & 15];
                }
                return str_keep(e, hex, 2 * nh->n_descsz);
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return "";
}

static int add_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    enc_t *e = arg;
    const char *file = info->dlpi_name;
    if (!file || !*file) {                     /* the program itself */
        char exe[4096];
        ssize_t n = _ms_os_proc_readlink("exe", exe, sizeof exe - 1);
        file = str_keep(e, exe, n > 0 ? (size_t)n : 0);
    }
    const char *id = NULL;
    for (int i = 0; i < info->dlpi_phnum && e->nmap < MAX_MAPPINGS; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        if (!id) id = build_id(e, info);
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(MS_OS_PAGE - 1);
        e->map[e->nmap++] = (mapping_t){
            .start = start, .limit = info->dlpi_addr + ph->p_vaddr + ph->p_memsz,
            .offset = ph->p_offset - ((info->dlpi_addr + ph->p_vaddr) - start),
            .file = (uint32_t)str_index(e, file), .build = (uint32_t)str_index(e, id),
        };
    }
    return 0;
}

static uint64_t mapping_of(const enc_t *e, uintptr_t ip)
{
    for (unsigned i = 0; i < e->nmap; i++)
        if (ip >= e->map[i].start && ip < e->map[i].limit) return i + 1;
    return 0;
}

static void write_mappings(enc_t *e)
{
    for (unsigned i = 0; i < e->nmap; i++) {
        const mapping_t *m = &e->map[i];
        e->sub.len = 0;
        pb_uint(&e->sub, 1, i + 1);
        pb_uint(&e->sub, 2, m->start);
        pb_uint(&e->sub, 3, m->limit);
        pb_uint(&e->sub, 4, m->offset);
        pb_uint(&e->sub, 5, m->file);
        pb_uint(&e->sub, 6, m->build);
        for (unsigned f = 7; f <= 9; f++) pb_uint(&e->sub, f, 1);   /* functions, files, lines */
        pb_bytes(&e->out, 3, e->sub.p, e->sub.len);
    }
}

/* ---- locations and functions ----------------------------------------------------- */

static uint64_t function_id(enc_t *e, const ms_frame_t *f)
{
    uint64_t name;
    if (f->function) name = str_index(e, f->function);
    else {
        char mem[600];
        ms_buf_t b;
        _ms_buf_init(&b, mem, sizeof mem, -1);
        _ms_prof_frame_name(&b, f);
        name = str_index(e, str_keep(e, mem, b.len));
    }
    uint64_t file = str_index(e, f->file);
    slot_t *sl = map_slot(&e->funcs, name << 32 | file, NULL, NULL);
    if (!sl) { e->out.oom = true; return 0; }
    if (sl->val) return sl->val;
    sl->val = ++e->nfuncs;
    e->funcs.used++;
    e->sub.len = 0;                                  /* Function */
    pb_uint(&e->sub, 1, sl->val);
    pb_uint(&e->sub, 2, name);
    pb_uint(&e->sub, 3, name);
    pb_uint(&e->sub, 4, file);
    pb_bytes(&e->out, 5, e->sub.p, e->sub.len);
    return sl->val;
}

/* The location of frame f, symbolized already by _ms_stack_frames (which
 * names start_thread without the C library's debug file: asked again here,
 * libdw would read it). */
static uint64_t location_id(enc_t *e, const ms_frame_t *f)
{
    slot_t *sl = map_slot(&e->locs, f->ip, NULL, NULL);
    if (!sl) { e->out.oom = true; return 0; }
    if (sl->val) return sl->val;
    uint32_t id = ++e->nlocs;
    sl->val = id;
    e->locs.used++;
    uint64_t fn = function_id(e, f);
    e->line.len = 0;                                 /* Line */
    pb_uint(&e->line, 1, fn);
    pb_uint(&e->line, 2, f->file && f->line > 0 ? (uint64_t)f->line : 0);
    e->sub.len = 0;                                  /* Location */
    pb_uint(&e->sub, 1, id);
    pb_uint(&e->sub, 2, mapping_of(e, f->ip));
    pb_uint(&e->sub, 3, f->ip);
    pb_bytes(&e->sub, 4, e->line.p, e->line.len);
    pb_bytes(&e->out, 4, e->sub.p, e->sub.len);
    return id;
}

static void write_sample(enc_t *e, const ms_psite_t *s)
{
    ms_frame_t f[MS_MAX_STACK];
    unsigned n = _ms_stack_frames(s->stack, f);
    if (!n) f[n++] = (ms_frame_t){ .function = "[no stack]" };   /* as the folded profile: viewers show it */
    uint64_t loc[MS_MAX_STACK];
    for (unsigned i = 0; i < n; i++) loc[i] = location_id(e, &f[i]);   /* leaf first, as pprof wants */
    const uint64_t v[8] = { s->allocs, s->alloc_bytes, s->live_blocks, s->live_bytes,
                            s->peak_blocks, s->peak_bytes, s->temps, s->temp_bytes };
    e->sub.len = 0;
    pb_packed(&e->sub, 1, loc, n);
    pb_packed(&e->sub, 2, v, 8);                     /* int64s, all >= 0: the same varints */
    pb_bytes(&e->out, 2, e->sub.p, e->sub.len);
}

static void value_type(enc_t *e, unsigned field, const char *type, const char *unit)
{
    e->sub.len = 0;
    pb_uint(&e->sub, 1, str_index(e, type));
    pb_uint(&e->sub, 2, str_index(e, unit));
    pb_bytes(&e->out, field, e->sub.p, e->sub.len);
}

/* ---- gzip: deflate with fixed Huffman codes ------------------------------------------ *
 * The profile is compressed here, without zlib in the preloaded library
 * (no library to load at exit or in a signal's dump, and no allocation but
 * memshim's own): LZ77 over a 32 KiB window (3-byte hash chains, greedy,
 * at most MS_GZ_TRIES candidates a position) and the fixed Huffman codes
 * of RFC 1951, one block.  A profile is mostly repeated strings, varints of
 * nearby ids and runs of similar samples: cc1's (gcc -O2 on the bench's
 * file) takes 293,225 bytes instead of 883,233 in stored blocks, in about
 * 17 ms; python3's 39,612 instead of 93,204.  Without memory for the hash
 * chains the data goes out in stored blocks, as it all did before. */

#define MS_GZ_HBITS 15
#define MS_GZ_WINDOW 32768
#define MS_GZ_TRIES 32

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static void put_le(ms_buf_t *out, uint32_t v, unsigned n)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    _ms_buf_put(out, b, n);
}

static void stored(ms_buf_t *out, const uint8_t *d, size_t n)
{
    size_t off = 0;
    do {
        size_t k = n - off < 65535 ? n - off : 65535;
        uint8_t last = off + k == n;
        _ms_buf_put(out, &last, 1);                  /* BFINAL, BTYPE 00: stored */
        put_le(out, (uint32_t)k, 2);
        put_le(out, (uint32_t)~k & 0xffff, 2);
        _ms_buf_put(out, d + off, k);
        off += k;
    } while (off < n);
}

/* Bits out least significant first, as deflate packs them. */
typedef struct { ms_buf_t *out; uint64_t acc; unsigned n; } bits_t;

static void bits_put(bits_t *w, uint32_t v, unsigned n)       /* n <= 16 */
{
    w->acc |= (uint64_t)v << w->n;
    w->n += n;
    if (w->n >= 32) {                               /* four bytes a call */
        put_le(w->out, (uint32_t)w->acc, 4);
        w->acc >>= 32;
        w->n -= 32;
    }
}

static void bits_flush(bits_t *w)                   /* to a whole byte */
{
    while (w->n > 0) {
        uint8_t b = (uint8_t)w->acc;
        _ms_buf_put(w->out, &b, 1);
        w->acc >>= 8;
        w->n = w->n > 8 ? w->n - 8 : 0;
    }
}

/* A Huffman code goes out from its most significant bit. */
static void code_put(bits_t *w, uint32_t code, unsigned len)
{
    uint32_t r = 0;
    for (unsigned i = 0; i < len; i++) r = r << 1 | (code >> i & 1);
    bits_put(w, r, len);
}

static void sym_put(bits_t *w, unsigned sym)       /* the fixed literal/length code */
{
    if (sym < 144) code_put(w, 0x30 + sym, 8);
    else if (sym < 256) code_put(w, 0x190 + sym - 144, 9);
    else if (sym < 280) code_put(w, sym - 256, 7);
    else code_put(w, 0xc0 + sym - 280, 8);
}

static void match_put(bits_t *w, unsigned len, unsigned dist)
{
    static const uint16_t lbase[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43,
                                        51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
    static const uint8_t lext[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3,
                                      3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
    static const uint16_t dbase[30] = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                        513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
    static const uint8_t dext[30] = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
                                      8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
    unsigned i = 28, j = 29;
    while (lbase[i] > len) i--;
    while (dbase[j] > dist) j--;
    sym_put(w, 257 + i);
    if (lext[i]) bits_put(w, len - lbase[i], lext[i]);
    code_put(w, j, 5);
    if (dext[j]) bits_put(w, dist - dbase[j], dext[j]);
}

static uint32_t hash3(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u >> (32 - MS_GZ_HBITS);
}

/* One fixed-code block of d[0, n), or false without memory for the chains
 * (nothing written then). */
static bool deflated(ms_buf_t *out, const uint8_t *d, size_t n)
{
    const size_t hsize = (size_t)1 << MS_GZ_HBITS;
    if (n > INT32_MAX) return false;
    int32_t *head = _ms_meta_alloc(hsize * sizeof *head);
    int32_t *prev = head ? _ms_meta_alloc(MS_GZ_WINDOW * sizeof *prev) : NULL;
    if (!prev) {
        if (head) _ms_meta_free(head, hsize * sizeof *head);
        return false;
    }
    for (size_t i = 0; i < hsize; i++) head[i] = -1;
    bits_t w = { out, 0, 0 };
    bits_put(&w, 1, 1);                             /* BFINAL */
    bits_put(&w, 1, 2);                             /* BTYPE 01: fixed codes */
    size_t i = 0;
    while (i < n) {
        unsigned best = 0, dist = 0;
        if (n - i >= 3) {
            uint32_t h = hash3(d + i);
            unsigned most = n - i < 258 ? (unsigned)(n - i) : 258;
            int32_t c = head[h];
            for (unsigned t = 0; c >= 0 && i - (size_t)c <= MS_GZ_WINDOW && t < MS_GZ_TRIES; t++) {
                const uint8_t *a = d + c, *b = d + i;
                if (a[best] == b[best]) {
                    unsigned len = 0;
                    while (len < most && a[len] == b[len]) len++;
                    if (len > best) { best = len; dist = (unsigned)(i - (size_t)c); if (len == most) break; }
                }
                int32_t next = prev[c & (MS_GZ_WINDOW - 1)];
                if (next >= c) break;                /* the slot was taken by a newer position */
                c = next;
            }
            prev[i & (MS_GZ_WINDOW - 1)] = head[h];
            head[h] = (int32_t)i;
        }
        if (best >= 3) {
            match_put(&w, best, dist);
            for (size_t k = i + 1; k < i + best; k++) {  /* the matched positions join the chains */
                if (n - k < 3) break;
                uint32_t h = hash3(d + k);
                prev[k & (MS_GZ_WINDOW - 1)] = head[h];
                head[h] = (int32_t)k;
            }
            i += best;
        } else {
            sym_put(&w, d[i]);
            i++;
        }
    }
    sym_put(&w, 256);                               /* end of block */
    bits_flush(&w);
    _ms_meta_free(prev, MS_GZ_WINDOW * sizeof *prev);
    _ms_meta_free(head, hsize * sizeof *head);
    return true;
}

void _ms_gzip(ms_buf_t *out, const uint8_t *d, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    static const uint8_t header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };  /* deflate, Unix */
    _ms_buf_put(out, header, sizeof header);
    if (!deflated(out, d, n)) stored(out, d, n);
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ d[i]) & 0xff] ^ (crc >> 8);
    put_le(out, ~crc, 4);
    put_le(out, (uint32_t)n, 4);
}

/* ---- the profile ------------------------------------------------------------------ */

void _ms_pprof_write(ms_buf_t *out, const ms_profile_t *p, const char *comment)
{
    enc_t *e = _ms_meta_alloc(sizeof *e);
    if (!e) { _ms_message("heap profile not written: out of memory"); return; }
    str_index(e, "");                                /* string 0 is "" */
    static const char *const types[8][2] = {
        { "alloc_objects", "count" }, { "alloc_space", "bytes" },
        { "inuse_objects", "count" }, { "inuse_space", "bytes" },
        { "peak_inuse_objects", "count" }, { "peak_inuse_space", "bytes" },
        { "temp_objects", "count" }, { "temp_space", "bytes" },
    };
    for (unsigned i = 0; i < 8; i++) value_type(e, 1, types[i][0], types[i][1]);
    if (!_ms_program_iterating()) {                  /* else no mappings: it may never end (unwind.c) */
        _ms_loader_enter();                          /* no fork inside dl_iterate_phdr */
        _ms_iterate_phdr(add_object, e);
        _ms_loader_leave();
    }
    for (size_t i = 0; i < p->n; i++) write_sample(e, &p->site[i]);
    write_mappings(e);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pb_uint(&e->out, 9, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    value_type(e, 11, "space", "bytes");             /* period_type */
    pb_uint(&e->out, 12, 1);                         /* period: every allocation counted */
    if (comment) pb_uint(&e->out, 13, str_index(e, comment));
    pb_uint(&e->out, 14, str_index(e, "inuse_space"));    /* default_sample_type */
    for (size_t i = 0; i < e->nstr; i++) pb_utf8(&e->out, 6, e->str[i]);
    if (e->out.oom) _ms_message("heap profile not written: out of memory");
    else _ms_gzip(out, e->out.p, e->out.len);
    pb_free(&e->out); pb_free(&e->sub); pb_free(&e->line);
    map_free(&e->strs); map_free(&e->funcs); map_free(&e->locs);
    if (e->str) _ms_meta_free(e->str, e->capstr * sizeof *e->str);
    for (size_t i = 0; i < e->nheap; i++) _ms_meta_free(e->heap[i], HEAP_CHUNK);
    _ms_meta_free(e, sizeof *e);
}
