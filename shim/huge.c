/* huge.c - requests above MS_MAX_SMALL: one mapping each, found again through
 * the table of live blocks by address (table.h); resized with mremap.
 *
 * Freed mappings are kept, resident, in a cache and handed out again, by
 * demand and for a while (types.h, "Giving memory back"): the cache never
 * makes the huge mappings (live + cached) exceed their recent peak by more
 * than a quarter of the live ones (256 MiB at most), and a mapping not
 * reused within a quarter of MEMSHIM_DECAY is unmapped, within a fortieth
 * if the program asks for no huge block meanwhile (keep_ns), checked
 * lazily on the huge path, on the segment path (segment.c) and by the
 * reporter thread if it runs.  A request takes the smallest cached mapping
 * that holds it (a tail of 512 KiB or more stays cached on its own), or
 * grows the largest one where it lies, if the addresses after it are free:
 * only the pages added are new.  A freed mapping joins its cached
 * neighbours. */
#include <errno.h>
#include <string.h>
#include "shim.h"
#include "table.h"

#define CACHE_SLOTS    64
#define CACHE_FLOOR    ((size_t)8 << 20)    /* kept whatever the recent peak */
#define CACHE_EXTRA_MAX ((uint64_t)256 << 20) /* most kept above the recent peak */

typedef struct {
    uintptr_t addr;        /* the key */
    size_t    size;        /* usable bytes: the request rounded to pages */
    size_t    map;         /* mapping length, >= size (a reused mapping may be longer) */
    uint32_t  rec;         /* its record's number (records, below) */
} huge_ent;

/* What tracking keeps of a huge block.  Apart from the table: an entry
 * moves when another is erased (backward shift) or the table grows, a
 * record stays where it is from the block's allocation to its free, so the
 * block's owner writes it without the lock, as it writes a small block's
 * record beside its span. */
typedef struct {
    size_t    req;         /* bytes requested */
    ms_meta_t meta;        /* the record (size field unused) */
} huge_rec;

typedef struct { uintptr_t addr; size_t len; uint64_t freed; } cached_t;
typedef struct { uintptr_t addr; size_t len; } range_t;

static const ms_table_kind_t huge_kind = MS_TABLE_KIND(huge_ent, addr, 256, _ms_meta_alloc, _ms_meta_retire);

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
/* huge_lock is held with the thread's signals held off: a signal handler's
 * allocation or free of a large block (the lock is every size's) never
 * comes in while its own thread holds it, which would wait for ever, or
 * (taking another way) keep a freed block that the leak report then called
 * lost.  That costs two system calls around each hold, so what only reads
 * an entry (its size, its record: every realloc of a huge block asks them,
 * and most such reallocs end there, the block staying as it is) takes no
 * lock: huge_seq, below.  Where signals cannot be held off (a seccomp
 * filter, init.c), a handler inside the hold takes the other way (shim.h):
 * no block, or a block kept.
 *
 * huge_seq counts the holds twice: odd inside one, even between.  A reader
 * copies what it needs between two reads of it, and keeps the copy if
 * neither was odd and both agree (a sequence lock): no write came in
 * between, the table's growth included (a replaced table is retired, not
 * freed, so a late probe of it reads memory still mapped). */
static __thread sigset_t huge_mask;
static __thread bool     huge_masked;
static unsigned huge_seq;
static void huge_take(void)
{
    sigset_t old;
    bool held = _ms_os_signals_defer(&old);
    _ms_lock(&huge_lock);
    huge_mask = old;
    huge_masked = held;
    __atomic_store_n(&huge_seq, huge_seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);      /* odd before any write of the hold */
}
static bool huge_take_unless_mine(void)
{
    if (_ms_lock_mine(&huge_lock)) return false;
    huge_take();
    return true;
}
static void huge_give(void)
{
    bool held = huge_masked;
    sigset_t old = huge_mask;
    huge_masked = false;
    __atomic_store_n(&huge_seq, huge_seq + 1, __ATOMIC_RELEASE);   /* after every write of the hold */
    _ms_unlock(&huge_lock);
    if (held) _ms_os_signals_restore(&old);
}
static ms_table_t *table;          /* huge_lock: live blocks by address (table.h) */
static uint64_t  live_bytes;       /* huge_lock: mapped by live blocks */
static cached_t  cache[CACHE_SLOTS];  /* huge_lock; [0, ncached) in use */
static unsigned  ncached;
static size_t    cache_bytes;
static uint64_t  peak_now, peak_before; /* live_bytes' peak in this decay period and the last */
static uint64_t  period_end;       /* ns: when this period ends */
static uint64_t  next_decay = UINT64_MAX; /* ns: when the oldest cached mapping expires */
/* The last huge blocks freed, with their records as they were freed
 * (while tracking: the stacks of a later double free's message). */
static struct { uintptr_t p; ms_meta_t m; } recent[64];
static unsigned  recent_next;

static huge_ent *find(uintptr_t a) { return ms_table_find(table, &huge_kind, a, NULL, NULL); }

/* NULL only when the table is full and cannot grow: never right after an
 * erase (table.h, "full").  rec: the block's record (records, below). */
static huge_ent *insert(uintptr_t a, size_t size, uint32_t rec)
{
    if (!ms_table_room(&table, &huge_kind)) return NULL;
    return ms_table_add(table, &huge_kind, &(huge_ent){ .addr = a, .size = size, .map = size, .rec = rec });
}

static void erase(huge_ent *e) { ms_table_del(table, &huge_kind, e); }

/* Records are numbered from 1 and kept in chunks that never move: chunk k
 * holds REC_CHUNK0 << k of them.  A freed one goes on a list through its
 * req field.  All of it under huge_lock but rec_at, which a reader without
 * the lock calls for a number it read from a live entry. */
#define REC_CHUNK0  64
#define REC_CHUNKS  26                      /* 64 << 25: more records than blocks can exist */
static huge_rec *rec_chunk[REC_CHUNKS];    /* published with release before any of its numbers */
static uint32_t  rec_made;                 /* numbers 1 .. rec_made handed out once */
static uint32_t  rec_free;                 /* a freed number, or 0 */

/* Record r's chunk, and in *at its place there. */
static unsigned rec_place(uint32_t r, uint32_t *at)
{
    uint32_t j = r - 1 + REC_CHUNK0;           /* chunk k starts at j = REC_CHUNK0 << k */
    unsigned k = 31 - (unsigned)__builtin_clz(j) - 6;
    _Static_assert(REC_CHUNK0 == 1 << 6, "a chunk's number from the top bit");
    *at = j - ((uint32_t)REC_CHUNK0 << k);
    return k;
}

static huge_rec *rec_at(uint32_t r)
{
    uint32_t at;
    unsigned k = rec_place(r, &at);
    return &__atomic_load_n(&rec_chunk[k], __ATOMIC_ACQUIRE)[at];
}

/* A zeroed record's number, or 0 when no memory is left for one. */
static uint32_t rec_new(void)
{
    uint32_t r = rec_free;
    if (r) {
        huge_rec *h = rec_at(r);
        rec_free = (uint32_t)h->req;
        memset(h, 0, sizeof *h);
        return r;
    }
    uint32_t at;
    unsigned k = rec_place(rec_made + 1, &at);
    if (k >= REC_CHUNKS) return 0;
    if (!rec_chunk[k]) {
        huge_rec *c = _ms_meta_alloc(sizeof(huge_rec) * ((size_t)REC_CHUNK0 << k));  /* zeroed */
        if (!c) return 0;
        __atomic_store_n(&rec_chunk[k], c, __ATOMIC_RELEASE);
    }
    return ++rec_made;
}

static void rec_drop(uint32_t r)
{
    rec_at(r)->req = rec_free;
    rec_free = r;
}

/* What a reader without the lock copies of an entry. */
typedef struct { size_t size, req; ms_meta_t meta; uint32_t rec; } huge_view;
typedef uint64_t __attribute__((may_alias)) word_t;

/* One probe of the table for a, copying its entry's size and record
 * number into *v; false: none.
 * Every load is atomic (relaxed): a write may come in at any point, which
 * the caller's second look at huge_seq finds.  Bounded by the table's
 * size, since slots may move under it. */
static bool probe(uintptr_t a, huge_view *v)
{
    const ms_table_t *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    if (!t) return false;
    for (size_t i = ms_table_home_(t, a), n = 0; n <= t->mask; i = (i + 1) & t->mask, n++) {
        const huge_ent *e = ms_table_at_(t, &huge_kind, i);
        uint64_t k = ms_table_key_(e);
        if (!k) return false;
        if (k != a) continue;
        v->size = __atomic_load_n(&e->size, __ATOMIC_RELAXED);
        v->rec = __atomic_load_n(&e->rec, __ATOMIC_RELAXED);
        return v->rec != 0;
    }
    return false;
}

/* A consistent copy of p's entry (false: p starts no live huge block),
 * without the lock while no hold comes in between; else under it.  A
 * signal handler inside its own thread's hold (signals could not be held
 * off) takes the copy as it is: that hold is not going on until the
 * handler returns, and waiting for it would be for ever. */
static bool peek(const void *p, huge_view *v)
{
    for (int tries = 0; tries < 4; tries++) {
        unsigned before = __atomic_load_n(&huge_seq, __ATOMIC_ACQUIRE);
        if (before & 1) {
            if (_ms_lock_mine(&huge_lock)) return probe((uintptr_t)p, v);
            break;                              /* another thread's hold: wait for it */
        }
        bool found = probe((uintptr_t)p, v);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&huge_seq, __ATOMIC_RELAXED) == before) return found;
    }
    huge_take();
    huge_ent *e = find((uintptr_t)p);
    if (e) { v->size = e->size; v->rec = e->rec; }
    huge_give();
    return e != NULL;
}

/* The same with a copy of p's record: read as it is, since only p's owner
 * writes it (the thread freeing or resizing p, or the program's races). */
static bool peek_record(const void *p, huge_view *v)
{
    _Static_assert(sizeof(ms_meta_t) == 2 * sizeof(word_t), "a record is two words");
    if (!peek(p, v)) return false;
    const huge_rec *h = rec_at(v->rec);
    word_t m[2];
    v->req = __atomic_load_n(&h->req, __ATOMIC_RELAXED);
    m[0] = __atomic_load_n((const word_t *)&h->meta, __ATOMIC_RELAXED);
    m[1] = __atomic_load_n((const word_t *)&h->meta + 1, __ATOMIC_RELAXED);
    memcpy(&v->meta, m, sizeof m);
    return true;
}

/* Every live block's entry, in no order. */
#define EACH_ENTRY(e) \
    for (size_t i_ = 0; i_ < ms_table_slots(table); i_++) \
        if (((e) = ms_table_get(table, &huge_kind, i_)))

static size_t page_round(size_t n) { return (n + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1); }

/* ---- the cache of freed mappings (huge_lock) ---------------------------------- */

/* A quarter of MEMSHIM_DECAY: a cached mapping is a whole buffer, resident,
 * worth keeping while a program replacing big buffers takes it back (within
 * milliseconds); kept for the whole delay, sqlite3's freed sort buffers were
 * still resident at its peak, 1.22x glibc's RSS (1.09x with a quarter, the
 * same time and page faults; python3, mstress and large unchanged). */
static uint64_t decay_ns(void) { return (uint64_t)_ms_opt.decay_ms * 1000000 / 4; }

/* How long a cached mapping is kept follows demand: the whole quarter if
 * the program has asked for a huge block since the mapping was freed (the
 * cache may serve the next ask, or one after it), a tenth of it (25 ms by
 * default) otherwise.  A program that replaces big buffers of varying sizes
 * (mimalloc-bench's malloc-large) asks again at once, and some of its
 * mappings wait 60-250 ms for an ask they hold.  One that frees a few big
 * lists at once and goes on with small objects (bench's python3: 9 lists,
 * 5.5 MiB, and no huge ask for the next 670 ms) kept them resident 250 ms
 * across its peak: 1.11x glibc's peak RSS.  Keeping them only while the
 * cache is taken from is not enough: malloc-large's asks that miss fault
 * 20 MiB in, 50-60 ms, between two takes.  last_ask: when the program last
 * asked (huge_lock). */
static uint64_t last_ask;
static uint64_t keep_ns(const cached_t *c) { return last_ask > c->freed ? decay_ns() : decay_ns() / 10; }

/* next_decay and period_end are read without the lock by _ms_huge_decay. */
static void set_time(uint64_t *t, uint64_t v) { __atomic_store_n(t, v, __ATOMIC_RELAXED); }

static void live_add(int64_t delta)
{
    live_bytes += (uint64_t)delta;
    if (live_bytes > peak_now) peak_now = live_bytes;
    _ms_heap_account(delta);
}

static void uncache(unsigned i)
{
    cache_bytes -= cache[i].len;
    cache[i] = cache[--ncached];
}

/* Drop the mappings freed more than MEMSHIM_DECAY ago into out[] (unmapped
 * by the caller, unlocked); start a new demand period when one is over. */
static unsigned expire(uint64_t now, range_t *out)
{
    unsigned n = 0;
    if (now >= period_end) {
        peak_before = peak_now;
        peak_now = live_bytes;
        set_time(&period_end, now + decay_ns());
    }
    if (now < next_decay) return 0;
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < ncached;) {
        uint64_t due = cache[i].freed + keep_ns(&cache[i]);
        if (due <= now) { out[n++] = (range_t){ cache[i].addr, cache[i].len }; uncache(i); continue; }
        if (due < next) next = due;
        i++;
    }
    set_time(&next_decay, next);
    return n;
}

static void unmap_all(const range_t *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++) _ms_os_unmap((void *)r[i].addr, r[i].len);
}

/* A cached mapping for a request of `size` bytes (page-rounded): the
 * smallest that holds it, its tail of MS_MAX_SMALL or more left in the cache;
 * else the largest, grown where it lies.  0 if none; *map: its length, *old:
 * how many of its bytes were in use before (the rest are fresh zero pages).
 * The largest is not moved to a place with room (mremap may move): its
 * pages then have new addresses, and on this project's machines (a guest
 * whose page tables the host shadows) the first write to each moved page
 * cost more than faulting a fresh one.  The mimalloc-bench malloc-large
 * workload (bench's `large`) spent 2.0-2.5 s of user time where glibc
 * spent 1.1-1.5, with fewer page faults than glibc's; it stays cached for
 * the next request it holds, and the request gets a fresh mapping. */
static uintptr_t cache_take(size_t size, size_t align, uint64_t now, size_t *map, size_t *old)
{
    last_ask = now;
    int fit = -1, big = -1;
    for (unsigned i = 0; i < ncached; i++) {
        if (cache[i].addr & (align - 1)) continue;
        if (cache[i].len >= size) { if (fit < 0 || cache[i].len < cache[fit].len) fit = (int)i; }
        else if (big < 0 || cache[i].len > cache[big].len) big = (int)i;
    }
    if (fit >= 0) {
        cached_t c = cache[fit];
        uncache((unsigned)fit);
        *map = *old = c.len;
        if (c.len - size >= MS_MAX_SMALL) {       /* the tail stays, as freed when c was */
            cache[ncached++] = (cached_t){ c.addr + size, c.len - size, c.freed };
            cache_bytes += c.len - size;
            *map = *old = size;
        }
        return c.addr;
    }
    if (big < 0 || align > 1) return 0;            /* grown, it keeps only page alignment */
    void *q = (void *)cache[big].addr;
    if (!_ms_os_grow(q, cache[big].len, size)) return 0;   /* it stays cached as it was */
    *old = cache[big].len;
    *map = size;
    uncache((unsigned)big);
    return (uintptr_t)q;
}

/* Keep a freed mapping if the recent peak allows (live + cached never above
 * it, plus a quarter of the live bytes up to CACHE_EXTRA_MAX), making room by
 * dropping the oldest; what is dropped goes to out[].  The quarter: a program
 * that replaces big buffers of varying sizes (mimalloc-bench's malloc-large)
 * had room for about one freed buffer, seldom the size of the next, and
 * faulted in 1.4x glibc's pages; with a few cached and neighbours merged it
 * faults in 0.75x glibc's, at glibc's peak RSS. */
static unsigned cache_put(uintptr_t a, size_t len, uint64_t now, range_t *out)
{
    uint64_t peak = peak_now > peak_before ? peak_now : peak_before;
    uint64_t extra = live_bytes / 4 < CACHE_EXTRA_MAX ? live_bytes / 4 : CACHE_EXTRA_MAX;
    peak += extra;
    if (peak < live_bytes + CACHE_FLOOR) peak = live_bytes + CACHE_FLOOR;
    uint64_t room = _ms_opt.decay_ms ? peak - live_bytes : 0;
    unsigned n = 0;
    if (len > room) { out[n++] = (range_t){ a, len }; return n; }
    /* Cached neighbours (a tail split off it, the head it was split from)
     * join it: one mapping that a larger request can take whole. */
    for (unsigned i = 0; i < ncached;) {
        if (cache[i].addr == a + len || cache[i].addr + cache[i].len == a) {
            if (cache[i].addr < a) a = cache[i].addr;
            len += cache[i].len;
            uncache(i);
            continue;
        }
        i++;
    }
    if (len > room) { out[n++] = (range_t){ a, len }; return n; }
    while (ncached == CACHE_SLOTS || cache_bytes + len > room) {
        unsigned old = 0;
        for (unsigned i = 1; i < ncached; i++) if (cache[i].freed < cache[old].freed) old = i;
        out[n++] = (range_t){ cache[old].addr, cache[old].len };
        uncache(old);
    }
    cache[ncached++] = (cached_t){ a, len, now };
    cache_bytes += len;
    uint64_t due = now + keep_ns(&cache[ncached - 1]);
    if (due < next_decay) set_time(&next_decay, due);
    return n;
}

/* ---- blocks -------------------------------------------------------------------- */

void *_ms_huge_alloc(size_t n, size_t align, bool zero)
{
    if (n > PTRDIFF_MAX - MS_SEGMENT_SIZE) { errno = ENOMEM; return NULL; }
    size_t size = page_round(n ? n : 1), map = size, old = 0;
    range_t drop[CACHE_SLOTS + 1];
    uint64_t now = _ms_os_now_ns();
    if (!huge_take_unless_mine()) { errno = ENOMEM; return NULL; }   /* a handler inside its
                                                                               * thread's hold (shim.h) */
    unsigned ndrop = expire(now, drop);
    void *p = (void *)cache_take(size, align > MS_OS_PAGE ? align : 1, now, &map, &old);
    huge_give();
    unmap_all(drop, ndrop);
    if (!p) {
        p = _ms_os_map_aligned(size, align);    /* fresh pages are already zero */
        if (!p) {
            /* The address space (RLIMIT_AS, overcommit) may be full of what
             * is kept for reuse: empty segments, cached mappings, this
             * thread's cache.  Give it all back, as malloc_trim does, and
             * try once more: a program that freed everything and then asks
             * for one big buffer got NULL where glibc's malloc gave it. */
            _ms_trim(0);
            if (!(p = _ms_os_map_aligned(size, align))) { errno = ENOMEM; return NULL; }
        }
    } else if (zero) {
        memset(p, 0, n < old ? n : old);        /* pages added by growing it are zero */
    }
    huge_take();
    uint32_t rec = rec_new();
    huge_ent *e = rec ? insert((uintptr_t)p, size, rec) : NULL;
    for (unsigned i = 0; i < 64; i++)                /* handed out again: not "freed" now */
        if (recent[i].p == (uintptr_t)p) recent[i].p = 0;
    if (e) { e->map = map; live_add((int64_t)map); }
    else if (rec) rec_drop(rec);
    huge_give();
    if (!e) { _ms_os_unmap(p, map); errno = ENOMEM; return NULL; }
    return p;
}

bool _ms_huge_free(void *p)
{
    range_t drop[CACHE_SLOTS + 2];
    uint64_t now = _ms_os_now_ns();
    if (!huge_take_unless_mine()) return true;   /* a handler inside its thread's hold: the
                                                           * mapping stays, lost (shim.h) */
    huge_ent *e = find((uintptr_t)p);
    if (!e) { huge_give(); return false; }
    size_t map = e->map;
    unsigned k = recent_next++ % 64;
    recent[k].p = (uintptr_t)p;
    recent[k].m = rec_at(e->rec)->meta;
    rec_drop(e->rec);
    erase(e);
    live_add(-(int64_t)map);
    unsigned ndrop = expire(now, drop);
    ndrop += cache_put((uintptr_t)p, map, now, drop + ndrop);
    huge_give();
    unmap_all(drop, ndrop);
    return true;
}

/* The lazy check from elsewhere (segment.c, the reporter thread): cheap
 * when nothing is due. */
void _ms_huge_decay(uint64_t now)
{
    if (now < __atomic_load_n(&next_decay, __ATOMIC_RELAXED) &&
        now < __atomic_load_n(&period_end, __ATOMIC_RELAXED)) return;
    range_t drop[CACHE_SLOTS];
    if (!huge_take_unless_mine()) return;
    unsigned ndrop = expire(now, drop);
    huge_give();
    unmap_all(drop, ndrop);
}

/* Whether p was a huge block freed lately (and not handed out again): a
 * second free of it is a double free, not a foreign pointer.  Its record
 * as it was freed into *m. */
bool _ms_huge_recently_freed(const void *p, ms_meta_t *m)
{
    bool hit = false;
    huge_take();
    if (!find((uintptr_t)p))
        for (unsigned i = 0; i < 64 && !hit; i++)
            if ((hit = recent[i].p == (uintptr_t)p)) *m = recent[i].m;
    huge_give();
    return hit;
}

/* Whether p lies inside a live huge block (at its start or not): its start,
 * requested size and tracking record.  A walk of the whole table, for the
 * rare pointer that is no block. */
bool _ms_huge_containing(const void *p, uintptr_t *start, size_t *req, ms_meta_t *m)
{
    uintptr_t a = (uintptr_t)p;
    huge_ent *e, *hit = NULL;
    huge_take();
    EACH_ENTRY(e)
        if (a >= e->addr && a - e->addr < e->size) {
            hit = e;
            *start = e->addr;
            const huge_rec *h = rec_at(e->rec);
            *req = h->req ? h->req : e->size;
            *m = h->meta;
            break;
        }
    huge_give();
    return hit != NULL;
}

size_t _ms_huge_usable(const void *p)
{
    huge_view v;
    return peek(p, &v) ? v.size : 0;
}

/* Resize a huge block in place or by moving its pages (no copy): within
 * its mapping's slack with no system call, else with mremap.  NULL (errno
 * ENOMEM) if the kernel refuses: the caller copies. */
void *_ms_huge_realloc(void *p, size_t n)
{
    if (n > PTRDIFF_MAX - MS_SEGMENT_SIZE) { errno = ENOMEM; return NULL; }
    size_t size = page_round(n);
    huge_view v;
    if (!peek(p, &v)) return NULL;
    if (_ms_realloc_fits(size, v.size)) return p;     /* most steps of a growing buffer */
    range_t drop[CACHE_SLOTS + 2];
    unsigned ndrop = 0;
    huge_take();
    huge_ent *e = find((uintptr_t)p);
    size_t old = e ? e->size : 0;
    /* A block that shrinks by less than half stays as it is; one that grows
     * grows by at least a quarter, so a buffer grown a little at a time is
     * not remapped at every page it crosses. */
    if (!e || _ms_realloc_fits(size, old)) { huge_give(); return e ? p : NULL; }
    if (size > old && size - old < old / 4) size = page_round(old + old / 4);
    void *q = p;
    if (size <= e->map) {                           /* the mapping holds it already */
        e->size = size;
        if (e->map - size >= MS_MAX_SMALL) {        /* a tail worth keeping apart */
            size_t tail = e->map - size;
            e->map = size;
            live_add(-(int64_t)tail);
            ndrop = cache_put((uintptr_t)p + size, tail, _ms_os_now_ns(), drop);
        }
    } else if ((q = _ms_os_remap(p, e->map, size))) {
        huge_ent keep = *e;
        erase(e);
        huge_ent *ne = insert((uintptr_t)q, size, keep.rec);   /* cannot fail: an entry was just erased */
        ms_assert(ne != NULL);
        live_add((int64_t)size - (int64_t)keep.map);
    }
    huge_give();
    unmap_all(drop, ndrop);
    return q;
}

bool _ms_huge_stays(const void *p, size_t n)
{
    huge_view v;
    return peek(p, &v) && _ms_realloc_fits(page_round(n), v.size);
}

/* Give the cached mappings back (malloc_trim). */
bool _ms_huge_trim(void)
{
    range_t drop[CACHE_SLOTS];
    huge_take();
    unsigned n = ncached;
    for (unsigned i = 0; i < n; i++) drop[i] = (range_t){ cache[i].addr, cache[i].len };
    ncached = 0;
    cache_bytes = 0;
    set_time(&next_decay, UINT64_MAX);
    huge_give();
    unmap_all(drop, n);
    return n != 0;
}

void _ms_huge_stats(ms_huge_stat_t *out)
{
    huge_take();
    out->blocks = ms_table_count(table);
    out->bytes = live_bytes;
    out->cached = cache_bytes;
    out->mapped = live_bytes + cache_bytes;
    huge_give();
}

/* Tracking records of huge blocks (track.c): set them, and enumerate. */
bool _ms_huge_set_meta(const void *p, const ms_meta_t *m, size_t req)
{
    huge_view v;
    if (!peek(p, &v)) return false;
    huge_rec *h = rec_at(v.rec);
    word_t w[2];
    memcpy(w, m, sizeof w);
    __atomic_store_n(&h->req, req, __ATOMIC_RELAXED);
    __atomic_store_n((word_t *)&h->meta, w[0], __ATOMIC_RELAXED);
    __atomic_store_n((word_t *)&h->meta + 1, w[1], __ATOMIC_RELAXED);
    return true;
}

/* A copy of a live huge block's tracking record; false if p starts none. */
bool _ms_huge_get_meta(const void *p, ms_meta_t *m, size_t *req)
{
    huge_view v;
    if (!peek_record(p, &v)) return false;
    *m = v.meta;
    if (req) *req = v.req;
    return true;
}

/* Add flag bits to a huge block's tracking record (gcglue.c). */
void _ms_huge_flag(const void *p, unsigned flags)
{
    huge_take();
    huge_ent *e = find((uintptr_t)p);
    if (e) rec_at(e->rec)->meta.flags |= flags & 15;
    huge_give();
}

/* Visit every live huge block with its mapping's length; the caller holds
 * the huge lock (scan.c). */
void _ms_huge_each_locked(void (*fn)(void *arg, uintptr_t addr, size_t map, size_t req,
                                     const ms_meta_t *m), void *arg)
{
    huge_ent *e;
    EACH_ENTRY(e) {
        const huge_rec *h = rec_at(e->rec);
        fn(arg, e->addr, e->map, h->req, &h->meta);
    }
}

/* The cached mappings (freed blocks' stale bytes: never roots of the leak
 * scan), at most max of them; the caller holds the huge lock. */
size_t _ms_huge_cached_locked(ms_range_t *out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < ncached && n < max; i++)
        out[n++] = (ms_range_t){ cache[i].addr, cache[i].addr + cache[i].len };
    return n;
}

/* check.c's invariants of the huge blocks and the cache (huge lock held). */
void _ms_huge_check_locked(ms_check_fail_fn fail)
{
    uint64_t live = 0, cached = 0;
    size_t n = 0;
    huge_ent *e;
    EACH_ENTRY(e) {
        n++;
        live += e->map;
        if (e->size > e->map || e->size % MS_OS_PAGE || e->map % MS_OS_PAGE || !e->size)
            fail("a huge block's size is not within its mapping", (void *)e->addr, 0);
        if (!e->rec || e->rec > rec_made) fail("a huge block has no record", (void *)e->addr, e->rec);
        if (find(e->addr) != e) fail("a huge block is not found by its address", (void *)e->addr, 0);
    }
    if (n != ms_table_count(table) || live != live_bytes) fail("huge block counts do not add up", table, (unsigned)n);
    for (unsigned i = 0; i < ncached; i++) {
        cached_t *c = &cache[i];
        cached += c->len;
        if (!c->addr || c->len < MS_OS_PAGE || c->len % MS_OS_PAGE)
            fail("a cached huge mapping is malformed", (void *)c->addr, i);
        EACH_ENTRY(e)
            if (c->addr < e->addr + e->map && e->addr < c->addr + c->len)
                fail("a cached huge mapping overlaps a live block", (void *)c->addr, i);
    }
    if (cached != cache_bytes) fail("cached huge bytes do not add up", cache, ncached);
}

/* Whether this thread holds the large blocks' lock (track.c: a handler's
 * free in there keeps its block). */
bool _ms_huge_mine(void) { return _ms_lock_mine(&huge_lock); }

void _ms_huge_lock(void) { _ms_lock(&huge_lock); }
void _ms_huge_unlock(bool child)
{
    if (child) {
        pthread_mutex_init(&huge_lock, NULL);
        huge_seq = (huge_seq + 1) & ~1u;    /* even: no hold goes on in the child */
    } else
        _ms_unlock(&huge_lock);
}
